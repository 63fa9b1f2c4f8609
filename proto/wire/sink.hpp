// The output buffer both writers append to (private to proto/wire): a std::string written
// through a raw cursor, so that each small append is a bounds check and a memcpy rather than an
// out-of-line std::string call.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace xapid::wire::detail {

class sink {
 public:
  // Appends to `out`, which holds the result (and only it) once the sink is destroyed.
  explicit sink(std::string& out, std::size_t expected = 256) : out_(out), start_(out.size()), expected_(expected) {
    std::size_t used = out_.size();
    out_.resize(std::max(out_.capacity(), used + expected));
    cur_ = out_.data() + used;
    end_ = out_.data() + out_.size();
  }
  ~sink() { out_.resize(static_cast<std::size_t>(cur_ - out_.data())); }
  sink(const sink&) = delete;
  sink& operator=(const sink&) = delete;

  // Appends are forced inline: a literal's memcpy then compiles to a few moves.
  template <std::size_t N>
  [[gnu::always_inline]] void put(const char (&lit)[N]) {
    put(lit, N - 1);
  }
  [[gnu::always_inline]] void put(std::string_view s) { put(s.data(), s.size()); }
  [[gnu::always_inline]] void put(const char* p, std::size_t n) {
    reserve(n);
    std::memcpy(cur_, p, n);
    cur_ += n;
  }
  [[gnu::always_inline]] void put(char c) {
    reserve(1);
    *cur_++ = c;
  }
  template <class N>
  void number(N n) {
    reserve(32);
    if constexpr (std::is_integral_v<N>) {
      if (static_cast<std::make_unsigned_t<N>>(n) < 10u) {  // most ints in records are 0 or a small count
        *cur_++ = static_cast<char>('0' + n);
        return;
      }
    }
    cur_ = std::to_chars(cur_, cur_ + 32, n).ptr;  // shortest round-trip for double
  }
  // Room for `n` more bytes; write them at cursor() and then advance(n) or less.
  [[gnu::always_inline]] void reserve(std::size_t n) {
    if (static_cast<std::size_t>(end_ - cur_) < n) grow(n);
  }
  char* cursor() { return cur_; }
  void advance(std::size_t n) { cur_ += n; }

  // A sink that is emptied again and again (an answer written in pieces): how much was appended
  // since the sink began or last handed over, and that, as a string of its own, starting over in
  // `storage`'s memory (a string handed over before and given back): pieces are handed on, and
  // may be kept while they are sent, without a copy. Only for a sink begun on an empty string.
  std::size_t size() const { return static_cast<std::size_t>(cur_ - begin()); }
  std::string hand_over(std::string storage) {
    out_.resize(size());
    std::string written = std::move(out_);
    // Written over from its start, not cleared first: growing a string zero-fills what it adds.
    out_ = std::move(storage);
    out_.resize(std::max(out_.capacity(), expected_));
    cur_ = out_.data();
    end_ = out_.data() + out_.size();
    return written;
  }

 private:
  [[gnu::noinline]] void grow(std::size_t n) {
    std::size_t used = static_cast<std::size_t>(cur_ - out_.data());
    out_.resize(std::max(out_.size() * 2, used + n));
    cur_ = out_.data() + used;
    end_ = out_.data() + out_.size();
  }

  const char* begin() const { return out_.data() + start_; }

  std::string& out_;
  std::size_t start_;  // where this sink's bytes begin in out_
  std::size_t expected_;  // room to make for each piece handed over
  char* cur_;
  char* end_;
};

}  // namespace xapid::wire::detail
