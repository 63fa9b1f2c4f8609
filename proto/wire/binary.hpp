// A compact, deterministic binary form of wire values: the bytes of database rows and log
// entries. The same value always gives the same bytes, so replicas that apply the same log
// entries hold byte-identical databases.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proto/wire/codec.hpp"

namespace xapid::wire::binary {

void append(std::string& out, const value& v);
// The start of an array of `count` values, for writers that append the elements one by one.
void append_array_header(std::string& out, std::size_t count);
std::string encode(const value& v);
// Decodes exactly one value filling all of `bytes`; corrupt input is a decode_error, never a crash.
decoded<value> decode(std::string_view bytes, const limits& lim = {});

// Reads values one by one, straight into typed places, without building a tree (a row is
// decoded so at start-up). Each read checks the tag and bounds and, on a mismatch, fails with
// `error()` naming the place; corrupt input never crashes.
class reader {
 public:
  explicit reader(std::string_view in, limits lim = {}) : in_(in), lim_(lim) {}

  bool read(value& out, std::size_t depth = 0);  // any value, as a tree
  bool integer(std::int64_t& out);               // an int (either width)
  bool floating(double& out);
  bool boolean(bool& out);
  bool string(std::string& out);
  bool datetime_text(std::string& out);  // a datetime's ISO 8601 text
  bool array(std::uint64_t& count);      // an array's header; its `count` elements follow
  bool structure(std::uint64_t& count);  // a struct's header; `count` (name, value) pairs follow
  bool name(std::string& out);           // a struct member's name
  bool at_end() const noexcept { return pos_ == in_.size(); }
  const std::string& error() const noexcept { return error_; }
  bool fail(const char* why);

 private:
  bool varint(std::uint64_t& v);
  bool bytes(std::string& s);
  bool count(std::uint64_t& n);
  bool tag(unsigned char expected, const char* what);

  std::string_view in_;
  std::size_t pos_ = 0;
  limits lim_;
  std::string error_;
};

}  // namespace xapid::wire::binary
