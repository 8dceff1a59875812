/* proto.h -- the transports' framing, chosen per connection. */
#ifndef ROOMD_PROTO_H
#define ROOMD_PROTO_H

#include <stddef.h>

#include "worker.h"

struct conn_proto;

extern const struct conn_proto line_proto; /* proto_line.c */
extern const struct conn_proto ws_proto;   /* proto_ws.c */

static inline const struct conn_proto *proto_for(enum transport t)
{
    return t == TRANSPORT_WEBSOCKET ? &ws_proto : &line_proto;
}

/* The line transport's framing, for unit tests and fuzzing: scan BUF for the
 * next request line.  Returns a line_scan result and sets *LINE_LEN (bytes
 * of the line without "\r\n") and *CONSUMED (bytes to drain). */
enum line_scan {
    LINE_NONE,     /* no complete line yet */
    LINE_OK,       /* a line of *LINE_LEN bytes at BUF */
    LINE_EMPTY,    /* an empty line: drain it, no reply, not counted */
    LINE_TOO_LONG, /* longer than MAX: reply once, drain, skip to its end */
    LINE_BREAK,    /* telnet break or a lone Ctrl-D: end the session */
};
enum line_scan line_scan(const char *buf, size_t len, size_t max, int skipping, size_t *line_len,
                         size_t *consumed);

#endif
