#!/usr/bin/env python3
"""kill -9 and restart of roomd (issue 8, faults): a roomd.js client (Node's WebSocket, the
browser library's code) reconnects with back-off, rejoins its room, and the restarted
daemon's registry holds exactly the clients that came back.  Skipped (77) without node."""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

from harness import RoomdTestCase, Server, free_port, main

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = shutil.which("node")


class Restart(RoomdTestCase):

    def node_client(self, ws_port, room):
        proc = subprocess.Popen(
            [NODE, "--experimental-websocket", "--no-warnings",
             os.path.join(HERE, "roomd_js_client.mjs"), "ws://127.0.0.1:%d/" % ws_port, room],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (proc.kill(), proc.wait(), proc.stdin.close(),
                                 proc.stdout.close()))
        events = queue.Queue()

        def pump():
            for line in proc.stdout:
                events.put(json.loads(line))
        threading.Thread(target=pump, daemon=True).start()
        return events

    def expect_event(self, events, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail("no such roomd.js event within %ss" % timeout)
            try:
                ev = events.get(timeout=left)
            except queue.Empty:
                continue
            if predicate(ev):
                return ev

    def test_kill9_restart_clients_come_back(self):
        ws_port = free_port()
        options = dict(websocket_port=ws_port, starting_rooms="defaultRoom,lobby")
        server = Server(**options)
        clients = [self.node_client(ws_port, "lobby") for _ in range(3)]
        for events in clients:
            self.expect_event(events, lambda e: e == {"event": "room", "room": "lobby"})
        self.assertEqual(server.admin_ok("GET", "/api/rooms/lobby")["membersCount"], 3)

        server.proc.send_signal(signal.SIGKILL)  # no goodbye, no clean-up
        server.proc.wait(5)
        for events in clients:
            self.expect_event(events, lambda e: e["event"] == "close" and e["reconnectIn"])

        # Same ports, fresh process: the clients find it on their own.
        again = Server(start=False, **options)
        again.port, again.admin_port = server.port, server.admin_port
        self.assertTrue(again._launch(), "roomd did not restart: %s" % again.log_text())
        self.addCleanup(again.stop)
        for events in clients:
            self.expect_event(events, lambda e: e == {"event": "room", "room": "lobby"})
        status = again.admin_ok("GET", "/api/rooms/lobby")
        self.assertEqual(status["membersCount"], 3, status)  # exactly those, nothing stale
        self.assertEqual(len(again.admin_ok("GET", "/api/connections")["connections"]), 3)


if __name__ == "__main__":
    if not NODE:
        print("SKIP: node is not installed")
        sys.exit(77)
    main()
