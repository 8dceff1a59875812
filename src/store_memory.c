/* store_memory.c -- the embedded store: the registry is the whole truth.
 *
 * Each operation does its registry call and completes at once, on the
 * caller's thread, as store.h promises. */
#include "msg.h"
#include "registry.h"
#include "store.h"
#include "worker.h"

int store_open(void)
{
    return 0;
}

void store_close(void)
{
}

void store_join(struct worker *w, const char *room, const char *id, json_object *attrs,
                store_cb cb, void *ctx)
{
    struct store_result r = {0};
    r.err = registry_join(room, id, attrs, w->index, &r.uid, &r.joined_at);
    cb(&r, ctx);
}

void store_leave(struct worker *w, const char *room, uint64_t uid, const char *id, store_cb cb,
                 void *ctx)
{
    struct store_result r = {0};
    r.flag = registry_leave(room, uid, id);
    if (cb)
        cb(&r, ctx);
}

void store_check_listen(struct worker *w, const char *room, json_object *attrs, store_cb cb,
                        void *ctx)
{
    struct store_result r = {0};
    r.err = registry_check_listen(room, attrs, &r.uid);
    cb(&r, ctx);
}

void store_room_view(struct worker *w, const char *room, uint64_t uid, long limit, store_cb cb,
                     void *ctx)
{
    struct store_result r = {0};
    r.data = registry_status(room, uid, limit);
    if (!r.data)
        r.err = ERR_ROOM_NOT_FOUND;
    cb(&r, ctx);
}

bool store_room_alive(const char *room, uint64_t uid)
{
    uint64_t now;
    return registry_lookup(room, &now) && now == uid;
}

void store_publish(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                   uint64_t skip_serial)
{
    worker_fanout(from, room, uid, m, skip_serial);
}

int store_room_add(const char *room)
{
    return registry_add(room);
}

bool store_room_del(const char *room)
{
    uint64_t uid;
    if (!registry_del(room, &uid))
        return false;
    json_object *notice =
        msg_chat_json(json_object_new_string("this room has been deleted"), room, NULL);
    struct msg *m = msg_new(notice);
    json_object_put(notice);
    if (m) {
        worker_room_deleted(uid, m);
        msg_unref(m);
    }
    return true;
}

bool store_room_exists(const char *room)
{
    return registry_lookup(room, NULL);
}

enum roomd_err store_room_set_pattern(const char *room, json_object *pattern)
{
    return registry_set_pattern(room, pattern);
}
