/* worker.c -- worker threads, their job queues and the local room index.
 *
 * Who owns what
 * -------------
 * - Each worker owns its event_base, its connections (w->conns) and its
 *   local index (w->rooms: room uid -> the local connections that hear it).
 *   Only the worker's own thread reads or writes them, and the same goes
 *   for w->out_pending: the connections with output to write at the end of
 *   the loop turn (flush_ev; see "Output" in conn.c).
 * - Other threads talk to a worker only through worker_post(): a job list
 *   under w->qlock plus an eventfd that wakes the base (memcached's shape).
 * - The room registry (registry.c) is shared and has its own locks; a
 *   worker holds qlock only to link or unlink jobs, never while calling the
 *   registry.  The fan-out posts jobs under a room's stream lock (so that
 *   offsets reach each worker in order): the lock order is shard lock,
 *   stream lock, qlock.
 *
 * Fan-out (fanout.c): a message for a room becomes one job per worker that
 * has local recipients, each holding a reference to the one serialized
 * message.  On the worker it joins the room's batch for the loop turn,
 * which the flush event queues to each recipient as one buffer (see
 * "Batching"). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <uthash.h>

#include "config.h"
#include "conn.h"
#include "conn_proxy.h"
#include "log.h"
#include "msg.h"
#include "registry.h"
#include "store.h"
#include "worker.h"

/* How long a graceful stop waits for clients to take their goodbye. */
#define SHUTDOWN_GRACE_MS 800

struct worker *workers;
int nworkers;
struct event_base *main_base;

/* ---------------------------------------------------------------- queue */

void worker_post(struct worker *w, struct job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->qlock);
    bool was_empty = (w->qhead == NULL);
    if (w->qtail)
        w->qtail->next = job;
    else
        w->qhead = job;
    w->qtail = job;
    pthread_mutex_unlock(&w->qlock);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t rc = write(w->wake_fd, &one, sizeof(one));
        (void)rc; /* EAGAIN: the counter is already non-zero, w will wake */
    }
}

void worker_call(struct worker *w, job_fn fn, void *arg)
{
    struct job *job = calloc(1, sizeof(*job));
    if (!job) {
        log_error("out of memory posting a job to worker %d", w->index);
        return;
    }
    job->type = JOB_CALL;
    job->u.call.fn = fn;
    job->u.call.arg = arg;
    worker_post(w, job);
}

/* ----------------------------------------------------------- local index */

/* A room's local recipients are a dense array, so a delivery is a tight
 * loop over pointers instead of a walk over separately allocated hash
 * nodes.  Removal swaps the last slot in (O(1)); to find its slot, a
 * connection records it where it records the subscription: c->room_slot
 * for its room, the listen entry's slot for a listened room (both when it
 * is a member and a listener of the same room, which shares one slot).
 * The entry is found by uid in the connection's hash, so recording and
 * finding a slot is O(1) however many rooms the connection listens to. */
struct local_slot {
    struct conn *conn;
    unsigned flags; /* SUB_MEMBER | SUB_LISTENER */
};

/* What a room was told during this loop turn, not yet queued to anyone
 * (see "Batching" below): each message with the connection that must not
 * hear it. */
struct room_batch {
    struct msg **msgs;
    uint64_t *skips;
    uint32_t n, cap;
};

/* A connection that just started hearing a room with a position (see
 * "Positions" below): messages numbered up to FROM are not for it. */
struct fresh_hearer {
    struct conn *conn;
    uint64_t from;
    struct msg **held; /* SUB_HELD: what reached it before its position did */
    uint32_t nheld, held_cap;
};

struct local_room {
    UT_hash_handle hh;
    uint64_t uid;
    struct local_slot *slots;
    uint32_t nslots, cap;
    struct fresh_hearer *fresh; /* the slots flagged SUB_FRESH */
    uint32_t nfresh;
    struct room_batch batch;
    bool batched; /* in w->batched for this turn (its batch may be empty) */
    char name[];
};

/* A room's first slots: most rooms are small; the array doubles when it
 * fills and halves when three quarters are free. */
#define LOCAL_SLOTS_INITIAL 4

static struct local_room *local_room_find(struct worker *w, uint64_t uid)
{
    struct local_room *lr;
    HASH_FIND(hh, w->rooms, &uid, sizeof(uid), lr);
    return lr;
}

/* Record SLOT as C's place in room UID wherever C records that room. */
static void slot_record(struct conn *c, uint64_t uid, uint32_t slot)
{
    if (c->room_uid == uid)
        c->room_slot = slot;
    struct listen_entry *e = conn_listen_find_uid(c, uid);
    if (e)
        e->slot = slot;
}

static bool slot_is(const struct local_room *lr, uint32_t slot, const struct conn *c)
{
    return slot < lr->nslots && lr->slots[slot].conn == c;
}

/* C's slot in LR, or -1.  Each record is checked against the array, so a
 * record left over (leave_room clears room_uid before unsubscribing) or
 * not yet written is never trusted. */
static long slot_find(const struct local_room *lr, const struct conn *c)
{
    if (slot_is(lr, c->room_slot, c))
        return c->room_slot;
    const struct listen_entry *e = conn_listen_find_uid(c, lr->uid);
    if (e && slot_is(lr, e->slot, c))
        return e->slot;
    return -1;
}

static bool slots_resize(struct local_room *lr, uint32_t cap)
{
    struct local_slot *grown = realloc(lr->slots, cap * sizeof(*grown));
    if (!grown)
        return false;
    lr->slots = grown;
    lr->cap = cap;
    return true;
}

/* Count N deliveries of BYTES in all in W's statistics: once per batch or
 * job, not per recipient, so the fan-out loop touches no shared counter. */
static void count_deliveries(struct worker *w, uint64_t n, uint64_t bytes)
{
    if (n == 0)
        return;
    atomic_fetch_add_explicit(&w->stat_delivered, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->stat_bytes_out, bytes, memory_order_relaxed);
}

/* ------------------------------------------------------------- batching
 *
 * A busy room is told many things in one loop turn (a publisher's 64 KB of
 * says, a queue of jobs from other workers).  Queueing each message to each
 * member costs a reference, a queue slot and an iovec per member per
 * message.  Instead a room collects the turn's messages in its batch, and
 * the flush event lays them end to end once per transport and queues that
 * one buffer to each member: per member, one entry and one iovec per turn.
 *
 * Order stays exact because the batch is queued whenever what it would
 * reach changes: before a connection subscribes or unsubscribes (so it
 * hears precisely what was said while it was there), before the room's
 * deletion notice, before a goodbye.  A member that said some of the
 * batch, or a batch with too many speakers or too many bytes, gets the
 * messages one by one instead, its own left out. */

/* Messages a batch holds before it is queued early, and the most bytes
 * laid end to end (bigger batches are queued message by message). */
#define BATCH_MAX 1024
#define BATCH_COMBINE_MAX (256 * 1024)
/* Speakers in one batch whose members still get the combined buffer. */
#define BATCH_SPEAKERS_MAX 4

static bool batch_grow(struct room_batch *b)
{
    uint32_t cap = b->cap ? b->cap * 2 : 8;
    struct msg **msgs = realloc(b->msgs, cap * sizeof(*msgs));
    if (!msgs)
        return false;
    b->msgs = msgs;
    uint64_t *skips = realloc(b->skips, cap * sizeof(*skips));
    if (!skips)
        return false;
    b->skips = skips;
    b->cap = cap;
    return true;
}

/* Queue the batch's messages one by one to C, but those C said. */
static uint64_t batch_send_each(const struct room_batch *b, struct conn *c, uint64_t *bytes)
{
    uint64_t n = 0;
    for (uint32_t k = 0; k < b->n; k++)
        if (b->skips[k] != c->serial && conn_send_msg(c, b->msgs[k])) {
            n++;
            *bytes += b->msgs[k]->len;
        }
    return n;
}

/* ------------------------------------------------------------ positions
 *
 * A connection that starts hearing a room in a room with history gets a
 * position N (registry_hear): it must hear exactly the messages numbered
 * after N.  Those all reach its worker after it is counted, but messages
 * numbered before may still be on the way (in this worker's queue, from
 * when the room had other recipients here).  Its slot is flagged SUB_FRESH
 * with N until the first message after N reaches it: until then numbered
 * messages up to N are left out for it.  Offsets reach a worker in order
 * (registry_publish), so after that one nothing older can come. */

#define SUB_FRESH 4u
/* A connection whose position comes from the store later (Redis): what
 * reaches its slot meanwhile is held, and sent or dropped by offset once
 * the position is known (worker_release). */
#define SUB_HELD 8u

static struct fresh_hearer *fresh_find(struct local_room *lr, const struct conn *c)
{
    for (uint32_t i = 0; i < lr->nfresh; i++)
        if (lr->fresh[i].conn == c)
            return &lr->fresh[i];
    return NULL;
}

static void fresh_drop(struct local_room *lr, struct local_slot *slot)
{
    struct fresh_hearer *f = fresh_find(lr, slot->conn);
    if (f) {
        for (uint32_t i = 0; i < f->nheld; i++)
            msg_unref(f->held[i]);
        free(f->held);
        *f = lr->fresh[--lr->nfresh];
    }
    slot->flags &= ~(SUB_FRESH | SUB_HELD);
    if (lr->nfresh == 0) {
        free(lr->fresh);
        lr->fresh = NULL;
    }
}

/* Whether M is for the fresh hearer in SLOT; the first message past its
 * position makes it an ordinary slot. */
static bool fresh_wants(struct local_room *lr, struct local_slot *slot, const struct msg *m)
{
    if (m->offset == 0)
        return true; /* not numbered: announcements, notices */
    struct fresh_hearer *f = fresh_find(lr, slot->conn);
    if (f && m->offset <= f->from)
        return false;
    fresh_drop(lr, slot);
    return true;
}

/* Keep M for the held hearer in SLOT (see SUB_HELD). */
static void held_add(struct local_room *lr, struct local_slot *slot, struct msg *m)
{
    struct fresh_hearer *f = fresh_find(lr, slot->conn);
    if (!f)
        return;
    if (f->nheld == f->held_cap) {
        uint32_t cap = f->held_cap ? f->held_cap * 2 : 8;
        struct msg **grown = realloc(f->held, cap * sizeof(*grown));
        if (!grown) {
            log_error("out of memory: a message of '%s' is lost for a joiner", lr->name);
            return;
        }
        f->held = grown;
        f->held_cap = cap;
    }
    f->held[f->nheld++] = msg_ref(m);
}

/* Queue the batch's messages one by one to the fresh hearer in SLOT. */
static uint64_t batch_send_fresh(struct local_room *lr, struct local_slot *slot, uint64_t *bytes)
{
    const struct room_batch *b = &lr->batch;
    struct conn *c = slot->conn;
    uint64_t n = 0;
    for (uint32_t k = 0; k < b->n; k++) {
        if (b->skips[k] == c->serial)
            continue;
        if (slot->flags & SUB_HELD) {
            held_add(lr, slot, b->msgs[k]);
            continue;
        }
        if ((slot->flags & SUB_FRESH) && !fresh_wants(lr, slot, b->msgs[k]))
            continue;
        if (conn_send_msg(c, b->msgs[k])) {
            n++;
            *bytes += b->msgs[k]->len;
        }
    }
    return n;
}

/* Whether B may go out laid end to end: more than one message, from at
 * most BATCH_SPEAKERS_MAX connections (put in SPEAKERS) and of at most
 * BATCH_COMBINE_MAX bytes (*TOTAL). */
static bool batch_combinable(const struct room_batch *b, uint64_t *speakers, int *nspeakers,
                             uint64_t *total)
{
    *nspeakers = 0;
    *total = 0;
    if (b->n < 2)
        return false;
    for (uint32_t k = 0; k < b->n; k++) {
        *total += b->msgs[k]->len;
        bool known = b->skips[k] == 0; /* the server's own: nobody to skip */
        for (int i = 0; i < *nspeakers && !known; i++)
            known = speakers[i] == b->skips[k];
        if (!known && *nspeakers == BATCH_SPEAKERS_MAX)
            return false;
        if (!known)
            speakers[(*nspeakers)++] = b->skips[k];
    }
    return *total <= BATCH_COMBINE_MAX;
}

/* The combined buffer of B for C's transport, made on first use; one per
 * transport (the line protocol and WebSocket).  NULL: out of memory. */
struct batch_framing {
    const struct conn_proto *proto[2];
    struct msg *framed[2];
};

static struct msg *batch_framed_for(struct batch_framing *f, const struct room_batch *b,
                                    const struct conn *c)
{
    for (int t = 0; t < 2; t++) {
        if (!f->proto[t]) {
            f->proto[t] = c->proto;
            f->framed[t] = conn_frame_batch(c, b->msgs, b->n);
        }
        if (f->proto[t] == c->proto)
            return f->framed[t];
    }
    return NULL;
}

/* Queue LR's batch to every local recipient and empty it: the combined
 * buffer to those who said none of it, message by message to the others
 * (or to everyone, when the batch does not combine). */
static void batch_flush(struct worker *w, struct local_room *lr)
{
    struct room_batch *b = &lr->batch;
    if (b->n == 0)
        return;
    uint64_t speakers[BATCH_SPEAKERS_MAX], total = 0, delivered = 0, bytes = 0;
    int nspeakers = 0;
    bool combine = lr->nslots > 1 && batch_combinable(b, speakers, &nspeakers, &total);
    struct batch_framing framing = {{NULL, NULL}, {NULL, NULL}};
    for (uint32_t i = 0; i < lr->nslots; i++) {
        struct conn *c = lr->slots[i].conn;
        if (lr->slots[i].flags & SUB_FRESH) {
            delivered += batch_send_fresh(lr, &lr->slots[i], &bytes);
            continue;
        }
        bool spoke = false;
        for (int j = 0; combine && j < nspeakers && !spoke; j++)
            spoke = speakers[j] == c->serial;
        struct msg *f = combine && !spoke ? batch_framed_for(&framing, b, c) : NULL;
        if (f) {
            if (conn_send_framed(c, f)) {
                delivered += b->n;
                bytes += total;
            }
        } else
            delivered += batch_send_each(b, c, &bytes);
    }
    msg_unref(framing.framed[0]);
    msg_unref(framing.framed[1]);
    count_deliveries(w, delivered, bytes);
    for (uint32_t k = 0; k < b->n; k++)
        msg_unref(b->msgs[k]);
    b->n = 0;
}

void worker_flush_batches(struct worker *w)
{
    for (uint32_t i = 0; i < w->nbatched; i++) {
        struct local_room *lr = local_room_find(w, w->batched[i]);
        if (lr) {
            batch_flush(w, lr);
            lr->batched = false;
        }
    }
    w->nbatched = 0;
}

/* Remember that LR has a batch to flush at the end of the turn (once a
 * turn, however often an early flush emptied it). */
static bool batched_add(struct worker *w, struct local_room *lr)
{
    if (lr->batched)
        return true;
    if (w->nbatched == w->batched_cap) {
        uint32_t cap = w->batched_cap ? w->batched_cap * 2 : 16;
        uint64_t *grown = realloc(w->batched, cap * sizeof(*grown));
        if (!grown)
            return false;
        w->batched = grown;
        w->batched_cap = cap;
    }
    if (w->nbatched == 0)
        event_active(w->flush_ev, 0, 0);
    w->batched[w->nbatched++] = lr->uid;
    lr->batched = true;
    return true;
}

/* Into the room's batch (a reference is taken).  Out of memory, it is
 * queued at once, after the batch, so nothing is lost or reordered. */
void worker_deliver(struct worker *w, uint64_t uid, struct msg *m, uint64_t skip)
{
    struct local_room *lr = local_room_find(w, uid);
    if (!lr)
        return;
    struct room_batch *b = &lr->batch;
    if (b->n == BATCH_MAX)
        batch_flush(w, lr);
    if ((b->n == b->cap && !batch_grow(b)) || !batched_add(w, lr)) {
        batch_flush(w, lr);
        uint64_t delivered = 0;
        for (uint32_t i = 0; i < lr->nslots; i++)
            if (lr->slots[i].conn->serial == skip)
                continue;
            else if (lr->slots[i].flags & SUB_HELD)
                held_add(lr, &lr->slots[i], m);
            else if (!(lr->slots[i].flags & SUB_FRESH) || fresh_wants(lr, &lr->slots[i], m))
                delivered += conn_send_msg(lr->slots[i].conn, m);
        count_deliveries(w, delivered, delivered * m->len);
        return;
    }
    /* In offset order: a job from another worker may bring an older offset
     * after this worker numbered a newer one itself (on_flush runs the
     * queue before it flushes, so both meet here). */
    uint32_t at = b->n;
    while (m->offset && at > 0 && b->msgs[at - 1]->offset > m->offset)
        at--;
    memmove(b->msgs + at + 1, b->msgs + at, (b->n - at) * sizeof(*b->msgs));
    memmove(b->skips + at + 1, b->skips + at, (b->n - at) * sizeof(*b->skips));
    b->msgs[at] = msg_ref(m);
    b->skips[at] = skip;
    b->n++;
}

static void local_room_free(struct worker *w, struct local_room *lr)
{
    batch_flush(w, lr);
    store_room_heard(lr->name, -1); /* this worker's last recipient of it */
    HASH_DEL(w->rooms, lr);
    free(lr->batch.msgs);
    free(lr->batch.skips);
    free(lr->fresh);
    free(lr->slots);
    free(lr);
}

void worker_subscribe(struct worker *w, const char *name, uint64_t uid, struct conn *c,
                      unsigned flag, struct history_read *hearing, bool hold)
{
    struct local_room *lr = local_room_find(w, uid);
    if (!lr) {
        size_t len = strlen(name);
        lr = calloc(1, sizeof(*lr) + len + 1);
        if (!lr)
            return;
        lr->uid = uid;
        memcpy(lr->name, name, len + 1);
        HASH_ADD(hh, w->rooms, uid, sizeof(lr->uid), lr);
        store_room_heard(name, +1); /* before the caller reads its position */
    }
    batch_flush(w, lr); /* what was said before C came is not for C */
    long slot = slot_find(lr, c);
    if (slot >= 0) { /* it hears the room already (member and listener) */
        lr->slots[slot].flags |= flag;
        slot_record(c, uid, (uint32_t)slot);
        if (hearing && !hold)
            registry_hear(name, uid, w->index, 0, hearing);
        return;
    }
    if (lr->nslots == lr->cap && !slots_resize(lr, lr->cap ? lr->cap * 2 : LOCAL_SLOTS_INITIAL)) {
        log_error("out of memory subscribing to room '%s'", name);
        if (lr->nslots == 0) {
            store_room_heard(name, -1);
            HASH_DEL(w->rooms, lr);
            free(lr);
        }
        return;
    }
    struct local_slot *s = &lr->slots[lr->nslots];
    *s = (struct local_slot){.conn = c, .flags = flag};
    slot_record(c, uid, lr->nslots);
    lr->nslots++;
    registry_hear(name, uid, w->index, +1, hold ? NULL : hearing);
    if (hold || (hearing && hearing->has_position)) {
        struct fresh_hearer *grown = realloc(lr->fresh, (lr->nfresh + 1) * sizeof(*grown));
        if (grown) {
            lr->fresh = grown;
            lr->fresh[lr->nfresh++] = (struct fresh_hearer){
                .conn = c, .from = hearing && !hold ? hearing->position.offset : 0};
            s->flags |= hold ? SUB_FRESH | SUB_HELD : SUB_FRESH;
        } else
            log_error("out of memory: a message of '%s' may reach a joiner twice", name);
    }
}

void worker_release(struct worker *w, uint64_t uid, struct conn *c, const struct history_read *r)
{
    struct local_room *lr = local_room_find(w, uid);
    long slot = lr ? slot_find(lr, c) : -1;
    if (slot < 0 || !(lr->slots[slot].flags & SUB_HELD))
        return;
    struct local_slot *s = &lr->slots[slot];
    struct fresh_hearer *f = fresh_find(lr, c);
    uint64_t from = r && r->has_position ? r->position.offset : 0;
    s->flags &= ~SUB_HELD;
    for (uint32_t i = 0; f && i < f->nheld; i++) {
        struct msg *m = f->held[i];
        if (m->offset == 0 || m->offset > from) {
            conn_send_msg(c, m);
            if (m->offset > from)
                from = m->offset;
        }
        msg_unref(m);
    }
    if (f) {
        free(f->held);
        f->held = NULL;
        f->nheld = f->held_cap = 0;
        f->from = from;
    }
    if (!r || !r->has_position)
        fresh_drop(lr, s); /* no offsets: nothing to leave out */
}

void worker_unsubscribe(struct worker *w, const char *name, uint64_t uid, struct conn *c,
                        unsigned flag)
{
    struct local_room *lr = local_room_find(w, uid);
    if (!lr)
        return;
    batch_flush(w, lr); /* what was said while C was there is for C */
    long slot = slot_find(lr, c);
    if (slot < 0)
        return;
    lr->slots[slot].flags &= ~flag;
    if ((lr->slots[slot].flags & ~(SUB_FRESH | SUB_HELD)) != 0)
        return;
    if (lr->slots[slot].flags & (SUB_FRESH | SUB_HELD))
        fresh_drop(lr, &lr->slots[slot]);
    uint32_t last = --lr->nslots;
    if ((uint32_t)slot != last) { /* the last one takes its place */
        lr->slots[slot] = lr->slots[last];
        slot_record(lr->slots[slot].conn, uid, (uint32_t)slot);
    }
    registry_recipients_add(name, uid, w->index, -1);
    if (lr->nslots == 0)
        local_room_free(w, lr);
    else if (lr->cap > LOCAL_SLOTS_INITIAL && lr->nslots <= lr->cap / 4)
        slots_resize(lr, lr->cap / 2); /* a failure keeps the bigger array */
}

/* Room UID is gone: every local member and listener hears NOTICE, and
 * listeners stop listening.  Members keep their room name (PROTOCOL.md). */
static void room_deleted_local(struct worker *w, uint64_t uid, struct msg *notice)
{
    struct local_room *lr = local_room_find(w, uid);
    if (!lr)
        return;
    batch_flush(w, lr); /* what was said before the deletion comes first */
    uint64_t delivered = 0;
    for (uint32_t i = 0; i < lr->nslots; i++) {
        struct conn *c = lr->slots[i].conn;
        delivered += conn_send_msg(c, notice);
        struct listen_entry *e;
        if ((lr->slots[i].flags & SUB_LISTENER) && (e = conn_listen_find_uid(c, uid)))
            conn_listen_remove(c, e);
    }
    count_deliveries(w, delivered, delivered * notice->len);
    local_room_free(w, lr);
}

struct conn *worker_find_conn(struct worker *w, uint64_t serial)
{
    struct conn *c;
    HASH_FIND(hh, w->conns, &serial, sizeof(serial), c);
    return (c && !c->dead) ? c : NULL;
}

/* ------------------------------------------------------------- the loop */

static void worker_check_stopped(struct worker *w)
{
    if (w->stopping && w->conns == NULL)
        event_base_loopexit(w->base, NULL);
}

static void on_shutdown_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct conn *c, *tmp;
    HASH_ITER(hh, w->conns, c, tmp)
    conn_abort(c, NULL);
    event_base_loopexit(w->base, NULL); /* held connections are freed after */
}

static void worker_begin_shutdown(struct worker *w)
{
    w->stopping = true;
    conn_proxy_cancel_all(w);
    struct conn *c, *tmp;
    HASH_ITER(hh, w->conns, c, tmp)
    conn_close(c, "server shutdown");
    struct timeval grace = {0, SHUTDOWN_GRACE_MS * 1000};
    event_add(w->shutdown_ev, &grace);
    worker_check_stopped(w);
}

/* Free the connections closed since the last turn.  Running from its own
 * event keeps frees out of fan-out loops and bufferevent callbacks. */
static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    while (w->reap_list) {
        struct conn *c = w->reap_list;
        w->reap_list = c->reap_next;
        conn_reap(c);
    }
    worker_check_stopped(w);
}

/* Write every connection that got output during this turn, each with one
 * writev (see "Output" in conn.c).  Activated by the first producer of a
 * turn, it runs after the callbacks already active, so a burst of
 * deliveries to one connection becomes one system call. */
static void run_queue(struct worker *w);

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    run_queue(arg); /* jobs already posted come before what is batched */
    worker_flush_batches(arg);
    conn_flush_pending(arg);
}

static void run_job(struct worker *w, struct job *job)
{
    switch (job->type) {
    case JOB_NEW_CONN:
        if (w->stopping) {
            close(job->u.conn.fd);
            conn_slot_release();
        } else if (settings.proxy_protocol)
            conn_proxy_start(w, job->u.conn.fd, job->u.conn.transport, job->u.conn.tls,
                             (struct sockaddr *)&job->u.conn.addr, job->u.conn.addrlen);
        else
            conn_new(w, job->u.conn.fd, job->u.conn.transport, job->u.conn.tls,
                     (struct sockaddr *)&job->u.conn.addr, (int)job->u.conn.addrlen);
        break;
    case JOB_DELIVER:
        worker_deliver(w, job->u.deliver.room_uid, job->u.deliver.msg, job->u.deliver.skip_serial);
        msg_unref(job->u.deliver.msg);
        break;
    case JOB_ROOM_DELETED:
        room_deleted_local(w, job->u.deliver.room_uid, job->u.deliver.msg);
        msg_unref(job->u.deliver.msg);
        break;
    case JOB_CALL:
        job->u.call.fn(w, job->u.call.arg);
        break;
    case JOB_SHUTDOWN:
        worker_begin_shutdown(w);
        break;
    }
    free(job);
}

/* Run every job posted so far. */
static void run_queue(struct worker *w)
{
    pthread_mutex_lock(&w->qlock);
    struct job *job = w->qhead;
    w->qhead = w->qtail = NULL;
    pthread_mutex_unlock(&w->qlock);
    while (job) {
        struct job *next = job->next;
        run_job(w, job);
        job = next;
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t n;
    ssize_t rc = read(w->wake_fd, &n, sizeof(n));
    (void)rc;
    run_queue(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    conn_proxy_cancel_all(w);
    store_worker_stop(w); /* its callbacks release what they held */
    struct conn *c, *tmp;
    HASH_ITER(hh, w->conns, c, tmp) /* whatever the grace period left */
    {
        c->holds = 0;
        c->reap_deferred = false;
        conn_reap(c);
    }
    return NULL;
}

static int worker_init(struct worker *w, int index)
{
    w->index = index;
    pthread_mutex_init(&w->qlock, NULL);
    /* A worker's base is only touched by its thread: no locks needed. */
    struct event_config *ecfg = event_config_new();
    if (!ecfg)
        return -1;
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!w->base || w->wake_fd < 0)
        return -1;
    w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
    w->reap_ev = event_new(w->base, -1, 0, on_reap, w);
    w->shutdown_ev = evtimer_new(w->base, on_shutdown_deadline, w);
    w->flush_ev = event_new(w->base, -1, 0, on_flush, w);
    if (!w->wake_ev || !w->reap_ev || !w->shutdown_ev || !w->flush_ev)
        return -1;
    store_worker_start(w);
    return event_add(w->wake_ev, NULL);
}

int workers_start(int n)
{
    nworkers = n;
    if (workers) /* already running */
        return -1;
    workers = calloc((size_t)n, sizeof(*workers));
    if (!workers)
        return -1;
    for (int i = 0; i < n; i++)
        if (worker_init(&workers[i], i) < 0) {
            log_error("worker %d: cannot create its event base: %s", i, strerror(errno));
            return -1;
        }
    for (int i = 0; i < n; i++)
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            log_error("worker %d: cannot start its thread", i);
            return -1;
        }
    return 0;
}

void workers_stop(void)
{
    for (int i = 0; i < nworkers; i++) {
        struct job *job = calloc(1, sizeof(*job));
        if (!job)
            abort();
        job->type = JOB_SHUTDOWN;
        worker_post(&workers[i], job);
    }
    for (int i = 0; i < nworkers; i++)
        pthread_join(workers[i].thread, NULL);
}

void workers_free(void)
{
    for (int i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        struct job *job = w->qhead;
        while (job) { /* jobs posted after the stop */
            struct job *next = job->next;
            if (job->type == JOB_NEW_CONN) {
                close(job->u.conn.fd);
                conn_slot_release();
            } else if (job->type == JOB_DELIVER || job->type == JOB_ROOM_DELETED)
                msg_unref(job->u.deliver.msg);
            free(job);
            job = next;
        }
        struct local_room *lr, *tmp;
        HASH_ITER(hh, w->rooms, lr, tmp)
        {
            for (uint32_t k = 0; k < lr->batch.n; k++)
                msg_unref(lr->batch.msgs[k]);
            lr->batch.n = 0;
            local_room_free(w, lr);
        }
        free(w->batched);
        event_free(w->wake_ev);
        event_free(w->reap_ev);
        event_free(w->shutdown_ev);
        event_free(w->flush_ev);
        event_base_free(w->base);
        close(w->wake_fd);
        pthread_mutex_destroy(&w->qlock);
    }
    free(workers);
    workers = NULL;
}
