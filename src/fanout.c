/* fanout.c -- local delivery to a room's recipients on every worker.
 *
 * A message becomes one job per worker that has local recipients of the
 * room (the registry counts them), each job holding a reference to the one
 * serialized message; the jobs are posted under the room's stream lock, so
 * offsets reach each worker in order (lock order: registry shard lock,
 * stream lock, a worker's qlock).  The publisher's own worker takes its
 * share after the lock, at once (worker_deliver). */
#include <stdlib.h>

#include <json-c/json.h>

#include "fanout.h"
#include "log.h"
#include "msg.h"
#include "registry.h"
#include "worker.h"

/* What registry_publish hands the fan-out: who publishes, what to skip,
 * and (out) the offset the message got. */
struct fanout_ctx {
    struct worker *from;
    uint64_t uid;
    uint64_t skip_serial;
    uint64_t offset;
    struct msg *local; /* for the publisher's own worker, after the lock */
};

/* Post JOB of TYPE with M for room UID to worker W. */
static void post_msg(struct worker *w, enum job_type type, struct msg *m, uint64_t uid,
                     uint64_t skip_serial)
{
    struct job *job = malloc(sizeof(*job));
    if (!job) {
        log_error("out of memory in fan-out to worker %d", w->index);
        return;
    }
    job->type = type;
    job->u.deliver.msg = msg_ref(m);
    job->u.deliver.room_uid = uid;
    job->u.deliver.skip_serial = skip_serial;
    worker_post(w, job);
}

/* Under the room's stream lock: one job per other worker that hears the
 * room, in offset order.  The publisher's own worker batches it after the
 * lock is released (a delivery may write to sockets, which is no work for
 * under a lock); worker_deliver() puts it in offset order in the batch. */
static void fanout_post(const bool *want, struct msg *m, void *arg)
{
    struct fanout_ctx *fc = arg;
    fc->offset = m->offset;
    for (int i = 0; i < nworkers; i++) {
        if (!want[i])
            continue;
        if (&workers[i] == fc->from)
            fc->local = msg_ref(m);
        else
            post_msg(&workers[i], JOB_DELIVER, m, fc->uid, fc->skip_serial);
    }
}

uint64_t fanout_publish(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                        uint64_t skip_serial, bool keep)
{
    struct fanout_ctx fc = {.from = from, .uid = uid, .skip_serial = skip_serial};
    if (!registry_publish(room, &fc.uid, m, keep, fanout_post, &fc))
        return 0;
    if (fc.local) {
        worker_deliver(from, fc.uid, fc.local, skip_serial);
        msg_unref(fc.local);
    }
    return fc.offset;
}

/* Every worker hears of the deletion, whether or not it has recipients of
 * the room: the registry's count is gone with the room. */
void fanout_room_deleted(const char *room)
{
    uint64_t uid;
    if (!registry_del(room, &uid))
        return;
    json_object *notice =
        msg_chat_json(json_object_new_string("this room has been deleted"), room, NULL);
    struct msg *m = msg_new(notice);
    json_object_put(notice);
    if (!m)
        return;
    for (int i = 0; i < nworkers; i++)
        post_msg(&workers[i], JOB_ROOM_DELETED, m, uid, 0);
    msg_unref(m);
}
