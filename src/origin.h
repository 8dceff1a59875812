/* origin.h -- which pages may open a WebSocket (cross-site WebSocket
 * hijacking): the Origin header against websocket_origins. */
#ifndef ROOMD_ORIGIN_H
#define ROOMD_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/* Whether an upgrade whose Origin header is ORIGIN (OLEN bytes; NULL: the
 * request had none) and whose Host header is HOST may go ahead under the
 * allow-list ALLOWED (websocket_origins: comma-separated origins, each
 * exact, "scheme://STAR.domain" (a literal asterisk) for any subdomain, or "*").  An empty list
 * (or NULL) lets in an Origin whose host and port equal HOST, as gorilla/websocket
 * and Centrifugo do.  No Origin is not a browser and is let in. */
bool origin_allowed(const char *origin, size_t olen, const char *host, size_t hlen,
                    const char *allowed);

#endif
