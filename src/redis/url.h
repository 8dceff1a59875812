/* url.h -- where a Redis server is and how to log in to it.
 *
 * The store setting is one or more URLs, comma-separated:
 *   redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]    (":PASSWORD@" for requirepass)
 *   redis:///path/to/socket
 * redis_password_file gives the password of every URL that has none of its
 * own.  A URL is shown (logs, the ready line) only through redis_url_shown,
 * which never holds a password. */
#ifndef ROOMD_REDIS_URL_H
#define ROOMD_REDIS_URL_H

#include <stddef.h>

struct redis_endpoint {
    char host[256];
    int port;
    char socket[256]; /* a Unix socket path, or "" */
    int db;
    char user[128];     /* "" : the default user */
    char password[512]; /* "" : no AUTH */
    char shown[700];    /* the URL for logs: the password as "***" */
};

/* Parse one URL into EP; 0, or -1 with a reason in ERR. */
int redis_url_parse(const char *url, size_t len, struct redis_endpoint *ep, char *err,
                    size_t errlen);
/* Parse the comma-separated list URLS into EPS (at most MAX); the count,
 * or -1 with a reason in ERR. */
int redis_url_list(const char *urls, struct redis_endpoint *eps, int max, char *err, size_t errlen);
/* URLS with every password replaced by "***", into OUT. */
const char *redis_url_shown(const char *urls, char *out, size_t len);
/* The password in file PATH (its first line) into OUT; 0, or -1 with a
 * reason in ERR. */
int redis_password_load(const char *path, char *out, size_t len, char *err, size_t errlen);

#endif
