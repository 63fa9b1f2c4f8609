// Sessions on a test clock: idle expiry, the per-originator cap, logout, stale rows at start.
#include <gtest/gtest.h>

#include <thread>

#include "gateway/auth/passwords.hpp"
#include "gateway/auth/roles.hpp"
#include "gateway/auth/sessions.hpp"
#include "gateway/api/tasks.hpp"
#include "tests/support/api_error_matchers.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::gateway {
namespace {

class sessions_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = storage::database::open({dir_.path() + "/db", &clock_, &ids_});
    ASSERT_TRUE(r.ok()) << r.error();
    db_ = std::move(r).value();
    auto t = db_->begin();
    host_ = t.create(api::host{});
    ASSERT_TRUE(db_->commit(std::move(t)).ok());
  }
  std::size_t rows() { return db_->snapshot()->count(storage::schema::get().class_of<api::session>()); }

  testing::temp_dir dir_;
  manual_clock clock_;
  id_source ids_{1};
  std::unique_ptr<storage::database> db_;
  std::string host_;
};

TEST_F(sessions_test, a_session_lives_while_used_and_ends_when_idle) {
  session_manager sessions(*db_, clock_, host_, {std::chrono::seconds(60), 500});
  auto s = sessions.create_root_session("test");
  ASSERT_TRUE(s.ok());
  const api::session* rec = db_->snapshot()->get<api::session>(*s);
  ASSERT_NE(rec, nullptr);
  EXPECT_TRUE(rec->is_local_superuser);
  EXPECT_EQ(rec->this_host.opaque, host_);
  EXPECT_EQ(rec->originator, "test");

  clock_.advance_ms(59'000);
  EXPECT_TRUE(sessions.validate(*s).ok());  // used: the idle time starts again
  clock_.advance_ms(59'000);
  EXPECT_TRUE(sessions.validate(*s).ok());
  clock_.advance_ms(61'000);
  EXPECT_API_ERROR(sessions.validate(*s), SESSION_INVALID, *s);
  EXPECT_EQ(rows(), 0u);
}

// session.slave_local_login_with_password's: no row, no commit (a pool without a master can
// make one), root's rights, its own cap, ended like any.
TEST_F(sessions_test, a_local_session_is_root_kept_in_memory_only_and_capped_apart) {
  session_manager sessions(*db_, clock_, host_, {std::chrono::seconds(60), 2});
  auto with_row = sessions.create_root_session("slave_local_login");
  ASSERT_TRUE(with_row.ok());
  std::vector<std::string> local;
  for (int i = 0; i < 3; ++i) {
    local.push_back(sessions.create_local_root_session("slave_local_login"));
    clock_.advance_ms(1000);
  }
  EXPECT_EQ(rows(), 1u);
  auto who = sessions.validate(local[2]);
  ASSERT_TRUE(who.ok());
  EXPECT_TRUE(who->superuser);
  EXPECT_API_ERROR(sessions.validate(local[0]), SESSION_INVALID, local[0]);  // the oldest local one went past the cap
  EXPECT_TRUE(sessions.validate(*with_row).ok()) << "the sessions with rows count apart";
  EXPECT_TRUE(sessions.destroy(local[1]).ok());
  EXPECT_API_ERROR(sessions.validate(local[1]), SESSION_INVALID, local[1]);
  clock_.advance_ms(61'000);
  EXPECT_EQ(sessions.expire_idle(), 2u);
  EXPECT_EQ(rows(), 0u);
}

TEST_F(sessions_test, the_sweep_ends_idle_sessions) {
  session_manager sessions(*db_, clock_, host_, {std::chrono::seconds(60), 500});
  auto idle = sessions.create_root_session("a");
  clock_.advance_ms(30'000);
  auto busy = sessions.create_root_session("b");
  clock_.advance_ms(31'000);
  EXPECT_EQ(sessions.expire_idle(), 1u);
  EXPECT_FALSE(sessions.validate(*idle).ok());
  EXPECT_TRUE(sessions.validate(*busy).ok());
}

TEST_F(sessions_test, the_oldest_session_of_an_originator_goes_past_the_cap) {
  session_manager sessions(*db_, clock_, host_, {std::chrono::seconds(3600), 3});
  std::vector<std::string> refs;
  for (int i = 0; i < 3; ++i) {
    refs.push_back(*sessions.create_root_session("tool"));
    clock_.advance_ms(1000);
  }
  auto other = sessions.create_root_session("other-tool");
  EXPECT_TRUE(sessions.validate(refs[0]).ok());  // refs[0] is now the most recently used
  clock_.advance_ms(1000);
  auto fourth = sessions.create_root_session("tool");
  EXPECT_FALSE(sessions.validate(refs[1]).ok());  // the least recently used of "tool"
  EXPECT_TRUE(sessions.validate(refs[0]).ok());
  EXPECT_TRUE(sessions.validate(refs[2]).ok());
  EXPECT_TRUE(sessions.validate(*fourth).ok());
  EXPECT_TRUE(sessions.validate(*other).ok());
  EXPECT_EQ(sessions.count(), 4u);
  EXPECT_EQ(rows(), 4u);
}

// A subject's session has the rights its subject has now: a role taken away, the subject gone,
// or external authentication turned off take effect on the session's next call.
TEST_F(sessions_test, a_subjects_session_follows_its_rights_on_every_call) {
  ASSERT_TRUE(ensure_roles(*db_).ok());
  auto role = [&](const char* name) { return db_->snapshot()->refs_by_name_label(storage::schema::get().class_of<api::role>(), name).at(0); };
  const std::size_t host_cls = storage::schema::get().class_of<api::host>();
  auto set_auth = [&](const char* type) {
    auto t = db_->begin();
    t.set(host_cls, host_, *storage::schema::get().field_index(host_cls, "external_auth_type"), wire::value(type));
    ASSERT_TRUE(db_->commit(std::move(t)).ok());
  };
  set_auth("PAM");
  auto t = db_->begin();
  api::subject subject;
  subject.subject_identifier = "u1000";
  subject.roles = {api::ref<api::role>{role("vm-admin")}};
  const std::string subject_ref = t.create(subject);
  ASSERT_TRUE(db_->commit(std::move(t)).ok());

  session_manager sessions(*db_, clock_, host_);
  auto s = sessions.create_subject_session("", subject_ref, "u1000", "alice");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(sessions.validate(*s)->role, role_index("vm-admin"));
  EXPECT_EQ(sessions.validate(*s)->identity, "u1000");

  const std::size_t subject_cls = storage::schema::get().class_of<api::subject>();
  const std::size_t roles_field = *storage::schema::get().field_index(subject_cls, "roles");
  t = db_->begin();
  t.set(subject_cls, subject_ref, roles_field, wire::value(wire::array{wire::value(role("read-only"))}));
  ASSERT_TRUE(db_->commit(std::move(t)).ok());
  EXPECT_EQ(sessions.validate(*s)->role, role_index("read-only"));

  t = db_->begin();
  t.set(subject_cls, subject_ref, roles_field, wire::value(wire::array{}));
  ASSERT_TRUE(db_->commit(std::move(t)).ok());
  EXPECT_EQ(sessions.validate(*s)->role, caller::no_role);  // no rights, nothing allowed

  auto root = sessions.create_root_session("");
  set_auth("");
  EXPECT_API_ERROR(sessions.validate(*s), SESSION_INVALID, *s);
  EXPECT_TRUE(sessions.validate(*root).ok());
  set_auth("PAM");
  auto again = sessions.create_subject_session("", subject_ref, "u1000", "alice");
  ASSERT_TRUE(again.ok());
  t = db_->begin();
  t.destroy(subject_cls, subject_ref);
  ASSERT_TRUE(db_->commit(std::move(t)).ok());
  EXPECT_EQ(sessions.expire_idle(), 1u);  // the sweep ends it too, without waiting for a call
  EXPECT_API_ERROR(sessions.validate(*again), SESSION_INVALID, *again);
}

// Past the cap, only the user's own sessions go: another user filling an originator's sessions
// cannot end root's.
TEST_F(sessions_test, the_cap_is_per_user_and_root_is_never_evicted_by_others) {
  ASSERT_TRUE(ensure_roles(*db_).ok());
  const std::size_t host_cls = storage::schema::get().class_of<api::host>();
  auto t = db_->begin();
  t.set(host_cls, host_, *storage::schema::get().field_index(host_cls, "external_auth_type"), wire::value("PAM"));
  api::subject subject;
  subject.subject_identifier = "u1001";
  const std::string subject_ref = t.create(subject);
  ASSERT_TRUE(db_->commit(std::move(t)).ok());
  session_manager sessions(*db_, clock_, host_, {std::chrono::seconds(3600), 3});
  auto root = sessions.create_root_session("x");
  clock_.advance_ms(1000);
  std::vector<std::string> theirs;
  for (int i = 0; i < 6; ++i) {
    theirs.push_back(*sessions.create_subject_session(i % 2 ? "x" : "y", subject_ref, "u1001", "bob"));
    clock_.advance_ms(1000);
  }
  EXPECT_TRUE(sessions.validate(*root).ok());
  EXPECT_FALSE(sessions.validate(theirs[2]).ok());  // a user has 3 in all, whatever the originators
  EXPECT_TRUE(sessions.validate(theirs[3]).ok());
  EXPECT_EQ(sessions.count(), 4u);
}

// Two logins at the cap must not both pick the same oldest session (the second commit failed
// with HANDLE_INVALID before).
TEST_F(sessions_test, concurrent_logins_at_the_cap_all_succeed) {
  session_manager sessions(*db_, clock_, host_, {std::chrono::seconds(3600), 20});
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      for (int k = 0; k < 40; ++k)
        if (!sessions.create_root_session("same").ok()) ++failed;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(sessions.count(), 20u);
  EXPECT_EQ(rows(), 20u);
}

TEST_F(sessions_test, logout_ends_a_session_once) {
  session_manager sessions(*db_, clock_, host_);
  auto s = sessions.create_root_session("");
  EXPECT_TRUE(sessions.destroy(*s).ok());
  EXPECT_API_ERROR(sessions.destroy(*s), SESSION_INVALID, *s);
  EXPECT_API_ERROR(sessions.validate(*s), SESSION_INVALID, *s);
}

TEST_F(sessions_test, rows_of_a_previous_run_are_removed_at_start) {
  // Another member of the pool, whose sessions are alive while this host restarts.
  std::string other_host;
  {
    auto t = db_->begin();
    other_host = t.create(api::host{});
    ASSERT_TRUE(db_->commit(std::move(t)).ok());
  }
  session_manager other(*db_, clock_, other_host);
  auto others = other.create_root_session("y");
  ASSERT_TRUE(others.ok());
  {
    session_manager before(*db_, clock_, host_);
    ASSERT_TRUE(before.create_root_session("x").ok());
  }
  session_manager after(*db_, clock_, host_);
  EXPECT_EQ(rows(), 2u);
  ASSERT_TRUE(after.clear_stale().ok());
  EXPECT_EQ(rows(), 1u);
  EXPECT_TRUE(other.validate(*others).ok()) << "a restart of one host ended another host's session";
}

TEST_F(sessions_test, only_this_hosts_tasks_are_removed_at_start) {
  std::string other_host;
  {
    auto t = db_->begin();
    other_host = t.create(api::host{});
    ASSERT_TRUE(db_->commit(std::move(t)).ok());
  }
  task_manager mine(*db_, clock_, host_), theirs(*db_, clock_, other_host);
  auto left = mine.create("", "left by the previous run", "", true);
  auto running = theirs.create("", "running on another member", "", true);
  ASSERT_TRUE(left.ok() && running.ok());
  task_manager restarted(*db_, clock_, host_);
  ASSERT_TRUE(restarted.clear_stale().ok());
  auto snap = db_->snapshot();
  EXPECT_EQ(snap->get<api::task>(*left), nullptr);
  EXPECT_NE(snap->get<api::task>(*running), nullptr) << "a restart of one host removed another host's task";
}

// A pool's session is valid on every host (two hosts' managers on one replica): another host
// adopts it at its first call; a logout through any host ends it everywhere; idleness on a host
// that did not make it only forgets it there; a subject's logout by identifier reaches the
// sessions of every host, even one never used here.
TEST_F(sessions_test, a_session_made_on_one_host_serves_on_every_host_until_it_ends_anywhere) {
  std::string other_host;
  {
    auto t = db_->begin();
    other_host = t.create(api::host{});
    ASSERT_TRUE(db_->commit(std::move(t)).ok());
  }
  session_manager here(*db_, clock_, host_, {std::chrono::seconds(60), 500});
  session_manager there(*db_, clock_, other_host, {std::chrono::seconds(60), 500});
  auto s = here.create_root_session("made here");
  ASSERT_TRUE(s.ok());
  auto visiting = there.validate(*s);
  ASSERT_TRUE(visiting.ok());
  EXPECT_TRUE(visiting->superuser);
  ASSERT_TRUE(there.destroy(*s).ok()) << "a logout through another host";
  EXPECT_EQ(rows(), 0u);
  EXPECT_API_ERROR(here.validate(*s), SESSION_INVALID, *s);
  EXPECT_API_ERROR(there.validate(*s), SESSION_INVALID, *s);
  EXPECT_API_ERROR(there.validate("OpaqueRef:never"), SESSION_INVALID, "OpaqueRef:never");

  auto kept = here.create_root_session("used on both");
  ASSERT_TRUE(there.validate(*kept).ok());
  clock_.advance_ms(31'000);
  ASSERT_TRUE(here.validate(*kept).ok());
  clock_.advance_ms(31'000);  // idle 62 s on the other host, 31 s here
  EXPECT_EQ(here.expire_idle(), 0u);
  EXPECT_EQ(there.expire_idle(), 1u);
  EXPECT_EQ(rows(), 1u) << "the other host forgot it, and removed nothing";
  EXPECT_TRUE(there.validate(*kept).ok()) << "adopted again at its next call there";
  ASSERT_TRUE(here.destroy(*kept).ok());
  EXPECT_API_ERROR(there.validate(*kept), SESSION_INVALID, *kept);
  EXPECT_EQ(there.count(), 0u);

  // Never used here: a subject's sessions elsewhere end with logout_subject_identifier here.
  auto root_elsewhere = there.create_root_session("root on the other host");
  auto t = db_->begin();
  api::session rec;
  rec.this_host.opaque = other_host;
  rec.auth_user_sid = "u1000";
  const std::string subjects = t.create(rec);
  ASSERT_TRUE(db_->commit(std::move(t)).ok());
  EXPECT_EQ(here.destroy_where([](const std::string&, const caller& c) { return !c.superuser && c.identity == "u1000"; }), 1u);
  EXPECT_EQ(db_->snapshot()->get<api::session>(subjects), nullptr);
  EXPECT_TRUE(there.validate(*root_elsewhere).ok());
}

TEST(passwords, hashes_verify_and_differ) {
  std::string h = hash_password("s3cret");
  EXPECT_TRUE(h.rfind("$y$", 0) == 0 || h.rfind("$6$", 0) == 0) << h;
  EXPECT_TRUE(verify_password("s3cret", h));
  EXPECT_FALSE(verify_password("s3cret ", h));
  EXPECT_FALSE(verify_password("", h));
  EXPECT_FALSE(verify_password("s3cret", ""));
  EXPECT_NE(hash_password("s3cret"), h);  // salted
}

}  // namespace
}  // namespace xapid::gateway
