"""Shared helpers for roomd's integration tests.

The tests start the real daemon (env ROOMD, default <repo>/build/src/roomd) on free loopback
ports and talk to it over real sockets: TCP line clients and the admin HTTP API. Only the
Python standard library is used.

Waiting is always for a condition with a deadline; the only bounded "sleep" is
Client.assert_silent(), which has to wait to prove that nothing arrives.
"""

import atexit
import collections
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOMD = os.environ.get("ROOMD", os.path.join(REPO, "build", "src", "roomd"))
ADMIN_KEY = "testkey"
WELCOME_TEXT = "Hello! Welcome to the roomd api"

# Every daemon started here, so a crashed test run never leaves one behind.
_live_processes = []


@atexit.register
def _kill_leftovers():
    for proc in _live_processes:
        if proc.poll() is None:
            proc.kill()


def free_port():
    """A port that was free a moment ago (the Server retries if another process takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------------------------
# Exact wire lines (PROTOCOL.md "Messages from the server"): compact JSON, keys in this order.
# ---------------------------------------------------------------------------------------------

_NO_DATA = object()


def dumps(value):
    """JSON the way roomd writes it: no spaces, slashes not escaped (json never escapes '/')."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def ok_line(count, data=_NO_DATA):
    """Exact bytes of a success reply; data omitted where the verb table says 'no data'."""
    data_part = "" if data is _NO_DATA else '"data":%s,' % dumps(data)
    return ('{"status":"OK","context":"response",%s"messageCount":%d}\r\n'
            % (data_part, count)).encode()


# The history fields (PROTOCOL.md "History and recovery") that replies carry
# in rooms with history on: a join's position, a say's offset.  Tests of other
# things compare replies without them; test_history checks them exactly.
_HISTORY_FIELDS = re.compile(rb',"position":\{"epoch":"[0-9a-f]{12}","offset":\d+\}'
                             rb'|,"offset":\d+(?=,"messageCount")')


def strip_history(raw):
    """A reply's bytes (or text) without its position / offset fields."""
    if isinstance(raw, str):
        return _HISTORY_FIELDS.sub(b"", raw.encode()).decode()
    return _HISTORY_FIELDS.sub(b"", raw)


def reply_without_history(reply):
    """A parsed reply without its position / offset fields."""
    return {k: v for k, v in reply.items() if k not in ("position", "offset")}


def err_line(text, count):
    """Exact bytes of an error reply."""
    t = dumps(text)
    return ('{"status":%s,"context":"response","error":%s,"data":false,"messageCount":%d}\r\n'
            % (t, t, count)).encode()


def bye_line(reason):
    """Exact bytes of a goodbye."""
    return ('{"status":"Bye!","context":"api","reason":%s}\r\n' % dumps(reason)).encode()


def welcome_line(room, text=WELCOME_TEXT):
    return ('{"welcome":%s,"room":%s,"context":"api"}\r\n' % (dumps(text), dumps(room))).encode()


def chat_regex(message, room, sender):
    """Regex for the exact bytes of a chat line; group 1 is sentAt.

    room=None means a direct message (no "room" key at all)."""
    room_part = b"" if room is None else b'"room":' + re.escape(dumps(room).encode()) + b","
    return re.compile(b'^\\{"message":' + re.escape(dumps(message).encode()) + b","
                      + room_part + b'"from":' + re.escape(dumps(sender).encode())
                      + b',"context":"user","sentAt":(\\d+)(?:,"offset":\\d+)?\\}\r\n$')


def json_equal(a, b):
    """Strict JSON equality: true != 1, "1" != 1 (Python's == would say True == 1)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def matches(match, msg):
    """match is a callable or a dict that must be a strict subset of msg."""
    if callable(match):
        return match(msg)
    return isinstance(msg, dict) and all(k in msg and json_equal(msg[k], v)
                                         for k, v in match.items())


def chat(message=None, room=_NO_DATA, sender=_NO_DATA):
    """Matcher for a chat line (context user); only the given fields are checked."""
    want = {"context": "user"}
    if message is not None:
        want["message"] = message
    if room is not _NO_DATA:
        want["room"] = room
    if sender is not _NO_DATA:
        want["from"] = sender
    return want


ENTERED = "I have entered the room"
LEFT = "I have left the room"
DELETED = "this room has been deleted"


# ---------------------------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------------------------

class Server:
    """The real roomd on free loopback ports.

    Extra options are passed as --key=value (underscores become dashes); True/False become
    true/false. Pass config=PATH for `-c PATH`, extra_args for arguments as they are.
    stop() insists on exit code 0."""

    READY_TIMEOUT = 10
    STOP_TIMEOUT = 5
    # The program run: roomd (ROOMD, read when a server starts: scripts/soak sets it), or in
    # a subclass a program that embeds roomd and takes the same flags.
    program_env = "ROOMD"

    @property
    def program(self):
        return ROOMD

    def __init__(self, workers=2, config=None, extra_args=(), start=True, ready_file=None,
                 **options):
        self.ready_file = ready_file  # roomd logs to this file (log_file), not stderr
        self.workers = workers
        self.config = config
        self.extra_args = list(extra_args)
        self.options = options
        self.proc = None
        self.stderr_lines = []
        self.stdout_lines = []
        self._cond = threading.Condition()
        self._stderr_done = False
        if start:
            self.start()

    # -- start / stop -------------------------------------------------------------------------

    def args(self):
        opts = collections.OrderedDict()
        opts["bind"] = "127.0.0.1"
        opts["port"] = self.port
        opts["websocket-port"] = 0
        opts["admin-port"] = self.admin_port
        opts["admin-key"] = ADMIN_KEY
        opts["workers"] = self.workers
        for key, value in self.options.items():
            if value is True or value is False:
                value = "true" if value else "false"
            opts[key.replace("_", "-")] = value
        argv = [self.program]
        if self.config:
            argv += ["-c", self.config]
        argv += ["--%s=%s" % (k, v) for k, v in opts.items()]
        return argv + self.extra_args

    def start(self):
        if not os.path.exists(self.program):
            raise AssertionError("%s not found at %s (make check builds it; or set %s)"
                                 % (os.path.basename(self.program), self.program,
                                    self.program_env))
        for attempt in range(5):
            self.port = free_port()
            self.admin_port = free_port()
            if self._launch():
                return self
            # Exited before "roomd ready": most likely a port race, so try other ports.
        raise AssertionError("roomd did not start (exit %s); argv %s; stderr:\n%s"
                             % (self.proc.returncode, self.args(), self.log_text()))

    def _launch(self):
        self.stderr_lines = []
        self.stdout_lines = []
        self._stderr_done = False
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _live_processes.append(self.proc)
        proc = self.proc
        threading.Thread(target=self._drain, args=(proc, proc.stderr, self.stderr_lines, True),
                         daemon=True).start()
        threading.Thread(target=self._drain, args=(proc, proc.stdout, self.stdout_lines, False),
                         daemon=True).start()
        deadline = time.monotonic() + self.READY_TIMEOUT
        with self._cond:
            while True:
                if any("roomd ready" in line for line in self.stderr_lines):
                    return True
                if self.ready_file and os.path.exists(self.ready_file):
                    with open(self.ready_file) as f:
                        if "roomd ready" in f.read():
                            return True
                    self._cond.wait(0.02)  # a file gives no wake-up: poll it
                    continue
                if self._stderr_done:
                    self.proc.wait()
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    self.proc.kill()
                    self.proc.wait()
                    raise AssertionError("no 'roomd ready' within %ss; stderr:\n%s"
                                         % (self.READY_TIMEOUT, self.log_text()))
                self._cond.wait(left)

    def _drain(self, proc, pipe, lines, is_stderr):
        # Keeps the pipe empty so the daemon never blocks on logging.  The end of a stopped
        # process's stderr may come after a restart began: it must not count for the new one.
        for raw in iter(pipe.readline, b""):
            with self._cond:
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            if is_stderr and proc is self.proc:
                self._stderr_done = True
            self._cond.notify_all()

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signal the daemon and assert it exits with 0 in time (else kill -9 and fail)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        timeout = self.STOP_TIMEOUT if timeout is None else timeout
        if proc.poll() is not None:
            raise AssertionError("roomd had already exited with %s; stderr:\n%s"
                                 % (proc.returncode, self.log_text()))
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("roomd did not exit within %ss of signal %s; stderr:\n%s"
                                 % (timeout, sig, self.log_text()))
        if rc != 0:
            raise AssertionError("roomd exited with %s; stderr:\n%s" % (rc, self.log_text()))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d" % self.proc.pid)

    # -- logs ---------------------------------------------------------------------------------

    def log_text(self, last=60):
        with self._cond:
            return "\n".join(self.stderr_lines[-last:] + self.stdout_lines[-last:])

    def wait_log(self, predicate, timeout=5):
        """Wait for a stderr line satisfying predicate (a str means 'contains, any case')."""
        if isinstance(predicate, str):
            needle = predicate.lower()
            predicate = lambda line: needle in line.lower()  # noqa: E731
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.stderr_lines:
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no matching log line within %ss; stderr:\n%s"
                                         % (timeout, self.log_text()))
                self._cond.wait(left)

    # -- clients and admin API ----------------------------------------------------------------

    def client(self, **kwargs):
        return Client(self.port, **kwargs)

    def admin(self, method, path, body=None, key=ADMIN_KEY):
        return admin(self.admin_port, method, path, body, key)

    def admin_ok(self, method, path, body=None):
        """An admin call that must answer 200; returns the JSON body."""
        status, answer = self.admin(method, path, body)
        if status != 200:
            raise AssertionError("%s %s %s -> %s %s" % (method, path, body, status, answer))
        return answer


def room_path(room):
    """Percent-encode a room name (or connection id) as one path segment."""
    return urllib.parse.quote(room, safe="")


def admin(port, method, path, body=None, key=ADMIN_KEY):
    """Call the admin HTTP API; returns (status, parsed JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method=method)
    if key is not None:
        req.add_header("Authorization", "Bearer " + key)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, ConnectionError) as e:
        raise AssertionError("admin API at 127.0.0.1:%d not reachable for %s %s: %s"
                             % (port, method, path, e))
    if not raw:
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError:
        raise AssertionError("admin %s %s answered %s with non-JSON %r"
                             % (method, path, status, raw[:200]))


# ---------------------------------------------------------------------------------------------
# A TCP line client
# ---------------------------------------------------------------------------------------------

class Closed(AssertionError):
    """The server closed the connection while we were waiting for a message."""


class Client:
    """A TCP line client.

    Messages read but not consumed wait in `backlog` (oldest first) as (raw, obj); expect()
    and request() look there first. `count` is the number of counted (non-empty) request
    lines sent, i.e. the messageCount the latest reply must carry."""

    def __init__(self, port, host="127.0.0.1", welcome=True, rcvbuf=None, timeout=5):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Set before connect so the advertised window stays small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setblocking(False)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.eof = False
        self.backlog = collections.deque()
        self.count = 0
        self._id = None
        self.welcome_raw = self.welcome = None
        if welcome:
            self.welcome_raw, self.welcome = self._next_message(time.monotonic() + timeout)

    # -- sending ------------------------------------------------------------------------------

    def send_raw(self, data, counted=0):
        """Send bytes as they are; counted says how many messageCounts they use up."""
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.setblocking(False)
        self.count += counted

    def send_line(self, line):
        if isinstance(line, str):
            line = line.encode()
        # Empty lines (a lone \r too) are not counted by the server.
        self.send_raw(line + b"\n", counted=1 if line.rstrip(b"\r") else 0)

    # -- receiving ----------------------------------------------------------------------------

    def _fill(self, deadline):
        """Read more bytes; False on timeout. Sets eof when the peer closed."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([self.sock], [], [], left)
        if not ready:
            return False
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return True  # spurious wake-up; the caller loops
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
        self.buf += data
        return True

    def _next_raw(self, deadline):
        while b"\n" not in self.buf:
            if self.eof:
                raise Closed("connection closed by server (pending %r)" % self.buf[:200])
            if not self._fill(deadline):
                raise TimeoutError
        line, self.buf = self.buf.split(b"\n", 1)
        line += b"\n"
        if not line.endswith(b"\r\n"):
            raise AssertionError("server line does not end in \\r\\n: %r" % line[:300])
        return line

    def _next_message(self, deadline):
        raw = self._next_raw(deadline)
        try:
            return raw, json.loads(raw)
        except ValueError:
            raise AssertionError("server sent a line that is not JSON: %r" % raw[:300])

    def _expect(self, match, timeout):
        for i, (raw, obj) in enumerate(self.backlog):
            if matches(match, obj):
                del self.backlog[i]
                return raw, obj
        deadline = time.monotonic() + timeout
        while True:
            try:
                raw, obj = self._next_message(deadline)
            except TimeoutError:
                raise AssertionError("no message matching %r within %ss; unmatched: %s"
                                     % (match, timeout, self._backlog_text()))
            if matches(match, obj):
                return raw, obj
            self.backlog.append((raw, obj))

    def _backlog_text(self, last=10):
        return "\n  ".join([""] + [r.decode("utf-8", "replace").rstrip()
                                   for r, _ in list(self.backlog)[-last:]]) or " none"

    def recv_json(self, timeout=5):
        """The next message (backlog first)."""
        return self.recv_raw_message(timeout)[1]

    def recv_raw(self, timeout=5):
        return self.recv_raw_message(timeout)[0]

    def recv_raw_message(self, timeout=5):
        if self.backlog:
            return self.backlog.popleft()
        try:
            return self._next_message(time.monotonic() + timeout)
        except TimeoutError:
            raise AssertionError("no message within %ss" % timeout)

    def expect(self, match, timeout=5):
        """The first message matching (dict subset or predicate); others go to the backlog."""
        return self._expect(match, timeout)[1]

    def expect_raw(self, match, timeout=5):
        return self._expect(match, timeout)[0]

    def request(self, line, timeout=5):
        """Send one request line and return its reply (context response)."""
        self.send_line(line)
        return self.expect({"context": "response"}, timeout)

    def request_raw(self, line, timeout=5):
        self.send_line(line)
        return self.expect_raw({"context": "response"}, timeout)

    def assert_silent(self, timeout=0.3, match=None):
        """Assert that no message (matching `match`, if given) arrives within timeout."""
        match = match if match is not None else (lambda m: True)
        for raw, obj in self.backlog:
            if matches(match, obj):
                raise AssertionError("unexpected message: %r" % raw)
        deadline = time.monotonic() + timeout
        while True:
            try:
                raw, obj = self._next_message(deadline)
            except TimeoutError:
                return
            if matches(match, obj):
                raise AssertionError("unexpected message: %r" % raw)
            self.backlog.append((raw, obj))

    def wait_closed(self, timeout=5, keep=True):
        """Read until the server closes the connection; fail if it stays open.

        keep=False throws the remaining bytes away unparsed (for flooded sockets)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if not self._fill(deadline):
                raise AssertionError("connection still open after %ss" % timeout)
            if not keep:
                self.buf = b""
        while keep and b"\n" in self.buf:
            self.backlog.append(self._next_message(deadline))
        return True

    def expect_goodbye(self, reason, timeout=5):
        """The goodbye with this reason, exact bytes, then the connection closes."""
        raw = self.expect_raw({"status": "Bye!"}, timeout)
        if raw != bye_line(reason):
            raise AssertionError("goodbye %r, expected %r" % (raw, bye_line(reason)))
        self.wait_closed(timeout)

    # -- conveniences -------------------------------------------------------------------------

    def details(self):
        reply = self.request("detailsView")
        if reply.get("status") != "OK":
            raise AssertionError("detailsView failed: %r" % reply)
        return reply["data"]

    @property
    def id(self):
        """This connection's id, read once with detailsView (which uses up one messageCount)."""
        if self._id is None:
            self._id = self.details()["id"]
        return self._id

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---------------------------------------------------------------------------------------------
# Test case base
# ---------------------------------------------------------------------------------------------

class RoomdTestCase(unittest.TestCase):
    """Cleans up every server and client a test makes, in reverse order, even on failure.

    A class may set server_options (dict) and call start_class_server() in setUpClass."""

    server_options = {}

    @classmethod
    def start_class_server(cls, **extra):
        opts = dict(cls.server_options)
        opts.update(extra)
        cls.server = Server(**opts)
        cls.addClassCleanup(cls.server.stop)
        return cls.server

    def start_server(self, **options):
        server = Server(**options)
        self.addCleanup(server.stop)
        return server

    def client(self, server=None, **kwargs):
        c = (server or self.server).client(**kwargs)
        self.addCleanup(c.close)
        return c

    # Exact-bytes assertions with readable failure messages.
    def assertLine(self, got, expected):
        self.assertEqual(got, expected, "\n got:      %r\n expected: %r" % (got, expected))

    def assertOK(self, c, line, data=_NO_DATA):
        """Send a request; its reply must be exactly the success line with this data."""
        self.assertLine(strip_history(c.request_raw(line)), ok_line(c.count, data))

    def assertError(self, c, line, text):
        """Send a request; its reply must be exactly the error line with this text."""
        self.assertLine(c.request_raw(line), err_line(text, c.count))

    def assertNextError(self, c, text):
        """The next reply is exactly this error (for requests sent with send_raw)."""
        self.assertLine(c.expect_raw({"context": "response"}), err_line(text, c.count))

    def assertJson(self, got, expected):
        self.assertTrue(json_equal(got, expected),
                        "\n got:      %s\n expected: %s" % (dumps(got), dumps(expected)))

    def assertChat(self, raw, message, room, sender, before_ms=None):
        """raw must be exactly a chat line; sentAt must be a plausible 'now' in ms."""
        m = chat_regex(message, room, sender).match(raw)
        self.assertIsNotNone(m, "\n got:      %r\n expected: %r" % (raw, chat_regex(
            message, room, sender).pattern))
        self.assertPlausibleMs(int(m.group(1)), before_ms)

    def assertPlausibleMs(self, ms, before_ms=None):
        # Same clock as ours; the slack only absorbs rounding, not seconds-vs-ms mistakes.
        low = (before_ms if before_ms is not None else now_ms() - 60000) - 1000
        self.assertTrue(low <= ms <= now_ms() + 1000,
                        "timestamp %r is not milliseconds near now (%d)" % (ms, now_ms()))


def main():
    """Run the calling module's tests; exits non-zero on failure."""
    unittest.main(module="__main__")
