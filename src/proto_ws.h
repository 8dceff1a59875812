/* proto_ws.h -- the WebSocket transport's parsers, apart from sockets.
 *
 * proto_ws.c is the transport (struct conn_proto ws_proto, in proto.h); what
 * it does with bytes lives behind the two contexts below, which are fed
 * plain buffers, so the unit tests and the fuzzer drive them without a
 * socket or an event loop:
 *   - struct ws_http reads the HTTP/1.1 request that opens a connection and
 *     decides the answer: the 101 upgrade, a static file, or an error;
 *   - struct ws_stream reads RFC 6455 frames (libwslay does the framing)
 *     and hands out whole messages; its own output (pongs, close frames)
 *     goes to a callback.
 * Outgoing text frames are written by the transport itself with
 * ws_frame_header(): that is the fan-out hot path and needs no state. */
#ifndef ROOMD_PROTO_WS_H
#define ROOMD_PROTO_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ handshake */

/* The request head (request line and headers) may take at most this many
 * bytes: a browser's upgrade request is well under 1 KiB even with cookies
 * for the host, and the cap bounds what a connection holds before it is a
 * WebSocket.  A longer head is answered 400 and closed. */
#define WS_HTTP_MAX_HEAD 8192

/* Sec-WebSocket-Accept: base64 of a 20-byte SHA-1 is 28 characters. */
#define WS_ACCEPT_LEN 28

/* The status line and headers of any answer fit in this (the longest is
 * the 101 with its accept key, about 130 bytes). */
#define WS_HTTP_REPLY_HEAD_MAX 512

enum ws_http_result {
    WS_HTTP_MORE, /* the head is not complete yet: feed more */
    WS_HTTP_DONE, /* the reply is ready: status 101 upgrades, others close */
};

struct ws_http_reply {
    int status; /* 101, 200, 400, 404 or 405 */
    char head[WS_HTTP_REPLY_HEAD_MAX];
    size_t head_len;
    const char *body; /* static bytes: the file or a short error text */
    size_t body_len;
};

struct ws_http;

struct ws_http *ws_http_new(void);
void ws_http_free(struct ws_http *h);
/* Feed LEN more bytes of the request.  *CONSUMED is how many of them belong
 * to the request head (on WS_HTTP_DONE after an upgrade, the bytes after
 * that are already WebSocket frames).  On WS_HTTP_DONE the answer is in
 * *REPLY; feeding again after that is a caller error. */
enum ws_http_result ws_http_feed(struct ws_http *h, const char *buf, size_t len, size_t *consumed,
                                 struct ws_http_reply *reply);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
 * OUT gets WS_ACCEPT_LEN characters and a NUL.  False if hashing failed. */
bool ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_LEN + 1]);

/* --------------------------------------------------------------- frames */

/* Opcodes of RFC 6455 section 5.2 that the server sends. */
#define WS_OP_TEXT 0x1
#define WS_OP_CLOSE 0x8

/* A server frame header: 2 bytes, +2 for a 16-bit length, +8 for 64-bit. */
#define WS_FRAME_HEADER_MAX 10

/* Write the header of an unmasked, final frame with OPCODE and a payload
 * of LEN bytes into OUT; returns its size (2, 4 or 10). */
size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], unsigned opcode, uint64_t len);

/* What a complete incoming message is. */
enum ws_msg_kind {
    WS_MSG_TEXT,     /* a text message: valid UTF-8, at most max bytes */
    WS_MSG_BINARY,   /* a binary message (its bytes are not kept) */
    WS_MSG_TOO_LONG, /* a text message over max bytes (its bytes were dropped) */
};

struct ws_stream_ops {
    /* A complete message (DATA and LEN only for WS_MSG_TEXT, else NULL/0;
     * empty text messages are not reported).  Return false when the
     * connection is closing: the stream then stops reading. */
    bool (*message)(void *arg, enum ws_msg_kind kind, const char *data, size_t len);
    /* Bytes the stream sends by itself: pongs and close frames. */
    void (*output)(void *arg, const uint8_t *data, size_t len);
};

struct ws_stream;

/* A stream that reports text messages of at most MAX_MSG bytes. */
struct ws_stream *ws_stream_new(size_t max_msg, const struct ws_stream_ops *ops, void *arg);
void ws_stream_free(struct ws_stream *s);
/* A new max_msg (SIGHUP changed max_line): messages that start from now
 * on get it; a message being read that is already longer is too long. */
void ws_stream_set_max_msg(struct ws_stream *s, size_t max_msg);
/* Feed LEN bytes from the client.  Returns false once the stream has sent
 * a close frame (the client's close was answered, or the client broke the
 * protocol): the connection should close when its output has drained, and
 * further bytes are ignored. */
bool ws_stream_feed(struct ws_stream *s, const uint8_t *data, size_t len);
/* Send a close frame with CODE (RFC 6455 7.4.1) unless one was sent; no
 * frame may follow it, so the stream stops sending and reading. */
void ws_stream_close(struct ws_stream *s, uint16_t code);
/* Whether a close frame has gone out (nothing may be sent after it). */
bool ws_stream_close_sent(const struct ws_stream *s);
/* Whether the stream holds no parser and no message (it is between
 * messages): what an idle connection costs is the stream alone. */
bool ws_stream_idle(const struct ws_stream *s);

/* Close codes (RFC 6455 7.4.1) roomd sends itself; conn.c picks 1000,
 * 1001 and 1008 for the session's end. */
#define WS_CLOSE_PROTOCOL_ERROR 1002
#define WS_CLOSE_INVALID_DATA 1007

#endif
