#include "gateway/event_rpcs.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>

#include "gateway/read_rules.hpp"
#include "storage/row_values.hpp"

namespace xapid::gateway {
namespace {

using storage::generation;
using storage::schema;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A token is the generation the events are complete up to, as 20 digits.
std::string token_of(generation g) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(g));
  return buf;
}

// Accepts our tokens and xapi's "<generation>,<message id>" form; "" is the beginning.
std::optional<generation> parse_token(std::string_view t) {
  if (t.empty()) return generation{0};
  t = t.substr(0, t.find(','));
  if (t.empty() || t.size() > 20) return std::nullopt;
  generation g = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return std::nullopt;
    g = g * 10 + static_cast<generation>(c - '0');
  }
  return g;
}

// What a subscription asks for: whole classes ("vm", or "*" for all), or single objects ("vm/ref").
struct subscription {
  bool all = false;
  std::set<std::size_t> classes;
  std::set<std::pair<std::size_t, std::string>> objects;

  bool wants(std::size_t cls, const std::string& ref) const {
    return all || classes.count(cls) || objects.count({cls, ref});
  }
  std::vector<std::size_t> counted_classes() const {
    std::set<std::size_t> out(classes.begin(), classes.end());
    for (const auto& o : objects) out.insert(o.first);
    if (all)
      for (std::size_t c = 0; c < schema::get().tables().size(); ++c) out.insert(c);
    return {out.begin(), out.end()};
  }
};

// The classes whose events reach `who`: those that have events and that it may read.
std::vector<bool> readable_classes(const caller& who) {
  std::vector<bool> out(schema::get().tables().size());
  for (std::size_t c = 0; c < out.size(); ++c) out[c] = read_rules::has_events(c) && read_rules::may_read(who, c);
  return out;
}

// The subscription as `who` may have it: what it may not read is not part of it.
subscription for_reader(subscription s, const caller& who) {
  auto readable = readable_classes(who);
  if (s.all) {
    s.all = false;
    for (std::size_t c = 0; c < readable.size(); ++c) s.classes.insert(c);
  }
  std::erase_if(s.classes, [&](std::size_t c) { return !readable[c]; });
  std::erase_if(s.objects, [&](const auto& o) { return !readable[o.first]; });
  return s;
}

std::optional<std::size_t> class_by_lower_name(std::string_view name) {
  const auto& tables = schema::get().tables();
  for (std::size_t c = 0; c < tables.size(); ++c)
    if (lower(tables[c].desc->name) == lower(name)) return c;
  return std::nullopt;
}

subscription parse_subscription(const wire::array& names) {
  subscription s;
  for (const auto& v : names) {
    const std::string* name = v.as_string();
    if (!name) continue;
    if (*name == "*") {
      s.all = true;
      continue;
    }
    auto slash = name->find('/');
    auto cls = class_by_lower_name(std::string_view(*name).substr(0, slash));
    if (!cls) continue;  // a class this API does not have never has events
    if (slash == std::string::npos) s.classes.insert(*cls);
    else s.objects.emplace(*cls, name->substr(slash + 1));
  }
  return s;
}

struct pending_event {
  std::size_t cls;
  std::string ref;
  storage::change_kind kind;
  generation gen;
};

// One event per object, in the order objects first changed: "add" if it was created within the
// window, "del" if it is gone at its end, "mod" otherwise.
std::vector<pending_event> coalesce(const std::vector<storage::change>& changes, const subscription& sub) {
  std::vector<pending_event> out;
  std::map<std::pair<std::size_t, std::string>, std::size_t> at;
  for (const auto& c : changes) {
    if (!sub.wants(c.cls, c.ref)) continue;
    auto key = std::make_pair<std::size_t, std::string>(c.cls, std::string(c.ref));
    auto it = at.find(key);
    if (it == at.end()) {
      at.emplace(key, out.size());
      out.push_back({c.cls, c.ref, c.kind, c.gen});
      continue;
    }
    pending_event& e = out[it->second];
    if (c.kind == storage::change_kind::del) e.kind = storage::change_kind::del;
    else if (e.kind != storage::change_kind::add) e.kind = c.kind;
    e.gen = c.gen;
  }
  return out;
}

wire::value event_record(const storage::state& snap, const pending_event& e, std::int64_t now_s, const caller& who) {
  static constexpr const char* ops[] = {"add", "mod", "del"};
  const auto& ts = schema::get().table(e.cls);
  wire::structure ev;
  ev.emplace_back("id", wire::value(static_cast<std::int64_t>(e.gen)));
  ev.emplace_back("timestamp", wire::value(wire::datetime{api::format_iso8601(api::datetime{now_s})}));
  ev.emplace_back("class", wire::value(lower(ts.desc->name)));
  ev.emplace_back("operation", wire::value(ops[static_cast<int>(e.kind)]));
  ev.emplace_back("ref", wire::value(e.ref));
  const storage::row* r = snap.find_any(e.cls, e.ref);
  std::string uuid;
  if (r && ts.uuid_field) {
    wire::value u = ts.ops->get_field(r->record.get(), *ts.uuid_field);
    if (u.as_string()) uuid = *u.as_string();
  }
  ev.emplace_back("obj_uuid", wire::value(uuid));
  if (r) ev.emplace_back("snapshot", storage::record_value(ts, read_rules::view(who, snap, e.cls, r->record)));
  return wire::value(std::move(ev));
}

}  // namespace

struct event_rpcs::registration {
  subscription sub;
  generation cursor = 0;
};

event_rpcs::event_rpcs(storage::database& db, clock& clk) : db_(db), clock_(clk) {}
event_rpcs::~event_rpcs() = default;

void event_rpcs::register_with(dispatcher& d) {
  d.add_blocking("event.from", [this](call_context& ctx, const wire::array& p) { return from(ctx.who, p); });
  d.add_blocking("event.next", [this](call_context& ctx, const wire::array&) { return next(ctx.who, ctx.session); });
  d.add_blocking("event.inject", [this](call_context& ctx, const wire::array& p) { return inject(ctx, p); });
  d.add("event.get_current_id", [this](call_context&, const wire::array&) -> api::api_result<wire::value> {
    return wire::value(static_cast<std::int64_t>(db_.current_generation()));
  });
  d.add("event.register", [this](call_context& ctx, const wire::array& p) -> api::api_result<wire::value> {
    const wire::array* classes = p[0].as_array();
    if (!classes) return fail(api::errors::FIELD_TYPE_ERROR("classes"));
    std::lock_guard lock(mu_);
    auto& reg = registrations_[ctx.session];
    if (!reg) {
      reg = std::make_unique<registration>();
      reg->cursor = db_.current_generation();
    }
    subscription more = parse_subscription(*classes);
    reg->sub.all |= more.all;
    reg->sub.classes.insert(more.classes.begin(), more.classes.end());
    reg->sub.objects.insert(more.objects.begin(), more.objects.end());
    return wire::value("");
  });
  d.add("event.unregister", [this](call_context& ctx, const wire::array& p) -> api::api_result<wire::value> {
    const wire::array* classes = p[0].as_array();
    if (!classes) return fail(api::errors::FIELD_TYPE_ERROR("classes"));
    std::lock_guard lock(mu_);
    auto it = registrations_.find(ctx.session);
    if (it == registrations_.end()) return wire::value("");
    subscription less = parse_subscription(*classes);
    if (less.all) it->second->sub = subscription{};
    for (auto c : less.classes) it->second->sub.classes.erase(c);
    for (const auto& o : less.objects) it->second->sub.objects.erase(o);
    return wire::value("");
  });
}

api::api_result<wire::value> event_rpcs::from(const caller& who, const wire::array& p) {
  const wire::array* classes = p[0].as_array();
  if (!classes) return fail(api::errors::FIELD_TYPE_ERROR("classes"));
  const std::string* token_text = p[1].as_string();
  auto token = token_text ? parse_token(*token_text) : std::nullopt;
  if (!token) return fail(api::errors::EVENT_FROM_TOKEN_PARSE_FAILURE(token_text ? *token_text : api::describe(p[1])));
  double timeout_s = 0;
  if (auto st = api::from_value(p[2], timeout_s); !st) return fail(api::errors::FIELD_TYPE_ERROR("timeout"));
  timeout_s = std::clamp(timeout_s, 0.0, 3600.0);
  subscription sub = for_reader(parse_subscription(*classes), who);

  std::vector<pending_event> events;
  std::shared_ptr<const storage::state> snap;
  generation upto = 0;
  if (*token == 0) {
    // From the beginning: every object there is, as an addition.
    snap = db_.snapshot();
    upto = snap->gen();
    for (std::size_t cls : sub.counted_classes())
      snap->for_each(cls, [&](const std::string& ref, const storage::row& r) {
        if (sub.wants(cls, ref)) events.push_back({cls, ref, storage::change_kind::add, r.modified});
        return true;
      });
  } else {
    // Wait until something this subscription wants has changed, or the timeout.
    const std::int64_t deadline = clock_.now_ms() + static_cast<std::int64_t>(timeout_s * 1000);
    generation cursor = *token;
    std::vector<storage::change> seen;
    for (;;) {
      std::int64_t left = std::max<std::int64_t>(0, deadline - clock_.now_ms());
      auto r = db_.changes_since(cursor, std::chrono::milliseconds(left));
      if (r.lost) return fail(api::errors::EVENTS_LOST());
      seen.insert(seen.end(), r.changes.begin(), r.changes.end());
      cursor = r.gen;
      events = coalesce(seen, sub);
      if (!events.empty() || clock_.now_ms() >= deadline || r.changes.empty()) break;
    }
    upto = cursor;
    snap = db_.snapshot();
  }

  const std::int64_t now_s = clock_.now_ms() / 1000;
  wire::array out;
  out.reserve(events.size());
  for (const auto& e : events) out.push_back(event_record(*snap, e, now_s, who));
  wire::structure counts;
  for (std::size_t cls : sub.counted_classes())
    counts.emplace_back(lower(schema::get().table(cls).desc->name),
                        wire::value(wire::int32_value{static_cast<std::int32_t>(snap->count(cls))}));
  return wire::value(wire::structure{{"events", wire::value(std::move(out))},
                                     {"valid_ref_counts", wire::value(std::move(counts))},
                                     {"token", wire::value(token_of(upto))}});
}

api::api_result<wire::value> event_rpcs::next(const caller& who, const std::string& session) {
  subscription sub;
  generation cursor;
  {
    std::lock_guard lock(mu_);
    auto it = registrations_.find(session);
    if (it == registrations_.end()) return fail(api::errors::SESSION_NOT_REGISTERED(session));
    sub = for_reader(it->second->sub, who);
    cursor = it->second->cursor;
  }
  // event.next waits until there is something; it wakes every 30 s to notice a stopping daemon.
  std::vector<pending_event> events;
  std::vector<storage::change> seen;
  for (int round = 0; events.empty(); ++round) {
    auto r = db_.changes_since(cursor, std::chrono::seconds(30));
    if (r.lost) return fail(api::errors::EVENTS_LOST());
    if (r.changes.empty() && r.gen == cursor && round > 0) break;  // woken without news: stopping
    seen.insert(seen.end(), r.changes.begin(), r.changes.end());
    cursor = r.gen;
    events = coalesce(seen, sub);
  }
  {
    std::lock_guard lock(mu_);
    auto it = registrations_.find(session);
    if (it != registrations_.end()) it->second->cursor = cursor;
  }
  auto snap = db_.snapshot();
  const std::int64_t now_s = clock_.now_ms() / 1000;
  wire::array out;
  for (const auto& e : events) out.push_back(event_record(*snap, e, now_s, who));
  return wire::value(std::move(out));
}

api::api_result<wire::value> event_rpcs::inject(const call_context& ctx, const wire::array& p) {
  const std::string* cls_name = p[0].as_string();
  const std::string* ref = p[1].as_string();
  if (!cls_name || !ref) return fail(api::errors::FIELD_TYPE_ERROR(cls_name ? "ref" : "class"));
  auto cls = class_by_lower_name(*cls_name);
  if (!cls) return fail(api::errors::HANDLE_INVALID(*cls_name, *ref));
  const auto& ts = schema::get().table(*cls);
  auto snap = db_.snapshot();
  const storage::row* r = snap->find(*cls, *ref);
  // An object the caller could not have an event of is, to it, no object (nor an oracle of refs).
  if (!r || !read_rules::has_events(*cls) || !read_rules::may_read(ctx.who, *cls))
    return fail(api::errors::HANDLE_INVALID(std::string(ts.desc->name), *ref));
  // Each inject is a synced commit: a session gets a burst, then a steady rate (root: no limit).
  if (!ctx.who.superuser && !take_inject_token(ctx.session)) return fail(api::errors::TOO_BUSY());
  // A modification that changes nothing: the object gets a "mod" event at a new generation.
  auto t = db_.begin();
  std::size_t field = ts.uuid_field.value_or(0);
  t.set(*cls, *ref, field, ts.ops->get_field(r->record.get(), field));
  auto g = db_.commit(std::move(t));
  if (!g) return fail(std::move(g).error());
  return wire::value(token_of(*g - 1));
}

}  // namespace xapid::gateway

namespace xapid::gateway {

bool event_rpcs::take_inject_token(const std::string& session) {
  constexpr double burst = 100, per_second = 20;
  const std::int64_t now = clock_.now_ms();
  std::lock_guard lock(mu_);
  if (inject_tokens_.size() > 10000) inject_tokens_.clear();  // sessions come and go: start afresh
  auto [it, fresh] = inject_tokens_.try_emplace(session, std::pair<double, std::int64_t>{burst, now});
  auto& [tokens, at] = it->second;
  tokens = std::min(burst, tokens + static_cast<double>(now - at) / 1000.0 * per_second);
  at = now;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

}  // namespace xapid::gateway
