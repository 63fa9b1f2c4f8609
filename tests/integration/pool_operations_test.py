#!/usr/bin/env python3
"""Operations carried out by the host that runs them, in a pool of three real xapid processes on
127.0.0.2-4: VM.start_on boots the VM on the host it names (that host's hypervisor holds its
memory), whichever host the client called; the VM's later operations reach its host from any
member; VM.start without a host goes to its affinity, else to the host with the most free
memory; get_possible_hosts and assert_can_boot_here answer for every host; a disabled host is
refused; an Async operation completes its task on the host the client called, and is
cancelled through any host while it waits on the VM's; a running VM migrates around the pool
(VM.pool_migrate) and runs throughout while a client reads it; host.evacuate sends a host's ten
VMs to the others; a shared SR made on one host is plugged on every host, and a VM with its disk
there starts anywhere and migrates; a host killed (kill -9) makes its VMs' operations
HOST_OFFLINE, and once declared dead (host.declare_dead) its VMs are halted and start elsewhere."""
import os
import random
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xapid_support import answers  # noqa: E402  (takes PATH_TO_XAPID from argv)
from pool_support import three_hosts, vm_record  # noqa: E402

SEED = int(os.environ.get("XAPID_TEST_SEED", random.randrange(1 << 32)))
print(f"seed {SEED} (XAPID_TEST_SEED to repeat)", flush=True)
GIB = 1 << 30


class operations_in_a_pool(three_hosts, answers, unittest.TestCase):
    PORT_SEED = SEED
    JOINED = True
    EXTRA_ARGS = ("--host-dead-seconds", "3", "--sim-hang-probability", "1", "--sim-migration-mib-per-s", "8192")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.rng = random.Random(SEED)
            master = cls.hosts[0]
            # One pool session, made on the master, serves on every member.
            with master.proxy() as p:
                session = p.session.login_with_password("root", master.password, "1.0", cls.__name__)["Value"]
                refs = {p.host.get_address(session, r)["Value"]: r for r in p.host.get_all(session)["Value"]}
            cls.sessions = [session] * 3
            cls.host_refs = [refs[h.address] for h in cls.hosts]
        except BaseException:
            cls.tearDownClass()
            raise

    def answer(self, i, method, *params):
        """The answer of `method` called on host i with the pool's session."""
        with self.hosts[i].proxy() as p:
            target = p
            for part in method.split("."):
                target = getattr(target, part)
            return target(self.sessions[i], *params)

    def call(self, i, method, *params):
        return self.ok(self.answer(i, method, *params))

    def fails(self, i, method, *params):
        return self.err(self.answer(i, method, *params))

    def new_vm(self, name, callers=(0, 1, 2), **fields):
        """A halted VM, made through one of `callers` (a random one)."""
        record = dict(vm_record(name), **fields)
        return self.call(self.rng.choice(callers), "VM.create", record)

    def free_memory(self, host_index):
        """host_metrics.memory_free of host i, as host i's own hypervisor last recorded it."""
        metrics = self.call(0, "host.get_metrics", self.host_refs[host_index])
        return int(self.call(0, "host_metrics.get_memory_free", metrics))

    def eventually(self, check, limit=20):
        until = time.time() + limit
        while True:
            try:
                return check()
            except AssertionError:
                if time.time() > until:
                    raise
                time.sleep(0.2)

    def test_1_start_on_boots_on_the_named_host_and_later_operations_reach_it(self):
        for target in range(3):
            vm = self.new_vm(f"on-host-{target}")
            before = [self.free_memory(i) for i in range(3)]
            caller = self.rng.randrange(3)
            self.call(caller, "VM.start_on", vm, self.host_refs[target], False, False)
            self.assertEqual(self.call(0, "VM.get_resident_on", vm), self.host_refs[target])
            self.assertEqual(self.call(0, "VM.get_power_state", vm), "Running")
            # The named host's hypervisor holds the guest's memory; the others' do not.
            after = [self.free_memory(i) for i in range(3)]
            for i in range(3):
                if i == target:
                    self.assertLessEqual(after[i], before[i] - GIB, f"host {i} did not boot it")
                else:
                    self.assertEqual(after[i], before[i], f"host {i} booted a VM meant for host {target}")
            # Its operations reach its host from any member: pause from one, shutdown from another.
            self.call((target + 1) % 3, "VM.pause", vm)
            self.assertEqual(self.call(target, "VM.get_power_state", vm), "Paused")
            self.call((target + 1) % 3, "VM.unpause", vm)
            self.call((target + 2) % 3, "VM.hard_shutdown", vm)
            self.assertEqual(self.call(0, "VM.get_power_state", vm), "Halted")
            self.assertEqual(self.free_memory(target), before[target], f"host {target} did not free it")
            self.assertEqual(self.call(0, "VM.get_current_operations", vm), {})

    def test_2_start_without_a_host_follows_affinity_then_free_memory(self):
        vm = self.new_vm("with-affinity", affinity=self.host_refs[2])
        self.call(0, "VM.start", vm, False, False)
        self.assertEqual(self.call(1, "VM.get_resident_on", vm), self.host_refs[2])
        # Host 2 has the least free memory now: the next VM without affinity goes elsewhere.
        other = self.new_vm("anywhere")
        self.call(2, "VM.start", other, False, False)
        placed = self.call(0, "VM.get_resident_on", other)
        self.assertIn(placed, self.host_refs[:2])
        for vm_ in (vm, other):
            self.call(self.rng.randrange(3), "VM.hard_shutdown", vm_)

    def test_3_possible_hosts_and_a_disabled_host(self):
        vm = self.new_vm("placement")
        self.assertEqual(sorted(self.call(1, "VM.get_possible_hosts", vm)), sorted(self.host_refs))
        for i in range(3):
            self.call(self.rng.randrange(3), "VM.assert_can_boot_here", vm, self.host_refs[i])
        self.call(0, "host.disable", self.host_refs[1])
        try:
            self.assertEqual(self.fails(2, "VM.start_on", vm, self.host_refs[1], False, False),
                             ["HOST_DISABLED", self.host_refs[1]])
            self.assertNotIn(self.host_refs[1], self.call(0, "VM.get_possible_hosts", vm))
            too_big = self.new_vm("too-big", memory_static_max=str(64 * GIB), memory_dynamic_max=str(64 * GIB),
                                  memory_dynamic_min=str(64 * GIB), memory_static_min=str(64 * GIB))
            self.assertEqual(self.call(0, "VM.get_possible_hosts", too_big), [])
            self.assertEqual(self.fails(0, "VM.assert_can_boot_here", too_big, self.host_refs[2])[0],
                             "HOST_NOT_ENOUGH_FREE_MEMORY")
        finally:
            self.call(0, "host.enable", self.host_refs[1])

    def test_4_an_async_operation_completes_its_task_where_it_was_called(self):
        vm = self.new_vm("async")
        task = self.call(0, "Async.VM.start_on", vm, self.host_refs[1], False, False)

        def finished():
            status = self.call(0, "task.get_status", task)
            self.assertNotEqual(status, "pending")
            return status
        self.assertEqual(self.eventually(finished), "success")
        self.assertEqual(self.call(2, "VM.get_resident_on", vm), self.host_refs[1])
        task = self.call(2, "Async.VM.hard_shutdown", vm)
        self.assertEqual(self.eventually(lambda: finished_on(self, 2, task)), "success")
        self.assertEqual(self.call(0, "VM.get_power_state", vm), "Halted")

    def test_5_a_clean_shutdown_waiting_on_another_host_is_cancelled_from_a_third(self):
        vm = self.new_vm("ignores-shutdown")
        self.call(0, "VM.start_on", vm, self.host_refs[1], False, False)
        # Every simulated guest ignores a clean shutdown (--sim-hang-probability 1): the wait is
        # host 1's, the task host 0's, the cancel comes through host 2.
        task = self.call(0, "Async.VM.clean_shutdown", vm)
        self.eventually(lambda: self.assertEqual(self.call(0, "task.get_allowed_operations", task), ["cancel"]))
        self.call(2, "task.cancel", task)
        self.assertEqual(self.eventually(lambda: finished_on(self, 0, task)), "cancelled")
        self.assertEqual(self.call(1, "VM.get_power_state", vm), "Running")
        self.eventually(lambda: self.assertEqual(self.call(0, "VM.get_current_operations", vm), {}))
        self.call(2, "VM.hard_shutdown", vm)

    def test_6_a_vm_migrates_around_the_pool_running_while_a_client_reads_it(self):
        vm = self.new_vm("travels")
        self.call(0, "VM.start_on", vm, self.host_refs[0], False, False)
        # Its performance data moves with it: sampled on its first host (every 5 s), readable on
        # the next at once, before that host has sampled it.
        self.eventually(lambda: self.call(1, "VM.query_data_source", vm, "memory"), limit=15)
        self.call(2, "VM.pool_migrate", vm, self.host_refs[1], {})
        self.assertEqual(self.call(0, "VM.query_data_source", vm, "memory"), float(GIB))
        # VM_MIGRATED, with xapi's body naming both hosts.
        uuid = self.call(0, "VM.get_uuid", vm)
        hosts = [f"'{self.call(0, 'host.get_name_label', h)}' (uuid: {self.call(0, 'host.get_uuid', h)})" for h in self.host_refs[:2]]
        migrated = [m for m in self.call(1, "message.get_all_records_where", 'field "name" = "VM_MIGRATED"').values()
                    if m["obj_uuid"] == uuid]
        self.assertEqual([(m["cls"], m["priority"], m["body"]) for m in migrated],
                         [("VM", "5", f"VM 'travels' (uuid: {uuid}) migrated from host {hosts[0]} to host {hosts[1]}")])
        seen, stop = [], threading.Event()

        def reader():
            i = 0
            while not stop.is_set():
                record = self.call(i % 3, "VM.get_record", vm)
                seen.append((record["power_state"], record["resident_on"]))
                i += 1
        watcher = threading.Thread(target=reader)
        watcher.start()
        try:
            for step, target in enumerate([2, 0, 2, 1]):
                before = [self.free_memory(i) for i in range(3)]
                source = self.host_refs.index(self.call(0, "VM.get_resident_on", vm))
                self.call((step + 1) % 3, "VM.pool_migrate", vm, self.host_refs[target], {})
                self.assertEqual(self.call(target, "VM.get_resident_on", vm), self.host_refs[target])
                self.assertEqual(self.call(source, "VM.get_power_state", vm), "Running")
                after = [self.free_memory(i) for i in range(3)]
                self.assertLessEqual(after[target], before[target] - GIB, "its new host holds its memory")
                self.assertGreaterEqual(after[source], before[source] + GIB, "its old host freed it")
        finally:
            stop.set()
            watcher.join()
        self.assertTrue(seen)
        self.assertEqual({state for state, _ in seen}, {"Running"})
        self.assertTrue({host for _, host in seen} <= set(self.host_refs))
        # Bad destinations: where it is (host 1, the last move's), a disabled host.
        self.assertEqual(self.fails(2, "VM.pool_migrate", vm, self.host_refs[1], {})[:4],
                         ["VM_MIGRATE_FAILED", vm, self.host_refs[1], self.host_refs[1]])
        self.call(0, "host.disable", self.host_refs[2])
        try:
            self.assertEqual(self.fails(0, "VM.pool_migrate", vm, self.host_refs[2], {}), ["HOST_DISABLED", self.host_refs[2]])
        finally:
            self.call(0, "host.enable", self.host_refs[2])
        # A paused VM does not migrate (as xapi's: running only); an Async migration does.
        self.call(0, "VM.pause", vm)
        self.assertEqual(self.fails(1, "VM.pool_migrate", vm, self.host_refs[0], {}),
                         ["VM_BAD_POWER_STATE", vm, "running", "paused"])
        self.call(0, "VM.unpause", vm)
        task = self.call(1, "Async.VM.pool_migrate", vm, self.host_refs[0], {})
        self.assertEqual(self.eventually(lambda: finished_on(self, 1, task)), "success",
                         self.call(1, "task.get_error_info", task))
        self.assertEqual(self.call(2, "VM.get_power_state", vm), "Running")
        self.assertEqual(self.call(2, "VM.get_resident_on", vm), self.host_refs[0])
        self.call(2, "VM.hard_shutdown", vm)
        self.assertEqual(self.call(0, "VM.get_current_operations", vm), {})

    def test_7_an_evacuated_host_sends_its_ten_vms_to_the_others(self):
        vms = [self.new_vm(f"evacuee-{i}") for i in range(10)]
        for vm in vms:
            self.call(self.rng.randrange(3), "VM.start_on", vm, self.host_refs[1], False, False)
        self.assertEqual(self.call(2, "host.get_vms_which_prevent_evacuation", self.host_refs[1]), {})
        self.call(0, "host.assert_can_evacuate", self.host_refs[1])
        started = time.time()
        self.call(2, "host.evacuate", self.host_refs[1])
        print(f"host.evacuate of 10 VMs: {time.time() - started:.2f} s", flush=True)
        for vm in vms:
            self.assertIn(self.call(0, "VM.get_resident_on", vm), (self.host_refs[0], self.host_refs[2]))
            self.assertEqual(self.call(1, "VM.get_power_state", vm), "Running")
        # The plan spreads them by free memory: both other hosts take some.
        self.assertEqual({self.call(0, "VM.get_resident_on", vm) for vm in vms}, {self.host_refs[0], self.host_refs[2]})
        # A paused guest cannot leave (only a running VM migrates): nothing moves, and the error says why.
        paused = vms[0]
        self.call(0, "VM.pool_migrate", paused, self.host_refs[1], {})
        self.call(0, "VM.pause", paused)
        self.assertEqual(self.call(0, "host.get_vms_which_prevent_evacuation", self.host_refs[1]),
                         {paused: ["VM_BAD_POWER_STATE", paused, "running", "paused"]})
        self.assertEqual(self.fails(2, "host.evacuate", self.host_refs[1]),
                         ["CANNOT_EVACUATE_HOST", f"VM_BAD_POWER_STATE,{paused},running,paused"])
        for vm in vms:
            self.call(self.rng.randrange(3), "VM.hard_shutdown", vm)

    def test_8_a_shared_sr_reaches_every_host_and_its_vms_move_with_their_disks(self):
        where = tempfile.mkdtemp(dir=self.root.name)  # a directory every host sees
        sr = self.call(0, "SR.create", self.host_refs[1], {"location": where}, "0", "shared", "", "file", "user", True, {})
        pbds = self.call(2, "SR.get_PBDs", sr)
        self.assertEqual(sorted(self.call(0, "PBD.get_host", p) for p in pbds), sorted(self.host_refs))
        for p in pbds:
            self.assertTrue(self.call(1, "PBD.get_currently_attached", p))
        vdi = self.call(2, "VDI.create", {"SR": sr, "name_label": "shared disk", "name_description": "",
                                          "virtual_size": str(64 << 20), "type": "user", "sharable": False,
                                          "read_only": False, "other_config": {}, "xenstore_data": {},
                                          "sm_config": {}, "tags": []})
        self.assertTrue(os.path.exists(os.path.join(where, self.call(0, "VDI.get_location", vdi))))
        vm = self.new_vm("agile")
        self.call(1, "VBD.create", {"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW",
                                    "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
                                    "qos_algorithm_type": "", "qos_algorithm_params": {}})
        self.assertEqual(sorted(self.call(0, "VM.get_possible_hosts", vm)), sorted(self.host_refs))
        self.call(0, "VM.start_on", vm, self.host_refs[2], False, False)
        self.call(1, "VM.pool_migrate", vm, self.host_refs[0], {})
        self.assertEqual(self.call(2, "VM.get_resident_on", vm), self.host_refs[0])
        self.call(2, "VM.hard_shutdown", vm)
        # Destroyed as xapi's: every host unplugs it first (each PBD.unplug carried out by its host).
        self.call(0, "VBD.destroy", self.call(0, "VM.get_VBDs", vm)[0])
        self.call(1, "VDI.destroy", vdi)
        self.assertEqual(self.fails(2, "SR.destroy", sr), ["SR_HAS_PBD", sr])
        for i, p in enumerate(pbds):
            self.call(i, "PBD.unplug", p)
            self.assertFalse(self.call(0, "PBD.get_currently_attached", p))
        self.call(2, "SR.destroy", sr)
        self.assertEqual(self.fails(1, "SR.get_record", sr), ["HANDLE_INVALID", "SR", sr])
        self.assertEqual([p for p in self.call(0, "PBD.get_all") if p in pbds], [])

    def test_95_starts_without_a_host_made_at_once_fill_the_pool_without_a_refusal(self):
        """As many starts as the pool has room for, made at once through every host: placement
        chooses from replicas that do not see the others' starts yet, so many choose the same
        host; one that finds no room left there is placed again on another, and none is refused
        while the pool has room. One more then is refused for want of memory."""
        size = 4 * GIB
        memory = {k: str(size) for k in ("memory_static_max", "memory_dynamic_max", "memory_dynamic_min",
                                          "memory_static_min")}
        room = [self.free_memory(i) // size for i in range(3)]
        vms = [self.new_vm(f"rush-{n}", **memory) for n in range(sum(room))]
        answers = [None] * len(vms)

        def start(n):
            answers[n] = self.answer(n % 3, "VM.start", vms[n], False, False)

        threads = [threading.Thread(target=start, args=(n,)) for n in range(len(vms))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            refused = [a["ErrorDescription"] for a in answers if a["Status"] != "Success"]
            self.assertEqual(refused, [], f"room for {room} VMs of 4 GiB")
            placed = [self.call(0, "VM.get_resident_on", vm) for vm in vms]
            self.assertEqual([placed.count(h) for h in self.host_refs], room)
            extra = self.new_vm("no-room", **memory)
            self.assertEqual(self.fails(1, "VM.start", extra, False, False)[0], "HOST_NOT_ENOUGH_FREE_MEMORY")
        finally:
            for vm, a in zip(vms, answers):
                if a and a["Status"] == "Success":
                    self.call(self.rng.randrange(3), "VM.hard_shutdown", vm)

    def test_9_a_dead_hosts_vms_answer_host_offline_and_once_declared_dead_start_elsewhere(self):
        stays = self.new_vm("stays-on-the-host-that-dies")
        moves = self.new_vm("restarted-elsewhere")
        full = self.free_memory(2)
        for vm in (stays, moves):
            self.call(0, "VM.start_on", vm, self.host_refs[2], False, False)
        self.hosts[2].kill()
        try:
            def offline():
                self.assertEqual(self.fails(1, "VM.hard_shutdown", stays), ["HOST_OFFLINE", self.host_refs[2]])
            self.eventually(offline, limit=30)
            other = self.new_vm("not-there", callers=(0, 1))
            self.assertEqual(self.fails(0, "VM.start_on", other, self.host_refs[2], False, False),
                             ["HOST_OFFLINE", self.host_refs[2]])
            self.assertNotIn(self.host_refs[2], self.call(1, "VM.get_possible_hosts", other))
            # A shared SR that one host cannot plug is not made at all: the others' PBDs go again.
            where = tempfile.mkdtemp(dir=self.root.name)
            pbds_before = len(self.call(0, "PBD.get_all"))
            self.assertEqual(self.fails(1, "SR.create", self.host_refs[0], {"location": where}, "0", "while one is down",
                                        "", "file", "user", True, {}), ["CANNOT_CONTACT_HOST", self.host_refs[2]])
            self.assertEqual(self.call(0, "SR.get_by_name_label", "while one is down"), [])
            self.assertEqual(len(self.call(1, "PBD.get_all")), pbds_before)
            # The operator says it is powered off: its VMs are halted, one is started elsewhere.
            self.assertEqual(self.fails(1, "host.declare_dead", self.host_refs[0]), ["HOST_IS_LIVE", self.host_refs[0]])
            self.call(1, "host.declare_dead", self.host_refs[2])
            for vm in (stays, moves):
                self.assertEqual(self.call(0, "VM.get_power_state", vm), "Halted")
                self.assertEqual(self.call(0, "VM.get_resident_on", vm), "OpaqueRef:NULL")
            self.assertFalse(self.call(0, "host.get_enabled", self.host_refs[2]))
            self.call(1, "VM.start", moves, False, False)
            self.assertIn(self.call(0, "VM.get_resident_on", moves), self.host_refs[:2])
        finally:
            self.hosts[2].start()
        self.hosts[2].login(self.hosts[0].password)  # serving again
        # Back (it was not powered off after all): the domain of the VM now running elsewhere is
        # destroyed there, the other's guest, still running, is adopted (never killed); the
        # operator enables the host again.
        self.eventually(lambda: self.assertEqual(self.call(0, "host_metrics.get_live",
                                                           self.call(0, "host.get_metrics", self.host_refs[2])), True), 30)
        self.assertIn(self.call(2, "VM.get_resident_on", moves), self.host_refs[:2])
        self.assertEqual(self.call(2, "VM.get_power_state", moves), "Running")
        self.assertEqual(self.call(1, "VM.get_resident_on", stays), self.host_refs[2])
        self.assertEqual(self.call(1, "VM.get_power_state", stays), "Running")
        self.assertEqual(self.free_memory(2), full - GIB, "one guest left on it, not two")
        self.call(0, "host.enable", self.host_refs[2])
        for vm in (stays, moves):
            self.call(0, "VM.hard_shutdown", vm)


def finished_on(test, i, task):
    """The task's status once it is settled (success, failure or cancelled)."""
    status = test.call(i, "task.get_status", task)
    test.assertNotIn(status, ("pending", "cancelling"))
    return status


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
