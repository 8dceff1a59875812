/* bus.c -- the bus messages and the subscriber links (see bus.h).
 *
 * A message from another server is applied here, on the main thread: chat
 * goes to the local fan-out, room changes to the mirror.  A subscription
 * that becomes active is when the mirror is re-read (not before: an event
 * published between a read and the subscription would be lost). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>

#include "conn.h"
#include "fanout.h"
#include "history.h"
#include "log.h"
#include "msg.h"
#include "redis/bus.h"
#include "redis/cluster.h"
#include "redis/mirror.h"
#include "redis/route.h"
#include "redis/subs.h"
#include "registry.h"

/* A bus message: "SERVER\nTYPE\nROOM\nSKIP\nPAYLOAD"; malloc'd. */
char *redis_bus_message(const char *type, const char *room, const char *skip, const char *payload,
                        size_t plen, size_t *len)
{
    size_t n =
        strlen(redis_server_id) + strlen(type) + strlen(room) + strlen(skip ? skip : "") + plen + 5;
    char *b = malloc(n);
    if (!b)
        return NULL;
    int head = snprintf(b, n, "%s\n%s\n%s\n%s\n", redis_server_id, type, room, skip ? skip : "");
    memcpy(b + head, payload, plen);
    *len = (size_t)head + plen;
    return b;
}

/* Publish a bus message on shard SH from worker W (its link) or,
 * off-worker, through the blocking link: chat on its room's channel (only
 * servers with recipients of the room hear it), the rest on the control
 * channel. */
void redis_bus_publish(struct redis_shard *sh, struct worker *w, const char *type, const char *room,
                       const char *skip, const char *payload, size_t plen)
{
    size_t len;
    char *b = redis_bus_message(type, room, skip, payload, plen, &len);
    if (!b)
        return;
    char channel[1024];
    const char *ch = *room && !strcmp(type, "chat")
                         ? redis_subs_channel(channel, sizeof(channel), room)
                         : redis_keys.bus;
    const char *argv[] = {"PUBLISH", ch, b};
    size_t lens[] = {7, strlen(ch), len};
    if (w) {
        if (!redis_link_argv(redis_worker_link(w, sh), NULL, NULL, 3, argv, lens))
            log_warn("redis: bus message lost (link down)");
    } else {
        pthread_mutex_lock(&sh->sync_lock);
        redisReply *r = redis_sync_argv(sh, 3, argv, lens);
        pthread_mutex_unlock(&sh->sync_lock);
        if (!r)
            log_warn("redis: bus message lost (Redis unreachable)");
        freeReplyObject(r);
    }
    free(b);
}

/* Read by the admin thread's metrics. */
static _Atomic uint64_t bus_received;

/* One bus message from another server: deliver to local recipients or
 * apply a room change to the mirror. */
static void bus_dispatch(const char *b, size_t len)
{
    const char *f[5];
    size_t flen[5];
    const char *p = b, *end = b + len;
    for (int i = 0; i < 4; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return;
        f[i] = p;
        flen[i] = (size_t)(nl - p);
        p = nl + 1;
    }
    f[4] = p;
    flen[4] = (size_t)(end - p);
    bool say = flen[1] == 3 && memcmp(f[1], "say", 3) == 0;
    if (say || (flen[1] == 4 && memcmp(f[1], "chat", 4) == 0))
        atomic_fetch_add_explicit(&bus_received, 1, memory_order_relaxed);
    if (!say && flen[0] == strlen(redis_server_id) && memcmp(f[0], redis_server_id, flen[0]) == 0)
        return; /* ours: delivered locally when published (a say comes from here) */
    char *room = strndup(f[2], flen[2]), *type = strndup(f[1], flen[1]);
    if (!room || !type)
        goto out;
    uint64_t uid = 0;
    if (!strcmp(type, "chat") || !strcmp(type, "say")) {
        /* The connection to leave out may be ours (an admin broadcast "from"
         * it, made on another server). */
        char *skip_id = strndup(f[3], flen[3]);
        int worker;
        uint64_t skip = 0;
        if (!skip_id || !*skip_id || !conn_lookup(skip_id, &worker, &skip))
            skip = 0;
        free(skip_id);
        if (registry_lookup(room, &uid)) {
            struct msg *m = msg_new_text(f[4], flen[4]);
            if (m) {
                m->offset = history_offset_of(m->data, m->len);
                fanout_publish(NULL, room, uid, m, skip, false);
                msg_unref(m);
            }
        }
    } else if (!strcmp(type, "created")) {
        registry_add(room);
    } else if (!strcmp(type, "deleted")) {
        fanout_room_deleted(room);
    } else if (!strcmp(type, "connop") || !strcmp(type, "connres")) {
        char *origin = strndup(f[0], flen[0]);
        json_object *o = json_tokener_parse(f[4]);
        if (origin && o && !strcmp(type, "connop"))
            redis_route_run(origin, o);
        else if (o && !strcmp(room, redis_server_id)) /* ROOM holds the asker */
            redis_route_done(o);
        json_object_put(o);
        free(origin);
    } else if (!strcmp(type, "pattern")) {
        json_object *pattern = json_tokener_parse(f[4]);
        registry_add(room);
        registry_set_pattern(room, pattern);
        json_object_put(pattern);
    }
out:
    free(room);
    free(type);
}

/* Called once the first subscription is confirmed (roomd's "ready"). */
static void (*when_subscribed)(void);

/* The subscription is active: from now on no bus event is missed, so this
 * is when the mirror is re-read (not before: an event published between a
 * read and the subscription would be lost). */
static void on_bus_subscribed(struct redis_shard *sh)
{
    sh->bus_up_since = now_ms();
    sh->sync_failed_at = 0; /* Redis answers again: no need to hold off */
    redis_mirror_sync(sh);
    sh->subscribed = true;
    for (int i = 0; i < redis_nshards; i++)
        if (!redis_shards[i].subscribed)
            return; /* ready waits for every shard */
    if (when_subscribed) {
        void (*fn)(void) = when_subscribed;
        when_subscribed = NULL;
        fn();
    }
}

/* Every reply of a subscriber link: messages of the control channel and
 * of the room channels, and the (un)subscribe confirmations.  A NULL reply
 * is the link going away: nothing is subscribed on it any more. */
static void on_bus_message(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    if (!r) {
        ((struct redis_shard *)priv)->subscriptions = 0;
        redis_subs_lost(priv);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    struct redis_shard *sh = priv;
    if (!strcmp(r->element[0]->str, "message"))
        bus_dispatch(r->element[2]->str, r->element[2]->len);
    else if (!strcmp(r->element[0]->str, "subscribe") ||
             !strcmp(r->element[0]->str, "unsubscribe")) {
        bool sub = r->element[0]->str[0] == 's';
        if (r->element[2]->type == REDIS_REPLY_INTEGER)
            sh->subscriptions = (long)r->element[2]->integer;
        if (r->element[1]->type == REDIS_REPLY_STRING &&
            !redis_subs_reply(sh, r->element[1]->str, r->element[1]->len, sub) && sub)
            on_bus_subscribed(sh); /* the control channel */
    }
}

void redis_bus_stats(struct store_bus_stats *out)
{
    out->shards = redis_nshards;
    out->received = atomic_load_explicit(&bus_received, memory_order_relaxed);
    for (int i = 0; i < redis_nshards; i++) {
        struct redis_link *link = redis_shards[i].bus_link;
        if (link && link->up) {
            out->up |= (uint64_t)1 << i;
            out->subscriptions += redis_shards[i].subscriptions;
        }
    }
}

/* The subscriber link is (back) up: the control channel, then every room
 * in use on this shard in one SUBSCRIBE. */
static void on_bus_up(struct redis_link *link)
{
    redisAsyncCommand(link->ac, on_bus_message, link->shard, "SUBSCRIBE %s", redis_keys.bus);
    redis_subs_resubscribe(link->shard);
}

void redis_room_heard(const char *room, int delta)
{
    redis_subs_ref(room, delta);
}

/* roomd is ready once the bus subscription works: a room created on another
 * server right after "roomd ready" is then known here. */
void redis_when_ready(void (*fn)(void))
{
    when_subscribed = fn;
}

void redis_bus_start(struct event_base *base)
{
    redis_subs_start(base, redis_shards, redis_nshards, on_bus_message);
    for (int i = 0; i < redis_nshards; i++)
        redis_shards[i].bus_link =
            redis_link_new("bus", &redis_shards[i], redis_nshards > 1, base, on_bus_up, NULL);
}

void redis_bus_stop(void)
{
    for (int i = 0; i < redis_nshards; i++) {
        redis_link_free(redis_shards[i].bus_link);
        redis_shards[i].bus_link = NULL;
    }
    redis_subs_stop();
}
