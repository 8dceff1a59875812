#!/usr/bin/env python3
"""The bus's metrics (issue 13 item 5): roomd_bus_messages_received_total counts the chat a
server gets from the bus, roomd_bus_subscriptions the channels it holds, roomd_redis_up{shard}
each Redis link; the same figures under "bus" in /api/stats.
"""

import re

from redis_harness import RedisTestCase, skip_without_redis, wait_for

skip_without_redis()

from harness import chat, main  # noqa: E402
from test_history import metrics_text  # noqa: E402

NO_ROOMS = dict(starting_rooms="", default_room="")


def metric(server, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), metrics_text(server), re.M)
    if not m:
        raise AssertionError("no %s in /metrics" % name)
    return int(m.group(1))


class BusMetrics(RedisTestCase):

    def setUp(self):
        super().setUp()
        if self.redis.proc is None:
            self.redis.start(self.redis.port)

    def test_received_counts_chat_from_the_bus(self):
        a, b = self.cluster(2, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "r"})
        x, y = self.client(a), self.client(b)
        self.assertOK(x, "roomChange r", True)
        self.assertOK(y, "roomChange r", True)
        before = metric(b, "roomd_bus_messages_received_total")
        for i in range(7):
            x.request("say m%d" % i)
        for i in range(7):
            y.expect(chat("m%d" % i, "r", x.id))
        wait_for(lambda: metric(b, "roomd_bus_messages_received_total") == before + 7, 5,
                 "7 chat messages counted on B")
        self.assertEqual(metric(b, "roomd_bus_messages_received_total"), before + 7)
        bus = b.admin_ok("GET", "/api/stats")["bus"]
        self.assertEqual(bus["messagesReceived"], before + 7)
        self.assertEqual(bus["shardsUp"], [True] * self.nshards())
        self.assertGreaterEqual(bus["subscriptions"], 1)
        self.assertGreaterEqual(metric(b, "roomd_bus_subscriptions"), 1)

    def nshards(self):
        return len(getattr(self.redis, "shards", [self.redis]))

    def test_redis_up_follows_the_link(self):
        a = self.start_roomd("a", **NO_ROOMS)
        self.assertEqual(metric(a, 'roomd_redis_up{shard="0"}'), 1)
        self.redis.kill()
        wait_for(lambda: metric(a, 'roomd_redis_up{shard="0"}') == 0, 5, "shard 0 down")
        self.assertEqual(metric(a, "roomd_bus_subscriptions"), 0)
        self.assertEqual(a.admin_ok("GET", "/api/stats")["bus"]["shardsUp"],
                         [False] * self.nshards())
        self.redis.start(self.redis.port)
        wait_for(lambda: metric(a, 'roomd_redis_up{shard="0"}') == 1, 10, "shard 0 up again")
        wait_for(lambda: metric(a, "roomd_bus_subscriptions") >= 1, 10, "re-subscribed")


if __name__ == "__main__":
    main()
