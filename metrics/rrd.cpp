#include "metrics/rrd.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <pugixml.hpp>

namespace xapid::metrics {
namespace {

constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();

double initial(consolidation cf) {
  switch (cf) {
    case consolidation::min: return std::numeric_limits<double>::infinity();
    case consolidation::max: return -std::numeric_limits<double>::infinity();
    default: return 0.0;
  }
}

bool same_text_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

void tag(std::string& out, const char* name, std::string_view text) {
  out += '<';
  out += name;
  out += '>';
  out += text;
  out += "</";
  out += name;
  out += '>';
}

void float_tag(std::string& out, const char* name, double v) {
  out += '<';
  out += name;
  out += '>';
  append_float(out, v);
  out += "</";
  out += name;
  out += '>';
}

}  // namespace

std::string_view to_string(consolidation c) noexcept {
  switch (c) {
    case consolidation::average: return "AVERAGE";
    case consolidation::min: return "MIN";
    case consolidation::max: return "MAX";
  }
  return "";
}

std::optional<consolidation> consolidation_of(std::string_view s) noexcept {
  if (same_text_ignoring_case(s, "AVERAGE") || same_text_ignoring_case(s, "ave")) return consolidation::average;
  if (same_text_ignoring_case(s, "MIN")) return consolidation::min;
  if (same_text_ignoring_case(s, "MAX")) return consolidation::max;
  return std::nullopt;
}

std::vector<archive_layout> standard_layout(bool min_max) {
  // 5 s x 120 = 10 min; 1 min x 120 = 2 h; 1 h x 168 = a week; 1 day x 366 = a year.
  const std::pair<int, int> resolutions[] = {{1, 120}, {12, 120}, {720, 168}, {17280, 366}};
  std::vector<archive_layout> out;
  for (auto [pdps, rows] : resolutions) {
    out.push_back({consolidation::average, pdps, rows});
    if (min_max) {
      out.push_back({consolidation::min, pdps, rows});
      out.push_back({consolidation::max, pdps, rows});
    }
  }
  return out;
}

void append_float(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "Infinity" : "-Infinity";
  } else if (v == 0) {
    out += "0.0";
  } else {
    char buf[32];
    int n = std::snprintf(buf, sizeof buf, "%.15g", v);
    out.append(buf, static_cast<std::size_t>(n));
  }
}

rrd::rrd(std::vector<archive_layout> layout) {
  for (const auto& l : layout) archives_.push_back(archive{l, {}, {}, {}, 0});
}

void rrd::add_source(std::string name) {
  names_.push_back(std::move(name));
  for (auto& a : archives_) {
    a.rings.emplace_back(static_cast<std::size_t>(a.layout.rows), static_cast<float>(nan_value));
    a.acc.push_back(initial(a.layout.cf));
    a.known.push_back(0);
  }
}

std::optional<std::size_t> rrd::source_index(std::string_view name) const {
  auto it = std::find(names_.begin(), names_.end(), name);
  if (it == names_.end()) return std::nullopt;
  return static_cast<std::size_t>(it - names_.begin());
}

bool rrd::forget(std::string_view name) {
  auto i = source_index(name);
  if (!i) return false;
  names_.erase(names_.begin() + static_cast<std::ptrdiff_t>(*i));
  for (auto& a : archives_) {
    a.rings.erase(a.rings.begin() + static_cast<std::ptrdiff_t>(*i));
    a.acc.erase(a.acc.begin() + static_cast<std::ptrdiff_t>(*i));
    a.known.erase(a.known.begin() + static_cast<std::ptrdiff_t>(*i));
  }
  return true;
}

void rrd::close_row(archive& a) {
  const int n = a.layout.pdp_per_row;
  a.head = (a.head + 1) % static_cast<std::size_t>(a.layout.rows);
  for (std::size_t ds = 0; ds < a.rings.size(); ++ds) {
    // rrdtool's xfiles factor 0.5: a row with more than half its points unknown is unknown.
    double v = a.known[ds] * 2 < n || a.known[ds] == 0 ? nan_value : a.acc[ds];
    if (a.layout.cf == consolidation::average && !std::isnan(v)) v /= a.known[ds];
    a.rings[ds][a.head] = static_cast<float>(v);
    a.acc[ds] = initial(a.layout.cf);
    a.known[ds] = 0;
  }
}

void rrd::advance(archive& a, std::int64_t from, std::int64_t to, const std::vector<double>& last) {
  const std::int64_t n = a.layout.pdp_per_row;
  std::int64_t pos = from, unknown = to - from - 1;
  while (unknown > 0) {
    const std::int64_t boundary = (pos / n + 1) * n;
    const std::int64_t k = std::min(unknown, boundary - pos);
    pos += k;
    unknown -= k;
    if (pos != boundary) break;
    close_row(a);
    // Whole rows of unknown points: at most a ring's worth is written.
    const std::int64_t whole = unknown / n;
    for (std::int64_t r = 0; r < std::min<std::int64_t>(whole, a.layout.rows); ++r) close_row(a);
    pos += whole * n;
    unknown -= whole * n;
  }
  for (std::size_t ds = 0; ds < a.acc.size(); ++ds) {
    const double v = last[ds];
    if (std::isnan(v)) continue;
    ++a.known[ds];
    switch (a.layout.cf) {
      case consolidation::average: a.acc[ds] += v; break;
      case consolidation::min: a.acc[ds] = std::min(a.acc[ds], v); break;
      case consolidation::max: a.acc[ds] = std::max(a.acc[ds], v); break;
    }
  }
  if (++pos % n == 0) close_row(a);
}

void rrd::update(std::int64_t t, const std::vector<std::pair<std::string, double>>& values) {
  const std::int64_t to = t / step_seconds;
  const std::int64_t from = last_updated_ == 0 ? to - 1 : last_updated_ / step_seconds;
  if (to <= from) return;
  std::vector<double> row(names_.size(), nan_value);
  for (const auto& [name, v] : values) {
    auto i = source_index(name);
    if (!i) {
      add_source(name);
      row.push_back(nan_value);
      i = names_.size() - 1;
    }
    row[*i] = v;
  }
  for (auto& a : archives_) advance(a, from, to, row);
  last_updated_ = t;
}

double rrd::value(std::size_t a, std::size_t ds, std::size_t age) const {
  const archive& ar = archives_.at(a);
  const std::size_t rows = static_cast<std::size_t>(ar.layout.rows);
  return ar.rings.at(ds)[(ar.head + rows - age % rows) % rows];
}

std::int64_t rrd::newest_row_time(std::size_t a) const {
  const std::int64_t width = step_seconds * archives_.at(a).layout.pdp_per_row;
  return last_updated_ / width * width;
}

std::optional<double> rrd::latest(std::string_view name) const {
  auto i = source_index(name);
  if (!i) return std::nullopt;
  auto best = best_archives(0, consolidation::average, last_updated_);
  if (best.empty()) return nan_value;
  return value(best.front(), *i, 0);
}

std::vector<std::size_t> rrd::best_archives(int min_pdps, std::optional<consolidation> cf, std::int64_t start) const {
  std::vector<std::size_t> candidates;
  for (std::size_t i = 0; i < archives_.size(); ++i)
    if (!cf || archives_[i].layout.cf == *cf) candidates.push_back(i);
  if (candidates.empty()) return {};
  const std::int64_t last_pdp_time = last_updated_ / step_seconds * step_seconds;
  auto span = [&](std::size_t i) {
    return step_seconds * static_cast<std::int64_t>(archives_[i].layout.rows) * archives_[i].layout.pdp_per_row;
  };
  // Rows strictly after t: an archive whose span ends exactly at t still holds them all (a client
  // asking for the last ten minutes the very second the 5 s archive's newest row was made got
  // the coarser archive: integration.metrics saw a step of 60).
  auto holds = [&](std::int64_t t, std::size_t i) {
    return archives_[i].layout.pdp_per_row >= min_pdps && t >= last_pdp_time - span(i);
  };
  auto alike = [&](std::size_t i, std::int64_t t) {
    std::vector<std::size_t> out;
    for (std::size_t j : candidates)
      if (archives_[j].layout.pdp_per_row == archives_[i].layout.pdp_per_row &&
          archives_[j].layout.rows == archives_[i].layout.rows && holds(t, j))
        out.push_back(j);
    return out;
  };
  for (std::size_t i : candidates)
    if (holds(start, i)) return alike(i, start);
  // Nothing reaches back to `start`: the coarsest archive, from as far back as it goes.
  const std::size_t coarsest = candidates.back();
  return alike(coarsest, 1 + last_pdp_time - span(coarsest));
}

std::size_t rrd::memory_bytes() const {
  std::size_t n = 0;
  for (const auto& a : archives_) n += a.rings.size() * (static_cast<std::size_t>(a.layout.rows) * sizeof(float) + 16);
  return n;
}

void rrd::dump_xml(std::string& out, bool internal) const {
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rrd>";
  tag(out, "version", "0003");
  tag(out, "step", std::to_string(step_seconds));
  tag(out, "lastupdate", std::to_string(last_updated_));
  for (std::size_t ds = 0; ds < names_.size(); ++ds) {
    out += "<ds>";
    tag(out, "name", names_[ds]);
    tag(out, "type", "GAUGE");
    float_tag(out, "minimal_heartbeat", 300.0);
    float_tag(out, "min", 0.0);
    float_tag(out, "max", std::numeric_limits<double>::infinity());
    tag(out, "last_ds", "0.0");
    float_tag(out, "value", archives_.empty() ? 0.0 : value(0, ds, 0));
    tag(out, "unknown_sec", "0");
    if (internal) float_tag(out, "last_updated", static_cast<double>(last_updated_));
    out += "</ds>";
  }
  for (const auto& a : archives_) {
    out += "<rra>";
    tag(out, "cf", to_string(a.layout.cf));
    tag(out, "pdp_per_row", std::to_string(a.layout.pdp_per_row));
    out += "<params>";
    float_tag(out, "xff", 0.5);
    out += "</params><cdp_prep>";
    for (std::size_t ds = 0; ds < a.acc.size(); ++ds) {
      out += "<ds>";
      tag(out, "primary_value", "0.0");
      tag(out, "secondary_value", "0.0");
      float_tag(out, "value", a.acc[ds]);
      tag(out, "unknown_datapoints", std::to_string(a.known[ds]));  // here: the points known
      out += "</ds>";
    }
    out += "</cdp_prep><database>";
    const std::size_t rows = static_cast<std::size_t>(a.layout.rows);
    for (std::size_t r = 0; r < rows; ++r) {
      out += "<row>";
      for (std::size_t ds = 0; ds < a.rings.size(); ++ds) {
        out += "<v>";
        append_float(out, a.rings[ds][(a.head + 1 + r) % rows]);  // oldest first
        out += "</v>";
      }
      out += "</row>";
    }
    out += "</database></rra>";
  }
  out += "</rrd>";
}

void rrd::dump_json(std::string& out) const {
  // xapi's JSON form of the dump: every value a string.
  auto str = [&](std::string_view s) {
    out += '"';
    out += s;  // names are made by the collector: no quote, backslash nor control character
    out += '"';
  };
  auto num = [&](double v) {
    out += '"';
    append_float(out, v);
    out += '"';
  };
  out += "{\"version\":\"0003\",\"step\":";
  str(std::to_string(step_seconds));
  out += ",\"lastupdate\":";
  num(static_cast<double>(last_updated_));
  out += ",\"ds\":[";
  for (std::size_t ds = 0; ds < names_.size(); ++ds) {
    if (ds) out += ',';
    out += "{\"name\":";
    str(names_[ds]);
    out += ",\"type\":\"GAUGE\",\"minimal_heartbeat\":\"300\",\"min\":\"0.0\",\"max\":\"Infinity\",\"last_ds\":\"0.0\",\"value\":";
    num(archives_.empty() ? 0.0 : value(0, ds, 0));
    out += ",\"unknown_sec\":\"0.0\",\"last_updated\":";
    num(static_cast<double>(last_updated_));
    out += '}';
  }
  out += "],\"rra\":[";
  for (std::size_t i = 0; i < archives_.size(); ++i) {
    const auto& a = archives_[i];
    if (i) out += ',';
    out += "{\"cf\":";
    str(to_string(a.layout.cf));
    out += ",\"pdp_per_row\":";
    str(std::to_string(a.layout.pdp_per_row));
    out += ",\"params\":{\"xff\":\"0.5\"},\"cdp_prep\":{\"ds\":[";
    for (std::size_t ds = 0; ds < a.acc.size(); ++ds) {
      if (ds) out += ',';
      out += "{\"primary_value\":\"0.0\",\"secondary_value\":\"0.0\",\"value\":";
      num(a.acc[ds]);
      out += ",\"unknown_datapoints\":";
      str(std::to_string(a.known[ds]));
      out += '}';
    }
    out += "]},\"database\":[";
    const std::size_t rows = static_cast<std::size_t>(a.layout.rows);
    for (std::size_t r = 0; r < rows; ++r) {
      out += r ? ",[" : "[";
      for (std::size_t ds = 0; ds < a.rings.size(); ++ds) {
        if (ds) out += ',';
        num(a.rings[ds][(a.head + 1 + r) % rows]);
      }
      out += ']';
    }
    out += "]}";
  }
  out += "]}";
}

result<rrd, std::string> rrd::from_xml(std::string_view text) {
  pugi::xml_document doc;
  if (auto parsed = doc.load_buffer(text.data(), text.size()); !parsed) return fail(std::string("not XML: ") + parsed.description());
  pugi::xml_node root = doc.child("rrd");
  if (!root) return fail(std::string("no <rrd> element"));
  if (root.child("step").text().as_llong() != step_seconds) return fail(std::string("a step other than 5 s"));
  rrd out;
  out.last_updated_ = root.child("lastupdate").text().as_llong();
  for (pugi::xml_node ds : root.children("ds")) out.names_.emplace_back(ds.child_value("name"));
  for (pugi::xml_node ra : root.children("rra")) {
    auto cf = consolidation_of(ra.child_value("cf"));
    const int pdps = ra.child("pdp_per_row").text().as_int();
    if (!cf || pdps < 1) return fail(std::string("an archive without a known cf or pdp_per_row"));
    archive a{{*cf, pdps, 0}, {}, {}, {}, 0};
    for (pugi::xml_node ds : ra.child("cdp_prep").children("ds")) {
      a.acc.push_back(ds.child("value").text().as_double(initial(*cf)));
      a.known.push_back(ds.child("unknown_datapoints").text().as_int());
    }
    a.rings.resize(out.names_.size());
    for (pugi::xml_node row : ra.child("database").children("row")) {
      std::size_t ds = 0;
      for (pugi::xml_node v : row.children("v")) {
        if (ds == out.names_.size()) return fail(std::string("a row with more values than sources"));
        a.rings[ds++].push_back(static_cast<float>(v.text().as_double(nan_value)));
      }
      if (ds != out.names_.size()) return fail(std::string("a row with fewer values than sources"));
      ++a.layout.rows;
    }
    if (a.layout.rows < 1 || a.acc.size() != out.names_.size()) return fail(std::string("an archive without rows or cdp_prep"));
    a.head = static_cast<std::size_t>(a.layout.rows) - 1;  // rows were written oldest first
    out.archives_.push_back(std::move(a));
  }
  return out;
}

}  // namespace xapid::metrics
