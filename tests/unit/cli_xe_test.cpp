// xe without a server: the catalog as xe names and tags it, the commands made for each class,
// the parameter checks made before any call, xe's record layout, and values read from a
// command line. (tests/integration/xe_test.py runs every command against a real daemon.)
#include <gtest/gtest.h>

#include "cli/commands.hpp"

namespace xapid::cli {
namespace {

const xe_field& field(std::string_view cls, std::string_view name) {
  const xe_class* c = find_xe_class(cls);
  EXPECT_NE(c, nullptr) << cls;
  const xe_field* f = c ? c->find(name) : nullptr;
  EXPECT_NE(f, nullptr) << cls << " " << name;
  static const xe_field none{};
  return f ? *f : none;
}

TEST(xe_classes, classes_are_named_in_lower_case_with_dashes_and_vm_has_its_two_views) {
  for (auto name : {"vm", "host", "host-cpu", "vm-guest-metrics", "sr", "vdi", "pbd", "network", "template", "snapshot"})
    EXPECT_NE(find_xe_class(name), nullptr) << name;
  EXPECT_EQ(find_xe_class("VM"), nullptr);
  EXPECT_EQ(find_xe_class("event"), nullptr) << "no uuid, no get_all_records: nothing to list";
  EXPECT_EQ(find_xe_class("template")->desc, find_xe_class("vm")->desc);
}

TEST(xe_classes, fields_are_dashed_and_a_ref_named_after_its_class_is_that_objects_uuid) {
  EXPECT_EQ(field("vm", "name-label").desc->name, "name_label");
  EXPECT_EQ(field("vm", "VCPUs-max").desc->name, "VCPUs_max");
  EXPECT_EQ(field("vif", "vm-uuid").desc->name, "VM");
  EXPECT_EQ(field("vdi", "sr-uuid").desc->name, "SR");
  EXPECT_EQ(field("pbd", "host-uuid").desc->name, "host");
  EXPECT_EQ(field("vm", "resident-on").desc->name, "resident_on") << "a ref named otherwise keeps its name";
  const auto& vm = find_xe_class("vm")->fields;
  ASSERT_GE(vm.size(), 3u);
  EXPECT_EQ(vm[0].name, "uuid");
  EXPECT_EQ(vm[1].name, "name-label");
  EXPECT_EQ(vm[2].name, "name-description");
}

TEST(xe_classes, tags_follow_the_rpcs_that_change_a_field) {
  EXPECT_EQ(field("vm", "uuid").tag(), " RO");
  EXPECT_EQ(field("vm", "name-label").tag(), " RW");
  EXPECT_EQ(field("vm", "memory-static-max").tag(), " RW") << "VM.set_memory_static_max, a custom RPC of an RO field";
  EXPECT_EQ(field("vm", "power-state").tag(), " RO");
  EXPECT_EQ(field("vm", "allowed-operations").tag(), "SRO");
  EXPECT_EQ(field("vm", "tags").tag(), "SRW");
  EXPECT_EQ(field("vm", "other-config").tag(), "MRW");
  EXPECT_EQ(field("vm", "current-operations").tag(), "MRO");
  EXPECT_EQ(field("vm", "other-config").add_to, "VM.add_to_other_config");
  EXPECT_EQ(field("vm", "other-config").remove_from, "VM.remove_from_other_config");
}

TEST(xe_commands, every_class_with_objects_has_its_list_and_param_commands) {
  for (const auto& cls : xe_classes())
    for (auto suffix : {"-list", "-param-list", "-param-get"})
      EXPECT_NE(find_command(cls.name + suffix), nullptr) << cls.name << suffix;
  for (auto name : {"vm-param-set", "vm-param-add", "vm-param-remove", "vm-param-clear", "vm-start", "vm-install", "vm-export",
                    "sr-create", "vdi-create", "pool-join", "event-wait", "help"})
    EXPECT_NE(find_command(name), nullptr) << name;
  EXPECT_EQ(find_command("vm-frobnicate"), nullptr);
  const auto& all = all_commands();
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_NE(all[i - 1].name, all[i].name) << "one command per name";
}

xe_result<void> check(std::string_view name, std::vector<std::pair<std::string, std::string>> params) {
  const command* c = find_command(name);
  EXPECT_NE(c, nullptr) << name;
  invocation inv{std::string(name), std::move(params)};
  return check_params(*c, inv);
}

TEST(xe_commands, a_missing_or_unknown_parameter_is_a_usage_error) {
  auto missing = check("vm-param-get", {{"uuid", "x"}});
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().usage);
  EXPECT_EQ(missing.error().message, "Required parameter not found: param-name");
  auto unknown = check("vm-start", {{"vm", "x"}, {"bogus", "1"}});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message, "Unknown parameter: bogus");
  EXPECT_FALSE(check("vm-list", {{"name-label:x", "1"}})) << "name-label is no map";
  EXPECT_FALSE(check("vm-list", {{"tags:has", "1"}})) << "a set is filtered with :contains";
  EXPECT_TRUE(check("vm-list", {{"other-config:owner", "ops"}, {"tags:contains", "blue"}, {"power-state", "halted"}, {"params", "all"}}));
  EXPECT_TRUE(check("vm-start", {{"vm", "web"}, {"power-state", "halted"}, {"paused", "true"}}));
  EXPECT_TRUE(check("vm-param-set", {{"uuid", "x"}, {"name-label", "y"}, {"platform:acpi", "1"}}));
  EXPECT_FALSE(check("vm-param-set", {{"uuid", "x"}, {"power-state", "running"}})) << "no setter, no parameter";
}

TEST(xe_layout, names_are_padded_to_four_more_than_the_longest_first_on_the_right_then_on_the_left) {
  std::string out;
  append_records(out, {{{"uuid ( RO)", "u1"}, {"name-label ( RW)", "one"}, {"power-state ( RO)", "halted"}},
                       {{"uuid ( RO)", "u2"}, {"name-label ( RW)", "two"}}});
  EXPECT_EQ(out,
            "uuid ( RO)           : u1\n"
            "     name-label ( RW): one\n"
            "    power-state ( RO): halted\n"
            "\n"
            "uuid ( RO)          : u2\n"
            "    name-label ( RW): two\n"
            "\n");
}

TEST(xe_layout, minimal_is_the_first_values_joined_by_commas_with_commas_and_backslashes_escaped) {
  std::string out;
  append_minimal(out, {{{"uuid ( RO)", "a,b"}}, {{"uuid ( RO)", "c\\d"}}, {}});
  EXPECT_EQ(out, "a\\,b,c\\\\d\n");
}

// What a vm-admin names a VM cannot rewrite the lines root reads: a carriage return, an escape
// sequence, a C1 CSI, a right-to-left override are shown as escapes, in a name and in a map;
// other text (accents, CJK, emoji, a backslash) is shown as it is.
TEST(xe_values, control_and_reordering_characters_from_the_server_are_shown_as_escapes) {
  EXPECT_EQ(terminal_safe("ok\rroot\x1b[2J\x7f"), "ok\\x0droot\\x1b[2J\\x7f");
  EXPECT_EQ(terminal_safe("a\nb\tc"), "a\\x0ab\\x09c");
  EXPECT_EQ(terminal_safe("\xc2\x9b" "31m \xc2\x85"), "\\u009b31m \\u0085");
  EXPECT_EQ(terminal_safe("txt.\xe2\x80\xae" "exe \xe2\x81\xa6x\xe2\x81\xa9 \xe2\x80\x8f"),
            "txt.\\u202eexe \\u2066x\\u2069 \\u200f");
  const std::string plain = "caf\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80 \xc2\xa0 \xe2\x80\x94 a\\b";
  EXPECT_EQ(terminal_safe(plain), plain);
  endpoint socket;
  socket.socket_path = "/nonexistent/xe-test.sock";
  api_client nowhere(socket, {});
  ref_names names(nowhere);
  EXPECT_EQ(show_value(*field("vm", "name-label").desc->type, wire::value("x\ry"), names), "x\\x0dy");
  wire::structure config;
  config.emplace_back("k\x1b", wire::value("v\r"));
  EXPECT_EQ(show_value(*field("vm", "other-config").desc->type, wire::value(std::move(config)), names), "k\\x1b: v\\x0d");
}

TEST(xe_values, ints_take_binary_suffixes_and_bad_text_is_a_usage_error) {
  endpoint socket;
  socket.socket_path = "/nonexistent/xe-test.sock";
  api_client nowhere(socket, {});  // no call is made for these types
  const auto& int_type = *field("vm", "memory-static-max").desc->type;
  auto value = [&](std::string_view text) { return parse_value(int_type, "size", text, nowhere); };
  EXPECT_EQ(*value("2GiB")->as_int(), std::int64_t{2} << 30);
  EXPECT_EQ(*value("512MiB")->as_int(), std::int64_t{512} << 20);
  EXPECT_EQ(*value("-1")->as_int(), -1);
  for (auto bad : {"", "big", "1GB", "99999999999TiB", "-1KiB", "1 GiB"}) {
    auto refused = value(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_TRUE(refused.error().usage);
    EXPECT_EQ(refused.error().message, "Parameter size must be an integer");
  }
  const auto& bool_type = *field("vm", "is-a-template").desc->type;
  EXPECT_EQ(*parse_value(bool_type, "b", "true", nowhere)->as_bool(), true);
  EXPECT_EQ(*parse_value(bool_type, "b", "false", nowhere)->as_bool(), false);
  EXPECT_FALSE(parse_value(bool_type, "b", "maybe", nowhere));
  const auto& ref_type = *field("vm", "affinity").desc->type;
  EXPECT_EQ(*parse_value(ref_type, "affinity", "", nowhere)->as_string(), "OpaqueRef:NULL");
}

}  // namespace
}  // namespace xapid::cli
