#!/usr/bin/env python3
"""TLS (issue 14 item 1): tls_port and wss_port next to the plain ports, the same rooms; the
secure attribute; client certificates required and refused; SIGHUP swaps the certificate
while a connection opened before keeps chatting; a bad certificate file stops start-up;
garbage and a stalled handshake on the TLS port close that connection only.

The CA and every certificate are made by the test (tls_harness.TestCA, openssl command).
"""

import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import time

from harness import ADMIN_KEY, ROOMD, RoomdTestCase, Server, chat, free_port, main
from tls_harness import TestCA, TlsClient, pem_fingerprint, wait_closed_raw


class Tls(RoomdTestCase):

    @classmethod
    def setUpClass(cls):
        cls.ca = TestCA()
        cls.addClassCleanup(cls.ca.remove)
        cls.cert_a = cls.ca.cert("server-a")
        cls.cert_b = cls.ca.cert("server-b")
        cls.client_cert = cls.ca.cert("client", cn="alice", client=True)
        cls.other_ca = TestCA("someone else's CA")
        cls.addClassCleanup(cls.other_ca.remove)
        cls.foreign_client_cert = cls.other_ca.cert("client", cn="mallory", client=True)

    def tls_server(self, cert=None, **options):
        cert = cert or self.cert_a
        self.tls_port = free_port()
        opts = dict(tls_port=self.tls_port, tls_cert_file=cert[0], tls_key_file=cert[1])
        opts.update(options)
        self.server = self.start_server(**opts)
        return self.server

    def tls_client(self, **kwargs):
        c = TlsClient(self.tls_port, self.ca.ca_file, **kwargs)
        self.addCleanup(c.close)
        return c

    def test_tls_and_plain_clients_chat_in_the_same_rooms(self):
        self.tls_server()
        secure, plain = self.tls_client(), self.client()
        self.assertEqual(secure.welcome["room"], "defaultRoom")
        self.assertOK(secure, "say over tls")
        plain.expect(chat("over tls"))
        self.assertOK(plain, "say in the clear")
        secure.expect(chat("in the clear"))
        self.assertEqual(secure.sock.version() in ("TLSv1.2", "TLSv1.3"), True)
        details = secure.details()
        self.assertEqual(details["type"], "socket")
        self.assertIs(details["attributes"]["secure"], True)
        self.assertNotIn("secure", plain.details()["attributes"])
        self.server.wait_log("TLS: kernel TLS")  # says whether the kernel took the records

    def test_secure_attribute_in_an_auth_pattern_and_read_only(self):
        self.tls_server(starting_rooms="defaultRoom,vault")
        self.server.admin_ok("PUT", "/api/rooms/vault/pattern", {"pattern": {"secure": True}})
        secure, plain = self.tls_client(), self.client()
        self.assertOK(secure, "roomChange vault", True)
        self.assertEqual(plain.request("roomChange vault")["status"] == "OK", False)
        status, _ = self.server.admin("PATCH", "/api/connections/%s/attributes" % plain.id,
                                      {"secure": True})
        self.assertNotEqual(status, 200)

    def test_tls_1_1_refused_by_default(self):
        self.tls_server()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca.ca_file)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        except ValueError:
            self.skipTest("this Python's OpenSSL cannot speak TLS 1.1")
        raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5)
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            ctx.wrap_socket(raw, server_hostname="localhost")
        raw.close()
        self.tls_client()  # the port still works

    def test_max_connections_on_the_tls_port_closes_without_plain_text(self):
        # The acceptor refuses above max_connections before any TLS: a plain-text goodbye
        # would reach a TLS client as a broken record ("wrong version number"); it is closed.
        self.tls_server(max_connections=1)
        first = self.tls_client()
        raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5)
        ctx = ssl.create_default_context(cafile=self.ca.ca_file)
        ctx.check_hostname = False
        with self.assertRaises((ssl.SSLError, ConnectionError)) as refused:
            ctx.wrap_socket(raw, server_hostname="localhost")
        raw.close()
        self.assertNotIn("WRONG_VERSION_NUMBER", str(refused.exception).upper().replace(" ", "_"))
        self.server.wait_log("max_connections (1) reached")
        self.assertOK(first, "say still here")

    def test_client_certificate_required(self):
        self.tls_server(tls_ca_cert_file=self.ca.ca_file, tls_client_auth="yes")
        good = self.tls_client(cert=self.client_cert)
        self.assertOK(good, "say with a certificate")
        for cert in (None, self.foreign_client_cert):
            # TLS 1.3 lets the client finish first; the refusal comes as an alert or EOF.
            try:
                bad = TlsClient(self.tls_port, self.ca.ca_file, cert=cert, timeout=5)
            except (ssl.SSLError, ConnectionError, OSError):
                continue
            self.addCleanup(bad.close)
            with self.assertRaises((AssertionError, ssl.SSLError, ConnectionError)):
                bad.request("detailsView")
            bad.wait_closed()
        self.server.wait_log("TLS handshake failed")
        self.assertOK(good, "say still here")

    def test_client_certificate_optional(self):
        self.tls_server(tls_ca_cert_file=self.ca.ca_file, tls_client_auth="optional")
        self.assertOK(self.tls_client(), "say without a certificate")
        self.assertOK(self.tls_client(cert=self.client_cert), "say with one")

    def test_sighup_swaps_the_certificate_and_keeps_open_connections(self):
        cert_file = os.path.join(self.ca.dir, "live.pem")
        key_file = os.path.join(self.ca.dir, "live.key")
        shutil.copy(self.cert_a[0], cert_file)
        shutil.copy(self.cert_a[1], key_file)
        self.tls_server(cert=(cert_file, key_file))
        before = self.tls_client()
        self.assertEqual(before.peer_fingerprint(), pem_fingerprint(self.cert_a[0]))
        shutil.copy(self.cert_b[0], cert_file)
        shutil.copy(self.cert_b[1], key_file)
        os.kill(self.server.pid, signal.SIGHUP)
        self.server.wait_log("SIGHUP: configuration reloaded")
        after = self.tls_client()
        self.assertEqual(after.peer_fingerprint(), pem_fingerprint(self.cert_b[0]))
        self.assertOK(before, "say opened before the reload")
        after.expect(chat("opened before the reload"))
        # A broken file on the next SIGHUP is refused; the one in use stays.
        with open(cert_file, "w") as f:
            f.write("not a certificate\n")
        os.kill(self.server.pid, signal.SIGHUP)
        self.server.wait_log(lambda l: "TLS certificate not reloaded" in l and cert_file in l)
        third = self.tls_client()
        self.assertEqual(third.peer_fingerprint(), pem_fingerprint(self.cert_b[0]))

    def test_bad_certificate_file_stops_start_up(self):
        missing = os.path.join(self.ca.dir, "missing.pem")
        for cert, key in ((missing, self.cert_a[1]), (self.cert_a[0], self.cert_b[1])):
            proc = subprocess.run([ROOMD, "--port=0", "--websocket-port=0", "--admin-port=0",
                                   "--tls-port=%d" % free_port(), "--tls-cert-file=" + cert,
                                   "--tls-key-file=" + key], capture_output=True, timeout=10)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn((cert if cert == missing else key).encode(), proc.stderr)

    def test_client_auth_needs_a_ca(self):
        proc = subprocess.run([ROOMD, "--tls-port=%d" % free_port(), "--tls-client-auth=yes",
                               "--tls-cert-file=" + self.cert_a[0],
                               "--tls-key-file=" + self.cert_a[1]],
                              capture_output=True, timeout=10)
        self.assertEqual(proc.returncode, 2)
        self.assertIn(b"tls_ca_cert_file", proc.stderr)

    def test_garbage_and_stalled_handshakes_close_only_themselves(self):
        self.tls_server(handshake_timeout=1)
        witness = self.tls_client()
        garbage = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5)
        garbage.sendall(b"say hello in the clear\r\n" * 10)
        self.assertTrue(wait_closed_raw(garbage, 5), "garbage to the TLS port was not closed")
        garbage.close()
        stalled = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5)
        started = time.monotonic()
        self.assertTrue(wait_closed_raw(stalled, 5), "a stalled handshake was not closed")
        self.assertGreaterEqual(time.monotonic() - started, 0.5)
        stalled.close()
        self.server.wait_log("TLS handshake timeout")
        # A ClientHello trickled a byte at a time does not extend it (a deadline).
        trickle = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5)
        trickle.setblocking(False)
        started, closed = time.monotonic(), False
        hello = b"\x16\x03\x01\x02\x00" + b"\x01" * 64
        for byte in hello:
            try:
                trickle.send(bytes([byte]))
            except OSError:
                closed = True
                break
            r, _, _ = select.select([trickle], [], [], 0.2)  # the trickle's pace
            if r:  # EOF, a reset or an alert: the server gave up on it
                closed = True
                break
        trickle.close()
        self.assertTrue(closed, "a trickled handshake outlived handshake_timeout")
        self.assertLess(time.monotonic() - started, 4)
        self.assertOK(witness, "say still fine")
        self.assertOK(self.tls_client(), "say new ones too")
        self.assertEqual(self.server.admin_ok("GET", "/api/stats")["connections"] >= 1, True)

    def test_wss_with_node(self):
        node = shutil.which("node")
        if not node:
            self.skipTest("node is not installed")
        wss_port = free_port()
        self.tls_server(wss_port=wss_port)
        script = r"""
const ws = new WebSocket(`wss://localhost:${process.env.PORT}/`);
const got = [];
const fail = (why) => { console.error(why); process.exit(1); };
setTimeout(() => fail('timeout; got ' + JSON.stringify(got)), 8000);
ws.onerror = (e) => fail('error ' + (e.message || e.type));
ws.onmessage = (e) => {
  const m = JSON.parse(e.data); got.push(m);
  if (m.welcome) ws.send('detailsView');
  else if (m.status === 'OK') { console.log(JSON.stringify(m.data)); ws.close(); process.exit(0); }
};
"""
        env = dict(os.environ, NODE_EXTRA_CA_CERTS=self.ca.ca_file, PORT=str(wss_port))
        proc = subprocess.run([node, "--experimental-websocket", "-e", script], env=env,
                              capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode() + self.server.log_text())
        details = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        self.assertEqual(details["type"], "websocket")
        self.assertIs(details["attributes"]["secure"], True)
        # The demo page and roomd.js over https.
        ctx = ssl.create_default_context(cafile=self.ca.ca_file)
        import urllib.request
        for path in ("/", "/roomd.js"):
            with urllib.request.urlopen("https://localhost:%d%s" % (wss_port, path),
                                        context=ctx, timeout=5) as resp:
                self.assertEqual(resp.status, 200)
                self.assertGreater(len(resp.read()), 100)


if __name__ == "__main__":
    main()
