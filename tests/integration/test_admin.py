#!/usr/bin/env python3
"""The admin HTTP API, endpoint by endpoint and error by error (PROTOCOL.md "Server side").

test_rooms_auth.py already covers patterns joined with roomChange/listenToRoom, read-only
attributes one by one, deleting rooms with members, and the basic 200 answers; this file covers
the rest of the table: every status (401, 404, 405, 400, 413) on every route, exact bodies,
the connection list across workers, direct messages, addMember/removeMember, broadcasts from a
connection, stats counters, and percent-encoded names.

Requests go over real HTTP: harness.admin() (urllib) for JSON, http_raw() below (a socket) for
what urllib cannot send: bad bodies, any method, missing headers, oversized and chunked bodies.
"""

import http.client
import json
import socket
import time

import harness
from harness import (ADMIN_KEY, DELETED, ENTERED, LEFT, RoomdTestCase, chat, chat_regex, main,
                     now_ms, room_path)

NOT_AUTHORIZED = "not authorized to join room"
NO_ROOM = {"error": "room does not exist"}
NO_CONN = {"error": "connection not found"}
INVALID = {"error": "invalid request"}
MAX_BODY = 1024 * 1024  # "body too large (413)": the API reads at most 1 MiB
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")

# Every route of the table: path template (ROOM, ID filled in) -> the methods it serves.
ROUTES = {
    "/api/rooms": {"GET", "POST"},
    "/api/rooms/ROOM": {"GET", "DELETE"},
    "/api/rooms/ROOM/pattern": {"PUT"},
    "/api/rooms/ROOM/broadcast": {"POST"},
    "/api/connections": {"GET"},
    "/api/connections/ID": {"GET", "DELETE"},
    "/api/connections/ID/message": {"POST"},
    "/api/connections/ID/attributes": {"PATCH"},
    "/api/connections/ID/room": {"PUT", "DELETE"},
    "/api/stats": {"GET"},
    "/metrics": {"GET"},
}
# Routes that read a JSON object body.
BODY_ROUTES = [("POST", "/api/rooms"), ("PUT", "/api/rooms/ROOM/pattern"),
               ("POST", "/api/rooms/ROOM/broadcast"), ("POST", "/api/connections/ID/message"),
               ("PATCH", "/api/connections/ID/attributes"), ("PUT", "/api/connections/ID/room")]


def http_raw(port, method, path, body=None, headers=None, key=ADMIN_KEY, send_body=True,
             timeout=5):
    """One HTTP/1.1 request over a plain socket; returns (status, headers, raw body).

    body is bytes (sent with Content-Length unless headers say Transfer-Encoding); key None
    sends no Authorization header; send_body=False announces the body but never sends it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        h = {"Host": "127.0.0.1:%d" % port, "Connection": "close"}
        if key is not None:
            h["Authorization"] = "Bearer " + key
        if body is not None and "Transfer-Encoding" not in (headers or {}):
            h["Content-Length"] = str(len(body))
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        head = "%s %s HTTP/1.1\r\n%s\r\n" % (method, path, "".join(
            "%s: %s\r\n" % kv for kv in h.items()))
        sock.sendall(head.encode())
        if body is not None and send_body:
            try:
                sock.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer (413) and close before reading it all
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        sock.close()


def wait_for(predicate, timeout=5, what="condition"):
    """Poll predicate() until it returns a true value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %ss" % (what, timeout))
        time.sleep(0.01)


class AdminCase(RoomdTestCase):
    workers = 2

    def setUp(self):
        self.server = self.start_server(workers=self.workers, starting_rooms="defaultRoom,lobby")

    # -- helpers -------------------------------------------------------------------------------

    def call(self, method, path, body=None):
        return self.server.admin(method, path, body)

    def ok(self, method, path, body=None):
        return self.server.admin_ok(method, path, body)

    def raw(self, method, path, body=None, **kwargs):
        return http_raw(self.server.admin_port, method, path, body, **kwargs)

    def assertAnswer(self, method, path, body, status, answer):
        got = self.call(method, path, body)
        self.assertEqual(got[0], status, "%s %s %s -> %r" % (method, path, body, got))
        self.assertJson(got[1], answer)

    def assertRawError(self, got, status, text=None):
        """A raw answer must be this status with a JSON {"error": TEXT} body."""
        code, headers, raw = got
        self.assertEqual(code, status, raw[:300])
        self.assertEqual(headers.get("content-type"), "application/json", raw[:300])
        body = json.loads(raw)
        self.assertEqual(list(body), ["error"], raw)
        self.assertIsInstance(body["error"], str)
        if text is not None:
            self.assertEqual(body["error"], text)

    def create(self, room):
        self.assertJson(self.ok("POST", "/api/rooms", {"room": room}), {"created": 1})

    def conn_path(self, client_or_id, suffix=""):
        cid = client_or_id if isinstance(client_or_id, str) else client_or_id.id
        return "/api/connections/%s%s" % (room_path(cid), suffix)

    def fill(self, template, room="lobby", cid="no-such-connection"):
        return template.replace("ROOM", room_path(room)).replace("ID", room_path(cid))

    def stats(self):
        return self.ok("GET", "/api/stats")


# ---------------------------------------------------------------------------------------------
# 401
# ---------------------------------------------------------------------------------------------

class Unauthorized(AdminCase):

    def test_every_route_needs_the_key(self):
        c = self.client()
        for template, methods in ROUTES.items():
            path = self.fill(template, cid=c.id)
            for method in methods:
                for key in (None, "wrong", ""):
                    with self.subTest(method=method, path=template, key=key):
                        body = b'{"room":"x","message":"x"}' if method != "GET" else None
                        self.assertRawError(self.raw(method, path, body, key=key), 401)
        # Nothing happened: no room was made, the connection is still there.
        self.assertNotIn("x", self.ok("GET", "/api/rooms")["rooms"])
        c.assert_silent(match=chat(sender=0))
        self.assertEqual(c.details()["room"], "defaultRoom")

    def test_key_must_match_exactly(self):
        # (Whitespace at the very end of a header value is not part of it in HTTP.)
        wrong = ["testke", "testkeyX", "Testkey", " testkey", "test key", "x" * len(ADMIN_KEY),
                 ADMIN_KEY * 2, ADMIN_KEY + "\u00e9"]
        for key in wrong:
            with self.subTest(key=key):
                self.assertRawError(self.raw("GET", "/api/rooms", key=key), 401, "unauthorized")
        for header in ("testkey", "Basic testkey", "Bearer", "Bearertestkey", "Token testkey"):
            with self.subTest(header=header):
                got = self.raw("GET", "/api/rooms", key=None, headers={"Authorization": header})
                self.assertRawError(got, 401, "unauthorized")
        status, _, raw = self.raw("GET", "/api/rooms")
        self.assertEqual(status, 200, raw)

    def test_key_checked_before_anything_else(self):
        # Unknown paths, wrong methods, bad bodies: without the key, all are 401.
        for method, path, body in [("GET", "/api/nothing", None), ("GET", "/", None),
                                   ("PATCH", "/api/rooms", None),
                                   ("POST", "/api/rooms", b"{not json"),
                                   ("DELETE", "/api/rooms/nowhere", None),
                                   ("GET", "/api/connections/no-such-id", None)]:
            with self.subTest(method=method, path=path):
                self.assertRawError(self.raw(method, path, body, key=None), 401, "unauthorized")
                self.assertRawError(self.raw(method, path, body, key="nope"), 401, "unauthorized")

    def test_api_off_without_admin_key(self):
        server = self.start_server(admin_key="")  # ready: admin_start() has run
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.admin_port), timeout=5).close()
        # The chat side works as usual.
        c = self.client(server)
        self.assertEqual(c.details()["room"], "defaultRoom")

    def test_api_off_with_port_zero(self):
        server = self.start_server(admin_port=0)  # the key is set, the port is not
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.admin_port), timeout=5).close()
        self.assertEqual(self.client(server).details()["room"], "defaultRoom")


# ---------------------------------------------------------------------------------------------
# 404
# ---------------------------------------------------------------------------------------------

class NotFound(AdminCase):

    def test_unknown_paths(self):
        for method, path in [("GET", "/"), ("GET", "/api"), ("GET", "/api/"),
                             ("GET", "/api/nothing"), ("POST", "/api/nothing"),
                             ("GET", "/api/room"), ("GET", "/api/Rooms"), ("GET", "/rooms"),
                             ("GET", "/api/stats/extra"), ("GET", "/api/rooms/lobby/members"),
                             ("PUT", "/api/rooms/lobby/patterns"),
                             ("GET", "/api/connections/x/details"), ("GET", "/metrics/x"),
                             ("GET", "/apirooms")]:
            with self.subTest(method=method, path=path):
                self.assertRawError(self.raw(method, path), 404)

    def test_unknown_deep_paths(self):
        """More segments than any route has is an unknown path too (404, not 400)."""
        for method, path in [("GET", "/api/rooms/lobby/pattern/extra"),
                             ("GET", "/api/connections/x/room/extra"),
                             ("GET", "/api/a/b/c/d/e/f")]:
            with self.subTest(method=method, path=path):
                self.assertRawError(self.raw(method, path), 404)

    def test_unknown_room(self):
        self.assertAnswer("DELETE", "/api/rooms/nowhere", None, 404, NO_ROOM)
        self.assertAnswer("POST", "/api/rooms/nowhere/broadcast", {"message": "x"}, 404, NO_ROOM)
        self.assertAnswer("PUT", "/api/rooms/nowhere/pattern", {"key": "k", "value": 1}, 404,
                          NO_ROOM)
        self.assertAnswer("PUT", "/api/rooms/nowhere/pattern", {"pattern": {"k": 1}}, 404,
                          NO_ROOM)
        self.assertAnswer("PUT", "/api/rooms/nowhere/pattern", {"key": None}, 404, NO_ROOM)
        # None of them made the room.
        self.assertJson(self.ok("GET", "/api/rooms/nowhere")["exists"], False)
        self.assertNotIn("nowhere", self.ok("GET", "/api/rooms")["rooms"])

    def test_deleted_room_is_unknown(self):
        self.create("gone")
        self.assertJson(self.ok("DELETE", "/api/rooms/gone"), {"deleted": True})
        self.assertAnswer("DELETE", "/api/rooms/gone", None, 404, NO_ROOM)
        self.assertAnswer("POST", "/api/rooms/gone/broadcast", {"message": "x"}, 404, NO_ROOM)
        self.assertAnswer("PUT", "/api/rooms/gone/pattern", {"key": None}, 404, NO_ROOM)

    def test_unknown_connection_on_every_endpoint(self):
        bodies = {"message": {"message": "x"}, "attributes": {"a": 1}, "room": {"room": "lobby"}}
        for cid in ("no-such-id", "00000000-0000-4000-8000-000000000000", "a b/c"):
            for method, suffix in [("GET", ""), ("DELETE", ""), ("POST", "/message"),
                                   ("PATCH", "/attributes"), ("PUT", "/room"),
                                   ("DELETE", "/room")]:
                with self.subTest(cid=cid, method=method, suffix=suffix):
                    body = bodies.get(suffix.lstrip("/")) if method != "DELETE" else None
                    self.assertAnswer(method, self.conn_path(cid, suffix), body, 404, NO_CONN)

    def test_closed_connection_is_unknown(self):
        c, watcher = self.client(), self.client()
        cid = c.id
        c.close()
        watcher.expect(chat(LEFT, "defaultRoom", cid))
        wait_for(lambda: self.call("GET", self.conn_path(cid))[0] == 404, what="404 for closed")
        self.assertAnswer("GET", self.conn_path(cid), None, 404, NO_CONN)
        self.assertAnswer("POST", self.conn_path(cid, "/message"), {"message": "x"}, 404, NO_CONN)
        self.assertAnswer("DELETE", self.conn_path(cid), None, 404, NO_CONN)
        self.assertNotIn(cid, [d["id"] for d in self.ok("GET", "/api/connections")["connections"]])


# ---------------------------------------------------------------------------------------------
# 405
# ---------------------------------------------------------------------------------------------

class WrongMethod(AdminCase):

    def test_every_route_every_wrong_method(self):
        c = self.client()
        self.create("r")
        for template, allowed in ROUTES.items():
            if template == "/metrics":
                continue  # test_metrics_wrong_method
            for cid in (c.id, "no-such-id"):  # the method is wrong whatever the id
                path = self.fill(template, room="r", cid=cid)
                for method in sorted(set(METHODS) - allowed):
                    with self.subTest(method=method, path=template, cid=cid):
                        body = b'{"room":"r","message":"m","key":null}'
                        self.assertRawError(self.raw(method, path, body), 405,
                                            "method not allowed")
        # Nothing changed.
        self.assertEqual(c.details()["room"], "defaultRoom")
        c.assert_silent(match=chat(sender=0))
        self.assertJson(self.ok("GET", "/api/rooms/r")["exists"], True)

    def test_metrics_wrong_method(self):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            with self.subTest(method=method):
                self.assertRawError(self.raw(method, "/metrics", b"{}"), 405,
                                    "method not allowed")

    def test_wrong_method_on_missing_room(self):
        # The route is known, the method is not: 405 even where the room would be 404.
        self.assertRawError(self.raw("POST", "/api/rooms/nowhere", b"{}"), 405,
                            "method not allowed")
        self.assertRawError(self.raw("GET", "/api/rooms/nowhere/broadcast"), 405,
                            "method not allowed")


# ---------------------------------------------------------------------------------------------
# 400 and 413
# ---------------------------------------------------------------------------------------------

class BadRequest(AdminCase):

    def setUp(self):
        super().setUp()
        self.c = self.client()

    def body_routes(self):
        for method, template in BODY_ROUTES:
            yield method, template, self.fill(template, cid=self.c.id)

    def test_bad_json_body(self):
        for body in (b"{not json", b'{"room":"a"', b"", b"   ", b'{"room":}', b"\xff\xfe",
                     b"nul\x00l"):
            for method, template, path in self.body_routes():
                with self.subTest(body=body, method=method, path=template):
                    self.assertRawError(self.raw(method, path, body), 400, "invalid request")
        self.assertNothingChanged()

    def test_bad_json_body_strict(self):
        """A body is one JSON text: trailing bytes or a lenient dialect are bad JSON (400)."""
        for body in (b'{"room":"a1","message":"m","key":null} x', b'{"room":"a2"}{}',
                     b"{'room':'a3'}", b'{"room":"a4",}'):
            for method, template, path in self.body_routes():
                with self.subTest(body=body, method=method, path=template):
                    self.assertRawError(self.raw(method, path, body), 400, "invalid request")

    def test_body_not_an_object(self):
        for body in (b"[]", b'["room","x"]', b'"lobby"', b"42", b"true", b"null"):
            for method, template, path in self.body_routes():
                with self.subTest(body=body, method=method, path=template):
                    self.assertRawError(self.raw(method, path, body), 400, "invalid request")
        self.assertNothingChanged()

    def test_no_body_at_all(self):
        for method, template, path in self.body_routes():
            with self.subTest(method=method, path=template):
                self.assertRawError(self.raw(method, path), 400, "invalid request")

    def assertNothingChanged(self):
        self.assertEqual(sorted(self.ok("GET", "/api/rooms")["rooms"]), ["defaultRoom", "lobby"])
        self.assertJson(self.ok("GET", "/api/rooms/lobby")["pattern"], {})
        self.c.assert_silent(match=chat(sender=0))
        self.assertEqual(self.c.details()["room"], "defaultRoom")

    def test_missing_room(self):
        for body in ({}, {"room": ""}, {"room": None}, {"name": "x"}):
            with self.subTest(body=body):
                self.assertAnswer("POST", "/api/rooms", body, 400, {"error": "room is required"})
                self.assertAnswer("PUT", self.conn_path(self.c, "/room"), body, 400,
                                  {"error": "room is required"})

    def test_invalid_room_name(self):
        long_name = "r" * 257  # max_room_name is 256 bytes
        for room in ("bad\nname", "tab\there", "bell\u0007", "del\u007f", long_name):
            with self.subTest(room=room[:20]):
                self.assertAnswer("POST", "/api/rooms", {"room": room}, 400,
                                  {"error": "invalid room name"})
                self.assertAnswer("PUT", self.conn_path(self.c, "/room"), {"room": room}, 400,
                                  {"error": "invalid room name"})
        # 256 bytes (of 2-byte characters) is fine.
        self.assertJson(self.ok("POST", "/api/rooms", {"room": "\u00e9" * 128}), {"created": 1})

    def test_room_name_with_nul(self):
        """JSON can carry a NUL (\\u0000) in a string; a room name cannot hold one (invalid room
        name, as the verbs say), and it must not be cut short to the part before it."""
        self.create("nul")
        for room in ("nul\u0000x", "nul\u0000", "\u0000"):
            with self.subTest(room=room):
                self.assertAnswer("POST", "/api/rooms", {"room": room}, 400,
                                  {"error": "invalid room name"})
                self.assertAnswer("PUT", self.conn_path(self.c, "/room"), {"room": room}, 400,
                                  {"error": "invalid room name"})
        self.assertEqual(self.c.details()["room"], "defaultRoom")
        self.assertJson(self.ok("GET", "/api/rooms/nul")["membersCount"], 0)

    def test_read_only_attribute_applies_nothing(self):
        before = self.c.details()["attributes"]
        for key in ("id", "type", "remoteIP", "remotePort", "connectedAt"):
            with self.subTest(key=key):
                self.assertAnswer("PATCH", self.conn_path(self.c, "/attributes"),
                                  {"role": "admin", key: "x"}, 400,
                                  {"error": "attribute is read-only"})
                self.assertAnswer("PATCH", self.conn_path(self.c, "/attributes"),
                                  {key: None}, 400, {"error": "attribute is read-only"})
        # All or nothing: "role" was not set along the way.
        self.assertJson(self.c.details()["attributes"], before)

    def test_pattern_value_not_scalar(self):
        path = "/api/rooms/lobby/pattern"
        self.ok("PUT", path, {"key": "role", "value": "admin"})
        for body in ({"key": "k", "value": [1]}, {"key": "k", "value": {"a": 1}},
                     {"key": "k", "value": []}, {"pattern": {"k": [1, 2]}},
                     {"pattern": {"ok": 1, "k": {"nested": True}}}):
            with self.subTest(body=body):
                status, answer = self.call("PUT", path, body)
                self.assertEqual(status, 400, answer)
                self.assertIsInstance(answer.get("error"), str)
        # The old pattern stays.
        self.assertJson(self.ok("GET", "/api/rooms/lobby")["pattern"], {"role": "admin"})

    def test_pattern_body_malformed(self):
        path = "/api/rooms/lobby/pattern"
        for body in ({}, {"value": 1}, {"key": 5, "value": 1}, {"key": ["k"], "value": 1},
                     {"pattern": [["k", 1]]}, {"pattern": "k=1"}, {"pattern": 1}):
            with self.subTest(body=body):
                status, answer = self.call("PUT", path, body)
                self.assertEqual(status, 400, answer)
                self.assertIsInstance(answer.get("error"), str)
        self.assertJson(self.ok("GET", "/api/rooms/lobby")["pattern"], {})

    def test_message_required(self):
        for body in ({}, {"message": None}, {"msg": "x"}):
            with self.subTest(body=body):
                self.assertAnswer("POST", "/api/rooms/lobby/broadcast", body, 400,
                                  {"error": "message is required"})
                self.assertAnswer("POST", self.conn_path(self.c, "/message"), body, 400,
                                  {"error": "message is required"})
        self.c.assert_silent(match=chat(sender=0))

    def test_attributes_body_errors(self):
        path = self.conn_path(self.c, "/attributes")
        self.assertRawError(self.raw("PATCH", path, b"[1]"), 400, "invalid request")
        self.assertRawError(self.raw("PATCH", path, b"{"), 400, "invalid request")

    def test_malformed_path(self):
        # A NUL cannot be in a room name or an id.
        self.assertRawError(self.raw("GET", "/api/rooms/a%00b"), 400, "malformed path")
        self.assertRawError(self.raw("GET", "/api/connections/a%00b"), 400, "malformed path")


class TooLarge(AdminCase):

    def test_body_over_one_mib(self):
        # Announced with Content-Length and not even sent.
        for method, template in BODY_ROUTES:
            path = self.fill(template)
            with self.subTest(method=method, path=template):
                status, _, raw = self.raw(method, path, b"x" * (MAX_BODY + 1), send_body=False)
                self.assertEqual(status, 413, raw[:200])
        # Sent in full.
        big = json.dumps({"room": "r" * MAX_BODY}).encode()
        status, _, raw = self.raw("POST", "/api/rooms", big)
        self.assertEqual(status, 413, raw[:200])
        # Chunked, so the size shows only as it arrives.
        chunk = b"x" * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17)) + b"0\r\n\r\n"
        status, _, raw = self.raw("POST", "/api/rooms", body,
                                  headers={"Transfer-Encoding": "chunked"})
        self.assertEqual(status, 413, raw[:200])
        # The server is fine afterwards.
        self.assertEqual(sorted(self.ok("GET", "/api/rooms")["rooms"]), ["defaultRoom", "lobby"])

    def test_body_over_one_mib_is_refused_at_once(self):
        """decision: libevent 2.1's evhttp answers an oversized body itself, before roomd
        sees the request, so this 413 is its HTML page, not {"error":...}; it comes at once,
        without the body being read (no way for a client to make roomd buffer it)."""
        status, headers, _ = self.raw("POST", "/api/rooms", b"x" * (MAX_BODY + 1),
                                      send_body=False)
        self.assertEqual(status, 413)

    def test_one_mib_body_accepted(self):
        c = self.client()
        self.assertOK(c, "roomChange lobby", True)
        prefix, suffix = b'{"message":"', b'"}'
        text = "m" * (MAX_BODY - len(prefix) - len(suffix))
        body = prefix + text.encode() + suffix
        self.assertEqual(len(body), MAX_BODY)
        status, _, raw = self.raw("POST", "/api/rooms/lobby/broadcast", body)
        self.assertEqual((status, json.loads(raw)), (200, {"sent": True}))
        self.assertEqual(c.expect(chat(room="lobby", sender=0), timeout=10)["message"], text)

    def test_small_chunked_body_accepted(self):
        parts = [b'{"room":', b'"chunked ', b'room"}']
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        status, _, raw = self.raw("POST", "/api/rooms", body,
                                  headers={"Transfer-Encoding": "chunked"})
        self.assertEqual((status, json.loads(raw)), (200, {"created": 1}))
        self.assertIn("chunked room", self.ok("GET", "/api/rooms")["rooms"])


# ---------------------------------------------------------------------------------------------
# Rooms
# ---------------------------------------------------------------------------------------------

class Rooms(AdminCase):

    def rooms(self):
        return sorted(self.ok("GET", "/api/rooms")["rooms"])

    def test_list_create_delete(self):
        status, headers, raw = self.raw("GET", "/api/rooms")
        self.assertEqual((status, headers.get("content-type")), (200, "application/json"))
        self.assertEqual(sorted(json.loads(raw)["rooms"]), ["defaultRoom", "lobby"])
        self.assertEqual(list(json.loads(raw)), ["rooms"])
        for room in ("one", "two", "with space", "a/b", "\u00fcml\u00e4ut", "a+b", "%41"):
            self.assertJson(self.ok("POST", "/api/rooms", {"room": room}), {"created": 1})
            self.assertJson(self.ok("POST", "/api/rooms", {"room": room}), {"created": 0})
        self.assertEqual(self.rooms(), sorted(["defaultRoom", "lobby", "one", "two",
                                               "with space", "a/b", "\u00fcml\u00e4ut", "a+b",
                                               "%41"]))
        self.assertJson(self.ok("POST", "/api/rooms", {"room": "lobby"}), {"created": 0})
        for room in ("two", "a/b", "a+b", "%41"):
            self.assertJson(self.ok("DELETE", "/api/rooms/" + room_path(room)), {"deleted": True})
        self.assertEqual(self.rooms(), sorted(["defaultRoom", "lobby", "one", "with space",
                                               "\u00fcml\u00e4ut"]))
        # Deleted and created again.
        self.assertJson(self.ok("POST", "/api/rooms", {"room": "two"}), {"created": 1})

    def test_extra_body_fields_ignored(self):
        self.assertJson(self.ok("POST", "/api/rooms", {"room": "x", "pattern": {"a": 1}}),
                        {"created": 1})

    def test_status_exists_and_missing(self):
        self.assertJson(self.ok("GET", "/api/rooms/nowhere"),
                        {"exists": False, "room": "nowhere", "members": {}, "membersCount": 0,
                         "pattern": {}})
        self.create("club")
        self.ok("PUT", "/api/rooms/club/pattern", {"pattern": {"member": True, "level": 2}})
        self.assertJson(self.ok("GET", "/api/rooms/club"),
                        {"exists": True, "room": "club", "members": {}, "membersCount": 0,
                         "pattern": {"member": True, "level": 2}})
        a, b = self.client(), self.client()
        for c in (a, b):
            self.ok("PATCH", self.conn_path(c, "/attributes"), {"member": True, "level": 2})
        before = now_ms()
        self.assertOK(a, "roomChange club", True)
        self.assertOK(b, "roomChange club", True)
        status = self.ok("GET", "/api/rooms/club")
        self.assertEqual(list(status), ["exists", "room", "members", "membersCount", "pattern"])
        self.assertEqual((status["membersCount"], sorted(status["members"])),
                         (2, sorted([a.id, b.id])))
        for c in (a, b):
            member = status["members"][c.id]
            self.assertEqual(sorted(member), ["id", "joinedAt"])
            self.assertEqual(member["id"], c.id)
            self.assertPlausibleMs(member["joinedAt"], before)
        # Members are what roomView says.
        view = a.request("roomView")["data"]
        self.assertJson(view["members"], status["members"])
        # Deleted with members in it: exists false, the members are gone from the status.
        self.ok("DELETE", "/api/rooms/club")
        gone = self.ok("GET", "/api/rooms/club")
        self.assertJson(gone["exists"], False)
        self.assertJson(gone["pattern"], {})

    def test_pattern_forms(self):
        self.create("p")
        path = "/api/rooms/p/pattern"
        # Single pair, each scalar type.
        for value in ("admin", 3, 2.5, True, False, ""):
            with self.subTest(value=value):
                self.assertJson(self.ok("PUT", path, {"key": "k", "value": value}),
                                {"pattern": {"k": value}})
                self.assertJson(self.ok("GET", "/api/rooms/p")["pattern"], {"k": value})
        # A single pair replaces a whole pattern.
        self.assertJson(self.ok("PUT", path, {"pattern": {"a": 1, "b": "two", "c": False}}),
                        {"pattern": {"a": 1, "b": "two", "c": False}})
        self.assertJson(self.ok("PUT", path, {"key": "d", "value": 4}), {"pattern": {"d": 4}})
        # A whole pattern replaces a whole pattern.
        self.assertJson(self.ok("PUT", path, {"pattern": {"a": 1, "b": 2}}),
                        {"pattern": {"a": 1, "b": 2}})
        self.assertJson(self.ok("PUT", path, {"pattern": {"c": 3}}), {"pattern": {"c": 3}})
        self.assertJson(self.ok("GET", "/api/rooms/p")["pattern"], {"c": 3})
        # Clearing: key null, an empty pattern, a null pattern.
        for body in ({"key": None}, {"pattern": {}}, {"pattern": None}):
            with self.subTest(clear=body):
                self.ok("PUT", path, {"key": "x", "value": 1})
                self.assertJson(self.ok("PUT", path, body), {"pattern": {}})
                self.assertJson(self.ok("GET", "/api/rooms/p")["pattern"], {})
        # A cleared pattern lets anyone in.
        self.assertOK(self.client(), "roomChange p", True)

    def test_percent_encoded_names(self):
        names = ["a/b", "with space", "a b/c d", "100%", "q?x=1", "hash#tag", "a+b",
                 "\u00e9t\u00e9 \u2603", "..", "."]
        c = self.client()
        for room in names:
            with self.subTest(room=room):
                self.create(room)
                enc = room_path(room)
                self.assertJson(self.ok("GET", "/api/rooms/" + enc)["exists"], True)
                self.assertEqual(self.ok("GET", "/api/rooms/" + enc)["room"], room)
                self.assertJson(self.ok("PUT", "/api/rooms/%s/pattern" % enc,
                                        {"key": "type", "value": "socket"}),
                                {"pattern": {"type": "socket"}})
                self.assertJson(self.ok("PUT", self.conn_path(c, "/room"), {"room": room}),
                                {"added": True})
                self.assertEqual(c.details()["room"], room)
                self.assertJson(self.ok("POST", "/api/rooms/%s/broadcast" % enc,
                                        {"message": "to " + room}), {"sent": True})
                self.assertChat(c.expect_raw(chat("to " + room)), "to " + room, room, 0)
                self.assertEqual(self.ok("GET", "/api/rooms/" + enc)["membersCount"], 1)
                self.assertJson(self.ok("DELETE", "/api/rooms/" + enc), {"deleted": True})
                c.expect(chat(DELETED, room, 0))
                self.assertJson(self.ok("GET", "/api/rooms/" + enc)["exists"], False)
        # "a/b" encoded is one room, not the path /a/b; "a%2Fb" on the wire.
        self.create("a/b")
        status, _, raw = self.raw("GET", "/api/rooms/a%2Fb")
        self.assertEqual((status, json.loads(raw)["room"]), (200, "a/b"))
        status, _, raw = self.raw("GET", "/api/rooms/a%2fb")  # lower-case hex too
        self.assertEqual((status, json.loads(raw)["room"]), (200, "a/b"))
        status, _, raw = self.raw("GET", "/api/rooms/with%20space")
        self.assertEqual(json.loads(raw)["room"], "with space")
        status, _, raw = self.raw("GET", "/api/rooms/a+b")  # '+' is a plus in a path
        self.assertEqual(json.loads(raw)["room"], "a+b")


# ---------------------------------------------------------------------------------------------
# Broadcast
# ---------------------------------------------------------------------------------------------

class Broadcast(AdminCase):

    def setUp(self):
        super().setUp()
        self.a, self.b, self.c = self.client(), self.client(), self.client()
        self.listener, self.outsider = self.client(), self.client()
        for m in (self.a, self.b, self.c):
            self.assertOK(m, "roomChange lobby", True)
        self.assertOK(self.listener, "listenToRoom lobby", True)
        self.members = (self.a, self.b, self.c, self.listener)

    def test_from_server(self):
        for message in ("plain", {"k": [1, {"x": None}]}, [1, "2"], 42, -1.5, True, False,
                        "", "sl/ash \u00e9 \"q\""):
            with self.subTest(message=message):
                before = now_ms()
                self.assertJson(self.ok("POST", "/api/rooms/lobby/broadcast",
                                        {"message": message}), {"sent": True})
                for m in self.members:
                    self.assertChat(m.expect_raw(chat(message, "lobby", 0)), message, "lobby", 0,
                                    before)
        self.outsider.assert_silent(match=chat(sender=0))

    def test_explicit_from_zero(self):
        self.ok("POST", "/api/rooms/lobby/broadcast", {"message": "zero", "from": 0})
        for m in self.members:
            self.assertChat(m.expect_raw(chat("zero")), "zero", "lobby", 0)

    def test_from_a_member(self):
        before = now_ms()
        self.assertJson(self.ok("POST", "/api/rooms/lobby/broadcast",
                                {"message": "as a", "from": self.a.id}), {"sent": True})
        for m in (self.b, self.c, self.listener):
            self.assertChat(m.expect_raw(chat("as a")), "as a", "lobby", self.a.id, before)
        self.a.assert_silent(match=chat("as a"))
        self.outsider.assert_silent(match=chat("as a"))
        # As say: a later say of a's comes after it for everyone.
        self.assertOK(self.a, "say then this")
        self.b.expect(chat("then this", "lobby", self.a.id))

    def test_from_a_listener(self):
        self.ok("POST", "/api/rooms/lobby/broadcast",
                {"message": {"n": 1}, "from": self.listener.id})
        for m in (self.a, self.b, self.c):
            self.assertJson(m.expect(chat(room="lobby", sender=self.listener.id))["message"],
                            {"n": 1})
        self.listener.assert_silent(match=chat(room="lobby", sender=self.listener.id))

    def test_order_kept(self):
        for i in range(50):
            self.ok("POST", "/api/rooms/lobby/broadcast", {"message": i})
        for m in self.members:
            got = [m.expect(chat(room="lobby", sender=0))["message"] for _ in range(50)]
            self.assertEqual(got, list(range(50)))


# ---------------------------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------------------------

class Connections(AdminCase):
    workers = 3

    def test_list_empty(self):
        status, _, raw = self.raw("GET", "/api/connections")
        self.assertEqual((status, raw), (200, b'{"connections":[]}\n'))

    def test_list_spans_workers(self):
        clients = [self.client() for _ in range(8)]  # round the 3 workers more than twice
        self.assertOK(clients[0], "roomChange lobby", True)
        self.assertOK(clients[1], "listenToRoom lobby", True)
        self.assertOK(clients[2], "paramAdd k=v", None)
        self.ok("PATCH", self.conn_path(clients[3], "/attributes"), {"role": "x"})
        mine = {c.id: c.details() for c in clients}
        listed = self.ok("GET", "/api/connections")
        self.assertEqual(list(listed), ["connections"])
        got = {d["id"]: d for d in listed["connections"]}
        self.assertEqual(len(got), len(listed["connections"]), "an id listed twice")
        self.assertEqual(sorted(got), sorted(mine))
        for cid, details in mine.items():
            self.assertJson(got[cid], details)
        # The list follows connections coming and going.
        gone = clients.pop()
        gone_id = gone.id
        gone.close()
        wait_for(lambda: gone_id not in [d["id"] for d in
                                          self.ok("GET", "/api/connections")["connections"]],
                 what="closed connection leaving the list")
        new = self.client()
        ids = [d["id"] for d in self.ok("GET", "/api/connections")["connections"]]
        self.assertEqual(sorted(ids), sorted([c.id for c in clients] + [new.id]))

    def test_list_many(self):
        clients = [self.client() for _ in range(40)]
        ids = sorted(c.id for c in clients)
        listed = self.ok("GET", "/api/connections")["connections"]
        self.assertEqual(sorted(d["id"] for d in listed), ids)
        for d in listed:
            self.assertEqual(list(d), ["id", "type", "remoteIP", "remotePort", "connectedAt",
                                       "room", "listeningRooms", "params", "attributes"])

    def test_one_connection(self):
        c = self.client()
        self.assertOK(c, "listenToRoom lobby", True)
        self.assertOK(c, "paramAdd color=blue", None)
        status, headers, raw = self.raw("GET", self.conn_path(c))
        self.assertEqual((status, headers.get("content-type")), (200, "application/json"))
        self.assertJson(json.loads(raw), c.details())
        details = json.loads(raw)
        self.assertEqual((details["id"], details["type"], details["remoteIP"],
                          details["remotePort"], details["room"], details["listeningRooms"],
                          details["params"]),
                         (c.id, "socket", "127.0.0.1", c.local_port, "defaultRoom", ["lobby"],
                          {"color": "blue"}))

    def test_message_to_exactly_one(self):
        a, b, c = self.client(), self.client(), self.client()
        for message in ("psst", {"type": "notice", "n": [1, 2]}, [None, True], 7, 0.25, False,
                        "", "\u2603 / \"quoted\" \\ back"):
            with self.subTest(message=message):
                before = now_ms()
                status, headers, raw = self.raw("POST", self.conn_path(b, "/message"),
                                                json.dumps({"message": message}).encode())
                self.assertEqual((status, raw), (200, b'{"sent":true}\n'))
                line = b.expect_raw(lambda m: m.get("from") == 0 and "room" not in m)
                # Exactly {"message":ANY-JSON,"from":0,"context":"user","sentAt":MS}.
                self.assertChat(line, message, None, 0, before)
                self.assertEqual(list(json.loads(line)), ["message", "from", "context", "sentAt"])
        for other in (a, c):
            other.assert_silent(match=lambda m: m.get("from") == 0)

    def test_message_not_in_a_room(self):
        server = self.start_server(default_room="")
        c = self.client(server)
        self.assertIsNone(c.details()["room"])
        server.admin_ok("POST", self.conn_path(c, "/message"), {"message": "still"})
        self.assertChat(c.expect_raw(chat("still")), "still", None, 0)

    def test_attributes_then_patterned_room(self):
        self.create("vault")
        self.ok("PUT", "/api/rooms/vault/pattern",
                {"pattern": {"clearance": 3, "vip": True, "team": "blue", "authenticated": True}})
        c = self.client()
        path = self.conn_path(c, "/attributes")
        self.assertError(c, "roomChange vault", NOT_AUTHORIZED)
        answer = self.ok("PATCH", path, {"clearance": 3, "vip": True, "team": "blue",
                                         "authenticated": True, "extra": {"nested": [1]}})
        self.assertEqual(list(answer), ["attributes"])
        self.assertJson(answer["attributes"], c.details()["attributes"])
        self.assertJson(answer["attributes"]["extra"], {"nested": [1]})
        # Merged, not replaced: another PATCH keeps the rest; null deletes.
        answer = self.ok("PATCH", path, {"extra": None, "more": "x"})
        self.assertNotIn("extra", answer["attributes"])
        self.assertEqual((answer["attributes"]["more"], answer["attributes"]["team"]),
                         ("x", "blue"))
        # An empty object changes nothing.
        self.assertJson(self.ok("PATCH", path, {}), answer)
        self.assertOK(c, "roomChange vault", True)
        self.assertEqual(c.details()["room"], "vault")

    def test_add_member(self):
        self.create("vip")
        self.ok("PUT", "/api/rooms/vip/pattern", {"key": "vip", "value": True})
        c, old_room, new_room = self.client(), self.client(), self.client()
        self.ok("PATCH", self.conn_path(new_room, "/attributes"), {"vip": True})
        self.assertOK(new_room, "roomChange vip", True)
        path = self.conn_path(c, "/room")
        # The pattern is checked like roomChange...
        self.assertAnswer("PUT", path, {"room": "vip"}, 400, {"error": NOT_AUTHORIZED})
        self.assertAnswer("PUT", path, {"room": "vip", "force": False}, 400,
                          {"error": NOT_AUTHORIZED})
        self.assertEqual(c.details()["room"], "defaultRoom")
        new_room.assert_silent(match=chat(ENTERED, "vip", c.id))
        # ... unless forced.
        self.assertJson(self.ok("PUT", path, {"room": "vip", "force": True}), {"added": True})
        self.assertEqual(c.details()["room"], "vip")
        new_room.expect(chat(ENTERED, "vip", c.id))
        old_room.expect(chat(LEFT, "defaultRoom", c.id))
        # Already in it: false, with or without force, and no announcement.
        self.assertJson(self.ok("PUT", path, {"room": "vip"}), {"added": False})
        self.assertJson(self.ok("PUT", path, {"room": "vip", "force": True}), {"added": False})
        new_room.assert_silent(match=chat(ENTERED, "vip", c.id))
        # The member says and hears like any other.
        self.assertOK(c, "say moved in")
        new_room.expect(chat("moved in", "vip", c.id))
        # Unknown rooms.
        self.assertAnswer("PUT", path, {"room": "nowhere"}, 404, NO_ROOM)
        self.assertAnswer("PUT", path, {"room": "nowhere", "force": True}, 404, NO_ROOM)
        self.assertEqual(c.details()["room"], "vip")
        # With the attribute, no force is needed.
        d = self.client()
        self.ok("PATCH", self.conn_path(d, "/attributes"), {"vip": True})
        self.assertJson(self.ok("PUT", self.conn_path(d, "/room"), {"room": "vip"}),
                        {"added": True})
        self.assertEqual(self.ok("GET", "/api/rooms/vip")["membersCount"], 3)

    def test_add_member_into_deleted_room_recreated(self):
        self.create("again")
        c = self.client()
        self.ok("PUT", self.conn_path(c, "/room"), {"room": "again"})
        self.ok("DELETE", "/api/rooms/again")
        c.expect(chat(DELETED, "again", 0))
        self.assertAnswer("PUT", self.conn_path(c, "/room"), {"room": "again"}, 404, NO_ROOM)
        self.create("again")
        self.assertJson(self.ok("PUT", self.conn_path(c, "/room"), {"room": "again"}),
                        {"added": True})
        self.assertEqual(self.ok("GET", "/api/rooms/again")["membersCount"], 1)

    def test_remove_member(self):
        c, other = self.client(), self.client()
        self.assertOK(c, "roomChange lobby", True)
        self.assertOK(other, "roomChange lobby", True)
        c.expect(chat(ENTERED, "lobby", other.id))
        path = self.conn_path(c, "/room")
        status, _, raw = self.raw("DELETE", path)
        self.assertEqual((status, raw), (200, b'{"removed":true}\n'))
        other.expect(chat(LEFT, "lobby", c.id))
        self.assertIsNone(c.details()["room"])
        self.assertError(c, "say anyone", "connection not in a room")
        self.assertJson(self.ok("DELETE", path), {"removed": False})
        self.assertEqual(self.ok("GET", "/api/rooms/lobby")["membersCount"], 1)
        # Listening is not membership: removeMember leaves it alone.
        self.assertOK(c, "listenToRoom lobby", True)
        self.assertJson(self.ok("DELETE", path), {"removed": False})
        self.assertEqual(c.details()["listeningRooms"], ["lobby"])

    def test_disconnect(self):
        c, other = self.client(), self.client()
        cid = c.id
        status, _, raw = self.raw("DELETE", self.conn_path(cid))
        self.assertEqual((status, raw), (200, b'{"disconnected":true}\n'))
        c.expect_goodbye("disconnected by server")
        other.expect(chat(LEFT, "defaultRoom", cid))
        wait_for(lambda: self.call("DELETE", self.conn_path(cid))[0] == 404,
                 what="404 for a disconnected id")
        self.assertAnswer("DELETE", self.conn_path(cid), None, 404, NO_CONN)
        self.assertEqual(other.details()["room"], "defaultRoom")  # the other one lives on


class Stats(AdminCase):

    def wait_stats(self, **want):
        """Poll /api/stats until every key has the wanted value; returns the stats."""
        last = {}

        def check():
            last.update(self.stats())
            return all(last.get(k) == v for k, v in want.items())
        try:
            wait_for(check, what="stats %r" % want)
        except AssertionError:
            raise AssertionError("stats %r, wanted %r" % (last, want))
        return dict(last)

    def test_counters(self):
        s = self.stats()
        self.assertEqual(sorted(s), sorted(["connections", "connectionsSocket",
                                            "connectionsWebsocket", "rooms", "messagesIn",
                                            "messagesOut", "slowClientsDropped", "workers",
                                            "history"]))
        # History's counters (test_history checks their values).
        self.assertEqual(sorted(s.pop("history")), ["bytesKept", "messagesKept",
                                                    "recoveriesFailed", "recoveriesSucceeded"])
        for k, v in s.items():
            self.assertIs(type(v), int, k)
        self.assertEqual((s["connections"], s["connectionsSocket"], s["connectionsWebsocket"],
                          s["rooms"], s["messagesIn"], s["messagesOut"], s["slowClientsDropped"],
                          s["workers"]), (0, 0, 0, 2, 0, 0, 0, 2))

        a, b, c = self.client(), self.client(), self.client()
        s = self.wait_stats(connections=3, connectionsSocket=3, connectionsWebsocket=0)
        self.create("extra")
        self.assertEqual(self.stats()["rooms"], 3)

        # Requests in: every request line counts (detailsView, to learn the ids, included).
        ids = [x.id for x in (a, b, c)]
        self.wait_stats(messagesIn=3)
        for x in (a, b, c):
            self.assertOK(x, "roomChange lobby", True)
        a.expect(chat(ENTERED, "lobby", ids[2]))
        b.expect(chat(ENTERED, "lobby", ids[2]))
        base = self.wait_stats(messagesIn=6)
        self.assertGreater(base["messagesOut"], 0)  # the announcements
        # Messages out: chat delivered, one per recipient.
        for i in range(4):
            self.assertOK(a, "say hello %d" % i)
        for x in (b, c):
            for i in range(4):
                x.expect(chat("hello %d" % i, "lobby", a.id))
        self.assertError(a, "nosuchverb", "verb not found or not allowed")
        s = self.wait_stats(messagesIn=base["messagesIn"] + 5,
                            messagesOut=base["messagesOut"] + 8)
        # A server broadcast goes out to all three; a direct message to one.
        self.ok("POST", "/api/rooms/lobby/broadcast", {"message": "all"})
        self.ok("POST", self.conn_path(a, "/message"), {"message": "one"})
        for x in (a, b, c):
            x.expect(chat("all", "lobby", 0))
        a.expect(chat("one"))
        s = self.wait_stats(messagesIn=s["messagesIn"])
        self.assertGreaterEqual(s["messagesOut"], base["messagesOut"] + 8 + 3)

        # Connections leave the count.
        c.close()
        self.wait_stats(connections=2, connectionsSocket=2)
        self.ok("DELETE", self.conn_path(b))
        b.expect_goodbye("disconnected by server")
        self.wait_stats(connections=1, connectionsSocket=1)
        self.ok("DELETE", "/api/rooms/extra")
        self.assertEqual(self.stats()["rooms"], 2)
        self.assertEqual(self.stats()["slowClientsDropped"], 0)

    def test_workers(self):
        server = self.start_server(workers=4)
        self.assertEqual(server.admin_ok("GET", "/api/stats")["workers"], 4)

    def test_metrics_answers(self):
        # The Prometheus text itself belongs to the operations work (issue 6); here only that
        # the route exists behind the key.
        status, _, raw = self.raw("GET", "/metrics")
        self.assertEqual(status, 200, raw[:200])
        self.assertRawError(self.raw("GET", "/metrics", key=None), 401, "unauthorized")


if __name__ == "__main__":
    main()
