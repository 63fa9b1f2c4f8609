#include "xen/libxl_backend.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

extern "C" {
#include <xenstore.h>
#include <xentoollog.h>
}

#include "common/clock.hpp"
#include "xen/libxl_config.hpp"
#include "xen/proc_stats.hpp"
#include "xen/xc_cpu_idle.h"
#include "xen/libxl_translate.hpp"

namespace xapid::xen {
namespace {

backend_error failed(const char* call, int rc) {
  return {backend_error::kind::failed, std::string(call) + " failed (libxl error " + std::to_string(rc) + ")"};
}

std::string uuid_text(const libxl_uuid& u) {
  char buf[LIBXL_UUID_FMTLEN + 1];
  std::snprintf(buf, sizeof buf, LIBXL_UUID_FMT, LIBXL_UUID_BYTES(u));
  return buf;
}

domain_state state_of(const libxl_dominfo& d) {
  if (d.shutdown || d.dying)
    return d.shutdown_reason == LIBXL_SHUTDOWN_REASON_CRASH ? domain_state::crashed : domain_state::shutdown;
  if (d.paused) return domain_state::paused;
  return domain_state::running;
}

shutdown_reason reason_of(const libxl_dominfo& d) {
  if (!d.shutdown) return shutdown_reason::none;
  switch (d.shutdown_reason) {
    case LIBXL_SHUTDOWN_REASON_POWEROFF: return shutdown_reason::poweroff;
    case LIBXL_SHUTDOWN_REASON_REBOOT:
    case LIBXL_SHUTDOWN_REASON_SOFT_RESET: return shutdown_reason::reboot;
    case LIBXL_SHUTDOWN_REASON_SUSPEND: return shutdown_reason::suspend;
    case LIBXL_SHUTDOWN_REASON_CRASH:
    case LIBXL_SHUTDOWN_REASON_WATCHDOG: return shutdown_reason::crash;
    default: return shutdown_reason::halt;
  }
}

struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

struct libxl_backend::handles {
  xentoollog_logger_stdiostream* logger = nullptr;
  libxl_ctx* ctx = nullptr;
  struct xs_handle* xs = nullptr;
  void* xc = nullptr;                   // libxenctrl: physical CPUs' idle time (xc_cpu_idle.h)
  std::mutex cpu_mu;
  std::vector<std::uint64_t> cpu_busy;  // the last reading: busy time never goes back
  ~handles() {
    xapid_xc_close(xc);
    if (xs) xs_close(xs);
    if (ctx) libxl_ctx_free(ctx);
    if (logger) xtl_logger_destroy(reinterpret_cast<xentoollog_logger*>(logger));
  }
};

result<std::unique_ptr<libxl_backend>, std::string> libxl_backend::open() {
  if (!xen_hypervisor_present())
    return fail(std::string("this is not a Xen control domain (/proc/xen/capabilities does not say control_d)"));
  auto h = std::make_unique<handles>();
  h->logger = xtl_createlogger_stdiostream(stderr, XTL_ERROR, 0);
  if (!h->logger) return fail(std::string("cannot create libxl's logger"));
  if (int rc = libxl_ctx_alloc(&h->ctx, LIBXL_VERSION, 0, reinterpret_cast<xentoollog_logger*>(h->logger)); rc != 0)
    return fail("libxl_ctx_alloc failed (libxl error " + std::to_string(rc) + ")");
  h->xs = xs_open(0);
  if (!h->xs) return fail(std::string("cannot open xenstore: ") + std::strerror(errno));
  h->xc = xapid_xc_open();
  if (!h->xc) return fail(std::string("cannot open libxenctrl: ") + std::strerror(errno));
  return std::unique_ptr<libxl_backend>(new libxl_backend(std::move(h)));
}

libxl_backend::libxl_backend(std::unique_ptr<handles> h) : h_(std::move(h)) {}
libxl_backend::~libxl_backend() = default;

host_info libxl_backend::host() {
  host_info info;
  libxl_physinfo phys;
  libxl_physinfo_init(&phys);
  if (libxl_get_physinfo(h_->ctx, &phys) == 0) {
    info.cpu_count = static_cast<int>(phys.nr_cpus);
    info.cpu_speed_mhz = phys.cpu_khz / 1000;
    info.memory_total_bytes = static_cast<std::int64_t>(phys.total_pages) * 4096;
    info.memory_free_bytes = static_cast<std::int64_t>(phys.free_pages) * 4096;
  }
  libxl_physinfo_dispose(&phys);
  if (const libxl_version_info* v = libxl_get_version_info(h_->ctx))
    info.xen_version = std::to_string(v->xen_version_major) + "." + std::to_string(v->xen_version_minor) +
                       (v->xen_version_extra ? v->xen_version_extra : "");
  // The CPU's vendor and model, as dom0 sees them.
  if (FILE* f = std::fopen("/proc/cpuinfo", "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, f)) {
      std::string l(line);
      auto value = [&] {
        auto colon = l.find(':');
        std::string v = colon == std::string::npos ? "" : l.substr(colon + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        v.erase(v.find_last_not_of(" \t\n") + 1);
        return v;
      };
      if (info.cpu_vendor.empty() && l.rfind("vendor_id", 0) == 0) info.cpu_vendor = value();
      if (info.cpu_model.empty() && l.rfind("model name", 0) == 0) info.cpu_model = value();
    }
    std::fclose(f);
  }
  return info;
}

backend_result<int> libxl_backend::create(const domain_config& config) {
  owned_libxl_config c;
  if (auto r = fill_libxl_config(config, c.c); !r) return fail(backend_error{backend_error::kind::failed, r.error()});
  // Refuse what does not fit before libxl tries, with the numbers the API reports.
  std::int64_t needed = config.memory_target_bytes ? config.memory_target_bytes : config.memory_max_bytes;
  if (auto free_bytes = host().memory_free_bytes; needed > free_bytes)
    return fail(backend_error{backend_error::kind::not_enough_memory, "domain needs " + std::to_string(needed) + " bytes",
                              needed, free_bytes});
  uint32_t domid = INVALID_DOMID;
  // libxl builds the domain paused; the caller unpauses it (as xl does unless -p).
  if (int rc = libxl_domain_create_new(h_->ctx, &c.c, &domid, nullptr, nullptr); rc != 0) {
    if (domid != static_cast<uint32_t>(INVALID_DOMID)) libxl_domain_destroy(h_->ctx, domid, nullptr);
    return fail(failed("libxl_domain_create_new", rc));
  }
  return static_cast<int>(domid);
}

backend_result<void> libxl_backend::unpause(int domid) {
  if (int rc = libxl_domain_unpause(h_->ctx, static_cast<uint32_t>(domid), nullptr); rc != 0)
    return fail(failed("libxl_domain_unpause", rc));
  return ok_v;
}

backend_result<void> libxl_backend::pause(int domid) {
  if (int rc = libxl_domain_pause(h_->ctx, static_cast<uint32_t>(domid), nullptr); rc != 0)
    return fail(failed("libxl_domain_pause", rc));
  return ok_v;
}

backend_result<void> libxl_backend::shutdown(int domid, shutdown_reason reason, const std::atomic<bool>* cancelled) {
  const auto id = static_cast<uint32_t>(domid);
  int rc = reason == shutdown_reason::reboot ? libxl_domain_reboot(h_->ctx, id, nullptr)
                                             : libxl_domain_shutdown(h_->ctx, id, nullptr);
  if (rc != 0) return fail(failed(reason == shutdown_reason::reboot ? "libxl_domain_reboot" : "libxl_domain_shutdown", rc));
  // The guest stops in its own time; wait for it, bounded, as xapi's clean shutdown does.
  auto deadline = monotonic_now() + std::chrono::minutes(20);
  for (;;) {
    libxl_dominfo info;
    libxl_dominfo_init(&info);
    int found = libxl_domain_info(h_->ctx, &info, id);
    bool stopped = found != 0 || info.shutdown || info.dying;
    libxl_dominfo_dispose(&info);
    if (stopped) return ok_v;
    if (cancelled && *cancelled)
      return fail(backend_error{backend_error::kind::cancelled, "the wait for the guest to shut down was cancelled"});
    if (monotonic_now() > deadline || stopping_)
      return fail(backend_error{backend_error::kind::not_acknowledged, "the guest did not shut down within 20 minutes"});
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

backend_result<void> libxl_backend::destroy(int domid) {
  if (int rc = libxl_domain_destroy(h_->ctx, static_cast<uint32_t>(domid), nullptr); rc != 0) {
    libxl_dominfo info;
    libxl_dominfo_init(&info);
    bool exists = libxl_domain_info(h_->ctx, &info, static_cast<uint32_t>(domid)) == 0;
    libxl_dominfo_dispose(&info);
    if (!exists) return fail(backend_error{backend_error::kind::no_such_domain, "no domain " + std::to_string(domid)});
    return fail(failed("libxl_domain_destroy", rc));
  }
  return ok_v;
}

backend_result<void> libxl_backend::suspend(int domid, const std::string& path) {
  fd_guard f{::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
  if (f.fd < 0) return fail(backend_error{backend_error::kind::failed, "cannot write the suspend image " + path});
  if (int rc = libxl_domain_suspend(h_->ctx, static_cast<uint32_t>(domid), f.fd, 0, nullptr); rc != 0)
    return fail(failed("libxl_domain_suspend", rc));
  if (::fsync(f.fd) != 0) return fail(backend_error{backend_error::kind::failed, "cannot sync the suspend image " + path});
  return destroy(domid);  // its state is in the image; the suspended domain goes
}

backend_result<int> libxl_backend::resume(const domain_config& config, const std::string& path) {
  owned_libxl_config c;
  if (auto r = fill_libxl_config(config, c.c); !r) return fail(backend_error{backend_error::kind::failed, r.error()});
  fd_guard f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return fail(backend_error{backend_error::kind::failed, "cannot read the suspend image " + path});
  libxl_domain_restore_params params;
  libxl_domain_restore_params_init(&params);
  uint32_t domid = INVALID_DOMID;
  int rc = libxl_domain_create_restore(h_->ctx, &c.c, &domid, f.fd, -1, &params, nullptr, nullptr);
  libxl_domain_restore_params_dispose(&params);
  if (rc != 0) {
    if (domid != static_cast<uint32_t>(INVALID_DOMID)) libxl_domain_destroy(h_->ctx, domid, nullptr);
    return fail(failed("libxl_domain_create_restore", rc));
  }
  return static_cast<int>(domid);
}

// libxenlight migrates through a stream between the two hosts' toolstacks
// (libxl_domain_suspend with LIBXL_SUSPEND_LIVE on one end, libxl_domain_create_restore on the
// other); this build does not open that stream yet, and says so rather than pretend.
backend_result<std::int64_t> libxl_backend::send_memory(int, const std::atomic<bool>*) {
  return fail(backend_error{backend_error::kind::failed,
                            "live migration with libxenlight needs the migration stream between the hosts, "
                            "which this build does not make yet"});
}

backend_result<void> libxl_backend::set_memory_target(int domid, std::int64_t bytes) {
  if (int rc = libxl_set_memory_target(h_->ctx, static_cast<uint32_t>(domid), bytes / 1024, 0, 1); rc != 0)
    return fail(failed("libxl_set_memory_target", rc));
  return ok_v;
}

backend_result<void> libxl_backend::set_vcpus(int domid, int vcpus) {
  libxl_bitmap map;
  libxl_bitmap_init(&map);
  if (libxl_cpu_bitmap_alloc(h_->ctx, &map, vcpus) != 0)
    return fail(backend_error{backend_error::kind::failed, "cannot allocate a vCPU map"});
  for (int i = 0; i < vcpus; ++i) libxl_bitmap_set(&map, i);
  int rc = libxl_set_vcpuonline(h_->ctx, static_cast<uint32_t>(domid), &map, nullptr);
  libxl_bitmap_dispose(&map);
  if (rc != 0) return fail(failed("libxl_set_vcpuonline", rc));
  return ok_v;
}

std::vector<domain_info> libxl_backend::list() {
  int n = 0;
  libxl_dominfo* all = libxl_list_domain(h_->ctx, &n);
  std::vector<domain_info> out;
  for (int i = 0; i < n; ++i) {
    if (all[i].domid == 0) continue;  // the control domain is the host itself
    domain_info d;
    d.domid = static_cast<int>(all[i].domid);
    d.uuid = uuid_text(all[i].uuid);
    d.state = state_of(all[i]);
    d.reason = reason_of(all[i]);
    d.memory_bytes = static_cast<std::int64_t>(all[i].current_memkb) * 1024;
    d.vcpus = static_cast<int>(all[i].vcpu_online);
    out.push_back(std::move(d));
  }
  if (all) libxl_dominfo_list_free(all, n);
  return out;
}

backend_result<void> libxl_backend::plug_disk(int domid, const disk& d) {
  libxl_device_disk dev;
  libxl_device_disk_init(&dev);
  fill_libxl_disk(d, dev);
  int rc = libxl_device_disk_add(h_->ctx, static_cast<uint32_t>(domid), &dev, nullptr);
  libxl_device_disk_dispose(&dev);
  if (rc != 0) return fail(failed("libxl_device_disk_add", rc));
  return ok_v;
}

backend_result<void> libxl_backend::unplug_disk(int domid, const std::string& device) {
  libxl_device_disk dev;
  libxl_device_disk_init(&dev);
  int rc = libxl_vdev_to_device_disk(h_->ctx, static_cast<uint32_t>(domid), device.c_str(), &dev);
  if (rc == 0) rc = libxl_device_disk_remove(h_->ctx, static_cast<uint32_t>(domid), &dev, nullptr);
  libxl_device_disk_dispose(&dev);
  if (rc != 0) return fail(failed("libxl_device_disk_remove", rc));
  return ok_v;
}

backend_result<void> libxl_backend::plug_nic(int domid, const nic& n) {
  libxl_device_nic dev;
  libxl_device_nic_init(&dev);
  dev.devid = n.index;
  if (!n.mac.empty() && !parse_libxl_mac(n.mac, dev.mac)) {
    libxl_device_nic_dispose(&dev);
    return fail(backend_error{backend_error::kind::failed, "invalid MAC " + n.mac});
  }
  dev.bridge = n.bridge.empty() ? nullptr : ::strdup(n.bridge.c_str());
  int rc = libxl_device_nic_add(h_->ctx, static_cast<uint32_t>(domid), &dev, nullptr);
  libxl_device_nic_dispose(&dev);
  if (rc != 0) return fail(failed("libxl_device_nic_add", rc));
  return ok_v;
}

backend_result<void> libxl_backend::unplug_nic(int domid, int index) {
  libxl_device_nic dev;
  libxl_device_nic_init(&dev);
  int rc = libxl_devid_to_device_nic(h_->ctx, static_cast<uint32_t>(domid), index, &dev);
  if (rc == 0) rc = libxl_device_nic_remove(h_->ctx, static_cast<uint32_t>(domid), &dev, nullptr);
  libxl_device_nic_dispose(&dev);
  if (rc != 0) return fail(failed("libxl_device_nic_remove", rc));
  return ok_v;
}

std::optional<guest_report> libxl_backend::guest(int domid) {
  // Where the PV tools (xe-guest-utilities) write their report.
  const std::string base = "/local/domain/" + std::to_string(domid) + "/";
  auto read = [&](const std::string& key) -> std::optional<std::string> {
    unsigned int len = 0;
    void* v = xs_read(h_->xs, XBT_NULL, (base + key).c_str(), &len);
    if (!v) return std::nullopt;
    std::string out(static_cast<char*>(v), len);
    std::free(v);
    return out;
  };
  auto name = read("data/os_name");
  if (!name) return std::nullopt;  // no agent (yet)
  guest_report r;
  r.os_version["name"] = *name;
  for (const auto& [key, path] : {std::pair{"distro", "data/os_distro"}, {"major", "data/os_majorver"},
                                  {"minor", "data/os_minorver"}, {"uname", "data/os_uname"}})
    if (auto v = read(path)) r.os_version[key] = *v;
  for (const auto& [key, path] : {std::pair{"major", "attr/PVAddons/MajorVersion"},
                                  {"minor", "attr/PVAddons/MinorVersion"}, {"micro", "attr/PVAddons/MicroVersion"}})
    if (auto v = read(path)) r.pv_drivers_version[key] = *v;
  for (int vif = 0; vif < 7; ++vif)
    if (auto ip = read("attr/vif/" + std::to_string(vif) + "/ipv4/0")) r.networks[std::to_string(vif) + "/ip"] = *ip;
  for (const char* feature : {"feature-shutdown", "feature-suspend", "feature-vcpu-hotplug"})
    if (auto v = read(std::string("control/") + feature)) r.other[feature] = *v;
  return r;
}

void libxl_backend::stop_waiting() { stopping_ = true; }

std::string libxl_backend::dmesg() {
  std::string out;
  libxl_xen_console_reader* reader = libxl_xen_console_read_start(h_->ctx, 0);
  if (!reader) return out;
  char* line = nullptr;
  while (libxl_xen_console_read_line(h_->ctx, reader, &line) > 0 && line) out += line;
  libxl_xen_console_read_finish(h_->ctx, reader);
  return out;
}

}  // namespace xapid::xen

namespace xapid::xen {
namespace {

std::string read_small_file(const std::string& path) {
  std::string out(64 * 1024, '\0');
  fd_guard f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return {};
  ssize_t n = ::read(f.fd, out.data(), out.size());
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

}  // namespace

std::vector<domain_counters> libxl_backend::read_domain_counters() {
  std::vector<domain_counters> out;
  std::map<int, std::size_t> by_domid;
  for (const auto& d : list()) {
    if (d.state != domain_state::running && d.state != domain_state::paused) continue;
    domain_counters c;
    c.domid = d.domid;
    c.uuid = d.uuid;
    c.memory_bytes = d.memory_bytes;
    // The guest agent's report of its free memory (xapi's rrdp-squeezed reads the same key).
    const std::string key = "/local/domain/" + std::to_string(d.domid) + "/data/meminfo_free";
    unsigned int len = 0;
    if (void* v = xs_read(h_->xs, XBT_NULL, key.c_str(), &len)) {
      c.memory_internal_free_bytes = parse_meminfo_kib(std::string_view(static_cast<char*>(v), len));
      std::free(v);
    }
    int n = 0, cpus = 0;
    if (libxl_vcpuinfo* v = libxl_list_vcpu(h_->ctx, static_cast<uint32_t>(d.domid), &n, &cpus)) {
      for (int i = 0; i < n; ++i)
        if (v[i].online) c.vcpu_time_ns.push_back(v[i].vcpu_time);
      libxl_vcpuinfo_list_free(v, n);
    }
    by_domid[d.domid] = out.size();
    out.push_back(std::move(c));
  }
  // A guest's NIC is dom0's vifD.N: what dom0 sends the guest receives.
  for (const auto& nic : parse_net_dev(read_small_file("/proc/net/dev")))
    if (auto vif = parse_vif_name(nic.name); vif && by_domid.count(vif->first))
      out[by_domid[vif->first]].nics.push_back({std::to_string(vif->second), nic.out_bytes, nic.in_bytes});
  // A guest's disk is its block backend's statistics, in sectors of 512 bytes.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/bus/xen-backend/devices", ec)) {
    auto vbd = parse_block_backend(entry.path().filename().string());
    if (!vbd || !by_domid.count(vbd->domid)) continue;
    auto sectors = [&](const char* file) {
      return std::strtoull(read_small_file(entry.path().string() + "/statistics/" + file).c_str(), nullptr, 10) * 512;
    };
    out[by_domid[vbd->domid]].disks.push_back({vbd->device, sectors("rd_sect"), sectors("wr_sect")});
  }
  return out;
}

host_counters libxl_backend::read_host_counters() {
  host_counters c;
  libxl_physinfo phys;
  libxl_physinfo_init(&phys);
  if (libxl_get_physinfo(h_->ctx, &phys) == 0) {
    c.memory_total_bytes = static_cast<std::int64_t>(phys.total_pages) * 4096;
    c.memory_free_bytes = static_cast<std::int64_t>(phys.free_pages) * 4096;
  }
  const int cpus = static_cast<int>(std::min<std::uint32_t>(phys.max_cpu_id + 1, 4096));
  libxl_physinfo_dispose(&phys);
  // Physical CPUs' busy time: Xen's idle time per CPU (as xapi's rrdd reads it).
  std::vector<std::uint64_t> idle(static_cast<std::size_t>(std::max(cpus, 1)));
  if (int found = xapid_xc_cpu_idle(h_->xc, idle.data(), static_cast<int>(idle.size())); found > 0) {
    idle.resize(static_cast<std::size_t>(found));
    const auto now_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(monotonic_now().time_since_epoch()).count());
    std::lock_guard lock(h_->cpu_mu);
    h_->cpu_busy = busy_from_idle(now_ns, idle, h_->cpu_busy);
    c.cpu_busy_ns = h_->cpu_busy;
  }
  c.loadavg = parse_loadavg(read_small_file("/proc/loadavg")).value_or(0);
  for (auto& nic : parse_net_dev(read_small_file("/proc/net/dev")))
    if (!nic.name.starts_with("vif") && !nic.name.starts_with("tap") && nic.name != "lo" && !nic.name.starts_with("xenbr"))
      c.nics.push_back(std::move(nic));
  return c;
}

}  // namespace xapid::xen
