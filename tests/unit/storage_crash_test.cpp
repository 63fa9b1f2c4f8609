// Kill -9 at seeded random moments while a child process commits; every transaction it saw
// acknowledged must be there on reopen, whole, and no transaction may be there in part.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "storage/database.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::storage {
namespace {

struct child {
  pid_t pid = -1;
  int out = -1;
};

child spawn(const std::string& dir, int round) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    std::string r = std::to_string(round);
    ::execl(XAPID_CRASH_CHILD, XAPID_CRASH_CHILD, dir.c_str(), r.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  return {pid, fds[0]};
}

// Reads whole "ack <name>" lines until `want` of them arrived or the pipe closed.
void read_acks(int fd, std::string& buffer, std::set<std::string>& acked, std::size_t want) {
  char chunk[4096];
  while (acked.size() < want) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) return;
    buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      if (line.rfind("ack ", 0) == 0) acked.insert(line.substr(4));
    }
  }
}

TEST(storage_crash, acknowledged_transactions_survive_kill_9_whole) {
  const unsigned seed = 20261126;
  const int rounds = 50;
  std::mt19937 rng(seed);
  testing::temp_dir dir;
  const std::string path = dir.path() + "/db";
  std::set<std::string> acked_all;
  const std::size_t vm = schema::get().class_of<api::vm>();
  const std::size_t vbd = schema::get().class_of<api::vbd>();

  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
    child c = spawn(path, round);
    ASSERT_GT(c.pid, 0);
    std::set<std::string> acked;
    std::string buffer;
    std::size_t kill_after = 1 + rng() % 60;
    read_acks(c.out, buffer, acked, kill_after);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));  // a random moment, not a wait
    ::kill(c.pid, SIGKILL);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    read_acks(c.out, buffer, acked, static_cast<std::size_t>(-1));  // acks written before the kill
    ::close(c.out);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended on its own (status " << status << ")";
    ASSERT_FALSE(acked.empty()) << "the child acknowledged nothing";
    acked_all.insert(acked.begin(), acked.end());

    auto db = database::open({path});
    ASSERT_TRUE(db.ok()) << db.error();
    auto snap = (*db)->snapshot();
    std::set<std::string> present;
    snap->for_each(vm, [&](const std::string& ref, const row& r) {
      const auto& rec = *static_cast<const api::vm*>(r.record.get());
      present.insert(rec.name_label);
      // Whole: the VBD and the map key of the same transaction are there too.
      EXPECT_EQ(rec.VBDs.size(), 1u) << rec.name_label;
      EXPECT_EQ(rec.other_config.count("round"), 1u) << rec.name_label;
      EXPECT_EQ(snap->refs_by_field(vbd, *schema::get().field_index(vbd, "VM"), ref).size(), 1u) << rec.name_label;
      return true;
    });
    EXPECT_EQ(snap->count(vbd), snap->count(vm));
    for (const auto& name : acked_all) EXPECT_EQ(present.count(name), 1u) << name << " was acknowledged but is gone";
  }
  std::printf("crash test: %d rounds, %zu acknowledged transactions, seed %u\n", rounds, acked_all.size(), seed);
}

}  // namespace
}  // namespace xapid::storage
