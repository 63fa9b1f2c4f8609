// A VM's domain configuration as libxenlight's own JSON: PV and HVM boot, memory, vCPUs,
// platform flags, disks and NICs. No hypervisor needed.
#include <gtest/gtest.h>

#include <rapidjson/document.h>

#include "xen/libxl_backend.hpp"
#include "xen/libxl_config.hpp"

namespace xapid::xen {
namespace {

rapidjson::Document parse(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  EXPECT_FALSE(d.HasParseError()) << json;
  return d;
}

domain_config base(bool hvm) {
  domain_config c;
  c.uuid = "5a3b2e1f-0c9d-4e8f-a7b6-c5d4e3f2a1b0";
  c.name = "web";
  c.hvm = hvm;
  c.memory_max_bytes = std::int64_t{2} << 30;
  c.memory_target_bytes = std::int64_t{1} << 30;
  c.vcpus_max = 4;
  c.vcpus = 2;
  return c;
}

TEST(libxl_config, a_pv_guest) {
  domain_config c = base(false);
  c.kernel = "/boot/vmlinuz";
  c.ramdisk = "/boot/initrd";
  c.cmdline = "root=/dev/xvda1 ro";
  c.disks.push_back({"xvda", "/srv/sr/disk.qcow2", false, false});
  c.nics.push_back({0, "00:16:3e:12:34:56", "xenbr0"});
  auto json = libxl_config_json(c);
  ASSERT_TRUE(json.ok()) << json.error();
  auto d = parse(*json);
  EXPECT_STREQ(d["c_info"]["type"].GetString(), "pv");
  EXPECT_STREQ(d["c_info"]["name"].GetString(), "web");
  EXPECT_STREQ(d["c_info"]["uuid"].GetString(), c.uuid.c_str());
  const auto& b = d["b_info"];
  EXPECT_EQ(b["max_memkb"].GetUint64(), 2u << 20);
  EXPECT_EQ(b["target_memkb"].GetUint64(), 1u << 20);
  EXPECT_EQ(b["max_vcpus"].GetInt(), 4);
  ASSERT_TRUE(b["avail_vcpus"].IsArray());
  EXPECT_EQ(b["avail_vcpus"].Size(), 2u);  // vCPUs 0 and 1 online at boot
  EXPECT_STREQ(b["type.pv"]["kernel"].GetString(), "/boot/vmlinuz");
  EXPECT_STREQ(b["type.pv"]["ramdisk"].GetString(), "/boot/initrd");
  EXPECT_STREQ(b["type.pv"]["cmdline"].GetString(), "root=/dev/xvda1 ro");
  const auto& disk = d["disks"][0];
  EXPECT_STREQ(disk["vdev"].GetString(), "xvda");
  EXPECT_STREQ(disk["pdev_path"].GetString(), "/srv/sr/disk.qcow2");
  EXPECT_STREQ(disk["format"].GetString(), "qcow2");
  EXPECT_EQ(disk["readwrite"].GetInt(), 1);
  const auto& nic = d["nics"][0];
  EXPECT_STREQ(nic["mac"].GetString(), "00:16:3e:12:34:56");
  EXPECT_STREQ(nic["bridge"].GetString(), "xenbr0");
}

TEST(libxl_config, an_hvm_guest_with_platform_flags_and_a_cd) {
  domain_config c = base(true);
  c.boot_order = "dc";
  c.platform = {{"acpi", "1"}, {"apic", "true"}, {"pae", "true"}, {"nx", "false"}, {"viridian", "true"}};
  c.disks.push_back({"hda", "/srv/sr/disk.img", false, false});
  c.disks.push_back({"hdc", "", true, true});
  auto json = libxl_config_json(c);
  ASSERT_TRUE(json.ok()) << json.error();
  auto d = parse(*json);
  EXPECT_STREQ(d["c_info"]["type"].GetString(), "hvm");
  const auto& b = d["b_info"];
  EXPECT_STREQ(b["type.hvm"]["boot"].GetString(), "dc");
  // libxl writes its tri-state booleans as "True", "False" (and "<default>" when unset).
  EXPECT_STREQ(b["acpi"].GetString(), "True");
  EXPECT_STREQ(b["apic"].GetString(), "True");
  EXPECT_STREQ(b["type.hvm"]["pae"].GetString(), "True");
  EXPECT_STREQ(b["type.hvm"]["nx"].GetString(), "False");
  EXPECT_STREQ(b["type.hvm"]["viridian"].GetString(), "True");
  EXPECT_STREQ(d["disks"][0]["format"].GetString(), "raw");
  EXPECT_STREQ(d["disks"][1]["format"].GetString(), "empty");
  EXPECT_EQ(d["disks"][1]["is_cdrom"].GetInt(), 1);
  EXPECT_EQ(d["disks"][1]["readwrite"].GetInt(), 0);
}

TEST(libxl_config, bad_input_is_refused_with_the_reason) {
  domain_config c = base(false);
  c.uuid = "not-a-uuid";
  EXPECT_EQ(libxl_config_json(c).error(), "invalid uuid not-a-uuid");
  c = base(false);
  c.vcpus = 9;
  EXPECT_EQ(libxl_config_json(c).error(), "vcpus 9 outside 1..4");
  c = base(false);
  c.nics.push_back({0, "zz:16:3e", "xenbr0"});
  EXPECT_EQ(libxl_config_json(c).error(), "invalid MAC zz:16:3e");
}

TEST(libxl_config, an_empty_mac_is_left_to_libxl) {
  domain_config c = base(false);
  c.nics.push_back({1, "", "xenbr0"});
  ASSERT_TRUE(libxl_config_json(c).ok());
}

TEST(libxl_backend, refuses_to_open_where_there_is_no_xen) {
  if (xen_hypervisor_present()) GTEST_SKIP() << "this is a Xen control domain";
  auto b = libxl_backend::open();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error(), "this is not a Xen control domain (/proc/xen/capabilities does not say control_d)");
}

}  // namespace
}  // namespace xapid::xen
