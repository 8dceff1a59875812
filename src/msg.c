/* msg.c -- see msg.h. */
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
 * fits a double (1e999 does not). */
static size_t number_lexeme(const char *s, size_t len)
{
    size_t i = 0;
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
        if (!DIGIT(i + 1))
            return 0;
        for (i++; DIGIT(i); i++)
            ;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
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
    bool finite = copy && isfinite(strtod(copy, NULL));
    free(copy);
    return finite ? i : 0;
}

/* json-c's strict mode still takes things RFC 8259 forbids: raw control
 * characters inside strings, single-quoted strings, NaN and Infinity, and
 * numbers such as 01, 1. or -.5 (which it would even write back out as
 * read).  A pass over the raw text closes the gap, duplicate keys included
 * (the tree keeps only the last one). */
static bool raw_text_invalid(const char *s, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (in_string) {
            if (ch < 0x20)
                return true;
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_string = false;
        } else if (ch == '"') {
            in_string = true;
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

static bool has_non_finite(json_object *o, int depth, int max_depth)
{
    if (depth > max_depth)
        return true;
    switch (json_object_get_type(o)) {
    case json_type_double:
        return !isfinite(json_object_get_double(o));
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++)
            if (has_non_finite(json_object_array_get_idx(o, i), depth + 1, max_depth))
                return true;
        return false;
    case json_type_object: {
        json_object_object_foreach(o, key, val)
        {
            (void)key;
            if (has_non_finite(val, depth + 1, max_depth))
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
    bool ok = whole && !raw_text_invalid(text, len) && !has_non_finite(obj, 0, max_depth);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(obj);
        return false;
    }
    *out = obj;
    return true;
}
