// A 64-bit hash of a string under this process's secret key (SipHash-1-3). Keys of the
// database's maps come from clients (uuids, name labels): with an unkeyed hash a client could
// choose thousands that collide and make every update of one map cost linear time.
#pragma once

#include <cstdint>
#include <string_view>

namespace xapid {

std::uint64_t keyed_hash(std::string_view s) noexcept;

// SipHash with `c` compression and `d` finalisation rounds under the key (k0, k1): 1-3 is what
// keyed_hash uses, 2-4 the paper's, whose test vectors check this code.
template <int c, int d>
std::uint64_t siphash(std::uint64_t k0, std::uint64_t k1, std::string_view s) noexcept;
extern template std::uint64_t siphash<1, 3>(std::uint64_t, std::uint64_t, std::string_view) noexcept;
extern template std::uint64_t siphash<2, 4>(std::uint64_t, std::uint64_t, std::string_view) noexcept;

}  // namespace xapid
