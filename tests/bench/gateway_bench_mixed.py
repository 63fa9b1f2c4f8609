#!/usr/bin/env python3
"""A small call's latency while other clients do slow things: session.get_this_host, called in
turn by one client, while two others log in (a password hash and a commit each) or write
(a commit each) without pause; and the same call alone, as the reference.
Usage: gateway_bench_mixed.py PORT"""
import sys
import threading
import time
import xmlrpc.client

url = f"http://127.0.0.1:{int(sys.argv[1])}"
x = xmlrpc.client.ServerProxy(url)
s = x.session.login_with_password("root", "bench")["Value"]
vm = x.VM.get_all(s)["Value"][0]


def small_call_latency(label, background=None):
    stop = threading.Event()

    def loop():
        y = xmlrpc.client.ServerProxy(url)
        while not stop.is_set():
            background(y)

    threads = [threading.Thread(target=loop) for _ in range(2)] if background else []
    for t in threads:
        t.start()
    time.sleep(0.2)
    ms = []
    for _ in range(300):
        began = time.perf_counter()
        x.session.get_this_host(s, s)
        ms.append((time.perf_counter() - began) * 1000)
    stop.set()
    for t in threads:
        t.join()
    ms.sort()
    print(f"session.get_this_host {label:<34} p50 {ms[150]:.2f} ms, p99 {ms[296]:.2f} ms, max {ms[-1]:.2f} ms")


small_call_latency("alone")
small_call_latency("while 2 clients log in", lambda y: y.session.login_with_password("root", "bench"))
small_call_latency("while 2 clients write", lambda y: y.VM.set_name_description(s, vm, "bench"))
