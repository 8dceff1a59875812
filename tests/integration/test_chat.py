#!/usr/bin/env python3
"""Chat between TCP clients: who hears a say, exact chat lines, announcements, listeners.

Each test starts its own daemon, so no client of another test can be in its rooms.
"""

from harness import (ENTERED, LEFT, RoomdTestCase, chat, main, now_ms, welcome_line)

ROOMS = "defaultRoom,lobby,other"


class Chat(RoomdTestCase):

    def setUp(self):
        self.server = self.start_server(starting_rooms=ROOMS)

    def test_say_reaches_members_and_listeners_not_sender(self):
        a, b, c = self.client(), self.client(), self.client()
        listener, outsider = self.client(), self.client()
        self.assertOK(listener, "roomChange lobby", True)
        self.assertOK(listener, "listenToRoom defaultRoom", True)
        self.assertOK(outsider, "roomChange other", True)
        before = now_ms()
        self.assertOK(a, "say hello world")
        for receiver in (b, c, listener):
            raw = receiver.expect_raw(chat("hello world"))
            self.assertChat(raw, "hello world", "defaultRoom", a.id, before)
        a.assert_silent(match=chat("hello world"))
        outsider.assert_silent(match=chat("hello world"))

    def test_exact_chat_bytes(self):
        a, b = self.client(), self.client()
        before = now_ms()
        self.assertOK(a, 'say quote " back\\slash /slash end')
        raw = b.expect_raw(chat('quote " back\\slash /slash end'))
        self.assertChat(raw, 'quote " back\\slash /slash end', "defaultRoom", a.id, before)
        self.assertIn(b'"from":"%s"' % a.id.encode(), raw)  # a client's id is a string
        self.assertIn(b"/slash", raw)  # not escaped

    def test_non_ascii_say(self):
        a, b = self.client(), self.client()
        self.assertOK(a, "say h\u00e9llo \u2603 \U0001F600")
        b.expect(chat("h\u00e9llo \u2603 \U0001F600", "defaultRoom", a.id))

    def test_spaces_kept(self):
        a, b = self.client(), self.client()
        # decision: "the rest of the line" after "say " keeps leading and trailing spaces.
        self.assertOK(a, "say   three  leading, two trailing  ")
        b.expect(chat("  three  leading, two trailing  ", "defaultRoom", a.id))

    def test_announcements(self):
        a = self.client()
        lobby = self.client()
        self.assertOK(lobby, "roomChange lobby", True)
        b = self.client()  # joins defaultRoom at connect: announced to a
        raw = a.expect_raw(chat(ENTERED, "defaultRoom", b.id))
        self.assertChat(raw, ENTERED, "defaultRoom", b.id)
        # decision: a connection does not hear its own announcements (chat is "heard by others").
        b.assert_silent(match=chat(sender=b.id))

        self.assertOK(b, "roomChange lobby", True)
        a.expect(chat(LEFT, "defaultRoom", b.id))
        lobby.expect(chat(ENTERED, "lobby", b.id))
        self.assertOK(b, "roomLeave", True)
        lobby.expect(chat(LEFT, "lobby", b.id))

        # Listeners hear announcements of the rooms they listen to.
        self.assertOK(lobby, "listenToRoom defaultRoom", True)
        self.assertOK(b, "roomChange defaultRoom", True)
        lobby.expect(chat(ENTERED, "defaultRoom", b.id))
        a.expect(chat(ENTERED, "defaultRoom", b.id))
        b.assert_silent(match=chat(sender=b.id))

    def test_leaving_by_disconnect_and_quit_is_announced(self):
        # decision: a connection that goes away leaves its room, announced like roomLeave.
        a, b, c = self.client(), self.client(), self.client()
        b_id, c_id = b.id, c.id
        b.close()
        a.expect(chat(LEFT, "defaultRoom", b_id))
        c.send_line("quit")
        a.expect(chat(LEFT, "defaultRoom", c_id))
        data = a.request("roomView")["data"]
        self.assertEqual((list(data["members"]), data["membersCount"]), ([a.id], 1))

    def test_listener_hears_room_it_is_not_in(self):
        member, listener, lobby_mate = self.client(), self.client(), self.client()
        self.assertOK(member, "roomChange other", True)
        self.assertOK(listener, "roomChange lobby", True)
        self.assertOK(lobby_mate, "roomChange lobby", True)
        self.assertOK(listener, "listenToRoom other", True)
        self.assertOK(member, "say first")
        raw = listener.expect_raw(chat("first"))
        self.assertChat(raw, "first", "other", member.id)
        # A listener's own say goes to its room, not to the rooms it listens to.
        self.assertOK(listener, "say from lobby")
        lobby_mate.expect(chat("from lobby", "lobby", listener.id))
        member.assert_silent(match=chat("from lobby"))
        # Silenced: no more.
        self.assertOK(listener, "silenceRoom other", True)
        self.assertOK(member, "say second")
        listener.assert_silent(match=chat("second"))

    def test_per_sender_order(self):
        a, b = self.client(), self.client()
        a_id = a.id  # before the pipelined says, whose replies would get in the way
        lines = ["say n%03d" % i for i in range(100)]
        a.send_raw("".join(l + "\n" for l in lines).encode(), counted=100)
        for i in range(100):
            self.assertEqual(b.expect(chat(sender=a_id))["message"], "n%03d" % i)
        counts = sorted(a.expect({"context": "response"})["messageCount"] for _ in range(100))
        self.assertEqual(counts, list(range(2, 102)))


class NoAnnouncements(RoomdTestCase):

    def test_announcements_off(self):
        self.server = self.start_server(starting_rooms=ROOMS, announcements=False)
        a, lobby = self.client(), self.client()
        self.assertOK(lobby, "roomChange lobby", True)
        b = self.client()
        self.assertOK(b, "roomChange lobby", True)
        self.assertOK(b, "roomLeave", True)
        b.close()
        not_announcement = lambda m: m.get("message") in (ENTERED, LEFT)  # noqa: E731
        a.assert_silent(match=not_announcement)
        lobby.assert_silent(match=not_announcement)
        # Chat itself still works.
        self.assertOK(a, "roomChange lobby", True)
        self.assertOK(a, "say still here")
        lobby.expect(chat("still here", "lobby", a.id))


class NoDefaultRoom(RoomdTestCase):

    def test_empty_default_room(self):
        self.server = self.start_server(starting_rooms=ROOMS, default_room="")
        a = self.client()
        self.assertLine(a.welcome_raw, b'{"welcome":"Hello! Welcome to the roomd api",'
                                       b'"room":null,"context":"api"}\r\n')
        self.assertLine(a.welcome_raw, welcome_line(None))
        self.assertIsNone(a.details()["room"])
        self.assertError(a, "say anyone?", "connection not in a room")
        self.assertOK(a, "roomLeave", False)
        self.assertOK(a, "roomChange defaultRoom", True)
        b = self.client()  # joins nothing, so no announcement reaches a
        a.assert_silent(match=chat(ENTERED))
        self.assertOK(b, "roomChange defaultRoom", True)
        a.expect(chat(ENTERED, "defaultRoom", b.id))


class CustomDefaultRoom(RoomdTestCase):

    def test_default_room_lobby(self):
        self.server = self.start_server(starting_rooms=ROOMS, default_room="lobby")
        a = self.client()
        self.assertLine(a.welcome_raw, welcome_line("lobby"))
        self.assertEqual(a.details()["room"], "lobby")
        b = self.client()
        a.expect(chat(ENTERED, "lobby", b.id))


if __name__ == "__main__":
    main()
