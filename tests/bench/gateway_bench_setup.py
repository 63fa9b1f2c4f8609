#!/usr/bin/env python3
"""Prepares the gateway benchmark: logs in, creates 1,000 VMs, and writes each call's request
body (XML and JSON) and the XML answer of VM.get_record.  Usage: gateway_bench_setup.py PORT DIR"""
import json
import sys
import urllib.request
import xmlrpc.client

port, work = int(sys.argv[1]), sys.argv[2]
url = f"http://127.0.0.1:{port}"
x = xmlrpc.client.ServerProxy(url)
s = x.session.login_with_password("root", "bench", "1.0", "bench")["Value"]
record = {"name_label": "", "memory_static_max": str(1 << 30), "memory_dynamic_max": str(1 << 30),
          "memory_dynamic_min": str(1 << 30), "memory_static_min": str(1 << 30), "VCPUs_max": "2",
          "VCPUs_at_startup": "2", "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "cdn"},
          "platform": {"nx": "true", "acpi": "1", "apic": "true", "pae": "true", "viridian": "true"},
          "other_config": {"install-methods": "cdrom,nfs,http,ftp", "linux_template": "true"},
          "actions_after_crash": "restart"}
vm = None
for i in range(1000):
    record["name_label"] = f"bench-vm-{i}"
    vm = x.VM.create(s, record)["Value"]
host = x.session.get_this_host(s, s)["Value"]

calls = {"get_this_host": ("session.get_this_host", [s, s]), "get_record": ("VM.get_record", [s, vm]),
         "get_all_records": ("VM.get_all_records", [s]),
         # Another originator: past its cap of 500 sessions every login evicts the oldest of its
         # own, and the session the other bodies use must not be one of them.
         "login": ("session.login_with_password", ["root", "bench", "1.0", "login-bench"])}
for name, (method, params) in calls.items():
    with open(f"{work}/{name}.xml", "w") as f:
        f.write(xmlrpc.client.dumps(tuple(params), method))
    with open(f"{work}/{name}.json", "w") as f:
        json.dump({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}, f)
req = urllib.request.Request(url + "/", data=open(f"{work}/get_record.xml", "rb").read(),
                             headers={"Content-Type": "text/xml"})
with urllib.request.urlopen(req) as r, open(f"{work}/get_record.answer.xml", "wb") as f:
    f.write(r.read())
