// Typed reading of the binary value form (proto/wire/binary.hpp) straight into datamodel values,
// for the values storage wrote with to_value: a row is decoded at start-up without building a
// tree of wire values first. Each read fails (false, the reader's error naming the place) on a
// value of another shape; it never crashes on corrupt bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "proto/api/convert.hpp"
#include "proto/wire/binary.hpp"

namespace xapid::api {

// Room reserved for a count read from the input: a corrupt count (up to one per remaining
// byte) must not become a huge allocation before the elements prove to be there.
inline std::size_t bounded_reserve(std::uint64_t n) { return static_cast<std::size_t>(std::min<std::uint64_t>(n, 1024)); }

inline bool from_binary(wire::binary::reader& in, std::string& out) { return in.string(out); }
inline bool from_binary(wire::binary::reader& in, std::int64_t& out) { return in.integer(out); }
inline bool from_binary(wire::binary::reader& in, double& out) { return in.floating(out); }
inline bool from_binary(wire::binary::reader& in, bool& out) { return in.boolean(out); }
inline bool from_binary(wire::binary::reader& in, datetime& out) {
  std::string text;
  if (!in.datetime_text(text)) return false;
  auto t = parse_iso8601(text);
  if (!t) return in.fail("not an ISO 8601 datetime");
  out = *t;
  return true;
}
template <class C>
bool from_binary(wire::binary::reader& in, ref<C>& out) {
  return in.string(out.opaque);
}
template <class E>
  requires std::is_enum_v<E>
bool from_binary(wire::binary::reader& in, E& out) {
  std::string text;
  if (!in.string(text)) return false;
  return from_string(text, out) || in.fail("not a value of its enum");
}

template <class T>
bool from_binary(wire::binary::reader& in, std::vector<T>& out) {
  std::uint64_t n;
  if (!in.array(n)) return false;
  out.clear();
  out.reserve(bounded_reserve(n));
  for (std::uint64_t i = 0; i < n; ++i)
    if (!from_binary(in, out.emplace_back())) return false;
  return true;
}

template <class C>
bool from_binary(wire::binary::reader& in, ref_set<C>& out) {
  std::uint64_t n;
  if (!in.array(n)) return false;
  ref_set<C> refs;
  for (std::uint64_t i = 0; i < n; ++i) {
    ref<C> r;
    if (!from_binary(in, r)) return false;
    refs.insert(r);
  }
  out = std::move(refs);
  return true;
}

template <class K, class V>
bool from_binary(wire::binary::reader& in, api::map<K, V>& out) {
  std::uint64_t n;
  if (!in.structure(n)) return false;
  typename api::map<K, V>::sequence_type items;
  items.reserve(bounded_reserve(n));
  std::string name;
  for (std::uint64_t i = 0; i < n; ++i) {
    K key{};
    V val{};
    if (!in.name(name)) return false;
    if (!key_from_string(name, key)) return in.fail("a map key of the wrong kind");
    if (!from_binary(in, val)) return false;
    items.emplace_back(std::move(key), std::move(val));
  }
  adopt_members(std::move(items), out);
  return true;
}

// Any other value (a record held in a field): read as a tree, then converted.
template <class T>
bool from_binary(wire::binary::reader& in, T& out) {
  wire::value v;
  if (!in.read(v)) return false;
  if (!from_value(v, out)) return in.fail("a value of the wrong shape");
  return true;
}

}  // namespace xapid::api
