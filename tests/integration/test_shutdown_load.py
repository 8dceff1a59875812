#!/usr/bin/env python3
"""SIGTERM with thousands of clients connected (issue 8, faults): every one gets the goodbye
`server shutdown` and the process exits 0 within 2 s.  Raw sockets and select, so the test
itself does not need a thread per client."""

import resource
import selectors
import signal
import socket
import time

from harness import RoomdTestCase, Server, bye_line, main

CLIENTS = 2000
WELCOME_DEADLINE = 20  # seconds to connect and welcome them all


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class ShutdownUnderLoad(RoomdTestCase):

    def read_until(self, socks, predicate, deadline):
        """Read every socket until predicate(buffer, last read) holds for all (epoll, so
        descriptors past 1024 work); returns the buffers."""
        bufs = {s: b"" for s in socks}
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        waiting = len(socks)
        try:
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.fail("%d of %d clients not done in time" % (waiting, len(socks)))
                for key, _ in sel.select(min(left, 0.2)):
                    s = key.fileobj
                    data = s.recv(65536)
                    bufs[s] += data
                    if predicate(bufs[s], data):
                        sel.unregister(s)
                        waiting -= 1
        finally:
            sel.close()
        return bufs

    def test_sigterm_with_thousands_connected(self):
        limit = raise_fd_limit(CLIENTS + 200)
        n = min(CLIENTS, limit - 200)
        server = Server(workers=4, max_connections=CLIENTS + 100, announcements=False)
        socks = []
        try:
            for _ in range(n):
                socks.append(socket.create_connection(("127.0.0.1", server.port)))
            self.read_until(socks, lambda buf, data: b"\r\n" in buf,
                            time.monotonic() + WELCOME_DEADLINE)
            start = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            bye = bye_line("server shutdown")
            bufs = self.read_until(socks, lambda buf, data: data == b"",
                                   start + 2.0)  # closed after the goodbye
            for s, buf in bufs.items():
                self.assertTrue(buf.endswith(bye), "no goodbye before the close: %r"
                                % buf[-200:])
            rc = server.proc.wait(max(0.1, start + 2.0 - time.monotonic()))
            elapsed = time.monotonic() - start
            self.assertEqual(rc, 0, server.log_text())
            self.assertLess(elapsed, 2.0)
            print("%d clients: goodbye to all and exit 0 in %.2f s" % (n, elapsed))
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait()
            for s in socks:
                s.close()


if __name__ == "__main__":
    main()
