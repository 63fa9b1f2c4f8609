// Number text shared by the two codecs (private to proto/wire): exact, locale-free parsing and
// shortest round-trip formatting, so that a value survives any number of encode/decode trips.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace xapid::wire::detail {

enum class number_error { none, junk, out_of_range };

// Decimal int64, with an optional leading '+'; the whole text must be the number.
inline number_error parse_int64(std::string_view s, std::int64_t& out) noexcept {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec == std::errc::result_out_of_range) return number_error::out_of_range;
  if (ec != std::errc() || p != s.data() + s.size()) return number_error::junk;
  return number_error::none;
}

// True if the decimal number `s` (already known to be out of range) is too small rather than
// too large: its magnitude, digits before the point plus exponent, is negative.
inline bool is_underflow(std::string_view s) noexcept {
  long magnitude = 0;
  bool seen_nonzero = false, after_point = false;
  std::size_t i = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.') after_point = true;
    else if (c >= '0' && c <= '9') {
      if (c != '0') seen_nonzero = true;
      if (!seen_nonzero && after_point) --magnitude;
      else if (seen_nonzero && !after_point) ++magnitude;
    } else if (c == 'e' || c == 'E') break;
  }
  // The exponent saturates: past a billion either way the answer no longer depends on it, and
  // the magnitude (bounded by the text's length) cannot be large enough to matter.
  long exp = 0;
  if (i < s.size()) {
    bool negative = i + 1 < s.size() && s[i + 1] == '-';
    for (std::size_t j = i + 1; j < s.size(); ++j)
      if (s[j] >= '0' && s[j] <= '9' && exp < 1'000'000'000) exp = exp * 10 + (s[j] - '0');
    if (negative) exp = -exp;
  }
  return magnitude + exp < 0;
}

// A double in any form std::from_chars accepts (including nan/inf), with an optional leading
// '+'; values too small to represent become a signed zero, as strtod makes them.
inline number_error parse_double(std::string_view s, double& out) noexcept {
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (p != s.data() + s.size() || ec == std::errc::invalid_argument) return number_error::junk;
  if (ec == std::errc::result_out_of_range) {
    if (!is_underflow(s)) return number_error::out_of_range;
    out = !s.empty() && s[0] == '-' ? -0.0 : 0.0;
  }
  return number_error::none;
}

template <class N>
void append_number(std::string& out, N n) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, n);  // shortest round-trip for double
  out.append(buf, p);
}

}  // namespace xapid::wire::detail
