#!/usr/bin/env python3
"""Large answers: VM.get_all_records of 10,000 VMs, on a real daemon over loopback.

  speed   the answer over XML-RPC and over JSON-RPC (2.0), one connection and eight, keep-alive
          (wrk: answers/s), against nginx serving the same bytes from a file in the same run:
          the ratio nginx/xapid is the figure (goal <= 1.5 in both formats).
  memory  the daemon's peak resident memory while 8 clients ask for the answer at once, 5 times
          each, in each format, against its resident memory when idle with the 10,000 VMs
          (goal: peak <= 1.2 x idle + 64 MB); and what stays resident afterwards.

Usage: tests/bench/large_answers_bench.py [XAPID_BINARY] [--vms N] [--seconds S]
(default: build/gateway/xapid, 10,000 VMs, 5 s per wrk case)"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client

from scale_bench import VM_RECORD, in_parallel, start_daemon

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))


def fetch(port, path, body, content_type):
    """The answer's body, read whole (http.client takes chunked answers as any)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", path, body, {"Content-Type": content_type})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        sys.exit(f"large_answers_bench: HTTP {r.status}")
    return data


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(work, static):
    port = free_port()
    os.chmod(work, 0o755)  # nginx's workers run as another user
    os.chmod(static, 0o755)
    os.makedirs(f"{work}/nginx", exist_ok=True)
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(f"""worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx; proxy_temp_path {work}/nginx; fastcgi_temp_path {work}/nginx;
  uwsgi_temp_path {work}/nginx; scgi_temp_path {work}/nginx;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; root {static}; }}
}}
""")
    subprocess.run(["nginx", "-c", f"{work}/nginx.conf", "-p", f"{work}/nginx"], check=True)
    return port


def wrk_rate(url, conns, seconds, body_file=None, content_type=None):
    args = ["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{seconds}s", url]
    env = dict(os.environ)
    if body_file:
        args[1:1] = ["-s", f"{HERE}/post.lua"]
        env.update(BODY_FILE=body_file, CONTENT_TYPE=content_type)
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
    if "Non-2xx" in out:
        sys.exit(f"large_answers_bench: wrk saw errors:\n{out}")
    # Answers cut off (the connection closed before their end) are counted, not rated.
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = sum(int(n) for n in errors.groups()) if errors else 0
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), failed


def peak_while(pid, work_fn):
    """Runs work_fn while sampling the daemon's resident memory; the peak in KiB (the kernel's
    high-water mark, reset first, and the samples)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM
    except OSError:
        pass
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.005)

    t = threading.Thread(target=sample)
    t.start()
    try:
        work_fn()
    finally:
        stop.set()
        t.join()
    return max(peak[0], rss_kib(pid, "VmHWM"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default="build/gateway/xapid")
    ap.add_argument("--vms", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"large_answers_bench: {tool} is missing (deploy/install-deps installs it)")
    with tempfile.TemporaryDirectory() as work:
        proc, port = start_daemon(args.binary, work)
        nginx_pid_file = f"{work}/nginx.pid"
        try:
            x = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")
            s = x.session.login_with_password("root", "bench", "1.0", "large_answers_bench")["Value"]
            have = len(x.VM.get_all(s)["Value"])
            in_parallel(port, s, max(0, args.vms - have), 8,
                        lambda proxy, session, i: proxy.VM.create(session, dict(VM_RECORD, name_label=f"vm-{i}")))
            vms = len(x.VM.get_all(s)["Value"])

            bodies = {"xml": ("/", xmlrpc.client.dumps((s,), "VM.get_all_records"), "text/xml"),
                      "json": ("/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": "VM.get_all_records",
                                                      "params": [s], "id": 1}), "application/json")}
            os.makedirs(f"{work}/static")
            for fmt, (path, body, ctype) in bodies.items():
                with open(f"{work}/{fmt}.request", "w") as f:
                    f.write(body)
                answer = fetch(port, path, body, ctype)
                with open(f"{work}/static/answer.{fmt}", "wb") as f:
                    f.write(answer)
                print(f"VM.get_all_records of {vms:,} VMs over {fmt.upper():<4}: {len(answer) / 1e6:6.1f} MB")
            nginx_port = start_nginx(work, f"{work}/static")

            print(f"\n{'case':<28} {'conns':>5} {'xapid/s':>9} {'nginx/s':>9} {'nginx/xapid':>12}")
            for fmt, (path, body, ctype) in bodies.items():
                for conns in (1, 8):
                    nginx, _ = wrk_rate(f"http://127.0.0.1:{nginx_port}/answer.{fmt}", conns, args.seconds)
                    xapid, failed = wrk_rate(f"http://127.0.0.1:{port}{path}", conns, args.seconds,
                                             f"{work}/{fmt}.request", ctype)
                    print(f"{'get_all_records ' + fmt:<28} {conns:>5} {xapid:9.2f} {nginx:9.2f} {nginx / xapid:11.2f}x"
                          "  (goal <= 1.5x)" + (f"  {failed} answers cut off" if failed else ""))

            time.sleep(1)
            idle = rss_kib(proc.pid)

            cut_off = [0]

            def eight_at_once():
                for fmt, (path, body, ctype) in bodies.items():
                    def client():
                        for _ in range(5):
                            try:
                                fetch(port, path, body, ctype)
                            except (http.client.HTTPException, OSError):
                                cut_off[0] += 1
                    threads = [threading.Thread(target=client) for _ in range(8)]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()

            peak = peak_while(proc.pid, eight_at_once)
            time.sleep(1)
            after = rss_kib(proc.pid)
            goal = 1.2 * idle + 64 * 1024
            print(f"\nresident memory, idle with {vms:,} VMs:          {idle / 1024:7.0f} MB")
            print(f"  peak, 8 clients x 5 get_all_records, XML then JSON: {peak / 1024:7.0f} MB"
                  f"  (goal <= 1.2 x idle + 64 MB = {goal / 1024:.0f} MB: {'met' if peak <= goal else 'NOT met'})")
            if cut_off[0]:
                print(f"  {cut_off[0]} of the 80 answers were cut off before their end")
            print(f"  1 s after:                                   {after / 1024:7.0f} MB")
        finally:
            if os.path.exists(nginx_pid_file):
                with open(nginx_pid_file) as f:
                    os.kill(int(f.read()), 15)
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
