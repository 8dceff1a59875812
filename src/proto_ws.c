/* proto_ws.c -- the WebSocket transport (RFC 6455) and the HTTP port's
 * static files.
 *
 * A connection on the WebSocket port starts as an HTTP/1.1 request, read by
 * struct ws_http (libhttp-parser does the parsing).  A request with
 * "Upgrade: websocket" on any path becomes a WebSocket session: the 101
 * answer, then verbs_session_start() (welcome, default room).  Any other
 * request gets a static file, 404 or 405 (400 when malformed or over
 * WS_HTTP_MAX_HEAD) and the connection closes; it never was a session, so
 * there is no goodbye.  The whole request must arrive within
 * handshake_timeout seconds (a deadline, not an idle timer: a client
 * trickling a byte at a time does not keep the slot).
 *
 * After the upgrade, struct ws_stream reads frames with libwslay's event
 * API.  What wslay enforces itself (read in wslay_event.c and
 * wslay_frame.c): client frames must be masked, reserved bits clear, the
 * opcode known, continuation frames only inside a fragmented message,
 * control frames at most 125 bytes and not fragmented, the 16/64-bit
 * length forms minimal, close codes valid, text UTF-8 as it arrives; it
 * answers pings and echoes a client's close.  What it does not do and this
 * file does: a close frame with a 1-byte body (a protocol error), frame
 * errors wslay reports as a failure instead of queueing 1002 itself, the
 * max_line cap (wslay's own max_recv_msg_length would close with 1009;
 * roomd answers "request too long" and keeps the connection), and a second
 * UTF-8 check of each whole text message with utf8_valid() before it
 * reaches the verbs.  wslay runs unbuffered for data frames: this file
 * keeps one message of at most max_line bytes and drops the bytes of a
 * longer one as they arrive.
 *
 * Memory of an idle session: wslay's parser (about 8 KiB) exists only while
 * a frame or a fragmented message is being read, and the request parser is
 * lent by the worker thread for the handshake, so an idle WebSocket costs
 * about what an idle line connection costs: its stream's idle part lives in
 * the transport's one block, the reading part (struct ws_reading) only with
 * the parser (issue 15: ~1.97 KB against 11.5 KB before, RSS over 10 000).
 *
 * Server messages never pass through wslay: each is one unmasked text
 * frame whose header conn.c asks for (ws_frame) when it writes the shared
 * JSON, so a message is never copied per recipient (the fan-out hot path).
 * The HTTP answer and wslay's own output (pongs, close echoes) go into the
 * same output queue as raw bytes, so the order on the wire is the order of
 * queueing. */
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "config.h"
#include "conn.h"
#include "http_static.h"
#include "log.h"
#include "msg.h"
#include "origin.h"
#include "proto.h"
#include "proto_ws.h"
#include "utf8.h"
#include "verbs.h"

/* RFC 6455 1.3: the GUID appended to Sec-WebSocket-Key before hashing. */
static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/* RFC 6455 4.1: the key is base64 of 16 random bytes: 22 characters and
 * "==" padding. */
#define WS_KEY_LEN 24
#define WS_KEY_PAD 2
#define SHA1_LEN 20
/* The only protocol version of RFC 6455 (section 4.1). */
static const char WS_VERSION[] = "13";

/* Static paths are short; a longer path cannot name a file. */
#define WS_STATIC_PATH_MAX 64

/* Frame header bits (RFC 6455 5.2). */
#define WS_FIN 0x80u
#define WS_OPCODE_BITS 0x0fu
#define WS_LEN7_MAX 125   /* payload lengths up to this fit the first byte */
#define WS_LEN16_MARK 126 /* a 16-bit length follows */
#define WS_LEN64_MARK 127 /* a 64-bit length follows */
#define WS_LEN16_SIZE 2
#define WS_LEN64_SIZE 8
#define WS_BASE_HEADER 2
#define WS_CLOSE_CODE_SIZE 2

/* A close frame body of exactly 1 byte cannot hold a code (RFC 6455
 * 5.5.1: a body starts with a 2-byte code). */
#define WS_CLOSE_BODY_TRUNCATED 1
/* Close code when roomd itself fails (out of memory). */
#define WS_CLOSE_INTERNAL_ERROR 1011

/* A message buffer bigger than this is freed after its message instead of
 * being kept for the next one, so an idle connection holds little memory
 * even after one long request. */
#define WS_MSG_KEEP 4096

/* A request head buffer starts this big and doubles up to
 * WS_HTTP_MAX_HEAD: a typical upgrade request fits, and a connection never
 * touched 8 KiB it did not need (freed after the handshake, a big buffer
 * still leaves a hole in the heap that later small allocations split). */
#define WS_HTTP_HEAD_START 1024

/* ================================================== the HTTP request */

struct ws_span {
    size_t off, len; /* into ws_http.head */
};

enum ws_http_last { WS_LAST_NONE, WS_LAST_FIELD, WS_LAST_VALUE };

struct ws_http {
    http_parser parser;
    size_t len, cap; /* bytes of head[] used, and allocated */
    bool complete;
    enum ws_http_last last;
    struct ws_span url, field, value;
    bool upgrade_websocket;  /* an Upgrade header names websocket */
    bool connection_upgrade; /* a Connection header names upgrade */
    int nkey, nversion, nhost, norigin, nforwarded;
    struct ws_span key, version, host, origin, forwarded;
    char *head; /* grown as the request arrives, up to WS_HTTP_MAX_HEAD */
};

static struct ws_http *http_of(http_parser *p)
{
    return p->data;
}

/* http_parser may hand out one field in several pieces; all of them lie
 * back to back in head[], so a piece either starts a span or extends it. */
static void span_add(struct ws_http *h, struct ws_span *s, bool extend, const char *at, size_t len)
{
    if (!extend) {
        s->off = (size_t)(at - h->head);
        s->len = 0;
    }
    s->len += len;
}

/* A header value without the optional whitespace around it. */
static struct ws_span span_trim(const struct ws_http *h, struct ws_span s)
{
    while (s.len > 0 && (h->head[s.off] == ' ' || h->head[s.off] == '\t')) {
        s.off++;
        s.len--;
    }
    while (s.len > 0 && (h->head[s.off + s.len - 1] == ' ' || h->head[s.off + s.len - 1] == '\t'))
        s.len--;
    return s;
}

static bool span_is(const struct ws_http *h, struct ws_span s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && strncasecmp(h->head + s.off, text, n) == 0;
}

/* Whether the comma-separated list in S holds TOKEN (any case): a browser
 * sends "Connection: keep-alive, Upgrade". */
static bool span_has_token(const struct ws_http *h, struct ws_span s, const char *token)
{
    size_t end = s.off + s.len;
    while (s.off <= end) {
        const char *comma = memchr(h->head + s.off, ',', end - s.off);
        size_t stop = comma ? (size_t)(comma - h->head) : end;
        struct ws_span item = span_trim(h, (struct ws_span){s.off, stop - s.off});
        if (span_is(h, item, token))
            return true;
        s.off = stop + 1;
    }
    return false;
}

/* One header is complete: keep what the upgrade needs. */
static void header_done(struct ws_http *h)
{
    if (h->last != WS_LAST_VALUE)
        return;
    struct ws_span value = span_trim(h, h->value);
    if (span_is(h, h->field, "Upgrade")) {
        if (span_has_token(h, value, "websocket"))
            h->upgrade_websocket = true;
    } else if (span_is(h, h->field, "Connection")) {
        if (span_has_token(h, value, "upgrade"))
            h->connection_upgrade = true;
    } else if (span_is(h, h->field, "Sec-WebSocket-Key")) {
        h->nkey++;
        h->key = value;
    } else if (span_is(h, h->field, "Sec-WebSocket-Version")) {
        h->nversion++;
        h->version = value;
    } else if (span_is(h, h->field, "Host")) {
        h->nhost++;
        h->host = value;
    } else if (span_is(h, h->field, "X-Forwarded-For")) {
        h->nforwarded++; /* the last one: what the trusted proxy added ends it */
        h->forwarded = value;
    } else if (span_is(h, h->field, "Origin")) {
        h->norigin++;
        h->origin = value;
    }
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct ws_http *h = http_of(p);
    span_add(h, &h->url, h->url.len > 0, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct ws_http *h = http_of(p);
    if (h->last != WS_LAST_FIELD)
        header_done(h);
    span_add(h, &h->field, h->last == WS_LAST_FIELD, at, len);
    h->last = WS_LAST_FIELD;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct ws_http *h = http_of(p);
    span_add(h, &h->value, h->last == WS_LAST_VALUE, at, len);
    h->last = WS_LAST_VALUE;
    return 0;
}

/* The head is complete.  Returning 2 tells http_parser that nothing after
 * it is HTTP (an upgrade, or a request whose body roomd never reads), so
 * http_parser_execute() stops right after the blank line. */
static int on_headers_complete(http_parser *p)
{
    struct ws_http *h = http_of(p);
    header_done(h);
    h->complete = true;
    return 2;
}

static const http_parser_settings ws_http_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

struct ws_http *ws_http_new(void)
{
    struct ws_http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    return h;
}

/* H as new, keeping its head buffer (one kept per worker thread). */
static void ws_http_reset(struct ws_http *h)
{
    char *head = h->head;
    size_t cap = h->cap;
    memset(h, 0, sizeof(*h));
    h->head = head;
    h->cap = cap;
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
}

void ws_http_free(struct ws_http *h)
{
    if (!h)
        return;
    free(h->head);
    free(h);
}

/* Room for N more bytes of the head (N fits under WS_HTTP_MAX_HEAD). */
static bool head_reserve(struct ws_http *h, size_t n)
{
    if (h->len + n <= h->cap)
        return true;
    size_t cap = h->cap ? h->cap : WS_HTTP_HEAD_START;
    while (cap < h->len + n)
        cap *= 2;
    if (cap > WS_HTTP_MAX_HEAD)
        cap = WS_HTTP_MAX_HEAD;
    char *grown = realloc(h->head, cap);
    if (!grown)
        return false;
    h->head = grown;
    h->cap = cap;
    return true;
}

bool ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char digest[SHA1_LEN];
    unsigned int dlen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha1(), NULL) && EVP_DigestUpdate(md, key, len) &&
              EVP_DigestUpdate(md, WS_GUID, sizeof(WS_GUID) - 1) &&
              EVP_DigestFinal_ex(md, digest, &dlen) && dlen == SHA1_LEN;
    EVP_MD_CTX_free(md);
    if (ok)
        ok = EVP_EncodeBlock((unsigned char *)out, digest, SHA1_LEN) == WS_ACCEPT_LEN;
    return ok;
}

/* RFC 6455 4.2.1: the key must decode to 16 bytes. */
static bool key_valid(const struct ws_http *h, struct ws_span key)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (key.len != WS_KEY_LEN)
        return false;
    const char *k = h->head + key.off;
    for (size_t i = 0; i < WS_KEY_LEN - WS_KEY_PAD; i++)
        if (!memchr(b64, k[i], sizeof(b64) - 1))
            return false;
    return memcmp(k + WS_KEY_LEN - WS_KEY_PAD, "==", WS_KEY_PAD) == 0;
}

/* ----------------------------------------------------- the answers */

static const char BODY_400[] = "400 Bad Request\n";
static const char BODY_404[] = "404 Not Found\n";
static const char BODY_405[] = "405 Method Not Allowed\n";

/* An answer with a body, after which the connection closes.  EXTRA is
 * more header lines, each ending in CRLF. */
static void reply_body(struct ws_http_reply *r, enum http_status status, const char *type,
                       const char *extra, const char *body, size_t len)
{
    r->status = status;
    r->body = body;
    r->body_len = len;
    int n = snprintf(r->head, sizeof(r->head),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: close\r\n\r\n",
                     (int)status, http_status_str(status), type, len, extra);
    r->head_len = n > 0 && (size_t)n < sizeof(r->head) ? (size_t)n : 0;
}

/* An error answer: its status line again as a short text body. */
static void reply_error(struct ws_http_reply *r, enum http_status status, const char *extra)
{
    static const char text_plain[] = "text/plain; charset=utf-8";
    const char *body;
    size_t len;
    switch (status) {
    case HTTP_STATUS_NOT_FOUND:
        body = BODY_404, len = sizeof(BODY_404) - 1;
        break;
    case HTTP_STATUS_METHOD_NOT_ALLOWED:
        body = BODY_405, len = sizeof(BODY_405) - 1;
        break;
    case HTTP_STATUS_FORBIDDEN: /* the one 403: websocket_origins */
        body = err_text(ERR_ORIGIN_NOT_ALLOWED), len = strlen(body);
        break;
    default:
        body = BODY_400, len = sizeof(BODY_400) - 1;
        break;
    }
    reply_body(r, status, text_plain, extra, body, len);
}

/* The upgrade request is checked as RFC 6455 4.2.1 asks: HTTP/1.1 or later,
 * exactly one Host header (RFC 7230 5.4 answers 400 otherwise), an Origin
 * websocket_origins allows (403 otherwise; see origin.c),
 * "Connection: Upgrade", version 13 (else 400 naming the version roomd
 * speaks, as 4.2.2 allows), exactly one well-formed key. */
static void reply_upgrade(const struct ws_http *h, struct ws_http_reply *r)
{
    const http_parser *p = &h->parser;
    if (p->http_major < 1 || (p->http_major == 1 && p->http_minor < 1) || h->nhost != 1 ||
        !h->connection_upgrade) {
        reply_error(r, HTTP_STATUS_BAD_REQUEST, "");
        return;
    }
    if (h->norigin > 1 ||
        !origin_allowed(h->norigin ? h->head + h->origin.off : NULL, h->origin.len,
                        h->head + h->host.off, h->host.len, settings.websocket_origins)) {
        reply_error(r, HTTP_STATUS_FORBIDDEN, "");
        return;
    }
    if (h->nversion != 1 || !span_is(h, h->version, WS_VERSION)) {
        reply_error(r, HTTP_STATUS_BAD_REQUEST, "Sec-WebSocket-Version: 13\r\n");
        return;
    }
    char accept[WS_ACCEPT_LEN + 1];
    if (h->nkey != 1 || !key_valid(h, h->key) ||
        !ws_accept_key(h->head + h->key.off, h->key.len, accept)) {
        reply_error(r, HTTP_STATUS_BAD_REQUEST, "");
        return;
    }
    r->status = HTTP_STATUS_SWITCHING_PROTOCOLS;
    r->body = NULL;
    r->body_len = 0;
    int n = snprintf(r->head, sizeof(r->head),
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    r->head_len = n > 0 && (size_t)n < sizeof(r->head) ? (size_t)n : 0;
}

/* A plain GET: the file at the request's path (query string ignored). */
static void reply_static(const struct ws_http *h, struct ws_http_reply *r)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(h->head + h->url.off, h->url.len, 0, &u) != 0) {
        reply_error(r, HTTP_STATUS_BAD_REQUEST, "");
        return;
    }
    const struct static_file *f = NULL;
    if (u.field_set & (1 << UF_PATH) && u.field_data[UF_PATH].len <= WS_STATIC_PATH_MAX) {
        char path[WS_STATIC_PATH_MAX + 1];
        memcpy(path, h->head + h->url.off + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
        path[u.field_data[UF_PATH].len] = '\0';
        f = http_static_find(path);
    }
    if (!f) {
        reply_error(r, HTTP_STATUS_NOT_FOUND, "");
        return;
    }
    reply_body(r, HTTP_STATUS_OK, f->content_type, "Cache-Control: no-cache\r\n", f->body, f->len);
}

static void reply_for(const struct ws_http *h, struct ws_http_reply *r)
{
    if (h->parser.method != HTTP_GET)
        reply_error(r, HTTP_STATUS_METHOD_NOT_ALLOWED, "Allow: GET\r\n");
    else if (h->upgrade_websocket)
        reply_upgrade(h, r);
    else
        reply_static(h, r);
}

enum ws_http_result ws_http_feed(struct ws_http *h, const char *buf, size_t len, size_t *consumed,
                                 struct ws_http_reply *reply)
{
    *consumed = 0;
    if (len == 0) /* http_parser would take an empty feed for end of input */
        return WS_HTTP_MORE;
    size_t room = WS_HTTP_MAX_HEAD - h->len;
    size_t n = len < room ? len : room;
    if (!head_reserve(h, n)) {
        reply_error(reply, HTTP_STATUS_BAD_REQUEST, "");
        return WS_HTTP_DONE;
    }
    memcpy(h->head + h->len, buf, n);
    size_t parsed = http_parser_execute(&h->parser, &ws_http_settings, h->head + h->len, n);
    if (h->complete) {
        *consumed = parsed;
        h->len += parsed;
        reply_for(h, reply);
        return WS_HTTP_DONE;
    }
    *consumed = n;
    h->len += n;
    if (HTTP_PARSER_ERRNO(&h->parser) != HPE_OK || h->len == WS_HTTP_MAX_HEAD) {
        reply_error(reply, HTTP_STATUS_BAD_REQUEST, "");
        return WS_HTTP_DONE;
    }
    return WS_HTTP_MORE;
}

/* ======================================================= the frames */

size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], unsigned opcode, uint64_t len)
{
    out[0] = (uint8_t)(WS_FIN | (opcode & WS_OPCODE_BITS));
    if (len <= WS_LEN7_MAX) {
        out[1] = (uint8_t)len;
        return WS_BASE_HEADER;
    }
    if (len <= UINT16_MAX) {
        out[1] = WS_LEN16_MARK;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return WS_BASE_HEADER + WS_LEN16_SIZE;
    }
    out[1] = WS_LEN64_MARK;
    for (int i = 0; i < WS_LEN64_SIZE; i++)
        out[WS_BASE_HEADER + i] = (uint8_t)(len >> (8 * (WS_LEN64_SIZE - 1 - i)));
    return WS_BASE_HEADER + WS_LEN64_SIZE;
}

/* A client frame header: 2 bytes, +2 or +8 for the length, +4 for the mask. */
#define WS_CLIENT_HEADER_MAX 14
#define WS_MASK_BIT 0x80u
#define WS_LEN7_BITS 0x7fu
#define WS_MASK_SIZE 4

/* wslay's parser state is about 8 KiB (its frame reader's input buffer
 * and its output buffer), four times what the rest of a connection costs.
 * It matters only while a frame or a fragmented message is being read, so
 * a stream keeps it only then: between requests an idle WebSocket holds no
 * parser, as an idle line connection holds no partial line.  To know where
 * frames end without wslay, the stream reads each frame's header itself
 * (lengths only; wslay still checks everything) and gives wslay at most the
 * rest of the current frame, so a freed parser never held unread bytes. */
/* What a stream holds only while it reads a frame or a fragmented message:
 * allocated with wslay's parser and freed with it. */
struct ws_reading {
    wslay_event_context_ptr wslay;
    const uint8_t *in; /* the bytes being fed, for wslay's recv callback */
    size_t in_len;
    char *msg; /* the text message being read so far */
    size_t msg_len, msg_cap;
    uint16_t fail_code; /* set by a callback: close with this code */
    bool frame_control; /* the frame being read is a control frame */
    bool msg_binary;    /* the message being read is binary (not kept) */
    bool msg_too_long;  /* ... is text over max_msg (not kept) */
};

struct ws_stream {
    struct ws_reading *r; /* NULL between messages */
    const struct ws_stream_ops *ops;
    void *arg;
    size_t max_msg;
    uint64_t frame_left; /* bytes of this frame wslay has still to get */

    uint8_t head[WS_CLIENT_HEADER_MAX]; /* the next frame's header so far */
    uint8_t head_len, head_need;        /* its bytes read; its size once known (else 0) */
    bool msg_open;                      /* a fragmented data message is unfinished */
    bool read_stopped;                  /* a handler stopped reading: input is ignored */
    bool close_sent;
};

static ssize_t stream_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                           void *arg)
{
    struct ws_stream *s = arg;
    if (s->r->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < s->r->in_len ? len : s->r->in_len;
    memcpy(buf, s->r->in, n);
    s->r->in += n;
    s->r->in_len -= n;
    return (ssize_t)n;
}

/* wslay's output is taken whole: the bufferevent buffers it. */
static ssize_t stream_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                           void *arg)
{
    struct ws_stream *s = arg;
    s->ops->output(s->arg, data, len);
    return (ssize_t)len;
}

static void msg_reset(struct ws_stream *s)
{
    s->r->msg_len = 0;
    s->r->msg_too_long = false;
    if (s->r->msg_cap > WS_MSG_KEEP) {
        free(s->r->msg);
        s->r->msg = NULL;
        s->r->msg_cap = 0;
    }
}

/* A frame starts.  A data frame's declared length is checked against
 * max_msg before any of it arrives, and room for it is made at once, so
 * a too-long message costs nothing and a fitting one is copied once. */
static void stream_frame_start(wslay_event_context_ptr ctx,
                               const struct wslay_event_on_frame_recv_start_arg *a, void *arg)
{
    struct ws_stream *s = arg;
    s->r->frame_control = wslay_is_ctrl_frame(a->opcode);
    if (s->r->frame_control)
        return;
    if (a->opcode != WSLAY_CONTINUATION_FRAME) {
        msg_reset(s);
        s->r->msg_binary = a->opcode == WSLAY_BINARY_FRAME;
    }
    if (s->r->msg_binary || s->r->msg_too_long)
        return;
    if (a->payload_length > s->max_msg - s->r->msg_len) {
        s->r->msg_too_long = true;
        return;
    }
    size_t need = s->r->msg_len + (size_t)a->payload_length;
    if (need > s->r->msg_cap) {
        char *grown = realloc(s->r->msg, need);
        if (!grown) {
            s->r->fail_code = WS_CLOSE_INTERNAL_ERROR;
            wslay_event_shutdown_read(ctx);
            return;
        }
        s->r->msg = grown;
        s->r->msg_cap = need;
    }
}

static void stream_frame_chunk(wslay_event_context_ptr ctx,
                               const struct wslay_event_on_frame_recv_chunk_arg *a, void *arg)
{
    struct ws_stream *s = arg;
    if (s->r->frame_control || s->r->msg_binary || s->r->msg_too_long || s->r->fail_code ||
        a->data_length == 0)
        return;
    memcpy(s->r->msg + s->r->msg_len, a->data, a->data_length);
    s->r->msg_len += a->data_length;
}

/* A whole message (wslay has reassembled the fragments and answered pings
 * and closes by then).  Data messages go to ops->message. */
static void stream_message(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                           void *arg)
{
    struct ws_stream *s = arg;
    bool go_on = true;
    if (s->r->fail_code)
        return;
    switch (a->opcode) {
    case WSLAY_TEXT_FRAME:
        if (s->r->msg_too_long)
            go_on = s->ops->message(s->arg, WS_MSG_TOO_LONG, NULL, 0);
        else if (s->r->msg_len > 0 && !utf8_valid(s->r->msg, s->r->msg_len))
            s->r->fail_code = WS_CLOSE_INVALID_DATA;
        else if (s->r->msg_len > 0) /* empty: like an empty line, not counted */
            go_on = s->ops->message(s->arg, WS_MSG_TEXT, s->r->msg, s->r->msg_len);
        msg_reset(s);
        break;
    case WSLAY_BINARY_FRAME:
        go_on = s->ops->message(s->arg, WS_MSG_BINARY, NULL, 0);
        break;
    case WSLAY_CONNECTION_CLOSE:
        if (a->msg_length == WS_CLOSE_BODY_TRUNCATED)
            s->r->fail_code = WS_CLOSE_PROTOCOL_ERROR;
        break;
    case WSLAY_PING: /* answered: the pong goes out before later replies */
        wslay_event_send(ctx);
        break;
    default: /* pong */
        break;
    }
    if (!go_on || s->r->fail_code)
        wslay_event_shutdown_read(ctx);
}

static const struct wslay_event_callbacks stream_callbacks = {
    .recv_callback = stream_recv,
    .send_callback = stream_send,
    .on_frame_recv_start_callback = stream_frame_start,
    .on_frame_recv_chunk_callback = stream_frame_chunk,
    .on_msg_recv_callback = stream_message,
};

/* The parser for the frame that starts now (stream comment above). */
static bool stream_parser_new(struct ws_stream *s)
{
    if (!(s->r = calloc(1, sizeof(*s->r))))
        return false;
    if (wslay_event_context_server_init(&s->r->wslay, &stream_callbacks, s) != 0) {
        free(s->r);
        s->r = NULL;
        return false;
    }
    wslay_event_config_set_no_buffering(s->r->wslay, 1);
    /* The length cap is max_msg, applied above; no frame is too long for
     * wslay itself (it would close with 1009). */
    wslay_event_config_set_max_recv_msg_length(s->r->wslay, UINT64_MAX);
    return true;
}

/* Between messages: the parser and the message buffer go, so an idle
 * connection keeps neither. */
static void stream_rest(struct ws_stream *s)
{
    wslay_event_context_free(s->r->wslay);
    free(s->r->msg);
    free(s->r);
    s->r = NULL;
}

static void stream_init(struct ws_stream *s, size_t max_msg, const struct ws_stream_ops *ops,
                        void *arg)
{
    memset(s, 0, sizeof(*s));
    s->ops = ops;
    s->arg = arg;
    s->max_msg = max_msg;
}

/* A stream's parser, if it has one (the stream itself stays). */
static void stream_fini(struct ws_stream *s)
{
    if (s->r)
        stream_rest(s);
}

struct ws_stream *ws_stream_new(size_t max_msg, const struct ws_stream_ops *ops, void *arg)
{
    struct ws_stream *s = malloc(sizeof(*s));
    if (s)
        stream_init(s, max_msg, ops, arg);
    return s;
}

void ws_stream_free(struct ws_stream *s)
{
    if (!s)
        return;
    stream_fini(s);
    free(s);
}

void ws_stream_set_max_msg(struct ws_stream *s, size_t max_msg)
{
    s->max_msg = max_msg;
    if (s->r &&
        s->r->msg_len > max_msg) /* keeps max_msg - msg_len in stream_frame_start from wrapping */
        s->r->msg_too_long = true;
}

bool ws_stream_close_sent(const struct ws_stream *s)
{
    return s->close_sent;
}

bool ws_stream_idle(const struct ws_stream *s)
{
    return !s->r;
}

void ws_stream_close(struct ws_stream *s, uint16_t code)
{
    if (s->close_sent)
        return;
    s->close_sent = true;
    if (s->r) {
        wslay_event_shutdown_read(s->r->wslay);
        wslay_event_shutdown_write(s->r->wslay); /* nothing of wslay's after ours */
    }
    uint8_t frame[WS_FRAME_HEADER_MAX + WS_CLOSE_CODE_SIZE];
    size_t n = ws_frame_header(frame, WS_OP_CLOSE, WS_CLOSE_CODE_SIZE);
    frame[n] = (uint8_t)(code >> 8);
    frame[n + 1] = (uint8_t)code;
    s->ops->output(s->arg, frame, n + WS_CLOSE_CODE_SIZE);
}

/* Take bytes of the next frame's header from DATA into head[] (at most
 * what the header needs, known once its first two bytes are in); returns
 * how many were taken.  Only the sizes are read here. */
static size_t stream_take_header(struct ws_stream *s, const uint8_t *data, size_t len)
{
    size_t taken = 0;
    while (taken < len && (s->head_need == 0 || s->head_len < s->head_need)) {
        s->head[s->head_len++] = data[taken++];
        if (s->head_len == WS_BASE_HEADER) {
            unsigned len7 = s->head[1] & WS_LEN7_BITS;
            s->head_need = (uint8_t)(WS_BASE_HEADER +
                                     (len7 == WS_LEN16_MARK   ? WS_LEN16_SIZE
                                      : len7 == WS_LEN64_MARK ? WS_LEN64_SIZE
                                                              : 0) +
                                     (s->head[1] & WS_MASK_BIT ? WS_MASK_SIZE : 0));
        }
    }
    return taken;
}

/* The header in head[] is whole: how many bytes the frame has in all, and
 * whether a fragmented data message stays open after it (control frames
 * may come between fragments and change nothing). */
static void stream_frame_begin(struct ws_stream *s)
{
    unsigned len7 = s->head[1] & WS_LEN7_BITS;
    uint64_t payload = len7;
    size_t at = WS_BASE_HEADER;
    size_t n = len7 == WS_LEN16_MARK ? WS_LEN16_SIZE : len7 == WS_LEN64_MARK ? WS_LEN64_SIZE : 0;
    if (n > 0) {
        payload = 0;
        for (size_t i = 0; i < n; i++)
            payload = payload << 8 | s->head[at + i];
    }
    /* A length wslay refuses (the top bit set) must not wrap the count. */
    s->frame_left = payload > UINT64_MAX - s->head_need ? UINT64_MAX : s->head_need + payload;
    unsigned opcode = s->head[0] & WS_OPCODE_BITS;
    if (opcode < WS_OP_CLOSE)
        s->msg_open = !(s->head[0] & WS_FIN);
}

/* Give wslay N bytes of the current frame and act on what it made of
 * them.  False when the stream stops: a close frame went out, or a
 * handler stopped reading (read_stopped). */
static bool stream_give(struct ws_stream *s, const uint8_t *data, size_t n)
{
    s->r->in = data;
    s->r->in_len = n;
    s->frame_left -= n;
    int rc = wslay_event_recv(s->r->wslay);
    s->r->in = NULL;
    s->r->in_len = 0;
    if (s->close_sent) /* a message handler closed the session */
        return false;
    if (s->r->fail_code) {
        ws_stream_close(s, s->r->fail_code);
        return false;
    }
    if (rc != 0 && !wslay_event_get_close_sent(s->r->wslay)) {
        /* A frame wslay could not parse (oversized or fragmented control
         * frame, a non-minimal length): wslay queues a close without a
         * code; the contract says 1002. */
        ws_stream_close(s, WS_CLOSE_PROTOCOL_ERROR);
        return false;
    }
    wslay_event_send(s->r->wslay); /* pongs, wslay's close frames */
    if (wslay_event_get_close_sent(s->r->wslay)) {
        s->close_sent = true;
        return false;
    }
    if (!wslay_event_want_read(s->r->wslay)) {
        s->read_stopped = true;
        return false;
    }
    return true;
}

/* The input is cut at frame ends: a header is collected in head[], then
 * handed to a parser with the frame's payload as it arrives; a parser
 * left at a frame end with no message open is freed. */
bool ws_stream_feed(struct ws_stream *s, const uint8_t *data, size_t len)
{
    while (len > 0 && !s->close_sent && !s->read_stopped) {
        if (s->frame_left == 0) {
            size_t taken = stream_take_header(s, data, len);
            data += taken;
            len -= taken;
            if (s->head_need == 0 || s->head_len < s->head_need)
                break; /* the header is not whole yet */
            stream_frame_begin(s);
            if (!s->r && !stream_parser_new(s)) {
                ws_stream_close(s, WS_CLOSE_INTERNAL_ERROR);
                break;
            }
            size_t head_len = s->head_len;
            s->head_len = s->head_need = 0;
            if (!stream_give(s, s->head, head_len))
                break;
            continue;
        }
        size_t n = len < s->frame_left ? len : (size_t)s->frame_left;
        if (!stream_give(s, data, n))
            break;
        data += n;
        len -= n;
    }
    if (s->r && s->frame_left == 0 && !s->msg_open && !s->close_sent && !s->read_stopped)
        stream_rest(s);
    return !s->close_sent;
}

/* =================================================== the transport */

struct ws_conn {
    struct ws_http *http;     /* while the request is read; then NULL */
    struct ws_stream *stream; /* after the upgrade: &session; NULL before */
    struct event *deadline;   /* the handshake's timeout */
    struct ws_stream session; /* in the same allocation: an idle session is one block */
};

static bool ws_on_message(void *arg, enum ws_msg_kind kind, const char *data, size_t len)
{
    struct conn *c = arg;
    switch (kind) {
    case WS_MSG_TEXT:
        verbs_request(c, data, len);
        break;
    case WS_MSG_BINARY:
        verbs_reject(c, ERR_BINARY_FRAME);
        break;
    case WS_MSG_TOO_LONG:
        verbs_reject(c, ERR_REQUEST_TOO_LONG);
        break;
    }
    return !c->closing && !c->dead;
}

static void ws_on_output(void *arg, const uint8_t *data, size_t len)
{
    conn_send_raw(arg, data, len);
}

static const struct ws_stream_ops ws_conn_ops = {
    .message = ws_on_message,
    .output = ws_on_output,
};

static void ws_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    conn_abort(c, "WebSocket handshake timeout");
}

/* Request parsers are lent, not owned: each worker thread keeps one spare,
 * and a connection holds a parser only while its request is incomplete
 * after a read.  A browser sends its request in one piece, so an upgrade
 * allocates no parser and frees none (a freed 1-8 KiB buffer per
 * connection would leave a hole in the heap that small allocations split,
 * costing an idle connection more than the parser itself). */
static pthread_key_t spare_http_key;
static pthread_once_t spare_http_once = PTHREAD_ONCE_INIT;

static void spare_http_free(void *h)
{
    ws_http_free(h);
}

static void spare_http_key_make(void)
{
    if (pthread_key_create(&spare_http_key, spare_http_free) != 0)
        log_warn("no per-thread request parser: each WebSocket handshake allocates one");
}

static struct ws_http *http_borrow(void)
{
    pthread_once(&spare_http_once, spare_http_key_make);
    struct ws_http *h = pthread_getspecific(spare_http_key);
    if (!h)
        return ws_http_new();
    pthread_setspecific(spare_http_key, NULL);
    return h;
}

static void http_give_back(struct ws_http *h)
{
    if (!h)
        return;
    if (pthread_getspecific(spare_http_key) || pthread_setspecific(spare_http_key, h) != 0) {
        ws_http_free(h);
        return;
    }
    ws_http_reset(h);
}

static void ws_on_open(struct conn *c)
{
    struct ws_conn *ws = calloc(1, sizeof(*ws));
    c->proto_state = ws;
    if (!ws || !(ws->deadline = evtimer_new(c->worker->base, ws_on_deadline, c))) {
        conn_abort(c, "out of memory");
        return;
    }
    struct timeval limit = {settings.handshake_timeout, 0}; /* a browser sends it at once */
    evtimer_add(ws->deadline, &limit);
}

/* The request is answered.  An upgrade starts the session; anything else
 * closes once the answer is out (no goodbye: there was no session). */
static void ws_answer(struct conn *c, struct ws_conn *ws, const struct ws_http_reply *r)
{
    if (c->ip_deferred) /* from a trusted proxy: the client is in X-Forwarded-For */
        conn_forwarded(c, ws->http->nforwarded ? ws->http->head + ws->http->forwarded.off : NULL,
                       ws->http->forwarded.len);
    http_give_back(ws->http);
    ws->http = NULL;
    event_free(ws->deadline); /* an idle session keeps no timer */
    ws->deadline = NULL;
    if (c->ip_refused) { /* a per-address limit: 503 whatever was asked */
        struct evbuffer *in = bufferevent_get_input(c->bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        conn_refuse(c);
        return;
    }
    conn_send_raw(c, r->head, r->head_len);
    conn_send_raw(c, r->body, r->body_len); /* nothing when empty */
    if (r->status != HTTP_STATUS_SWITCHING_PROTOCOLS) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        conn_close(c, NULL);
        return;
    }
    stream_init(&ws->session, (size_t)settings.max_line, &ws_conn_ops, c);
    ws->stream = &ws->session;
    verbs_session_start(c);
}

static void ws_read_request(struct conn *c, struct ws_conn *ws)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!ws->stream && !c->closing && !c->dead && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            return;
        if (!ws->http && !(ws->http = http_borrow())) {
            conn_abort(c, "out of memory");
            return;
        }
        size_t consumed;
        struct ws_http_reply reply;
        enum ws_http_result r = ws_http_feed(ws->http, v.iov_base, v.iov_len, &consumed, &reply);
        evbuffer_drain(in, consumed);
        if (r == WS_HTTP_DONE)
            ws_answer(c, ws, &reply);
    }
}

/* Frames from the client.  Each contiguous piece of the input goes to the
 * stream; once the stream has sent its close frame the rest is dropped
 * and the connection closes after its output drained.  wslay's own output
 * (pongs) is what a client that sends pings without reading could pile
 * up, so the output limit is checked here too. */
static void ws_read_frames(struct conn *c, struct ws_conn *ws)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    bool open = true;
    while (open && !c->closing && !c->dead && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        open = ws_stream_feed(ws->stream, v.iov_base, v.iov_len);
        evbuffer_drain(in, v.iov_len);
    }
    if (c->dead)
        return;
    if (!open || c->closing) {
        evbuffer_drain(in, evbuffer_get_length(in));
        conn_close(c, NULL);
        return;
    }
    conn_check_output_limit(c);
}

static void ws_on_read(struct conn *c)
{
    struct ws_conn *ws = c->proto_state;
    if (!ws->stream)
        ws_read_request(c, ws);
    if (ws->stream && !c->closing && !c->dead)
        ws_read_frames(c, ws);
}

/* Server messages go out between the upgrade and the close frame only:
 * before, the client speaks HTTP; after, RFC 6455 5.5.1 forbids them. */
static bool ws_may_send(const struct conn *c)
{
    const struct ws_conn *ws = c->proto_state;
    return ws && ws->stream && !ws_stream_close_sent(ws->stream);
}

_Static_assert(WS_FRAME_HEADER_MAX <= CONN_FRAME_HEADER_MAX, "a frame header fits conn.c's");

/* One server message as one text frame: the header, then the JSON
 * without the "\r\n" msg.c keeps after it. */
static size_t ws_frame(const struct msg *m, uint8_t *header, size_t *body_len)
{
    *body_len = m->len;
    return ws_frame_header(header, WS_OP_TEXT, m->len);
}

static void ws_send_close(struct conn *c, int code)
{
    struct ws_conn *ws = c->proto_state;
    if (ws && ws->stream)
        ws_stream_close(ws->stream, (uint16_t)code);
}

/* SIGHUP: an open session's stream follows the new max_line. */
static void ws_on_settings(struct conn *c)
{
    struct ws_conn *ws = c->proto_state;
    if (ws && ws->stream)
        ws_stream_set_max_msg(ws->stream, (size_t)settings.max_line);
}

static void ws_on_free(struct conn *c)
{
    struct ws_conn *ws = c->proto_state;
    if (!ws)
        return;
    ws_http_free(ws->http);
    if (ws->stream)
        stream_fini(ws->stream);
    if (ws->deadline)
        event_free(ws->deadline);
    free(ws);
    c->proto_state = NULL;
}

const struct conn_proto ws_proto = {
    .on_open = ws_on_open,
    .on_read = ws_on_read,
    .may_send = ws_may_send,
    .frame = ws_frame,
    .send_close = ws_send_close,
    .on_free = ws_on_free,
    .on_settings = ws_on_settings,
};
