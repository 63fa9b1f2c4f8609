// The cost of performance data with 1,000 running simulated VMs (issue 19): CPU of one
// collection (the backend's counters, rates, archive updates) every 5 s as a share of one core
// (goal < 5 %), the archives' own update beside librrd's rrd_update_r on files of the same
// shape in the same run (the ceiling of the well-kept library), and /rrd_updates' answer for
// every VM over the last 10 minutes (time and size, XML and JSON). In-process: HTTP adds the
// sending, as for any answer.
//   metrics_bench [VMS]
#include <rrd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "metrics/collector.hpp"
#include "metrics/updates.hpp"
#include "tests/support/temp_dir.hpp"
#include "xen/sim_backend.hpp"

using namespace xapid;

namespace {

double cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const int vms = argc > 1 ? std::atoi(argv[1]) : 1000;
  testing::temp_dir dir;
  xen::sim_options options;
  options.cpu_count = 64;
  options.memory_total_bytes = std::int64_t{vms + 16} << 30;
  auto sim = xen::sim_backend::open(options).value();
  for (int i = 0; i < vms; ++i) {
    xen::domain_config c;
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012d", i);
    c.uuid = uuid;
    c.memory_max_bytes = c.memory_target_bytes = 256 << 20;
    c.vcpus_max = c.vcpus = 2;
    c.disks = {{"xvda", "", false, false}};
    c.nics = {{0, "", "xenbr0"}};
    int domid = sim->create(c).value();
    (void)sim->unpause(domid);
    if (i % 2) sim->set_load(c.uuid, {0.8, 1 << 20, 1 << 20, 1 << 16, 1 << 16});
  }
  manual_clock clk(1700000000000);
  metrics::collector collector(*sim, clk, "host", dir.path() + "/rrd");
  // 10 minutes of samples, every 5 s of the manual clock.
  const int samples = 121;
  const double c0 = cpu_ms();
  for (int s = 0; s < samples; ++s) {
    clk.advance_ms(5000);
    collector.collect();
  }
  const double per_collection = (cpu_ms() - c0) / samples;
  std::printf("collection of %d VMs: %.2f ms CPU each, %.2f %% of one core at one every 5 s (goal < 5 %%)\n", vms,
              per_collection, per_collection / 50.0);

  // The archives' own update against librrd's on the same shape (12 sources, 4 archives).
  std::vector<std::pair<std::string, double>> sample;
  for (int i = 0; i < 12; ++i) sample.emplace_back("ds" + std::to_string(i), i * 0.5);
  std::vector<metrics::rrd> ours(static_cast<std::size_t>(vms), metrics::rrd(metrics::standard_layout(false)));
  const char* defs[16];
  std::vector<std::string> def_text;
  for (int i = 0; i < 12; ++i) def_text.push_back("DS:ds" + std::to_string(i) + ":GAUGE:300:0:U");
  for (int i = 0; i < 12; ++i) defs[i] = def_text[static_cast<std::size_t>(i)].c_str();
  defs[12] = "RRA:AVERAGE:0.5:1:120";
  defs[13] = "RRA:AVERAGE:0.5:12:120";
  defs[14] = "RRA:AVERAGE:0.5:720:168";
  defs[15] = "RRA:AVERAGE:0.5:17280:366";
  std::filesystem::create_directories(dir.path() + "/librrd");
  for (int v = 0; v < vms; ++v)
    if (rrd_create_r((dir.path() + "/librrd/" + std::to_string(v)).c_str(), 5, 1700000000, 16, defs) != 0) {
      std::printf("librrd: %s\n", rrd_get_error());
      return 1;
    }
  double ours_ms = 1e9, theirs_ms = 1e9;
  for (int round = 1; round <= 5; ++round) {
    const std::int64_t t = 1700000000 + 5 * round;
    double a = cpu_ms();
    for (auto& r : ours) r.update(t, sample);
    ours_ms = std::min(ours_ms, cpu_ms() - a);
    std::string values = std::to_string(t);
    for (const auto& [n, v] : sample) values += ":" + std::to_string(v);
    a = cpu_ms();
    for (int v = 0; v < vms; ++v) {
      const char* args[1] = {values.c_str()};
      (void)rrd_update_r((dir.path() + "/librrd/" + std::to_string(v)).c_str(), nullptr, 1, args);
    }
    theirs_ms = std::min(theirs_ms, cpu_ms() - a);
  }
  std::printf("archive updates of %d objects x 12 sources (best of 5): ours %.2f ms CPU, librrd %.2f ms (%.2fx)\n", vms,
              ours_ms, theirs_ms, ours_ms / theirs_ms);

  for (bool json : {false, true}) {
    metrics::updates_query q;
    q.start = clk.now_ms() / 1000 - 595;  // within the 5 s archive's span (600 s back is the 1 min one's)
    q.json = json;
    std::string out;
    double best = 1e9;
    for (int round = 0; round < 3; ++round) {
      out.clear();
      const double a = cpu_ms();
      metrics::archive_selection every;
      every.host = true;
      collector.with_all(every, [&](const auto& archives) { (void)metrics::write_updates(archives, q, out); });
      best = std::min(best, cpu_ms() - a);
    }
    std::printf("/rrd_updates of %d VMs and the host over 10 minutes, %s: %.1f ms CPU, %.1f MB\n", vms, json ? "JSON" : "XML",
                best, static_cast<double>(out.size()) / 1e6);
  }
  return 0;
}
