#!/usr/bin/env python3
"""event.from wake-up latency: a client waits on event.from for pool changes; another commits a
change; the time from the commit's answer to the waiter's answer.  Usage: gateway_bench_events.py PORT"""
import statistics
import sys
import threading
import time
import xmlrpc.client

url = f"http://127.0.0.1:{int(sys.argv[1])}"
x = xmlrpc.client.ServerProxy(url)
s = x.session.login_with_password("root", "bench")["Value"]
pool = x.pool.get_all(s)["Value"][0]
wake_ms = []
for i in range(30):
    token = x.event.inject(s, "pool", pool)["Value"]
    token = getattr(x.event, "from")(s, ["pool"], token, 0.0)["Value"]["token"]
    done = {}
    def wait():
        w = xmlrpc.client.ServerProxy(url)
        getattr(w.event, "from")(s, ["pool"], token, 30.0)
        done["at"] = time.perf_counter()
    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.05)  # let the waiter block first; only what follows the commit is measured
    x.pool.set_name_description(s, pool, f"bench {i}")
    committed = time.perf_counter()
    t.join()
    wake_ms.append((done["at"] - committed) * 1000)
wake_ms.sort()
print(f"\nevent.from wake-up after a commit: p50 {statistics.median(wake_ms):.2f} ms, "
      f"p99 {wake_ms[int(len(wake_ms) * 0.99) - 1]:.2f} ms, max {wake_ms[-1]:.2f} ms (30 changes; target: milliseconds)")
