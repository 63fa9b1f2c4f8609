#include "common/log_host.hpp"

namespace xapid {
namespace {

thread_local std::shared_ptr<const std::string> this_thread_host;

}  // namespace

const std::string& current_log_host() noexcept {
  static const std::string none;
  return this_thread_host ? *this_thread_host : none;
}

std::shared_ptr<const std::string> current_log_host_ptr() noexcept { return this_thread_host; }

scoped_log_host::scoped_log_host(std::shared_ptr<const std::string> host) : previous_(std::move(this_thread_host)) {
  this_thread_host = std::move(host);
}

scoped_log_host::~scoped_log_host() { this_thread_host = std::move(previous_); }

}  // namespace xapid
