#include "metrics/updates.hpp"

#include <algorithm>
#include <limits>

namespace xapid::metrics {
namespace {

struct column {
  const rrd* source;
  std::size_t archive, ds;
};

}  // namespace

result<void, std::string> write_updates(const std::vector<std::pair<std::string, const rrd*>>& archives,
                                        const updates_query& q, std::string& out) {
  std::int64_t last_updated = archives.empty() ? 0 : archives.front().second->last_updated();
  std::int64_t start = q.start;
  if (start < 0) {
    start = std::numeric_limits<std::int64_t>::max();
    for (const auto& [prefix, r] : archives) start = std::min(start, q.start + r->last_updated());
  }
  // Before the epoch or after the last update, no row differs: bounded so that rounding it to
  // a row below cannot overflow (a client may send any 64-bit number).
  start = std::clamp<std::int64_t>(start, 0, last_updated);
  const std::int64_t min_pdps64 = q.interval / step_seconds;
  const int min_pdps = static_cast<int>(std::min<std::int64_t>(min_pdps64, std::numeric_limits<int>::max()));
  // Each archive's answering archives; all must be alike the first found (xapi drops others).
  std::vector<std::vector<std::size_t>> chosen;
  const archive_layout* first = nullptr;
  for (const auto& [prefix, r] : archives) {
    chosen.push_back(r->best_archives(min_pdps, q.cf, start));
    if (!first && !chosen.back().empty()) first = &r->layout(chosen.back().front());
  }
  if (!first && !archives.empty())
    return fail("no archive has a step of " + std::to_string(q.interval) + " s or more" +
                (q.cf ? std::string(" for ") + std::string(to_string(*q.cf)) : std::string()));
  std::vector<std::string> legend;
  std::vector<column> columns;
  for (std::size_t i = 0; i < archives.size(); ++i) {
    const rrd& r = *archives[i].second;
    for (std::size_t a : chosen[i]) {
      if (r.layout(a).pdp_per_row != first->pdp_per_row || r.layout(a).rows != first->rows) continue;
      for (std::size_t ds = 0; ds < r.sources().size(); ++ds) {
        legend.push_back(std::string(to_string(r.layout(a).cf)) + ":" + archives[i].first + r.sources()[ds]);
        columns.push_back({&r, a, ds});
      }
    }
  }
  const std::int64_t width = first ? step_seconds * first->pdp_per_row : step_seconds;
  const std::int64_t last_row = last_updated / width * width;
  const std::int64_t first_row = start / width * width + width;
  std::int64_t rows = 0;
  // Rows strictly after start, as first_row says: a start clamped to a last update that falls on
  // a row's time must not bring that row back (a start in the future holds no rows).
  while (first && rows < first->rows && last_row - rows * width > start) ++rows;

  auto number = [&](std::int64_t v) { out += q.json ? "\"" + std::to_string(v) + "\"" : std::to_string(v); };
  if (q.json) {
    out += "{\"meta\":{\"start\":";
    number(first_row);
    out += ",\"step\":";
    number(width);
    out += ",\"end\":";
    number(last_row);
    out += ",\"rows\":";
    number(rows);
    out += ",\"columns\":";
    number(static_cast<std::int64_t>(legend.size()));
    out += ",\"legend\":[";
    for (std::size_t i = 0; i < legend.size(); ++i) {
      out += i ? ",\"" : "\"";
      out += legend[i];  // made of cf, uuids and source names: nothing to escape
      out += '"';
    }
    out += "]},\"data\":[";
    for (std::int64_t row = 0; row < rows; ++row) {
      out += row ? ",{\"t\":" : "{\"t\":";
      number(last_row - row * width);
      out += ",\"values\":[";
      for (std::size_t c = 0; c < columns.size(); ++c) {
        out += c ? ",\"" : "\"";
        append_float(out, columns[c].source->value(columns[c].archive, columns[c].ds, static_cast<std::size_t>(row)));
        out += '"';
      }
      out += "]}";
    }
    out += "]}";
    return ok_v;
  }
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?><xport><meta><start>";
  number(first_row);
  out += "</start><step>";
  number(width);
  out += "</step><end>";
  number(last_row);
  out += "</end><rows>";
  number(rows);
  out += "</rows><columns>";
  number(static_cast<std::int64_t>(legend.size()));
  out += "</columns><legend>";
  for (const auto& entry : legend) out += "<entry>" + entry + "</entry>";
  out += "</legend></meta><data>";
  for (std::int64_t row = 0; row < rows; ++row) {
    out += "<row><t>";
    number(last_row - row * width);
    out += "</t>";
    for (const auto& c : columns) {
      out += "<v>";
      append_float(out, c.source->value(c.archive, c.ds, static_cast<std::size_t>(row)));
      out += "</v>";
    }
    out += "</row>";
  }
  out += "</data></xport>";
  return ok_v;
}

}  // namespace xapid::metrics
