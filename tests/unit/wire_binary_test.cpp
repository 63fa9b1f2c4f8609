// The binary form of database rows and log entries: exact round trips, deterministic bytes, and
// a clear error (never a crash) for any damaged input.
#include <gtest/gtest.h>

#include <random>

#include "proto/wire/binary.hpp"
#include "tests/unit/wire_samples.hpp"

namespace xapid::wire {
namespace {

TEST(wire_binary, round_trips_every_kind_exactly) {
  value v = testing::sample_every_kind();
  auto back = binary::decode(binary::encode(v));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, v);  // ints stay ints, int32 stays int32, datetimes stay datetimes
}

TEST(wire_binary, same_value_same_bytes) {
  EXPECT_EQ(binary::encode(testing::sample_every_kind()), binary::encode(testing::sample_every_kind()));
  EXPECT_EQ(binary::encode(value(std::int64_t{-1})), std::string("\x03\x01", 2));
  // An array written element by element is the array's own encoding.
  std::string piecewise;
  binary::append_array_header(piecewise, 2);
  binary::append(piecewise, value("a"));
  binary::append(piecewise, value(true));
  EXPECT_EQ(piecewise, binary::encode(value(array{value("a"), value(true)})));
}

TEST(wire_binary, every_truncation_is_an_error) {
  std::string bytes = binary::encode(testing::sample_every_kind());
  for (std::size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(binary::decode(std::string_view(bytes).substr(0, n)).ok()) << "prefix of " << n << " bytes";
  EXPECT_FALSE(binary::decode(bytes + "x").ok());
}

TEST(wire_binary, random_damage_never_crashes) {
  std::string bytes = binary::encode(testing::sample_every_kind());
  std::mt19937 rng(20261126);
  for (int round = 0; round < 20000; ++round) {
    std::string damaged = bytes;
    for (int k = 0; k < 3; ++k) damaged[rng() % damaged.size()] = static_cast<char>(rng());
    auto r = binary::decode(damaged);
    if (r.ok()) {
      EXPECT_TRUE(binary::decode(binary::encode(*r)).ok());
    }
  }
}

TEST(wire_binary, enforces_limits) {
  value deep;
  for (int i = 0; i < 100; ++i) deep = value(array{deep});
  limits lim;
  lim.max_depth = 64;
  EXPECT_FALSE(binary::decode(binary::encode(deep), lim).ok());
  // A count claiming more elements than bytes remain is refused before allocating.
  EXPECT_FALSE(binary::decode(std::string("\x08\xff\xff\xff\xff\x0f", 6)).ok());
}

}  // namespace
}  // namespace xapid::wire
