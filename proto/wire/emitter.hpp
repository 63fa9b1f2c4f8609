// The stream of events a value is written as: what both codecs' writers take from a deferred
// value (a typed record) and what `built()` turns back into a tree. Members and array elements
// follow in order; a struct member is its name() and then exactly one value.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/wire/value.hpp"

namespace xapid::wire {

// Which emitter one is: the codecs' own writers (writers.hpp) say so, so that code emitting many
// events (a typed record) can be compiled against each writer's type and call it directly.
enum class emitter_kind : std::uint8_t { other, json_writer, xml_writer };

class emitter {
 public:
  emitter_kind kind() const noexcept { return kind_; }

  virtual void nil() = 0;
  virtual void boolean(bool b) = 0;
  virtual void integer(std::int64_t i) = 0;
  virtual void floating(double d) = 0;
  virtual void string(std::string_view s) = 0;
  virtual void datetime(std::string_view iso8601) = 0;
  virtual void begin_array() = 0;
  virtual void end_array() = 0;
  virtual void begin_struct() = 0;
  virtual void name(std::string_view member) = 0;
  // A member name that is only letters, digits and '_' (a datamodel field): nothing in it needs
  // escaping, which writers may skip.
  virtual void field(std::string_view member) { name(member); }
  virtual void end_struct() = 0;
  // A built value, whole (it may itself hold deferred ones).
  virtual void value(const wire::value& v) = 0;

 protected:
  explicit emitter(emitter_kind kind = emitter_kind::other) noexcept : kind_(kind) {}
  ~emitter() = default;

 private:
  emitter_kind kind_;
};

// Any emitter type: what code that emits events (convert.hpp, the generated records) is written
// over, so that it runs as direct calls on a writer's own type and as virtual ones on any other.
template <class E>
concept an_emitter = std::derived_from<E, emitter>;

// Builds the tree a stream of events describes (`built()`, and a record's to_value).
class tree_builder final : public emitter {
 public:
  wire::value result() { return std::move(root_); }

  void nil() override { put(wire::value()); }
  void boolean(bool b) override { put(b); }
  void integer(std::int64_t i) override { put(i); }
  void floating(double d) override { put(d); }
  void string(std::string_view s) override { put(s); }
  void datetime(std::string_view iso8601) override { put(wire::datetime{std::string(iso8601)}); }
  void begin_array() override { open_.push_back({array{}, {}}); }
  void end_array() override { close(); }
  void begin_struct() override { open_.push_back({structure{}, {}}); }
  void name(std::string_view member) override { open_.back().name = member; }
  void end_struct() override { close(); }
  void value(const wire::value& v) override { put(built(v)); }

 private:
  struct open_container {
    wire::value v;
    std::string name;  // of the member whose value comes next
  };
  void put(wire::value v);
  void close();

  std::vector<open_container> open_;
  wire::value root_;
};

}  // namespace xapid::wire
