/* errors.h -- every error text of the wire protocol, in one table.
 *
 * PROTOCOL.md fixes these strings byte for byte; the code refers to them by
 * code only, so a text is written once (errors.c) and the docs check can
 * read the table. */
#ifndef ROOMD_ERRORS_H
#define ROOMD_ERRORS_H

enum roomd_err {
    ERR_NONE = 0,
    ERR_ROOM_REQUIRED,
    ERR_ROOM_NOT_FOUND,
    ERR_NOT_AUTHORIZED,
    ERR_ALREADY_IN_ROOM,
    ERR_NOT_IN_ROOM,
    ERR_ALREADY_LISTENING,
    ERR_NOT_LISTENING,
    ERR_MESSAGE_REQUIRED,
    ERR_RATE_LIMIT,
    ERR_KEY_REQUIRED,
    ERR_TOO_MANY_PARAMS,
    ERR_PARAMS_TOO_LARGE,
    ERR_VERB_NOT_FOUND,
    ERR_INVALID_REQUEST,
    ERR_REQUEST_TOO_LONG,
    ERR_INVALID_UTF8,
    ERR_INVALID_ROOM_NAME,
    ERR_ATTRIBUTE_READ_ONLY,
    ERR_CONN_NOT_FOUND,
    ERR_INVALID_TOKEN,
    ERR_TOKEN_EXPIRED,
    ERR_AUTH_DISABLED,
    ERR_BINARY_FRAME,
    ERR_STORE_UNAVAILABLE,
    ERR_SAY_REFUSED,
    ERR_TOO_MANY_LISTENING,
    ERR_NOT_HEARING,
    /* the admin HTTP API's own */
    ERR_UNAUTHORIZED,
    ERR_NOT_FOUND,
    ERR_METHOD_NOT_ALLOWED,
    ERR_MALFORMED_PATH,
    ERR_ORIGIN_NOT_ALLOWED,
    ERR__COUNT
};

/* The text of an error code, as sent on the wire. */
const char *err_text(enum roomd_err err);

#endif
