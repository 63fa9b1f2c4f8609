// The SR drivers' registry: every SR type has its driver and an unknown one none, and each says
// what its SM object says (an ISO library is read-only; file and nfs SRs may be shared).
#include <gtest/gtest.h>

#include <algorithm>

#include "sm/sr_driver.hpp"

namespace xapid::sm {
namespace {

TEST(sr_drivers, every_type_is_found_in_the_order_get_supported_types_answers) {
  std::vector<std::string> types;
  for (const sr_driver* d : all_drivers()) {
    types.push_back(d->type());
    EXPECT_EQ(find_driver(d->type()), d);
  }
  EXPECT_EQ(types, (std::vector<std::string>{"ext", "file", "nfs", "iso"}));
}

TEST(sr_drivers, an_unknown_type_has_no_driver) {
  EXPECT_EQ(find_driver("lvm"), nullptr);
  EXPECT_EQ(find_driver(""), nullptr);
  EXPECT_EQ(find_driver("EXT"), nullptr);
}

TEST(sr_drivers, an_iso_library_is_read_only_and_makes_no_vdis) {
  const sr_driver* iso = find_driver("iso");
  ASSERT_NE(iso, nullptr);
  EXPECT_FALSE(iso->writable());
  EXPECT_FALSE(iso->description().makes_vdis);
  const auto& caps = iso->description().capabilities;
  EXPECT_EQ(std::find(caps.begin(), caps.end(), "VDI_CREATE"), caps.end());
  for (const char* type : {"ext", "file", "nfs"}) {
    EXPECT_TRUE(find_driver(type)->writable()) << type;
    EXPECT_TRUE(find_driver(type)->description().makes_vdis) << type;
  }
}

TEST(sr_drivers, file_and_nfs_may_be_shared_and_ext_is_the_hosts_own) {
  EXPECT_TRUE(find_driver("file")->shared());
  EXPECT_TRUE(find_driver("nfs")->shared());
  EXPECT_FALSE(find_driver("ext")->shared());
}

TEST(sr_drivers, an_sr_directory_is_where_its_driver_keeps_it) {
  const string_map located{{"location", "/srv/images"}};
  EXPECT_EQ(find_driver("ext")->directory("/var/lib/xapid", "u1", {}), "/var/lib/xapid/sr/u1");
  EXPECT_EQ(find_driver("ext")->directory("/var/lib/xapid", "u1", located), "/srv/images");
  EXPECT_EQ(find_driver("file")->directory("/var/lib/xapid", "u1", located), "/srv/images");
  EXPECT_EQ(find_driver("iso")->directory("/var/lib/xapid", "u1", located), "/srv/images");
  EXPECT_EQ(find_driver("nfs")->directory("/var/lib/xapid", "u1", {{"server", "s"}, {"serverpath", "/x"}}),
            "/var/lib/xapid/mnt/u1");
}

TEST(sr_drivers, create_fills_in_the_ext_location_and_the_iso_content_type) {
  string_map config;
  std::string content_type;
  find_driver("ext")->add_defaults(config, content_type, "/var/lib/xapid", "u1");
  EXPECT_EQ(config, (string_map{{"location", "/var/lib/xapid/sr/u1"}}));
  EXPECT_EQ(content_type, "");
  config = {{"location", "/srv/isos"}};
  find_driver("iso")->add_defaults(config, content_type, "/var/lib/xapid", "u2");
  EXPECT_EQ(config, (string_map{{"location", "/srv/isos"}}));
  EXPECT_EQ(content_type, "iso");
}

TEST(sr_drivers, a_scan_takes_disk_images_or_isos_by_name) {
  const sr_driver* ext = find_driver("ext");
  const sr_driver* iso = find_driver("iso");
  for (const char* name : {"a.qcow2", "b.img", "c.raw", "d.vhd"}) {
    EXPECT_TRUE(is_image_name(ext->images(), name)) << name;
    EXPECT_FALSE(is_image_name(iso->images(), name)) << name;
  }
  EXPECT_TRUE(is_image_name(iso->images(), "debian.iso"));
  EXPECT_FALSE(is_image_name(ext->images(), "debian.iso"));
  EXPECT_FALSE(is_image_name(iso->images(), ".iso"));
  EXPECT_FALSE(is_image_name(ext->images(), "notes.txt"));
}

}  // namespace
}  // namespace xapid::sm
