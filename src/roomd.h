/* roomd.h -- embedding roomd: run the server inside your program, add hooks,
 * and manage rooms and connections from C.
 *
 *   #include <roomd.h>             cc app.c $(pkg-config --cflags --libs roomd)
 *
 * Threads.  roomd_run() turns the calling thread into roomd's acceptor and
 * starts the worker threads; it returns after roomd_stop() or SIGTERM.
 * Every function below is safe to call from any thread once roomd_init()
 * has returned, hooks included.
 *
 * Results.  Room operations answer at once (return value).  Operations on
 * one connection are carried out by the worker thread that owns it; their
 * callback runs on that thread (keep it short, never block), or at once on
 * the calling thread when the connection id is unknown.  A callback gets
 * ERROR (NULL on success, else the protocol's error text, such as "room
 * does not exist" or "connection not found") and RESULT, the JSON text of
 * the answer (e.g. {"added":true}), valid during the call only.
 *
 * The names follow the seed's chatRoom methods: add, del, exists,
 * setAuthenticationPattern, roomStatus, addMember, removeMember,
 * socketRoomBroadcast, sendMessage. */
#ifndef ROOMD_PUBLIC_H
#define ROOMD_PUBLIC_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ running */

/* Parse ARGV as the roomd program does (-c FILE, --key=value), create the
 * starting rooms.  Returns 0, or an exit code (2: bad configuration). */
int roomd_init(int argc, char **argv);
/* Start workers and listeners and serve until stopped.  Returns 0 after a
 * graceful stop, non-zero when start-up failed. */
int roomd_run(void);
/* Ask a running roomd_run() to stop gracefully (any thread). */
void roomd_stop(void);
/* roomd_init + roomd_run + cleanup: the whole roomd program. */
int roomd_main(int argc, char **argv);

/* ------------------------------------------------------------- hooks */

typedef struct conn roomd_conn;

/* Hooks run on the connection's worker thread.  The ones returning bool
 * may refuse: on connect the client gets the goodbye "disconnected by
 * server"; on join roomChange/listenToRoom fail with "not authorized to join
 * room"; on say the client gets "message refused". */
struct roomd_hooks {
    bool (*on_connect)(roomd_conn *c, void *ud);
    void (*on_disconnect)(roomd_conn *c, void *ud);
    bool (*on_join)(roomd_conn *c, const char *room, void *ud);
    bool (*on_say)(roomd_conn *c, const char *room, const char *message, void *ud);
    void *ud;
};

/* Install HOOKS (copied); call before roomd_run(). */
void roomd_set_hooks(const struct roomd_hooks *hooks);

/* Inside a hook, on the connection's own thread: */
const char *roomd_conn_id(const roomd_conn *c);
/* Set attribute KEY to the JSON value JSON_VALUE ("true", "\"gold\"", "3");
 * 0, or -1 when KEY is read-only or JSON_VALUE is not JSON, or -2 when the
 * connection's attributes would pass max_params_bytes (nothing changes). */
int roomd_conn_set_attribute(roomd_conn *c, const char *key, const char *json_value);
/* Attribute KEY as malloc'd JSON text (free it), NULL when unset. */
char *roomd_conn_attribute(const roomd_conn *c, const char *key);

/* ------------------------------------------------------------- rooms */

/* 1 created, 0 existed, -1 invalid room name. */
int roomd_add(const char *room);
/* 1 deleted (members and listeners hear "this room has been deleted"),
 * 0 no such room. */
int roomd_del(const char *room);
bool roomd_exists(const char *room);
/* Replace the room's pattern with KEY = JSON_VALUE; KEY NULL clears it.
 * 0, -1 no such room, -2 JSON_VALUE not a JSON scalar. */
int roomd_set_authentication_pattern(const char *room, const char *key, const char *json_value);
/* The roomView data of ROOM as malloc'd JSON text (free it); a missing
 * room gives 0 members; NULL for an empty name. */
char *roomd_room_status(const char *room);
/* Chat MESSAGE_JSON (any JSON) into ROOM from connection FROM_ID, or from
 * the server (from 0) when FROM_ID is NULL; FROM_ID does not hear it.
 * 0, -1 no such room, -2 MESSAGE_JSON is not JSON. */
int roomd_socket_room_broadcast(const char *from_id, const char *room, const char *message_json);

/* ROOM's history (roomd-protocol(7) "History and recovery"): set its size
 * (messages kept; 0 turns offsets off) and ttl (seconds), each -1 to leave
 * it, and get {"size":N,"ttl":S} as malloc'd JSON text (free it); NULL when
 * there is no such room or a value is out of range. */
char *roomd_room_history(const char *room, long size, long ttl);
/* The last LIMIT (-1: all) messages ROOM keeps, as malloc'd JSON text
 * {"room":R,"messages":[CHAT,...],"position":{"epoch":E,"offset":N}};
 * NULL when there is no such room. */
char *roomd_room_messages(const char *room, long limit);

/* ------------------------------------------------------- connections */

typedef void (*roomd_result_cb)(const char *error, const char *result, void *ud);

/* Put the connection into ROOM as roomChange would; the pattern is checked
 * unless FORCE.  RESULT {"added":BOOL} (false: it was already there). */
void roomd_add_member(const char *conn_id, const char *room, bool force, roomd_result_cb cb,
                      void *ud);
/* roomLeave for the connection.  RESULT {"removed":BOOL}. */
void roomd_remove_member(const char *conn_id, roomd_result_cb cb, void *ud);
/* Send {"message":MESSAGE_JSON,"from":0,"context":"user","sentAt":MS}.
 * RESULT {"sent":true}. */
void roomd_send_message(const char *conn_id, const char *message_json, roomd_result_cb cb,
                        void *ud);
/* Merge ATTRS_JSON (an object; a null value deletes the key) into the
 * connection's attributes.  RESULT {"attributes":{...}}. */
void roomd_set_attributes(const char *conn_id, const char *attrs_json, roomd_result_cb cb,
                          void *ud);
/* Goodbye "disconnected by server", then close.  RESULT {"disconnected":true}. */
void roomd_disconnect(const char *conn_id, roomd_result_cb cb, void *ud);
/* detailsView of the connection.  RESULT the details object. */
void roomd_conn_details(const char *conn_id, roomd_result_cb cb, void *ud);
/* Every connection's details: RESULT {"connections":[...]}, delivered once,
 * on the thread of whichever worker answers last. */
void roomd_list_connections(roomd_result_cb cb, void *ud);

#ifdef __cplusplus
}
#endif

#endif
