/* subs.h -- the per-room bus subscriptions of this server.
 *
 * A room's chat goes out on its own channel, P room:R:bus, on the room's
 * shard (roomd-redis(7) "CHANNELS").  This server subscribes to it only
 * while it has local recipients (members or listeners) of R: workers count
 * their rooms up and down (redis_subs_ref, any thread), and the subscriber
 * thread (main) sends what changed as one SUBSCRIBE and one UNSUBSCRIBE
 * per shard: at once when the shard has no command out, else together once
 * its last reply is in (a burst of joins costs a command per round trip,
 * not one per room).  What is wanted (the count) and what Redis confirmed
 * are kept apart, with at most one command per room in flight, so join ->
 * leave -> join before a reply still ends subscribed.
 *
 * A joiner's stream read waits until the room's subscription is confirmed
 * (redis_subs_when_active): from then on the bus misses nothing of the
 * room, and what it brings before the read is answered is held by the
 * joiner's slot (worker.c SUB_HELD). */
#ifndef ROOMD_REDIS_SUBS_H
#define ROOMD_REDIS_SUBS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "redis/link.h"
#include "worker.h"

/* Start the table on BASE (the subscriber's, main) for the N shards of
 * SHARDS, whose subscriber links take REPLY (with the shard as private
 * data) for every channel. */
void redis_subs_start(struct event_base *base, struct redis_shard *shards, int n,
                      redisCallbackFn *reply);
/* Stop: later counts are ignored; waiters are not called. */
void redis_subs_stop(void);
/* Room ROOM's channel name into BUF (P room:R:bus, P the redis_prefix). */
const char *redis_subs_channel(char *buf, size_t len, const char *room);
/* One local recipient room (a worker's) of ROOM more (DELTA +1) or fewer
 * (-1); the first one subscribes, the last one unsubscribes.  Any thread. */
void redis_subs_ref(const char *room, int delta);
/* Run FN(W, ARG) on W's thread once ROOM's subscription is confirmed;
 * false (FN not called) when it is confirmed already or not wanted here,
 * so the caller goes on at once.  Any thread. */
bool redis_subs_when_active(const char *room, struct worker *w, job_fn fn, void *arg);
/* The subscriber link of SH is up: subscribe every room in use on it, in
 * one command.  Main thread. */
void redis_subs_resubscribe(struct redis_shard *sh);
/* Redis answered a (UN)SUBSCRIBE of CHANNEL (LEN bytes) on SH: false when
 * CHANNEL is no room channel.  Main thread. */
bool redis_subs_reply(struct redis_shard *sh, const char *channel, size_t len, bool subscribed);
/* SH's subscriber link is gone: nothing is subscribed there any more, and
 * waiters go on (their reads fail or find Redis back).  Main thread. */
void redis_subs_lost(struct redis_shard *sh);
/* Room channels confirmed now, all shards.  Any thread. */
long redis_subs_count(void);

#endif
