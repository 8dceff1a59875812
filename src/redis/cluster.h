/* cluster.h -- this server's place in a Redis store: the shards, this
 * server's id, and the names of the keys and channels every server shares.
 *
 * Key layout (P = redis_prefix, "roomd:" by default; roomd-redis(7)), on
 * each shard for the rooms it holds:
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
 * Set once by redis_cluster_open, before any thread but main runs; read
 * only after that, from any thread. */
#ifndef ROOMD_REDIS_CLUSTER_H
#define ROOMD_REDIS_CLUSTER_H

#include <stddef.h>

#include "redis/link.h"

struct worker;

/* The shards, in the order the store setting lists them (the first
 * redis_nshards of the array). */
extern struct redis_shard redis_shards[REDIS_MAX_URLS];
extern int redis_nshards;

/* This server's id: server_id, or HOST:PORT. */
extern char redis_server_id[300];

/* The shared key and channel names that do not name a room. */
struct redis_keys {
    char rooms[512];
    char servers[512];
    char bus[512];
    char self_members[1024]; /* P server:<this server>:members */
};
extern struct redis_keys redis_keys;

/* Parse settings.store (and redis_password_file) into the shards, choose
 * this server's id and name the keys; -1 (logged) on a bad setting. */
int redis_cluster_open(void);
/* The shard that holds ROOM (redis/shard.h). */
struct redis_shard *redis_room_shard(const char *room);
/* P room:ROOM:SUFFIX into BUF. */
const char *redis_room_key(char *buf, size_t len, const char *room, const char *suffix);
/* Worker W's link to shard SH (NULL off-worker or before it started). */
struct redis_link *redis_worker_link(const struct worker *w, const struct redis_shard *sh);

#endif
