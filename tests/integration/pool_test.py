#!/usr/bin/env python3
"""A pool of real xapid processes on 127.0.0.2-4 (the same ports for all, as deploy/pool-up
starts them): joins that must be refused leave both hosts as they were; two hosts join; every
member holds the pool's database and takes writes (forwarded to the master); a client watching
the master's events sees the hosts arrive; the master is killed (kill -9) while clients write, a
new master is elected and every acknowledged write is on every remaining member.
Seeded: XAPID_TEST_SEED replays the writers' choices."""
import os
import random
import re
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xapid_support import answers  # noqa: E402  (takes PATH_TO_XAPID from argv)
from pool_support import three_hosts, vm_record  # noqa: E402

SEED = int(os.environ.get("XAPID_TEST_SEED", random.randrange(1 << 32)))
print(f"seed {SEED} (XAPID_TEST_SEED to repeat)", flush=True)


class pool_of_three(three_hosts, answers, unittest.TestCase):
    PORT_SEED = SEED
    EXTRA_ARGS = ("--host-dead-seconds", "4")  # a member down 4 s is not live: host.destroy may be tried

    def hosts_of(self, h, session):
        return self.ok(h.proxy().host.get_all(session))

    def test_1_joins_that_fail_leave_both_hosts_as_they_were(self):
        master, joiner = self.hosts[0], self.hosts[1]
        ms, js = master.login(), joiner.login()
        j = joiner.proxy()
        started = time.time()
        self.assertEqual(self.err(j.pool.join(js, f"{master.address}:{master.port}", "root", "wrong")),
                         ["SESSION_AUTHENTICATION_FAILED"])
        self.assertGreaterEqual(time.time() - started, 1.9, "a wrong password costs a login's failure delay")
        self.assertEqual(self.err(j.pool.join(js, f"127.0.0.9:{master.port}", "root", master.password)),
                         ["JOINING_HOST_CONNECTION_FAILED"])
        # Joining itself: its own host is already in the "pool" it asks.
        self.assertEqual(self.err(j.pool.join(js, f"{joiner.address}:{joiner.port}", "root", joiner.password))[0],
                         "OPERATION_NOT_ALLOWED")
        self.assertEqual(len(self.hosts_of(master, ms)), 1)
        self.assertEqual(len(self.hosts_of(joiner, js)), 1)
        joiner.login()  # still its own password: nothing of the pool reached it

    def test_2_two_hosts_join_and_every_member_serves_the_pool(self):
        master = self.hosts[0]
        ms = master.login()
        m = master.proxy()
        # A client watching the master's events sees the hosts arrive.
        token = self.ok(m.event.__getattr__("from")(ms, ["host"], "", 0.1))["token"]
        for joiner in self.hosts[1:]:
            js = joiner.login()
            self.ok(joiner.proxy().pool.join(js, f"{master.address}:{master.port}", "root", master.password))
        seen = set()
        until = time.time() + 60
        while len(seen) < 2 and time.time() < until:
            got = self.ok(m.event.__getattr__("from")(ms, ["host"], token, 5.0))
            token = got["token"]
            seen |= {e["ref"] for e in got["events"] if e["operation"] == "add"}
        self.assertEqual(len(seen), 2, "the master's events show both joined hosts")

        pool_ref = self.ok(m.pool.get_all(ms))[0]
        master_host = self.ok(m.pool.get_master(ms, pool_ref))
        # A host's place in the pool is the pool's own: no call changes it (and no call makes a host).
        other_config = self.ok(m.host.get_other_config(ms, master_host))
        reserved = sorted(k for k in other_config if k.startswith("xapid-pool-"))
        self.assertEqual(len(reserved), 4, other_config)
        for answer in (m.host.add_to_other_config(ms, master_host, "xapid-pool-raft-id", "1"),
                       m.host.remove_from_other_config(ms, master_host, reserved[0]),
                       m.host.set_other_config(ms, master_host, {}),
                       m.host.set_other_config(ms, master_host, dict(other_config, **{reserved[0]: "x"}))):
            self.assertEqual(self.err(answer)[0], "OPERATION_NOT_ALLOWED")
        self.ok(m.host.set_other_config(ms, master_host, dict(other_config, operator_note="kept")))
        self.assertEqual(self.ok(m.host.get_other_config(ms, master_host))["xapid-pool-raft-id"],
                         other_config["xapid-pool-raft-id"])
        for joiner in self.hosts[1:]:
            # It restarted as a member: the pool's root password, the pool's database.
            js = joiner.login(master.password, limit=120)
            j = joiner.proxy()
            self.assertEqual(len(self.hosts_of(joiner, js)), 3)
            self.assertEqual(self.ok(j.pool.get_all(js)), [pool_ref])
            self.assertEqual(self.ok(j.pool.get_master(js, pool_ref)), master_host)
            # A write on a member goes to the master and is read back at once, there and here.
            vm = self.ok(j.VM.create(js, vm_record(f"made on {joiner.address}")))
            self.assertEqual(self.ok(j.VM.get_name_label(js, vm)), f"made on {joiner.address}")
            self.assertEqual(self.ok(m.VM.get_name_label(ms, vm)), f"made on {joiner.address}")
        # The master's /metrics tells how far each member's copy of the log is behind.
        with urllib.request.urlopen(f"{master.url}/metrics?session_id={ms}", timeout=30) as r:
            lags = re.findall(r'^xapid_raft_replication_lag_entries\{member_id="\d+",address="[^"]+"\} (\d+)', r.read().decode(), re.M)
        self.assertEqual(len(lags), 2, "a lag for each member")
        self.assertTrue(all(int(lag) < 1000 for lag in lags), lags)
        # What one host acknowledged, every other host serves to the very next call (a member
        # first learns the master's applied index): never HANDLE_INVALID from a replica a moment
        # behind. A session is the pool's: made on the master, it serves on every host, and a
        # logout through any host ends it everywhere.
        conns = [(h, h.json()) for h in self.hosts]
        login = conns[0][1].call("session.login_with_password", "root", master.password, "1.0", "fence")
        self.assertEqual(login["Status"], "Success", login)
        pool_session = login["Value"]
        for i in range(150):
            (a, ca), (b, cb) = conns[i % 3], conns[(i % 3 + 1 + (i // 3) % 2) % 3]  # every ordered pair
            vm = ca.call("VM.create", pool_session, vm_record(f"fence {i}"))
            self.assertEqual(vm["Status"], "Success", vm)
            renamed = cb.call("VM.set_name_label", pool_session, vm["Value"], f"fence {i} via {b.address}")
            self.assertEqual(renamed["Status"], "Success", (i, a.address, b.address, renamed))
            read = ca.call("VM.get_name_label", pool_session, vm["Value"])
            self.assertEqual(read.get("Value"), f"fence {i} via {b.address}", (i, a.address, read))
        # Over the network a member sends a login to its master (xapi's HOST_IS_SLAVE, which
        # XenAPI clients follow), before looking at the password; a slave-local session is the
        # member's alone.
        for h, c in conns[1:]:
            for password in (master.password, "wrong"):
                self.assertEqual(c.call("session.login_with_password", "root", password, "1.0", "t")["ErrorDescription"],
                                 ["HOST_IS_SLAVE", master.address])
            local = h.login(master.password)
            self.assertEqual(c.call("VM.get_all", local)["Status"], "Success")
            self.assertEqual(conns[0][1].call("VM.get_all", local)["ErrorDescription"], ["SESSION_INVALID", local])
        self.assertEqual(cb.call("session.logout", pool_session)["Status"], "Success")
        for _, c in conns:
            self.assertEqual(c.call("VM.get_all", pool_session)["ErrorDescription"], ["SESSION_INVALID", pool_session])

    def test_3_the_master_killed_while_clients_write_loses_no_acknowledged_write(self):
        master, members = self.hosts[0], self.hosts[1:]
        rng = random.Random(SEED)
        sessions = {h.address: h.login(self.hosts[0].password) for h in self.hosts}
        # The members become voters (the master promotes them): wait until a majority can elect.
        time.sleep(3)
        acked, lock, stop = [], threading.Lock(), threading.Event()

        def writer(n):
            h = rng.choice(self.hosts)
            p = h.proxy()
            i = 0
            while not stop.is_set():
                i += 1
                name = f"w{n}-{i}"
                try:
                    r = p.VM.create(sessions[h.address], vm_record(name))
                except (OSError, xmlrpc.client.ProtocolError):
                    h = rng.choice(members)
                    p = h.proxy()
                    continue
                if r["Status"] == "Success":
                    with lock:
                        acked.append(r["Value"])
                else:
                    time.sleep(0.05)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.0 + rng.random())
        master.kill()
        killed_at = time.time()
        # A member takes writes again once a new master is elected.
        survivor = members[0]
        s = survivor.proxy()
        first = None
        while time.time() - killed_at < 30:
            r = s.VM.create(sessions[survivor.address], vm_record("after the failover"))
            if r["Status"] == "Success":
                first = time.time() - killed_at
                break
            time.sleep(0.1)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join()
        self.assertIsNotNone(first, "no write was accepted within 30 s of the master's death")
        print(f"failover: first write accepted {first:.2f} s after kill -9 of the master; {len(acked)} writes acknowledged",
              flush=True)
        for h in members:
            p, sess = h.proxy(), sessions[h.address]
            until = time.time() + 10
            while time.time() < until:
                missing = [ref for ref in acked if p.VM.get_name_label(sess, ref)["Status"] != "Success"]
                if not missing:
                    break
                time.sleep(0.2)
            self.assertEqual(missing, [], f"acknowledged writes missing on {h.address}")
            pool_ref = self.ok(p.pool.get_all(sess))[0]
            new_master = self.ok(p.pool.get_master(sess, pool_ref))
            self.assertIn(self.ok(p.host.get_address(sess, new_master)), [m.address for m in members])

    def test_4_the_whole_pool_stopped_and_started_again_elects_a_master_and_takes_writes(self):
        master = self.hosts[0]
        master.start()  # killed above: it comes back as a member and catches up
        for h in self.hosts:
            h.stop()
        for h in self.hosts:
            h.proc = None
        # All start at once: each waits (in its start-up) for a master to be elected and reachable.
        starters = [threading.Thread(target=h.start) for h in self.hosts]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        for h in self.hosts:
            s = h.login(master.password)
            self.assertEqual(len(self.hosts_of(h, s)), 3)
            vm = self.ok(h.proxy().VM.create(s, vm_record(f"after the restart, on {h.address}")))
            self.assertEqual(self.ok(h.proxy().VM.get_name_label(s, vm)), f"after the restart, on {h.address}")

    def master_of(self, h, session):
        p = h.proxy()
        return self.ok(p.pool.get_master(session, self.ok(p.pool.get_all(session))[0]))

    def host_at(self, h, session, address):
        p = h.proxy()
        return next(ref for ref in self.hosts_of(h, session) if self.ok(p.host.get_address(session, ref)) == address)

    def test_5_the_master_role_handed_over_and_back(self):
        sessions = {h.address: h.login(self.hosts[0].password) for h in self.hosts}
        h0 = self.hosts[0]
        master_ref = self.master_of(h0, sessions[h0.address])
        master_address = self.ok(h0.proxy().host.get_address(sessions[h0.address], master_ref))
        master = next(h for h in self.hosts if h.address == master_address)
        member = next(h for h in self.hosts if h is not master)
        ms, m = sessions[master.address], master.proxy()
        target = self.host_at(master, ms, member.address)
        # Asked of a member: it names the master, as any master-only call on a member does.
        self.assertEqual(self.err(member.proxy().pool.designate_new_master(sessions[member.address], target)),
                         ["HOST_IS_SLAVE", master.address])
        self.assertEqual(self.err(m.pool.designate_new_master(ms, "OpaqueRef:nonsense"))[0], "HANDLE_INVALID")
        self.ok(m.pool.designate_new_master(ms, self.master_of(master, ms)))  # itself: nothing to do
        for new_master, old_master in ((member, master), (master, member)):
            started = time.time()
            self.ok(old_master.proxy().pool.designate_new_master(sessions[old_master.address],
                                                                 self.host_at(old_master, sessions[old_master.address],
                                                                              new_master.address)))
            print(f"designate_new_master {old_master.address} -> {new_master.address}: {time.time() - started:.2f} s",
                  flush=True)
            for h in self.hosts:
                sess = sessions[h.address]
                until = time.time() + 10
                while self.master_of(h, sess) != self.host_at(h, sess, new_master.address) and time.time() < until:
                    time.sleep(0.1)
                self.assertEqual(self.master_of(h, sess), self.host_at(h, sess, new_master.address), h.address)
                vm = self.ok(h.proxy().VM.create(sess, vm_record(f"master {new_master.address}, on {h.address}")))
                self.assertEqual(self.ok(new_master.proxy().VM.get_name_label(sessions[new_master.address], vm)),
                                 f"master {new_master.address}, on {h.address}")
            # The new master tells the pool it took over (xapi's POOL_MASTER_TRANSITION, empty body).
            ns, nm = sessions[new_master.address], new_master.proxy()
            new_uuid = self.ok(nm.host.get_uuid(ns, self.host_at(new_master, ns, new_master.address)))
            wait_for_message = time.time() + 10
            while time.time() < wait_for_message:
                told = [msg for msg in self.ok(nm.message.get_all_records_where(ns, 'field "name" = "POOL_MASTER_TRANSITION"')).values()
                        if msg["obj_uuid"] == new_uuid]
                if told:
                    break
                time.sleep(0.2)
            self.assertTrue(told, "no POOL_MASTER_TRANSITION for the new master")
            self.assertEqual((told[-1]["cls"], told[-1]["priority"], told[-1]["body"]), ("Host", "4", ""))
            # Once synced, a write on the master is on every member at once.
            vm = self.ok(new_master.proxy().VM.create(sessions[new_master.address], vm_record("synced")))
            self.ok(new_master.proxy().pool.sync_database(sessions[new_master.address]))
            for h in self.hosts:
                self.assertEqual(self.ok(h.proxy().VM.get_name_label(sessions[h.address], vm)), "synced", h.address)
            self.assertEqual(self.err(old_master.proxy().pool.sync_database(sessions[old_master.address])),
                             ["HOST_IS_SLAVE", new_master.address])
            # The old master is a member now: it names the new one.
            self.assertEqual(self.err(old_master.proxy().pool.eject(sessions[old_master.address], "OpaqueRef:x"))[0],
                             "HOST_IS_SLAVE")

    def test_6_a_host_ejected_leaves_the_pool_and_can_join_again(self):
        sessions = {h.address: h.login(self.hosts[0].password) for h in self.hosts}
        h0 = self.hosts[0]
        master_address = self.ok(h0.proxy().host.get_address(sessions[h0.address], self.master_of(h0, sessions[h0.address])))
        master = next(h for h in self.hosts if h.address == master_address)
        ms, m = sessions[master.address], master.proxy()
        leaving = next(h for h in reversed(self.hosts) if h is not master)
        ls, lp = sessions[leaving.address], leaving.proxy()
        leaving_ref = self.host_at(master, ms, leaving.address)
        leaving_uuid = self.ok(m.host.get_uuid(ms, leaving_ref))
        self.assertEqual(self.err(m.pool.eject(ms, self.master_of(master, ms)))[0], "HOST_CANNOT_DESTROY_SELF")
        # A VM running on it keeps it in the pool.
        vm = self.ok(lp.VM.create(ls, vm_record("runs on the leaving host")))
        self.ok(lp.VM.start_on(ls, vm, leaving_ref, False, False))
        self.assertEqual(self.ok(m.VM.get_resident_on(ms, vm)), leaving_ref)
        self.assertEqual(self.err(m.pool.eject(ms, leaving_ref)), ["OPERATION_NOT_ALLOWED", "VM resident on host"])
        self.ok(lp.VM.hard_shutdown(ls, vm))
        self.ok(m.VM.set_affinity(ms, vm, leaving_ref))
        started = time.time()
        self.ok(m.pool.eject(ms, leaving_ref))
        print(f"pool.eject: {time.time() - started:.2f} s", flush=True)
        for h in self.hosts:
            if h is leaving:
                continue
            sess = sessions[h.address]
            self.assertEqual(len(self.hosts_of(h, sess)), 2, h.address)
            # The halted VM stays with the pool; its affinity to the host that left does not.
            self.assertEqual(self.ok(h.proxy().VM.get_affinity(sess, vm)), "OpaqueRef:NULL")
            pifs = self.ok(h.proxy().PIF.get_all_records(sess))
            self.assertFalse([r for r in pifs.values() if r["host"] == leaving_ref], "its PIFs left with it")
        # It restarted as a pool of its own: the same host (uuid), the pool's root password kept.
        ls = leaving.login_once_it_has_hosts(self.hosts[0].password, 1)
        lp = leaving.proxy()
        own_hosts = self.hosts_of(leaving, ls)
        self.assertEqual(len(own_hosts), 1)
        self.assertEqual(self.ok(lp.host.get_uuid(ls, own_hosts[0])), leaving_uuid)
        self.assertNotEqual(self.ok(lp.pool.get_all(ls)), self.ok(m.pool.get_all(ms)))
        self.ok(lp.VM.create(ls, vm_record("in a pool of its own")))
        # Meanwhile the pool gets a shared SR (a directory every host sees): plugged on its two hosts.
        # (A pool session: the master sends each host's plug to it, which a slave-local one cannot.)
        ps = self.ok(m.session.login_with_password("root", self.hosts[0].password, "1.0", "pool test"))
        where = tempfile.mkdtemp(dir=self.root.name)
        shared = self.ok(m.SR.create(ps, self.master_of(master, ps), {"location": where}, "0", "shared", "", "file",
                                     "user", True, {}))
        self.assertEqual(len(self.ok(m.SR.get_PBDs(ms, shared))), 2)
        # ... and it may join again, and reaches the pool's shared SR: its PBD made and plugged.
        self.ok(lp.pool.join(ls, f"{master.address}:{master.port}", "root", self.hosts[0].password))
        ls = leaving.login_once_it_has_hosts(self.hosts[0].password, 3)
        self.assertEqual(len(self.hosts_of(leaving, ls)), 3)
        self.assertEqual(len(self.hosts_of(master, ms)), 3)
        self.ok(leaving.proxy().VM.create(ls, vm_record("back in the pool")))
        joined = self.host_at(master, ms, leaving.address)
        theirs = [p for p in self.ok(m.SR.get_PBDs(ms, shared)) if self.ok(m.PBD.get_host(ms, p)) == joined]
        self.assertEqual(len(theirs), 1)
        until = time.time() + 30
        while not self.ok(m.PBD.get_currently_attached(ms, theirs[0])) and time.time() < until:
            time.sleep(0.2)
        self.assertTrue(self.ok(m.PBD.get_currently_attached(ms, theirs[0])))

    def test_7_a_host_down_for_good_is_destroyed_and_comes_back_alone(self):
        sessions = {h.address: h.login(self.hosts[0].password) for h in self.hosts}
        h0 = self.hosts[0]
        master_address = self.ok(h0.proxy().host.get_address(sessions[h0.address], self.master_of(h0, sessions[h0.address])))
        master = next(h for h in self.hosts if h.address == master_address)
        ms, m = sessions[master.address], master.proxy()
        gone = next(h for h in self.hosts if h is not master)
        gone_ref = self.host_at(master, ms, gone.address)
        gone_uuid = self.ok(m.host.get_uuid(ms, gone_ref))
        metrics = self.ok(m.host.get_metrics(ms, gone_ref))
        self.assertTrue(self.ok(m.host_metrics.get_live(ms, metrics)))
        self.assertEqual(self.err(m.host.destroy(ms, gone_ref)), ["HOST_IS_LIVE", gone_ref])
        gone.stop()
        until = time.time() + 30
        while self.ok(m.host_metrics.get_live(ms, metrics)) and time.time() < until:
            time.sleep(0.5)
        self.assertFalse(self.ok(m.host_metrics.get_live(ms, metrics)), "a member down 4 s is not live")
        # Through the other member: the call goes on to the master, whose rows these are (a
        # member's own writes may not remove a member's host).
        other = next(h for h in self.hosts if h is not master and h is not gone)
        pool_session = self.ok(m.session.login_with_password("root", self.hosts[0].password, "1.0", "pool_test"))
        self.ok(other.proxy().host.destroy(pool_session, gone_ref))
        self.assertEqual(len(self.hosts_of(master, ms)), 2)
        # Started again, it finds the others no longer know it, and starts again alone.
        started = time.time()
        gone.start()
        gs = gone.login_once_it_has_hosts(self.hosts[0].password, 1)
        print(f"a destroyed host back alone {time.time() - started:.1f} s after its start", flush=True)
        own = self.hosts_of(gone, gs)
        self.assertEqual(self.ok(gone.proxy().host.get_uuid(gs, own[0])), gone_uuid)
        self.ok(gone.proxy().pool.join(gs, f"{master.address}:{master.port}", "root", self.hosts[0].password))
        gs = gone.login_once_it_has_hosts(self.hosts[0].password, 3)
        self.assertEqual(len(self.hosts_of(master, ms)), 3)

    def test_8_roots_password_changed_through_any_host_is_the_whole_pools(self):
        """session.change_password through a member goes to the master, which commits the new
        hash through the pool's log: acknowledged, it logs in on every host and the old one on
        none — even when the master is killed the moment it answered (the others elect a new one
        that has it), and on a host that was down, once it is back."""
        old, new = self.hosts[0].password, "a-new-root-password"

        def master_index():
            s0 = next(h for h in self.hosts if h.alive()).login(old if not changed else new)
            live = next(h for h in self.hosts if h.alive())
            address = self.ok(live.proxy().host.get_address(s0, self.master_of(live, s0)))
            return next(i for i, h in enumerate(self.hosts) if h.address == address)

        def local_login(h, password):
            with h.proxy() as p:
                return p.session.slave_local_login_with_password("root", password)

        def takes(hosts, password, refuses, limit):
            until = time.time() + limit
            for h in hosts:
                while True:
                    try:
                        if local_login(h, password)["Status"] == "Success":
                            break
                    except OSError:
                        pass
                    self.assertLess(time.time(), until, f"{h.address} does not take the new password")
                    time.sleep(0.5)
                self.assertEqual(self.err(local_login(h, refuses)), ["SESSION_AUTHENTICATION_FAILED"], h.address)

        def change(through, from_, to):
            with self.hosts[master_index()].proxy() as p:
                pool_session = self.ok(p.session.login_with_password("root", from_))
            self.ok(self.hosts[through].proxy().session.change_password(pool_session, from_, to))

        changed = False
        m = master_index()
        through, other = [i for i in range(3) if i != m]
        change(through, old, new)
        changed = True
        self.hosts[m].kill()  # the moment it answered: the change is on a majority already
        takes([self.hosts[through], self.hosts[other]], new, old, 30)
        self.hosts[m].start()
        takes([self.hosts[m]], new, old, 30)
        # A host down while it changes back takes it when it starts.
        m = master_index()
        away = next(i for i in range(3) if i != m)
        self.hosts[away].stop()
        change(m, new, old)
        changed = False
        takes([self.hosts[m]], old, new, 15)
        self.hosts[away].start()
        takes(self.hosts, old, new, 30)

if __name__ == "__main__":
    unittest.main(verbosity=2)
