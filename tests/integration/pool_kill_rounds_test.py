#!/usr/bin/env python3
"""Kill rounds (issue 16): a pool of three real xapid processes on 127.0.0.2-4 while writers,
through every host, create VMs, rename and destroy their own. Each round kill -9's a host (the
master half the time, found through pool.master), keeps writing, starts it again, waits until
the pool has a master and the host serves, then, with the writers paused, checks every host:
every acknowledged write is there (a destroy's VM is gone), nothing refused is there, and the
hosts' VM, host and pool tables are identical (sets compared as sets). One round kills two hosts
at once: while the majority is gone every write fails with an error within a bounded time, and
none started then is acknowledged; then both come back. After the last round no VM keeps an
operation (one a dead host left is cleared by the master's sweep), and the three hosts, stopped,
hold byte-identical databases (each read back as the pool's checkpoint bytes by xapid
--export-checkpoint). Printed, not checked (not yet right, see ARCHITECTURE.md, kill rounds):
writes refused as HANDLE_INVALID by a member whose replica lags an acknowledged create.

Everything random (the port, the rounds, each writer's choices) comes from one random.Random:
XAPID_TEST_SEED replays it (the timing, and so how many writes each round makes, is the
machine's). XAPID_KILL_ROUNDS rounds (default 20), XAPID_KILL_WRITERS writer threads (default 6).

Usage: pool_kill_rounds_test.py PATH_TO_XAPID"""
import collections
import http.client
import itertools
import os
import random
import re
import statistics
import sys
import threading
import time
import traceback
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xapid_support import answers  # noqa: E402  (takes PATH_TO_XAPID from argv)
from pool_support import PASSWORDS, checkpoints, stop_all, three_hosts, vm_record  # noqa: E402

SEED = int(os.environ.get("XAPID_TEST_SEED", random.randrange(1 << 32)))
ROUNDS = int(os.environ.get("XAPID_KILL_ROUNDS", 20))
WRITERS = int(os.environ.get("XAPID_KILL_WRITERS", 6))
print(f"seed {SEED} (XAPID_TEST_SEED to repeat), {ROUNDS} rounds, {WRITERS} writers", flush=True)

POOL_PASSWORD = PASSWORDS[0]
PREFIX = "kr-"  # every VM the test makes is named PREFIX...
# A call that takes longer than this is a hang: the daemon bounds its own waits well below it
# (3 s for a master to be elected, 5 s for an outcome in doubt, 30 s for a forwarded write).
CALL_TIMEOUT = 60
# While the majority is gone, a write must fail within this: the daemon waits 3 s for a master,
# or 5 s more for the outcome of a write its master had appended (seen: at most 6.4 s).
NO_MAJORITY_ANSWER_LIMIT = 15
IN_DOUBT = "may or may not"  # what the daemon says when a write's outcome is unknown


def outcome_of(answer):
    """'applied', 'refused' (certainly not applied) or 'unknown', from a call's answer."""
    if answer["Status"] == "Success":
        return "applied"
    return "unknown" if any(IN_DOUBT in str(d) for d in answer["ErrorDescription"]) else "refused"


def error_kind(answer):
    """An error's code and message with the numbers and addresses taken out, for the summary."""
    text = " ".join(str(d) for d in answer["ErrorDescription"][:2])
    return re.sub(r"\d+(\.\d+)*(:\d+)?", "N", re.sub(r"OpaqueRef:[0-9a-f-]+", "OpaqueRef:...", text))[:140]


class sessions:
    """One thread's sessions on the pool's hosts: made on first use, and again after a host's
    restart ended them (a host clears its own sessions when it starts)."""

    def __init__(self):
        self.by_host = {}

    def call(self, h, method, *params):
        """The answer of `method(session, *params)` on host h; a failed login is the answer.
        Raises OSError or http.client.HTTPException when the host cannot be reached."""
        api = h.json(CALL_TIMEOUT)
        if h.i not in self.by_host:
            login = api.call("session.slave_local_login_with_password", "root", POOL_PASSWORD)
            if login["Status"] != "Success":
                return login
            self.by_host[h.i] = login["Value"]
        answer = api.call(method, self.by_host[h.i], *params)
        if answer["Status"] == "Failure" and answer["ErrorDescription"][0] == "SESSION_INVALID":
            del self.by_host[h.i]
        return answer


class ledger:
    """Every write the test made and what its answer says about its effect: what each host must
    hold, what it may hold, and what it must not."""

    def __init__(self):
        self.lock = threading.Lock()
        self.names = {}            # VM ref -> the names it may have (one, unless a rename's outcome is unknown)
        self.destroyed = set()     # refs of acknowledged destroys
        self.unsure = {}           # ref -> names, for a destroy whose outcome is unknown: gone, or one of them
        self.unsure_creates = set()  # names of creates whose outcome is unknown
        self.counts = collections.Counter()  # (operation, outcome)
        self.errors = collections.Counter()
        self.hangs = []
        self.writer_failures = []
        self.no_majority_since = None  # while set, no write started after it may be acknowledged
        self.acknowledged_at = {}  # VM ref -> when its create was acknowledged
        # Writes to a VM whose create was acknowledged (through another host) refused as
        # HANDLE_INVALID: how long after that acknowledgement each was sent.
        self.unknown_to_a_member = []
        self.acknowledged_without_majority = []

    def record(self, op, started, answer, vm=None, name=None):
        """Records a write's answer (or None when the call raised: outcome unknown); returns its outcome."""
        outcome = outcome_of(answer) if answer else "unknown"
        with self.lock:
            self.counts[op, outcome] += 1
            if answer and answer["Status"] == "Failure":
                self.errors[error_kind(answer)] += 1
            if outcome == "applied" and self.no_majority_since is not None and started > self.no_majority_since:
                self.acknowledged_without_majority.append((op, vm or answer["Value"], name))
            if answer and answer["Status"] == "Failure" and answer["ErrorDescription"][0] == "HANDLE_INVALID" and vm:
                self.unknown_to_a_member.append(started - self.acknowledged_at[vm])
            if op == "create":
                if outcome == "applied":
                    self.names[answer["Value"]] = {name}
                    self.acknowledged_at[answer["Value"]] = time.time()
                elif outcome == "unknown":
                    self.unsure_creates.add(name)
            elif op == "rename":
                if outcome == "applied":
                    self.names[vm] = {name}
                elif outcome == "unknown":
                    self.names[vm].add(name)
            elif op == "destroy":
                if outcome == "applied":
                    self.destroyed.add(vm)
                    del self.names[vm]
                elif outcome == "unknown":
                    self.unsure[vm] = self.names.pop(vm)
        return outcome

    def acknowledged(self):
        return sum(n for (_, outcome), n in self.counts.items() if outcome == "applied")

    def problems_in(self, vms, where):
        """What host `where`'s VM table (ref -> record) gets wrong; nothing, when it is right."""
        problems = []
        for ref, names in self.names.items():
            if ref not in vms:
                problems.append(f"{where}: acknowledged VM {ref} ({'/'.join(sorted(names))}) is missing")
            elif vms[ref]["name_label"] not in names:
                problems.append(f"{where}: VM {ref} is named {vms[ref]['name_label']!r}, acknowledged {sorted(names)}")
        problems += [f"{where}: VM {ref}, destroyed (acknowledged), is there" for ref in self.destroyed if ref in vms]
        seen = collections.Counter()
        for ref, record in vms.items():
            name = record["name_label"]
            if not name.startswith(PREFIX):
                continue
            seen[name] += 1
            if ref in self.names or ref in self.destroyed or (ref in self.unsure and name in self.unsure[ref]):
                continue
            if name not in self.unsure_creates:
                problems.append(f"{where}: VM {ref} named {name!r} was written by no acknowledged nor unsure call "
                                "(a refused write was applied)")
        problems += [f"{where}: {n} VMs are named {name!r} (one write applied {n} times)"
                     for name, n in seen.items() if n > 1]
        return problems


class gate:
    """Lets the writers write, or holds them (close returns once none is inside a call)."""

    def __init__(self):
        self.cv = threading.Condition()
        self.is_open, self.inside, self.stopped = True, 0, False

    def enter(self):
        """Whether to write (then `leave` after), once the gate is open; False once stopped."""
        with self.cv:
            while not self.is_open and not self.stopped:
                self.cv.wait()
            if self.stopped:
                return False
            self.inside += 1
            return True

    def leave(self):
        with self.cv:
            self.inside -= 1
            self.cv.notify_all()

    def close(self):
        with self.cv:
            self.is_open = False
            while self.inside:
                self.cv.wait()

    def open(self):
        with self.cv:
            self.is_open = True
            self.cv.notify_all()

    def stop(self):
        with self.cv:
            self.stopped = True
            self.cv.notify_all()


def timed_call(book, who, h, op, method, *params, vm=None, name=None):
    """A write through host h, recorded in the ledger; returns (outcome, answer or None, seconds)."""
    started = time.time()
    answer = None
    try:
        answer = who.call(h, method, *params)
    except ConnectionRefusedError:
        # Never sent: the host is down.
        answer = {"Status": "Failure", "ErrorDescription": ["(connection refused)"]}
    except TimeoutError:
        with book.lock:
            book.hangs.append(f"{method} through {h.address} had no answer within {CALL_TIMEOUT} s")
    except (OSError, http.client.HTTPException, ValueError):
        pass  # the host died during the call: the write may or may not have been made
    seconds = time.time() - started
    return book.record(op, started, answer, vm=vm, name=name), answer, seconds


class writer(threading.Thread):
    """Writes through hosts it picks at random: creates VMs, renames and destroys its own. A VM
    whose last write has an unknown outcome is not written again (its state is not known)."""

    def __init__(self, n, seed, hosts, book, gate_):
        super().__init__(name=f"writer-{n}", daemon=True)
        self.n, self.rng, self.hosts, self.book, self.gate = n, random.Random(seed), hosts, book, gate_
        self.who = sessions()
        self.own = []  # VMs whose every write so far has a known outcome
        self.serial = 0

    def run(self):
        while self.gate.enter():
            try:
                self.write_once()
            except Exception:  # a bug of the test: reported at the end, not lost with the thread
                with self.book.lock:
                    self.book.writer_failures.append(traceback.format_exc())
                return
            finally:
                self.gate.leave()

    def write_once(self):
        h = self.rng.choice(self.hosts)
        self.serial += 1
        name = f"{PREFIX}{self.n}-{self.serial}"
        pick = self.rng.random()
        if self.own and pick < 0.25:
            vm = self.rng.choice(self.own)
            outcome, answer, _ = timed_call(self.book, self.who, h, "rename", "VM.set_name_label", vm, name, vm=vm, name=name)
            if outcome == "unknown":
                self.own.remove(vm)
        elif self.own and pick < 0.55:
            vm = self.own.pop(self.rng.randrange(len(self.own)))
            outcome, answer, _ = timed_call(self.book, self.who, h, "destroy", "VM.destroy", vm, vm=vm)
            if outcome == "refused":
                self.own.append(vm)
        else:
            outcome, answer, _ = timed_call(self.book, self.who, h, "create", "VM.create", vm_record(name), name=name)
            if outcome == "applied":
                self.own.append(answer["Value"])
        if outcome != "applied":
            time.sleep(0.05)  # a host down, or no master yet: do not spin


def spread(values):
    return f"min {min(values):.2f} / median {statistics.median(values):.2f} / max {max(values):.2f} s" if values else "-"


class kill_rounds(three_hosts, answers, unittest.TestCase):
    JOINED = True
    rng = random.Random(SEED)
    PORT_SEED = rng.randrange(1 << 32)

    def setUp(self):
        self.book = ledger()
        self.gate = gate()
        self.who = sessions()
        self.probes = itertools.count(1)  # shared by the restarts of a round that kills two hosts

    def fail_with_logs(self, message):
        tails = "\n".join(f"--- {h.address} ({'up' if h.alive() else 'down'}), the end of {h.dir}/xapid.log:\n"
                          f"{h.log_tail()}" for h in self.hosts)
        self.fail(f"{message} (seed {SEED})\n{tails}")

    def read(self, h, method, *params):
        """A read's value; raises AssertionError (with the answer) when it fails."""
        answer = self.who.call(h, method, *params)
        if answer["Status"] != "Success":
            raise AssertionError(f"{method} on {h.address}: {answer['ErrorDescription']}")
        return answer["Value"]

    def master(self, limit=60):
        """The host every live host names as pool.master, once they agree on a live one."""
        until = time.time() + limit
        while True:
            named = set()
            try:
                for h in self.hosts:
                    if h.alive():
                        ref = self.read(h, "pool.get_master", self.read(h, "pool.get_all")[0])
                        named.add(self.read(h, "host.get_address", ref))
            except (AssertionError, OSError, http.client.HTTPException, ValueError) as e:
                named.add(f"(no answer: {e})")
            live = {h.address: h for h in self.hosts if h.alive()}
            if len(named) == 1 and next(iter(named)) in live:
                return live[named.pop()]
            if time.time() > until:
                self.fail_with_logs(f"the live hosts do not agree on a live master within {limit} s: {sorted(named)}")
            time.sleep(0.1)

    def probe(self, h):
        """A create through h, recorded as the writers' are; returns (outcome, answer, seconds)."""
        name = f"{PREFIX}probe-{next(self.probes)}"
        return timed_call(self.book, self.who, h, "create", "VM.create", vm_record(name), name=name)

    def first_write_after(self, killed, survivors, limit=30):
        """Seconds from `killed` to the first write a survivor acknowledges (tried in turn)."""
        for attempt in range(1 << 30):
            outcome, _, _ = self.probe(survivors[attempt % len(survivors)])
            if outcome == "applied":
                return time.time() - killed
            if time.time() - killed > limit:
                self.fail_with_logs(f"no write accepted within {limit} s of the kill")
            time.sleep(0.05)

    def without_majority(self, killed, survivor, seconds):
        """Writes through the one host left for `seconds`: each must fail, within a bound."""
        answers_seen, slowest = collections.Counter(), 0.0
        while time.time() - killed < seconds:
            outcome, answer, took = self.probe(survivor)
            slowest = max(slowest, took)
            if outcome == "applied":
                self.fail_with_logs(f"{survivor.address} acknowledged a write without a majority: {answer}")
            if answer is None:
                self.fail_with_logs(f"a write through {survivor.address} without a majority had no answer")
            if took > NO_MAJORITY_ANSWER_LIMIT:
                self.fail_with_logs(f"a write through {survivor.address} without a majority took {took:.1f} s to fail")
            answers_seen[error_kind(answer)] += 1
            time.sleep(0.1)
        return answers_seen, slowest

    def restart(self, h):
        """Starts h again; returns (seconds to its xapid.ready, seconds until it serves: a login
        and a write through it acknowledged)."""
        started = time.time()
        h.start(limit=180)
        ready = time.time() - started
        while True:
            outcome, answer, _ = self.probe(h)
            if outcome == "applied":
                return ready, time.time() - started
            if time.time() - started > 180:
                self.fail_with_logs(f"{h.address} does not take writes 180 s after its restart: {answer}")
            time.sleep(0.05)

    def tables(self, h):
        """Host h's VM, host and pool tables, each set in an order of its own: a set has none (a
        derived one, as host.host_CPUs, is listed in the order of the replica's keyed hash,
        different in every process). Nothing else may differ between hosts."""
        return {cls: {ref: {f: sorted(v, key=repr) if isinstance(v, list) else v for f, v in record.items()}
                      for ref, record in self.read(h, f"{cls}.get_all_records").items()}
                for cls in ("VM", "host", "pool")}

    def check_replicas(self, limit=30):
        """Waits (the members apply a little after the master) until every host's VM, host and
        pool tables are the same, then checks them against the ledger; returns seconds waited."""
        started = time.time()
        while True:
            seen = {h.address: self.tables(h) for h in self.hosts}
            first = self.hosts[0].address
            differences = [describe_difference(first, seen[first], a, t) for a, t in seen.items() if t != seen[first]]
            if not differences:
                break
            if time.time() - started > limit:
                self.fail_with_logs(f"the hosts' tables still differ {limit} s after the writes stopped:\n" +
                                    "\n".join(differences))
            time.sleep(0.1)
        waited = time.time() - started
        problems = [p for a, t in seen.items() for p in self.book.problems_in(t["VM"], a)]
        if problems:
            self.fail_with_logs(f"{len(problems)} problems:\n" + "\n".join(problems[:30]))
        if len(seen[first]["host"]) != len(self.hosts):
            self.fail_with_logs(f"the pool has {len(seen[first]['host'])} hosts")
        # No call is under way: an operation still recorded was left by a host that died in it.
        left_over = {ref: record["current_operations"] for ref, record in seen[first]["VM"].items()
                     if record["current_operations"]}
        return waited, len(seen[first]["VM"]), left_over

    def test_kill_rounds(self):
        rng, book = self.rng, self.book
        double_kill_round = rng.randrange(ROUNDS // 2, ROUNDS) + 1 if ROUNDS >= 2 else 1
        writers = [writer(n, rng.randrange(1 << 63), self.hosts, book, self.gate) for n in range(WRITERS)]
        failovers, member_pauses, ready_times, serving_times = [], [], [], []
        began = time.time()
        for w in writers:
            w.start()
        try:
            for rnd in range(1, ROUNDS + 1):
                master = self.master()
                if rnd == double_kill_round:
                    kind, victims = "two", rng.sample(self.hosts, 2)
                elif rng.random() < 0.5:
                    kind, victims = "master", [master]
                else:
                    kind, victims = "member", [rng.choice([h for h in self.hosts if h is not master])]
                survivors = [h for h in self.hosts if h not in victims]
                time.sleep(rng.uniform(0.3, 1.2))
                acked_before = book.acknowledged()
                for v in victims:
                    v.kill()
                killed = time.time()
                line = f"round {rnd:2}: killed {', '.join(v.address for v in victims)} " \
                       f"({kind}{'; master was ' + master.address if kind == 'two' else ''})"
                if kind == "two":
                    with book.lock:
                        book.no_majority_since = killed
                    errors, slowest = self.without_majority(killed, survivors[0], rng.uniform(3.0, 5.0))
                    line += f"; writes without a majority: {sum(errors.values())} failed (slowest {slowest:.2f} s): " + \
                            "; ".join(f"{n}x {e}" for e, n in errors.most_common(3))
                else:
                    first = self.first_write_after(killed, survivors)
                    (failovers if kind == "master" else member_pauses).append(first)
                    line += f"; first write accepted {first:.2f} s after"
                    time.sleep(rng.uniform(0.3, 1.2))
                # Writes made from here on may be acknowledged again: the hosts come back.
                with book.lock:
                    book.no_majority_since = None
                    late = list(book.acknowledged_without_majority)
                if late:
                    self.fail_with_logs(f"writes acknowledged without a majority: {late[:5]}")
                restarts = [None] * len(victims)

                def restart_one(j):
                    try:
                        restarts[j] = self.restart(victims[j])
                    except BaseException as e:  # reported below, from the test's thread
                        restarts[j] = e

                starters = [threading.Thread(target=restart_one, args=(j,)) for j in range(len(victims))]
                for t in starters:
                    t.start()
                for t in starters:
                    t.join()
                for v, r in zip(victims, restarts):
                    if isinstance(r, BaseException):
                        self.fail_with_logs(f"{v.address} was started again, and: {str(r).splitlines()[0]}")
                for ready, serving in restarts:
                    ready_times.append(ready)
                    serving_times.append(serving)
                line += "; restarted: ready " + ", ".join(f"{r[0]:.2f}" for r in restarts) + \
                        " s, serving " + ", ".join(f"{r[1]:.2f}" for r in restarts) + " s"
                new_master = self.master()
                time.sleep(rng.uniform(0.2, 0.8))
                self.gate.close()
                waited, vm_count, left_over = self.check_replicas()
                line += f"; master {new_master.address}; {book.acknowledged() - acked_before} writes acknowledged; " \
                        f"3 replicas identical ({vm_count} VMs) after {waited:.2f} s"
                if left_over:
                    line += f"; {len(left_over)} VMs with an operation left by a dead host: " + \
                            ", ".join(f"{ref[10:18]} {sorted(ops.values())}" for ref, ops in list(left_over.items())[:3])
                print(line, flush=True)
                self.gate.open()
        finally:
            self.gate.stop()
            for w in writers:
                w.join(CALL_TIMEOUT + 5)
        if book.writer_failures:
            self.fail("a writer failed:\n" + book.writer_failures[0])
        # No call is under way: an operation still recorded was left by a host that died in it,
        # or whose retirement failed in a failover; the master's sweep clears it (every 5 s,
        # once every member answered).
        left_over, until = {}, time.time() + 20
        while time.time() < until:
            left_over = {ref: record["current_operations"]
                         for ref, record in self.read(self.master(), "VM.get_all_records").items()
                         if record["current_operations"]}
            if not left_over:
                break
            time.sleep(0.1)
        if left_over:
            self.fail_with_logs(f"{len(left_over)} VMs keep an operation no host carries out 20 s after the last round: "
                                + ", ".join(f"{ref} {sorted(ops.values())}" for ref, ops in list(left_over.items())[:5]))
        if book.hangs:
            self.fail_with_logs("calls that hung:\n" + "\n".join(book.hangs[:10]))
        counts = book.counts
        print(f"summary: {ROUNDS} rounds in {time.time() - began:.0f} s "
              f"({len(failovers)} of the master, {ROUNDS - len(failovers) - 1} of a member, 1 of two hosts); "
              f"writes acknowledged {book.acknowledged()}, refused {sum(n for (_, o), n in counts.items() if o == 'refused')}, "
              f"unknown outcome {sum(n for (_, o), n in counts.items() if o == 'unknown')}", flush=True)
        print(f"  failover (kill -9 of the master -> first write accepted): {spread(failovers)}", flush=True)
        print(f"  kill -9 of a member -> next write accepted: {spread(member_pauses)}", flush=True)
        print(f"  restart -> xapid.ready: {spread(ready_times)}; restart -> serving: {spread(serving_times)}", flush=True)
        behind = book.unknown_to_a_member
        print(f"  writes to a VM refused as HANDLE_INVALID by a host whose replica had not yet applied its acknowledged "
              f"create: {len(behind)}" + (f", sent {spread(behind)} after that create's acknowledgement" if behind else ""),
              flush=True)
        print("  errors seen: " + "; ".join(f"{n}x {e}" for e, n in book.errors.most_common(8)), flush=True)
        self.databases_are_byte_identical()

    def databases_are_byte_identical(self):
        """The hosts stopped, each database read back as checkpoint bytes: all the same. A host
        that stopped before it applied the pool's last entries (a write committed as the others
        went) is started again with the others, and the pool stopped again once it is in sync."""
        for attempt in range(1, 4):
            stop_all(self.hosts)
            taken = checkpoints(self.hosts)
            heads = [head for head, _ in taken]
            if len(set(heads)) == 1:
                self.assertEqual(len({data for _, data in taken}), 1,
                                 "databases that applied the same entries differ: " + "; ".join(heads))
                print(f"  databases byte-identical on the 3 hosts ({heads[0]})", flush=True)
                return
            print(f"  stopped at different entries ({'; '.join(heads)}): started again", flush=True)
            starters = [threading.Thread(target=h.start) for h in self.hosts]
            for t in starters:
                t.start()
            for t in starters:
                t.join()
            until = time.time() + 60
            while True:
                try:
                    m = self.master()
                    self.read(m, "pool.sync_database", self.read(m, "pool.get_all")[0])
                    break
                except AssertionError:
                    if time.time() > until:
                        raise
                    time.sleep(0.2)
        self.fail("the hosts never stopped at the same entry of the pool's log: " + "; ".join(heads))
        self.assertGreater(book.acknowledged(), ROUNDS)


def describe_difference(first, a_tables, second, b_tables):
    """What differs between two hosts' tables, briefly: per class, refs on one side only and the
    first fields that differ."""
    out = []
    for cls in a_tables:
        a, b = a_tables[cls], b_tables[cls]
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        if only_a or only_b:
            out.append(f"{cls}: {len(only_a)} only on {first} {only_a[:3]}, {len(only_b)} only on {second} {only_b[:3]}")
        for ref in sorted(set(a) & set(b)):
            fields = sorted(f for f in set(a[ref]) | set(b[ref]) if a[ref].get(f) != b[ref].get(f))
            if fields:
                out.append(f"{cls} {ref}: " + ", ".join(f"{f} {a[ref].get(f)!r} on {first}, {b[ref].get(f)!r} on {second}"
                                                        for f in fields[:4]))
                if len(out) > 10:
                    break
    return "\n".join(out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
