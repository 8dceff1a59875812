#!/usr/bin/env python3
"""PROXY protocol (issue 14 item 4): with proxy_protocol on, the line and WebSocket ports
(plain and TLS) take remoteIP/remotePort from a v1 or v2 header; a connection without a
valid header is closed; the per-address limits count the address the header names; a header
split over many packets works.
"""

import collections
import socket
import ssl
import struct
import time

from harness import Client, RoomdTestCase, free_port, main
from tls_harness import TestCA, client_context, wait_closed_raw

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, sport, dst="192.0.2.1", dport=5000, family="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (family, src, dst, sport, dport)).encode()


def v2(src, sport, dst, dport, family=socket.AF_INET, command=0x21, tlvs=b""):
    if family == socket.AF_INET:
        fam, addrs = 0x11, socket.inet_pton(family, src) + socket.inet_pton(family, dst)
    else:
        fam, addrs = 0x21, socket.inet_pton(family, src) + socket.inet_pton(family, dst)
    body = addrs + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([command, fam]) + struct.pack("!H", len(body)) + body


def adopt(sock, welcome=True, timeout=5):
    """A harness.Client on a socket that already sent its header."""
    c = Client.__new__(Client)
    c.sock = sock
    sock.setblocking(False)
    c.local_port = sock.getsockname()[1]
    c.buf, c.eof, c.backlog, c.count, c._id = b"", False, collections.deque(), 0, None
    c.welcome_raw = c.welcome = None
    if welcome:
        c.welcome_raw, c.welcome = c._next_message(time.monotonic() + timeout)
    return c


class ProxyProtocol(RoomdTestCase):

    def setUp(self):
        self.server = self.start_server(proxy_protocol=True, handshake_timeout=1,
                                        max_connections_per_ip=1)

    def proxied(self, header, chunks=1, welcome=True):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        step = max(1, len(header) // chunks)
        for i in range(0, len(header), step):
            s.sendall(header[i:i + step])
            if chunks > 1:
                time.sleep(0.005)  # pace the pieces into separate packets
        c = adopt(s, welcome)
        self.addCleanup(c.close)
        return c

    def test_v1_address_in_details(self):
        c = self.proxied(v1("203.0.113.7", 4242))
        d = c.details()
        self.assertEqual((d["remoteIP"], d["remotePort"]), ("203.0.113.7", 4242))

    def test_v1_tcp6_and_unknown(self):
        c = self.proxied(v1("2001:db8::1", 1, dst="2001:db8::2", family="TCP6"))
        self.assertEqual(c.details()["remoteIP"], "2001:db8::1")
        c2 = self.proxied(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")
        self.assertEqual(c2.details()["remoteIP"], "127.0.0.1")  # the peer's own

    def test_v2_ipv4_ipv6_tlvs_and_local(self):
        c = self.proxied(v2("198.51.100.9", 777, "192.0.2.1", 5000, tlvs=b"\x04\x00\x02ab"))
        d = c.details()
        self.assertEqual((d["remoteIP"], d["remotePort"]), ("198.51.100.9", 777))
        c6 = self.proxied(v2("2001:db8::9", 9, "2001:db8::1", 1, family=socket.AF_INET6))
        self.assertEqual(c6.details()["remoteIP"], "2001:db8::9")
        local = self.proxied(V2_SIG + b"\x20\x00\x00\x00")  # LOCAL: a health check
        self.assertEqual(local.details()["remoteIP"], "127.0.0.1")

    def test_header_split_over_many_packets(self):
        c = self.proxied(v1("203.0.113.50", 5050), chunks=20)
        self.assertEqual(c.details()["remoteIP"], "203.0.113.50")
        c2 = self.proxied(v2("203.0.113.51", 5151, "192.0.2.1", 1), chunks=14)
        self.assertEqual(c2.details()["remoteIP"], "203.0.113.51")

    def test_missing_malformed_or_stalled_header_closes(self):
        witness = self.proxied(v1("203.0.113.1", 1))
        bad = [b"detailsView\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
               b"PROXY TCP4 999.2.3.4 5.6.7.8 1 2\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
               b"PROXY " + b"x" * 200, V2_SIG + b"\x21\x11\x00\x04abcd",
               V2_SIG + b"\x21\x11\xff\xff", V2_SIG + b"\x31\x11\x00\x0c" + b"\0" * 12]
        for header in bad:
            s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
            s.sendall(header)
            self.assertTrue(wait_closed_raw(s, 5), header)
            s.close()
        stalled = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        stalled.sendall(b"PROXY TCP4 1.2")
        self.assertTrue(wait_closed_raw(stalled, 5), "a stalled header was not closed")
        stalled.close()
        self.assertOK(witness, "say still here")

    def test_limits_count_the_real_address(self):
        self.proxied(v1("203.0.113.60", 1))
        self.proxied(v1("203.0.113.61", 1))  # another client behind the same balancer
        again = self.proxied(v1("203.0.113.60", 2), welcome=False)
        again.expect_goodbye("too many connections from this address")


class ProxyOverTls(RoomdTestCase):

    def test_v2_then_tls_handshake_and_websocket(self):
        ca = TestCA()
        self.addCleanup(ca.remove)
        cert = ca.cert("server")
        tls_port, ws_port = free_port(), free_port()
        self.server = self.start_server(proxy_protocol=True, tls_port=tls_port,
                                        websocket_port=ws_port, tls_cert_file=cert[0],
                                        tls_key_file=cert[1])
        raw = socket.create_connection(("127.0.0.1", tls_port), timeout=5)
        raw.sendall(v2("203.0.113.70", 7070, "192.0.2.1", tls_port))
        s = client_context(ca.ca_file).wrap_socket(raw, server_hostname="localhost")
        s.settimeout(5)
        welcome = s.recv(4096)
        self.assertIn(b"welcome", welcome)
        s.sendall(b"detailsView\r\n")
        data = b""
        while b"remoteIP" not in data:
            data += s.recv(65536)
        self.assertIn(b'"remoteIP":"203.0.113.70"', data)
        s.close()
        w = socket.create_connection(("127.0.0.1", ws_port), timeout=5)
        w.sendall(v1("203.0.113.71", 1) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = w.recv(4096)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer)
        w.close()


def ws_details(port, xff=None):
    """Upgrade (with X-Forwarded-For when given), ask detailsView; returns (status line,
    the details or None)."""
    import json
    import os
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    if xff:
        head += "X-Forwarded-For: %s\r\n" % xff
    s.sendall((head + "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    status = data.split(b"\r\n", 1)[0].decode()
    if not status.startswith("HTTP/1.1 101"):
        s.close()
        return status, None
    rest = data.split(b"\r\n\r\n", 1)[1]
    payload = b"detailsView"
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
              bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    messages = []
    while not any(b"remoteIP" in m for m in messages):
        while True:  # whole frames out of rest
            if len(rest) < 2:
                break
            n, off = rest[1] & 0x7f, 2
            if n == 126:
                if len(rest) < 4:
                    break
                n, off = struct.unpack("!H", rest[2:4])[0], 4
            if len(rest) < off + n:
                break
            messages.append(rest[off:off + n])
            rest = rest[off + n:]
        if not any(b"remoteIP" in m for m in messages):
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("closed; got %r" % messages)
            rest += chunk
    s.close()
    reply = [json.loads(m) for m in messages if b"remoteIP" in m][0]
    return status, reply["data"]


class XForwardedFor(RoomdTestCase):

    def test_only_trusted_peers_name_the_client(self):
        ws_port = free_port()
        self.server = self.start_server(websocket_port=ws_port, trusted_proxies="127.0.0.1/32",
                                        max_connections_per_ip=5)
        status, d = ws_details(ws_port, "198.51.100.1, 127.0.0.1")
        self.assertEqual(d["remoteIP"], "198.51.100.1")  # the trusted hop is skipped
        status, d = ws_details(ws_port, "10.9.9.9, 198.51.100.2")
        self.assertEqual(d["remoteIP"], "198.51.100.2")  # what the client wrote is not taken
        status, d = ws_details(ws_port)
        self.assertEqual(d["remoteIP"], "127.0.0.1")
        status, d = ws_details(ws_port, "not-an-address")
        self.assertEqual(d["remoteIP"], "127.0.0.1")

    def test_untrusted_peer_is_not_believed(self):
        ws_port = free_port()
        self.server = self.start_server(websocket_port=ws_port, trusted_proxies="10.0.0.0/8")
        status, d = ws_details(ws_port, "198.51.100.1")
        self.assertEqual(d["remoteIP"], "127.0.0.1")

    def test_limits_use_the_forwarded_address(self):
        ws_port = free_port()
        self.server = self.start_server(websocket_port=ws_port, trusted_proxies="127.0.0.0/8",
                                        connection_rate_per_ip=1)
        self.assertEqual(ws_details(ws_port, "198.51.100.10")[0].split()[1], "101")
        self.assertEqual(ws_details(ws_port, "198.51.100.11")[0].split()[1], "101")
        self.assertEqual(ws_details(ws_port, "198.51.100.10")[0].split()[1], "503")


if __name__ == "__main__":
    main()
