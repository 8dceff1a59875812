/* proto_ws.c -- placeholder: the WebSocket transport (RFC 6455). */
#include "conn.h"
#include "proto.h"

static void ws_on_open(struct conn *c)
{
    conn_abort(c, NULL);
}

static void ws_on_read(struct conn *c)
{
}

static void ws_send(struct conn *c, const char *json, size_t len)
{
}

static void ws_send_msg(struct conn *c, const struct msg *m)
{
}

const struct conn_proto ws_proto = {
    .on_open = ws_on_open,
    .on_read = ws_on_read,
    .send = ws_send,
    .send_msg = ws_send_msg,
};
