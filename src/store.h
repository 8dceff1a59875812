/* store.h -- where shared room state lives, behind an asynchronous face.
 *
 * Every operation takes a completion callback that runs on the calling
 * thread once the state change is made, so a reply always goes out after
 * the change it reports.  The memory store (store_memory.c) answers at once,
 * from inside the call; a networked store answers later from the same
 * thread's event loop.  Verbs are written only against this interface.
 *
 * Server-side room management (add, delete, patterns) is synchronous for
 * the memory store and is called from the admin thread. */
#ifndef ROOMD_STORE_H
#define ROOMD_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "errors.h"

struct worker;
struct msg;

struct store_result {
    enum roomd_err err;
    bool flag;          /* leave: a member was removed */
    uint64_t uid;       /* join, listen: the room's generation */
    int64_t joined_at;  /* join */
    json_object *data;  /* room_view: the data (the callback owns it) */
};

typedef void (*store_cb)(const struct store_result *res, void *ctx);

int store_open(void);
void store_close(void);

/* Client-side operations, on a worker's thread. */
void store_join(struct worker *w, const char *room, const char *id, json_object *attrs,
                store_cb cb, void *ctx);
void store_leave(struct worker *w, const char *room, uint64_t uid, const char *id, store_cb cb,
                 void *ctx);
void store_check_listen(struct worker *w, const char *room, json_object *attrs, store_cb cb,
                        void *ctx);
void store_room_view(struct worker *w, const char *room, uint64_t uid, long limit, store_cb cb,
                     void *ctx);
/* Whether room NAME is still generation UID (a cheap local check). */
bool store_room_alive(const char *room, uint64_t uid);
/* Deliver M to room ROOM's members and listeners but SKIP_SERIAL. */
void store_publish(struct worker *from, const char *room, uint64_t uid, struct msg *m,
                   uint64_t skip_serial);

/* Server-side operations, any thread. */
int store_room_add(const char *room);            /* 1 created, 0 existed */
bool store_room_del(const char *room);           /* members hear the notice */
bool store_room_exists(const char *room);
enum roomd_err store_room_set_pattern(const char *room, json_object *pattern);

#endif
