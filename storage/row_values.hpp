// Rows of a snapshot as wire values that write themselves into an answer (wire::deferred):
// get_record, get_all_records and event snapshots send typed records straight to the XML or
// JSON writer, without first building a tree of strings for each field. Each value keeps what
// it reads alive (the record, or the whole snapshot), so it may be written after the call.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "proto/wire/value.hpp"
#include "storage/schema.hpp"
#include "storage/state.hpp"

namespace xapid::storage {

// One record of class `ts`.
wire::value record_value(const table_schema& ts, std::shared_ptr<const void> record);

// What a reader sees of a record: the record itself, or a copy with fields it may not see
// cleared (the gateway's read rules decide).
using row_view = std::function<std::shared_ptr<const void>(const std::shared_ptr<const void>& record)>;

// Every live row of class `cls` in `snap`: a struct from reference to record, as
// <class>.get_all_records answers; each record through `view` when one is given.
wire::value all_records_value(std::shared_ptr<const state> snap, std::size_t cls, row_view view = {});

}  // namespace xapid::storage
