// The message class's RPCs with behaviour of their own: create (the object it names must
// exist: UUID_INVALID), get (one object's since a time), get_since, get_all_records_where (xapi's
// filter expressions over the message's fields). The rest (get_record, get_all, destroy, ...)
// are the implicit RPCs over the `message` table.
#pragma once

#include "actors/messages.hpp"
#include "gateway/rpc/dispatch.hpp"

namespace xapid::gateway {

void register_message_rpcs(dispatcher& d, storage::database& db, actors::message_log& messages);

}  // namespace xapid::gateway
