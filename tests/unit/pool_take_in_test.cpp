// pool.join on the master's side (take_in), with a real pool log (a pool of one over libraft on
// loopback) and two real first-boot databases: a joining host is taken in once; when its answer
// was lost (the master, or the connection, went between the commit and the answer) and it asks
// again — its certificate, uuid and addresses the same, with a fresh log id —, it is answered
// again with the id it was taken in with and its place in the log made whole, instead of being
// refused as "already part of a pool" while it stays alone. Another certificate claiming the
// same uuid is still refused.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "actors/first_boot.hpp"
#include "pool/join.hpp"
#include "pool/membership.hpp"
#include "pool/peer_client.hpp"
#include "pool/peer_service.hpp"
#include "pool/peer_tls.hpp"
#include "storage/raft_entries.hpp"
#include "storage/raft_sequencer.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/peer_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace xapid::pool {
namespace {

using namespace std::chrono_literals;

const xen::host_info hardware{4, "GenuineIntel", "Xeon", 2000, std::int64_t{8} << 30, std::int64_t{7} << 30, "4.17"};

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
  for (auto until = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < until;
       std::this_thread::sleep_for(10ms))
    if (pred()) return true;
  return pred();
}

struct take_in_test : ::testing::Test {
  void SetUp() override {
    identity = member_identity::new_pool();
    storage::raft_options o;
    o.self = {identity.raft_id, "127.0.0.1:" + std::to_string(testing::free_port())};
    o.dir = master_dir / "raft";
    o.pool_secret = identity.secret;
    o.pool_id = identity.pool_id;
    o.bootstrap = {o.self};
    log = std::make_shared<storage::raft_sequencer>(o);
    auto opened = storage::database::open({.path = master_dir / "db", .ids = &master_ids, .order = log});
    ASSERT_TRUE(opened.ok()) << opened.error();
    master = std::move(opened).value();
    auto master_id = actors::ensure_pool_and_host(*master, master_dir.path(), "127.0.0.2", hardware);
    ASSERT_TRUE(master_id.ok());
    master_host = master_id->host;
    ASSERT_TRUE(eventually([&] { return log->status().ready && log->status().snapshot_index > 0; }, 10s));

    auto joiner_opened = storage::database::open({.path = joiner_dir / "db", .ids = &joiner_ids});
    ASSERT_TRUE(joiner_opened.ok()) << joiner_opened.error();
    joiner = std::move(joiner_opened).value();
    auto id = actors::ensure_pool_and_host(*joiner, joiner_dir.path(), "127.0.0.3", hardware);
    ASSERT_TRUE(id.ok());
    joiner_uuid = joiner->snapshot()->get<api::host>(id->host)->uuid;

    m.db = master.get();
    m.log = log.get();
    m.identity = identity;
    m.certificate_pem = "the master's certificate";
    m.raft_address = log->status().leader.address;
    m.authenticate = [](const std::string&, const std::string&, const std::string&) -> api::status { return ok_v; };
    m.root_password_hash = [] { return std::string("$y$hash"); };
    m.membership_timeout = 10s;
  }
  void TearDown() override {
    master.reset();
    log.reset();
  }

  peer::JoinRequest request(std::uint64_t raft_id, const testing::peer_identity& who) {
    peer::JoinRequest q;
    q.set_username("root");
    q.set_password("pw");
    q.set_checkpoint(joiner->export_checkpoint());
    q.set_host_uuid(joiner_uuid);
    q.set_raft_id(raft_id);
    q.set_raft_address(joiner_raft_address);
    q.set_peer_address("127.0.0.3:9001");
    q.set_certificate_pem(who.tls.certificate_pem);
    return q;
  }
  peer::JoinReply ask(std::uint64_t raft_id, const testing::peer_identity& who) {
    peer::JoinReply reply;
    take_in(m, request(raft_id, who), "127.0.0.3", who.fingerprint, reply);
    return reply;
  }
  std::optional<storage::raft_role> role_of(std::uint64_t id) {
    for (const auto& s : log->status().configuration)
      if (s.member.id == id) return s.role;
    return std::nullopt;
  }
  std::size_t hosts() { return master->snapshot()->count(storage::schema::get().class_of<api::host>()); }

  testing::temp_dir master_dir, joiner_dir;
  id_source master_ids{1}, joiner_ids{2};
  member_identity identity;
  std::shared_ptr<storage::raft_sequencer> log;
  std::unique_ptr<storage::database> master, joiner;
  std::string master_host, joiner_uuid;
  std::string joiner_raft_address = "127.0.0.1:" + std::to_string(testing::free_port());
  join_master m;
  testing::peer_identity joiner_certificate{"joiner", "127.0.0.3"};
};

std::string first_error(const peer::JoinReply& r) {
  return r.errors_size() ? r.errors(0).code() + (r.errors(0).params_size() ? " " + r.errors(0).params(0) : "") : "";
}

TEST_F(take_in_test, a_host_whose_answer_was_lost_is_answered_again_with_the_id_it_was_taken_in_with) {
  auto first = ask(1001, joiner_certificate);
  ASSERT_EQ(first.errors_size(), 0) << first_error(first);
  EXPECT_EQ(first.raft_id(), 1001u);
  EXPECT_EQ(role_of(1001), storage::raft_role::standby);
  EXPECT_EQ(hosts(), 2u);
  EXPECT_EQ(first.pool_id(), identity.pool_id);

  // Its answer never arrived; it asks again with a fresh id, as pool.join does.
  auto again = ask(1002, joiner_certificate);
  ASSERT_EQ(again.errors_size(), 0) << first_error(again);
  EXPECT_EQ(again.raft_id(), 1001u) << "the id it was taken in with";
  EXPECT_EQ(again.secret(), identity.secret);
  EXPECT_GE(again.joined_at_index(), first.joined_at_index());
  EXPECT_FALSE(role_of(1002).has_value()) << "no second place in the log";
  EXPECT_EQ(hosts(), 2u) << "no second host row";

  // The master went after the rows' commit, before making it a replica: the log has it as a
  // spare (or not at all); asking again makes it whole.
  ASSERT_TRUE(log->assign(1001, storage::raft_role::spare, 10s).ok());
  auto after_spare = ask(1003, joiner_certificate);
  ASSERT_EQ(after_spare.errors_size(), 0) << first_error(after_spare);
  EXPECT_EQ(role_of(1001), storage::raft_role::standby);
  ASSERT_TRUE(log->remove(1001, 10s).ok());
  auto after_removal = ask(1004, joiner_certificate);
  ASSERT_EQ(after_removal.errors_size(), 0) << first_error(after_removal);
  EXPECT_EQ(after_removal.raft_id(), 1001u);
  EXPECT_EQ(role_of(1001), storage::raft_role::standby);
  EXPECT_EQ(hosts(), 2u);
}

// The master's own record matches every field a host asking to join itself sends.
TEST_F(take_in_test, a_master_asked_to_take_itself_in_refuses) {
  const std::string self_host = master_host;
  const member_record self{self_host, master->snapshot()->get<api::host>(self_host)->uuid, identity.raft_id,
                           m.raft_address, "127.0.0.2:9001", joiner_certificate.fingerprint};
  auto t = master->begin();
  const std::size_t host_cls = storage::schema::get().class_of<api::host>();
  for (const auto& [key, value] : reserved_entries(self))
    t.add_to_map(host_cls, self_host, *storage::schema::get().field_index(host_cls, "other_config"), key, wire::value(value));
  ASSERT_TRUE(master->commit(std::move(t)).ok());
  auto q = request(1001, joiner_certificate);
  q.set_checkpoint(master->export_checkpoint());
  q.set_host_uuid(self.host_uuid);
  q.set_raft_address(self.raft_address);
  q.set_peer_address(self.peer_address);
  peer::JoinReply reply;
  take_in(m, q, "127.0.0.2", joiner_certificate.fingerprint, reply);
  ASSERT_GT(reply.errors_size(), 0);
  EXPECT_EQ(reply.errors(0).code(), "OPERATION_NOT_ALLOWED") << first_error(reply);
  EXPECT_TRUE(reply.secret().empty());
}

TEST_F(take_in_test, another_certificate_claiming_a_members_uuid_is_refused) {
  ASSERT_EQ(ask(1001, joiner_certificate).errors_size(), 0);
  testing::peer_identity impostor{"impostor", "127.0.0.3"};
  auto refused = ask(1002, impostor);
  ASSERT_GT(refused.errors_size(), 0);
  EXPECT_EQ(refused.errors(0).code(), "OPERATION_NOT_ALLOWED") << first_error(refused);
  EXPECT_TRUE(refused.secret().empty());
  EXPECT_FALSE(role_of(1002).has_value());
  EXPECT_EQ(hosts(), 2u);
}

// A member's own writes come to the master over Propose (its pinned certificate says who it is):
// of the pool's membership it may write its own place only. Another host's reserved entries,
// a host row with a place, a new host, root's password: refused on the master, nothing changed.
TEST_F(take_in_test, a_member_writes_only_its_own_place_in_the_pool) {
  ASSERT_EQ(ask(1001, joiner_certificate).errors_size(), 0);
  const auto joined = member_by_raft_id(*master->snapshot(), 1001);
  ASSERT_TRUE(joined);
  testing::peer_identity master_certificate{"master", "127.0.0.2"};
  peer_service_context ctx;
  ctx.db = master.get();
  ctx.log = log.get();
  ctx.caller_fingerprint = [](const grpc::ServerContextBase& c) { return caller_fingerprint(c); };
  auto service = peer_service::start("127.0.0.2:0", peer_server_credentials(master_certificate.tls), ctx);
  ASSERT_TRUE(service.ok()) << service.error();
  const std::string address = "127.0.0.2:" + std::to_string((*service)->port());
  // The master's own place, as its start-up publishes it.
  ASSERT_TRUE(publish_own_record(*master, {master_host, master->snapshot()->get<api::host>(master_host)->uuid, identity.raft_id,
                                           m.raft_address, address, master_certificate.fingerprint})
                  .ok());
  peer_client client([&](const std::string& a, const std::string& pinned) { return peer_channel(a, joiner_certificate.tls, pinned); });

  const auto& sch = storage::schema::get();
  const std::size_t host_cls = sch.class_of<api::host>();
  const std::size_t other_config = *sch.field_index(host_cls, "other_config");
  auto propose = [&](storage::transaction t) {
    storage::proposal p;
    p.ops = std::move(t.ops());
    std::promise<storage::forwarded_answer> answered;
    client.propose(address, master_certificate.fingerprint, storage::encode_proposal(p),
                   [&answered](storage::forwarded_answer a) { answered.set_value(std::move(a)); });
    return answered.get_future().get().outcome;
  };
  auto refused = [&](const result<storage::generation, api::api_error>& r) {
    return !r.ok() && r.error().code == api::error_code::OPERATION_NOT_ALLOWED;
  };
  const std::string checkpoint_before = master->export_checkpoint();
  const std::string fingerprint_key = std::string(reserved_prefix) + "certificate-sha256";
  const std::string peer_key = std::string(reserved_prefix) + "peer-address";

  {  // the master's pinned certificate replaced by the member's
    auto t = master->begin();
    t.remove_from_map(host_cls, master_host, other_config, fingerprint_key);
    t.add_to_map(host_cls, master_host, other_config, fingerprint_key, wire::value(joiner_certificate.fingerprint));
    EXPECT_TRUE(refused(propose(std::move(t))));
  }
  {  // the same through a whole other_config
    const api::host* h = master->snapshot()->get<api::host>(master_host);
    auto changed = h->other_config;
    changed[peer_key] = "127.0.0.3:9001";
    auto t = master->begin();
    t.set(host_cls, master_host, other_config, api::to_value(changed));
    EXPECT_TRUE(refused(propose(std::move(t))));
  }
  {  // the master's host row destroyed
    auto t = master->begin();
    t.destroy(host_cls, master_host);
    EXPECT_TRUE(refused(propose(std::move(t))));
  }
  {  // a host added
    auto t = master->begin();
    api::host h;
    h.name_label = "made by a member";
    t.create(h);
    EXPECT_TRUE(refused(propose(std::move(t))));
  }
  {  // root's password
    auto t = master->begin();
    t.set_private("root-password", "$y$chosen-by-a-member");
    EXPECT_TRUE(refused(propose(std::move(t))));
  }
  {  // its own Raft id made the master's (its writes would then carry the master's keys)
    auto t = master->begin();
    const std::string id_key = std::string(reserved_prefix) + "raft-id";
    t.remove_from_map(host_cls, joined->host_ref, other_config, id_key);
    t.add_to_map(host_cls, joined->host_ref, other_config, id_key, wire::value(std::to_string(identity.raft_id)));
    EXPECT_TRUE(refused(propose(std::move(t))));
  }
  {  // ... or its pinned certificate, through a whole other_config
    auto changed = master->snapshot()->get<api::host>(joined->host_ref)->other_config;
    changed[fingerprint_key] = master_certificate.fingerprint;
    auto t = master->begin();
    t.set(host_cls, joined->host_ref, other_config, api::to_value(changed));
    EXPECT_TRUE(refused(propose(std::move(t))));
  }
  {  // where logins and the master's calls go: pool.master, another host's address
    auto snap = master->snapshot();
    const std::size_t pool_cls = storage::schema::get().class_of<api::pool>();
    auto t = master->begin();
    std::string pool_ref;
    snap->for_each_of<api::pool>([&](const std::string& ref, const api::pool&) { return pool_ref = ref, false; });
    t.set(pool_cls, pool_ref, *storage::schema::get().field_index(pool_cls, "master"), wire::value(joined->host_ref));
    EXPECT_TRUE(refused(propose(std::move(t))));
    auto u = master->begin();
    u.set(host_cls, master_host, *storage::schema::get().field_index(host_cls, "address"), wire::value("127.0.0.3"));
    EXPECT_TRUE(refused(propose(std::move(u))));
  }
  {  // whether a host is live (the keeper gives a dead voter's vote away)
    auto snap = master->snapshot();
    const std::size_t metrics_cls = storage::schema::get().class_of<api::host_metrics>();
    auto t = master->begin();
    t.set(metrics_cls, snap->get<api::host>(master_host)->metrics.opaque, *storage::schema::get().field_index(metrics_cls, "live"),
          wire::value(false));
    EXPECT_TRUE(refused(propose(std::move(t))));
  }
  EXPECT_TRUE(master->export_checkpoint() == checkpoint_before) << "nothing refused changed anything";

  {  // its own place (a new peer address, as its start-up publishes) and any other entry: taken
    auto t = master->begin();
    t.remove_from_map(host_cls, joined->host_ref, other_config, peer_key);
    t.add_to_map(host_cls, joined->host_ref, other_config, peer_key, wire::value("127.0.0.3:9555"));
    t.add_to_map(host_cls, master_host, other_config, "note", wire::value("from a member"));
    auto taken = propose(std::move(t));
    ASSERT_TRUE(taken.ok()) << ::testing::PrintToString(taken.error().description());
  }
  EXPECT_EQ(member_by_raft_id(*master->snapshot(), 1001)->peer_address, "127.0.0.3:9555");
  EXPECT_EQ(master->snapshot()->get<api::host>(master_host)->other_config.at("note"), "from a member");
}

}  // namespace
}  // namespace xapid::pool
