#!/usr/bin/env python3
"""Messages and performance data on a real daemon over loopback HTTP: the message class's RPCs
and xapi's filter expressions, the messages xapid raises (VM_STARTED, VM_CRASHED, failed
logins) through message.get_since and event.from, data sources of simulated guests driven to a
known load through other_config, /rrd_updates (XML and JSON), /host_rrd, /vm_rrd, the
data-source RPCs, bad input, GET /metrics read by Prometheus' own parser, and archives that
survive a restart.

Usage: metrics_test.py PATH_TO_XAPID"""
import base64
import json
import os
import re
import socket
import sys
import time
import unittest
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
import xmlrpc.client

from xapid_support import PASSWORD, start_daemon, stop_daemon, wait_for, with_daemon  # takes PATH_TO_XAPID from argv

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Debian's python3-prometheus-client (deploy/install-deps), pure Python, when this Python is
    # not Debian's own.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        text_string_to_metric_families = None


EPOCH = xmlrpc.client.DateTime(time.gmtime(0))  # (DateTime(0) would be now)


def vm_record(name, other_config=None, after_crash="restart"):
    gib = str(1 << 30)
    return {"name_label": name, "name_description": "", "user_version": "1", "is_a_template": False,
            "affinity": "", "memory_static_max": gib, "memory_dynamic_max": gib, "memory_dynamic_min": gib,
            "memory_static_min": gib, "VCPUs_params": {}, "VCPUs_max": "2", "VCPUs_at_startup": "2",
            "actions_after_shutdown": "destroy", "actions_after_reboot": "restart", "actions_after_crash": after_crash,
            "PV_bootloader": "", "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "",
            "PV_legacy_args": "", "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "dc"},
            "platform": {}, "PCI_bus": "", "other_config": other_config or {}, "recommendations": ""}



class http_reads:
    def get(self, path, session=True):
        """(status, body) of GET path, with the class's session unless told otherwise."""
        if session:
            path += ("&" if "?" in path else "?") + "session_id=" + self.s
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


class messages(with_daemon):
    def pool_uuid(self):
        pool = self.ok(self.x.pool.get_all(self.s))[0]
        return self.ok(self.x.pool.get_uuid(self.s, pool))

    def test_a_message_is_created_read_found_by_expression_and_destroyed(self):
        uuid = self.pool_uuid()
        before = xmlrpc.client.DateTime(time.gmtime(time.time() - 5))
        ref = self.ok(self.x.message.create(self.s, "TEST_ALERT", "2", "Pool", uuid, "body <&> text"))
        rec = self.ok(self.x.message.get_record(self.s, ref))
        self.assertEqual((rec["name"], rec["priority"], rec["cls"], rec["obj_uuid"], rec["body"]),
                         ("TEST_ALERT", "2", "Pool", uuid, "body <&> text"))
        self.assertIn(ref, self.ok(self.x.message.get_since(self.s, before)))
        self.assertIn(ref, self.ok(self.x.message.get(self.s, "Pool", uuid, before)))
        self.assertEqual(self.ok(self.x.message.get_by_uuid(self.s, rec["uuid"])), ref)
        found = self.ok(self.x.message.get_all_records_where(
            self.s, 'field "name" = "TEST_ALERT" and not (field "priority" = "5")'))
        self.assertEqual(list(found), [ref])
        self.assertEqual(self.ok(self.x.message.get_all_records_where(self.s, 'field "name" = "NONE" or false')), {})
        self.ok(self.x.message.destroy(self.s, ref))
        self.assertNotIn(ref, self.ok(self.x.message.get_all(self.s)))

    def test_bad_messages_and_expressions_are_refused_with_the_errors_xapi_gives(self):
        self.assertEqual(self.err(self.x.message.create(self.s, "X", "1", "VM", "no-such-uuid", ""))[:3],
                         ["UUID_INVALID", "VM", "no-such-uuid"])
        self.assertEqual(self.err(self.x.message.create(self.s, "X", "1", "Nothing", self.pool_uuid(), ""))[0],
                         "FIELD_TYPE_ERROR")
        for expr in ['field "name" =', 'field "nope" = "x"', '(true', "true true", '"a" = "b" and', "not " * 200 + "true"]:
            self.assertEqual(self.err(self.x.message.get_all_records_where(self.s, expr))[:2], ["INVALID_VALUE", "expr"], expr)

    def test_an_expression_has_a_bounded_number_of_terms(self):
        # Every term is evaluated against every message: a 64 KiB chain of "or"s was 9,361 of
        # them, 5 s of a core per read-only call over 10,000 messages.
        self.assertEqual(self.ok(self.x.message.get_all_records_where(self.s, "false or " * 255 + "false")), {})
        self.assertEqual(self.err(self.x.message.get_all_records_where(self.s, "false or " * 256 + "false"))[:2],
                         ["INVALID_VALUE", "expr"])
        self.assertEqual(self.err(self.x.message.get_all_records_where(self.s, "falseor" * 9361 + "false"))[:2],
                         ["INVALID_VALUE", "expr"])

    def test_each_message_is_bounded_so_the_log_kept_on_every_host_is(self):
        # 10,000 messages of 1 MiB each would be 30 GB on every host of the pool.
        uuid = self.pool_uuid()
        self.ok(self.x.message.create(self.s, "N" * 256, "1", "Pool", uuid, "b" * 16384))
        self.assertEqual(self.err(self.x.message.create(self.s, "N" * 257, "1", "Pool", uuid, ""))[:2],
                         ["VALUE_NOT_SUPPORTED", "name"])
        self.assertEqual(self.err(self.x.message.create(self.s, "X", "1", "Pool", uuid, "é" * 8193))[:2],
                         ["VALUE_NOT_SUPPORTED", "body"])
        # A VM's own messages name it by its first 256 bytes, whatever its length: they are kept.
        vm = self.ok(self.x.VM.create(self.s, vm_record("v" * 100000)))
        vm_uuid = self.ok(self.x.VM.get_uuid(self.s, vm))
        self.ok(self.x.VM.start(self.s, vm, False, False))
        started = wait_for("VM_STARTED", lambda: [m for m in self.ok(self.x.message.get(self.s, "VM", vm_uuid, EPOCH)).values()
                                                  if m["name"] == "VM_STARTED"])
        self.assertIn("v" * 256 + "...", started[0]["body"])
        self.assertLess(len(started[0]["body"]), 2048)
        self.ok(self.x.VM.hard_shutdown(self.s, vm))

    def test_a_started_vm_raises_VM_STARTED_delivered_by_event_from(self):
        token = self.ok(self.x.event.__getattr__("from")(self.s, ["message"], "", 0.1))["token"]
        vm = self.ok(self.x.VM.create(self.s, vm_record("started")))
        uuid = self.ok(self.x.VM.get_uuid(self.s, vm))
        self.ok(self.x.VM.start(self.s, vm, False, False))

        def started():
            nonlocal token
            got = self.ok(self.x.event.__getattr__("from")(self.s, ["message"], token, 5.0))
            token = got["token"]
            return [e for e in got["events"] if e["operation"] == "add" and e["snapshot"]["name"] == "VM_STARTED"
                    and e["snapshot"]["obj_uuid"] == uuid]
        event = wait_for("VM_STARTED", started)[0]
        self.assertEqual(event["class"], "message")
        self.assertIn("started on host", event["snapshot"]["body"])
        self.ok(self.x.VM.hard_shutdown(self.s, vm))
        names = {m["name"] for m in self.ok(self.x.message.get(self.s, "VM", uuid, EPOCH)).values()}
        self.assertTrue(wait_for("VM_SHUTDOWN", lambda: "VM_SHUTDOWN" in {
            m["name"] for m in self.ok(self.x.message.get(self.s, "VM", uuid, EPOCH)).values()}), names)


class message_bound(with_daemon):
    daemon_args = ("--message-limit", "20")

    def test_past_the_limit_the_oldest_messages_go_first(self):
        pool_uuid = self.ok(self.x.pool.get_uuid(self.s, self.ok(self.x.pool.get_all(self.s))[0]))
        made = [self.ok(self.x.message.create(self.s, f"NOTE_{i}", 5, "Pool", pool_uuid, "")) for i in range(30)]
        # Past 20 (and a hundredth more) the oldest are destroyed down to 20, a batch at a time.
        kept = wait_for("the log trimmed to its limit", lambda: (lambda all_: all_ if len(all_) <= 21 else None)(
            self.ok(self.x.message.get_all(self.s))), 15)
        self.assertIn(made[-1], kept)
        self.assertNotIn(made[0], kept)
        names = {m["name"] for m in self.ok(self.x.message.get_all_records(self.s)).values()}
        self.assertNotIn("NOTE_0", names)
        self.assertIn("NOTE_29", names)


class crashes_and_failed_logins(with_daemon):
    """Every running guest crashes within a second; failed logins are summed up every 2 s."""
    daemon_args = ("--sim-crash-probability", "1", "--failed-login-alert-seconds", "2")

    def test_a_crash_alert_comes_through_get_since_and_event_from(self):
        token = self.ok(self.x.event.__getattr__("from")(self.s, ["message"], "", 0.1))["token"]
        since = xmlrpc.client.DateTime(time.gmtime(time.time() - 5))
        vm = self.ok(self.x.VM.create(self.s, vm_record("crashes", after_crash="destroy")))
        uuid = self.ok(self.x.VM.get_uuid(self.s, vm))
        self.ok(self.x.VM.start(self.s, vm, False, False))

        def crashed():
            nonlocal token
            got = self.ok(self.x.event.__getattr__("from")(self.s, ["message"], token, 5.0))
            token = got["token"]
            return [e["snapshot"] for e in got["events"] if e["snapshot"]["name"] == "VM_CRASHED"]
        alert = wait_for("VM_CRASHED", crashed)[0]
        self.assertEqual((alert["obj_uuid"], alert["cls"], alert["priority"]), (uuid, "VM", "2"))
        self.assertIn("VM_CRASHED", {m["name"] for m in self.ok(self.x.message.get_since(self.s, since)).values()})
        wait_for("the VM halted", lambda: self.ok(self.x.VM.get_power_state(self.s, vm)) == "Halted")

    def test_failed_logins_become_one_FAILED_LOGIN_ATTEMPTS_message_on_the_pool(self):
        for _ in range(2):
            self.assertEqual(self.err(self.x.session.login_with_password("root", "wrong", "1.0", "t"))[0],
                             "SESSION_AUTHENTICATION_FAILED")
        # Each failure answers 2 s after it began: the two may fall in one report or in two.
        def reports():
            found = self.ok(self.x.message.get_all_records_where(self.s, 'field "name" = "FAILED_LOGIN_ATTEMPTS"'))
            total = sum(int(re.search(r"<total>(\d+)</total>", m["body"]).group(1)) for m in found.values())
            return list(found.values()) if total == 2 else None
        pool_uuid = self.ok(self.x.pool.get_uuid(self.s, self.ok(self.x.pool.get_all(self.s))[0]))
        for m in wait_for("FAILED_LOGIN_ATTEMPTS", reports, timeout=15):
            self.assertEqual((m["cls"], m["obj_uuid"], m["priority"]), ("Pool", pool_uuid, "3"))
            self.assertIn("<username>root</username>", m["body"])
            self.assertIn("<ip>127.0.0.1</ip>", m["body"])


class alarms(http_reads, with_daemon):
    """perfmon's thresholds (other_config:perfmon), looked at every 5 s here (xapi's 300)."""
    daemon_args = ("--perfmon-interval-seconds", "5")

    def alarms_of(self, uuid):
        found = self.ok(self.x.message.get_all_records_where(self.s, 'field "name" = "ALARM"'))
        return [m for m in found.values() if m["obj_uuid"] == uuid]

    def test_a_vm_host_and_sr_over_their_thresholds_raise_ALARM_messages(self):
        x, s = self.x, self.s
        cpu = ('<config><variable><name value="cpu_usage"/><alarm_trigger_level value="0.5"/>'
               '<alarm_trigger_period value="10"/><alarm_priority value="2"/></variable></config>')
        busy = self.ok(x.VM.create(s, vm_record("busy", {"xapid-sim-load": "cpu=0.9", "perfmon": cpu})))
        idle = self.ok(x.VM.create(s, vm_record("idle", {"perfmon": cpu})))
        broken = self.ok(x.VM.create(s, vm_record("broken", {"xapid-sim-load": "cpu=0.9",
                                                            "perfmon": "<config><variable><name value="}))).strip()
        for vm in (busy, idle, broken):
            self.ok(x.VM.start(s, vm, False, False))
        busy_uuid, idle_uuid, broken_uuid = (self.ok(x.VM.get_uuid(s, vm)) for vm in (busy, idle, broken))
        host = self.ok(x.host.get_all(s))[0]
        host_uuid = self.ok(x.host.get_uuid(s, host))
        self.ok(x.host.add_to_other_config(s, host, "perfmon",
                '<config><variable><name value="memory_free_kib"/><alarm_trigger_level value="1e15"/>'
                '<alarm_trigger_period value="10"/></variable></config>'))
        sr = self.ok(x.pool.get_default_SR(s, self.ok(x.pool.get_all(s))[0]))
        sr_uuid = self.ok(x.SR.get_uuid(s, sr))
        # Any use of the SR is over a level below zero.
        self.ok(x.SR.add_to_other_config(s, sr, "perfmon",
                '<config><variable><name value="physical_utilisation"/><alarm_trigger_level value="-1"/>'
                '<alarm_trigger_period value="10"/></variable></config>'))

        alarm = wait_for("the busy VM's ALARM", lambda: self.alarms_of(busy_uuid), 60)[0]
        self.assertEqual((alarm["cls"], alarm["priority"]), ("VM", "2"))
        value = float(re.match(r"value: ([0-9.]+)\nconfig:\n<variable>\n\t<name value=\"cpu_usage\"/>", alarm["body"]).group(1))
        self.assertGreater(value, 0.75)
        host_alarm = wait_for("the host's ALARM", lambda: self.alarms_of(host_uuid), 30)[0]
        self.assertEqual((host_alarm["cls"], host_alarm["priority"]), ("Host", "3"))
        self.assertIn('<name value="memory_free_kib"/>', host_alarm["body"])
        sr_alarm = wait_for("the SR's ALARM", lambda: self.alarms_of(sr_uuid), 30)[0]
        self.assertEqual(sr_alarm["cls"], "SR")
        # The SR's sizes are archived where it is kept, and /rrd_updates gives them for sr_uuid.
        doc = json.loads(self.get(f"/rrd_updates?start={int(time.time()) - 60}&sr_uuid=all&json=true")[1])
        self.assertIn(f"AVERAGE:sr:{sr_uuid}:physical_utilisation", doc["meta"]["legend"])
        doc = json.loads(self.get(f"/rrd_updates?start={int(time.time()) - 60}&sr_uuid={sr_uuid}&json=true")[1])
        self.assertIn(f"AVERAGE:sr:{sr_uuid}:size", doc["meta"]["legend"])
        self.assertEqual(self.get(f"/sr_rrd?uuid={sr_uuid}")[0], 200)
        # The idle VM stayed under its level; a config that is not XML watches nothing. Within
        # the inhibit hour the busy VM raises no second alarm.
        time.sleep(12)
        self.assertEqual(self.alarms_of(idle_uuid), [])
        self.assertEqual(self.alarms_of(broken_uuid), [])
        self.assertEqual(len(self.alarms_of(busy_uuid)), 1)
        # Asking for JSON by the Accept header, as xapi's clients may.
        request = urllib.request.Request(self.url + f"/rrd_updates?start={int(time.time()) - 30}&host=true&session_id={self.s}",
                                         headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            self.assertIn(f"AVERAGE:host:{host_uuid}:memory_free_kib", json.loads(r.read())["meta"]["legend"])
        # q-values count; wildcards (curl's */*) leave the choice to the query's json.
        for accept, is_json in [("application/json;q=0, text/xml", False), ("*/*", False),
                                ("text/xml;q=0.5, application/json", True), ("text/xml", False)]:
            request = urllib.request.Request(self.url + f"/rrd_updates?start={int(time.time()) - 30}&host=true&session_id={self.s}",
                                             headers={"Accept": accept})
            with urllib.request.urlopen(request, timeout=30) as r:
                self.assertEqual(r.read().lstrip().startswith(b"{"), is_json, accept)


class legacy_metrics(with_daemon):
    """The legacy metrics objects: zero unless the host's other_config:rrd_update_interval asks."""

    def test_rrd_update_interval_1_fills_vm_host_vif_and_vbd_metrics_every_5_s(self):
        x, s = self.x, self.s
        host = self.ok(x.host.get_all(s))[0]
        pool = self.ok(x.pool.get_all(s))[0]
        sr = self.ok(x.pool.get_default_SR(s, pool))
        net = self.ok(x.network.create(s, {"name_label": "legacy"}))
        vm = self.ok(x.VM.create(s, vm_record("legacy", {"xapid-sim-load": "cpu=0.9,disk_write=1048576,net_rx=2048"})))
        vif = self.ok(x.VIF.create(s, {"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "1500",
                                       "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}}))
        vdi = self.ok(x.VDI.create(s, {"SR": sr, "name_label": "d", "name_description": "", "virtual_size": str(1 << 20),
                                       "type": "user", "sharable": False, "read_only": False, "other_config": {},
                                       "xenstore_data": {}, "sm_config": {}, "tags": []}))
        vbd = self.ok(x.VBD.create(s, {"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": False, "mode": "RW",
                                       "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
                                       "qos_algorithm_type": "", "qos_algorithm_params": {}}))
        self.ok(x.VM.start(s, vm, False, False))
        metrics = self.ok(x.VM.get_metrics(s, vm))
        time.sleep(12)
        # Off by default: nothing is polled.
        self.assertEqual(self.ok(x.VM_metrics.get_VCPUs_utilisation(s, metrics)), {})
        self.assertEqual(self.ok(x.VIF.get_metrics(s, vif)), "OpaqueRef:NULL")
        self.ok(x.host.add_to_other_config(s, host, "rrd_update_interval", "1"))
        use = wait_for("VCPUs_utilisation", lambda: self.ok(x.VM_metrics.get_VCPUs_utilisation(s, metrics)), 20)
        self.assertEqual(sorted(use), ["0", "1"])
        self.assertGreater(float(use["0"]), 0.75)
        vif_metrics = wait_for("the VIF's metrics", lambda: self.ok(x.VIF.get_metrics(s, vif)) != "OpaqueRef:NULL"
                               and self.ok(x.VIF.get_metrics(s, vif)), 20)
        self.assertAlmostEqual(wait_for("the VIF's rate", lambda: self.ok(x.VIF_metrics.get_io_read_kbs(s, vif_metrics)), 20),
                               2.0, delta=0.5)
        vbd_metrics = self.ok(x.VBD.get_metrics(s, vbd))
        self.assertAlmostEqual(wait_for("the VBD's rate", lambda: self.ok(x.VBD_metrics.get_io_write_kbs(s, vbd_metrics)), 20),
                               1024.0, delta=200)
        # The host's I/O per SR (xapi's iostat names, MiB/s): the disk's 1 MiB/s of writes.
        sr8 = self.ok(x.SR.get_uuid(s, sr))[:8]
        written = wait_for("the host's I/O on the SR", lambda: float(self.ok(
            x.host.query_data_source(s, host, f"io_throughput_write_{sr8}"))) if f"io_throughput_write_{sr8}" in
            [d["name_label"] for d in self.ok(x.host.get_data_sources(s, host))] else None, 20)
        self.assertAlmostEqual(written, 1.0, delta=0.2)
        self.assertAlmostEqual(float(self.ok(x.host.query_data_source(s, host, f"io_throughput_total_{sr8}"))), 1.0, delta=0.25)
        host_metrics = self.ok(x.host.get_metrics(s, host))
        self.assertGreater(int(self.ok(x.host_metrics.get_memory_free(s, host_metrics))), 0)
        # A destroyed device's metrics go with it (the master's sweep, each minute).
        self.ok(x.VM.hard_shutdown(s, vm))
        self.ok(x.VIF.destroy(s, vif))
        wait_for("the VIF's metrics dropped", lambda: vif_metrics not in self.ok(x.VIF_metrics.get_all(s)), 70)


class archives_as_asked(http_reads, with_daemon):
    """MIN and MAX archives when the pool asks, forgetting a source, and a failed archive write."""

    def test_min_max_archives_for_vms_started_after_the_pool_asks(self):
        x, s = self.x, self.s
        self.ok(x.pool.add_to_other_config(s, self.ok(x.pool.get_all(s))[0], "create_min_max_in_new_VM_RRDs", "true"))
        time.sleep(6)  # looked at each collection
        vm = self.ok(x.VM.create(s, vm_record("min max")))
        self.ok(x.VM.start(s, vm, False, False))
        uuid = self.ok(x.VM.get_uuid(s, vm))
        wait_for("the VM's archive", lambda: self.get(f"/vm_rrd?uuid={uuid}")[0] == 200, 20)
        root = ET.fromstring(self.get(f"/vm_rrd?uuid={uuid}")[1])
        self.assertEqual(sorted({r.find("cf").text for r in root.findall("rra")}), ["AVERAGE", "MAX", "MIN"])
        # forget_data_source_archives: a known source's history goes; an unknown one is refused.
        wait_for("cpu0", lambda: "cpu0" in [d["name_label"] for d in self.ok(x.VM.get_data_sources(s, vm))], 20)
        self.ok(x.VM.forget_data_source_archives(s, vm, "cpu0"))
        self.assertEqual(self.err(x.VM.forget_data_source_archives(s, vm, "no_such"))[:2], ["INVALID_VALUE", "data_source"])
        root = ET.fromstring(self.get(f"/vm_rrd?uuid={uuid}")[1])
        names = [d.find("name").text for d in root.findall("ds")]
        if "cpu0" in names:  # a sample since the forget may have brought it back: its history is new
            at = names.index("cpu0")
            known = [row.findall("v")[at].text for row in root.find("rra").findall("database/row")]
            self.assertLessEqual(sum(v != "NaN" for v in known), 1)

    def test_a_failed_archive_write_is_an_error_and_the_archives_in_memory_go_on(self):
        x, s = self.x, self.s
        host = self.ok(x.host.get_all(s))[0]
        rrd_dir = os.path.join(self.dir.name, "rrd")
        aside = rrd_dir + ".aside"
        os.rename(rrd_dir, aside)
        with open(rrd_dir, "w") as f:  # a file where the directory was: every write fails, as on a full disk
            f.write("not a directory")
        try:
            before = int(ET.fromstring(self.get("/host_rrd")[1]).find("lastupdate").text)
            self.assertEqual(self.err(x.host.backup_rrds(s, host, 0.0))[0], "INTERNAL_ERROR")
            wait_for("a later sample", lambda: int(ET.fromstring(self.get("/host_rrd")[1]).find("lastupdate").text) > before, 15)
        finally:
            os.remove(rrd_dir)
            os.rename(aside, rrd_dir)
        self.ok(x.host.backup_rrds(s, host, 0.0))
        self.assertTrue(os.path.exists(os.path.join(rrd_dir, "host.xml")))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class performance(http_reads, with_daemon):
    metrics_port = free_port()
    daemon_args = ("--metrics-listen", f"127.0.0.1:{metrics_port}")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        x, s = cls.x, cls.s
        cls.busy = x.VM.create(s, vm_record("busy", {"xapid-sim-load": "cpu=0.9,disk_write=1048576"}))["Value"]
        cls.idle = x.VM.create(s, vm_record("idle"))["Value"]
        for vm in (cls.busy, cls.idle):
            assert x.VM.start(s, vm, False, False)["Status"] == "Success"
        cls.busy_uuid = x.VM.get_uuid(s, cls.busy)["Value"]
        cls.idle_uuid = x.VM.get_uuid(s, cls.idle)["Value"]
        host = x.host.get_all(s)["Value"][0]
        cls.host, cls.host_uuid = host, x.host.get_uuid(s, host)["Value"]
        # Rates need two samples, 5 s apart: wait for the third.
        wait_for("cpu0 of both VMs", lambda: all(
            "cpu0" in [d["name_label"] for d in x.VM.get_data_sources(s, vm)["Value"]] for vm in (cls.busy, cls.idle)), 40)
        time.sleep(6)

    def updates(self, query):
        status, body = self.get("/rrd_updates?" + query)
        self.assertEqual(status, 200, body)
        return body

    def test_rrd_updates_json_has_each_vm_and_the_host_with_the_load_it_was_driven_to(self):
        doc = json.loads(self.updates(f"start={int(time.time()) - 600}&host=true&json=true"))
        legend = doc["meta"]["legend"]
        self.assertEqual(int(doc["meta"]["step"]), 5)
        self.assertEqual(int(doc["meta"]["columns"]), len(legend))
        self.assertEqual(int(doc["meta"]["rows"]), len(doc["data"]))
        for column in (f"AVERAGE:vm:{self.busy_uuid}:cpu0", f"AVERAGE:vm:{self.idle_uuid}:cpu1",
                       f"AVERAGE:vm:{self.busy_uuid}:memory",
                       f"AVERAGE:host:{self.host_uuid}:cpu0", f"AVERAGE:host:{self.host_uuid}:memory_free_kib"):
            self.assertIn(column, legend)
        newest = doc["data"][0]["values"]
        busy = float(newest[legend.index(f"AVERAGE:vm:{self.busy_uuid}:cpu0")])
        idle = float(newest[legend.index(f"AVERAGE:vm:{self.idle_uuid}:cpu0")])
        self.assertGreater(busy, 0.75)
        self.assertLess(idle, 0.1)
        self.assertGreater(float(newest[legend.index(f"AVERAGE:host:{self.host_uuid}:cpu_avg")]), 0.2)

    def test_rrd_updates_xml_is_rrdtools_xport(self):
        root = ET.fromstring(self.updates(f"start={int(time.time()) - 120}&vm_uuid={self.busy_uuid}"))
        self.assertEqual(root.tag, "xport")
        entries = [e.text for e in root.find("meta/legend")]
        self.assertTrue(all(e.startswith(f"AVERAGE:vm:{self.busy_uuid}:") for e in entries), entries)
        rows = root.findall("data/row")
        self.assertEqual(int(root.find("meta/rows").text), len(rows))
        self.assertTrue(all(len(r.findall("v")) == len(entries) for r in rows))

    def test_the_step_follows_the_archive_that_covers_start_and_interval(self):
        doc = json.loads(self.updates(f"start={int(time.time()) - 3 * 3600}&host=true&json=true"))
        self.assertEqual(int(doc["meta"]["step"]), 3600)  # beyond the 1-minute archive's 2 hours
        doc = json.loads(self.updates(f"start={int(time.time()) - 60}&interval=60&json=true"))
        self.assertEqual(int(doc["meta"]["step"]), 60)

    def test_bad_input_answers_clear_errors_and_bounded_answers(self):
        now = int(time.time())
        for query, status in [("", 400), ("start=soon", 400), (f"start={now}&cf=median", 400),
                              (f"start={now}&interval=-5", 400), (f"start={now}&interval=99999999999", 400),
                              (f"start={now}&vm_uuid=not-a-uuid", 400),
                              (f"start={now}&sr_uuid=not-a-uuid", 400)]:
            got, body = self.get("/rrd_updates?" + query)
            self.assertEqual(got, status, (query, body))
        doc = json.loads(self.updates(f"start={now + 86400}&host=true&json=true"))
        self.assertEqual(doc["data"], [])  # the future holds no rows
        # A VM with no archive here is left out (as xapi's filter does), not widened to every VM.
        doc = json.loads(self.updates(f"start={now - 60}&json=true&vm_uuid=00000000-0000-0000-0000-000000000000"))
        self.assertEqual(doc["meta"]["legend"], [])
        doc = json.loads(self.updates("start=0&host=true&json=true&interval=0"))
        self.assertLessEqual(len(doc["data"]), 366)  # the far past: the year's archive, no more
        # Any 64-bit start: the answer's start stays a time, never one wrapped round (overflow).
        for start in (2**63 - 1, -2**63):
            doc = json.loads(self.updates(f"start={start}&host=true&json=true"))
            self.assertGreaterEqual(int(doc["meta"]["start"]), 0, start)
            self.assertLessEqual(int(doc["meta"]["start"]), now + 86400, start)
        self.assertEqual(self.get(f"/rrd_updates?start={now}", session=False)[0], 401)
        # HTTP basic credentials stand for a session, as xapi's handlers take them.
        for password, status in ((PASSWORD, 200), ("wrong", 401)):
            token = base64.b64encode(f"root:{password}".encode()).decode()
            request = urllib.request.Request(self.url + f"/rrd_updates?start={now - 60}&host=true",
                                             headers={"Authorization": f"Basic {token}"})
            try:
                with urllib.request.urlopen(request, timeout=30) as r:
                    got = r.status
            except urllib.error.HTTPError as e:
                got = e.code
            self.assertEqual(got, status, password)
        self.assertEqual(self.get("/vm_rrd?uuid=00000000-0000-0000-0000-000000000000")[0], 404)
        self.assertEqual(self.get("/vm_rrd")[0], 400)

    def test_host_rrd_and_vm_rrd_are_rrdtool_dumps(self):
        status, body = self.get("/host_rrd")
        self.assertEqual(status, 200)
        root = ET.fromstring(body)
        self.assertEqual((root.tag, root.find("step").text), ("rrd", "5"))
        self.assertIn("memory_total_kib", [d.find("name").text for d in root.findall("ds")])
        self.assertEqual([r.find("pdp_per_row").text for r in root.findall("rra")], ["1", "12", "720", "17280"])
        self.assertEqual([len(r.findall("database/row")) for r in root.findall("rra")], [120, 120, 168, 366])
        status, body = self.get(f"/vm_rrd?uuid={self.busy_uuid}&json=true")
        self.assertEqual(status, 200)
        self.assertIn("cpu0", [d["name"] for d in json.loads(body)["ds"]])

    def test_data_source_rpcs(self):
        names = [d["name_label"] for d in self.ok(self.x.host.get_data_sources(self.s, self.host))]
        self.assertIn("memory_free_kib", names)
        self.assertGreater(float(self.ok(self.x.host.query_data_source(self.s, self.host, "memory_total_kib"))), 0)
        self.assertGreater(float(self.ok(self.x.VM.query_data_source(self.s, self.busy, "cpu0"))), 0.75)
        self.assertEqual(self.err(self.x.VM.query_data_source(self.s, self.busy, "no_such"))[:2], ["INVALID_VALUE", "data_source"])
        self.ok(self.x.VM.record_data_source(self.s, self.busy, "cpu0"))
        self.ok(self.x.host.backup_rrds(self.s, self.host, 0.0))

    @unittest.skipIf(text_string_to_metric_families is None, "python3-prometheus-client is not installed")
    def test_metrics_are_read_by_prometheus_own_parser(self):
        self.err(self.x.VM.query_data_source(self.s, self.busy, "no_such"))  # a failure, counted by its code
        status, text = self.get("/metrics")
        self.assertEqual(status, 200, text)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        cpu = [s for s in families["xapid_vm_cpu0"].samples if s.labels["vm_uuid"] == self.busy_uuid]
        self.assertEqual(cpu[0].labels["name_label"], "busy")
        self.assertGreater(cpu[0].value, 0.75)
        self.assertIn("xapid_host_memory_free_kib", families)
        self.assertEqual(self.get("/metrics", session=False)[0], 401)
        # xapid's own: its calls by RPC and result, their latency, its commits, its pool log.
        calls = {(s.labels["method"], s.labels["result"]): s.value for s in families["xapid_calls"].samples}
        self.assertGreaterEqual(calls[("VM.start", "success")], 2)
        self.assertGreaterEqual(calls[("VM.query_data_source", "INVALID_VALUE")], 1)
        self.assertEqual(families["xapid_call_duration_seconds"].type, "histogram")
        start_count = [s for s in families["xapid_call_duration_seconds"].samples
                       if s.name == "xapid_call_duration_seconds_count" and s.labels["method"] == "VM.start"]
        self.assertGreaterEqual(start_count[0].value, 2)
        commits = {s.name: s.value for s in families["xapid_commit_duration_seconds"].samples if not s.labels}
        self.assertGreater(commits["xapid_commit_duration_seconds_count"], 0)
        self.assertIn("xapid_event_waiters", families)
        roles = {s.labels["role"]: s.value for s in families["xapid_raft_role"].samples}
        self.assertEqual(roles["leader"], 1)
        self.assertGreaterEqual(families["xapid_raft_term"].samples[0].value, 1)
        # Calls with no valid session share one slot, whatever method they name; a name label
        # is cut to 256 bytes.
        for method in ("VM.get_all", "SR.get_all", "network.get_all"):
            self.err(getattr(self.x, method.split(".")[0]).get_all("OpaqueRef:bogus"))
        vm = self.ok(self.x.VM.create(self.s, vm_record("n" * 100000)))
        self.ok(self.x.VM.start(self.s, vm, False, False))
        vm_uuid = self.ok(self.x.VM.get_uuid(self.s, vm))
        text = wait_for("the long-named VM's sample", lambda: (lambda t: t if vm_uuid in t else None)(self.get("/metrics")[1]), 20)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        methods = {s.labels["method"] for s in families["xapid_calls"].samples}
        self.assertIn("(unauthenticated)", methods)
        self.assertNotIn("SR.get_all", methods)
        named = [s for s in families["xapid_vm_memory"].samples if s.labels["vm_uuid"] == vm_uuid]
        self.assertEqual(len(named[0].labels["name_label"]), 256)
        self.ok(self.x.VM.hard_shutdown(self.s, vm))
        # The scraper's own listener asks for no credentials, and serves nothing else.
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=30) as r:
            self.assertIn("xapid_vm_cpu0", {f.name for f in text_string_to_metric_families(r.read().decode())})
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/rrd_updates?start=0", timeout=30)
        self.assertEqual(refused.exception.code, 404)

    def test_z_archives_survive_a_restart(self):
        status, body = self.get("/host_rrd")
        before = ET.fromstring(body)
        stop_daemon(self.proc)
        self.proc.stderr.close()
        self.__class__.connect(*start_daemon(self.dir.name)[:2])
        status, body = self.get("/host_rrd")
        after = ET.fromstring(body)
        self.assertGreaterEqual(int(after.find("lastupdate").text), int(before.find("lastupdate").text))
        known = [v.text for v in after.findall("rra/database/row/v") if v.text != "NaN"]
        self.assertTrue(known, "every value of the archive was lost")
        status, body = self.get(f"/vm_rrd?uuid={self.busy_uuid}")
        self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
