#!/usr/bin/env python3
"""roomd-benchmark --websocket takes server frames far larger than its 256 KB read chunk:
NATS sends what a lagging subscriber has pending as one frame of several MB. A stand-in
server of a few lines (NATS' text protocol over RFC 6455, not the real nats-server, which
runs only in scripts/bench) sends every subscriber's deliveries in frames of about 1 MB;
every message must be counted once and in order."""

import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import unittest

from harness import REPO

BENCHMARK = os.environ.get("ROOMD_BENCHMARK",
                           os.path.join(REPO, "build", "src", "roomd-benchmark"))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FRAME = 1 << 20   # bytes gathered per frame to a subscriber


def ws_frame(data):
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + data


class FakeNats:
    """NATS over WebSocket, one thread per connection: INFO, CONNECT, SUB, PING/PONG, PUB
    relayed as MSG. A subscriber's MSGs are held until FRAME bytes (or a PING, or half a
    second) and then sent as one text frame."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.RLock()  # every send to a subscriber holds it
        self.subs = []          # [conn, sid, pending bytearray]
        self.biggest = 0
        self.closing = False
        threading.Thread(target=self.accept, daemon=True).start()
        threading.Thread(target=self.flusher, daemon=True).start()

    def flusher(self):
        """What is left under FRAME goes out every half second (the last messages)."""
        while not self.closing:
            threading.Event().wait(0.5)
            try:
                self.flush(True)
            except OSError:
                pass

    def accept(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def send(self, conn, data):
        self.biggest = max(self.biggest, len(data))
        conn.sendall(ws_frame(data))

    def flush(self, force):
        with self.lock:
            for sub in self.subs:
                if sub[2] and (force or len(sub[2]) >= FRAME):
                    self.send(sub[0], bytes(sub[2]))
                    sub[2].clear()

    def serve(self, conn):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
               if l.lower().startswith(b"sec-websocket-key:")][0]
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.send(conn, b'INFO {"server_id":"fake","max_payload":1048576}\r\n')
        stream = b""
        try:
            while True:
                while True:   # one client frame (always masked)
                    if len(buf) >= 2:
                        n, hl = buf[1] & 0x7f, 2
                        if n == 126 and len(buf) >= 4:
                            n, hl = struct.unpack("!H", buf[2:4])[0], 4
                        elif n == 127 and len(buf) >= 10:
                            n, hl = struct.unpack("!Q", buf[2:10])[0], 10
                        if n < 126 or hl > 2:
                            if len(buf) >= hl + 4 + n:
                                break
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                op, mask = buf[0] & 0x0f, buf[hl:hl + 4]
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[hl + 4:hl + 4 + n]))
                buf = buf[hl + 4 + n:]
                if op == 8:
                    return
                stream += data
                stream = self.protocol(conn, stream)
        except OSError:
            return

    def protocol(self, conn, stream):
        while b"\r\n" in stream:
            line, rest = stream.split(b"\r\n", 1)
            if line.startswith(b"PUB "):
                _, subject, size = line.split(b" ")
                size = int(size)
                if len(rest) < size + 2:
                    return stream
                payload, stream = rest[:size], rest[size + 2:]
                with self.lock:
                    for sub in self.subs:
                        sub[2] += b"MSG %s %s %d\r\n%s\r\n" % (subject, sub[1], size, payload)
                self.flush(False)
                continue
            stream = rest
            if line.startswith(b"SUB "):
                with self.lock:
                    self.subs.append([conn, line.split(b" ")[-1], bytearray()])
            elif line == b"PING":
                with self.lock:
                    self.flush(True)
                    self.send(conn, b"PONG\r\n")
        return stream

    def close(self):
        self.closing = True
        self.sock.close()


class BigFrames(unittest.TestCase):

    def test_frames_over_the_read_chunk(self):
        server = FakeNats()
        self.addCleanup(server.close)
        argv = [BENCHMARK, "--target", "nats", "--websocket", "--port", str(server.port),
                "--room", "bench", "--json", "--subscribers", "2", "--rate", "20000",
                "--duration", "1", "--warmup", "0", "--drain-timeout", "10"]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)
        table = proc.stderr.decode("utf-8", "replace")
        lines = proc.stdout.decode().splitlines()
        self.assertEqual(len(lines), 1, "expected one JSON line; stderr:\n" + table)
        r = json.loads(lines[0])
        for key in ("lost", "duplicates", "out_of_order", "errors", "closed"):
            self.assertEqual(r[key], 0, "%s != 0:\n%s" % (key, table))
        self.assertEqual(proc.returncode, 0, table)
        self.assertGreater(r["delivered"], 0, table)
        self.assertEqual(r["delivered"], r["expected"], table)
        self.assertGreater(server.biggest, 256 * 1024, "no frame was over the read chunk")


if __name__ == "__main__":
    unittest.main()
