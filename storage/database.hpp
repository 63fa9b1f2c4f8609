// The pool database: typed in-memory tables over RocksDB. A commit is prepared here (a proposal
// with every value chosen), ordered by a sequencer (storage/sequencer.hpp: this host's own, or
// Raft's in a pool) and applied here, in that order, at its generation: acknowledged only once
// the entry and the rows it changed are in RocksDB's synced WAL; a batch shares one fsync.
// Readers take an immutable snapshot and never wait for the writer.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/ids.hpp"
#include "common/latency_histogram.hpp"
#include "common/result.hpp"
#include "storage/keyed_outcomes.hpp"
#include "storage/sequencer.hpp"
#include "storage/state.hpp"

namespace rocksdb {
class DB;
}

namespace xapid::storage {

// The on-disk format this build reads and writes. A database of a newer version is refused.
inline constexpr int schema_version = 1;

// The operations of one transaction; refs of new objects are chosen here, before the entry.
class transaction {
 public:
  explicit transaction(id_source& ids) : ids_(&ids) {}

  // Creates an object from a (possibly partial) record; returns its new ref. A missing uuid is
  // chosen at commit.
  std::string create(std::size_t cls, wire::value record);
  template <class R>
  std::string create(const R& rec) {
    return create(schema::get().class_of<R>(), api::to_value(rec));
  }
  void set(std::size_t cls, std::string ref, std::size_t field, wire::value v);
  // Sets the fields in which `after` differs from `before` (the row as read from a snapshot).
  void update(std::size_t cls, const std::string& ref, const void* before, const void* after);
  template <class R>
  void update(const std::string& ref, const R& before, const R& after) {
    update(schema::get().class_of<R>(), ref, &before, &after);
  }
  void add_to_set(std::size_t cls, std::string ref, std::size_t field, wire::value elem);
  void remove_from_set(std::size_t cls, std::string ref, std::size_t field, wire::value elem);
  void add_to_map(std::size_t cls, std::string ref, std::size_t field, std::string key, wire::value v);
  void remove_from_map(std::size_t cls, std::string ref, std::size_t field, std::string key);
  void destroy(std::size_t cls, std::string ref);
  // Preconditions, checked when the transaction is applied (not when it is built): the row was
  // not modified since generation `modified` (as read from a snapshot), or its field holds
  // `value`. Otherwise the whole transaction fails with `error` and changes nothing — so two
  // writers that checked the same row can never both commit on what they saw.
  void expect_unchanged(std::size_t cls, std::string ref, generation modified, const api::api_error& error);
  void expect_field(std::size_t cls, std::string ref, std::size_t field, wire::value v, const api::api_error& error);
  // Sets a private value (database::private_value): replicated like a row, read by no API call.
  void set_private(std::string name, std::string value);

  bool empty() const noexcept { return ops_.empty(); }
  std::vector<op>& ops() noexcept { return ops_; }

 private:
  id_source* ids_;
  std::vector<op> ops_;
};

struct database_options {
  std::string path;
  clock* clk = nullptr;      // default: a real_clock owned by the database
  id_source* ids = nullptr;  // default: a randomly seeded id_source owned by the database
  std::size_t feed_generations = 100000;  // how far back the change feed answers
  std::size_t log_entries = 100000;       // how many recent log entries are kept for replicas
  // How many deleted rows are kept as tombstones (for the snapshots of "del" events); older ones
  // are forgotten as new ones come, so that deleting costs no memory for ever.
  std::size_t tombstones_kept = 10000;
  // How many idempotency keys of applied proposals are kept (storage/keyed_outcomes.hpp): a
  // member sends a write again within seconds of a failover, when thousands may have come since.
  // Part of what every member applies alike: the same on every member of a pool.
  std::size_t keyed_outcomes_kept = 131072;
  // Orders the commits (default: a local_sequencer, this host's own order).
  std::shared_ptr<sequencer> order = nullptr;
};

struct changes_since_result {
  generation gen = 0;           // the generation the answer is complete up to
  std::vector<change> changes;  // in generation order
  bool lost = false;            // `after` is older than the feed keeps: re-read everything
};

// The state a checkpoint (database::export_checkpoint) holds, decoded; `each_row` sees every
// row's stored bytes on the way, and `keyed` (when given) gets the idempotency keys it kept. A
// pool's master reads a joining host's database this way.
result<std::shared_ptr<state>, std::string> read_checkpoint(
    std::string_view bytes, const std::function<void(std::size_t cls, const std::string& ref, std::string_view encoded)>& each_row = {},
    keyed_outcomes* keyed = nullptr, std::map<std::string, std::string, std::less<>>* private_values = nullptr);

class database {
 public:
  // Opens or creates the database at options.path. Errors name the file and what is wrong.
  static result<std::unique_ptr<database>, std::string> open(database_options options);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  std::shared_ptr<const state> snapshot() const;
  generation current_generation() const { return snapshot()->gen(); }
  // The last entry of the pool's log this database has applied: after commit returns, at least
  // the entry that carried it.
  std::uint64_t applied_log_index() const noexcept { return applied_log_index_.load(); }
  id_source& ids() noexcept { return *ids_; }
  transaction begin() { return transaction(*ids_); }

  // Validates, logs and applies the transaction atomically; returns its generation once durable.
  result<generation, api::api_error> commit(transaction t);
  // The same without waiting: `done` gets the outcome once it is known, on the thread that
  // applies (or at once, on the caller's, when the database is closing): it must only hand the
  // outcome on, never wait.
  using commit_done = std::function<void(result<generation, api::api_error>)>;
  void commit_async(transaction t, commit_done done);

  // What commits cost here (GET /metrics): each waited commit's time from its call to its
  // outcome, and how many proposals the applied batches held.
  struct commit_stats {
    latency_histogram::reading latency;
    std::uint64_t batches = 0, proposals = 0;
  };
  commit_stats stats() const noexcept {
    return {commit_latency_.read(), batches_.load(std::memory_order_relaxed), batched_.load(std::memory_order_relaxed)};
  }

  // Changes committed after generation `after`, waiting up to `timeout` while there are none.
  changes_since_result changes_since(generation after, std::chrono::milliseconds timeout) const;
  // Wakes every waiter of changes_since now and from now on (the daemon is stopping).
  void stop_waiters();
  // Calls `listener` with the new generation after each commit is published, on the thread
  // that applies (the sequencer's): it must only hand work on, never wait. Answers an id for
  // remove_publish_listener, which its owner calls before it goes (no call is then under way).
  std::size_t on_publish(std::function<void(generation)> listener);
  void remove_publish_listener(std::size_t id);

  // Replication: a consistent checkpoint of every row, and the log entries after a generation.
  std::string export_checkpoint() const;
  result<std::vector<std::string>, std::string> export_entries_after(generation g) const;
  // A replica: install a checkpoint (it replaces the whole state: a fresh database's, or a
  // lagging one's; never with an older one), then apply entries in order. Applying is
  // idempotent at an entry's generation (one already applied is skipped), and an entry whose
  // operations fail validation still takes its generation, changing nothing, as it does on
  // every member: apply_entry fails only for bytes that are not an entry or leave a gap.
  result<void, std::string> import_checkpoint(std::string_view bytes);
  result<void, std::string> apply_entry(std::string_view bytes);

  // A value the pool replicates but no API call reads (transaction::set_private), if set.
  std::optional<std::string> private_value(std::string_view name) const;
  static constexpr std::size_t max_private_name_bytes = 64, max_private_value_bytes = 4096;

  // Forgets tombstones deleted at or before generation `up_to` (their events have been served).
  result<void, std::string> collect_tombstones(generation up_to);

 private:
  database() = default;
  // Apply: the only place that validates and changes the state, called by the sequencer.
  void apply(std::span<const std::shared_ptr<proposal>> batch);
  void apply_install(proposal& p);
  void publish(std::shared_ptr<const state> next, std::vector<change> changes);
  result<void, std::string> submit_and_wait(std::shared_ptr<proposal> p);
  result<generation, api::api_error> order_and_wait(std::shared_ptr<proposal> p);

  database_options options_;
  std::unique_ptr<clock> own_clock_;
  std::unique_ptr<id_source> own_ids_;
  clock* clock_ = nullptr;
  id_source* ids_ = nullptr;
  std::unique_ptr<rocksdb::DB> db_;

  mutable std::mutex state_mu_;
  mutable std::condition_variable state_cv_;
  std::shared_ptr<const state> current_;
  std::deque<change> feed_;
  generation feed_start_ = 0;  // the feed holds every change of generations > feed_start_
  bool waiters_stopped_ = false;
  std::mutex listeners_mu_;
  std::map<std::size_t, std::function<void(generation)>> publish_listeners_;
  std::size_t next_listener_ = 0;

  // The tombstones in the order their rows were deleted (apply's; at open and
  // import_checkpoint rebuilt from the rows). An entry whose row was collected otherwise
  // (collect_tombstones) is skipped when reached.
  struct tombstone {
    generation deleted;
    std::size_t cls;
    std::string ref;
  };
  std::deque<tombstone> tombstones_;
  void index_tombstones(const state& s);

  // The idempotency keys applied lately, and their outcomes: apply's, read by export_checkpoint
  // under keyed_mu_ (which apply holds while it adds keys and publishes their state, so that a
  // checkpoint holds the keys of exactly the rows it holds).
  mutable std::mutex keyed_mu_;
  std::unique_ptr<keyed_outcomes> keyed_;
  // The private values (transaction::set_private), under keyed_mu_ as the keys are.
  std::map<std::string, std::string, std::less<>> private_;

  std::shared_ptr<sequencer> order_;
  // The replicated log's position of the last entry applied (proposal::log_index), as stored.
  std::atomic<std::uint64_t> applied_log_index_{0};
  latency_histogram commit_latency_;
  std::atomic<std::uint64_t> batches_{0}, batched_{0};
};

}  // namespace xapid::storage
