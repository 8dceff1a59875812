/* http_static.c -- look up the files compiled into roomd.
 *
 * The bytes come from src/static/ (index.html, roomd.js), turned into the
 * C table http_static_files[] by static/gen_static.py when roomd is built,
 * so the binary serves them with no data directory to install or find.
 * Two files: a linear search is the fastest lookup there is. */
#include <string.h>

#include "http_static.h"

const struct static_file *http_static_find(const char *path)
{
    for (size_t i = 0; i < http_static_nfiles; i++)
        if (strcmp(http_static_files[i].path, path) == 0)
            return &http_static_files[i];
    return NULL;
}
