/* auth.h -- room authentication patterns.
 *
 * A pattern is a set of KEY = VALUE pairs; a connection matches when each
 * KEY is one of its attributes and the attribute's JSON text equals VALUE's
 * (so true matches true but not "true"; numbers compare by value).  Values are stored as their
 * compact JSON text, which makes a pattern plain bytes that any thread may read. */
#ifndef ROOMD_AUTH_H
#define ROOMD_AUTH_H

#include <stdbool.h>

#include <json-c/json.h>

struct pattern_pair {
    char *key;
    char *value_json;
    bool is_number; /* numbers compare by value: 1 matches 1.0 */
    double number;
};

struct pattern {
    struct pattern_pair *pairs;
    int npairs;
};

/* Replace P with the pairs of OBJ (a JSON object of scalars); NULL clears.
 * Returns 0, or -1 when a value is not a scalar. */
int pattern_set(struct pattern *p, json_object *obj);
void pattern_clear(struct pattern *p);
/* The pattern as a new JSON object. */
json_object *pattern_to_json(const struct pattern *p);
/* Whether ATTRS (a JSON object) satisfies every pair of P. */
bool pattern_match(const struct pattern *p, json_object *attrs);

#endif
