// The one wire value model that both XML-RPC and JSON-RPC decode into and encode from.
// Typed datamodel values (generated in xapid/api_types.hpp) convert to and from it; the codecs
// never know the datamodel, and the datamodel never knows the codecs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace xapid::wire {

class value;
using array = std::vector<value>;
// A struct keeps its members in order; lookups are linear, which is fastest at the sizes
// XenAPI uses (records of at most ~100 fields).
using member = std::pair<std::string, value>;
using structure = std::vector<member>;

// An XML-RPC dateTime.iso8601 text, e.g. "20240131T12:34:56Z"; JSON carries the same text.
struct datetime {
  std::string iso8601;
  bool operator==(const datetime&) const = default;
};

// An int that must be written as an XML-RPC <i4>, not as XenAPI's usual decimal string
// (only `valid_ref_counts` answers need this).
struct int32_value {
  std::int32_t v;
  bool operator==(const int32_value&) const = default;
};

class emitter;

// The two formats an answer is written in (see deferred::encoded).
enum class format { xml_rpc, json_rpc };

// The rest of a deferred value's events, a part at a time (see deferred::cursor).
class deferred_cursor {
 public:
  virtual ~deferred_cursor() = default;
  // Emits the next part (an opening, one member, a closing); false when nothing was left.
  virtual bool emit_next(emitter& out) = 0;
};

// A value that writes itself when an answer is encoded instead of being built first: a typed
// record read from a database snapshot goes straight into the XML or JSON of the answer, with
// no tree of strings made and freed on the way (most of a get_record's cost otherwise).
// `built()` makes the tree where one is needed.
class deferred {
 public:
  virtual ~deferred() = default;
  virtual void emit(emitter& out) const = 0;
  // Roughly how many bytes its XML takes, so the answer's buffer grows once at most.
  virtual std::size_t size_hint() const { return 4096; }
  // Its bytes in `f` when they were written before (one answer shared by many calls: see
  // encoded_once.hpp), copied in whole instead of emitted again; nullptr otherwise.
  virtual const std::string* encoded(format) const { return nullptr; }
  // A large value (a whole table) may also be written a part at a time, so that its answer is
  // sent as it is made and never held whole: the same events as emit(), in steps. nullptr: the
  // value is small and only written whole. A cursor is used only while its value lives.
  virtual std::unique_ptr<deferred_cursor> cursor() const { return nullptr; }
};

enum class kind { nil, boolean, integer, int32, floating, string, datetime, array, structure, deferred };

class value {
 public:
  using storage = std::variant<std::monostate, bool, std::int64_t, int32_value, double,
                               std::string, datetime, array, structure, std::shared_ptr<const deferred>>;

  value() = default;
  value(bool b) : v_(b) {}                    // NOLINT: implicit, values are written inline
  value(std::int64_t i) : v_(i) {}            // NOLINT
  value(int i) : v_(std::int64_t{i}) {}       // NOLINT
  value(int32_value i) : v_(i) {}             // NOLINT
  value(double d) : v_(d) {}                  // NOLINT
  value(std::string s) : v_(std::move(s)) {}  // NOLINT
  value(std::string_view s) : v_(std::string(s)) {}  // NOLINT
  value(const char* s) : v_(std::string(s)) {}       // NOLINT
  value(datetime d) : v_(std::move(d)) {}     // NOLINT
  value(array a) : v_(std::move(a)) {}        // NOLINT
  value(structure s) : v_(std::move(s)) {}    // NOLINT
  value(std::shared_ptr<const deferred> d) : v_(std::move(d)) {}  // NOLINT

  kind type() const noexcept { return static_cast<kind>(v_.index()); }
  bool is_nil() const noexcept { return type() == kind::nil; }

  // Accessors return nullptr when the value holds another kind.
  const bool* as_bool() const noexcept { return std::get_if<bool>(&v_); }
  const std::int64_t* as_int() const noexcept { return std::get_if<std::int64_t>(&v_); }
  const int32_value* as_int32() const noexcept { return std::get_if<int32_value>(&v_); }
  const double* as_double() const noexcept { return std::get_if<double>(&v_); }
  const std::string* as_string() const noexcept { return std::get_if<std::string>(&v_); }
  const datetime* as_datetime() const noexcept { return std::get_if<datetime>(&v_); }
  const array* as_array() const noexcept { return std::get_if<array>(&v_); }
  const structure* as_struct() const noexcept { return std::get_if<structure>(&v_); }
  const deferred* as_deferred() const noexcept {
    auto* d = std::get_if<std::shared_ptr<const deferred>>(&v_);
    return d ? d->get() : nullptr;
  }
  array* as_array() noexcept { return std::get_if<array>(&v_); }
  structure* as_struct() noexcept { return std::get_if<structure>(&v_); }
  std::string* as_string() noexcept { return std::get_if<std::string>(&v_); }

  // The member `name` of a struct value, or nullptr.
  const value* find(std::string_view name) const noexcept {
    if (auto* s = as_struct())
      for (auto& [k, v] : *s)
        if (k == name) return &v;
    return nullptr;
  }

  const storage& raw() const noexcept { return v_; }
  // Deferred values compare by what they would write.
  bool operator==(const value& o) const;

 private:
  storage v_;
};

const char* kind_name(kind k) noexcept;

// The tree a value stands for: itself, or what a deferred value emits (deferred values nested
// in it are built too).
value built(const value& v);

}  // namespace xapid::wire
