/* members.h -- members in Redis: a client's join, listen, leave and view
 * (store_ops, on the worker's thread and link), and the worker link's
 * re-registration when it comes back. */
#ifndef ROOMD_REDIS_MEMBERS_H
#define ROOMD_REDIS_MEMBERS_H

#include <stdint.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "redis/link.h"
#include "store.h"

void redis_join(struct worker *w, const char *room, const char *id, json_object *attrs, store_cb cb,
                void *ctx);
void redis_check_listen(struct worker *w, const char *room, json_object *attrs, store_cb cb,
                        void *ctx);
void redis_leave(struct worker *w, const char *room, uint64_t uid, const char *id, store_cb cb,
                 void *ctx);
void redis_room_view(struct worker *w, const char *room, uint64_t uid, long limit, store_cb cb,
                     void *ctx);
/* The HGETALL R of a members hash as roomView data (at most LIMIT listed). */
json_object *redis_members_json(const char *room, const redisReply *r, long limit);
/* A worker's link is (back) up: its members are written again, so Redis
 * has them even if it restarted empty or a reaper removed them, and what
 * it remembers of members that left meanwhile is removed. */
void redis_members_up(struct redis_link *link);

#endif
