/* bench_tls.c -- roomd-benchmark's TLS client side (see bench_tls.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench_tls.h"

struct bench_tls {
    SSL_CTX *ctx;
};

struct bench_tls *bench_tls_new(const char *cafile)
{
    struct bench_tls *t = calloc(1, sizeof(*t));
    if (!t || !(t->ctx = SSL_CTX_new(TLS_client_method()))) {
        free(t);
        return NULL;
    }
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(t->ctx, cafile, NULL) != 1) {
        fprintf(stderr, "roomd-benchmark: cannot read the CA file %s\n", cafile);
        bench_tls_free(t);
        return NULL;
    }
    /* A write may take part of a buffer, and the rest is offered again from
     * a buffer that moved (the publisher's queue is compacted). */
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return t;
}

void bench_tls_free(struct bench_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

static void set_blocking(int fd, int blocking)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

void *bench_tls_connect(struct bench_tls *t, int fd)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    set_blocking(fd, 1);
    int rc = SSL_connect(ssl);
    set_blocking(fd, 0);
    if (rc != 1) {
        unsigned long e = ERR_get_error();
        fprintf(stderr, "roomd-benchmark: TLS handshake failed: %s\n",
                e ? ERR_reason_error_string(e) : "connection closed");
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

void bench_tls_close(void *session)
{
    SSL_free(session);
}

/* OpenSSL's "want read/write" is the socket's EAGAIN; a clean close
 * (close_notify or EOF) is 0. */
static ssize_t tls_result(SSL *ssl, int rc)
{
    if (rc > 0)
        return rc;
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            return 0;
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

/* One SSL_read gives at most one record (16 KiB); the event loop reads
 * once per readiness, so records are taken until the buffer is full or
 * the socket is empty.  A full buffer may leave bytes inside OpenSSL that
 * no readiness will announce: bench_tls_pending tells the caller. */
ssize_t bench_tls_read(void *session, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ERR_clear_error();
        errno = 0;
        size_t want = len - got;
        ssize_t n = tls_result(session, SSL_read(session, (char *)buf + got,
                                                 (int)(want > INT32_MAX ? INT32_MAX : want)));
        if (n <= 0)
            return got > 0 ? (ssize_t)got : n;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

ssize_t bench_tls_write(void *session, const void *buf, size_t len)
{
    ERR_clear_error();
    errno = 0;
    return tls_result(session, SSL_write(session, buf, (int)(len > INT32_MAX ? INT32_MAX : len)));
}

int bench_tls_pending(void *session)
{
    return SSL_pending(session) > 0;
}
