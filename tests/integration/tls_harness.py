"""TLS for the integration tests: a test CA made here with the openssl command, server and
client certificates signed by it, and a TLS line client (Python's ssl) that behaves like
harness.Client.

Nothing here is checked in: every run makes fresh keys in a temporary directory.
"""

import hashlib
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from harness import Client


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   timeout=60)


class TestCA:
    """A CA in a temporary directory; cert(name) makes a key and a certificate it signed."""

    def __init__(self, name="roomd test CA"):
        self.dir = tempfile.mkdtemp(prefix="roomd-tls-")
        self.name = name
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                 "-out", "ca.pem", "-days", "2", "-subj", "/CN=" + name, cwd=self.dir)
        self.ca_file = os.path.join(self.dir, "ca.pem")

    def cert(self, name, cn="localhost", client=False):
        """(cert file, key file) for CN, with localhost and 127.0.0.1 as subjectAltName."""
        key, csr, crt, ext = (name + ".key", name + ".csr", name + ".pem", name + ".ext")
        with open(os.path.join(self.dir, ext), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
            f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                 "-subj", "/CN=" + cn, cwd=self.dir)
        _openssl("x509", "-req", "-in", csr, "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext, cwd=self.dir)
        return os.path.join(self.dir, crt), os.path.join(self.dir, key)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def pem_fingerprint(path):
    """SHA-256 of the DER of the first certificate in a PEM file."""
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def client_context(ca_file, cert=None):
    ctx = ssl.create_default_context(cafile=ca_file)
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    return ctx


class TlsClient(Client):
    """harness.Client over TLS: the handshake happens in the constructor (blocking, with a
    timeout), then the welcome is read like a plain client's."""

    def __init__(self, port, ca_file, cert=None, host="127.0.0.1", welcome=True, timeout=5):
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = client_context(ca_file, cert).wrap_socket(raw, server_hostname="localhost")
        self.sock.setblocking(False)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.eof = False
        import collections
        self.backlog = collections.deque()
        self.count = 0
        self._id = None
        self.welcome_raw = self.welcome = None
        if welcome:
            self.welcome_raw, self.welcome = self._next_message(time.monotonic() + timeout)

    def peer_fingerprint(self):
        return hashlib.sha256(self.sock.getpeercert(binary_form=True)).hexdigest()

    def _fill(self, deadline):
        """Like Client._fill, but a record OpenSSL already holds needs no select()."""
        if not self.sock.pending():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return False
        try:
            data = self.sock.recv(262144)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return True
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        if not data:
            self.eof = True
        self.buf += data
        return True


def wait_closed_raw(sock, timeout):
    """Wait until the server closes a plain socket (EOF or reset); False on timeout. Whatever
    it sends before is read and dropped."""
    deadline = time.monotonic() + timeout
    sock.setblocking(False)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        try:
            if sock.recv(65536) == b"":
                return True
        except BlockingIOError:
            continue
        except ConnectionResetError:
            return True
