#include "ha/ha_monitor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>

#include "common/clock.hpp"
#include "common/ids.hpp"
#include "ha/master_lease.hpp"
#include "pool/membership.hpp"

namespace xapid::ha {
namespace {

std::string armed_mark(const std::string& data_dir) { return data_dir + "/ha-armed"; }
// Left by a host that restarts to recover the pool alone: its incarnation (so the master lease it
// holds stays its own) and the hosts it had judged dead (so its new judge need not wait T again).
std::string recovery_file(const std::string& data_dir) { return data_dir + "/ha-recovering"; }

// T as the pool's records say it, or empty when HA is off or T is not valid.
std::optional<ha_timing> pool_timing(const api::pool& pool) {
  auto find = [](const api::map<std::string, std::string>& m, const char* key) -> const std::string* {
    auto it = m.find(key);
    return it == m.end() ? nullptr : &it->second;
  };
  auto t = choose_timeout(find(pool.ha_configuration, "timeout"), find(pool.other_config, "default_ha_timeout"));
  if (!t.timeout) return std::nullopt;
  return ha_timing{*t.timeout};
}

std::uint64_t random_u64() {
  std::uint64_t v = 0;
  random_bytes(&v, sizeof v);
  return v | 1;  // never 0: a block never written has 0
}

}  // namespace

struct ha_monitor::armed_state {
  armed_state(std::string self, statefile_header h, std::size_t slot, ha_timing timing, ha_time now)
      : header(std::move(h)), slot(slot), self_uuid(std::move(self)), judge(self_uuid, header.hosts, timing, now),
        incarnation(random_u64()) {}
  std::unique_ptr<block_device> file;  // the renewer's alone
  statefile_header header;
  std::size_t slot;
  std::string self_uuid;
  liveness_judge judge;  // under ha_monitor::mu_ from here on
  std::uint64_t counter = 0, incarnation;
  bool master_lease = false;
  ha_time master_written{};   // when its last write of the master block that succeeded began
  master_lease_watch master;  // the renewer's
  std::atomic<bool> fenced{false};
  // The statefile refusing (or not finishing) this host's writes: since when, and whether it
  // has been so for T/2 (lost: logged, told in heartbeat answers). Renewer's, read under mu_.
  std::optional<ha_time> unwritten_since;
  bool statefile_lost = false;
  // The master's: every live host lost it, and HA_STATEFILE_LOST was raised (once, until regained).
  std::map<std::string, bool> peers_lost;  // heartbeats' (armed hosts that answered last)
  bool pool_lost_raised = false;
};

ha_monitor::ha_monitor(host_side side) : side_(std::move(side)) {
  if (!side_.open) side_.open = open_statefile;
  checker_ = std::make_unique<periodic_thread>(std::chrono::milliseconds(500), [this] { check(); });
}

ha_monitor::~ha_monitor() {
  checker_.reset();
  renewer_.reset();
  heart_.reset();
  watchdog_.reset();
}

bool ha_monitor::was_armed(const std::string& data_dir) { return std::filesystem::exists(armed_mark(data_dir)); }

void ha_monitor::clear_armed_mark(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::remove(armed_mark(data_dir), ec);
}

bool ha_monitor::armed() {
  std::lock_guard lock(mu_);
  return armed_ && !recovering_;
}

api::status ha_monitor::emergency_disable() {
  std::lock_guard arming(arming_mu_);
  if (!armed_) return fail(api::errors::HA_NOT_ENABLED());
  excluded_vdi_ = armed_vdi_;
  spdlog::warn("ha.emergency_disable: this host no longer renews its lease nor fences itself");
  disarm();
  return ok_v;
}

void ha_monitor::check() {
  std::lock_guard arming(arming_mu_);
  auto s = side_.db->snapshot();
  const api::pool* pool = s->first<api::pool>();
  std::optional<ha_timing> timing;
  std::string vdi;
  if (pool && pool->ha_enabled && !pool->ha_statefiles.empty()) {
    timing = pool_timing(*pool);
    vdi = pool->ha_statefiles.front();
  }
  const bool want = timing.has_value() && vdi != excluded_vdi_;
  if (!timing) excluded_vdi_.clear();  // HA off: a later enablement arms this host again
  if (armed_ && (!want || vdi != armed_vdi_ || timing->timeout != armed_timeout_)) disarm();
  if (!want || armed_) return;
  if (auto why = arm(*s, vdi, *timing, pool->uuid)) {
    static thread_local ha_time last_said;  // once in 10 s: the pool may take a while to give us our PBD
    if (monotonic_now() - last_said > std::chrono::seconds(10)) {
      spdlog::error("ha.arm.failed reason=\"{}\"", *why);
      last_said = monotonic_now();
    }
  }
}

std::optional<std::string> ha_monitor::arm(const storage::state& s, const std::string& vdi, ha_timing timing,
                                           const std::string& pool_uuid) {
  const api::host* self = s.get<api::host>(side_.host_ref);
  if (!self) return "this host is not in the pool database";
  auto path = side_.statefile_path(s, vdi);
  if (!path) return "the statefile " + vdi + " is not reachable here: " + path.error().description().at(0);
  auto file = side_.open(*path);
  if (!file) return file.error();
  auto block = (*file)->read(0);
  if (!block) return block.error();
  auto header = decode_header(*block);
  if (!header) return "the statefile " + *path + " has no HA header";
  if (header->pool_uuid != pool_uuid) return "the statefile " + *path + " is another pool's";
  std::size_t slot = header->hosts.size();
  for (std::size_t i = 0; i < header->hosts.size(); ++i)
    if (header->hosts[i] == self->uuid) slot = i;
  if (slot == header->hosts.size()) return "this host has no lease block in the statefile";
  auto a = std::make_shared<armed_state>(self->uuid, std::move(*header), slot, timing, monotonic_now());
  a->file = std::move(*file);
  if (std::ifstream carried(recovery_file(side_.data_dir)); carried) {
    std::uint64_t incarnation = 0;
    if (carried >> incarnation && incarnation != 0) a->incarnation = incarnation;
    for (std::string dead; carried >> dead;) a->judge.known_dead(dead, monotonic_now());
    std::error_code ec;
    std::filesystem::remove(recovery_file(side_.data_dir), ec);
    spdlog::info("ha.recovered_alone: the hosts judged dead before the restart stay dead");
  }
  { std::ofstream(armed_mark(side_.data_dir)).put('\n'); }
  {
    std::lock_guard lock(mu_);
    armed_ = a;
  }
  armed_vdi_ = vdi;
  armed_timeout_ = timing.timeout;
  const auto every = timing.renew_every();
  renewer_ = std::make_unique<periodic_thread>(every, [this, a] {
    if (!a->fenced) renew();
  });
  heart_ = std::make_unique<periodic_thread>(every, [this, a] {
    if (!a->fenced) heartbeats();
  });
  if (!side_.watchdog_device.empty()) {
    const auto seconds = std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(timing.timeout * 3 / 10).count());
    auto dog = hardware_watchdog::open(side_.watchdog_device, std::chrono::seconds(seconds));
    if (!dog) spdlog::error("ha.watchdog.not_armed reason=\"{}\" (a stopped daemon leaves its guests running)", dog.error());
    else hardware_ = std::move(*dog);
  }
  watchdog_ = std::make_unique<periodic_thread>(std::chrono::milliseconds(100), [this] { watch(); });
  spdlog::info("ha.armed statefile={} slot={} timeout_ms={}", *path, slot, timing.timeout.count());
  return std::nullopt;
}

void ha_monitor::disarm() {
  renewer_.reset();
  heart_.reset();
  watchdog_.reset();
  hardware_.reset();  // the magic close
  {
    std::lock_guard lock(mu_);
    armed_.reset();
  }
  armed_vdi_.clear();
  clear_armed_mark(side_.data_dir);
  spdlog::info("ha.disarmed");
}

namespace {

// Fences at most once; never returns when the daemon's fence ends the process.
void fence_now(const host_side& side, std::atomic<bool>& fenced, const std::string& why) {
  if (fenced.exchange(true)) return;
  spdlog::critical("ha.fencing reason=\"{}\"", why);
  side.fence(why);
}

}  // namespace

void ha_monitor::renew() {
  std::shared_ptr<armed_state> a;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> heard;
  const auto began = monotonic_now();
  {
    std::lock_guard lock(mu_);
    a = armed_;
    if (!a) return;
    if (a->judge.must_fence(began)) {
      fence_now(side_, a->fenced, "neither the statefile nor a majority of the pool was reached in time");
      return;
    }
    std::map<std::string, std::uint32_t> slot_of;
    for (std::uint32_t i = 0; i < a->header.hosts.size(); ++i) slot_of[a->header.hosts[i]] = i;
    for (const auto& [host, age] : a->judge.heard(began))
      heard.emplace_back(slot_of[host], static_cast<std::uint32_t>(age.count()));
  }
  lease mine{a->self_uuid, ++a->counter, a->incarnation, real_clock().now_ms(), false, std::move(heard)};
  if (auto w = a->file->write(host_block(a->slot), encode_lease(mine)); w) {
    std::lock_guard lock(mu_);
    a->judge.renewed(began);
    if (a->statefile_lost) spdlog::info("ha.statefile.regained (this host's lease is renewed again)");
    a->unwritten_since.reset();
    a->statefile_lost = a->pool_lost_raised = false;
  } else {
    std::lock_guard lock(mu_);
    // Logged when it starts and once it is lost, not at every renewal.
    if (!a->unwritten_since) {
      a->unwritten_since = began;
      spdlog::warn("ha.statefile.write_failed reason=\"{}\"", w.error());
    }
    if (!a->statefile_lost && began - *a->unwritten_since >= a->judge.timing().timeout / 2) {
      a->statefile_lost = true;
      spdlog::warn("ha.statefile.lost reason=\"{}\" (the heartbeats of a majority keep this host alive)", w.error());
    }
  }
  // The others' leases, and what each says it heard.
  for (std::size_t i = 0; i < a->header.hosts.size(); ++i) {
    if (i == a->slot) continue;
    const auto read_began = monotonic_now();  // the block is as it was then, at the latest
    auto block = a->file->read(host_block(i));
    if (!block) continue;
    auto l = decode_lease(*block);
    if (!l || l->owner != a->header.hosts[i]) continue;
    const auto now = monotonic_now();
    std::lock_guard lock(mu_);
    if (a->judge.lease_seen(l->owner, l->counter, l->incarnation, now, read_began))
      for (const auto& [slot, age] : l->heard)
        if (slot < a->header.hosts.size()) a->judge.reported(l->owner, a->header.hosts[slot], std::chrono::milliseconds(age), now);
  }
  // Restarting to recover alone: the lease above is renewed until the daemon goes (so nobody
  // judges this host dead meanwhile), the master lease is left as it is.
  if (recovering_) return;
  // The master lease: renewed by its holder; taken by the pool's master once it stood still for T
  // — or by a voter with no master whose every other voter is dead (a pool of two, or one that
  // lost its majority: nobody else alive can take it).
  const bool leader = side_.leads();
  std::vector<std::string> dead_voters;
  bool alone = false;
  // Only in a log of two voters: with three or more, the voters judged dead that come back
  // (fenced, then started again) would be a majority of the old configuration among themselves,
  // and could elect a master of their own before this one calls them back — their writes then
  // acknowledged, and lost. Such a pool waits for an operator (pool.emergency_transition_to_master,
  // as in xapi).
  if (!leader && side_.other_voters)
    if (auto voters = side_.other_voters(); voters && voters->size() == 1) {
      std::lock_guard lock(mu_);
      const auto now = monotonic_now();
      alone = std::all_of(voters->begin(), voters->end(), [&](const std::string& v) { return a->judge.dead(v, now); });
      dead_voters = *voters;
    }
  // Every host watches the master block (so that a survivor need not start counting T when it
  // finds itself alone); only the master, or a lone survivor, renews or takes it.
  const auto issued = monotonic_now();  // the block is as it was then, at the latest
  auto block = a->file->read(master_block);
  if (!block) {
    std::lock_guard lock(mu_);
    a->master_lease = false;
    return;
  }
  a->master.read(*block, a->judge.timing(), issued, monotonic_now());
  if (!a->master.may_take(leader || alone, a->self_uuid, a->incarnation, a->judge.timing())) {
    std::lock_guard lock(mu_);
    a->master_lease = false;
    return;
  }
  lease master = a->master.next(a->self_uuid, a->incarnation, real_clock().now_ms());
  const auto write_began = monotonic_now();
  auto w = a->file->write(master_block, encode_lease(master));
  {
    std::lock_guard lock(mu_);
    if (w && !a->master_lease) spdlog::info("ha.master_lease.taken host={}", a->self_uuid);
    a->master_lease = static_cast<bool>(w) && !a->judge.must_fence(monotonic_now());
    if (w) a->master_written = write_began;
    if (!a->master_lease || !alone || !side_.recover_alone || recovering_.exchange(true)) return;
  }
  // Every other voter's lease has expired (they fenced) and this host holds the master lease:
  // the pool goes on with this host as its only voter. Its guests run on through the restart.
  {
    std::ofstream out(recovery_file(side_.data_dir));
    out << a->incarnation << '\n';
    for (const auto& v : dead_voters) out << v << '\n';
  }
  clear_armed_mark(side_.data_dir);
  spdlog::warn("ha.recovering_alone dead_voters={}", dead_voters.size());
  if (!side_.recover_alone("HA: every other voter's lease expired and this host holds the master lease")) {
    // Not restarting after all: armed as before (its mark again), to try at the next renewal.
    std::error_code ec;
    std::filesystem::remove(recovery_file(side_.data_dir), ec);
    { std::ofstream(armed_mark(side_.data_dir)).put('\n'); }
    recovering_ = false;
  }
}

void ha_monitor::heartbeats() {
  std::shared_ptr<armed_state> a;
  {
    std::lock_guard lock(mu_);
    a = armed_;
  }
  if (!a) return;
  auto s = side_.db->snapshot();
  struct sent {
    std::string uuid;
    ha_time at;
    std::future<result<peer::PingReply, pool::peer_client::ping_failure>> reply;
  };
  std::vector<sent> out;
  const auto timeout = a->judge.timing().renew_every();
  for (const auto& m : pool::members(*s)) {
    if (m.host_uuid == a->self_uuid || m.peer_address.empty()) continue;
    if (std::find(a->header.hosts.begin(), a->header.hosts.end(), m.host_uuid) == a->header.hosts.end()) continue;
    out.push_back({m.host_uuid, monotonic_now(), std::async(std::launch::async, [this, m, timeout] {
                     return side_.peers->ping(m.peer_address, m.fingerprint, timeout);
                   })});
  }
  std::map<std::string, bool> lost;  // the armed hosts that answered: whether each lost the statefile
  for (auto& h : out) {
    auto r = h.reply.get();
    if (!r || !r->ha_armed()) continue;  // a host not armed is no part of this host's majority
    lost[h.uuid] = r->ha_statefile_lost();
    const auto now = monotonic_now();
    std::lock_guard lock(mu_);
    if (a->judge.must_fence(now)) {  // too late: this answer must not keep a host alive that the pool may have given up
      fence_now(side_, a->fenced, "the last heartbeats and renewal are older than the fencing time");
      return;
    }
    a->judge.heartbeat(h.uuid, h.at);
    for (const auto& heard : r->ha_heard())
      a->judge.reported(h.uuid, heard.host_uuid(), std::chrono::milliseconds(heard.age_ms()), now);
  }
  // On the master: every live host lost the statefile (as xapi's master tells, once). HA goes
  // on by the heartbeats alone meanwhile: nobody fences while it hears a majority, nobody is
  // judged dead while heartbeats with it go on — and no VM is restarted, for no lease expires.
  bool raise = false;
  {
    std::lock_guard lock(mu_);
    a->peers_lost = std::move(lost);
    const bool all = a->statefile_lost && std::all_of(a->peers_lost.begin(), a->peers_lost.end(), [](const auto& e) { return e.second; });
    raise = all && side_.leads() && !a->pool_lost_raised;
    a->pool_lost_raised = a->pool_lost_raised || raise;
  }
  if (raise && side_.alert) {
    spdlog::warn("ha.statefile.lost_by_every_live_host");
    side_.alert("HA_STATEFILE_LOST", 2, "All live servers have lost access to the HA statefile");
  }
}

void ha_monitor::watch() {
  std::lock_guard lock(mu_);
  if (!armed_ || armed_->fenced) return;
  if (armed_->judge.must_fence(monotonic_now()))
    fence_now(side_, armed_->fenced, "neither the statefile nor a majority of the pool was reached in time");
  else if (hardware_)
    hardware_->pet();
}

std::optional<pool::ha_report> ha_monitor::heartbeat_from(const std::string& host_uuid) {
  std::lock_guard lock(mu_);
  pool::ha_report out;
  if (!armed_ || armed_->fenced || recovering_) return std::nullopt;
  const auto now = monotonic_now();
  armed_->judge.heartbeat_from(host_uuid, now);
  for (const auto& [host, age] : armed_->judge.heard(now)) out.heard.emplace_back(host, static_cast<std::uint32_t>(age.count()));
  out.statefile_lost = armed_->statefile_lost;
  return out;
}

ha_view ha_monitor::view() {
  ha_view v;
  std::vector<std::string> dead_uuids;
  const bool leads = side_.leads && side_.leads();
  {
    std::lock_guard lock(mu_);
    // Past its fencing time (a process continued after a stop, before its watchdog thread ran)
    // this host judges nothing: its view of the others is as old as its pause.
    if (!armed_ || armed_->fenced || recovering_ || armed_->judge.must_fence(monotonic_now())) return v;
    v.armed = true;
    v.timeout = armed_->judge.timing().timeout;
    const auto now = monotonic_now();
    // Held as of a write that began less than T/2 ago, and by the pool's master: a renewer held
    // by a slow statefile, or a master deposed since its last renewal, must not act on a lease
    // another host may be taking (the holder's flag alone was the attack review's find).
    v.master_lease = armed_->master_lease && leads && now - armed_->master_written < v.timeout / 2;
    for (const auto& h : armed_->judge.hosts())
      if (armed_->judge.dead(h, now)) dead_uuids.push_back(h);
  }
  if (dead_uuids.empty()) return v;
  auto s = side_.db->snapshot();
  s->for_each(storage::schema::get().class_of<api::host>(), [&](const std::string& ref, const storage::row& r) {
    const auto* h = static_cast<const api::host*>(r.record.get());
    if (std::find(dead_uuids.begin(), dead_uuids.end(), h->uuid) != dead_uuids.end()) v.dead.push_back(ref);
    return true;
  });
  return v;
}

}  // namespace xapid::ha
