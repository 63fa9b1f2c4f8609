#include "common/clock.hpp"

namespace xapid {

std::int64_t real_clock::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::int64_t real_clock::monotonic_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(monotonic_now().time_since_epoch()).count();
}

std::chrono::steady_clock::time_point monotonic_now() noexcept { return std::chrono::steady_clock::now(); }

std::int64_t wall_seconds() noexcept {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace xapid
