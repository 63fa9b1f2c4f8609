// The implicit RPCs of every class, served by one generic implementation over storage: field
// getters, setters of RW fields, add_to/remove_from of RW sets and maps, get_record, get_all,
// get_all_records, get_by_uuid, get_by_name_label, create and destroy. Reads come from a
// snapshot; writes are one transaction each.
#pragma once

#include <set>
#include <string_view>

#include "gateway/rpc/dispatch.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

// Registers them all but those in `except` (RPCs with behaviour of their own, e.g. session
// objects that only login makes), and serves as setters the custom set_<field>(self, value)
// RPCs of read-only fields. Handlers registered later for the same RPC replace these. Returns
// how many were registered.
std::size_t register_implicit_rpcs(dispatcher& d, storage::database& db, const std::set<std::string_view>& except = {});

}  // namespace xapid::gateway
