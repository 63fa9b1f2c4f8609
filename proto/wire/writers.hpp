// The two codecs' writers of emitter events, over the output buffer (sink.hpp). They are here, and
// not inside each codec, so that code emitting many events — a typed record, with a hundred fields
// — can be compiled against a writer's own type (`with_writer`): each event is then a direct call
// the compiler inlines, a field's name a copy of a known length, where through `emitter&` each is
// a virtual call (a 10,000-VM answer is about three million events). Both write exactly what the
// codecs' tree writers write for the same value.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "proto/wire/emitter.hpp"
#include "proto/wire/sink.hpp"
#include "proto/wire/swar.hpp"
#include "proto/wire/value.hpp"

namespace xapid::wire {
namespace detail {

// ---------------------------------------------------------------------------------------------
// JSON text. Nearly every string has nothing to escape: it is looked at a word at a time and
// copied with its quotes in one reservation; the rest go out of line.

// Whether a byte, or any of a word's eight bytes, needs escaping in JSON: below 0x20, '"' or '\\'.
inline constexpr auto json_escaped = [] {
  struct table {
    bool at[256] = {};
    constexpr bool operator[](char c) const { return at[static_cast<unsigned char>(c)]; }
  } t;
  for (int c = 0; c < 0x20; ++c) t.at[c] = true;
  t.at[static_cast<unsigned char>('"')] = t.at[static_cast<unsigned char>('\\')] = true;
  return t;
}();
constexpr bool json_may_escape(std::uint64_t w) { return has_byte_below(w, 0x20) | has_byte(w, '"') | has_byte(w, '\\'); }

void put_json_string_escaped(sink& out, std::string_view s);  // jsonrpc.cpp

// Looked at and copied in one pass, a word at a time (the last word overlapping the one before,
// so no byte is looked at twice unless the string is shorter than a word, and no call to memcpy);
// on the first sign of something to escape, written again from the start, out of line.
inline void put_json_string(sink& out, std::string_view s) {
  const char* p = s.data();
  const std::size_t n = s.size();
  out.reserve(n + 2);
  char* q = out.cursor();
  *q++ = '"';
  if (n >= 8) {
    for (std::size_t i = 0; i + 8 < n; i += 8) {
      const std::uint64_t w = load_word(p + i);
      if (json_may_escape(w)) return put_json_string_escaped(out, s);
      std::memcpy(q + i, &w, 8);
    }
    const std::uint64_t w = load_word(p + n - 8);
    if (json_may_escape(w)) return put_json_string_escaped(out, s);
    std::memcpy(q + n - 8, &w, 8);
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      if (json_escaped[p[i]]) return put_json_string_escaped(out, s);
      q[i] = p[i];
    }
  }
  q[n] = '"';
  out.advance(n + 2);
}

// Shortest round-trip text, always with a '.' or exponent (jsonrpc.cpp).
void put_json_double(sink& out, double d);
// A built value, whole (jsonrpc.cpp).
void put_json_value(sink& out, const value& v);

// ---------------------------------------------------------------------------------------------
// XML text. Plain strings (nearly all) are one reservation and three copies; a string with a
// byte that may need escaping (& < > and control characters, tab and newline included) goes out
// of line, where tab and newline are then let through.

inline constexpr auto xml_may_escape_byte = [] {
  struct table {
    bool at[256] = {};
    constexpr bool operator[](char c) const { return at[static_cast<unsigned char>(c)]; }
  } t;
  for (int c = 0; c < 0x20; ++c) t.at[c] = true;
  t.at[static_cast<unsigned char>('&')] = t.at[static_cast<unsigned char>('<')] = t.at[static_cast<unsigned char>('>')] = true;
  return t;
}();
constexpr bool xml_may_escape(std::uint64_t w) {
  return has_byte_below(w, 0x20) | has_byte(w, '&') | has_byte(w, '<') | has_byte(w, '>');
}

void put_xml_escaped(sink& out, std::string_view s);  // xmlrpc.cpp

// Copies `s` to `q` as put_json_string does, a word at a time; false (and what was copied is to
// be written again) if a byte of it may need escaping.
[[gnu::always_inline]] inline bool copied_xml_plain(char* q, std::string_view s) {
  const char* p = s.data();
  const std::size_t n = s.size();
  if (n >= 8) {
    for (std::size_t i = 0; i + 8 < n; i += 8) {
      const std::uint64_t w = load_word(p + i);
      if (xml_may_escape(w)) return false;
      std::memcpy(q + i, &w, 8);
    }
    const std::uint64_t w = load_word(p + n - 8);
    if (xml_may_escape(w)) return false;
    std::memcpy(q + n - 8, &w, 8);
    return true;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (xml_may_escape_byte[p[i]]) return false;
    q[i] = p[i];
  }
  return true;
}

// `a`, `s` (escaped) and `b`, in one reservation when `s` has nothing to escape (nearly always).
template <std::size_t A, std::size_t B>
[[gnu::always_inline]] inline void put_around(sink& out, const char (&a)[A], std::string_view s, const char (&b)[B]) {
  out.reserve(A - 1 + s.size() + B - 1);
  char* p = out.cursor();
  if (!copied_xml_plain(p + A - 1, s)) {
    out.put(a);
    put_xml_escaped(out, s);
    return out.put(b);
  }
  std::memcpy(p, a, A - 1);
  std::memcpy(p + A - 1 + s.size(), b, B - 1);
  out.advance(A - 1 + s.size() + B - 1);
}

inline void put_xml_string_value(sink& out, std::string_view s) {
  // Some XML-RPC readers take an empty <string></string> for "undefined"; an empty <value> is
  // a string by definition.
  if (s.empty()) return out.put("<value></value>");
  put_around(out, "<value><string>", s, "</string></value>");
}

inline void put_xml_int(sink& out, std::int64_t i) {  // XenAPI's 64-bit ints travel as decimal strings
  out.put("<value><string>");
  out.number(i);
  out.put("</string></value>");
}

inline void put_xml_datetime(sink& out, std::string_view iso8601) {
  put_around(out, "<value><dateTime.iso8601>", iso8601, "</dateTime.iso8601></value>");
}

void put_xml_double(sink& out, double d);       // xmlrpc.cpp
void put_xml_value(sink& out, const value& v);  // a built value, whole (xmlrpc.cpp)

}  // namespace detail

// JSON: a comma goes before any element or member that is not its container's first; the one
// flag that says so is all the state a writer keeps, whatever the nesting.
class json_writer final : public emitter {
 public:
  explicit json_writer(detail::sink& out) : emitter(emitter_kind::json_writer), out_(out) {}

  void nil() override {
    separate();
    out_.put("null");
  }
  void boolean(bool b) override {
    separate();
    b ? out_.put("true") : out_.put("false");
  }
  void integer(std::int64_t i) override {
    separate();
    out_.number(i);
  }
  void floating(double d) override {
    separate();
    detail::put_json_double(out_, d);
  }
  void string(std::string_view s) override {
    separate();
    detail::put_json_string(out_, s);
  }
  void datetime(std::string_view iso8601) override { string(iso8601); }
  void begin_array() override { open('['); }
  void end_array() override { close(']'); }
  void begin_struct() override { open('{'); }
  void name(std::string_view member) override {
    if (comma_) out_.put(',');
    detail::put_json_string(out_, member);
    out_.put(':');
    comma_ = false;  // the member's value follows its name directly
  }
  // A name with nothing to escape: the comma, quotes and colon in one reservation.
  [[gnu::always_inline]] void field(std::string_view member) override {
    out_.reserve(member.size() + 4);
    char* p = out_.cursor();
    *p = ',';
    p += comma_;
    *p++ = '"';
    std::memcpy(p, member.data(), member.size());
    p += member.size();
    p[0] = '"';
    p[1] = ':';
    out_.advance(static_cast<std::size_t>(p + 2 - out_.cursor()));
    comma_ = false;
  }
  void end_struct() override { close('}'); }
  void value(const wire::value& v) override {
    separate();
    detail::put_json_value(out_, v);
  }

 private:
  // Before a value: the comma if one came before it in its container; after it, one is due.
  void separate() {
    if (comma_) out_.put(',');
    comma_ = true;
  }
  void open(char c) {
    separate();
    out_.put(c);
    comma_ = false;
  }
  void close(char c) {
    out_.put(c);
    comma_ = true;
  }

  detail::sink& out_;
  bool comma_ = false;
};

// XML: a member's </member> is written when the next member or the struct's end comes, so a
// struct keeps one flag (a member is open) while it is the innermost, saved while a nested one is.
class xml_writer final : public emitter {
 public:
  explicit xml_writer(detail::sink& out) : emitter(emitter_kind::xml_writer), out_(out) {}

  void nil() override { out_.put("<value><nil/></value>"); }
  void boolean(bool b) override {
    b ? out_.put("<value><boolean>1</boolean></value>") : out_.put("<value><boolean>0</boolean></value>");
  }
  void integer(std::int64_t i) override { detail::put_xml_int(out_, i); }
  void floating(double d) override { detail::put_xml_double(out_, d); }
  void string(std::string_view s) override { detail::put_xml_string_value(out_, s); }
  void datetime(std::string_view iso8601) override { detail::put_xml_datetime(out_, iso8601); }
  void begin_array() override { out_.put("<value><array><data>"); }
  void end_array() override { out_.put("</data></array></value>"); }
  void begin_struct() override {
    out_.put("<value><struct>");
    if (depth_ < 64) saved_ = saved_ << 1 | member_open_;
    else deeper_.push_back(member_open_);
    ++depth_;
    member_open_ = false;
  }
  void name(std::string_view member) override {
    end_member();
    detail::put_around(out_, "<member><name>", member, "</name>");
  }
  // A name with nothing to escape: copied as it is.
  [[gnu::always_inline]] void field(std::string_view member) override {
    end_member();
    out_.reserve(14 + member.size() + 7);
    char* p = out_.cursor();
    std::memcpy(p, "<member><name>", 14);
    std::memcpy(p + 14, member.data(), member.size());
    std::memcpy(p + 14 + member.size(), "</name>", 7);
    out_.advance(14 + member.size() + 7);
  }
  void end_struct() override {
    if (member_open_) out_.put("</member></struct></value>");
    else out_.put("</struct></value>");
    --depth_;
    if (depth_ < 64) {
      member_open_ = saved_ & 1;
      saved_ >>= 1;
    } else {
      member_open_ = deeper_.back();
      deeper_.pop_back();
    }
  }
  void value(const wire::value& v) override { detail::put_xml_value(out_, v); }

 private:
  void end_member() {
    if (member_open_) out_.put("</member>");
    member_open_ = true;
  }

  detail::sink& out_;
  bool member_open_ = false;      // of the innermost struct
  std::uint64_t saved_ = 0;       // member_open_ of the 64 structs around it, innermost lowest
  std::size_t depth_ = 0;         // structs open
  std::vector<bool> deeper_;      // and of those beyond 64
};

// Calls `f` with `e` as the writer it is, json_writer& or xml_writer&, so that what `f` emits
// compiles to direct calls; as emitter& when it is any other.
template <class F>
void with_writer(emitter& e, F&& f) {
  switch (e.kind()) {
    case emitter_kind::json_writer: return f(static_cast<json_writer&>(e));
    case emitter_kind::xml_writer: return f(static_cast<xml_writer&>(e));
    case emitter_kind::other: break;
  }
  f(e);
}

}  // namespace xapid::wire
