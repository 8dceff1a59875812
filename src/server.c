/* server.c -- start-up, signals and the graceful stop (roomd_init,
 * roomd_run, roomd_stop of roomd.h).
 *
 * The thread that calls roomd_run() is the acceptor: it starts the workers,
 * opens the listeners and then runs its own event loop for accepts, the
 * admin API and signals until SIGTERM/SIGINT or roomd_stop(). */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif
#include <event2/thread.h>

#include "acceptor.h"
#include "admin.h"
#include "config.h"
#include "conn.h"
#include "history.h"
#include "log.h"
#include "redis/url.h"
#include "registry.h"
#include "roomd.h"
#include "store.h"
#include "tls.h"
#include "worker.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: roomd [-c FILE] [--key=value ...]\n"
                 "       roomd --help | --version\n\n"
                 "A chat daemon: rooms for TCP line clients.\n"
                 "Settings come from built-in defaults, then FILE (key = value lines),\n"
                 "then --key=value options (dashes and underscores are the same).\n\n"
                 "Options:\n"
                 "  -c, --config FILE    read settings from FILE\n"
                 "  -h, --help           show this help\n"
                 "  -V, --version        show the version\n\n"
                 "Settings:\n");
    config_print_keys(out);
}

/* The command line, kept for SIGHUP: a reload reads the same file and
 * applies the same overrides again. */
static int saved_argc;
static char **saved_argv;

/* Build CFG from defaults, -c FILE, then every --key=value of ARGV.
 * Returns 0, or -1 with the reason in ERR. */
static int load_config(struct roomd_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    const char *file = NULL;
    config_init(cfg);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
            if (++i == argc) {
                snprintf(err, errlen, "%s needs a file name", argv[i - 1]);
                return -1;
            }
            file = argv[i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            file = argv[i] + 9;
        } else if (strncmp(argv[i], "--", 2) != 0 || !strchr(argv[i], '=')) {
            snprintf(err, errlen, "unexpected argument '%s' (see roomd --help)", argv[i]);
            return -1;
        }
    }
    if (file && config_load_file(cfg, file, err, errlen) < 0)
        return -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        if (!strncmp(argv[i], "--config=", 9))
            continue;
        char *arg = strdup(argv[i] + 2);
        char *eq = strchr(arg, '=');
        *eq = '\0';
        int rc = config_set(cfg, arg, eq + 1, err, errlen);
        free(arg);
        if (rc < 0)
            return -1;
    }
    return config_validate(cfg, err, errlen);
}

/* --help and --version answer at once; anything else configures. */
static int parse_args(int argc, char **argv)
{
    char err[512];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
            printf("roomd %s\n", PACKAGE_VERSION);
            exit(0);
        }
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))
            i++;
    }
    if (load_config(&settings, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "roomd: %s\n", err);
        return -1;
    }
    saved_argc = argc;
    saved_argv = argv;
    return 0;
}

static int create_starting_room(const char *name, void *arg)
{
    store_room_add(name);
    return 0;
}

/* Create every room named in starting_rooms (comma-separated), whose
 * names config_validate() has checked. */
static int create_starting_rooms(void)
{
    return config_each_starting_room(settings.starting_rooms, create_starting_room, NULL) == 0 ? 0
                                                                                               : -1;
}

static void write_pid_file(void)
{
    if (!*settings.pid_file)
        return;
    FILE *f = fopen(settings.pid_file, "w");
    if (!f) {
        log_warn("pid_file %s: cannot write it", settings.pid_file);
        return;
    }
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
}

/* Tell systemd (Type=notify) where we are; nothing without libsystemd or
 * outside systemd (NOTIFY_SOCKET unset). */
static void notify(const char *state)
{
#ifdef HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

/* The graceful stop: no new clients, every worker says goodbye to its
 * clients and ends, then the main loop ends. */
static void stop_now(void)
{
    notify("STOPPING=1");
    acceptor_close_all();
    admin_stop();
    workers_stop();
    event_base_loopexit(main_base, NULL);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    log_info("signal %d: stopping", (int)sig);
    stop_now();
}

static void on_stop_request(evutil_socket_t fd, short what, void *arg)
{
    log_info("stop requested: stopping");
    stop_now();
}

void roomd_stop(void)
{
    if (main_base)
        event_base_once(main_base, -1, EV_TIMEOUT, on_stop_request, NULL, NULL);
}

/* The old configuration is freed once every worker has finished the
 * loop turn in which it might have read it. */
struct config_retire {
    struct roomd_config *old;
    atomic_int pending;
};

/* On each worker, after the swap: open connections take the settings
 * they copied when they opened (idle_timeout, a WebSocket's max_line). */
static void apply_on_worker(struct worker *w, void *arg)
{
    conn_apply_settings(w);
}

static void retire_on_worker(struct worker *w, void *arg)
{
    struct config_retire *r = arg;
    if (atomic_fetch_sub(&r->pending, 1) == 1) {
        config_release(r->old);
        free(r);
    }
}

/* SIGHUP: re-read the configuration the way start-up did and apply what can
 * change live (limits, log level and file, welcome, announcements, starting
 * rooms).  Keys that need a restart keep their running values. */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    char err[512];
    struct roomd_config *next = calloc(1, sizeof(*next));
    struct config_retire *retire = calloc(1, sizeof(*retire));
    if (!next || !retire || load_config(next, saved_argc, saved_argv, err, sizeof(err)) < 0) {
        log_error("SIGHUP: configuration not reloaded: %s", next && retire ? err : "no memory");
        if (next)
            config_free(next);
        free(next);
        free(retire);
        return;
    }
    notify("RELOADING=1");
    config_keep_restart_keys(next, &settings);
    struct roomd_config *old = config_swap(next);
    log_set_level((enum log_level)log_level_parse(settings.log_level));
    log_reopen(settings.log_file);
    if (tls_reload(err, sizeof(err)) < 0)
        log_error("SIGHUP: TLS certificate not reloaded, the old one stays: %s", err);
    create_starting_rooms();
    retire->old = old;
    atomic_init(&retire->pending, nworkers);
    for (int i = 0; i < nworkers; i++) {
        worker_call(&workers[i], apply_on_worker, NULL);
        worker_call(&workers[i], retire_on_worker, retire);
    }
    log_info("SIGHUP: configuration reloaded");
    notify("READY=1");
}

static bool initialized;

/* How often kept messages past their ttl are dropped from idle rooms (a busy
 * room drops them itself each time it numbers a message). */
#define HISTORY_SWEEP_MS 1000

static void on_history_sweep(evutil_socket_t fd, short what, void *arg)
{
    history_sweep();
}

int roomd_init(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0) {
        config_free(&settings);
        return 2;
    }
    log_set_level((enum log_level)log_level_parse(settings.log_level));
    if (log_reopen(settings.log_file) < 0) {
        fprintf(stderr, "roomd: log_file %s: cannot open it\n", settings.log_file);
        return 2;
    }
    char tls_err[1024];
    if (tls_init(tls_err, sizeof(tls_err)) < 0) {
        fprintf(stderr, "roomd: %s\n", tls_err);
        log_error("%s", tls_err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Locking on for the main base only: workers hand it admin answers. */
    evthread_use_pthreads();
    main_base = event_base_new();
    int n = settings.workers > 0 ? settings.workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (!main_base || registry_init(n > 0 ? n : 1) < 0 || store_open() < 0 ||
        create_starting_rooms() < 0)
        return 1;
    nworkers = n > 0 ? n : 1;
    initialized = true;
    return 0;
}

/* ", tls port N, wss port M" for the ready line, or "" without TLS. */
static const char *tls_ready_note(void)
{
    static char note[64];
    note[0] = '\0';
    if (tls_wanted())
        snprintf(note, sizeof(note), ", tls port %d, wss port %d", settings.tls_port,
                 settings.wss_port);
    return note;
}

/* Every listener is open and the store works: say so (the line scripts
 * and tests wait for) and tell systemd. */
static void announce_ready(void)
{
    char shown[1024];
    write_pid_file();
    log_info("roomd ready: port %d, websocket port %d, admin port %d, %d workers, store %s%s",
             settings.port, settings.websocket_port, *settings.admin_key ? settings.admin_port : 0,
             nworkers, redis_url_shown(settings.store, shown, sizeof(shown)), tls_ready_note());
    notify("READY=1");
}

int roomd_run(void)
{
    struct event_base *base = main_base;
    if (!initialized || workers_start(nworkers) < 0)
        return 1;
    if ((settings.port > 0 &&
         acceptor_listen(base, settings.bind, settings.port, TRANSPORT_SOCKET, false) < 0) ||
        (settings.websocket_port > 0 &&
         acceptor_listen(base, settings.websocket_bind, settings.websocket_port,
                         TRANSPORT_WEBSOCKET, false) < 0) ||
        (settings.tls_port > 0 &&
         acceptor_listen(base, settings.bind, settings.tls_port, TRANSPORT_SOCKET, true) < 0) ||
        (settings.wss_port > 0 && acceptor_listen(base, settings.websocket_bind, settings.wss_port,
                                                  TRANSPORT_WEBSOCKET, true) < 0) ||
        admin_start(base) < 0) {
        workers_stop(); /* they run already: stop them before roomd_cleanup frees them */
        return 1;
    }

    struct event *sigterm = evsignal_new(base, SIGTERM, on_stop_signal, NULL);
    struct event *sigint = evsignal_new(base, SIGINT, on_stop_signal, NULL);
    struct event *sighup = evsignal_new(base, SIGHUP, on_hup, NULL);
    struct event *sweep = event_new(base, -1, EV_PERSIST, on_history_sweep, NULL);
    struct timeval every = {HISTORY_SWEEP_MS / 1000, (HISTORY_SWEEP_MS % 1000) * 1000};
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    event_add(sighup, NULL);
    event_add(sweep, &every);
    store_when_ready(announce_ready);

    event_base_dispatch(base);

    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    event_free(sweep);
    return 0;
}

/* Free what roomd_init and roomd_run made. */
static void roomd_cleanup(void)
{
    if (workers)
        workers_free();
    tls_free();
    store_close();
    registry_shutdown();
    if (main_base)
        event_base_free(main_base);
    main_base = NULL;
    if (*settings.pid_file)
        unlink(settings.pid_file);
    config_free(&settings);
    initialized = false;
}

int roomd_main(int argc, char **argv)
{
    int rc = roomd_init(argc, argv);
    if (rc == 0) {
        rc = roomd_run();
        log_info(rc == 0 ? "roomd stopped" : "roomd could not start");
    }
    if (rc != 2)
        roomd_cleanup();
    return rc;
}
