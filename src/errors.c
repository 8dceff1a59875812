/* errors.c -- the table of protocol error texts (see errors.h). */
#include <stddef.h>

#include "errors.h"

static const char *const err_texts[ERR__COUNT] = {
    [ERR_NONE] = "OK",
    [ERR_ROOM_REQUIRED] = "room is required",
    [ERR_ROOM_NOT_FOUND] = "room does not exist",
    [ERR_NOT_AUTHORIZED] = "not authorized to join room",
    [ERR_ALREADY_IN_ROOM] = "connection already in this room",
    [ERR_NOT_IN_ROOM] = "connection not in a room",
    [ERR_ALREADY_LISTENING] = "connection already listening to this room",
    [ERR_NOT_LISTENING] = "connection not listening to this room",
    [ERR_MESSAGE_REQUIRED] = "message is required",
    [ERR_RATE_LIMIT] = "rate limit exceeded",
    [ERR_KEY_REQUIRED] = "key is required",
    [ERR_TOO_MANY_PARAMS] = "too many params",
    [ERR_PARAMS_TOO_LARGE] = "params too large",
    [ERR_VERB_NOT_FOUND] = "verb not found or not allowed",
    [ERR_INVALID_REQUEST] = "invalid request",
    [ERR_REQUEST_TOO_LONG] = "request too long",
    [ERR_INVALID_UTF8] = "invalid UTF-8",
    [ERR_INVALID_ROOM_NAME] = "invalid room name",
    [ERR_ATTRIBUTE_READ_ONLY] = "attribute is read-only",
    [ERR_CONN_NOT_FOUND] = "connection not found",
    [ERR_INVALID_TOKEN] = "invalid token",
    [ERR_TOKEN_EXPIRED] = "token expired",
    [ERR_AUTH_DISABLED] = "auth is disabled",
    [ERR_BINARY_FRAME] = "binary frames are not supported",
    [ERR_STORE_UNAVAILABLE] = "store unavailable",
    [ERR_SAY_REFUSED] = "message refused",
    [ERR_TOO_MANY_LISTENING] = "too many rooms listened to",
    [ERR_NOT_HEARING] = "not a member or listener of this room",
    [ERR_UNAUTHORIZED] = "unauthorized",
    [ERR_NOT_FOUND] = "not found",
    [ERR_METHOD_NOT_ALLOWED] = "method not allowed",
    [ERR_MALFORMED_PATH] = "malformed path",
    [ERR_ORIGIN_NOT_ALLOWED] = "origin not allowed",
};

const char *err_text(enum roomd_err err)
{
    if ((unsigned)err >= ERR__COUNT || err_texts[err] == NULL)
        return "internal error";
    return err_texts[err];
}
