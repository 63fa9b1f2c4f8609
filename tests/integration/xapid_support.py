"""What the integration tests share: a real xapid process on a fresh data dir, spoken to over
loopback HTTP and its unix socket, and system users that log in to it through PAM with roles.

The daemon's path is the first command-line argument of the test script that imports this
(taken off sys.argv here, so that unittest does not see it)."""
import http.client
import itertools
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import xmlrpc.client

XAPID = sys.argv.pop(1) if len(sys.argv) > 1 else "xapid"
PASSWORD = "integration-secret"


class unix_connection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def start_daemon(data_dir, *extra_args, config=None, prefix=()):
    """Starts xapid on a free loopback port (under the `prefix` command when given); returns the
    process, the port it logged, and its TLS port when --https-listen was given."""
    env = dict(os.environ, XAPID_ROOT_PASSWORD=PASSWORD)
    args = [*prefix, XAPID, "--data-dir", data_dir] + (["--config", config] if config else ["--listen", "127.0.0.1:0"])
    proc = subprocess.Popen(args + list(extra_args), stderr=subprocess.PIPE, text=True, env=env)
    tls_port = None
    for line in proc.stderr:
        m = re.search(r"xapid\.tls listen=127\.0\.0\.1:(\d+)", line)
        if m:
            tls_port = int(m.group(1))
        m = re.search(r"xapid\.ready listen=127\.0\.0\.1:(\d+)", line)
        if m:
            # The rest of the log is read (and dropped) so that the daemon never blocks on a full pipe.
            threading.Thread(target=drain, args=(proc.stderr,), daemon=True).start()
            return proc, int(m.group(1)), tls_port
    proc.kill()
    raise RuntimeError("xapid did not become ready")


def drain(stream):
    try:
        for _ in stream:
            pass
    except (ValueError, OSError):
        pass


def stop_daemon(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def free_port_triple(addresses=("127.0.0.1",), rng=None):
    """A port P such that P, P+1 and P+2 are free on every one of `addresses`: a host listening
    at P serves its pool's peers at P+1 and its Raft log at P+2 by default."""
    rng = rng or random.Random()
    for _ in range(200):
        p = rng.randrange(20000, 60000)
        socks = []
        try:
            for a in addresses:
                for q in (p, p + 1, p + 2):
                    s = socket.socket()
                    socks.append(s)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((a, q))
            return p
        except OSError:
            pass
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port")


def wait_for(what, predicate, timeout=30, every=0.2):
    """`predicate()`'s first truthy value, asked every `every` s; AssertionError naming `what`
    after `timeout` s."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        got = predicate()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def strings_in(value):
    """Every string in `value` (nested lists and dicts, keys too)."""
    out = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.add(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return out


class jsonrpc_api:
    """JSON-RPC 2.0 calls to a daemon, one connection each; `call(method, *params)` answers as
    XML-RPC does (a dict with Status, and Value or ErrorDescription)."""

    ids = itertools.count(1)

    def __init__(self, port, address="127.0.0.1", timeout=30):
        self.port, self.address, self.timeout = port, address, timeout

    def call(self, method, *params):
        c = http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)
        try:
            c.request("POST", "/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params),
                                                      "id": next(self.ids)}), {"Content-Type": "application/json"})
            answer = json.loads(c.getresponse().read())
        finally:
            c.close()
        if answer.get("error"):
            return {"Status": "Failure", "ErrorDescription": [answer["error"]["message"]] + answer["error"]["data"]}
        return {"Status": "Success", "Value": answer["result"]}


class answers:
    """ok(answer) is an XML-RPC answer's Value, err(answer) its ErrorDescription; each asserts
    the Status first."""

    def ok(self, answer):
        self.assertEqual(answer["Status"], "Success", answer)
        return answer["Value"]

    def err(self, answer):
        self.assertEqual(answer["Status"], "Failure", answer)
        return answer["ErrorDescription"]


class with_daemon(answers, unittest.TestCase):
    """A daemon of its own for the test class, on a fresh data dir (started with the class's
    `daemon_args`), and root's session on it: `x` is an XML-RPC proxy, `s` the session."""

    daemon_args = ()

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.connect(*start_daemon(cls.dir.name, *cls.daemon_args)[:2])

    @classmethod
    def connect(cls, proc, port):
        cls.proc, cls.port = proc, port
        cls.url = f"http://127.0.0.1:{port}"
        cls.x = xmlrpc.client.ServerProxy(cls.url)
        cls.s = cls.x.session.login_with_password("root", PASSWORD, "1.0", cls.__name__)["Value"]

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls.proc)
        cls.proc.stderr.close()
        cls.dir.cleanup()



# --- system users that log in through PAM ---

can_add_users = os.geteuid() == 0 and all(shutil.which(tool) for tool in ("useradd", "userdel", "chpasswd"))
needs_pam_users = unittest.skipUnless(can_add_users, "needs root, useradd, userdel and chpasswd to add users and a PAM service")


class pam_user:
    """A system user made by `pam_users`: its name, password, uid and xapid's subject identifier
    for it ("u<uid>"); `subject` is its subject's ref once it has one."""

    def __init__(self, name, password, uid):
        self.name, self.password, self.uid = name, password, uid
        self.sid = f"u{uid}"
        self.subject = None

    def login(self, x, originator="integration"):
        """The user's login answer (a dict with Status) over the proxy `x`."""
        return x.session.login_with_password(self.name, self.password, "1.0", originator)


class pam_users:
    """System users (useradd) that xapid authenticates through a PAM service file of their own
    (/etc/pam.d/xapid-test-*, pam_unix), and the API side that gives them rights on a daemon:
    `enable` turns on external authentication (type PAM, this service) on its pool, `grant`
    makes a subject for a user with roles, `role_user` does all three at once.

    `cleanup` deletes the users and the service file; register it (addCleanup or
    addClassCleanup) before making any, so that they go even when a test fails."""

    _serial = itertools.count()
    _swept = False

    def __init__(self):
        tag = f"{os.getpid()}-{next(self._serial)}"
        self.prefix = f"xt{tag}-"
        self.service = f"xapid-test-{tag}"
        self.service_path = f"/etc/pam.d/{self.service}"
        self.users = []
        if not pam_users._swept:
            pam_users._swept = True
            self.sweep_leftovers()

    @classmethod
    def sweep_leftovers(cls):
        """Users and service files this helper made in a run that was killed before its cleanup
        (their names carry the pid of a process that is gone)."""
        def gone(pid):
            try:
                os.kill(int(pid), 0)
                return False
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        for entry in pwd.getpwall():
            m = re.fullmatch(r"xt(\d+)-\d+-\d+", entry.pw_name)
            if m and gone(m.group(1)):
                cls._run(["userdel", entry.pw_name])
        for name in os.listdir("/etc/pam.d"):
            m = re.fullmatch(r"xapid-test-(\d+)-\d+", name)
            if m and gone(m.group(1)):
                try:
                    os.remove(os.path.join("/etc/pam.d", name))
                except FileNotFoundError:
                    pass

    def _write_service(self):
        if not os.path.exists(self.service_path):
            with open(self.service_path, "w") as f:
                f.write("auth required pam_unix.so\naccount required pam_unix.so\n")

    @staticmethod
    def _run(command, **kwargs):
        # useradd and userdel may find /etc/passwd locked by another process for a moment.
        for attempt in range(20):
            r = subprocess.run(command, capture_output=True, text=True, **kwargs)
            if r.returncode == 0 or "lock" not in (r.stderr or "").lower():
                return r
            time.sleep(0.1)
        return r

    def user(self, password="pam-secret-1"):
        """A new system user with this password (no subject yet)."""
        self._write_service()
        name = f"{self.prefix}{len(self.users)}"
        self.users.append(name)  # before useradd: cleanup tries userdel whatever useradd did
        r = self._run(["useradd", "--no-create-home", name])
        if r.returncode != 0:
            raise RuntimeError(f"useradd {name}: {r.stderr}")
        # A cheap hash (SHA-512, 1,000 rounds, not the system's yescrypt): tests log in hundreds
        # of times, and how costly the hash is proves nothing here.
        r = self._run(["chpasswd", "-c", "SHA512", "-s", "1000"], input=f"{name}:{password}\n")
        if r.returncode != 0:
            raise RuntimeError(f"chpasswd {name}: {r.stderr}")
        return pam_user(name, password, pwd.getpwnam(name).pw_uid)

    def enable(self, x, s):
        """pool.enable_external_auth(pool, {"pam_service": this service}, "", "PAM") as root."""
        pool = x.pool.get_all(s)["Value"][0]
        answer = x.pool.enable_external_auth(s, pool, {"pam_service": self.service}, "", "PAM")
        if answer["Status"] != "Success":
            raise RuntimeError(f"pool.enable_external_auth: {answer}")

    def grant(self, x, s, user, *role_names):
        """subject.create for `user` ("u<uid>") and subject.add_to_roles with each role; returns
        (and keeps in user.subject) the subject's ref."""
        answer = x.subject.create(s, {"subject_identifier": user.sid, "other_config": {}})
        if answer["Status"] != "Success":
            raise RuntimeError(f"subject.create: {answer}")
        user.subject = answer["Value"]
        for name in role_names:
            role = x.role.get_by_name_label(s, name)["Value"][0]
            answer = x.subject.add_to_roles(s, user.subject, role)
            if answer["Status"] != "Success":
                raise RuntimeError(f"subject.add_to_roles {name}: {answer}")
        return user.subject

    def role_user(self, x, s, *role_names, password="pam-secret-1"):
        """A new user with a subject holding these roles, on the daemon of root's proxy `x` and
        session `s` (external authentication is enabled there first when it is off)."""
        host = x.pool.get_master(s, x.pool.get_all(s)["Value"][0])["Value"]
        if x.host.get_external_auth_type(s, host)["Value"] == "":
            self.enable(x, s)
        user = self.user(password)
        self.grant(x, s, user, *role_names)
        return user

    def cleanup(self):
        for name in self.users:
            self._run(["userdel", name])
        self.users = []
        try:
            os.remove(self.service_path)
        except FileNotFoundError:
            pass


class role_daemon(with_daemon):
    """A daemon of its own and system users with roles on it: for each (attribute, role) in the
    class's `users`, `cls.<attribute>` is the user (a pam_user) and `cls.<attribute>_s` a
    session of it. Users and their PAM service go when the class is done, whatever happened."""

    users = ()

    @classmethod
    def setUpClass(cls):
        cls.pam = pam_users()
        cls.addClassCleanup(cls.pam.cleanup)
        super().setUpClass()
        try:
            for attribute, role in cls.users:
                user = cls.pam.role_user(cls.x, cls.s, role)
                setattr(cls, attribute, user)
                answer = user.login(cls.x, attribute)
                if answer["Status"] != "Success":
                    raise RuntimeError(f"{role} user {user.name} cannot log in: {answer}")
                setattr(cls, attribute + "_s", answer["Value"])
        except BaseException:
            cls.tearDownClass()
            raise


# --- raw HTTP, for what a client library would not send ---

def http_request(method, target, body=b"", headers=b""):
    """The bytes of an HTTP/1.1 request with a Content-Length (`headers`: more header lines,
    each ending with CRLF)."""
    return (b"%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s"
            % (method.encode(), target.encode(), headers, len(body), body))


def jsonrpc_request(method, params, ident=1, target="/jsonrpc"):
    """The bytes of a JSON-RPC 2.0 call over HTTP/1.1 (kept alive)."""
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": ident}).encode()
    return http_request("POST", target, body, b"Content-Type: application/json\r\n")


def read_chunked(sock, data):
    """A chunked body from `sock` (after the bytes already in `data`), read strictly (RFC 9112
    7.1): a hex size line, that many bytes, CRLF; an empty chunk and an empty trailer at the end.
    Returns (body, the chunks' sizes, whatever came beyond it). Raises EOFError if the
    connection ends inside it."""
    def need(n):
        nonlocal data
        while len(data) < n:
            more = sock.recv(1 << 16)
            if not more:
                raise EOFError(f"the connection ended inside a chunked body: {data[:80]!r}")
            data += more

    body, sizes = bytearray(), []
    while True:
        while b"\r\n" not in data:
            need(len(data) + 1)
        line, data = data.split(b"\r\n", 1)
        assert re.fullmatch(rb"[0-9a-f]+", line), f"bad chunk size line {line[:40]!r}"
        size = int(line, 16)
        if size == 0:
            need(2)
            assert data[:2] == b"\r\n", f"no empty trailer after the last chunk: {data[:40]!r}"
            return bytes(body), sizes, data[2:]
        need(size + 2)
        body += data[:size]
        assert data[size:size + 2] == b"\r\n", "a chunk's data is not followed by CRLF"
        data = data[size + 2:]
        sizes.append(size)


def read_answer(sock, buffered=b""):
    """One whole HTTP answer from `sock` (after the bytes already `buffered`): its status code,
    head (text), body and whatever came beyond it. A chunked body is read back whole; without a
    Content-Length or chunks the body ends with the connection. Raises EOFError if the
    connection ends before a whole answer."""
    data = buffered
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            head = data[:end].decode("latin-1")
            m = re.search(r"(?im)^content-length: *(\d+)", head)
            status = int(head.split(" ", 2)[1])
            if re.search(r"(?im)^transfer-encoding: *chunked *$", head):
                body, _, rest = read_chunked(sock, data[end + 4:])
                return status, head, body, rest
            if m and len(data) >= end + 4 + int(m.group(1)):
                length = int(m.group(1))
                return status, head, data[end + 4:end + 4 + length], data[end + 4 + length:]
        chunk = sock.recv(1 << 16)
        if not chunk:
            if end >= 0 and not m:
                return status, head, data[end + 4:], b""
            raise EOFError(f"the connection ended after {len(data)} bytes of an answer: {data[:80]!r}")
        data += chunk
