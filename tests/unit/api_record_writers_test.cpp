// Records written by each codec's own writer (a record's code compiled against json_writer and
// xml_writer: wire/writers.hpp) against the general path — the record's tree, built through
// `emitter&`, then written by the codec's tree writer — byte for byte, over random records of
// every class (seeded; the seed is printed and XAPID_TEST_SEED replays it): strings with every
// kind of byte that is escaped or not, at every length around a word, map keys that need
// escaping, extreme ints, doubles and datetimes; alone, nested, and as a table in pieces.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "proto/wire/emitter.hpp"
#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"
#include "xapid/api/catalog.hpp"
#include "xapid/api/types.hpp"

namespace xapid::api {
namespace {

std::uint64_t test_seed() {
  static const std::uint64_t seed = [] {
    const char* s = std::getenv("XAPID_TEST_SEED");
    std::uint64_t v = s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
    std::printf("record writers test seed: %llu (XAPID_TEST_SEED replays it)\n", static_cast<unsigned long long>(v));
    return v;
  }();
  return seed;
}

class random_values {
 public:
  explicit random_values(std::uint64_t seed) : rng_(seed) {}

  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  // Any bytes: plain text, every character either codec escapes, UTF-8 and bytes that are not,
  // at lengths on both sides of a word (8) and of two.
  std::string text() {
    static const std::vector<std::string> pieces = {
        "a", "Z", "0", " ", "vm-", "OpaqueRef:", "\"", "\\", "<", ">", "&", "'", "/", "\t", "\n", "\r",
        "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xff", "]]>", "&amp;"};
    std::string s;
    const int n = below(4) == 0 ? 0 : below(3) == 0 ? below(40) : below(18);
    for (int i = 0; i < n; ++i) {
      // Mostly plain letters, so that a string is often all plain and its escapes land anywhere.
      if (below(4) != 0) s += static_cast<char>('a' + below(26));
      else s += pieces[static_cast<std::size_t>(below(static_cast<int>(pieces.size())))];
    }
    return s;
  }

  std::int64_t integer() {
    using lim = std::numeric_limits<std::int64_t>;
    switch (below(5)) {
      case 0: return lim::min();
      case 1: return lim::max();
      case 2: return below(3) - 1;
      default: return static_cast<std::int64_t>(rng_());
    }
  }

  double floating() {
    static const double special[] = {0.0, -0.0, 1.0, 3.0, 0.1, -2.5, 1e300, 5e-324, 1e21, 123456789.0,
                                     std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                                     std::numeric_limits<double>::quiet_NaN()};
    if (below(2) == 0) return special[below(static_cast<int>(std::size(special)))];
    return std::uniform_real_distribution<double>(-1e9, 1e9)(rng_);
  }

  // What from_value takes for a field of type `t`.
  wire::value of(const type_desc& t) {
    switch (t.kind) {
      case type_kind::string: return wire::value(text());
      case type_kind::int_: return wire::value(integer());
      case type_kind::float_: return wire::value(floating());
      case type_kind::bool_: return wire::value(below(2) == 1);
      case type_kind::datetime:  // the four-digit years a client may send (others below)
        return wire::value(wire::datetime{format_iso8601(datetime{static_cast<std::int64_t>(rng_() % 253402300800)})});
      case type_kind::ref: return wire::value(below(3) == 0 ? std::string(null_ref_text) : "OpaqueRef:" + text());
      case type_kind::enum_: {
        auto values = find_enum(t.name)->values;
        return wire::value(std::string(values[static_cast<std::size_t>(below(static_cast<int>(values.size())))]));
      }
      case type_kind::set: {
        wire::array a;
        for (int i = below(5); i > 0; --i) a.push_back(of(*t.arg1));
        return wire::value(std::move(a));
      }
      case type_kind::map: {
        wire::structure s;
        for (int i = below(5); i > 0; --i) s.emplace_back(key(*t.arg1), of(*t.arg2));
        return wire::value(std::move(s));
      }
      case type_kind::void_:
      case type_kind::record: break;  // no field has these types
    }
    ADD_FAILURE() << "a field of type " << t.spelling;
    return {};
  }

 private:
  std::string key(const type_desc& t) {
    switch (t.kind) {
      case type_kind::int_: return std::to_string(integer());
      case type_kind::ref:
      case type_kind::enum_: return *of(t).as_string();
      default: return text();
    }
  }

  std::mt19937_64 rng_;
};

// A record of class `ci`, every field random.
std::shared_ptr<void> random_record(std::size_t ci, random_values& r) {
  const class_desc& c = all_classes()[ci];
  const record_ops& ops = record_ops_of(ci);
  std::shared_ptr<void> rec = ops.make_shared(nullptr);
  for (std::size_t f = 0; f < c.fields.size(); ++f)
    EXPECT_TRUE(ops.set_field(rec.get(), f, r.of(*c.fields[f].type)).ok()) << c.name << "." << c.fields[f].name;
  return rec;
}

class deferred_record final : public wire::deferred {
 public:
  deferred_record(const record_ops& ops, std::shared_ptr<void> rec) : ops_(ops), rec_(std::move(rec)) {}
  void emit(wire::emitter& out) const override { ops_.emit(rec_.get(), out); }

 private:
  const record_ops& ops_;
  std::shared_ptr<void> rec_;
};

// Records as a table, written row by row when the answer is in pieces (as get_all_records is).
class deferred_table final : public wire::deferred {
 public:
  struct row {
    std::string ref;
    const record_ops* ops;
    std::shared_ptr<void> rec;
  };
  explicit deferred_table(std::vector<row> rows) : rows_(std::move(rows)) {}
  void emit(wire::emitter& out) const override {
    auto c = cursor();
    while (c->emit_next(out)) {
    }
  }
  std::size_t size_hint() const override { return rows_.size() * 4096; }
  std::unique_ptr<wire::deferred_cursor> cursor() const override { return std::make_unique<rows_cursor>(rows_); }

 private:
  class rows_cursor final : public wire::deferred_cursor {
   public:
    explicit rows_cursor(const std::vector<row>& rows) : rows_(rows) {}
    bool emit_next(wire::emitter& out) override {
      if (at_ > rows_.size()) return false;
      if (at_ == 0) out.begin_struct();
      else if (at_ == rows_.size()) out.end_struct();
      if (at_ < rows_.size()) {
        out.name(rows_[at_].ref);
        rows_[at_].ops->emit(rows_[at_].rec.get(), out);
      }
      ++at_;
      return true;
    }

   private:
    const std::vector<row>& rows_;
    std::size_t at_ = 0;
  };

  std::vector<row> rows_;
};

std::string in_pieces(std::unique_ptr<wire::answer_pieces> pieces) {
  std::string all;
  for (std::string p = pieces->next({}); !p.empty(); p = pieces->next(std::move(p))) all += p;
  return all;
}

// The answers of `given` (deferred) and `tree` (its tree) in both formats and both JSON-RPC
// versions, whole and in pieces, are the same bytes.
void expect_same_answers(const wire::value& given, const wire::value& tree, const std::string& what) {
  const wire::response got{true, given, {}}, want{true, tree, {}};
  const std::string xml = wire::xmlrpc::write_response(want);
  EXPECT_EQ(wire::xmlrpc::write_response(got), xml) << what;
  EXPECT_EQ(in_pieces(wire::xmlrpc::write_response_in_pieces(got)), xml) << what;
  for (auto version : {wire::jsonrpc::version::v1_0, wire::jsonrpc::version::v2_0}) {
    const wire::jsonrpc::request req{{}, version, "7"};
    const std::string json = wire::jsonrpc::write_response(req, want);
    EXPECT_EQ(wire::jsonrpc::write_response(req, got), json) << what;
    EXPECT_EQ(in_pieces(wire::jsonrpc::write_response_in_pieces(req, got)), json) << what;
  }
}

TEST(record_writers, every_class_is_written_as_its_tree_is_byte_for_byte) {
  random_values r(test_seed());
  const auto classes = all_classes();
  for (std::size_t ci = 0; ci < classes.size(); ++ci) {
    const record_ops& ops = record_ops_of(ci);
    for (int i = 0; i < 20; ++i) {
      std::shared_ptr<void> rec = random_record(ci, r);
      const wire::value tree = ops.to_value(rec.get());  // through emitter&, into a tree
      const wire::value lazy(std::make_shared<const deferred_record>(ops, rec));
      const std::string what = std::string(classes[ci].name) + " #" + std::to_string(i);
      expect_same_answers(lazy, tree, what);
      // Nested where the commas and closing tags around it matter.
      expect_same_answers(wire::value(wire::array{lazy, wire::value(wire::structure{{"a<", lazy}, {"b", wire::value(1)}}), lazy}),
                          wire::value(wire::array{tree, wire::value(wire::structure{{"a<", tree}, {"b", wire::value(1)}}), tree}),
                          what + " nested");
    }
  }
}

TEST(record_writers, datetimes_of_any_year_are_written_as_their_tree_has_them) {
  random_values r(test_seed() + 1);
  std::mt19937_64 seconds(test_seed() + 2);
  const std::size_t vm_class = static_cast<std::size_t>(find_class(vm::api_class) - all_classes().data());
  for (int i = 0; i < 200; ++i) {
    std::shared_ptr<void> rec = random_record(vm_class, r);
    // Years before 0 and after 9999 too, which no client can send but the type holds.
    static_cast<vm*>(rec.get())->snapshot_time = datetime{static_cast<std::int64_t>(seconds()) >> (seconds() % 40)};
    const record_ops& ops = record_ops_of(vm_class);
    expect_same_answers(wire::value(std::make_shared<const deferred_record>(ops, rec)), ops.to_value(rec.get()),
                        "VM snapshot_time " + format_iso8601(static_cast<vm*>(rec.get())->snapshot_time));
  }
}

TEST(record_writers, a_table_of_every_class_in_pieces_is_its_tree_byte_for_byte) {
  random_values r(test_seed() + 3);
  std::vector<deferred_table::row> rows;
  wire::structure tree;
  const auto classes = all_classes();
  // Enough rows that the answer is many pieces, whatever the random sizes.
  for (int i = 0; i < 3000; ++i) {
    const std::size_t ci = static_cast<std::size_t>(r.below(static_cast<int>(classes.size())));
    deferred_table::row row{"OpaqueRef:" + r.text(), &record_ops_of(ci), random_record(ci, r)};
    tree.emplace_back(row.ref, row.ops->to_value(row.rec.get()));
    rows.push_back(std::move(row));
  }
  expect_same_answers(wire::value(std::make_shared<const deferred_table>(std::move(rows))), wire::value(std::move(tree)),
                      "a table");
}

}  // namespace
}  // namespace xapid::api
