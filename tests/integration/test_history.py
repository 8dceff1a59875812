#!/usr/bin/env python3
"""History and recovery (PROTOCOL.md "History and recovery"), memory store.

Offsets and positions on the wire, exact; a member dropped in the middle of a flood from two
speakers on other workers recovers every message once and in order; listeners recover like
members; epochs change with the room and the process; roomHistory; the caps (size, ttl,
history_memory) hold under floods; the server side's history settings and kept messages.
"""

import json
import os
import re
import select
import threading
import time
import urllib.request

from harness import (ADMIN_KEY, ENTERED, RoomdTestCase, Server, chat_regex, dumps, err_line, main,
                     room_path)

EPOCH = re.compile(r"^[0-9a-f]{12}$")


def reply_line(count, data=None, position=None, recovered=None, offset=None):
    """Exact bytes of a success reply with the history fields."""
    parts = ['"status":"OK"', '"context":"response"']
    if data is not None:
        parts.append('"data":%s' % dumps(data))
    if position is not None:
        parts.append('"position":%s' % dumps({"epoch": position[0], "offset": position[1]}))
    if recovered is not None:
        parts.append('"recovered":%s' % dumps(recovered))
    if offset is not None:
        parts.append('"offset":%d' % offset)
    parts.append('"messageCount":%d' % count)
    return ("{%s}\r\n" % ",".join(parts)).encode()


def rpath(room):
    return "/api/rooms/" + room_path(room)


def metrics_text(server):
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % server.admin_port)
    req.add_header("Authorization", "Bearer " + ADMIN_KEY)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode()


def chat_offset(raw):
    """The offset at the end of a chat line, or None."""
    m = re.search(rb',"offset":(\d+)\}\r\n$', raw)
    return int(m.group(1)) if m else None


class Reader(threading.Thread):
    """Reads a raw socket without pause and records every chat line's (offset, text)."""

    def __init__(self, sock, buf=b""):
        super().__init__(daemon=True)
        self.sock = sock
        self.buf = buf
        self.chats = []
        self.replies = []
        self.stop = threading.Event()
        self.cond = threading.Condition()

    def run(self):
        # Blocking without a timeout: a Speaker sends on the same socket from its own thread.
        self.sock.setblocking(True)
        while not self.stop.is_set():
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.2)
                if not ready:
                    continue
                data = self.sock.recv(262144)
            except (OSError, ValueError):
                break
            if not data:
                break
            self.buf += data
            lines = self.buf.split(b"\n")
            self.buf = lines.pop()
            with self.cond:
                for line in lines:
                    o = json.loads(line)
                    if o.get("context") == "user" and "offset" in o:
                        self.chats.append((o["offset"], o["message"]))
                    elif o.get("context") == "response":
                        self.replies.append(o)
                self.cond.notify_all()

    def wait_for(self, predicate, timeout=60):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("reader: condition not met in %ss (%d chats)"
                                         % (timeout, len(self.chats)))
                self.cond.wait(left)


class Speaker(threading.Thread):
    """Says `n` numbered messages as fast as the socket takes them and records the offset
    each say reply gave (by messageCount)."""

    def __init__(self, client, name, n):
        super().__init__(daemon=True)
        self.client, self.name, self.n = client, name, n
        self.offsets = {}  # text -> offset from the say reply

    def run(self):
        base = self.client.count
        reader = Reader(self.client.sock, self.client.buf)
        reader.start()
        batch = 200
        for start in range(0, self.n, batch):
            lines = b"".join(b"say %s-%d\n" % (self.name.encode(), i)
                             for i in range(start, min(self.n, start + batch)))
            self.client.sock.sendall(lines)
        reader.wait_for(lambda r: len(r.replies) >= self.n, timeout=120)
        reader.stop.set()
        reader.join()
        for reply in reader.replies:
            i = reply["messageCount"] - base - 1
            self.offsets["%s-%d" % (self.name, i)] = reply["offset"]


class HistoryWireTest(RoomdTestCase):
    """Offsets, positions and roomHistory, byte for byte."""

    @classmethod
    def setUpClass(cls):
        cls.start_class_server(starting_rooms="defaultRoom,lobby,other")

    def test_offsets_and_positions_exact(self):
        self.server.admin_ok("DELETE", rpath("lobby"))
        self.server.admin_ok("POST", "/api/rooms", {"room": "lobby"})
        a, b = self.client(), self.client()
        raw = a.request_raw("roomChange lobby")
        m = re.match(rb'^\{"status":"OK","context":"response","data":true,'
                     rb'"position":\{"epoch":"([0-9a-f]{12})","offset":0\},"messageCount":1\}\r\n$',
                     raw)
        self.assertIsNotNone(m, raw)
        epoch = m.group(1).decode()
        self.assertLine(b.request_raw("roomChange lobby"), reply_line(1, True, (epoch, 0)))
        a.expect({"message": ENTERED})
        self.assertLine(a.request_raw("say one"), reply_line(2, offset=1))
        raw = b.expect_raw({"message": "one"})
        self.assertChat(raw, "one", "lobby", a.id)
        self.assertTrue(raw.endswith(b',"offset":1}\r\n'), raw)
        # Announcements are not numbered.
        c = self.client()
        self.assertLine(c.request_raw("listenToRoom lobby"), reply_line(1, True, (epoch, 1)))
        self.assertLine(a.request_raw("say two"), reply_line(4, offset=2))
        self.assertTrue(c.expect_raw({"message": "two"}).endswith(b',"offset":2}\r\n'))
        # roomHistory without since: everything kept, position at the top.
        data = c.request("roomHistory lobby")["data"]
        self.assertEqual(data["room"], "lobby")
        self.assertEqual([(x["message"], x["offset"]) for x in data["messages"]],
                         [("one", 1), ("two", 2)])
        self.assertEqual(data["position"], {"epoch": epoch, "offset": 2})
        self.assertNotIn("recovered", data)

    def test_room_history_rules(self):
        self.server.admin_ok("DELETE", rpath("other"))
        self.server.admin_ok("POST", "/api/rooms", {"room": "other"})
        a, stranger = self.client(), self.client()
        epoch = a.request('{"event":"roomChange","room":"other"}')["position"]["epoch"]
        for i in range(5):
            a.request("say m%d" % i)
        self.assertError(stranger, "roomHistory other", "not a member or listener of this room")
        self.assertError(stranger, "roomHistory", "room is required")
        self.assertError(stranger, "roomHistory nowhere", "not a member or listener of this room")
        got = a.request('{"event":"roomHistory","room":"other","limit":2}')["data"]
        self.assertEqual([x["offset"] for x in got["messages"]], [4, 5])
        got = a.request('{"event":"roomHistory","room":"other","limit":0}')["data"]
        self.assertEqual(got["messages"], [])
        got = a.request('{"event":"roomHistory","room":"other","since":{"epoch":"%s","offset":3}}'
                        % epoch)["data"]
        self.assertEqual([x["message"] for x in got["messages"]], ["m3", "m4"])
        self.assertIs(got["recovered"], True)
        for since in ('{"epoch":"%s","offset":6}' % epoch,  # beyond the top
                      '{"epoch":"000000000000","offset":1}',  # another epoch
                      '{"epoch":"x","offset":1}'):
            got = a.request('{"event":"roomHistory","room":"other","since":%s}' % since)["data"]
            self.assertEqual(got["messages"], [])
            self.assertIs(got["recovered"], False)
        # Malformed since / limit: invalid request.
        for bad in ('"since":{"epoch":1,"offset":1}', '"since":{"epoch":"e","offset":-1}',
                    '"since":{"epoch":"e","offset":1.5}', '"since":{"epoch":"e"}',
                    '"since":"e:1"', '"since":null', '"limit":-1', '"limit":"2"',
                    '"limit":1.0'):
            self.assertError(a, '{"event":"roomHistory","room":"other",%s}' % bad,
                             "invalid request")
        for verb in ("roomChange", "listenToRoom"):
            self.assertError(a, '{"event":"%s","room":"lobby","since":{"offset":0}}' % verb,
                             "invalid request")
        # A listener may ask too.
        listener = self.client()
        listener.request("listenToRoom other")
        got = listener.request("roomHistory other")["data"]
        self.assertEqual(len(got["messages"]), 5)

    def test_recovery_exact_small(self):
        a, b = self.client(), self.client()
        pos = b.request("roomChange defaultRoom")  # already there: an error, no position
        self.assertEqual(pos["error"], "connection already in this room")
        epoch = a.request("roomHistory defaultRoom")["data"]["position"]["epoch"]
        top = a.request("roomHistory defaultRoom")["data"]["position"]["offset"]
        b.request("roomLeave")
        for i in range(3):
            a.request("say gap%d" % i)
        b.send_line('{"event":"roomChange","room":"defaultRoom","since":{"epoch":"%s",'
                    '"offset":%d}}' % (epoch, top))
        for i in range(3):
            raw = b.expect_raw(lambda o: o.get("context") == "user" and "offset" in o)
            self.assertChat(raw, "gap%d" % i, "defaultRoom", a.id)
            self.assertEqual(chat_offset(raw), top + 1 + i)
        self.assertLine(b.expect_raw({"context": "response"}),
                        reply_line(b.count, True, (epoch, top + 3), True))
        # Already current: recovered with nothing to replay.
        b.request("roomLeave")
        self.assertLine(b.request_raw('{"event":"roomChange","room":"defaultRoom","since":'
                                      '{"epoch":"%s","offset":%d}}' % (epoch, top + 3)),
                        reply_line(b.count, True, (epoch, top + 3), True))


class RecoveryFloodTest(RoomdTestCase):
    """A member drops in the middle of a 10 000-message flood from two speakers on other
    workers and recovers: heard + replayed + live is exactly the sequence, once, in order."""

    N = 5000  # per speaker

    def check_recovery(self, as_listener):
        server = self.start_server(workers=4, starting_rooms="flood", default_room="",
                                   say_rate=0, history_size=20000)
        # Consecutive connections land on consecutive workers (round robin).
        member = self.client(server)
        s1, s2 = self.client(server), self.client(server)
        join = "listenToRoom" if as_listener else "roomChange"
        first = member.request("%s flood" % join)
        epoch = first["position"]["epoch"]
        self.assertRegex(epoch, EPOCH)
        self.assertEqual(first["position"]["offset"], 0)
        for s in (s1, s2):
            s.request("roomChange flood")
        reader = Reader(member.sock, member.buf)
        reader.start()
        speakers = [Speaker(s1, "a", self.N), Speaker(s2, "b", self.N)]
        for sp in speakers:
            sp.start()
        reader.wait_for(lambda r: len(r.chats) >= 2000)
        reader.stop.set()
        member.sock.close()  # dropped mid-flood
        reader.join()
        heard = list(reader.chats)
        last = heard[-1][0]

        again = self.client(server)
        again.send_line('{"event":"%s","room":"flood","since":{"epoch":"%s","offset":%d}}'
                        % (join, epoch, last))
        rest = Reader(again.sock, again.buf)
        rest.start()
        for sp in speakers:
            sp.join(120)
            self.assertFalse(sp.is_alive(), "a speaker did not finish")
        total = 2 * self.N
        rest.wait_for(lambda r: r.replies and (r.chats and r.chats[-1][0] >= total), timeout=120)
        rest.stop.set()
        rest.join()
        self.assertIs(rest.replies[0]["recovered"], True, rest.replies[0])
        got = heard + rest.chats
        self.assertEqual([o for o, _ in got], list(range(1, total + 1)),
                         "offsets not exactly 1..%d once, in order" % total)
        said = {}
        for sp in speakers:
            for text, off in sp.offsets.items():
                said[off] = text
        self.assertEqual(len(said), total)
        self.assertEqual([t for _, t in got], [said[o] for o, _ in got])
        stats = server.admin_ok("GET", "/api/stats")
        self.assertGreaterEqual(stats["history"]["recoveriesSucceeded"], 1)

    def test_member_recovers_mid_flood(self):
        self.check_recovery(as_listener=False)

    def test_listener_recovers_mid_flood(self):
        self.check_recovery(as_listener=True)


class EpochTest(RoomdTestCase):
    """The epoch changes whenever the numbering starts again."""

    def test_room_recreated_and_restart(self):
        server = self.start_server(starting_rooms="defaultRoom,e")
        a = self.client(server)
        pos = a.request("roomChange e")["position"]
        a.request("say x")
        server.admin_ok("DELETE", rpath("e"))
        server.admin_ok("POST", "/api/rooms", {"room": "e"})
        a.request("roomLeave")
        r = a.request('{"event":"roomChange","room":"e","since":{"epoch":"%s","offset":1}}'
                      % pos["epoch"])
        self.assertIs(r["recovered"], False)
        self.assertNotEqual(r["position"]["epoch"], pos["epoch"])
        self.assertEqual(r["position"]["offset"], 0)
        epoch2 = r["position"]["epoch"]
        a.request("say y")
        server.stop()
        server.start()
        b = self.client(server)
        r = b.request('{"event":"roomChange","room":"e","since":{"epoch":"%s","offset":1}}'
                      % epoch2)
        self.assertIs(r["recovered"], False)
        self.assertNotEqual(r["position"]["epoch"], epoch2)

    def test_history_off(self):
        server = self.start_server(history_size=0)
        a, b = self.client(server), self.client(server)
        self.assertLine(a.request_raw("say plain"), reply_line(1))
        raw = b.expect_raw({"message": "plain"})
        self.assertIsNone(chat_offset(raw))
        b.request("roomLeave")
        r = b.request_raw('{"event":"roomChange","room":"defaultRoom","since":'
                          '{"epoch":"000000000000","offset":0}}')
        self.assertLine(r, reply_line(b.count, True, recovered=False))


class HistoryCapsTest(RoomdTestCase):
    """size, ttl and history_memory bound what is kept, whatever is said."""

    def test_size(self):
        server = self.start_server(history_size=5)
        a = self.client(server)
        epoch = a.request("roomHistory defaultRoom")["data"]["position"]["epoch"]
        for i in range(12):
            a.request("say s%d" % i)
        got = a.request("roomHistory defaultRoom")["data"]
        self.assertEqual([x["offset"] for x in got["messages"]], [8, 9, 10, 11, 12])
        since = '{"event":"roomHistory","room":"defaultRoom","since":{"epoch":"%s","offset":%d}}'
        self.assertIs(a.request(since % (epoch, 6))["data"]["recovered"], False)
        got = a.request(since % (epoch, 7))["data"]
        self.assertIs(got["recovered"], True)
        self.assertEqual(len(got["messages"]), 5)

    def test_ttl(self):
        server = self.start_server(history_ttl=1)
        a = self.client(server)
        epoch = a.request("roomHistory defaultRoom")["data"]["position"]["epoch"]
        a.request("say soon gone")
        self.assertEqual(len(a.request("roomHistory defaultRoom")["data"]["messages"]), 1)
        deadline = time.monotonic() + 10
        while a.request("roomHistory defaultRoom")["data"]["messages"]:
            self.assertLess(time.monotonic(), deadline, "kept past its ttl")
            time.sleep(0.05)
        r = a.request('{"event":"roomHistory","room":"defaultRoom","since":'
                      '{"epoch":"%s","offset":0}}' % epoch)["data"]
        self.assertIs(r["recovered"], False)
        # The sweep frees it without anyone asking (stats drop to 0).
        a.request("say also gone")
        deadline = time.monotonic() + 10
        while server.admin_ok("GET", "/api/stats")["history"]["messagesKept"]:
            self.assertLess(time.monotonic(), deadline, "the sweep did not drop it")
            time.sleep(0.05)

    def test_memory_cap_under_flood(self):
        cap = 1 << 20
        rooms = ["r%d" % i for i in range(40)]
        server = self.start_server(history_size=100000, history_memory=cap, say_rate=0,
                                   default_room="", starting_rooms=",".join(rooms))
        rss_before = server.rss_kb()
        text = "x" * 1000
        speakers = []
        for room in rooms:
            c = self.client(server)
            c.request("roomChange %s" % room)
            speakers.append(c)
        for rnd in range(3):
            for c in speakers:
                c.send_raw(("say %s\n" % text).encode() * 100, counted=100)
            for c in speakers:
                c.expect(lambda o: o.get("messageCount") == c.count, timeout=60)
                c.backlog.clear()
            stats = server.admin_ok("GET", "/api/stats")["history"]
            self.assertLessEqual(stats["bytesKept"], cap)
        # 12 MB said, at most 1 MiB kept: each message costs at most its size + 64.
        self.assertGreater(stats["messagesKept"], 0)
        per = stats["bytesKept"] / stats["messagesKept"]
        self.assertLessEqual(per, len(text) + 150 + 64)
        # ASan keeps freed memory in quarantine and TSan maps shadow memory: RSS says little there.
        if "ASAN_OPTIONS" not in os.environ and "TSAN_OPTIONS" not in os.environ:
            self.assertLess(server.rss_kb() - rss_before, 12 * 1024, "RSS grew past the cap")
        # The largest histories lost their oldest: every room still keeps its latest.
        for c, room in zip(speakers, rooms):
            got = c.request("roomHistory %s" % room)["data"]["messages"]
            self.assertTrue(got, room)
            self.assertEqual(got[-1]["offset"], 300)


class HistoryAdminTest(RoomdTestCase):
    """The server side: per-room settings, kept messages, numbered broadcasts."""

    def test_settings_and_messages(self):
        server = self.start_server(starting_rooms="defaultRoom,h")
        self.assertEqual(server.admin_ok("GET", rpath("h") + "/history"),
                         {"size": 100, "ttl": 300})
        self.assertEqual(server.admin_ok("PUT", rpath("h") + "/history", {"size": 3}),
                         {"size": 3, "ttl": 300})
        self.assertEqual(server.admin_ok("PUT", rpath("h") + "/history", {"ttl": 60}),
                         {"size": 3, "ttl": 60})
        for bad in ({"size": -1}, {"size": "3"}, {"ttl": 0}, {"ttl": 1.5}, {"nope": 1}, [], {}):
            status, body = server.admin("PUT", rpath("h") + "/history", bad)
            self.assertEqual(status, 400, bad)
        status, body = server.admin("GET", rpath("nowhere") + "/history")
        self.assertEqual((status, body), (404, {"error": "room does not exist"}))
        a = self.client(server)
        a.request("roomChange h")
        server.admin_ok("POST", rpath("h") + "/broadcast", {"message": {"n": 1}})
        raw = a.expect_raw({"from": 0})
        self.assertEqual(chat_offset(raw), 1)
        for i in range(4):
            server.admin_ok("POST", rpath("h") + "/broadcast", {"message": "b%d" % i})
        got = server.admin_ok("GET", rpath("h") + "/messages?limit=2")
        self.assertEqual([(m["message"], m["offset"]) for m in got["messages"]],
                         [("b2", 4), ("b3", 5)])
        got = server.admin_ok("GET", rpath("h") + "/messages")
        self.assertEqual([m["offset"] for m in got["messages"]], [3, 4, 5])
        self.assertEqual(got["position"]["offset"], 5)
        for bad in ("?limit=-1", "?limit=x", "?limit=1.5"):
            status, _ = server.admin("GET", rpath("h") + "/messages" + bad)
            self.assertEqual(status, 400, bad)
        text = metrics_text(server)
        for name in ("roomd_history_messages", "roomd_history_bytes",
                     "roomd_history_recoveries_total{result=\"recovered\"}",
                     "roomd_history_recoveries_total{result=\"lost\"}"):
            self.assertIn(name, text)


if __name__ == "__main__":
    main()
