#include "xen/sim_backend.hpp"

#include "common/clock.hpp"

#include <algorithm>
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

void log_to(std::deque<std::string>& messages, std::string line) {
  messages.push_back("(XEN) " + std::move(line));
  if (messages.size() > 1000) messages.pop_front();
}

}  // namespace

// The state file: "xapid-sim-world 1", then per host a line "host NAME NEXT_DOMID" and its
// domains, one per line: domid uuid state reason memory vcpus. (A file of one host, as this
// simulator wrote before it had worlds, starts with next_domid: its host is the first to attach.)
result<std::shared_ptr<sim_world>, std::string> sim_world::open(std::string state_file) {
  std::shared_ptr<sim_world> w(new sim_world(state_file));
  if (state_file.empty()) return w;
  std::ifstream in(state_file);
  if (!in) return w;  // first start: no domains yet
  std::string line;
  if (!std::getline(in, line)) return fail("empty simulator state file " + state_file);
  host_state* current = nullptr;
  auto corrupt = [&] { return fail("corrupt line in simulator state file " + state_file + ": " + line); };
  if (line != "xapid-sim-world 1") {
    std::istringstream first(line);
    current = &w->hosts_[""];
    if (!(first >> current->next_domid)) return corrupt();
  }
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::istringstream fields(line);
    if (line.rfind("host ", 0) == 0) {
      std::string word, name;
      int next = 0;
      if (!(fields >> word >> name >> next)) return corrupt();
      current = &w->hosts_[name];
      current->next_domid = next;
      continue;
    }
    domain_info d;
    int state = 0, reason = 0;
    if (!current || !(fields >> d.domid >> d.uuid >> state >> reason >> d.memory_bytes >> d.vcpus) || state < 0 ||
        state > 3 || reason < 0 || reason > 5)
      return corrupt();
    d.state = static_cast<domain_state>(state);
    d.reason = static_cast<shutdown_reason>(reason);
    if (!current->domains.emplace(d.domid, d).second) return corrupt();  // one domid twice
    // Domids are never reused: the next one is beyond every one in use.
    current->next_domid = std::max(current->next_domid, d.domid + 1);
  }
  return w;
}

result<std::unique_ptr<sim_backend>, std::string> sim_world::attach(const std::string& name, sim_options options) {
  if (name.empty() || name.find_first_of(" \t\n") != std::string::npos)
    return fail("a simulated host needs a name without spaces: \"" + name + "\"");
  std::lock_guard lock(mu_);
  auto it = hosts_.find(name);
  if (it == hosts_.end()) {
    // A world of one host as written before worlds: its host is this one.
    auto unnamed = hosts_.find("");
    if (unnamed != hosts_.end()) {
      auto node = hosts_.extract(unnamed);
      node.key() = name;
      it = hosts_.insert(std::move(node)).position;
    } else {
      it = hosts_.try_emplace(name).first;
    }
  }
  host_state& h = it->second;
  if (h.attached) return fail("simulated host " + name + " is already in use");
  h.attached = true;
  h.stopping = false;
  h.options = std::move(options);
  h.faults.seed(h.options.fault_seed);
  return std::unique_ptr<sim_backend>(new sim_backend(shared_from_this(), h));
}

std::vector<std::string> sim_world::hosts() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, h] : hosts_) out.push_back(name);
  return out;
}

void sim_world::save_locked() {
  if (state_file_.empty()) return;
  std::string tmp = state_file_ + ".tmp";
  bool written = false;
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "xapid-sim-world 1\n";
    for (const auto& [name, h] : hosts_) {
      out << "host " << name << " " << h.next_domid << "\n";
      for (const auto& [id, d] : h.domains)
        out << d.domid << " " << d.uuid << " " << static_cast<int>(d.state) << " " << static_cast<int>(d.reason) << " "
            << d.memory_bytes << " " << d.vcpus << "\n";
    }
    out.flush();
    written = out.good();
  }
  // A file that could not be written whole (a full disk) never replaces the good one.
  if (written) std::rename(tmp.c_str(), state_file_.c_str());
  else std::remove(tmp.c_str());
}

std::int64_t sim_world::used_locked(const host_state& h) const {
  std::int64_t used = h.options.dom0_memory_bytes;
  for (const auto& [id, d] : h.domains) used += d.memory_bytes;
  return used;
}

backend_result<int> sim_world::build_locked(host_state& h, const domain_config& config, std::int64_t memory) {
  for (const auto& [id, d] : h.domains)
    if (d.uuid == config.uuid)
      return fail(backend_error{backend_error::kind::domain_exists, "a domain of " + config.uuid + " exists"});
  std::int64_t available = h.options.memory_total_bytes - used_locked(h);
  if (memory > available)
    return fail(backend_error{backend_error::kind::not_enough_memory,
                              "domain needs " + std::to_string(memory) + " bytes", memory, available});
  domain_info d;
  d.domid = h.next_domid++;
  d.uuid = config.uuid;
  d.state = domain_state::paused;
  d.memory_bytes = memory;
  d.vcpus = config.vcpus;
  h.domains[d.domid] = d;
  log_to(h.messages, "d" + std::to_string(d.domid) + ": built for " + config.uuid + ", " + std::to_string(memory >> 20) + " MiB");
  auto& devices = h.devices[d.domid];
  for (const auto& disk : config.disks) devices.insert("vbd/" + disk.device);
  for (const auto& nic : config.nics) devices.insert("vif/" + std::to_string(nic.index));
  save_locked();
  return d.domid;
}

backend_result<int> sim_world::move_domain(const std::string& uuid, const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  auto src = hosts_.find(from), dst = hosts_.find(to);
  if (src == hosts_.end() || dst == hosts_.end() || from == to)
    return fail(backend_error{backend_error::kind::failed, "no simulated hosts " + from + " and " + to + " to move between"});
  auto& domains = src->second.domains;
  auto it = std::find_if(domains.begin(), domains.end(), [&](const auto& d) { return d.second.uuid == uuid; });
  if (it == domains.end()) return fail(backend_error{backend_error::kind::no_such_domain, "no domain of " + uuid + " on " + from});
  const domain_info moving = it->second;
  if (moving.state != domain_state::running && moving.state != domain_state::paused)
    return fail(bad_state(moving.domid, "running or paused"));
  domain_config config;
  config.uuid = uuid;
  config.vcpus = moving.vcpus;
  auto built = build_locked(dst->second, config, moving.memory_bytes);
  if (!built) return built;
  dst->second.domains[*built].state = moving.state;
  dst->second.devices[*built] = src->second.devices[moving.domid];
  src->second.devices.erase(moving.domid);
  domains.erase(it);
  log_to(src->second.messages, "d" + std::to_string(moving.domid) + ": moved to " + to);
  destroyed_.notify_all();
  save_locked();
  return built;
}

// ------------------------------------------------------------------ one host's view

result<std::unique_ptr<sim_backend>, std::string> sim_backend::open(sim_options options) {
  auto world = sim_world::open(options.state_file);
  if (!world) return fail(world.error());
  return (*world)->attach("host", std::move(options));
}

sim_backend::~sim_backend() {
  std::lock_guard lock(world_->mu_);
  h_.attached = false;
}

backend_result<std::map<int, domain_info>::iterator> sim_backend::find_locked(int domid) {
  auto it = h_.domains.find(domid);
  if (it == h_.domains.end()) return fail(no_such_domain(domid));
  return it;
}

backend_result<void> sim_backend::injected_fault(const char* operation) {
  if (h_.options.fault_probability > 0 &&
      std::uniform_real_distribution<double>(0, 1)(h_.faults) < h_.options.fault_probability)
    return fail(backend_error{backend_error::kind::failed, std::string("injected fault: ") + operation});
  return ok_v;
}

void sim_backend::takes_time() const {
  if (h_.options.operation_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(h_.options.operation_ms));
}

host_info sim_backend::host() {
  std::lock_guard lock(world_->mu_);
  return host_info{h_.options.cpu_count, "GenuineIntel", "Simulated Xeon", 2400, h_.options.memory_total_bytes,
                   h_.options.memory_total_bytes - world_->used_locked(h_), "4.17 (simulated)"};
}

backend_result<int> sim_backend::create(const domain_config& config) {
  takes_time();
  std::lock_guard lock(world_->mu_);
  if (auto f = injected_fault("create"); !f) return fail(f.error());
  if (config.vcpus < 1 || config.vcpus > config.vcpus_max)
    return fail(backend_error{backend_error::kind::failed, "vcpus must be 1.." + std::to_string(config.vcpus_max)});
  return world_->build_locked(h_, config, config.memory_target_bytes > 0 ? config.memory_target_bytes : config.memory_max_bytes);
}

backend_result<void> sim_backend::unpause(int domid) {
  std::lock_guard lock(world_->mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  if (it->second.state != domain_state::paused) return fail(bad_state(domid, "paused"));
  if (auto f = injected_fault("unpause"); !f) return f;
  it->second.state = domain_state::running;
  world_->save_locked();
  return ok_v;
}

backend_result<void> sim_backend::pause(int domid) {
  std::lock_guard lock(world_->mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  if (it->second.state != domain_state::running) return fail(bad_state(domid, "running"));
  it->second.state = domain_state::paused;
  world_->save_locked();
  return ok_v;
}

backend_result<void> sim_backend::shutdown(int domid, shutdown_reason reason, const std::atomic<bool>* cancelled) {
  takes_time();
  std::unique_lock lock(world_->mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  if (it->second.state != domain_state::running) return fail(bad_state(domid, "running"));
  if (auto f = injected_fault("shutdown"); !f) return f;
  if (h_.options.hang_probability > 0 &&
      std::uniform_real_distribution<double>(0, 1)(h_.faults) < h_.options.hang_probability) {
    // The guest ignores the request; the caller waits until someone destroys the domain or it
    // is cancelled (a flag, looked at every 50 ms).
    log_to(h_.messages, "d" + std::to_string(domid) + ": ignores the shutdown request (injected fault)");
    while (!world_->destroyed_.wait_for(lock, std::chrono::milliseconds(50),
                                [&] { return h_.domains.count(domid) == 0 || h_.stopping; }))
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
  world_->save_locked();
  return ok_v;
}

backend_result<void> sim_backend::guest_stops(int domid, shutdown_reason reason) {
  std::lock_guard lock(world_->mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  it->second.state = reason == shutdown_reason::crash ? domain_state::crashed : domain_state::shutdown;
  log_to(h_.messages, "d" + std::to_string(domid) + (reason == shutdown_reason::crash ? ": crashed" : ": shut down by the guest"));
  it->second.reason = reason;
  world_->save_locked();
  return ok_v;
}

backend_result<void> sim_backend::destroy(int domid) {
  std::lock_guard lock(world_->mu_);
  if (h_.domains.erase(domid) == 0) return fail(no_such_domain(domid));
  h_.devices.erase(domid);
  log_to(h_.messages, "d" + std::to_string(domid) + ": destroyed");
  world_->destroyed_.notify_all();
  world_->save_locked();
  return ok_v;
}

backend_result<void> sim_backend::suspend(int domid, const std::string& path) {
  takes_time();
  std::lock_guard lock(world_->mu_);
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
  h_.devices.erase(it->first);
  h_.domains.erase(it);
  world_->destroyed_.notify_all();
  world_->save_locked();
  return ok_v;
}

backend_result<int> sim_backend::resume(const domain_config& config, const std::string& path) {
  takes_time();
  std::lock_guard lock(world_->mu_);
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
  return world_->build_locked(h_, restored, memory);
}

// Rounds as Xen's pre-copy makes them: all the memory, then what the guest dirtied meanwhile (a
// tenth of the round before), until a round is under 1 % of the memory or five rounds have
// passed; the domain is paused for the last. Each round takes its bytes over the link's speed.
backend_result<std::int64_t> sim_backend::send_memory(int domid, const std::atomic<bool>* cancelled) {
  std::int64_t memory = 0, speed = 0;
  {
    std::lock_guard lock(world_->mu_);
    auto found = find_locked(domid);
    if (!found) return fail(found.error());
    if ((*found)->second.state != domain_state::running && (*found)->second.state != domain_state::paused)
      return fail(bad_state(domid, "running or paused"));
    if (auto f = injected_fault("migrate"); !f) return fail(f.error());
    memory = (*found)->second.memory_bytes;
    speed = std::max<std::int64_t>(h_.options.migration_bytes_per_second, 1);
  }
  std::int64_t sent = 0;
  std::int64_t round = memory;
  for (int i = 0; i < 5 && round > 0; ++i) {
    // The round's time, in slices that notice a cancel.
    auto left = std::chrono::microseconds(round * 1'000'000 / speed);
    while (left.count() > 0) {
      if (cancelled && cancelled->load())
        return fail(backend_error{backend_error::kind::cancelled, "the migration was cancelled"});
      const auto slice = std::min<std::chrono::microseconds>(left, std::chrono::milliseconds(50));
      std::this_thread::sleep_for(slice);
      left -= slice;
    }
    sent += round;
    if (round < memory / 100) break;
    round /= 10;
  }
  if (auto r = pause(domid); !r && r.error().what != backend_error::kind::bad_state) return fail(r.error());
  return sent;
}

backend_result<void> sim_backend::set_memory_target(int domid, std::int64_t bytes) {
  std::lock_guard lock(world_->mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  std::int64_t available = h_.options.memory_total_bytes - world_->used_locked(h_) + it->second.memory_bytes;
  if (bytes > available)
    return fail(backend_error{backend_error::kind::not_enough_memory, "balloon target too high", bytes, available});
  it->second.memory_bytes = bytes;
  world_->save_locked();
  return ok_v;
}

backend_result<void> sim_backend::set_vcpus(int domid, int vcpus) {
  std::lock_guard lock(world_->mu_);
  auto found = find_locked(domid);
  if (!found) return fail(found.error());
  auto it = *found;
  if (vcpus < 1) return fail(backend_error{backend_error::kind::failed, "a domain needs a vcpu"});
  it->second.vcpus = vcpus;
  world_->save_locked();
  return ok_v;
}

std::vector<domain_info> sim_backend::list() {
  std::lock_guard lock(world_->mu_);
  std::vector<domain_info> out;
  for (const auto& [id, d] : h_.domains) out.push_back(d);
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
  std::lock_guard lock(world_->mu_);
  return plug_device(h_.domains, h_.devices, domid, "vbd/" + d.device, true);
}
backend_result<void> sim_backend::unplug_disk(int domid, const std::string& device) {
  std::lock_guard lock(world_->mu_);
  return plug_device(h_.domains, h_.devices, domid, "vbd/" + device, false);
}
backend_result<void> sim_backend::plug_nic(int domid, const nic& n) {
  std::lock_guard lock(world_->mu_);
  return plug_device(h_.domains, h_.devices, domid, "vif/" + std::to_string(n.index), true);
}
backend_result<void> sim_backend::unplug_nic(int domid, int index) {
  std::lock_guard lock(world_->mu_);
  return plug_device(h_.domains, h_.devices, domid, "vif/" + std::to_string(index), false);
}

std::optional<guest_report> sim_backend::guest(int domid) {
  std::lock_guard lock(world_->mu_);
  auto it = h_.domains.find(domid);
  if (it == h_.domains.end() || it->second.state != domain_state::running) return std::nullopt;
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
  std::lock_guard lock(world_->mu_);
  h_.stopping = true;
  world_->destroyed_.notify_all();
}

void sim_backend::tick() {
  std::lock_guard lock(world_->mu_);
  if (h_.options.crash_probability <= 0) return;
  bool changed = false;
  for (auto& [domid, d] : h_.domains) {
    if (d.state != domain_state::running) continue;
    if (std::uniform_real_distribution<double>(0, 1)(h_.faults) >= h_.options.crash_probability) continue;
    d.state = domain_state::crashed;
    d.reason = shutdown_reason::crash;
    log_to(h_.messages, "d" + std::to_string(domid) + ": crashed (injected fault)");
    changed = true;
  }
  if (changed) world_->save_locked();
}

std::string sim_backend::dmesg() {
  std::lock_guard lock(world_->mu_);
  std::string out = "(XEN) Xen version 4.17 (simulated by xapid)\n(XEN) Processors: " +
                    std::to_string(h_.options.cpu_count) + "\n(XEN) Memory: " +
                    std::to_string(h_.options.memory_total_bytes >> 20) + " MiB, " +
                    std::to_string(h_.options.dom0_memory_bytes >> 20) + " MiB for domain 0\n";
  for (const auto& m : h_.messages) out += m + "\n";
  return out;
}

}  // namespace xapid::xen

namespace xapid::xen {

// Each running guest's counters grow by its load over the time passed, with ±10 % of seeded
// noise per step, so that graphs look alive and tests can still tell a busy guest from an idle
// one. The host's CPUs are busy with its guests' vCPUs (and 2 % for dom0); its NIC carries
// its guests' traffic.
void sim_backend::advance_counters_locked() {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(monotonic_now().time_since_epoch()).count();
  const double seconds = h_.advanced_ns == 0 ? 0 : static_cast<double>(now - h_.advanced_ns) / 1e9;
  h_.advanced_ns = now;
  if (h_.pcpu_busy_ns.size() != static_cast<std::size_t>(h_.options.cpu_count))
    h_.pcpu_busy_ns.assign(static_cast<std::size_t>(h_.options.cpu_count), 0);
  std::uniform_real_distribution<double> jitter(0.9, 1.1);
  double busy_ns = 0.02 * seconds * 1e9 * h_.options.cpu_count;
  for (auto it = h_.activity_of.begin(); it != h_.activity_of.end();)
    it = h_.domains.count(it->first) ? std::next(it) : h_.activity_of.erase(it);
  for (const auto& [domid, d] : h_.domains) {
    auto& act = h_.activity_of[domid];
    if (d.state != domain_state::running || seconds <= 0) continue;
    const sim_load load = h_.loads.count(d.uuid) ? h_.loads[d.uuid] : sim_load{};
    act.vcpu_ns.resize(static_cast<std::size_t>(std::max(d.vcpus, 1)), 0);
    for (auto& ns : act.vcpu_ns) {
      const double ran = std::clamp(load.cpu * jitter(h_.noise), 0.0, 1.0) * seconds * 1e9;
      ns += static_cast<std::uint64_t>(ran);
      busy_ns += ran;
    }
    std::vector<std::string> disks, nics;
    for (const auto& dev : h_.devices[domid]) (dev.starts_with("vbd/") ? disks : nics).push_back(dev);
    auto spread = [&](const std::vector<std::string>& devs, double in, double out) {
      for (const auto& dev : devs) {
        auto& c = act.devices[dev];
        c.first += in * seconds * jitter(h_.noise) / static_cast<double>(devs.size());
        c.second += out * seconds * jitter(h_.noise) / static_cast<double>(devs.size());
      }
    };
    spread(disks, load.disk_read_bytes, load.disk_write_bytes);
    spread(nics, load.net_rx_bytes, load.net_tx_bytes);
    if (!nics.empty()) {
      h_.pif_bytes.first += load.net_rx_bytes * seconds;
      h_.pif_bytes.second += load.net_tx_bytes * seconds;
    }
  }
  const double per_cpu = busy_ns / static_cast<double>(h_.pcpu_busy_ns.size());
  for (auto& ns : h_.pcpu_busy_ns)
    ns += static_cast<std::uint64_t>(std::min(per_cpu, seconds * 1e9));
}

std::vector<domain_counters> sim_backend::read_domain_counters() {
  std::lock_guard lock(world_->mu_);
  advance_counters_locked();
  std::vector<domain_counters> out;
  out.reserve(h_.domains.size());
  for (const auto& [domid, d] : h_.domains) {
    if (d.state != domain_state::running && d.state != domain_state::paused) continue;
    domain_counters c;
    c.domid = domid;
    c.uuid = d.uuid;
    c.memory_bytes = d.memory_bytes;
    const auto& act = h_.activity_of[domid];
    c.vcpu_time_ns = act.vcpu_ns;
    c.vcpu_time_ns.resize(static_cast<std::size_t>(std::max(d.vcpus, 1)), 0);
    // The simulated agent reports what the guest leaves free: less the busier it is.
    if (d.state == domain_state::running) {
      const double cpu = h_.loads.count(d.uuid) ? h_.loads[d.uuid].cpu : sim_load{}.cpu;
      c.memory_internal_free_bytes = static_cast<std::int64_t>(static_cast<double>(d.memory_bytes) * (0.8 - 0.6 * std::clamp(cpu, 0.0, 1.0)));
    }
    for (const auto& [dev, bytes] : act.devices) {
      const bool disk = dev.starts_with("vbd/");
      (disk ? c.disks : c.nics).push_back({dev.substr(4), static_cast<std::uint64_t>(bytes.first),
                                           static_cast<std::uint64_t>(bytes.second)});
    }
    out.push_back(std::move(c));
  }
  return out;
}

host_counters sim_backend::read_host_counters() {
  std::lock_guard lock(world_->mu_);
  advance_counters_locked();
  host_counters c;
  c.cpu_busy_ns = h_.pcpu_busy_ns;
  c.memory_total_bytes = h_.options.memory_total_bytes;
  c.memory_free_bytes = h_.options.memory_total_bytes - world_->used_locked(h_);
  double running_vcpus = 0;
  for (const auto& [domid, d] : h_.domains)
    if (d.state == domain_state::running)
      running_vcpus += std::max(d.vcpus, 1) * (h_.loads.count(d.uuid) ? h_.loads[d.uuid].cpu : sim_load{}.cpu);
  c.loadavg = running_vcpus;
  c.nics.push_back({"eth0", static_cast<std::uint64_t>(h_.pif_bytes.first), static_cast<std::uint64_t>(h_.pif_bytes.second)});
  return c;
}

void sim_backend::set_load(const std::string& uuid, const sim_load& load) {
  std::lock_guard lock(world_->mu_);
  if (auto it = h_.loads.find(uuid); it != h_.loads.end() && it->second == load) return;
  advance_counters_locked();  // what was done so far was done at the old load
  h_.loads[uuid] = load;
}

}  // namespace xapid::xen
