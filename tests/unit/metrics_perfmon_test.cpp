// perfmon's configs and alarms, against what xapi's perfmon (python3/bin/perfmon) does with them.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "metrics/perfmon.hpp"

namespace xapid::metrics {
namespace {

const std::string cpu_half = R"(<config><variable><name value="cpu_usage"/><alarm_trigger_level value="0.5"/></variable></config>)";

perfmon::object_rows vm_rows(std::vector<std::vector<double>> rows, std::string config = cpu_half) {
  return {watched_kind::vm, "vm-1", std::move(config), {"cpu0", "cpu1", "memory", "vif_0_rx", "vif_0_tx", "vbd_xvda_read"}, std::move(rows)};
}

std::vector<std::vector<double>> cpu_rows(std::size_t n, double cpu0, double cpu1) {
  return std::vector<std::vector<double>>(n, {cpu0, cpu1, 1e9, 100, 200, 300});
}

TEST(perfmon_config, xapis_defaults_fill_what_the_config_leaves_out) {
  auto vars = parse_perfmon(watched_kind::vm, cpu_half);
  ASSERT_TRUE(vars) << vars.error();
  ASSERT_EQ(vars->size(), 1u);
  const auto& v = vars->front();
  EXPECT_EQ(v.name, "cpu_usage");
  EXPECT_EQ(v.fn, combine::average);
  EXPECT_EQ(v.level, 0.5);
  EXPECT_TRUE(v.high);
  EXPECT_EQ(v.trigger_period, 60);
  EXPECT_EQ(v.inhibit_period, 3600);
  EXPECT_EQ(v.priority, 3);
  EXPECT_EQ(v.element, "<variable>\n\t<name value=\"cpu_usage\"/>\n\t<alarm_trigger_level value=\"0.5\"/>\n</variable>\n");

  auto mem = parse_perfmon(watched_kind::host, R"(<config><variable><name value="memory_free_kib"/><alarm_trigger_level value="1024"/></variable></config>)");
  ASSERT_TRUE(mem) << mem.error();
  EXPECT_FALSE(mem->front().high);  // free memory alarms when low
  auto sr = parse_perfmon(watched_kind::sr, R"(<config><variable><name value="physical_utilisation"/></variable></config>)");
  ASSERT_TRUE(sr) << sr.error();
  EXPECT_EQ(sr->front().level, 0.8);
  EXPECT_EQ(sr->front().fn, combine::sr_usage);
}

TEST(perfmon_config, a_config_that_cannot_be_used_says_which_variable_and_why) {
  for (const char* bad : {"<config><variable>",                                                  // not XML
                          "<config><variable><alarm_trigger_level value=\"1\"/></variable></config>",  // no name
                          "<config><variable><name value=\"cpu_usage\"/></variable></config>",        // no level
                          "<config><variable><name value=\"made_up\"/><alarm_trigger_level value=\"1\"/></variable></config>",
                          "<config><variable><name value=\"cpu_usage\"/><alarm_trigger_level value=\"high\"/></variable></config>",
                          "<config><variable><name value=\"cpu_usage\"/><alarm_trigger_level value=\"1\"/><alarm_trigger_period value=\"1.5\"/></variable></config>",
                          "<config><variable><name value=\"cpu_usage\"/><alarm_trigger_level value=\"1\"/><rrd_regex value=\"(\"/></variable></config>",
                          "<config><variable><name value=\"cpu_usage\"/><alarm_trigger_level value=\"1\"/><consolidation_fn value=\"median\"/></variable></config>"}) {
    auto r = parse_perfmon(watched_kind::vm, bad);
    EXPECT_FALSE(r) << bad;
  }
  // Deep nesting (a vm-admin's text) is refused before anything walks it recursively.
  std::string deep = "<config><variable><name value=\"cpu_usage\"/><alarm_trigger_level value=\"1\"/>";
  for (int i = 0; i < 5000; ++i) deep += "<x>";
  for (int i = 0; i < 5000; ++i) deep += "</x>";
  deep += "</variable></config>";
  auto refused = parse_perfmon(watched_kind::vm, deep);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), "the config nests deeper than 16 elements");
  auto r = parse_perfmon(watched_kind::vm, "<config><variable><name value=\"made_up\"/><alarm_trigger_level value=\"1\"/></variable></config>");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "variable made_up: no default rrd_regex - please specify one");
}

TEST(perfmon, an_alarm_is_raised_once_the_value_stayed_bad_for_the_trigger_period) {
  perfmon pm;
  // One bad minute row: 60 - 60 = 0, the alarm.
  auto alarms = pm.evaluate({vm_rows(cpu_rows(1, 0.9, 0.7))}, 60, 10000, {});
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0].kind, watched_kind::vm);
  EXPECT_EQ(alarms[0].uuid, "vm-1");
  EXPECT_EQ(alarms[0].priority, 3);
  EXPECT_EQ(alarms[0].body, "value: 0.800000\nconfig:\n<variable>\n\t<name value=\"cpu_usage\"/>\n\t<alarm_trigger_level value=\"0.5\"/>\n</variable>\n");
  // Within the hour's inhibit period: no second alarm however bad.
  EXPECT_TRUE(pm.evaluate({vm_rows(cpu_rows(5, 1, 1))}, 60, 10300, {}).empty());
  EXPECT_EQ(pm.evaluate({vm_rows(cpu_rows(1, 1, 1))}, 60, 10000 + 3600, {}).size(), 1u);
}

TEST(perfmon, a_good_row_starts_the_count_again_and_the_step_counts_down) {
  perfmon pm;
  const std::string config = R"(<config><variable><name value="cpu_usage"/><alarm_trigger_level value="0.5"/><alarm_trigger_period value="15"/></variable></config>)";
  // 5 s rows: two bad (10 s), a good one, two bad: never 15 s in a row.
  auto rows = cpu_rows(5, 0.9, 0.9);
  rows[2] = {0.1, 0.1, 0, 0, 0, 0};
  EXPECT_TRUE(pm.evaluate({vm_rows(rows, config)}, 5, 100, {}).empty());
  // One more bad row makes three in a row since the good one.
  EXPECT_EQ(pm.evaluate({vm_rows(cpu_rows(1, 0.9, 0.9), config)}, 5, 105, {}).size(), 1u);
  // Unknown values are never bad.
  EXPECT_TRUE(pm.evaluate({vm_rows(cpu_rows(10, std::nan(""), 0.9), config)}, 5, 5000, {}).empty());
}

TEST(perfmon, sums_sense_and_the_srs_utilisation) {
  perfmon pm;
  const std::string net = R"(<config><variable><name value="network_usage"/><alarm_trigger_level value="250"/></variable></config>)";
  EXPECT_EQ(pm.evaluate({vm_rows(cpu_rows(1, 0, 0), net)}, 60, 1, {}).size(), 1u);  // rx + tx = 300 > 250
  const std::string low = R"(<config><variable><name value="memory"/><rrd_regex value="memory"/><alarm_trigger_level value="2e9"/><alarm_trigger_sense value="low"/></variable></config>)";
  EXPECT_EQ(pm.evaluate({vm_rows(cpu_rows(1, 0, 0), low)}, 60, 1, {}).size(), 1u);  // 1e9 < 2e9
  perfmon::object_rows sr{watched_kind::sr, "sr-1", R"(<config><variable><name value="physical_utilisation"/></variable></config>)",
                          {"size", "physical_utilisation"}, {{1000, 500}}};
  EXPECT_TRUE(pm.evaluate({sr}, 60, 1, {}).empty());  // 50 % of 80 %
  sr.values = {{1000, 900}};
  auto alarms = pm.evaluate({sr}, 60, 2, {});
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0].kind, watched_kind::sr);
  EXPECT_EQ(alarms[0].body.substr(0, 16), "value: 0.900000\n");
  // The control domain's file system, from the host's own readings.
  perfmon::object_rows dom0{watched_kind::vm, "dom0", R"(<config><variable><name value="fs_usage"/></variable></config>)", {}, {{}}};
  system_usage full;
  full.fs_usage = 0.95;
  EXPECT_EQ(pm.evaluate({dom0}, 60, 1, full).size(), 1u);
}

TEST(perfmon, a_config_change_restarts_only_the_variables_it_changed) {
  perfmon pm;
  const std::string two = R"(<config><variable><name value="cpu_usage"/><alarm_trigger_level value="0.5"/><alarm_trigger_period value="120"/></variable>)"
                          R"(<variable><name value="network_usage"/><alarm_trigger_level value="1e9"/></variable></config>)";
  EXPECT_TRUE(pm.evaluate({vm_rows(cpu_rows(1, 0.9, 0.9), two)}, 60, 1, {}).empty());  // cpu: 60 of 120 s counted
  std::string changed = two;
  changed.replace(changed.find("1e9"), 3, "2e9");
  // cpu_usage's XML is the same: its count goes on and the second bad minute raises it.
  auto alarms = pm.evaluate({vm_rows(cpu_rows(1, 0.9, 0.9), changed)}, 60, 61, {});
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_NE(alarms[0].body.find("cpu_usage"), std::string::npos);
  // An object whose config went has no variables left.
  EXPECT_TRUE(pm.evaluate({vm_rows(cpu_rows(5, 1, 1), "")}, 60, 100000, {}).empty());
}

TEST(perfmon, a_pathological_pattern_costs_linear_time) {
  perfmon pm;
  // (a*)*b against a long run of a's is exponential for backtracking engines.
  const std::string config = R"(<config><variable><name value="x"/><rrd_regex value="(a*)*b"/><alarm_trigger_level value="1"/></variable></config>)";
  perfmon::object_rows o{watched_kind::vm, "vm-1", config, {std::string(60, 'a') + "c"}, {{5}}};
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(pm.evaluate({o}, 60, 1, {}).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
}

std::string variables(int n, const std::string& extra = "") {
  std::string config = "<config>";
  for (int i = 0; i < n; ++i)
    config += "<variable><name value=\"v" + std::to_string(i) + "\"/><rrd_regex value=\"cpu0\"/><alarm_trigger_level value=\"0.5\"/>" +
              extra + "</variable>";
  return config + "</config>";
}

TEST(perfmon_config, what_a_config_may_cost_is_bounded) {
  EXPECT_TRUE(parse_perfmon(watched_kind::vm, variables(16)));
  auto many = parse_perfmon(watched_kind::vm, variables(17));
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error(), "the config has more than 16 variables");
  const std::string long_pattern = "<config><variable><name value=\"x\"/><rrd_regex value=\"" + std::string(257, 'a') +
                                   "\"/><alarm_trigger_level value=\"1\"/></variable></config>";
  EXPECT_FALSE(parse_perfmon(watched_kind::vm, long_pattern));
  // A pattern whose program would be large is refused by RE2's memory bound, not compiled.
  const std::string heavy = R"(<config><variable><name value="x"/><rrd_regex value="\pL{200}"/><alarm_trigger_level value="1"/></variable></config>)";
  EXPECT_FALSE(parse_perfmon(watched_kind::vm, heavy));
  // Numbers as Python reads them: 1e309 is infinity (a level nothing passes), not an error.
  EXPECT_TRUE(parse_perfmon(watched_kind::vm, R"(<config><variable><name value="cpu_usage"/><alarm_trigger_level value="1e309"/></variable></config>)"));
}

TEST(perfmon, extreme_periods_count_as_xapis_without_overflow) {
  perfmon pm;
  // A trigger period of -2^63 alarms on every bad row (xapi's count is at or below 0 at once);
  // an inhibit period of 2^63-1 still lets the first alarm through.
  const std::string config = R"(<config><variable><name value="cpu_usage"/><alarm_trigger_level value="0.5"/>)"
                             R"(<alarm_trigger_period value="-9223372036854775808"/><alarm_auto_inhibit_period value="9223372036854775807"/>)"
                             R"(</variable></config>)";
  EXPECT_EQ(pm.evaluate({vm_rows(cpu_rows(1, 0.9, 0.9), config)}, 60, 1'000'000, {}).size(), 1u);
  EXPECT_TRUE(pm.evaluate({vm_rows(cpu_rows(1, 0.9, 0.9), config)}, 60, 1'000'060, {}).empty());  // inhibited
}

TEST(perfmon, one_alarm_a_variable_per_look_and_a_hosts_variables_are_bounded) {
  perfmon pm;
  const std::string eager = R"(<config><variable><name value="cpu_usage"/><alarm_trigger_level value="0.5"/>)"
                            R"(<alarm_trigger_period value="0"/><alarm_auto_inhibit_period value="0"/></variable></config>)";
  EXPECT_EQ(pm.evaluate({vm_rows(cpu_rows(12, 0.9, 0.9), eager)}, 5, 100, {}).size(), 1u);
  EXPECT_EQ(pm.evaluate({vm_rows(cpu_rows(12, 0.9, 0.9), eager)}, 5, 160, {}).size(), 1u);
  // 300 objects of 16 variables each: the host watches 4096 variables, the rest are refused.
  std::vector<perfmon::object_rows> objects;
  for (int i = 0; i < 300; ++i) {
    auto o = vm_rows(cpu_rows(1, 0.9, 0.9), variables(16, "<alarm_trigger_period value=\"0\"/>"));
    o.uuid = "vm-" + std::to_string(i);
    objects.push_back(std::move(o));
  }
  EXPECT_EQ(pm.evaluate(objects, 60, 1, {}).size(), 4096u);
  // An SR and a VM with one uuid are two objects.
  perfmon both;
  auto vm = vm_rows(cpu_rows(1, 0.9, 0.9));
  perfmon::object_rows sr{watched_kind::sr, vm.uuid, R"(<config><variable><name value="physical_utilisation"/></variable></config>)",
                          {"size", "physical_utilisation"}, {{1000, 900}}};
  EXPECT_EQ(both.evaluate({vm, sr}, 60, 1, {}).size(), 2u);
}

TEST(perfmon, mem_usage_is_used_memory_and_swap_over_total) {
  EXPECT_DOUBLE_EQ(mem_usage_of("MemTotal: 1000 kB\nMemFree: 400 kB\nBuffers: 100 kB\nCached: 100 kB\nSwapTotal: 500 kB\nSwapFree: 400 kB\n"),
                   0.5);
  EXPECT_EQ(mem_usage_of("garbage"), 0);
}

}  // namespace
}  // namespace xapid::metrics
