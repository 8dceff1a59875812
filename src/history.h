/* history.h -- a room's stream: its epoch, its offsets and the messages it
 * keeps for clients that come back (PROTOCOL.md "History and recovery").
 *
 * Every room of the registry has one.  A numbered message (a say, a server
 * broadcast) gets the next offset and is kept in a ring bounded by the
 * room's size and ttl and by history_memory, the cap on what all rooms keep
 * together.  The epoch names one numbering: it is new whenever the offsets
 * start again at 1 (a new room, a restart, history turned back on).
 *
 * Locking: h->lock is the room's stream lock.  The registry takes it (under
 * its shard lock) around numbering and fan-out, and around a connection
 * starting to hear the room, which is what makes a recovery exact: a message
 * is numbered either before the position a joiner gets (and replayed) or
 * after it (and delivered live).  Every history_* function below but
 * history_init, history_destroy and history_sweep expects the caller to
 * hold h->lock. */
#ifndef ROOMD_HISTORY_H
#define ROOMD_HISTORY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

struct msg;

/* An epoch is 12 hex digits (48 random bits): short on the wire, and two
 * numberings of one room never meet in practice. */
#define HISTORY_EPOCH_LEN 12

/* The largest per-room size and ttl the server side may set (the config's
 * own ranges: roomd.conf(5)). */
#define HISTORY_SIZE_MAX 100000000L
#define HISTORY_TTL_MAX 100000000L

/* Where a client was in a stream: the epoch and the offset of the last
 * message it had. */
struct history_position {
    char epoch[HISTORY_EPOCH_LEN + 1];
    uint64_t offset;
};

/* What reading a stream gives: where it is and, when asked with SINCE,
 * the messages after it (references the caller drops: history_read_free).
 * A connection starting to hear a room gets it under the stream lock
 * (registry_hear), or from the store that keeps the stream (Redis). */
struct history_read {
    const struct history_position *since; /* in: NULL, no recovery asked */
    bool has_position;                    /* out: history is on in the room */
    struct history_position position;
    bool recovered;
    struct msg **replay;
    size_t nreplay;
};
void history_read_free(struct history_read *r);

struct history_entry {
    uint64_t offset;
    int64_t kept_at; /* ms since the epoch, for the ttl */
    struct msg *msg; /* the numbered message, shared with the fan-out */
};

struct history {
    pthread_mutex_t lock;
    char epoch[HISTORY_EPOCH_LEN + 1];
    uint64_t top;   /* offset of the last message numbered; 0: none yet */
    long size_set;  /* the server side's size for this room; -1: history_size */
    long ttl_set;   /* likewise, seconds; -1: history_ttl */
    bool numbering; /* offsets were on at the last message (see history_keep) */
    struct history_entry *ring;
    uint32_t cap, head, n;       /* ring capacity, oldest entry, entries kept */
    _Atomic size_t bytes;        /* what the entries cost (read unlocked by the cap) */
    struct history *prev, *next; /* every stream, for the memory cap */
};

/* Start H's stream with a fresh epoch, kept messages none; link it into the
 * list the memory cap walks. */
int history_init(struct history *h);
/* Drop everything H keeps and unlink it (no other thread may still hold it). */
void history_destroy(struct history *h);

/* The room's size and ttl now (its own, or the configured defaults). */
long history_size(const struct history *h);
long history_ttl(const struct history *h);
/* Whether messages in this room are numbered now (size > 0). */
bool history_on(const struct history *h);
/* Set this room's own size and ttl (-1: back to the defaults); trims. */
void history_configure(struct history *h, long size, long ttl);

/* Number M (an unnumbered chat message) with the next offset and keep it:
 * returns the numbered copy (a new reference, "offset":N as its last key)
 * or NULL when history is off for this room or memory ran out. */
struct msg *history_keep(struct history *h, const struct msg *m);
/* The position a connection starting to hear the room now is at. */
void history_position(const struct history *h, struct history_position *pos);

/* The kept messages after SINCE, in order: whether they are all there
 * (same epoch, nothing after SINCE dropped, SINCE not past the top).  When
 * so, *OUT (malloc'd, the caller unrefs each and frees it) holds them. */
bool history_since(struct history *h, const struct history_position *since, struct msg ***out,
                   size_t *n);
/* The last LIMIT kept messages (LIMIT < 0: all), in order, as above. */
void history_last(struct history *h, long limit, struct msg ***out, size_t *n);

/* Drop what outlived its ttl from every stream (the main thread, once a
 * second; a stream busy right now trims itself when it next numbers). */
void history_sweep(void);

/* The offset of a numbered chat message's JSON text (its last key), or 0. */
uint64_t history_offset_of(const char *json, size_t len);
/* Start numbering again if a message went unnumbered since the last one
 * (a new epoch, nothing kept): positions given now stay good. */
void history_resume(struct history *h);

/* A numbered copy of M at OFFSET ("offset":N added as the last key). */
struct msg *history_number(const struct msg *m, uint64_t offset);
/* Parse a "since" object {"epoch":E,"offset":N}; false when malformed (not
 * an object, epoch not a string of at most HISTORY_EPOCH_LEN bytes, offset
 * not a non-negative integer). */
bool history_parse_since(json_object *o, struct history_position *out);
/* A fresh epoch (HISTORY_EPOCH_LEN hex digits and a NUL) into OUT. */
void history_epoch_new(char *out);
/* {"room":R,"messages":[...],"position":{...}} of what R read (the
 * messages parsed back into objects); "recovered" too when R had a since. */
json_object *history_read_json(const char *room, const struct history_read *r);
/* {"epoch":E,"offset":N} */
json_object *history_position_json(const struct history_position *pos);

/* What all histories keep, and how recoveries went, for /api/stats. */
struct history_stats {
    uint64_t messages, bytes, recovered, lost;
};
void history_stats(struct history_stats *out);
/* Count one recovery that succeeded or failed. */
void history_count_recovery(bool recovered);

#endif
