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

    def __init__(self, port=None, requirepass=None):
        self.requirepass = requirepass  # given at every start (--requirepass)
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
    def dirs(self):
        return [self.dir]

    @property
    def socket_url(self):
        return "redis://" + self.socket  # redis:///path/to/socket

    def start(self, port=None, timeout=10):
        """Start (on `port`, or the previous one, or a free one) and wait for PONG."""
        fixed = port or self.port
        self.password = self.requirepass  # a fresh redis-server asks for its boot one
        for attempt in range(5):
            self.port = fixed or free_port()
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.dir, "--logfile", self.log,
                 "--unixsocket", self.socket, "--unixsocketperm", "700"]
                + (["--requirepass", self.requirepass] if self.requirepass else []),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _live_processes.append(self.proc)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    if redis_command(self.port, "PING", password=self.password) == b"PONG":
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
# Shards: the shard map of roomd-redis(7), and several redis-servers seen as one
# ---------------------------------------------------------------------------------------------

FNV1A64_OFFSET_BASIS = 14695981039346656037
FNV1A64_PRIME = 1099511628211
MASK64 = (1 << 64) - 1


def fnv1a64(data):
    h = FNV1A64_OFFSET_BASIS
    for byte in data:
        h = ((h ^ byte) * FNV1A64_PRIME) & MASK64
    return h


def jump_hash(key, n):
    """Lamping & Veach's jump consistent hash of a 64-bit KEY over N buckets."""
    b, j = -1, 0
    while j < n:
        b = j
        key = (key * 2862933555777941757 + 1) & MASK64
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_of(room, n):
    """The index of room ROOM's shard among N (roomd-redis(7))."""
    return 0 if n <= 1 else jump_hash(fnv1a64(room.encode()), n)


# How many redis-servers RedisTestCase gives each class (ROOMD_TEST_REDIS_SHARDS, default 1):
# scripts/test runs the Redis suites with 1 and with 2.
TEST_SHARDS = int(os.environ.get("ROOMD_TEST_REDIS_SHARDS", "1") or 1)


class ShardedRedis:
    """Several RedisServers as one store (url: the comma-separated list). command() sends a
    room's keys to the room's shard and merges what spans shards (the rooms set, KEYS, SAVE),
    so tests written for one Redis read the same answers from several."""

    def __init__(self, n):
        self.shards = [RedisServer() for _ in range(n)]

    @property
    def url(self):
        return ",".join(r.url for r in self.shards)

    @property
    def port(self):
        return self.shards[0].port

    @property
    def dirs(self):
        return [r.dir for r in self.shards]

    @property
    def proc(self):
        return self.shards[0].proc if all(r.proc for r in self.shards) else None

    @property
    def socket_url(self):
        return ",".join(r.socket_url for r in self.shards)

    def shard_for_key(self, key):
        key = key.decode() if isinstance(key, bytes) else str(key)
        at = key.find(":room:")
        if at < 0:
            return None
        room = key[at + len(":room:"):key.rindex(":")]
        return self.shards[shard_of(room, len(self.shards))]

    def command(self, *args):
        name = str(args[0]).upper()
        one = self.shard_for_key(args[1]) if len(args) > 1 and name not in ("KEYS",) else None
        if one is not None:
            return one.command(*args)
        replies = [r.command(*args) for r in self.shards]
        if all(isinstance(x, list) for x in replies):
            return [e for x in replies for e in x]
        if all(isinstance(x, int) for x in replies):
            return sum(replies)
        return replies[0]

    def set_password(self, password):
        for r in self.shards:
            r.set_password(password)

    def start(self, port=None, timeout=10):
        for r in self.shards:
            r.start(r.port, timeout)
        return self

    def kill(self):
        for r in self.shards:
            r.kill()

    def stop(self):
        for r in self.shards:
            r.stop()

    def cleanup(self):
        for r in self.shards:
            r.cleanup()

    def log_text(self):
        return "\n".join(r.log_text() for r in self.shards)


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
            shards = getattr(cls, "redis_shards", None) or TEST_SHARDS
            cls.redis = ShardedRedis(shards) if shards > 1 else RedisServer()
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
