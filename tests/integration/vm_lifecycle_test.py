#!/usr/bin/env python3
"""The install-and-start walk-through of the SDK guide against a real xapid process, over
XML-RPC (Python's xmlrpc.client) and JSON-RPC (plain HTTP), then what operators rely on around
it: Async calls and their tasks, a conflicting call refused while an operation runs, the guest
agent's report, and running VMs that survive a restart of xapid.

Usage: vm_lifecycle_test.py PATH_TO_XAPID"""
import http.client
import itertools
import json
import socket
import tempfile
import time
import unittest
import xmlrpc.client

from daemon_rpc_test import PASSWORD, start_daemon, stop_daemon  # takes PATH_TO_XAPID from argv


class xmlrpc_api:
    def __init__(self, port):
        self.proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}")

    def call(self, method, *params):
        target = self.proxy
        for part in method.split("."):
            target = getattr(target, part)
        return target(*params)


class jsonrpc_api:
    ids = itertools.count(1)

    def __init__(self, port):
        self.port = port

    def call(self, method, *params):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("POST", "/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params),
                                                  "id": next(self.ids)}), {"Content-Type": "application/json"})
        answer = json.loads(c.getresponse().read())
        c.close()
        if answer.get("error"):
            return {"Status": "Failure", "ErrorDescription": [answer["error"]["message"]] + answer["error"]["data"]}
        return {"Status": "Success", "Value": answer["result"]}


class walk_through(unittest.TestCase):
    """The seed's example session and its install-and-start cycle, once per wire format."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.proc, cls.port, _ = start_daemon(cls.dir.name)

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls.proc)
        cls.dir.cleanup()

    def ok(self, answer):
        self.assertEqual(answer["Status"], "Success", answer)
        return answer["Value"]

    def walk(self, api, name):
        session = self.ok(api.call("session.login_with_password", "root", PASSWORD, "1.0", "walk-through"))
        vms = self.ok(api.call("VM.get_all_records", session))
        templates = {ref: vm for ref, vm in vms.items() if vm["is_a_template"]}
        self.assertGreaterEqual(len(templates), 4)
        template = next(ref for ref, vm in templates.items() if vm["name_label"] == "Debian Bookworm 12")
        # A template cannot be started.
        self.assertEqual(api.call("VM.start", session, template, False, False)["ErrorDescription"],
                         ["VM_IS_TEMPLATE", template])
        self.assertEqual(self.ok(api.call("VM.get_record", session, template))["name_label"], "Debian Bookworm 12")

        vm = self.ok(api.call("VM.clone", session, template, name))
        self.assertTrue(self.ok(api.call("VM.get_is_a_template", session, vm)))
        self.ok(api.call("VM.provision", session, vm))
        record = self.ok(api.call("VM.get_record", session, vm))
        self.assertFalse(record["is_a_template"])
        self.assertEqual(len(record["VBDs"]), 1)
        self.assertIn("start", record["allowed_operations"])

        # A network for it, as an operator would add one.
        network = self.ok(api.call("network.get_by_name_label", session,
                                   "Pool-wide network associated with eth0"))[0]
        vif = self.ok(api.call("VIF.create", session, {"device": "0", "network": network, "VM": vm,
                                                        "MAC": "", "MTU": 1500, "other_config": {},
                                                        "qos_algorithm_type": "", "qos_algorithm_params": {}}))

        for step, state in (("start", "Running"), ("suspend", "Suspended"), ("resume", "Running"),
                            ("clean_reboot", "Running"), ("pause", "Paused"), ("unpause", "Running"),
                            ("shutdown", "Halted")):
            params = (session, vm, False, False) if step in ("start", "resume") else (session, vm)
            self.ok(api.call("VM." + step, *params))
            self.assertEqual(self.ok(api.call("VM.get_power_state", session, vm)), state, step)
            if state == "Running":
                self.assertTrue(self.ok(api.call("VIF.get_currently_attached", session, vif)))
        self.assertEqual(api.call("VM.clean_shutdown", session, vm)["ErrorDescription"],
                         ["VM_BAD_POWER_STATE", vm, "running", "halted"])
        self.ok(api.call("VM.destroy", session, vm))
        self.assertEqual(api.call("VM.get_record", session, vm)["ErrorDescription"], ["HANDLE_INVALID", "VM", vm])
        self.ok(api.call("session.logout", session))

    def test_over_xmlrpc(self):
        self.walk(xmlrpc_api(self.port), "my first VM")

    def test_over_jsonrpc(self):
        self.walk(jsonrpc_api(self.port), "my JSON VM")


class operations(unittest.TestCase):
    """Async calls, conflicts, the guest agent and a restart, on a host whose operations take time."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.proc, cls.port, _ = start_daemon(cls.dir.name, "--sim-operation-ms", "300")
        cls.x = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{cls.port}")
        cls.session = cls.x.session.login_with_password("root", PASSWORD, "1.0", "operations")["Value"]

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls.proc)
        cls.dir.cleanup()

    def ok(self, answer):
        self.assertEqual(answer["Status"], "Success", answer)
        return answer["Value"]

    def install(self, name):
        template = self.ok(self.x.VM.get_by_name_label(self.session, "Ubuntu Jammy Jellyfish 22.04"))[0]
        vm = self.ok(self.x.VM.clone(self.session, template, name))
        self.ok(self.x.VM.provision(self.session, vm))
        return vm

    def wait_for(self, predicate, seconds=10):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        self.fail("timed out")

    def test_async_start_is_a_task_and_a_conflicting_call_is_refused_meanwhile(self):
        vm = self.install("async")
        task = self.ok(getattr(self.x, "Async").VM.start(self.session, vm, False, False))
        # While the start runs it is in current_operations under its task, and allowed_operations
        # offers only what may run beside it.
        ops = self.wait_for(lambda: self.ok(self.x.VM.get_current_operations(self.session, vm)))
        self.assertEqual(ops, {task: "start"})
        self.assertEqual(self.x.VM.destroy(self.session, vm)["ErrorDescription"],
                         ["OTHER_OPERATION_IN_PROGRESS", "VM", vm])
        self.wait_for(lambda: self.ok(self.x.task.get_status(self.session, task)) != "pending")
        self.assertEqual(self.ok(self.x.task.get_status(self.session, task)), "success")
        self.assertEqual(self.ok(self.x.VM.get_power_state(self.session, vm)), "Running")
        self.assertEqual(self.ok(self.x.VM.get_current_operations(self.session, vm)), {})
        # A failed Async call puts its error on the task.
        task = self.ok(getattr(self.x, "Async").VM.start(self.session, vm, False, False))
        self.wait_for(lambda: self.ok(self.x.task.get_status(self.session, task)) != "pending")
        self.assertEqual(self.ok(self.x.task.get_error_info(self.session, task)),
                         ["VM_BAD_POWER_STATE", vm, "halted", "running"])
        self.ok(self.x.VM.hard_shutdown(self.session, vm))

    def test_the_guest_agent_reports_addresses(self):
        vm = self.install("agent")
        self.ok(self.x.VM.start(self.session, vm, False, False))
        metrics = self.wait_for(lambda: (lambda r: r if r != "OpaqueRef:NULL" else None)(
            self.ok(self.x.VM.get_guest_metrics(self.session, vm))))
        self.assertIn("0/ip", self.ok(self.x.VM_guest_metrics.get_networks(self.session, metrics)))
        self.ok(self.x.VM.hard_shutdown(self.session, vm))

    def test_running_vms_survive_a_restart_of_xapid(self):
        vm = self.install("survivor")
        self.ok(self.x.VM.start(self.session, vm, False, False))
        domid = self.ok(self.x.VM.get_domid(self.session, vm))
        stop_daemon(self.proc)
        type(self).proc, type(self).port, _ = start_daemon(self.dir.name, "--sim-operation-ms", "300")
        type(self).x = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}")
        type(self).session = self.x.session.login_with_password("root", PASSWORD, "1.0", "operations")["Value"]
        self.assertEqual(self.ok(self.x.VM.get_power_state(self.session, vm)), "Running")
        self.assertEqual(self.ok(self.x.VM.get_domid(self.session, vm)), domid)
        self.ok(self.x.VM.clean_shutdown(self.session, vm))


class host_operations(unittest.TestCase):
    """The host's own RPCs, down to host.reboot (the daemon starts again) and host.shutdown."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        with socket.socket() as s:  # a fixed port, so that the host answers there again after a reboot
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc, _, _ = start_daemon(self.dir.name, "--listen", f"127.0.0.1:{self.port}")
        self.x = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}")
        self.session = self.x.session.login_with_password("root", PASSWORD, "1.0", "host")["Value"]
        self.host = self.x.host.get_all(self.session)["Value"][0]

    def tearDown(self):
        if self.proc.poll() is None:
            stop_daemon(self.proc)
        self.dir.cleanup()

    def ok(self, answer):
        self.assertEqual(answer["Status"], "Success", answer)
        return answer["Value"]

    def test_the_host_answers_about_itself(self):
        x, s, h = self.x, self.session, self.host
        servertime = self.ok(x.host.get_servertime(s, h))
        self.assertLess(abs(time.mktime(time.strptime(servertime.value, "%Y%m%dT%H:%M:%SZ")) - time.mktime(time.gmtime())), 60)
        self.assertIn("Xen version", self.ok(x.host.dmesg(s, h)))
        self.assertIn("xapid.ready", self.ok(x.host.get_log(s, h)))
        metrics = self.ok(x.host.get_metrics(s, h))
        self.assertEqual(self.ok(x.host.compute_free_memory(s, h)), self.ok(x.host_metrics.get_memory_free(s, metrics)))
        pif = self.ok(x.host.get_management_interface(s, h))
        self.assertTrue(self.ok(x.PIF.get_management(s, pif)))
        self.assertEqual(x.host.dmesg(s, "OpaqueRef:nope")["ErrorDescription"], ["HANDLE_INVALID", "host", "OpaqueRef:nope"])

    def test_disable_evacuate_reboot_and_shutdown(self):
        x, s, h = self.x, self.session, self.host
        template = self.ok(x.VM.get_by_name_label(s, "Debian Bookworm 12"))[0]
        vm = self.ok(x.VM.clone(s, template, "resident"))
        self.ok(x.VM.provision(s, vm))
        self.ok(x.VM.start(s, vm, False, False))
        self.assertEqual(x.host.shutdown(s, h)["ErrorDescription"], ["HOST_NOT_DISABLED"])
        # A running guest has nowhere to go in a one-host pool.
        self.assertEqual(self.ok(x.host.get_vms_which_prevent_evacuation(s, h)), {vm: ["NO_HOSTS_AVAILABLE"]})
        self.assertEqual(x.host.evacuate(s, h)["ErrorDescription"], ["NO_HOSTS_AVAILABLE"])
        self.ok(x.host.disable(s, h))
        self.assertEqual(x.host.reboot(s, h)["ErrorDescription"], ["HOST_IN_USE", h, "VM", vm])
        self.ok(x.VM.clean_shutdown(s, vm))
        self.assertEqual(x.VM.start(s, vm, False, False)["ErrorDescription"], ["HOST_DISABLED", h])
        self.ok(x.host.evacuate(s, h))
        self.assertEqual(self.ok(x.host.get_vms_which_prevent_evacuation(s, h)), {})
        # Reboot: the same process starts again and answers on the same port, its sessions gone.
        self.ok(x.host.reboot(s, h))
        deadline = time.monotonic() + 30
        while True:
            try:
                s = self.x.session.login_with_password("root", PASSWORD, "1.0", "host")["Value"]
                break
            except OSError:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
        self.assertIsNone(self.proc.poll())
        self.assertFalse(self.ok(x.host.get_enabled(s, h)))
        self.ok(x.host.shutdown(s, h))
        self.assertEqual(self.proc.wait(timeout=30), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
