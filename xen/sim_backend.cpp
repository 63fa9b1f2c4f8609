#include "xen/sim_backend.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace xapid::xen {
namespace {

backend_error no_such_domain(int domid) {
  return {backend_error::kind::no_such_domain, "no domain " + std::to_string(domid)};
}

backend_error bad_state(int domid, const char* wanted) {
  return {backend_error::kind::bad_state, "domain " + std::to_string(domid) + " is not " + wanted};
}

}  // namespace

result<std::unique_ptr<sim_backend>, std::string> sim_backend::open(sim_options options) {
  std::unique_ptr<sim_backend> b(new sim_backend(options));
  if (options.state_file.empty()) return b;
  std::ifstream in(options.state_file);
  if (!in) return b;  // first start: no domains yet
  // One domain per line: domid uuid state reason memory vcpus; the first line is next_domid.
  std::string line;
  if (!std::getline(in, line)) return fail("empty simulator state file " + options.state_file);
  b->next_domid_ = std::stoi(line);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    domain_info d;
    int state = 0, reason = 0;
    if (!(fields >> d.domid >> d.uuid >> state >> reason >> d.memory_bytes >> d.vcpus) || state < 0 || state > 3 ||
        reason < 0 || reason > 5)
      return fail("corrupt line in simulator state file " + options.state_file + ": " + line);
    d.state = static_cast<domain_state>(state);
    d.reason = static_cast<shutdown_reason>(reason);
    b->domains_[d.domid] = d;
  }
  return b;
}

sim_backend::sim_backend(sim_options options) : options_(std::move(options)), faults_(options_.fault_seed) {}

void sim_backend::save_locked() {
  if (options_.state_file.empty()) return;
  std::string tmp = options_.state_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << next_domid_ << "\n";
    for (const auto& [id, d] : domains_)
      out << d.domid << " " << d.uuid << " " << static_cast<int>(d.state) << " " << static_cast<int>(d.reason) << " "
          << d.memory_bytes << " " << d.vcpus << "\n";
  }
  std::rename(tmp.c_str(), options_.state_file.c_str());
}

backend_result<std::map<int, domain_info>::iterator> sim_backend::find_locked(int domid) {
  auto it = domains_.find(domid);
  if (it == domains_.end()) return fail(no_such_domain(domid));
  return it;
}

std::int64_t sim_backend::used_locked() const {
  std::int64_t used = options_.dom0_memory_bytes;
  for (const auto& [id, d] : domains_) used += d.memory_bytes;
  return used;
}

backend_result<void> sim_backend::injected_fault(const char* operation) {
  if (options_.fault_probability > 0 &&
      std::uniform_real_distribution<double>(0, 1)(faults_) < options_.fault_probability)
    return fail(backend_error{backend_error::kind::failed, std::string("injected fault: ") + operation});
  return ok_v;
}

void sim_backend::takes_time() const {
  if (options_.operation_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(options_.operation_ms));
}

host_info sim_backend::host() {
  std::lock_guard lock(mu_);
  return host_info{options_.cpu_count, "GenuineIntel", "Simulated Xeon", 2400, options_.memory_total_bytes,
                   options_.memory_total_bytes - used_locked(), "4.17 (simulated)"};
}

backend_result<int> sim_backend::build_locked(const domain_config& config, std::int64_t memory) {
  for (const auto& [id, d] : domains_)
    if (d.uuid == config.uuid)
      return fail(backend_error{backend_error::kind::domain_exists, "a domain of " + config.uuid + " exists"});
  std::int64_t available = options_.memory_total_bytes - used_locked();
  if (memory > available)
    return fail(backend_error{backend_error::kind::not_enough_memory,
                              "domain needs " + std::to_string(memory) + " bytes", memory, available});
  domain_info d;
  d.domid = next_domid_++;
  d.uuid = config.uuid;
  d.state = domain_state::paused;
  d.memory_bytes = memory;
  d.vcpus = config.vcpus;
  domains_[d.domid] = d;
  log_locked("d" + std::to_string(d.domid) + ": built for " + config.uuid + ", " + std::to_string(memory >> 20) + " MiB");
  auto& devices = devices_[d.domid];
  for (const auto& disk : config.disks) devices.insert("vbd/" + disk.device);
  for (const auto& nic : config.nics) devices.insert("vif/" + std::to_string(nic.index));
  save_locked();
  return d.domid;
}

backend_result<int> sim_backend::create(const domain_config& config) {
  takes_time();
  std::lock_guard lock(mu_);
  if (auto f = injected_fault("create"); !f) return fail(f.error());
  if (config.vcpus < 1 || config.vcpus > config.vcpus_max)
    return fail(backend_error{backend_error::kind::failed, "vcpus must be 1.." + std::to_string(config.vcpus_max)});
  return build_locked(config, config.memory_target_bytes > 0 ? config.memory_target_bytes : config.memory_max_bytes);
}

backend_result<void> sim_backend::unpause(int domid) {
  std::lock_guard lock(mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  if (it->second.state != domain_state::paused) return fail(bad_state(domid, "paused"));
  if (auto f = injected_fault("unpause"); !f) return f;
  it->second.state = domain_state::running;
  save_locked();
  return ok_v;
}

backend_result<void> sim_backend::pause(int domid) {
  std::lock_guard lock(mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  if (it->second.state != domain_state::running) return fail(bad_state(domid, "running"));
  it->second.state = domain_state::paused;
  save_locked();
  return ok_v;
}

backend_result<void> sim_backend::shutdown(int domid, shutdown_reason reason, const std::atomic<bool>* cancelled) {
  takes_time();
  std::unique_lock lock(mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  if (it->second.state != domain_state::running) return fail(bad_state(domid, "running"));
  if (auto f = injected_fault("shutdown"); !f) return f;
  if (options_.hang_probability > 0 &&
      std::uniform_real_distribution<double>(0, 1)(faults_) < options_.hang_probability) {
    // The guest ignores the request; the caller waits until someone destroys the domain or it
    // is cancelled (a flag, looked at every 50 ms).
    log_locked("d" + std::to_string(domid) + ": ignores the shutdown request (injected fault)");
    while (!destroyed_.wait_for(lock, std::chrono::milliseconds(50),
                                [&] { return domains_.count(domid) == 0 || stopping_; }))
      if (cancelled && *cancelled)
        return fail(backend_error{backend_error::kind::cancelled, "the wait for domain " + std::to_string(domid) +
                                                                      " to shut down was cancelled"});
    return fail(backend_error{backend_error::kind::not_acknowledged,
                              "injected fault: the guest of domain " + std::to_string(domid) +
                                  " never acknowledged the shutdown"});
  }
  // The simulated guest obeys at once; a shut-down domain keeps its memory until destroyed.
  it->second.state = domain_state::shutdown;
  it->second.reason = reason;
  save_locked();
  return ok_v;
}

backend_result<void> sim_backend::guest_stops(int domid, shutdown_reason reason) {
  std::lock_guard lock(mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  it->second.state = reason == shutdown_reason::crash ? domain_state::crashed : domain_state::shutdown;
  log_locked("d" + std::to_string(domid) + (reason == shutdown_reason::crash ? ": crashed" : ": shut down by the guest"));
  it->second.reason = reason;
  save_locked();
  return ok_v;
}

backend_result<void> sim_backend::destroy(int domid) {
  std::lock_guard lock(mu_);
  if (domains_.erase(domid) == 0) return fail(no_such_domain(domid));
  devices_.erase(domid);
  log_locked("d" + std::to_string(domid) + ": destroyed");
  destroyed_.notify_all();
  save_locked();
  return ok_v;
}

backend_result<void> sim_backend::suspend(int domid, const std::string& path) {
  takes_time();
  std::lock_guard lock(mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  if (it->second.state != domain_state::running && it->second.state != domain_state::paused)
    return fail(bad_state(domid, "running or paused"));
  if (auto f = injected_fault("suspend"); !f) return f;
  {
    // The image records what resume needs to check it is the same guest.
    std::ofstream out(path, std::ios::trunc);
    out << "xapid-sim-suspend-image 1\n" << it->second.uuid << " " << it->second.memory_bytes << " " << it->second.vcpus << "\n";
    if (!out) return fail(backend_error{backend_error::kind::failed, "cannot write the suspend image " + path});
  }
  devices_.erase(it->first);
  domains_.erase(it);
  destroyed_.notify_all();
  save_locked();
  return ok_v;
}

backend_result<int> sim_backend::resume(const domain_config& config, const std::string& path) {
  takes_time();
  std::lock_guard lock(mu_);
  std::ifstream in(path);
  std::string magic, uuid;
  int version = 0, vcpus = 0;
  std::int64_t memory = 0;
  if (!(in >> magic >> version >> uuid >> memory >> vcpus) || magic != "xapid-sim-suspend-image" || version != 1)
    return fail(backend_error{backend_error::kind::failed, "not a suspend image: " + path});
  if (uuid != config.uuid)
    return fail(backend_error{backend_error::kind::failed, "the suspend image " + path + " is of " + uuid});
  if (auto f = injected_fault("resume"); !f) return fail(f.error());
  domain_config restored = config;
  restored.vcpus = vcpus;
  return build_locked(restored, memory);
}

backend_result<void> sim_backend::set_memory_target(int domid, std::int64_t bytes) {
  std::lock_guard lock(mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  std::int64_t available = options_.memory_total_bytes - used_locked() + it->second.memory_bytes;
  if (bytes > available)
    return fail(backend_error{backend_error::kind::not_enough_memory, "balloon target too high", bytes, available});
  it->second.memory_bytes = bytes;
  save_locked();
  return ok_v;
}

backend_result<void> sim_backend::set_vcpus(int domid, int vcpus) {
  std::lock_guard lock(mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  if (vcpus < 1) return fail(backend_error{backend_error::kind::failed, "a domain needs a vcpu"});
  it->second.vcpus = vcpus;
  save_locked();
  return ok_v;
}

std::vector<domain_info> sim_backend::list() {
  std::lock_guard lock(mu_);
  std::vector<domain_info> out;
  for (const auto& [id, d] : domains_) out.push_back(d);
  return out;
}

}  // namespace xapid::xen

namespace xapid::xen {
namespace {

backend_result<void> plug_device(std::map<int, domain_info>& domains, std::map<int, std::set<std::string>>& devices,
                                 int domid, const std::string& name, bool plug) {
  auto it = domains.find(domid);
  if (it == domains.end()) return fail(no_such_domain(domid));
  if (it->second.state != domain_state::running && it->second.state != domain_state::paused)
    return fail(bad_state(domid, "running or paused"));
  auto& set = devices[domid];
  if (plug && !set.insert(name).second)
    return fail(backend_error{backend_error::kind::failed, "device " + name + " is already plugged"});
  if (!plug && set.erase(name) == 0)
    return fail(backend_error{backend_error::kind::failed, "device " + name + " is not plugged"});
  return ok_v;
}

}  // namespace

backend_result<void> sim_backend::plug_disk(int domid, const disk& d) {
  std::lock_guard lock(mu_);
  return plug_device(domains_, devices_, domid, "vbd/" + d.device, true);
}
backend_result<void> sim_backend::unplug_disk(int domid, const std::string& device) {
  std::lock_guard lock(mu_);
  return plug_device(domains_, devices_, domid, "vbd/" + device, false);
}
backend_result<void> sim_backend::plug_nic(int domid, const nic& n) {
  std::lock_guard lock(mu_);
  return plug_device(domains_, devices_, domid, "vif/" + std::to_string(n.index), true);
}
backend_result<void> sim_backend::unplug_nic(int domid, int index) {
  std::lock_guard lock(mu_);
  return plug_device(domains_, devices_, domid, "vif/" + std::to_string(index), false);
}

std::optional<guest_report> sim_backend::guest(int domid) {
  std::lock_guard lock(mu_);
  auto it = domains_.find(domid);
  if (it == domains_.end() || it->second.state != domain_state::running) return std::nullopt;
  unsigned h = 0;
  for (char c : it->second.uuid) h = h * 31 + static_cast<unsigned char>(c);
  guest_report r;
  r.os_version = {{"name", "Debian GNU/Linux 12 (simulated)"}, {"distro", "debian"}, {"major", "12"},
                  {"minor", "0"}, {"uname", "6.1.0-sim-amd64"}};
  r.pv_drivers_version = {{"major", "9"}, {"minor", "0"}, {"micro", "0"}};
  r.networks = {{"0/ip", "10." + std::to_string((h >> 16) & 0xff) + "." + std::to_string((h >> 8) & 0xff) + "." +
                             std::to_string(1 + h % 254)}};
  r.other = {{"feature-shutdown", "1"}, {"feature-suspend", "1"}, {"feature-vcpu-hotplug", "1"},
             {"has-vendor-device", "0"}};
  return r;
}

}  // namespace xapid::xen

namespace xapid::xen {

void sim_backend::stop_waiting() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  destroyed_.notify_all();
}

void sim_backend::tick() {
  std::lock_guard lock(mu_);
  if (options_.crash_probability <= 0) return;
  bool changed = false;
  for (auto& [domid, d] : domains_) {
    if (d.state != domain_state::running) continue;
    if (std::uniform_real_distribution<double>(0, 1)(faults_) >= options_.crash_probability) continue;
    d.state = domain_state::crashed;
    d.reason = shutdown_reason::crash;
    log_locked("d" + std::to_string(domid) + ": crashed (injected fault)");
    changed = true;
  }
  if (changed) save_locked();
}

void sim_backend::log_locked(std::string line) {
  messages_.push_back("(XEN) " + std::move(line));
  if (messages_.size() > 1000) messages_.pop_front();
}

std::string sim_backend::dmesg() {
  std::lock_guard lock(mu_);
  std::string out = "(XEN) Xen version 4.17 (simulated by xapid)\n(XEN) Processors: " +
                    std::to_string(options_.cpu_count) + "\n(XEN) Memory: " +
                    std::to_string(options_.memory_total_bytes >> 20) + " MiB, " +
                    std::to_string(options_.dom0_memory_bytes >> 20) + " MiB for domain 0\n";
  for (const auto& m : messages_) out += m + "\n";
  return out;
}

}  // namespace xapid::xen
