#!/usr/bin/env python3
"""Storage over the API of a real xapid process, as an operator works: a file SR in a
directory of their own, VDIs made, attached to a VM and snapshotted, sizes checked against
qemu-img's own report, an ISO library, and errors as the seed names them.

Usage: storage_test.py PATH_TO_XAPID"""
import gzip
import io
import json
import os
import subprocess
import re
import tarfile
import tempfile
import time
import unittest
import xmlrpc.client

from daemon_rpc_test import PASSWORD, start_daemon, stop_daemon, with_daemon  # takes PATH_TO_XAPID from argv

GIB = 1 << 30


def qemu_img_info(path):
    return json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", path], check=True,
                                     capture_output=True, text=True).stdout)


class storage(with_daemon):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.library = tempfile.TemporaryDirectory()
        cls.host = cls.x.host.get_all(cls.s)["Value"][0]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.library.cleanup()

    def test_a_file_sr_its_vdis_and_their_sizes(self):
        x, s = self.x, self.s
        self.assertEqual(sorted(self.ok(x.SR.get_supported_types(s))), ["ext", "file", "iso", "nfs"])
        where = tempfile.mkdtemp(dir=self.library.name)
        sr = self.ok(x.SR.create(s, self.host, {"location": where}, "0", "my disks", "", "file", "user", True, {}))
        record = self.ok(x.SR.get_record(s, sr))
        self.assertEqual(record["type"], "file")
        self.assertTrue(record["shared"])
        self.assertEqual(len(record["PBDs"]), 1)
        self.assertTrue(self.ok(x.PBD.get_currently_attached(s, record["PBDs"][0])))
        self.ok(x.SR.set_name_label(s, sr, "renamed"))
        self.assertEqual(self.ok(x.SR.get_name_label(s, sr)), "renamed")

        vdi = self.ok(x.VDI.create(s, {"SR": sr, "name_label": "data", "name_description": "",
                                       "virtual_size": str(5 * GIB), "type": "user", "sharable": False,
                                       "read_only": False, "other_config": {}, "xenstore_data": {},
                                       "sm_config": {}, "tags": []}))
        location = self.ok(x.VDI.get_location(s, vdi))
        info = qemu_img_info(os.path.join(where, location))
        self.assertEqual(info["format"], "qcow2")
        self.assertEqual(int(self.ok(x.VDI.get_virtual_size(s, vdi))), info["virtual-size"])
        self.assertEqual(int(self.ok(x.VDI.get_physical_utilisation(s, vdi))), info["actual-size"])
        self.assertEqual(int(self.ok(x.SR.get_virtual_allocation(s, sr))), 5 * GIB)

        # Attached to a VM that runs, it cannot be destroyed; its snapshot and clone are instant.
        template = self.ok(x.VM.get_by_name_label(s, "Other install media"))[0]
        vm = self.ok(x.VM.clone(s, template, "with data"))
        self.ok(x.VM.provision(s, vm))
        vbd = self.ok(x.VBD.create(s, {"VM": vm, "VDI": vdi, "userdevice": "1", "bootable": False, "mode": "RW",
                                       "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
                                       "qos_algorithm_type": "", "qos_algorithm_params": {}}))
        self.ok(x.VM.start(s, vm, False, False))
        self.assertTrue(self.ok(x.VBD.get_currently_attached(s, vbd)))
        self.assertEqual(x.VDI.destroy(s, vdi)["ErrorDescription"], ["VDI_IN_USE", vdi, "destroy"])
        snap = self.ok(x.VDI.snapshot(s, vdi, {}))
        self.assertTrue(self.ok(x.VDI.get_is_a_snapshot(s, snap)))
        self.assertEqual(self.ok(x.VDI.get_snapshot_of(s, snap)), vdi)
        self.ok(x.VM.hard_shutdown(s, vm))
        self.ok(x.VDI.resize(s, vdi, str(6 * GIB)))
        self.assertEqual(qemu_img_info(os.path.join(where, location))["virtual-size"], 6 * GIB)
        self.assertEqual(x.VDI.resize(s, vdi, str(GIB))["ErrorDescription"][0], "VDI_TOO_SMALL")

        # Removed behind the SR's back, a detached VDI is forgotten by the next scan.
        self.ok(x.VBD.destroy(s, vbd))
        os.remove(os.path.join(where, self.ok(x.VDI.get_location(s, snap))))
        self.ok(x.SR.scan(s, sr))
        self.assertEqual(x.VDI.get_record(s, snap)["ErrorDescription"], ["HANDLE_INVALID", "VDI", snap])
        # As xapi: an SR is destroyed once every PBD of it is unplugged, and its disks are gone.
        pbd = self.ok(x.SR.get_PBDs(s, sr))[0]
        self.assertEqual(x.SR.destroy(s, sr)["ErrorDescription"], ["SR_HAS_PBD", sr])
        self.ok(x.PBD.unplug(s, pbd))
        self.assertEqual(x.SR.destroy(s, sr)["ErrorDescription"], ["SR_NOT_EMPTY"])
        self.ok(x.PBD.plug(s, pbd))
        self.ok(x.VDI.destroy(s, vdi))
        self.ok(x.PBD.unplug(s, pbd))
        self.ok(x.SR.destroy(s, sr))
        self.assertEqual(x.SR.get_record(s, sr)["ErrorDescription"], ["HANDLE_INVALID", "SR", sr])

    def test_an_iso_library_and_a_cd(self):
        x, s = self.x, self.s
        where = tempfile.mkdtemp(dir=self.library.name)
        with open(os.path.join(where, "installer.iso"), "wb") as f:
            f.write(b"\0" * 65536)
        sr = self.ok(x.SR.create(s, self.host, {"location": where}, "0", "ISO library", "", "iso", "iso", True, {}))
        isos = self.ok(x.SR.get_VDIs(s, sr))
        self.assertEqual(len(isos), 1)
        self.assertTrue(self.ok(x.VDI.get_read_only(s, isos[0])))
        template = self.ok(x.VM.get_by_name_label(s, "Other install media"))[0]
        vm = self.ok(x.VM.clone(s, template, "installing"))
        self.ok(x.VM.provision(s, vm))
        cd = self.ok(x.VBD.create(s, {"VM": vm, "VDI": "OpaqueRef:NULL", "userdevice": "3", "bootable": True,
                                      "mode": "RO", "type": "CD", "unpluggable": True, "empty": True,
                                      "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}}))
        self.assertEqual(x.VBD.eject(s, cd)["ErrorDescription"], ["VBD_IS_EMPTY", cd])
        self.ok(x.VBD.insert(s, cd, isos[0]))
        self.assertEqual(x.VBD.insert(s, cd, isos[0])["ErrorDescription"], ["VBD_NOT_EMPTY", cd])
        self.ok(x.VM.start(s, vm, False, False))
        self.ok(x.VM.hard_shutdown(s, vm))
        self.ok(x.VBD.eject(s, cd))
        self.assertEqual(x.SR.create(s, self.host, {}, "0", "x", "", "zfs", "", False, {})["ErrorDescription"],
                         ["SR_UNKNOWN_DRIVER", "zfs"])


class export_import(with_daemon):
    """A VM with two disks out as an XVA with curl, destroyed, and back in: the same bytes and
    settings; broken archives change nothing."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.work.cleanup()

    def http_url(self, path, user="root", password=PASSWORD):
        return f"http://{user}:{password}@127.0.0.1:{self.port}{path}"

    def curl(self, *args):
        r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, text=True)
        body, _, code = r.stdout.rpartition("\n")
        return int(code), body

    def disk_paths(self, vm):
        x, s = self.x, self.s
        paths = []
        for vbd in self.ok(x.VM.get_VBDs(s, vm)):
            vdi = self.ok(x.VBD.get_VDI(s, vbd))
            sr_uuid = self.ok(x.SR.get_uuid(s, self.ok(x.VDI.get_SR(s, vdi))))
            paths.append((self.ok(x.VBD.get_userdevice(s, vbd)),
                          os.path.join(self.dir.name, "sr", sr_uuid, self.ok(x.VDI.get_location(s, vdi)))))
        return sorted(paths)

    def everything(self):
        return (len(self.ok(self.x.VM.get_all(self.s))), len(self.ok(self.x.VDI.get_all(self.s))),
                sorted(os.listdir(os.path.join(self.dir.name, "sr", os.listdir(os.path.join(self.dir.name, "sr"))[0]))))

    def make_vm(self):
        x, s = self.x, self.s
        template = self.ok(x.VM.get_by_name_label(s, "Debian Bookworm 12"))[0]
        vm = self.ok(x.VM.clone(s, template, "travelling VM"))
        self.ok(x.VM.provision(s, vm))
        sr = self.ok(x.pool.get_default_SR(s, self.ok(x.pool.get_all(s))[0]))
        data = self.ok(x.VDI.create(s, {"SR": sr, "name_label": "data", "name_description": "",
                                        "virtual_size": str(2 * GIB), "type": "user", "sharable": False,
                                        "read_only": False, "other_config": {}, "xenstore_data": {},
                                        "sm_config": {}, "tags": []}))
        self.ok(x.VBD.create(s, {"VM": vm, "VDI": data, "userdevice": "1", "bootable": False, "mode": "RW",
                                 "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
                                 "qos_algorithm_type": "", "qos_algorithm_params": {}}))
        self.ok(x.VM.set_memory_limits(s, vm, str(256 << 20), str(768 << 20), str(512 << 20), str(768 << 20)))
        (_, root), (_, second) = self.disk_paths(vm)
        # 80 MiB of data in all: the archive is larger than any API request may be.
        for path, pattern, offset, size in ((root, "0x61", "0", "1M"), (root, "0x62", "5G", "1M"),
                                            (second, "0x63", "1G", "78M")):
            subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} {size}", path], check=True,
                           capture_output=True)
        return vm

    def test_export_destroy_import_gives_the_same_disks_and_settings(self):
        x, s = self.x, self.s
        vm = self.make_vm()
        uuid = self.ok(x.VM.get_uuid(s, vm))
        saved = []
        for device, path in self.disk_paths(vm):
            copy = os.path.join(self.work.name, f"disk{device}.qcow2")
            subprocess.run(["qemu-img", "convert", "-O", "qcow2", path, copy], check=True)
            saved.append((device, copy))
        xva = os.path.join(self.work.name, "vm.xva")
        code, _ = self.curl("-o", xva, self.http_url(f"/export?uuid={uuid}"))
        self.assertEqual(code, 200)
        names = subprocess.run(["tar", "tf", xva], check=True, capture_output=True, text=True).stdout.split()
        self.assertEqual(names[0], "ova.xml")
        self.assertGreater(os.path.getsize(xva), 64 << 20)
        self.assertTrue(all(n.endswith(".checksum") for n in names[2::2]))

        for vbd in self.ok(x.VM.get_VBDs(s, vm)):
            vdi = self.ok(x.VBD.get_VDI(s, vbd))
            self.ok(x.VBD.destroy(s, vbd))
            self.ok(x.VDI.destroy(s, vdi))
        self.ok(x.VM.destroy(s, vm))

        task = self.ok(x.task.create(s, "import", ""))
        code, body = self.curl("-T", xva, self.http_url(f"/import?session_id={s}&task_id={task}", "", ""))
        self.assertEqual(code, 200, body)
        new_vm = body.strip()
        self.assertEqual(self.ok(x.task.get_status(s, task)), "success")
        self.assertIn(new_vm, self.ok(x.task.get_result(s, task)))
        record = self.ok(x.VM.get_record(s, new_vm))
        self.assertEqual(record["name_label"], "travelling VM")
        self.assertEqual(record["memory_static_max"], str(768 << 20))
        self.assertEqual(record["memory_dynamic_min"], str(512 << 20))
        self.assertEqual(record["power_state"], "Halted")
        self.assertNotEqual(record["uuid"], uuid)
        imported = self.disk_paths(new_vm)
        self.assertEqual([d for d, _ in imported], [d for d, _ in saved])
        for (_, got), (_, want) in zip(imported, saved):
            r = subprocess.run(["qemu-img", "compare", "-U", got, want], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.ok(x.VM.start(s, new_vm, False, False))
        self.ok(x.VM.hard_shutdown(s, new_vm))
        # A running VM is not exported.
        self.ok(x.VM.start(s, new_vm, False, False))
        code, body = self.curl("-o", os.devnull, self.http_url(f"/export?uuid={record['uuid']}"))
        self.assertEqual(code, 409)
        self.ok(x.VM.hard_shutdown(s, new_vm))

    def test_metadata_alone_moves_a_vm_onto_disks_already_here(self):
        x, s = self.x, self.s
        vm = self.make_vm()
        disks = sorted(self.ok(x.VBD.get_VDI(s, b)) for b in self.ok(x.VM.get_VBDs(s, vm)))
        meta = os.path.join(self.work.name, "meta.xva")
        code, _ = self.curl("-o", meta, self.http_url(f"/export_metadata?ref={vm}"))
        self.assertEqual(code, 200)
        self.assertEqual(subprocess.run(["tar", "tf", meta], check=True, capture_output=True, text=True).stdout.split(),
                         ["ova.xml"])
        self.ok(x.VM.destroy(s, vm))  # its disks stay
        code, body = self.curl("-T", meta, self.http_url("/import_metadata"))
        self.assertEqual(code, 200, body)
        new_vm = body.strip()
        self.assertEqual(sorted(self.ok(x.VBD.get_VDI(s, b)) for b in self.ok(x.VM.get_VBDs(s, new_vm))), disks)
        self.ok(x.VM.start(s, new_vm, False, False))
        self.ok(x.VM.hard_shutdown(s, new_vm))
        for vbd in self.ok(x.VM.get_VBDs(s, new_vm)):
            vdi = self.ok(x.VBD.get_VDI(s, vbd))
            self.ok(x.VBD.destroy(s, vbd))
            self.ok(x.VDI.destroy(s, vdi))
        code, body = self.curl("-T", meta, self.http_url("/import_metadata"))
        self.assertEqual((code, body.strip()), (404, "IMPORT_ERROR_ATTACHED_DISKS_NOT_FOUND"))

    def test_the_seeds_legacy_xva_imports(self):
        """The seed's section 3.5.1 example: an <appliance> with gzipped 1e9-byte chunks."""
        x, s = self.x, self.s
        root = os.path.join(self.work.name, "very simple Debian VM")
        os.makedirs(os.path.join(root, "sda"))
        os.makedirs(os.path.join(root, "sdb"))
        with open(os.path.join(root, "ova.xml"), "w") as f:
            f.write('''<?xml version="1.0" ?>
<appliance version="0.1">
  <vm name="vm">
    <label>very simple Debian VM</label>
    <shortdesc>the description field can contain any valid UTF-8</shortdesc>
    <config mem_set="536870912" vcpus="1"/>
    <hacks is_hvm="false" kernel_boot_cmdline="root=/dev/sda1 ro "></hacks>
    <vbd device="sda" function="root" mode="w" vdi="vdi_sda"/>
    <vbd device="sdb" function="swap" mode="w" vdi="vdi_sdb"/>
  </vm>
  <vdi name="vdi_sda" size="33554432" source="file://sda" type="dir-gzipped-chunks"/>
  <vdi name="vdi_sdb" size="16777216" source="file://sdb" type="dir-gzipped-chunks"/>
</appliance>''')
        with gzip.open(os.path.join(root, "sda", "chunk-000000000.gz"), "wb") as f:
            f.write(b"\x61" * (4 << 20) + b"\0" * (8 << 20) + b"\x62" * (1 << 20))
        with gzip.open(os.path.join(root, "sdb", "chunk-000000000.gz"), "wb") as f:
            f.write(b"\x63" * (1 << 20))
        xva = os.path.join(self.work.name, "legacy.xva")
        with tarfile.open(xva, "w") as tar:
            for name in ("ova.xml", "sda/chunk-000000000.gz", "sdb/chunk-000000000.gz"):
                tar.add(os.path.join(root, name), arcname=name)
        code, body = self.curl("-T", xva, self.http_url("/import"))
        self.assertEqual(code, 200, body)
        vm = body.strip()
        record = self.ok(x.VM.get_record(s, vm))
        self.assertEqual(record["name_label"], "very simple Debian VM")
        self.assertEqual(record["memory_static_max"], "536870912")
        self.assertEqual(record["VCPUs_at_startup"], "1")
        self.assertEqual(record["PV_bootloader"], "pygrub")
        self.assertEqual(record["PV_args"], "root=/dev/sda1 ro ")
        (dev0, sda), (dev1, sdb) = self.disk_paths(vm)
        self.assertEqual((dev0, dev1), ("0", "1"))
        self.assertEqual(json.loads(subprocess.run(["qemu-img", "info", "--output=json", sda], check=True,
                                                   capture_output=True, text=True).stdout)["virtual-size"], 32 << 20)
        for path, pattern, offset in ((sda, "0x61", "0"), (sda, "0", "6M"), (sda, "0x62", "12M"), (sdb, "0x63", "0")):
            r = subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"read -P {pattern} {offset} 64k", path],
                               capture_output=True, text=True)
            self.assertNotIn("Pattern verification failed", r.stdout)
        self.ok(x.VM.start(s, vm, False, False))
        self.ok(x.VM.hard_shutdown(s, vm))

    def test_xxhash_checksums_of_newer_xenservers_are_checked(self):
        import ctypes
        xxh = ctypes.CDLL("libxxhash.so.0")
        xxh.XXH64.restype = ctypes.c_uint64
        xxh.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
        x, s = self.x, self.s
        vm = self.make_vm()
        xva = os.path.join(self.work.name, "sha1.xva")
        code, _ = self.curl("-o", xva, self.http_url(f"/export?ref={vm}"))
        self.assertEqual(code, 200)

        def repack(path, corrupt):
            # The same archive with an XXH64 beside each chunk instead of its SHA-1.
            with tarfile.open(xva) as src, tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as dst:
                for member in src.getmembers():
                    if member.name.endswith(".checksum"):
                        continue
                    data = src.extractfile(member).read()
                    dst.addfile(member, io.BytesIO(data))
                    if member.name != "ova.xml":
                        digest = "%016X" % xxh.XXH64(data, len(data), 0)
                        if corrupt:
                            digest = "0" * 16
                        info = tarfile.TarInfo(member.name + ".xxhash")
                        info.size = len(digest)
                        dst.addfile(info, io.BytesIO(digest.encode()))

        good, bad = os.path.join(self.work.name, "xxh.xva"), os.path.join(self.work.name, "xxh-bad.xva")
        repack(good, False)
        repack(bad, True)
        code, body = self.curl("-T", bad, self.http_url("/import"))
        self.assertEqual((code, body.strip()), (400, "IMPORT_ERROR_SOME_CHECKSUMS_FAILED"))
        code, body = self.curl("-T", good, self.http_url("/import"))
        self.assertEqual(code, 200, body)
        self.assertEqual(self.ok(x.VM.get_name_label(s, body.strip())), "travelling VM")

    def test_a_cancelled_transfer_stops_and_leaves_nothing(self):
        x, s = self.x, self.s
        vm = self.make_vm()
        xva = os.path.join(self.work.name, "slow.xva")
        code, _ = self.curl("-o", xva, self.http_url(f"/export?ref={vm}"))
        self.assertEqual(code, 200)
        before = self.everything()
        for what, args in (("import", ["--limit-rate", "4M", "-T", xva]),
                           ("export", ["--limit-rate", "4M", "-o", os.devnull])):
            task = self.ok(x.task.create(s, what, ""))
            path = f"/import?session_id={s}&task_id={task}" if what == "import" else f"/export?session_id={s}&task_id={task}&ref={vm}"
            transfer = subprocess.Popen(["curl", "-s", "-o", os.devnull, *args, self.http_url(path, "", "")])
            deadline = time.monotonic() + 20
            while self.ok(x.task.get_progress(s, task)) in ("0", "0.0", 0, 0.0) and time.monotonic() < deadline:
                time.sleep(0.1)
            self.ok(x.task.cancel(s, task))
            transfer.wait(timeout=60)
            while self.ok(x.task.get_status(s, task)) in ("pending", "cancelling") and time.monotonic() < deadline + 30:
                time.sleep(0.1)
            self.assertEqual(self.ok(x.task.get_status(s, task)), "cancelled", what)
            self.assertEqual(self.ok(x.task.get_error_info(s, task)), ["TASK_CANCELLED", task], what)
        self.assertEqual(self.everything(), before)
        self.assertEqual(self.ok(x.VM.get_current_operations(s, vm)), {})  # the export let go of the VM

    def test_broken_archives_and_bad_credentials_change_nothing(self):
        x, s = self.x, self.s
        vm = self.make_vm()
        xva = os.path.join(self.work.name, "good.xva")
        code, _ = self.curl("-o", xva, self.http_url(f"/export?ref={vm}"))
        self.assertEqual(code, 200)
        data = open(xva, "rb").read()
        before = self.everything()

        cut = os.path.join(self.work.name, "cut.xva")
        open(cut, "wb").write(data[: len(data) // 2])
        code, body = self.curl("-T", cut, self.http_url("/import"))
        self.assertEqual((code, body.split()[0]), (400, "IMPORT_ERROR_PREMATURE_EOF"))

        # A byte of a chunk changed: its checksum no longer matches.
        names = subprocess.run(["tar", "tvf", xva], check=True, capture_output=True, text=True).stdout
        bad = bytearray(data)
        chunk_at = data.index(b"ustar", data.index(b"ustar") + 1) - 257 + 512  # the first chunk's data
        bad[chunk_at + 100] ^= 0xFF
        broken = os.path.join(self.work.name, "bad.xva")
        open(broken, "wb").write(bad)
        code, body = self.curl("-T", broken, self.http_url("/import"))
        self.assertEqual((code, body.strip()), (400, "IMPORT_ERROR_SOME_CHECKSUMS_FAILED"), names[:200])

        garbage = os.path.join(self.work.name, "garbage.xva")
        open(garbage, "wb").write(os.urandom(4096))
        code, body = self.curl("-T", garbage, self.http_url("/import"))
        self.assertEqual((code, body.split()[0]), (400, "IMPORT_ERROR"))

        code, body = self.curl("-T", xva, self.http_url("/import", "root", "wrong"))
        self.assertEqual((code, body.strip()), (401, "SESSION_AUTHENTICATION_FAILED"))
        code, body = self.curl("-o", os.devnull, self.http_url("/export?uuid=nope"))
        self.assertEqual(code, 404)
        self.assertEqual(self.everything(), before)


    def repack(self, source, path, *, drop=lambda m: False, rename=lambda n: n, ova=lambda x: x, extra=()):
        """`source` again as `path`: members for which drop() holds left out, names through
        rename(), ova.xml through ova(), and the (TarInfo, bytes) of `extra` appended."""
        with tarfile.open(source) as src, tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as dst:
            for member in src.getmembers():
                if drop(member):
                    continue
                data = src.extractfile(member).read()
                if member.name == "ova.xml":
                    data = ova(data.decode()).encode()
                member.name = rename(member.name)
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
            for info, data in extra:
                dst.addfile(info, io.BytesIO(data))
        return path

    def test_hostile_archives_are_refused_and_change_nothing(self):
        """An archive asks for nothing a host cannot give and hides nothing: chunks without their
        checksums, links and FIFOs, a chunk index whose offset would overflow (it wrapped to 0),
        a VM with 100,000 vCPUs or negative memory, 300 disks: each is refused (400) with
        nothing left behind."""
        vm = self.make_vm()
        xva = os.path.join(self.work.name, "hostile-source.xva")
        code, _ = self.curl("-o", xva, self.http_url(f"/export?ref={vm}"))
        self.assertEqual(code, 200)
        before = self.everything()
        at = lambda name: os.path.join(self.work.name, name)

        unchecked = self.repack(xva, at("unchecked.xva"), drop=lambda m: m.name.endswith(".checksum"))
        code, body = self.curl("-T", unchecked, self.http_url("/import"))
        self.assertEqual((code, body.strip()), (400, "IMPORT_ERROR_SOME_CHECKSUMS_FAILED"))

        for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE):
            info = tarfile.TarInfo("Ref:9/00000000")
            info.type = kind
            info.linkname = "/etc/shadow"
            linked = self.repack(xva, at(f"link-{kind!r}.xva"), extra=[(info, b"")])
            code, body = self.curl("-T", linked, self.http_url("/import"))
            self.assertEqual((code, body.split()[0]), (400, "IMPORT_ERROR"), (kind, body))

        def far(name):  # chunk 0 of each disk as chunk 2^44: 2^44 MiB wrapped to offset 0 before
            head, _, leaf = name.rpartition("/")
            return f"{head}/{2 ** 44}{leaf[8:]}" if head and leaf.startswith("00000000") else name
        wrapped = self.repack(xva, at("wrapped.xva"), rename=far)
        code, body = self.curl("-T", wrapped, self.http_url("/import"))
        self.assertEqual((code, body.split()[0]), (400, "IMPORT_ERROR"), body)

        def edit(change):  # ova.xml through a change of its objects, as Python values
            def apply(xml):
                (meta,), _ = xmlrpc.client.loads("<methodResponse><params><param>" + xml + "</param></params></methodResponse>")
                change(meta["objects"])
                out = xmlrpc.client.dumps((meta,), methodresponse=True)
                return out[out.index("<value>"):out.rindex("</param>")]
            return apply

        def setting(name, value):
            def change(objects):
                for o in objects:
                    if o["class"] == "VM":
                        o["snapshot"][name] = value
            return edit(change)
        for name, value in (("VCPUs_max", "100000"), ("memory_static_max", "-1"), ("memory_dynamic_min", "-1")):
            odd = self.repack(xva, at(f"odd-{name}.xva"), ova=setting(name, value))
            code, body = self.curl("-T", odd, self.http_url("/import"))
            self.assertEqual((code, body.split()[0]), (400, "IMPORT_ERROR"), (name, body))

        def more_disks(objects):
            vdi = next(o for o in objects if o["class"] == "VDI")
            objects.extend(dict(vdi, id=f"Ref:x{i}") for i in range(300))
        many_disks = edit(more_disks)
        crowded = self.repack(xva, at("crowded.xva"), ova=many_disks)
        code, body = self.curl("-T", crowded, self.http_url("/import"))
        self.assertEqual((code, body.split()[0]), (400, "IMPORT_ERROR"), body[:200])
        self.assertEqual(self.everything(), before)


class full_sr(with_daemon):
    """An SR on a small filesystem (a 48 MiB tmpfs the daemon gets in a mount namespace of its
    own) fills up: a copy into it is refused up front, an import that runs out of space fails
    cleanly, and nothing is left behind."""

    @classmethod
    def setUpClass(cls):
        if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
            raise unittest.SkipTest("this machine allows no mount namespaces (unshare -rm), so no small disk")
        cls.dir = tempfile.TemporaryDirectory()
        cls.small = os.path.join(cls.dir.name, "small")
        os.makedirs(cls.small)
        mount = f"mount -t tmpfs -o size=48m tmpfs '{cls.small}' && exec \"$@\""
        cls.connect(*start_daemon(os.path.join(cls.dir.name, "data"),
                                  prefix=("unshare", "-rm", "sh", "-c", mount, "sh"))[:2])

    def test_a_full_sr_refuses_and_keeps_nothing(self):
        x, s = self.x, self.s
        host = self.ok(x.host.get_all(s))[0]
        small = self.ok(x.SR.create(s, host, {"location": self.small}, "0", "small", "", "file", "user", False, {}))
        self.assertLess(int(self.ok(x.SR.get_physical_size(s, small))), 64 << 20)
        local = self.ok(x.pool.get_default_SR(s, self.ok(x.pool.get_all(s))[0]))
        big = self.ok(x.VDI.create(s, {"SR": local, "name_label": "big", "name_description": "",
                                       "virtual_size": str(GIB), "type": "user", "sharable": False,
                                       "read_only": False, "other_config": {}, "xenstore_data": {}, "sm_config": {},
                                       "tags": []}))
        path = os.path.join(self.dir.name, "data", "sr", self.ok(x.SR.get_uuid(s, local)), self.ok(x.VDI.get_location(s, big)))
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 96M", path], check=True, capture_output=True)
        answer = x.VDI.copy(s, big, small, "OpaqueRef:NULL", "OpaqueRef:NULL")
        self.assertEqual(answer["ErrorDescription"][0], "SR_FULL", answer)

        # An import into it runs out of space part way.
        template = self.ok(x.VM.get_by_name_label(s, "Other install media"))[0]
        vm = self.ok(x.VM.clone(s, template, "too big"))
        self.ok(x.VBD.create(s, {"VM": vm, "VDI": big, "userdevice": "0", "bootable": True, "mode": "RW",
                                 "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
                                 "qos_algorithm_type": "", "qos_algorithm_params": {}}))
        xva = os.path.join(self.dir.name, "big.xva")
        uuid = self.ok(x.VM.get_uuid(s, vm))
        r = subprocess.run(["curl", "-s", "-o", xva, "-w", "%{http_code}",
                            f"http://root:{PASSWORD}@127.0.0.1:{self.port}/export?uuid={uuid}"],
                           capture_output=True, text=True)
        self.assertEqual(r.stdout, "200")
        vms_before = len(self.ok(x.VM.get_all(s)))
        r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-T", xva,
                            f"http://root:{PASSWORD}@127.0.0.1:{self.port}/import?sr_id={small}"],
                           capture_output=True, text=True)
        body, _, code = r.stdout.rpartition("\n")
        self.assertEqual((code, body.split()[0]), ("507", "SR_FULL"), r.stdout)
        self.assertEqual(len(self.ok(x.VM.get_all(s))), vms_before)
        self.ok(x.SR.scan(s, small))
        self.assertEqual(self.ok(x.SR.get_VDIs(s, small)), [])
        self.assertLess(int(self.ok(x.SR.get_physical_utilisation(s, small))), 1 << 20)  # no leftovers


if __name__ == "__main__":
    unittest.main(verbosity=2)
