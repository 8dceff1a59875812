/* conn_proxy.h -- with proxy_protocol on, a new socket first gives its
 * PROXY header (proxy_proto.c) and only then becomes a connection. */
#ifndef ROOMD_CONN_PROXY_H
#define ROOMD_CONN_PROXY_H

#include <stdbool.h>
#include <sys/socket.h>

#include "worker.h"

/* Read FD's PROXY header on worker W, then conn_new() it with the client
 * address the header names (the peer's ADDR for LOCAL/UNKNOWN).  A socket
 * whose header is malformed, too long or not complete within
 * handshake_timeout is closed (its max_connections slot released). */
void conn_proxy_start(struct worker *w, int fd, enum transport t, bool tls,
                      const struct sockaddr *addr, socklen_t addrlen);
/* Close every socket of W still sending its header (W stops). */
void conn_proxy_cancel_all(struct worker *w);

#endif
