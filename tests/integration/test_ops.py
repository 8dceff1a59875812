#!/usr/bin/env python3
"""Operating roomd (issue 6): SIGHUP applies a changed configuration file live, log_file is
reopened for logrotate, restart-only keys keep their value, /metrics speaks Prometheus."""

import os
import re
import signal
import tempfile
import urllib.request

from harness import ADMIN_KEY, RoomdTestCase, err_line, main, ok_line, welcome_line


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Reload(RoomdTestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.conf = os.path.join(self.dir.name, "roomd.conf")
        self.log = os.path.join(self.dir.name, "roomd.log")

    def hup_and_wait(self, server, nth):
        """SIGHUP, then wait until the nth 'configuration reloaded' line is in the log file."""
        os.kill(server.pid, signal.SIGHUP)
        self.wait_for(lambda: self.read_log().count("configuration reloaded") >= nth)

    def read_log(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_for(self, predicate, timeout=5):
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        self.fail("condition not met within %ss; log:\n%s" % (timeout, self.read_log()))

    def test_sighup_changes_limits_and_welcome_live(self):
        write(self.conf, "welcome_message = first\nmax_params = 1\nlog_file = %s\n" % self.log)
        server = self.start_server(config=self.conf, ready_file=self.log)
        c = self.client(server)
        self.assertLine(c.welcome_raw, welcome_line("defaultRoom", "first"))
        self.assertOK(c, "paramAdd a=1", None)
        self.assertError(c, "paramAdd b=2", "too many params")

        write(self.conf, "welcome_message = second\nmax_params = 3\nlog_file = %s\n" % self.log)
        self.hup_and_wait(server, 1)
        # The running connection gets the new limit; a new one the new welcome.
        self.assertOK(c, "paramAdd b=2", None)
        self.assertOK(c, "paramAdd c=3", None)
        self.assertError(c, "paramAdd d=4", "too many params")
        self.assertLine(self.client(server).welcome_raw, welcome_line("defaultRoom", "second"))

    def test_restart_only_keys_keep_their_value(self):
        write(self.conf, "log_file = %s\nworkers = 2\n" % self.log)
        server = self.start_server(config=self.conf, ready_file=self.log)
        write(self.conf, "log_file = %s\nworkers = 3\nmax_params = 0\n" % self.log)
        self.hup_and_wait(server, 1)
        # workers is given on the command line by the harness, which wins on reload too,
        # so change a restart-only key that is only in the file: store stays memory.
        write(self.conf, "log_file = %s\nredis_prefix = other:\n" % self.log)
        self.hup_and_wait(server, 2)
        self.assertIn("redis_prefix changed; it takes effect at restart", self.read_log())
        c = self.client(server)
        self.assertOK(c, "paramAdd a=1", None)  # max_params back to its default

    def test_bad_file_on_sighup_keeps_running_config(self):
        write(self.conf, "welcome_message = kept\nlog_file = %s\n" % self.log)
        server = self.start_server(config=self.conf, ready_file=self.log)
        write(self.conf, "welcome_message = lost\nno_such_key = 1\nlog_file = %s\n" % self.log)
        os.kill(server.pid, signal.SIGHUP)
        self.wait_for(lambda: "configuration not reloaded" in self.read_log())
        self.assertIn("no_such_key", self.read_log())
        self.assertLine(self.client(server).welcome_raw, welcome_line("defaultRoom", "kept"))

    def test_log_file_is_reopened_on_sighup(self):
        write(self.conf, "log_file = %s\n" % self.log)
        server = self.start_server(config=self.conf, ready_file=self.log)
        self.wait_for(lambda: "roomd ready" in self.read_log())
        os.rename(self.log, self.log + ".1")  # what logrotate does
        self.hup_and_wait(server, 1)
        with open(self.log + ".1") as f:
            self.assertIn("roomd ready", f.read())
        self.assertNotIn("roomd ready", self.read_log())


class Metrics(RoomdTestCase):

    def test_prometheus_text(self):
        server = self.start_server()
        a, b = self.client(server), self.client(server)
        self.assertOK(a, "say hello")
        b.expect({"message": "hello"})
        self.assertError(a, "nope", "verb not found or not allowed")
        req = urllib.request.Request("http://127.0.0.1:%d/metrics" % server.admin_port,
                                     headers={"Authorization": "Bearer " + ADMIN_KEY})
        with urllib.request.urlopen(req, timeout=5) as resp:
            self.assertTrue(resp.headers["Content-Type"].startswith("text/plain"))
            text = resp.read().decode()
        samples = {}
        for line in text.splitlines():
            if line.startswith("#") or not line:
                continue
            m = re.match(r'^([a-z_]+)(\{[^}]*\})? (\d+)$', line)
            self.assertIsNotNone(m, "not a Prometheus sample line: %r" % line)
            samples[m.group(1) + (m.group(2) or "")] = int(m.group(3))
        self.assertEqual(samples['roomd_connections{transport="socket"}'], 2)
        self.assertEqual(samples['roomd_connections{transport="websocket"}'], 0)
        self.assertEqual(samples["roomd_rooms"], 1)
        self.assertEqual(samples["roomd_members"], 2)
        self.assertEqual(samples["roomd_store_up"], 1)
        delivered = sum(v for k, v in samples.items() if k.startswith("roomd_deliveries_total"))
        self.assertGreaterEqual(delivered, 2)  # a heard b enter, b heard hello
        self.assertEqual(samples['roomd_errors_total{error="verb not found or not allowed"}'], 1)
        self.assertEqual(sum(v for k, v in samples.items()
                             if k.startswith("roomd_worker_connections")), 2)


if __name__ == "__main__":
    main()
