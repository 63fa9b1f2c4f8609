#include "common/clock.hpp"

#include <chrono>

namespace xapid {

std::int64_t real_clock::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace xapid
