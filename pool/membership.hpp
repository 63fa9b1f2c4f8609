// Who is in the pool, as its database says: each member's host row carries, in reserved
// other_config entries, its Raft id and address, the address of its peer service and its
// certificate's fingerprint. They replicate with the rest of the database; no API call may
// change them (object_rules refuses it), only the pool's own join, eject and start-up.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "storage/database.hpp"

namespace xapid::pool {

inline constexpr std::string_view reserved_prefix = "xapid-pool-";

struct member_record {
  std::string host_ref;
  std::string host_uuid;
  std::uint64_t raft_id = 0;
  std::string raft_address;
  std::string peer_address;
  std::string fingerprint;  // SHA-256 of its certificate, hex
};

// The entries a member's host row carries for `m` (host_ref and host_uuid are the row's own).
std::map<std::string, std::string> reserved_entries(const member_record& m);

// The hosts that carry a record (a host that never started with this build carries none).
std::vector<member_record> members(const storage::state& s);
std::optional<member_record> member_by_raft_id(const storage::state& s, std::uint64_t id);
std::optional<member_record> member_of_host(const storage::state& s, const std::string& host_ref);
std::optional<member_record> member_by_fingerprint(const storage::state& s, const std::string& fingerprint);

// Whether `after` (a whole other_config as given to a setter) holds exactly the reserved entries
// of `before`: an API call, or a member's write to another host's row, must leave them alone.
bool keeps_reserved(const api::map<std::string, std::string>& before, const wire::structure& after);

// Whether a member's own transaction (forwarded to the master: pool Propose) stays within what a
// member may write of the pool's membership: of the reserved entries, only its own row's
// addresses (never a Raft id or a pinned certificate, its own included: another member's id taken
// would let it send writes under that member's idempotency keys and so suppress them); no host
// row made, none destroyed while it carries a place, no other host's address, no pool.master, no
// host_metrics.live, no private value (root's password is changed by the master). `sender` is the
// member's Raft id, known by its certificate (0: not known, no reserved entry at all). Checked on
// the master before the transaction is ordered; an honest member never sends one that fails
// (object_rules keeps API calls away from them; the master writes the rest).
api::status vet_member_change(const storage::state& s, std::uint64_t sender, std::span<const storage::op> ops);

// Writes `m`'s entries into its host row when they differ (at start-up: an address may have
// changed with the daemon's options).
api::status publish_own_record(storage::database& db, const member_record& m);

}  // namespace xapid::pool
