#!/usr/bin/env python3
"""The example embedding program (tests/embed/example_hooks.c) runs its hooks (issue 4: "a C
program can embed roomd and add its own hooks"; roomd.h "hooks").

The example is the stock roomd plus four hooks: on_connect sets the attribute tier = "gold",
on_join refuses rooms whose name starts with "secret", on_say refuses messages holding the word
"forbidden", on_disconnect counts (totals printed to stderr at exit). It takes roomd's arguments,
so the harness's Server runs it with the very same flags (env EMBED_EXAMPLE names the binary).
"""

import os
import re

import harness
from harness import ENTERED, LEFT, RoomdTestCase, Server, chat, main, room_path

EMBED_EXAMPLE = os.environ.get(
    "EMBED_EXAMPLE", os.path.join(harness.REPO, "build", "tests", "embed", "example_hooks"))
NOT_AUTHORIZED = "not authorized to join room"
REFUSED = "message refused"


class EmbedServer(Server):
    """harness.Server running the example program instead of roomd, same flags."""

    program, program_env = EMBED_EXAMPLE, "EMBED_EXAMPLE"


class EmbedTestCase(RoomdTestCase):

    def start_embed(self, **options):
        server = EmbedServer(**options)
        self.addCleanup(server.stop)
        return server

    def setUp(self):
        self.server = self.start_embed(starting_rooms="defaultRoom,lobby")

    def create(self, room, pattern=None):
        self.assertJson(self.server.admin_ok("POST", "/api/rooms", {"room": room}), {"created": 1})
        if pattern is not None:
            self.assertJson(self.server.admin_ok("PUT", "/api/rooms/%s/pattern" % room_path(room),
                                                 {"pattern": pattern}), {"pattern": pattern})


class ConnectHook(EmbedTestCase):

    def test_every_connection_is_gold(self):
        clients = [self.client() for _ in range(4)]  # spread over both workers
        for c in clients:
            with self.subTest(client=c.local_port):
                attrs = c.details()["attributes"]
                self.assertJson(attrs["tier"], "gold")  # the string, not any other type
                # The built-ins are still there and untouched.
                self.assertEqual(attrs["id"], c.id)
                self.assertEqual((attrs["type"], attrs["remotePort"]), ("socket", c.local_port))
                self.assertJson(attrs["authenticated"], False)
                theirs = self.server.admin_ok("GET", "/api/connections/%s" % room_path(c.id))
                self.assertJson(theirs["attributes"], attrs)

    def test_gold_pattern_room_is_joinable(self):
        self.create("gold", {"tier": "gold"})
        self.create("silver", {"tier": "silver"})
        self.create("gold-auth", {"tier": "gold", "authenticated": True})
        a, b = self.client(), self.client()
        self.assertOK(a, "roomChange gold", True)
        self.assertOK(b, "listenToRoom gold", True)
        self.assertError(a, "roomChange silver", NOT_AUTHORIZED)
        self.assertError(a, "roomChange gold-auth", NOT_AUTHORIZED)
        # The server side can still change what the hook set.
        self.server.admin_ok("PATCH", "/api/connections/%s/attributes" % room_path(b.id),
                             {"tier": "silver"})
        self.assertOK(b, "roomChange silver", True)
        self.assertEqual(self.server.admin_ok("GET", "/api/rooms/gold")["membersCount"], 1)

    def test_plain_roomd_is_not_gold(self):
        """The attribute comes from the hook: the stock roomd does not set it."""
        plain = self.start_server()
        plain.admin_ok("POST", "/api/rooms", {"room": "gold"})
        plain.admin_ok("PUT", "/api/rooms/gold/pattern", {"key": "tier", "value": "gold"})
        c = self.client(plain)
        self.assertNotIn("tier", c.details()["attributes"])
        self.assertError(c, "roomChange gold", NOT_AUTHORIZED)

    def test_attribute_is_set_before_the_default_room_join(self):
        """on_connect runs before the automatic join, so the default room's pattern sees it."""
        self.server.admin_ok("PUT", "/api/rooms/defaultRoom/pattern",
                             {"key": "tier", "value": "gold"})
        c = self.client()
        self.assertJson(c.welcome, {"welcome": harness.WELCOME_TEXT, "room": "defaultRoom",
                                    "context": "api"})
        self.assertEqual(c.details()["room"], "defaultRoom")
        self.server.admin_ok("PUT", "/api/rooms/defaultRoom/pattern",
                             {"key": "tier", "value": "platinum"})
        d = self.client()
        self.assertIsNone(d.welcome["room"])  # refused by the pattern, still welcomed


class JoinHook(EmbedTestCase):

    def test_secret_rooms_refused(self):
        for room in ("secretX", "secret", "secret room", "secrets/of/the/trade"):
            self.create(room)
        self.create("topsecret")  # only names that start with "secret"
        self.create("Secret")     # the hook compares case-sensitively
        c, other = self.client(), self.client()
        self.assertOK(other, "roomChange lobby", True)
        for room in ("secretX", "secret", "secret room", "secrets/of/the/trade"):
            with self.subTest(room=room):
                self.assertError(c, "roomChange " + room, NOT_AUTHORIZED)
                self.assertError(c, "listenToRoom " + room, NOT_AUTHORIZED)
                self.assertError(c, '{"event":"roomChange","room":%s}' % harness.dumps(room),
                                 NOT_AUTHORIZED)
        self.assertEqual(c.details()["room"], "defaultRoom")  # refused: stays where it was
        self.assertEqual(c.details()["listeningRooms"], [])
        self.assertOK(c, "roomChange topsecret", True)
        self.assertOK(c, "roomChange Secret", True)
        self.assertEqual(self.server.admin_ok("GET", "/api/rooms/secretX")["membersCount"], 0)

    def test_admin_add_member_runs_the_hook_unless_forced(self):
        # addMember checks like roomChange (PROTOCOL.md "Server side") unless "force":true.
        self.create("secretX")
        c = self.client()
        path = "/api/connections/%s/room" % room_path(c.id)
        status, answer = self.server.admin("PUT", path, {"room": "secretX"})
        self.assertEqual((status, answer), (400, {"error": NOT_AUTHORIZED}))
        self.assertEqual(c.details()["room"], "defaultRoom")
        self.assertJson(self.server.admin_ok("PUT", path, {"room": "secretX", "force": True}),
                        {"added": True})
        self.assertEqual(c.details()["room"], "secretX")

    def test_secret_default_room_not_joined(self):
        """The default room's join goes through on_join too."""
        server = self.start_embed(starting_rooms="secretLobby,lobby", default_room="secretLobby")
        c = self.client(server)
        self.assertJson(c.welcome, {"welcome": harness.WELCOME_TEXT, "room": None,
                                    "context": "api"})
        self.assertIsNone(c.details()["room"])
        self.assertOK(c, "roomChange lobby", True)


class SayHook(EmbedTestCase):

    def test_forbidden_refused(self):
        a, b = self.client(), self.client()
        self.assertOK(a, "roomChange lobby", True)
        self.assertOK(b, "roomChange lobby", True)
        a.expect(chat(ENTERED, "lobby", b.id))
        for text in ("this is forbidden", "forbidden", "forbidden fruit", "a FORBIDDEN word",
                     "is it Forbidden?", "(forbidden)"):
            with self.subTest(text=text):
                self.assertError(a, "say " + text, REFUSED)
        self.assertError(a, '{"event":"say","message":"json says forbidden too"}', REFUSED)
        # Not the word: allowed.
        self.assertOK(a, "say forbiddenness is not the word")
        raw = b.expect_raw(chat(room="lobby", sender=a.id))
        self.assertChat(raw, "forbiddenness is not the word", "lobby", a.id)
        # Nothing refused reached b, and the normal say came through alone.
        b.assert_silent(match=chat(room="lobby", sender=a.id))

    def test_normal_say_works(self):
        a, b, listener = self.client(), self.client(), self.client()
        self.assertOK(a, "roomChange lobby", True)
        self.assertOK(b, "roomChange lobby", True)
        self.assertOK(listener, "listenToRoom lobby", True)
        self.assertOK(a, "say hello  gold  world")  # spaces kept
        for c in (b, listener):
            self.assertChat(c.expect_raw(chat(room="lobby", sender=a.id)), "hello  gold  world",
                            "lobby", a.id)
        a.assert_silent(match=chat("hello  gold  world"))
        # The server side is no "say": its broadcasts are not filtered by the hook.
        self.server.admin_ok("POST", "/api/rooms/lobby/broadcast", {"message": "forbidden news"})
        b.expect(chat("forbidden news", "lobby", 0))


class DisconnectHook(RoomdTestCase):

    def test_disconnects_counted(self):
        server = EmbedServer()
        try:
            clients = [self.client(server) for _ in range(5)]
            ids = [c.id for c in clients]
            watcher = self.client(server)
            clients[0].send_line("quit")
            clients[0].expect_goodbye("quit requested")
            clients[1].close()
            server.admin_ok("DELETE", "/api/connections/%s" % room_path(ids[2]))
            for i in range(3):
                watcher.expect(chat(LEFT, "defaultRoom", ids[i]))
            # The rest (3 more, the watcher included) go at shutdown.
        finally:
            server.stop()
        line = server.wait_log(lambda l: l.startswith("example_hooks:"))
        m = re.match(r"example_hooks: (\d+) connections, (\d+) disconnects$", line)
        self.assertIsNotNone(m, line)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (6, 6))

    def test_exit_line(self):
        """One connection, one disconnect: the exact line the example prints at exit."""
        server = EmbedServer()
        try:
            c = self.client(server)
            c.send_line("quit")
            c.expect_goodbye("quit requested")
        finally:
            server.stop()
        line = server.wait_log(lambda l: l.startswith("example_hooks:"))
        self.assertEqual(line, "example_hooks: 1 connections, 1 disconnects")


if __name__ == "__main__":
    main()
