// The bytes of the pool log (raft_sequencer): its entries, the proposals in them (also what a
// member forwards to the master) and its snapshots. Every member reads what the master wrote.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "storage/sequencer.hpp"

namespace xapid::storage {

// An entry is its payload's length (8 bytes, big-endian), the payload, zeros up to a multiple of
// 8 bytes (0.15's segments need it: uv_segment.c; an odd length corrupts the next batch on
// disk). The payload is the binary form of [1, proposer's id, nonce, [proposal...]]; the
// proposer's id and the nonce tell the proposer whether the entry at an index is the one it
// appended there.
std::size_t padded(std::size_t n);

// One proposal: [kind, collect_up_to, encode(log_entry{fixed_gen, time_ms, ops})], and its key
// when it has one. Its ops are moved out.
std::string encode_proposal(proposal& p);
// A proposal a member forwarded (at most `max_bytes`); only transactions and collections.
result<std::shared_ptr<proposal>, std::string> decode_forwarded_proposal(std::string_view bytes, std::size_t max_bytes);

// What comes before an entry's proposals (their encodings follow, concatenated).
std::string entry_head(std::uint64_t proposer, std::uint64_t nonce, std::size_t proposals);
// Writes the whole entry (length prefix, head, proposals) into `out`, `entry_bytes(...)` long.
std::size_t entry_bytes(std::size_t head_bytes, std::size_t proposal_bytes);  // unpadded
void write_entry(char* out, std::string_view head, const std::vector<std::string>& proposals, std::size_t proposal_bytes);

struct decoded_entry {
  std::uint64_t proposer = 0;
  std::uint64_t nonce = 0;
  std::vector<std::shared_ptr<proposal>> proposals;
};
result<decoded_entry, std::string> decode_entry(std::string_view bytes);

// A snapshot: "xapid-s1", the last Raft index applied, the checkpoint's length (8 bytes each,
// big-endian), the checkpoint, zeros up to a multiple of 8 bytes.
std::size_t snapshot_bytes(std::size_t checkpoint_bytes);  // unpadded
void write_snapshot(char* out, std::uint64_t index, std::string_view checkpoint);
struct snapshot_view {
  std::uint64_t index = 0;
  std::string_view checkpoint;
};
std::optional<snapshot_view> read_snapshot(std::string_view bytes);

}  // namespace xapid::storage
