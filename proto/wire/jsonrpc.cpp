#include "proto/wire/jsonrpc.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "proto/wire/emitter.hpp"
#include "proto/wire/numbers.hpp"
#include "proto/wire/pieces.hpp"
#include "proto/wire/sink.hpp"
#include "proto/wire/swar.hpp"
#include "proto/wire/writers.hpp"

// ---------------------------------------------------------------------------------------------
// Writing (json_writer and the inline parts: writers.hpp): everything goes through one sink into
// one string, sized up front from a rough estimate so that it grows at most once or twice.

namespace xapid::wire::detail {
namespace {

// 0 = copy as is; otherwise the character after the backslash ('u' = \u00XX).
constexpr auto escape_table = [] {
  struct table {
    char esc[256] = {};
  } t;
  for (int c = 0; c < 0x20; ++c) t.esc[c] = 'u';
  t.esc[static_cast<unsigned char>('\b')] = 'b';
  t.esc[static_cast<unsigned char>('\f')] = 'f';
  t.esc[static_cast<unsigned char>('\n')] = 'n';
  t.esc[static_cast<unsigned char>('\r')] = 'r';
  t.esc[static_cast<unsigned char>('\t')] = 't';
  t.esc[static_cast<unsigned char>('"')] = '"';
  t.esc[static_cast<unsigned char>('\\')] = '\\';
  return t;
}();

}  // namespace


// A string with something to escape (the plain ones are written inline: writers.hpp).
void put_json_string_escaped(sink& out, std::string_view s) {
  out.put('"');
  const char* run = s.data();
  const char* end = s.data() + s.size();
  for (const char* p = run; p != end; ++p) {
    char e = escape_table.esc[static_cast<unsigned char>(*p)];
    if (!e) continue;
    out.put(run, static_cast<std::size_t>(p - run));
    run = p + 1;
    if (e == 'u') {
      static constexpr char hex[] = "0123456789abcdef";
      auto c = static_cast<unsigned char>(*p);
      char buf[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      out.put(buf, 6);
    } else {
      char buf[2] = {'\\', e};
      out.put(buf, 2);
    }
  }
  out.put(run, static_cast<std::size_t>(end - run));
  out.put('"');
}

// Shortest round-trip text, always with a '.' or exponent so that it reads back as a double,
// not an int. JSON has no NaN or infinities; we write them as JavaScript (and Python's json,
// and xapi's Yojson) do, and read them back the same way.
void put_json_double(sink& out, double d) {
  if (d != d) return out.put("NaN");
  if (d == __builtin_inf()) return out.put("Infinity");
  if (d == -__builtin_inf()) return out.put("-Infinity");
  out.reserve(34);
  char* first = out.cursor();
  char* last = std::to_chars(first, first + 32, d).ptr;
  out.advance(static_cast<std::size_t>(last - first));
  if (!std::memchr(first, '.', static_cast<std::size_t>(last - first)) &&
      !std::memchr(first, 'e', static_cast<std::size_t>(last - first)))
    out.put(".0");
}

void put_json_value(sink& out, const value& v) {
  switch (v.type()) {
    case kind::nil: return out.put("null");
    case kind::boolean: return *v.as_bool() ? out.put("true") : out.put("false");
    case kind::integer: return out.number(*v.as_int());
    case kind::int32: return out.number(v.as_int32()->v);
    case kind::floating: return put_json_double(out, *v.as_double());
    case kind::string: return put_json_string(out, *v.as_string());
    case kind::datetime: return put_json_string(out, v.as_datetime()->iso8601);
    case kind::array: {
      out.put('[');
      bool first = true;
      for (auto& e : *v.as_array()) {
        if (!first) out.put(',');
        first = false;
        put_json_value(out, e);
      }
      return out.put(']');
    }
    case kind::structure: {
      out.put('{');
      bool first = true;
      for (auto& [k, e] : *v.as_struct()) {
        if (!first) out.put(',');
        first = false;
        put_json_string(out, k);
        out.put(':');
        put_json_value(out, e);
      }
      return out.put('}');
    }
    case kind::deferred: {
      if (const std::string* bytes = v.as_deferred()->encoded(format::json_rpc)) return out.put(*bytes);
      json_writer e(out);
      return v.as_deferred()->emit(e);
    }
  }
}

}  // namespace xapid::wire::detail

namespace xapid::wire::jsonrpc {
namespace {

using detail::number_error;
using detail::put_json_string;
using detail::put_json_value;
using detail::sink;

std::size_t size_hint(const value& v) {
  switch (v.type()) {
    case kind::string: return 8 + v.as_string()->size();
    case kind::datetime: return 8 + v.as_datetime()->iso8601.size();
    case kind::array: {
      std::size_t n = 2;
      for (auto& e : *v.as_array()) n += 1 + size_hint(e);
      return n;
    }
    case kind::structure: {
      std::size_t n = 2;
      for (auto& [k, e] : *v.as_struct()) n += 8 + k.size() + size_hint(e);
      return n;
    }
    case kind::deferred: return v.as_deferred()->size_hint() / 2;  // JSON is about half XML's size
    default: return 24;
  }
}

std::string_view id_of(const request& req) {
  return req.id_json.empty() ? std::string_view("null") : std::string_view(req.id_json);
}

// What goes around a successful answer's value.
std::string_view success_head(const request& req) {
  return req.ver == version::v2_0 ? "{\"jsonrpc\":\"2.0\",\"result\":" : "{\"result\":";
}
void put_id_and_end(sink& out, const request& req) {
  out.put(",\"id\":");
  out.put(id_of(req));
  out.put('}');
}
void put_success_tail(sink& out, const request& req) {
  if (req.ver == version::v1_0) out.put(",\"error\":null");
  put_id_and_end(out, req);
}

// ---------------------------------------------------------------------------------------------
// Parsing: RapidJSON's iterative SAX reader drives a builder that keeps its own stack of open
// containers, so nesting depth costs heap, never native stack, and is cut off at the limit.

// RapidJSON's in-situ input stream over our own NUL-terminated copy of the body: strings are
// unescaped in place and numbers handed over as text, with no further copying.
class insitu_stream {
 public:
  using Ch = char;
  explicit insitu_stream(char* buf) : begin_(buf), src_(buf), dst_(buf) {}
  Ch Peek() const { return *src_; }
  Ch Take() { return *src_++; }
  std::size_t Tell() const { return static_cast<std::size_t>(src_ - begin_); }
  Ch* PutBegin() { return dst_ = src_; }
  void Put(Ch c) { *dst_++ = c; }
  std::size_t PutEnd(Ch* begin) { return static_cast<std::size_t>(dst_ - begin); }
  void Flush() {}

 private:
  char* begin_;
  char* src_;
  char* dst_;
};

}  // namespace
}  // namespace xapid::wire::jsonrpc

// Lets the reader work on a local copy of the stream while it scans a token, as it does for its
// own streams: the copy's pointers stay in registers, which makes string scanning ~2x faster.
template <>
struct rapidjson::StreamTraits<xapid::wire::jsonrpc::insitu_stream> {
  enum { copyOptimization = 1 };
};

namespace xapid::wire::jsonrpc {
namespace {

class builder {
 public:
  // `buf` is our in-situ copy of `body`: strings and numbers reported by the reader point into
  // it, which is how the id's verbatim text is found in `body`.
  // `strict`: a request from a client, whose numbers must be finite and whose objects may not
  // name a key twice (which of two "method"s would be the call?).
  builder(const limits& lim, std::size_t max_open, const char* buf, std::string_view body, bool strict)
      : lim_(lim), max_open_(max_open), buf_(buf), body_(body), strict_(strict) {
    frames_.reserve(8);  // enough for most calls, so they do not regrow
    pending_.reserve(32);
  }

  value& root() { return root_; }
  const std::string& error() const { return error_; }
  // The top-level id's JSON text, verbatim; empty if there is none.
  std::string_view id_text() const { return id_text_; }

  bool Null() {
    if (id_pending_ && frames_.size() == 1) id_text_ = "null";
    return scalar(value());
  }
  bool Bool(bool b) {
    if (id_pending_ && frames_.size() == 1) return fail("id must be a number, a string or null");
    return scalar(value(b));
  }
  // Never called: numbers arrive as RawNumber (kParseNumbersAsStringsFlag).
  bool Int(int) { return false; }
  bool Uint(unsigned) { return false; }
  bool Int64(std::int64_t) { return false; }
  bool Uint64(std::uint64_t) { return false; }
  bool Double(double) { return false; }

  // We read number text ourselves: RapidJSON turns integers past uint64 into doubles, which
  // would silently lose digits, and its default double conversion is not always exact.
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    // The top-level id is only ever echoed as text, so any number goes, however large.
    if (id_pending_ && frames_.size() == 1) {
      id_text_ = body_.substr(static_cast<std::size_t>(s - buf_), n);
      return scalar(value());
    }
    std::string_view t(s, n);
    bool is_double = t.find_first_of(".eEIN") != std::string_view::npos;
    if (is_double) {
      double d = 0;
      if (detail::parse_double(t, d) != number_error::none || (strict_ && !std::isfinite(d)))
        return fail("number " + std::string(t.substr(0, 40)) + " is out of range");
      return scalar(value(d));
    }
    std::int64_t i = 0;
    if (detail::parse_int64(t, i) != number_error::none)
      return fail("integer " + std::string(t.substr(0, 40)) + " is out of the 64-bit range");
    return scalar(value(i));
  }

  bool String(const char* s, rapidjson::SizeType n, bool) {
    if (!check_text(s, n)) return false;
    if (id_pending_ && frames_.size() == 1)
      id_text_ = raw_string_at(static_cast<std::size_t>(s - buf_));
    return scalar(value(std::string(s, n)));
  }

  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (!check_text(s, n)) return false;
    key_.assign(s, n);
    if (frames_.size() == 1 && key_ == "id") id_pending_ = true;
    return true;
  }

  bool StartObject() { return open(true); }
  bool StartArray() { return open(false); }
  bool EndObject(rapidjson::SizeType) { return close(); }
  bool EndArray(rapidjson::SizeType) { return close(); }

 private:
  bool fail(std::string msg) {
    error_ = std::move(msg);
    return false;
  }

  // Strings must be UTF-8: raw bytes are checked here, and so are \u escapes, since RapidJSON
  // turns a lone low surrogate (\udc00) into bytes that are not UTF-8.
  bool check_text(const char* s, rapidjson::SizeType n) {
    if (n > lim_.max_string_bytes)
      return fail("string of " + std::to_string(n) + " bytes exceeds the limit of " +
                  std::to_string(lim_.max_string_bytes));
    if (!is_valid_utf8(std::string_view(s, n))) return fail("string is not valid UTF-8");
    // What XML-RPC clients could not read back is not taken from JSON-RPC clients either.
    if (strict_ && !is_xml_text(std::string_view(s, n))) return fail("a string holds a character XML 1.0 cannot carry");
    return true;
  }

  // The body's text of the string whose unescaped content starts (in situ) at `at`: from the
  // opening quote before it to the first unescaped closing quote. The reader has checked it.
  std::string_view raw_string_at(std::size_t at) const {
    std::size_t i = at;
    while (i < body_.size() && body_[i] != '"') i += body_[i] == '\\' ? 2 : 1;
    return body_.substr(at - 1, i + 2 - at);
  }

  bool scalar(value&& v) {
    if (frames_.empty()) {
      root_ = std::move(v);
      return true;
    }
    if (frames_.size() == 1) id_pending_ = false;
    pending_.emplace_back(std::move(key_), std::move(v));
    key_.clear();  // array elements get an empty key
    return true;
  }

  // A container's elements wait on one stack shared by all open containers and move into a
  // container of exactly their number when it closes: no regrowth of ~100-member records.
  // The container's own slot (with its key) is pushed first and filled in on close.
  bool open(bool is_struct) {
    if (id_pending_ && frames_.size() == 1) return fail("id must be a number, a string or null");
    if (frames_.size() >= max_open_)
      return fail("arrays/objects nested deeper than " + std::to_string(lim_.max_depth));
    pending_.emplace_back(std::move(key_), value());
    key_.clear();
    frames_.push_back({pending_.size(), is_struct});
    return true;
  }

  bool close() {
    frame f = frames_.back();
    frames_.pop_back();
    auto first = pending_.begin() + static_cast<std::ptrdiff_t>(f.base);
    value done;
    if (f.is_struct) {
      if (strict_ && pending_.end() - first > 1) {
        std::vector<std::string_view> keys;
        keys.reserve(static_cast<std::size_t>(pending_.end() - first));
        for (auto it = first; it != pending_.end(); ++it) keys.push_back(it->first);
        std::sort(keys.begin(), keys.end());
        if (auto dup = std::adjacent_find(keys.begin(), keys.end()); dup != keys.end())
          return fail("an object names key \"" + std::string(dup->substr(0, 40)) + "\" twice");
      }
      done = value(structure(std::make_move_iterator(first), std::make_move_iterator(pending_.end())));
    } else {
      array a;
      a.reserve(pending_.size() - f.base);
      for (auto it = first; it != pending_.end(); ++it) a.push_back(std::move(it->second));
      done = value(std::move(a));
    }
    pending_.erase(first, pending_.end());
    if (frames_.empty()) {
      root_ = std::move(done);
      pending_.pop_back();
    } else {
      pending_.back().second = std::move(done);
    }
    return true;
  }

  struct frame {
    std::size_t base;  // index in pending_ of the container's first element
    bool is_struct;
  };

  const limits& lim_;
  std::size_t max_open_;
  const char* buf_;
  std::string_view body_;
  bool strict_;
  bool id_pending_ = false;
  std::string_view id_text_;
  value root_;
  std::vector<frame> frames_;
  std::vector<member> pending_;
  std::string key_;
  std::string error_;
};

decode_error parse_err(std::string msg) { return {error_parse, std::move(msg)}; }
decode_error request_err(std::string msg) { return {error_invalid_request, std::move(msg)}; }

struct parsed {
  value root;
  std::string_view id_text;  // the top-level id's text in the caller's body, if any
};

// Parses `body`, allowing `max_open` nested arrays/objects in all.
decoded<parsed> run(std::string_view body, const limits& lim, std::size_t max_open, bool strict) {
  if (body.size() > lim.max_body_bytes)
    return fail(parse_err("body of " + std::to_string(body.size()) +
                          " bytes exceeds the limit of " + std::to_string(lim.max_body_bytes)));
  auto buf = std::make_unique_for_overwrite<char[]>(body.size() + 1);
  std::memcpy(buf.get(), body.data(), body.size());
  buf[body.size()] = '\0';
  insitu_stream is(buf.get());
  builder b(lim, max_open, buf.get(), body, strict);
  rapidjson::Reader reader;
  constexpr unsigned flags = rapidjson::kParseInsituFlag | rapidjson::kParseIterativeFlag |
                             rapidjson::kParseNumbersAsStringsFlag |
                             rapidjson::kParseNanAndInfFlag;
  rapidjson::ParseResult r = reader.Parse<flags>(is, b);
  if (!r) {
    if (!b.error().empty()) return fail(parse_err(b.error()));
    return fail(parse_err(std::string("JSON syntax error at byte ") + std::to_string(r.Offset()) +
                          ": " + rapidjson::GetParseError_En(r.Code())));
  }
  // The reader takes a NUL byte for the end of input; anything after one is refused here.
  if (is.Tell() != body.size()) return fail(parse_err("NUL byte in body"));
  return parsed{std::move(b.root()), b.id_text()};
}

// The last member named `name`: with duplicate keys the last one wins, as in most JSON readers
// (and as for the id, whose text the builder keeps from its last occurrence).
value* member(structure& st, std::string_view name) {
  for (auto it = st.rbegin(); it != st.rend(); ++it)
    if (it->first == name) return &it->second;
  return nullptr;
}

// Error parameters must be strings; anything else is kept as its JSON text.
void add_param(std::vector<std::string>& out, value&& v) {
  if (auto* s = v.as_string()) {
    out.push_back(std::move(*s));
  } else {
    std::string text;
    append_value(text, v);
    out.push_back(std::move(text));
  }
}

// {code, message, data}: message is the error code, data its parameters.
void from_error_object(structure& err, std::vector<std::string>& out) {
  if (value* msg = member(err, "message")) add_param(out, std::move(*msg));
  else out.emplace_back();
  value* data = member(err, "data");
  if (!data || data->is_nil()) return;
  if (auto* a = data->as_array()) {
    for (auto& e : *a) add_param(out, std::move(e));
  } else {
    add_param(out, std::move(*data));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void append_value(std::string& out, const value& v) {
  sink to(out, size_hint(v));
  put_json_value(to, v);
}

std::string write_response(const request& req, const response& r) {
  std::string out;
  const bool v2 = req.ver == version::v2_0;
  std::size_t hint = 96 + req.id_json.size();
  if (r.success) hint += size_hint(r.result);
  for (auto& e : r.error_description) hint += 8 + e.size();
  {  // the sink must finish (trim `out`) before `out` is returned
    sink to(out, hint);
    if (r.success) {
      to.put(success_head(req));
      put_json_value(to, r.result);
      put_success_tail(to, req);
    } else if (v2) {
      // xapi's shape: code 1 (clients treat 0 as "no error"), message = the XenAPI error code,
      // data = its parameters.
      to.put("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":");
      to.number(error_xenapi);
      to.put(",\"message\":");
      auto& ed = r.error_description;
      put_json_string(to, ed.empty() ? std::string_view() : std::string_view(ed.front()));
      to.put(",\"data\":[");
      for (std::size_t i = 1; i < ed.size(); ++i) {
        if (i > 1) to.put(',');
        put_json_string(to, ed[i]);
      }
      to.put("]}");
    } else {
      // 1.0, as xapi answers: the whole ErrorDescription as an array of strings.
      to.put("{\"result\":null,\"error\":[");
      bool first = true;
      for (auto& e : r.error_description) {
        if (!first) to.put(',');
        first = false;
        put_json_string(to, e);
      }
      to.put(']');
    }
    if (!r.success) put_id_and_end(to, req);
  }
  return out;
}

std::unique_ptr<answer_pieces> write_response_in_pieces(const request& req, response r) {
  if (!r.success || size_hint(r.result) < answer_piece_bytes)
    return std::make_unique<detail::whole_answer>(write_response(req, r));
  std::string tail;
  {
    sink to(tail, 32 + req.id_json.size());
    put_success_tail(to, req);
  }
  return std::make_unique<detail::answer_in_pieces<json_writer>>(std::move(r.result), std::string(success_head(req)),
                                                                  std::move(tail));
}

std::string write_error(const request& req, int code, std::string_view message) {
  std::string out;
  {
    sink to(out, 80 + message.size() + req.id_json.size());
    req.ver == version::v2_0 ? to.put("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":")
                             : to.put("{\"result\":null,\"error\":{\"code\":");
    to.number(code);
    to.put(",\"message\":");
    put_json_string(to, message);
    to.put("},\"id\":");
    to.put(id_of(req));
    to.put('}');
  }
  return out;
}

std::string write_request(const request& req) {
  std::string out;
  std::size_t hint = 64 + req.c.method.size() + req.id_json.size();
  for (auto& p : req.c.params) hint += 1 + size_hint(p);
  {
    sink to(out, hint);
    req.ver == version::v2_0 ? to.put("{\"jsonrpc\":\"2.0\",\"method\":")
                             : to.put("{\"method\":");
    put_json_string(to, req.c.method);
    to.put(",\"params\":[");
    bool first = true;
    for (auto& p : req.c.params) {
      if (!first) to.put(',');
      first = false;
      put_json_value(to, p);
    }
    to.put("],\"id\":");
    to.put(id_of(req));
    to.put('}');
  }
  return out;
}

decoded<request> parse_request(std::string_view body, const limits& lim) {
  // The request object and its params array are nesting the caller did not ask to bound.
  auto p = run(body, lim, lim.max_depth + 2, true);
  if (!p) return fail(std::move(p).error());

  auto* top = p->root.as_struct();
  if (!top) return fail(request_err("request is not a JSON object"));
  request out;
  if (value* v = member(*top, "jsonrpc")) {
    auto* s = v->as_string();
    if (s && *s == "2.0") out.ver = version::v2_0;
    else if (s && *s == "1.0") out.ver = version::v1_0;
    else return fail(request_err("jsonrpc must be \"2.0\" or \"1.0\""));
  } else {
    out.ver = version::v1_0;
  }
  value* method = member(*top, "method");
  if (!method || !method->as_string()) return fail(request_err("method is missing or not a string"));
  if (method->as_string()->empty()) return fail(request_err("method is empty"));
  out.c.method = std::move(*method->as_string());
  if (value* params = member(*top, "params"); params && !params->is_nil()) {
    // Positional only: XenAPI methods have no named parameters.
    auto* a = params->as_array();
    if (!a) return fail(request_err("params must be an array"));
    out.c.params = std::move(*a);
  }
  if (!p->id_text.empty()) out.id_json = p->id_text;
  return out;
}

decoded<response> parse_response(std::string_view body, const limits& lim) {
  // Likewise the response object, and (for any max_depth) room for error: {data: [...]}.
  auto p = run(body, lim, std::max<std::size_t>(lim.max_depth + 1, 3), false);
  if (!p) return fail(std::move(p).error());

  auto* top = p->root.as_struct();
  if (!top) return fail(request_err("response is not a JSON object"));
  bool v2 = false;
  if (value* v = member(*top, "jsonrpc")) {
    auto* s = v->as_string();
    if (s && *s == "2.0") v2 = true;
    else if (!s || *s != "1.0") return fail(request_err("jsonrpc must be \"2.0\" or \"1.0\""));
  }
  value* result = member(*top, "result");
  value* error = member(*top, "error");
  response out;
  if (v2) {
    if (result && error) return fail(request_err("response has both result and error"));
    if (result) {
      out.result = std::move(*result);
      return out;
    }
    if (!error) return fail(request_err("response has neither result nor error"));
    auto* err = error->as_struct();
    if (!err) return fail(request_err("error is not an object"));
    value* code = member(*err, "code");
    value* msg = member(*err, "message");
    if (!code || !code->as_int()) return fail(request_err("error.code is missing or not an integer"));
    if (!msg || !msg->as_string()) return fail(request_err("error.message is missing or not a string"));
    out.success = false;
    from_error_object(*err, out.error_description);
    return out;
  }
  // 1.0: a null (or absent) error means success.
  if (!error || error->is_nil()) {
    if (!result) return fail(request_err("response has neither result nor error"));
    out.result = std::move(*result);
    return out;
  }
  out.success = false;
  if (auto* a = error->as_array()) {
    for (auto& e : *a) add_param(out.error_description, std::move(e));
  } else if (auto* err = error->as_struct(); err && member(*err, "message")) {
    from_error_object(*err, out.error_description);
  } else {
    add_param(out.error_description, std::move(*error));
  }
  return out;
}

}  // namespace xapid::wire::jsonrpc
