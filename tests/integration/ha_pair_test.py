#!/usr/bin/env python3
"""HA in a pool of two real xapid processes (127.0.0.2-3, a shared SR, T = 10 s), where the
survivor of a death has no majority: it goes on only once it holds the master lease and the
other host's lease has expired, restarting as the pool's only voter (what makes two-host HA
safe), then starts the dead host's protected VM; the dead host, started again, is called back
into the pool as a member. Both ways: the member killed, then the master killed. Each prints its
timeline (death -> writes accepted again -> VM running again)."""
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xapid_support import answers  # noqa: E402  (takes PATH_TO_XAPID from argv)
from pool_support import ha_pool, pool_calls, vm_record, wait_for_voters  # noqa: E402

SEED = int(os.environ.get("XAPID_TEST_SEED", random.randrange(1 << 32)))
print(f"seed {SEED} (XAPID_TEST_SEED to repeat)", flush=True)
T = 10


class ha_in_a_pool_of_two(ha_pool, pool_calls, answers, unittest.TestCase):
    PORT_SEED = SEED
    COUNT = 2
    HA_TIMEOUT = T

    def survive(self, dead, survivor, label):
        # Both vote (a host taken back votes once caught up): a standby left alone has no log to
        # go on with.
        wait_for_voters(self.hosts[dead], 2, self.hosts[0].password)
        vm = self.call(dead, "VM.create", vm_record(f"protected on {dead}"))
        self.call(dead, "VM.set_ha_restart_priority", vm, "restart")
        self.call(dead, "VM.start_on", vm, self.host_refs[dead], False, False)
        self.hosts[dead].kill()
        died = time.time()

        def writable():
            session = self.login(survivor)
            self.assertIsNotNone(session)
            type(self).session = session
            self.call(survivor, "VM.set_name_description", vm, "written after the death")
        try:
            self.eventually(writable, limit=T + 30)
        except AssertionError as e:
            tail = "".join(l for l in self.hosts[survivor].log_tail(3000).splitlines(True) if "read_fence" not in l)
            raise AssertionError(f"{e}; the survivor's log ends:\n{tail[-12000:]}") from e
        print(f"{label}: writes accepted again {time.time() - died:.1f} s after the death", flush=True)

        def running():
            self.assertEqual(self.call(survivor, "VM.get_power_state", vm), "Running")
            self.assertEqual(self.call(survivor, "VM.get_resident_on", vm), self.host_refs[survivor])
        self.eventually(running, limit=T + 30)
        took = time.time() - died
        print(f"{label}: protected VM running again {took:.1f} s after the death", flush=True)
        self.assertLessEqual(took, T + 10, "restarted within T + 10 s (the goal)")
        # The dead host comes back: called back into the pool, a member, its old guest gone.
        self.hosts[dead].start()
        self.eventually(lambda: self.assertTrue(self.call(survivor, "host_metrics.get_live",
                                                          self.call(survivor, "host.get_metrics",
                                                                    self.host_refs[dead]))), limit=90)
        self.eventually(lambda: self.assertEqual(self.call(dead, "VM.get_name_description", vm), "written after the death"),
                        limit=90)
        self.assertEqual(self.call(dead, "VM.get_resident_on", vm), self.host_refs[survivor])
        self.assertIsNone(self.login(dead), "the host that came back is not the master")
        self.call(survivor, "host.enable", self.host_refs[dead])
        self.call(survivor, "VM.hard_shutdown", vm)

    def test_1_the_member_dies_and_the_master_goes_on_alone(self):
        self.survive(dead=1, survivor=0, label="pair, member kill -9")

    def test_2_the_master_dies_and_the_member_goes_on_alone(self):
        self.survive(dead=0, survivor=1, label="pair, master kill -9")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
