#!/usr/bin/env python3
"""Rooms sharded over several Redis servers (issue 13): two shards -- the second with
requirepass -- and three roomd servers. Rooms land on the shard roomd-redis(7)'s hash names
(checked in Redis); chat in 8 rooms crosses servers exactly once and in order; killing one
shard stops only its rooms ("store unavailable"), and they work again once it restarts
(empty: re-seeded) without a roomd restart; a wrong password is reported, naming the shard.
"""

from redis_harness import (RedisServer, RedisTestCase, shard_of, skip_without_redis,
                           wait_for)

skip_without_redis()

from harness import Server, err_line, main  # noqa: E402

NO_ROOMS = dict(starting_rooms="", default_room="")
PASSWORD = "shard-two-pw-31"
ROOMS = ["room%d" % i for i in range(8)]
UNAVAILABLE = "store unavailable"


class TwoShards(RedisTestCase):
    start_redis = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain = RedisServer()
        cls.guarded = RedisServer(requirepass=PASSWORD)
        for r in (cls.plain, cls.guarded):
            cls.addClassCleanup(r.cleanup)
            r.start()

    def setUp(self):
        super().setUp()
        for r in (self.plain, self.guarded):
            if r.proc is None:
                r.start(r.port)
        self.shards = [self.plain, self.guarded]
        self.store = "%s,redis://:%s@127.0.0.1:%d" % (self.plain.url, PASSWORD,
                                                     self.guarded.port)
        # The 8 rooms cover both shards (else the test would prove little).
        self.assertEqual({shard_of(r, 2) for r in ROOMS}, {0, 1})

    def servers(self, n=3):
        return [self.start_roomd("s%d" % i, redis=self.plain, store=self.store, **NO_ROOMS)
                for i in range(n)]

    def assert_placed(self, room):
        want = shard_of(room, 2)
        for i, r in enumerate(self.shards):
            self.assertEqual(r.command("SISMEMBER", self.prefix + "rooms", room),
                             1 if i == want else 0, "%s on shard %d?" % (room, i))

    def test_rooms_on_their_shard_and_chat_once_in_order(self):
        servers = self.servers()
        for room in ROOMS:
            servers[0].admin_ok("POST", "/api/rooms", {"room": room})
            self.assert_placed(room)
        # One member per room on each server.
        members = {room: [self.client(s) for s in servers] for room in ROOMS}
        for room, clients in members.items():
            for c in clients:
                self.assertOK(c, "roomChange " + room, True)
        # A member's keys sit on its room's shard too.
        for room in ROOMS:
            got = self.shards[shard_of(room, 2)].command(
                "HLEN", self.prefix + "room:%s:members" % room)
            self.assertEqual(got, 3)
        per = 5
        for room, clients in members.items():
            for k, c in enumerate(clients):
                for i in range(per):
                    c.send_line("say %s-%d-%d" % (room, k, i))
        for room, clients in members.items():
            for k, c in enumerate(clients):
                # Everything said in the room, by the other two, once each, in each
                # speaker's order; offsets strictly increasing (Redis numbered them).
                want = {j: ["%s-%d-%d" % (room, j, i) for i in range(per)]
                        for j in range(3) if j != k}
                heard = {j: [] for j in want}
                offsets = []
                while len(offsets) < per * 2:
                    msg = c.expect({"context": "user", "room": room}, timeout=10)
                    if not msg["message"].startswith(room + "-"):
                        continue  # an "I have entered the room"
                    j = int(msg["message"].split("-")[1])
                    heard[j].append(msg["message"])
                    offsets.append(msg["offset"])
                self.assertEqual(heard, want)
                self.assertEqual(offsets, sorted(set(offsets)))
                c.assert_silent(0.05, match=lambda m, room=room: m.get("room") == room and
                                str(m.get("message", "")).startswith(room + "-"))

    def test_a_dead_shard_stops_only_its_rooms(self):
        a, b = self.servers(2)
        for room in ROOMS:
            a.admin_ok("POST", "/api/rooms", {"room": room})
        xs = {room: self.client(a) for room in ROOMS}
        ys = {room: self.client(b) for room in ROOMS}
        for room in ROOMS:
            self.assertOK(xs[room], "roomChange " + room, True)
            self.assertOK(ys[room], "roomChange " + room, True)
        self.guarded.kill()
        dead = [r for r in ROOMS if shard_of(r, 2) == 1]
        alive = [r for r in ROOMS if shard_of(r, 2) == 0]

        def refused(room):
            x = xs[room]
            return x.request_raw("say probe") == err_line(UNAVAILABLE, x.count)
        for room in dead:
            wait_for(lambda: refused(room), 5, "%s answering %r" % (room, UNAVAILABLE),
                     interval=0.05)
        for room in alive:  # the other shard's rooms go on
            self.assertOK(xs[room], "say still here")
            ys[room].expect({"message": "still here", "room": room})
        wait_for(lambda: '{shard="1"} 0' in metrics(a), 5, "shard 1 down in /metrics")
        self.assertIn('roomd_redis_up{shard="0"} 1', metrics(a))
        # The shard comes back empty: its rooms are re-seeded, members re-registered.
        self.guarded.start(self.guarded.port)
        for room in dead:
            wait_for(lambda: self.guarded.command("SISMEMBER", self.prefix + "rooms", room),
                     10, "%s re-seeded on shard 1" % room)

            def said():
                reply = xs[room].request("say back")
                return reply.get("status") == "OK"
            wait_for(said, 10, "say working again in %s" % room, interval=0.1)
            ys[room].expect({"message": "back", "room": room}, timeout=10)
            wait_for(lambda: self.guarded.command(
                "HLEN", self.prefix + "room:%s:members" % room) == 2, 10,
                "%s's members re-registered" % room)
        self.assertNotIn(PASSWORD, a.log_text(last=100000))

    def test_wrong_password_on_one_shard_is_reported(self):
        store = "%s,redis://:wrong-pw-8@127.0.0.1:%d" % (self.plain.url, self.guarded.port)
        bad = Server(start=False, store=store, redis_prefix=self.prefix, server_id="bad",
                     **NO_ROOMS)
        bad.port, bad.admin_port = 0, 0
        self.assertFalse(bad._launch())
        line = bad.wait_log("authentication failed")
        self.assertIn("redis://:***@127.0.0.1:%d" % self.guarded.port, line)
        self.assertNotIn("wrong-pw-8", bad.log_text(last=100000))


def metrics(server):
    from test_history import metrics_text
    return metrics_text(server)


if __name__ == "__main__":
    main()
