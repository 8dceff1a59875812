/* roomctl.c -- a small command line client of the admin HTTP API.
 *
 * Each command is one HTTP request (libevent's evhttp client).  Output is
 * for people unless --json, which prints the server's JSON as is.  Exit
 * codes scripts can trust: 0 success, 1 the server answered an error,
 * 2 usage, 3 the server could not be reached.  `roomctl token` signs a
 * token locally and needs no server. */
#include <getopt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>

#include "config.h"
#include "msg.h"
#include "token.h"

/* How long one request may take before roomctl gives up. */
#define ROOMCTL_TIMEOUT_SEC 10

enum { EXIT_OK = 0, EXIT_SERVER = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static bool opt_json;

static void usage(FILE *out)
{
    fputs("Usage: roomctl [-c roomd.conf] [--url URL] [--key KEY] [--json] COMMAND\n\n"
          "Commands:\n"
          "  rooms                          list rooms\n"
          "  room add|del|status ROOM       create, delete, inspect a room\n"
          "  room auth ROOM KEY VALUE       set the room's pattern to KEY = VALUE\n"
          "  room auth ROOM --clear         remove the room's pattern\n"
          "  room say ROOM MESSAGE...       broadcast into ROOM as the server\n"
          "  room history ROOM [--size N] [--ttl S]\n"
          "                                 show or set the room's history\n"
          "  room messages ROOM [--limit N] the messages the room keeps\n"
          "  conn list                      list connections\n"
          "  conn show ID                   one connection's details\n"
          "  conn send ID MESSAGE...        send a message to one connection\n"
          "  conn set ID KEY VALUE          set an attribute of a connection\n"
          "  conn join ID ROOM [--force]    put a connection into ROOM\n"
          "  conn leave ID                  take a connection out of its room\n"
          "  conn kick ID                   disconnect a connection\n"
          "  stats                          server counters\n"
          "  token [--secret S] [--exp SECONDS] [CLAIM=VALUE...]\n"
          "                                 sign an HS256 token for the auth verb\n\n"
          "VALUE is JSON when it parses as JSON (true, 3, \"x\"), else a string.\n"
          "The URL and key default to admin_bind, admin_port and admin_key of the\n"
          "config file (-c), then ROOMD_URL and ROOMD_ADMIN_KEY.\n",
          out);
}

/* ------------------------------------------------------------ HTTP */

struct http_result {
    int status; /* 0: no answer */
    json_object *body;
    struct event_base *base;
};

static void on_response(struct evhttp_request *req, void *arg)
{
    struct http_result *r = arg;
    if (req && evhttp_request_get_response_code(req) > 0) {
        r->status = evhttp_request_get_response_code(req);
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        char *text = malloc(len + 1);
        if (text) {
            evbuffer_remove(in, text, len);
            text[len] = '\0';
            r->body = json_tokener_parse(text);
            free(text);
        }
    }
    event_base_loopexit(r->base, NULL);
}

/* One request; the answer in *R.  Returns false when nothing answered. */
static bool http_call(const char *url, const char *key, enum evhttp_cmd_type method,
                      const char *path, json_object *body, struct http_result *r)
{
    struct evhttp_uri *uri = evhttp_uri_parse(url);
    if (!uri || !evhttp_uri_get_host(uri)) {
        fprintf(stderr, "roomctl: bad URL '%s'\n", url);
        exit(EXIT_USAGE);
    }
    int port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 80;
    struct event_base *base = event_base_new();
    struct evhttp_connection *conn =
        evhttp_connection_base_new(base, NULL, evhttp_uri_get_host(uri), (ev_uint16_t)port);
    evhttp_connection_set_timeout(conn, ROOMCTL_TIMEOUT_SEC);
    struct evhttp_request *req = evhttp_request_new(on_response, r);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char auth[1024];
    snprintf(auth, sizeof(auth), "Bearer %s", key ? key : "");
    evhttp_add_header(h, "Host", evhttp_uri_get_host(uri));
    evhttp_add_header(h, "Authorization", auth);
    if (body) {
        const char *text = json_object_to_json_string_ext(body, ROOMD_JSON_FLAGS);
        char clen[32]; /* libevent adds it for POST and PUT only, not PATCH */
        snprintf(clen, sizeof(clen), "%zu", strlen(text));
        evhttp_add_header(h, "Content-Type", "application/json");
        evhttp_add_header(h, "Content-Length", clen);
        evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
    }
    r->status = 0;
    r->body = NULL;
    r->base = base;
    if (evhttp_make_request(conn, req, method, path) == 0)
        event_base_dispatch(base);
    evhttp_connection_free(conn);
    event_base_free(base);
    evhttp_uri_free(uri);
    return r->status > 0;
}

/* "/api/rooms/" + percent-encoded NAME (+ SUFFIX). */
static char *path_with(const char *prefix, const char *name, const char *suffix)
{
    char *enc = evhttp_uriencode(name, -1, 0);
    size_t len = strlen(prefix) + strlen(enc) + strlen(suffix) + 1;
    char *p = malloc(len);
    snprintf(p, len, "%s%s%s", prefix, enc, suffix);
    free(enc);
    return p;
}

/* A non-negative decimal number, or -1. */
static long count_arg(const char *text)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    return (*text >= '0' && *text <= '9' && !*end && !errno) ? v : -1;
}

/* room history ROOM [--size N] [--ttl S]: a GET, or a PUT of what is given. */
static bool history_request(int argc, char **argv, const char *room, enum evhttp_cmd_type *method,
                            char **path, json_object **body)
{
    json_object *o = json_object_new_object();
    for (int i = 3; i < argc; i += 2) {
        long v = i + 1 < argc ? count_arg(argv[i + 1]) : -1;
        if (v < 0 || (strcmp(argv[i], "--size") && strcmp(argv[i], "--ttl"))) {
            json_object_put(o);
            return false;
        }
        json_object_object_add(o, argv[i] + 2, json_object_new_int64(v));
    }
    *path = path_with("/api/rooms/", room, "/history");
    if (json_object_object_length(o) > 0) {
        *method = EVHTTP_REQ_PUT;
        *body = o;
    } else
        json_object_put(o);
    return true;
}

/* VALUE as JSON when it parses, else as a string. */
static json_object *json_or_string(const char *value)
{
    json_object *v;
    if (*value && json_parse_strict(value, strlen(value), 32, &v))
        return v;
    return json_object_new_string(value);
}

static char *join_words(int argc, char **argv)
{
    size_t len = 1;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *s = calloc(1, len);
    for (int i = 0; i < argc; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

static json_object *obj1(const char *key, json_object *value)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, key, value);
    return o;
}

/* ---------------------------------------------------------- printing */

static const char *str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : "";
}

static void print_human(const char *cmd, const char *sub, json_object *body)
{
    json_object *v;
    if (!strcmp(cmd, "rooms") && json_object_object_get_ex(body, "rooms", &v)) {
        for (size_t i = 0; i < json_object_array_length(v); i++)
            printf("%s\n", json_object_get_string(json_object_array_get_idx(v, i)));
    } else if (!strcmp(cmd, "conn") && !strcmp(sub, "list") &&
               json_object_object_get_ex(body, "connections", &v)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *c = json_object_array_get_idx(v, i);
            printf("%s  %-9s %s:%s  %s\n", str(c, "id"), str(c, "type"), str(c, "remoteIP"),
                   str(c, "remotePort"),
                   json_object_object_get_ex(c, "room", &v) && v ? json_object_get_string(v) : "-");
            json_object_object_get_ex(body, "connections", &v);
        }
    } else if (!strcmp(cmd, "room") && !strcmp(sub, "status")) {
        printf("room %s: %s, %s members, pattern %s\n", str(body, "room"),
               json_object_get_boolean(json_object_object_get(body, "exists")) ? "exists"
                                                                               : "does not exist",
               str(body, "membersCount"), str(body, "pattern"));
        json_object_object_foreach(json_object_object_get(body, "members"), id, m)
            printf("  %s joined at %s\n", id, str(m, "joinedAt"));
    } else if (!strcmp(cmd, "room") && !strcmp(sub, "history")) {
        printf("history: %s messages, %s s\n", str(body, "size"), str(body, "ttl"));
    } else if (!strcmp(cmd, "room") && !strcmp(sub, "messages") &&
               json_object_object_get_ex(body, "messages", &v)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *m = json_object_array_get_idx(v, i);
            printf("%s  %s  %s\n", str(m, "offset"), str(m, "from"), str(m, "message"));
        }
    } else if (!strcmp(cmd, "room") && !strcmp(sub, "add")) {
        printf("%s\n", json_object_get_int(json_object_object_get(body, "created"))
                           ? "created"
                           : "already exists");
    } else if (!strcmp(cmd, "stats")) {
        json_object_object_foreach(body, k, val)
            printf("%-22s %s\n", k, json_object_get_string(val));
    } else {
        printf("%s\n", json_object_to_json_string_ext(body, JSON_C_TO_STRING_PRETTY |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
    }
}

/* ----------------------------------------------------------- commands */

static int cmd_token(int argc, char **argv, const char *secret)
{
    json_object *claims = json_object_new_object();
    long exp = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--secret") && i + 1 < argc)
            secret = argv[++i];
        else if (!strcmp(argv[i], "--exp") && i + 1 < argc) {
            char *end;
            exp = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || exp <= 0) {
                fprintf(stderr, "roomctl: --exp needs a positive number of seconds\n");
                json_object_put(claims);
                return EXIT_USAGE;
            }
        } else if (strchr(argv[i], '=')) {
            char *k = strdup(argv[i]), *eq = strchr(k, '=');
            *eq = '\0';
            json_object_object_add(claims, k, json_or_string(eq + 1));
            free(k);
        } else {
            usage(stderr);
            json_object_put(claims);
            return EXIT_USAGE;
        }
    }
    if (!secret || !*secret) {
        fprintf(stderr, "roomctl: no secret (--secret, or token_secret in the config)\n");
        json_object_put(claims);
        return EXIT_USAGE;
    }
    json_object_object_add(claims, "iat", json_object_new_int64(time(NULL)));
    if (exp > 0)
        json_object_object_add(claims, "exp", json_object_new_int64(time(NULL) + exp));
    char *token = token_sign(claims, secret);
    printf("%s\n", token);
    free(token);
    json_object_put(claims);
    return EXIT_OK;
}

/* Map a command line to METHOD, PATH and BODY; false on a usage error. */
static bool route(int argc, char **argv, enum evhttp_cmd_type *method, char **path,
                  json_object **body)
{
    const char *cmd = argv[0], *sub = argc > 1 ? argv[1] : "";
    *body = NULL;
    *method = EVHTTP_REQ_GET;
    if (!strcmp(cmd, "rooms") && argc == 1) {
        *path = strdup("/api/rooms");
    } else if (!strcmp(cmd, "stats") && argc == 1) {
        *path = strdup("/api/stats");
    } else if (!strcmp(cmd, "room") && argc >= 3) {
        const char *room = argv[2];
        if (!strcmp(sub, "add") && argc == 3) {
            *method = EVHTTP_REQ_POST;
            *path = strdup("/api/rooms");
            *body = obj1("room", json_object_new_string(room));
        } else if (!strcmp(sub, "del") && argc == 3) {
            *method = EVHTTP_REQ_DELETE;
            *path = path_with("/api/rooms/", room, "");
        } else if (!strcmp(sub, "status") && argc == 3) {
            *path = path_with("/api/rooms/", room, "");
        } else if (!strcmp(sub, "auth") && argc == 4 && !strcmp(argv[3], "--clear")) {
            *method = EVHTTP_REQ_PUT;
            *path = path_with("/api/rooms/", room, "/pattern");
            *body = obj1("key", NULL);
        } else if (!strcmp(sub, "auth") && argc == 5) {
            *method = EVHTTP_REQ_PUT;
            *path = path_with("/api/rooms/", room, "/pattern");
            *body = obj1("key", json_object_new_string(argv[3]));
            json_object_object_add(*body, "value", json_or_string(argv[4]));
        } else if (!strcmp(sub, "history")) {
            return history_request(argc, argv, room, method, path, body);
        } else if (!strcmp(sub, "messages") && (argc == 3 || argc == 5)) {
            if (argc == 5 && (strcmp(argv[3], "--limit") || count_arg(argv[4]) < 0))
                return false;
            char suffix[64];
            snprintf(suffix, sizeof(suffix), "/messages%s%s", argc == 5 ? "?limit=" : "",
                     argc == 5 ? argv[4] : "");
            *path = path_with("/api/rooms/", room, suffix);
        } else if (!strcmp(sub, "say") && argc >= 4) {
            char *text = join_words(argc - 3, argv + 3);
            *method = EVHTTP_REQ_POST;
            *path = path_with("/api/rooms/", room, "/broadcast");
            *body = obj1("message", json_object_new_string(text));
            free(text);
        } else
            return false;
    } else if (!strcmp(cmd, "conn") && !strcmp(sub, "list") && argc == 2) {
        *path = strdup("/api/connections");
    } else if (!strcmp(cmd, "conn") && argc >= 3) {
        const char *id = argv[2];
        if (!strcmp(sub, "show") && argc == 3) {
            *path = path_with("/api/connections/", id, "");
        } else if (!strcmp(sub, "send") && argc >= 4) {
            char *text = join_words(argc - 3, argv + 3);
            *method = EVHTTP_REQ_POST;
            *path = path_with("/api/connections/", id, "/message");
            *body = obj1("message", json_object_new_string(text));
            free(text);
        } else if (!strcmp(sub, "set") && argc == 5) {
            *method = EVHTTP_REQ_PATCH;
            *path = path_with("/api/connections/", id, "/attributes");
            *body = obj1(argv[3], json_or_string(argv[4]));
        } else if (!strcmp(sub, "join") &&
                   (argc == 4 || (argc == 5 && !strcmp(argv[4], "--force")))) {
            *method = EVHTTP_REQ_PUT;
            *path = path_with("/api/connections/", id, "/room");
            *body = obj1("room", json_object_new_string(argv[3]));
            if (argc == 5)
                json_object_object_add(*body, "force", json_object_new_boolean(1));
        } else if (!strcmp(sub, "leave") && argc == 3) {
            *method = EVHTTP_REQ_DELETE;
            *path = path_with("/api/connections/", id, "/room");
        } else if (!strcmp(sub, "kick") && argc == 3) {
            *method = EVHTTP_REQ_DELETE;
            *path = path_with("/api/connections/", id, "");
        } else
            return false;
    } else
        return false;
    return true;
}

/* The options before the command.  '+' stops at the first non-option:
 * what follows the command (room auth --clear, token --secret) is the
 * command's. */
static const char ROOMCTL_SHORT_OPTIONS[] = "+:c:h"; /* ':': a missing argument is ':' */
static const struct option roomctl_options[] = {
    {"config", required_argument, NULL, 'c'}, {"url", required_argument, NULL, 'u'},
    {"key", required_argument, NULL, 'k'},    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    const char *conf = NULL, *url = NULL, *key = NULL;
    int opt;
    opterr = 0; /* the messages below, prefixed "roomctl:" like the others */
    while ((opt = getopt_long(argc, argv, ROOMCTL_SHORT_OPTIONS, roomctl_options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            conf = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'j':
            opt_json = true;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case ':':
            fprintf(stderr, "roomctl: option '%s' needs an argument\n", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        default: { /* '?': optopt is the option, 0 for an unknown long one */
            const char *arg = argv[optind - 1];
            if (strncmp(arg, "--", 2) != 0)
                fprintf(stderr, "roomctl: unknown option '-%c'\n", optopt);
            else if (optopt)
                fprintf(stderr, "roomctl: option '%.*s' takes no argument\n",
                        (int)strcspn(arg, "="), arg);
            else
                fprintf(stderr, "roomctl: unknown option '%s'\n", arg);
            usage(stderr);
            return EXIT_USAGE;
        }
        }
    }
    int i = optind;
    if (i == argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    config_init(&settings);
    char err[512], default_url[300];
    if (conf && config_load_file(&settings, conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "roomctl: %s\n", err);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[i], "token"))
        return cmd_token(argc - i - 1, argv + i + 1, settings.token_secret);
    /* Precedence: --url/--key, then the config file, then the environment,
     * then roomd's defaults. */
    snprintf(default_url, sizeof(default_url), "http://%s:%d", settings.admin_bind,
             settings.admin_port);
    if (!url)
        url = conf || !getenv("ROOMD_URL") ? default_url : getenv("ROOMD_URL");
    if (!key)
        key = (conf && *settings.admin_key) || !getenv("ROOMD_ADMIN_KEY")
                  ? settings.admin_key
                  : getenv("ROOMD_ADMIN_KEY");

    enum evhttp_cmd_type method;
    char *path = NULL;
    json_object *body = NULL;
    if (!route(argc - i, argv + i, &method, &path, &body)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    struct http_result r;
    bool answered = http_call(url, key, method, path, body, &r);
    free(path);
    json_object_put(body);
    if (!answered) {
        fprintf(stderr, "roomctl: cannot reach roomd's admin API at %s\n", url);
        return EXIT_UNREACHABLE;
    }
    int rc = r.status >= 200 && r.status < 300 ? EXIT_OK : EXIT_SERVER;
    if (opt_json)
        printf("%s\n", json_object_to_json_string_ext(r.body, ROOMD_JSON_FLAGS));
    else if (rc != EXIT_OK)
        fprintf(stderr, "roomctl: %s (HTTP %d)\n", r.body ? str(r.body, "error") : "error",
                r.status);
    else
        print_human(argv[i], i + 1 < argc ? argv[i + 1] : "", r.body);
    json_object_put(r.body);
    config_free(&settings);
    return rc;
}
