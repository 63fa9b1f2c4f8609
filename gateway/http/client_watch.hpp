// What a call that waits long may ask of the transport it came on: to be told when its client
// goes away. A connection is one; a call holds it weakly (the connection may end first).
#pragma once

#include <functional>
#include <memory>

namespace xapid::gateway {

class client_watch {
 public:
  // `gone` runs if the client closes the connection before the answer (it may also run after
  // the answer; it must then do nothing).
  virtual void on_client_gone(std::function<void()> gone) = 0;

 protected:
  ~client_watch() = default;
};

// Asks `watch`, if the transport still exists, to call `gone` when the client goes; calls it at
// once when the transport is gone already.
inline void when_client_gone(const std::weak_ptr<client_watch>& watch, std::function<void()> gone) {
  if (auto w = watch.lock()) w->on_client_gone(std::move(gone));
  else gone();
}

}  // namespace xapid::gateway
