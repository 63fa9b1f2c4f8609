#!/usr/bin/env python3
"""A pool of four real xapid processes on 127.0.0.2-5: three vote in the pool's log, one is a
standby (GET /metrics' xapid_raft_member says which). A voter is killed for good: once the
master sees it dead (--host-dead-seconds), the live standby takes its vote and the dead host is
demoted, so the pool outlives a second voter's death — with two of four hosts gone it still
takes writes. Both come back as members and take writes again.
Seeded: XAPID_TEST_SEED picks the port and the voters killed.

Usage: pool_voters_test.py PATH_TO_XAPID"""
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xapid_support import answers  # noqa: E402  (takes PATH_TO_XAPID from argv)
from pool_support import PASSWORDS, pool_calls, raft_roles, three_hosts, vm_record  # noqa: E402

SEED = int(os.environ.get("XAPID_TEST_SEED", random.randrange(1 << 32)))
print(f"seed {SEED} (XAPID_TEST_SEED to repeat)", flush=True)
DEAD_SECONDS = 3


class four_hosts(three_hosts, pool_calls, answers, unittest.TestCase):
    COUNT = 4
    JOINED = True
    PORT_SEED = SEED
    EXTRA_ARGS = ("--host-dead-seconds", str(DEAD_SECONDS))

    def master_index(self):
        """The index of the host pool.master names, asked of a live host."""
        for i, h in enumerate(self.hosts):
            if not h.alive():
                continue
            session = h.login(PASSWORDS[0])
            with h.proxy() as p:
                pool = p.pool.get_all(session)["Value"][0]
                master = p.pool.get_master(session, pool)["Value"]
                address = p.host.get_address(session, master)["Value"]
            return next(j for j, other in enumerate(self.hosts) if other.address == address)
        raise AssertionError("no host is up")

    def roles(self, i):
        """{raft address: role} as host i's /metrics shows the pool's log."""
        return raft_roles(self.hosts[i], PASSWORDS[0])

    def raft_address(self, i):
        return f"{self.hosts[i].address}:{self.hosts[i].port + 2}"

    def write(self, i, name):
        """VM.create through host i, in a pool session made on the master."""
        with self.hosts[self.master_index()].proxy() as p:
            self.session = self.ok(p.session.login_with_password("root", PASSWORDS[0]))
        return self.answer(i, "VM.create", vm_record(name))

    def test_a_dead_voter_gives_its_vote_to_a_live_standby(self):
        rng = random.Random(SEED)
        master = self.master_index()
        roles = self.eventually(lambda: (lambda r: r if sorted(r.values()) == ["standby", "voter", "voter", "voter"]
                                         else self.fail(f"roles {r}"))(self.roles(master)), 60)
        voters = [i for i in range(4) if i != master and roles[self.raft_address(i)] == "voter"]
        standby = next(i for i in range(4) if roles[self.raft_address(i)] == "standby")
        first, second = rng.sample(voters, 2)
        print(f"master {self.hosts[master].address}, voters {[self.hosts[i].address for i in voters]}, "
              f"standby {self.hosts[standby].address}; killing {self.hosts[first].address}", flush=True)

        self.hosts[first].kill()
        killed = time.time()
        # The standby takes the vote once the master sees the host dead; the dead one is demoted.
        after = self.eventually(lambda: (lambda r: r if r[self.raft_address(standby)] == "voter"
                                         and r[self.raft_address(first)] == "standby"
                                         else self.fail(f"roles {r}"))(self.roles(master)), 60)
        print(f"{time.time() - killed:.1f} s after the kill: {after}", flush=True)
        self.assertEqual(sorted(after.values()), ["standby", "voter", "voter", "voter"])

        # A second voter dies: the master and the promoted standby are still a majority of voters.
        self.hosts[second].kill()
        self.eventually(lambda: self.ok(self.write(master, "after two deaths")), 20)
        self.ok(self.write(standby, "through the promoted standby"))

        for i in (first, second):
            self.hosts[i].start()
        for i in range(4):
            self.eventually(lambda: self.ok(self.write(i, f"through {self.hosts[i].address} again")), 60)
        final = self.roles(self.master_index())
        self.assertEqual(sorted(final.values()), ["standby", "voter", "voter", "voter"], final)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
