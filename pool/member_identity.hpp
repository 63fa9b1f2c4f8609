// What a host needs of its pool before its database opens: its own Raft id, the pool's id and
// secret (Raft's handshake proves both), and whether it founded its pool (its first boot made a
// pool of one: it may write the first configuration of an empty log) or joined one (its log
// comes from the pool's master: it never bootstraps, even with an empty log). Kept in
// DIR/pool-member (0600), made on first boot, replaced at join and eject.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace xapid::pool {

struct member_identity {
  std::uint64_t raft_id = 0;  // non-zero; a new one at every join, never reused
  std::string pool_id;        // 16 bytes
  std::string secret;         // 32 bytes from the CSPRNG, made with the pool
  bool founder = true;
  // Raft ids whose connections a member that joined admits before its log names them (the
  // pool's members when it joined).
  std::vector<std::uint64_t> admitted;
  // The entry of the pool's log that took this member in (0 for a founder): its replica must
  // have applied it before the host reads its own rows.
  std::uint64_t joined_at_index = 0;

  // A new pool of one: fresh id, pool id and secret.
  static member_identity new_pool();
};

// DIR/pool-member: read, or made as a new pool of one when missing. A file that is there but
// not well formed is an error that names it (never silently a new pool: that would split one).
result<member_identity, std::string> load_or_create_identity(const std::string& data_dir);
result<void, std::string> save_identity(const std::string& data_dir, const member_identity& id);

// The text of the file, and back (for tests and for handing the pool's part over at join).
std::string to_text(const member_identity& id);
result<member_identity, std::string> parse_identity(std::string_view text);

}  // namespace xapid::pool
