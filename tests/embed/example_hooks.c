/* example_hooks.c -- a program that embeds roomd and adds its own hooks.
 *
 * This is the C analog of actionhero's connection and chat middleware: where
 * an actionhero application registers `api.connections.addMiddleware({create,
 * destroy})` and `api.chatRoom.addMiddleware({join, say})`, a C program
 * fills a struct roomd_hooks and hands it to roomd_set_hooks() before the
 * server runs.  Everything else -- configuration, listeners, the admin API,
 * signals -- is the stock roomd program: this binary takes the same
 * arguments (-c FILE, --key=value) and behaves the same, plus:
 *
 *   on_connect     every new connection gets the attribute tier = "gold"
 *                  (so a room whose pattern says {"tier":"gold"} lets it in);
 *   on_join        rooms whose name starts with "secret" are refused
 *                  (roomChange/listenToRoom answer "not authorized to join
 *                  room");
 *   on_say         messages containing the word "forbidden" (any case, as a
 *                  whole word) are refused ("message refused");
 *   on_disconnect  counts; the totals are printed to stderr at exit.
 *
 * Build it like any embedding program:
 *   cc example_hooks.c $(pkg-config --cflags --libs roomd)
 * The tests build it against the uninstalled libroomd.a and drive it in
 * tests/integration/test_embed.py.
 *
 * Hooks run on the worker thread that owns the connection, and several
 * workers run at once: a hook must be quick, must not block, and must keep
 * shared state thread-safe (the counters below are atomics). */
#include <ctype.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <roomd.h>

/* Shared by every worker thread, hence atomic. */
static atomic_long connects;
static atomic_long disconnects;

/* "create" middleware: runs once per connection, before its welcome and
 * before it joins the default room, so the attribute already counts for
 * the default room's pattern.  Returning false would refuse the
 * connection (goodbye "disconnected by server"). */
static bool on_connect(roomd_conn *c, void *ud)
{
    (void)ud;
    atomic_fetch_add(&connects, 1);
    /* The value is JSON text: "\"gold\"" is the string gold. */
    if (roomd_conn_set_attribute(c, "tier", "\"gold\"") != 0)
        fprintf(stderr, "example_hooks: could not tag connection %s\n", roomd_conn_id(c));
    return true;
}

/* "destroy" middleware: the connection is going away; it can no longer be
 * refused anything. */
static void on_disconnect(roomd_conn *c, void *ud)
{
    (void)c;
    (void)ud;
    atomic_fetch_add(&disconnects, 1);
}

/* "join" middleware: runs for roomChange, listenToRoom and the automatic
 * join of the default room, before the room's authentication pattern. */
static bool on_join(roomd_conn *c, const char *room, void *ud)
{
    (void)c;
    (void)ud;
    return strncmp(room, "secret", strlen("secret")) != 0;
}

/* Whether TEXT holds WORD as a whole word, ignoring case. */
static bool has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; *p; p++) {
        if (p != text && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
            continue;
        if (strncasecmp(p, word, n) == 0 && !isalnum((unsigned char)p[n]) && p[n] != '_')
            return true;
    }
    return false;
}

/* "say" middleware: runs before a message goes out to the room. */
static bool on_say(roomd_conn *c, const char *room, const char *message, void *ud)
{
    (void)c;
    (void)room;
    (void)ud;
    return !has_word(message, "forbidden");
}

int main(int argc, char **argv)
{
    struct roomd_hooks hooks = {
        .on_connect = on_connect,
        .on_disconnect = on_disconnect,
        .on_join = on_join,
        .on_say = on_say,
        .ud = NULL,
    };
    roomd_set_hooks(&hooks);         /* copied; before the server runs */
    int rc = roomd_main(argc, argv); /* roomd_init + roomd_run + cleanup */
    fprintf(stderr, "example_hooks: %ld connections, %ld disconnects\n", atomic_load(&connects),
            atomic_load(&disconnects));
    return rc;
}
