#include "common/ids.hpp"

#include <algorithm>

#include <cstdio>

namespace xapid {

id_source::id_source(std::uint64_t seed)
    : seed_(seed ? seed : (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()),
      rng_(seed_) {}

std::string id_source::uuid() {
  std::uint64_t hi, lo;
  {
    std::lock_guard lock(mu_);
    hi = rng_();
    lo = rng_();
  }
  hi = (hi & ~0xf000ull) | 0x4000ull;                          // version 4
  lo = (lo & ~(0xc000ull << 48)) | (0x8000ull << 48);          // variant 10
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffull));
  return buf;
}

std::string id_source::opaque_ref() { return "OpaqueRef:" + uuid(); }

}  // namespace xapid

namespace xapid {

std::string id_source::mac() {
  std::string u = uuid();  // hex digits to draw from (without the dashes)
  u.erase(std::remove(u.begin(), u.end(), '-'), u.end());
  std::string out = "c2";  // locally administered, unicast
  for (int i = 0; i < 5; ++i) out += ":" + u.substr(static_cast<std::size_t>(i) * 2, 2);
  return out;
}

}  // namespace xapid
