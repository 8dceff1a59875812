#!/usr/bin/env python3
"""A seconds-long smoke run of roomd-benchmark against the real daemon: every message said
must reach every member, once and in order (lost = 0). The real benchmark is scripts/bench."""

import json
import os
import subprocess

from harness import REPO, RoomdTestCase, main

BENCHMARK = os.environ.get("ROOMD_BENCHMARK",
                           os.path.join(REPO, "build", "src", "roomd-benchmark"))


class BenchmarkSmoke(RoomdTestCase):

    @classmethod
    def setUpClass(cls):
        cls.start_class_server(say_rate=0, announcements=False, starting_rooms="bench",
                               default_room="")

    def run_benchmark(self, *args):
        if not os.path.exists(BENCHMARK):
            self.fail("roomd-benchmark not found at %s (build it or set ROOMD_BENCHMARK)"
                      % BENCHMARK)
        argv = [BENCHMARK, "--port", str(self.server.port), "--room", "bench", "--json",
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


if __name__ == "__main__":
    main()
