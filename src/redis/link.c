/* link.c -- the blocking and asynchronous links to one Redis server. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/adapters/libevent.h>

#include "log.h"
#include "redis/link.h"

/* Log in on a fresh blocking connection: AUTH with the password (and the
 * ACL user) when one is set, else a PING that shows whether Redis wants
 * one.  False, logged with the server named (never the password), when
 * Redis said no. */
static bool sync_login(struct redis_shard *sh, redisContext *c)
{
    const char *argv[3] = {"AUTH"};
    int argc = 1;
    if (*sh->ep.password) {
        if (*sh->ep.user)
            argv[argc++] = sh->ep.user;
        argv[argc++] = sh->ep.password;
    } else {
        argv[0] = "PING";
    }
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r && !ok) {
        log_error("redis: authentication failed at %s: %s", sh->ep.shown, r->str);
        sh->sync_auth_failed = true; /* start-up stops: waiting will not heal it */
    }
    freeReplyObject(r);
    return ok;
}

redisContext *redis_sync_connect(struct redis_shard *sh)
{
    struct timeval tv = {REDIS_SYNC_TIMEOUT_MS / 1000, (REDIS_SYNC_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = *sh->ep.socket ? redisConnectUnixWithTimeout(sh->ep.socket, tv)
                                     : redisConnectWithTimeout(sh->ep.host, sh->ep.port, tv);
    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK || !sync_login(sh, c)) {
        redisFree(c);
        return NULL;
    }
    if (sh->ep.db) {
        redisReply *r = redisCommand(c, "SELECT %d", sh->ep.db);
        freeReplyObject(r);
    }
    return c;
}

/* After the blocking link failed, calls fail at once for this long, so a
 * paused or unreachable Redis costs the main thread one timeout per pause,
 * not one per heartbeat and per admin request. */
#define REDIS_SYNC_HOLD_OFF_MS 3000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run a command on the blocking link (reconnecting if needed); the reply
 * or NULL when Redis cannot be reached.  Call with sync_lock held. */
redisReply *redis_sync_argv(struct redis_shard *sh, int argc, const char **argv, const size_t *lens)
{
    if (sh->sync_failed_at && mono_ms() - sh->sync_failed_at < REDIS_SYNC_HOLD_OFF_MS)
        return NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!sh->sync_ctx && !(sh->sync_ctx = redis_sync_connect(sh)))
            break;
        redisReply *r = redisCommandArgv(sh->sync_ctx, argc, argv, lens);
        if (r) {
            sh->sync_failed_at = 0;
            return r;
        }
        bool timed_out =
            sh->sync_ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        redisFree(sh->sync_ctx); /* broken: drop it, try a fresh one once */
        sh->sync_ctx = NULL;
        if (timed_out)
            break; /* a paused Redis: a second try would wait as long again */
    }
    sh->sync_failed_at = mono_ms();
    return NULL;
}

redisReply *redis_sync_cmd(struct redis_shard *sh, int argc, const char **argv)
{
    size_t small[16], *lens = argc <= 16 ? small : malloc((size_t)argc * sizeof(*lens));
    if (!lens)
        return NULL;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    pthread_mutex_lock(&sh->sync_lock);
    redisReply *r = redis_sync_argv(sh, argc, argv, lens);
    pthread_mutex_unlock(&sh->sync_lock);
    if (lens != small)
        free(lens);
    if (r && r->type == REDIS_REPLY_ERROR) {
        log_warn("redis: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* ------------------------------------------------------ async links */

static void link_connect(struct redis_link *link);

static void link_schedule_retry(struct redis_link *link)
{
    struct timeval tv = {link->backoff_ms / 1000, (link->backoff_ms % 1000) * 1000};
    link->backoff_ms =
        link->backoff_ms * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS : link->backoff_ms * 2;
    event_add(link->retry_ev, &tv);
}

/* The link is connected and logged in: it selects its database (before
 * anything its owner sends) and counts as up. */
static void link_up(struct redis_link *link)
{
    link->up = true;
    link->up_since = mono_ms();
    log_info("redis (%s): connected to %s", link->name, link->shard->ep.shown);
    if (link->shard->ep.db)
        redisAsyncCommand(link->ac, NULL, NULL, "SELECT %d", link->shard->ep.db);
    if (link->on_up)
        link->on_up(link);
}

/* AUTH's answer: up, or -- a wrong password, a missing one -- an error
 * naming the server, and a close that retries with back-off (the password
 * may be fixed on the Redis side meanwhile). */
static void on_link_auth(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_link *link = priv;
    redisReply *r = reply;
    if (!r || !link->ac)
        return; /* the link went down or is being freed */
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("redis (%s): authentication failed at %s: %s", link->name, link->shard->ep.shown,
                  r->str);
        link->auth_failed = true;
        redisAsyncDisconnect(ac);
        return;
    }
    link_up(link);
}

static void on_link_connect(const redisAsyncContext *ac, int status)
{
    struct redis_link *link = ac->data;
    if (status != REDIS_OK) {
        log_warn("redis (%s): cannot connect to %s: %s", link->name, link->shard->ep.shown,
                 ac->errstr);
        link->ac = NULL; /* hiredis frees it */
        link_schedule_retry(link);
        return;
    }
    /* AUTH when a password is set, else PING: both show a refusal. */
    const char *argv[3] = {"AUTH"};
    int argc = 1;
    if (*link->shard->ep.password) {
        if (*link->shard->ep.user)
            argv[argc++] = link->shard->ep.user;
        argv[argc++] = link->shard->ep.password;
    } else {
        argv[0] = "PING";
    }
    if (redisAsyncCommandArgv(link->ac, on_link_auth, link, argc, argv, NULL) != REDIS_OK)
        redisAsyncDisconnect(link->ac);
}

static void on_link_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_link *link = ac->data;
    link->ac = NULL;
    link->up = false;
    link->in_flight = 0;
    if (status != REDIS_OK || link->auth_failed) {
        link->auth_failed = false;
        /* Redis refusing what the link sends (NOPERM: an ACL user without
         * the channels) closes it at once: back off as for a dead server. */
        if (link->up_since && mono_ms() - link->up_since >= REDIS_BACKOFF_MAX_MS)
            link->backoff_ms = REDIS_BACKOFF_MIN_MS;
        log_warn("redis (%s): connection lost: %s%s", link->name, ac->errstr,
                 strncmp(ac->errstr, "NOPERM", 6) == 0
                     ? " (the ACL user needs the channels of redis_prefix: &PREFIX* or allchannels)"
                     : "");
        link_schedule_retry(link);
    }
    link->up_since = 0;
}

static void on_link_retry(evutil_socket_t fd, short what, void *arg)
{
    link_connect(arg);
}

static void link_connect(struct redis_link *link)
{
    link->ac = *link->shard->ep.socket
                   ? redisAsyncConnectUnix(link->shard->ep.socket)
                   : redisAsyncConnect(link->shard->ep.host, link->shard->ep.port);
    if (!link->ac || link->ac->err) {
        log_warn("redis (%s): %s", link->name, link->ac ? link->ac->errstr : "out of memory");
        if (link->ac)
            redisAsyncFree(link->ac);
        link->ac = NULL;
        link_schedule_retry(link);
        return;
    }
    link->ac->data = link;
    redisLibeventAttach(link->ac, link->base);
    redisAsyncSetConnectCallback(link->ac, on_link_connect);
    redisAsyncSetDisconnectCallback(link->ac, on_link_disconnect);
}

struct redis_link *redis_link_new(const char *name, struct redis_shard *sh, bool numbered,
                                  struct event_base *base, void (*on_up)(struct redis_link *),
                                  void *owner)
{
    struct redis_link *link = calloc(1, sizeof(*link));
    if (!link)
        return NULL;
    if (numbered)
        snprintf(link->name, sizeof(link->name), "%s, shard %d", name, sh->index);
    else
        snprintf(link->name, sizeof(link->name), "%s", name);
    link->shard = sh;
    link->base = base;
    link->on_up = on_up;
    link->owner = owner;
    link->backoff_ms = REDIS_BACKOFF_MIN_MS;
    link->retry_ev = evtimer_new(base, on_link_retry, link);
    link_connect(link);
    return link;
}

void redis_link_free(struct redis_link *link)
{
    if (!link)
        return;
    if (link->ac) {
        link->ac->data = link;
        redisAsyncFree(link->ac); /* pending callbacks run with a NULL reply */
    }
    event_free(link->retry_ev);
    free(link);
}

bool redis_link_ready(const struct redis_link *link)
{
    return link && link->up && link->ac && link->in_flight < REDIS_MAX_IN_FLIGHT;
}

/* A command whose callback gets PRIV; false when the link is down. */
bool redis_link_argv(struct redis_link *link, redisCallbackFn *fn, void *priv, int argc,
                     const char **argv, const size_t *lens)
{
    if (!redis_link_ready(link))
        return false;
    if (redisAsyncCommandArgv(link->ac, fn, priv, argc, argv, lens) != REDIS_OK)
        return false;
    if (fn)
        link->in_flight++;
    return true;
}

void redis_link_done(redisAsyncContext *ac)
{
    struct redis_link *link = ac->data;
    if (link && link->in_flight > 0)
        link->in_flight--;
}
