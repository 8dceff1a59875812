/* bench_tls.h -- roomd-benchmark's TLS client side (OpenSSL), for the
 * fan-out over tls_port / wss_port (issue 14).
 *
 * A connection's handshake is made blocking once its TCP connect has
 * completed (a benchmark sets up S connections before it measures, so the
 * handshakes are not timed); afterwards reads and writes are non-blocking
 * and report "try again" as the plain socket calls do: -1 with errno
 * EAGAIN, so the event loop treats both transports alike. */
#ifndef ROOMD_BENCH_TLS_H
#define ROOMD_BENCH_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct bench_tls;

/* A client context trusting the CA certificates in CAFILE (PEM); NULL and
 * a message on stderr when it cannot be read. */
struct bench_tls *bench_tls_new(const char *cafile);
void bench_tls_free(struct bench_tls *t);

/* The TLS session over connected socket FD (non-blocking; it is made
 * blocking for the handshake and non-blocking again); NULL on failure. */
void *bench_tls_connect(struct bench_tls *t, int fd);
void bench_tls_close(void *session);

/* read(2)/write(2) over SESSION: bytes moved, 0 at the end of the stream,
 * -1 with errno (EAGAIN: wait for the socket).  A read that filled all of
 * LEN may leave bytes inside OpenSSL the socket no longer announces:
 * bench_tls_pending says so. */
ssize_t bench_tls_read(void *session, void *buf, size_t len);
ssize_t bench_tls_write(void *session, const void *buf, size_t len);
/* Whether SESSION holds decrypted bytes not read yet (read again). */
int bench_tls_pending(void *session);

#endif
