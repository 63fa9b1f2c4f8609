#include "gateway/rpc/pieces_made_ahead.hpp"

#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace xapid::gateway {
namespace {

// Process-wide, as the memory it bounds is.
std::atomic<std::size_t> bytes_ahead{0};

// The pieces of one answer, shared by its connection's body and the pool job making them.
class piece_maker final : public std::enable_shared_from_this<piece_maker> {
 public:
  piece_maker(std::unique_ptr<wire::answer_pieces> answer, pool_runner on_pool)
      : answer_(std::move(answer)), on_pool_(std::move(on_pool)) {}
  ~piece_maker() {
    for (const std::string& piece : made_) bytes_ahead.fetch_sub(piece.capacity(), std::memory_order_relaxed);
  }

  // Keeps `piece` (the answer's first, made by the caller) and starts making the next ones.
  void begin(std::string piece) {
    std::unique_lock lock(mu_);
    keep(std::move(piece), answer_->finished());
    start_making(lock);
  }

  // The next piece, moved into `given` (which gives back the memory of the one it held); nullopt
  // when it is not made yet: `made` is then called once it is.
  std::optional<bool> next(std::string& given, std::function<void()> made) {
    std::unique_lock lock(mu_);
    if (!given.empty()) spare_.push_back(std::move(given));
    if (made_.empty() && !all_made_ && !making_) start_making(lock);
    if (made_.empty()) {
      if (all_made_) {
        given.clear();
        return true;
      }
      waiting_ = std::move(made);
      return std::nullopt;
    }
    given = std::move(made_.front());
    made_.pop_front();
    bytes_ahead.fetch_sub(given.capacity(), std::memory_order_relaxed);
    // Made again in a batch once half are gone, not one job per piece.
    if (!making_ && !all_made_ && made_.size() <= pieces_ahead / 2) start_making(lock);
    return all_made_ && made_.empty();
  }

  // The connection has gone: nothing more is made.
  void abandon() {
    std::lock_guard lock(mu_);
    abandoned_ = true;
    waiting_ = nullptr;
  }

 private:
  // With mu_ held, no job making: one is started on the pool, or, when the pool will not take
  // it, the next piece is made here.
  void start_making(std::unique_lock<std::mutex>& lock) {
    making_ = true;
    if (on_pool_([self = shared_from_this()] { self->make(); })) return;
    make_one(lock);
    making_ = false;
  }

  // The pool's job: pieces until enough are ahead (or someone waits for one), then it ends.
  void make() {
    std::unique_lock lock(mu_);
    while (!abandoned_ && !all_made_ &&
           (waiting_ || (made_.size() < pieces_ahead &&
                         bytes_ahead.load(std::memory_order_relaxed) < bytes_ahead_limit))) {
      make_one(lock);
      if (waiting_) {
        auto wake = std::exchange(waiting_, nullptr);
        lock.unlock();
        wake();
        lock.lock();
      }
    }
    making_ = false;
  }

  // With mu_ held: makes one piece, with the lock released while it is written (the answer is
  // this thread's alone while making_ is set).
  void make_one(std::unique_lock<std::mutex>& lock) {
    std::string memory;
    if (!spare_.empty()) {
      memory = std::move(spare_.back());
      spare_.pop_back();
    }
    lock.unlock();
    std::string piece = answer_->next(std::move(memory));
    const bool last = answer_->finished();
    lock.lock();
    keep(std::move(piece), last);
  }

  void keep(std::string piece, bool last) {
    all_made_ = last;
    if (piece.empty()) return;
    bytes_ahead.fetch_add(piece.capacity(), std::memory_order_relaxed);
    made_.push_back(std::move(piece));
  }

  std::mutex mu_;
  std::unique_ptr<wire::answer_pieces> answer_;
  pool_runner on_pool_;
  std::deque<std::string> made_;     // in order, not yet taken
  std::vector<std::string> spare_;   // the memory of pieces sent, to make others in
  bool making_ = false;              // a job makes pieces (or one is made where it was asked for)
  bool all_made_ = false;
  bool abandoned_ = false;
  std::function<void()> waiting_;    // the connection's, while it waits for a piece
};

class made_ahead_body final : public http_body_pieces {
 public:
  explicit made_ahead_body(std::shared_ptr<piece_maker> maker) : maker_(std::move(maker)) {}
  ~made_ahead_body() override { maker_->abandon(); }

  std::optional<std::string_view> next(std::function<void()> made) override {
    std::optional<bool> last = maker_->next(given_, std::move(made));
    if (!last) return std::nullopt;
    finished_ = *last;
    return std::string_view(given_);
  }
  bool finished() const override { return finished_; }

 private:
  std::shared_ptr<piece_maker> maker_;
  std::string given_;  // the piece being sent
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<http_body_pieces> pieces_made_ahead(std::unique_ptr<wire::answer_pieces> answer, std::string first,
                                                    pool_runner on_pool) {
  auto maker = std::make_shared<piece_maker>(std::move(answer), std::move(on_pool));
  maker->begin(std::move(first));
  return std::make_unique<made_ahead_body>(std::move(maker));
}

std::size_t answer_bytes_ahead() noexcept { return bytes_ahead.load(std::memory_order_relaxed); }

}  // namespace xapid::gateway
