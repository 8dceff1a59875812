/* benchmark.c -- roomd-benchmark: a fan-out load generator for roomd and,
 * for comparison, Redis pub/sub (redis-benchmark's shape: one process, one
 * epoll loop, no threads).
 *
 * S subscriber connections join one room (roomd: `roomChange ROOM`; Redis:
 * SUBSCRIBE ROOM).  P publisher connections say B-byte messages into it
 * (roomd: `say TEXT`; Redis: PUBLISH ROOM TEXT), either
 *   - as fast as the server takes them: each publisher keeps at most
 *     `window` messages in flight, a message leaving the window once every
 *     recipient has received it, so the server's buffers stay bounded; or
 *   - at a fixed offered rate of deliveries per second (--rate).
 * In idle mode the subscribers join and just stay, for a memory measurement.
 *
 * Every message carries a stamp "rb<pub>.<seq>.<ns>." (hex) ahead of its
 * filler: the publisher, its sequence number and the monotonic send time.
 * Each recipient checks that every publisher's sequence arrives complete and
 * in order, so the report can say lost = expected - delivered, duplicates
 * and out-of-order arrivals; the send time gives the latency histogram.
 *
 * With roomd a publisher is a member of the room too and hears the other
 * publishers (never itself), so a message has S + P - 1 recipients there and
 * S with Redis; with one publisher (what scripts/bench runs) both are S.
 *
 * One address has ~28k ephemeral ports, so connections to a loopback server
 * are spread over several 127.0.0.x source addresses (bound before connect,
 * the port chosen at connect time: IP_BIND_ADDRESS_NO_PORT).
 *
 * With --tls every connection speaks TLS (bench_tls.c) to roomd's tls_port
 * or wss_port; the handshakes are made while connecting, before anything is
 * measured. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "bench_tls.h"
#include <openssl/evp.h>
#include <openssl/sha.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* Bytes read from one socket at a time (the shared read buffer). */
#define READ_CHUNK (256 * 1024)
/* Largest WebSocket frame or message taken from a server: NATS writes what
 * a lagging subscriber has pending as one frame, several MB at S = 100. */
#define MAX_WS_FRAME (64 * 1024 * 1024)
/* Largest payload: a say line must stay under roomd's default max_line. */
#define MAX_PAYLOAD 60000
/* The stamp's magic prefix; a chat line whose text starts otherwise (an
 * announcement, a notice) is not ours and is ignored. */
#define STAMP_MAGIC "rb"
/* Smallest payload that holds a stamp (one with huge numbers runs over; the
 * payload is then the stamp alone); the longest possible stamp. */
#define MIN_PAYLOAD 40
#define STAMP_MAX 64
/* Default window: about this many deliveries in flight per publisher (enough
 * for a server to batch, and ~90 MB of output at most), 1..WINDOW_MAX
 * messages. */
#define WINDOW_DELIVERIES 524288
#define WINDOW_MAX 4096
/* Events taken from epoll per call. */
#define MAX_EVENTS 1024
/* Latency histogram: values below 2^SUB_BITS ns are exact, above they keep
 * SUB_BITS significant bits (under 1 % error), as HdrHistogram does. */
#define SUB_BITS 7
#define HIST_BUCKETS ((64 - SUB_BITS + 1) << (SUB_BITS - 1))
/* A run stops early when nothing was delivered for this long. */
#define STALL_SEC 5.0
/* A rate-mode send this late (ns) counts as late. */
#define LATE_NS 1000000

/* ------------------------------------------------------------ settings */

/* What the server speaks (the protocol template): roomd's verbs, Redis' RESP,
 * NATS' text protocol, Socket.IO 4 (Engine.IO v4, WebSocket only) and nginx +
 * nchan (subscribers on ws://HOST/sub/ROOM, the publisher POSTs to
 * /pub/ROOM over keep-alive HTTP, pipelined within the window). */
enum target { TARGET_ROOMD, TARGET_REDIS, TARGET_NATS, TARGET_SOCKETIO, TARGET_NCHAN };
enum mode { MODE_THROUGHPUT, MODE_RATE, MODE_IDLE };

static struct options {
    enum target target;
    const char *host;
    int port;
    const char *room;
    int subscribers;
    int publishers;
    int stalled; /* extra members that never read */
    int payload;
    double duration;
    double warmup;
    double rate; /* offered deliveries per second; 0: as fast as possible */
    int window;  /* messages in flight per publisher */
    int sources; /* 127.0.0.x source addresses for a loopback server */
    int connect_burst;
    double connect_timeout;
    double drain_timeout;
    double idle; /* idle mode: seconds to hold (0: until a signal) */
    bool idle_mode;
    long pid; /* server process to measure (CPU, RSS); 0: none */
    bool json;
    bool busy_poll;      /* never sleep in epoll_wait during the run */
    bool websocket;      /* RFC 6455 instead of the plain TCP protocol */
    const char *ws_path; /* the upgrade request's path; NULL: the target's */
    bool tls;            /* every connection over TLS */
    const char *tls_ca;  /* the CA file that signed the server's certificate */
} opt = {
    .target = TARGET_ROOMD,
    .host = "127.0.0.1",
    .port = 0,
    .room = "bench",
    .subscribers = 100,
    .publishers = 1,
    .payload = 100,
    .duration = 5.0,
    .warmup = 1.0,
    .window = 0,
    .sources = 8,
    .connect_burst = 256,
    .connect_timeout = 60.0,
    .drain_timeout = 10.0,
};

/* ------------------------------------------------------------- helpers */

static uint64_t clock_origin;

/* Monotonic nanoseconds since the program started (fits the stamp). */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec - clock_origin;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("roomd-benchmark: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        die("out of memory");
    return p;
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ------------------------------------------------------------ histogram */

static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_count, hist_max;

static int hist_index(uint64_t v)
{
    if (v < (1u << SUB_BITS))
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - (SUB_BITS - 1);
    return (shift << (SUB_BITS - 1)) + (int)(v >> shift);
}

/* The largest value that falls into bucket I. */
static uint64_t hist_value(int i)
{
    if (i < (1 << SUB_BITS))
        return (uint64_t)i;
    int shift = (i >> (SUB_BITS - 1)) - 1;
    uint64_t top = (uint64_t)(i - (shift << (SUB_BITS - 1)));
    return ((top + 1) << shift) - 1;
}

static void hist_add(uint64_t ns)
{
    hist[hist_index(ns)]++;
    hist_count++;
    if (ns > hist_max)
        hist_max = ns;
}

/* The Q-quantile in microseconds (0 when empty). */
static double hist_quantile_us(double q)
{
    if (hist_count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)hist_count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return (double)(v < hist_max ? v : hist_max) / 1000.0;
        }
    }
    return (double)hist_max / 1000.0;
}

/* ----------------------------------------------------------- connections */

/* A stalled connection joins like a subscriber, then is never read again: a
 * slow client, whose effect on everybody else the run shows. */
enum role { ROLE_SUB, ROLE_PUB, ROLE_STALLED };
enum cstate { CS_CONNECTING, CS_HANDSHAKE, CS_JOINING, CS_READY, CS_CLOSED };
enum resp_kind { RESP_OTHER, RESP_MESSAGE, RESP_SUBSCRIBE };

struct bconn {
    int fd;
    uint8_t role;          /* enum role */
    uint8_t state;         /* enum cstate */
    uint8_t ws;            /* speaks WebSocket (all but an nchan publisher with --websocket) */
    uint8_t frag_op;       /* opcode of the fragmented message being gathered */
    uint8_t nats_msg_next; /* NATS: the next line is a MSG's payload */
    uint32_t frag_len;
    char *frag; /* a fragmented message's data so far */
    uint32_t stream_len;
    char *stream; /* NATS over WebSocket: an incomplete line across frames */
    /* Redis' RESP, read line by line (our bulk strings hold no CRLF). */
    uint8_t resp_bulk_next; /* the next line is a bulk string's data */
    uint8_t resp_kind;      /* enum resp_kind of the array being read */
    int32_t resp_left;      /* elements left in the array being read */
    int32_t resp_elem;      /* index of the next element */
    uint32_t recv_index;    /* index among recipients (subscribers first) */
    uint32_t partial_len;
    char *partial; /* an incomplete line kept from the last read */
    void *tls;     /* the TLS session (--tls), else NULL */
};

struct publisher {
    struct bconn *conn;
    uint64_t sent;       /* messages generated; the next sequence number */
    uint64_t done;       /* every message below it reached all recipients */
    uint64_t replies;    /* OK / integer replies received */
    uint32_t *remaining; /* ring of `window`: recipients still missing seq */
    char *out;           /* bytes not yet written */
    size_t out_len, out_off, out_cap;
    bool want_write;
};

static struct bench_tls *tls_client; /* --tls: the client context */
static struct bconn *conns;          /* subscribers, then publishers */
static int nconns;
static struct publisher *pubs;
static int npubs;
static int recv_per_msg;   /* recipients of one message */
static int recv_alive;     /* recipients of one message still connected */
static uint32_t *next_seq; /* [recipient][publisher]: next expected seq */
static int epfd, timer_fd;
static char *rbuf;
static size_t rbuf_cap; /* grows past READ_CHUNK to hold a big frame's start */

/* Counters. */
static struct {
    uint64_t expected;      /* recipients x messages, counted at send */
    uint64_t delivered;     /* first arrivals of a stamped message */
    uint64_t duplicates;    /* a sequence number at or below one seen */
    uint64_t out_of_order;  /* a sequence number past the next expected */
    uint64_t measured;      /* deliveries inside the measured interval */
    uint64_t published;     /* messages sent */
    uint64_t measured_sent; /* messages sent inside the measured interval */
    uint64_t errors;        /* error replies */
    uint64_t closed;        /* connections the server closed */
    uint64_t late;          /* rate mode: sends more than LATE_NS late */
    uint64_t max_lag;       /* rate mode: the latest send, ns after its time */
    uint64_t foreign;       /* messages without our stamp (ignored) */
    uint64_t last_progress; /* ns of the last delivery */
    int ready;
    int pending; /* connecting or joining */
    char first_error[256];
} st;

static uint64_t t_measure, t_end; /* ns: measured interval [t_measure, t_end) */
static bool measuring_latency;

static void note_error(const char *text, size_t len)
{
    st.errors++;
    if (!st.first_error[0]) {
        if (len >= sizeof(st.first_error))
            len = sizeof(st.first_error) - 1;
        memcpy(st.first_error, text, len);
        st.first_error[len] = '\0';
    }
}

static void epoll_set(struct bconn *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
}

static struct publisher *publisher_of(const struct bconn *c)
{
    return c->role == ROLE_PUB ? &pubs[c->recv_index - (uint32_t)opt.subscribers] : NULL;
}

/* Advance P's window past every message that reached all its recipients. */
static void publisher_advance(struct publisher *p)
{
    uint32_t w = (uint32_t)opt.window;
    while (p->done < p->sent && p->remaining[p->done % w] == 0)
        p->done++;
}

/* A recipient is gone: the messages in flight it had not received will not
 * wait for it any more (they stay counted as expected, hence lost). */
static void recipient_gone(struct bconn *c)
{
    if ((c->role == ROLE_PUB && opt.target != TARGET_ROOMD) || c->role == ROLE_STALLED)
        return; /* only roomd's publishers hear; stalled ones are not counted */
    recv_alive--;
    for (int i = 0; i < npubs; i++) {
        struct publisher *p = &pubs[i];
        if (c->role == ROLE_PUB && p == publisher_of(c))
            continue;
        uint64_t from = next_seq[(size_t)c->recv_index * (size_t)npubs + (size_t)i];
        if (from < p->done)
            from = p->done;
        for (uint64_t s = from; s < p->sent; s++)
            if (p->remaining[s % (uint64_t)opt.window] > 0)
                p->remaining[s % (uint64_t)opt.window]--;
        publisher_advance(p);
    }
}

static void conn_closed(struct bconn *c, const char *why)
{
    if (c->state == CS_CLOSED)
        return;
    if (c->state != CS_READY) {
        if (opt.idle_mode || st.ready < nconns)
            die("connection %d: %s", (int)(c - conns), why);
    }
    c->state = CS_CLOSED;
    st.closed++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    bench_tls_close(c->tls);
    c->tls = NULL;
    close(c->fd);
    free(c->partial);
    c->partial = NULL;
    c->partial_len = 0;
    free(c->frag);
    c->frag = NULL;
    free(c->stream);
    c->stream = NULL;
    recipient_gone(c);
    if (!st.first_error[0])
        snprintf(st.first_error, sizeof(st.first_error), "connection closed: %s", why);
}

/* ------------------------------------------------------------ transport */

/* Every byte a connection reads or writes goes through these two, so that
 * another transport (TLS) can be slotted in per connection later; they
 * behave as read(2) and write(2) on a non-blocking socket. */
static ssize_t conn_recv(struct bconn *c, void *buf, size_t len)
{
    return c->tls ? bench_tls_read(c->tls, buf, len) : read(c->fd, buf, len);
}

static ssize_t conn_send(struct bconn *c, const void *buf, size_t len)
{
    return c->tls ? bench_tls_write(c->tls, buf, len) : write(c->fd, buf, len);
}

/* ------------------------------------------------------------ WebSocket */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_OP_CONT 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xA
/* Longest frame header a client writes: 2 + 8 (length) + 4 (mask). */
#define WS_HEAD_MAX 14

static uint64_t key_seed; /* random per run: the handshake keys */
static uint64_t mask_state;

/* xorshift64*: masking keys need not be secret here, only varied. */
static uint32_t ws_mask_key(void)
{
    mask_state ^= mask_state >> 12;
    mask_state ^= mask_state << 25;
    mask_state ^= mask_state >> 27;
    return (uint32_t)((mask_state * 2685821657736338717ull) >> 32);
}

/* The Sec-WebSocket-Key of connection INDEX (base64 of 16 bytes derived
 * from the run's seed, so it need not be stored) into KEY[25]. */
static void ws_key(int index, char key[25])
{
    unsigned char raw[16];
    uint64_t a = key_seed ^ ((uint64_t)index * 0x9e3779b97f4a7c15ull);
    uint64_t b = ~a * 0xff51afd7ed558ccdull;
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &b, 8);
    EVP_EncodeBlock((unsigned char *)key, raw, 16);
}

/* The Sec-WebSocket-Accept a server must answer KEY with (RFC 6455 4.2.2)
 * into ACCEPT[29]. */
static void ws_accept_for(const char *key, char accept[29])
{
    char both[24 + sizeof(WS_GUID)];
    unsigned char digest[SHA_DIGEST_LENGTH];
    int n = snprintf(both, sizeof(both), "%s" WS_GUID, key);
    SHA1((const unsigned char *)both, (size_t)n, digest);
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);
}

/* Write a masked client frame header for a final frame of OPCODE carrying
 * LEN bytes into HEAD; returns its length and the mask in *MASK. */
static size_t ws_head(unsigned char *head, int opcode, size_t len, uint32_t *mask)
{
    size_t n = 0;
    head[n++] = (unsigned char)(0x80 | opcode);
    if (len < 126)
        head[n++] = (unsigned char)(0x80 | len);
    else if (len <= 0xffff) {
        head[n++] = 0x80 | 126;
        head[n++] = (unsigned char)(len >> 8);
        head[n++] = (unsigned char)len;
    } else {
        head[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            head[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    *mask = ws_mask_key();
    memcpy(head + n, mask, 4);
    return n + 4;
}

/* Copy LEN bytes of SRC to DST masked with MASK (RFC 6455 5.3). */
static void ws_mask_copy(char *dst, const char *src, size_t len, uint32_t mask)
{
    unsigned char m[4];
    memcpy(m, &mask, 4);
    size_t i = 0;
    uint64_t m8 = (uint64_t)mask | ((uint64_t)mask << 32);
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m8;
        memcpy(dst + i, &v, 8);
    }
    for (; i < len; i++)
        dst[i] = (char)(src[i] ^ m[i & 3]);
}

/* ------------------------------------------------------------ messages */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Parse "HEX." at *S (not past END); false when malformed. */
static bool parse_hex(const char **s, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = *s;
    int digits = 0;
    while (p < end && *p != '.') {
        int h = hexval((unsigned char)*p++);
        if (h < 0 || ++digits > 16)
            return false;
        v = (v << 4) | (uint64_t)h;
    }
    if (p == end || digits == 0)
        return false;
    *s = p + 1;
    *out = v;
    return true;
}

/* Write the stamp for (PUB, SEQ, NS) and filler up to opt.payload bytes
 * into DST; returns the payload length. */
static size_t stamp_write(char *dst, int pub, uint64_t seq, uint64_t ns)
{
    int n = snprintf(dst, STAMP_MAX, STAMP_MAGIC "%x.%llx.%llx.", (unsigned)pub,
                     (unsigned long long)seq, (unsigned long long)ns);
    size_t len = (size_t)n;
    if (len < (size_t)opt.payload) {
        memset(dst + len, 'x', (size_t)opt.payload - len);
        len = (size_t)opt.payload;
    }
    return len;
}

/* A stamped payload TEXT (LEN bytes, up to the end of the message text)
 * arrived at recipient C at time NOW. */
static void delivered(struct bconn *c, const char *text, size_t len, uint64_t now)
{
    const char *s = text + sizeof(STAMP_MAGIC) - 1, *end = text + len;
    uint64_t pub, seq, sent_ns;
    if (len < sizeof(STAMP_MAGIC) - 1 || memcmp(text, STAMP_MAGIC, sizeof(STAMP_MAGIC) - 1) ||
        !parse_hex(&s, end, &pub) || !parse_hex(&s, end, &seq) || !parse_hex(&s, end, &sent_ns) ||
        pub >= (uint64_t)npubs) {
        st.foreign++;
        return;
    }
    struct publisher *p = &pubs[pub];
    uint32_t *next = &next_seq[(size_t)c->recv_index * (size_t)npubs + pub];
    if (seq < *next) {
        st.duplicates++;
        return;
    }
    if (seq > *next)
        st.out_of_order++;
    *next = (uint32_t)(seq + 1);
    st.delivered++;
    st.last_progress = now;
    if (now >= t_measure && now < t_end)
        st.measured++;
    if (measuring_latency && sent_ns >= t_measure && now >= sent_ns)
        hist_add(now - sent_ns);
    if (seq >= p->done && seq < p->sent) {
        uint32_t *left = &p->remaining[seq % (uint64_t)opt.window];
        if (*left > 0 && --*left == 0)
            publisher_advance(p);
    }
}

static void conn_ready(struct bconn *c)
{
    if (c->state == CS_READY)
        return;
    c->state = CS_READY;
    st.ready++;
    st.pending--;
    if (c->role == ROLE_STALLED) /* from now on, never read */
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

/* One line from roomd (JSON, "\r\n" already removed). */
static void roomd_line(struct bconn *c, const char *line, size_t len, uint64_t now)
{
    static const char chat[] = "{\"message\":\"";
    static const char status[] = "{\"status\":\"";
    if (len > sizeof(chat) - 1 && !memcmp(line, chat, sizeof(chat) - 1)) {
        const char *text = line + sizeof(chat) - 1;
        const char *quote = memchr(text, '"', len - (size_t)(text - line));
        if (quote)
            delivered(c, text, (size_t)(quote - text), now);
        else
            st.foreign++;
        return;
    }
    if (len > sizeof(status) - 1 && !memcmp(line, status, sizeof(status) - 1)) {
        const char *text = line + sizeof(status) - 1;
        size_t rest = len - (sizeof(status) - 1);
        if (rest >= 3 && !memcmp(text, "OK\"", 3)) {
            if (c->state == CS_JOINING)
                conn_ready(c);
            else if (c->role == ROLE_PUB)
                publisher_of(c)->replies++;
            return;
        }
        const char *quote = memchr(text, '"', rest);
        size_t tlen = quote ? (size_t)(quote - text) : rest;
        if (c->state == CS_JOINING) {
            static const char already[] = "connection already in this room";
            if (tlen == sizeof(already) - 1 && !memcmp(text, already, tlen)) {
                conn_ready(c); /* the server's default room is ours */
                return;
            }
            die("joining room '%s': %.*s%s", opt.room, (int)tlen, text,
                tlen == 19 && !memcmp(text, "room does not exist", 19)
                    ? " (start roomd with --starting-rooms=ROOM)"
                    : "");
        }
        if (tlen == 4 && !memcmp(text, "Bye!", 4))
            return; /* the goodbye; the close follows */
        if (c->role == ROLE_PUB)
            publisher_of(c)->replies++;
        note_error(text, tlen);
        return;
    }
    /* the welcome and anything else: nothing to count */
}

/* One RESP line from Redis ("\r\n" removed); see struct bconn. */
static void redis_line(struct bconn *c, const char *line, size_t len, uint64_t now)
{
    if (c->resp_bulk_next) {
        c->resp_bulk_next = 0;
        if (c->resp_elem == 0) {
            if (len == 7 && !memcmp(line, "message", 7))
                c->resp_kind = RESP_MESSAGE;
            else if (len == 9 && !memcmp(line, "subscribe", 9))
                c->resp_kind = RESP_SUBSCRIBE;
            else
                c->resp_kind = RESP_OTHER;
        } else if (c->resp_elem == 2 && c->resp_kind == RESP_MESSAGE)
            delivered(c, line, len, now);
        c->resp_elem++;
        c->resp_left--;
        return;
    }
    if (len == 0)
        return;
    switch (line[0]) {
    case '*':
        c->resp_left = atoi(line + 1);
        c->resp_elem = 0;
        c->resp_kind = RESP_OTHER;
        return;
    case '$':
        if (line[1] == '-') { /* a null bulk string */
            if (c->resp_left > 0) {
                c->resp_elem++;
                c->resp_left--;
            }
        } else
            c->resp_bulk_next = 1;
        return;
    case ':':
        if (c->resp_left > 0) {
            if (c->resp_kind == RESP_SUBSCRIBE && c->resp_elem == 2 && c->state == CS_JOINING)
                conn_ready(c);
            c->resp_elem++;
            c->resp_left--;
        } else if (c->role == ROLE_PUB)
            publisher_of(c)->replies++;
        return;
    case '+':
        if (c->state == CS_JOINING)
            conn_ready(c); /* PONG */
        return;
    case '-':
        if (c->state == CS_JOINING)
            die("redis: %.*s", (int)len - 1, line + 1);
        if (c->role == ROLE_PUB)
            publisher_of(c)->replies++;
        note_error(line + 1, len - 1);
        return;
    default:
        return;
    }
}

/* What a new connection sends once it can speak (see on_connected). */
static void send_msg(struct bconn *c, int opcode, const char *data, size_t len);
static void send_hello(struct bconn *c);
static void start_session(struct bconn *c);

/* One NATS protocol line ("\r\n" removed): INFO starts the session, MSG
 * announces a payload on the next line (ours hold no line break), PING
 * wants a PONG, our PING's PONG means the CONNECT and SUB are done. */
static void nats_line(struct bconn *c, const char *line, size_t len, uint64_t now)
{
    if (c->nats_msg_next) {
        c->nats_msg_next = 0;
        delivered(c, line, len, now);
        return;
    }
    if (len >= 4 && !memcmp(line, "MSG ", 4)) {
        c->nats_msg_next = 1;
        return;
    }
    if (len == 4 && !memcmp(line, "PING", 4)) {
        send_msg(c, WS_OP_TEXT, "PONG\r\n", 6);
        return;
    }
    if (len == 4 && !memcmp(line, "PONG", 4)) {
        if (c->state == CS_JOINING)
            conn_ready(c);
        return;
    }
    if (len >= 5 && !memcmp(line, "INFO ", 5)) {
        if (c->state == CS_JOINING)
            send_hello(c);
        return;
    }
    if (len >= 4 && !memcmp(line, "-ERR", 4)) {
        if (c->state == CS_JOINING)
            die("nats: %.*s", (int)len, line);
        note_error(line, len);
    }
    /* +OK and anything else: nothing to count */
}

/* One line of the HTTP responses an nchan publisher gets to its POSTs: a
 * status line counts as the reply to one message (2xx, or an error). A
 * body without a final line break runs into the next status line, so
 * every "HTTP/1.1 " in the line counts. */
static void nchan_http_line(struct bconn *c, const char *line, size_t len, uint64_t now)
{
    (void)now;
    static const char http[] = "HTTP/1.1 ";
    const char *p = line, *end = line + len;
    while ((p = memmem(p, (size_t)(end - p), http, sizeof(http) - 1)) != NULL) {
        p += sizeof(http) - 1;
        if (c->role == ROLE_PUB)
            publisher_of(c)->replies++;
        if (p >= end || *p != '2')
            note_error(p - (sizeof(http) - 1), (size_t)(end - p) + sizeof(http) - 1);
    }
}

/* One Engine.IO v4 / Socket.IO 4 packet (one WebSocket message): "0{..}"
 * opens the session (we connect the default namespace with "40"), "40{..}"
 * is that connection (a subscriber then asks to join with an ack, id 1),
 * "431[..]" the join's ack, "2" a ping wanting "3", and
 * `42["msg","TEXT"]` a delivery. */
static void sio_message(struct bconn *c, const char *m, size_t len, uint64_t now)
{
    static const char event[] = "42[\"msg\",\"";
    if (len > sizeof(event) - 1 && !memcmp(m, event, sizeof(event) - 1)) {
        const char *text = m + sizeof(event) - 1;
        const char *quote = memchr(text, '"', len - (size_t)(text - m));
        if (quote)
            delivered(c, text, (size_t)(quote - text), now);
        else
            st.foreign++;
        return;
    }
    if (len == 1 && m[0] == '2') {
        send_msg(c, WS_OP_TEXT, "3", 1);
        return;
    }
    if (len >= 1 && m[0] == '0') {
        if (c->state == CS_JOINING)
            send_msg(c, WS_OP_TEXT, "40", 2);
        return;
    }
    if (len >= 2 && !memcmp(m, "40", 2)) {
        if (c->state != CS_JOINING)
            return;
        if (c->role == ROLE_PUB)
            conn_ready(c);
        else
            send_hello(c);
        return;
    }
    if (len >= 3 && !memcmp(m, "431", 3)) {
        if (c->state == CS_JOINING)
            conn_ready(c);
        return;
    }
    if (len >= 2 && !memcmp(m, "44", 2)) { /* connect_error */
        if (c->state != CS_READY)
            die("socket.io: %.*s", (int)len, m);
        note_error(m, len);
    }
}

/* One protocol line ("\r\n" removed) for the connection's target. */
static void proto_line(struct bconn *c, const char *line, size_t len, uint64_t now)
{
    switch (opt.target) {
    case TARGET_ROOMD:
        roomd_line(c, line, len, now);
        break;
    case TARGET_REDIS:
        redis_line(c, line, len, now);
        break;
    case TARGET_NATS:
        nats_line(c, line, len, now);
        break;
    case TARGET_NCHAN:
        nchan_http_line(c, line, len, now);
        break;
    case TARGET_SOCKETIO:
        break;
    }
}

/* Hand every complete line of BUF[0..LEN) to proto_line; returns the bytes
 * consumed (the start of an incomplete last line). */
static size_t split_lines(struct bconn *c, const char *buf, size_t len, uint64_t now)
{
    size_t pos = 0;
    for (;;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl)
            break;
        size_t end = (size_t)(nl - buf), line_len = end - pos;
        if (line_len > 0 && buf[end - 1] == '\r')
            line_len--;
        proto_line(c, buf + pos, line_len, now);
        pos = end + 1;
        if (c->state == CS_CLOSED)
            break;
    }
    return pos;
}

/* Keep LEN bytes at DATA as *KEEP (replacing what was kept). */
static void keep_bytes(char **keep, uint32_t *keep_len, const char *data, size_t len)
{
    if (len != *keep_len) {
        free(*keep);
        *keep = len ? malloc(len) : NULL;
        if (len && !*keep)
            die("out of memory");
    }
    if (len)
        memmove(*keep, data, len);
    *keep_len = (uint32_t)len;
}

/* A whole data message from a WebSocket peer: roomd sends one JSON object
 * per frame, Socket.IO one packet, nchan the published payload itself;
 * NATS sends its byte stream in frames, lines possibly split across them. */
static void ws_message(struct bconn *c, const char *m, size_t len, uint64_t now)
{
    switch (opt.target) {
    case TARGET_ROOMD:
        roomd_line(c, m, len, now);
        break;
    case TARGET_SOCKETIO:
        sio_message(c, m, len, now);
        break;
    case TARGET_NCHAN:
        delivered(c, m, len, now);
        break;
    case TARGET_NATS:
        if (c->stream_len == 0) {
            size_t used = split_lines(c, m, len, now);
            if (c->state != CS_CLOSED)
                keep_bytes(&c->stream, &c->stream_len, m + used, len - used);
        } else {
            size_t have = c->stream_len;
            char *joined = malloc(have + len);
            if (!joined)
                die("out of memory");
            memcpy(joined, c->stream, have);
            memcpy(joined + have, m, len);
            size_t used = split_lines(c, joined, have + len, now);
            if (c->state != CS_CLOSED)
                keep_bytes(&c->stream, &c->stream_len, joined + used, have + len - used);
            free(joined);
        }
        break;
    case TARGET_REDIS:
        break;
    }
}

/* Parse the server frames in BUF[0..LEN) (RFC 6455 5.2: 7-, 16- and 64-bit
 * lengths, fragmented messages gathered, ping answered with pong, close
 * answered and the connection closed); returns the bytes consumed (the
 * start of an incomplete frame). A protocol violation closes the
 * connection and counts as an error. */
static size_t ws_frames(struct bconn *c, const char *buf, size_t len, uint64_t now)
{
    size_t pos = 0;
    while (len - pos >= 2 && c->state != CS_CLOSED) {
        const unsigned char *h = (const unsigned char *)buf + pos;
        int fin = h[0] & 0x80, op = h[0] & 0x0f;
        uint64_t plen = h[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (len - pos < 4)
                break;
            plen = (uint64_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (plen == 127) {
            if (len - pos < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | h[2 + i];
            hl = 10;
        }
        const char *bad = NULL;
        if (h[1] & 0x80)
            bad = "a masked frame from the server";
        else if (h[0] & 0x70)
            bad = "a frame with a reserved bit set";
        else if (op >= WS_OP_CLOSE && (!fin || plen > 125))
            bad = "a fragmented or long control frame";
        else if ((op > WS_OP_BINARY && op < WS_OP_CLOSE) || op > WS_OP_PONG)
            bad = "a frame with a reserved opcode";
        else if (op == WS_OP_CONT && !c->frag_op)
            bad = "a continuation frame outside a message";
        else if ((op == WS_OP_TEXT || op == WS_OP_BINARY) && c->frag_op)
            bad = "a new message inside a fragmented one";
        else if (hl + plen > MAX_WS_FRAME)
            bad = "a frame larger than 64 MB";
        if (bad) {
            note_error(bad, strlen(bad));
            conn_closed(c, bad);
            break;
        }
        if (len - pos < hl + plen)
            break;
        const char *payload = buf + pos + hl;
        pos += hl + (size_t)plen;
        switch (op) {
        case WS_OP_PING:
            send_msg(c, WS_OP_PONG, payload, (size_t)plen);
            break;
        case WS_OP_PONG:
            break;
        case WS_OP_CLOSE: {
            char why[64];
            unsigned code =
                plen >= 2 ? (unsigned)((unsigned char)payload[0] << 8 | (unsigned char)payload[1])
                          : 1005;
            send_msg(c, WS_OP_CLOSE, payload, plen >= 2 ? 2 : 0);
            snprintf(why, sizeof(why), "close frame from the server (code %u)", code);
            conn_closed(c, why);
            break;
        }
        case WS_OP_TEXT:
        case WS_OP_BINARY:
            if (fin)
                ws_message(c, payload, (size_t)plen, now);
            else {
                c->frag_op = (uint8_t)op;
                c->frag_len = 0;
                keep_bytes(&c->frag, &c->frag_len, payload, (size_t)plen);
            }
            break;
        case WS_OP_CONT: {
            char *grown = realloc(c->frag, (size_t)c->frag_len + (size_t)plen + 1);
            if (!grown)
                die("out of memory");
            memcpy(grown + c->frag_len, payload, (size_t)plen);
            c->frag = grown;
            c->frag_len += (uint32_t)plen;
            if (c->frag_len > MAX_WS_FRAME) {
                note_error("a fragmented message too large", 30);
                conn_closed(c, "a fragmented message too large");
                break;
            }
            if (fin) {
                c->frag_op = 0;
                ws_message(c, c->frag, c->frag_len, now);
                free(c->frag);
                c->frag = NULL;
                c->frag_len = 0;
            }
            break;
        }
        }
    }
    return pos;
}

/* Check the server's answer to our upgrade request (HDR, LEN bytes up to
 * and with the blank line): status 101 and the Accept our key demands. */
static void ws_check_upgrade(struct bconn *c, const char *hdr, size_t len)
{
    if (len < 12 || memcmp(hdr, "HTTP/1.1 101", 12)) {
        const char *eol = memchr(hdr, '\r', len);
        die("connection %d: the WebSocket upgrade was refused: %.*s", (int)(c - conns),
            (int)(eol ? eol - hdr : (long)len), hdr);
    }
    char key[25], want[29];
    ws_key((int)(c - conns), key);
    ws_accept_for(key, want);
    static const char name[] = "\nsec-websocket-accept:";
    for (size_t i = 0; i + sizeof(name) - 1 < len; i++) {
        if (hdr[i] != '\n' || strncasecmp(hdr + i, name, sizeof(name) - 1))
            continue;
        const char *v = hdr + i + sizeof(name) - 1;
        while (v < hdr + len && *v == ' ')
            v++;
        if ((size_t)(hdr + len - v) >= 28 && !memcmp(v, want, 28) &&
            (v[28] == '\r' || v[28] == ' '))
            return;
        die("connection %d: wrong Sec-WebSocket-Accept (want %s)", (int)(c - conns), want);
    }
    die("connection %d: no Sec-WebSocket-Accept in the upgrade answer", (int)(c - conns));
}

/* Read what C has and hand it on: the upgrade answer, then frames (a
 * WebSocket connection) or lines (the plain protocols); keep the rest. The
 * shared buffer grows so that the kept start of a big frame plus one more
 * READ_CHUNK always fit. */
static void conn_read(struct bconn *c)
{
    size_t have = c->partial_len;
    if (have + READ_CHUNK > rbuf_cap) {
        char *grown = realloc(rbuf, have + READ_CHUNK);
        if (!grown)
            die("out of memory");
        rbuf = grown;
        rbuf_cap = have + READ_CHUNK;
    }
    if (have)
        memcpy(rbuf, c->partial, have);
    ssize_t n = conn_recv(c, rbuf + have, READ_CHUNK);
    if (n == 0) {
        conn_closed(c, "closed by the server");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_closed(c, strerror(errno));
        return;
    }
    uint64_t now = now_ns();
    size_t len = have + (size_t)n, pos = 0;
    if (c->state == CS_HANDSHAKE) {
        const char *blank = memmem(rbuf, len, "\r\n\r\n", 4);
        if (!blank) {
            if (len >= READ_CHUNK)
                die("an endless upgrade answer from the server");
            keep_bytes(&c->partial, &c->partial_len, rbuf, len);
            return;
        }
        pos = (size_t)(blank - rbuf) + 4;
        ws_check_upgrade(c, rbuf, pos);
        c->state = CS_JOINING;
        start_session(c);
    }
    if (c->state != CS_CLOSED)
        pos += c->ws ? ws_frames(c, rbuf + pos, len - pos, now)
                     : split_lines(c, rbuf + pos, len - pos, now);
    if (c->state == CS_CLOSED)
        return;
    size_t rest = len - pos;
    if (!c->ws && rest >= READ_CHUNK)
        die("a line longer than %d bytes from the server", READ_CHUNK);
    keep_bytes(&c->partial, &c->partial_len, rbuf + pos, rest);
}

/* ----------------------------------------------------------- publishing */

static void out_reserve(struct publisher *p, size_t more)
{
    if (p->out_off > 0 && p->out_off == p->out_len)
        p->out_off = p->out_len = 0;
    if (p->out_len + more <= p->out_cap)
        return;
    if (p->out_off > 0) {
        memmove(p->out, p->out + p->out_off, p->out_len - p->out_off);
        p->out_len -= p->out_off;
        p->out_off = 0;
        if (p->out_len + more <= p->out_cap)
            return;
    }
    size_t cap = p->out_cap ? p->out_cap : 4096;
    while (cap < p->out_len + more)
        cap *= 2;
    char *out = realloc(p->out, cap);
    if (!out)
        die("out of memory");
    p->out = out;
    p->out_cap = cap;
}

static void out_add(struct publisher *p, const char *bytes, size_t len)
{
    out_reserve(p, len);
    memcpy(p->out + p->out_len, bytes, len);
    p->out_len += len;
}

/* Queue BODY (LEN bytes) as one message of OPCODE on P's connection: a
 * masked frame (WebSocket) or the bytes as they are. */
static void out_msg(struct publisher *p, int opcode, const char *body, size_t len)
{
    if (!p->conn->ws) {
        out_add(p, body, len);
        return;
    }
    unsigned char head[WS_HEAD_MAX];
    uint32_t mask;
    size_t hl = ws_head(head, opcode, len, &mask);
    out_reserve(p, hl + len);
    memcpy(p->out + p->out_len, head, hl);
    ws_mask_copy(p->out + p->out_len + hl, body, len, mask);
    p->out_len += hl + len;
}

static void publisher_flush(struct publisher *p);

/* Send one small message (a join, a pong, a close) on C: a publisher's
 * goes behind what it has queued, never into the middle of a frame. */
static void send_msg(struct bconn *c, int opcode, const char *data, size_t len)
{
    struct publisher *p = publisher_of(c);
    if (p) {
        out_msg(p, opcode, data, len);
        publisher_flush(p);
        return;
    }
    char buf[WS_HEAD_MAX + 1024];
    size_t n = len;
    if (len > sizeof(buf) - WS_HEAD_MAX)
        die("a request too long for one write");
    if (c->ws) {
        uint32_t mask;
        n = ws_head((unsigned char *)buf, opcode, len, &mask);
        ws_mask_copy(buf + n, data, len, mask);
        n += len;
    } else
        memcpy(buf, data, len);
    ssize_t w = conn_send(c, buf, n);
    if (w != (ssize_t)n)
        die("cannot send a request: %s", w < 0 ? strerror(errno) : "short write");
}

/* Queue one message from publisher P stamped with time NS, in the
 * target's publish form; a target that answers no publish counts the
 * reply at once. */
static void publish_one(struct publisher *p, uint64_t ns)
{
    char payload[MAX_PAYLOAD + STAMP_MAX + 600];
    int index = (int)(p - pubs);
    uint64_t seq = p->sent;
    const size_t room = strlen(opt.room);
    size_t at = 0, len;
    switch (opt.target) {
    case TARGET_ROOMD:
        memcpy(payload, "say ", 4);
        len = 4 + stamp_write(payload + 4, index, seq, ns);
        if (!p->conn->ws)
            payload[len++] = '\n';
        out_msg(p, WS_OP_TEXT, payload, len);
        break;
    case TARGET_REDIS: {
        char head[400];
        len = stamp_write(payload, index, seq, ns);
        int n = snprintf(head, sizeof(head), "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n", room,
                         opt.room, len);
        out_add(p, head, (size_t)n);
        out_add(p, payload, len);
        out_add(p, "\r\n", 2);
        break;
    }
    case TARGET_NATS: {
        char body[MAX_PAYLOAD + STAMP_MAX];
        len = stamp_write(body, index, seq, ns);
        at = (size_t)snprintf(payload, 400, "PUB %s %zu\r\n", opt.room, len);
        memcpy(payload + at, body, len);
        memcpy(payload + at + len, "\r\n", 2);
        out_msg(p, WS_OP_TEXT, payload, at + len + 2);
        p->replies++; /* verbose off: no +OK */
        break;
    }
    case TARGET_SOCKETIO:
        memcpy(payload, "42[\"pub\",\"", 10);
        len = 10 + stamp_write(payload + 10, index, seq, ns);
        memcpy(payload + len, "\"]", 2);
        out_msg(p, WS_OP_TEXT, payload, len + 2);
        p->replies++; /* no ack asked */
        break;
    case TARGET_NCHAN: {
        char head[600];
        len = stamp_write(payload, index, seq, ns);
        int n = snprintf(head, sizeof(head),
                         "POST /pub/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n\r\n",
                         opt.room, opt.host, len);
        out_add(p, head, (size_t)n);
        out_add(p, payload, len);
        break;
    }
    }
    p->remaining[seq % (uint64_t)opt.window] = (uint32_t)recv_alive;
    p->sent++;
    st.published++;
    st.expected += (uint64_t)recv_per_msg;
    if (ns >= t_measure && ns < t_end)
        st.measured_sent++;
    if (recv_alive == 0)
        publisher_advance(p);
}

/* Write what P has queued; wait for EPOLLOUT when the socket is full. */
static void publisher_flush(struct publisher *p)
{
    struct bconn *c = p->conn;
    if (c->state == CS_CLOSED)
        return;
    while (p->out_off < p->out_len) {
        ssize_t n = conn_send(c, p->out + p->out_off, p->out_len - p->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            conn_closed(c, strerror(errno));
            return;
        }
        p->out_off += (size_t)n;
    }
    bool want = p->out_off < p->out_len;
    if (want != p->want_write) {
        p->want_write = want;
        epoll_set(c, EPOLLIN | (want ? EPOLLOUT : 0), EPOLL_CTL_MOD);
    }
}

static bool window_open(const struct publisher *p)
{
    return p->conn->state == CS_READY && p->sent - p->done < (uint64_t)opt.window;
}

/* Max-throughput mode: fill every publisher's window. */
static void pump_throughput(uint64_t now)
{
    for (int i = 0; i < npubs; i++) {
        struct publisher *p = &pubs[i];
        bool any = false;
        while (window_open(p)) {
            publish_one(p, now);
            any = true;
        }
        if (any)
            publisher_flush(p);
    }
}

static uint64_t rate_next_due; /* ns of the next scheduled message */
static uint64_t rate_interval; /* ns between messages (all publishers) */
static int rate_turn;          /* the publisher whose turn it is */

/* Fixed-rate mode: send what is due, round-robin over the publishers; a
 * publisher with a full window holds its turn (the send is late). */
static void pump_rate(uint64_t now)
{
    bool any[npubs];
    memset(any, 0, sizeof(any));
    while (rate_next_due <= now && rate_next_due < t_end) {
        struct publisher *p = &pubs[rate_turn];
        if (!window_open(p))
            break;
        if (now - rate_next_due > LATE_NS)
            st.late++;
        if (now - rate_next_due > st.max_lag)
            st.max_lag = now - rate_next_due;
        publish_one(p, now);
        any[rate_turn] = true;
        rate_turn = (rate_turn + 1) % npubs;
        rate_next_due += rate_interval;
    }
    for (int i = 0; i < npubs; i++)
        if (any[i])
            publisher_flush(&pubs[i]);
    struct itimerspec its = {{0, 0}, {0, 0}};
    uint64_t due = rate_next_due + clock_origin;
    its.it_value.tv_sec = (time_t)(due / 1000000000u);
    its.it_value.tv_nsec = (long)(due % 1000000000u);
    timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* ----------------------------------------------------------- connecting */

static struct sockaddr_storage server_addr;
static socklen_t server_addrlen;
static bool loopback_server;
static int next_to_connect;

static void resolve_server(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    char port[16];
    snprintf(port, sizeof(port), "%d", opt.port);
    int rc = getaddrinfo(opt.host, port, &hints, &res);
    if (rc != 0)
        die("%s: %s", opt.host, gai_strerror(rc));
    memcpy(&server_addr, res->ai_addr, res->ai_addrlen);
    server_addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    if (server_addr.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&server_addr;
        loopback_server = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
}

/* The join request of a connection, once the server is ready for it: roomd
 * `roomChange ROOM` (publishers join too), Redis SUBSCRIBE (a publisher
 * PINGs to know it is up), NATS CONNECT + SUB (after INFO) then PING, whose
 * PONG says both are done, Socket.IO a `join` event asking for an ack. */
static void send_hello(struct bconn *c)
{
    char req[600];
    int n = 0;
    bool sub = c->role != ROLE_PUB;
    switch (opt.target) {
    case TARGET_ROOMD:
        n = snprintf(req, sizeof(req), "roomChange %s%s", opt.room, c->ws ? "" : "\n");
        break;
    case TARGET_REDIS:
        if (sub)
            n = snprintf(req, sizeof(req), "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n",
                         strlen(opt.room), opt.room);
        else
            n = snprintf(req, sizeof(req), "*1\r\n$4\r\nPING\r\n");
        break;
    case TARGET_NATS:
        n = snprintf(req, sizeof(req),
                     "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n%s%s%sPING\r\n",
                     sub ? "SUB " : "", sub ? opt.room : "", sub ? " 1\r\n" : "");
        break;
    case TARGET_SOCKETIO:
        n = snprintf(req, sizeof(req), "421[\"join\",\"%s\"]", opt.room);
        break;
    case TARGET_NCHAN:
        return;
    }
    send_msg(c, WS_OP_TEXT, req, (size_t)n);
}

/* A connection is up (and upgraded, with --websocket): roomd and Redis
 * get the join at once; NATS and Socket.IO speak first; nchan subscribes
 * by the upgrade's path and its publisher needs no setup. */
static void start_session(struct bconn *c)
{
    switch (opt.target) {
    case TARGET_ROOMD:
    case TARGET_REDIS:
        send_hello(c);
        break;
    case TARGET_NATS:
    case TARGET_SOCKETIO:
        break;
    case TARGET_NCHAN:
        conn_ready(c);
        break;
    }
}

/* The path of the upgrade request. */
static const char *ws_path(void)
{
    if (opt.ws_path)
        return opt.ws_path;
    switch (opt.target) {
    case TARGET_SOCKETIO:
        return "/socket.io/?EIO=4&transport=websocket";
    case TARGET_NCHAN:
        return NULL; /* /sub/ROOM */
    default:
        return "/";
    }
}

/* Send C's upgrade request (RFC 6455 4.1). */
static void ws_send_upgrade(struct bconn *c)
{
    char req[1024], key[25], path[300];
    const char *p = ws_path();
    if (!p) {
        snprintf(path, sizeof(path), "/sub/%s", opt.room);
        p = path;
    }
    ws_key((int)(c - conns), key);
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     p, opt.host, opt.port, key);
    if (n >= (int)sizeof(req) || conn_send(c, req, (size_t)n) != n)
        die("cannot send the upgrade request: %s", strerror(errno));
}

static void start_connect(struct bconn *c, int index)
{
    int fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s (connection %d; raise the open-file limit?)", strerror(errno), index);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (loopback_server && opt.sources > 1) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(index % opt.sources));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
            die("bind to 127.0.0.%d: %s", 1 + index % opt.sources, strerror(errno));
    }
    c->fd = fd;
    c->state = CS_CONNECTING;
    st.pending++;
    if (connect(fd, (struct sockaddr *)&server_addr, server_addrlen) < 0 && errno != EINPROGRESS)
        die("connect to %s:%d: %s", opt.host, opt.port, strerror(errno));
    epoll_set(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void connect_more(void)
{
    while (next_to_connect < nconns && st.pending < opt.connect_burst) {
        start_connect(&conns[next_to_connect], next_to_connect);
        next_to_connect++;
    }
}

static void on_connected(struct bconn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err)
        die("connect to %s:%d: %s", opt.host, opt.port, strerror(err));
    if (tls_client && !(c->tls = bench_tls_connect(tls_client, c->fd)))
        die("connection %d: no TLS session with %s:%d", (int)(c - conns), opt.host, opt.port);
    epoll_set(c, EPOLLIN, EPOLL_CTL_MOD);
    if (c->ws) {
        c->state = CS_HANDSHAKE;
        ws_send_upgrade(c);
        return;
    }
    c->state = CS_JOINING;
    start_session(c);
}

/* ------------------------------------------------------------ the loop */

static void handle_event(struct epoll_event *ev)
{
    if (ev->data.ptr == NULL) { /* the rate timer */
        uint64_t ticks;
        ssize_t rc = read(timer_fd, &ticks, sizeof(ticks));
        (void)rc;
        return;
    }
    struct bconn *c = ev->data.ptr;
    if (c->state == CS_CLOSED)
        return;
    if (c->state == CS_CONNECTING) {
        on_connected(c);
        return;
    }
    if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        conn_read(c);
        /* Bytes OpenSSL already took from the socket announce nothing. */
        while (c->tls && c->state != CS_CLOSED && bench_tls_pending(c->tls))
            conn_read(c);
    }
    if (c->state != CS_CLOSED && (ev->events & EPOLLOUT) && c->role == ROLE_PUB)
        publisher_flush(publisher_of(c));
}

/* Wait up to TIMEOUT_MS for events and handle them. */
static void poll_once(int timeout_ms)
{
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(epfd, events, MAX_EVENTS, timeout_ms);
    if (n < 0 && errno != EINTR)
        die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++)
        handle_event(&events[i]);
}

static double seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void connect_all(void)
{
    uint64_t deadline = now_ns() + (uint64_t)(opt.connect_timeout * 1e9);
    while (st.ready < nconns) {
        connect_more();
        poll_once(100);
        if (interrupted)
            die("interrupted while connecting");
        if (now_ns() > deadline)
            die("only %d of %d connections joined within %.0f s", st.ready, nconns,
                opt.connect_timeout);
    }
}

static bool all_done(void)
{
    for (int i = 0; i < npubs; i++) {
        const struct publisher *p = &pubs[i];
        if (p->conn->state == CS_CLOSED)
            continue;
        if (p->done < p->sent || p->replies < p->sent)
            return false;
    }
    return true;
}

/* ------------------------------------------------------- the server side */

struct proc_sample {
    double cpu_s; /* utime + stime */
    long rss_kb;
    bool ok;
};

/* utime + stime (every thread) and VmRSS of the server, from /proc. */
static struct proc_sample proc_sample(void)
{
    struct proc_sample s = {0};
    if (opt.pid <= 0)
        return s;
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%ld/stat", opt.pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return s;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may hold spaces */
    if (!p)
        return s;
    unsigned long utime = 0, stime = 0;
    /* after ") ": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return s;
    s.cpu_s = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%ld/status", opt.pid);
    f = fopen(path, "r");
    if (!f)
        return s;
    while (fgets(buf, sizeof(buf), f))
        if (!strncmp(buf, "VmRSS:", 6))
            s.rss_kb = strtol(buf + 6, NULL, 10);
    fclose(f);
    s.ok = true;
    return s;
}

static double client_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Publish for warm-up + duration, sampling the server (and ourselves) at
 * the measured interval's edges, then wait until everything is delivered
 * (or nothing moved for drain_timeout).  Returns the measured seconds. */
static double run_load(struct proc_sample *s0, struct proc_sample *s1, double *client_cpu)
{
    uint64_t start = now_ns();
    t_measure = start + (uint64_t)(opt.warmup * 1e9);
    t_end = t_measure + (uint64_t)(opt.duration * 1e9);
    measuring_latency = true;
    st.last_progress = start;
    if (opt.rate > 0) {
        double msgs = opt.rate / (recv_per_msg > 0 ? recv_per_msg : 1);
        rate_interval = (uint64_t)(1e9 / msgs);
        if (rate_interval == 0)
            rate_interval = 1;
        rate_next_due = start;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, timer_fd, &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }
    bool sampled = false;
    double cpu0 = 0;
    uint64_t stopped;
    for (;;) {
        uint64_t now = now_ns();
        if (!sampled && now >= t_measure) {
            *s0 = proc_sample();
            cpu0 = client_cpu_s();
            sampled = true;
        }
        if (now >= t_end || interrupted) {
            stopped = now;
            break;
        }
        if (opt.rate > 0)
            pump_rate(now);
        else
            pump_throughput(now);
        poll_once(opt.busy_poll ? 0 : opt.rate > 0 ? 10 : 1);
        now = now_ns();
        if (st.published > 0 && now > st.last_progress &&
            now - st.last_progress > (uint64_t)(STALL_SEC * 1e9)) {
            fprintf(stderr, "roomd-benchmark: nothing delivered for %.0f s, stopping\n", STALL_SEC);
            stopped = now;
            break;
        }
    }
    *s1 = proc_sample();
    *client_cpu = sampled ? client_cpu_s() - cpu0 : 0;
    if (!sampled)
        *s0 = *s1;
    uint64_t drain_from = now_ns();
    while (!all_done() && !interrupted) {
        poll_once(10);
        uint64_t now = now_ns();
        uint64_t since = st.last_progress > drain_from ? st.last_progress : drain_from;
        if (now - since > (uint64_t)(opt.drain_timeout * 1e9))
            break;
    }
    if (stopped > t_end)
        stopped = t_end;
    return stopped > t_measure ? seconds(stopped - t_measure) : 0;
}

/* ------------------------------------------------------------- reports */

/* How many stalled connections the server has closed (they are not read,
 * so the FIN is seen with POLLRDHUP while data is still pending). */
static int stalled_dropped(void)
{
    int n = 0;
    for (int i = opt.subscribers + opt.publishers; i < nconns; i++) {
        struct pollfd pfd = {.fd = conns[i].fd, .events = POLLRDHUP};
        if (conns[i].state == CS_CLOSED ||
            (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))))
            n++;
    }
    return n;
}

static const char *target_name(void)
{
    static const char *const names[] = {"roomd", "redis", "nats", "socketio", "nchan"};
    return names[opt.target];
}

static const char *mode_name(enum mode m)
{
    return m == MODE_IDLE ? "idle" : m == MODE_RATE ? "rate" : "throughput";
}

static void report_idle(double hold_s, struct proc_sample before, struct proc_sample after)
{
    FILE *out = opt.json ? stderr : stdout;
    fprintf(out, "roomd-benchmark: %s at %s:%d, idle mode, %d connections in room '%s'\n",
            target_name(), opt.host, opt.port, opt.subscribers, opt.room);
    fprintf(out, "  %-22s %.2f s\n", "held for", hold_s);
    double per_conn = 0;
    if (before.ok && after.ok) {
        per_conn = (double)(after.rss_kb - before.rss_kb) * 1024.0 / opt.subscribers;
        fprintf(out, "  %-22s %ld kB -> %ld kB\n", "server RSS", before.rss_kb, after.rss_kb);
        fprintf(out, "  %-22s %.0f bytes\n", "RSS per connection", per_conn);
    } else
        fprintf(out, "  %-22s (give --pid to measure the server)\n", "server RSS");
    fprintf(out, "  %-22s %llu\n", "closed by server", (unsigned long long)st.closed);
    if (opt.json) {
        printf("{\"target\":\"%s\",\"mode\":\"idle\",\"connections\":%d,\"held_s\":%.3f,"
               "\"closed\":%llu",
               target_name(), opt.subscribers, hold_s, (unsigned long long)st.closed);
        if (before.ok && after.ok)
            printf(",\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"rss_per_conn\":%.1f",
                   before.rss_kb, after.rss_kb, per_conn);
        printf("}\n");
    }
}

static void report_load(enum mode m, double measured_s, struct proc_sample before,
                        struct proc_sample after, double client_cpu)
{
    FILE *out = opt.json ? stderr : stdout;
    uint64_t lost = st.expected > st.delivered ? st.expected - st.delivered : 0;
    double rate = measured_s > 0 ? (double)st.measured / measured_s : 0;
    double msg_rate = measured_s > 0 ? (double)st.measured_sent / measured_s : 0;
    double p50 = hist_quantile_us(0.5), p99 = hist_quantile_us(0.99),
           p999 = hist_quantile_us(0.999), max = (double)hist_max / 1000.0;
    double server_cpu = after.cpu_s - before.cpu_s;
    double cpu_us = st.measured ? server_cpu * 1e6 / (double)st.measured : 0;
    int dropped = stalled_dropped();

    fprintf(out,
            "roomd-benchmark: %s at %s:%d, room '%s', %d subscribers, %d publishers, "
            "%d-byte payloads\n",
            target_name(), opt.host, opt.port, opt.room, opt.subscribers, opt.publishers,
            opt.payload);
    if (m == MODE_RATE)
        fprintf(out, "  %-22s fixed rate, %.0f deliveries/s offered (window %d)\n", "mode",
                opt.rate, opt.window);
    else
        fprintf(out, "  %-22s max throughput (window %d messages per publisher)\n", "mode",
                opt.window);
    fprintf(out, "  %-22s %.2f s measured after %.2f s warm-up\n", "duration", measured_s,
            opt.warmup);
    fprintf(out, "  %-22s %llu messages (%.0f/s measured)\n", "published",
            (unsigned long long)st.published, msg_rate);
    fprintf(out, "  %-22s %.0f /s\n", "deliveries", rate);
    fprintf(out, "  %-22s %llu of %llu expected\n", "delivered", (unsigned long long)st.delivered,
            (unsigned long long)st.expected);
    fprintf(out, "  %-22s %llu\n", "lost", (unsigned long long)lost);
    fprintf(out, "  %-22s %llu duplicates, %llu out of order\n", "order",
            (unsigned long long)st.duplicates, (unsigned long long)st.out_of_order);
    fprintf(out, "  %-22s p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (%llu samples)\n",
            "latency (us)", p50, p99, p999, max, (unsigned long long)hist_count);
    if (m == MODE_RATE)
        fprintf(out, "  %-22s %llu (latest %.1f us behind)\n", "late sends (>1 ms)",
                (unsigned long long)st.late, (double)st.max_lag / 1000.0);
    fprintf(out, "  %-22s %llu%s%s\n", "errors", (unsigned long long)st.errors,
            st.first_error[0] ? ", first: " : "", st.first_error);
    fprintf(out, "  %-22s %llu\n", "closed by server", (unsigned long long)st.closed);
    if (opt.stalled)
        fprintf(out, "  %-22s %d, %d of them dropped by the server\n", "stalled members",
                opt.stalled, dropped);
    if (before.ok && after.ok)
        fprintf(out, "  %-22s %.2f s (%.0f %% of one core), %.3f us per delivery\n", "server CPU",
                server_cpu, measured_s > 0 ? 100 * server_cpu / measured_s : 0, cpu_us);
    fprintf(out, "  %-22s %.0f %% of one core\n", "generator CPU",
            measured_s > 0 ? 100 * client_cpu / measured_s : 0);
    if (opt.json) {
        printf("{\"target\":\"%s\",\"mode\":\"%s\",\"subscribers\":%d,\"publishers\":%d,"
               "\"payload\":%d,\"window\":%d,\"offered_rate\":%.0f,\"measured_s\":%.3f,"
               "\"published\":%llu,\"msgs_per_s\":%.1f,\"deliveries_per_s\":%.1f,"
               "\"expected\":%llu,\"delivered\":%llu,\"lost\":%llu,\"duplicates\":%llu,"
               "\"out_of_order\":%llu,\"errors\":%llu,\"closed\":%llu,\"late\":%llu,"
               "\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
               "\"samples\":%llu},\"stalled\":%d,\"stalled_dropped\":%d,"
               "\"client_cpu_s\":%.3f",
               target_name(), mode_name(m), opt.subscribers, opt.publishers, opt.payload,
               opt.window, opt.rate, measured_s, (unsigned long long)st.published, msg_rate, rate,
               (unsigned long long)st.expected, (unsigned long long)st.delivered,
               (unsigned long long)lost, (unsigned long long)st.duplicates,
               (unsigned long long)st.out_of_order, (unsigned long long)st.errors,
               (unsigned long long)st.closed, (unsigned long long)st.late, p50, p99, p999, max,
               (unsigned long long)hist_count, opt.stalled, dropped, client_cpu);
        if (before.ok && after.ok)
            printf(",\"server_cpu_s\":%.3f,\"server_cpu_us_per_delivery\":%.4f,"
                   "\"server_rss_kb\":%ld",
                   server_cpu, cpu_us, after.rss_kb);
        printf("}\n");
    }
}

/* ----------------------------------------------------------------- main */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: roomd-benchmark [OPTION]...\n"
            "Fan-out load generator for roomd (line protocol) and Redis pub/sub.\n"
            "S subscribers join one room; P publishers say messages into it; every\n"
            "delivery is counted (lost = expected - delivered) and timed.\n"
            "\n"
            "  -t, --target=NAME         protocol to speak: roomd (default), redis, nats,\n"
            "                            socketio or nchan (these two need --websocket)\n"
            "      --websocket           speak RFC 6455: roomd's WebSocket port, NATS'\n"
            "                            websocket listener, Socket.IO 4 (Engine.IO v4),\n"
            "                            nchan subscribers on /sub/ROOM (its publisher\n"
            "                            POSTs to /pub/ROOM over HTTP)\n"
            "      --ws-path=PATH        the upgrade request's path (default / or the\n"
            "                            target's)\n"
            "      --tls                 every connection over TLS (roomd's tls_port or,\n"
            "                            with --websocket, wss_port)\n"
            "      --tls-ca=FILE         the CA certificate (PEM) that signed the server's\n"
            "                            (needed with --tls)\n"
            "  -h, --host=HOST           server address (default 127.0.0.1)\n"
            "  -p, --port=PORT           server port (default 5000 roomd, 8080 roomd WS,\n"
            "                            6379 redis, 4222 nats, 3000 socketio, 80 nchan)\n"
            "  -r, --room=NAME           room / channel (default bench); roomd must have\n"
            "                            it (--starting-rooms=NAME)\n"
            "  -s, --subscribers=S       subscriber connections (default 100)\n"
            "  -P, --publishers=P        publisher connections (default 1)\n"
            "  -b, --payload=BYTES       message size, %d..%d (default 100)\n"
            "  -d, --duration=SEC        measured time (default 5)\n"
            "  -w, --warmup=SEC          load before measuring (default 1)\n"
            "  -R, --rate=N              offer N deliveries/s (messages/s = N / recipients\n"
            "                            of one message); default: as fast as possible\n"
            "  -W, --window=N            messages in flight per publisher; one leaves the\n"
            "                            window once all its recipients have it (default:\n"
            "                            %d / (recipients x P), 1..%d; %d with --rate)\n"
            "      --stalled=N           N more members that join and then never read (slow\n"
            "                            clients); not counted, the others should not notice\n"
            "  -i, --idle=SEC            idle mode: S connections join and stay SEC seconds\n"
            "                            (0: until SIGINT/SIGTERM); no publishers\n"
            "      --pid=PID             server process: report its CPU per delivery and\n"
            "                            (idle mode) RSS per connection from /proc\n"
            "      --busy-poll           poll without sleeping while publishing (for a\n"
            "                            dedicated CPU): the server then pays no wake-up\n"
            "                            of a sleeping reader per write\n"
            "      --sources=N           spread connections to a 127.x server over\n"
            "                            127.0.0.1..N (default 8; ~28k ports each)\n"
            "      --connect-burst=N     connections being set up at once (default 256)\n"
            "      --connect-timeout=SEC give up joining after SEC (default 60)\n"
            "      --drain-timeout=SEC   after the run, wait this long without progress\n"
            "                            for the last deliveries (default 10)\n"
            "      --json                print one JSON line on stdout (the table goes to\n"
            "                            stderr)\n"
            "      --help                this text\n"
            "\n"
            "Exit status: 0 when nothing was lost, duplicated or reordered and no\n"
            "error came back; 1 otherwise; 2 on a usage or setup error.\n",
            MIN_PAYLOAD, MAX_PAYLOAD, WINDOW_DELIVERIES, WINDOW_MAX, WINDOW_MAX);
}

static double parse_double(const char *name, const char *s, double min)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < min)
        die("--%s: '%s' is not a number >= %g", name, s, min);
    return v;
}

static long parse_long(const char *name, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        die("--%s: '%s' is not an integer in %ld..%ld", name, s, min, max);
    return v;
}

static void parse_options(int argc, char **argv)
{
    enum {
        OPT_PID = 256,
        OPT_STALLED,
        OPT_BUSY,
        OPT_SOURCES,
        OPT_BURST,
        OPT_CTIMEOUT,
        OPT_DTIMEOUT,
        OPT_JSON,
        OPT_WS,
        OPT_WS_PATH,
        OPT_TLS,
        OPT_TLS_CA,
        OPT_HELP
    };
    static const struct option longopts[] = {
        {"target", required_argument, NULL, 't'},
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"room", required_argument, NULL, 'r'},
        {"subscribers", required_argument, NULL, 's'},
        {"publishers", required_argument, NULL, 'P'},
        {"payload", required_argument, NULL, 'b'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"rate", required_argument, NULL, 'R'},
        {"window", required_argument, NULL, 'W'},
        {"idle", required_argument, NULL, 'i'},
        {"pid", required_argument, NULL, OPT_PID},
        {"stalled", required_argument, NULL, OPT_STALLED},
        {"busy-poll", no_argument, NULL, OPT_BUSY},
        {"sources", required_argument, NULL, OPT_SOURCES},
        {"connect-burst", required_argument, NULL, OPT_BURST},
        {"connect-timeout", required_argument, NULL, OPT_CTIMEOUT},
        {"drain-timeout", required_argument, NULL, OPT_DTIMEOUT},
        {"json", no_argument, NULL, OPT_JSON},
        {"websocket", no_argument, NULL, OPT_WS},
        {"ws-path", required_argument, NULL, OPT_WS_PATH},
        {"tls", no_argument, NULL, OPT_TLS},
        {"tls-ca", required_argument, NULL, OPT_TLS_CA},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "t:h:p:r:s:P:b:d:w:R:W:i:", longopts, NULL)) != -1) {
        switch (ch) {
        case 't':
            if (!strcmp(optarg, "roomd"))
                opt.target = TARGET_ROOMD;
            else if (!strcmp(optarg, "redis"))
                opt.target = TARGET_REDIS;
            else if (!strcmp(optarg, "nats"))
                opt.target = TARGET_NATS;
            else if (!strcmp(optarg, "socketio"))
                opt.target = TARGET_SOCKETIO;
            else if (!strcmp(optarg, "nchan"))
                opt.target = TARGET_NCHAN;
            else
                die("--target: '%s' is none of roomd, redis, nats, socketio, nchan", optarg);
            break;
        case 'h':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = (int)parse_long("port", optarg, 1, 65535);
            break;
        case 'r':
            opt.room = optarg;
            break;
        case 's':
            opt.subscribers = (int)parse_long("subscribers", optarg, 0, 10000000);
            break;
        case 'P':
            opt.publishers = (int)parse_long("publishers", optarg, 1, 10000);
            break;
        case 'b':
            opt.payload = (int)parse_long("payload", optarg, MIN_PAYLOAD, MAX_PAYLOAD);
            break;
        case 'd':
            opt.duration = parse_double("duration", optarg, 0.001);
            break;
        case 'w':
            opt.warmup = parse_double("warmup", optarg, 0);
            break;
        case 'R':
            opt.rate = parse_double("rate", optarg, 0);
            break;
        case 'W':
            opt.window = (int)parse_long("window", optarg, 1, 1 << 24);
            break;
        case 'i':
            opt.idle = parse_double("idle", optarg, 0);
            opt.idle_mode = true;
            break;
        case OPT_PID:
            opt.pid = parse_long("pid", optarg, 1, 1L << 30);
            break;
        case OPT_BUSY:
            opt.busy_poll = true;
            break;
        case OPT_STALLED:
            opt.stalled = (int)parse_long("stalled", optarg, 0, 10000000);
            break;
        case OPT_SOURCES:
            opt.sources = (int)parse_long("sources", optarg, 1, 254);
            break;
        case OPT_BURST:
            opt.connect_burst = (int)parse_long("connect-burst", optarg, 1, 100000);
            break;
        case OPT_CTIMEOUT:
            opt.connect_timeout = parse_double("connect-timeout", optarg, 0.1);
            break;
        case OPT_DTIMEOUT:
            opt.drain_timeout = parse_double("drain-timeout", optarg, 0.1);
            break;
        case OPT_JSON:
            opt.json = true;
            break;
        case OPT_WS:
            opt.websocket = true;
            break;
        case OPT_WS_PATH:
            opt.ws_path = optarg;
            break;
        case OPT_TLS:
            opt.tls = true;
            break;
        case OPT_TLS_CA:
            opt.tls_ca = optarg;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s' (see --help)", argv[optind]);
    static const int default_port[] = {5000, 6379, 4222, 3000, 80};
    if (opt.websocket && opt.target == TARGET_REDIS)
        die("--websocket: Redis speaks no WebSocket");
    if (!opt.websocket && (opt.target == TARGET_SOCKETIO || opt.target == TARGET_NCHAN))
        die("--target=%s needs --websocket", opt.target == TARGET_NCHAN ? "nchan" : "socketio");
    if (opt.tls && !opt.tls_ca)
        die("--tls needs --tls-ca=FILE (the CA that signed the server's certificate)");
    if (opt.tls && !(tls_client = bench_tls_new(opt.tls_ca)))
        die("--tls-ca: cannot use %s", opt.tls_ca);
    if (opt.ws_path && (*opt.ws_path != '/' || strpbrk(opt.ws_path, " \r\n")))
        die("--ws-path: a path starting with / without spaces or line breaks");
    if (strpbrk(opt.room, " \"\\/?#%"))
        die("--room: no spaces, quotes, backslashes or URL delimiters");
    if (!opt.port)
        opt.port = opt.websocket && opt.target == TARGET_ROOMD ? 8080 : default_port[opt.target];
    if (!opt.window) {
        int recipients = opt.subscribers + (opt.target == TARGET_ROOMD ? opt.publishers - 1 : 0);
        long w = opt.rate > 0 ? WINDOW_MAX
                              : WINDOW_DELIVERIES /
                                    ((recipients > 0 ? recipients : 1) * (long)opt.publishers);
        opt.window = (int)(w < 1 ? 1 : w > WINDOW_MAX ? WINDOW_MAX : w);
    }
    if (strlen(opt.room) > 256 || !*opt.room || strpbrk(opt.room, "\r\n"))
        die("--room: 1..256 bytes without line breaks");
    if (opt.idle_mode) {
        opt.publishers = 0;
        opt.stalled = 0;
    } else if (opt.subscribers == 0 && opt.publishers < 2)
        die("nobody would hear the messages: give --subscribers or --publishers >= 2");
}

/* Raise the soft open-file limit to the hard one; say so if it is short. */
static void raise_fd_limit(int needed)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)needed + 16 > rl.rlim_cur)
        die("%d connections need more than the open-file limit %llu allows", needed,
            (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
    clock_origin = 0;
    clock_origin = now_ns() - 1000000000u; /* stamps start at 1 s, never 0 */
    parse_options(argc, argv);
    if (getrandom(&key_seed, sizeof(key_seed), 0) != sizeof(key_seed))
        key_seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    mask_state = key_seed | 1;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* precise rate timer */

    nconns = opt.subscribers + opt.publishers + opt.stalled;
    npubs = opt.publishers;
    raise_fd_limit(nconns);
    resolve_server();
    conns = xcalloc((size_t)nconns, sizeof(*conns));
    pubs = xcalloc((size_t)npubs, sizeof(*pubs));
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].role = i < opt.subscribers                    ? ROLE_SUB
                        : i < opt.subscribers + opt.publishers ? ROLE_PUB
                                                               : ROLE_STALLED;
        conns[i].recv_index = (uint32_t)i;
        conns[i].ws = opt.websocket && !(opt.target == TARGET_NCHAN && conns[i].role == ROLE_PUB);
    }
    for (int i = 0; i < npubs; i++) {
        pubs[i].conn = &conns[opt.subscribers + i];
        pubs[i].remaining = xcalloc((size_t)opt.window, sizeof(uint32_t));
    }
    recv_per_msg = opt.target == TARGET_ROOMD ? opt.subscribers + npubs - 1 : opt.subscribers;
    recv_alive = recv_per_msg;
    next_seq = xcalloc((size_t)nconns * (size_t)(npubs ? npubs : 1), sizeof(uint32_t));
    rbuf = malloc(READ_CHUNK);
    rbuf_cap = READ_CHUNK;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!rbuf || epfd < 0 || timer_fd < 0)
        die("setup: %s", strerror(errno));

    struct proc_sample before = proc_sample();
    connect_all();
    int status = 0;
    if (opt.idle_mode) {
        uint64_t start = now_ns();
        uint64_t until = start + (uint64_t)(opt.idle * 1e9);
        while (!interrupted && (opt.idle == 0 || now_ns() < until))
            poll_once(100);
        struct proc_sample after = proc_sample();
        report_idle(seconds(now_ns() - start), before, after);
        status = st.closed ? 1 : 0;
    } else {
        struct proc_sample s0 = {0}, s1 = {0};
        double client_cpu = 0;
        double measured_s = run_load(&s0, &s1, &client_cpu);
        report_load(opt.rate > 0 ? MODE_RATE : MODE_THROUGHPUT, measured_s, s0, s1, client_cpu);
        uint64_t lost = st.expected > st.delivered ? st.expected - st.delivered : 0;
        status = (lost || st.duplicates || st.out_of_order || st.errors || st.closed) ? 1 : 0;
    }
    for (int i = 0; i < nconns; i++) {
        bench_tls_close(conns[i].tls);
        if (conns[i].state != CS_CLOSED && conns[i].fd >= 0)
            close(conns[i].fd);
        free(conns[i].partial);
        free(conns[i].frag);
        free(conns[i].stream);
    }
    for (int i = 0; i < npubs; i++) {
        free(pubs[i].remaining);
        free(pubs[i].out);
    }
    free(pubs);
    free(conns);
    bench_tls_free(tls_client);
    free(next_seq);
    free(rbuf);
    close(epfd);
    close(timer_fd);
    return status;
}
