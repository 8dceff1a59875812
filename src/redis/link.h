/* link.h -- the connections to one Redis server (a shard): a blocking one
 * for the server side, shared by threads under a mutex, and asynchronous
 * links (one per worker and one subscriber per shard) that log in,
 * reconnect with back-off and count what they have in flight.
 *
 * Each link is used by one thread only: the one whose event base it is on.
 * A login Redis refuses is logged as "authentication failed at URL" (the
 * password shown as ***) and retried with back-off. */
#ifndef ROOMD_REDIS_LINK_H
#define ROOMD_REDIS_LINK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "redis/url.h"

/* Reconnect back-off: from the first to the last delay, doubling. */
#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 5000
/* A blocking call waits this long before the server side gives up. */
#define REDIS_SYNC_TIMEOUT_MS 1000
/* Commands a link may have in flight before it counts as unavailable: a
 * paused Redis must not make roomd buffer without bound. */
#define REDIS_MAX_IN_FLIGHT 100000
/* Redis servers (shards) the store setting may list. */
#define REDIS_MAX_URLS 64

struct redis_link;

/* One Redis server of the store (a shard: it holds the rooms the shard map
 * gives it, their keys and their channel) and this server's links to it. */
struct redis_shard {
    int index;
    struct redis_endpoint ep;
    pthread_mutex_t sync_lock; /* the blocking link, shared by threads */
    redisContext *sync_ctx;
    int64_t sync_failed_at;              /* monotonic ms; 0: healthy */
    bool sync_auth_failed;               /* Redis refused our login */
    struct redis_link *_Atomic bus_link; /* the subscriber, on the main thread (metrics read it) */
    int64_t bus_up_since;                /* ms; the reaper waits a full timeout after */
    _Atomic long subscriptions;          /* read by the metrics */
    bool subscribed;                     /* its bus was confirmed once: counts for ready */
};

struct redis_link {
    char name[48];
    struct redis_shard *shard;
    struct event_base *base;
    redisAsyncContext *ac;
    struct event *retry_ev;
    int backoff_ms;
    _Atomic bool up;  /* read by the metrics of the admin thread */
    int64_t up_since; /* monotonic ms while up: one lost soon after keeps backing off */
    long in_flight;
    bool auth_failed; /* closed by us after a refused AUTH: retry later */
    void (*on_up)(struct redis_link *link);
    void *owner; /* the worker, or NULL for the bus subscriber */
};

/* A blocking connection to SH, logged in and on its database; NULL when
 * Redis cannot be reached or refused us (SH->sync_auth_failed). */
redisContext *redis_sync_connect(struct redis_shard *sh);
/* A command on SH's blocking link, with SH->sync_lock held; the reply, or
 * NULL when Redis cannot be reached (then calls fail at once a while). */
redisReply *redis_sync_argv(struct redis_shard *sh, int argc, const char **argv,
                            const size_t *lens);
/* The same with C-string arguments, taking the lock; an error reply is
 * logged and gives NULL. */
redisReply *redis_sync_cmd(struct redis_shard *sh, int argc, const char **argv);

/* A link to SH on BASE, connecting now; ON_UP runs each time it is up
 * (logged in).  NUMBERED: its log name says the shard. */
struct redis_link *redis_link_new(const char *name, struct redis_shard *sh, bool numbered,
                                  struct event_base *base, void (*on_up)(struct redis_link *),
                                  void *owner);
/* Close LINK: pending callbacks run with a NULL reply. */
void redis_link_free(struct redis_link *link);
/* Whether LINK can take a command now. */
bool redis_link_ready(const struct redis_link *link);
/* Send a command whose callback FN gets PRIV; false when the link is down. */
bool redis_link_argv(struct redis_link *link, redisCallbackFn *fn, void *priv, int argc,
                     const char **argv, const size_t *lens);
/* A callback's first call: one command fewer in flight. */
void redis_link_done(redisAsyncContext *ac);

#endif
