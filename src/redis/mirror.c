/* mirror.c -- the registry's copy of the rooms and patterns of each shard
 * (see mirror.h). */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fanout.h"
#include "log.h"
#include "msg.h"
#include "redis/cluster.h"
#include "redis/mirror.h"
#include "registry.h"

/* Put rooms back into an empty Redis, all or none: ARGV is the key prefix
 * then, per room, its name, its pattern's pair count and the pairs. */
static const char RESEED_LUA[] =
    "if redis.call('SCARD', KEYS[1]) > 0 then return 0 end "
    "local i = 2 while i <= #ARGV do local room = ARGV[i] local n = tonumber(ARGV[i+1]) "
    "redis.call('SADD', KEYS[1], room) "
    "for j = 0, n - 1 do redis.call('HSET', ARGV[1] .. 'room:' .. room .. ':pattern', "
    "ARGV[i+2+2*j], ARGV[i+3+2*j]) end i = i + 2 + 2 * n end return 1";

/* Make the local registry's copy of ROOM match Redis: PAIRS is the
 * HGETALL of its pattern (name, JSON text, ...). */
void redis_mirror_room(const char *room, const redisReply *pairs)
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
    argv[3] = redis_keys.rooms;
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
json_object *redis_mirror_shard_rooms(const struct redis_shard *sh)
{
    json_object *all = registry_list(), *mine = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *name = json_object_array_get_idx(all, i);
        if (redis_room_shard(json_object_get_string(name)) == sh)
            json_object_array_add(mine, json_object_get(name));
    }
    json_object_put(all);
    return mine;
}

/* Re-read every room and pattern of shard SH: its rooms Redis lacks are
 * deleted locally. */
void redis_mirror_sync(struct redis_shard *sh)
{
    const char *argv[] = {"SMEMBERS", redis_keys.rooms};
    redisReply *rooms = redis_sync_cmd(sh, 2, argv);
    if (!rooms || rooms->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rooms);
        return;
    }
    json_object *local = redis_mirror_shard_rooms(sh);
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
        redis_mirror_sync(sh);
        return;
    }
    for (size_t i = 0; i < json_object_array_length(local); i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(local, i));
        bool found = false;
        for (size_t j = 0; j < rooms->elements && !found; j++)
            found = strcmp(rooms->element[j]->str, name) == 0;
        if (!found)
            fanout_room_deleted(name);
    }
    json_object_put(local);
    for (size_t j = 0; j < rooms->elements; j++) {
        char key[1024];
        const char *hv[] = {"HGETALL",
                            redis_room_key(key, sizeof(key), rooms->element[j]->str, "pattern")};
        redisReply *pairs = redis_sync_cmd(sh, 2, hv);
        redis_mirror_room(rooms->element[j]->str, pairs);
        freeReplyObject(pairs);
    }
    freeReplyObject(rooms);
}
