#include "common/keyed_hash.hpp"

#include <bit>
#include <cstring>

#include "common/ids.hpp"

namespace xapid {
namespace {

struct sip_state {
  std::uint64_t v0, v1, v2, v3;
  void round() noexcept {
    v0 += v1;
    v1 = std::rotl(v1, 13);
    v1 ^= v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = std::rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = std::rotl(v1, 17);
    v1 ^= v2;
    v2 = std::rotl(v2, 32);
  }
};

std::uint64_t load_le(const unsigned char* p, std::size_t n) noexcept {
  std::uint64_t w = 0;
  for (std::size_t i = 0; i < n; ++i) w |= std::uint64_t{p[i]} << (8 * i);
  return w;
}

struct process_key {
  std::uint64_t k0, k1;
  process_key() noexcept {
    std::uint64_t k[2];
    random_bytes(k, sizeof k);
    k0 = k[0];
    k1 = k[1];
  }
};

}  // namespace

template <int c, int d>
std::uint64_t siphash(std::uint64_t k0, std::uint64_t k1, std::string_view s) noexcept {
  sip_state st{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
               k1 ^ 0x7465646279746573ULL};
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t m = load_le(p + i, 8);
    st.v3 ^= m;
    for (int r = 0; r < c; ++r) st.round();
    st.v0 ^= m;
  }
  const std::uint64_t last = (std::uint64_t{n & 0xff} << 56) | load_le(p + i, n - i);
  st.v3 ^= last;
  for (int r = 0; r < c; ++r) st.round();
  st.v0 ^= last;
  st.v2 ^= 0xff;
  for (int r = 0; r < d; ++r) st.round();
  return st.v0 ^ st.v1 ^ st.v2 ^ st.v3;
}

template std::uint64_t siphash<1, 3>(std::uint64_t, std::uint64_t, std::string_view) noexcept;
template std::uint64_t siphash<2, 4>(std::uint64_t, std::uint64_t, std::string_view) noexcept;

std::uint64_t keyed_hash(std::string_view s) noexcept {
  static const process_key key;
  return siphash<1, 3>(key.k0, key.k1, s);
}

}  // namespace xapid
