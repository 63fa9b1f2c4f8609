#include "pool/pool_log.hpp"

#include <charconv>

namespace xapid::pool {

result<std::string, std::string> raft_address(const std::string& listen, const std::string& raft_listen) {
  auto split = [](const std::string& option, const std::string& value) -> result<std::pair<std::string, unsigned>, std::string> {
    auto colon = value.rfind(':');
    unsigned port = 0;
    if (colon == std::string::npos || colon == 0) return fail("--" + option + " needs ADDR:PORT: " + value);
    auto [end, ec] = std::from_chars(value.data() + colon + 1, value.data() + value.size(), port);
    if (ec != std::errc() || end != value.data() + value.size() || port > 65535)
      return fail("--" + option + " needs ADDR:PORT: " + value);
    return std::pair{value.substr(0, colon), port};
  };
  if (!raft_listen.empty()) {
    auto given = split("raft-listen", raft_listen);
    if (!given) return fail(given.error());
    return raft_listen;
  }
  auto base = split("listen", listen);
  if (!base) return fail(base.error());
  if (base->second != 0 && base->second + 2 > 65535)
    return fail("--listen's port + 2 is past 65535: give --raft-listen ADDR:PORT");
  return base->first + ":" + std::to_string(base->second == 0 ? 0 : base->second + 2);
}

result<std::shared_ptr<storage::raft_sequencer>, std::string> make_pool_log(const std::string& data_dir,
                                                                            const std::string& address,
                                                                            const member_identity& identity) {
  storage::raft_options o;
  o.self = {identity.raft_id, address};
  o.dir = data_dir + "/raft";
  // A founder writes its pool's first configuration into an empty log; a member that joined
  // waits, with an empty log, for its master to send one (its own would split the pool).
  if (identity.founder) o.bootstrap = {o.self};
  return std::make_shared<storage::raft_sequencer>(std::move(o));
}

}  // namespace xapid::pool
