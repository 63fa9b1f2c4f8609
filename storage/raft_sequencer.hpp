// A pool's order: the master's proposals go through Raft (canonical libraft 0.15 and its libuv
// disk I/O; our transport, which admits only peers that prove they hold the pool's secret:
// raft_transport.hpp) and every member applies the same entries in the same order, so each
// holds a live, complete replica. A pool of one voter orders exactly as a single host does.
//
// One thread per instance runs its own libuv loop, and everything Raft does runs there: the
// database's apply (the FSM), snapshots, membership changes. Other threads hand work over through
// a queue and a wake-up. A batch of proposals that arrived together becomes one Raft entry (group
// commit). A caller is acknowledged once its entry is committed and applied here.
//
// A member's writes are forwarded to the master (raft_options::forward), each with an
// idempotency key: one whose master died before it answered goes again to the next master, and
// the database applies a key once (storage/keyed_outcomes.hpp).
//
// Not yet: Raft's bytes after the handshake have no integrity nor secrecy of their own;
// snapshots are taken on the loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/sequencer.hpp"

namespace xapid::storage {

struct raft_member {
  std::uint64_t id = 0;  // non-zero, never reused for another member
  std::string address;   // "IPv4:port"
};

// What the master answered for a member's proposal it ordered: the log entry that carries it
// and the outcome it had there; or, when the master could not be asked or did not answer, why.
struct forwarded_answer {
  std::uint64_t log_index = 0;  // 0: no answer (see `outcome`)
  result<generation, api::api_error> outcome = fail(api::api_error{});
  // Nothing says whether it was applied (the master went, or lost the lead, with it appended):
  // the member sends it again, with its idempotency key, to the master it learns of.
  bool unknown = false;
};
// Hands a member's encoded proposal to the master (at its Raft id and address) and calls `done`
// once with the answer, from any thread; it must not block the calling (loop) thread.
using forward_fn = std::function<void(std::string encoded, const raft_member& master, std::function<void(forwarded_answer)> done)>;

struct raft_options {
  raft_member self;
  std::string dir;  // Raft's own directory (log, snapshots, term and vote): nothing else may live there
  // Required: the pool's secret (32 bytes) and id (its uuid's 16 bytes). A peer's Raft
  // connection is refused unless it proves it holds both and its id is in this member's
  // configuration or in `admitted`.
  std::string pool_secret;
  std::string pool_id;
  // Members that may connect although the configuration does not name them yet: a member that
  // joins has no log until the master's first entries arrive, so it admits those it was told of.
  std::vector<std::uint64_t> admitted;
  std::chrono::milliseconds handshake_deadline{5000};  // for a Raft connection's handshake, either way
  // The voters of a new pool, `self` among them, written when `dir` holds no log yet (and
  // ignored once it does). Empty: a member that waits, with no log, to be added by a leader.
  std::vector<raft_member> bootstrap;
  // A configuration forced onto an existing log before it starts (libraft's raft_recover): the
  // survivor of a pool that lost its majority makes itself the only voter
  // (pool.emergency_transition_to_master). Never on two members of one pool.
  std::vector<raft_member> recover;
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  unsigned snapshot_threshold = 4096;  // entries applied between snapshots (each holds the whole database)
  unsigned snapshot_trailing = 2048;   // entries kept behind a snapshot, for members a little behind (at least 1)
  // How long the leader waits for a member to take a snapshot before sending it again (also
  // after it was sent to a member that was down: that member waits this long once back).
  unsigned install_snapshot_timeout_ms = 30000;
  std::size_t max_batch = 1024;        // proposals in one entry
  // Entries appended and not yet applied; proposals that come meanwhile gather for the next.
  // More than one: with one, a round of the pool's disks and network carried only what had
  // gathered during the round before, and the writers that came just after it waited two rounds
  // (pool_bench, 64 clients on the master: 0.64-0.88x the single host with 1, 0.90-1.35x with 4).
  std::size_t max_entries_in_flight = 4;
  std::size_t max_batch_bytes = 1u << 20;
  // One proposal larger than this is refused: an entry must fit in a log segment (8 MiB).
  std::size_t max_proposal_bytes = 4u << 20;
  // How long a proposal waits for a leader while none is known (an election under way).
  std::chrono::milliseconds leader_wait{3000};
  // How long a deposed leader waits to learn whether a proposal it had appended was applied,
  // before it answers that the outcome is unknown.
  std::chrono::milliseconds in_doubt_limit{5000};
  // A member that is not the master orders its own writes through it (the pool's Propose call);
  // without one, they are refused with HOST_IS_SLAVE.
  forward_fn forward;
  // How long a member goes on sending a write whose outcome its master could not tell to the
  // masters it learns of (each time with the write's idempotency key, so it is applied at most
  // once); after that its writer is told the outcome is unknown.
  std::chrono::milliseconds forward_retry{10000};
};

enum class raft_role { voter, standby, spare };

struct raft_server {
  raft_member member;
  raft_role role = raft_role::spare;
  std::uint64_t match_index = 0;  // on the leader: the last entry it knows this server holds
};

struct raft_status {
  enum class role_state { unavailable, follower, candidate, leader } state = role_state::unavailable;
  raft_member leader;                 // id 0 while none is known
  // This member leads and has applied every entry committed before its term (its barrier is
  // applied): reads here see every acknowledged write, and proposals are taken.
  bool ready = false;
  std::uint64_t term = 0;
  std::uint64_t last_index = 0;       // of the local log
  std::uint64_t commit_index = 0;     // the last entry known committed
  std::uint64_t last_applied = 0;     // Raft's (commands, configurations and barriers)
  std::uint64_t applied_log_index = 0;  // the database's: the last command entry it holds
  std::uint64_t snapshot_index = 0;     // of the last snapshot this member took or installed (0: none yet)
  std::vector<raft_server> configuration;  // the log's latest (appended, maybe not yet committed)
};

class raft_sequencer final : public sequencer {
 public:
  explicit raft_sequencer(raft_options options);
  ~raft_sequencer() override;

  result<void, std::string> start(ordered_database db) override;
  bool order_and_wait(const std::shared_ptr<proposal>& p) override;
  bool order(const std::shared_ptr<proposal>& p) override;
  // Waits (bounded) for what is ordered to be applied, then leaves the pool's traffic. A
  // proposal still in flight then has an unknown outcome, and says so.
  void stop() override;

  raft_status status() const;
  // status().ready, without a copy of the status: this member leads with everything applied.
  bool ready() const noexcept;

  // On the master: orders a proposal a member encoded and forwarded; `done` gets the entry that
  // carries it and its outcome there, on the loop thread (it must only hand them on). Only
  // transactions are taken; anything else, or bytes that are not a proposal, get an error. With
  // `sender` (the member's Raft id, known from its certificate), a key must be one that member
  // makes (its id, then a counter): none may take another member's key and so suppress its write.
  // `vet`, when given, may refuse the decoded proposal (what a member may write: the pool's
  // rule, pool/membership), which is then answered with its error and not ordered.
  void order_forwarded(std::string encoded, std::function<void(forwarded_answer)> done,
                       std::optional<std::uint64_t> sender = std::nullopt,
                       const std::function<api::status(const proposal&)>& vet = {});

  // Membership, on the leader (otherwise HOST_IS_SLAVE-like failures naming the leader). One
  // change at a time; each returns once its configuration entry is committed. `add` makes a
  // spare (no entries); `assign` gives a role: standby (a replica without a vote), or voter
  // (after catch-up rounds).
  result<void, std::string> add(const raft_member& m, std::chrono::milliseconds timeout);
  result<void, std::string> assign(std::uint64_t id, raft_role role, std::chrono::milliseconds timeout);
  result<void, std::string> remove(std::uint64_t id, std::chrono::milliseconds timeout);
  // Hands the lead to voter `id` (Raft's leadership transfer: it is caught up, then told to
  // stand at once); ok once this member sees it lead. Proposals made meanwhile wait for it.
  result<void, std::string> transfer(std::uint64_t id, std::chrono::milliseconds timeout);

  struct loop;  // the loop thread's state (raft_sequencer.cpp)

 private:
  std::unique_ptr<loop> loop_;
};

}  // namespace xapid::storage
