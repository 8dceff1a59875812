/* acceptor.c -- accept connections and hand them to workers.
 *
 * The acceptor never reads client data.  Each accepted socket goes to the
 * next worker in turn as a JOB_NEW_CONN; above max_connections it gets the
 * goodbye line instead and is closed (on a TLS port it is only closed: the
 * acceptor speaks no TLS).  When accept() fails for want of file
 * descriptors the listener pauses briefly instead of spinning on EMFILE.
 * The admin API (admin.c) binds its port and backs off through the same
 * two functions (acceptor_bind, acceptor_backoff_needed). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "config.h"
#include "conn.h"
#include "log.h"

/* Kernel backlog of not-yet-accepted connections. */
#define ACCEPT_BACKLOG 1024
#define MAX_LISTENERS 8

struct listener {
    struct evconnlistener *lev;
    struct event *resume_ev;
    enum transport transport;
    bool tls;           /* tls_port, wss_port */
    time_t last_logged; /* the last back-off warning */
};

static struct listener listeners[MAX_LISTENERS];
static int nlisteners;
static unsigned next_worker;

static const char TOO_MANY[] =
    "{\"status\":\"Bye!\",\"context\":\"api\",\"reason\":\"too many connections\"}\r\n";
static const char TOO_MANY_HTTP[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                    "Content-Type: application/json\r\n"
                                    "Connection: close\r\n"
                                    "Content-Length: 69\r\n\r\n"
                                    "{\"status\":\"Bye!\",\"context\":\"api\",\"reason\":"
                                    "\"too many connections\"}";

static void refuse(int fd, enum transport t)
{
    const char *text = t == TRANSPORT_WEBSOCKET ? TOO_MANY_HTTP : TOO_MANY;
    size_t len = t == TRANSPORT_WEBSOCKET ? sizeof(TOO_MANY_HTTP) - 1 : sizeof(TOO_MANY) - 1;
    ssize_t rc = send(fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)rc; /* best effort: a fresh socket's buffer takes it */
    close(fd);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *addr,
                      int addrlen, void *arg)
{
    struct listener *l = arg;
    if (!conn_slot_take(settings.max_connections)) {
        log_warn("max_connections (%ld) reached: refusing a client", settings.max_connections);
        if (l->tls) /* plain text would reach a TLS client as garbage; the acceptor does no TLS */
            close(fd);
        else
            refuse(fd, l->transport);
        return;
    }
    struct job *job = calloc(1, sizeof(*job));
    if (!job) {
        close(fd);
        conn_slot_release();
        return;
    }
    job->type = JOB_NEW_CONN;
    job->u.conn.fd = fd;
    job->u.conn.transport = l->transport;
    job->u.conn.tls = l->tls;
    memcpy(&job->u.conn.addr, addr, (size_t)addrlen);
    job->u.conn.addrlen = (socklen_t)addrlen;
    worker_post(&workers[next_worker++ % (unsigned)nworkers], job);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    evconnlistener_enable(l->lev);
}

bool acceptor_backoff_needed(const char *what, int err, time_t *last_logged)
{
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        log_warn("%s listener: accept: %s", what, strerror(err));
        return false;
    }
    /* Saturated for a while means a pause every ACCEPT_BACKOFF_MS: say so
     * once per ACCEPT_LOG_EVERY_SEC, not ten times a second. */
    time_t now = time(NULL);
    if (now - *last_logged >= ACCEPT_LOG_EVERY_SEC) {
        log_warn("%s listener: accept: %s; pausing for %d ms at a time", what, strerror(err),
                 ACCEPT_BACKOFF_MS);
        *last_logged = now;
    }
    return true;
}

static const char *transport_name(enum transport t)
{
    return t == TRANSPORT_WEBSOCKET ? "WebSocket" : "line";
}

static const char *transport_tls_name(enum transport t)
{
    return t == TRANSPORT_WEBSOCKET ? "WebSocket TLS" : "line TLS";
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct listener *l = arg;
    if (acceptor_backoff_needed(transport_name(l->transport), EVUTIL_SOCKET_ERROR(),
                                &l->last_logged)) {
        evconnlistener_disable(lev);
        struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
        event_add(l->resume_ev, &tv);
    }
}

/* Both the chat listeners and the admin API's bind the same way: a numeric
 * address (no DNS at start-up), SO_REUSEADDR so a restart need not wait
 * for TIME_WAIT, close-on-exec, and a start-up error that says which
 * listener could not open and why. */
struct evconnlistener *acceptor_bind(struct event_base *base, const char *what, const char *bind,
                                     int port, evconnlistener_cb cb, void *arg)
{
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct evutil_addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICHOST;
    int rc = evutil_getaddrinfo(bind, portstr, &hints, &ai);
    if (rc != 0) {
        log_error("%s listener: cannot listen on %s:%d: %s", what, bind, port,
                  evutil_gai_strerror(rc));
        return NULL;
    }
    struct evconnlistener *lev = evconnlistener_new_bind(
        base, cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        ACCEPT_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
    int err = errno;
    evutil_freeaddrinfo(ai);
    if (!lev)
        log_error("%s listener: cannot listen on %s:%d: %s", what, bind, port, strerror(err));
    return lev;
}

int acceptor_listen(struct event_base *base, const char *bind, int port, enum transport t, bool tls)
{
    if (nlisteners == MAX_LISTENERS)
        return -1;
    struct listener *l = &listeners[nlisteners];
    l->transport = t;
    l->tls = tls;
    l->lev = acceptor_bind(base, tls ? transport_tls_name(t) : transport_name(t), bind, port,
                           on_accept, l);
    if (!l->lev)
        return -1;
    evconnlistener_set_error_cb(l->lev, on_accept_error);
    l->resume_ev = evtimer_new(base, on_resume, l);
    nlisteners++;
    return 0;
}

void acceptor_close_all(void)
{
    for (int i = 0; i < nlisteners; i++) {
        evconnlistener_free(listeners[i].lev);
        event_free(listeners[i].resume_ev);
    }
    nlisteners = 0;
}
