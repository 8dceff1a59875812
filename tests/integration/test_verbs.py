#!/usr/bin/env python3
"""Every verb of PROTOCOL.md over a TCP line client: exact replies, error texts, counting.

One daemon for the whole module. Tests that look at room membership use a room of their
own (see ROOMS) so clients closed by an earlier test cannot show up in them.
"""

import re

from harness import (RoomdTestCase, bye_line, err_line, main, now_ms, ok_line, welcome_line)

# decision: interior spaces of a starting_rooms entry are kept ("a b" is one room).
ROOMS = ["defaultRoom", "lobby", "other", "a b", "viewRoom", "jsonRoom", "sayRoom"]
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{12}$")


class Verbs(RoomdTestCase):

    @classmethod
    def setUpClass(cls):
        cls.start_class_server(starting_rooms=",".join(ROOMS))

    # -- welcome and counting -----------------------------------------------------------------

    def test_welcome_exact_bytes(self):
        c = self.client()
        self.assertLine(c.welcome_raw, b'{"welcome":"Hello! Welcome to the roomd api",'
                                       b'"room":"defaultRoom","context":"api"}\r\n')
        self.assertLine(c.welcome_raw, welcome_line("defaultRoom"))

    def test_message_count_numbering(self):
        c = self.client()
        # Literal numbers on purpose: the client-side counter is not trusted here.
        self.assertLine(c.request_raw("paramsView"), ok_line(1, {}))
        c.send_raw(b"\n\r\n\n")  # empty lines: no reply, not counted
        self.assertLine(c.request_raw(b"paramsView\r"), ok_line(2, {}))  # CRLF
        self.assertLine(c.request_raw(b"paramsView"), ok_line(3, {}))  # LF
        self.assertLine(c.request_raw('{"event":"paramsView"}'), ok_line(4, {}))
        self.assertLine(c.request_raw("noSuchVerb"),
                        err_line("verb not found or not allowed", 5))
        c.assert_silent(match={"context": "response"})

    def test_crlf_and_lf_keep_every_character(self):
        c = self.client()
        self.assertOK(c, b"paramAdd crlf=abc\r", None)
        self.assertOK(c, b"paramAdd lf=abc", None)
        self.assertOK(c, "paramView crlf", "abc")  # the \r was dropped
        self.assertOK(c, "paramView lf", "abc")  # nothing lost after a bare LF

    def test_pipelined_requests_each_get_their_count(self):
        c = self.client()
        c.send_raw(b"paramsView\nparamAdd a=1\r\nparamView a\nroomView\nfoo\n", counted=5)
        replies = [c.expect({"context": "response"}) for _ in range(5)]
        # Replies may be reordered; each carries its own request's number.
        self.assertEqual(sorted(r["messageCount"] for r in replies), [1, 2, 3, 4, 5])
        by_count = {r["messageCount"]: r for r in replies}
        self.assertJson(by_count[3]["data"], "1")
        self.assertEqual(by_count[5]["error"], "verb not found or not allowed")

    # -- reply shapes, byte for byte ----------------------------------------------------------

    def test_raw_success_and_error_lines(self):
        c = self.client()
        self.assertLine(c.request_raw("roomLeave"),
                        b'{"status":"OK","context":"response","data":true,"messageCount":1}\r\n')
        self.assertLine(c.request_raw("roomLeave"),
                        b'{"status":"OK","context":"response","data":false,"messageCount":2}\r\n')
        self.assertLine(c.request_raw("roomView"),
                        b'{"status":"connection not in a room","context":"response",'
                        b'"error":"connection not in a room","data":false,"messageCount":3}\r\n')
        self.assertLine(c.request_raw("paramAdd url=http://example.com/a/b"),
                        b'{"status":"OK","context":"response","data":null,"messageCount":4}\r\n')
        # Slashes are not escaped.
        self.assertLine(c.request_raw("paramView url"),
                        b'{"status":"OK","context":"response","data":"http://example.com/a/b",'
                        b'"messageCount":5}\r\n')
        self.assertLine(c.request_raw("paramView unset"),
                        b'{"status":"OK","context":"response","messageCount":6}\r\n')

    def test_unknown_verb(self):
        c = self.client()
        self.assertError(c, "fly me to the moon", "verb not found or not allowed")
        # decision: verbs are case-sensitive.
        self.assertError(c, "roomchange lobby", "verb not found or not allowed")
        self.assertOK(c, "paramsView", {})  # still alive

    # -- rooms --------------------------------------------------------------------------------

    def test_room_change(self):
        c = self.client()
        self.assertError(c, "roomChange", "room is required")
        self.assertError(c, "roomChange nowhere", "room does not exist")
        self.assertError(c, "roomChange defaultRoom", "connection already in this room")
        self.assertOK(c, "roomChange lobby", True)
        self.assertEqual(c.details()["room"], "lobby")
        self.assertOK(c, "roomChange a b", True)  # ROOM is the rest of the line
        self.assertEqual(c.details()["room"], "a b")
        self.assertError(c, "roomChange a b", "connection already in this room")
        # decision: an empty ROOM after the space is "room is required", not a bad name.
        self.assertError(c, "roomChange ", "room is required")
        self.assertError(c, '{"event":"roomChange","room":""}', "room is required")
        self.assertError(c, "listenToRoom ", "room is required")
        self.assertError(c, "silenceRoom ", "room is required")
        # Words are separated by single spaces: the room here is " lobby".
        self.assertError(c, "roomChange  lobby", "room does not exist")

    def test_room_leave(self):
        c = self.client()
        self.assertOK(c, "roomLeave", True)
        self.assertIsNone(c.details()["room"])
        self.assertOK(c, "roomLeave", False)
        self.assertError(c, "roomView", "connection not in a room")
        self.assertOK(c, "roomChange lobby", True)
        self.assertOK(c, "roomLeave", True)

    def test_room_view(self):
        a = self.client()
        b = self.client()
        self.assertError(a, "roomChange", "room is required")
        before = now_ms()
        self.assertOK(a, "roomChange viewRoom", True)
        self.assertOK(b, "roomChange viewRoom", True)
        after = now_ms()
        reply = a.request("roomView")
        self.assertEqual(list(reply), ["status", "context", "data", "messageCount"])
        self.assertEqual((reply["status"], reply["messageCount"]), ("OK", a.count))
        data = reply["data"]
        self.assertEqual(list(data), ["room", "members", "membersCount"])
        self.assertEqual(data["room"], "viewRoom")
        self.assertEqual(data["membersCount"], 2)
        self.assertEqual(sorted(data["members"]), sorted([a.id, b.id]))
        for member_id, member in data["members"].items():
            self.assertEqual(sorted(member), ["id", "joinedAt"])
            self.assertEqual(member["id"], member_id)
            self.assertIsInstance(member["joinedAt"], int)
            self.assertTrue(before - 1000 <= member["joinedAt"] <= after + 1000, member)
        self.assertOK(b, "roomLeave", True)
        data = a.request("roomView")["data"]
        self.assertEqual((list(data["members"]), data["membersCount"]), ([a.id], 1))

    def test_listen_and_silence(self):
        c = self.client()
        self.assertError(c, "listenToRoom", "room is required")
        self.assertError(c, "listenToRoom nowhere", "room does not exist")
        self.assertError(c, "silenceRoom", "room is required")
        self.assertError(c, "silenceRoom lobby", "connection not listening to this room")
        self.assertOK(c, "listenToRoom lobby", True)
        self.assertError(c, "listenToRoom lobby", "connection already listening to this room")
        self.assertOK(c, "listenToRoom a b", True)
        details = c.details()
        self.assertEqual(details["room"], "defaultRoom")  # listening is not joining
        # decision: listeningRooms order is not part of the contract; compared sorted.
        self.assertEqual(sorted(details["listeningRooms"]), ["a b", "lobby"])
        self.assertOK(c, "silenceRoom lobby", True)
        self.assertError(c, "silenceRoom lobby", "connection not listening to this room")
        self.assertEqual(c.details()["listeningRooms"], ["a b"])
        self.assertOK(c, "silenceRoom a b", True)
        self.assertEqual(c.details()["listeningRooms"], [])

    def test_say(self):
        a = self.client()
        b = self.client()
        self.assertOK(a, "roomChange sayRoom", True)
        self.assertOK(b, "roomChange sayRoom", True)
        self.assertError(a, "say", "message is required")
        self.assertOK(a, "say hello  there ")  # success has no data key
        msg = b.expect({"message": "hello  there "})
        self.assertEqual((msg["room"], msg["from"], msg["context"]), ("sayRoom", a.id, "user"))
        self.assertOK(a, "roomLeave", True)
        self.assertError(a, "say hello", "connection not in a room")

    # -- detailsView --------------------------------------------------------------------------

    def test_details_view(self):
        before = now_ms()
        c = self.client()
        reply = c.request("detailsView")
        self.assertEqual(list(reply), ["status", "context", "data", "messageCount"])
        self.assertEqual((reply["status"], reply["messageCount"]), ("OK", 1))
        d = reply["data"]
        self.assertEqual(sorted(d), sorted(["id", "type", "remoteIP", "remotePort", "connectedAt",
                                            "room", "listeningRooms", "params", "attributes"]))
        self.assertRegex(d["id"], UUID)
        self.assertEqual(d["type"], "socket")
        self.assertEqual(d["remoteIP"], "127.0.0.1")
        # decision: remotePort is a JSON number.
        self.assertJson(d["remotePort"], c.local_port)
        self.assertIsInstance(d["connectedAt"], int)
        self.assertTrue(before - 1000 <= d["connectedAt"] <= now_ms() + 1000, d["connectedAt"])
        self.assertEqual(d["room"], "defaultRoom")
        self.assertEqual(d["listeningRooms"], [])
        self.assertEqual(d["params"], {})
        self.assertJson(d["attributes"], {"id": d["id"], "type": "socket", "remoteIP": "127.0.0.1",
                                          "remotePort": c.local_port,
                                          "connectedAt": d["connectedAt"],
                                          "authenticated": False})
        other = self.client()
        self.assertNotEqual(other.id, d["id"])

    # -- params -------------------------------------------------------------------------------

    def test_param_add_forms(self):
        c = self.client()
        cases = [
            ("paramAdd k=v", "k", "v"),
            ("paramAdd k2 v", "k2", "v"),
            ("paramAdd a=b c", "a", "b c"),  # '=' comes first
            ("paramAdd b c=d", "b", "c=d"),  # ' ' comes first
            ("paramAdd e=f=g", "e", "f=g"),
            ("paramAdd s  two  spaces ", "s", " two  spaces "),  # all the rest, as is
            ("paramAdd empty=", "empty", ""),
            ("paramAdd bare", "bare", ""),
            ("paramAdd n=5", "n", "5"),  # always a string
        ]
        for line, key, value in cases:
            with self.subTest(line=line):
                self.assertOK(c, line, None)
                self.assertOK(c, "paramView " + key, value)
        self.assertOK(c, "paramAdd k=replaced", None)
        self.assertOK(c, "paramView k", "replaced")
        params = c.request("paramsView")["data"]
        self.assertJson(params, {"k": "replaced", "k2": "v", "a": "b c", "b": "c=d", "e": "f=g",
                                 "s": " two  spaces ", "empty": "", "bare": "", "n": "5"})

    def test_param_errors(self):
        c = self.client()
        self.assertError(c, "paramAdd", "key is required")
        self.assertError(c, "paramAdd =value", "key is required")
        self.assertError(c, "paramView", "key is required")
        self.assertError(c, "paramDelete", "key is required")
        self.assertOK(c, "paramsView", {})

    def test_param_view_delete(self):
        c = self.client()
        self.assertOK(c, "paramView missing")  # unset: no data key
        self.assertOK(c, "paramAdd x=1", None)
        self.assertOK(c, "paramAdd y=2", None)
        self.assertOK(c, "paramView x", "1")
        self.assertOK(c, "paramDelete x", None)
        self.assertOK(c, "paramView x")
        self.assertOK(c, "paramDelete x", None)  # decision: deleting an unset key is OK, null
        self.assertOK(c, "paramsView", {"y": "2"})
        self.assertOK(c, "paramsDelete", None)
        self.assertOK(c, "paramsView", {})
        self.assertOK(c, "paramView y")

    def test_params_are_not_attributes(self):
        c = self.client()
        self.assertOK(c, "paramAdd authenticated=true", None)
        d = c.details()
        self.assertJson(d["params"], {"authenticated": "true"})
        self.assertJson(d["attributes"]["authenticated"], False)

    def test_auth_disabled_without_secret(self):
        c = self.client()
        self.assertError(c, "auth abc.def.ghi", "auth is disabled")

    # -- quit / exit --------------------------------------------------------------------------

    def test_quit(self):
        c = self.client()
        c.send_raw(b"quit\nparamsView\n", counted=2)
        raw = c.expect_raw({"context": "api"})
        self.assertLine(raw, b'{"status":"Bye!","context":"api","reason":"quit requested"}\r\n')
        c.wait_closed()
        # decision: nothing after the goodbye, even for lines already sent behind it.
        self.assertEqual([r for r, o in c.backlog if o.get("context") != "user"], [])

    def test_exit(self):
        c = self.client()
        c.send_line("exit")
        self.assertLine(c.expect_raw({"context": "api"}), bye_line("exit requested"))
        c.wait_closed()

    # -- JSON requests ------------------------------------------------------------------------

    def test_json_requests(self):
        a = self.client()
        b = self.client()
        self.assertOK(a, '{"event":"roomChange","room":"jsonRoom"}', True)
        self.assertOK(b, '{"event":"roomChange","room":"jsonRoom"}', True)
        self.assertOK(a, '{"event":"say","message":"hi there"}')
        msg = b.expect({"message": "hi there"})
        self.assertEqual((msg["room"], msg["from"]), ("jsonRoom", a.id))
        self.assertOK(a, '{"event":"roomChange","room":"a b"}', True)
        self.assertEqual(a.details()["room"], "a b")
        self.assertOK(a, '{"event":"listenToRoom","room":"lobby"}', True)
        self.assertOK(a, '{"event":"silenceRoom","room":"lobby"}', True)
        self.assertOK(a, '{"event":"paramAdd","key":"k","value":"a b=c"}', None)
        self.assertOK(a, '{"event":"paramAdd","key":"n","value":5}', None)
        self.assertOK(a, '{"event":"paramAdd","key":"t","value":true}', None)
        self.assertOK(a, '{"event":"paramView","key":"k"}', "a b=c")
        self.assertOK(a, '{"event":"paramView","key":"n"}', "5")  # non-string: its JSON text
        self.assertOK(a, '{"event":"paramView","key":"t"}', "true")
        # decision: a non-string value is stored as its compact JSON text.
        self.assertOK(a, '{"event":"paramAdd","key":"o","value":{"a":[1, 2]}}', None)
        self.assertOK(a, '{"event":"paramView","key":"o"}', '{"a":[1,2]}')
        self.assertOK(a, '{"event":"paramDelete","key":"o"}', None)
        self.assertOK(a, '{"event":"paramDelete","key":"t"}', None)
        self.assertOK(a, '{"event":"paramsView"}', {"k": "a b=c", "n": "5"})
        self.assertOK(a, '{"event":"roomLeave"}', True)
        self.assertError(a, '{"event":"roomChange"}', "room is required")
        self.assertError(a, '{"event":"roomChange","room":"nowhere"}', "room does not exist")
        # decision: an unknown event is answered like an unknown verb.
        self.assertError(a, '{"event":"fly"}', "verb not found or not allowed")

    def test_json_say_needs_message(self):
        c = self.client()
        self.assertError(c, '{"event":"say"}', "message is required")

    def test_invalid_json_requests(self):
        c = self.client()
        for line in ['{"event":', '{', '{"room":"lobby"}', '{"event":5}', '{"event":null}',
                     '{event:"say"}']:
            with self.subTest(line=line):
                self.assertError(c, line, "invalid request")
        self.assertOK(c, "paramsView", {})

    def test_json_quit(self):
        c = self.client()
        c.send_line('{"event":"quit"}')
        self.assertLine(c.expect_raw({"context": "api"}), bye_line("quit requested"))
        c.wait_closed()

    # -- break characters ---------------------------------------------------------------------

    def test_telnet_break(self):
        c = self.client()
        self.assertOK(c, "paramsView", {})
        c.send_raw(b"\xff\xf4\xff\xfd\x06")  # no newline: telnet sends it as is
        self.assertLine(c.expect_raw({"context": "api"}), bye_line("break-character"))
        c.wait_closed()

    def test_telnet_break_mid_line(self):
        # decision: the break sequence ends the connection wherever it appears in the stream.
        c = self.client()
        c.send_raw(b"say half a li\xff\xf4\xff\xfd\x06")
        self.assertLine(c.expect_raw({"context": "api"}), bye_line("break-character"))
        c.wait_closed()

    def test_ctrl_d_with_more_is_not_a_break(self):
        c = self.client()
        self.assertError(c, b"\x04abc", "verb not found or not allowed")

    def test_ctrl_d_line(self):
        c = self.client()
        c.send_raw(b"\x04\n")
        self.assertLine(c.expect_raw({"context": "api"}), bye_line("break-character"))
        c.wait_closed()

    def test_ctrl_d_crlf_line(self):
        c = self.client()
        c.send_raw(b"\x04\r\n")  # the \r is dropped first, so the line holds only Ctrl-D
        self.assertLine(c.expect_raw({"context": "api"}), bye_line("break-character"))
        c.wait_closed()


if __name__ == "__main__":
    main()
