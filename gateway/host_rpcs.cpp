#include "gateway/host_rpcs.hpp"

#include <fstream>
#include <map>

#include "gateway/typed_rpcs.hpp"

namespace xapid::gateway {
namespace {

namespace m = api::method;
using host_ref = api::ref<api::host>;
using storage::schema;

// The running guests resident on the host (the control domain is the host itself).
std::vector<std::string> resident_guests(const storage::state& s, const std::string& host) {
  std::vector<std::string> out;
  for (const auto& ref : s.refs_where<api::vm>("resident_on", host)) {
    const api::vm* vm = s.get<api::vm>(ref);
    if (!vm->is_control_domain && vm->power_state != api::vm_power_state::Halted) out.push_back(ref);
  }
  return out;
}

api::status known_host(const host_context& ctx, const std::string& ref) {
  if (!ctx.db.snapshot()->get<api::host>(ref)) return fail(api::errors::HANDLE_INVALID("host", ref));
  if (ref != ctx.host) return fail(api::errors::HOST_OFFLINE(ref));  // until pools: only this host answers
  return {};
}

api::api_result<void> set_enabled(host_context& ctx, const std::string& ref, bool enabled) {
  if (auto st = known_host(ctx, ref); !st) return st;
  auto s = ctx.db.snapshot();
  const api::host* h = s->get<api::host>(ref);
  api::host after = *h;
  after.enabled = enabled;
  auto t = ctx.db.begin();
  t.update(ref, *h, after);
  if (auto r = ctx.db.commit(std::move(t)); !r) return fail(std::move(r).error());
  ctx.actors.refresh(schema::get().class_of<api::host>(), ref);
  return ok_v;
}

// Why each running guest cannot leave: in a one-host pool there is no other host.
api::map<api::ref<api::vm>, std::vector<std::string>> blockers(const host_context& ctx) {
  api::map<api::ref<api::vm>, std::vector<std::string>> out;
  for (const auto& vm : resident_guests(*ctx.db.snapshot(), ctx.host))
    out[api::ref<api::vm>{vm}] = api::errors::NO_HOSTS_AVAILABLE().description();
  return out;
}

std::string tail_of(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  auto size = static_cast<std::size_t>(in.tellg());
  std::size_t from = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(from));
  std::string out(size - from, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  return out;
}

}  // namespace

void register_host_rpcs(dispatcher& d, host_context& ctx) {
  const std::size_t host_cls = schema::get().class_of<api::host>();
  // One operation at a time; what is allowed follows `enabled`.
  ctx.actors.add_rules(host_cls, actors::one_at_a_time<api::host>([](const api::host& h) {
    using op = api::host_allowed_operations;
    std::vector<op> ops{op::evacuate, op::shutdown, op::reboot};
    if (h.enabled) ops.insert(ops.end(), {op::provision, op::vm_start, op::vm_resume, op::vm_migrate});
    return ops;
  }));
  (void)ctx.actors.reset_operations(host_cls, ctx.host);

  add_typed<m::host_disable>(d, [&ctx](call_context&, const host_ref& h) { return set_enabled(ctx, h.opaque, false); });
  add_typed<m::host_enable>(d, [&ctx](call_context&, const host_ref& h) { return set_enabled(ctx, h.opaque, true); });

  // Shutdown and reboot need a disabled host with no guests running, as in xapi.
  auto power = [&ctx, host_cls](call_context& c, const host_ref& h, bool reboot) -> api::api_result<void> {
    if (auto st = known_host(ctx, h.opaque); !st) return st;
    auto r = ctx.actors.run(host_cls, h.opaque, reboot ? "reboot" : "shutdown",
                            c.task.empty() ? ctx.db.ids().opaque_ref() : c.task,
                            [&ctx, h]() -> api::api_result<wire::value> {
                              auto s = ctx.db.snapshot();
                              if (s->get<api::host>(h.opaque)->enabled) return fail(api::errors::HOST_NOT_DISABLED());
                              auto guests = resident_guests(*s, h.opaque);
                              if (!guests.empty()) return fail(api::errors::HOST_IN_USE(h.opaque, "VM", guests.front()));
                              return wire::value("");
                            });
    if (!r) return fail(std::move(r).error());
    ctx.power(reboot);
    return ok_v;
  };
  add_typed<m::host_shutdown>(d, [power](call_context& c, const host_ref& h) { return power(c, h, false); }, true);
  add_typed<m::host_reboot>(d, [power](call_context& c, const host_ref& h) { return power(c, h, true); }, true);

  add_typed<m::host_get_vms_which_prevent_evacuation>(
      d, [&ctx](call_context&, const host_ref& h) -> api::api_result<api::map<api::ref<api::vm>, std::vector<std::string>>> {
        if (auto st = known_host(ctx, h.opaque); !st) return fail(st.error());
        return blockers(ctx);
      });
  add_typed<m::host_assert_can_evacuate>(d, [&ctx](call_context&, const host_ref& h) -> api::api_result<void> {
    if (auto st = known_host(ctx, h.opaque); !st) return st;
    if (!blockers(ctx).empty()) return fail(api::errors::NO_HOSTS_AVAILABLE());
    return ok_v;
  });
  add_typed<m::host_evacuate>(d, [&ctx, host_cls](call_context& c, const host_ref& h) -> api::api_result<void> {
    if (auto st = known_host(ctx, h.opaque); !st) return st;
    auto r = ctx.actors.run(host_cls, h.opaque, "evacuate", c.task.empty() ? ctx.db.ids().opaque_ref() : c.task,
                            [&ctx]() -> api::api_result<wire::value> {
                              // Every guest would have to move to another host; there is none.
                              if (!blockers(ctx).empty()) return fail(api::errors::NO_HOSTS_AVAILABLE());
                              return wire::value("");
                            });
    if (!r) return fail(std::move(r).error());
    return ok_v;
  }, true);

  auto now = [&ctx] { return api::datetime{ctx.clk.now_ms() / 1000}; };
  add_typed<m::host_get_servertime>(d, [&ctx, now](call_context&, const host_ref& h) -> api::api_result<api::datetime> {
    if (auto st = known_host(ctx, h.opaque); !st) return fail(st.error());
    return now();
  });
  add_typed<m::host_get_server_localtime>(d, [&ctx, now](call_context&, const host_ref& h) -> api::api_result<api::datetime> {
    if (auto st = known_host(ctx, h.opaque); !st) return fail(st.error());
    return now();  // the host keeps UTC
  });
  add_typed<m::host_get_log>(d, [&ctx](call_context&, const host_ref& h) -> api::api_result<std::string> {
    if (auto st = known_host(ctx, h.opaque); !st) return fail(st.error());
    return tail_of(ctx.log_file, 1 << 20);
  });
  add_typed<m::host_dmesg>(d, [&ctx](call_context&, const host_ref& h) -> api::api_result<std::string> {
    if (auto st = known_host(ctx, h.opaque); !st) return fail(st.error());
    return ctx.hypervisor.dmesg();
  });
  add_typed<m::host_compute_free_memory>(d, [&ctx](call_context&, const host_ref& h) -> api::api_result<std::int64_t> {
    if (auto st = known_host(ctx, h.opaque); !st) return fail(st.error());
    return ctx.hypervisor.host().memory_free_bytes;
  });
  add_typed<m::host_compute_memory_overhead>(d, [&ctx](call_context&, const host_ref& h) -> api::api_result<std::int64_t> {
    if (auto st = known_host(ctx, h.opaque); !st) return fail(st.error());
    return ctx.db.snapshot()->get<api::host>(h.opaque)->memory_overhead;
  });
  add_typed<m::host_get_management_interface>(d, [&ctx](call_context&, const host_ref& h) -> api::api_result<api::ref<api::pif>> {
    auto s = ctx.db.snapshot();
    if (!s->get<api::host>(h.opaque)) return fail(api::errors::HANDLE_INVALID("host", h.opaque));
    for (const auto& ref : s->refs_where<api::pif>("host", h.opaque))
      if (s->get<api::pif>(ref)->management) return api::ref<api::pif>{ref};
    return fail(api::errors::HOST_HAS_NO_MANAGEMENT_IP());
  });
  add_typed<m::host_list_methods>(d, [](call_context&) -> api::api_result<std::vector<std::string>> {
    return list_methods();
  });
}

}  // namespace xapid::gateway
