/* config.h -- roomd's settings: built-in defaults, a key = value file and
 * --key=value overrides, in that order of precedence (last wins). */
#ifndef ROOMD_CONFIG_H
#define ROOMD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>

/* Keys config_keys[] may hold (config.c checks it has no more). */
#define CONFIG_MAX_KEYS 96

struct roomd_config {
    char *bind;
    int port;
    char *websocket_bind;
    int websocket_port;
    char *admin_bind;
    int admin_port;
    char *admin_key;
    long admin_max_connections;
    long admin_timeout;
    int workers;
    char *store;
    char *redis_prefix;
    char *server_id;
    long server_timeout;
    bool redis_wait;
    char *redis_password_file;
    char *starting_rooms; /* comma-separated */
    char *default_room;
    char *welcome_message;
    bool announcements;
    long max_connections;
    long max_line;
    long max_room_name;
    long max_params;
    long max_params_bytes;
    long output_limit;
    long say_rate;
    long say_burst;
    long join_rate;
    long join_burst;
    long announce_rate;
    long max_listening;
    long idle_timeout;
    long room_view_limit;
    long history_size;
    long history_ttl;
    long history_memory;
    char *token_secret;
    char *log_level;
    char *pid_file;
    char *log_file;
    int tls_port;
    int wss_port;
    char *tls_cert_file;
    char *tls_key_file;
    char *tls_ca_cert_file;
    char *tls_client_auth;
    char *tls_protocols;
    char *tls_ciphers;
    long handshake_timeout;
    char *websocket_origins;
    long max_connections_per_ip;
    long connection_rate_per_ip;
    bool proxy_protocol;
    char *trusted_proxies;
    /* Where each key (by its index in config_keys[]) got its value, for
     * the messages of config_validate(): "FILE:LINE", "the command line",
     * or NULL for the built-in default.  Owned. */
    char *origin[CONFIG_MAX_KEYS];
};

/* The running configuration (memcached's `settings`).  A configuration is
 * never changed in place: SIGHUP builds a new one and swaps the pointer, so
 * a reader sees either the old or the new one, whole (config_swap). */
extern struct roomd_config *_Atomic config_live;
#define settings (*atomic_load_explicit(&config_live, memory_order_acquire))

/* Publish NEXT as the running configuration; returns the previous one,
 * which the caller frees once no thread can still be reading it. */
struct roomd_config *config_swap(struct roomd_config *next);
/* Free a configuration config_swap() returned. */
void config_release(struct roomd_config *old);
/* Copy into NEXT the keys that only a restart can change (ports, binds,
 * workers, store...), from RUNNING, logging each one that differed. */
void config_keep_restart_keys(struct roomd_config *next, const struct roomd_config *running);

/* Fill every key with its built-in default. */
void config_init(struct roomd_config *cfg);
void config_free(struct roomd_config *cfg);

/* Set one key from its text value. Dashes in KEY count as underscores.
 * Returns 0, or -1 with a message naming the key in ERR. */
int config_set(struct roomd_config *cfg, const char *key, const char *value, char *err,
               size_t errlen);

/* Read a key = value file ('#' starts a comment). Returns 0, or -1 with the
 * file, line and key in ERR (or the file and why it could not be read). */
int config_load_file(struct roomd_config *cfg, const char *path, char *err, size_t errlen);

/* Checks across keys and of values a key's type cannot say; 0 or -1 with
 * ERR naming the key and where it was set (file and line). */
int config_validate(const struct roomd_config *cfg, char *err, size_t errlen);

/* Call FN(NAME, ARG) for each room of the comma-separated starting_rooms
 * list LIST, spaces around a name dropped, until FN returns a positive
 * value.  Returns that value, 0 when all passed, or -1 at once on an empty
 * name ("a,,b"; an empty LIST is no rooms). */
int config_each_starting_room(const char *list, int (*fn)(const char *name, void *arg), void *arg);

/* Print every key, its default and meaning (for --help). */
void config_print_keys(FILE *out);

#endif
