#include "pool/member_identity.hpp"

#include <charconv>
#include <filesystem>

#include "common/hex.hpp"
#include "common/ids.hpp"
#include "common/private_file.hpp"

namespace xapid::pool {
namespace {

constexpr std::string_view file_name = "pool-member";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

member_identity member_identity::new_pool() {
  member_identity id;
  while (id.raft_id == 0) random_bytes(&id.raft_id, sizeof id.raft_id);
  id.raft_id &= 0x7fffffffffffffffULL;  // carried as a signed 64-bit integer on the wire
  if (id.raft_id == 0) id.raft_id = 1;
  id.pool_id.resize(16);
  random_bytes(id.pool_id.data(), id.pool_id.size());
  id.secret.resize(32);
  random_bytes(id.secret.data(), id.secret.size());
  id.founder = true;
  return id;
}

std::string to_text(const member_identity& id) {
  std::string out = "raft-id = " + std::to_string(id.raft_id) + "\npool-id = " + hex(id.pool_id) + "\nsecret = " + hex(id.secret) +
                    "\nfounder = " + (id.founder ? "true" : "false") + "\n";
  if (!id.admitted.empty()) {
    out += "admitted =";
    for (auto a : id.admitted) out += " " + std::to_string(a);
    out += "\n";
  }
  if (id.joined_at_index != 0) out += "joined-at-index = " + std::to_string(id.joined_at_index) + "\n";
  return out;
}

result<member_identity, std::string> parse_identity(std::string_view text) {
  member_identity id;
  bool seen_id = false, seen_pool = false, seen_secret = false, seen_founder = false;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line.front() == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string_view::npos) return fail("line " + std::to_string(line_no) + ": expected NAME = VALUE");
    std::string_view name = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (name == "raft-id") {
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), id.raft_id);
      if (ec != std::errc() || end != value.data() + value.size() || id.raft_id == 0 || id.raft_id > 0x7fffffffffffffffULL)
        return fail("line " + std::to_string(line_no) + ": raft-id must be a number from 1 to 2^63-1");
      seen_id = true;
    } else if (name == "pool-id" || name == "secret") {
      auto bytes = unhex(value, name == "pool-id" ? 16 : 32);
      if (!bytes) return fail("line " + std::to_string(line_no) + ": " + std::string(name) + " must be " +
                              (name == "pool-id" ? "32" : "64") + " hex digits");
      (name == "pool-id" ? id.pool_id : id.secret) = std::move(*bytes);
      (name == "pool-id" ? seen_pool : seen_secret) = true;
    } else if (name == "admitted") {
      for (std::size_t at = 0; at < value.size();) {
        while (at < value.size() && value[at] == ' ') ++at;
        if (at == value.size()) break;
        std::uint64_t a = 0;
        auto [end, ec] = std::from_chars(value.data() + at, value.data() + value.size(), a);
        if (ec != std::errc() || a == 0 || (end != value.data() + value.size() && *end != ' '))
          return fail("line " + std::to_string(line_no) + ": admitted must be Raft ids separated by spaces");
        id.admitted.push_back(a);
        at = static_cast<std::size_t>(end - value.data());
      }
    } else if (name == "joined-at-index") {
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), id.joined_at_index);
      if (ec != std::errc() || end != value.data() + value.size())
        return fail("line " + std::to_string(line_no) + ": joined-at-index must be a number");
    } else if (name == "founder") {
      if (value != "true" && value != "false") return fail("line " + std::to_string(line_no) + ": founder must be true or false");
      id.founder = value == "true";
      seen_founder = true;
    } else {
      return fail("line " + std::to_string(line_no) + ": unknown name " + std::string(name));
    }
  }
  if (!seen_id || !seen_pool || !seen_secret || !seen_founder)
    return fail(std::string("raft-id, pool-id, secret and founder are all needed"));
  return id;
}

result<member_identity, std::string> load_or_create_identity(const std::string& data_dir) {
  const std::string path = data_dir + "/" + std::string(file_name);
  if (auto text = read_whole_file(path)) {
    auto id = parse_identity(*text);
    if (!id) return fail(path + ": " + id.error());
    return id;
  }
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return fail("cannot read " + path);
  member_identity id = member_identity::new_pool();
  if (auto st = save_identity(data_dir, id); !st) return fail(st.error());
  return id;
}

result<void, std::string> save_identity(const std::string& data_dir, const member_identity& id) {
  const std::string path = data_dir + "/" + std::string(file_name);
  if (!write_private_file(path, to_text(id))) return fail("cannot write " + path);
  return ok_v;
}

}  // namespace xapid::pool
