#!/usr/bin/env python3
"""The demo page in headless Chromium: start roomd (tests/integration/harness.py), then run
demo_page.mjs (playwright-core) against it. run.sh installs what this needs first.

Environment: ROOMD (the binary), SCREENSHOT (where the PNG goes; default: none).
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from harness import ADMIN_KEY, Server, free_port  # noqa: E402
from redis_harness import REDIS_SERVER, RedisServer  # noqa: E402

# Chromium's start-up is the slow part (a few seconds); this only stops a hung run.
RUN_TIMEOUT = 120


def main():
    ws_port = free_port()
    server = Server(websocket_port=ws_port, starting_rooms="defaultRoom,lobby,other")
    # With redis-server there (scripts/deps installs it), the page also lives through a
    # restart of its server on the Redis store.
    redis = RedisServer().start() if os.access(REDIS_SERVER, os.X_OK) else None
    try:
        # demo_page.mjs also starts a roomd of its own ($ROOMD) for the restart part.
        env = dict(os.environ, ROOMD_WS_PORT=str(ws_port), ROOMD_TCP_PORT=str(server.port),
                   ROOMD_ADMIN_PORT=str(server.admin_port), ROOMD_ADMIN_KEY=ADMIN_KEY)
        if redis:
            env["REDIS_URL"] = redis.url
        rc = subprocess.run(["node", os.path.join(HERE, "demo_page.mjs")], env=env, cwd=HERE,
                            timeout=RUN_TIMEOUT).returncode
        if rc != 0:
            print("FAIL: demo_page.mjs exited with %d; roomd log:\n%s" % (rc, server.log_text()))
    finally:
        server.stop()
        if redis:
            redis.cleanup()
    return 1 if rc != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
