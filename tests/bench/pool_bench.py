#!/usr/bin/env python3
"""Pool benchmark (issue 16): real xapid processes on 127.0.0.2-4, joined with pool.join, driven
over JSON-RPC with persistent connections. All ratios are against ceilings measured in this run.

  commits    VM.set_name_label on a VM of each client's own, 1 and 64 clients: commits/s and
             p50/p99 latency on (a) a host of its own, (b) a pool of three with every client on
             the master, (c) the same pool with the clients spread over the three hosts, members
             first (they forward writes to the master; one client is on a member); the pool's rate against the single host's (goal >=
             0.7x at 64 clients) and against raw RocksDB synced writes (storage_bench's ceiling,
             on the same disk, in each round); each daemon's CPU per commit (the master's first).
             The rounds alternate, so drift hits all alike.
  client     the clients' own ceiling: the same processes and threads against nginx answering a
             fixed JSON-RPC answer, and against the single host's reads (VM.get_name_label).
  failover   rounds of kill -9 of the master while a writer renames a VM through a surviving
             member: seconds from the kill to the first write sent after it and acknowledged
             (goal <= 3 s at default timeouts); the host is started again and serves before the
             next round.
  join       a pool of one with 10,000 VMs; pool.join of a fresh host: seconds until pool.join
             answers, until the joiner logs xapid.ready as a member, and until it answers with the
             pool's data (every VM made there); then the same for a third host.

The clients are processes of threads (Python's GIL would cap one process below the daemon);
the nginx ceiling says how far the client itself goes. The seed (--seed) chooses the ports, the
member each failover writer uses and when each kill comes.

Usage: tests/bench/pool_bench.py [XAPID] [--quick] [--seconds S] [--repeats N] [--rounds N]
                                 [--join-vms N] [--processes N] [--seed N] [--storage-bench PATH]
       (default XAPID build/gateway/xapid; storage_bench beside it in tests/bench/)
"""
import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The integration helpers (imported where used: xapid_support takes the daemon's path off argv).
sys.path[:0] = [os.path.join(HERE, "..", "integration"), HERE]
CALL_TIMEOUT = 60  # a call that takes longer is a hang: the daemon bounds its own waits well below
CLIENT_COUNTS = (1, 64)


# --- the clients: processes of threads, each thread one persistent connection ---

def call_params(spec, k):
    """The k-th call's params for a client: renames its VM, creates a VM, or reads its VM's name."""
    session, target, tag = spec["session"], spec["target"], spec["tag"]
    if spec["method"] == "VM.set_name_label":
        return [session, target, f"{tag}-{k}"]
    if spec["method"] == "VM.create":
        return [session, dict(target, name_label=f"{tag}-{k}")]
    return [session, target]


class kept_connection:
    """JSON-RPC calls over one keep-alive connection, written and read with the integration
    helpers' raw request and answer code (http.client cost the client 2.4x the CPU per call)."""

    def __init__(self, address, port):
        from xapid_support import jsonrpc_request, read_answer  # noqa: E402
        self.request, self.read_answer = jsonrpc_request, read_answer
        self.sock = socket.create_connection((address, port), timeout=CALL_TIMEOUT)
        self.buffered = b""

    def call(self, method, params, ident=1):
        """The decoded JSON-RPC answer; raises OSError, EOFError or ValueError when there is none."""
        self.sock.sendall(self.request(method, params, ident))
        _, _, body, self.buffered = self.read_answer(self.sock, self.buffered)
        return json.loads(body)

    def close(self):
        self.sock.close()


def run_client(spec, measure_from, stop_at, out):
    """Calls until stop_at (or `quota` calls); keeps the latency of each call that ended in
    [measure_from, stop_at), the values of a quota's calls, and the first failure."""
    conn = spec.pop("connection")
    latencies, values = [], []
    quota = spec.get("quota")
    k = 0
    try:
        while (k < quota) if quota is not None else (time.monotonic() < stop_at):
            sent = time.monotonic()
            answer = conn.call(spec["method"], call_params(spec, k), k)
            done = time.monotonic()
            k += 1
            if answer.get("error"):
                out["error"] = f"{spec['method']} on {spec['address']}: {answer['error']}"
                break
            if quota is not None:
                values.append(answer["result"])
            if measure_from <= done < stop_at:
                latencies.append(done - sent)
    except (OSError, EOFError, ValueError) as e:
        out["error"] = f"{spec['method']} on {spec['address']}: {e!r}"
    finally:
        conn.close()
    out["latencies"], out["values"] = latencies, values


def client_process(specs, warmup, seconds, go, start, results):
    """One process's share of the clients: connects, says it is ready, waits for `go`, then runs
    each client in a thread of its own; puts what they measured on `results`."""
    for spec in specs:
        spec["connection"] = kept_connection(spec["address"], spec["port"])
    results.put("ready")
    go.wait()
    measure_from = start.value + warmup
    stop_at = measure_from + (seconds if seconds is not None else 1e9)
    outs = [{} for _ in specs]
    threads = [threading.Thread(target=run_client, args=(spec, measure_from, stop_at, out))
               for spec, out in zip(specs, outs)]
    for t in threads:
        t.start()
    cpu = at_window_ends(measure_from, stop_at, time.process_time) if seconds is not None else (0, 0)
    for t in threads:
        t.join()
    results.put({"latencies": [x for o in outs for x in o["latencies"]],
                 "values": [x for o in outs for x in o["values"]],
                 "errors": [o["error"] for o in outs if "error" in o],
                 "cpu": cpu[1] - cpu[0]})


def at_window_ends(measure_from, stop_at, probe):
    """probe() at measure_from and at stop_at (monotonic times), waiting for each."""
    got = []
    for when in (measure_from, stop_at):
        time.sleep(max(0.0, when - time.monotonic()))
        got.append(probe())
    return got


def drive(specs, processes, warmup=0.0, seconds=None, probe=lambda: []):
    """Runs the clients `specs` over up to `processes` processes: for `seconds` after `warmup`
    (timed, and how much each number of `probe()` grew over those seconds is returned too), or
    until each has made its `quota` of calls. Returns the merged measurements."""
    ctx = multiprocessing.get_context("spawn")  # not fork: this process has threads reading logs
    groups = [specs[i::processes] for i in range(min(processes, len(specs)))]
    go, start, results = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    procs = [ctx.Process(target=client_process, args=(g, warmup, seconds, go, start, results), daemon=True)
             for g in groups]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            results.get(timeout=60)  # "ready"
        began = time.monotonic()
        start.value = began
        go.set()
        probed = at_window_ends(began + warmup, began + warmup + seconds, probe) if seconds is not None else ([], [])
        parts = [results.get(timeout=CALL_TIMEOUT + (seconds or 3600) + warmup + 60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    merged = {"latencies": sorted(x for p in parts for x in p["latencies"]),
              "values": [x for p in parts for x in p["values"]],
              "errors": [e for p in parts for e in p["errors"]],
              "cpu": sum(p["cpu"] for p in parts), "probed": [b - a for a, b in zip(*probed)]}
    if merged["errors"]:
        raise RuntimeError(f"{len(merged['errors'])} clients failed, the first: {merged['errors'][0]}")
    return merged


def percentile(ordered, p):
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def timed(specs, processes, warmup, seconds, daemon_pids=()):
    """Rate, p50, p99 (ms), each daemon's and the clients' CPU per call (ms) of a timed drive."""
    from scale_bench import cpu_seconds  # noqa: E402  (tests/bench/, beside this file)
    m = drive(specs, processes, warmup, seconds, lambda: [cpu_seconds(pid) for pid in daemon_pids])
    calls = max(1, len(m["latencies"]))
    return {"rate": len(m["latencies"]) / seconds, "p50": percentile(m["latencies"], 50) * 1e3,
            "p99": percentile(m["latencies"], 99) * 1e3,
            "daemon_cpu": [cpu / calls * 1e3 for cpu in m["probed"]], "client_cpu": m["cpu"] / calls * 1e3}


def describe(m):
    cpu = m["daemon_cpu"]
    each = f" = {' + '.join(f'{c:.2f}' for c in cpu)}" if len(cpu) > 1 else ""
    return (f"{m['rate']:8.0f} /s  p50 {m['p50']:7.2f} ms  p99 {m['p99']:7.2f} ms  "
            f"(CPU per call: daemons {sum(cpu):.2f} ms{each}, clients {m['client_cpu']:.2f} ms)")


# --- ceilings ---

def raw_rocksdb_ceiling(storage_bench, work):
    """storage_bench's first line, raw RocksDB synced single-key writes/s on this disk (3 s);
    the rest of that benchmark is not needed here and is stopped."""
    d = tempfile.mkdtemp(dir=work, prefix="storage-bench-")
    proc = subprocess.Popen(["stdbuf", "-oL", storage_bench, d], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            m = re.match(r"raw RocksDB synced single-key writes:\s*([\d.]+) /s", line)
            if m:
                return float(m.group(1))
        raise RuntimeError(f"{storage_bench} printed no raw RocksDB ceiling (exit {proc.wait()})")
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        shutil.rmtree(d, ignore_errors=True)


class nginx_answering:
    """nginx on 127.0.0.1 answering every POST with a fixed JSON-RPC answer: what the clients
    reach when the server costs next to nothing."""

    def __init__(self, work):
        self.dir = os.path.join(work, "nginx")
        os.makedirs(self.dir)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        d = self.dir
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(f"""daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000; client_body_temp_path {d}; proxy_temp_path {d};
  fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{ listen 127.0.0.1:{self.port};
    location / {{ default_type application/json; return 200 '{{"jsonrpc":"2.0","result":"Fixed","id":1}}'; }} }} }}
""")

    def __enter__(self):
        self.proc = subprocess.Popen(["nginx", "-c", f"{self.dir}/nginx.conf", "-p", self.dir],
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port)).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=10)


# --- hosts (pool_support's, on 127.0.0.2-4) ---

def api(h, timeout=CALL_TIMEOUT):
    from xapid_support import jsonrpc_api  # noqa: E402
    return jsonrpc_api(h.port, h.address, timeout)


def value(answer, what):
    if answer["Status"] != "Success":
        raise RuntimeError(f"{what}: {answer['ErrorDescription']}")
    return answer["Value"]


def login(h):
    from pool_support import PASSWORDS  # noqa: E402
    pool_password = PASSWORDS[0]  # a member takes the pool's, its master's first one
    # (On a member, login_with_password answers HOST_IS_SLAVE: a session made there is asked for.)
    return value(api(h).call("session.slave_local_login_with_password", "root", pool_password),
                 f"login on {h.address}")


def stop_all(hosts):
    for h in hosts:
        h.stop()


def wait_for_log(h, text, count, began, limit=300):
    """Returns once host h's log holds `text` `count` times (polled every 10 ms); raises after
    `limit` s from `began`."""
    path = os.path.join(h.dir, "xapid.log")
    while True:
        with open(path, errors="replace") as f:
            if f.read().count(text) >= count:
                return
        if time.monotonic() - began > limit:
            raise RuntimeError(f"{h.address}'s log has not {count} x {text!r} after {limit} s; "
                               f"it ends:\n{h.log_tail()}")
        time.sleep(0.01)


def log_count(h, text):
    with open(os.path.join(h.dir, "xapid.log"), errors="replace") as f:
        return f.read().count(text)


def pool_of_three(root, rng):
    """Three hosts joined into a pool, once the master has made both members voters (before that a
    commit waits for no member's disk)."""
    from pool_support import free_port_everywhere, host, join_pool  # noqa: E402
    port = free_port_everywhere(rng.randrange(1 << 32))
    hosts = [host(root, i, port) for i in range(3)]
    try:
        for h in hosts:
            h.start()
        join_pool(hosts)
        wait_for_log(hosts[0], "pool.voter.promoted", 2, time.monotonic(), limit=60)
        return hosts
    except BaseException:
        stop_all(hosts)
        raise


def master_of(hosts):
    """The live host the first live host names as pool.master (waits for one, 60 s)."""
    until = time.monotonic() + 60
    while True:
        try:
            asker = next(h for h in hosts if h.alive())
            c, s = api(asker), login(asker)
            ref = value(c.call("pool.get_master", s, value(c.call("pool.get_all", s), "pool.get_all")[0]), "get_master")
            address = value(c.call("host.get_address", s, ref), "host.get_address")
            named = next((h for h in hosts if h.address == address and h.alive()), None)
            if named:
                return named
        except (OSError, http.client.HTTPException, RuntimeError):
            pass
        if time.monotonic() > until:
            raise RuntimeError("no live master named within 60 s")
        time.sleep(0.1)


def make_vms(h, session, count, processes, tag):
    """`count` VMs made through host h by 16 clients; their refs."""
    from pool_support import vm_record  # noqa: E402
    clients = min(16, count)
    return drive([{"address": h.address, "port": h.port, "session": session, "method": "VM.create",
                   "target": vm_record(""), "tag": f"{tag}-{i}", "quota": count // clients + (i < count % clients)}
                  for i in range(clients)], processes)["values"]


# --- the three parts ---

def commits(args, work, single, hosts):
    """The clients' ceilings, then `args.repeats` rounds of commit rates (raw RocksDB, the single
    host, the pool with clients on its master, the pool with clients on all hosts); returns each
    round's measurements."""
    sessions = {h: login(h) for h in [single] + hosts}
    vms = {h: make_vms(h, sessions[h], max(CLIENT_COUNTS), args.processes, "bench") for h in (single, hosts[0])}

    def clients(targets, vms, n, method="VM.set_name_label"):
        """n clients, spread over the hosts `targets`, client i on VM vms[i]."""
        return [{"address": h.address, "port": h.port, "session": sessions[h], "method": method,
                 "target": vms[i], "tag": f"c{i}"} for i, h in ((i, targets[i % len(targets)]) for i in range(n))]

    print("\n== client ceiling (the same client processes, no commit) ==", flush=True)
    for n in CLIENT_COUNTS:
        m = timed(clients([single], vms[single], n, "VM.get_name_label"), args.processes, args.warmup, args.seconds,
                  [single.proc.pid])
        print(f"  single host reads,  {n:2} client{'s' if n > 1 else ' '}: {describe(m)}", flush=True)
    if shutil.which("nginx"):
        with nginx_answering(work) as nginx:
            for n in CLIENT_COUNTS:
                specs = [dict(spec, address="127.0.0.1", port=nginx.port)
                         for spec in clients([single], vms[single], n, "VM.get_name_label")]
                m = timed(specs, args.processes, args.warmup, args.seconds, [nginx.proc.pid])
                print(f"  nginx fixed answer, {n:2} client{'s' if n > 1 else ' '}: {describe(m)}", flush=True)
    else:
        print("  (no nginx on PATH: the client's own ceiling is not measured)")

    setups = {"single host": ([single], vms[single], [single]),
              "pool, clients on the master": ([hosts[0]], vms[hosts[0]], hosts),
              # Members first: one client writes through a member, 64 are 22, 21 and 21.
              "pool, clients on all 3 hosts": (hosts[1:] + hosts[:1], vms[hosts[0]], hosts)}
    rounds = []
    for r in range(args.repeats):
        print(f"\n== commits, round {r + 1} of {args.repeats} ==", flush=True)
        got = {"raw": raw_rocksdb_ceiling(args.storage_bench, work)}
        print(f"  raw RocksDB synced single-key writes (storage_bench): {got['raw']:8.0f} /s", flush=True)
        for n in CLIENT_COUNTS:
            for name, (targets, vms_used, daemons) in setups.items():
                m = got[name, n] = timed(clients(targets, vms_used, n), args.processes, args.warmup, args.seconds,
                                         [h.proc.pid for h in daemons])
                print(f"  {name + ',':30} {n:2} client{'s' if n > 1 else ' '}: {describe(m)}", flush=True)
        rounds.append(got)
    return rounds


def start_again(h):
    """Starts a killed host; a start that fails is reported and tried once more. Returns whether
    the first start failed."""
    try:
        h.start(limit=180)
        return False
    except RuntimeError as e:
        print(f"  {h.address} failed to start again, starting it once more: {str(e)[:2000]}", flush=True)
        h.start(limit=180)
        return True


def failover(args, hosts, rng):
    """Kill -9 of the master, `args.rounds` times, while a writer renames a VM through a surviving
    member; returns the seconds from each kill to the first write sent after it and acknowledged,
    each restarted host's seconds to xapid.ready and to taking a write, and how many starts failed."""
    vm = make_vms(hosts[0], login(hosts[0]), 1, 1, "failover-writer")[0]
    firsts, restarts, failed_starts = [], [], 0
    for r in range(args.rounds):
        master = master_of(hosts)
        member = rng.choice([h for h in hosts if h is not master])
        session = login(member)
        acks, stop = [], threading.Event()  # (sent, acknowledged) of each acknowledged write

        def write():
            """Renames the VM through `member` until stopped, one call at a time."""
            conn, k = None, 0
            while not stop.is_set():
                k += 1
                sent = time.monotonic()
                try:
                    conn = conn or kept_connection(member.address, member.port)
                    answer = conn.call("VM.set_name_label", [session, vm, f"failover-{r}-{k}"], k)
                except (OSError, EOFError, ValueError):
                    if conn:
                        conn.close()
                    conn = None
                    answer = {"error": "no answer"}
                if answer.get("error"):
                    time.sleep(0.01)
                else:
                    acks.append((sent, time.monotonic()))
            if conn:
                conn.close()

        writer = threading.Thread(target=write)
        writer.start()
        try:
            until = time.monotonic() + 30
            while not acks and time.monotonic() < until:
                time.sleep(0.01)
            if not acks:
                raise RuntimeError(f"round {r + 1}: no write through {member.address} before the kill")
            time.sleep(rng.uniform(0.5, 1.5))
            master.kill()
            killed = time.monotonic()
            # A write sent before the kill and answered after it proves nothing of the new master.
            while not any(sent >= killed for sent, _ in acks):
                if time.monotonic() - killed > 60:
                    raise RuntimeError(f"round {r + 1}: no write acknowledged within 60 s of the kill")
                time.sleep(0.005)
        finally:
            stop.set()
            writer.join()
        accepted = min(acked for sent, acked in acks if sent >= killed) - killed
        started = time.monotonic()
        failed_starts += start_again(master)
        ready = time.monotonic() - started
        value(api(master).call("VM.set_name_label", login(master), vm, f"after-restart-{r}"),
              f"a write through {master.address} after its restart")
        serving = time.monotonic() - started
        firsts.append(accepted)
        restarts.append((ready, serving))
        print(f"  round {r + 1:2}: killed master {master.address}, writer on {member.address}: "
              f"first write sent after the kill acknowledged at {accepted:.2f} s; "
              f"restarted: ready {ready:.2f} s, took a write {serving:.2f} s", flush=True)
    return firsts, restarts, failed_starts


def join_time(args, work, rng):
    """A pool of one with `args.join_vms` VMs, then pool.join of two fresh hosts in turn; returns
    for each (seconds to pool.join's answer, to the joiner's xapid.ready as a member, to its
    first answer holding every VM)."""
    from pool_support import free_port_everywhere, host  # noqa: E402
    port = free_port_everywhere(rng.randrange(1 << 32))
    hosts = [host(os.path.join(work, "join"), i, port) for i in range(3)]
    try:
        master = hosts[0]
        master.start()
        made = time.monotonic()
        vms = make_vms(master, login(master), args.join_vms, args.processes, "join")
        print(f"  {len(vms):,} VMs made on {master.address} in {time.monotonic() - made:.1f} s", flush=True)
        results = []
        for joiner in hosts[1:]:
            joiner.start()
            c = api(joiner)
            own_session = value(c.call("session.login_with_password", "root", joiner.password, "1.0", "pool_bench"),
                                f"login on {joiner.address}")
            readies = log_count(joiner, "xapid.ready")
            began = time.monotonic()
            value(c.call("pool.join", own_session, f"{master.address}:{master.port}", "root", master.password),
                  "pool.join")
            answered = time.monotonic() - began
            # The joiner starts again (the same process, exec'd) as a member, and logs xapid.ready
            # once its replica names the master. A login with the pool's password before that would
            # pay a failed login's delay, so the log is watched instead.
            wait_for_log(joiner, "xapid.ready", readies + 1, began)
            ready = time.monotonic() - began
            s = login(joiner)
            while not set(value(c.call("VM.get_all", s), "VM.get_all")).issuperset(vms):
                if time.monotonic() - began > 300:
                    raise RuntimeError(f"{joiner.address} does not hold the {len(vms)} VMs 300 s after pool.join")
                time.sleep(0.01)
            serving = time.monotonic() - began
            members = len(value(c.call("host.get_all", s), "host.get_all"))
            results.append((members, answered, ready, serving))
            print(f"  {joiner.address} joined, a pool of {members} now: pool.join answered {answered:.2f} s, "
                  f"xapid.ready as a member {ready:.2f} s, all {len(vms):,} VMs read there {serving:.2f} s", flush=True)
        return results
    finally:
        stop_all(hosts)


def spread(values):
    ordered = sorted(values)
    return (f"min {ordered[0]:.2f} / median {statistics.median(ordered):.2f} / p90 {percentile(ordered, 90):.2f} / "
            f"max {ordered[-1]:.2f} s over {len(ordered)}") if ordered else "-"


def times(ratio):
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def summary(args, rounds, firsts, restarts, failed_starts, joins):
    print(f"\n== summary (seed {args.seed}; each figure once per round) ==")
    for n in CLIENT_COUNTS:
        for name in ("pool, clients on the master", "pool, clients on all 3 hosts"):
            ratios = ", ".join(times(g[name, n]["rate"] / g["single host", n]["rate"]) for g in rounds)
            print(f"  {name}, {n:2} client{'s' if n > 1 else ' '}: {ratios} the single host's commits/s" +
                  ("  (goal >= 0.7x)" if n > 1 else ""))
    for n in CLIENT_COUNTS:
        for name in ("single host", "pool, clients on the master", "pool, clients on all 3 hosts"):
            print(f"  {name}, {n:2} client{'s' if n > 1 else ' '}: " + "; ".join(
                f"{g[name, n]['rate']:.0f}/s = {times(g[name, n]['rate'] / g['raw'])} raw RocksDB "
                f"(p50 {g[name, n]['p50']:.1f} ms, p99 {g[name, n]['p99']:.1f} ms)" for g in rounds))
    print(f"  failover, kill -9 of the master -> first write acknowledged: {spread(firsts)}  (goal <= 3 s)")
    print(f"  the killed master started again -> xapid.ready: {spread([r for r, _ in restarts])}; "
          f"-> took a write: {spread([s for _, s in restarts])}; starts that failed: {failed_starts}")
    for members, answered, ready, serving in joins:
        print(f"  join at {args.join_vms:,} VMs, a pool of {members} after: pool.join answered {answered:.2f} s, "
              f"member ready {ready:.2f} s, every VM read there {serving:.2f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("xapid", nargs="?", default="build/gateway/xapid")
    ap.add_argument("--storage-bench", help="default: tests/bench/storage_bench in XAPID's build directory")
    ap.add_argument("--quick", action="store_true", help="short measurements, one round, 3 failovers (< 2 minutes)")
    ap.add_argument("--seconds", type=float, default=8, help="measured seconds of each commit rate (default 8)")
    ap.add_argument("--warmup", type=float, default=1, help="seconds before each measurement (default 1)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of the commit measurements (default 2)")
    ap.add_argument("--rounds", type=int, default=10, help="failover rounds (default 10)")
    ap.add_argument("--join-vms", type=int, default=10000, help="VMs in the pool a host joins (default 10,000)")
    ap.add_argument("--processes", type=int, default=4, help="client processes (default 4)")
    ap.add_argument("--seed", type=int, default=random.randrange(1 << 32))
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.repeats, args.rounds = 3, 0.5, 1, 3
    args.xapid = os.path.realpath(args.xapid)
    args.storage_bench = args.storage_bench or os.path.join(os.path.dirname(os.path.dirname(args.xapid)),
                                                            "tests", "bench", "storage_bench")
    for path in (args.xapid, args.storage_bench):
        if not os.access(path, os.X_OK):
            sys.exit(f"pool_bench: {path} is not an executable (build it, or name it)")
    sys.argv[1:] = [args.xapid]  # for xapid_support, which takes it from there when imported
    from pool_support import host, free_port_everywhere  # noqa: E402
    print(f"seed {args.seed} (--seed to repeat); {args.xapid}; {os.cpu_count()} CPUs", flush=True)
    rng = random.Random(args.seed)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pool-bench-") as work:
        # The single host is host 0 of a pool of its own, on the pool's master's address.
        single = host(os.path.join(work, "single"), 0, free_port_everywhere(rng.randrange(1 << 32)))
        hosts = []
        try:
            single.start()
            hosts = pool_of_three(os.path.join(work, "pool"), rng)  # on ports the single host left free
            rounds = commits(args, work, single, hosts)
            single.stop()
            print(f"\n== failover: kill -9 of the master, {args.rounds} rounds (default timeouts) ==", flush=True)
            firsts, restarts, failed_starts = failover(args, hosts, rng)
        finally:
            stop_all([single] + hosts)
        print(f"\n== join: a fresh host joins a pool holding {args.join_vms:,} VMs ==", flush=True)
        joins = join_time(args, work, rng)
    summary(args, rounds, firsts, restarts, failed_starts, joins)
    print(f"  ({time.monotonic() - began:.0f} s in all)")


if __name__ == "__main__":
    main()
