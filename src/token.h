/* token.h -- HS256 JSON Web Tokens: the `auth` verb verifies them, roomctl
 * issues them.  Only HS256 exists here; any other "alg" ("none" included)
 * is an invalid token. */
#ifndef ROOMD_TOKEN_H
#define ROOMD_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "errors.h"

/* Verify TOKEN under SECRET at time NOW (seconds since the epoch).
 * ERR_NONE with the claims object in *CLAIMS (caller puts it), or
 * ERR_INVALID_TOKEN / ERR_TOKEN_EXPIRED. */
enum roomd_err token_verify(const char *token, size_t len, const char *secret, int64_t now,
                            json_object **claims);

/* Sign CLAIMS (a JSON object) under SECRET; a malloc'd token or NULL. */
char *token_sign(json_object *claims, const char *secret);

#endif
