/* store.h -- where shared room state lives, behind an asynchronous face.
 *
 * Every operation takes a completion callback that runs on the calling
 * thread once the state change is made, so a reply always goes out after
 * the change it reports.  The memory store (store_memory.c) answers at once,
 * from inside the call; a networked store answers later from the same
 * thread's event loop.  Verbs are written only against this interface.
 *
 * Server-side room management (add, delete, patterns, status) answers at
 * once and may be called from any thread: the Redis store does it with a
 * blocking connection of its own, under a mutex. */
#ifndef ROOMD_STORE_H
#define ROOMD_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "errors.h"
#include "roomd.h"

struct worker;
struct msg;
struct history_position;
struct history_read;
struct store_bus_stats;

struct store_result {
    enum roomd_err err;
    bool flag;                 /* leave: a member was removed */
    uint64_t uid;              /* join, listen: the room's generation */
    int64_t joined_at;         /* join */
    json_object *data;         /* room_view: the data (the callback owns it) */
    uint64_t offset;           /* publish: the offset the message got; 0 none */
    struct history_read *read; /* stream_read: what was read (freed after the callback) */
};

typedef void (*store_cb)(const struct store_result *res, void *ctx);

/* The operations a store provides; store.c forwards each store_* call to
 * the store the configuration chose (store_memory.c, store_redis.c). */
struct store_ops {
    int (*open)(void);
    void (*close)(void);
    void (*worker_start)(struct worker *w); /* on the main thread, before w runs */
    void (*worker_stop)(struct worker *w);  /* on w's thread, as it ends */
    void (*join)(struct worker *w, const char *room, const char *id, json_object *attrs,
                 store_cb cb, void *ctx);
    void (*leave)(struct worker *w, const char *room, uint64_t uid, const char *id, store_cb cb,
                  void *ctx);
    void (*check_listen)(struct worker *w, const char *room, json_object *attrs, store_cb cb,
                         void *ctx);
    void (*room_view)(struct worker *w, const char *room, uint64_t uid, long limit, store_cb cb,
                      void *ctx);
    void (*publish)(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                    uint64_t skip_serial, const char *skip_id, bool keep, store_cb cb, void *ctx);
    int (*room_add)(const char *room);
    bool (*room_del)(const char *room);
    bool (*room_exists)(const char *room);
    enum roomd_err (*room_set_pattern)(const char *room, json_object *pattern);
    json_object *(*room_status)(const char *room, long limit);
    json_object *(*room_list)(void);
    /* Send an operation on a connection this server does not have to the
     * server that has it; false when there is no such routing (NULL). */
    bool (*route_conn_call)(const char *conn_id, int op, const char *arg_json, const char *room,
                            bool force, roomd_result_cb cb, void *ud);
    /* Call FN (on the main thread) once the store is fully working; NULL:
     * at once. */
    void (*when_ready)(void (*fn)(void));
    /* Whether W's operations on ROOM (NULL: on every room) can reach the
     * store now; NULL: always. */
    bool (*available)(const struct worker *w, const char *room);
    /* Whether rooms' streams are numbered and kept (PROTOCOL.md "History
     * and recovery"): positions are given and recoveries answered. */
    bool keeps_history;
    /* A store that keeps the streams itself (Redis) reads one here: the
     * position and, after SINCE or (MESSAGES) the last LIMIT, the kept
     * messages; NULL: the registry's streams, read under their locks. */
    void (*stream_read)(struct worker *w, const char *room, const struct history_position *since,
                        long limit, bool messages, store_cb cb, void *ctx);
    /* The server side's history settings and kept messages (api.h); NULL:
     * the registry's. */
    json_object *(*room_history)(const char *room, long size, long ttl);
    json_object *(*room_messages)(const char *room, long limit);
    /* The bus's figures, from any thread; NULL: no bus. */
    void (*bus_stats)(struct store_bus_stats *out);
    /* A worker's first local recipient (member or listener) of ROOM came
     * (DELTA +1) or its last went (-1), on that worker's thread: a bus
     * store subscribes to the room only while some worker hears it; NULL:
     * nothing to do. */
    void (*room_heard)(const char *room, int delta);
};

/* What a networked store's bus does, for /metrics and /api/stats. */
struct store_bus_stats {
    int shards;         /* Redis servers; 0: no bus (the memory store) */
    uint64_t up;        /* bit N: shard N's link is up */
    uint64_t received;  /* chat messages received from the bus, all shards */
    long subscriptions; /* channels subscribed now */
};

extern const struct store_ops store_memory_ops;
extern const struct store_ops store_redis_ops;

/* Choose and open the store named by settings.store. */
int store_open(void);
void store_close(void);
void store_worker_start(struct worker *w);
void store_worker_stop(struct worker *w);

/* Client-side operations, on a worker's thread. */
void store_join(struct worker *w, const char *room, const char *id, json_object *attrs, store_cb cb,
                void *ctx);
void store_leave(struct worker *w, const char *room, uint64_t uid, const char *id, store_cb cb,
                 void *ctx);
void store_check_listen(struct worker *w, const char *room, json_object *attrs, store_cb cb,
                        void *ctx);
void store_room_view(struct worker *w, const char *room, uint64_t uid, long limit, store_cb cb,
                     void *ctx);
/* Run FN on the main thread once the store is fully working (Redis: the
 * bus subscription is confirmed); at once for the memory store. */
void store_when_ready(void (*fn)(void));
/* Route a connection operation to another server (see store_ops). */
bool store_route_conn_call(const char *conn_id, int op, const char *arg_json, const char *room,
                           bool force, roomd_result_cb cb, void *ud);
/* Whether worker W can reach the store now (say needs it to reach every
 * server: while it cannot, say answers "store unavailable"). */
bool store_available(const struct worker *w);
/* Whether worker W can reach room ROOM's part of the store now (a sharded
 * store: the room's shard). */
bool store_room_available(const struct worker *w, const char *room);
/* Whether room NAME is still generation UID (a cheap local check). */
bool store_room_alive(const char *room, uint64_t uid);
/* Deliver M to room ROOM's members and listeners but the connection
 * SKIP_SERIAL (whose id, for other servers, is SKIP_ID; both may be 0/NULL).
 * KEEP: M is a say or a server broadcast, numbered and kept by the room's
 * history; CB (may be NULL) gets the offset it got: at once with the memory
 * store, later (on W's thread) when the store publishes remotely. */
void store_publish(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                   uint64_t skip_serial, const char *skip_id, bool keep, store_cb cb, void *ctx);
/* Whether the store numbers and keeps rooms' streams. */
bool store_keeps_history(void);
/* Whether streams are read from the store (store_stream_read, later)
 * rather than from the registry (at once, under the stream lock). */
bool store_reads_streams(void);
void store_stream_read(struct worker *w, const char *room, const struct history_position *since,
                       long limit, bool messages, store_cb cb, void *ctx);
/* Room ROOM's history settings after setting SIZE and TTL (-1: unchanged)
 * and its last LIMIT kept messages; NULL when there is no such room. */
json_object *store_room_history(const char *room, long size, long ttl);
json_object *store_room_messages(const char *room, long limit);

/* A worker began (DELTA +1) or stopped (-1) hearing ROOM (store_ops). */
void store_room_heard(const char *room, int delta);
/* The bus's figures (all zero without a bus); any thread. */
void store_bus_stats(struct store_bus_stats *out);

/* Server-side operations, any thread. */
int store_room_add(const char *room);  /* 1 created, 0 existed */
bool store_room_del(const char *room); /* members hear the notice */
bool store_room_exists(const char *room);
enum roomd_err store_room_set_pattern(const char *room, json_object *pattern);
/* roomStatus data (members of every server); a missing room: 0 members. */
json_object *store_room_status(const char *room, long limit);
/* The names of every room (of every server), as a JSON array. */
json_object *store_room_list(void);

#endif
