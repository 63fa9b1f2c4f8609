// xe's side of the public API: JSON-RPC (or XML-RPC) calls over one kept connection, in a session logged in
// at the start (root on the local socket, the user's credentials elsewhere). A login a pool
// member refuses with HOST_IS_SLAVE is made again at the master it names.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/transport.hpp"
#include "common/result.hpp"
#include "proto/wire/value.hpp"

namespace xapid::cli {

// Why a command failed: the server's ErrorDescription (its code, then its parameters), or a
// message of xe's own; `usage` when the command line was wrong (the usage is printed too).
struct xe_error {
  std::vector<std::string> server;
  std::string message;
  bool usage = false;
};
template <class T>
using xe_result = result<T, xe_error>;

inline failure<xe_error> local_error(std::string message) { return fail(xe_error{{}, std::move(message), false}); }
inline failure<xe_error> usage_error(std::string message) { return fail(xe_error{{}, std::move(message), true}); }

struct credentials {
  std::string username;
  std::string password;
};

// The public API's two encodings: JSON-RPC 2.0 (xe's default, the lighter to read) or XML-RPC
// (what every xapi speaks, old ones included).
enum class encoding { json_rpc, xml_rpc };

class api_client {
 public:
  api_client(endpoint where, credentials who, encoding wire = encoding::json_rpc);
  ~api_client();

  // Logs in; on HOST_IS_SLAVE over TCP, logs in at the master instead (its address; the same port
  // unless it names one, ADDR:PORT), saying so on stderr.
  // `local`: at this host even when it is a member (the emergency commands).
  xe_result<void> login(bool local = false);
  // `method` with the session as its first parameter.
  xe_result<wire::value> call(std::string_view method, wire::array params);
  // `method` as it is, without a session.
  xe_result<wire::value> call_bare(std::string_view method, wire::array params);
  const std::string& session() const { return session_; }
  const endpoint& where() const { return transport_->where(); }
  // For HTTP transfers beside the calls (export, import), to the same host.
  transport& transfers() { return *transport_; }

 private:
  std::unique_ptr<transport> transport_;
  credentials who_;
  encoding wire_;
  std::string session_;
  long next_id_ = 1;
};

}  // namespace xapid::cli
