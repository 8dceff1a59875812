/* msg.c -- see msg.h. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg.h"

struct msg *msg_new(json_object *obj)
{
    size_t len;
    const char *text = json_object_to_json_string_length(obj, ROOMD_JSON_FLAGS, &len);
    return msg_new_text(text, len);
}

struct msg *msg_alloc(size_t len)
{
    struct msg *m = malloc(sizeof(*m) + len + 2);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->len = len;
    m->offset = 0;
    m->data[len] = '\r';
    m->data[len + 1] = '\n';
    return m;
}

struct msg *msg_new_text(const char *text, size_t len)
{
    struct msg *m = msg_alloc(len);
    if (m)
        memcpy(m->data, text, len);
    return m;
}

struct msg *msg_ref(struct msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void msg_unref(struct msg *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

json_object *msg_chat_json(json_object *message, const char *room, const char *from_id)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "message", message);
    if (room)
        json_object_object_add(o, "room", json_object_new_string(room));
    json_object_object_add(o, "from",
                           from_id ? json_object_new_string(from_id) : json_object_new_int(0));
    json_object_object_add(o, "context", json_object_new_string("user"));
    json_object_object_add(o, "sentAt", json_object_new_int64(now_ms()));
    return o;
}

/* Length of the RFC 8259 number at S (at most LEN bytes), or 0 when what is
 * there is not one: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? that also
 * fits a double (1e999 does not) or, written as an integer, fits json-c's
 * int64 or uint64 (json-c would quietly hold 99999999999999999999 as
 * 18446744073709551615, and an authentication pattern compares integers
 * exactly). */
static size_t number_lexeme(const char *s, size_t len)
{
    size_t i = 0;
    bool integer = true;
#define DIGIT(k) ((k) < len && s[k] >= '0' && s[k] <= '9')
    if (i < len && s[i] == '-')
        i++;
    if (!DIGIT(i))
        return 0;
    if (s[i] == '0')
        i++;
    else
        while (DIGIT(i))
            i++;
    if (i < len && s[i] == '.') {
        integer = false;
        if (!DIGIT(i + 1))
            return 0;
        for (i++; DIGIT(i); i++)
            ;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        integer = false;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!DIGIT(i))
            return 0;
        while (DIGIT(i))
            i++;
    }
    if (DIGIT(i))
        return 0; /* "01": a leading zero */
#undef DIGIT
    char *copy = strndup(s, i);
    bool fits = false;
    if (copy && integer) {
        errno = 0;
        if (copy[0] == '-')
            (void)strtoll(copy, NULL, 10);
        else
            (void)strtoull(copy, NULL, 10);
        fits = errno != ERANGE;
    } else if (copy) {
        fits = isfinite(strtod(copy, NULL));
    }
    free(copy);
    return fits ? i : 0;
}

/* Whether the string whose closing quote is at S[END] is an object's key: in
 * text json-c accepted, a ':' after a string (and blanks) only follows a key. */
static bool string_is_key(const char *s, size_t len, size_t end)
{
    size_t j = end + 1;
    while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
        j++;
    return j < len && s[j] == ':';
}

/* json-c's strict mode still takes things RFC 8259 forbids: raw control
 * characters inside strings, single-quoted strings, NaN and Infinity, and
 * numbers such as 01, 1. or -.5 (which it would even write back out as
 * read).  A pass over the raw text closes the gap.  It also refuses what
 * json-c would not hold faithfully: a key holding \u0000 (json-c cuts keys
 * at the NUL) and integers past 64 bits; and it counts the keys in *KEYS,
 * which json_parse_strict compares with the tree's to find duplicate keys
 * (the tree keeps only the last one). */
static bool raw_text_invalid(const char *s, size_t len, size_t *keys)
{
    static const char nul_escape[] = "\\u0000";
    const size_t nul_escape_len = sizeof(nul_escape) - 1;
    bool in_string = false, string_has_nul = false;
    *keys = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (in_string) {
            if (ch < 0x20)
                return true;
            if (ch == '\\') {
                if (len - i >= nul_escape_len && memcmp(s + i, nul_escape, nul_escape_len) == 0)
                    string_has_nul = true;
                i++;
            } else if (ch == '"') {
                in_string = false;
                if (string_is_key(s, len, i)) {
                    if (string_has_nul)
                        return true;
                    (*keys)++;
                }
            }
        } else if (ch == '"') {
            in_string = true;
            string_has_nul = false;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t n = number_lexeme(s + i, len - i);
            if (n == 0)
                return true;
            i += n - 1;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '\'' ||
                   ch == '.' || ch == '+') {
            static const char *const literals[] = {"true", "false", "null"};
            size_t n = 0;
            for (size_t k = 0; k < 3 && !n; k++) {
                size_t l = strlen(literals[k]);
                if (len - i >= l && memcmp(s + i, literals[k], l) == 0)
                    n = l;
            }
            if (!n)
                return true;
            i += n - 1;
        }
    }
    return false;
}

/* Whether the tree O holds a non-finite double or nests past MAX_DEPTH; adds
 * the number of keys of its objects to *KEYS. */
static bool tree_invalid(json_object *o, int depth, int max_depth, size_t *keys)
{
    if (depth > max_depth)
        return true;
    switch (json_object_get_type(o)) {
    case json_type_double:
        return !isfinite(json_object_get_double(o));
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++)
            if (tree_invalid(json_object_array_get_idx(o, i), depth + 1, max_depth, keys))
                return true;
        return false;
    case json_type_object: {
        *keys += (size_t)json_object_object_length(o);
        json_object_object_foreach(o, key, val)
        {
            (void)key;
            if (tree_invalid(val, depth + 1, max_depth, keys))
                return true;
        }
        return false;
    }
    default:
        return false;
    }
}

bool json_parse_strict(const char *text, size_t len, int max_depth, json_object **out)
{
    *out = NULL;
    struct json_tokener *tok = json_tokener_new_ex(max_depth);
    if (!tok)
        return false;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT); /* RFC 8259, not json-c's dialect */
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    bool whole =
        json_tokener_get_error(tok) == json_tokener_success && tok->char_offset == (int)len;
    if (!obj && json_tokener_get_error(tok) == json_tokener_continue) {
        /* A bare number or literal ("3", "true") might go on: end the text. */
        obj = json_tokener_parse_ex(tok, "", 1);
        whole = json_tokener_get_error(tok) == json_tokener_success;
    }
    /* Every key of the text is in the tree unless one was repeated: the tree
     * keeps each key once, so fewer keys there means a duplicate. */
    size_t text_keys = 0, tree_keys = 0;
    bool ok = whole && !raw_text_invalid(text, len, &text_keys) &&
              !tree_invalid(obj, 0, max_depth, &tree_keys) && text_keys == tree_keys;
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(obj);
        return false;
    }
    *out = obj;
    return true;
}
