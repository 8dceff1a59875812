/* verbs.c -- the verbs of the chat protocol.
 *
 * Each verb checks its arguments, asks the store for what must be shared
 * and replies from the store's callback.  Replies carry the number of the
 * request they answer (messageCount), counted when the request arrived. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "history.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "registry.h"
#include "request.h"
#include "store.h"
#include "token.h"
#include "utf8.h"
#include "verbs.h"

static const char *const TEXT_ENTERED = "I have entered the room";
static const char *const TEXT_LEFT = "I have left the room";

/* A request waiting for the store: who asked, which request, which room. */
struct pending {
    struct conn *c;
    uint64_t count;
    char *room;
    bool welcome;              /* the default-room join of a new session */
    verbs_member_cb member_cb; /* addMember from the server side */
    void *member_ctx;
    json_object *attrs; /* the attributes the store checks the pattern with */
    bool has_since;     /* a JSON roomChange / listenToRoom with "since" */
    struct history_position since;
    uint64_t uid; /* the room heard, while the store reads its position */
    long limit;   /* roomHistory */
};

static struct pending *pending_new(struct conn *c, uint64_t count, const char *room, size_t len)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->c = c;
    p->count = count;
    conn_hold(c);
    if (room && !(p->room = strndup(room, len))) {
        free(p);
        return NULL;
    }
    return p;
}

static void pending_free(struct pending *p)
{
    json_object_put(p->attrs);
    conn_release(p->c);
    free(p->room);
    free(p);
}

bool verbs_room_name_valid(const char *name, size_t len, size_t max)
{
    if (len == 0 || len > max || !utf8_valid(name, len))
        return false;
    const unsigned char *s = (const unsigned char *)name;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            return false;
        if (s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
            return false; /* C1 controls, U+0080..U+009F */
    }
    return true;
}

/* Say TEXT into ROOM as C (announcements), unless announcements are off
 * or the room has used its announcement budget for this second
 * (announce_rate): past it, joins and leaves of that room go unannounced
 * until the next second, so however many connections churn through a
 * room, its members get at most announce_rate announcements a second and
 * an honest reader is never buried under them (roomd-protocol(7)). */
static void announce(struct conn *c, const char *room, uint64_t uid, const char *text)
{
    if (!settings.announcements || !registry_announce_allowed(room, uid, settings.announce_rate))
        return;
    json_object *chat = msg_chat_json(json_object_new_string(text), room, c->id);
    struct msg *m = msg_new(chat);
    json_object_put(chat);
    if (!m)
        return;
    store_publish(c->worker, room, uid, m, c->serial, c->id, false, NULL, NULL);
    msg_unref(m);
}

/* Leave the current room, announcing it if the room still exists.
 * Returns whether the connection was in a room. */
static bool leave_room(struct conn *c)
{
    if (!c->room)
        return false;
    char *room = c->room;
    uint64_t uid = c->room_uid;
    c->room = NULL;
    c->room_uid = 0;
    worker_unsubscribe(c->worker, room, uid, c, SUB_MEMBER);
    if (store_room_alive(room, uid)) {
        store_leave(c->worker, room, uid, c->id, NULL, NULL);
        announce(c, room, uid, TEXT_LEFT);
    }
    free(room);
    return true;
}

/* Whether C is a member of the live room NAME. */
static bool in_live_room(const struct conn *c, const char *name)
{
    return c->room && strcmp(c->room, name) == 0 && store_room_alive(c->room, c->room_uid);
}

/* Fetch and check a ROOM argument; replies with the error and returns
 * NULL when it is missing or malformed. */
static const char *room_arg(struct conn *c, uint64_t count, const struct request *req, size_t *len)
{
    const char *room = request_arg(req, "room", len);
    if (!room || *len == 0) {
        conn_reply_err(c, count, ERR_ROOM_REQUIRED);
        return NULL;
    }
    if (!verbs_room_name_valid(room, *len, (size_t)settings.max_room_name) ||
        strlen(room) != *len) {
        conn_reply_err(c, count, ERR_INVALID_ROOM_NAME);
        return NULL;
    }
    return room;
}

/* roomChange, roomLeave, listenToRoom and silenceRoom each take a token
 * of the connection's join bucket (join_rate / join_burst): each costs a
 * store operation and most an announcement to a whole room, so a client
 * pipelining them is answered "rate limit exceeded" past the rate instead
 * of making every member of the room pay for it.  Replies with the error
 * and returns false when there is no token. */
static bool join_allowed(struct conn *c, uint64_t count)
{
    if (conn_join_allowed(c))
        return true;
    conn_reply_err(c, count, ERR_RATE_LIMIT);
    return false;
}

/* Whether the embedding program's join hook lets C into ROOM. */
static bool join_hook_allows(struct conn *c, const char *room)
{
    return !api_hooks.on_join || api_hooks.on_join(c, room, api_hooks.ud);
}

/* ------------------------------------------------------------ history */

/* The "since" of a JSON request into P: false (and the error sent) when it
 * is there but malformed. */
static bool since_arg(struct conn *c, uint64_t count, const struct request *req, struct pending *p)
{
    json_object *since;
    if (!req->json || !json_object_object_get_ex(req->json, "since", &since))
        return true;
    if (!history_parse_since(since, &p->since)) {
        conn_reply_err(c, count, ERR_INVALID_REQUEST);
        return false;
    }
    p->has_since = true;
    return true;
}

/* C starts hearing ROOM (generation UID) as FLAG; with history, the
 * position comes back in H and, when P asked with a since, the messages
 * C missed are sent first (before the reply and anything live). */
static json_object *hearing_json(const struct pending *p, const struct history_read *h);
static void heard(const struct store_result *res, void *ctx);

/* C starts hearing ROOM (generation UID) as FLAG.  With history, its
 * position comes back in H and, when P asked with a since, the messages it
 * missed are sent first (before the reply and anything live).  Returns true
 * when the store reads the position later (Redis): the slot is held
 * meanwhile, and heard() replies to P and frees it. */
static bool hear(struct conn *c, const char *room, uint64_t uid, unsigned flag, struct pending *p,
                 struct history_read *h)
{
    *h = (struct history_read){0};
    bool history = store_keeps_history() && !p->welcome && !p->member_cb;
    if (history && store_reads_streams()) {
        worker_subscribe(c->worker, room, uid, c, flag, NULL, true);
        p->uid = uid;
        store_stream_read(c->worker, room, p->has_since ? &p->since : NULL, -1, false, heard, p);
        return true;
    }
    if (history && p->has_since)
        h->since = &p->since;
    worker_subscribe(c->worker, room, uid, c, flag, history ? h : NULL, false);
    for (size_t i = 0; i < h->nreplay; i++)
        conn_send_msg(c, h->replay[i]);
    if (p->has_since)
        history_count_recovery(h->recovered);
    return false;
}

/* The store read the position of a join or listen (see hear): the missed
 * messages, the reply, then what the held slot collected meanwhile.  A
 * store that could not answer leaves the reply without a position. */
static void heard(const struct store_result *res, void *ctx)
{
    struct pending *p = ctx;
    struct conn *c = p->c;
    if (!c->dead) {
        struct history_read none = {.since = res->read ? res->read->since : NULL};
        const struct history_read *r = res->err || !res->read ? &none : res->read;
        for (size_t i = 0; i < r->nreplay; i++)
            conn_send_msg(c, r->replay[i]);
        if (p->has_since)
            history_count_recovery(r->recovered);
        conn_reply_ok_with(c, p->count, json_object_new_boolean(1), true, hearing_json(p, r));
        worker_release(c->worker, p->uid, c, r);
    }
    pending_free(p);
}

/* The fields a join reply carries after data: the position and, when the
 * client asked with a since, whether it recovered. */
static json_object *hearing_json(const struct pending *p, const struct history_read *h)
{
    if (!h->has_position && !p->has_since)
        return NULL;
    json_object *o = json_object_new_object();
    if (h->has_position)
        json_object_object_add(o, "position", history_position_json(&h->position));
    if (p->has_since)
        json_object_object_add(o, "recovered", json_object_new_boolean(h->recovered));
    return o;
}

/* ---------------------------------------------------------- the welcome */

/* The welcome goes first: requests that arrived before it wait for it. */
static void send_welcome(struct conn *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "welcome", json_object_new_string(settings.welcome_message));
    json_object_object_add(o, "room", c->room ? json_object_new_string(c->room) : NULL);
    json_object_object_add(o, "context", json_object_new_string("api"));
    conn_send_json(c, o);
    conn_resume_input(c);
}

/* -------------------------------------------------------------- joining */

static void joined(const struct store_result *res, void *ctx)
{
    struct pending *p = ctx;
    struct conn *c = p->c;
    if (c->dead) { /* gone while the store worked: undo the join */
        if (!res->err)
            store_leave(c->worker, p->room, res->uid, c->id, NULL, NULL);
        if (p->member_cb)
            p->member_cb(ERR_CONN_NOT_FOUND, false, p->member_ctx);
        pending_free(p);
        return;
    }
    if (res->err) {
        if (p->member_cb) {
            p->member_cb(res->err, false, p->member_ctx);
        } else if (p->welcome) {
            log_info("connection %s could not join default room '%s': %s", c->id, p->room,
                     err_text(res->err));
            send_welcome(c);
        } else
            conn_reply_err(c, p->count, res->err);
        pending_free(p);
        return;
    }
    leave_room(c);
    c->room = p->room;
    c->room_uid = res->uid;
    c->room_joined_at = res->joined_at;
    p->room = NULL;
    struct history_read h;
    bool later = hear(c, c->room, c->room_uid, SUB_MEMBER, p, &h);
    announce(c, c->room, c->room_uid, TEXT_ENTERED); /* before anything it says next */
    if (later)
        return; /* heard() replies */
    if (p->member_cb)
        p->member_cb(ERR_NONE, true, p->member_ctx);
    else if (p->welcome)
        send_welcome(c);
    else
        conn_reply_ok_with(c, p->count, json_object_new_boolean(1), true, hearing_json(p, &h));
    history_read_free(&h);
    pending_free(p);
}

void verbs_session_start(struct conn *c)
{
    c->session = true;
    if (api_hooks.on_connect && !api_hooks.on_connect(c, api_hooks.ud)) {
        conn_close(c, "disconnected by server");
        return;
    }
    const char *room = settings.default_room;
    struct pending *p;
    if (*room == '\0' || !join_hook_allows(c, room) ||
        !(p = pending_new(c, 0, room, strlen(room)))) {
        send_welcome(c);
        return;
    }
    p->welcome = true;
    conn_pause_input(c);
    store_join(c->worker, room, c->id, p->attrs = conn_attributes(c), joined, p);
}

static void verb_room_change(struct conn *c, uint64_t count, const struct request *req)
{
    if (!join_allowed(c, count))
        return;
    size_t len;
    const char *room = room_arg(c, count, req, &len);
    if (!room)
        return;
    if (in_live_room(c, room)) {
        conn_reply_err(c, count, ERR_ALREADY_IN_ROOM);
        return;
    }
    if (!join_hook_allows(c, room)) {
        conn_reply_err(c, count, ERR_NOT_AUTHORIZED);
        return;
    }
    struct pending *p = pending_new(c, count, room, len);
    if (!p) {
        conn_reply_err(c, count, ERR_STORE_UNAVAILABLE);
        return;
    }
    if (!since_arg(c, count, req, p)) {
        pending_free(p);
        return;
    }
    store_join(c->worker, p->room, c->id, p->attrs = conn_attributes(c), joined, p);
}

void verbs_add_member(struct conn *c, const char *room, bool force, verbs_member_cb cb, void *ctx)
{
    size_t len = strlen(room);
    if (len == 0) {
        cb(ERR_ROOM_REQUIRED, false, ctx);
        return;
    }
    if (!verbs_room_name_valid(room, len, (size_t)settings.max_room_name)) {
        cb(ERR_INVALID_ROOM_NAME, false, ctx);
        return;
    }
    if (in_live_room(c, room)) {
        cb(ERR_NONE, false, ctx);
        return;
    }
    if (!force && !join_hook_allows(c, room)) {
        cb(ERR_NOT_AUTHORIZED, false, ctx);
        return;
    }
    struct pending *p = pending_new(c, 0, room, len);
    if (!p) {
        cb(ERR_STORE_UNAVAILABLE, false, ctx);
        return;
    }
    p->member_cb = cb;
    p->member_ctx = ctx;
    store_join(c->worker, p->room, c->id, force ? NULL : (p->attrs = conn_attributes(c)), joined,
               p);
}

bool verbs_remove_member(struct conn *c)
{
    return leave_room(c);
}

static void verb_room_leave(struct conn *c, uint64_t count, const struct request *req)
{
    if (!join_allowed(c, count))
        return;
    conn_reply_ok(c, count, json_object_new_boolean(leave_room(c)), true);
}

static void viewed(const struct store_result *res, void *ctx)
{
    struct pending *p = ctx;
    if (p->c->dead)
        json_object_put(res->data);
    else if (res->err)
        conn_reply_err(p->c, p->count, res->err);
    else
        conn_reply_ok(p->c, p->count, res->data, true);
    pending_free(p);
}

static void verb_room_view(struct conn *c, uint64_t count, const struct request *req)
{
    if (!c->room) {
        conn_reply_err(c, count, ERR_NOT_IN_ROOM);
        return;
    }
    struct pending *p = pending_new(c, count, NULL, 0);
    if (!p) {
        conn_reply_err(c, count, ERR_STORE_UNAVAILABLE);
        return;
    }
    store_room_view(c->worker, c->room, c->room_uid, settings.room_view_limit, viewed, p);
}

/* ------------------------------------------------------------ listening */

static void listened(const struct store_result *res, void *ctx)
{
    struct pending *p = ctx;
    struct conn *c = p->c;
    if (c->dead) {
        /* nothing to undo: listening is local */
    } else if (res->err) {
        conn_reply_err(c, p->count, res->err);
    } else if (conn_listen_find(c, p->room)) {
        conn_reply_err(c, p->count, ERR_ALREADY_LISTENING); /* raced itself */
    } else if (c->nlistening >= settings.max_listening) {
        conn_reply_err(c, p->count, ERR_TOO_MANY_LISTENING); /* pipelined past the cap */
    } else if (!conn_listen_add(c, p->room, res->uid)) {
        conn_reply_err(c, p->count, ERR_STORE_UNAVAILABLE);
    } else {
        struct history_read h;
        if (hear(c, p->room, res->uid, SUB_LISTENER, p, &h))
            return; /* heard() replies */
        conn_reply_ok_with(c, p->count, json_object_new_boolean(1), true, hearing_json(p, &h));
        history_read_free(&h);
    }
    pending_free(p);
}

static void verb_listen(struct conn *c, uint64_t count, const struct request *req)
{
    if (!join_allowed(c, count))
        return;
    size_t len;
    const char *room = room_arg(c, count, req, &len);
    if (!room)
        return;
    if (conn_listen_find(c, room)) {
        conn_reply_err(c, count, ERR_ALREADY_LISTENING);
        return;
    }
    if (c->nlistening >= settings.max_listening) {
        conn_reply_err(c, count, ERR_TOO_MANY_LISTENING);
        return;
    }
    if (!join_hook_allows(c, room)) {
        conn_reply_err(c, count, ERR_NOT_AUTHORIZED);
        return;
    }
    struct pending *p = pending_new(c, count, room, len);
    if (!p) {
        conn_reply_err(c, count, ERR_STORE_UNAVAILABLE);
        return;
    }
    if (!since_arg(c, count, req, p)) {
        pending_free(p);
        return;
    }
    store_check_listen(c->worker, p->room, p->attrs = conn_attributes(c), listened, p);
}

static void verb_silence(struct conn *c, uint64_t count, const struct request *req)
{
    if (!join_allowed(c, count))
        return;
    const char *room;
    if (request_text(req, "room", &room) != ERR_NONE) {
        conn_reply_err(c, count, ERR_INVALID_REQUEST); /* "a\u0000b" must not silence "a" */
        return;
    }
    if (!room || !*room) {
        conn_reply_err(c, count, ERR_ROOM_REQUIRED);
        return;
    }
    struct listen_entry *e = conn_listen_find(c, room);
    if (!e) {
        conn_reply_err(c, count, ERR_NOT_LISTENING);
        return;
    }
    worker_unsubscribe(c->worker, e->room, e->uid, c, SUB_LISTENER);
    conn_listen_remove(c, e);
    conn_reply_ok(c, count, json_object_new_boolean(1), true);
}

/* ---------------------------------------------------------------- say */

/* The offset a say got (the memory store answers inside store_publish). */
struct said {
    uint64_t offset;
};

static void on_said(const struct store_result *res, void *ctx)
{
    ((struct said *)ctx)->offset = res->offset;
}

static void reply_said(struct conn *c, uint64_t count, uint64_t offset)
{
    json_object *extra = NULL;
    if (offset) {
        extra = json_object_new_object();
        json_object_object_add(extra, "offset", json_object_new_uint64(offset));
    }
    conn_reply_ok_with(c, count, NULL, false, extra);
}

static void said_later(const struct store_result *res, void *ctx)
{
    struct pending *p = ctx;
    if (!p->c->dead) {
        if (res->err)
            conn_reply_err(p->c, p->count, res->err);
        else
            reply_said(p->c, p->count, res->offset);
    }
    pending_free(p);
}

static void verb_say(struct conn *c, uint64_t count, const struct request *req)
{
    if (!c->room) {
        conn_reply_err(c, count, ERR_NOT_IN_ROOM);
        return;
    }
    if (!store_room_alive(c->room, c->room_uid)) {
        conn_reply_err(c, count, ERR_ROOM_NOT_FOUND);
        return;
    }
    size_t len;
    const char *text = request_arg(req, "message", &len);
    if (!text || len == 0) {
        conn_reply_err(c, count, ERR_MESSAGE_REQUIRED);
        return;
    }
    if (!conn_say_allowed(c)) {
        conn_reply_err(c, count, ERR_RATE_LIMIT);
        return;
    }
    if (api_hooks.on_say && !api_hooks.on_say(c, c->room, text, api_hooks.ud)) {
        conn_reply_err(c, count, ERR_SAY_REFUSED);
        return;
    }
    if (!store_room_available(c->worker, c->room)) {
        conn_reply_err(c, count, ERR_STORE_UNAVAILABLE);
        return;
    }
    json_object *chat = msg_chat_json(json_object_new_string_len(text, (int)len), c->room, c->id);
    struct msg *m = msg_new(chat);
    json_object_put(chat);
    if (!m) {
        conn_reply_err(c, count, ERR_STORE_UNAVAILABLE);
        return;
    }
    if (store_reads_streams()) { /* numbered remotely: reply when it answers */
        struct pending *p = pending_new(c, count, NULL, 0);
        if (p)
            store_publish(c->worker, c->room, c->room_uid, m, c->serial, c->id, true, said_later,
                          p);
        else
            conn_reply_err(c, count, ERR_STORE_UNAVAILABLE);
        msg_unref(m);
        return;
    }
    struct said said = {0};
    store_publish(c->worker, c->room, c->room_uid, m, c->serial, c->id, true, on_said, &said);
    msg_unref(m);
    reply_said(c, count, said.offset);
}

/* ---------------------------------------------------------- roomHistory */

/* roomHistory's answer from a store that reads streams itself. */
static void history_answered(const struct store_result *res, void *ctx)
{
    struct pending *p = ctx;
    if (!p->c->dead) {
        if (res->err || !res->read) {
            conn_reply_err(p->c, p->count, res->err ? res->err : ERR_STORE_UNAVAILABLE);
        } else {
            if (p->has_since)
                history_count_recovery(res->read->recovered);
            conn_reply_ok(p->c, p->count, history_read_json(p->room, res->read), true);
        }
    }
    pending_free(p);
}

/* The messages kept for ROOM, for a member or listener of it: after the
 * JSON request's "since" (recovered or not), else the last "limit". */
static void verb_room_history(struct conn *c, uint64_t count, const struct request *req)
{
    size_t len;
    const char *room = room_arg(c, count, req, &len);
    if (!room)
        return;
    struct pending since = {0};
    if (!since_arg(c, count, req, &since))
        return;
    long limit = -1;
    json_object *lim;
    if (req->json && json_object_object_get_ex(req->json, "limit", &lim)) {
        if (!json_object_is_type(lim, json_type_int) || json_object_get_int64(lim) < 0) {
            conn_reply_err(c, count, ERR_INVALID_REQUEST);
            return;
        }
        int64_t v = json_object_get_int64(lim);
        limit = v > LONG_MAX ? LONG_MAX : (long)v;
    }
    uint64_t uid = 0;
    struct listen_entry *le = conn_listen_find(c, room);
    if (in_live_room(c, room))
        uid = c->room_uid;
    else if (le && store_room_alive(room, le->uid))
        uid = le->uid;
    else {
        conn_reply_err(c, count, ERR_NOT_HEARING);
        return;
    }
    if (store_reads_streams()) {
        struct pending *p = pending_new(c, count, room, len);
        if (!p) {
            conn_reply_err(c, count, ERR_STORE_UNAVAILABLE);
            return;
        }
        p->has_since = since.has_since;
        p->since = since.since;
        store_stream_read(c->worker, room, p->has_since ? &p->since : NULL, limit, true,
                          history_answered, p);
        return;
    }
    struct history_read h = {.since = since.has_since ? &since.since : NULL};
    if (registry_history(room, uid, limit, &h) != ERR_NONE) {
        conn_reply_err(c, count, ERR_ROOM_NOT_FOUND);
        return;
    }
    if (since.has_since)
        history_count_recovery(h.recovered);
    conn_reply_ok(c, count, history_read_json(room, &h), true);
    history_read_free(&h);
}

/* ------------------------------------------------- the connection verbs */

static void verb_details(struct conn *c, uint64_t count, const struct request *req)
{
    conn_reply_ok(c, count, conn_details(c), true);
}

static void verb_param_add(struct conn *c, uint64_t count, const struct request *req)
{
    char *key, *value;
    enum roomd_err err = request_param(req, &key, &value);
    if (!err)
        err = conn_param_set(c, key, value);
    free(key);
    free(value);
    if (err)
        conn_reply_err(c, count, err);
    else
        conn_reply_ok(c, count, NULL, true);
}

/* The KEY argument of paramDelete / paramView. */
static const char *key_arg(struct conn *c, uint64_t count, const struct request *req)
{
    const char *key;
    if (request_text(req, "key", &key) != ERR_NONE) {
        conn_reply_err(c, count, ERR_INVALID_REQUEST);
        return NULL;
    }
    if (!key || !*key) {
        conn_reply_err(c, count, ERR_KEY_REQUIRED);
        return NULL;
    }
    return key;
}

static void verb_param_delete(struct conn *c, uint64_t count, const struct request *req)
{
    const char *key = key_arg(c, count, req);
    if (!key)
        return;
    conn_param_delete(c, key);
    conn_reply_ok(c, count, NULL, true);
}

static void verb_param_view(struct conn *c, uint64_t count, const struct request *req)
{
    const char *key = key_arg(c, count, req);
    if (!key)
        return;
    json_object *v;
    if (c->params && json_object_object_get_ex(c->params, key, &v))
        conn_reply_ok(c, count, json_object_get(v), true);
    else
        conn_reply_ok(c, count, NULL, false);
}

static void verb_params_view(struct conn *c, uint64_t count, const struct request *req)
{
    conn_reply_ok(c, count, c->params ? json_object_get(c->params) : json_object_new_object(),
                  true);
}

static void verb_params_delete(struct conn *c, uint64_t count, const struct request *req)
{
    conn_params_clear(c);
    conn_reply_ok(c, count, NULL, true);
}

/* Claims that never become attributes: the token's own times, and the
 * built-ins no one may change. */
static bool claim_ignored(const char *name)
{
    static const char *const ignored[] = {"exp",  "iat",      "nbf",        "id",
                                          "type", "remoteIP", "remotePort", "connectedAt"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        if (!strcmp(name, ignored[i]))
            return true;
    return false;
}

static void verb_auth(struct conn *c, uint64_t count, const struct request *req)
{
    if (!*settings.token_secret) {
        conn_reply_err(c, count, ERR_AUTH_DISABLED);
        return;
    }
    size_t len;
    const char *token = request_arg(req, "token", &len);
    json_object *claims = NULL;
    enum roomd_err err =
        token ? token_verify(token, len, settings.token_secret, now_ms() / 1000, &claims)
              : ERR_INVALID_TOKEN;
    if (err) {
        conn_reply_err(c, count, err);
        return;
    }
    /* authenticated first, so that a claim may say otherwise; all or nothing
     * (a token's claims past max_params_bytes change nothing). */
    json_object *patch = json_object_new_object();
    err = ERR_STORE_UNAVAILABLE;
    if (patch) {
        json_object_object_add(patch, "authenticated", json_object_new_boolean(1));
        json_object_object_foreach(claims, name, value)
        {
            if (!claim_ignored(name))
                json_object_object_add(patch, name, json_object_get(value));
        }
        err = conn_set_attributes(c, patch);
        json_object_put(patch);
    }
    json_object_put(claims);
    if (err)
        conn_reply_err(c, count, err);
    else
        conn_reply_ok(c, count, conn_attributes(c), true);
}

static void verb_quit(struct conn *c, uint64_t count, const struct request *req)
{
    conn_close(c, "quit requested");
}

static void verb_exit(struct conn *c, uint64_t count, const struct request *req)
{
    conn_close(c, "exit requested");
}

/* ---------------------------------------------------------- dispatch */

typedef void verb_fn(struct conn *c, uint64_t count, const struct request *req);

static const struct verb {
    const char *name;
    verb_fn *fn;
} verb_table[] = {
    {"roomChange", verb_room_change},
    {"roomLeave", verb_room_leave},
    {"roomView", verb_room_view},
    {"listenToRoom", verb_listen},
    {"silenceRoom", verb_silence},
    {"say", verb_say},
    {"roomHistory", verb_room_history},
    {"detailsView", verb_details},
    {"paramAdd", verb_param_add},
    {"paramDelete", verb_param_delete},
    {"paramView", verb_param_view},
    {"paramsView", verb_params_view},
    {"paramsDelete", verb_params_delete},
    {"auth", verb_auth},
    {"quit", verb_quit},
    {"exit", verb_exit},
};

void verbs_reject(struct conn *c, enum roomd_err err)
{
    conn_reply_err(c, ++c->request_count, err);
}

void verbs_request(struct conn *c, const char *line, size_t len)
{
    uint64_t count = ++c->request_count;
    worker_count(c->worker, stat_requests);
    if (!utf8_valid(line, len)) {
        conn_reply_err(c, count, ERR_INVALID_UTF8);
        return;
    }
    struct request req;
    enum roomd_err err = request_parse(line, len, &req);
    if (err) {
        conn_reply_err(c, count, err);
        request_free(&req);
        return;
    }
    const struct verb *v = NULL;
    for (size_t i = 0; i < sizeof(verb_table) / sizeof(verb_table[0]); i++)
        if (strcmp(verb_table[i].name, req.verb) == 0) {
            v = &verb_table[i];
            break;
        }
    if (v)
        v->fn(c, count, &req);
    else
        conn_reply_err(c, count, ERR_VERB_NOT_FOUND);
    request_free(&req);
}

void verbs_disconnected(struct conn *c)
{
    if (c->session && api_hooks.on_disconnect)
        api_hooks.on_disconnect(c, api_hooks.ud);
    leave_room(c);
    while (c->listening) {
        struct listen_entry *e = c->listening;
        worker_unsubscribe(c->worker, e->room, e->uid, c, SUB_LISTENER);
        conn_listen_remove(c, e);
    }
}
