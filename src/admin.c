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
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admin.h"
#include "api.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "registry.h"
#include "store.h"
#include "verbs.h"
#include "worker.h"

/* Largest request body the API reads (a message or a pattern).  evhttp
 * enforces it before roomd sees the request, answering 413 itself (its own
 * HTML page: libevent 2.1 has no hook for that answer), at once, unread. */
#define ADMIN_MAX_BODY (1024 * 1024)
/* Seconds an admin HTTP connection may stay idle mid-request. */
#define ADMIN_TIMEOUT_SEC 10
#define ADMIN_MAX_SEGMENTS 8
/* Request bodies nest no deeper than this. */
#define ADMIN_JSON_DEPTH 32

static struct evhttp *http;

/* ------------------------------------------------------------ replies */

static void send_json(struct evhttp_request *req, int status, json_object *obj)
{
    struct evbuffer *out = evbuffer_new();
    size_t len;
    const char *text = json_object_to_json_string_length(obj, ROOMD_JSON_FLAGS, &len);
    evbuffer_add(out, text, len);
    evbuffer_add(out, "\n", 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
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
    if (len > 0)
        json_parse_strict(text, len, ADMIN_JSON_DEPTH, &obj);
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
            return n + 1; /* longer than any route: not found */
        char *raw = strndup(p, len);
        size_t dlen;
        seg[n] = raw ? evhttp_uridecode(raw, 0, &dlen) : NULL;
        free(raw);
        if (!seg[n] || strlen(seg[n]) != dlen) { /* bad %-encoding, or %00 */
            for (int i = 0; i <= n; i++)
                free(seg[i]);
            return -1;
        }
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
    json_object *st = api_room_status(room), *pattern = registry_pattern(room), *v;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "exists", json_object_new_boolean(pattern != NULL));
    json_object_object_add(o, "room", json_object_new_string(room));
    json_object_object_get_ex(st, "members", &v);
    json_object_object_add(o, "members", json_object_get(v));
    json_object_object_get_ex(st, "membersCount", &v);
    json_object_object_add(o, "membersCount", json_object_get(v));
    json_object_object_add(o, "pattern", pattern ? pattern : json_object_new_object());
    json_object_put(st);
    send_json(req, 200, o);
}

static void room_create(struct evhttp_request *req)
{
    json_object *body = read_body(req), *v;
    if (!body)
        return;
    bool is_string =
        json_object_object_get_ex(body, "room", &v) && json_object_is_type(v, json_type_string);
    const char *room = is_string ? json_object_get_string(v) : "";
    size_t len = is_string ? (size_t)json_object_get_string_len(v) : 0;
    if (len == 0)
        send_error(req, 400, err_text(ERR_ROOM_REQUIRED));
    else if (strlen(room) != len || /* a NUL inside */
             !verbs_room_name_valid(room, len, (size_t)settings.max_room_name))
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
    } else {
        const char *from_id = json_object_object_get_ex(body, "from", &from) &&
                                      json_object_is_type(from, json_type_string)
                                  ? json_object_get_string(from)
                                  : NULL;
        if (api_broadcast(from_id, room, json_object_get(message)) < 0)
            send_error(req, 404, err_text(ERR_ROOM_NOT_FOUND));
        else
            send_json(req, 200, json1("sent", json_object_new_boolean(1)));
    }
    json_object_put(body);
}

static void handle_rooms(struct evhttp_request *req, enum evhttp_cmd_type cmd, char **seg, int n)
{
    if (n == 2) {
        if (cmd == EVHTTP_REQ_GET)
            send_json(req, 200, json1("rooms", store_room_list()));
        else if (cmd == EVHTTP_REQ_POST)
            room_create(req);
        else
            send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
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
            send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    } else if (n == 4 && !strcmp(seg[3], "pattern")) {
        if (cmd == EVHTTP_REQ_PUT)
            room_pattern(req, room);
        else
            send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    } else if (n == 4 && !strcmp(seg[3], "broadcast")) {
        if (cmd == EVHTTP_REQ_POST)
            room_broadcast(req, room);
        else
            send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    } else
        send_error(req, 404, err_text(ERR_NOT_FOUND));
}

/* ----------------------------------------------- connection operations */

/* An answer computed on a worker, on its way back to the main thread. */
struct admin_answer {
    struct evhttp_request *req;
    int status;
    char *body;
};

static void answer_send(evutil_socket_t fd, short what, void *arg)
{
    struct admin_answer *a = arg;
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "%s\n", a->body ? a->body : "{\"error\":\"out of memory\"}");
    evhttp_add_header(evhttp_request_get_output_headers(a->req), "Content-Type",
                      "application/json");
    evhttp_send_reply(a->req, a->status, a->status == 200 ? "OK" : "Error", out);
    evbuffer_free(out);
    free(a->body);
    free(a);
}

/* The C API's callback (on a worker, or at once on main): copy the answer
 * and hand it to the main thread, the only one that may touch evhttp. */
static void answer_cb(const char *error, const char *result, void *ud)
{
    struct admin_answer *a = ud;
    if (error) {
        json_object *o = json1("error", json_object_new_string(error));
        a->body = strdup(json_object_to_json_string_ext(o, ROOMD_JSON_FLAGS));
        json_object_put(o);
        a->status = (!strcmp(error, err_text(ERR_ROOM_NOT_FOUND)) ||
                     !strcmp(error, err_text(ERR_CONN_NOT_FOUND)))
                        ? 404
                        : 400;
    } else {
        a->body = strdup(result);
        a->status = 200;
    }
    event_base_once(main_base, -1, EV_TIMEOUT, answer_send, a, NULL);
}

static struct admin_answer *answer_new(struct evhttp_request *req)
{
    struct admin_answer *a = calloc(1, sizeof(*a));
    if (!a)
        send_error(req, 500, "out of memory");
    else
        a->req = req;
    return a;
}

/* Check the body a connection operation needs, before it leaves main. */
static bool body_ok(struct evhttp_request *req, int op, json_object *body)
{
    json_object *v;
    if (op == API_OP_MESSAGE && (!json_object_object_get_ex(body, "message", &v) || v == NULL)) {
        send_error(req, 400, err_text(ERR_MESSAGE_REQUIRED));
        return false;
    }
    if (op == API_OP_ADD &&
        (!json_object_object_get_ex(body, "room", &v) ||
         !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)) {
        send_error(req, 400, err_text(ERR_ROOM_REQUIRED));
        return false;
    }
    if (op == API_OP_ADD &&
        strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
        send_error(req, 400, err_text(ERR_INVALID_ROOM_NAME));
        return false;
    }
    return true;
}

static void conn_call_start(struct evhttp_request *req, int op, const char *id)
{
    json_object *body = NULL, *arg = NULL, *v;
    const char *room = NULL;
    bool force = false;
    if (op == API_OP_MESSAGE || op == API_OP_ATTRIBUTES || op == API_OP_ADD) {
        if (!(body = read_body(req)))
            return;
        if (!body_ok(req, op, body)) {
            json_object_put(body);
            return;
        }
    }
    /* The argument goes to another thread: it must share nothing with the
     * body (json-c's reference counts are not for threads). */
    if (op == API_OP_MESSAGE) {
        json_object_object_get_ex(body, "message", &v);
        if (json_object_deep_copy(v, &arg, NULL) != 0) {
            send_error(req, 500, "out of memory");
            json_object_put(body);
            return;
        }
    } else if (op == API_OP_ATTRIBUTES) {
        arg = body;
        body = NULL;
    } else if (op == API_OP_ADD) {
        json_object_object_get_ex(body, "room", &v);
        room = json_object_get_string(v);
        force = json_object_object_get_ex(body, "force", &v) && json_object_get_boolean(v);
    }
    struct admin_answer *a = answer_new(req);
    if (a)
        api_conn_call(id, op, arg, room, force, answer_cb, a);
    else
        json_object_put(arg);
    json_object_put(body);
}

static void list_connections(struct evhttp_request *req)
{
    struct admin_answer *a = answer_new(req);
    if (a)
        roomd_list_connections(answer_cb, a);
}

static void handle_connections(struct evhttp_request *req, enum evhttp_cmd_type cmd, char **seg,
                               int n)
{
    if (n == 2) {
        if (cmd == EVHTTP_REQ_GET)
            list_connections(req);
        else
            send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
        return;
    }
    const char *id = seg[2];
    const char *sub = n == 4 ? seg[3] : NULL;
    if (n == 3 && cmd == EVHTTP_REQ_GET)
        conn_call_start(req, API_OP_DETAILS, id);
    else if (n == 3 && cmd == EVHTTP_REQ_DELETE)
        conn_call_start(req, API_OP_DISCONNECT, id);
    else if (n == 3)
        send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    else if (sub && !strcmp(sub, "message"))
        cmd == EVHTTP_REQ_POST ? conn_call_start(req, API_OP_MESSAGE, id)
                               : send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    else if (sub && !strcmp(sub, "attributes"))
        cmd == EVHTTP_REQ_PATCH ? conn_call_start(req, API_OP_ATTRIBUTES, id)
                                : send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    else if (sub && !strcmp(sub, "room")) {
        if (cmd == EVHTTP_REQ_PUT)
            conn_call_start(req, API_OP_ADD, id);
        else if (cmd == EVHTTP_REQ_DELETE)
            conn_call_start(req, API_OP_REMOVE, id);
        else
            send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    } else
        send_error(req, 404, err_text(ERR_NOT_FOUND));
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

/* Prometheus text exposition of the same counters and more. */
static void send_metrics(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out,
                        "# HELP roomd_connections Connected clients by transport.\n"
                        "# TYPE roomd_connections gauge\n"
                        "roomd_connections{transport=\"socket\"} %ld\n"
                        "roomd_connections{transport=\"websocket\"} %ld\n"
                        "# HELP roomd_rooms Rooms.\n# TYPE roomd_rooms gauge\nroomd_rooms %ld\n"
                        "# HELP roomd_members Room members on this server.\n"
                        "# TYPE roomd_members gauge\nroomd_members %ld\n"
                        "# HELP roomd_store_up Whether the store is reachable.\n"
                        "# TYPE roomd_store_up gauge\nroomd_store_up %d\n",
                        conn_count_by_transport(TRANSPORT_SOCKET),
                        conn_count_by_transport(TRANSPORT_WEBSOCKET), registry_room_count(),
                        registry_member_count(),
                        nworkers > 0 && store_available(&workers[0]) ? 1 : 0);
    static const struct {
        const char *name, *help;
        size_t offset;
    } counters[] = {
        {"roomd_requests_total", "Requests received.", offsetof(struct worker, stat_requests)},
        {"roomd_deliveries_total", "Messages delivered to clients.",
         offsetof(struct worker, stat_delivered)},
        {"roomd_delivered_bytes_total", "Bytes of delivered messages.",
         offsetof(struct worker, stat_bytes_out)},
        {"roomd_slow_clients_dropped_total", "Clients dropped past output_limit.",
         offsetof(struct worker, stat_slow_dropped)},
        {"roomd_worker_connections", "Connections owned by each worker.",
         offsetof(struct worker, stat_connections)},
    };
    for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]); k++) {
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", counters[k].name, counters[k].help,
                            counters[k].name,
                            strstr(counters[k].name, "_total") ? "counter" : "gauge");
        for (int i = 0; i < nworkers; i++) {
            _Atomic uint64_t *v = (_Atomic uint64_t *)((char *)&workers[i] + counters[k].offset);
            evbuffer_add_printf(out, "%s{worker=\"%d\"} %llu\n", counters[k].name, i,
                                (unsigned long long)atomic_load_explicit(v, memory_order_relaxed));
        }
    }
    evbuffer_add_printf(out, "# HELP roomd_errors_total Error replies by text.\n"
                             "# TYPE roomd_errors_total counter\n");
    for (int e = 1; e < ERR__COUNT; e++) {
        uint64_t n = 0;
        for (int i = 0; i < nworkers; i++)
            n += atomic_load_explicit(&workers[i].stat_errors[e], memory_order_relaxed);
        evbuffer_add_printf(out, "roomd_errors_total{error=\"%s\"} %llu\n", err_text(e),
                            (unsigned long long)n);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

/* ------------------------------------------------------------ routing */

static void on_request(struct evhttp_request *req, void *arg)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!authorized(req)) {
        send_error(req, 401, err_text(ERR_UNAUTHORIZED));
        return;
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    char *seg[ADMIN_MAX_SEGMENTS] = {0};
    int n = path ? split_path(path, seg, ADMIN_MAX_SEGMENTS) : -1;
    if (n == 1 && !strcmp(seg[0], "metrics"))
        cmd == EVHTTP_REQ_GET ? send_metrics(req)
                              : send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    else if (n < 2 || strcmp(seg[0], "api") != 0)
        send_error(req, n < 0 ? 400 : 404, err_text(n < 0 ? ERR_MALFORMED_PATH : ERR_NOT_FOUND));
    else if (!strcmp(seg[1], "rooms"))
        handle_rooms(req, cmd, seg, n);
    else if (!strcmp(seg[1], "connections"))
        handle_connections(req, cmd, seg, n);
    else if (!strcmp(seg[1], "stats") && n == 2)
        cmd == EVHTTP_REQ_GET ? send_json(req, 200, stats_json())
                              : send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    else
        send_error(req, 404, err_text(ERR_NOT_FOUND));
    for (int i = 0; i < n && i < ADMIN_MAX_SEGMENTS; i++)
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
    evhttp_set_timeout(http, ADMIN_TIMEOUT_SEC);
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
