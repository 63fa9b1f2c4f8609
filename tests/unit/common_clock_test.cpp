// The clock's two readings: wall time and monotonic time move together on a manual clock (so
// code given a clock runs on virtual time), and the real clock's monotonic reading never goes
// back.
#include <gtest/gtest.h>

#include "common/clock.hpp"

namespace xapid {
namespace {

TEST(clock, a_manual_clock_moves_both_readings_together) {
  manual_clock c(1'000'000);
  EXPECT_EQ(c.now_ms(), 1'000'000);
  EXPECT_EQ(c.monotonic_ns(), 0);
  c.advance_ms(1500);
  EXPECT_EQ(c.now_ms(), 1'001'500);
  EXPECT_EQ(c.monotonic_ns(), 1'500'000'000);
}

TEST(clock, the_real_monotonic_reading_never_goes_back) {
  real_clock c;
  std::int64_t last = c.monotonic_ns();
  for (int i = 0; i < 10000; ++i) {
    const std::int64_t now = c.monotonic_ns();
    ASSERT_GE(now, last);
    last = now;
  }
  EXPECT_GT(c.now_ms(), 1'600'000'000'000);  // after 2020: it reads the wall clock
}

}  // namespace
}  // namespace xapid
