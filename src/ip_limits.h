/* ip_limits.h -- connections per client address: max_connections_per_ip
 * (how many at once) and connection_rate_per_ip (how many new ones per
 * second, a token bucket), shared by every worker. */
#ifndef ROOMD_IP_LIMITS_H
#define ROOMD_IP_LIMITS_H

#include <stdint.h>
#include <sys/socket.h>

enum ip_verdict {
    IP_ADMITTED,  /* counted: ip_limits_release() when it closes */
    IP_UNCOUNTED, /* both limits off: nothing to release */
    IP_TOO_MANY,  /* max_connections_per_ip reached */
    IP_TOO_FAST,  /* connection_rate_per_ip exceeded */
};

/* A goodbye reason for refused connections (PROTOCOL.md). */
#define IP_LIMIT_REASON "too many connections from this address"

/* May a new connection from ADDR (its real client address: after a PROXY
 * header) open now?  Thread-safe. */
enum ip_verdict ip_limits_take(const struct sockaddr *addr);
/* A connection ip_limits_take() admitted from ADDR has closed. */
void ip_limits_release(const struct sockaddr *addr);
/* Connections refused so far: over the count, over the rate (/metrics). */
void ip_limits_refused(uint64_t *too_many, uint64_t *too_fast);

#endif
