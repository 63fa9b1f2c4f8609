// Which host the current thread works for, so that log lines name it when several hosts run in
// one process (tests, the simulator). A host sets it on the threads it starts; a thread that
// starts another for the same host hands it on with `carry_log_host`. Empty: no host.
#pragma once

#include <memory>
#include <string>
#include <utility>

namespace xapid {

const std::string& current_log_host() noexcept;

// Sets the current thread's host for the scope's life.
class scoped_log_host {
 public:
  explicit scoped_log_host(std::shared_ptr<const std::string> host);
  ~scoped_log_host();
  scoped_log_host(const scoped_log_host&) = delete;
  scoped_log_host& operator=(const scoped_log_host&) = delete;

 private:
  std::shared_ptr<const std::string> previous_;
};

std::shared_ptr<const std::string> current_log_host_ptr() noexcept;

// `f`, to run on another thread as the current thread's host.
template <class F>
auto carry_log_host(F f) {
  return [host = current_log_host_ptr(), f = std::move(f)]() mutable {
    scoped_log_host scope(host);
    return f();
  };
}

}  // namespace xapid
