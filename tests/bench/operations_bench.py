#!/usr/bin/env python3
"""Operations benchmark (issue 17): VMs started, stopped and migrated across a pool of three real
xapid processes on 127.0.0.2-4 (simulated hosts), against the same on one host, in one run.

  cycles     VM.start + VM.hard_shutdown of a VM of each client's own, 8 clients for S seconds:
             on a host of its own, and on the pool's master with no host named (placement
             spreads the VMs, and each operation is carried out by the VM's host): cycles/s, and
             the pool's rate against the single host's.
  migrate    idle 1 GiB VMs migrated round the pool (VM.pool_migrate), 1 and 3 at once:
             migrations/s and seconds each, against the ceiling of the simulated link (the
             memory's rounds over --sim-migration-mib-per-s, measured as the copy alone).
  reads      VM.get_all_records of the pool's VMs on a member against on the master.

Usage: tests/bench/operations_bench.py [XAPID] [--seconds S] [--link-mib-per-s N] [--seed N]
       (default XAPID build/gateway/xapid)
"""
import argparse
import os
import random
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))


def value(answer, what):
    if answer["Status"] != "Success":
        raise RuntimeError(f"{what}: {answer['ErrorDescription']}")
    return answer["Value"]


def pool_session(h, password):
    from xapid_support import jsonrpc_api  # noqa: E402
    return value(jsonrpc_api(h.port, h.address).call("session.login_with_password", "root", password, "1.0", "bench"),
                 "login")


def run_clients(count, seconds, body):
    """`count` threads each running body(i) until `seconds` have passed; operations per second
    (the operations done over the time until the last one ended)."""
    began = time.monotonic()
    done, stop = [0] * count, began + seconds

    def client(i):
        while time.monotonic() < stop:
            body(i)
            done[i] += 1
    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - began)


def cycles(h, session, seconds, clients, start_on=None):
    from pool_support import vm_record  # noqa: E402
    from xapid_support import jsonrpc_api  # noqa: E402
    c = jsonrpc_api(h.port, h.address, timeout=60)
    vms = [value(c.call("VM.create", session, vm_record(f"cycle-{i}")), "VM.create") for i in range(clients)]

    def one(i):
        value(c.call("VM.start", session, vms[i], False, False), "VM.start")
        value(c.call("VM.hard_shutdown", session, vms[i]), "VM.hard_shutdown")
    rate = run_clients(clients, seconds, one)
    placed = set()  # where placement puts them all at once
    for vm in vms:
        value(c.call("VM.start", session, vm, False, False), "VM.start")
        placed.add(value(c.call("VM.get_resident_on", session, vm), "resident_on"))
    for vm in vms:
        value(c.call("VM.hard_shutdown", session, vm), "VM.hard_shutdown")
    return rate, len(placed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("xapid", nargs="?", default="build/gateway/xapid")
    ap.add_argument("--seconds", type=float, default=8, help="measured seconds of each rate (default 8)")
    ap.add_argument("--link-mib-per-s", type=int, default=1024, help="the simulated migration link (default 1024)")
    ap.add_argument("--seed", type=int, default=random.randrange(1 << 32))
    args = ap.parse_args()
    args.xapid = os.path.realpath(args.xapid)
    sys.argv[1:] = [args.xapid]  # for xapid_support
    from pool_support import PASSWORDS, free_port_everywhere, host, join_pool, vm_record  # noqa: E402
    from xapid_support import jsonrpc_api  # noqa: E402
    print(f"seed {args.seed} (--seed to repeat); {args.xapid}; {os.cpu_count()} CPUs", flush=True)
    rng = random.Random(args.seed)
    extra = ("--sim-migration-mib-per-s", str(args.link_mib_per_s))
    with tempfile.TemporaryDirectory(prefix="operations-bench-") as work:
        single = host(os.path.join(work, "single"), 0, free_port_everywhere(rng.randrange(1 << 32)), extra)
        hosts = []
        try:
            single.start()
            port = free_port_everywhere(rng.randrange(1 << 32))
            hosts = [host(os.path.join(work, "pool"), i, port, extra) for i in range(3)]
            for h in hosts:
                h.start()
            join_pool(hosts)
            s1 = pool_session(single, PASSWORDS[0])
            sp = pool_session(hosts[0], PASSWORDS[0])

            print(f"\n== cycles: VM.start + VM.hard_shutdown, 8 clients, {args.seconds:.0f} s ==", flush=True)
            one_rate, _ = cycles(single, s1, args.seconds, 8)
            pool_rate, spread = cycles(hosts[0], sp, args.seconds, 8)
            print(f"  one host      {one_rate:8.1f} cycles/s")
            print(f"  pool of three {pool_rate:8.1f} cycles/s on {spread} hosts ({pool_rate / one_rate:.2f}x the one host)")

            print(f"\n== migrate: idle 1 GiB VMs round the pool, link {args.link_mib_per_s} MiB/s ==", flush=True)
            c = jsonrpc_api(hosts[0].port, hosts[0].address, timeout=120)
            refs = {value(c.call("host.get_address", sp, r), "address"): r for r in value(c.call("host.get_all", sp), "hosts")}
            order = [refs[h.address] for h in hosts]
            # The link alone: the rounds of a 1 GiB guest as the simulator sends them (all of it,
            # then a tenth of the round before while it is over 1 % of the memory: 4 rounds).
            gib = 1 << 30
            link = sum(gib // 10 ** k for k in range(4)) / (args.link_mib_per_s << 20)
            for together in (1, 3):
                vms = []
                for i in range(together):
                    vm = value(c.call("VM.create", sp, vm_record(f"migrant-{together}-{i}")), "VM.create")
                    value(c.call("VM.start_on", sp, vm, order[i], False, False), "VM.start_on")
                    vms.append((vm, i))
                where = {vm: i for vm, i in vms}

                def move(k):
                    vm = vms[k][0]
                    where[vm] = (where[vm] + 1) % 3
                    value(c.call("VM.pool_migrate", sp, vm, order[where[vm]], {}), "VM.pool_migrate")
                rate = run_clients(together, args.seconds, move)
                each = together / rate if rate else float("inf")
                print(f"  {together} at once: {rate:6.2f} migrations/s, {each:.2f} s each "
                      f"(the link alone: {link:.2f} s; {each / link:.2f}x)")
                for vm, _ in vms:
                    value(c.call("VM.hard_shutdown", sp, vm), "VM.hard_shutdown")

            print("\n== reads: VM.get_all_records of the pool ==", flush=True)
            for h, name in ((hosts[0], "master"), (hosts[1], "member")):
                api = jsonrpc_api(h.port, h.address, timeout=60)
                count, began = 0, time.monotonic()
                while time.monotonic() - began < min(args.seconds, 3):
                    value(api.call("VM.get_all_records", sp), "get_all_records")
                    count += 1
                print(f"  on the {name}: {(time.monotonic() - began) / count * 1000:.1f} ms each")
        finally:
            for h in [single] + hosts:
                h.stop()


if __name__ == "__main__":
    main()
