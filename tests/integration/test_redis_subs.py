#!/usr/bin/env python3
"""Per-room bus subscriptions (issue 13): a server subscribes to a room's channel
(P room:R:bus, on the room's shard) only while it has local members or listeners of R.
Two shards, up to three servers: a server with no one in a room receives none of its chat
(roomd_bus_messages_received_total); 200 clients joining and leaving 2 000 rooms leave the
server subscribed to exactly the rooms in use (the metric, PUBSUB CHANNELS and NUMSUB on both
shards), and a shard restart re-subscribes exactly those.

The rest runs the joiners' server on a DelayingProxy (redis_harness): its Redis answers a room
SUBSCRIBE (and, where said, UNSUBSCRIBE) 300 ms late, as a loaded one would, so what the
server does before Redis answered can be seen:
- joins on a server that had no one in the room, plain and with "since", while another server
  publishes without pause, get every message after their position exactly once and in order
  (a join's read waits for the subscription; read before it, the 300 ms are lost);
- 50 listens in one write go out as at most two SUBSCRIBEs per shard (MONITOR), not 50;
- leave then join again while the UNSUBSCRIBE is out ends subscribed, and chat from another
  server gets through; join then leave while the SUBSCRIBE is out ends unsubscribed.
"""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import ENTERED, Client, main, room_path  # noqa: E402
from redis_harness import (DelayingProxies, Monitor, RedisTestCase, shard_of,  # noqa: E402
                           skip_without_redis, wait_for)
from test_history import Reader, metrics_text  # noqa: E402

skip_without_redis()

NO_ROOMS = dict(starting_rooms="", default_room="")
FAST_JOINS = dict(join_rate=1000000, join_burst=1000000)


def metric(server, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), metrics_text(server), re.M)
    return int(m.group(1)) if m else None


def received(server):
    return metric(server, "roomd_bus_messages_received_total")


def subscriptions(server):
    return metric(server, "roomd_bus_subscriptions")


def to_text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


class Talker(threading.Thread):
    """Says numbered messages (NAME-i) at about RATE a second until stop is set, then waits
    for every reply; offsets maps each text to the offset its say reply gave."""

    def __init__(self, client, name, rate=2000):
        super().__init__(daemon=True)
        self.client, self.name, self.rate = client, name, rate
        self.stop = threading.Event()
        self.offsets = {}
        self.said = 0

    def run(self):
        base = self.client.count
        self.client.sock.setblocking(True)  # (the reader sets it too, maybe after our send)
        reader = Reader(self.client.sock, self.client.buf)
        reader.start()
        batch, began = 20, time.monotonic()
        while not self.stop.is_set():
            lines = b"".join(b"say %s-%d\n" % (self.name.encode(), i)
                             for i in range(self.said, self.said + batch))
            self.client.sock.sendall(lines)
            self.said += batch
            self.stop.wait(max(0, began + self.said / self.rate - time.monotonic()))
        reader.wait_for(lambda r: len(r.replies) >= self.said, timeout=60)
        reader.stop.set()
        reader.join()
        for reply in reader.replies:
            self.offsets["%s-%d" % (self.name, reply["messageCount"] - base - 1)] = reply["offset"]


class PerRoomSubscriptions(RedisTestCase):
    redis_shards = 2

    def channel(self, room):
        return "%sroom:%s:bus" % (self.prefix, room)

    def delaying_proxy(self, **options):
        """A DelayingProxies in front of the shards, for this test's prefix (closed at the end,
        after the servers on it)."""
        proxy = DelayingProxies(self.redis, self.prefix, **options)
        self.addCleanup(proxy.close)
        return proxy

    def channels_on(self, shard):
        """The room channels of this test's prefix subscribed on shard SHARD."""
        got = self.redis.shards[shard].command("PUBSUB", "CHANNELS", self.prefix + "room:*")
        return sorted(to_text(c) for c in got)

    def assert_subscribed_exactly(self, server, rooms):
        """SERVER (the only one of the test) is subscribed to the channels of ROOMS and no
        others, each once, on each room's shard; its metric counts them and one control
        channel per shard."""
        want = {s: sorted(self.channel(r) for r in rooms if shard_of(r, 2) == s)
                for s in (0, 1)}
        for s in (0, 1):
            try:
                wait_for(lambda s=s: self.channels_on(s) == want[s], 10,
                         "shard %d subscribed to exactly the rooms in use" % s, interval=0.05)
            except AssertionError:
                got = set(self.channels_on(s))
                self.fail("shard %d: missing %s, extra %s" % (
                    s, sorted(set(want[s]) - got)[:10], sorted(got - set(want[s]))[:10]))
            if want[s]:
                got = self.redis.shards[s].command("PUBSUB", "NUMSUB", *want[s])
                self.assertEqual([int(n) for n in got[1::2]], [1] * len(want[s]))
        wait_for(lambda: subscriptions(server) == len(rooms) + 2, 10,
                 "roomd_bus_subscriptions = rooms in use + 2 control channels")

    def test_a_server_without_members_receives_none_of_the_chat(self):
        rooms = ["room%d" % i for i in range(8)]
        self.assertEqual({shard_of(r, 2) for r in rooms}, {0, 1})
        a, b, c = self.cluster(3, **NO_ROOMS)
        for r in rooms:
            a.admin_ok("POST", "/api/rooms", {"room": r})
        # C hears room0 only (a listener), A and B have a member in every room.
        lone = self.client(c)
        self.assertOK(lone, "listenToRoom room0", True)
        members = {r: [self.client(a), self.client(b)] for r in rooms}
        for r, (x, y) in members.items():
            self.assertOK(x, "roomChange " + r, True)
            self.assertOK(y, "roomChange " + r, True)
        for who in members["room0"]:
            lone.expect({"message": "I have entered the room", "room": "room0", "from": who.id})
        wait_for(lambda: subscriptions(c) == 1 + 2, 5, "C subscribed to room0 only")
        before = received(c)
        per = 10
        for r, pair in members.items():
            for k, who in enumerate(pair):
                for i in range(per):
                    who.send_line("say %s-%d-%d" % (r, k, i))
        for r, (x, y) in members.items():
            for i in range(per):  # each hears the other's, so all were published
                x.expect({"message": "%s-1-%d" % (r, i)}, timeout=10)
                y.expect({"message": "%s-0-%d" % (r, i)}, timeout=10)
        for k in range(2):
            for i in range(per):
                lone.expect({"message": "room0-%d-%d" % (k, i)}, timeout=10)
        lone.assert_silent(0.2, match=lambda m: m.get("room") not in (None, "room0"))
        # What C received from the bus: room0's 2 x per says, nothing of the other rooms.
        self.assertEqual(received(c) - before, 2 * per)
        self.assertEqual(sorted(self.channels_on(0) + self.channels_on(1)),
                         sorted(self.channel(r) for r in rooms))
        num = {}
        for s in (0, 1):
            chans = [self.channel(r) for r in rooms if shard_of(r, 2) == s]
            got = self.redis.shards[s].command("PUBSUB", "NUMSUB", *chans)
            num.update({to_text(k): int(n) for k, n in zip(got[0::2], got[1::2])})
        self.assertEqual(num[self.channel("room0")], 3)
        for r in rooms[1:]:
            self.assertEqual(num[self.channel(r)], 2, r)

    def test_subscribe_churn_then_shard_restart(self):
        nrooms, nclients, per = 2000, 200, 10
        rooms = ["c%d" % i for i in range(nrooms)]
        server = self.start_roomd("s0", starting_rooms=",".join(rooms), default_room="",
                                  **FAST_JOINS)
        clients = [self.client(server) for _ in range(nclients)]
        # (A join is checked against the room the connection is in when it is read, so
        # each phase waits for the replies of the one before; within a phase the 200
        # clients' requests come in together.)
        def phase(lines_of):
            todo = [(c, lines_of(i)) for i, c in enumerate(clients)]
            for c, lines in todo:
                c.send_raw(b"".join(line.encode() + b"\n" for line in lines), counted=len(lines))
            for c, lines in todo:
                for _ in lines:
                    reply = c.expect({"context": "response"}, timeout=30)
                    self.assertEqual(reply["status"], "OK", reply)
        for k in range(per):  # each client through its 10 rooms
            phase(lambda i: ["roomChange " + rooms[i * per + k]])
        phase(lambda i: ["listenToRoom " + rooms[i * per + 2], "listenToRoom " + rooms[i * per + 5]])
        phase(lambda i: ["silenceRoom " + rooms[i * per + 2]] + ([] if i % 4 == 0 else ["roomLeave"]))
        in_use = {rooms[i * per + 5] for i in range(nclients)}
        in_use |= {rooms[i * per + per - 1] for i in range(0, nclients, 4)}
        # Every 7th goes back to its first room, then leaves it (or returns to its last).
        phase(lambda i: ["roomChange " + rooms[i * per]] if i % 7 == 0 else [])
        phase(lambda i: [] if i % 7 else ["roomChange " + rooms[i * per + per - 1]]
              if i % 4 == 0 else ["roomLeave"])
        self.assert_subscribed_exactly(server, in_use)

        # Shard 1 restarts (empty): exactly the rooms in use there are subscribed again.
        shard = self.redis.shards[1]
        shard.kill()
        wait_for(lambda: subscriptions(server) == len(
            [r for r in in_use if shard_of(r, 2) == 0]) + 1, 10, "shard 1's channels gone")
        shard.start(shard.port)
        self.assert_subscribed_exactly(server, in_use)
        # And chat flows there again, from the bus.
        i, room = next((i, rooms[i * per + per - 1]) for i in range(0, nclients, 4)
                       if shard_of(rooms[i * per + per - 1], 2) == 1)
        speaker = clients[i]
        hearer = clients[i + 1]  # a listener of it, from now
        wait_for(lambda: hearer.request("listenToRoom " + room).get("status") == "OK", 10,
                 "listening to %s again" % room, interval=0.1)

        def said():
            return speaker.request("say after the restart").get("status") == "OK"
        wait_for(said, 10, "say working again in %s" % room, interval=0.1)
        hearer.expect({"message": "after the restart", "room": room, "from": speaker.id},
                      timeout=10)

    def room_subscribes(self, monitor):
        """The SUBSCRIBEs naming this test's room channels that MONITOR saw: their channels."""
        room = re.compile(re.escape(self.prefix) + r"room:.*:bus\Z", re.S)
        return [[a for a in cmd[1:] if room.match(a)] for cmd in monitor.seen("SUBSCRIBE")
                if any(room.match(a) for a in cmd[1:])]

    def test_the_subscribes_of_a_burst_go_out_together(self):
        # 50 listens in one write: the worker sends their 50 checks at once and counts the
        # rooms up as the answers come, a turn or a few, while the main thread may flush
        # already (on loopback anything from 2 to 28 SUBSCRIBEs was seen without subs_busy).
        # So the main thread sends a shard's first changed rooms at once and those changed
        # while that command is out in one SUBSCRIBE when its replies are in.  B's Redis
        # answers 300 ms late, far longer than the worker takes to count 50 rooms up: at most
        # two SUBSCRIBEs per shard.  One per room is what this is there to avoid.
        rooms = ["l%02d" % i for i in range(50)]
        server = self.start_roomd("s0", redis=self.delaying_proxy(delay=0.3), **NO_ROOMS,
                                  **FAST_JOINS)
        for r in rooms:
            server.admin_ok("POST", "/api/rooms", {"room": r})
        c = self.client(server)
        wait_for(lambda: subscriptions(server) == 2, 5, "the control channels only")
        monitors = [Monitor(r) for r in self.redis.shards]
        for m in monitors:
            self.addCleanup(m.close)
        c.send_raw(b"".join(b"listenToRoom %s\n" % r.encode() for r in rooms),
                   counted=len(rooms))
        for _ in rooms:
            reply = c.expect({"context": "response"}, timeout=10)
            self.assertEqual(reply["status"], "OK", reply)
        self.assert_subscribed_exactly(server, rooms)
        for s, m in enumerate(monitors):
            want = sorted(self.channel(r) for r in rooms if shard_of(r, 2) == s)
            wait_for(lambda: sorted(ch for cmd in self.room_subscribes(m) for ch in cmd) == want,
                     5, "MONITOR saw each room's SUBSCRIBE on shard %d once" % s)
            commands = self.room_subscribes(m)
            self.assertLessEqual(len(commands), 2, "shard %d: SUBSCRIBEs of %s rooms"
                                 % (s, [len(cmd) for cmd in commands]))

    def assert_hears(self, listener, room, server):
        """A say in ROOM from a client of SERVER reaches LISTENER (through the bus); the
        speaker is returned."""
        speaker = self.client(server)
        self.assertOK(speaker, "roomChange " + room, True)
        listener.expect({"message": ENTERED, "room": room, "from": speaker.id})
        self.assertOK(speaker, "say across")
        listener.expect({"message": "across", "room": room, "from": speaker.id})
        return speaker

    def test_join_leave_join_while_redis_has_not_answered(self):
        # B's Redis answers every room (UN)SUBSCRIBE 300 ms late: the leave's UNSUBSCRIBE is
        # still out when the next join counts the room up again.  (A leave acts on the room
        # the connection is in when it is read, and a join enters only on its store's answer,
        # so "roomChange R, roomLeave" in one write would leave nothing: the first join is
        # answered first, then the leave and the second join go in one write.)
        proxy = self.delaying_proxy(delay=0.3, verbs=("SUBSCRIBE", "UNSUBSCRIBE"))
        a = self.start_roomd("s0", **NO_ROOMS)
        b = self.start_roomd("s1", redis=proxy, **NO_ROOMS)
        wait_for(lambda: subscriptions(b) == 2, 5, "B: the control channels only")
        # (Whether the UNSUBSCRIBE goes out at all depends on B's main thread flushing
        # between the leave and the second join, which waits for its store: try a few rooms
        # until it did.)
        for k in range(5):
            room = "jlj%d" % k
            a.admin_ok("POST", "/api/rooms", {"room": room})
            ch = self.channel(room)
            seen = len(proxy.seen)
            x = self.client(b)
            self.assertOK(x, "roomChange " + room, True)
            x.send_raw(("roomLeave\nroomChange %s\n" % room).encode(), counted=2)
            for _ in range(2):
                reply = x.expect({"context": "response"}, timeout=5)
                self.assertEqual((reply["status"], reply["data"]), ("OK", True), reply)
            wait_for(lambda: proxy.holding() == 0, 5, "the proxy sent everything up")
            self.assert_subscribed_exactly(b, [room])
            self.assertEqual(proxy.seen[-1], ("SUBSCRIBE", [ch]))
            raced = proxy.seen[seen:] == [("SUBSCRIBE", [ch]), ("UNSUBSCRIBE", [ch]),
                                          ("SUBSCRIBE", [ch])]
            self.assert_hears(x, room, a).close()
            x.close()
            wait_for(lambda: self.channels_on(0) + self.channels_on(1) == [], 5,
                     "A and B unsubscribed from %s" % room)
            if raced:
                break
        self.assertTrue(raced, "the second join never came while the UNSUBSCRIBE was out: %s"
                        % proxy.seen)

    def test_join_leave_while_redis_has_not_answered(self):
        # The leave comes while the join's SUBSCRIBE is still out (admin addMember and
        # removeMember do not wait for the subscription, as a join's read does).
        proxy = self.delaying_proxy(delay=0.3, verbs=("SUBSCRIBE", "UNSUBSCRIBE"))
        a = self.start_roomd("s0", **NO_ROOMS)
        b = self.start_roomd("s1", redis=proxy, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "jl"})
        ch = self.channel("jl")
        wait_for(lambda: subscriptions(b) == 2, 5, "B: the control channels only")
        x = self.client(b)
        path = "/api/connections/%s/room" % room_path(x.id)
        self.assertEqual(b.admin_ok("PUT", path, {"room": "jl"}), {"added": True})
        # The subscriber sends the SUBSCRIBE in its own loop turn: leave once it is out (a
        # leave before it would only mean no command at all).
        wait_for(lambda: proxy.seen == [("SUBSCRIBE", [ch])], 5, "B's SUBSCRIBE of jl")
        self.assertEqual(b.admin_ok("DELETE", path), {"removed": True})
        self.assertEqual(proxy.holding(), 1, "the leave came after Redis had answered")
        # Once Redis confirmed the SUBSCRIBE, B must take it back.
        wait_for(lambda: proxy.seen == [("SUBSCRIBE", [ch]), ("UNSUBSCRIBE", [ch])], 5,
                 "B unsubscribes from jl")
        wait_for(lambda: proxy.holding() == 0, 5, "the proxy sent everything up")
        self.assert_subscribed_exactly(b, [])
        # And B hears nothing of jl.
        before = received(b)
        speaker = self.client(a)
        self.assertOK(speaker, "roomChange jl", True)
        self.assertOK(speaker, "say unheard")
        listener = self.client(a)
        self.assertOK(listener, "listenToRoom jl", True)
        self.assertOK(speaker, "say heard")
        listener.expect({"message": "heard", "room": "jl"})
        self.assertEqual(received(b), before)

    def test_joins_during_publish_miss_nothing(self):
        # B's Redis confirms a room subscription 300 ms late (the proxy holds the SUBSCRIBE):
        # a join that read its position before the confirmation would miss what A
        # published in those 300 ms, neither in the stream read nor from the bus.
        proxy = self.delaying_proxy(delay=0.3)
        opts = dict(history_size=50000, say_rate=0, **NO_ROOMS, **FAST_JOINS)
        a = self.start_roomd("s0", **opts)
        b = self.start_roomd("s1", redis=proxy, **opts)
        a.admin_ok("POST", "/api/rooms", {"room": "busy"})
        talker = self.client(a)
        epoch = talker.request("roomChange busy")["position"]["epoch"]
        speaker = Talker(talker, "t")
        speaker.start()
        self.addCleanup(speaker.stop.set)
        got = []
        for k in range(8):  # every other one "since" the previous one's last 5
            # B has no one in "busy" now (the last joiner left): each join subscribes anew.
            wait_for(lambda: subscriptions(b) == 2, 5, "B not subscribed to busy")
            j = Client(b.port)
            if k % 2:
                since = got[-1][1][-1][0] - 5
                j.send_line('{"event":"roomChange","room":"busy","since":{"epoch":"%s",'
                            '"offset":%d}}' % (epoch, since))
            else:
                since = None
                j.send_line("roomChange busy")
            reader = Reader(j.sock, j.buf)
            reader.start()
            try:
                reader.wait_for(lambda r: r.replies and len(r.chats) >= 50, timeout=10)
            finally:
                reader.stop.set()
                reader.join()
                j.sock.close()
            reply = reader.replies[0]
            self.assertEqual(reply["status"], "OK", reply)
            if since is not None:
                self.assertIs(reply["recovered"], True, reply)
            got.append((reply["position"]["offset"] if since is None else since,
                        list(reader.chats)))
        self.assertTrue(speaker.is_alive(), "A spoke through every join")
        self.assertEqual(len(proxy.seen), 8, "each join subscribed (and was held) anew")
        speaker.stop.set()
        speaker.join(60)
        self.assertFalse(speaker.is_alive(), "the speaker did not finish")
        for start, chats in got:
            # Everything after the join's position (or since), once each, in order.
            self.assertEqual([o for o, _ in chats], list(range(start + 1, start + 1 + len(chats))),
                             "join at %d" % start)
            for o, text in chats:
                self.assertEqual(speaker.offsets[text], o)


if __name__ == "__main__":
    main()
