// The host that carries out another member's call (pool/call_forwarding) takes the call's task
// only when it is a pending task of the call's own session, made on the host that sent it: a
// member may not make an operation here run under, or be cancelled through, a task that is
// someone else's.
#include <gtest/gtest.h>

#include "pool/call_forwarding.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::pool {
namespace {

TEST(forwarded_task, only_a_pending_task_of_the_calls_own_session_is_taken) {
  testing::temp_dir dir;
  auto opened = storage::database::open({.path = dir / "db"});
  ASSERT_TRUE(opened.ok()) << opened.error();
  auto& db = **opened;
  auto member_host = [&](const std::string& fingerprint, std::uint64_t raft_id) {
    api::host h;
    for (const auto& [key, value] : reserved_entries({"", "", raft_id, "127.0.0.9:1", "127.0.0.9:2", fingerprint}))
      h.other_config[key] = value;
    auto tx = db.begin();
    std::string ref = tx.create(h);
    EXPECT_TRUE(db.commit(std::move(tx)).ok());
    return ref;
  };
  const std::string sender = member_host("aa11", 7), other_host = member_host("bb22", 8);
  auto task = [&](const std::string& session, api::task_status_type status, const std::string& on = "") {
    api::task t;
    t.session.opaque = session;
    t.status = status;
    t.resident_on.opaque = on.empty() ? sender : on;
    auto tx = db.begin();
    std::string ref = tx.create(t);
    EXPECT_TRUE(db.commit(std::move(tx)).ok());
    return ref;
  };
  auto session = [&] {
    auto tx = db.begin();
    std::string ref = tx.create(api::session{});
    EXPECT_TRUE(db.commit(std::move(tx)).ok());
    return ref;
  };
  const std::string alice = session(), bob = session();
  const std::string mine = task(alice, api::task_status_type::pending);
  const std::string theirs = task(bob, api::task_status_type::pending);
  const std::string finished = task(alice, api::task_status_type::success);
  const std::string elsewhere = task(alice, api::task_status_type::pending, other_host);
  const wire::call call{"VM.clean_shutdown", {wire::value(alice), wire::value("OpaqueRef:vm")}};
  auto s = db.snapshot();

  EXPECT_TRUE(check_forwarded_task(*s, mine, call, "aa11").ok());
  auto other = check_forwarded_task(*s, theirs, call, "aa11");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, api::error_code::OPERATION_NOT_ALLOWED);
  EXPECT_FALSE(check_forwarded_task(*s, finished, call, "aa11").ok());
  // The caller's session and a pending task of it, but made on another host than the sender.
  EXPECT_FALSE(check_forwarded_task(*s, elsewhere, call, "aa11").ok());
  EXPECT_TRUE(check_forwarded_task(*s, elsewhere, call, "bb22").ok());
  EXPECT_FALSE(check_forwarded_task(*s, mine, call, "cc33").ok()) << "a sender the pool does not pin";
  auto missing = check_forwarded_task(*s, "OpaqueRef:no-such-task", call, "aa11");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, api::error_code::HANDLE_INVALID);
  EXPECT_FALSE(check_forwarded_task(*s, mine, wire::call{"VM.clean_shutdown", {}}, "aa11").ok()) << "no session: no task";
}

}  // namespace
}  // namespace xapid::pool
