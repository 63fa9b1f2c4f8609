// The writer half of the crash test: commits transactions from several threads and prints
// "ack <n>" for each one the database acknowledged, until it is killed.
// Usage: storage_crash_child DB_DIR ROUND
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storage/database.hpp"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  std::string round = argv[2];
  auto opened = xapid::storage::database::open({argv[1]});
  if (!opened) {
    std::fprintf(stderr, "open failed: %s\n", opened.error().c_str());
    return 1;
  }
  auto& db = *opened.value();
  std::mutex out;
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&, w] {
      for (int i = w;; i += 4) {
        // One transaction: a VM, a VBD attached to it, and a key on the VM. All or nothing.
        auto t = db.begin();
        xapid::api::vm vm;
        vm.name_label = "vm-" + round + "-" + std::to_string(i);
        vm.other_config["n"] = std::to_string(i);
        std::string ref = t.create(vm);
        xapid::api::vbd vbd;
        vbd.VM.opaque = ref;
        vbd.userdevice = std::to_string(i);
        t.create(vbd);
        t.add_to_map(xapid::storage::schema::get().class_of<xapid::api::vm>(), ref,
                     *xapid::storage::schema::get().field_index(xapid::storage::schema::get().class_of<xapid::api::vm>(),
                                                                "other_config"),
                     "round", xapid::wire::value(round));
        auto r = db.commit(std::move(t));
        if (!r) {
          std::fprintf(stderr, "commit failed: %s\n", r.error().description().at(0).c_str());
          std::_Exit(1);
        }
        std::lock_guard lock(out);
        std::printf("ack %s\n", vm.name_label.c_str());
        std::fflush(stdout);
      }
    });
  for (auto& t : writers) t.join();
}
