/* cluster.c -- the shards, this server's id and the shared names (see
 * cluster.h). */
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "redis/cluster.h"
#include "redis/shard.h"
#include "redis/url.h"
#include "worker.h"

struct redis_shard redis_shards[REDIS_MAX_URLS];
int redis_nshards;
char redis_server_id[300];
struct redis_keys redis_keys;

/* Every server must be started with the same list (roomd-redis(7)): the
 * order is the shard map's. */
static int shards_open(void)
{
    char shown[1024], why[256];
    static struct redis_endpoint eps[REDIS_MAX_URLS];
    int n = redis_url_list(settings.store, eps, REDIS_MAX_URLS, why, sizeof(why));
    if (n < 0) {
        redis_url_shown(settings.store, shown, sizeof(shown));
        log_error("store: cannot parse '%s' (%s; redis://[USER[:PASSWORD]@]HOST:PORT[/DB] or "
                  "redis:///SOCKET)",
                  shown, why);
        return -1;
    }
    redis_nshards = n;
    for (int i = 0; i < n; i++) {
        struct redis_shard *sh = &redis_shards[i];
        sh->index = i;
        sh->ep = eps[i];
        pthread_mutex_init(&sh->sync_lock, NULL);
        if (*settings.redis_password_file && !*sh->ep.password &&
            redis_password_load(settings.redis_password_file, sh->ep.password,
                                sizeof(sh->ep.password), why, sizeof(why)) < 0) {
            log_error("redis_password_file: %s", why);
            return -1;
        }
    }
    return 0;
}

int redis_cluster_open(void)
{
    if (shards_open() < 0)
        return -1;
    if (*settings.server_id)
        snprintf(redis_server_id, sizeof(redis_server_id), "%s", settings.server_id);
    else {
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        snprintf(redis_server_id, sizeof(redis_server_id), "%s:%d", host, settings.port);
    }
    const char *P = settings.redis_prefix;
    snprintf(redis_keys.rooms, sizeof(redis_keys.rooms), "%srooms", P);
    snprintf(redis_keys.servers, sizeof(redis_keys.servers), "%sservers", P);
    snprintf(redis_keys.bus, sizeof(redis_keys.bus), "%sbus", P);
    snprintf(redis_keys.self_members, sizeof(redis_keys.self_members), "%sserver:%s:members", P,
             redis_server_id);
    return 0;
}

struct redis_shard *redis_room_shard(const char *room)
{
    return &redis_shards[redis_shard_of(room, redis_nshards)];
}

const char *redis_room_key(char *buf, size_t len, const char *room, const char *suffix)
{
    snprintf(buf, len, "%sroom:%s:%s", settings.redis_prefix, room, suffix);
    return buf;
}

/* W->store_state is the worker's array of links, one per shard. */
struct redis_link *redis_worker_link(const struct worker *w, const struct redis_shard *sh)
{
    return w && w->store_state ? ((struct redis_link **)w->store_state)[sh->index] : NULL;
}
