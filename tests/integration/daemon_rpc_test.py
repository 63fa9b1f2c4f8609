#!/usr/bin/env python3
"""Starts a real xapid process and talks to it over loopback HTTP and its unix socket with
Python's own XML-RPC client and plain JSON-RPC, as scripts do.

Usage: daemon_rpc_test.py PATH_TO_XAPID"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import xmlrpc.client

XAPID = sys.argv.pop(1) if len(sys.argv) > 1 else "xapid"


class unix_connection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


class daemon_rpc_test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.proc = subprocess.Popen([XAPID, "--data-dir", cls.dir.name, "--listen", "127.0.0.1:0"],
                                    stderr=subprocess.PIPE, text=True)
        # The daemon logs the port it bound once it is ready.
        deadline = time.monotonic() + 30
        cls.port = None
        for line in cls.proc.stderr:
            m = re.search(r"xapid\.ready listen=127\.0\.0\.1:(\d+)", line)
            if m:
                cls.port = int(m.group(1))
                break
            if time.monotonic() > deadline:
                break
        if cls.port is None:
            cls.proc.kill()
            raise RuntimeError("xapid did not become ready")
        cls.url = f"http://127.0.0.1:{cls.port}"

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        cls.assert_exit = cls.proc.wait(timeout=30)
        cls.dir.cleanup()

    def post(self, path, body, content_type="text/xml"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("POST", path, body, {"Content-Type": content_type})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()

    def test_xmlrpc_client_gets_structured_errors_on_every_path(self):
        for path in ("/", "/RPC2", "/xmlrpc"):
            proxy = xmlrpc.client.ServerProxy(self.url + path)
            answer = proxy.VM.start("OpaqueRef:session", "OpaqueRef:vm", False, False)
            self.assertEqual(answer["Status"], "Failure")
            self.assertEqual(answer["ErrorDescription"], ["NOT_IMPLEMENTED", "VM.start"])

    def test_unknown_method_and_parameter_count(self):
        proxy = xmlrpc.client.ServerProxy(self.url)
        self.assertEqual(proxy.VM.no_such("s")["ErrorDescription"], ["MESSAGE_METHOD_UNKNOWN", "VM.no_such"])
        # The counts exclude the session, as xapi's do.
        self.assertEqual(proxy.VM.start("s", "vm")["ErrorDescription"],
                         ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.start", "3", "1"])
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
