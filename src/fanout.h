/* fanout.h -- local delivery: what reaches this server's members and
 * listeners of a room, whichever store holds the shared truth.
 *
 * Both stores end here: the memory store for everything said on this
 * server, the Redis store for what the bus brings from any server (its own
 * says included) and for what it delivers at once (announcements).  The
 * registry is the index: it numbers and keeps what is kept, and knows
 * which workers hear a room; the workers (worker.c) batch and write. */
#ifndef ROOMD_FANOUT_H
#define ROOMD_FANOUT_H

#include <stdbool.h>
#include <stdint.h>

struct msg;
struct worker;

/* Deliver M to every member and listener of room ROOM (generation UID) on
 * every worker, except the connection SKIP_SERIAL.  The calling worker
 * FROM (or NULL off-worker) delivers to its own recipients at once; other
 * workers get one queue entry each.  Order per caller is kept.  With KEEP
 * (a say or a server broadcast) and history on, the room numbers and keeps
 * it: the offset it got comes back (0: none). */
uint64_t fanout_publish(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                        uint64_t skip_serial, bool keep);

/* Room ROOM was deleted: it leaves the registry, and its local members and
 * listeners hear "this room has been deleted" (listeners stop listening;
 * members keep their room name, PROTOCOL.md).  Any thread. */
void fanout_room_deleted(const char *room);

#endif
