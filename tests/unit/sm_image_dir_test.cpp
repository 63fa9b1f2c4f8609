// qcow2 images in a directory, with real qemu-img and qemu-io: data written into an image
// reads back from its clones as it was at the clone, and garbage collection merges chains
// without changing what any image reads.
#include <gtest/gtest.h>

#include <filesystem>

#include "sm/image_dir.hpp"
#include "tests/support/qemu_io.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::sm {
namespace {

constexpr std::int64_t gib = std::int64_t{1} << 30;

using testing::reads_pattern;
using testing::write_pattern;

std::size_t hidden_files(const std::string& dir) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().filename().string()[0] == '.';
  return n;
}

TEST(image_dir, an_image_is_as_large_as_asked_and_takes_almost_nothing) {
  testing::temp_dir dir;
  image_dir images(dir.path());
  auto loc = images.create("a", 100 * gib);
  ASSERT_TRUE(loc.ok()) << loc.error().err;
  EXPECT_EQ(*loc, "a.qcow2");
  auto info = images.info(*loc);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->virtual_size, 100 * gib);
  EXPECT_LT(info->actual_size, 1 << 20);
  EXPECT_EQ(info->format, "qcow2");
  ASSERT_TRUE(images.resize(*loc, 200 * gib).ok());
  EXPECT_EQ(images.info(*loc)->virtual_size, 200 * gib);
}

TEST(image_dir, a_clone_keeps_the_data_of_its_moment) {
  testing::temp_dir dir;
  image_dir images(dir.path());
  std::string a = *images.create("a", gib);
  write_pattern(images.path_of(a), 0x61, 0);
  auto b = images.clone(a, "b");
  ASSERT_TRUE(b.ok()) << b.error().err;
  write_pattern(images.path_of(a), 0x62, 0);     // the original moves on
  write_pattern(images.path_of(*b), 0x63, 8192);  // and so does the clone
  EXPECT_TRUE(reads_pattern(images.path_of(a), 0x62, 0));
  EXPECT_TRUE(reads_pattern(images.path_of(*b), 0x61, 0));
  EXPECT_TRUE(reads_pattern(images.path_of(*b), 0x63, 8192));
  EXPECT_FALSE(reads_pattern(images.path_of(a), 0x63, 8192));
  EXPECT_EQ(images.info(*b)->virtual_size, gib);
  EXPECT_EQ(images.visible_files(), (std::vector<std::string>{"a.qcow2", "b.qcow2"}));
  EXPECT_EQ(hidden_files(dir.path()), 1u);
}

TEST(image_dir, collecting_merges_a_chain_without_changing_what_images_read) {
  testing::temp_dir dir;
  image_dir images(dir.path());
  std::string a = *images.create("a", gib);
  write_pattern(images.path_of(a), 0x61, 0);
  std::string s1 = *images.clone(a, "s1");
  write_pattern(images.path_of(a), 0x62, 65536);
  std::string s2 = *images.clone(a, "s2");
  write_pattern(images.path_of(a), 0x63, 131072);
  EXPECT_EQ(hidden_files(dir.path()), 2u);
  EXPECT_EQ(images.collect({}), 0u);  // every parent has two children
  // A hidden image of someone else's in the directory is never taken for a parent.
  ASSERT_TRUE(create_qcow2(dir / ".theirs.qcow2", gib).ok());

  // The first snapshot goes: its parent has one child left and merges into it.
  ASSERT_TRUE(images.remove(s1).ok());
  EXPECT_EQ(images.collect({}), 1u);
  EXPECT_EQ(hidden_files(dir.path()), 2u);
  EXPECT_TRUE(reads_pattern(images.path_of(a), 0x61, 0));
  EXPECT_TRUE(reads_pattern(images.path_of(a), 0x62, 65536));
  EXPECT_TRUE(reads_pattern(images.path_of(a), 0x63, 131072));
  EXPECT_TRUE(reads_pattern(images.path_of(s2), 0x61, 0));
  EXPECT_TRUE(reads_pattern(images.path_of(s2), 0x62, 65536));
  EXPECT_FALSE(reads_pattern(images.path_of(s2), 0x63, 131072));

  // A child in use is not rewritten; once free, the last parent merges too.
  ASSERT_TRUE(images.remove(s2).ok());
  EXPECT_EQ(images.collect({a}), 0u);
  EXPECT_EQ(images.collect({}), 1u);
  EXPECT_EQ(hidden_files(dir.path()), 1u);
  EXPECT_TRUE(std::filesystem::exists(dir / ".theirs.qcow2"));
  EXPECT_TRUE(images.info(a)->backing_file.empty());
  EXPECT_TRUE(reads_pattern(images.path_of(a), 0x61, 0));
  EXPECT_TRUE(reads_pattern(images.path_of(a), 0x63, 131072));
}

TEST(image_dir, a_copy_is_whole_and_independent) {
  testing::temp_dir src, dst;
  image_dir from(src.path()), to(dst.path());
  std::string a = *from.create("a", gib);
  write_pattern(from.path_of(a), 0x61, 0);
  std::string snap = *from.clone(a, "snap");
  auto copy = from.copy_to(snap, to, "c");
  ASSERT_TRUE(copy.ok()) << copy.error().err;
  EXPECT_TRUE(to.info(*copy)->backing_file.empty());
  EXPECT_TRUE(reads_pattern(to.path_of(*copy), 0x61, 0));
  EXPECT_EQ(to.info(*copy)->virtual_size, gib);
}

TEST(image_dir, qemu_img_failures_say_what_went_wrong) {
  testing::temp_dir dir;
  image_dir images(dir.path());
  auto missing = images.info("nope.qcow2");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().status, 0);
  EXPECT_NE(missing.error().err.find("nope.qcow2"), std::string::npos);
  EXPECT_FALSE(images.clone("nope.qcow2", "x").ok());
  EXPECT_TRUE(images.visible_files().empty());
}

}  // namespace
}  // namespace xapid::sm
