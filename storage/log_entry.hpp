// A transaction as one deterministic log entry: the operations with every value already chosen
// (refs, uuids, whole records, the time). Applying entry N to a database at generation N-1 gives
// the same database on every host; on a single host entries go to the local synced log, in a
// pool the same bytes go through Raft.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/wire/codec.hpp"

namespace xapid::storage {

using generation = std::uint64_t;

enum class op_kind : std::uint8_t {
  create,
  set,
  add_to_set,
  remove_from_set,
  add_to_map,
  remove_from_map,
  destroy,
  // Preconditions, checked where the entry is applied: the row was last modified at the
  // generation in `value` (expect_unchanged), or its field holds `value` (expect_field). If not,
  // the transaction fails with the error in `key` (the error's strings, code first, each
  // length-prefixed: see encode_error) and changes nothing.
  expect_unchanged,
  expect_field,
  // A value the pool replicates but no API call reads (root's password hash): `ref` names it,
  // `value` (a string) is it. Applied with its transaction, on every member alike.
  set_private,
};

struct op {
  op_kind kind = op_kind::set;
  std::uint32_t cls = 0;    // index in api::all_classes()
  std::string ref;
  std::uint32_t field = 0;  // set, add_to_*, remove_from_*
  std::string key;          // add_to_map, remove_from_map
  wire::value value;        // create: the whole record; set: the value; set ops: the element; add_to_map: the value
  bool operator==(const op&) const = default;
};

struct log_entry {
  generation gen = 0;
  std::int64_t time_ms = 0;
  std::vector<op> ops;
  bool operator==(const log_entry&) const = default;
};

std::string encode(const log_entry& e);
// The error a precondition answers, as it travels in an op's key.
std::string encode_error(const std::vector<std::string>& description);
std::vector<std::string> decode_error(std::string_view bytes);
wire::decoded<log_entry> decode_log_entry(std::string_view bytes);

}  // namespace xapid::storage
