// The host's own operations over a real database and real actors: enable/disable, the checks of
// shutdown and reboot, evacuation in a one-host pool, and the host's operations excluding each
// other.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>

#include "actors/host_operations.hpp"
#include "storage/database.hpp"
#include "tests/support/api_error_matchers.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::actors {
namespace {

struct host_operations_test : ::testing::Test {
  testing::temp_dir dir;
  std::unique_ptr<storage::database> db;
  std::unique_ptr<host_actors> actors;
  std::unique_ptr<host_operations> ops;
  std::string host, other, guest;

  void SetUp() override {
    auto opened = storage::database::open({dir / "db"});
    ASSERT_TRUE(opened.ok());
    db = std::move(opened).value();
    auto t = db->begin();
    api::host h;
    h.enabled = true;
    host = t.create(h);
    other = t.create(api::host{});
    api::pool p;
    p.master.opaque = host;
    t.create(p);
    api::vm vm;
    vm.power_state = api::vm_power_state::Running;
    vm.resident_on.opaque = host;
    guest = t.create(vm);
    ASSERT_TRUE(db->commit(std::move(t)).ok());
    actors = std::make_unique<host_actors>(*db);
    ops = std::make_unique<host_operations>(*db, *actors, host);
    ASSERT_TRUE(ops->reset().ok());
  }

  const api::host& row() const { return *db->snapshot()->get<api::host>(host); }
  bool allows(api::host_allowed_operations op) const {
    const auto& a = row().allowed_operations;
    return std::find(a.begin(), a.end(), op) != a.end();
  }
};

TEST_F(host_operations_test, shutdown_needs_a_disabled_host_without_guests) {
  EXPECT_API_ERROR(ops->power_off(host, false, "OpaqueRef:t1"), HOST_NOT_DISABLED);
  ASSERT_TRUE(ops->set_enabled(host, false).ok());
  EXPECT_FALSE(row().enabled);
  EXPECT_FALSE(allows(api::host_allowed_operations::vm_start)) << "a disabled host starts no VMs";
  EXPECT_API_ERROR(ops->power_off(host, true, "OpaqueRef:t2"), HOST_IN_USE, host, "VM", guest);
  auto t = db->begin();
  t.set(storage::schema::get().class_of<api::vm>(), guest,
        *storage::schema::get().field_index(storage::schema::get().class_of<api::vm>(), "power_state"), wire::value("Halted"));
  ASSERT_TRUE(db->commit(std::move(t)).ok());
  EXPECT_TRUE(ops->power_off(host, false, "OpaqueRef:t3").ok());
  EXPECT_TRUE(row().current_operations.empty()) << "the operation was retired";
  ASSERT_TRUE(ops->set_enabled(host, true).ok());
  EXPECT_TRUE(allows(api::host_allowed_operations::vm_start));
}

TEST_F(host_operations_test, a_running_guest_has_nowhere_to_go_in_a_pool_of_one) {
  auto blockers = ops->vms_preventing_evacuation(host);
  ASSERT_TRUE(blockers.ok());
  ASSERT_EQ(blockers->size(), 1u);
  EXPECT_EQ(blockers->begin()->first.opaque, guest);
  EXPECT_EQ(blockers->begin()->second, (std::vector<std::string>{"NO_HOSTS_AVAILABLE", guest}));
  // xapi's encoding of the plan's errors: CODE,params per VM, joined with |.
  EXPECT_API_ERROR(ops->assert_can_evacuate(host), CANNOT_EVACUATE_HOST, "NO_HOSTS_AVAILABLE," + guest);
  EXPECT_API_ERROR(ops->evacuate(host, "OpaqueRef:t"), CANNOT_EVACUATE_HOST, "NO_HOSTS_AVAILABLE," + guest);
}

TEST_F(host_operations_test, another_host_or_none_is_refused) {
  EXPECT_API_ERROR(ops->set_enabled(other, false), HOST_OFFLINE, other);
  EXPECT_API_ERROR(ops->evacuate("OpaqueRef:none", "OpaqueRef:t"), HANDLE_INVALID, "host", "OpaqueRef:none");
}

// Shutdown, reboot and evacuate are the host actor's operations: while one runs, another is
// refused at once.
TEST_F(host_operations_test, the_hosts_operations_exclude_each_other) {
  const std::size_t host_cls = storage::schema::get().class_of<api::host>();
  std::promise<void> inside, release;
  auto running = std::async(std::launch::async, [&] {
    return actors->run(host_cls, host, "evacuate", "OpaqueRef:long", [&]() -> api::api_result<wire::value> {
      inside.set_value();
      release.get_future().wait();
      return wire::value("");
    });
  });
  inside.get_future().wait();
  ASSERT_TRUE(ops->set_enabled(host, false).ok());
  EXPECT_API_ERROR(ops->power_off(host, false, "OpaqueRef:t"), OTHER_OPERATION_IN_PROGRESS, "host", host);
  release.set_value();
  EXPECT_TRUE(running.get().ok());
}

}  // namespace
}  // namespace xapid::actors
