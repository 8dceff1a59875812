/* store_redis.c -- the Redis store: rooms, patterns and members shared by
 * every roomd server on one Redis or several (shards), and the bus that
 * carries their chat.  This file opens it and ties the parts in src/redis/
 * into the store interface (store.h); each part is one concern:
 *
 *   url.c      the store setting's URLs and passwords
 *   link.c     the links to one Redis: blocking and async, login, back-off
 *   shard.c    which shard holds a room (roomd-redis(7) "SHARDS")
 *   cluster.c  the shards, this server's id, the key layout
 *   bus.c      the bus messages and the subscriber links
 *   subs.c     the per-room subscriptions (only rooms heard here)
 *   mirror.c   the local registry as a mirror of Redis's rooms
 *   members.c  a client's join, listen, leave and view
 *   streams.c  the say and the rooms' streams (history)
 *   rooms.c    the server side's rooms: add, delete, patterns, status
 *   route.c    connection calls routed to the server that has them
 *   servers.c  heartbeats and the reaper
 *
 * Each shard is laid out like a single Redis for its own rooms, so
 * heartbeats, member sets, the reaper, the mirror and re-seeding work per
 * shard.  Delivery is the local fan-out (fanout.c), as for the memory
 * store.
 *
 * Connections and threads.  Each worker has its own async link to every
 * shard, on its own event base, for its clients' operations; the main
 * thread has the subscriber links (async, on the main base) and one
 * blocking context per shard, under a mutex, for the server side, the
 * heartbeat and the reaper.  No context is ever used by two threads.
 *
 * While a shard is away, what needs it answers "store unavailable" (say
 * included: an acknowledged say reached every server); links reconnect with
 * back-off, re-register their members and re-subscribe. */
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "redis/bus.h"
#include "redis/cluster.h"
#include "redis/streams.h"
#include "redis/members.h"
#include "redis/mirror.h"
#include "redis/rooms.h"
#include "redis/route.h"
#include "redis/servers.h"
#include "store.h"
#include "worker.h"

/* The blocking link to SH, waited for with back-off when redis_wait says
 * so; -1 (logged) when it cannot be had. */
static int shard_connect(struct redis_shard *sh)
{
    int delay = REDIS_BACKOFF_MIN_MS;
    while (!(sh->sync_ctx = redis_sync_connect(sh))) {
        if (sh->sync_auth_failed)
            return -1; /* logged, naming the server; waiting will not fix it */
        if (!settings.redis_wait) {
            log_error("store: cannot reach Redis at %s", sh->ep.shown);
            return -1;
        }
        log_warn("store: cannot reach Redis at %s; retrying in %d ms", sh->ep.shown, delay);
        usleep((useconds_t)delay * 1000);
        delay = delay * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS : delay * 2;
    }
    return 0;
}

static int redis_open(void)
{
    if (redis_cluster_open() < 0)
        return -1;
    redis_history_open();
    for (int i = 0; i < redis_nshards; i++) {
        struct redis_shard *sh = &redis_shards[i];
        if (shard_connect(sh) < 0)
            return -1;
        log_info("store: Redis shard %d of %d at %s, server id %s", i, redis_nshards, sh->ep.shown,
                 redis_server_id);
        /* A restarted server starts clean: what its last life left goes. */
        redis_reap_server(sh, redis_server_id, INT64_MAX);
        redis_mirror_sync(sh);
    }
    return 0;
}

/* A worker's link is (back) up: the scripts first (EVALSHA may follow at
 * once), then its members. */
static void on_worker_up(struct redis_link *link)
{
    redis_history_up(link);
    redis_members_up(link);
}

/* The subscriber and the heartbeat live on the main base, which exists
 * only once roomd_run starts; the first worker_start is the cue.  Each
 * worker has a link to every shard: W->store_state is their array. */
static void redis_worker_start(struct worker *w)
{
    if (!redis_servers_started()) {
        redis_bus_start(main_base);
        redis_servers_start(main_base);
    }
    size_t n = redis_nshards > 0 ? (size_t)redis_nshards : 1;
    struct redis_link **links = calloc(n, sizeof(*links));
    for (int i = 0; links && i < redis_nshards; i++)
        links[i] =
            redis_link_new("worker", &redis_shards[i], redis_nshards > 1, w->base, on_worker_up, w);
    w->store_state = links;
}

static void redis_worker_stop(struct worker *w)
{
    struct redis_link **links = w->store_state;
    w->store_state = NULL;
    for (int i = 0; links && i < redis_nshards; i++)
        redis_link_free(links[i]);
    free(links);
}

/* Whether W reaches ROOM's shard now (NULL: every shard). */
static bool redis_available(const struct worker *w, const char *room)
{
    if (room)
        return redis_link_ready(redis_worker_link(w, redis_room_shard(room)));
    for (int i = 0; i < redis_nshards; i++)
        if (!redis_link_ready(redis_worker_link(w, &redis_shards[i])))
            return false;
    return true;
}

static void redis_close(void)
{
    redis_servers_stop();
    redis_bus_stop();
    for (int i = 0; i < redis_nshards; i++) {
        struct redis_shard *sh = &redis_shards[i];
        if (sh->sync_ctx) {
            /* A clean stop: this server's members leave now, not at timeout. */
            redis_reap_server(sh, redis_server_id, INT64_MAX);
            redisFree(sh->sync_ctx);
        }
        sh->sync_ctx = NULL;
    }
}

const struct store_ops store_redis_ops = {
    .open = redis_open,
    .close = redis_close,
    .worker_start = redis_worker_start,
    .worker_stop = redis_worker_stop,
    .join = redis_join,
    .leave = redis_leave,
    .check_listen = redis_check_listen,
    .room_view = redis_room_view,
    .publish = redis_publish,
    .room_add = redis_room_add,
    .room_del = redis_room_del,
    .room_exists = redis_room_exists,
    .room_set_pattern = redis_room_set_pattern,
    .room_status = redis_room_status,
    .room_list = redis_room_list,
    .route_conn_call = redis_route_conn_call,
    .when_ready = redis_when_ready,
    .available = redis_available,
    .keeps_history = true,
    .stream_read = redis_stream_read,
    .room_history = redis_room_history,
    .room_messages = redis_room_messages,
    .bus_stats = redis_bus_stats,
    .room_heard = redis_room_heard,
};
