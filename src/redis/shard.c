/* shard.c -- the shard map: a room name to the index of its Redis. */
#include <string.h>

#include "shard.h"

#define FNV1A64_OFFSET_BASIS 14695981039346656037ULL
#define FNV1A64_PRIME 1099511628211ULL

uint64_t redis_shard_fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = FNV1A64_OFFSET_BASIS;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV1A64_PRIME;
    }
    return h;
}

/* Lamping and Veach's jump hash: adding a shard moves only 1/N of the
 * rooms, all to the new one (a modulo would move almost all). */
int redis_shard_jump(uint64_t key, int n)
{
    int64_t b = -1, j = 0;
    while (j < n) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
    }
    return (int)b;
}

int redis_shard_of(const char *name, int n)
{
    return n <= 1 ? 0 : redis_shard_jump(redis_shard_fnv1a64(name, strlen(name)), n);
}
