// The pool's order against a single host's, all on the same disk in the same run:
//   ceiling: raw RocksDB synced single-key writes/s;
//   a single host: commits/s through the local_sequencer (one synced RocksDB write per batch);
//   a pool of one: the same commits through a raft_sequencer with one voter (one O_DSYNC Raft
//     append per entry, then an unsynced RocksDB write) — the goal is no measurable cost;
//   a pool of three in this process, on 127.0.0.1 through the authenticating transport (three
//     logs on the same disk: every commit waits for two of them).
// With 1 and 16 writers each, p50/p99 commit latency beside; the median of 3 rounds.
// Usage: raft_bench [DIR]   (default: a directory under /tmp)
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "storage/database.hpp"
#include "storage/raft_sequencer.hpp"
#include "tests/bench/ceilings.hpp"
#include "tests/bench/commit_rate.hpp"
#include "tests/support/free_port.hpp"

namespace {

using namespace std::chrono;
using namespace xapid::storage;
using xapid::bench::commit_rate;
using xapid::bench::measure_commits;

// A pool of `size` voters in this process; the databases in member order.
struct pool {
  std::vector<std::unique_ptr<database>> dbs;
  std::vector<std::shared_ptr<raft_sequencer>> order;

  database& leader() {
    for (;;) {
      for (std::size_t i = 0; i < order.size(); ++i)
        if (order[i]->status().state == raft_status::role_state::leader) return *dbs[i];
      std::this_thread::sleep_for(10ms);
    }
  }
};

pool open_pool(const std::string& base, int size) {
  std::vector<raft_member> voters;
  for (int i = 1; i <= size; ++i)
    voters.push_back({static_cast<std::uint64_t>(i), "127.0.0.1:" + std::to_string(xapid::testing::free_port())});
  pool p;
  for (const auto& m : voters) {
    const std::string dir = base + "/member-" + std::to_string(m.id);
    std::filesystem::create_directories(dir);
    raft_options o;
    o.self = m;
    o.dir = dir + "/raft";
    o.pool_secret = std::string(32, 's');
    o.pool_id = std::string(16, 'p');
    o.bootstrap = voters;
    p.order.push_back(std::make_shared<raft_sequencer>(o));
    database_options d;
    d.path = dir + "/db";
    d.order = p.order.back();
    auto db = database::open(d);
    if (!db) {
      std::fprintf(stderr, "%s\n", db.error().c_str());
      std::exit(1);
    }
    p.dbs.push_back(std::move(db).value());
  }
  return p;
}

commit_rate median(std::vector<commit_rate> rounds) {
  std::sort(rounds.begin(), rounds.end(), [](const commit_rate& a, const commit_rate& b) { return a.per_s < b.per_s; });
  return rounds[rounds.size() / 2];
}

void report(const char* label, int writers, const commit_rate& r, double ceiling, double host) {
  std::printf("%-22s %2d writer%s %9.0f /s  p50 %6.2f ms  p99 %6.2f ms  (%.2f x ceiling, %.2f x single host)\n", label,
              writers, writers == 1 ? ": " : "s:", r.per_s, r.p50_ms, r.p99_ms, r.per_s / ceiling, r.per_s / host);
}

}  // namespace

int main(int argc, char** argv) {
  std::string base = argc > 1 ? argv[1] : "/tmp/xapid-raft-bench-" + std::to_string(::getpid());
  std::filesystem::remove_all(base);
  std::filesystem::create_directories(base);
  const double seconds = 2;

  const double ceiling = xapid::bench::raw_rocksdb_synced_writes_per_s(base + "/raw", seconds);
  std::printf("raw RocksDB synced single-key writes: %9.0f /s   (ceiling)\n", ceiling);
  // The machine is shared: the three orders take turns, round after round, and each reports its
  // median round.
  constexpr int rounds = 3;
  for (int writers : {1, 16}) {
    std::vector<commit_rate> host, one, three;
    for (int round = 0; round < rounds; ++round) {
      const std::string run = base + "/w" + std::to_string(writers) + "-r" + std::to_string(round);
      std::filesystem::create_directories(run);
      {
        auto db = database::open({run + "/host"});
        host.push_back(measure_commits(**db, writers, seconds));
      }
      {
        pool p = open_pool(run + "/one", 1);
        one.push_back(measure_commits(p.leader(), writers, seconds));
      }
      {
        pool p = open_pool(run + "/three", 3);
        three.push_back(measure_commits(p.leader(), writers, seconds));
      }
    }
    const commit_rate host_median = median(host);
    report("single host", writers, host_median, ceiling, host_median.per_s);
    report("pool of one (Raft)", writers, median(one), ceiling, host_median.per_s);
    report("pool of three (Raft)", writers, median(three), ceiling, host_median.per_s);
  }
  std::filesystem::remove_all(base);
}
