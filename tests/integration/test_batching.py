#!/usr/bin/env python3
"""A room's per-turn batches (worker.c, "Batching"): with one worker, pipelined says from
several speakers land in one loop turn, and each member gets them laid end to end.

What must hold whatever the batch looks like (several speakers, speakers who are members,
line and WebSocket members side by side, big and small messages, more speakers or bytes
than one combined buffer takes):
  - every member hears every other speaker's lines exactly once, in the speaker's order,
    and never its own;
  - a listener that listens and silences while a speaker floods hears the room exactly
    between its listenToRoom reply and its silenceRoom reply, and hears every line the
    server took (its OK came back) inside that window;
  - the deliveries the server counts (/api/stats messagesOut) are the deliveries made;
  - inside one loop turn (lined up with embed/park_hook, which holds the worker in a say hook
    while other clients send): what was said before a member leaves, silences or quits
    reaches it before its reply or goodbye, and what was said before a client joins does
    not reach it.
"""

import asyncio
import json
import random
import select
import socket
import threading
import time

import os

import harness
from harness import RoomdTestCase, Server, admin, chat, free_port, main

try:
    import websockets
except ImportError:  # pragma: no cover - scripts/deps installs python3-websockets
    websockets = None

ROOM = "mix"
TIMEOUT = 30
PARK_HOOK = os.environ.get(
    "PARK_HOOK", os.path.join(harness.REPO, "build", "tests", "embed", "park_hook"))
PARK_MS = 1000  # long enough to send a few lines under a sanitizer; only waited out once


class Reader(threading.Thread):
    """Reads a line client's socket until stopped, keeping every chat line (sender, message)
    and every reply, each with the monotonic time it was read."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.chats = []    # (sender, message)
        self.replies = []  # (time, reply)
        self.events = []   # ("chat", message) / ("reply", messageCount), in arrival order
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        sock, buf = self.client.sock, self.client.buf
        while not self.stop.is_set():
            ready, _, _ = select.select([sock], [], [], 0.05)
            if not ready:
                continue
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:  # closed under us at the end of a test
                return
            if not data:
                return
            now = time.monotonic()
            buf += data
            *lines, buf = buf.split(b"\n")
            with self.lock:
                for line in lines:
                    m = json.loads(line)
                    if m.get("context") == "user":
                        self.chats.append((m["from"], m["message"]))
                        self.events.append(("chat", m["message"]))
                    elif m.get("context") == "response":
                        self.replies.append((now, m))
                        self.events.append(("reply", m["messageCount"]))

    def wait(self, predicate, what):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self):
                    return
            time.sleep(0.01)
        raise AssertionError("timed out waiting for " + what)


class WsReader(threading.Thread):
    """The same for a WebSocket member, with Python's websockets as the client."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.chats = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.error = None

    def run(self):
        try:
            asyncio.run(self.main())
        except Exception as e:  # reported by the test
            self.error = e
            self.ready.set()

    async def main(self):
        async with websockets.connect("ws://127.0.0.1:%d/" % self.port, max_size=None,
                                      ping_interval=None, compression=None) as ws:
            json.loads(await ws.recv())  # the welcome (it is in ROOM, the default room)
            self.ready.set()
            while not self.stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.1)
                except asyncio.TimeoutError:
                    continue
                m = json.loads(raw)
                if m.get("context") == "user":
                    with self.lock:
                        self.chats.append((m["from"], m["message"]))


def says(lines):
    return "".join("say %s\n" % line for line in lines).encode()


class Batching(RoomdTestCase):

    def setUp(self):
        self.ws_port = free_port()
        # The cases flood says and open and close listening windows back to back: the order
        # of a batch is under test here, not the say and join rates.
        self.server = self.start_server(workers=1, say_rate=0, join_rate=0, announcements=False,
                                        starting_rooms=ROOM + ",side", default_room=ROOM,
                                        websocket_port=self.ws_port)

    def stats_out(self):
        status, body = admin(self.server.admin_port, "GET", "/api/stats")
        self.assertEqual(status, 200)
        return (body.get("data") or body)["messagesOut"]

    def run_speakers(self, nspeakers, k, sizes):
        """NSPEAKERS line clients each pipeline K says at once; a line member and a WebSocket
        member only listen.  Returns after everyone has heard everything it should."""
        speakers = [self.client() for _ in range(nspeakers)]
        member = self.client()
        ws = None
        if websockets is not None:
            ws = WsReader(self.ws_port)
            ws.start()
            self.assertTrue(ws.ready.wait(TIMEOUT))
            self.assertIsNone(ws.error)
        for c in speakers + [member]:
            c.id  # read before the readers take the sockets over
        base = self.stats_out()
        readers = [Reader(c) for c in speakers + [member]]
        for r in readers:
            r.start()
        rng = random.Random(nspeakers * 1000 + k)
        lines = {c.id: ["%s-%d-%s" % (c.id[:8], i, "x" * rng.choice(sizes)) for i in range(k)]
                 for c in speakers}
        start = threading.Barrier(nspeakers)

        def speak(c):
            start.wait()
            c.send_raw(says(lines[c.id]), counted=k)

        threads = [threading.Thread(target=speak, args=(c,)) for c in speakers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        others = (nspeakers - 1) * k
        for r in readers[:-1]:
            r.wait(lambda r: len(r.replies) >= k and len(r.chats) >= others,
                   "a speaker's replies and chat")
        readers[-1].wait(lambda r: len(r.chats) >= nspeakers * k, "the line member's chat")
        listeners = [(r.client.id, r.chats) for r in readers]
        if ws:
            deadline = time.monotonic() + TIMEOUT
            while len(ws.chats) < nspeakers * k and time.monotonic() < deadline:
                time.sleep(0.01)
            listeners.append(("websocket", ws.chats))
        for r in readers:
            r.stop.set()
            r.join(TIMEOUT)
            self.assertTrue(all(rep["status"] == "OK" for _, rep in r.replies))
        if ws:
            ws.stop.set()
            ws.join(TIMEOUT)
        for who, chats in listeners:
            heard = {}
            for sender, message in chats:
                heard.setdefault(sender, []).append(message)
            self.assertFalse(who in heard, "%s heard itself %d times" % (who, len(heard.get(who, []))))
            for c in speakers:
                if c.id != who:
                    got = heard.get(c.id, [])
                    self.assertTrue(got == lines[c.id], "%s heard %d of %s's %d lines (%s)" % (
                        who, len(got), c.id[:8], k, "reordered" if sorted(got) == sorted(
                            lines[c.id]) else "lost or duplicated"))
        members = nspeakers + 1 + (1 if ws else 0)
        expected = nspeakers * k * (members - 1)
        deadline = time.monotonic() + TIMEOUT
        while self.stats_out() - base < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.stats_out() - base, expected, "messagesOut counts deliveries")

    def test_few_speakers_small_lines(self):
        # Two speakers who are members: their batches are combined for everyone else and
        # sent line by line to them (each without its own lines).
        self.run_speakers(2, 2000, sizes=(0, 10, 50))

    def test_many_speakers_mixed_sizes(self):
        # Six speakers (more than a combined buffer serves) and lines up to 8 KB: many turns
        # pass BATCH_COMBINE_MAX bytes and go line by line.
        self.run_speakers(6, 300, sizes=(0, 100, 1000, 8000))

    def test_listener_hears_exactly_its_window(self):
        speaker = self.client()
        listener = self.client()
        self.assertOK(listener, "roomChange side", True)
        listener.id, speaker.id  # read before the readers take the sockets over
        sreader, lreader = Reader(speaker), Reader(listener)
        sreader.start()
        lreader.start()
        chunk = 300
        sent_at = []  # per chunk: the time before it was sent
        stop = threading.Event()

        def flood():  # one chunk per round trip, until the windows are done
            for first in range(0, 10 ** 7, chunk):
                if stop.is_set():
                    return
                sent_at.append(time.monotonic())
                speaker.send_raw(says("n%d" % i for i in range(first, first + chunk)),
                                 counted=chunk)
                sreader.wait(lambda r: len(r.replies) >= first, "the flood's replies")

        flooder = threading.Thread(target=flood)
        flooder.start()
        windows = []  # (reply count of listen, time its reply came, time silence was sent)
        try:
            for _ in range(40):
                listener.send_line("listenToRoom " + ROOM)
                n = listener.count
                lreader.wait(lambda r: any(rep["messageCount"] == n for _, rep in r.replies),
                             "the listenToRoom reply")
                with lreader.lock:
                    opened = [t for t, rep in lreader.replies if rep["messageCount"] == n][0]
                time.sleep(random.uniform(0.001, 0.02))  # let some of the flood through
                closed = time.monotonic()
                listener.send_line("silenceRoom " + ROOM)
                m = listener.count
                lreader.wait(lambda r: any(rep["messageCount"] == m for _, rep in r.replies),
                             "the silenceRoom reply")
                windows.append((n, m, opened, closed))
        finally:
            stop.set()
            flooder.join(TIMEOUT)
        sreader.wait(lambda r: len(r.replies) >= len(sent_at) * chunk, "the last replies")
        for r in (sreader, lreader):
            r.stop.set()
            r.join(TIMEOUT)
        with lreader.lock, sreader.lock:
            events = list(lreader.events)
            ok_at = [t for t, _ in sreader.replies]
        self.assertTrue(all(rep["status"] == "OK" for _, rep in lreader.replies))
        # Split the listener's stream by its replies: chat only inside a window.
        inside, periods, current = False, [], None
        for kind, value in events:
            if kind == "reply":
                if any(value == n for n, _, _, _ in windows):
                    inside, current = True, []
                    periods.append(current)
                elif any(value == m for _, m, _, _ in windows):
                    inside = False
                continue
            self.assertTrue(inside, "heard %r outside a listening window" % value)
            current.append(int(value[1:]))
        self.assertEqual(len(periods), len(windows))
        heard_any = 0
        for (n, m, opened, closed), got in zip(windows, periods):
            if got:  # one window: consecutive lines of the one speaker
                self.assertEqual(got, list(range(got[0], got[0] + len(got))))
            heard_any += len(got)
            # Every line sent after the window opened whose OK came before it closed.
            must = [i for i in range(len(ok_at))
                    if sent_at[i // chunk] > opened and ok_at[i] < closed]
            self.assertTrue(set(must) <= set(got),
                            "window %d: missed %s" % (n, sorted(set(must) - set(got))[:5]))
        self.assertGreater(heard_any, 0, "the flood never reached a window")


class ParkServer(Server):
    """harness.Server running tests/embed/park_hook (roomd plus the parking say hook)."""

    program, program_env = PARK_HOOK, "PARK_HOOK"


class TurnCase(RoomdTestCase):
    """A park_hook server with WORKERS workers and a parker client, the first connection."""

    workers = 1

    def setUp(self):
        self.server = ParkServer(workers=self.workers, say_rate=0, announcements=False,
                                 default_room="", starting_rooms=ROOM + ",parking")
        self.addCleanup(self.server.stop)
        self.parker = self.client()
        self.assertOK(self.parker, "roomChange parking", True)
        self.parks = 0

    def client(self, **kwargs):
        c = super().client(**kwargs)
        c.id  # read now: detailsView must not land between the lined-up requests
        return c

    def joined(self):
        c = self.client()
        self.assertOK(c, "roomChange " + ROOM, True)
        return c

    def park(self):
        """Hold the worker; returns once it is held (what is sent now waits for one turn)."""
        self.parks += 1
        self.parker.send_line("say park %d" % PARK_MS)
        self.server.wait_log("park_hook: parked #%d " % self.parks, TIMEOUT)

    def unpark(self):
        self.assertEqual(self.parker.expect({"context": "response"}, TIMEOUT)["status"], "OK")

    def assertNext(self, c, match, what):
        m = c.recv_json(TIMEOUT)
        self.assertTrue(harness.matches(match, m), "%s: got %r" % (what, m))



class OneTurn(TurnCase):
    """Requests from several clients handled in one loop turn, in the order they were sent."""

    def test_member_that_leaves_hears_what_was_said_before(self):
        speaker, leaver, silencer = self.joined(), self.joined(), self.client()
        self.assertOK(silencer, "listenToRoom " + ROOM, True)
        self.park()
        speaker.send_line("say before the leave")
        leaver.send_line("roomLeave")
        silencer.send_line("silenceRoom " + ROOM)
        self.unpark()
        for c, what in ((leaver, "roomLeave"), (silencer, "silenceRoom")):
            self.assertNext(c, chat("before the leave", ROOM, speaker.id), what + ": chat first")
            self.assertNext(c, {"status": "OK", "messageCount": c.count}, what + ": then reply")
        self.assertNext(speaker, {"status": "OK", "messageCount": speaker.count}, "say")

    def test_member_that_joins_does_not_hear_what_was_said_before(self):
        speaker, joiner, listener = self.joined(), self.client(), self.client()
        self.park()
        speaker.send_line("say before the join")
        joiner.send_line("roomChange " + ROOM)
        listener.send_line("listenToRoom " + ROOM)
        self.unpark()
        for c in (joiner, listener, speaker):
            self.assertNext(c, {"status": "OK", "messageCount": c.count}, "the reply")
        self.assertOK(speaker, "say after the join")
        for c in (joiner, listener):  # the next chat is the later line, not the earlier one
            self.assertNext(c, chat("after the join", ROOM, speaker.id), "first chat heard")

    def test_client_that_quits_hears_what_was_said_before_its_goodbye(self):
        speaker, quitter = self.joined(), self.joined()
        self.park()
        speaker.send_line("say before the quit")
        quitter.send_line("quit")
        self.unpark()
        self.assertNext(quitter, chat("before the quit", ROOM, speaker.id), "chat first")
        self.assertNext(quitter, {"status": "Bye!"}, "then the goodbye")


class OneTurnAcrossWorkers(TurnCase):
    """Jobs from other threads handled in one turn: a delivery from another worker, then the
    room's deletion from the admin thread, both queued while the worker is parked."""

    workers = 2

    def test_member_hears_what_was_said_before_the_room_was_deleted(self):
        # Round-robin: the parker went to one worker, the speaker goes to the other and the
        # member to the parker's.
        speaker, member = self.joined(), self.joined()
        self.park()
        speaker.send_line("say before the delete")
        self.assertNext(speaker, {"status": "OK", "messageCount": speaker.count}, "say")
        status, _ = admin(self.server.admin_port, "DELETE", "/api/rooms/" + ROOM)
        self.assertEqual(status, 200)
        self.unpark()
        self.assertNext(member, chat("before the delete", ROOM, speaker.id), "chat first")
        self.assertNext(member, chat("this room has been deleted", ROOM, 0), "then the notice")


if __name__ == "__main__":
    main()
