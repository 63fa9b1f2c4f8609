#include "gateway/api/metrics_rpcs.hpp"

#include <cmath>

#include "gateway/rpc/typed_rpcs.hpp"

namespace xapid::gateway {
namespace {

namespace m = api::method;

// The archive's key in the collector ("" for this host), or the error naming the object.
template <class R>
api::api_result<std::string> archive_of(storage::database& db, const std::string& ref, const std::string& this_host) {
  auto s = db.snapshot();
  const R* row = s->get<R>(ref);
  if (!row) return fail(api::errors::HANDLE_INVALID(std::string(R::api_class), ref));
  if constexpr (std::is_same_v<R, api::host>) {
    if (ref != this_host) return fail(api::errors::HOST_OFFLINE(ref));  // the pool sends it to its host (call_routes)
    return std::string();
  } else {
    return row->uuid;
  }
}

// NaN (unknown) travels as 0: XML-RPC has no NaN.
double known(double v) { return std::isnan(v) || std::isinf(v) ? 0.0 : v; }

template <class R>
void register_for(dispatcher& d, storage::database& db, metrics::collector& c, const std::string& host, auto get_m,
                  auto query_m, auto record_m, auto forget_m) {
  using ref_t = api::ref<R>;
  add_typed<decltype(get_m)>(d, [&db, &c, host](call_context&, const ref_t& r) -> api::api_result<std::vector<api::data_source>> {
    auto key = archive_of<R>(db, r.opaque, host);
    if (!key) return fail(key.error());
    std::vector<api::data_source> out;
    c.with_rrd(*key, [&](const metrics::rrd& a) {
      for (const auto& name : a.sources()) {
        const auto d = metrics::describe(name);
        out.push_back({name, d.description, true, true, d.units, d.min, d.max, known(a.latest(name).value_or(0))});
      }
    });
    return out;
  });
  add_typed<decltype(query_m)>(d, [&db, &c, host](call_context&, const ref_t& r, const std::string& name) -> api::api_result<double> {
    auto key = archive_of<R>(db, r.opaque, host);
    if (!key) return fail(key.error());
    std::optional<double> v;
    c.with_rrd(*key, [&](const metrics::rrd& a) { v = a.latest(name); });
    if (!v) return fail(api::errors::INVALID_VALUE("data_source", name));
    return known(*v);
  });
  // Every source xapid has is recorded from the start (all are standard): recording one is
  // asking whether it exists.
  add_typed<decltype(record_m)>(d, [&db, &c, host](call_context&, const ref_t& r, const std::string& name) -> api::api_result<void> {
    auto key = archive_of<R>(db, r.opaque, host);
    if (!key) return fail(key.error());
    bool exists = false;
    c.with_rrd(*key, [&](const metrics::rrd& a) { exists = a.source_index(name).has_value(); });
    if (!exists) return fail(api::errors::INVALID_VALUE("data_source", name));
    return ok_v;
  });
  add_typed<decltype(forget_m)>(d, [&db, &c, host](call_context&, const ref_t& r, const std::string& name) -> api::api_result<void> {
    auto key = archive_of<R>(db, r.opaque, host);
    if (!key) return fail(key.error());
    if (!c.forget(*key, name)) return fail(api::errors::INVALID_VALUE("data_source", name));
    return ok_v;
  });
}

}  // namespace

void register_metrics_rpcs(dispatcher& d, storage::database& db, metrics::collector& collector, const std::string& this_host) {
  register_for<api::host>(d, db, collector, this_host, m::host_get_data_sources{}, m::host_query_data_source{},
                          m::host_record_data_source{}, m::host_forget_data_source_archives{});
  register_for<api::vm>(d, db, collector, this_host, m::VM_get_data_sources{}, m::VM_query_data_source{},
                        m::VM_record_data_source{}, m::VM_forget_data_source_archives{});
  add_typed<m::host_backup_rrds>(d, [&db, &collector, this_host](call_context&, const api::ref<api::host>& h, double) -> api::api_result<void> {
    auto key = archive_of<api::host>(db, h.opaque, this_host);
    if (!key) return fail(key.error());
    if (auto st = collector.save_all(); !st) return fail(api::errors::INTERNAL_ERROR("backing up the archives: " + st.error()));
    return ok_v;
  }, true);
}

}  // namespace xapid::gateway
