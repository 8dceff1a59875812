#!/usr/bin/env python3
"""WebSocket clients (PROTOCOL.md "Transports"): RFC 6455 over the real daemon.

Well-formed traffic goes through Python's `websockets` (Debian's python3-websockets, a client
nobody here wrote); malformed frames and HTTP requests go through raw sockets (RawWs), since
a correct library refuses to send them. TCP line clients share rooms with both.
"""

import asyncio
import base64
import collections
import hashlib
import json
import os
import re
import socket
import struct
import sys
import threading
import time

try:
    import websockets
except ImportError:
    # Debian's python3-websockets lives in the system's dist-packages, which a python3 of
    # its own (pyenv, venv) does not search; it is pure Python, so any 3.x can load it.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import websockets
    except ImportError:
        sys.exit("test_websocket.py: Python's websockets module is missing "
                 "(apt-get install python3-websockets; scripts/deps does it)")

from harness import (ENTERED, LEFT, RoomdTestCase, bye_line, chat, chat_regex, err_line,
                     free_port, main, now_ms, ok_line, room_path, strip_history,
                     welcome_line)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 5
# The daemon's WS_HANDSHAKE_TIMEOUT_SEC (src/proto_ws.c).
HANDSHAKE_TIMEOUT = 10

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame_text(line):
    """A server line (bytes ending in \\r\\n) as the text of a WebSocket frame."""
    assert line.endswith(b"\r\n")
    return line[:-2].decode()


def ws_ok(count, *data):
    return frame_text(ok_line(count, *data))


def ws_err(text, count):
    return frame_text(err_line(text, count))


def ws_bye(reason):
    return frame_text(bye_line(reason))


def ws_chat_regex(message, room, sender):
    """chat_regex without the line ending: a chat frame's exact text; group 1 is sentAt."""
    return re.compile(chat_regex(message, room, sender).pattern.replace(b"\r\n$", b"$"))


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


# ---------------------------------------------------------------------------------------------
# A `websockets` client behind a blocking interface
# ---------------------------------------------------------------------------------------------

class _Loop:
    """One asyncio loop on a daemon thread; the tests call into it and wait with deadlines."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def run(self, coro, timeout=TIMEOUT):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout + 1)


LOOP = _Loop()


class WsClient:
    """A WebSocket client with harness.Client's habits: a backlog of unmatched messages,
    expect()/request() by match, and `count`, the messageCount of the latest request."""

    def __init__(self, port, path="/", welcome=True):
        async def connect():  # websockets.connect() must be made on the loop's thread
            return await websockets.connect(
                "ws://127.0.0.1:%d%s" % (port, path), ping_interval=None, max_size=None,
                compression=None, open_timeout=TIMEOUT)

        self.ws = LOOP.run(connect())
        self.backlog = collections.deque()
        self.count = 0
        self._id = None
        self.welcome_raw = self.recv_raw() if welcome else None

    def send(self, message, counted=1):
        """A text (str), binary (bytes) or fragmented (list) message."""
        LOOP.run(self.ws.send(message))
        self.count += counted

    def _next(self, timeout):
        raw = LOOP.run(asyncio.wait_for(self.ws.recv(), timeout), timeout)
        if not isinstance(raw, str):
            raise AssertionError("server sent a binary frame: %r" % raw[:200])
        try:
            return raw, json.loads(raw)
        except ValueError:
            raise AssertionError("server frame is not JSON: %r" % raw[:300])

    def recv_raw(self, timeout=TIMEOUT):
        if self.backlog:
            return self.backlog.popleft()[0]
        return self._next(timeout)[0]

    def expect_raw(self, match, timeout=TIMEOUT):
        from harness import matches
        for i, (raw, obj) in enumerate(self.backlog):
            if matches(match, obj):
                del self.backlog[i]
                return raw
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no frame matching %r within %ss; unmatched: %r"
                                     % (match, timeout, [r for r, _ in self.backlog]))
            try:
                raw, obj = self._next(left)
            except (asyncio.TimeoutError, TimeoutError):
                continue
            if matches(match, obj):
                return raw
            self.backlog.append((raw, obj))

    def expect(self, match, timeout=TIMEOUT):
        return json.loads(self.expect_raw(match, timeout))

    def request_raw(self, message):
        self.send(message)
        return self.expect_raw({"context": "response"})

    def request(self, message):
        return json.loads(self.request_raw(message))

    def assert_silent(self, timeout=0.3, match=None):
        from harness import matches
        match = match if match is not None else (lambda m: True)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                raw, obj = self._next(left)
            except (asyncio.TimeoutError, TimeoutError):
                return
            if matches(match, obj):
                raise AssertionError("unexpected frame: %r" % raw)
            self.backlog.append((raw, obj))

    def wait_closed(self, timeout=TIMEOUT):
        """Read to the end; returns (code, frames left unread)."""
        rest = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                rest.append(self._next(max(0.01, deadline - time.monotonic()))[0])
            except websockets.ConnectionClosed as e:
                return (e.rcvd.code if e.rcvd else None), rest
            except (asyncio.TimeoutError, TimeoutError):
                raise AssertionError("WebSocket still open after %ss" % timeout)

    @property
    def id(self):
        if self._id is None:
            self._id = self.request("detailsView")["data"]["id"]
        return self._id

    def close(self):
        try:
            LOOP.run(self.ws.close(), 2)
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------
# Raw sockets: malformed frames and HTTP requests
# ---------------------------------------------------------------------------------------------

def http_request(port, data, timeout=TIMEOUT):
    """Send raw bytes, read until the server closes; returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        raw = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            raw += chunk
        else:
            raise AssertionError("server kept the connection open; got %r" % raw[:300])
    return parse_http(raw)


def parse_http(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/1.1 ") else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def upgrade_request(path="/", key=None, version="13", extra=""):
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade"]
    if key:
        lines.append("Sec-WebSocket-Key: " + key)
    if version:
        lines.append("Sec-WebSocket-Version: " + version)
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode(), key


class RawWs:
    """A WebSocket spoken by hand, to send what no library would."""

    def __init__(self, port, first_frames=b"", rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        request, key = upgrade_request()
        self.sock.sendall(request + first_frames)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status, headers, _ = parse_http(head + b"\r\n\r\n")
        assert status == 101, head
        assert headers["sec-websocket-accept"] == accept_for(key), headers
        self.count = 0

    def _fill(self, deadline=None):
        if deadline is not None:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    @staticmethod
    def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
        """Bytes of one client frame; `length` overrides the length field's form."""
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
        mbit = 0x80 if mask else 0
        form = length or (7 if n < 126 else 16 if n < 65536 else 64)
        if form == 7:
            head += bytes([mbit | n])
        elif form == 16:
            head += bytes([mbit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack("!Q", n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.send(self.frame(opcode, payload, **kw))

    def text(self, line):
        self.send_frame(OP_TEXT, line)
        self.count += 1

    def recv_frame(self, timeout=TIMEOUT):
        """(opcode, payload) of the next server frame, which must be final and unmasked."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._take(2, deadline)
        assert b0 & 0x80 and not b0 & 0x70, "server frame not final or with rsv: %x" % b0
        assert not b1 & 0x80, "server frame is masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2, deadline))[0]
            assert n >= 126, "16-bit length form for %d bytes" % n
        elif n == 127:
            n = struct.unpack("!Q", self._take(8, deadline))[0]
            assert n >= 65536, "64-bit length form for %d bytes" % n
        return b0 & 0x0F, self._take(n, deadline)

    def expect_text_matching(self, needle, timeout=TIMEOUT):
        """The next text frame holding NEEDLE; other text frames are skipped."""
        while True:
            text = self.recv_text(timeout)
            if needle in text:
                return text

    def reply(self, timeout=TIMEOUT):
        """The next reply (context response), skipping chat."""
        return self.expect_text_matching('"context":"response"', timeout)

    def recv_text(self, timeout=TIMEOUT):
        opcode, payload = self.recv_frame(timeout)
        assert opcode == OP_TEXT, (opcode, payload)
        return payload.decode()

    def expect_close(self, code, timeout=TIMEOUT):
        """Skip text frames up to the close frame; it must carry CODE; then the server closes
        the TCP connection. Returns the text frames skipped."""
        texts = []
        while True:
            opcode, payload = self.recv_frame(timeout)
            if opcode == OP_CLOSE:
                break
            texts.append(payload.decode())
        got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        assert got == code, "close code %r, expected %r (after %r)" % (got, code, texts)
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
                raise AssertionError("bytes after the close frame: %r" % self.buf)
        except EOFError:
            pass
        except socket.timeout:
            raise AssertionError("TCP connection still open after the close frame")
        return texts

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------

class WsTestCase(RoomdTestCase):
    """A daemon with its WebSocket port on; each test uses fresh clients."""

    server_options = {"starting_rooms": "defaultRoom,lobby,other room"}

    @classmethod
    def setUpClass(cls):
        cls.ws_port = free_port()
        cls.start_class_server(websocket_port=cls.ws_port, **cls.server_options)

    def ws(self, **kw):
        c = WsClient(self.ws_port, **kw)
        self.addCleanup(c.close)
        return c

    def raw(self, **kw):
        c = RawWs(self.ws_port, **kw)
        self.addCleanup(c.close)
        return c

    def assertFrame(self, got, expected):
        self.assertEqual(got, expected, "\n got:      %r\n expected: %r" % (got, expected))

    def assertWsOK(self, c, message, *data):
        self.assertFrame(strip_history(c.request_raw(message)), ws_ok(c.count, *data))

    def assertWsError(self, c, message, text):
        self.assertFrame(c.request_raw(message), ws_err(text, c.count))


class MixedChat(WsTestCase):

    def test_welcome_is_one_exact_frame(self):
        c = self.ws()
        self.assertFrame(c.welcome_raw, frame_text(welcome_line("defaultRoom")))

    def test_tcp_and_websocket_hear_each_other(self):
        tcp = self.client()
        w = self.ws()
        # The WebSocket client's entry is announced to the TCP member, exact bytes.
        self.assertChat(tcp.expect_raw(chat(ENTERED)), ENTERED, "defaultRoom", w.id)
        before = now_ms()
        self.assertWsOK(w, "say hello from the browser \u2603")
        raw = tcp.expect_raw(chat("hello from the browser \u2603"))
        self.assertChat(raw, "hello from the browser \u2603", "defaultRoom", w.id, before)
        self.assertOK(tcp, 'say hi back, "quoted" /slash')
        raw = w.expect_raw(chat('hi back, "quoted" /slash'))
        m = ws_chat_regex('hi back, "quoted" /slash', "defaultRoom", tcp.id).match(raw.encode())
        self.assertIsNotNone(m, raw)
        self.assertPlausibleMs(int(m.group(1)), before)
        # Neither hears itself.
        w.assert_silent(match=chat(sender=w.id))

    def test_two_websockets_and_a_listener(self):
        a, b = self.ws(), self.ws()
        tcp = self.client()
        self.assertWsOK(a, "roomChange lobby", True)
        self.assertWsOK(b, "roomChange lobby", True)
        self.assertOK(tcp, "listenToRoom lobby", True)
        self.assertWsOK(a, '{"event":"say","message":"json say"}')
        b.expect(chat("json say", "lobby", a.id))
        tcp.expect(chat("json say", "lobby", a.id))
        self.assertWsOK(b, "roomLeave", True)
        a.expect(chat(LEFT, "lobby", b.id))
        tcp.expect(chat(LEFT, "lobby", b.id))

    def test_server_side_broadcast_and_direct_message(self):
        w = self.ws()
        self.server.admin_ok("POST", "/api/rooms/defaultRoom/broadcast", {"message": "notice"})
        w.expect(chat("notice", "defaultRoom", 0))
        self.server.admin_ok("POST", "/api/connections/%s/message" % w.id,
                             {"message": {"k": [1, 2]}})
        raw = w.expect_raw(lambda m: m.get("message") == {"k": [1, 2]})
        self.assertRegex(raw, r'^\{"message":\{"k":\[1,2\]\},"from":0,"context":"user",'
                              r'"sentAt":\d+\}$')


class Verbs(WsTestCase):

    def test_every_verb(self):
        w = self.ws()
        self.assertWsOK(w, "roomChange lobby", True)
        self.assertWsError(w, "roomChange lobby", "connection already in this room")
        self.assertWsError(w, "roomChange nowhere", "room does not exist")
        self.assertWsError(w, "roomChange", "room is required")
        view = w.request("roomView")
        self.assertEqual(view["data"]["room"], "lobby")
        self.assertEqual(view["data"]["membersCount"], 1)
        self.assertEqual(list(view["data"]["members"]), [w.id])
        self.assertWsOK(w, "listenToRoom defaultRoom", True)
        self.assertWsError(w, "listenToRoom defaultRoom", "connection already listening to this room")
        self.assertWsOK(w, "silenceRoom defaultRoom", True)
        self.assertWsError(w, "silenceRoom defaultRoom", "connection not listening to this room")
        self.assertWsOK(w, "say  spaces  kept ")
        self.assertWsError(w, "say", "message is required")
        details = w.request("detailsView")["data"]
        self.assertEqual(details["type"], "websocket")
        self.assertEqual(details["attributes"]["type"], "websocket")
        self.assertEqual(details["remoteIP"], "127.0.0.1")
        self.assertEqual(details["room"], "lobby")
        self.assertWsOK(w, "paramAdd color=blue", None)
        self.assertWsOK(w, "paramView color", "blue")
        self.assertWsOK(w, "paramsView", {"color": "blue"})
        self.assertWsOK(w, "paramDelete color", None)
        self.assertWsOK(w, "paramView color")
        self.assertWsOK(w, "paramsDelete", None)
        self.assertWsError(w, "auth x.y.z", "auth is disabled")
        self.assertWsError(w, "dance", "verb not found or not allowed")
        self.assertWsError(w, "{nope", "invalid request")
        self.assertWsOK(w, "roomLeave", True)
        self.assertWsOK(w, "roomLeave", False)
        self.assertWsError(w, "roomView", "connection not in a room")
        self.assertEqual(w.count, 25)

    def test_json_requests(self):
        w = self.ws()
        self.assertWsOK(w, '{"event":"roomChange","room":"other room"}', True)
        self.assertWsOK(w, '{"event":"paramAdd","key":"k","value":"v w"}', None)
        self.assertWsOK(w, '{"event":"paramView","key":"k"}', "v w")
        self.assertWsOK(w, json.dumps({"event": "say", "message": "multi\nline"}))
        self.assertEqual(w.request("roomView")["data"]["room"], "other room")

    def test_quit_says_goodbye_then_closes_1000(self):
        tcp = self.client()
        w = self.ws()
        wid = w.id
        w.send("quit")
        code, rest = w.wait_closed()
        self.assertEqual(rest, [ws_bye("quit requested")])
        self.assertEqual(code, 1000)
        tcp.expect(chat(LEFT, "defaultRoom", wid))

    def test_exit_says_goodbye(self):
        w = self.ws()
        w.send("exit")
        self.assertEqual(w.wait_closed(), (1000, [ws_bye("exit requested")]))

    def test_disconnect_by_admin(self):
        w = self.ws()
        self.server.admin_ok("DELETE", "/api/connections/%s" % w.id)
        self.assertEqual(w.wait_closed(), (1000, [ws_bye("disconnected by server")]))

    def test_client_close_is_answered(self):
        tcp = self.client()
        r = self.raw()
        self.assertEqual(json.loads(r.recv_text())["welcome"], "Hello! Welcome to the roomd api")
        r.text("detailsView")
        rid = json.loads(r.recv_text())["data"]["id"]
        tcp.expect(chat(ENTERED, "defaultRoom", rid))
        r.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
        r.expect_close(1000)  # echoed, no goodbye (the client ended it)
        tcp.expect(chat(LEFT, "defaultRoom", rid))

    def test_messagecount_counts_every_frame(self):
        r = self.raw()
        r.recv_text()  # welcome
        # Pipelined in one write: text, binary, empty text (ignored, not counted), text.
        r.send(r.frame(OP_TEXT, "paramsView") + r.frame(OP_BINARY, b"\x00\x01")
               + r.frame(OP_TEXT, b"") + r.frame(OP_TEXT, "roomLeave"))
        self.assertEqual(strip_history(r.recv_text()), ws_ok(1, {}))
        self.assertEqual(r.recv_text(), ws_err("binary frames are not supported", 2))
        self.assertEqual(strip_history(r.recv_text()), ws_ok(3, True))

    def test_frames_right_after_the_handshake(self):
        # A client that does not wait for the 101 before its first frame.
        r = self.raw(first_frames=RawWs.frame(OP_TEXT, "paramsView"))
        texts = [r.recv_text(), r.recv_text()]
        self.assertIn(ws_ok(1, {}), [strip_history(t) for t in texts])


class AuthByType(WsTestCase):

    def test_pattern_type_websocket_admits_only_websockets(self):
        self.server.admin_ok("POST", "/api/rooms", {"room": "webonly"})
        self.server.admin_ok("PUT", "/api/rooms/webonly/pattern",
                             {"key": "type", "value": "websocket"})
        w = self.ws()
        tcp = self.client()
        self.assertWsOK(w, "roomChange webonly", True)
        self.assertError(tcp, "roomChange webonly", "not authorized to join room")
        self.assertError(tcp, "listenToRoom webonly", "not authorized to join room")
        self.assertWsOK(self.ws(), "listenToRoom webonly", True)

    def test_pattern_type_socket_refuses_websockets(self):
        self.server.admin_ok("POST", "/api/rooms", {"room": "tcponly"})
        self.server.admin_ok("PUT", "/api/rooms/%s/pattern" % room_path("tcponly"),
                             {"key": "type", "value": "socket"})
        self.assertWsError(self.ws(), "roomChange tcponly", "not authorized to join room")
        self.assertOK(self.client(), "roomChange tcponly", True)


class Frames(WsTestCase):
    server_options = {"starting_rooms": "defaultRoom,lobby", "max_line": 1024}

    def test_binary_frame_is_an_error_reply(self):
        w = self.ws()
        self.assertWsError(w, b"\x01\x02binary", "binary frames are not supported")
        self.assertWsOK(w, "paramsView", {})

    def test_invalid_utf8_closes_1007(self):
        for bad in [b"say \xc3\x28", b"\xed\xa0\x80", b"say \xf4\x90\x80\x80", b"\xc0\xaf"]:
            with self.subTest(bad=bad):
                r = self.raw()
                r.recv_text()
                r.send_frame(OP_TEXT, bad)
                # Only the previous subtest's client leaving may be heard before the close.
                heard = [m for m in r.expect_close(1007) if "I have left the room" not in m]
                self.assertEqual(heard, [])

    def test_invalid_utf8_split_over_fragments_closes_1007(self):
        r = self.raw()
        r.recv_text()
        # Valid in each half only if the halves are not joined: a cut 3-byte sequence.
        r.send(r.frame(OP_TEXT, b"say \xe2\x98", fin=False) + r.frame(OP_CONT, b"x"))
        r.expect_close(1007)

    def test_protocol_errors_close_1002(self):
        cases = {
            "unmasked frame": RawWs.frame(OP_TEXT, "roomView", mask=False),
            "rsv1": RawWs.frame(OP_TEXT, "roomView", rsv=4),
            "rsv3": RawWs.frame(OP_TEXT, "roomView", rsv=1),
            "reserved data opcode 3": RawWs.frame(0x3, "x"),
            "reserved control opcode 0xB": RawWs.frame(0xB, "x"),
            "ping of 126 bytes": RawWs.frame(OP_PING, b"p" * 126),
            "fragmented ping": RawWs.frame(OP_PING, b"p", fin=False),
            "close of 126 bytes": RawWs.frame(OP_CLOSE, struct.pack("!H", 1000) + b"r" * 124),
            "continuation first": RawWs.frame(OP_CONT, "x"),
            "text inside a fragmented text": RawWs.frame(OP_TEXT, "say", fin=False)
            + RawWs.frame(OP_TEXT, "x"),
            "close with a 1-byte body": RawWs.frame(OP_CLOSE, b"\x03"),
            "close code 999": RawWs.frame(OP_CLOSE, struct.pack("!H", 999)),
            "close code 1005": RawWs.frame(OP_CLOSE, struct.pack("!H", 1005)),
            "16-bit length for 5 bytes": RawWs.frame(OP_TEXT, "hello", length=16),
            "64-bit length for 5 bytes": RawWs.frame(OP_TEXT, "hello", length=64),
        }
        for name, data in cases.items():
            with self.subTest(name):
                r = self.raw()
                r.recv_text()  # welcome
                r.send(data)
                self.assertEqual(r.expect_close(1002), [])

    def test_length_forms_7_16_64(self):
        w = self.ws()
        # Server frames: 7-bit (short reply), 16-bit (a reply over 125 bytes) and, with a
        # big enough message, 64-bit; RawWs checks the forms are minimal.
        r = self.raw()
        r.recv_text()
        r.text("roomLeave")  # no chat from w in the way
        self.assertEqual(strip_history(r.reply()), ws_ok(1, True))
        r.text("paramAdd k=" + "v" * 200)
        self.assertEqual(strip_history(r.reply()), ws_ok(2, None))
        r.text("paramView k")
        self.assertEqual(strip_history(r.reply()), ws_ok(3, "v" * 200))
        # Client frames in the 16-bit form up to max_line (1024) work.
        self.assertWsOK(w, "say " + "y" * 1020)
        # The 64-bit form for a message over max_line: refused, connection lives.
        r.send_frame(OP_TEXT, b"z" * 70000)
        r.count += 1
        self.assertEqual(r.reply(), ws_err("request too long", 4))
        r.text("paramsView")
        self.assertEqual(strip_history(r.reply()), ws_ok(5, {"k": "v" * 200}))

    def test_big_server_frame_uses_64_bit_length(self):
        # roomView of a room holding one member with a long id is small; a direct message
        # from the admin API can be any size: 70000 bytes needs the 64-bit form.
        r = self.raw()
        r.recv_text()
        r.text("detailsView")
        rid = json.loads(r.recv_text())["data"]["id"]
        self.server.admin_ok("POST", "/api/connections/%s/message" % rid,
                             {"message": "m" * 70000})
        self.assertEqual(json.loads(r.recv_text())["message"], "m" * 70000)

    def test_message_over_max_line_is_refused_and_connection_lives(self):
        w = self.ws()
        self.assertWsError(w, "say " + "x" * 1021, "request too long")  # 1025 bytes
        self.assertWsOK(w, "say " + "x" * 1020)  # 1024 bytes: the limit itself is fine
        # Over the limit only once the fragments are joined.
        self.assertFrame(w.request_raw(["say ", "x" * 600, "y" * 600]),
                         ws_err("request too long", w.count))
        self.assertWsOK(w, "paramsView", {})

    def test_fragments_are_reassembled_around_control_frames(self):
        tcp = self.client()
        r = self.raw()
        r.recv_text()
        r.send(r.frame(OP_TEXT, "say frag", fin=False) + r.frame(OP_PING, b"mid")
               + r.frame(OP_CONT, "men", fin=False) + r.frame(OP_CONT, "ted \u00e9"))
        r.count += 1
        self.assertEqual(r.recv_frame(), (OP_PONG, b"mid"))
        self.assertEqual(strip_history(r.recv_text()), ws_ok(1))
        tcp.expect(chat("fragmented \u00e9", "defaultRoom"))
        # The websockets library fragments too.
        w = self.ws()
        self.assertWsOK(w, ["say ", "from ", "pieces"])
        tcp.expect(chat("from pieces", "defaultRoom", w.id))

    def test_ping_pong(self):
        r = self.raw()
        r.recv_text()
        r.send_frame(OP_PING, b"are you there")
        self.assertEqual(r.recv_frame(), (OP_PONG, b"are you there"))
        r.send_frame(OP_PING)
        self.assertEqual(r.recv_frame(), (OP_PONG, b""))
        r.send_frame(OP_PONG, b"unsolicited")  # ignored
        r.text("paramsView")
        self.assertEqual(strip_history(r.recv_text()), ws_ok(1, {}))
        w = self.ws()
        async def ping():
            await asyncio.wait_for(await w.ws.ping(b"lib"), TIMEOUT)

        LOOP.run(ping())  # the library's own ping: answered


class Http(WsTestCase):

    def test_demo_page(self):
        status, headers, body = http_request(self.ws_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(int(headers["content-length"]), len(body))
        self.assertIn(b"<html", body)
        self.assertIn(b'src="/roomd.js"', body)
        self.assertEqual(headers["connection"], "close")
        # A query string does not change the file.
        self.assertEqual(http_request(self.ws_port, b"GET /?room=lobby HTTP/1.1\r\n\r\n")[2], body)

    def test_client_library(self):
        status, headers, body = http_request(self.ws_port,
                                             b"GET /roomd.js HTTP/1.0\r\nHost: x\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/javascript; charset=utf-8")
        self.assertEqual(int(headers["content-length"]), len(body))
        self.assertIn(b"class Roomd", body)

    def test_errors(self):
        cases = [
            (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
            (b"GET /roomd.js/ HTTP/1.1\r\n\r\n", 404),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 405),
            (b"DELETE /roomd.js HTTP/1.1\r\n\r\n", 405),
            (b"HEAD / HTTP/1.1\r\n\r\n", 405),
            (b"garbage\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS hello
            (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 400),
        ]
        for request, want in cases:
            with self.subTest(request=request[:40]):
                status, headers, body = http_request(self.ws_port, request)
                self.assertEqual(status, want)
                self.assertEqual(int(headers["content-length"]), len(body))
                if want == 405:
                    self.assertEqual(headers["allow"], "GET")

    def test_bad_upgrades(self):
        cases = {
            "no key": upgrade_request(key="")[0],
            "short key": upgrade_request(key="c2hvcnQ=")[0],
            "no version": upgrade_request(version="")[0],
            "version 8": upgrade_request(version="8")[0],
            "no Connection: Upgrade": upgrade_request()[0].replace(b"Connection: Upgrade\r\n",
                                                                  b""),
            "two keys": upgrade_request(extra="Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")[0],
            "HTTP/1.0": upgrade_request()[0].replace(b"HTTP/1.1", b"HTTP/1.0"),
        }
        for name, request in cases.items():
            with self.subTest(name):
                status, headers, _ = http_request(self.ws_port, request)
                self.assertEqual(status, 400)
                if name.startswith("version"):
                    self.assertEqual(headers["sec-websocket-version"], "13")

    def test_upgrade_on_any_path_and_in_pieces(self):
        w = self.ws(path="/chat?x=1")
        self.assertWsOK(w, "paramsView", {})
        # The request a byte at a time, headers in any case, Connection with a list.
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        request = ("GET /roomd.js HTTP/1.1\r\nhost: x\r\nUPGRADE: WebSocket\r\n"
                   "connection: keep-alive, Upgrade\r\nsec-websocket-key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode()
        with socket.create_connection(("127.0.0.1", self.ws_port), timeout=TIMEOUT) as s:
            for i in range(len(request)):
                s.sendall(request[i:i + 1])
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(4096)
        status, headers, _ = parse_http(data)
        self.assertEqual(status, 101)
        self.assertEqual(headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertEqual(headers["upgrade"], "websocket")


class Limits(RoomdTestCase):
    """Daemons of their own: connection limits, output limit, shutdown, slowloris."""

    def start(self, **options):
        port = free_port()
        return self.start_server(websocket_port=port, **options), port

    def test_max_connections_counts_both_transports(self):
        server, port = self.start(max_connections=2)
        tcp = self.client(server)
        w = WsClient(port)
        self.addCleanup(w.close)
        status, _, body = http_request(port, upgrade_request()[0])
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(body)["reason"], "too many connections")
        extra = self.client(server, welcome=False)
        extra.expect_goodbye("too many connections")
        # A slot freed by a WebSocket client is a slot for anyone.
        w.send("quit")
        w.wait_closed()
        deadline = time.monotonic() + TIMEOUT
        while True:
            status, _, _ = http_request(port, b"GET /roomd.js HTTP/1.1\r\n\r\n")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(status, 200)
        self.assertOK(tcp, "paramsView", {})

    def test_sigterm_goodbye_then_close_1001(self):
        server, port = self.start()
        w = WsClient(port)
        self.addCleanup(w.close)
        r = RawWs(port)
        self.addCleanup(r.close)
        r.recv_text()
        server.stop()
        # Chat may come first (r's entry heard by w; with two workers, w's leave can reach r
        # before r's own worker stops); the goodbye is the last frame.
        code, rest = w.wait_closed()
        self.assertEqual((code, rest[-1:]), (1001, [ws_bye("server shutdown")]))
        frames = r.expect_close(1001)
        self.assertEqual(frames[-1:], [ws_bye("server shutdown")])
        for f in frames[:-1]:
            self.assertEqual(json.loads(f).get("context"), "user", f)

    def test_output_limit_applies_to_websockets(self):
        server, port = self.start(output_limit=65536)
        slow = RawWs(port, rcvbuf=4096)
        self.addCleanup(slow.close)
        slow.text("detailsView")
        slow_id = json.loads(slow.expect_text_matching('"context":"response"'))["data"]["id"]
        # 200 kB messages for a client that does not read: once the kernel's buffers are
        # full, what roomd holds passes the limit (at most 8 MB: more than any socket buffer).
        for _ in range(40):
            status, _ = server.admin("POST", "/api/connections/%s/message" % slow_id,
                                     {"message": "m" * 200000})
            if status != 200:  # 404: dropped
                break
        server.wait_log("output buffer limit exceeded")
        self.assertEqual(server.admin("GET", "/api/connections/%s" % slow_id)[0], 404)

    def test_pongs_count_against_the_output_limit(self):
        # A client that pings without reading piles up pongs: the limit covers them too.
        server, port = self.start(output_limit=65536)
        flood = RawWs(port, rcvbuf=4096)
        self.addCleanup(flood.close)
        ping = RawWs.frame(OP_PING, b"p" * 125) * 500
        sent, deadline = 0, time.monotonic() + 10
        flood.sock.settimeout(1)
        try:
            while sent < 64 * 1024 * 1024 and time.monotonic() < deadline:
                flood.send(ping)
                sent += len(ping)
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
        server.wait_log("output buffer limit exceeded")

    def test_slowloris_handshake_is_closed_after_the_timeout(self):
        server, port = self.start()
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            # A byte now and then: a deadline, not an idle timer, must end it.
            s.settimeout(0.5)
            closed_at = None
            while time.monotonic() - start < HANDSHAKE_TIMEOUT + 2:
                try:
                    s.sendall(b"X")
                    if s.recv(100) == b"":
                        closed_at = time.monotonic() - start
                        break
                except socket.timeout:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    closed_at = time.monotonic() - start
                    break
        self.assertIsNotNone(closed_at, "handshake still open after %ss" % (HANDSHAKE_TIMEOUT + 2))
        self.assertGreater(closed_at, HANDSHAKE_TIMEOUT - 1)
        server.wait_log("WebSocket handshake timeout")
        # Other clients were served meanwhile.
        self.assertEqual(http_request(port, b"GET / HTTP/1.1\r\n\r\n")[0], 200)


if __name__ == "__main__":
    main()
