#!/usr/bin/env python3
"""The Redis store (issue 5): several roomd servers on one real redis-server behave, for their
clients, like one big server, and survive the loss of a server or of Redis for a while.

Each class starts its own redis-server (Debian's, free loopback port, no persistence) and each
test uses its own redis_prefix. Exit code 77 (skip) when redis-server is not installed.
"""

import json
import os
import re
import select
import signal
import subprocess
import threading
import time

from redis_harness import RedisServer, RedisTestCase, skip_without_redis, wait_for

skip_without_redis()

from harness import (DELETED, ENTERED, LEFT, ROOMD, Server, _live_processes,  # noqa: E402
                     chat, err_line, free_port, main, now_ms, ok_line, strip_history)

UNAVAILABLE = "store unavailable"
# Rooms come from the admin API only, and nobody joins anything at connect.
NO_ROOMS = dict(starting_rooms="", default_room="")


def ids_of(*clients):
    return sorted(c.id for c in clients)


class CrossServer(RedisTestCase):
    """Three servers on one Redis: chat, listeners, announcements, counts and the server side
    work across servers."""

    def setUp(self):
        super().setUp()
        self.a, self.b, self.c = self.cluster(3, **NO_ROOMS)

    def create(self, server, room):
        self.assertEqual(server.admin_ok("POST", "/api/rooms", {"room": room}), {"created": 1})

    def join(self, client, room):
        self.assertOK(client, "roomChange " + room, True)

    def test_chat_both_ways_across_servers(self):
        self.create(self.a, "lobby")
        x, y, z = self.client(self.a), self.client(self.b), self.client(self.c)
        for c in (x, y, z):
            self.join(c, "lobby")
        # Announcements cross servers: x (A) hears y (B) and z (C) enter, y hears z.
        for hearer, joiner in ((x, y), (x, z), (y, z)):
            raw = hearer.expect_raw(chat(ENTERED, "lobby", joiner.id))
            self.assertChat(raw, ENTERED, "lobby", joiner.id)
        for c in (x, y, z):
            c.assert_silent(0.2, match=chat(ENTERED, sender=c.id))  # not its own

        for sender, others in ((x, (y, z)), (y, (x, z)), (z, (x, y))):
            text = "hello from %s, \"quoted\" /slash \u00e9" % sender.id[:8]
            before = now_ms()
            self.assertOK(sender, "say " + text)
            for o in others:
                self.assertChat(o.expect_raw(chat(text)), text, "lobby", sender.id, before)
        for c in (x, y, z):
            c.assert_silent(0.3, match=chat(sender=c.id))  # never hears itself
        # Nothing extra -- but an entry announcement still on its way over the bus when the
        # next client joined on another server may reach it too (decision: tolerated, once).
        order = [x.id, y.id, z.id]
        for c in (x, y, z):
            earlier = set(order[:order.index(c.id)])
            extra = [raw for raw, m in c.backlog if m.get("context") == "user"
                     and not (m.get("message") == ENTERED and m.get("from") in earlier)]
            self.assertEqual(extra, [])
            late = [m["from"] for _, m in c.backlog if m.get("message") == ENTERED]
            self.assertEqual(len(late), len(set(late)), "an announcement twice: %r" % late)
            c.backlog.clear()

        # Leaving is announced on the other servers too.
        self.assertOK(y, "roomLeave", True)
        for c in (x, z):
            self.assertChat(c.expect_raw(chat(LEFT, "lobby", y.id)), LEFT, "lobby", y.id)
        y.assert_silent(0.2, match=chat(LEFT))
        # JSON requests with spaces in room names and messages work across servers too.
        self.create(self.b, "big hall")
        self.assertOK(x, '{"event":"roomChange","room":"big hall"}', True)
        self.assertOK(y, '{"event":"roomChange","room":"big hall"}', True)
        x.expect(chat(ENTERED, "big hall", y.id))
        self.assertOK(y, '{"event":"say","message":"  spaced  out  "}')
        self.assertChat(x.expect_raw(chat("  spaced  out  ")), "  spaced  out  ", "big hall",
                        y.id)

    def test_listener_on_another_server(self):
        self.create(self.a, "stage")
        self.create(self.a, "seats")
        speaker, member = self.client(self.a), self.client(self.b)
        listener = self.client(self.c)
        self.join(speaker, "stage")
        self.join(listener, "seats")
        self.assertOK(listener, "listenToRoom stage", True)
        self.assertError(listener, "listenToRoom stage", "connection already listening to this room")
        self.join(member, "stage")  # on B: the listener on C hears the announcement
        self.assertChat(listener.expect_raw(chat(ENTERED, "stage", member.id)), ENTERED,
                        "stage", member.id)
        before = now_ms()
        self.assertOK(speaker, "say testing one two")
        for c in (listener, member):
            self.assertChat(c.expect_raw(chat("testing one two")), "testing one two", "stage",
                            speaker.id, before)
        self.assertOK(member, "say from B")
        for c in (listener, speaker):
            c.expect(chat("from B", "stage", member.id))
        # Silenced: hears no more.
        self.assertOK(listener, "silenceRoom stage", True)
        self.assertOK(speaker, "say after silence")
        member.expect(chat("after silence", "stage", speaker.id))
        listener.assert_silent(0.3, match=chat("after silence"))
        # A listener is not a member: roomView counts members only.
        self.assertEqual(speaker.request("roomView")["data"]["membersCount"], 2)

    def test_room_view_counts_every_server(self):
        self.create(self.c, "count")
        members = [self.client(s) for s in (self.a, self.a, self.b, self.c)]
        joined = {}
        for m in members:
            before = now_ms()
            self.join(m, "count")
            joined[m.id] = before
        ids = ids_of(*members)
        views = []
        for m in members:
            reply = m.request("roomView")
            self.assertEqual(reply["status"], "OK", reply)
            views.append(reply["data"])
        for data in views:
            self.assertEqual(sorted(data), ["members", "membersCount", "room"])
            self.assertEqual((data["room"], data["membersCount"]), ("count", 4))
            self.assertEqual(sorted(data["members"]), ids)
            for mid, entry in data["members"].items():
                self.assertJson(sorted(entry), ["id", "joinedAt"])
                self.assertEqual(entry["id"], mid)
                self.assertPlausibleMs(entry["joinedAt"], joined[mid])
            # Every server reports the same join times (they come from one place).
            self.assertJson(data["members"], views[0]["members"])
        # roomStatus through every server's admin API agrees.
        for s in (self.a, self.b, self.c):
            st = self.room_status(s, "count")
            self.assertEqual((st["exists"], st["room"], st["membersCount"]), (True, "count", 4))
            self.assertJson(st["members"], views[0]["members"])
            self.assertJson(st["pattern"], {})
        # A leave on one server shows on the others.
        self.assertOK(members[2], "roomLeave", True)
        for s in (self.a, self.c):
            self.assertEqual(self.member_ids(s, "count"), ids_of(*(members[:2] + members[3:])))
        data = members[0].request("roomView")["data"]
        self.assertEqual(data["membersCount"], 3)

    def test_room_created_on_one_server_joinable_on_another(self):
        # Nothing on B knows the room yet: it has never heard of it.
        self.assertEqual(self.b.admin_ok("GET", "/api/rooms"), {"rooms": []})
        y = self.client(self.b)
        self.assertError(y, "roomChange fresh", "room does not exist")
        self.create(self.a, "fresh")
        self.join(y, "fresh")  # at once, no waiting
        self.assertEqual(self.b.admin_ok("POST", "/api/rooms", {"room": "fresh"}),
                         {"created": 0})  # it exists for B too
        self.assertEqual(self.b.admin_ok("GET", "/api/rooms"), {"rooms": ["fresh"]})
        self.assertEqual(self.c.admin_ok("GET", "/api/rooms"), {"rooms": ["fresh"]})
        st = self.room_status(self.c, "fresh")
        self.assertEqual((st["exists"], st["membersCount"], list(st["members"])),
                         (True, 1, [y.id]))
        z = self.client(self.c)
        self.assertOK(z, "listenToRoom fresh", True)
        self.assertOK(y, "say first words")
        z.expect(chat("first words", "fresh", y.id))

    def test_pattern_set_on_one_server_applies_on_another(self):
        self.create(self.a, "vip")
        self.assertEqual(self.a.admin_ok("PUT", "/api/rooms/vip/pattern",
                                         {"key": "vip", "value": True}),
                         {"pattern": {"vip": True}})
        y, z = self.client(self.b), self.client(self.c)
        self.assertError(y, "roomChange vip", "not authorized to join room")
        self.assertError(z, "listenToRoom vip", "not authorized to join room")
        # The pattern as every server reports it.
        for s in (self.a, self.b, self.c):
            self.assertJson(self.room_status(s, "vip")["pattern"], {"vip": True})
        # "true" is not true.
        self.b.admin_ok("PATCH", "/api/connections/%s/attributes" % y.id, {"vip": "true"})
        self.assertError(y, "roomChange vip", "not authorized to join room")
        self.assertEqual(self.b.admin_ok("PATCH", "/api/connections/%s/attributes" % y.id,
                                         {"vip": True})["attributes"]["vip"], True)
        self.join(y, "vip")
        self.c.admin_ok("PATCH", "/api/connections/%s/attributes" % z.id, {"vip": True})
        self.assertOK(z, "listenToRoom vip", True)
        # Cleared on C: applies on B at once.
        self.assertEqual(self.c.admin_ok("PUT", "/api/rooms/vip/pattern", {"key": None}),
                         {"pattern": {}})
        w = self.client(self.b)
        self.join(w, "vip")
        # A whole pattern set on B applies on A.
        self.b.admin_ok("PUT", "/api/rooms/vip/pattern", {"pattern": {"level": 3, "team": "x"}})
        v = self.client(self.a)
        self.a.admin_ok("PATCH", "/api/connections/%s/attributes" % v.id, {"level": 3})
        self.assertError(v, "roomChange vip", "not authorized to join room")
        self.a.admin_ok("PATCH", "/api/connections/%s/attributes" % v.id, {"team": "x"})
        self.join(v, "vip")

    def test_delete_on_one_server_notifies_members_on_others(self):
        self.create(self.a, "doomed")
        self.create(self.a, "lobby")
        m1, m2 = self.client(self.b), self.client(self.c)
        listener, bystander = self.client(self.c), self.client(self.b)
        self.join(m1, "doomed")
        self.join(m2, "doomed")
        self.join(listener, "lobby")
        self.assertOK(listener, "listenToRoom doomed", True)
        self.join(bystander, "lobby")

        before = now_ms()
        self.assertJson(self.a.admin_ok("DELETE", "/api/rooms/doomed"), {"deleted": True})
        for c in (m1, m2, listener):
            self.assertChat(c.expect_raw(chat(DELETED)), DELETED, "doomed", 0, before)
            c.assert_silent(0.2, match=chat(DELETED))  # exactly once
        bystander.assert_silent(0, match=chat(DELETED))

        # Members keep their room, but it is gone, on every server.
        self.assertEqual(m1.details()["room"], "doomed")
        self.assertError(m1, "say anyone?", "room does not exist")
        self.assertError(m2, "roomView", "room does not exist")
        for s in (self.a, self.b, self.c):
            st = self.room_status(s, "doomed")
            self.assertEqual((st["exists"], st["membersCount"]), (False, 0))
            self.assertEqual(s.admin_ok("GET", "/api/rooms"), {"rooms": ["lobby"]})
        self.assertError(bystander, "roomChange doomed", "room does not exist")
        self.assertError(bystander, "listenToRoom doomed", "room does not exist")
        # Listeners are silenced.
        self.assertEqual(listener.details()["listeningRooms"], [])
        # roomLeave works, unannounced.
        self.assertOK(m2, "roomLeave", True)
        self.assertIsNone(m2.details()["room"])
        m1.assert_silent(0.2, match=chat(LEFT))

        # Re-created on C: members of the old one may join it, from B and C.
        self.create(self.c, "doomed")
        self.join(m1, "doomed")
        self.join(m2, "doomed")
        m1.expect(chat(ENTERED, "doomed", m2.id))
        self.assertOK(m1, "say new life")
        m2.expect(chat("new life", "doomed", m1.id))
        listener.assert_silent(0.2, match=chat("new life"))  # stays silenced
        self.assertEqual(self.member_ids(self.a, "doomed"), ids_of(m1, m2))

    def test_admin_broadcast_reaches_every_server(self):
        self.create(self.b, "news")
        members = [self.client(s) for s in (self.a, self.b, self.c)]
        for m in members:
            self.join(m, "news")
        listener = self.client(self.c)
        self.assertOK(listener, "listenToRoom news", True)
        for i, m in enumerate(members):  # the announcements, out of the way
            for later in members[i + 1:]:
                m.expect(chat(ENTERED, "news", later.id))
        before = now_ms()
        self.assertEqual(self.a.admin_ok("POST", "/api/rooms/news/broadcast",
                                         {"message": "server speaking"}), {"sent": True})
        for c in members + [listener]:
            self.assertChat(c.expect_raw(chat("server speaking")), "server speaking", "news",
                            0, before)
            c.assert_silent(0.2, match=chat("server speaking"))  # exactly once
        # ANY-JSON message, from another server's admin API.
        self.c.admin_ok("POST", "/api/rooms/news/broadcast", {"message": {"n": [1, True]}})
        for c in members + [listener]:
            raw = c.expect_raw(chat({"n": [1, True]}))
            self.assertChat(raw, {"n": [1, True]}, "news", 0)
        # From a member (local to A): everyone but that member hears it, from it.
        self.a.admin_ok("POST", "/api/rooms/news/broadcast",
                        {"message": "as a member", "from": members[0].id})
        for c in members[1:] + [listener]:
            self.assertChat(c.expect_raw(chat("as a member")), "as a member", "news",
                            members[0].id)
        members[0].assert_silent(0.3, match=chat("as a member"))
        # From a member of another server (B's member, broadcast on C): it is left out too.
        self.c.admin_ok("POST", "/api/rooms/news/broadcast",
                        {"message": "as B's member", "from": members[1].id})
        for c in (members[0], members[2], listener):
            self.assertChat(c.expect_raw(chat("as B's member")), "as B's member", "news",
                            members[1].id)
        members[1].assert_silent(0.3, match=chat("as B's member"))

    def test_connection_operations_routed_to_their_server(self):
        """sendMessage, setAttributes, addMember, removeMember, disconnect and details through
        A's admin API for connections of B and C."""
        self.create(self.a, "vip")
        self.a.admin_ok("PUT", "/api/rooms/vip/pattern", {"key": "vip", "value": True})
        host = self.client(self.a)
        self.a.admin_ok("PATCH", "/api/connections/%s/attributes" % host.id, {"vip": True})
        self.join(host, "vip")
        y, z = self.client(self.b), self.client(self.c)
        path = "/api/connections/%s" % y.id

        details = self.a.admin_ok("GET", path)
        self.assertJson(details, y.details())
        self.assertEqual(self.a.admin_ok("POST", path + "/message", {"message": {"hi": [1]}}),
                         {"sent": True})
        self.assertChat(y.expect_raw(chat({"hi": [1]}, sender=0)), {"hi": [1]}, None, 0)

        status, answer = self.a.admin("PUT", path + "/room", {"room": "vip"})
        self.assertEqual((status, answer), (400, {"error": "not authorized to join room"}))
        status, answer = self.a.admin("PATCH", path + "/attributes", {"id": "forged"})
        self.assertEqual((status, answer), (400, {"error": "attribute is read-only"}))
        attrs = self.a.admin_ok("PATCH", path + "/attributes", {"vip": True})["attributes"]
        self.assertJson(attrs, dict(y.details()["attributes"]))
        self.assertIs(attrs["vip"], True)
        self.assertEqual(self.a.admin_ok("PUT", path + "/room", {"room": "vip"}), {"added": True})
        host.expect(chat(ENTERED, "vip", y.id))
        self.assertEqual(y.details()["room"], "vip")
        self.assertEqual(self.a.admin_ok("PUT", path + "/room", {"room": "vip"}),
                         {"added": False})
        # force skips the pattern, for C's connection.
        zpath = "/api/connections/%s" % z.id
        self.assertEqual(self.a.admin_ok("PUT", zpath + "/room", {"room": "vip", "force": True}),
                         {"added": True})
        for c in (host, y):
            c.expect(chat(ENTERED, "vip", z.id))
        self.assertEqual(self.member_ids(self.a, "vip"), ids_of(host, y, z))

        self.assertEqual(self.a.admin_ok("DELETE", zpath + "/room"), {"removed": True})
        for c in (host, y):
            c.expect(chat(LEFT, "vip", z.id))
        self.assertEqual(self.a.admin_ok("DELETE", zpath + "/room"), {"removed": False})
        self.assertEqual(self.a.admin_ok("DELETE", path), {"disconnected": True})
        y.expect_goodbye("disconnected by server")
        host.expect(chat(LEFT, "vip", y.id))
        self.assertEqual(self.member_ids(self.c, "vip"), [host.id])
        # No server has it: 404 (after the owner had its chance to answer).
        status, answer = self.a.admin("GET", path)
        self.assertEqual((status, answer), (404, {"error": "connection not found"}))


    def test_unix_socket_store_and_view_limit(self):
        """A server reaching Redis over its unix socket (redis:///path) is in the same cluster;
        room_view_limit caps the list, not the count."""
        d = self.start_roomd("sock", store=self.redis.socket_url, room_view_limit=2, **NO_ROOMS)
        self.create(d, "mixed")
        members = [self.client(s) for s in (self.a, self.b, self.c, d)]
        for m in members:
            self.join(m, "mixed")
        w = members[-1]
        self.assertOK(w, "say over the socket")
        for m in members[:-1]:
            m.expect(chat("over the socket", "mixed", w.id))
        self.assertOK(members[0], "say over tcp")
        w.expect(chat("over tcp", "mixed", members[0].id))
        data = w.request("roomView")["data"]
        self.assertEqual(data["membersCount"], 4)
        self.assertEqual(len(data["members"]), 2)
        self.assertLessEqual(set(data["members"]), set(ids_of(*members)))
        st = self.room_status(d, "mixed")
        self.assertEqual((st["membersCount"], len(st["members"])), (4, 2))
        self.assertEqual(len(self.room_status(self.a, "mixed")["members"]), 4)

    def test_key_layout_as_documented(self):
        """roomd-redis(7): other programs may read these keys."""
        P = self.prefix
        r = self.redis.command
        self.create(self.a, "lay out")
        self.b.admin_ok("PUT", "/api/rooms/lay%20out/pattern",
                        {"pattern": {"vip": True, "role": "admin"}})
        x, y = self.client(self.a), self.client(self.b)
        for c in (x, y):
            self.a.admin_ok("PATCH", "/api/connections/%s/attributes" % c.id,
                            {"vip": True, "role": "admin"})
        joined = now_ms()
        self.join(x, "lay out")
        self.join(y, "lay out")
        self.assertIn(b"lay out", r("SMEMBERS", P + "rooms"))
        pattern = r("HGETALL", P + "room:lay out:pattern")
        self.assertEqual(dict(zip(pattern[::2], pattern[1::2])),
                         {b"vip": b"true", b"role": b'"admin"'})
        raw = r("HGETALL", P + "room:lay out:members")
        members = {k.decode(): json.loads(v) for k, v in zip(raw[::2], raw[1::2])}
        self.assertEqual(sorted(members), ids_of(x, y))
        for c, server in ((x, "s0"), (y, "s1")):
            entry = members[c.id]
            self.assertEqual(sorted(entry), ["id", "joinedAt", "server"])
            self.assertEqual((entry["id"], entry["server"]), (c.id, server))
            self.assertPlausibleMs(entry["joinedAt"], joined)
            self.assertEqual(r("SMEMBERS", P + "server:%s:members" % server),
                             [("%s\nlay out" % c.id).encode()])
        beats = r("ZRANGE", P + "servers", 0, -1, "WITHSCORES")
        beats = {k.decode(): int(float(v)) for k, v in zip(beats[::2], beats[1::2])}
        self.assertEqual(sorted(beats), ["s0", "s1", "s2"])
        for ms in beats.values():
            self.assertPlausibleMs(ms, joined - 10000)
        # An empty pattern is no key; a leave takes the member out of both places.
        self.c.admin_ok("PUT", "/api/rooms/lay%20out/pattern", {"key": None})
        self.assertEqual(r("EXISTS", P + "room:lay out:pattern"), 0)
        self.assertOK(y, "roomLeave", True)
        x.expect(chat(LEFT, "lay out", y.id))
        wait_for(lambda: r("HKEYS", P + "room:lay out:members") == [x.id.encode()], 2,
                 "member hash without the leaver")
        wait_for(lambda: r("SCARD", P + "server:s1:members") == 0, 2,
                 "server set without the leaver")
        # Deleting a room removes its keys.
        self.a.admin_ok("DELETE", "/api/rooms/lay%20out")
        self.assertEqual(r("SISMEMBER", P + "rooms", "lay out"), 0)
        self.assertEqual(r("EXISTS", P + "room:lay out:members"), 0)


class ServerLoss(RedisTestCase):
    """A server that dies or stops: its members leave every room, announced once."""

    TIMEOUT = 2  # --server-timeout for the kill test

    def populate(self, servers, room, per_server):
        servers[0].admin_ok("POST", "/api/rooms", {"room": room})
        groups = []
        for s in servers:
            group = []
            for _ in range(per_server):
                c = self.client(s)
                self.assertOK(c, "roomChange " + room, True)
                group.append(c)
            groups.append(group)
        everyone = [c for g in groups for c in g]
        for c in everyone:
            c.id  # noqa: B018 -- read now, while the connection lives
        wait_for(lambda: self.room_status(servers[0], room)["membersCount"] == len(everyone),
                 5, "all members registered")
        return groups

    def assert_left_once(self, survivors, gone, room, deadline, quiet=1.0):
        """Every survivor hears 'I have left the room' for each gone id exactly once."""
        for c in survivors:
            for gid in gone:
                left = max(0.1, deadline - time.monotonic())
                raw = c.expect_raw(chat(LEFT, room, gid), timeout=left)
                self.assertChat(raw, LEFT, room, gid)
        for c in survivors:
            c.assert_silent(quiet if c is survivors[0] else 0.05, match=chat(LEFT))

    def test_kill9_members_vanish_within_timeout(self):
        a, b, c = self.cluster(3, server_timeout=self.TIMEOUT, **NO_ROOMS)
        ga, gb, gc = self.populate([a, b, c], "room", 2)
        gone = [x.id for x in gb]
        survivors = ga + gc
        killed_at = time.monotonic()
        self.kill9(b)
        deadline = killed_at + self.TIMEOUT + 3
        want = ids_of(*survivors)
        for s in (a, c):
            wait_for(lambda: self.member_ids(s, "room") == want,
                     max(0.1, deadline - time.monotonic()),
                     "killed server's members gone from roomStatus on %s" % s.options["server_id"])
        # Announced to the survivors' clients, whichever server reaped, exactly once (the
        # quiet period spans several heartbeats of both survivors).
        self.assert_left_once(survivors, gone, "room", deadline, quiet=3 * self.TIMEOUT / 5 + 0.3)
        self.assertEqual(survivors[0].request("roomView")["data"]["membersCount"], 4)
        for x in survivors:
            x.assert_silent(0, match=chat(LEFT, sender=x.id))

        # Restarted with the same server id: a clean start, and it is part of the cluster.
        b2 = self.start_roomd("s1", server_timeout=self.TIMEOUT, **NO_ROOMS)
        self.assertEqual(self.member_ids(a, "room"), want)
        n = self.client(b2)
        self.assertOK(n, "roomChange room", True)
        for x in survivors:
            x.expect(chat(ENTERED, "room", n.id))
        self.assertOK(n, "say back again")
        for x in survivors:
            x.expect(chat("back again", "room", n.id))
        self.assertOK(ga[0], "say welcome back")
        n.expect(chat("welcome back", "room", ga[0].id))
        self.assertEqual(self.member_ids(c, "room"), sorted(want + [n.id]))

    def test_kill9_then_restart_same_id_starts_clean(self):
        # A long timeout: only the restart itself can clean up in time.
        a, b = self.cluster(2, server_timeout=30, **NO_ROOMS)
        ga, gb = self.populate([a, b], "room", 2)
        gone = [x.id for x in gb]
        self.kill9(b)
        started = time.monotonic()
        b2 = self.start_roomd("s1", server_timeout=30, **NO_ROOMS)
        self.assertEqual(self.member_ids(a, "room"), ids_of(*ga))
        self.assertEqual(self.member_ids(b2, "room"), ids_of(*ga))
        self.assert_left_once(ga, gone, "room", started + 5, quiet=0.5)
        n = self.client(b2)
        self.assertOK(n, "roomChange room", True)
        ga[0].expect(chat(ENTERED, "room", n.id))
        self.assertEqual(n.request("roomView")["data"]["membersCount"], 3)

    def test_graceful_stop_members_leave_promptly(self):
        # A long timeout: the leave must come from the stop, not from a reaper.
        a, b, c = self.cluster(3, server_timeout=30, **NO_ROOMS)
        ga, gb, gc = self.populate([a, b, c], "room", 2)
        gone = [x.id for x in gb]
        survivors = ga + gc
        stopping = time.monotonic()
        b.stop()  # SIGTERM; exit 0 within 5 s
        for x in gb:
            x.expect_goodbye("server shutdown")
        self.assert_left_once(survivors, gone, "room", stopping + 3, quiet=0.5)
        for s in (a, c):
            self.assertEqual(self.member_ids(s, "room"), ids_of(*survivors))
        self.assertEqual(self.redis.command("SCARD", self.prefix + "server:s1:members"), 0)


class RedisOutage(RedisTestCase):
    """redis-server killed mid-chat, then restarted on the same port (empty: no persistence)."""

    def setUp(self):
        super().setUp()
        if self.redis.proc is None:  # a previous test killed it
            self.redis.start(self.redis.port)

    def wait_unavailable(self, client, timeout=5):
        """Say until the server notices Redis is gone; returns the last reply line."""
        def attempt():
            raw = client.request_raw("say probe")
            return raw if raw == err_line(UNAVAILABLE, client.count) else None
        return wait_for(attempt, timeout, "say answering %r" % UNAVAILABLE, interval=0.05)

    def wait_recovered(self, client, want_ids, server, timeout=10):
        """Wait until roomView works again and lists every id of want_ids (re-registered);
        returns its data. Whether it lists more is for the caller to check."""
        def view():
            reply = client.request("roomView")
            if reply.get("status") != "OK":
                raise AssertionError("roomView: %r" % reply)
            if not set(want_ids) <= set(reply["data"]["members"]):
                raise AssertionError("roomView: %r" % reply["data"])
            return reply["data"]
        try:
            return wait_for(view, timeout, "roomView listing every member again",
                            interval=0.1)
        except AssertionError as e:
            raise AssertionError("%s\nkeys in Redis: %r\nchat heard: %s\nroomd log:\n%s" % (
                e, sorted(self.redis.command("KEYS", self.prefix + "*")),
                [raw for raw, m in client.backlog if m.get("context") == "user"][-5:],
                server.log_text(12)))

    def test_redis_killed_and_restarted_empty(self):
        """The restarted redis-server is empty (no persistence): the cluster puts its state
        back (rooms, members) and chat goes on."""
        self.outage(persisted=False)

    def test_redis_killed_and_restarted_with_a_snapshot(self):
        """Redis comes back with a snapshot (SAVE) taken before y joined and before x2 left
        (during the outage): y is re-registered, x2 is not a member any more."""
        self.outage(persisted=True)

    def outage(self, persisted):
        a, b = self.cluster(2, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "r"})
        a.admin_ok("POST", "/api/rooms", {"room": "other"})
        for d in self.redis.dirs:  # one per shard
            dump = os.path.join(d, "dump.rdb")
            if os.path.exists(dump):
                os.unlink(dump)
        x, x2, y = self.client(a), self.client(a), self.client(b)
        for c in (x, x2):
            self.assertOK(c, "roomChange r", True)
        if persisted:
            # The snapshot has the rooms and x, x2 as members; not y.
            self.assertEqual(self.redis.command("SAVE"), b"OK")
        # joinedAt is the time of the join, not of the connection: make them differ.
        connected = y.details()["connectedAt"]
        wait_for(lambda: now_ms() > connected + 5, 1, "a few ms after y connected")
        self.assertOK(y, "roomChange r", True)
        x.expect(chat(ENTERED, "r", x2.id))
        self.assertOK(x, "say before")
        y.expect(chat("before", "r", x.id))
        self.assertOK(y, "say before too")
        x.expect(chat("before too", "r", y.id))
        x.expect(chat(ENTERED, "r", y.id))

        joined = {k: v["joinedAt"] for k, v in x.request("roomView")["data"]["members"].items()}
        self.assertGreater(joined[y.id], connected)

        self.redis.kill()
        self.wait_unavailable(x)
        self.wait_unavailable(y)
        # What needs Redis answers a clear error, at once.
        for c in (x, y):
            self.assertError(c, "say while down", UNAVAILABLE)
            self.assertError(c, "roomView", UNAVAILABLE)
            self.assertError(c, "roomChange other", UNAVAILABLE)
            self.assertError(c, "listenToRoom other", UNAVAILABLE)
        # What does not need it still works: no crash, no hang.
        for c in (x, y):
            self.assertOK(c, "paramAdd k=v", None)
            self.assertOK(c, "paramsView", {"k": "v"})
            self.assertEqual(c.details()["room"], "r")
        late = self.client(a)  # a new connection is still welcomed
        self.assertIsNone(late.details()["room"])
        self.assertTrue(a.alive() and b.alive())
        self.assertOK(x2, "roomLeave", True)  # local at once; Redis catches up later
        for c in (x, y):
            c.assert_silent(0, match=chat("while down"))

        self.redis.start(self.redis.port)  # same port
        self.wait_recovered(x, ids_of(x, y), a)
        self.wait_recovered(y, ids_of(x, y), b)
        self.assertOK(x, "say after")
        self.assertChat(y.expect_raw(chat("after")), "after", "r", x.id)
        self.assertOK(y, "say after too")
        self.assertChat(x.expect_raw(chat("after too")), "after too", "r", y.id)
        # The rooms are there for everyone: joinable from either server.
        for s in (a, b):
            rooms = sorted(s.admin_ok("GET", "/api/rooms")["rooms"])
            if rooms != ["other", "r"]:
                self.fail("GET /api/rooms on %s: %r, want ['other', 'r']; Redis has %r; its log:"
                          "\n%s" % (s.options["server_id"], rooms,
                                    sorted(self.redis.command("SMEMBERS", self.prefix + "rooms")),
                                    "\n".join(l for l in s.stderr_lines if "redis:" in l)))
        self.assertOK(late, "roomChange r", True)
        x.expect(chat(ENTERED, "r", late.id))
        y.expect(chat(ENTERED, "r", late.id))
        for c in (x, y):
            c.assert_silent(0, match=chat(DELETED))
        # The state converged: exactly the members there are (x2 left while Redis was away),
        # counted right on both servers, with the times they joined.
        want = dict(joined)
        del want[x2.id]
        self.assertNotIn(late.id, joined)
        problems = []
        for name, c in (("on A", x), ("on B", y)):
            data = c.request("roomView")["data"]
            got = {k: v["joinedAt"] for k, v in data["members"].items()}
            got.pop(late.id, None)
            if data["membersCount"] != len(want) + 1:
                problems.append("%s: membersCount %d, want %d" % (
                    name, data["membersCount"], len(want) + 1))
            if set(got) != set(want):
                problems.append("%s: members %s besides late, want %s (x2 is %s)"
                                % (name, sorted(got), sorted(want), x2.id))
            changed = {k: (want[k], got[k]) for k in set(got) & set(want) if got[k] != want[k]}
            if changed:
                problems.append("%s: joinedAt changed (was, is): %r; y is %s, connected at %d"
                                % (name, changed, y.id, connected))
        if problems:
            self.fail("state after the Redis restart:\n  " + "\n  ".join(problems))


    def test_redis_paused_then_resumed(self):
        """redis-server stopped with SIGSTOP under chat (issue 8): roomd does not hang --
        new clients are welcomed and answered quickly, verbs that need no Redis work --
        and after SIGCONT every say that was acknowledged is delivered, in order."""
        a, b = self.cluster(2, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "r"})
        x, y = self.client(a), self.client(b)
        self.assertOK(x, "roomChange r", True)
        self.assertOK(y, "roomChange r", True)
        x.expect(chat(ENTERED, "r", y.id))
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        try:
            # A say is acknowledged once Redis numbered it (history): sent now, answered
            # after the pause, while everything else goes on.
            first = x.count + 1
            for i in range(20):
                x.send_line("say paused %d" % i)
            # The accept loop and the workers keep going while Redis sleeps.
            start = time.monotonic()
            late = self.client(a)
            self.assertOK(late, "paramsView", {})
            self.assertLess(time.monotonic() - start, 1.5, "a new client waited for Redis")
        finally:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        acked = []
        for i in range(20):
            raw = x.expect_raw({"messageCount": first + i}, timeout=10)
            if strip_history(raw) == ok_line(first + i):
                acked.append("paused %d" % i)
        for text in acked:  # acknowledged says reach the other server once Redis is back
            y.expect(chat(text, "r", x.id), timeout=10)
        self.assertOK(x, "say after the pause")
        y.expect(chat("after the pause", "r", x.id), timeout=10)


class StartUp(RedisTestCase):
    """Redis down when roomd starts."""

    start_redis = False

    def test_redis_wait_false_exits_non_zero(self):
        port = free_port()
        proc = subprocess.Popen(
            [ROOMD, "--bind=127.0.0.1", "--port=0", "--websocket-port=0", "--admin-port=0",
             "--store=redis://127.0.0.1:%d" % port, "--redis-wait=false"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _live_processes.append(proc)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.fail("roomd --redis-wait=false did not exit within 10 s; stderr: %r" % err)
        self.assertEqual(proc.returncode, 1)  # roomd-redis(7): "exits with status 1"
        text = err.decode("utf-8", "replace")
        self.assertIn("cannot reach Redis at redis://127.0.0.1:%d" % port, text)
        self.assertNotIn("roomd ready", text)

    def test_waits_for_redis_by_default(self):
        redis = RedisServer()
        self.addCleanup(redis.cleanup)
        redis.port = free_port()
        server = Server(start=False, store=redis.url, redis_prefix=self.prefix,
                        server_id="waiter", starting_rooms="lobby", default_room="lobby")
        self.addCleanup(self.stop_roomd, server)
        errors = []

        def start():
            try:
                server.start()
            except AssertionError as e:
                errors.append(e)
        starter = threading.Thread(target=start, daemon=True)
        starter.start()
        wait_for(lambda: server.proc is not None, 5, "roomd launched")
        server.wait_log("cannot reach Redis", timeout=5)
        # Still waiting after a couple of retries; not ready, not exited.
        def backed_off(line):
            m = re.search(r"retrying in (\d+) ms", line)
            return m is not None and int(m.group(1)) >= 400
        server.wait_log(backed_off, timeout=5)
        self.assertTrue(server.alive(), server.log_text())
        self.assertFalse(any("roomd ready" in line for line in server.stderr_lines))
        redis.start()
        starter.join(15)
        self.assertFalse(starter.is_alive(), "roomd not ready after Redis came up")
        self.assertEqual(errors, [])
        c = self.client(server)
        d = self.client(server)
        c.expect(chat(ENTERED, "lobby", d.id))
        self.assertOK(d, "say ready")
        c.expect(chat("ready", "lobby", d.id))
        self.assertEqual(self.member_ids(server, "lobby"), ids_of(c, d))


# ---------------------------------------------------------------------------------------------
# Ordering and exactly-once over three servers (the approach of test_threads.py)
# ---------------------------------------------------------------------------------------------

PER_SERVER = 10
K = 100  # says per sender


class Receiver(threading.Thread):
    """Reads one client's socket until it has seen `expected_chats` chats and
    `expected_replies` replies (or is told to stop), recording who said what."""

    def __init__(self, client, room, expected_chats, expected_replies, stop):
        super().__init__(daemon=True)
        self.client = client
        self.room = room
        self.expected_chats = expected_chats
        self.expected_replies = expected_replies
        self.stop = stop
        self.by_sender = {}
        self.reply_counts = []
        self.bad = []
        self.chats = 0

    def run(self):
        sock, buf = self.client.sock, self.client.buf
        while self.chats < self.expected_chats or len(self.reply_counts) < self.expected_replies:
            if self.stop.is_set():
                break
            if b"\n" not in buf:
                ready, _, _ = select.select([sock], [], [], 0.1)
                if not ready:
                    continue
                try:
                    data = sock.recv(262144)
                except BlockingIOError:
                    continue
                if not data:
                    self.bad.append("connection closed")
                    break
                buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self.handle(json.loads(line))
        self.client.buf = buf

    def handle(self, msg):
        if msg.get("context") == "response":
            if msg.get("status") != "OK":
                self.bad.append(msg)
            self.reply_counts.append(msg["messageCount"])
        elif msg.get("context") == "user" and msg.get("room") == self.room:
            _, sender, seq = msg["message"].split()  # "n SENDER SEQ"
            self.by_sender.setdefault(msg["from"], []).append(int(seq))
            self.chats += 1
        else:
            self.bad.append(msg)


class Ordering(RedisTestCase):

    def test_exactly_once_in_order_over_three_servers(self):
        servers = self.cluster(3, say_rate=0, announcements=False, starting_rooms="hall",
                               default_room="hall")
        clients = [self.client(s) for s in servers for _ in range(PER_SERVER)]
        n = len(clients)
        ids = [c.id for c in clients]
        self.assertEqual(len(set(ids)), n)
        for s in servers:
            wait_for(lambda: self.room_status(s, "hall")["membersCount"] == n, 5,
                     "every client registered in hall")
        self.assertEqual(clients[0].request("roomView")["data"]["membersCount"], n)
        for c in clients:
            c.assert_silent(0, match={"context": "response"})  # nothing left unread

        stop = threading.Event()
        receivers = {c: Receiver(c, "hall", (n - 1) * K, K, stop) for c in clients}
        for r in receivers.values():
            r.start()
        barrier = threading.Barrier(n)
        first_count = {c: c.count + 1 for c in clients}

        def send(index, client):
            payload = b"".join(b"say n %d %d\n" % (index, seq) for seq in range(K))
            barrier.wait(10)
            step = len(payload) // 4 + 1
            client.sock.setblocking(True)
            for i in range(0, len(payload), step):
                client.sock.sendall(payload[i:i + step])

        started = time.monotonic()
        threads = [threading.Thread(target=send, args=(i, c)) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        last_total, last_change = -1, time.monotonic()
        while any(r.is_alive() for r in receivers.values()):
            total = sum(r.chats + len(r.reply_counts) for r in receivers.values())
            if total != last_total:
                last_total, last_change = total, time.monotonic()
            elif time.monotonic() - last_change > 3:
                break
            next(r for r in receivers.values() if r.is_alive()).join(0.1)
        stop.set()
        for r in receivers.values():
            r.join()
        elapsed = time.monotonic() - started

        problems = []
        index = {sender_id: i for i, sender_id in enumerate(ids)}
        for i, c in enumerate(clients):
            name = "client %d (server s%d)" % (i, i // PER_SERVER)
            r = receivers[c]
            problems += ["%s: unexpected %r" % (name, b) for b in r.bad[:3]]
            if c.id in r.by_sender:
                problems.append("%s: heard %d of its own says" % (name, len(r.by_sender[c.id])))
            missing = set(ids) - {c.id} - set(r.by_sender)
            if missing:
                problems.append("%s: nothing from %d senders" % (name, len(missing)))
            for sender, seqs in sorted(r.by_sender.items()):
                if sender != c.id and seqs != list(range(K)):
                    first_bad = next((m for m, (x, y) in enumerate(zip(seqs, range(K)))
                                      if x != y), min(len(seqs), K))
                    problems.append("%s: from client %s got %d says, first wrong at #%d (%r)"
                                    % (name, index.get(sender, sender), len(seqs), first_bad,
                                       seqs[first_bad:first_bad + 3]))
            want = list(range(first_count[c], first_count[c] + K))
            if sorted(r.reply_counts) != want:
                problems.append("%s: %d replies, messageCounts %r..." % (
                    name, len(r.reply_counts), sorted(r.reply_counts)[:5]))
        self.assertEqual(problems[:20], [], "%d problems" % len(problems))
        self.assertEqual([c.buf for c in clients if c.buf], [])
        readable, _, _ = select.select([c.sock for c in clients], [], [], 0.3)
        self.assertEqual(readable, [], "more messages than expected")
        print("\n%d deliveries over 3 servers in %.2f s"
              % (sum(r.chats for r in receivers.values()), elapsed))


if __name__ == "__main__":
    main()
