// pool.join on the master, below the protocol: the checks a joining host must pass
// (join_failures), the rows it brings into the pool database (join_objects) and those that leave
// with a host (departure_objects), on two real hosts' databases as their first boot makes them,
// each on RocksDB in its own directory.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>

#include "actors/first_boot.hpp"
#include "pool/departure_objects.hpp"
#include "pool/join_objects.hpp"
#include "pool/join_rules.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::pool {
namespace {

using storage::schema;
using ps = api::vm_power_state;

const xen::host_info hardware{4, "GenuineIntel", "Xeon", 2000, std::int64_t{8} << 30, std::int64_t{7} << 30, "4.17"};

// One host's database after its first boot: a pool of one with its host, control domain,
// management network and PIF, local SR and the default templates.
struct host_db {
  host_db(std::uint64_t seed, const std::string& address) : ids(seed) {
    auto opened = storage::database::open({.path = dir / "db", .ids = &ids});
    EXPECT_TRUE(opened.ok()) << (opened.ok() ? "" : opened.error());
    db = std::move(opened).value();
    auto id = actors::ensure_pool_and_host(*db, dir.path(), address, hardware);
    EXPECT_TRUE(id.ok());
    host = id->host;
    pool = id->pool;
  }
  std::shared_ptr<const storage::state> now() const { return db->snapshot(); }

  // Commits what `build` puts in one transaction.
  void change(const std::function<void(storage::transaction&, const storage::state&)>& build) {
    auto t = db->begin();
    build(t, *now());
    auto r = db->commit(std::move(t));
    ASSERT_TRUE(r.ok()) << r.error().description().at(0);
  }
  template <class R>
  void edit(const std::string& ref, const std::function<void(R&)>& how) {
    change([&](storage::transaction& t, const storage::state& s) {
      R after = *s.get<R>(ref);
      how(after);
      t.update(ref, *s.get<R>(ref), after);
    });
  }
  template <class R>
  std::string create(const R& rec) {
    std::string ref;
    change([&](storage::transaction& t, const storage::state&) { ref = t.create(rec); });
    return ref;
  }
  std::string management_pif() const {
    auto s = now();
    for (const auto& pif : s->refs_where<api::pif>("host", host))
      if (s->get<api::pif>(pif)->management) return pif;
    return "";
  }

  testing::temp_dir dir;
  id_source ids;
  std::unique_ptr<storage::database> db;
  std::string host, pool;
};

// The failures as "CODE(param, ...)", in order.
std::vector<std::string> named(const std::vector<api::api_error>& failures) {
  std::vector<std::string> out;
  for (const auto& e : failures) {
    std::string s(api::to_string(e.code));
    for (std::size_t i = 0; i < e.params.size(); ++i) s += (i ? ", " : "(") + e.params[i];
    out.push_back(e.params.empty() ? s : s + ")");
  }
  return out;
}

struct join_test : ::testing::Test {
  host_db master{1, "127.0.0.2"};
  host_db joiner{2, "127.0.0.3"};

  std::vector<std::string> failures(bool force = false) {
    return named(join_failures(*joiner.now(), *master.now(), force));
  }
};

TEST_F(join_test, two_fresh_hosts_pass_every_check) {
  EXPECT_EQ(failures(), std::vector<std::string>{});
  EXPECT_EQ(failures(true), std::vector<std::string>{});
}

TEST_F(join_test, a_host_without_a_management_interface_is_still_booting) {
  joiner.edit<api::pif>(joiner.management_pif(), [](api::pif& p) { p.management = false; });
  EXPECT_EQ(failures(), std::vector<std::string>{"HOST_STILL_BOOTING"});
}

TEST_F(join_test, a_database_without_its_host_is_still_booting_and_nothing_else) {
  testing::temp_dir empty_dir;
  auto empty = std::move(storage::database::open({.path = empty_dir / "db"})).value();
  EXPECT_EQ(named(join_failures(*empty->snapshot(), *master.now(), false)), std::vector<std::string>{"HOST_STILL_BOOTING"});
  auto copied = join_objects(*empty->snapshot(), *master.now());
  ASSERT_FALSE(copied.ok());
  EXPECT_EQ(copied.error(), api::errors::HOST_STILL_BOOTING());
}

TEST_F(join_test, ha_enabled_on_either_side_refuses) {
  joiner.edit<api::pool>(joiner.pool, [](api::pool& p) { p.ha_enabled = true; });
  EXPECT_EQ(failures(), std::vector<std::string>{"HA_IS_ENABLED"});
  joiner.edit<api::pool>(joiner.pool, [](api::pool& p) { p.ha_enabled = false; });
  master.edit<api::pool>(master.pool, [](api::pool& p) { p.ha_enabled = true; });
  EXPECT_EQ(failures(), std::vector<std::string>{"HA_IS_ENABLED"});
}

TEST_F(join_test, a_host_cannot_join_its_own_pool) {
  EXPECT_EQ(named(join_failures(*master.now(), *master.now(), false)),
            std::vector<std::string>{"OPERATION_NOT_ALLOWED(Host cannot become slave of itself)"});
}

TEST_F(join_test, a_member_cannot_join_again) {
  auto ops = join_objects(*joiner.now(), *master.now());
  ASSERT_TRUE(ops.ok()) << ops.error().description().at(0);
  master.change([&](storage::transaction& t, const storage::state&) { t.ops() = std::move(*ops); });
  EXPECT_EQ(failures(), std::vector<std::string>{"OPERATION_NOT_ALLOWED(Host is already part of a pool)"});
}

TEST_F(join_test, a_host_that_knows_other_hosts_cannot_join) {
  api::host other;
  other.name_label = "another";
  joiner.create(other);
  EXPECT_EQ(failures(), std::vector<std::string>{"JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS"});
}

TEST_F(join_test, a_running_paused_or_suspended_vm_refuses_but_a_checkpoint_does_not) {
  api::vm checkpoint;
  checkpoint.is_a_snapshot = checkpoint.is_a_template = true;
  checkpoint.power_state = ps::Suspended;
  joiner.create(checkpoint);
  EXPECT_EQ(failures(), std::vector<std::string>{});
  api::vm vm;
  vm.name_label = "guest";
  const std::string ref = joiner.create(vm);
  for (ps state : {ps::Running, ps::Paused, ps::Suspended}) {
    joiner.edit<api::vm>(ref, [&](api::vm& v) { v.power_state = state; });
    EXPECT_EQ(failures(true), std::vector<std::string>{"JOINING_HOST_CANNOT_HAVE_RUNNING_OR_SUSPENDED_VMS"})
        << api::to_string(state);
  }
}

TEST_F(join_test, a_vm_with_an_operation_in_progress_refuses) {
  api::vm vm;
  vm.current_operations = {{"OpaqueRef:task", api::vm_operations::export_}};
  joiner.create(vm);
  EXPECT_EQ(failures(), std::vector<std::string>{"JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS"});
}

TEST_F(join_test, another_product_version_refuses_even_when_forced) {
  joiner.edit<api::host>(joiner.host, [](api::host& h) { h.software_version["product_version"] = "0.2.0"; });
  EXPECT_EQ(failures(), (std::vector<std::string>{"POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION",
                                                  "HOSTS_NOT_HOMOGENEOUS(software version differs)"}));
  EXPECT_EQ(failures(true), std::vector<std::string>{"POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION"});
}

TEST_F(join_test, another_hypervisor_version_is_not_homogeneous_unless_forced) {
  joiner.edit<api::host>(joiner.host, [](api::host& h) { h.software_version["xen"] = "4.19"; });
  EXPECT_EQ(failures(), std::vector<std::string>{"HOSTS_NOT_HOMOGENEOUS(software version differs)"});
  EXPECT_EQ(failures(true), std::vector<std::string>{});
}

TEST_F(join_test, cpus_of_another_vendor_or_features_are_not_homogeneous_unless_forced) {
  joiner.edit<api::host>(joiner.host, [](api::host& h) { h.cpu_info["vendor"] = "AuthenticAMD"; });
  EXPECT_EQ(failures(), std::vector<std::string>{"HOSTS_NOT_HOMOGENEOUS(CPUs differ)"});
  EXPECT_EQ(failures(true), std::vector<std::string>{});
  joiner.edit<api::host>(joiner.host, [](api::host& h) {
    h.cpu_info["vendor"] = "GenuineIntel";
    h.cpu_info["features"] = "0209e3bd-bfebfbff-00000001-2c100800";
  });
  EXPECT_EQ(failures(), std::vector<std::string>{"HOSTS_NOT_HOMOGENEOUS(CPUs differ)"});
  // Another model or speed of the same vendor and features is alike.
  joiner.edit<api::host>(joiner.host, [](api::host& h) {
    h.cpu_info.erase("features");
    h.cpu_info["modelname"] = "Xeon Gold";
    h.cpu_info["speed"] = "3000";
  });
  EXPECT_EQ(failures(), std::vector<std::string>{});
}

TEST_F(join_test, a_shared_sr_refuses) {
  api::sr nfs;
  nfs.name_label = "NFS";
  nfs.type = "nfs";
  nfs.shared = true;
  joiner.create(nfs);
  EXPECT_EQ(failures(true), std::vector<std::string>{"JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS"});
}

TEST_F(join_test, a_management_interface_that_is_not_physical_refuses) {
  joiner.edit<api::pif>(joiner.management_pif(), [](api::pif& p) { p.physical = false; });
  EXPECT_EQ(failures(true), std::vector<std::string>{"POOL_JOINING_HOST_MUST_HAVE_PHYSICAL_MANAGEMENT_NIC"});
}

TEST_F(join_test, another_external_authentication_refuses) {
  joiner.edit<api::host>(joiner.host, [](api::host& h) { h.external_auth_type = "PAM"; });
  EXPECT_EQ(failures(true), std::vector<std::string>{"POOL_JOINING_EXTERNAL_AUTH_MISMATCH"});
  master.edit<api::host>(master.host, [](api::host& h) { h.external_auth_type = "PAM"; });
  EXPECT_EQ(failures(), std::vector<std::string>{});
  master.edit<api::host>(master.host, [](api::host& h) { h.external_auth_service_name = "corp"; });
  EXPECT_EQ(failures(), std::vector<std::string>{"POOL_JOINING_EXTERNAL_AUTH_MISMATCH"});
}

TEST_F(join_test, every_failing_check_is_reported_in_xapis_order) {
  // Made in the reverse of the order they are reported in.
  joiner.edit<api::host>(joiner.host, [](api::host& h) {
    h.external_auth_type = "PAM";
    h.cpu_info["vendor"] = "AuthenticAMD";
  });
  joiner.edit<api::pif>(joiner.management_pif(), [](api::pif& p) { p.physical = false; });
  api::sr nfs;
  nfs.shared = true;
  joiner.create(nfs);
  api::vm vm;
  vm.power_state = ps::Running;
  vm.current_operations = {{"OpaqueRef:task", api::vm_operations::clean_shutdown}};
  joiner.create(vm);
  api::host other;
  joiner.create(other);
  master.edit<api::pool>(master.pool, [](api::pool& p) { p.ha_enabled = true; });
  const std::vector<std::string> all{"HA_IS_ENABLED",
                                     "JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS",
                                     "JOINING_HOST_CANNOT_HAVE_RUNNING_OR_SUSPENDED_VMS",
                                     "JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS",
                                     "HOSTS_NOT_HOMOGENEOUS(CPUs differ)",
                                     "JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS",
                                     "POOL_JOINING_HOST_MUST_HAVE_PHYSICAL_MANAGEMENT_NIC",
                                     "POOL_JOINING_EXTERNAL_AUTH_MISMATCH"};
  EXPECT_EQ(failures(), all);
  std::vector<std::string> forced = all;
  std::erase(forced, "HOSTS_NOT_HOMOGENEOUS(CPUs differ)");
  EXPECT_EQ(failures(true), forced);
}

// --- the rows brought into the pool ---

// Calls `fn(class, ref)` for each reference a value of type `t` holds.
void each_ref(const api::type_desc& t, const wire::value& v, const std::function<void(std::string_view, const std::string&)>& fn) {
  if (t.kind == api::type_kind::ref) {
    if (const std::string* s = v.as_string()) fn(t.name, *s);
  } else if (t.kind == api::type_kind::set && v.as_array()) {
    for (const auto& e : *v.as_array()) each_ref(*t.arg1, e, fn);
  } else if (t.kind == api::type_kind::map && v.as_struct()) {
    for (const auto& [k, e] : *v.as_struct()) {
      each_ref(*t.arg1, wire::value(k), fn);
      each_ref(*t.arg2, e, fn);
    }
  }
}

// Every reference of every live row that names no live row of its class (null is none).
std::vector<std::string> dangling_refs(const storage::state& s) {
  std::vector<std::string> out;
  for (const auto& ts : schema::get().tables()) {
    s.for_each(ts.index, [&](const std::string& ref, const storage::row& r) {
      for (std::size_t f = 0; f < ts.desc->fields.size(); ++f)
        each_ref(*ts.desc->fields[f].type, ts.ops->get_field(r.record.get(), f), [&](std::string_view cls, const std::string& to) {
          if (to != api::null_ref_text && !s.find(*schema::get().class_index(cls), to))
            out.push_back(std::string(ts.desc->name) + " " + ref + "." + std::string(ts.desc->fields[f].name) + " -> " + to);
        });
      return true;
    });
  }
  return out;
}

std::size_t default_templates(const storage::state& s) {
  std::size_t n = 0;
  s.for_each_of<api::vm>([&](const std::string&, const api::vm& vm) {
    n += vm.other_config.count("default_template");
    return true;
  });
  return n;
}

std::string network_of_bridge(const storage::state& s, const std::string& bridge) {
  std::string found;
  s.for_each_of<api::network>([&](const std::string& ref, const api::network& n) {
    if (n.bridge == bridge) found = ref;
    return found.empty();
  });
  return found;
}

// The joiner's things beyond its first boot.
struct joiner_things {
  std::string vm, vm_metrics, vdi, vdi_snapshot, vbd, vif_mgmt, vif_private, tmpl, snapshot, private_net, vlan_pif, blob;
};

struct join_objects_test : join_test {
  joiner_things things;

  // A halted VM "web" with a disk on the local SR (and a snapshot of the disk), a NIC on the
  // management bridge and one on a network of the joiner's own (xenbr1, whose assigned_ips
  // names it), a blob; a snapshot of the VM; a custom template; a VLAN interface.
  void SetUp() override {
    auto s = joiner.now();
    const std::string local_sr = s->first<api::pool>()->default_SR.opaque;
    const std::string mgmt_net = network_of_bridge(*s, "xenbr0");
    joiner.change([&](storage::transaction& t, const storage::state&) {
      things.blob = t.create(api::blob{});
      things.vm_metrics = t.create(api::vm_metrics{});
      api::vm vm;
      vm.name_label = "web";
      vm.metrics.opaque = things.vm_metrics;
      vm.blobs = {{"notes", api::ref<api::blob>{things.blob}}};
      things.vm = t.create(vm);
      api::vm snapshot;
      snapshot.name_label = "web before upgrade";
      snapshot.is_a_snapshot = snapshot.is_a_template = true;
      snapshot.snapshot_of.opaque = things.vm;
      things.snapshot = t.create(snapshot);
      api::vm tmpl;
      tmpl.name_label = "my template";
      tmpl.is_a_template = true;
      things.tmpl = t.create(tmpl);

      api::vdi vdi;
      vdi.name_label = "web root";
      vdi.SR.opaque = local_sr;
      vdi.virtual_size = std::int64_t{1} << 30;
      things.vdi = t.create(vdi);
      api::vdi vdi_snapshot = vdi;
      vdi_snapshot.is_a_snapshot = true;
      vdi_snapshot.snapshot_of.opaque = things.vdi;
      things.vdi_snapshot = t.create(vdi_snapshot);
      api::vbd vbd;
      vbd.VM.opaque = things.vm;
      vbd.VDI.opaque = things.vdi;
      vbd.userdevice = "0";
      things.vbd = t.create(vbd);

      api::network private_net;
      private_net.name_label = "private";
      private_net.bridge = "xenbr1";
      things.private_net = t.create(private_net);
      api::vif vif;
      vif.VM.opaque = things.vm;
      vif.network.opaque = mgmt_net;
      vif.device = "0";
      things.vif_mgmt = t.create(vif);
      vif.network.opaque = things.private_net;
      vif.device = "1";
      things.vif_private = t.create(vif);
      t.add_to_map(schema::get().class_of<api::network>(), things.private_net,
                   *schema::get().field_index(schema::get().class_of<api::network>(), "assigned_ips"),
                   things.vif_private, wire::value("10.0.0.5"));

      api::pif vlan;
      vlan.device = "eth0";
      vlan.VLAN = 5;
      vlan.host.opaque = joiner.host;
      vlan.network.opaque = things.private_net;
      things.vlan_pif = t.create(vlan);
    });
    ASSERT_EQ(failures(), std::vector<std::string>{});
  }

  // Brings the joiner's rows into the master's database in one commit.
  api::status join() {
    auto ops = join_objects(*joiner.now(), *master.now());
    if (!ops.ok()) return fail(std::move(ops).error());
    auto t = master.db->begin();
    t.ops() = std::move(*ops);
    auto r = master.db->commit(std::move(t));
    if (!r.ok()) return fail(std::move(r).error());
    return ok_v;
  }
};

TEST_F(join_objects_test, the_joiners_host_storage_and_interfaces_become_rows_of_the_pool) {
  const auto before = master.now();
  ASSERT_TRUE(join().ok());
  const auto j = joiner.now();
  const auto p = master.now();
  EXPECT_EQ(p->gen(), before->gen() + 1);  // one commit

  const api::host* host = p->get<api::host>(joiner.host);
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(host->uuid, j->get<api::host>(joiner.host)->uuid);
  EXPECT_EQ(host->address, "127.0.0.3");
  EXPECT_NE(p->get<api::host_metrics>(host->metrics.opaque), nullptr);
  EXPECT_EQ(host->host_CPUs.size(), 4u);
  EXPECT_EQ(p->first<api::pool>()->master.opaque, master.host);

  const std::string local_sr = j->first<api::pool>()->default_SR.opaque;
  const api::sr* sr = p->get<api::sr>(local_sr);
  ASSERT_NE(sr, nullptr);
  ASSERT_EQ(sr->PBDs.size(), 1u);
  EXPECT_EQ(p->get<api::pbd>(sr->PBDs.front().opaque)->host.opaque, joiner.host);
  std::set<std::string> vdis;
  for (const auto& vdi : sr->VDIs) vdis.insert(vdi.opaque);
  EXPECT_EQ(vdis, (std::set<std::string>{things.vdi, things.vdi_snapshot}));
  EXPECT_EQ(p->get<api::vdi>(things.vdi_snapshot)->snapshot_of.opaque, things.vdi);

  // The control domain, its metrics and console come along, resident on the joined host.
  std::size_t control_domains = 0;
  for (const auto& vm : host->resident_VMs) {
    const api::vm* dom0 = p->get<api::vm>(vm.opaque);
    ASSERT_TRUE(dom0->is_control_domain);
    EXPECT_NE(p->get<api::vm_metrics>(dom0->metrics.opaque), nullptr);
    EXPECT_EQ(dom0->consoles.size(), 1u);
    ++control_domains;
  }
  EXPECT_EQ(control_domains, 1u);

  // Only the physical interface: the VLAN stays behind.
  ASSERT_EQ(host->PIFs.size(), 1u);
  EXPECT_EQ(host->PIFs.front().opaque, joiner.management_pif());
  EXPECT_EQ(p->get<api::pif>(things.vlan_pif), nullptr);
}

TEST_F(join_objects_test, networks_are_matched_by_bridge_and_the_others_brought) {
  const std::string pool_mgmt_net = network_of_bridge(*master.now(), "xenbr0");
  const std::string joiner_mgmt_net = network_of_bridge(*joiner.now(), "xenbr0");
  ASSERT_TRUE(join().ok());
  const auto p = master.now();
  std::map<std::string, int> bridges;
  p->for_each_of<api::network>([&](const std::string&, const api::network& n) {
    ++bridges[n.bridge];
    return true;
  });
  EXPECT_EQ(bridges, (std::map<std::string, int>{{"xenbr0", 1}, {"xenbr1", 1}}));
  EXPECT_EQ(p->get<api::network>(joiner_mgmt_net), nullptr);
  EXPECT_EQ(p->get<api::pif>(joiner.management_pif())->network.opaque, pool_mgmt_net);
  EXPECT_EQ(p->get<api::network>(pool_mgmt_net)->PIFs.size(), 2u);
  EXPECT_EQ(p->get<api::vif>(things.vif_mgmt)->network.opaque, pool_mgmt_net);
  EXPECT_EQ(p->get<api::vif>(things.vif_private)->network.opaque, things.private_net);
  EXPECT_EQ(p->get<api::network>(things.private_net)->assigned_ips.size(), 1u);
}

TEST_F(join_objects_test, halted_vms_custom_templates_and_snapshots_come_with_their_devices) {
  ASSERT_TRUE(join().ok());
  const auto p = master.now();
  const api::vm* vm = p->get<api::vm>(things.vm);
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(vm->metrics.opaque, things.vm_metrics);
  ASSERT_EQ(vm->VBDs.size(), 1u);
  EXPECT_EQ(p->get<api::vbd>(things.vbd)->VDI.opaque, things.vdi);
  EXPECT_EQ(vm->VIFs.size(), 2u);
  EXPECT_TRUE(vm->blobs.empty());  // blobs are not brought: the VM no longer names one
  EXPECT_EQ(p->get<api::blob>(things.blob), nullptr);
  EXPECT_EQ(p->get<api::vm>(things.snapshot)->snapshot_of.opaque, things.vm);
  EXPECT_EQ(vm->snapshots.size(), 1u);
  EXPECT_NE(p->get<api::vm>(things.tmpl), nullptr);
}

TEST_F(join_objects_test, the_joiners_pool_default_templates_and_own_records_stay_behind) {
  const auto before = master.now();
  const auto j = joiner.now();
  ASSERT_GT(default_templates(*j), 0u);
  ASSERT_TRUE(join().ok());
  const auto p = master.now();
  EXPECT_EQ(default_templates(*p), default_templates(*before));
  EXPECT_EQ(p->count(schema::get().class_of<api::pool>()), 1u);
  EXPECT_EQ(p->get<api::pool>(joiner.pool), nullptr);
  for (std::string_view cls : {"role", "subject", "session", "task", "message"})
    EXPECT_EQ(p->count(*schema::get().class_index(cls)), before->count(*schema::get().class_index(cls))) << cls;
  // Everything the joiner has but these is there, under its own ref.
  std::size_t left_behind = 0;
  j->for_each_of<api::vm>([&](const std::string& ref, const api::vm&) {
    left_behind += p->get<api::vm>(ref) == nullptr;
    return true;
  });
  EXPECT_EQ(left_behind, default_templates(*j));
}

TEST_F(join_objects_test, every_reference_in_the_pool_names_a_row_after_the_join) {
  ASSERT_EQ(dangling_refs(*master.now()), std::vector<std::string>{});
  ASSERT_TRUE(join().ok());
  EXPECT_EQ(dangling_refs(*master.now()), std::vector<std::string>{});
}

TEST_F(join_objects_test, a_second_join_is_refused_and_changes_nothing) {
  ASSERT_TRUE(join().ok());
  const auto gen = master.now()->gen();
  auto again = join_objects(*joiner.now(), *master.now());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, api::error_code::INTERNAL_ERROR);
  EXPECT_NE(again.error().params.at(0).find(joiner.host), std::string::npos) << again.error().params.at(0);
  EXPECT_EQ(master.now()->gen(), gen);
}

TEST_F(join_objects_test, a_uuid_the_pool_already_has_is_refused_by_name) {
  api::vdi same;
  same.uuid = joiner.now()->get<api::vdi>(things.vdi)->uuid;
  same.SR.opaque = master.now()->first<api::pool>()->default_SR.opaque;
  master.create(same);
  auto copied = join_objects(*joiner.now(), *master.now());
  ASSERT_FALSE(copied.ok());
  EXPECT_EQ(copied.error(), api::errors::INTERNAL_ERROR("the joining host's VDI " + things.vdi + ": its uuid " +
                                                        same.uuid + " is in the pool database"));
}

// --- the rows that leave with a host (pool.eject, host.destroy) ---

// Every live row, as class and ref.
std::set<std::pair<std::size_t, std::string>> all_rows(const storage::state& s) {
  std::set<std::pair<std::size_t, std::string>> out;
  for (const auto& ts : schema::get().tables())
    s.for_each(ts.index, [&](const std::string& ref, const storage::row&) {
      out.emplace(ts.index, ref);
      return true;
    });
  return out;
}

// A VM running on `host`.
api::vm running_on(const std::string& host, std::string name) {
  api::vm v;
  v.name_label = std::move(name);
  v.power_state = api::vm_power_state::Running;
  v.resident_on.opaque = host;
  return v;
}

api::status depart(host_db& pool, const std::string& host) {
  auto t = pool.db->begin();
  if (!departure_objects(*pool.now(), host, t)) return fail(api::errors::HANDLE_INVALID("host", host));
  auto r = pool.db->commit(std::move(t));
  if (!r.ok()) return fail(std::move(r).error());
  return ok_v;
}

TEST_F(join_objects_test, a_host_that_leaves_takes_its_own_rows_and_the_pool_keeps_the_rest) {
  const auto before = all_rows(*master.now());
  ASSERT_TRUE(join().ok());
  // A VM of the pool that prefers the joined host.
  const std::string pool_vm = master.create([&] {
    api::vm vm;
    vm.name_label = "likes the joined host";
    vm.affinity.opaque = joiner.host;
    return vm;
  }());
  ASSERT_TRUE(depart(master, joiner.host).ok());
  auto s = master.now();
  EXPECT_EQ(dangling_refs(*s), std::vector<std::string>{});
  // The master's own rows all stay.
  for (const auto& [cls, ref] : before) EXPECT_TRUE(s->find(cls, ref)) << schema::get().table(cls).desc->name << " " << ref;
  // Nothing of the host's own is left: its row, CPUs, interfaces (the VLAN's too), its control
  // domain, its local SR with its disks, and the VBD of the disk that went.
  EXPECT_FALSE(s->get<api::host>(joiner.host));
  const auto j = joiner.now();
  for (const char* cls : {"host_cpu", "PIF", "PBD", "host_metrics"})
    j->for_each(*schema::get().class_index(cls), [&](const std::string& ref, const storage::row&) {
      EXPECT_FALSE(s->find(*schema::get().class_index(cls), ref)) << cls << " " << ref;
      return true;
    });
  j->for_each_of<api::vm>([&](const std::string& ref, const api::vm& vm) {
    if (vm.is_control_domain) {
      EXPECT_FALSE(s->get<api::vm>(ref)) << "its control domain";
    }
    return true;
  });
  EXPECT_FALSE(s->get<api::sr>(j->first<api::pool>()->default_SR.opaque));
  EXPECT_FALSE(s->get<api::vdi>(things.vdi));
  EXPECT_FALSE(s->get<api::vdi>(things.vdi_snapshot));
  EXPECT_FALSE(s->get<api::vbd>(things.vbd));
  EXPECT_FALSE(s->get<api::pif>(things.vlan_pif));
  // Halted VMs, templates, snapshots and networks stay with the pool, with their NICs.
  for (const auto& vm : {things.vm, things.tmpl, things.snapshot}) EXPECT_TRUE(s->get<api::vm>(vm));
  EXPECT_TRUE(s->get<api::network>(things.private_net));
  EXPECT_TRUE(s->get<api::vif>(things.vif_private));
  EXPECT_EQ(s->get<api::vm>(things.vm)->VBDs.size(), 0u);
  EXPECT_EQ(s->get<api::vm>(pool_vm)->affinity.opaque, api::null_ref_text);
}

TEST_F(join_objects_test, a_host_that_changed_meanwhile_does_not_leave_and_an_unknown_one_is_invalid) {
  ASSERT_TRUE(join().ok());
  auto t = master.db->begin();
  ASSERT_TRUE(departure_objects(*master.now(), joiner.host, t));
  master.edit<api::host>(joiner.host, [](api::host& h) { h.name_description = "changed under the eject"; });
  auto r = master.db->commit(std::move(t));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, api::error_code::OPERATION_NOT_ALLOWED);
  EXPECT_TRUE(master.now()->get<api::host>(joiner.host));
  // A VM that becomes resident on it meanwhile (which leaves the host row's own fields be).
  auto again = master.db->begin();
  ASSERT_TRUE(departure_objects(*master.now(), joiner.host, again));
  const std::string vm = master.create(running_on(joiner.host, "started there meanwhile"));
  auto late = master.db->commit(std::move(again));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, api::error_code::OPERATION_NOT_ALLOWED);
  EXPECT_EQ(master.now()->get<api::vm>(vm)->resident_on.opaque, joiner.host);
  auto none = master.db->begin();
  EXPECT_FALSE(departure_objects(*master.now(), "OpaqueRef:nothing", none));
  EXPECT_TRUE(none.empty());
}

// pool.eject's refusals: a VM running there (as xapi), and, beyond xapi, a suspended VM whose
// memory image is on the host's own storage (it would stay suspended with an image the pool no
// longer has). A halted VM with disks there, or a suspended one whose image is elsewhere, does not.
TEST_F(join_objects_test, a_host_keeps_its_place_while_a_vm_runs_there_or_is_suspended_onto_its_storage) {
  ASSERT_TRUE(join().ok());
  EXPECT_EQ(departure_refused(*master.now(), joiner.host), std::nullopt) << "its halted VM has disks there";
  EXPECT_EQ(departure_refused(*master.now(), "OpaqueRef:nothing")->code, api::error_code::HANDLE_INVALID);
  const std::string suspended = master.create([&] {
    api::vm v;
    v.name_label = "suspended onto the joined host's disk";
    v.power_state = api::vm_power_state::Suspended;
    v.suspend_VDI.opaque = things.vdi;
    return v;
  }());
  auto refused = departure_refused(*master.now(), joiner.host);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, api::error_code::OPERATION_NOT_ALLOWED);
  EXPECT_NE(refused->params.at(0).find(master.now()->get<api::vm>(suspended)->uuid), std::string::npos);
  master.edit<api::vm>(suspended, [](api::vm& v) { v.power_state = api::vm_power_state::Halted; v.suspend_VDI.opaque = api::null_ref_text; });
  EXPECT_EQ(departure_refused(*master.now(), joiner.host), std::nullopt);
  master.create(running_on(joiner.host, "running there"));
  EXPECT_EQ(departure_refused(*master.now(), joiner.host), api::errors::OPERATION_NOT_ALLOWED("VM resident on host"));
}

}  // namespace
}  // namespace xapid::pool
