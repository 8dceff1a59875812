/* origin.c -- the Origin check of WebSocket upgrades (see origin.h).
 *
 * Browsers send Origin with every WebSocket upgrade and scripts cannot
 * forge it, so it is what tells roomd which site's page is connecting;
 * cookies and client certificates would otherwise ride along from any
 * page (RFC 6455 10.2).  Comparisons ignore ASCII case, as host names do. */
#include <string.h>
#include <strings.h>

#include "origin.h"

/* Whether the LEN bytes at A equal the LEN bytes at B, ignoring case. */
static bool same_fold(const char *a, const char *b, size_t len)
{
    return strncasecmp(a, b, len) == 0;
}

/* One allow-list ENTRY (ELEN bytes, trimmed) against ORIGIN. */
static bool entry_matches(const char *entry, size_t elen, const char *origin, size_t olen)
{
    if (elen == 1 && entry[0] == '*')
        return true;
    const char *star = memchr(entry, '*', elen);
    if (!star)
        return elen == olen && same_fold(entry, origin, olen);
    /* "scheme://STAR.domain[:port]" (STAR an asterisk): the same scheme, then any one or more
     * labels, then ".domain[:port]". */
    size_t prefix = (size_t)(star - entry), suffix = elen - prefix - 1;
    if (prefix < 3 || memcmp(star - 3, "://", 3) != 0 || suffix < 2 || star[1] != '.')
        return false;
    if (olen <= prefix + suffix || !same_fold(entry, origin, prefix) ||
        !same_fold(star + 1, origin + olen - suffix, suffix))
        return false;
    const char *label = origin + prefix, *end = origin + olen - suffix;
    return memchr(label, '/', (size_t)(end - label)) == NULL &&
           memchr(label, ':', (size_t)(end - label)) == NULL;
}

bool origin_allowed(const char *origin, size_t olen, const char *host, size_t hlen,
                    const char *allowed)
{
    if (!origin)
        return true;
    if (!allowed || *allowed == '\0') {
        const char *sep = NULL;
        for (size_t i = 0; !sep && i + 3 <= olen; i++)
            if (memcmp(origin + i, "://", 3) == 0)
                sep = origin + i;
        if (!sep)
            return false;
        const char *h = sep + 3;
        size_t len = olen - (size_t)(h - origin);
        return len == hlen && len > 0 && same_fold(h, host, len);
    }
    for (const char *p = allowed; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed > 0 && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed > 0 && entry_matches(p, trimmed, origin, olen))
            return true;
        p += len;
    }
    return false;
}
