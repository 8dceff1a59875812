/* rooms.c -- the server side's rooms in Redis: add, delete, exists,
 * pattern, list and status, through each shard's blocking link (any
 * thread, under the shard's mutex).  Each change is made and announced on
 * the control channel by one script, so a server that hears of it reads
 * what was written. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fanout.h"
#include "msg.h"
#include "redis/bus.h"
#include "redis/cluster.h"
#include "redis/members.h"
#include "redis/mirror.h"
#include "redis/rooms.h"
#include "registry.h"

static const char ROOM_ADD_LUA[] = "if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end "
                                   "redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6]) "
                                   "redis.call('PUBLISH', KEYS[4], ARGV[2]) return 1";
static const char ROOM_DEL_LUA[] = "if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end "
                                   "redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6]) "
                                   "redis.call('PUBLISH', KEYS[4], ARGV[2]) return 1";
static const char PATTERN_LUA[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end "
    "redis.call('DEL', KEYS[2]) "
    "for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1]) end "
    "redis.call('PUBLISH', KEYS[3], ARGV[2]) return 1";

/* Run ROOM_ADD_LUA or ROOM_DEL_LUA for ROOM, announcing TYPE on the bus;
 * the script's 1 or 0, or -1 when Redis could not be asked. */
static int room_script(const char *script, const char *type, const char *room)
{
    char pattern[1024], members[1024], history[1024], stream[1024];
    size_t blen;
    char *b = redis_bus_message(type, room, NULL, "", 0, &blen);
    const char *argv[] = {"EVAL",
                          script,
                          "6",
                          redis_keys.rooms,
                          redis_room_key(pattern, sizeof(pattern), room, "pattern"),
                          redis_room_key(members, sizeof(members), room, "members"),
                          redis_keys.bus,
                          redis_room_key(history, sizeof(history), room, "history"),
                          redis_room_key(stream, sizeof(stream), room, "stream"),
                          room,
                          b ? b : ""};
    redisReply *r = redis_sync_cmd(redis_room_shard(room), 11, argv);
    free(b);
    int result = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    freeReplyObject(r);
    return result;
}

int redis_room_add(const char *room)
{
    int created = room_script(ROOM_ADD_LUA, "created", room);
    if (created == 1)
        redis_mirror_room(room, NULL); /* new: no pattern */
    else if (created == 0)
        redis_room_exists(room); /* make sure the mirror has it */
    return created;
}

bool redis_room_del(const char *room)
{
    bool deleted = room_script(ROOM_DEL_LUA, "deleted", room) == 1;
    if (deleted)
        fanout_room_deleted(room);
    return deleted;
}

bool redis_room_exists(const char *room)
{
    const char *argv[] = {"SISMEMBER", redis_keys.rooms, room};
    redisReply *r = redis_sync_cmd(redis_room_shard(room), 3, argv);
    bool exists = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (exists && !registry_lookup(room, NULL)) {
        char key[1024];
        const char *hv[] = {"HGETALL", redis_room_key(key, sizeof(key), room, "pattern")};
        redisReply *pairs = redis_sync_cmd(redis_room_shard(room), 2, hv);
        redis_mirror_room(room, pairs);
        freeReplyObject(pairs);
    }
    return exists;
}

enum roomd_err redis_room_set_pattern(const char *room, json_object *pattern)
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
    argv[argc++] = redis_keys.rooms;
    argv[argc++] = redis_room_key(key, sizeof(key), room, "pattern");
    argv[argc++] = redis_keys.bus;
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
    if (!(bus = redis_bus_message("pattern", room, NULL, ptext, strlen(ptext), &blen)))
        goto out;
    argv[7] = bus;
    for (int i = 0; i < argc; i++)
        lens[i] = i == 7 ? blen : strlen(argv[i]);
    struct redis_shard *sh = redis_room_shard(room);
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
json_object *redis_room_list(void)
{
    json_object *a = json_object_new_array();
    for (int k = 0; k < redis_nshards; k++) {
        const char *argv[] = {"SMEMBERS", redis_keys.rooms};
        redisReply *r = redis_sync_cmd(&redis_shards[k], 2, argv);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            json_object *known = redis_mirror_shard_rooms(&redis_shards[k]);
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

json_object *redis_room_status(const char *room, long limit)
{
    if (!redis_room_exists(room))
        return NULL;
    char members[1024];
    const char *argv[] = {"HGETALL", redis_room_key(members, sizeof(members), room, "members")};
    redisReply *r = redis_sync_cmd(redis_room_shard(room), 2, argv);
    json_object *o = r && r->type == REDIS_REPLY_ARRAY ? redis_members_json(room, r, limit) : NULL;
    freeReplyObject(r);
    return o;
}
