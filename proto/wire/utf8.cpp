#include <cstdint>
#include <cstring>

#include "proto/wire/codec.hpp"

namespace xapid::wire {

// Checks the well-formed byte sequences of Unicode 15 table 3-7: no overlongs, no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF. Runs of ASCII are skipped eight bytes at a time,
// since bodies are mostly ASCII markup.
bool is_valid_utf8(std::string_view s) noexcept {
  auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    while (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      if (w & 0x8080808080808080ull) break;
      p += 8;
    }
    if (p == end) break;
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    auto cont = [](unsigned b) { return (b & 0xC0u) == 0x80u; };
    if (c < 0xC2) return false;  // stray continuation byte, or overlong 2-byte lead C0/C1
    if (c < 0xE0) {
      if (end - p < 2 || !cont(p[1])) return false;
      p += 2;
    } else if (c < 0xF0) {
      if (end - p < 3) return false;
      unsigned b1 = p[1];
      // E0 needs A0..BF (else overlong); ED needs 80..9F (else a surrogate).
      unsigned lo = c == 0xE0 ? 0xA0u : 0x80u;
      unsigned hi = c == 0xED ? 0x9Fu : 0xBFu;
      if (b1 < lo || b1 > hi || !cont(p[2])) return false;
      p += 3;
    } else if (c < 0xF5) {
      if (end - p < 4) return false;
      unsigned b1 = p[1];
      // F0 needs 90..BF (else overlong); F4 needs 80..8F (else above U+10FFFF).
      unsigned lo = c == 0xF0 ? 0x90u : 0x80u;
      unsigned hi = c == 0xF4 ? 0x8Fu : 0xBFu;
      if (b1 < lo || b1 > hi || !cont(p[2]) || !cont(p[3])) return false;
      p += 4;
    } else {
      return false;
    }
  }
  return true;
}

bool is_xml_text(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  // Runs of printable ASCII (every byte from 0x20 to 0x7F) are skipped eight bytes at a time:
  // a call's strings (refs, names) are mostly that.
  std::size_t i = 0;
  constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  for (; s.size() - i >= 8; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (((w - ones * 0x20) | w) & highs) break;  // a byte below 0x20, or one with its high bit
  }
  if (i == s.size()) return true;
  if (!is_valid_utf8(s.substr(i))) return false;
  for (; i < s.size(); ++i) {
    const unsigned c = p[i];
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
    if (c == 0xEF && i + 2 < s.size() && p[i + 1] == 0xBF && (p[i + 2] == 0xBE || p[i + 2] == 0xBF)) return false;
  }
  return true;
}

std::string xml_text_of(std::string_view s) {
  if (is_xml_text(s)) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    // The longest valid character at i (1 to 4 bytes) that XML can carry, else one replaced byte.
    std::size_t n = 0;
    for (std::size_t len = 1; len <= 4 && i + len <= s.size(); ++len)
      if (is_xml_text(s.substr(i, len))) {
        n = len;
        break;
      }
    if (n) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

}  // namespace xapid::wire
