/* forwarded.h -- the client address behind a trusted HTTP proxy:
 * trusted_proxies (CIDRs) and the X-Forwarded-For header. */
#ifndef ROOMD_FORWARDED_H
#define ROOMD_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Whether ADDR is inside one of the CIDRs of LIST (trusted_proxies:
 * comma-separated "10.0.0.0/8", "2001:db8::/32", or single addresses). */
bool forwarded_trusted(const struct sockaddr *addr, const char *list);
/* The client X-Forwarded-For (VALUE, LEN bytes) names when the request
 * came through proxies of LIST: the right-most entry that is not itself
 * a trusted proxy (entries to its left could be forged by the client).
 * Returns false, *OUT untouched, when no entry is an address. */
bool forwarded_client(const char *value, size_t len, const char *list, struct sockaddr_storage *out,
                      socklen_t *out_len);

#endif
