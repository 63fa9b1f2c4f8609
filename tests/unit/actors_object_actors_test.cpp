// The host's actors over a real database: an operation in progress is in current_operations and
// refuses conflicting ones at once; an actor that fails is restarted and carries on from the row.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "actors/object_actors.hpp"
#include "actors/vm_rules.hpp"
#include "tests/support/api_error_matchers.hpp"
#include "storage/database.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::actors {
namespace {

using storage::schema;

operation_rules vm_rules() {
  return {[](const void* rec, const std::string& ref, std::string_view op) -> std::optional<api::api_error> {
            api::vm_operations o{};
            if (!api::from_string(op, o)) return api::errors::INTERNAL_ERROR("unknown operation");
            return check_vm_operation(*static_cast<const api::vm*>(rec), ref, o);
          },
          [](const void* rec, const std::string& ref) {
            return api::to_value(allowed_vm_operations(*static_cast<const api::vm*>(rec), ref));
          }};
}

struct actors_test : ::testing::Test {
  testing::temp_dir dir;
  std::unique_ptr<storage::database> db;
  std::size_t vm_cls = schema::get().class_of<api::vm>();
  std::string vm;

  void SetUp() override {
    auto opened = storage::database::open({dir / "db"});
    ASSERT_TRUE(opened.ok());
    db = std::move(opened).value();
    api::vm v;
    v.uuid = db->ids().uuid();
    v.power_state = api::vm_power_state::Running;
    auto t = db->begin();
    vm = t.create(v);
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }

  const api::vm& row() const { return *db->snapshot()->get<api::vm>(vm); }

  // Waits (bounded) until `pred` holds; the actors work on threads of their own.
  template <class P>
  bool eventually(P pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::yield();
    }
    return true;
  }
};

TEST_F(actors_test, an_operation_in_progress_refuses_a_conflicting_one_and_survives_its_actors_crash) {
  host_actors actors(*db);
  actors.add_rules(vm_cls, vm_rules());
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  auto shutdown = std::async(std::launch::async, [&] {
    return actors.run(vm_cls, vm, "clean_shutdown", "OpaqueRef:task-1", [&]() -> api::api_result<wire::value> {
      started.set_value();
      released.wait();
      return wire::value("done");
    });
  });
  started.get_future().wait();
  // While it runs: recorded, and a conflicting operation is refused at once.
  EXPECT_EQ(row().current_operations.at("OpaqueRef:task-1"), api::vm_operations::clean_shutdown);
  EXPECT_EQ(row().allowed_operations,
            (std::vector<api::vm_operations>{api::vm_operations::hard_shutdown, api::vm_operations::hard_reboot}));
  EXPECT_API_ERROR(actors.run(vm_cls, vm, "suspend", "OpaqueRef:task-2", [] { return api::api_result<wire::value>(wire::value("")); }),
                   OTHER_OPERATION_IN_PROGRESS, "VM", vm);

  // The actor fails; the supervisor restarts it, and the new one knows the operation from the row.
  actors.crash(vm_cls, vm);
  ASSERT_TRUE(eventually([&] { return actors.restarts() == 1; }));
  EXPECT_API_ERROR(actors.run(vm_cls, vm, "pause", "OpaqueRef:task-3", [] { return api::api_result<wire::value>(wire::value("")); }),
                   OTHER_OPERATION_IN_PROGRESS, "VM", vm);

  release.set_value();
  auto r = shutdown.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r->as_string(), "done");
  EXPECT_TRUE(row().current_operations.empty());
  // Retired by the restarted actor: everything a running VM allows is allowed again.
  auto allowed = row().allowed_operations;
  EXPECT_NE(std::find(allowed.begin(), allowed.end(), api::vm_operations::suspend), allowed.end());
}

TEST_F(actors_test, a_refused_operation_changes_nothing_and_an_unknown_object_is_a_handle_error) {
  host_actors actors(*db);
  actors.add_rules(vm_cls, vm_rules());
  auto before = db->current_generation();
  bool ran = false;
  EXPECT_API_ERROR(actors.run(vm_cls, vm, "start", "OpaqueRef:t", [&] {
    ran = true;
    return api::api_result<wire::value>(wire::value(""));
  }), VM_BAD_POWER_STATE, vm, "halted", "running");
  EXPECT_FALSE(ran);
  EXPECT_EQ(db->current_generation(), before);
  EXPECT_API_ERROR(actors.run(vm_cls, "OpaqueRef:nope", "start", "OpaqueRef:t",
                              [] { return api::api_result<wire::value>(wire::value("")); }),
                   HANDLE_INVALID, "VM", "OpaqueRef:nope");
}

TEST_F(actors_test, operations_left_by_a_previous_run_are_cleared_at_start) {
  // A pool of two hosts: this VM is resident on the master; another runs on the second host and
  // a third is halted (the master runs its operations). Each host clears only its own.
  const std::size_t current = *schema::get().field_index(vm_cls, "current_operations");
  std::string master, other, elsewhere, halted;
  {
    auto t = db->begin();
    api::host h;
    h.uuid = db->ids().uuid();
    master = t.create(h);
    h.uuid = db->ids().uuid();
    other = t.create(h);
    api::pool p;
    p.master.opaque = master;
    t.create(p);
    t.set(vm_cls, vm, *schema::get().field_index(vm_cls, "resident_on"), wire::value(master));
    api::vm v;
    v.uuid = db->ids().uuid();
    v.power_state = api::vm_power_state::Running;
    v.resident_on.opaque = other;
    elsewhere = t.create(v);
    api::vm h2;
    h2.uuid = db->ids().uuid();
    halted = t.create(h2);
    for (const auto& ref : {vm, elsewhere, halted})
      t.add_to_map(vm_cls, ref, current, "OpaqueRef:old", wire::value("clean_shutdown"));
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }
  auto ops_of = [&](const std::string& ref) { return db->snapshot()->get<api::vm>(ref)->current_operations.size(); };
  host_actors actors(*db);
  actors.add_rules(vm_cls, vm_rules());
  ASSERT_TRUE(actors.reset_operations(vm_cls, master).ok());
  EXPECT_TRUE(row().current_operations.empty());
  EXPECT_FALSE(row().allowed_operations.empty());
  EXPECT_EQ(ops_of(halted), 0u) << "a halted VM's operations are the master's";
  EXPECT_EQ(ops_of(elsewhere), 1u) << "the master cleared an operation the other host is running";
  ASSERT_TRUE(actors.reset_operations(vm_cls, other).ok());
  EXPECT_EQ(ops_of(elsewhere), 0u);
}

// The master's sweep: an operation no live host claims (its host died or restarted in it) is
// cleared; one another host claims, or one this host carries out, is kept; an object changed
// after the snapshot the hosts were asked about is left for the next sweep.
TEST_F(actors_test, operations_no_host_carries_out_are_cleared_by_the_sweep) {
  const std::size_t current = *schema::get().field_index(vm_cls, "current_operations");
  std::string claimed_elsewhere, changed_since, mine;
  {
    auto t = db->begin();
    t.add_to_map(vm_cls, vm, current, "OpaqueRef:dead-hosts", wire::value("clean_shutdown"));
    api::vm v;
    v.uuid = db->ids().uuid();
    claimed_elsewhere = t.create(v);
    t.add_to_map(vm_cls, claimed_elsewhere, current, "OpaqueRef:members", wire::value("start"));
    v.uuid = db->ids().uuid();
    changed_since = t.create(v);
    t.add_to_map(vm_cls, changed_since, current, "OpaqueRef:lost-too", wire::value("start"));
    v.uuid = db->ids().uuid();
    v.power_state = api::vm_power_state::Running;
    mine = t.create(v);
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }
  host_actors actors(*db);
  actors.add_rules(vm_cls, vm_rules());
  // One of this host's own, under way while the sweep runs.
  std::promise<void> release, started;
  std::shared_future<void> released = release.get_future().share();
  auto ours = std::async(std::launch::async, [&] {
    return actors.run(vm_cls, mine, "clean_shutdown", "OpaqueRef:ours", [&]() -> api::api_result<wire::value> {
      started.set_value();
      released.wait();
      return wire::value("done");
    });
  });
  started.get_future().wait();
  EXPECT_EQ(actors.operations_in_flight(), std::vector<std::string>{"OpaqueRef:ours"});
  const auto seen = db->snapshot();
  {
    auto t = db->begin();
    t.set(vm_cls, changed_since, *schema::get().field_index(vm_cls, "name_label"), wire::value("renamed"));
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }
  EXPECT_EQ(actors.forget_orphaned_operations(*seen, {"OpaqueRef:members"}), 1u);
  EXPECT_TRUE(row().current_operations.empty());
  EXPECT_FALSE(row().allowed_operations.empty()) << "allowed again once nothing is under way";
  auto ops = [&](const std::string& ref) { return db->snapshot()->get<api::vm>(ref)->current_operations; };
  EXPECT_EQ(ops(claimed_elsewhere).size(), 1u) << "a member's is kept";
  EXPECT_EQ(ops(mine).size(), 1u) << "this host's own is kept";
  EXPECT_EQ(ops(changed_since).size(), 1u) << "changed since the hosts were asked: next sweep";
  EXPECT_EQ(actors.forget_orphaned_operations(*db->snapshot(), {"OpaqueRef:members"}), 1u);
  EXPECT_TRUE(ops(changed_since).empty());
  release.set_value();
  ASSERT_TRUE(ours.get().ok());
  EXPECT_TRUE(actors.operations_in_flight().empty());
  EXPECT_TRUE(ops(mine).empty());
}

}  // namespace
}  // namespace xapid::actors
