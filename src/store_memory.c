/* store_memory.c -- the embedded store: the registry is the whole truth.
 *
 * Each operation does its registry call and completes at once, on the
 * caller's thread, as store.h promises; delivery is the local fan-out
 * (fanout.c), as for the Redis store. */
#include "fanout.h"
#include "history.h"
#include "registry.h"
#include "store.h"
#include "worker.h"

static int memory_open(void)
{
    return 0;
}

static void memory_close(void)
{
}

static void memory_join(struct worker *w, const char *room, const char *id, json_object *attrs,
                        store_cb cb, void *ctx)
{
    struct store_result r = {0};
    r.err = registry_join(room, id, attrs, w->index, &r.uid, &r.joined_at);
    cb(&r, ctx);
}

static void memory_leave(struct worker *w, const char *room, uint64_t uid, const char *id,
                         store_cb cb, void *ctx)
{
    struct store_result r = {0};
    r.flag = registry_leave(room, uid, id);
    if (cb)
        cb(&r, ctx);
}

static void memory_check_listen(struct worker *w, const char *room, json_object *attrs, store_cb cb,
                                void *ctx)
{
    struct store_result r = {0};
    r.err = registry_check_listen(room, attrs, &r.uid);
    cb(&r, ctx);
}

static void memory_room_view(struct worker *w, const char *room, uint64_t uid, long limit,
                             store_cb cb, void *ctx)
{
    struct store_result r = {0};
    r.data = registry_status(room, uid, limit);
    if (!r.data)
        r.err = ERR_ROOM_NOT_FOUND;
    cb(&r, ctx);
}

static void memory_publish(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                           uint64_t skip_serial, const char *skip_id, bool keep, store_cb cb,
                           void *ctx)
{
    struct store_result r = {0};
    r.offset = fanout_publish(from, room, uid, m, skip_serial, keep);
    if (cb)
        cb(&r, ctx);
}

static int memory_room_add(const char *room)
{
    return registry_add(room);
}

static bool memory_room_del(const char *room)
{
    if (!registry_lookup(room, NULL))
        return false;
    fanout_room_deleted(room);
    return true;
}

static bool memory_room_exists(const char *room)
{
    return registry_lookup(room, NULL);
}

static enum roomd_err memory_room_set_pattern(const char *room, json_object *pattern)
{
    return registry_set_pattern(room, pattern);
}

static json_object *memory_room_status(const char *room, long limit)
{
    return registry_status(room, 0, limit);
}

static json_object *memory_room_messages(const char *room, long limit)
{
    struct history_read h = {0};
    if (registry_history(room, 0, limit, &h) != ERR_NONE)
        return NULL;
    json_object *o = history_read_json(room, &h);
    history_read_free(&h);
    return o;
}

const struct store_ops store_memory_ops = {
    .open = memory_open,
    .close = memory_close,
    .join = memory_join,
    .leave = memory_leave,
    .check_listen = memory_check_listen,
    .room_view = memory_room_view,
    .publish = memory_publish,
    .room_add = memory_room_add,
    .room_del = memory_room_del,
    .room_exists = memory_room_exists,
    .room_set_pattern = memory_room_set_pattern,
    .room_status = memory_room_status,
    .room_list = registry_list,
    .keeps_history = true,
    .room_history = registry_history_settings,
    .room_messages = memory_room_messages,
};
