/* proto_line.c -- the TCP line transport: requests are lines ending in LF
 * (a CR before it is dropped), replies are JSON objects ending in CRLF.
 *
 * line_scan() is the whole framing and is pure, so the unit tests and the
 * fuzzer drive it without sockets; proto_line_read() applies it to the
 * bufferevent's input. */
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "conn.h"
#include "msg.h"
#include "proto.h"
#include "verbs.h"

/* What telnet sends for Ctrl-C: IAC IP IAC DO TIMING-MARK. */
static const char telnet_break[] = {(char)0xff, (char)0xf4, (char)0xff, (char)0xfd, 0x06};

enum line_scan line_scan(const char *buf, size_t len, size_t max, int skipping, size_t *line_len,
                         size_t *consumed)
{
    const char *nl = memchr(buf, '\n', len);
    size_t n = nl ? (size_t)(nl - buf) : len;
    if (memmem(buf, nl ? n + 1 : len, telnet_break, sizeof(telnet_break))) {
        *consumed = nl ? n + 1 : len;
        return LINE_BREAK;
    }
    if (!nl) {
        *consumed = 0;
        *line_len = 0;
        if (len > max + 1) { /* +1: room for the CR of a full-length line */
            *consumed = len;
            return skipping ? LINE_EMPTY : LINE_TOO_LONG;
        }
        if (skipping) {
            *consumed = len;
            return LINE_EMPTY;
        }
        return LINE_NONE;
    }
    *consumed = n + 1;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    *line_len = n;
    if (skipping)
        return LINE_EMPTY; /* the tail of an overlong line */
    if (n > max)
        return LINE_TOO_LONG;
    if (n == 0)
        return LINE_EMPTY;
    if (n == 1 && buf[0] == 0x04)
        return LINE_BREAK;
    return LINE_OK;
}

/* Handle every complete line in the input buffer.  The buffer is made
 * contiguous up to the next newline only, so a long pipeline costs one pass. */
static void line_on_read(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->dead && !c->closing) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
        size_t span = eol.pos >= 0 ? (size_t)eol.pos + 1 : avail;
        const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)span);
        size_t line_len = 0, consumed = 0;
        enum line_scan r =
            line_scan(buf, span, (size_t)settings.max_line, c->skipping_line, &line_len, &consumed);
        switch (r) {
        case LINE_NONE:
            return;
        case LINE_EMPTY:
            if (eol.pos >= 0)
                c->skipping_line = false;
            break;
        case LINE_TOO_LONG:
            c->skipping_line = eol.pos < 0;
            verbs_reject(c, ERR_REQUEST_TOO_LONG);
            break;
        case LINE_BREAK:
            conn_close(c, "break-character");
            return;
        case LINE_OK:
            verbs_request(c, buf, line_len);
            break;
        }
        evbuffer_drain(in, consumed);
    }
}

static void line_on_open(struct conn *c)
{
    verbs_session_start(c);
}

/* A message on a line connection is its JSON and the "\r\n" msg.c keeps
 * after it: no header, m->len + 2 bytes straight from the shared buffer. */
static size_t line_frame(const struct msg *m, uint8_t *header, size_t *body_len)
{
    (void)header;
    *body_len = m->len + 2;
    return 0;
}

const struct conn_proto line_proto = {
    .on_open = line_on_open,
    .on_read = line_on_read,
    .frame = line_frame,
    .send_close = NULL,
};
