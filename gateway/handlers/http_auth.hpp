// What every HTTP handler outside the API shares (XVA transfers, performance data): the
// request's query parameters, who is asking (session_id, HTTP basic credentials checked by the
// login guard, or a local peer: root), and an error answered as plain text.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/auth/logins.hpp"
#include "gateway/auth/sessions.hpp"
#include "gateway/http/http_server.hpp"
#include "gateway/rpc/caller.hpp"

namespace xapid::gateway {

std::string url_decode(std::string_view s);
// Every parameter in order (a name may come more than once: vm_uuid of /rrd_updates).
std::vector<std::pair<std::string, std::string>> query_pairs(const std::string& target);
// The same by name, the last of a name winning.
std::map<std::string, std::string> query_of(const std::string& target);
// A failure answers after the login guard's delay (on the transfer's own thread).
api::api_result<caller> authorize(session_manager& sessions, login_guard& logins, http_stream& io,
                                  const std::map<std::string, std::string>& q);
void answer_error(http_stream& io, unsigned status, const api::api_error& e);

}  // namespace xapid::gateway
