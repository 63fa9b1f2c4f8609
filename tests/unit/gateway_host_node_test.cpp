// Three hosts in one process, side by side: each with its own data dir, address, database and
// API, serving at once; one stopped while the others go on; and one opened again on its data.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gateway/host_node.hpp"
#include "gateway/logging.hpp"
#include "proto/wire/xmlrpc.hpp"
#include "storage/raft_sequencer.hpp"
#include "tests/support/temp_dir.hpp"
#include "xen/sim_backend.hpp"

namespace xapid::gateway {
namespace {

// One XML-RPC call over a fresh TCP connection; the answer's Value, or a failure.
wire::value call(const std::string& address, unsigned short port, const std::string& method,
                 const std::vector<std::string>& params) {
  std::string body = "<?xml version=\"1.0\"?><methodCall><methodName>" + method + "</methodName><params>";
  for (const auto& p : params) body += "<param><value><string>" + p + "</string></value></param>";
  body += "</params></methodCall>";
  const std::string request = "POST / HTTP/1.1\r\nHost: test\r\nContent-Type: text/xml\r\nConnection: close\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << address << ":" << port;
  EXPECT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string answer;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  auto at = answer.find("\r\n\r\n");
  if (at == std::string::npos) return {};
  auto parsed = wire::xmlrpc::parse_response(std::string_view(answer).substr(at + 4));
  if (!parsed || !parsed->success) return {};
  return parsed->result;
}

struct running_host {
  std::string address;
  std::unique_ptr<host_node> node;
};

running_host start_host(const testing::temp_dir& dir, const std::string& address, const std::string& password,
                        std::shared_ptr<xen::sim_world> world = nullptr) {
  host_options o;
  o.sim_world = std::move(world);
  o.data_dir = dir / address;
  o.listen = address + ":0";
  o.root_password = password;
  o.threads = 1;
  auto node = host_node::open(o);
  EXPECT_TRUE(node.ok()) << (node.ok() ? "" : node.error());
  if (!node) return {address, nullptr};
  auto served = (*node)->serve();
  EXPECT_TRUE(served.ok()) << (served.ok() ? "" : served.error());
  return {address, std::move(node).value()};
}

TEST(host_node, three_hosts_in_one_process_each_serve_their_own_api) {
  testing::temp_dir dir;
  // Their simulated hypervisors are hosts of one world.
  auto world = xen::sim_world::open("");
  ASSERT_TRUE(world.ok());
  std::vector<running_host> hosts;
  for (int i = 2; i <= 4; ++i)
    hosts.push_back(start_host(dir, "127.0.0." + std::to_string(i), "pw" + std::to_string(i), *world));
  for (const auto& h : hosts) ASSERT_NE(h.node, nullptr);
  EXPECT_EQ((*world)->hosts(), (std::vector<std::string>{"127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0"}));

  std::set<std::string> host_refs, pools;
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    const auto& h = hosts[i];
    // Each answers with its own password only: its own database (one wrong login costs 2 s).
    if (i == 0) {
      EXPECT_FALSE(call(h.address, h.node->tcp_port(), "session.login_with_password", {"root", "pw3"}).as_string());
    }
    const wire::value session =
        call(h.address, h.node->tcp_port(), "session.login_with_password", {"root", "pw" + std::to_string(i + 2)});
    ASSERT_TRUE(session.as_string()) << h.address;
    const wire::value host = call(h.address, h.node->tcp_port(), "session.get_this_host", {*session.as_string(), *session.as_string()});
    ASSERT_TRUE(host.as_string());
    EXPECT_EQ(*host.as_string(), h.node->host_ref());
    host_refs.insert(*host.as_string());
    const wire::value all = call(h.address, h.node->tcp_port(), "pool.get_all", {*session.as_string()});
    ASSERT_TRUE(all.as_array());
    ASSERT_EQ(all.as_array()->size(), 1u);
    pools.insert(*all.as_array()->front().as_string());
    const wire::value address = call(h.address, h.node->tcp_port(), "host.get_address", {*session.as_string(), *host.as_string()});
    ASSERT_TRUE(address.as_string());
    EXPECT_EQ(*address.as_string(), h.address);
  }
  EXPECT_EQ(host_refs.size(), 3u);  // three hosts, each its own pool's master
  EXPECT_EQ(pools.size(), 3u);

  // One stops; the others go on serving.
  const std::string first_host = hosts[0].node->host_ref();
  hosts[0].node->stop();
  hosts[0].node->wait();
  hosts[0].node.reset();
  for (std::size_t i = 1; i < hosts.size(); ++i)
    EXPECT_TRUE(call(hosts[i].address, hosts[i].node->tcp_port(), "session.login_with_password",
                     {"root", "pw" + std::to_string(i + 2)}).as_string());

  // Opened again on its data dir, it is the same host.
  hosts[0] = start_host(dir, "127.0.0.2", "ignored: not a first boot", *world);
  ASSERT_NE(hosts[0].node, nullptr);
  EXPECT_EQ(hosts[0].node->host_ref(), first_host);
  EXPECT_TRUE(call("127.0.0.2", hosts[0].node->tcp_port(), "session.login_with_password", {"root", "pw2"}).as_string());
}

// Each host's log lines name it and go to its own DIR/xapid.log, from every thread it runs on
// (the failed login is logged on a call's thread, the start on the caller's).
TEST(host_node, each_hosts_log_lines_name_it_and_go_to_its_own_file) {
  install_logging(false);
  testing::temp_dir dir;
  std::vector<running_host> hosts;
  for (int i = 6; i <= 7; ++i) hosts.push_back(start_host(dir, "127.0.0." + std::to_string(i), "pw"));
  for (const auto& h : hosts) ASSERT_NE(h.node, nullptr);
  EXPECT_FALSE(call(hosts[1].address, hosts[1].node->tcp_port(), "session.login_with_password", {"root", "wrong"}).as_string());
  for (auto& h : hosts) {
    h.node->stop();
    h.node->wait();
  }
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    std::ifstream in(dir / (hosts[i].address + "/xapid.log"));
    const std::string own = "host=" + hosts[i].address + ":0 ";
    std::size_t lines = 0, ready = 0, failed_logins = 0;
    for (std::string line; std::getline(in, line); ++lines) {
      EXPECT_NE(line.find(own), std::string::npos) << "in " << hosts[i].address << "'s log: " << line;
      ready += line.find("xapid.ready") != std::string::npos;
      failed_logins += line.find("session.login.failed") != std::string::npos;
    }
    EXPECT_EQ(ready, 1u) << hosts[i].address;
    EXPECT_EQ(failed_logins, i == 1 ? 1u : 0u) << hosts[i].address;
  }
}

// deploy/start passes --data-dir data: the host works with absolute paths from then on (the
// local SR's location must be absolute, or the SR never attaches).
TEST(host_node, a_relative_data_dir_becomes_absolute) {
  testing::temp_dir dir;
  const auto before = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  host_options o;
  o.data_dir = "relative/data";
  o.listen = "127.0.0.5:0";
  o.root_password = "pw";
  o.threads = 1;
  auto node = host_node::open(o);
  std::filesystem::current_path(before);
  ASSERT_TRUE(node.ok()) << node.error();
  EXPECT_EQ((*node)->options().data_dir, std::filesystem::canonical(dir / "relative/data").string());
  EXPECT_EQ((*node)->options().unix_socket, (*node)->options().data_dir + "/xapid.sock");
}

// Every host's commits go through its pool's log (a pool of one here): the database's applied
// position follows the log, and a database whose log is gone is refused rather than replayed
// from an empty log that would skip what it never saw.
TEST(host_node, a_host_is_a_pool_of_one_and_refuses_a_database_without_its_log) {
  testing::temp_dir dir;
  auto h = start_host(dir, "127.0.0.8", "pw");
  ASSERT_NE(h.node, nullptr);
  ASSERT_TRUE(call(h.address, h.node->tcp_port(), "session.login_with_password", {"root", "pw"}).as_string());
  const auto status = h.node->pool_log().status();
  EXPECT_EQ(status.state, storage::raft_status::role_state::leader);
  EXPECT_GT(status.applied_log_index, 1u);
  EXPECT_LE(status.applied_log_index, status.last_index);  // the host's own writes may be under way
  h.node->stop();
  h.node->wait();
  h.node.reset();

  std::filesystem::remove_all(dir / "127.0.0.8/raft");
  host_options o;
  o.data_dir = dir / "127.0.0.8";
  o.listen = "127.0.0.8:0";
  o.threads = 1;
  auto refused = host_node::open(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("ends at"), std::string::npos) << refused.error();
  EXPECT_NE(refused.error().find(dir / "127.0.0.8/raft"), std::string::npos) << refused.error();
}

TEST(host_node, a_host_that_cannot_open_says_why_and_leaves_nothing_running) {
  testing::temp_dir dir;
  host_options o;
  o.data_dir = dir / "h";
  o.listen = "no port here";
  auto node = host_node::open(o);
  ASSERT_FALSE(node.ok());
  EXPECT_NE(node.error().find("ADDR:PORT"), std::string::npos) << node.error();
}

}  // namespace
}  // namespace xapid::gateway
