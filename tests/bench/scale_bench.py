#!/usr/bin/env python3
"""Scale benchmark: what one commit costs as the database grows, on a real daemon over loopback.

  clone    VM.clone of one template, 8 clients: clones/s and daemon CPU per clone over the first
           100 clones and after 5,000 (the template's `children` grows by one each time); the
           ratio of the two is the figure (goal >= 0.8: a clone costs the same at 5,000 as at 100).
  create   VM.create, 8 clients: creates/s and daemon CPU per create over 2,000 creates (enough to
           include RocksDB's background flushes and compactions, which 500 often missed) once the
           database holds 1k, 10k (and, with --big, 100k) VMs; each level against the first.

The ceiling is the daemon's own rate at the smallest size in the same run.
Usage: tests/bench/scale_bench.py [XAPID_BINARY] [--clones N] [--big]   (default: build/gateway/xapid)
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_daemon(binary, work, *extra_args):
    log = open(f"{work}/xapid.log", "w+")
    env = dict(os.environ, XAPID_ROOT_PASSWORD="bench")
    proc = subprocess.Popen([binary, "--data-dir", f"{work}/data", "--listen", "127.0.0.1:0", *extra_args],
                            stderr=log, stdout=subprocess.DEVNULL, env=env)
    for _ in range(400):
        log.seek(0)
        m = re.search(r"xapid\.ready listen=127\.0\.0\.1:(\d+)", log.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    sys.exit("scale_bench: the daemon did not start:\n" + log.read())


VM_RECORD = {"name_label": "", "memory_static_max": str(1 << 30), "memory_dynamic_max": str(1 << 30),
             "memory_dynamic_min": str(1 << 30), "memory_static_min": str(1 << 30), "VCPUs_max": "1",
             "VCPUs_at_startup": "1", "other_config": {"scale_bench": "true"},
             "actions_after_crash": "restart"}


def in_parallel(port, session, total, clients, call):
    """Runs `call(proxy, session, i)` for i in range(total) over `clients` connections."""
    errors = []
    next_i = iter(range(total))
    lock = threading.Lock()

    def worker():
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
        while True:
            with lock:
                i = next(next_i, None)
            if i is None:
                return
            answer = call(proxy, session, i)
            if answer["Status"] != "Success":
                errors.append(answer["ErrorDescription"])
                return

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"scale_bench: a call failed: {errors[0]}")


def measured(pid, port, session, total, clients, call):
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    in_parallel(port, session, total, clients, call)
    seconds, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
    return total / seconds, cpu / total * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default="build/gateway/xapid")
    ap.add_argument("--clones", type=int, default=5000)
    ap.add_argument("--big", action="store_true", help="also measure at 100k VMs (takes minutes)")
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        proc, port = start_daemon(args.binary, work)
        try:
            x = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
            s = x.session.login_with_password("root", "bench", "1.0", "scale_bench")["Value"]
            rec = dict(VM_RECORD, name_label="template")
            template = x.VM.create(s, rec)["Value"]

            def clone(proxy, session, i):
                return proxy.VM.clone(session, template, f"clone-{i}")

            first_rate, first_cpu = measured(proc.pid, port, s, 100, args.clients, clone)
            in_parallel(port, s, args.clones - 200, args.clients, clone)
            late_rate, late_cpu = measured(proc.pid, port, s, 100, args.clients, clone)
            children = len(x.VM.get_children(s, template)["Value"])
            print(f"VM.clone of one template, first 100:      {first_rate:8.0f} /s  {first_cpu:6.2f} ms CPU each")
            print(f"VM.clone after {children - 100:,} clones:          {late_rate:8.0f} /s  {late_cpu:6.2f} ms CPU each"
                  f"  ({late_rate / first_rate:.2f}x the first 100; goal >= 0.8)")

            def create(proxy, session, i):
                return proxy.VM.create(session, dict(VM_RECORD, name_label=f"vm-{i}"))

            levels = [1000, 10000] + ([100000] if args.big else [])
            have = children + 1
            base = None
            for level in levels:
                if have < level:
                    in_parallel(port, s, level - have, args.clients, create)
                    have = level
                rate, cpu = measured(proc.pid, port, s, 2000, args.clients, create)
                have += 2000
                base = base or (rate, cpu)
                print(f"VM.create at {level:>7,} VMs:                {rate:8.0f} /s  {cpu:6.3f} ms CPU each"
                      f"  ({rate / base[0]:.2f}x the rate, {cpu / base[1]:.2f}x the CPU at {levels[0]:,}; goal within 1.5x)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
