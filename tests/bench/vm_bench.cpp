// VM lifecycle benchmark on the simulated host, real database on disk, all in one run:
//   ceilings: the simulated hypervisor's own start+shutdown cycle (no bookkeeping), and raw
//             RocksDB synced writes/s on the same disk (each of our cycles makes 6 synced commits:
//             admit, record, retire for start and again for shutdown);
//   ours: VM.start + VM.clean_shutdown cycles/s through the actors with 1 and 64 concurrent
//         clients, the time to start 1,000 VMs with 64 clients, and the latency an actor hop adds:
//         an operation with no work through its actor against the same two commits made directly.
// Usage: vm_bench [DIR]   (default: a directory under /tmp)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <rocksdb/db.h>

#include "tests/bench/ceilings.hpp"

#include "actors/first_boot.hpp"
#include "actors/vm_lifecycle.hpp"
#include "xen/sim_backend.hpp"

namespace {

using namespace std::chrono;
using namespace xapid;
using storage::schema;

using xapid::bench::seconds_since;


struct host {
  std::unique_ptr<storage::database> db;
  std::unique_ptr<xen::sim_backend> hv;
  real_clock clk;
  std::unique_ptr<actors::host_actors> actors;
  std::unique_ptr<actors::storage_repos> repos;
  std::unique_ptr<actors::vm_lifecycle> vms;

  explicit host(const std::string& dir) {
    std::filesystem::create_directories(dir);
    db = std::move(storage::database::open({dir + "/db"})).value();
    xen::sim_options o;
    o.memory_total_bytes = std::int64_t{1} << 40;  // room for every VM of the run
    o.cpu_count = 64;
    hv = std::move(xen::sim_backend::open(o)).value();
    auto id = actors::ensure_pool_and_host(*db, dir, "127.0.0.1", hv->host());
    actors = std::make_unique<actors::host_actors>(*db);
    repos = std::make_unique<actors::storage_repos>(*db, *actors, clk, id->host, dir);
    (void)repos->start();
    vms = std::make_unique<actors::vm_lifecycle>(*db, *hv, *actors, *repos, clk, id->host);
    (void)vms->reconcile();
  }

  std::vector<std::string> make_vms(int n) {
    std::vector<std::string> refs;
    auto t = db->begin();
    for (int i = 0; i < n; ++i) {
      api::vm v;
      v.uuid = db->ids().uuid();
      v.name_label = "bench " + std::to_string(i);
      v.memory_static_min = v.memory_dynamic_min = v.memory_dynamic_max = v.memory_static_max = 256 << 20;
      v.VCPUs_max = v.VCPUs_at_startup = 1;
      v.domid = -1;
      refs.push_back(t.create(v));
    }
    (void)db->commit(std::move(t));
    return refs;
  }
};

// Cycles of start + clean_shutdown per second, `clients` at once, each on its own VM.
double cycles_per_s(host& h, int clients, double duration_s) {
  auto refs = h.make_vms(clients);
  std::atomic<long> cycles{0}, failures{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  auto start = steady_clock::now();
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      int n = 0;
      while (!stop) {
        std::string key = "OpaqueRef:bench-" + std::to_string(c) + "-" + std::to_string(n++);
        if (!h.vms->start(refs[c], false, false, key + "a") || !h.vms->clean_shutdown(refs[c], key + "b")) ++failures;
        else ++cycles;
      }
    });
  std::this_thread::sleep_for(duration<double>(duration_s));
  stop = true;
  for (auto& t : threads) t.join();
  if (failures) std::printf("  (%ld failed cycles)\n", failures.load());
  return cycles / seconds_since(start);
}

double backend_cycles_per_s(double duration_s) {
  auto hv = std::move(xen::sim_backend::open({})).value();
  xen::domain_config c;
  c.memory_max_bytes = c.memory_target_bytes = 256 << 20;
  long n = 0;
  auto start = steady_clock::now();
  while (seconds_since(start) < duration_s) {
    c.uuid = "bench-" + std::to_string(n);
    auto domid = hv->create(c);
    (void)hv->unpause(*domid);
    (void)hv->shutdown(*domid, xen::shutdown_reason::poweroff, nullptr);
    (void)hv->destroy(*domid);
    ++n;
  }
  return n / seconds_since(start);
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * (v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : (std::filesystem::temp_directory_path() / "xapid-vm-bench").string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const double seconds = 3;

  double raw = xapid::bench::raw_rocksdb_synced_writes_per_s(dir + "/raw", seconds);
  double backend = backend_cycles_per_s(1);
  std::printf("ceiling: raw RocksDB synced writes        %10.0f /s\n", raw);
  std::printf("ceiling: simulated hypervisor cycles      %10.0f /s (create, unpause, shutdown, destroy)\n", backend);

  host h(dir + "/host");
  double one = cycles_per_s(h, 1, seconds);
  double many = cycles_per_s(h, 64, seconds);
  std::printf("VM.start + VM.clean_shutdown, 1 client    %10.1f cycles/s = %.2fx of raw synced writes / 6\n", one,
              one / (raw / 6));
  std::printf("VM.start + VM.clean_shutdown, 64 clients  %10.1f cycles/s = %.2fx one client\n", many, many / one);

  auto thousand = h.make_vms(1000);
  std::atomic<std::size_t> next{0};
  std::atomic<int> failed{0};
  auto start = steady_clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < 64; ++c)
    clients.emplace_back([&, c] {
      for (std::size_t i; (i = next++) < thousand.size();)
        if (!h.vms->start(thousand[i], false, false, "OpaqueRef:start-" + std::to_string(i))) ++failed;
    });
  for (auto& t : clients) t.join();
  std::printf("start 1,000 VMs with 64 clients           %10.2f s (%d failed)\n", seconds_since(start), failed.load());

  // The actor hop: an operation whose work does nothing, through the VM's actor (admit and retire
  // are one synced commit each), against the same two commits made directly by the caller.
  auto vm = h.make_vms(1).front();
  const std::size_t vm_cls = schema::get().class_of<api::vm>();
  const std::size_t current = *schema::get().field_index(vm_cls, "current_operations");
  std::vector<double> hop, direct;
  for (int i = 0; i < 500; ++i) {
    auto t0 = steady_clock::now();
    (void)h.actors->run(vm_cls, vm, "start", "OpaqueRef:hop", [] { return api::api_result<wire::value>(wire::value("")); });
    hop.push_back(seconds_since(t0) * 1e6);
    t0 = steady_clock::now();
    auto a = h.db->begin();
    a.add_to_map(vm_cls, vm, current, "OpaqueRef:direct", wire::value("start"));
    (void)h.db->commit(std::move(a));
    auto b = h.db->begin();
    b.remove_from_map(vm_cls, vm, current, "OpaqueRef:direct");
    (void)h.db->commit(std::move(b));
    direct.push_back(seconds_since(t0) * 1e6);
  }
  std::printf("operation through its actor              p50 %8.0f us  p99 %8.0f us\n", percentile(hop, 0.5),
              percentile(hop, 0.99));
  std::printf("the same two commits made directly        p50 %8.0f us  p99 %8.0f us\n", percentile(direct, 0.5),
              percentile(direct, 0.99));
  std::printf("the actor hop adds                        p50 %8.0f us\n", percentile(hop, 0.5) - percentile(direct, 0.5));
  h.vms.reset();
  h.repos.reset();
  h.actors.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
