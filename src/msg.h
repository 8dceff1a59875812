/* msg.h -- an outgoing server message, serialized once and shared.
 *
 * A chat line said to a room of M members is turned into bytes once; every
 * worker that has recipients holds a reference, and every recipient's output
 * gets the same bytes.  The buffer is immutable after msg_new(). */
#ifndef ROOMD_MSG_H
#define ROOMD_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

struct msg {
    atomic_int refs;
    size_t len;      /* bytes of JSON, without the line ending */
    uint64_t offset; /* the room's offset of a numbered chat message; 0: none */
    char data[];     /* JSON, then "\r\n" (the line transport sends len + 2) */
};

/* Serialize OBJ (compact, slashes unescaped) into a new message, refs = 1. */
struct msg *msg_new(json_object *obj);
/* A message from JSON text already serialized (LEN bytes), refs = 1. */
struct msg *msg_new_text(const char *text, size_t len);
/* A message of LEN bytes (and the "\r\n" after them) for the caller to
 * fill before anyone else sees it, refs = 1. */
struct msg *msg_alloc(size_t len);
struct msg *msg_ref(struct msg *m);
void msg_unref(struct msg *m);

/* Milliseconds since the epoch, the unit of sentAt and joinedAt. */
int64_t now_ms(void);

/* The chat object {"message","room","from","context":"user","sentAt"}.
 * FROM_ID NULL means the server itself (from 0).  MESSAGE is consumed. */
json_object *msg_chat_json(json_object *message, const char *room, const char *from_id);

/* Parse exactly one RFC 8259 JSON value of LEN bytes, nested at most
 * MAX_DEPTH deep (json-c's strict mode, plus no raw control characters in
 * strings and no NaN/Infinity), that json-c holds faithfully: no key twice in
 * one object, no \u0000 in a key, no integer beyond int64/uint64.  *OUT may
 * be NULL for "null". */
bool json_parse_strict(const char *text, size_t len, int max_depth, json_object **out);

/* json_object_to_json_string_ext flags used for everything on the wire. */
#define ROOMD_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

#endif
