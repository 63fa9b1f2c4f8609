#include "sm/xva_stream.hpp"
#include "common/hex.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include <openssl/sha.h>
#include <xxhash.h>
#include <zlib.h>

namespace xapid::sm {
namespace {

constexpr std::size_t block = 512;

void octal(char* field, std::size_t width, std::int64_t value) {
  std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1), static_cast<unsigned long long>(value));
}

std::int64_t parse_octal(const char* field, std::size_t width) {
  std::int64_t v = 0;
  for (std::size_t i = 0; i < width && field[i]; ++i) {
    if (field[i] == ' ') continue;
    if (field[i] < '0' || field[i] > '7') return -1;
    v = v * 8 + (field[i] - '0');
  }
  return v;
}

bool all_zero(const char* data, std::size_t n) {
  return std::all_of(data, data + n, [](char c) { return c == 0; });
}

}  // namespace

std::string sha1_hex(const char* data, std::size_t n) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data), n, digest);
  return hex({reinterpret_cast<const char*>(digest), sizeof digest});
}

bool tar_out::put(const char* data, std::size_t n) {
  if (!sink_(data, n)) return false;
  bytes_ += static_cast<std::int64_t>(n);
  return true;
}

bool tar_out::add(const std::string& name, const char* data, std::size_t n) {
  char h[block] = {};
  if (name.size() >= 100) return false;
  std::memcpy(h, name.data(), name.size());
  octal(h + 100, 8, 0644);
  octal(h + 108, 8, 0);
  octal(h + 116, 8, 0);
  octal(h + 124, 12, static_cast<std::int64_t>(n));
  octal(h + 136, 12, 0);
  h[156] = '0';
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  static const char zeros[block] = {};
  return put(h, block) && (n == 0 || put(data, n)) && (n % block == 0 || put(zeros, block - n % block));
}

bool tar_out::finish() {
  static const char zeros[2 * block] = {};
  return put(zeros, sizeof zeros);
}

bool tar_in::read_exact(char* buf, std::size_t n) {
  while (n > 0) {
    long got = source_(buf, n);
    if (got <= 0) {
      error_ = got == 0 ? "the stream ended in the middle of the archive" : "the stream broke";
      return false;
    }
    buf += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

bool tar_in::skip_padding() {
  char pad[block];
  bool ok = padding_ == 0 || read_exact(pad, static_cast<std::size_t>(padding_));
  padding_ = 0;
  return ok;
}

bool tar_in::next(std::string& name, std::int64_t& size) {
  std::string long_name;  // from a pax or GNU header before the entry it names
  for (;;) {
    // Whatever the caller left of the previous entry is skipped.
    std::vector<char> skip(64 << 10);
    while (remaining_ > 0) {
      auto n = static_cast<std::size_t>(std::min<std::int64_t>(remaining_, static_cast<std::int64_t>(skip.size())));
      if (!read_exact(skip.data(), n)) return false;
      remaining_ -= static_cast<std::int64_t>(n);
    }
    if (!skip_padding()) return false;
    char h[block];
    if (!read_exact(h, block)) return false;
    if (all_zero(h, block)) return false;  // the end of the archive
    unsigned sum = 0;
    for (std::size_t i = 0; i < block; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    if (parse_octal(h + 148, 8) != static_cast<std::int64_t>(sum)) {
      error_ = "a tar header's checksum is wrong: this is not an XVA archive, or it is damaged";
      return false;
    }
    name.assign(h, strnlen(h, 100));
    if (std::memcmp(h + 257, "ustar", 5) == 0 && h[345]) name = std::string(h + 345, strnlen(h + 345, 155)) + "/" + name;
    size = parse_octal(h + 124, 12);
    if (size < 0) {
      error_ = "a tar header's size is not a number";
      return false;
    }
    remaining_ = size;
    padding_ = (block - size % block) % block;
    const char type = h[156];
    if (type == 'x' || type == 'g' || type == 'L') {
      // Extended headers: a longer name for the next entry; the rest is of no use here.
      std::string data;
      if (!read_entry(data, 1 << 20)) return false;
      if (type == 'L') {
        long_name = data.substr(0, data.find('\0'));
      } else if (type == 'x') {
        for (std::size_t at = 0; at < data.size();) {
          auto space = data.find(' ', at);
          if (space == std::string::npos) break;
          std::size_t len = std::strtoull(data.c_str() + at, nullptr, 10);
          if (len == 0 || at + len > data.size()) break;
          std::string record = data.substr(space + 1, at + len - space - 2);
          if (record.rfind("path=", 0) == 0) long_name = record.substr(5);
          at += len;
        }
      }
      continue;
    }
    if (type == '5') continue;  // a directory
    // Links, devices and FIFOs are no part of an archive of disks: nothing here follows them.
    if (type != '0' && type != '\0') {
      error_ = std::string("an archive entry of type '") + (type >= 0x20 && type < 0x7f ? type : '?') +
               "' (a link, device or FIFO) is not a file";
      return false;
    }
    if (!long_name.empty()) name = long_name;
    if (name.rfind("./", 0) == 0) name.erase(0, 2);
    return true;
  }
}

bool tar_in::read_entry(std::string& out, std::int64_t max_bytes) {
  if (remaining_ > max_bytes) {
    error_ = "an archive entry is larger than " + std::to_string(max_bytes) + " bytes";
    return false;
  }
  out.resize(static_cast<std::size_t>(remaining_));
  if (!read_exact(out.data(), out.size())) return false;
  remaining_ = 0;
  return true;
}

bool tar_in::read_entry_into(char* buf, std::size_t n) {
  if (static_cast<std::int64_t>(n) != remaining_) return false;
  if (!read_exact(buf, n)) return false;
  remaining_ = 0;
  return true;
}

long tar_in::read_part(char* buf, std::size_t n) {
  if (remaining_ == 0) return 0;
  auto want = static_cast<std::size_t>(std::min<std::int64_t>(remaining_, static_cast<std::int64_t>(n)));
  long got = source_(buf, want);
  if (got <= 0) {
    error_ = got == 0 ? "the stream ended in the middle of the archive" : "the stream broke";
    return -1;
  }
  remaining_ -= got;
  return got;
}

tool_result<void> write_disk_chunks(tar_out& out, const std::string& prefix, const std::string& image,
                                    std::int64_t size, const std::string& scratch_dir,
                                    const std::function<bool(std::int64_t)>& progress) {
  // A raw, sparse view of the guest's data: qemu-img leaves zeroes as holes.
  std::string raw = scratch_dir + "/.export-" + std::to_string(::getpid()) + "-" +
                    std::to_string(reinterpret_cast<std::uintptr_t>(&out)) + ".raw";
  if (auto r = run_tool({"qemu-img", "convert", "-q", "-U", "-O", "raw", image, raw}); !r) return fail(r.error());
  struct cleanup {
    std::string path;
    int fd = -1;
    ~cleanup() {
      if (fd >= 0) ::close(fd);
      ::unlink(path.c_str());
    }
  } c{raw};
  c.fd = ::open(raw.c_str(), O_RDONLY | O_CLOEXEC);
  if (c.fd < 0) return fail(tool_failure{-1, {}, "cannot read " + raw + ": " + std::strerror(errno)});
  std::vector<char> buf(static_cast<std::size_t>(xva_chunk_bytes));
  const std::int64_t chunks = (size + xva_chunk_bytes - 1) / xva_chunk_bytes;
  char name[128];
  for (std::int64_t i = 0; i < chunks;) {
    const std::int64_t offset = i * xva_chunk_bytes;
    const bool edge = i == 0 || i == chunks - 1;
    if (!edge) {
      // Holes are skipped whole: the next chunk with data, or the last one.
      off_t data = ::lseek(c.fd, offset, SEEK_DATA);
      std::int64_t next = data < 0 ? chunks - 1 : std::min<std::int64_t>(data / xva_chunk_bytes, chunks - 1);
      if (next > i) {
        if (progress && !progress((next - i) * xva_chunk_bytes)) return fail(tool_failure{-1, {}, "cancelled"});
        i = next;
        continue;
      }
    }
    auto n = static_cast<std::size_t>(std::min<std::int64_t>(xva_chunk_bytes, size - offset));
    std::memset(buf.data(), 0, n);
    ssize_t got = ::pread(c.fd, buf.data(), n, offset);
    if (got < 0) return fail(tool_failure{-1, {}, std::string("cannot read the disk: ") + std::strerror(errno)});
    if (edge || !all_zero(buf.data(), n)) {
      std::snprintf(name, sizeof name, "%s/%08lld", prefix.c_str(), static_cast<long long>(i));
      std::string sum = sha1_hex(buf.data(), n);
      if (!out.add(name, buf.data(), n) || !out.add(std::string(name) + ".checksum", sum.data(), sum.size()))
        return fail(tool_failure{-1, {}, "the receiver went away"});
    }
    if (progress && !progress(static_cast<std::int64_t>(n))) return fail(tool_failure{-1, {}, "cancelled"});
    ++i;
  }
  return ok_v;
}

tool_result<disk_in> disk_in::open(const std::string& raw_path, std::int64_t size) {
  int fd = ::open(raw_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail(tool_failure{-1, {}, "cannot create " + raw_path + ": " + std::strerror(errno)});
  if (::ftruncate(fd, size) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    ::unlink(raw_path.c_str());
    return fail(tool_failure{-1, {}, "cannot size " + raw_path + ": " + why});
  }
  return disk_in(raw_path, fd, size);
}

disk_in::disk_in(disk_in&& o) noexcept
    : raw_path_(std::move(o.raw_path_)), fd_(o.fd_), size_(o.size_), last_index_(o.last_index_),
      last_sha1_(std::move(o.last_sha1_)), last_xxh64_(o.last_xxh64_), last_unchecked_(o.last_unchecked_),
      unchecked_(o.unchecked_), errno_(o.errno_) {
  o.fd_ = -1;
  o.raw_path_.clear();
}

disk_in::~disk_in() {
  if (fd_ >= 0) ::close(fd_);
  if (!raw_path_.empty()) ::unlink(raw_path_.c_str());
}

bool disk_in::write_chunk(std::int64_t index, const std::string& data) {
  // An index far beyond the disk would overflow its offset (2^44 chunks wrapped to offset 0).
  if (index < 0 || index > size_ / xva_chunk_bytes) return false;
  if (!write_at(index * xva_chunk_bytes, data.data(), data.size())) return false;
  unchecked_ += last_unchecked_;
  last_unchecked_ = true;
  last_index_ = index;
  last_sha1_ = sha1_hex(data.data(), data.size());
  last_xxh64_ = XXH64(data.data(), data.size(), 0);
  return true;
}

bool disk_in::check_xxhash(std::int64_t index, const std::string& xxh64_hex) {
  std::string text = xxh64_hex;
  text.erase(std::remove_if(text.begin(), text.end(), [](char c) { return c == '\n' || c == ' ' || c == '\r'; }),
             text.end());
  char* end = nullptr;
  std::uint64_t want = std::strtoull(text.c_str(), &end, 16);
  const bool ok = index == last_index_ && !text.empty() && end && *end == '\0' && want == last_xxh64_;
  if (ok) last_unchecked_ = false;
  return ok;
}

bool disk_in::write_at(std::int64_t offset, const char* data, std::size_t n) {
  errno_ = 0;
  if (offset < 0 || offset > size_ || static_cast<std::int64_t>(n) > size_ - offset) return false;
  for (std::size_t done = 0; done < n;) {
    ssize_t w = ::pwrite(fd_, data + done, n - done, offset + static_cast<off_t>(done));
    if (w <= 0) {
      errno_ = w < 0 ? errno : ENOSPC;
      return false;
    }
    done += static_cast<std::size_t>(w);
  }
  return true;
}

bool disk_in::inflate_entry(tar_in& in, std::int64_t offset, std::string& error) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return error = "cannot start gunzip", false;
  std::vector<char> input(1 << 16), output(1 << 20);
  int rc = Z_OK;
  bool ok = true;
  while (ok && rc != Z_STREAM_END) {
    long got = in.read_part(input.data(), input.size());
    if (got < 0) {
      error = in.error();
      ok = false;
      break;
    }
    if (got == 0) {
      error = "a gzipped chunk ends before its data";
      ok = false;
      break;
    }
    z.next_in = reinterpret_cast<Bytef*>(input.data());
    z.avail_in = static_cast<uInt>(got);
    while (z.avail_in > 0 && rc != Z_STREAM_END) {
      z.next_out = reinterpret_cast<Bytef*>(output.data());
      z.avail_out = static_cast<uInt>(output.size());
      rc = inflate(&z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END) {
        error = "a chunk is not valid gzip data";
        ok = false;
        break;
      }
      std::size_t produced = output.size() - z.avail_out;
      // A zero stretch needs no write: the raw file is sparse and starts out zero.
      if (produced > 0 && !all_zero(output.data(), produced) && !write_at(offset, output.data(), produced)) {
        error = errno_ ? std::string("cannot write the disk: ") + std::strerror(errno_) : "a chunk holds more data than its disk";
        ok = false;
        break;
      }
      offset += static_cast<std::int64_t>(produced);
    }
  }
  inflateEnd(&z);
  return ok;
}

bool disk_in::check(std::int64_t index, const std::string& sha1_hex_text) {
  std::string want = sha1_hex_text;
  want.erase(std::remove_if(want.begin(), want.end(), [](char c) { return c == '\n' || c == ' ' || c == '\r'; }),
             want.end());
  std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::tolower(c); });
  const bool ok = index == last_index_ && want == last_sha1_;
  if (ok) last_unchecked_ = false;
  return ok;
}

tool_result<void> disk_in::finish_as_qcow2(const std::string& path) {
  if (::fsync(fd_) != 0) return fail(tool_failure{-1, {}, std::string("cannot sync the disk: ") + std::strerror(errno)});
  if (auto r = run_tool({"qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw_path_, path}); !r) {
    ::unlink(path.c_str());
    return fail(r.error());
  }
  return ok_v;
}

}  // namespace xapid::sm
