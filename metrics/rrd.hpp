// Round-robin archives of one object's data sources (a host's or a VM's), as xapi's rrdd keeps
// them: a primary data point every `step_seconds`, consolidated into archives of fixed rows
// (seed 003, 5.2: 5 s for 10 min, 1 min for 2 h, 1 h for a week, 1 day for a year), AVERAGE and,
// when asked, MIN and MAX. Memory is fixed by the layout and the number of sources: a source
// added later starts with unknown (NaN) history, one forgotten loses its archives.
// Not thread-safe: its owner (metrics::store) locks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace xapid::metrics {

enum class consolidation : std::uint8_t { average, min, max };
std::string_view to_string(consolidation c) noexcept;  // AVERAGE, MIN, MAX
// rrdtool's names, and the seed's ("ave", "min", "max"), in any case.
std::optional<consolidation> consolidation_of(std::string_view s) noexcept;

struct archive_layout {
  consolidation cf;
  int pdp_per_row;  // primary data points per row
  int rows;
};

inline constexpr std::int64_t step_seconds = 5;
// The seed's archives; with MIN and MAX beside AVERAGE at each resolution when `min_max`.
std::vector<archive_layout> standard_layout(bool min_max);

class rrd {
 public:
  rrd() = default;
  explicit rrd(std::vector<archive_layout> layout);

  // A sample of the named sources at wall time `t` (seconds). A source not yet known is added;
  // a known one missing from the sample is unknown for this step. Samples at or before the last
  // update's step are ignored; steps missed since are unknown.
  void update(std::int64_t t, const std::vector<std::pair<std::string, double>>& values);
  // Forgets a source's archives (forget_data_source_archives); false when there is no such.
  bool forget(std::string_view name);

  const std::vector<std::string>& sources() const noexcept { return names_; }
  std::optional<std::size_t> source_index(std::string_view name) const;
  // The source's newest value in the finest AVERAGE archive (xapi's query_data_source), NaN
  // when unknown; nullopt when there is no such source.
  std::optional<double> latest(std::string_view name) const;
  std::int64_t last_updated() const noexcept { return last_updated_; }
  std::size_t archive_count() const noexcept { return archives_.size(); }
  const archive_layout& layout(std::size_t a) const { return archives_.at(a).layout; }
  // Row `age` of archive `a` (0 the newest) of source `ds`.
  double value(std::size_t a, std::size_t ds, std::size_t age) const;
  // The time of archive `a`'s newest row.
  std::int64_t newest_row_time(std::size_t a) const;

  // Which archives answer a question of step >= `min_pdps` steps from `start` on (xapi's
  // find_best_rras): those of `cf` (any when nullopt) with the first such layout whose span
  // holds `start`, else the coarsest that holds anything. Empty when none has such a step.
  std::vector<std::size_t> best_archives(int min_pdps, std::optional<consolidation> cf, std::int64_t start) const;

  // rrdtool's dump, as xapi writes it (version 0003): XML, or the JSON form of the same. With
  // `internal`, what a reload needs beyond it (each source's last update).
  void dump_xml(std::string& out, bool internal = false) const;
  void dump_json(std::string& out) const;
  // Reads a dump_xml(…, true) back; errors say what is wrong.
  static result<rrd, std::string> from_xml(std::string_view text);

  // Bytes the archives hold (for the memory bound's accounting).
  std::size_t memory_bytes() const;

 private:
  struct archive {
    archive_layout layout;
    std::vector<std::vector<float>> rings;  // per source: `rows` values, ring ending at `head`
    std::vector<double> acc;                // per source: the consolidation being built
    std::vector<int> known;                 // per source: the points of it known so far
    std::size_t head = 0;
  };
  void add_source(std::string name);
  // Feeds archive `a` the points after pdp index `from` up to `to`: unknown ones, then `last`.
  void advance(archive& a, std::int64_t from, std::int64_t to, const std::vector<double>& last);
  void close_row(archive& a);

  std::vector<std::string> names_;
  std::vector<archive> archives_;
  std::int64_t last_updated_ = 0;  // seconds; its step is the last primary data point
};

// xapi's text of a float (Utils.f_to_s): %.15g, "NaN", "Infinity", "0.0".
void append_float(std::string& out, double v);

}  // namespace xapid::metrics
