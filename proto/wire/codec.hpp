// What the XML-RPC and JSON-RPC codecs share: the decoded call, the bounds every parser
// enforces, and the error a parser reports when input cannot be decoded.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "proto/wire/value.hpp"

namespace xapid::wire {

// Bounds applied while parsing untrusted input. Defaults suit a public API port.
struct limits {
  std::size_t max_body_bytes = 64u << 20;   // whole request or response, default 64 MiB
  // Nesting of arrays/structs inside a parameter or result (the envelope around them does not
  // count), default 64. Values are written and destroyed recursively, so keep it modest
  // (thousands at most).
  std::size_t max_depth = 64;
  std::size_t max_string_bytes = 16u << 20; // one string or member name, default 16 MiB
};

// Why input could not be decoded; becomes an XML-RPC <fault> or a JSON-RPC error object.
struct decode_error {
  int code;             // XML-RPC fault code / JSON-RPC error code
  std::string message;  // human-readable, names what was wrong
};

template <class T>
using decoded = result<T, decode_error>;

// A method call, as sent by a client: "VM.get_record" with positional parameters.
struct call {
  std::string method;
  array params;
};

// A XenAPI answer: success with a value, or failure with ErrorDescription
// (the error code first, then its parameters).
struct response {
  bool success = true;
  value result;                            // void is the empty string
  std::vector<std::string> error_description;
  // The value alone, without the Status struct: how xapi answers the system.* methods in
  // XML-RPC (JSON-RPC has no Status struct to leave out).
  bool bare = false;
};

// An answer written a piece at a time as it is sent (both codecs' write_response_in_pieces): a
// whole table goes out in pieces of about `answer_piece_bytes` while it is being written, so
// what an answer holds in memory is a few pieces, however large the answer. The bytes, put
// together, are exactly write_response's.
class answer_pieces {
 public:
  virtual ~answer_pieces() = default;
  // The next piece, a string of its own (so that pieces may be made ahead of their sending, and
  // kept while they go), made in `reuse`'s memory: a piece given before and done with, or empty.
  // Empty once the answer has all been given.
  virtual std::string next(std::string reuse) = 0;
  // Whether the piece last given was the answer's last (then a small answer is one piece, whose
  // length is the answer's).
  virtual bool finished() const = 0;
};
inline constexpr std::size_t answer_piece_bytes = 256u << 10;

// Valid UTF-8 without overlongs or surrogates; both parsers insist on it.
bool is_valid_utf8(std::string_view s) noexcept;
// Valid UTF-8 holding only characters XML 1.0 can carry: no control characters but tab, line
// feed and carriage return, no U+FFFE or U+FFFF. Both parsers refuse other strings, so that
// nothing is stored that an XML-RPC client could not read back.
bool is_xml_text(std::string_view s) noexcept;
// `s` with every byte sequence that is not valid UTF-8, and every character XML 1.0 cannot
// carry, replaced by U+FFFD: for text from outside any client's call (what a guest reports).
std::string xml_text_of(std::string_view s);

}  // namespace xapid::wire
