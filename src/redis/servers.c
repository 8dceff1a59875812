/* servers.c -- the heartbeats and the reaper (see servers.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "fanout.h"
#include "log.h"
#include "msg.h"
#include "redis/bus.h"
#include "redis/cluster.h"
#include "redis/servers.h"
#include "registry.h"
#include "worker.h"

/* Heartbeats per server_timeout. */
#define REDIS_HEARTBEATS_PER_TIMEOUT 5

static struct event *heartbeat_ev;

/* Take a dead server's members out of every room, once (the caller that
 * removes it from the heartbeat set wins); returns its "ID\nROOM" entries. */
static const char REAP_LUA[] =
    "local s = redis.call('ZSCORE', KEYS[1], ARGV[1]) "
    "if not s or tonumber(s) > tonumber(ARGV[3]) then return {} end "
    "redis.call('ZREM', KEYS[1], ARGV[1]) "
    "local e = redis.call('SMEMBERS', KEYS[2]) redis.call('DEL', KEYS[2]) "
    "for _, v in ipairs(e) do local nl = string.find(v, '\\n', 1, true) "
    "if nl then redis.call('HDEL', ARGV[2] .. 'room:' .. string.sub(v, nl + 1) .. "
    "':members', string.sub(v, 1, nl - 1)) end end return e";

/* "I have left the room" from connection ID into ROOM, on every server:
 * the reaper's announcement for members of a server that is gone. */
static void announce_left(const char *id, const char *room)
{
    uint64_t uid = 0;
    json_object *chat = msg_chat_json(json_object_new_string("I have left the room"), room, id);
    struct msg *m = msg_new(chat);
    json_object_put(chat);
    if (!m)
        return;
    if (workers && registry_lookup(room, &uid))
        fanout_publish(NULL, room, uid, m, 0, false); /* none before start, after stop */
    redis_bus_publish(redis_room_shard(room), NULL, "chat", room, id, m->data, m->len);
    msg_unref(m);
}

/* Take server S's members out of every room of shard SH and announce their
 * leaving (each shard keeps the heartbeats and member sets of its rooms). */
void redis_reap_server(struct redis_shard *sh, const char *s, int64_t deadline)
{
    char members[1024], dl[32];
    snprintf(members, sizeof(members), "%sserver:%s:members", settings.redis_prefix, s);
    snprintf(dl, sizeof(dl), "%lld", (long long)deadline);
    const char *argv[] = {
        "EVAL", REAP_LUA, "2", redis_keys.servers, members, s, settings.redis_prefix, dl};
    redisReply *r = redis_sync_cmd(sh, 8, argv);
    if (r && r->type == REDIS_REPLY_ARRAY) {
        if (r->elements > 0)
            log_info("redis: server %s is gone; removing its %zu members", s, r->elements);
        for (size_t i = 0; i < r->elements; i++) {
            char *e = strdup(r->element[i]->str), *nl = e ? strchr(e, '\n') : NULL;
            if (nl) {
                *nl = '\0';
                announce_left(e, nl + 1);
            }
            free(e);
        }
    }
    freeReplyObject(r);
}

/* One heartbeat on shard SH, and its reaper. */
static void shard_heartbeat(struct redis_shard *sh)
{
    char now[32];
    int64_t t = now_ms();
    snprintf(now, sizeof(now), "%lld", (long long)t);
    const char *zadd[] = {"ZADD", redis_keys.servers, now, redis_server_id};
    redisReply *r = redis_sync_cmd(sh, 4, zadd);
    bool ok = r != NULL;
    freeReplyObject(r);
    /* Reap only after a full timeout of our own link being up, so servers
     * that lost Redis with us have had time to beat again. */
    int64_t timeout = settings.server_timeout * 1000;
    if (!ok || !sh->bus_link || !sh->bus_link->up || t - sh->bus_up_since < timeout)
        return;
    char deadline[32];
    snprintf(deadline, sizeof(deadline), "%lld", (long long)(t - timeout));
    const char *range[] = {"ZRANGEBYSCORE", redis_keys.servers, "-inf", deadline};
    r = redis_sync_cmd(sh, 4, range);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (strcmp(r->element[i]->str, redis_server_id) != 0)
            redis_reap_server(sh, r->element[i]->str, t - timeout);
    freeReplyObject(r);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    for (int i = 0; i < redis_nshards; i++)
        shard_heartbeat(&redis_shards[i]);
}

void redis_servers_start(struct event_base *base)
{
    heartbeat_ev = event_new(base, -1, EV_PERSIST, on_heartbeat, NULL);
    long ms = settings.server_timeout * 1000 / REDIS_HEARTBEATS_PER_TIMEOUT;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(heartbeat_ev, &tv);
    on_heartbeat(-1, 0, NULL);
}

bool redis_servers_started(void)
{
    return heartbeat_ev != NULL;
}

void redis_servers_stop(void)
{
    if (heartbeat_ev)
        event_free(heartbeat_ev);
    heartbeat_ev = NULL;
}
