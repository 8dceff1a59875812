#!/usr/bin/env python3
"""Per-room bus subscriptions (issue 13): a server subscribes to a room's channel
(P room:R:bus, on the room's shard) only while it has local members or listeners of R.
Two shards, up to three servers: a server with no one in a room receives none of its chat
(roomd_bus_messages_received_total); 200 clients joining and leaving 2 000 rooms leave the
server subscribed to exactly the rooms in use (the metric, PUBSUB CHANNELS and NUMSUB on both
shards), and a shard restart re-subscribes exactly those; joins on a server that had no one in
the room, plain and with "since", while another server publishes without pause, get every
message after their position exactly once and in order.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Client, main  # noqa: E402
from redis_harness import RedisTestCase, shard_of, skip_without_redis, wait_for  # noqa: E402
from test_history import Reader, Speaker, metrics_text  # noqa: E402

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


class PerRoomSubscriptions(RedisTestCase):
    redis_shards = 2

    def channel(self, room):
        return "%sroom:%s:bus" % (self.prefix, room)

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

    def test_joins_during_publish_miss_nothing(self):
        a, b = self.cluster(2, history_size=50000, say_rate=0, **NO_ROOMS, **FAST_JOINS)
        a.admin_ok("POST", "/api/rooms", {"room": "busy"})
        talker = self.client(a)
        epoch = talker.request("roomChange busy")["position"]["epoch"]
        n = 30000
        speaker = Speaker(talker, "t", n)
        speaker.start()
        joins, got = 0, []
        since_joins = 0
        deadline = time.monotonic() + 60
        while speaker.is_alive() and time.monotonic() < deadline:
            # B has no one in "busy" now (the last joiner left): each join subscribes anew.
            wait_for(lambda: subscriptions(b) == 2, 5, "B not subscribed to busy")
            j = Client(b.port)
            if joins % 2 and got and got[-1][1]:
                since = got[-1][1][-1][0] - 5  # recover the last 5 the previous one heard
                j.send_line('{"event":"roomChange","room":"busy","since":{"epoch":"%s",'
                            '"offset":%d}}' % (epoch, since))
                since_joins += 1
            else:
                since = None
                j.send_line("roomChange busy")
            reader = Reader(j.sock, j.buf)
            reader.start()
            try:
                reader.wait_for(lambda r: r.replies and len(r.chats) >= 50, timeout=10)
            except AssertionError:
                if speaker.is_alive():
                    raise
            reader.stop.set()
            reader.join()
            j.sock.close()
            if not reader.replies:
                break
            reply = reader.replies[0]
            self.assertEqual(reply["status"], "OK", reply)
            start = reply["position"]["offset"] if since is None else since
            if since is not None:
                self.assertIs(reply["recovered"], True, reply)
            got.append((start, list(reader.chats)))
            joins += 1
        speaker.join(120)
        self.assertFalse(speaker.is_alive(), "the speaker did not finish")
        self.assertGreaterEqual(joins, 6, "too few joins while the speaker spoke")
        self.assertGreaterEqual(since_joins, 3)
        for start, chats in got:
            # Everything after the join's position (or since), once each, in order.
            self.assertEqual([o for o, _ in chats], list(range(start + 1, start + 1 + len(chats))),
                             "join at %d" % start)
            for o, text in chats:
                self.assertEqual(speaker.offsets[text], o)


if __name__ == "__main__":
    main()
