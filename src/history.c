/* history.c -- a room's stream and the messages it keeps (see history.h).
 *
 * The ring
 * --------
 * A stream keeps its numbered messages in a ring that grows by doubling up
 * to the room's size; the oldest entry goes when the ring is full, when it
 * outlived the ttl, or when history_memory is reached.  An entry holds a
 * reference to the very message the fan-out sent, so keeping a message
 * costs its entry and the reference, not a copy.
 *
 * The memory cap
 * --------------
 * Every stream is on one list under streams_lock.  A stream that numbers a
 * message while all histories together hold more than history_memory drops,
 * down to a low-water mark, the oldest messages of the largest histories.
 * It holds its own lock at that moment, so other streams are only ever
 * trylocked (a busy one is skipped, and the caller trims itself instead):
 * the lock order is a stream's lock, then streams_lock, then trylocks. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "history.h"
#include "msg.h"

/* Below the cap by this fraction after an eviction, so that a flood at the
 * cap scans the streams once per 1/16 of the cap, not once per message. */
#define HISTORY_LOW_WATER_DIVISOR 16
/* The ring's first capacity: most rooms never fill a big one. */
#define HISTORY_RING_INITIAL 8

static pthread_mutex_t streams_lock = PTHREAD_MUTEX_INITIALIZER;
static struct history *streams;
static _Atomic size_t total_bytes;
static _Atomic uint64_t total_messages, recoveries_ok, recoveries_lost;

/* What keeping M costs: the entry, and the message it shares. */
static size_t entry_cost(const struct msg *m)
{
    return sizeof(struct history_entry) + sizeof(struct msg) + m->len + 2;
}

void history_epoch_new(char *out)
{
    unsigned char r[HISTORY_EPOCH_LEN / 2];
    if (RAND_bytes(r, sizeof(r)) != 1) { /* never on Linux; still unique enough */
        uint64_t t = (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)out;
        memcpy(r, &t, sizeof(r) < sizeof(t) ? sizeof(r) : sizeof(t));
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static void new_epoch(struct history *h)
{
    history_epoch_new(h->epoch);
}

int history_init(struct history *h)
{
    memset(h, 0, sizeof(*h));
    if (pthread_mutex_init(&h->lock, NULL) != 0)
        return -1;
    h->size_set = -1;
    h->ttl_set = -1;
    new_epoch(h);
    pthread_mutex_lock(&streams_lock);
    h->next = streams;
    if (streams)
        streams->prev = h;
    streams = h;
    pthread_mutex_unlock(&streams_lock);
    return 0;
}

static void drop_oldest(struct history *h)
{
    struct history_entry *e = &h->ring[h->head];
    size_t cost = entry_cost(e->msg);
    atomic_fetch_sub_explicit(&h->bytes, cost, memory_order_relaxed);
    atomic_fetch_sub_explicit(&total_bytes, cost, memory_order_relaxed);
    atomic_fetch_sub_explicit(&total_messages, 1, memory_order_relaxed);
    msg_unref(e->msg);
    e->msg = NULL;
    h->head = (h->head + 1) % h->cap;
    h->n--;
}

static void drop_all(struct history *h)
{
    while (h->n > 0)
        drop_oldest(h);
}

void history_destroy(struct history *h)
{
    pthread_mutex_lock(&streams_lock);
    if (h->prev)
        h->prev->next = h->next;
    else
        streams = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&streams_lock);
    drop_all(h);
    free(h->ring);
    pthread_mutex_destroy(&h->lock);
}

long history_size(const struct history *h)
{
    return h->size_set >= 0 ? h->size_set : settings.history_size;
}

long history_ttl(const struct history *h)
{
    return h->ttl_set >= 0 ? h->ttl_set : settings.history_ttl;
}

bool history_on(const struct history *h)
{
    return history_size(h) > 0;
}

/* Drop the entries older than the ttl (the oldest come first). */
static void trim_expired(struct history *h, int64_t now)
{
    int64_t oldest_kept = now - history_ttl(h) * 1000;
    while (h->n > 0 && h->ring[h->head].kept_at <= oldest_kept)
        drop_oldest(h);
}

static void trim_to_size(struct history *h)
{
    long size = history_size(h);
    while (h->n > 0 && (long)h->n > (size > 0 ? size : 0))
        drop_oldest(h);
}

void history_configure(struct history *h, long size, long ttl)
{
    h->size_set = size;
    h->ttl_set = ttl;
    trim_to_size(h);
    trim_expired(h, now_ms());
}

/* Room for one more entry: the ring doubles up to the room's size,
 * re-laid from its oldest entry. */
static bool ring_reserve(struct history *h, long size)
{
    if (h->n < h->cap)
        return true;
    uint32_t cap = h->cap ? h->cap * 2 : HISTORY_RING_INITIAL;
    if ((long)cap > size)
        cap = (uint32_t)size;
    if (cap <= h->cap)
        return h->n < h->cap;
    struct history_entry *ring = malloc(cap * sizeof(*ring));
    if (!ring)
        return false;
    for (uint32_t i = 0; i < h->n; i++)
        ring[i] = h->ring[(h->head + i) % h->cap];
    free(h->ring);
    h->ring = ring;
    h->cap = cap;
    h->head = 0;
    return true;
}

/* All histories hold more than history_memory: drop the oldest messages of
 * the largest ones (SELF is locked by the caller) down to the low water. */
static void enforce_memory_cap(struct history *self)
{
    long cap = settings.history_memory;
    if (cap <= 0 || atomic_load_explicit(&total_bytes, memory_order_relaxed) <= (size_t)cap)
        return;
    size_t low = (size_t)cap - (size_t)cap / HISTORY_LOW_WATER_DIVISOR;
    pthread_mutex_lock(&streams_lock);
    while (atomic_load_explicit(&total_bytes, memory_order_relaxed) > low) {
        struct history *big = NULL;
        size_t big_bytes = 0, second = 0;
        for (struct history *s = streams; s; s = s->next) {
            size_t b = atomic_load_explicit(&s->bytes, memory_order_relaxed);
            if (b > big_bytes) {
                second = big_bytes;
                big_bytes = b;
                big = s;
            } else if (b > second)
                second = b;
        }
        if (!big)
            break;
        bool locked = big == self || pthread_mutex_trylock(&big->lock) == 0;
        struct history *victim = locked ? big : self;
        size_t floor = victim == big ? second : 0;
        if (victim->n == 0) {
            if (locked && big != self)
                pthread_mutex_unlock(&big->lock);
            break; /* the busy one trims itself when it next numbers */
        }
        /* In place of a busy largest one, this stream gives up its oldest but keeps its
         * newest: the busy one trims itself when it next numbers. */
        uint32_t keep = victim == big ? 0 : 1;
        if (victim->n <= keep) {
            if (locked && big != self)
                pthread_mutex_unlock(&big->lock);
            break;
        }
        do
            drop_oldest(victim);
        while (victim->n > keep && atomic_load_explicit(&total_bytes, memory_order_relaxed) > low &&
               atomic_load_explicit(&victim->bytes, memory_order_relaxed) > floor);
        if (locked && big != self)
            pthread_mutex_unlock(&big->lock);
    }
    pthread_mutex_unlock(&streams_lock);
}

struct msg *history_number(const struct msg *m, uint64_t offset)
{
    char tail[48];
    int tlen = snprintf(tail, sizeof(tail), ",\"offset\":%llu}", (unsigned long long)offset);
    if (m->len == 0 || m->data[m->len - 1] != '}')
        return NULL;
    size_t body = m->len - 1;
    struct msg *n = msg_alloc(body + (size_t)tlen);
    if (!n)
        return NULL;
    memcpy(n->data, m->data, body);
    memcpy(n->data + body, tail, (size_t)tlen);
    n->offset = offset;
    return n;
}

void history_resume(struct history *h)
{
    if (h->numbering)
        return;
    if (h->top > 0) { /* back on after a message went unnumbered */
        drop_all(h);
        h->top = 0;
        new_epoch(h);
    }
    h->numbering = true;
}

struct msg *history_keep(struct history *h, const struct msg *m)
{
    long size = history_size(h);
    if (size <= 0) {
        h->numbering = false; /* this message goes unnumbered: the stream breaks */
        return NULL;
    }
    history_resume(h);
    int64_t now = now_ms();
    trim_expired(h, now);
    struct msg *numbered = history_number(m, h->top + 1);
    if (!numbered)
        return NULL;
    h->top++;
    while (h->n > 0 && (long)h->n >= size)
        drop_oldest(h);
    if (!ring_reserve(h, size))
        return numbered; /* numbered and sent, not kept: a recovery will say lost */
    struct history_entry *e = &h->ring[(h->head + h->n) % h->cap];
    e->offset = h->top;
    e->kept_at = now;
    e->msg = msg_ref(numbered);
    h->n++;
    size_t cost = entry_cost(numbered);
    atomic_fetch_add_explicit(&h->bytes, cost, memory_order_relaxed);
    atomic_fetch_add_explicit(&total_bytes, cost, memory_order_relaxed);
    atomic_fetch_add_explicit(&total_messages, 1, memory_order_relaxed);
    enforce_memory_cap(h);
    return numbered;
}

void history_position(const struct history *h, struct history_position *pos)
{
    memcpy(pos->epoch, h->epoch, sizeof(pos->epoch));
    pos->offset = h->top;
}

/* Copy references to the kept entries from index FIRST (0: the oldest). */
static void collect(const struct history *h, uint32_t first, struct msg ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (first >= h->n)
        return;
    struct msg **ms = malloc((h->n - first) * sizeof(*ms));
    if (!ms)
        return;
    for (uint32_t i = first; i < h->n; i++)
        ms[(*n)++] = msg_ref(h->ring[(h->head + i) % h->cap].msg);
    *out = ms;
}

bool history_since(struct history *h, const struct history_position *since, struct msg ***out,
                   size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!history_on(h) || (!h->numbering && h->top > 0))
        return false; /* off, or a message went unnumbered since */
    if (strcmp(since->epoch, h->epoch) != 0 || since->offset > h->top)
        return false;
    trim_expired(h, now_ms());
    uint64_t first_kept = h->n ? h->ring[h->head].offset : h->top + 1;
    if (since->offset + 1 < first_kept)
        return false; /* some of what came after SINCE is gone */
    collect(h, (uint32_t)(since->offset + 1 - first_kept), out, n);
    return since->offset == h->top || *n > 0; /* out of memory says lost */
}

void history_last(struct history *h, long limit, struct msg ***out, size_t *n)
{
    trim_expired(h, now_ms());
    uint32_t first = (limit < 0 || (uint64_t)limit >= h->n) ? 0 : h->n - (uint32_t)limit;
    collect(h, first, out, n);
}

void history_sweep(void)
{
    int64_t now = now_ms();
    pthread_mutex_lock(&streams_lock);
    for (struct history *s = streams; s; s = s->next) {
        if (atomic_load_explicit(&s->bytes, memory_order_relaxed) == 0)
            continue;
        if (pthread_mutex_trylock(&s->lock) != 0)
            continue;
        trim_expired(s, now);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&streams_lock);
}

bool history_parse_since(json_object *o, struct history_position *out)
{
    json_object *epoch, *offset;
    if (!json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, "epoch", &epoch) ||
        !json_object_is_type(epoch, json_type_string) ||
        !json_object_object_get_ex(o, "offset", &offset) ||
        !json_object_is_type(offset, json_type_int))
        return false;
    int64_t v = json_object_get_int64(offset);
    if (v < 0)
        return false;
    size_t len = (size_t)json_object_get_string_len(epoch);
    if (len == HISTORY_EPOCH_LEN)
        memcpy(out->epoch, json_object_get_string(epoch), len + 1);
    else
        out->epoch[0] = '\0'; /* no epoch looks like that: recovered:false */
    /* Past INT64_MAX json-c holds it unsigned: any such offset is past the
     * top, which answers recovered:false. */
    out->offset = v == INT64_MAX ? json_object_get_uint64(offset) : (uint64_t)v;
    return true;
}

void history_read_free(struct history_read *r)
{
    for (size_t i = 0; i < r->nreplay; i++)
        msg_unref(r->replay[i]);
    free(r->replay);
    r->replay = NULL;
    r->nreplay = 0;
}

uint64_t history_offset_of(const char *json, size_t len)
{
    static const char key[] = ",\"offset\":";
    if (len < sizeof(key) + 1 || json[len - 1] != '}')
        return 0;
    size_t end = len - 1, start = end;
    while (start > 0 && json[start - 1] >= '0' && json[start - 1] <= '9')
        start--;
    if (start == end || end - start > 20 || start < sizeof(key) - 1 ||
        memcmp(json + start - (sizeof(key) - 1), key, sizeof(key) - 1) != 0)
        return 0;
    uint64_t v = 0;
    for (size_t i = start; i < end; i++)
        v = v * 10 + (uint64_t)(json[i] - '0');
    return v;
}

json_object *history_read_json(const char *room, const struct history_read *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "room", json_object_new_string(room));
    json_object *messages = json_object_new_array_ext((int)r->nreplay);
    json_tokener *tok = json_tokener_new();
    for (size_t i = 0; tok && i < r->nreplay; i++) {
        json_object *m = json_tokener_parse_ex(tok, r->replay[i]->data, (int)r->replay[i]->len);
        if (m)
            json_object_array_add(messages, m);
        json_tokener_reset(tok);
    }
    if (tok)
        json_tokener_free(tok);
    json_object_object_add(o, "messages", messages);
    if (r->has_position)
        json_object_object_add(o, "position", history_position_json(&r->position));
    if (r->since)
        json_object_object_add(o, "recovered", json_object_new_boolean(r->recovered));
    return o;
}

json_object *history_position_json(const struct history_position *pos)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "epoch", json_object_new_string(pos->epoch));
    json_object_object_add(o, "offset", json_object_new_uint64(pos->offset));
    return o;
}

void history_stats(struct history_stats *out)
{
    out->messages = atomic_load_explicit(&total_messages, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&total_bytes, memory_order_relaxed);
    out->recovered = atomic_load_explicit(&recoveries_ok, memory_order_relaxed);
    out->lost = atomic_load_explicit(&recoveries_lost, memory_order_relaxed);
}

void history_count_recovery(bool recovered)
{
    atomic_fetch_add_explicit(recovered ? &recoveries_ok : &recoveries_lost, 1,
                              memory_order_relaxed);
}
