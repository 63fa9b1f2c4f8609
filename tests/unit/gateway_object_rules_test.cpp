// The rules of the destructors and custom setters the generic RPCs serve (gateway/object_rules),
// class by class as a table: the objects each case needs are made in the database, the RPC is
// dispatched as root (rules are not rights: root is refused too), and the answer must be the
// error xapi gives — or success, for the case the rule lets through.
#include <gtest/gtest.h>

#include <functional>
#include <future>

#include "actors/storage_repos.hpp"
#include "gateway/rpc/dispatch.hpp"
#include "actors/first_boot.hpp"
#include "gateway/rpc/implicit_rpcs.hpp"
#include "gateway/api/object_rules.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::gateway {
namespace {

using storage::schema;
using ps = api::vm_power_state;

struct rules_test : ::testing::Test {
  testing::temp_dir dir;
  real_clock clk;
  std::unique_ptr<storage::database> db;
  std::unique_ptr<actors::host_actors> actors;
  std::unique_ptr<actors::storage_repos> repos;
  dispatcher d;
  std::string host, pool, local_sr;

  void SetUp() override {
    db = std::move(storage::database::open({dir / "db"})).value();
    xen::host_info hw{4, "v", "m", 2000, std::int64_t{8} << 30, std::int64_t{7} << 30, "4.17"};
    auto id = actors::ensure_pool_and_host(*db, dir.path(), "127.0.0.1", hw);
    ASSERT_TRUE(id.ok());
    host = id->host;
    pool = id->pool;
    local_sr = db->snapshot()->get<api::pool>(pool)->default_SR.opaque;
    actors = std::make_unique<actors::host_actors>(*db);
    repos = std::make_unique<actors::storage_repos>(*db, *actors, clk, host, dir.path());
    ASSERT_TRUE(repos->start().ok());
    register_implicit_rpcs(d, *db);
    register_object_rules(d, *db, *repos, host);
    d.set_session_check([](const std::string&) -> api::api_result<caller> { return caller{0, "", true}; });
  }

  // Makes `rec` in one commit; answers its ref.
  template <class R>
  std::string make(R rec) {
    auto t = db->begin();
    std::string ref = t.create(rec);
    EXPECT_TRUE(db->commit(std::move(t)).ok());
    return ref;
  }

  // The RPC's answer as root: its error description, or {} for success.
  std::vector<std::string> call(const std::string& method, wire::array params) {
    params.insert(params.begin(), wire::value("OpaqueRef:root-session"));
    std::promise<wire::response> answer;
    call_context ctx;
    d.dispatch_async(wire::call{method, std::move(params)}, ctx,
                     [&](wire::response r, call_context) { answer.set_value(std::move(r)); });
    auto r = answer.get_future().get();
    return r.success ? std::vector<std::string>{} : r.error_description;
  }

  std::string vm(ps state) {
    api::vm v;
    v.power_state = state;
    v.resident_on.opaque = state == ps::Halted ? std::string(api::null_ref_text) : host;
    return make(v);
  }
  std::string network_with(bool attached_vif) {
    std::string net = make(api::network{});
    api::vif f;
    f.network.opaque = net;
    f.VM.opaque = vm(attached_vif ? ps::Running : ps::Halted);
    f.currently_attached = attached_vif;
    make(f);
    return net;
  }
};

struct rule_case {
  const char* what;
  std::function<std::pair<std::string, wire::array>(rules_test&)> setup;  // the RPC and its parameters
  std::vector<std::string> expected_start;  // the error's code (and leading params); {} is success
};

TEST_F(rules_test, each_class_refuses_what_xapi_refuses) {
  using w = wire::value;
  const std::vector<rule_case> cases = {
      {"the live host", [](rules_test& t) { return std::pair{std::string("host.destroy"), wire::array{w(t.host)}}; },
       {"HOST_IS_LIVE"}},
      {"a dead host with a guest on it",
       [](rules_test& t) {
         std::string other = t.make(api::host{});
         api::vm v;
         v.resident_on.opaque = other;
         t.make(v);
         return std::pair{std::string("host.destroy"), wire::array{w(other)}};
       },
       {"HOST_HAS_RESIDENT_VMS"}},
      {"a dead, empty host", [](rules_test& t) { return std::pair{std::string("host.destroy"), wire::array{w(t.make(api::host{}))}}; }, {}},
      {"a network under an attached VIF",
       [](rules_test& t) { return std::pair{std::string("network.destroy"), wire::array{w(t.network_with(true))}}; },
       {"NETWORK_CONTAINS_VIF"}},
      {"a network a PIF carries",
       [](rules_test& t) {
         std::string net = t.make(api::network{});
         api::pif p;
         p.network.opaque = net;
         t.make(p);
         return std::pair{std::string("network.destroy"), wire::array{w(net)}};
       },
       {"NETWORK_CONTAINS_PIF"}},
      {"the host's internal management network",
       [](rules_test& t) {
         api::network n;
         n.other_config["is_host_internal_management_network"] = "true";
         return std::pair{std::string("network.destroy"), wire::array{w(t.make(n))}};
       },
       {"CANNOT_DESTROY_SYSTEM_NETWORK"}},
      {"a network with only idle VIFs", [](rules_test& t) { return std::pair{std::string("network.destroy"), wire::array{w(t.network_with(false))}}; }, {}},
      {"a physical PIF",
       [](rules_test& t) {
         api::pif p;
         p.VLAN = -1;
         return std::pair{std::string("PIF.destroy"), wire::array{w(t.make(p))}};
       },
       {"PIF_IS_PHYSICAL"}},
      {"the management interface of a VLAN",
       [](rules_test& t) {
         api::pif p;
         p.VLAN = 5;
         p.management = true;
         return std::pair{std::string("PIF.destroy"), wire::array{w(t.make(p))}};
       },
       {"PIF_IS_MANAGEMENT_INTERFACE"}},
      {"a VLAN's PIF", [](rules_test& t) {
         api::pif p;
         p.VLAN = 7;
         return std::pair{std::string("PIF.destroy"), wire::array{w(t.make(p))}};
       }, {}},
      {"a VLAN under an attached VIF",
       [](rules_test& t) {
         api::pif p;
         p.VLAN = 8;
         p.network.opaque = t.network_with(true);
         api::vlan v;
         v.untagged_PIF.opaque = t.make(p);
         return std::pair{std::string("VLAN.destroy"), wire::array{w(t.make(v))}};
       },
       {"VIF_IN_USE"}},
      {"the console of a running VM",
       [](rules_test& t) {
         api::console c;
         c.VM.opaque = t.vm(ps::Running);
         return std::pair{std::string("console.destroy"), wire::array{w(t.make(c))}};
       },
       {"OPERATION_NOT_ALLOWED"}},
      {"the console of a halted VM", [](rules_test& t) {
         api::console c;
         c.VM.opaque = t.vm(ps::Halted);
         return std::pair{std::string("console.destroy"), wire::array{w(t.make(c))}};
       }, {}},
      {"the vTPM of a running VM",
       [](rules_test& t) {
         api::vtpm v;
         v.VM.opaque = t.vm(ps::Running);
         return std::pair{std::string("VTPM.destroy"), wire::array{w(t.make(v))}};
       },
       {"VM_BAD_POWER_STATE"}},
      {"the vGPU of a running VM",
       [](rules_test& t) {
         api::vgpu v;
         v.VM.opaque = t.vm(ps::Running);
         return std::pair{std::string("VGPU.destroy"), wire::array{w(t.make(v))}};
       },
       {"OPERATION_NOT_ALLOWED"}},
      {"a GPU group with an attached vGPU",
       [](rules_test& t) {
         std::string g = t.make(api::gpu_group{});
         api::vgpu v;
         v.GPU_group.opaque = g;
         v.currently_attached = true;
         t.make(v);
         return std::pair{std::string("GPU_group.destroy"), wire::array{w(g)}};
       },
       {"GPU_GROUP_CONTAINS_VGPU"}},
      {"a GPU group with a PGPU",
       [](rules_test& t) {
         std::string g = t.make(api::gpu_group{});
         api::pgpu p;
         p.GPU_group.opaque = g;
         t.make(p);
         return std::pair{std::string("GPU_group.destroy"), wire::array{w(g)}};
       },
       {"GPU_GROUP_CONTAINS_PGPU"}},
      {"an applied patch",
       [](rules_test& t) {
         std::string patch = t.make(api::pool_patch{});
         api::host_patch hp;
         hp.pool_patch.opaque = patch;
         hp.host.opaque = t.host;
         t.make(hp);
         return std::pair{std::string("pool_patch.destroy"), wire::array{w(patch)}};
       },
       {"PATCH_IS_APPLIED"}},
      {"a protection policy (removed from xapi)",
       [](rules_test& t) { return std::pair{std::string("VMPP.destroy"), wire::array{w(t.make(api::vmpp{}))}}; },
       {"MESSAGE_REMOVED"}},
      {"VM.set_protection_policy", [](rules_test& t) {
         return std::pair{std::string("VM.set_protection_policy"), wire::array{w(t.vm(ps::Halted)), w(std::string(api::null_ref_text))}};
       }, {"MESSAGE_REMOVED"}},
      {"a negative number of host failures to tolerate",
       [](rules_test& t) {
         return std::pair{std::string("pool.set_ha_host_failures_to_tolerate"), wire::array{w(t.pool), w(std::int64_t{-5})}};
       },
       {"INVALID_VALUE", "ha_host_failures_to_tolerate", "-5"}},
      {"a template into an appliance",
       [](rules_test& t) {
         api::vm v;
         v.is_a_template = true;
         return std::pair{std::string("VM.set_appliance"), wire::array{w(t.make(v)), w(t.make(api::vm_appliance{}))}};
       },
       {"OPERATION_NOT_ALLOWED"}},
      {"the suspend image of a halted VM",
       [](rules_test& t) {
         return std::pair{std::string("VM.set_suspend_VDI"), wire::array{w(t.vm(ps::Halted)), w(std::string(api::null_ref_text))}};
       },
       {"VM_BAD_POWER_STATE"}},
      {"the locking mode of a network under an attached VIF",
       [](rules_test& t) {
         return std::pair{std::string("network.set_default_locking_mode"), wire::array{w(t.network_with(true)), w("disabled")}};
       },
       {"VIF_IN_USE"}},
      {"an address that is not IPv4",
       [](rules_test& t) {
         api::vif f;
         f.VM.opaque = t.vm(ps::Halted);
         return std::pair{std::string("VIF.set_ipv4_allowed"), wire::array{w(t.make(f)), w(wire::array{w("300.1.1.1")})}};
       },
       {"INVALID_VALUE", "ipv4_allowed", "300.1.1.1"}},
      {"the address type of the management interface",
       [](rules_test& t) {
         api::pif p;
         p.management = true;
         return std::pair{std::string("PIF.set_primary_address_type"), wire::array{w(t.make(p)), w("IPv6")}};
       },
       {"PIF_IS_MANAGEMENT_INTERFACE"}},
      {"an SR with two PBDs no longer shared",
       [](rules_test& t) {
         std::string sr = t.make(api::sr{});
         for (int i = 0; i < 2; ++i) {
           api::pbd p;
           p.SR.opaque = sr;
           p.host.opaque = t.host;
           t.make(p);
         }
         return std::pair{std::string("SR.set_shared"), wire::array{w(sr), w(false)}};
       },
       {"SR_HAS_MULTIPLE_PBDS"}},
      {"a VDI's size from a client",
       [](rules_test& t) {
         api::vdi v;
         v.SR.opaque = t.local_sr;
         return std::pair{std::string("VDI.set_virtual_size"), wire::array{w(t.make(v)), w(std::int64_t{1})}};
       },
       {"PERMISSION_DENIED"}},
      {"a PBD's device_config from a client",
       [](rules_test& t) {
         return std::pair{std::string("PBD.set_device_config"),
                          wire::array{w(t.db->snapshot()->get<api::sr>(t.local_sr)->PBDs.front().opaque), w(wire::structure{})}};
       },
       {"PERMISSION_DENIED"}},
      {"caching of a disk of a running VM",
       [](rules_test& t) {
         api::vdi v;
         v.SR.opaque = t.local_sr;
         std::string vdi = t.make(v);
         api::vbd b;
         b.VDI.opaque = vdi;
         b.VM.opaque = t.vm(ps::Running);
         t.make(b);
         return std::pair{std::string("VDI.set_allow_caching"), wire::array{w(vdi), w(true)}};
       },
       {"VM_BAD_POWER_STATE"}},
      {"a PGPU in use moved to another group",
       [](rules_test& t) {
         std::string p = t.make(api::pgpu{});
         api::vgpu v;
         v.resident_on.opaque = p;
         v.VM.opaque = t.vm(ps::Running);
         t.make(v);
         return std::pair{std::string("PGPU.set_GPU_group"), wire::array{w(p), w(t.make(api::gpu_group{}))}};
       },
       {"PGPU_IN_USE_BY_VM"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto [method, params] = c.setup(*this);
    auto answer = call(method, params);
    if (c.expected_start.empty()) {
      EXPECT_TRUE(answer.empty()) << (answer.empty() ? "" : answer[0]);
      continue;
    }
    ASSERT_GE(answer.size(), c.expected_start.size()) << method;
    EXPECT_EQ(std::vector<std::string>(answer.begin(), answer.begin() + static_cast<std::ptrdiff_t>(c.expected_start.size())),
              c.expected_start)
        << method;
  }
}

// What goes with an object, as xapi has it: a network's idle VIFs, a VLAN PIF's VLAN.
TEST_F(rules_test, a_destroyed_object_takes_what_hangs_on_it) {
  std::string net = network_with(false);
  std::string vif = db->snapshot()->get<api::network>(net)->VIFs.front().opaque;
  EXPECT_TRUE(call("network.destroy", {wire::value(net)}).empty());
  EXPECT_EQ(db->snapshot()->get<api::vif>(vif), nullptr);
  api::pif p;
  p.VLAN = 9;
  std::string pif = make(p);
  api::vlan v;
  v.untagged_PIF.opaque = pif;
  std::string vlan = make(v);
  EXPECT_TRUE(call("PIF.destroy", {wire::value(pif)}).empty());
  EXPECT_EQ(db->snapshot()->get<api::vlan>(vlan), nullptr);
}

// The handlers of their own take their parameters through the RPC's typed signature: one that
// is not of its type is FIELD_TYPE_ERROR naming it, before any rule.
TEST_F(rules_test, a_parameter_not_of_its_type_is_named) {
  EXPECT_EQ(call("network.destroy", {wire::value(std::int64_t{42})}), (std::vector<std::string>{"FIELD_TYPE_ERROR", "self"}));
  std::string bond = make(api::bond{});
  EXPECT_EQ(call("Bond.set_mode", {wire::value(bond), wire::value("no-such-mode")}),
            (std::vector<std::string>{"FIELD_TYPE_ERROR", "value"}));
  EXPECT_EQ(call("Bond.set_mode", {wire::value(bond), wire::value("lacp")}), std::vector<std::string>{});
}

// A rule guards its RPC whatever handler serves it: one registered after the rule (the pool's
// host.destroy, which takes the host's rows) runs only when the rule lets the call through.
TEST_F(rules_test, a_rule_stays_when_its_rpc_is_registered_again) {
  int ran = 0;
  d.add("host.destroy", [&ran](call_context&, const wire::array&) -> api::api_result<wire::value> {
    ++ran;
    return wire::value("");
  });
  EXPECT_EQ(call("host.destroy", {wire::value(host)}), (std::vector<std::string>{"HOST_IS_LIVE", host}));
  EXPECT_EQ(ran, 0);
  api::host other;
  other.name_label = "gone for good";
  const std::string gone = make(other);
  EXPECT_EQ(call("host.destroy", {wire::value(gone)}), std::vector<std::string>{});
  EXPECT_EQ(ran, 1);
}

// PBD.unplug's handler comes with the SR RPCs, registered after the rules: a rule given before
// its RPC's first handler holds all the same (HA's statefile SR stays plugged).
TEST_F(rules_test, a_rule_given_before_its_rpc_is_registered_holds) {
  api::vdi statefile;
  statefile.SR.opaque = local_sr;
  statefile.type = api::vdi_type::ha_statefile;
  const std::string vdi = make(statefile);
  {
    auto s = db->snapshot();
    api::pool p = *s->get<api::pool>(pool);
    p.ha_enabled = true;
    p.ha_statefiles = {vdi};
    auto t = db->begin();
    t.update(pool, *s->get<api::pool>(pool), p);
    ASSERT_TRUE(db->commit(std::move(t)).ok());
  }
  const auto pbds = db->snapshot()->refs_where<api::pbd>("SR", local_sr);
  ASSERT_FALSE(pbds.empty());
  int ran = 0;
  d.add("PBD.unplug", [&ran](call_context&, const wire::array&) -> api::api_result<wire::value> {
    ++ran;
    return wire::value("");
  });
  EXPECT_EQ(call("PBD.unplug", {wire::value(pbds.front())}), std::vector<std::string>{"HA_IS_ENABLED"});
  EXPECT_EQ(call("VDI.destroy", {wire::value(vdi)}), std::vector<std::string>{"HA_IS_ENABLED"});
  EXPECT_EQ(ran, 0);
}

}  // namespace
}  // namespace xapid::gateway
