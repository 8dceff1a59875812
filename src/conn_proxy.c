/* conn_proxy.c -- reading the PROXY header off a socket, before the
 * connection (and its TLS handshake) exists.
 *
 * Nothing of the client's own bytes may be taken: over TLS they are the
 * ClientHello that OpenSSL must read from the socket itself.  So each read
 * peeks (MSG_PEEK), the parser says how much is header, and only that much
 * is consumed: all of it while the header is incomplete (proxy_parse()
 * promises those bytes are header), exactly the header's length once it is
 * complete.  A header split over many packets costs one peek and one read
 * per packet; one that never completes is closed at handshake_timeout (a
 * deadline from the accept, not an idle timer). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "conn_proxy.h"
#include "log.h"
#include "proxy_proto.h"

struct proxy_wait {
    struct proxy_wait *next, **prev; /* the worker's list */
    struct worker *worker;
    struct event *ev; /* EV_READ with the time left to the deadline */
    int fd;
    enum transport transport;
    bool tls;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct timeval deadline; /* monotonic */
    size_t have;
    uint8_t buf[PROXY_HEADER_MAX];
};

static void wait_unlink_free(struct proxy_wait *p)
{
    *p->prev = p->next;
    if (p->next)
        p->next->prev = p->prev;
    event_free(p->ev);
    free(p);
}

/* The header failed (WHY, for the debug log) or the worker stops. */
static void wait_fail(struct proxy_wait *p, const char *why)
{
    log_debug("PROXY header: %s; closing", why);
    close(p->fd);
    conn_slot_release();
    wait_unlink_free(p);
}

static struct timeval now_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (struct timeval){ts.tv_sec, ts.tv_nsec / 1000};
}

/* Wait for more of the header until the deadline; false when it passed. */
static bool wait_more(struct proxy_wait *p)
{
    struct timeval now = now_monotonic(), left;
    if (!timercmp(&now, &p->deadline, <))
        return false;
    timersub(&p->deadline, &now, &left);
    event_add(p->ev, &left);
    return true;
}

static void on_header_bytes(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_wait *p = arg;
    if (what & EV_TIMEOUT) {
        wait_fail(p, "not complete in time");
        return;
    }
    ssize_t n = recv(fd, p->buf + p->have, sizeof(p->buf) - p->have, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!wait_more(p))
            wait_fail(p, "not complete in time");
        return;
    }
    if (n <= 0) {
        wait_fail(p, n == 0 ? "connection closed" : strerror(errno));
        return;
    }
    struct proxy_header h;
    enum proxy_result r = proxy_parse(p->buf, p->have + (size_t)n, &h);
    if (r == PROXY_INVALID) {
        wait_fail(p, "malformed");
        return;
    }
    size_t take = r == PROXY_DONE ? h.len - p->have : (size_t)n;
    if (recv(fd, p->buf + p->have, take, 0) != (ssize_t)take) {
        wait_fail(p, "read failed");
        return;
    }
    p->have += take;
    if (r == PROXY_MORE) {
        if (!wait_more(p))
            wait_fail(p, "not complete in time");
        return;
    }
    struct worker *w = p->worker;
    int cfd = p->fd;
    enum transport t = p->transport;
    bool tls = p->tls;
    struct sockaddr_storage addr = h.local ? p->peer : h.source;
    socklen_t len = h.local ? p->peer_len : h.source_len;
    wait_unlink_free(p);
    conn_new(w, cfd, t, tls, (struct sockaddr *)&addr, (int)len);
}

void conn_proxy_start(struct worker *w, int fd, enum transport t, bool tls,
                      const struct sockaddr *addr, socklen_t addrlen)
{
    struct proxy_wait *p = calloc(1, sizeof(*p));
    if (!p || !(p->ev = event_new(w->base, fd, EV_READ, on_header_bytes, p))) {
        log_error("cannot set up a new connection: out of memory");
        free(p);
        close(fd);
        conn_slot_release();
        return;
    }
    evutil_make_socket_nonblocking(fd);
    p->worker = w;
    p->fd = fd;
    p->transport = t;
    p->tls = tls;
    if (addrlen <= sizeof(p->peer)) {
        memcpy(&p->peer, addr, addrlen);
        p->peer_len = addrlen;
    }
    struct timeval now = now_monotonic(), limit = {settings.handshake_timeout, 0};
    timeradd(&now, &limit, &p->deadline);
    p->next = w->proxy_waits;
    if (p->next)
        p->next->prev = &p->next;
    p->prev = &w->proxy_waits;
    w->proxy_waits = p;
    event_add(p->ev, &limit);
}

void conn_proxy_cancel_all(struct worker *w)
{
    while (w->proxy_waits)
        wait_fail(w->proxy_waits, "server shutdown");
}
