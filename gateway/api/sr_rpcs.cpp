#include "gateway/api/sr_rpcs.hpp"

#include "gateway/rpc/typed_rpcs.hpp"
#include "sm/sr_driver.hpp"

namespace xapid::gateway {
namespace {

namespace m = api::method;
using api::ref;
using string_map = api::map<std::string, std::string>;

template <class R>
api::api_result<ref<R>> as_ref(api::api_result<std::string> r) {
  if (!r) return fail(std::move(r).error());
  return ref<R>{*r};
}

}  // namespace

void register_sr_rpcs(dispatcher& d, actors::storage_repos& repos, id_source& ids) {
  auto key = [&ids](const call_context& c) { return c.task.empty() ? ids.opaque_ref() : c.task; };
  constexpr bool blocking = true;  // image work runs qemu-img: never on an I/O thread
  using sr_ref = ref<api::sr>;
  using vdi_ref = ref<api::vdi>;
  using pbd_ref = ref<api::pbd>;

  // A shared SR (of a driver that can be: file, nfs) is plugged on every host of the pool, as
  // xapi's: a PBD for each, plugged there (the call carried out by that host); one that cannot
  // plug it undoes the whole SR (the others unplugged, the records forgotten, the data left).
  add_typed<m::SR_create>(d, [&d, &repos, key](call_context& c, const ref<api::host>& host, const string_map& device_config,
                                              std::int64_t physical_size, const std::string& name_label,
                                              const std::string& name_description, const std::string& type,
                                              const std::string& content_type, bool shared,
                                              const string_map& sm_config) -> api::api_result<ref<api::sr>> {
    auto sr = repos.sr_create(host.opaque, device_config, physical_size, name_label, name_description, type,
                              content_type, shared, sm_config);
    const sm::sr_driver* drv = sm::find_driver(type);
    if (!sr || !shared || !drv || !drv->shared()) return as_ref<api::sr>(std::move(sr));
    auto others = repos.add_pbds_everywhere(*sr);
    std::optional<api::api_error> failed;
    if (!others) failed = others.error();
    std::vector<std::pair<std::string, std::string>> plugged_on;  // (host, PBD)
    for (const auto& [other, pbd] : others ? *others : std::vector<std::pair<std::string, std::string>>{}) {
      auto r = d.carry_out_on(other, wire::call{"PBD.plug", {wire::value(c.session), wire::value(pbd)}}, c);
      if (!r.success) {
        failed = api::error_from_description(r.error_description, api::errors::INTERNAL_ERROR("PBD.plug failed on host " + other));
        break;
      }
      plugged_on.emplace_back(other, pbd);
    }
    if (!failed) return ref<api::sr>{*sr};
    for (const auto& [other, pbd] : plugged_on)
      (void)d.carry_out_on(other, wire::call{"PBD.unplug", {wire::value(c.session), wire::value(pbd)}}, c);
    (void)repos.pbd_unplug(repos.pbd_here(*sr));
    (void)repos.sr_forget(*sr, key(c));
    return fail(std::move(*failed));
  }, blocking);
  add_typed<m::SR_introduce>(d, [&repos](call_context&, const std::string& uuid, const std::string& name_label,
                                         const std::string& name_description, const std::string& type,
                                         const std::string& content_type, bool shared, const string_map& sm_config) {
    return as_ref<api::sr>(repos.sr_introduce(uuid, name_label, name_description, type, content_type, shared, sm_config));
  });
  add_typed<m::SR_forget>(d, [&repos, key](call_context& c, const sr_ref& sr) { return repos.sr_forget(sr.opaque, key(c)); },
                          blocking);
  add_typed<m::SR_destroy>(d, [&repos, key](call_context& c, const sr_ref& sr) { return repos.sr_destroy(sr.opaque, key(c)); },
                           blocking);
  add_typed<m::SR_scan>(d, [&repos, key](call_context& c, const sr_ref& sr) { return repos.sr_scan(sr.opaque, key(c)); },
                        blocking);
  add_typed<m::SR_update>(d, [&repos, key](call_context& c, const sr_ref& sr) { return repos.sr_update(sr.opaque, key(c)); },
                          blocking);
  add_typed<m::SR_probe>(d, [&repos](call_context&, const ref<api::host>& host, const string_map& device_config,
                                     const std::string& type, const string_map&) {
    return repos.sr_probe(host.opaque, device_config, type);
  }, blocking);
  add_typed<m::SR_get_supported_types>(d, [](call_context&) -> api::api_result<std::vector<std::string>> {
    std::vector<std::string> types;
    for (const sm::sr_driver* drv : sm::all_drivers()) types.push_back(drv->type());
    return types;
  });

  add_typed<m::PBD_create>(d, [&repos](call_context&, const api::pbd& rec) {
    return as_ref<api::pbd>(repos.pbd_create(rec.host.opaque, rec.SR.opaque, rec.device_config, rec.other_config));
  });
  add_typed<m::PBD_plug>(d, [&repos](call_context&, const pbd_ref& p) { return repos.pbd_plug(p.opaque); }, blocking);
  add_typed<m::PBD_unplug>(d, [&repos](call_context&, const pbd_ref& p) { return repos.pbd_unplug(p.opaque); }, blocking);
  add_typed<m::PBD_destroy>(d, [&repos](call_context&, const pbd_ref& p) { return repos.pbd_destroy(p.opaque); });

  add_typed<m::VDI_create>(d, [&repos, key](call_context& c, const api::vdi& rec) {
    return as_ref<api::vdi>(repos.vdi_create(rec.SR.opaque, rec.name_label, rec.name_description, rec.virtual_size,
                                             rec.type, rec.sharable, rec.read_only, rec.other_config, rec.sm_config,
                                             key(c)));
  }, blocking);
  add_typed<m::VDI_destroy>(d, [&repos, key](call_context& c, const vdi_ref& v) { return repos.vdi_destroy(v.opaque, key(c)); },
                            blocking);
  add_typed<m::VDI_forget>(d, [&repos, key](call_context& c, const vdi_ref& v) { return repos.vdi_forget(v.opaque, key(c)); },
                           blocking);
  add_typed<m::VDI_update>(d, [&repos, key](call_context& c, const vdi_ref& v) { return repos.vdi_update(v.opaque, key(c)); },
                           blocking);
  add_typed<m::VDI_resize>(d, [&repos, key](call_context& c, const vdi_ref& v, std::int64_t size) {
    return repos.vdi_resize(v.opaque, size, false, key(c));
  }, blocking);
  add_typed<m::VDI_resize_online>(d, [&repos, key](call_context& c, const vdi_ref& v, std::int64_t size) {
    return repos.vdi_resize(v.opaque, size, true, key(c));
  }, blocking);
  add_typed<m::VDI_snapshot>(d, [&repos, key](call_context& c, const vdi_ref& v, const string_map&) {
    return as_ref<api::vdi>(repos.vdi_snapshot(v.opaque, key(c)));
  }, blocking);
  add_typed<m::VDI_clone>(d, [&repos, key](call_context& c, const vdi_ref& v, const string_map&) {
    return as_ref<api::vdi>(repos.vdi_clone(v.opaque, key(c)));
  }, blocking);
  add_typed<m::VDI_copy>(d, [&repos, key](call_context& c, const vdi_ref& v, const sr_ref& sr, const vdi_ref& base,
                                          const vdi_ref& into) -> api::api_result<vdi_ref> {
    if (!base.is_null() || !into.is_null())
      return fail(api::errors::VALUE_NOT_SUPPORTED("into_vdi", into.opaque, "copies into an existing VDI are not supported"));
    return as_ref<api::vdi>(repos.vdi_copy(v.opaque, sr.opaque, key(c)));
  }, blocking);
  add_typed<m::VDI_introduce>(d, [&repos](call_context&, const std::string& uuid, const std::string& name_label,
                                          const std::string& name_description, const sr_ref& sr, api::vdi_type type,
                                          bool sharable, bool read_only, const string_map& other_config,
                                          const std::string& location, const string_map& xenstore_data,
                                          const string_map& sm_config, bool managed, std::int64_t,
                                          std::int64_t, const ref<api::pool>& metadata_of_pool, bool is_a_snapshot,
                                          const api::datetime& snapshot_time, const vdi_ref& snapshot_of) {
    api::vdi v;
    v.uuid = uuid;
    v.name_label = name_label;
    v.name_description = name_description;
    v.SR = sr;
    v.type = type;
    v.sharable = sharable;
    v.read_only = read_only;
    v.other_config = other_config;
    v.location = location;
    v.xenstore_data = xenstore_data;
    v.sm_config = sm_config;
    v.managed = managed;
    v.metadata_of_pool = metadata_of_pool;
    v.is_a_snapshot = is_a_snapshot;
    v.snapshot_time = snapshot_time;
    v.snapshot_of = snapshot_of;
    return as_ref<api::vdi>(repos.vdi_introduce(std::move(v)));
  }, blocking);
}

}  // namespace xapid::gateway
