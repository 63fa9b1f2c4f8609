#include "metrics/legacy_metrics.hpp"

#include <cmath>
#include <set>

#include <spdlog/spdlog.h>

namespace xapid::metrics {
namespace {

using storage::schema;

// A source's newest value, 0 when it is unknown (the legacy fields have no "unknown").
double newest(const rrd& r, const std::string& name) {
  const double v = r.latest(name).value_or(0);
  return std::isfinite(v) ? v : 0;
}

// A device's metrics record with its two rates (KiB/s): the one it has, updated, or a new one
// it is given.
template <class Device, class Metrics>
void record_device(storage::transaction& t, storage::database& db, const storage::state& s, const std::string& device_ref,
                   const Device& device, double read_bytes, double write_bytes, api::datetime now) {
  Metrics m;
  const Metrics* old = s.get<Metrics>(device.metrics.opaque);
  if (old) m = *old;
  m.io_read_kbs = read_bytes / 1024;
  m.io_write_kbs = write_bytes / 1024;
  m.last_updated = now;
  if (old) {
    if (!(m == *old)) t.update(device.metrics.opaque, *old, m);
    return;
  }
  m.uuid = db.ids().uuid();
  Device after = device;
  after.metrics.opaque = t.create(m);
  t.update(device_ref, device, after);
}

}  // namespace

std::int64_t legacy_interval_seconds(const storage::state& s, const std::string& host_ref) {
  const api::host* h = s.get<api::host>(host_ref);
  if (!h) return 0;
  auto it = h->other_config.find("rrd_update_interval");
  if (it == h->other_config.end()) return 0;
  if (it->second == "1") return step_seconds;
  if (it->second == "2") return 60;
  return 0;
}

void write_legacy_metrics(storage::database& db, const std::string& host_ref, collector& c, std::int64_t now) {
  auto s = db.snapshot();
  const api::datetime at{now};
  auto t = db.begin();
  std::size_t changes = 0;
  if (const api::host* h = s->get<api::host>(host_ref))
    if (const api::host_metrics* m = s->get<api::host_metrics>(h->metrics.opaque))
      c.with_rrd("", [&](const rrd& r) {
        api::host_metrics after = *m;
        after.memory_free = static_cast<std::int64_t>(newest(r, "memory_free_kib") * 1024);
        after.memory_total = static_cast<std::int64_t>(newest(r, "memory_total_kib") * 1024);
        after.last_updated = at;
        if (after.memory_total != 0 && !(after == *m)) t.update(h->metrics.opaque, *m, after), ++changes;
      });
  for (const auto& vm_ref : s->refs_where<api::vm>("resident_on", host_ref)) {
    const api::vm* vm = s->get<api::vm>(vm_ref);
    if (!vm || vm->power_state != api::vm_power_state::Running) continue;
    c.with_rrd(vm->uuid, [&](const rrd& r) {
      if (const api::vm_metrics* m = s->get<api::vm_metrics>(vm->metrics.opaque)) {
        api::vm_metrics after = *m;
        after.VCPUs_utilisation.clear();
        for (std::int64_t i = 0; i < vm->VCPUs_at_startup && i < 1024; ++i)
          if (r.source_index("cpu" + std::to_string(i))) after.VCPUs_utilisation[i] = newest(r, "cpu" + std::to_string(i));
        after.last_updated = at;
        t.update(vm->metrics.opaque, *m, after);
        ++changes;
      }
      for (const auto& vif_ref : vm->VIFs) {
        const api::vif* vif = s->get<api::vif>(vif_ref.opaque);
        if (!vif || !vif->currently_attached) continue;
        const std::string name = "vif_" + vif->device;
        record_device<api::vif, api::vif_metrics>(t, db, *s, vif_ref.opaque, *vif, newest(r, name + "_rx"), newest(r, name + "_tx"), at);
        ++changes;
      }
      for (const auto& vbd_ref : vm->VBDs) {
        const api::vbd* vbd = s->get<api::vbd>(vbd_ref.opaque);
        if (!vbd || !vbd->currently_attached) continue;
        const std::string name = "vbd_" + vbd->device;
        record_device<api::vbd, api::vbd_metrics>(t, db, *s, vbd_ref.opaque, *vbd, newest(r, name + "_read"), newest(r, name + "_write"), at);
        ++changes;
      }
    });
  }
  if (changes == 0) return;
  // (A VM that stopped or moved meanwhile fails the commit: the next run writes again.)
  if (auto done = db.commit(std::move(t)); !done)
    spdlog::warn("metrics.legacy.not_written reason=\"{}\"", done.error().description().at(0));
}

void drop_orphaned_device_metrics(storage::database& db) {
  auto s = db.snapshot();
  const auto& sc = schema::get();
  const std::size_t vif_metrics = sc.class_of<api::vif_metrics>(), vbd_metrics = sc.class_of<api::vbd_metrics>();
  if (s->count(vif_metrics) == 0 && s->count(vbd_metrics) == 0) return;
  auto t = db.begin();
  bool any = false;
  s->for_each(vif_metrics, [&](const std::string& ref, const storage::row&) {
    if (s->refs_where<api::vif>("metrics", ref).empty()) t.destroy(vif_metrics, ref), any = true;
    return true;
  });
  s->for_each(vbd_metrics, [&](const std::string& ref, const storage::row&) {
    if (s->refs_where<api::vbd>("metrics", ref).empty()) t.destroy(vbd_metrics, ref), any = true;
    return true;
  });
  if (!any) return;
  if (auto done = db.commit(std::move(t)); !done)
    spdlog::warn("metrics.legacy.orphans_not_dropped reason=\"{}\"", done.error().description().at(0));
}

}  // namespace xapid::metrics
