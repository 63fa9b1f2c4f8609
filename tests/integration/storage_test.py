#!/usr/bin/env python3
"""Storage over the API of a real xapid process, as an operator works: a file SR in a
directory of their own, VDIs made, attached to a VM and snapshotted, sizes checked against
qemu-img's own report, an ISO library, and errors as the seed names them.

Usage: storage_test.py PATH_TO_XAPID"""
import json
import os
import subprocess
import tempfile
import unittest
import xmlrpc.client

from daemon_rpc_test import PASSWORD, start_daemon, stop_daemon  # takes PATH_TO_XAPID from argv

GIB = 1 << 30


def qemu_img_info(path):
    return json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", path], check=True,
                                     capture_output=True, text=True).stdout)


class storage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.library = tempfile.TemporaryDirectory()
        cls.proc, cls.port, _ = start_daemon(cls.dir.name)
        cls.x = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{cls.port}")
        cls.s = cls.x.session.login_with_password("root", PASSWORD, "1.0", "storage")["Value"]
        cls.host = cls.x.host.get_all(cls.s)["Value"][0]

    @classmethod
    def tearDownClass(cls):
        stop_daemon(cls.proc)
        cls.dir.cleanup()
        cls.library.cleanup()

    def ok(self, answer):
        self.assertEqual(answer["Status"], "Success", answer)
        return answer["Value"]

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
        self.assertEqual(x.SR.destroy(s, sr)["ErrorDescription"], ["SR_NOT_EMPTY"])
        self.ok(x.VDI.destroy(s, vdi))
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
