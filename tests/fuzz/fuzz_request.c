/* fuzz_request.c -- libFuzzer harness for the request parser (src/request.h):
 * verb lines and JSON requests, then every accessor the verbs use on them
 * (request_arg for each argument name, request_param for paramAdd, the room
 * name rules), as verbs_request() calls them: only on lines that are valid
 * UTF-8 (the caller answers "invalid UTF-8" before parsing).
 *
 * Checked: a parsed request has a verb; a verb line's verb is its first
 * word and its argument exactly the rest after one space; a JSON request is
 * an object whose "event" string is the verb, it never holds a NUL; every
 * argument handed out is readable for its length and is valid UTF-8 (it
 * came from a UTF-8 line or from JSON escapes, which json-c decodes into
 * UTF-8); request_text() refuses exactly the arguments holding a NUL;
 * paramAdd's key is never empty nor holds a NUL, and in a verb line
 * it stops before the first '=' or space; a line holding a NUL is refused.
 * ASan/UBSan catch the rest.
 *
 * Build and run: tests/fuzz/run_fuzz.sh (scripts/test does it). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "request.h"
#include "utf8.h"
#include "verbs.h"

/* A small max_room_name, so the fuzzer reaches both sides of the limit. */
#define FUZZ_MAX_ROOM_NAME 32

static const char *const arg_names[] = {"room", "message", "key", "value", "event", "token"};

/* Touch every byte (ASan checks the range) and check it is UTF-8. */
static void check_text(const char *s, size_t len)
{
    volatile unsigned sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += (unsigned char)s[i];
    (void)sum;
    if (!utf8_valid(s, len))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    if (!utf8_valid(line, size))
        return 0;
    struct request req;
    enum roomd_err err = request_parse(line, size, &req);
    if (err != ERR_NONE) {
        if (err != ERR_INVALID_REQUEST || (size > 0 && line[0] != '{' && !memchr(line, 0, size)))
            abort(); /* only bad JSON or a NUL is refused */
        request_free(&req);
        return 0;
    }
    if (!req.verb || memchr(line, 0, size))
        abort();
    check_text(req.verb, strlen(req.verb));
    if (req.json) {
        json_object *event;
        if (line[0] != '{' || !json_object_is_type(req.json, json_type_object) ||
            !json_object_object_get_ex(req.json, "event", &event) ||
            !json_object_is_type(event, json_type_string) ||
            strcmp(json_object_get_string(event), req.verb) != 0 ||
            strlen(req.verb) != (size_t)json_object_get_string_len(event))
            abort();
    } else {
        const char *sp = memchr(line, ' ', size);
        size_t vlen = sp ? (size_t)(sp - line) : size;
        if (strlen(req.verb) != vlen || memcmp(req.verb, line, vlen) != 0)
            abort();
        if (sp ? !req.arg || req.arg_len != size - vlen - 1 ||
                     memcmp(req.arg, sp + 1, req.arg_len) != 0
               : req.arg != NULL)
            abort();
    }
    for (size_t i = 0; i < sizeof(arg_names) / sizeof(arg_names[0]); i++) {
        size_t len = 0;
        const char *arg = request_arg(&req, arg_names[i], &len);
        if (!arg)
            continue;
        check_text(arg, len);
        (void)verbs_room_name_valid(arg, len, FUZZ_MAX_ROOM_NAME);
        /* request_text() hands out C strings only: whole, no NUL inside. */
        const char *text;
        enum roomd_err text_err = request_text(&req, arg_names[i], &text);
        if (text_err == ERR_NONE ? !text || strlen(text) != len
                                 : text != NULL || memchr(arg, 0, len) == NULL)
            abort();
    }
    char *key, *value;
    if (request_param(&req, &key, &value) == ERR_NONE) {
        if (!key || !value || !*key)
            abort();
        check_text(key, strlen(key));
        check_text(value, strlen(value));
        if (!req.json && key[strcspn(key, "= ")] != '\0')
            abort();
    }
    free(key);
    free(value);
    /* "since" (roomChange, listenToRoom, roomHistory): history_parse_since
     * accepts exactly an object with a string epoch and a non-negative
     * integer offset, and keeps an epoch only of the length epochs have. */
    json_object *since;
    if (req.json && json_object_object_get_ex(req.json, "since", &since)) {
        struct history_position pos;
        json_object *e, *o;
        bool well_formed = json_object_is_type(since, json_type_object) &&
                           json_object_object_get_ex(since, "epoch", &e) &&
                           json_object_is_type(e, json_type_string) &&
                           json_object_object_get_ex(since, "offset", &o) &&
                           json_object_is_type(o, json_type_int) && json_object_get_int64(o) >= 0;
        if (history_parse_since(since, &pos) != well_formed)
            abort();
        if (well_formed && strlen(pos.epoch) != 0 && strlen(pos.epoch) != HISTORY_EPOCH_LEN)
            abort();
    }
    request_free(&req);
    if (req.verb || req.arg || req.json)
        abort(); /* request_free leaves it empty */
    return 0;
}
