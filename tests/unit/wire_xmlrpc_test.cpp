#include "proto/wire/xmlrpc.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "proto/wire/emitter.hpp"
#include "tests/unit/wire_samples.hpp"

namespace xapid::wire::xmlrpc {
namespace {

using testing::after_xmlrpc;
using testing::identical;
using testing::sample_call_params;
using testing::sample_every_kind;

constexpr const char* decl = "<?xml version=\"1.0\"?>";

std::string call_with(const std::string& value_xml) {
  return std::string(decl) + "<methodCall><methodName>m</methodName><params><param>" + value_xml +
         "</param></params></methodCall>";
}

// The one parameter of a call whose <param> holds `value_xml`.
value param_of(const std::string& value_xml) {
  auto c = parse_call(call_with(value_xml));
  EXPECT_TRUE(c.ok()) << value_xml << ": " << (c.ok() ? "" : c.error().message);
  if (!c.ok() || c->params.size() != 1) return value("<parse failed>");
  return c->params[0];
}

std::string success_xml(const std::string& value_xml) {
  return std::string(decl) +
         "<methodResponse><params><param><value><struct>"
         "<member><name>Status</name><value><string>Success</string></value></member>"
         "<member><name>Value</name>" +
         value_xml + "</member></struct></value></param></params></methodResponse>";
}

value round_trip(const value& v) {
  auto c = parse_call(write_call(call{"m", {v}}));
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return c.ok() && c->params.size() == 1 ? c->params[0] : value("<parse failed>");
}

// --- writing: exact bytes -----------------------------------------------------------------

TEST(wire_xmlrpc, writes_success_string_exactly) {
  EXPECT_EQ(write_response({true, "OpaqueRef:abc", {}}),
            success_xml("<value><string>OpaqueRef:abc</string></value>"));
}

TEST(wire_xmlrpc, writes_empty_string_as_empty_value) {
  EXPECT_EQ(write_response({true, "", {}}), success_xml("<value></value>"));
}

TEST(wire_xmlrpc, writes_failure_as_status_struct_never_fault) {
  EXPECT_EQ(write_response({false, {}, {"HANDLE_INVALID", "VM", "OpaqueRef:x", ""}}),
            std::string(decl) +
                "<methodResponse><params><param><value><struct>"
                "<member><name>Status</name><value><string>Failure</string></value></member>"
                "<member><name>ErrorDescription</name><value><array><data>"
                "<value><string>HANDLE_INVALID</string></value>"
                "<value><string>VM</string></value>"
                "<value><string>OpaqueRef:x</string></value>"
                "<value></value>"
                "</data></array></value></member></struct></value></param></params>"
                "</methodResponse>");
}

TEST(wire_xmlrpc, writes_ints_as_strings_and_int32_as_i4) {
  EXPECT_EQ(write_response({true, std::int64_t{42}, {}}),
            success_xml("<value><string>42</string></value>"));
  EXPECT_EQ(write_response({true, int32_value{-5}, {}}), success_xml("<value><i4>-5</i4></value>"));
  std::string out;
  append_value(out, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(out, "<value><string>-9223372036854775808</string></value>");
}

TEST(wire_xmlrpc, writes_scalars_exactly) {
  auto xml = [](const value& v) {
    std::string out;
    append_value(out, v);
    return out;
  };
  EXPECT_EQ(xml(value()), "<value><nil/></value>");
  EXPECT_EQ(xml(true), "<value><boolean>1</boolean></value>");
  EXPECT_EQ(xml(false), "<value><boolean>0</boolean></value>");
  EXPECT_EQ(xml(0.1), "<value><double>0.1</double></value>");
  EXPECT_EQ(xml(-0.0), "<value><double>-0</double></value>");
  EXPECT_EQ(xml(1e300), "<value><double>1e+300</double></value>");
  EXPECT_EQ(xml(datetime{"20240131T12:34:56Z"}),
            "<value><dateTime.iso8601>20240131T12:34:56Z</dateTime.iso8601></value>");
  EXPECT_EQ(xml(array{}), "<value><array><data></data></array></value>");
  EXPECT_EQ(xml(structure{}), "<value><struct></struct></value>");
  EXPECT_EQ(xml(structure{{"a<b", "x&y"}}),
            "<value><struct><member><name>a&lt;b</name><value><string>x&amp;y</string></value>"
            "</member></struct></value>");
  EXPECT_EQ(xml("<&>\r\n\t\x01"),
            "<value><string>&lt;&amp;&gt;&#13;\n\t&#1;</string></value>");
}

// A string as a deferred value writes it, as a member's name and as its value.
class name_and_value final : public deferred {
 public:
  explicit name_and_value(std::string s) : s_(std::move(s)) {}
  void emit(emitter& out) const override {
    out.begin_struct();
    out.name(s_);
    out.string(s_);
    out.end_struct();
  }

 private:
  std::string s_;
};

// Strings are scanned eight bytes at a time: a character that needs escaping is found at every
// offset of strings of every length around a word, alone and next to others, by both writers.
TEST(wire_xmlrpc, escapes_at_every_offset) {
  auto reference = [](const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
      if (c == '&') out += "&amp;";
      else if (c == '<') out += "&lt;";
      else if (c == '>') out += "&gt;";
      else if (c < 0x20 && c != '\t' && c != '\n') out += "&#" + std::to_string(c) + ";";
      else out += static_cast<char>(c);
    }
    return out;
  };
  auto written = [](const std::string& s) {
    std::string answer = write_response({true, value(s), {}});
    auto begin = answer.rfind("<value><string>"), end = answer.rfind("</string></value></member>");
    EXPECT_NE(begin, std::string::npos) << answer;
    return answer.substr(begin + 15, end - begin - 15);
  };
  // And by the writer's own path (xml_writer: a deferred value), as a member's name and value.
  auto written_by_writer = [](const std::string& s) {
    std::string out;
    append_value(out, value(std::make_shared<const name_and_value>(s)));
    return out;
  };
  for (std::size_t length = 1; length <= 26; ++length)
    for (std::size_t at = 0; at < length; ++at)
      for (char special : {'&', '<', '>', '\r', '\x01', '\x1f', '\t', '\n', ' ', '?', '='}) {
        std::string s(length, 'x');
        s[at] = special;
        if (at + 3 < length) s[at + 3] = '<';
        EXPECT_EQ(written(s), reference(s)) << "length " << length << " at " << at << " char " << int(special);
        EXPECT_EQ(written_by_writer(s), "<value><struct><member><name>" + reference(s) + "</name><value><string>" +
                                            reference(s) + "</string></value></member></struct></value>")
            << "length " << length << " at " << at << " char " << int(special);
      }
}

TEST(wire_xmlrpc, writes_call_and_fault_exactly) {
  EXPECT_EQ(write_call({"VM.get_record", {"OpaqueRef:s", "OpaqueRef:vm"}}),
            std::string(decl) +
                "<methodCall><methodName>VM.get_record</methodName><params>"
                "<param><value><string>OpaqueRef:s</string></value></param>"
                "<param><value><string>OpaqueRef:vm</string></value></param>"
                "</params></methodCall>");
  EXPECT_EQ(write_fault(-32700, "bad <xml>"),
            std::string(decl) +
                "<methodResponse><fault><value><struct>"
                "<member><name>faultCode</name><value><int>-32700</int></value></member>"
                "<member><name>faultString</name><value><string>bad &lt;xml&gt;</string></value>"
                "</member></struct></value></fault></methodResponse>");
}

// --- round trips --------------------------------------------------------------------------

TEST(wire_xmlrpc, round_trips_every_kind) {
  value v = sample_call_params();
  value back = round_trip(v);
  EXPECT_TRUE(identical(back, after_xmlrpc(v)));
  // The ints came back as the strings XenAPI uses; typed conversion elsewhere reads them.
  EXPECT_EQ(*back.find("int_min"), value("-9223372036854775808"));
  EXPECT_EQ(*back.find("int_max"), value("9223372036854775807"));
  EXPECT_EQ(*back.find("i4"), value(std::int64_t{-7}));
}

TEST(wire_xmlrpc, round_trips_doubles_exactly) {
  for (double d : {0.0, -0.0, 0.1, 1.0 / 3, 1e300, -1e-300, 5e-324, 1.7976931348623157e308,
                   123456789012345680.0}) {
    value back = round_trip(d);
    ASSERT_NE(back.as_double(), nullptr) << d;
    EXPECT_EQ(*back.as_double(), d);
    EXPECT_EQ(std::signbit(*back.as_double()), std::signbit(d)) << d;
  }
  // An answer may carry what xapi writes for a data source with no value.
  for (double d : {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), std::nan("")}) {
    auto back = parse_response(write_response({true, value(d), {}}));
    ASSERT_TRUE(back.ok());
    ASSERT_NE(back->result.as_double(), nullptr);
    EXPECT_TRUE(std::isnan(d) ? std::isnan(*back->result.as_double()) : *back->result.as_double() == d);
  }
}

// A call is refused what cannot mean one thing: an <i4> beyond 32 bits, a double that is not a
// number, text an XML reader cannot take back (a character reference to a control character).
TEST(wire_xmlrpc, refuses_calls_that_cannot_mean_one_thing) {
  for (const char* v : {"<i4>4294967296</i4>", "<int>2147483648</int>", "<i4>-2147483649</i4>", "<double>nan</double>",
                        "<double>inf</double>", "<double>-inf</double>", "<string>a&#1;b</string>",
                        "<string>&#xFFFE;</string>", "a&#x1f;b", "<string>&#xffff;</string>"}) {
    auto c = parse_call(call_with(std::string("<value>") + v + "</value>"));
    EXPECT_FALSE(c.ok()) << v;
  }
  EXPECT_EQ(param_of("<value><i4>2147483647</i4></value>"), value(std::int64_t{2147483647}));
  EXPECT_EQ(param_of("<value><i8>4294967296</i8></value>"), value(std::int64_t{4294967296}));
  EXPECT_EQ(param_of("<value><string>tab\tnl\n&#13;</string></value>"), value("tab\tnl\n\r"));
}

TEST(wire_xmlrpc, round_trips_responses) {
  for (const response& r : {response{true, sample_every_kind(), {}},
                            response{true, "", {}},
                            response{false, {}, {"SESSION_INVALID", "OpaqueRef:x"}},
                            response{false, {}, {}}}) {
    auto back = parse_response(write_response(r));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(back->success, r.success);
    EXPECT_TRUE(identical(back->result, r.success ? after_xmlrpc(r.result) : value()));
    EXPECT_EQ(back->error_description, r.error_description);
  }
}

TEST(wire_xmlrpc, round_trips_method_names_and_many_params) {
  call c{"Async.VM.clone", {"a", std::int64_t{1}, array{}, structure{}, value()}};
  auto back = parse_call(write_call(c));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->method, "Async.VM.clone");
  ASSERT_EQ(back->params.size(), 5u);
  EXPECT_EQ(back->params[1], value("1"));
  EXPECT_TRUE(back->params[4].is_nil());
}

// --- reading what other clients send ------------------------------------------------------

TEST(wire_xmlrpc, reads_every_spelling_of_a_string) {
  EXPECT_EQ(param_of("<value>bare text</value>"), value("bare text"));
  EXPECT_EQ(param_of("<value><string>typed</string></value>"), value("typed"));
  EXPECT_EQ(param_of("<value></value>"), value(""));
  EXPECT_EQ(param_of("<value/>"), value(""));
  EXPECT_EQ(param_of("<value><string></string></value>"), value(""));
  EXPECT_EQ(param_of("<value><string/></value>"), value(""));
  EXPECT_EQ(param_of("<value>   </value>"), value("   "));
  EXPECT_EQ(param_of("<value><string>  </string></value>"), value("  "));
  EXPECT_EQ(param_of("<value>\n  <string>x</string>\n</value>"), value("x"));
  EXPECT_EQ(param_of("<value><![CDATA[<raw & text>]]></value>"), value("<raw & text>"));
  EXPECT_EQ(param_of("<value>a&amp;b&lt;&gt;&quot;&apos;&#65;&#x42;&#13;</value>"),
            value("a&b<>\"'AB\r"));
  EXPECT_EQ(param_of("<value>line1\r\nline2</value>"), value("line1\nline2"));  // XML EOL rules
  EXPECT_EQ(param_of("<value>h\xC3\xA9 \xF0\x9F\x98\x80</value>"), value("h\xC3\xA9 \xF0\x9F\x98\x80"));
}

TEST(wire_xmlrpc, reads_ints_from_every_tag_and_keeps_string_ints_as_strings) {
  EXPECT_EQ(param_of("<value><i4>42</i4></value>"), value(std::int64_t{42}));
  EXPECT_EQ(param_of("<value><int>-42</int></value>"), value(std::int64_t{-42}));
  EXPECT_EQ(param_of("<value><i8>9223372036854775807</i8></value>"),
            value(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(param_of("<value><i8>-9223372036854775808</i8></value>"),
            value(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(param_of("<value><int> +7 </int></value>"), value(std::int64_t{7}));
  // XenAPI's own encoding: the datamodel's conversion turns it into an int, not the codec.
  EXPECT_EQ(param_of("<value><string>42</string></value>"), value("42"));
  EXPECT_EQ(param_of("<value>42</value>"), value("42"));
}

TEST(wire_xmlrpc, reads_other_scalars) {
  EXPECT_EQ(param_of("<value><boolean>1</boolean></value>"), value(true));
  EXPECT_EQ(param_of("<value><boolean>0</boolean></value>"), value(false));
  EXPECT_EQ(param_of("<value><double>-1.5</double></value>"), value(-1.5));
  EXPECT_EQ(param_of("<value><double>1e-400</double></value>"), value(0.0));  // underflow
  EXPECT_EQ(param_of("<value><double>-0.02e-9223372036854775808</double></value>"), value(-0.0));
  EXPECT_EQ(param_of("<value><double>0.000e+99999999999999999999</double></value>"), value(0.0));
  EXPECT_EQ(param_of("<value><dateTime.iso8601>20240131T12:34:56Z</dateTime.iso8601></value>"),
            value(datetime{"20240131T12:34:56Z"}));
  EXPECT_TRUE(param_of("<value><nil/></value>").is_nil());
  EXPECT_EQ(param_of("<value><base64>aMOpbGxv</base64></value>"), value("h\xC3\xA9llo"));
  EXPECT_EQ(param_of("<value><base64></base64></value>"), value(""));
}

TEST(wire_xmlrpc, reads_pretty_printed_containers) {
  value v = param_of(R"(<value>
      <struct>
        <member>
          <name>Mike</name>
          <value><double>2.3</double></value>
        </member>
        <member><value><array>
            <data>
              <value><string>CX8</string></value>
              <value>PSE36</value>
            </data>
          </array></value><name>flags</name></member>
      </struct>
    </value>)");
  EXPECT_EQ(v, value(structure{{"Mike", 2.3}, {"flags", array{"CX8", "PSE36"}}}));
  EXPECT_EQ(param_of("<value><array/></value>"), value(array{}));
  EXPECT_EQ(param_of("<value><struct/></value>"), value(structure{}));
}

TEST(wire_xmlrpc, reads_a_call_without_params) {
  auto c = parse_call("<methodCall><methodName>system.listMethods</methodName></methodCall>");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->method, "system.listMethods");
  EXPECT_TRUE(c->params.empty());
  auto d = parse_call("<methodCall><methodName>m</methodName><params/></methodCall>");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->params.empty());
}

TEST(wire_xmlrpc, reads_the_seed_example_response) {
  auto r = parse_response(R"(<?xml version='1.0'?>
<methodResponse><params><param><value>
<struct>
<member>
<name>Status</name>
<value>Success</value>
</member>
<member>
<name>Value</name>
<value>
<array>
<data>
<value>81547a35-205c-a551-c577-00b982c5fe00</value>
<value>61c85a22-05da-b8a2-2e55-06b0847da503</value>
</data>
</array>
</value>
</member>
</struct>
</value></param></params></methodResponse>)");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->success);
  EXPECT_EQ(r->result, value(array{"81547a35-205c-a551-c577-00b982c5fe00",
                                   "61c85a22-05da-b8a2-2e55-06b0847da503"}));
}

TEST(wire_xmlrpc, reads_a_failure_and_maps_a_fault_to_a_failure) {
  auto f = parse_response(
      "<methodResponse><params><param><value><struct>"
      "<member><name>Status</name><value>Failure</value></member>"
      "<member><name>ErrorDescription</name><value><array><data>"
      "<value>MAP_DUPLICATE_KEY</value><value>Customer</value><value></value>"
      "</data></array></value></member></struct></value></param></params></methodResponse>");
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_FALSE(f->success);
  EXPECT_EQ(f->error_description, (std::vector<std::string>{"MAP_DUPLICATE_KEY", "Customer", ""}));

  auto fault = parse_response(write_fault(-1, "Malformed request"));
  ASSERT_TRUE(fault.ok()) << fault.error().message;
  EXPECT_FALSE(fault->success);
  EXPECT_EQ(fault->error_description,
            (std::vector<std::string>{"XMLRPC_FAULT", "-1", "Malformed request"}));
}

// --- refusing bad input -------------------------------------------------------------------

struct bad_input {
  const char* what;
  std::string body;
};

std::string deep_arrays(std::size_t levels) {
  std::string body = std::string(decl) + "<methodCall><methodName>m</methodName><params><param>";
  body.reserve(body.size() + levels * 43 + 64);
  for (std::size_t i = 0; i < levels; ++i) body += "<value><array><data>";
  for (std::size_t i = 0; i < levels; ++i) body += "</data></array></value>";
  return body + "</param></params></methodCall>";
}

const std::string billion_laughs =
    "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
    "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
    "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
    "<!ENTITY lol9 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
    "<methodCall><methodName>m</methodName><params><param><value>&lol9;</value></param>"
    "</params></methodCall>";

TEST(wire_xmlrpc, refuses_malformed_calls) {
  const bad_input cases[] = {
      {"empty body", ""},
      {"whitespace body", " \n\t "},
      {"not XML", "hello world"},
      {"JSON", R"({"method":"m"})"},
      {"declaration only", decl},
      {"truncated", "<methodCall><methodName>m</methodName><params><param><value>"},
      {"truncated end tag", call_with("<value>x</value>").substr(0, 80)},
      {"mismatched tags", call_with("<value><string>a</value></string>")},
      {"wrong root", "<methodResponse><params/></methodResponse>"},
      {"other root", "<foo/>"},
      {"two roots", call_with("<value/>") + "<methodCall/>"},
      {"trailing text", call_with("<value/>") + "junk"},
      {"leading text", "junk" + call_with("<value/>")},
      {"missing methodName", "<methodCall><params/></methodCall>"},
      {"empty methodName", "<methodCall><methodName> </methodName></methodCall>"},
      {"two methodNames",
       "<methodCall><methodName>a</methodName><methodName>b</methodName></methodCall>"},
      {"element in methodName", "<methodCall><methodName><b>a</b></methodName></methodCall>"},
      {"unknown element in call", "<methodCall><methodName>a</methodName><x/></methodCall>"},
      {"text in params", "<methodCall><methodName>a</methodName><params>t</params></methodCall>"},
      {"param without value", call_with("")},
      {"param with two values", call_with("<value/><value/>")},
      {"param with other element", call_with("<string>x</string>")},
      {"unknown type tag", call_with("<value><foo>1</foo></value>")},
      {"value with two elements", call_with("<value><string>a</string><i4>1</i4></value>")},
      {"text beside element", call_with("<value>x<string>a</string></value>")},
      {"element in string", call_with("<value><string><b/></string></value>")},
      {"junk int", call_with("<value><i4>12abc</i4></value>")},
      {"empty int", call_with("<value><int></int></value>")},
      {"blank int", call_with("<value><int> </int></value>")},
      {"huge int", call_with("<value><int>99999999999999999999</int></value>")},
      {"huge negative int", call_with("<value><i8>-9223372036854775809</i8></value>")},
      {"hex int", call_with("<value><i4>0x10</i4></value>")},
      {"float in int", call_with("<value><i4>1.5</i4></value>")},
      {"boolean 2", call_with("<value><boolean>2</boolean></value>")},
      {"boolean true", call_with("<value><boolean>true</boolean></value>")},
      {"junk double", call_with("<value><double>abc</double></value>")},
      {"huge double", call_with("<value><double>1e999</double></value>")},
      {"non-empty nil", call_with("<value><nil>x</nil></value>")},
      {"bad base64", call_with("<value><base64>!!!</base64></value>")},
      {"base64 of invalid UTF-8", call_with("<value><base64>wK8=</base64></value>")},
      {"base64 of NUL", call_with("<value><base64>AA==</base64></value>")},
      {"array without data", call_with("<value><array><value/></array></value>")},
      {"array with two datas", call_with("<value><array><data/><data/></array></value>")},
      {"non-value in data", call_with("<value><array><data><string/></data></array></value>")},
      {"text in data", call_with("<value><array><data>x</data></array></value>")},
      {"non-member in struct", call_with("<value><struct><value/></struct></value>")},
      {"member without name",
       call_with("<value><struct><member><value>1</value></member></struct></value>")},
      {"member without value",
       call_with("<value><struct><member><name>a</name></member></struct></value>")},
      {"member with two values",
       call_with("<value><struct><member><name>a</name><value>1</value><value>2</value>"
                 "</member></struct></value>")},
      {"member with two names",
       call_with("<value><struct><member><name>a</name><name>b</name><value>1</value>"
                 "</member></struct></value>")},
      {"element in name",
       call_with("<value><struct><member><name><i>a</i></name><value/></member></struct></value>")},
      {"overlong UTF-8", call_with("<value>\xC0\xAF</value>")},
      {"surrogate UTF-8", call_with("<value>\xED\xA0\x80</value>")},
      {"above U+10FFFF", call_with("<value>\xF4\x90\x80\x80</value>")},
      {"invalid byte in markup", "<methodCall\xFF><methodName>m</methodName></methodCall>"},
      {"latin-1 despite declaration",
       "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>" + call_with("<value>caf\xE9</value>")},
      {"NUL byte", call_with(std::string("<value>a") + '\0' + "b</value>")},
      {"reference to NUL", call_with("<value>a&#0;b</value>")},
      {"reference to surrogate", call_with("<value>&#xD800;</value>")},
      {"reference above U+10FFFF", call_with("<value>&#x110000;</value>")},
      {"wrapping reference", call_with("<value>&#4294967361;</value>")},
      {"billion laughs", billion_laughs},
      {"plain DOCTYPE", "<!DOCTYPE methodCall>" + call_with("<value/>")},
      {"deep nesting", deep_arrays(100000)},
  };
  for (auto& c : cases) {
    auto r = parse_call(c.body);
    EXPECT_FALSE(r.ok()) << c.what << " was accepted";
    if (!r.ok()) {
      EXPECT_FALSE(r.error().message.empty()) << c.what;
      EXPECT_TRUE(r.error().code == fault_parse_error || r.error().code == fault_invalid_request);
    }
  }
}

TEST(wire_xmlrpc, names_what_is_wrong) {
  auto msg = [](const std::string& body) {
    auto r = parse_call(body);
    return r.ok() ? std::string("<accepted>") : r.error().message;
  };
  EXPECT_EQ(msg("<methodCall><params/></methodCall>"), "missing <methodName>");
  EXPECT_EQ(msg(call_with("<value><foo/></value>")), "unknown value type <foo>");
  EXPECT_EQ(msg(call_with("<value><i4>12abc</i4></value>")), "<i4> holds '12abc', not an integer");
  EXPECT_EQ(msg(call_with("<value><int>99999999999999999999</int></value>")),
            "<int> '99999999999999999999' is out of the 64-bit range");
  EXPECT_EQ(msg(call_with("<value><struct><member><value/></member></struct></value>")),
            "<member> without <name>");
  EXPECT_EQ(msg(billion_laughs), "DOCTYPE is not allowed");
  EXPECT_EQ(msg(call_with("<value>\xC0\xAF</value>")), "body is not valid UTF-8");
  EXPECT_EQ(parse_call("<x").error().code, fault_parse_error);
  EXPECT_EQ(parse_call("<x/>").error().code, fault_invalid_request);
}

TEST(wire_xmlrpc, writes_and_reads_bare_answers) {
  // system.listMethods answers the value alone, without the Status struct.
  response r{true, value(array{value("VM.start"), value("")}), {}, true};
  EXPECT_EQ(write_response(r),
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data>"
            "<value><string>VM.start</string></value><value></value></data></array></value>"
            "</param></params></methodResponse>");
  auto back = parse_response(write_response(r));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->success);
  EXPECT_TRUE(back->bare);
  EXPECT_EQ(back->result, r.result);
  // A struct without a Status member is a bare struct too.
  auto no_status = parse_response(success_xml("<value/>").replace(success_xml("").find("Status"), 6, "Statux"));
  ASSERT_TRUE(no_status.ok());
  EXPECT_TRUE(no_status->bare);
}

TEST(wire_xmlrpc, refuses_malformed_responses) {
  const bad_input cases[] = {
      {"empty", ""},
      {"a call", call_with("<value/>")},
      {"no params", "<methodResponse></methodResponse>"},
      {"params and fault", "<methodResponse><params/><fault/></methodResponse>"},
      {"two params",
       "<methodResponse><params><param><value/></param><param><value/></param></params>"
       "</methodResponse>"},
      {"odd Status", "<methodResponse><params><param><value><struct><member><name>Status</name>"
                     "<value>Maybe</value></member></struct></value></param></params>"
                     "</methodResponse>"},
      {"Success without Value",
       "<methodResponse><params><param><value><struct><member><name>Status</name>"
       "<value>Success</value></member></struct></value></param></params></methodResponse>"},
      {"Failure without ErrorDescription",
       "<methodResponse><params><param><value><struct><member><name>Status</name>"
       "<value>Failure</value></member></struct></value></param></params></methodResponse>"},
      {"ErrorDescription of structs",
       "<methodResponse><params><param><value><struct><member><name>Status</name>"
       "<value>Failure</value></member><member><name>ErrorDescription</name><value><array><data>"
       "<value><struct/></value></data></array></value></member></struct></value></param>"
       "</params></methodResponse>"},
      {"fault without code", "<methodResponse><fault><value><struct><member><name>faultString"
                             "</name><value>x</value></member></struct></value></fault>"
                             "</methodResponse>"},
  };
  for (auto& c : cases) EXPECT_FALSE(parse_response(c.body).ok()) << c.what << " was accepted";
}

TEST(wire_xmlrpc, enforces_limits) {
  limits lim;
  lim.max_body_bytes = 200;
  EXPECT_TRUE(parse_call(call_with("<value>x</value>"), lim).ok());
  EXPECT_FALSE(parse_call(call_with("<value>" + std::string(200, 'x') + "</value>"), lim).ok());

  lim = {};
  lim.max_string_bytes = 4;
  EXPECT_TRUE(parse_call(call_with("<value>abcd</value>"), lim).ok());
  EXPECT_FALSE(parse_call(call_with("<value>abcde</value>"), lim).ok());
  EXPECT_FALSE(parse_call(call_with("<value><string>abcde</string></value>"), lim).ok());
  EXPECT_FALSE(parse_call(call_with("<value><struct><member><name>abcde</name><value/></member>"
                                    "</struct></value>"), lim).ok());
  EXPECT_FALSE(parse_call(call_with("<value>ab<![CDATA[cde]]></value>"), lim).ok());

  lim = {};
  lim.max_depth = 3;
  value three = array{array{array{}}};
  value four = array{three};
  EXPECT_TRUE(parse_call(write_call({"m", {three}}), lim).ok());
  EXPECT_FALSE(parse_call(write_call({"m", {four}}), lim).ok());
  // A response's Status struct does not count against the caller's depth.
  EXPECT_TRUE(parse_response(write_response({true, three, {}}), lim).ok());
  EXPECT_FALSE(parse_response(write_response({true, four, {}}), lim).ok());
}

TEST(wire_xmlrpc, survives_a_million_nested_arrays) {
  auto r = parse_call(deep_arrays(1000000));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nested deeper"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace xapid::wire::xmlrpc
