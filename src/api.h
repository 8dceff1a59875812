/* api.h -- what the admin API and the verbs share with the public C API
 * (roomd.h) beyond it. */
#ifndef ROOMD_API_H
#define ROOMD_API_H

#include <stdbool.h>

#include <json-c/json.h>

#include "roomd.h"

/* The hooks roomd_set_hooks() installed (all NULL by default). */
extern struct roomd_hooks api_hooks;

/* roomStatus data as JSON (a missing room: 0 members). */
json_object *api_room_status(const char *room);
/* roomd_socket_room_broadcast with MESSAGE already parsed (consumed). */
int api_broadcast(const char *from_id, const char *room, json_object *message);

/* Room ROOM's history settings {"size":N,"ttl":S} after setting SIZE and
 * TTL (each -1: unchanged); NULL when there is no such room. */
json_object *api_room_history(const char *room, long size, long ttl);
/* {"room":R,"messages":[...],"position":{...}}: the last LIMIT (< 0: all)
 * messages ROOM keeps; NULL when there is no such room. */
json_object *api_room_messages(const char *room, long limit);

/* Operations on one connection, by the codes of api.c, with an argument
 * already parsed (consumed). */
enum {
    API_OP_DETAILS,
    API_OP_MESSAGE,
    API_OP_ATTRIBUTES,
    API_OP_ADD,
    API_OP_REMOVE,
    API_OP_DISCONNECT
};
void api_conn_call(const char *conn_id, int op, json_object *arg, const char *room, bool force,
                   roomd_result_cb cb, void *ud);

/* The same with the argument as JSON text, for calls routed from another
 * server: only a connection of this server is looked for. */
void api_conn_call_text(const char *conn_id, int op, const char *arg_json, const char *room,
                        bool force, roomd_result_cb cb, void *ud);

#endif
