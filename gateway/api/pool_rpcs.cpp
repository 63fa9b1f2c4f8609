#include "gateway/api/pool_rpcs.hpp"

#include "gateway/rpc/typed_rpcs.hpp"

namespace xapid::gateway {
namespace {

namespace m = api::method;

}  // namespace

void register_pool_rpcs(dispatcher& d, pool_context& ctx) {
  auto join = [&ctx](const std::string& master, const std::string& user, const std::string& password,
                     bool force) -> api::api_result<void> {
    if (ctx.joining.exchange(true)) return fail(api::errors::OTHER_OPERATION_IN_PROGRESS("pool", ""));
    if (auto st = pool::join_pool(ctx.self, {master, user, password, force}); !st) {
      ctx.joining = false;
      return st;
    }
    ctx.power(true);  // the answer goes first; then the host starts again as a member (joining stays set)
    return ok_v;
  };
  add_typed<m::pool_join>(d, [join](call_context&, const std::string& master, const std::string& user, const std::string& password) {
    return join(master, user, password, false);
  }, true);
  add_typed<m::pool_join_force>(d, [join](call_context&, const std::string& master, const std::string& user,
                                          const std::string& password) { return join(master, user, password, true); }, true);
  add_typed<m::pool_designate_new_master>(d, [&ctx](call_context&, const api::ref<api::host>& host) -> api::api_result<void> {
    return pool::designate_new_master(ctx.master, host.opaque);
  }, true);
  add_typed<m::pool_sync_database>(d, [&ctx](call_context&) -> api::api_result<void> { return pool::sync_database(ctx.master); }, true);
  add_typed<m::pool_eject>(d, [&ctx](call_context&, const api::ref<api::host>& host) -> api::api_result<void> {
    return pool::eject(ctx.master, host.opaque);
  }, true);
  add_typed<m::pool_emergency_transition_to_master>(
      d, [&ctx](call_context&) -> api::api_result<void> { return pool::emergency_transition_to_master(ctx.emergency); }, true);
  add_typed<m::pool_emergency_reset_master>(d, [&ctx](call_context&, const std::string& master_address) -> api::api_result<void> {
    return pool::emergency_reset_master(ctx.emergency, master_address);
  }, true);
  add_typed<m::pool_recover_slaves>(d, [&ctx](call_context&) -> api::api_result<std::vector<api::ref<api::host>>> {
    auto hosts = pool::recover_slaves(ctx.emergency);
    if (!hosts) return fail(std::move(hosts).error());
    std::vector<api::ref<api::host>> out;
    for (auto& h : *hosts) out.push_back(api::ref<api::host>{std::move(h)});
    return out;
  }, true);
  // After object_rules' checks (HOST_IS_LIVE, HA_IS_ENABLED, HOST_HAS_RESIDENT_VMS).
  add_typed<m::host_destroy>(d, [&ctx](call_context&, const api::ref<api::host>& host) -> api::api_result<void> {
    return pool::remove_host_rows(*ctx.master.db, *ctx.master.db->snapshot(), host.opaque);
  }, true);
}

}  // namespace xapid::gateway
