#!/usr/bin/env python3
"""Rooms and authentication patterns through the admin HTTP API (PROTOCOL.md "Rooms",
"Authentication patterns", "Server side").

Each test starts its own daemon. If the admin API is not there, the tests fail with
"admin API ... not reachable" rather than being skipped.
"""

from harness import (DELETED, ENTERED, LEFT, RoomdTestCase, chat, main, now_ms, room_path)

NOT_AUTHORIZED = "not authorized to join room"


class AdminTestCase(RoomdTestCase):

    def setUp(self):
        self.server = self.start_server(starting_rooms="defaultRoom,lobby")

    def create(self, room):
        self.assertJson(self.server.admin_ok("POST", "/api/rooms", {"room": room}), {"created": 1})

    def set_pattern(self, room, pattern):
        answer = self.server.admin_ok("PUT", "/api/rooms/%s/pattern" % room_path(room),
                                      {"pattern": pattern})
        self.assertJson(answer, {"pattern": pattern})

    def set_attributes(self, client, attributes):
        return self.server.admin_ok("PATCH", "/api/connections/%s/attributes"
                                    % room_path(client.id), attributes)["attributes"]


class AdminBasics(AdminTestCase):

    def test_needs_key(self):
        status, _ = self.server.admin("GET", "/api/rooms", key=None)
        self.assertEqual(status, 401)
        status, _ = self.server.admin("GET", "/api/rooms", key="wrong")
        self.assertEqual(status, 401)

    def test_create_and_status(self):
        self.create("vip room/\u00e9")  # percent-encoded in paths
        self.assertJson(self.server.admin_ok("POST", "/api/rooms", {"room": "vip room/\u00e9"}),
                        {"created": 0})
        status = self.server.admin_ok("GET", "/api/rooms/%s" % room_path("vip room/\u00e9"))
        self.assertJson(status, {"exists": True, "room": "vip room/\u00e9", "members": {},
                                 "membersCount": 0, "pattern": {}})
        self.assertIn("vip room/\u00e9", self.server.admin_ok("GET", "/api/rooms")["rooms"])
        c = self.client()
        self.assertOK(c, "roomChange vip room/\u00e9", True)
        status = self.server.admin_ok("GET", "/api/rooms/%s" % room_path("vip room/\u00e9"))
        self.assertEqual((list(status["members"]), status["membersCount"]), ([c.id], 1))
        self.assertEqual(status["members"][c.id]["id"], c.id)

    def test_missing_room_status(self):
        status, answer = self.server.admin("GET", "/api/rooms/nowhere")
        self.assertEqual(status, 200)
        self.assertJson(answer["exists"], False)
        self.assertEqual(answer["membersCount"], 0)

    def test_connection_details_match_details_view(self):
        c = self.client()
        mine = c.details()
        theirs = self.server.admin_ok("GET", "/api/connections/%s" % room_path(c.id))
        self.assertJson(theirs, mine)
        status, answer = self.server.admin("GET", "/api/connections/no-such-id")
        self.assertEqual((status, answer), (404, {"error": "connection not found"}))

    def test_broadcast(self):
        a, b = self.client(), self.client()
        self.assertOK(b, "roomChange lobby", True)
        before = now_ms()
        self.assertJson(self.server.admin_ok("POST", "/api/rooms/lobby/broadcast",
                                             {"message": "hello all"}), {"sent": True})
        raw = b.expect_raw(chat("hello all"))
        self.assertChat(raw, "hello all", "lobby", 0, before)  # from is the number 0
        a.assert_silent(match=chat("hello all"))
        self.server.admin_ok("POST", "/api/rooms/lobby/broadcast", {"message": {"k": [1, "x"]}})
        self.assertJson(b.expect(chat(room="lobby", sender=0))["message"], {"k": [1, "x"]})
        status, answer = self.server.admin("POST", "/api/rooms/nowhere/broadcast",
                                           {"message": "x"})
        self.assertEqual((status, answer), (404, {"error": "room does not exist"}))

    def test_direct_message(self):
        c = self.client()
        before = now_ms()
        self.assertJson(self.server.admin_ok("POST", "/api/connections/%s/message"
                                             % room_path(c.id), {"message": "psst"}),
                        {"sent": True})
        raw = c.expect_raw(chat("psst"))
        self.assertChat(raw, "psst", None, 0, before)  # no room key at all

    def test_disconnect(self):
        c, other = self.client(), self.client()
        c_id = c.id
        self.assertJson(self.server.admin_ok("DELETE", "/api/connections/%s" % room_path(c_id)),
                        {"disconnected": True})
        c.expect_goodbye("disconnected by server")
        other.expect(chat(LEFT, "defaultRoom", c_id))

    def test_unknown_path(self):
        status, _ = self.server.admin("GET", "/api/nothing-here")
        self.assertEqual(status, 404)


class Patterns(AdminTestCase):

    def test_several_pairs(self):
        self.create("vip")
        self.set_pattern("vip", {"authenticated": True, "role": "admin"})
        c = self.client()
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)
        self.assertError(c, "listenToRoom vip", NOT_AUTHORIZED)
        attrs = self.set_attributes(c, {"role": "admin"})
        self.assertEqual(attrs["role"], "admin")
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)  # authenticated still false
        attrs = self.set_attributes(c, {"authenticated": True})
        self.assertJson(attrs["authenticated"], True)
        self.assertEqual(c.details()["attributes"]["role"], "admin")
        self.assertOK(c, "listenToRoom vip", True)
        self.assertOK(c, "roomChange vip", True)
        self.assertEqual(c.details()["room"], "vip")

    def test_typed_compare(self):
        self.create("strict")
        self.set_pattern("strict", {"flag": "true", "level": 5})
        c = self.client()
        self.set_attributes(c, {"flag": True, "level": 5})
        self.assertError(c, "roomChange strict", NOT_AUTHORIZED)  # true != "true"
        self.set_attributes(c, {"flag": "true", "level": "5"})
        self.assertError(c, "roomChange strict", NOT_AUTHORIZED)  # "5" != 5
        self.set_attributes(c, {"level": 5})
        self.assertOK(c, "roomChange strict", True)

    def test_attribute_deleted_with_null(self):
        self.create("vip")
        self.set_pattern("vip", {"role": "x"})
        c = self.client()
        self.set_attributes(c, {"role": "x"})
        attrs = self.set_attributes(c, {"role": None})
        self.assertNotIn("role", attrs)
        self.assertNotIn("role", c.details()["attributes"])
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)

    def test_single_pair_form_and_type(self):
        self.create("sockets")
        path = "/api/rooms/sockets/pattern"
        self.assertJson(self.server.admin_ok("PUT", path, {"key": "type", "value": "socket"}),
                        {"pattern": {"type": "socket"}})
        c = self.client()
        self.assertOK(c, "roomChange sockets", True)  # TCP clients have type socket
        # The single-pair form replaces the whole pattern.
        self.assertJson(self.server.admin_ok("PUT", path, {"key": "type", "value": "websocket"}),
                        {"pattern": {"type": "websocket"}})
        d = self.client()
        self.assertError(d, "roomChange sockets", NOT_AUTHORIZED)
        self.assertError(d, "listenToRoom sockets", NOT_AUTHORIZED)
        self.assertJson(self.server.admin_ok("PUT", path, {"key": None}), {"pattern": {}})
        self.assertOK(d, "roomChange sockets", True)
        status = self.server.admin_ok("GET", "/api/rooms/sockets")
        self.assertJson(status["pattern"], {})
        self.assertEqual(status["membersCount"], 2)

    def test_checked_once_at_join(self):
        self.create("club")
        self.set_pattern("club", {"member": True})
        a, b, listener = self.client(), self.client(), self.client()
        for c in (a, b, listener):
            self.set_attributes(c, {"member": True})
        self.assertOK(a, "roomChange club", True)
        self.assertOK(b, "roomChange club", True)
        self.assertOK(listener, "listenToRoom club", True)
        # Changing the pattern and the attributes later moves nobody.
        self.set_pattern("club", {"member": "gold"})
        self.set_attributes(a, {"member": False})
        self.assertEqual(a.details()["room"], "club")
        self.assertEqual(listener.details()["listeningRooms"], ["club"])
        self.assertOK(a, "say still in")
        b.expect(chat("still in", "club", a.id))
        listener.expect(chat("still in", "club", a.id))
        self.assertEqual(a.request("roomView")["data"]["membersCount"], 2)
        # But a new join is checked against the new pattern.
        self.assertOK(b, "roomLeave", True)
        self.assertError(b, "roomChange club", NOT_AUTHORIZED)

    def test_read_only_attributes(self):
        c = self.client()
        before = c.details()["attributes"]
        path = "/api/connections/%s/attributes" % room_path(c.id)
        for key, value in [("id", "x"), ("type", "websocket"), ("remoteIP", "10.0.0.1"),
                           ("remotePort", 1), ("connectedAt", 0)]:
            with self.subTest(key=key):
                status, answer = self.server.admin("PATCH", path, {key: value})
                self.assertEqual((status, answer), (400, {"error": "attribute is read-only"}))
        self.assertJson(c.details()["attributes"], before)
        # authenticated is not read-only.
        attrs = self.set_attributes(c, {"authenticated": True})
        self.assertJson(attrs["authenticated"], True)
        status, answer = self.server.admin("PATCH", "/api/connections/no-such-id/attributes",
                                           {"a": 1})
        self.assertEqual((status, answer), (404, {"error": "connection not found"}))

    def test_params_cannot_satisfy_pattern(self):
        self.create("vip")
        self.set_pattern("vip", {"role": "admin"})
        c = self.client()
        self.assertOK(c, "paramAdd role=admin", None)
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)


class Deletion(AdminTestCase):

    def test_delete_room_with_members_and_listeners(self):
        self.create("doomed")
        a, b, listener, bystander = (self.client() for _ in range(4))
        self.assertOK(a, "roomChange doomed", True)
        self.assertOK(b, "roomChange doomed", True)
        self.assertOK(listener, "roomChange lobby", True)
        self.assertOK(listener, "listenToRoom doomed", True)
        self.assertOK(bystander, "roomChange lobby", True)

        before = now_ms()
        self.assertJson(self.server.admin_ok("DELETE", "/api/rooms/doomed"), {"deleted": True})
        for c in (a, b, listener):
            self.assertChat(c.expect_raw(chat(DELETED)), DELETED, "doomed", 0, before)
        bystander.assert_silent(match=chat(DELETED))

        # Members keep their room, but it is gone.
        self.assertEqual(a.details()["room"], "doomed")
        self.assertError(a, "say anyone?", "room does not exist")
        self.assertError(a, "roomView", "room does not exist")
        self.assertJson(self.server.admin_ok("GET", "/api/rooms/doomed")["exists"], False)
        self.assertError(bystander, "roomChange doomed", "room does not exist")
        self.assertError(bystander, "listenToRoom doomed", "room does not exist")

        # Listeners are silenced.
        self.assertEqual(listener.details()["listeningRooms"], [])
        self.assertError(listener, "silenceRoom doomed", "connection not listening to this room")

        # roomLeave works, without an announcement.
        self.assertOK(b, "roomLeave", True)
        self.assertIsNone(b.details()["room"])
        for c in (a, listener, bystander):
            c.assert_silent(match=chat(LEFT, "doomed", b.id))

        # A re-created room of the same name can be joined, by a member of the old one too.
        self.create("doomed")
        self.assertOK(a, "roomChange doomed", True)
        data = a.request("roomView")["data"]
        self.assertEqual((data["room"], list(data["members"]), data["membersCount"]),
                         ("doomed", [a.id], 1))
        self.assertOK(b, "roomChange doomed", True)
        a.expect(chat(ENTERED, "doomed", b.id))
        self.assertOK(b, "say new life")
        a.expect(chat("new life", "doomed", b.id))
        listener.assert_silent(match=chat("new life"))  # stays silenced

    def test_member_of_deleted_room_can_change_room(self):
        self.create("doomed")
        a, lobby = self.client(), self.client()
        self.assertOK(lobby, "roomChange lobby", True)
        self.assertOK(a, "roomChange doomed", True)
        self.server.admin_ok("DELETE", "/api/rooms/doomed")
        a.expect(chat(DELETED))
        self.assertOK(a, "roomChange lobby", True)
        lobby.expect(chat(ENTERED, "lobby", a.id))
        self.assertOK(a, "say back")
        lobby.expect(chat("back", "lobby", a.id))

    def test_delete_missing_room(self):
        status, answer = self.server.admin("DELETE", "/api/rooms/nowhere")
        self.assertEqual((status, answer), (404, {"error": "room does not exist"}))


if __name__ == "__main__":
    main()
