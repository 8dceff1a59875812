/* route.h -- connection calls routed to the server that has the
 * connection.
 *
 * The server side (C API, admin HTTP) may name a connection this server
 * does not have: the call goes out on shard 0's control channel ("connop"),
 * the server that owns the connection runs it and answers the asker
 * ("connres"); no answer within ROUTE_TIMEOUT_MS is "connection not
 * found". */
#ifndef ROOMD_REDIS_ROUTE_H
#define ROOMD_REDIS_ROUTE_H

#include <stdbool.h>

#include <json-c/json.h>

#include "roomd.h"

/* Ask every server to run OP on CONN_ID (store_ops.route_conn_call); any
 * thread. */
bool redis_route_conn_call(const char *conn_id, int op, const char *arg_json, const char *room,
                           bool force, roomd_result_cb cb, void *ud);
/* A "connop" O from server ORIGIN: run it if the connection is ours. */
void redis_route_run(const char *origin, json_object *o);
/* A "connres" O for this server: the answer of a call it routed. */
void redis_route_done(json_object *o);

#endif
