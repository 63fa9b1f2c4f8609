// HA's statefile blocks and the liveness judgement (ha/): the byte formats round-trip and a
// torn block reads as nothing; a host fences only once it has neither renewed nor heard a
// majority for fence_after; another host is dead only once nothing of it was seen for T — not
// its lease, not a heartbeat, not a report — and every live reporter has spoken lately.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "ha/liveness_judge.hpp"
#include "ha/master_lease.hpp"
#include "ha/statefile.hpp"
#include "ha/watchdog.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::ha {
namespace {

using namespace std::chrono_literals;

TEST(ha_statefile, blocks_round_trip_and_a_torn_one_reads_as_nothing) {
  statefile_header h{"pool-uuid", {"a", "b", "c"}};
  const std::string hb = encode_header(h);
  ASSERT_EQ(hb.size(), statefile_block);
  auto back = decode_header(hb);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->pool_uuid, "pool-uuid");
  EXPECT_EQ(back->hosts, h.hosts);

  lease l{"b", 42, 7, 1700000000000, false, {{0, 120}, {2, 5000}}};
  const std::string lb = encode_lease(l);
  ASSERT_EQ(lb.size(), statefile_block);
  EXPECT_EQ(decode_lease(lb), l);
  std::string torn = lb;
  torn[20] ^= 1;
  EXPECT_FALSE(decode_lease(torn));
  EXPECT_FALSE(decode_lease(std::string(statefile_block, '\0')));  // never written
  EXPECT_FALSE(decode_lease(hb));                                  // a header is no lease
  EXPECT_FALSE(decode_header(lb));
  EXPECT_FALSE(decode_lease(lb.substr(0, 100)));
  // 64 hosts (xapi's most) fit the header.
  statefile_header many{"p", {}};
  for (int i = 0; i < 64; ++i) many.hosts.push_back("00000000-0000-4000-8000-0000000000" + std::to_string(10 + i));
  auto big = decode_header(encode_header(many));
  ASSERT_TRUE(big);
  EXPECT_EQ(big->hosts.size(), 64u);
}

TEST(ha_statefile, timeout_comes_from_the_configuration_then_the_pool_then_60) {
  const std::string ten = "10", nine = "9", word = "ten", thirty = "30";
  EXPECT_EQ(choose_timeout(nullptr, nullptr).timeout, 60s);
  EXPECT_EQ(choose_timeout(&ten, &thirty).timeout, 10s);
  EXPECT_EQ(choose_timeout(nullptr, &thirty).timeout, 30s);
  EXPECT_FALSE(choose_timeout(&nine, nullptr).timeout);
  EXPECT_EQ(choose_timeout(&word, nullptr).invalid, "ten");
}

struct judge_test : ::testing::Test {
  ha_time t0 = ha_clock::time_point(1000s);
  ha_timing timing{10s};  // fence_after 6 s
  liveness_judge judge{"a", {"a", "b", "c"}, timing, t0};
  // `j` reads `host`'s lease, standing still at `counter`, every second over (from, to].
  static void read_still(liveness_judge& j, const std::string& host, std::uint64_t counter, ha_time from, ha_time to) {
    for (auto t = from + 1s; t <= to; t += 1s) j.lease_seen(host, counter, 1, t);
  }
};

TEST_F(judge_test, a_host_fences_once_it_has_neither_renewed_nor_heard_a_majority) {
  EXPECT_FALSE(judge.must_fence(t0 + 5s));
  EXPECT_TRUE(judge.must_fence(t0 + 6s));
  judge.renewed(t0 + 5s);  // counted from the write's start
  EXPECT_FALSE(judge.must_fence(t0 + 10s));
  EXPECT_TRUE(judge.must_fence(t0 + 11s));
  // Heartbeats with one of two peers: a majority of three with itself.
  judge.heartbeat("c", t0 + 10s);
  EXPECT_FALSE(judge.must_fence(t0 + 15s));
  EXPECT_TRUE(judge.must_fence(t0 + 16s));
  // A heartbeat *from* a peer is no proof that this host reaches a majority.
  judge.heartbeat_from("b", t0 + 16s);
  EXPECT_TRUE(judge.must_fence(t0 + 16s));
}

TEST_F(judge_test, a_pool_of_two_needs_the_other_and_a_pool_of_one_never_fences_for_the_network) {
  liveness_judge two{"a", {"a", "b"}, timing, t0};
  two.heartbeat("b", t0 + 1s);
  EXPECT_FALSE(two.must_fence(t0 + 6s));
  EXPECT_TRUE(two.must_fence(t0 + 7s));
  liveness_judge one{"a", {"a"}, timing, t0};
  EXPECT_FALSE(one.must_fence(t0 + 100s));
}

TEST_F(judge_test, a_host_is_dead_only_when_nothing_of_it_was_seen_for_t) {
  // The first read of a lease proves nothing; a change does.
  judge.lease_seen("b", 5, 1, t0);
  judge.lease_seen("c", 9, 1, t0);
  for (auto t = t0 + 1s; t <= t0 + 10s; t += 1s) {
    judge.lease_seen("c", 9 + (t - t0).count(), 1, t);  // c renews; b stands still
    judge.lease_seen("b", 5, 1, t);
  }
  EXPECT_FALSE(judge.dead("b", t0 + 9s));
  EXPECT_TRUE(judge.dead("b", t0 + 10s));
  EXPECT_FALSE(judge.dead("c", t0 + 10s));
  // A restart (new incarnation, counter from 1) is a sign of life.
  judge.lease_seen("b", 1, 2, t0 + 10s);
  EXPECT_FALSE(judge.dead("b", t0 + 19s));
}

TEST_F(judge_test, a_report_of_a_heartbeat_keeps_a_host_alive) {
  judge.lease_seen("b", 5, 1, t0);
  judge.heartbeat("c", t0 + 1s);
  // c heard b 1 s before this report (b lost the statefile but talks to c).
  judge.reported("c", "b", 1s, t0 + 8s);
  read_still(judge, "b", 5, t0 + 8s, t0 + 16s);
  EXPECT_FALSE(judge.dead("b", t0 + 16s));
  judge.heartbeat("c", t0 + 16s);
  judge.lease_seen("b", 5, 1, t0 + 17s);
  EXPECT_TRUE(judge.dead("b", t0 + 17s));
}

TEST_F(judge_test, a_reporter_not_heard_lately_holds_back_a_death) {
  judge.lease_seen("b", 5, 1, t0);
  judge.heartbeat("c", t0 + 1s);  // c's last report
  // b has been silent for T, but c — alive as far as anyone knows — has not reported within
  // T - fence_after - a heartbeat's timeout: it may have heard b since.
  read_still(judge, "b", 5, t0, t0 + 10s);
  EXPECT_FALSE(judge.dead("b", t0 + 10s));
  judge.heartbeat("c", t0 + 8s);
  EXPECT_TRUE(judge.dead("b", t0 + 10s));
}

// The simulator's find (seed 274): a master whose statefile writes were slow read the others'
// leases only after each write; a host cut off from the network alone renewed all along, unread,
// and was judged dead while it still ran its VMs. Standing still must be read.
TEST_F(judge_test, a_lease_unread_is_not_a_lease_unrenewed) {
  judge.lease_seen("b", 5, 1, t0);
  judge.lease_seen("b", 6, 1, t0 + 1s);  // b renews: evidence at t0 + 1 s
  judge.heartbeat("c", t0 + 9s);
  // No read of b's lease since, and nothing else of b: as long as this host does not read it,
  // b is not dead, however long.
  EXPECT_FALSE(judge.dead("b", t0 + 11s));
  EXPECT_FALSE(judge.dead("b", t0 + 30s));
  // A read that finds it moved keeps it alive; one that finds it still, T after, makes it dead.
  judge.lease_seen("b", 9, 1, t0 + 30s);
  EXPECT_FALSE(judge.dead("b", t0 + 30s));
  judge.heartbeat("c", t0 + 38s);
  read_still(judge, "b", 9, t0 + 30s, t0 + 40s);
  EXPECT_TRUE(judge.dead("b", t0 + 40s));
}

// A read answered late shows the block as it was when the read was issued, at the latest: it
// proves standing still only up to then (the owner may have renewed while the read was stuck).
TEST_F(judge_test, a_slow_read_proves_standing_still_only_up_to_its_start) {
  judge.lease_seen("b", 5, 1, t0);
  judge.lease_seen("b", 6, 1, t0 + 1s);  // evidence at t0 + 1 s
  read_still(judge, "b", 6, t0 + 1s, t0 + 5s);
  judge.heartbeat("c", t0 + 12s);
  judge.lease_seen("b", 6, 1, t0 + 13s, t0 + 5s);  // issued at t0 + 5 s, answered at t0 + 13 s
  EXPECT_FALSE(judge.dead("b", t0 + 13s));
  read_still(judge, "b", 6, t0 + 5s, t0 + 11s);  // issued and answered at once
  EXPECT_TRUE(judge.dead("b", t0 + 13s));
}

// The judge's own clock jumps (its VM paused and resumed, a clock stepped): the other host's
// lease, read once after the jump, has not moved yet — it renewed on time in the real world.
// Standing still is credited at most T/5 a read, so one read cannot stand for T of silence.
TEST_F(judge_test, a_jump_of_the_judges_clock_is_not_the_others_silence) {
  liveness_judge two{"a", {"a", "b"}, timing, t0};
  for (int k = 0; k <= 5; ++k) two.lease_seen("b", 1 + k, 1, t0 + k * 1s);  // b renews every second
  const ha_time after = t0 + 35s;  // a jump of 30 s, with no second passing for b
  two.renewed(after);
  two.lease_seen("b", 6, 1, after);
  EXPECT_FALSE(two.dead("b", after));
  two.lease_seen("b", 7, 1, after + 1s);  // b's next renewal, a second later
  EXPECT_FALSE(two.dead("b", after + 1s));
  // Had b stopped for good, reads T apart after the jump make it dead, as always.
  read_still(two, "b", 7, after + 1s, after + 11s);
  EXPECT_TRUE(two.dead("b", after + 11s));
}

// The master lease is free for another host once it stood still for T as that host's reads show,
// each read credited with at most T/5 since the one before: a jump of its clock is not T.
// Evidence may come dated before reads already made (a report says a host was heard some time
// ago): the reads after it still count (integration.ha_five found a restart at 20 s, not 11).
TEST_F(judge_test, evidence_dated_in_the_past_keeps_the_reads_made_after_it) {
  judge.lease_seen("b", 5, 1, t0);
  read_still(judge, "b", 5, t0, t0 + 10s);
  judge.heartbeat("c", t0 + 10s);
  judge.reported("c", "b", 9500ms, t0 + 10s);  // c heard b at t0 + 0.5 s
  EXPECT_FALSE(judge.dead("b", t0 + 10s));    // 9.5 s since
  judge.lease_seen("b", 5, 1, t0 + 11s);
  EXPECT_TRUE(judge.dead("b", t0 + 11s));
}

TEST_F(judge_test, the_master_lease_is_free_after_t_of_reads_not_after_a_jump) {
  auto block = [](std::uint64_t counter) { return xapid::ha::encode_lease({"b", counter, 1, 0, false, {}}); };
  xapid::ha::master_lease_watch watch;
  watch.read(block(4), timing, t0, t0);
  EXPECT_FALSE(watch.may_take(true, "a", 1, timing));
  watch.read(block(4), timing, t0 + 30s, t0 + 30s);  // the clock jumped: one read, 30 s later, counts 2 s
  EXPECT_FALSE(watch.may_take(true, "a", 1, timing));
  for (auto t = t0 + 31s; t <= t0 + 37s; t += 1s) watch.read(block(4), timing, t, t);
  EXPECT_FALSE(watch.may_take(true, "a", 1, timing));  // 9 s
  watch.read(block(4), timing, t0 + 38s, t0 + 38s);
  EXPECT_TRUE(watch.may_take(true, "a", 1, timing));   // 10 s
  EXPECT_FALSE(watch.may_take(false, "a", 1, timing));  // never for a host not entitled
  // b renewed, seen by a slow read (issued at 38 s, answered at 39.9 s): b may have written just
  // before the answer, so standing still counts from the answer, not from the issue.
  watch.read(block(5), timing, t0 + 38s, t0 + 39900ms);
  for (auto t = t0 + 40900ms; t <= t0 + 48900ms; t += 1s) watch.read(block(5), timing, t, t);
  EXPECT_FALSE(watch.may_take(true, "a", 1, timing));  // 9 s since the answer (10.9 since the issue)
  watch.read(block(5), timing, t0 + 49900ms, t0 + 49900ms);
  EXPECT_TRUE(watch.may_take(true, "a", 1, timing));
}

TEST_F(judge_test, a_silent_majority_is_never_judged_dead_nor_a_host_that_never_armed) {
  // b and c may reach each other and not this host nor the statefile: they live on as a
  // majority, so neither is dead however long this host hears nothing.
  judge.lease_seen("b", 5, 1, t0);
  judge.lease_seen("c", 9, 1, t0);
  EXPECT_FALSE(judge.dead("b", t0 + 100s));
  EXPECT_FALSE(judge.dead("c", t0 + 100s));
  // In a pool of two, one silent host is no majority: the survivor may judge it dead.
  liveness_judge two{"a", {"a", "b"}, timing, t0};
  two.lease_seen("b", 1, 1, t0);
  read_still(two, "b", 1, t0, t0 + 10s);
  EXPECT_TRUE(two.dead("b", t0 + 10s));
  // Known dead across a restart: dead at once, and its lease read afterwards (standing still) is
  // a baseline, not a sign of life.
  liveness_judge after{"a", {"a", "b"}, timing, t0};
  after.known_dead("b", t0);
  after.lease_seen("b", 7, 3, t0 + 1s);
  EXPECT_TRUE(after.dead("b", t0 + 1s));
  after.lease_seen("b", 8, 3, t0 + 2s);  // it renews: alive
  EXPECT_FALSE(after.dead("b", t0 + 2s));
  // A host whose lease block was never written (it never armed) is never dead.
  liveness_judge fresh{"a", {"a", "b"}, timing, t0};
  EXPECT_FALSE(fresh.dead("b", t0 + 100s));
}

TEST_F(judge_test, what_a_host_reports_is_what_it_heard_within_t) {
  judge.heartbeat("b", t0 + 1s);
  judge.heartbeat_from("c", t0 + 2s);
  auto heard = judge.heard(t0 + 3s);
  ASSERT_EQ(heard.size(), 2u);
  EXPECT_EQ(heard[0], std::make_pair(std::string("b"), std::chrono::milliseconds(2000)));
  EXPECT_EQ(heard[1], std::make_pair(std::string("c"), std::chrono::milliseconds(1000)));
  EXPECT_EQ(judge.heard(t0 + 12s).size(), 0u);
}

// The watchdog protocol on our side: a byte per pet, and the magic 'V' only on a deliberate
// close (a file stands in for the device: its timeout cannot be set, which is only logged).
TEST(ha_watchdog, pets_are_writes_and_only_a_deliberate_close_says_v) {
  testing::temp_dir dir;
  const std::string device = (dir / "watchdog");
  { std::ofstream(device).flush(); }
  {
    auto dog = hardware_watchdog::open(device, std::chrono::seconds(3));
    ASSERT_TRUE(dog.ok()) << dog.error();
    (*dog)->pet();
    (*dog)->pet();
  }
  std::ifstream in(device, std::ios::binary);
  const std::string written{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  EXPECT_EQ(written, std::string("\0\0V", 3));
  EXPECT_FALSE(hardware_watchdog::open(dir / "missing", std::chrono::seconds(3)).ok());
}

}  // namespace
}  // namespace xapid::ha
