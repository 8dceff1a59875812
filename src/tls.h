/* tls.h -- the TLS server context of tls_port and wss_port (OpenSSL).
 *
 * One SSL_CTX, built from the tls_* keys at start-up and again on SIGHUP;
 * each new connection's SSL is made from the context current at its
 * accept, so a reload changes what new handshakes present while open
 * connections keep the one they were made with (OpenSSL reference-counts
 * the context). */
#ifndef ROOMD_TLS_H
#define ROOMD_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct ssl_st; /* OpenSSL's SSL */

/* Whether a TLS port is configured (tls_port or wss_port above 0). */
bool tls_wanted(void);
/* Build the context from the running settings.  Returns 0, or -1 with a
 * message naming the file or key that failed in ERR. */
int tls_init(char *err, size_t errlen);
/* SIGHUP: build a new context from the new settings and use it for new
 * handshakes; on failure keep the old one.  Returns 0 or -1 (ERR says why). */
int tls_reload(char *err, size_t errlen);
/* A new server-side SSL for one accepted connection; NULL: out of memory. */
struct ssl_st *tls_session_new(void);
/* The handshake of SSL finished: note, once per process, whether the
 * kernel took over the record layer (kTLS) for sending. */
void tls_handshake_done(struct ssl_st *ssl);
/* Why the last handshake on this thread failed, for the log. */
const char *tls_last_error(char *buf, size_t len);
/* Free the context (at exit). */
void tls_free(void);

#endif
