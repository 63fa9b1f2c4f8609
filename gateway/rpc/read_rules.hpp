// The RBAC read rules, one set for every read path: getters, get_record, get_all_records,
// get_by_uuid and event snapshots.
// - A class is read only by roles that may call its get_all_records (secret: pool-operator and
//   above); dispatch refuses its RPCs to others, and event.from never sends its objects to them.
// - Sessions and secrets have no events at all, as in xapi (gen_events false): a session's ref is
//   its bearer credential, so no answer lists another session. get_by_uuid finds a session only
//   for the session itself.
// - A task's `session` (internal in xapi) is shown only to the user who made the task; anyone
//   else sees OpaqueRef:NULL there.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "gateway/rpc/dispatch.hpp"
#include "storage/row_values.hpp"
#include "storage/state.hpp"

namespace xapid::gateway::read_rules {

// Whether objects of `cls` have events.
bool has_events(std::size_t cls);
// Whether `who` may read objects of `cls` in lists (get_all_records, events).
bool may_read(const caller& who, std::size_t cls);
// Whether get_by_uuid may answer `ref` of `cls` to the caller.
bool may_find(const call_context& ctx, std::size_t cls, const std::string& ref);
// The record of `cls` as `who` sees it: `record` itself, or a copy with what it may not see
// cleared.
std::shared_ptr<const void> view(const caller& who, const storage::state& snap, std::size_t cls,
                                 const std::shared_ptr<const void>& record);
// Which of the views of `cls` that `view` makes `who` gets: readers with the same text get the
// same records (event answers are shared between them); "" where every reader sees the same.
std::string view_of(const caller& who, std::size_t cls);
// The same for a whole table (get_all_records); empty when the class has nothing to clear.
storage::row_view table_view(const caller& who, std::shared_ptr<const storage::state> snap, std::size_t cls);

}  // namespace xapid::gateway::read_rules
