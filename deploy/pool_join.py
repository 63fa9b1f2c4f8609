#!/usr/bin/env python3
"""Waits for the hosts deploy/pool-up started, joins hosts 2..N to host 1 (pool.join on each
joining host, with the master's root password), waits until each is back as a member, and prints
the master's URL and root password. Hosts already in the pool are left as they are. A pool of
several hosts gets a shared SR (pool/shared), its default SR."""
import os
import sys
import time
import xmlrpc.client


def proxy(i, port):
    return xmlrpc.client.ServerProxy(f"http://127.0.0.{i}:{port}", allow_none=True)


def password_of(host_dir, limit=60):
    """The root password a host generated on its first boot (written once it has booted)."""
    path = os.path.join(host_dir, "root-password")
    until = time.time() + limit
    while not os.path.exists(path):
        if time.time() > until:
            raise FileNotFoundError(path)
        time.sleep(0.1)
    with open(path) as f:
        return f.read().strip()


def login(i, port, password, limit=60):
    """A session on host i, once it answers (it may be starting, or restarting after a join);
    made on that host (a member sends login_with_password to its master: HOST_IS_SLAVE)."""
    until = time.time() + limit
    while True:
        try:
            r = proxy(i, port).session.slave_local_login_with_password("root", password)
            if r["Status"] == "Success":
                return r["Value"]
            if time.time() > until:
                sys.exit(f"host {i}: cannot log in: {r['ErrorDescription']}")
        except (OSError, xmlrpc.client.ProtocolError):
            if time.time() > until:
                sys.exit(f"host {i} does not answer on 127.0.0.{i}:{port} (see its stdout and xapid.log)")
        time.sleep(0.2)


def main():
    pool_dir, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    master_password = password_of(os.path.join(pool_dir, "host1"))
    master = login(1, port, master_password)
    # Host 1 founded the pool, but after a failover another host may be its master: joins go there.
    one = proxy(1, port)
    master_address = one.host.get_address(master, one.pool.get_master(master, one.pool.get_all(master)["Value"][0])["Value"])
    master_address = master_address.get("Value") or "127.0.0.1"
    for i in range(2, n + 1):
        host_dir = os.path.join(pool_dir, f"host{i}")
        # A host that joined takes the pool's root password; before, it has its own.
        try:
            own = password_of(host_dir)
        except FileNotFoundError:
            own = master_password
        session = None
        for candidate in (master_password, own):
            try:
                session = login(i, port, candidate, limit=30 if candidate == own else 5)
                break
            except SystemExit:
                continue
        if session is None:
            sys.exit(f"host {i}: cannot log in with its own or the master's root password")
        s = proxy(i, port)
        hosts = s.host.get_all(session)["Value"]
        if len(hosts) > 1:
            print(f"host {i} is already in a pool of {len(hosts)} hosts")
            continue
        r = s.pool.join(session, f"{master_address}:{port}", "root", master_password)
        if r["Status"] != "Success":
            sys.exit(f"host {i}: pool.join failed: {r['ErrorDescription']}")
        # It restarts as a member: the master lists it once its rows are in the pool.
        until = time.time() + 120
        while time.time() < until:
            count = len(proxy(1, port).host.get_all(master)["Value"])
            if count >= i:
                break
            time.sleep(0.2)
        login(i, port, master_password, limit=120)
        print(f"host {i} (127.0.0.{i}:{port}) joined")
    pool = one.pool.get_all(master)["Value"][0]
    address = one.host.get_address(master, one.pool.get_master(master, pool)["Value"])["Value"]
    m = xmlrpc.client.ServerProxy(f"http://{address}:{port}", allow_none=True)
    if n > 1:
        shared_sr(m, pool, os.path.abspath(os.path.join(pool_dir, "shared")), master_password)
    print(f"pool of {n}: master http://{address}:{port}  user root  password {master_password}")


def shared_sr(m, pool, where, password):
    """The pool's shared SR: a directory every host of this machine sees, plugged on every host and
    made the pool's default SR (new VMs' disks go there, so they can migrate), once."""
    session = m.session.login_with_password("root", password, "1.0", "pool-up")["Value"]  # the pool's, not one host's
    for sr, record in m.SR.get_all_records(session)["Value"].items():
        if record["shared"] and record["name_label"] == "Shared storage":
            return
    os.makedirs(where, exist_ok=True)
    master_host = m.pool.get_master(session, pool)["Value"]
    # A host that has just joined may not take calls from the others yet: it is asked again.
    until = time.time() + 60
    while True:
        r = m.SR.create(session, master_host, {"location": where}, "0", "Shared storage", "every host's", "file", "user",
                        True, {})
        if r["Status"] == "Success" or r["ErrorDescription"][0] not in ("CANNOT_CONTACT_HOST", "HOST_OFFLINE") \
                or time.time() > until:
            break
        time.sleep(1)
    if r["Status"] != "Success":
        sys.exit(f"the shared SR at {where}: {r['ErrorDescription']}")
    m.pool.set_default_SR(session, pool, r["Value"])
    print(f"shared SR at {where} (the pool's default SR)")


if __name__ == "__main__":
    main()
