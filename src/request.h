/* request.h -- a client request, parsed: a verb line ("roomChange lobby")
 * or a JSON request ({"event":"roomChange","room":"lobby"}).
 *
 * The parser knows syntax, not verbs: verbs.c asks for the arguments it
 * needs by name and gets the same answer from either form. */
#ifndef ROOMD_REQUEST_H
#define ROOMD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "errors.h"

struct request {
    char *verb; /* the first word, or the JSON "event" */
    char *arg;  /* verb line: the rest after one space; NULL if none */
    size_t arg_len;
    json_object *json; /* JSON request: the whole object */
};

/* Parse LINE (LEN bytes, valid UTF-8).  Returns ERR_NONE or
 * ERR_INVALID_REQUEST; request_free() in both cases. */
enum roomd_err request_parse(const char *line, size_t len, struct request *req);
void request_free(struct request *req);

/* Argument NAME: in a verb line the rest of the line; in a JSON request the
 * string field NAME.  NULL when absent (or not a string); *LEN its bytes. */
const char *request_arg(const struct request *req, const char *name, size_t *len);

/* Argument NAME as a C string, for the verbs that use it as one (a param's
 * key, silenceRoom's room): like request_arg(), but a JSON string holding a
 * NUL (\u0000), which C would cut short -- "a\u0000zzz" deleting param "a"
 * -- is ERR_INVALID_REQUEST.  *TEXT is NULL when the argument is absent. */
enum roomd_err request_text(const struct request *req, const char *name, const char **text);

/* paramAdd's KEY and VALUE.  The line form splits at the first '=' or
 * space; JSON uses "key" and "value" (a non-string value as its JSON text).
 * ERR_NONE with both malloc'd (free them in every case); ERR_KEY_REQUIRED
 * when the key is missing or empty; ERR_INVALID_REQUEST when the key or a
 * string value holds a NUL. */
enum roomd_err request_param(const struct request *req, char **key, char **value);

#endif
