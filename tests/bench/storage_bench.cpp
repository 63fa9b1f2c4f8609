// Storage benchmark, all on the same disk in the same run:
//   ceiling: raw RocksDB synced single-key writes/s;
//   ours: commits/s with 1 writer and with 16 concurrent writers (group commit);
//   a consistent snapshot of the VM records get_all_records reads, and its XML-RPC answer;
//   memory per VM record: RSS growth over 10,000 and 100,000 records after a warm-up of 1,000;
//   restart with 10,000 and 101,000 VMs against a raw RocksDB scan of the same files.
// Usage: storage_bench [DIR]   (default: a directory under /tmp)
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <rocksdb/db.h>

#include "tests/bench/ceilings.hpp"
#include "tests/bench/commit_rate.hpp"

#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"
#include "storage/database.hpp"
#include "storage/row_values.hpp"

namespace {

using namespace std::chrono;
using xapid::storage::database;

using xapid::bench::commits_per_s;
using xapid::bench::seconds_since;

// Resident memory once malloc has returned what it only keeps cached.
long rss_kib() {
  ::malloc_trim(0);
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}


void add_vms(database& db, int count) {
  constexpr int per_commit = 1000;
  for (int done = 0; done < count; done += per_commit) {
    auto t = db.begin();
    for (int i = 0; i < per_commit && done + i < count; ++i) {
      xapid::api::vm vm;
      vm.name_label = "vm-" + std::to_string(done + i);
      vm.memory_static_max = vm.memory_dynamic_max = vm.memory_dynamic_min = vm.memory_static_min = 1 << 30;
      vm.VCPUs_max = vm.VCPUs_at_startup = 2;
      vm.other_config = {{"install-methods", "cdrom,nfs,http,ftp"}, {"linux_template", "true"}};
      vm.platform = {{"nx", "true"}, {"acpi", "1"}, {"apic", "true"}, {"pae", "true"}, {"viridian", "true"}};
      vm.HVM_boot_policy = "BIOS order";
      vm.HVM_boot_params = {{"order", "cdn"}};
      vm.actions_after_crash = xapid::api::on_crash_behaviour::restart;
      t.create(vm);
    }
    if (!db.commit(std::move(t))) std::abort();
  }
}

// Restart: opening the database (every row decoded into its record, indexes and derived sets
// built) against a raw RocksDB scan of the same files (every key and value read), best of 3.
void restart_against_raw_scan(const std::string& path, const char* label) {
  double open_ms = 1e9, scan_ms = 1e9;
  for (int i = 0; i < 3; ++i) {
    {
      auto start = steady_clock::now();
      rocksdb::DB* raw = nullptr;
      rocksdb::Options o;
      if (!rocksdb::DB::OpenForReadOnly(o, path, &raw).ok()) std::abort();
      std::unique_ptr<rocksdb::DB> db(raw);
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
      std::size_t bytes = 0;
      for (it->SeekToFirst(); it->Valid(); it->Next()) bytes += it->key().size() + it->value().size();
      if (bytes == 0) std::abort();
      scan_ms = std::min(scan_ms, seconds_since(start) * 1000);
    }
    auto start = steady_clock::now();
    auto db = database::open({path});
    if (!db) std::abort();
    open_ms = std::min(open_ms, seconds_since(start) * 1000);
  }
  std::printf("restart with %s VMs:              %8.0f ms  (raw RocksDB scan %.0f ms: %.2f x; target <= 2)\n", label,
              open_ms, scan_ms, open_ms / scan_ms);
}

}  // namespace

int main(int argc, char** argv) {
  std::string base = argc > 1 ? argv[1] : "/tmp/xapid-storage-bench-" + std::to_string(::getpid());
  std::filesystem::remove_all(base);
  std::filesystem::create_directories(base);
  const double seconds = 3;

  double ceiling = xapid::bench::raw_rocksdb_synced_writes_per_s(base + "/raw", seconds);
  std::printf("raw RocksDB synced single-key writes: %10.0f /s   (ceiling)\n", ceiling);
  {
    auto db = database::open({base + "/one"});
    double one = commits_per_s(**db, 1, seconds);
    std::printf("xapid commits, 1 writer:             %10.0f /s   (%.2f x ceiling)\n", one, one / ceiling);
    auto db16 = database::open({base + "/sixteen"});
    double sixteen = commits_per_s(**db16, 16, seconds);
    std::printf("xapid commits, 16 writers:           %10.0f /s   (%.2f x ceiling, %.1f x one writer; target >= 5)\n",
                sixteen, sixteen / ceiling, sixteen / one);
  }
  {
    auto db = database::open({base + "/records"});
    // The first commits set up what every later one reuses (RocksDB's memtable and WAL buffers,
    // malloc arenas of the committer thread); the growth after them is what records cost.
    add_vms(**db, 1000);
    long before = rss_kib();
    add_vms(**db, 10000);
    long after10k = rss_kib();
    const std::size_t vm_class = xapid::storage::schema::get().class_of<xapid::api::vm>();
    // The snapshot get_all_records reads from: taken, and its 11,000 records counted; then the
    // XML-RPC and JSON-RPC answers get_all_records writes from it (the writers' speed per byte).
    double snapshot_ms = 1e9, answer_ms = 1e9, json_ms = 1e9;
    std::size_t answer_bytes = 0, json_bytes = 0;
    const xapid::wire::jsonrpc::request json_call{{}, xapid::wire::jsonrpc::version::v2_0, "1"};
    for (int i = 0; i < 5; ++i) {
      auto start = steady_clock::now();
      auto snap = (*db)->snapshot();
      std::size_t records = 0;
      snap->for_each(vm_class, [&](const std::string&, const xapid::storage::row&) {
        ++records;
        return true;
      });
      snapshot_ms = std::min(snapshot_ms, seconds_since(start) * 1000);
      if (records != 11000) std::abort();  // the warm-up's and the measured ones
      start = steady_clock::now();
      xapid::wire::response answer{true, xapid::storage::all_records_value(snap, vm_class), {}};
      answer_bytes = xapid::wire::xmlrpc::write_response(answer).size();
      answer_ms = std::min(answer_ms, seconds_since(start) * 1000);
      start = steady_clock::now();
      json_bytes = xapid::wire::jsonrpc::write_response(json_call, answer).size();
      json_ms = std::min(json_ms, seconds_since(start) * 1000);
    }
    std::printf("snapshot of 11,000 VM records:       %10.2f ms  (target < 20 for 10,000)\n", snapshot_ms);
    std::printf("  and their XML-RPC answer (%zu MB):  %8.2f ms  (%.0f MB/s)\n", answer_bytes >> 20, answer_ms,
                answer_bytes / answer_ms / 1e3);
    std::printf("  and their JSON-RPC answer (%zu MB): %8.2f ms  (%.0f MB/s; goal: XML's per byte)\n", json_bytes >> 20,
                json_ms, json_bytes / json_ms / 1e3);
    std::printf("memory per VM record, next 10,000:   %10.0f bytes (target < 4096)\n",
                (after10k - before) * 1024.0 / 10000);
    add_vms(**db, 90000);  // 100,000 after the warm-up
    long after100k = rss_kib();
    std::printf("memory per VM record, next 100,000:  %10.0f bytes (target < 4096)\n",
                (after100k - before) * 1024.0 / 100000);
  }
  {
    auto db = database::open({base + "/ten"});
    add_vms(**db, 10000);
  }
  restart_against_raw_scan(base + "/ten", " 10,000");
  restart_against_raw_scan(base + "/records", "101,000");
  std::filesystem::remove_all(base);
}
