/* route.c -- connection calls routed over the bus (see route.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <uthash.h>

#include "api.h"
#include "config.h"
#include "conn.h"
#include "msg.h"
#include "redis/bus.h"
#include "redis/cluster.h"
#include "redis/route.h"
#include "worker.h"

/* How long a call routed to another server waits for its answer. */
#define ROUTE_TIMEOUT_MS 3000

/* A call this server sent over the bus, waiting for the owner's answer.
 * The table is shared by API callers (any thread) and the bus (main). */
struct routed_call {
    UT_hash_handle hh;
    uint64_t req;
    roomd_result_cb cb;
    void *ud;
};

static pthread_mutex_t route_lock = PTHREAD_MUTEX_INITIALIZER;
static struct routed_call *routed_calls;
static uint64_t next_route_req = 1;

static struct routed_call *route_take(uint64_t req)
{
    struct routed_call *rc;
    pthread_mutex_lock(&route_lock);
    HASH_FIND(hh, routed_calls, &req, sizeof(req), rc);
    if (rc)
        HASH_DEL(routed_calls, rc);
    pthread_mutex_unlock(&route_lock);
    return rc;
}

static void on_route_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct routed_call *rc = route_take((uint64_t)(uintptr_t)arg);
    if (rc) { /* no server has that connection (or its owner is gone) */
        rc->cb(err_text(ERR_CONN_NOT_FOUND), NULL, rc->ud);
        free(rc);
    }
}

/* Ask every server; the one that owns CONN_ID answers ("connres"). */
bool redis_route_conn_call(const char *conn_id, int op, const char *arg_json, const char *room,
                           bool force, roomd_result_cb cb, void *ud)
{
    struct routed_call *rc = calloc(1, sizeof(*rc));
    if (!rc)
        return false;
    rc->cb = cb;
    rc->ud = ud;
    pthread_mutex_lock(&route_lock);
    rc->req = next_route_req++;
    HASH_ADD(hh, routed_calls, req, sizeof(rc->req), rc);
    pthread_mutex_unlock(&route_lock);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "req", json_object_new_uint64(rc->req));
    json_object_object_add(o, "id", json_object_new_string(conn_id));
    json_object_object_add(o, "op", json_object_new_int(op));
    if (arg_json)
        json_object_object_add(o, "arg", json_object_new_string(arg_json));
    if (room)
        json_object_object_add(o, "room", json_object_new_string(room));
    json_object_object_add(o, "force", json_object_new_boolean(force));
    const char *text = json_object_to_json_string_ext(o, ROOMD_JSON_FLAGS);
    redis_bus_publish(&redis_shards[0], NULL, "connop", "", NULL, text, strlen(text));
    json_object_put(o);
    struct timeval tv = {ROUTE_TIMEOUT_MS / 1000, (ROUTE_TIMEOUT_MS % 1000) * 1000};
    event_base_once(main_base, -1, EV_TIMEOUT, on_route_timeout, (void *)(uintptr_t)rc->req, &tv);
    return true;
}

/* Where the answer of a routed call goes: the asking server, request. */
struct route_reply {
    char *origin;
    uint64_t req;
};

/* Our worker answered a call routed here: send it back to the asker. */
static void route_answer(const char *error, const char *result, void *ud)
{
    struct route_reply *rr = ud;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "req", json_object_new_uint64(rr->req));
    if (error)
        json_object_object_add(o, "error", json_object_new_string(error));
    else
        json_object_object_add(o, "result", json_object_new_string(result));
    const char *text = json_object_to_json_string_ext(o, ROOMD_JSON_FLAGS);
    redis_bus_publish(&redis_shards[0], NULL, "connres", rr->origin, NULL, text, strlen(text));
    json_object_put(o);
    free(rr->origin);
    free(rr);
}

void redis_route_run(const char *origin, json_object *o)
{
    json_object *id, *op, *req, *arg = NULL, *room = NULL, *force = NULL;
    if (!json_object_object_get_ex(o, "id", &id) || !json_object_object_get_ex(o, "op", &op) ||
        !json_object_object_get_ex(o, "req", &req))
        return;
    int worker;
    uint64_t serial;
    if (!conn_lookup(json_object_get_string(id), &worker, &serial))
        return; /* not ours */
    json_object_object_get_ex(o, "arg", &arg);
    json_object_object_get_ex(o, "room", &room);
    json_object_object_get_ex(o, "force", &force);
    struct route_reply *rr = calloc(1, sizeof(*rr));
    if (!rr || !(rr->origin = strdup(origin))) {
        free(rr);
        return;
    }
    rr->req = json_object_get_uint64(req);
    api_conn_call_text(json_object_get_string(id), json_object_get_int(op),
                       arg ? json_object_get_string(arg) : NULL,
                       room ? json_object_get_string(room) : NULL,
                       force && json_object_get_boolean(force), route_answer, rr);
}

void redis_route_done(json_object *o)
{
    json_object *req, *v;
    if (!json_object_object_get_ex(o, "req", &req))
        return;
    struct routed_call *rc = route_take(json_object_get_uint64(req));
    if (!rc)
        return; /* timed out already */
    if (json_object_object_get_ex(o, "error", &v))
        rc->cb(json_object_get_string(v), NULL, rc->ud);
    else
        rc->cb(NULL, json_object_object_get_ex(o, "result", &v) ? json_object_get_string(v) : "{}",
               rc->ud);
    free(rc);
}
