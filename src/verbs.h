/* verbs.h -- what clients can ask: the verbs of PROTOCOL.md. */
#ifndef ROOMD_VERBS_H
#define ROOMD_VERBS_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

struct conn;

/* A new session: join default_room (if any), then send the welcome. */
void verbs_session_start(struct conn *c);
/* One request line or frame (LEN bytes, not yet checked for UTF-8). */
void verbs_request(struct conn *c, const char *line, size_t len);
/* A request refused before parsing (too long, binary): counted, answered. */
void verbs_reject(struct conn *c, enum roomd_err err);
/* The connection is going away: leave its room, stop listening. */
void verbs_disconnected(struct conn *c);

/* The server side's addMember: put C into ROOM as roomChange would (the
 * pattern is checked unless FORCE), then call CB with the verb's error or
 * whether C was added (false: it was already there). */
typedef void (*verbs_member_cb)(enum roomd_err err, bool added, void *ctx);
void verbs_add_member(struct conn *c, const char *room, bool force, verbs_member_cb cb, void *ctx);
/* The server side's removeMember: roomLeave without a reply. */
bool verbs_remove_member(struct conn *c);

/* Room-name rules: 1..max_room_name bytes of UTF-8, no control characters. */
bool verbs_room_name_valid(const char *name, size_t len, size_t max);

#endif
