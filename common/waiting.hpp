// A thread about to wait for something that is not CPU (its commit on the pool's disks) says so
// for the wait's length; the pool of threads that runs it may meanwhile start another call of
// the same client, whose share of running calls counts work, not waits. Without a pool (any
// other thread) it does nothing.
#pragma once

namespace xapid {

class wait_listener {
 public:
  virtual void waiting_begins() = 0;
  virtual void waiting_ends() = 0;

 protected:
  ~wait_listener() = default;
};

// The current thread's listener: set by the pool that runs it, for as long as it runs a job.
wait_listener*& current_wait_listener() noexcept;

// Scopes do not nest (a job waits for one thing at a time): the listener counts one wait.
class waiting_scope {
 public:
  waiting_scope() : listener_(current_wait_listener()) {
    if (listener_) listener_->waiting_begins();
  }
  ~waiting_scope() {
    if (listener_) listener_->waiting_ends();
  }
  waiting_scope(const waiting_scope&) = delete;
  waiting_scope& operator=(const waiting_scope&) = delete;

 private:
  wait_listener* listener_;
};

}  // namespace xapid
