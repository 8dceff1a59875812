/* registry.h -- the room registry: which rooms exist, their patterns,
 * their members (id, join time, owning worker) and, per worker, how many
 * local connections hear each room.
 *
 * The registry knows member ids, never sockets: delivering to the members of
 * a room is each worker's job (worker.c keeps the local index).  A room gets
 * a fresh uid each time it is created, so a connection that joined a deleted
 * room can never be mistaken for a member of a re-created one. */
#ifndef ROOMD_REGISTRY_H
#define ROOMD_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "errors.h"
#include "history.h"

struct msg;

int registry_init(int nworkers);
void registry_shutdown(void);

/* 1 if the room was created, 0 if it existed. */
int registry_add(const char *name);
/* Remove the room; its uid in *UID.  Returns whether it existed. */
bool registry_del(const char *name, uint64_t *uid);
/* Whether the room exists; its current uid in *UID if non-NULL. */
bool registry_lookup(const char *name, uint64_t *uid);
/* Replace the room's pattern with OBJ's pairs (NULL clears).  Returns
 * ERR_ROOM_NOT_FOUND, ERR_INVALID_REQUEST (non-scalar value) or ERR_NONE. */
enum roomd_err registry_set_pattern(const char *name, json_object *obj);
/* The room's pattern as JSON, or NULL when there is no such room. */
json_object *registry_pattern(const char *name);

/* Add member ID (owned by WORKER) if ATTRS match the pattern (NULL ATTRS:
 * the server side forces it in); the room's
 * uid and the join time come back through UID and JOINED_AT. */
enum roomd_err registry_join(const char *name, const char *id, json_object *attrs, int worker,
                             uint64_t *uid, int64_t *joined_at);
/* Remove member ID from room NAME if that room is still generation UID.
 * Returns whether a member was removed. */
bool registry_leave(const char *name, uint64_t uid, const char *id);
/* Whether ATTRS may listen to NAME; its uid in *UID. */
enum roomd_err registry_check_listen(const char *name, json_object *attrs, uint64_t *uid);

/* Whether one more join or leave announcement of room NAME (generation
 * UID) fits its budget of PER_SECOND for the current second (0: no
 * budget), and count it.  A room not known here is not limited. */
bool registry_announce_allowed(const char *name, uint64_t uid, long per_second);

/* Count a local recipient (member or listener) of room UID on WORKER up or
 * down (DELTA 0: neither) and, with HEARING, take its position and replay
 * in the same step; fan-out only visits workers whose count is non-zero. */
void registry_hear(const char *name, uint64_t uid, int worker, int delta,
                   struct history_read *hearing);

/* registry_hear without a position; and which workers hear room NAME
 * generation *UID (0: the current one, returned) in WANT[w]; false when the
 * room does not exist (any more). */
void registry_recipients_add(const char *name, uint64_t uid, int worker, int delta);
bool registry_recipient_workers(const char *name, uint64_t *uid, bool *want);

/* Hand M, for room NAME generation *UID (0: the current one, returned), to
 * FANOUT with WANT[w] set for the workers with recipients, under the room's
 * stream lock; with KEEP and history on, what FANOUT gets is M numbered
 * and kept.  Returns false when the room does not exist (any more). */
typedef void (*registry_fanout_fn)(const bool *want, struct msg *m, void *ctx);
bool registry_publish(const char *name, uint64_t *uid, struct msg *m, bool keep,
                      registry_fanout_fn fanout, void *ctx);

/* roomHistory: the position of room NAME (generation UID; 0 any) and the
 * messages after OUT->since or, without it, the last LIMIT (< 0: all). */
enum roomd_err registry_history(const char *name, uint64_t uid, long limit,
                                struct history_read *out);
/* Set room NAME's history size and ttl (each -1: unchanged) and return
 * {"size":N,"ttl":S}; NULL when there is no such room. */
json_object *registry_history_settings(const char *name, long size, long ttl);

/* roomView / roomStatus data, listing at most LIMIT members; NULL when the
 * room does not exist (or is not generation UID, when UID is non-zero). */
json_object *registry_status(const char *name, uint64_t uid, long limit);
/* The names of every room, as a JSON array. */
json_object *registry_list(void);
long registry_room_count(void);
/* Members of every room known here (this server's, with Redis). */
long registry_member_count(void);

#endif
