/* proxy_proto.c -- the PROXY protocol parser (see proxy_proto.h).
 *
 * Version 1 is one text line: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or
 * "PROXY UNKNOWN ...\r\n".  Version 2 is binary: a 12-byte signature, a
 * version/command byte, a family byte, a 16-bit length, then the
 * addresses and TLVs.  Every byte is checked before it is trusted: the
 * header decides which address per-address limits and auth patterns see. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy_proto.h"

static const uint8_t V1_PREFIX[] = "PROXY ";
#define V1_PREFIX_LEN 6
static const uint8_t V2_SIG[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
#define V2_FIXED 16 /* signature, version/command, family, length */
#define V2_VERSION 0x20
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_FAM_TCP4 0x11
#define V2_FAM_UDP4 0x12
#define V2_FAM_TCP6 0x21
#define V2_FAM_UDP6 0x22
#define V2_ADDR4_LEN 12 /* two IPv4 addresses, two ports */
#define V2_ADDR6_LEN 36 /* two IPv6 addresses, two ports */
#define PORT_MAX 65535
#define V1_FIELDS 6     /* PROXY, family, source, destination, two ports */
#define V1_FIELD_MAX 46 /* the longest IPv6 text, INET6_ADDRSTRLEN */

/* Whether the LEN bytes at BUF are a prefix of the N bytes of WANT (or
 * start with all of them). */
static bool prefix_ok(const uint8_t *buf, size_t len, const uint8_t *want, size_t n)
{
    return memcmp(buf, want, len < n ? len : n) == 0;
}

/* A decimal port, "0" to "65535", no sign, no leading zeros. */
static bool parse_port(const char *s, size_t len, uint16_t *port)
{
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > PORT_MAX)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* The complete v1 LINE (LEN bytes, "\r\n" not included). */
static enum proxy_result parse_v1_line(const char *line, size_t len, struct proxy_header *out)
{
    const char *field[V1_FIELDS];
    size_t flen[V1_FIELDS], n = 0;
    for (size_t i = 0; i <= len && n < V1_FIELDS;) {
        size_t j = i;
        while (j < len && line[j] != ' ')
            j++;
        field[n] = line + i;
        flen[n++] = j - i;
        i = j + 1;
        if (j == len)
            break;
    }
    if (n >= 2 && flen[1] == 7 && memcmp(field[1], "UNKNOWN", 7) == 0) {
        out->local = true; /* the rest of the line is to be ignored */
        return PROXY_DONE;
    }
    if (n != V1_FIELDS || field[V1_FIELDS - 1] + flen[V1_FIELDS - 1] != line + len || flen[1] != 4)
        return PROXY_INVALID;
    int family;
    if (memcmp(field[1], "TCP4", 4) == 0)
        family = AF_INET;
    else if (memcmp(field[1], "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return PROXY_INVALID;
    char src[V1_FIELD_MAX + 1], dst[V1_FIELD_MAX + 1];
    uint8_t addr[16];
    uint16_t sport, dport;
    if (flen[2] > V1_FIELD_MAX || flen[3] > V1_FIELD_MAX)
        return PROXY_INVALID;
    memcpy(src, field[2], flen[2]);
    src[flen[2]] = '\0';
    memcpy(dst, field[3], flen[3]);
    dst[flen[3]] = '\0';
    if (inet_pton(family, dst, addr) != 1 || inet_pton(family, src, addr) != 1 ||
        !parse_port(field[4], flen[4], &sport) || !parse_port(field[5], flen[5], &dport))
        return PROXY_INVALID;
    memset(&out->source, 0, sizeof(out->source));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->source;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, addr, 4);
        in->sin_port = htons(sport);
        out->source_len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->source;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, addr, 16);
        in6->sin6_port = htons(sport);
        out->source_len = sizeof(*in6);
    }
    return PROXY_DONE;
}

static enum proxy_result parse_v1(const uint8_t *buf, size_t len, struct proxy_header *out)
{
    if (!prefix_ok(buf, len, V1_PREFIX, V1_PREFIX_LEN))
        return PROXY_INVALID;
    size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    for (size_t i = 0; i < scan; i++) {
        if (buf[i] == '\n') {
            if (i < V1_PREFIX_LEN + 1 || buf[i - 1] != '\r')
                return PROXY_INVALID;
            out->len = i + 1;
            return parse_v1_line((const char *)buf, i - 1, out);
        }
        if (buf[i] == '\0' || (buf[i] == '\r' && i + 1 < scan && buf[i + 1] != '\n'))
            return PROXY_INVALID;
    }
    return len < PROXY_V1_MAX ? PROXY_MORE : PROXY_INVALID;
}

static enum proxy_result parse_v2(const uint8_t *buf, size_t len, struct proxy_header *out)
{
    if (!prefix_ok(buf, len, V2_SIG, sizeof(V2_SIG)))
        return PROXY_INVALID;
    if (len > sizeof(V2_SIG) && (buf[12] & 0xf0) != V2_VERSION)
        return PROXY_INVALID;
    if (len > sizeof(V2_SIG) && (buf[12] & 0x0f) > V2_CMD_PROXY)
        return PROXY_INVALID;
    if (len < V2_FIXED)
        return PROXY_MORE;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (V2_FIXED + body > PROXY_HEADER_MAX)
        return PROXY_INVALID;
    uint8_t fam = buf[13];
    size_t need = fam == V2_FAM_TCP4 || fam == V2_FAM_UDP4   ? V2_ADDR4_LEN
                  : fam == V2_FAM_TCP6 || fam == V2_FAM_UDP6 ? V2_ADDR6_LEN
                                                             : 0;
    if (body < need)
        return PROXY_INVALID;
    if (len < V2_FIXED + body)
        return PROXY_MORE;
    out->len = V2_FIXED + body;
    const uint8_t *a = buf + V2_FIXED;
    if ((buf[12] & 0x0f) == V2_CMD_LOCAL || need == 0) {
        out->local = true; /* a health check, or a unix/unspecified source */
        return PROXY_DONE;
    }
    memset(&out->source, 0, sizeof(out->source));
    if (need == V2_ADDR4_LEN) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->source;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, a, 4);
        memcpy(&in->sin_port, a + 8, 2); /* network order already */
        out->source_len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->source;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, a, 16);
        memcpy(&in6->sin6_port, a + 32, 2);
        out->source_len = sizeof(*in6);
    }
    return PROXY_DONE;
}

enum proxy_result proxy_parse(const uint8_t *buf, size_t len, struct proxy_header *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return PROXY_MORE;
    if (buf[0] == 'P')
        return parse_v1(buf, len, out);
    if (buf[0] == V2_SIG[0])
        return parse_v2(buf, len, out);
    return PROXY_INVALID;
}
