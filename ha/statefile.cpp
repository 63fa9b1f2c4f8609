#include "ha/statefile.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace xapid::ha {
namespace {

constexpr std::string_view header_magic = "XAPIDHA1";
constexpr std::string_view lease_magic = "XAPIDLS1";

// Fixed-width little-endian fields, then a checksum of everything before it at the block's end.
class writer {
 public:
  explicit writer(std::string_view magic) : out_(magic) {}
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void text(const std::string& s) {
    u64(s.size());
    out_ += s;
  }
  std::string finish() && { return seal_block(std::move(out_)); }
  static std::uint64_t checksum(std::string_view bytes) {  // FNV-1a: a torn write, not an attacker
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
    return h;
  }

 private:
  std::string out_;
};

class reader {
 public:
  // Empty unless the block is whole, of this magic and its checksum holds.
  static std::optional<reader> of(const std::string& block, std::string_view magic) {
    if (block.size() != statefile_block || block.compare(0, magic.size(), magic) != 0) return std::nullopt;
    reader r(block);
    r.at_ = statefile_block - 8;
    const auto sum = r.u64();
    if (!sum || *sum != writer::checksum(std::string_view(block).substr(0, statefile_block - 8))) return std::nullopt;
    r.at_ = magic.size();
    return r;
  }
  std::optional<std::uint64_t> u64() {
    if (at_ + 8 > block_.size()) return std::nullopt;
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(block_[at_ + i])) << (8 * i);
    at_ += 8;
    return v;
  }
  std::optional<std::string> text() {
    auto n = u64();
    if (!n || *n > statefile_block || at_ + *n > statefile_block - 8) return std::nullopt;
    std::string s = block_.substr(at_, *n);
    at_ += *n;
    return s;
  }

 private:
  explicit reader(const std::string& block) : block_(block) {}
  const std::string& block_;
  std::size_t at_ = 0;
};

// Reads and writes go through a block-aligned buffer: with O_DIRECT (where the file system takes
// it) every read reaches the shared storage, never this host's page cache — an NFS client's
// cache could show a live host's counter standing still.
class file_device final : public block_device {
 public:
  explicit file_device(int fd) : fd_(fd), buffer_(static_cast<char*>(std::aligned_alloc(statefile_block, statefile_block))) {}
  ~file_device() override {
    ::close(fd_);
    std::free(buffer_);
  }
  result<std::string, std::string> read(std::size_t block) override {
    const auto n = ::pread(fd_, buffer_, statefile_block, static_cast<off_t>(block * statefile_block));
    if (n < 0) return fail(std::string("reading the statefile: ") + std::strerror(errno));
    if (static_cast<std::size_t>(n) != statefile_block) return fail(std::string("the statefile is too short"));
    return std::string(buffer_, statefile_block);
  }
  result<void, std::string> write(std::size_t block, const std::string& bytes) override {
    if (bytes.size() != statefile_block) return fail(std::string("a statefile block is 4096 bytes"));
    std::memcpy(buffer_, bytes.data(), statefile_block);
    const auto n = ::pwrite(fd_, buffer_, statefile_block, static_cast<off_t>(block * statefile_block));
    if (n < 0) return fail(std::string("writing the statefile: ") + std::strerror(errno));
    if (static_cast<std::size_t>(n) != bytes.size()) return fail(std::string("a short write to the statefile"));
    return ok_v;
  }

 private:
  int fd_;
  char* buffer_;  // one block, aligned for O_DIRECT; a device is used by one thread at a time
};

}  // namespace

result<std::unique_ptr<block_device>, std::string> open_statefile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_DSYNC | O_DIRECT | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == EINVAL) fd = ::open(path.c_str(), O_RDWR | O_DSYNC | O_CLOEXEC | O_NOFOLLOW);  // tmpfs: no O_DIRECT
  if (fd < 0) return fail("opening the statefile " + path + ": " + std::strerror(errno));
  return std::unique_ptr<block_device>(std::make_unique<file_device>(fd));
}

result<void, std::string> create_statefile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail("making the statefile " + path + ": " + std::strerror(errno));
  const bool sized = ::ftruncate(fd, statefile_bytes) == 0 && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!sized) {
    ::unlink(path.c_str());
    return fail("sizing the statefile " + path + ": " + std::strerror(err));
  }
  return ok_v;
}

std::string seal_block(std::string bytes) {
  bytes.resize(statefile_block - 8, '\0');
  const std::uint64_t sum = writer::checksum(bytes);
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((sum >> (8 * i)) & 0xff));
  return bytes;
}

std::string encode_header(const statefile_header& h) {
  writer w(header_magic);
  w.text(h.pool_uuid);
  w.u64(h.hosts.size());
  for (const auto& host : h.hosts) w.text(host);
  return std::move(w).finish();
}

std::optional<statefile_header> decode_header(const std::string& block) {
  auto r = reader::of(block, header_magic);
  if (!r) return std::nullopt;
  statefile_header h;
  auto pool = r->text();
  auto n = r->u64();
  if (!pool || !n || *n > statefile_max_hosts) return std::nullopt;
  h.pool_uuid = *pool;
  for (std::uint64_t i = 0; i < *n; ++i) {
    auto host = r->text();
    if (!host) return std::nullopt;
    h.hosts.push_back(*host);
  }
  return h;
}

std::string encode_lease(const lease& l) {
  writer w(lease_magic);
  w.text(l.owner);
  w.u64(l.counter);
  w.u64(l.incarnation);
  w.u64(static_cast<std::uint64_t>(l.wall_ms));
  w.u64(l.fenced ? 1 : 0);
  w.u64(std::min(l.heard.size(), statefile_max_hosts));
  for (std::size_t i = 0; i < l.heard.size() && i < statefile_max_hosts; ++i)
    w.u64((static_cast<std::uint64_t>(l.heard[i].first) << 32) | l.heard[i].second);
  return std::move(w).finish();
}

std::optional<lease> decode_lease(const std::string& block) {
  auto r = reader::of(block, lease_magic);
  if (!r) return std::nullopt;
  lease l;
  auto owner = r->text();
  auto counter = r->u64(), incarnation = r->u64(), wall = r->u64(), fenced = r->u64();
  if (!owner || !counter || !incarnation || !wall || !fenced) return std::nullopt;
  l.owner = *owner;
  l.counter = *counter;
  l.incarnation = *incarnation;
  l.wall_ms = static_cast<std::int64_t>(*wall);
  l.fenced = *fenced != 0;
  auto n = r->u64();
  if (!n || *n > statefile_max_hosts) return std::nullopt;
  for (std::uint64_t i = 0; i < *n; ++i) {
    auto v = r->u64();
    if (!v) return std::nullopt;
    l.heard.emplace_back(static_cast<std::uint32_t>(*v >> 32), static_cast<std::uint32_t>(*v & 0xffffffffu));
  }
  return l;
}

}  // namespace xapid::ha
