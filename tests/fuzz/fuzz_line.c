/* fuzz_line.c -- libFuzzer harness for the TCP line framing, line_scan()
 * (src/proto.h), driven exactly as proto_line.c's line_on_read() drives it:
 * bytes arrive in reads of some size, each scan sees the buffer up to its
 * first newline, consumed bytes are drained, an overlong line sets the
 * skipping state until its newline.
 *
 * Input layout: byte 0 picks max_line (FUZZ_MIN_MAX + its low 6 bits, so
 * overlong lines are cheap to reach), byte 1 the read size (0: everything
 * in one read).  The rest is the byte stream from the client.
 *
 * Oracle: the same stream cut into lines at '\n' all at once, which is
 * what PROTOCOL.md promises whatever the reads: every line (without its
 * "\r") of 1..max bytes is one request, an empty line nothing, a longer
 * one a single "request too long", a line holding the telnet break or only
 * Ctrl-D ends the session; an unfinished line longer than max + 1 bytes
 * (room for its CR) is already too long.  The one place the reads may
 * matter is a telnet break inside an overlong line: its bytes can be
 * drained before the break is complete, so from such a line on nothing
 * more is compared.  Also checked on every scan: progress (consumed > 0
 * unless LINE_NONE), consumed within the scanned span, line_len within
 * max and no newline inside a line.  ASan/UBSan catch the rest.
 *
 * Build and run: tests/fuzz/run_fuzz.sh (scripts/test does it). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define FUZZ_MIN_MAX 16
#define MAX_BITS 0x3fu
#define HEADER_BYTES 2

static const char telnet_break[] = {(char)0xff, (char)0xf4, (char)0xff, (char)0xfd, 0x06};

/* One framing event: a request line (start, length), a refusal or the end. */
enum event_kind { EV_LINE, EV_TOO_LONG, EV_BREAK };
struct event {
    enum event_kind kind;
    const char *line;
    size_t len;
};

struct events {
    struct event *ev;
    size_t n, cap;
    bool uncertain; /* from here on the reads may legitimately change things */
};

static void push(struct events *e, enum event_kind kind, const char *line, size_t len)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 16;
        e->ev = realloc(e->ev, e->cap * sizeof(*e->ev));
        if (!e->ev)
            abort();
    }
    e->ev[e->n++] = (struct event){kind, line, len};
}

static bool has_break(const char *s, size_t len)
{
    return memmem(s, len, telnet_break, sizeof(telnet_break)) != NULL;
}

/* The oracle: the whole stream at once. */
static void expected_events(const char *data, size_t size, size_t max, struct events *out)
{
    size_t off = 0;
    while (off < size) {
        const char *line = data + off;
        const char *nl = memchr(line, '\n', size - off);
        size_t raw = nl ? (size_t)(nl - line) : size - off;
        size_t n = raw;
        if (nl && n > 0 && line[n - 1] == '\r')
            n--;
        bool overlong = nl ? n > max : raw > max + 1;
        if (has_break(line, raw)) {
            if (overlong)
                out->uncertain = true;
            else
                push(out, EV_BREAK, NULL, 0);
            return;
        }
        if (overlong)
            push(out, EV_TOO_LONG, NULL, 0);
        else if (!nl)
            return; /* an unfinished line waits for more */
        else if (n == 1 && line[0] == 0x04) {
            push(out, EV_BREAK, NULL, 0);
            return;
        } else if (n > 0)
            push(out, EV_LINE, line, n);
        if (!nl)
            return; /* the tail of an overlong line: skipped */
        off += raw + 1;
    }
}

/* What proto_line.c does with reads of STEP bytes. */
static void actual_events(const char *data, size_t size, size_t max, size_t step,
                          struct events *out)
{
    char *buf = malloc(size + 1); /* the connection's input buffer */
    if (!buf)
        abort();
    size_t have = 0, off = 0;
    int skipping = 0;
    while (off < size) {
        size_t n = step && step < size - off ? step : size - off;
        memcpy(buf + have, data + off, n);
        have += n;
        off += n;
        while (have > 0) {
            const char *nl = memchr(buf, '\n', have);
            size_t span = nl ? (size_t)(nl - buf) + 1 : have;
            size_t line_len = (size_t)-1, consumed = (size_t)-1;
            enum line_scan r = line_scan(buf, span, max, skipping, &line_len, &consumed);
            if (r == LINE_NONE) {
                if (consumed != 0 || nl || skipping || span > max + 1)
                    abort();
                break;
            }
            if (consumed == 0 || consumed > span)
                abort();
            switch (r) {
            case LINE_EMPTY:
                if (nl)
                    skipping = 0;
                break;
            case LINE_TOO_LONG:
                if (skipping)
                    abort(); /* one refusal per line */
                skipping = !nl;
                push(out, EV_TOO_LONG, NULL, 0);
                break;
            case LINE_BREAK:
                push(out, EV_BREAK, NULL, 0);
                free(buf);
                return;
            case LINE_OK:
                if (skipping || line_len == 0 || line_len > max || !nl ||
                    memchr(buf, '\n', line_len) || consumed < line_len + 1 ||
                    consumed > line_len + 2)
                    abort();
                /* The line is copied: the buffer moves on below. */
                push(out, EV_LINE, data + off - have, line_len);
                break;
            case LINE_NONE:
                break;
            }
            memmove(buf, buf + consumed, have - consumed);
            have -= consumed;
        }
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER_BYTES)
        return 0;
    size_t max = FUZZ_MIN_MAX + (data[0] & MAX_BITS);
    size_t step = data[1];
    const char *stream = (const char *)data + HEADER_BYTES;
    size -= HEADER_BYTES;

    struct events want = {0}, got = {0};
    expected_events(stream, size, max, &want);
    actual_events(stream, size, max, step, &got);
    size_t n = want.n < got.n ? want.n : got.n;
    if (!want.uncertain && want.n != got.n)
        abort();
    for (size_t i = 0; i < n; i++) {
        const struct event *w = &want.ev[i], *g = &got.ev[i];
        if (w->kind != g->kind)
            abort();
        if (w->kind == EV_LINE && (w->len != g->len || memcmp(w->line, g->line, w->len) != 0))
            abort();
    }
    free(want.ev);
    free(got.ev);
    return 0;
}
