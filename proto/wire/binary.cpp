#include "proto/wire/binary.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace xapid::wire::binary {
namespace {

// One tag byte per value, then its payload. Lengths and ints are LEB128 varints (ints zigzagged).
enum tag : unsigned char { t_nil, t_false, t_true, t_int, t_int32, t_double, t_string, t_datetime, t_array, t_struct };

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

std::uint64_t zigzag(std::int64_t v) { return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63); }
std::int64_t unzigzag(std::uint64_t v) { return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1); }

void put_bytes(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

}  // namespace

void append(std::string& out, const value& v) {
  switch (v.type()) {
    case kind::deferred: return append(out, built(v));
    case kind::nil: out.push_back(static_cast<char>(t_nil)); break;
    case kind::boolean: out.push_back(static_cast<char>(*v.as_bool() ? t_true : t_false)); break;
    case kind::integer:
      out.push_back(static_cast<char>(t_int));
      put_varint(out, zigzag(*v.as_int()));
      break;
    case kind::int32:
      out.push_back(static_cast<char>(t_int32));
      put_varint(out, zigzag(v.as_int32()->v));
      break;
    case kind::floating: {
      out.push_back(static_cast<char>(t_double));
      std::uint64_t bits;
      double d = *v.as_double();
      std::memcpy(&bits, &d, 8);
      for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));
      break;
    }
    case kind::string:
      out.push_back(static_cast<char>(t_string));
      put_bytes(out, *v.as_string());
      break;
    case kind::datetime:
      out.push_back(static_cast<char>(t_datetime));
      put_bytes(out, v.as_datetime()->iso8601);
      break;
    case kind::array:
      out.push_back(static_cast<char>(t_array));
      put_varint(out, v.as_array()->size());
      for (const auto& item : *v.as_array()) append(out, item);
      break;
    case kind::structure:
      out.push_back(static_cast<char>(t_struct));
      put_varint(out, v.as_struct()->size());
      for (const auto& [k, item] : *v.as_struct()) {
        put_bytes(out, k);
        append(out, item);
      }
      break;
  }
}

void append_array_header(std::string& out, std::size_t count) {
  out.push_back(static_cast<char>(t_array));
  put_varint(out, count);
}

std::string encode(const value& v) {
  std::string out;
  append(out, v);
  return out;
}

bool reader::fail(const char* why) {
  if (error_.empty()) error_ = std::string(why) + " at byte " + std::to_string(pos_);
  return false;
}

bool reader::varint(std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= in_.size()) return fail("truncated varint");
    auto b = static_cast<unsigned char>(in_[pos_++]);
    if (shift == 63 && b > 1) return fail("varint beyond 64 bits");
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return fail("overlong varint");
}

bool reader::bytes(std::string& s) {
  std::uint64_t n;
  if (!varint(n)) return false;
  if (n > in_.size() - pos_) return fail("truncated string");
  if (n > lim_.max_string_bytes) return fail("string over the size limit");
  s.assign(in_.data() + pos_, n);
  pos_ += n;
  return true;
}

bool reader::count(std::uint64_t& n) {
  if (!varint(n)) return false;
  // Every element takes at least one byte, so a count beyond the rest of the input is corrupt.
  if (n > in_.size() - pos_) return fail("element count beyond the input");
  return true;
}

bool reader::tag(unsigned char expected, const char* what) {
  if (pos_ >= in_.size()) return fail("truncated value");
  if (static_cast<unsigned char>(in_[pos_]) != expected) return fail(what);
  ++pos_;
  return true;
}

bool reader::integer(std::int64_t& out) {
  if (pos_ >= in_.size()) return fail("truncated value");
  auto t = static_cast<unsigned char>(in_[pos_]);
  if (t != t_int && t != t_int32) return fail("not an int");
  ++pos_;
  std::uint64_t v;
  if (!varint(v)) return false;
  out = unzigzag(v);
  if (t == t_int32 && (out < INT32_MIN || out > INT32_MAX)) return fail("int32 out of range");
  return true;
}

bool reader::floating(double& out) {
  if (!tag(t_double, "not a double")) return false;
  if (in_.size() - pos_ < 8) return fail("truncated double");
  std::uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits |= static_cast<std::uint64_t>(static_cast<unsigned char>(in_[pos_ + i])) << (8 * i);
  pos_ += 8;
  std::memcpy(&out, &bits, 8);
  return true;
}

bool reader::boolean(bool& out) {
  if (pos_ >= in_.size()) return fail("truncated value");
  auto t = static_cast<unsigned char>(in_[pos_]);
  if (t != t_true && t != t_false) return fail("not a boolean");
  ++pos_;
  out = t == t_true;
  return true;
}

bool reader::string(std::string& out) { return tag(t_string, "not a string") && bytes(out); }
bool reader::datetime_text(std::string& out) { return tag(t_datetime, "not a datetime") && bytes(out); }
bool reader::array(std::uint64_t& n) { return tag(t_array, "not an array") && count(n); }
bool reader::structure(std::uint64_t& n) { return tag(t_struct, "not a struct") && count(n); }
bool reader::name(std::string& out) { return bytes(out); }

bool reader::read(value& out, std::size_t depth) {
  if (depth > lim_.max_depth) return fail("nesting deeper than the limit");
  if (pos_ >= in_.size()) return fail("truncated value");
  auto t = static_cast<unsigned char>(in_[pos_++]);
  switch (t) {
    case t_nil: out = value(); return true;
    case t_false: out = value(false); return true;
    case t_true: out = value(true); return true;
    case t_int: {
      std::uint64_t v;
      if (!varint(v)) return false;
      out = value(unzigzag(v));
      return true;
    }
    case t_int32: {
      std::uint64_t v;
      if (!varint(v)) return false;
      std::int64_t i = unzigzag(v);
      if (i < INT32_MIN || i > INT32_MAX) return fail("int32 out of range");
      out = value(int32_value{static_cast<std::int32_t>(i)});
      return true;
    }
    case t_double: {
      --pos_;
      double d;
      if (!floating(d)) return false;
      out = value(d);
      return true;
    }
    case t_string:
    case t_datetime: {
      std::string s;
      if (!bytes(s)) return false;
      out = t == t_string ? value(std::move(s)) : value(datetime{std::move(s)});
      return true;
    }
    case t_array: {
      std::uint64_t n;
      if (!count(n)) return false;
      // Grown as elements prove to be there: a corrupt count must not allocate first.
      wire::array a;
      a.reserve(std::min<std::uint64_t>(n, 1024));
      for (std::uint64_t i = 0; i < n; ++i)
        if (!read(a.emplace_back(), depth + 1)) return false;
      out = value(std::move(a));
      return true;
    }
    case t_struct: {
      std::uint64_t n;
      if (!count(n)) return false;
      wire::structure s;
      s.reserve(std::min<std::uint64_t>(n, 1024));
      for (std::uint64_t i = 0; i < n; ++i) {
        auto& [k, item] = s.emplace_back();
        if (!bytes(k) || !read(item, depth + 1)) return false;
      }
      out = value(std::move(s));
      return true;
    }
    default: return fail("unknown value tag");
  }
}

decoded<value> decode(std::string_view bytes, const limits& lim) {
  if (bytes.size() > lim.max_body_bytes) return fail(decode_error{-32700, "binary value over the size limit"});
  reader r(bytes, lim);
  value v;
  if (!r.read(v, 0)) return fail(decode_error{-32700, r.error()});
  if (!r.at_end()) return fail(decode_error{-32700, "trailing bytes after the value"});
  return v;
}

}  // namespace xapid::wire::binary
