/* config.c -- the table of settings and its parsers.
 *
 * Every key lives once in config_keys[] with its type, default, bounds and
 * a line of help; the file parser, the command line and --help all read the
 * same table, so a key cannot be known to one and not the others. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "redis/url.h"
#include "verbs.h"

/* roomd.conf(5): "Lines are at most 4095 bytes" (the line end not
 * counted); a longer one is an error, not a silent cut. */
#define CONFIG_MAX_LINE 4095

static struct roomd_config config_initial;
struct roomd_config *_Atomic config_live = &config_initial;

enum key_type { KEY_STR, KEY_INT, KEY_LONG, KEY_BOOL };

struct config_key {
    const char *name;
    enum key_type type;
    size_t offset;
    const char *def;
    long min, max;
    const char *help;
    bool restart; /* only a restart changes it (SIGHUP keeps the old value) */
};

#define OFF(field) offsetof(struct roomd_config, field)

static const struct config_key config_keys[] = {
    {"bind", KEY_STR, OFF(bind), "0.0.0.0", 0, 0, "address of the TCP line listener", true},
    {"port", KEY_INT, OFF(port), "5000", 0, 65535, "TCP line port; 0 turns it off", true},
    {"websocket_bind", KEY_STR, OFF(websocket_bind), "0.0.0.0", 0, 0,
     "address of the WebSocket listener", true},
    {"websocket_port", KEY_INT, OFF(websocket_port), "8080", 0, 65535,
     "WebSocket port; 0 turns it off", true},
    {"admin_bind", KEY_STR, OFF(admin_bind), "127.0.0.1", 0, 0, "address of the admin HTTP API",
     true},
    {"admin_port", KEY_INT, OFF(admin_port), "8081", 0, 65535, "admin HTTP port; 0 turns it off",
     true},
    {"admin_key", KEY_STR, OFF(admin_key), "", 0, 0,
     "bearer key of the admin API; empty turns the API off", true},
    {"admin_max_connections", KEY_LONG, OFF(admin_max_connections), "64", 1, 100000,
     "admin HTTP connections at once; more wait in the kernel's queue", false},
    {"admin_timeout", KEY_LONG, OFF(admin_timeout), "5", 1, 3600,
     "seconds an admin HTTP connection may stay idle before it is closed", false},
    {"workers", KEY_INT, OFF(workers), "0", 0, 1024, "worker threads; 0 means one per core", true},
    {"store", KEY_STR, OFF(store), "memory", 0, 0,
     "memory, or redis://[USER[:PASSWORD]@]HOST:PORT[/DB]", true},
    {"redis_prefix", KEY_STR, OFF(redis_prefix), "roomd:", 0, 0, "key prefix in Redis", true},
    {"server_id", KEY_STR, OFF(server_id), "", 0, 0,
     "this server's name in a cluster (default: host name and port)", true},
    {"server_timeout", KEY_LONG, OFF(server_timeout), "5", 2, 3600,
     "seconds without a heartbeat before other servers drop a server's members", true},
    {"redis_wait", KEY_BOOL, OFF(redis_wait), "true", 0, 1,
     "at start-up, wait for Redis (retrying) instead of exiting", true},
    {"redis_password_file", KEY_STR, OFF(redis_password_file), "", 0, 0,
     "file whose first line is the Redis password of URLs without one", true},
    {"starting_rooms", KEY_STR, OFF(starting_rooms), "defaultRoom", 0, 0,
     "comma-separated rooms created at boot", false},
    {"default_room", KEY_STR, OFF(default_room), "defaultRoom", 0, 0,
     "room new connections join (empty: none)", false},
    {"welcome_message", KEY_STR, OFF(welcome_message), "Hello! Welcome to the roomd api", 0, 0,
     "text of the welcome message", false},
    {"announcements", KEY_BOOL, OFF(announcements), "true", 0, 1,
     "announce joins and leaves to the room", false},
    {"max_connections", KEY_LONG, OFF(max_connections), "10000", 1, 10000000,
     "connections above this are refused", false},
    {"max_line", KEY_LONG, OFF(max_line), "65536", 16, 1L << 30,
     "longest request line or frame, in bytes", false},
    {"max_room_name", KEY_LONG, OFF(max_room_name), "256", 1, 65536, "longest room name, in bytes",
     false},
    {"max_params", KEY_LONG, OFF(max_params), "64", 0, 1000000, "params per connection", false},
    {"max_params_bytes", KEY_LONG, OFF(max_params_bytes), "65536", 0, 1L << 30,
     "bytes of params, and of attributes set, per connection (keys and values): bounds "
     "the memory one connection holds",
     false},
    {"output_limit", KEY_LONG, OFF(output_limit), "8388608", 1024, 1L << 40,
     "pending output bytes before a client is dropped as a slow reader", false},
    {"say_rate", KEY_LONG, OFF(say_rate), "100", 0, 100000000,
     "say requests per second per connection; 0 off", false},
    {"say_burst", KEY_LONG, OFF(say_burst), "200", 0, 100000000, "say token bucket size", false},
    {"join_rate", KEY_LONG, OFF(join_rate), "10", 0, 100000000,
     "roomChange/roomLeave/listenToRoom/silenceRoom per second per connection; 0 off", false},
    {"join_burst", KEY_LONG, OFF(join_burst), "20", 0, 100000000, "join token bucket size", false},
    {"announce_rate", KEY_LONG, OFF(announce_rate), "100", 0, 100000000,
     "join/leave announcements per room per second, the rest skipped; 0 off", false},
    {"max_listening", KEY_LONG, OFF(max_listening), "100", 0, 10000000,
     "rooms one connection may listen to", false},
    {"idle_timeout", KEY_LONG, OFF(idle_timeout), "0", 0, 100000000,
     "seconds without input before a client is closed; 0 off", false},
    {"room_view_limit", KEY_LONG, OFF(room_view_limit), "1000", 0, 100000000,
     "members listed by roomView", false},
    {"history_size", KEY_LONG, OFF(history_size), "100", 0, 100000000,
     "messages kept per room for clients that come back; 0 turns history and offsets off", false},
    {"history_ttl", KEY_LONG, OFF(history_ttl), "300", 1, 100000000,
     "seconds a room keeps a message", false},
    {"history_memory", KEY_LONG, OFF(history_memory), "67108864", 0, 1L << 40,
     "bytes all histories keep together (oldest of the largest go first); 0 no cap", false},
    {"token_secret", KEY_STR, OFF(token_secret), "", 0, 0,
     "HS256 secret of the auth verb; empty turns it off", false},
    {"log_level", KEY_STR, OFF(log_level), "info", 0, 0, "debug, info, warn or error", false},
    {"pid_file", KEY_STR, OFF(pid_file), "", 0, 0, "write the process id here", true},
    {"log_file", KEY_STR, OFF(log_file), "", 0, 0,
     "append the log here (reopened on SIGHUP); syslog: to syslog; empty: stderr", false},
    {"tls_port", KEY_INT, OFF(tls_port), "0", 0, 65535,
     "TCP line port over TLS (on bind); 0 turns it off", true},
    {"wss_port", KEY_INT, OFF(wss_port), "0", 0, 65535,
     "WebSocket and demo page port over TLS (on websocket_bind); 0 turns it off", true},
    {"tls_cert_file", KEY_STR, OFF(tls_cert_file), "", 0, 0,
     "PEM certificate (a chain allowed) of tls_port and wss_port; reread on SIGHUP", false},
    {"tls_key_file", KEY_STR, OFF(tls_key_file), "", 0, 0,
     "PEM private key of tls_cert_file; reread on SIGHUP", false},
    {"tls_ca_cert_file", KEY_STR, OFF(tls_ca_cert_file), "", 0, 0,
     "PEM CA certificates that client certificates must chain to", false},
    {"tls_client_auth", KEY_STR, OFF(tls_client_auth), "no", 0, 0,
     "client certificates: no, optional (verified when sent) or yes (required)", false},
    {"tls_protocols", KEY_STR, OFF(tls_protocols), "TLSv1.2,TLSv1.3", 0, 0,
     "TLS versions offered (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)", false},
    {"tls_ciphers", KEY_STR, OFF(tls_ciphers), "", 0, 0,
     "OpenSSL cipher list for TLS 1.2 and older; empty: OpenSSL's default", false},
    {"websocket_origins", KEY_STR, OFF(websocket_origins), "", 0, 0,
     "origins whose pages may open a WebSocket (comma-separated; https://*.example.com; *); "
     "empty: the Origin's host must be the Host header",
     false},
    {"max_connections_per_ip", KEY_LONG, OFF(max_connections_per_ip), "0", 0, 10000000,
     "connections open at once from one client address; 0 off", false},
    {"connection_rate_per_ip", KEY_LONG, OFF(connection_rate_per_ip), "0", 0, 10000000,
     "new connections per second from one client address (token bucket, a burst of one "
     "second's worth); 0 off",
     false},
    {"proxy_protocol", KEY_BOOL, OFF(proxy_protocol), "false", 0, 1,
     "the line and WebSocket ports (plain and TLS) expect a PROXY v1/v2 header first", true},
    {"trusted_proxies", KEY_STR, OFF(trusted_proxies), "", 0, 0,
     "CIDRs of HTTP proxies whose X-Forwarded-For names the WebSocket client; empty: none", false},
    {"handshake_timeout", KEY_LONG, OFF(handshake_timeout), "10", 1, 3600,
     "seconds a client has to finish its TLS handshake, and its WebSocket request", false},
};

#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))
_Static_assert(NKEYS <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");

static const struct config_key *config_find(const char *key)
{
    char name[64];
    size_t i;
    for (i = 0; key[i] && i < sizeof(name) - 1; i++)
        name[i] = (key[i] == '-') ? '_' : key[i];
    if (key[i])
        return NULL;
    name[i] = '\0';
    for (i = 0; i < NKEYS; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
        !strcmp(v, "1")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
        !strcmp(v, "0")) {
        *out = false;
        return 0;
    }
    return -1;
}

static int config_apply(struct roomd_config *cfg, const struct config_key *k, const char *value,
                        char *err, size_t errlen)
{
    char *base = (char *)cfg + k->offset;
    switch (k->type) {
    case KEY_STR: {
        char *copy = strdup(value);
        if (!copy) {
            snprintf(err, errlen, "%s: out of memory", k->name);
            return -1;
        }
        free(*(char **)base);
        *(char **)base = copy;
        return 0;
    }
    case KEY_BOOL:
        if (parse_bool(value, (bool *)base) < 0) {
            snprintf(err, errlen, "%s: '%s' is not a boolean (true or false)", k->name, value);
            return -1;
        }
        return 0;
    case KEY_INT:
    case KEY_LONG: {
        /* strtol() also takes leading blanks and a '+': roomd.conf(5) says
         * a decimal integer, so "+5" and " 5" are refused. */
        char *end;
        errno = 0;
        long n = strtol(value, &end, 10);
        bool digits_first = isdigit((unsigned char)value[0]) ||
                            (value[0] == '-' && isdigit((unsigned char)value[1]));
        if (!digits_first || errno || end == value || *end != '\0') {
            snprintf(err, errlen, "%s: '%s' is not a number", k->name, value);
            return -1;
        }
        if (n < k->min || n > k->max) {
            snprintf(err, errlen, "%s: %ld is out of range [%ld, %ld]", k->name, n, k->min, k->max);
            return -1;
        }
        if (k->type == KEY_INT)
            *(int *)base = (int)n;
        else
            *(long *)base = n;
        return 0;
    }
    }
    return -1;
}

void config_init(struct roomd_config *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++)
        if (config_apply(cfg, &config_keys[i], config_keys[i].def, err, sizeof(err)) < 0)
            abort(); /* a bad built-in default is a programming error */
}

void config_free(struct roomd_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (config_keys[i].type == KEY_STR) {
            char **p = (char **)((char *)cfg + config_keys[i].offset);
            free(*p);
            *p = NULL;
        }
        free(cfg->origin[i]);
        cfg->origin[i] = NULL;
    }
}

/* Set KEY and remember ORIGIN ("FILE:LINE") as where it came from, so a
 * check across keys made after the whole file can still name the line. */
static int config_set_from(struct roomd_config *cfg, const char *key, const char *value,
                           const char *origin, char *err, size_t errlen)
{
    const struct config_key *k = config_find(key);
    if (!k) {
        snprintf(err, errlen, "unknown configuration key '%s'", key);
        return -1;
    }
    if (config_apply(cfg, k, value, err, errlen) < 0)
        return -1;
    size_t i = (size_t)(k - config_keys);
    free(cfg->origin[i]);
    cfg->origin[i] = strdup(origin);
    return 0;
}

int config_set(struct roomd_config *cfg, const char *key, const char *value, char *err,
               size_t errlen)
{
    return config_set_from(cfg, key, value, "the command line", err, errlen);
}

/* Trim leading and trailing white space in place. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int config_load_file(struct roomd_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL; /* getline: a long line stays one line (and is refused) */
    size_t cap = 0;
    int lineno = 0, rc = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len > CONFIG_MAX_LINE) {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno,
                     CONFIG_MAX_LINE);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        char why[256], origin[PATH_MAX + 16];
        snprintf(origin, sizeof(origin), "%s:%d", path, lineno);
        if (config_set_from(cfg, key, value, origin, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s: %s", origin, why);
            rc = -1;
            break;
        }
    }
    /* getline() ends on a read error as on the end of the file: a
     * directory (EISDIR) or an I/O error must not pass for a short file. */
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

int config_each_starting_room(const char *list, int (*fn)(const char *name, void *arg), void *arg)
{
    const char *p = list;
    if (*p == '\0')
        return 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0)
            return -1;
        char *name = strndup(p, len);
        int rc = name ? fn(name, arg) : 1;
        free(name);
        if (rc > 0)
            return rc;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* Checking starting_rooms: the configuration, and the first bad name. */
struct starting_room_check {
    const struct roomd_config *cfg;
    char bad[CONFIG_MAX_LINE + 1];
};

/* A starting room must be a name roomChange would take (config_validate). */
static int starting_room_invalid(const char *name, void *arg)
{
    struct starting_room_check *check = arg;
    if (verbs_room_name_valid(name, strlen(name), (size_t)check->cfg->max_room_name))
        return 0;
    snprintf(check->bad, sizeof(check->bad), "%s", name);
    return 1;
}

/* "FILE:LINE: " (or "the command line: ") for the key NAME, "" when it has
 * its built-in default: the start of an error about that key. */
static const char *origin_of(const struct roomd_config *cfg, const char *name, char *buf,
                             size_t len)
{
    const struct config_key *k = config_find(name);
    const char *origin = k ? cfg->origin[k - config_keys] : NULL;
    snprintf(buf, len, "%s%s", origin ? origin : "", origin ? ": " : "");
    return buf;
}

int config_validate(const struct roomd_config *cfg, char *err, size_t errlen)
{
    char at[PATH_MAX + 32];
    if (strcmp(cfg->store, "memory") != 0 && strncmp(cfg->store, "redis://", 8) != 0) {
        char shown[1024];
        snprintf(err, errlen, "%sstore: '%s' is neither 'memory' nor a redis:// URL",
                 origin_of(cfg, "store", at, sizeof(at)),
                 redis_url_shown(cfg->store, shown, sizeof(shown)));
        return -1;
    }
    if (log_level_parse(cfg->log_level) < 0) {
        snprintf(err, errlen, "%slog_level: '%s' is not one of debug, info, warn, error",
                 origin_of(cfg, "log_level", at, sizeof(at)), cfg->log_level);
        return -1;
    }
    if (*cfg->default_room && (long)strlen(cfg->default_room) > cfg->max_room_name) {
        snprintf(err, errlen, "%sdefault_room: longer than max_room_name (%ld)",
                 origin_of(cfg, "default_room", at, sizeof(at)), cfg->max_room_name);
        return -1;
    }
    if (strcmp(cfg->tls_client_auth, "no") != 0 && strcmp(cfg->tls_client_auth, "optional") != 0 &&
        strcmp(cfg->tls_client_auth, "yes") != 0) {
        snprintf(err, errlen, "%stls_client_auth: '%s' is not one of no, optional, yes",
                 origin_of(cfg, "tls_client_auth", at, sizeof(at)), cfg->tls_client_auth);
        return -1;
    }
    if (strcmp(cfg->tls_client_auth, "no") != 0 && !*cfg->tls_ca_cert_file) {
        snprintf(err, errlen, "%stls_client_auth: %s needs tls_ca_cert_file",
                 origin_of(cfg, "tls_client_auth", at, sizeof(at)), cfg->tls_client_auth);
        return -1;
    }
    if ((cfg->tls_port > 0 || cfg->wss_port > 0) && (!*cfg->tls_cert_file || !*cfg->tls_key_file)) {
        snprintf(err, errlen, "%s: tls_port and wss_port need tls_cert_file and tls_key_file",
                 cfg->tls_port > 0 ? "tls_port" : "wss_port");
        return -1;
    }
    struct starting_room_check *check = calloc(1, sizeof(*check));
    if (!check) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    check->cfg = cfg;
    int rc = config_each_starting_room(cfg->starting_rooms, starting_room_invalid, check);
    if (rc < 0)
        snprintf(err, errlen, "%sstarting_rooms: an empty room name in '%s'",
                 origin_of(cfg, "starting_rooms", at, sizeof(at)), cfg->starting_rooms);
    else if (rc > 0)
        snprintf(err, errlen, "%sstarting_rooms: '%s' is not a valid room name",
                 origin_of(cfg, "starting_rooms", at, sizeof(at)), check->bad);
    free(check);
    if (rc != 0)
        return -1;
    return 0;
}

void config_print_keys(FILE *out)
{
    for (size_t i = 0; i < NKEYS; i++)
        fprintf(out, "  --%-18s %-34s (default: %s)\n", config_keys[i].name, config_keys[i].help,
                *config_keys[i].def ? config_keys[i].def : "empty");
}

struct roomd_config *config_swap(struct roomd_config *next)
{
    return atomic_exchange_explicit(&config_live, next, memory_order_acq_rel);
}

void config_keep_restart_keys(struct roomd_config *next, const struct roomd_config *running)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct config_key *k = &config_keys[i];
        if (!k->restart)
            continue;
        char *dst = (char *)next + k->offset;
        const char *src = (const char *)running + k->offset;
        switch (k->type) {
        case KEY_STR:
            if (strcmp(*(char **)dst, *(char *const *)src) != 0) {
                log_warn("SIGHUP: %s changed; it takes effect at restart", k->name);
                free(*(char **)dst);
                *(char **)dst = strdup(*(char *const *)src);
            }
            break;
        case KEY_INT:
        case KEY_LONG:
        case KEY_BOOL: {
            size_t size = k->type == KEY_INT    ? sizeof(int)
                          : k->type == KEY_LONG ? sizeof(long)
                                                : sizeof(bool);
            if (memcmp(dst, src, size) != 0) {
                log_warn("SIGHUP: %s changed; it takes effect at restart", k->name);
                memcpy(dst, src, size);
            }
            break;
        }
        }
    }
}

void config_release(struct roomd_config *old)
{
    config_free(old);
    if (old != &config_initial)
        free(old);
}
