// Typed references to API objects, the datetime type and the map type of the datamodel.
// A ref<C> is the opaque string a client sees ("OpaqueRef:<uuid>"); the type only stops
// a VM reference from being passed where a host reference is expected.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/container/flat_map.hpp>

namespace xapid::api {

// The datamodel's map(K, V): a sorted vector. Records hold dozens of maps, mostly small or
// empty; this one is 24 bytes with its entries in one allocation, where std::map is 48 bytes
// and a node per entry (a 10,000-VM database is a quarter smaller for it).
template <class K, class V>
using map = boost::container::flat_map<K, V>;

inline constexpr std::string_view null_ref_text = "OpaqueRef:NULL";

template <class C>
struct ref {
  std::string opaque{null_ref_text};

  bool is_null() const noexcept { return opaque == null_ref_text; }
  auto operator<=>(const ref&) const = default;
};

// Seconds since the Unix epoch, UTC; on the wire "YYYYMMDDTHH:MM:SSZ".
struct datetime {
  std::int64_t seconds = 0;
  auto operator<=>(const datetime&) const = default;
};

std::string format_iso8601(datetime t);
// The same text in a buffer of its own, with no allocation (answers write many of these).
struct iso8601_chars {
  char chars[48];  // the widest year an int64 of seconds reaches, and then some
  std::size_t size = 0;
  std::string_view view() const noexcept { return {chars, size}; }
};
iso8601_chars format_iso8601_chars(datetime t) noexcept;
// Accepts "20240131T12:34:56Z", with or without the Z, with or without '-' in the date,
// and with a fraction of a second (dropped). Anything else is nullopt.
std::optional<datetime> parse_iso8601(std::string_view s) noexcept;

}  // namespace xapid::api
