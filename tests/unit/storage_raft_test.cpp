// The pool's order over Raft, with real parts: RocksDB on disk in temporary directories, libraft's
// libuv log and our authenticating transport on 127.0.0.1. A pool of one commits as a single host
// does; a pool of three applies the same entries on every member, survives its master's stop, and
// lets a member that was away catch up, by entries or by snapshot; a member without the pool's
// secret, of another pool, or an impostor gets neither a vote nor an entry; peers that send
// garbage or stall slow nobody down.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "storage/database.hpp"
#include "storage/raft_sequencer.hpp"
#include "storage/row_values.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/raft_handshake_peer.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_seed.hpp"

namespace xapid::storage {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using testing::raft_handshake;

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
  for (auto until = steady::now() + limit; steady::now() < until; std::this_thread::sleep_for(10ms))
    if (pred()) return true;
  return pred();
}

using testing::test_seed;  // the identifiers every member chooses

const std::string pool_secret = "0123456789abcdef0123456789abcdef";
const std::string pool_id = "pool-id-16-bytes";

// One member of a pool: its data dir (database and Raft log), its sequencer and database.
struct member {
  member(const testing::temp_dir& root, std::uint64_t id)
      : dir(root / ("member-" + std::to_string(id))), self{id, "127.0.0.1:" + std::to_string(testing::free_port())},
        ids(test_seed() * 31 + id) {}

  ::testing::AssertionResult open(std::vector<raft_member> bootstrap, raft_options tuning = {}) {
    std::filesystem::create_directories(dir);
    tuning.self = self;
    tuning.dir = dir + "/raft";
    tuning.bootstrap = std::move(bootstrap);
    if (tuning.pool_secret.empty()) tuning.pool_secret = pool_secret;
    if (tuning.pool_id.empty()) tuning.pool_id = pool_id;
    seq = std::make_shared<raft_sequencer>(tuning);
    database_options o;
    o.path = dir + "/db";
    o.ids = &ids;
    o.order = seq;
    auto r = database::open(o);
    if (!r) return ::testing::AssertionFailure() << r.error();
    db = std::move(r).value();
    return ::testing::AssertionSuccess();
  }
  void close() {
    db.reset();
    seq.reset();
  }
  bool leads() const { return seq && seq->status().state == raft_status::role_state::leader; }

  result<generation, api::api_error> create_vm(const std::string& name) {
    auto t = db->begin();
    api::vm rec;
    rec.name_label = name;
    last_ref = t.create(rec);
    return db->commit(std::move(t));
  }
  bool has_vm(const std::string& ref) const { return db->snapshot()->get<api::vm>(ref) != nullptr; }

  std::string dir;
  raft_member self;
  id_source ids;
  std::shared_ptr<raft_sequencer> seq;
  std::unique_ptr<database> db;
  std::string last_ref;
};

// `writers` threads each create `each` VMs on `m`; the refs of the acknowledged ones.
std::vector<std::string> write_concurrently(member& m, int writers, int each) {
  std::mutex mu;
  std::vector<std::string> acked;
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < each; ++i) {
        auto t = m.db->begin();
        api::vm rec;
        rec.name_label = "vm-" + std::to_string(w) + "-" + std::to_string(i);
        std::string ref = t.create(rec);
        auto r = m.db->commit(std::move(t));
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().description().at(0));
        if (r.ok()) {
          std::lock_guard lock(mu);
          acked.push_back(ref);
        }
      }
    });
  for (auto& t : threads) t.join();
  return acked;
}

TEST(storage_raft, a_pool_of_one_commits_groups_writers_and_keeps_every_commit_across_a_restart) {
  testing::temp_dir root;
  member m(root, 1);
  ASSERT_TRUE(m.open({m.self}));
  ASSERT_TRUE(eventually([&] { return m.leads(); }, 5s)) << "a sole voter leads at once";

  auto first = m.create_vm("first");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 1u) << "the generation is the database's own, not the Raft index";
  const std::string first_ref = m.last_ref;

  // A transaction refused at apply takes no generation, as on a single host.
  auto bad = m.db->begin();
  bad.expect_field(schema::get().class_of<api::vm>(), first_ref,
                   *schema::get().field_index(schema::get().class_of<api::vm>(), "name_label"), wire::value("other"),
                   api::errors::OTHER_OPERATION_IN_PROGRESS("VM", first_ref));
  auto refused = m.db->commit(std::move(bad));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, api::error_code::OTHER_OPERATION_IN_PROGRESS);
  EXPECT_EQ(m.db->current_generation(), 1u);

  const auto entries_before = m.seq->status().last_index;
  auto acked = write_concurrently(m, 16, 30);
  ASSERT_EQ(acked.size(), 480u);
  EXPECT_EQ(m.db->current_generation(), 481u);
  const auto entries = m.seq->status().last_index - entries_before;
  EXPECT_LT(entries, 480u) << "concurrent writers share entries (group commit)";
  std::printf("480 commits of 16 writers in %llu entries\n", static_cast<unsigned long long>(entries));
  EXPECT_TRUE(eventually([&] { return m.seq->status().applied_log_index == m.seq->status().last_index; }, 2s))
      << "the database holds the log's last entry";

  const std::string before = m.db->export_checkpoint();
  m.close();
  ASSERT_TRUE(m.open({m.self}));  // the bootstrap is ignored: the log exists
  EXPECT_EQ(m.db->export_checkpoint(), before);
  for (const auto& ref : acked) ASSERT_TRUE(m.has_vm(ref)) << ref;
  ASSERT_TRUE(eventually([&] { return m.leads(); }, 5s));
  auto after = m.create_vm("after the restart");
  ASSERT_TRUE(after.ok()) << after.error().description().at(0);
  EXPECT_EQ(*after, 482u);
}

// What every member holds once all have applied the leader's last entry.
void expect_identical_replicas(std::vector<member*> members) {
  ASSERT_TRUE(eventually(
      [&] {
        for (auto* m : members)
          if (m->seq->status().applied_log_index != members.front()->seq->status().applied_log_index ||
              m->db->current_generation() != members.front()->db->current_generation())
            return false;
        return true;
      },
      10s))
      << "every member applies the same entries";
  const std::string first = members.front()->db->export_checkpoint();
  for (auto* m : members) EXPECT_EQ(m->db->export_checkpoint(), first) << "member " << m->self.id;
}

// The first of `members` for which `is` holds within `limit`, or nullptr.
member* wait_for_member(std::vector<member*> members, std::chrono::milliseconds limit, const std::function<bool(member&)>& is) {
  member* found = nullptr;
  eventually(
      [&] {
        for (auto* m : members)
          if (m->seq && is(*m)) found = m;
        return found != nullptr;
      },
      limit);
  return found;
}

member* wait_for_leader(std::vector<member*> members, std::chrono::milliseconds limit) {
  return wait_for_member(std::move(members), limit, [](member& m) { return m.leads(); });
}

TEST(storage_raft, a_pool_of_three_replicates_survives_its_master_and_lets_members_catch_up) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2), c(root, 3);
  // Small snapshots, so that a member away for a while catches up from one.
  raft_options tuning;
  tuning.snapshot_threshold = 32;
  tuning.snapshot_trailing = 8;
  tuning.install_snapshot_timeout_ms = 1000;  // a snapshot sent while its member was down is sent again soon

  // A pool of one grows: the others start with no log and are added, then made voters.
  ASSERT_TRUE(a.open({a.self}, tuning));
  ASSERT_TRUE(eventually([&] { return a.leads(); }, 5s));
  ASSERT_TRUE(a.create_vm("before the others").ok());
  // They admit the master's connections before their logs name it.
  raft_options joining = tuning;
  joining.admitted = {a.self.id};
  ASSERT_TRUE(b.open({}, joining));
  ASSERT_TRUE(c.open({}, joining));
  for (member* m : {&b, &c}) {
    auto added = a.seq->add(m->self, 10s);
    ASSERT_TRUE(added.ok()) << added.error();
    auto voter = a.seq->assign(m->self.id, raft_role::voter, 20s);
    ASSERT_TRUE(voter.ok()) << voter.error();
  }
  EXPECT_FALSE(b.seq->add({9, "127.0.0.1:1"}, 5s).ok()) << "only the master changes the membership";

  auto acked = write_concurrently(a, 8, 20);
  ASSERT_EQ(acked.size(), 160u);
  expect_identical_replicas({&a, &b, &c});
  for (const auto& ref : acked) EXPECT_TRUE(c.has_vm(ref));

  // A follower refuses to order, naming the master; nothing it refused is applied anywhere.
  auto refused = b.create_vm("on a follower");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, api::error_code::HOST_IS_SLAVE);
  EXPECT_EQ(refused.error().params.at(0), a.self.address);
  const std::string refused_ref = b.last_ref;

  // The master stops while writers write: a new one is elected and takes commits; nothing
  // acknowledged is lost.
  std::atomic<bool> stop_writing{false};
  std::vector<std::string> acked_during;
  std::thread writer([&] {
    for (int i = 0; !stop_writing; ++i) {
      auto t = a.db->begin();
      api::vm rec;
      rec.name_label = "during-" + std::to_string(i);
      std::string ref = t.create(rec);
      if (a.db->commit(std::move(t)).ok()) acked_during.push_back(ref);
      else break;  // a.db is closing
    }
  });
  std::this_thread::sleep_for(200ms);
  const auto stopped_at = steady::now();
  stop_writing = true;
  a.seq->stop();  // the master leaves the pool's traffic (its database closes below)
  writer.join();
  a.close();
  member* leader = wait_for_leader({&b, &c}, 10s);
  ASSERT_NE(leader, nullptr) << "no new master within 10 s";
  auto first = leader->create_vm("on the new master");
  ASSERT_TRUE(first.ok()) << first.error().description().at(0);
  const double failover_s = std::chrono::duration<double>(steady::now() - stopped_at).count();
  std::printf("failover: first commit on the new master %.2f s after the old one stopped\n", failover_s);
  EXPECT_LT(failover_s, 6.0);
  member* follower = leader == &b ? &c : &b;
  for (const auto& ref : acked) EXPECT_TRUE(leader->has_vm(ref));
  for (const auto& ref : acked_during) EXPECT_TRUE(leader->has_vm(ref)) << "acknowledged during the stop";
  EXPECT_FALSE(leader->has_vm(refused_ref));

  // The old master comes back as a follower and catches up by entries.
  ASSERT_TRUE(a.open({}, tuning));
  auto more = write_concurrently(*leader, 4, 10);
  expect_identical_replicas({leader, follower, &a});
  for (const auto& ref : more) EXPECT_TRUE(a.has_vm(ref));

  // A follower away while more than a snapshot's worth is committed catches up from a snapshot.
  follower->close();
  auto away = write_concurrently(*leader, 1, 80);
  ASSERT_TRUE(follower->open({}, tuning));
  const generation reopened_at = follower->db->current_generation();
  expect_identical_replicas({leader, follower, &a});
  for (const auto& ref : away) EXPECT_TRUE(follower->has_vm(ref));
  EXPECT_TRUE(follower->db->changes_since(reopened_at, 0ms).lost) << "it installed a snapshot";
}

// A database older than its log (written by a single host's order, then run over Raft) is whole
// on a member that joins later: the log's first snapshot carries it, not entries from 1.
TEST(storage_raft, a_database_older_than_its_log_reaches_a_member_that_joins) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2);
  std::vector<std::string> before;
  {
    std::filesystem::create_directories(a.dir);
    database_options o;
    o.path = a.dir + "/db";
    o.ids = &a.ids;
    auto local = database::open(o);
    ASSERT_TRUE(local.ok()) << local.error();
    for (int i = 0; i < 5; ++i) {
      auto t = (*local)->begin();
      api::vm rec;
      rec.name_label = "before the log " + std::to_string(i);
      before.push_back(t.create(rec));
      ASSERT_TRUE((*local)->commit(std::move(t)).ok());
    }
  }
  ASSERT_TRUE(a.open({a.self}));
  ASSERT_TRUE(eventually([&] { return a.leads(); }, 5s));
  for (const auto& ref : before) ASSERT_TRUE(a.has_vm(ref));
  ASSERT_TRUE(a.create_vm("the log's first").ok());
  ASSERT_TRUE(eventually([&] { return a.seq->status().snapshot_index > 0; }, 5s)) << "the first entry took a snapshot";
  raft_options joining;
  joining.admitted = {a.self.id};  // its log is empty until the master's first entries arrive
  ASSERT_TRUE(b.open({}, joining));
  ASSERT_TRUE(a.seq->add(b.self, 10s).ok());
  ASSERT_TRUE(a.seq->assign(b.self.id, raft_role::voter, 20s).ok());
  ASSERT_TRUE(a.create_vm("after the join").ok());
  expect_identical_replicas({&a, &b});
  for (const auto& ref : before) EXPECT_TRUE(b.has_vm(ref)) << ref;
}

// A pool of three with `tuning`: A founds it, B and C start with empty logs (admitting the others
// until the master's entries arrive) and are made voters.
::testing::AssertionResult three_voters(member& a, member& b, member& c, const raft_options& tuning) {
  if (auto opened = a.open({a.self}, tuning); !opened) return opened;
  if (!eventually([&] { return a.leads(); }, 5s)) return ::testing::AssertionFailure() << "the founder does not lead";
  raft_options joining = tuning;
  joining.admitted = {a.self.id, b.self.id, c.self.id};
  for (member* m : {&b, &c})
    if (auto opened = m->open({}, joining); !opened) return opened;
  for (member* m : {&b, &c}) {
    if (auto added = a.seq->add(m->self, 10s); !added) return ::testing::AssertionFailure() << added.error();
    if (auto voter = a.seq->assign(m->self.id, raft_role::voter, 20s); !voter) return ::testing::AssertionFailure() << voter.error();
  }
  return ::testing::AssertionSuccess();
}

// A member's own writes go to the master (here through order_forwarded directly, as the pool's
// Propose call does over gRPC): they commit on every member, the writer reads its write at once,
// a refusal comes back with the master's error, and a master that never answers leaves the
// writer with an honest "unknown" when the member stops — never a hang, never a false success.
TEST(storage_raft, a_member_forwards_its_writes_to_the_master_and_reads_them_back) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2), c(root, 3);
  std::map<std::uint64_t, member*> by_id{{1, &a}, {2, &b}, {3, &c}};
  std::mutex held_mu;
  std::vector<std::function<void(forwarded_answer)>> held;  // answers the master never gives
  std::atomic<bool> black_hole{false};
  raft_options tuning;
  tuning.forward = [&](std::string encoded, const raft_member& master, std::function<void(forwarded_answer)> done) {
    if (black_hole) {
      std::lock_guard lock(held_mu);
      held.push_back(std::move(done));
      return;
    }
    by_id.at(master.id)->seq->order_forwarded(std::move(encoded), std::move(done));
  };
  ASSERT_TRUE(three_voters(a, b, c, tuning));

  auto on_member = b.create_vm("written on a member");
  ASSERT_TRUE(on_member.ok()) << on_member.error().description().at(0);
  EXPECT_TRUE(b.has_vm(b.last_ref)) << "the writer reads its own write as soon as it is acknowledged";
  EXPECT_EQ(b.db->snapshot()->get<api::vm>(b.last_ref)->name_label, "written on a member");

  std::vector<std::string> acked;
  std::thread from_c([&] { acked = write_concurrently(c, 4, 15); });
  auto from_b = write_concurrently(b, 4, 15);
  auto from_a = write_concurrently(a, 4, 15);
  from_c.join();
  ASSERT_EQ(acked.size() + from_b.size() + from_a.size(), 180u);
  expect_identical_replicas({&a, &b, &c});
  for (const auto& ref : acked) EXPECT_TRUE(a.has_vm(ref) && b.has_vm(ref));

  // The master's refusal is the member's: a precondition that no longer holds.
  auto t = b.db->begin();
  t.expect_unchanged(schema::get().class_of<api::vm>(), b.last_ref, 999999, api::errors::OTHER_OPERATION_IN_PROGRESS("VM", b.last_ref));
  t.set(schema::get().class_of<api::vm>(), b.last_ref, *schema::get().field_index(schema::get().class_of<api::vm>(), "name_label"),
        wire::value("changed"));
  auto refused = b.db->commit(std::move(t));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, api::error_code::OTHER_OPERATION_IN_PROGRESS);
  EXPECT_EQ(a.db->snapshot()->get<api::vm>(b.last_ref)->name_label, "written on a member");

  // A master that never answers: the writer learns the outcome is unknown when its member stops.
  black_hole = true;
  result<generation, api::api_error> lost = fail(api::api_error{});
  std::thread writer([&] { lost = b.create_vm("never answered"); });
  ASSERT_TRUE(eventually([&] { std::lock_guard lock(held_mu); return !held.empty(); }, 5s));
  b.seq->stop();
  writer.join();
  ASSERT_FALSE(lost.ok());
  EXPECT_NE(lost.error().params.at(0).find("may or may not"), std::string::npos) << lost.error().params.at(0);
  // The answer arriving after the member stopped goes nowhere (and crashes nothing).
  std::lock_guard lock(held_mu);
  for (auto& done : held) done(forwarded_answer{12345, generation{99}});
}

// A member's write that reached a host no longer the master (deposed before it took it, as
// after a failover the member has not heard of yet) is refused there with HOST_IS_SLAVE: never
// ordered, so the member sends it again to the master it knows, and the writer sees success,
// applied once.
TEST(storage_raft, a_write_refused_by_a_deposed_master_goes_again_to_the_master) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2), c(root, 3);
  std::map<std::uint64_t, member*> by_id{{1, &a}, {2, &b}, {3, &c}};
  std::atomic<int> sent{0};
  raft_options tuning;
  tuning.forward = [&](std::string encoded, const raft_member& master, std::function<void(forwarded_answer)> done) {
    // The first goes to C, a follower, as to a master deposed in between.
    member* to = sent++ == 0 ? &c : by_id.at(master.id);
    to->seq->order_forwarded(std::move(encoded), std::move(done));
  };
  ASSERT_TRUE(three_voters(a, b, c, tuning));
  const auto before = a.db->snapshot()->count(schema::get().class_of<api::vm>());
  auto written = b.create_vm("sent twice, applied once");
  ASSERT_TRUE(written.ok()) << written.error().description().at(0);
  EXPECT_EQ(sent.load(), 2);
  EXPECT_TRUE(b.has_vm(b.last_ref));
  EXPECT_EQ(a.db->snapshot()->count(schema::get().class_of<api::vm>()), before + 1);
  expect_identical_replicas({&a, &b, &c});
}

// A member's write whose answer is lost (the master applied it, then its answer never came: a
// master killed between the two) is sent again with its idempotency key: the log applies it
// once, and the writer gets the outcome it had — a success its generation, a refusal its error —
// not "may or may not".
TEST(storage_raft, a_write_whose_answer_was_lost_is_sent_again_and_applied_once) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2), c(root, 3);
  std::map<std::uint64_t, member*> by_id{{1, &a}, {2, &b}, {3, &c}};
  std::atomic<int> sent{0};
  std::atomic<bool> lose_next{false}, lose_all{false};
  std::mutex keys_mu;
  std::vector<std::string> sent_bytes;
  raft_options tuning;
  tuning.forward = [&](std::string encoded, const raft_member& master, std::function<void(forwarded_answer)> done) {
    ++sent;
    {
      std::lock_guard lock(keys_mu);
      sent_bytes.push_back(encoded);
    }
    if (!lose_next.exchange(false) && !lose_all) return by_id.at(master.id)->seq->order_forwarded(std::move(encoded), std::move(done));
    // Ordered and applied by the master, but its answer is lost on the way back.
    by_id.at(master.id)->seq->order_forwarded(std::move(encoded), [done](forwarded_answer) {
      forwarded_answer lost;
      lost.unknown = true;
      lost.outcome = fail(api::errors::INTERNAL_ERROR("the pool master could not be asked: it may or may not have been applied"));
      done(std::move(lost));
    });
  };
  tuning.forward_retry = 1500ms;
  ASSERT_TRUE(three_voters(a, b, c, tuning));
  const std::size_t vm_class = schema::get().class_of<api::vm>();
  const auto before = a.db->snapshot()->count(vm_class);
  const generation gen_before = a.db->current_generation();

  lose_next = true;
  auto written = b.create_vm("answer lost, applied once");
  ASSERT_TRUE(written.ok()) << written.error().description().at(0);
  EXPECT_EQ(sent.load(), 2) << "sent once more after the lost answer";
  EXPECT_EQ(*written, gen_before + 1) << "the generation of its one application";
  EXPECT_EQ(a.db->snapshot()->count(vm_class), before + 1);
  EXPECT_EQ(a.db->current_generation(), gen_before + 1);
  {
    std::lock_guard lock(keys_mu);
    ASSERT_EQ(sent_bytes.size(), 2u);
    EXPECT_EQ(sent_bytes[0], sent_bytes[1]) << "the same bytes, key and all";
  }

  // A refusal whose answer is lost: sent again, refused again with the first error, although
  // by then the row has changed (a new application would have been refused differently or not).
  lose_next = true;
  auto t = b.db->begin();
  t.expect_field(vm_class, b.last_ref, *schema::get().field_index(vm_class, "name_label"), wire::value("not its name"),
                 api::errors::OTHER_OPERATION_IN_PROGRESS("VM", b.last_ref));
  t.set(vm_class, b.last_ref, *schema::get().field_index(vm_class, "name_label"), wire::value("changed"));
  auto refused = b.db->commit(std::move(t));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, api::error_code::OTHER_OPERATION_IN_PROGRESS);
  EXPECT_EQ(sent.load(), 4);
  EXPECT_EQ(a.db->snapshot()->get<api::vm>(b.last_ref)->name_label, "answer lost, applied once");

  // Another member may not send B's bytes as its own (and so take B's key): refused, whereas B
  // sending them once more still gets the first outcome.
  auto order_as = [&](std::uint64_t sender) {
    std::promise<forwarded_answer> answered;
    std::string bytes;
    {
      std::lock_guard lock(keys_mu);
      bytes = sent_bytes[0];
    }
    a.seq->order_forwarded(bytes, [&answered](forwarded_answer r) { answered.set_value(std::move(r)); }, sender);
    return answered.get_future().get();
  };
  auto taken = order_as(c.self.id);
  ASSERT_FALSE(taken.outcome.ok());
  EXPECT_NE(taken.outcome.error().params.at(0).find("not its own"), std::string::npos);
  auto own = order_as(b.self.id);
  ASSERT_TRUE(own.outcome.ok());
  EXPECT_EQ(*own.outcome, *written);

  // Answers lost for longer than the member sends again: its writer is told the outcome is
  // unknown (never a refusal: it was applied), and it was applied once however often it went.
  lose_all = true;
  const int sends_before = sent.load();
  auto unknown = b.create_vm("every answer lost");
  lose_all = false;
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().params.at(0).find("may or may not"), std::string::npos) << unknown.error().params.at(0);
  EXPECT_GE(sent.load() - sends_before, 3);
  ASSERT_TRUE(eventually([&] { return a.has_vm(b.last_ref); }, 5s));
  EXPECT_EQ(a.db->snapshot()->count(vm_class), before + 2);
  expect_identical_replicas({&a, &b, &c});
}

// Two pools of one with the same secret meet at an address (as a joined host's old pool of one
// met its new master before the transport checked the pool): both lead term 1. The one that
// hears the other's entries refuses them instead of taking the sender for its own leader (0.15
// would write it over its leader state and crash at the next tick); both pools go on committing.
TEST(storage_raft, a_leader_refuses_another_pools_leader_of_its_own_term) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2);
  ASSERT_TRUE(a.open({a.self}));
  ASSERT_TRUE(b.open({b.self}));
  ASSERT_TRUE(eventually([&] { return a.leads() && b.leads(); }, 5s));
  ASSERT_EQ(a.seq->status().term, b.seq->status().term) << "a pool of one leads the term it was bootstrapped in";
  auto added = a.seq->add(b.self, 10s);
  ASSERT_TRUE(added.ok()) << added.error();
  auto standby = a.seq->assign(b.self.id, raft_role::standby, 10s);
  ASSERT_TRUE(standby.ok()) << standby.error();
  std::this_thread::sleep_for(1s);  // ten heartbeats of A's reach B
  EXPECT_TRUE(b.leads());
  EXPECT_TRUE(b.create_vm("b goes on").ok());
  EXPECT_TRUE(a.create_vm("a goes on").ok());
  EXPECT_FALSE(b.has_vm(a.last_ref)) << "nothing of A's pool reached B's";
}

TEST(storage_raft, a_member_needs_the_pools_secret_and_id_to_start) {
  testing::temp_dir root;
  member m(root, 1);
  raft_options o;
  o.self = m.self;
  o.dir = root / "raft";
  o.pool_id = pool_id;
  auto refused = raft_sequencer(o).start({});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("secret"), std::string::npos) << refused.error();
  o.pool_secret = pool_secret;
  o.pool_id.clear();
  auto no_pool = raft_sequencer(o).start({});
  ASSERT_FALSE(no_pool.ok());
  EXPECT_NE(no_pool.error().find("pool's id"), std::string::npos) << no_pool.error();
}

// Whether one of `members` leads and commits a transaction within `limit` (without a quorum, none can).
bool pool_commits(std::vector<member*> members, std::chrono::milliseconds limit) {
  return eventually(
      [&] {
        for (member* m : members)
          if (m->leads() && m->create_vm("probe").ok()) return true;
        return false;
      },
      limit);
}

TEST(storage_raft, a_member_without_the_pools_secret_or_of_another_pool_gets_no_vote_and_no_entry) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2), c(root, 3);
  const std::vector<raft_member> voters = {a.self, b.self, c.self};
  raft_options another_secret;
  another_secret.pool_secret = std::string(32, 'x');
  ASSERT_TRUE(c.open(voters, another_secret));
  ASSERT_TRUE(a.open(voters));
  ASSERT_TRUE(b.open(voters));
  member* leader = wait_for_leader({&a, &b}, 10s);
  ASSERT_NE(leader, nullptr);
  EXPECT_EQ(write_concurrently(*leader, 4, 10).size(), 40u);
  expect_identical_replicas({&a, &b});
  EXPECT_EQ(c.db->current_generation(), 0u) << "no entry reached the member without the secret";
  EXPECT_EQ(c.seq->status().last_index, 1u) << "its log holds its bootstrap only";

  // The same member with the secret but another pool's id: no better.
  c.close();
  raft_options another_pool;
  another_pool.pool_id = "another-pool-id!";
  ASSERT_TRUE(c.open({}, another_pool));
  EXPECT_EQ(write_concurrently(*leader, 4, 10).size(), 40u);
  expect_identical_replicas({&a, &b});
  EXPECT_EQ(c.db->current_generation(), 0u);

  // Nor does it vote: with b away, a and the outsider are no majority, and a stops committing.
  member* other = leader == &a ? &b : &a;
  other->close();
  EXPECT_TRUE(eventually([&] { return !leader->leads(); }, 5s)) << "a master that hears no majority steps down";
  EXPECT_FALSE(pool_commits({leader, &c}, 3s));
  EXPECT_EQ(c.db->current_generation(), 0u);

  // With the pool's secret and id, the same member votes and catches up: the refusals were the reason.
  c.close();
  ASSERT_TRUE(c.open({}));
  EXPECT_TRUE(pool_commits({leader, &c}, 10s));
  ASSERT_TRUE(other->open({}));
  expect_identical_replicas({&a, &b, &c});
}

TEST(storage_raft, an_impostor_at_a_members_address_with_its_id_but_not_the_secret_is_refused) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2), c(root, 3);
  const std::vector<raft_member> voters = {a.self, b.self, c.self};
  for (member* m : {&a, &b, &c}) ASSERT_TRUE(m->open(voters));
  member* leader = wait_for_leader({&a, &b, &c}, 10s);
  ASSERT_NE(leader, nullptr);
  EXPECT_EQ(write_concurrently(*leader, 2, 10).size(), 20u);
  std::vector<member*> followers;
  for (member* m : {&a, &b, &c})
    if (m != leader) followers.push_back(m);

  // Both followers go; an impostor takes the first one's id and address, with its own log.
  for (member* f : followers) f->close();
  member impostor(root, 100);
  impostor.self = followers[0]->self;
  raft_options no_secret;
  no_secret.pool_secret = std::string(32, 'x');
  ASSERT_TRUE(impostor.open(voters, no_secret));
  EXPECT_TRUE(eventually([&] { return !leader->leads(); }, 5s)) << "the impostor is no majority with the master";
  EXPECT_FALSE(pool_commits({leader, &impostor}, 3s));
  EXPECT_EQ(impostor.db->current_generation(), 0u) << "no entry reached the impostor";

  // The real members come back: the pool commits again, the same everywhere.
  impostor.close();
  for (member* f : followers) ASSERT_TRUE(f->open({}));
  EXPECT_TRUE(pool_commits({&a, &b, &c}, 10s));
  expect_identical_replicas({&a, &b, &c});
}

TEST(storage_raft, peers_that_send_garbage_stall_or_open_a_hundred_connections_slow_no_member_down) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2), c(root, 3);
  const std::vector<raft_member> voters = {a.self, b.self, c.self};
  raft_options tuning;
  tuning.handshake_deadline = 1s;
  for (member* m : {&a, &b, &c}) ASSERT_TRUE(m->open(voters, tuning));
  member* leader = wait_for_leader({&a, &b, &c}, 10s);
  ASSERT_NE(leader, nullptr);

  std::atomic<bool> attacking{true};
  std::atomic<int> committed_meanwhile{0};
  std::thread writer([&] {
    for (int i = 0; attacking; ++i)
      if (leader->create_vm("during-" + std::to_string(i)).ok()) ++committed_meanwhile;
  });

  const raft_handshake member_hello{pool_secret, pool_id, b.self.id, b.self.address};
  std::vector<testing::raw_connection> held;
  for (member* m : {&a, &b, &c}) {
    auto open = [&](const std::string& first_bytes) {
      held.emplace_back(m->self.address);
      held.back().send(first_bytes);
    };
    open(raft_handshake::random_bytes(4096));                                                    // garbage
    open("XRAFT001" + pool_id + raft_handshake::big_endian(1, 8) + raft_handshake::big_endian(65535, 2) +
         std::string(65535, 'a'));                                                              // oversized address
    open(member_hello.hello().substr(0, 20));                                                   // stalls part way
    open(member_hello.hello());                                                                 // never proves itself
    for (int i = 0; i < 100; ++i) open("");                                                     // a burst
  }
  const auto started = steady::now();
  while (steady::now() - started < 1500ms) std::this_thread::sleep_for(50ms);  // past the handshakes' deadline
  int closed = 0;
  for (auto& h : held) closed += h.closed_by_peer(2s) ? 1 : 0;
  EXPECT_EQ(closed, static_cast<int>(held.size())) << "every bad connection is closed, stalled ones at their deadline";
  attacking = false;
  writer.join();
  std::printf("%d commits while %zu bad connections came at the members\n", committed_meanwhile.load(), held.size());
  EXPECT_GT(committed_meanwhile.load(), 10);
  EXPECT_EQ(write_concurrently(*leader, 4, 10).size(), 40u);
  expect_identical_replicas({&a, &b, &c});
}

member* wait_for_ready(std::vector<member*> members, std::chrono::milliseconds limit) {
  return wait_for_member(std::move(members), limit, [](member& m) { return m.seq->status().ready; });
}

// The master changes three times under writes. Each new master, once ready and before it takes
// a proposal, holds every write any earlier master acknowledged (its barrier is applied after
// all of them); in the end every member holds the same database and every acknowledged write.
TEST(storage_raft, each_new_master_is_ready_with_every_acknowledged_write_and_the_members_end_identical) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2), c(root, 3);
  const std::vector<member*> all{&a, &b, &c};
  const std::vector<raft_member> voters{a.self, b.self, c.self};
  for (member* m : all) ASSERT_TRUE(m->open(voters));

  std::vector<std::string> acked;
  for (int round = 0; round < 3; ++round) {
    member* leader = wait_for_ready(all, 10s);
    ASSERT_NE(leader, nullptr) << "no master ready within 10 s in round " << round;
    for (const auto& ref : acked) ASSERT_TRUE(leader->has_vm(ref)) << "round " << round << ": " << ref;

    // Writers on the master until it leaves the pool's traffic; then it comes back as a member.
    std::atomic<bool> stop_writing{false};
    std::mutex mu;
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w)
      writers.emplace_back([&, w] {
        for (int i = 0; !stop_writing; ++i) {
          auto t = leader->db->begin();
          api::vm rec;
          rec.name_label = "round-" + std::to_string(round) + "-" + std::to_string(w) + "-" + std::to_string(i);
          std::string ref = t.create(rec);
          if (!leader->db->commit(std::move(t)).ok()) break;  // the master is leaving
          std::lock_guard lock(mu);
          acked.push_back(ref);
        }
      });
    std::this_thread::sleep_for(300ms);
    stop_writing = true;
    leader->seq->stop();
    for (auto& t : writers) t.join();
    leader->close();
    ASSERT_TRUE(leader->open(voters)) << "the log exists: the bootstrap is ignored";
  }

  ASSERT_NE(wait_for_ready(all, 10s), nullptr);
  expect_identical_replicas(all);
  std::printf("%zu writes acknowledged across three changes of master\n", acked.size());
  for (member* m : all)
    for (const auto& ref : acked) ASSERT_TRUE(m->has_vm(ref)) << "member " << m->self.id << ": " << ref;
}

// Two voters of three die for good: the survivor forces a configuration of itself alone onto its
// log (raft_recover) and starts again as the pool's master, with every write it had; a member
// wiped and added again takes the survivor's log whole.
TEST(storage_raft, the_survivor_of_a_lost_majority_recovers_the_log_alone_and_members_come_back_wiped) {
  testing::temp_dir root;
  member a(root, 1), b(root, 2), c(root, 3);
  ASSERT_TRUE(a.open({a.self, b.self, c.self}));
  ASSERT_TRUE(b.open({a.self, b.self, c.self}));
  ASSERT_TRUE(c.open({a.self, b.self, c.self}));
  member* leader = wait_for_ready({&a, &b, &c}, 10s);
  ASSERT_NE(leader, nullptr);
  auto acked = write_concurrently(*leader, 4, 10);
  ASSERT_EQ(acked.size(), 40u);
  ASSERT_TRUE(eventually([&] { return a.db->applied_log_index() == leader->db->applied_log_index(); }, 10s));
  b.close();
  c.close();
  ASSERT_TRUE(eventually([&] { return !a.leads(); }, 10s)) << "a lone voter of three steps down";
  EXPECT_FALSE(a.create_vm("without a majority").ok());

  // Restarted with the forced configuration, it leads at once.
  a.close();
  raft_options alone;
  alone.recover = {a.self};
  ASSERT_TRUE(a.open({}, alone));
  ASSERT_TRUE(eventually([&] { return a.seq->status().ready; }, 5s));
  for (const auto& ref : acked) EXPECT_TRUE(a.has_vm(ref));
  ASSERT_TRUE(a.create_vm("after the recovery").ok());
  const std::string during = a.last_ref;
  ASSERT_EQ(a.seq->status().configuration.size(), 1u);

  // A restart without the forced configuration keeps it (it is in the log).
  a.close();
  ASSERT_TRUE(a.open({}));
  ASSERT_TRUE(eventually([&] { return a.seq->status().ready; }, 5s));
  EXPECT_TRUE(a.has_vm(during));

  // b comes back wiped, under a new id, and is added as a voter: it takes the survivor's log.
  std::filesystem::remove_all(b.dir);
  member b2(root, 4);
  raft_options joining;
  joining.admitted = {a.self.id};
  ASSERT_TRUE(b2.open({}, joining));
  ASSERT_TRUE(a.seq->add(b2.self, 10s).ok());
  auto voter = a.seq->assign(b2.self.id, raft_role::voter, 20s);
  ASSERT_TRUE(voter.ok()) << voter.error();
  ASSERT_TRUE(a.create_vm("with two voters").ok());
  expect_identical_replicas({&a, &b2});
  EXPECT_TRUE(b2.has_vm(during));
  for (const auto& ref : acked) EXPECT_TRUE(b2.has_vm(ref));
}

}  // namespace
}  // namespace xapid::storage
