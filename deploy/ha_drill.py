#!/usr/bin/env python3
"""An HA failover drill on a pool deploy/pool-up started (its shared SR "Shared storage"): turns
HA on (timeout T) if it is off, starts protected VMs spread over the hosts, then kills (kill -9)
or stops (SIGSTOP) the host the operator names, and prints the timeline as the surviving hosts
see it: death -> host seen dead -> a master takes writes -> each protected VM running again
elsewhere. A stopped host is continued (SIGCONT) at the end: it must find itself fenced and exit
(status 99, as `ps` no longer lists it). The host stays down: `deploy/pool-up` starts it again
(it comes back a member, its old guests gone).

    deploy/ha-drill [--host I] [--mode kill|stop] [--timeout T] [--vms N]

The drill's functions serve tests/bench/ha_failover_bench.py too."""
import argparse
import os
import signal
import sys
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pool_join import password_of  # noqa: E402


def proxy(i, port):
    return xmlrpc.client.ServerProxy(f"http://127.0.0.{i}:{port}", allow_none=True)


def value(r):
    if r["Status"] != "Success":
        raise RuntimeError(r["ErrorDescription"])
    return r["Value"]


def pool_session(hosts, port, password):
    """A pool session from whichever of `hosts` is the master (a member answers HOST_IS_SLAVE),
    and that host; None when none takes a login now."""
    for i in hosts:
        try:
            r = proxy(i, port).session.login_with_password("root", password, "1.0", "ha-drill")
            if r["Status"] == "Success":
                return r["Value"], i
        except (OSError, xmlrpc.client.ProtocolError):
            pass
    return None, None


def prepare(pool_dir, port, count, timeout, vms):
    """HA on with `timeout` (turned off and on again when its T differs) and `vms` protected VMs
    running, one per host in turn; answers (session, master index, vm refs, host refs by index)."""
    password = password_of(os.path.join(pool_dir, "host1"))
    session, master = pool_session(range(1, count + 1), port, password)
    if session is None:
        sys.exit("no host of the pool takes a login: is it up (deploy/pool-up)?")
    m = proxy(master, port)
    pool = value(m.pool.get_all(session))[0]
    config = value(m.pool.get_ha_configuration(session, pool))
    if value(m.pool.get_ha_enabled(session, pool)) and config.get("timeout") != str(timeout):
        value(m.pool.disable_ha(session))
    if not value(m.pool.get_ha_enabled(session, pool)):
        shared = [sr for sr, rec in value(m.SR.get_all_records(session)).items() if rec["shared"]
                  and rec["name_label"] == "Shared storage"]
        if not shared:
            sys.exit("the pool has no shared SR \"Shared storage\" (deploy/pool-up makes one for two hosts or more)")
        value(m.pool.enable_ha(session, shared[:1], {"timeout": str(timeout)}))
    refs = {value(m.host.get_address(session, h)): h for h in value(m.host.get_all(session))}
    hosts = {i: refs[f"127.0.0.{i}"] for i in range(1, count + 1) if f"127.0.0.{i}" in refs}
    made = []
    for n in range(vms):
        i = list(hosts)[n % len(hosts)]
        name = f"ha-drill-{n}"
        found = value(m.VM.get_by_name_label(session, name))
        vm = found[0] if found else value(m.VM.create(session, vm_record(name)))
        value(m.VM.set_ha_restart_priority(session, vm, "restart"))
        if value(m.VM.get_power_state(session, vm)) == "Halted":
            value(m.VM.start_on(session, vm, hosts[i], False, False))
        made.append(vm)
    return session, master, made, hosts, password


def vm_record(name):
    mib = str(256 << 20)
    return {"name_label": name, "name_description": "HA drill", "user_version": "1", "is_a_template": False,
            "affinity": "", "memory_static_max": mib, "memory_dynamic_max": mib, "memory_dynamic_min": mib,
            "memory_static_min": mib, "VCPUs_params": {}, "VCPUs_max": "1", "VCPUs_at_startup": "1",
            "actions_after_shutdown": "destroy", "actions_after_reboot": "restart", "actions_after_crash": "restart",
            "PV_bootloader": "", "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "",
            "PV_legacy_args": "", "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "dc"},
            "platform": {}, "PCI_bus": "", "other_config": {}, "recommendations": ""}


def pid_of(pool_dir, i):
    with open(os.path.join(pool_dir, f"host{i}", "xapid.pid")) as f:
        return int(f.read().strip())


def drill(pool_dir, port, count, victim, mode="kill", timeout=10, vms=3, say=print):
    """Runs one drill; answers the timeline: seconds from the death to `dead` (the victim's
    host_metrics.live false), `writes` (a pool login accepted again), `master` (pool.master is
    another host, when the victim was the master) and `vms` ({vm: seconds} for the victim's
    protected VMs running again elsewhere); `fenced` (a stopped victim's exit once continued)."""
    session, master, made, hosts, password = prepare(pool_dir, port, count, timeout, vms)
    m = proxy(master, port)
    on_victim = [vm for vm in made if value(m.VM.get_resident_on(session, vm)) == hosts[victim]]
    pid = pid_of(pool_dir, victim)
    survivors = [i for i in hosts if i != victim]
    say(f"pool of {len(hosts)}, T = {timeout} s; host {victim} ({'the master' if victim == master else 'a member'}) "
        f"runs {len(on_victim)} of {len(made)} protected VMs; {mode} at t = 0")
    os.kill(pid, signal.SIGKILL if mode == "kill" else signal.SIGSTOP)
    died = time.time()
    timeline = {"vms": {}}
    limit = died + 3 * timeout + 60
    while time.time() < limit:
        now = time.time() - died
        s, via = pool_session(survivors, port, password)
        if s is None:
            time.sleep(0.1)
            continue
        if "writes" not in timeline:
            timeline["writes"] = now
            say(f"t = {now:5.1f} s  a master takes writes again (host {via})")
        p = proxy(via, port)
        try:
            pool = value(p.pool.get_all(s))[0]
            if victim == master and "master" not in timeline and value(p.pool.get_master(s, pool)) != hosts[victim]:
                timeline["master"] = now
                say(f"t = {now:5.1f} s  pool.master is host {via}")
            metrics = value(p.host.get_metrics(s, hosts[victim]))
            if "dead" not in timeline and not value(p.host_metrics.get_live(s, metrics)):
                timeline["dead"] = now
                say(f"t = {now:5.1f} s  host {victim} seen dead (its lease expired)")
            for vm in on_victim:
                if vm in timeline["vms"]:
                    continue
                where = value(p.VM.get_resident_on(s, vm))
                if value(p.VM.get_power_state(s, vm)) == "Running" and where != hosts[victim]:
                    timeline["vms"][vm] = now
                    name = value(p.VM.get_name_label(s, vm))
                    on = [i for i, h in hosts.items() if h == where]
                    say(f"t = {now:5.1f} s  {name} running again on host {on[0] if on else where}")
        except (OSError, RuntimeError, xmlrpc.client.ProtocolError):
            pass
        if "dead" in timeline and len(timeline["vms"]) == len(on_victim) and ("master" in timeline or victim != master):
            break
        time.sleep(0.1)
    if mode == "stop":
        os.kill(pid, signal.SIGCONT)
        continued = time.time()
        while time.time() - continued < timeout:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                timeline["fenced"] = time.time() - continued
                say(f"host {victim} continued: it fenced itself and exited {timeline['fenced']:.2f} s later")
                break
            time.sleep(0.01)
        else:
            say(f"host {victim} continued and still runs {timeout} s later: NOT FENCED")
    missing = timeline["missing"] = len(on_victim) - len(timeline["vms"])
    if missing:
        say(f"{missing} protected VM(s) not running again within {3 * timeout + 60} s")
    return timeline


def main():
    parser = argparse.ArgumentParser(description="An HA failover drill on a deploy/pool-up pool.")
    parser.add_argument("--host", type=int, default=0, help="the host to kill, 1..N (default: the last)")
    parser.add_argument("--mode", choices=["kill", "stop"], default="kill")
    parser.add_argument("--timeout", type=int, default=10, help="HA's T in seconds (at least 10)")
    parser.add_argument("--vms", type=int, default=3, help="protected VMs to run over the pool")
    a = parser.parse_args()
    pool_dir = os.environ.get("XAPID_POOL_DIR", "pool")
    port = int(os.environ.get("XAPID_POOL_PORT", "8080"))
    count = len([d for d in os.listdir(pool_dir) if d.startswith("host")])
    victim = a.host or count
    if count < 2 or not 1 <= victim <= count:
        sys.exit(f"a drill needs a pool of two hosts or more and a host 1..{count}")
    t = drill(pool_dir, port, count, victim, a.mode, a.timeout, a.vms)
    print(f"done; `deploy/pool-up {count}` starts host {victim} again")
    return 1 if t["missing"] or (a.mode == "stop" and "fenced" not in t) else 0


if __name__ == "__main__":
    sys.exit(main())
