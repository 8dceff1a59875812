/* fuzz_proxy.c -- libFuzzer harness for the PROXY protocol header parser
 * (src/proxy_proto.h), which reads the first bytes of every connection
 * when proxy_protocol is on: anything a peer sends.
 *
 * Checked besides what ASan/UBSan catch:
 *   - PROXY_DONE: the header's length is within the input and at most
 *     PROXY_HEADER_MAX; the same bytes cut to that length give the same
 *     answer and address; every shorter prefix is PROXY_MORE (what
 *     conn_proxy.c relies on to consume bytes before the end is seen);
 *   - PROXY_MORE: the input is shorter than PROXY_HEADER_MAX (a reader
 *     never waits past the cap);
 *   - a source address is AF_INET or AF_INET6 with the matching length.
 *
 * Build and run: tests/fuzz/run_fuzz.sh (scripts/test does it). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_header h, again;
    enum proxy_result r = proxy_parse(data, size, &h);
    if (r == PROXY_MORE && size >= PROXY_HEADER_MAX)
        abort();
    if (r != PROXY_DONE)
        return 0;
    if (h.len == 0 || h.len > size || h.len > PROXY_HEADER_MAX)
        abort();
    if (!h.local) {
        if (!(h.source.ss_family == AF_INET && h.source_len == sizeof(struct sockaddr_in)) &&
            !(h.source.ss_family == AF_INET6 && h.source_len == sizeof(struct sockaddr_in6)))
            abort();
    }
    if (proxy_parse(data, h.len, &again) != PROXY_DONE || again.len != h.len ||
        again.local != h.local || again.source_len != h.source_len ||
        memcmp(&again.source, &h.source, h.source_len) != 0)
        abort();
    for (size_t n = 0; n < h.len; n++)
        if (proxy_parse(data, n, &again) != PROXY_MORE)
            abort();
    return 0;
}
