/* acceptor.h -- the listening sockets, owned by the main thread. */
#ifndef ROOMD_ACCEPTOR_H
#define ROOMD_ACCEPTOR_H

#include <stdbool.h>
#include <time.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "worker.h"

/* Pause after EMFILE/ENFILE before accepting again. */
#define ACCEPT_BACKOFF_MS 100
/* At most one "accept: too many open files" line per this many seconds. */
#define ACCEPT_LOG_EVERY_SEC 10

/* Open a listener on BIND:PORT for transport T (over TLS when TLS), handing
 * accepted sockets to the workers round-robin.  Returns 0, or -1 after
 * logging why. */
int acceptor_listen(struct event_base *base, const char *bind, int port, enum transport t,
                    bool tls);
/* A listening socket on BIND:PORT calling CB(ARG) for each accepted socket;
 * WHAT names the listener in the log ("line", "WebSocket", "admin").
 * Returns NULL after logging which listener failed and why. */
struct evconnlistener *acceptor_bind(struct event_base *base, const char *what, const char *bind,
                                     int port, evconnlistener_cb cb, void *arg);
/* accept() on listener WHAT failed with ERR.  Returns true when it failed
 * for want of descriptors or memory: the caller pauses the listener for
 * ACCEPT_BACKOFF_MS instead of spinning.  Logs at most one line per
 * ACCEPT_LOG_EVERY_SEC per *LAST_LOGGED while that lasts; other errors are
 * logged as they come. */
bool acceptor_backoff_needed(const char *what, int err, time_t *last_logged);
/* Close every listener (first step of a graceful stop). */
void acceptor_close_all(void);

#endif
