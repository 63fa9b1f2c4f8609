#include "storage/raft_sequencer.hpp"

#include <uv.h>
extern "C" {  // libraft's headers do not say so themselves
#include <raft.h>
#include <raft/uv.h>
}

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/clock.hpp"
#include "common/log_host.hpp"
#include "storage/raft_transport.hpp"
#include "storage/raft_entries.hpp"
#include "storage/raft_io_guard.hpp"

namespace xapid::storage {
namespace {

using steady = std::chrono::steady_clock;

// `n` bytes from raft_malloc, zeroed past `used`; nullptr when out of memory.
char* raft_bytes(std::size_t n, std::size_t used) {
  auto* out = static_cast<char*>(raft_malloc(n));
  if (out) std::memset(out + used, 0, n - used);
  return out;
}

// A member whose replica cannot follow the log any more stops rather than diverge: its log is
// intact, and a restart replays what the database misses.
[[noreturn]] void fail_stop(const std::string& why) {
  spdlog::critical("raft.fail_stop reason=\"{}\"", why);
  std::abort();
}

api::api_error outcome_unknown() {
  return api::errors::INTERNAL_ERROR(
      "the pool master changed while this change was being committed: it may or may not have been applied");
}
api::api_error database_closing() { return api::errors::INTERNAL_ERROR("the database is closing"); }

}  // namespace

struct raft_sequencer::loop {
  explicit loop(raft_options o) : opt(std::move(o)) {}

  const raft_options opt;
  ordered_database db;

  // Shared with other threads, under mu. `running`: the loop thread is up and drains `arrived`.
  std::mutex mu;
  std::deque<std::shared_ptr<proposal>> arrived;
  std::deque<std::function<void()>> tasks;
  bool running = false, stopping = false;
  std::timed_mutex changes;  // held by the caller of a membership change until it ends
  mutable std::mutex status_mu;
  std::atomic<bool> ready_now{false};  // status.ready, read without the lock
  raft_status status;
  std::thread thread;

  // The loop thread's own.
  uv_loop_t uv{};
  uv_async_t wake{};
  uv_check_t check{};
  std::unique_ptr<raft_transport> transport;  // until libraft closed it
  raft_io io{};
  raft_io_guard guard;  // between raft and `io`: 0.15's commit rule made safe (raft_io_guard.hpp)
  raft_fsm fsm{};
  struct raft r {};
  raft_tracer tracer{};
  struct waiting {
    waiting(std::shared_ptr<proposal> proposed, steady::time_point at, bool forwarded_here = false)
        : p(std::move(proposed)), since(at), from_member(forwarded_here) {}
    std::shared_ptr<proposal> p;
    steady::time_point since;
    std::string encoded;  // once encoded (its ops moved out), for an entry that had no room left
    bool from_member = false;  // forwarded to this host: never forwarded on (no loops)
    // Sent again to the master no sooner than this: the host asked last was no longer it.
    std::optional<steady::time_point> not_before;
    // Set once a master could not tell whether it applied it: sent again (with its key) until
    // then, and any failure after is "unknown", never "not applied".
    std::optional<steady::time_point> unknown_until;
    // When it stops waiting for a master.
    steady::time_point give_up_at(std::chrono::milliseconds leader_wait) const {
      return unknown_until ? *unknown_until : since + leader_wait;
    }
  };
  std::deque<waiting> queue;
  // Entries appended here as leader and not yet settled, by Raft index. In doubt: this member
  // lost its leadership (or closed) with the entry appended; only the entry applied at that
  // index tells whether it was committed.
  struct in_flight {
    std::uint64_t nonce = 0;
    std::vector<std::shared_ptr<proposal>> proposals;
    std::optional<steady::time_point> in_doubt_since;
    bool members_wait = false;  // it carries members' proposals: they answer once it is applied there
  };
  std::map<std::uint64_t, in_flight> pending;
  // A member's own proposals the master has answered for, by the entry that carries them: each
  // completes once that entry is applied here too, so its writer reads what it wrote.
  struct answered {
    std::shared_ptr<proposal> p;
    result<generation, api::api_error> outcome;
  };
  std::multimap<std::uint64_t, answered> forwarded;
  // Asked of the master, not answered yet. An answer may come after this loop is gone: it
  // finds the loop through `link`, which is emptied when the loop thread ends.
  // Each keeps its bytes: a host that answers it is not the master has not ordered it, and it
  // goes again to the one this member learns leads.
  std::map<const proposal*, waiting> asking;
  struct shared_link {
    std::mutex mu;
    loop* l = nullptr;
  };
  std::shared_ptr<shared_link> link = std::make_shared<shared_link>();
  std::uint64_t applied = 0;  // the database's applied_log_index
  std::uint64_t next_nonce = std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32);
  // A forwarded write's idempotency key: this member's id and this counter (16 bytes), unique in
  // the pool since ids are never reused and the counter starts anywhere at each start.
  std::uint64_t next_key = std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32);
  bool closing = false;
  bool first_snapshot_pending = false;
  bool members_told_late = false;  // an entry members wait for was applied: tell_members_now
  std::optional<steady::time_point> stop_deadline;

  struct apply_request {
    struct raft_apply req {};
    loop* owner = nullptr;
    std::uint64_t nonce = 0;
  };
  struct change_request {
    raft_change req{};
    loop* owner = nullptr;
    std::shared_ptr<std::promise<result<void, std::string>>> done;
  };

  // ---------------------------------------------------------------- outcomes

  void finish(const std::vector<std::shared_ptr<proposal>>& group) {
    // Once: order_and_wait's callback wakes a caller whose frame is gone after.
    for (const auto& p : group)
      if (auto applied = std::exchange(p->applied, nullptr)) applied(*p);
  }
  // A proposal once in doubt (a master that may have applied it went) is never refused for
  // certain after: whatever stops it later, its outcome is unknown — also when this member, a
  // leader meanwhile, loses the entry it put it in.
  void fail_group(const std::vector<std::shared_ptr<proposal>>& group, const api::api_error& why) {
    for (const auto& p : group) p->outcome = fail(p->in_doubt ? outcome_unknown() : why);
    finish(group);
  }
  void fail_one(const std::shared_ptr<proposal>& p, const api::api_error& why) { fail_group({p}, why); }
  // Its outcome cannot be known here: maybe applied, maybe not.
  void fail_in_doubt(const std::vector<std::shared_ptr<proposal>>& group) {
    for (const auto& p : group) p->in_doubt = true;
    fail_group(group, outcome_unknown());
  }

  std::string leader_address() {
    raft_id id = 0;
    const char* address = nullptr;
    raft_leader(&r, &id, &address);
    return id != 0 && id != opt.self.id && address ? address : "";
  }
  // Never entered the log, or lost its place in it: the caller may try again on the master.
  api::api_error not_master() { return api::errors::HOST_IS_SLAVE(leader_address()); }

  // Settles what is pending at or below `index` once the entry applied there is known: ours
  // (`entry`, matched by proposer and nonce) is done with the outcomes it had; anything else
  // there, or at a lower index not settled yet (an entry there was not a command of ours), was
  // never committed.
  void settle_up_to(std::uint64_t index, decoded_entry* entry) {
    while (!pending.empty() && pending.begin()->first <= index) {
      auto node = pending.extract(pending.begin());
      in_flight& f = node.mapped();
      const bool ours = entry && node.key() == index && entry->proposer == opt.self.id && entry->nonce == f.nonce &&
                        entry->proposals.size() == f.proposals.size();
      if (!ours) {
        fail_group(f.proposals, not_master());
        continue;
      }
      for (std::size_t i = 0; i < f.proposals.size(); ++i) {
        f.proposals[i]->outcome = std::move(entry->proposals[i]->outcome);
        f.proposals[i]->log_index = index;
      }
      finish(f.proposals);
      members_told_late = members_told_late || f.members_wait;
    }
  }
  // The member's proposals whose entries are applied here now (all of them when closing: the
  // master's answer is their outcome).
  void settle_forwarded(std::uint64_t up_to) {
    while (!forwarded.empty() && forwarded.begin()->first <= up_to) {
      auto node = forwarded.extract(forwarded.begin());
      node.mapped().p->outcome = std::move(node.mapped().outcome);
      node.mapped().p->log_index = node.key();
      finish({node.mapped().p});
    }
  }
  void on_forwarded(const std::shared_ptr<proposal>& p, forwarded_answer a) {
    auto node = asking.extract(p.get());
    if (node.empty()) return;  // settled already (the log closed meanwhile)
    waiting& w = node.mapped();
    const auto now = monotonic_now();
    // The master it asked went (or lost the lead) with it maybe applied: sent again, with the
    // same key, to the master this member learns of; the log applies a key once, and the writer
    // gets the outcome the first one had.
    if (a.unknown) w.p->in_doubt = true;
    if (a.unknown && !closing) {
      if (!w.unknown_until) w.unknown_until = now + opt.forward_retry;
      if (now < *w.unknown_until) {
        w.not_before = now + std::chrono::milliseconds(opt.heartbeat_timeout_ms);
        queue.push_front(std::move(w));
        return;
      }
    }
    // HOST_IS_SLAVE from the host asked: it was deposed before it took the proposal, or its
    // entry lost its place in the log; either way never applied there. Asked again once this
    // member knows the new master (within the wait any proposal has for one), it is not the
    // caller's failure: a master's death costs its members' writers a pause, not an error.
    const bool not_ordered = a.log_index == 0 && !a.outcome && a.outcome.error().code == api::error_code::HOST_IS_SLAVE;
    if (not_ordered && !closing && now < w.give_up_at(opt.leader_wait)) {
      w.not_before = now + std::chrono::milliseconds(opt.heartbeat_timeout_ms);
      queue.push_front(std::move(w));
      return;
    }
    // A refusal by the host asked last says nothing of where an earlier attempt went.
    if (w.unknown_until && a.log_index == 0) return fail_one(w.p, outcome_unknown());
    if (a.log_index == 0 || a.log_index <= applied) {
      p->outcome = std::move(a.outcome);
      p->log_index = a.log_index;
      return finish({p});
    }
    forwarded.emplace(a.log_index, answered{p, std::move(a.outcome)});
  }
  // A member hands its own proposal to the master; the answer comes back through the loop.
  void forward(waiting& w, const raft_member& master) {
    if (w.encoded.empty()) {
      if (w.p->key.empty() && w.p->k == proposal::kind::transaction) {
        w.p->key.resize(16);
        for (int i = 0; i < 8; ++i) {
          w.p->key[i] = static_cast<char>(opt.self.id >> (8 * (7 - i)));
          w.p->key[8 + i] = static_cast<char>(next_key >> (8 * (7 - i)));
        }
        ++next_key;
      }
      w.encoded = encode_proposal(*w.p);
    }
    if (w.encoded.size() > opt.max_proposal_bytes)
      return fail_one(w.p, api::errors::INTERNAL_ERROR("the change is too large for one entry of the pool log (" +
                                                       std::to_string(w.encoded.size()) + " bytes; at most " +
                                                       std::to_string(opt.max_proposal_bytes) + ")"));
    std::string bytes = w.encoded;
    std::shared_ptr<proposal> p = w.p;
    asking.emplace(p.get(), std::move(w));
    opt.forward(std::move(bytes), master, [link = link, p](forwarded_answer a) {
      std::lock_guard hold(link->mu);
      if (!link->l) return;
      loop& l = *link->l;
      std::lock_guard lock(l.mu);
      if (!l.running) return;  // closing: it was settled as unknown
      l.tasks.push_back([&l, p, a = std::move(a)]() mutable { l.on_forwarded(p, std::move(a)); });
      uv_async_send(&l.wake);
    });
  }

  void settle_all_unknown(std::uint64_t up_to) {
    while (!pending.empty() && pending.begin()->first <= up_to) {
      fail_in_doubt(pending.begin()->second.proposals);
      pending.erase(pending.begin());
    }
  }

  // ---------------------------------------------------------------- the FSM

  void apply_entry(std::uint64_t index, std::string_view bytes) {
    if (index <= applied) return;  // a restart's replay of what the database already holds
    auto entry = decode_entry(bytes);
    if (!entry) fail_stop("the pool log's entry " + std::to_string(index) + " cannot be read: " + entry.error());
    for (auto& p : entry->proposals) p->log_index = index;
    try {
      db.apply(entry->proposals);
    } catch (const std::exception& e) {
      fail_stop("applying the pool log's entry " + std::to_string(index) + " failed: " + e.what());
    }
    if (db.applied_log_index() != index) {
      const auto& o = entry->proposals.front()->outcome;
      fail_stop("the database did not store the pool log's entry " + std::to_string(index) +
                (o && !o->ok() && !o->error().params.empty() ? ": " + o->error().params.front() : std::string()));
    }
    applied = index;
    settle_up_to(index, &*entry);
    settle_forwarded(index);
  }

  int take_snapshot(raft_buffer* bufs[], unsigned* n_bufs) {
    const std::uint64_t index = raft_last_applied(&r);
    const std::string checkpoint = db.checkpoint();
    auto* buf = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
    if (!buf) return RAFT_NOMEM;
    const std::size_t used = snapshot_bytes(checkpoint.size());
    buf->len = padded(used);
    buf->base = raft_bytes(buf->len, used);
    if (!buf->base) {
      raft_free(buf);
      return RAFT_NOMEM;
    }
    write_snapshot(static_cast<char*>(buf->base), index, checkpoint);
    *bufs = buf;
    *n_bufs = 1;
    return 0;
  }

  // A snapshot: at start (the database is normally past it already), or sent by the leader to a
  // member too far behind for entries. Installed through the database's install path.
  int restore(raft_buffer* buf) {
    const auto snapshot = read_snapshot(std::string_view(static_cast<const char*>(buf->base), buf->len));
    const bool well_formed = snapshot.has_value();
    const std::uint64_t index = well_formed ? snapshot->index : 0;
    int rv = 0;
    if (!well_formed) {
      spdlog::error("raft.snapshot.refused reason=\"not a xapid snapshot\"");
      rv = RAFT_MALFORMED;
    } else if (index > applied) {
      auto p = std::make_shared<proposal>();
      p->k = proposal::kind::install;
      p->checkpoint = std::string(snapshot->checkpoint);
      p->log_index = index;
      db.apply(std::span<const std::shared_ptr<proposal>>(&p, 1));
      if (!p->outcome || !p->outcome->ok() || db.applied_log_index() != index) {
        spdlog::error("raft.snapshot.refused index={} reason=\"{}\"", index,
                      p->outcome && !p->outcome->ok() && !p->outcome->error().params.empty() ? p->outcome->error().params[0]
                                                                                              : "not stored");
        rv = RAFT_IOERR;
      } else {
        applied = index;
        // Whatever of ours was pending up to there may or may not be in the snapshot.
        settle_all_unknown(index);
        settle_forwarded(index);
        spdlog::info("raft.snapshot.installed index={}", index);
      }
    }
    raft_free(buf->base);
    return rv;
  }

  // ---------------------------------------------------------------- ordering

  // Proposals become entries on the leader once its term's barrier is applied (everything an
  // earlier master committed is applied here then); elsewhere they are refused, or wait for an
  // election or for that barrier.
  void pump() {
    if (closing || queue.empty()) return;
    if (raft_state(&r) == RAFT_LEADER && r.transfer == nullptr && guard.settled()) {
      // Group commit: while entries are being committed, proposals gather for the next one.
      while (!queue.empty() && !closing && entries_in_flight() < opt.max_entries_in_flight) submit_entry();
      return;
    }
    raft_id leader = 0;
    const char* address = nullptr;
    raft_leader(&r, &leader, &address);
    const auto now = monotonic_now();
    while (!queue.empty()) {
      const bool elsewhere = leader != 0 && leader != opt.self.id;
      if (queue.front().not_before && now < *queue.front().not_before) return;
      if (elsewhere && opt.forward && !queue.front().from_member &&
          (queue.front().p->k == proposal::kind::transaction || queue.front().p->k == proposal::kind::collect)) {
        forward(queue.front(), {leader, address ? address : ""});
      } else if (elsewhere) {
        fail_one(queue.front().p, api::errors::HOST_IS_SLAVE(address ? address : ""));
      } else if (now >= queue.front().give_up_at(opt.leader_wait) || (stop_deadline && now >= *stop_deadline)) {
        fail_one(queue.front().p, api::errors::INTERNAL_ERROR("no pool master is ready (waited " +
                                                              std::to_string(opt.leader_wait.count()) + " ms)"));
      } else {
        return;  // an election is under way, or this new master's barrier: wait for it
      }
      queue.pop_front();
    }
  }

  std::size_t entries_in_flight() const {
    std::size_t n = 0;
    for (const auto& [index, f] : pending) n += f.in_doubt_since ? 0 : 1;
    return n;
  }

  // Takes what is queued, up to the batch limits, into one entry.
  void submit_entry() {
    std::vector<std::shared_ptr<proposal>> group;
    std::vector<std::string> pieces;
    std::size_t bytes = 0;
    bool members_wait = false;
    while (!queue.empty() && group.size() < opt.max_batch) {
      waiting& w = queue.front();
      if (w.p->k == proposal::kind::install) {
        fail_one(w.p, api::errors::INTERNAL_ERROR("in a pool, a checkpoint is installed by the pool log's snapshots"));
        queue.pop_front();
        continue;
      }
      if (w.encoded.empty()) w.encoded = encode_proposal(*w.p);
      if (w.encoded.size() > opt.max_proposal_bytes) {
        fail_one(w.p, api::errors::INTERNAL_ERROR("the change is too large for one entry of the pool log (" +
                                                  std::to_string(w.encoded.size()) + " bytes; at most " +
                                                  std::to_string(opt.max_proposal_bytes) + ")"));
        queue.pop_front();
        continue;
      }
      if (!group.empty() && bytes + w.encoded.size() > opt.max_batch_bytes) break;
      bytes += w.encoded.size();
      members_wait = members_wait || w.from_member;
      pieces.push_back(std::move(w.encoded));
      group.push_back(std::move(w.p));
      queue.pop_front();
    }
    if (group.empty()) return;

    const std::uint64_t nonce = next_nonce++;
    const std::string head = entry_head(opt.self.id, nonce, pieces.size());
    raft_buffer buf;
    const std::size_t used = entry_bytes(head.size(), bytes);
    buf.len = padded(used);
    buf.base = raft_bytes(buf.len, used);
    if (!buf.base) return fail_group(group, api::errors::INTERNAL_ERROR("out of memory for the pool log's entry"));
    write_entry(static_cast<char*>(buf.base), head, pieces, bytes);
    auto* req = new apply_request;
    req->owner = this;
    req->nonce = nonce;
    req->req.data = req;
    if (int rv = raft_apply(&r, &req->req, &buf, 1, on_applied); rv != 0) {
      raft_free(buf.base);
      delete req;
      return fail_group(group, rv == RAFT_NOTLEADER ? not_master()
                                                    : api::errors::INTERNAL_ERROR(std::string("the pool log refused the change: ") +
                                                                                  raft_strerror(rv)));
    }
    const std::uint64_t index = req->req.index;
    // An entry of ours still pending at this index was truncated from our log before we led
    // again: it was never committed.
    if (auto old = pending.find(index); old != pending.end()) {
      fail_group(old->second.proposals, not_master());
      pending.erase(old);
    }
    pending.emplace(index, in_flight{nonce, std::move(group), std::nullopt, members_wait});
  }

  // An entry that members wait for is applied here: they learn that it is committed from the
  // next message this leader sends them — when idle, a heartbeat, up to heartbeat_timeout_ms
  // later (a lone write through a member took 200 ms). A barrier is such a message now.
  // (After the loop's turn: never from within libraft's apply.)
  void tell_members_now() {
    members_told_late = false;
    if (raft_state(&r) != RAFT_LEADER || !queue.empty() || entries_in_flight() > 0) return;  // one goes soon anyway
    auto* req = new struct raft_barrier;
    req->data = nullptr;
    if (raft_barrier(&r, req, [](struct raft_barrier* b, int) { delete b; }) != 0) delete req;
  }

  static void on_applied(struct raft_apply* raw, int status, void* /*result*/) {
    auto* req = static_cast<apply_request*>(raw->data);
    loop& l = *req->owner;
    // Success was settled by the FSM's apply at this index. A failure (leadership lost, the
    // leader's own write failed, closing) does not mean the entry will not be committed.
    if (status != 0)
      if (auto it = l.pending.find(raw->index); it != l.pending.end() && it->second.nonce == req->nonce)
        if (!it->second.in_doubt_since) it->second.in_doubt_since = monotonic_now();
    delete req;
  }

  // After every turn of the loop: new leaders take the queue, stale entries are settled, the
  // status is published, and a stop proceeds.
  void after_turn() {
    if (closing) return;
    if (first_snapshot_pending && r.log.snapshot.last_index > 0) {
      first_snapshot_pending = false;
      raft_set_snapshot_threshold(&r, opt.snapshot_threshold);
      raft_set_snapshot_trailing(&r, opt.snapshot_trailing);
    }
    guard.poll();
    pump();
    if (members_told_late) tell_members_now();
    const auto now = monotonic_now();
    const std::uint64_t last_applied = raft_last_applied(&r);
    if (!pending.empty() && pending.begin()->first <= last_applied) settle_up_to(last_applied, nullptr);
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->second.in_doubt_since && now - *it->second.in_doubt_since >= opt.in_doubt_limit) {
        fail_in_doubt(it->second.proposals);
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    publish_status();
    if (stop_deadline && ((queue.empty() && pending.empty()) || now >= *stop_deadline)) begin_close();
  }

  void publish_status() {
    raft_status s;
    switch (raft_state(&r)) {
      case RAFT_FOLLOWER: s.state = raft_status::role_state::follower; break;
      case RAFT_CANDIDATE: s.state = raft_status::role_state::candidate; break;
      case RAFT_LEADER: s.state = raft_status::role_state::leader; break;
      default: s.state = raft_status::role_state::unavailable; break;
    }
    raft_id id = 0;
    const char* address = nullptr;
    raft_leader(&r, &id, &address);
    s.leader = {id, address ? address : ""};
    s.ready = guard.settled();
    s.term = r.current_term;
    s.last_index = raft_last_index(&r);
    s.last_applied = raft_last_applied(&r);
    s.applied_log_index = applied;
    s.snapshot_index = r.log.snapshot.last_index;
    s.commit_index = r.commit_index;
    // (The leader's progress array follows its configuration's order.)
    const bool leads = raft_state(&r) == RAFT_LEADER && r.leader_state.progress != nullptr;
    for (unsigned i = 0; i < r.configuration.n; ++i) {
      const ::raft_server& srv = r.configuration.servers[i];
      s.configuration.push_back({{srv.id, srv.address ? srv.address : ""},
                                 srv.role == RAFT_VOTER ? raft_role::voter : srv.role == RAFT_STANDBY ? raft_role::standby : raft_role::spare,
                                 leads ? r.leader_state.progress[i].match_index : 0});
    }
    ready_now.store(s.ready, std::memory_order_release);
    std::lock_guard lock(status_mu);
    status = std::move(s);
  }

  // Work handed over by other threads.
  void drain() {
    std::deque<std::shared_ptr<proposal>> in;
    std::deque<std::function<void()>> work;
    bool stop = false;
    {
      std::lock_guard lock(mu);
      in.swap(arrived);
      work.swap(tasks);
      stop = stopping;
    }
    const auto now = monotonic_now();
    for (auto& p : in) queue.emplace_back(std::move(p), now);
    for (auto& task : work) task();
    if (stop && !stop_deadline) stop_deadline = now + 2 * std::chrono::milliseconds(opt.election_timeout_ms);
  }

  // ---------------------------------------------------------------- membership

  enum class change_kind { add, assign, remove };
  void change(change_kind what, raft_member m, int role, std::shared_ptr<std::promise<result<void, std::string>>> done) {
    auto* req = new change_request;
    req->owner = this;
    req->done = done;
    req->req.data = req;
    int rv = what == change_kind::add      ? raft_add(&r, &req->req, m.id, m.address.c_str(), on_changed)
             : what == change_kind::assign ? raft_assign(&r, &req->req, m.id, role, on_changed)
                                           : raft_remove(&r, &req->req, m.id, on_changed);
    if (rv != 0) {
      delete req;
      done->set_value(fail(describe(rv)));
    }
  }
  static void on_changed(raft_change* raw, int status) {
    auto* req = static_cast<change_request*>(raw->data);
    if (status == 0) req->done->set_value(ok_v);
    else req->done->set_value(fail(req->owner->describe(status)));
    delete req;
  }
  // Leadership to `id`: `done` gets ok once it leads, as this member sees it (libraft calls back
  // when the target is seen leading, or after an election timeout without it).
  struct transfer_request {
    struct raft_transfer req {};
    loop* owner = nullptr;
    std::uint64_t target = 0;
    std::shared_ptr<std::promise<result<void, std::string>>> done;
  };
  void transfer(std::uint64_t id, std::shared_ptr<std::promise<result<void, std::string>>> done) {
    auto* req = new transfer_request;
    req->owner = this;
    req->target = id;
    req->done = done;
    req->req.data = req;
    if (int rv = raft_transfer(&r, &req->req, id, on_transferred); rv != 0) {
      delete req;
      done->set_value(fail(describe(rv)));
    }
  }
  static void on_transferred(struct raft_transfer* raw) {
    auto* req = static_cast<transfer_request*>(raw->data);
    raft_id leader = 0;
    const char* address = nullptr;
    raft_leader(&req->owner->r, &leader, &address);
    if (leader == req->target) req->done->set_value(ok_v);
    else req->done->set_value(fail("the master did not change within an election timeout (the master is \"" + req->owner->leader_address() + "\")"));
    delete req;
  }
  std::string describe(int rv) {
    if (rv == RAFT_NOTLEADER) return "this member is not the pool master (the master is \"" + leader_address() + "\")";
    return std::string(raft_strerror(rv)) + (r.errmsg[0] ? std::string(": ") + r.errmsg : std::string());
  }

  // Whether a peer of this id may send to us (the transport asks, on this thread).
  bool admits(std::uint64_t id) const {
    for (unsigned i = 0; i < r.configuration.n; ++i)
      if (r.configuration.servers[i].id == id) return true;
    return std::find(opt.admitted.begin(), opt.admitted.end(), id) != opt.admitted.end();
  }

  raft_transport_options transport_options() {
    return {opt.pool_secret, opt.pool_id, [this](std::uint64_t id) { return admits(id); }, opt.handshake_deadline};
  }

  // ---------------------------------------------------------------- life cycle

  // Everything up to raft_start; an error names what failed, and what was set up is closing.
  std::string init() {
    if (int rv = uv_loop_init(&uv); rv != 0) return std::string("cannot make an event loop: ") + uv_strerror(rv);
    uv_async_init(&uv, &wake, [](uv_async_t* h) {
      auto* l = static_cast<loop*>(h->data);
      if (!l->closing) l->drain();
    });
    wake.data = this;
    uv_check_init(&uv, &check);
    check.data = this;

    std::error_code ec;
    std::filesystem::create_directories(opt.dir, ec);
    if (ec) {
      close_handles();
      return "cannot make " + opt.dir + ": " + ec.message();
    }
    transport = std::make_unique<raft_transport>(&uv, transport_options());
    if (int rv = raft_uv_init(&io, &uv, opt.dir.c_str(), transport->get()); rv != 0) {
      std::string why = io.errmsg[0] ? io.errmsg : raft_strerror(rv);
      transport.reset();
      close_handles();
      return "cannot use " + opt.dir + " for the pool log: " + why;
    }
    // A corrupt segment is a reason to stop, not to move it and every later one aside (what
    // auto-recovery does, dropping durable entries of a voter). A torn tail is tolerated anyway.
    raft_uv_set_auto_recovery(&io, false);
    raft_uv_set_connect_retry_delay(&io, 250);  // the default 1 s would come on top of failover
    tracer.enabled = spdlog::should_log(spdlog::level::trace);
    tracer.emit = [](raft_tracer*, const char* file, int line, const char* message) {
      spdlog::trace("raft.trace at={}:{} {}", file, line, message);
    };
    raft_uv_set_tracer(&io, &tracer);
    // Version 1: raft frees the snapshot's buffers, and the snapshot is taken on this thread.
    // (Version 3's snapshot_async would also need io.version = 2, which 0.15's uv I/O forgets.)
    fsm.version = 1;
    fsm.data = this;
    fsm.apply = [](raft_fsm* f, const raft_buffer* buf, void** result) {
      auto* l = static_cast<loop*>(f->data);
      *result = nullptr;
      // During apply, raft has not yet moved last_applied to this entry.
      l->apply_entry(raft_last_applied(&l->r) + 1, std::string_view(static_cast<const char*>(buf->base), buf->len));
      return 0;
    };
    fsm.snapshot = [](raft_fsm* f, raft_buffer* bufs[], unsigned* n) { return static_cast<loop*>(f->data)->take_snapshot(bufs, n); };
    fsm.restore = [](raft_fsm* f, raft_buffer* buf) { return static_cast<loop*>(f->data)->restore(buf); };
    if (int rv = raft_init(&r, &io, &fsm, opt.self.id, opt.self.address.c_str()); rv != 0) {
      std::string why = r.errmsg[0] ? r.errmsg : raft_strerror(rv);
      raft_uv_close(&io);
      transport.reset();
      close_handles();
      return "cannot start the pool log in " + opt.dir + ": " + why;
    }
    guard.attach(&r);
    r.data = this;
    r.tracer = &tracer;
    raft_set_election_timeout(&r, opt.election_timeout_ms);
    raft_set_heartbeat_timeout(&r, opt.heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&r, opt.snapshot_threshold);
    raft_set_snapshot_trailing(&r, opt.snapshot_trailing);
    raft_set_install_snapshot_timeout(&r, opt.install_snapshot_timeout_ms);
    raft_set_pre_vote(&r, true);  // a member cut off does not raise terms and depose a healthy master
    // A new pool's first configuration (ignored by a log that exists), or one forced onto an
    // existing log (appended to it as a closed segment).
    for (const bool forced : {false, true}) {
      const auto& voters = forced ? opt.recover : opt.bootstrap;
      if (voters.empty()) continue;
      raft_configuration conf;
      raft_configuration_init(&conf);
      int rv = 0;
      for (const auto& m : voters)
        if (rv == 0) rv = raft_configuration_add(&conf, m.id, m.address.c_str(), RAFT_VOTER);
      if (rv == 0) rv = forced ? raft_recover(&r, &conf) : raft_bootstrap(&r, &conf);
      raft_configuration_close(&conf);
      if (rv != 0 && (forced || rv != RAFT_CANTBOOTSTRAP)) {  // CANTBOOTSTRAP: the log exists already
        std::string why = describe(rv);
        begin_close();
        return std::string(forced ? "cannot recover" : "cannot bootstrap") + " the pool log in " + opt.dir + ": " + why;
      }
    }
    if (int rv = raft_start(&r); rv != 0) {
      std::string why = describe(rv);
      begin_close();
      return "cannot start the pool log in " + opt.dir + " on " + opt.self.address + ": " + why;
    }
    // Until this log holds a snapshot, the next entry applied takes one and drops the entries
    // before it: a member that joins later then starts from the whole database, never from entry
    // 1 (a database older than its log, made before it ran over Raft, is not in its entries).
    // Trailing 1, not 0: 0.15's libuv I/O takes a snapshot put with trailing 0 for an installed
    // one and restarts its log at the snapshot's index + 1 (`UvSnapshotPut`), so entries already
    // appended after it were written under the wrong indexes (a restart read entry i + 1 as i).
    if (r.log.snapshot.last_index == 0) {
      first_snapshot_pending = true;
      raft_set_snapshot_threshold(&r, 1);
      raft_set_snapshot_trailing(&r, 1);
    }
    uv_check_start(&check, [](uv_check_t* h) { static_cast<loop*>(h->data)->after_turn(); });
    publish_status();
    return {};
  }

  void close_handles() {
    {
      std::lock_guard lock(mu);
      running = false;  // no wake-up is sent to a closing handle
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&check), nullptr);
  }

  void begin_close() {
    if (closing) return;
    closing = true;
    for (auto& w : queue) fail_one(w.p, database_closing());
    queue.clear();
    raft_close(&r, [](struct raft* raw) {
      auto* l = static_cast<loop*>(raw->data);
      raft_uv_close(&l->io);
      l->transport.reset();
      l->settle_all_unknown(UINT64_MAX);
      l->settle_forwarded(UINT64_MAX);
      for (auto& [_, w] : l->asking) l->fail_in_doubt({w.p});
      l->asking.clear();
      l->close_handles();
      std::deque<std::shared_ptr<proposal>> left;
      {
        std::lock_guard lock(l->mu);
        left.swap(l->arrived);
        l->tasks.clear();  // their callers see a broken promise: the log stopped
      }
      for (auto& p : left) l->fail_one(p, database_closing());
    });
  }

  void run(std::promise<result<void, std::string>>& started) {
    {
      std::lock_guard lock(link->mu);
      link->l = this;
    }
    const std::string error = init();
    if (error.empty()) {
      {
        std::lock_guard lock(mu);
        running = true;
      }
      started.set_value(ok_v);
    }
    uv_run(&uv, UV_RUN_DEFAULT);  // until every handle is closed
    uv_loop_close(&uv);
    {
      std::lock_guard lock(link->mu);
      link->l = nullptr;
    }
    if (!error.empty()) started.set_value(fail(error));
  }
};

raft_sequencer::raft_sequencer(raft_options options) : loop_(std::make_unique<loop>(std::move(options))) {}

raft_sequencer::~raft_sequencer() { stop(); }

result<void, std::string> raft_sequencer::start(ordered_database db) {
  if (loop_->opt.self.id == 0) return fail(std::string("a pool member's Raft id must not be 0"));
  if (std::string why = raft_transport::invalid(loop_->transport_options()); !why.empty())
    return fail("cannot join the pool's Raft traffic: " + why);
  // 0.15's libuv I/O takes a snapshot put with trailing 0 for an installed one (see init).
  if (loop_->opt.snapshot_trailing == 0) return fail(std::string("snapshot_trailing must be at least 1"));
  // libuv writes to peers with write(2): a peer gone away would raise SIGPIPE, whose default kills
  // the process. Ignored unless someone installed a handler.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) std::signal(SIGPIPE, SIG_IGN);
  loop_->db = std::move(db);
  loop_->applied = loop_->db.applied_log_index();
  std::promise<result<void, std::string>> started;
  auto outcome = started.get_future();
  loop_->thread = std::thread(carry_log_host([this, &started] { loop_->run(started); }));
  auto r = outcome.get();
  if (!r) {
    loop_->thread.join();
    return fail(std::move(r).error());
  }
  // The database holds entries the log does not (its log was removed, or the database copied
  // from elsewhere): replaying this log would skip entries it has never seen. Refuse, naming both.
  if (const auto logged = status().last_index; logged < loop_->applied) {
    stop();
    return fail("the database has applied the pool log up to entry " + std::to_string(loop_->applied) + " but the log in " +
                loop_->opt.dir + " ends at " + std::to_string(logged) +
                ": restore that log, or remove the database too to take the pool's state from the log");
  }
  const auto& s = loop_->opt.self;
  spdlog::info("raft.started id={} address={} dir={} applied={}", s.id, s.address, loop_->opt.dir, loop_->applied);
  return ok_v;
}

bool raft_sequencer::order(const std::shared_ptr<proposal>& p) {
  std::lock_guard lock(loop_->mu);
  if (!loop_->running || loop_->stopping) return false;
  loop_->arrived.push_back(p);
  uv_async_send(&loop_->wake);
  return true;
}

bool raft_sequencer::order_and_wait(const std::shared_ptr<proposal>& p) {
  // Each caller is woken alone, by the loop that finished its proposal. One condition variable
  // for every caller woke them all at every entry: with 64 writers, 64 threads woke (and fought
  // for one mutex) to let about 15 go, on the CPUs the loop's thread needed for the next entry.
  struct waiter {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  } w;
  auto inner = std::move(p->applied);
  p->applied = [&w, inner](proposal& q) {
    if (inner) inner(q);
    std::lock_guard lock(w.mu);  // notified under the lock: once it is released, `w` may be gone
    w.done = true;
    w.cv.notify_one();
  };
  if (!order(p)) {
    p->applied = std::move(inner);
    return false;
  }
  std::unique_lock lock(w.mu);
  w.cv.wait(lock, [&] { return w.done; });
  return true;
}

void raft_sequencer::stop() {
  {
    std::lock_guard lock(loop_->mu);
    if (loop_->running && !loop_->stopping) {
      loop_->stopping = true;
      uv_async_send(&loop_->wake);
    }
  }
  if (loop_->thread.joinable()) loop_->thread.join();
}

void raft_sequencer::order_forwarded(std::string encoded, std::function<void(forwarded_answer)> done,
                                     std::optional<std::uint64_t> sender, const std::function<api::status(const proposal&)>& vet) {
  auto refuse = [&](api::api_error why) { done(forwarded_answer{0, fail(std::move(why))}); };
  auto p = decode_forwarded_proposal(encoded, loop_->opt.max_proposal_bytes);
  if (!p) return refuse(api::errors::INTERNAL_ERROR("a member's change cannot be read: " + p.error()));
  if (sender && !(*p)->key.empty()) {
    std::uint64_t owner = 0;
    for (std::size_t i = 0; i < 8 && i < (*p)->key.size(); ++i) owner = (owner << 8) | static_cast<unsigned char>((*p)->key[i]);
    if ((*p)->key.size() != 16 || owner != *sender)
      return refuse(api::errors::INTERNAL_ERROR("a member's change carries a key that is not its own"));
  }
  if (vet)
    if (auto st = vet(**p); !st) return refuse(std::move(st).error());
  (*p)->applied = [done](proposal& q) {
    done(forwarded_answer{q.log_index, q.outcome ? std::move(*q.outcome) : fail(database_closing()), q.in_doubt});
  };
  std::lock_guard lock(loop_->mu);
  if (!loop_->running || loop_->stopping) return refuse(database_closing());
  loop_->tasks.push_back([l = loop_.get(), q = std::move(p).value()] { l->queue.emplace_back(q, monotonic_now(), true); });
  uv_async_send(&loop_->wake);
}

bool raft_sequencer::ready() const noexcept { return loop_->ready_now.load(std::memory_order_acquire); }

raft_status raft_sequencer::status() const {
  std::lock_guard lock(loop_->status_mu);
  return loop_->status;
}

namespace {

// Runs `change` on the loop thread and waits for its outcome.
result<void, std::string> run_change(raft_sequencer::loop& l, std::function<void(std::shared_ptr<std::promise<result<void, std::string>>>)> change,
                                     std::chrono::milliseconds timeout) {
  // Raft takes one membership change at a time: a second one waits here for the first (a
  // voter's promotion and a join's standby may come together), within the same time limit.
  const auto until = monotonic_now() + timeout;
  std::unique_lock one_at_a_time(l.changes, std::defer_lock);
  if (!one_at_a_time.try_lock_for(timeout))
    return fail("another change of the pool's membership did not end within " + std::to_string(timeout.count()) + " ms");
  timeout = std::chrono::duration_cast<std::chrono::milliseconds>(std::max(until - monotonic_now(), steady::duration(0)));
  auto done = std::make_shared<std::promise<result<void, std::string>>>();
  auto outcome = done->get_future();
  {
    std::lock_guard lock(l.mu);
    if (!l.running || l.stopping) return fail(std::string("the pool log is not running"));
    l.tasks.push_back([change = std::move(change), done]() mutable { change(std::move(done)); });
    uv_async_send(&l.wake);
  }
  if (outcome.wait_for(timeout) != std::future_status::ready)
    return fail("the membership change did not complete within " + std::to_string(timeout.count()) + " ms");
  try {
    return outcome.get();
  } catch (const std::future_error&) {
    return fail(std::string("the pool log stopped"));
  }
}

}  // namespace

result<void, std::string> raft_sequencer::add(const raft_member& m, std::chrono::milliseconds timeout) {
  return run_change(*loop_, [l = loop_.get(), m](auto done) { l->change(loop::change_kind::add, m, 0, std::move(done)); }, timeout);
}

result<void, std::string> raft_sequencer::assign(std::uint64_t id, raft_role role, std::chrono::milliseconds timeout) {
  const int raft_role_code = role == raft_role::voter ? RAFT_VOTER : role == raft_role::standby ? RAFT_STANDBY : RAFT_SPARE;
  return run_change(*loop_, [l = loop_.get(), id, raft_role_code](auto done) { l->change(loop::change_kind::assign, {id, {}}, raft_role_code, std::move(done)); },
                    timeout);
}

result<void, std::string> raft_sequencer::remove(std::uint64_t id, std::chrono::milliseconds timeout) {
  return run_change(*loop_, [l = loop_.get(), id](auto done) { l->change(loop::change_kind::remove, {id, {}}, 0, std::move(done)); }, timeout);
}

result<void, std::string> raft_sequencer::transfer(std::uint64_t id, std::chrono::milliseconds timeout) {
  // 0.15 may let a TimeoutNow go unanswered when it crosses a heartbeat: asked again, a few times.
  const auto until = monotonic_now() + timeout;
  result<void, std::string> outcome = fail(std::string("no attempt"));
  for (int attempt = 0; attempt < 3 && monotonic_now() < until; ++attempt) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - monotonic_now());
    outcome = run_change(*loop_, [l = loop_.get(), id](auto done) { l->transfer(id, std::move(done)); }, left);
    if (outcome || status().state != raft_status::role_state::leader) return outcome;
  }
  return outcome;
}

}  // namespace xapid::storage
