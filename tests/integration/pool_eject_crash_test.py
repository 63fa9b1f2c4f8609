#!/usr/bin/env python3
"""pool.eject interrupted by kill -9 at seeded points (issue 16: an eject interrupted by a crash of
either side ends done or not done after restart, never half). Each round joins a member to a
master on 127.0.0.2-3 (a pool of two: both vote), waits for the member's vote, calls pool.eject
on the master, kills the master or the member a seeded while into it, starts what was killed
again, and checks that both sides agree: the pool has one host and the member is a pool of its
own, or the pool still has both and takes writes.

Seeded: XAPID_TEST_SEED replays the choices; XAPID_EJECT_CRASH_ROUNDS rounds (default 6).

Usage: pool_eject_crash_test.py PATH_TO_XAPID"""
import os
import random
import sys
import tempfile
import time
import unittest
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xapid_support import answers  # noqa: E402  (takes PATH_TO_XAPID from argv)
from pool_support import (PASSWORDS, free_port_everywhere, host, interrupted, join_pool, said, vm_record,  # noqa: E402
                          wait_for_voters)

SEED = int(os.environ.get("XAPID_TEST_SEED", random.randrange(1 << 32)))
ROUNDS = int(os.environ.get("XAPID_EJECT_CRASH_ROUNDS", 6))
print(f"seed {SEED} (XAPID_TEST_SEED to repeat), {ROUNDS} rounds", flush=True)


def hosts_seen(h):
    """How many hosts h's pool has (a local login with the pool's password, which an ejected
    host keeps); None when h does not answer."""
    try:
        with h.proxy() as p:
            r = p.session.slave_local_login_with_password("root", PASSWORDS[0])
            if r["Status"] != "Success":
                return None
            return len(p.host.get_all(r["Value"])["Value"])
    except (OSError, xmlrpc.client.ProtocolError):
        return None


def takes_a_write(master):
    """Whether a VM.create through the master's pool session commits."""
    try:
        with master.proxy() as p:
            r = p.session.login_with_password("root", PASSWORDS[0], "1.0", "eject_crash")
            if r["Status"] != "Success":
                return False
            return p.VM.create(r["Value"], vm_record("after the eject"))["Status"] == "Success"
    except (OSError, xmlrpc.client.ProtocolError):
        return False


class eject_crash(answers, unittest.TestCase):
    def settled(self, master, member, limit=90):
        """'done' | 'not done' once both sides agree and the pool takes writes; fails on half."""
        until, last = time.time() + limit, None
        while time.time() < until:
            pool, theirs = hosts_seen(master), hosts_seen(member)
            last = (pool, theirs)
            if pool == 1 and theirs == 1 and takes_a_write(master):
                return "done"
            # Not done: either may lead now (the master killed, the member elected meanwhile).
            if pool == 2 and theirs == 2 and (takes_a_write(master) or takes_a_write(member)):
                return "not done"
            time.sleep(0.3)
        self.fail(f"half an eject: (master's hosts, member's hosts) = {last}\n"
                  f"master's log:\n{master.log_tail()}\nmember's log:\n{member.log_tail()}")

    def test_kill_9_at_seeded_points_of_an_eject(self):
        rng = random.Random(SEED)
        outcomes = []
        for rnd in range(1, ROUNDS + 1):
            with tempfile.TemporaryDirectory() as root:
                port = free_port_everywhere(rng.randrange(1 << 32))
                master, member = host(root, 0, port), host(root, 1, port)
                try:
                    master.start()
                    member.start()
                    join_pool([master, member])
                    wait_for_voters(master, 2, PASSWORDS[0])
                    with master.proxy() as p:
                        session = p.session.login_with_password("root", PASSWORDS[0], "1.0", "eject_crash")["Value"]
                        ref = next(h for h in p.host.get_all(session)["Value"]
                                   if p.host.get_address(session, h)["Value"] == member.address)

                    def eject():
                        with master.proxy() as p:
                            return p.pool.eject(session, ref)
                    victim, delay, answer = interrupted(eject, {"member": member, "master": master}, rng)
                    # What was killed starts again (an ejected member may be restarting already).
                    for h in (master, member):
                        if not h.alive():
                            h.start()
                    outcome = self.settled(master, member)
                    outcomes.append(outcome)
                    print(f"round {rnd}: {victim} killed {delay * 1000:.0f} ms into the eject (pool.eject answered "
                          f"{said(answer)}): {outcome}", flush=True)
                finally:
                    for h in (member, master):
                        h.stop()
        print(f"summary: {outcomes.count('done')} done, {outcomes.count('not done')} not done, none half", flush=True)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
