#!/usr/bin/env python3
"""Issue 11 (hardening), what clients and tokens send: numbers in patterns compared exactly
(item 5), the bytes of params and attributes capped per connection (item 6), token claims that
are not UTF-8 (item 7), NULs inside the strings used as names (item 9) and duplicate JSON keys
(item 10). Each test is named after what it guards and failed before the fix."""

import base64
import hashlib
import hmac
import json

from harness import RoomdTestCase, main, room_path

SECRET = "s3cret"
NOT_AUTHORIZED = "not authorized to join room"
INVALID_REQUEST = "invalid request"
INVALID_TOKEN = "invalid token"
TOO_LARGE = "params too large"
# max_params_bytes' default (roomd.conf(5)): 64 KiB of keys and values.
MAX_PARAMS_BYTES = 65536


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(claims, secret=SECRET):
    """An HS256 JWT; claims is a dict or the payload's raw bytes (for malformed ones)."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing = b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + b64url(payload)
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(sig)


def request(event, **fields):
    """A JSON request line, fields in order (json.dumps writes NUL as \\u0000)."""
    return json.dumps(dict(event=event, **fields), separators=(",", ":"))


class HardeningCase(RoomdTestCase):

    def setUp(self):
        self.server = self.start_server(starting_rooms="defaultRoom,lobby,vip",
                                        token_secret=SECRET)

    def set_pattern(self, room, pattern):
        self.server.admin_ok("PUT", "/api/rooms/%s/pattern" % room_path(room),
                             {"pattern": pattern})

    def patch_attributes(self, client, attributes):
        return self.server.admin("PATCH", "/api/connections/%s/attributes"
                                 % room_path(client.id), attributes)

    def attributes(self, client):
        return client.details()["attributes"]


class PatternNumbersExact(HardeningCase):
    """Item 5: 1234567890123456700 and 1234567890123456789 are one double, not one integer."""

    UID = 1234567890123456789
    NEAR = 1234567890123456700

    def test_token_for_a_near_uid_stays_out(self):
        self.set_pattern("vip", {"uid": self.UID})
        intruder = self.client()
        reply = intruder.request("auth " + make_token({"uid": self.NEAR}))
        self.assertEqual(reply["status"], "OK", reply)
        self.assertError(intruder, "roomChange vip", NOT_AUTHORIZED)
        self.assertError(intruder, "listenToRoom vip", NOT_AUTHORIZED)
        owner = self.client()
        self.assertEqual(owner.request("auth " + make_token({"uid": self.UID}))["status"], "OK")
        self.assertOK(owner, "roomChange vip", True)

    def test_admin_attribute_near_uid_stays_out(self):
        self.set_pattern("vip", {"uid": self.UID})
        c = self.client()
        self.assertEqual(self.patch_attributes(c, {"uid": self.NEAR})[0], 200)
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)
        # The double nearest to UID is not UID either.
        self.assertEqual(self.patch_attributes(c, {"uid": float(self.UID)})[0], 200)
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)
        self.assertEqual(self.patch_attributes(c, {"uid": self.UID})[0], 200)
        self.assertOK(c, "roomChange vip", True)

    def test_uint64_uid_compared_exactly(self):
        big = 18446744073709551615  # 2^64 - 1, beyond int64
        self.set_pattern("vip", {"uid": big})
        c = self.client()
        self.assertEqual(self.patch_attributes(c, {"uid": big - 1})[0], 200)
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)
        # 2^64 does not fit json-c's integers: refused, not held as 2^64 - 1.
        self.assertEqual(c.request("auth " + make_token(b'{"uid":18446744073709551616}'))
                         ["status"], INVALID_TOKEN)
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)
        self.assertEqual(self.patch_attributes(c, {"uid": big})[0], 200)
        self.assertOK(c, "roomChange vip", True)


class NulInNames(HardeningCase):
    """Item 9: a NUL (\\u0000) inside a key, value or room name cut it short."""

    def test_param_delete_with_nul_deletes_nothing(self):
        c = self.client()
        self.assertOK(c, "paramAdd a=1", None)
        self.assertError(c, request("paramDelete", key="a\u0000zzz"), INVALID_REQUEST)
        self.assertOK(c, "paramView a", "1")

    def test_param_view_with_nul_is_refused(self):
        c = self.client()
        self.assertOK(c, "paramAdd a=1", None)
        self.assertError(c, request("paramView", key="a\u0000zzz"), INVALID_REQUEST)

    def test_param_add_with_nul_stores_nothing(self):
        c = self.client()
        self.assertError(c, request("paramAdd", key="a\u0000b", value="v"), INVALID_REQUEST)
        self.assertError(c, request("paramAdd", key="k", value="v\u0000w"), INVALID_REQUEST)
        self.assertOK(c, "paramsView", {})
        # A non-string value is its JSON text, where the NUL stays escaped.
        self.assertOK(c, request("paramAdd", key="k", value=["\u0000"]), None)
        self.assertOK(c, "paramView k", '["\\u0000"]')

    def test_silence_room_with_nul_silences_nothing(self):
        c = self.client()
        self.assertOK(c, "listenToRoom lobby", True)
        self.assertError(c, request("silenceRoom", room="lobby\u0000zzz"), INVALID_REQUEST)
        self.assertEqual(c.details()["listeningRooms"], ["lobby"])

    def test_room_name_with_nul_joins_nothing(self):
        # decision: a room name holding a NUL keeps the answer the name rules give it
        # (control characters: invalid room name), as the admin API does.
        c = self.client()
        self.assertError(c, request("roomChange", room="lobby\u0000x"), "invalid room name")
        self.assertError(c, request("listenToRoom", room="lobby\u0000x"), "invalid room name")
        self.assertEqual(c.details()["room"], "defaultRoom")

    def test_key_with_nul_is_not_another_key(self):
        # json-c cuts an object's key at its NUL: "message\u0000x" would be "message".
        c = self.client()
        self.assertError(c, '{"event":"paramAdd","key\\u0000x":"a","value":"v"}', INVALID_REQUEST)
        self.assertOK(c, "paramsView", {})


class DuplicateKeys(HardeningCase):
    """Item 10: json-c keeps the last of two equal keys."""

    def test_duplicate_event_is_refused(self):
        c = self.client()
        self.assertError(c, '{"event":"say","event":"roomView"}', INVALID_REQUEST)
        self.assertError(c, '{"event":"say","\\u0065vent":"roomView"}', INVALID_REQUEST)

    def test_duplicate_argument_is_refused(self):
        c = self.client()
        self.assertError(c, '{"event":"paramAdd","key":"a","value":"1","key":"b"}',
                         INVALID_REQUEST)
        self.assertOK(c, "paramsView", {})
        self.assertError(c, '{"event":"roomChange","room":"vip","room":"lobby"}', INVALID_REQUEST)
        self.assertEqual(c.details()["room"], "defaultRoom")

    def test_token_with_two_role_claims_is_invalid(self):
        self.set_pattern("vip", {"role": "admin"})
        c = self.client()
        before = self.attributes(c)
        token = make_token(b'{"role":"user","role":"admin"}')
        self.assertError(c, "auth " + token, INVALID_TOKEN)
        self.assertJson(self.attributes(c), before)
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)


class TokenClaimsUtf8(HardeningCase):
    """Item 7 (tokens): claims become attributes, which go out in WebSocket text frames."""

    def test_claims_not_utf8_are_an_invalid_token(self):
        c = self.client()
        before = self.attributes(c)
        for payload in (b'{"role":"\xff"}', b'{"r\xc3":"admin"}',
                        b'{"a":{"b":["ok","\xed\xa0\x80"]}}'):
            with self.subTest(payload=payload):
                self.assertError(c, "auth " + make_token(payload), INVALID_TOKEN)
        self.assertJson(self.attributes(c), before)
        reply = c.request("auth " + make_token({"role": "caf\u00e9 \U0001f600"}))
        self.assertEqual(reply["data"]["role"], "caf\u00e9 \U0001f600")


class ParamsBytesCapped(HardeningCase):
    """Item 6: 64 params of 64 KB each made one connection hold 4 MB."""

    def test_params_capped_at_max_params_bytes(self):
        c = self.client()
        first = 40000  # "a" and its value: 40001 bytes
        self.assertOK(c, "paramAdd a=" + "x" * first, None)
        rest = MAX_PARAMS_BYTES - (1 + first) - 1  # "b" and its value fill the cap exactly
        self.assertError(c, "paramAdd b=" + "y" * (rest + 1), TOO_LARGE)
        self.assertOK(c, "paramView b")  # not stored
        self.assertOK(c, "paramAdd b=" + "y" * rest, None)
        self.assertError(c, "paramAdd c=z", TOO_LARGE)
        self.assertError(c, request("paramAdd", key="a", value="x" * (first + 1)), TOO_LARGE)
        # Making a value shorter always works, and frees room for another.
        self.assertOK(c, "paramAdd a=short", None)
        self.assertOK(c, "paramAdd c=z", None)
        self.assertOK(c, "paramDelete b", None)
        self.assertOK(c, "paramAdd d=" + "w" * 30000, None)
        self.assertOK(c, "paramsDelete", None)
        self.assertOK(c, "paramAdd e=" + "v" * 60000, None)

    def test_admin_attributes_capped_at_max_params_bytes(self):
        c = self.client()
        before = self.attributes(c)
        status, answer = self.patch_attributes(c, {"big": "x" * MAX_PARAMS_BYTES})
        self.assertEqual((status, answer), (400, {"error": TOO_LARGE}))
        self.assertJson(self.attributes(c), before)
        self.assertEqual(self.patch_attributes(c, {"one": "x" * 30000})[0], 200)
        self.assertEqual(self.patch_attributes(c, {"two": "y" * 30000})[0], 200)
        # All or none: the small key of a patch that does not fit is not set either.
        status, answer = self.patch_attributes(c, {"small": 1, "three": "z" * 10000})
        self.assertEqual((status, answer), (400, {"error": TOO_LARGE}))
        attrs = self.attributes(c)
        self.assertNotIn("small", attrs)
        self.assertNotIn("three", attrs)
        # Deleting and shrinking go through, and make room again.
        self.assertEqual(self.patch_attributes(c, {"one": None, "two": "y"})[0], 200)
        self.assertEqual(self.patch_attributes(c, {"small": 1, "three": "z" * 10000})[0], 200)

    def test_token_claims_capped_at_max_params_bytes(self):
        c = self.client()
        self.assertEqual(self.patch_attributes(c, {"held": "x" * (MAX_PARAMS_BYTES - 3000)})[0],
                         200)
        before = self.attributes(c)
        self.assertError(c, "auth " + make_token({"role": "admin", "bio": "b" * 4000}), TOO_LARGE)
        self.assertJson(self.attributes(c), before)  # authenticated not set either
        reply = c.request("auth " + make_token({"role": "admin"}))
        self.assertEqual((reply["status"], reply["data"]["role"]), ("OK", "admin"))


if __name__ == "__main__":
    main()
