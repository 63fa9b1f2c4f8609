#!/usr/bin/env python3
"""pool.join interrupted by kill -9 at seeded points (issue 16: a join interrupted by a crash of
either side ends done or not done after restart, never half). Each round starts a master and a
joining host on 127.0.0.2-3, calls pool.join on the joiner, kills the joiner or the master a
seeded while into it, starts what was killed again (and the joiner once more, so that it asks
whether it was taken in), and checks that both sides agree: the pool has the joiner and the
joiner is its member, or neither.

Seeded: XAPID_TEST_SEED replays the choices; XAPID_JOIN_CRASH_ROUNDS rounds (default 8).

Usage: pool_join_crash_test.py PATH_TO_XAPID"""
import os
import random
import sys
import tempfile
import time
import unittest
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xapid_support import answers  # noqa: E402  (takes PATH_TO_XAPID from argv)
from pool_support import PASSWORDS, free_port_everywhere, host, interrupted, said  # noqa: E402

SEED = int(os.environ.get("XAPID_TEST_SEED", random.randrange(1 << 32)))
ROUNDS = int(os.environ.get("XAPID_JOIN_CRASH_ROUNDS", 8))
print(f"seed {SEED} (XAPID_TEST_SEED to repeat), {ROUNDS} rounds", flush=True)


def hosts_seen(h, password):
    """How many hosts h's pool has, from a local login with `password`; None when it refuses it."""
    with h.proxy() as p:
        r = p.session.slave_local_login_with_password("root", password)
        if r["Status"] != "Success":
            return None
        return len(p.host.get_all(r["Value"])["Value"])


class join_crash(answers, unittest.TestCase):
    def settled(self, master, joiner, limit=60):
        """('done' | 'not done', seconds) once both sides agree, failing on a half join."""
        until, last = time.time() + limit, None
        while time.time() < until:
            try:
                pool = hosts_seen(master, PASSWORDS[0])
                as_member = hosts_seen(joiner, PASSWORDS[0])  # a member has the pool's password
                alone = hosts_seen(joiner, PASSWORDS[1])
                last = (pool, as_member, alone)
                if pool == 2 and as_member == 2:
                    return "done"
                if pool == 1 and alone == 1:
                    return "not done"
            except (OSError, xmlrpc.client.ProtocolError) as e:
                last = e
            time.sleep(0.3)
        self.fail(f"half a join: (master's hosts, joiner's as a member, joiner's alone) = {last}\n"
                  f"master's log:\n{master.log_tail()}\njoiner's log:\n{joiner.log_tail()}")

    def test_kill_9_at_seeded_points_of_a_join(self):
        rng = random.Random(SEED)
        outcomes = []
        for rnd in range(1, ROUNDS + 1):
            with tempfile.TemporaryDirectory() as root:
                port = free_port_everywhere(rng.randrange(1 << 32))
                master, joiner = host(root, 0, port), host(root, 1, port)
                try:
                    master.start()
                    joiner.start()
                    session = joiner.login()

                    def join():
                        with joiner.proxy() as p:
                            return p.pool.join(session, f"{master.address}:{master.port}", "root", PASSWORDS[0])
                    victim, delay, answer = interrupted(join, {"joiner": joiner, "master": master}, rng)
                    if victim == "master":
                        master.start()
                    # The joiner starts again (killed, or to ask what became of its join).
                    if joiner.alive():
                        joiner.stop()
                    joiner.start()
                    outcome = self.settled(master, joiner)
                    outcomes.append(outcome)
                    print(f"round {rnd}: {victim} killed {delay * 1000:.0f} ms into the join (pool.join answered "
                          f"{said(answer)}): {outcome}", flush=True)
                finally:
                    for h in (joiner, master):
                        h.stop()
        print(f"summary: {outcomes.count('done')} done, {outcomes.count('not done')} not done, none half", flush=True)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
