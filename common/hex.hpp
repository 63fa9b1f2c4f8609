// Bytes as lowercase hexadecimal text and back: the form secrets, ids and digests take in files
// and on the wire.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace xapid {

std::string hex(std::string_view bytes);

// The `bytes` bytes written as 2 * `bytes` hex digits (either case), or nothing for any other text.
std::optional<std::string> unhex(std::string_view text, std::size_t bytes);

}  // namespace xapid
