#include "metrics/collector.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "storage/schema.hpp"

#include <spdlog/spdlog.h>

namespace xapid::metrics {
namespace {

using sample = std::vector<std::pair<std::string, double>>;

// What this process holds of memory (KiB) and descriptors, as xapi reports its own.
double process_memory_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr);
  return std::nan("");
}

double open_descriptors() {
  std::error_code ec;
  double n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec))
    ++n;
  return n;
}

// A counter's rate per second between two readings; NaN when it went backwards (a restart).
double rate(std::uint64_t before, std::uint64_t now, double seconds) {
  if (now < before || seconds <= 0) return std::nan("");
  return static_cast<double>(now - before) / seconds;
}

const xen::device_counters* find_device(const std::vector<xen::device_counters>& devs, const std::string& name) {
  for (const auto& d : devs)
    if (d.name == name) return &d;
  return nullptr;
}

}  // namespace

source_description describe(const std::string& name) {
  auto has = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
  auto ends = [&](const char* suffix) { return name.size() >= std::strlen(suffix) && name.ends_with(suffix); };
  if (name == "cpu_avg") return {"Average physical CPU usage", "(fraction)", 0, 1};
  if (has("cpu")) return {"Physical or virtual CPU usage of " + name, "(fraction)", 0, 1};
  if (name == "memory") return {"Memory currently allocated to VM", "B", 0, 0};
  if (name == "memory_internal_free") return {"Memory used as reported by the guest agent", "KiB", 0, 0};
  if (name == "memory_total_kib") return {"Total amount of memory in the host", "KiB", 0, 0};
  if (name == "memory_free_kib") return {"Total amount of free memory", "KiB", 0, 0};
  if (name == "loadavg") return {"Domain0 loadavg", "", 0, 0};
  if (name == "xapi_memory_usage_kib") return {"Total memory allocated used by xapid daemon", "KiB", 0, 0};
  if (name == "xapi_open_fds") return {"Number of open file descriptors held by xapid", "", 0, 0};
  if (name == "size") return {"Size of the SR", "B", 0, 0};
  if (has("io_throughput_read_")) return {"Data read from the SR, in MiB/s", "MiB/s", 0, 0};
  if (has("io_throughput_write_")) return {"Data written to the SR, in MiB/s", "MiB/s", 0, 0};
  if (has("io_throughput_total_")) return {"All SR I/O, in MiB/s", "MiB/s", 0, 0};
  if (name == "physical_utilisation") return {"Physical utilisation of the SR", "B", 0, 0};
  if (has("vbd_") && ends("_read")) return {"Reads from device " + name.substr(4, name.size() - 9) + ", in B/s", "B/s", 0, 0};
  if (has("vbd_") && ends("_write")) return {"Writes to device " + name.substr(4, name.size() - 10) + ", in B/s", "B/s", 0, 0};
  if ((has("vif_") || has("pif_")) && ends("_rx")) return {"Bytes per second received on " + name.substr(0, name.size() - 3), "B/s", 0, 0};
  if ((has("vif_") || has("pif_")) && ends("_tx")) return {"Bytes per second sent on " + name.substr(0, name.size() - 3), "B/s", 0, 0};
  return {name, "", 0, 0};
}

collector::collector(xen::backend& hv, clock& clk, std::string host_uuid, std::string dir, bool min_max)
    : hv_(hv), clk_(clk), host_uuid_(std::move(host_uuid)), dir_(std::move(dir)), min_max_(min_max),
      host_(standard_layout(min_max)) {}

std::optional<std::string> collector::path_of(archive_kind kind, const std::string& uuid) const {
  if (kind == archive_kind::host) return dir_ + "/host.xml";
  if (uuid.empty() || uuid.size() > 64 || uuid.find_first_not_of("0123456789abcdefABCDEF-") != std::string::npos) return std::nullopt;
  return dir_ + "/" + (kind == archive_kind::sr ? "sr-" : "") + uuid + ".xml";
}

std::optional<rrd> collector::read_back(archive_kind kind, const std::string& uuid) const {
  auto path = path_of(kind, uuid);
  if (!path) return std::nullopt;
  std::ifstream in(*path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  auto loaded = rrd::from_xml(text.str());
  if (!loaded) return std::nullopt;
  return std::move(loaded).value();
}

result<void, std::string> collector::load() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return fail("cannot make " + dir_ + ": " + ec.message());
  std::ifstream in(*path_of(archive_kind::host, ""), std::ios::binary);
  if (!in) return ok_v;  // a first start
  std::stringstream text;
  text << in.rdbuf();
  auto loaded = rrd::from_xml(text.str());
  if (!loaded) {
    spdlog::warn("metrics.archive.unreadable file={} reason=\"{}\" action=\"starting afresh\"", *path_of(archive_kind::host, ""),
                 loaded.error());
    return ok_v;
  }
  std::lock_guard lock(mu_);
  host_ = std::move(loaded).value();
  return ok_v;
}

rrd* collector::rrd_locked(archive_kind kind, const std::string& uuid) {
  auto& archives = kept(kind);
  if (auto it = archives.find(uuid); it != archives.end()) return &it->second;
  // An object here before takes up its archive again.
  auto fresh = read_back(kind, uuid);
  if (!fresh) fresh.emplace(standard_layout(min_max_.load(std::memory_order_relaxed)));
  return &archives.emplace(uuid, std::move(*fresh)).first->second;
}

void collector::retire_locked(archive_kind kind, const std::set<std::string>& present) {
  auto& archives = kept(kind);
  for (auto it = archives.begin(); it != archives.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    if (auto st = save_locked(kind, it->first, it->second); !st)
      spdlog::warn("metrics.archive.not_saved uuid={} reason=\"{}\"", it->first, st.error());
    if (kind == archive_kind::vm) last_.erase(it->first);
    it = archives.erase(it);
  }
}

void collector::collect(const std::vector<sr_reading>& srs, const disk_srs& disks) {
  const std::int64_t now_ns = clk_.monotonic_ns();
  const std::int64_t t = clk_.now_ms() / 1000;
  auto domains = hv_.read_domain_counters();
  auto host = hv_.read_host_counters();
  std::lock_guard lock(mu_);
  std::set<std::string> running;
  std::map<std::string, std::pair<double, double>> sr_io;  // SR uuid's first 8 -> bytes/s read, written
  for (auto& d : domains) {
    const auto on_srs = disks.find(d.uuid);
    running.insert(d.uuid);
    sample s;
    s.emplace_back("memory", static_cast<double>(d.memory_bytes));
    if (d.memory_internal_free_bytes) s.emplace_back("memory_internal_free", static_cast<double>(*d.memory_internal_free_bytes) / 1024);
    auto prev = last_.find(d.uuid);
    if (prev != last_.end() && prev->second.domid == d.domid) {
      const double seconds = static_cast<double>(now_ns - prev->second.at_ns) / 1e9;
      const auto& before = prev->second.counters;
      for (std::size_t i = 0; i < d.vcpu_time_ns.size(); ++i)
        if (i < before.vcpu_time_ns.size())
          s.emplace_back("cpu" + std::to_string(i), rate(before.vcpu_time_ns[i], d.vcpu_time_ns[i], seconds) / 1e9);
      for (const auto& disk : d.disks)
        if (const auto* b = find_device(before.disks, disk.name)) {
          const double read = rate(b->in_bytes, disk.in_bytes, seconds), written = rate(b->out_bytes, disk.out_bytes, seconds);
          s.emplace_back("vbd_" + disk.name + "_read", read);
          s.emplace_back("vbd_" + disk.name + "_write", written);
          if (on_srs == disks.end()) continue;
          if (auto sr = on_srs->second.find(disk.name); sr != on_srs->second.end() && std::isfinite(read) && std::isfinite(written)) {
            auto& io = sr_io[sr->second.substr(0, 8)];
            io.first += read;
            io.second += written;
          }
        }
      for (const auto& nic : d.nics)
        if (const auto* b = find_device(before.nics, nic.name)) {
          s.emplace_back("vif_" + nic.name + "_rx", rate(b->in_bytes, nic.in_bytes, seconds));
          s.emplace_back("vif_" + nic.name + "_tx", rate(b->out_bytes, nic.out_bytes, seconds));
        }
    }
    rrd_locked(archive_kind::vm, d.uuid)->update(t, s);
    const std::string uuid = d.uuid;  // (the right side of `=` is evaluated first)
    last_[uuid] = previous{d.domid, now_ns, std::move(d)};
  }
  // VMs whose domain went, and SRs no longer kept here: their archive is kept on disk, and
  // leaves memory.
  retire_locked(archive_kind::vm, running);
  std::set<std::string> kept_srs;
  for (const auto& sr : srs) {
    kept_srs.insert(sr.uuid);
    rrd_locked(archive_kind::sr, sr.uuid)->update(t, {{"size", sr.size}, {"physical_utilisation", sr.utilisation}});
  }
  retire_locked(archive_kind::sr, kept_srs);
  sample h;
  h.emplace_back("memory_total_kib", static_cast<double>(host.memory_total_bytes) / 1024);
  h.emplace_back("memory_free_kib", static_cast<double>(host.memory_free_bytes) / 1024);
  h.emplace_back("loadavg", host.loadavg);
  h.emplace_back("xapi_memory_usage_kib", process_memory_kib());
  h.emplace_back("xapi_open_fds", open_descriptors());
  if (last_host_) {
    const double seconds = static_cast<double>(now_ns - last_host_->first) / 1e9;
    const auto& before = last_host_->second;
    double sum = 0;
    std::size_t n = 0;
    for (std::size_t i = 0; i < host.cpu_busy_ns.size() && i < before.cpu_busy_ns.size(); ++i) {
      const double used = std::min(1.0, rate(before.cpu_busy_ns[i], host.cpu_busy_ns[i], seconds) / 1e9);
      h.emplace_back("cpu" + std::to_string(i), used);
      if (!std::isnan(used)) sum += used, ++n;
    }
    if (n) h.emplace_back("cpu_avg", sum / static_cast<double>(n));
    for (const auto& nic : host.nics)
      if (const auto* b = find_device(before.nics, nic.name)) {
        h.emplace_back("pif_" + nic.name + "_rx", rate(b->in_bytes, nic.in_bytes, seconds));
        h.emplace_back("pif_" + nic.name + "_tx", rate(b->out_bytes, nic.out_bytes, seconds));
      }
  }
  for (const auto& [sr8, io] : sr_io) {
    const double mib = 1 << 20;
    h.emplace_back("io_throughput_read_" + sr8, io.first / mib);
    h.emplace_back("io_throughput_write_" + sr8, io.second / mib);
    h.emplace_back("io_throughput_total_" + sr8, (io.first + io.second) / mib);
  }
  host_.update(t, h);
  last_host_ = std::pair{now_ns, std::move(host)};
  ++samples_;
}

std::optional<std::string> collector::export_archive(const std::string& uuid) {
  std::lock_guard lock(mu_);
  auto it = vms_.find(uuid);
  if (it == vms_.end()) return std::nullopt;
  std::string dump;
  it->second.dump_xml(dump, true);
  return dump;
}

result<void, std::string> collector::import_archive(const std::string& uuid, std::string_view dump) {
  if (!path_of(archive_kind::vm, uuid)) return fail("not a VM's uuid: " + uuid);
  auto archive = rrd::from_xml(dump);
  if (!archive) return fail(archive.error());
  std::lock_guard lock(mu_);
  rrd& taken = vms_.insert_or_assign(uuid, std::move(archive).value()).first->second;
  return save_locked(archive_kind::vm, uuid, taken);
}

result<void, std::string> collector::save_locked(archive_kind kind, const std::string& uuid, const rrd& r) {
  const auto where = path_of(kind, uuid);
  if (!where) return fail("not a uuid: " + uuid);
  std::string text;
  r.dump_xml(text, true);
  const std::string path = *where, temporary = path + ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail(temporary + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(temporary.c_str());
      return fail(temporary + ": " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0) return fail(path + ": " + std::strerror(errno));
  return ok_v;
}

result<void, std::string> collector::save_all() {
  std::lock_guard lock(mu_);
  if (auto st = save_locked(archive_kind::host, "", host_); !st) return st;
  for (const auto kind : {archive_kind::vm, archive_kind::sr})
    for (const auto& [uuid, r] : kept(kind))
      if (auto st = save_locked(kind, uuid, r); !st) return st;
  return ok_v;
}

bool collector::with_rrd(const std::string& uuid, const std::function<void(const rrd&)>& f, archive_kind kind) {
  std::lock_guard lock(mu_);
  if (uuid.empty()) {
    f(host_);
    return true;
  }
  if (kind == archive_kind::host) return false;
  auto& archives = kept(kind);
  if (auto it = archives.find(uuid); it != archives.end()) {
    f(it->second);
    return true;
  }
  // An object not here now: its archive on disk, when it was here.
  auto loaded = read_back(kind, uuid);
  if (!loaded) return false;
  f(*loaded);
  return true;
}

void collector::with_all(const archive_selection& which,
                         const std::function<void(const std::vector<std::pair<std::string, const rrd*>>&)>& f) {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, const rrd*>> all;
  auto named = [](const std::vector<std::string>& uuids, const std::string& uuid) {
    return std::find(uuids.begin(), uuids.end(), uuid) != uuids.end();
  };
  if (which.host) all.emplace_back("host:" + host_uuid_ + ":", &host_);
  for (const auto& [uuid, r] : vms_)
    if (which.vms.empty() || named(which.vms, uuid)) all.emplace_back("vm:" + uuid + ":", &r);
  for (const auto& [uuid, r] : srs_)
    if (which.all_srs || named(which.srs, uuid)) all.emplace_back("sr:" + uuid + ":", &r);
  f(all);
}

collector::recent_rows collector::rows_since(std::int64_t step, std::int64_t since) {
  std::lock_guard lock(mu_);
  recent_rows out;
  auto take = [&](watched_kind kind, const std::string& uuid, const rrd& r) {
    for (std::size_t a = 0; a < r.archive_count(); ++a) {
      const auto& l = r.layout(a);
      if (l.cf != consolidation::average || l.pdp_per_row * step_seconds != step) continue;
      perfmon::object_rows o{kind, uuid, {}, r.sources(), {}};
      const std::int64_t newest = r.newest_row_time(a);
      out.newest = std::max(out.newest, newest);
      for (std::size_t age = 0; age < static_cast<std::size_t>(l.rows) && newest - static_cast<std::int64_t>(age) * step > since; ++age) {
        std::vector<double> row(o.sources.size());
        for (std::size_t ds = 0; ds < row.size(); ++ds) row[ds] = r.value(a, ds, age);
        o.values.push_back(std::move(row));
      }
      std::reverse(o.values.begin(), o.values.end());
      out.objects.push_back(std::move(o));
      return;
    }
  };
  take(watched_kind::host, host_uuid_, host_);
  for (const auto& [uuid, r] : vms_) take(watched_kind::vm, uuid, r);
  for (const auto& [uuid, r] : srs_) take(watched_kind::sr, uuid, r);
  return out;
}

bool collector::forget(const std::string& uuid, const std::string& name) {
  std::lock_guard lock(mu_);
  if (uuid.empty()) return host_.forget(name);
  auto it = vms_.find(uuid);
  return it != vms_.end() && it->second.forget(name);
}

}  // namespace xapid::metrics

namespace xapid::metrics {

std::vector<sr_reading> srs_kept_here(const storage::state& s, const std::string& host) {
  std::vector<sr_reading> out;
  const api::pool* pool = s.first<api::pool>();
  const bool master = pool && pool->master.opaque == host;
  for (const auto& ref : s.refs_where<api::pbd>("host", host)) {
    const api::pbd* pbd = s.get<api::pbd>(ref);
    if (!pbd || !pbd->currently_attached) continue;
    const api::sr* sr = s.get<api::sr>(pbd->SR.opaque);
    if (!sr || (sr->shared && !master)) continue;
    out.push_back({sr->uuid, static_cast<double>(sr->physical_size), static_cast<double>(sr->physical_utilisation)});
  }
  return out;
}

collector::disk_srs disk_srs_here(const storage::state& s, const std::string& host) {
  collector::disk_srs out;
  for (const auto& vm_ref : s.refs_where<api::vm>("resident_on", host)) {
    const api::vm* vm = s.get<api::vm>(vm_ref);
    if (!vm) continue;
    for (const auto& vbd_ref : vm->VBDs) {
      const api::vbd* vbd = s.get<api::vbd>(vbd_ref.opaque);
      const api::vdi* vdi = vbd && vbd->currently_attached && !vbd->device.empty() ? s.get<api::vdi>(vbd->VDI.opaque) : nullptr;
      const api::sr* sr = vdi ? s.get<api::sr>(vdi->SR.opaque) : nullptr;
      if (sr) out[vm->uuid][vbd->device] = sr->uuid;
    }
  }
  return out;
}

}  // namespace xapid::metrics
