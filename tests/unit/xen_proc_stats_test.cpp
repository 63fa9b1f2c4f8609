// The control domain's statistics files as a Xen host has them (recorded on a Xen 4.17 dom0),
// parsed as the libxl backend reads its hosts' and guests' counters.
#include <gtest/gtest.h>

#include "xen/proc_stats.hpp"

namespace xapid::xen {
namespace {

constexpr std::string_view net_dev =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
    "    lo:  123456     789    0    0    0     0          0         0   123456     789    0    0    0     0       0          0\n"
    "  eth0: 9876543210 6543210    0   12    0     0          0      4321 1234567890 3456789    0    0    0     0       0          0\n"
    "xenbr0: 555 5 0 0 0 0 0 0 666 6 0 0 0 0 0 0\n"
    "vif3.0:    1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0\n"
    "broken: 12 x\n";

TEST(proc_stats, net_dev_gives_each_interfaces_received_and_sent_bytes) {
  auto nics = parse_net_dev(net_dev);
  ASSERT_EQ(nics.size(), 4u);  // the headers and the truncated line are skipped
  EXPECT_EQ(nics[1].name, "eth0");
  EXPECT_EQ(nics[1].in_bytes, 9876543210u);
  EXPECT_EQ(nics[1].out_bytes, 1234567890u);
  EXPECT_EQ(nics[3].name, "vif3.0");
  EXPECT_EQ(nics[3].in_bytes, 1000u);
  EXPECT_EQ(nics[3].out_bytes, 2000u);
  EXPECT_TRUE(parse_net_dev("").empty());
}

TEST(proc_stats, loadavg_is_its_first_field) {
  EXPECT_EQ(parse_loadavg("0.42 0.35 0.30 2/311 12345\n"), 0.42);
  EXPECT_FALSE(parse_loadavg(""));
  EXPECT_FALSE(parse_loadavg("nan 1 1"));
  EXPECT_FALSE(parse_loadavg("-1 0 0"));
}

TEST(proc_stats, block_backends_name_the_guests_devices) {
  auto xvda = parse_block_backend("vbd-7-51712");  // 202:0
  ASSERT_TRUE(xvda);
  EXPECT_EQ(xvda->domid, 7);
  EXPECT_EQ(xvda->device, "xvda");
  EXPECT_EQ(parse_block_backend("vbd-7-51728")->device, "xvdb");  // 202:16
  EXPECT_EQ(parse_block_backend("vbd-2-768")->device, "hda");     // 3:0
  EXPECT_EQ(parse_block_backend("vbd-2-832")->device, "hdb");     // 3:64
  EXPECT_EQ(parse_block_backend("vbd-2-51713")->device, "51713");  // a partition: its number
  EXPECT_FALSE(parse_block_backend("vif-2-0"));
  EXPECT_FALSE(parse_block_backend("vbd-x-768"));
  EXPECT_FALSE(parse_block_backend("vbd-2--1"));
}

TEST(proc_stats, vif_names_give_domain_and_index) {
  EXPECT_EQ(parse_vif_name("vif12.3"), (std::pair<int, int>{12, 3}));
  EXPECT_FALSE(parse_vif_name("vif12"));
  EXPECT_FALSE(parse_vif_name("eth0"));
}

TEST(proc_stats, the_guest_agents_free_memory_is_kib) {
  EXPECT_EQ(parse_meminfo_kib("1048576"), std::int64_t{1} << 30);
  EXPECT_EQ(parse_meminfo_kib("2048\n"), 2048 * 1024);
  EXPECT_FALSE(parse_meminfo_kib("-1"));
  EXPECT_FALSE(parse_meminfo_kib("12 kB"));
  EXPECT_FALSE(parse_meminfo_kib("99999999999999999999"));
}

TEST(proc_stats, busy_time_from_xens_idle_time_never_goes_back) {
  // Two CPUs at 10 s: one idle 9 s of them, one 2 s.
  auto first = busy_from_idle(10'000'000'000, {9'000'000'000, 2'000'000'000}, {});
  EXPECT_EQ(first, (std::vector<std::uint64_t>{1'000'000'000, 8'000'000'000}));
  // 5 s later: the first idled 4.5 s (10 % busy), the second 1 s (80 %).
  auto next = busy_from_idle(15'000'000'000, {13'500'000'000, 3'000'000'000}, first);
  EXPECT_EQ(next[0] - first[0], 500'000'000u);
  EXPECT_EQ(next[1] - first[1], 4'000'000'000u);
  // Idle time read a moment after the clock can run ahead of it: the counter holds.
  auto skewed = busy_from_idle(15'000'000'100, {13'500'000'200, 3'000'000'000}, next);
  EXPECT_EQ(skewed[0], next[0]);
}

}  // namespace
}  // namespace xapid::xen
