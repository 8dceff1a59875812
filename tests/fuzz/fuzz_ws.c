/* fuzz_ws.c -- libFuzzer harness for the WebSocket transport's parsers
 * (src/proto_ws.h): the HTTP request that opens a connection, then the
 * RFC 6455 frame stream, fed exactly as proto_ws.c feeds them from a socket.
 *
 * Input layout: byte 0 picks the mode and how the rest is cut into reads
 * (bit 7 set: frames only, no handshake; bits 0-6: read size, 0 = all at
 * once), so the fuzzer explores both parsers and every split of the input.
 * Checked on the way: each reply head is complete and its status is one
 * roomd sends; every reported text message is valid UTF-8 of at most
 * FUZZ_MAX_MSG bytes; everything the stream sends is a well-formed server
 * control frame (final, unmasked, at most 125 bytes); nothing is sent
 * after a close frame, and a stream reports itself closed exactly when its
 * close frame went out.  ASan/UBSan catch the rest.
 *
 * Build and run: tests/fuzz/run_fuzz_ws.sh (scripts/test does it). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto_ws.h"
#include "utf8.h"

#define FUZZ_MAX_MSG 256
#define MODE_FRAMES_ONLY 0x80u
#define STEP_BITS 0x7fu
#define CONTROL_MAX 125
#define OPCODE_BITS 0x0fu
#define FIN_BIT 0x80u
#define RSV_BITS 0x70u
#define MASK_BIT 0x80u
#define LEN7_BITS 0x7fu
#define OP_CLOSE 0x8
#define OP_PING 0x9
#define OP_PONG 0xA

/* The stream's output, checked frame by frame (wslay writes a frame's
 * header and payload in separate calls, so bytes wait in pending[]). */
struct fuzz_sink {
    uint8_t pending[2 + CONTROL_MAX];
    size_t npending;
    bool closed; /* a close frame went out */
};

static bool fuzz_message(void *arg, enum ws_msg_kind kind, const char *data, size_t len)
{
    (void)arg;
    switch (kind) {
    case WS_MSG_TEXT:
        if (!data || len == 0 || len > FUZZ_MAX_MSG || !utf8_valid(data, len))
            abort();
        break;
    case WS_MSG_BINARY:
    case WS_MSG_TOO_LONG:
        if (data || len)
            abort();
        break;
    }
    return true;
}

/* The stream's own output: pongs and close frames only, nothing after a
 * close. */
static void fuzz_output(void *arg, const uint8_t *data, size_t len)
{
    struct fuzz_sink *sink = arg;
    for (size_t i = 0; i < len; i++) {
        if (sink->closed || sink->npending == sizeof(sink->pending))
            abort();
        sink->pending[sink->npending++] = data[i];
        const uint8_t *f = sink->pending;
        if (sink->npending < 2 || sink->npending < 2 + (f[1] & LEN7_BITS))
            continue;
        unsigned op = f[0] & OPCODE_BITS;
        if (!(f[0] & FIN_BIT) || (f[0] & RSV_BITS) || (f[1] & MASK_BIT) ||
            (f[1] & LEN7_BITS) > CONTROL_MAX || (op != OP_CLOSE && op != OP_PING && op != OP_PONG))
            abort();
        if (op == OP_CLOSE)
            sink->closed = true;
        sink->npending = 0;
    }
}

static const struct ws_stream_ops fuzz_ops = {fuzz_message, fuzz_output};

static void check_reply(const struct ws_http_reply *r)
{
    if (r->head_len < 4 || r->head_len >= sizeof(r->head) ||
        memcmp(r->head + r->head_len - 4, "\r\n\r\n", 4) != 0)
        abort();
    switch (r->status) {
    case 101:
        if (r->body_len)
            abort();
        break;
    case 200:
    case 400:
    case 403: /* an Origin websocket_origins does not allow */
    case 404:
    case 405:
        if (!r->body || !r->body_len)
            abort();
        break;
    default:
        abort();
    }
}

static void feed_frames(const uint8_t *data, size_t size, size_t step)
{
    struct fuzz_sink sink = {.npending = 0, .closed = false};
    struct ws_stream *s = ws_stream_new(FUZZ_MAX_MSG, &fuzz_ops, &sink);
    if (!s)
        return;
    bool open = true;
    for (size_t off = 0; off < size;) {
        size_t n = step && step < size - off ? step : size - off;
        bool now = ws_stream_feed(s, data + off, n);
        if (!open && now) /* a closed stream never opens again */
            abort();
        open = now;
        off += n;
    }
    if (open == ws_stream_close_sent(s) || sink.npending != 0 || sink.closed != !open)
        abort();
    ws_stream_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] & STEP_BITS;
    bool frames_only = data[0] & MODE_FRAMES_ONLY;
    data++;
    size--;
    if (frames_only) {
        feed_frames(data, size, step);
        return 0;
    }
    struct ws_http *h = ws_http_new();
    if (!h)
        return 0;
    size_t off = 0;
    struct ws_http_reply reply;
    enum ws_http_result r = WS_HTTP_MORE;
    while (off < size && r == WS_HTTP_MORE) {
        size_t n = step && step < size - off ? step : size - off;
        size_t used = 0;
        r = ws_http_feed(h, (const char *)data + off, n, &used, &reply);
        if (used > n || (r == WS_HTTP_MORE && used != n))
            abort();
        off += used;
    }
    ws_http_free(h);
    if (r == WS_HTTP_DONE) {
        check_reply(&reply);
        if (reply.status == 101)
            feed_frames(data + off, size - off, step);
    }
    return 0;
}
