// Typed conversion between datamodel values and the wire value model, for the types every
// class shares (strings, ints, refs, sets, maps, ...). The generated api/types.hpp adds the
// overloads for each enum and record; both return XMLRPC_UNMARSHAL_FAILURE(expected, received)
// when the wire value has the wrong shape.
#pragma once

#include <algorithm>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/result.hpp"
#include "proto/api/ref.hpp"
#include "proto/api/ref_set.hpp"
#include "proto/wire/emitter.hpp"
#include "proto/wire/value.hpp"
#include "xapid/api/errors.hpp"

namespace xapid::api {

template <class T>
using api_result = result<T, api_error>;
using status = result<void, api_error>;

// What a wrong-typed wire value was, for error messages: its kind, or a short prefix of it.
std::string describe(const wire::value& v);
api_error unmarshal_failure(std::string_view expected, const wire::value& received);
// The error an ErrorDescription names (code, then its parameters); `otherwise` when it names
// no error of the catalog.
api_error error_from_description(const std::vector<std::string>& description, api_error otherwise);

inline wire::value to_value(const std::string& s) { return wire::value(s); }
inline wire::value to_value(std::int64_t i) { return wire::value(i); }
inline wire::value to_value(double d) { return wire::value(d); }
inline wire::value to_value(bool b) { return wire::value(b); }
inline wire::value to_value(datetime t) { return wire::value(wire::datetime{format_iso8601(t)}); }
template <class C>
wire::value to_value(const ref<C>& r) {
  return wire::value(r.opaque);
}

// The same values written as emitter events (answers are written so, without a tree). Over any
// emitter type: a record is compiled against each codec's writer too (wire::with_writer).
template <wire::an_emitter E>
void emit(const std::string& s, E& e) {
  e.string(s);
}
template <wire::an_emitter E>
void emit(std::int64_t i, E& e) {
  e.integer(i);
}
template <wire::an_emitter E>
void emit(double d, E& e) {
  e.floating(d);
}
template <wire::an_emitter E>
void emit(bool b, E& e) {
  e.boolean(b);
}
template <wire::an_emitter E>
void emit(datetime t, E& e) {
  e.datetime(format_iso8601_chars(t).view());
}
template <class C, wire::an_emitter E>
void emit(const ref<C>& r, E& e) {
  e.string(r.opaque);
}

status from_value(const wire::value& v, std::string& out);
// Ints arrive as XML-RPC decimal strings, <i4>/<int>/<i8>, or JSON numbers.
status from_value(const wire::value& v, std::int64_t& out);
status from_value(const wire::value& v, double& out);
status from_value(const wire::value& v, bool& out);
status from_value(const wire::value& v, datetime& out);
template <class C>
status from_value(const wire::value& v, ref<C>& out) {
  if (auto* s = v.as_string()) {
    out.opaque = *s;
    return ok_v;
  }
  return fail(unmarshal_failure("ref", v));
}

// Map keys travel as strings (section 1.3): ints in decimal, refs and enums as their text.
inline std::string key_string(const std::string& s) { return s; }
inline std::string key_string(std::int64_t i) { return std::to_string(i); }
template <class C>
std::string key_string(const ref<C>& r) {
  return r.opaque;
}
status key_from_string(std::string_view s, std::string& out);
status key_from_string(std::string_view s, std::int64_t& out);
template <class C>
status key_from_string(std::string_view s, ref<C>& out) {
  out.opaque = std::string(s);
  return ok_v;
}

template <class T>
wire::value to_value(const std::vector<T>& items) {
  wire::array a;
  a.reserve(items.size());
  for (const auto& item : items) a.push_back(to_value(item));
  return wire::value(std::move(a));
}

template <class C>
wire::value to_value(const ref_set<C>& refs) {
  wire::array a;
  a.reserve(refs.size());
  refs.refs().for_each([&](const std::string& r, unit) {
    a.emplace_back(r);
    return true;
  });
  return wire::value(std::move(a));
}

template <class K, class V>
wire::value to_value(const api::map<K, V>& m) {
  wire::structure s;
  s.reserve(m.size());
  for (const auto& [k, v] : m) s.emplace_back(key_string(k), to_value(v));
  return wire::value(std::move(s));
}

template <class T, wire::an_emitter E>
void emit(const std::vector<T>& items, E& e) {
  e.begin_array();
  for (const auto& item : items) emit(item, e);
  e.end_array();
}

template <class C, wire::an_emitter E>
void emit(const ref_set<C>& refs, E& e) {
  e.begin_array();
  refs.refs().for_each([&](const std::string& r, unit) {
    e.string(r);
    return true;
  });
  e.end_array();
}

template <class K, class V, wire::an_emitter E>
void emit(const api::map<K, V>& m, E& e) {
  e.begin_struct();
  for (const auto& [k, v] : m) {
    // The key's text as it is where it has one (strings, refs, enums), so no copy is made.
    if constexpr (std::is_same_v<K, std::string>) e.name(k);
    else if constexpr (std::is_enum_v<K>) e.name(to_string(k));
    else if constexpr (requires { k.opaque; }) e.name(k.opaque);
    else e.name(key_string(k));
    emit(v, e);
  }
  e.end_struct();
}

template <class T>
status from_value(const wire::value& v, std::vector<T>& out) {
  const wire::array* a = v.as_array();
  if (!a) return fail(unmarshal_failure("array", v));
  out.clear();
  out.resize(a->size());
  for (std::size_t i = 0; i < a->size(); ++i)
    if (auto st = from_value((*a)[i], out[i]); !st) return st;
  return ok_v;
}

// A derived set read from a record a client sent, or a row of an older database: storage
// replaces it with its own index before it is kept.
template <class C>
status from_value(const wire::value& v, ref_set<C>& out) {
  const wire::array* a = v.as_array();
  if (!a) return fail(unmarshal_failure("array", v));
  ref_set<C> refs;
  for (const auto& item : *a) {
    ref<C> r;
    if (auto st = from_value(item, r); !st) return st;
    refs.insert(r);
  }
  out = std::move(refs);
  return ok_v;
}

// A map from its members in any order, in O(n log n): one insert at a time into the sorted
// vector would move half of it each time (200,000 members took 49 s). Of members with one key,
// the last wins, as insert_or_assign would have it. Members already in order are taken as they are.
template <class K, class V>
void adopt_members(typename api::map<K, V>::sequence_type items, api::map<K, V>& out) {
  const bool sorted = std::adjacent_find(items.begin(), items.end(), [](const auto& a, const auto& b) {
                        return !(a.first < b.first);
                      }) == items.end();
  if (!sorted) {
    std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::size_t kept = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i + 1 < items.size() && !(items[i].first < items[i + 1].first)) continue;
      if (kept != i) items[kept] = std::move(items[i]);
      ++kept;
    }
    items.erase(items.begin() + static_cast<std::ptrdiff_t>(kept), items.end());
  }
  out.adopt_sequence(boost::container::ordered_unique_range, std::move(items));
}

template <class K, class V>
status from_value(const wire::value& v, api::map<K, V>& out) {
  const wire::structure* s = v.as_struct();
  if (!s) return fail(unmarshal_failure("struct", v));
  typename api::map<K, V>::sequence_type items;
  items.reserve(s->size());
  for (const auto& [name, item] : *s) {
    K key{};
    if (auto st = key_from_string(name, key); !st) return st;
    V val{};
    if (auto st = from_value(item, val); !st) return st;
    items.emplace_back(std::move(key), std::move(val));
  }
  adopt_members(std::move(items), out);
  return ok_v;
}

}  // namespace xapid::api
