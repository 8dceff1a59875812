/* http_static.c -- placeholder until the demo page lands. */
#include <string.h>

#include "http_static.h"

const struct static_file *http_static_find(const char *path)
{
    (void)path;
    return NULL;
}
