// Fresh identifiers (uuids and the OpaqueRefs built from them) from one seeded PRNG per host,
// so a test can replay exactly the identifiers of a failing run.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>
#include <string>

namespace xapid {

class id_source {
 public:
  // seed 0 draws a seed from std::random_device.
  explicit id_source(std::uint64_t seed = 0);
  std::string uuid();          // RFC 4122 version 4 text
  std::string opaque_ref();    // "OpaqueRef:<uuid>"
  std::string mac();           // a locally administered unicast MAC for a new VIF, "c2:xx:xx:xx:xx:xx"
  std::uint64_t seed() const noexcept { return seed_; }

 private:
  std::uint64_t seed_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

}  // namespace xapid
