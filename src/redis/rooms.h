/* rooms.h -- the server side's rooms in Redis (store_ops room_*), from
 * any thread. */
#ifndef ROOMD_REDIS_ROOMS_H
#define ROOMD_REDIS_ROOMS_H

#include <stdbool.h>

#include <json-c/json.h>

#include "errors.h"

int redis_room_add(const char *room);
bool redis_room_del(const char *room);
/* Whether ROOM exists in Redis; one that does is put in the mirror. */
bool redis_room_exists(const char *room);
enum roomd_err redis_room_set_pattern(const char *room, json_object *pattern);
/* Every shard's rooms; a shard that cannot be asked gives the rooms this
 * server knows on it. */
json_object *redis_room_list(void);
json_object *redis_room_status(const char *room, long limit);

#endif
