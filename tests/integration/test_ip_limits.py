#!/usr/bin/env python3
"""Per-address limits (issue 14 item 3): max_connections_per_ip and connection_rate_per_ip.
Over either, a line client gets the goodbye "too many connections from this address" and is
closed, a WebSocket client gets HTTP 503; the refusals are counted in /metrics; a closed
connection frees its place.
"""

import re
import socket
import time

from harness import Client, RoomdTestCase, free_port, main
from tls_harness import TestCA, TlsClient

REASON = "too many connections from this address"


def metric(server, limit):
    status, _ = 200, None
    import urllib.request
    from harness import ADMIN_KEY
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % server.admin_port)
    req.add_header("Authorization", "Bearer " + ADMIN_KEY)
    with urllib.request.urlopen(req, timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(r'roomd_refused_per_ip_total\{limit="%s"\} (\d+)' % limit, text)
    return int(m.group(1))


def ws_upgrade_status(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
            if answer.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in answer:
                break
    return answer


class IpLimits(RoomdTestCase):

    def test_max_connections_per_ip_line_ws_tls(self):
        ca = TestCA()
        self.addCleanup(ca.remove)
        cert = ca.cert("server")
        ws_port, tls_port = free_port(), free_port()
        self.server = self.start_server(max_connections_per_ip=2, websocket_port=ws_port,
                                        tls_port=tls_port, tls_cert_file=cert[0],
                                        tls_key_file=cert[1])
        a, b = self.client(), self.client()
        third = self.client(welcome=False)
        third.expect_goodbye(REASON)
        answer = ws_upgrade_status(ws_port)
        self.assertTrue(answer.startswith(b"HTTP/1.1 503"), answer)
        self.assertIn(REASON.encode(), answer)
        over_tls = TlsClient(tls_port, ca.ca_file, welcome=False)
        self.addCleanup(over_tls.close)
        over_tls.expect_goodbye(REASON)
        self.assertEqual(metric(self.server, "max_connections_per_ip"), 3)
        self.assertOK(a, "say still here")
        b.close()
        deadline = time.monotonic() + 5
        while True:  # b's place is freed once the server has reaped it
            c = Client(self.server.port, welcome=False)
            self.addCleanup(c.close)
            msg = c.recv_json()
            if "welcome" in msg:
                break
            self.assertLess(time.monotonic(), deadline, "b's place was never freed")
        self.assertOK(c, "say in b's place")

    def test_connection_rate_per_ip(self):
        self.server = self.start_server(connection_rate_per_ip=1)
        first = self.client()
        second = self.client(welcome=False)
        second.expect_goodbye(REASON)
        self.assertEqual(metric(self.server, "connection_rate_per_ip"), 1)
        self.assertOK(first, "say unaffected")
        deadline = time.monotonic() + 5
        while True:  # the bucket refills at one per second
            c = Client(self.server.port, welcome=False)
            self.addCleanup(c.close)
            if "welcome" in c.recv_json():
                break
            self.assertLess(time.monotonic(), deadline, "the bucket never refilled")
            time.sleep(0.2)  # a retry pace, not a wait for a condition

    def test_off_by_default(self):
        self.server = self.start_server()
        clients = [self.client() for _ in range(20)]
        self.assertOK(clients[-1], "say twenty from one address")


if __name__ == "__main__":
    main()
