// Commits per second through a database, with their latency: `writers` threads each rename their
// own VM over and over (a small transaction, as most API writes are), for `duration_s`.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storage/database.hpp"
#include "storage/row_values.hpp"
#include "tests/bench/ceilings.hpp"

namespace xapid::bench {

struct commit_rate {
  double per_s = 0;
  double p50_ms = 0, p99_ms = 0;  // of one commit, as its writer waited for it
};

inline commit_rate measure_commits(storage::database& db, int writers, double duration_s) {
  using namespace std::chrono;
  std::vector<std::string> vms;
  for (int w = 0; w < writers; ++w) {
    auto t = db.begin();
    api::vm vm;
    vm.name_label = "bench";
    vms.push_back(t.create(vm));
    (void)db.commit(std::move(t));
  }
  const std::size_t vm_class = storage::schema::get().class_of<api::vm>();
  const std::size_t name_field = *storage::schema::get().field_index(vm_class, "name_label");
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<double> latencies_ms;
  std::vector<std::thread> threads;
  auto start = steady_clock::now();
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      std::vector<double> mine;
      for (long i = 0; !stop; ++i) {
        auto t = db.begin();
        t.set(vm_class, vms[w], name_field, wire::value("name-" + std::to_string(i)));
        auto began = steady_clock::now();
        if (db.commit(std::move(t))) mine.push_back(seconds_since(began) * 1000);
      }
      std::lock_guard lock(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  std::this_thread::sleep_for(duration<double>(duration_s));
  stop = true;
  for (auto& t : threads) t.join();
  commit_rate out;
  out.per_s = latencies_ms.size() / seconds_since(start);
  if (!latencies_ms.empty()) {
    std::sort(latencies_ms.begin(), latencies_ms.end());
    out.p50_ms = latencies_ms[latencies_ms.size() / 2];
    out.p99_ms = latencies_ms[latencies_ms.size() * 99 / 100];
  }
  return out;
}

inline double commits_per_s(storage::database& db, int writers, double duration_s) {
  return measure_commits(db, writers, duration_s).per_s;
}

}  // namespace xapid::bench
