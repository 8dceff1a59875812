/* store.c -- forwards the store interface to the configured store. */
#include <string.h>

#include "config.h"
#include "registry.h"
#include "store.h"

static const struct store_ops *store = &store_memory_ops;

int store_open(void)
{
    store = strncmp(settings.store, "redis://", 8) == 0 ? &store_redis_ops : &store_memory_ops;
    return store->open();
}

void store_close(void)
{
    store->close();
}

void store_worker_start(struct worker *w)
{
    if (store->worker_start)
        store->worker_start(w);
}

void store_worker_stop(struct worker *w)
{
    if (store->worker_stop)
        store->worker_stop(w);
}

void store_join(struct worker *w, const char *room, const char *id, json_object *attrs, store_cb cb,
                void *ctx)
{
    store->join(w, room, id, attrs, cb, ctx);
}

void store_leave(struct worker *w, const char *room, uint64_t uid, const char *id, store_cb cb,
                 void *ctx)
{
    store->leave(w, room, uid, id, cb, ctx);
}

void store_check_listen(struct worker *w, const char *room, json_object *attrs, store_cb cb,
                        void *ctx)
{
    store->check_listen(w, room, attrs, cb, ctx);
}

void store_room_view(struct worker *w, const char *room, uint64_t uid, long limit, store_cb cb,
                     void *ctx)
{
    store->room_view(w, room, uid, limit, cb, ctx);
}

void store_publish(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                   uint64_t skip_serial, const char *skip_id, bool keep, store_cb cb, void *ctx)
{
    store->publish(from, room, uid, m, skip_serial, skip_id, keep, cb, ctx);
}

bool store_keeps_history(void)
{
    return store->keeps_history;
}

bool store_reads_streams(void)
{
    return store->stream_read != NULL;
}

void store_stream_read(struct worker *w, const char *room, const struct history_position *since,
                       long limit, bool messages, store_cb cb, void *ctx)
{
    store->stream_read(w, room, since, limit, messages, cb, ctx);
}

json_object *store_room_history(const char *room, long size, long ttl)
{
    return store->room_history(room, size, ttl);
}

json_object *store_room_messages(const char *room, long limit)
{
    return store->room_messages(room, limit);
}

int store_room_add(const char *room)
{
    return store->room_add(room);
}

bool store_room_del(const char *room)
{
    return store->room_del(room);
}

bool store_room_exists(const char *room)
{
    return store->room_exists(room);
}

enum roomd_err store_room_set_pattern(const char *room, json_object *pattern)
{
    return store->room_set_pattern(room, pattern);
}

json_object *store_room_status(const char *room, long limit)
{
    return store->room_status(room, limit);
}

bool store_available(const struct worker *w)
{
    return !store->available || store->available(w, NULL);
}

bool store_room_available(const struct worker *w, const char *room)
{
    return !store->available || store->available(w, room);
}

bool store_route_conn_call(const char *conn_id, int op, const char *arg_json, const char *room,
                           bool force, roomd_result_cb cb, void *ud)
{
    return store->route_conn_call &&
           store->route_conn_call(conn_id, op, arg_json, room, force, cb, ud);
}

json_object *store_room_list(void)
{
    return store->room_list();
}

void store_when_ready(void (*fn)(void))
{
    if (store->when_ready)
        store->when_ready(fn);
    else
        fn();
}

void store_bus_stats(struct store_bus_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (store->bus_stats)
        store->bus_stats(out);
}

void store_room_heard(const char *room, int delta)
{
    if (store->room_heard)
        store->room_heard(room, delta);
}

/* The registry is every store's local index of rooms and generations. */
bool store_room_alive(const char *room, uint64_t uid)
{
    uint64_t now;
    return registry_lookup(room, &now) && now == uid;
}
