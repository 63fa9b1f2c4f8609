// The call pool: lanes take turns, a lane's share is bounded, root's lanes get through when
// every general thread is held, a full lane refuses, stopping drops what waits, and a call
// waiting for its commit leaves its lane's share to another, up to a bound.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "common/waiting.hpp"
#include "gateway/rpc/call_pool.hpp"

namespace xapid::gateway {
namespace {

// A gate the jobs of a test wait at until it opens.
struct gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
  }
};

TEST(call_pool, a_lane_that_holds_its_share_does_not_hold_up_another) {
  call_pool pool({8, 1, 2, 1024, std::chrono::seconds(30)});
  gate g;
  std::atomic<int> flood_started{0};
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(pool.submit("address/attacker", false, [&] {
      ++flood_started;
      g.wait();
    }));
  std::promise<void> other;
  ASSERT_TRUE(pool.submit("user/alice", false, [&] { other.set_value(); }));
  EXPECT_EQ(other.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  for (int i = 0; i < 2000 && flood_started < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(flood_started.load(), 2);  // its share: two at once, the rest queued
  g.release();
}

TEST(call_pool, roots_lane_gets_through_when_every_general_thread_is_held) {
  call_pool pool({4, 1, 4, 1024, std::chrono::seconds(30)});
  gate g;
  std::atomic<int> held{0};
  for (int user = 0; user < 4; ++user)
    for (int i = 0; i < 4; ++i)
      ASSERT_TRUE(pool.submit("user/u" + std::to_string(user), false, [&] {
        ++held;
        g.wait();
      }));
  std::promise<void> root;
  ASSERT_TRUE(pool.submit("local", true, [&] { root.set_value(); }));
  EXPECT_EQ(root.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_LE(held.load(), 4);  // the general threads' bound
  g.release();
}

TEST(call_pool, a_full_lane_refuses_and_others_still_queue) {
  call_pool pool({1, 1, 1, 3, std::chrono::seconds(30)});
  gate g;
  std::promise<void> running;
  ASSERT_TRUE(pool.submit("address/a", false, [&] {
    running.set_value();
    g.wait();
  }));
  running.get_future().wait();
  // One runs; three may wait; the fifth is refused.
  int accepted = 0;
  for (int i = 0; i < 4; ++i) accepted += pool.submit("address/a", false, [] {});
  EXPECT_EQ(accepted, 3);
  EXPECT_TRUE(pool.submit("address/b", false, [] {}));
  g.release();
}

TEST(call_pool, lanes_take_turns) {
  call_pool pool({1, 0, 1, 1024, std::chrono::seconds(30)});
  gate g;
  std::mutex mu;
  std::vector<std::string> order;
  ASSERT_TRUE(pool.submit("first", false, [&] { g.wait(); }));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.submit("a", false, [&] { std::lock_guard l(mu); order.push_back("a"); }));
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.submit("b", false, [&] { std::lock_guard l(mu); order.push_back("b"); }));
  }
  std::promise<void> last;
  ASSERT_TRUE(pool.submit("c", false, [&] { last.set_value(); }));
  g.release();
  ASSERT_EQ(last.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  pool.stop();
  ASSERT_GE(order.size(), 2u);
  EXPECT_EQ(order[0], "a");
  EXPECT_EQ(order[1], "b");  // not a's three first
}

TEST(call_pool, calls_waiting_for_their_commit_leave_their_share_to_others_of_the_lane_up_to_a_bound) {
  // 8 threads; a lane runs 2 at once and has 3 more waiting for commits.
  call_pool pool({8, 1, 2, 1024, std::chrono::seconds(30), 3});
  gate g;
  std::atomic<int> started{0}, waiting_now{0};
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(pool.submit("user/writer", false, [&] {
      ++started;
      waiting_scope waiting;  // as database::commit does around its wait
      ++waiting_now;
      g.wait();
    }));
  for (int i = 0; i < 2000 && started < 5; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // 3 counted as waiting, then 2 whose waits count as running: the share is full again.
  EXPECT_EQ(started.load(), 5);
  // Another lane still gets a thread.
  std::promise<void> other;
  ASSERT_TRUE(pool.submit("user/alice", false, [&] { other.set_value(); }));
  EXPECT_EQ(other.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  g.release();
  for (int i = 0; i < 5000 && waiting_now < 20; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(waiting_now.load(), 20);  // every call ran, none lost
  // And the lane's counts came back to nothing: it is gone, and nothing runs.
  for (int i = 0; i < 2000 && pool.current().lanes > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(pool.current().lanes, 0u);
  EXPECT_EQ(pool.current().running, 0u);
}

TEST(call_pool, stopping_waits_for_running_jobs_and_drops_queued_ones) {
  call_pool pool({1, 0, 1, 1024, std::chrono::seconds(30)});
  std::atomic<bool> ran_first{false}, ran_second{false};
  std::promise<void> started;
  ASSERT_TRUE(pool.submit("x", false, [&] {
    started.set_value();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ran_first = true;
  }));
  ASSERT_TRUE(pool.submit("x", false, [&] { ran_second = true; }));
  started.get_future().wait();
  pool.stop();
  EXPECT_TRUE(ran_first);
  EXPECT_FALSE(ran_second);
  EXPECT_FALSE(pool.submit("x", false, [] {}));
}

}  // namespace
}  // namespace xapid::gateway
