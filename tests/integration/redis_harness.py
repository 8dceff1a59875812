"""Helpers for the Redis-store tests: a real redis-server started and stopped by the test, a
tiny RESP client to look inside it, and a cluster of roomd servers on one Redis.

Only the Python standard library; waiting is always for a condition with a deadline.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from harness import RoomdTestCase, Server, _live_processes, free_port

REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or \
    "/usr/bin/redis-server"


def skip_without_redis():
    """Exit 77 (automake's SKIP) when there is no redis-server to run."""
    if not os.access(REDIS_SERVER, os.X_OK):
        sys.stderr.write("SKIP: redis-server not installed (%s)\n" % REDIS_SERVER)
        sys.exit(77)


def wait_for(predicate, timeout, what, interval=0.02):
    """Poll predicate() until it returns a true value (returned) or fail after timeout.

    predicate may raise AssertionError while not there yet; the last one is reported."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError("%s: not within %ss%s" % (what, timeout,
                                                            "; last: %s" % last if last else ""))
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# RESP
# ---------------------------------------------------------------------------------------------

class RedisError(Exception):
    pass


def _encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def redis_command(port, *args, timeout=2, password=None):
    """One command on a fresh connection (after AUTH PASSWORD when given); the parsed reply
    (bytes, int, list, None)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        if password:
            s.sendall(_encode(("AUTH", password)))
            _read_reply(f)
        s.sendall(_encode(args))
        return _read_reply(f)


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_read_reply(f) for _ in range(n)]
    raise RedisError("bad reply %r" % line)


# ---------------------------------------------------------------------------------------------
# redis-server
# ---------------------------------------------------------------------------------------------

class RedisServer:
    """Debian's redis-server on a free loopback port, no persistence, in a scratch dir."""

    def __init__(self, port=None):
        self.port = port
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="roomd-redis-")
        self.log = os.path.join(self.dir, "redis.log")
        self.password = None  # requirepass, once set_password set it: commands AUTH first

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    @property
    def socket(self):
        return os.path.join(self.dir, "redis.sock")

    @property
    def socket_url(self):
        return "redis://" + self.socket  # redis:///path/to/socket

    def start(self, port=None, timeout=10):
        """Start (on `port`, or the previous one, or a free one) and wait for PONG."""
        fixed = port or self.port
        self.password = None  # a fresh redis-server asks for none
        for attempt in range(5):
            self.port = fixed or free_port()
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.dir, "--logfile", self.log,
                 "--unixsocket", self.socket, "--unixsocketperm", "700"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _live_processes.append(self.proc)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    if redis_command(self.port, "PING") == b"PONG":
                        return self
                except (OSError, RedisError):
                    pass
                time.sleep(0.02)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("redis-server on port %d: no PONG within %ss"
                                     % (self.port, timeout))
            if fixed:  # the port we must use is taken (e.g. by a stray listener)
                break
        raise AssertionError("redis-server did not start (exit %s): %s"
                             % (self.proc.returncode, self.log_text()))

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def command(self, *args):
        return redis_command(self.port, *args, password=self.password)

    def set_password(self, password):
        """CONFIG SET requirepass (None: none); this harness's commands follow it."""
        self.command("CONFIG", "SET", "requirepass", password or "")
        self.password = password

    def kill(self):
        """kill -9, as a crash; returns once the port refuses connections."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Test case base: one redis-server per class, a fresh key prefix per test
# ---------------------------------------------------------------------------------------------

class RedisTestCase(RoomdTestCase):
    """Starts a redis-server for the class; each test gets its own redis_prefix, so tests of
    a class never see each other's rooms, members or bus."""

    redis = None
    start_redis = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.start_redis:
            cls.redis = RedisServer()
            cls.addClassCleanup(cls.redis.cleanup)
            cls.redis.start()

    def setUp(self):
        super().setUp()
        self.prefix = "roomd-%s:" % self.id().rsplit(".", 1)[-1]

    def start_roomd(self, server_id, redis=None, **options):
        """A roomd on this test's Redis and prefix, stopped (SIGTERM, exit 0) at cleanup unless
        the test stopped or killed it."""
        opts = dict(store=(redis or self.redis).url, redis_prefix=self.prefix,
                    server_id=server_id)
        opts.update(options)
        server = Server(**opts)
        self.addCleanup(self.stop_roomd, server)
        return server

    @staticmethod
    def stop_roomd(server):
        if server.alive():
            server.stop()
        elif server.proc is not None:
            server.proc.wait()

    @staticmethod
    def kill9(server):
        """kill -9 a roomd: no goodbye, no clean-up in Redis."""
        proc, server.proc = server.proc, None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def cluster(self, n, **options):
        return [self.start_roomd("s%d" % i, **options) for i in range(n)]

    def room_status(self, server, room):
        from harness import room_path
        return server.admin_ok("GET", "/api/rooms/" + room_path(room))

    def member_ids(self, server, room):
        return sorted(self.room_status(server, room)["members"])
