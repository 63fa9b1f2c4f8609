#!/usr/bin/env python3
"""What a user with few rights, or none, can get out of a real xapid process (issue 13, items
S, L, W, V, P and D of the security spec): other sessions' references, secrets, tasks of
others, rights kept after revocation; logins that tell apart why they failed, are guessed
without limit or cut short by NUL; waits and wrong logins that crowd root out; memory that
grows with every login; values too large, out of range or not text; paths given by clients;
destructors and setters that lose data. And what a security review found later (R1-R9):
memory that clients with no account, or a read-only one, could make the daemon keep (names,
subscriptions, tasks, unread answers, waits), root locked out by guesses from many addresses,
the log read by a read-only user, rates counted per session, CPU spent on class names.

Role sessions need system users (useradd and a PAM service): those tests are skipped unless
run as root. Usage: security_test.py PATH_TO_XAPID"""
import base64
import http.client
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import unittest
import xmlrpc.client
from xml.parsers.expat import ExpatError

from xapid_support import (PASSWORD, answers, jsonrpc_request, needs_pam_users, pam_users, read_answer, role_daemon,
                           start_daemon, stop_daemon, strings_in, with_daemon)  # takes PATH_TO_XAPID from argv

NULL = "OpaqueRef:NULL"

# Hundreds of connections at once are opened by this process.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < 8192:
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192 if _hard == resource.RLIM_INFINITY else min(8192, _hard), _hard))


def timed(f, *args, **kwargs):
    """f(*args, **kwargs) and how many seconds it took."""
    start = time.monotonic()
    result = f(*args, **kwargs)
    return result, time.monotonic() - start


def in_parallel(calls):
    """Runs each (f, args) on a thread of its own, all at once; answers [(result, seconds)] in
    the same order (an exception is the result of a call that raised one)."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i, f, args):
        barrier.wait()
        start = time.monotonic()
        try:
            r = f(*args)
        except Exception as e:  # noqa: BLE001 - reported by the caller's assertions
            r = e
        results[i] = (r, time.monotonic() - start)
    threads = [threading.Thread(target=run, args=(i, f, args)) for i, (f, args) in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


class timeout_transport(xmlrpc.client.Transport):
    """Keep-alive HTTP, as ServerProxy's own, but a daemon that never answers fails the call."""

    def make_connection(self, host):
        c = super().make_connection(host)
        c.timeout = 60
        return c


def proxy(port):
    return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}", transport=timeout_transport())


def post_json(port, body, timeout=30):
    """POSTs `body` (text) to /jsonrpc; answers the decoded JSON answer (or the HTTP status and
    text when it is not JSON)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/jsonrpc", body.encode() if isinstance(body, str) else body,
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        text = r.read()
        try:
            return json.loads(text)
        except ValueError:
            return {"http_status": r.status, "text": text[:300]}
    finally:
        c.close()


def jsonrpc(port, method, *params, timeout=30):
    """A JSON-RPC 2.0 call: (True, result) or (False, [error code, params...])."""
    answer = post_json(port, json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}), timeout)
    return json_outcome(answer)


def json_outcome(answer):
    if answer.get("error") is not None:
        e = answer["error"]
        return False, ([e.get("message")] + list(e.get("data") or [])) if isinstance(e, dict) else e
    if "result" in answer:
        return True, answer["result"]
    return False, answer


def unix_jsonrpc(data_dir, method, *params, timeout=30):
    """A JSON-RPC 2.0 call over the daemon's unix socket: (True, result) or (False, error)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.path.join(data_dir, "xapid.sock"))
        sock.sendall(jsonrpc_request(method, list(params)))
        _, _, body, _ = read_answer(sock)
        return json_outcome(json.loads(body))
    finally:
        sock.close()


def refs_in(value):
    """Every string in `value` (nested lists and dicts, keys too) that is an OpaqueRef."""
    return {v for v in strings_in(value) if v.startswith("OpaqueRef:")}


class many_calls:
    """One request on each of many connections at once, read without a thread each: for floods
    of waits and logins. `answers()` gives the decoded JSON answers that have come, by index."""

    def __init__(self, port, requests):
        self.sel = selectors.DefaultSelector()
        self.socks, self.data = [], []
        for i, request in enumerate(requests):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            sock.setblocking(False)
            self.sel.register(sock, selectors.EVENT_READ, i)
            self.socks.append(sock)
            self.data.append(bytearray())
        self.ended = set()

    def pump(self, seconds):
        """Reads what arrives for `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for key, _ in self.sel.select(left):
                i = key.data
                try:
                    chunk = self.socks[i].recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    self.data[i] += chunk
                else:
                    self.ended.add(i)
                    self.sel.unregister(self.socks[i])

    def answers(self):
        out = {}
        for i, data in enumerate(self.data):
            if not data:
                continue
            try:
                _, _, body, _ = read_answer(_buffer_socket(), bytes(data))
                out[i] = json.loads(body)
            except (EOFError, ValueError):
                pass
        return out

    def close(self):
        for sock in self.socks:
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self.sel.close()


class _buffer_socket:
    """A socket with nothing more to read: read_answer on bytes already received."""

    def recv(self, n):
        return b""


# --- sessions and reads (RBAC read rules) ---

@needs_pam_users
class sessions_and_reads(role_daemon):
    """S1-S3, S5-S8 on one daemon: a read-only user (`reader`), a pool operator (`operator`),
    and two read-only users of their own for S5 (`victim`) and S6 (`crowd`)."""

    users = (("reader", "read-only"), ("operator", "pool-operator"), ("victim", "read-only"), ("crowd", "read-only"))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root_sessions = [cls.s]  # every session of root made here, for S2's generic check

    def root_login(self, originator="root"):
        s = self.ok(self.x.session.login_with_password("root", PASSWORD, "1.0", originator))
        self.root_sessions.append(s)
        return s

    def event_from(self, session, classes, token, timeout):
        return self.ok(getattr(self.x.event, "from")(session, classes, token, timeout))

    def test_s1_sessions_and_secrets_have_no_events(self):
        """S1 (and S3's events): event.from never shows a session or a secret, to a read-only
        user or to root, from the start or after a new login and a new secret."""
        x = self.x
        self.assertEqual([e["ref"] for e in self.event_from(self.reader_s, ["session"], "", 1.0)["events"]], [])
        first = self.event_from(self.reader_s, ["*"], "", 1.0)
        classes = {e["class"] for e in first["events"]}
        self.assertNotIn("session", classes)
        self.assertNotIn("secret", classes)
        root_first = self.event_from(self.s, ["*"], "", 1.0)
        self.assertTrue({"session", "secret"}.isdisjoint(e["class"] for e in root_first["events"]))

        self.root_login("s1")
        self.ok(x.secret.create(self.s, {"value": "s1 secret", "other_config": {}}))
        self.ok(x.network.create(self.s, {"name_label": "s1 net"}))  # something that has events
        for who, session, token in (("read-only", self.reader_s, first["token"]), ("root", self.s, root_first["token"])):
            later = self.event_from(session, ["*"], token, 1.0)
            classes = [e["class"] for e in later["events"]]
            self.assertIn("network", classes, who)
            self.assertNotIn("session", classes, who)
            self.assertNotIn("secret", classes, who)
            self.assertEqual([e["ref"] for e in self.event_from(session, ["session", "secret"], token, 1.0)["events"]],
                             [], who)

    def test_s2_no_answer_to_a_read_only_user_holds_roots_session_refs(self):
        """S2: a task root made records root's session; a read-only user sees OpaqueRef:NULL
        there (records, get_record, event snapshots), cannot look root's session up by uuid,
        and no answer it can get holds any of root's session refs."""
        x = self.x
        mine = self.root_login("s2")
        task = self.ok(x.task.create(mine, "s2 task", "made by root"))
        template = self.ok(x.VM.get_by_name_label(mine, "Other install media"))[0]
        async_task = self.ok(getattr(x, "Async").VM.clone(mine, template, "s2 clone"))
        for _ in range(100):
            if self.ok(x.task.get_status(mine, async_task)) != "pending":
                break
            time.sleep(0.05)

        for t in (task, async_task):
            self.assertEqual(self.ok(x.task.get_record(mine, t))["session"], mine, "root sees its own session")
            self.assertEqual(self.ok(x.task.get_record(self.reader_s, t))["session"], NULL)
            self.assertEqual(self.ok(x.task.get_all_records(self.reader_s))[t]["session"], NULL)
            snapshots = [e["snapshot"] for e in self.event_from(self.reader_s, ["task"], "", 0.0)["events"]
                         if e["ref"] == t]
            self.assertEqual([s["session"] for s in snapshots], [NULL])

        uuid = self.ok(x.session.get_uuid(mine, mine))
        self.assertEqual(self.ok(x.session.get_by_uuid(mine, uuid)), mine)
        self.assertEqual(self.err(x.session.get_by_uuid(self.reader_s, uuid)), ["UUID_INVALID", "session", uuid])

        # Everything the read-only user may read, and every event it may see.
        seen = set()
        readers = [m for m in x.system.listMethods() if m.endswith(".get_all_records") and not m.startswith("Async.")]
        for method in readers:
            cls = method.split(".")[0]
            answer = getattr(getattr(x, cls), "get_all_records")(self.reader_s)
            if answer["Status"] == "Success":
                seen |= refs_in(answer["Value"])
                for ref in list(answer["Value"])[:50]:  # get_record of the same objects
                    record = getattr(getattr(x, cls), "get_record")(self.reader_s, ref)
                    if record["Status"] == "Success":
                        seen |= refs_in(record["Value"])
            else:
                self.assertIn(answer["ErrorDescription"][0], ("RBAC_PERMISSION_DENIED", "NOT_IMPLEMENTED",
                                                              "MESSAGE_METHOD_UNKNOWN"), (method, answer))
        seen |= refs_in(self.event_from(self.reader_s, ["*"], "", 0.0))
        seen |= refs_in(self.ok(x.session.get_record(self.reader_s, self.reader_s)))
        self.assertGreater(len(seen), 100, "the read-only user read next to nothing: the check proves nothing")
        leaked = seen & set(self.root_sessions)
        self.assertEqual(leaked, set(), "root's session refs reached a read-only user")

    def test_s3_a_read_only_user_cannot_read_secrets(self):
        """S3: secrets are for pool operators and above (root sees the one it made), and no
        one sees them in events."""
        x = self.x
        secret = self.ok(x.secret.create(self.s, {"value": "s3 secret value", "other_config": {}}))
        self.assertIn(secret, self.ok(x.secret.get_all_records(self.s)))
        self.assertEqual(self.err(x.secret.get_all_records(self.reader_s))[0], "RBAC_PERMISSION_DENIED")
        # (get_record and get_value would show the same value: xapi needs pool-operator for both.)
        self.assertEqual(self.err(x.secret.get_record(self.reader_s, secret))[0], "RBAC_PERMISSION_DENIED")
        self.assertEqual(self.err(x.secret.get_value(self.reader_s, secret))[0], "RBAC_PERMISSION_DENIED")
        # Nor are secrets in anyone's events (no events for the class, as in xapi).
        for session in (self.reader_s, self.s):
            events = self.event_from(session, ["secret"], "", 0.0)["events"]
            self.assertEqual([e["ref"] for e in events], [])
            events = self.event_from(session, ["*"], "", 0.0)["events"]
            self.assertNotIn(secret, [e["ref"] for e in events])

    def test_s5_logout_subject_identifier_never_logs_out_root(self):
        """S5: a subject identifier must be a string; "" (the empty sid of root's sessions)
        logs out none of root's sessions, whoever asks; a user's sid logs out that user."""
        x = self.x
        self.assertEqual(self.err(x.session.logout_subject_identifier(self.s, 42))[0], "FIELD_TYPE_ERROR")
        a, b = self.root_login("s5 a"), self.root_login("s5 b")
        victim = self.ok(self.victim.login(x, "s5"))
        for caller in (a, self.operator_s):
            self.ok(x.session.logout_subject_identifier(caller, ""))
            for root_session in (self.s, a, b):
                self.assertEqual(self.ok(x.pool.get_all(root_session)), self.ok(x.pool.get_all(self.s)),
                                 "a root session was logged out")
        self.ok(x.pool.get_all(victim))
        self.ok(x.session.logout_subject_identifier(self.operator_s, self.victim.sid))
        self.assertEqual(self.err(x.pool.get_all(victim)), ["SESSION_INVALID", victim])
        for root_session in (self.s, a, b):
            self.ok(x.pool.get_all(root_session))

    def test_s6_session_caps_are_per_user(self):
        """S6: a read-only user logging in 510 times with originator "x" evicts its own oldest
        sessions (the cap is 500), never root's session of the same originator."""
        x = self.x
        root_x = self.root_login("x")
        first = self.ok(self.crowd.login(x, "x"))

        def logins(n):
            p = proxy(self.port)
            return [self.crowd.login(p, "x") for _ in range(n)]
        results = in_parallel([(logins, (n,)) for n in [64] * 7 + [508 - 7 * 64]])  # 8 clients, 508 logins
        last = self.crowd.login(x, "x")  # the 510th
        self.assertEqual(x.pool.get_all(root_x), x.pool.get_all(self.s),
                         "root's session was evicted by another user's logins")
        answers = [last]
        for r, _ in results:
            self.assertIsInstance(r, list, r)
            answers += r
        self.assertEqual(len(answers), 509)
        failed = [a for a in answers if a["Status"] != "Success"]
        self.assertEqual(len(failed), 0, f"{len(failed)} of the user's logins failed: {failed[:2]}")
        self.ok(x.pool.get_all(last["Value"]))
        self.assertEqual(self.err(x.pool.get_all(first)), ["SESSION_INVALID", first],
                         "the user's oldest session outlived 510 more logins (no cap per user)")

    def test_s7_only_pool_operators_touch_the_tasks_of_others(self):
        """S7: a read-only user may cancel and destroy its own tasks, not root's
        (task.destroy/any); a pool operator may; an unauthenticated /export naming root's task
        neither fails nor touches it."""
        x = self.x
        roots = self.ok(x.task.create(self.s, "s7 root task", ""))
        for call in (x.task.cancel, x.task.destroy):
            denied = self.err(call(self.reader_s, roots))
            self.assertEqual(denied[:2], ["RBAC_PERMISSION_DENIED", "task.destroy/any"], denied)
        record = self.ok(x.task.get_record(self.s, roots))
        self.assertEqual((record["status"], record["error_info"]), ("pending", []))

        own = self.ok(x.task.create(self.reader_s, "s7 own task", ""))
        self.ok(x.task.cancel(self.reader_s, own))
        self.ok(x.task.destroy(self.reader_s, own))

        self.ok(x.task.cancel(self.operator_s, roots))
        self.ok(x.task.destroy(self.operator_s, roots))
        self.assertEqual(self.err(x.task.get_record(self.s, roots))[0], "HANDLE_INVALID")

        other = self.ok(x.task.create(self.s, "s7 followed", ""))
        template = self.ok(x.VM.get_by_name_label(self.s, "Other install media"))[0]
        uuid = self.ok(x.VM.get_uuid(self.s, template))
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("GET", f"/export?uuid={uuid}&task_id={other}")
        response = c.getresponse()
        response.read()
        c.close()
        self.assertEqual(response.status, 401)
        record = self.ok(x.task.get_record(self.s, other))
        self.assertEqual((record["status"], record["error_info"]), ("pending", []), "root's task was touched")

    def test_s8_event_inject_by_a_read_only_user_is_rate_limited(self):
        """S8: 150 event.inject calls in a burst (pipelined on one connection): the first ones
        succeed, some of the rest are TOO_BUSY, nothing else."""
        pool = self.ok(self.x.pool.get_all(self.s))[0]
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        self.addCleanup(sock.close)
        sock.sendall(b"".join(jsonrpc_request("event.inject", [self.reader_s, "pool", pool], i) for i in range(150)))
        outcomes, rest = [], b""
        for _ in range(150):
            _, _, body, rest = read_answer(sock, rest)
            outcomes.append(json_outcome(json.loads(body)))
        self.assertTrue(outcomes[0][0], outcomes[0])
        busy = [o for o in outcomes if not o[0]]
        self.assertTrue(busy, "150 injects in a burst were all accepted")
        self.assertEqual({o[1][0] for o in busy}, {"TOO_BUSY"}, busy[:3])


@needs_pam_users
class revocation(role_daemon):
    """S4: rights taken away end on the session's next call."""

    users = (("admin", "vm-admin"), ("doomed", "vm-admin"), ("reader", "read-only"))

    def test_s4_revoked_rights_end_on_the_next_call(self):
        """S4: a vm-admin whose role is removed is refused on its next call; the session of a
        subject that is destroyed is invalid on its next call; once external authentication is
        off, every external session is invalid and root's still works."""
        x = self.x
        template = self.ok(x.VM.get_by_name_label(self.s, "Other install media"))[0]
        vm = self.ok(x.VM.clone(self.s, template, "s4 vm"))
        with self.subTest("subject.remove_from_roles"):
            self.ok(x.VM.set_name_label(self.admin_s, vm, "renamed by a vm-admin"))
            role = self.ok(x.role.get_by_name_label(self.s, "vm-admin"))[0]
            self.ok(x.subject.remove_from_roles(self.s, self.admin.subject, role))
            self.assertEqual(self.err(x.VM.set_name_label(self.admin_s, vm, "again"))[0], "RBAC_PERMISSION_DENIED")
            self.assertEqual(self.ok(x.VM.get_name_label(self.s, vm)), "renamed by a vm-admin")
        with self.subTest("subject.destroy"):
            self.ok(x.pool.get_all(self.doomed_s))
            self.ok(x.subject.destroy(self.s, self.doomed.subject))
            self.assertEqual(self.err(x.pool.get_all(self.doomed_s)), ["SESSION_INVALID", self.doomed_s])
        with self.subTest("pool.disable_external_auth"):
            self.ok(x.pool.get_all(self.reader_s))
            pool = self.ok(x.pool.get_all(self.s))[0]
            self.ok(x.pool.disable_external_auth(self.s, pool, {}))
            for session in (self.reader_s, self.admin_s):
                self.assertEqual(self.err(x.pool.get_all(session)), ["SESSION_INVALID", session])
            self.assertEqual(self.ok(x.pool.get_all(self.s)), [pool])


# --- logins ---

def login_failure_answer(test, answer):
    test.assertEqual(answer["Status"], "Failure", answer)
    test.assertEqual(answer["ErrorDescription"][0], "SESSION_AUTHENTICATION_FAILED", answer)


@needs_pam_users
class failed_logins(role_daemon):
    """L1, L2: a PAM user with a subject (`member`) and one without (made here)."""

    users = (("member", "read-only"),)

    def test_l1_every_failed_login_answers_after_the_same_delay(self):
        """L1: a wrong root password, a PAM user with the right password but no subject, a PAM
        user with a wrong password, an unknown user: the same error after the same delay
        (medians of 6 each within 0.3 s); in two waves of 12 concurrent logins."""
        stranger = self.pam.user("stranger-secret")  # PAM says yes; no subject
        kinds = {
            "wrong root password": ("root", "not-the-password"),
            "no subject": (stranger.name, "stranger-secret"),
            "wrong PAM password": (self.member.name, "not-the-password"),
            "unknown user": (f"nosuchuser{os.getpid()}", "whatever"),
        }

        def login(user, password):
            return proxy(self.port).session.login_with_password(user, password, "1.0", "l1")
        seconds = {k: [] for k in kinds}
        for wave in range(2):
            calls = [(login, kinds[k]) for _ in range(3) for k in kinds]
            for (answer, took), kind in zip(in_parallel(calls), [k for _ in range(3) for k in kinds]):
                self.assertIsInstance(answer, dict, answer)
                login_failure_answer(self, answer)
                seconds[kind].append(took)
        medians = {k: statistics.median(v) for k, v in seconds.items()}
        self.assertLessEqual(max(medians.values()) - min(medians.values()), 0.3, medians)
        self.assertGreaterEqual(min(medians.values()), 1.0, f"no delay: {medians}")

    def test_l2_names_and_passwords_with_control_characters_never_log_in(self):
        """L2: NUL cuts a C string short (PAM and crypt would see the name or password before
        it), other control characters are not in names: over JSON-RPC (XML cannot carry NUL),
        each is refused: the call itself, when it holds what XML cannot carry (the JSON-RPC
        error of a malformed request, before any check), else SESSION_AUTHENTICATION_FAILED."""
        cases = [("root\u0000", PASSWORD), ("root", PASSWORD + "\u0000garbage"), ("ro\not", PASSWORD),
                 ("ro\tot", PASSWORD), ("root", PASSWORD + "\t"),
                 (self.member.name + "\u0000", self.member.password),
                 (self.member.name, self.member.password + "\u0000garbage")]
        results = in_parallel([(jsonrpc, (self.port, "session.login_with_password", u, p, "1.0", "l2")) for u, p in cases])
        for (user, password), (outcome, _) in zip(cases, results):
            with self.subTest(user=user, password=password):
                self.assertIsInstance(outcome, tuple, outcome)
                ok, value = outcome
                self.assertFalse(ok, f"logged in: {value}")
                if "\u0000" in user + password:
                    self.assertIn(value[0], ("SESSION_AUTHENTICATION_FAILED", "a string holds a character XML 1.0 cannot carry"), value)
                else:
                    self.assertEqual(value[0], "SESSION_AUTHENTICATION_FAILED", value)


class login_throttling(with_daemon):
    """L3: ten failed logins within a minute from one address."""

    def test_l3_after_ten_failures_even_the_right_password_fails_but_the_unix_socket_works(self):
        """L3: after 10 wrong root passwords from 127.0.0.1, the right one fails too, after the same
        delay; root over the unix socket logs in at once; xapid.log has a session.login.failed
        line naming the user and the client."""
        def login(password):
            return proxy(self.port).session.login_with_password("root", password, "1.0", "l3")
        failures = in_parallel([(login, ("wrong-%d" % i,)) for i in range(10)])
        for answer, _ in failures:
            login_failure_answer(self, answer)
        delay = statistics.median(t for _, t in failures)

        answer, took = timed(login, PASSWORD)
        login_failure_answer(self, answer)  # throttled: the right password fails too
        self.assertLessEqual(abs(took - delay), 0.3, (took, delay))

        outcome, took = timed(unix_jsonrpc, self.dir.name, "session.login_with_password", "root", PASSWORD)
        self.assertTrue(outcome[0], outcome)
        self.assertLess(took, 1.0, "root's login over the unix socket waited")

        with open(os.path.join(self.dir.name, "xapid.log"), errors="replace") as f:
            lines = [line for line in f if "session.login.failed" in line]
        self.assertTrue(lines, "no session.login.failed line in xapid.log")
        self.assertTrue(any("user=" in line and "root" in line and "client=" in line and "127.0.0.1" in line
                            for line in lines), lines[:3])


class export_failures_count(with_daemon):
    """L3: /export with wrong Basic credentials fails like a login, and counts with them."""

    def test_l3_wrong_export_credentials_are_delayed_and_count_towards_throttling(self):
        """L3: /export with wrong Basic credentials is 401 after the delay of a failed login, and 5
        of them with 5 failed logins make the 10 after which the right password fails."""
        template = self.ok(self.x.VM.get_by_name_label(self.s, "Other install media"))[0]
        uuid = self.ok(self.x.VM.get_uuid(self.s, template))

        def export(password):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            auth = base64.b64encode(f"root:{password}".encode()).decode()
            c.request("GET", f"/export?uuid={uuid}", headers={"Authorization": "Basic " + auth})
            r = c.getresponse()
            r.read()
            c.close()
            return r.status

        def login(password):
            return proxy(self.port).session.login_with_password("root", password, "1.0", "l3")
        results = in_parallel([(export, ("wrong-e%d" % i,)) for i in range(5)] +
                              [(login, ("wrong-l%d" % i,)) for i in range(5)])
        exports, logins = results[:5], results[5:]
        self.assertEqual([s for s, _ in exports], [401] * 5)
        for answer, _ in logins:
            login_failure_answer(self, answer)
        login_delay = statistics.median(t for _, t in logins)
        export_delay = statistics.median(t for _, t in exports)
        self.assertLessEqual(abs(export_delay - login_delay), 0.3, (export_delay, login_delay))

        answer, _ = timed(login, PASSWORD)
        login_failure_answer(self, answer)  # 5 + 5 failures: throttled


class parallel_logins(with_daemon):
    def test_l4_concurrent_logins_with_one_originator_never_fail(self):
        """L4: 8 clients log in as root with the same originator, 600 times in all (more than
        the 500 sessions an originator may hold): every one succeeds. Over the unix socket with
        the trusted empty login (root's, without a password hash), so that the logins come as
        fast as the daemon takes them and collide."""
        request = jsonrpc_request("session.login_with_password", ["", "", "1.0", "same"])

        def logins(n):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect(os.path.join(self.dir.name, "xapid.sock"))
            out, rest = [], b""
            try:
                for _ in range(n):
                    sock.sendall(request)
                    _, _, body, rest = read_answer(sock, rest)
                    out.append(json_outcome(json.loads(body)))
            finally:
                sock.close()
            return out
        outcomes = []
        for r, _ in in_parallel([(logins, (75,))] * 8):
            self.assertIsInstance(r, list, r)
            outcomes += r
        self.assertEqual(len(outcomes), 600)
        failed = [value for ok, value in outcomes if not ok]
        self.assertEqual(len(failed), 0, f"{len(failed)} of 600 failed: {failed[:2]}")


# --- waits ---

def wake_vm_waiters(cls):
    """A VM changes: waits on the vm class end (so that a daemon that kept them stops fast)."""
    try:
        vm = cls.x.VM.get_all(cls.s)["Value"][0]
        cls.x.VM.set_name_description(cls.s, vm, f"woken {time.monotonic()}")
    except Exception:  # noqa: BLE001 - best effort, at cleanup
        pass


def root_answers_within(test, seconds, data_dir):
    """Root's login over the unix socket, a root event.from (over the unix socket: not counted
    with the crowd's address) and a root VM.set_name_label over TCP each answer in time."""
    outcome, took = timed(unix_jsonrpc, data_dir, "session.login_with_password", "root", PASSWORD)
    test.assertTrue(outcome[0], outcome)
    test.assertLess(took, seconds, "root's unix-socket login")
    unix_session = outcome[1]
    outcome, took = timed(unix_jsonrpc, data_dir, "event.from", unix_session, ["pool"], "", 0.0)
    test.assertTrue(outcome[0], outcome)
    test.assertLess(took, seconds, "root's event.from")
    vm = test.ok(test.x.VM.get_all(test.s))[0]
    answer, took = timed(proxy(test.port).VM.set_name_label, test.s, vm, "root still writes")
    test.ok(answer)
    test.assertLess(took, seconds, "root's VM.set_name_label")


@needs_pam_users
class crowded_waits(role_daemon):
    """W1: 1,100 concurrent event.from waits of a read-only user."""

    users = (("reader", "read-only"),)

    def test_w1_a_crowd_of_waits_does_not_stop_root(self):
        """W1: while 1,100 event.from calls of a read-only user wait (or are refused TOO_BUSY, and
        nothing else), root's login, event.from and VM.set_name_label each answer within 2 s."""
        token = self.ok(getattr(self.x.event, "from")(self.reader_s, ["vm"], "", 0.0))["token"]
        request = jsonrpc_request("event.from", [self.reader_s, ["vm"], token, 20.0])
        crowd = many_calls(self.port, [request] * 1100)
        self.addCleanup(crowd.close)
        self.addCleanup(wake_vm_waiters, type(self))
        crowd.pump(1.0)  # the daemon takes them; those over a cap are answered TOO_BUSY
        root_answers_within(self, 2.0, self.dir.name)
        crowd.pump(0.5)
        for i, answer in crowd.answers().items():
            ok, value = json_outcome(answer)
            if not ok:
                self.assertEqual(value[0], "TOO_BUSY", f"wait {i}: {value}")


@needs_pam_users
class closed_waits(role_daemon):
    """W2: closing a connection ends its wait."""

    users = (("reader", "read-only"),)

    def test_w2_closed_connections_end_their_waits(self):
        """Six rounds of 200 waits (60 s each) from one address, closed once the daemon holds
        them: every round is taken whole, without TOO_BUSY or any other answer, as the waits of
        closed connections are gone (1,200 in all, more than a crowd that W1 allows to be
        refused). The waits are spread over 4 sessions of the user (50 each): what is counted
        here is the address's, not one session's."""
        self.addCleanup(wake_vm_waiters, type(self))
        sessions = [self.reader_s] + [self.ok(self.reader.login(self.x, "w2")) for _ in range(3)]
        token = self.ok(getattr(self.x.event, "from")(self.reader_s, ["vm"], "", 0.0))["token"]
        requests = [jsonrpc_request("event.from", [sessions[i % 4], ["vm"], token, 60.0]) for i in range(200)]
        for round_ in range(6):
            crowd = many_calls(self.port, requests)
            try:
                crowd.pump(0.7)
                answered = crowd.answers()
                self.assertFalse(answered, f"round {round_ + 1}: {len(answered)} of 200 waits answered at once: "
                                           f"{list(answered.values())[:2]}")
                self.assertEqual(crowd.ended, set(), f"round {round_ + 1}: connections closed by the daemon")
            finally:
                crowd.close()
            time.sleep(0.2)


class crowded_logins(with_daemon):
    """W3: 1,200 concurrent wrong logins from one address."""

    def test_w3_a_crowd_of_wrong_logins_does_not_stop_root(self):
        """W3: while 1,200 wrong root logins from one address are under way, root's login over the
        unix socket, its event.from and a VM.set_name_label each answer within 2 s."""
        requests = [jsonrpc_request("session.login_with_password", ["root", f"wrong-{i}", "1.0", "w3"]) for i in range(1200)]
        crowd = many_calls(self.port, requests)
        self.addCleanup(crowd.close)
        crowd.pump(0.3)
        root_answers_within(self, 2.0, self.dir.name)
        crowd.pump(0.2)
        for i, answer in crowd.answers().items():
            ok, value = json_outcome(answer)
            self.assertFalse(ok, f"a wrong login succeeded: {value}")


# --- storage and values ---

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class tombstones(with_daemon):
    """V1: sessions that come and go leave nothing behind."""

    CLIENTS = 8
    PIPELINED = 8  # calls sent at once on a connection before their answers are read

    def cycles(self, n):
        """n login+logout cycles of root over the unix socket (the trusted empty login: no
        password hash), on CLIENTS keep-alive connections at once, each sending PIPELINED
        logins, then their logouts, at a time."""
        login = jsonrpc_request("session.login_with_password", ["", ""])
        logout_body = b'{"jsonrpc":"2.0","method":"session.logout","params":["%s"],"id":2}'
        logout_head = b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
        errors = []

        def client(count):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect(os.path.join(self.dir.name, "xapid.sock"))
            rest = b""
            try:
                for done in range(0, count, self.PIPELINED):
                    k = min(self.PIPELINED, count - done)
                    sock.sendall(login * k)
                    logouts = []
                    for _ in range(k):
                        _, _, body, rest = read_answer(sock, rest)
                        start = body.find(b'"result":"OpaqueRef:')
                        if start < 0:
                            errors.append(body)
                            return
                        ref = body[start + 10:body.find(b'"', start + 10)]
                        logouts.append(logout_head % len(logout_body % ref) + logout_body % ref)
                    sock.sendall(b"".join(logouts))
                    for _ in range(k):
                        _, _, body, rest = read_answer(sock, rest)
                        if b'"result":""' not in body.replace(b" ", b""):
                            errors.append(body)
                            return
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
            finally:
                sock.close()
        threads = [threading.Thread(target=client, args=(n // self.CLIENTS,)) for _ in range(self.CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    def test_v1_memory_is_flat_over_100000_logins_and_logouts(self):
        """V1: the daemon's VmRSS after 100,000 login+logout cycles is less than 20 MB above what it
        was after the first 10,000 (the rows of ended sessions are collected). Prints how long
        the cycles took."""
        start = time.monotonic()
        self.cycles(10_000)
        after_10k = rss_kib(self.proc.pid)
        self.cycles(90_000)
        after_100k = rss_kib(self.proc.pid)
        took = time.monotonic() - start
        print(f"\n  V1: 100,000 cycles in {took:.1f} s; VmRSS {after_10k} KiB after 10k, {after_100k} KiB after 100k",
              flush=True)
        self.assertLess(after_100k - after_10k, 20 * 1024, "the daemon's memory grows with every session")


class value_checks:
    @classmethod
    def make_vm(cls):
        template = cls.x.VM.get_by_name_label(cls.s, "Other install media")["Value"][0]
        cls.vm = cls.x.VM.clone(cls.s, template, "values")["Value"]
        cls.pool = cls.x.pool.get_all(cls.s)["Value"][0]

    def assert_not_supported(self, outcome, what):
        ok, value = outcome
        self.assertFalse(ok, f"{what}: accepted")
        self.assertEqual(value[0], "VALUE_NOT_SUPPORTED", f"{what}: {value}")
        self.assertEqual(len(value), 4, f"{what}: VALUE_NOT_SUPPORTED(field, value, reason): {value}")
        self.assertLess(len(value[2]), 4096, f"{what}: the whole value was echoed back")


class large_and_odd_values(value_checks, with_daemon):
    """V2-V5: values too large, not text, or out of range."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.make_vm()

    def test_v2_maps_sets_and_strings_have_limits(self):
        """V2 limits: 10,000 entries in a map or a set, 1 MiB in a string; one more is
        VALUE_NOT_SUPPORTED, and add_to_other_config cannot grow a map past the limit."""
        entries = lambda n: {f"k{i}": "v" for i in range(n)}  # noqa: E731
        ok, value = jsonrpc(self.port, "pool.set_gui_config", self.s, self.pool, entries(10_000))
        self.assertTrue(ok, value)
        self.assert_not_supported(jsonrpc(self.port, "pool.set_gui_config", self.s, self.pool, entries(10_001)), "map")
        ok, value = jsonrpc(self.port, "VM.set_tags", self.s, self.vm, [f"t{i}" for i in range(10_000)])
        self.assertTrue(ok, value)
        self.assert_not_supported(jsonrpc(self.port, "VM.set_tags", self.s, self.vm,
                                          [f"t{i}" for i in range(10_001)]), "set")
        ok, value = jsonrpc(self.port, "VM.set_name_description", self.s, self.vm, "d" * (1 << 20))
        self.assertTrue(ok, value)
        self.assert_not_supported(jsonrpc(self.port, "VM.set_name_description", self.s, self.vm, "d" * ((1 << 20) + 1)),
                                  "string")
        ok, value = jsonrpc(self.port, "VM.set_other_config", self.s, self.vm, entries(10_000))
        self.assertTrue(ok, value)
        self.assert_not_supported(jsonrpc(self.port, "VM.add_to_other_config", self.s, self.vm, "one", "more"),
                                  "add_to_other_config")
        self.assertEqual(len(self.ok(self.x.VM.get_other_config(self.s, self.vm))), 10_000)

    def test_v3_nul_and_other_control_characters_are_refused(self):
        """V3: over JSON-RPC, a name_label or a map key or value with U+0000, U+0001 or U+FFFE
        is refused and nothing is stored; XML-RPC records still parse."""
        before = self.ok(self.x.VM.get_name_label(self.s, self.vm))
        for bad in ("a\u0000b", "a\u0001b", "a\ufffeb"):
            with self.subTest(repr(bad)):
                ok, value = jsonrpc(self.port, "VM.set_name_label", self.s, self.vm, bad)
                self.assertFalse(ok, "stored")
                self.assertEqual(self.ok(self.x.VM.get_name_label(self.s, self.vm)), before)
                ok, _ = jsonrpc(self.port, "VM.add_to_other_config", self.s, self.vm, "key" + bad, "v")
                self.assertFalse(ok, "a key stored")
                ok, _ = jsonrpc(self.port, "VM.add_to_other_config", self.s, self.vm, "key" + repr(bad), bad)
                self.assertFalse(ok, "a value stored")
        try:
            records = self.ok(self.x.VM.get_all_records(self.s))  # every stored string is XML text
        except ExpatError as e:
            self.fail(f"VM.get_all_records no longer parses in xmlrpc.client: {e}")
        self.assertIn(self.vm, records)

    def test_v4_out_of_range_and_malformed_numbers_are_errors(self):
        """V4: <i4>/<int> beyond 32 bits is a fault or an error (nothing stored); JSON NaN,
        Infinity and a duplicate key are JSON-RPC errors."""
        before = self.ok(self.x.VM.get_user_version(self.s, self.vm))
        for element, number in (("i4", "4294967296"), ("int", "4294967296"), ("i4", "-2147483649")):
            with self.subTest(element=element, number=number):
                body = ("<?xml version='1.0'?><methodCall><methodName>VM.set_user_version</methodName><params>"
                        f"<param><value><string>{self.s}</string></value></param>"
                        f"<param><value><string>{self.vm}</string></value></param>"
                        f"<param><value><{element}>{number}</{element}></value></param></params></methodCall>")
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                c.request("POST", "/", body, {"Content-Type": "text/xml"})
                text = c.getresponse().read().decode()
                c.close()
                try:
                    answer = xmlrpc.client.loads(text)[0][0]
                    self.assertEqual(answer["Status"], "Failure", answer)
                except xmlrpc.client.Fault:
                    pass
                self.assertEqual(self.ok(self.x.VM.get_user_version(self.s, self.vm)), before)
        for what, body in (
                ("NaN", '{"jsonrpc":"2.0","method":"event.from","params":["%s",["pool"],"",NaN],"id":1}' % self.s),
                ("Infinity", '{"jsonrpc":"2.0","method":"event.from","params":["%s",["pool"],"",Infinity],"id":1}' % self.s),
                ("-Infinity", '{"jsonrpc":"2.0","method":"event.from","params":["%s",["pool"],"",-Infinity],"id":1}' % self.s),
                ("duplicate method", '{"jsonrpc":"2.0","method":"VM.get_all","method":"pool.get_all","params":["%s"],"id":1}'
                 % self.s)):
            with self.subTest(what):
                answer = post_json(self.port, body)
                self.assertIsNotNone(answer.get("error"), f"{what} accepted: {str(answer)[:200]}")
                self.assertIsNone(answer.get("result"), answer)

    def test_v5_a_vcpu_count_beyond_32_bits_is_refused_not_wrapped(self):
        """V5: 4294967298 VCPUs (2 modulo 2^32) is INVALID_VALUE or VM_TOO_MANY_VCPUS, over
        XML-RPC (a 64-bit int travels as a string) and JSON-RPC; never stored as 2."""
        before = self.ok(self.x.VM.get_VCPUs_max(self.s, self.vm))
        error = self.err(self.x.VM.set_VCPUs_max(self.s, self.vm, "4294967298"))
        self.assertIn(error[0], ("INVALID_VALUE", "VM_TOO_MANY_VCPUS"), error)
        ok, value = jsonrpc(self.port, "VM.set_VCPUs_max", self.s, self.vm, 4294967298)
        self.assertFalse(ok, value)
        self.assertIn(value[0], ("INVALID_VALUE", "VM_TOO_MANY_VCPUS"), value)
        self.assertEqual(self.ok(self.x.VM.get_VCPUs_max(self.s, self.vm)), before)


class huge_values(value_checks, with_daemon):
    """V2: a daemon of its own for a call that may hold it long (stopped hard if it does not
    stop in time)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.make_vm()

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()  # our own daemon; a huge commit may keep it from stopping soon
        try:
            cls.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        cls.proc.stderr.close()
        cls.dir.cleanup()

    def test_v2_a_huge_map_is_refused_at_once_and_others_go_on(self):
        """V2: pool.set_gui_config with 200,000 entries is VALUE_NOT_SUPPORTED within 2 s (a
        map holds at most 10,000); meanwhile root's VM.set_name_label answers within 1 s."""
        huge = {f"k{i}": "v" for i in range(200_000)}
        result = {}

        def big():
            try:
                result["outcome"], result["seconds"] = timed(jsonrpc, self.port, "pool.set_gui_config", self.s,
                                                             self.pool, huge)
            except OSError as e:
                result["outcome"] = e
        t = threading.Thread(target=big, daemon=True)
        t.start()
        time.sleep(0.1)
        try:
            outcome, took = timed(jsonrpc, self.port, "VM.set_name_label", self.s, self.vm, "during a huge call", timeout=5)
        except OSError:
            outcome, took = "no answer within 5 s", 5.0
        self.assertEqual(outcome, (True, ""))
        self.assertLess(took, 1.0, "a small write waited for the huge one")
        t.join(2.0)
        self.assertIn("outcome", result, "200,000 entries: no answer within 2 s")
        self.assertIsInstance(result["outcome"], tuple, result["outcome"])
        self.assert_not_supported(result["outcome"], "200,000 entries")
        self.assertLess(result["seconds"], 2.0)


# --- storage repositories and paths ---

class client_paths(answers, unittest.TestCase):
    """P1, P2: a daemon whose data dir is DIR/data, DIR being the test's own directory (so that
    a path that climbs out of the data dir lands where the test can see it)."""

    @classmethod
    def setUpClass(cls):
        cls.parent = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls.parent.name, "data")
        cls.proc, cls.port, _ = start_daemon(cls.data)
        cls.x = proxy(cls.port)
        cls.s = cls.x.session.login_with_password("root", PASSWORD)["Value"]
        cls.host = cls.x.host.get_all(cls.s)["Value"][0]

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls.proc)
        cls.proc.stderr.close()
        cls.parent.cleanup()

    def test_p1_a_uuid_given_by_a_client_cannot_climb_out_of_the_data_dir(self):
        """P1: SR.introduce with uuid "../../victim" is UUID_INVALID; were it taken, the SR's
        directory DIR/data/sr/../../victim would be DIR/victim, and SR.destroy would remove it.
        VDI.introduce checks its uuid the same way."""
        victim = os.path.join(self.parent.name, "victim")
        os.makedirs(victim, exist_ok=True)
        with open(os.path.join(victim, "keep"), "w") as f:
            f.write("not xapid's\n")
        before = sorted(os.listdir(self.parent.name))
        answer = self.x.SR.introduce(self.s, "../../victim", "x", "", "ext", "user", False, {})
        if answer["Status"] == "Success":  # the attack goes on, to show what it would do
            sr = answer["Value"]
            self.x.PBD.create(self.s, {"host": self.host, "SR": sr, "device_config": {}, "other_config": {}})
            self.x.SR.destroy(self.s, sr)
        self.assertEqual(answer.get("ErrorDescription"), ["UUID_INVALID", "SR", "../../victim"], answer)
        self.assertTrue(os.path.exists(os.path.join(victim, "keep")), "a directory outside the data dir was removed")
        self.assertEqual(sorted(os.listdir(self.parent.name)), before)

        answer = self.x.SR.introduce(self.s, "../../victim", "x", "", "file", "user", False, {})
        self.assertEqual(answer.get("ErrorDescription"), ["UUID_INVALID", "SR", "../../victim"], answer)
        # A VDI's uuid names its image's base on snapshot and clone: an image that exists (forgotten
        # by its record) is introduced again under a uuid that climbs.
        sr = self.ok(self.x.pool.get_default_SR(self.s, self.ok(self.x.pool.get_all(self.s))[0]))
        vdi = new_vdi(self.x, self.s, sr)
        location = self.ok(self.x.VDI.get_location(self.s, vdi))
        self.ok(self.x.VDI.forget(self.s, vdi))
        answer = self.x.VDI.introduce(self.s, "../../victim", "x", "", sr, "user", False, False, {}, location, {}, {},
                                      True, "0", "0", NULL, False, xmlrpc.client.DateTime(0), NULL)
        self.assertEqual(answer.get("ErrorDescription"), ["UUID_INVALID", "VDI", "../../victim"], answer)
        self.assertEqual(sorted(os.listdir(self.parent.name)), before)

    def sr_create(self, location, type_="file"):
        return self.x.SR.create(self.s, self.host, {"location": location}, "0", "p2", "", type_, "user", False, {})

    def test_p2_file_srs_refuse_system_relative_and_climbing_locations(self):
        """P2: a file SR's location must be an absolute, plain path to a directory of the
        operator's own: not a system directory, nor a symlink to one."""
        link = os.path.join(self.parent.name, "etc-link")
        if not os.path.lexists(link):
            os.symlink("/etc", link)
        for location in ("/", "/etc", "/proc", "/sys", "/dev/shm", "relative/path", "/tmp/a/../b", link):
            with self.subTest(location):
                self.assertEqual(self.err(self.sr_create(location)), ["INVALID_VALUE", "device_config:location", location])

    def test_p2_two_srs_cannot_share_a_location(self):
        """P2: a second SR at the location of another is LOCATION_NOT_UNIQUE(first SR, location);
        spelled with a trailing slash it is refused too."""
        where = os.path.join(self.parent.name, "disks")
        os.makedirs(where, exist_ok=True)
        first = self.ok(self.sr_create(where))
        self.assertEqual(self.err(self.sr_create(where)), ["LOCATION_NOT_UNIQUE", first, where])
        with self.subTest("the same directory with a trailing slash"):
            self.assertIn(self.err(self.sr_create(where + "/"))[0], ("LOCATION_NOT_UNIQUE", "INVALID_VALUE"))

    def test_p2_an_iso_sr_takes_neither_imports_nor_new_vdis(self):
        """P2: an ISO library refuses VDI.create and an import into it (sr_id=): no VM, no VDI, no
        file made."""
        isos = os.path.join(self.parent.name, "isos")
        os.makedirs(isos, exist_ok=True)
        iso_sr = self.ok(self.sr_create(isos, "iso"))
        error = self.err(self.x.VDI.create(self.s, {
            "SR": iso_sr, "name_label": "new", "name_description": "", "virtual_size": str(1 << 20), "type": "user",
            "sharable": False, "read_only": False, "other_config": {}, "xenstore_data": {}, "sm_config": {}, "tags": []}))
        self.assertTrue(error, error)
        self.assertEqual(os.listdir(isos), [])

        # An XVA with a disk, imported with sr_id= the ISO library.
        template = self.ok(self.x.VM.get_by_name_label(self.s, "Other install media"))[0]
        vm = self.ok(self.x.VM.clone(self.s, template, "p2 export"))
        local = self.ok(self.x.pool.get_default_SR(self.s, self.ok(self.x.pool.get_all(self.s))[0]))
        vdi = self.ok(self.x.VDI.create(self.s, {
            "SR": local, "name_label": "d", "name_description": "", "virtual_size": str(1 << 20), "type": "user",
            "sharable": False, "read_only": False, "other_config": {}, "xenstore_data": {}, "sm_config": {}, "tags": []}))
        self.ok(self.x.VBD.create(self.s, {"VM": vm, "VDI": vdi, "userdevice": "1", "bootable": False, "mode": "RW",
                                           "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
                                           "qos_algorithm_type": "", "qos_algorithm_params": {}}))
        uuid = self.ok(self.x.VM.get_uuid(self.s, vm))
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", f"/export?uuid={uuid}&session_id={self.s}")
        r = c.getresponse()
        xva = r.read()
        c.close()
        self.assertEqual(r.status, 200)
        vms_before = len(self.ok(self.x.VM.get_all(self.s)))
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("PUT", f"/import?session_id={self.s}&sr_id={iso_sr}", xva)
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertGreaterEqual(r.status, 400, body[:300])
        self.assertEqual(len(self.ok(self.x.VM.get_all(self.s))), vms_before)
        self.assertEqual(os.listdir(isos), [])
        self.assertEqual(self.ok(self.x.SR.get_VDIs(self.s, iso_sr)), [])


# --- destructors and setters ---

def new_vdi(x, s, sr, sharable=False):
    return x.VDI.create(s, {"SR": sr, "name_label": "d", "name_description": "", "virtual_size": str(1 << 20),
                            "type": "user", "sharable": sharable, "read_only": False, "other_config": {},
                            "xenstore_data": {}, "sm_config": {}, "tags": []})["Value"]


def new_vbd(x, s, vm, vdi, device):
    return x.VBD.create(s, {"VM": vm, "VDI": vdi, "userdevice": device, "bootable": False, "mode": "RW",
                            "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
                            "qos_algorithm_type": "", "qos_algorithm_params": {}})


class destructors_and_setters(with_daemon):
    """D1 (all but host.destroy), D2."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.template = cls.x.VM.get_by_name_label(cls.s, "Other install media")["Value"][0]
        cls.pool = cls.x.pool.get_all(cls.s)["Value"][0]
        cls.sr = cls.x.pool.get_default_SR(cls.s, cls.pool)["Value"]

    def test_d1_a_network_in_use_is_not_destroyed(self):
        """D1: network.destroy of a network with an attached VIF is NETWORK_CONTAINS_VIF(vif), of the
        management network (a PIF, no VIF) NETWORK_CONTAINS_PIF(pif); both stay."""
        x, s = self.x, self.s
        net = self.ok(x.network.create(s, {"name_label": "d1 net"}))
        vm = self.ok(x.VM.clone(s, self.template, "d1 vif"))
        vif = self.ok(x.VIF.create(s, {"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "1500",
                                       "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}}))
        # Attached (its VM runs), as xapi requires of a VIF that keeps its network.
        self.ok(x.VM.provision(s, vm))
        self.ok(x.VM.start(s, vm, False, False))
        self.addCleanup(x.VM.hard_shutdown, s, vm)
        self.assertEqual(self.err(x.network.destroy(s, net)), ["NETWORK_CONTAINS_VIF", vif])
        self.assertEqual(self.ok(x.VIF.get_network(s, vif)), net)

        pif = self.ok(x.PIF.get_all(s))[0]
        management = self.ok(x.PIF.get_network(s, pif))
        self.assertEqual(self.ok(x.network.get_VIFs(s, management)), [])
        self.assertEqual(self.err(x.network.destroy(s, management)), ["NETWORK_CONTAINS_PIF", pif])
        self.assertIn(management, self.ok(x.network.get_all(s)))

    def test_d1_a_physical_pif_is_not_destroyed(self):
        """D1: PIF.destroy of a physical PIF is PIF_IS_PHYSICAL(pif); it stays."""
        pif = next(ref for ref, rec in self.ok(self.x.PIF.get_all_records(self.s)).items() if rec["physical"])
        self.assertEqual(self.err(self.x.PIF.destroy(self.s, pif)), ["PIF_IS_PHYSICAL", pif])
        self.assertIn(pif, self.ok(self.x.PIF.get_all(self.s)))

    def test_d1_the_console_of_a_running_vm_is_not_destroyed(self):
        """D1: console.destroy of the console of a running VM (the control domain) is
        OPERATION_NOT_ALLOWED; it stays."""
        vms = self.ok(self.x.VM.get_all_records(self.s))
        dom0 = next(rec for rec in vms.values() if rec["is_control_domain"])
        self.assertEqual(dom0["power_state"], "Running")
        console = dom0["consoles"][0]
        self.assertEqual(self.err(self.x.console.destroy(self.s, console))[0], "OPERATION_NOT_ALLOWED")
        self.assertIn(console, self.ok(self.x.console.get_all(self.s)))

    def test_d1_ha_host_failures_to_tolerate_is_never_negative(self):
        """D1: pool.set_ha_host_failures_to_tolerate(-5) is INVALID_VALUE; the value is unchanged."""
        before = self.ok(self.x.pool.get_ha_host_failures_to_tolerate(self.s, self.pool))
        self.assertEqual(self.err(self.x.pool.set_ha_host_failures_to_tolerate(self.s, self.pool, "-5"))[0],
                         "INVALID_VALUE")
        self.assertEqual(self.ok(self.x.pool.get_ha_host_failures_to_tolerate(self.s, self.pool)), before)

    def test_d1_what_the_storage_measures_and_owns_is_not_set_by_clients(self):
        """D1: the setters xapi keeps for its storage plugins (sizes, and the flags they own)
        would make the records lie about the images: from a client, root's included, each is
        PERMISSION_DENIED (the seed's error, as xapi answers any session but an SM plugin's)
        and nothing changes."""
        x, s = self.x, self.s
        vdi = new_vdi(x, s, self.sr)
        flip = lambda v: not v  # noqa: E731
        big = lambda v: str(int(v) + (1 << 40))  # noqa: E731
        setters = [("VDI", vdi, "virtual_size", big), ("VDI", vdi, "physical_utilisation", big),
                   ("VDI", vdi, "missing", flip), ("VDI", vdi, "managed", flip), ("VDI", vdi, "is_a_snapshot", flip),
                   ("VDI", vdi, "sharable", flip), ("VDI", vdi, "read_only", flip),
                   ("SR", self.sr, "physical_size", big), ("SR", self.sr, "virtual_allocation", big),
                   ("SR", self.sr, "physical_utilisation", big)]
        for cls, ref, field, change in setters:
            with self.subTest(f"{cls}.set_{field}"):
                api = getattr(x, cls)
                before = self.ok(getattr(api, f"get_{field}")(s, ref))
                error = self.err(getattr(api, f"set_{field}")(s, ref, change(before)))
                self.assertEqual(error[0], "PERMISSION_DENIED", error)
                self.assertEqual(self.ok(getattr(api, f"get_{field}")(s, ref)), before)

    def test_d2_a_disk_that_is_not_sharable_runs_in_one_vm_at_a_time(self):
        """D2: a non-sharable VDI attached read-write to two VMs: the second does not start
        while the first runs."""
        x, s = self.x, self.s
        vdi = new_vdi(x, s, self.sr)
        first = self.ok(x.VM.clone(s, self.template, "d2 first"))
        second = self.ok(x.VM.clone(s, self.template, "d2 second"))
        for vm in (first, second):
            self.ok(x.VM.provision(s, vm))
            self.ok(new_vbd(x, s, vm, vdi, "3"))
        self.ok(x.VM.start(s, first, False, False))
        self.addCleanup(x.VM.hard_shutdown, s, first)
        error = self.err(x.VM.start(s, second, False, False))
        self.assertEqual(error[:2], ["VDI_IN_USE", vdi], error)
        self.assertEqual(self.ok(x.VM.get_power_state(s, second)), "Halted")


class live_host(with_daemon):
    def test_d1_the_live_host_is_not_destroyed(self):
        """D1 (a daemon of its own: before the fix this destroys the host): host.destroy of this
        host, which is live, is HOST_IS_LIVE(host)."""
        host = self.ok(self.x.pool.get_master(self.s, self.ok(self.x.pool.get_all(self.s))[0]))
        answer = self.x.host.destroy(self.s, host)
        self.assertEqual(answer.get("ErrorDescription"), ["HOST_IS_LIVE", host], answer)
        self.assertEqual(self.ok(self.x.host.get_all(self.s)), [host])


# --- what the security review found (R1-R9) ---

def cpu_ticks(pid):
    """The user and system CPU time of process `pid` so far, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def settled_rss_kib(pid, seconds=60):
    """The VmRSS of process `pid` once it is done with what it was given: when it used less
    than a tenth of a CPU over half a second (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    idle = os.sysconf("SC_CLK_TCK") // 20
    before = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_ticks(pid)
        if now - before <= idle:
            break
        before = now
    return rss_kib(pid)


def login_from(source, port, user, password, timeout=30):
    """session.login_with_password over JSON-RPC to the daemon on 127.0.0.1 from the loopback
    address `source` (all of 127.0.0.0/8 is this host's): (True, session) or (False, error)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request("POST", "/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": "session.login_with_password",
                                                  "params": [user, password, "1.0", "review"], "id": 1}),
                  {"Content-Type": "application/json"})
        return json_outcome(json.loads(c.getresponse().read()))
    finally:
        c.close()


def largest_subscription():
    """The most names a subscription may hold (1,024), each of the most bytes a name may have
    (256): objects of the vm class that do not exist."""
    return [f"vm/OpaqueRef:{i:04d}-".ljust(256, "x") for i in range(1024)]


class review_logins(with_daemon):
    """R1, R6, R7 (the log): logins of clients that have no account, or guess root's password."""

    def test_r1_huge_user_names_are_refused_and_not_kept(self):
        """R1: 60 unauthenticated logins at once, each with a user name of its own of 4 MiB, are
        refused (SESSION_AUTHENTICATION_FAILED, or HTTP 503 for bodies over the daemon's budget),
        and once the daemon is done its VmRSS is less than 32 MiB above what it was: a name over
        256 bytes is refused before anything is kept of it (the login throttle kept every name
        it was given, up to 10,000 of them), and the buffers of large bodies go back to the
        system."""
        before = rss_kib(self.proc.pid)

        def attempt(i):
            return post_json(self.port, json.dumps({"jsonrpc": "2.0", "method": "session.login_with_password",
                                                    "params": [f"{i:06d}" + "A" * (4 << 20), "wrong"], "id": 1}), 60)
        refused = 0
        for answer, _ in in_parallel([(attempt, (i,)) for i in range(60)]):
            self.assertIsInstance(answer, dict, answer)
            if answer.get("http_status") == 503:
                continue
            ok, value = json_outcome(answer)
            self.assertFalse(ok, f"logged in: {value}")
            self.assertEqual(value[0], "SESSION_AUTHENTICATION_FAILED", value)
            refused += 1
        self.assertGreaterEqual(refused, 30, "most logins never reached the login check: the check proves nothing")
        grown = (settled_rss_kib(self.proc.pid) - before) >> 10
        print(f"\n  R1: {refused} logins with 4 MiB names refused; VmRSS +{grown} MiB", flush=True)
        self.assertLess(grown, 32, f"{refused} huge user names made the daemon keep {grown} MiB")

    def test_r6_guesses_from_many_addresses_do_not_lock_root_out(self):
        """R6: while wrong root passwords come from 40 other addresses (127.0.0.2-41: 40 at once,
        then 20 a second), root's right password from 127.0.0.1 logs in three times out of
        three, while from 127.0.0.2, after 6 more wrong ones from there, it is refused: failures
        are counted per address, and per user at an address, not per user alone (30 guesses
        from anywhere locked root out everywhere)."""
        stop = threading.Event()
        guesses = []

        def guess(i):
            try:
                guesses.append(login_from(f"127.0.0.{2 + i % 40}", self.port, "root", f"guess-{i}"))
            except OSError as e:
                guesses.append(e)
        # 46 at once: one from each address, and 6 more from 127.0.0.2.
        threads = [threading.Thread(target=guess, args=(i,)) for i in list(range(40)) + [40 * k for k in range(1, 7)]]

        def keep_guessing():
            i = 1000
            while not stop.wait(0.05):
                t = threading.Thread(target=guess, args=(i,))
                t.start()
                threads.append(t)
                i += 1
        for t in threads:
            t.start()
        background = threading.Thread(target=keep_guessing)
        background.start()
        roots = []
        try:
            time.sleep(0.5)  # the first 46 have come
            for _ in range(3):
                roots.append(timed(jsonrpc, self.port, "session.login_with_password", "root", PASSWORD, "1.0", "r6"))
                time.sleep(0.5)
            guesser = login_from("127.0.0.2", self.port, "root", PASSWORD)
        finally:
            stop.set()
            background.join()
            for t in list(threads):
                t.join(30)
        self.assertGreaterEqual(len(guesses), 60)
        for outcome in guesses:
            self.assertIsInstance(outcome, tuple, outcome)
            self.assertEqual(outcome[1][0], "SESSION_AUTHENTICATION_FAILED", outcome)
        for (ok, value), took in roots:
            self.assertTrue(ok, f"root's right password from 127.0.0.1 failed ({took:.1f} s) while "
                                f"{len(guesses)} guesses came from 40 other addresses: {value}")
        self.assertEqual(guesser, (False, ["SESSION_AUTHENTICATION_FAILED"]),
                         "after 7 wrong guesses from 127.0.0.2, root's right password from there was checked")

    def test_r7_a_failed_login_names_only_users_of_the_host_in_the_log(self):
        """R7: a failed login whose user name is not an account here (a password typed into the
        name field) is in xapid.log as user="(unknown)", never as the text typed; a failed
        login of root names root. (From an address of their own, 127.0.0.60, so that the lines
        are theirs.)"""
        typed = f"Tr0ub4dor&3-{os.getpid()}"
        for outcome, _ in in_parallel([(login_from, ("127.0.0.60", self.port, user, "not-the-password"))
                                       for user in (typed, "root")]):
            self.assertIsInstance(outcome, tuple, outcome)
            self.assertEqual(outcome[1][0], "SESSION_AUTHENTICATION_FAILED", outcome)
        with open(os.path.join(self.dir.name, "xapid.log"), errors="replace") as f:
            log = f.read()
        self.assertNotIn(typed, log, "the text typed as a user name is in the log")
        lines = [line for line in log.splitlines() if "session.login.failed" in line and "127.0.0.60" in line]
        self.assertEqual(sorted(line.split("user=")[1].split()[0] for line in lines), ['"(unknown)"', '"root"'], lines)


@needs_pam_users
class review_reader(role_daemon):
    """R2, R3, R5, R7 (host.get_log), R8, R9: what a read-only user could make the daemon keep or
    do. The counts kept per user (R3's pending tasks, R8's injects) are those of users of their
    own (`tasker`, `injector`)."""

    users = (("reader", "read-only"), ("tasker", "read-only"), ("injector", "read-only"))

    def test_r2_a_subscription_has_at_most_1024_names_of_256_bytes(self):
        """R2: event.register and event.from take 1,024 names of 256 bytes; 1,025 names, or a
        name of 257 bytes, is EVENT_SUBSCRIPTION_PARSE_FAILURE; event.register does not grow a
        session's registration past 1,024 objects either (a read-only user's registrations
        kept whatever they were given, names of 1 MiB and any number of them)."""
        session = self.ok(self.reader.login(self.x, "r2"))
        self.addCleanup(self.x.session.logout, session)
        names = largest_subscription()
        for method, more in (("event.register", ()), ("event.from", ("", 0.0))):
            with self.subTest(method):
                for what, classes in (("1,025 names", names + ["vm/one-more"]), ("a name of 257 bytes", ["vm/" + "x" * 254])):
                    ok, value = jsonrpc(self.port, method, session, classes, *more)
                    self.assertFalse(ok, f"{what}: accepted")
                    self.assertEqual(value[0], "EVENT_SUBSCRIPTION_PARSE_FAILURE", f"{what}: {value}")
                ok, value = jsonrpc(self.port, method, session, names, *more)
                self.assertTrue(ok, f"1,024 names of 256 bytes: {value}")
        ok, value = jsonrpc(self.port, "event.register", session, ["vm/one-more"])
        self.assertFalse(ok, "a registration grew past 1,024 objects")
        self.assertEqual(value[0], "EVENT_SUBSCRIPTION_PARSE_FAILURE", value)

    def test_r2_what_event_register_keeps_goes_with_its_session(self):
        """R2: 400 sessions that each register the largest subscription allowed (1,024 names of
        256 bytes) and log out leave the daemon's VmRSS less than 24 MiB above what it was after
        the first 50 (every registration was kept for good: 0.4 MiB a session)."""
        # Root's trusted logins over the unix socket: they cost next to nothing (a PAM login
        # grows the daemon's memory by itself, ~50 KiB each, which is not what is measured here).
        names = largest_subscription()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(os.path.join(self.dir.name, "xapid.sock"))
        self.addCleanup(sock.close)
        rest = b""

        def cycles(n):
            nonlocal rest
            for _ in range(n):
                sock.sendall(jsonrpc_request("session.login_with_password", ["", ""]))
                _, _, body, rest = read_answer(sock, rest)
                ok, session = json_outcome(json.loads(body))
                self.assertTrue(ok, session)
                sock.sendall(jsonrpc_request("event.register", [session, names]) + jsonrpc_request("session.logout", [session]))
                for what in ("event.register", "session.logout"):
                    _, _, body, rest = read_answer(sock, rest)
                    outcome = json_outcome(json.loads(body))
                    self.assertTrue(outcome[0], (what, outcome))
        cycles(50)
        before = rss_kib(self.proc.pid)
        cycles(350)
        grown = (rss_kib(self.proc.pid) - before) >> 10
        print(f"\n  R2: VmRSS +{grown} MiB over 350 sessions that registered 256 KiB of names", flush=True)
        self.assertLess(grown, 24, "registrations outlive their sessions")

    def test_r3_a_user_has_at_most_100_pending_tasks_with_labels_of_4_kib(self):
        """R3: task.create of a read-only user: a label or a description over 4 KiB is
        VALUE_NOT_SUPPORTED; past 100 pending tasks of the user (made in two sessions), it is
        TOO_MANY_PENDING_TASKS, until one of them is destroyed; root's tasks are not counted
        (a read-only user made tasks with 1 MiB labels without end)."""
        x = self.x
        first, second = self.tasker_s, self.ok(self.tasker.login(x, "r3"))
        self.addCleanup(x.session.logout, second)
        for label, description in (("l" * 4097, ""), ("", "d" * 4097)):
            ok, value = jsonrpc(self.port, "task.create", first, label, description)
            self.assertFalse(ok, f"a task with a label of {len(label)} bytes and a description of {len(description)}")
            self.assertEqual(value[0], "VALUE_NOT_SUPPORTED", value)
        tasks = [self.ok(x.task.create(first, "l" * 4096, "d" * 4096))]
        tasks += [self.ok(x.task.create((first, second)[i % 2], f"r3 {i}", "")) for i in range(99)]
        for session in (first, second):
            self.assertEqual(self.err(x.task.create(session, "the 101st", "")), ["TOO_MANY_PENDING_TASKS"])
        self.ok(x.task.destroy(self.s, self.ok(x.task.create(self.s, "root's", ""))))
        self.ok(x.task.destroy(first, tasks[0]))
        self.ok(x.task.create(second, "in its place", ""))
        self.assertEqual(self.err(x.task.create(first, "the 101st again", "")), ["TOO_MANY_PENDING_TASKS"])

    def test_r5_waits_on_one_object_do_not_grow_with_other_commits(self):
        """R5: with 240 event.from waits of a read-only user parked on one VM (4 sessions, 60
        each), 1,500 commits it does not want (root's event.inject on the pool) take at most 3
        times as long as 1,500 without them, plus 8 s, and the daemon's VmRSS grows by less than
        10 MiB: a wait keeps only the changes it wants (every wait kept a copy of every commit,
        and went through all of them again at each commit: 1,000 took 12 s and 24 MiB here)."""
        x = self.x
        pool = self.ok(x.pool.get_all(self.s))[0]
        vm = self.ok(x.VM.get_all(self.s))[0]
        inject = jsonrpc_request("event.inject", [self.s, "pool", pool])

        def commits(n, seconds):
            """n injects one after the other on one connection, stopped after `seconds`: how
            many were made, and how long they took."""
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            start, rest = time.monotonic(), b""
            try:
                for done in range(n):
                    if time.monotonic() - start > seconds:
                        return done, time.monotonic() - start
                    sock.sendall(inject)
                    _, _, body, rest = read_answer(sock, rest)
                    outcome = json_outcome(json.loads(body))
                    self.assertTrue(outcome[0], outcome)
                return n, time.monotonic() - start
            finally:
                sock.close()
        _, alone = commits(1500, 60)
        sessions = [self.reader_s] + [self.ok(self.reader.login(x, "r5")) for _ in range(3)]
        token = self.ok(getattr(x.event, "from")(self.reader_s, ["vm"], "", 0.0))["token"]
        waits = many_calls(self.port, [jsonrpc_request("event.from", [sessions[i % 4], [f"vm/{vm}"], token, 120.0])
                                       for i in range(240)])
        self.addCleanup(waits.close)
        waits.pump(1.0)
        self.assertEqual(waits.answers(), {}, "the waits did not all park")
        before = rss_kib(self.proc.pid)
        bound = 3 * alone + 8
        done, took = commits(1500, bound)
        grown = (rss_kib(self.proc.pid) - before) >> 10
        print(f"\n  R5: 1,500 commits in {alone:.1f} s alone; {done} in {took:.1f} s with 240 waits parked, "
              f"VmRSS +{grown} MiB", flush=True)
        self.assertEqual(done, 1500, f"{done} of 1,500 commits in {took:.1f} s (1,500 without the waits: {alone:.1f} s)")
        self.assertLess(grown, 10, "the waits kept what they do not want")
        waits.pump(0.1)
        self.assertEqual(waits.answers(), {}, "a wait on a VM was answered for commits of the pool")

    def test_r7_host_get_log_is_not_for_read_only_users(self):
        """R7: host.get_log shows the daemon's log, where failed logins are (names, addresses):
        a read-only user is refused (RBAC_PERMISSION_DENIED); root reads it."""
        host = self.ok(self.x.host.get_all(self.s))[0]
        error = self.err(self.x.host.get_log(self.reader_s, host))
        self.assertEqual(error[0], "RBAC_PERMISSION_DENIED", error)
        self.assertIn("xapid.ready", self.ok(self.x.host.get_log(self.s, host)))

    def test_r8_event_inject_is_rate_limited_per_user_not_per_session(self):
        """R8: a read-only user sends 100 event.inject calls on each of 5 sessions at once (500,
        pipelined on a connection per session): 100 of them succeed (the user's burst), and at
        most 20 a second more while they last (+10); the others are TOO_BUSY (each session had
        a burst of its own: all 500 went through)."""
        pool = self.ok(self.x.pool.get_all(self.s))[0]
        sessions = [self.injector_s] + [self.ok(self.injector.login(self.x, "r8")) for _ in range(4)]

        def burst(session):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            try:
                sock.sendall(b"".join(jsonrpc_request("event.inject", [session, "pool", pool], i) for i in range(100)))
                outcomes, rest = [], b""
                for _ in range(100):
                    _, _, body, rest = read_answer(sock, rest)
                    outcomes.append(json_outcome(json.loads(body)))
                return outcomes
            finally:
                sock.close()
        results, took = timed(in_parallel, [(burst, (session,)) for session in sessions])
        outcomes = []
        for r, _ in results:
            self.assertIsInstance(r, list, r)
            outcomes += r
        succeeded = sum(ok for ok, _ in outcomes)
        print(f"\n  R8: {succeeded} of 500 injects succeeded in {took:.1f} s", flush=True)
        self.assertLessEqual(succeeded, 110 + 20 * took, "the rate is counted per session")
        self.assertGreaterEqual(succeeded, 100)
        self.assertEqual({value[0] for ok, value in outcomes if not ok}, {"TOO_BUSY"})

    def test_r9_three_million_class_names_are_refused_at_once(self):
        """R9: event.from of a read-only user with 3 million class names (17 MiB) is
        EVENT_SUBSCRIPTION_PARSE_FAILURE within 4 s, parsing the 17 MiB included, on a loaded
        2-core machine (each name was compared with every class of the schema: 7.6 s of CPU)."""
        body = json.dumps({"jsonrpc": "2.0", "method": "event.from", "id": 1,
                           "params": [self.reader_s, ["zz"] * 3_000_000, "", 0.0]})
        answer, took = timed(post_json, self.port, body, 120)
        print(f"\n  R9: answered in {took:.2f} s", flush=True)
        ok, value = json_outcome(answer)
        self.assertFalse(ok, "accepted")
        self.assertEqual(value[0], "EVENT_SUBSCRIPTION_PARSE_FAILURE", value)
        self.assertLess(took, 4.0)


@needs_pam_users
class unread_answers(role_daemon):
    """R4: a daemon of its own for a thousand connections that never read."""

    users = (("reader", "read-only"),)

    def test_r4_answers_that_clients_never_read_are_not_all_held(self):
        """R4: 1,000 connections of a read-only user each send event.from(["*"], "", 0) (an answer
        of ~0.8 MB on a fresh host) and never read it (4 KiB receive buffers): meanwhile root's
        login, event.from and VM.set_name_label answer (within 10 s), and once the daemon is done
        its VmRSS is less than 384 MiB above what it was: the answers that wait for their
        clients are held to the daemon's budget of 256 MiB (all 1,000 were held: 1.4 GiB). The
        answers of one generation are usually one shared buffer (+33..69 MiB here); when a commit
        falls among the 1,000 they are not, the budget is used whole, and the connections' own
        buffers and the allocator's come on top (+342 MiB seen in a CI run)."""
        ok, first = jsonrpc(self.port, "event.from", self.reader_s, ["*"], "", 0.0)  # the first answer of its kind
        self.assertTrue(ok, first)
        request = jsonrpc_request("event.from", [self.reader_s, ["*"], "", 0.0])
        before = rss_kib(self.proc.pid)
        socks = []
        self.addCleanup(lambda: [sock.close() for sock in socks])
        for _ in range(1000):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", self.port))
            sock.sendall(request)
            socks.append(sock)
        root_answers_within(self, 10.0, self.dir.name)
        grown = (settled_rss_kib(self.proc.pid) - before) >> 10
        answered = 0
        for sock in socks:
            sock.setblocking(False)
            try:
                answered += sock.recv(12) == b"HTTP/1.1 200"
            except OSError:
                pass
        print(f"\n  R4: {answered} of 1,000 unread answers begun; VmRSS +{grown} MiB", flush=True)
        self.assertGreaterEqual(answered, 100, "the daemon answered next to none: the check proves nothing")
        self.assertLess(grown, 384, "the daemon holds the answers its clients do not read")


if __name__ == "__main__":
    unittest.main(verbosity=2)
