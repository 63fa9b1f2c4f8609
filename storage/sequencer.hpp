// The three steps of a commit: (1) prepare — the writer turns its transaction into a proposal
// whose every value is chosen (refs, uuids, the time); (2) order — a sequencer decides where each
// proposal goes in the log; (3) apply — the database validates and applies each proposal in that
// order, the same way on every member, and sets its outcome. The sequencer is the one piece that
// differs between a single host (local_sequencer: this host's own queue, every batch one synced
// write) and a pool (Raft orders the proposals of the master, every member applies them).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/result.hpp"
#include "proto/api/convert.hpp"
#include "storage/log_entry.hpp"

namespace xapid::storage {

// One unit of work in the log's order.
struct proposal {
  enum class kind {
    transaction,  // proposed here: its generation is given when it is applied, and only if it succeeds
    entry,        // ordered elsewhere: its generation is fixed, and it takes it even if it fails
    collect,      // forget tombstones up to `collect_up_to`, on every member at the same point
    install,      // replace the whole state with `checkpoint`
  } k = kind::transaction;
  std::vector<op> ops;
  std::int64_t time_ms = 0;  // fixed when prepared, so every member logs the same entry
  generation fixed_gen = 0;
  generation collect_up_to = 0;
  std::string checkpoint;
  // A transaction's idempotency key (empty: none): one whose key was applied before is not
  // applied again, it takes that first outcome (storage/keyed_outcomes.hpp). A member's forwarded
  // writes carry one, so that sending one again after a failover cannot apply it twice.
  std::string key;
  // The position of the replicated log's entry that carries it (0: this host's own order). The
  // database stores it in the write that applies the entry, so a restarted member replays only
  // the entries that follow; that write need not be synced, since the log holds the entry.
  std::uint64_t log_index = 0;
  // Set by apply: the generation the proposal took, or why it changed nothing.
  std::optional<result<generation, api::api_error>> outcome;
  // Set once it is unknown whether the proposal was applied (its master lost the lead, or
  // closed, or went, with it maybe appended): a keyed one may be sent again, and it is never
  // reported refused for certain after — only applied (its first outcome) or unknown.
  bool in_doubt = false;
  // Called by the sequencer, on the thread that applies, once the outcome is set (for a
  // proposal ordered without waiting): it must only hand the outcome on, never wait.
  std::function<void(proposal&)> applied;
};

// What the database gives its sequencer when ordering starts.
struct ordered_database {
  // Applies a batch of proposals in order and sets each one's outcome. A batch holding an
  // install holds nothing else.
  std::function<void(std::span<const std::shared_ptr<proposal>> batch)> apply;
  // The log_index of the last replicated entry applied (0: none); after a failed write it has
  // not moved. A replicated log replays only what follows it.
  std::function<std::uint64_t()> applied_log_index;
  // The whole state as export_checkpoint writes it, for a log that compacts itself into snapshots.
  std::function<std::string()> checkpoint;
};

class sequencer {
 public:
  virtual ~sequencer() = default;
  // Starts ordering: from now on `db.apply` is called with each batch, on one thread, in order.
  // Fails, saying why, when the order cannot be kept (e.g. a replicated log that cannot start).
  virtual result<void, std::string> start(ordered_database db) = 0;
  // Orders `p` and returns once it has been applied (its outcome is set); false, changing
  // nothing, once the sequencer is stopping.
  virtual bool order_and_wait(const std::shared_ptr<proposal>& p) = 0;
  // Orders `p` and returns at once; its `applied` is called once it has been applied. False,
  // changing nothing and calling nothing, once the sequencer is stopping.
  virtual bool order(const std::shared_ptr<proposal>& p) = 0;
  // Applies everything already ordered, then stops.
  virtual void stop() = 0;
};

// One host's own order: proposals are applied in the order they arrive, and everything waiting
// when a batch begins goes into it (group commit: one synced write acknowledges the batch).
class local_sequencer final : public sequencer {
 public:
  explicit local_sequencer(std::size_t max_batch = 1024) : max_batch_(max_batch < 1 ? 1 : max_batch) {}
  ~local_sequencer() override { stop(); }

  result<void, std::string> start(ordered_database db) override;
  bool order_and_wait(const std::shared_ptr<proposal>& p) override;
  bool order(const std::shared_ptr<proposal>& p) override;
  void stop() override;

 private:
  // Queues `p`; its place in arrival order, or 0 when stopping.
  std::uint64_t enqueue(const std::shared_ptr<proposal>& p);
  void loop();

  const std::size_t max_batch_;
  std::function<void(std::span<const std::shared_ptr<proposal>>)> apply_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::uint64_t, std::shared_ptr<proposal>>> queue_;
  std::uint64_t queued_ = 0;
  // Every proposal up to this one in arrival order has its outcome: one wake-up for a whole
  // batch, since a futex call per writer would keep the next batch waiting. Waiters block at
  // once (a condition variable, not std::atomic::wait, whose spin of sched_yield calls cost a
  // quarter of the CPU with 64 writers waiting: the applying thread waited behind them).
  std::mutex applied_mu_;
  std::condition_variable applied_cv_;
  std::uint64_t applied_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace xapid::storage
