#!/usr/bin/env python3
"""HA in a pool of five real xapid processes (127.0.0.2-6, five voters, a shared SR, T = 10 s):
the master and a member are killed at once (kill -9). The three left are a majority: they elect
a master that accepts writes within T + 5 s and restarts both dead hosts' protected VMs on the
survivors within T + 10 s. The dead hosts come back as members whose old guests are gone: every
protected VM runs on exactly one host, never two. Prints the timeline.
Seeded: XAPID_TEST_SEED picks the port and the member killed with the master.

Usage: ha_five_test.py PATH_TO_XAPID"""
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xapid_support import answers  # noqa: E402  (takes PATH_TO_XAPID from argv)
from pool_support import ha_pool, pool_calls, vm_record  # noqa: E402

SEED = int(os.environ.get("XAPID_TEST_SEED", random.randrange(1 << 32)))
print(f"seed {SEED} (XAPID_TEST_SEED to repeat)", flush=True)
T = 10
GIB = 1 << 30


class ha_in_a_pool_of_five(ha_pool, pool_calls, answers, unittest.TestCase):
    PORT_SEED = SEED
    COUNT = 5
    HA_TIMEOUT = T

    def master(self):
        pool = self.call(0, "pool.get_all")[0]
        address = self.call(0, "host.get_address", self.call(0, "pool.get_master", pool))
        return next(i for i, h in enumerate(self.hosts) if h.address == address)

    def test_the_master_and_a_member_killed_at_once(self):
        rng = random.Random(SEED)
        master = self.master()
        member = rng.choice([i for i in range(5) if i != master])
        victims = (master, member)
        free = [int(self.call(0, "host_metrics.get_memory_free", self.call(0, "host.get_metrics", r))) for r in self.host_refs]
        protected = {}
        for i in victims:
            vm = self.call(0, "VM.create", vm_record(f"protected on host {i}"))
            self.call(0, "VM.set_ha_restart_priority", vm, "restart")
            self.call(0, "VM.start_on", vm, self.host_refs[i], False, False)
            protected[vm] = i
        print(f"killing the master {self.hosts[master].address} and the member {self.hosts[member].address}", flush=True)
        for i in victims:
            self.hosts[i].kill()
        died = time.time()
        survivors = [i for i in range(5) if i not in victims]

        # A new master among the survivors takes writes within T + 5 s.
        def writable():
            for i in survivors:
                session = self.login(i)
                if session:
                    type(self).session = session
                    self.call(i, "pool.get_all")
                    return i
            raise AssertionError("no survivor takes a pool login yet")
        via = self.eventually(writable, limit=T + 30)
        took = time.time() - died
        print(f"two of five killed: host {self.hosts[via].address} the master, writes accepted {took:.1f} s after",
              flush=True)
        self.assertLessEqual(took, T + 5, "the new master accepts writes within T + 5 s")

        for vm, was in protected.items():
            def running():
                self.assertEqual(self.call(via, "VM.get_power_state", vm), "Running")
                where = self.call(via, "VM.get_resident_on", vm)
                self.assertIn(where, [self.host_refs[i] for i in survivors])
                return where
            where = self.eventually(running, limit=T + 30)
            took = time.time() - died
            print(f"the protected VM of host {was}: running on host {self.host_refs.index(where)} {took:.1f} s after",
                  flush=True)
            self.assertLessEqual(took, T + 10, "restarted within T + 10 s")

        # Back: members, their old guests gone (their watchdog would have rebooted them); each
        # VM runs once, where the pool says, and its memory is counted there only.
        for i in victims:
            self.hosts[i].start()
        for i in victims:
            self.eventually(lambda: self.assertTrue(self.call(via, "host_metrics.get_live",
                                                              self.call(via, "host.get_metrics", self.host_refs[i]))), 90)
            self.assertIsNone(self.login(i), "a host that died does not come back as the master")
            self.eventually(lambda: self.assertEqual(
                int(self.call(via, "host_metrics.get_memory_free", self.call(via, "host.get_metrics", self.host_refs[i]))),
                free[i]), 30)
        used = {i: free[i] - int(self.call(via, "host_metrics.get_memory_free", self.call(via, "host.get_metrics", self.host_refs[i])))
                for i in survivors}
        places = [self.call(via, "VM.get_resident_on", vm) for vm in protected]
        for i in survivors:
            self.assertEqual(used[i], GIB * places.count(self.host_refs[i]), f"host {i} runs exactly the VMs placed there")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
