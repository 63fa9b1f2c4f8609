// A value encoded once per format (wire::encode_once) writes, in every answer that carries it,
// exactly the bytes the plain value writes, in both formats, from any number of threads.
#include "proto/wire/encoded_once.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"
#include "tests/unit/wire_samples.hpp"

namespace xapid::wire {
namespace {

// A deferred value that counts how often a writer asks it for its events.
class counted final : public deferred {
 public:
  explicit counted(value v) : v_(std::move(v)) {}
  void emit(emitter& out) const override {
    ++emitted;
    out.value(v_);
  }
  mutable std::atomic<int> emitted{0};

 private:
  value v_;
};

std::vector<std::string> answers_in_both_formats(const value& v) {
  jsonrpc::request v1, v2;
  v1.ver = jsonrpc::version::v1_0;
  v1.id_json = "\"one\"";
  v2.id_json = "7";
  wire::response r{true, v, {}};
  return {xmlrpc::write_response(r), jsonrpc::write_response(v1, r), jsonrpc::write_response(v2, r)};
}

TEST(wire_encoded_once, answers_are_byte_identical_to_the_plain_value) {
  const value plain = testing::sample_every_kind();
  EXPECT_EQ(answers_in_both_formats(encode_once(plain)), answers_in_both_formats(plain));
  // Nested inside another value, as an event answer may be.
  const value outer = structure{{"shared", encode_once(plain)}, {"own", "x"}};
  const value outer_plain = structure{{"shared", plain}, {"own", "x"}};
  EXPECT_EQ(answers_in_both_formats(outer), answers_in_both_formats(outer_plain));
  EXPECT_TRUE(built(outer) == outer_plain);
}

TEST(wire_encoded_once, each_format_is_written_once_whatever_the_number_of_answers) {
  auto inner = std::make_shared<const counted>(testing::sample_every_kind());
  const value shared = encode_once(value(inner));
  std::vector<std::thread> answering;
  std::vector<std::vector<std::string>> got(8);
  for (std::size_t t = 0; t < got.size(); ++t)
    answering.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) got[t] = answers_in_both_formats(shared);
    });
  for (auto& t : answering) t.join();
  EXPECT_EQ(inner->emitted.load(), 2);  // once as XML, once as JSON
  for (const auto& g : got) EXPECT_EQ(g, got[0]);
  EXPECT_EQ(got[0], answers_in_both_formats(value(std::make_shared<const counted>(testing::sample_every_kind()))));
}

}  // namespace
}  // namespace xapid::wire
