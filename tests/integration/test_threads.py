#!/usr/bin/env python3
"""Many clients saying at once over several workers: every message reaches every other
member and every listener exactly once, in the order its sender said it.

Each client has a reader thread that never stops reading (so none stalls the daemon) and a
sender thread; all senders start together behind a barrier.
"""

import json
import select
import threading
import time

from harness import RoomdTestCase, main

SENDERS = 40
LISTENERS = 5
K = 200  # says per sender


class Receiver(threading.Thread):
    """Reads one client's socket until it has seen `expected_chats` chat lines and
    `expected_replies` replies (or until told to stop), recording what came from whom."""

    def __init__(self, client, expected_chats, expected_replies, stop):
        super().__init__(daemon=True)
        self.client = client
        self.expected_chats = expected_chats
        self.expected_replies = expected_replies
        self.stop = stop  # threading.Event: give up
        self.by_sender = {}  # sender id -> list of sequence numbers, in arrival order
        self.reply_counts = []
        self.bad = []  # anything unexpected
        self.chats = 0

    def run(self):
        self.client.buf = self.read(self.client.sock, self.client.buf)

    def read(self, sock, buf):
        """Read and handle lines; returns the unfinished rest."""
        while self.chats < self.expected_chats or len(self.reply_counts) < self.expected_replies:
            if self.stop.is_set():
                return buf
            if b"\n" not in buf:
                ready, _, _ = select.select([sock], [], [], 0.1)
                if not ready:
                    continue
                try:
                    data = sock.recv(262144)
                except BlockingIOError:
                    continue
                if not data:
                    self.bad.append("connection closed")
                    return buf
                buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self.handle(json.loads(line))
        return buf

    def handle(self, msg):
        if msg.get("context") == "response":
            if msg.get("status") != "OK":
                self.bad.append(msg)
            self.reply_counts.append(msg["messageCount"])
        elif msg.get("context") == "user" and msg.get("room") == "hall":
            # "n SENDER SEQ"
            _, sender, seq = msg["message"].split()
            self.by_sender.setdefault(msg["from"], []).append(int(seq))
            self.chats += 1
        else:
            self.bad.append(msg)


class Threads(RoomdTestCase):

    def test_concurrent_says(self):
        self.server = self.start_server(workers=4, say_rate=0, announcements=False,
                                        starting_rooms="hall,side", default_room="hall")
        senders = [self.client() for _ in range(SENDERS)]
        listeners = [self.client() for _ in range(LISTENERS)]
        for c in listeners:
            self.assertOK(c, "roomChange side", True)
            self.assertOK(c, "listenToRoom hall", True)
        ids = [c.id for c in senders]
        self.assertEqual(len(set(ids)), SENDERS)
        hall = senders[0].request("roomView")["data"]
        self.assertEqual(hall["membersCount"], SENDERS)
        for c in senders + listeners:
            c.assert_silent(0, match={"context": "response"})  # nothing left unread

        stop = threading.Event()
        receivers = {}
        for c in senders:
            receivers[c] = Receiver(c, (SENDERS - 1) * K, K, stop)
        for c in listeners:
            receivers[c] = Receiver(c, SENDERS * K, 0, stop)
        for r in receivers.values():
            r.start()

        barrier = threading.Barrier(SENDERS)
        first_count = {c: c.count + 1 for c in senders}

        def send(index, client):
            payload = b"".join(b"say n %d %d\n" % (index, seq) for seq in range(K))
            barrier.wait(10)
            # In a few pieces, so the senders really interleave.
            step = len(payload) // 4 + 1
            client.sock.setblocking(True)
            for i in range(0, len(payload), step):
                client.sock.sendall(payload[i:i + step])

        started = time.monotonic()
        threads = [threading.Thread(target=send, args=(i, c)) for i, c in enumerate(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        # Wait while deliveries make progress; 3 s without any means some are lost.
        last_total, last_change = -1, time.monotonic()
        while any(r.is_alive() for r in receivers.values()):
            total = sum(r.chats + len(r.reply_counts) for r in receivers.values())
            if total != last_total:
                last_total, last_change = total, time.monotonic()
            elif time.monotonic() - last_change > 3:
                break
            next(r for r in receivers.values() if r.is_alive()).join(0.1)
        stop.set()
        for r in receivers.values():
            r.join()
        elapsed = time.monotonic() - started

        # One short line per problem, so a failure stays readable with 45 receivers.
        problems = []
        index = {sender_id: i for i, sender_id in enumerate(ids)}
        for name, c, expected_senders in (
                [("sender %d" % i, c, set(ids) - {c.id}) for i, c in enumerate(senders)]
                + [("listener %d" % i, c, set(ids)) for i, c in enumerate(listeners)]):
            r = receivers[c]
            problems += ["%s: unexpected %r" % (name, b) for b in r.bad[:3]]
            if c.id in r.by_sender:
                problems.append("%s: heard %d of its own says" % (name, len(r.by_sender[c.id])))
            missing = expected_senders - set(r.by_sender)
            if missing:
                problems.append("%s: nothing from %d senders" % (name, len(missing)))
            for sender, seqs in sorted(r.by_sender.items()):
                if sender != c.id and seqs != list(range(K)):
                    first_bad = next((n for n, (a, b) in enumerate(zip(seqs, range(K)))
                                      if a != b), min(len(seqs), K))
                    problems.append("%s: from sender %s got %d says, first wrong at #%d (%r)"
                                    % (name, index.get(sender, sender), len(seqs), first_bad,
                                       seqs[first_bad:first_bad + 3]))
            if c in first_count:
                want = list(range(first_count[c], first_count[c] + K))
                if sorted(r.reply_counts) != want:
                    problems.append("%s: %d replies, messageCounts %r..." % (
                        name, len(r.reply_counts), sorted(r.reply_counts)[:5]))
        self.assertEqual(problems[:20], [], "%d problems" % len(problems))
        # Nothing extra (duplicates) after the expected ones.
        everyone = senders + listeners
        self.assertEqual([c.buf for c in everyone if c.buf], [])
        readable, _, _ = select.select([c.sock for c in everyone], [], [], 0.3)
        self.assertEqual(readable, [], "more messages than expected")
        print("\n%d deliveries in %.2f s" % (sum(r.chats for r in receivers.values()), elapsed))


if __name__ == "__main__":
    main()
