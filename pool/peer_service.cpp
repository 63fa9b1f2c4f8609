#include "pool/peer_service.hpp"

#include <atomic>
#include <set>
#include <utility>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/log_host.hpp"
#include "pool/membership.hpp"
#include "pool/peer_client.hpp"
#include "xapid/grpc/pool_peer.grpc.pb.h"

namespace xapid::pool {
struct peer_service::impl final : peer::PoolPeer::CallbackService {
  peer_service_context ctx;
  std::shared_ptr<const std::string> log_name = current_log_host_ptr();
  std::atomic<bool> joining{false};
  std::mutex threads_mu;
  struct worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  std::vector<worker> threads;  // those finished are joined as the next one starts

  ~impl() override {
    std::lock_guard lock(threads_mu);
    for (auto& w : threads) w.thread.join();
  }

  // A caller that is a member of the pool, or why not.
  grpc::Status member_only(const grpc::CallbackServerContext& c, std::string* host_uuid = nullptr) {
    const std::string fp = ctx.caller_fingerprint ? ctx.caller_fingerprint(c) : std::string();
    if (!fp.empty())
      if (auto m = member_by_fingerprint(*ctx.db->snapshot(), fp)) {
        if (host_uuid) *host_uuid = m->host_uuid;
        return grpc::Status::OK;
      }
    spdlog::warn("pool.peer.refused peer={} reason=\"not a member of this pool\"", c.peer());
    return {grpc::StatusCode::PERMISSION_DENIED, "not a member of this pool"};
  }

  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* c, const peer::PingRequest*, peer::PingReply* reply) override {
    auto* reactor = c->DefaultReactor();
    std::string caller;
    if (auto st = member_only(*c, &caller); !st.ok()) {
      reactor->Finish(st);
      return reactor;
    }
    if (ctx.host_uuid) reply->set_host_uuid(ctx.host_uuid());
    if (ctx.ha_heartbeat)
      if (auto report = ctx.ha_heartbeat(caller)) {
        reply->set_ha_armed(true);
        reply->set_ha_statefile_lost(report->statefile_lost);
        for (auto& [host, age] : report->heard) {
          auto* heard = reply->add_ha_heard();
          heard->set_host_uuid(std::move(host));
          heard->set_age_ms(age);
        }
      }
    const auto status = ctx.log->status();
    reply->set_master(status.state == storage::raft_status::role_state::leader);
    // The database's own, set before any write of the entry is acknowledged (the published
    // status follows at the end of the log's turn: a member's read fence asking right after an
    // acknowledgement would get the entry before).
    reply->set_applied_index(ctx.db->applied_log_index());
    if (ctx.operations_in_flight)
      for (auto& key : ctx.operations_in_flight()) reply->add_operations_in_flight(std::move(key));
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Propose(grpc::CallbackServerContext* c, const peer::ProposeRequest* request,
                                    peer::ProposeReply* reply) override {
    auto* reactor = c->DefaultReactor();
    if (auto st = member_only(*c); !st.ok()) {
      reactor->Finish(st);
      return reactor;
    }
    // The sender's Raft id: its idempotency keys must be its own.
    std::optional<std::uint64_t> sender = 0;  // none found: no key is its own
    if (ctx.caller_fingerprint)
      if (auto m = member_by_fingerprint(*ctx.db->snapshot(), ctx.caller_fingerprint(*c))) sender = m->raft_id;
    // Answered from the log's thread once the entry is applied here (or refused).
    // And it writes of the pool's membership only its own place (checked against this replica,
    // where the master's join and eject are applied first).
    auto vet = [db = ctx.db, id = sender.value_or(0)](const storage::proposal& p) { return vet_member_change(*db->snapshot(), id, p.ops); };
    ctx.log->order_forwarded(request->proposal(), [reactor, reply](storage::forwarded_answer a) {
      reply->set_log_index(a.log_index);
      reply->set_outcome_unknown(a.unknown);
      if (a.outcome) reply->set_generation(*a.outcome);
      else to_proto(a.outcome.error(), *reply->mutable_error());
      reactor->Finish(grpc::Status::OK);
    }, sender, vet);
    return reactor;
  }

  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* c, const peer::JoinRequest* request, peer::JoinReply* reply) override {
    auto* reactor = c->DefaultReactor();
    if (!ctx.join) {
      reactor->Finish({grpc::StatusCode::UNIMPLEMENTED, "this host takes no joins"});
      return reactor;
    }
    // One join at a time in the pool's master: xapi's pool operation lock.
    if (joining.exchange(true)) {
      to_proto(api::errors::OTHER_OPERATION_IN_PROGRESS("pool", ""), *reply->add_errors());
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    const std::string fp = ctx.caller_fingerprint ? ctx.caller_fingerprint(*c) : std::string();
    // "ipv4:1.2.3.4:5678": the address without its port, as logins count failures by address.
    std::string caller = c->peer();
    if (auto colon = caller.rfind(':'); colon != std::string::npos && colon > caller.find(':')) caller.resize(colon);
    on_thread([this, reactor, request, reply, fp, caller] {
      ctx.join(*request, caller, fp, *reply);
      joining = false;
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Rejoin(grpc::CallbackServerContext* c, const peer::RejoinRequest* request, peer::RejoinReply* reply) override {
    auto* reactor = c->DefaultReactor();
    if (auto st = member_only(*c); !st.ok() || !ctx.rejoin) {
      reactor->Finish(st.ok() ? grpc::Status{grpc::StatusCode::UNIMPLEMENTED, "this host takes no members back"} : st);
      return reactor;
    }
    on_thread([this, reactor, request, reply, fp = ctx.caller_fingerprint(*c)] {
      ctx.rejoin(fp, *request, *reply);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* JoinedAs(grpc::CallbackServerContext* c, const peer::JoinedAsRequest* request,
                                     peer::JoinReply* reply) override {
    auto* reactor = c->DefaultReactor();
    if (auto st = member_only(*c); !st.ok() || !ctx.joined_as) {
      reactor->Finish(st.ok() ? grpc::Status{grpc::StatusCode::UNIMPLEMENTED, "this host takes no joins"} : st);
      return reactor;
    }
    on_thread([this, reactor, request, reply, fp = ctx.caller_fingerprint(*c)] {
      ctx.joined_as(fp, *request, *reply);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* ResetMaster(grpc::CallbackServerContext* c, const peer::ResetMasterRequest*,
                                        peer::ResetMasterReply* reply) override {
    auto* reactor = c->DefaultReactor();
    if (auto st = member_only(*c); !st.ok() || !ctx.reset_master) {
      reactor->Finish(st.ok() ? grpc::Status{grpc::StatusCode::UNIMPLEMENTED, "this host follows no other master"} : st);
      return reactor;
    }
    on_thread([this, reactor, reply, fp = ctx.caller_fingerprint(*c)] {
      if (auto st = ctx.reset_master(fp); !st) to_proto(st.error(), *reply->mutable_error());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Migrate(grpc::CallbackServerContext* c, const peer::MigrateRequest* request,
                                    peer::MigrateReply* reply) override {
    auto* reactor = c->DefaultReactor();
    if (auto st = member_only(*c); !st.ok() || !ctx.migrate) {
      reactor->Finish(st.ok() ? grpc::Status{grpc::StatusCode::UNAVAILABLE, "this host takes no migrations"} : st);
      return reactor;
    }
    on_thread([this, reactor, request, reply] {
      ctx.migrate(*request, *reply);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  // Calls carried out for another member answer from whatever thread finishes them, maybe after
  // this service has stopped: each is finished once, by its answer or by stop_calls. The
  // registry outlives the service as long as an answer may still come.
  struct pending_call {
    std::mutex mu;
    grpc::ServerUnaryReactor* reactor = nullptr;  // null once finished
    peer::CallReply* reply = nullptr;
  };
  struct call_registry {
    std::mutex mu;
    std::set<std::shared_ptr<pending_call>> under_way;
    bool stopped = false;
  };
  std::shared_ptr<call_registry> calls = std::make_shared<call_registry>();

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* c, const peer::CallRequest* request, peer::CallReply* reply) override {
    auto* reactor = c->DefaultReactor();
    if (auto st = member_only(*c); !st.ok() || !ctx.call) {
      reactor->Finish(st.ok() ? grpc::Status{grpc::StatusCode::UNAVAILABLE, "this host takes no calls"} : st);
      return reactor;
    }
    auto pending = std::make_shared<pending_call>();
    pending->reactor = reactor;
    pending->reply = reply;
    {
      std::lock_guard lock(calls->mu);
      if (calls->stopped) {
        reactor->Finish({grpc::StatusCode::UNAVAILABLE, "this host stops"});
        return reactor;
      }
      calls->under_way.insert(pending);
    }
    const std::string fp = ctx.caller_fingerprint ? ctx.caller_fingerprint(*c) : std::string();
    ctx.call(*request, fp, [registry = calls, pending](peer::CallReply answer) {
      {
        std::lock_guard lock(registry->mu);
        registry->under_way.erase(pending);
      }
      std::lock_guard lock(pending->mu);
      if (!pending->reactor) return;  // the service stopped first
      *pending->reply = std::move(answer);
      std::exchange(pending->reactor, nullptr)->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  // Before the server shuts down: every Call still under way answers UNAVAILABLE now (its work
  // may go on; its answer is dropped).
  void stop_calls() {
    std::set<std::shared_ptr<pending_call>> left;
    {
      std::lock_guard lock(calls->mu);
      calls->stopped = true;
      left.swap(calls->under_way);
    }
    for (const auto& pending : left) {
      std::lock_guard lock(pending->mu);
      if (pending->reactor) std::exchange(pending->reactor, nullptr)->Finish({grpc::StatusCode::UNAVAILABLE, "this host stops"});
    }
  }

  // A call that may take seconds runs on a thread of its own, never on gRPC's, its log lines
  // naming this host.
  void on_thread(std::function<void()> job) {
    std::lock_guard lock(threads_mu);
    std::erase_if(threads, [](worker& w) {
      if (!w.finished->load()) return false;
      w.thread.join();
      return true;
    });
    auto finished = std::make_shared<std::atomic<bool>>(false);
    threads.push_back({std::thread([job = std::move(job), name = log_name, finished] {
                         scoped_log_host scope(name);  // gRPC's threads carry no host: this service's is named
                         job();
                         finished->store(true);
                       }),
                       finished});
  }
};

result<std::unique_ptr<peer_service>, std::string> peer_service::start(const std::string& address,
                                                                       std::shared_ptr<grpc::ServerCredentials> credentials,
                                                                       peer_service_context context) {
  std::unique_ptr<peer_service> s(new peer_service());
  s->impl_ = std::make_unique<impl>();
  s->impl_->ctx = std::move(context);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, std::move(credentials), &port);
  builder.RegisterService(s->impl_.get());
  builder.SetMaxReceiveMessageSize(256 << 20);  // a join carries the joining host's database
  builder.SetMaxSendMessageSize(256 << 20);
  // The members' channels ping every 10 s while a call waits (peer_tls.cpp): welcome, never a
  // strike against them.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  // Anyone may connect (Join is authenticated inside the call): what all calls together hold in
  // memory is bounded, whatever they send.
  grpc::ResourceQuota quota("pool-peer");
  quota.Resize(std::size_t{512} << 20);
  quota.SetMaxThreads(64);
  builder.SetResourceQuota(quota);
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || port == 0) return fail("cannot serve the pool's peer service on " + address);
  s->port_ = static_cast<unsigned short>(port);
  spdlog::info("pool.peer.listening address={} port={}", address, port);
  return s;
}

peer_service::~peer_service() {
  impl_->stop_calls();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_.reset();
}

}  // namespace xapid::pool
