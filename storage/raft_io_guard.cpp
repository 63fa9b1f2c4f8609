#include "storage/raft_io_guard.hpp"

#include <cstring>
#include <new>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

namespace xapid::storage {

// An append in flight: the inner I/O calls back `inner`, which holds raft's own request.
struct raft_io_guard::append_call {
  struct raft_io_append inner {};
  struct raft_io_append* outer = nullptr;
  raft_io_guard* guard = nullptr;
  std::optional<raft_index> proven;  // a follower's write: what the leader's request proved
};

struct raft_io_guard::barrier_call {
  struct raft_barrier req {};
  raft_io_guard* guard = nullptr;
  raft_term term = 0;
};

void raft_io_guard::attach(struct raft* r) {
  r_ = r;
  inner_ = r->io;
  inner_->data = r;  // raft's own callbacks, and the fixture's async work, find raft there
  io_.version = inner_->version;
  io_.data = r;
  io_.impl = this;
  io_.init = forward<&raft_io::init>;
  io_.close = close;
  io_.load = forward<&raft_io::load>;
  io_.start = start;
  io_.bootstrap = forward<&raft_io::bootstrap>;
  io_.recover = forward<&raft_io::recover>;
  io_.set_term = forward<&raft_io::set_term>;
  io_.set_vote = forward<&raft_io::set_vote>;
  io_.send = send;
  io_.append = append;
  io_.truncate = forward<&raft_io::truncate>;
  io_.snapshot_put = forward<&raft_io::snapshot_put>;
  io_.snapshot_get = forward<&raft_io::snapshot_get>;
  io_.time = time;
  io_.random = random;
  if (inner_->async_work) io_.async_work = forward<&raft_io::async_work>;
  r->io = &io_;
}

raft_io_guard& raft_io_guard::of_outer(struct raft_io* outer) { return *static_cast<raft_io_guard*>(outer->impl); }
raft_io_guard& raft_io_guard::of_inner(struct raft_io* inner) {
  return of_outer(static_cast<struct raft*>(inner->data)->io);
}

// Raft reads an I/O failure's message from its own io (`r->io->errmsg`).
void raft_io_guard::copy_errmsg(raft_io_guard& g) noexcept {
  std::memcpy(g.io_.errmsg, g.inner_->errmsg, sizeof g.io_.errmsg);
}

// ---------------------------------------------------------------- forwarded as they are

template <auto method, class... Args>
int raft_io_guard::forward(struct raft_io* io, Args... args) {
  raft_io_guard& g = of_outer(io);
  int rv = (g.inner_->*method)(g.inner_, args...);
  if (rv != 0) copy_errmsg(g);
  return rv;
}

raft_time raft_io_guard::time(struct raft_io* io) {
  raft_io_guard& g = of_outer(io);
  return g.inner_->time(g.inner_);
}
int raft_io_guard::random(struct raft_io* io, int min, int max) {
  raft_io_guard& g = of_outer(io);
  return g.inner_->random(g.inner_, min, max);
}

// ---------------------------------------------------------------- wrapped

// A follower's success answer says how far its log matches the leader's: no further than what
// the request answered proved (its previous index plus its entries). 0.15 sends its whole stored
// log's length, which may end in entries of an older term that the leader has not overwritten
// yet; the leader would count them as its own.
int raft_io_guard::send(struct raft_io* io, struct raft_io_send* req, const struct raft_message* message,
                        raft_io_send_cb cb) {
  raft_io_guard& g = of_outer(io);
  struct raft_message answer;
  if (message->type == RAFT_IO_APPEND_ENTRIES_RESULT && message->append_entries_result.rejected == 0 &&
      g.answering_ && message->append_entries_result.last_log_index > *g.answering_) {
    answer = *message;
    answer.append_entries_result.last_log_index = *g.answering_;
    message = &answer;
  }
  int rv = g.inner_->send(g.inner_, req, message, cb);
  if (rv != 0) copy_errmsg(g);
  return rv;
}

int raft_io_guard::start(struct raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv) {
  raft_io_guard& g = of_outer(io);
  g.tick_ = tick;
  g.recv_ = recv;
  int rv = g.inner_->start(g.inner_, msecs, on_tick, on_recv);
  if (rv != 0) copy_errmsg(g);
  return rv;
}

void raft_io_guard::close(struct raft_io* io, raft_io_close_cb cb) {
  raft_io_guard& g = of_outer(io);
  g.close_ = cb;
  g.inner_->close(g.inner_, on_closed);
}

void raft_io_guard::on_closed(struct raft_io* inner) {
  raft_io_guard& g = of_inner(inner);
  g.held_.clear();  // raft is closing: it takes no message any more
  if (g.close_) g.close_(&g.io_);
}

// Every append is wrapped, for the moment `last_stored` passes the term's first index (the held
// results go then) and for the message of a failed write.
int raft_io_guard::append(struct raft_io* io, struct raft_io_append* req, const struct raft_entry entries[], unsigned n,
                          raft_io_append_cb cb) {
  raft_io_guard& g = of_outer(io);
  auto* call = new (std::nothrow) append_call;
  if (!call) return RAFT_NOMEM;
  call->outer = req;
  call->guard = &g;
  call->proven = g.answering_;
  call->inner.data = call;
  req->cb = cb;
  int rv = g.inner_->append(g.inner_, &call->inner, entries, n, on_appended);
  if (rv != 0) {
    copy_errmsg(g);
    delete call;
  }
  return rv;
}

void raft_io_guard::on_appended(struct raft_io_append* req, int status) {
  auto* call = static_cast<append_call*>(req->data);
  raft_io_guard& g = *call->guard;
  struct raft_io_append* outer = call->outer;
  const std::optional<raft_index> proven = call->proven;
  delete call;
  if (status != 0) copy_errmsg(g);
  const auto answering = std::exchange(g.answering_, proven);  // a follower answers once its write is done
  if (outer->cb) outer->cb(outer, status);
  g.answering_ = answering;
  g.after_callback();
}

void raft_io_guard::on_tick(struct raft_io* inner) {
  raft_io_guard& g = of_inner(inner);
  g.tick_(&g.io_);
  g.after_callback();
}

void raft_io_guard::on_recv(struct raft_io* inner, struct raft_message* message) {
  raft_io_guard& g = of_inner(inner);
  g.release();
  g.notice_leadership();  // before deciding: no result of a term is delivered before its leadership is seen
  if (g.from_a_leader_of_my_term(*message)) {
    if (g.refused_term_ != g.r_->current_term) {
      g.refused_term_ = g.r_->current_term;
      spdlog::warn("raft.guard.other_leader_refused from={} address={} term={}", message->server_id,
                   message->server_address ? message->server_address : "", g.r_->current_term);
    }
    discard(*message);
    return;
  }
  if (g.must_hold(*message)) {
    if (g.held_.size() >= max_held) {
      g.held_.pop_front();
      spdlog::warn("raft.guard.result_dropped held={}", max_held);
    }
    g.held_.push_back({*message, message->server_address ? message->server_address : ""});
    return;
  }
  std::optional<raft_index> proven;
  if (message->type == RAFT_IO_APPEND_ENTRIES)
    proven = message->append_entries.prev_log_index + message->append_entries.n_entries;
  else if (message->type == RAFT_IO_INSTALL_SNAPSHOT)
    proven = message->install_snapshot.last_index;
  const auto answering = std::exchange(g.answering_, proven);
  g.recv_(&g.io_, message);
  g.answering_ = answering;
  g.after_callback();
}

// ---------------------------------------------------------------- the rule

void raft_io_guard::notice_leadership() {
  if (raft_state(r_) != RAFT_LEADER) return;
  if (r_->current_term != led_term_) {
    // Every entry past the log's last index is of this term (a leader only appends its own);
    // noticed later than the election, this index is only higher, which holds results longer.
    led_term_ = r_->current_term;
    own_first_index_ = raft_last_index(r_) + 1;
    barrier_appended_ = false;
  }
  if (barrier_appended_) return;
  auto* call = new (std::nothrow) barrier_call;
  if (!call) return;  // tried again after the next callback
  call->guard = this;
  call->term = led_term_;
  call->req.data = call;
  if (raft_barrier(r_, &call->req, on_barrier) != 0) {
    delete call;
    return;
  }
  barrier_appended_ = true;
}

void raft_io_guard::on_barrier(struct raft_barrier* req, int status) {
  auto* call = static_cast<barrier_call*>(req->data);
  // A barrier that failed (leadership lost, closing) leaves its term unsettled: the next
  // leadership appends its own.
  if (status == 0 && call->term > call->guard->settled_term_) call->guard->settled_term_ = call->term;
  delete call;
}

// One pool never has two leaders of a term, and 0.15 counts on it: a leader that hears another
// one's AppendEntries or InstallSnapshot of its own term records the sender as its leader in
// the follower half of a union its leader state occupies (asserts are off in Debian's build),
// and later dereferences a raft id as a pointer. Two pools met so (a joined host's old pool of
// one hearing its new master, both leading term 1) before raft_transport checked the pool.
bool raft_io_guard::from_a_leader_of_my_term(const raft_message& m) const {
  if (raft_state(r_) != RAFT_LEADER) return false;
  if (m.type == RAFT_IO_APPEND_ENTRIES) return m.append_entries.term == r_->current_term;
  if (m.type == RAFT_IO_INSTALL_SNAPSHOT) return m.install_snapshot.term == r_->current_term;
  return false;
}

// What raft would have freed of a message it took (recv.c, for a closing member).
void raft_io_guard::discard(struct raft_message& m) {
  if (m.type == RAFT_IO_APPEND_ENTRIES && m.append_entries.entries) {
    void* batch = nullptr;
    for (unsigned i = 0; i < m.append_entries.n_entries; ++i)
      if (m.append_entries.entries[i].batch != batch) raft_free(batch = m.append_entries.entries[i].batch);
    raft_free(m.append_entries.entries);
  } else if (m.type == RAFT_IO_INSTALL_SNAPSHOT) {
    raft_configuration_close(&m.install_snapshot.conf);
    raft_free(m.install_snapshot.data.base);
  }
}

bool raft_io_guard::must_hold(const raft_message& m) const {
  return m.type == RAFT_IO_APPEND_ENTRIES_RESULT && raft_state(r_) == RAFT_LEADER &&
         m.append_entries_result.term == r_->current_term && r_->current_term == led_term_ &&
         r_->last_stored < own_first_index_;
}

// In arrival order; a result that is no longer of the current term is delivered too (raft
// ignores it, or steps down on a newer term).
void raft_io_guard::release() {
  while (!held_.empty() && !must_hold(held_.front().message)) {
    held_message h = std::move(held_.front());
    held_.pop_front();
    h.message.server_address = h.address.c_str();
    recv_(&io_, &h.message);
    notice_leadership();
  }
}

void raft_io_guard::poll() { after_callback(); }

bool raft_io_guard::settled() const { return raft_state(r_) == RAFT_LEADER && settled_term_ == r_->current_term; }

}  // namespace xapid::storage
