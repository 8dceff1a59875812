#!/usr/bin/env python3
"""A seconds-long smoke run of roomd-benchmark against the real daemon: every message said
must reach every member, once and in order (lost = 0). The real benchmark is scripts/bench."""

import json
import os
import subprocess

from harness import REPO, RoomdTestCase, free_port, main
from tls_harness import TestCA

BENCHMARK = os.environ.get("ROOMD_BENCHMARK",
                           os.path.join(REPO, "build", "src", "roomd-benchmark"))


class BenchmarkSmoke(RoomdTestCase):

    @classmethod
    def setUpClass(cls):
        cls.ws_port = free_port()
        cls.start_class_server(say_rate=0, announcements=False, starting_rooms="bench",
                               default_room="", websocket_port=cls.ws_port)

    def run_benchmark(self, *args, port=None):
        if not os.path.exists(BENCHMARK):
            self.fail("roomd-benchmark not found at %s (build it or set ROOMD_BENCHMARK)"
                      % BENCHMARK)
        argv = [BENCHMARK, "--port", str(port or self.server.port), "--room", "bench", "--json",
                "--warmup", "0.2", "--drain-timeout", "5"] + list(args)
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)
        table = proc.stderr.decode("utf-8", "replace")
        lines = proc.stdout.decode().splitlines()
        self.assertEqual(len(lines), 1, "expected one JSON line; stderr:\n" + table)
        result = json.loads(lines[0])
        for key in ("lost", "duplicates", "out_of_order", "errors", "closed"):
            self.assertEqual(result[key], 0, "%s != 0:\n%s" % (key, table))
        self.assertEqual(proc.returncode, 0, table)
        self.assertGreater(result["delivered"], 0, table)
        self.assertEqual(result["delivered"], result["expected"], table)
        return result

    def test_max_throughput(self):
        # Two publishers: each also hears the other (S + P - 1 recipients per message).
        r = self.run_benchmark("--subscribers", "50", "--publishers", "2", "--duration", "1")
        self.assertEqual(r["mode"], "throughput")
        self.assertGreater(r["deliveries_per_s"], 0)
        self.assertGreater(r["latency_us"]["samples"], 0)

    def test_fixed_rate(self):
        r = self.run_benchmark("--subscribers", "20", "--rate", "20000", "--duration", "0.6")
        self.assertEqual(r["mode"], "rate")
        self.assertEqual(r["delivered"], r["published"] * 20)

    def test_roomd_still_serves(self):
        # After the load the daemon answers as before (nobody was dropped as a slow reader).
        self.run_benchmark("--subscribers", "5", "--duration", "0.2")
        c = self.client()
        self.assertOK(c, "roomChange bench", True)

    # --websocket: the same counting over RFC 6455 (handshake Accept checked, masked frames,
    # server frames parsed); a few hundred deliveries at least, every one accounted for.
    def test_websocket_max_throughput(self):
        r = self.run_benchmark("--websocket", "--subscribers", "30", "--publishers", "2",
                               "--duration", "0.5", port=self.ws_port)
        self.assertEqual(r["target"], "roomd")
        self.assertGreaterEqual(r["delivered"], 300)

    def test_websocket_fixed_rate(self):
        r = self.run_benchmark("--websocket", "--subscribers", "20", "--rate", "2000",
                               "--duration", "0.5", port=self.ws_port)
        self.assertEqual(r["delivered"], r["published"] * 20)
        self.assertGreaterEqual(r["delivered"], 300)

    def test_websocket_refused_upgrade_fails(self):
        # Against the line port the upgrade gets no 101: the tool must say so and exit 2,
        # not count anything as delivered.
        proc = subprocess.run([BENCHMARK, "--websocket", "--port", str(self.server.port),
                               "--subscribers", "2", "--duration", "0.2",
                               "--connect-timeout", "5"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(proc.returncode, 2, proc.stderr.decode("utf-8", "replace"))


class BenchmarkTlsSmoke(BenchmarkSmoke):
    """--tls (issue 14's fan-out over TLS): the same counting through OpenSSL, line and wss."""

    @classmethod
    def setUpClass(cls):
        cls.ca = TestCA()
        cls.addClassCleanup(cls.ca.remove)
        cert, key = cls.ca.cert("server")
        cls.tls_port, cls.wss_port = free_port(), free_port()
        cls.start_class_server(say_rate=0, announcements=False, starting_rooms="bench",
                               default_room="", tls_port=cls.tls_port, wss_port=cls.wss_port,
                               tls_cert_file=cert, tls_key_file=key)

    def test_max_throughput(self):
        r = self.run_benchmark("--tls", "--tls-ca", self.ca.ca_file, "--subscribers", "30",
                               "--publishers", "2", "--duration", "0.5", port=self.tls_port)
        self.assertGreaterEqual(r["delivered"], 300)

    def test_fixed_rate(self):
        r = self.run_benchmark("--tls", "--tls-ca", self.ca.ca_file, "--websocket",
                               "--subscribers", "20", "--rate", "2000", "--duration", "0.5",
                               port=self.wss_port)
        self.assertEqual(r["delivered"], r["published"] * 20)
        self.assertGreaterEqual(r["delivered"], 300)

    def test_tls_needs_the_ca(self):
        proc = subprocess.run([BENCHMARK, "--tls", "--port", str(self.tls_port)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(proc.returncode, 2, proc.stderr.decode("utf-8", "replace"))
        self.assertIn(b"--tls-ca", proc.stderr)

    # Not repeated over TLS: the plain-port cases of the base class.
    test_roomd_still_serves = test_websocket_max_throughput = None
    test_websocket_fixed_rate = test_websocket_refused_upgrade_fails = None


if __name__ == "__main__":
    main()
