/* bus.h -- the bus: what roomd servers tell each other through Redis
 * pub/sub.
 *
 * A bus message is "SERVER\nTYPE\nROOM\nSKIP-ID\nPAYLOAD" (roomd-redis(7)
 * "CHANNELS").  A room's chat ("say": numbered and kept, delivered from the
 * bus on every server, its own included; "chat": not kept, delivered at
 * once where it was made) goes out on the room's channel on its shard,
 * which a server hears only while it has local recipients of the room
 * (redis/subs.c).  Room changes ("created", "deleted", "pattern") go out on
 * the control channel of the room's shard, and routed connection calls
 * ("connop", "connres", redis/route.c) on shard 0's; every server hears
 * every shard's control channel.
 *
 * The subscriber links (one per shard) live on the main thread. */
#ifndef ROOMD_REDIS_BUS_H
#define ROOMD_REDIS_BUS_H

#include <stddef.h>

#include <event2/event.h>

#include "redis/link.h"
#include "store.h"

struct worker;

/* A bus message from this server; malloc'd, *LEN its length (PAYLOAD, of
 * PLEN bytes, need not be a C string). */
char *redis_bus_message(const char *type, const char *room, const char *skip, const char *payload,
                        size_t plen, size_t *len);
/* Publish one on shard SH from worker W (on its link) or, off-worker (W
 * NULL), on the blocking link: "chat" of a room on the room's channel, the
 * rest on the control channel. */
void redis_bus_publish(struct redis_shard *sh, struct worker *w, const char *type, const char *room,
                       const char *skip, const char *payload, size_t plen);

/* Start the subscriber links and the subscription table on BASE (main). */
void redis_bus_start(struct event_base *base);
void redis_bus_stop(void);
/* Call FN (main thread) once every shard's control channel is confirmed
 * (roomd's "ready"). */
void redis_when_ready(void (*fn)(void));
/* The bus's figures (store_ops.bus_stats); any thread. */
void redis_bus_stats(struct store_bus_stats *out);
/* A worker's first local recipient of ROOM came (+1) or its last went (-1)
 * (store_ops.room_heard). */
void redis_room_heard(const char *room, int delta);

#endif
