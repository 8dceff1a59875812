/* proxy_proto.h -- the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer sends before a client's bytes,
 * naming the client.  A parser of plain buffers, for the fuzzer and the
 * unit tests; conn_proxy.c reads it from sockets. */
#ifndef ROOMD_PROXY_PROTO_H
#define ROOMD_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest header roomd takes: the spec's 536-byte receive buffer
 * holds any v1 header (107 bytes) and a v2 header with its addresses and
 * the few TLVs cloud balancers add; a longer one is refused. */
#define PROXY_HEADER_MAX 536
/* Version 1's longest line, "\r\n" included (proxy-protocol.txt 2.1). */
#define PROXY_V1_MAX 107

enum proxy_result {
    PROXY_MORE,    /* a valid start: feed more bytes */
    PROXY_DONE,    /* the header is complete: see struct proxy_header */
    PROXY_INVALID, /* not a PROXY header: close the connection */
};

struct proxy_header {
    size_t len; /* bytes the header took; the client's own bytes follow */
    bool local; /* no client address (v1 UNKNOWN, v2 LOCAL or not IP): keep the peer's */
    struct sockaddr_storage source; /* the client (when !local) */
    socklen_t source_len;
};

/* Parse the first LEN bytes a connection sent.  PROXY_MORE promises that
 * every one of the LEN bytes belongs to the header (a reader may consume
 * them); PROXY_DONE sets *OUT; PROXY_INVALID when the bytes cannot start
 * a header, or one longer than PROXY_HEADER_MAX. */
enum proxy_result proxy_parse(const uint8_t *buf, size_t len, struct proxy_header *out);

#endif
