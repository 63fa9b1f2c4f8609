#include <charconv>
#include <cstdio>
#include <cstring>

#include "proto/api/ref.hpp"

namespace xapid::api {
namespace {

// Days from 1970-01-01 to the given civil date (proleptic Gregorian), and back.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, unsigned& out) noexcept {
  if (pos + n > s.size()) return false;
  unsigned v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  out = v;
  return true;
}

}  // namespace

iso8601_chars format_iso8601_chars(datetime t) noexcept {
  iso8601_chars out;
  std::int64_t days = t.seconds / 86400, rem = t.seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  const auto hh = static_cast<unsigned>(rem / 3600), mm = static_cast<unsigned>(rem / 60 % 60),
             ss = static_cast<unsigned>(rem % 60);
  if (y < 0 || y > 9999) {  // beyond four digits: rare enough for snprintf
    int n = std::snprintf(out.chars, sizeof out.chars, "%04lld%02u%02uT%02u:%02u:%02uZ", static_cast<long long>(y), m,
                          d, hh, mm, ss);
    out.size = static_cast<std::size_t>(n);
    return out;
  }
  // Answers carry many of these: written digit by digit.
  std::memcpy(out.chars, "00000000T00:00:00Z", 18);
  out.size = 18;
  auto put = [&out](std::size_t at, unsigned v, int width) {
    for (int i = width - 1; i >= 0; --i, v /= 10) out.chars[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + v % 10);
  };
  put(0, static_cast<unsigned>(y), 4);
  put(4, m, 2);
  put(6, d, 2);
  put(9, hh, 2);
  put(12, mm, 2);
  put(15, ss, 2);
  return out;
}

std::string format_iso8601(datetime t) { return std::string(format_iso8601_chars(t).view()); }

std::optional<datetime> parse_iso8601(std::string_view s) noexcept {
  unsigned y, mo, d, h, mi, se;
  std::size_t p = 0;
  if (!digits(s, p, 4, y)) return std::nullopt;
  p += 4;
  bool dashed = p < s.size() && s[p] == '-';
  if (dashed) ++p;
  if (!digits(s, p, 2, mo)) return std::nullopt;
  p += 2;
  if (dashed) {
    if (p >= s.size() || s[p] != '-') return std::nullopt;
    ++p;
  }
  if (!digits(s, p, 2, d)) return std::nullopt;
  p += 2;
  if (p >= s.size() || s[p] != 'T') return std::nullopt;
  ++p;
  if (!digits(s, p, 2, h) || p + 2 >= s.size() || s[p + 2] != ':') return std::nullopt;
  p += 3;
  if (!digits(s, p, 2, mi) || p + 2 >= s.size() || s[p + 2] != ':') return std::nullopt;
  p += 3;
  if (!digits(s, p, 2, se)) return std::nullopt;
  p += 2;
  if (p < s.size() && s[p] == '.') {
    ++p;
    std::size_t start = p;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') ++p;
    if (p == start) return std::nullopt;
  }
  if (p < s.size() && s[p] == 'Z') ++p;
  if (p != s.size()) return std::nullopt;
  static constexpr unsigned month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] || h > 23 || mi > 59 || se > 60) return std::nullopt;
  return datetime{days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se};
}

}  // namespace xapid::api
