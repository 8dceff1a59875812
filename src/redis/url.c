/* url.c -- Redis URLs: parsing, passwords, and the form fit for logs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

#define REDIS_DEFAULT_PORT 6379

/* SRC into DST of SIZE bytes; the caller checked that it fits. */
static void url_copy(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Render EP as a URL with the password hidden, for every log line that
 * names a server: an operator sees that a password is set, never which. */
static void url_render_shown(struct redis_endpoint *ep)
{
    if (*ep->socket) {
        snprintf(ep->shown, sizeof(ep->shown), "redis://%s", ep->socket);
        return;
    }
    char auth[160] = "";
    if (*ep->user || *ep->password)
        snprintf(auth, sizeof(auth), "%s%s@", ep->user, *ep->password ? ":***" : "");
    char db[16] = "";
    if (ep->db)
        snprintf(db, sizeof(db), "/%d", ep->db);
    snprintf(ep->shown, sizeof(ep->shown), "redis://%s%s:%d%s", auth, ep->host, ep->port, db);
}

/* One URL of LEN bytes (it need not end in NUL: it may be one of a list). */
int redis_url_parse(const char *url, size_t len, struct redis_endpoint *ep, char *err,
                    size_t errlen)
{
    memset(ep, 0, sizeof(*ep));
    ep->port = REDIS_DEFAULT_PORT;
    char buf[1024];
    if (len >= sizeof(buf) || len < 8 || strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "not a redis:// URL");
        return -1;
    }
    memcpy(buf, url, len);
    buf[len] = '\0';
    char *p = buf + 8;
    if (*p == '/') {
        if (strlen(p) >= sizeof(ep->socket)) {
            snprintf(err, errlen, "socket path too long");
            return -1;
        }
        url_copy(ep->socket, sizeof(ep->socket), p);
        url_render_shown(ep);
        return 0;
    }
    char *at = strrchr(p, '@');
    if (at) {
        *at = '\0';
        char *colon = strchr(p, ':');
        if (colon)
            *colon = '\0';
        if (strlen(p) >= sizeof(ep->user) || (colon && strlen(colon + 1) >= sizeof(ep->password))) {
            snprintf(err, errlen, "user or password too long");
            return -1;
        }
        url_copy(ep->user, sizeof(ep->user), p);
        if (colon)
            url_copy(ep->password, sizeof(ep->password), colon + 1);
        p = at + 1;
    }
    char *slash = strchr(p, '/');
    if (slash) {
        *slash = '\0';
        char *end;
        errno = 0;
        long db = strtol(slash + 1, &end, 10);
        if (errno || *end || end == slash + 1 || db < 0 || db > 100000) {
            snprintf(err, errlen, "bad database number");
            return -1;
        }
        ep->db = (int)db;
    }
    char *colon = strrchr(p, ':');
    if (colon) {
        *colon = '\0';
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || end == colon + 1 || port <= 0 || port > 65535) {
            snprintf(err, errlen, "bad port");
            return -1;
        }
        ep->port = (int)port;
    }
    if (!*p || strlen(p) >= sizeof(ep->host)) {
        snprintf(err, errlen, "no host");
        return -1;
    }
    url_copy(ep->host, sizeof(ep->host), p);
    url_render_shown(ep);
    return 0;
}

int redis_url_list(const char *urls, struct redis_endpoint *eps, int max, char *err, size_t errlen)
{
    int n = 0;
    for (const char *p = urls;; n++) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (n >= max) {
            snprintf(err, errlen, "more than %d URLs", max);
            return -1;
        }
        char why[128];
        if (redis_url_parse(p, len, &eps[n], why, sizeof(why)) < 0) {
            snprintf(err, errlen, "URL %d: %s", n + 1, why);
            return -1;
        }
        if (!end)
            return n + 1;
        p = end + 1;
    }
}

/* The store setting as it may be logged: each "USER:PASSWORD@" of it
 * becomes "USER:***@".  Works on text that did not parse, too, so even an
 * error about a bad URL shows no secret. */
const char *redis_url_shown(const char *urls, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = urls; *p && o + 1 < len;) {
        const char *end = strchr(p, ',');
        size_t ulen = end ? (size_t)(end - p) : strlen(p);
        const char *at = memchr(p, '@', ulen), *colon = NULL;
        /* "redis://" has a colon too: the password's is the first after it. */
        if (at && at > p + 8)
            colon = memchr(p + 8, ':', (size_t)(at - (p + 8)));
        if (colon) {
            o += (size_t)snprintf(out + o, len - o, "%.*s:***%.*s", (int)(colon - p), p,
                                  (int)(ulen - (size_t)(at - p)), at);
        } else {
            o += (size_t)snprintf(out + o, len - o, "%.*s", (int)ulen, p);
        }
        if (o >= len)
            o = len - 1;
        if (!end)
            break;
        if (o + 1 < len)
            out[o++] = ',';
        p = end + 1;
    }
    out[o < len ? o : len - 1] = '\0';
    return out;
}

int redis_password_load(const char *path, char *out, size_t len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (!fgets(out, (int)len, f))
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    if (!*out) {
        snprintf(err, errlen, "%s holds no password", path);
        return -1;
    }
    return 0;
}
