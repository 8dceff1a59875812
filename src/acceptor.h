/* acceptor.h -- the listening sockets, owned by the main thread. */
#ifndef ROOMD_ACCEPTOR_H
#define ROOMD_ACCEPTOR_H

#include <event2/event.h>

#include "worker.h"

/* Open a listener on BIND:PORT for transport T, handing accepted sockets to
 * the workers round-robin.  Returns 0, or -1 after logging why. */
int acceptor_listen(struct event_base *base, const char *bind, int port, enum transport t);
/* Close every listener (first step of a graceful stop). */
void acceptor_close_all(void);

#endif
