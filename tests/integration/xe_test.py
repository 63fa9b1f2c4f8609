"""xe against real xapid processes: the generated commands on every class that has objects
(param-clear of every writable map), the operation commands end to end over the unix socket
and all of them again over HTTPS with a password, what changes the daemon itself (task-cancel,
host-reboot, host-shutdown) on daemons of their own, the pool and HA commands on a pool of three
hosts (127.0.0.2-4) with members sending xe to their master, xe's output layout against its
documented form (xe_golden/), and the command line's own rules (--minimal, filters, --multiple,
-pwf, ~/.xe, XE_EXTRA_ARGS, the default socket, unknown commands and parameters).

Arguments: the xapid binary, then the xe binary."""
import hashlib
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import xmlrpc.client

from xapid_support import PASSWORD, answers, start_daemon, stop_daemon, wait_for
from pool_support import ADDRESSES, PASSWORDS, free_port_everywhere, host as pool_host

XE = sys.argv.pop(1) if len(sys.argv) > 1 else "xe"
XE = os.path.abspath(XE) if os.sep in XE else XE  # some tests run it in another directory
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "xe_golden")
COMPLETION = os.path.join(HERE, "..", "..", "cli", "xe-completion.bash")
TEMPLATE = "Ubuntu Jammy Jellyfish 22.04"


class runs_xe:
    """A TestCase mixin: `xe(...)` runs xe with HOME the class's own `home` (for ~/.xe and the
    pinned certificates), after the arguments `connection()` gives (where, and who) unless
    local=False."""

    def connection(self):
        return ()

    def environment(self, extra=None):
        """The test's HOME, and none of the settings xe would take from the caller's."""
        env = {k: v for k, v in os.environ.items() if k not in ("XE_EXTRA_ARGS", "XAPID_DATA_DIR")}
        env["HOME"] = self.home.name
        env.update(extra or {})
        return env

    def run_xe(self, *args, env=None, local=True, cwd=None):
        command = [XE, *self.connection(), *args] if local else [XE, *args]
        return subprocess.run(command, capture_output=True, text=True, env=self.environment(env), timeout=120, stdin=subprocess.DEVNULL,
                              cwd=cwd)

    def xe(self, *args, **kwargs):
        """xe's output, asserting that it succeeded."""
        r = self.run_xe(*args, **kwargs)
        self.assertEqual(r.returncode, 0, f"xe {' '.join(args)}: {r.stderr}")
        return r.stdout

    def xe_fails(self, *args, **kwargs):
        """xe's error output, asserting that it failed."""
        r = self.run_xe(*args, **kwargs)
        self.assertNotEqual(r.returncode, 0, f"xe {' '.join(args)} succeeded: {r.stdout}")
        return r.stderr

    def one(self, *args, **kwargs):
        return self.xe(*args, **kwargs).strip()


class xe_daemon(runs_xe, answers, unittest.TestCase):
    """A daemon of the class's own (plain HTTP, HTTPS and its unix socket), a HOME of its own,
    and xe run against it on its unix socket (as root, as on the host)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.home = tempfile.TemporaryDirectory()
        cls.proc, cls.port, cls.tls_port = start_daemon(cls.dir.name, "--https-listen", "127.0.0.1:0")
        cls.socket = os.path.join(cls.dir.name, "xapid.sock")

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls.proc)
        cls.proc.stderr.close()
        cls.dir.cleanup()
        cls.home.cleanup()

    def connection(self):
        return ("--socket", self.socket)


def records_of(text):
    """xe's records (blank-line separated) as dicts of name -> (tag, value)."""
    out = []
    for block in text.strip("\n").split("\n\n"):
        record = {}
        for line in block.split("\n"):
            m = re.fullmatch(r"\s*(\S+) \((...)\)\s*: ?(.*)", line)
            assert m, f"not xe's layout: {line!r}"
            record[m.group(1)] = (m.group(2).strip(), m.group(3))
        out.append(record)
    return out


class layout(xe_daemon):
    """Output against the layout xe documents (xe_golden/*.txt)."""

    def golden(self, file_name, **values):
        with open(os.path.join(GOLDEN, file_name)) as f:
            text = f.read()
        # The documented examples' uuids and names stand for the ones made here.
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    def test_vm_list_is_laid_out_as_xe_documents(self):
        uuid = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=golden one")
        self.assertEqual(self.xe("vm-list", "name-label=golden one"), self.golden("vm-list.txt", uuid=uuid, name="golden one"))
        # Fields named by params= are shown in the record's order, as xe shows them.
        self.assertEqual(list(records_of(self.xe("vm-list", f"uuid={uuid}", "params=power-state,uuid"))[0]), ["uuid", "power-state"])

    def test_param_list_aligns_every_name_on_one_colon_and_tags_sets_and_maps(self):
        uuid = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=param list")
        self.xe("vm-param-clear", f"uuid={uuid}", "param-name=platform")
        self.xe("vm-param-set", f"uuid={uuid}", "platform:acpi=true", "platform:apic=true", "platform:nx=false", "user-version=1")
        text = self.xe("vm-param-list", f"uuid={uuid}")
        lines = text.rstrip("\n").split("\n")
        colon = lines[0].index(": ")
        self.assertTrue(lines[0].startswith("uuid ( RO) "), lines[0])
        for line in lines:
            self.assertEqual(line.index(": ") if ": " in line else line.index(":"), colon, line)
        # The documented lines, as the documentation prints them (right-aligned to the colon).
        for documented in ("user-version ( RW): 1", "is-control-domain ( RO): false", "platform (MRW): acpi: true; apic: true; nx: false"):
            self.assertIn(" " * (colon - documented.index(":")) + documented + "\n", text)
        record = records_of(text)[0]
        self.assertEqual(record["allowed-operations"][0], "SRO")
        self.assertEqual(record["name-label"], ("RW", "param list"))
        self.assertTrue(text.endswith("\n\n"))

    def test_vm_param_list_is_laid_out_as_xe_documents_whole(self):
        uuid = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=golden record")
        for tag in ("blue", "green"):
            self.xe("vm-param-add", f"uuid={uuid}", "param-name=tags", f"param-key={tag}")
        text = self.xe("vm-param-list", f"uuid={uuid}")
        # A time of day would differ from run to run (the epoch, a time never set, does not).
        text = re.sub(r"\b(?!19700101T00:00:00Z)\d{8}T\d\d:\d\d:\d\dZ\b", "{date}", text)
        vbd = records_of(self.xe("vm-disk-list", f"uuid={uuid}"))[0]["uuid"][1]
        metrics = self.one("vm-param-get", f"uuid={uuid}", "param-name=metrics")
        template = self.one("template-list", f"name-label={TEMPLATE}", "--minimal")
        self.assertEqual(text, self.golden("vm-param-list.txt", uuid=uuid, vbd=vbd, metrics=metrics, template=template))

    def test_minimal_is_the_uuids_joined_by_commas_with_commas_escaped(self):
        a = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=min, imal")
        b = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=min, imal")
        self.assertEqual(sorted(self.one("vm-list", "name-label=min, imal", "--minimal").split(",")), sorted([a, b]))
        self.assertEqual(self.one("vm-list", f"uuid={a}", "params=name-label", "--minimal"), "min\\, imal")


class generated_commands(xe_daemon):
    """<class>-list and -param-* on every class that has objects."""

    def classes(self):
        return sorted(name[: -len("-list")] for name in self.xe("help", "--all").split() if name.endswith("-list")
                      and self.run_xe("help", name[: -len("-list")] + "-param-list").returncode == 0)

    def test_list_param_list_and_param_get_agree_on_every_class_with_objects(self):
        seen = 0
        for cls in self.classes():
            uuids = [u for u in self.one(f"{cls}-list", "params=uuid", "--minimal").split(",") if u]
            if not uuids:
                continue
            seen += 1
            with self.subTest(cls=cls):
                listed = records_of(self.xe(f"{cls}-list", "params=all", f"uuid={uuids[0]}"))
                self.assertEqual(len(listed), 1)
                record = records_of(self.xe(f"{cls}-param-list", f"uuid={uuids[0]}"))[0]
                self.assertEqual(record, listed[0])
                self.assertEqual(record["uuid"], ("RO", uuids[0]))
                for name, (tag, value) in record.items():
                    self.assertEqual(self.xe(f"{cls}-param-get", f"uuid={uuids[0]}", f"param-name={name}"), value + "\n", name)
        self.assertGreaterEqual(seen, 10)

    def test_param_set_add_and_remove_on_every_class_with_a_settable_map(self):
        changed = 0
        for cls in self.classes():
            if self.run_xe("help", f"{cls}-param-set").returncode != 0:
                continue
            uuids = [u for u in self.one(f"{cls}-list", "params=uuid", "--minimal").split(",") if u]
            if not uuids or "other-config:" not in self.xe("help", f"{cls}-param-set"):
                continue
            changed += 1
            u = uuids[0]
            with self.subTest(cls=cls):
                self.xe(f"{cls}-param-set", f"uuid={u}", "other-config:xe-test=one")
                self.assertEqual(self.one(f"{cls}-param-get", f"uuid={u}", "param-name=other-config", "param-key=xe-test"), "one")
                self.xe(f"{cls}-param-set", f"uuid={u}", "other-config:xe-test=two")
                self.xe(f"{cls}-param-add", f"uuid={u}", "param-name=other-config", "xe-added=three")
                config = self.one(f"{cls}-param-get", f"uuid={u}", "param-name=other-config")
                self.assertIn("xe-test: two", config)
                self.assertIn("xe-added: three", config)
                self.xe(f"{cls}-param-remove", f"uuid={u}", "param-name=other-config", "param-key=xe-added")
                self.xe(f"{cls}-param-remove", f"uuid={u}", "param-name=other-config", "param-key=xe-test")
                self.assertNotIn("xe-", self.one(f"{cls}-param-get", f"uuid={u}", "param-name=other-config"))
                self.assertIn("Key xe-test is not in map",
                              self.xe_fails(f"{cls}-param-remove", f"uuid={u}", "param-name=other-config", "param-key=xe-test"))
        self.assertGreaterEqual(changed, 8)

    def test_param_set_of_fields_sets_and_clear(self):
        u = self.one("network-create", "name-label=net one")
        self.xe("network-param-set", f"uuid={u}", "name-label=net two", "name-description=described", "MTU=9000")
        record = records_of(self.xe("network-param-list", f"uuid={u}"))[0]
        self.assertEqual(record["name-label"], ("RW", "net two"))
        self.assertEqual(record["MTU"][1], "9000")
        self.xe("network-param-add", f"uuid={u}", "param-name=tags", "param-key=blue")
        self.xe("network-param-add", f"uuid={u}", "param-name=tags", "param-key=green")
        self.assertEqual(self.one("network-param-get", f"uuid={u}", "param-name=tags"), "blue; green")
        self.assertEqual(self.one("network-list", "tags:contains=green", "--minimal"), u)
        self.xe("network-param-clear", f"uuid={u}", "param-name=tags")
        self.assertEqual(self.one("network-param-get", f"uuid={u}", "param-name=tags"), "")
        self.xe("network-param-clear", f"uuid={u}", "param-name=name-description")
        self.assertEqual(self.one("network-param-get", f"uuid={u}", "param-name=name-description"), "")
        self.assertIn("must be an integer", self.xe_fails("network-param-set", f"uuid={u}", "MTU=big"))
        # A field without a setter is no parameter of param-set, as in xapi's xe.
        self.assertIn("Unknown parameter: bridge", self.xe_fails("network-param-set", f"uuid={u}", "bridge=x"))

    def test_filters_on_fields_maps_and_refs(self):
        a = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=filtered")
        self.xe("vm-param-set", f"uuid={a}", "other-config:team=red")
        self.assertEqual(self.one("vm-list", "other-config:team=red", "--minimal"), a)
        self.assertEqual(self.one("vm-list", "other-config:team=blue", "--minimal"), "")
        self.assertIn(a, self.one("vm-list", "power-state=halted", "--minimal").split(","))
        # A ref is filtered by its object's uuid (vbd-list vm-uuid=).
        vbds = self.one("vbd-list", f"vm-uuid={a}", "--minimal").split(",")
        self.assertEqual(len(vbds), 1)
        self.assertEqual(self.one("vbd-param-get", f"uuid={vbds[0]}", "param-name=vm-uuid"), a)
        # Templates are not VMs, and are templates.
        self.assertNotIn(TEMPLATE, self.xe("vm-list", "params=name-label"))
        self.assertIn(TEMPLATE, self.xe("template-list", "params=name-label"))


class map_fields(xe_daemon):
    """param-clear of every writable map (MRW) of an object of every class that has objects,
    on a daemon of the class's own (what it clears is gone for good)."""

    # What the server refuses to clear, the code it answers and the key it keeps: xapid pins
    # the pool's certificates in the host's other-config; a PBD's device-config is the storage
    # manager's.
    REFUSED = {("host", "other-config"): ("OPERATION_NOT_ALLOWED", "xapid-pool-certificate-sha256"),
               ("pbd", "device-config"): ("PERMISSION_DENIED", "location")}
    KEYS = {"blocked-operations": "start"}  # keyed by an enum: one of its values

    def test_param_clear_empties_every_writable_map(self):
        # Objects of more classes: a VM with a disk (VBD, VDI) and a VIF, and a snapshot of it.
        vm = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=mapped")
        network = self.one("network-create", "name-label=mapped")
        self.one("vif-create", f"vm-uuid={vm}", f"network-uuid={network}", "device=0")
        self.one("vm-snapshot", f"uuid={vm}", "new-name-label=mapped snapshot")
        classes = sorted(name[: -len("-param-list")] for name in self.xe("help", "--all").split() if name.endswith("-param-list"))
        cleared, refused = set(), set()
        for cls in classes:
            uuids = [u for u in self.one(f"{cls}-list", "params=uuid", "--minimal").split(",") if u]
            if not uuids:
                continue
            record = records_of(self.xe(f"{cls}-param-list", f"uuid={uuids[0]}"))[0]
            for name in (name for name, (tag, _) in record.items() if tag == "MRW"):
                get = (f"{cls}-param-get", f"uuid={uuids[0]}", f"param-name={name}")
                with self.subTest(cls=cls, field=name):
                    if (cls, name) in self.REFUSED:
                        code, kept = self.REFUSED[(cls, name)]
                        self.assertIn(f"code: {code}\n", self.xe_fails(f"{cls}-param-clear", f"uuid={uuids[0]}", f"param-name={name}"))
                        self.assertRegex(self.one(*get), rf"(^|; ){kept}: ")
                        refused.add((cls, name))
                        continue
                    key = self.KEYS.get(name, "xe-clear")
                    self.xe(f"{cls}-param-set", f"uuid={uuids[0]}", f"{name}:{key}=1")
                    self.assertEqual(self.one(f"{cls}-param-get", f"uuid={uuids[0]}", f"param-name={name}", f"param-key={key}"), "1")
                    self.xe(f"{cls}-param-clear", f"uuid={uuids[0]}", f"param-name={name}")
                    self.assertEqual(self.one(*get), "")
                    cleared.add((cls, name))
        self.assertEqual(refused, set(self.REFUSED))
        self.assertLessEqual({"console", "host", "host-cpu", "host-metrics", "network", "pbd", "pif", "pool", "sm", "snapshot", "sr",
                              "template", "vbd", "vdi", "vif", "vm", "vm-metrics"}, {cls for cls, _ in cleared})
        self.assertLessEqual({("vm", "platform"), ("vm", "blocked-operations"), ("sr", "sm-config"), ("pool", "gui-config"),
                              ("vdi", "xenstore-data")}, cleared)


class operations(xe_daemon):
    """The operation commands, end to end."""

    def install(self, name):
        return self.one("vm-install", f"template={TEMPLATE}", f"new-name-label={name}")

    def power(self, uuid):
        return self.one("vm-param-get", f"uuid={uuid}", "param-name=power-state")

    def test_a_vm_from_install_to_uninstall(self):
        vm = self.install("life")
        self.assertEqual(self.power(vm), "halted")
        disks = self.xe("vm-disk-list", "vm=life")
        self.assertEqual(len(records_of(disks)), 1)
        vdi = records_of(disks)[0]["vdi-uuid"][1]
        started = subprocess.Popen([XE, *self.connection(), "event-wait", "class=vm", f"uuid={vm}", "power-state=/=halted"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.environment())
        try:
            # Waiting while the VM is halted; returns once it is anything else.
            with self.assertRaises(subprocess.TimeoutExpired):
                started.wait(timeout=1)
            self.xe("vm-start", "vm=life")
            self.assertEqual(started.wait(timeout=30), 0, started.stderr.read())
        finally:
            started.kill()
            started.stdout.close()
            started.stderr.close()
        self.xe("event-wait", "class=vm", f"uuid={vm}", "power-state=running")
        self.assertEqual(self.power(vm), "running")
        # A server error: what it means, its code, its parameters by name, a VM by its uuid and name.
        err = self.xe_fails("vm-destroy", f"uuid={vm}")
        self.assertTrue(err.startswith("You attempted an operation on a VM that was not in an appropriate power state"), err)
        self.assertIn(f"\ncode: VM_BAD_POWER_STATE\nvm: {vm} (life)\nexpected: ", err)
        self.assertTrue(err.endswith("\nactual: running\n"), err)
        self.xe("vm-suspend", f"uuid={vm}")
        self.assertEqual(self.power(vm), "suspended")
        self.xe("vm-resume", f"uuid={vm}")
        self.xe("vm-pause", f"uuid={vm}")
        self.assertEqual(self.power(vm), "paused")
        self.xe("vm-unpause", f"uuid={vm}")
        # A clean reboot (the guest asked): a new domain, and the message says how it rebooted.
        domid = self.one("vm-param-get", f"uuid={vm}", "param-name=domid")
        self.xe("vm-reboot", f"uuid={vm}")
        self.assertEqual(self.power(vm), "running")
        self.assertNotEqual(self.one("vm-param-get", f"uuid={vm}", "param-name=domid"), domid)
        self.assertEqual(self.one("message-list", "name=VM_REBOOTED", f"obj-uuid={vm}", "params=body", "--minimal"),
                         f"VM 'life' (uuid: {vm}) rebooted cleanly")
        self.xe("vm-reboot", f"uuid={vm}", "--force")
        self.assertIn(f"VM 'life' (uuid: {vm}) rebooted forcibly",
                      self.one("message-list", "name=VM_REBOOTED", f"obj-uuid={vm}", "params=body", "--minimal").split(","))
        self.xe("vm-shutdown", f"uuid={vm}", "--force")
        self.assertEqual(self.power(vm), "halted")
        snapshot = self.one("vm-snapshot", f"uuid={vm}", "new-name-label=before")
        self.assertIn(snapshot, self.one("snapshot-list", "--minimal"))
        self.xe("snapshot-revert", f"snapshot-uuid={snapshot}")
        clone = self.one("vm-clone", f"uuid={vm}", "new-name-label=life clone")
        self.assertEqual(self.one("vm-param-get", f"uuid={clone}", "param-name=name-label"), "life clone")
        copy = self.one("vm-copy", f"uuid={vm}", "new-name-label=life copy")
        self.xe("vm-memory-limits-set", f"uuid={copy}", "static-min=512MiB", "static-max=2GiB", "dynamic-min=1GiB", "dynamic-max=2GiB")
        self.assertEqual(self.one("vm-param-get", f"uuid={copy}", "param-name=memory-static-max"), str(2 << 30))
        self.assertIn("--force", self.xe_fails("vm-uninstall", f"uuid={vm}"))
        self.xe("snapshot-destroy", f"snapshot-uuid={snapshot}")
        self.xe("vm-uninstall", f"uuid={vm}", "--force")
        self.assertEqual(self.one("vm-list", f"uuid={vm}", "--minimal"), "")
        self.assertEqual(self.one("vdi-list", f"uuid={vdi}", "--minimal"), "")

    def test_export_piped_to_import_round_trips_a_vm(self):
        vm = self.install("travelling")
        self.xe("vm-param-set", f"uuid={vm}", "other-config:packed=yes", "VCPUs-max=2")
        disk = records_of(self.xe("vm-disk-list", f"uuid={vm}"))[0]["vdi-uuid"][1]
        size = self.one("vdi-param-get", f"uuid={disk}", "param-name=virtual-size")
        env = self.environment()
        export = subprocess.Popen([XE, *self.connection(), "vm-export", f"uuid={vm}", "filename=-"], stdout=subprocess.PIPE, env=env)
        imported = subprocess.run([XE, *self.connection(), "vm-import", "filename=-"], stdin=export.stdout, capture_output=True,
                                  text=True, env=env, timeout=120)
        export.stdout.close()
        self.assertEqual(export.wait(timeout=60), 0)
        self.assertEqual(imported.returncode, 0, imported.stderr)
        copy = imported.stdout.strip()
        self.assertNotEqual(copy, vm)
        record = records_of(self.xe("vm-param-list", f"uuid={copy}"))[0]
        self.assertEqual(record["name-label"][1], "travelling")
        self.assertEqual(record["VCPUs-max"][1], "2")
        self.assertIn("packed: yes", record["other-config"][1])
        copied_disk = records_of(self.xe("vm-disk-list", f"uuid={copy}"))[0]["vdi-uuid"][1]
        self.assertNotEqual(copied_disk, disk)
        self.assertEqual(self.one("vdi-param-get", f"uuid={copied_disk}", "param-name=virtual-size"), size)
        # Through a file, into a named SR; a file that is there already is not written over.
        xva = os.path.join(self.home.name, "travelling.xva")
        self.xe("vm-export", f"uuid={vm}", f"filename={xva}")
        self.assertIn("cannot create", self.xe_fails("vm-export", f"uuid={vm}", f"filename={xva}"))
        sr = self.one("pool-param-get", f"uuid={self.one('pool-list', '--minimal')}", "param-name=default-SR")
        again = self.one("vm-import", f"filename={xva}", f"sr-uuid={sr}")
        self.assertEqual(self.one("vm-param-get", f"uuid={again}", "param-name=name-label"), "travelling")
        # On a terminal, a progress bar on stderr.
        import pty
        controller, terminal = pty.openpty()
        try:
            shown = os.path.join(self.home.name, "shown.xva")
            r = subprocess.run([XE, *self.connection(), "vm-export", f"uuid={vm}", f"filename={shown}"], stderr=terminal,
                               stdout=subprocess.DEVNULL, env=self.environment(), timeout=60)
            self.assertEqual(r.returncode, 0)
            os.close(terminal)
            terminal = None
            self.assertRegex(os.read(controller, 4096).decode(), r"Exporting \d+\.\d MiB")
        finally:
            os.close(controller)
            if terminal is not None:
                os.close(terminal)
        # What is not an XVA is refused with the server's reason.
        with open(xva, "wb") as f:
            f.write(b"not an archive" * 100)
        self.assertIn("HTTP 400", self.xe_fails("vm-import", f"filename={xva}"))

    def test_several_vms_need_multiple(self):
        for name in ("many-1", "many-2"):
            self.xe("vm-param-set", f"uuid={self.install(name)}", "other-config:flock=sheep")
        self.assertIn("--multiple", self.xe_fails("vm-start", "other-config:flock=sheep"))
        self.xe("vm-start", "other-config:flock=sheep", "--multiple")
        self.assertEqual(self.one("vm-list", "other-config:flock=sheep", "power-state=running", "params=uuid", "--minimal").count(","), 1)
        self.xe("vm-shutdown", "other-config:flock=sheep", "--multiple", "--force")
        self.assertIn("No matching vm", self.xe_fails("vm-start", "vm=no such vm"))
        # The control domain is listed, and no VM operation selects it, as with xapi's xe.
        dom0 = self.one("vm-list", "is-control-domain=true", "--minimal")
        self.assertTrue(dom0)
        self.assertIn("No matching vm", self.xe_fails("vm-shutdown", f"uuid={dom0}", "--force"))
        self.assertIn("No matching vm", self.xe_fails("vm-shutdown", "is-control-domain=true", "--force", "--multiple"))

    def test_storage_and_network_devices(self):
        sr_dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, sr_dir, True)
        sr = self.one("sr-create", "name-label=xe disks", "type=file", "content-type=user", f"device-config:location={sr_dir}")
        pbd = self.one("pbd-list", f"sr-uuid={sr}", "--minimal")
        self.assertEqual(self.one("pbd-param-get", f"uuid={pbd}", "param-name=currently-attached"), "true")
        vdi = self.one("vdi-create", f"sr-uuid={sr}", "name-label=data", "virtual-size=1GiB")
        self.assertEqual(self.one("vdi-param-get", f"uuid={vdi}", "param-name=virtual-size"), str(1 << 30))
        self.xe("vdi-resize", f"uuid={vdi}", "disk-size=2GiB")
        self.assertEqual(self.one("vdi-param-get", f"uuid={vdi}", "param-name=virtual-size"), str(2 << 30))
        clone = self.one("vdi-clone", f"uuid={vdi}")
        self.assertEqual(self.one("vdi-param-get", f"uuid={clone}", "param-name=sr-uuid"), sr)
        # vm-install puts the template's disks in the SR named (by uuid or name).
        for where in (f"sr-uuid={sr}", "sr-name-label=xe disks"):
            placed = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=placed", where)
            disk = records_of(self.xe("vm-disk-list", f"uuid={placed}"))[0]["vdi-uuid"][1]
            self.assertEqual(self.one("vdi-param-get", f"uuid={disk}", "param-name=sr-uuid"), sr, where)
            self.xe("vm-uninstall", f"uuid={placed}", "--force")
        vm = self.install("devices")
        vbd = self.one("vbd-create", f"vm-uuid={vm}", f"vdi-uuid={vdi}", "device=3", "unpluggable=true")
        self.assertEqual(self.one("vbd-param-get", f"uuid={vbd}", "param-name=userdevice"), "3")
        added = self.one("vm-disk-add", f"uuid={vm}", "disk-size=64MiB", f"sr-uuid={sr}", "device=4")
        self.assertIn(added, self.xe("vm-disk-list", f"uuid={vm}"))
        net = self.one("network-create", "name-label=xe net")
        vif = self.one("vif-create", f"vm-uuid={vm}", f"network-uuid={net}", "device=0", "mac=02:00:00:00:00:01")
        self.assertEqual(self.one("vif-param-get", f"uuid={vif}", "param-name=MAC"), "02:00:00:00:00:01")
        self.assertIn(vif, self.xe("vm-vif-list", f"uuid={vm}"))
        self.xe("vm-start", f"uuid={vm}")
        self.xe("vif-unplug", f"uuid={vif}")
        self.xe("vif-plug", f"uuid={vif}")
        self.xe("vbd-unplug", f"uuid={vbd}")
        self.assertEqual(self.one("vbd-param-get", f"uuid={vbd}", "param-name=currently-attached"), "false")
        self.xe("vbd-plug", f"uuid={vbd}")
        self.assertEqual(self.one("vbd-param-get", f"uuid={vbd}", "param-name=currently-attached"), "true")
        self.xe("vm-shutdown", f"uuid={vm}", "--force")
        self.xe("vif-destroy", f"uuid={vif}")
        self.xe("network-destroy", f"uuid={net}")
        self.xe("vbd-destroy", f"uuid={vbd}")
        self.xe("vdi-destroy", f"uuid={clone}")
        self.xe("vdi-destroy", f"uuid={vdi}")
        self.xe("vm-uninstall", f"uuid={vm}", "--force")
        self.xe("sr-scan", f"uuid={sr}")
        self.xe("pbd-unplug", f"uuid={pbd}")
        self.assertEqual(self.one("pbd-param-get", f"uuid={pbd}", "param-name=currently-attached"), "false")
        self.xe("pbd-plug", f"uuid={pbd}")
        self.assertIn("SR_HAS_PBD", self.xe_fails("sr-destroy", f"uuid={sr}"))
        self.xe("pbd-unplug", f"uuid={pbd}")
        self.xe("sr-destroy", f"uuid={sr}")
        self.assertEqual(self.one("sr-list", f"uuid={sr}", "--minimal"), "")

    def test_a_cd_from_an_iso_library(self):
        library = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, library, True)
        with open(os.path.join(library, "installer.iso"), "wb") as f:
            f.write(b"\0" * 65536)
        sr = self.one("sr-create", "name-label=ISOs", "type=iso", "content-type=iso", f"device-config:location={library}")
        iso = self.one("vdi-list", f"sr-uuid={sr}", "--minimal")
        self.assertEqual(self.one("vdi-param-get", f"uuid={iso}", "param-name=read-only"), "true")
        vm = self.install("with a cd")
        self.assertIn("no CD drive", self.xe_fails("vm-cd-insert", f"uuid={vm}", f"cd-name={iso}"))
        cd = self.one("vbd-create", f"vm-uuid={vm}", "device=3", "type=CD", "mode=RO", "empty=true")
        self.assertIn("code: VBD_IS_EMPTY", self.xe_fails("vm-cd-eject", f"uuid={vm}"))
        self.xe("vm-cd-insert", f"uuid={vm}", "cd-name=installer.iso")
        self.assertEqual(self.one("vbd-param-get", f"uuid={cd}", "param-name=vdi-uuid"), iso)
        self.xe("vm-cd-eject", f"uuid={vm}")
        self.assertEqual(self.one("vbd-param-get", f"uuid={cd}", "param-name=empty"), "true")

    def test_an_sr_forgotten_and_introduced_again_finds_its_disks(self):
        library = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, library, True)
        sr = self.one("sr-create", "name-label=lib", "type=file", f"device-config:location={library}")
        vdi = self.one("vdi-create", f"sr-uuid={sr}", "name-label=d1", "virtual-size=1GiB")
        snapshot = self.one("vdi-snapshot", f"uuid={vdi}")
        self.assertEqual(self.one("vdi-param-get", f"uuid={snapshot}", "param-name=is-a-snapshot"), "true")
        copy = self.one("vdi-copy", f"uuid={vdi}", f"sr-uuid={sr}")
        self.assertEqual(self.one("vdi-param-get", f"uuid={copy}", "param-name=virtual-size"), str(1 << 30))
        host = self.one("host-list", "--minimal")
        self.xe("pbd-unplug", f"uuid={self.one('pbd-list', f'sr-uuid={sr}', '--minimal')}")
        self.xe("sr-forget", f"uuid={sr}")
        self.assertEqual(self.one("vdi-list", f"sr-uuid={sr}", "--minimal"), "")
        self.assertEqual(self.one("sr-introduce", f"uuid={sr}", "name-label=again", "type=file"), sr)
        pbd = self.one("pbd-create", f"host-uuid={host}", f"sr-uuid={sr}", f"device-config:location={library}")
        self.xe("pbd-plug", f"uuid={pbd}")
        self.xe("sr-scan", f"uuid={sr}")
        self.assertEqual(len(self.one("vdi-list", f"sr-uuid={sr}", "--minimal").split(",")), 3)
        self.xe("vdi-forget", f"uuid={self.one('vdi-list', f'sr-uuid={sr}', 'params=uuid', '--minimal').split(',')[0]}")
        self.assertEqual(len(self.one("vdi-list", f"sr-uuid={sr}", "--minimal").split(",")), 2)

    def test_what_the_server_refuses_is_printed_by_its_code(self):
        vm = self.install("refused")
        self.xe("vm-start", f"uuid={vm}")
        checkpoint = self.one("vm-checkpoint", f"uuid={vm}", "new-name-label=cp")
        self.assertEqual(self.one("snapshot-list", f"uuid={checkpoint}", "params=name-label", "--minimal"), "cp")
        self.assertIn("code: OPERATION_NOT_ALLOWED\n", self.xe_fails("vm-reset-powerstate", f"uuid={vm}", "--force"))
        self.xe("vm-shutdown", f"uuid={vm}", "--force")
        # The pool's commands on a pool of one (a_pool below has three hosts): what the server
        # refuses, by its code and its parameters (an SR by its uuid and name).
        pool = self.one("pool-list", "--minimal")
        sr = self.one("pool-param-get", f"uuid={pool}", "param-name=default-SR")
        err = self.xe_fails("pool-ha-enable", f"heartbeat-sr-uuids={sr}")
        self.assertIn(f"\ncode: HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED\nSR: {sr} (Local storage)\n", err)
        self.assertIn("code: HA_NOT_ENABLED\n", self.xe_fails("pool-ha-disable"))
        self.assertIn("code: JOINING_HOST_CONNECTION_FAILED\n", self.xe_fails("pool-join", "master-address=127.0.0.9", "master-password=x"))
        # The master made master: nothing to do.
        host = self.one("host-list", "--minimal")
        self.xe("pool-emergency-transition-to-master")
        self.xe("pool-designate-new-master", f"host-uuid={host}")
        self.assertEqual(self.one("pool-param-get", f"uuid={pool}", "param-name=master"), host)

    def test_hosts_of_a_pool_of_one(self):
        host = self.one("host-list", "--minimal")
        self.assertEqual(len(host.split(",")), 1)
        self.xe("host-disable", f"host={host}")
        self.assertEqual(self.one("host-param-get", f"uuid={host}", "param-name=enabled"), "false")
        self.xe("host-enable", f"uuid={host}")
        self.assertEqual(self.one("host-param-get", f"uuid={host}", "param-name=enabled"), "true")
        free = int(self.one("host-compute-free-memory", f"uuid={host}"))
        self.assertGreater(free, 0)
        self.assertIn("Xen version", self.xe("host-dmesg", f"uuid={host}"))
        # A running VM has nowhere to go: not migrated to where it runs, and no evacuation.
        vm = self.install("migrant")
        self.xe("vm-start", f"uuid={vm}")
        self.assertLess(int(self.one("host-compute-free-memory", f"uuid={host}")), free)
        err = self.xe_fails("vm-migrate", f"uuid={vm}", f"host-uuid={host}", "live=true")
        self.assertIn(f"\ncode: VM_MIGRATE_FAILED\nvm: {vm} (migrant)\n", err)
        self.assertTrue(err.endswith("\nmsg: the VM already runs on that host\n"), err)
        self.assertIn("code: UUID_INVALID\ntype: host\n", self.xe_fails("vm-migrate", f"uuid={vm}", "host-uuid=" + "0" * 8 + "-0000-0000-0000-" + "0" * 12))
        self.assertRegex(self.xe_fails("host-evacuate", f"uuid={host}"), r"\ncode: CANNOT_EVACUATE_HOST\nerrors: NO_HOSTS_AVAILABLE,OpaqueRef:")
        self.xe("vm-shutdown", f"uuid={vm}", "--force")
        self.xe("host-evacuate", f"uuid={host}")
        # Powering the host off needs it disabled first.
        self.assertIn("code: HOST_NOT_DISABLED\n", self.xe_fails("host-reboot", f"uuid={host}"))
        self.assertIn("code: HOST_NOT_DISABLED\n", self.xe_fails("host-shutdown", f"uuid={host}"))

    def test_messages_are_listed_with_their_content(self):
        vm = self.install("talked about")
        # A message of the API's own (message.create), and one the daemon raised (the clone's).
        with xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}") as x:
            s = self.ok(x.session.login_with_password("root", PASSWORD, "1.0", "xe test"))
            self.ok(x.message.create(s, "XE_TEST_NOTE", "2", "VM", vm, "a note about the VM"))
        listed = records_of(self.xe("message-list", f"obj-uuid={vm}"))
        self.assertEqual(len(listed), 1, listed)
        note = listed[0]
        self.assertEqual({name: value for name, (_, value) in note.items() if name not in ("uuid", "timestamp")},
                         {"name": "XE_TEST_NOTE", "priority": "2", "cls": "VM", "obj-uuid": vm, "body": "a note about the VM"})
        self.assertRegex(note["timestamp"][1], r"^\d{8}T\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.one("message-list", "name=XE_TEST_NOTE", "params=uuid", "--minimal"), note["uuid"][1])
        # The template's, saying what it was cloned into.
        cloned = [r["body"][1] for r in records_of(self.xe("message-list", "name=VM_CLONED", "params=body"))]
        self.assertIn(f"VM '{TEMPLATE}' (uuid: {self.one('template-list', f'name-label={TEMPLATE}', '--minimal')}) cloned (new uuid: {vm})",
                      cloned)


class operations_over_https(operations):
    """The operations again, each xe run over HTTPS with root's password (as from another
    machine): TLS, the certificate pinned on first use, a login with a password per command,
    transfers over TLS (an upload of unknown length chunked)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = subprocess.run([XE, *cls.connection(cls), "host-list", "--minimal"], capture_output=True, text=True, timeout=60,
                           env=cls.environment(cls), stdin=subprocess.DEVNULL)
        if r.returncode != 0 or f"trusting the certificate of 127.0.0.1:{cls.tls_port} on first use" not in r.stderr:
            cls.tearDownClass()
            raise AssertionError(f"the first xe over HTTPS: {r.stderr}")

    def connection(self):
        return ("-s", "127.0.0.1", "-p", str(self.tls_port), "-u", "root", "-pw", PASSWORD)


class a_daemon_of_each_test(runs_xe, answers, unittest.TestCase):
    """What changes the daemon itself, on one of each test's own whose guests ignore a clean
    shutdown (--sim-hang-probability 1): the task of a clean shutdown waiting on its guest,
    listed and cancelled; the host rebooted and shut down."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.home = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.addCleanup(self.home.cleanup)
        self.proc, self.port, _ = start_daemon(self.dir.name, "--sim-hang-probability", "1")
        self.addCleanup(self.proc.stderr.close)
        self.addCleanup(lambda: self.proc.poll() is None and stop_daemon(self.proc))
        self.socket = os.path.join(self.dir.name, "xapid.sock")

    def connection(self):
        return ("--socket", self.socket)

    def log_lines(self, pattern):
        with open(os.path.join(self.dir.name, "xapid.log"), errors="replace") as f:
            return [line for line in f if re.search(pattern, line)]

    def test_the_task_of_a_waiting_shutdown_is_listed_and_cancelled(self):
        vm = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=stubborn")
        self.xe("vm-start", f"uuid={vm}")
        # xe's own calls are synchronous: the task is an Async call's, from another client.
        with xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}") as x:
            s = self.ok(x.session.login_with_password("root", PASSWORD, "1.0", "xe test"))
            task = self.ok(getattr(x, "Async").VM.clean_shutdown(s, self.ok(x.VM.get_by_uuid(s, vm))))
            task_uuid = self.ok(x.task.get_uuid(s, task))
        wait_for("the shutdown waiting on its guest", lambda: self.one("vm-param-get", f"uuid={vm}", "param-name=current-operations")
                 == f"{task}: clean_shutdown", timeout=10, every=0.05)
        listed = records_of(self.xe("task-list"))
        self.assertEqual(listed, [{"uuid": ("RO", task_uuid), "name-label": ("RO", "Async.VM.clean_shutdown"),
                                   "name-description": ("RO", ""), "status": ("RO", "pending"), "progress": ("RO", "0")}])
        self.assertEqual(self.one("task-param-get", f"uuid={task_uuid}", "param-name=allowed-operations"), "cancel")
        self.assertEqual(self.one("task-list", "status=pending", "--minimal"), task_uuid)
        self.xe("task-cancel", f"uuid={task_uuid}")
        wait_for("the task cancelled", lambda: self.one("task-param-get", f"uuid={task_uuid}", "param-name=status") == "cancelled",
                 timeout=10, every=0.05)
        self.assertEqual(self.one("task-param-get", f"uuid={task_uuid}", "param-name=error-info"), f"TASK_CANCELLED; {task}")
        self.assertEqual(self.one("task-list", "status=pending", "--minimal"), "")
        # The guest runs on, nothing left in progress.
        self.assertEqual(self.one("vm-param-get", f"uuid={vm}", "param-name=power-state"), "running")
        self.assertEqual(self.one("vm-param-get", f"uuid={vm}", "param-name=current-operations"), "")

    def test_host_reboot_starts_the_daemon_again_and_host_shutdown_stops_it(self):
        host = self.one("host-list", "--minimal")
        self.xe("host-disable", f"uuid={host}")
        self.xe("host-reboot", f"uuid={host}")
        # The same process stops its host and starts it again (as the daemon's host.reboot does),
        # then answers on its socket; the host is still disabled.
        wait_for("the daemon started again", lambda: len(self.log_lines(r"xapid\.ready")) == 2, timeout=30, every=0.05)
        self.assertEqual(len(self.log_lines(r"xapid\.stop reason=host\.reboot")), 1)
        self.assertIsNone(self.proc.poll())
        self.assertEqual(self.one("host-param-get", f"uuid={host}", "param-name=enabled"), "false")
        self.xe("host-shutdown", f"uuid={host}")
        self.assertEqual(self.proc.wait(timeout=30), 0)
        self.assertEqual(len(self.log_lines(r"xapid\.stop reason=host\.shutdown")), 1)
        self.assertIn("cannot connect", self.xe_fails("host-list"))


class users(xe_daemon):
    """Subjects, their roles, and root's password."""

    def test_subjects_and_their_roles(self):
        subject = self.one("subject-add", "subject-identifier=u424242")
        self.assertEqual(self.one("subject-param-get", f"uuid={subject}", "param-name=subject-identifier"), "u424242")
        self.xe("subject-role-add", f"uuid={subject}", "role-name=vm-admin")
        roles = self.one("subject-param-get", f"uuid={subject}", "param-name=roles")
        self.assertEqual(roles, self.one("role-list", "name-label=vm-admin", "--minimal"))
        self.assertIn("No role is named", self.xe_fails("subject-role-add", f"uuid={subject}", "role-name=no-such-role"))
        self.xe("subject-role-remove", f"uuid={subject}", "role-name=vm-admin")
        self.assertEqual(self.one("subject-param-get", f"uuid={subject}", "param-name=roles"), "")
        self.xe("subject-remove", f"uuid={subject}")
        self.assertEqual(self.one("subject-list", "--minimal"), "")
        # By name, the external authentication is asked: what the server answers is printed.
        self.assertRegex(self.xe_fails("subject-add", "subject-name=nobody"), r"code: [A-Z_]+\n")

    def test_user_password_change(self):
        plain = ("-s", "127.0.0.1", "-p", str(self.port), "--nossl", "-u", "root")
        self.xe(*plain, "-pw", PASSWORD, "user-password-change", f"old={PASSWORD}", "new=changed-by-xe", local=False)
        try:
            self.assertTrue(self.xe(*plain, "-pw", "changed-by-xe", "host-list", "--minimal", local=False).strip())
            self.assertIn("SESSION_AUTHENTICATION_FAILED", self.xe_fails(*plain, "-pw", PASSWORD, "host-list", local=False))
        finally:
            self.xe(*plain, "-pw", "changed-by-xe", "user-password-change", "old=changed-by-xe", f"new={PASSWORD}", local=False)


class command_line(xe_daemon):
    """What xe refuses before any call, and where it finds its server and credentials."""

    def nowhere(self, *args):
        """xe against a socket nobody listens on: a usage error shows that no call was tried."""
        r = subprocess.run([XE, "--socket", os.path.join(self.home.name, "none.sock"), *args], capture_output=True, text=True,
                           env=self.environment())
        self.assertEqual(r.returncode, 1)
        self.assertNotIn("cannot connect", r.stderr)
        return r.stderr

    def test_unknown_commands_and_parameters_are_refused_with_the_usage(self):
        self.assertIn("Unknown command: vm-frobnicate", self.nowhere("vm-frobnicate"))
        err = self.nowhere("vm-start", "vm=x", "bogus=1")
        self.assertIn("Unknown parameter: bogus", err)
        self.assertIn("usage: xe vm-start", err)
        self.assertIn("Required parameter not found: param-name", self.nowhere("vm-param-get", "uuid=x"))
        self.assertIn("Unknown parameter: nonsense", self.nowhere("vm-list", "nonsense=1"))
        self.assertIn("Unknown flag: --frob", self.nowhere("vm-list", "--frob"))
        # The same command line, right, does try to connect (and says where it could not).
        r = self.run_xe("--socket", os.path.join(self.home.name, "none.sock"), "vm-list")
        self.assertEqual(r.returncode, 1)
        self.assertIn("none.sock: cannot connect: ", r.stderr)

    def test_the_local_socket_without_socket_is_the_data_dirs(self):
        host = self.one("host-list", "--minimal")
        # $XAPID_DATA_DIR/xapid.sock, as deploy/start's data dir.
        r = self.run_xe("host-list", "--minimal", local=False, env={"XAPID_DATA_DIR": self.dir.name})
        self.assertEqual((r.returncode, r.stdout.strip(), r.stderr), (0, host, ""))
        # Unset or empty: data/xapid.sock in the working directory (deploy/start's, from the checkout).
        checkout = tempfile.mkdtemp(dir=self.home.name)
        os.symlink(self.dir.name, os.path.join(checkout, "data"))
        for env in ({}, {"XAPID_DATA_DIR": ""}):
            r = self.run_xe("host-list", "--minimal", local=False, env=env, cwd=checkout)
            self.assertEqual((r.returncode, r.stdout.strip(), r.stderr), (0, host, ""), env)
        r = self.run_xe("host-list", "--minimal", local=False, cwd=self.home.name)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("data/xapid.sock: cannot connect: "), r.stderr)
        # --socket wins over the environment.
        r = self.run_xe("host-list", "--minimal", env={"XAPID_DATA_DIR": self.home.name})
        self.assertEqual((r.returncode, r.stdout.strip()), (0, host), r.stderr)

    def test_help(self):
        self.assertIn("vm-list", self.xe("help"))
        everything = self.xe("help", "--all").split()
        self.assertIn("vdi-param-clear", everything)
        self.assertIn("pool-ha-enable", everything)
        self.assertIn("usage: xe vm-start", self.xe("help", "vm-start"))

    def test_xml_rpc_shows_what_json_rpc_shows(self):
        vm = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=both encodings")
        self.xe("--xmlrpc", "vm-param-set", f"uuid={vm}", "other-config:via=xml", "VCPUs-max=3")
        for command in (("vm-param-list", f"uuid={vm}"), ("host-list", "params=all"), ("vm-list", "--minimal"), ("sr-list",)):
            self.assertEqual(self.xe("--xmlrpc", *command), self.xe(*command), command)
        self.assertIn("via: xml", self.one("vm-param-get", f"uuid={vm}", "param-name=other-config"))
        self.assertEqual(self.one("vm-param-get", f"uuid={vm}", "param-name=VCPUs-max"), "3")
        self.assertIn("code: UUID_INVALID\n", self.xe_fails("--xmlrpc", "vm-param-list", "uuid=00000000-0000-0000-0000-000000000000"))

    def test_server_errors_print_the_code_and_named_parameters(self):
        r = self.run_xe("vm-param-list", "uuid=00000000-0000-0000-0000-000000000000")
        self.assertEqual(r.returncode, 1)
        self.assertIn("code: UUID_INVALID\n", r.stderr)
        self.assertRegex(r.stderr, r"\n\w+: VM\n")

    def test_https_with_a_password_trusts_on_first_use_then_checks(self):
        remote = ("-s", "127.0.0.1", "-p", str(self.tls_port), "-u", "root", "-pw", PASSWORD)
        first = self.run_xe(*remote, "host-list", "--minimal", local=False)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn("trusting the certificate of 127.0.0.1", first.stderr)
        second = self.run_xe(*remote, "host-list", "--minimal", local=False)
        self.assertEqual((second.stdout, second.stderr), (first.stdout, ""))
        # A certificate given is verified instead.
        pem = os.path.join(self.dir.name, "xapid.pem")
        with_cert = self.run_xe(*remote, "--cert", pem, "pool-list", "--minimal", local=False)
        self.assertEqual((with_cert.returncode, with_cert.stderr), (0, ""))
        # A pinned certificate that changed is refused.
        with open(os.path.join(self.home.name, ".xe-known-hosts")) as f:
            pins = f.read()
        with open(os.path.join(self.home.name, ".xe-known-hosts"), "w") as f:
            f.write(re.sub(r" [0-9a-f]{64}", " " + "0" * 64, pins))
        try:
            self.assertIn("not the one seen before", self.xe_fails(*remote, "host-list", local=False))
        finally:
            with open(os.path.join(self.home.name, ".xe-known-hosts"), "w") as f:
                f.write(pins)
        # (The operations over HTTPS: operations_over_https.)

    def test_password_file_rc_file_and_extra_args(self):
        pwf = os.path.join(self.home.name, "password")
        with open(pwf, "w") as f:
            f.write(PASSWORD + "\n")
        plain = ("-s", "127.0.0.1", "-p", str(self.port), "--nossl", "-u", "root")
        host = self.one("host-list", "--minimal")
        os.chmod(pwf, 0o644)
        shared = self.run_xe(*plain, "-pwf", pwf, "host-list", "--minimal", local=False)
        self.assertEqual((shared.returncode, shared.stdout.strip()), (0, host), shared.stderr)
        self.assertIn(f"xe: {pwf} may be read or changed by other users (mode 0644)", shared.stderr)
        os.chmod(pwf, 0o600)
        private = self.run_xe(*plain, "-pwf", pwf, "host-list", "--minimal", local=False)
        self.assertEqual((private.returncode, private.stdout.strip(), private.stderr), (0, host, ""))
        self.assertIn("SESSION_AUTHENTICATION_FAILED", self.xe_fails(*plain, "-pw", "wrong", "host-list", local=False))
        rc = os.path.join(self.home.name, ".xe")
        with open(rc, "w") as f:
            f.write(f"server=127.0.0.1\nport={self.port}\nnossl=true\nusername=root\npassword={PASSWORD}\n")
        try:
            os.chmod(rc, 0o640)
            listed = self.run_xe("host-list", "--minimal", local=False)
            self.assertEqual(listed.stdout.strip(), host, listed.stderr)
            self.assertIn(f"xe: {rc} may be read or changed by other users (mode 0640)", listed.stderr)
        finally:
            os.remove(rc)
        extra = {"XE_EXTRA_ARGS": f"server=127.0.0.1,port={self.port},nossl=true,password={PASSWORD}"}
        self.assertEqual(self.xe("host-list", "--minimal", local=False, env=extra).strip(), host)
        # The command line wins over XE_EXTRA_ARGS.
        self.assertIn("SESSION_AUTHENTICATION_FAILED", self.xe_fails("-pw", "wrong", "host-list", local=False, env=extra))


class completion(xe_daemon):
    """cli/xe-completion.bash in a real bash, asking the daemon through xe."""

    def complete(self, line):
        script = 'source "$1"; COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; _xe; printf "%s\\n" "${COMPREPLY[@]}"'
        env = dict(os.environ, PATH=os.path.dirname(os.path.abspath(XE)) + os.pathsep + os.environ["PATH"], HOME=self.home.name)
        r = subprocess.run(["bash", "-c", script, "_", COMPLETION, line], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [w for w in r.stdout.split("\n") if w]

    def test_commands_parameters_fields_and_uuids(self):
        vm = self.one("vm-install", f"template={TEMPLATE}", "new-name-label=completed")
        local = f"xe --socket {self.socket} "
        self.assertEqual(sorted(self.complete("xe vm-param-")),
                         ["vm-param-add", "vm-param-clear", "vm-param-get", "vm-param-list", "vm-param-remove", "vm-param-set"])
        self.assertEqual(self.complete(local + "vm-param-get uu"), ["uuid="])
        # After '=' bash completes the value alone (= breaks words).
        self.assertIn(vm, self.complete(local + "vm-param-get uuid="))
        self.assertEqual(self.complete(local + "vm-param-get param-name=power-s"), ["power-state"])
        self.assertIn("completed", self.complete(local + "vm-start vm=compl"))
        self.assertIn("power-state=", self.complete(local + "vm-start power"))
        self.assertIn("other-config=", self.complete(local + "vm-list other-con"))
        # Parameters of which one is needed, shown (host=<host> | host-uuid=<host-uuid>) in the usage.
        self.assertLessEqual({"host=", "host-uuid="}, set(self.complete(local + "vm-migrate ho")))


def fingerprint_of(pem_file):
    """The SHA-256 of a PEM certificate's DER form, as xe pins it."""
    with open(pem_file) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


class a_pool(runs_xe, answers, unittest.TestCase):
    """xe against a pool of three real xapid processes on 127.0.0.2-4 (pool_support's hosts:
    the same API port on each), each also serving HTTPS (hosts 0 and 1 on one port, host 2 on
    another), joined with xe's pool-join, given a shared SR with sr-create. The tests run in
    order on the one pool, each leaving it as the next expects: members send xe to their
    master (HTTP, HTTPS, ADDR:PORT); VMs migrate and a host is evacuated; HA is turned on and
    off; the master's role is handed to host 1; host 2 is ejected; host 1 is stopped and host 0
    made master in an emergency."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.TemporaryDirectory()
        cls.home = tempfile.TemporaryDirectory()
        cls.hosts = []
        try:
            # The API's port (and the two after it) on every address, and two HTTPS ports apart from them.
            cls.port = free_port_everywhere()
            taken = {cls.port, cls.port + 1, cls.port + 2}
            cls.tls = []
            while len(cls.tls) < 2:
                p = free_port_everywhere()
                if not {p, p + 1, p + 2} & taken:
                    cls.tls.append(p)
                    taken |= {p, p + 1, p + 2}
            for i in range(3):
                cls.hosts.append(pool_host(cls.root.name, i, cls.port, extra_args=(
                    "--https-listen", f"{ADDRESSES[i]}:{cls.https_port(i)}", "--sim-migration-mib-per-s", "8192")))
                cls.hosts[-1].start()
            cls.uuids = [cls.one_of(i, "host-list", "--minimal") for i in range(3)]
            for i in (1, 2):
                cls.one_of(i, "pool-join", f"master-address={ADDRESSES[0]}:{cls.port}", f"master-password={PASSWORDS[0]}")
            for h in cls.hosts:
                h.login_once_it_has_hosts(PASSWORDS[0], 3)
            # A directory every host sees, the pool's shared SR: VMs on it run and migrate anywhere.
            cls.shared_dir = tempfile.mkdtemp(dir=cls.root.name)
            cls.sr = cls.one_of(0, "sr-create", "name-label=shared", "type=file", "shared=true", "content-type=user",
                                f"device-config:location={cls.shared_dir}")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for h in cls.hosts:
            h.stop()
        cls.root.cleanup()
        cls.home.cleanup()

    @classmethod
    def https_port(cls, i):
        return cls.tls[1] if i == 2 else cls.tls[0]

    @classmethod
    def one_of(cls, i, *args):
        """xe's output on host i's unix socket (root there, master or member), asserting success."""
        r = subprocess.run([XE, *cls.on(i), *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                           env=cls.environment(cls))
        if r.returncode != 0:
            raise AssertionError(f"xe {' '.join(args)} on host {i}: {r.stderr}")
        return r.stdout.strip()

    @classmethod
    def on(cls, i):
        return ("--socket", os.path.join(cls.hosts[i].dir, "xapid.sock"))

    def over_http(self, i):
        return ("-s", ADDRESSES[i], "-p", str(self.port), "--nossl", "-pw", PASSWORDS[0])

    def over_https(self, i):
        return ("-s", ADDRESSES[i], "-p", str(self.https_port(i)), "-pw", PASSWORDS[0])

    def followed(self, i, master, port=None):
        """The line xe prints on stderr when host i sends it to `master` (an index)."""
        port = port or self.port
        return f"xe: {ADDRESSES[i]}:{port} is a pool member; its master is {ADDRESSES[master]}:{port}\n"

    def eventually(self, check, limit=60):
        """check()'s value once it is truthy, asked every 0.2 s (a host may be restarting)."""
        return wait_for(check.__doc__ or "a condition", check, timeout=limit)

    def test_1_pool_join_brought_both_hosts_in(self):
        # Every host lists the three (their uuids from before the join), and names host 0 master.
        for i in range(3):
            self.assertEqual(sorted(self.one(*self.on(i), "host-list", "--minimal").split(",")), sorted(self.uuids))
            pool = self.one(*self.on(i), "pool-list", "--minimal")
            self.assertEqual(self.one(*self.on(i), "pool-param-get", f"uuid={pool}", "param-name=master"), self.uuids[0])
        self.assertEqual(self.one(*self.on(0), "host-list", f"address={ADDRESSES[2]}", "--minimal"), self.uuids[2])
        # sr-create made the shared SR's PBD on each host, plugged.
        pbds = records_of(self.xe(*self.on(1), "pbd-list", f"sr-uuid={self.sr}", "params=host-uuid,currently-attached"))
        self.assertEqual(sorted((r["host-uuid"][1], r["currently-attached"][1]) for r in pbds), sorted((u, "true") for u in self.uuids))

    def test_2_a_member_sends_xe_to_its_master(self):
        direct = self.run_xe(*self.over_http(0), "host-list", "params=uuid,address")
        self.assertEqual((direct.returncode, direct.stderr), (0, ""))
        # A member answers the login HOST_IS_SLAVE: xe says so and asks the master instead.
        for i in (1, 2):
            r = self.run_xe(*self.over_http(i), "host-list", "params=uuid,address")
            self.assertEqual((r.returncode, r.stderr, r.stdout), (0, self.followed(i, 0), direct.stdout))
        # Over HTTPS: the member's certificate and then the master's, each pinned on first use.
        known_hosts = os.path.join(self.home.name, ".xe-known-hosts")
        tls = self.https_port(1)
        member_pin, master_pin = fingerprint_of(os.path.join(self.hosts[1].dir, "xapid.pem")), fingerprint_of(os.path.join(self.hosts[0].dir, "xapid.pem"))
        self.assertNotEqual(member_pin, master_pin)
        first = self.run_xe(*self.over_https(1), "pool-list", "params=master", "--minimal")
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertEqual(first.stdout.strip(), self.uuids[0])
        self.assertEqual(first.stderr.splitlines(), [
            f"xe: trusting the certificate of {ADDRESSES[1]}:{tls} on first use (SHA-256 {member_pin}), kept in {known_hosts}",
            self.followed(1, 0, tls).rstrip("\n"),
            f"xe: trusting the certificate of {ADDRESSES[0]}:{tls} on first use (SHA-256 {master_pin}), kept in {known_hosts}"])
        again = self.run_xe(*self.over_https(1), "pool-list", "params=master", "--minimal")
        self.assertEqual((again.returncode, again.stdout, again.stderr), (0, first.stdout, self.followed(1, 0, tls)))
        # The master's address as ADDR:PORT (its API elsewhere than the member's): host 2's HTTPS
        # port is not the master's, so the port xe follows is the one the answer names.
        other = self.https_port(2)
        self.xe(*self.on(0), "host-param-set", f"uuid={self.uuids[0]}", f"address={ADDRESSES[0]}:{tls}")
        try:
            r = self.run_xe(*self.over_https(2), "host-list", "params=uuid", f"address={ADDRESSES[0]}:{tls}", "--minimal")
        finally:
            self.xe(*self.on(0), "host-param-set", f"uuid={self.uuids[0]}", f"address={ADDRESSES[0]}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), self.uuids[0])
        self.assertEqual(r.stderr.splitlines()[1:], [f"xe: {ADDRESSES[2]}:{other} is a pool member; its master is {ADDRESSES[0]}:{tls}"])
        with open(known_hosts) as f:
            self.assertEqual(sorted(f.read().splitlines()), sorted([f"{ADDRESSES[1]}:{tls} {member_pin}", f"{ADDRESSES[0]}:{tls} {master_pin}",
                                                                    f"{ADDRESSES[2]}:{other} {fingerprint_of(os.path.join(self.hosts[2].dir, 'xapid.pem'))}"]))
        # Pointed at the master it follows already, a member has nothing to do.
        self.xe(*self.on(2), "pool-emergency-reset-master", f"master-address={ADDRESSES[0]}:{self.port}")
        self.assertEqual(self.run_xe(*self.over_http(2), "pool-list", "params=master", "--minimal").stdout.strip(), self.uuids[0])

    def resident_on(self, vm, via=0):
        return self.one(*self.on(via), "vm-param-get", f"uuid={vm}", "param-name=resident-on")

    def test_3_vms_migrate_and_an_evacuated_host_is_left_empty(self):
        vms = [self.one(*self.on(i), "vm-install", f"template={TEMPLATE}", f"new-name-label=traveller {i}", f"sr-uuid={self.sr}")
               for i in (0, 1)]
        for vm in vms:
            self.xe(*self.on(2), "vm-param-set", f"uuid={vm}", f"affinity={self.uuids[1]}")
            self.xe(*self.on(2), "vm-start", f"uuid={vm}")
            self.assertEqual(self.resident_on(vm), self.uuids[1])
        # vm-migrate as xapi's xe takes it: host-uuid= and live=, or host= (a uuid or a name).
        self.xe(*self.over_http(1), "vm-migrate", f"uuid={vms[0]}", f"host-uuid={self.uuids[2]}", "live=true")
        self.assertEqual(self.resident_on(vms[0], via=1), self.uuids[2])
        self.xe(*self.on(0), "vm-migrate", "vm=traveller 1", f"host={self.uuids[2]}")
        self.assertEqual(self.resident_on(vms[1], via=2), self.uuids[2])
        for vm in vms:
            self.assertEqual(self.one(*self.on(0), "vm-param-get", f"uuid={vm}", "param-name=power-state"), "running")
        guests_on = lambda i: self.one(*self.on(0), "vm-list", f"resident-on={self.uuids[i]}", "is-control-domain=false", "--minimal")
        self.assertEqual(sorted(guests_on(2).split(",")), sorted(vms))
        self.xe(*self.over_http(2), "host-evacuate", f"uuid={self.uuids[2]}")
        self.assertEqual(guests_on(2), "")
        for vm in vms:
            self.assertIn(self.resident_on(vm), self.uuids[:2])
            self.assertEqual(self.one(*self.on(2), "vm-param-get", f"uuid={vm}", "param-name=power-state"), "running")
            self.xe(*self.on(0), "vm-shutdown", f"uuid={vm}", "--force")

    def test_4_ha_is_turned_on_and_off(self):
        pool = self.one(*self.on(0), "pool-list", "--minimal")
        ha = lambda i: self.one(*self.on(i), "pool-param-get", f"uuid={pool}", "param-name=ha-enabled")
        self.assertEqual(ha(0), "false")
        # Through a member, over the network: the master does it.
        self.xe(*self.over_http(2), "pool-ha-enable", f"heartbeat-sr-uuids={self.sr}", "ha-config:timeout=10")
        try:
            self.assertEqual([ha(i) for i in range(3)], ["true"] * 3)
            self.assertEqual(self.one(*self.on(1), "pool-param-get", f"uuid={pool}", "param-name=ha-configuration"), "timeout: 10")
            # Its statefile, a VDI on the heartbeat SR.
            statefile = self.one(*self.on(0), "vdi-list", f"sr-uuid={self.sr}", "type=ha_statefile", "--minimal")
            self.assertTrue(statefile)
            # Shown by its uuid, as xapi's xe shows the pool's statefiles.
            self.assertEqual(self.one(*self.on(0), "pool-param-get", f"uuid={pool}", "param-name=ha-statefiles"), statefile)
            self.assertIn("code: HA_IS_ENABLED\n", self.xe_fails(*self.on(0), "pool-eject", f"host-uuid={self.uuids[2]}"))
        finally:
            self.xe(*self.on(0), "pool-ha-disable")
        self.assertEqual([ha(i) for i in range(3)], ["false"] * 3)

    def test_5_the_masters_role_is_handed_to_another_host(self):
        self.xe(*self.over_http(2), "pool-designate-new-master", f"host-uuid={self.uuids[1]}")
        pool = self.one(*self.on(0), "pool-list", "--minimal")

        def everyone_names_host_1():
            """every host naming host 1 master"""
            return all(self.one(*self.on(i), "pool-param-get", f"uuid={pool}", "param-name=master") == self.uuids[1] for i in range(3))
        self.eventually(everyone_names_host_1, limit=20)
        # The old master is a member now: it sends xe to the new one.
        r = self.run_xe(*self.over_http(0), "pool-list", "params=master", "--minimal")
        self.assertEqual((r.returncode, r.stdout.strip(), r.stderr), (0, self.uuids[1], self.followed(0, 1)))

    def test_6_an_ejected_host_leaves_the_pool(self):
        self.xe(*self.over_http(0), "pool-eject", f"host-uuid={self.uuids[2]}")
        for i in (0, 1):
            self.assertEqual(sorted(self.one(*self.on(i), "host-list", "--minimal").split(",")), sorted(self.uuids[:2]))

        def alone():
            """host 2 in a pool of its own"""
            r = self.run_xe(*self.on(2), "host-list", "--minimal")
            return r.returncode == 0 and r.stdout.strip() == self.uuids[2]
        self.eventually(alone)
        self.assertNotEqual(self.one(*self.on(2), "pool-list", "--minimal"), self.one(*self.on(0), "pool-list", "--minimal"))

    def test_7_a_member_is_made_master_when_the_master_is_gone(self):
        # While the master (host 1) answers, it is not replaced by force.
        err = self.xe_fails(*self.on(0), "pool-emergency-transition-to-master")
        self.assertIn("code: OPERATION_NOT_ALLOWED\n", err)
        self.hosts[1].stop()
        # Host 0 alone is no majority of the two: only the emergency makes it master.
        self.xe(*self.on(0), "pool-emergency-transition-to-master")

        def master_of_its_pool():
            """host 0 master, taking writes"""
            r = self.run_xe(*self.on(0), "pool-list", "params=master", "--minimal")
            return r.returncode == 0 and r.stdout.strip() == self.uuids[0]
        self.eventually(master_of_its_pool)
        network = self.one(*self.on(0), "network-create", "name-label=after the emergency")
        self.assertEqual(self.one(*self.on(0), "network-param-get", f"uuid={network}", "param-name=name-label"), "after the emergency")


if __name__ == "__main__":
    unittest.main()
