// The VM lifecycle on a real database and the simulated host, set up by a real first boot:
// every transition of the seed's Figure 1.1 and its refusals, memory running out under 500
// concurrent starts, guests that stop on their own, disks through snapshot and revert, and a
// restart of everything while VMs run.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <thread>

#include "actors/first_boot.hpp"
#include "actors/vm_lifecycle.hpp"
#include "tests/support/api_error_matchers.hpp"
#include "sm/qemu_img.hpp"
#include "tests/support/qemu_io.hpp"
#include "tests/support/temp_dir.hpp"
#include "xen/sim_backend.hpp"

namespace xapid::actors {
namespace {

using ps = api::vm_power_state;
using storage::schema;
constexpr std::int64_t mib = std::int64_t{1} << 20;

struct lifecycle_test : ::testing::Test {
  testing::temp_dir dir;
  real_clock clk;
  std::unique_ptr<storage::database> db;
  std::unique_ptr<xen::sim_backend> hv;
  std::unique_ptr<host_actors> actors;
  std::unique_ptr<storage_repos> repos;
  std::unique_ptr<vm_lifecycle> vms;
  std::string host;
  std::int64_t host_memory = std::int64_t{8} << 30;  // 1 GiB of it is the control domain's
  double hang_probability = 0;
  double crash_probability = 0;
  int task = 0;

  void SetUp() override { open(); }

  // Opens (or reopens) the database, the simulated host and the lifecycle, as the daemon does.
  void open() {
    auto opened = storage::database::open({dir / "db"});
    ASSERT_TRUE(opened.ok()) << opened.error();
    db = std::move(opened).value();
    xen::sim_options o;
    o.state_file = dir / "sim-state";
    o.memory_total_bytes = host_memory;
    o.hang_probability = hang_probability;
    o.crash_probability = crash_probability;
    auto sim = xen::sim_backend::open(o);
    ASSERT_TRUE(sim.ok());
    hv = std::move(sim).value();
    auto id = actors::ensure_pool_and_host(*db, dir.path(), "127.0.0.1", hv->host());
    ASSERT_TRUE(id.ok());
    host = id->host;
    actors = std::make_unique<host_actors>(*db);
    repos = std::make_unique<storage_repos>(*db, *actors, clk, host, dir.path());
    ASSERT_TRUE(repos->start().ok());
    vms = std::make_unique<vm_lifecycle>(*db, *hv, *actors, *repos, clk, host);
    ASSERT_TRUE(vms->reconcile().ok());
  }
  void close() {
    vms.reset();
    repos.reset();
    actors.reset();
    hv.reset();
    db.reset();
  }

  std::string key() { return "OpaqueRef:task-" + std::to_string(++task); }
  api::vm vm(const std::string& ref) const { return *db->snapshot()->get<api::vm>(ref); }
  ps power(const std::string& ref) const { return vm(ref).power_state; }

  std::string template_named(const std::string& name) const {
    auto refs = db->snapshot()->refs_by_name_label(schema::get().class_of<api::vm>(), name);
    return refs.empty() ? std::string() : refs.front();
  }

  // The install of the SDK guide: clone a template, provision it.
  std::string install(const std::string& name) {
    auto vm_ref = vms->clone(template_named("Debian Bookworm 12"), name, key());
    EXPECT_TRUE(vm_ref.ok());
    EXPECT_TRUE(vms->provision(*vm_ref, key()).ok());
    return *vm_ref;
  }

  // A running VM on a simulator restarted so that every guest ignores clean shutdowns.
  std::string running_vm_whose_guest_ignores_shutdowns() {
    close();
    hang_probability = 1;
    open();
    std::string v = small_vm(128 * mib);
    EXPECT_TRUE(vms->start(v, false, false, key()).ok());
    return v;
  }

  // A VM without disks of `memory` bytes, written straight into the database.
  std::string small_vm(std::int64_t memory) {
    api::vm v;
    v.uuid = db->ids().uuid();
    v.name_label = "small";
    v.power_state = ps::Halted;
    v.memory_static_min = v.memory_dynamic_min = v.memory_dynamic_max = v.memory_static_max = memory;
    v.VCPUs_max = v.VCPUs_at_startup = 1;
    v.domid = -1;
    auto t = db->begin();
    std::string ref = t.create(v);
    EXPECT_TRUE(db->commit(std::move(t)).ok());
    return ref;
  }

  std::string disk_path(const std::string& vm_ref) const {
    auto s = db->snapshot();
    auto vbds = s->refs_where<api::vbd>("VM", vm_ref);
    if (vbds.empty()) return {};
    const api::vdi* vdi = s->get<api::vdi>(s->get<api::vbd>(vbds.front())->VDI.opaque);
    return dir.path() + "/sr/" + s->get<api::sr>(vdi->SR.opaque)->uuid + "/" + vdi->location;
  }
};

using testing::reads_pattern;
using testing::write_pattern;

TEST_F(lifecycle_test, the_install_and_start_walk_through) {
  std::string tmpl = template_named("Debian Bookworm 12");
  ASSERT_FALSE(tmpl.empty());
  EXPECT_API_ERROR(vms->start(tmpl, false, false, key()), VM_IS_TEMPLATE, tmpl);
  std::string v = install("my first VM");
  EXPECT_FALSE(vm(v).is_a_template);
  EXPECT_EQ(vm(v).VBDs.size(), 1u);
  EXPECT_FALSE(disk_path(v).empty());
  // Thin: the disk's size, but almost no space.
  EXPECT_EQ(db->snapshot()->get<api::vdi>(db->snapshot()->get<api::vbd>(vm(v).VBDs.front().opaque)->VDI.opaque)->virtual_size,
            10737418240);
  EXPECT_LT(std::filesystem::file_size(disk_path(v)), 1u << 20);

  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  EXPECT_EQ(power(v), ps::Running);
  EXPECT_EQ(vm(v).resident_on.opaque, host);
  EXPECT_GT(vm(v).domid, 0);
  EXPECT_TRUE(db->snapshot()->get<api::vbd>(vm(v).VBDs.front().opaque)->currently_attached);
  ASSERT_EQ(vm(v).consoles.size(), 1u);
  EXPECT_EQ(db->snapshot()->get<api::console>(vm(v).consoles.front().opaque)->protocol, api::console_protocol::rfb);
  ASSERT_TRUE(vms->suspend(v, key()).ok());
  EXPECT_EQ(power(v), ps::Suspended);
  EXPECT_FALSE(vm(v).suspend_VDI.is_null());
  ASSERT_TRUE(vms->resume(v, false, false, key()).ok());
  EXPECT_EQ(power(v), ps::Running);
  EXPECT_TRUE(vm(v).suspend_VDI.is_null());
  ASSERT_TRUE(vms->shutdown(v, key()).ok());
  EXPECT_EQ(power(v), ps::Halted);
  EXPECT_EQ(vm(v).domid, -1);
  EXPECT_TRUE(vm(v).current_operations.empty());
}

TEST_F(lifecycle_test, every_transition_of_figure_1_1) {
  std::string v = install("transitions");
  auto expect = [&](api::api_result<void> r, ps state) {
    ASSERT_TRUE(r.ok()) << r.error().description().at(0);
    EXPECT_EQ(power(v), state);
  };
  expect(vms->start(v, true, false, key()), ps::Paused);  // start paused
  expect(vms->unpause(v, key()), ps::Running);
  expect(vms->pause(v, key()), ps::Paused);
  expect(vms->hard_reboot(v, key()), ps::Running);  // from paused
  auto domid = vm(v).domid;
  expect(vms->clean_reboot(v, key()), ps::Running);
  EXPECT_NE(vm(v).domid, domid);  // a reboot is a new domain
  expect(vms->pause(v, key()), ps::Paused);
  expect(vms->hard_shutdown(v, key()), ps::Halted);  // from paused
  expect(vms->start(v, false, false, key()), ps::Running);
  expect(vms->suspend(v, key()), ps::Suspended);
  expect(vms->hard_shutdown(v, key()), ps::Halted);  // from suspended: the saved state goes
  expect(vms->start_on(v, host, false, false, key()), ps::Running);
  expect(vms->clean_shutdown(v, key()), ps::Halted);
  expect(vms->start(v, false, false, key()), ps::Running);
  expect(vms->hard_shutdown(v, key()), ps::Halted);
  // Nothing left behind: no domain, no suspend image.
  EXPECT_TRUE(hv->list().empty());
  std::size_t suspend_vdis = 0;
  db->snapshot()->for_each(schema::get().class_of<api::vdi>(), [&](const std::string&, const storage::row& r) {
    suspend_vdis += static_cast<const api::vdi*>(r.record.get())->type == api::vdi_type::suspend;
    return true;
  });
  EXPECT_EQ(suspend_vdis, 0u);
}

TEST_F(lifecycle_test, every_refusal_of_figure_1_1) {
  std::string v = install("refusals");
  EXPECT_API_ERROR(vms->pause(v, key()), VM_BAD_POWER_STATE, v, "running", "halted");
  EXPECT_API_ERROR(vms->unpause(v, key()), VM_BAD_POWER_STATE, v, "paused", "halted");
  EXPECT_API_ERROR(vms->clean_shutdown(v, key()), VM_BAD_POWER_STATE, v, "running", "halted");
  EXPECT_API_ERROR(vms->hard_shutdown(v, key()), VM_BAD_POWER_STATE, v, "paused, suspended, running", "halted");
  EXPECT_API_ERROR(vms->clean_reboot(v, key()), VM_BAD_POWER_STATE, v, "running", "halted");
  EXPECT_API_ERROR(vms->suspend(v, key()), VM_BAD_POWER_STATE, v, "running", "halted");
  EXPECT_API_ERROR(vms->resume(v, false, false, key()), VM_BAD_POWER_STATE, v, "suspended", "halted");
  EXPECT_API_ERROR(vms->provision(v, key()), PROVISION_ONLY_ALLOWED_ON_TEMPLATE);
  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  EXPECT_API_ERROR(vms->start(v, false, false, key()), VM_BAD_POWER_STATE, v, "halted", "running");
  EXPECT_API_ERROR(vms->destroy(v, key()), VM_BAD_POWER_STATE, v, "halted, suspended", "running");
  EXPECT_API_ERROR(vms->clone(v, "c", key()), VM_BAD_POWER_STATE, v, "halted", "running");
  EXPECT_API_ERROR(vms->resume(v, false, false, key()), VM_BAD_POWER_STATE, v, "suspended", "running");
  EXPECT_API_ERROR(vms->unpause(v, key()), VM_BAD_POWER_STATE, v, "paused", "running");
  ASSERT_TRUE(vms->suspend(v, key()).ok());
  EXPECT_API_ERROR(vms->start(v, false, false, key()), VM_BAD_POWER_STATE, v, "halted", "suspended");
  EXPECT_API_ERROR(vms->pause(v, key()), VM_BAD_POWER_STATE, v, "running", "suspended");
  EXPECT_API_ERROR(vms->hard_reboot(v, key()), VM_BAD_POWER_STATE, v, "paused, running", "suspended");
  // Templates, unknown objects, a disabled host.
  std::string tmpl = template_named("Debian Bookworm 12");
  EXPECT_API_ERROR(vms->destroy(tmpl, key()), VM_IS_TEMPLATE, tmpl);
  EXPECT_API_ERROR(vms->start("OpaqueRef:nope", false, false, key()), HANDLE_INVALID, "VM", "OpaqueRef:nope");
  ASSERT_TRUE(vms->destroy(v, key()).ok());  // suspended VMs may be destroyed
  std::string w = install("on a disabled host");
  {
    auto s = db->snapshot();
    api::host h = *s->get<api::host>(host);
    api::host off = h;
    off.enabled = false;
    auto t = db->begin();
    t.update(host, h, off);
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }
  EXPECT_API_ERROR(vms->start(w, false, false, key()), HOST_DISABLED, host);
  EXPECT_EQ(power(w), ps::Halted);
}

TEST_F(lifecycle_test, five_hundred_concurrent_starts_fill_memory_exactly) {
  // 7 GiB free after the control domain: 112 VMs of 64 MiB fit, the other 388 are refused.
  std::vector<std::string> refs;
  for (int i = 0; i < 500; ++i) refs.push_back(small_vm(64 * mib));
  std::atomic<int> started{0}, refused{0}, other{0};
  std::vector<std::thread> clients;
  for (const auto& r : refs)
    clients.emplace_back([&, r] {
      auto out = vms->start(r, false, false, "OpaqueRef:start-" + r);
      if (out) ++started;
      else if (out.error().code == api::error_code::HOST_NOT_ENOUGH_FREE_MEMORY) ++refused;
      else ++other;
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(started.load(), 112);
  EXPECT_EQ(refused.load(), 388);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(hv->list().size(), 112u);
  EXPECT_EQ(hv->host().memory_free_bytes, 0);
  int running = 0;
  for (const auto& r : refs) running += power(r) == ps::Running;
  EXPECT_EQ(running, 112);
}

TEST_F(lifecycle_test, guests_that_stop_on_their_own_follow_their_actions) {
  struct row {
    api::on_crash_behaviour action;
    ps after;
    bool new_domain;
  };
  const row rows[] = {{api::on_crash_behaviour::destroy, ps::Halted, false},
                      {api::on_crash_behaviour::coredump_and_destroy, ps::Halted, false},
                      {api::on_crash_behaviour::restart, ps::Running, true},
                      {api::on_crash_behaviour::coredump_and_restart, ps::Running, true},
                      {api::on_crash_behaviour::rename_restart, ps::Running, true},
                      {api::on_crash_behaviour::preserve, ps::Paused, false}};
  for (const auto& r : rows) {
    std::string v = small_vm(128 * mib);
    {
      auto s = db->snapshot();
      api::vm before = *s->get<api::vm>(v);
      api::vm after = before;
      after.actions_after_crash = r.action;
      auto t = db->begin();
      t.update(v, before, after);
      ASSERT_TRUE(db->commit(std::move(t)).ok());
    }
    ASSERT_TRUE(vms->start(v, false, false, key()).ok());
    auto domid = vm(v).domid;
    ASSERT_TRUE(hv->guest_stops(static_cast<int>(domid), xen::shutdown_reason::crash).ok());
    vms->observe();
    EXPECT_EQ(power(v), r.after) << api::to_string(r.action);
    if (r.new_domain) {
      EXPECT_NE(vm(v).domid, domid) << api::to_string(r.action);
    }
    vms->observe();  // a preserved crash stays as it is
    EXPECT_EQ(power(v), r.after) << api::to_string(r.action);
    ASSERT_TRUE(vms->hard_shutdown(v, key()).ok() || r.after == ps::Halted);
  }
  // A guest that powers itself off halts (actions_after_shutdown = destroy); one that reboots
  // comes back in a new domain.
  std::string v = small_vm(128 * mib);
  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  auto domid = vm(v).domid;
  ASSERT_TRUE(hv->guest_stops(static_cast<int>(domid), xen::shutdown_reason::reboot).ok());
  vms->observe();
  EXPECT_EQ(power(v), ps::Halted);  // actions_after_reboot of a bare VM is destroy
  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  ASSERT_TRUE(hv->guest_stops(static_cast<int>(vm(v).domid), xen::shutdown_reason::poweroff).ok());
  vms->observe();
  EXPECT_EQ(power(v), ps::Halted);
}

TEST_F(lifecycle_test, the_guest_agent_reports_once_the_guest_runs) {
  std::string v = install("agent");
  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  EXPECT_TRUE(vm(v).guest_metrics.is_null());
  vms->observe();
  const api::vm_guest_metrics* gm = db->snapshot()->get<api::vm_guest_metrics>(vm(v).guest_metrics.opaque);
  ASSERT_NE(gm, nullptr);
  EXPECT_EQ(gm->os_version.at("distro"), "debian");
  EXPECT_EQ(gm->networks.count("0/ip"), 1u);
  ASSERT_TRUE(vms->clean_shutdown(v, key()).ok());
  EXPECT_TRUE(vm(v).guest_metrics.is_null());
}

TEST_F(lifecycle_test, snapshot_clone_copy_and_revert_carry_the_disks_bytes) {
  std::string v = install("disks");
  const int before = 0x61, after = 0x62;
  write_pattern(disk_path(v), before, 1 << 20);
  auto snap = vms->snapshot(v, "snap", key());
  ASSERT_TRUE(snap.ok());
  EXPECT_TRUE(vm(*snap).is_a_snapshot);
  EXPECT_EQ(vm(*snap).snapshot_of.opaque, v);
  EXPECT_TRUE(reads_pattern(disk_path(*snap), before, 1 << 20));
  write_pattern(disk_path(v), after, 1 << 20);
  auto clone = vms->clone(v, "clone", key());
  ASSERT_TRUE(clone.ok());
  EXPECT_NE(disk_path(*clone), disk_path(v));
  EXPECT_TRUE(reads_pattern(disk_path(*clone), after, 1 << 20));
  auto copy = vms->copy(v, "copy", "OpaqueRef:NULL", key());
  ASSERT_TRUE(copy.ok());
  EXPECT_TRUE(reads_pattern(disk_path(*copy), after, 1 << 20));

  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  ASSERT_TRUE(vms->revert(*snap, key()).ok());  // the running VM stops and becomes the snapshot
  EXPECT_EQ(power(v), ps::Halted);
  EXPECT_TRUE(reads_pattern(disk_path(v), before, 1 << 20));
  EXPECT_EQ(vm(v).parent.opaque, *snap);
  // Destroying a VM keeps its disks (xapi's rule): the VDI outlives it.
  std::string clone_disk = disk_path(*clone);
  ASSERT_TRUE(vms->destroy(*clone, key()).ok());
  EXPECT_TRUE(std::filesystem::exists(clone_disk));
  EXPECT_EQ(db->snapshot()->get<api::vm>(*clone), nullptr);
}

TEST_F(lifecycle_test, running_vms_survive_a_restart_and_vanished_domains_halt) {
  std::string keep = small_vm(128 * mib);
  std::string lose = small_vm(128 * mib);
  ASSERT_TRUE(vms->start(keep, false, false, key()).ok());
  ASSERT_TRUE(vms->start(lose, false, false, key()).ok());
  auto domid = vm(keep).domid;
  ASSERT_TRUE(hv->destroy(static_cast<int>(vm(lose).domid)).ok());  // gone behind xapid's back
  // A domain built for a halted VM whose record was never updated (a crash in between), and
  // one no VM knows: the first is adopted, the second left alone — no guest is killed.
  std::string orphan = small_vm(128 * mib);
  xen::domain_config c;
  c.uuid = vm(orphan).uuid;
  c.memory_max_bytes = c.memory_target_bytes = 128 * mib;
  auto adopted = hv->create(c);
  ASSERT_TRUE(adopted.ok());
  ASSERT_TRUE(hv->unpause(*adopted).ok());
  c.uuid = "00000000-0000-0000-0000-00000000beef";
  auto stranger = hv->create(c);
  ASSERT_TRUE(stranger.ok());
  close();
  open();
  EXPECT_EQ(power(orphan), ps::Running);
  EXPECT_EQ(vm(orphan).domid, *adopted);
  EXPECT_EQ(hv->list().size(), 3u);
  EXPECT_EQ(power(keep), ps::Running);
  EXPECT_EQ(vm(keep).domid, domid);
  EXPECT_EQ(power(lose), ps::Halted);
  ASSERT_TRUE(vms->clean_shutdown(keep, key()).ok());
  ASSERT_TRUE(vms->hard_shutdown(orphan, key()).ok());
}

TEST_F(lifecycle_test, devices_plug_and_unplug_on_a_running_vm_only) {
  std::string v = install("devices");
  std::string vbd = vm(v).VBDs.front().opaque;
  EXPECT_API_ERROR(vms->vbd_plug(vbd, key()), VM_BAD_POWER_STATE, v, "running, paused", "halted");
  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  EXPECT_API_ERROR(vms->vbd_plug(vbd, key()), DEVICE_ALREADY_ATTACHED, vbd);
  ASSERT_TRUE(vms->vbd_unplug(vbd, false, key()).ok());
  EXPECT_FALSE(db->snapshot()->get<api::vbd>(vbd)->currently_attached);
  EXPECT_API_ERROR(vms->vbd_unplug(vbd, false, key()), DEVICE_ALREADY_DETACHED, vbd);
  ASSERT_TRUE(vms->vbd_plug(vbd, key()).ok());
  EXPECT_API_ERROR(vms->vbd_eject(vbd, key()), VBD_NOT_REMOVABLE_MEDIA, vbd);
  // A PV guest has 16 disk slots; its provisioned disk holds "0".
  std::vector<std::string> free_slots;
  for (int i = 1; i < 16; ++i) free_slots.push_back(std::to_string(i));
  EXPECT_EQ(*vms->allowed_VBD_devices(v), free_slots);
  EXPECT_EQ(vms->allowed_VIF_devices(v)->size(), 7u);
  ASSERT_TRUE(vms->clean_shutdown(v, key()).ok());
  EXPECT_EQ(*vms->possible_hosts(v), (std::vector<std::string>{host}));
}

TEST_F(lifecycle_test, a_guest_that_ignores_a_clean_shutdown_is_ended_by_a_hard_one) {
  std::string v = running_vm_whose_guest_ignores_shutdowns();
  auto clean = std::async(std::launch::async, [&] { return vms->clean_shutdown(v, "OpaqueRef:clean"); });
  // Wait (bounded) until the guest is ignoring the request.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (hv->dmesg().find("ignores the shutdown request") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::yield();
  }
  EXPECT_EQ(vm(v).current_operations.at("OpaqueRef:clean"), api::vm_operations::clean_shutdown);
  // What an operator does: a hard shutdown, which xapi's rules allow beside the stuck one.
  ASSERT_TRUE(vms->hard_shutdown(v, key()).ok());
  EXPECT_API_ERROR(clean.get(), VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT);
  EXPECT_EQ(power(v), ps::Halted);
  EXPECT_TRUE(vm(v).current_operations.empty());
}

TEST_F(lifecycle_test, a_cancelled_wait_for_a_guest_leaves_it_running_and_the_vm_free) {
  std::string v = running_vm_whose_guest_ignores_shutdowns();
  for (bool reboot : {false, true}) {
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    const std::string task = reboot ? "OpaqueRef:reboot-task" : "OpaqueRef:shutdown-task";
    auto clean = std::async(std::launch::async, [&] {
      return reboot ? vms->clean_reboot(v, task, cancel) : vms->shutdown(v, task, cancel);
    });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (vm(v).current_operations.count(task) == 0) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    *cancel = true;
    // Neither a hard shutdown after the clean one (VM.shutdown) nor a new boot (clean_reboot).
    EXPECT_API_ERROR(clean.get(), TASK_CANCELLED, task);
    EXPECT_EQ(power(v), ps::Running);
    EXPECT_TRUE(vm(v).current_operations.empty());
  }
  ASSERT_TRUE(vms->hard_shutdown(v, key()).ok());
}

TEST_F(lifecycle_test, an_injected_crash_is_noticed_and_handled) {
  close();
  crash_probability = 1;
  open();
  std::string v = small_vm(128 * mib);  // actions_after_crash: destroy
  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  hv->tick();
  EXPECT_NE(hv->dmesg().find("crashed (injected fault)"), std::string::npos);
  vms->observe();
  EXPECT_EQ(power(v), ps::Halted);
  EXPECT_TRUE(hv->list().empty());
}

TEST_F(lifecycle_test, settings_keep_memory_and_vcpus_in_order) {
  std::string v = small_vm(256 * mib);
  using op = api::vm_operations;
  auto set = [&](op o, auto edit) { return vms->change_settings(v, o, edit, key()); };
  EXPECT_API_ERROR(set(op::changing_memory_limits, [](api::vm& x) -> api::status {
                     x.memory_dynamic_min = 512 * mib;  // above dynamic_max
                     return {};
                   }),
                   INVALID_VALUE, "memory_dynamic_max", std::to_string(256 * mib));
  EXPECT_API_ERROR(set(op::changing_VCPUs, [](api::vm& x) -> api::status {
                     x.VCPUs_at_startup = 2;  // above VCPUs_max
                     return {};
                   }),
                   INVALID_VALUE, "VCPUs_at_startup", "2");
  ASSERT_TRUE(set(op::changing_static_range, [](api::vm& x) -> api::status {
                x.memory_static_max = 1024 * mib;
                return {};
              }).ok());
  EXPECT_EQ(vm(v).memory_static_max, 1024 * mib);
  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  // Running: the static range is fixed, the dynamic range moves the balloon.
  EXPECT_API_ERROR(set(op::changing_static_range, [](api::vm&) -> api::status { return {}; }), VM_BAD_POWER_STATE, v,
                   "halted", "running");
  ASSERT_TRUE(set(op::changing_dynamic_range, [](api::vm& x) -> api::status {
                x.memory_dynamic_max = 512 * mib;
                return {};
              }).ok());
  EXPECT_EQ(hv->list().front().memory_bytes, 512 * mib);
  EXPECT_EQ(vm(v).memory_target, 512 * mib);
  ASSERT_TRUE(vms->hard_shutdown(v, key()).ok());
}

TEST_F(lifecycle_test, a_checkpoint_keeps_memory_and_revert_brings_it_back) {
  std::string v = install("checkpointed");
  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  write_pattern(disk_path(v), 0x71, 4096);
  auto cp = vms->checkpoint(v, "cp", key());
  ASSERT_TRUE(cp.ok()) << cp.error().description().at(0);
  EXPECT_EQ(power(v), ps::Running);  // the VM runs on
  EXPECT_EQ(power(*cp), ps::Suspended);
  EXPECT_TRUE(vm(*cp).is_a_snapshot);
  // The disk was in use: copied whole, the running guest's file left where it was.
  EXPECT_TRUE(sm::image_info_of(disk_path(*cp))->backing_file.empty());
  EXPECT_TRUE(sm::image_info_of(disk_path(v))->backing_file.empty());
  EXPECT_NE(db->snapshot()->get<api::vdi>(vm(*cp).suspend_VDI.opaque), nullptr);
  write_pattern(disk_path(v), 0x72, 4096);
  ASSERT_TRUE(vms->revert(*cp, key()).ok());
  EXPECT_EQ(power(v), ps::Suspended);
  EXPECT_TRUE(reads_pattern(disk_path(v), 0x71, 4096));
  ASSERT_TRUE(vms->resume(v, false, false, key()).ok());
  EXPECT_EQ(power(v), ps::Running);
  EXPECT_API_ERROR(vms->checkpoint(*cp, "again", key()), OPERATION_NOT_ALLOWED, "This operation is not allowed on a snapshot");
  ASSERT_TRUE(vms->hard_shutdown(v, key()).ok());
}

TEST_F(lifecycle_test, power_state_reset_only_when_the_domain_is_gone) {
  std::string v = small_vm(128 * mib);
  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  auto refused = vms->power_state_reset(v, key());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, api::error_code::OPERATION_NOT_ALLOWED);
  EXPECT_EQ(power(v), ps::Running);
  ASSERT_TRUE(hv->destroy(static_cast<int>(vm(v).domid)).ok());
  ASSERT_TRUE(vms->power_state_reset(v, key()).ok());
  EXPECT_EQ(power(v), ps::Halted);
}

TEST_F(lifecycle_test, an_attached_device_is_not_destroyed) {
  std::string v = install("attached");
  std::string vbd = vm(v).VBDs.front().opaque;
  ASSERT_TRUE(vms->start(v, false, false, key()).ok());
  EXPECT_API_ERROR(vms->destroy_vbd(vbd), OPERATION_NOT_ALLOWED, "VBD is attached to a running VM: unplug it first");
  ASSERT_TRUE(vms->vbd_unplug(vbd, false, key()).ok());
  ASSERT_TRUE(vms->destroy_vbd(vbd).ok());
  EXPECT_TRUE(vm(v).VBDs.empty());
  ASSERT_TRUE(vms->hard_shutdown(v, key()).ok());
}

}  // namespace
}  // namespace xapid::actors
