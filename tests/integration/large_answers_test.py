#!/usr/bin/env python3
"""Large answers are sent while they are written: a real xapid with a few thousand VMs, spoken to
over loopback with raw HTTP, http.client and xmlrpc.client (and TLS). A whole table goes out
chunked to HTTP/1.1 clients and up to the connection's end to HTTP/1.0 ones, byte for byte the
same answer; small answers keep their Content-Length; a client that does not read holds a few
pieces of the answer in the daemon, not the answer, and is cut off when it makes no progress.

Usage: large_answers_test.py PATH_TO_XAPID"""
import http.client
import json
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import unittest
import xmlrpc.client

from xapid_support import PASSWORD, read_chunked, start_daemon, stop_daemon, with_daemon

VMS = 2500
PIECE = 256 << 10  # the daemon's piece of an answer, wire::answer_piece_bytes
AHEAD = 4  # pieces made ahead of their sending, at most (gateway/rpc/pieces_made_ahead.hpp)


def read_head(sock, data=b""):
    """(status line, {lower-case header: value}, bytes after the head) of the answer on `sock`."""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise AssertionError(f"the connection ended inside a head: {data[:200]!r}")
        data += more
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, rest


def post_bytes(method, *params, version="HTTP/1.1"):
    """An XML-RPC call as raw HTTP."""
    body = xmlrpc.client.dumps(params, method).encode()
    return (f"POST / {version}\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


class large_answers_test(with_daemon):
    # A stalled reader is cut off after 2 s without progress.
    daemon_args = ("--http-read-timeout-seconds", "2")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        record = {"name_label": "", "memory_static_max": str(1 << 30), "memory_dynamic_max": str(1 << 30),
                  "memory_dynamic_min": str(1 << 30), "memory_static_min": str(1 << 30), "VCPUs_max": "1",
                  "VCPUs_at_startup": "1", "other_config": {"escapes": "<&> \"q\" \\ \t"}}
        todo = iter(range(VMS))
        lock = threading.Lock()

        def create():
            proxy = xmlrpc.client.ServerProxy(cls.url)
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return proxy("close")()
                proxy.VM.create(cls.s, dict(record, name_label=f"vm-{i} <&>"))

        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cls.vms = len(cls.x.VM.get_all(cls.s)["Value"])

    def open_socket(self, rcvbuf=None):
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(60)
        sock.connect(("127.0.0.1", self.port))
        self.addCleanup(sock.close)
        return sock

    def test_a_whole_table_is_chunked_over_http_1_1_and_the_connection_goes_on(self):
        sock = self.open_socket()
        sock.sendall(post_bytes("VM.get_all_records", self.s))
        status, headers, rest = read_head(sock)
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertEqual(headers.get("transfer-encoding"), "chunked")
        self.assertNotIn("content-length", headers)
        self.assertEqual(headers["content-type"], "text/xml")
        body, sizes, rest = read_chunked(sock, rest)
        self.assertGreater(len(sizes), len(body) // (2 * PIECE), "sent a piece at a time")
        self.assertLess(max(sizes), PIECE + 16384, "a piece is about 256 KiB")
        (answer,), _ = xmlrpc.client.loads(body)
        self.assertEqual(len(self.ok(answer)), self.vms)
        self.assertEqual(rest, b"")
        # The body ended exactly where its framing said: the next call on the connection is read
        # and answered with its length, as small answers are.
        sock.sendall(post_bytes("session.get_this_host", self.s, self.s))
        status, headers, rest = read_head(sock)
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertNotIn("transfer-encoding", headers)
        length = int(headers["content-length"])
        while len(rest) < length:
            rest += sock.recv(65536)
        (answer,), _ = xmlrpc.client.loads(rest)
        self.assertTrue(self.ok(answer).startswith("OpaqueRef:"))

    def test_an_http_1_0_client_gets_the_same_bytes_up_to_the_connections_end(self):
        chunked = self.open_socket()
        chunked.sendall(post_bytes("VM.get_all_records", self.s))
        _, _, rest = read_head(chunked)
        body_1_1, _, _ = read_chunked(chunked, rest)

        old = self.open_socket()
        old.sendall(post_bytes("VM.get_all_records", self.s, version="HTTP/1.0"))
        status, headers, body = read_head(old)
        self.assertEqual(status, "HTTP/1.0 200 OK")
        self.assertNotIn("transfer-encoding", headers)
        self.assertNotIn("content-length", headers)
        while True:
            more = old.recv(65536)
            if not more:
                break
            body += more
        self.assertEqual(body, body_1_1)

    def test_json_rpc_answers_in_both_versions_read_back_whole(self):
        for version in ("1.0", "2.0"):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            request = {"method": "VM.get_all_records", "params": [self.s], "id": "big"}
            if version == "2.0":
                request["jsonrpc"] = "2.0"
            c.request("POST", "/jsonrpc", json.dumps(request), {"Content-Type": "application/json"})
            r = c.getresponse()
            self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
            answer = json.loads(r.read())
            self.assertEqual(answer["id"], "big")
            self.assertEqual(len(answer["result"]), self.vms)
            self.assertEqual("error" in answer, version == "1.0")
            c.close()

    def test_python_xenapi_style_clients_read_chunked_answers(self):
        # xmlrpc.client, which the XenAPI module is built on, over a kept-alive connection.
        proxy = xmlrpc.client.ServerProxy(self.url)
        for _ in range(2):
            records = self.ok(proxy.VM.get_all_records(self.s))
            self.assertEqual(len(records), self.vms)
            self.assertTrue(any(r["name_label"] == "vm-7 <&>" for r in records.values()))
        self.assertEqual(len(self.ok(proxy.VM.get_all(self.s))), self.vms)

    def test_event_from_everything_is_sent_in_pieces_too(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body = xmlrpc.client.dumps((self.s, ["VM"], "", 1.0), "event.from")
        c.request("POST", "/", body, {"Content-Type": "text/xml"})
        r = c.getresponse()
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        (answer,), _ = xmlrpc.client.loads(r.read())
        self.assertEqual(len(self.ok(answer)["events"]), self.vms)

    def test_a_reader_that_stalls_holds_a_few_pieces_and_is_cut_off(self):
        # Clients with tiny receive buffers that ask and do not read: the daemon keeps what it
        # could not send yet and the pieces it made ahead of it, which must be a few pieces each
        # (the one being sent, those made ahead, one to make the next in), not each whole answer.
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("POST", "/", xmlrpc.client.dumps((self.s,), "VM.get_all_records"), {"Content-Type": "text/xml"})
        answer_kib = len(c.getresponse().read()) // 1024
        c.close()
        held_kib = (AHEAD + 2) * (PIECE + 16384) // 1024
        self.assertGreater(answer_kib, 4 * held_kib, "the answer is many times what a reader may hold")
        before = rss_kib(self.proc.pid)
        stalled = []
        for _ in range(8):
            sock = self.open_socket(rcvbuf=4096)
            sock.sendall(post_bytes("VM.get_all_records", self.s))
            stalled.append(sock)
        time.sleep(0.5)
        grown_kib = rss_kib(self.proc.pid) - before
        # (Plus 4 MiB for the allocator: the pool threads that made the pieces grew their arenas.)
        self.assertLess(grown_kib, 8 * held_kib + 4096,
                        f"8 stalled readers grew the daemon by {grown_kib} KiB; an answer is {answer_kib} KiB")
        # A reader that starts reading (within the read timeout) gets the whole answer ...
        _, headers, rest = read_head(stalled[0])
        body, _, _ = read_chunked(stalled[0], rest)
        (answer,), _ = xmlrpc.client.loads(body)
        self.assertEqual(len(self.ok(answer)), self.vms)
        # ... others are served meanwhile ...
        self.assertEqual(len(self.ok(self.x.VM.get_all(self.s))), self.vms)
        # ... and one that never reads is cut off once it has made no progress for the read
        # timeout (2 s here): the connection ends before its answer does (what the kernel's
        # socket buffers took still arrives).
        sock = stalled[1]
        time.sleep(4)
        data = b""
        while True:
            try:
                more = sock.recv(65536)
            except ConnectionResetError:
                break
            if not more:
                break
            data += more
        self.assertLess(len(data), len(body), "the whole answer came to a reader that stalled")
        self.assertFalse(data.endswith(b"\r\n0\r\n\r\n"))


class large_answers_tls_test(unittest.TestCase):
    def test_a_whole_table_over_https_is_chunked_and_reads_back(self):
        with tempfile.TemporaryDirectory() as d:
            proc, _, port = start_daemon(d, "--https-listen", "127.0.0.1:0")
            try:
                context = ssl.create_default_context(cafile=os.path.join(d, "xapid.pem"))
                proxy = xmlrpc.client.ServerProxy(f"https://127.0.0.1:{port}", context=context)
                s = proxy.session.login_with_password("root", PASSWORD)["Value"]
                for i in range(300):
                    proxy.VM.create(s, {"name_label": f"tls-{i}", "memory_static_max": "1073741824",
                                        "memory_dynamic_max": "1073741824", "memory_dynamic_min": "1073741824",
                                        "memory_static_min": "1073741824", "VCPUs_max": "1", "VCPUs_at_startup": "1"})
                vms = len(proxy.VM.get_all(s)["Value"])
                c = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
                for _ in range(2):  # the second on the same connection
                    c.request("POST", "/", xmlrpc.client.dumps((s,), "VM.get_all_records"),
                              {"Content-Type": "text/xml"})
                    r = c.getresponse()
                    self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
                    (answer,), _ = xmlrpc.client.loads(r.read())
                    self.assertEqual(len(answer["Value"]), vms)
                c.close()
                self.assertEqual(len(proxy.VM.get_all_records(s)["Value"]), vms)
            finally:
                stop_daemon(proc)
                proc.stderr.close()


if __name__ == "__main__":
    unittest.main()
