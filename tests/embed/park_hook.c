/* park_hook.c -- roomd with one test-only hook: `say park MS` holds the
 * worker thread for MS milliseconds inside on_say.
 *
 * With workers = 1, whatever other connections send meanwhile waits in
 * their sockets, and once the worker is back it is all handled in one loop
 * turn, in the order it was sent (epoll reports sockets in the order they
 * became readable).  It logs "park_hook: parked #N" first, so the test
 * knows when to send.  That is the only way a client can line up "L says,
 * then P leaves" inside one turn, which is what test_batching needs to see
 * that a room's batch goes out before its members change.  Never a model
 * for a real hook: hooks must not block (see example_hooks.c). */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <roomd.h>

#define PARK_PREFIX "park "
#define PARK_MAX_MS 5000

static atomic_long parks;

static bool on_say(roomd_conn *c, const char *room, const char *message, void *ud)
{
    (void)c, (void)room, (void)ud;
    if (strncmp(message, PARK_PREFIX, strlen(PARK_PREFIX)) == 0) {
        long ms = strtol(message + strlen(PARK_PREFIX), NULL, 10);
        if (ms > 0 && ms <= PARK_MAX_MS) {
            /* The test waits for this line before it sends what must queue up. */
            fprintf(stderr, "park_hook: parked #%ld for %ld ms\n", atomic_fetch_add(&parks, 1) + 1,
                    ms);
            fflush(stderr);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    struct roomd_hooks hooks = {.on_say = on_say};
    roomd_set_hooks(&hooks);
    return roomd_main(argc, argv);
}
