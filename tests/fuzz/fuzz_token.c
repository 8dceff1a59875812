/* fuzz_token.c -- libFuzzer harness for the JWT code (src/token.h): the
 * `auth` verb's token_verify() on anything a client sends, and the
 * token_sign() -> token_verify() round trip on any claims.
 *
 * Input layout: byte 0 picks the mode.
 *   even: the rest is a token, verified under FUZZ_SECRET at FUZZ_NOW.  The
 *         answer is one of the three the auth verb knows; claims come back
 *         only with ERR_NONE, and then as a JSON object.  The seeds hold
 *         tokens signed with FUZZ_SECRET, so mutations reach past the MAC.
 *   odd:  the rest is claims JSON (parsed as the token's claims are).  When
 *         it is an object, token_sign() must give a token that
 *         token_verify() answers exactly as PROTOCOL.md says for those
 *         claims (exp/nbf not numbers, nbf in the future or claims that
 *         are not UTF-8: invalid token;
 *         exp not after now: token expired; else the same claims back),
 *         that the same claims under another secret do not verify, and that
 *         changing any one character of it does not verify either (or
 *         still gives the same claims, for the few base64url spellings of
 *         the same bytes).
 * ASan/UBSan catch the rest.
 *
 * Build and run: tests/fuzz/run_fuzz.sh (scripts/test does it). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "token.h"
#include "utf8.h"

#define FUZZ_SECRET "fuzz-secret"
#define FUZZ_OTHER_SECRET "fuzz-secret2"
#define FUZZ_NOW INT64_C(1700000000)
#define CLAIMS_DEPTH 16 /* token.c's TOKEN_JSON_DEPTH */
#define TOKEN_MAX 8192  /* token.c's TOKEN_MAX_LEN */
#define MODE_SIGN 0x01u

/* Verify; the claims object or NULL, checking the answer's shape. */
static enum roomd_err verify(const char *token, size_t len, const char *secret,
                             json_object **claims)
{
    *claims = (json_object *)1;
    enum roomd_err err = token_verify(token, len, secret, FUZZ_NOW, claims);
    switch (err) {
    case ERR_NONE:
        if (!json_object_is_type(*claims, json_type_object))
            abort();
        break;
    case ERR_INVALID_TOKEN:
    case ERR_TOKEN_EXPIRED:
        if (*claims)
            abort();
        break;
    default:
        abort();
    }
    return err;
}

/* What token_verify() must answer for CLAIMS, per PROTOCOL.md. */
static enum roomd_err expected_answer(json_object *claims)
{
    json_object *exp = NULL, *nbf = NULL;
    bool has_exp = json_object_object_get_ex(claims, "exp", &exp);
    bool has_nbf = json_object_object_get_ex(claims, "nbf", &nbf);
    bool exp_num =
        json_object_is_type(exp, json_type_int) || json_object_is_type(exp, json_type_double);
    bool nbf_num =
        json_object_is_type(nbf, json_type_int) || json_object_is_type(nbf, json_type_double);
    if ((has_exp && !exp_num) || (has_nbf && !nbf_num))
        return ERR_INVALID_TOKEN;
    if (has_nbf && (double)FUZZ_NOW < json_object_get_double(nbf))
        return ERR_INVALID_TOKEN;
    if (has_exp && (double)FUZZ_NOW >= json_object_get_double(exp))
        return ERR_TOKEN_EXPIRED;
    return ERR_NONE;
}

static void round_trip(const char *text, size_t len)
{
    json_object *claims = NULL;
    if (!json_parse_strict(text, len, CLAIMS_DEPTH, &claims))
        return;
    if (!json_object_is_type(claims, json_type_object)) {
        json_object_put(claims);
        return;
    }
    char *token = token_sign(claims, FUZZ_SECRET);
    if (!token)
        abort();
    size_t tlen = strlen(token);
    json_object *back;
    enum roomd_err err = verify(token, tlen, FUZZ_SECRET, &back);
    /* Claims text that is not UTF-8 (bytes json-c let through in a string)
     * makes an invalid token. */
    size_t blen = 0;
    const char *body = json_object_to_json_string_length(claims, ROOMD_JSON_FLAGS, &blen);
    enum roomd_err want =
        tlen > TOKEN_MAX || !utf8_valid(body, blen) ? ERR_INVALID_TOKEN : expected_answer(claims);
    if (err != want || (err == ERR_NONE && !json_object_equal(claims, back)))
        abort();
    json_object_put(back);

    json_object *other;
    if (verify(token, tlen, FUZZ_OTHER_SECRET, &other) != ERR_INVALID_TOKEN)
        abort();

    /* One changed character: refused, or (a base64url spelling of the same
     * bytes, e.g. the unused low bits of the last character) the same
     * claims.  One position per input keeps it cheap. */
    size_t at = (len * 31 + tlen) % tlen;
    token[at] = token[at] == 'A' ? 'B' : 'A';
    json_object *changed;
    err = verify(token, tlen, FUZZ_SECRET, &changed);
    if (err == ERR_NONE && !json_object_equal(claims, changed))
        abort();
    json_object_put(changed);

    free(token);
    json_object_put(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool sign = data[0] & MODE_SIGN;
    const char *text = (const char *)data + 1;
    size--;
    if (sign) {
        round_trip(text, size);
    } else {
        json_object *claims;
        verify(text, size, FUZZ_SECRET, &claims);
        json_object_put(claims);
    }
    return 0;
}
