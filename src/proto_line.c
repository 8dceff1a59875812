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

/* A partial line is made contiguous again each time it has doubled since
 * the last time, from this size on: each byte is then copied at most about
 * twice however long the line grows (linear), and the partial line stays in
 * a few large chunks instead of one small chunk per read (a hundred
 * trickled 64 KiB lines would otherwise scatter thousands of small chunks
 * over the heap, which it does not give back once they are freed). */
#define LINE_PULLUP_MIN 4096

/* Where in IN a search for NEEDLE (LEN bytes) finds it at or after byte
 * FROM; -1 when it does not. */
static ev_ssize_t line_search(struct evbuffer *in, const char *needle, size_t len, size_t from)
{
    struct evbuffer_ptr start;
    if (evbuffer_ptr_set(in, &start, from, EVBUFFER_PTR_SET) < 0)
        return -1;
    return evbuffer_search(in, needle, len, &start).pos;
}

/* The input holds no end of line yet: what line_scan() would say of it,
 * decided from the bytes that arrived since the last look only.  The
 * search for the end of line and for a telnet break resumes where the last
 * one stopped (c->line_seen; a break may straddle it), and the partial
 * line is made contiguous only when it has doubled (LINE_PULLUP_MIN), so a
 * line arriving in many reads costs time linear in its length, not
 * quadratic.  Sets *CONSUMED like line_scan(). */
static enum line_scan line_partial(struct conn *c, struct evbuffer *in, size_t avail,
                                   size_t *consumed)
{
    size_t back = c->line_seen < sizeof(telnet_break) - 1 ? c->line_seen : sizeof(telnet_break) - 1;
    *consumed = avail;
    if (line_search(in, telnet_break, sizeof(telnet_break), c->line_seen - back) >= 0)
        return LINE_BREAK;
    c->line_seen = avail;
    if (avail > (size_t)settings.max_line + 1) /* +1: room for the CR of a full-length line */
        return c->skipping_line ? LINE_EMPTY : LINE_TOO_LONG;
    if (c->skipping_line)
        return LINE_EMPTY;
    *consumed = 0;
    if (avail >= LINE_PULLUP_MIN && avail >= 2 * c->line_pulled) {
        evbuffer_pullup(in, (ev_ssize_t)avail);
        c->line_pulled = avail;
    }
    return LINE_NONE;
}

/* Handle every complete line in the input buffer.  Only a complete line is
 * made contiguous (once), so a long pipeline costs one pass and a long line
 * one copy; a partial line is left where it is (line_partial). */
static void line_on_read(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->dead && !c->closing) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        ev_ssize_t eol = line_search(in, "\n", 1, c->line_seen);
        const char *buf = NULL;
        size_t line_len = 0, consumed = 0;
        enum line_scan r;
        if (eol < 0)
            r = line_partial(c, in, avail, &consumed);
        else {
            size_t span = (size_t)eol + 1;
            buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)span);
            r = line_scan(buf, span, (size_t)settings.max_line, c->skipping_line, &line_len,
                          &consumed);
        }
        switch (r) {
        case LINE_NONE:
            return;
        case LINE_EMPTY:
            if (eol >= 0)
                c->skipping_line = false;
            break;
        case LINE_TOO_LONG:
            c->skipping_line = eol < 0;
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
        c->line_seen = 0; /* what is left starts a line not searched yet */
        c->line_pulled = 0;
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
