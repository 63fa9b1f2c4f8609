// Text from a client or an administrator as a log line may carry it: printable ASCII only (any
// other byte '?', so no forged line and no terminal escape), at most `max` bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace xapid {

inline std::string loggable(std::string_view s, std::size_t max = 64) {
  std::string out;
  for (unsigned char c : s.substr(0, max)) out.push_back(c < 0x20 || c >= 0x7f ? '?' : static_cast<char>(c));
  return out;
}

}  // namespace xapid
