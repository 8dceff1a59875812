/* auth.c -- authentication patterns (see auth.h). */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "msg.h"

void pattern_clear(struct pattern *p)
{
    for (int i = 0; i < p->npairs; i++) {
        free(p->pairs[i].key);
        free(p->pairs[i].value_json);
    }
    free(p->pairs);
    p->pairs = NULL;
    p->npairs = 0;
}

/* 2^64 as a double: every integer json-c holds (int64 or uint64) lies below it. */
#define AUTH_TWO_TO_64 0x1p64

/* V as an auth_number; false when it is not a JSON number.  json-c keeps an integer as int64
 * or as uint64 (above INT64_MAX), and each getter clamps the other's range: int64 tells the
 * negative ones exactly, uint64 the others. */
static bool number_of(json_object *v, struct auth_number *n)
{
    memset(n, 0, sizeof(*n));
    if (json_object_is_type(v, json_type_double)) {
        n->real = json_object_get_double(v);
        return true;
    }
    if (!json_object_is_type(v, json_type_int))
        return false;
    n->is_integer = true;
    int64_t i = json_object_get_int64(v);
    if (i < 0) {
        n->negative = true;
        n->magnitude = (uint64_t)(-(i + 1)) + 1; /* -INT64_MIN does not fit an int64 */
    } else {
        n->magnitude = json_object_get_uint64(v);
    }
    return true;
}

/* Whether the double D is exactly the integer I (not merely its nearest double). */
static bool integer_is_real(const struct auth_number *i, double d)
{
    if (i->negative ? !(d < 0) : !(d >= 0)) /* the other sign, or NaN */
        return false;
    double size = i->negative ? -d : d;
    if (size >= AUTH_TWO_TO_64)
        return false;
    uint64_t whole = (uint64_t)size; /* exact when SIZE has no fraction */
    return (double)whole == size && whole == i->magnitude;
}

/* Whether A and B are the same number: integers compare as integers, doubles as doubles, and
 * an integer and a double only when the double holds that very integer. */
static bool numbers_equal(const struct auth_number *a, const struct auth_number *b)
{
    if (a->is_integer && b->is_integer)
        return a->negative == b->negative && a->magnitude == b->magnitude;
    if (!a->is_integer && !b->is_integer)
        return a->real == b->real;
    return a->is_integer ? integer_is_real(a, b->real) : integer_is_real(b, a->real);
}

static bool json_is_scalar(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_object:
    case json_type_array:
        return false;
    default:
        return true;
    }
}

int pattern_set(struct pattern *p, json_object *obj)
{
    if (obj) {
        json_object_object_foreach(obj, key, val)
        {
            (void)key;
            if (!json_is_scalar(val))
                return -1;
        }
    }
    pattern_clear(p);
    if (!obj)
        return 0;
    int n = json_object_object_length(obj);
    p->pairs = calloc((size_t)n ? (size_t)n : 1, sizeof(*p->pairs));
    if (!p->pairs)
        return -1;
    json_object_object_foreach(obj, key2, val2)
    {
        struct pattern_pair *pp = &p->pairs[p->npairs++];
        pp->key = strdup(key2);
        pp->value_json =
            strdup(val2 ? json_object_to_json_string_ext(val2, ROOMD_JSON_FLAGS) : "null");
        pp->is_number = number_of(val2, &pp->number);
    }
    return 0;
}

json_object *pattern_to_json(const struct pattern *p)
{
    json_object *o = json_object_new_object();
    for (int i = 0; i < p->npairs; i++)
        json_object_object_add(o, p->pairs[i].key, json_tokener_parse(p->pairs[i].value_json));
    return o;
}

bool pattern_match(const struct pattern *p, json_object *attrs)
{
    for (int i = 0; i < p->npairs; i++) {
        json_object *v;
        if (!json_object_object_get_ex(attrs, p->pairs[i].key, &v))
            return false;
        if (p->pairs[i].is_number) {
            struct auth_number have;
            if (!number_of(v, &have) || !numbers_equal(&p->pairs[i].number, &have))
                return false;
            continue;
        }
        const char *have = v ? json_object_to_json_string_ext(v, ROOMD_JSON_FLAGS) : "null";
        if (strcmp(have, p->pairs[i].value_json) != 0)
            return false;
    }
    return true;
}
