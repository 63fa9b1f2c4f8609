// Typed datamodel values survive the trip to the wire value model and through both codecs,
// for every field of every class; wrong shapes are XMLRPC_UNMARSHAL_FAILURE, never a crash.
#include <gtest/gtest.h>

#include <limits>

#include "proto/api/binary_convert.hpp"
#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"
#include "tests/support/api_samples.hpp"
#include "xapid/api/rows.hpp"
#include "xapid/api/types.hpp"

namespace xapid::api {
namespace {

template <class Record>
void round_trip_record() {
  const class_desc* cls = find_class(Record::api_class);
  ASSERT_NE(cls, nullptr) << Record::api_class;
  for (int seed : {0, 7}) {
    const wire::value sample = testing::sample_record(*cls, seed);
    Record rec;
    ASSERT_TRUE(from_value(sample, rec).ok()) << Record::api_class;
    if (!cls->fields.empty()) {
      EXPECT_NE(rec, Record{}) << Record::api_class;
    }
    EXPECT_EQ(testing::with_sets_sorted(to_value(rec)), testing::with_sets_sorted(sample)) << Record::api_class;

    // Through XML-RPC (ints come back as strings) and JSON-RPC (datetimes come back as strings).
    wire::response resp{true, to_value(rec), {}};
    auto xml = wire::xmlrpc::parse_response(wire::xmlrpc::write_response(resp));
    ASSERT_TRUE(xml.ok()) << Record::api_class << ": " << xml.error().message;
    Record from_xml;
    ASSERT_TRUE(from_value(xml->result, from_xml).ok()) << Record::api_class;
    EXPECT_EQ(from_xml, rec) << Record::api_class;

    wire::jsonrpc::request req;
    req.id_json = "1";
    auto json = wire::jsonrpc::parse_response(wire::jsonrpc::write_response(req, resp));
    ASSERT_TRUE(json.ok()) << Record::api_class << ": " << json.error().message;
    Record from_json;
    ASSERT_TRUE(from_value(json->result, from_json).ok()) << Record::api_class;
    EXPECT_EQ(from_json, rec) << Record::api_class;
  }
}

template <class... Records>
void round_trip_all(std::tuple<Records...>*) {
  (round_trip_record<Records>(), ...);
}

TEST(api_convert, every_record_of_every_class_round_trips_through_both_formats) {
  round_trip_all(static_cast<all_record_types*>(nullptr));
}

TEST(api_convert, record_ops_read_and_write_every_field_of_every_class) {
  auto classes = all_classes();
  for (std::size_t ci = 0; ci < classes.size(); ++ci) {
    const record_ops& ops = record_ops_of(ci);
    ASSERT_EQ(ops.class_name, classes[ci].name);
    void* rec = ops.create();
    for (std::size_t fi = 0; fi < classes[ci].fields.size(); ++fi) {
      wire::value sample = testing::sample_value(*classes[ci].fields[fi].type, static_cast<int>(fi));
      ASSERT_TRUE(ops.set_field(rec, fi, sample).ok()) << classes[ci].name << "." << classes[ci].fields[fi].name;
      wire::value got = ops.get_field(rec, fi);
      if (got.as_array()) {  // a set: compared without its order
        got = testing::with_sets_sorted(wire::value(wire::structure{{"", got}})).as_struct()->front().second;
        sample = testing::with_sets_sorted(wire::value(wire::structure{{"", sample}})).as_struct()->front().second;
      }
      EXPECT_EQ(got, sample) << classes[ci].name << "." << classes[ci].fields[fi].name;
    }
    EXPECT_EQ(testing::with_sets_sorted(ops.to_value(rec)), testing::with_sets_sorted(testing::sample_record(classes[ci], 0)))
        << classes[ci].name;
    void* copy = ops.clone(rec);
    EXPECT_TRUE(ops.equal(rec, copy));
    if (!classes[ci].fields.empty()) {
      ASSERT_TRUE(ops.set_field(copy, 0, testing::sample_value(*classes[ci].fields[0].type, 99)).ok());
      EXPECT_FALSE(ops.equal(rec, copy)) << classes[ci].name;
      EXPECT_FALSE(ops.set_field(copy, 0, wire::value(wire::array{wire::value(wire::array{})})).ok());
    }
    ops.destroy(copy);
    ops.destroy(rec);
  }
}

// Every class's record, written as storage writes a row's fields (each field's value in the
// binary form, in catalog order) and read straight back by decode_fields, is the same record;
// unsorted map members are sorted, and bytes of another shape are an error, never a crash.
TEST(api_convert, every_record_decodes_from_its_stored_fields_without_a_tree) {
  const auto classes = all_classes();
  for (std::size_t ci = 0; ci < classes.size(); ++ci) {
    const record_ops& ops = record_ops_of(ci);
    for (int seed : {0, 5}) {
      void* rec = ops.create();
      ASSERT_TRUE(ops.from_value(rec, testing::sample_record(classes[ci], seed)).ok()) << classes[ci].name;
      std::string bytes;
      wire::binary::append_array_header(bytes, classes[ci].fields.size());
      for (std::size_t f = 0; f < classes[ci].fields.size(); ++f) wire::binary::append(bytes, ops.get_field(rec, f));
      void* back = ops.create();
      wire::binary::reader in(bytes);
      EXPECT_TRUE(decode_fields(ci, back, in)) << classes[ci].name << ": " << in.error();
      EXPECT_TRUE(in.at_end()) << classes[ci].name;
      EXPECT_TRUE(ops.equal(rec, back)) << classes[ci].name;
      // Every cut of the bytes fails cleanly.
      for (std::size_t cut = 0; cut < bytes.size(); cut += 1 + bytes.size() / 64) {
        void* partial = ops.create();
        wire::binary::reader short_in(std::string_view(bytes).substr(0, cut));
        EXPECT_FALSE(decode_fields(ci, partial, short_in) && short_in.at_end()) << classes[ci].name << " cut at " << cut;
        ops.destroy(partial);
      }
      ops.destroy(back);
      ops.destroy(rec);
    }
  }
  // Map members out of order (written by hand): sorted on the way in, the last of a key winning.
  api::map<std::string, std::string> m;
  std::string bytes;
  wire::binary::append(bytes, wire::value(wire::structure{{"b", wire::value("1")}, {"a", wire::value("2")}, {"b", wire::value("3")}}));
  wire::binary::reader in(bytes);
  ASSERT_TRUE(from_binary(in, m));
  EXPECT_EQ(m, (api::map<std::string, std::string>{{"a", "2"}, {"b", "3"}}));
  // A string where an int belongs.
  std::int64_t i = 0;
  std::string text = wire::binary::encode(wire::value("12"));
  wire::binary::reader wrong(text);
  EXPECT_FALSE(from_binary(wrong, i));
  EXPECT_NE(wrong.error().find("not an int"), std::string::npos) << wrong.error();
}

// A record handed to the writers as a deferred value, as answers carry them.
class deferred_record final : public wire::deferred {
 public:
  deferred_record(const record_ops& ops, const void* rec) : ops_(ops), rec_(rec) {}
  void emit(wire::emitter& out) const override { ops_.emit(rec_, out); }

 private:
  const record_ops& ops_;
  const void* rec_;
};

TEST(api_convert, a_deferred_record_is_written_exactly_as_its_tree_in_both_formats) {
  auto classes = all_classes();
  for (std::size_t ci = 0; ci < classes.size(); ++ci) {
    const record_ops& ops = record_ops_of(ci);
    for (int seed : {0, 3}) {
      void* rec = ops.create();
      ASSERT_TRUE(ops.from_value(rec, testing::sample_record(classes[ci], seed)).ok()) << classes[ci].name;
      const wire::value tree = ops.to_value(rec);
      const wire::value lazy(std::make_shared<const deferred_record>(ops, rec));
      // Alone, and nested where commas and closing tags around it matter.
      auto nest = [](const wire::value& v) {
        return wire::value(wire::array{v, wire::value(wire::structure{{"a", v}, {"b", wire::value(1)}}), v});
      };
      for (const auto& [expected, given] : {std::pair{tree, lazy}, std::pair{nest(tree), nest(lazy)}}) {
        wire::response want{true, expected, {}}, got{true, given, {}};
        EXPECT_EQ(wire::xmlrpc::write_response(got), wire::xmlrpc::write_response(want)) << classes[ci].name;
        wire::jsonrpc::request req;
        EXPECT_EQ(wire::jsonrpc::write_response(req, got), wire::jsonrpc::write_response(req, want)) << classes[ci].name;
        EXPECT_EQ(wire::built(given), expected) << classes[ci].name;
        EXPECT_EQ(given, expected) << classes[ci].name;
      }
      ops.destroy(rec);
    }
  }
}

TEST(api_convert, ints_are_accepted_as_strings_and_every_xmlrpc_int_tag) {
  std::int64_t i = 0;
  for (const char* body : {"<value><string>-42</string></value>", "<value><i4>-42</i4></value>",
                           "<value><int>-42</int></value>", "<value><i8>-42</i8></value>"}) {
    std::string call = std::string("<?xml version=\"1.0\"?><methodCall><methodName>m</methodName><params><param>") +
                       body + "</param></params></methodCall>";
    auto c = wire::xmlrpc::parse_call(call);
    ASSERT_TRUE(c.ok()) << body;
    ASSERT_TRUE(from_value(c->params.at(0), i).ok()) << body;
    EXPECT_EQ(i, -42) << body;
  }
  ASSERT_TRUE(from_value(wire::value("9223372036854775807"), i).ok());
  EXPECT_EQ(i, std::numeric_limits<std::int64_t>::max());
}

TEST(api_convert, wrong_shapes_are_unmarshal_failures) {
  auto expect_failure = [](const status& st, const char* expected) {
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, error_code::XMLRPC_UNMARSHAL_FAILURE);
    EXPECT_EQ(st.error().params.at(0), expected);
  };
  std::int64_t i;
  expect_failure(from_value(wire::value("12abc"), i), "int");
  expect_failure(from_value(wire::value("99999999999999999999"), i), "int");
  expect_failure(from_value(wire::value(""), i), "int");
  expect_failure(from_value(wire::value(true), i), "int");
  bool b;
  expect_failure(from_value(wire::value("true"), b), "bool");
  vm_power_state ps;
  expect_failure(from_value(wire::value("halted"), ps), "enum vm_power_state");
  datetime t;
  expect_failure(from_value(wire::value("2024-13-01T00:00:00Z"), t), "datetime");
  std::vector<std::string> set;
  expect_failure(from_value(wire::value("x"), set), "array");
  xapid::api::map<std::int64_t, std::string> int_map;
  expect_failure(from_value(wire::value(wire::structure{{"x", wire::value("y")}}), int_map), "int");
  vm rec;
  expect_failure(from_value(wire::value(wire::array{}), rec), "VM record");
  expect_failure(from_value(wire::value(wire::structure{{"power_state", wire::value("Exploded")}}), rec),
                 "enum vm_power_state");
}

TEST(api_convert, unknown_record_fields_are_ignored_and_missing_ones_default) {
  vm rec;
  ASSERT_TRUE(from_value(wire::value(wire::structure{{"name_label", wire::value("web")},
                                                     {"a_field_of_a_newer_api", wire::value(1)}}),
                         rec)
                  .ok());
  EXPECT_EQ(rec.name_label, "web");
  EXPECT_EQ(rec.power_state, vm_power_state::Halted);
  EXPECT_TRUE(rec.resident_on.is_null());
}

TEST(api_convert, datetimes_use_the_xmlrpc_form) {
  EXPECT_EQ(format_iso8601(datetime{0}), "19700101T00:00:00Z");
  EXPECT_EQ(format_iso8601(datetime{1700000000}), "20231114T22:13:20Z");
  EXPECT_EQ(format_iso8601(datetime{-1}), "19691231T23:59:59Z");
  EXPECT_EQ(format_iso8601(datetime{-62135596800}), "00010101T00:00:00Z");  // four digits, padded
  EXPECT_EQ(format_iso8601(datetime{253402300799}), "99991231T23:59:59Z");
  EXPECT_EQ(format_iso8601(datetime{253402300800}), "100000101T00:00:00Z");  // five digits
  for (const char* s : {"20231114T22:13:20Z", "20231114T22:13:20", "2023-11-14T22:13:20Z", "20231114T22:13:20.123Z"})
    EXPECT_EQ(parse_iso8601(s), datetime{1700000000}) << s;
  for (const char* s : {"", "2023", "20231114 22:13:20", "20231114T25:00:00Z", "20230230T00:00:00Z",
                        "20231114T22:13:20ZZ", "20231114T22:13:20+01"})
    EXPECT_EQ(parse_iso8601(s), std::nullopt) << s;
}

}  // namespace
}  // namespace xapid::api
