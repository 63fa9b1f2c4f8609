#!/usr/bin/env python3
"""The install-and-start walk-through of the SDK guide against a real xapid process, over
XML-RPC (Python's xmlrpc.client) and JSON-RPC (plain HTTP), then what operators rely on around
it: Async calls and their tasks, a conflicting call refused while an operation runs, the guest
agent's report, and running VMs that survive a restart of xapid.

Usage: vm_lifecycle_test.py PATH_TO_XAPID"""
import http.client
import itertools
import json
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
