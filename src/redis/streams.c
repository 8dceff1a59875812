/* streams.c -- rooms' streams in Redis (PROTOCOL.md "History and
 * recovery"), and the say that feeds them.
 *
 * A say or a server broadcast is numbered, kept and published by one
 * script (SAY_LUA) on the room's shard, so every server agrees on offsets
 * and epochs, and every server -- the one it was said on included --
 * delivers it from the bus, in the order Redis numbered it.  A joiner's
 * slot is held from before its position is read (STREAM_LUA) until it
 * arrives (worker_release), and the read waits for this server's
 * subscription to the room, so what the bus brings meanwhile is neither
 * lost nor sent twice. */
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <openssl/sha.h>

#include "config.h"
#include "fanout.h"
#include "history.h"
#include "log.h"
#include "msg.h"
#include "redis/bus.h"
#include "redis/cluster.h"
#include "redis/streams.h"
#include "redis/rooms.h"
#include "redis/subs.h"

/* The stream's epoch, started (ARGV[1], a fresh one) when the room has
 * none -- a new room, a Redis that lost it -- or when a message went out
 * unnumbered since the last one ("broken"); trims what outlived the ttl.
 * Shared by the two scripts below: KEYS[1] history, KEYS[2] stream. */
#define STREAM_START_LUA                                                                           \
    "local function start(h, st, fresh, ttl) "                                                     \
    "if redis.call('HEXISTS', h, 'epoch') == 0 or redis.call('HEXISTS', h, 'broken') == 1 then "   \
    "redis.call('HSET', h, 'epoch', fresh, 'top', 0) redis.call('HDEL', h, 'broken') "             \
    "redis.call('DEL', st) end "                                                                   \
    "local t = redis.call('TIME') "                                                                \
    "redis.call('XTRIM', st, 'MINID', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "  \
    "- ttl * 1000) end "
/* Number, keep and publish a say or a server broadcast: KEYS rooms,
 * history, stream, the room's channel; ARGV room, the bus head, the chat JSON, the default
 * size and ttl, a fresh epoch.  Returns the offset (0: history off in the
 * room, published unnumbered; -1: no such room). */
static const char SAY_LUA[] =
    STREAM_START_LUA "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end "
                     "local size = tonumber(redis.call('HGET', KEYS[2], 'size') or ARGV[4]) "
                     "if size <= 0 then "
                     "if redis.call('HEXISTS', KEYS[2], 'epoch') == 1 then redis.call('HSET', "
                     "KEYS[2], 'broken', 1) end "
                     "redis.call('PUBLISH', KEYS[4], ARGV[2] .. ARGV[3]) return 0 end "
                     "local ttl = tonumber(redis.call('HGET', KEYS[2], 'ttl') or ARGV[5]) "
                     "start(KEYS[2], KEYS[3], ARGV[6], ttl) "
                     "local top = redis.call('HINCRBY', KEYS[2], 'top', 1) "
                     "local body = string.sub(ARGV[3], 1, -2) .. ',\"offset\":' .. top .. '}' "
                     "redis.call('XADD', KEYS[3], 'MAXLEN', size, '*', 'o', top, 'm', body) "
                     "redis.call('PEXPIRE', KEYS[3], ttl * 1000) "
                     "redis.call('PUBLISH', KEYS[4], ARGV[2] .. body) return top";
/* Read a stream: KEYS history, stream; ARGV a fresh epoch, the since epoch
 * ('' none) and offset, the default size and ttl, a limit (-1 all) and
 * whether messages are wanted without a since.  Returns {0} (history off)
 * or {1, epoch, top, recovered (1, 0; -1 no since), message...}. */
static const char STREAM_LUA[] = STREAM_START_LUA
    "local size = tonumber(redis.call('HGET', KEYS[1], 'size') or ARGV[4]) "
    "if size <= 0 then return {0} end "
    "start(KEYS[1], KEYS[2], ARGV[1], tonumber(redis.call('HGET', KEYS[1], 'ttl') or ARGV[5])) "
    "local epoch = redis.call('HGET', KEYS[1], 'epoch') "
    "local top = tonumber(redis.call('HGET', KEYS[1], 'top')) "
    "local out = {1, epoch, top, -1} "
    "if ARGV[2] ~= '' then "
    "local since = tonumber(ARGV[3]) "
    "if ARGV[2] ~= epoch or since > top then out[4] = 0 return out end "
    "local first = nil "
    "for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do "
    "local o = tonumber(e[2][2]) if o > since then first = first or o "
    "table.insert(out, e[2][4]) end end "
    "if since < top and first ~= since + 1 then return {1, epoch, top, 0} end "
    "out[4] = 1 return out end "
    "if ARGV[7] == '1' then local n = tonumber(ARGV[6]) "
    "local got = n < 0 and redis.call('XREVRANGE', KEYS[2], '+', '-') "
    "or redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n) "
    "if n == 0 then got = {} end "
    "for i = #got, 1, -1 do table.insert(out, got[i][2][4]) end end return out";

/* The SHA-1 of the scripts the worker links run with EVALSHA (each link
 * loads them when it comes up, before anything else it sends). */
static char say_sha[SHA_DIGEST_LENGTH * 2 + 1], stream_sha[SHA_DIGEST_LENGTH * 2 + 1];

static void script_sha(const char *script, char *hex)
{
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, strlen(script), d);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* A say in flight on a worker's link: whom to tell the offset. */
struct say_op {
    store_cb cb;
    void *ctx;
};

/* SAY_LUA's answer: the offset, -1 no such room. */
static void say_result(const redisReply *r, struct store_result *res)
{
    if (!r || r->type != REDIS_REPLY_INTEGER)
        res->err = ERR_STORE_UNAVAILABLE;
    else if (r->integer < 0)
        res->err = ERR_ROOM_NOT_FOUND;
    else
        res->offset = (uint64_t)r->integer;
}

static void on_said(redisAsyncContext *ac, void *reply, void *priv)
{
    redis_link_done(ac);
    struct store_result res = {0};
    if (reply && ((redisReply *)reply)->type == REDIS_REPLY_ERROR)
        log_warn("redis: say: %s", ((redisReply *)reply)->str);
    say_result(reply, &res);
    struct say_op *op = priv;
    if (op->cb)
        op->cb(&res, op->ctx);
    free(op);
}

/* A say or a server broadcast (KEEP) goes through SAY_LUA and reaches this
 * server's clients, like every other server's, from the bus; what is not
 * kept (announcements) is delivered here at once and published as chat. */
void redis_publish(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                   uint64_t skip_serial, const char *skip_id, bool keep, store_cb cb, void *ctx)
{
    struct store_result r = {0};
    struct redis_shard *sh = redis_room_shard(room);
    if (!keep) {
        fanout_publish(from, room, uid, m, skip_serial, false);
        redis_bus_publish(sh, from, "chat", room, skip_id, m->data, m->len);
        if (cb)
            cb(&r, ctx);
        return;
    }
    size_t hlen;
    char *head = redis_bus_message("say", room, skip_id, "", 0, &hlen);
    char history[1024], stream[1024], channel[1024], size[24], ttl[24];
    char epoch[HISTORY_EPOCH_LEN + 1];
    snprintf(size, sizeof(size), "%ld", settings.history_size);
    snprintf(ttl, sizeof(ttl), "%ld", settings.history_ttl);
    history_epoch_new(epoch);
    const char *argv[] = {from ? "EVALSHA" : "EVAL",
                          from ? say_sha : SAY_LUA,
                          "4",
                          redis_keys.rooms,
                          redis_room_key(history, sizeof(history), room, "history"),
                          redis_room_key(stream, sizeof(stream), room, "stream"),
                          redis_subs_channel(channel, sizeof(channel), room),
                          room,
                          head ? head : "",
                          m->data,
                          size,
                          ttl,
                          epoch};
    size_t lens[13];
    for (int i = 0; i < 13; i++) /* the head and the message are not C strings */
        lens[i] = i == 8 ? (head ? hlen : 0) : i == 9 ? m->len : strlen(argv[i]);
    if (from) {
        struct say_op *op = head ? malloc(sizeof(*op)) : NULL;
        if (op)
            *op = (struct say_op){cb, ctx};
        if (!op || !redis_link_argv(redis_worker_link(from, sh), on_said, op, 13, argv, lens)) {
            free(op);
            r.err = ERR_STORE_UNAVAILABLE;
            if (cb)
                cb(&r, ctx);
        }
    } else {
        pthread_mutex_lock(&sh->sync_lock);
        redisReply *reply = head ? redis_sync_argv(sh, 13, argv, lens) : NULL;
        pthread_mutex_unlock(&sh->sync_lock);
        say_result(reply, &r);
        freeReplyObject(reply);
        if (cb)
            cb(&r, ctx);
    }
    free(head);
}

/* STREAM_LUA's answer as a history_read (R->since set by the caller). */
static void stream_result(const redisReply *r, struct history_read *out)
{
    if (r->elements < 4 || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[1]->len != HISTORY_EPOCH_LEN)
        return;
    out->has_position = true;
    memcpy(out->position.epoch, r->element[1]->str, HISTORY_EPOCH_LEN + 1);
    out->position.offset =
        r->element[2]->type == REDIS_REPLY_INTEGER ? (uint64_t)r->element[2]->integer : 0;
    out->recovered = r->element[3]->type == REDIS_REPLY_INTEGER && r->element[3]->integer == 1;
    size_t n = r->elements - 4;
    if (n == 0 || !(out->replay = calloc(n, sizeof(*out->replay))))
        return;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[4 + i];
        struct msg *m = e->type == REDIS_REPLY_STRING ? msg_new_text(e->str, e->len) : NULL;
        if (!m)
            continue;
        m->offset = history_offset_of(m->data, m->len);
        out->replay[out->nreplay++] = m;
    }
}

/* The arguments of STREAM_LUA for ROOM into ARGV (13 of them, BUF holds
 * their text); LENS from them. */
struct stream_args {
    char history[1024], stream[1024], offset[24], size[24], ttl[24], limit[24];
    char epoch[HISTORY_EPOCH_LEN + 1];
    const char *argv[12];
    size_t lens[12];
};

static void stream_args(struct stream_args *a, bool sha, const char *room,
                        const struct history_position *since, long limit, bool messages)
{
    history_epoch_new(a->epoch);
    snprintf(a->offset, sizeof(a->offset), "%llu",
             since ? (unsigned long long)since->offset : 0ULL);
    snprintf(a->size, sizeof(a->size), "%ld", settings.history_size);
    snprintf(a->ttl, sizeof(a->ttl), "%ld", settings.history_ttl);
    snprintf(a->limit, sizeof(a->limit), "%ld", limit);
    const char *argv[] = {sha ? "EVALSHA" : "EVAL",
                          sha ? stream_sha : STREAM_LUA,
                          "2",
                          redis_room_key(a->history, sizeof(a->history), room, "history"),
                          redis_room_key(a->stream, sizeof(a->stream), room, "stream"),
                          a->epoch,
                          since ? (since->epoch[0] ? since->epoch : "-") : "",
                          a->offset,
                          a->size,
                          a->ttl,
                          a->limit,
                          messages ? "1" : "0"};
    for (int i = 0; i < 12; i++) {
        a->argv[i] = argv[i];
        a->lens[i] = strlen(argv[i]);
    }
}

struct stream_op {
    store_cb cb;
    void *ctx;
    struct history_position since;
    bool has_since;
    char *room;
    struct stream_args args;
};

static void stream_op_free(struct stream_op *op)
{
    free(op->room);
    free(op);
}

static void on_stream_read(redisAsyncContext *ac, void *reply, void *priv)
{
    redis_link_done(ac);
    struct stream_op *op = priv;
    redisReply *r = reply;
    struct history_read read = {.since = op->has_since ? &op->since : NULL};
    struct store_result res = {.read = &read};
    if (!r || r->type != REDIS_REPLY_ARRAY)
        res.err = ERR_STORE_UNAVAILABLE;
    else
        stream_result(r, &read);
    op->cb(&res, op->ctx);
    history_read_free(&read);
    stream_op_free(op);
}

/* Send OP's read on W's link to the room's shard (at once, or once the
 * room's subscription is confirmed). */
static void stream_send(struct worker *w, void *arg)
{
    struct stream_op *op = arg;
    if (redis_link_argv(redis_worker_link(w, redis_room_shard(op->room)), on_stream_read, op, 12,
                        op->args.argv, op->args.lens))
        return;
    struct history_read read = {.since = op->has_since ? &op->since : NULL};
    struct store_result res = {.err = ERR_STORE_UNAVAILABLE, .read = &read};
    op->cb(&res, op->ctx);
    stream_op_free(op);
}

/* A join's or a listen's read of the room's position (and replay) waits
 * for this server's subscription to the room's channel: read before it,
 * a message published in between would reach the joiner neither from the
 * stream nor from the bus.  After it, the bus brings everything, and the
 * held slot drops what the read already gave (worker_release). */
void redis_stream_read(struct worker *w, const char *room, const struct history_position *since,
                       long limit, bool messages, store_cb cb, void *ctx)
{
    struct stream_op *op = calloc(1, sizeof(*op));
    if (!op || !(op->room = strdup(room))) {
        free(op);
        struct history_read read = {.since = since};
        struct store_result res = {.err = ERR_STORE_UNAVAILABLE, .read = &read};
        cb(&res, ctx);
        return;
    }
    op->cb = cb;
    op->ctx = ctx;
    if ((op->has_since = since != NULL))
        op->since = *since;
    stream_args(&op->args, true, room, op->has_since ? &op->since : NULL, limit, messages);
    if (!redis_subs_when_active(room, w, stream_send, op))
        stream_send(w, op);
}

/* Admin GET / PUT .../history: the settings live in the room's history
 * hash, shared by every server. */
json_object *redis_room_history(const char *room, long size, long ttl)
{
    if (!redis_room_exists(room))
        return NULL;
    struct redis_shard *sh = redis_room_shard(room);
    char history[1024], stream[1024], sz[24], tl[24];
    redis_room_key(history, sizeof(history), room, "history");
    redis_room_key(stream, sizeof(stream), room, "stream");
    snprintf(sz, sizeof(sz), "%ld", size);
    snprintf(tl, sizeof(tl), "%ld", ttl);
    if (size >= 0) {
        const char *hset[] = {"HSET", history, "size", sz};
        freeReplyObject(redis_sync_cmd(sh, 4, hset));
        const char *trim[] = {"XTRIM", stream, "MAXLEN", sz};
        freeReplyObject(redis_sync_cmd(sh, 4, trim));
    }
    if (ttl >= 0) {
        const char *hset[] = {"HSET", history, "ttl", tl};
        freeReplyObject(redis_sync_cmd(sh, 4, hset));
    }
    const char *hmget[] = {"HMGET", history, "size", "ttl"};
    redisReply *r = redis_sync_cmd(sh, 4, hmget);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        freeReplyObject(r);
        return NULL;
    }
    long got[2] = {settings.history_size, settings.history_ttl};
    for (int i = 0; i < 2; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            got[i] = atol(r->element[i]->str);
    freeReplyObject(r);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "size", json_object_new_int64(got[0]));
    json_object_object_add(o, "ttl", json_object_new_int64(got[1]));
    return o;
}

/* Admin GET .../messages: the last LIMIT kept, through the blocking link. */
json_object *redis_room_messages(const char *room, long limit)
{
    if (!redis_room_exists(room))
        return NULL;
    struct stream_args a;
    stream_args(&a, false, room, NULL, limit, true);
    struct redis_shard *sh = redis_room_shard(room);
    pthread_mutex_lock(&sh->sync_lock);
    redisReply *r = redis_sync_argv(sh, 12, a.argv, a.lens);
    pthread_mutex_unlock(&sh->sync_lock);
    struct history_read read = {0};
    if (r && r->type == REDIS_REPLY_ARRAY)
        stream_result(r, &read);
    freeReplyObject(r);
    json_object *o = history_read_json(room, &read);
    history_read_free(&read);
    return o;
}

void redis_history_open(void)
{
    script_sha(SAY_LUA, say_sha);
    script_sha(STREAM_LUA, stream_sha);
}

/* First on a link that comes up: EVALSHA may follow at once. */
void redis_history_up(struct redis_link *link)
{
    const char *load_say[] = {"SCRIPT", "LOAD", SAY_LUA};
    const char *load_stream[] = {"SCRIPT", "LOAD", STREAM_LUA};
    size_t ll[] = {6, 4, strlen(SAY_LUA)}, sl[] = {6, 4, strlen(STREAM_LUA)};
    redis_link_argv(link, NULL, NULL, 3, load_say, ll);
    redis_link_argv(link, NULL, NULL, 3, load_stream, sl);
}
