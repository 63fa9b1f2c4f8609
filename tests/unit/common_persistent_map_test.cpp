// The persistent map against std::map: random sets and erases (seeded; the seed is printed and
// XAPID_TEST_SEED replays it), with weak hashes that force shared slots and whole-hash
// collisions, and old versions that must never change. SipHash against the paper's vectors.
#include <gtest/gtest.h>
#include "tests/support/test_seed.hpp"

#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/keyed_hash.hpp"
#include "common/persistent_map.hpp"

namespace xapid {
namespace {

using testing::test_seed;

// Hashes that keep only some bits: keys share slots at every level, or collide entirely.
struct low_bits_hasher {  // 2^8 distinct hashes: deep paths and bottom nodes
  std::uint64_t operator()(std::string_view s) const noexcept { return keyed_hash(s) & 0xff; }
};
struct high_bits_hasher {  // differences only in the last level's bits
  std::uint64_t operator()(std::string_view s) const noexcept { return keyed_hash(s) & 0xf000000000000000ULL; }
};
struct constant_hasher {  // every key in one bottom node
  std::uint64_t operator()(std::string_view) const noexcept { return 42; }
};

template <class Map>
void expect_same(const Map& m, const std::map<std::string, int>& model) {
  ASSERT_EQ(m.size(), model.size());
  std::map<std::string, int> seen;
  for (const auto& e : m) EXPECT_TRUE(seen.emplace(e.key, e.value).second) << "key twice: " << e.key;
  EXPECT_EQ(seen, model);
  for (const auto& [k, v] : model) {
    const int* found = m.find(k);
    ASSERT_NE(found, nullptr) << k;
    EXPECT_EQ(*found, v);
  }
}

template <class Hash>
void random_against_std_map(std::uint64_t seed, int keys, int steps) {
  std::mt19937_64 rng(seed);
  persistent_map<int, Hash> m;
  std::map<std::string, int> model;
  // Old versions, each with what it held: an update of a later version must never reach them.
  std::vector<std::pair<persistent_map<int, Hash>, std::map<std::string, int>>> versions;
  for (int step = 0; step < steps; ++step) {
    const std::string key = "k" + std::to_string(rng() % static_cast<std::uint64_t>(keys));
    if (rng() % 3 == 0) {
      EXPECT_EQ(m.erase(key), model.erase(key) == 1);
    } else {
      const int value = static_cast<int>(rng() % 1000);
      EXPECT_EQ(m.set(key, value), !model.contains(key));
      model[key] = value;
    }
    EXPECT_EQ(m.find("absent"), nullptr);
    if (step % 97 == 0) versions.emplace_back(m, model);
    if (step % 499 == 0) expect_same(m, model);
  }
  expect_same(m, model);
  for (const auto& [old, held] : versions) expect_same(old, held);
  // Erasing everything leaves an empty map that iterates nothing.
  for (const auto& [k, v] : std::map<std::string, int>(model)) EXPECT_TRUE(m.erase(k));
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.begin(), m.end());
}

TEST(persistent_map, random_updates_match_std_map) { random_against_std_map<keyed_hasher>(test_seed(), 5000, 40000); }
TEST(persistent_map, keys_sharing_slots_down_to_the_bottom) {
  random_against_std_map<low_bits_hasher>(test_seed() + 1, 2000, 20000);
}
TEST(persistent_map, keys_differing_only_in_the_last_level) {
  random_against_std_map<high_bits_hasher>(test_seed() + 2, 300, 5000);
}
TEST(persistent_map, keys_with_one_hash) { random_against_std_map<constant_hasher>(test_seed() + 3, 50, 2000); }

TEST(persistent_map, a_copy_is_independent_of_the_original) {
  persistent_map<int> a;
  for (int i = 0; i < 1000; ++i) a.set("k" + std::to_string(i), i);
  persistent_map<int> b = a;
  EXPECT_TRUE(a.same(b));
  b.set("k5", -5);
  b.erase("k6");
  b.set("new", 1);
  EXPECT_FALSE(a.same(b));
  EXPECT_EQ(*a.find("k5"), 5);
  EXPECT_NE(a.find("k6"), nullptr);
  EXPECT_EQ(a.find("new"), nullptr);
  EXPECT_EQ(a.size(), 1000u);
  EXPECT_EQ(*b.find("k5"), -5);
  EXPECT_EQ(b.size(), 1000u);
}

TEST(persistent_map, erasing_an_absent_key_changes_nothing) {
  persistent_map<int> a;
  a.set("x", 1);
  persistent_map<int> b = a;
  EXPECT_FALSE(b.erase("y"));
  EXPECT_TRUE(a.same(b));  // not even copied
}

TEST(siphash, matches_the_papers_vectors) {
  // SipHash-2-4, key 00..0f, messages 00..(n-1) (Aumasson and Bernstein, appendix A; the
  // first entries of the reference implementation's vectors).
  const std::uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
  std::string msg;
  for (int i = 0; i < 15; ++i) msg.push_back(static_cast<char>(i));
  EXPECT_EQ((siphash<2, 4>(k0, k1, msg)), 0xa129ca6149be45e5ULL);
  EXPECT_EQ((siphash<2, 4>(k0, k1, "")), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ((siphash<2, 4>(k0, k1, std::string("\x00", 1))), 0x74f839c593dc67fdULL);
}

TEST(keyed_hash, is_stable_in_a_process_and_spreads_keys) {
  EXPECT_EQ(keyed_hash("OpaqueRef:a"), keyed_hash("OpaqueRef:a"));
  EXPECT_NE(keyed_hash("OpaqueRef:a"), keyed_hash("OpaqueRef:b"));
}

}  // namespace
}  // namespace xapid
