// JSON-RPC codec (seed 002): versions 1.0 and 2.0, answering as xapi does: 2.0 success has
// `result` and no `error`; 2.0 failure has error {code 1, message = ERROR_CODE, data = params};
// 1.0 has both (error null on success; result null and error = the ErrorDescription array on
// failure). The id is echoed verbatim.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "proto/wire/codec.hpp"

namespace xapid::wire::jsonrpc {

inline constexpr int error_parse = -32700;
inline constexpr int error_invalid_request = -32600;
// Code of a XenAPI failure in a 2.0 error object (non-zero, as clients require).
inline constexpr int error_xenapi = 1;

enum class version { v1_0, v2_0 };

struct request {
  call c;
  version ver = version::v2_0;
  std::string id_json = "null";  // the request's id as JSON text, echoed verbatim
};

// No "jsonrpc" member means 1.0. params must be an array (absent or null: none). id may be a
// number (any size: it is only echoed), a string or null; absent, it is "null". Integers become
// int64 (out of range: refused), numbers with a fraction or exponent doubles; NaN and
// [-]Infinity are accepted, as written for such doubles.
decoded<request> parse_request(std::string_view body, const limits& lim = {});
std::string write_response(const request& req, const response& r);
// The same bytes, given a piece at a time as they are made (see answer_pieces): a large value
// (a whole table) is written as it is sent; anything else is one piece.
std::unique_ptr<answer_pieces> write_response_in_pieces(const request& req, response r);
// For bodies that could not be decoded: error {code, message}, in either version.
std::string write_error(const request& req, int code, std::string_view message);

// Client side: a request to send and the answer to read back. A failure's error_description
// is [message, data...] from an error object, or the error array of a 1.0 answer; parameters
// that are not strings are kept as their JSON text.
std::string write_request(const request& req);
decoded<response> parse_response(std::string_view body, const limits& lim = {});

// Appends one value as JSON.
void append_value(std::string& out, const value& v);

}  // namespace xapid::wire::jsonrpc
