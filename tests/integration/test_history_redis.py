#!/usr/bin/env python3
"""History and recovery on the Redis store: offsets and epochs assigned in Redis, so a member
that dropped from server A recovers on server B, exactly once and in order; a Redis that lost
its data gives a new epoch; the server side's settings are shared; the keys are where
roomd-redis(7) says.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import main  # noqa: E402
from redis_harness import RedisTestCase, skip_without_redis, wait_for  # noqa: E402
from test_history import Reader, Speaker, rpath  # noqa: E402

skip_without_redis()

NO_ROOMS = dict(starting_rooms="", default_room="")


class RedisHistory(RedisTestCase):

    def test_offsets_agree_across_servers(self):
        a, b = self.cluster(2, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "r"})
        x, y = self.client(a), self.client(b)
        px = x.request("roomChange r")["position"]
        py = y.request("roomChange r")["position"]
        self.assertEqual(px["epoch"], py["epoch"])
        self.assertEqual((px["offset"], py["offset"]), (0, 0))
        self.assertEqual(x.request("say one")["offset"], 1)
        self.assertEqual(y.request("say two")["offset"], 2)
        self.assertEqual(y.expect({"message": "one"})["offset"], 1)
        self.assertEqual(x.expect({"message": "two"})["offset"], 2)
        # Kept in Redis, where roomd-redis(7) says.
        self.assertEqual(self.redis.command("HGET", self.prefix + "room:r:history", "top"),
                         b"2")
        self.assertEqual(self.redis.command("XLEN", self.prefix + "room:r:stream"), 2)
        a.admin_ok("POST", rpath("r") + "/broadcast", {"message": "three"})
        self.assertEqual(y.expect({"message": "three"})["offset"], 3)
        got = b.admin_ok("GET", rpath("r") + "/messages?limit=2")
        self.assertEqual([m["offset"] for m in got["messages"]], [2, 3])
        # roomHistory on either server, since or not.
        h = x.request('{"event":"roomHistory","room":"r","since":{"epoch":"%s","offset":1}}'
                      % px["epoch"])["data"]
        self.assertEqual([m["message"] for m in h["messages"]], ["two", "three"])
        self.assertIs(h["recovered"], True)
        self.assertEqual(h["position"], {"epoch": px["epoch"], "offset": 3})

    def test_settings_shared(self):
        a, b = self.cluster(2, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "s"})
        self.assertEqual(a.admin_ok("PUT", rpath("s") + "/history", {"size": 2, "ttl": 50}),
                         {"size": 2, "ttl": 50})
        self.assertEqual(b.admin_ok("GET", rpath("s") + "/history"), {"size": 2, "ttl": 50})
        x = self.client(b)
        x.request("roomChange s")
        for i in range(5):
            x.request("say m%d" % i)
        got = a.admin_ok("GET", rpath("s") + "/messages")
        self.assertEqual([m["offset"] for m in got["messages"]], [4, 5])

    def test_drop_from_a_recover_on_b_mid_flood(self):
        a, b = self.cluster(2, history_size=20000, say_rate=0, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "flood"})
        member = self.client(a)
        epoch = member.request("roomChange flood")["position"]["epoch"]
        s1, s2 = self.client(a), self.client(b)
        for s in (s1, s2):
            s.request("roomChange flood")
        reader = Reader(member.sock, member.buf)
        reader.start()
        n = 2500
        speakers = [Speaker(s1, "a", n), Speaker(s2, "b", n)]
        for sp in speakers:
            sp.start()
        reader.wait_for(lambda r: len(r.chats) >= 1000)
        reader.stop.set()
        member.sock.close()
        reader.join()
        heard = list(reader.chats)
        again = self.client(b)  # the other server
        again.send_line('{"event":"roomChange","room":"flood","since":{"epoch":"%s",'
                        '"offset":%d}}' % (epoch, heard[-1][0]))
        rest = Reader(again.sock, again.buf)
        rest.start()
        for sp in speakers:
            sp.join(120)
            self.assertFalse(sp.is_alive(), "a speaker did not finish")
        total = 2 * n
        rest.wait_for(lambda r: r.replies and r.chats and r.chats[-1][0] >= total, timeout=120)
        rest.stop.set()
        rest.join()
        self.assertIs(rest.replies[0]["recovered"], True, rest.replies[0])
        got = heard + rest.chats
        self.assertEqual([o for o, _ in got], list(range(1, total + 1)))
        said = {}
        for sp in speakers:
            for text, off in sp.offsets.items():
                said[off] = text
        self.assertEqual([t for _, t in got], [said[o] for o, _ in got])

    def test_listener_recovers_on_other_server(self):
        a, b = self.cluster(2, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "l"})
        speaker, listener = self.client(a), self.client(a)
        speaker.request("roomChange l")
        pos = listener.request("listenToRoom l")["position"]
        speaker.request("say before")
        listener.expect({"message": "before"})
        listener.close()
        for i in range(3):
            speaker.request("say gap%d" % i)
        back = self.client(b)
        back.send_line('{"event":"listenToRoom","room":"l","since":{"epoch":"%s","offset":1}}'
                       % pos["epoch"])
        for i in range(3):
            m = back.expect(lambda o: o.get("context") == "user")
            self.assertEqual((m["message"], m["offset"]), ("gap%d" % i, 2 + i))
        reply = back.expect({"context": "response"})
        self.assertIs(reply["recovered"], True)
        self.assertEqual(reply["position"]["offset"], 4)
        speaker.request("say live")
        self.assertEqual(back.expect({"message": "live"})["offset"], 5)
        back.assert_silent(0.2, match=lambda o: o.get("context") == "user")

    def test_redis_restarted_empty_is_a_new_epoch(self):
        (a,) = self.cluster(1, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "e"})
        x = self.client(a)
        pos = x.request("roomChange e")["position"]
        x.request("say kept")
        self.redis.kill()
        self.redis.start()
        wait_for(lambda: a.admin("GET", "/api/rooms")[1] == {"rooms": ["e"]}, 10,
                 "the rooms re-seeded")
        y = self.client(a)
        wait_for(lambda: y.request("roomChange e").get("status") == "OK", 10, "joined again")
        r = y.request('{"event":"roomHistory","room":"e","since":{"epoch":"%s","offset":1}}'
                      % pos["epoch"])["data"]
        self.assertIs(r["recovered"], False)
        self.assertNotEqual(r["position"]["epoch"], pos["epoch"])
        self.assertEqual(r["messages"], [])

    def test_room_recreated_is_a_new_epoch(self):
        a, b = self.cluster(2, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "rc"})
        x = self.client(a)
        pos = x.request("roomChange rc")["position"]
        x.request("say old")
        b.admin_ok("DELETE", rpath("rc"))
        b.admin_ok("POST", "/api/rooms", {"room": "rc"})
        wait_for(lambda: a.admin_ok("GET", rpath("rc"))["exists"], 5, "re-created")
        y = self.client(a)
        r = y.request('{"event":"roomChange","room":"rc","since":{"epoch":"%s","offset":1}}'
                      % pos["epoch"])
        self.assertIs(r["recovered"], False)
        self.assertNotEqual(r["position"]["epoch"], pos["epoch"])


if __name__ == "__main__":
    main()
