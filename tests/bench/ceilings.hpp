// The ceilings the benchmarks compare against, measured in the same run on the same disk.
#pragma once

#include <chrono>
#include <string>

#include <rocksdb/db.h>

namespace xapid::bench {

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Raw RocksDB synced single-key writes per second at `path` (the fsync rate a commit cannot beat).
inline double raw_rocksdb_synced_writes_per_s(const std::string& path, double duration_s) {
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  if (!rocksdb::DB::Open(o, path, &db).ok()) return 0;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  std::string value(512, 'x');
  long n = 0;
  auto start = std::chrono::steady_clock::now();
  while (seconds_since(start) < duration_s) {
    (void)db->Put(wo, "key" + std::to_string(n % 1000), value);
    ++n;
  }
  double rate = n / seconds_since(start);
  delete db;
  return rate;
}

}  // namespace xapid::bench
