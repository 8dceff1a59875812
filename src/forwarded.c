/* forwarded.c -- trusted_proxies and X-Forwarded-For (see forwarded.h).
 *
 * Only a peer inside trusted_proxies may name another client address; a
 * header from anyone else is ignored, or any client could pick the
 * address its limits and auth patterns see.  Each proxy appends the
 * address it got the request from, so the list is read from the right,
 * past the trusted proxies, to the first address that is not one. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forwarded.h"

#define ADDR_TEXT_MAX 64 /* an IPv6 text with a prefix length, and room */
#define BITS_PER_BYTE 8

/* ADDR as 16 bytes (IPv4 mapped into ::ffff:0:0/96) and its family. */
static bool addr_bytes(const struct sockaddr *addr, uint8_t out[16])
{
    memset(out, 0, 16);
    if (addr->sa_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        return true;
    }
    if (addr->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* Text of LEN bytes as an address: IPv4 mapped like addr_bytes(); *BITS
 * the prefix length in those 128 bits (a "/N" suffix when PREFIX_OK). */
static bool parse_addr(const char *s, size_t len, bool prefix_ok, uint8_t out[16], int *bits)
{
    char text[ADDR_TEXT_MAX];
    if (len == 0 || len >= sizeof(text))
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    char *slash = strchr(text, '/');
    long n = -1;
    if (slash) {
        char *end;
        if (!prefix_ok)
            return false;
        *slash = '\0';
        n = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end != '\0' || n < 0)
            return false;
    }
    memset(out, 0, 16);
    if (inet_pton(AF_INET, text, out + 12) == 1) {
        out[10] = out[11] = 0xff;
        if (n > 32)
            return false;
        *bits = n < 0 ? 128 : 96 + (int)n;
        return true;
    }
    if (inet_pton(AF_INET6, text, out) == 1) {
        if (n > 128)
            return false;
        *bits = n < 0 ? 128 : (int)n;
        return true;
    }
    return false;
}

static bool in_prefix(const uint8_t a[16], const uint8_t net[16], int bits)
{
    int whole = bits / BITS_PER_BYTE, rest = bits % BITS_PER_BYTE;
    if (memcmp(a, net, (size_t)whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (BITS_PER_BYTE - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

/* Whether the 16 bytes A are in one CIDR of LIST. */
static bool bytes_trusted(const uint8_t a[16], const char *list)
{
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t len = strcspn(p, ", \t");
        uint8_t net[16];
        int bits;
        if (len > 0 && parse_addr(p, len, true, net, &bits) && in_prefix(a, net, bits))
            return true;
        p += len;
    }
    return false;
}

bool forwarded_trusted(const struct sockaddr *addr, const char *list)
{
    uint8_t a[16];
    return *list && addr_bytes(addr, a) && bytes_trusted(a, list);
}

bool forwarded_client(const char *value, size_t len, const char *list, struct sockaddr_storage *out,
                      socklen_t *out_len)
{
    size_t end = len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && value[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && (value[a] == ' ' || value[a] == '\t'))
            a++;
        while (b > a && (value[b - 1] == ' ' || value[b - 1] == '\t'))
            b--;
        uint8_t bytes[16];
        int bits;
        if (!parse_addr(value + a, b - a, false, bytes, &bits))
            return false; /* not an address (a name, "unknown"): stop trusting the list */
        if (!bytes_trusted(bytes, list)) {
            memset(out, 0, sizeof(*out));
            static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            if (memcmp(bytes, mapped, sizeof(mapped)) == 0) {
                struct sockaddr_in *in = (struct sockaddr_in *)out;
                in->sin_family = AF_INET;
                memcpy(&in->sin_addr, bytes + 12, 4);
                *out_len = sizeof(*in);
            } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
                in6->sin6_family = AF_INET6;
                memcpy(&in6->sin6_addr, bytes, 16);
                *out_len = sizeof(*in6);
            }
            return true;
        }
        end = start > 0 ? start - 1 : 0;
    }
    return false;
}
