// Which host of a pool carries a call out (gateway/rpc/call_routes) and where a VM may run
// (actors/placement), over a real database of three hosts: a VM's operations go to its host,
// start to the host placement chooses, start_on to the host named, a local SR's operations to
// its host, a dead host's to nobody (HOST_OFFLINE); every routed method is one of the API's.
#include <gtest/gtest.h>

#include <algorithm>

#include "actors/placement.hpp"
#include "gateway/rpc/call_routes.hpp"
#include "storage/database.hpp"
#include "tests/support/api_error_matchers.hpp"
#include "tests/support/temp_dir.hpp"
#include "xapid/api/catalog.hpp"

namespace xapid::gateway {
namespace {

constexpr std::int64_t gib = std::int64_t{1} << 30;

struct call_routes_test : ::testing::Test {
  testing::temp_dir dir;
  std::unique_ptr<storage::database> db;
  std::vector<std::string> hosts;
  std::string running, halted, local_sr, local_vdi, pbd_on_b, network;

  std::string make_host(storage::transaction& t, std::int64_t free, bool live = true) {
    api::host_metrics m;
    m.live = live;
    m.memory_free = free;
    api::host h;
    h.enabled = true;
    h.metrics.opaque = t.create(m);
    return t.create(h);
  }

  void SetUp() override {
    auto opened = storage::database::open({dir / "db"});
    ASSERT_TRUE(opened.ok());
    db = std::move(opened).value();
    auto t = db->begin();
    hosts = {make_host(t, 8 * gib), make_host(t, 12 * gib), make_host(t, 4 * gib)};
    api::pool p;
    p.master.opaque = hosts[0];
    t.create(p);
    api::vm vm;
    vm.memory_dynamic_max = 2 * gib;
    vm.power_state = api::vm_power_state::Running;
    vm.resident_on.opaque = hosts[2];
    running = t.create(vm);
    vm.power_state = api::vm_power_state::Halted;
    vm.resident_on.opaque = api::ref<api::host>{}.opaque;
    halted = t.create(vm);
    api::sr sr;  // host 1's local SR
    local_sr = t.create(sr);
    api::pbd pbd;
    pbd.SR.opaque = local_sr;
    pbd.host.opaque = hosts[1];
    pbd.currently_attached = true;
    pbd_on_b = t.create(pbd);
    api::vdi vdi;
    vdi.SR.opaque = local_sr;
    local_vdi = t.create(vdi);
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }

  std::string route(std::string_view method, wire::array params, const std::string& here) {
    auto r = carried_out_by(*db->snapshot(), method, params, here);
    EXPECT_TRUE(r.ok()) << method;
    return r ? *r : "error";
  }
};

TEST_F(call_routes_test, every_routed_method_is_one_of_the_apis) {
  for (std::string_view m : routed_methods()) EXPECT_NE(api::find_method(m), nullptr) << m;
  EXPECT_TRUE(routed("VM.start_on"));
  EXPECT_FALSE(routed("VM.get_record"));
}

TEST_F(call_routes_test, a_running_vms_operations_go_to_its_host_and_nowhere_when_called_there) {
  EXPECT_EQ(route("VM.hard_shutdown", {wire::value(running)}, hosts[0]), hosts[2]);
  EXPECT_EQ(route("VM.pool_migrate", {wire::value(running), wire::value(hosts[1]), wire::value(wire::structure{})}, hosts[1]),
            hosts[2]);
  EXPECT_EQ(route("VM.hard_shutdown", {wire::value(running)}, hosts[2]), "");  // here
  EXPECT_EQ(route("VM.get_record", {wire::value(running)}, hosts[0]), "");     // not routed
  EXPECT_EQ(route("VM.hard_shutdown", {wire::value("OpaqueRef:nothing")}, hosts[1]), "");  // the handler answers
}

TEST_F(call_routes_test, start_goes_where_placement_chooses_and_start_on_where_it_names) {
  // The most free memory: host 1 (12 GiB); with affinity to host 0, host 0.
  EXPECT_EQ(route("VM.start", {wire::value(halted), wire::value(false), wire::value(false)}, hosts[2]), hosts[1]);
  {
    auto t = db->begin();
    const api::vm* v = db->snapshot()->get<api::vm>(halted);
    api::vm after = *v;
    after.affinity.opaque = hosts[0];
    t.update(halted, *v, after);
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }
  EXPECT_EQ(route("VM.start", {wire::value(halted), wire::value(false), wire::value(false)}, hosts[2]), hosts[0]);
  EXPECT_EQ(route("VM.start_on", {wire::value(halted), wire::value(hosts[2]), wire::value(false), wire::value(false)}, hosts[0]),
            hosts[2]);
}

TEST_F(call_routes_test, a_local_srs_operations_go_to_its_host) {
  EXPECT_EQ(route("VDI.destroy", {wire::value(local_vdi)}, hosts[0]), hosts[1]);
  EXPECT_EQ(route("SR.scan", {wire::value(local_sr)}, hosts[2]), hosts[1]);
  EXPECT_EQ(route("PBD.unplug", {wire::value(pbd_on_b)}, hosts[0]), hosts[1]);
  wire::structure record{{"SR", wire::value(local_sr)}};
  EXPECT_EQ(route("VDI.create", {wire::value(record)}, hosts[0]), hosts[1]);
}

TEST_F(call_routes_test, a_dead_hosts_calls_are_host_offline_and_placement_passes_it_by) {
  {
    auto t = db->begin();
    auto s = db->snapshot();
    const api::host_metrics* m = s->get<api::host_metrics>(s->get<api::host>(hosts[2])->metrics.opaque);
    api::host_metrics dead = *m;
    dead.live = false;
    t.update(s->get<api::host>(hosts[2])->metrics.opaque, *m, dead);
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }
  wire::array params{wire::value(running)};
  EXPECT_API_ERROR(carried_out_by(*db->snapshot(), "VM.hard_shutdown", params, hosts[0]), HOST_OFFLINE, hosts[2]);
  auto s = db->snapshot();
  EXPECT_API_ERROR(actors::can_boot_on(*s, halted, hosts[2]), HOST_OFFLINE, hosts[2]);
  auto possible = actors::possible_hosts(*s, halted);  // in the database's order
  std::ranges::sort(possible);
  std::vector<std::string> live{hosts[0], hosts[1]};
  std::ranges::sort(live);
  EXPECT_EQ(possible, live);
}

TEST_F(call_routes_test, placement_needs_the_disks_sr_and_the_memory_on_the_host) {
  {
    auto t = db->begin();
    api::vbd disk;
    disk.VM.opaque = halted;
    disk.VDI.opaque = local_vdi;
    t.create(disk);
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }
  auto s = db->snapshot();
  EXPECT_API_ERROR(actors::can_boot_on(*s, halted, hosts[0]), VM_REQUIRES_SR, halted, local_sr);
  EXPECT_TRUE(actors::can_boot_on(*s, halted, hosts[1]).ok());
  EXPECT_EQ(actors::possible_hosts(*s, halted), std::vector<std::string>{hosts[1]});
  auto chosen = actors::choose_host(*s, halted);
  ASSERT_TRUE(chosen.ok());
  EXPECT_EQ(*chosen, hosts[1]);
  {
    auto t = db->begin();
    const api::vm* v = s->get<api::vm>(halted);
    api::vm big = *v;
    big.memory_dynamic_max = 16 * gib;
    t.update(halted, *v, big);
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }
  EXPECT_API_ERROR(actors::can_boot_on(*db->snapshot(), halted, hosts[1]), HOST_NOT_ENOUGH_FREE_MEMORY,
                   std::to_string(16 * gib), std::to_string(12 * gib));
}

}  // namespace
}  // namespace xapid::gateway
