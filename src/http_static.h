/* http_static.h -- the files served on the WebSocket port (demo page,
 * browser client library), compiled into the binary. */
#ifndef ROOMD_HTTP_STATIC_H
#define ROOMD_HTTP_STATIC_H

#include <stddef.h>

struct static_file {
    const char *path; /* "/", "/roomd.js" */
    const char *content_type;
    const char *body;
    size_t len;
};

/* The file served at PATH (a NUL-terminated URL path, no query), or NULL. */
const struct static_file *http_static_find(const char *path);

/* The table itself, generated at build time from src/static/ by
 * static/gen_static.py into static_files.c. */
extern const struct static_file http_static_files[];
extern const size_t http_static_nfiles;

#endif
