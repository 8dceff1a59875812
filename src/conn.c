/* conn.c -- a connection's life: creation, output, limits, closing.
 *
 * Output is written by this file, not by the bufferevent (which only reads):
 * a producer queues bytes and puts the connection on its worker's pending
 * list; once per loop turn the worker's flush event writes each pending
 * connection with one sendmsg (Redis' handleClientsWithPendingWrites).  A
 * fan-out of K messages to a connection in one turn is then one system
 * call, and EV_WRITE is armed only when the socket is full, so the common
 * case costs no epoll_ctl at all.  output_limit is checked after that
 * write, against what the kernel did not take: a client still holding more
 * than output_limit bytes in roomd is not keeping up and is dropped (Redis'
 * client-output-buffer-limit), so a stalled reader costs at most
 * output_limit bytes (plus one turn's output) and slows nobody else, while
 * a client that reads as fast as it can is never cut off by what one turn
 * queued before the write was even tried. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <uuid/uuid.h>

#include "config.h"
#include "conn.h"
#include "forwarded.h"
#include "ip_limits.h"
#include "log.h"
#include "msg.h"
#include "proto.h"
#include "registry.h"
#include "tls.h"
#include "verbs.h"

/* What a delivery touches (struct conn's first fields) fits one cache line. */
#define CACHE_LINE 64
_Static_assert(offsetof(struct conn, fd) + sizeof(evutil_socket_t) <= CACHE_LINE,
               "the delivery fields of struct conn fit one cache line");

#define MS_PER_SEC 1000
#define NS_PER_MS 1000000

/* How long a closing connection may take to accept its goodbye. */
#define CLOSE_DRAIN_TIMEOUT_SEC 2

static atomic_uint_fast64_t next_serial = 1;
static atomic_long live_conns;
static atomic_long conns_by_transport[2];

/* ------------------------------------------------- connections by id */

struct conn_ref {
    UT_hash_handle hh;
    char id[CONN_ID_LEN + 1];
    int worker;
    uint64_t serial;
};

static pthread_mutex_t index_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn_ref *conn_index;

static void index_add(const struct conn *c)
{
    struct conn_ref *r = malloc(sizeof(*r));
    if (!r)
        return;
    memcpy(r->id, c->id, sizeof(r->id));
    r->worker = c->worker->index;
    r->serial = c->serial;
    pthread_mutex_lock(&index_lock);
    HASH_ADD_STR(conn_index, id, r);
    pthread_mutex_unlock(&index_lock);
}

static void index_del(const struct conn *c)
{
    struct conn_ref *r;
    pthread_mutex_lock(&index_lock);
    HASH_FIND_STR(conn_index, c->id, r);
    if (r)
        HASH_DEL(conn_index, r);
    pthread_mutex_unlock(&index_lock);
    free(r);
}

bool conn_lookup(const char *id, int *worker, uint64_t *serial)
{
    struct conn_ref *r;
    pthread_mutex_lock(&index_lock);
    HASH_FIND_STR(conn_index, id, r);
    if (r) {
        *worker = r->worker;
        *serial = r->serial;
    }
    pthread_mutex_unlock(&index_lock);
    return r != NULL;
}

long conn_live_count(void)
{
    return atomic_load(&live_conns);
}

long conn_count_by_transport(enum transport t)
{
    return atomic_load(&conns_by_transport[t]);
}

bool conn_slot_take(long max)
{
    long n = atomic_load(&live_conns);
    while (n < max)
        if (atomic_compare_exchange_weak(&live_conns, &n, n + 1))
            return true;
    return false;
}

void conn_slot_release(void)
{
    atomic_fetch_sub(&live_conns, 1);
}

/* ------------------------------------------------------------ helpers */

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * MS_PER_SEC + ts.tv_nsec / NS_PER_MS;
}

/* Fill B to BURST tokens (a new connection starts with a full bucket). */
static void bucket_fill(struct conn_bucket *b, long burst)
{
    b->tokens = burst > 0 ? (double)burst : 1.0;
    b->refill_at = monotonic_ms();
}

/* Arm C's read timeout with idle_timeout (0: none). */
static void conn_set_idle_timeout(struct conn *c)
{
    struct timeval idle = {settings.idle_timeout, 0};
    bufferevent_set_timeouts(c->bev, settings.idle_timeout > 0 ? &idle : NULL, NULL);
}

static void schedule_reap(struct conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    c->reap_next = c->worker->reap_list;
    c->worker->reap_list = c;
    event_active(c->worker->reap_ev, 0, 0);
}

/* ------------------------------------------------------------- output */

/* The output queue: a ring of references to messages, in the order they
 * were queued.  A shared message (a chat line for a room) is the same
 * struct msg for every recipient, so queueing it costs one reference and
 * 16 bytes here; the flush writes straight from its bytes.  The ring is
 * allocated when something is queued and freed when it drains, so an idle
 * connection holds none. */
struct out_entry {
    struct msg *msg;   /* one reference, dropped once written */
    uint32_t wire_len; /* header + body bytes on the wire */
    bool raw;          /* sent as it is (m->len bytes), not framed */
};

struct conn_out {
    uint32_t head, count, cap; /* cap: a power of two */
    size_t offset;             /* bytes of the head entry already written */
    struct out_entry e[];
};

/* A fresh ring's entries: a reply or a few chat lines between two writes
 * is the common case; the ring doubles when it fills. */
#define OUT_QUEUE_INITIAL 8
/* The largest entry: wire_len is 32 bits; messages are far smaller
 * (max_line and the static files bound them). */
#define OUT_ENTRY_MAX UINT32_MAX
/* Buffers per sendmsg: Linux's IOV_MAX.  A busy room queues hundreds of
 * lines per member per loop turn (see READ_PER_TURN); fewer buffers per call
 * (libevent's NUM_WRITE_IOVEC is 128) cost one more syscall per member per
 * 128 lines, which scripts/bench showed as most of the gap to Redis. */
#define CONN_WRITE_IOV 1024
#ifdef IOV_MAX
_Static_assert(CONN_WRITE_IOV <= IOV_MAX, "sendmsg takes at most IOV_MAX buffers");
#endif

static void pending_unlink(struct conn *c)
{
    if (!c->pending_prev)
        return;
    *c->pending_prev = c->pending_next;
    if (c->pending_next)
        c->pending_next->pending_prev = c->pending_prev;
    c->pending_next = NULL;
    c->pending_prev = NULL;
}

/* Put C on its worker's pending list, where the flush event at the end of
 * this loop turn finds it.  A connection waiting for its socket to take
 * more (write_waiting) is listed too: the flush tries its write once more
 * (EAGAIN when still full) and then checks output_limit against what is
 * left, so a client that never reads is dropped in the turn it passes the
 * limit, not when (never) its socket drains. */
static void output_added(struct conn *c)
{
    if (c->pending_prev)
        return;
    struct worker *w = c->worker;
    if (!w->out_pending)
        event_active(w->flush_ev, 0, 0);
    c->pending_next = w->out_pending;
    if (w->out_pending)
        w->out_pending->pending_prev = &c->pending_next;
    c->pending_prev = &w->out_pending;
    w->out_pending = c;
}

/* Append M (whose reference the queue takes) to C's output.  RAW bytes go
 * out as they are; others are framed by the transport. */
static void out_push(struct conn *c, struct msg *m, bool raw)
{
    uint8_t header[CONN_FRAME_HEADER_MAX];
    size_t body = m->len;
    size_t wire = raw ? body : c->proto->frame(m, header, &body) + body;
    struct conn_out *q = c->out;
    if (wire > OUT_ENTRY_MAX || c->dead)
        goto drop;
    if (!q || q->count == q->cap) {
        uint32_t cap = q ? q->cap * 2 : OUT_QUEUE_INITIAL;
        struct conn_out *grown = malloc(sizeof(*grown) + cap * sizeof(grown->e[0]));
        if (!grown) {
            conn_abort(c, "out of memory");
            goto drop;
        }
        grown->head = 0;
        grown->count = 0;
        grown->cap = cap;
        grown->offset = 0;
        if (q) { /* unwrap the ring into the new one */
            for (uint32_t i = 0; i < q->count; i++)
                grown->e[i] = q->e[(q->head + i) & (q->cap - 1)];
            grown->count = q->count;
            grown->offset = q->offset;
            free(q);
        }
        c->out = q = grown;
    }
    q->e[(q->head + q->count) & (q->cap - 1)] =
        (struct out_entry){.msg = m, .wire_len = (uint32_t)wire, .raw = raw};
    q->count++;
    c->out_bytes += wire;
    output_added(c);
    return;
drop:
    msg_unref(m);
}

/* Drop everything queued (the connection is going away unwritten). */
static void out_discard(struct conn *c)
{
    struct conn_out *q = c->out;
    if (!q)
        return;
    for (uint32_t i = 0; i < q->count; i++)
        msg_unref(q->e[(q->head + i) & (q->cap - 1)].msg);
    free(q);
    c->out = NULL;
    c->out_bytes = 0;
}

/* N bytes were written: unref the messages that are out, keep the offset
 * into a partly written one, free the ring once empty. */
static void out_consume(struct conn *c, size_t n)
{
    struct conn_out *q = c->out;
    c->out_bytes -= n;
    while (n > 0) {
        struct out_entry *e = &q->e[q->head];
        size_t left = e->wire_len - q->offset;
        if (n < left) {
            q->offset += n;
            return;
        }
        n -= left;
        msg_unref(e->msg);
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
        q->offset = 0;
    }
    if (q->count == 0) {
        free(q);
        c->out = NULL;
    }
}

/* Point IOV at the next entries of C's queue, the transport's headers
 * built into HEADERS; returns the number of buffers and sets *BYTES. */
static int out_iov(const struct conn *c, struct iovec *iov,
                   uint8_t (*headers)[CONN_FRAME_HEADER_MAX], size_t *bytes)
{
    const struct conn_out *q = c->out;
    size_t skip = q->offset, total = 0;
    int n = 0;
    for (uint32_t i = 0; i < q->count && n + 2 <= CONN_WRITE_IOV; i++) {
        const struct out_entry *e = &q->e[(q->head + i) & (q->cap - 1)];
        size_t header_len = 0, body_len = e->msg->len;
        if (!e->raw)
            header_len = c->proto->frame(e->msg, headers[i], &body_len);
        if (skip < header_len) {
            iov[n++] = (struct iovec){headers[i] + skip, header_len - skip};
            skip = 0;
        } else
            skip -= header_len;
        iov[n++] = (struct iovec){e->msg->data + skip, body_len - skip};
        skip = 0;
    }
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    *bytes = total;
    return n;
}

static void on_writable(evutil_socket_t fd, short what, void *arg);

/* The socket is full: wait for EV_WRITE.  A closing connection gets
 * CLOSE_DRAIN_TIMEOUT_SEC without progress before it is dropped. */
static void write_wait(struct conn *c)
{
    if (!c->write_ev) {
        c->write_ev = event_new(c->worker->base, c->fd, EV_WRITE | EV_PERSIST, on_writable, c);
        if (!c->write_ev) {
            conn_abort(c, "out of memory");
            return;
        }
    }
    struct timeval drain = {CLOSE_DRAIN_TIMEOUT_SEC, 0};
    event_add(c->write_ev, c->closing ? &drain : NULL);
    c->write_waiting = true;
}

static void write_unwait(struct conn *c)
{
    if (!c->write_waiting)
        return;
    event_del(c->write_ev);
    c->write_waiting = false;
}

/* Write what C has queued, as much as the socket takes now, CONN_WRITE_IOV
 * buffers per call.  A short write means the socket is full: the rest
 * waits for EV_WRITE (armed only then), and if the rest -- what the kernel
 * did not take -- passes output_limit, C is not keeping up and is dropped.
 * A closing connection that drained is reaped.  MSG_NOSIGNAL: a peer gone
 * is an error here, not a signal. */
static void conn_flush_tls(struct conn *c);

static void conn_flush(struct conn *c)
{
    if (c->tls) {
        conn_flush_tls(c);
        return;
    }
    struct iovec iov[CONN_WRITE_IOV];
    uint8_t headers[CONN_WRITE_IOV][CONN_FRAME_HEADER_MAX];
    while (c->out) {
        size_t want;
        struct msghdr mh = {.msg_iov = iov};
        mh.msg_iovlen = (size_t)out_iov(c, iov, headers, &want);
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            conn_abort(c, NULL); /* the peer is gone */
            return;
        }
        out_consume(c, (size_t)n);
        if ((size_t)n < want)
            break;
    }
    if (c->out) {
        if (!c->closing && (long)c->out_bytes > settings.output_limit) {
            conn_abort(c, "output buffer limit exceeded");
            return;
        }
        if (!c->write_waiting)
            write_wait(c);
        return;
    }
    write_unwait(c);
    if (c->closing)
        schedule_reap(c);
}

/* The TLS form of conn_flush(): OpenSSL writes the socket, from the
 * bufferevent's output.  What C queued this turn is laid end to end into
 * one contiguous piece of that output, so the batch a fan-out turn queued
 * becomes one SSL_write (one record up to 16 KB), not a write per message.
 * output_limit counts what the previous turns left unwritten there (what
 * the kernel did not take) plus what is queued.  A closing connection is
 * reaped by on_tls_written once the output is out. */
static void conn_flush_tls(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (!c->closing && (long)evbuffer_get_length(out) > settings.output_limit) {
        conn_abort(c, "output buffer limit exceeded");
        return;
    }
    if (c->out && evbuffer_expand(out, c->out_bytes) < 0) {
        conn_abort(c, "out of memory");
        return;
    }
    struct iovec iov[CONN_WRITE_IOV];
    uint8_t headers[CONN_WRITE_IOV][CONN_FRAME_HEADER_MAX];
    while (c->out) {
        size_t want;
        int n = out_iov(c, iov, headers, &want);
        for (int i = 0; i < n; i++)
            if (evbuffer_add(out, iov[i].iov_base, iov[i].iov_len) < 0) {
                conn_abort(c, "out of memory");
                return;
            }
        out_consume(c, want);
    }
    if (c->closing && evbuffer_get_length(out) == 0)
        schedule_reap(c);
}

/* The TLS output drained (libevent's write callback, low watermark 0). */
static void on_tls_written(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->closing && !c->out)
        schedule_reap(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (what & EV_TIMEOUT)
        conn_abort(c, "output not drained in time");
    else
        conn_flush(c);
}

void conn_flush_pending(struct worker *w)
{
    struct conn *c;
    while ((c = w->out_pending)) {
        pending_unlink(c);
        if (!c->dead)
            conn_flush(c);
    }
}

/* What one loop turn may queue to one connection on top of output_limit
 * before its write is tried.  An honest turn queues far less (READ_PER_TURN
 * of input per speaker, fanned out in room batches of at most
 * BATCH_COMBINE_MAX bytes), so this never cuts a reader; it only keeps a
 * pathological turn (a flood of jobs from every other worker) from queueing
 * unbounded memory before the flush gets to check output_limit. */
#define CONN_TURN_OUTPUT_MAX (8L * 1024 * 1024)

void conn_check_output_limit(struct conn *c)
{
    if (!c->dead && (long)c->out_bytes > settings.output_limit + CONN_TURN_OUTPUT_MAX)
        conn_abort(c, "output buffer limit exceeded");
}

void conn_send_raw(struct conn *c, const void *data, size_t len)
{
    if (c->dead || len == 0)
        return;
    struct msg *m = msg_new_text(data, len);
    if (!m) {
        conn_abort(c, "out of memory");
        return;
    }
    out_push(c, m, true);
}

/* --------------------------------------------------------- callbacks */

/* libevent 2.1 reads at most 4096 bytes per read event (EVBUFFER_MAX_READ;
 * evbuffer_set_max_read() came in 2.2).  A client that pipelines -- a
 * publisher saying as fast as it can -- would then have ~35 requests
 * handled per loop turn, and each of its room's members would get one
 * write per ~35 messages.  So when a read came back full, the socket
 * likely holds more: read on, 4 KB at a time, handling requests in
 * between, up to READ_PER_TURN bytes per turn (Redis reads 16 KB per
 * client per turn).  EOF and errors are left to the bufferevent, which
 * sees them on the next turn; a short read ends the top-up without the
 * extra EAGAIN call, so a chatty client pays nothing.  Nor does the
 * top-up go on while the client's own output piles up (its replies to a
 * pipeline): a client that sends faster than it reads is then paced by its
 * socket, as before, and not cut off at output_limit.  The bufferevent
 * keeps the end of its input frozen outside its own read, hence the thaw. */
#define READ_CHUNK 4096
#define READ_PER_TURN (64 * 1024)

static bool input_open(const struct conn *c)
{
    return !c->dead && !c->closing && !c->input_paused;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    size_t fresh = len > c->input_kept ? len - c->input_kept : len;
    for (size_t budget = READ_PER_TURN; input_open(c);) {
        c->proto->on_read(c);
        if (c->tls || fresh < READ_CHUNK || budget < READ_CHUNK || c->out_bytes >= READ_PER_TURN ||
            !input_open(c))
            break;
        evbuffer_unfreeze(in, 0); /* the bufferevent keeps its end frozen between reads */
        int n = evbuffer_read(in, c->fd, READ_CHUNK);
        evbuffer_freeze(in, 0);
        if (n <= 0)
            break;
        fresh = (size_t)n;
        budget -= fresh;
    }
    c->input_kept = (uint32_t)evbuffer_get_length(in);
}

void conn_pause_input(struct conn *c)
{
    c->input_paused = true;
}

void conn_resume_input(struct conn *c)
{
    c->input_paused = false;
    if (!c->dead && !c->closing && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        c->proto->on_read(c);
}

static void conn_start(struct conn *c);

/* A TLS handshake that failed says why at info level: a client certificate
 * that does not verify is worth an operator's look, plain text sent to the
 * port is not worth more. */
static void tls_handshake_failed(struct conn *c)
{
    char why[256];
    const char *reason = tls_last_error(why, sizeof(why));
    log_info("TLS handshake failed for connection %s: %s", c->id,
             *reason ? reason : "connection closed");
    conn_abort(c, NULL);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) { /* the TLS handshake finished */
        c->tls_open = true;
        event_free(c->tls_deadline);
        c->tls_deadline = NULL;
        tls_handshake_done(bufferevent_openssl_get_ssl(bev));
        conn_start(c);
    } else if (c->tls && !c->tls_open && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        tls_handshake_failed(c);
    else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_abort(c, NULL);
    else if ((what & BEV_EVENT_TIMEOUT) && c->closing)
        conn_abort(c, "output not drained in time");
    else if (what & BEV_EVENT_TIMEOUT)
        conn_close(c, "idle timeout");
}

/* ----------------------------------------------------------- lifetime */

/* The peer's address as text and its port. */
static int peer_address(const struct conn *c, char *ip, size_t len)
{
    ip[0] = '\0';
    if (c->peer.sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &c->peer.in.sin_addr, ip, (socklen_t)len);
        return ntohs(c->peer.in.sin_port);
    }
    if (c->peer.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &c->peer.in6.sin6_addr, ip, (socklen_t)len);
        return ntohs(c->peer.in6.sin6_port);
    }
    return 0;
}

bool conn_attribute_read_only(const char *key)
{
    static const char *const ro[] = {"id",         "type",        "remoteIP",
                                     "remotePort", "connectedAt", "secure"};
    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
        if (!strcmp(key, ro[i]))
            return true;
    return false;
}

json_object *conn_attributes(const struct conn *c)
{
    char ip[INET6_ADDRSTRLEN];
    int port = peer_address(c, ip, sizeof(ip));
    json_object *a = json_object_new_object();
    json_object_object_add(a, "id", json_object_new_string(c->id));
    json_object_object_add(
        a, "type",
        json_object_new_string(c->transport == TRANSPORT_WEBSOCKET ? "websocket" : "socket"));
    json_object_object_add(a, "remoteIP", json_object_new_string(ip));
    json_object_object_add(a, "remotePort", json_object_new_int(port));
    json_object_object_add(a, "connectedAt", json_object_new_int64(c->connected_at));
    json_object_object_add(a, "authenticated", json_object_new_boolean(0));
    if (c->tls)
        json_object_object_add(a, "secure", json_object_new_boolean(1));
    if (c->attrs_set) {
        json_object_object_foreach(c->attrs_set, key, value)
            json_object_object_add(a, key, json_object_get(value));
    }
    return a;
}

/* ------------------------------------------------ attributes and params
 *
 * What a connection holds on behalf of others is capped in bytes as well as
 * in keys (max_params_bytes), so that neither a client (params) nor the
 * server side (attributes, from tokens and the admin API) can make one
 * connection cost megabytes: params and set attributes each stay under it.
 * A change that would leave more than the cap, and more than before, is
 * refused whole; one that shrinks what is held always goes through (the cap
 * may have been lowered by SIGHUP). */

/* Bytes attribute KEY costs when set to VALUE: the key and the value's compact JSON text. */
static size_t attribute_bytes(const char *key, json_object *value)
{
    size_t len = 0;
    json_object_to_json_string_length(value, ROOMD_JSON_FLAGS, &len);
    return strlen(key) + len;
}

/* Bytes attribute KEY costs now (0 when it is not set). */
static size_t attribute_bytes_now(const struct conn *c, const char *key)
{
    json_object *v;
    if (!c->attrs_set || !json_object_object_get_ex(c->attrs_set, key, &v))
        return 0;
    return attribute_bytes(key, v);
}

/* Whether holding WANT bytes instead of HAVE stays within max_params_bytes. */
static bool bytes_allowed(size_t have, size_t want)
{
    return want <= have || want <= (size_t)settings.max_params_bytes;
}

/* What KEY = VALUE (NULL: deleted) leaves in attrs_set: the value stored, or
 * NULL when the key goes.  authenticated always exists: deleting it sets it
 * back to false. */
static json_object *attribute_stored(const char *key, json_object *value)
{
    if (value == NULL && strcmp(key, "authenticated") == 0)
        return json_object_new_boolean(0);
    return value;
}

/* Store KEY = VALUE (consumed; already checked) and keep attrs_bytes. */
static void attribute_store(struct conn *c, const char *key, json_object *value)
{
    c->attrs_bytes -= attribute_bytes_now(c, key);
    json_object *stored = attribute_stored(key, value);
    if (stored == NULL) {
        json_object_object_del(c->attrs_set, key);
        return;
    }
    c->attrs_bytes += attribute_bytes(key, stored);
    json_object_object_add(c->attrs_set, key, stored);
}

/* The attributes' bytes after KEY = VALUE (NULL: deleted), from TOTAL before it. */
static size_t attribute_bytes_after(const struct conn *c, const char *key, json_object *value,
                                    size_t total)
{
    static const char false_text[] = "false"; /* what a deleted authenticated holds */
    total -= attribute_bytes_now(c, key);
    if (value)
        return total + attribute_bytes(key, value);
    if (strcmp(key, "authenticated") == 0)
        return total + strlen(key) + strlen(false_text);
    return total;
}

enum roomd_err conn_set_attribute(struct conn *c, const char *key, json_object *value)
{
    enum roomd_err err = ERR_NONE;
    if (conn_attribute_read_only(key))
        err = ERR_ATTRIBUTE_READ_ONLY;
    else if (!bytes_allowed(c->attrs_bytes, attribute_bytes_after(c, key, value, c->attrs_bytes)))
        err = ERR_PARAMS_TOO_LARGE;
    else if (!c->attrs_set && !(c->attrs_set = json_object_new_object()))
        err = ERR_STORE_UNAVAILABLE;
    if (err) {
        json_object_put(value);
        return err;
    }
    attribute_store(c, key, value);
    return ERR_NONE;
}

enum roomd_err conn_set_attributes(struct conn *c, json_object *patch)
{
    size_t total = c->attrs_bytes;
    json_object_object_foreach(patch, key, value)
    {
        if (conn_attribute_read_only(key))
            return ERR_ATTRIBUTE_READ_ONLY;
        total = attribute_bytes_after(c, key, value, total); /* keys of PATCH are distinct */
    }
    if (!bytes_allowed(c->attrs_bytes, total))
        return ERR_PARAMS_TOO_LARGE;
    if (!c->attrs_set && !(c->attrs_set = json_object_new_object()))
        return ERR_STORE_UNAVAILABLE;
    json_object_object_foreach(patch, k2, v2) attribute_store(c, k2, json_object_get(v2));
    return ERR_NONE;
}

/* Bytes param KEY costs now (0 when it is not set). */
static size_t param_bytes_now(const struct conn *c, const char *key)
{
    json_object *v;
    if (!c->params || !json_object_object_get_ex(c->params, key, &v))
        return 0;
    return strlen(key) + (size_t)json_object_get_string_len(v);
}

enum roomd_err conn_param_set(struct conn *c, const char *key, const char *value)
{
    size_t now = param_bytes_now(c, key);
    bool is_new = !c->params || !json_object_object_get_ex(c->params, key, NULL);
    long held = c->params ? json_object_object_length(c->params) : 0;
    if (is_new && held >= settings.max_params)
        return ERR_TOO_MANY_PARAMS;
    size_t want = c->params_bytes - now + strlen(key) + strlen(value);
    if (!bytes_allowed(c->params_bytes, want))
        return ERR_PARAMS_TOO_LARGE;
    json_object *v = NULL;
    if ((!c->params && !(c->params = json_object_new_object())) ||
        !(v = json_object_new_string(value)) || json_object_object_add(c->params, key, v) != 0) {
        json_object_put(v);
        return ERR_STORE_UNAVAILABLE;
    }
    c->params_bytes = want;
    return ERR_NONE;
}

void conn_param_delete(struct conn *c, const char *key)
{
    if (!c->params)
        return;
    c->params_bytes -= param_bytes_now(c, key);
    json_object_object_del(c->params, key);
}

void conn_params_clear(struct conn *c)
{
    json_object_put(c->params);
    c->params = NULL;
    c->params_bytes = 0;
}

/* handshake_timeout passed and the TLS handshake is not done: a deadline
 * from the accept, not an idle timer, so a client trickling its
 * ClientHello a byte at a time does not keep the slot either. */
static void on_tls_deadline(evutil_socket_t fd, short what, void *arg)
{
    conn_abort(arg, "TLS handshake timeout");
}

/* The bufferevent of a TLS connection: OpenSSL over the socket itself (a
 * socket BIO, which kernel TLS needs), accepting.  A client that closes
 * without close_notify is an end of file, not an error. */
static struct bufferevent *tls_bufferevent(struct worker *w, int fd)
{
    SSL *ssl = tls_session_new();
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* Take C's place under the per-address limits (ip_limits.c), or mark it
 * refused, logging which limit. */
static void conn_take_ip(struct conn *c)
{
    enum ip_verdict v = ip_limits_take(&c->peer.sa);
    c->ip_counted = v == IP_ADMITTED;
    if (v == IP_TOO_MANY || v == IP_TOO_FAST) {
        char ip[INET6_ADDRSTRLEN];
        int port = peer_address(c, ip, sizeof(ip));
        log_info("refusing a connection from %s:%d: %s reached", ip, port,
                 v == IP_TOO_MANY ? "max_connections_per_ip" : "connection_rate_per_ip");
        c->ip_refused = true;
    }
}

void conn_forwarded(struct conn *c, const char *value, size_t len)
{
    struct sockaddr_storage client;
    socklen_t client_len;
    c->ip_deferred = false;
    if (value && forwarded_client(value, len, settings.trusted_proxies, &client, &client_len) &&
        client_len <= sizeof(c->peer))
        memcpy(&c->peer, &client, client_len); /* remotePort: 0, the proxy's is not the client's */
    conn_take_ip(c);
}

/* The connection's protocol starts: at once on a plain port, after the
 * handshake over TLS (a client that never finishes it is never welcomed,
 * never in a room).  A WebSocket from a trusted proxy is counted under the
 * per-address limits once its request names the client (conn_forwarded);
 * a refused WebSocket is answered 503 once its request is read
 * (proto_ws.c), since a reply to unread input would reach it as a reset. */
static void conn_start(struct conn *c)
{
    if (c->transport == TRANSPORT_WEBSOCKET &&
        forwarded_trusted(&c->peer.sa, settings.trusted_proxies))
        c->ip_deferred = true;
    else
        conn_take_ip(c);
    if (c->ip_refused && c->transport != TRANSPORT_WEBSOCKET) {
        conn_refuse(c);
        return;
    }
    conn_set_idle_timeout(c);
    if (c->proto->on_open)
        c->proto->on_open(c);
}

struct conn *conn_new(struct worker *w, int fd, enum transport t, bool tls,
                      const struct sockaddr *addr, int addrlen)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        goto fail;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    evutil_make_socket_nonblocking(fd);
    c->tls = tls;
    c->bev =
        tls ? tls_bufferevent(w, fd) : bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
        goto fail;
    c->fd = fd;
    c->serial = atomic_fetch_add(&next_serial, 1);
    uuid_t uu;
    uuid_generate_random(uu);
    uuid_unparse_lower(uu, c->id);
    c->worker = w;
    c->transport = t;
    c->proto = proto_for(t);
    c->connected_at = now_ms();
    if ((size_t)addrlen <= sizeof(c->peer))
        memcpy(&c->peer, addr, (size_t)addrlen);
    c->params = NULL; /* made by the first paramAdd: most clients never set one */
    bucket_fill(&c->say_bucket, settings.say_burst);
    bucket_fill(&c->join_bucket, settings.join_burst);
    HASH_ADD(hh, w->conns, serial, sizeof(c->serial), c);
    index_add(c);
    atomic_fetch_add(&conns_by_transport[t], 1);
    worker_count(w, stat_connections);

    if (tls) { /* OpenSSL writes from the bufferevent's output (conn_flush_tls) */
        struct timeval handshake = {settings.handshake_timeout, 0};
        bufferevent_setcb(c->bev, on_read, on_tls_written, on_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        c->tls_deadline = evtimer_new(w->base, on_tls_deadline, c);
        if (!c->tls_deadline)
            conn_abort(c, "out of memory"); /* reaped on the next turn */
        else
            evtimer_add(c->tls_deadline, &handshake);
        return c;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_disable(c->bev, EV_WRITE); /* output: conn_flush() */
    bufferevent_enable(c->bev, EV_READ);
    conn_start(c);
    return c;
fail:
    log_error("cannot set up a new connection: out of memory");
    if (c && c->bev)
        bufferevent_free(c->bev);
    else
        close(fd);
    free(c);
    conn_slot_release();
    return NULL;
}

/* Queue OBJ's text as a private message, framed like any other, so a
 * reply keeps its place among the shared messages. */
static void send_json_text(struct conn *c, json_object *obj)
{
    if (c->dead || (c->proto->may_send && !c->proto->may_send(c)))
        return;
    size_t len;
    const char *text = json_object_to_json_string_length(obj, ROOMD_JSON_FLAGS, &len);
    struct msg *m = msg_new_text(text, len);
    if (!m) {
        conn_abort(c, "out of memory");
        return;
    }
    out_push(c, m, false);
}

void conn_send_json(struct conn *c, json_object *obj)
{
    send_json_text(c, obj);
    conn_check_output_limit(c);
    json_object_put(obj);
}

/* Queue a reference to shared message M (RAW: already framed), unless C
 * takes no server messages now; drop C past output_limit. */
static bool send_shared(struct conn *c, struct msg *m, bool raw)
{
    if (c->dead || c->closing || (c->proto->may_send && !c->proto->may_send(c)))
        return false;
    out_push(c, msg_ref(m), raw);
    conn_check_output_limit(c);
    return true;
}

bool conn_send_msg(struct conn *c, struct msg *m)
{
    return send_shared(c, m, false);
}

struct msg *conn_frame_batch(const struct conn *c, struct msg *const *ms, size_t n)
{
    uint8_t header[CONN_FRAME_HEADER_MAX];
    size_t total = 0, body;
    for (size_t i = 0; i < n; i++)
        total += c->proto->frame(ms[i], header, &body) + body;
    struct msg *f = msg_alloc(total);
    if (!f)
        return NULL;
    char *p = f->data;
    for (size_t i = 0; i < n; i++) {
        size_t h = c->proto->frame(ms[i], header, &body);
        memcpy(p, header, h);
        memcpy(p + h, ms[i]->data, body);
        p += h + body;
    }
    return f;
}

bool conn_send_framed(struct conn *c, struct msg *f)
{
    return send_shared(c, f, true);
}

static json_object *goodbye_json(const char *reason)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string("Bye!"));
    json_object_object_add(o, "context", json_object_new_string("api"));
    json_object_object_add(o, "reason", json_object_new_string(reason));
    return o;
}

/* Stop reading and reap C once what it has queued is out (within
 * CLOSE_DRAIN_TIMEOUT_SEC over TLS; write_wait's deadline otherwise). */
static void close_after_output(struct conn *c)
{
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    if (c->tls) { /* OpenSSL's output must drain too, within the deadline */
        struct timeval drain = {CLOSE_DRAIN_TIMEOUT_SEC, 0};
        bufferevent_set_timeouts(c->bev, NULL, &drain);
        if (!c->out && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            schedule_reap(c);
        else
            output_added(c);
        return;
    }
    if (!c->out) {
        schedule_reap(c);
        return;
    }
    if (c->write_waiting) /* re-armed with the drain deadline */
        write_wait(c);
    else
        output_added(c); /* the flush reaps it once drained */
}

void conn_refuse(struct conn *c)
{
    char http[512];
    json_object *bye = goodbye_json(IP_LIMIT_REASON);
    size_t len;
    const char *text = json_object_to_json_string_length(bye, ROOMD_JSON_FLAGS, &len);
    if (c->transport == TRANSPORT_WEBSOCKET) {
        int n = snprintf(http, sizeof(http),
                         "HTTP/1.1 503 Service Unavailable\r\n"
                         "Content-Type: application/json\r\n"
                         "Connection: close\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         len, text);
        if (n > 0 && (size_t)n < sizeof(http))
            conn_send_raw(c, http, (size_t)n);
    } else
        send_json_text(c, bye);
    json_object_put(bye);
    if (!c->dead)
        close_after_output(c);
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->dead || c->closing)
        return;
    /* No welcome yet (a WebSocket handshake): no goodbye.  Without a reason
     * (an HTTP answer on the WebSocket port) the output still drains. */
    if (!c->session && reason) {
        conn_abort(c, NULL);
        return;
    }
    worker_flush_batches(c->worker); /* what its rooms said this turn goes first */
    if (reason) {
        conn_send_json(c, goodbye_json(reason));
        if (c->dead)
            return;
    }
    if (c->proto->send_close) /* RFC 6455: 1001 "going away" at shutdown */
        c->proto->send_close(c, reason && !strcmp(reason, "server shutdown") ? 1001 : 1000);
    close_after_output(c);
}

void conn_abort(struct conn *c, const char *why)
{
    if (c->dead)
        return;
    if (why) {
        char ip[INET6_ADDRSTRLEN];
        int port = peer_address(c, ip, sizeof(ip));
        log_warn("closing connection %s (%s:%d): %s", c->id, ip, port, why);
        if (c->session && strcmp(why, "output buffer limit exceeded") == 0) {
            worker_count(c->worker, stat_slow_dropped);
            /* Best effort: the goodbye goes after what is pending. */
            json_object *bye = goodbye_json(why);
            send_json_text(c, bye);
            json_object_put(bye);
            if (c->proto->send_close)
                c->proto->send_close(c, 1008);
        }
    }
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    write_unwait(c);
    pending_unlink(c);
    schedule_reap(c);
}

void conn_hold(struct conn *c)
{
    c->holds++;
}

void conn_release(struct conn *c)
{
    if (--c->holds == 0 && c->reap_deferred)
        conn_reap(c);
}

void conn_reap(struct conn *c)
{
    if (c->holds > 0) { /* a store callback will come back for it */
        c->reap_deferred = true;
        return;
    }
    verbs_disconnected(c); /* leave the room (announced), stop listening */
    HASH_DEL(c->worker->conns, c);
    index_del(c);
    atomic_fetch_sub(&conns_by_transport[c->transport], 1);
    atomic_fetch_sub_explicit(&c->worker->stat_connections, 1, memory_order_relaxed);
    if (c->proto->on_free)
        c->proto->on_free(c);
    pending_unlink(c);
    out_discard(c);
    if (c->write_ev)
        event_free(c->write_ev);
    if (c->tls_deadline)
        event_free(c->tls_deadline);
    bufferevent_free(c->bev);
    if (c->ip_counted)
        ip_limits_release(&c->peer.sa);
    json_object_put(c->attrs_set);
    json_object_put(c->params);
    free(c->room);
    while (c->listening) /* verbs_disconnected emptied it; this is for a failure */
        conn_listen_remove(c, c->listening);
    free(c);
    conn_slot_release();
}

/* ------------------------------------------------------------ replies */

void conn_reply_ok(struct conn *c, uint64_t count, json_object *data, bool has_data)
{
    conn_reply_ok_with(c, count, data, has_data, NULL);
}

void conn_reply_ok_with(struct conn *c, uint64_t count, json_object *data, bool has_data,
                        json_object *extra)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string("OK"));
    json_object_object_add(o, "context", json_object_new_string("response"));
    if (has_data)
        json_object_object_add(o, "data", data);
    if (extra) {
        json_object_object_foreach(extra, key, value)
        {
            json_object_object_add(o, key, json_object_get(value));
        }
        json_object_put(extra);
    }
    json_object_object_add(o, "messageCount", json_object_new_uint64(count));
    conn_send_json(c, o);
}

void conn_reply_err(struct conn *c, uint64_t count, enum roomd_err err)
{
    if ((unsigned)err < ERR__COUNT)
        worker_count(c->worker, stat_errors[err]);
    const char *text = err_text(err);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string(text));
    json_object_object_add(o, "context", json_object_new_string("response"));
    json_object_object_add(o, "error", json_object_new_string(text));
    json_object_object_add(o, "data", json_object_new_boolean(0));
    json_object_object_add(o, "messageCount", json_object_new_uint64(count));
    conn_send_json(c, o);
}

/* ------------------------------------------------------------- state */

/* Take one token from B, refilled at RATE per second up to BURST (0
 * counts as 1); a RATE of 0 turns the limit off.  Returns whether a token
 * was there. */
static bool bucket_take(struct conn_bucket *b, long rate, long burst)
{
    if (rate <= 0)
        return true;
    int64_t now = monotonic_ms();
    double cap = burst > 0 ? (double)burst : 1.0;
    b->tokens += (double)(now - b->refill_at) * (double)rate / MS_PER_SEC;
    if (b->tokens > cap)
        b->tokens = cap;
    b->refill_at = now;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

bool conn_say_allowed(struct conn *c)
{
    return bucket_take(&c->say_bucket, settings.say_rate, settings.say_burst);
}

bool conn_join_allowed(struct conn *c)
{
    return bucket_take(&c->join_bucket, settings.join_rate, settings.join_burst);
}

json_object *conn_details(const struct conn *c)
{
    json_object *attrs = conn_attributes(c), *o = json_object_new_object();
    static const char *const builtins[] = {"id", "type", "remoteIP", "remotePort", "connectedAt"};
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        json_object_object_add(o, builtins[i],
                               json_object_get(json_object_object_get(attrs, builtins[i])));
    json_object_object_add(o, "room", c->room ? json_object_new_string(c->room) : NULL);
    json_object *rooms = json_object_new_array();
    for (const struct listen_entry *e = c->listening; e; e = e->hh.next)
        json_object_array_add(rooms, json_object_new_string(e->room));
    json_object_object_add(o, "listeningRooms", rooms);
    json_object_object_add(o, "params",
                           c->params ? json_object_get(c->params) : json_object_new_object());
    json_object_object_add(o, "attributes", attrs);
    return o;
}

struct listen_entry *conn_listen_find(const struct conn *c, const char *room)
{
    struct listen_entry *e;
    HASH_FIND_STR(c->listening, room, e);
    return e;
}

struct listen_entry *conn_listen_find_uid(const struct conn *c, uint64_t uid)
{
    struct listen_entry *e;
    HASH_FIND(hh_uid, c->listening_by_uid, &uid, sizeof(uid), e);
    return e;
}

struct listen_entry *conn_listen_add(struct conn *c, const char *room, uint64_t uid)
{
    size_t len = strlen(room);
    struct listen_entry *e = calloc(1, sizeof(*e) + len + 1);
    if (!e)
        return NULL;
    memcpy(e->room, room, len + 1);
    e->uid = uid;
    HASH_ADD_KEYPTR(hh, c->listening, e->room, len, e);
    HASH_ADD(hh_uid, c->listening_by_uid, uid, sizeof(e->uid), e);
    c->nlistening++;
    return e;
}

void conn_listen_remove(struct conn *c, struct listen_entry *e)
{
    HASH_DEL(c->listening, e);
    HASH_DELETE(hh_uid, c->listening_by_uid, e);
    c->nlistening--;
    free(e);
}

/* Runs on each worker after SIGHUP swapped the settings in: what
 * conn_new() copied into a connection (the idle timer; the WebSocket
 * stream's max_line) follows the new values, as roomd(8) says.  The idle
 * timer of an open connection starts again from the reload. */
void conn_apply_settings(struct worker *w)
{
    struct conn *c, *next;
    HASH_ITER(hh, w->conns, c, next)
    {
        if (c->dead || c->closing || (c->tls && !c->tls_open))
            continue;
        conn_set_idle_timeout(c);
        if (c->proto->on_settings)
            c->proto->on_settings(c);
    }
}
