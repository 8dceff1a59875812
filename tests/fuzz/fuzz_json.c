/* fuzz_json.c -- libFuzzer harness for json_parse_strict() (src/msg.h), the
 * one JSON parser for everything a client or the admin API sends: JSON
 * requests, admin request bodies (admin.c's read_body() is static and is
 * json_parse_strict() at ADMIN_JSON_DEPTH plus an "is it an object" test)
 * and token claims.
 *
 * Input layout: byte 0 picks the depth limit (1 + its low 5 bits, which
 * covers REQUEST_JSON_DEPTH 16 and ADMIN_JSON_DEPTH 32); the rest is the
 * text.
 *
 * Oracle: a small RFC 8259 recogniser written here.  json_parse_strict()
 * must accept exactly the texts it accepts, nested no deeper than the
 * limit allows (json-c counts values: the whole text is level 1, an element
 * or member value one level below its container; max_depth levels at
 * most), with numbers that stay finite as doubles (roomd refuses
 * 1e999 as it refuses Infinity).  Bytes >= 0x80 inside strings are taken as
 * they are: callers check UTF-8 before parsing.  One known json-c gap is
 * closed, not hidden: in strict mode json-c still takes some numbers
 * RFC 8259 refuses -- leading zeros ("00", "-01", "00.5"), nothing after
 * the '.' ("1.", "1.e5"), no digit before it after a minus ("-.5") -- and
 * writes a double back as the text it read; and msg.c once refused NaN,
 * Infinity and overflowing doubles only by walking the parsed tree, where
 * a later duplicate key hid them ({"k":NaN,"k":1}).  This harness found
 * both; msg.c now checks every number in the raw text, so both are
 * refused.  Since issue 11, what json-c would not hold as sent is refused
 * too: a key twice in one object (the recogniser knows it for certain when
 * both are spelt alike; spelt two ways, "k" and "\u006b", either answer
 * goes), a key holding \u0000, an integer beyond int64 / uint64.  Any
 * difference from the recogniser is a crash.
 *
 * Then, for what is accepted: the compact serialization roomd sends
 * (ROOMD_JSON_FLAGS) holds no raw control character (so never a line
 * break on the line protocol), is valid UTF-8 whenever the input was, is
 * itself RFC 8259 JSON (when the input held none of json-c's numbers),
 * parses again to an equal value and serializes to the same bytes.
 * ASan/UBSan catch the rest.
 *
 * Build and run: tests/fuzz/run_fuzz.sh (scripts/test does it). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "utf8.h"

#define DEPTH_BITS 0x1fu

/* ------------------------------------------------------- the oracle */

struct rd {
    const unsigned char *s;
    size_t len, pos;
    int depth, max_depth;
    bool jsonc_number; /* a number RFC 8259 refuses and json-c may take */
    bool nonfinite;    /* NaN, Infinity, -Infinity or a double that overflows */
    bool dup_keys;     /* an object may hold one key twice (json-c keeps the last) */
    bool dup_certain;  /* an object holds one key twice, spelt the same */
    bool string_nul;   /* the string just read holds \u0000 */
    bool key_nul;      /* a key holds \u0000 (json-c would cut it there) */
    bool int_overflow; /* an integer beyond int64 / uint64 (json-c would clamp it) */
};

static bool rd_value(struct rd *r);

static void rd_ws(struct rd *r)
{
    while (r->pos < r->len && (r->s[r->pos] == ' ' || r->s[r->pos] == '\t' ||
                               r->s[r->pos] == '\n' || r->s[r->pos] == '\r'))
        r->pos++;
}

static bool rd_lit(struct rd *r, const char *lit)
{
    size_t n = strlen(lit);
    if (r->len - r->pos < n || memcmp(r->s + r->pos, lit, n) != 0)
        return false;
    r->pos += n;
    return true;
}

/* Digits at S[*I..]; how many. */
static size_t digits(const unsigned char *s, size_t n, size_t *i)
{
    size_t start = *i;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9')
        (*i)++;
    return *i - start;
}

/* Is S (N bytes) a number: STRICT per RFC 8259, or as json-c also takes it
 * (leading zeros, nothing after the '.', "-.5")? */
static bool number_form(const unsigned char *s, size_t n, bool strict)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    size_t first = i, nint = digits(s, n, &i);
    if ((nint == 0 && (strict || first == 0)) || (strict && nint > 1 && s[first] == '0'))
        return false;
    if (i < n && s[i] == '.') {
        i++;
        if (digits(s, n, &i) == 0 && (strict || nint == 0))
            return false;
    } else if (nint == 0) {
        return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (digits(s, n, &i) == 0)
            return false;
    }
    return i == n;
}

static bool rd_number(struct rd *r)
{
    /* A number runs to the first byte that cannot be in one: after a valid
     * number only white space, ',', ']', '}' or the end may follow. */
    size_t start = r->pos;
    while (r->pos < r->len && strchr("0123456789+-.eE", r->s[r->pos]) && r->s[r->pos])
        r->pos++;
    const unsigned char *s = r->s + start;
    size_t n = r->pos - start;
    if (!number_form(s, n, true)) {
        if (!number_form(s, n, false))
            return false;
        r->jsonc_number = true; /* json-c's gap: either answer */
    }
    /* An integer must fit json-c's int64 / uint64 range (json-c would clamp
     * it, and roomd refuses that); a number with a fraction or an exponent
     * is a double, and must be finite, as roomd requires. */
    bool integer = !memchr(s, '.', n) && !memchr(s, 'e', n) && !memchr(s, 'E', n);
    char *text = malloc(n + 1);
    if (!text)
        abort();
    memcpy(text, s, n);
    text[n] = '\0';
    errno = 0;
    if (!integer && !isfinite(strtod(text, NULL)))
        r->nonfinite = true;
    else if (integer && text[0] == '-')
        (void)strtoll(text, NULL, 10);
    else if (integer)
        (void)strtoull(text, NULL, 10);
    if (integer && errno == ERANGE)
        r->int_overflow = true;
    free(text);
    return true;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool rd_string(struct rd *r)
{
    r->string_nul = false;
    r->pos++; /* the opening quote */
    while (r->pos < r->len) {
        unsigned char ch = r->s[r->pos++];
        if (ch == '"')
            return true;
        if (ch < 0x20)
            return false;
        if (ch != '\\')
            continue;
        if (r->pos >= r->len)
            return false;
        ch = r->s[r->pos++];
        if (ch == 'u') {
            int code = 0;
            for (int i = 0; i < 4; i++) {
                int h = r->pos < r->len ? hexval(r->s[r->pos++]) : -1;
                if (h < 0)
                    return false;
                code = code * 16 + h;
            }
            if (code == 0)
                r->string_nul = true;
        } else if (!strchr("\"\\/bfnrt", ch) || ch == '\0') {
            return false;
        }
    }
    return false;
}

/* Keys of one object compared for duplicates; past this many, assume one. */
#define KEYS_TRACKED 64

struct keys {
    size_t start[KEYS_TRACKED], len[KEYS_TRACKED];
    size_t n;
};

/* Note the key just read (raw, quotes included): a repeat is a duplicate for certain; any
 * escape in an object of two or more keys ("k" and "\u006b" are the same key to json-c) may
 * be one, and so may a key past KEYS_TRACKED. */
static void note_key(struct rd *r, struct keys *k, size_t start)
{
    size_t len = r->pos - start;
    if (r->string_nul)
        r->key_nul = true;
    if (k->n == KEYS_TRACKED) {
        r->dup_keys = true;
        return;
    }
    for (size_t i = 0; i < k->n; i++)
        if (k->len[i] == len && memcmp(r->s + k->start[i], r->s + start, len) == 0)
            r->dup_certain = true;
        else if (memchr(r->s + k->start[i], '\\', k->len[i]) || memchr(r->s + start, '\\', len))
            r->dup_keys = true;
    k->start[k->n] = start;
    k->len[k->n++] = len;
}

static bool rd_container(struct rd *r, char close, bool object)
{
    struct keys keys;
    keys.n = 0;
    r->pos++;
    rd_ws(r);
    if (r->pos < r->len && r->s[r->pos] == close) {
        r->pos++;
        return true;
    }
    for (;;) {
        if (object) {
            size_t start = r->pos;
            if (r->pos >= r->len || r->s[r->pos] != '"' || !rd_string(r))
                return false;
            note_key(r, &keys, start);
            rd_ws(r);
            if (!rd_lit(r, ":"))
                return false;
        }
        if (!rd_value(r))
            return false;
        rd_ws(r);
        if (r->pos >= r->len)
            return false;
        if (r->s[r->pos] == close) {
            r->pos++;
            return true;
        }
        if (r->s[r->pos++] != ',')
            return false;
        rd_ws(r);
    }
}

static bool rd_scalar_or_container(struct rd *r)
{
    switch (r->s[r->pos]) {
    case '{':
        return rd_container(r, '}', true);
    case '[':
        return rd_container(r, ']', false);
    case '"':
        return rd_string(r);
    case 't':
        return rd_lit(r, "true");
    case 'f':
        return rd_lit(r, "false");
    case 'n':
        return rd_lit(r, "null");
    case 'N':
    case 'I':
    case '-':
        /* json-c reads these even in strict mode; roomd must refuse them. */
        if (rd_lit(r, "NaN") || rd_lit(r, "Infinity") || rd_lit(r, "-Infinity")) {
            r->nonfinite = true;
            return true;
        }
        return rd_number(r);
    default:
        return rd_number(r);
    }
}

/* A value at nesting level depth + 1 (the whole text is level 1). */
static bool rd_value(struct rd *r)
{
    rd_ws(r);
    if (r->pos >= r->len || ++r->depth > r->max_depth)
        return false;
    bool ok = rd_scalar_or_container(r);
    r->depth--;
    return ok;
}

enum verdict { REFUSE, ACCEPT, EITHER };

static enum verdict oracle(const char *text, size_t len, int max_depth)
{
    struct rd r = {.s = (const unsigned char *)text, .len = len, .max_depth = max_depth};
    if (!rd_value(&r))
        return REFUSE;
    rd_ws(&r);
    if (r.pos != len)
        return REFUSE;
    if (r.nonfinite || r.jsonc_number) /* both refused since issue 8's fixes */
        return REFUSE;
    /* What json-c would not hold faithfully is refused since issue 11's. */
    if (r.dup_certain || r.key_nul || r.int_overflow)
        return REFUSE;
    if (r.dup_keys) /* the same key spelt two ways, or one the oracle did not track */
        return EITHER;
    return ACCEPT;
}

/* ------------------------------------------------------- the harness */

static void check_serialization(json_object *obj, bool input_utf8, int max_depth, bool rfc)
{
    size_t len;
    const char *text = json_object_to_json_string_length(obj, ROOMD_JSON_FLAGS, &len);
    if (!text || strlen(text) != len)
        abort();
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20)
            abort();
    if (input_utf8 && !utf8_valid(text, len))
        abort();
    /* What roomd sends is RFC 8259 JSON (json-c writes a double as the text
     * it was parsed from, so a "1." read in would go out as "1."). */
    if (rfc && oracle(text, len, max_depth) == REFUSE) /* EITHER: escaped keys, all distinct */
        abort();
    json_object *again = NULL;
    if (!json_parse_strict(text, len, max_depth, &again) || !json_object_equal(obj, again))
        abort();
    size_t len2;
    const char *text2 = json_object_to_json_string_length(again, ROOMD_JSON_FLAGS, &len2);
    if (len2 != len || memcmp(text, text2, len) != 0)
        abort();
    json_object_put(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int max_depth = 1 + (int)(data[0] & DEPTH_BITS);
    const char *text = (const char *)data + 1;
    size--;
    json_object *obj = (json_object *)1; /* must be overwritten */
    bool ok = json_parse_strict(text, size, max_depth, &obj);
    enum verdict want = oracle(text, size, max_depth);
    if (want != EITHER && ok != (want == ACCEPT))
        abort();
    if (!ok) {
        if (obj)
            abort();
        return 0;
    }
    if (obj) /* NULL only for the text null */
        check_serialization(obj, utf8_valid(text, size), max_depth, want == ACCEPT);
    json_object_put(obj);
    return 0;
}
