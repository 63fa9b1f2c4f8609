// A joining host's checkpoint is input from another machine (authenticated only by a
// pool-operator's password): the master must read any bytes as a database or refuse them, never
// crash. A real host's checkpoint, cut at many points and with seeded bytes changed.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "actors/first_boot.hpp"
#include "pool/join_objects.hpp"
#include "pool/join_rules.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_seed.hpp"

namespace xapid::pool {
namespace {

struct checkpoint_input : ::testing::Test {
  testing::temp_dir dir, pool_dir;
  std::unique_ptr<storage::database> joiner, pool;
  std::string bytes;

  void SetUp() override {
    const xen::host_info hw{4, "GenuineIntel", "Xeon", 2000, std::int64_t{8} << 30, std::int64_t{7} << 30, "4.17"};
    joiner = std::move(storage::database::open({dir / "db"})).value();
    ASSERT_TRUE(actors::ensure_pool_and_host(*joiner, dir.path(), "127.0.0.3", hw).ok());
    pool = std::move(storage::database::open({pool_dir / "db"})).value();
    ASSERT_TRUE(actors::ensure_pool_and_host(*pool, pool_dir.path(), "127.0.0.2", hw).ok());
    bytes = joiner->export_checkpoint();
  }

  // What the master does with a checkpoint before its commit: read it, check it, copy its rows.
  int read = 0;  // of the inputs taken
  void take(std::string_view input) {
    auto state = storage::read_checkpoint(input);
    if (!state) return;
    ++read;
    (void)join_failures(**state, *pool->snapshot(), false);
    (void)join_objects(**state, *pool->snapshot());
  }
};

TEST_F(checkpoint_input, the_real_one_is_read) {
  auto state = storage::read_checkpoint(bytes);
  ASSERT_TRUE(state.ok()) << state.error();
  EXPECT_TRUE(join_objects(**state, *pool->snapshot()).ok());
}

TEST_F(checkpoint_input, any_cut_is_refused_or_read) {
  for (std::size_t n = 0; n < bytes.size(); n += std::max<std::size_t>(1, bytes.size() / 400)) take(std::string_view(bytes).substr(0, n));
}

TEST_F(checkpoint_input, seeded_changes_are_refused_or_read) {
  std::mt19937_64 rng(xapid::testing::test_seed());
  for (int round = 0; round < 600; ++round) {
    std::string changed = bytes;
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % changed.size();
      switch (rng() % 3) {
        case 0: changed[at] = static_cast<char>(rng()); break;                      // a byte changed
        case 1: changed.erase(at, 1 + rng() % 16); break;                            // bytes lost
        default: changed.insert(at, changed.substr(rng() % changed.size(), 1 + rng() % 64)); break;  // bytes repeated
      }
      if (changed.empty()) changed = "x";
    }
    take(changed);
  }
  std::printf("%d of 600 changed checkpoints were read as databases\n", read);
}

}  // namespace
}  // namespace xapid::pool
