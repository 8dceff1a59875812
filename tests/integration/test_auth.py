#!/usr/bin/env python3
"""The auth verb (PROTOCOL.md "Authentication patterns"): HS256 tokens whose claims become
attributes. Tokens are made here with hmac/hashlib, as an application backend would."""

import base64
import hashlib
import hmac
import json
import time

from harness import RoomdTestCase, main

NOT_AUTHORIZED = "not authorized to join room"
SECRET = "s3cret"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(claims, secret=SECRET, header=None):
    """A JWT signed with HMAC-SHA256 under secret, whatever the header claims."""
    header = header or {"alg": "HS256", "typ": "JWT"}
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing = b64url(json.dumps(header).encode()) + "." + b64url(payload)
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(sig)


class Tokens(RoomdTestCase):
    """The auth verb: HS256 tokens whose claims become attributes."""

    def setUp(self):
        self.server = self.start_server(starting_rooms="defaultRoom,lobby", token_secret=SECRET)

    def auth_ok(self, c, claims):
        """auth with a good token; returns the reply's data (the attributes)."""
        reply = c.request("auth " + make_token(claims))
        self.assertEqual(list(reply), ["status", "context", "data", "messageCount"], reply)
        self.assertEqual((reply["status"], reply["messageCount"]), ("OK", c.count))
        return reply["data"]

    def test_valid_token(self):
        c = self.client()
        before = c.details()["attributes"]
        exp = int(time.time()) + 60
        data = self.auth_ok(c, {"role": "admin", "level": 3, "exp": exp, "iat": exp - 60,
                                "nbf": exp - 120})
        expected = dict(before, role="admin", level=3, authenticated=True)
        self.assertJson(data, expected)  # exp, iat, nbf are not attributes
        self.assertJson(c.details()["attributes"], expected)

    def test_claims_open_a_pattern(self):
        self.server.admin_ok("POST", "/api/rooms", {"room": "vip"})
        self.server.admin_ok("PUT", "/api/rooms/vip/pattern",
                             {"pattern": {"authenticated": True, "role": "admin"}})
        c = self.client()
        self.assertError(c, "roomChange vip", NOT_AUTHORIZED)
        self.auth_ok(c, {"role": "admin"})
        self.assertOK(c, "roomChange vip", True)

    def test_built_ins_are_not_claimed(self):
        c = self.client()
        before = c.details()["attributes"]
        data = self.auth_ok(c, {"id": "evil", "type": "websocket", "remoteIP": "10.0.0.1",
                                "remotePort": 1, "connectedAt": 0, "team": "red"})
        self.assertJson(data, dict(before, team="red", authenticated=True))

    def test_authenticated_claim_wins(self):
        c = self.client()
        data = self.auth_ok(c, {"authenticated": False, "team": "blue"})
        self.assertJson(data["authenticated"], False)
        self.assertEqual(data["team"], "blue")

    def test_expired(self):
        c = self.client()
        self.assertError(c, "auth " + make_token({"exp": int(time.time()) - 60}), "token expired")
        self.assertJson(c.details()["attributes"]["authenticated"], False)

    def test_invalid_tokens(self):
        c = self.client()
        future = int(time.time()) + 3600
        bad = {
            "other secret": make_token({"role": "admin"}, secret="wrong"),
            "alg none": make_token({"role": "admin"}, header={"alg": "none"}).rsplit(".", 1)[0]
                        + ".",
            "alg HS512": make_token({"role": "admin"}, header={"alg": "HS512", "typ": "JWT"}),
            "payload not JSON": make_token(b"{not json"),
            "string exp": make_token({"exp": "tomorrow"}),
            "string nbf": make_token({"nbf": "yesterday"}),
            "nbf in the future": make_token({"nbf": future}),
            "two parts": "abc.def",
            "garbage": "not-a-token",
            # decision: auth without a token is an invalid token (no other error text exists).
            "empty": "",
        }
        for name, token in bad.items():
            with self.subTest(name):
                self.assertError(c, ("auth " + token).rstrip(), "invalid token")
        self.assertJson(c.details()["attributes"]["authenticated"], False)

    def test_tampered_payload(self):
        c = self.client()
        head, _, sig = make_token({"role": "user"}).split(".")
        forged = ".".join([head, b64url(b'{"role":"admin"}'), sig])
        self.assertError(c, "auth " + forged, "invalid token")


if __name__ == "__main__":
    main()
