#include "common/ids.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace xapid {
namespace {

std::string format_uuid(std::uint64_t hi, std::uint64_t lo) {
  hi = (hi & ~0xf000ull) | 0x4000ull;                  // version 4
  lo = (lo & ~(0xc000ull << 48)) | (0x8000ull << 48);  // variant 10
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffull));
  return buf;
}

std::string csprng_uuid() {
  std::uint64_t w[2];
  random_bytes(w, sizeof w);
  return format_uuid(w[0], w[1]);
}

}  // namespace

bool is_uuid(std::string_view s) noexcept {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

void random_bytes(void* out, std::size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    ssize_t got = ::getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      std::abort();  // no source of secrets: better stop than hand out guessable ones
    }
    p += got;
    n -= static_cast<std::size_t>(got);
  }
}

id_source::id_source(std::uint64_t seed) : seed_(seed) {
  if (seed_) rng_.emplace(seed_);
}

id_source::words id_source::seeded_words() {
  std::lock_guard lock(mu_);
  const std::uint64_t hi = (*rng_)();
  return {hi, (*rng_)()};
}

std::string id_source::uuid() {
  if (!rng_) return csprng_uuid();
  auto w = seeded_words();
  return format_uuid(w.hi, w.lo);
}

std::string id_source::opaque_ref() { return "OpaqueRef:" + uuid(); }

std::string id_source::secret_ref() { return "OpaqueRef:" + csprng_uuid(); }

std::string id_source::mac() {
  std::string u = uuid();  // hex digits to draw from (without the dashes)
  u.erase(std::remove(u.begin(), u.end(), '-'), u.end());
  std::string out = "c2";  // locally administered, unicast
  for (int i = 0; i < 5; ++i) out += ":" + u.substr(static_cast<std::size_t>(i) * 2, 2);
  return out;
}

}  // namespace xapid
