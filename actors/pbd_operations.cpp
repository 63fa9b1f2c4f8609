// PBD operations: create, plug (the SR made reachable on this host), unplug, destroy.
#include "actors/storage_repos_impl.hpp"

#include <spdlog/spdlog.h>

namespace xapid::actors {

storage_repos::ref_result storage_repos::pbd_create(const std::string& host, const std::string& sr,
                                                    api::map<std::string, std::string> device_config,
                                                    api::map<std::string, std::string> other_config) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  if (!s->get<api::host>(host)) return fail(api::errors::HANDLE_INVALID("host", host));
  if (!s->get<api::sr>(sr)) return fail(api::errors::HANDLE_INVALID("SR", sr));
  for (const auto& p : s->refs_where<api::pbd>("SR", sr))
    if (s->get<api::pbd>(p)->host.opaque == host) return fail(api::errors::PBD_EXISTS(sr, host, p));
  api::pbd pbd;
  pbd.uuid = d.db.ids().uuid();
  pbd.host.opaque = host;
  pbd.SR.opaque = sr;
  pbd.device_config = std::move(device_config);
  pbd.other_config = std::move(other_config);
  auto t = d.db.begin();
  std::string ref = t.create(pbd);
  if (auto r = d.commit(std::move(t)); !r) return fail(r.error());
  return ref;
}

storage_repos::void_result storage_repos::pbd_plug(const std::string& pbd) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  const api::pbd* p = s->get<api::pbd>(pbd);
  if (!p) return fail(api::errors::HANDLE_INVALID("PBD", pbd));
  if (p->currently_attached) return ok_v;  // xapi: plugging a plugged PBD does nothing
  if (p->host.opaque != d.host) return fail(api::errors::HOST_OFFLINE(p->host.opaque));
  const api::sr* sr = s->get<api::sr>(p->SR.opaque);
  // A plug asks for the SR's directory: one its driver makes (ext's) is made again if missing.
  if (auto st = d.attach(p->SR.opaque, sr->type, sr->uuid, p->device_config, true); !st) return st;
  api::pbd after = *p;
  after.currently_attached = true;
  auto t = d.db.begin();
  t.update(pbd, *p, after);
  if (auto r = d.commit(std::move(t)); !r) return fail(r.error());
  d.refresh_sizes(p->SR.opaque);
  return ok_v;
}

std::size_t storage_repos::plug_own_pbds() {
  auto& d = *impl_;
  std::size_t plugged = 0;
  auto s = d.db.snapshot();
  for (const auto& ref : s->refs_where<api::pbd>("host", d.host)) {
    const api::pbd* p = s->get<api::pbd>(ref);
    if (!p || p->currently_attached) continue;  // start() attached those again
    if (auto st = pbd_plug(ref); st) ++plugged;
    else spdlog::warn("storage.pbd.not_plugged pbd={} sr={} reason=\"{}\"", p->uuid, p->SR.opaque, st.error().description().at(0));
  }
  return plugged;
}

storage_repos::void_result storage_repos::pbd_unplug(const std::string& pbd) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  const api::pbd* p = s->get<api::pbd>(pbd);
  if (!p) return fail(api::errors::HANDLE_INVALID("PBD", pbd));
  if (!p->currently_attached) return ok_v;
  const api::sr* sr = s->get<api::sr>(p->SR.opaque);
  // A disk of a running guest keeps its SR plugged.
  for (const auto& v : s->refs_where<api::vdi>("SR", p->SR.opaque))
    for (const auto& b : s->get<api::vdi>(v)->VBDs)
      if (const api::vbd* vbd = s->get<api::vbd>(b.opaque); vbd && vbd->currently_attached)
        return fail(api::errors::VDI_IN_USE(v, "unplug"));
  api::pbd after = *p;
  after.currently_attached = false;
  auto t = d.db.begin();
  t.update(pbd, *p, after);
  if (auto r = d.commit(std::move(t)); !r) return fail(r.error());
  d.detach(sr->type, sr->uuid, p->device_config);
  return ok_v;
}

storage_repos::void_result storage_repos::pbd_destroy(const std::string& pbd) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  const api::pbd* p = s->get<api::pbd>(pbd);
  if (!p) return fail(api::errors::HANDLE_INVALID("PBD", pbd));
  if (p->currently_attached) return fail(api::errors::OPERATION_NOT_ALLOWED("the PBD is plugged: unplug it first"));
  auto t = d.db.begin();
  t.destroy(d.pbd_cls, pbd);
  if (auto r = d.commit(std::move(t)); !r) return fail(r.error());
  return ok_v;
}

}  // namespace xapid::actors
