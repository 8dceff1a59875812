/* store_redis.c -- the Redis store: rooms, patterns and members shared by
 * every roomd server on one Redis or several (shards), and the bus that
 * carries their chat.
 *
 * Shards (roomd-redis(7) "SHARDS"): each room lives on the Redis that
 * redis/shard.c names; its keys below, its stream and its bus messages are
 * there.  Each shard is laid out like a single Redis for its own rooms, so
 * heartbeats, member sets, the reaper, the mirror and re-seeding work per
 * shard.  A room's chat goes out on its own channel, which a server
 * subscribes to only while it has local recipients of the room
 * (redis/subs.c); every server subscribes to every shard's control
 * channel (P bus: room add, delete, pattern; routed connection calls, on
 * shard 0's).  The links (blocking and async, login,
 * back-off) are redis/link.c; URLs and passwords redis/url.c.
 *
 * Key layout (P = redis_prefix, "roomd:" by default; see roomd-redis(7)):
 *   P rooms                    SET   every room name
 *   P room:R:pattern           HASH  key -> the value's JSON text
 *   P room:R:members           HASH  connection id -> {"id","joinedAt","server"}
 *   P server:S:members         SET   "ID\nROOM" for each member server S owns
 *   P servers                  ZSET  server id -> last heartbeat (ms)
 *   P room:R:history           HASH  epoch, top (last offset), size, ttl (server side's), broken
 *   P room:R:stream            STREAM the kept messages: o (offset), m (the numbered chat)
 *   P bus                      channel (control): "SERVER\nTYPE\nROOM\nSKIP-ID\nPAYLOAD"
 *   P room:R:bus               channel: R's chat, the same message format
 *
 * Connections and threads.  Each worker has its own async hiredis context
 * on its own event base for its clients' operations; the main thread has
 * the bus subscriber (async, on the main base) and one blocking context,
 * under a mutex, for the server side (add, delete, patterns, status), the
 * heartbeat and the reaper.  No context is ever used by two threads.
 *
 * The local registry stays the index for fan-out and mirrors the rooms and
 * patterns of Redis: start-up loads them, bus events keep them current, a
 * reconnect re-reads them.  Redis is the truth for what servers share.
 *
 * History (PROTOCOL.md "History and recovery") lives in Redis too: a say
 * or a server broadcast is numbered, kept and published by one script
 * (SAY_LUA), so every server agrees on offsets and epochs, and every
 * server -- the one it was said on included -- delivers it from the bus, in
 * the order Redis numbered it.  A joiner's slot is held from before its
 * position is read (STREAM_LUA) until it arrives (worker_release), so what
 * the bus brings meanwhile is neither lost nor sent twice.
 *
 * While Redis is away, what needs it answers "store unavailable" (say
 * included: an acknowledged say reached every server); links reconnect with
 * back-off, re-register their members and re-subscribe. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "api.h"
#include "config.h"
#include "conn.h"
#include "history.h"
#include "log.h"
#include "msg.h"
#include "redis/link.h"
#include "redis/shard.h"
#include "redis/subs.h"
#include "redis/url.h"
#include "registry.h"
#include "store.h"
#include "worker.h"

/* Heartbeats per server_timeout. */
#define REDIS_HEARTBEATS_PER_TIMEOUT 5

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
/* Put rooms back into an empty Redis, all or none: ARGV is the key prefix
 * then, per room, its name, its pattern's pair count and the pairs. */
static const char RESEED_LUA[] =
    "if redis.call('SCARD', KEYS[1]) > 0 then return 0 end "
    "local i = 2 while i <= #ARGV do local room = ARGV[i] local n = tonumber(ARGV[i+1]) "
    "redis.call('SADD', KEYS[1], room) "
    "for j = 0, n - 1 do redis.call('HSET', ARGV[1] .. 'room:' .. room .. ':pattern', "
    "ARGV[i+2+2*j], ARGV[i+3+2*j]) end i = i + 2 + 2 * n end return 1";
static const char ROOM_ADD_LUA[] = "if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end "
                                   "redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6]) "
                                   "redis.call('PUBLISH', KEYS[4], ARGV[2]) return 1";
static const char ROOM_DEL_LUA[] = "if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end "
                                   "redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6]) "
                                   "redis.call('PUBLISH', KEYS[4], ARGV[2]) return 1";
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
static const char PATTERN_LUA[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end "
    "redis.call('DEL', KEYS[2]) "
    "for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1]) end "
    "redis.call('PUBLISH', KEYS[3], ARGV[2]) return 1";
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

/* ---------------------------------------------------------- settings */

static struct redis_shard shards[REDIS_MAX_URLS]; /* the first nshards */
static int nshards;

/* The shard that holds ROOM (redis/shard.h). */
static struct redis_shard *room_shard(const char *room)
{
    return &shards[redis_shard_of(room, nshards)];
}
static char server_id[300];
static char key_rooms[512], key_servers[512], key_bus[512], key_self_members[1024];

/* P room:R:SUFFIX into BUF. */
static const char *room_key(char *buf, size_t len, const char *room, const char *suffix)
{
    snprintf(buf, len, "%sroom:%s:%s", settings.redis_prefix, room, suffix);
    return buf;
}

/* A bus message: "SERVER\nTYPE\nROOM\nSKIP\nPAYLOAD"; malloc'd. */
static char *bus_message(const char *type, const char *room, const char *skip, const char *payload,
                         size_t plen, size_t *len)
{
    size_t n =
        strlen(server_id) + strlen(type) + strlen(room) + strlen(skip ? skip : "") + plen + 5;
    char *b = malloc(n);
    if (!b)
        return NULL;
    int head = snprintf(b, n, "%s\n%s\n%s\n%s\n", server_id, type, room, skip ? skip : "");
    memcpy(b + head, payload, plen);
    *len = (size_t)head + plen;
    return b;
}

/* ------------------------------------------------------ worker links */

/* Worker W's link to shard SH (NULL off-worker or before it started). */
static struct redis_link *worker_link(const struct worker *w, const struct redis_shard *sh)
{
    return w && w->store_state ? ((struct redis_link **)w->store_state)[sh->index] : NULL;
}

/* ------------------------------------------------------------ mirror */

/* Make the local registry's copy of ROOM match Redis: PAIRS is the
 * HGETALL of its pattern (name, JSON text, ...). */
static void mirror_room(const char *room, const redisReply *pairs)
{
    registry_add(room);
    json_object *pattern = json_object_new_object();
    for (size_t i = 0; pairs && i + 1 < pairs->elements; i += 2)
        json_object_object_add(pattern, pairs->element[i]->str,
                               json_tokener_parse(pairs->element[i + 1]->str));
    registry_set_pattern(room, pattern);
    json_object_put(pattern);
}

/* Write the rooms of LOCAL (names) and their patterns back into an empty
 * Redis in one script, so a server reading meanwhile sees all or none.
 * Returns whether this server did it (0: another one was first). */
static bool reseed_rooms(struct redis_shard *sh, json_object *local)
{
    size_t nrooms = json_object_array_length(local), argc = 4, cap = 5 + 2 * nrooms;
    json_object **patterns = calloc(nrooms + 1, sizeof(*patterns));
    for (size_t i = 0; patterns && i < nrooms; i++) {
        patterns[i] = registry_pattern(json_object_get_string(json_object_array_get_idx(local, i)));
        cap += 2 * (size_t)(patterns[i] ? json_object_object_length(patterns[i]) : 0);
    }
    const char **argv = calloc(cap, sizeof(*argv));
    char **owned = calloc(cap, sizeof(*owned)); /* counts and value texts */
    int did = -1;
    if (!patterns || !argv || !owned)
        goto out;
    argv[0] = "EVAL";
    argv[1] = RESEED_LUA;
    argv[2] = "1";
    argv[3] = key_rooms;
    argv[argc++] = settings.redis_prefix;
    for (size_t i = 0; i < nrooms; i++) {
        argv[argc++] = json_object_get_string(json_object_array_get_idx(local, i));
        int n = patterns[i] ? json_object_object_length(patterns[i]) : 0;
        char count[16];
        snprintf(count, sizeof(count), "%d", n);
        argv[argc] = owned[argc] = strdup(count);
        argc++;
        if (!n)
            continue;
        json_object_object_foreach(patterns[i], key, value)
        {
            argv[argc++] = key;
            argv[argc] = owned[argc] =
                strdup(value ? json_object_to_json_string_ext(value, ROOMD_JSON_FLAGS) : "null");
            argc++;
        }
    }
    redisReply *r = redis_sync_cmd(sh, (int)argc, argv);
    did = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    freeReplyObject(r);
out:
    for (size_t i = 0; owned && i < argc; i++)
        free(owned[i]);
    for (size_t i = 0; patterns && i < nrooms; i++)
        json_object_put(patterns[i]);
    free(owned);
    free(argv);
    free(patterns);
    return did == 1;
}

/* The rooms this server knows that live on shard SH (a JSON array). */
static json_object *shard_local_rooms(const struct redis_shard *sh)
{
    json_object *all = registry_list(), *mine = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *name = json_object_array_get_idx(all, i);
        if (room_shard(json_object_get_string(name)) == sh)
            json_object_array_add(mine, json_object_get(name));
    }
    json_object_put(all);
    return mine;
}

/* Re-read every room and pattern of shard SH: its rooms Redis lacks are
 * deleted locally. */
static void mirror_sync(struct redis_shard *sh)
{
    const char *argv[] = {"SMEMBERS", key_rooms};
    redisReply *rooms = redis_sync_cmd(sh, 2, argv);
    if (!rooms || rooms->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rooms);
        return;
    }
    json_object *local = shard_local_rooms(sh);
    if (rooms->elements == 0 && json_object_array_length(local) > 0) {
        /* Redis came back empty (restarted without persistence): what the
         * servers remember is the best truth left, so put it back. */
        if (reseed_rooms(sh, local)) {
            log_warn("redis: no rooms in %s; restored the %zu rooms known here", sh->ep.shown,
                     json_object_array_length(local));
            json_object_put(local);
            freeReplyObject(rooms);
            return;
        }
        /* Another server was first: read what it restored. */
        json_object_put(local);
        freeReplyObject(rooms);
        mirror_sync(sh);
        return;
    }
    for (size_t i = 0; i < json_object_array_length(local); i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(local, i));
        bool found = false;
        for (size_t j = 0; j < rooms->elements && !found; j++)
            found = strcmp(rooms->element[j]->str, name) == 0;
        if (!found)
            store_local_room_deleted(name);
    }
    json_object_put(local);
    for (size_t j = 0; j < rooms->elements; j++) {
        char key[1024];
        const char *hv[] = {"HGETALL",
                            room_key(key, sizeof(key), rooms->element[j]->str, "pattern")};
        redisReply *pairs = redis_sync_cmd(sh, 2, hv);
        mirror_room(rooms->element[j]->str, pairs);
        freeReplyObject(pairs);
    }
    freeReplyObject(rooms);
}

/* -------------------------------------------------- publishing to all */

/* Publish a bus message on shard SH from worker W (its link) or,
 * off-worker, through the blocking link: chat on its room's channel (only
 * servers with recipients of the room hear it), the rest on the control
 * channel. */
static void bus_publish(struct redis_shard *sh, struct worker *w, const char *type,
                        const char *room, const char *skip, const char *payload, size_t plen)
{
    size_t len;
    char *b = bus_message(type, room, skip, payload, plen, &len);
    if (!b)
        return;
    char channel[1024];
    const char *ch = *room && !strcmp(type, "chat")
                         ? redis_subs_channel(channel, sizeof(channel), room)
                         : key_bus;
    const char *argv[] = {"PUBLISH", ch, b};
    size_t lens[] = {7, strlen(ch), len};
    if (w) {
        if (!redis_link_argv(worker_link(w, sh), NULL, NULL, 3, argv, lens))
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

struct redis_op;
static struct redis_op *op_new(struct worker *w, const char *room, const char *id, store_cb cb,
                               void *ctx);
static void op_finish(struct redis_op *op, struct store_result *res);
static void op_fail(struct redis_op *op, enum roomd_err err);

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
    op_finish(priv, &res);
}

/* A say or a server broadcast (KEEP) goes through SAY_LUA and reaches this
 * server's clients, like every other server's, from the bus; what is not
 * kept (announcements) is delivered here at once and published as chat. */
static void redis_publish(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                          uint64_t skip_serial, const char *skip_id, bool keep, store_cb cb,
                          void *ctx)
{
    struct store_result r = {0};
    struct redis_shard *sh = room_shard(room);
    if (!keep) {
        worker_fanout(from, room, uid, m, skip_serial, false);
        bus_publish(sh, from, "chat", room, skip_id, m->data, m->len);
        if (cb)
            cb(&r, ctx);
        return;
    }
    size_t hlen;
    char *head = bus_message("say", room, skip_id, "", 0, &hlen);
    char history[1024], stream[1024], channel[1024], size[24], ttl[24];
    char epoch[HISTORY_EPOCH_LEN + 1];
    snprintf(size, sizeof(size), "%ld", settings.history_size);
    snprintf(ttl, sizeof(ttl), "%ld", settings.history_ttl);
    history_epoch_new(epoch);
    const char *argv[] = {from ? "EVALSHA" : "EVAL",
                          from ? say_sha : SAY_LUA,
                          "4",
                          key_rooms,
                          room_key(history, sizeof(history), room, "history"),
                          room_key(stream, sizeof(stream), room, "stream"),
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
        struct redis_op *op = head ? op_new(from, room, NULL, cb, ctx) : NULL;
        if (!op) {
            r.err = ERR_STORE_UNAVAILABLE;
            if (cb)
                cb(&r, ctx);
        } else if (!redis_link_argv(worker_link(from, sh), on_said, op, 13, argv, lens))
            op_fail(op, ERR_STORE_UNAVAILABLE);
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
                          room_key(a->history, sizeof(a->history), room, "history"),
                          room_key(a->stream, sizeof(a->stream), room, "stream"),
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
    if (redis_link_argv(worker_link(w, room_shard(op->room)), on_stream_read, op, 12, op->args.argv,
                        op->args.lens))
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
static void redis_stream_read(struct worker *w, const char *room,
                              const struct history_position *since, long limit, bool messages,
                              store_cb cb, void *ctx)
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

static bool redis_room_exists(const char *room);

/* Admin GET / PUT .../history: the settings live in the room's history
 * hash, shared by every server. */
static json_object *redis_room_history(const char *room, long size, long ttl)
{
    if (!redis_room_exists(room))
        return NULL;
    struct redis_shard *sh = room_shard(room);
    char history[1024], stream[1024], sz[24], tl[24];
    room_key(history, sizeof(history), room, "history");
    room_key(stream, sizeof(stream), room, "stream");
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
static json_object *redis_room_messages(const char *room, long limit)
{
    if (!redis_room_exists(room))
        return NULL;
    struct stream_args a;
    stream_args(&a, false, room, NULL, limit, true);
    struct redis_shard *sh = room_shard(room);
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
        worker_fanout(NULL, room, uid, m, 0, false); /* none before start, after stop */
    bus_publish(room_shard(room), NULL, "chat", room, id, m->data, m->len);
    msg_unref(m);
}

/* ------------------------------------------- calls to other servers */

/* How long a call routed to another server waits for its answer. */
#define ROUTE_TIMEOUT_MS 3000

/* A call this server sent over the bus, waiting for the owner's answer.
 * The table is shared by API callers (any thread) and the bus (main). */
struct routed_call {
    UT_hash_handle hh;
    uint64_t req;
    roomd_result_cb cb;
    void *ud;
};

static pthread_mutex_t route_lock = PTHREAD_MUTEX_INITIALIZER;
static struct routed_call *routed_calls;
static uint64_t next_route_req = 1;

static struct routed_call *route_take(uint64_t req)
{
    struct routed_call *rc;
    pthread_mutex_lock(&route_lock);
    HASH_FIND(hh, routed_calls, &req, sizeof(req), rc);
    if (rc)
        HASH_DEL(routed_calls, rc);
    pthread_mutex_unlock(&route_lock);
    return rc;
}

static void on_route_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct routed_call *rc = route_take((uint64_t)(uintptr_t)arg);
    if (rc) { /* no server has that connection (or its owner is gone) */
        rc->cb(err_text(ERR_CONN_NOT_FOUND), NULL, rc->ud);
        free(rc);
    }
}

/* Ask every server; the one that owns CONN_ID answers ("connres"). */
static bool redis_route_conn_call(const char *conn_id, int op, const char *arg_json,
                                  const char *room, bool force, roomd_result_cb cb, void *ud)
{
    struct routed_call *rc = calloc(1, sizeof(*rc));
    if (!rc)
        return false;
    rc->cb = cb;
    rc->ud = ud;
    pthread_mutex_lock(&route_lock);
    rc->req = next_route_req++;
    HASH_ADD(hh, routed_calls, req, sizeof(rc->req), rc);
    pthread_mutex_unlock(&route_lock);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "req", json_object_new_uint64(rc->req));
    json_object_object_add(o, "id", json_object_new_string(conn_id));
    json_object_object_add(o, "op", json_object_new_int(op));
    if (arg_json)
        json_object_object_add(o, "arg", json_object_new_string(arg_json));
    if (room)
        json_object_object_add(o, "room", json_object_new_string(room));
    json_object_object_add(o, "force", json_object_new_boolean(force));
    const char *text = json_object_to_json_string_ext(o, ROOMD_JSON_FLAGS);
    bus_publish(&shards[0], NULL, "connop", "", NULL, text, strlen(text));
    json_object_put(o);
    struct timeval tv = {ROUTE_TIMEOUT_MS / 1000, (ROUTE_TIMEOUT_MS % 1000) * 1000};
    event_base_once(main_base, -1, EV_TIMEOUT, on_route_timeout, (void *)(uintptr_t)rc->req, &tv);
    return true;
}

/* Where the answer of a routed call goes: the asking server, request. */
struct route_reply {
    char *origin;
    uint64_t req;
};

/* Our worker answered a call routed here: send it back to the asker. */
static void route_answer(const char *error, const char *result, void *ud)
{
    struct route_reply *rr = ud;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "req", json_object_new_uint64(rr->req));
    if (error)
        json_object_object_add(o, "error", json_object_new_string(error));
    else
        json_object_object_add(o, "result", json_object_new_string(result));
    const char *text = json_object_to_json_string_ext(o, ROOMD_JSON_FLAGS);
    bus_publish(&shards[0], NULL, "connres", rr->origin, NULL, text, strlen(text));
    json_object_put(o);
    free(rr->origin);
    free(rr);
}

/* A "connop" from server ORIGIN: run it if the connection is ours. */
static void route_run(const char *origin, json_object *o)
{
    json_object *id, *op, *req, *arg = NULL, *room = NULL, *force = NULL;
    if (!json_object_object_get_ex(o, "id", &id) || !json_object_object_get_ex(o, "op", &op) ||
        !json_object_object_get_ex(o, "req", &req))
        return;
    int worker;
    uint64_t serial;
    if (!conn_lookup(json_object_get_string(id), &worker, &serial))
        return; /* not ours */
    json_object_object_get_ex(o, "arg", &arg);
    json_object_object_get_ex(o, "room", &room);
    json_object_object_get_ex(o, "force", &force);
    struct route_reply *rr = calloc(1, sizeof(*rr));
    if (!rr || !(rr->origin = strdup(origin))) {
        free(rr);
        return;
    }
    rr->req = json_object_get_uint64(req);
    api_conn_call_text(json_object_get_string(id), json_object_get_int(op),
                       arg ? json_object_get_string(arg) : NULL,
                       room ? json_object_get_string(room) : NULL,
                       force && json_object_get_boolean(force), route_answer, rr);
}

/* A "connres" for us: the answer of a call we routed. */
static void route_done(json_object *o)
{
    json_object *req, *v;
    if (!json_object_object_get_ex(o, "req", &req))
        return;
    struct routed_call *rc = route_take(json_object_get_uint64(req));
    if (!rc)
        return; /* timed out already */
    if (json_object_object_get_ex(o, "error", &v))
        rc->cb(json_object_get_string(v), NULL, rc->ud);
    else
        rc->cb(NULL, json_object_object_get_ex(o, "result", &v) ? json_object_get_string(v) : "{}",
               rc->ud);
    free(rc);
}

/* ---------------------------------------------------- the subscriber */

/* Read by the admin thread's metrics. */
static _Atomic uint64_t bus_received;
static struct event *heartbeat_ev;

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
    if (!say && flen[0] == strlen(server_id) && memcmp(f[0], server_id, flen[0]) == 0)
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
                worker_fanout(NULL, room, uid, m, skip, false);
                msg_unref(m);
            }
        }
    } else if (!strcmp(type, "created")) {
        registry_add(room);
    } else if (!strcmp(type, "deleted")) {
        store_local_room_deleted(room);
    } else if (!strcmp(type, "connop") || !strcmp(type, "connres")) {
        char *origin = strndup(f[0], flen[0]);
        json_object *o = json_tokener_parse(f[4]);
        if (origin && o && !strcmp(type, "connop"))
            route_run(origin, o);
        else if (o && !strcmp(room, server_id)) /* ROOM holds the asker */
            route_done(o);
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
    mirror_sync(sh);
    sh->subscribed = true;
    for (int i = 0; i < nshards; i++)
        if (!shards[i].subscribed)
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

static void redis_bus_stats(struct store_bus_stats *out)
{
    out->shards = nshards;
    out->received = atomic_load_explicit(&bus_received, memory_order_relaxed);
    for (int i = 0; i < nshards; i++) {
        struct redis_link *link = shards[i].bus_link;
        if (link && link->up) {
            out->up |= (uint64_t)1 << i;
            out->subscriptions += shards[i].subscriptions;
        }
    }
}

/* The subscriber link is (back) up: the control channel, then every room
 * in use on this shard in one SUBSCRIBE. */
static void on_bus_up(struct redis_link *link)
{
    redisAsyncCommand(link->ac, on_bus_message, link->shard, "SUBSCRIBE %s", key_bus);
    redis_subs_resubscribe(link->shard);
}

/* A worker's first local recipient of ROOM came (DELTA +1) or its last
 * went (-1). */
static void redis_room_heard(const char *room, int delta)
{
    redis_subs_ref(room, delta);
}

/* roomd is ready once the bus subscription works: a room created on another
 * server right after "roomd ready" is then known here. */
static void redis_when_ready(void (*fn)(void))
{
    when_subscribed = fn;
}

/* ------------------------------------------------ heartbeat and reaper */

/* Take server S's members out of every room of shard SH and announce their
 * leaving (each shard keeps the heartbeats and member sets of its rooms). */
static void reap_server(struct redis_shard *sh, const char *s, int64_t deadline)
{
    char members[1024], dl[32];
    snprintf(members, sizeof(members), "%sserver:%s:members", settings.redis_prefix, s);
    snprintf(dl, sizeof(dl), "%lld", (long long)deadline);
    const char *argv[] = {"EVAL", REAP_LUA, "2", key_servers, members, s, settings.redis_prefix,
                          dl};
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
    const char *zadd[] = {"ZADD", key_servers, now, server_id};
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
    const char *range[] = {"ZRANGEBYSCORE", key_servers, "-inf", deadline};
    r = redis_sync_cmd(sh, 4, range);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (strcmp(r->element[i]->str, server_id) != 0)
            reap_server(sh, r->element[i]->str, t - timeout);
    freeReplyObject(r);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    for (int i = 0; i < nshards; i++)
        shard_heartbeat(&shards[i]);
}

/* ------------------------------------------------- worker operations */

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
    json_object_object_add(o, "server", json_object_new_string(server_id));
    char *s = strdup(json_object_to_json_string_ext(o, ROOMD_JSON_FLAGS));
    json_object_put(o);
    return s;
}

/* Write membership of connection ID in ROOM to Redis on W's link. */
static bool send_member_add(struct worker *w, const char *room, const char *id, int64_t joined_at,
                            redisCallbackFn *fn, void *priv)
{
    char members[1024], entry[1024];
    room_key(members, sizeof(members), room, "members");
    snprintf(entry, sizeof(entry), "%s\n%s", id, room);
    char *value = member_json(id, joined_at);
    const char *argv[] = {"EVAL",           JOIN_ADD_LUA, "3", key_rooms, members,
                          key_self_members, room,         id,  value,     entry};
    size_t lens[10];
    for (int i = 0; i < 10; i++)
        lens[i] = strlen(argv[i]);
    bool ok = value && redis_link_argv(worker_link(w, room_shard(room)), fn, priv, 10, argv, lens);
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
    mirror_room(op->room, r);
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
        struct store_result res = {.err = ERR_STORE_UNAVAILABLE};
        cb(&res, ctx);
        return;
    }
    op->attrs = attrs;
    op->listen = listen;
    char pattern[1024];
    const char *argv[] = {
        "EVAL", JOIN_CHECK_LUA, "2", key_rooms, room_key(pattern, sizeof(pattern), room, "pattern"),
        room};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (!redis_link_argv(worker_link(w, room_shard(room)), on_join_checked, op, 6, argv, lens))
        op_fail(op, ERR_STORE_UNAVAILABLE);
}

static void redis_join(struct worker *w, const char *room, const char *id, json_object *attrs,
                       store_cb cb, void *ctx)
{
    join_or_listen(w, room, id, attrs, false, cb, ctx);
}

static void redis_check_listen(struct worker *w, const char *room, json_object *attrs, store_cb cb,
                               void *ctx)
{
    join_or_listen(w, room, NULL, attrs, true, cb, ctx);
}

/* Leaving answers at once from the mirror; Redis follows (a lost HDEL is
 * repaired by the reaper or the next re-registration). */
static void redis_leave(struct worker *w, const char *room, uint64_t uid, const char *id,
                        store_cb cb, void *ctx)
{
    struct store_result res = {0};
    res.flag = registry_leave(room, uid, id);
    char members[1024], entry[1024];
    room_key(members, sizeof(members), room, "members");
    snprintf(entry, sizeof(entry), "%s\n%s", id, room);
    const char *hdel[] = {"HDEL", members, id};
    const char *srem[] = {"SREM", key_self_members, entry};
    size_t hl[] = {4, strlen(members), strlen(id)},
           sl[] = {4, strlen(key_self_members), strlen(entry)};
    struct redis_shard *sh = room_shard(room);
    struct redis_link *link = worker_link(w, sh);
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
static json_object *status_json(const char *room, const redisReply *r, long limit)
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
    struct store_result res = {.data = status_json(op->room, r, op->limit)};
    op_finish(op, &res);
}

static void redis_room_view(struct worker *w, const char *room, uint64_t uid, long limit,
                            store_cb cb, void *ctx)
{
    if (!store_room_alive(room, uid)) {
        struct store_result res = {.err = ERR_ROOM_NOT_FOUND};
        cb(&res, ctx);
        return;
    }
    struct redis_op *op = op_new(w, room, NULL, cb, ctx);
    if (!op) {
        struct store_result res = {.err = ERR_STORE_UNAVAILABLE};
        cb(&res, ctx);
        return;
    }
    op->uid = uid;
    op->limit = limit;
    char members[1024];
    const char *argv[] = {"HGETALL", room_key(members, sizeof(members), room, "members")};
    size_t lens[] = {7, strlen(members)};
    if (!redis_link_argv(worker_link(w, room_shard(room)), on_room_viewed, op, 2, argv, lens))
        op_fail(op, ERR_STORE_UNAVAILABLE);
}

/* Whether W reaches ROOM's shard now (NULL: every shard). */
static bool redis_available(const struct worker *w, const char *room)
{
    if (room)
        return redis_link_ready(worker_link(w, room_shard(room)));
    for (int i = 0; i < nshards; i++)
        if (!redis_link_ready(worker_link(w, &shards[i])))
            return false;
    return true;
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
            const char *hdel[] = {"HDEL", room_key(members, sizeof(members), room, "members"), id};
            const char *srem[] = {"SREM", key_self_members, e};
            size_t hl[] = {4, strlen(members), strlen(id)};
            size_t sl[] = {4, strlen(key_self_members), r->element[i]->len};
            redis_link_argv(link, NULL, NULL, 3, hdel, hl);
            redis_link_argv(link, NULL, NULL, 3, srem, sl);
        }
        free(id);
    }
}

/* A worker's link is (back) up: its members are written again, so Redis
 * has them even if it restarted empty or a reaper removed them, and what
 * it remembers of members that left meanwhile is removed. */
static void on_worker_up(struct redis_link *link)
{
    struct worker *w = link->owner;
    const char *load_say[] = {"SCRIPT", "LOAD", SAY_LUA};
    const char *load_stream[] = {"SCRIPT", "LOAD", STREAM_LUA};
    size_t ll[] = {6, 4, strlen(SAY_LUA)}, sl2[] = {6, 4, strlen(STREAM_LUA)};
    redis_link_argv(link, NULL, NULL, 3, load_say, ll); /* first: EVALSHA may follow at once */
    redis_link_argv(link, NULL, NULL, 3, load_stream, sl2);
    const char *smembers[] = {"SMEMBERS", key_self_members};
    size_t sl[] = {8, strlen(key_self_members)};
    redis_link_argv(link, on_self_members, link, 2, smembers, sl);
    for (struct conn *c = w->conns; c; c = c->hh.next) {
        if (c->dead || !c->room || room_shard(c->room) != link->shard ||
            !store_room_alive(c->room, c->room_uid))
            continue;
        char members[1024], entry[1024];
        room_key(members, sizeof(members), c->room, "members");
        snprintf(entry, sizeof(entry), "%s\n%s", c->id, c->room);
        char *value = member_json(c->id, c->room_joined_at);
        const char *argv[] = {"EVAL", MEMBER_SET_LUA,       "2",  members, key_self_members,
                              c->id,  value ? value : "{}", entry};
        size_t lens[8];
        for (int i = 0; i < 8; i++)
            lens[i] = strlen(argv[i]);
        redis_link_argv(link, NULL, NULL, 8, argv, lens);
        free(value);
    }
}

/* Each worker has a link to every shard: W->store_state is their array. */
static void redis_worker_start(struct worker *w)
{
    struct redis_link **links = calloc(nshards > 0 ? (size_t)nshards : 1, sizeof(*links));
    for (int i = 0; links && i < nshards; i++)
        links[i] = redis_link_new("worker", &shards[i], nshards > 1, w->base, on_worker_up, w);
    w->store_state = links;
}

static void redis_worker_stop(struct worker *w)
{
    struct redis_link **links = w->store_state;
    w->store_state = NULL;
    for (int i = 0; links && i < nshards; i++)
        redis_link_free(links[i]);
    free(links);
}

/* ------------------------------------------------ server-side (sync) */

static bool redis_room_exists(const char *room);

/* Run ROOM_ADD_LUA or ROOM_DEL_LUA for ROOM, announcing TYPE on the bus;
 * the script's 1 or 0, or -1 when Redis could not be asked. */
static int room_script(const char *script, const char *type, const char *room)
{
    char pattern[1024], members[1024], history[1024], stream[1024];
    size_t blen;
    char *b = bus_message(type, room, NULL, "", 0, &blen);
    const char *argv[] = {"EVAL",
                          script,
                          "6",
                          key_rooms,
                          room_key(pattern, sizeof(pattern), room, "pattern"),
                          room_key(members, sizeof(members), room, "members"),
                          key_bus,
                          room_key(history, sizeof(history), room, "history"),
                          room_key(stream, sizeof(stream), room, "stream"),
                          room,
                          b ? b : ""};
    redisReply *r = redis_sync_cmd(room_shard(room), 11, argv);
    free(b);
    int result = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    freeReplyObject(r);
    return result;
}

static int redis_room_add(const char *room)
{
    int created = room_script(ROOM_ADD_LUA, "created", room);
    if (created == 1)
        mirror_room(room, NULL); /* new: no pattern */
    else if (created == 0)
        redis_room_exists(room); /* make sure the mirror has it */
    return created;
}

static bool redis_room_del(const char *room)
{
    bool deleted = room_script(ROOM_DEL_LUA, "deleted", room) == 1;
    if (deleted)
        store_local_room_deleted(room);
    return deleted;
}

static bool redis_room_exists(const char *room)
{
    const char *argv[] = {"SISMEMBER", key_rooms, room};
    redisReply *r = redis_sync_cmd(room_shard(room), 3, argv);
    bool exists = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (exists && !registry_lookup(room, NULL)) {
        char key[1024];
        const char *hv[] = {"HGETALL", room_key(key, sizeof(key), room, "pattern")};
        redisReply *pairs = redis_sync_cmd(room_shard(room), 2, hv);
        mirror_room(room, pairs);
        freeReplyObject(pairs);
    }
    return exists;
}

static enum roomd_err redis_room_set_pattern(const char *room, json_object *pattern)
{
    int n = pattern ? json_object_object_length(pattern) : 0;
    const char **argv = calloc((size_t)(8 + 2 * n), sizeof(*argv));
    size_t *lens = calloc((size_t)(8 + 2 * n), sizeof(*lens));
    char **texts = calloc((size_t)n + 1, sizeof(*texts));
    char key[1024], *bus = NULL;
    int argc = 0, k = 0;
    enum roomd_err err = ERR_STORE_UNAVAILABLE;
    if (!argv || !lens || !texts)
        goto out;
    argv[argc++] = "EVAL";
    argv[argc++] = PATTERN_LUA;
    argv[argc++] = "3";
    argv[argc++] = key_rooms;
    argv[argc++] = room_key(key, sizeof(key), room, "pattern");
    argv[argc++] = key_bus;
    argv[argc++] = room;
    argv[argc++] = ""; /* ARGV[2]: the bus message, set below */
    if (pattern) {
        json_object_object_foreach(pattern, name, value)
        {
            if (json_object_is_type(value, json_type_object) ||
                json_object_is_type(value, json_type_array)) {
                err = ERR_INVALID_REQUEST;
                goto out;
            }
            texts[k] =
                strdup(value ? json_object_to_json_string_ext(value, ROOMD_JSON_FLAGS) : "null");
            argv[argc++] = name;
            argv[argc++] = texts[k++];
        }
    }
    const char *ptext = pattern ? json_object_to_json_string_ext(pattern, ROOMD_JSON_FLAGS) : "{}";
    size_t blen;
    if (!(bus = bus_message("pattern", room, NULL, ptext, strlen(ptext), &blen)))
        goto out;
    argv[7] = bus;
    for (int i = 0; i < argc; i++)
        lens[i] = i == 7 ? blen : strlen(argv[i]);
    struct redis_shard *sh = room_shard(room);
    pthread_mutex_lock(&sh->sync_lock);
    redisReply *r = redis_sync_argv(sh, argc, argv, lens);
    pthread_mutex_unlock(&sh->sync_lock);
    if (r && r->type == REDIS_REPLY_INTEGER)
        err = r->integer == 1 ? ERR_NONE : ERR_ROOM_NOT_FOUND;
    freeReplyObject(r);
    if (!err) {
        registry_add(room);
        registry_set_pattern(room, pattern);
    }
out:
    for (int i = 0; i < k; i++)
        free(texts[i]);
    free(texts);
    free(argv);
    free(lens);
    free(bus);
    return err;
}

/* Every shard's rooms; a shard that cannot be asked contributes the rooms
 * this server knows on it. */
static json_object *redis_room_list(void)
{
    json_object *a = json_object_new_array();
    for (int k = 0; k < nshards; k++) {
        const char *argv[] = {"SMEMBERS", key_rooms};
        redisReply *r = redis_sync_cmd(&shards[k], 2, argv);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            json_object *known = shard_local_rooms(&shards[k]);
            for (size_t i = 0; i < json_object_array_length(known); i++)
                json_object_array_add(a, json_object_get(json_object_array_get_idx(known, i)));
            json_object_put(known);
            continue;
        }
        for (size_t i = 0; i < r->elements; i++)
            json_object_array_add(a, json_object_new_string(r->element[i]->str));
        freeReplyObject(r);
    }
    return a;
}

static json_object *redis_room_status(const char *room, long limit)
{
    if (!redis_room_exists(room))
        return NULL;
    char members[1024];
    const char *argv[] = {"HGETALL", room_key(members, sizeof(members), room, "members")};
    redisReply *r = redis_sync_cmd(room_shard(room), 2, argv);
    json_object *o = r && r->type == REDIS_REPLY_ARRAY ? status_json(room, r, limit) : NULL;
    freeReplyObject(r);
    return o;
}

/* ------------------------------------------------------------ set-up */

static int redis_open(void)
{
    char shown[1024], why[256];
    redis_url_shown(settings.store, shown, sizeof(shown));
    static struct redis_endpoint eps[REDIS_MAX_URLS];
    int n = redis_url_list(settings.store, eps, REDIS_MAX_URLS, why, sizeof(why));
    if (n < 0) {
        log_error("store: cannot parse '%s' (%s; redis://[USER[:PASSWORD]@]HOST:PORT[/DB] or "
                  "redis:///SOCKET)",
                  shown, why);
        return -1;
    }
    nshards = n;
    for (int i = 0; i < n; i++) {
        struct redis_shard *sh = &shards[i];
        sh->index = i;
        sh->ep = eps[i];
        pthread_mutex_init(&sh->sync_lock, NULL);
        if (*settings.redis_password_file && !*sh->ep.password &&
            redis_password_load(settings.redis_password_file, sh->ep.password,
                                sizeof(sh->ep.password), why, sizeof(why)) < 0) {
            log_error("redis_password_file: %s", why);
            return -1;
        }
    }
    if (*settings.server_id)
        snprintf(server_id, sizeof(server_id), "%s", settings.server_id);
    else {
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        snprintf(server_id, sizeof(server_id), "%s:%d", host, settings.port);
    }
    const char *P = settings.redis_prefix;
    snprintf(key_rooms, sizeof(key_rooms), "%srooms", P);
    snprintf(key_servers, sizeof(key_servers), "%sservers", P);
    snprintf(key_bus, sizeof(key_bus), "%sbus", P);
    script_sha(SAY_LUA, say_sha);
    script_sha(STREAM_LUA, stream_sha);
    snprintf(key_self_members, sizeof(key_self_members), "%sserver:%s:members", P, server_id);

    for (int i = 0; i < n; i++) {
        struct redis_shard *sh = &shards[i];
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
        log_info("store: Redis shard %d of %d at %s, server id %s", i, n, sh->ep.shown, server_id);
        /* A restarted server starts clean: what its last life left goes. */
        reap_server(sh, server_id, INT64_MAX);
        mirror_sync(sh);
    }
    return 0;
}

/* The subscriber and the heartbeat live on the main base, which exists
 * only once roomd_run starts; the first worker_start is the cue. */
static void redis_main_start(void)
{
    if (heartbeat_ev)
        return;
    redis_subs_start(main_base, shards, nshards, on_bus_message);
    for (int i = 0; i < nshards; i++)
        shards[i].bus_link =
            redis_link_new("bus", &shards[i], nshards > 1, main_base, on_bus_up, NULL);
    heartbeat_ev = event_new(main_base, -1, EV_PERSIST, on_heartbeat, NULL);
    long ms = settings.server_timeout * 1000 / REDIS_HEARTBEATS_PER_TIMEOUT;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(heartbeat_ev, &tv);
    on_heartbeat(-1, 0, NULL);
}

static void redis_worker_start_all(struct worker *w)
{
    redis_main_start();
    redis_worker_start(w);
}

static void redis_close(void)
{
    if (heartbeat_ev)
        event_free(heartbeat_ev);
    heartbeat_ev = NULL;
    for (int i = 0; i < nshards; i++) {
        struct redis_shard *sh = &shards[i];
        redis_link_free(sh->bus_link);
        sh->bus_link = NULL;
        if (sh->sync_ctx) {
            /* A clean stop: this server's members leave now, not at timeout. */
            reap_server(sh, server_id, INT64_MAX);
            redisFree(sh->sync_ctx);
        }
        sh->sync_ctx = NULL;
    }
    redis_subs_stop();
}

const struct store_ops store_redis_ops = {
    .open = redis_open,
    .close = redis_close,
    .worker_start = redis_worker_start_all,
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
