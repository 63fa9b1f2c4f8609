// A value that many answers carry — one change's event answer, shared by every watcher that
// would get the same: written at most once in each format, its bytes then copied into each
// answer by the writers (deferred::encoded) instead of being written again.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "proto/wire/emitter.hpp"
#include "proto/wire/value.hpp"

namespace xapid::wire {

class encoded_once final : public deferred {
 public:
  explicit encoded_once(wire::value v) : value_(std::move(v)) {}
  void emit(emitter& out) const override { out.value(value_); }
  std::size_t size_hint() const override { return hint_.load(std::memory_order_relaxed); }
  // Thread-safe: the first answer in a format writes the bytes, the others wait for them.
  const std::string* encoded(format f) const override;

 private:
  wire::value value_;
  mutable std::once_flag once_[2];
  mutable std::string bytes_[2];
  mutable std::atomic<std::size_t> hint_{4096};
};

// `v`, to be encoded once however many answers hold it.
inline wire::value encode_once(wire::value v) { return wire::value(std::make_shared<const encoded_once>(std::move(v))); }

}  // namespace xapid::wire
