#!/usr/bin/env python3
"""Run the Node WebSocket tests against a real daemon started here.

test_ws_node.mjs drives roomd with Node's built-in WebSocket (a client nobody here wrote);
test_roomd_js.mjs runs the browser library /roomd.js in Node on that same WebSocket. Both
use node:test; this wrapper gives them a daemon (free ports in the environment) and fails
when they fail. Exit 77 (automake's "skipped") when there is no node, or one without a
WebSocket (Node < 20.10).
"""

import os
import shutil
import subprocess
import sys

from harness import ADMIN_KEY, Server, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
# Generous: the suites take about two seconds; this only stops a hung run.
RUN_TIMEOUT = 120
NODE_FLAGS = ["--experimental-websocket"]
SUITES = ["test_ws_node.mjs", "test_roomd_js.mjs"]


def main():
    node = shutil.which("node")
    if not node:
        print("SKIP: node is not installed")
        return SKIP
    probe = subprocess.run([node] + NODE_FLAGS + ["-e", "new WebSocket('ws://127.0.0.1:1')"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        print("SKIP: this node has no built-in WebSocket: %s" % probe.stderr.decode()[-300:])
        return SKIP
    failed = 0
    for suite in SUITES:
        ws_port = free_port()
        server = Server(websocket_port=ws_port, starting_rooms="defaultRoom,lobby,other")
        try:
            env = dict(os.environ, ROOMD_WS_PORT=str(ws_port), ROOMD_TCP_PORT=str(server.port),
                       ROOMD_ADMIN_PORT=str(server.admin_port), ROOMD_ADMIN_KEY=ADMIN_KEY)
            print("== node %s" % suite, flush=True)
            rc = subprocess.run([node] + NODE_FLAGS + [os.path.join(HERE, suite)], env=env,
                                timeout=RUN_TIMEOUT).returncode
            if rc != 0:
                failed += 1
                print("FAIL: %s exited with %d; roomd log:\n%s" % (suite, rc, server.log_text()))
        finally:
            server.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
