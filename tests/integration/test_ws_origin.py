#!/usr/bin/env python3
"""Origin checks of WebSocket upgrades (issue 14 item 2): websocket_origins empty means the
Origin's host must be the Host header; a foreign page is refused 403 "origin not allowed";
a request without Origin (not a browser) is let in; an allow-list with a wildcard.
"""

import base64
import os
import socket

from harness import RoomdTestCase, free_port, main


def upgrade(port, host, origin=None, extra=b""):
    """Send an upgrade request; returns the status line and the answer's start."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET / HTTP/1.1", "Host: " + host, "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
    if origin is not None:
        lines.append("Origin: " + origin)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("\r\n".join(lines) + "\r\n").encode() + extra + b"\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        if answer.startswith(b"HTTP/1.1 403"):  # the body follows the head
            while not answer.endswith(b"origin not allowed"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
    return answer.split(b"\r\n", 1)[0].decode(), answer


class Origin(RoomdTestCase):

    def ws_server(self, **options):
        self.ws_port = free_port()
        self.server = self.start_server(websocket_port=self.ws_port, **options)
        self.host = "127.0.0.1:%d" % self.ws_port

    def test_same_host_let_in_foreign_refused(self):
        self.ws_server()
        status, _ = upgrade(self.ws_port, self.host, "http://" + self.host)
        self.assertEqual(status, "HTTP/1.1 101 Switching Protocols")
        status, _ = upgrade(self.ws_port, self.host, "HTTP://127.0.0.1:%d" % self.ws_port)
        self.assertEqual(status, "HTTP/1.1 101 Switching Protocols")
        for foreign in ("https://evil.example", "http://127.0.0.1:%d" % (self.ws_port + 1),
                        "null", "http://" + self.host + ".evil.example"):
            status, answer = upgrade(self.ws_port, self.host, foreign)
            self.assertEqual(status, "HTTP/1.1 403 Forbidden", foreign)
            self.assertTrue(answer.endswith(b"origin not allowed"), answer)
        # The server lives on: a good upgrade still works.
        status, _ = upgrade(self.ws_port, self.host, "http://" + self.host)
        self.assertEqual(status, "HTTP/1.1 101 Switching Protocols")

    def test_no_origin_let_in(self):
        self.ws_server()
        status, _ = upgrade(self.ws_port, self.host)
        self.assertEqual(status, "HTTP/1.1 101 Switching Protocols")

    def test_two_origins_refused(self):
        self.ws_server()
        status, _ = upgrade(self.ws_port, self.host, "http://" + self.host,
                            extra=("Origin: http://%s\r\n" % self.host).encode())
        self.assertEqual(status, "HTTP/1.1 403 Forbidden")

    def test_allow_list_with_wildcard(self):
        self.ws_server(websocket_origins="https://chat.example.com, https://*.example.org")
        cases = {
            "https://chat.example.com": True,
            "https://CHAT.example.com": True,
            "https://a.example.org": True,
            "https://a.b.example.org": True,
            "https://example.org": False,
            "http://a.example.org": False,
            "https://a.example.org:8443": False,
            "https://evil.com/.example.org": False,
            "https://other.example.com": False,
            "http://" + "127.0.0.1:%d" % 1: False,
        }
        for origin, allowed in cases.items():
            status, _ = upgrade(self.ws_port, self.host, origin)
            self.assertEqual(status.split()[1], "101" if allowed else "403", origin)
        # With a list, the same host is no longer enough.
        status, _ = upgrade(self.ws_port, self.host, "http://" + self.host)
        self.assertEqual(status.split()[1], "403")

    def test_star_lets_every_origin_in(self):
        self.ws_server(websocket_origins="*")
        status, _ = upgrade(self.ws_port, self.host, "https://anywhere.example")
        self.assertEqual(status.split()[1], "101")


if __name__ == "__main__":
    main()
