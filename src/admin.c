/* admin.c -- the admin HTTP API: the server side's operations as JSON.
 *
 * Requests arrive on the main thread (evhttp).  Room operations go straight
 * to the store.  Operations on one connection are posted to the worker that
 * owns it (worker_call); the worker does the work, renders the answer and
 * hands it back with event_base_once() on the main base, where evhttp sends
 * it.  Listing connections asks every worker and answers when all did.
 *
 * Every request needs "Authorization: Bearer ADMIN_KEY", compared in
 * constant time; with an empty admin_key the API is not started at all.
 *
 * The port is guarded like the chat listeners: at most
 * admin_max_connections connections at once (past it the listener pauses
 * and new ones wait in the kernel's queue, holding no descriptor of ours),
 * idle ones closed after admin_timeout seconds, and a pause instead of a
 * spin when accept() runs out of descriptors.  Everything a request carries
 * that could reach a client or a pattern is checked before use: strings and
 * keys UTF-8, no NUL in keys, pattern or attribute values. */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <sys/queue.h>

#include "acceptor.h"
#include "admin.h"
#include "api.h"
#include "config.h"
#include "history.h"
#include "ip_limits.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "registry.h"
#include "store.h"
#include "utf8.h"
#include "verbs.h"
#include "worker.h"

/* Largest request body the API reads (a message or a pattern).  evhttp
 * enforces it before roomd sees the request, answering 413 itself (its own
 * HTML page: libevent 2.1 has no hook for that answer), at once, unread. */
#define ADMIN_MAX_BODY (1024 * 1024)
#define ADMIN_MAX_SEGMENTS 8
/* Request bodies nest no deeper than this. */
#define ADMIN_JSON_DEPTH 32

static struct evhttp *http;

/* The admin port's guards, all on the main thread (see the top). */
static struct admin_port {
    struct evconnlistener *lev; /* owned by http once bound */
    struct event *resume_ev;    /* the end of a pause for want of descriptors */
    struct event *hook_ev;      /* hooks the close callback of new connections */
    long open;                  /* admin connections open now */
    bool backing_off;           /* paused: accept() ran out of descriptors */
    bool full_paused;           /* paused: admin_max_connections reached */
    bool stopping;              /* admin_stop() is freeing everything */
    time_t last_logged;         /* the last back-off warning */
    time_t full_logged;         /* the last "admin_max_connections reached" */
    /* Connections accepted this loop turn, their close callback not yet
     * hooked (each holds a reference to its bufferevent). */
    struct bufferevent **fresh;
    size_t nfresh, fresh_cap;
} port;

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

/* The authentication scheme; its name is case-insensitive (RFC 7235 2.1). */
static const char BEARER[] = "Bearer ";

/* Compare the bearer key in constant time (no early exit on a mismatch). */
static bool authorized(struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, BEARER, sizeof(BEARER) - 1) != 0)
        return false;
    const char *given = h + sizeof(BEARER) - 1, *want = settings.admin_key;
    size_t glen = strlen(given), wlen = strlen(want);
    unsigned char diff = glen != wlen;
    for (size_t i = 0; i < wlen; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return diff == 0;
}

/* Whether every string and key in O is UTF-8.  json-c copies raw bytes
 * of a string as they come, and what the API takes goes out to browsers
 * in WebSocket text frames, which must be UTF-8. */
static bool json_all_utf8(json_object *o, int depth)
{
    if (depth > ADMIN_JSON_DEPTH)
        return false;
    switch (json_object_get_type(o)) {
    case json_type_string:
        return utf8_valid(json_object_get_string(o), (size_t)json_object_get_string_len(o));
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++)
            if (!json_all_utf8(json_object_array_get_idx(o, i), depth + 1))
                return false;
        return true;
    case json_type_object: {
        json_object_object_foreach(o, key, val)
        {
            if (!utf8_valid(key, strlen(key)) || !json_all_utf8(val, depth + 1))
                return false;
        }
        return true;
    }
    default:
        return true;
    }
}

/* Whether some string in O holds a NUL: a pattern or attribute value
 * compared or shown as a C string would be cut short at it. */
static bool json_has_nul(json_object *o, int depth)
{
    if (depth > ADMIN_JSON_DEPTH)
        return true;
    switch (json_object_get_type(o)) {
    case json_type_string:
        return strlen(json_object_get_string(o)) != (size_t)json_object_get_string_len(o);
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++)
            if (json_has_nul(json_object_array_get_idx(o, i), depth + 1))
                return true;
        return false;
    case json_type_object: {
        json_object_object_foreach(o, key, val)
        {
            (void)key;
            if (json_has_nul(val, depth + 1))
                return true;
        }
        return false;
    }
    default:
        return false;
    }
}

/* The escape "\u0000" at S (LEN bytes left), in any case of hex digits. */
static bool is_nul_escape(const char *s, size_t len)
{
    return len >= 6 && s[0] == '\\' && s[1] == 'u' && s[2] == '0' && s[3] == '0' && s[4] == '0' &&
           s[5] == '0';
}

/* Whether the JSON TEXT has an object key holding a NUL ("a\u0000b").
 * json-c keeps keys as C strings, so such a key silently becomes "a": it
 * must be found in the text.  TEXT is valid JSON (parsed already): a
 * string followed by ':' is a key. */
static bool json_text_has_nul_key(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '"')
            continue;
        bool nul = false;
        for (i++; i < len && text[i] != '"'; i++) {
            if (text[i] != '\\')
                continue;
            nul = nul || is_nul_escape(text + i, len - i);
            i++; /* the escaped character: "\\" and "\"" end nothing */
        }
        size_t next = i + 1;
        while (next < len && isspace((unsigned char)text[next]))
            next++;
        if (nul && next < len && text[next] == ':')
            return true;
    }
    return false;
}

/* The body as a JSON object; NULL (and a 400 sent) when it is not one, or
 * when a string or key in it is not UTF-8 or a key holds a NUL. */
static json_object *read_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *text = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    json_object *obj = NULL;
    enum roomd_err err = ERR_NONE;
    if (len > 0)
        json_parse_strict(text, len, ADMIN_JSON_DEPTH, &obj);
    if (!json_object_is_type(obj, json_type_object))
        err = ERR_INVALID_REQUEST;
    else if (!json_all_utf8(obj, 0))
        err = ERR_INVALID_UTF8;
    else if (json_text_has_nul_key(text, len))
        err = ERR_INVALID_REQUEST;
    if (err) {
        json_object_put(obj);
        send_error(req, 400, err_text(err));
        return NULL;
    }
    return obj;
}

/* Whether the LEN bytes at RAW are strict percent-encoding: every '%'
 * followed by two hex digits, and nothing decoding to a control character
 * (a NUL or a line end cannot be in a room name or an id).  evhttp's own
 * decoder passes "a%zz" and "a%" through as they are. */
static bool segment_encoding_valid(const char *raw, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)raw[i];
        if (ch == '%') {
            if (len - i < 3 || !isxdigit((unsigned char)raw[i + 1]) ||
                !isxdigit((unsigned char)raw[i + 2]))
                return false;
            char hex[3] = {raw[i + 1], raw[i + 2], '\0'};
            ch = (unsigned char)strtoul(hex, NULL, 16);
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

/* Split the path into percent-decoded segments: "/api/rooms/a%2Fb" gives
 * {"api","rooms","a/b"}.  Returns the count, or -1 with *WHY when a
 * segment is malformed (ERR_MALFORMED_PATH) or not UTF-8 once decoded
 * (ERR_INVALID_UTF8: a room name is echoed back to clients). */
static int split_path(const char *path, char **seg, int max, enum roomd_err *why)
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
        char *raw = segment_encoding_valid(p, len) ? strndup(p, len) : NULL;
        size_t dlen = 0;
        seg[n] = raw ? evhttp_uridecode(raw, 0, &dlen) : NULL;
        free(raw);
        *why = !seg[n]                     ? ERR_MALFORMED_PATH
               : !utf8_valid(seg[n], dlen) ? ERR_INVALID_UTF8
                                           : ERR_NONE;
        if (*why) {
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

/* PUT .../pattern: {"key":K,"value":V} (both required; K null clears) or
 * {"pattern":{...}}.  A key or value holding a NUL is refused: the
 * pattern would compare the part before it. */
static void room_pattern(struct evhttp_request *req, const char *room)
{
    json_object *body = read_body(req), *key, *value, *pattern;
    if (!body)
        return;
    json_object *want = NULL; /* the new pattern; NULL clears */
    bool ok = true;
    if (json_object_object_get_ex(body, "pattern", &pattern)) {
        ok = pattern == NULL || json_object_is_type(pattern, json_type_object);
        want = pattern ? json_object_get(pattern) : NULL;
    } else if (json_object_object_get_ex(body, "key", &key)) {
        if (key && json_object_is_type(key, json_type_string)) {
            ok = json_object_object_get_ex(body, "value", &value) &&
                 strlen(json_object_get_string(key)) == (size_t)json_object_get_string_len(key);
            want = ok ? json1(json_object_get_string(key), json_object_get(value)) : NULL;
        } else
            ok = key == NULL;
    } else
        ok = false;
    if (ok && want && json_has_nul(want, 0))
        ok = false;
    enum roomd_err err = ok ? store_room_set_pattern(room, want) : ERR_INVALID_REQUEST;
    json_object_put(want);
    json_object_put(body);
    if (err)
        send_error(req, err_status(err), err_text(err));
    else
        send_json(req, 200, json1("pattern", registry_pattern(room)));
}

/* A broadcast "from" a connection, waiting to learn whether it exists (it
 * may be on another server: the store routes the question).  MESSAGE is
 * only touched on the main thread. */
struct admin_broadcast {
    struct evhttp_request *req;
    char *room, *from;
    json_object *message;
    char *error; /* why the sender was not found; NULL: it was */
};

/* The status of an error text from a connection operation. */
static int error_status(const char *text)
{
    return (!strcmp(text, err_text(ERR_ROOM_NOT_FOUND)) ||
            !strcmp(text, err_text(ERR_CONN_NOT_FOUND)))
               ? 404
               : 400;
}

/* On main: the sender is known (or not); broadcast and answer. */
static void broadcast_finish(evutil_socket_t fd, short what, void *arg)
{
    struct admin_broadcast *b = arg;
    if (b->error) {
        send_error(b->req, error_status(b->error), b->error);
        json_object_put(b->message);
    } else if (api_broadcast(b->from, b->room, b->message) < 0)
        send_error(b->req, 404, err_text(ERR_ROOM_NOT_FOUND));
    else
        send_json(b->req, 200, json1("sent", json_object_new_boolean(1)));
    free(b->error);
    free(b->room);
    free(b->from);
    free(b);
}

/* The C API's answer about the sender (any thread): back to main. */
static void broadcast_sender_checked(const char *error, const char *result, void *ud)
{
    struct admin_broadcast *b = ud;
    b->error = error ? strdup(error) : NULL;
    if (error && !b->error)
        b->error = strdup("out of memory");
    event_base_once(main_base, -1, EV_TIMEOUT, broadcast_finish, b, NULL);
}

/* POST .../broadcast {"message":M} with an optional "from": absent, null
 * or 0 is the server; a string must name a connection (404 otherwise, as
 * every other operation on a connection answers), anything else is 400. */
static void room_broadcast(struct evhttp_request *req, const char *room)
{
    json_object *body = read_body(req), *message, *from = NULL;
    if (!body)
        return;
    json_object_object_get_ex(body, "from", &from);
    bool from_server = from == NULL || (json_object_is_type(from, json_type_int) &&
                                        json_object_get_int64(from) == 0);
    if (!json_object_object_get_ex(body, "message", &message) || message == NULL) {
        send_error(req, 400, err_text(ERR_MESSAGE_REQUIRED));
    } else if (from_server) {
        if (api_broadcast(NULL, room, json_object_get(message)) < 0)
            send_error(req, 404, err_text(ERR_ROOM_NOT_FOUND));
        else
            send_json(req, 200, json1("sent", json_object_new_boolean(1)));
    } else if (!json_object_is_type(from, json_type_string)) {
        send_error(req, 400, err_text(ERR_INVALID_REQUEST));
    } else {
        struct admin_broadcast *b = calloc(1, sizeof(*b));
        if (b) {
            b->room = strdup(room);
            b->from = strdup(json_object_get_string(from));
        }
        if (!b || !b->room || !b->from) {
            if (b) {
                free(b->room);
                free(b->from);
            }
            free(b);
            send_error(req, 500, "out of memory");
        } else {
            b->req = req;
            b->message = json_object_get(message);
            api_conn_call(b->from, API_OP_DETAILS, NULL, NULL, false, broadcast_sender_checked, b);
        }
    }
    json_object_put(body);
}

/* A body field that must be an integer in [MIN, MAX] when present: *OUT
 * keeps -1 when absent; false when present and not such an integer. */
static bool int_field(json_object *body, const char *name, long min, long max, long *out)
{
    json_object *v;
    *out = -1;
    if (!json_object_object_get_ex(body, name, &v))
        return true;
    if (!json_object_is_type(v, json_type_int))
        return false;
    int64_t n = json_object_get_int64(v);
    if (n < min || n > max)
        return false;
    *out = (long)n;
    return true;
}

/* GET / PUT /api/rooms/ROOM/history: {"size":N,"ttl":S}, both optional
 * in a PUT but not both absent, no other keys. */
static void room_history(struct evhttp_request *req, enum evhttp_cmd_type cmd, const char *room)
{
    long size = -1, ttl = -1;
    if (cmd == EVHTTP_REQ_PUT) {
        json_object *body = read_body(req);
        if (!body)
            return;
        bool ok = json_object_is_type(body, json_type_object) &&
                  int_field(body, "size", 0, HISTORY_SIZE_MAX, &size) &&
                  int_field(body, "ttl", 1, HISTORY_TTL_MAX, &ttl) && (size >= 0 || ttl >= 0) &&
                  json_object_object_length(body) == (size >= 0) + (ttl >= 0);
        json_object_put(body);
        if (!ok) {
            send_error(req, 400, err_text(ERR_INVALID_REQUEST));
            return;
        }
    }
    json_object *o = api_room_history(room, size, ttl);
    if (o)
        send_json(req, 200, o);
    else
        send_error(req, 404, err_text(ERR_ROOM_NOT_FOUND));
}

/* GET /api/rooms/ROOM/messages[?limit=N]: what the room keeps. */
static void room_messages(struct evhttp_request *req, const char *room)
{
    long limit = -1;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (query && evhttp_parse_query_str(query, &params) < 0) {
        send_error(req, 400, err_text(ERR_INVALID_REQUEST));
        return;
    }
    const char *text = evhttp_find_header(&params, "limit");
    if (text) {
        char *end;
        errno = 0;
        long v = strtol(text, &end, 10);
        if (!*text || *end || errno || v < 0 || text[0] == '+' || text[0] == '-') {
            evhttp_clear_headers(&params);
            send_error(req, 400, err_text(ERR_INVALID_REQUEST));
            return;
        }
        limit = v;
    }
    evhttp_clear_headers(&params);
    json_object *o = api_room_messages(room, limit);
    if (o)
        send_json(req, 200, o);
    else
        send_error(req, 404, err_text(ERR_ROOM_NOT_FOUND));
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
    } else if (n == 4 && !strcmp(seg[3], "history")) {
        if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_PUT)
            room_history(req, cmd, room);
        else
            send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    } else if (n == 4 && !strcmp(seg[3], "messages")) {
        if (cmd == EVHTTP_REQ_GET)
            room_messages(req, room);
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
        a->status = error_status(error);
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

/* Check the body a connection operation needs, before it leaves main:
 * the message, the room (no NUL), "force" a boolean, attribute values
 * without NUL. */
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
    /* "force" forces only as the boolean true: "false" (a string) must not. */
    if (op == API_OP_ADD && json_object_object_get_ex(body, "force", &v) &&
        !json_object_is_type(v, json_type_boolean)) {
        send_error(req, 400, err_text(ERR_INVALID_REQUEST));
        return false;
    }
    /* An attribute value with a NUL would match a pattern by its start. */
    if (op == API_OP_ATTRIBUTES && json_has_nul(body, 0)) {
        send_error(req, 400, err_text(ERR_INVALID_REQUEST));
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
    struct history_stats hs;
    history_stats(&hs);
    json_object *h = json_object_new_object();
    json_object_object_add(h, "messagesKept", json_object_new_uint64(hs.messages));
    json_object_object_add(h, "bytesKept", json_object_new_uint64(hs.bytes));
    json_object_object_add(h, "recoveriesSucceeded", json_object_new_uint64(hs.recovered));
    json_object_object_add(h, "recoveriesFailed", json_object_new_uint64(hs.lost));
    json_object_object_add(o, "history", h);
    struct store_bus_stats bs;
    store_bus_stats(&bs);
    if (bs.shards > 0) { /* a Redis store: its bus and its shards */
        json_object *b = json_object_new_object(), *up = json_object_new_array();
        json_object_object_add(b, "messagesReceived", json_object_new_uint64(bs.received));
        json_object_object_add(b, "subscriptions", json_object_new_int64(bs.subscriptions));
        for (int i = 0; i < bs.shards; i++)
            json_object_array_add(up, json_object_new_boolean(bs.up >> i & 1));
        json_object_object_add(b, "shardsUp", up);
        json_object_object_add(o, "bus", b);
    }
    return o;
}

/* Prometheus text exposition of the same counters and more. */
static void send_metrics(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    /* With a bus, "up" is every shard's subscriber up (flags the admin
     * thread may read); a worker's own links are its thread's alone. */
    struct store_bus_stats bs;
    store_bus_stats(&bs);
    int store_up = bs.shards > 0 ? bs.up == (bs.shards >= 64 ? ~0ULL : (1ULL << bs.shards) - 1)
                                 : nworkers > 0 && store_available(&workers[0]);
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
                        registry_member_count(), store_up ? 1 : 0);
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
    struct history_stats hs;
    history_stats(&hs);
    evbuffer_add_printf(out,
                        "# HELP roomd_history_messages Messages kept by rooms' histories.\n"
                        "# TYPE roomd_history_messages gauge\nroomd_history_messages %llu\n"
                        "# HELP roomd_history_bytes Bytes kept by rooms' histories.\n"
                        "# TYPE roomd_history_bytes gauge\nroomd_history_bytes %llu\n"
                        "# HELP roomd_history_recoveries_total Joins and roomHistory with since.\n"
                        "# TYPE roomd_history_recoveries_total counter\n"
                        "roomd_history_recoveries_total{result=\"recovered\"} %llu\n"
                        "roomd_history_recoveries_total{result=\"lost\"} %llu\n",
                        (unsigned long long)hs.messages, (unsigned long long)hs.bytes,
                        (unsigned long long)hs.recovered, (unsigned long long)hs.lost);
    evbuffer_add_printf(out,
                        "# HELP roomd_bus_messages_received_total Chat messages received from "
                        "the bus, all shards.\n"
                        "# TYPE roomd_bus_messages_received_total counter\n"
                        "roomd_bus_messages_received_total %llu\n"
                        "# HELP roomd_bus_subscriptions Bus channels subscribed now.\n"
                        "# TYPE roomd_bus_subscriptions gauge\nroomd_bus_subscriptions %ld\n",
                        (unsigned long long)bs.received, bs.subscriptions);
    if (bs.shards > 0)
        evbuffer_add_printf(out, "# HELP roomd_redis_up Whether each Redis shard's link is up.\n"
                                 "# TYPE roomd_redis_up gauge\n");
    for (int i = 0; i < bs.shards; i++)
        evbuffer_add_printf(out, "roomd_redis_up{shard=\"%d\"} %d\n", i, (int)(bs.up >> i & 1));
    evbuffer_add_printf(out, "# HELP roomd_errors_total Error replies by text.\n"
                             "# TYPE roomd_errors_total counter\n");
    for (int e = 1; e < ERR__COUNT; e++) {
        uint64_t n = 0;
        for (int i = 0; i < nworkers; i++)
            n += atomic_load_explicit(&workers[i].stat_errors[e], memory_order_relaxed);
        evbuffer_add_printf(out, "roomd_errors_total{error=\"%s\"} %llu\n", err_text(e),
                            (unsigned long long)n);
    }
    uint64_t too_many, too_fast;
    ip_limits_refused(&too_many, &too_fast);
    evbuffer_add_printf(out,
                        "# HELP roomd_refused_per_ip_total Connections refused by a "
                        "per-address limit.\n"
                        "# TYPE roomd_refused_per_ip_total counter\n"
                        "roomd_refused_per_ip_total{limit=\"max_connections_per_ip\"} %llu\n"
                        "roomd_refused_per_ip_total{limit=\"connection_rate_per_ip\"} %llu\n",
                        (unsigned long long)too_many, (unsigned long long)too_fast);
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
    enum roomd_err why = ERR_MALFORMED_PATH;
    int n = path ? split_path(path, seg, ADMIN_MAX_SEGMENTS, &why) : -1;
    if (n == 1 && !strcmp(seg[0], "metrics"))
        cmd == EVHTTP_REQ_GET ? send_metrics(req)
                              : send_error(req, 405, err_text(ERR_METHOD_NOT_ALLOWED));
    else if (n < 0)
        send_error(req, 400, err_text(why));
    else if (n < 2 || strcmp(seg[0], "api") != 0)
        send_error(req, 404, err_text(ERR_NOT_FOUND));
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

/* ------------------------------------------------------ the admin port */

/* Pause or resume accepting: paused while backing off from EMFILE or while
 * admin_max_connections are open (re-read each time: SIGHUP may change
 * it).  A paused listener leaves new connections in the kernel's queue. */
static void port_update(void)
{
    if (!port.lev || port.stopping)
        return;
    bool full = port.open >= settings.admin_max_connections;
    if (full && !port.full_paused) {
        time_t now = time(NULL);
        if (now - port.full_logged >= ACCEPT_LOG_EVERY_SEC) {
            log_warn("admin listener: admin_max_connections (%ld) reached: new connections wait",
                     settings.admin_max_connections);
            port.full_logged = now;
        }
    }
    port.full_paused = full;
    if (full || port.backing_off)
        evconnlistener_disable(port.lev);
    else
        evconnlistener_enable(port.lev);
}

static void port_conn_gone(void)
{
    port.open--;
    port_update();
}

static void port_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    port_conn_gone();
}

/* evhttp gives no hook when it accepts a connection, only this one, asked
 * for the connection's bufferevent before the connection exists: count
 * the connection here, and hook its close callback once evhttp has made it
 * (port_hook_fresh, later in the same loop turn).  The extra reference
 * keeps the bufferevent readable until then even if evhttp frees it. */
static struct bufferevent *port_new_bufferevent(struct event_base *base, void *arg)
{
    /* evhttp applies its timeout to the connection right after this. */
    evhttp_set_timeout(http, (int)settings.admin_timeout);
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL; /* evhttp makes one itself: that connection goes uncounted */
    if (port.nfresh == port.fresh_cap) {
        size_t cap = port.fresh_cap ? 2 * port.fresh_cap : 16;
        struct bufferevent **grown = realloc(port.fresh, cap * sizeof(*grown));
        if (!grown)
            return bev;
        port.fresh = grown;
        port.fresh_cap = cap;
    }
    bufferevent_incref(bev);
    port.fresh[port.nfresh++] = bev;
    port.open++;
    event_active(port.hook_ev, EV_TIMEOUT, 1);
    port_update(); /* may pause the listener: its accept loop stops at once */
    return bev;
}

/* Hook the close callback of the connections accepted this turn.  evhttp
 * passes its connection as the bufferevent's callback argument; a
 * connection freed already has no callbacks left (bufferevent_free clears
 * them) and no descriptor. */
static void port_hook_fresh(evutil_socket_t fd, short what, void *arg)
{
    for (size_t i = 0; i < port.nfresh; i++) {
        struct bufferevent *bev = port.fresh[i];
        void *evcon = NULL;
        bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
        if (evcon && bufferevent_getfd(bev) >= 0)
            evhttp_connection_set_closecb(evcon, port_conn_closed, NULL);
        else
            port_conn_gone();
        bufferevent_decref(bev);
    }
    port.nfresh = 0;
}

static void port_resume(evutil_socket_t fd, short what, void *arg)
{
    port.backing_off = false;
    port_update();
}

static void port_accept_error(struct evconnlistener *lev, void *arg)
{
    if (!acceptor_backoff_needed("admin", EVUTIL_SOCKET_ERROR(), &port.last_logged))
        return;
    port.backing_off = true;
    port_update();
    struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
    event_add(port.resume_ev, &tv);
}

int admin_start(struct event_base *base)
{
    if (settings.admin_port == 0 || !*settings.admin_key)
        return 0;
    http = evhttp_new(base);
    port.resume_ev = evtimer_new(base, port_resume, NULL);
    port.hook_ev = event_new(base, -1, 0, port_hook_fresh, NULL);
    if (!http || !port.resume_ev || !port.hook_ev)
        return -1;
    evhttp_set_max_body_size(http, ADMIN_MAX_BODY);
    evhttp_set_timeout(http, (int)settings.admin_timeout);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(http, on_request, NULL);
    evhttp_set_bevcb(http, port_new_bufferevent, NULL);
    port.lev = acceptor_bind(base, "admin", settings.admin_bind, settings.admin_port, NULL, NULL);
    if (!port.lev)
        return -1;
    evconnlistener_set_error_cb(port.lev, port_accept_error);
    if (!evhttp_bind_listener(http, port.lev)) {
        log_error("admin listener: cannot serve HTTP on %s:%d", settings.admin_bind,
                  settings.admin_port);
        evconnlistener_free(port.lev);
        port.lev = NULL;
        return -1;
    }
    return 0;
}

void admin_stop(void)
{
    port.stopping = true; /* the close callbacks evhttp_free runs touch nothing */
    if (http)
        evhttp_free(http); /* the listener with it */
    http = NULL;
    port.lev = NULL;
    for (size_t i = 0; i < port.nfresh; i++)
        bufferevent_decref(port.fresh[i]);
    port.nfresh = 0;
    free(port.fresh);
    port.fresh = NULL;
    port.fresh_cap = 0;
    if (port.resume_ev)
        event_free(port.resume_ev);
    if (port.hook_ev)
        event_free(port.hook_ev);
    port.resume_ev = port.hook_ev = NULL;
}
