// libraft 0.15's commit rule made safe from outside the library: a decorator of its `raft_io`
// through which a new leader appends an entry of its own term at once, followers' replies wait
// until that entry is stored, and a follower claims only the part of its log a leader proved.
//
// Why (canonical raft 0.15, src/replication.c; upstream fixed the rule in 0.17.1, 524f735 and
// 29bb302): a leader decides commitment only in `replicationQuorum(r, r->last_stored)`, called
// after its own disk write (`appendLeaderCb`) and after each follower's AppendEntries result
// (`replicationUpdate`). It counts the voters whose match index reaches `last_stored` and commits
// it when they are a majority, checking only `term <= current_term`. Right after an election
// `last_stored` is an entry of an older term, so a majority of copies commits it — the Raft
// paper's Figure 8: a later leader whose last entry has a newer term can still be elected without
// it and overwrite it after this one applied it (two members apply different entries at one
// index; an acknowledged write vanishes). Counting is safe once `last_stored` is of the leader's
// own term: committing an entry of one's own term commits everything before it.
//
// So, for each term T in which this member leads:
//  (a) it appends a barrier (an entry of term T) as soon as it sees itself lead;
//  (b) every follower's result of term T is held back while `last_stored` is below the term's
//      first index (the log's last index when the leadership was seen, plus one: a leader only
//      appends, so every entry after it is of term T). A follower's match index only rises
//      through such results (`progressMaybeUpdate`) and starts at 0 for a new leader
//      (`progressBuildArray`): until then no majority can be counted, and from then on
//      `last_stored` is of term T;
//  (c) a follower's success answer claims no more than the request it answers proved — its
//      previous index plus its entries. 0.15 answers with its whole stored length
//      (`result.last_log_index = r->last_stored`), which may end in stale entries of an older
//      term past what the leader sent, and the leader takes that, capped at its own last index,
//      as the follower's match: an answer to a heartbeat, arriving once the barrier is appended,
//      made a leader count a stale entry as its barrier (and never resend it: the follower was
//      stuck for good). Every member runs the guard, so every answer is capped.
// All three are needed, and the fixture test shows each gap: without (a) a leader with nothing
// to propose holds results for ever (and steps down, hearing no majority); without (b) a barrier
// still being written leaves the old entry as `last_stored` to be counted (a disk slower than a
// heartbeat and a round trip); without (c) held answers overstate matches. A leader that is the
// only voter commits its log at election (`convertToLeader`), as it may.
//
// The barrier is applied once everything before it is: after `settled()`, everything any earlier
// master committed is applied here, and a proposal ordered now follows all of it.
//
// Also: a leader refuses AppendEntries and InstallSnapshot of its own term, which only another
// pool's leader can send, and which 0.15 would take for its own leader's, corrupting its state.
#pragma once

extern "C" {  // libraft's headers do not say so themselves
#include <raft.h>
}

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace xapid::storage {

class raft_io_guard {
 public:
  raft_io_guard() = default;
  raft_io_guard(const raft_io_guard&) = delete;
  raft_io_guard& operator=(const raft_io_guard&) = delete;

  // Puts the guard between `r` and the I/O that raft_init gave it, after raft_init and before
  // raft_start. `r->io->impl` is then the guard (the fixture's step_until_delivered, which reads
  // it, does not work on a guarded member); the guard must live until raft_close's callback ran.
  void attach(struct raft* r);
  // Notices a leadership that began outside an I/O callback (a sole voter elects itself inside
  // raft_start) and retries a barrier that could not be appended. Call after each loop turn.
  void poll();
  // This member leads, and the barrier of its term is applied here.
  bool settled() const;

  // Results held back at most; past it the oldest is dropped (Raft tolerates a lost message).
  static constexpr std::size_t max_held = 4096;

 private:
  struct held_message {
    raft_message message;
    std::string address;  // the transport's copy lives only during its callback
  };
  struct append_call;
  struct barrier_call;

  static raft_io_guard& of_inner(struct raft_io* inner);
  static raft_io_guard& of_outer(struct raft_io* outer);
  static void copy_errmsg(raft_io_guard& g) noexcept;

  // The raft_io methods that are the inner I/O's own.
  template <auto method, class... Args>
  static int forward(struct raft_io* io, Args... args);
  static raft_time time(struct raft_io* io);
  static int random(struct raft_io* io, int min, int max);
  // Those that are wrapped.
  static int start(struct raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
  static int send(struct raft_io* io, struct raft_io_send* req, const struct raft_message* message, raft_io_send_cb cb);
  static void close(struct raft_io* io, raft_io_close_cb cb);
  static int append(struct raft_io* io, struct raft_io_append* req, const struct raft_entry entries[], unsigned n,
                    raft_io_append_cb cb);

  // The inner I/O's callbacks.
  static void on_tick(struct raft_io* inner);
  static void on_recv(struct raft_io* inner, struct raft_message* message);
  static void on_closed(struct raft_io* inner);
  static void on_appended(struct raft_io_append* req, int status);
  static void on_barrier(struct raft_barrier* req, int status);

  void notice_leadership();
  bool from_a_leader_of_my_term(const raft_message& m) const;
  static void discard(struct raft_message& m);
  bool must_hold(const raft_message& m) const;
  void release();
  void after_callback() {
    notice_leadership();
    release();
  }

  struct raft_io io_ {};  // what raft calls
  struct raft_io* inner_ = nullptr;
  struct raft* r_ = nullptr;
  raft_io_tick_cb tick_ = nullptr;
  raft_io_recv_cb recv_ = nullptr;
  raft_io_close_cb close_ = nullptr;
  raft_term led_term_ = 0;           // the last term this member was noticed leading
  raft_index own_first_index_ = 0;   // in led_term_: entries from here on are of that term
  bool barrier_appended_ = false;    // in led_term_
  raft_term settled_term_ = 0;       // the term whose barrier was applied here
  raft_term refused_term_ = 0;       // the last term another leader's message was refused in (logged once)
  std::deque<held_message> held_;
  // While raft answers a leader's request: the index up to which that request proved this log
  // equal to the leader's.
  std::optional<raft_index> answering_;
};

}  // namespace xapid::storage
