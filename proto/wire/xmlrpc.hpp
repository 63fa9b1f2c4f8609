// XML-RPC codec (seed 001 sections 1.3 and 2.50): calls and XenAPI's Status/Value/ErrorDescription
// responses. Output has no whitespace between elements; ints go out as decimal strings (int32_value
// as <i4>), and are accepted as <string>, <i4>, <int> or <i8>.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "proto/wire/codec.hpp"

namespace xapid::wire::xmlrpc {

// Fault codes used for input that is not a well-formed XML-RPC call.
inline constexpr int fault_parse_error = -32700;
inline constexpr int fault_invalid_request = -32600;

// The body must be UTF-8 (whatever its XML declaration says) and may not hold a DOCTYPE: XenAPI
// has no use for one, and refusing it rules out entity expansion tricks. <base64> is decoded
// into a string, which must itself be UTF-8.
decoded<call> parse_call(std::string_view body, const limits& lim = {});
// Reads a Status/Value or Status/ErrorDescription struct; a <fault> becomes a failure with
// error_description {"XMLRPC_FAULT", faultCode as decimal, faultString}.
decoded<response> parse_response(std::string_view body, const limits& lim = {});

std::string write_call(const call& c);
// Always the Status struct, failures included; never a <fault>.
std::string write_response(const response& r);
// The same bytes, given a piece at a time as they are made (see answer_pieces): a large value
// (a whole table) is written as it is sent; anything else is one piece.
std::unique_ptr<answer_pieces> write_response_in_pieces(response r);
// Only for bodies that could not be decoded as a call.
std::string write_fault(int code, std::string_view message);

// Appends one <value>…</value> element.
void append_value(std::string& out, const value& v);

}  // namespace xapid::wire::xmlrpc
