// The one source of time: real_clock reads the system clock (this header's .cpp is the only
// place that does), manual_clock is advanced by tests.
#pragma once

#include <atomic>
#include <cstdint>

namespace xapid {

class clock {
 public:
  virtual ~clock() = default;
  virtual std::int64_t now_ms() const = 0;  // milliseconds since the Unix epoch, UTC
};

class real_clock final : public clock {
 public:
  std::int64_t now_ms() const override;
};

class manual_clock final : public clock {
 public:
  explicit manual_clock(std::int64_t start_ms = 1700000000000) : now_(start_ms) {}
  std::int64_t now_ms() const override { return now_.load(); }
  void advance_ms(std::int64_t ms) { now_ += ms; }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace xapid
