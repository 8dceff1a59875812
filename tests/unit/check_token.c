/* check_token.c -- unit tests of HS256 JSON Web Tokens (token.h).
 *
 * PROTOCOL.md "Authentication patterns": a token is valid when it is three
 * base64url parts, its header says alg HS256, its signature is the
 * HMAC-SHA256 of "HEADER.PAYLOAD" under the secret and its payload is a
 * JSON object.  exp in the past (exp <= now) is ERR_TOKEN_EXPIRED; a
 * non-numeric exp/nbf or an nbf in the future is ERR_INVALID_TOKEN, as is
 * every malformed token.
 *
 * Tokens with unusual headers are signed here with OpenSSL directly, so a
 * test of "alg HS512" or "header not an object" has a signature that is
 * right and fails for the reason it names only.  Nothing here keeps global
 * state: the tests also pass with CK_FORK=no. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "msg.h"
#include "token.h"

/* https://jwt.io's example token and its secret. */
#define JWTIO_TOKEN                                                                                \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"    \
    "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
#define JWTIO_SECRET "your-256-bit-secret"
#define JWTIO_IAT 1516239022

#define SECRET "s3cret"
#define HS256_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
/* Any fixed "now" for the tests that are not about time. */
#define NOW ((int64_t)1700000000)
/* token.c refuses longer tokens before decoding them. */
#define TOKEN_MAX_LEN 8192

/* ------------------------------------------------------------ helpers */

/* base64url without padding, as JWTs use it; a malloc'd string. */
static char *b64url(const void *data, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1);
    ck_assert_ptr_nonnull(out);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

static char *b64url_str(const char *text)
{
    return b64url(text, strlen(text));
}

/* "HEADER.PAYLOAD.SIG" from raw header and payload text, signed with
 * HMAC-SHA256 under SECRET whatever the header says; a malloc'd string. */
static char *make_token(const char *header, const char *payload, const char *secret)
{
    char *h = b64url_str(header), *p = b64url_str(payload);
    size_t slen = strlen(h) + 1 + strlen(p);
    char *signing = malloc(slen + 1);
    ck_assert_ptr_nonnull(signing);
    snprintf(signing, slen + 1, "%s.%s", h, p);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), secret, (int)strlen(secret),
                               (const unsigned char *)signing, slen, mac, &maclen));
    char *s = b64url(mac, maclen);
    char *token = malloc(slen + 1 + strlen(s) + 1);
    ck_assert_ptr_nonnull(token);
    sprintf(token, "%s.%s", signing, s);
    free(h);
    free(p);
    free(signing);
    free(s);
    return token;
}

/* A properly signed HS256 token with PAYLOAD as its claims text. */
static char *hs256(const char *payload)
{
    return make_token(HS256_HEADER, payload, SECRET);
}

/* token_verify on a NUL-terminated TOKEN; *CLAIMS_OUT gets the claims
 * (or stays NULL when CLAIMS_OUT is NULL: they are put here). */
static enum roomd_err verify_at(const char *token, const char *secret, int64_t now,
                                json_object **claims_out)
{
    json_object *claims = (json_object *)0x1; /* token_verify must reset it */
    enum roomd_err err = token_verify(token, strlen(token), secret, now, &claims);
    if (err != ERR_NONE)
        ck_assert_msg(claims == NULL, "claims not NULL after error %d for %s", err, token);
    else
        ck_assert_msg(json_object_is_type(claims, json_type_object), "claims not an object for %s",
                      token);
    if (claims_out)
        *claims_out = claims;
    else
        json_object_put(claims);
    return err;
}

static enum roomd_err verify(const char *token)
{
    return verify_at(token, SECRET, NOW, NULL);
}

/* Verify a token made from PAYLOAD at NOW. */
static enum roomd_err verify_payload(const char *payload, int64_t now)
{
    char *t = hs256(payload);
    enum roomd_err err = verify_at(t, SECRET, now, NULL);
    free(t);
    return err;
}

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);
    ck_assert_msg(o != NULL, "bad JSON in test: %s", text);
    return o;
}

static void assert_json(json_object *got, const char *want)
{
    json_object *w = parse(want);
    ck_assert_msg(json_object_equal(got, w), "got %s, want %s",
                  json_object_to_json_string_ext(got, ROOMD_JSON_FLAGS), want);
    json_object_put(w);
}

/* Replace the part INDEX (0 header, 1 payload, 2 signature) of TOKEN by
 * PART; a malloc'd string. */
static char *replace_part(const char *token, int index, const char *part)
{
    char *copy = strdup(token), *parts[3], *save = NULL;
    ck_assert_ptr_nonnull(copy);
    parts[0] = strtok_r(copy, ".", &save);
    parts[1] = strtok_r(NULL, ".", &save);
    parts[2] = strtok_r(NULL, ".", &save);
    ck_assert_ptr_nonnull(parts[2]);
    parts[index] = (char *)part;
    size_t len = strlen(parts[0]) + strlen(parts[1]) + strlen(parts[2]) + 3;
    char *out = malloc(len);
    ck_assert_ptr_nonnull(out);
    snprintf(out, len, "%s.%s.%s", parts[0], parts[1], parts[2]);
    free(copy);
    return out;
}

/* --------------------------------------------------- the jwt.io example */

START_TEST(test_jwtio_reference_verifies)
{
    json_object *claims = NULL;
    ck_assert_int_eq(verify_at(JWTIO_TOKEN, JWTIO_SECRET, JWTIO_IAT + 100, &claims), ERR_NONE);
    json_object *v;
    ck_assert(json_object_object_get_ex(claims, "sub", &v));
    ck_assert(json_object_is_type(v, json_type_string));
    ck_assert_str_eq(json_object_get_string(v), "1234567890");
    ck_assert(json_object_object_get_ex(claims, "name", &v));
    ck_assert_str_eq(json_object_get_string(v), "John Doe");
    ck_assert(json_object_object_get_ex(claims, "iat", &v));
    ck_assert(json_object_is_type(v, json_type_int));
    ck_assert_int_eq(json_object_get_int64(v), JWTIO_IAT);
    ck_assert_int_eq(json_object_object_length(claims), 3);
    json_object_put(claims);
    /* iat is not checked: any "now" will do, long before it included. */
    ck_assert_int_eq(verify_at(JWTIO_TOKEN, JWTIO_SECRET, 0, NULL), ERR_NONE);
}
END_TEST

START_TEST(test_jwtio_reference_signed)
{
    /* token_sign writes the same header and compact claims as jwt.io's
     * example, so it must produce that very token. */
    json_object *claims =
        parse("{\"sub\":\"1234567890\",\"name\":\"John Doe\",\"iat\":1516239022}");
    char *t = token_sign(claims, JWTIO_SECRET);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t, JWTIO_TOKEN);
    free(t);
    json_object_put(claims);
}
END_TEST

START_TEST(test_wrong_secret)
{
    ck_assert_int_eq(verify_at(JWTIO_TOKEN, "your-256-bit-secreT", NOW, NULL), ERR_INVALID_TOKEN);
    ck_assert_int_eq(verify_at(JWTIO_TOKEN, "your-256-bit-secret ", NOW, NULL), ERR_INVALID_TOKEN);
    ck_assert_int_eq(verify_at(JWTIO_TOKEN, SECRET, NOW, NULL), ERR_INVALID_TOKEN);
}
END_TEST

START_TEST(test_empty_secret)
{
    /* A token signed under the empty key must not verify: an empty
     * token_secret means auth is off, never "anything goes". */
    char *t = make_token(HS256_HEADER, "{\"role\":\"admin\"}", "");
    ck_assert_int_eq(verify_at(t, "", NOW, NULL), ERR_INVALID_TOKEN);
    ck_assert_int_eq(verify_at(t, NULL, NOW, NULL), ERR_INVALID_TOKEN);
    free(t);
    ck_assert_int_eq(verify_at(JWTIO_TOKEN, "", NOW, NULL), ERR_INVALID_TOKEN);
}
END_TEST

/* ------------------------------------------------------------ tampering */

START_TEST(test_tampered_payload)
{
    /* The jwt.io signature over another payload. */
    char *p = b64url_str("{\"sub\":\"1234567890\",\"name\":\"John Doe\",\"admin\":true}");
    char *t = replace_part(JWTIO_TOKEN, 1, p);
    ck_assert_int_eq(verify_at(t, JWTIO_SECRET, NOW, NULL), ERR_INVALID_TOKEN);
    free(t);
    free(p);
    /* One character of the payload changed ("John" to "Jphn"). */
    char *copy = strdup(JWTIO_TOKEN);
    char *at = strstr(copy, "IkpvaG4");
    ck_assert_ptr_nonnull(at);
    at[3] = 'w';
    ck_assert_int_eq(verify_at(copy, JWTIO_SECRET, NOW, NULL), ERR_INVALID_TOKEN);
    free(copy);
}
END_TEST

START_TEST(test_tampered_header)
{
    /* Same alg, different header bytes: the signature covers the header. */
    char *h = b64url_str("{\"alg\":\"HS256\",\"typ\":\"JWS\"}");
    char *t = replace_part(JWTIO_TOKEN, 0, h);
    ck_assert_int_eq(verify_at(t, JWTIO_SECRET, NOW, NULL), ERR_INVALID_TOKEN);
    free(t);
    free(h);
}
END_TEST

START_TEST(test_tampered_signature)
{
    const char *sig = strrchr(JWTIO_TOKEN, '.') + 1;
    size_t siglen = strlen(sig);
    ck_assert_uint_eq(siglen, 43);
    /* Every character but the last (whose low bits are padding) changed
     * in turn, to a character that decodes to other bits. */
    for (size_t i = 0; i + 1 < siglen; i++) {
        char *copy = strdup(JWTIO_TOKEN);
        char *s = strrchr(copy, '.') + 1;
        s[i] = s[i] == 'A' ? 'B' : 'A';
        ck_assert_msg(verify_at(copy, JWTIO_SECRET, NOW, NULL) == ERR_INVALID_TOKEN,
                      "signature changed at %zu verified", i);
        free(copy);
    }
    /* The last character changed in its significant bits. */
    char *copy = strdup(JWTIO_TOKEN);
    char *last = copy + strlen(copy) - 1;
    ck_assert_int_eq(*last, 'c');
    *last = 'Q';
    ck_assert_int_eq(verify_at(copy, JWTIO_SECRET, NOW, NULL), ERR_INVALID_TOKEN);
    free(copy);
    /* Truncated, lengthened, empty, and the signature of another token. */
    char *t = replace_part(JWTIO_TOKEN, 2, "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5");
    ck_assert_int_eq(verify_at(t, JWTIO_SECRET, NOW, NULL), ERR_INVALID_TOKEN);
    free(t);
    t = replace_part(JWTIO_TOKEN, 2, "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5cAAA");
    ck_assert_int_eq(verify_at(t, JWTIO_SECRET, NOW, NULL), ERR_INVALID_TOKEN);
    free(t);
    char *trunc = strdup(JWTIO_TOKEN);
    strrchr(trunc, '.')[1] = '\0'; /* "HEADER.PAYLOAD." */
    ck_assert_int_eq(verify_at(trunc, JWTIO_SECRET, NOW, NULL), ERR_INVALID_TOKEN);
    free(trunc);
    char *other = hs256("{\"sub\":\"x\"}");
    t = replace_part(JWTIO_TOKEN, 2, strrchr(other, '.') + 1);
    ck_assert_int_eq(verify_at(t, SECRET, NOW, NULL), ERR_INVALID_TOKEN);
    free(t);
    free(other);
}
END_TEST

/* ------------------------------------------------------------ algorithms */

START_TEST(test_alg_none_unsigned)
{
    char *h = b64url_str("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    char *p = b64url_str("{\"role\":\"admin\"}");
    char t[512];
    snprintf(t, sizeof(t), "%s.%s.", h, p);
    ck_assert_int_eq(verify(t), ERR_INVALID_TOKEN);
    snprintf(t, sizeof(t), "%s.%s", h, p); /* no trailing dot either */
    ck_assert_int_eq(verify(t), ERR_INVALID_TOKEN);
    free(h);
    free(p);
}
END_TEST

START_TEST(test_alg_none_signed)
{
    /* A correct HMAC-SHA256 signature does not make alg none acceptable. */
    static const char *const headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"None\"}",
        "{\"alg\":\"NONE\"}",
        "{\"typ\":\"JWT\"}", /* no alg at all */
        "{\"alg\":null}",
        "{\"alg\":\"\"}",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *t = make_token(headers[i], "{\"role\":\"admin\"}", SECRET);
        ck_assert_msg(verify(t) == ERR_INVALID_TOKEN, "header %s accepted", headers[i]);
        free(t);
    }
}
END_TEST

START_TEST(test_alg_other)
{
    /* Other algorithms, signed with HMAC-SHA256 (what an attacker who
     * knows roomd only checks HS256 signatures would send). */
    static const char *const headers[] = {
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS384\"}",
        "{\"alg\":\"RS256\"}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"HS256 \"}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":256}",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *t = make_token(headers[i], "{\"role\":\"admin\"}", SECRET);
        ck_assert_msg(verify(t) == ERR_INVALID_TOKEN, "header %s accepted", headers[i]);
        free(t);
    }
    /* A genuine HS512 signature. */
    char *h = b64url_str("{\"alg\":\"HS512\",\"typ\":\"JWT\"}");
    char *p = b64url_str("{\"role\":\"admin\"}");
    char signing[256];
    snprintf(signing, sizeof(signing), "%s.%s", h, p);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha512(), SECRET, (int)strlen(SECRET), (unsigned char *)signing, strlen(signing), mac,
         &maclen);
    ck_assert_uint_eq(maclen, 64);
    char *s = b64url(mac, maclen);
    char t[512];
    snprintf(t, sizeof(t), "%s.%s", signing, s);
    ck_assert_int_eq(verify(t), ERR_INVALID_TOKEN);
    free(h);
    free(p);
    free(s);
}
END_TEST

START_TEST(test_header_extra_fields_ok)
{
    /* Only alg matters; typ may be absent or anything, kid may be there. */
    static const char *const headers[] = {
        "{\"alg\":\"HS256\"}",
        "{\"typ\":\"JWT\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"at+jwt\"}",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *t = make_token(headers[i], "{\"role\":\"admin\"}", SECRET);
        ck_assert_msg(verify(t) == ERR_NONE, "header %s refused", headers[i]);
        free(t);
    }
}
END_TEST

/* ------------------------------------------------------------- framing */

START_TEST(test_part_count)
{
    char *good = hs256("{\"a\":1}");
    ck_assert_int_eq(verify(good), ERR_NONE);
    char buf[1024];
    const char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
    /* Missing parts. */
    ck_assert_int_eq(verify(""), ERR_INVALID_TOKEN);
    ck_assert_int_eq(verify("."), ERR_INVALID_TOKEN);
    ck_assert_int_eq(verify(".."), ERR_INVALID_TOKEN);
    ck_assert_int_eq(verify("..."), ERR_INVALID_TOKEN);
    snprintf(buf, sizeof(buf), "%.*s", (int)(dot1 - good), good); /* header only */
    ck_assert_int_eq(verify(buf), ERR_INVALID_TOKEN);
    snprintf(buf, sizeof(buf), "%.*s", (int)(dot2 - good), good); /* header.payload */
    ck_assert_int_eq(verify(buf), ERR_INVALID_TOKEN);
    snprintf(buf, sizeof(buf), "%.*s%s", (int)(dot1 - good), good, dot2); /* header.sig */
    ck_assert_int_eq(verify(buf), ERR_INVALID_TOKEN);
    snprintf(buf, sizeof(buf), "%s", dot1); /* .payload.sig */
    ck_assert_int_eq(verify(buf), ERR_INVALID_TOKEN);
    /* Extra parts. */
    snprintf(buf, sizeof(buf), "%s.", good);
    ck_assert_int_eq(verify(buf), ERR_INVALID_TOKEN);
    snprintf(buf, sizeof(buf), "%s.%s", good, dot2 + 1);
    ck_assert_int_eq(verify(buf), ERR_INVALID_TOKEN);
    snprintf(buf, sizeof(buf), ".%s", good);
    ck_assert_int_eq(verify(buf), ERR_INVALID_TOKEN);
    snprintf(buf, sizeof(buf), "%.*s.%s", (int)(dot1 - good), good, dot1); /* h..p.s */
    ck_assert_int_eq(verify(buf), ERR_INVALID_TOKEN);
    free(good);
}
END_TEST

START_TEST(test_non_base64url_chars)
{
    char *good = hs256("{\"a\":1}");
    size_t len = strlen(good);
    /* Characters base64url does not have, put into each part in turn:
     * standard base64's + and /, padding, whitespace, others. */
    static const char bad[] = {'+', '/', '=', ' ', '\t', '\n', '\r', '*', '!', '~', '%', '\\'};
    size_t positions[3];
    positions[0] = 2;                                      /* in the header */
    positions[1] = (size_t)(strchr(good, '.') - good) + 3; /* in the payload */
    positions[2] = len - 5;                                /* in the signature */
    for (size_t p = 0; p < 3; p++)
        for (size_t b = 0; b < sizeof(bad); b++) {
            char *t = strdup(good);
            t[positions[p]] = bad[b];
            ck_assert_msg(verify(t) == ERR_INVALID_TOKEN, "char 0x%02x in part %zu accepted",
                          (unsigned char)bad[b], p);
            free(t);
        }
    /* Appended to the end, to the signature. */
    for (size_t b = 0; b < sizeof(bad); b++) {
        char t[1024];
        snprintf(t, sizeof(t), "%s%c", good, bad[b]);
        ck_assert_msg(verify(t) == ERR_INVALID_TOKEN, "trailing char 0x%02x accepted",
                      (unsigned char)bad[b]);
        snprintf(t, sizeof(t), "%c%s", bad[b], good);
        ck_assert_msg(verify(t) == ERR_INVALID_TOKEN, "leading char 0x%02x accepted",
                      (unsigned char)bad[b]);
    }
    /* Non-ASCII bytes. */
    char t[1024];
    snprintf(t, sizeof(t), "%s\xc3\xa9", good);
    ck_assert_int_eq(verify(t), ERR_INVALID_TOKEN);
    free(good);
}
END_TEST

START_TEST(test_standard_base64_alphabet_refused)
{
    /* The same signature in standard base64 ('+' and '/' for '-' and '_'):
     * the jwt.io signature has a '_', so this is a real re-encoding. */
    char *copy = strdup(JWTIO_TOKEN);
    char *sig = strrchr(copy, '.') + 1;
    ck_assert_ptr_nonnull(strchr(sig, '_'));
    for (char *s = sig; *s; s++)
        *s = *s == '-' ? '+' : *s == '_' ? '/' : *s;
    ck_assert_int_eq(verify_at(copy, JWTIO_SECRET, NOW, NULL), ERR_INVALID_TOKEN);
    free(copy);
}
END_TEST

START_TEST(test_padding_refused)
{
    char t[1024];
    /* The 43-character signature padded to 44. */
    snprintf(t, sizeof(t), "%s=", JWTIO_TOKEN);
    ck_assert_int_eq(verify_at(t, JWTIO_SECRET, NOW, NULL), ERR_INVALID_TOKEN);
    /* A padded payload ("{\"a\":1}" is 7 bytes: 10 characters + "=="). */
    char *h = b64url_str(HS256_HEADER), *p = b64url_str("{\"a\":1}");
    ck_assert_uint_eq(strlen(p), 10);
    char padded[64];
    snprintf(padded, sizeof(padded), "%s==", p);
    char *good = hs256("{\"a\":1}");
    char *bad = replace_part(good, 1, padded);
    ck_assert_int_eq(verify(bad), ERR_INVALID_TOKEN);
    free(bad);
    /* Even when the signature is computed over the padded text. */
    char signing[256];
    snprintf(signing, sizeof(signing), "%s.%s", h, padded);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)signing, strlen(signing), mac,
         &maclen);
    char *s = b64url(mac, maclen);
    snprintf(t, sizeof(t), "%s.%s", signing, s);
    ck_assert_int_eq(verify(t), ERR_INVALID_TOKEN);
    free(s);
    free(good);
    free(h);
    free(p);
}
END_TEST

START_TEST(test_impossible_base64_length)
{
    /* A base64url part of 4k+1 characters cannot encode anything. */
    char *good = hs256("{\"a\":1}");
    char *p = b64url_str("{\"a\":1}");
    char longer[64];
    snprintf(longer, sizeof(longer), "%sAAA", p); /* 10 + 3 = 13 = 4*3+1 */
    char *bad = replace_part(good, 1, longer);
    ck_assert_int_eq(verify(bad), ERR_INVALID_TOKEN);
    free(bad);
    free(p);
    free(good);
}
END_TEST

START_TEST(test_length_argument_honoured)
{
    /* token_verify reads LEN bytes, not up to a NUL. */
    char *good = hs256("{\"a\":1}");
    size_t len = strlen(good);
    json_object *claims = NULL;
    char *longer = malloc(len + 10);
    memcpy(longer, good, len);
    memcpy(longer + len, "garbage!!", 10);
    ck_assert_int_eq(token_verify(longer, len, SECRET, NOW, &claims), ERR_NONE);
    json_object_put(claims);
    claims = NULL;
    ck_assert_int_eq(token_verify(good, len - 1, SECRET, NOW, &claims), ERR_INVALID_TOKEN);
    ck_assert_ptr_null(claims);
    ck_assert_int_eq(token_verify(good, 0, SECRET, NOW, &claims), ERR_INVALID_TOKEN);
    /* An embedded NUL is not part of any valid token. */
    longer[len] = '\0';
    ck_assert_int_eq(token_verify(longer, len + 1, SECRET, NOW, &claims), ERR_INVALID_TOKEN);
    ck_assert_ptr_null(claims);
    free(longer);
    free(good);
}
END_TEST

/* ------------------------------------------------------------- content */

START_TEST(test_payload_not_an_object)
{
    static const char *const payloads[] = {
        "[1,2]", "\"sub\"", "42", "true", "null", "", "{", "{\"a\":1", "not json",
    };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
        ck_assert_msg(verify_payload(payloads[i], NOW) == ERR_INVALID_TOKEN,
                      "payload '%s' accepted", payloads[i]);
    ck_assert_int_eq(verify_payload("{}", NOW), ERR_NONE);
    ck_assert_int_eq(verify_payload(" {\"a\":1} ", NOW), ERR_NONE); /* JSON whitespace */
}
END_TEST

START_TEST(test_header_not_an_object)
{
    static const char *const headers[] = {
        "[\"HS256\"]", "\"HS256\"", "null", "", "{\"alg\":\"HS256\"", "alg=HS256",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *t = make_token(headers[i], "{\"a\":1}", SECRET);
        ck_assert_msg(verify(t) == ERR_INVALID_TOKEN, "header '%s' accepted", headers[i]);
        free(t);
    }
}
END_TEST

START_TEST(test_json_strict)
{
    /* "malformed JSON: invalid token" (PROTOCOL.md): a part is one strict
     * JSON text (RFC 8259), so an object followed by more than whitespace,
     * or written in a lenient dialect, is malformed even when the
     * signature is right. */
    static const char *const payloads[] = {
        "{\"a\":1}}", "{\"a\":1} x", "{\"a\":1}{\"b\":2}", "{\"a\":1},",
        "{'a':1}",    "{\"a\":1,}",  "{\"a\":NaN}",        "{\"a\":[1,]}",
    };
    int accepted = 0;
    char which[512] = "";
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
        if (verify_payload(payloads[i], NOW) != ERR_INVALID_TOKEN) {
            accepted++;
            strncat(which, payloads[i], sizeof(which) - strlen(which) - 4);
            strcat(which, "  ");
        }
    ck_assert_msg(accepted == 0, "malformed payloads accepted: %s", which);
    char *t = make_token("{\"alg\":\"HS256\"}{\"alg\":\"none\"}", "{\"a\":1}", SECRET);
    ck_assert_msg(verify(t) == ERR_INVALID_TOKEN, "header with trailing garbage accepted");
    free(t);
}
END_TEST

START_TEST(test_claims_not_utf8)
{
    /* Issue 11 item 7: claims become attributes, which go out in WebSocket
     * text frames; bytes that are not UTF-8, in a key or in a string value
     * at any depth, make the token invalid. */
    static const char *const payloads[] = {
        "{\"role\":\"\xff\"}",                  /* a value */
        "{\"r\xc3\":\"admin\"}",                /* a key cut inside a character */
        "{\"role\":\"caf\xc3\"}",               /* a truncated sequence */
        "{\"role\":\"\xc0\xaf\"}",              /* an overlong '/' */
        "{\"role\":\"\xed\xa0\x80\"}",          /* a surrogate, U+D800 */
        "{\"a\":{\"b\":[\"ok\",\"\xfe\"]}}",    /* nested */
        "{\"a\":{\"\xf8\x88\x80\x80\x80\":1}}", /* a nested key */
    };
    char accepted[512] = "";
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
        if (verify_payload(payloads[i], NOW) != ERR_INVALID_TOKEN) {
            size_t n = strlen(accepted);
            snprintf(accepted + n, sizeof(accepted) - n, " [payload %zu]", i);
        }
    ck_assert_msg(accepted[0] == '\0', "claims that are not UTF-8 accepted:%s", accepted);
    /* UTF-8, and escapes (a lone surrogate escape becomes U+FFFD), are fine. */
    ck_assert_int_eq(verify_payload("{\"r\xc3\xb4le\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}", NOW),
                     ERR_NONE);
    ck_assert_int_eq(verify_payload("{\"role\":\"\\u00e9\\ud800\"}", NOW), ERR_NONE);
}
END_TEST

START_TEST(test_duplicate_claims)
{
    /* Issue 11 item 10: json-c keeps the last of two equal keys, so a token
     * with two role claims said whatever its last one said. */
    static const char *const payloads[] = {
        "{\"role\":\"user\",\"role\":\"admin\"}",
        "{\"role\":\"user\",\"\\u0072ole\":\"admin\"}",
        "{\"exp\":1,\"exp\":4000000000}",
        "{\"a\":{\"k\":1,\"k\":2}}",
    };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
        ck_assert_msg(verify_payload(payloads[i], NOW) == ERR_INVALID_TOKEN,
                      "payload '%s' accepted", payloads[i]);
    char *t = make_token("{\"alg\":\"none\",\"alg\":\"HS256\"}", "{\"a\":1}", SECRET);
    ck_assert_msg(verify(t) == ERR_INVALID_TOKEN, "header with alg twice accepted");
    free(t);
    ck_assert_int_eq(verify_payload("{\"role\":\"user\",\"a\":{\"role\":1}}", NOW), ERR_NONE);
}
END_TEST

START_TEST(test_claim_integer_beyond_64_bits)
{
    /* json-c would hold 18446744073709551616 as 18446744073709551615: a
     * claim that is not the number signed is refused. */
    ck_assert_int_eq(verify_payload("{\"uid\":18446744073709551616}", NOW), ERR_INVALID_TOKEN);
    ck_assert_int_eq(verify_payload("{\"uid\":-9223372036854775809}", NOW), ERR_INVALID_TOKEN);
    json_object *claims = NULL;
    char *t = hs256("{\"uid\":18446744073709551615}");
    ck_assert_int_eq(verify_at(t, SECRET, NOW, &claims), ERR_NONE);
    ck_assert_uint_eq(json_object_get_uint64(json_object_object_get(claims, "uid")), UINT64_MAX);
    json_object_put(claims);
    free(t);
}
END_TEST

/* ---------------------------------------------------------------- time */

static enum roomd_err verify_claims_at(const char *fmt, long long value, int64_t now)
{
    char payload[256];
    snprintf(payload, sizeof(payload), fmt, value);
    return verify_payload(payload, now);
}

START_TEST(test_exp)
{
    const char *f = "{\"sub\":\"u\",\"exp\":%lld}";
    ck_assert_int_eq(verify_claims_at(f, NOW - 3600, NOW), ERR_TOKEN_EXPIRED);
    ck_assert_int_eq(verify_claims_at(f, NOW - 1, NOW), ERR_TOKEN_EXPIRED);
    ck_assert_int_eq(verify_claims_at(f, NOW, NOW), ERR_TOKEN_EXPIRED); /* exp == now */
    ck_assert_int_eq(verify_claims_at(f, NOW + 1, NOW), ERR_NONE);
    ck_assert_int_eq(verify_claims_at(f, NOW + 3600, NOW), ERR_NONE);
    ck_assert_int_eq(verify_claims_at(f, 0, NOW), ERR_TOKEN_EXPIRED);
    /* Fractional seconds are numbers too. */
    ck_assert_int_eq(verify_payload("{\"exp\":1700000000.5}", NOW), ERR_NONE);
    ck_assert_int_eq(verify_payload("{\"exp\":1699999999.5}", NOW), ERR_TOKEN_EXPIRED);
    ck_assert_int_eq(verify_payload("{\"exp\":1.7e9}", NOW), ERR_TOKEN_EXPIRED);
    ck_assert_int_eq(verify_payload("{\"exp\":1.8e9}", NOW), ERR_NONE);
}
END_TEST

START_TEST(test_exp_claims_returned)
{
    /* A valid token's claims come back whole, exp/iat/nbf included (the
     * auth verb, not token_verify, leaves them out of the attributes). */
    char payload[256];
    snprintf(payload, sizeof(payload), "{\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld,\"iat\":%lld}",
             (long long)NOW + 60, (long long)NOW - 60, (long long)NOW - 60);
    char *t = hs256(payload);
    json_object *claims = NULL;
    ck_assert_int_eq(verify_at(t, SECRET, NOW, &claims), ERR_NONE);
    assert_json(claims, payload);
    json_object_put(claims);
    free(t);
}
END_TEST

START_TEST(test_nbf)
{
    const char *f = "{\"sub\":\"u\",\"nbf\":%lld}";
    ck_assert_int_eq(verify_claims_at(f, NOW + 3600, NOW), ERR_INVALID_TOKEN);
    ck_assert_int_eq(verify_claims_at(f, NOW + 1, NOW), ERR_INVALID_TOKEN);
    ck_assert_int_eq(verify_claims_at(f, NOW, NOW), ERR_NONE); /* valid from nbf on */
    ck_assert_int_eq(verify_claims_at(f, NOW - 1, NOW), ERR_NONE);
    ck_assert_int_eq(verify_claims_at(f, 0, NOW), ERR_NONE);
}
END_TEST

START_TEST(test_exp_and_nbf_together)
{
    char payload[128];
    /* Inside the window. */
    snprintf(payload, sizeof(payload), "{\"nbf\":%lld,\"exp\":%lld}", (long long)NOW - 10,
             (long long)NOW + 10);
    ck_assert_int_eq(verify_payload(payload, NOW), ERR_NONE);
    /* Before the window: not yet valid is invalid, not "expired". */
    ck_assert_int_eq(verify_payload(payload, NOW - 20), ERR_INVALID_TOKEN);
    /* After it. */
    ck_assert_int_eq(verify_payload(payload, NOW + 20), ERR_TOKEN_EXPIRED);
    /* A non-numeric nbf beats an expired exp: the token is malformed. */
    snprintf(payload, sizeof(payload), "{\"nbf\":\"x\",\"exp\":%lld}", (long long)NOW - 10);
    ck_assert_int_eq(verify_payload(payload, NOW), ERR_INVALID_TOKEN);
}
END_TEST

START_TEST(test_non_numeric_times)
{
    static const char *const values[] = {
        "\"1800000000\"", "\"tomorrow\"",       "true", "false", "null",
        "[1800000000]",   "{\"t\":1800000000}", "\"\"",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char payload[128];
        snprintf(payload, sizeof(payload), "{\"sub\":\"u\",\"exp\":%s}", values[i]);
        ck_assert_msg(verify_payload(payload, NOW) == ERR_INVALID_TOKEN, "exp %s accepted",
                      values[i]);
        snprintf(payload, sizeof(payload), "{\"sub\":\"u\",\"nbf\":%s}", values[i]);
        ck_assert_msg(verify_payload(payload, NOW) == ERR_INVALID_TOKEN, "nbf %s accepted",
                      values[i]);
    }
    /* iat is not checked at all. */
    ck_assert_int_eq(verify_payload("{\"iat\":\"whenever\"}", NOW), ERR_NONE);
}
END_TEST

/* ------------------------------------------------------------- signing */

START_TEST(test_round_trip_json_types)
{
    /* Every JSON type as a claim, nested values included. */
    const char *text = "{\"s\":\"str \\\"quoted\\\" \\u00e9 /slash\",\"i\":42,\"neg\":-7,"
                       "\"big\":9007199254740993,\"d\":2.5,\"t\":true,\"f\":false,\"n\":null,"
                       "\"a\":[1,\"two\",[3],{\"four\":4}],\"o\":{\"k\":{\"deep\":[]}},"
                       "\"empty\":\"\",\"exp\":1800000000}";
    json_object *claims = parse(text);
    char *t = token_sign(claims, SECRET);
    ck_assert_ptr_nonnull(t);
    /* Three non-empty base64url parts. */
    ck_assert_uint_eq(
        strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."), strlen(t));
    const char *dot1 = strchr(t, '.'), *dot2 = strrchr(t, '.');
    ck_assert(dot1 && dot2 && dot1 < dot2 && dot1 > t && dot2 > dot1 + 1 && dot2[1]);
    ck_assert_uint_eq(strlen(dot2 + 1), 43); /* 32 bytes, unpadded */
    json_object *back = NULL;
    ck_assert_int_eq(verify_at(t, SECRET, NOW, &back), ERR_NONE);
    ck_assert_msg(json_object_equal(back, claims), "round trip changed %s into %s", text,
                  json_object_to_json_string_ext(back, ROOMD_JSON_FLAGS));
    json_object *v;
    ck_assert(json_object_object_get_ex(back, "n", &v) && v == NULL);
    ck_assert(json_object_object_get_ex(back, "t", &v) &&
              json_object_is_type(v, json_type_boolean));
    ck_assert(json_object_object_get_ex(back, "d", &v) && json_object_is_type(v, json_type_double));
    json_object_put(back);
    /* Another secret does not verify it. */
    ck_assert_int_eq(verify_at(t, "other", NOW, NULL), ERR_INVALID_TOKEN);
    free(t);
    json_object_put(claims);
}
END_TEST

START_TEST(test_round_trip_empty_claims)
{
    json_object *claims = json_object_new_object();
    char *t = token_sign(claims, SECRET);
    ck_assert_ptr_nonnull(t);
    json_object *back = NULL;
    ck_assert_int_eq(verify_at(t, SECRET, NOW, &back), ERR_NONE);
    ck_assert_int_eq(json_object_object_length(back), 0);
    json_object_put(back);
    free(t);
    json_object_put(claims);
}
END_TEST

START_TEST(test_sign_header_is_hs256)
{
    json_object *claims = parse("{\"a\":1}");
    char *t = token_sign(claims, SECRET);
    ck_assert_ptr_nonnull(t);
    char *h = b64url_str(HS256_HEADER);
    ck_assert_int_eq(strncmp(t, h, strlen(h)), 0);
    ck_assert_int_eq(t[strlen(h)], '.');
    /* The same claims under the same secret sign to the same token, made
     * independently here. */
    char *mine = hs256("{\"a\":1}");
    ck_assert_str_eq(t, mine);
    free(mine);
    free(h);
    free(t);
    json_object_put(claims);
}
END_TEST

/* -------------------------------------------------------------- limits */

/* A signed token of LEN characters, or the shortest one longer (an
 * unpadded base64url part is never 4k+1 characters long). */
static char *token_of_length(size_t len)
{
    size_t fill = len * 3 / 4 - 100;
    for (;; fill++) {
        char *payload = malloc(fill + 16);
        ck_assert_ptr_nonnull(payload);
        memcpy(payload, "{\"pad\":\"", 8);
        memset(payload + 8, 'x', fill);
        memcpy(payload + 8 + fill, "\"}", 3);
        char *t = hs256(payload);
        free(payload);
        if (strlen(t) >= len)
            return t;
        free(t);
    }
}

START_TEST(test_over_long_token)
{
    /* A token of exactly the limit verifies (its 36-character header, two
     * dots and 43-character signature leave a payload of 8111 = 4k+3
     * characters, a length base64url has)... */
    char *t = token_of_length(TOKEN_MAX_LEN);
    ck_assert_uint_eq(strlen(t), TOKEN_MAX_LEN);
    ck_assert_int_eq(verify(t), ERR_NONE);
    free(t);
    /* ... one character more is refused, though it is signed right. */
    t = token_of_length(TOKEN_MAX_LEN + 1);
    ck_assert_uint_eq(strlen(t), TOKEN_MAX_LEN + 1);
    ck_assert_int_eq(verify(t), ERR_INVALID_TOKEN);
    free(t);
    /* And a much longer one. */
    t = token_of_length(100000);
    ck_assert_int_eq(verify(t), ERR_INVALID_TOKEN);
    free(t);
}
END_TEST

static Suite *token_suite(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, test_jwtio_reference_verifies);
    tcase_add_test(tc, test_jwtio_reference_signed);
    tcase_add_test(tc, test_wrong_secret);
    tcase_add_test(tc, test_empty_secret);
    suite_add_tcase(s, tc);

    tc = tcase_create("tampering");
    tcase_add_test(tc, test_tampered_payload);
    tcase_add_test(tc, test_tampered_header);
    tcase_add_test(tc, test_tampered_signature);
    suite_add_tcase(s, tc);

    tc = tcase_create("alg");
    tcase_add_test(tc, test_alg_none_unsigned);
    tcase_add_test(tc, test_alg_none_signed);
    tcase_add_test(tc, test_alg_other);
    tcase_add_test(tc, test_header_extra_fields_ok);
    suite_add_tcase(s, tc);

    tc = tcase_create("framing");
    tcase_add_test(tc, test_part_count);
    tcase_add_test(tc, test_non_base64url_chars);
    tcase_add_test(tc, test_standard_base64_alphabet_refused);
    tcase_add_test(tc, test_padding_refused);
    tcase_add_test(tc, test_impossible_base64_length);
    tcase_add_test(tc, test_length_argument_honoured);
    tcase_add_test(tc, test_payload_not_an_object);
    tcase_add_test(tc, test_header_not_an_object);
    tcase_add_test(tc, test_json_strict);
    tcase_add_test(tc, test_claims_not_utf8);
    tcase_add_test(tc, test_duplicate_claims);
    tcase_add_test(tc, test_claim_integer_beyond_64_bits);
    suite_add_tcase(s, tc);

    tc = tcase_create("time");
    tcase_add_test(tc, test_exp);
    tcase_add_test(tc, test_exp_claims_returned);
    tcase_add_test(tc, test_nbf);
    tcase_add_test(tc, test_exp_and_nbf_together);
    tcase_add_test(tc, test_non_numeric_times);
    suite_add_tcase(s, tc);

    tc = tcase_create("sign");
    tcase_add_test(tc, test_round_trip_json_types);
    tcase_add_test(tc, test_round_trip_empty_claims);
    tcase_add_test(tc, test_sign_header_is_hs256);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_over_long_token);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(token_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
