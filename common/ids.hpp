// Fresh identifiers: uuids, the OpaqueRefs built from them, MACs. A daemon draws every one from
// the kernel's CSPRNG (getrandom), so none can be predicted from others it has shown; a test may
// seed the source instead and replay exactly the identifiers of a failing run. References that
// are secrets (sessions: a session's ref is its bearer credential) come from the CSPRNG always.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace xapid {

class id_source {
 public:
  // seed 0: every identifier from the CSPRNG (what a daemon uses); otherwise a seeded PRNG.
  explicit id_source(std::uint64_t seed = 0);
  std::string uuid();          // RFC 4122 version 4 text
  std::string opaque_ref();    // "OpaqueRef:<uuid>"
  std::string secret_ref();    // "OpaqueRef:<uuid>" from the CSPRNG, whatever the seed
  std::string mac();           // a locally administered unicast MAC for a new VIF, "c2:xx:xx:xx:xx:xx"
  std::uint64_t seed() const noexcept { return seed_; }

 private:
  struct words {
    std::uint64_t hi, lo;
  };
  words seeded_words();
  std::uint64_t seed_;
  std::mutex mu_;
  std::optional<std::mt19937_64> rng_;  // only when seeded
};

// Whether `s` is a uuid: 8-4-4-4-12 hex digits, nothing else. A uuid that names a file or a
// directory must pass this first, so that no client-given text ("../..") reaches a path.
bool is_uuid(std::string_view s) noexcept;

// 128 bits from the kernel's CSPRNG (getrandom(2)); never fails (it retries interrupted calls,
// and a kernel without getrandom is older than any xapid runs on).
void random_bytes(void* out, std::size_t n);

}  // namespace xapid
