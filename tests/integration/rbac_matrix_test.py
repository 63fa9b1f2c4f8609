#!/usr/bin/env python3
"""The RBAC matrix (issue 13): for each of the six roles, every RPC that takes a session (and its
Async. form) and every HTTP transfer, called with that role's session, the outcome compared with
the datamodel's least role (proto/datamodel/rbac.json); and what each role reads —
get_all_records and event.from of every class — against the read rules (ARCHITECTURE.md, "Read
rules"): no class whose get_all_records the role may not call, no session or secret events, a
task's session only to the user who made it, and no other session's ref in any answer.

The calls must not act: every ref parameter is "OpaqueRef:bogus" and every other parameter has
a wrong type (a struct where a string, number, bool, enum or date is expected; an int where a
map, set or record is), with the right count, since the count is checked before RBAC. So a call
the role may make fails on its parameters (HANDLE_INVALID, FIELD_TYPE_ERROR, ...), or reads; a
call it may not make is RBAC_PERMISSION_DENIED(permission). What no parameter can keep from
acting is called only with the roles that must be refused (`NOT_CALLED_WHEN_ALLOWED`).

The six role users are system users that log in through PAM: the test needs root (skipped
otherwise). Usage: rbac_matrix_test.py PATH_TO_XAPID"""
import http.client
import json
import os
import sys
import threading
import time
import unittest
import xmlrpc.client

from xapid_support import needs_pam_users, pam_users, strings_in, with_daemon  # takes PATH_TO_XAPID from argv

HERE = os.path.dirname(os.path.abspath(__file__))
DATAMODEL = os.path.join(HERE, "..", "..", "proto", "datamodel")
with open(os.path.join(DATAMODEL, "xenapi.json")) as f:
    XENAPI = json.load(f)
with open(os.path.join(DATAMODEL, "rbac.json")) as f:
    RBAC = json.load(f)

ROLES = [r["name"] for r in RBAC["roles"]]  # the most powerful first
LEAST = RBAC["rpcs"]
NULL = "OpaqueRef:NULL"
BOGUS = "OpaqueRef:bogus"
DENIED = "RBAC_PERMISSION_DENIED"

# RPCs that act whatever their parameters, or take none: called only with the roles that must be
# refused them (Async forms too). Most are NOT_IMPLEMENTED today; they would act once they are not.
NOT_CALLED_WHEN_ALLOWED = {
    "pool.disable_external_auth": "ignores its pool and configuration (it succeeds with OpaqueRef:bogus): "
                                  "it would turn external authentication off and end every role's session",
    "host.shutdown_agent": "no parameter: it would stop the daemon",
    "host.restart_agent": "it would restart the daemon (the brief lists it among the calls that really act)",
    "host.management_disable": "no parameter: it would take the daemon off its management interface",
    "host.emergency_ha_disable": "no parameter: it would change the host's HA state outside the pool's",
    "pool.emergency_transition_to_master": "no parameter: it would change which host is the pool's master",
    "pool.disable_ha": "no parameter: it would change the pool's HA configuration",
    "pool.deconfigure_wlb": "no parameter: it would drop the pool's workload-balancing configuration",
    "pool.disable_redo_log": "no parameter: it would change the pool's redo-log configuration",
}
# RPCs that end the session they are called with: called by every role, each with a session of its
# own made for the call (so a role's session outlives the matrix whatever the answer).
ENDS_ITS_SESSION = ("session.logout", "session.local_logout")


def rank(role):
    return ROLES.index(role)


def allowed(role, rpc):
    """Whether `role` may call `rpc` (its wire name, without Async.) by the datamodel."""
    return rank(role) <= rank(LEAST[rpc])


def harmless(type_):
    """A value of the parameter's count but not of its type (or a ref to nothing)."""
    if type_.startswith("ref("):
        return BOGUS
    if type_.startswith(("map(", "set(", "record(")):
        return 7  # a struct would be a record (unknown members ignored) or a map
    return {"bogus": "bogus"}


# Every RPC that takes a session: (wire name, harmless parameters, whether it has an Async form).
RPCS = [(f"{c['name']}.{m['name']}", [harmless(p["type"]) for p in m["params"]], m["async"])
        for c in XENAPI["classes"] for m in c["messages"] if m["session"]]
CLASSES = [c["name"] for c in XENAPI["classes"]]
HAS_GET_ALL_RECORDS = {c["name"] for c in XENAPI["classes"] if any(m["name"] == "get_all_records" for m in c["messages"])}


def least_reader(cls):
    """The least role that may read the whole class: its get_all_records' (else get_record's)."""
    for rpc in (f"{cls}.get_all_records", f"{cls}.get_record"):
        if rpc in LEAST:
            return LEAST[rpc]
    return ROLES[-1]


def may_see_events(role, cls):
    return cls not in ("session", "secret") and rank(role) <= rank(least_reader(cls))


class timeout_transport(xmlrpc.client.Transport):
    """Keep-alive HTTP, as ServerProxy's own, but a call that never answers fails."""

    def make_connection(self, host):
        c = super().make_connection(host)
        c.timeout = 30
        return c


def call(proxy, method, *params):
    """The answer of `method` (a dict with Status), or {"Status": "Exception", ...} when the call
    itself failed (a fault, a closed connection, a timeout)."""
    target = proxy
    for part in method.split("."):
        target = getattr(target, part)
    try:
        return target(*params)
    except Exception as e:  # noqa: BLE001 - an answer to report
        return {"Status": "Exception", "ErrorDescription": [type(e).__name__, str(e)[:200]]}


def brief(answer):
    """An answer in a line, for failure messages."""
    if answer.get("Status") == "Success":
        return "Success " + repr(answer.get("Value"))[:80]
    return f"{answer.get('Status')} {answer.get('ErrorDescription')}"


def in_parallel(jobs):
    """Runs each (f, args) on a thread of its own; their results in the same order (an exception
    is the result of a job that raised one)."""
    results = [None] * len(jobs)

    def run(i, f, args):
        try:
            results[i] = f(*args)
        except Exception as e:  # noqa: BLE001 - reported by the assertions
            results[i] = e
    threads = [threading.Thread(target=run, args=(i, f, args)) for i, (f, args) in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def at_most(failures, n=40):
    head = "\n".join(failures[:n])
    return f"{len(failures)} failures:\n{head}" + (f"\n... and {len(failures) - n} more" if len(failures) > n else "")


@needs_pam_users
class rbac_matrix(with_daemon):
    """One daemon and six PAM users, one per role, each with a session. setUpClass makes every
    call (the matrix, the reads, the transfers) and keeps the answers; each test checks one rule
    over them."""

    @classmethod
    def setUpClass(cls):
        started = time.monotonic()
        cls.pam = pam_users()
        cls.addClassCleanup(cls.pam.cleanup)
        super().setUpClass()
        try:
            cls.prepare()
            cls.run_matrix()
            cls.wait_for_tasks()
            cls.read_everything()
            cls.transfer()
        except BaseException:
            cls.tearDownClass()
            raise
        checked = ", ".join(f"{role} {cls.checked[role]}" for role in ROLES)
        print(f"\nrbac matrix: calls checked per role: {checked} "
              f"({len(RPCS)} RPCs with a session, {sum(a for _, _, a in RPCS)} Async forms, "
              f"{len(CLASSES)} classes, 4 transfers; {time.monotonic() - started:.1f} s); not called with the roles "
              f"allowed them (they would act): {', '.join(sorted(NOT_CALLED_WHEN_ALLOWED))}", file=sys.stderr)

    # --- the calls ---

    @classmethod
    def prepare(cls):
        x, s = cls.x, cls.s
        cls.user, cls.session, cls.spare = {}, {}, {}
        for role in ROLES:
            user = cls.pam.role_user(x, s, role)
            cls.user[role] = user
            answers = [user.login(x, f"rbac {role}") for _ in range(1 + len(ENDS_ITS_SESSION))]
            for answer in answers:
                if answer["Status"] != "Success":
                    raise RuntimeError(f"{role} user {user.name} cannot log in: {answer}")
            cls.session[role] = answers[0]["Value"]
            cls.spare[role] = dict(zip(ENDS_ITS_SESSION, (a["Value"] for a in answers[1:])))
        # Every session ref of this test; a role may see only its own.
        cls.all_sessions = {s: "root"}
        for role in ROLES:
            cls.all_sessions[cls.session[role]] = role
            for spare in cls.spare[role].values():
                cls.all_sessions[spare] = role

        # Objects to read and export: a halted VM (not a template, without disks), a secret, and
        # a pending task of root's and of each role's own.
        template = x.VM.get_by_name_label(s, "Other install media")["Value"][0]
        cls.vm = x.VM.clone(s, template, "rbac matrix export")["Value"]
        answer = x.VM.set_is_a_template(s, cls.vm, False)
        if answer["Status"] != "Success":
            raise RuntimeError(f"VM.set_is_a_template: {answer}")
        cls.vm_uuid = x.VM.get_uuid(s, cls.vm)["Value"]
        x.secret.create(s, {"value": "rbac matrix secret", "other_config": {}})
        cls.own_tasks = {"root": {x.task.create(s, "rbac matrix root", "")["Value"]}}
        for role in ROLES:
            cls.own_tasks[role] = {x.task.create(cls.session[role], f"rbac matrix {role}", "")["Value"]}
        cls.pending_forever = {t for tasks in cls.own_tasks.values() for t in tasks}  # task.create's stay pending
        cls.own_tasks["root"].add(getattr(x, "Async").host.list_methods(s)["Value"])
        cls.checked = {role: 0 for role in ROLES}
        cls.leaks = []  # (role, what was called, whose session ref it answered)

    @classmethod
    def look_for_sessions(cls, role, what, answer):
        """Records every session ref but the role's own in `answer`."""
        for ref in strings_in(answer) & cls.all_sessions.keys():
            if cls.all_sessions[ref] != role:
                cls.leaks.append((role, what, cls.all_sessions[ref]))

    @classmethod
    def run_matrix(cls):
        """Every RPC with a session, and its Async form, once per role (a thread and a connection
        each): cls.matrix[role] is a list of (method, allowed, answer)."""
        def one_role(role):
            p = xmlrpc.client.ServerProxy(cls.url, transport=timeout_transport())
            out = []
            for rpc, params, has_async in RPCS:
                may = allowed(role, rpc)
                if may and rpc in NOT_CALLED_WHEN_ALLOWED:
                    continue
                for method in [rpc] + ([f"Async.{rpc}"] if has_async else []):
                    session = cls.spare[role][rpc] if rpc in ENDS_ITS_SESSION else cls.session[role]
                    answer = call(p, method, session, *params)
                    cls.look_for_sessions(role, method, answer)
                    if method.startswith("Async.") and answer.get("Status") == "Success":
                        cls.own_tasks[role].add(answer["Value"])
                    out.append((method, may, answer))
            # After session.logout/local_logout: the spare session is gone when the call was allowed.
            for rpc in ENDS_ITS_SESSION:
                out.append((f"(after {rpc})", allowed(role, rpc), call(p, "session.get_uuid", cls.spare[role][rpc],
                                                                        cls.spare[role][rpc])))
            p("close")()
            return out
        roles = list(ROLES)
        results = in_parallel([(one_role, (role,)) for role in roles])
        cls.matrix = {}
        for role, r in zip(roles, results):
            if isinstance(r, Exception):
                raise r
            cls.matrix[role] = r
            cls.checked[role] += len(r) - len(ENDS_ITS_SESSION)

    @classmethod
    def wait_for_tasks(cls):
        """Until every Async call's task has finished (their records change no more)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tasks = cls.x.task.get_all_records(cls.s)["Value"]
            if not [t for t, r in tasks.items() if r["status"] == "pending" and t not in cls.pending_forever]:
                return
            time.sleep(0.1)

    @classmethod
    def read_everything(cls):
        """get_all_records and event.from([class], "", 0) of every class, and event.from(["*"]),
        for root and every role at once: cls.reads[who][cls] = (get_all_records' answer or None,
        event.from's answer)."""
        def reads(who, session):
            p = xmlrpc.client.ServerProxy(cls.url, transport=timeout_transport())
            out = {}
            for name in CLASSES + ["*"]:
                records = call(p, f"{name}.get_all_records", session) if name in HAS_GET_ALL_RECORDS else None
                events = call(p, "event.from", session, [name], "", 0.0)
                if who != "root":
                    cls.look_for_sessions(who, f"{name}.get_all_records", records)
                    cls.look_for_sessions(who, f"event.from([{name}])", events)
                out[name] = (records, events)
            p("close")()
            return out
        everyone = [("root", cls.s)] + [(role, cls.session[role]) for role in ROLES]
        results = in_parallel([(reads, who) for who in everyone])
        cls.reads = {}
        for (who, _), r in zip(everyone, results):
            if isinstance(r, Exception):
                raise r
            cls.reads[who] = r
            if who != "root":
                cls.checked[who] += 2 * len(CLASSES) + 1 - len(set(CLASSES) - HAS_GET_ALL_RECORDS)

    @classmethod
    def http(cls, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=30)
        try:
            c.request(method, path, body)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    @classmethod
    def transfer(cls):
        """/export and /export_metadata of the halted VM, /import and /import_metadata of a junk
        body, by every role (one after the other: an export is an operation of the VM)."""
        cls.vms_before = set(cls.x.VM.get_all(cls.s)["Value"])
        junk = b"not an XVA archive\n" * 64
        cls.transfers = {}
        for role in ROLES:
            s = cls.session[role]
            for method, path, permission in (("GET", f"/export?uuid={cls.vm_uuid}&session_id={s}", "vm.export"),
                                             ("GET", f"/export_metadata?uuid={cls.vm_uuid}&session_id={s}", "vm.export"),
                                             ("PUT", f"/import?session_id={s}", "vm.import"),
                                             ("PUT", f"/import_metadata?session_id={s}", "vm.import")):
                status, body = cls.http(method, path, junk if method == "PUT" else None)
                for ref, owner in cls.all_sessions.items():  # the body is bytes: any occurrence
                    if owner != role and ref.encode() in body:
                        cls.leaks.append((role, path.split("?")[0], owner))
                cls.transfers[(role, path.split("?")[0])] = (status, body, permission)
                cls.checked[role] += 1
        cls.vms_after = set(cls.x.VM.get_all(cls.s)["Value"])

    # --- the rules ---

    def test_every_rpc_is_refused_exactly_to_the_roles_below_its_least_role(self):
        """Each RPC with a session, called by each role: RBAC_PERMISSION_DENIED(permission) — the
        RPC's wire name in lower case — exactly when the role is less powerful than the RPC's
        least role; any other answer otherwise (the role's session still valid)."""
        failures = []
        for role in ROLES:
            for method, may, answer in self.matrix[role]:
                if method.startswith(("Async.", "(after ")):
                    continue
                error = answer.get("ErrorDescription") or []
                if may:
                    if answer["Status"] == "Exception" or error[:1] in ([DENIED], ["SESSION_INVALID"]):
                        failures.append(f"{method} as {role}: {brief(answer)}; expected any answer but "
                                        f"{DENIED} (least role {LEAST[method]})")
                elif error[:2] != [DENIED, method.lower()]:
                    failures.append(f"{method} as {role}: {brief(answer)}; expected [{DENIED}, {method.lower()}, ...] "
                                    f"(least role {LEAST[method]})")
        self.assertEqual(failures, [], at_most(failures))

    def test_async_forms_answer_a_task_or_are_refused_at_once(self):
        """Each Async form, called by each role: below the RPC's least role,
        RBAC_PERMISSION_DENIED with the RPC's own permission at once (no task); else a task of the
        caller's (listed by its task.get_all_records, with its session), or NOT_IMPLEMENTED when the
        RPC has no handler (the synchronous form answers NOT_IMPLEMENTED too)."""
        failures = []
        for role in ROLES:
            records = self.reads[role]["task"][0].get("Value", {})
            sync = {m: a for m, _, a in self.matrix[role] if not m.startswith("Async.")}
            for method, may, answer in self.matrix[role]:
                if not method.startswith("Async."):
                    continue
                rpc = method[len("Async."):]
                error = answer.get("ErrorDescription") or []
                if not may:
                    if error[:2] != [DENIED, rpc.lower()]:
                        failures.append(f"{method} as {role}: {brief(answer)}; expected [{DENIED}, {rpc.lower()}, ...] "
                                        f"(least role {LEAST[rpc]})")
                elif answer["Status"] == "Success":
                    task = answer["Value"]
                    if task not in records:
                        failures.append(f"{method} as {role}: answered {task!r}, not a task the role can read")
                    elif records[task]["session"] != self.session[role]:
                        failures.append(f"{method} as {role}: its task {task} shows session "
                                        f"{records[task]['session']!r}, not the caller's")
                elif not (error[:1] == ["NOT_IMPLEMENTED"]
                          and (sync[rpc].get("ErrorDescription") or [])[:1] == ["NOT_IMPLEMENTED"]):
                    failures.append(f"{method} as {role}: {brief(answer)}; expected a task ref "
                                    f"(least role {LEAST[rpc]})")
        self.assertEqual(failures, [], at_most(failures))

    def test_calls_that_end_a_session_end_only_when_allowed(self):
        """session.logout (read-only) and session.local_logout (pool-admin), each called with a
        spare session of the role: afterwards the spare session is invalid exactly when the call
        was allowed; the role's own session is valid throughout."""
        failures = []
        for role in ROLES:
            for method, may, answer in self.matrix[role]:
                if not method.startswith("(after "):
                    continue
                error = answer.get("ErrorDescription") or []
                if may and error[:1] != ["SESSION_INVALID"]:
                    failures.append(f"{method} as {role}: session.get_uuid of the spare session: {brief(answer)}; "
                                    "expected SESSION_INVALID")
                if not may and answer["Status"] != "Success":
                    failures.append(f"{method} as {role}: session.get_uuid of the spare session: {brief(answer)}; "
                                    "expected its uuid (the refused call ended it)")
            answer = call(self.x, "session.get_uuid", self.session[role], self.session[role])
            if answer["Status"] != "Success":
                failures.append(f"{role}'s session after the matrix: {brief(answer)}")
        self.assertEqual(failures, [], at_most(failures))

    def test_get_all_records_is_refused_exactly_to_the_roles_below_its_least_role(self):
        """<class>.get_all_records of every class that has one, by every role: refused
        (RBAC_PERMISSION_DENIED <class>.get_all_records) exactly below its least role; else the
        records root gets, the same refs."""
        failures = []
        for name in sorted(HAS_GET_ALL_RECORDS):
            rpc = f"{name}.get_all_records"
            roots = self.reads["root"][name][0]
            self.assertEqual(roots["Status"], "Success", (rpc, roots))
            for role in ROLES:
                answer = self.reads[role][name][0]
                error = answer.get("ErrorDescription") or []
                if not allowed(role, rpc):
                    if error[:2] != [DENIED, rpc.lower()]:
                        failures.append(f"{rpc} as {role}: {brief(answer)}; expected [{DENIED}, {rpc.lower()}, ...]")
                elif answer["Status"] != "Success":
                    failures.append(f"{rpc} as {role}: {brief(answer)}; expected the records")
                elif set(answer["Value"]) != set(roots["Value"]):
                    failures.append(f"{rpc} as {role}: refs {sorted(answer['Value'])[:5]}, root's "
                                    f"{sorted(roots['Value'])[:5]}")
        self.assertEqual(failures, [], at_most(failures))

    def test_event_from_shows_each_role_exactly_the_classes_it_may_read(self):
        """event.from([class], "", 0) of every class, by every role: events of that class only, all
        `add`; none for session and secret, none for a class whose get_all_records the role may
        not call; else one per record get_all_records gives (the same snapshot), as root's
        event.from gives. event.from(["*"]) lists no class the role may not read."""
        failures = []
        for name in CLASSES:
            roots = self.reads["root"][name][1]
            self.assertEqual(roots["Status"], "Success", (name, roots))
            root_refs = {e["ref"] for e in roots["Value"]["events"]}
            for role in ROLES:
                records, answer = self.reads[role][name]
                what = f"event.from([{name}]) as {role}"
                if answer["Status"] != "Success":
                    failures.append(f"{what}: {brief(answer)}; expected events")
                    continue
                events = answer["Value"]["events"]
                if {e["class"] for e in events} - {name.lower()} or {e["operation"] for e in events} - {"add"}:
                    failures.append(f"{what}: classes {sorted({e['class'] for e in events})}, operations "
                                    f"{sorted({e['operation'] for e in events})}")
                refs = {e["ref"] for e in events}
                if not may_see_events(role, name):
                    if refs:
                        failures.append(f"{what}: {len(refs)} events, e.g. {sorted(refs)[:3]}; expected none "
                                        f"(least reader {least_reader(name)})")
                    continue
                if name in ("session", "secret"):
                    continue
                if refs != root_refs:
                    failures.append(f"{what}: refs {sorted(refs)[:3]}... ({len(refs)}), root's event.from "
                                    f"{sorted(root_refs)[:3]}... ({len(root_refs)})")
                if records is not None and records["Status"] == "Success":
                    if refs != set(records["Value"]):
                        failures.append(f"{what}: {len(refs)} events, get_all_records {len(records['Value'])} records")
                    for e in events:
                        if e["ref"] in records["Value"] and e["snapshot"] != records["Value"][e["ref"]]:
                            differ = sorted(k for k in e["snapshot"] if e["snapshot"][k] != records["Value"][e["ref"]].get(k))
                            failures.append(f"{what}: the snapshot of {e['ref']} differs from its record in {differ}")
            # Root, too, has no session or secret events.
            if name in ("session", "secret") and root_refs:
                failures.append(f"event.from([{name}]) as root: {len(root_refs)} events; expected none")
        for role in ROLES:
            answer = self.reads[role]["*"][1]
            if answer["Status"] != "Success":
                failures.append(f"event.from([*]) as {role}: {brief(answer)}")
                continue
            listed = {e["class"] for e in answer["Value"]["events"]}
            forbidden = listed - {c.lower() for c in CLASSES if may_see_events(role, c)}
            if forbidden:
                failures.append(f"event.from([*]) as {role}: events of {sorted(forbidden)}")
        self.assertEqual(failures, [], at_most(failures))

    def test_a_task_shows_its_session_only_to_its_owner(self):
        """Every task a role reads (get_all_records and event snapshots): its session is the
        role's own when the role made it (task.create, its Async calls), else OpaqueRef:NULL —
        root's tasks and other roles' included. Every role has tasks of its own to see."""
        failures = []
        for role in ROLES:
            records, events = self.reads[role]["task"]
            seen = [("task.get_all_records", t, r) for t, r in records["Value"].items()]
            seen += [("event.from([task])", e["ref"], e["snapshot"]) for e in events["Value"]["events"]]
            own = 0
            for what, task, record in seen:
                expected = self.session[role] if task in self.own_tasks[role] else NULL
                own += task in self.own_tasks[role]
                if record["session"] != expected:
                    owner = next((w for w, ts in self.own_tasks.items() if task in ts), "nobody known")
                    failures.append(f"{what} as {role}: task {task} (made by {owner}) shows session "
                                    f"{record['session']!r} ({self.all_sessions.get(record['session'], '?')}'s); "
                                    f"expected {expected!r}")
            if not own:
                failures.append(f"{role} read none of its own tasks ({len(self.own_tasks[role])} made)")
            others = {t for w, ts in self.own_tasks.items() if w != role for t in ts}
            if not others & set(records["Value"]):
                failures.append(f"{role} read no task of anyone else: the rule was not exercised")
        self.assertEqual(failures, [], at_most(failures))

    def test_no_answer_to_a_role_holds_another_sessions_ref(self):
        """No answer to a role — the matrix, the reads, the transfers — holds the ref of a session
        but its own (root's, the other roles', their spare sessions)."""
        leaks = sorted(set(f"{what} as {role}: holds a session ref of {owner}" for role, what, owner in self.leaks))
        self.assertEqual(leaks, [], at_most(leaks))

    def test_transfers_need_vm_admin(self):
        """GET /export and /export_metadata of a halted VM, PUT /import and /import_metadata of a
        junk body, with each role's session: below vm-admin 403 with RBAC_PERMISSION_DENIED
        (vm.export, vm.import) in the body; vm-admin and above past the check (not 401 or 403:
        an export, or an import error); no junk import made a VM."""
        failures = []
        for (role, path), (status, body, permission) in self.transfers.items():
            text = body[:200].decode("latin-1")
            if rank(role) > rank("vm-admin"):
                if status != 403 or not text.startswith(f"{DENIED} {permission}"):
                    failures.append(f"{path} as {role}: {status} {text!r}; expected 403 {DENIED} {permission}")
            elif status in (401, 403) or DENIED in text:
                failures.append(f"{path} as {role}: {status} {text!r}; expected past the RBAC check")
            elif path.startswith("/export") and status != 200:
                failures.append(f"{path} as {role}: {status} {text!r}; expected the archive")
        if self.vms_after != self.vms_before:
            failures.append(f"the junk imports made VMs: {sorted(self.vms_after - self.vms_before)}")
        self.assertEqual(failures, [], at_most(failures))


if __name__ == "__main__":
    unittest.main(verbosity=2)
