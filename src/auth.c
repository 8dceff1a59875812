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

static bool json_is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
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
        pp->is_number = json_is_number(val2);
        pp->number = pp->is_number ? json_object_get_double(val2) : 0;
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
            if (!json_is_number(v) || json_object_get_double(v) != p->pairs[i].number)
                return false;
            continue;
        }
        const char *have = v ? json_object_to_json_string_ext(v, ROOMD_JSON_FLAGS) : "null";
        if (strcmp(have, p->pairs[i].value_json) != 0)
            return false;
    }
    return true;
}
