// Sample wire values shared by the XML-RPC and JSON-RPC codec tests and fuzzers: one of every
// kind, nested containers, empties, unicode and characters that need escaping; plus what a value
// reads back as after a trip through each codec, and an equality that sees -0.0 and NaN.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "proto/wire/value.hpp"

namespace xapid::wire::testing {

inline value sample_every_kind() {
  using lim = std::numeric_limits<std::int64_t>;
  return structure{
      {"nil", value()},
      {"true", true},
      {"false", false},
      {"zero", std::int64_t{0}},
      {"int_max", lim::max()},
      {"int_min", lim::min()},
      {"i4", int32_value{-7}},
      {"double", 0.1},
      {"big", 1e300},
      {"tiny", 5e-324},
      {"negative", -2.5},
      {"string", "hello"},
      {"empty", ""},
      {"spaces", "   "},
      {"unicode", "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xB8\xAD"},
      {"escapes", "a<b>&c \"q\" 'a' \\ / \t tab\nnl\r cr ]]> &amp;"},
      {"controls", std::string("\x01\x1f\x7f", 3)},
      {"when", datetime{"20240131T12:34:56Z"}},
      {"empty_array", array{}},
      {"empty_struct", structure{}},
      {"refs", array{"OpaqueRef:1", "OpaqueRef:2", ""}},
      {"nested", array{array{array{}}, structure{{"k", array{std::int64_t{1}, "x"}}}}},
      {"map", structure{{"", "empty key"}, {"a b", "v"}, {"<&>", structure{{"deep", true}}}}},
      {"dup", "first"},
      {"dup", "second"},  // duplicate keys are kept, in order
  };
}

// The sample as a client's call may carry it: calls refuse characters XML cannot carry and keys
// named twice (answers may hold both).
inline value sample_call_params() {
  structure out;
  const value all = sample_every_kind();
  for (const auto& [k, v] : *all.as_struct())
    if (k != "controls" && !(k == "dup" && !out.empty() && out.back().first == "dup")) out.emplace_back(k, v);
  return out;
}

// Equal, with doubles compared bit for bit (so -0.0 != 0.0) except that all NaNs are equal.
inline bool identical(const value& a, const value& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case kind::floating: {
      double x = *a.as_double(), y = *b.as_double();
      if (std::isnan(x) || std::isnan(y)) return std::isnan(x) && std::isnan(y);
      return x == y && std::signbit(x) == std::signbit(y);
    }
    case kind::array: {
      auto &x = *a.as_array(), &y = *b.as_array();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (!identical(x[i], y[i])) return false;
      return true;
    }
    case kind::structure: {
      auto &x = *a.as_struct(), &y = *b.as_struct();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (x[i].first != y[i].first || !identical(x[i].second, y[i].second)) return false;
      return true;
    }
    default: return a == b;
  }
}

// Applies `leaf` to every non-container value of `v`.
template <class F>
value map_leaves(const value& v, F leaf) {
  if (auto* a = v.as_array()) {
    array out;
    for (auto& e : *a) out.push_back(map_leaves(e, leaf));
    return out;
  }
  if (auto* s = v.as_struct()) {
    structure out;
    for (auto& [k, e] : *s) out.emplace_back(k, map_leaves(e, leaf));
    return out;
  }
  return leaf(v);
}

// XML-RPC sends XenAPI ints as decimal strings and reads <i4> back as a 64-bit int.
inline value after_xmlrpc(const value& v) {
  return map_leaves(v, [](const value& x) -> value {
    if (auto* i = x.as_int()) return std::to_string(*i);
    if (auto* i = x.as_int32()) return std::int64_t{i->v};
    return x;
  });
}

// JSON has no datetime (it travels as a string) and one kind of integer.
inline value after_jsonrpc(const value& v) {
  return map_leaves(v, [](const value& x) -> value {
    if (auto* d = x.as_datetime()) return d->iso8601;
    if (auto* i = x.as_int32()) return std::int64_t{i->v};
    return x;
  });
}

}  // namespace xapid::wire::testing
