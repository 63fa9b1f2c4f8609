#include "pool/pool_log.hpp"

#include <charconv>

namespace xapid::pool {

namespace {

result<std::pair<std::string, unsigned>, std::string> split_address(const std::string& option, const std::string& value) {
  auto colon = value.rfind(':');
  unsigned port = 0;
  if (colon == std::string::npos || colon == 0) return fail("--" + option + " needs ADDR:PORT: " + value);
  auto [end, ec] = std::from_chars(value.data() + colon + 1, value.data() + value.size(), port);
  if (ec != std::errc() || end != value.data() + value.size() || port > 65535)
    return fail("--" + option + " needs ADDR:PORT: " + value);
  return std::pair{value.substr(0, colon), port};
}

// `given` when set, else `listen`'s address with its port + `offset`.
result<std::string, std::string> address_beside(const std::string& listen, const std::string& given, const std::string& option,
                                                unsigned offset) {
  if (!given.empty()) {
    auto checked = split_address(option, given);
    if (!checked) return fail(checked.error());
    return given;
  }
  auto base = split_address("listen", listen);
  if (!base) return fail(base.error());
  if (base->second != 0 && base->second + offset > 65535)
    return fail("--listen's port + " + std::to_string(offset) + " is past 65535: give --" + option + " ADDR:PORT");
  return base->first + ":" + std::to_string(base->second == 0 ? 0 : base->second + offset);
}

}  // namespace

result<std::string, std::string> raft_address(const std::string& listen, const std::string& raft_listen) {
  return address_beside(listen, raft_listen, "raft-listen", 2);
}

result<std::string, std::string> peer_address(const std::string& listen, const std::string& peer_listen) {
  return address_beside(listen, peer_listen, "peer-listen", 1);
}

result<std::string, std::string> master_peer_address(const std::string& master_address, const std::string& own_listen) {
  if (master_address.empty() || master_address.find_first_of(" /\t\n") != std::string::npos)
    return fail("not an address: " + master_address);
  const bool has_port = master_address.find(':') != std::string::npos;
  std::string api = master_address;
  if (!has_port) {
    auto own = split_address("listen", own_listen);
    if (!own) return fail(own.error());
    if (own->second == 0) return fail("give the master's address with its port (ADDR:PORT): this host's own port is not fixed");
    api += ":" + std::to_string(own->second);
  }
  auto a = split_address("master_address", api);
  if (!a) return fail("not an address: " + master_address);
  if (a->second == 0 || a->second + 1 > 65535) return fail("not an address: " + master_address);
  return a->first + ":" + std::to_string(a->second + 1);
}

result<std::shared_ptr<storage::raft_sequencer>, std::string> make_pool_log(const std::string& data_dir,
                                                                            const std::string& address,
                                                                            const member_identity& identity,
                                                                            storage::forward_fn forward, bool alone) {
  storage::raft_options o;
  o.forward = std::move(forward);
  o.pool_secret = identity.secret;
  o.pool_id = identity.pool_id;
  o.admitted = identity.admitted;
  o.self = {identity.raft_id, address};
  o.dir = data_dir + "/raft";
  // A founder writes its pool's first configuration into an empty log; a member that joined
  // waits, with an empty log, for its master to send one (its own would split the pool).
  if (identity.founder) o.bootstrap = {o.self};
  if (alone) o.recover = {o.self};
  return std::make_shared<storage::raft_sequencer>(std::move(o));
}

}  // namespace xapid::pool
