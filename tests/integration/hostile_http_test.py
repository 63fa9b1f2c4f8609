#!/usr/bin/env python3
"""Hostile HTTP against a real xapid process, before any login (issue 13, items H1-H7 of the
security spec): requests built byte by byte that would crash it, smuggle a second request past
it, hold its transfer slots or descriptors, and what any local user could read of it (its
environment, its data dir).

Usage: hostile_http_test.py PATH_TO_XAPID"""
import base64
import os
import re
import resource
import select
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
import unittest
import xmlrpc.client

from xapid_support import (PASSWORD, XAPID, http_request, read_answer, start_daemon, stop_daemon, unix_connection,
                           with_daemon)  # takes PATH_TO_XAPID from argv

HEADER_LIMIT = 16384
LIST_METHODS = b"<?xml version='1.0'?><methodCall><methodName>system.listMethods</methodName></methodCall>"


def chunked(body, size_line_extra=b""):
    """`body` as one chunk (its size line carrying `size_line_extra`, a chunk extension) and
    the last-chunk line, without the trailer section."""
    return b"%x%s\r\n%s\r\n0\r\n" % (len(body), size_line_extra, body)


def exchange(port, request, wait_close=True, timeout=20):
    """Sends `request` on a connection of its own and reads the answer: (status code or None,
    the bytes received, how the connection went on: "eof" or "reset" when the daemon closed it
    after answering (read for up to `timeout` s when `wait_close`), "open" when it was not
    waited for, "timeout" when it stayed open). Sending may fail part way (the daemon refused
    and stopped reading): what it answered is what counts."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, end = b"", "open"
        try:
            status, head, body, rest = read_answer(sock)
            data = head.encode("latin-1") + b"\r\n\r\n" + body + rest
            if wait_close:
                end = "eof"
                while chunk := sock.recv(1 << 16):
                    data += chunk
        except EOFError as e:
            end = "eof"
            data = str(e).encode()
        except ConnectionResetError:
            end = "reset"
        except socket.timeout:
            end = "timeout"
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ", data)
        return (int(m.group(1)) if m else None), data, end
    finally:
        sock.close()


class alive_check(with_daemon):
    def assert_alive(self):
        self.assertIsNone(self.proc.poll(), "the daemon died")
        proxy = xmlrpc.client.ServerProxy(self.url)
        self.assertIn("VM.start", proxy.system.listMethods())


class trailer_field(alive_check):
    """H1 on a daemon of its own: the request killed the daemon before the fix, and the other
    items should not fail with it."""

    def test_h1_a_trailer_field_of_65535_bytes_is_refused_and_the_daemon_lives_on(self):
        """H1: Beast throws on a field over 64 KiB; in a trailer (read after the body) that
        used to end the process. The answer is 431, the connection closes, and a new
        connection is served."""
        request = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + chunked(LIST_METHODS) + b"X-Trailer: " + b"a" * 65535 + b"\r\n\r\n")
        status, data, end = exchange(self.port, request)
        self.assertEqual(status, 431, data[:200])
        self.assertEqual(end, "eof", "the connection was not closed after the 431")
        self.assert_alive()


class hostile_requests(alive_check):
    """One daemon, default settings: requests that broke or confused the HTTP layer."""

    # Sizes count every byte from the request line to the empty line that ends the header
    # (and the trailer, or the chunk-size line, with it). Whether the request line and the
    # final CRLFs count is not fixed: that is less than SLACK bytes, so sizes up to
    # limit + SLACK may be served or refused, larger ones must be refused.
    SLACK = 32

    def sweep(self, make, refused_codes):
        """Sends make(size) for sizes around the header limit; answers are 200 or one of
        `refused_codes`, 200 well below the limit, refused above it, and once refused, refused
        for every larger size."""
        sizes = [HEADER_LIMIT - 200] + list(range(HEADER_LIMIT - 64, HEADER_LIMIT + 65, 16))
        answers = []
        for size in sizes:
            request = make(size)
            status, data, end = exchange(self.port, request, wait_close=False)
            self.assertIsNotNone(status, f"size {size}: no answer ({end}) to {request[:60]!r}: {data[:200]!r}")
            answers.append((size, status))
            self.assertIn(status, (200,) + refused_codes, f"size {size}: {data[:200]!r}")
            if status == 200:
                self.assertIn(b"VM.start", data, f"size {size}: the call was not served")
        self.assertEqual(answers[0][1], 200, f"well below the limit: {answers}")
        for size, status in answers:
            if size >= HEADER_LIMIT + self.SLACK:
                self.assertIn(status, refused_codes, f"above the limit: {answers}")
        refused = [status != 200 for _, status in answers]
        self.assertEqual(refused, sorted(refused), f"not monotonic: {answers}")
        self.assertIsNone(self.proc.poll(), "the daemon died")
        return answers

    def test_h2_headers_around_the_16_kib_limit_are_served_or_refused_never_dropped(self):
        """H2, header: the header section (request line, fields and the empty line) of `size`
        bytes."""
        def make(size):
            fixed = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: %d\r\nX-Pad: \r\n\r\n" % len(
                LIST_METHODS)
            return fixed[:-4] + b"p" * (size - len(fixed)) + b"\r\n\r\n" + LIST_METHODS
        for size in (HEADER_LIMIT - 200, HEADER_LIMIT + 64):
            self.assertEqual(len(make(size)) - len(LIST_METHODS), size)
        self.sweep(make, (431,))
        self.assert_alive()

    def test_h2_trailers_count_with_the_header_against_the_limit(self):
        """H2, trailer: the header section and the trailer section (the last-chunk line, the
        trailer fields and the empty line) together make `size` bytes."""
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
        def make(size):
            fixed = len(head) + len(b"0\r\nX-Pad: \r\n\r\n")
            return head + chunked(LIST_METHODS) + b"X-Pad: " + b"p" * (size - fixed) + b"\r\n\r\n"
        self.sweep(make, (431,))
        self.assert_alive()

    def test_h2_chunk_extensions_count_with_the_header_against_the_limit(self):
        """H2, chunk extension: the header section and the body's chunk-size line (with its
        extension ";x=ppp...") together make `size` bytes; one extension of 65,535 bytes is
        refused too."""
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
        size_line = b"%x\r\n" % len(LIST_METHODS)
        def make(size):
            pad = size - len(head) - len(size_line) - len(b";x=")
            return head + chunked(LIST_METHODS, b";x=" + b"p" * pad) + b"\r\n"
        self.sweep(make, (400, 431))
        status, data, end = exchange(self.port, head + chunked(LIST_METHODS, b";x=" + b"p" * 65535) + b"\r\n")
        self.assertIn(status, (400, 431), (end, data[:200]))
        self.assert_alive()

    def assert_refused_and_closed(self, request, what):
        status, data, end = exchange(self.port, request)
        self.assertEqual(status, 400, f"{what}: {data[:300]!r}")
        self.assertEqual(end, "eof", f"{what}: the connection was not closed")
        self.assertEqual(data.count(b"HTTP/1.1 "), 1, f"{what}: more than one answer (a smuggled request ran): {data!r}")

    def test_h3_ambiguous_framing_is_refused_and_the_connection_closed(self):
        """H3: requests two parsers could frame differently (request smuggling) are 400 and end
        the connection; each carries a second request a lax server would answer too."""
        smuggled = http_request("POST", "/", LIST_METHODS)
        inner = chunked(smuggled) + b"\r\n"
        base = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
        cases = {
            "xchunked with Content-Length": base + b"Transfer-Encoding: xchunked\r\nContent-Length: %d\r\n\r\n" % len(inner)
                                            + inner + smuggled,
            "chunked with Content-Length": base + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + inner
                                           + smuggled,
            "two Transfer-Encoding headers": base + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
                                             + inner + smuggled,
            "two Transfer-Encoding: chunked": base + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                                              + inner + smuggled,
            "obs-fold (space)": base + b"Content-Length: %d\r\nX-Folded: a\r\n b\r\n\r\n" % len(LIST_METHODS)
                                + LIST_METHODS + smuggled,
            "obs-fold (tab)": base + b"X-Folded: a\r\n\tb\r\nContent-Length: %d\r\n\r\n" % len(LIST_METHODS)
                              + LIST_METHODS + smuggled,
        }
        for what, request in cases.items():
            with self.subTest(what):
                self.assert_refused_and_closed(request, what)
        self.assert_alive()

    def test_h6_the_root_password_given_in_the_environment_is_not_left_there(self):
        """H6: this daemon was started with XAPID_ROOT_PASSWORD=PASSWORD (and root logs in with
        it); /proc/PID/environ, which other processes of the user may read, no longer holds it."""
        self.assertEqual(self.x.session.login_with_password("root", PASSWORD)["Status"], "Success")
        with open(f"/proc/{self.proc.pid}/environ", "rb") as f:
            environ = f.read()
        # (The environment itself is not shown: it may hold other secrets.)
        self.assertFalse(PASSWORD.encode() in environ, "/proc/PID/environ still holds the root password")


def basic_auth(user, password):
    return b"Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()) + b"\r\n"


class stalled_transfers(unittest.TestCase):
    """H4: a daemon with --http-read-timeout-seconds 2, whose 16 transfer slots are filled by
    uploads that stall."""

    def test_h4_stalled_uploads_are_cut_off_and_give_their_slots_back(self):
        """H4: 16 uploads (PUT /import, 100 MB announced) that send 1 KiB and stall hold the 16
        transfer slots: a 17th is 503 at once; within 8 s the stalled ones are cut off, and an
        import is served again (not 503)."""
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        proc, port, _ = start_daemon(d.name, "--http-read-timeout-seconds", "2")
        self.addCleanup(lambda: (stop_daemon(proc), proc.stderr.close()))
        # The first KiB of an archive whose ova.xml is 10 MB: the import reads on and waits.
        member = tarfile.TarInfo("ova.xml")
        member.size = 10_000_000
        first_kib = member.tobuf(format=tarfile.USTAR_FORMAT) + b"<" * 512
        self.assertEqual(len(first_kib), 1024)
        head = (b"PUT /import HTTP/1.1\r\nHost: x\r\n" + basic_auth("root", PASSWORD)
                + b"Content-Length: 100000000\r\n\r\n")
        stalled = []
        for _ in range(16):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.addCleanup(sock.close)
            sock.sendall(head + first_kib)
            stalled.append(sock)
        stalled_since = time.monotonic()
        time.sleep(0.5)  # all 16 taken by the daemon (and their passwords checked)
        start = time.monotonic()
        status, data, _ = exchange(port, head + first_kib, timeout=10)
        self.assertEqual(status, 503, data[:200])
        self.assertLess(time.monotonic() - start, 2.0, "the 17th transfer was not refused at once")

        # Stalled, they are cut off within a few read timeouts (~4 s; 8 s allowed).
        open_ = {s.fileno(): s for s in stalled}
        deadline = stalled_since + 8
        while open_ and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_), [], [], 0.5)
            for fd in ready:
                try:
                    if not open_[fd].recv(1 << 16):
                        del open_[fd]
                except OSError:  # reset
                    del open_[fd]
        self.assertEqual(len(open_), 0, f"{len(open_)} stalled uploads still open 8 s after they stalled")

        # Their slots are free: an import is served (and refused for its junk), not 503.
        junk = os.urandom(1024)
        status, data, _ = exchange(port, b"PUT /import HTTP/1.1\r\nHost: x\r\n" + basic_auth("root", PASSWORD)
                                   + b"Content-Length: 1024\r\n\r\n" + junk)
        self.assertIsNotNone(status, data[:200])
        self.assertNotEqual(status, 503, data[:200])
        self.assertIsNone(proc.poll())


def open_file_limits(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no Max open files line")


@unittest.skipUnless(shutil.which("prlimit"), "needs prlimit (util-linux)")
class descriptor_limits(unittest.TestCase):
    """H5: the daemon raises its soft descriptor limit to the hard one, and at the limit it
    sheds idle connections rather than locking everyone else out."""

    @classmethod
    def setUpClass(cls):
        # This process holds hundreds of connections at once.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096:
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096 if hard == resource.RLIM_INFINITY else min(4096, hard), hard))

    def daemon(self, limits):
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        proc, port, _ = start_daemon(d.name, prefix=("prlimit", f"--nofile={limits}"))
        self.addCleanup(lambda: (stop_daemon(proc), proc.stderr.close()))
        return proc, port

    def test_h5_the_soft_descriptor_limit_is_raised_to_the_hard_one(self):
        """H5: started under --nofile=1024:4096, the daemon runs with 4096 open files allowed."""
        proc, _ = self.daemon("1024:4096")
        self.assertEqual(open_file_limits(proc.pid), (4096, 4096))

    def test_h5_idle_connections_at_the_descriptor_limit_do_not_lock_out_a_login(self):
        """Under --nofile=256:256, 400 connections that send nothing; a new client's login
        still succeeds within 10 s (the oldest idle connections are shed)."""
        _, port = self.daemon("256:256")
        idle = []
        for _ in range(400):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.addCleanup(sock.close)
            idle.append(sock)
        result = {}

        def login():
            try:
                proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
                result["answer"] = proxy.session.login_with_password("root", PASSWORD)
            except Exception as e:  # noqa: BLE001 - reported below
                result["answer"] = repr(e)
        start = time.monotonic()
        t = threading.Thread(target=login, daemon=True)
        t.start()
        t.join(10)
        self.assertFalse(t.is_alive(), "no answer to a login within 10 s")
        self.assertLess(time.monotonic() - start, 10)
        self.assertIsInstance(result["answer"], dict, result["answer"])
        self.assertEqual(result["answer"]["Status"], "Success", result["answer"])


class private_data_dir(unittest.TestCase):
    """H7: whatever umask xapid is started with, its data dir and all in it are root's alone."""

    def test_h7_the_data_dir_and_everything_in_it_are_private(self):
        """H7: started with umask 022 on a 0755 data dir, with TLS and after work that writes (a VM,
        a disk image, the log, the database and its WAL): the data dir is 0700, nothing in it
        has a group or other bit, the unix socket is 0600; the same once the daemon stopped."""
        parent = tempfile.TemporaryDirectory()
        self.addCleanup(parent.cleanup)
        data = os.path.join(parent.name, "data")
        os.mkdir(data, 0o755)
        os.chmod(data, 0o755)  # as an operator's mkdir makes it
        old = os.umask(0o022)
        try:
            proc, port, tls_port = start_daemon(data, "--https-listen", "127.0.0.1:0")
        finally:
            os.umask(old)
        self.addCleanup(proc.stderr.close)
        try:
            # Work that writes: a VM with a disk (a qcow2 image in the local SR), a log, the WAL.
            x = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
            s = x.session.login_with_password("root", PASSWORD)["Value"]
            template = x.VM.get_by_name_label(s, "Other install media")["Value"][0]
            vm = x.VM.clone(s, template, "private")["Value"]
            sr = x.pool.get_default_SR(s, x.pool.get_all(s)["Value"][0])["Value"]
            vdi = x.VDI.create(s, {"SR": sr, "name_label": "d", "name_description": "", "virtual_size": str(1 << 20),
                                   "type": "user", "sharable": False, "read_only": False, "other_config": {},
                                   "xenstore_data": {}, "sm_config": {}, "tags": []})
            self.assertEqual(vdi["Status"], "Success", vdi)
            x.VM.set_name_label(s, vm, "written")
            self.assert_private(data, running=True)
        finally:
            stop_daemon(proc)
        self.assert_private(data, running=False)

    def assert_private(self, data, running):
        self.assertEqual(stat.S_IMODE(os.stat(data).st_mode), 0o700, "the data dir")
        seen, socket_seen = [], False
        for root, dirs, files in os.walk(data):
            for name in dirs + files:
                path = os.path.join(root, name)
                st = os.lstat(path)
                seen.append(path)
                if stat.S_ISSOCK(st.st_mode):
                    socket_seen = True
                    self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, f"the unix socket {path}")
                elif not stat.S_ISLNK(st.st_mode):
                    self.assertEqual(st.st_mode & 0o077, 0, f"{path} is {oct(stat.S_IMODE(st.st_mode))}")
        self.assertTrue(any("/db" in p for p in seen) and any(p.endswith("xapid.log") for p in seen), seen)
        self.assertTrue(any("/sr/" in p for p in seen), seen)
        if running:
            self.assertTrue(socket_seen, "no unix socket in the data dir")

    def test_h7_a_data_dir_with_the_sticky_bit_is_refused(self):
        """H7: a data dir with mode 1777 (shared, as /tmp) is refused at start: a non-zero exit and
        a message that names the data dir."""
        parent = tempfile.TemporaryDirectory()
        self.addCleanup(parent.cleanup)
        shared = os.path.join(parent.name, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o1777)
        proc = subprocess.Popen([XAPID, "--data-dir", shared, "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE,
                                text=True, env=dict(os.environ, XAPID_ROOT_PASSWORD=PASSWORD))
        self.addCleanup(proc.stderr.close)
        lines = []

        def read():
            for line in proc.stderr:
                lines.append(line)
                if "xapid.ready" in line:
                    return
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(15)
        try:
            if any("xapid.ready" in line for line in lines):
                raise subprocess.TimeoutExpired(XAPID, 0)
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()  # it started (or hung) on a shared directory
            proc.wait()
            self.fail("xapid started on a data dir with the sticky bit: " + "".join(lines)[-500:])
        err = "".join(lines)
        self.assertNotEqual(proc.returncode, 0)
        self.assertTrue(shared in err or re.search(r"data.dir", err, re.I), err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
