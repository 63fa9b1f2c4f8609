#include "proto/wire/jsonrpc.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>

#include "proto/wire/emitter.hpp"
#include "tests/unit/wire_samples.hpp"

namespace xapid::wire::jsonrpc {
namespace {

using testing::after_jsonrpc;
using testing::identical;
using testing::sample_call_params;
using testing::sample_every_kind;

request v2(std::string id = "1") { return {{}, version::v2_0, std::move(id)}; }
request v1(std::string id = "1") { return {{}, version::v1_0, std::move(id)}; }

std::string json(const value& v) {
  std::string out;
  append_value(out, v);
  return out;
}

// The one parameter of a request whose params array is [`param_json`].
value param_of(const std::string& param_json) {
  auto r = parse_request(R"({"jsonrpc":"2.0","method":"m","params":[)" + param_json + R"(],"id":1})");
  EXPECT_TRUE(r.ok()) << param_json << ": " << (r.ok() ? "" : r.error().message);
  if (!r.ok() || r->c.params.size() != 1) return value("<parse failed>");
  return r->c.params[0];
}

// --- writing: exact bytes -----------------------------------------------------------------

TEST(wire_jsonrpc, writes_2_0_success_without_error_member) {
  EXPECT_EQ(write_response(v2("7"), {true, "OpaqueRef:abc", {}}),
            R"({"jsonrpc":"2.0","result":"OpaqueRef:abc","id":7})");
  EXPECT_EQ(write_response(v2(R"("abc")"), {true, "", {}}),
            R"({"jsonrpc":"2.0","result":"","id":"abc"})");
}

TEST(wire_jsonrpc, writes_2_0_failure_as_xapi_does) {
  EXPECT_EQ(write_response(v2("7"), {false, {}, {"HANDLE_INVALID", "VM", "OpaqueRef:x"}}),
            R"({"jsonrpc":"2.0","error":{"code":1,"message":"HANDLE_INVALID",)"
            R"("data":["VM","OpaqueRef:x"]},"id":7})");
  EXPECT_EQ(write_response(v2("7"), {false, {}, {"SESSION_AUTHENTICATION_FAILED"}}),
            R"({"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_AUTHENTICATION_FAILED",)"
            R"("data":[]},"id":7})");
}

TEST(wire_jsonrpc, writes_1_0_with_both_result_and_error) {
  EXPECT_EQ(write_response(v1("7"), {true, std::int64_t{42}, {}}),
            R"({"result":42,"error":null,"id":7})");
  EXPECT_EQ(write_response(v1(R"("x")"), {false, {}, {"HANDLE_INVALID", "VM", "OpaqueRef:x"}}),
            R"({"result":null,"error":["HANDLE_INVALID","VM","OpaqueRef:x"],"id":"x"})");
}

TEST(wire_jsonrpc, writes_protocol_errors_and_requests) {
  EXPECT_EQ(write_error(v2("null"), error_parse, "bad \"json\""),
            R"({"jsonrpc":"2.0","error":{"code":-32700,"message":"bad \"json\""},"id":null})");
  EXPECT_EQ(write_error(v1("3"), error_invalid_request, "x"),
            R"({"result":null,"error":{"code":-32600,"message":"x"},"id":3})");
  request r{{"VM.get_record", {"OpaqueRef:s", "OpaqueRef:vm"}}, version::v2_0, "5"};
  EXPECT_EQ(write_request(r),
            R"({"jsonrpc":"2.0","method":"VM.get_record","params":["OpaqueRef:s","OpaqueRef:vm"],"id":5})");
  r.ver = version::v1_0;
  EXPECT_EQ(write_request(r),
            R"({"method":"VM.get_record","params":["OpaqueRef:s","OpaqueRef:vm"],"id":5})");
}

TEST(wire_jsonrpc, writes_values_exactly) {
  EXPECT_EQ(json(value()), "null");
  EXPECT_EQ(json(true), "true");
  EXPECT_EQ(json(std::numeric_limits<std::int64_t>::min()), "-9223372036854775808");
  EXPECT_EQ(json(int32_value{-5}), "-5");
  EXPECT_EQ(json(0.1), "0.1");
  EXPECT_EQ(json(100.0), "100.0");  // stays a double when read back
  EXPECT_EQ(json(-0.0), "-0.0");
  EXPECT_EQ(json(1e300), "1e+300");
  EXPECT_EQ(json(std::nan("")), "NaN");
  EXPECT_EQ(json(-std::numeric_limits<double>::infinity()), "-Infinity");
  EXPECT_EQ(json(datetime{"20240131T12:34:56Z"}), R"("20240131T12:34:56Z")");
  EXPECT_EQ(json(array{}), "[]");
  EXPECT_EQ(json(structure{}), "{}");
  EXPECT_EQ(json(structure{{"a\"b", array{std::int64_t{1}, "x"}}, {"", value()}}),
            R"({"a\"b":[1,"x"],"":null})");
  EXPECT_EQ(json("q\" b\\ /\b\f\n\r\t\x01\x1f\x7f \xC3\xA9"),
            R"("q\" b\\ /\b\f\n\r\t\u0001\u001f)" "\x7f \xC3\xA9\"");
  EXPECT_EQ(json(std::string("\0", 1)), R"("\u0000")");
}

// A string as a deferred value writes it, as a member's name and as its value (the writer's own
// path, json_writer, where a tree goes through the tree writer).
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
TEST(wire_jsonrpc, escapes_at_every_offset) {
  auto reference = [](const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
      if (c == '"') out += "\\\"";
      else if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else if (c == '\b') out += "\\b";
      else if (c == '\f') out += "\\f";
      else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
    return out + "\"";
  };
  for (std::size_t length = 1; length <= 26; ++length)
    for (std::size_t at = 0; at < length; ++at)
      for (char special : {'"', '\\', '\n', '\x01', '\x1f', '\x7f', ' ', '/', '<', '\xc3'}) {
        std::string s(length, 'x');
        s[at] = special;
        if (at + 3 < length) s[at + 3] = '"';
        const std::string quoted = reference(s);
        EXPECT_EQ(json(s), quoted) << "length " << length << " at " << at << " char " << int(special);
        EXPECT_EQ(json(value(std::make_shared<const name_and_value>(s))), "{" + quoted + ":" + quoted + "}")
            << "length " << length << " at " << at << " char " << int(special);
      }
}

// --- requests -----------------------------------------------------------------------------

TEST(wire_jsonrpc, reads_2_0_and_1_0_requests) {
  auto r = parse_request(R"({"jsonrpc":"2.0","method":"VM.get_record","params":["s","vm"],"id":1})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->ver, version::v2_0);
  EXPECT_EQ(r->c.method, "VM.get_record");
  EXPECT_EQ(r->c.params, (array{"s", "vm"}));
  EXPECT_EQ(r->id_json, "1");

  auto old = parse_request(R"({"method":"session.login_with_password","params":["u","p"],"id":"a"})");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->ver, version::v1_0);
  EXPECT_EQ(old->id_json, R"("a")");
  auto explicit_old = parse_request(R"({"jsonrpc":"1.0","method":"m","params":[],"id":1})");
  ASSERT_TRUE(explicit_old.ok());
  EXPECT_EQ(explicit_old->ver, version::v1_0);
}

TEST(wire_jsonrpc, echoes_the_id_verbatim) {
  for (std::string id : {"0", "-12", "1.50", "1e3", "2e308", "123456789012345678901234567890", R"("")",
                         R"("abc")", R"("a\u0041\"b")", "null"}) {
    std::string body = R"({"id"  :  )" + id + R"( , "jsonrpc":"2.0","method":"m"})";
    auto r = parse_request(body);
    ASSERT_TRUE(r.ok()) << id << ": " << r.error().message;
    EXPECT_EQ(r->id_json, id);
    EXPECT_EQ(write_response(*r, {true, "", {}}),
              R"({"jsonrpc":"2.0","result":"","id":)" + id + "}");
    // Found by fuzzing: our own client must read back whatever id we echo.
    EXPECT_TRUE(parse_response(write_error(*r, error_invalid_request, "x")).ok()) << id;
  }
  auto absent = parse_request(R"({"jsonrpc":"2.0","method":"m"})");
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ(absent->id_json, "null");
  // An "id" inside params is not the request's id.
  auto nested = parse_request(R"({"method":"m","params":[{"id":5}],"id":6})");
  ASSERT_TRUE(nested.ok());
  EXPECT_EQ(nested->id_json, "6");
}

TEST(wire_jsonrpc, reads_params_of_every_kind) {
  EXPECT_EQ(param_of("9223372036854775807"), value(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(param_of("-9223372036854775808"), value(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(param_of("0"), value(std::int64_t{0}));
  EXPECT_EQ(param_of("1.5"), value(1.5));
  EXPECT_EQ(param_of("1e2"), value(100.0));
  EXPECT_EQ(param_of("-0.0"), value(-0.0));
  EXPECT_TRUE(std::signbit(*param_of("-0.0").as_double()));
  EXPECT_EQ(param_of("1e-400"), value(0.0));
  // Found by fuzzing: an exponent at the edge of int64 once overflowed the underflow check.
  EXPECT_TRUE(std::signbit(*param_of("-0.02e-9223372036854775808").as_double()));
  EXPECT_EQ(param_of("1e-99999999999999999999999"), value(0.0));
  EXPECT_EQ(param_of("0.1"), value(0.1));  // exact, not RapidJSON's fast approximation
  EXPECT_EQ(param_of("2.2250738585072011e-308"), value(2.2250738585072011e-308));
  EXPECT_EQ(param_of("true"), value(true));
  EXPECT_TRUE(param_of("null").is_nil());
  EXPECT_EQ(param_of(R"("42")"), value("42"));
  EXPECT_EQ(param_of(R"("\ud83d\ude00 \u00e9 \t")"), value(std::string("\xF0\x9F\x98\x80 \xC3\xA9 \t", 9)));
  auto nil_params = parse_request(R"({"method":"m","params":null,"id":1})");
  ASSERT_TRUE(nil_params.ok());
  EXPECT_TRUE(nil_params->c.params.empty());
}

// What a call cannot mean is refused before it is a call: numbers that are not numbers, text an
// XML-RPC client could not read back (it would break every client reading the record), and an
// object that names a key twice (which "method" is the call?).
TEST(wire_jsonrpc, refuses_calls_that_cannot_mean_one_thing) {
  for (const char* param : {"NaN", "Infinity", "-Infinity", R"("a\u0000b")", R"("a\u0001b")", R"("a\ufffeb")",
                            R"("\uffff")", "\"a\x01b\"", R"({"k":1,"k":2})", R"({"a\u0000":1})", R"([{"x":[],"x":{}}])"}) {
    auto r = parse_request(std::string(R"({"method":"m","params":[)") + param + R"(],"id":1})");
    EXPECT_FALSE(r.ok()) << param;
  }
  EXPECT_FALSE(parse_request(R"({"method":"VM.get_record","method":"pool.eject","params":[],"id":1})").ok());
  EXPECT_FALSE(parse_request(R"({"method":"m","params":[],"params":["x"],"id":1})").ok());
}

TEST(wire_jsonrpc, round_trips_every_kind) {
  for (version ver : {version::v1_0, version::v2_0}) {
    request req{{"m", {sample_call_params(), std::int64_t{1}}}, ver, R"("id-1")"};
    auto back = parse_request(write_request(req));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(back->ver, ver);
    EXPECT_EQ(back->id_json, req.id_json);
    EXPECT_EQ(back->c.method, "m");
    ASSERT_EQ(back->c.params.size(), 2u);
    EXPECT_TRUE(identical(back->c.params[0], after_jsonrpc(req.c.params[0])));
  }
}

TEST(wire_jsonrpc, round_trips_doubles_exactly) {
  for (double d : {0.0, -0.0, 0.1, 1.0 / 3, 100.0, 1e300, -1e-300, 5e-324,
                   1.7976931348623157e308, 123456789012345680.0}) {
    value back = param_of(json(d));
    ASSERT_NE(back.as_double(), nullptr) << d;
    EXPECT_EQ(*back.as_double(), d);
    EXPECT_EQ(std::signbit(*back.as_double()), std::signbit(d)) << d;
  }
}

// --- responses (client side) --------------------------------------------------------------

TEST(wire_jsonrpc, reads_responses_of_both_versions) {
  auto s2 = parse_response(R"({"jsonrpc":"2.0","result":{"a":1},"id":1})");
  ASSERT_TRUE(s2.ok());
  EXPECT_TRUE(s2->success);
  EXPECT_EQ(s2->result, value(structure{{"a", std::int64_t{1}}}));

  auto f2 = parse_response(
      R"({"jsonrpc":"2.0","error":{"code":1,"message":"HANDLE_INVALID","data":["VM","x"]},"id":1})");
  ASSERT_TRUE(f2.ok());
  EXPECT_FALSE(f2->success);
  EXPECT_EQ(f2->error_description, (std::vector<std::string>{"HANDLE_INVALID", "VM", "x"}));

  auto generic = parse_response(
      R"({"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1})");
  ASSERT_TRUE(generic.ok());
  EXPECT_EQ(generic->error_description, (std::vector<std::string>{"Method not found"}));

  auto odd_data = parse_response(
      R"({"jsonrpc":"2.0","error":{"code":1,"message":"X","data":[1,{"k":null}]},"id":1})");
  ASSERT_TRUE(odd_data.ok());
  EXPECT_EQ(odd_data->error_description, (std::vector<std::string>{"X", "1", R"({"k":null})"}));

  auto s1 = parse_response(R"({"result":"OpaqueRef:x","error":null,"id":1})");
  ASSERT_TRUE(s1.ok());
  EXPECT_EQ(s1->result, value("OpaqueRef:x"));
  auto n1 = parse_response(R"({"result":null,"error":null,"id":1})");
  ASSERT_TRUE(n1.ok());
  EXPECT_TRUE(n1->success);
  EXPECT_TRUE(n1->result.is_nil());

  auto f1 = parse_response(R"({"result":null,"error":["SESSION_INVALID","OpaqueRef:s"],"id":1})");
  ASSERT_TRUE(f1.ok());
  EXPECT_FALSE(f1->success);
  EXPECT_EQ(f1->error_description, (std::vector<std::string>{"SESSION_INVALID", "OpaqueRef:s"}));
}

TEST(wire_jsonrpc, round_trips_responses) {
  for (version ver : {version::v1_0, version::v2_0}) {
    for (const response& r : {response{true, sample_every_kind(), {}},
                              response{true, "", {}},
                              response{false, {}, {"SESSION_INVALID", "OpaqueRef:x", ""}},
                              response{false, {}, {"NO_PARAMS"}}}) {
      auto back = parse_response(write_response({{}, ver, "9"}, r));
      ASSERT_TRUE(back.ok()) << back.error().message;
      EXPECT_EQ(back->success, r.success);
      EXPECT_TRUE(identical(back->result, r.success ? after_jsonrpc(r.result) : value()));
      EXPECT_EQ(back->error_description, r.error_description);
    }
  }
  // A protocol error reads back as a failure whose code is the message.
  auto e = parse_response(write_error(v2(), error_parse, "bad"));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->error_description, (std::vector<std::string>{"bad"}));
}

// --- refusing bad input -------------------------------------------------------------------

struct bad_input {
  const char* what;
  std::string body;
};

std::string deep(std::size_t levels) {
  return R"({"method":"m","params":[)" + std::string(levels, '[') + std::string(levels, ']') +
         R"(],"id":1})";
}

TEST(wire_jsonrpc, refuses_malformed_requests) {
  const bad_input cases[] = {
      {"empty body", ""},
      {"whitespace", "  \n "},
      {"not JSON", "hello"},
      {"XML", "<methodCall/>"},
      {"truncated", R"({"method":"m","params":[1,2)"},
      {"truncated string", R"({"method":"m)"},
      {"trailing garbage", R"({"method":"m","params":[],"id":1} x)"},
      {"two documents", R"({"method":"m"}{"method":"m"})"},
      {"trailing comma", R"({"method":"m","params":[1,],"id":1})"},
      {"single quotes", R"({'method':'m'})"},
      {"comment", R"({"method":"m" /* c */})"},
      {"not an object", R"(["m",[]])"},
      {"a string", R"("m")"},
      {"method missing", R"({"params":[],"id":1})"},
      {"method not a string", R"({"method":1,"params":[],"id":1})"},
      {"method null", R"({"method":null,"params":[],"id":1})"},
      {"method empty", R"({"method":"","params":[],"id":1})"},
      {"params an object", R"({"method":"m","params":{"a":1},"id":1})"},
      {"params a string", R"({"method":"m","params":"a","id":1})"},
      {"bad jsonrpc", R"({"jsonrpc":"3.0","method":"m","id":1})"},
      {"numeric jsonrpc", R"({"jsonrpc":2.0,"method":"m","id":1})"},
      {"id an object", R"({"method":"m","id":{"a":1}})"},
      {"id an array", R"({"method":"m","id":[1]})"},
      {"id a boolean", R"({"method":"m","id":true})"},
      {"huge integer", R"({"method":"m","params":[99999999999999999999],"id":1})"},
      {"past int64 max", R"({"method":"m","params":[9223372036854775808],"id":1})"},
      {"past int64 min", R"({"method":"m","params":[-9223372036854775809],"id":1})"},
      {"huge double", R"({"method":"m","params":[1e999],"id":1})"},
      {"leading zero", R"({"method":"m","params":[012],"id":1})"},
      {"bare dot", R"({"method":"m","params":[.5],"id":1})"},
      {"hex", R"({"method":"m","params":[0x10],"id":1})"},
      {"plus sign", R"({"method":"m","params":[+1],"id":1})"},
      {"junk number", R"({"method":"m","params":[12abc],"id":1})"},
      {"raw control char", "{\"method\":\"m\x01\"}"},
      {"raw newline in string", "{\"method\":\"m\n\"}"},
      {"bad escape", R"({"method":"m\q"})"},
      {"lone high surrogate", R"({"method":"m","params":["\ud800"],"id":1})"},
      {"lone low surrogate", R"({"method":"m","params":["\udc00"],"id":1})"},
      {"overlong UTF-8", "{\"method\":\"m\",\"params\":[\"\xC0\xAF\"],\"id\":1}"},
      {"surrogate UTF-8", "{\"method\":\"m\",\"params\":[\"\xED\xA0\x80\"],\"id\":1}"},
      {"invalid UTF-8 in key", "{\"method\":\"m\",\"params\":[{\"\xFF\":1}],\"id\":1}"},
      {"invalid UTF-8 outside strings", "{\"method\":\"m\"}\xFF"},
      {"NUL then garbage", std::string("{\"method\":\"m\"}") + '\0' + "garbage"},
      {"NUL in string", std::string("{\"method\":\"m\0\"}", 15)},
      {"deep nesting", deep(100000)},
      {"very deep unclosed nesting", R"({"method":"m","params":)" + std::string(1000000, '[')},
  };
  for (auto& c : cases) {
    auto r = parse_request(c.body);
    EXPECT_FALSE(r.ok()) << c.what << " was accepted";
    if (!r.ok()) {
      EXPECT_FALSE(r.error().message.empty()) << c.what;
      EXPECT_TRUE(r.error().code == error_parse || r.error().code == error_invalid_request);
    }
  }
}

TEST(wire_jsonrpc, names_what_is_wrong) {
  auto msg = [](const std::string& body) {
    auto r = parse_request(body);
    return r.ok() ? std::string("<accepted>") : r.error().message;
  };
  EXPECT_EQ(msg(R"({"method":"m","params":{}})"), "params must be an array");
  EXPECT_EQ(msg(R"({"method":1})"), "method is missing or not a string");
  EXPECT_EQ(msg(R"({"method":"m","params":[99999999999999999999]})"),
            "integer 99999999999999999999 is out of the 64-bit range");
  EXPECT_EQ(msg(R"({"method":"m"} x)").rfind("JSON syntax error at byte 15: ", 0), 0u);
  EXPECT_EQ(parse_request("").error().code, error_parse);
  EXPECT_EQ(parse_request("[]").error().code, error_invalid_request);
}

TEST(wire_jsonrpc, refuses_malformed_responses) {
  const bad_input cases[] = {
      {"empty", ""},
      {"not an object", "[]"},
      {"2.0 with both", R"({"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"x"},"id":1})"},
      {"2.0 with neither", R"({"jsonrpc":"2.0","id":1})"},
      {"2.0 error not an object", R"({"jsonrpc":"2.0","error":["X"],"id":1})"},
      {"2.0 error without code", R"({"jsonrpc":"2.0","error":{"message":"x"},"id":1})"},
      {"2.0 error without message", R"({"jsonrpc":"2.0","error":{"code":1},"id":1})"},
      {"1.0 with neither", R"({"id":1})"},
      {"bad version", R"({"jsonrpc":"2","result":1,"id":1})"},
      {"trailing garbage", R"({"result":1,"error":null,"id":1}])"},
  };
  for (auto& c : cases) EXPECT_FALSE(parse_response(c.body).ok()) << c.what << " was accepted";
}

TEST(wire_jsonrpc, enforces_limits) {
  limits lim;
  lim.max_body_bytes = 64;
  EXPECT_TRUE(parse_request(R"({"method":"m","params":[],"id":1})", lim).ok());
  EXPECT_FALSE(parse_request(R"({"method":"m","params":[")" + std::string(64, 'x') + R"("]})", lim).ok());

  lim = {};
  lim.max_string_bytes = 6;  // as long as "method" and "params"
  EXPECT_TRUE(parse_request(R"({"method":"m","params":["abcdef"]})", lim).ok());
  EXPECT_FALSE(parse_request(R"({"method":"m","params":["abcdefg"]})", lim).ok());
  EXPECT_FALSE(parse_request(R"({"method":"m","params":[{"abcdefg":1}]})", lim).ok());

  lim = {};
  lim.max_depth = 3;
  EXPECT_TRUE(parse_request(deep(3), lim).ok());
  EXPECT_FALSE(parse_request(deep(4), lim).ok());
  EXPECT_TRUE(parse_response(write_response(v2(), {true, array{array{array{}}}, {}}), lim).ok());
  EXPECT_FALSE(parse_response(write_response(v2(), {true, array{array{array{array{}}}}, {}}), lim).ok());
}

}  // namespace
}  // namespace xapid::wire::jsonrpc
