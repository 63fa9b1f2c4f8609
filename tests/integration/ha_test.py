#!/usr/bin/env python3
"""HA in a pool of three real xapid processes on 127.0.0.2-4 with a shared SR (a directory every
host sees), at T = 10 s: pool.enable_ha's errors and fields; a member killed (kill -9) has its
protected VM started on another host and its best-effort one after it, its unprotected one left
halted, and once it starts again its guests' domains are gone (its watchdog would have rebooted
it); a member stopped (SIGSTOP) for longer than T finds itself fenced when continued and exits
(status 99), its protected VM running elsewhere, never on both; the master killed: the other
two elect a new one, which restarts the old master's protected VM; the statefile lost by every
host for 2 T fences nobody and raises HA_STATEFILE_LOST; the failover plans
(ha_compute_*, set_ha_host_failures_to_tolerate) and the refusal of what would break them;
host.emergency_ha_disable, pool.ha_prevent_restarts_for, pool.disable_ha. Each death prints its
timeline (death -> host seen dead -> VM running again)."""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xapid_support import answers  # noqa: E402  (takes PATH_TO_XAPID from argv)
from pool_support import pool_calls, three_hosts, vm_record  # noqa: E402

SEED = int(os.environ.get("XAPID_TEST_SEED", random.randrange(1 << 32)))
print(f"seed {SEED} (XAPID_TEST_SEED to repeat)", flush=True)
GIB = 1 << 30
T = 10  # the pool's HA timeout, the shortest allowed
FENCED = 99  # a fenced daemon's exit status


class ha_in_a_pool(three_hosts, pool_calls, answers, unittest.TestCase):
    PORT_SEED = SEED
    JOINED = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.rng = random.Random(SEED)
            cls.session = cls.pool_session(0)
            with cls.hosts[0].proxy() as p:
                refs = {p.host.get_address(cls.session, r)["Value"]: r for r in p.host.get_all(cls.session)["Value"]}
                cls.host_refs = [refs[h.address] for h in cls.hosts]
                cls.shared_dir = tempfile.mkdtemp(dir=cls.root.name)
                cls.sr = p.SR.create(cls.session, cls.host_refs[0], {"location": cls.shared_dir}, "0", "shared", "", "file",
                                     "user", True, {})["Value"]
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def pool_session(cls, i):
        with cls.hosts[i].proxy() as p:
            return p.session.login_with_password("root", cls.hosts[0].password, "1.0", cls.__name__)["Value"]

    def protected_vm(self, name, on, priority="restart", order=0):
        vm = self.call(on, "VM.create", dict(vm_record(name), order=str(order)))
        self.call(on, "VM.set_ha_restart_priority", vm, priority)
        self.call(on, "VM.start_on", vm, self.host_refs[on], False, False)
        return vm

    def live(self, via, i):
        return self.call(via, "host_metrics.get_live", self.call(via, "host.get_metrics", self.host_refs[i]))

    def free_memory(self, via, i):
        return int(self.call(via, "host_metrics.get_memory_free", self.call(via, "host.get_metrics", self.host_refs[i])))

    def wait_running_elsewhere(self, via, vm, dead, died_at, label):
        def running():
            # One read of both fields: two reads may straddle the reset of the dead host's VMs.
            record = self.call(via, "VM.get_record", vm)
            self.assertEqual(record["power_state"], "Running")
            self.assertNotEqual(record["resident_on"], self.host_refs[dead])
            return record["resident_on"]
        where = self.eventually(running, limit=T + 30)
        took = time.time() - died_at
        print(f"{label}: running again on {self.host_refs.index(where)} {took:.1f} s after the death", flush=True)
        self.assertLessEqual(took, T + 10, "restarted within T + 10 s (the goal)")
        return where

    def test_1_enable_checks_and_fields(self):
        self.assertEqual(self.fails(0, "pool.disable_ha"), ["HA_NOT_ENABLED"])
        local = [sr for sr in self.call(0, "SR.get_all") if self.call(0, "SR.get_type", sr) == "ext"][0]
        self.assertEqual(self.fails(1, "pool.enable_ha", [local], {"timeout": str(T)}),
                         ["HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED", local])
        self.assertEqual(self.fails(0, "pool.enable_ha", [self.sr], {"timeout": "5"}), ["INVALID_VALUE", "timeout", "5"])
        self.assertEqual(self.fails(0, "pool.enable_ha", [self.sr], {"timeout": "ten"}), ["INVALID_VALUE", "timeout", "ten"])
        started = time.time()
        self.call(2, "pool.enable_ha", [self.sr], {"timeout": str(T)})  # through a member: the master does it
        print(f"enable_ha: {time.time() - started:.2f} s", flush=True)
        pool = self.call(0, "pool.get_all")[0]
        self.assertTrue(self.call(1, "pool.get_ha_enabled", pool))
        statefiles = self.call(1, "pool.get_ha_statefiles", pool)
        self.assertEqual(len(statefiles), 1)
        self.assertEqual(self.call(0, "VDI.get_type", statefiles[0]), "ha_statefile")
        self.assertEqual(self.call(0, "VDI.get_SR", statefiles[0]), self.sr)
        self.assertEqual(self.call(0, "pool.get_ha_configuration", pool), {"timeout": str(T)})
        for i in range(3):
            self.assertEqual(self.call(i, "host.get_ha_statefiles", self.host_refs[i]), statefiles)
            self.assertEqual(len(self.call(i, "host.get_ha_network_peers", self.host_refs[i])), 2)
        self.assertEqual(self.fails(1, "pool.enable_ha", [self.sr], {"timeout": str(T)}), ["HA_IS_ENABLED"])
        # xapi's rules for the pool's shape, and the statefile's, while HA is on.
        self.assertEqual(self.fails(0, "pool.eject", self.host_refs[2]), ["HA_IS_ENABLED"])
        self.assertEqual(self.fails(1, "VDI.destroy", statefiles[0]), ["HA_IS_ENABLED"])
        self.assertEqual(self.fails(2, "SR.forget", self.sr), ["HA_IS_ENABLED"])
        pbd = self.call(0, "SR.get_PBDs", self.sr)[0]
        self.assertEqual(self.fails(0, "PBD.unplug", pbd), ["HA_IS_ENABLED"])

    def test_1b_failover_plans_and_what_would_break_them(self):
        pool = self.call(0, "pool.get_all")[0]
        self.assertEqual(self.call(1, "pool.ha_compute_max_host_failures_to_tolerate"), "2")
        self.assertTrue(self.call(2, "pool.ha_failover_plan_exists", "2"))
        self.assertEqual(self.fails(0, "pool.set_ha_host_failures_to_tolerate", pool, "-1"),
                         ["INVALID_VALUE", "ha_host_failures_to_tolerate", "-1"])
        # Two big protected VMs (10 GiB of each simulated host's 16): either host may fail, not both.
        big = str(10 * GIB)
        sizes = dict(memory_static_max=big, memory_dynamic_max=big, memory_dynamic_min=big, memory_static_min=big)
        vms = []
        for i in (0, 1):
            vm = self.call(i, "VM.create", dict(vm_record(f"big-{i}"), **sizes))
            self.call(i, "VM.set_ha_restart_priority", vm, "restart")
            self.call(i, "VM.start_on", vm, self.host_refs[i], False, False)
            vms.append(vm)
        self.assertEqual(self.call(2, "pool.ha_compute_max_host_failures_to_tolerate"), "1")
        self.assertFalse(self.call(0, "pool.ha_failover_plan_exists", "2"))
        # Hypothetically: only the VMs the map makes "restart" are protected.
        self.assertEqual(self.call(0, "pool.ha_compute_hypothetical_max_host_failures_to_tolerate", {vms[0]: "best-effort"}), "2")
        self.assertEqual(self.call(0, "pool.ha_compute_hypothetical_max_host_failures_to_tolerate",
                                   {vms[0]: "restart", vms[1]: "restart"}), "1")
        self.assertEqual(self.fails(0, "pool.ha_compute_hypothetical_max_host_failures_to_tolerate", {vms[0]: "always"}),
                         ["INVALID_VALUE", "ha_restart_priority", "always"])
        plan = self.call(1, "pool.ha_compute_vm_failover_plan", [self.host_refs[0]], [vms[0]])
        self.assertIn(plan[vms[0]]["host"], self.host_refs[1:])
        plan = self.call(1, "pool.ha_compute_vm_failover_plan", [self.host_refs[0], self.host_refs[2]], [vms[0]])
        self.assertEqual(plan[vms[0]], {"error_code": "HOST_NOT_ENOUGH_FREE_MEMORY"})
        self.assertEqual(self.fails(1, "pool.set_ha_host_failures_to_tolerate", pool, "2"),
                         ["HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN"])
        self.call(1, "pool.set_ha_host_failures_to_tolerate", pool, "1")
        self.assertEqual(self.call(0, "pool.get_ha_plan_exists_for", pool), "1")
        # A third would leave no room for either of the others: refused, as is disabling a host.
        third = self.call(2, "VM.create", dict(vm_record("big-2"), **sizes))
        self.call(2, "VM.set_ha_restart_priority", third, "restart")
        self.assertEqual(self.fails(2, "VM.start_on", third, self.host_refs[2], False, False),
                         ["HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN"])
        self.assertEqual(self.fails(0, "host.disable", self.host_refs[2]), ["HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN"])
        self.call(2, "VM.set_ha_restart_priority", third, "")  # unprotected, it may run
        self.call(2, "VM.start_on", third, self.host_refs[2], False, False)
        for vm in vms + [third]:
            self.call(0, "VM.hard_shutdown", vm)
            self.call(0, "VM.destroy", vm)
        self.call(0, "pool.set_ha_host_failures_to_tolerate", pool, "0")

    def test_1c_a_migration_a_protection_or_an_evacuation_that_would_break_the_plan_is_refused(self):
        """Protected 10 GiB VMs on hosts 0 and 1 (of each simulated host's 15 GiB free), small
        unprotected ones beside them (1 GiB each) and a 5 GiB one on host 2: host 2's 10 GiB
        free are the room either protected VM needs, a plan for one failure. Moving a small VM
        to host 2, protecting the 5 GiB one (it could go nowhere if host 2 failed), or
        evacuating host 2 would break it: refused, as xapi refuses them."""
        pool = self.call(0, "pool.get_all")[0]

        def started(name, on, gib, priority=""):
            size = str(gib * GIB)
            vm = self.call(on, "VM.create", dict(vm_record(name), memory_static_max=size, memory_dynamic_max=size,
                                                 memory_dynamic_min=size, memory_static_min=size))
            if priority:
                self.call(on, "VM.set_ha_restart_priority", vm, priority)
            self.call(on, "VM.start_on", vm, self.host_refs[on], False, False)
            return vm
        vms = [started("protected-0", 0, 10, "restart"), started("protected-1", 1, 10, "restart"),
               started("small-0", 0, 1), started("small-1", 1, 1), started("medium-2", 2, 5)]
        try:
            self.call(1, "pool.set_ha_host_failures_to_tolerate", pool, "1")
            small, medium = vms[2], vms[4]
            self.assertEqual(self.fails(2, "VM.pool_migrate", small, self.host_refs[2], {}),
                             ["HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN"])
            self.assertEqual(self.fails(1, "VM.set_ha_restart_priority", medium, "restart"),
                             ["HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN"])
            # Evacuating host 2 disables it (xapi's evacuate): no room left for either protected VM.
            self.assertEqual(self.fails(0, "host.evacuate", self.host_refs[2]), ["HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN"])
            self.assertEqual(self.call(0, "VM.get_resident_on", medium), self.host_refs[2])
            self.assertEqual(self.call(0, "VM.get_resident_on", small), self.host_refs[0])
            self.assertEqual(self.call(0, "VM.get_ha_restart_priority", medium), "")
            # What keeps the plan is allowed: best-effort is no promise; a small VM between the full hosts.
            self.call(1, "VM.set_ha_restart_priority", medium, "best-effort")
            self.call(2, "VM.pool_migrate", small, self.host_refs[1], {})
        finally:
            self.call(0, "pool.set_ha_host_failures_to_tolerate", pool, "0")
            for vm in vms:
                self.call(0, "VM.hard_shutdown", vm)
                self.call(0, "VM.destroy", vm)

    def test_2_a_killed_members_protected_vms_start_elsewhere(self):
        full = self.free_memory(0, 2)
        protected = self.protected_vm("protected", 2)
        best = self.protected_vm("best-effort", 2, priority="best-effort")
        plain = self.protected_vm("unprotected", 2, priority="")
        self.assertTrue(self.call(0, "VM.get_ha_always_run", protected))
        self.assertFalse(self.call(0, "VM.get_ha_always_run", plain))
        self.hosts[2].kill()
        died = time.time()
        self.eventually(lambda: self.assertFalse(self.live(0, 2)), limit=T + 20)
        print(f"member kill -9: seen dead {time.time() - died:.1f} s after", flush=True)
        self.wait_running_elsewhere(0, protected, 2, died, "member kill -9, protected VM")
        self.wait_running_elsewhere(0, best, 2, died, "member kill -9, best-effort VM")
        self.assertEqual(self.call(1, "VM.get_power_state", plain), "Halted")
        self.assertEqual(self.call(1, "VM.get_resident_on", plain), "OpaqueRef:NULL")
        messages = [self.call(0, "message.get_record", m)["name"] for m in self.call(0, "message.get_all")]
        self.assertIn("HA_HOST_FAILED", messages)
        # Back: its watchdog "rebooted" it, so none of its old guests runs there.
        self.hosts[2].start()
        self.eventually(lambda: self.assertTrue(self.live(0, 2)), limit=60)
        self.eventually(lambda: self.assertEqual(self.free_memory(0, 2), full))
        self.assertEqual(self.call(2, "host.get_resident_VMs", self.host_refs[2]),
                         [v for v in self.call(2, "host.get_resident_VMs", self.host_refs[2])
                          if self.call(2, "VM.get_is_control_domain", v)])
        self.assertEqual(self.call(2, "VM.get_power_state", plain), "Halted")
        self.call(0, "host.enable", self.host_refs[2])
        for vm in (protected, best):
            self.call(1, "VM.hard_shutdown", vm)
            self.assertFalse(self.call(0, "VM.get_ha_always_run", vm))

    def test_3_a_member_stopped_longer_than_t_fences_itself_when_continued(self):
        vm = self.protected_vm("protected-on-a-stopped-host", 1)
        full = None
        self.hosts[1].proc.send_signal(signal.SIGSTOP)
        stopped = time.time()
        try:
            self.wait_running_elsewhere(0, vm, 1, stopped, "member SIGSTOP, protected VM")
            elsewhere = self.call(0, "VM.get_resident_on", vm)
            full = self.free_memory(0, self.host_refs.index(elsewhere))
        finally:
            self.hosts[1].proc.send_signal(signal.SIGCONT)
        continued = time.time()
        status = self.hosts[1].proc.wait(timeout=T)
        print(f"member SIGSTOP {continued - stopped:.1f} s: fenced (exit {status}) {time.time() - continued:.2f} s "
              "after SIGCONT", flush=True)
        self.assertEqual(status, FENCED)
        self.assertEqual(self.call(0, "VM.get_power_state", vm), "Running")
        self.assertNotEqual(self.call(0, "VM.get_resident_on", vm), self.host_refs[1])
        self.assertIsNotNone(full)
        self.hosts[1].start()
        self.eventually(lambda: self.assertTrue(self.live(0, 1)), limit=60)
        self.assertEqual(self.call(1, "VM.get_resident_on", vm), self.call(0, "VM.get_resident_on", vm))
        self.call(0, "host.enable", self.host_refs[1])
        self.call(0, "VM.hard_shutdown", vm)

    def test_4_the_master_killed_the_new_master_restarts_its_protected_vm(self):
        vm = self.protected_vm("protected-on-the-master", 0)
        self.hosts[0].kill()
        died = time.time()
        type(self).session, via = self.pool_session_when_ready((1, 2))
        took = time.time() - died
        print(f"master kill -9: a write accepted {took:.1f} s after", flush=True)
        self.assertLessEqual(took, T + 5)
        self.wait_running_elsewhere(via, vm, 0, died, "master kill -9, protected VM")
        self.hosts[0].start()
        self.eventually(lambda: self.assertTrue(self.live(via, 0)), limit=60)
        self.call(via, "host.enable", self.host_refs[0])
        self.call(via, "VM.hard_shutdown", vm)

    def test_4b_the_statefile_lost_for_longer_than_t_fences_nobody(self):
        """Every host loses the statefile (its writes refused: chattr +i, as root) for 2 T: the
        heartbeats keep every host's majority, so nobody fences, guests run on and writes go on;
        the master tells HA_STATEFILE_LOST once every live host lost it (as xapi's). Given back,
        the leases are renewed again, and a member killed then is judged dead and its protected
        VM restarted as before."""
        pool = self.call(1, "pool.get_all")[0]
        statefile = self.call(1, "pool.get_ha_statefiles", pool)[0]
        vdi = statefile if statefile.startswith("OpaqueRef:") else self.call(1, "VDI.get_by_uuid", statefile)
        path = os.path.join(self.shared_dir, self.call(1, "VDI.get_location", vdi))
        self.assertTrue(os.path.isfile(path), path)
        master = self.hosts.index(next(h for h in self.hosts if h.address == self.call(
            1, "host.get_address", self.call(1, "pool.get_master", pool))))
        member = next(i for i in range(3) if i != master)
        vm = self.protected_vm("protected-through-a-statefile-loss", member)
        locked = subprocess.run(["chattr", "+i", path], capture_output=True, text=True)
        if locked.returncode != 0:
            self.skipTest(f"chattr +i is not available here (root on a file system with immutable files): {locked.stderr}")
        lost = time.time()
        try:
            time.sleep(2 * T)
            for i, h in enumerate(self.hosts):
                self.assertTrue(h.alive(), f"host {i} fenced itself (or died) with the statefile lost:\n{h.log_tail()}")
                self.call(i, "VM.set_name_description", vm, f"written through host {i} with the statefile lost")
            self.assertEqual(self.call(master, "VM.get_power_state", vm), "Running")
            self.assertEqual(self.call(master, "VM.get_resident_on", vm), self.host_refs[member])
            alerts = [r for r in self.call(master, "message.get_all_records").values() if r["name"] == "HA_STATEFILE_LOST"]
            self.assertEqual(len(alerts), 1, "one HA_STATEFILE_LOST")
            self.assertIn("All live servers have lost access to the HA statefile", alerts[0]["body"])
        finally:
            subprocess.run(["chattr", "-i", path], check=True)
        print(f"statefile lost for {time.time() - lost:.1f} s: no host fenced", flush=True)
        for h in self.hosts:
            self.eventually(lambda: self.assertIn("ha.statefile.regained", h.log_tail(200)), limit=T)
        self.hosts[member].kill()
        died = time.time()
        self.wait_running_elsewhere(master, vm, member, died, "member kill -9 after the statefile came back, protected VM")
        self.hosts[member].start()
        self.eventually(lambda: self.assertTrue(self.live(master, member)), limit=60)
        self.call(master, "host.enable", self.host_refs[member])
        self.call(master, "VM.hard_shutdown", vm)

    def pool_session_when_ready(self, survivors, limit=T + 20):
        """A pool session made on the new master once it takes writes (a member answers a login
        HOST_IS_SLAVE), and which host that is."""
        until = time.time() + limit
        while True:
            for i in survivors:
                try:
                    with self.hosts[i].proxy() as p:
                        r = p.session.login_with_password("root", self.hosts[0].password, "1.0", "after the master")
                    if r["Status"] == "Success":
                        return r["Value"], i
                except OSError:
                    pass
            if time.time() > until:
                raise AssertionError(f"no master took a login within {limit} s")
            time.sleep(0.1)

    def test_5_disable(self):
        self.call(2, "pool.ha_prevent_restarts_for", "5")
        self.call(2, "pool.ha_prevent_restarts_for", "0")
        # One host leaves HA in an emergency (it no longer renews nor fences); the others stay armed.
        self.call(2, "host.emergency_ha_disable")
        self.assertEqual(self.fails(2, "host.emergency_ha_disable"), ["HA_NOT_ENABLED"])
        self.call(1, "pool.disable_ha")
        pool = self.call(1, "pool.get_all")[0]
        self.assertFalse(self.call(2, "pool.get_ha_enabled", pool))
        self.assertEqual(self.fails(1, "pool.disable_ha"), ["HA_NOT_ENABLED"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
