// The HA statefile: a small raw VDI on a shared SR that every host of the pool reads and writes
// (pool.enable_ha makes it). It holds one lease block per host and one for the master, each a
// fixed 4 KiB block that only its owner writes, in place, synced before the write returns.
//
// Leases are *delta leases* (sanlock's): a block carries a counter its owner raises at every
// renewal, and a reader judges liveness only by watching that counter change on its own
// monotonic clock — never by comparing the writer's clock with its own, so clock jumps and skew
// between hosts change nothing. A lease is expired for a reader once its counter has not moved
// for the pool's timeout, counted from the reader's first look.
//
// Layout: block 0 the header (magic, pool uuid, the hosts' uuids in slot order), block 1 the
// master's lease, block 2 + i the lease of the host in slot i. Every block ends with a checksum;
// a block that fails it reads as empty (a torn or foreign write renews nothing).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace xapid::ha {

inline constexpr std::size_t statefile_block = 4096;
// xapi's statefile is 4 MiB too; a pool has at most 64 hosts (xapi's limit), whose uuids fit
// the header block.
inline constexpr std::int64_t statefile_bytes = 4 << 20;
inline constexpr std::size_t statefile_max_hosts = 64;

struct statefile_header {
  std::string pool_uuid;
  std::vector<std::string> hosts;  // slot order
};

struct lease {
  std::string owner;           // the host's uuid (the master block: the master's)
  std::uint64_t counter = 0;   // raised at every renewal
  std::uint64_t incarnation = 0;  // random at each start of the writer: a restart is seen as one
  std::int64_t wall_ms = 0;    // the writer's wall clock, for people reading it; never compared
  bool fenced = false;         // the owner has fenced itself and will not renew
  // The hosts (by slot) the owner exchanged a heartbeat with, and how long before this write:
  // a host that lost the statefile but still talks to its peers is known alive through them.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> heard;  // slot, age in ms
  bool operator==(const lease&) const = default;
};

// Where a block lives and how it is read and written: the file on a shared SR, or the
// simulator's shared memory. Reads and writes are whole blocks; a failure is an error string.
class block_device {
 public:
  virtual ~block_device() = default;
  virtual result<std::string, std::string> read(std::size_t block) = 0;
  virtual result<void, std::string> write(std::size_t block, const std::string& bytes) = 0;
};

// The statefile as a file of this host (the shared SR's directory): opened O_DSYNC, so a write
// returns once it is on the storage every host reads.
result<std::unique_ptr<block_device>, std::string> open_statefile(const std::string& path);
// Makes a fresh statefile at `path` (statefile_bytes of zeros), refusing an existing file.
result<void, std::string> create_statefile(const std::string& path);

// A block of `bytes` (cut or zero-padded) ending with the checksum the decoders check: what
// the encoders finish with, and how a fuzzer reaches the decoders' fields past the checksum.
std::string seal_block(std::string bytes);

std::string encode_header(const statefile_header& h);
std::optional<statefile_header> decode_header(const std::string& block);
std::string encode_lease(const lease& l);
// Empty for a block never written, torn or foreign.
std::optional<lease> decode_lease(const std::string& block);

inline constexpr std::size_t master_block = 1;
inline std::size_t host_block(std::size_t slot) { return 2 + slot; }

}  // namespace xapid::ha
