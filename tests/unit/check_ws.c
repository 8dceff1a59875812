/* check_ws.c -- unit tests of the WebSocket transport's hand-written parts
 * (src/proto_ws.h): the server frame header, the accept key, the HTTP
 * request that opens a connection, and the frame stream fed raw bytes.
 *
 * PROTOCOL.md "Transports" and RFC 6455: client frames are masked, reserved
 * bits and opcodes are errors (1002), control frames are at most 125 bytes
 * and never fragmented, a text message must be UTF-8 (1007), a message over
 * max_line is refused and the connection lives, a binary message is
 * reported (roomd answers it with an error), a ping gets a pong, a close is
 * echoed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_ws.h"

#define MAX_MSG 200
#define OP_CONT 0x0
#define OP_TEXT 0x1
#define OP_BINARY 0x2
#define OP_CLOSE 0x8
#define OP_PING 0x9
#define OP_PONG 0xA
#define MASK_BIT 0x80
#define FIN_BIT 0x80

/* =========================================================== frames out */

START_TEST(test_header_7_bit)
{
    uint8_t h[WS_FRAME_HEADER_MAX];
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 0), 2);
    ck_assert_uint_eq(h[0], 0x81);
    ck_assert_uint_eq(h[1], 0);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 125), 2);
    ck_assert_uint_eq(h[1], 125);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_CLOSE, 2), 2);
    ck_assert_uint_eq(h[0], 0x88);
    ck_assert_uint_eq(h[1], 2);
}
END_TEST

START_TEST(test_header_16_bit)
{
    uint8_t h[WS_FRAME_HEADER_MAX];
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 126), 4);
    ck_assert_uint_eq(h[1], 126);
    ck_assert_uint_eq(h[2], 0);
    ck_assert_uint_eq(h[3], 126);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 65535), 4);
    ck_assert_uint_eq(h[2], 0xff);
    ck_assert_uint_eq(h[3], 0xff);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 0x1234), 4);
    ck_assert_uint_eq(h[2], 0x12);
    ck_assert_uint_eq(h[3], 0x34);
}
END_TEST

START_TEST(test_header_64_bit)
{
    uint8_t h[WS_FRAME_HEADER_MAX];
    static const uint8_t want_65536[] = {0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0};
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 65536), 10);
    ck_assert_mem_eq(h, want_65536, 10);
    static const uint8_t want_big[] = {0x81, 127, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 0x0123456789abcdefULL), 10);
    ck_assert_mem_eq(h, want_big, 10);
}
END_TEST

/* ============================================================ accept key */

START_TEST(test_accept_key_rfc_example)
{
    char out[WS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    ck_assert(ws_accept_key(key, strlen(key), out));
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

/* ============================================================= handshake */

/* RFC 6455 1.3's request, but from a page of the same host: its Origin
 * http://example.com is another site than server.example.com, which an empty
 * websocket_origins refuses (test_ws_origin.py covers that). */
#define GOOD_UPGRADE                                                                               \
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"                     \
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                       \
    "Origin: http://server.example.com\r\nSec-WebSocket-Version: 13\r\n\r\n"

struct handshake {
    enum ws_http_result r;
    size_t consumed;
    struct ws_http_reply reply;
};

/* Feed BUF in pieces of STEP bytes (0: all at once), as a socket might. */
static struct handshake feed(const char *buf, size_t len, size_t step)
{
    struct handshake hs;
    memset(&hs, 0, sizeof(hs));
    struct ws_http *h = ws_http_new();
    ck_assert_ptr_nonnull(h);
    size_t off = 0;
    hs.r = WS_HTTP_MORE;
    while (off < len && hs.r == WS_HTTP_MORE) {
        size_t n = step && step < len - off ? step : len - off;
        size_t used = 0;
        hs.r = ws_http_feed(h, buf + off, n, &used, &hs.reply);
        ck_assert_uint_le(used, n);
        hs.consumed += used;
        if (hs.r == WS_HTTP_MORE)
            ck_assert_uint_eq(used, n);
        off += used;
    }
    ws_http_free(h);
    return hs;
}

#define FEED(lit) feed((lit), sizeof(lit) - 1, 0)

static bool head_has(const struct handshake *hs, const char *text)
{
    char head[WS_HTTP_REPLY_HEAD_MAX + 1];
    memcpy(head, hs->reply.head, hs->reply.head_len);
    head[hs->reply.head_len] = '\0';
    return strstr(head, text) != NULL;
}

START_TEST(test_upgrade)
{
    struct handshake hs = FEED(GOOD_UPGRADE);
    ck_assert_int_eq(hs.r, WS_HTTP_DONE);
    ck_assert_int_eq(hs.reply.status, 101);
    ck_assert_uint_eq(hs.consumed, sizeof(GOOD_UPGRADE) - 1);
    ck_assert(head_has(&hs, "HTTP/1.1 101 Switching Protocols\r\n"));
    ck_assert(head_has(&hs, "\r\nUpgrade: websocket\r\n"));
    ck_assert(head_has(&hs, "\r\nConnection: Upgrade\r\n"));
    ck_assert(head_has(&hs, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
    ck_assert_uint_eq(hs.reply.body_len, 0);
}
END_TEST

START_TEST(test_upgrade_byte_by_byte)
{
    struct handshake hs = feed(GOOD_UPGRADE, sizeof(GOOD_UPGRADE) - 1, 1);
    ck_assert_int_eq(hs.r, WS_HTTP_DONE);
    ck_assert_int_eq(hs.reply.status, 101);
    ck_assert(head_has(&hs, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
}
END_TEST

START_TEST(test_upgrade_then_frames)
{
    /* Bytes after the head are frames: not consumed by the handshake. */
    static const char buf[] = GOOD_UPGRADE "\x81\x85"
                                           "abcd";
    struct handshake hs = feed(buf, sizeof(buf) - 1, 0);
    ck_assert_int_eq(hs.reply.status, 101);
    ck_assert_uint_eq(hs.consumed, sizeof(GOOD_UPGRADE) - 1);
}
END_TEST

START_TEST(test_upgrade_header_case_and_lists)
{
    struct handshake hs = FEED("GET / HTTP/1.1\r\nhost: x\r\nupgrade:  WebSocket \r\n"
                               "connection: keep-alive, Upgrade\r\n"
                               "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "SEC-WEBSOCKET-VERSION: 13\r\n\r\n");
    ck_assert_int_eq(hs.reply.status, 101);
}
END_TEST

START_TEST(test_upgrade_missing_key)
{
    struct handshake hs =
        FEED("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n");
    ck_assert_int_eq(hs.r, WS_HTTP_DONE);
    ck_assert_int_eq(hs.reply.status, 400);
    ck_assert(head_has(&hs, "HTTP/1.1 400 Bad Request\r\n"));
    ck_assert(head_has(&hs, "Connection: close\r\n"));
}
END_TEST

START_TEST(test_upgrade_bad_keys)
{
    static const char *const keys[] = {
        "dGhlIHNhbXBsZSBub25jZQ", /* no padding */
        "dGhlIHNhbXBsZSBub25jZQ=!",
        "dGhlIHNhbXBsZS*ub25jZQ==",
        "c2hvcnQ=",
        "dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char req[512];
        int n =
            snprintf(req, sizeof(req),
                     "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     keys[i]);
        struct handshake hs = feed(req, (size_t)n, 0);
        ck_assert_msg(hs.reply.status == 400, "key %s: status %d", keys[i], hs.reply.status);
    }
}
END_TEST

START_TEST(test_upgrade_wrong_version)
{
    struct handshake hs =
        FEED("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 8\r\n\r\n");
    ck_assert_int_eq(hs.reply.status, 400);
    ck_assert(head_has(&hs, "\r\nSec-WebSocket-Version: 13\r\n"));
    hs = FEED("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    ck_assert_int_eq(hs.reply.status, 400);
}
END_TEST

START_TEST(test_upgrade_needs_connection_and_http11)
{
    struct handshake hs = FEED("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n");
    ck_assert_int_eq(hs.reply.status, 400);
    hs = FEED("GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    ck_assert_int_eq(hs.reply.status, 400);
}
END_TEST

START_TEST(test_upgrade_without_host_is_400)
{
    /* RFC 6455 4.1 / RFC 7230 5.4: exactly one Host header, else 400. */
    struct handshake hs = FEED("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n");
    ck_assert_int_eq(hs.r, WS_HTTP_DONE);
    ck_assert_int_eq(hs.reply.status, 400);
    hs = FEED("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n");
    ck_assert_int_eq(hs.reply.status, 400);
    hs = FEED("GET / HTTP/1.1\r\nhost: a\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n");
    ck_assert_int_eq(hs.reply.status, 101);
}
END_TEST

START_TEST(test_non_get)
{
    struct handshake hs = FEED("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    ck_assert_int_eq(hs.reply.status, 405);
    ck_assert(head_has(&hs, "HTTP/1.1 405 Method Not Allowed\r\n"));
    ck_assert(head_has(&hs, "\r\nAllow: GET\r\n"));
    hs = FEED("PUT /roomd.js HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
    ck_assert_int_eq(hs.reply.status, 405);
}
END_TEST

START_TEST(test_static_paths)
{
    struct handshake hs = FEED("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(hs.reply.status, 200);
    ck_assert(head_has(&hs, "Content-Type: text/html; charset=utf-8\r\n"));
    ck_assert_uint_gt(hs.reply.body_len, 0);
    char want[64];
    snprintf(want, sizeof(want), "Content-Length: %zu\r\n", hs.reply.body_len);
    ck_assert(head_has(&hs, want));
    ck_assert_ptr_nonnull(memmem(hs.reply.body, hs.reply.body_len, "/roomd.js", 9));

    hs = FEED("GET /roomd.js?v=1 HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(hs.reply.status, 200);
    ck_assert(head_has(&hs, "Content-Type: text/javascript; charset=utf-8\r\n"));
    ck_assert_ptr_nonnull(memmem(hs.reply.body, hs.reply.body_len, "class Roomd", 11));

    static const char *const missing[] = {"GET /nope HTTP/1.1\r\n\r\n",
                                          "GET /index.html HTTP/1.1\r\n\r\n",
                                          "GET /roomd.js/ HTTP/1.1\r\n\r\n"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        hs = feed(missing[i], strlen(missing[i]), 0);
        ck_assert_int_eq(hs.reply.status, 404);
        ck_assert(head_has(&hs, "HTTP/1.1 404 Not Found\r\n"));
    }
}
END_TEST

START_TEST(test_malformed)
{
    static const char *const bad[] = {
        "garbage\r\n\r\n",
        "GET / HTTP/1.1\r\nno colon\r\n\r\n",
        "GET / HTTP/9.9.9\r\n\r\n",
        "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        "GET\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct handshake hs = feed(bad[i], strlen(bad[i]), 0);
        ck_assert_msg(hs.r == WS_HTTP_DONE && hs.reply.status == 400, "request %zu", i);
    }
}
END_TEST

START_TEST(test_incomplete_waits)
{
    struct handshake hs = FEED("GET / HTTP/1.1\r\nHost: x\r\n");
    ck_assert_int_eq(hs.r, WS_HTTP_MORE);
}
END_TEST

START_TEST(test_oversized_head)
{
    size_t len = WS_HTTP_MAX_HEAD + 100;
    char *req = malloc(len);
    ck_assert_ptr_nonnull(req);
    static const char start[] = "GET / HTTP/1.1\r\nX-Big: ";
    memcpy(req, start, sizeof(start) - 1);
    memset(req + sizeof(start) - 1, 'a', len - (sizeof(start) - 1));
    for (size_t step = 0; step <= 1000; step += 1000) {
        struct handshake hs = feed(req, len, step);
        ck_assert_int_eq(hs.r, WS_HTTP_DONE);
        ck_assert_int_eq(hs.reply.status, 400);
        ck_assert_uint_le(hs.consumed, WS_HTTP_MAX_HEAD);
    }
    /* A head of exactly the cap still fits. */
    static const char end[] = "\r\n\r\n";
    size_t fit = WS_HTTP_MAX_HEAD;
    memcpy(req + fit - (sizeof(end) - 1), end, sizeof(end) - 1);
    struct handshake hs = feed(req, fit, 0);
    ck_assert_int_eq(hs.reply.status, 200);
    free(req);
}
END_TEST

/* ============================================================ frames in */

struct got_msg {
    enum ws_msg_kind kind;
    char text[MAX_MSG + 1];
    size_t len;
};

struct sink {
    struct got_msg msgs[16];
    int nmsgs;
    uint8_t out[4096];
    size_t outlen;
    bool stop_after_one; /* message() returns false after the first message */
};

static bool sink_message(void *arg, enum ws_msg_kind kind, const char *data, size_t len)
{
    struct sink *s = arg;
    ck_assert_int_lt(s->nmsgs, 16);
    struct got_msg *m = &s->msgs[s->nmsgs++];
    m->kind = kind;
    m->len = len;
    ck_assert_uint_le(len, MAX_MSG);
    if (kind == WS_MSG_TEXT)
        memcpy(m->text, data, len);
    else
        ck_assert_ptr_null(data);
    m->text[len] = '\0';
    return !s->stop_after_one;
}

static void sink_output(void *arg, const uint8_t *data, size_t len)
{
    struct sink *s = arg;
    ck_assert_uint_le(s->outlen + len, sizeof(s->out));
    memcpy(s->out + s->outlen, data, len);
    s->outlen += len;
}

static const struct ws_stream_ops sink_ops = {sink_message, sink_output};

/* A client frame: masked (unless MASK is false), with the length in its
 * minimal form unless FORCE_LEN picks 16 or 64. */
static size_t frame(uint8_t *out, unsigned first_byte, bool mask, const void *payload, size_t len,
                    int force_len)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    out[n++] = (uint8_t)first_byte;
    uint8_t m = mask ? MASK_BIT : 0;
    if (len < 126 && !force_len) {
        out[n++] = (uint8_t)(m | len);
    } else if (len < 65536 && force_len != 64) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (mask) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const uint8_t *)payload)[i] ^ (mask ? key[i % 4] : 0);
    return n + len;
}

#define TEXT(buf, lit) frame((buf), FIN_BIT | OP_TEXT, true, (lit), sizeof(lit) - 1, 0)

static struct ws_stream *stream(struct sink *sink)
{
    memset(sink, 0, sizeof(*sink));
    struct ws_stream *s = ws_stream_new(MAX_MSG, &sink_ops, sink);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* The close frame the stream sent, as its code (-1: none, 0: no code). */
static int close_code(const struct sink *sink)
{
    for (size_t i = 0; i + 1 < sink->outlen;) {
        uint8_t op = sink->out[i] & 0x0f, len = sink->out[i + 1] & 0x7f;
        ck_assert_uint_lt(len, 126);                       /* control frames only here */
        ck_assert_uint_eq(sink->out[i + 1] & MASK_BIT, 0); /* server frames unmasked */
        if (op == OP_CLOSE)
            return len >= 2 ? sink->out[i + 2] << 8 | sink->out[i + 3] : 0;
        i += 2u + len;
    }
    return -1;
}

START_TEST(test_text_message)
{
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    uint8_t buf[256];
    size_t n = TEXT(buf, "roomView");
    n += TEXT(buf + n, "say h\xc3\xa9llo");
    ck_assert(ws_stream_feed(s, buf, n));
    ck_assert_int_eq(sink.nmsgs, 2);
    ck_assert_int_eq(sink.msgs[0].kind, WS_MSG_TEXT);
    ck_assert_str_eq(sink.msgs[0].text, "roomView");
    ck_assert_str_eq(sink.msgs[1].text, "say h\xc3\xa9llo");
    ck_assert_uint_eq(sink.outlen, 0);
    ws_stream_free(s);
}
END_TEST

START_TEST(test_byte_by_byte)
{
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    uint8_t buf[512], payload[150]; /* 16-bit length form */
    memset(payload, 'y', sizeof(payload));
    size_t n = TEXT(buf, "paramsView");
    n += frame(buf + n, FIN_BIT | OP_TEXT, true, payload, sizeof(payload), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert(ws_stream_feed(s, buf + i, 1));
    ck_assert_int_eq(sink.nmsgs, 2);
    ck_assert_str_eq(sink.msgs[0].text, "paramsView");
    ck_assert_uint_eq(sink.msgs[1].len, sizeof(payload));
    ws_stream_free(s);
}
END_TEST

/* An idle session holds no parser: wslay's ~8 KiB of state exists only
 * while a frame or a fragmented message is being read (issue 15: an idle
 * WebSocket costs what an idle line connection costs). */
START_TEST(test_parser_only_while_reading)
{
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    ck_assert(ws_stream_idle(s));
    uint8_t buf[512], payload[150];
    memset(payload, 'z', sizeof(payload));
    size_t n = frame(buf, FIN_BIT | OP_TEXT, true, payload, sizeof(payload), 0);
    ck_assert(ws_stream_feed(s, buf, 1)); /* half a header */
    ck_assert_int_eq(sink.nmsgs, 0);
    ck_assert(ws_stream_feed(s, buf + 1, 20)); /* header and part of the payload */
    ck_assert(!ws_stream_idle(s));
    ck_assert(ws_stream_feed(s, buf + 21, n - 21));
    ck_assert_int_eq(sink.nmsgs, 1);
    ck_assert_uint_eq(sink.msgs[0].len, sizeof(payload));
    ck_assert(ws_stream_idle(s));

    /* A fragmented message keeps it, across a ping, until its last frame;
     * then a whole message and half of the next frame in one feed. */
    n = frame(buf, OP_TEXT, true, "say ", 4, 0);
    ck_assert(ws_stream_feed(s, buf, n));
    ck_assert(!ws_stream_idle(s));
    n = frame(buf, FIN_BIT | OP_PING, true, "p", 1, 0);
    ck_assert(ws_stream_feed(s, buf, n));
    ck_assert(!ws_stream_idle(s));
    n = frame(buf, FIN_BIT | OP_CONT, true, "hi", 2, 0);
    size_t m = TEXT(buf + n, "roomView");
    ck_assert(ws_stream_feed(s, buf, n + m - 3));
    ck_assert_int_eq(sink.nmsgs, 2);
    ck_assert_str_eq(sink.msgs[1].text, "say hi");
    ck_assert(!ws_stream_idle(s));
    ck_assert(ws_stream_feed(s, buf + n + m - 3, 3));
    ck_assert_int_eq(sink.nmsgs, 3);
    ck_assert_str_eq(sink.msgs[2].text, "roomView");
    ck_assert(ws_stream_idle(s));
    ck_assert_uint_gt(sink.outlen, 0); /* the pong */
    ws_stream_free(s);
}
END_TEST

START_TEST(test_fragments_and_ping)
{
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    uint8_t buf[256];
    size_t n = frame(buf, OP_TEXT, true, "say ", 4, 0);
    n += frame(buf + n, FIN_BIT | OP_PING, true, "hi", 2, 0);
    n += frame(buf + n, OP_CONT, true, "frag", 4, 0);
    n += frame(buf + n, FIN_BIT | OP_CONT, true, "ment", 4, 0);
    ck_assert(ws_stream_feed(s, buf, n));
    ck_assert_int_eq(sink.nmsgs, 1);
    ck_assert_str_eq(sink.msgs[0].text, "say fragment");
    static const uint8_t pong[] = {FIN_BIT | OP_PONG, 2, 'h', 'i'};
    ck_assert_uint_eq(sink.outlen, sizeof(pong));
    ck_assert_mem_eq(sink.out, pong, sizeof(pong));
    ws_stream_free(s);
}
END_TEST

START_TEST(test_binary_and_empty)
{
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    uint8_t buf[256];
    size_t n = frame(buf, FIN_BIT | OP_BINARY, true, "\x00\xff", 2, 0);
    n += frame(buf + n, FIN_BIT | OP_TEXT, true, "", 0, 0); /* not reported */
    n += TEXT(buf + n, "x");
    ck_assert(ws_stream_feed(s, buf, n));
    ck_assert_int_eq(sink.nmsgs, 2);
    ck_assert_int_eq(sink.msgs[0].kind, WS_MSG_BINARY);
    ck_assert_int_eq(sink.msgs[1].kind, WS_MSG_TEXT);
    ws_stream_free(s);
}
END_TEST

START_TEST(test_too_long_and_boundary)
{
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    uint8_t big[MAX_MSG + 1];
    memset(big, 'x', sizeof(big));
    uint8_t buf[1024];
    size_t n = frame(buf, FIN_BIT | OP_TEXT, true, big, MAX_MSG + 1, 0);
    n += frame(buf + n, FIN_BIT | OP_TEXT, true, big, MAX_MSG, 0);
    /* Over the limit only when the fragments are joined. */
    n += frame(buf + n, OP_TEXT, true, big, MAX_MSG / 2, 0);
    n += frame(buf + n, FIN_BIT | OP_CONT, true, big, MAX_MSG / 2 + 1, 0);
    n += TEXT(buf + n, "after");
    ck_assert(ws_stream_feed(s, buf, n));
    ck_assert_int_eq(sink.nmsgs, 4);
    ck_assert_int_eq(sink.msgs[0].kind, WS_MSG_TOO_LONG);
    ck_assert_int_eq(sink.msgs[1].kind, WS_MSG_TEXT);
    ck_assert_uint_eq(sink.msgs[1].len, MAX_MSG);
    ck_assert_int_eq(sink.msgs[2].kind, WS_MSG_TOO_LONG);
    ck_assert_str_eq(sink.msgs[3].text, "after");
    ck_assert_uint_eq(sink.outlen, 0);
    ws_stream_free(s);
}
END_TEST

START_TEST(test_too_long_64_bit_length)
{
    /* A frame declaring 2^40 bytes: refused before its payload arrives. */
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    uint8_t buf[] = {
        FIN_BIT | OP_TEXT, MASK_BIT | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4, 'x', 'y'};
    ck_assert(ws_stream_feed(s, buf, sizeof(buf)));
    ck_assert_int_eq(sink.nmsgs, 0);
    ws_stream_free(s);
}
END_TEST

/* Feed DATA to a fresh stream; it must close with CODE and report nothing. */
static void expect_close(const uint8_t *data, size_t len, int code)
{
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    ck_assert(!ws_stream_feed(s, data, len));
    ck_assert_int_eq(close_code(&sink), code);
    ck_assert(ws_stream_close_sent(s));
    ck_assert_int_eq(sink.nmsgs, 0);
    /* Nothing is read or sent after the close. */
    size_t out = sink.outlen;
    uint8_t more[32];
    size_t n = TEXT(more, "roomView");
    ck_assert(!ws_stream_feed(s, more, n));
    ck_assert_int_eq(sink.nmsgs, 0);
    ck_assert_uint_eq(sink.outlen, out);
    ws_stream_free(s);
}

START_TEST(test_invalid_utf8)
{
    static const char *const bad[] = {"\xc3\x28", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf",
                                      "abc\xe2\x98"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t buf[64];
        size_t n = frame(buf, FIN_BIT | OP_TEXT, true, bad[i], strlen(bad[i]), 0);
        expect_close(buf, n, WS_CLOSE_INVALID_DATA);
    }
    /* A sequence cut between two fragments is fine once joined... */
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    uint8_t buf[64];
    size_t n = frame(buf, OP_TEXT, true, "\xe2\x98", 2, 0);
    n += frame(buf + n, FIN_BIT | OP_CONT, true, "\x83", 1, 0);
    ck_assert(ws_stream_feed(s, buf, n));
    ck_assert_int_eq(sink.nmsgs, 1);
    ck_assert_str_eq(sink.msgs[0].text, "\xe2\x98\x83");
    ws_stream_free(s);
    /* ...and not when the message ends inside it. */
    n = frame(buf, OP_TEXT, true, "\xe2\x98", 2, 0);
    n += frame(buf + n, FIN_BIT | OP_CONT, true, "x", 1, 0);
    expect_close(buf, n, WS_CLOSE_INVALID_DATA);
}
END_TEST

START_TEST(test_protocol_errors)
{
    uint8_t buf[512], payload[126];
    memset(payload, 'p', sizeof(payload));
    size_t n;

    n = frame(buf, FIN_BIT | OP_TEXT, false, "roomView", 8, 0); /* unmasked */
    expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
    for (unsigned rsv = 1; rsv <= 4; rsv <<= 1) {
        n = frame(buf, FIN_BIT | (rsv << 4) | OP_TEXT, true, "x", 1, 0);
        expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
    }
    for (unsigned op = 3; op <= 0xf; op++) {
        if (op == OP_CLOSE || op == OP_PING || op == OP_PONG)
            continue;
        n = frame(buf, FIN_BIT | op, true, "x", 1, 0);
        expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
    }
    n = frame(buf, FIN_BIT | OP_PING, true, payload, 126, 0); /* control over 125 */
    expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
    n = frame(buf, OP_PING, true, "x", 1, 0); /* fragmented control */
    expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
    n = frame(buf, FIN_BIT | OP_CONT, true, "x", 1, 0); /* continuation first */
    expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
    n = frame(buf, OP_TEXT, true, "a", 1, 0); /* a new message inside one */
    n += frame(buf + n, FIN_BIT | OP_TEXT, true, "b", 1, 0);
    expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
    n = frame(buf, FIN_BIT | OP_CLOSE, true, "\x03", 1, 0); /* 1-byte close body */
    expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
    n = frame(buf, FIN_BIT | OP_CLOSE, true, "\x03\xe7", 2, 0); /* close code 999 */
    expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
    n = frame(buf, FIN_BIT | OP_TEXT, true, "hello", 5, 16); /* non-minimal length */
    expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
    n = frame(buf, FIN_BIT | OP_TEXT, true, "hello", 5, 64);
    expect_close(buf, n, WS_CLOSE_PROTOCOL_ERROR);
}
END_TEST

START_TEST(test_client_close_is_echoed)
{
    uint8_t buf[64];
    size_t n = frame(buf, FIN_BIT | OP_CLOSE, true,
                     "\x03\xe8"
                     "bye",
                     5, 0);
    expect_close(buf, n, 1000);
    n = frame(buf, FIN_BIT | OP_CLOSE, true, "", 0, 0); /* no code: echoed without one */
    expect_close(buf, n, 0);
}
END_TEST

START_TEST(test_server_close)
{
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    ws_stream_close(s, 1001);
    ws_stream_close(s, 1000); /* once only */
    static const uint8_t want[] = {FIN_BIT | OP_CLOSE, 2, 0x03, 0xe9};
    ck_assert_uint_eq(sink.outlen, sizeof(want));
    ck_assert_mem_eq(sink.out, want, sizeof(want));
    ck_assert(ws_stream_close_sent(s));
    uint8_t buf[64];
    size_t n = frame(buf, FIN_BIT | OP_PING, true, "x", 1, 0);
    ck_assert(!ws_stream_feed(s, buf, n)); /* no pong after the close */
    ck_assert_uint_eq(sink.outlen, sizeof(want));
    ws_stream_free(s);
}
END_TEST

START_TEST(test_handler_stops_reading)
{
    struct sink sink;
    struct ws_stream *s = stream(&sink);
    sink.stop_after_one = true; /* "quit": the connection is closing */
    uint8_t buf[64];
    size_t n = TEXT(buf, "quit");
    n += TEXT(buf + n, "roomView");
    ws_stream_feed(s, buf, n);
    ck_assert_int_eq(sink.nmsgs, 1);
    ck_assert_str_eq(sink.msgs[0].text, "quit");
    ws_stream_free(s);
}
END_TEST

static Suite *ws_suite(void)
{
    Suite *s = suite_create("ws");
    TCase *tc = tcase_create("frames out");
    tcase_add_test(tc, test_header_7_bit);
    tcase_add_test(tc, test_header_16_bit);
    tcase_add_test(tc, test_header_64_bit);
    suite_add_tcase(s, tc);
    tc = tcase_create("handshake");
    tcase_add_test(tc, test_accept_key_rfc_example);
    tcase_add_test(tc, test_upgrade);
    tcase_add_test(tc, test_upgrade_byte_by_byte);
    tcase_add_test(tc, test_upgrade_then_frames);
    tcase_add_test(tc, test_upgrade_header_case_and_lists);
    tcase_add_test(tc, test_upgrade_missing_key);
    tcase_add_test(tc, test_upgrade_bad_keys);
    tcase_add_test(tc, test_upgrade_wrong_version);
    tcase_add_test(tc, test_upgrade_needs_connection_and_http11);
    tcase_add_test(tc, test_upgrade_without_host_is_400);
    tcase_add_test(tc, test_non_get);
    tcase_add_test(tc, test_static_paths);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_incomplete_waits);
    tcase_add_test(tc, test_oversized_head);
    suite_add_tcase(s, tc);
    tc = tcase_create("frames in");
    tcase_add_test(tc, test_text_message);
    tcase_add_test(tc, test_byte_by_byte);
    tcase_add_test(tc, test_fragments_and_ping);
    tcase_add_test(tc, test_parser_only_while_reading);
    tcase_add_test(tc, test_binary_and_empty);
    tcase_add_test(tc, test_too_long_and_boundary);
    tcase_add_test(tc, test_too_long_64_bit_length);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_protocol_errors);
    tcase_add_test(tc, test_client_close_is_echoed);
    tcase_add_test(tc, test_server_close);
    tcase_add_test(tc, test_handler_stops_reading);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ws_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
