#include "storage/raft_entries.hpp"

#include <cstring>

#include "proto/wire/binary.hpp"
#include "storage/keyed_outcomes.hpp"

namespace xapid::storage {
namespace {

constexpr std::int64_t entry_format = 1;
constexpr std::string_view snapshot_magic = "xapid-s1";
constexpr std::size_t snapshot_head = snapshot_magic.size() + 16;

void put_u64(char* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
}
std::uint64_t get_u64(const char* in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

result<std::shared_ptr<proposal>, std::string> decode_proposal(const wire::value& item) {
  const wire::array* a = item.as_array();
  if (!a || (a->size() != 3 && a->size() != 4) || !(*a)[0].as_int() || !(*a)[1].as_int() || !(*a)[2].as_string())
    return fail(std::string("wrong proposal shape"));
  const std::string* key = a->size() == 4 ? (*a)[3].as_string() : nullptr;
  if (a->size() == 4 && (!key || key->empty() || key->size() > keyed_outcomes::max_key_bytes))
    return fail(std::string("a proposal's key must be 1 to 64 bytes"));
  const std::int64_t kind = *(*a)[0].as_int();
  if (kind != static_cast<std::int64_t>(proposal::kind::transaction) &&
      kind != static_cast<std::int64_t>(proposal::kind::entry) && kind != static_cast<std::int64_t>(proposal::kind::collect))
    return fail("a proposal of kind " + std::to_string(kind));
  auto le = decode_log_entry(*(*a)[2].as_string());
  if (!le) return fail(le.error().message);
  auto p = std::make_shared<proposal>();
  p->k = static_cast<proposal::kind>(kind);
  p->collect_up_to = static_cast<generation>(*(*a)[1].as_int());
  p->fixed_gen = le->gen;
  p->time_ms = le->time_ms;
  p->ops = std::move(le->ops);
  if (key) p->key = *key;
  return p;
}

}  // namespace

std::size_t padded(std::size_t n) { return (n + 7) / 8 * 8; }

std::string encode_proposal(proposal& p) {
  std::string out;
  wire::binary::append_array_header(out, p.key.empty() ? 3 : 4);
  wire::binary::append(out, wire::value(static_cast<std::int64_t>(p.k)));
  wire::binary::append(out, wire::value(static_cast<std::int64_t>(p.collect_up_to)));
  wire::binary::append(out, wire::value(encode(log_entry{p.fixed_gen, p.time_ms, std::move(p.ops)})));
  if (!p.key.empty()) wire::binary::append(out, wire::value(p.key));
  return out;
}

result<std::shared_ptr<proposal>, std::string> decode_forwarded_proposal(std::string_view bytes, std::size_t max_bytes) {
  if (bytes.size() > max_bytes) return fail("too large (" + std::to_string(bytes.size()) + " bytes)");
  wire::limits lim;
  lim.max_body_bytes = lim.max_string_bytes = max_bytes;
  auto v = wire::binary::decode(bytes, lim);
  if (!v) return fail(v.error().message);
  auto p = decode_proposal(*v);
  if (p && (*p)->k != proposal::kind::transaction && (*p)->k != proposal::kind::collect)
    return fail(std::string("a member may only propose transactions"));
  return p;
}

std::string entry_head(std::uint64_t proposer, std::uint64_t nonce, std::size_t proposals) {
  std::string head;
  wire::binary::append_array_header(head, 4);
  wire::binary::append(head, wire::value(entry_format));
  wire::binary::append(head, wire::value(static_cast<std::int64_t>(proposer)));
  wire::binary::append(head, wire::value(static_cast<std::int64_t>(nonce)));
  wire::binary::append_array_header(head, proposals);
  return head;
}

std::size_t entry_bytes(std::size_t head_bytes, std::size_t proposal_bytes) { return 8 + head_bytes + proposal_bytes; }

void write_entry(char* out, std::string_view head, const std::vector<std::string>& proposals, std::size_t proposal_bytes) {
  put_u64(out, head.size() + proposal_bytes);
  out += 8;
  std::memcpy(out, head.data(), head.size());
  out += head.size();
  for (const auto& piece : proposals) {
    std::memcpy(out, piece.data(), piece.size());
    out += piece.size();
  }
}

result<decoded_entry, std::string> decode_entry(std::string_view bytes) {
  if (bytes.size() < 8 || get_u64(bytes.data()) > bytes.size() - 8) return fail(std::string("wrong length"));
  bytes = bytes.substr(8, get_u64(bytes.data()));
  // Entries come from the pool's own log, written by its master's encoder: sizes are the log's.
  wire::limits lim;
  lim.max_body_bytes = lim.max_string_bytes = std::size_t{1} << 31;
  auto v = wire::binary::decode(bytes, lim);
  if (!v) return fail(v.error().message);
  const wire::array* top = v->as_array();
  if (!top || top->size() != 4 || !(*top)[0].as_int() || *(*top)[0].as_int() != entry_format || !(*top)[1].as_int() ||
      !(*top)[2].as_int() || !(*top)[3].as_array() || (*top)[3].as_array()->empty())
    return fail(std::string("wrong shape"));
  decoded_entry e;
  e.proposer = static_cast<std::uint64_t>(*(*top)[1].as_int());
  e.nonce = static_cast<std::uint64_t>(*(*top)[2].as_int());
  for (const auto& item : *(*top)[3].as_array()) {
    auto p = decode_proposal(item);
    if (!p) return fail(p.error());
    e.proposals.push_back(std::move(p).value());
  }
  return e;
}

std::size_t snapshot_bytes(std::size_t checkpoint_bytes) { return snapshot_head + checkpoint_bytes; }

void write_snapshot(char* out, std::uint64_t index, std::string_view checkpoint) {
  std::memcpy(out, snapshot_magic.data(), snapshot_magic.size());
  put_u64(out + snapshot_magic.size(), index);
  put_u64(out + snapshot_magic.size() + 8, checkpoint.size());
  std::memcpy(out + snapshot_head, checkpoint.data(), checkpoint.size());
}

std::optional<snapshot_view> read_snapshot(std::string_view bytes) {
  if (bytes.size() < snapshot_head || !bytes.starts_with(snapshot_magic)) return std::nullopt;
  const std::uint64_t length = get_u64(bytes.data() + snapshot_magic.size() + 8);
  if (length > bytes.size() - snapshot_head) return std::nullopt;
  return snapshot_view{get_u64(bytes.data() + snapshot_magic.size()), bytes.substr(snapshot_head, length)};
}

}  // namespace xapid::storage
