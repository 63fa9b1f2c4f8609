#include "proto/wire/xmlrpc.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <pugixml.hpp>
#include <string>
#include <vector>

#include "proto/wire/emitter.hpp"
#include "proto/wire/numbers.hpp"
#include "proto/wire/pieces.hpp"
#include "proto/wire/sink.hpp"
#include "proto/wire/swar.hpp"
#include "proto/wire/writers.hpp"

// ---------------------------------------------------------------------------------------------
// Writing (xml_writer and the inline parts: writers.hpp): everything goes through one sink into
// one string, sized up front from a rough estimate so that it grows at most once or twice.

namespace xapid::wire::detail {
namespace {

// Characters that cannot appear raw in XML text. \r would be turned into \n by the reader's
// end-of-line normalisation; other control characters are not XML 1.0 characters at all, so we
// send them as character references (readers such as ours and Python's accept them back).
constexpr auto escape_table = [] {
  struct table {
    bool esc[256] = {};
  } t;
  for (int c = 0; c < 0x20; ++c) t.esc[c] = c != '\t' && c != '\n';
  t.esc[static_cast<unsigned char>('&')] = true;
  t.esc[static_cast<unsigned char>('<')] = true;
  t.esc[static_cast<unsigned char>('>')] = true;
  return t;
}();

}  // namespace

void put_xml_escaped(sink& out, std::string_view s) {
  const char* run = s.data();  // the start of what is still to be copied as it is
  const char* end = run + s.size();
  auto escape = [&](const char* p) {
    auto c = static_cast<unsigned char>(*p);
    if (!escape_table.esc[c]) return;
    out.put(run, static_cast<std::size_t>(p - run));
    run = p + 1;
    switch (c) {
      case '&': out.put("&amp;"); break;
      case '<': out.put("&lt;"); break;
      case '>': out.put("&gt;"); break;
      default:
        out.put("&#");
        out.number(static_cast<unsigned>(c));
        out.put(';');
    }
  };
  const char* p = run;
  // Eight bytes at a time: a word that may need escaping (tab and newline say yes too) is then
  // looked at byte by byte.
  for (; end - p >= 8; p += 8)
    if (xml_may_escape(load_word(p)))
      for (int i = 0; i < 8; ++i) escape(p + i);
  // The last eight bytes, overlapping those already looked at, which may only say yes again.
  if (p != end && s.size() >= 8 && !xml_may_escape(load_word(end - 8))) p = end;
  for (; p != end; ++p)
    if (escape_table.esc[static_cast<unsigned char>(*p)]) escape(p);
  out.put(run, static_cast<std::size_t>(end - run));
}

void put_xml_double(sink& out, double d) {
  out.put("<value><double>");
  out.number(d);
  out.put("</double></value>");
}

void put_xml_value(sink& out, const value& v) {
  switch (v.type()) {
    case kind::nil: return out.put("<value><nil/></value>");
    case kind::boolean:
      return *v.as_bool() ? out.put("<value><boolean>1</boolean></value>") : out.put("<value><boolean>0</boolean></value>");
    case kind::integer: return put_xml_int(out, *v.as_int());
    case kind::int32:
      out.put("<value><i4>");
      out.number(v.as_int32()->v);
      return out.put("</i4></value>");
    case kind::floating: return put_xml_double(out, *v.as_double());
    case kind::string: return put_xml_string_value(out, *v.as_string());
    case kind::datetime: return put_xml_datetime(out, v.as_datetime()->iso8601);
    case kind::array:
      out.put("<value><array><data>");
      for (auto& e : *v.as_array()) put_xml_value(out, e);
      return out.put("</data></array></value>");
    case kind::structure:
      out.put("<value><struct>");
      for (auto& [k, e] : *v.as_struct()) {
        out.put("<member><name>");
        put_xml_escaped(out, k);
        out.put("</name>");
        put_xml_value(out, e);
        out.put("</member>");
      }
      return out.put("</struct></value>");
    case kind::deferred: {
      if (const std::string* bytes = v.as_deferred()->encoded(format::xml_rpc)) return out.put(*bytes);
      xml_writer e(out);
      return v.as_deferred()->emit(e);
    }
  }
}

}  // namespace xapid::wire::detail

namespace xapid::wire::xmlrpc {
namespace {

using detail::number_error;
using detail::put_xml_escaped;
using detail::put_xml_string_value;
using detail::put_xml_value;
using detail::sink;

// Rough size of the XML for `v`, so that the output string grows at most once or twice.
std::size_t size_hint(const value& v) {
  switch (v.type()) {
    case kind::string: return 31 + v.as_string()->size();
    case kind::datetime: return 59 + v.as_datetime()->iso8601.size();
    case kind::array: {
      std::size_t n = 40;
      for (auto& e : *v.as_array()) n += size_hint(e);
      return n;
    }
    case kind::structure: {
      std::size_t n = 30;
      for (auto& [k, e] : *v.as_struct()) n += 30 + k.size() + size_hint(e);
      return n;
    }
    case kind::deferred: return v.as_deferred()->size_hint();
    default: return 48;
  }
}

// The fault struct that write_fault sends and parse_response reads back.
constexpr std::string_view fault_tag = "XMLRPC_FAULT";

// ---------------------------------------------------------------------------------------------
// Parsing: the body is checked as a whole (size, UTF-8, character references), parsed by
// pugixml into a DOM, then walked. The walk recurses once per array/struct level and stops at
// limits::max_depth, so hostile nesting cannot exhaust the stack; pugixml's own parser is
// iterative.

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool all_ws(const char* s) {
  for (; *s; ++s)
    if (!is_ws(*s)) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

// pugixml's node accessors are out-of-line calls into the library, so the walk asks each node
// for its type once (node_null doubles as "no such node") and compares names inline.
bool is_text(pugi::xml_node_type t) { return t == pugi::node_pcdata || t == pugi::node_cdata; }

// strcmp against a literal, unrolled by the compiler; never reads past either terminator.
template <std::size_t N>
bool eq(const char* s, const char (&lit)[N]) {
  for (std::size_t i = 0; i < N; ++i)
    if (s[i] != lit[i]) return false;
  return true;
}

template <std::size_t N>
bool named(pugi::xml_node n, const char (&lit)[N]) {
  return eq(n.name(), lit);
}

// Checks what pugixml does not: it decodes &#N; without range checks, so a reference to U+0000
// would silently cut the text short, and one to a surrogate or past U+10FFFF would yield
// invalid UTF-8. A raw NUL byte would likewise end the text early. Returns an error message,
// or an empty string if the body is acceptable.
std::string check_bytes(std::string_view body) {
  if (std::memchr(body.data(), '\0', body.size())) return "NUL byte in body";
  const char* p = body.data();
  const char* end = p + body.size();
  while ((p = static_cast<const char*>(std::memchr(p, '&', end - p)))) {
    ++p;
    if (p == end || *p != '#') continue;
    ++p;
    bool hex = p != end && *p == 'x';
    if (hex) ++p;
    std::uint32_t cp = 0;
    int digits = 0;
    for (; p != end; ++p, ++digits) {
      int d;
      char c = *p;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else break;
      cp = cp * (hex ? 16 : 10) + d;
      if (cp > 0x10FFFF) cp = 0x110000;  // saturate: any larger value is refused the same way
    }
    if (p == end || *p != ';') continue;  // not a reference: pugixml keeps it as literal text
    if (digits == 0 || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return "character reference to an invalid code point";
  }
  return {};
}

class walker {
 public:
  // `strict`: a call from a client, whose <i4>/<int> must fit 32 bits and whose doubles must be
  // finite (an answer may carry what xapi writes).
  walker(const limits& lim, std::size_t max_depth, bool strict) : lim_(lim), max_depth_(max_depth), strict_(strict) {}

  const std::string& error() const { return error_; }

  bool fail(std::string msg) {
    error_ = std::move(msg);
    return false;
  }

  bool check_len(std::string_view s) {
    if (s.size() > lim_.max_string_bytes)
      return fail("string of " + std::to_string(s.size()) + " bytes exceeds the limit of " +
                  std::to_string(lim_.max_string_bytes));
    if (strict_ && !is_xml_text(s)) return fail("a string holds a character XML 1.0 cannot carry");
    return true;
  }

  // The text content of `el`, which must hold no elements. Points into the DOM when the
  // content is a single text node, else into a scratch buffer valid until the next call.
  bool text(pugi::xml_node el, std::string_view& out) {
    pugi::xml_node c = el.first_child();
    pugi::xml_node_type t = c.type();
    if (t == pugi::node_null) {
      out = {};
      return true;
    }
    if (is_text(t) && c.next_sibling().type() == pugi::node_null) {
      out = c.value();
      return check_len(out);
    }
    scratch_.clear();
    for (; t != pugi::node_null; c = c.next_sibling(), t = c.type()) {
      if (t == pugi::node_element)
        return fail(std::string("<") + el.name() + "> holds element <" + c.name() + ">, expected text");
      if (is_text(t)) scratch_ += c.value();
    }
    out = scratch_;
    return check_len(out);
  }

  // The one element child of `el`; text beside it must be whitespace.
  bool single_element(pugi::xml_node el, pugi::xml_node& out) {
    bool found = false;
    for (pugi::xml_node c = el.first_child();; c = c.next_sibling()) {
      pugi::xml_node_type t = c.type();
      if (t == pugi::node_null) break;
      if (is_text(t)) {
        if (!all_ws(c.value())) return fail(std::string("text inside <") + el.name() + ">");
      } else if (t == pugi::node_element) {
        if (found) return fail(std::string("<") + el.name() + "> holds more than one element");
        found = true;
        out = c;
      }
    }
    if (!found) return fail(std::string("<") + el.name() + "> is empty");
    return true;
  }

  template <std::size_t N>
  bool single_element(pugi::xml_node el, const char (&want)[N], pugi::xml_node& out) {
    if (!single_element(el, out)) return false;
    if (named(out, want)) return true;
    return fail(std::string("<") + el.name() + "> holds <" + out.name() + ">, expected <" + want +
                ">");
  }

  bool parse_value(pugi::xml_node v, value& out, std::size_t depth) {
    pugi::xml_node c = v.first_child();
    pugi::xml_node_type t = c.type();
    if (t == pugi::node_null) {  // <value/> or <value></value>: the empty string
      out = value(std::string());
      return true;
    }
    if (c.next_sibling().type() == pugi::node_null) {  // the usual case: one child
      if (t == pugi::node_element) return parse_typed(c, out, depth);
      if (is_text(t)) {  // bare text is a string
        std::string_view s = c.value();
        if (!check_len(s)) return false;
        out = value(s);
        return true;
      }
    }
    // Several children: text (a string) or one element with whitespace around it.
    pugi::xml_node typed;
    bool has_text = false;
    for (; t != pugi::node_null; c = c.next_sibling(), t = c.type()) {
      if (is_text(t)) {
        has_text = true;
      } else if (t == pugi::node_element) {
        if (typed.type() != pugi::node_null) return fail("<value> holds more than one element");
        typed = c;
      }
    }
    if (typed.type() == pugi::node_null) {
      std::string_view s;
      if (!text(v, s)) return false;
      out = value(s);
      return true;
    }
    if (has_text)
      for (c = v.first_child(); c.type() != pugi::node_null; c = c.next_sibling())
        if (is_text(c.type()) && !all_ws(c.value()))
          return fail(std::string("<value> mixes text with <") + typed.name() + ">");
    return parse_typed(typed, out, depth);
  }

  bool parse_typed(pugi::xml_node t, value& out, std::size_t depth) {
    const char* name = t.name();
    std::string_view s;
    switch (name[0]) {
      case 's':
        if (eq(name, "string")) {
          if (!text(t, s)) return false;
          out = value(s);
          return true;
        }
        if (eq(name, "struct")) return parse_struct(t, out, depth + 1);
        break;
      case 'i':
        if (eq(name, "i4") || eq(name, "int") || eq(name, "i8")) return parse_int(t, out, !eq(name, "i8"));
        break;
      case 'a':
        if (eq(name, "array")) return parse_array(t, out, depth + 1);
        break;
      case 'b':
        if (eq(name, "boolean")) {
          if (!text(t, s)) return false;
          s = trim(s);
          if (s == "1") out = value(true);
          else if (s == "0") out = value(false);
          else return fail("<boolean> holds '" + std::string(s.substr(0, 40)) + "', expected 0 or 1");
          return true;
        }
        if (eq(name, "base64")) return parse_base64(t, out);
        break;
      case 'd':
        if (eq(name, "double")) return parse_double(t, out);
        if (eq(name, "dateTime.iso8601")) {
          if (!text(t, s)) return false;
          out = value(datetime{std::string(s)});
          return true;
        }
        break;
      case 'n':
        if (eq(name, "nil")) {
          if (!text(t, s)) return false;
          if (!trim(s).empty()) return fail("<nil> is not empty");
          out = value();
          return true;
        }
        break;
    }
    return fail(std::string("unknown value type <") + name + ">");
  }

  bool parse_int(pugi::xml_node t, value& out, bool int32) {
    std::string_view s;
    if (!text(t, s)) return false;
    s = trim(s);
    std::int64_t i = 0;
    switch (detail::parse_int64(s, i)) {
      case number_error::none:
        if (strict_ && int32 && (i < INT32_MIN || i > INT32_MAX))
          return fail("<" + std::string(t.name()) + "> '" + std::string(s.substr(0, 40)) + "' is out of the 32-bit range");
        out = value(i);
        return true;
      case number_error::out_of_range:
        return fail("<" + std::string(t.name()) + "> '" + std::string(s.substr(0, 40)) +
                    "' is out of the 64-bit range");
      case number_error::junk: break;
    }
    return fail("<" + std::string(t.name()) + "> holds '" + std::string(s.substr(0, 40)) +
                "', not an integer");
  }

  bool parse_double(pugi::xml_node t, value& out) {
    std::string_view s;
    if (!text(t, s)) return false;
    s = trim(s);
    double d = 0;
    if (detail::parse_double(s, d) != number_error::none || (strict_ && !std::isfinite(d)))
      return fail("<double> holds '" + std::string(s.substr(0, 40)) + "', not a number in range");
    out = value(d);
    return true;
  }

  // XenAPI never sends base64; we accept it from generic clients as a string, which must then
  // be UTF-8 without NUL like every other string.
  bool parse_base64(pugi::xml_node t, value& out) {
    std::string_view s;
    if (!text(t, s)) return false;
    std::string bytes;
    bytes.reserve(s.size() / 4 * 3);
    std::uint32_t acc = 0;
    int bits = 0;
    std::size_t pad = 0;
    for (char c : s) {
      int d;
      if (c >= 'A' && c <= 'Z') d = c - 'A';
      else if (c >= 'a' && c <= 'z') d = c - 'a' + 26;
      else if (c >= '0' && c <= '9') d = c - '0' + 52;
      else if (c == '+') d = 62;
      else if (c == '/') d = 63;
      else if (c == '=') { ++pad; continue; }
      else if (is_ws(c)) continue;
      else return fail("<base64> holds a character outside the base64 alphabet");
      if (pad) return fail("<base64> has data after padding");
      acc = (acc << 6) | static_cast<std::uint32_t>(d);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes.push_back(static_cast<char>((acc >> bits) & 0xFF));
      }
    }
    if (bits >= 6 || pad > 2) return fail("<base64> has a truncated final group");
    if (!is_valid_utf8(bytes) || bytes.find('\0') != std::string::npos)
      return fail("<base64> does not decode to UTF-8 text");
    if (!check_len(bytes)) return false;
    out = value(std::move(bytes));
    return true;
  }

  bool check_depth(std::size_t depth) {
    if (depth <= max_depth_) return true;
    return fail("arrays/structs nested deeper than " + std::to_string(lim_.max_depth));
  }

  // Children are counted first so that each container is allocated once at its final size and
  // its elements are parsed in place (records have ~100 members).
  static std::size_t count_children(pugi::xml_node el) {
    std::size_t n = 0;
    for (pugi::xml_node c = el.first_child(); c.type() != pugi::node_null; c = c.next_sibling())
      ++n;
    return n;
  }

  bool parse_array(pugi::xml_node t, value& out, std::size_t depth) {
    if (!check_depth(depth)) return false;
    out = value(array{});
    if (t.first_child().type() == pugi::node_null) return true;  // <array/>, as lenient readers accept
    pugi::xml_node data;
    if (!single_element(t, "data", data)) return false;
    array& a = *out.as_array();
    a.reserve(count_children(data));
    for (pugi::xml_node c = data.first_child();; c = c.next_sibling()) {
      pugi::xml_node_type ct = c.type();
      if (ct == pugi::node_null) break;
      if (is_text(ct)) {
        if (!all_ws(c.value())) return fail("text inside <data>");
        continue;
      }
      if (!named(c, "value"))
        return fail(std::string("<data> holds <") + c.name() + ">, expected <value>");
      a.emplace_back();
      if (!parse_value(c, a.back(), depth)) return false;
    }
    return true;
  }

  bool parse_struct(pugi::xml_node t, value& out, std::size_t depth) {
    if (!check_depth(depth)) return false;
    out = value(structure{});
    structure& st = *out.as_struct();
    st.reserve(count_children(t));
    for (pugi::xml_node m = t.first_child();; m = m.next_sibling()) {
      pugi::xml_node_type mt = m.type();
      if (mt == pugi::node_null) break;
      if (is_text(mt)) {
        if (!all_ws(m.value())) return fail("text inside <struct>");
        continue;
      }
      if (!named(m, "member"))
        return fail(std::string("<struct> holds <") + m.name() + ">, expected <member>");
      pugi::xml_node name_el, value_el;
      bool has_name = false, has_value = false;
      for (pugi::xml_node c = m.first_child();; c = c.next_sibling()) {
        pugi::xml_node_type ct = c.type();
        if (ct == pugi::node_null) break;
        if (is_text(ct)) {
          if (!all_ws(c.value())) return fail("text inside <member>");
          continue;
        }
        const char* n = c.name();
        if (eq(n, "name")) {
          if (has_name) return fail("<member> has two <name>s");
          has_name = true;
          name_el = c;
        } else if (eq(n, "value")) {
          if (has_value) return fail("<member> has two <value>s");
          has_value = true;
          value_el = c;
        } else {
          return fail(std::string("<member> holds <") + n + ">, expected <name> and <value>");
        }
      }
      if (!has_name) return fail("<member> without <name>");
      if (!has_value) return fail("<member> without <value>");
      std::string_view key;
      if (!text(name_el, key)) return false;
      st.emplace_back(std::string(key), value());
      if (!parse_value(value_el, st.back().second, depth)) return false;
    }
    return true;
  }

 private:
  const limits& lim_;
  std::size_t max_depth_;
  bool strict_;
  std::string error_;
  std::string scratch_;
};

// A parsed body: the DOM and the buffer it points into.
struct document {
  std::unique_ptr<char[]> buf;
  pugi::xml_document doc;
  pugi::xml_node root;
};

decode_error parse_err(std::string msg) { return {fault_parse_error, std::move(msg)}; }
decode_error request_err(std::string msg) { return {fault_invalid_request, std::move(msg)}; }

// Checks and parses `body`, and finds its single root element, which must be named `root`.
result<void, decode_error> load(std::string_view body, const limits& lim, const char* root,
                                document& d) {
  if (body.size() > lim.max_body_bytes)
    return fail(parse_err("body of " + std::to_string(body.size()) +
                          " bytes exceeds the limit of " + std::to_string(lim.max_body_bytes)));
  if (trim(body).empty()) return fail(parse_err("empty body"));
  if (!is_valid_utf8(body)) return fail(parse_err("body is not valid UTF-8"));
  if (auto msg = check_bytes(body); !msg.empty()) return fail(parse_err(std::move(msg)));

  // pugixml parses in place; the copy keeps the caller's buffer intact and adds the terminator
  // that fragment parsing needs so the last text byte survives. Fragment mode makes stray text
  // beside the root visible so that it can be refused. Comments and processing instructions are
  // dropped. DOCTYPE nodes are kept only to refuse them: pugixml never expands entities
  // declared in a DTD (they would stay literal text), but XML-RPC has no use for a DTD, and
  // refusing it closes the door on entity tricks altogether.
  d.buf = std::make_unique_for_overwrite<char[]>(body.size() + 1);
  std::memcpy(d.buf.get(), body.data(), body.size());
  d.buf[body.size()] = '\0';
  constexpr unsigned flags = pugi::parse_default | pugi::parse_ws_pcdata_single |
                             pugi::parse_fragment | pugi::parse_doctype;
  pugi::xml_parse_result r =
      d.doc.load_buffer_inplace(d.buf.get(), body.size() + 1, flags, pugi::encoding_utf8);
  if (!r)
    return fail(parse_err("XML syntax error at byte " + std::to_string(r.offset) + ": " +
                          r.description()));
  for (pugi::xml_node c = d.doc.first_child(); c; c = c.next_sibling()) {
    switch (c.type()) {
      case pugi::node_element:
        if (d.root) return fail(parse_err("more than one root element"));
        d.root = c;
        break;
      case pugi::node_doctype: return fail(parse_err("DOCTYPE is not allowed"));
      case pugi::node_pcdata:
      case pugi::node_cdata:
        if (!all_ws(c.value())) return fail(parse_err("text outside the root element"));
        break;
      default: break;
    }
  }
  if (!d.root) return fail(parse_err("no root element"));
  if (std::strcmp(d.root.name(), root) != 0)
    return fail(request_err(std::string("root element is <") + d.root.name() + ">, expected <" +
                            root + ">"));
  return ok_v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void append_value(std::string& out, const value& v) {
  sink to(out, size_hint(v));
  put_xml_value(to, v);
}

std::string write_call(const call& c) {
  std::string out;
  std::size_t hint = 80 + c.method.size();
  for (auto& p : c.params) hint += 15 + size_hint(p);
  {
    sink to(out, hint);
    to.put("<?xml version=\"1.0\"?><methodCall><methodName>");
    put_xml_escaped(to, c.method);
    to.put("</methodName><params>");
    for (auto& p : c.params) {
      to.put("<param>");
      put_xml_value(to, p);
      to.put("</param>");
    }
    to.put("</params></methodCall>");
  }
  return out;
}

namespace {

// What goes around a successful answer's value.
struct envelope {
  std::string_view head, tail;
};
constexpr envelope bare_answer{"<?xml version=\"1.0\"?><methodResponse><params><param>",
                               "</param></params></methodResponse>"};
constexpr envelope status_answer{
    "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>"
    "<member><name>Status</name><value><string>Success</string></value></member>"
    "<member><name>Value</name>",
    "</member></struct></value></param></params></methodResponse>"};

}  // namespace

std::string write_response(const response& r) {
  std::string out;
  if (r.success) {
    const envelope& e = r.bare ? bare_answer : status_answer;
    sink to(out, e.head.size() + e.tail.size() + size_hint(r.result));
    to.put(e.head);
    put_xml_value(to, r.result);
    to.put(e.tail);
  } else {
    std::size_t hint = 300;
    for (auto& e : r.error_description) hint += 31 + e.size();
    sink to(out, hint);
    to.put(
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>"
        "<member><name>Status</name><value><string>Failure</string></value></member>"
        "<member><name>ErrorDescription</name><value><array><data>");
    for (auto& e : r.error_description) put_xml_string_value(to, e);
    to.put(
        "</data></array></value></member></struct></value></param></params>"
        "</methodResponse>");
  }
  return out;
}

std::unique_ptr<answer_pieces> write_response_in_pieces(response r) {
  if (!r.success || size_hint(r.result) < answer_piece_bytes) return std::make_unique<detail::whole_answer>(write_response(r));
  const envelope& e = r.bare ? bare_answer : status_answer;
  return std::make_unique<detail::answer_in_pieces<xml_writer>>(std::move(r.result), std::string(e.head),
                                                                 std::string(e.tail));
}

std::string write_fault(int code, std::string_view message) {
  std::string out;
  {
    sink to(out, 256 + message.size());
    to.put(
        "<?xml version=\"1.0\"?><methodResponse><fault><value><struct>"
        "<member><name>faultCode</name><value><int>");
    to.number(code);
    to.put("</int></value></member><member><name>faultString</name>");
    put_xml_string_value(to, message);
    to.put("</member></struct></value></fault></methodResponse>");
  }
  return out;
}

decoded<call> parse_call(std::string_view body, const limits& lim) {
  document d;
  if (auto r = load(body, lim, "methodCall", d); !r) return fail(std::move(r).error());

  pugi::xml_node name_el, params_el;
  for (pugi::xml_node c = d.root.first_child(); c; c = c.next_sibling()) {
    if (is_text(c.type())) {
      if (!all_ws(c.value())) return fail(request_err("text inside <methodCall>"));
      continue;
    }
    if (named(c, "methodName")) {
      if (name_el) return fail(request_err("two <methodName>s"));
      name_el = c;
    } else if (named(c, "params")) {
      if (params_el) return fail(request_err("two <params>"));
      params_el = c;
    } else {
      return fail(request_err(std::string("<methodCall> holds <") + c.name() +
                              ">, expected <methodName> and <params>"));
    }
  }
  if (!name_el) return fail(request_err("missing <methodName>"));

  walker w(lim, lim.max_depth, true);
  call out;
  std::string_view name;
  if (!w.text(name_el, name)) return fail(request_err(w.error()));
  name = trim(name);
  if (name.empty()) return fail(request_err("empty <methodName>"));
  out.method = name;

  if (params_el) {  // a call without <params> has no parameters
    for (pugi::xml_node p = params_el.first_child(); p; p = p.next_sibling()) {
      if (is_text(p.type())) {
        if (!all_ws(p.value())) return fail(request_err("text inside <params>"));
        continue;
      }
      if (!named(p, "param"))
        return fail(request_err(std::string("<params> holds <") + p.name() + ">, expected <param>"));
      pugi::xml_node v;
      if (!w.single_element(p, "value", v)) return fail(request_err(w.error()));
      out.params.emplace_back();
      if (!w.parse_value(v, out.params.back(), 0)) return fail(request_err(w.error()));
    }
  }
  return out;
}

decoded<response> parse_response(std::string_view body, const limits& lim) {
  document d;
  if (auto r = load(body, lim, "methodResponse", d); !r) return fail(std::move(r).error());

  // The Status struct around a XenAPI answer is one level the caller did not ask to bound.
  walker w(lim, lim.max_depth + 1, false);
  pugi::xml_node kind_el;
  if (!w.single_element(d.root, kind_el)) return fail(request_err(w.error()));

  response out;
  if (named(kind_el, "fault")) {
    // A fault becomes an ordinary failure {XMLRPC_FAULT, code, string} so that callers handle
    // one shape; write_response sends it back as a Status/ErrorDescription struct.
    pugi::xml_node v;
    if (!w.single_element(kind_el, "value", v)) return fail(request_err(w.error()));
    value f;
    if (!w.parse_value(v, f, 0)) return fail(request_err(w.error()));
    const value* code = f.find("faultCode");
    const value* text = f.find("faultString");
    if (!code || !text) return fail(request_err("<fault> lacks faultCode or faultString"));
    std::string code_text;
    if (auto* i = code->as_int()) code_text = std::to_string(*i);
    else if (auto* s = code->as_string()) code_text = *s;
    else return fail(request_err("faultCode is not an integer"));
    auto* msg = text->as_string();
    if (!msg) return fail(request_err("faultString is not a string"));
    out.success = false;
    out.error_description = {std::string(fault_tag), std::move(code_text), *msg};
    return out;
  }
  if (!named(kind_el, "params"))
    return fail(request_err(std::string("<methodResponse> holds <") + kind_el.name() +
                            ">, expected <params> or <fault>"));
  pugi::xml_node param, v;
  if (!w.single_element(kind_el, "param", param)) return fail(request_err(w.error()));
  if (!w.single_element(param, "value", v)) return fail(request_err(w.error()));
  value top;
  if (!w.parse_value(v, top, 0)) return fail(request_err(w.error()));

  auto* st = top.as_struct();
  const value* status = st ? top.find("Status") : nullptr;
  const std::string* status_text = status ? status->as_string() : nullptr;
  if (!status_text) {
    // No Status struct: a bare answer, as system.listMethods gives.
    out.bare = true;
    out.result = std::move(top);
    return out;
  }
  if (*status_text == "Success") {
    for (auto& [k, e] : *st)
      if (k == "Value") {
        out.result = std::move(e);
        return out;
      }
    return fail(request_err("Success response without Value"));
  }
  if (*status_text == "Failure") {
    const value* ed = top.find("ErrorDescription");
    const array* items = ed ? ed->as_array() : nullptr;
    if (!items) return fail(request_err("Failure response without an ErrorDescription array"));
    out.success = false;
    out.error_description.reserve(items->size());
    for (auto& e : *items) {
      if (auto* s = e.as_string()) out.error_description.push_back(*s);
      else if (auto* i = e.as_int()) out.error_description.push_back(std::to_string(*i));
      else return fail(request_err("ErrorDescription holds a non-string"));
    }
    return out;
  }
  return fail(request_err("Status is '" + status_text->substr(0, 40) +
                          "', expected Success or Failure"));
}

}  // namespace xapid::wire::xmlrpc
