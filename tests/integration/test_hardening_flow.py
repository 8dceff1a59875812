#!/usr/bin/env python3
"""Hardening (issue 11, items 1, 2, 3, 8 and 12): what one careless or hostile client could do
to the flow of a room or of a worker.

- join/leave floods: join_rate / join_burst answer "rate limit exceeded", and a room's join
  and leave announcements past announce_rate a second are skipped, so members reading at an
  honest pace are never dropped as slow readers;
- listening: max_listening caps it ("too many rooms listened to"), and listen / silence cost
  O(1), so 100 000 pipelined listens do not stall the other clients of the worker;
- long lines: framing is linear in the bytes read (a 16 MB line costs well under 2 s of CPU);
- output_limit counts what the kernel did not take after the turn's write, so a client that
  reads as fast as it can survives a flood that a client that never reads does not;
- SIGHUP applies idle_timeout and (on WebSocket) max_line to connections already open.

Each test prints its figure to stderr (members kept, worst reply time, CPU seconds).
"""

import json
import os
import select
import signal
import socket
import sys
import tempfile
import threading
import time

from harness import (ENTERED, LEFT, RoomdTestCase, bye_line, err_line, free_port, main,
                     ok_line, strip_history)
from test_websocket import RawWs, ws_err, ws_ok

TIMEOUT = 10
JOIN_RATE, JOIN_BURST = 10, 20  # the defaults
MAX_LISTENING = 100             # the default
MEMBERS = 20
MEMBER_RATE = 1300 * 1000       # bytes per second each member reads (the 1.3 MB/s)
FLOOD_SECONDS = 3.0
ANNOUNCE_RATE = 20              # a small budget, so the skipping shows
NLISTENS = 100000
WORST_REPLY_MAX = 1.0           # seconds: the other client's worst wait during the listens
LONG_LINE = 16 * 1024 * 1024
LONG_LINE_CPU_MAX = 2.0         # seconds of the daemon's CPU for the 16 MB line
OUTPUT_LIMIT = 64 * 1024
SAY_SIZE = 1000
NSAYS = 20000                   # 20 MB of says: far more than a never-reader's kernel buffers


def figure(text):
    print("test_hardening_flow: " + text, file=sys.stderr, flush=True)


def deadline_wait(predicate, timeout=TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("%s not met within %ss" % (what, timeout))
        time.sleep(0.01)


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class PacedReaders(threading.Thread):
    """Reads CLIENTS at RATE bytes per second each (an honest reader on a modest link), counts
    the announcements and goodbyes they get and whether the server closed them.  stop() hands
    every client back with its unread partial line in client.buf."""

    def __init__(self, clients, rate):
        super().__init__(daemon=True)
        self.clients = clients
        self.rate = rate
        self.announcements = [0] * len(clients)
        self.goodbyes = [0] * len(clients)
        self.closed = [False] * len(clients)
        self.tails = [c.buf for c in clients]
        self.stopping = threading.Event()
        for i, c in enumerate(clients):  # what setting up left in the backlogs
            self.announcements[i] = sum(1 for _, m in c.backlog
                                        if m.get("message") in (ENTERED, LEFT))
            c.backlog.clear()
            c.buf = b""

    def run(self):
        burst = self.rate / 10  # at most a tenth of a second's worth at once
        budget = [burst] * len(self.clients)
        last = time.monotonic()
        while not self.stopping.is_set():
            now = time.monotonic()
            for i in range(len(budget)):
                budget[i] = min(burst, budget[i] + (now - last) * self.rate)
            last = now
            socks = {c.sock: i for i, c in enumerate(self.clients)
                     if not self.closed[i] and budget[i] >= 4096}
            ready = select.select(list(socks), [], [], 0.01)[0] if socks else []
            if not socks:
                time.sleep(0.005)  # pacing: every budget is spent for now
            for s in ready:
                i = socks[s]
                try:
                    data = s.recv(int(min(budget[i], 65536)))
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if not data:
                    self.closed[i] = True
                    continue
                budget[i] -= len(data)
                data = self.tails[i] + data
                end = data.rfind(b"\n") + 1
                lines, self.tails[i] = data[:end], data[end:]
                self.announcements[i] += lines.count(ENTERED.encode()) + lines.count(
                    LEFT.encode())
                self.goodbyes[i] += lines.count(b'"status":"Bye!"')

    def stop(self):
        self.stopping.set()
        self.join(TIMEOUT)
        for i, c in enumerate(self.clients):
            c.buf = self.tails[i]
            c.eof = self.closed[i]


class Flooder:
    """One client pipelining CHUNK over and over for SECONDS while a thread reads its replies
    as fast as it can (so the flooder itself is never the slow reader)."""

    def __init__(self, client, chunk, per_chunk):
        self.client = client
        self.chunk = chunk
        self.per_chunk = per_chunk
        self.sent = 0
        self.replies = 0
        self.ok = 0
        self.rate_limited = 0
        self.closed = False
        self.sending = True
        self.tail = b""

    def _read(self, until):
        s = self.client.sock
        while not self.closed and (self.sending or self.replies < self.sent):
            if time.monotonic() > until():
                return
            if not select.select([s], [], [], 0.05)[0]:
                continue
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return
            data = self.tail + data
            end = data.rfind(b"\n") + 1
            lines, self.tail = data[:end], data[end:]
            self.replies += lines.count(b'"context":"response"')
            self.ok += lines.count(b'"status":"OK"')
            self.rate_limited += lines.count(b'"status":"rate limit exceeded"')

    def run(self, seconds):
        """Flood (CHUNK at least once); returns the seconds from the first request to the
        last reply."""
        started = time.monotonic()
        read_until = [started + seconds + TIMEOUT]
        reader = threading.Thread(target=self._read, args=(lambda: read_until[0],), daemon=True)
        reader.start()
        s = self.client.sock
        s.setblocking(True)
        s.settimeout(TIMEOUT)
        try:
            while True:
                s.sendall(self.chunk)
                self.sent += self.per_chunk
                if time.monotonic() - started >= seconds:
                    break
        except OSError:
            self.closed = True
        finally:
            s.setblocking(False)
            self.sending = False
        reader.join(seconds + 2 * TIMEOUT)
        return time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# 1. Join/leave floods
# ---------------------------------------------------------------------------------------------

class JoinFlood(RoomdTestCase):

    def flood_lobby(self, server):
        """MEMBERS clients in lobby read at MEMBER_RATE while one client pipelines roomChange
        lobby / roomLeave for FLOOD_SECONDS.  Returns (members kept, readers, flooder,
        seconds)."""
        members = [self.client(server) for _ in range(MEMBERS)]
        for m in members:
            self.assertOK(m, "roomChange lobby", True)
        readers = PacedReaders(members, MEMBER_RATE)
        readers.start()
        flooder = Flooder(self.client(server), b"roomChange lobby\nroomLeave\n" * 1000, 2000)
        seconds = flooder.run(FLOOD_SECONDS)
        readers.stop()
        kept = 0
        for i, m in enumerate(members):
            if readers.closed[i] or readers.goodbyes[i]:
                continue
            reply = m.request("paramsView", timeout=TIMEOUT)  # through what is still queued
            if reply.get("status") == "OK":
                kept += 1
        return kept, readers, flooder, seconds

    def test_join_leave_flood_keeps_readers(self):
        server = self.start_server(starting_rooms="lobby", default_room="")
        kept, readers, flooder, seconds = self.flood_lobby(server)
        figure("join/leave flood: %d of %d members kept; flooder %d requests, %d OK, %d rate "
               "limited in %.1f s" % (kept, MEMBERS, flooder.sent, flooder.ok,
                                      flooder.rate_limited, seconds))
        self.assertEqual(kept, MEMBERS, "members dropped; log:\n%s" % server.log_text())
        self.assertEqual(server.admin_ok("GET", "/api/stats")["slowClientsDropped"], 0)
        self.assertFalse(flooder.closed)
        self.assertEqual(flooder.replies, flooder.sent)
        # The bucket: a burst, then join_rate a second; every other request is refused.  (A
        # request with a token may still fail: roomChange lobby after a refused roomLeave.)
        served = flooder.replies - flooder.rate_limited
        self.assertGreaterEqual(served, JOIN_BURST)
        self.assertLessEqual(served, JOIN_BURST + JOIN_RATE * seconds + 2)
        self.assertGreaterEqual(flooder.ok, JOIN_BURST)

    def test_join_rate_covers_listen_and_silence(self):
        server = self.start_server(starting_rooms="hall,lobby", default_room="hall")
        c = self.client(server)
        verbs = ["listenToRoom lobby", "silenceRoom lobby", "roomChange lobby", "roomLeave"]
        # The burst goes through all four; the rest are roomLeave, whose every answer is OK
        # (or the rate limit), however many tokens the refill adds meanwhile.
        lines = [verbs[i % len(verbs)] for i in range(JOIN_BURST)] + ["roomLeave"] * 8
        first = c.count + 1
        c.send_raw("".join(line + "\n" for line in lines).encode(), counted=len(lines))
        got = sorted((c.expect({"context": "response"}) for _ in lines),
                     key=lambda r: r["messageCount"])
        self.assertEqual([r["messageCount"] for r in got], list(range(first, c.count + 1)))
        for r in got[:JOIN_BURST]:
            self.assertEqual(r["status"], "OK", r)
        limited = 0
        for r in got[JOIN_BURST:]:
            if r["status"] != "OK":
                limited += 1
                self.assertEqual(r, json.loads(err_line("rate limit exceeded",
                                                        r["messageCount"])))
        # Pipelined this fast, the refill adds at most a token or two to the burst.
        self.assertGreaterEqual(limited, len(lines) - JOIN_BURST - 2)
        self.assertOK(c, "paramsView", {})  # other verbs are not limited
        # join_rate = 0 turns the limit off.
        server = self.start_server(starting_rooms="hall,lobby", default_room="hall",
                                   join_rate=0)
        c = self.client(server)
        c.send_raw("".join(line + "\n" for line in lines).encode(), counted=len(lines))
        got = [c.expect({"context": "response"}) for _ in lines]
        self.assertTrue(all(r["status"] == "OK" for r in got), got)

    def test_announcements_past_room_budget_are_skipped(self):
        # join_rate off: any number of connections could churn through the room; the room's
        # announcement budget alone must keep its members reading.
        server = self.start_server(starting_rooms="lobby", default_room="", join_rate=0,
                                   announce_rate=ANNOUNCE_RATE)
        started = time.monotonic()
        kept, readers, flooder, seconds = self.flood_lobby(server)
        spanned = int(time.monotonic() - started) + 2  # whole seconds the budget counted in
        budget = ANNOUNCE_RATE * spanned
        figure("join/leave flood, join_rate off, announce_rate %d: %d of %d members kept; "
               "%d joins and leaves, at most %d announcements heard by a member (budget %d)"
               % (ANNOUNCE_RATE, kept, MEMBERS, flooder.ok, max(readers.announcements),
                  budget))
        self.assertEqual(kept, MEMBERS, "members dropped; log:\n%s" % server.log_text())
        self.assertEqual(flooder.ok, flooder.sent)
        self.assertGreater(flooder.ok, 10 * budget, "the flood did not exceed the budget")
        for heard in readers.announcements:
            self.assertLessEqual(heard, budget)
        # Skipped is silent, not lost state: the room knows exactly who is in it.
        status = server.admin_ok("GET", "/api/rooms/lobby")
        self.assertEqual(status["membersCount"], MEMBERS, status)


# ---------------------------------------------------------------------------------------------
# 2. Listening: a cap, and O(1) per operation
# ---------------------------------------------------------------------------------------------

def create_rooms(server, names):
    """Create the rooms through the admin API, pipelined on one HTTP/1.1 connection."""
    reqs = []
    for name in names:
        body = json.dumps({"room": name}).encode()
        reqs.append(b"POST /api/rooms HTTP/1.1\r\nHost: roomd\r\nAuthorization: Bearer testkey"
                    b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body))
    sock = socket.create_connection(("127.0.0.1", server.admin_port), timeout=TIMEOUT)
    answers = [0]

    def read():
        mark, tail = b"HTTP/1.1 ", b""
        while answers[0] < len(names):
            data = sock.recv(1 << 20)
            if not data:
                return
            # A status line may be split between two reads: count over the seam too.
            data = tail + data
            answers[0] += data.count(mark)
            tail = data[-(len(mark) - 1):]

    t = threading.Thread(target=read, daemon=True)
    t.start()
    sock.sendall(b"".join(reqs))
    t.join(6 * TIMEOUT)
    sock.close()
    if answers[0] != len(names):
        raise AssertionError("%d of %d rooms created" % (answers[0], len(names)))


def worst_reply_during_listens(test, server, nlistens, rooms):
    """One client pipelines NLISTENS listenToRoom lines over ROOMS while another client of the
    same worker asks paramsView again and again; returns (the worst round trip of the other
    client in seconds, the listener's OK replies, its replies, the seconds it took)."""
    other = test.client(server)
    listener = test.client(server)
    lines = b"".join(b"listenToRoom %s\n" % rooms[i % len(rooms)].encode()
                     for i in range(nlistens))
    flooder = Flooder(listener, lines, nlistens)
    done = threading.Event()
    worst = [0.0]

    def probe():
        while not done.is_set():
            t0 = time.monotonic()
            reply = other.request("paramsView", timeout=6 * TIMEOUT)
            worst[0] = max(worst[0], time.monotonic() - t0)
            if reply.get("status") != "OK":
                raise AssertionError(reply)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    started = time.monotonic()
    flooder.run(0)  # one chunk: every listen, pipelined; returns with the last reply
    elapsed = time.monotonic() - started
    done.set()
    t.join(6 * TIMEOUT)
    return worst[0], flooder.ok, flooder.replies, elapsed


class Listening(RoomdTestCase):

    def test_max_listening_cap_at_default(self):
        rooms = ["r%03d" % i for i in range(MAX_LISTENING + 1)]
        server = self.start_server(starting_rooms=",".join(["hall"] + rooms),
                                   default_room="hall", join_rate=0)
        c = self.client(server)
        lines = ["listenToRoom " + r for r in rooms]
        first = c.count + 1
        c.send_raw("".join(line + "\n" for line in lines).encode(), counted=len(lines))
        for i in range(MAX_LISTENING):
            self.assertLine(strip_history(c.expect_raw({"messageCount": first + i})),
                            ok_line(first + i, True))
        self.assertLine(c.expect_raw({"messageCount": c.count}),
                        err_line("too many rooms listened to", c.count))
        self.assertEqual(c.details()["listeningRooms"], rooms[:MAX_LISTENING])  # in order
        # Silencing one makes room for one more.
        self.assertOK(c, "silenceRoom r000", True)
        self.assertOK(c, "listenToRoom " + rooms[-1], True)
        self.assertError(c, "listenToRoom r000", "too many rooms listened to")
        self.assertError(c, "listenToRoom r001", "connection already listening to this room")
        self.assertEqual(c.details()["listeningRooms"], rooms[1:])
        # A listener still hears its rooms, the new last one included.
        speaker = self.client(server)
        self.assertOK(speaker, "roomChange " + rooms[-1], True)
        self.assertOK(speaker, "say to the listeners")
        c.expect({"message": "to the listeners", "room": rooms[-1]})

    def test_many_listens_keep_worker_responsive(self):
        rooms = ["l%05d" % i for i in range(NLISTENS)]
        server = self.start_server(workers=1, default_room="", join_rate=0,
                                   max_listening=2 * NLISTENS)
        create_rooms(server, rooms)
        worst, ok, replies, elapsed = worst_reply_during_listens(self, server, NLISTENS, rooms)
        figure("%d pipelined listens: worst reply to another client of the worker %.3f s; "
               "%d OK of %d replies in %.1f s" % (NLISTENS, worst, ok, replies, elapsed))
        self.assertEqual((ok, replies), (NLISTENS, NLISTENS))
        self.assertLess(worst, WORST_REPLY_MAX)

    def test_many_listens_at_default_cap(self):
        # The same attack at the default max_listening: 100 listens, then the error, cheaply.
        rooms = ["l%05d" % i for i in range(NLISTENS)]
        server = self.start_server(workers=1, default_room="", join_rate=0)
        create_rooms(server, rooms[:2 * MAX_LISTENING])
        worst, ok, replies, elapsed = worst_reply_during_listens(self, server, NLISTENS,
                                                                 rooms[:2 * MAX_LISTENING])
        figure("%d pipelined listens at max_listening %d: worst reply %.3f s; %d OK of %d "
               "replies in %.1f s" % (NLISTENS, MAX_LISTENING, worst, ok, replies, elapsed))
        self.assertEqual((ok, replies), (MAX_LISTENING, NLISTENS))
        self.assertLess(worst, WORST_REPLY_MAX)


# ---------------------------------------------------------------------------------------------
# 3. Long lines
# ---------------------------------------------------------------------------------------------

class LongLines(RoomdTestCase):

    def send_long_line(self, server, c, size):
        """Send SIZE bytes of one line and its newline; returns the daemon's CPU seconds for
        it, once the reply arrived."""
        cpu0 = cpu_seconds(server.pid)
        c.send_raw(b"x" * size + b"\n", counted=1)
        reply = c.expect({"context": "response"}, timeout=6 * TIMEOUT)
        return cpu_seconds(server.pid) - cpu0, reply

    def test_16mb_line_costs_linear_cpu(self):
        server = self.start_server(workers=1, max_line=2 * LONG_LINE)
        c = self.client(server)
        cpu, reply = self.send_long_line(server, c, LONG_LINE)
        figure("one 16 MB line (max_line 32 MiB): %.2f s of daemon CPU" % cpu)
        self.assertEqual(reply, json.loads(err_line("verb not found or not allowed", c.count)))
        self.assertLess(cpu, LONG_LINE_CPU_MAX)
        self.assertOK(c, "paramsView", {})

    def test_16mb_line_over_max_line_is_skipped(self):
        server = self.start_server(workers=1)  # max_line at its default
        c = self.client(server)
        cpu, reply = self.send_long_line(server, c, LONG_LINE)
        figure("one 16 MB line over the default max_line: %.2f s of daemon CPU" % cpu)
        self.assertEqual(reply, json.loads(err_line("request too long", c.count)))
        self.assertLess(cpu, LONG_LINE_CPU_MAX)
        self.assertOK(c, "paramsView", {})  # the rest of the line was skipped, not read
        c.assert_silent(match={"context": "response"})

    def test_line_in_pieces_and_split_telnet_break(self):
        server = self.start_server()
        c = self.client(server)
        # A request in pieces: the search resumes, the line is whole.
        for piece in (b"par", b"amsV", b"iew"):
            c.send_raw(piece)
        c.send_raw(b"\r\n", counted=1)
        self.assertLine(c.expect_raw({"context": "response"}), ok_line(c.count, {}))
        # A telnet break straddling two writes (and likely two reads) still ends the session.
        c.send_raw(b"y" * 5000 + b"\xff\xf4")
        c.send_raw(b"\xff\xfd\x06")
        c.expect_goodbye("break-character")


# ---------------------------------------------------------------------------------------------
# 8. output_limit counts what the kernel did not take
# ---------------------------------------------------------------------------------------------

class OutputAfterWrite(RoomdTestCase):

    def test_fast_reader_survives_never_reader_dropped(self):
        server = self.start_server(workers=1, output_limit=OUTPUT_LIMIT, say_rate=0,
                                   starting_rooms="hall,flood", default_room="flood")
        never = self.client(server, rcvbuf=4096)
        never_port = never.local_port
        reader, speaker = self.client(server), self.client(server)
        heard = [0]
        reader_done = threading.Event()

        def read_all():
            # As fast as it can: big reads, lines counted, nothing else.
            s, tail = reader.sock, b""
            while heard[0] < NSAYS:
                if not select.select([s], [], [], TIMEOUT)[0]:
                    return
                try:
                    data = s.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    reader.eof = True
                    return
                data = tail + data
                end = data.rfind(b"\n") + 1
                lines, tail = data[:end], data[end:]
                heard[0] += lines.count(b'"message":"s')
                if b'"status":"Bye!"' in lines:
                    reader.eof = True
                    return
            reader.buf = tail
            reader_done.set()

        t = threading.Thread(target=read_all, daemon=True)
        t.start()
        pad = "p" * SAY_SIZE
        flood = Flooder(speaker, "".join("say s%05d %s\n" % (i, pad)
                                         for i in range(NSAYS)).encode(), NSAYS)
        flood.run(0)
        t.join(6 * TIMEOUT)
        figure("output_limit %d: the fast reader heard %d of %d says (%s)"
               % (OUTPUT_LIMIT, heard[0], NSAYS, "dropped" if reader.eof else "connected"))
        self.assertFalse(reader.eof, "the fast reader was dropped; log:\n%s" % server.log_text())
        self.assertTrue(reader_done.is_set())
        self.assertEqual(heard[0], NSAYS)
        self.assertEqual((flood.ok, flood.replies), (NSAYS, NSAYS))
        self.assertOK(reader, "paramsView", {})
        # The client that never reads passed the limit once its kernel buffers were full.
        server.wait_log(lambda line: "output buffer limit exceeded" in line and
                        ":%d)" % never_port in line, timeout=TIMEOUT)
        never.wait_closed(timeout=TIMEOUT, keep=False)
        self.assertEqual(server.admin_ok("GET", "/api/stats")["slowClientsDropped"], 1)


# ---------------------------------------------------------------------------------------------
# 12. SIGHUP reaches open connections
# ---------------------------------------------------------------------------------------------

class ReloadOpenConnections(RoomdTestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.conf = os.path.join(self.dir.name, "roomd.conf")
        self.log = os.path.join(self.dir.name, "roomd.log")
        self.reloads = 0

    def configure(self, text):
        write(self.conf, text + "\nlog_file = %s\n" % self.log)

    def read_log(self):
        with open(self.log) as f:
            return f.read()

    def hup(self, server):
        """SIGHUP, then wait until the reload is logged (its jobs are on the workers' queues
        by then; an idle worker runs them at once)."""
        self.reloads += 1
        os.kill(server.pid, signal.SIGHUP)
        deadline_wait(lambda: self.read_log().count("configuration reloaded") >= self.reloads,
                      what="reload %d" % self.reloads)

    def test_sighup_idle_timeout_reaches_open_connections(self):
        self.configure("idle_timeout = 0")
        server = self.start_server(config=self.conf, ready_file=self.log)
        c = self.client(server)
        self.assertOK(c, "paramsView", {})
        self.configure("idle_timeout = 1")
        self.hup(server)
        t0 = time.monotonic()
        c.expect_goodbye("idle timeout", timeout=TIMEOUT)
        self.assertGreater(time.monotonic() - t0, 0.9, "closed before the new idle_timeout")
        # And back: a connection opened under idle_timeout = 2 lives on once it is off.
        self.configure("idle_timeout = 2")
        self.hup(server)
        d = self.client(server)
        self.configure("idle_timeout = 0")
        self.hup(server)
        d.assert_silent(3, match={"status": "Bye!"})
        self.assertOK(d, "paramsView", {})

    def test_sighup_max_line_reaches_open_websockets(self):
        port = free_port()
        self.configure("max_line = 1024")
        server = self.start_server(config=self.conf, ready_file=self.log, websocket_port=port)
        w = RawWs(port)
        self.addCleanup(w.close)
        w.recv_text()  # the welcome
        long_say = "say " + "y" * 2000
        w.text(long_say)
        self.assertEqual(w.reply(), ws_err("request too long", w.count))
        self.configure("max_line = 4096")
        self.hup(server)
        w.text(long_say)
        self.assertEqual(strip_history(w.reply()), ws_ok(w.count))
        self.configure("max_line = 1024")
        self.hup(server)
        w.text(long_say)
        self.assertEqual(w.reply(), ws_err("request too long", w.count))
        w.text("paramsView")
        self.assertEqual(strip_history(w.reply()), ws_ok(w.count, {}))


if __name__ == "__main__":
    main()
