#!/usr/bin/env python3
"""roomctl, the command line client of the admin API (issue 4: "readable output for people and
--json for scripts, exit codes that scripts can trust"), run as a real process (env ROOMCTL)
against a real daemon.

Exit codes (roomctl --help, src/roomctl.c): 0 success, 1 the server answered an error, 2 usage,
3 the server could not be reached. --json prints the server's JSON answer as is (errors too);
human output is checked for its content, not its layout.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time

import harness
from harness import (ADMIN_KEY, LEFT, RoomdTestCase, chat, free_port, main, room_path)

ROOMCTL = os.environ.get("ROOMCTL", os.path.join(harness.REPO, "build", "src", "roomctl"))
NOT_AUTHORIZED = "not authorized to join room"
SECRET = "S3cr3t-for-tests"


def b64url_decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode_token(token):
    """(header, claims) of a JWT, after checking its HS256 signature under SECRET here."""
    head, body, sig = token.split(".")
    want = hmac.new(SECRET.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(b64url_decode(sig), want):
        raise AssertionError("token %r is not signed with HMAC-SHA256 under the secret" % token)
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(body))


class RoomctlCase(RoomdTestCase):

    def run_ctl(self, *args, env=None, timeout=20):
        """Run roomctl with ARGS; ROOMD_URL/ROOMD_ADMIN_KEY come only from ENV."""
        if not os.path.exists(ROOMCTL):
            raise AssertionError("roomctl not found at %s (build it or set ROOMCTL)" % ROOMCTL)
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("ROOMD_URL", "ROOMD_ADMIN_KEY")}
        full_env.update(env or {})
        proc = subprocess.run([ROOMCTL] + list(args), env=full_env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        proc.out = proc.stdout.decode("utf-8", "replace")
        proc.err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode < 0:
            raise AssertionError("roomctl %s was killed by signal %d (crashed); stderr: %s"
                                 % (" ".join(args), -proc.returncode, proc.err))
        return proc

    def url(self, server=None):
        return "http://127.0.0.1:%d" % (server or self.server).admin_port

    def ctl(self, *args, server=None):
        """roomctl --url … --key … ARGS against the test's server."""
        return self.run_ctl("--url", self.url(server), "--key", ADMIN_KEY, *args)

    def assertExit(self, proc, code, msg=""):
        self.assertEqual(proc.returncode, code, "%s\nstdout: %s\nstderr: %s"
                         % (msg, proc.out, proc.err))

    def ok(self, *args, server=None):
        """Human output of a command that must succeed."""
        proc = self.ctl(*args, server=server)
        self.assertExit(proc, 0, "roomctl %s" % " ".join(args))
        self.assertEqual(proc.err, "")
        return proc.out

    def ok_json(self, *args, server=None):
        """--json output of a command that must succeed: one line of compact JSON."""
        proc = self.ctl("--json", *args, server=server)
        self.assertExit(proc, 0, "roomctl --json %s" % " ".join(args))
        self.assertTrue(proc.out.endswith("\n") and proc.out.count("\n") == 1, proc.out)
        return json.loads(proc.out)

    def fails(self, *args, error, status, server=None):
        """A command the server refuses: exit 1, the error on stderr, nothing on stdout; with
        --json the server's error JSON on stdout, still exit 1."""
        proc = self.ctl(*args, server=server)
        self.assertExit(proc, 1, "roomctl %s" % " ".join(args))
        self.assertEqual(proc.out, "")
        self.assertIn(error, proc.err)
        self.assertIn(str(status), proc.err)
        proc = self.ctl("--json", *args, server=server)
        self.assertExit(proc, 1, "roomctl --json %s" % " ".join(args))
        self.assertJson(json.loads(proc.out), {"error": error})


# ---------------------------------------------------------------------------------------------
# Without a server: usage and unreachable
# ---------------------------------------------------------------------------------------------

class Usage(RoomctlCase):

    def test_help(self):
        for flag in ("--help", "-h"):
            proc = self.run_ctl(flag)
            self.assertExit(proc, 0)
            self.assertIn("Usage: roomctl", proc.out)
            for command in ("rooms", "room add", "room auth", "room say", "conn list",
                            "conn send", "conn set", "conn join", "conn leave", "conn kick",
                            "stats", "token"):
                self.assertIn(command, proc.out)

    def test_usage_errors_exit_2(self):
        # A port where nothing listens: a usage error must be found before any request (2,
        # not 3).
        url = "http://127.0.0.1:%d" % free_port()
        cases = [
            [], ["--bogus", "rooms"], ["frobnicate"], ["rooms", "extra"], ["stats", "extra"],
            ["room"], ["room", "add"], ["room", "add", "a", "b"], ["room", "del"],
            ["room", "status"], ["room", "auth", "r"], ["room", "auth", "r", "k"],
            ["room", "auth", "r", "k", "v", "w"], ["room", "say", "r"], ["room", "nuke", "r"],
            ["conn"], ["conn", "list", "x"], ["conn", "show"], ["conn", "send", "id"],
            ["conn", "set", "id", "k"], ["conn", "set", "id", "k", "v", "w"],
            ["conn", "join", "id"], ["conn", "join", "id", "r", "--forse"],
            ["conn", "leave"], ["conn", "kick"], ["conn", "kick", "a", "b"],
            ["conn", "nuke", "id"], ["--url"], ["--key"], ["-c"],
        ]
        for args in cases:
            with self.subTest(args=args):
                argv = args if args and args[0] in ("--url", "--key", "-c") else \
                    ["--url", url, "--key", "k"] + args
                proc = self.run_ctl(*argv)
                self.assertExit(proc, 2)
                self.assertEqual(proc.out, "")
                self.assertIn("Usage: roomctl", proc.err)

    def test_bad_url_exit_2(self):
        for url in ("not a url", "127.0.0.1:8081", ""):
            with self.subTest(url=url):
                proc = self.run_ctl("--url", url, "--key", "k", "rooms")
                self.assertExit(proc, 2)

    def test_bad_config_exit_2(self):
        proc = self.run_ctl("-c", "/nonexistent/roomd.conf", "rooms")
        self.assertExit(proc, 2)
        self.assertIn("/nonexistent/roomd.conf", proc.err)
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("no_such_key = 1\n")
        self.addCleanup(os.unlink, f.name)
        proc = self.run_ctl("-c", f.name, "rooms")
        self.assertExit(proc, 2)
        self.assertIn("no_such_key", proc.err)

    def test_unreachable_exit_3(self):
        url = "http://127.0.0.1:%d" % free_port()  # nothing listens there
        for args in (["rooms"], ["stats"], ["room", "add", "x"], ["room", "del", "x"],
                     ["conn", "list"], ["conn", "kick", "id"], ["--json", "rooms"]):
            with self.subTest(args=args):
                proc = self.run_ctl("--url", url, "--key", "k", *args)
                self.assertExit(proc, 3)
                self.assertEqual(proc.out, "")
                self.assertIn("cannot reach", proc.err)

    def test_unreachable_from_env_exit_3(self):
        proc = self.run_ctl("rooms", env={"ROOMD_URL": "http://127.0.0.1:%d" % free_port(),
                                          "ROOMD_ADMIN_KEY": "k"})
        self.assertExit(proc, 3)


# ---------------------------------------------------------------------------------------------
# Every command against a server
# ---------------------------------------------------------------------------------------------

class Commands(RoomctlCase):

    def setUp(self):
        self.server = self.start_server(starting_rooms="defaultRoom,lobby")

    def test_rooms(self):
        self.assertEqual(sorted(self.ok("rooms").splitlines()), ["defaultRoom", "lobby"])
        self.server.admin_ok("POST", "/api/rooms", {"room": "with space/slash"})
        self.assertEqual(sorted(self.ok("rooms").splitlines()),
                         ["defaultRoom", "lobby", "with space/slash"])
        self.assertJson(self.ok_json("rooms"), self.server.admin_ok("GET", "/api/rooms"))

    def test_room_add(self):
        self.assertEqual(self.ok("room", "add", "new").strip(), "created")
        self.assertEqual(self.ok("room", "add", "new").strip(), "already exists")
        self.assertJson(self.ok_json("room", "add", "newer"), {"created": 1})
        self.assertJson(self.ok_json("room", "add", "newer"), {"created": 0})
        # Names are percent-encoded or sent in JSON as they are.
        for room in ("a b", "a/b", "\u00e9t\u00e9", "100%", "q?x#y"):
            with self.subTest(room=room):
                self.assertJson(self.ok_json("room", "add", room), {"created": 1})
                self.assertJson(self.server.admin_ok("GET", "/api/rooms/" + room_path(room))
                                ["exists"], True)
                self.assertEqual(self.ok_json("room", "status", room)["room"], room)
        self.fails("room", "add", "bad\nname", error="invalid room name", status=400)

    def test_room_status(self):
        c = self.client()
        self.assertOK(c, "roomChange lobby", True)
        self.server.admin_ok("PUT", "/api/rooms/lobby/pattern", {"key": "type", "value": "socket"})
        out = self.ok("room", "status", "lobby")
        self.assertIn("lobby", out)
        self.assertRegex(out, r"\bexists\b")
        self.assertRegex(out, r"\b1 member")
        self.assertIn(c.id, out)
        self.assertIn("type", out)  # the pattern is shown
        self.assertJson(self.ok_json("room", "status", "lobby"),
                        self.server.admin_ok("GET", "/api/rooms/lobby"))
        # A missing room is no error: it does not exist.
        out = self.ok("room", "status", "nowhere")
        self.assertIn("does not exist", out)
        self.assertJson(self.ok_json("room", "status", "nowhere"),
                        {"exists": False, "room": "nowhere", "members": {}, "membersCount": 0,
                         "pattern": {}})

    def test_room_del(self):
        self.server.admin_ok("POST", "/api/rooms", {"room": "doomed"})
        self.server.admin_ok("POST", "/api/rooms", {"room": "doomed 2"})
        c = self.client()
        self.assertOK(c, "roomChange doomed", True)
        self.ok("room", "del", "doomed")
        c.expect(chat(harness.DELETED, "doomed", 0))
        self.assertJson(self.ok_json("room", "del", "doomed 2"), {"deleted": True})
        self.assertEqual(sorted(self.ok("rooms").splitlines()), ["defaultRoom", "lobby"])
        self.fails("room", "del", "doomed", error="room does not exist", status=404)
        self.fails("room", "del", "nosuch", error="room does not exist", status=404)

    def test_room_auth(self):
        self.server.admin_ok("POST", "/api/rooms", {"room": "vip"})
        self.ok("room", "auth", "vip", "role", "admin")
        self.assertJson(self.server.admin_ok("GET", "/api/rooms/vip")["pattern"],
                        {"role": "admin"})
        c = self.client()
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)
        self.assertJson(self.ok_json("room", "auth", "vip", "team", "red"),
                        {"pattern": {"team": "red"}})  # replaces the pattern
        self.assertJson(self.ok_json("room", "auth", "vip", "--clear"), {"pattern": {}})
        self.assertOK(c, "roomChange vip", True)
        self.ok("room", "auth", "vip", "team", "blue")
        self.ok("room", "auth", "vip", "--clear")
        self.assertJson(self.server.admin_ok("GET", "/api/rooms/vip")["pattern"], {})
        self.fails("room", "auth", "nosuch", "k", "v", error="room does not exist", status=404)
        self.fails("room", "auth", "nosuch", "--clear", error="room does not exist", status=404)

    def test_room_say(self):
        a, b = self.client(), self.client()
        for c in (a, b):
            self.assertOK(c, "roomChange lobby", True)
        self.ok("room", "say", "lobby", "hello", "big", "world")
        for c in (a, b):
            self.assertChat(c.expect_raw(chat("hello big world")), "hello big world", "lobby", 0)
        self.assertJson(self.ok_json("room", "say", "lobby", "two  spaces kept"), {"sent": True})
        for c in (a, b):
            self.assertChat(c.expect_raw(chat("two  spaces kept")), "two  spaces kept", "lobby",
                            0)
        # The message is text, even when it looks like JSON.
        self.ok("room", "say", "lobby", "42")
        self.assertChat(a.expect_raw(chat("42")), "42", "lobby", 0)
        self.fails("room", "say", "nosuch", "hi", error="room does not exist", status=404)

    def test_room_history(self):
        """room history ROOM [--size N --ttl S] and room messages ROOM [--limit N]."""
        self.assertJson(self.ok_json("room", "history", "lobby"), {"size": 100, "ttl": 300})
        self.assertIn("100 messages, 300 s", self.ok("room", "history", "lobby"))
        self.assertJson(self.ok_json("room", "history", "lobby", "--size", "2", "--ttl", "60"),
                        {"size": 2, "ttl": 60})
        self.assertJson(self.server.admin_ok("GET", "/api/rooms/lobby/history"),
                        {"size": 2, "ttl": 60})
        for i in range(3):
            self.ok("room", "say", "lobby", "m%d" % i)
        got = self.ok_json("room", "messages", "lobby")
        self.assertEqual([(m["message"], m["offset"]) for m in got["messages"]],
                         [("m1", 2), ("m2", 3)])
        self.assertEqual(self.ok("room", "messages", "lobby", "--limit", "1").split(),
                         ["3", "0", "m2"])
        self.fails("room", "history", "nosuch", error="room does not exist", status=404)
        self.fails("room", "messages", "nosuch", error="room does not exist", status=404)
        url = ["--url", self.url(), "--key", ADMIN_KEY]
        for bad in (["--size"], ["--size", "-1"], ["--size", "x"], ["--nope", "1"],
                    ["--ttl", "1", "--size"]):
            self.assertExit(self.run_ctl(*url, "room", "history", "lobby", *bad), 2)
        self.assertExit(self.run_ctl(*url, "room", "messages", "lobby", "--limit", "x"), 2)

    def test_conn_list(self):
        clients = [self.client() for _ in range(3)]
        self.assertOK(clients[0], "roomChange lobby", True)
        self.assertOK(clients[1], "roomLeave", True)
        lines = self.ok("conn", "list").splitlines()
        self.assertEqual(len(lines), 3, lines)
        for c in clients:
            line = [l for l in lines if c.id in l]
            self.assertEqual(len(line), 1, lines)
            self.assertIn("socket", line[0])
            self.assertIn("127.0.0.1:%d" % c.local_port, line[0])
        self.assertIn("lobby", [l for l in lines if clients[0].id in l][0])
        self.assertIn("defaultRoom", [l for l in lines if clients[2].id in l][0])
        listed = self.ok_json("conn", "list")
        self.assertEqual(list(listed), ["connections"])
        self.assertEqual(sorted(d["id"] for d in listed["connections"]),
                         sorted(c.id for c in clients))
        for d in listed["connections"]:
            mine = [c for c in clients if c.id == d["id"]][0]
            self.assertJson(d, mine.details())

    def test_conn_list_empty(self):
        self.assertEqual(self.ok("conn", "list"), "")
        self.assertJson(self.ok_json("conn", "list"), {"connections": []})

    def test_conn_show(self):
        c = self.client()
        self.assertOK(c, "paramAdd color=green", None)
        out = self.ok("conn", "show", c.id)
        self.assertIn(c.id, out)
        self.assertIn("green", out)
        self.assertJson(self.ok_json("conn", "show", c.id), c.details())
        self.fails("conn", "show", "no-such-id", error="connection not found", status=404)

    def test_conn_send(self):
        a, b = self.client(), self.client()
        self.ok("conn", "send", a.id, "just", "for", "you")
        self.assertChat(a.expect_raw(chat("just for you")), "just for you", None, 0)
        self.assertJson(self.ok_json("conn", "send", a.id, "again"), {"sent": True})
        self.assertChat(a.expect_raw(chat("again")), "again", None, 0)
        b.assert_silent(match=chat(sender=0))
        self.fails("conn", "send", "no-such-id", "x", error="connection not found", status=404)

    def test_conn_set(self):
        self.server.admin_ok("POST", "/api/rooms", {"room": "red"})
        self.server.admin_ok("PUT", "/api/rooms/red/pattern", {"key": "team", "value": "red"})
        c = self.client()
        self.ok("conn", "set", c.id, "team", "red")
        self.assertEqual(c.details()["attributes"]["team"], "red")
        self.assertOK(c, "roomChange red", True)
        answer = self.ok_json("conn", "set", c.id, "nick", "x y")
        self.assertJson(answer, {"attributes": c.details()["attributes"]})
        self.assertEqual(answer["attributes"]["nick"], "x y")
        self.fails("conn", "set", c.id, "id", "evil", error="attribute is read-only", status=400)
        self.fails("conn", "set", "no-such-id", "k", "v", error="connection not found",
                   status=404)

    def test_conn_join(self):
        self.server.admin_ok("POST", "/api/rooms", {"room": "vip"})
        self.server.admin_ok("PUT", "/api/rooms/vip/pattern", {"key": "vip", "value": "yes"})
        c, old = self.client(), self.client()
        self.fails("conn", "join", c.id, "vip", error=NOT_AUTHORIZED, status=400)
        self.assertEqual(c.details()["room"], "defaultRoom")
        self.ok("conn", "join", c.id, "vip", "--force")
        self.assertEqual(c.details()["room"], "vip")
        old.expect(chat(LEFT, "defaultRoom", c.id))
        self.assertJson(self.ok_json("conn", "join", c.id, "vip"), {"added": False})
        self.assertJson(self.ok_json("conn", "join", c.id, "lobby"), {"added": True})
        self.fails("conn", "join", c.id, "nosuch", error="room does not exist", status=404)
        self.fails("conn", "join", "no-such-id", "lobby", error="connection not found",
                   status=404)

    def test_conn_leave(self):
        c, other = self.client(), self.client()
        self.ok("conn", "leave", c.id)
        other.expect(chat(LEFT, "defaultRoom", c.id))
        self.assertIsNone(c.details()["room"])
        self.assertJson(self.ok_json("conn", "leave", c.id), {"removed": False})
        self.assertJson(self.ok_json("conn", "leave", other.id), {"removed": True})
        self.fails("conn", "leave", "no-such-id", error="connection not found", status=404)

    def test_conn_kick(self):
        a, b, watcher = self.client(), self.client(), self.client()
        a_id, b_id = a.id, b.id
        self.ok("conn", "kick", a_id)
        a.expect_goodbye("disconnected by server")
        watcher.expect(chat(LEFT, "defaultRoom", a_id))
        self.assertJson(self.ok_json("conn", "kick", b_id), {"disconnected": True})
        b.expect_goodbye("disconnected by server")
        self.fails("conn", "kick", "no-such-id", error="connection not found", status=404)

    def test_stats(self):
        a = self.client()
        a.details()
        out = self.ok("stats")
        human = {}
        for line in out.splitlines():
            key, value = line.split(None, 1)
            human[key] = value.strip()
        answer = self.ok_json("stats")
        self.assertEqual(sorted(human), sorted(answer))
        for key in ("connections", "connectionsSocket", "rooms", "workers"):
            self.assertEqual(human[key], str(answer[key]), key)
        self.assertEqual((answer["connections"], answer["rooms"], answer["workers"]), (1, 2, 2))
        self.assertGreaterEqual(answer["messagesIn"], 1)

    def test_wrong_key_exit_1(self):
        proc = self.run_ctl("--url", self.url(), "--key", "wrong", "rooms")
        self.assertExit(proc, 1)
        self.assertIn("unauthorized", proc.err)
        self.assertIn("401", proc.err)
        proc = self.run_ctl("--url", self.url(), "rooms")  # no key at all
        self.assertExit(proc, 1)
        proc = self.run_ctl("--json", "--url", self.url(), "--key", "wrong", "stats")
        self.assertExit(proc, 1)
        self.assertJson(json.loads(proc.out), {"error": "unauthorized"})

    def test_values_are_json(self):
        """"VALUE is JSON when it parses as JSON (true, 3, "x"), else a string" (--help)."""
        self.server.admin_ok("POST", "/api/rooms", {"room": "typed"})
        cases = [("3", 3), ("-1", -1), ("2.5", 2.5), ("true", True), ("false", False),
                 ('"3"', "3"), ('"true"', "true"), ("admin", "admin"), ("", ""),
                 ("3 apples", "3 apples")]
        c = self.client()
        for text, value in cases:
            with self.subTest(value=text):
                self.assertJson(self.ok_json("room", "auth", "typed", "k", text),
                                {"pattern": {"k": value}})
                self.assertJson(self.ok_json("conn", "set", c.id, "k", text)["attributes"]["k"],
                                value)
        # Objects and arrays are JSON too, for attributes (a pattern takes scalars only).
        self.assertJson(self.ok_json("conn", "set", c.id, "o", '{"a":[1]}')["attributes"]["o"],
                        {"a": [1]})


# ---------------------------------------------------------------------------------------------
# Where the URL and key come from
# ---------------------------------------------------------------------------------------------

class Configuration(RoomctlCase):

    def setUp(self):
        self.server = self.start_server()

    def write_config(self, text):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(text)
        self.addCleanup(os.unlink, f.name)
        return f.name

    def good_config(self):
        return self.write_config("# roomctl reads the admin side of roomd.conf\n"
                                 "admin_bind = 127.0.0.1\nadmin_port = %d\nadmin_key = %s\n"
                                 % (self.server.admin_port, ADMIN_KEY))

    def test_config_file(self):
        conf = self.good_config()
        for flag in ("-c", "--config"):
            with self.subTest(flag=flag):
                proc = self.run_ctl(flag, conf, "rooms")
                self.assertExit(proc, 0)
                self.assertEqual(proc.out.splitlines(), ["defaultRoom"])
        proc = self.run_ctl("-c", conf, "--json", "stats")
        self.assertExit(proc, 0)
        self.assertEqual(json.loads(proc.out)["workers"], 2)

    def test_config_file_wrong_key(self):
        conf = self.write_config("admin_port = %d\nadmin_key = not-the-key\n"
                                 % self.server.admin_port)
        proc = self.run_ctl("-c", conf, "rooms")
        self.assertExit(proc, 1)
        self.assertIn("401", proc.err)

    def test_config_file_wrong_port(self):
        conf = self.write_config("admin_port = %d\nadmin_key = %s\n" % (free_port(), ADMIN_KEY))
        self.assertExit(self.run_ctl("-c", conf, "rooms"), 3)

    def test_environment(self):
        env = {"ROOMD_URL": self.url(), "ROOMD_ADMIN_KEY": ADMIN_KEY}
        proc = self.run_ctl("rooms", env=env)
        self.assertExit(proc, 0)
        self.assertEqual(proc.out.splitlines(), ["defaultRoom"])
        proc = self.run_ctl("rooms", env=dict(env, ROOMD_ADMIN_KEY="wrong"))
        self.assertExit(proc, 1)

    def test_flags_beat_environment(self):
        env = {"ROOMD_URL": "http://127.0.0.1:%d" % free_port(), "ROOMD_ADMIN_KEY": "wrong"}
        proc = self.run_ctl("--url", self.url(), "--key", ADMIN_KEY, "rooms", env=env)
        self.assertExit(proc, 0)
        self.assertEqual(proc.out.splitlines(), ["defaultRoom"])

    def test_config_beats_environment(self):
        # --help: "default to admin_bind, admin_port and admin_key of the config file (-c),
        # then ROOMD_URL and ROOMD_ADMIN_KEY".
        env = {"ROOMD_URL": "http://127.0.0.1:%d" % free_port(), "ROOMD_ADMIN_KEY": "wrong"}
        proc = self.run_ctl("-c", self.good_config(), "rooms", env=env)
        self.assertExit(proc, 0)
        # A config without admin_key leaves the key to the environment.
        conf = self.write_config("admin_port = %d\n" % self.server.admin_port)
        proc = self.run_ctl("-c", conf, "rooms", env={"ROOMD_ADMIN_KEY": ADMIN_KEY})
        self.assertExit(proc, 0)

    def test_flags_beat_config(self):
        """--url and --key given on the command line win over the config file's defaults."""
        conf = self.write_config("admin_port = %d\nadmin_key = wrong\n" % free_port())
        proc = self.run_ctl("-c", conf, "--url", self.url(), "--key", ADMIN_KEY, "rooms")
        self.assertExit(proc, 0)
        self.assertEqual(proc.out.splitlines(), ["defaultRoom"])


# ---------------------------------------------------------------------------------------------
# roomctl token and the auth verb
# ---------------------------------------------------------------------------------------------

class Token(RoomctlCase):

    def setUp(self):
        self.server = self.start_server(token_secret=SECRET, starting_rooms="defaultRoom,staff")

    def token(self, *args, env=None):
        proc = self.run_ctl("token", *args, env=env)
        self.assertExit(proc, 0, "roomctl token %s" % " ".join(args))
        token = proc.out.strip()
        self.assertEqual(proc.out, token + "\n")
        self.assertRegex(token, r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$")
        return token

    def test_token_accepted_by_the_daemon(self):
        before = int(time.time())
        token = self.token("--secret", SECRET, "sub=42", "role=admin", "--exp", "60")
        after = int(time.time())
        header, claims = decode_token(token)
        self.assertEqual(header.get("alg"), "HS256")
        self.assertTrue(before <= claims["iat"] <= after, claims)
        self.assertTrue(before + 60 <= claims["exp"] <= after + 60, claims)
        self.assertEqual(claims["role"], "admin")

        self.server.admin_ok("PUT", "/api/rooms/staff/pattern",
                             {"pattern": {"authenticated": True, "role": "admin"}})
        c = self.client()
        self.assertError(c, "roomChange staff", NOT_AUTHORIZED)
        before_attrs = c.details()["attributes"]
        reply = c.request("auth " + token)
        self.assertEqual((reply["status"], reply["messageCount"]), ("OK", c.count), reply)
        attrs = reply["data"]
        # Claims become attributes (exp and iat do not); authenticated becomes true.
        self.assertJson(attrs, dict(before_attrs, sub=claims["sub"], role="admin",
                                    authenticated=True))
        self.assertJson(c.details()["attributes"], attrs)
        self.assertOK(c, "roomChange staff", True)

    def test_sub_is_a_number(self):
        """sub=42: "VALUE is JSON when it parses as JSON", so the claim is the number 42."""
        _, claims = decode_token(self.token("--secret", SECRET, "sub=42", "n=-3", "ok=true"))
        self.assertJson({k: claims[k] for k in ("sub", "n", "ok")},
                        {"sub": 42, "n": -3, "ok": True})

    def test_claim_types(self):
        _, claims = decode_token(self.token("--secret", SECRET, 's="42"', "name=Ann Lee",
                                            "team=", 'o={"a":[1,"x"]}', "eq=a=b"))
        self.assertJson({k: claims[k] for k in ("s", "name", "team", "o", "eq")},
                        {"s": "42", "name": "Ann Lee", "team": "", "o": {"a": [1, "x"]},
                         "eq": "a=b"})
        c = self.client()
        attrs = c.request("auth " + self.token("--secret", SECRET, 'o={"a":[1,"x"]}'))["data"]
        self.assertJson(attrs["o"], {"a": [1, "x"]})

    def test_no_exp_without_flag(self):
        _, claims = decode_token(self.token("--secret", SECRET, "role=x"))
        self.assertNotIn("exp", claims)

    def test_expired_after_exp(self):
        """--exp takes seconds from now; once they have passed the daemon says token expired."""
        token = self.token("--secret", SECRET, "role=admin", "--exp", "1")
        _, claims = decode_token(token)
        c = self.client()
        # Wait for the clock (not a fixed sleep): exp == now is already expired.
        deadline = time.monotonic() + 5
        while time.time() < claims["exp"]:
            self.assertLess(time.monotonic(), deadline, "clock did not reach exp")
            time.sleep(0.05)
        self.assertError(c, "auth " + token, "token expired")
        self.assertJson(c.details()["attributes"]["authenticated"], False)

    def test_expired_claim(self):
        # An exp claim in the past, given as a claim (VALUE is JSON, so a number).
        past = int(time.time()) - 120
        token = self.token("--secret", SECRET, "role=admin", "exp=%d" % past)
        _, claims = decode_token(token)
        self.assertEqual(claims["exp"], past)
        c = self.client()
        self.assertError(c, "auth " + token, "token expired")
        self.assertJson(c.details()["attributes"]["authenticated"], False)
        self.assertNotIn("role", c.details()["attributes"])

    def test_exp_not_positive(self):
        """--exp 0 or a negative --exp must not silently give a token that never expires:
        either it is refused as usage (2) or the token is already expired."""
        for value in ("-60", "0", "soon", "60s"):
            with self.subTest(exp=value):
                proc = self.run_ctl("token", "--secret", SECRET, "role=x", "--exp", value)
                if proc.returncode == 2:
                    continue
                self.assertExit(proc, 0)
                token = proc.out.strip()
                _, claims = decode_token(token)
                self.assertIn("exp", claims, "--exp %s gave a token without exp" % value)
                c = self.client()
                self.assertError(c, "auth " + token, "token expired")

    def test_wrong_secret_rejected(self):
        proc = self.run_ctl("token", "--secret", "other-secret", "role=admin")
        self.assertExit(proc, 0)
        c = self.client()
        self.assertError(c, "auth " + proc.out.strip(), "invalid token")

    def test_secret_from_config(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("token_secret = %s\n" % SECRET)
        self.addCleanup(os.unlink, f.name)
        proc = self.run_ctl("-c", f.name, "token", "role=cfg")
        self.assertExit(proc, 0)
        token = proc.out.strip()
        decode_token(token)
        c = self.client()
        self.assertEqual(c.request("auth " + token)["data"]["role"], "cfg")
        # --secret wins over the config's.
        proc = self.run_ctl("-c", f.name, "token", "--secret", "x", "role=cfg")
        self.assertExit(proc, 0)
        self.assertError(c, "auth " + proc.out.strip(), "invalid token")

    def test_token_needs_a_secret(self):
        for args in (["token", "role=x"], ["token", "--secret", "", "role=x"]):
            with self.subTest(args=args):
                proc = self.run_ctl(*args)
                self.assertExit(proc, 2)
                self.assertEqual(proc.out, "")
                self.assertIn("secret", proc.err)

    def test_token_usage(self):
        for args in (["token", "--secret", SECRET, "noequals"], ["token", "--secret"],
                     ["token", "--secret", SECRET, "--exp"]):
            with self.subTest(args=args):
                self.assertExit(self.run_ctl(*args), 2)

    def test_token_needs_no_server(self):
        # Signing is local: no URL, no key, nothing listening.
        proc = self.run_ctl("token", "--secret", SECRET, "a=1",
                            env={"ROOMD_URL": "http://127.0.0.1:%d" % free_port()})
        self.assertExit(proc, 0)
        decode_token(proc.out.strip())

    def test_auth_disabled(self):
        server = self.start_server()  # no token_secret
        c = self.client(server)
        self.assertError(c, "auth " + self.token("--secret", SECRET, "a=1"), "auth is disabled")


if __name__ == "__main__":
    main()
