// The seed of a test's random choices: XAPID_TEST_SEED when set (a failure replays from it),
// else a fresh one; printed once, so that any run can be repeated.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>

namespace xapid::testing {

inline std::uint64_t test_seed() {
  static const std::uint64_t seed = [] {
    const char* env = std::getenv("XAPID_TEST_SEED");
    std::uint64_t s = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    std::printf("seed %llu (XAPID_TEST_SEED to repeat)\n", static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

}  // namespace xapid::testing
