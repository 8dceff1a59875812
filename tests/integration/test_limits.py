#!/usr/bin/env python3
"""Request limits and misbehaving clients: long lines, bad bytes, room names, params,
connection count, say rate, idle timeout and the output buffer limit."""

import random
import threading
import time

from harness import ENTERED, LEFT, RoomdTestCase, bye_line, chat, main, welcome_line


class RequestLimits(RoomdTestCase):
    """One daemon with small request limits; each test uses fresh clients."""

    @classmethod
    def setUpClass(cls):
        # defaultRoom is longer than max_room_name, so this daemon uses short names.
        cls.start_class_server(max_line=1024, max_room_name=8, max_params=2,
                               starting_rooms="lobby,abcdefgh", default_room="lobby")

    def test_overlong_line(self):
        c = self.client()
        self.assertOK(c, "paramsView", {})
        # The tail after the limit must not be read as a request of its own.
        c.send_line("paramAdd big=" + "x" * 2000 + " quit")
        self.assertLine(c.expect_raw({"context": "response"}),
                        b'{"status":"request too long","context":"response","error":'
                        b'"request too long","data":false,"messageCount":2}\r\n')
        self.assertOK(c, "paramView big")  # not stored
        self.assertEqual(c.count, 3)
        c.assert_silent(match={"context": "response"})
        self.assertOK(c, "say " + "y" * 900)  # well under the limit: fine

    def test_line_length_boundary(self):
        # decision: max_line counts the bytes of the line without its "\n" (and "\r").
        c = self.client()
        self.assertError(c, "x" * 1024, "verb not found or not allowed")
        self.assertError(c, b"x" * 1024 + b"\r", "verb not found or not allowed")
        self.assertError(c, "x" * 1025, "request too long")
        self.assertOK(c, "paramsView", {})

    def test_overlong_line_in_pieces(self):
        c = self.client()
        # 100 KiB in several writes, then the newline: one error, then business as usual.
        for _ in range(10):
            c.send_raw(b"z" * 10240)
        c.send_raw(b"\n", counted=1)
        self.assertNextError(c, "request too long")
        self.assertOK(c, "paramsView", {})
        c.assert_silent(match={"context": "response"})

    def test_invalid_utf8(self):
        c = self.client()
        for bad in [b"say \xc3\x28", b"say \x80", b"say \xc0\xaf", b"say \xed\xa0\x80",
                    b"paramAdd k=\xf8\x88\x80\x80\x80", b"\xfe\xfe"]:
            with self.subTest(bad=bad):
                self.assertError(c, bad, "invalid UTF-8")
        self.assertOK(c, "paramsView", {})
        self.assertOK(c, "say valid \u00e9")

    def test_garbage_and_nul_bytes(self):
        c = self.client()
        rng = random.Random(1234)
        alphabet = [b for b in range(255) if b != 10]
        # Random lines of any byte but \n and 0xff (telnet IAC), each starting with '~' so no
        # line can be a real verb, a JSON request or a lone Ctrl-D.
        lines = [b"~" + bytes(rng.choice(alphabet)
                              for _ in range(rng.randint(0, 200)))
                 for _ in range(200)]
        c.send_raw(b"".join(line + b"\n" for line in lines), counted=len(lines))
        replies = [c.expect({"context": "response"}) for _ in lines]
        for r in replies:
            self.assertIn(r["status"], ("verb not found or not allowed", "invalid UTF-8"), r)
        self.assertEqual(sorted(r["messageCount"] for r in replies), list(range(1, 201)))
        # decision: PROTOCOL.md does not say whether a NUL inside a verb line is text or a bad
        # request; either is accepted, as exactly one reply, and the connection lives.
        reply = c.request(b"say a\x00b")
        self.assertEqual(reply["messageCount"], c.count)
        self.assertIn(reply["status"], ("OK", "invalid request"), reply)
        c.send_raw(b"\x00" * 5000 + b"\n", counted=1)  # NULs past max_line
        self.assertNextError(c, "request too long")
        self.assertOK(c, "paramsView", {})
        other = self.client()  # the server still takes new clients
        self.assertOK(other, "paramsView", {})

    def test_room_name_rules(self):
        c = self.client()
        self.assertOK(c, "roomChange abcdefgh", True)  # exactly max_room_name bytes
        self.assertError(c, "roomChange abcdefghi", "invalid room name")
        self.assertError(c, "listenToRoom abcdefghi", "invalid room name")
        self.assertError(c, "roomChange " + "\u00e9" * 5, "invalid room name")  # 10 bytes
        self.assertError(c, "roomChange nowhere", "room does not exist")  # 7 bytes: valid
        self.assertError(c, "roomChange a\tb", "invalid room name")
        self.assertError(c, b"roomChange a\x01b", "invalid room name")
        self.assertError(c, '{"event":"roomChange","room":"a\\u0000b"}', "invalid room name")
        self.assertError(c, '{"event":"listenToRoom","room":"a\\nb"}', "invalid room name")

    def test_max_params(self):
        c = self.client()
        self.assertOK(c, "paramAdd a=1", None)
        self.assertOK(c, "paramAdd b=2", None)
        self.assertError(c, "paramAdd c=3", "too many params")
        self.assertOK(c, "paramAdd a=9", None)  # decision: replacing a key at the limit is fine
        self.assertOK(c, "paramsView", {"a": "9", "b": "2"})
        self.assertOK(c, "paramDelete a", None)
        self.assertOK(c, "paramAdd c=3", None)


class RoomViewLimit(RoomdTestCase):

    def test_room_view_limit(self):
        self.server = self.start_server(room_view_limit=2)
        clients = [self.client() for _ in range(3)]
        data = clients[0].request("roomView")["data"]
        self.assertEqual(data["membersCount"], 3)  # exact
        self.assertEqual(len(data["members"]), 2)  # at most room_view_limit listed
        self.assertTrue(set(data["members"]) <= {c.id for c in clients})


class MaxConnections(RoomdTestCase):

    def test_max_connections(self):
        self.server = self.start_server(max_connections=3)
        clients = [self.client() for _ in range(3)]
        for c in clients:
            self.assertLine(c.welcome_raw, welcome_line("defaultRoom"))
        fourth = self.client(welcome=False)
        self.assertLine(fourth.recv_raw(), bye_line("too many connections"))
        fourth.wait_closed()
        # The refused one did not take a place, and a freed place is given to the next.
        clients[0].close()
        deadline = time.monotonic() + 5
        while True:
            c = self.client(welcome=False)
            first = c.recv_raw()
            if first == welcome_line("defaultRoom"):
                break
            self.assertLine(first, bye_line("too many connections"))
            c.wait_closed()
            self.assertLess(time.monotonic(), deadline, "no place freed within 5 s")
        self.assertOK(c, "paramsView", {})
        late = self.client(welcome=False)
        self.assertLine(late.recv_raw(), bye_line("too many connections"))


class SayRate(RoomdTestCase):

    def test_rate_limit(self):
        self.server = self.start_server(say_rate=5, say_burst=5)
        a, b = self.client(), self.client()
        a.send_raw(b"".join(b"say m%d\n" % i for i in range(6)), counted=6)
        replies = {r["messageCount"]: r for r in
                   (a.expect({"context": "response"}) for _ in range(6))}
        self.assertEqual(sorted(replies), [1, 2, 3, 4, 5, 6])
        for n in range(1, 6):
            self.assertEqual(replies[n]["status"], "OK", replies[n])
        self.assertJson(replies[6], {"status": "rate limit exceeded", "context": "response",
                                     "error": "rate limit exceeded", "data": False,
                                     "messageCount": 6})
        for i in range(5):
            self.assertEqual(b.expect(chat(sender=a.id))["message"], "m%d" % i)
        b.assert_silent(match=chat("m5"))  # refused says are not delivered
        # Tokens come back at 5/s: poll until a say is accepted again.
        deadline = time.monotonic() + 3
        while a.request("say again")["status"] != "OK":
            self.assertLess(time.monotonic(), deadline, "rate limit never refilled")
            a.assert_silent(0.05, match={"context": "response"})  # pace the polling
        b.expect(chat("again", sender=a.id))


class IdleTimeout(RoomdTestCase):

    def test_idle_client_is_closed(self):
        self.server = self.start_server(idle_timeout=1)
        start = time.monotonic()
        idle = self.client()
        idle.expect_goodbye("idle timeout", timeout=5)
        elapsed = time.monotonic() - start
        self.assertGreater(elapsed, 0.9, "closed before idle_timeout")
        self.assertLess(elapsed, 3.5)

    def test_active_client_stays(self):
        self.server = self.start_server(idle_timeout=1)
        busy = self.client()
        for _ in range(5):  # 2 s of activity, a request every 0.4 s
            busy.assert_silent(0.4, match={"status": "Bye!"})
            self.assertOK(busy, "paramsView", {})


class OutputLimit(RoomdTestCase):

    SIZE = 4000  # bytes per say
    WINDOW = 8  # says the reader may lag behind: 32 kB, under output_limit
    MAX_MESSAGES = 6000  # 24 MB: far more than the kernel buffers of the slow client hold

    def test_slow_reader_disconnected_others_unharmed(self):
        self.server = self.start_server(output_limit=65536, say_rate=0,
                                        starting_rooms="defaultRoom,flood", default_room="flood")
        slow = self.client(rcvbuf=4096)
        slow_id = slow.id  # its last read until the end
        reader, flooder = self.client(), self.client()
        flooder_id = flooder.id

        got = []
        replies = []
        errors = []
        end_count = [None]  # messageCount of the last say, once sent
        progress = threading.Condition()

        def read_chat():
            # Until the "END" say; every say of the flooder is recorded in order.
            try:
                while True:
                    m = reader.expect(lambda m: m.get("from") == flooder_id and
                                      m.get("message") not in (ENTERED, LEFT), timeout=10)
                    reader.backlog.clear()  # announcements are not needed here
                    with progress:
                        if m["message"] == "END":
                            return
                        got.append(m["message"][:6])
                        progress.notify_all()
            except AssertionError as e:
                with progress:
                    errors.append(e)
                    progress.notify_all()

        def read_replies():
            # The flooder must read its replies too, or it would be the slow client.
            try:
                while True:
                    r = flooder.expect({"context": "response"}, timeout=10)
                    replies.append(r)
                    if r["status"] == "OK" and r["messageCount"] == end_count[0]:
                        return
            except AssertionError as e:
                errors.append(e)

        threads = [threading.Thread(target=read_chat, daemon=True),
                   threading.Thread(target=read_replies, daemon=True)]
        for t in threads:
            t.start()

        # Flood, but never more than WINDOW says ahead of the reader: a client that reads is
        # never the one over the limit, however the threads are scheduled. The slow client's
        # kernel buffers fill up, then roomd's output buffer for it passes 64 kB.
        pad = "x" * self.SIZE
        slow_dropped = None
        sent = 0
        limit = self.MAX_MESSAGES
        while sent < limit:
            with progress:
                if not progress.wait_for(lambda: len(got) >= sent - self.WINDOW or errors, 10):
                    self.fail("reader stuck at %d of %d" % (len(got), sent))
                if errors:
                    break
            flooder.send_line("say m%04d %s" % (sent, pad))
            sent += 1
            if sent % 50 == 0 and slow_dropped is None:
                slow_dropped = self.slow_log_line(slow_id, slow.local_port)
                if slow_dropped:
                    limit = sent + 2 * self.WINDOW  # a few more, to show the reader unharmed
        end_count[0] = flooder.count + 1
        flooder.send_line("say END")
        for t in threads:
            t.join(15)
        self.assertEqual(errors, [], "ports: slow %d, reader %d, flooder %d; log:\n%s" % (
            slow.local_port, reader.local_port, flooder.local_port, self.server.log_text()))
        self.assertEqual(got, ["m%04d " % i for i in range(sent)])
        self.assertIsNotNone(slow_dropped, "no log line about the slow client after %d says "
                             "(%d bytes); log:\n%s" % (sent, sent * self.SIZE,
                                                        self.server.log_text()))
        slow.wait_closed(timeout=10, keep=False)
        # The flooder got a reply for every say, and the reader is still served.
        self.assertEqual(sorted(r["messageCount"] for r in replies),
                         list(range(flooder.count - sent, flooder.count + 1)))
        self.assertTrue(all(r["status"] == "OK" for r in replies))
        reader.backlog.clear()
        self.assertOK(reader, "paramsView", {})

    def slow_log_line(self, slow_id, slow_port):
        # decision: roomd logs the drop with a line mentioning "output" and naming the
        # connection (its id or its remote port).
        for line in list(self.server.stderr_lines):
            if "output" in line.lower() and (slow_id in line or str(slow_port) in line):
                return line
        return None


if __name__ == "__main__":
    main()
