"""What the pool tests share: real xapid processes on 127.0.0.2-6 with the same ports for all (as
deploy/pool-up starts them), started, joined into one pool, killed and started again."""
import collections
import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
import xmlrpc.client

from xapid_support import XAPID, free_port_triple, jsonrpc_api

ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"]
PASSWORDS = ["pool-master-pw", "host-3-pw", "host-4-pw", "host-5-pw", "host-6-pw"]


def free_port_everywhere(seed=None):
    """A port P such that P, P+1 and P+2 (API, peer service, Raft) are free on every address."""
    return free_port_triple(ADDRESSES, random.Random(seed))


class host:
    """Host i of a pool: 127.0.0.(i+2), its own data dir under `root`, its first boot's root
    password PASSWORDS[i] (a member takes the pool's, PASSWORDS[0], when it joins)."""

    def __init__(self, root, i, port, extra_args=()):
        self.i, self.address, self.port = i, ADDRESSES[i], port
        self.extra_args = list(extra_args)  # more daemon options, the same at every start
        self.dir = os.path.join(root, f"host{i}")
        self.password = PASSWORDS[i]
        self.url = f"http://{self.address}:{port}"
        self.proc = None
        self.stderr_tail = ()

    def start(self, limit=300):
        """Starts the daemon and returns once it logs xapid.ready (a member waits there for a
        master: at most 300 s). Its log is read (and dropped) so that it never blocks on a full
        pipe; DIR/xapid.log keeps it."""
        env = dict(os.environ, XAPID_ROOT_PASSWORD=self.password)
        self.proc = subprocess.Popen([XAPID, "--data-dir", self.dir, "--listen", f"{self.address}:{self.port}",
                                      *self.extra_args],
                                     stderr=subprocess.PIPE, text=True, env=env)
        ready = threading.Event()
        stderr_tail = self.stderr_tail = collections.deque(maxlen=20)

        def read(stream):
            try:
                for line in stream:
                    stderr_tail.append(line)
                    if "xapid.ready" in line:
                        ready.set()
            except (ValueError, OSError):
                pass
            finally:
                stream.close()

        threading.Thread(target=read, args=(self.proc.stderr,), daemon=True).start()
        until = time.time() + limit
        while not ready.wait(0.05):
            if self.proc.poll() is not None and not ready.is_set():
                raise RuntimeError(f"host {self.address} exited ({self.proc.returncode}) before it was ready; "
                                   f"its log ends:\n{self.log_tail()}")
            if time.time() > until:
                raise RuntimeError(f"host {self.address} was not ready within {limit} s; its log ends:\n{self.log_tail()}")

    def proxy(self):
        return xmlrpc.client.ServerProxy(self.url, allow_none=True)

    def json(self, timeout=60):
        """A JSON-RPC caller of this host (`call(method, *params)` answers as XML-RPC does)."""
        return jsonrpc_api(self.port, self.address, timeout)

    def login(self, password=None, limit=60):
        """A session made on this host, master or member: slave_local_login_with_password (a
        member answers login_with_password with HOST_IS_SLAVE, as xapi's do)."""
        until = time.time() + limit
        while True:
            try:
                with self.proxy() as p:
                    r = p.session.slave_local_login_with_password("root", password or self.password)
                if r["Status"] == "Success":
                    return r["Value"]
                last = r["ErrorDescription"]
            except (OSError, xmlrpc.client.ProtocolError) as e:
                last = e
            if time.time() > until:
                raise AssertionError(f"{self.address}: no login: {last}")
            time.sleep(0.2)

    def login_once_it_has_hosts(self, password, count, limit=120):
        """A session once the host's pool has `count` hosts (it restarts after a join or an eject,
        and the same password may log in before it goes)."""
        until = time.time() + limit
        while True:
            session = self.login(password, limit)
            with self.proxy() as p:
                r = p.host.get_all(session)
            if (r["Status"] == "Success" and len(r["Value"]) == count) or time.time() > until:
                return session
            time.sleep(0.2)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log_tail(self, lines=40):
        """The end of its log file, and of its last start's stderr (which says why a start failed)."""
        try:
            with open(os.path.join(self.dir, "xapid.log"), errors="replace") as f:
                text = "".join(f.readlines()[-lines:])
        except OSError as e:
            text = f"(no log: {e})\n"
        return text + "stderr ends:\n" + "".join(list(self.stderr_tail)[-lines:])


def stop_all(hosts):
    """Stops every host at once (SIGTERM, waited for)."""
    stoppers = [threading.Thread(target=h.stop) for h in hosts]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join()


def checkpoints(hosts):
    """Each stopped host's database as the pool's checkpoint bytes (xapid --export-checkpoint):
    [(its output: generation and log index, the bytes)]."""
    out = []
    for h in hosts:
        file = os.path.join(h.dir, "compared-checkpoint")
        done = subprocess.run([XAPID, "--data-dir", h.dir, "--export-checkpoint", file], capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"{h.address}: --export-checkpoint failed: {done.stderr}")
        with open(file, "rb") as f:
            out.append((done.stdout.strip(), f.read()))
        os.remove(file)
    return out


RAFT_MEMBER = re.compile(r'^xapid_raft_member\{member_id="\d+",address="([^"]+)",role="(\w+)"\} 1$', re.M)


def raft_roles(h, password=None):
    """{Raft address: role} of the pool's log as host h's /metrics shows it."""
    session = h.login(password)
    with urllib.request.urlopen(f"{h.url}/metrics?session_id={session}", timeout=30) as r:
        return dict(RAFT_MEMBER.findall(r.read().decode()))


def wait_for_voters(h, count, password=None, limit=60):
    """Until host h's log has `count` voters (a member taken in or back votes once caught up)."""
    until = time.time() + limit
    while True:
        roles = raft_roles(h, password)
        if list(roles.values()).count("voter") == count:
            return roles
        if time.time() > until:
            raise AssertionError(f"{h.address}: {count} voters expected within {limit} s, the log has {roles}")
        time.sleep(0.2)


def interrupted(call, victims, rng, spread=0.3):
    """Runs call() (a pool operation) on a thread and kills one of `victims` ({name: host}),
    chosen by rng, a seeded 0..spread s into it (the crash drills of join and eject). Returns
    (the victim's name, the delay, what call() answered or the exception it raised)."""
    name = rng.choice(sorted(victims))
    delay = rng.uniform(0.0, spread)
    answer = {}

    def run():
        try:
            answer["r"] = call()
        except (OSError, xmlrpc.client.ProtocolError) as e:
            answer["r"] = e
    t = threading.Thread(target=run)
    t.start()
    time.sleep(delay)
    victims[name].kill()
    t.join(90)
    return name, delay, answer.get("r")


def said(answer):
    """What a call answered, in a word: its Status, or the exception's name."""
    return answer["Status"] if isinstance(answer, dict) else type(answer).__name__


def join_pool(hosts, limit=120):
    """Joins hosts[1:] to hosts[0] (pool.join on each, with the master's root password) and
    returns once each is back as a member that sees them all."""
    master = hosts[0]
    for joiner in hosts[1:]:
        with joiner.proxy() as p:
            r = p.pool.join(joiner.login(), f"{master.address}:{master.port}", "root", master.password)
        if r["Status"] != "Success":
            raise AssertionError(f"{joiner.address}: pool.join: {r}")
    for h in hosts:
        try:
            session = h.login_once_it_has_hosts(master.password, len(hosts), limit)
            with h.proxy() as p:
                count = len(p.host.get_all(session)["Value"])
        except AssertionError as e:
            raise AssertionError(f"{e}; {h.address} ({'up' if h.alive() else 'down'}), its log ends:\n{h.log_tail()}") from e
        if count != len(hosts):
            raise AssertionError(f"{h.address} sees {count} hosts, not {len(hosts)}, {limit} s after the joins")


def vm_record(name):
    gib = str(1 << 30)
    return {"name_label": name, "name_description": "", "user_version": "1", "is_a_template": False,
            "affinity": "", "memory_static_max": gib, "memory_dynamic_max": gib, "memory_dynamic_min": gib,
            "memory_static_min": gib, "VCPUs_params": {}, "VCPUs_max": "1", "VCPUs_at_startup": "1",
            "actions_after_shutdown": "destroy", "actions_after_reboot": "restart", "actions_after_crash": "restart",
            "PV_bootloader": "", "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "",
            "PV_legacy_args": "", "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "dc"},
            "platform": {}, "PCI_bus": "", "other_config": {}, "recommendations": ""}


class three_hosts:
    """A TestCase mixin: three hosts (each its own process and data dir; COUNT of them, at most
    five) started before the class's tests, joined into one pool when JOINED, and stopped
    after. PORT_SEED picks the port."""
    COUNT = 3
    EXTRA_ARGS = ()
    JOINED = False
    PORT_SEED = None

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.TemporaryDirectory()
        port = free_port_everywhere(cls.PORT_SEED)
        cls.hosts = [host(cls.root.name, i, port, extra_args=cls.EXTRA_ARGS) for i in range(cls.COUNT)]
        try:
            for h in cls.hosts:
                h.start()
            if cls.JOINED:
                join_pool(cls.hosts)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for h in cls.hosts:
            h.stop()
        cls.root.cleanup()


class ha_pool(three_hosts):
    """A TestCase mixin: the hosts joined into one pool, a shared SR (a directory every host
    sees) and HA on at HA_TIMEOUT seconds; `session` a pool session, `host_refs` the hosts'
    refs in their order."""
    JOINED = True
    HA_TIMEOUT = 10

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.session = cls.login(0)
            with cls.hosts[0].proxy() as p:
                refs = {p.host.get_address(cls.session, r)["Value"]: r for r in p.host.get_all(cls.session)["Value"]}
                cls.host_refs = [refs[h.address] for h in cls.hosts]
                where = tempfile.mkdtemp(dir=cls.root.name)
                sr = p.SR.create(cls.session, cls.host_refs[0], {"location": where}, "0", "shared", "", "file", "user",
                                 True, {})["Value"]
                r = p.pool.enable_ha(cls.session, [sr], {"timeout": str(cls.HA_TIMEOUT)})
                assert r["Status"] == "Success", r
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def login(cls, i):
        """A pool session made on host i, or None when it is not the master (or is down)."""
        try:
            with cls.hosts[i].proxy() as p:
                r = p.session.login_with_password("root", cls.hosts[0].password, "1.0", cls.__name__)
        except OSError:
            return None
        return r["Value"] if r["Status"] == "Success" else None


class pool_calls:
    """A TestCase mixin over `hosts` and a pool session `session` (a class attribute the test
    replaces after a failover): calls through any host, answered as xapid_support.answers checks."""

    def answer(self, i, method, *params):
        with self.hosts[i].proxy() as p:
            target = p
            for part in method.split("."):
                target = getattr(target, part)
            return target(self.session, *params)

    def call(self, i, method, *params):
        return self.ok(self.answer(i, method, *params))

    def fails(self, i, method, *params):
        return self.err(self.answer(i, method, *params))

    def eventually(self, check, limit=30):
        """check() once it passes, retried every 0.1 s for `limit` seconds (a host may be restarting)."""
        until = time.time() + limit
        while True:
            try:
                return check()
            except (AssertionError, OSError, ConnectionError):
                if time.time() > until:
                    raise
                time.sleep(0.1)
