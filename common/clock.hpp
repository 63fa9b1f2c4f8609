// The one source of time: this header's .cpp is the only place that reads a clock of the
// system (a test greps the tree for any other). Two readings:
// - wall time, `clock::now_ms()`: what records and answers show (datetimes, task times);
// - monotonic time, `clock::monotonic_ns()`: for durations and deadlines that must not jump
//   when the wall clock is set (leases, timeouts).
// real_clock reads the system's clocks, manual_clock is advanced by tests (both readings move
// together), so code given a clock runs on virtual time. The free functions are for the few
// mechanisms of one process that have no clock object (connection deadlines, login buckets).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace xapid {

class clock {
 public:
  virtual ~clock() = default;
  virtual std::int64_t now_ms() const = 0;        // milliseconds since the Unix epoch, UTC
  virtual std::int64_t monotonic_ns() const = 0;  // nanoseconds since an arbitrary start
};

class real_clock final : public clock {
 public:
  std::int64_t now_ms() const override;
  std::int64_t monotonic_ns() const override;
};

class manual_clock final : public clock {
 public:
  explicit manual_clock(std::int64_t start_ms = 1700000000000) : now_(start_ms) {}
  std::int64_t now_ms() const override { return now_.load(); }
  std::int64_t monotonic_ns() const override { return (now_.load() - start_) * 1000000; }
  void advance_ms(std::int64_t ms) { now_ += ms; }

 private:
  std::atomic<std::int64_t> now_;
  const std::int64_t start_ = now_.load();
};

// The system's monotonic clock and wall clock, for code without a clock object.
std::chrono::steady_clock::time_point monotonic_now() noexcept;
std::int64_t wall_seconds() noexcept;  // seconds since the Unix epoch

}  // namespace xapid
