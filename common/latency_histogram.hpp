// A histogram of durations in fixed buckets (Prometheus' default bounds, finer below 1 ms where
// xapid's calls and commits are), recorded from any thread without a lock: a call's or a
// commit's cost is one relaxed atomic add on each of three counters.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace xapid {

class latency_histogram {
 public:
  // Upper bounds of the buckets, in seconds; one more bucket holds everything above.
  static constexpr std::array<double, 15> bounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                 0.05,   0.1,     0.25,   0.5,   1,      2.5,   10};

  void record(std::chrono::nanoseconds d) noexcept {
    const double s = std::chrono::duration<double>(d).count();
    std::size_t i = 0;
    while (i < bounds.size() && s > bounds[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count()), std::memory_order_relaxed);
  }

  struct reading {
    std::array<std::uint64_t, bounds.size() + 1> buckets{};  // each bucket's own count
    std::uint64_t count = 0;
    double sum_seconds = 0;
  };
  reading read() const noexcept {
    reading r;
    for (std::size_t i = 0; i < buckets_.size(); ++i) r.count += r.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    r.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return r;
  }

 private:
  std::array<std::atomic<std::uint64_t>, bounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace xapid
