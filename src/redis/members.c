/* members.c -- who is in which room, in Redis: a client's join, listen,
 * leave and view on its worker's link, and what a worker's link writes
 * again when it comes back.
 *
 * A join asks the room's shard whether the room exists and what its
 * pattern is (JOIN_CHECK_LUA), lets the mirror decide (the registry's
 * pattern check, the local index), then writes the member (JOIN_ADD_LUA,
 * which fails if the room went meanwhile).  Leaving answers at once from
 * the mirror; Redis follows. */
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <uthash.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "redis/cluster.h"
#include "redis/members.h"
#include "redis/mirror.h"
#include "registry.h"
#include "worker.h"

static const char JOIN_CHECK_LUA[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return false end "
    "return redis.call('HGETALL', KEYS[2])";
static const char JOIN_ADD_LUA[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end "
    "redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) "
    "redis.call('SADD', KEYS[3], ARGV[4]) return 1";
/* A member written again after a reconnect: the room may not be back yet
 * (a Redis that restarted empty is re-seeded from the bus link). */
static const char MEMBER_SET_LUA[] = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) "
                                     "redis.call('SADD', KEYS[2], ARGV[3]) return 1";

/* A client operation in flight: what to call back, on the worker. */
struct redis_op {
    struct worker *w;
    char *room;
    char *id;
    json_object *attrs; /* the connection's (held): valid until the callback */
    bool listen;        /* check_listen rather than join */
    long limit;
    uint64_t uid;
    int64_t joined_at;
    store_cb cb;
    void *ctx;
};

/* An operation that fails before it reaches Redis answers at once. */
static void answer_err(store_cb cb, void *ctx, enum roomd_err err)
{
    struct store_result res = {.err = err};
    cb(&res, ctx);
}

static struct redis_op *op_new(struct worker *w, const char *room, const char *id, store_cb cb,
                               void *ctx)
{
    struct redis_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->w = w;
    op->room = strdup(room);
    op->id = id ? strdup(id) : NULL;
    op->cb = cb;
    op->ctx = ctx;
    return op;
}

static void op_finish(struct redis_op *op, struct store_result *res)
{
    if (op->cb)
        op->cb(res, op->ctx);
    free(op->room);
    free(op->id);
    free(op);
}

static void op_fail(struct redis_op *op, enum roomd_err err)
{
    struct store_result res = {.err = err};
    op_finish(op, &res);
}

/* The member entry of a join: {"id","joinedAt","server"}. */
static char *member_json(const char *id, int64_t joined_at)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "joinedAt", json_object_new_int64(joined_at));
    json_object_object_add(o, "server", json_object_new_string(redis_server_id));
    char *s = strdup(json_object_to_json_string_ext(o, ROOMD_JSON_FLAGS));
    json_object_put(o);
    return s;
}

/* Write membership of connection ID in ROOM to Redis on W's link. */
static bool send_member_add(struct worker *w, const char *room, const char *id, int64_t joined_at,
                            redisCallbackFn *fn, void *priv)
{
    char members[1024], entry[1024];
    redis_room_key(members, sizeof(members), room, "members");
    snprintf(entry, sizeof(entry), "%s\n%s", id, room);
    char *value = member_json(id, joined_at);
    const char *argv[] = {
        "EVAL", JOIN_ADD_LUA, "3",  redis_keys.rooms, members, redis_keys.self_members, room,
        id,     value,        entry};
    size_t lens[10];
    for (int i = 0; i < 10; i++)
        lens[i] = strlen(argv[i]);
    bool ok = value && redis_link_argv(redis_worker_link(w, redis_room_shard(room)), fn, priv, 10,
                                       argv, lens);
    free(value);
    return ok;
}

static void on_join_added(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_op *op = priv;
    redisReply *r = reply;
    redis_link_done(ac);
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        registry_leave(op->room, op->uid, op->id);
        op_fail(op,
                r && r->type == REDIS_REPLY_INTEGER ? ERR_ROOM_NOT_FOUND : ERR_STORE_UNAVAILABLE);
        return;
    }
    struct store_result res = {.uid = op->uid, .joined_at = op->joined_at};
    op_finish(op, &res);
}

/* Step one of join and listen: does the room exist, what is its pattern.
 * Then the local registry (the mirror) decides, and a join is written. */
static void on_join_checked(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_op *op = priv;
    redisReply *r = reply;
    redis_link_done(ac);
    if (!r || (r->type != REDIS_REPLY_ARRAY && r->type != REDIS_REPLY_NIL)) {
        op_fail(op, ERR_STORE_UNAVAILABLE);
        return;
    }
    if (r->type == REDIS_REPLY_NIL) {
        op_fail(op, ERR_ROOM_NOT_FOUND);
        return;
    }
    redis_mirror_room(op->room, r);
    struct store_result res = {0};
    if (op->listen) {
        res.err = registry_check_listen(op->room, op->attrs, &res.uid);
        op_finish(op, &res);
        return;
    }
    enum roomd_err err =
        registry_join(op->room, op->id, op->attrs, op->w->index, &op->uid, &op->joined_at);
    if (err) {
        op_fail(op, err);
        return;
    }
    if (!send_member_add(op->w, op->room, op->id, op->joined_at, on_join_added, op)) {
        registry_leave(op->room, op->uid, op->id);
        op_fail(op, ERR_STORE_UNAVAILABLE);
    }
}

static void join_or_listen(struct worker *w, const char *room, const char *id, json_object *attrs,
                           bool listen, store_cb cb, void *ctx)
{
    struct redis_op *op = op_new(w, room, id, cb, ctx);
    if (!op) {
        answer_err(cb, ctx, ERR_STORE_UNAVAILABLE);
        return;
    }
    op->attrs = attrs;
    op->listen = listen;
    char pattern[1024];
    const char *argv[] = {"EVAL",
                          JOIN_CHECK_LUA,
                          "2",
                          redis_keys.rooms,
                          redis_room_key(pattern, sizeof(pattern), room, "pattern"),
                          room};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (!redis_link_argv(redis_worker_link(w, redis_room_shard(room)), on_join_checked, op, 6, argv,
                         lens))
        op_fail(op, ERR_STORE_UNAVAILABLE);
}

void redis_join(struct worker *w, const char *room, const char *id, json_object *attrs, store_cb cb,
                void *ctx)
{
    join_or_listen(w, room, id, attrs, false, cb, ctx);
}

void redis_check_listen(struct worker *w, const char *room, json_object *attrs, store_cb cb,
                        void *ctx)
{
    join_or_listen(w, room, NULL, attrs, true, cb, ctx);
}

/* Leaving answers at once from the mirror; Redis follows (a lost HDEL is
 * repaired by the reaper or the next re-registration). */
void redis_leave(struct worker *w, const char *room, uint64_t uid, const char *id, store_cb cb,
                 void *ctx)
{
    struct store_result res = {0};
    res.flag = registry_leave(room, uid, id);
    char members[1024], entry[1024];
    redis_room_key(members, sizeof(members), room, "members");
    snprintf(entry, sizeof(entry), "%s\n%s", id, room);
    const char *hdel[] = {"HDEL", members, id};
    const char *srem[] = {"SREM", redis_keys.self_members, entry};
    size_t hl[] = {4, strlen(members), strlen(id)},
           sl[] = {4, strlen(redis_keys.self_members), strlen(entry)};
    struct redis_shard *sh = redis_room_shard(room);
    struct redis_link *link = redis_worker_link(w, sh);
    if (link) {
        redis_link_argv(link, NULL, NULL, 3, hdel, hl);
        redis_link_argv(link, NULL, NULL, 3, srem, sl);
    } else {
        pthread_mutex_lock(&sh->sync_lock);
        freeReplyObject(redis_sync_argv(sh, 3, hdel, hl));
        freeReplyObject(redis_sync_argv(sh, 3, srem, sl));
        pthread_mutex_unlock(&sh->sync_lock);
    }
    if (cb)
        cb(&res, ctx);
}

/* HGETALL of a members hash to roomView data (at most LIMIT listed). */
json_object *redis_members_json(const char *room, const redisReply *r, long limit)
{
    json_object *o = json_object_new_object(), *members = json_object_new_object();
    long n = 0;
    for (size_t i = 0; r && i + 1 < r->elements; i += 2, n++) {
        if (n >= limit)
            continue;
        json_object *m = json_tokener_parse(r->element[i + 1]->str), *v;
        json_object *e = json_object_new_object();
        json_object_object_add(e, "id", json_object_new_string(r->element[i]->str));
        json_object_object_add(e, "joinedAt",
                               json_object_object_get_ex(m, "joinedAt", &v)
                                   ? json_object_get(v)
                                   : json_object_new_int(0));
        json_object_put(m);
        json_object_object_add(members, r->element[i]->str, e);
    }
    json_object_object_add(o, "room", json_object_new_string(room));
    json_object_object_add(o, "members", members);
    json_object_object_add(o, "membersCount", json_object_new_int64(n));
    return o;
}

static void on_room_viewed(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_op *op = priv;
    redisReply *r = reply;
    redis_link_done(ac);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        op_fail(op, ERR_STORE_UNAVAILABLE);
        return;
    }
    if (!store_room_alive(op->room, op->uid)) {
        op_fail(op, ERR_ROOM_NOT_FOUND);
        return;
    }
    struct store_result res = {.data = redis_members_json(op->room, r, op->limit)};
    op_finish(op, &res);
}

void redis_room_view(struct worker *w, const char *room, uint64_t uid, long limit, store_cb cb,
                     void *ctx)
{
    if (!store_room_alive(room, uid)) {
        answer_err(cb, ctx, ERR_ROOM_NOT_FOUND);
        return;
    }
    struct redis_op *op = op_new(w, room, NULL, cb, ctx);
    if (!op) {
        answer_err(cb, ctx, ERR_STORE_UNAVAILABLE);
        return;
    }
    op->uid = uid;
    op->limit = limit;
    char members[1024];
    const char *argv[] = {"HGETALL", redis_room_key(members, sizeof(members), room, "members")};
    size_t lens[] = {7, strlen(members)};
    if (!redis_link_argv(redis_worker_link(w, redis_room_shard(room)), on_room_viewed, op, 2, argv,
                         lens))
        op_fail(op, ERR_STORE_UNAVAILABLE);
}

/* Entries of this server's member set that no connection of worker W holds
 * any more (its leave was lost while Redis was away, or Redis came back
 * from an old snapshot) are removed, from the set and from their room. */
static void on_self_members(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_link *link = priv;
    struct worker *w = link->owner;
    redisReply *r = reply;
    redis_link_done(ac);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *e = r->element[i]->str, *nl = strchr(e, '\n');
        if (!nl)
            continue;
        char *id = strndup(e, (size_t)(nl - e));
        const char *room = nl + 1;
        int owner;
        uint64_t serial;
        bool stale = !id || !conn_lookup(id, &owner, &serial);
        if (!stale && owner != w->index) {
            free(id);
            continue; /* another worker's: it reconciles its own */
        }
        if (!stale) {
            struct conn *c = worker_find_conn(w, serial);
            stale = !c || !c->room || strcmp(c->room, room) != 0;
        }
        if (stale && id) {
            char members[1024];
            const char *hdel[] = {"HDEL", redis_room_key(members, sizeof(members), room, "members"),
                                  id};
            const char *srem[] = {"SREM", redis_keys.self_members, e};
            size_t hl[] = {4, strlen(members), strlen(id)};
            size_t sl[] = {4, strlen(redis_keys.self_members), r->element[i]->len};
            redis_link_argv(link, NULL, NULL, 3, hdel, hl);
            redis_link_argv(link, NULL, NULL, 3, srem, sl);
        }
        free(id);
    }
}

void redis_members_up(struct redis_link *link)
{
    struct worker *w = link->owner;
    const char *smembers[] = {"SMEMBERS", redis_keys.self_members};
    size_t sl[] = {8, strlen(redis_keys.self_members)};
    redis_link_argv(link, on_self_members, link, 2, smembers, sl);
    for (struct conn *c = w->conns; c; c = c->hh.next) {
        if (c->dead || !c->room || redis_room_shard(c->room) != link->shard ||
            !store_room_alive(c->room, c->room_uid))
            continue;
        char members[1024], entry[1024];
        redis_room_key(members, sizeof(members), c->room, "members");
        snprintf(entry, sizeof(entry), "%s\n%s", c->id, c->room);
        char *value = member_json(c->id, c->room_joined_at);
        const char *argv[] = {"EVAL", MEMBER_SET_LUA,       "2",  members, redis_keys.self_members,
                              c->id,  value ? value : "{}", entry};
        size_t lens[8];
        for (int i = 0; i < 8; i++)
            lens[i] = strlen(argv[i]);
        redis_link_argv(link, NULL, NULL, 8, argv, lens);
        free(value);
    }
}
