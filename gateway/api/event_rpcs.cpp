#include "gateway/api/event_rpcs.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include "common/log_host.hpp"
#include "gateway/rpc/read_rules.hpp"
#include "gateway/rpc/typed_rpcs.hpp"
#include "proto/wire/encoded_once.hpp"
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
  static const std::map<std::string, std::size_t, std::less<>> by_name = [] {
    std::map<std::string, std::size_t, std::less<>> m;
    const auto& tables = schema::get().tables();
    for (std::size_t c = 0; c < tables.size(); ++c) m.emplace(lower(tables[c].desc->name), c);
    return m;
  }();
  if (name.size() > 64) return std::nullopt;  // longer than any class name
  auto it = by_name.find(lower(name));
  return it == by_name.end() ? std::nullopt : std::optional<std::size_t>(it->second);
}

// What one subscription may name: every class, and a bounded number of single objects.
constexpr std::size_t max_subscription_names = 1024;
constexpr std::size_t max_subscription_name_bytes = 256;

// EVENT_SUBSCRIPTION_PARSE_FAILURE for a list no client needs (it would be kept while the call
// waits, or for the session's life by event.register).
api::status check_subscription(const wire::array& names) {
  if (names.size() > max_subscription_names)
    return fail(api::errors::EVENT_SUBSCRIPTION_PARSE_FAILURE("more than " + std::to_string(max_subscription_names) + " names"));
  for (const auto& v : names)
    if (const std::string* n = v.as_string(); n && n->size() > max_subscription_name_bytes)
      return fail(api::errors::EVENT_SUBSCRIPTION_PARSE_FAILURE(n->substr(0, 64)));
  return ok_v;
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

namespace {

// event.from's answer: the events, valid_ref_counts of the subscribed classes, and the token.
wire::value from_answer(const caller& who, const subscription& sub, const storage::state& snap,
                        const std::vector<pending_event>& events, generation upto, std::int64_t now_s) {
  wire::array out;
  out.reserve(events.size());
  for (const auto& e : events) out.push_back(event_record(snap, e, now_s, who));
  wire::structure counts;
  for (std::size_t cls : sub.counted_classes())
    counts.emplace_back(lower(schema::get().table(cls).desc->name),
                        wire::value(wire::int32_value{static_cast<std::int32_t>(snap.count(cls))}));
  return wire::value(wire::structure{{"events", wire::value(std::move(out))},
                                     {"valid_ref_counts", wire::value(std::move(counts))},
                                     {"token", wire::value(token_of(upto))}});
}

}  // namespace

struct event_rpcs::registration {
  subscription sub;
  generation cursor = 0;
};

// A parked event.from or event.next: no thread holds it; a commit or its deadline hands it to
// the call pool, which looks for its events and answers or parks it again.
struct event_rpcs::waiter {
  std::uint64_t id = 0;      // from its first parking
  bool is_next = false;      // event.next: answers an array, moves the registration's cursor
  call_context ctx;          // who asked (its lane on the pool, its session to check again)
  subscription requested;    // as asked
  subscription sub;          // as this reader may have it
  std::string alike;         // what besides the cursor decides its answer (fit_to_reader)
  generation cursor = 0;     // the changes up to here were looked at
  std::string key;           // its entry in alike_ while parked
  std::int64_t deadline_ms = 0;  // 0: none (event.next)
  dispatcher::answer done;
  bool gone = false;         // the client closed its connection (under mu_)
  bool counted = false;      // holds a place in the per-session/user/client counts (under mu_)
  bool in_deadlines = false;  // deadline_entry is valid (under mu_)
  std::multimap<std::int64_t, std::uint64_t>::iterator deadline_entry;
};

namespace {

void put_counted(std::string& out, char what, std::string_view text) {
  out += what;
  out += std::to_string(text.size());
  out += ':';
  out += text;
}

// The subscription as the waiter's reader may have it, and `alike`: everything but the cursor
// that decides the waiter's answer — event.from or next, the subscription, and the reader's
// view of the classes whose records differ by reader. Each piece is length-prefixed (refs come
// from clients), so different answers never share a text.
template <class waiter>
void fit_to_reader(waiter& w) {
  w.sub = for_reader(w.requested, w.ctx.who);
  std::string& alike = w.alike;
  alike = w.is_next ? "next" : "from";
  for (std::size_t cls : w.sub.classes) put_counted(alike, 'c', std::to_string(cls));
  for (const auto& [cls, ref] : w.sub.objects) {
    put_counted(alike, 'o', std::to_string(cls));
    put_counted(alike, '/', ref);
  }
  for (std::size_t cls : w.sub.counted_classes())
    if (std::string view = read_rules::view_of(w.ctx.who, cls); !view.empty()) {
      put_counted(alike, 'v', std::to_string(cls));
      put_counted(alike, '=', view);
    }
}

// Waiters with the same key get the same answer; the cursor leads, so keys sort by it.
template <class waiter>
std::string key_of(const waiter& w) {
  return token_of(w.cursor) + w.alike;
}

}  // namespace

event_rpcs::event_rpcs(storage::database& db, clock& clk, const dispatcher& d, session_check check, event_limits limits)
    : db_(db), clock_(clk), dispatcher_(d), check_session_(std::move(check)), limits_(limits) {
  published_ = handed_ = db_.current_generation();
  publish_listener_ = db_.on_publish([this](generation g) { on_commit(g); });
  waker_ = std::thread(carry_log_host([this] { waker_loop(); }));
}

event_rpcs::~event_rpcs() {
  db_.remove_publish_listener(publish_listener_);  // commits after this one must not call in here
  stop();
}

void event_rpcs::stop() {
  std::map<std::uint64_t, std::shared_ptr<waiter>> dropped;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    dropped.swap(parked_);
    alike_.clear();
  }
  cv_.notify_all();
  if (waker_.joinable()) waker_.join();
  // The daemon stops: the connections of these calls are closing already.
  for (auto& [id, w] : dropped) w->done(fail(api::errors::INTERNAL_ERROR("the daemon is stopping")));
}

std::size_t event_rpcs::waiting() {
  std::lock_guard lock(mu_);
  return parked_.size();
}

void event_rpcs::session_ended(const std::string& session) {
  std::lock_guard lock(mu_);
  registrations_.erase(session);
}

void event_rpcs::register_with(dispatcher& d) {
  d.add_parked("event.from", [this](call_context& ctx, const wire::array& p, dispatcher::answer done) {
    from(ctx, p, std::move(done));
  });
  d.add_parked("event.next", [this](call_context& ctx, const wire::array&, dispatcher::answer done) {
    next(ctx, std::move(done));
  });
  namespace m = api::method;
  constexpr bool blocking = true;  // a commit
  add_typed<m::event_inject>(d, [this](call_context& ctx, const std::string& cls, const std::string& ref) {
    return inject(ctx, cls, ref);
  }, blocking);
  add_typed<m::event_get_current_id>(d, [this](call_context&) -> api::api_result<std::int64_t> {
    return static_cast<std::int64_t>(db_.current_generation());
  });
  // Untyped, as event.from: a name that is not a string is skipped (typed: FIELD_TYPE_ERROR).
  d.add("event.register", [this](call_context& ctx, const wire::array& p) -> api::api_result<wire::value> {
    const wire::array* classes = p[0].as_array();
    if (!classes) return fail(api::errors::FIELD_TYPE_ERROR("classes"));
    if (auto st = check_subscription(*classes); !st) return fail(st.error());
    std::lock_guard lock(mu_);
    auto& reg = registrations_[ctx.session];
    if (!reg) {
      reg = std::make_unique<registration>();
      reg->cursor = db_.current_generation();
    }
    subscription more = parse_subscription(*classes);
    if (reg->sub.objects.size() + more.objects.size() > max_subscription_names)
      return fail(api::errors::EVENT_SUBSCRIPTION_PARSE_FAILURE("more than " + std::to_string(max_subscription_names) + " objects"));
    reg->sub.all |= more.all;
    reg->sub.classes.insert(more.classes.begin(), more.classes.end());
    reg->sub.objects.insert(more.objects.begin(), more.objects.end());
    return wire::value("");
  });
  // Untyped, as event.register.
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

// On the thread that decoded the call: what is quick (checking the parameters, parking a call
// with nothing new to see) is done here; looking at changes and snapshots goes to the pool.
void event_rpcs::from(call_context& ctx, const wire::array& p, dispatcher::answer done) {
  const wire::array* classes = p[0].as_array();
  if (!classes) return done(fail(api::errors::FIELD_TYPE_ERROR("classes")));
  if (auto st = check_subscription(*classes); !st) return done(fail(st.error()));
  const std::string* token_text = p[1].as_string();
  auto token = token_text ? parse_token(*token_text) : std::nullopt;
  if (!token)
    return done(fail(api::errors::EVENT_FROM_TOKEN_PARSE_FAILURE(token_text ? *token_text : api::describe(p[1]))));
  double timeout_s = 0;
  if (auto st = api::from_value(p[2], timeout_s); !st) return done(fail(api::errors::FIELD_TYPE_ERROR("timeout")));
  timeout_s = std::clamp(timeout_s, 0.0, 3600.0);

  if (*token == 0) {
    // From the beginning: every object there is, as an addition.
    auto whole = [this, who = ctx.who, sub = for_reader(parse_subscription(*classes), ctx.who), done] {
      auto snap = db_.snapshot();
      std::vector<pending_event> events;
      for (std::size_t cls : sub.counted_classes())
        snap->for_each(cls, [&](const std::string& ref, const storage::row& r) {
          if (sub.wants(cls, ref)) events.push_back({cls, ref, storage::change_kind::add, r.modified});
          return true;
        });
      done(from_answer(who, sub, *snap, events, snap->gen(), clock_.now_ms() / 1000));
    };
    if (!dispatcher_.submit(ctx, std::move(whole))) done(fail(api::errors::TOO_BUSY()));
    return;
  }
  auto w = std::make_shared<waiter>();
  w->ctx = ctx;
  w->ctx.connection.reset();
  w->requested = parse_subscription(*classes);
  w->cursor = *token;
  w->deadline_ms = clock_.now_ms() + static_cast<std::int64_t>(timeout_s * 1000);
  w->done = std::move(done);
  start(w, ctx);
}

void event_rpcs::next(call_context& ctx, dispatcher::answer done) {
  auto w = std::make_shared<waiter>();
  {
    std::lock_guard lock(mu_);
    auto it = registrations_.find(ctx.session);
    if (it == registrations_.end()) return done(fail(api::errors::SESSION_NOT_REGISTERED(ctx.session)));
    w->requested = it->second->sub;
    w->cursor = it->second->cursor;
  }
  w->is_next = true;
  w->ctx = ctx;
  w->ctx.connection.reset();
  w->done = std::move(done);
  start(w, ctx);
}

// A new waiter: looked at on the pool when there is something to see or its time is up, else
// parked at once; and dropped when its client goes.
void event_rpcs::start(const std::shared_ptr<waiter>& w, call_context& ctx) {
  fit_to_reader(*w);
  const bool due = w->deadline_ms && clock_.now_ms() >= w->deadline_ms;
  if (due || db_.current_generation() > w->cursor) hand_on({w}, due);
  else park(w, true);
  if (!ctx.connection.expired()) {
    std::weak_ptr<waiter> weak = w;
    when_client_gone(ctx.connection, [this, weak] {
      if (auto still = weak.lock()) client_gone(still);
    });
  }
}

// Has the pool look at waiters that would get the same answer (or one that is due), in the lane
// of the first.
void event_rpcs::hand_on(batch waiters, bool due) {
  const std::shared_ptr<waiter> first = waiters.front();
  auto shared = std::make_shared<batch>(std::move(waiters));
  if (dispatcher_.submit(first->ctx, [this, shared, due] { look(*shared, due); })) return;
  // The lane is full: a new call is refused, as any call is then; parked ones wait for the next
  // commit or their deadline.
  for (auto& w : *shared) {
    if (w->id) park(w, false);
    else finish(*w, fail(api::errors::TOO_BUSY()));
  }
}

// Checks each waiter's session again, then answers those alike together.
void event_rpcs::look(const batch& waiters, bool due) {
  std::map<std::string, batch> alike;
  for (const auto& w : waiters) {
    auto who = check_session_(w->ctx.session);
    if (!who) {
      finish(*w, fail(who.error()));  // logged out or its rights gone meanwhile
      continue;
    }
    const bool rights_changed = who->role != w->ctx.who.role;
    w->ctx.who = std::move(who).value();
    if (rights_changed) fit_to_reader(*w);  // it may read more or less now
    alike[key_of(*w)].push_back(w);
  }
  for (const auto& [key, same] : alike) answer_alike(same, due);
}

// Answers waiters whose answer would be the same with one answer, written once per format; or
// parks them again when there is nothing for them (those whose time is up answer empty).
void event_rpcs::answer_alike(const batch& alike, bool due) {
  const waiter& first = *alike.front();
  auto r = db_.changes_since(first.cursor, std::chrono::milliseconds(0));
  if (r.lost) {
    for (const auto& w : alike) finish(*w, fail(api::errors::EVENTS_LOST()));
    return;
  }
  std::vector<pending_event> events = coalesce(r.changes, first.sub);
  if (events.empty() && !due) {
    const std::int64_t now = clock_.now_ms();
    batch out_of_time;
    for (const auto& w : alike) {
      w->cursor = r.gen;
      if (w->deadline_ms && now >= w->deadline_ms) out_of_time.push_back(w);
      else park(w, true);
    }
    if (!out_of_time.empty()) answer_alike(out_of_time, true);
    return;
  }
  auto snap = db_.snapshot();
  const std::int64_t now_s = clock_.now_ms() / 1000;
  wire::value answer;
  if (first.is_next) {
    wire::array out;
    for (const auto& e : events) out.push_back(event_record(*snap, e, now_s, first.ctx.who));
    answer = wire::value(std::move(out));
  } else {
    answer = from_answer(first.ctx.who, first.sub, *snap, events, r.gen, now_s);
  }
  answer = wire::encode_once(std::move(answer));
  for (const auto& w : alike) {
    if (w->is_next) {
      std::lock_guard lock(mu_);
      if (auto it = registrations_.find(w->ctx.session); it != registrations_.end()) it->second->cursor = r.gen;
    }
    finish(*w, answer);
  }
}

void event_rpcs::finish(waiter& w, const api::api_result<wire::value>& answer) {
  w.done(answer);
  std::lock_guard lock(mu_);
  forget(w);
}

// Parks a waiter after a look, a new one within the limits of its session, user and address.
// `look_again`: a commit that the waker handed on before this waiter's look had ended is looked
// at now (a waiter whose lane was full waits for the next commit instead).
void event_rpcs::park(const std::shared_ptr<waiter>& w, bool look_again) {
  std::optional<api::api_error> refused;
  bool tell_waker = false;
  {
    std::lock_guard lock(mu_);
    auto count = [](std::map<std::string, std::size_t>& m, const std::string& k) {
      auto it = m.find(k);
      return it == m.end() ? std::size_t{0} : it->second;
    };
    const bool limited = !w->counted && !w->ctx.who.superuser;
    if (w->gone) {
      forget(*w);  // its client closed the connection meanwhile: nobody to answer
      return;
    }
    if (stopping_) {
      forget(*w);
      refused = api::errors::INTERNAL_ERROR("the daemon is stopping");
    } else if (limited && (count(per_session_, w->ctx.session) >= limits_.per_session ||
                           count(per_client_, w->ctx.client) >= limits_.per_client ||
                           count(per_user_, w->ctx.who.identity) >= limits_.per_user ||
                           parked_.size() >= limits_.total)) {
      forget(*w);
      refused = api::errors::TOO_BUSY();
    } else {
      if (limited) {
        ++per_session_[w->ctx.session];
        ++per_client_[w->ctx.client];
        ++per_user_[w->ctx.who.identity];
        w->counted = true;
      }
      if (!w->id) w->id = ++next_id_;
      w->key = key_of(*w);
      parked_.emplace(w->id, w);
      alike_[w->key].insert(w->id);
      if (w->deadline_ms && !w->in_deadlines) {
        w->deadline_entry = deadlines_.emplace(w->deadline_ms, w->id);
        w->in_deadlines = true;
        tell_waker = w->deadline_entry == deadlines_.begin();  // it sleeps until the first deadline
      }
      if (look_again && published_ > w->cursor && handed_ > w->cursor) {
        handed_ = w->cursor;
        tell_waker = true;
      }
    }
  }
  if (refused) return w->done(fail(std::move(*refused)));
  if (tell_waker) cv_.notify_all();
}

// Takes a parked waiter out of the parked set and its entry in alike_ (under mu_); false if it
// was not parked.
bool event_rpcs::unpark(const waiter& w) {
  if (!parked_.erase(w.id)) return false;
  auto it = alike_.find(w.key);
  it->second.erase(w.id);
  if (it->second.empty()) alike_.erase(it);
  return true;
}

// A waiter that has answered gives back its place in the counts and its deadline (under mu_).
void event_rpcs::forget(waiter& w) {
  if (w.in_deadlines) {
    deadlines_.erase(w.deadline_entry);
    w.in_deadlines = false;
  }
  if (!w.counted) return;
  w.counted = false;
  auto drop = [](std::map<std::string, std::size_t>& m, const std::string& k) {
    auto it = m.find(k);
    if (it != m.end() && --it->second == 0) m.erase(it);
  };
  drop(per_session_, w.ctx.session);
  drop(per_client_, w.ctx.client);
  drop(per_user_, w.ctx.who.identity);
}

void event_rpcs::client_gone(const std::shared_ptr<waiter>& w) {
  {
    std::lock_guard lock(mu_);
    if (!unpark(*w)) {
      w->gone = true;  // being looked at: dropped instead of parked again
      return;
    }
    forget(*w);
  }
  w->done(fail(api::errors::INTERNAL_ERROR("the client closed its connection")));
}

// On the thread that applies commits: it only notes the generation for the waker.
void event_rpcs::on_commit(generation g) {
  {
    std::lock_guard lock(mu_);
    published_ = std::max(published_, g);
  }
  cv_.notify_all();
}

// Hands on, away from the commit path, the waiters a commit may concern — together, those alike
// — and the ones whose deadline came.
void event_rpcs::waker_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    std::vector<batch> woken;
    batch due;
    if (published_ > handed_) {
      handed_ = published_;
      // Keys begin with the cursor: the waiters parked before the commit come first.
      const auto end = alike_.lower_bound(token_of(published_));
      for (auto it = alike_.begin(); it != end; it = alike_.erase(it)) {
        batch& same = woken.emplace_back();
        for (auto id : it->second) {
          auto p = parked_.find(id);
          same.push_back(std::move(p->second));
          parked_.erase(p);
        }
      }
    }
    const std::int64_t now = clock_.now_ms();
    for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it)
      if (auto p = parked_.find(it->second); p != parked_.end()) {
        due.push_back(p->second);
        unpark(*due.back());  // a waiter answers and forgets its entry; one being looked at parks due
      }
    if (!woken.empty() || !due.empty()) {
      lock.unlock();
      for (auto& same : woken) hand_on(std::move(same), false);
      for (auto& w : due) hand_on({w}, true);
      lock.lock();
      if (due.empty() || deadlines_.empty() || deadlines_.begin()->first > now) continue;
      // A due waiter whose lane was full is parked again: it is tried again shortly.
    }
    std::int64_t wait_ms = 1000;
    if (!deadlines_.empty())
      wait_ms = deadlines_.begin()->first <= now ? 10  // entries of waiters out being looked at
                                                 : std::min<std::int64_t>(1000, deadlines_.begin()->first - now);
    cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return stopping_ || published_ > handed_; });
  }
}

api::api_result<std::string> event_rpcs::inject(const call_context& ctx, const std::string& cls_name, const std::string& ref) {
  auto cls = class_by_lower_name(cls_name);
  if (!cls) return fail(api::errors::HANDLE_INVALID(cls_name, ref));
  const auto& ts = schema::get().table(*cls);
  auto snap = db_.snapshot();
  const storage::row* r = snap->find(*cls, ref);
  // An object the caller could not have an event of is, to it, no object (nor an oracle of refs).
  if (!r || !read_rules::has_events(*cls) || !read_rules::may_read(ctx.who, *cls))
    return fail(api::errors::HANDLE_INVALID(std::string(ts.desc->name), ref));
  // Each inject is a synced commit: a session gets a burst, then a steady rate (root: no limit).
  if (!ctx.who.superuser && !take_inject_token(ctx.who.identity)) return fail(api::errors::TOO_BUSY());
  // A modification that changes nothing: the object gets a "mod" event at a new generation.
  auto t = db_.begin();
  std::size_t field = ts.uuid_field.value_or(0);
  t.set(*cls, ref, field, ts.ops->get_field(r->record.get(), field));
  auto g = db_.commit(std::move(t));
  if (!g) return fail(std::move(g).error());
  return token_of(*g - 1);
}

}  // namespace xapid::gateway

namespace xapid::gateway {

bool event_rpcs::take_inject_token(const std::string& user) {
  constexpr double burst = 100, per_second = 20;
  const std::int64_t now = clock_.now_ms();
  std::lock_guard lock(mu_);
  // Users whose tokens are full again need no entry.
  if (inject_tokens_.size() > 10000)
    std::erase_if(inject_tokens_, [&](const auto& e) {
      return e.second.first + static_cast<double>(now - e.second.second) / 1000.0 * per_second >= burst;
    });
  auto [it, fresh] = inject_tokens_.try_emplace(user, std::pair<double, std::int64_t>{burst, now});
  auto& [tokens, at] = it->second;
  tokens = std::min(burst, tokens + static_cast<double>(now - at) / 1000.0 * per_second);
  at = now;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

}  // namespace xapid::gateway
