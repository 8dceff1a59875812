/* api.c -- the public C API of roomd.h: the seed's server-side methods.
 *
 * Room operations go to the store directly.  An operation on a connection
 * is posted to the worker that owns it (worker_call) and carried out there,
 * where the connection may be touched; the caller's callback runs on that
 * worker.  The admin HTTP API is built on these functions. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "api.h"
#include "config.h"
#include "history.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "registry.h"
#include "store.h"
#include "verbs.h"
#include "worker.h"

struct roomd_hooks api_hooks;

void roomd_set_hooks(const struct roomd_hooks *hooks)
{
    api_hooks = *hooks;
}

/* ------------------------------------------------------ inside hooks */

const char *roomd_conn_id(const roomd_conn *c)
{
    return c->id;
}

/* Bodies and values from the server side nest no deeper than this. */
#define API_JSON_DEPTH 32

/* Parse TEXT as one complete JSON value; *OUT may be NULL for "null". */
static bool parse_json_value(const char *text, json_object **out)
{
    return json_parse_strict(text, strlen(text), API_JSON_DEPTH, out);
}

int roomd_conn_set_attribute(roomd_conn *c, const char *key, const char *json_value)
{
    json_object *v;
    if (conn_attribute_read_only(key) || !parse_json_value(json_value, &v))
        return -1;
    enum roomd_err err = conn_set_attribute(c, key, v);
    return err == ERR_NONE ? 0 : err == ERR_PARAMS_TOO_LARGE ? -2 : -1;
}

char *roomd_conn_attribute(const roomd_conn *c, const char *key)
{
    json_object *attrs = conn_attributes(c), *v;
    char *text = json_object_object_get_ex(attrs, key, &v)
                     ? strdup(v ? json_object_to_json_string_ext(v, ROOMD_JSON_FLAGS) : "null")
                     : NULL;
    json_object_put(attrs);
    return text;
}

/* ------------------------------------------------------------- rooms */

int roomd_add(const char *room)
{
    if (!verbs_room_name_valid(room, strlen(room), (size_t)settings.max_room_name))
        return -1;
    return store_room_add(room);
}

int roomd_del(const char *room)
{
    return store_room_del(room) ? 1 : 0;
}

bool roomd_exists(const char *room)
{
    return store_room_exists(room);
}

int roomd_set_authentication_pattern(const char *room, const char *key, const char *json_value)
{
    json_object *pattern = NULL, *value;
    if (key) {
        if (!parse_json_value(json_value, &value))
            return -2;
        pattern = json_object_new_object();
        json_object_object_add(pattern, key, value);
    }
    enum roomd_err err = store_room_set_pattern(room, pattern);
    json_object_put(pattern);
    return err == ERR_NONE ? 0 : err == ERR_ROOM_NOT_FOUND ? -1 : -2;
}

json_object *api_room_status(const char *room)
{
    json_object *st = store_room_status(room, settings.room_view_limit);
    if (st)
        return st;
    st = json_object_new_object();
    json_object_object_add(st, "room", json_object_new_string(room));
    json_object_object_add(st, "members", json_object_new_object());
    json_object_object_add(st, "membersCount", json_object_new_int(0));
    return st;
}

char *roomd_room_status(const char *room)
{
    if (!*room)
        return NULL;
    json_object *st = api_room_status(room);
    char *text = strdup(json_object_to_json_string_ext(st, ROOMD_JSON_FLAGS));
    json_object_put(st);
    return text;
}

int api_broadcast(const char *from_id, const char *room, json_object *message)
{
    uint64_t uid, skip = 0;
    int worker;
    if (!registry_lookup(room, &uid) && !(store_room_exists(room) && registry_lookup(room, &uid))) {
        json_object_put(message);
        return -1;
    }
    if (from_id && !conn_lookup(from_id, &worker, &skip))
        skip = 0;
    json_object *chat = msg_chat_json(message, room, from_id);
    struct msg *m = msg_new(chat);
    json_object_put(chat);
    if (m) {
        store_publish(NULL, room, uid, m, skip, from_id, true, NULL, NULL);
        msg_unref(m);
    }
    return 0;
}

json_object *api_room_history(const char *room, long size, long ttl)
{
    return store_room_history(room, size, ttl);
}

json_object *api_room_messages(const char *room, long limit)
{
    return store_room_messages(room, limit);
}

/* JSON text of O (consumed), malloc'd; NULL for NULL. */
static char *json_text(json_object *o)
{
    if (!o)
        return NULL;
    char *text = strdup(json_object_to_json_string_ext(o, ROOMD_JSON_FLAGS));
    json_object_put(o);
    return text;
}

char *roomd_room_history(const char *room, long size, long ttl)
{
    if (size < -1 || ttl < -1 || ttl == 0)
        return NULL;
    return json_text(api_room_history(room, size, ttl));
}

char *roomd_room_messages(const char *room, long limit)
{
    return json_text(api_room_messages(room, limit));
}

int roomd_socket_room_broadcast(const char *from_id, const char *room, const char *message_json)
{
    json_object *message;
    if (!parse_json_value(message_json, &message))
        return -2;
    return api_broadcast(from_id, room, message);
}

/* ------------------------------------------------------- connections */

enum conn_op {
    OP_DETAILS = API_OP_DETAILS,
    OP_MESSAGE = API_OP_MESSAGE,
    OP_ATTRIBUTES = API_OP_ATTRIBUTES,
    OP_ADD = API_OP_ADD,
    OP_REMOVE = API_OP_REMOVE,
    OP_DISCONNECT = API_OP_DISCONNECT,
};

/* One operation on its way to the owning worker. */
struct conn_call {
    enum conn_op op;
    uint64_t serial;
    json_object *arg; /* the message, the attributes; owned by the call */
    char *room;
    bool force;
    roomd_result_cb cb;
    void *ud;
};

static void call_free(struct conn_call *call)
{
    json_object_put(call->arg);
    free(call->room);
    free(call);
}

/* Answer with RESULT (consumed) or ERR, then free the call. */
static void call_done(struct conn_call *call, enum roomd_err err, json_object *result)
{
    if (err)
        call->cb(err_text(err), NULL, call->ud);
    else
        call->cb(NULL, json_object_to_json_string_ext(result, ROOMD_JSON_FLAGS), call->ud);
    json_object_put(result);
    call_free(call);
}

static json_object *json1(const char *key, json_object *value)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, key, value);
    return o;
}

static void set_attributes(struct conn_call *call, struct conn *c)
{
    if (!json_object_is_type(call->arg, json_type_object)) {
        call_done(call, ERR_INVALID_REQUEST, NULL);
        return;
    }
    json_object_object_foreach(call->arg, key, value)
    {
        (void)value;
        if (conn_attribute_read_only(key)) {
            call_done(call, ERR_ATTRIBUTE_READ_ONLY, NULL);
            return;
        }
    }
    enum roomd_err err = conn_set_attributes(c, call->arg);
    call_done(call, err, err ? NULL : json1("attributes", conn_attributes(c)));
}

static void member_added(enum roomd_err err, bool added, void *ctx)
{
    call_done(ctx, err, err ? NULL : json1("added", json_object_new_boolean(added)));
}

static void run_conn_call(struct worker *w, void *arg)
{
    struct conn_call *call = arg;
    struct conn *c = worker_find_conn(w, call->serial);
    if (!c) {
        call_done(call, ERR_CONN_NOT_FOUND, NULL);
        return;
    }
    switch (call->op) {
    case OP_DETAILS:
        call_done(call, ERR_NONE, conn_details(c));
        break;
    case OP_MESSAGE:
        conn_send_json(c, msg_chat_json(json_object_get(call->arg), NULL, NULL));
        worker_count(c->worker, stat_delivered);
        call_done(call, ERR_NONE, json1("sent", json_object_new_boolean(1)));
        break;
    case OP_ATTRIBUTES:
        set_attributes(call, c);
        break;
    case OP_ADD:
        verbs_add_member(c, call->room, call->force, member_added, call);
        break;
    case OP_REMOVE:
        call_done(call, ERR_NONE,
                  json1("removed", json_object_new_boolean(verbs_remove_member(c))));
        break;
    case OP_DISCONNECT:
        conn_close(c, "disconnected by server");
        call_done(call, ERR_NONE, json1("disconnected", json_object_new_boolean(1)));
        break;
    }
}

/* Post CALL to the worker owning CONN_ID; unknown ids answer at once. */
/* Post CALL to the worker owning CONN_ID.  A connection of another server
 * is the store's to route (Redis: over the bus, to its owner); unknown ids
 * answer at once. */
static void conn_call_post(const char *conn_id, struct conn_call *call)
{
    int worker;
    if (conn_lookup(conn_id, &worker, &call->serial)) {
        worker_call(&workers[worker], run_conn_call, call);
        return;
    }
    const char *arg =
        call->arg ? json_object_to_json_string_ext(call->arg, ROOMD_JSON_FLAGS) : NULL;
    if (store_route_conn_call(conn_id, (int)call->op, arg, call->room, call->force, call->cb,
                              call->ud)) {
        call->cb = NULL; /* the store answers now */
        call_free(call);
        return;
    }
    call_done(call, ERR_CONN_NOT_FOUND, NULL);
}

static struct conn_call *call_new(enum conn_op op, roomd_result_cb cb, void *ud)
{
    struct conn_call *call = calloc(1, sizeof(*call));
    if (!call) {
        cb("out of memory", NULL, ud);
        return NULL;
    }
    call->op = op;
    call->cb = cb;
    call->ud = ud;
    return call;
}

/* A call with its argument (consumed) and room; NULL after answering when
 * it could not be made. */
static struct conn_call *call_make(int op, json_object *arg, const char *room, bool force,
                                   roomd_result_cb cb, void *ud)
{
    struct conn_call *call = call_new((enum conn_op)op, cb, ud);
    if (!call) {
        json_object_put(arg);
        return NULL;
    }
    call->arg = arg;
    call->force = force;
    if (room && !(call->room = strdup(room))) {
        call_done(call, ERR_STORE_UNAVAILABLE, NULL);
        return NULL;
    }
    return call;
}

/* A call routed here from another server: run it as our own. */
void api_conn_call_text(const char *conn_id, int op, const char *arg_json, const char *room,
                        bool force, roomd_result_cb cb, void *ud)
{
    json_object *arg = NULL;
    if (arg_json && !parse_json_value(arg_json, &arg)) {
        cb(err_text(ERR_INVALID_REQUEST), NULL, ud);
        return;
    }
    struct conn_call *call = call_make(op, arg, room, force, cb, ud);
    int worker;
    if (!call)
        return;
    if (!conn_lookup(conn_id, &worker, &call->serial)) {
        call_done(call, ERR_CONN_NOT_FOUND, NULL);
        return;
    }
    worker_call(&workers[worker], run_conn_call, call);
}

void api_conn_call(const char *conn_id, int op, json_object *arg, const char *room, bool force,
                   roomd_result_cb cb, void *ud)
{
    struct conn_call *call = call_make(op, arg, room, force, cb, ud);
    if (call)
        conn_call_post(conn_id, call);
}

void roomd_add_member(const char *conn_id, const char *room, bool force, roomd_result_cb cb,
                      void *ud)
{
    api_conn_call(conn_id, OP_ADD, NULL, room, force, cb, ud);
}

void roomd_remove_member(const char *conn_id, roomd_result_cb cb, void *ud)
{
    api_conn_call(conn_id, OP_REMOVE, NULL, NULL, false, cb, ud);
}

void roomd_send_message(const char *conn_id, const char *message_json, roomd_result_cb cb, void *ud)
{
    json_object *message;
    if (!parse_json_value(message_json, &message)) {
        cb(err_text(ERR_INVALID_REQUEST), NULL, ud);
        return;
    }
    api_conn_call(conn_id, OP_MESSAGE, message, NULL, false, cb, ud);
}

void roomd_set_attributes(const char *conn_id, const char *attrs_json, roomd_result_cb cb, void *ud)
{
    json_object *attrs;
    if (!parse_json_value(attrs_json, &attrs) || !json_object_is_type(attrs, json_type_object)) {
        json_object_put(attrs);
        cb(err_text(ERR_INVALID_REQUEST), NULL, ud);
        return;
    }
    api_conn_call(conn_id, OP_ATTRIBUTES, attrs, NULL, false, cb, ud);
}

void roomd_disconnect(const char *conn_id, roomd_result_cb cb, void *ud)
{
    api_conn_call(conn_id, OP_DISCONNECT, NULL, NULL, false, cb, ud);
}

void roomd_conn_details(const char *conn_id, roomd_result_cb cb, void *ud)
{
    api_conn_call(conn_id, OP_DETAILS, NULL, NULL, false, cb, ud);
}

/* Listing asks every worker; the last one to answer calls back. */
struct list_call {
    atomic_int pending;
    pthread_mutex_t lock;
    struct evbuffer *out;
    bool first;
    roomd_result_cb cb;
    void *ud;
};

static void list_worker(struct worker *w, void *arg)
{
    struct list_call *lc = arg;
    pthread_mutex_lock(&lc->lock);
    for (struct conn *c = w->conns; c; c = c->hh.next) {
        if (c->dead)
            continue;
        json_object *d = conn_details(c);
        evbuffer_add_printf(lc->out, "%s%s", lc->first ? "" : ",",
                            json_object_to_json_string_ext(d, ROOMD_JSON_FLAGS));
        lc->first = false;
        json_object_put(d);
    }
    pthread_mutex_unlock(&lc->lock);
    if (atomic_fetch_sub(&lc->pending, 1) != 1)
        return;
    evbuffer_add(lc->out, "]}", 3); /* with the NUL */
    lc->cb(NULL, (const char *)evbuffer_pullup(lc->out, -1), lc->ud);
    evbuffer_free(lc->out);
    pthread_mutex_destroy(&lc->lock);
    free(lc);
}

void roomd_list_connections(roomd_result_cb cb, void *ud)
{
    struct list_call *lc = calloc(1, sizeof(*lc));
    if (!lc || !(lc->out = evbuffer_new())) {
        free(lc);
        cb("out of memory", NULL, ud);
        return;
    }
    lc->first = true;
    lc->cb = cb;
    lc->ud = ud;
    atomic_init(&lc->pending, nworkers);
    pthread_mutex_init(&lc->lock, NULL);
    evbuffer_add(lc->out, "{\"connections\":[", 16);
    for (int i = 0; i < nworkers; i++)
        worker_call(&workers[i], list_worker, lc);
}
