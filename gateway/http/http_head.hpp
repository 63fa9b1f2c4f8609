// The head of an HTTP/1.x message on the wire: the status line and headers of an answer, written
// by hand (Beast's serializer cost about 5% of a small call's samples), and the check that a
// request's header uses no obsolete line folding.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace xapid::gateway {

// The status line and headers of an answer. Without a length, the body is chunked or (not
// chunked) ends with the connection.
std::string response_head(unsigned status, std::string_view content_type, std::optional<std::size_t> length,
                          unsigned version, bool keep_alive, bool chunked = false);

// Refuses obsolete line folding (a header line that starts with a space or a tab continues the
// one before): RFC 9112 lets a server refuse it, and two parsers that unfold it differently
// would read two different requests.
// `header` is the next part of a header; `ended_line` says whether the part before ended a line,
// and is updated.
bool plain_header(std::string_view header, bool& ended_line);

}  // namespace xapid::gateway
