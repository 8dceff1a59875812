/* utf8.c -- see utf8.h.  Table-free: the ranges of RFC 3629's grammar,
 * checked byte by byte, with an ASCII fast path for the common case. */
#include <stdint.h>

#include "utf8.h"

bool utf8_valid(const char *str, size_t len)
{
    if (len == 0)
        return true; /* str may be NULL */
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    while (s < end) {
        unsigned char c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else
            return false;
        if ((size_t)(end - s) <= need)
            return false;
        if (s[1] < lo || s[1] > hi)
            return false;
        for (size_t i = 2; i <= need; i++)
            if (s[i] < 0x80 || s[i] > 0xBF)
                return false;
        s += need + 1;
    }
    return true;
}
