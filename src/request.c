/* request.c -- parsing of verb lines and JSON requests (see request.h). */
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "request.h"

/* Deep enough for any honest request, shallow enough that a hostile one
 * costs nothing (json-c's own default is 32). */
#define REQUEST_JSON_DEPTH 16

static enum roomd_err parse_json(const char *line, size_t len, struct request *req)
{
    json_object *obj = NULL, *event;
    if (!json_parse_strict(line, len, REQUEST_JSON_DEPTH, &obj) ||
        !json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, "event", &event) ||
        !json_object_is_type(event, json_type_string) ||
        strlen(json_object_get_string(event)) != (size_t)json_object_get_string_len(event)) {
        json_object_put(obj);
        return ERR_INVALID_REQUEST;
    }
    req->json = obj;
    req->verb = strdup(json_object_get_string(event));
    return req->verb ? ERR_NONE : ERR_INVALID_REQUEST;
}

enum roomd_err request_parse(const char *line, size_t len, struct request *req)
{
    memset(req, 0, sizeof(*req));
    if (memchr(line, '\0', len))
        return ERR_INVALID_REQUEST;
    if (len > 0 && line[0] == '{')
        return parse_json(line, len, req);
    const char *sp = memchr(line, ' ', len);
    size_t vlen = sp ? (size_t)(sp - line) : len;
    req->verb = strndup(line, vlen);
    if (sp) {
        req->arg_len = len - vlen - 1;
        req->arg = strndup(sp + 1, req->arg_len);
    }
    return req->verb ? ERR_NONE : ERR_INVALID_REQUEST;
}

void request_free(struct request *req)
{
    free(req->verb);
    free(req->arg);
    json_object_put(req->json);
    memset(req, 0, sizeof(*req));
}

const char *request_arg(const struct request *req, const char *name, size_t *len)
{
    if (!req->json) {
        *len = req->arg_len;
        return req->arg;
    }
    json_object *v;
    if (!json_object_object_get_ex(req->json, name, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    *len = (size_t)json_object_get_string_len(v);
    return json_object_get_string(v);
}

enum roomd_err request_text(const struct request *req, const char *name, const char **text)
{
    size_t len;
    *text = request_arg(req, name, &len);
    if (*text && strlen(*text) != len) {
        *text = NULL;
        return ERR_INVALID_REQUEST;
    }
    return ERR_NONE;
}

enum roomd_err request_param(const struct request *req, char **key, char **value)
{
    *key = *value = NULL;
    if (req->json) {
        const char *k;
        if (request_text(req, "key", &k) != ERR_NONE)
            return ERR_INVALID_REQUEST;
        if (!k || !*k)
            return ERR_KEY_REQUIRED;
        json_object *v = NULL;
        bool has_value = json_object_object_get_ex(req->json, "value", &v);
        const char *text = "";
        if (v && json_object_is_type(v, json_type_string)) {
            if (request_text(req, "value", &text) != ERR_NONE)
                return ERR_INVALID_REQUEST;
        } else if (has_value) { /* JSON null is the text "null" */
            text = v ? json_object_to_json_string_ext(v, ROOMD_JSON_FLAGS) : "null";
        }
        *key = strdup(k);
        *value = strdup(text);
        return *key && *value ? ERR_NONE : ERR_STORE_UNAVAILABLE;
    }
    if (!req->arg || req->arg_len == 0)
        return ERR_KEY_REQUIRED;
    size_t cut = strcspn(req->arg, "= ");
    if (cut == 0)
        return ERR_KEY_REQUIRED;
    *key = strndup(req->arg, cut);
    *value = strdup(req->arg[cut] ? req->arg + cut + 1 : "");
    return *key && *value ? ERR_NONE : ERR_STORE_UNAVAILABLE;
}
