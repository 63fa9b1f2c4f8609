// The whole-pool HA simulator (issue 18): a pool of 3 to 5 hosts in one process over a virtual
// clock, driven by a seed. What runs is the hosts' real logic where it decides safety:
//   - each host's `liveness_judge` (its fencing and its judgement of who is dead) and the master
//     lease's rule (`master_lease_watch`), fed as ha_monitor feeds them;
//   - the statefile's real block codec (lease blocks, master block) in memory;
//   - the pool's Raft: libraft's own in-memory fixture (its election and replication code over
//     simulated time, network and disks), which decides who leads, and so who may hold the
//     master lease and commit;
// and around them models of what the daemon does with them: renewals and heartbeats every T/10
// (heartbeats over a simulated network with latency), the watchdog (petted every 100 ms while the
// host is not past its fencing time; a real host's /dev/watchdog resets it 0.3 T after the last
// pet), fencing (guests destroyed, the daemon gone, back later), a restarted host resetting the
// VMs it no longer runs, and the master's failover (a host judged dead is declared so and its VMs
// halted, protected VMs started on a reachable host with room, only by the holder of the master
// lease that leads Raft).
//
// Faults, 1 to 3 a seed between 15 s and 60 s: kill -9 of a host (back after a while, or never),
// pause (SIGSTOP: the daemon stops, its guests run on) then continue, a host cut off from the
// network both ways, one direction of a link cut, the statefile lost by some hosts or all, the
// statefile slow for a host (writes taking up to T), a host's Raft disk slow (appends taking up
// to 2 s), a host's clock jumping forward by T/5 to 3 T at once (its VM paused and resumed, a
// clock stepped: its timers fire, and everything it judges by its clock sees the time gone by;
// the watchdog counts real time). Everything heals by 90 s.
//
// The checker, after every step: no VM runs on two hosts; at most one Raft leader per term. At
// the end: every write a client had acknowledged is on every live server; every protected VM
// runs on exactly one host where the pool's database says it does (when a majority lives); after
// a single kill and nothing else, every protected VM of the killed host ran again within T + 10 s.
// A failure prints its seed; `--seed N --verbose` replays it with its timeline.
//
// Usage: ha_pool_sim [--seed N [--verbose] | --seeds FIRST COUNT]
//        (no arguments: 1,000 seeds from a random first one, printed, or from $XAPID_SIM_SEED)
extern "C" {  // libraft's headers do not say it
#include <raft.h>
#include <raft/fixture.h>
}

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ha/liveness_judge.hpp"
#include "ha/master_lease.hpp"
#include "ha/statefile.hpp"
#include "storage/raft_sequencer.hpp"

namespace {

using namespace std::chrono_literals;
using xapid::ha::ha_time;
using xapid::ha::ha_timing;
using xapid::ha::lease;
using xapid::ha::liveness_judge;
using xapid::ha::master_lease_watch;
using ms_t = std::int64_t;

constexpr ms_t tick = 10;  // the simulation's step, ms
constexpr ms_t timeout_ms = 10000;  // T: the smallest a pool takes, where timing is tightest
constexpr ms_t faults_from = 15000, faults_until = 60000, healed_at = 90000;
constexpr ms_t end_at = healed_at + 3 * timeout_ms + 30000;

ha_time at(ms_t t) { return ha_time(std::chrono::milliseconds(t)); }

// --- Raft: libraft's fixture, each server's FSM a list of the client writes it applied --------

struct writes_fsm {
  std::vector<std::uint64_t> applied;
};

int fsm_apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
  std::uint64_t id = 0;
  if (buf->len >= sizeof id) std::memcpy(&id, buf->base, sizeof id);
  static_cast<writes_fsm*>(fsm->data)->applied.push_back(id);
  *result = nullptr;
  return 0;
}

int fsm_snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n) {
  const auto& v = static_cast<writes_fsm*>(fsm->data)->applied;
  *bufs = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
  (*bufs)->len = std::max<std::size_t>(v.size() * sizeof(std::uint64_t), 8);
  (*bufs)->base = raft_malloc((*bufs)->len);
  std::memset((*bufs)->base, 0, (*bufs)->len);
  if (!v.empty()) std::memcpy((*bufs)->base, v.data(), v.size() * sizeof(std::uint64_t));
  *n = 1;
  return 0;
}

int fsm_restore(raft_fsm* fsm, raft_buffer* buf) {
  auto& v = static_cast<writes_fsm*>(fsm->data)->applied;
  v.assign(buf->len / sizeof(std::uint64_t), 0);
  if (!v.empty()) std::memcpy(v.data(), buf->base, v.size() * sizeof(std::uint64_t));
  v.erase(std::remove(v.begin(), v.end(), 0u), v.end());
  raft_free(buf->base);
  return 0;
}

// --- the pool ---------------------------------------------------------------------------------

struct vm {
  int memory = 1;
  bool is_protected = false;
};

struct host {
  std::string uuid;
  bool up = true;
  bool paused = false;
  ms_t back_at = -1;       // down: when it starts again (-1: never)
  ms_t resume_at = -1;     // paused: when it continues
  ms_t arm_at = -1;        // started: when its monitor arms (every 500 ms it looks)
  bool armed = false;
  std::optional<liveness_judge> judge;
  master_lease_watch master;
  bool master_lease = false;
  ms_t master_written = 0;  // its last write of the master block
  std::uint64_t incarnation = 0, counter = 0;
  ms_t last_pet = 0;
  std::set<int> domains;   // the guests running on it: the ground truth
  bool statefile_lost = false;
  ms_t slow_write = 0;     // a statefile write takes this long
  ms_t write_done = -1;    // a renewal's write under way: when it completes
  ms_t write_began = 0;
  ms_t next_renew = 0, next_heartbeat = 0, next_watch = 0, next_failover = 0;
  bool needs_reset = false;  // started again: resets the VMs the database says it runs
  ms_t skew = 0;  // its clock is ahead of the real one by this (clock jumps); its timers and judge go by it
  bool reachable() const { return up && !paused; }
};

struct message {
  ms_t deliver_at;
  int from, to;
  bool answer;  // a heartbeat's answer (else the heartbeat)
  ms_t sent;    // the heartbeat's sending time
  std::vector<std::pair<std::string, std::chrono::milliseconds>> heard;
  bool armed = false;
};

struct fault {
  enum kind { kill, pause, isolate, one_way, statefile_lost, slow_statefile, slow_raft_disk, clock_jump } k;
  ms_t from, until;  // until: back/continued/healed (-1 for a kill never back)
  int a, b;          // hosts (b: the other end of a one-way cut; -1 for "every host")
  ms_t slow = 0;
};

const char* fault_name(fault::kind k) {
  switch (k) {
    case fault::kill: return "kill";
    case fault::pause: return "pause";
    case fault::isolate: return "isolate";
    case fault::one_way: return "one-way cut";
    case fault::statefile_lost: return "statefile lost";
    case fault::slow_statefile: return "slow statefile";
    case fault::slow_raft_disk: return "slow Raft disk";
    case fault::clock_jump: return "clock jump";
  }
  return "?";
}

struct outcome {
  bool ok = true;
  std::string why;
  std::vector<double> restart_seconds;  // single-kill seeds: kill -> each protected VM running again
  std::uint64_t acked = 0;
  int fenced = 0, watchdog_resets = 0;
};

class pool_sim {
 public:
  pool_sim(std::uint64_t seed, bool verbose) : rng_(seed), raft_rng_(seed ^ 0x9e3779b97f4a7c15ULL), verbose_(verbose) {
    n_ = 3 + static_cast<int>(rng_() % 3);
    timing_.timeout = std::chrono::milliseconds(timeout_ms);
    statefile_.assign(2 + n_, std::string(xapid::ha::statefile_block, '\0'));
    for (int i = 0; i < n_; ++i) {
      hosts_.emplace_back();
      hosts_.back().uuid = "host-" + std::to_string(i);
      uuids_.push_back(hosts_.back().uuid);
    }
    const int vms = 2 + static_cast<int>(rng_() % 9);
    for (int v = 0; v < vms; ++v) {
      vms_.push_back(vm{1 + static_cast<int>(rng_() % 4), rng_() % 10 < 7});
      capacity_ += vms_.back().memory;  // any host can take every VM: restarts never wait for room
      const int h = v % n_;
      hosts_[h].domains.insert(v);
      resident_.push_back(h);
    }
    declared_dead_.assign(n_, false);
    start_raft();
    plan_faults();
    for (int i = 0; i < n_; ++i) arm(i, 0);
  }
  ~pool_sim() { raft_fixture_close(&raft_); }

  outcome run() {
    for (now_ = 0; now_ <= end_at && out_.ok; now_ += tick) {
      apply_faults();
      step_raft();
      deliver();
      for (int i = 0; i < n_; ++i) step_host(i);
      client_write();
      check();
    }
    if (out_.ok) final_checks();
    return out_;
  }

 private:
  // --- Raft ---
  void start_raft() {
    raft_fixture_initialize(&raft_);
    fsms_.resize(n_);
    fsm_defs_.resize(n_);
    for (int i = 0; i < n_; ++i) {
      fsm_defs_[i] = raft_fsm{1, &fsms_[i], fsm_apply, fsm_snapshot, fsm_restore, nullptr, nullptr};
      raft_fixture_grow(&raft_, &fsm_defs_[i]);
      raft_fixture_set_network_latency(&raft_, i, 1 + static_cast<unsigned>(rng_() % 10));
      raft_disk_ms_.push_back(1 + static_cast<unsigned>(rng_() % 10));
      raft_fixture_set_disk_latency(&raft_, i, raft_disk_ms_[i]);
      // The daemon's settings (storage/raft_sequencer): pre-vote, so that a host coming back does
      // not depose a healthy master.
      const xapid::storage::raft_options daemon;
      raft_set_election_timeout(raft_fixture_get(&raft_, i), daemon.election_timeout_ms);
      raft_set_heartbeat_timeout(raft_fixture_get(&raft_, i), daemon.heartbeat_timeout_ms);
      raft_set_pre_vote(raft_fixture_get(&raft_, i), true);
      // Short logs (the fixture copies the leader's log at every step), with enough entries kept
      // that a member away (at most 35 s, a write every 2 s) catches up by entries: the fixture's
      // in-memory I/O of 0.15 reads past its log when a snapshot is installed over one
      // (valgrind, seed 7308: it then crashed at close). Installing snapshots is the daemon's
      // (libuv I/O), tested there.
      raft_set_snapshot_threshold(raft_fixture_get(&raft_, i), 32);
      raft_set_snapshot_trailing(raft_fixture_get(&raft_, i), 32);
    }
    raft_configuration conf;
    raft_fixture_configuration(&raft_, n_, &conf);
    raft_fixture_bootstrap(&raft_, &conf);
    raft_configuration_close(&conf);
    raft_fixture_start(&raft_);
  }

  bool raft_alive() const {
    for (const auto& h : hosts_)
      if (h.reachable()) return true;
    return false;
  }
  void step_raft() {
    if (!raft_alive()) return;
    // Raft draws a new election timeout each time it waits for one; the fixture answers whatever
    // it was told last, so it is told a fresh one at every step (fixed ones can split every vote).
    for (int i = 0; i < n_; ++i) {
      const unsigned base = raft_fixture_get(&raft_, i)->election_timeout;
      raft_fixture_set_randomized_election_timeout(&raft_, i, base + static_cast<unsigned>(raft_rng_() % base));
    }
    while (raft_fixture_time(&raft_) < static_cast<raft_time>(now_)) raft_fixture_step(&raft_);
  }
  // Host i leads Raft, as the pool sees it (the fixture's stable leader).
  bool leads(int i) {
    raft* r = raft_fixture_get(&raft_, i);
    return hosts_[i].reachable() && raft_state(r) == RAFT_LEADER && raft_.leader_id == r->id;
  }
  // Stops or starts server i's Raft (a kill of a server already killed — a paused host whose
  // watchdog resets it — corrupts the fixture: seed 7308 crashed in raft_fixture_close).
  void raft_running(int i, bool running) {
    if (raft_stopped_[i] != running) return;
    raft_stopped_[i] = !running;
    if (running) raft_fixture_revive(&raft_, i);
    else raft_fixture_kill(&raft_, i);
  }
  void link(int a, int b, bool open) {
    if (open) raft_fixture_desaturate(&raft_, a, b);
    else raft_fixture_saturate(&raft_, a, b);
  }

  struct pending_write {
    struct raft_apply req;
    pool_sim* sim;
    std::uint64_t id;
  };
  static void on_write(struct raft_apply* req, int status, void*) {
    auto* w = static_cast<pending_write*>(req->data);
    if (status == 0) w->sim->acked_.push_back(w->id);
    delete w;
  }
  void client_write() {
    if (now_ % 2000 != 0) return;
    for (int i = 0; i < n_; ++i) {
      if (!leads(i)) continue;
      auto* w = new pending_write{{}, this, ++next_write_};
      w->req.data = w;
      raft_buffer buf{raft_malloc(8), 8};
      std::memcpy(buf.base, &w->id, 8);
      if (raft_apply(raft_fixture_get(&raft_, i), &w->req, &buf, 1, on_write) != 0) {
        raft_free(buf.base);
        delete w;
      }
      return;
    }
  }

  // --- faults ---
  void plan_faults() {
    const int count = 1 + static_cast<int>(rng_() % 3);
    for (int f = 0; f < count; ++f) {
      fault x{};
      x.k = static_cast<fault::kind>(rng_() % 8);
      x.from = faults_from + static_cast<ms_t>(rng_() % (faults_until - faults_from));
      x.a = static_cast<int>(rng_() % n_);
      x.b = -1;
      const ms_t len = 1000 + static_cast<ms_t>(rng_() % (3 * timeout_ms));
      x.until = std::min(x.from + len, healed_at);
      switch (x.k) {
        case fault::kill:
          x.until = rng_() % 4 == 0 ? -1 : std::min(x.from + 5000 + static_cast<ms_t>(rng_() % 30000), healed_at);
          break;
        case fault::one_way:
          x.b = (x.a + 1 + static_cast<int>(rng_() % (n_ - 1))) % n_;
          break;
        case fault::statefile_lost:
          if (rng_() % 3 == 0) x.b = -2;  // every host
          break;
        case fault::slow_statefile: x.slow = timeout_ms / 10 + static_cast<ms_t>(rng_() % timeout_ms); break;
        case fault::slow_raft_disk: x.slow = 100 + static_cast<ms_t>(rng_() % 2000); break;
        case fault::clock_jump:
          x.slow = timeout_ms / 5 + static_cast<ms_t>(rng_() % (3 * timeout_ms));
          x.until = -1;  // at once
          break;
        default: break;
      }
      faults_.push_back(x);
    }
    single_kill_ = faults_.size() == 1 && faults_[0].k == fault::kill;
    if (verbose_)
      for (const auto& x : faults_)
        std::printf("  plan: %s host-%d%s from %.2f s until %s\n", fault_name(x.k), x.a,
                    x.b >= 0 ? (" -> host-" + std::to_string(x.b)).c_str() : (x.b == -2 ? " (every host)" : ""),
                    x.from / 1000.0, x.until < 0 ? "never" : (std::to_string(x.until / 1000.0) + " s").c_str());
  }

  void apply_faults() {
    auto due = [&](ms_t t) { return t > now_ - tick && t <= now_; };
    for (auto& x : faults_) {
      if (due(x.from)) begin_fault(x);
      if (x.until >= 0 && due(x.until)) end_fault(x);
    }
    for (int i = 0; i < n_; ++i) {
      host& h = hosts_[i];
      if (!h.up && h.back_at >= 0 && h.back_at <= now_) start_again(i);
      if (h.paused && h.resume_at <= now_) {
        h.paused = false;
        raft_running(i, true);
        log(i, "continued");
      }
    }
  }
  void begin_fault(fault& x) {
    host& h = hosts_[x.a];
    log(x.a, std::string("fault: ") + fault_name(x.k));
    switch (x.k) {
      case fault::kill:
        if (!h.up) break;
        if (single_kill_) {
          killed_at_ = now_;
          for (int v : h.domains)
            if (vms_[v].is_protected) awaited_.insert(v);
        }
        power_off(x.a, x.until);
        break;
      case fault::pause:
        if (!h.reachable()) break;
        h.paused = true;
        h.resume_at = x.until;
        raft_running(x.a, false);
        break;
      case fault::isolate:
        for (int j = 0; j < n_; ++j)
          if (j != x.a) cut_[{x.a, j}]++, cut_[{j, x.a}]++, link(x.a, j, false), link(j, x.a, false);
        break;
      case fault::one_way: cut_[{x.a, x.b}]++, link(x.a, x.b, false); break;
      case fault::statefile_lost:
        for (int j = 0; j < n_; ++j)
          if (x.b == -2 || j == x.a) hosts_[j].statefile_lost = true;
        break;
      case fault::slow_statefile: h.slow_write = x.slow; break;
      case fault::slow_raft_disk: raft_fixture_set_disk_latency(&raft_, x.a, static_cast<unsigned>(x.slow)); break;
      case fault::clock_jump: {
        h.skew += x.slow;
        // Its timers, late now, fire once and go on from there (as a real timer's next deadline),
        // in no fixed order: the watchdog thread may wake after the renewer and the failover.
        const ms_t t = local(x.a);
        for (ms_t* next : {&h.next_renew, &h.next_heartbeat, &h.next_failover}) *next = std::max(*next, t);
        h.next_watch = std::max(h.next_watch, t + static_cast<ms_t>(rng_() % 5) * tick);
        break;
      }
    }
  }
  ms_t local(int i) const { return now_ + hosts_[i].skew; }
  void end_fault(fault& x) {
    switch (x.k) {
      case fault::isolate:
        for (int j = 0; j < n_; ++j)
          if (j != x.a) uncut(x.a, j), uncut(j, x.a);
        break;
      case fault::one_way: uncut(x.a, x.b); break;
      case fault::statefile_lost:
        for (int j = 0; j < n_; ++j)
          if (x.b == -2 || j == x.a) hosts_[j].statefile_lost = false;
        break;
      case fault::slow_statefile: hosts_[x.a].slow_write = 0; break;
      case fault::slow_raft_disk: raft_fixture_set_disk_latency(&raft_, x.a, raft_disk_ms_[x.a]); break;
      default: break;  // kills and pauses end by their own times
    }
  }
  void uncut(int a, int b) {
    if (--cut_[{a, b}] <= 0) {
      cut_.erase({a, b});
      link(a, b, true);
    }
  }
  bool open(int a, int b) const { return a == b || !cut_.count({a, b}); }

  void power_off(int i, ms_t back_at) {
    host& h = hosts_[i];
    h.up = false;
    h.paused = false;
    h.armed = false;
    h.judge.reset();
    h.master_lease = false;
    h.domains.clear();
    h.back_at = back_at;
    h.write_done = -1;
    raft_running(i, false);
  }
  void start_again(int i) {
    host& h = hosts_[i];
    h.up = true;
    h.back_at = -1;
    h.needs_reset = true;
    raft_running(i, true);
    arm(i, now_ + 500);
    log(i, "started again");
  }
  void arm(int i, ms_t when) {
    host& h = hosts_[i];
    h.arm_at = when;
    const ms_t every = timing_.renew_every().count();
    const ms_t at_local = when + h.skew;  // its timers go by its clock
    h.next_renew = at_local + static_cast<ms_t>(rng_() % every) / tick * tick;
    h.next_heartbeat = at_local + static_cast<ms_t>(rng_() % every) / tick * tick;
    h.next_watch = at_local;
    h.next_failover = at_local + static_cast<ms_t>(rng_() % 1000) / tick * tick;
  }
  void fence(int i, const char* why) {
    log(i, std::string("fenced: ") + why);
    ++out_.fenced;
    power_off(i, now_ + 5000 + static_cast<ms_t>(rng_() % 15000));
  }

  // --- a host's daemon ---
  void step_host(int i) {
    host& h = hosts_[i];
    if (!h.up) return;
    // The hardware watchdog of a real host: 0.3 T after the last pet, whatever the daemon does.
    if (h.armed && now_ - h.last_pet > timeout_ms * 3 / 10) {
      log(i, "watchdog reset");
      ++out_.watchdog_resets;
      power_off(i, now_ + 5000 + static_cast<ms_t>(rng_() % 15000));
      return;
    }
    if (h.paused) return;
    if (!h.armed && h.arm_at >= 0 && h.arm_at <= now_) {
      h.armed = true;
      h.arm_at = -1;
      h.judge.emplace(h.uuid, uuids_, timing_, at(local(i)));
      h.master = master_lease_watch{};
      h.master_lease = false;
      h.incarnation = rng_() | 1;
      h.counter = 0;
      h.last_pet = now_;
    }
    if (h.needs_reset) reset_own_vms(i);
    if (!h.armed) return;
    if (h.write_done >= 0 && h.write_done <= now_) finish_renewal(i);
    if (!h.up) return;
    if (local(i) >= h.next_watch) {
      h.next_watch += 100;
      if (h.judge->must_fence(at(local(i)))) return fence(i, "past its fencing time (watchdog thread)");
      h.last_pet = now_;
    }
    if (local(i) >= h.next_renew && h.write_done < 0) {
      h.next_renew += timing_.renew_every().count();
      begin_renewal(i);
      if (!h.up) return;
    }
    if (local(i) >= h.next_heartbeat) {
      h.next_heartbeat += timing_.renew_every().count();
      for (int j = 0; j < n_; ++j)
        if (j != i) send(message{now_ + latency(), i, j, false, local(i), {}, false});
    }
    if (local(i) >= h.next_failover) {
      h.next_failover += 1000;
      failover(i);
    }
  }

  void begin_renewal(int i) {
    host& h = hosts_[i];
    if (h.judge->must_fence(at(local(i)))) return fence(i, "neither the statefile nor a majority reached in time");
    h.write_began = local(i);
    h.write_done = now_ + h.slow_write;
    if (h.slow_write == 0) finish_renewal(i);
  }
  void finish_renewal(int i) {
    host& h = hosts_[i];
    h.write_done = -1;
    const ha_time began = at(h.write_began);
    if (!h.statefile_lost) {
      std::vector<std::pair<std::uint32_t, std::uint32_t>> heard;
      for (const auto& [uuid, age] : h.judge->heard(began))
        heard.emplace_back(static_cast<std::uint32_t>(std::find(uuids_.begin(), uuids_.end(), uuid) - uuids_.begin()),
                           static_cast<std::uint32_t>(age.count()));
      statefile_[xapid::ha::host_block(i)] = xapid::ha::encode_lease(lease{h.uuid, ++h.counter, h.incarnation, local(i), false, heard});
      h.judge->renewed(began);
      // The others' leases, and what each says it heard.
      for (int j = 0; j < n_; ++j) {
        if (j == i) continue;
        auto l = xapid::ha::decode_lease(statefile_[xapid::ha::host_block(j)]);
        if (!l || l->owner != uuids_[j]) continue;
        if (h.judge->lease_seen(l->owner, l->counter, l->incarnation, at(local(i))))
          for (const auto& [slot, age] : l->heard)
            if (slot < uuids_.size()) h.judge->reported(l->owner, uuids_[slot], std::chrono::milliseconds(age), at(local(i)));
      }
      // The master lease.
      h.master.read(statefile_[xapid::ha::master_block], timing_, at(local(i)), at(local(i)));
      if (h.master.may_take(leads(i), h.uuid, h.incarnation, timing_)) {
        const bool had = h.master_lease;
        statefile_[xapid::ha::master_block] = xapid::ha::encode_lease(h.master.next(h.uuid, h.incarnation, local(i)));
        h.master_lease = !h.judge->must_fence(at(local(i)));
        h.master_written = local(i);
        if (h.master_lease && !had) log(i, "holds the master lease");
      } else {
        h.master_lease = false;
      }
    } else {
      h.master_lease = false;
    }
  }

  // --- heartbeats ---
  ms_t latency() { return 1 + static_cast<ms_t>(rng_() % 20); }
  void send(message m) {
    if (open(m.from, m.to)) network_.push_back(std::move(m));
  }
  void deliver() {
    std::vector<message> due;
    for (auto it = network_.begin(); it != network_.end();) {
      if (it->deliver_at <= now_) {
        due.push_back(std::move(*it));
        it = network_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& m : due) {
      if (!open(m.from, m.to)) continue;  // cut while in flight
      host& to = hosts_[m.to];
      if (!to.reachable()) continue;
      if (!m.answer) {
        message back{now_ + latency(), m.to, m.from, true, m.sent, {}, to.armed && to.judge.has_value()};
        if (back.armed) {
          to.judge->heartbeat_from(hosts_[m.from].uuid, at(local(m.to)));
          back.heard = to.judge->heard(at(local(m.to)));
        }
        send(std::move(back));
        continue;
      }
      // (m.sent is on the clock of `to`, which sent the heartbeat this answers.)
      if (!to.armed || !m.armed || local(m.to) - m.sent > timing_.renew_every().count()) continue;
      if (to.judge->must_fence(at(local(m.to)))) {
        fence(m.to, "the last heartbeats and renewal are older than the fencing time");
        continue;
      }
      to.judge->heartbeat(hosts_[m.from].uuid, at(m.sent));
      for (const auto& [uuid, age] : m.heard) to.judge->reported(hosts_[m.from].uuid, uuid, age, at(local(m.to)));
    }
  }

  // --- the pool's database and the master's failover ---
  void reset_own_vms(int i) {
    // A write through the master: it waits for one.
    bool leader = false;
    for (int j = 0; j < n_; ++j) leader = leader || leads(j);
    if (!leader) return;
    hosts_[i].needs_reset = false;
    declared_dead_[i] = false;
    for (std::size_t v = 0; v < vms_.size(); ++v)
      if (resident_[v] == i && !hosts_[i].domains.count(static_cast<int>(v))) resident_[v] = -1;
  }
  int free_memory(int h) const {
    int used = 0;
    for (std::size_t v = 0; v < vms_.size(); ++v)
      if (resident_[v] == h) used += vms_[v].memory;
    return capacity_ - used;
  }
  void failover(int m) {
    host& me = hosts_[m];
    // As ha_monitor::view: the lease as of a write less than T/2 old, held by the Raft leader.
    if (!me.armed || me.judge->must_fence(at(local(m))) || !me.master_lease || !leads(m) || local(m) - me.master_written >= timeout_ms / 2)
      return;
    for (int h = 0; h < n_; ++h) {
      if (h == m || declared_dead_[h] || !me.judge->dead(uuids_[h], at(local(m)))) continue;
      declared_dead_[h] = true;
      log(m, "declares " + uuids_[h] + " dead");
      for (std::size_t v = 0; v < vms_.size(); ++v)
        if (resident_[v] == h) resident_[v] = -1;
    }
    for (std::size_t v = 0; v < vms_.size(); ++v) {
      if (!vms_[v].is_protected || resident_[v] != -1) continue;
      int best = -1;
      for (int t = 0; t < n_; ++t) {
        const bool live = t == m || (hosts_[t].reachable() && hosts_[t].armed && open(m, t) && open(t, m));
        if (!live || declared_dead_[t] || me.judge->dead(uuids_[t], at(local(m))) || free_memory(t) < vms_[v].memory) continue;
        if (best < 0 || free_memory(t) > free_memory(best)) best = t;
      }
      if (best < 0) continue;
      hosts_[best].domains.insert(static_cast<int>(v));
      resident_[v] = best;
      log(m, "starts vm-" + std::to_string(v) + " on " + uuids_[best]);
      if (awaited_.erase(static_cast<int>(v))) out_.restart_seconds.push_back((now_ - killed_at_) / 1000.0);
    }
  }

  // --- the checker ---
  void fail(const std::string& why) {
    if (!out_.ok) return;
    out_.ok = false;
    out_.why = "at " + std::to_string(now_ / 1000.0) + " s: " + why;
  }
  void check() {
    std::map<int, int> running;
    for (const auto& h : hosts_)
      for (int v : h.domains) running[v]++;
    for (const auto& [v, count] : running)
      if (count > 1) fail("vm-" + std::to_string(v) + " runs on " + std::to_string(count) + " hosts");
    for (int i = 0; i < n_; ++i) {
      raft* r = raft_fixture_get(&raft_, i);
      if (!hosts_[i].reachable() || raft_state(r) != RAFT_LEADER) continue;
      auto [it, fresh] = leaders_.emplace(r->current_term, r->id);
      if (!fresh && it->second != r->id) fail("two leaders in term " + std::to_string(r->current_term));
    }
    if (single_kill_ && killed_at_ >= 0 && !awaited_.empty() && now_ - killed_at_ > timeout_ms + 10000)
      fail(std::to_string(awaited_.size()) + " protected VM(s) of the killed host not running again T + 10 s after");
  }
  void final_checks() {
    out_.acked = acked_.size();
    // Every acknowledged write on every server that lives, once it has caught up.
    int leader = -1;
    for (int i = 0; i < n_; ++i)
      if (leads(i)) leader = i;
    int live = 0;
    for (const auto& h : hosts_) live += h.reachable() ? 1 : 0;
    if (verbose_)
      for (int i = 0; i < n_; ++i) {
        raft* r = raft_fixture_get(&raft_, i);
        std::printf("  end: %s raft state %d term %llu, fixture leader %llu\n", uuids_[i].c_str(), raft_state(r),
                    static_cast<unsigned long long>(r->current_term), static_cast<unsigned long long>(raft_.leader_id));
      }
    if (leader < 0) {
      if (2 * live > n_) fail("no leader at the end, with a majority alive");
      return;
    }
    const raft_index last = raft_last_applied(raft_fixture_get(&raft_, leader));
    for (int i = 0; i < n_; ++i) {
      if (!hosts_[i].reachable()) continue;
      raft_fixture_step_until_applied(&raft_, i, last, 30000);
      std::set<std::uint64_t> have(fsms_[i].applied.begin(), fsms_[i].applied.end());
      for (auto id : acked_)
        if (!have.count(id)) return fail("acknowledged write " + std::to_string(id) + " missing on " + uuids_[i]);
    }
    // Every protected VM runs on exactly one host, the one the database names.
    for (std::size_t v = 0; v < vms_.size(); ++v) {
      if (!vms_[v].is_protected) continue;
      int where = -1;
      for (int i = 0; i < n_; ++i)
        if (hosts_[i].domains.count(static_cast<int>(v))) where = i;
      if (where < 0) return fail("protected vm-" + std::to_string(v) + " is not running at the end");
      if (resident_[v] != where)
        return fail("vm-" + std::to_string(v) + " runs on " + uuids_[where] + " but the database says " +
                    (resident_[v] < 0 ? std::string("halted") : uuids_[resident_[v]]));
    }
  }

  void log(int i, const std::string& what) {
    if (verbose_) std::printf("  %8.2f s  %s: %s\n", now_ / 1000.0, uuids_[i].c_str(), what.c_str());
  }

  std::mt19937_64 rng_;
  std::mt19937_64 raft_rng_;  // Raft's own draws: the fault plan does not depend on them
  bool verbose_;
  int n_ = 3;
  ha_timing timing_;
  ms_t now_ = 0;
  std::vector<host> hosts_;
  std::vector<std::string> uuids_;
  std::vector<std::string> statefile_;
  std::vector<vm> vms_;
  int capacity_ = 0;  // each host's memory
  std::vector<int> resident_;  // the pool database: each VM's host (-1: halted)
  std::vector<bool> declared_dead_;
  std::vector<message> network_;
  std::map<std::pair<int, int>, int> cut_;
  std::vector<fault> faults_;
  bool single_kill_ = false;
  ms_t killed_at_ = -1;
  std::set<int> awaited_;
  raft_fixture raft_{};
  std::vector<writes_fsm> fsms_;
  std::vector<raft_fsm> fsm_defs_;
  std::vector<unsigned> raft_disk_ms_;  // each server's disk latency when no fault slows it
  std::vector<bool> raft_stopped_ = std::vector<bool>(RAFT_FIXTURE_MAX_SERVERS, false);
  std::map<raft_term, raft_id> leaders_;
  std::vector<std::uint64_t> acked_;
  std::uint64_t next_write_ = 0;
  outcome out_;
};

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t first = std::random_device{}();
  if (const char* from = std::getenv("XAPID_SIM_SEED")) first = std::strtoull(from, nullptr, 10);
  std::uint64_t count = 1000;
  bool verbose = false;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--seed" && a + 1 < argc) first = std::strtoull(argv[++a], nullptr, 10), count = 1;
    else if (arg == "--seeds" && a + 2 < argc) first = std::strtoull(argv[a + 1], nullptr, 10), count = std::strtoull(argv[a + 2], nullptr, 10), a += 2;
    else if (arg == "--verbose") verbose = true;
    else {
      std::fprintf(stderr, "usage: %s [--seed N [--verbose] | --seeds FIRST COUNT]\n", argv[0]);
      return 2;
    }
  }
  std::printf("HA pool simulator: seeds %llu .. %llu (T = %lld s)\n", static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(first + count - 1), static_cast<long long>(timeout_ms / 1000));
  std::fflush(stdout);
  std::vector<double> restarts;
  std::uint64_t acked = 0, failed = 0, fenced = 0, resets = 0;
  for (std::uint64_t s = first; s < first + count; ++s) {
    pool_sim sim(s, verbose);
    const outcome o = sim.run();
    restarts.insert(restarts.end(), o.restart_seconds.begin(), o.restart_seconds.end());
    acked += o.acked;
    fenced += o.fenced;
    resets += o.watchdog_resets;
    if (!o.ok) {
      ++failed;
      std::printf("seed %llu FAILED %s (replay: --seed %llu --verbose)\n", static_cast<unsigned long long>(s), o.why.c_str(),
                  static_cast<unsigned long long>(s));
      std::fflush(stdout);
    }
  }
  std::sort(restarts.begin(), restarts.end());
  std::printf("%llu seeds, %llu failed; %llu writes acknowledged, %llu fencings, %llu watchdog resets\n",
              static_cast<unsigned long long>(count), static_cast<unsigned long long>(failed),
              static_cast<unsigned long long>(acked), static_cast<unsigned long long>(fenced), static_cast<unsigned long long>(resets));
  if (!restarts.empty())
    std::printf("single kill -> protected VM running again: p50 %.1f s, max %.1f s over %zu VMs (bound T + 10 = %lld s)\n",
                restarts[restarts.size() / 2], restarts.back(), restarts.size(), static_cast<long long>(timeout_ms / 1000 + 10));
  return failed ? 1 : 0;
}
