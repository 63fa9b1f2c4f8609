// Eight bytes at a time (private to proto/wire): whether a word of text holds a byte the writers
// must escape, so that plain text is passed over a word at a time. Each test is exact as a yes/no
// (the classic "has a zero byte" and "has a byte less than n" tricks), never a false no.
#pragma once

#include <cstdint>
#include <cstring>

namespace xapid::wire::detail {

inline constexpr std::uint64_t byte_ones = 0x0101010101010101ULL, byte_highs = 0x8080808080808080ULL;

constexpr bool has_zero_byte(std::uint64_t w) { return ((w - byte_ones) & ~w & byte_highs) != 0; }
// Some byte of `w` is below `n` (n at most 128).
constexpr bool has_byte_below(std::uint64_t w, unsigned char n) { return ((w - byte_ones * n) & ~w & byte_highs) != 0; }
constexpr bool has_byte(std::uint64_t w, unsigned char c) { return has_zero_byte(w ^ (byte_ones * c)); }

inline std::uint64_t load_word(const char* p) {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

}  // namespace xapid::wire::detail
