#!/usr/bin/env python3
"""Hardening of the admin side (issue 11, items 4, 7, 9, 11, 13 and 14).

- The admin port under fd exhaustion (EMFILE) pauses instead of spinning, and holds at most
  admin_max_connections connections, idle ones closed after admin_timeout: idle admin
  connections cannot take the descriptors chat clients need.
- Invalid UTF-8 anywhere in an admin body or path is 400 "invalid UTF-8"; a NUL in a key,
  a pattern or attribute value is 400 (json-c would cut a key short at it).
- Strict percent-encoding of paths, a pattern pair needs its value, "force" is a boolean,
  a broadcast from an unknown connection is 404, the Bearer scheme is case-insensitive, a
  WebSocket upgrade needs Host, and a listener that cannot open says which and why.
- Configuration read errors (roomd -c DIRECTORY, or the file turned into one before SIGHUP)
  stop the start or keep the running settings; config errors name the file and line.
- roomctl's options through getopt_long.

The daemon runs under prlimit(1) where a test needs a low RLIMIT_NOFILE.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import harness
from harness import ADMIN_KEY, RoomdTestCase, chat, main, room_path

from test_admin import http_raw, wait_for

ROOMCTL = os.environ.get("ROOMCTL", os.path.join(harness.REPO, "build", "src", "roomctl"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


class LimitedServer(harness.Server):
    """roomd started through prlimit with RLIMIT_NOFILE = nofile (prlimit execs roomd: the
    process id is roomd's)."""

    def __init__(self, nofile, **options):
        self.nofile = nofile
        super().__init__(**options)

    def args(self):
        return ["prlimit", "--nofile=%d:%d" % (self.nofile, self.nofile), "--"] + super().args()


def cpu_seconds(pid):
    """utime + stime of PID from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def connect_many(port, n):
    """N TCP connections that send nothing, made without blocking (a paused listener leaves
    them in the kernel's queue)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def raw_error(got):
    status, _, body = got
    return status, body


# ---------------------------------------------------------------------------------------------
# Item 4: the admin port under load
# ---------------------------------------------------------------------------------------------

class AdminPortLimits(RoomdTestCase):

    def start_limited(self, nofile, **options):
        server = LimitedServer(nofile, **options)
        self.addCleanup(server.stop)
        return server

    def accept_warnings(self, server):
        with server._cond:
            return [line for line in server.stderr_lines if "accept" in line.lower()]

    def test_admin_emfile_does_not_spin(self):
        """Fds exhausted through the admin port: roomd pauses accepting (bounded CPU) and logs
        one warning per 10 s, not one per failed accept()."""
        server = self.start_limited(64)
        socks = connect_many(server.admin_port, 120)
        self.addCleanup(close_all, socks)
        wait_for(lambda: open_fds(server.pid) >= server.nofile, what="descriptors exhausted")
        server.wait_log("too many open files")
        before, start = cpu_seconds(server.pid), time.monotonic()
        # Measured over a window: a spin is a full core, a pause every 100 ms is nothing.
        deadline = start + 2.0
        while time.monotonic() < deadline:
            time.sleep(0.1)
        cpu = (cpu_seconds(server.pid) - before) / (time.monotonic() - start)
        self.assertLess(cpu, 0.2, "roomd used %.2f of a core while out of descriptors" % cpu)
        warnings = self.accept_warnings(server)
        self.assertLessEqual(len(warnings), 3, "\n".join(warnings[:10]))
        self.assertIn("admin listener", warnings[0])
        # Once the descriptors come back, both sides serve again.
        close_all(socks)
        c = self.client(server)
        self.assertEqual(c.details()["room"], "defaultRoom")
        self.assertEqual(server.admin_ok("GET", "/api/rooms")["rooms"], ["defaultRoom"])

    def test_idle_admin_connections_do_not_lock_out_chat(self):
        """250 idle unauthenticated admin connections hold at most admin_max_connections (64)
        descriptors: chat clients still connect, under a descriptor limit of 200."""
        server = self.start_limited(200)
        base = open_fds(server.pid)
        socks = connect_many(server.admin_port, 250)
        self.addCleanup(close_all, socks)
        server.wait_log("admin_max_connections (64) reached")
        self.assertLessEqual(open_fds(server.pid), base + 64)
        clients = [self.client(server) for _ in range(20)]
        for c in clients:
            self.assertEqual(c.details()["room"], "defaultRoom")
        self.assertLessEqual(open_fds(server.pid), base + 64 + len(clients))

    def test_admin_max_connections_and_timeout(self):
        """Past admin_max_connections new admin connections wait (they are not refused) and
        are served once admin_timeout closed the idle ones."""
        server = self.start_server(admin_max_connections=4, admin_timeout=1)
        base = open_fds(server.pid)
        socks = connect_many(server.admin_port, 12)
        self.addCleanup(close_all, socks)
        server.wait_log("admin_max_connections (4) reached")
        self.assertLessEqual(open_fds(server.pid), base + 4)
        # Queued behind 12 idle ones, 4 at a time, each closed after 1 s idle.
        status, body = raw_error(http_raw(server.admin_port, "GET", "/api/rooms", timeout=20))
        self.assertEqual((status, body), (200, b'{"rooms":["defaultRoom"]}\n'))
        # Every idle one was closed by roomd (EOF), none is left holding a descriptor.
        for s in socks:
            s.setblocking(True)
            s.settimeout(10)
            try:
                self.assertEqual(s.recv(1), b"")
            except ConnectionResetError:
                pass
        wait_for(lambda: open_fds(server.pid) <= base, what="idle admin connections closed")

    def test_idle_admin_connection_times_out(self):
        server = self.start_server(admin_timeout=1)
        with socket.create_connection(("127.0.0.1", server.admin_port), timeout=10) as s:
            start = time.monotonic()
            s.sendall(b"GET /api/rooms HTTP/1.1\r\n")  # and never the rest
            self.assertEqual(s.recv(4096)[:0], b"")
            while s.recv(4096):
                pass
            self.assertLess(time.monotonic() - start, 5)


# ---------------------------------------------------------------------------------------------
# Items 7, 9 and 13: what the admin API takes
# ---------------------------------------------------------------------------------------------

class AdminInput(RoomdTestCase):

    @classmethod
    def setUpClass(cls):
        cls.start_class_server()

    def setUp(self):
        self.c = self.client()
        self.id = self.c.id

    def raw(self, method, path, body=None, **kwargs):
        return raw_error(http_raw(self.server.admin_port, method, path, body, **kwargs))

    def assertError(self, got, status, text):
        want = ('{"error":"%s"}\n' % text).encode()
        self.assertEqual(got, (status, want))

    def conn(self, suffix=""):
        return "/api/connections/" + room_path(self.id) + suffix

    def test_invalid_utf8_from_admin_refused(self):
        bad = b"\xff\xfe"
        over = b"\xc0\xaf"  # an overlong '/'
        surrogate = b"\xed\xa0\x80"
        for junk in (bad, over, surrogate, b"ok\x80"):
            for method, path, body in [
                    ("POST", "/api/rooms/defaultRoom/broadcast", b'{"message":"%s"}'),
                    ("POST", "/api/rooms/defaultRoom/broadcast", b'{"message":{"k":["%s"]}}'),
                    ("POST", "/api/rooms/defaultRoom/broadcast", b'{"message":{"%s":1}}'),
                    ("POST", "/api/rooms/defaultRoom/broadcast",
                     b'{"message":"m","from":"%s"}'),
                    ("POST", self.conn("/message"), b'{"message":"%s"}'),
                    ("PATCH", self.conn("/attributes"), b'{"nick":"%s"}'),
                    ("PATCH", self.conn("/attributes"), b'{"%s":"x"}'),
                    ("PUT", "/api/rooms/defaultRoom/pattern", b'{"key":"%s","value":1}'),
                    ("PUT", "/api/rooms/defaultRoom/pattern", b'{"key":"k","value":"%s"}'),
                    ("PUT", "/api/rooms/defaultRoom/pattern", b'{"pattern":{"%s":1}}'),
                    ("POST", "/api/rooms", b'{"room":"r%s"}'),
                    ("PUT", self.conn("/room"), b'{"room":"r%s"}')]:
                with self.subTest(junk=junk, method=method, body=body):
                    self.assertError(self.raw(method, path, body.replace(b"%s", junk)), 400,
                                     "invalid UTF-8")
        # A path segment that decodes to invalid UTF-8 (the room name is echoed back).
        for path in ("/api/rooms/%FF", "/api/rooms/a%C0%AF", "/api/rooms/%ED%A0%80/broadcast",
                     "/api/connections/%FF"):
            with self.subTest(path=path):
                self.assertError(self.raw("GET", path), 400, "invalid UTF-8")
        self.c.assert_silent(match=chat(sender=0))
        self.assertNotIn("nick", self.c.details()["attributes"])
        self.assertEqual(self.server.admin_ok("GET", "/api/rooms/defaultRoom")["pattern"], {})
        # Valid UTF-8 (and escapes that make it) still goes through.
        self.assertEqual(self.server.admin_ok("POST", "/api/rooms/defaultRoom/broadcast",
                                              {"message": "caf\u00e9 \U0001f600"}),
                         {"sent": True})
        self.assertEqual(self.c.expect(chat(sender=0))["message"], "caf\u00e9 \U0001f600")

    def test_nul_in_admin_keys_and_values_refused(self):
        for method, path, body in [
                ("PUT", "/api/rooms/defaultRoom/pattern", {"key": "a\u0000zzz", "value": 1}),
                ("PUT", "/api/rooms/defaultRoom/pattern", {"key": "a", "value": "x\u0000y"}),
                ("PUT", "/api/rooms/defaultRoom/pattern", {"pattern": {"a\u0000zzz": 1}}),
                ("PUT", "/api/rooms/defaultRoom/pattern", {"pattern": {"a": "b\u0000"}}),
                ("PATCH", self.conn("/attributes"), {"a\u0000zzz": 1}),
                ("PATCH", self.conn("/attributes"), {"role": "adm\u0000in"}),
                ("PATCH", self.conn("/attributes"), {"role": ["x\u0000"]}),
                ("POST", "/api/rooms/defaultRoom/broadcast", {"message": {"a\u0000b": 1}}),
                ("POST", self.conn("/message"), {"message": {"\u0000": 1}})]:
            with self.subTest(method=method, body=body):
                status, answer = self.server.admin(method, path, body)
                self.assertEqual((status, answer), (400, {"error": "invalid request"}))
        # "\\u0000" is a backslash and text, not a NUL.
        self.assertEqual(self.server.admin_ok("PATCH", self.conn("/attributes"),
                                              {"k\\u0000": "v\\u0000"})["attributes"]["k\\u0000"],
                         "v\\u0000")
        for room in ("a%00zzz", "%00"):
            with self.subTest(room=room):
                self.assertError(self.raw("GET", "/api/rooms/" + room), 400, "malformed path")
        self.assertEqual(self.server.admin_ok("GET", "/api/rooms/defaultRoom")["pattern"], {})
        attributes = self.c.details()["attributes"]
        self.assertNotIn("a", attributes)
        self.assertNotIn("role", attributes)
        self.c.assert_silent(match=chat(sender=0))
        # A message may carry a NUL inside a string: it is escaped on the way out.
        self.server.admin_ok("POST", "/api/rooms/defaultRoom/broadcast", {"message": "a\u0000b"})
        self.assertEqual(self.c.expect(chat(sender=0))["message"], "a\u0000b")

    def test_bad_percent_encoding_is_malformed_path(self):
        for segment in ("a%zz", "a%", "%0a", "%0A", "a%1", "%g0", "%%", "a%0d%0a", "%7f"):
            for template in ("/api/rooms/%s", "/api/rooms/%s/pattern", "/api/connections/%s",
                             "/api/connections/%s/room"):
                with self.subTest(path=template % segment):
                    self.assertError(self.raw("GET", template % segment), 400, "malformed path")
        # Good encodings still decode.
        self.server.admin_ok("POST", "/api/rooms", {"room": "a/b c+%"})
        self.assertEqual(self.server.admin_ok("GET", "/api/rooms/a%2Fb%20c+%25")["exists"], True)
        self.server.admin_ok("DELETE", "/api/rooms/a%2fb%20c%2B%25")

    def test_pattern_key_without_value_refused(self):
        path = "/api/rooms/defaultRoom/pattern"
        for body in ({"key": "a"}, {"key": "role"}):
            with self.subTest(body=body):
                status, answer = self.server.admin("PUT", path, body)
                self.assertEqual((status, answer), (400, {"error": "invalid request"}))
        self.assertEqual(self.server.admin_ok("GET", "/api/rooms/defaultRoom")["pattern"], {})
        # The room is not locked: a new client still joins it.
        other = self.client()
        self.assertEqual(other.details()["room"], "defaultRoom")
        # With a value (null included) it works; null clears with "key":null.
        self.assertEqual(self.server.admin_ok("PUT", path, {"key": "role", "value": "x"}),
                         {"pattern": {"role": "x"}})
        self.assertEqual(self.server.admin_ok("PUT", path, {"key": None}), {"pattern": {}})

    def test_force_must_be_boolean(self):
        self.server.admin_ok("POST", "/api/rooms", {"room": "guarded"})
        self.addCleanup(self.server.admin, "DELETE", "/api/rooms/guarded")
        self.server.admin_ok("PUT", "/api/rooms/guarded/pattern", {"key": "role", "value": "x"})
        for force in ("false", "true", 1, 0, None, [], {}):
            with self.subTest(force=force):
                status, answer = self.server.admin("PUT", self.conn("/room"),
                                                   {"room": "guarded", "force": force})
                self.assertEqual((status, answer), (400, {"error": "invalid request"}))
        self.assertEqual(self.c.details()["room"], "defaultRoom")
        status, answer = self.server.admin("PUT", self.conn("/room"),
                                           {"room": "guarded", "force": False})
        self.assertEqual((status, answer), (400, {"error": "not authorized to join room"}))
        self.assertEqual(self.server.admin_ok("PUT", self.conn("/room"),
                                              {"room": "guarded", "force": True}),
                         {"added": True})
        self.assertEqual(self.c.details()["room"], "guarded")

    def test_broadcast_from_unknown_connection_is_404(self):
        path = "/api/rooms/defaultRoom/broadcast"
        for sender in ("no-such-connection", "", "0"):
            with self.subTest(sender=sender):
                status, answer = self.server.admin("POST", path, {"message": "m", "from": sender})
                self.assertEqual((status, answer), (404, {"error": "connection not found"}))
        for sender in (True, 1, 1.5, ["x"], {"id": "x"}):
            with self.subTest(sender=sender):
                status, answer = self.server.admin("POST", path, {"message": "m", "from": sender})
                self.assertEqual((status, answer), (400, {"error": "invalid request"}))
        self.c.assert_silent(match=chat("m"))
        # A real one, null and 0 still work; a missing room is still 404 room does not exist.
        other = self.client()
        self.server.admin_ok("POST", path, {"message": "from c", "from": self.id})
        self.assertEqual(other.expect(chat("from c"))["from"], self.id)
        self.server.admin_ok("POST", path, {"message": "from null", "from": None})
        self.assertEqual(other.expect(chat("from null"))["from"], 0)
        status, answer = self.server.admin("POST", "/api/rooms/nowhere/broadcast",
                                           {"message": "m", "from": self.id})
        self.assertEqual((status, answer), (404, {"error": "room does not exist"}))

    def test_bearer_scheme_case_insensitive(self):
        for scheme in ("bearer", "BEARER", "bEaReR", "Bearer"):
            with self.subTest(scheme=scheme):
                got = self.raw("GET", "/api/rooms", key=None,
                               headers={"Authorization": "%s %s" % (scheme, ADMIN_KEY)})
                self.assertEqual(got[0], 200, got)
        for header in ("bearer", "bearer  " + ADMIN_KEY, "bearer" + ADMIN_KEY,
                       "basic " + ADMIN_KEY):
            with self.subTest(header=header):
                self.assertError(self.raw("GET", "/api/rooms", key=None,
                                          headers={"Authorization": header}), 401, "unauthorized")


# ---------------------------------------------------------------------------------------------
# Item 13: the WebSocket handshake's Host, listener errors
# ---------------------------------------------------------------------------------------------

UPGRADE = ("GET / HTTP/1.1\r\n%sUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def ws_status(port, host_lines):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall((UPGRADE % host_lines).encode())
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        return int(head.split(b" ", 2)[1])


class Listeners(RoomdTestCase):

    def test_websocket_upgrade_without_host_is_400(self):
        server = self.start_server(websocket_port=harness.free_port())
        port = server.options["websocket_port"]
        self.assertEqual(ws_status(port, ""), 400)
        self.assertEqual(ws_status(port, "Host: a\r\nHost: b\r\n"), 400)
        self.assertEqual(ws_status(port, "Host: 127.0.0.1\r\n"), 101)

    def run_roomd(self, *args, timeout=10):
        return subprocess.run([harness.ROOMD] + list(args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)

    def test_listener_errors_name_listener_and_reason(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            busy = taken.getsockname()[1]
            free = [harness.free_port() for _ in range(3)]
            cases = [
                ("line", ["--port=%d" % busy, "--websocket-port=0", "--admin-port=0"]),
                ("WebSocket", ["--port=%d" % free[0], "--websocket-port=%d" % busy,
                               "--admin-port=0"]),
                ("admin", ["--port=%d" % free[1], "--websocket-port=0",
                           "--admin-port=%d" % busy, "--admin-key=k"]),
            ]
            for name, args in cases:
                with self.subTest(listener=name):
                    proc = self.run_roomd("--bind=127.0.0.1", "--websocket-bind=127.0.0.1",
                                          "--admin-bind=127.0.0.1",
                                          "--workers=1", *args)
                    err = proc.stderr.decode()
                    self.assertEqual(proc.returncode, 1, err)
                    self.assertIn("%s listener: cannot listen on 127.0.0.1:%d: "
                                  "Address already in use" % (name, busy), err)


# ---------------------------------------------------------------------------------------------
# Item 11: configuration read errors
# ---------------------------------------------------------------------------------------------

class ConfigErrors(RoomdTestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="roomd-hardening-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def run_roomd(self, *args):
        return subprocess.run([harness.ROOMD, "--port=0", "--websocket-port=0", "--admin-port=0"]
                              + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=10)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_config_directory_exits_2_naming_it(self):
        proc = self.run_roomd("-c", self.dir)
        err = proc.stderr.decode()
        self.assertEqual(proc.returncode, 2, err)
        self.assertIn(self.dir, err)
        self.assertIn("Is a directory", err)
        self.assertNotIn("roomd ready", err)

    def test_config_errors_name_file_and_line(self):
        cases = {
            "plus.conf": ("# comment\nport = +5\n", ":2: port"),
            "blank.conf": ("# comment\nmax_line = \" 100\"\n", ":2: max_line"),
            "empty_room.conf": ("# comment\nstarting_rooms = lobby,,news\n", ":2: starting_rooms"),
            "trailing.conf": ("# comment\nstarting_rooms = lobby,\n", ":2: starting_rooms"),
            "bad_room.conf": ("max_room_name = 4\ndefault_room =\nstarting_rooms = longname\n",
                              ":3: starting_rooms"),
            "store.conf": ("# comment\nstore = mongodb://x\n", ":2: store"),
            "long.conf": ("# comment\nwelcome_message = %s\n" % ("w" * 5000), ":2: line longer"),
        }
        for name, (text, where) in cases.items():
            with self.subTest(file=name):
                path = self.write(name, text)
                proc = self.run_roomd("-c", path)
                err = proc.stderr.decode()
                self.assertEqual(proc.returncode, 2, err)
                self.assertIn(path + where, err)

    def test_sighup_read_error_keeps_settings(self):
        path = self.write("roomd.conf", "welcome_message = kept\nmax_params = 1\n")
        server = self.start_server(config=path)
        self.assertEqual(self.client(server).welcome["welcome"], "kept")
        os.unlink(path)
        os.mkdir(path)  # the same name, now unreadable as a file
        server.proc.send_signal(1)
        server.wait_log("configuration not reloaded")
        c = self.client(server)
        self.assertEqual(c.welcome["welcome"], "kept")
        self.assertOK(c, "paramAdd a=1", None)
        self.assertError(c, "paramAdd b=2", "too many params")


# ---------------------------------------------------------------------------------------------
# Item 14: roomctl's options
# ---------------------------------------------------------------------------------------------

class RoomctlOptions(RoomdTestCase):

    @classmethod
    def setUpClass(cls):
        cls.start_class_server()

    def ctl(self, *args):
        env = {k: v for k, v in os.environ.items() if k not in ("ROOMD_URL", "ROOMD_ADMIN_KEY")}
        proc = subprocess.run([ROOMCTL] + list(args), env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        proc.out, proc.err = proc.stdout.decode(), proc.stderr.decode()
        return proc

    def url(self):
        return "http://127.0.0.1:%d" % self.server.admin_port

    def test_roomctl_url_and_key_with_equals_or_apart(self):
        for args in (["--url=" + self.url(), "--key=" + ADMIN_KEY],
                     ["--url", self.url(), "--key", ADMIN_KEY],
                     ["--url=" + self.url(), "--key", ADMIN_KEY]):
            with self.subTest(args=args):
                proc = self.ctl(*args, "rooms")
                self.assertEqual((proc.returncode, proc.out, proc.err), (0, "defaultRoom\n", ""))
                proc = self.ctl(*args, "--json", "stats")
                self.assertEqual(proc.returncode, 0, proc.err)
                self.assertIn('"workers":2', proc.out)

    def test_roomctl_help_once_exit_0(self):
        for flag in ("-h", "--help"):
            with self.subTest(flag=flag):
                proc = self.ctl(flag)
                self.assertEqual((proc.returncode, proc.err), (0, ""))
                self.assertEqual(proc.out.count("Usage: roomctl"), 1, proc.out)

    def test_roomctl_unknown_option_named(self):
        for args, named in ((["--nope", "rooms"], "'--nope'"), (["-x", "rooms"], "'-x'"),
                            (["--url"], "'--url'"), (["--json=yes", "rooms"], "'--json'")):
            with self.subTest(args=args):
                proc = self.ctl(*args)
                self.assertEqual(proc.returncode, 2, proc.err)
                self.assertEqual(proc.out, "")
                self.assertIn(named, proc.err.splitlines()[0])
                self.assertIn("Usage: roomctl", proc.err)


if __name__ == "__main__":
    main()
