#!/usr/bin/env python3
"""xe: `xe vm-list` of 1,000 VMs and the start-up of `xe help`, on a real daemon's unix socket.

  vm-list   the wall time of the whole `xe vm-list` process (start, login, VM.get_all_records,
            the table printed, logout) against, in the same run and over the same socket, the
            same JSON-RPC calls made from Python (login, VM.get_all_records read with json.loads,
            logout) inside one process — the ceiling (beside it, for scale, the start-up alone of
            a Python that imports what that client needs). Goal: xe <= 1.2 x the ceiling.
  help      the wall time of `xe help` (no call: start-up, the command table built from the
            catalog, the text printed), against spawning /bin/true.

Medians of --runs runs each, the cases alternating.

Usage: tests/bench/xe_bench.py [XAPID_BINARY] [XE_BINARY] [--vms N] [--runs R]
(default: build/gateway/xapid, build/cli/xe, 1,000 VMs, 21 runs)"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from scale_bench import VM_RECORD, in_parallel, start_daemon

HERE = os.path.dirname(os.path.abspath(__file__))
# xapid_support takes the daemon's path off the command line when imported: it is given none.
_arguments, sys.argv = sys.argv, sys.argv[:1]
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from xapid_support import unix_connection  # noqa: E402
sys.argv = _arguments


def all_records(socket_path):
    """What the Python client does: login, VM.get_all_records (json.loads), logout."""
    c = unix_connection(socket_path)

    def call(method, *params):
        c.request("POST", "/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}),
                  {"Content-Type": "application/json"})
        answer = json.loads(c.getresponse().read())
        if "error" in answer:
            sys.exit(str(answer["error"]))
        return answer["result"]

    session = call("session.login_with_password", "", "", "1.0", "bench")
    records = call("VM.get_all_records", session)
    call("session.logout", session)
    c.close()
    return records


def timed(command):
    t0 = time.perf_counter()
    r = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"xe_bench: {' '.join(command)} failed: {r.stderr.decode()}")
    return seconds, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("xapid", nargs="?", default="build/gateway/xapid")
    ap.add_argument("xe", nargs="?", default="build/cli/xe")
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as work:
        proc, port = start_daemon(args.xapid, work)
        try:
            sock = f"{work}/data/xapid.sock"
            import xmlrpc.client
            session = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}").session.login_with_password("root", "bench")["Value"]
            in_parallel(port, session, args.vms, 4,
                        lambda x, s, i: x.VM.create(s, dict(VM_RECORD, name_label=f"bench-{i}")))

            xe_list, python_in_process, python_start, xe_help, true = [], [], [], [], []
            listed = None
            for _ in range(args.runs):
                seconds, out = timed([args.xe, "--socket", sock, "vm-list"])
                xe_list.append(seconds)
                listed = out.count(b"\n\n")
                t0 = time.perf_counter()
                records = all_records(sock)
                python_in_process.append(time.perf_counter() - t0)
                python_start.append(timed([sys.executable, "-c", "import http.client, json, socket"])[0])
                xe_help.append(timed([args.xe, "help"])[0])
                true.append(timed(["/bin/true"])[0])
            # xe lists the VMs and the control domain; Python reads the templates too.
            vms = sum(1 for r in records.values() if not r["is_a_template"])
            if listed != args.vms + 1 or vms != listed:
                sys.exit(f"xe_bench: xe listed {listed} VMs, Python read {vms} (with the control domain)")
            ms = lambda xs: statistics.median(xs) * 1000
            print(f"VMs: {args.vms}, runs: {args.runs} (medians)")
            print(f"xe vm-list                                  {ms(xe_list):7.1f} ms")
            print(f"Python, in its process (login, get_all_records, logout)  {ms(python_in_process):7.1f} ms"
                  f"   xe / this = {ms(xe_list) / ms(python_in_process):.2f} (goal <= 1.2)")
            print(f"(a Python's start-up alone, importing http.client and json: {ms(python_start):.1f} ms)")
            print(f"xe help                                     {ms(xe_help):7.2f} ms   /bin/true {ms(true):.2f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
