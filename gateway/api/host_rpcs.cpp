#include "gateway/api/host_rpcs.hpp"

#include <fstream>

#include "gateway/rpc/typed_rpcs.hpp"

namespace xapid::gateway {
namespace {

namespace m = api::method;
using host_ref = api::ref<api::host>;

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
  auto& ops = ctx.operations;
  auto key = [&ctx](const call_context& c) { return c.task.empty() ? ctx.db.ids().opaque_ref() : c.task; };
  add_typed<m::host_disable>(d, [&ops](call_context&, const host_ref& h) { return ops.set_enabled(h.opaque, false); });
  add_typed<m::host_enable>(d, [&ops](call_context&, const host_ref& h) { return ops.set_enabled(h.opaque, true); });
  auto power = [&ctx, key](call_context& c, const host_ref& h, bool reboot) -> api::api_result<void> {
    if (auto r = ctx.operations.power_off(h.opaque, reboot, key(c)); !r) return r;
    ctx.power(reboot);
    return ok_v;
  };
  add_typed<m::host_shutdown>(d, [power](call_context& c, const host_ref& h) { return power(c, h, false); }, true);
  add_typed<m::host_reboot>(d, [power](call_context& c, const host_ref& h) { return power(c, h, true); }, true);
  add_typed<m::host_get_vms_which_prevent_evacuation>(
      d, [&ops](call_context&, const host_ref& h) { return ops.vms_preventing_evacuation(h.opaque); });
  add_typed<m::host_assert_can_evacuate>(d, [&ops](call_context&, const host_ref& h) { return ops.assert_can_evacuate(h.opaque); });
  add_typed<m::host_evacuate>(d, [&ops, key](call_context& c, const host_ref& h) { return ops.evacuate(h.opaque, key(c)); }, true);
  // Carried out where it is called (the host it names is down).
  add_typed<m::host_declare_dead>(d, [&ops](call_context&, const host_ref& h) { return ops.declare_dead(h.opaque); }, true);

  auto known_host = [&ops](const std::string& h) { return ops.assert_this_host(h); };
  auto now = [&ctx] { return api::datetime{ctx.clk.now_ms() / 1000}; };
  add_typed<m::host_get_servertime>(d, [known_host, now](call_context&, const host_ref& h) -> api::api_result<api::datetime> {
    if (auto st = known_host(h.opaque); !st) return fail(st.error());
    return now();
  });
  add_typed<m::host_get_server_localtime>(d, [known_host, now](call_context&, const host_ref& h) -> api::api_result<api::datetime> {
    if (auto st = known_host(h.opaque); !st) return fail(st.error());
    return now();  // the host keeps UTC
  });
  add_typed<m::host_get_log>(d, [&ctx, known_host](call_context&, const host_ref& h) -> api::api_result<std::string> {
    if (auto st = known_host(h.opaque); !st) return fail(st.error());
    return tail_of(ctx.log_file, 1 << 20);
  });
  add_typed<m::host_dmesg>(d, [&ctx, known_host](call_context&, const host_ref& h) -> api::api_result<std::string> {
    if (auto st = known_host(h.opaque); !st) return fail(st.error());
    return ctx.hypervisor.dmesg();
  });
  add_typed<m::host_compute_free_memory>(d, [&ctx, known_host](call_context&, const host_ref& h) -> api::api_result<std::int64_t> {
    if (auto st = known_host(h.opaque); !st) return fail(st.error());
    return ctx.hypervisor.host().memory_free_bytes;
  });
  add_typed<m::host_compute_memory_overhead>(d, [&ctx, known_host](call_context&, const host_ref& h) -> api::api_result<std::int64_t> {
    if (auto st = known_host(h.opaque); !st) return fail(st.error());
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
