// /rrd_updates' rows: those strictly after `start`, however the client's start falls against the
// archives' rows (on one, between two, past the last update, any 64-bit number).
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "metrics/rrd.hpp"
#include "metrics/updates.hpp"

namespace xapid::metrics {
namespace {

// A host's archive updated every step from t=1000 to t=1100: the last update falls on a row.
rrd sampled_until_1100() {
  rrd r(standard_layout(false));
  for (std::int64_t t = 1000; t <= 1100; t += step_seconds) r.update(t, {{"cpu0", 0.5}});
  return r;
}

std::string answer(const rrd& r, std::int64_t start) {
  std::string out;
  updates_query q;
  q.start = start;
  q.json = true;
  EXPECT_TRUE(write_updates({{"host:h:", &r}}, q, out).ok());
  return out;
}

std::size_t rows_in(const std::string& json) {
  std::size_t n = 0;
  for (auto at = json.find("{\"t\":"); at != std::string::npos; at = json.find("{\"t\":", at + 1)) ++n;
  return n;
}

TEST(metrics_updates, a_start_on_a_row_leaves_that_row_out) {
  const rrd r = sampled_until_1100();
  ASSERT_EQ(r.last_updated(), 1100);
  EXPECT_EQ(rows_in(answer(r, 1090)), 2u);  // 1100 and 1095
  EXPECT_EQ(rows_in(answer(r, 1092)), 2u);
  EXPECT_EQ(rows_in(answer(r, 1095)), 1u);
}

TEST(metrics_updates, a_start_exactly_one_span_back_is_answered_from_the_finest_archive) {
  rrd r(standard_layout(false));
  for (std::int64_t t = 1000; t <= 2000; t += step_seconds) r.update(t, {{"cpu0", 0.5}});
  // The finest archive holds 120 rows of 5 s: those after 2000 - 600 are all there.
  const std::string json = answer(r, 2000 - 600);
  EXPECT_NE(json.find("\"step\":\"5\""), std::string::npos) << json.substr(0, 200);
  EXPECT_EQ(rows_in(json), 120u);
}

TEST(metrics_updates, a_start_at_or_after_the_last_update_has_no_rows) {
  const rrd r = sampled_until_1100();
  for (std::int64_t start : {std::int64_t{1100}, std::int64_t{1101}, std::int64_t{1100 + 86400},
                             std::numeric_limits<std::int64_t>::max()})
    EXPECT_EQ(rows_in(answer(r, start)), 0u) << start;
}

TEST(metrics_updates, a_start_before_the_epoch_answers_what_the_archives_hold) {
  const rrd r = sampled_until_1100();
  const std::string out = answer(r, std::numeric_limits<std::int64_t>::min());
  EXPECT_GT(rows_in(out), 0u);
  EXPECT_EQ(out.find("\"start\":\"-"), std::string::npos);  // never a time wrapped round
}

}  // namespace
}  // namespace xapid::metrics
