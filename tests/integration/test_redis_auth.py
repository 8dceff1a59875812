#!/usr/bin/env python3
"""Redis authentication (issue 13 item 4): redis://:PASSWORD@ (requirepass), redis://USER:
PASSWORD@ (a Redis 6 ACL user) and redis_password_file log roomd in; a wrong or missing
password is reported as an authentication failure naming the server, at start-up (roomd exits)
and on a reconnection (logged, retried with back-off, working again once the password fits);
the password never shows in the log, /metrics or /api/stats.  An ACL user without the channels
(Redis 7's default, resetchannels) is told what it lacks, and its link backs off.
"""

import datetime
import json
import os
import tempfile
import threading

from redis_harness import RedisTestCase, skip_without_redis, wait_for

skip_without_redis()

from harness import Server, chat, free_port, main  # noqa: E402
from test_history import metrics_text  # noqa: E402

NO_ROOMS = dict(starting_rooms="", default_room="")
SECRET = "s3cret-Pw-9d1f"


class RedisAuth(RedisTestCase):
    redis_shards = 1  # about one server's login; the shards test has a protected one

    def setUp(self):
        super().setUp()
        self.redis.set_password(SECRET)
        self.addCleanup(self.redis.set_password, None)

    def url(self, auth):
        return "redis://%s@127.0.0.1:%d" % (auth, self.redis.port)

    def assert_no_secret(self, server, *secrets):
        """Neither the log nor the admin API shows any of SECRETS."""
        texts = [server.log_text(last=100000)]
        if server.alive():
            texts.append(json.dumps(server.admin_ok("GET", "/api/stats")))
            texts.append(metrics_text(server))
        for text in texts:
            for s in secrets:
                self.assertNotIn(s, text)

    def failed_start(self, **options):
        """A roomd that must exit at start-up; its stderr."""
        server = Server(start=False, redis_prefix=self.prefix, server_id="bad", **options)
        server.port, server.admin_port = 0, 0
        self.assertFalse(server._launch(), "roomd started with a bad password")
        self.assertNotEqual(server.proc.returncode, 0)
        return server

    def test_requirepass_cluster_chats_and_hides_the_password(self):
        a = self.start_roomd("a", store=self.url(":" + SECRET), **NO_ROOMS)
        b = self.start_roomd("b", store=self.url(":" + SECRET), **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "r"})
        x, y = self.client(a), self.client(b)
        self.assertOK(x, "roomChange r", True)
        self.assertOK(y, "roomChange r", True)
        x.request("say over the password")
        y.expect(chat("over the password", "r", x.id))
        # The rooms really are in the protected Redis.
        self.assertEqual(self.redis.command("SMEMBERS", self.prefix + "rooms"), [b"r"])
        ready = a.wait_log("roomd ready")
        self.assertIn(":***@127.0.0.1:%d" % self.redis.port, ready)
        for server in (a, b):
            self.assert_no_secret(server, SECRET)

    def test_acl_user(self):
        self.redis.command("ACL", "SETUSER", "chat", "on", ">" + SECRET + "u", "~*", "&*",
                           "+@all")
        self.addCleanup(self.redis.command, "ACL", "DELUSER", "chat")
        a = self.start_roomd("a", store=self.url("chat:" + SECRET + "u"), **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "r"})
        self.assertEqual(self.redis.command("SMEMBERS", self.prefix + "rooms"), [b"r"])
        self.assertIn("chat:***@", a.wait_log("roomd ready"))
        self.assert_no_secret(a, SECRET + "u")
        # The same user with a wrong password is refused, naming the user's server.
        bad = self.failed_start(store=self.url("chat:wrong-one-77"))
        line = bad.wait_log("authentication failed")
        self.assertIn("127.0.0.1:%d" % self.redis.port, line)
        self.assert_no_secret(bad, "wrong-one-77")

    def test_acl_user_without_channels_is_told_and_backs_off(self):
        self.redis.command("ACL", "SETUSER", "nochan", "on", ">" + SECRET + "n", "~*",
                           "resetchannels", "+@all")
        self.addCleanup(self.redis.command, "ACL", "DELUSER", "nochan")
        server = Server(start=False, store=self.url("nochan:" + SECRET + "n"),
                        redis_prefix=self.prefix, server_id="nochan", **NO_ROOMS)
        server.port, server.admin_port = free_port(), free_port()
        server.READY_TIMEOUT = 5  # it never gets ready: _launch kills it then

        def launch():
            try:
                server._launch()
            except AssertionError:
                pass
        t = threading.Thread(target=launch)
        t.start()
        self.addCleanup(t.join)

        def refused():
            lines = [l for l in list(server.stderr_lines) if "NOPERM" in l]
            return lines if len(lines) >= 4 else None
        lines = wait_for(refused, 5, "four refused subscriptions")
        self.assertIn("&PREFIX* or allchannels", lines[0])
        # Each retry waits twice as long (100, 200, 400 ms), not 100 ms each time.
        at = [datetime.datetime.strptime(l[:23], "%Y-%m-%d %H:%M:%S.%f") for l in lines[:4]]
        self.assertGreaterEqual((at[3] - at[0]).total_seconds(), 0.6, lines[:4])
        self.assertFalse(any("roomd ready" in l for l in server.stderr_lines))
        self.assert_no_secret(server, SECRET + "n")

    def test_wrong_password_is_reported_not_retried_in_silence(self):
        bad = self.failed_start(store=self.url(":not-the-pw-42"), redis_wait=True)
        line = bad.wait_log("authentication failed")
        self.assertIn("redis://:***@127.0.0.1:%d" % self.redis.port, line)
        self.assert_no_secret(bad, "not-the-pw-42")

    def test_missing_password_is_an_authentication_failure(self):
        bad = self.failed_start(store=self.redis.url)
        self.assertIn("127.0.0.1:%d" % self.redis.port, bad.wait_log("authentication failed"))

    def test_password_file(self):
        fd, path = tempfile.mkstemp(prefix="roomd-pw-")
        with os.fdopen(fd, "w") as f:
            f.write(SECRET + "\n")
        self.addCleanup(os.unlink, path)
        a = self.start_roomd("a", store=self.redis.url, redis_password_file=path, **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "r"})
        self.assertEqual(self.redis.command("SMEMBERS", self.prefix + "rooms"), [b"r"])
        with open("/proc/%d/cmdline" % a.pid, "rb") as f:
            self.assertNotIn(SECRET.encode(), f.read())
        self.assert_no_secret(a, SECRET)
        # A file that is missing stops roomd at start-up, saying so.
        bad = self.failed_start(store=self.redis.url, redis_password_file=path + ".none")
        bad.wait_log("redis_password_file")

    def test_password_changed_while_running(self):
        a = self.start_roomd("a", store=self.url(":" + SECRET), **NO_ROOMS)
        a.admin_ok("POST", "/api/rooms", {"room": "r"})
        x = self.client(a)
        self.assertOK(x, "roomChange r", True)
        # Redis' password changes and its clients are dropped: roomd's links reconnect, are
        # refused, and say so (with the server named), again and again with back-off.
        self.redis.command("CONFIG", "SET", "requirepass", "changed-pw-5")
        self.redis.password = "changed-pw-5"
        self.redis.command("CLIENT", "KILL", "TYPE", "normal")
        self.redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        line = a.wait_log(lambda l: "authentication failed" in l and "(bus" in l)
        self.assertIn("127.0.0.1:%d" % self.redis.port, line)
        wait_for(lambda: b"roomd_store_up 0" in self.metrics(a), 5, "store down")
        # The password is set back: the links log in again, chat works, nothing restarted.
        self.redis.set_password(SECRET)
        wait_for(lambda: b"roomd_store_up 1" in self.metrics(a), 10, "store up again")
        y = self.client(a)
        self.assertOK(y, "roomChange r", True)
        x.request("say after")
        y.expect(chat("after", "r", x.id), timeout=10)
        self.assert_no_secret(a, SECRET, "changed-pw-5")

    @staticmethod
    def metrics(server):
        return metrics_text(server).encode()


if __name__ == "__main__":
    main()
