/* conn.h -- one client connection: its socket, its state, its output.
 *
 * A connection belongs to exactly one worker and is only touched on that
 * worker's thread.  It never frees itself inside a callback: conn_close()
 * marks it and the worker reaps it on the next loop turn, so fan-out loops
 * and libevent callbacks may always finish with the pointer they hold. */
#ifndef ROOMD_CONN_H
#define ROOMD_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include <event2/bufferevent.h>
#include <json-c/json.h>
#include <uthash.h>

#include "errors.h"
#include "worker.h"

#define CONN_ID_LEN 36

/* A room the connection listens to.  It is in two hashes of the
 * connection, by room name (the verbs) and by room uid (the worker's local
 * index), so listening, silencing and every fan-out bookkeeping step cost
 * O(1) however many rooms a connection hears. */
struct listen_entry {
    UT_hash_handle hh;     /* c->listening, by room name, in listening order */
    UT_hash_handle hh_uid; /* c->listening_by_uid, by uid */
    uint64_t uid;
    uint32_t slot; /* this connection's place in the worker's local index */
    char room[];
};

/* A token bucket: TOKENS refilled at a rate per second up to a burst
 * (say_rate / say_burst, join_rate / join_burst). */
struct conn_bucket {
    double tokens;
    int64_t refill_at; /* monotonic ms */
};

struct conn_proto; /* the transport's framing: proto_line.c, proto_ws.c */
struct conn_out;   /* the output queue: conn.c */
struct msg;

/* Room for any transport's frame header in front of a message (WebSocket
 * needs at most 10 bytes; the line transport none). */
#define CONN_FRAME_HEADER_MAX 16

struct conn {
    /* What a delivery touches, together in the first 64 bytes: the fan-out
     * loop reads serial, dead, closing and proto and queues onto out. */
    struct conn_out *out; /* NULL while nothing is queued (see "Output" in conn.c) */
    size_t out_bytes;     /* queued and not yet written: what output_limit counts */
    const struct conn_proto *proto;
    uint64_t serial; /* process-unique, never reused */
    struct worker *worker;
    struct conn *pending_next, **pending_prev; /* pending_prev NULL: not listed */
    bool dead;                                 /* on the reap list */
    bool closing;                              /* goodbye sent, waiting for the output to drain */
    bool write_waiting;                        /* write_ev is armed: the socket was full */
    evutil_socket_t fd;

    UT_hash_handle hh; /* worker's table, by serial */
    char id[CONN_ID_LEN + 1];
    struct bufferevent *bev; /* input only: output is written by conn.c itself */
    struct event *write_ev;  /* made on the first short write, kept until reap */
    enum transport transport;
    int64_t connected_at;

    /* Attributes: the built-ins live in plain fields (id, transport,
     * connected_at, peer); the others -- authenticated included -- in
     * attrs_set, made when the first one is set.  An idle connection then
     * costs no JSON at all (conn_attributes builds the whole object). */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    json_object *attrs_set; /* NULL: none set (authenticated is false) */
    json_object *params;    /* client-set, never used for auth; NULL: none */
    size_t attrs_bytes;     /* keys and JSON texts of attrs_set (max_params_bytes) */
    size_t params_bytes;    /* keys and values of params (max_params_bytes) */

    char *room; /* NULL when in no room; kept when the room is deleted */
    uint64_t room_uid;
    uint32_t room_slot;                    /* this connection's place in the worker's local index */
    int64_t room_joined_at;                /* kept for the store's re-registration */
    struct listen_entry *listening;        /* hash by room name */
    struct listen_entry *listening_by_uid; /* the same entries, by uid */
    long nlistening;
    uint32_t input_kept; /* input left unhandled after the last read (see on_read) */

    uint64_t request_count;         /* messageCount of the last request */
    struct conn_bucket say_bucket;  /* say_rate / say_burst */
    struct conn_bucket join_bucket; /* join_rate / join_burst */

    void *proto_state;          /* the transport's own state (WebSocket: wslay) */
    bool tls;                   /* on tls_port or wss_port: bev is an OpenSSL bufferevent */
    bool tls_open;              /* ... and its handshake has finished */
    struct event *tls_deadline; /* handshake_timeout, from the accept; NULL once open */
    bool ip_counted;            /* ip_limits_take() admitted it: release at reap */
    bool ip_refused;            /* over a per-address limit: conn_refuse() answers */
    bool ip_deferred;           /* from a trusted proxy: limits wait for X-Forwarded-For */
    bool session;               /* welcomed: the protocol session has started */
    bool input_paused;          /* requests wait: the welcome is not out yet */
    bool skipping_line;         /* the rest of an overlong line is being dropped */
    size_t line_seen;   /* line transport: bytes of input searched, no end of line in them */
    size_t line_pulled; /* ... and made contiguous by the last pull-up (line_partial) */
    bool reap_deferred; /* dead, but a store callback still holds it */
    int holds;          /* store operations in flight that will call back */
    struct conn *reap_next;
};

/* The transport hooks a connection's protocol provides. */
struct conn_proto {
    /* The socket was just accepted (a line client is welcomed here). */
    void (*on_open)(struct conn *c);
    /* Input arrived in the bufferevent's input buffer. */
    void (*on_read)(struct conn *c);
    /* Whether server messages may be queued now (WebSocket: only between
     * the upgrade and the close frame); NULL: always. */
    bool (*may_send)(const struct conn *c);
    /* How message M goes on the wire: a header of the returned size (at
     * most CONN_FRAME_HEADER_MAX bytes) written into HEADER, then the first
     * *BODY_LEN bytes of m->data.  Called when M is queued and again each
     * time it is written, so it must be pure. */
    size_t (*frame)(const struct msg *m, uint8_t *header, size_t *body_len);
    /* Queue whatever ends the session (a WebSocket close frame); may be NULL. */
    void (*send_close)(struct conn *c, int code);
    /* Free proto_state; may be NULL. */
    void (*on_free)(struct conn *c);
    /* SIGHUP installed new settings: apply those the transport copied
     * (WebSocket: max_line); may be NULL. */
    void (*on_settings)(struct conn *c);
};

/* Take ownership of an accepted socket on worker W: welcome, default room
 * (over TLS when TLS: once its handshake has finished). */
struct conn *conn_new(struct worker *w, int fd, enum transport t, bool tls,
                      const struct sockaddr *addr, int addrlen);
/* Send an object to the client (consumes OBJ). */
void conn_send_json(struct conn *c, json_object *obj);
/* Send a shared message (a reference is queued, the bytes are not copied);
 * drops the connection past the turn's backstop (conn_check_output_limit).  Returns whether it was
 * queued: the caller counts deliveries (once per fan-out job, not per recipient). */
bool conn_send_msg(struct conn *c, struct msg *m);
/* The messages MS[0..N) framed for C's transport and laid end to end: one
 * message that conn_send_framed() queues, as one buffer, to any connection
 * of the same transport.  NULL when out of memory. */
struct msg *conn_frame_batch(const struct conn *c, struct msg *const *ms, size_t n);
/* Queue F from conn_frame_batch() for C's transport (a reference is taken);
 * otherwise like conn_send_msg(). */
bool conn_send_framed(struct conn *c, struct msg *f);
/* Queue LEN bytes the transport sends as they are (an HTTP answer, a
 * WebSocket control frame), in order with everything else. */
void conn_send_raw(struct conn *c, const void *data, size_t len);
/* Drop C if what it has queued in this loop turn, before the turn's write,
 * passed the backstop (see "Output" in conn.c); output_limit itself is
 * checked after the write, against what the kernel did not take. */
void conn_check_output_limit(struct conn *c);
/* Write every connection of W with new output (W's flush event). */
void conn_flush_pending(struct worker *w);

/* C is over a per-address limit (c->ip_refused): a line client gets the
 * goodbye "too many connections from this address", a WebSocket client
 * (once its request is read) an HTTP 503 with the same JSON; then it
 * closes after the answer is out. */
void conn_refuse(struct conn *c);
/* A WebSocket request from a trusted proxy (c->ip_deferred) was read: take
 * the client address from its X-Forwarded-For (VALUE, LEN bytes; NULL:
 * none, the proxy's own stays) and apply the per-address limits to it,
 * setting c->ip_refused when over one. */
void conn_forwarded(struct conn *c, const char *value, size_t len);
/* Say goodbye with REASON (NULL: none) and close once the output drained. */
void conn_close(struct conn *c, const char *reason);
/* Close at once, discarding pending output (peer gone, slow reader). */
void conn_abort(struct conn *c, const char *why);
/* Free what conn_close/conn_abort marked; the worker calls it. */
void conn_reap(struct conn *c);

/* Stop / resume handling requests (input stays buffered meanwhile). */
void conn_pause_input(struct conn *c);
void conn_resume_input(struct conn *c);

/* A store operation in flight keeps C allocated (not alive: check c->dead
 * in the callback) until it releases it. */
void conn_hold(struct conn *c);
void conn_release(struct conn *c);

/* Replies to request COUNT: {"status":"OK",...} and the error form. */
void conn_reply_ok(struct conn *c, uint64_t count, json_object *data, bool has_data);
/* A success reply with EXTRA's fields (consumed; may be NULL) after data. */
void conn_reply_ok_with(struct conn *c, uint64_t count, json_object *data, bool has_data,
                        json_object *extra);
void conn_reply_err(struct conn *c, uint64_t count, enum roomd_err err);

/* Whether the token bucket allows one more say now (and takes a token). */
bool conn_say_allowed(struct conn *c);
/* The same for roomChange, roomLeave, listenToRoom and silenceRoom. */
bool conn_join_allowed(struct conn *c);
/* detailsView data. */
json_object *conn_details(const struct conn *c);
/* Every attribute, the built-ins included, as a new JSON object. */
json_object *conn_attributes(const struct conn *c);
/* Set attribute KEY to VALUE (consumed; NULL deletes it).  ERR_NONE;
 * ERR_ATTRIBUTE_READ_ONLY for a built-in (id, type, remoteIP, remotePort,
 * connectedAt, secure); ERR_PARAMS_TOO_LARGE when the attributes set would pass
 * max_params_bytes (keys plus compact JSON texts); ERR_STORE_UNAVAILABLE
 * when out of memory.  Nothing changes unless ERR_NONE. */
enum roomd_err conn_set_attribute(struct conn *c, const char *key, json_object *value);
/* Every KEY: VALUE of the JSON object PATCH (not consumed; a null VALUE
 * deletes KEY), all or none: the errors of conn_set_attribute(), checked for
 * the whole patch before anything changes. */
enum roomd_err conn_set_attributes(struct conn *c, json_object *patch);

/* The client's params (paramAdd): KEY = VALUE, both text.  ERR_NONE,
 * ERR_TOO_MANY_PARAMS past max_params keys, ERR_PARAMS_TOO_LARGE past
 * max_params_bytes (keys plus values), ERR_STORE_UNAVAILABLE. */
enum roomd_err conn_param_set(struct conn *c, const char *key, const char *value);
void conn_param_delete(struct conn *c, const char *key);
void conn_params_clear(struct conn *c);
/* Whether KEY is one of the read-only built-ins. */
bool conn_attribute_read_only(const char *key);

/* The rooms C listens to (see struct listen_entry), each operation O(1):
 * find by name or by uid (NULL: not listening), add (NULL: out of memory),
 * remove (frees E). */
struct listen_entry *conn_listen_find(const struct conn *c, const char *room);
struct listen_entry *conn_listen_find_uid(const struct conn *c, uint64_t uid);
struct listen_entry *conn_listen_add(struct conn *c, const char *room, uint64_t uid);
void conn_listen_remove(struct conn *c, struct listen_entry *e);

/* SIGHUP installed new settings: apply idle_timeout and the transport's
 * own (max_line) to every open connection of W (W's thread). */
void conn_apply_settings(struct worker *w);

/* Connections by id, across threads: where a connection lives. */
bool conn_lookup(const char *id, int *worker, uint64_t *serial);
long conn_live_count(void);
long conn_count_by_transport(enum transport t);
/* Reserve a slot under max_connections (the acceptor); false when full. */
bool conn_slot_take(long max);
void conn_slot_release(void);

#endif
