#!/usr/bin/env python3
"""The pool's emergency operations on real xapid processes on 127.0.0.2-4: a pool of three loses
its master and another host (kill -9), the survivor cannot commit; pool.emergency_transition_to_master
(through a slave-local session, which needs no commit) makes it the master of everything it held;
the two hosts start again, pool.recover_slaves brings them back as its members with its database,
and the pool takes writes through every host. Refused or idle on the way: a transition while the
master answers (OPERATION_NOT_ALLOWED), a reset to the master a host follows already (nothing to
do), pool.emergency_reset_master to a host's own address (HOST_ITS_OWN_SLAVE)."""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xapid_support import answers  # noqa: E402  (takes PATH_TO_XAPID from argv)
from pool_support import three_hosts, vm_record  # noqa: E402


class emergency(three_hosts, answers, unittest.TestCase):
    JOINED = True

    def master_address(self, h, session):
        p = h.proxy()
        master = self.ok(p.pool.get_master(session, self.ok(p.pool.get_all(session))[0]))
        return self.ok(p.host.get_address(session, master))

    def local_session(self, h):
        r = h.proxy().session.slave_local_login_with_password("root", self.hosts[0].password)
        return self.ok(r)

    def eventually(self, what, limit, step=0.2):
        """The first true value of what() within `limit` seconds, or None."""
        until = time.time() + limit
        while True:
            try:
                value = what()
            except (OSError, AssertionError):  # a host restarting, or not yet what it will be
                value = None
            if value or time.time() > until:
                return value
            time.sleep(step)

    def test_the_survivor_of_a_lost_majority_becomes_master_and_the_others_come_back(self):
        password = self.hosts[0].password
        master, other, survivor = self.hosts
        s = survivor.login(password)
        self.assertEqual(self.master_address(survivor, s), master.address)
        before = [self.ok(master.proxy().VM.create(master.login(password), vm_record(f"before-{i}"))) for i in range(20)]
        # Every VM has reached the survivor before the majority goes.
        self.assertTrue(self.eventually(
            lambda: all(survivor.proxy().VM.get_name_label(s, ref)["Status"] == "Success" for ref in before), 10))

        # While the master answers, a member is not made master by force (beyond xapi, which would
        # split the pool): the master's role is handed over instead.
        refused = self.err(survivor.proxy().pool.emergency_transition_to_master(self.local_session(survivor)))
        self.assertEqual(refused[0], "OPERATION_NOT_ALLOWED", refused)
        # The master there is the one it follows already: nothing to do.
        self.ok(survivor.proxy().pool.emergency_reset_master(s, f"{master.address}:{master.port}"))

        # The master and another host die: whichever hosts vote, the survivor has no majority.
        master.kill()
        other.kill()
        r = survivor.proxy().VM.create(s, vm_record("without a majority"))
        self.assertEqual(r["Status"], "Failure", "a write without a majority fails")

        # A slave-local session needs no commit: root's credentials, kept in memory.
        local = self.local_session(survivor)
        bad = survivor.proxy().session.slave_local_login_with_password("root", "wrong")
        self.assertEqual(self.err(bad), ["SESSION_AUTHENTICATION_FAILED"])
        started = time.time()
        self.ok(survivor.proxy().pool.emergency_transition_to_master(local))

        # It restarts as the pool's only voter: it answers writes, and pool.master names it.
        def as_master():
            sess = survivor.login(password, limit=2)
            p = survivor.proxy()
            if self.master_address(survivor, sess) != survivor.address:
                return None
            r = p.VM.create(sess, vm_record("the first write of the emergency master"))
            return sess if r["Status"] == "Success" else None
        s = self.eventually(as_master, 60)
        self.assertIsNotNone(s, f"the survivor took no write within 60 s; its log ends:\n{survivor.log_tail()}")
        print(f"emergency_transition_to_master: first write accepted {time.time() - started:.2f} s after the call", flush=True)
        p = survivor.proxy()
        for ref in before:
            self.assertEqual(self.ok(p.VM.get_name_label(s, ref)).split("-")[0], "before")
        # Asked again on the master, it is nothing to do.
        self.ok(p.pool.emergency_transition_to_master(s))
        self.assertEqual(self.err(p.pool.emergency_reset_master(s, f"{survivor.address}:{survivor.port}")), ["HOST_ITS_OWN_SLAVE"])
        self.assertEqual(self.err(p.pool.emergency_reset_master(s, survivor.address)), ["HOST_ITS_OWN_SLAVE"])
        during = [self.ok(p.VM.create(s, vm_record(f"during-{i}"))) for i in range(10)]

        # The dead hosts start again: two of the old three voters, they elect each other and
        # serve as the old pool — which must not depose the new master, whose log no longer
        # admits them. Called back, they come back wiped as its members.
        starters = [threading.Thread(target=h.start, kwargs={"limit": 30}, daemon=True) for h in (master, other)]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        self.assertTrue(master.alive() and other.alive())
        for i in range(3):
            time.sleep(1)
            self.ok(p.VM.create(s, vm_record(f"beside the old pool {i}")))
        self.assertEqual(self.master_address(survivor, s), survivor.address)
        started = time.time()
        recovered = set()

        def recover():
            recovered.update(self.ok(survivor.proxy().pool.recover_slaves(s)))
            return len(recovered) == 2
        self.assertTrue(self.eventually(recover, 60, step=1), f"recovered {recovered}")
        for h in (master, other):
            # (A login may reach the host just before it restarts: each try logs in again.)
            def caught_up():
                sess, q = h.login(password, limit=2), h.proxy()
                return all(q.VM.get_name_label(sess, ref)["Status"] == "Success" for ref in before + during) and \
                    self.master_address(h, sess) == survivor.address
            self.assertTrue(self.eventually(caught_up, 60, step=0.5),
                            f"{h.address} did not come back with the emergency's writes; its log ends:\n{h.log_tail()}")
        print(f"recover_slaves: both hosts back with the survivor's database {time.time() - started:.2f} s after the first call",
              flush=True)
        # The pool works: a write through each host, read back on every host.
        sessions = {h.address: h.login(password) for h in self.hosts}
        written = [self.ok(h.proxy().VM.create(sessions[h.address], vm_record(f"after, through {h.address}"))) for h in self.hosts]
        for h in self.hosts:
            self.assertTrue(self.eventually(
                lambda: all(h.proxy().VM.get_name_label(sessions[h.address], ref)["Status"] == "Success" for ref in written), 10))
            self.assertEqual(len(self.ok(h.proxy().host.get_all(sessions[h.address]))), 3)
        # Nothing more to recover.
        self.assertEqual(self.ok(survivor.proxy().pool.recover_slaves(sessions[survivor.address])), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
