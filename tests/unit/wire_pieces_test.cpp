// Answers written in pieces (write_response_in_pieces): put together, the pieces are exactly
// write_response's bytes, in XML-RPC and in both JSON-RPC versions; a large value goes out in
// bounded pieces as it is written (a table with a cursor row by row, a built tree element by
// element), a small answer or a failure in one.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "proto/wire/emitter.hpp"
#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"
#include "wire_samples.hpp"

namespace xapid::wire {
namespace {

// A table of `rows` rows as a deferred value, written whole by emit() and row by row by its
// cursor, as storage's get_all_records value is. Each row carries every kind of value.
class table final : public deferred {
 public:
  explicit table(int rows) : rows_(rows) {}
  void emit(emitter& out) const override {
    auto c = cursor();
    while (c->emit_next(out)) {
    }
  }
  std::size_t size_hint() const override { return static_cast<std::size_t>(rows_) * 1500; }
  std::unique_ptr<deferred_cursor> cursor() const override { return std::make_unique<rows_cursor>(rows_); }

 private:
  class rows_cursor final : public deferred_cursor {
   public:
    explicit rows_cursor(int rows) : rows_(rows) {}
    bool emit_next(emitter& out) override {
      if (at_ == -1) {
        out.begin_struct();
      } else if (at_ < rows_) {
        out.name("OpaqueRef:" + std::to_string(at_));
        out.begin_struct();
        out.field("uuid");
        out.string("uuid-" + std::to_string(at_));
        out.field("row");
        out.integer(at_);
        out.field("every_kind");
        out.value(testing::sample_every_kind());
        out.field("tags");
        out.begin_array();
        out.string("a<b>&\"c\"");
        out.floating(at_ / 4.0);
        out.end_array();
        out.end_struct();
      } else if (at_ == rows_) {
        out.end_struct();
      } else {
        return false;
      }
      ++at_;
      return true;
    }

   private:
    int rows_;
    int at_ = -1;
  };
  int rows_;
};

value table_of(int rows) { return value(std::make_shared<const table>(rows)); }

// The pieces of an answer, put together; each piece checked against the bound.
struct gathered {
  std::string text;
  std::size_t pieces = 0;
  std::size_t largest = 0;
};
gathered gather(answer_pieces& p) {
  gathered g;
  std::string piece;
  while (!p.finished()) {
    piece = p.next(std::move(piece));  // each piece made in the memory of the one before
    g.text.append(piece);
    ++g.pieces;
    g.largest = std::max(g.largest, piece.size());
  }
  EXPECT_TRUE(p.next({}).empty()) << "a finished answer gives no more";
  return g;
}

response success(value v) { return response{true, std::move(v), {}}; }

// Every format this project answers in, as (name, whole answer, answer in pieces).
struct format {
  const char* name;
  std::string (*whole)(const response&);
  std::unique_ptr<answer_pieces> (*pieces)(response);
};
const jsonrpc::request& json_v1() {
  static const jsonrpc::request r{{}, jsonrpc::version::v1_0, "\"id-7\""};
  return r;
}
const jsonrpc::request& json_v2() {
  static const jsonrpc::request r{{}, jsonrpc::version::v2_0, "42"};
  return r;
}
const format formats[] = {
    {"XML-RPC", [](const response& r) { return xmlrpc::write_response(r); },
     [](response r) { return xmlrpc::write_response_in_pieces(std::move(r)); }},
    {"JSON-RPC 1.0", [](const response& r) { return jsonrpc::write_response(json_v1(), r); },
     [](response r) { return jsonrpc::write_response_in_pieces(json_v1(), std::move(r)); }},
    {"JSON-RPC 2.0", [](const response& r) { return jsonrpc::write_response(json_v2(), r); },
     [](response r) { return jsonrpc::write_response_in_pieces(json_v2(), std::move(r)); }},
};

TEST(wire_pieces, a_large_table_goes_in_bounded_pieces_that_make_exactly_the_whole_answer) {
  for (const auto& f : formats) {
    SCOPED_TRACE(f.name);
    const response r = success(table_of(3000));
    const std::string whole = f.whole(r);
    auto p = f.pieces(r);
    gathered g = gather(*p);
    EXPECT_EQ(g.text, whole);
    EXPECT_GE(g.pieces, whole.size() / (answer_piece_bytes + 4096)) << "a piece is about answer_piece_bytes";
    EXPECT_LT(g.largest, answer_piece_bytes + 4096) << "a piece ends after the row that passes the mark";
  }
}

TEST(wire_pieces, a_large_built_tree_with_tables_inside_goes_in_pieces_too) {
  // As event.from's first answer: a struct holding an array of many structs, each with a
  // deferred value; here some of those are tables with cursors, walked row by row.
  array events;
  for (int i = 0; i < 2000; ++i)
    events.push_back(structure{{"id", std::int64_t{i}},
                               {"operation", "add"},
                               {"snapshot", i % 500 == 0 ? table_of(50) : testing::sample_every_kind()}});
  const value answer = structure{{"events", std::move(events)}, {"valid_ref_counts", structure{{"vm", int32_value{2000}}}},
                                 {"token", "2000"}, {"empty", array{}}, {"empty_table", table_of(0)}};
  for (const auto& f : formats) {
    SCOPED_TRACE(f.name);
    const std::string whole = f.whole(success(answer));
    auto p = f.pieces(success(answer));
    gathered g = gather(*p);
    EXPECT_EQ(g.text, whole);
    EXPECT_GT(g.pieces, 2u);
    EXPECT_LT(g.largest, answer_piece_bytes + 4096);
  }
}

TEST(wire_pieces, a_bare_xml_answer_in_pieces_is_the_bare_answer) {
  response r = success(table_of(2000));
  r.bare = true;
  auto p = xmlrpc::write_response_in_pieces(r);
  EXPECT_EQ(gather(*p).text, xmlrpc::write_response(r));
}

TEST(wire_pieces, small_answers_and_failures_are_one_piece) {
  const response small = success(table_of(3));
  const response failure{false, {}, {"HANDLE_INVALID", "VM", "OpaqueRef:x"}};
  for (const auto& f : formats) {
    SCOPED_TRACE(f.name);
    for (const response* r : {&small, &failure}) {
      auto p = f.pieces(*r);
      EXPECT_FALSE(p->finished());
      const std::string first = p->next({});
      EXPECT_TRUE(p->finished()) << "the first piece was the whole answer: its length is known";
      EXPECT_EQ(first, f.whole(*r));
    }
  }
}

}  // namespace
}  // namespace xapid::wire
