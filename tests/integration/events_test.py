#!/usr/bin/env python3
"""Shared event answers on a real daemon: watchers that wait on event.from when a commit comes
are answered together, one answer per (subscription, token, view of the records) written once
per format. Each must get, byte for byte, the answer it would have got alone — whatever the
classes, token, user, role and format of the watchers beside it — and a watcher whose session
ended meanwhile still gets SESSION_INVALID.

Usage: events_test.py PATH_TO_XAPID"""
import json
import socket
import time
import unittest
import xmlrpc.client

from xapid_support import http_request, needs_pam_users, read_answer, role_daemon  # takes PATH_TO_XAPID from argv


def xml_call(method, params):
    body = xmlrpc.client.dumps(tuple(params), methodname=method).encode()
    return http_request("POST", "/", body, b"Content-Type: text/xml\r\n")


def json_call(method, params, ident, version):
    call = {"method": method, "params": params, "id": ident}
    if version == "2.0":
        call["jsonrpc"] = "2.0"
    return http_request("POST", "/jsonrpc", json.dumps(call).encode(), b"Content-Type: application/json\r\n")


class watcher:
    """One event.from call on a connection of its own: who (a session), what (classes), from
    where (a token) and how (xml, json 1.0 or json 2.0, with its id)."""

    def __init__(self, port, name, session, classes, token, how="xml", ident=1):
        self.port, self.name, self.session, self.classes, self.token, self.how, self.ident = (
            port, name, session, classes, token, how, ident)

    def request(self):
        params = [self.session, self.classes, self.token, 30.0]
        if self.how == "xml":
            return xml_call("event.from", params)
        return json_call("event.from", params, self.ident, self.how.split()[1])

    def send(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.settimeout(30)
        self.sock.sendall(self.request())
        return self

    def answer(self):
        """The body of the answer to what was sent."""
        status, head, body, _ = read_answer(self.sock)
        self.sock.close()
        assert status == 200, (self.name, status, body)
        return body

    def alone(self):
        """The same call again, by itself."""
        return self.send().answer()


@needs_pam_users
class shared_event_answers(role_daemon):
    """A read-only user (`reader`, with two sessions) and a pool admin (`admin`) beside root."""

    users = (("reader", "read-only"), ("admin", "pool-admin"))

    def test_watchers_answered_together_get_what_each_would_get_alone(self):
        x, s = self.x, self.s
        reader_2 = self.ok(self.reader.login(x, "second"))
        # A task's session shows only to the user who made it (root here); the others see NULL.
        older = str(self.ok(x.event.get_current_id(s)))  # before the task was made
        task = self.ok(x.task.create(s, "shared answers", ""))
        token = self.ok(getattr(x.event, "from")(s, ["task"], older, 0.0))["token"]
        for attempt in range(5):
            time.sleep(1.01 - time.time() % 1)  # at the start of a second: the attempt fits in it
            began = int(time.time())
            watchers = [
                watcher(self.port, "root xml", s, ["task"], token),
                watcher(self.port, "root xml again", s, ["task"], token),
                watcher(self.port, "root json 2.0", s, ["task"], token, "json 2.0", 7),
                watcher(self.port, "root json 1.0", s, ["task"], token, "json 1.0", "one"),
                watcher(self.port, "reader xml", self.reader_s, ["task"], token),
                watcher(self.port, "reader's second session", reader_2, ["task"], token),
                watcher(self.port, "reader json", self.reader_s, ["task"], token, "json 2.0", 3),
                watcher(self.port, "admin xml", self.admin_s, ["task"], token),
                watcher(self.port, "reader, more classes", self.reader_s, ["vm", "task", "pool"], token),
                watcher(self.port, "reader, one object", self.reader_s, ["task/" + task], token),
                watcher(self.port, "root, everything", s, ["*"], token),
                watcher(self.port, "reader, everything", self.reader_s, ["*"], token),
            ]
            for w in watchers:
                w.send()
            time.sleep(0.2)  # they park (a watcher still looking would get its answer alone)
            self.ok(x.task.add_to_other_config(s, task, f"attempt {attempt}", "made"))
            shared = {w.name: w.answer() for w in watchers}
            # One from an older token, sent after the change: it has more to see and looks alone.
            late = watcher(self.port, "root, older token", s, ["task"], older)
            shared[late.name] = late.send().answer()
            alone = {w.name: w.alone() for w in watchers + [late]}
            if int(time.time()) == began:
                break  # every answer carries the same second in its events' timestamps
        for name in shared:
            self.assertEqual(shared[name], alone[name], name)
            self.assertIn(b"attempt", shared[name], name)
        # The answers differ where the watchers do, so sharing had something to get wrong.
        self.assertIn(s.encode(), shared["root xml"])
        self.assertNotIn(s.encode(), shared["reader xml"])
        self.assertNotIn(s.encode(), shared["admin xml"])
        self.assertEqual(shared["root xml"], shared["root xml again"])
        self.assertEqual(shared["reader xml"], shared["reader's second session"])
        self.assertTrue(shared["root json 2.0"].startswith(b'{"jsonrpc":"2.0","result":'))
        self.assertTrue(shared["root json 1.0"].endswith(b',"error":null,"id":"one"}'))
        self.assertEqual(json.loads(shared["root json 2.0"])["result"], json.loads(shared["root json 1.0"])["result"])
        self.assertNotEqual(shared["reader, more classes"], shared["reader xml"])  # its valid_ref_counts
        self.assertIn(b"<name>operation</name><value><string>add</string>", shared["root, older token"])

    def test_a_watcher_whose_session_ended_meanwhile_is_told_so(self):
        x, s = self.x, self.s
        doomed = self.ok(self.reader.login(x, "doomed"))
        token = str(self.ok(x.event.get_current_id(s)))
        watchers = [watcher(self.port, "doomed", doomed, ["pool"], token).send(),
                    watcher(self.port, "reader", self.reader_s, ["pool"], token).send(),
                    watcher(self.port, "doomed json", doomed, ["pool"], token, "json 2.0", 5).send()]
        time.sleep(0.2)  # they park
        self.ok(x.session.logout(doomed))  # a commit: it wakes them all
        doomed_xml, doomed_json = watchers[0].answer(), watchers[2].answer()
        self.assertEqual(xmlrpc.client.loads(doomed_xml)[0][0]["ErrorDescription"], ["SESSION_INVALID", doomed])
        self.assertEqual(json.loads(doomed_json)["error"]["message"], "SESSION_INVALID")
        # The reader's session is fine: the logout was nothing it subscribed to, so it waits on.
        self.ok(x.pool.set_name_description(s, self.ok(x.pool.get_all(s))[0], "after the logout"))
        reader = xmlrpc.client.loads(watchers[1].answer())[0][0]
        self.assertEqual([e["snapshot"]["name_description"] for e in self.ok(reader)["events"]], ["after the logout"])

if __name__ == "__main__":
    unittest.main()
