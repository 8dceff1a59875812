/* ip_limits.c -- per-address connection limits (see ip_limits.h).
 *
 * One table, address -> (open connections, rate bucket), under one mutex:
 * it is touched once when a connection starts and once when it ends,
 * never per message, so a lock shared by the workers costs nothing that
 * matters next to the accept and (over TLS) the handshake.  IPv4 and IPv6
 * addresses are keyed as 16 bytes (IPv4 mapped).  An entry goes when its
 * address has no connection left and its bucket is full again, so the
 * table holds the addresses that are connected or were busy a moment ago,
 * not every address ever seen. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>

#include "config.h"
#include "ip_limits.h"

#define MS_PER_SEC 1000
#define NS_PER_MS 1000000
/* Every this many admissions, addresses gone idle are swept out. */
#define IP_SWEEP_EVERY 1024

struct ip_entry {
    UT_hash_handle hh;
    uint8_t key[16];
    long open;        /* connections open from it */
    double tokens;    /* connection_rate_per_ip bucket */
    int64_t refilled; /* monotonic ms of the last refill */
};

static pthread_mutex_t ip_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ip_entry *ip_table;
static unsigned long since_sweep;
static atomic_uint_fast64_t refused_many, refused_fast;

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * MS_PER_SEC + ts.tv_nsec / NS_PER_MS;
}

/* ADDR as a 16-byte key; false for a family without an address (unix). */
static bool ip_key(const struct sockaddr *addr, uint8_t key[16])
{
    memset(key, 0, 16);
    if (addr->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        return true;
    }
    if (addr->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* E's bucket after the time passed: connection_rate_per_ip per second,
 * a burst of one second's worth. */
static void refill(struct ip_entry *e, long rate, int64_t now)
{
    double cap = rate > 0 ? (double)rate : 1.0;
    e->tokens += (double)(now - e->refilled) * (double)rate / MS_PER_SEC;
    if (e->tokens > cap)
        e->tokens = cap;
    e->refilled = now;
}

static bool idle(struct ip_entry *e, long rate, int64_t now)
{
    refill(e, rate, now);
    return e->open == 0 && (rate <= 0 || e->tokens >= (double)rate);
}

static void sweep(long rate, int64_t now)
{
    struct ip_entry *e, *next;
    HASH_ITER(hh, ip_table, e, next)
    {
        if (idle(e, rate, now)) {
            HASH_DEL(ip_table, e);
            free(e);
        }
    }
}

enum ip_verdict ip_limits_take(const struct sockaddr *addr)
{
    long max = settings.max_connections_per_ip, rate = settings.connection_rate_per_ip;
    uint8_t key[16];
    if ((max <= 0 && rate <= 0) || !ip_key(addr, key))
        return IP_UNCOUNTED;
    int64_t now = monotonic_ms();
    enum ip_verdict v = IP_ADMITTED;
    pthread_mutex_lock(&ip_lock);
    if (++since_sweep >= IP_SWEEP_EVERY) {
        since_sweep = 0;
        sweep(rate, now);
    }
    struct ip_entry *e;
    HASH_FIND(hh, ip_table, key, sizeof(key), e);
    if (!e && (e = calloc(1, sizeof(*e)))) {
        memcpy(e->key, key, sizeof(key));
        e->tokens = rate > 0 ? (double)rate : 1.0;
        e->refilled = now;
        HASH_ADD(hh, ip_table, key, sizeof(e->key), e);
    }
    if (!e) {
        v = IP_UNCOUNTED; /* out of memory: let it in rather than refuse everyone */
    } else if (max > 0 && e->open >= max) {
        v = IP_TOO_MANY;
    } else if (rate > 0) {
        refill(e, rate, now);
        if (e->tokens < 1.0)
            v = IP_TOO_FAST;
        else
            e->tokens -= 1.0;
    }
    if (v == IP_ADMITTED)
        e->open++;
    pthread_mutex_unlock(&ip_lock);
    if (v == IP_TOO_MANY)
        atomic_fetch_add(&refused_many, 1);
    else if (v == IP_TOO_FAST)
        atomic_fetch_add(&refused_fast, 1);
    return v;
}

void ip_limits_release(const struct sockaddr *addr)
{
    uint8_t key[16];
    if (!ip_key(addr, key))
        return;
    pthread_mutex_lock(&ip_lock);
    struct ip_entry *e;
    HASH_FIND(hh, ip_table, key, sizeof(key), e);
    if (e && e->open > 0)
        e->open--;
    if (e && idle(e, settings.connection_rate_per_ip, monotonic_ms())) {
        HASH_DEL(ip_table, e);
        free(e);
    }
    pthread_mutex_unlock(&ip_lock);
}

void ip_limits_refused(uint64_t *too_many, uint64_t *too_fast)
{
    *too_many = atomic_load(&refused_many);
    *too_fast = atomic_load(&refused_fast);
}
