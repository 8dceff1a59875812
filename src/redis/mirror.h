/* mirror.h -- the local registry as a mirror of the rooms and patterns of
 * Redis.
 *
 * The registry stays the index for fan-out; Redis is the truth for what
 * servers share.  Start-up loads the rooms, bus events keep them current
 * (redis/bus.c), and a reconnect re-reads them; a shard that came back
 * empty (restarted without persistence) is re-seeded from what the
 * servers remember, all rooms or none. */
#ifndef ROOMD_REDIS_MIRROR_H
#define ROOMD_REDIS_MIRROR_H

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "redis/link.h"

/* Make the local copy of ROOM match Redis: PAIRS is the HGETALL of its
 * pattern (name, JSON text, ...; NULL: none). */
void redis_mirror_room(const char *room, const redisReply *pairs);
/* Re-read every room and pattern of shard SH (the blocking link): rooms it
 * lacks are deleted here, and an empty shard is re-seeded. */
void redis_mirror_sync(struct redis_shard *sh);
/* The rooms this server knows that live on shard SH (a JSON array). */
json_object *redis_mirror_shard_rooms(const struct redis_shard *sh);

#endif
