/* admin.c -- the admin HTTP API: the server side's operations as JSON.
 *
 * Requests arrive on the main thread (evhttp).  Room operations go straight
 * to the store.  Operations on one connection are posted to the worker that
 * owns it (worker_call); the worker does the work, renders the answer and
 * hands it back with event_base_once() on the main base, where evhttp sends
 * it.  Listing connections asks every worker and answers when all did.
 *
 * Every request needs "Authorization: Bearer ADMIN_KEY", compared in
 * constant time; with an empty admin_key the API is not started at all. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admin.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "registry.h"
#include "store.h"
#include "verbs.h"
#include "worker.h"

/* Largest request body the API reads (a message or a pattern). */
#define ADMIN_MAX_BODY (1024 * 1024)
#define ADMIN_MAX_SEGMENTS 4

static struct evhttp *http;

/* ------------------------------------------------------------ replies */

static void send_json(struct evhttp_request *req, int status, json_object *obj)
{
    struct evbuffer *out = evbuffer_new();
    size_t len;
    const char *text = json_object_to_json_string_length(obj, ROOMD_JSON_FLAGS, &len);
    evbuffer_add(out, text, len);
    evbuffer_add(out, "\n", 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", out);
    evbuffer_free(out);
    json_object_put(obj);
}

static void send_error(struct evhttp_request *req, int status, const char *text)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(text));
    send_json(req, status, o);
}

/* The HTTP status of a verb's error. */
static int err_status(enum roomd_err err)
{
    return (err == ERR_ROOM_NOT_FOUND || err == ERR_CONN_NOT_FOUND) ? 404 : 400;
}

static json_object *json1(const char *key, json_object *value)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, key, value);
    return o;
}

/* ------------------------------------------------------ request parsing */

/* Compare the bearer key in constant time (no early exit on a mismatch). */
static bool authorized(struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    const char *given = h + 7, *want = settings.admin_key;
    size_t glen = strlen(given), wlen = strlen(want);
    unsigned char diff = glen != wlen;
    for (size_t i = 0; i < wlen; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return diff == 0;
}

/* The body as a JSON object; NULL (and a 400 sent) when it is not one. */
static json_object *read_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *text = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    json_object *obj = NULL;
    struct json_tokener *tok = json_tokener_new();
    if (tok && len > 0) {
        obj = json_tokener_parse_ex(tok, text, (int)len);
        if (json_tokener_get_error(tok) != json_tokener_success)
            obj = NULL;
    }
    json_tokener_free(tok);
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        send_error(req, 400, err_text(ERR_INVALID_REQUEST));
        return NULL;
    }
    return obj;
}

/* Split the path into percent-decoded segments: "/api/rooms/a%2Fb" gives
 * {"api","rooms","a/b"}.  Returns the count, or -1 when malformed. */
static int split_path(const char *path, char **seg, int max)
{
    int n = 0;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n == max)
            return -1;
        char *raw = strndup(p, len);
        size_t dlen;
        seg[n] = raw ? evhttp_uridecode(raw, 0, &dlen) : NULL;
        free(raw);
        if (!seg[n] || strlen(seg[n]) != dlen)
            return free(seg[n]), -1;
        n++;
        p += len;
        while (*p == '/')
            p++;
    }
    return n;
}

/* ----------------------------------------------------- room operations */

static void room_status(struct evhttp_request *req, const char *room)
{
    json_object *st = registry_status(room, 0, settings.room_view_limit);
    json_object *pattern = registry_pattern(room);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "exists", json_object_new_boolean(st != NULL));
    json_object_object_add(o, "room", json_object_new_string(room));
    json_object *members = NULL, *count = NULL;
    if (st) {
        json_object_object_get_ex(st, "members", &members);
        json_object_object_get_ex(st, "membersCount", &count);
    }
    json_object_object_add(o, "members", members ? json_object_get(members) :
                                                   json_object_new_object());
    json_object_object_add(o, "membersCount", count ? json_object_get(count) :
                                                      json_object_new_int(0));
    json_object_object_add(o, "pattern", pattern ? pattern : json_object_new_object());
    json_object_put(st);
    send_json(req, 200, o);
}

static void room_create(struct evhttp_request *req)
{
    json_object *body = read_body(req), *v;
    if (!body)
        return;
    const char *room = json_object_object_get_ex(body, "room", &v) &&
                               json_object_is_type(v, json_type_string)
                           ? json_object_get_string(v)
                           : "";
    if (!*room)
        send_error(req, 400, err_text(ERR_ROOM_REQUIRED));
    else if (!verbs_room_name_valid(room, strlen(room), (size_t)settings.max_room_name))
        send_error(req, 400, err_text(ERR_INVALID_ROOM_NAME));
    else
        send_json(req, 200, json1("created", json_object_new_int(store_room_add(room))));
    json_object_put(body);
}

static void room_pattern(struct evhttp_request *req, const char *room)
{
    json_object *body = read_body(req), *key, *pattern;
    if (!body)
        return;
    json_object *want = NULL; /* the new pattern; NULL clears */
    bool ok = true;
    if (json_object_object_get_ex(body, "pattern", &pattern)) {
        ok = pattern == NULL || json_object_is_type(pattern, json_type_object);
        want = pattern ? json_object_get(pattern) : NULL;
    } else if (json_object_object_get_ex(body, "key", &key)) {
        if (key && json_object_is_type(key, json_type_string)) {
            json_object *value = NULL;
            json_object_object_get_ex(body, "value", &value);
            want = json1(json_object_get_string(key), json_object_get(value));
        } else
            ok = key == NULL;
    } else
        ok = false;
    enum roomd_err err = ok ? store_room_set_pattern(room, want) : ERR_INVALID_REQUEST;
    json_object_put(want);
    json_object_put(body);
    if (err)
        send_error(req, err_status(err), err_text(err));
    else
        send_json(req, 200, json1("pattern", registry_pattern(room)));
}

static void room_broadcast(struct evhttp_request *req, const char *room)
{
    json_object *body = read_body(req), *message, *from;
    if (!body)
        return;
    if (!json_object_object_get_ex(body, "message", &message) || message == NULL) {
        send_error(req, 400, err_text(ERR_MESSAGE_REQUIRED));
        json_object_put(body);
        return;
    }
    const char *from_id = NULL;
    int worker;
    uint64_t skip = 0;
    if (json_object_object_get_ex(body, "from", &from) && from &&
        json_object_is_type(from, json_type_string)) {
        from_id = json_object_get_string(from);
        if (!conn_lookup(from_id, &worker, &skip))
            skip = 0;
    }
    uint64_t uid;
    if (!registry_lookup(room, &uid)) {
        send_error(req, 404, err_text(ERR_ROOM_NOT_FOUND));
        json_object_put(body);
        return;
    }
    json_object *chat = msg_chat_json(json_object_get(message), room, from_id);
    struct msg *m = msg_new(chat);
    json_object_put(chat);
    json_object_put(body);
    if (m) {
        store_publish(NULL, room, uid, m, skip);
        msg_unref(m);
    }
    send_json(req, 200, json1("sent", json_object_new_boolean(1)));
}

static void handle_rooms(struct evhttp_request *req, enum evhttp_cmd_type cmd, char **seg,
                         int n)
{
    if (n == 2) {
        if (cmd == EVHTTP_REQ_GET)
            send_json(req, 200, json1("rooms", registry_list()));
        else if (cmd == EVHTTP_REQ_POST)
            room_create(req);
        else
            send_error(req, 405, "method not allowed");
        return;
    }
    const char *room = seg[2];
    if (n == 3) {
        if (cmd == EVHTTP_REQ_GET)
            room_status(req, room);
        else if (cmd == EVHTTP_REQ_DELETE) {
            if (store_room_del(room))
                send_json(req, 200, json1("deleted", json_object_new_boolean(1)));
            else
                send_error(req, 404, err_text(ERR_ROOM_NOT_FOUND));
        } else
            send_error(req, 405, "method not allowed");
    } else if (n == 4 && !strcmp(seg[3], "pattern")) {
        if (cmd == EVHTTP_REQ_PUT)
            room_pattern(req, room);
        else
            send_error(req, 405, "method not allowed");
    } else if (n == 4 && !strcmp(seg[3], "broadcast")) {
        if (cmd == EVHTTP_REQ_POST)
            room_broadcast(req, room);
        else
            send_error(req, 405, "method not allowed");
    } else
        send_error(req, 404, "not found");
}

/* ----------------------------------------------- connection operations */

enum conn_op { OP_DETAILS, OP_MESSAGE, OP_ATTRIBUTES, OP_ADD, OP_REMOVE, OP_DISCONNECT };

/* One request on its way to a worker and back. */
struct conn_call {
    struct evhttp_request *req;
    enum conn_op op;
    uint64_t serial;
    json_object *body; /* owned by whichever thread holds the call */
    int status;
    char *answer; /* rendered JSON, made on the worker */
};

static void call_finish(evutil_socket_t fd, short what, void *arg)
{
    struct conn_call *call = arg;
    evhttp_add_header(evhttp_request_get_output_headers(call->req), "Content-Type",
                      "application/json");
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "%s\n", call->answer ? call->answer : "{}");
    evhttp_send_reply(call->req, call->status, call->status == 200 ? "OK" : "Error", out);
    evbuffer_free(out);
    free(call->answer);
    json_object_put(call->body);
    free(call);
}

/* Render OBJ (consumed) as the answer and send the call back to main. */
static void call_return(struct conn_call *call, int status, json_object *obj)
{
    call->status = status;
    call->answer = strdup(json_object_to_json_string_ext(obj, ROOMD_JSON_FLAGS));
    json_object_put(obj);
    json_object_put(call->body);
    call->body = NULL;
    event_base_once(main_base, -1, EV_TIMEOUT, call_finish, call, NULL);
}

static void call_return_error(struct conn_call *call, enum roomd_err err)
{
    call_return(call, err_status(err), json1("error", json_object_new_string(err_text(err))));
}

static bool attribute_read_only(const char *key)
{
    static const char *const ro[] = {"id", "type", "remoteIP", "remotePort", "connectedAt"};
    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
        if (!strcmp(key, ro[i]))
            return true;
    return false;
}

static void set_attributes(struct conn_call *call, struct conn *c)
{
    json_object_object_foreach(call->body, key, value)
    {
        (void)value;
        if (attribute_read_only(key)) {
            call_return_error(call, ERR_ATTRIBUTE_READ_ONLY);
            return;
        }
    }
    json_object_object_foreach(call->body, k2, v2)
    {
        if (v2 == NULL)
            json_object_object_del(c->attributes, k2);
        else
            json_object_object_add(c->attributes, k2, json_object_get(v2));
    }
    call_return(call, 200, json1("attributes", json_object_get(c->attributes)));
}

static void member_added(enum roomd_err err, bool added, void *ctx)
{
    struct conn_call *call = ctx;
    if (err)
        call_return_error(call, err);
    else
        call_return(call, 200, json1("added", json_object_new_boolean(added)));
}

static void run_conn_call(struct worker *w, void *arg)
{
    struct conn_call *call = arg;
    struct conn *c = worker_find_conn(w, call->serial);
    if (!c) {
        call_return_error(call, ERR_CONN_NOT_FOUND);
        return;
    }
    json_object *v, *force;
    switch (call->op) {
    case OP_DETAILS:
        call_return(call, 200, conn_details(c));
        break;
    case OP_MESSAGE:
        json_object_object_get_ex(call->body, "message", &v);
        conn_send_json(c, msg_chat_json(json_object_get(v), NULL, NULL));
        call_return(call, 200, json1("sent", json_object_new_boolean(1)));
        break;
    case OP_ATTRIBUTES:
        set_attributes(call, c);
        break;
    case OP_ADD:
        json_object_object_get_ex(call->body, "room", &v);
        verbs_add_member(c, json_object_get_string(v),
                         json_object_object_get_ex(call->body, "force", &force) &&
                             json_object_get_boolean(force),
                         member_added, call);
        break;
    case OP_REMOVE:
        call_return(call, 200, json1("removed", json_object_new_boolean(verbs_remove_member(c))));
        break;
    case OP_DISCONNECT:
        conn_close(c, "disconnected by server");
        call_return(call, 200, json1("disconnected", json_object_new_boolean(1)));
        break;
    }
}

/* Check the body a connection operation needs, before it leaves main. */
static bool body_ok(struct evhttp_request *req, enum conn_op op, json_object *body)
{
    json_object *v;
    if (op == OP_MESSAGE && (!json_object_object_get_ex(body, "message", &v) || v == NULL)) {
        send_error(req, 400, err_text(ERR_MESSAGE_REQUIRED));
        return false;
    }
    if (op == OP_ADD && (!json_object_object_get_ex(body, "room", &v) ||
                         !json_object_is_type(v, json_type_string) ||
                         json_object_get_string_len(v) == 0)) {
        send_error(req, 400, err_text(ERR_ROOM_REQUIRED));
        return false;
    }
    return true;
}

static void conn_call_start(struct evhttp_request *req, enum conn_op op, const char *id)
{
    int worker;
    uint64_t serial;
    if (!conn_lookup(id, &worker, &serial)) {
        send_error(req, 404, err_text(ERR_CONN_NOT_FOUND));
        return;
    }
    json_object *body = NULL;
    if (op == OP_MESSAGE || op == OP_ATTRIBUTES || op == OP_ADD) {
        if (!(body = read_body(req)))
            return;
        if (!body_ok(req, op, body)) {
            json_object_put(body);
            return;
        }
    }
    struct conn_call *call = calloc(1, sizeof(*call));
    if (!call) {
        json_object_put(body);
        send_error(req, 500, "out of memory");
        return;
    }
    call->req = req;
    call->op = op;
    call->serial = serial;
    call->body = body;
    worker_call(&workers[worker], run_conn_call, call);
}

/* GET /api/connections: every worker renders its connections' details. */
struct list_call {
    struct evhttp_request *req;
    atomic_int pending;
    pthread_mutex_t lock;
    struct evbuffer *out;
    bool first;
};

static void list_finish(evutil_socket_t fd, short what, void *arg)
{
    struct list_call *lc = arg;
    evbuffer_add(lc->out, "]}\n", 3);
    evhttp_add_header(evhttp_request_get_output_headers(lc->req), "Content-Type",
                      "application/json");
    evhttp_send_reply(lc->req, 200, "OK", lc->out);
    evbuffer_free(lc->out);
    pthread_mutex_destroy(&lc->lock);
    free(lc);
}

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
    if (atomic_fetch_sub(&lc->pending, 1) == 1)
        event_base_once(main_base, -1, EV_TIMEOUT, list_finish, lc, NULL);
}

static void list_connections(struct evhttp_request *req)
{
    struct list_call *lc = calloc(1, sizeof(*lc));
    if (!lc || !(lc->out = evbuffer_new())) {
        free(lc);
        send_error(req, 500, "out of memory");
        return;
    }
    lc->req = req;
    lc->first = true;
    atomic_init(&lc->pending, nworkers);
    pthread_mutex_init(&lc->lock, NULL);
    evbuffer_add(lc->out, "{\"connections\":[", 16);
    for (int i = 0; i < nworkers; i++)
        worker_call(&workers[i], list_worker, lc);
}

static void handle_connections(struct evhttp_request *req, enum evhttp_cmd_type cmd, char **seg,
                               int n)
{
    if (n == 2) {
        if (cmd == EVHTTP_REQ_GET)
            list_connections(req);
        else
            send_error(req, 405, "method not allowed");
        return;
    }
    const char *id = seg[2];
    const char *sub = n == 4 ? seg[3] : NULL;
    if (n == 3 && cmd == EVHTTP_REQ_GET)
        conn_call_start(req, OP_DETAILS, id);
    else if (n == 3 && cmd == EVHTTP_REQ_DELETE)
        conn_call_start(req, OP_DISCONNECT, id);
    else if (n == 3)
        send_error(req, 405, "method not allowed");
    else if (sub && !strcmp(sub, "message"))
        cmd == EVHTTP_REQ_POST ? conn_call_start(req, OP_MESSAGE, id)
                               : send_error(req, 405, "method not allowed");
    else if (sub && !strcmp(sub, "attributes"))
        cmd == EVHTTP_REQ_PATCH ? conn_call_start(req, OP_ATTRIBUTES, id)
                                : send_error(req, 405, "method not allowed");
    else if (sub && !strcmp(sub, "room")) {
        if (cmd == EVHTTP_REQ_PUT)
            conn_call_start(req, OP_ADD, id);
        else if (cmd == EVHTTP_REQ_DELETE)
            conn_call_start(req, OP_REMOVE, id);
        else
            send_error(req, 405, "method not allowed");
    } else
        send_error(req, 404, "not found");
}

/* ------------------------------------------------------------- stats */

static json_object *stats_json(void)
{
    uint64_t requests = 0, delivered = 0, dropped = 0;
    for (int i = 0; i < nworkers; i++) {
        requests += atomic_load_explicit(&workers[i].stat_requests, memory_order_relaxed);
        delivered += atomic_load_explicit(&workers[i].stat_delivered, memory_order_relaxed);
        dropped += atomic_load_explicit(&workers[i].stat_slow_dropped, memory_order_relaxed);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "connections", json_object_new_int64(conn_live_count()));
    json_object_object_add(o, "connectionsSocket",
                           json_object_new_int64(conn_count_by_transport(TRANSPORT_SOCKET)));
    json_object_object_add(o, "connectionsWebsocket",
                           json_object_new_int64(conn_count_by_transport(TRANSPORT_WEBSOCKET)));
    json_object_object_add(o, "rooms", json_object_new_int64(registry_room_count()));
    json_object_object_add(o, "messagesIn", json_object_new_uint64(requests));
    json_object_object_add(o, "messagesOut", json_object_new_uint64(delivered));
    json_object_object_add(o, "slowClientsDropped", json_object_new_uint64(dropped));
    json_object_object_add(o, "workers", json_object_new_int(nworkers));
    return o;
}

/* ------------------------------------------------------------ routing */

static void on_request(struct evhttp_request *req, void *arg)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!authorized(req)) {
        send_error(req, 401, "unauthorized");
        return;
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    char *seg[ADMIN_MAX_SEGMENTS] = {0};
    int n = path ? split_path(path, seg, ADMIN_MAX_SEGMENTS) : -1;
    if (n == 1 && !strcmp(seg[0], "metrics") && cmd == EVHTTP_REQ_GET)
        send_json(req, 200, stats_json()); /* Prometheus text comes with the ops work */
    else if (n < 2 || strcmp(seg[0], "api") != 0)
        send_error(req, n < 0 ? 400 : 404, n < 0 ? "malformed path" : "not found");
    else if (!strcmp(seg[1], "rooms"))
        handle_rooms(req, cmd, seg, n);
    else if (!strcmp(seg[1], "connections"))
        handle_connections(req, cmd, seg, n);
    else if (!strcmp(seg[1], "stats") && n == 2)
        cmd == EVHTTP_REQ_GET ? send_json(req, 200, stats_json())
                              : send_error(req, 405, "method not allowed");
    else
        send_error(req, 404, "not found");
    for (int i = 0; i < n; i++)
        free(seg[i]);
}

int admin_start(struct event_base *base)
{
    if (settings.admin_port == 0 || !*settings.admin_key)
        return 0;
    http = evhttp_new(base);
    if (!http)
        return -1;
    evhttp_set_max_body_size(http, ADMIN_MAX_BODY);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(http, on_request, NULL);
    if (!evhttp_bind_socket_with_handle(http, settings.admin_bind,
                                        (ev_uint16_t)settings.admin_port)) {
        log_error("cannot listen on %s:%d for the admin API", settings.admin_bind,
                  settings.admin_port);
        return -1;
    }
    return 0;
}

void admin_stop(void)
{
    if (http)
        evhttp_free(http);
    http = NULL;
}
