// The daemon's log: every line names the host its thread works for (common/log_host.hpp) and
// goes to standard error and to that host's own file, DIR/xapid.log (rotated), so several
// hosts in one process (tests, the simulator) keep their logs apart.
#pragma once

#include <memory>
#include <string>

#include "common/result.hpp"

namespace xapid::gateway {

// Makes the process's default logger the routing one; `console`: lines go to standard error too.
void install_logging(bool console = true);

// While it lives, lines of the threads working for `host` also go to DIR/xapid.log. Two hosts
// of one process cannot log under one name.
class host_log {
 public:
  static result<std::unique_ptr<host_log>, std::string> open(std::string host, const std::string& data_dir);
  ~host_log();
  host_log(const host_log&) = delete;
  host_log& operator=(const host_log&) = delete;

 private:
  explicit host_log(std::string host) : host_(std::move(host)) {}
  std::string host_;
};

}  // namespace xapid::gateway
