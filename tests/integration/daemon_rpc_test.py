#!/usr/bin/env python3
"""Starts a real xapid process and talks to it over loopback HTTP and its unix socket with
Python's own XML-RPC client and plain JSON-RPC, as scripts do.

Usage: daemon_rpc_test.py PATH_TO_XAPID"""
import http.client
import json
import os
import shutil
import re
import socket
import subprocess
import tempfile
import time
import unittest
import xmlrpc.client

# The helpers are shared with the other integration tests (storage_test and vm_lifecycle_test
# import them from here); xapid_support takes PATH_TO_XAPID from argv.
from xapid_support import (PASSWORD, XAPID, needs_pam_users, pam_users, start_daemon, stop_daemon, unix_connection,
                           with_daemon)


class daemon_rpc_test(with_daemon):

    def post(self, path, body, content_type="text/xml"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("POST", path, body, {"Content-Type": content_type})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()

    def login(self, path="/"):
        answer = xmlrpc.client.ServerProxy(self.url + path).session.login_with_password("root", PASSWORD)
        self.assertEqual(answer["Status"], "Success", answer)
        return answer["Value"]

    def test_xmlrpc_client_gets_structured_errors_on_every_path(self):
        for path in ("/", "/RPC2", "/xmlrpc"):
            proxy = xmlrpc.client.ServerProxy(self.url + path)
            session = self.login(path)
            answer = proxy.VM.start(session, "OpaqueRef:vm", False, False)
            self.assertEqual(answer["Status"], "Failure")
            self.assertEqual(answer["ErrorDescription"], ["HANDLE_INVALID", "VM", "OpaqueRef:vm"])
            answer = proxy.VM.migrate_send(session, "OpaqueRef:vm", {}, True, {}, {}, {})
            self.assertEqual(answer["ErrorDescription"], ["NOT_IMPLEMENTED", "VM.migrate_send"])
            self.assertEqual(proxy.VM.start("OpaqueRef:bogus", "OpaqueRef:vm", False, False)["ErrorDescription"],
                             ["SESSION_INVALID", "OpaqueRef:bogus"])

    def test_login_in_both_forms_and_logout(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s2 = self.ok(proxy.session.login_with_password("root", PASSWORD))
        s4 = self.ok(proxy.session.login_with_password("root", PASSWORD, "1.0", "integration-test"))
        self.assertTrue(s2.startswith("OpaqueRef:"))
        self.assertEqual(self.ok(proxy.session.get_originator(s4, s4)), "integration-test")
        self.assertTrue(self.ok(proxy.session.get_is_local_superuser(s2, s2)))
        self.ok(proxy.session.logout(s2))
        self.assertEqual(self.err(proxy.pool.get_all(s2)), ["SESSION_INVALID", s2])
        self.ok(proxy.pool.get_all(s4))

    def test_a_wrong_password_fails_after_a_delay(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        start = time.monotonic()
        self.assertEqual(self.err(proxy.session.login_with_password("root", "wrong")), ["SESSION_AUTHENTICATION_FAILED"])
        self.assertGreaterEqual(time.monotonic() - start, 0.3)
        self.assertEqual(self.err(proxy.session.login_with_password("nobody", PASSWORD)), ["SESSION_AUTHENTICATION_FAILED"])
        # Only the unix socket trusts an empty user and password.
        self.assertEqual(self.err(proxy.session.login_with_password("", "")), ["SESSION_AUTHENTICATION_FAILED"])

    def test_the_first_boot_made_a_pool_whose_master_is_this_host(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s = self.login()
        pools = self.ok(proxy.pool.get_all(s))
        self.assertEqual(len(pools), 1)
        host = self.ok(proxy.pool.get_master(s, pools[0]))
        self.assertEqual(self.ok(proxy.session.get_this_host(s, s)), host)
        record = self.ok(proxy.host.get_record(s, host))
        self.assertEqual(record["address"], "127.0.0.1")
        self.assertEqual(record["API_version_major"], "2")  # ints travel as strings in XML-RPC
        self.assertEqual(self.ok(proxy.host.get_by_uuid(s, record["uuid"])), host)
        self.assertEqual(self.ok(proxy.host.get_all_records(s)), {host: record})

        # The rest of a XenServer host's first boot: CPUs, metrics, control domain, network, templates.
        self.assertEqual(len(record["host_CPUs"]), int(record["cpu_info"]["cpu_count"]))
        self.assertTrue(self.ok(proxy.host_metrics.get_live(s, record["metrics"])))
        vms = self.ok(proxy.VM.get_all_records(s))
        dom0 = [v for v in vms.values() if v["is_control_domain"]]
        self.assertEqual(len(dom0), 1)
        self.assertEqual((dom0[0]["power_state"], dom0[0]["resident_on"], dom0[0]["domid"]), ("Running", host, "0"))
        self.assertEqual(len(dom0[0]["consoles"]), 1)
        templates = sorted(v["name_label"] for v in vms.values() if v["is_a_template"])
        self.assertIn("Other install media", templates)
        self.assertGreaterEqual(len(templates), 4)
        pif = self.ok(proxy.PIF.get_record(s, record["PIFs"][0]))
        self.assertTrue(pif["management"])
        self.assertEqual(pif["IP"], "127.0.0.1")
        self.assertEqual(self.ok(proxy.network.get_bridge(s, pif["network"])), "xenbr0")

    def test_implicit_rpcs_read_and_write_fields(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s = self.login()
        pool = self.ok(proxy.pool.get_all(s))[0]
        self.ok(proxy.pool.set_name_label(s, pool, "integration pool"))
        self.assertEqual(self.ok(proxy.pool.get_name_label(s, pool)), "integration pool")
        self.ok(proxy.pool.add_to_other_config(s, pool, "owner", "tests"))
        self.assertEqual(self.err(proxy.pool.add_to_other_config(s, pool, "owner", "again")),
                         ["MAP_DUPLICATE_KEY", "pool", "other_config", self.ok(proxy.pool.get_uuid(s, pool)), "owner"])
        self.assertEqual(self.ok(proxy.pool.get_other_config(s, pool)), {"owner": "tests"})
        self.ok(proxy.pool.remove_from_other_config(s, pool, "owner"))
        self.assertEqual(self.ok(proxy.pool.get_other_config(s, pool)), {})
        self.ok(proxy.pool.add_tags(s, pool, "blue"))
        self.assertEqual(self.ok(proxy.pool.get_tags(s, pool)), ["blue"])
        self.assertEqual(self.err(proxy.pool.set_ha_allow_overcommit(s, pool, "yes")), ["FIELD_TYPE_ERROR", "ha_allow_overcommit"])
        self.assertEqual(self.err(proxy.pool.get_name_label(s, "OpaqueRef:nope")), ["HANDLE_INVALID", "pool", "OpaqueRef:nope"])
        self.assertEqual(self.err(proxy.VM.get_by_uuid(s, "not-a-uuid")), ["UUID_INVALID", "VM", "not-a-uuid"])

    def test_create_find_and_destroy(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s = self.login()
        net = self.ok(proxy.network.create(s, {"name_label": "integration net", "MTU": "1500",
                                                "other_config": {"a": "b"}, "bridge": "xenbr9"}))
        self.assertEqual(self.ok(proxy.network.get_by_name_label(s, "integration net")), [net])
        self.assertEqual(self.ok(proxy.network.get_MTU(s, net)), "1500")
        self.assertEqual(len(self.ok(proxy.network.get_uuid(s, net))), 36)
        self.assertEqual(self.err(proxy.network.create(s, {"MTU": "lots"})), ["FIELD_TYPE_ERROR", "MTU"])
        self.ok(proxy.network.destroy(s, net))
        self.assertEqual(self.ok(proxy.network.get_by_name_label(s, "integration net")), [])
        self.assertEqual(self.err(proxy.network.destroy(s, net)), ["HANDLE_INVALID", "network", net])

    def test_jsonrpc_login_and_calls(self):
        _, _, body = self.post("/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": "session.login_with_password",
                                                        "params": ["root", PASSWORD, "2.0", "json"], "id": 1}))
        session = json.loads(body)["result"]
        _, _, body = self.post("/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": "pool.get_all_records",
                                                        "params": [session], "id": 2}))
        pools = json.loads(body)["result"]
        self.assertEqual(len(pools), 1)
        record = list(pools.values())[0]
        self.assertIsInstance(record["ha_host_failures_to_tolerate"], int)  # a JSON number, not a string
        _, _, body = self.post("/jsonrpc", json.dumps({"method": "VM.get_all", "params": ["OpaqueRef:x"], "id": 3}))
        self.assertEqual(json.loads(body), {"result": None, "error": ["SESSION_INVALID", "OpaqueRef:x"], "id": 3})

    def test_unix_socket_trusts_an_empty_login(self):
        c = unix_connection(os.path.join(self.dir.name, "xapid.sock"))
        c.request("POST", "/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": "session.login_with_password",
                                                   "params": ["", ""], "id": 1}))
        session = json.loads(c.getresponse().read())["result"]
        c.request("POST", "/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": "pool.get_all", "params": [session], "id": 2}))
        self.assertEqual(len(json.loads(c.getresponse().read())["result"]), 1)

    def test_event_from_starts_with_every_object_and_then_waits_for_changes(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s = self.login()
        first = self.ok(getattr(proxy.event, "from")(s, ["pool", "host"], "", 0.0))
        classes = sorted(e["class"] for e in first["events"])
        self.assertEqual(classes, ["host", "pool"])
        self.assertTrue(all(e["operation"] == "add" and "snapshot" in e for e in first["events"]))
        self.assertEqual(first["valid_ref_counts"], {"host": 1, "pool": 1})
        pool = self.ok(proxy.pool.get_all(s))[0]

        # Nothing changes: the call returns at its timeout with no events and the same token.
        quiet = self.ok(getattr(proxy.event, "from")(s, ["pool"], first["token"], 0.2))
        self.assertEqual(quiet["events"], [])
        self.assertEqual(quiet["token"], first["token"])

        # A change wakes a waiting call long before its timeout.
        result = {}
        def wait():
            p = xmlrpc.client.ServerProxy(self.url)
            start = time.monotonic()
            result["answer"] = getattr(p.event, "from")(s, ["pool"], first["token"], 30.0)
            result["seconds"] = time.monotonic() - start
        import threading
        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)  # let the call start waiting: the change must come after it
        self.ok(proxy.pool.set_name_description(s, pool, "changed"))
        waiter.join(30)
        answer = self.ok(result["answer"])
        self.assertLess(result["seconds"], 5.0)
        self.assertEqual([(e["class"], e["operation"], e["ref"]) for e in answer["events"]], [("pool", "mod", pool)])
        self.assertEqual(answer["events"][0]["snapshot"]["name_description"], "changed")
        self.assertGreater(answer["token"], first["token"])

    def test_event_filters_tokens_and_inject(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s = self.login()
        ev_from = getattr(proxy.event, "from")
        pool = self.ok(proxy.pool.get_all(s))[0]
        token = self.ok(proxy.event.inject(s, "pool", pool))
        net = self.ok(proxy.network.create(s, {"name_label": "events net"}))
        only_pool = self.ok(ev_from(s, ["pool"], token, 0.0))
        self.assertEqual([e["class"] for e in only_pool["events"]], ["pool"])  # the injected one
        everything = self.ok(ev_from(s, ["*"], token, 0.0))
        self.assertIn(("network", "add", net), [(e["class"], e["operation"], e["ref"]) for e in everything["events"]])
        self.ok(proxy.network.destroy(s, net))
        gone = self.ok(ev_from(s, ["network/" + net], everything["token"], 0.0))
        self.assertEqual([(e["operation"], e["ref"]) for e in gone["events"]], [("del", net)])
        self.assertEqual(self.err(ev_from(s, ["*"], "not a token", 0.0)), ["EVENT_FROM_TOKEN_PARSE_FAILURE", "not a token"])
        self.assertEqual(self.err(proxy.event.inject(s, "pool", "OpaqueRef:nope")), ["HANDLE_INVALID", "pool", "OpaqueRef:nope"])

    def test_event_register_and_next(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s = self.login()
        self.assertEqual(self.err(proxy.event.next(s)), ["SESSION_NOT_REGISTERED", s])
        self.ok(proxy.event.register(s, ["network"]))
        net = self.ok(proxy.network.create(s, {"name_label": "next net"}))
        events = self.ok(proxy.event.next(s))
        self.assertEqual([(e["class"], e["operation"], e["ref"]) for e in events], [("network", "add", net)])
        self.ok(proxy.network.destroy(s, net))
        self.assertEqual([e["operation"] for e in self.ok(proxy.event.next(s))], ["del"])

    def wait_task(self, proxy, s, task):
        """Follows a task through event.from, as clients do, until it is no longer pending."""
        token = self.ok(proxy.event.inject(s, "task", task))
        while self.ok(proxy.task.get_status(s, task)) == "pending":
            token = self.ok(getattr(proxy.event, "from")(s, ["task/" + task], token, 10.0))["token"]
        return self.ok(proxy.task.get_record(s, task))

    def test_async_calls_answer_a_task_that_ends_with_the_result(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s = self.login()
        task = self.ok(getattr(proxy, "Async").network.create(s, {"name_label": "async net"}))
        self.assertTrue(task.startswith("OpaqueRef:"))
        record = self.wait_task(proxy, s, task)
        self.assertEqual(record["status"], "success")
        self.assertEqual(record["name_label"], "Async.network.create")
        self.assertEqual(record["progress"], 1.0)
        net = self.ok(proxy.network.get_by_name_label(s, "async net"))[0]
        self.assertEqual(record["result"], "<value>" + net + "</value>")
        self.assertEqual(xmlrpc.client.loads("<params><param>" + record["result"] + "</param></params>")[0][0], net)

        failed = self.wait_task(proxy, s, self.ok(getattr(proxy, "Async").network.create(s, {"MTU": "big"})))
        self.assertEqual(failed["status"], "failure")
        self.assertEqual(failed["error_info"], ["FIELD_TYPE_ERROR", "MTU"])
        # Async forms exist only where the seed says so, and unknown ones stay unknown.
        self.assertEqual(self.err(getattr(proxy, "Async").session.logout(s)), ["MESSAGE_METHOD_UNKNOWN", "Async.session.logout"])

    def test_tasks_end_with_their_session(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s = self.login()
        other = self.login()
        task = self.ok(getattr(proxy, "Async").network.create(other, {"name_label": "task of a session"}))
        self.wait_task(proxy, other, task)
        self.assertIn(task, self.ok(proxy.task.get_all(s)))
        self.ok(proxy.session.logout(other))
        self.assertNotIn(task, self.ok(proxy.task.get_all(s)))

    def test_a_clients_own_task_can_be_cancelled(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s = self.login()
        task = self.ok(proxy.task.create(s, "import", "an import the client runs"))
        record = self.ok(proxy.task.get_record(s, task))
        self.assertEqual((record["status"], record["name_label"], record["allowed_operations"]),
                         ("pending", "import", ["cancel"]))
        self.ok(proxy.task.cancel(s, task))
        self.assertEqual(self.ok(proxy.task.get_status(s, task)), "cancelled")
        self.ok(proxy.task.destroy(s, task))
        self.assertEqual(self.err(proxy.task.cancel(s, task)), ["HANDLE_INVALID", "task", task])

    def test_roles_exist_from_first_boot_with_their_permissions(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        s = self.login()
        by_name = lambda n: self.ok(proxy.role.get_by_name_label(s, n))[0]
        names = ["pool-admin", "pool-operator", "vm-power-admin", "vm-admin", "vm-operator", "read-only"]
        roles = {n: by_name(n) for n in names}
        perms = {n: set(self.ok(proxy.role.get_permissions_name_label(s, r))) for n, r in roles.items()}
        # Each role grants everything the next less powerful one does, and more.
        for stronger, weaker in zip(names, names[1:]):
            self.assertTrue(perms[weaker] < perms[stronger], (stronger, weaker))
        self.assertIn("vm.get_record", perms["read-only"])
        self.assertNotIn("vm.start", perms["read-only"])
        self.assertIn("vm.start", perms["vm-operator"])
        self.assertNotIn("vm.destroy", perms["vm-operator"])
        self.assertIn("pool.eject", perms["pool-operator"])
        self.assertNotIn("subject.create", perms["pool-operator"])
        self.assertIn("subject.create", perms["pool-admin"])
        granting = set(self.ok(proxy.role.get_by_permission_name_label(s, "vm.start")))
        self.assertEqual(granting, {roles[n] for n in names[:5]})
        vm_start = self.ok(proxy.role.get_by_name_label(s, "vm.start"))[0]
        self.assertEqual(set(self.ok(proxy.role.get_by_permission(s, vm_start))), granting)

        subject = self.ok(proxy.subject.create(s, {"subject_identifier": "u1000", "other_config": {"subject-name": "alice"}}))
        self.ok(proxy.subject.add_to_roles(s, subject, roles["read-only"]))
        self.assertEqual(set(self.ok(proxy.subject.get_permissions_name_label(s, subject))), perms["read-only"])
        self.assertEqual(self.ok(proxy.subject.get_roles(s, subject)), [roles["read-only"]])
        self.ok(proxy.subject.remove_from_roles(s, subject, roles["read-only"]))
        self.assertEqual(self.ok(proxy.subject.get_roles(s, subject)), [])
        self.assertEqual(self.err(proxy.subject.add_to_roles(s, subject, "OpaqueRef:no-role")),
                         ["HANDLE_INVALID", "role", "OpaqueRef:no-role"])
        # Roles given to subject.create are kept, not dropped; they must be roles, not
        # permissions; one identifier is one subject.
        self.assertEqual(self.err(proxy.subject.create(s, {"subject_identifier": "u1000", "other_config": {}})),
                         ["SUBJECT_ALREADY_EXISTS"])
        self.ok(proxy.subject.destroy(s, subject))
        self.assertEqual(self.err(proxy.subject.create(s, {"subject_identifier": "u1001", "roles": [vm_start]})),
                         ["ROLE_NOT_FOUND"])
        with_roles = self.ok(proxy.subject.create(s, {"subject_identifier": "u1001", "other_config": {},
                                                      "roles": [roles["vm-admin"], roles["read-only"]]}))
        self.assertEqual(set(self.ok(proxy.subject.get_roles(s, with_roles))), {roles["vm-admin"], roles["read-only"]})
        self.ok(proxy.subject.destroy(s, with_roles))

    def test_unknown_method_and_parameter_count(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        self.assertEqual(proxy.VM.no_such("s")["ErrorDescription"], ["MESSAGE_METHOD_UNKNOWN", "VM.no_such"])
        # The counts exclude the session, as xapi's do.
        self.assertEqual(proxy.VM.start("s", "vm")["ErrorDescription"],
                         ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.start", "3", "1"])
        self.assertEqual(proxy.session.login_with_password("root")["ErrorDescription"],
                         ["MESSAGE_PARAMETER_COUNT_MISMATCH", "session.login_with_password", "4", "1"])
        # Field getters have no Async form.
        self.assertEqual(getattr(proxy, "Async").VM.get_name_label("s", "vm")["ErrorDescription"],
                         ["MESSAGE_METHOD_UNKNOWN", "Async.VM.get_name_label"])

    def test_list_methods_takes_no_session_and_answers_a_bare_array(self):
        names = xmlrpc.client.ServerProxy(self.url).system.listMethods()
        self.assertIn("VM.start", names)
        self.assertIn("Async.VM.start", names)
        self.assertNotIn("Async.session.login_with_password", names)

    def test_content_types_are_exact(self):
        status, ctype, body = self.post("/", "<?xml version='1.0'?><methodCall><methodName>VM.get_all"
                                             "</methodName><params></params></methodCall>")
        self.assertEqual((status, ctype), (200, "text/xml"))
        self.assertTrue(body.startswith('<?xml version="1.0"?><methodResponse>'), body)
        status, ctype, _ = self.post("/jsonrpc", '{"jsonrpc":"2.0","method":"VM.get_all","params":["s"],"id":1}',
                                     "application/json; charset=utf-8")
        self.assertEqual((status, ctype), (200, "application/json"))

    def test_jsonrpc_versions_echo_the_id(self):
        _, _, body = self.post("/jsonrpc", '{"jsonrpc":"2.0","method":"VM.nope","params":[],"id":"abc"}')
        self.assertEqual(json.loads(body), {"jsonrpc": "2.0", "id": "abc", "error": {
            "code": 1, "message": "MESSAGE_METHOD_UNKNOWN", "data": ["VM.nope"]}})
        _, _, body = self.post("/jsonrpc", '{"method":"system.listMethods","params":[],"id":12}')
        answer = json.loads(body)
        self.assertEqual(answer["id"], 12)
        self.assertIsNone(answer["error"])
        self.assertIn("VM.clone", answer["result"])

    def test_malformed_xml_is_a_fault_and_the_daemon_lives_on(self):
        for bad in ("<methodCall><methodName>x</methodName><params><param>", "", "not xml",
                    "<?xml version='1.0'?><methodCall><methodName>a\xff</methodName></methodCall>"):
            status, ctype, body = self.post("/", bad.encode("latin-1"))
            self.assertEqual((status, ctype), (200, "text/xml"))
            self.assertIn("<fault>", body)
            with self.assertRaises(xmlrpc.client.Fault):
                xmlrpc.client.loads(body)
        self.assertIn("VM.start", xmlrpc.client.ServerProxy(self.url).system.listMethods())

    def test_unix_socket_serves_the_same_api(self):
        c = unix_connection(os.path.join(self.dir.name, "xapid.sock"))
        c.request("POST", "/jsonrpc", '{"jsonrpc":"2.0","method":"system.listMethods","params":[],"id":1}')
        answer = json.loads(c.getresponse().read())
        self.assertIn("VM.start", answer["result"])

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        for i in range(20):
            c.request("POST", "/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": "VM.nope", "params": [], "id": i}))
            self.assertEqual(json.loads(c.getresponse().read())["id"], i)

    def test_oversized_body_is_refused(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.putrequest("POST", "/")
        c.putheader("Content-Length", str(65 << 20))
        c.endheaders()
        self.assertEqual(c.getresponse().status, 413)


class daemon_tls_test(unittest.TestCase):
    def test_https_with_the_certificate_made_on_first_boot(self):
        import ssl
        with tempfile.TemporaryDirectory() as d:
            proc, _, port = start_daemon(d, "--https-listen", "127.0.0.1:0")
            try:
                self.assertIsNotNone(port)
                self.assertEqual(os.stat(os.path.join(d, "xapid.key")).st_mode & 0o777, 0o600)
                # The self-signed certificate verifies for the address it was made for.
                context = ssl.create_default_context(cafile=os.path.join(d, "xapid.pem"))
                proxy = xmlrpc.client.ServerProxy(f"https://127.0.0.1:{port}", context=context)
                s = proxy.session.login_with_password("root", PASSWORD)["Value"]
                self.assertEqual(len(proxy.pool.get_all(s)["Value"]), 1)
                # Plain HTTP on the TLS port is refused, not answered.
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
                    c.request("POST", "/", "<methodCall/>")
                    c.getresponse().read()
            finally:
                stop_daemon(proc)
                proc.stderr.close()


class daemon_slow_and_malformed_clients_test(unittest.TestCase):
    """A daemon configured by a --config file with short HTTP timeouts."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        config = os.path.join(cls.dir.name, "xapid.conf")
        with open(config, "w") as f:
            f.write("# test configuration\nlisten = 127.0.0.1:0\nhttp-read-timeout-seconds = 1\n"
                    "http-idle-timeout-seconds = 2\n")
        cls.proc, cls.port, _ = start_daemon(cls.dir.name, config=config)

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls.proc)
        cls.proc.stderr.close()
        cls.dir.cleanup()

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.addCleanup(sock.close)
        return sock

    def closed_within(self, sock, seconds):
        start = time.monotonic()
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return time.monotonic() - start <= seconds, data
            data += chunk

    def test_a_client_that_trickles_its_request_is_cut_off_while_others_are_served(self):
        slow = self.connect()
        slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}")
        self.assertEqual(proxy.session.login_with_password("root", PASSWORD)["Status"], "Success")
        closed, _ = self.closed_within(slow, 10)
        self.assertTrue(closed, "the server kept a stalled request open")

    def test_idle_connections_are_closed_and_do_not_starve_others(self):
        idle = [self.connect() for _ in range(200)]
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}")
        self.assertEqual(proxy.session.login_with_password("root", PASSWORD)["Status"], "Success")
        closed, _ = self.closed_within(idle[0], 15)
        self.assertTrue(closed)
        for sock in idle:
            sock.close()

    def test_malformed_http_is_answered_and_the_connection_closed(self):
        bad = self.connect()
        bad.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        _, data = self.closed_within(bad, 10)
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:40])
        big = self.connect()
        big.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        _, data = self.closed_within(big, 10)
        self.assertTrue(data.startswith(b"HTTP/1.1 431"), data[:40])

    def read_answers(self, sock, count):
        """`count` whole HTTP answers from `sock`: (status line, headers, body) each."""
        data, answers = b"", []
        while len(answers) < count:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                head = data[:end].decode()
                length = int(re.search(r"(?im)^content-length: *(\d+)", head).group(1))
                if len(data) >= end + 4 + length:
                    answers.append((head.split("\r\n")[0], head, data[end + 4:end + 4 + length]))
                    data = data[end + 4 + length:]
                    continue
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return answers

    @staticmethod
    def jsonrpc_request(ident, version=b"HTTP/1.1", extra=b""):
        body = json.dumps({"jsonrpc": "2.0", "method": "session.login_with_password",
                           "params": ["root", PASSWORD], "id": ident}).encode()
        return (b"POST /jsonrpc " + version + b"\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    def test_pipelined_requests_are_answered_in_order(self):
        sock = self.connect()
        sock.sendall(b"".join(self.jsonrpc_request(i) for i in range(1, 41)))
        answers = self.read_answers(sock, 40)
        self.assertEqual([json.loads(body)["id"] for _, _, body in answers], list(range(1, 41)))
        self.assertTrue(all(json.loads(body)["result"].startswith("OpaqueRef:") for _, _, body in answers))

    def test_http_1_0_closes_unless_asked_to_keep_alive(self):
        sock = self.connect()
        sock.sendall(self.jsonrpc_request(1, b"HTTP/1.0"))
        closed, data = self.closed_within(sock, 10)
        self.assertTrue(closed)
        self.assertTrue(data.startswith(b"HTTP/1.0 200 OK\r\n"), data[:40])
        sock = self.connect()
        sock.sendall(self.jsonrpc_request(2, b"HTTP/1.0", b"Connection: keep-alive\r\n"))
        (status, head, body), = self.read_answers(sock, 1)
        self.assertEqual(status, "HTTP/1.0 200 OK")
        self.assertIn("Connection: keep-alive", head)
        sock.sendall(self.jsonrpc_request(3, b"HTTP/1.0", b"Connection: keep-alive\r\n"))
        (status, _, body), = self.read_answers(sock, 1)
        self.assertEqual(json.loads(body)["id"], 3)

    def test_a_chunked_request_body_is_read_whole(self):
        body = xmlrpc.client.dumps(("root", PASSWORD), "session.login_with_password").encode()
        sock = self.connect()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 50]), body[i:i + 50]) for i in range(0, len(body), 50))
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        (status, _, answer), = self.read_answers(sock, 1)
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertEqual(xmlrpc.client.loads(answer.decode())[0][0]["Status"], "Success")

    def test_an_upload_refused_part_way_still_gets_its_whole_answer(self):
        # /import reads a little of this junk, refuses it and closes while more is on its way:
        # closing with bytes unread would reset the connection and lose the answer's body.
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}")
        session = proxy.session.login_with_password("root", PASSWORD)["Value"]
        junk = os.urandom(4 << 20)
        sock = self.connect()
        sock.sendall(b"PUT /import?session_id=%s HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % (session.encode(), len(junk)))
        self.assertEqual(sock.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            sock.sendall(junk)
        except OSError:
            pass  # the daemon stopped reading; the answer is what matters
        _, data = self.closed_within(sock, 10)
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:40])
        self.assertIn(b"IMPORT_ERROR", data)

    def test_a_client_that_expects_100_continue_is_told_to_go_on(self):
        body = xmlrpc.client.dumps(("root", PASSWORD), "session.login_with_password").encode()
        sock = self.connect()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        self.assertEqual(sock.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        (status, _, answer), = self.read_answers(sock, 1)
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertEqual(xmlrpc.client.loads(answer.decode())[0][0]["Status"], "Success")
        # A body the daemon would refuse is refused at once, without a 100.
        sock = self.connect()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 999999999\r\n\r\n")
        self.assertTrue(sock.recv(100).startswith(b"HTTP/1.1 413"))

    def test_a_client_that_does_not_read_its_answers_is_cut_off_while_others_are_served(self):
        stuck = socket.socket()
        self.addCleanup(stuck.close)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", self.port))
        listing = b"<?xml version='1.0'?><methodCall><methodName>system.listMethods</methodName></methodCall>"
        request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(listing), listing)
        stuck.sendall(request * 200)  # 200 answers of ~90 KB: far more than the socket buffers hold
        time.sleep(3)  # not reading: the server's write stalls past the 1 s read timeout
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}")
        self.assertEqual(proxy.session.login_with_password("root", PASSWORD)["Status"], "Success")
        received = 0
        stuck.settimeout(30)
        try:
            while chunk := stuck.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        self.assertLess(received, 200 * 90000, "the server kept writing to a client that did not read")

    def test_a_bad_config_file_is_refused_with_its_line(self):
        bad = os.path.join(self.dir.name, "bad.conf")
        with open(bad, "w") as f:
            f.write("listen = 127.0.0.1:0\nthreads = many\n")
        r = subprocess.run([XAPID, "--config", bad, "--data-dir", self.dir.name + "/other"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.conf:2: threads must be a number", r.stderr)


class daemon_large_bodies_test(unittest.TestCase):
    """--http-max-body-mib 1: bodies over 1 MiB are 413; those being read at once may hold 4 MiB
    beyond their first 64 KiB each, and one more is 503 while small calls go on."""

    def test_large_bodies_share_a_budget_and_small_calls_are_never_refused(self):
        with tempfile.TemporaryDirectory() as d:
            proc, port, _ = start_daemon(d, "--http-max-body-mib", "1")
            try:
                def partial_upload(sent):
                    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                    self.addCleanup(sock.close)
                    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n" + b"x" * sent)
                    time.sleep(0.3)  # read and counted by the daemon
                    return sock
                holders = [partial_upload(1_000_000) for _ in range(4)]  # 4 x 934,464 counted: under 4 MiB
                refused = partial_upload(1_000_000)
                refused.settimeout(10)
                self.assertTrue(refused.recv(100).startswith(b"HTTP/1.1 503"))
                proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
                self.assertEqual(proxy.session.login_with_password("root", PASSWORD)["Status"], "Success")
                for sock in holders:
                    sock.close()
                time.sleep(0.3)
                # With the budget free again, a body of nearly 1 MiB is read and answered.
                answer = proxy.session.login_with_password("root", "p" * 1_000_000)
                self.assertEqual(answer["ErrorDescription"][0], "SESSION_AUTHENTICATION_FAILED")
                big = socket.create_connection(("127.0.0.1", port), timeout=10)
                self.addCleanup(big.close)
                big.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n")
                self.assertTrue(big.recv(100).startswith(b"HTTP/1.1 413"))
            finally:
                stop_daemon(proc)


@unittest.skipUnless(shutil.which("prlimit"), "needs prlimit (util-linux)")
class daemon_out_of_descriptors_test(unittest.TestCase):
    """More connections than the daemon may open descriptors for: it waits for some to close
    rather than spinning (and logging) on a failing accept, then serves again."""

    @staticmethod
    def cpu_seconds(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def test_it_waits_for_descriptors_without_spinning_and_serves_again(self):
        with tempfile.TemporaryDirectory() as d:
            proc, port, _ = start_daemon(d, prefix=("prlimit", "--nofile=200:200"))
            try:
                clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(260)]
                time.sleep(0.5)  # the daemon has taken what it can; the rest wait in the backlog
                before = self.cpu_seconds(proc.pid)
                time.sleep(2)
                self.assertLess(self.cpu_seconds(proc.pid) - before, 0.5, "the daemon spun on a failing accept")
                for c in clients:
                    c.close()
                proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
                self.assertEqual(proxy.session.login_with_password("root", PASSWORD)["Status"], "Success")
            finally:
                stop_daemon(proc)


@needs_pam_users
class daemon_external_auth_test(with_daemon):
    """A system user, authenticated by PAM, logs in through a subject whose roles bound the calls."""

    @classmethod
    def setUpClass(cls):
        cls.pam = pam_users()
        cls.addClassCleanup(cls.pam.cleanup)  # the user and the PAM service go even if a test fails
        cls.secret = "pam-secret-1"
        cls.account = cls.pam.user(cls.secret)
        cls.user, cls.service = cls.account.name, cls.pam.service
        super().setUpClass()

    def test_a_pam_user_gets_the_rights_of_its_subjects_roles(self):
        x = xmlrpc.client.ServerProxy(self.url)
        root = x.session.login_with_password("root", PASSWORD)["Value"]
        pool = x.pool.get_all(root)["Value"][0]
        self.assertEqual(x.pool.enable_external_auth(root, pool, {}, "", "LDAP")["ErrorDescription"],
                         ["AUTH_UNKNOWN_TYPE", "LDAP"])
        # Before any subject exists, PAM's yes is not enough.
        self.assertEqual(x.pool.enable_external_auth(root, pool, {"pam_service": self.service}, "", "PAM")["Status"], "Success")
        self.assertEqual(x.pool.enable_external_auth(root, pool, {}, "", "PAM")["ErrorDescription"],
                         ["AUTH_ALREADY_ENABLED", "PAM", ""])
        self.assertEqual(x.session.login_with_password(self.user, self.secret)["ErrorDescription"],
                         ["SESSION_AUTHENTICATION_FAILED"])

        role = lambda name: x.role.get_by_name_label(root, name)["Value"][0]
        subject = self.pam.grant(x, root, self.account, "read-only")  # subject "u<uid>" with the role
        self.assertEqual(x.session.login_with_password(self.user, "wrong")["ErrorDescription"],
                         ["SESSION_AUTHENTICATION_FAILED"])
        reader = x.session.login_with_password(self.user, self.secret)["Value"]
        self.assertFalse(x.session.get_is_local_superuser(reader, reader)["Value"])
        self.assertEqual(x.session.get_auth_user_name(reader, reader)["Value"], self.user)
        self.assertIn("vm.get_record", x.session.get_rbac_permissions(reader, reader)["Value"])
        self.assertEqual(x.pool.get_all(reader)["Value"], [pool])
        self.assertEqual(x.pool.set_name_label(reader, pool, "mine")["ErrorDescription"],
                         ["RBAC_PERMISSION_DENIED", "pool.set_name_label", "No permission in user session"])

        # A vm-operator may start a VM (this one does not exist: the call got past RBAC) but not destroy one.
        x.subject.remove_from_roles(root, subject, role("read-only"))
        x.subject.add_to_roles(root, subject, role("vm-operator"))
        operator = x.session.login_with_password(self.user, self.secret)["Value"]
        self.assertEqual(x.VM.start(operator, "OpaqueRef:vm", False, False)["ErrorDescription"],
                         ["HANDLE_INVALID", "VM", "OpaqueRef:vm"])
        self.assertEqual(x.VM.destroy(operator, "OpaqueRef:vm")["ErrorDescription"],
                         ["RBAC_PERMISSION_DENIED", "vm.destroy", "No permission in user session"])
        self.assertEqual(getattr(x, "Async").VM.destroy(operator, "OpaqueRef:vm")["ErrorDescription"][0],
                         "RBAC_PERMISSION_DENIED")

        # Without a subject, or with external authentication off, the user cannot log in.
        x.subject.destroy(root, subject)
        self.assertEqual(x.session.login_with_password(self.user, self.secret)["ErrorDescription"],
                         ["SESSION_AUTHENTICATION_FAILED"])
        x.pool.disable_external_auth(root, pool, {})
        self.assertEqual(x.host.get_external_auth_type(root, x.pool.get_master(root, pool)["Value"])["Value"], "")


class daemon_restart_test(unittest.TestCase):
    def test_a_restart_keeps_the_database_and_ends_the_sessions(self):
        with tempfile.TemporaryDirectory() as d:
            proc, port, _ = start_daemon(d)
            proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
            s = proxy.session.login_with_password("root", PASSWORD)["Value"]
            pool = proxy.pool.get_all(s)["Value"][0]
            host = proxy.pool.get_master(s, pool)["Value"]
            proxy.pool.set_name_label(s, pool, "kept")
            self.assertEqual(stop_daemon(proc), 0)
            proc.stderr.close()

            proc, port, _ = start_daemon(d)
            try:
                proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
                self.assertEqual(proxy.pool.get_all(s)["ErrorDescription"], ["SESSION_INVALID", s])
                s2 = proxy.session.login_with_password("root", PASSWORD)["Value"]
                self.assertEqual(proxy.pool.get_all(s2)["Value"], [pool])
                self.assertEqual(proxy.pool.get_name_label(s2, pool)["Value"], "kept")
                self.assertEqual(proxy.pool.get_master(s2, pool)["Value"], host)
                self.assertEqual(proxy.session.get_all(s2)["ErrorDescription"][0], "MESSAGE_METHOD_UNKNOWN")
            finally:
                stop_daemon(proc)
                proc.stderr.close()

    def test_change_password(self):
        with tempfile.TemporaryDirectory() as d:
            proc, port, _ = start_daemon(d)
            try:
                proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
                s = proxy.session.login_with_password("root", PASSWORD)["Value"]
                self.assertEqual(proxy.session.change_password(s, "wrong", "new-secret")["ErrorDescription"][0],
                                 "CHANGE_PASSWORD_REJECTED")
                self.assertEqual(proxy.session.change_password(s, PASSWORD, "new-secret")["Status"], "Success")
                self.assertEqual(proxy.session.login_with_password("root", "new-secret")["Status"], "Success")
                self.assertEqual(proxy.session.login_with_password("root", PASSWORD)["ErrorDescription"],
                                 ["SESSION_AUTHENTICATION_FAILED"])
            finally:
                stop_daemon(proc)
                proc.stderr.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
