/* subs.c -- the per-room bus subscriptions (see subs.h).
 *
 * One table, keyed by room name, under subs_lock: workers change the counts
 * and add waiters; the main thread sends the commands and takes the
 * replies.  An entry lives while it is counted, subscribed, in flight,
 * waited for or on the dirty list; the main thread frees it when none of
 * these holds.  Lock order: subs_lock is taken alone (a waiter's function
 * is posted to its worker after the lock is released). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "config.h"
#include "log.h"
#include "redis/shard.h"
#include "redis/subs.h"

/* A join waiting for its room's subscription. */
struct subs_waiter {
    struct subs_waiter *next;
    struct worker *w;
    job_fn fn;
    void *arg;
};

struct subs_room {
    UT_hash_handle hh;
    struct subs_room *dirty_next; /* on the dirty list when dirty */
    int refs;                     /* workers with local recipients of it */
    int shard;
    bool confirmed; /* Redis's last word: subscribed */
    bool in_flight; /* a (UN)SUBSCRIBE of it awaits its reply */
    bool dirty;
    struct subs_waiter *waiters;
    char name[];
};

static pthread_mutex_t subs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct subs_room *subs_rooms, *subs_dirty;
static struct event *subs_flush_ev;
static struct redis_shard *subs_shards;
static int subs_nshards;
static redisCallbackFn *subs_reply_fn;
static _Atomic long subs_confirmed;
/* Rooms of each shard with a command in flight.  While a shard has any,
 * its changed rooms wait on the dirty list and go out together when the
 * last reply is in: a burst of joins (one worker turn counts them up while
 * the main thread is already flushing the first) costs a command per
 * round trip, not one per room. */
static int subs_busy[REDIS_MAX_URLS];

const char *redis_subs_channel(char *buf, size_t len, const char *room)
{
    snprintf(buf, len, "%sroom:%s:bus", settings.redis_prefix, room);
    return buf;
}

/* Put R on the dirty list and have the main loop flush it, now or when its
 * shard's command in flight is answered (lock held). */
static void subs_mark(struct subs_room *r)
{
    if (r->dirty)
        return;
    r->dirty = true;
    r->dirty_next = subs_dirty;
    subs_dirty = r;
    if (subs_flush_ev && subs_busy[r->shard] == 0)
        event_active(subs_flush_ev, EV_TIMEOUT, 0);
}

/* R's command is out (IN true) or answered or lost; the last answer of its
 * shard lets the rooms that waited go (lock held). */
static void subs_in_flight(struct subs_room *r, bool in)
{
    if (r->in_flight == in)
        return;
    r->in_flight = in;
    subs_busy[r->shard] += in ? 1 : -1;
    if (!in && subs_busy[r->shard] == 0 && subs_dirty && subs_flush_ev)
        event_active(subs_flush_ev, EV_TIMEOUT, 0);
}

/* Free R if nothing holds it any more (lock held, main thread or a caller
 * that knows R is not on the dirty list). */
static void subs_maybe_free(struct subs_room *r)
{
    if (r->refs > 0 || r->confirmed || r->in_flight || r->dirty || r->waiters)
        return;
    HASH_DEL(subs_rooms, r);
    free(r);
}

void redis_subs_ref(const char *room, int delta)
{
    pthread_mutex_lock(&subs_lock);
    if (!subs_flush_ev) {
        pthread_mutex_unlock(&subs_lock);
        return;
    }
    struct subs_room *r;
    HASH_FIND_STR(subs_rooms, room, r);
    if (!r && delta > 0) {
        size_t len = strlen(room);
        if ((r = calloc(1, sizeof(*r) + len + 1))) {
            memcpy(r->name, room, len + 1);
            r->shard = redis_shard_of(room, subs_nshards);
            HASH_ADD_STR(subs_rooms, name, r);
        } else
            log_error("out of memory: room '%s' not subscribed", room);
    }
    if (r) {
        bool was = r->refs > 0;
        r->refs += delta;
        if (r->refs < 0)
            r->refs = 0;
        if (was != (r->refs > 0))
            subs_mark(r);
    }
    pthread_mutex_unlock(&subs_lock);
}

bool redis_subs_when_active(const char *room, struct worker *w, job_fn fn, void *arg)
{
    bool wait = false;
    pthread_mutex_lock(&subs_lock);
    struct subs_room *r;
    HASH_FIND_STR(subs_rooms, room, r);
    if (subs_flush_ev && r && r->refs > 0 && (!r->confirmed || r->in_flight || r->dirty)) {
        struct subs_waiter *wt = malloc(sizeof(*wt));
        if (wt) {
            *wt = (struct subs_waiter){.next = r->waiters, .w = w, .fn = fn, .arg = arg};
            r->waiters = wt;
            wait = true;
        }
    }
    pthread_mutex_unlock(&subs_lock);
    return wait;
}

/* Detach R's waiters if its subscription settled (lock held): confirmed,
 * or not wanted any more.  The caller posts them after unlocking. */
static struct subs_waiter *subs_settled(struct subs_room *r, bool force)
{
    if (!force && (r->in_flight || r->dirty || (r->refs > 0 && !r->confirmed)))
        return NULL;
    struct subs_waiter *list = r->waiters;
    r->waiters = NULL;
    return list;
}

/* Append WAITERS to *ALL (a list of lists flattened). */
static void subs_collect(struct subs_waiter **all, struct subs_waiter *waiters)
{
    while (waiters) {
        struct subs_waiter *next = waiters->next;
        waiters->next = *all;
        *all = waiters;
        waiters = next;
    }
}

static void subs_run(struct subs_waiter *all)
{
    while (all) {
        struct subs_waiter *next = all->next;
        worker_call(all->w, all->fn, all->arg);
        free(all);
        all = next;
    }
}

/* One growing argv of channel names for one command on one shard. */
struct subs_cmd {
    const char **argv;
    size_t *lens;
    char **owned;
    int argc, cap;
};

static bool subs_cmd_add(struct subs_cmd *c, const char *word, bool own)
{
    if (c->argc == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        const char **argv = realloc(c->argv, (size_t)cap * sizeof(*argv));
        if (argv)
            c->argv = argv;
        size_t *lens = realloc(c->lens, (size_t)cap * sizeof(*lens));
        if (lens)
            c->lens = lens;
        char **owned = realloc(c->owned, (size_t)cap * sizeof(*owned));
        if (owned)
            c->owned = owned;
        if (!argv || !lens || !owned)
            return false;
        c->cap = cap;
    }
    char *copy = own ? strdup(word) : NULL;
    if (own && !copy)
        return false;
    c->argv[c->argc] = own ? copy : word;
    c->lens[c->argc] = strlen(word);
    c->owned[c->argc] = copy;
    c->argc++;
    return true;
}

/* Send C (if it names any channel) on SH's subscriber link and free it. */
static void subs_cmd_send(struct redis_shard *sh, struct subs_cmd *c)
{
    struct redis_link *link = sh->bus_link;
    if (c->argc > 1 && link && link->up && link->ac &&
        redisAsyncCommandArgv(link->ac, subs_reply_fn, sh, c->argc, c->argv, c->lens) != REDIS_OK)
        log_warn("redis: %s of %d rooms not sent", c->argv[0], c->argc - 1);
    for (int i = 0; i < c->argc; i++)
        free(c->owned[i]);
    free(c->argv);
    free(c->lens);
    free(c->owned);
    *c = (struct subs_cmd){0};
}

/* The flush: every room whose wish changed, and whose last command was
 * answered, goes into its shard's one SUBSCRIBE or one UNSUBSCRIBE (a room
 * still in flight is looked at again on its reply); the rooms of a shard
 * with a command in flight stay dirty until its last reply (subs_busy). */
static void subs_flush(evutil_socket_t fd, short what, void *arg)
{
    struct subs_cmd sub[REDIS_MAX_URLS] = {{0}}, unsub[REDIS_MAX_URLS] = {{0}};
    struct subs_waiter *ready = NULL;
    char ch[1024];
    bool busy[REDIS_MAX_URLS];
    pthread_mutex_lock(&subs_lock);
    for (int i = 0; i < subs_nshards; i++)
        busy[i] = subs_busy[i] > 0;
    struct subs_room *r = subs_dirty, *later = NULL;
    subs_dirty = NULL;
    while (r) {
        struct subs_room *next = r->dirty_next;
        struct redis_link *link = subs_shards[r->shard].bus_link;
        bool want = r->refs > 0, up = link && link->up;
        if (busy[r->shard] && up && !r->in_flight && want != r->confirmed) {
            r->dirty_next = later; /* after its shard's command in flight */
            later = r;
            r = next;
            continue;
        }
        r->dirty = false;
        if (!r->in_flight && want != r->confirmed && up) {
            struct subs_cmd *c = want ? &sub[r->shard] : &unsub[r->shard];
            if ((c->argc > 0 || subs_cmd_add(c, want ? "SUBSCRIBE" : "UNSUBSCRIBE", false)) &&
                subs_cmd_add(c, redis_subs_channel(ch, sizeof(ch), r->name), true))
                subs_in_flight(r, true);
        }
        /* link down: the link's up handler subscribes what is wanted then */
        subs_collect(&ready, subs_settled(r, !link || !link->up));
        subs_maybe_free(r);
        r = next;
    }
    subs_dirty = later;
    pthread_mutex_unlock(&subs_lock);
    for (int i = 0; i < subs_nshards; i++) {
        subs_cmd_send(&subs_shards[i], &sub[i]);
        subs_cmd_send(&subs_shards[i], &unsub[i]);
    }
    subs_run(ready);
}

void redis_subs_start(struct event_base *base, struct redis_shard *shards, int n,
                      redisCallbackFn *reply)
{
    pthread_mutex_lock(&subs_lock);
    subs_shards = shards;
    subs_nshards = n;
    subs_reply_fn = reply;
    subs_flush_ev = event_new(base, -1, 0, subs_flush, NULL);
    pthread_mutex_unlock(&subs_lock);
}

void redis_subs_stop(void)
{
    pthread_mutex_lock(&subs_lock);
    if (subs_flush_ev)
        event_free(subs_flush_ev);
    subs_flush_ev = NULL;
    struct subs_room *r, *tmp;
    HASH_ITER(hh, subs_rooms, r, tmp)
    {
        HASH_DEL(subs_rooms, r);
        while (r->waiters) {
            struct subs_waiter *next = r->waiters->next;
            free(r->waiters);
            r->waiters = next;
        }
        free(r);
    }
    subs_dirty = NULL;
    memset(subs_busy, 0, sizeof(subs_busy));
    atomic_store(&subs_confirmed, 0);
    pthread_mutex_unlock(&subs_lock);
}

void redis_subs_resubscribe(struct redis_shard *sh)
{
    struct subs_cmd c = {0};
    struct subs_waiter *ready = NULL;
    char ch[1024];
    pthread_mutex_lock(&subs_lock);
    struct subs_room *r, *tmp;
    HASH_ITER(hh, subs_rooms, r, tmp)
    {
        if (r->shard != sh->index)
            continue;
        if (r->confirmed)
            atomic_fetch_sub(&subs_confirmed, 1);
        r->confirmed = false; /* a new connection: nothing yet */
        subs_in_flight(r, false);
        if (r->refs > 0 && (c.argc > 0 || subs_cmd_add(&c, "SUBSCRIBE", false)) &&
            subs_cmd_add(&c, redis_subs_channel(ch, sizeof(ch), r->name), true))
            subs_in_flight(r, true);
        subs_collect(&ready, subs_settled(r, false));
        subs_maybe_free(r);
    }
    pthread_mutex_unlock(&subs_lock);
    if (c.argc > 1)
        log_info("redis: re-subscribing %d rooms on %s", c.argc - 1, sh->ep.shown);
    subs_cmd_send(sh, &c);
    subs_run(ready);
}

bool redis_subs_reply(struct redis_shard *sh, const char *channel, size_t len, bool subscribed)
{
    const char *prefix = settings.redis_prefix;
    size_t plen = strlen(prefix);
    if (len < plen + 5 + 4 || memcmp(channel, prefix, plen) != 0 ||
        memcmp(channel + plen, "room:", 5) != 0 || memcmp(channel + len - 4, ":bus", 4) != 0)
        return false;
    char *room = strndup(channel + plen + 5, len - plen - 5 - 4);
    if (!room)
        return true;
    struct subs_waiter *ready = NULL;
    pthread_mutex_lock(&subs_lock);
    struct subs_room *r;
    HASH_FIND_STR(subs_rooms, room, r);
    if (r && r->shard == sh->index) {
        if (r->confirmed != subscribed)
            atomic_fetch_add(&subs_confirmed, subscribed ? 1 : -1);
        r->confirmed = subscribed;
        subs_in_flight(r, false);
        if ((r->refs > 0) != r->confirmed)
            subs_mark(r); /* the wish changed while the command was out */
        subs_collect(&ready, subs_settled(r, false));
        subs_maybe_free(r);
    }
    pthread_mutex_unlock(&subs_lock);
    free(room);
    subs_run(ready);
    return true;
}

void redis_subs_lost(struct redis_shard *sh)
{
    struct subs_waiter *ready = NULL;
    pthread_mutex_lock(&subs_lock);
    struct subs_room *r, *tmp;
    HASH_ITER(hh, subs_rooms, r, tmp)
    {
        if (r->shard != sh->index || (!r->confirmed && !r->in_flight && !r->waiters))
            continue;
        if (r->confirmed)
            atomic_fetch_sub(&subs_confirmed, 1);
        r->confirmed = false;
        subs_in_flight(r, false);
        subs_collect(&ready, subs_settled(r, true));
        subs_maybe_free(r);
    }
    pthread_mutex_unlock(&subs_lock);
    subs_run(ready);
}

long redis_subs_count(void)
{
    return atomic_load(&subs_confirmed);
}
