/* registry.c -- the shared room registry (see registry.h).
 *
 * Ownership and locking
 * ---------------------
 * Rooms are spread over REGISTRY_SHARDS shards by a hash of their name; each
 * shard has its own rwlock.  Fan-out, pattern checks and roomView take the
 * read lock; creating, deleting, joining and leaving take the write lock.
 * No lock is held across I/O or across a call out of this file, and no code
 * holds two shard locks at once, so there is no lock order to get wrong.
 * The per-worker recipient counts are atomics, changed under the read lock
 * (which is enough to keep the room alive).
 *
 * The stream lock
 * ---------------
 * Each room also has its stream's lock (history.h), taken under the shard's
 * read lock.  Publishing numbers a message, keeps it and hands it to the
 * fan-out under it; a connection starts or stops hearing the room (its
 * worker's recipient count, its position, its replay) under it.  So offsets
 * reach every worker in order, and a joiner's position splits the stream
 * exactly: what came before is in its replay, what comes after reaches its
 * worker.  The fan-out callback may take a worker's queue lock: the order
 * is shard lock, stream lock, queue lock. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>

#include "auth.h"
#include "history.h"
#include "msg.h"
#include "registry.h"

/* Enough shards that joins in different rooms rarely meet on one lock. */
#define REGISTRY_SHARDS 64

struct member {
    UT_hash_handle hh;
    int64_t joined_at;
    int worker;
    char id[];
};

struct room {
    UT_hash_handle hh;
    uint64_t uid;
    struct pattern pattern;
    struct member *members;
    long nmembers;
    atomic_int *recipients; /* [nworkers] local members + listeners */
    /* The announcement budget (registry_announce_allowed): the second it
     * counts for and the announcements made in it, atomics changed under
     * the read lock like the recipient counts. */
    _Atomic int64_t announce_second;
    atomic_long announce_count;
    struct history stream;
    char name[];
};

struct shard {
    pthread_rwlock_t lock;
    struct room *rooms;
};

static struct shard shards[REGISTRY_SHARDS];
static int registry_nworkers;
static atomic_uint_fast64_t next_uid = 1;

static struct shard *shard_of(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &shards[h % REGISTRY_SHARDS];
}

static struct room *room_find(struct shard *s, const char *name)
{
    struct room *r;
    HASH_FIND_STR(s->rooms, name, r);
    return r;
}

static void room_free(struct room *r)
{
    struct member *m, *tmp;
    HASH_ITER(hh, r->members, m, tmp)
    {
        HASH_DEL(r->members, m);
        free(m);
    }
    pattern_clear(&r->pattern);
    history_destroy(&r->stream);
    free(r->recipients);
    free(r);
}

int registry_init(int nworkers)
{
    registry_nworkers = nworkers;
    for (int i = 0; i < REGISTRY_SHARDS; i++) {
        if (pthread_rwlock_init(&shards[i].lock, NULL) != 0)
            return -1;
        shards[i].rooms = NULL;
    }
    return 0;
}

void registry_shutdown(void)
{
    for (int i = 0; i < REGISTRY_SHARDS; i++) {
        struct room *r, *tmp;
        HASH_ITER(hh, shards[i].rooms, r, tmp)
        {
            HASH_DEL(shards[i].rooms, r);
            room_free(r);
        }
        pthread_rwlock_destroy(&shards[i].lock);
    }
}

int registry_add(const char *name)
{
    struct shard *s = shard_of(name);
    size_t len = strlen(name);
    struct room *r = calloc(1, sizeof(*r) + len + 1);
    atomic_int *rec = calloc((size_t)registry_nworkers, sizeof(*rec));
    if (!r || !rec) {
        free(r);
        free(rec);
        return -1;
    }
    memcpy(r->name, name, len + 1);
    if (history_init(&r->stream) < 0) {
        free(r);
        free(rec);
        return -1;
    }
    r->recipients = rec;
    r->uid = atomic_fetch_add(&next_uid, 1);
    pthread_rwlock_wrlock(&s->lock);
    int created = room_find(s, name) == NULL;
    if (created)
        HASH_ADD_KEYPTR(hh, s->rooms, r->name, len, r);
    pthread_rwlock_unlock(&s->lock);
    if (!created)
        room_free(r);
    return created;
}

bool registry_del(const char *name, uint64_t *uid)
{
    struct shard *s = shard_of(name);
    pthread_rwlock_wrlock(&s->lock);
    struct room *r = room_find(s, name);
    if (r)
        HASH_DEL(s->rooms, r);
    pthread_rwlock_unlock(&s->lock);
    if (!r)
        return false;
    if (uid)
        *uid = r->uid;
    room_free(r);
    return true;
}

bool registry_lookup(const char *name, uint64_t *uid)
{
    struct shard *s = shard_of(name);
    pthread_rwlock_rdlock(&s->lock);
    struct room *r = room_find(s, name);
    if (r && uid)
        *uid = r->uid;
    pthread_rwlock_unlock(&s->lock);
    return r != NULL;
}

enum roomd_err registry_set_pattern(const char *name, json_object *obj)
{
    struct shard *s = shard_of(name);
    enum roomd_err err = ERR_NONE;
    pthread_rwlock_wrlock(&s->lock);
    struct room *r = room_find(s, name);
    if (!r)
        err = ERR_ROOM_NOT_FOUND;
    else if (pattern_set(&r->pattern, obj) < 0)
        err = ERR_INVALID_REQUEST;
    pthread_rwlock_unlock(&s->lock);
    return err;
}

json_object *registry_pattern(const char *name)
{
    struct shard *s = shard_of(name);
    json_object *o = NULL;
    pthread_rwlock_rdlock(&s->lock);
    struct room *r = room_find(s, name);
    if (r)
        o = pattern_to_json(&r->pattern);
    pthread_rwlock_unlock(&s->lock);
    return o;
}

enum roomd_err registry_join(const char *name, const char *id, json_object *attrs, int worker,
                             uint64_t *uid, int64_t *joined_at)
{
    struct shard *s = shard_of(name);
    size_t idlen = strlen(id);
    struct member *m = malloc(sizeof(*m) + idlen + 1);
    if (!m)
        return ERR_STORE_UNAVAILABLE;
    memcpy(m->id, id, idlen + 1);
    m->worker = worker;
    m->joined_at = now_ms();
    enum roomd_err err = ERR_NONE;
    pthread_rwlock_wrlock(&s->lock);
    struct room *r = room_find(s, name);
    struct member *old = NULL;
    if (r)
        HASH_FIND_STR(r->members, id, old);
    if (!r)
        err = ERR_ROOM_NOT_FOUND;
    else if (old)
        err = ERR_ALREADY_IN_ROOM;
    else if (attrs && !pattern_match(&r->pattern, attrs))
        err = ERR_NOT_AUTHORIZED;
    else {
        HASH_ADD_KEYPTR(hh, r->members, m->id, idlen, m);
        r->nmembers++;
        *uid = r->uid;
        *joined_at = m->joined_at;
    }
    pthread_rwlock_unlock(&s->lock);
    if (err)
        free(m);
    return err;
}

bool registry_leave(const char *name, uint64_t uid, const char *id)
{
    struct shard *s = shard_of(name);
    struct member *m = NULL;
    pthread_rwlock_wrlock(&s->lock);
    struct room *r = room_find(s, name);
    if (r && r->uid == uid) {
        HASH_FIND_STR(r->members, id, m);
        if (m) {
            HASH_DEL(r->members, m);
            r->nmembers--;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    free(m);
    return m != NULL;
}

enum roomd_err registry_check_listen(const char *name, json_object *attrs, uint64_t *uid)
{
    struct shard *s = shard_of(name);
    enum roomd_err err = ERR_NONE;
    pthread_rwlock_rdlock(&s->lock);
    struct room *r = room_find(s, name);
    if (!r)
        err = ERR_ROOM_NOT_FOUND;
    else if (!pattern_match(&r->pattern, attrs))
        err = ERR_NOT_AUTHORIZED;
    else
        *uid = r->uid;
    pthread_rwlock_unlock(&s->lock);
    return err;
}

/* A fixed window of one second per room: the first announcement of a new
 * second resets the count (a race between two workers at the turn of the
 * second costs at most an announcement or two either way). */
bool registry_announce_allowed(const char *name, uint64_t uid, long per_second)
{
    if (per_second <= 0)
        return true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t second = (int64_t)ts.tv_sec;
    struct shard *s = shard_of(name);
    bool allowed = true;
    pthread_rwlock_rdlock(&s->lock);
    struct room *r = room_find(s, name);
    if (r && r->uid == uid) {
        int64_t seen = atomic_load_explicit(&r->announce_second, memory_order_relaxed);
        if (seen != second && atomic_compare_exchange_strong(&r->announce_second, &seen, second))
            atomic_store_explicit(&r->announce_count, 0, memory_order_relaxed);
        allowed =
            atomic_fetch_add_explicit(&r->announce_count, 1, memory_order_relaxed) < per_second;
    }
    pthread_rwlock_unlock(&s->lock);
    return allowed;
}

void registry_hear(const char *name, uint64_t uid, int worker, int delta,
                   struct history_read *hearing)
{
    struct shard *s = shard_of(name);
    pthread_rwlock_rdlock(&s->lock);
    struct room *r = room_find(s, name);
    if (r && r->uid == uid) {
        pthread_mutex_lock(&r->stream.lock);
        if (delta)
            atomic_fetch_add_explicit(&r->recipients[worker], delta, memory_order_relaxed);
        if (hearing && (hearing->has_position = history_on(&r->stream))) {
            history_resume(&r->stream);
            history_position(&r->stream, &hearing->position);
            if (hearing->since)
                hearing->recovered =
                    history_since(&r->stream, hearing->since, &hearing->replay, &hearing->nreplay);
        }
        pthread_mutex_unlock(&r->stream.lock);
    }
    pthread_rwlock_unlock(&s->lock);
}

void registry_recipients_add(const char *name, uint64_t uid, int worker, int delta)
{
    registry_hear(name, uid, worker, delta, NULL);
}

bool registry_recipient_workers(const char *name, uint64_t *uid, bool *want)
{
    struct shard *s = shard_of(name);
    pthread_rwlock_rdlock(&s->lock);
    struct room *r = room_find(s, name);
    bool found = r && (*uid == 0 || r->uid == *uid);
    if (found) {
        *uid = r->uid;
        for (int w = 0; w < registry_nworkers; w++)
            want[w] = atomic_load_explicit(&r->recipients[w], memory_order_relaxed) > 0;
    }
    pthread_rwlock_unlock(&s->lock);
    return found;
}

bool registry_publish(const char *name, uint64_t *uid, struct msg *m, bool keep,
                      registry_fanout_fn fanout, void *ctx)
{
    struct shard *s = shard_of(name);
    bool want[registry_nworkers];
    pthread_rwlock_rdlock(&s->lock);
    struct room *r = room_find(s, name);
    bool found = r && (*uid == 0 || r->uid == *uid);
    if (found) {
        *uid = r->uid;
        pthread_mutex_lock(&r->stream.lock);
        struct msg *numbered = keep ? history_keep(&r->stream, m) : NULL;
        for (int w = 0; w < registry_nworkers; w++)
            want[w] = atomic_load_explicit(&r->recipients[w], memory_order_relaxed) > 0;
        fanout(want, numbered ? numbered : m, ctx);
        pthread_mutex_unlock(&r->stream.lock);
        msg_unref(numbered);
    }
    pthread_rwlock_unlock(&s->lock);
    return found;
}

enum roomd_err registry_history(const char *name, uint64_t uid, long limit,
                                struct history_read *out)
{
    struct shard *s = shard_of(name);
    enum roomd_err err = ERR_NONE;
    pthread_rwlock_rdlock(&s->lock);
    struct room *r = room_find(s, name);
    if (!r || (uid && r->uid != uid)) {
        err = ERR_ROOM_NOT_FOUND;
    } else {
        pthread_mutex_lock(&r->stream.lock);
        out->has_position = history_on(&r->stream);
        history_position(&r->stream, &out->position);
        if (out->since)
            out->recovered = history_since(&r->stream, out->since, &out->replay, &out->nreplay);
        else if (out->has_position)
            history_last(&r->stream, limit, &out->replay, &out->nreplay);
        pthread_mutex_unlock(&r->stream.lock);
    }
    pthread_rwlock_unlock(&s->lock);
    return err;
}

json_object *registry_history_settings(const char *name, long size, long ttl)
{
    struct shard *s = shard_of(name);
    json_object *o = NULL;
    pthread_rwlock_rdlock(&s->lock);
    struct room *r = room_find(s, name);
    if (r) {
        pthread_mutex_lock(&r->stream.lock);
        if (size >= 0 || ttl >= 0)
            history_configure(&r->stream, size >= 0 ? size : r->stream.size_set,
                              ttl >= 0 ? ttl : r->stream.ttl_set);
        o = json_object_new_object();
        json_object_object_add(o, "size", json_object_new_int64(history_size(&r->stream)));
        json_object_object_add(o, "ttl", json_object_new_int64(history_ttl(&r->stream)));
        pthread_mutex_unlock(&r->stream.lock);
    }
    pthread_rwlock_unlock(&s->lock);
    return o;
}

json_object *registry_status(const char *name, uint64_t uid, long limit)
{
    struct shard *s = shard_of(name);
    json_object *o = NULL;
    pthread_rwlock_rdlock(&s->lock);
    struct room *r = room_find(s, name);
    if (r && (uid == 0 || r->uid == uid)) {
        o = json_object_new_object();
        json_object *members = json_object_new_object();
        long n = 0;
        for (struct member *m = r->members; m && n < limit; m = m->hh.next, n++) {
            json_object *e = json_object_new_object();
            json_object_object_add(e, "id", json_object_new_string(m->id));
            json_object_object_add(e, "joinedAt", json_object_new_int64(m->joined_at));
            json_object_object_add(members, m->id, e);
        }
        json_object_object_add(o, "room", json_object_new_string(r->name));
        json_object_object_add(o, "members", members);
        json_object_object_add(o, "membersCount", json_object_new_int64(r->nmembers));
    }
    pthread_rwlock_unlock(&s->lock);
    return o;
}

json_object *registry_list(void)
{
    json_object *a = json_object_new_array();
    for (int i = 0; i < REGISTRY_SHARDS; i++) {
        pthread_rwlock_rdlock(&shards[i].lock);
        for (struct room *r = shards[i].rooms; r; r = r->hh.next)
            json_object_array_add(a, json_object_new_string(r->name));
        pthread_rwlock_unlock(&shards[i].lock);
    }
    return a;
}

long registry_room_count(void)
{
    long n = 0;
    for (int i = 0; i < REGISTRY_SHARDS; i++) {
        pthread_rwlock_rdlock(&shards[i].lock);
        n += (long)HASH_COUNT(shards[i].rooms);
        pthread_rwlock_unlock(&shards[i].lock);
    }
    return n;
}

long registry_member_count(void)
{
    long n = 0;
    for (int i = 0; i < REGISTRY_SHARDS; i++) {
        pthread_rwlock_rdlock(&shards[i].lock);
        for (struct room *r = shards[i].rooms; r; r = r->hh.next)
            n += r->nmembers;
        pthread_rwlock_unlock(&shards[i].lock);
    }
    return n;
}
