/* token.c -- HS256 JWT verification and signing (see token.h).
 *
 * OpenSSL does the cryptography (HMAC-SHA256, constant-time compare); what
 * is written here is the JWT framing: three base64url parts, a header that
 * must say HS256, claims that must be a JSON object, exp and nbf checked. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "msg.h"
#include "token.h"
#include "utf8.h"

/* A token longer than this is refused before any decoding. */
#define TOKEN_MAX_LEN 8192

/* base64url (no padding) to bytes; a malloc'd NUL-terminated buffer. */
static unsigned char *b64url_decode(const char *in, size_t len, size_t *outlen)
{
    if (len % 4 == 1)
        return NULL;
    size_t padded = (len + 3) / 4 * 4;
    char *std = malloc(padded + 1);
    unsigned char *out = malloc(padded / 4 * 3 + 1);
    if (!std || !out)
        goto fail;
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        if (ch == '-')
            ch = '+';
        else if (ch == '_')
            ch = '/';
        else if (ch == '+' || ch == '/' || ch == '=')
            goto fail; /* not base64url */
        std[i] = ch;
    }
    for (size_t i = len; i < padded; i++)
        std[i] = '=';
    std[padded] = '\0';
    int n = EVP_DecodeBlock(out, (unsigned char *)std, (int)padded);
    if (n < 0)
        goto fail;
    n -= (int)(padded - len); /* EVP_DecodeBlock counts the padding as zeros */
    out[n] = '\0';
    *outlen = (size_t)n;
    free(std);
    return out;
fail:
    free(std);
    free(out);
    return NULL;
}

/* Bytes to base64url without padding; a malloc'd string. */
static char *b64url_encode(const unsigned char *in, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++)
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    return out;
}

/* Tokens nest no deeper than this. */
#define TOKEN_JSON_DEPTH 16

/* A header or claims part: one JSON object (json_parse_strict: a claim twice,
 * "role" and "role", is refused, not the last one kept).  Its text must be
 * UTF-8, as JSON's is: json-c would take any byte in a string, and a claim
 * becomes an attribute that goes out in WebSocket text frames (where a
 * browser drops the connection on invalid UTF-8).  Escapes cannot make
 * invalid UTF-8: json-c turns a lone surrogate into U+FFFD. */
static json_object *parse_object(const unsigned char *text, size_t len)
{
    json_object *o;
    if (!utf8_valid((const char *)text, len) ||
        !json_parse_strict((const char *)text, len, TOKEN_JSON_DEPTH, &o))
        return NULL;
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static bool header_is_hs256(json_object *header)
{
    json_object *alg;
    return json_object_object_get_ex(header, "alg", &alg) &&
           json_object_is_type(alg, json_type_string) &&
           strcmp(json_object_get_string(alg), "HS256") == 0;
}

/* A time claim: absent (true, *present false), a number, or invalid. */
static bool time_claim(json_object *claims, const char *name, bool *present, double *value)
{
    json_object *v;
    *present = json_object_object_get_ex(claims, name, &v);
    if (!*present)
        return true;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return false;
    *value = json_object_get_double(v);
    return true;
}

enum roomd_err token_verify(const char *token, size_t len, const char *secret, int64_t now,
                            json_object **claims)
{
    *claims = NULL;
    if (!secret || !*secret || len == 0 || len > TOKEN_MAX_LEN || memchr(token, '\0', len))
        return ERR_INVALID_TOKEN;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return ERR_INVALID_TOKEN;

    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)token,
         (size_t)(dot2 - token), mac, &maclen);
    size_t siglen = 0, hlen = 0, clen = 0;
    unsigned char *sig = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &siglen);
    unsigned char *htext = b64url_decode(token, (size_t)(dot1 - token), &hlen);
    unsigned char *ctext = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &clen);
    json_object *header = htext ? parse_object(htext, hlen) : NULL;
    json_object *body = ctext ? parse_object(ctext, clen) : NULL;
    bool valid = sig && siglen == maclen && CRYPTO_memcmp(sig, mac, maclen) == 0 && header &&
                 header_is_hs256(header) && body;
    free(sig);
    free(htext);
    free(ctext);
    json_object_put(header);
    if (!valid) {
        json_object_put(body);
        return ERR_INVALID_TOKEN;
    }
    bool has_exp, has_nbf;
    double exp = 0, nbf = 0;
    if (!time_claim(body, "exp", &has_exp, &exp) || !time_claim(body, "nbf", &has_nbf, &nbf) ||
        (has_nbf && (double)now < nbf)) {
        json_object_put(body);
        return ERR_INVALID_TOKEN;
    }
    if (has_exp && (double)now >= exp) {
        json_object_put(body);
        return ERR_TOKEN_EXPIRED;
    }
    *claims = body;
    return ERR_NONE;
}

char *token_sign(json_object *claims, const char *secret)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const char *body = json_object_to_json_string_ext(claims, ROOMD_JSON_FLAGS);
    char *h = b64url_encode((const unsigned char *)header, sizeof(header) - 1);
    char *b = b64url_encode((const unsigned char *)body, strlen(body));
    char *token = NULL;
    if (h && b) {
        size_t signed_len = strlen(h) + 1 + strlen(b);
        char *signing = malloc(signed_len + 1);
        if (signing) {
            snprintf(signing, signed_len + 1, "%s.%s", h, b);
            unsigned char mac[EVP_MAX_MD_SIZE];
            unsigned int maclen = 0;
            HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)signing, signed_len,
                 mac, &maclen);
            char *s = b64url_encode(mac, maclen);
            if (s && (token = malloc(signed_len + 1 + strlen(s) + 1)))
                sprintf(token, "%s.%s", signing, s);
            free(s);
            free(signing);
        }
    }
    free(h);
    free(b);
    return token;
}
