/* servers.h -- the servers of a cluster: heartbeats and the reaper.
 *
 * Each server beats into P servers on every shard, server_timeout /
 * REDIS_HEARTBEATS_PER_TIMEOUT apart, from the main thread.  A server
 * whose beat is older than server_timeout is gone: the first server to see
 * it takes its members out of every room of the shard (REAP_LUA, once), and
 * announces their leaving.  A server reaps only after a full timeout of its
 * own link being up, so servers that lost Redis with it have had time to
 * beat again. */
#ifndef ROOMD_REDIS_SERVERS_H
#define ROOMD_REDIS_SERVERS_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "redis/link.h"

/* Take server S's members (heartbeat at most DEADLINE ms; INT64_MAX: this
 * server's own, at start and stop) out of every room of shard SH, and
 * announce their leaving; blocking link. */
void redis_reap_server(struct redis_shard *sh, const char *s, int64_t deadline);
/* Beat now and then every interval, on BASE (main). */
void redis_servers_start(struct event_base *base);
bool redis_servers_started(void);
void redis_servers_stop(void);

#endif
