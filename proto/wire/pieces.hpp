// Answers written in pieces (private to proto/wire): a walk that emits a value's events a step at
// a time and can stop between any two, and the answer around it, one piece per next().
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proto/wire/codec.hpp"
#include "proto/wire/emitter.hpp"
#include "proto/wire/sink.hpp"

namespace xapid::wire::detail {

// Emits a value's events in steps: the arrays and structs of a built tree element by element, a
// deferred value that has a cursor part by part (a table row by row), anything else whole. Its
// state is the stack of containers it is inside, so it stops and resumes between any two steps.
class value_walker {
 public:
  explicit value_walker(const value& root) : root_(&root) {}

  // Emits the next step; false when the value had all been emitted.
  bool step(emitter& out) {
    if (root_) {
      enter(*std::exchange(root_, nullptr), out);
      return true;
    }
    if (open_.empty()) return false;
    frame& f = open_.back();
    if (f.cursor) {
      if (!f.cursor->emit_next(out)) open_.pop_back();
      return true;
    }
    if (const array* a = f.container->as_array()) {
      if (f.next == a->size()) {
        out.end_array();
        open_.pop_back();
      } else {
        enter((*a)[f.next++], out);  // may push onto open_: f is not used after it
      }
      return true;
    }
    const structure& s = *f.container->as_struct();
    if (f.next == s.size()) {
      out.end_struct();
      open_.pop_back();
    } else {
      const member& m = s[f.next++];
      out.name(m.first);
      enter(m.second, out);
    }
    return true;
  }

 private:
  struct frame {
    const value* container = nullptr;  // an array or struct of the tree
    std::size_t next = 0;              // the element of it to emit next
    std::unique_ptr<deferred_cursor> cursor;  // or else the parts of a deferred value
  };

  void enter(const value& v, emitter& out) {
    if (v.as_array()) {
      out.begin_array();
      open_.push_back({&v, 0, nullptr});
    } else if (v.as_struct()) {
      out.begin_struct();
      open_.push_back({&v, 0, nullptr});
    } else if (auto cursor = v.as_deferred() ? v.as_deferred()->cursor() : nullptr) {
      open_.push_back({nullptr, 0, std::move(cursor)});
    } else {
      out.value(v);
    }
  }

  const value* root_;  // until the first step
  std::vector<frame> open_;
};

// `head`, the value written by an Emitter (the codec's, over a sink), `tail`: the pieces of a
// successful answer whose value is large.
template <class Emitter>
class answer_in_pieces final : public answer_pieces {
 public:
  answer_in_pieces(value v, std::string head, std::string tail)
      : value_(std::move(v)), head_(std::move(head)), tail_(std::move(tail)) {}

  std::string next(std::string reuse) override {
    if (stage_ == stage::given) return {};
    if (stage_ == stage::head) {
      out_.put(head_);
      stage_ = stage::value;
    }
    // A step is at most one row or element of the value, so a piece ends soon after the mark.
    while (stage_ == stage::value && out_.size() < answer_piece_bytes) {
      if (!walker_.step(emitter_)) {
        out_.put(tail_);
        stage_ = stage::given;
      }
    }
    return out_.hand_over(std::move(reuse));
  }
  bool finished() const override { return stage_ == stage::given; }

 private:
  enum class stage { head, value, given };

  value value_;
  std::string head_, tail_;
  std::string buffer_;
  sink out_{buffer_, answer_piece_bytes + (16u << 10)};
  Emitter emitter_{out_};
  value_walker walker_{value_};
  stage stage_ = stage::head;
};

// A small answer, or a failure: written whole, its one piece.
class whole_answer final : public answer_pieces {
 public:
  explicit whole_answer(std::string text) : text_(std::move(text)) {}
  std::string next(std::string) override { return std::exchange(given_, true) ? std::string() : std::move(text_); }
  bool finished() const override { return given_; }

 private:
  std::string text_;
  bool given_ = false;
};

}  // namespace xapid::wire::detail
