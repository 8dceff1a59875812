/* worker.h -- worker threads: one libevent base each, owning connections.
 *
 * Other threads never touch a worker's connections; they post a job to the
 * worker's queue and the worker runs it on its own thread (see worker.c). */
#ifndef ROOMD_WORKER_H
#define ROOMD_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "errors.h"

struct conn;
struct msg;
struct worker;
struct local_room;

enum transport { TRANSPORT_SOCKET, TRANSPORT_WEBSOCKET };

enum job_type {
    JOB_NEW_CONN,     /* take ownership of an accepted socket */
    JOB_DELIVER,      /* write a message to local recipients of a room */
    JOB_ROOM_DELETED, /* tell local members/listeners, drop listeners */
    JOB_CALL,         /* run a function on the worker's thread */
    JOB_SHUTDOWN,     /* say goodbye to everyone and stop */
};

typedef void (*job_fn)(struct worker *w, void *arg);

struct job {
    struct job *next;
    enum job_type type;
    union {
        struct {
            int fd;
            enum transport transport;
            bool tls;
            struct sockaddr_storage addr;
            socklen_t addrlen;
        } conn;
        struct {
            struct msg *msg;
            uint64_t room_uid;
            uint64_t skip_serial; /* connection that must not hear it; 0 none */
        } deliver;
        struct {
            job_fn fn;
            void *arg;
        } call;
    } u;
};

struct proxy_wait; /* conn_proxy.c */

struct worker {
    int index;
    pthread_t thread;
    struct event_base *base;
    struct proxy_wait *proxy_waits; /* sockets still sending their PROXY header */

    /* The queue: other threads append under qlock and write to wake_fd
     * when it was empty; the worker swaps the whole list out at once. */
    pthread_mutex_t qlock;
    struct job *qhead, *qtail;
    int wake_fd;
    struct event *wake_ev;

    struct event *reap_ev;     /* frees closed connections, outside callbacks */
    struct conn *reap_list;    /* closed, waiting to be freed */
    struct event *shutdown_ev; /* the deadline of a graceful stop */
    struct event *flush_ev;    /* writes pending output once per loop turn */
    struct conn *out_pending;  /* connections with output not yet written */
    struct conn *conns;        /* hash by serial: every live connection */
    struct local_room *rooms;  /* hash by room uid: local recipients */
    uint64_t *batched;         /* uids of the rooms with a batch this turn */
    uint32_t nbatched, batched_cap;
    bool stopping;
    void *store_state; /* the store's per-worker state (Redis: a connection) */

    /* Counters for /api/stats: written by this worker only, read by the
     * admin thread (relaxed atomics, one writer: no contention). */
    _Atomic uint64_t stat_requests;
    _Atomic uint64_t stat_delivered;
    _Atomic uint64_t stat_slow_dropped;
    _Atomic uint64_t stat_bytes_out;
    _Atomic uint64_t stat_connections;        /* live, owned by this worker */
    _Atomic uint64_t stat_errors[ERR__COUNT]; /* error replies by kind */
};

extern struct worker *workers;
extern int nworkers;

/* Create N workers with their bases and queues; start their threads. */
int workers_start(int n);
/* Post JOB_SHUTDOWN to every worker and wait for all threads to end. */
void workers_stop(void);
void workers_free(void);

/* Append JOB to W's queue and wake W.  Any thread. */
void worker_post(struct worker *w, struct job *job);
/* Run FN(w, ARG) on W's thread. */
void worker_call(struct worker *w, job_fn fn, void *arg);

/* M is for every local recipient of room UID on W but the connection
 * SKIP (0: none), on W's thread: into the room's batch of this loop turn
 * (fanout.c hands it here and in JOB_DELIVER). */
void worker_deliver(struct worker *w, uint64_t uid, struct msg *m, uint64_t skip);

/* Queue every room's batch of this loop turn to its local recipients now
 * (W's thread).  The flush event does it at the end of each turn; a
 * connection about to say goodbye has it done first. */
void worker_flush_batches(struct worker *w);

/* The local index: C hears room UID as a member and/or a listener. */
#define SUB_MEMBER 1u
#define SUB_LISTENER 2u
/* With HEARING (history.h), C's position comes back and, when it asked
 * with a since, the messages it missed: the caller sends them before
 * anything else C hears of the room.  With HOLD the store gives the
 * position later: until worker_release() what C would hear is held. */
struct history_read;
void worker_subscribe(struct worker *w, const char *name, uint64_t uid, struct conn *c,
                      unsigned flag, struct history_read *hearing, bool hold);
/* C's position in room UID is known (R; NULL or no position: the store
 * keeps none): what was held for C and is after it goes out now, in order,
 * and what comes later up to it is left out. */
void worker_release(struct worker *w, uint64_t uid, struct conn *c, const struct history_read *r);
void worker_unsubscribe(struct worker *w, const char *name, uint64_t uid, struct conn *c,
                        unsigned flag);

/* Count one event in a worker's statistics (its own thread only). */
#define worker_count(w, field) atomic_fetch_add_explicit(&(w)->field, 1, memory_order_relaxed)

/* The main thread's event base (admin API); other threads hand it work with
 * event_base_once(), which is safe because main_base has locking on. */
extern struct event_base *main_base;

/* Find a live connection of W by serial (W's thread only). */
struct conn *worker_find_conn(struct worker *w, uint64_t serial);

#endif
