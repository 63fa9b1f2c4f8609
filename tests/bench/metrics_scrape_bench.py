#!/usr/bin/env python3
"""Performance data of 1,000 running simulated VMs over HTTP, on a real daemon (issue 19):

  /metrics       one scrape's time (median of 20, a connection each, as a scraper makes) and its
                 size, against nginx serving the same bytes from a file in the same run
  /rrd_updates   every VM and the host over the last 10 minutes, XML and JSON: time and size

The daemon samples every 5 s; the bench waits for three samples before measuring. The
daemon's CPU over a minute of idle sampling with the VMs running is printed as a share of one
core (the collection's cost as a whole process sees it).

Usage: tests/bench/metrics_scrape_bench.py [XAPID_BINARY] [--vms N]"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
import xmlrpc.client

from large_answers_bench import free_port, start_nginx
from scale_bench import in_parallel, start_daemon

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(url):
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
    return time.perf_counter() - started, body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("xapid", nargs="?", default="build/gateway/xapid")
    ap.add_argument("--vms", type=int, default=1000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="metrics-scrape-bench-")
    metrics_port = free_port()
    proc, port = start_daemon(os.path.abspath(args.xapid), work, "--metrics-listen", f"127.0.0.1:{metrics_port}",
                              "--sim-cpus", "64", "--sim-memory-mib", str(1 << 20))
    try:
        x = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
        s = x.session.login_with_password("root", "bench", "1.0", "bench")["Value"]
        record = {"name_label": "", "memory_static_max": str(256 * MIB), "memory_dynamic_max": str(256 * MIB),
                  "memory_dynamic_min": str(256 * MIB), "memory_static_min": str(256 * MIB), "VCPUs_max": "2",
                  "VCPUs_at_startup": "2", "other_config": {}, "actions_after_crash": "restart"}

        def make(proxy, session, i):
            r = dict(record, name_label=f"vm{i}", other_config={"xapid-sim-load": "cpu=0.5,disk_write=65536"} if i % 2 else {})
            vm = proxy.VM.create(session, r)["Value"]
            return proxy.VM.start(session, vm, False, False)
        started = time.time()
        in_parallel(port, s, args.vms, 8, make)
        print(f"{args.vms} VMs created and started in {time.time() - started:.1f} s", flush=True)
        time.sleep(16)  # three samples: rates need two

        before, t0 = cpu_seconds(proc.pid), time.time()
        time.sleep(60)
        share = (cpu_seconds(proc.pid) - before) / (time.time() - t0)
        print(f"daemon CPU while sampling {args.vms} running VMs every 5 s (nothing else asked): "
              f"{100 * share:.2f} % of one core")

        url = f"http://127.0.0.1:{metrics_port}/metrics"
        times, body = [], b""
        for _ in range(20):
            took, body = get(url)
            times.append(took)
        lines = body.count(b"\n")
        print(f"/metrics: {len(body) / 1e6:.2f} MB, {lines} lines, one scrape median "
              f"{1e3 * statistics.median(times):.1f} ms (min {1e3 * min(times):.1f})")
        static = f"{work}/static"
        os.makedirs(static)
        with open(f"{static}/metrics", "wb") as f:
            f.write(body)
        nginx_port = start_nginx(work, static)
        try:
            # A scraper connects, asks and goes (as Prometheus does between scrapes): a fresh
            # connection each time for both.
            theirs = [get(f"http://127.0.0.1:{nginx_port}/metrics")[0] for _ in range(20)]
            print(f"/metrics one scrape: xapid {1e3 * statistics.median(times):.2f} ms, nginx (same bytes) "
                  f"{1e3 * statistics.median(theirs):.2f} ms: {statistics.median(times) / statistics.median(theirs):.1f}x")
        finally:
            subprocess.run(["nginx", "-c", f"{work}/nginx.conf", "-p", f"{work}/nginx", "-s", "stop"], check=False,
                           stderr=subprocess.DEVNULL)

        for fmt in ("", "&json=true"):
            u = f"http://127.0.0.1:{port}/rrd_updates?start={int(time.time()) - 600}&host=true{fmt}&session_id={s}"
            runs = [get(u) for _ in range(5)]
            print(f"/rrd_updates of {args.vms} VMs and the host over 10 minutes, {'JSON' if fmt else 'XML'}: "
                  f"{len(runs[-1][1]) / 1e6:.1f} MB, median {1e3 * statistics.median(t for t, _ in runs):.0f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
