#include "common/waiting.hpp"

namespace xapid {

wait_listener*& current_wait_listener() noexcept {
  thread_local wait_listener* listener = nullptr;
  return listener;
}

}  // namespace xapid
