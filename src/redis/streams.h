/* streams.h -- rooms' streams in Redis and the say that numbers them
 * (store_ops publish, stream_read, room_history, room_messages). */
#ifndef ROOMD_REDIS_STREAMS_H
#define ROOMD_REDIS_STREAMS_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "redis/link.h"
#include "store.h"

/* A say or a server broadcast (KEEP) goes through SAY_LUA and reaches
 * every server's clients, this one's included, from the bus; what is not
 * kept (announcements) is delivered here at once and published as chat. */
void redis_publish(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                   uint64_t skip_serial, const char *skip_id, bool keep, store_cb cb, void *ctx);
/* A join's or a listen's read of the room's position (and replay); it
 * waits for this server's subscription to the room's channel. */
void redis_stream_read(struct worker *w, const char *room, const struct history_position *since,
                       long limit, bool messages, store_cb cb, void *ctx);
/* Admin: the room's history settings (after setting SIZE and TTL, -1
 * unchanged) and its last LIMIT kept messages; NULL: no such room. */
json_object *redis_room_history(const char *room, long size, long ttl);
json_object *redis_room_messages(const char *room, long limit);
/* Name the scripts (their SHA-1) once, at open. */
void redis_history_open(void);
/* A worker's LINK is (back) up: load the scripts it runs by SHA-1. */
void redis_history_up(struct redis_link *link);

#endif
