// The simulated Xen host: domain lifecycle, memory accounting, suspend images, persistence
// across restarts, and seeded fault injection.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>

#include "tests/support/temp_dir.hpp"
#include "xen/sim_backend.hpp"

namespace xapid::xen {
namespace {

constexpr std::int64_t gib = std::int64_t{1} << 30;

domain_config vm(const std::string& uuid, std::int64_t memory) {
  domain_config c;
  c.uuid = uuid;
  c.name = "vm " + uuid;
  c.memory_max_bytes = c.memory_target_bytes = memory;
  c.vcpus_max = 4;
  c.vcpus = 2;
  return c;
}

std::unique_ptr<sim_backend> open(sim_options o = {}) {
  auto b = sim_backend::open(std::move(o));
  EXPECT_TRUE(b.ok());
  return b.ok() ? std::move(b).value() : nullptr;
}

TEST(sim_backend, a_domain_is_built_paused_runs_and_is_destroyed) {
  auto b = open();
  const std::int64_t free_before = b->host().memory_free_bytes;
  EXPECT_EQ(free_before, 15 * gib);  // 16 GiB, 1 GiB of it the control domain's
  auto domid = b->create(vm("a", 2 * gib));
  ASSERT_TRUE(domid.ok());
  EXPECT_GE(*domid, 1);  // domid 0 is the control domain
  EXPECT_EQ(b->host().memory_free_bytes, free_before - 2 * gib);
  ASSERT_EQ(b->list().size(), 1u);
  EXPECT_EQ(b->list()[0].state, domain_state::paused);
  ASSERT_TRUE(b->unpause(*domid).ok());
  EXPECT_EQ(b->list()[0].state, domain_state::running);
  EXPECT_EQ(b->unpause(*domid).error().what, backend_error::kind::bad_state);
  ASSERT_TRUE(b->shutdown(*domid, shutdown_reason::poweroff, nullptr).ok());
  EXPECT_EQ(b->list()[0].state, domain_state::shutdown);
  EXPECT_EQ(b->list()[0].reason, shutdown_reason::poweroff);
  EXPECT_EQ(b->host().memory_free_bytes, free_before - 2 * gib);  // held until destroyed
  ASSERT_TRUE(b->destroy(*domid).ok());
  EXPECT_EQ(b->host().memory_free_bytes, free_before);
  EXPECT_EQ(b->destroy(*domid).error().what, backend_error::kind::no_such_domain);
}

TEST(sim_backend, a_wait_for_a_guest_that_ignores_a_shutdown_ends_when_cancelled) {
  sim_options o;
  o.hang_probability = 1;
  auto b = open(std::move(o));
  auto domid = b->create(vm("a", gib));
  ASSERT_TRUE(domid.ok());
  ASSERT_TRUE(b->unpause(*domid).ok());
  std::atomic<bool> cancelled{false};
  auto waiting = std::async(std::launch::async, [&] { return b->shutdown(*domid, shutdown_reason::poweroff, &cancelled); });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  cancelled = true;
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(waiting.get().error().what, backend_error::kind::cancelled);
  EXPECT_EQ(b->list()[0].state, domain_state::running);  // the guest goes on
}

TEST(sim_backend, memory_that_does_not_fit_is_refused_with_the_numbers) {
  auto b = open();
  ASSERT_TRUE(b->create(vm("a", 10 * gib)).ok());
  auto refused = b->create(vm("b", 6 * gib));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().what, backend_error::kind::not_enough_memory);
  EXPECT_EQ(refused.error().needed_bytes, 6 * gib);
  EXPECT_EQ(refused.error().available_bytes, 5 * gib);
  EXPECT_TRUE(b->create(vm("c", 5 * gib)).ok());
  EXPECT_EQ(b->create(vm("c", 1)).error().what, backend_error::kind::domain_exists);
}

TEST(sim_backend, domids_are_never_reused) {
  auto b = open();
  int first = *b->create(vm("a", gib));
  ASSERT_TRUE(b->destroy(first).ok());
  EXPECT_GT(*b->create(vm("a", gib)), first);
}

TEST(sim_backend, suspend_writes_an_image_that_resume_rebuilds_from) {
  testing::temp_dir dir;
  auto b = open();
  int domid = *b->create(vm("a", 3 * gib));
  ASSERT_TRUE(b->unpause(domid).ok());
  ASSERT_TRUE(b->set_vcpus(domid, 3).ok());
  ASSERT_TRUE(b->suspend(domid, dir / "a.img").ok());
  EXPECT_TRUE(b->list().empty());
  EXPECT_EQ(b->host().memory_free_bytes, 15 * gib);
  EXPECT_FALSE(b->resume(vm("other", gib), dir / "a.img").ok());  // an image of another VM
  auto back = b->resume(vm("a", gib), dir / "a.img");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(b->list()[0].memory_bytes, 3 * gib);
  EXPECT_EQ(b->list()[0].vcpus, 3);
  EXPECT_EQ(b->list()[0].state, domain_state::paused);
  {
    std::ofstream junk(dir / "junk.img");
    junk << "not an image";
  }
  EXPECT_FALSE(b->resume(vm("z", gib), dir / "junk.img").ok());
}

TEST(sim_backend, guests_stop_on_their_own_and_balloon) {
  auto b = open();
  int domid = *b->create(vm("a", 2 * gib));
  ASSERT_TRUE(b->unpause(domid).ok());
  ASSERT_TRUE(b->set_memory_target(domid, gib).ok());
  EXPECT_EQ(b->host().memory_free_bytes, 14 * gib);
  EXPECT_EQ(b->set_memory_target(domid, 20 * gib).error().what, backend_error::kind::not_enough_memory);
  ASSERT_TRUE(b->guest_stops(domid, shutdown_reason::crash).ok());
  EXPECT_EQ(b->list()[0].state, domain_state::crashed);
}

TEST(sim_backend, running_domains_survive_a_restart) {
  testing::temp_dir dir;
  sim_options o;
  o.state_file = dir / "sim-state";
  int domid;
  {
    auto b = open(o);
    domid = *b->create(vm("a", 2 * gib));
    ASSERT_TRUE(b->unpause(domid).ok());
  }
  auto again = open(o);
  ASSERT_EQ(again->list().size(), 1u);
  EXPECT_EQ(again->list()[0].domid, domid);
  EXPECT_EQ(again->list()[0].state, domain_state::running);
  EXPECT_EQ(again->host().memory_free_bytes, 13 * gib);
  EXPECT_GT(*again->create(vm("b", gib)), domid);
  {
    std::ofstream broken(o.state_file, std::ios::app);
    broken << "garbage line\n";
  }
  EXPECT_FALSE(sim_backend::open(o).ok());
}

TEST(sim_backend, injected_faults_follow_their_seed) {
  auto outcomes = [](std::uint64_t seed) {
    sim_options o;
    o.fault_seed = seed;
    o.fault_probability = 0.5;
    auto b = open(o);
    std::string s;
    for (int i = 0; i < 40; ++i) {
      auto r = b->create(vm("vm" + std::to_string(i), 1));
      s += r.ok() ? 'o' : 'x';
      if (!r.ok()) {
        EXPECT_EQ(r.error().message, "injected fault: create");
      }
    }
    return s;
  };
  EXPECT_EQ(outcomes(7), outcomes(7));
  EXPECT_NE(outcomes(7), outcomes(8));
  EXPECT_NE(outcomes(7).find('x'), std::string::npos);
  EXPECT_NE(outcomes(7).find('o'), std::string::npos);
}

// Several hosts in one world: each with its own memory, domids and devices; a guest moves from
// one to another; the whole world survives a restart in its state file.
TEST(sim_world, hosts_share_a_world_and_a_guest_moves_between_them) {
  testing::temp_dir dir;
  const std::string file = dir / "world";
  std::string moved_uuid = "guest-1";
  {
    auto world = sim_world::open(file);
    ASSERT_TRUE(world.ok()) << world.error();
    sim_options small;
    small.memory_total_bytes = 4 * gib;
    auto a = (*world)->attach("127.0.0.2", small);
    auto b = (*world)->attach("127.0.0.3", small);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_FALSE((*world)->attach("127.0.0.2", small).ok()) << "one view per host";
    EXPECT_FALSE((*world)->attach("with space", small).ok());
    disk d;
    d.device = "xvda";
    domain_config c = vm(moved_uuid, 2 * gib);
    c.disks.push_back(d);
    auto on_a = (*a)->create(c);
    ASSERT_TRUE(on_a.ok());
    ASSERT_TRUE((*a)->unpause(*on_a).ok());
    // Each host has its own memory: 3 GiB free on the 4 GiB host is not enough for 3.5 GiB.
    EXPECT_EQ((*b)->create(vm("too big", 3 * gib + gib / 2)).error().what, backend_error::kind::not_enough_memory);
    EXPECT_EQ((*b)->list().size(), 0u);

    auto on_b = (*world)->move_domain(moved_uuid, "127.0.0.2", "127.0.0.3");
    ASSERT_TRUE(on_b.ok()) << on_b.error().message;
    EXPECT_TRUE((*a)->list().empty());
    ASSERT_EQ((*b)->list().size(), 1u);
    EXPECT_EQ((*b)->list()[0].uuid, moved_uuid);
    EXPECT_EQ((*b)->list()[0].state, domain_state::running);
    EXPECT_EQ((*a)->host().memory_free_bytes, 3 * gib);
    EXPECT_EQ((*b)->host().memory_free_bytes, gib);
    // Its devices came with it.
    EXPECT_EQ((*b)->plug_disk(*on_b, d).error().what, backend_error::kind::failed);
    EXPECT_EQ((*world)->move_domain(moved_uuid, "127.0.0.2", "127.0.0.3").error().what, backend_error::kind::no_such_domain);
  }
  auto again = sim_world::open(file);
  ASSERT_TRUE(again.ok()) << again.error();
  auto b = (*again)->attach("127.0.0.3", {});
  auto a = (*again)->attach("127.0.0.2", {});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ((*b)->list().size(), 1u);
  EXPECT_EQ((*b)->list()[0].uuid, moved_uuid);
  EXPECT_TRUE((*a)->list().empty());
}

// A state file of one host, written before the simulator had worlds, is that host's.
TEST(sim_world, a_state_file_of_one_host_is_read_as_the_first_host_to_attach) {
  testing::temp_dir dir;
  const std::string file = dir / "sim-state";
  {
    std::ofstream old(file);
    old << "7\n3 some-uuid 0 0 1073741824 2\n";
  }
  sim_options o;
  o.state_file = file;
  auto b = sim_backend::open(o);
  ASSERT_TRUE(b.ok()) << b.error();
  ASSERT_EQ((*b)->list().size(), 1u);
  EXPECT_EQ((*b)->list()[0].domid, 3);
  EXPECT_EQ(*(*b)->create(vm("next", 1)), 7);
}

}  // namespace
}  // namespace xapid::xen
