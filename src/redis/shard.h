/* shard.h -- which Redis server (shard) holds a room.
 *
 * A room's shard is the jump consistent hash (Lamping & Veach, 2014) of
 * the FNV-1a 64-bit hash of its name's bytes, over the number of shards in
 * the order the store setting lists them (roomd-redis(7) gives the
 * algorithm, so other tools can find a room's shard). */
#ifndef ROOMD_REDIS_SHARD_H
#define ROOMD_REDIS_SHARD_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, 64 bits, of LEN bytes at DATA. */
uint64_t redis_shard_fnv1a64(const void *data, size_t len);
/* Jump consistent hash of KEY over N buckets (N >= 1): 0 .. N-1. */
int redis_shard_jump(uint64_t key, int n);
/* The shard of room NAME among N. */
int redis_shard_of(const char *name, int n);

#endif
