#!/usr/bin/env python3
"""Event fan-out benchmark: 100 watchers wait on event.from(["vm"]) over keep-alive connections
of their own while a writer changes one VM 200 times, in a pool of 10,000 VMs (the compiled
client tests/bench/event_fanout_load does the watching, so that the client's own cost does not
limit the daemon).

Measured, with the ceiling in the same run:
  - the daemon's CPU per change (/proc/PID/stat before and after), against nginx's CPU sending a
    static file of the same size as one watcher's answer to 100 keep-alive connections, once per
    round (goal: <= 3x);
  - each watcher's wake-up: the time from the writer's answer to the watcher's (goal: p99 <= 5 ms);
  - the writer's own call latency, with the 100 watchers and with none.

Usage: tests/bench/event_fanout_bench.py [BUILD_DIR] [--vms N] [--watchers N] [--changes N]
                                         [--format xml|json|mixed]   (defaults: build, 10000, 100, 200, xml)
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale_bench import VM_RECORD, in_parallel, start_daemon  # noqa: E402


def load(build, *args):
    out = subprocess.run([f"{build}/tests/bench/event_fanout_load", *map(str, args)], check=True,
                         capture_output=True, text=True).stdout
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", out)}


def nginx_ceiling(build, work, answer_bytes, connections, rounds):
    """nginx's CPU (ms) to send `answer_bytes` to each of `connections` connections `rounds` times."""
    os.makedirs(f"{work}/static", exist_ok=True)
    os.makedirs(f"{work}/nginx", exist_ok=True)
    with open(f"{work}/static/answer.xml", "w") as f:
        f.write("x" * answer_bytes)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    n = f"{work}/nginx"
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1; pid {n}/nginx.pid; error_log {n}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000; client_body_temp_path {n}; proxy_temp_path {n};
  fastcgi_temp_path {n}; uwsgi_temp_path {n}; scgi_temp_path {n};
  server {{ listen 127.0.0.1:{port}; root {work}/static; default_type text/xml; }} }}
""")
    nginx = subprocess.Popen(["nginx", "-c", f"{work}/nginx.conf", "-p", n], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        return load(build, "get", "127.0.0.1", port, "/answer.xml", connections, rounds, nginx.pid)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--vms", type=int, default=10000)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--format", default="xml", choices=["xml", "json", "mixed"])
    args = ap.parse_args()
    build = os.path.realpath(args.build)
    with tempfile.TemporaryDirectory() as work:
        proc, port = start_daemon(f"{build}/gateway/xapid", work)
        try:
            x = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
            s = x.session.login_with_password("root", "bench", "1.0", "event_fanout_bench")["Value"]
            in_parallel(port, s, args.vms, 8,
                        lambda proxy, session, i: proxy.VM.create(session, dict(VM_RECORD, name_label=f"vm-{i}")))
            vm = x.VM.get_by_name_label(s, "vm-0")["Value"][0]

            def run(watchers):
                token = str(x.event.get_current_id(s)["Value"])
                return load(build, "watch", "127.0.0.1", port, s, token, vm, watchers, args.changes, args.format, proc.pid)

            alone = run(0)
            watched = run(args.watchers)
            again = run(0)  # the writer alone again: the database grew by nothing, the run is warm
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        nginx = nginx_ceiling(build, work, int(watched["answer_bytes"]), args.watchers, args.changes)

    per_change = watched["cpu_ms"] / args.changes
    writer_alone = min(alone["cpu_ms"], again["cpu_ms"]) / args.changes
    nginx_round = nginx["cpu_ms"] / args.changes
    print(f"{args.watchers} watchers ({args.format}) x {args.changes} changes at {args.vms:,} VMs, "
          f"{int(watched['answer_bytes'])} B per answer")
    print(f"  daemon CPU per change:   {per_change:7.3f} ms with the watchers, {writer_alone:7.3f} ms with none "
          f"(fan-out {per_change - writer_alone:.3f} ms)")
    print(f"  nginx, same bytes to {args.watchers} connections: {nginx_round:7.3f} ms per round")
    print(f"  ratio: {per_change / nginx_round:.2f}x nginx (fan-out alone {(per_change - writer_alone) / nginx_round:.2f}x; "
          f"goal <= 3x)")
    print(f"  wake-up after the writer's answer: p50 {watched['wake_p50_us'] / 1000:.2f} ms, "
          f"p99 {watched['wake_p99_us'] / 1000:.2f} ms, max {watched['wake_max_us'] / 1000:.2f} ms (goal p99 <= 5 ms)")
    print(f"  each watcher's answer after the writer sent its call: p50 {watched['sent_p50_us'] / 1000:.2f} ms, "
          f"p99 {watched['sent_p99_us'] / 1000:.2f} ms")
    print(f"  writer's call: p50 {watched['write_p50_us'] / 1000:.2f} ms, p99 {watched['write_p99_us'] / 1000:.2f} ms "
          f"with the watchers; p50 {alone['write_p50_us'] / 1000:.2f} ms, p99 {alone['write_p99_us'] / 1000:.2f} ms "
          f"with none")


if __name__ == "__main__":
    main()
