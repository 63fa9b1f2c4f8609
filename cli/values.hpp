// Values as xe prints and reads them: refs as the uuids of their objects (asked of the server
// once each), sets as `a; b`, maps as `k: v; k: v`; records in xe's layout (each name with its
// tag padded to the longest plus four, `: `, the value; a blank line after each record); and
// what a command line's text becomes on the wire for a field's type.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/api_client.hpp"
#include "cli/xe_classes.hpp"

namespace xapid::cli {

inline constexpr std::string_view not_in_database = "<not in database>";

// The uuids of refs, each asked of the server once (<Class>.get_uuid); a null or unknown ref is
// "<not in database>", as xe prints it.
class ref_names {
 public:
  explicit ref_names(api_client& api) : api_(api) {}
  std::string uuid_of(std::string_view class_name, const std::string& ref);

 private:
  api_client& api_;
  std::map<std::string, std::string, std::less<>> uuids_;
};

// A field's value as xe prints it (terminal_safe).
std::string show_value(const api::type_desc& type, const wire::value& v, ref_names& names);

// Text from the server as xe shows it on a terminal: control characters (C0, DEL, C1) and the
// ones that reorder what follows (bidirectional overrides and isolates) written as \xNN or
// \uNNNN. Beyond xapi's xe, which prints them raw: a VM named by a vm-admin with "\r", ESC or
// U+202E could otherwise rewrite or hide the lines root reads. Everything else is unchanged.
std::string terminal_safe(std::string_view text);

// A record's fields as xe prints them: (name with tag, value) in order.
using printed_record = std::vector<std::pair<std::string, std::string>>;
// xe's layout of records, appended to `out`.
void append_records(std::string& out, const std::vector<printed_record>& records);
// --minimal: the first value of each record, commas in them escaped, joined by commas.
void append_minimal(std::string& out, const std::vector<printed_record>& records);

// The wire value of `text` for a field of `type` (an int, a bool, a ref from a uuid, ...).
xe_result<wire::value> parse_value(const api::type_desc& type, std::string_view field_name, std::string_view text,
                                   api_client& api);

// A record's member, or nil.
const wire::value& member_of(const wire::value& record, std::string_view name);
// The text of a string value (a ref, a uuid); empty for any other kind of value.
std::string text_of(const wire::value& v);

}  // namespace xapid::cli
