"""Helpers for the Redis-store tests: a real redis-server started and stopped by the test, a
tiny RESP client to look inside it (and MONITOR it), a cluster of roomd servers on one Redis,
and a proxy that makes Redis slow to answer a room's (UN)SUBSCRIBE.

Only the Python standard library; waiting is always for a condition with a deadline.
"""

import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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
# A delaying proxy: Redis that is slow to confirm a room's subscription
# ---------------------------------------------------------------------------------------------

def parse_command(buf):
    """The first client command in BUF as (args, bytes used), or None while it is incomplete.

    RESP arrays of bulk strings (what hiredis sends); an inline command is one line."""
    if not buf:
        return None
    if buf[:1] != b"*":
        end = buf.find(b"\r\n")
        return None if end < 0 else (buf[:end].split(), end + 2)
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    n, at, args = int(buf[1:end]), end + 2, []
    for _ in range(n):
        end = buf.find(b"\r\n", at)
        if end < 0:
            return None
        size = int(buf[at + 1:end])
        if len(buf) < end + 2 + size + 2:
            return None
        args.append(buf[end + 2:end + 2 + size])
        at = end + 2 + size + 2
    return args, at


class _ProxiedConnection:
    """One client connection and its upstream one.  Replies flow back as they come; the
    client's commands go up in order, each at its release time: from a held command on, no
    byte goes up before the hold's end."""

    def __init__(self, proxy, client, upstream):
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.queue = collections.deque()  # (release time, bytes, held), in order; None: EOF
        self.cond = threading.Condition()
        self.closed = False
        self.last_release = 0.0
        for target in (self._down, self._up_read, self._up_send):
            threading.Thread(target=target, daemon=True).start()

    def _down(self):
        try:
            while True:
                data = self.upstream.recv(65536)
                if not data:
                    break
                self.client.sendall(data)
        except OSError:
            pass
        self.close()

    def _up_read(self):
        buf = b""
        try:
            while True:
                data = self.client.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    got = parse_command(buf)
                    if got is None:
                        break
                    args, used = got
                    self._queue(buf[:used], self.proxy.holds(args))
                    buf = buf[used:]
        except (OSError, ValueError):
            pass
        with self.cond:
            self.queue.append((self.last_release, None, False))  # close after the rest
            self.cond.notify_all()

    def _queue(self, data, held):
        now = time.monotonic()
        with self.cond:
            self.last_release = max(self.last_release, now + self.proxy.delay if held else now)
            self.queue.append((self.last_release, data, held))
            self.cond.notify_all()

    def _up_send(self):
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.closed:
                        self.cond.wait()
                    if self.closed:
                        return
                    release, data, held = self.queue[0]
                    left = release - time.monotonic()
                    if left > 0:
                        self.cond.wait(left)
                        continue
                    self.queue.popleft()
                if data is None:
                    break
                self.upstream.sendall(data)
                if held:
                    self.proxy.released()
        except OSError:
            pass
        self.close()

    def close(self):
        with self.cond:
            if self.closed:
                return
            self.closed = True
            self.cond.notify_all()
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class DelayingProxy:
    """A TCP proxy on a free loopback port in front of the redis-server on UPSTREAM_PORT.

    Both ways bytes pass unchanged, but a client command whose verb is in VERBS and that
    names a room channel of PREFIX (PREFIX room:R:bus) is held for DELAY seconds, and with
    it everything the connection sends after it (order kept).  Redis then confirms a room's
    subscription DELAY late, as a busy or distant Redis would."""

    def __init__(self, upstream_port, prefix, delay=0.3, verbs=("SUBSCRIBE",)):
        self.upstream_port, self.delay = upstream_port, delay
        self.verbs = {v.upper().encode() for v in verbs}
        self.channel = re.compile(re.escape(prefix.encode()) + rb"room:.*:bus\Z", re.S)
        self.lock = threading.Lock()
        self.held_now = 0  # held commands not sent up yet
        self.seen = []  # (VERB, [room channels]) of every held command, in order
        self.conns = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def holds(self, args):
        """Whether the command ARGS is one to hold (and then it is counted as seen)."""
        if not args or args[0].upper() not in self.verbs:
            return False
        rooms = [a.decode() for a in args[1:] if self.channel.match(a)]
        if not rooms:
            return False
        with self.lock:
            self.seen.append((args[0].upper().decode(), rooms))
            self.held_now += 1
        return True

    def released(self):
        with self.lock:
            self.held_now -= 1

    def holding(self):
        """How many held commands have not gone up yet."""
        with self.lock:
            return self.held_now

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns.append(_ProxiedConnection(self, client, upstream))

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            c.close()


class DelayingProxies:
    """A DelayingProxy in front of each shard of REDIS (a RedisServer or a ShardedRedis);
    url lists them in shard order, so a roomd on it sees the same store, only slower to
    confirm its room subscriptions."""

    def __init__(self, redis, prefix, delay=0.3, verbs=("SUBSCRIBE",)):
        shards = getattr(redis, "shards", [redis])
        self.proxies = [DelayingProxy(r.port, prefix, delay, verbs) for r in shards]

    @property
    def url(self):
        return ",".join(p.url for p in self.proxies)

    @property
    def seen(self):
        """(VERB, channels) of the held commands, per shard then in order."""
        return [x for p in self.proxies for x in list(p.seen)]

    def holding(self):
        return sum(p.holding() for p in self.proxies)

    def close(self):
        for p in self.proxies:
            p.close()


class Monitor:
    """MONITOR on one redis-server, read by a thread: the commands it runs, each as a list of
    str arguments, from now on."""

    _ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')

    def __init__(self, server):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        self.file = self.sock.makefile("rb")
        if server.password:
            self.sock.sendall(_encode(("AUTH", server.password)))
            _read_reply(self.file)
        self.sock.sendall(_encode(("MONITOR",)))
        if _read_reply(self.file) != b"OK":
            raise AssertionError("MONITOR refused")
        self.sock.settimeout(None)
        self.lock = threading.Lock()
        self.commands = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        # Each line: +TIME [DB ADDR] "VERB" "ARG" ... (arguments quoted, \ escapes inside).
        try:
            for line in self.file:
                text = line.decode("utf-8", "replace")
                args = [self._unquote(a) for a in self._ARG.findall(text)]
                with self.lock:
                    self.commands.append(args)
        except (OSError, ValueError):
            pass

    @staticmethod
    def _unquote(text):
        return re.sub(r'\\(x[0-9a-fA-F]{2}|.)',
                      lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "x"
                      else {"n": "\n", "r": "\r", "t": "\t"}.get(m.group(1), m.group(1)),
                      text)

    def seen(self, verb):
        """The commands VERB (any case) seen so far."""
        with self.lock:
            return [c for c in self.commands if c and c[0].upper() == verb.upper()]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


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
