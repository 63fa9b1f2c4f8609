// The byte level of an XVA stream, as XenServer writes it: a tar archive with ova.xml first,
// then each disk as 1 MiB chunks "<prefix>/<8-digit index>" each followed by
// "<index>.checksum" (its SHA-1 in hex). Chunks of zeroes are left out, except a disk's first
// and last, so the size is always there. Nothing here buffers a whole disk: disks are read
// from and written to sparse raw files beside the SR.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "sm/qemu_img.hpp"

namespace xapid::sm {

inline constexpr std::int64_t xva_chunk_bytes = 1 << 20;
// What an archive may ask of the host: at most this many disks, each at most 64 TiB.
inline constexpr std::size_t max_import_disks = 255;
inline constexpr std::int64_t max_import_disk_bytes = std::int64_t{1} << 46;

// Writes a tar archive to `sink` (false from the sink: the reader went away).
class tar_out {
 public:
  using sink = std::function<bool(const char*, std::size_t)>;
  explicit tar_out(sink s) : sink_(std::move(s)) {}
  bool add(const std::string& name, const char* data, std::size_t n);
  bool finish();  // the two zero blocks that end an archive
  std::int64_t bytes() const noexcept { return bytes_; }

 private:
  bool put(const char* data, std::size_t n);
  sink sink_;
  std::int64_t bytes_ = 0;
};

// Reads a tar archive from `source` (which answers 0 at the end, -1 on a broken stream).
class tar_in {
 public:
  using source = std::function<long(char*, std::size_t)>;
  explicit tar_in(source s) : source_(std::move(s)) {}
  // The next entry's name and size; false at the archive's end. `error()` says if the stream
  // was cut or malformed instead.
  bool next(std::string& name, std::int64_t& size);
  // The current entry's data (all of it, or the error).
  bool read_entry(std::string& out, std::int64_t max_bytes);
  bool read_entry_into(char* buf, std::size_t n);  // exactly its size, n == size
  // Up to `n` more bytes of the current entry; 0 at its end, -1 on a cut stream.
  long read_part(char* buf, std::size_t n);
  const std::string& error() const noexcept { return error_; }

 private:
  bool read_exact(char* buf, std::size_t n);
  bool skip_padding();
  source source_;
  std::int64_t remaining_ = 0;  // of the current entry
  std::int64_t padding_ = 0;
  std::string error_;
};

// Streams the guest data of `image` (qcow2, or raw) of `size` bytes as chunks under `prefix`,
// through a raw copy in `scratch_dir`. `progress` hears of every chunk's bytes and answers false
// to stop there (a cancelled export): the failure then says "cancelled".
tool_result<void> write_disk_chunks(tar_out& out, const std::string& prefix, const std::string& image,
                                    std::int64_t size, const std::string& scratch_dir,
                                    const std::function<bool(std::int64_t)>& progress);

// A disk being received: chunks land in a sparse raw file; each chunk's checksum is checked.
class disk_in {
 public:
  // Makes `raw_path` of `size` bytes.
  static tool_result<disk_in> open(const std::string& raw_path, std::int64_t size);
  disk_in(disk_in&&) noexcept;
  disk_in& operator=(disk_in&&) = delete;
  ~disk_in();
  // Chunk `index` (at index MiB): false if it lies beyond the disk or cannot be written.
  bool write_chunk(std::int64_t index, const std::string& data);
  // Writes bytes anywhere in the disk; false beyond its end or on a write error.
  bool write_at(std::int64_t offset, const char* data, std::size_t n);
  // The gzip stream of the current tar entry, inflated into the disk from `offset` on (the
  // seed's legacy "dir-gzipped-chunks": each chunk is 1e9 bytes once inflated).
  bool inflate_entry(tar_in& in, std::int64_t offset, std::string& error);
  // The checksum of the last chunk written: SHA-1 in hex (".checksum"), or XXH64 in upper-case
  // hex (".xxhash", newer XenServers); false when it does not match.
  bool check(std::int64_t index, const std::string& sha1_hex);
  bool check_xxhash(std::int64_t index, const std::string& xxh64_hex);
  // Whether every chunk written so far was followed by its checksum.
  bool every_chunk_checked() const noexcept { return unchecked_ == 0 && !last_unchecked_; }
  // The received disk as a qcow2 image at `path`; the raw file goes.
  tool_result<void> finish_as_qcow2(const std::string& path);
  const std::string& raw_path() const noexcept { return raw_path_; }
  // The errno of the last failed write (ENOSPC: the SR is full).
  int last_errno() const noexcept { return errno_; }

 private:
  disk_in(std::string raw_path, int fd, std::int64_t size) : raw_path_(std::move(raw_path)), fd_(fd), size_(size) {}
  std::string raw_path_;
  int fd_ = -1;
  std::int64_t size_ = 0;
  std::int64_t last_index_ = -1;
  std::string last_sha1_;
  std::uint64_t last_xxh64_ = 0;
  bool last_unchecked_ = false;  // the last chunk has had no checksum yet
  std::size_t unchecked_ = 0;    // earlier chunks that had none
  int errno_ = 0;
};

std::string sha1_hex(const char* data, std::size_t n);

}  // namespace xapid::sm
