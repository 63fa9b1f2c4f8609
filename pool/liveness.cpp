#include "pool/liveness.hpp"

#include <future>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/clock.hpp"
#include "pool/membership.hpp"

namespace xapid::pool {

liveness_watch::liveness_watch(storage::database& db, std::shared_ptr<storage::raft_sequencer> log, peer_client& peers,
                               std::string this_host, std::chrono::seconds dead_after, operations_sweep sweep,
                               std::chrono::milliseconds period)
    : db_(db), log_(std::move(log)), peers_(peers), this_host_(std::move(this_host)), dead_after_(dead_after), sweep_(std::move(sweep)),
      thread_(std::make_unique<periodic_thread>(period, [this] { step(); })) {}

liveness_watch::~liveness_watch() { thread_.reset(); }  // before the members its steps use

void liveness_watch::step() {
  const auto status = log_->status();
  if (!status.ready) return;  // the master's, once it has applied everything before its term
  const auto now = monotonic_now();
  if (status.term != term_) {  // a new master: every member has the whole interval again
    term_ = status.term;
    last_answer_.clear();
  }
  auto snap = db_.snapshot();
  auto t = db_.begin();
  const std::size_t metrics_cls = storage::schema::get().class_of<api::host_metrics>();
  const std::size_t live_field = *storage::schema::get().field_index(metrics_cls, "live");
  auto mark = [&](const std::string& host, bool live) {
    const api::host* h = snap->get<api::host>(host);
    const api::host_metrics* m = h ? snap->get<api::host_metrics>(h->metrics.opaque) : nullptr;
    if (!m || m->live == live) return;
    t.set(metrics_cls, h->metrics.opaque, live_field, wire::value(live));
    spdlog::info("pool.host.{} host={} uuid={}", live ? "alive" : "dead", host, h->uuid);
  };
  mark(this_host_, true);
  std::set<std::string> claimed;  // the operations the members carry out
  bool all_accounted = true;      // every member answered, or is dead
  // Every member asked at once: a round takes one ping's time, not one per dead member.
  std::vector<std::pair<member_record, std::future<result<peer::PingReply, peer_client::ping_failure>>>> asked;
  for (member_record& m : members(*snap)) {
    if (m.host_ref == this_host_) continue;
    if (m.peer_address.empty()) {  // not yet published (a join under way): it cannot be asked
      all_accounted = false;
      continue;
    }
    auto pong = std::async(std::launch::async, [this, address = m.peer_address, pin = m.fingerprint] {
      return peers_.ping(address, pin, std::chrono::seconds(1));
    });
    asked.emplace_back(std::move(m), std::move(pong));
  }
  for (auto& [m, answer] : asked) {
    auto seen = last_answer_.try_emplace(m.host_ref, now).first;
    if (auto pong = answer.get()) {
      seen->second = monotonic_now();
      mark(m.host_ref, true);
      for (const auto& key : pong->operations_in_flight()) claimed.insert(key);
    } else if (now - seen->second >= dead_after_) {
      mark(m.host_ref, false);
    } else {
      all_accounted = false;
    }
  }
  if (!t.empty())
    if (auto done = db_.commit(std::move(t)); !done)
      spdlog::warn("pool.liveness.not_committed reason=\"{}\"", done.error().description().at(0));
  if (all_accounted && sweep_) sweep_(*snap, claimed);
}

}  // namespace xapid::pool
