// result<T>: a value or an error, the return type of everything fallible in xapid.
// Errors are values; no exception crosses a component boundary.
#pragma once

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace xapid {

// Wraps an error so that result<T>'s constructors cannot confuse it with a T.
template <class E>
struct failure {
  E error;
};

template <class E>
failure<std::decay_t<E>> fail(E&& e) {
  return {std::forward<E>(e)};
}

template <class T, class E>
class [[nodiscard]] result {
 public:
  template <class U = T, class = std::enable_if_t<std::is_constructible_v<T, U&&>>>
  result(U&& v) : state_(std::in_place_index<0>, std::forward<U>(v)) {}  // NOLINT: implicit on purpose
  template <class F>
  result(failure<F> f) : state_(std::in_place_index<1>, std::move(f.error)) {}  // NOLINT

  bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(state_); }
  const T& value() const& { assert(ok()); return std::get<0>(state_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  E& error() & { assert(!ok()); return std::get<1>(state_); }
  const E& error() const& { assert(!ok()); return std::get<1>(state_); }
  E&& error() && { assert(!ok()); return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, E> state_;
};

// result<void>: success carries nothing.
struct ok_t {};
inline constexpr ok_t ok_v{};

template <class E>
class [[nodiscard]] result<void, E> {
 public:
  result() = default;
  result(ok_t) {}  // NOLINT
  template <class F>
  result(failure<F> f) : error_(std::move(f.error)), failed_(true) {}  // NOLINT

  bool ok() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return ok(); }
  const E& error() const& { assert(failed_); return error_; }
  E&& error() && { assert(failed_); return std::move(error_); }

 private:
  E error_{};
  bool failed_ = false;
};

}  // namespace xapid
