/* auth.h -- room authentication patterns.
 *
 * A pattern is a set of KEY = VALUE pairs; a connection matches when each
 * KEY is one of its attributes and the attribute's JSON text equals VALUE's
 * (so true matches true but not "true"; numbers compare by value).  Values are stored as their
 * compact JSON text, which makes a pattern plain bytes that any thread may read.
 *
 * Numbers compare exactly: integers as 64-bit integers (a double carries only 53 bits, so
 * 1234567890123456700 and 1234567890123456789 are one double), doubles as doubles, and an
 * integer equals a double only when the double is exactly that integer (1 matches 1.0). */
#ifndef ROOMD_AUTH_H
#define ROOMD_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

/* A JSON number as json-c holds it: an integer (int64 or uint64, written as a sign and a
 * magnitude so the whole range of both is one type) or a double. */
struct auth_number {
    bool is_integer;
    bool negative;      /* integers: below zero */
    uint64_t magnitude; /* integers: the absolute value */
    double real;        /* doubles */
};

struct pattern_pair {
    char *key;
    char *value_json;
    bool is_number; /* numbers compare by value (see above), not by spelling */
    struct auth_number number;
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
