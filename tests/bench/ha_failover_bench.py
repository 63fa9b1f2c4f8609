#!/usr/bin/env python3
"""HA failover benchmark (issue 18): drills (deploy/ha_drill.py) on a pool of three real xapid
processes that deploy/pool-up starts in a directory of its own (127.0.0.1-3, a free port), at
each HA timeout T asked: kill -9 of a member and of the master in turns, ROUNDS drills per T.
For each T it prints, over the drills, death -> a master takes writes (p50, max) and death -> each
protected VM running again elsewhere (p50, max), and their ratios to the goals (writes <= T + 5 s,
VMs <= T + 10 s: a ratio <= 1 meets it). The victim is started again between drills.

Usage: tests/bench/ha_failover_bench.py [--rounds 20] [--timeouts 10,60] [--vms 3] [--port P]
       (run from the checkout, after the build; takes ROUNDS x (T + ~15 s) per T)
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "deploy"))
import ha_drill  # noqa: E402


def free_port():
    """A port P with P, P+1, P+2 free on 127.0.0.1-3."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p > 65000:
            continue
        try:
            for a in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
                for q in (p, p + 1, p + 2):
                    with socket.socket() as s:
                        s.bind((a, q))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port")


def pool_up(pool_dir, port, count):
    env = dict(os.environ, XAPID_POOL_DIR=pool_dir, XAPID_POOL_PORT=str(port), XAPID_SKIP_BUILD="1")
    subprocess.run([os.path.join(ROOT, "deploy", "pool-up"), str(count)], env=env, check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)


def wait_live(pool_dir, port, count, limit=120):
    """Until every host is live and the pool takes writes."""
    password = ha_drill.password_of(os.path.join(pool_dir, "host1"))
    until = time.time() + limit
    while time.time() < until:
        s, via = ha_drill.pool_session(range(1, count + 1), port, password)
        if s:
            p = ha_drill.proxy(via, port)
            hosts = ha_drill.value(p.host.get_all(s))
            if all(ha_drill.value(p.host_metrics.get_live(s, ha_drill.value(p.host.get_metrics(s, h)))) for h in hosts):
                for h in hosts:
                    ha_drill.value(p.host.enable(s, h))
                return
        time.sleep(0.5)
    raise RuntimeError("the pool did not come back whole")


def quiet(*_):
    pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--timeouts", default="10,60")
    parser.add_argument("--vms", type=int, default=3)
    parser.add_argument("--port", type=int, default=0)
    a = parser.parse_args()
    count = 3
    pool_dir = tempfile.mkdtemp(prefix="ha-bench-")
    port = a.port or free_port()
    env = dict(os.environ, XAPID_POOL_DIR=pool_dir)
    try:
        pool_up(pool_dir, port, count)
        for timeout in [int(t) for t in a.timeouts.split(",")]:
            writes, vms, masters = [], [], 0
            for r in range(a.rounds):
                wait_live(pool_dir, port, count)
                password = ha_drill.password_of(os.path.join(pool_dir, "host1"))
                _, master = ha_drill.pool_session(range(1, count + 1), port, password)
                victim = master if r % 2 else [i for i in range(1, count + 1) if i != master][r % 2]
                masters += victim == master
                t = ha_drill.drill(pool_dir, port, count, victim, "kill", timeout, a.vms, say=quiet)
                if "writes" in t:
                    writes.append(t["writes"])
                vms.extend(t["vms"].values())
                print(f"T={timeout} round {r + 1}: host {victim}{' (master)' if victim == master else ''}: writes "
                      f"{t.get('writes', float('nan')):.1f} s, VMs {sorted(round(v, 1) for v in t['vms'].values())}, "
                      f"missing {t['missing']}", flush=True)
                pool_up(pool_dir, port, count)
            if writes and vms:
                w50, wmax = statistics.median(writes), max(writes)
                v50, vmax = statistics.median(vms), max(vms)
                print(f"T = {timeout} s, {a.rounds} drills ({masters} of the master): death -> writes p50 {w50:.1f} s "
                      f"max {wmax:.1f} s ({wmax / (timeout + 5):.2f}x the goal T+5); death -> VM running p50 {v50:.1f} s "
                      f"max {vmax:.1f} s ({vmax / (timeout + 10):.2f}x the goal T+10), {len(vms)} VMs", flush=True)
    finally:
        subprocess.run([os.path.join(ROOT, "deploy", "pool-down")], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        shutil.rmtree(pool_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
