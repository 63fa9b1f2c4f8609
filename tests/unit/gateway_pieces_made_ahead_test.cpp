// A large answer's pieces made on the call pool ahead of their sending (pieces_made_ahead): put
// together they are exactly the whole answer; a reader that stops holds at most `pieces_ahead`
// made pieces and nothing is made further; a connection that waits for a piece is told when it
// is made; a pool that refuses the job leaves the pieces to be made where they are asked for; a
// body dropped part way stops its maker.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gateway/rpc/call_pool.hpp"
#include "gateway/rpc/pieces_made_ahead.hpp"
#include "proto/wire/emitter.hpp"
#include "proto/wire/jsonrpc.hpp"

namespace xapid::gateway {
namespace {

// A table of `rows` rows, written row by row, as get_all_records' value is.
class table final : public wire::deferred {
 public:
  explicit table(int rows) : rows_(rows) {}
  void emit(wire::emitter& out) const override {
    auto c = cursor();
    while (c->emit_next(out)) {
    }
  }
  std::size_t size_hint() const override { return static_cast<std::size_t>(rows_) * 200; }
  std::unique_ptr<wire::deferred_cursor> cursor() const override { return std::make_unique<rows_cursor>(rows_); }

 private:
  class rows_cursor final : public wire::deferred_cursor {
   public:
    explicit rows_cursor(int rows) : rows_(rows) {}
    bool emit_next(wire::emitter& out) override {
      if (at_ > rows_) return false;
      if (at_ == 0) out.begin_struct();
      if (at_ == rows_) {
        out.end_struct();
      } else {
        out.name("OpaqueRef:" + std::to_string(at_));
        out.begin_struct();
        out.field("row");
        out.integer(at_);
        out.field("text");
        out.string(std::string(150, static_cast<char>('a' + at_ % 26)));
        out.end_struct();
      }
      ++at_;
      return true;
    }

   private:
    int rows_, at_ = 0;
  };
  int rows_;
};

const wire::jsonrpc::request json{{}, wire::jsonrpc::version::v2_0, "1"};

wire::response answer_of(int rows) { return {true, wire::value(std::make_shared<const table>(rows)), {}}; }

// The body of a 20,000-row answer (about 60 pieces) and the whole answer it must make.
struct large_answer {
  std::string whole = wire::jsonrpc::write_response(json, answer_of(20000));
  std::unique_ptr<http_body_pieces> body;
  explicit large_answer(pool_runner on_pool) {
    auto pieces = wire::jsonrpc::write_response_in_pieces(json, answer_of(20000));
    std::string first = pieces->next({});
    body = pieces_made_ahead(std::move(pieces), std::move(first), std::move(on_pool));
  }
};

// Takes every piece as a connection does: when one is not made yet, waits to be told.
std::string take_all(http_body_pieces& body, std::size_t* waits = nullptr) {
  std::string all;
  for (;;) {
    std::mutex mu;
    std::condition_variable cv;
    bool made = false;
    std::optional<std::string_view> piece = body.next([&] {
      std::lock_guard lock(mu);
      made = true;
      cv.notify_one();
    });
    if (!piece) {
      if (waits) ++*waits;
      std::unique_lock lock(mu);
      EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return made; })) << "the maker never said";
      continue;
    }
    all.append(*piece);
    if (body.finished()) return all;
    if (piece->empty()) {
      ADD_FAILURE() << "an empty piece before the last";
      return all;
    }
  }
}

TEST(pieces_made_ahead, the_pieces_made_on_the_pool_are_exactly_the_whole_answer) {
  call_pool pool;
  large_answer a([&pool](std::function<void()> job) { return pool.submit("root", true, std::move(job)); });
  EXPECT_EQ(take_all(*a.body), a.whole);
  a.body.reset();
  pool.stop();
  EXPECT_EQ(answer_bytes_ahead(), 0u) << "nothing stays counted once the answer is gone";
}

TEST(pieces_made_ahead, a_reader_that_stops_holds_a_few_pieces_and_nothing_more_is_made) {
  call_pool pool;
  large_answer a([&pool](std::function<void()> job) { return pool.submit("root", true, std::move(job)); });
  std::string got(*a.body->next([] {}));  // the first; the maker goes on ahead
  // Given time, the maker stops with `pieces_ahead` pieces made, however many are left.
  std::size_t held = 0;
  for (int i = 0; i < 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if ((held = answer_bytes_ahead()) >= pieces_ahead * wire::answer_piece_bytes) break;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(answer_bytes_ahead(), held) << "nothing more is made while the reader stops";
  EXPECT_GE(held, pieces_ahead * wire::answer_piece_bytes);
  EXPECT_LE(held, pieces_ahead * (wire::answer_piece_bytes + (32u << 10)));
  got += take_all(*a.body);
  EXPECT_EQ(got, a.whole);
  a.body.reset();
  pool.stop();
  EXPECT_EQ(answer_bytes_ahead(), 0u);
}

TEST(pieces_made_ahead, a_pool_that_refuses_leaves_each_piece_made_where_it_is_asked_for) {
  std::size_t asked = 0;
  large_answer a([&asked](std::function<void()>) {
    ++asked;
    return false;
  });
  std::size_t waits = 0;
  EXPECT_EQ(take_all(*a.body, &waits), a.whole);
  EXPECT_EQ(waits, 0u) << "a piece made where it is asked for is never waited for";
  EXPECT_GT(asked, 10u) << "the pool was asked again for later pieces";
  a.body.reset();
  EXPECT_EQ(answer_bytes_ahead(), 0u);
}

TEST(pieces_made_ahead, a_body_dropped_part_way_stops_its_maker) {
  call_pool pool;
  std::weak_ptr<int> alive;
  {
    auto token = std::make_shared<int>(0);
    alive = token;
    // The runner holds `token`: it lives as long as the maker that uses it.
    large_answer a([&pool, token](std::function<void()> job) { return pool.submit("root", true, std::move(job)); });
    ASSERT_TRUE(a.body->next([] {}));
  }
  pool.stop();  // waits for a job still running
  EXPECT_TRUE(alive.expired()) << "the maker (and the answer and snapshot it holds) went with its body";
  EXPECT_EQ(answer_bytes_ahead(), 0u);
}

}  // namespace
}  // namespace xapid::gateway
