/* tls.c -- the TLS server context: certificates, client verification,
 * protocol versions and ciphers, reloaded on SIGHUP.
 *
 * The record layer itself is libevent's (bufferevent_openssl, made by
 * conn.c over the socket, so a kernel with the tls module can take it
 * over: SSL_OP_ENABLE_KTLS).  This file only decides what a handshake
 * offers and checks, from the tls_* keys of roomd.conf(5). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "log.h"
#include "tls.h"

/* The context new handshakes use; replaced whole by tls_reload(). */
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *ctx_current;
static atomic_bool ktls_reported;

/* Session resumption must not let a resumed session skip the client
 * certificate check: OpenSSL wants a context id whenever it verifies peers. */
static const unsigned char SESSION_ID_CONTEXT[] = "roomd";

bool tls_wanted(void)
{
    return settings.tls_port > 0 || settings.wss_port > 0;
}

/* The oldest OpenSSL error as text ("" when none), the queue emptied. */
static const char *openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    buf[0] = '\0';
    if (e)
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

const char *tls_last_error(char *buf, size_t len)
{
    return openssl_reason(buf, len);
}

/* One name of tls_protocols as an OpenSSL version; 0 when unknown. */
static int protocol_version(const char *name, size_t len)
{
    static const struct {
        const char *name;
        int version;
    } known[] = {
        {"TLSv1", TLS1_VERSION},
        {"TLSv1.1", TLS1_1_VERSION},
        {"TLSv1.2", TLS1_2_VERSION},
        {"TLSv1.3", TLS1_3_VERSION},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i].name) == len && strncasecmp(known[i].name, name, len) == 0)
            return known[i].version;
    return 0;
}

/* tls_protocols, a comma-separated list, as the lowest and highest version
 * it names (OpenSSL takes a range; a gap inside the list is not possible). */
static int parse_protocols(const char *list, int *min, int *max)
{
    *min = *max = 0;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        int v = protocol_version(p, len);
        if (v == 0)
            return -1;
        if (*min == 0 || v < *min)
            *min = v;
        if (v > *max)
            *max = v;
        p += len;
    }
    return *min ? 0 : -1;
}

/* A context from the settings C, or NULL with ERR naming what failed: the
 * certificate chain, the key (and that it matches), the CA, the versions. */
static SSL_CTX *context_build(const struct roomd_config *c, char *err, size_t errlen)
{
    char why[256];
    int min, max;
    if (!*c->tls_cert_file || !*c->tls_key_file) {
        snprintf(err, errlen, "tls_cert_file and tls_key_file are needed for tls_port/wss_port");
        return NULL;
    }
    if (parse_protocols(c->tls_protocols, &min, &max) < 0) {
        snprintf(err, errlen, "tls_protocols: '%s' is not a list of TLSv1.2, TLSv1.3 ...",
                 c->tls_protocols);
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS: %s", openssl_reason(why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, min);
    SSL_CTX_set_max_proto_version(ctx, max);
    long opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_ENABLE_KTLS
    opts |= SSL_OP_ENABLE_KTLS;
#endif
    SSL_CTX_set_options(ctx, opts);
    /* An idle connection gives its 34 KB of record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, SESSION_ID_CONTEXT, sizeof(SESSION_ID_CONTEXT) - 1);
    if (*c->tls_ciphers && !SSL_CTX_set_cipher_list(ctx, c->tls_ciphers)) {
        snprintf(err, errlen, "tls_ciphers: '%s': %s", c->tls_ciphers,
                 openssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert_file) != 1) {
        snprintf(err, errlen, "tls_cert_file %s: cannot load the certificate: %s", c->tls_cert_file,
                 openssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "tls_key_file %s: cannot load the key: %s", c->tls_key_file,
                 openssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "tls_key_file %s: does not match tls_cert_file %s: %s",
                 c->tls_key_file, c->tls_cert_file, openssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (strcmp(c->tls_client_auth, "no") != 0) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->tls_ca_cert_file);
        if (!names || SSL_CTX_load_verify_locations(ctx, c->tls_ca_cert_file, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(err, errlen, "tls_ca_cert_file %s: cannot load the CA: %s",
                     c->tls_ca_cert_file, openssl_reason(why, sizeof(why)));
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        int mode = SSL_VERIFY_PEER;
        if (strcmp(c->tls_client_auth, "yes") == 0)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_init(char *err, size_t errlen)
{
    if (!tls_wanted())
        return 0;
    SSL_CTX *ctx = context_build(&settings, err, errlen);
    if (!ctx)
        return -1;
    pthread_mutex_lock(&ctx_lock);
    ctx_current = ctx;
    pthread_mutex_unlock(&ctx_lock);
    return 0;
}

int tls_reload(char *err, size_t errlen)
{
    if (!ctx_current)
        return 0;
    SSL_CTX *ctx = context_build(&settings, err, errlen);
    if (!ctx)
        return -1;
    pthread_mutex_lock(&ctx_lock);
    SSL_CTX *old = ctx_current;
    ctx_current = ctx;
    pthread_mutex_unlock(&ctx_lock);
    SSL_CTX_free(old); /* connections made from it hold their own reference */
    return 0;
}

SSL *tls_session_new(void)
{
    pthread_mutex_lock(&ctx_lock);
    SSL *ssl = ctx_current ? SSL_new(ctx_current) : NULL;
    pthread_mutex_unlock(&ctx_lock);
    return ssl;
}

void tls_handshake_done(SSL *ssl)
{
    if (atomic_exchange(&ktls_reported, true))
        return;
#ifdef SSL_OP_ENABLE_KTLS
    if (BIO_get_ktls_send(SSL_get_wbio(ssl)))
        log_info("TLS: kernel TLS (kTLS) sends the records");
    else
        log_info("TLS: kernel TLS not offered here (no tls module or cipher); OpenSSL "
                 "writes the records");
#else
    log_info("TLS: this OpenSSL has no kernel TLS; OpenSSL writes the records");
#endif
}

void tls_free(void)
{
    pthread_mutex_lock(&ctx_lock);
    SSL_CTX_free(ctx_current);
    ctx_current = NULL;
    pthread_mutex_unlock(&ctx_lock);
}
