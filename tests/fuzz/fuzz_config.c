/* fuzz_config.c -- libFuzzer harness for the configuration parsers
 * (src/config.h): config_load_file() on any file and config_set() on any
 * --key=value, each into a local struct roomd_config (config_init /
 * config_free; the global `settings` is never touched), then
 * config_validate().
 *
 * Input layout: byte 0 picks the mode.
 *   even: the rest is a configuration file, handed to config_load_file()
 *         through a memfd (/proc/self/fd/N).  Oracle: the same text cut into
 *         lines here and applied with config_set() to a second struct --
 *         blank lines and '#' lines skipped, key and value trimmed of white
 *         space, one pair of surrounding double quotes taken off the value,
 *         a line without '=' an error that stops the file.  Both structs
 *         must end equal, with the same result, whatever the length of a
 *         line (config.c once cut lines of 4095+ bytes in two; found here).
 *         Texts with a NUL byte are only checked for crashes.
 *   odd:  the rest is KEY=VALUE (cut at the first '='), as the command
 *         line gives it, to config_set().
 * Every error comes with a message; every string setting stays non-NULL.
 * ASan/UBSan (and LeakSanitizer, for replaced strings) catch the rest.
 *
 * Build and run: tests/fuzz/run_fuzz.sh (scripts/test does it). */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

#define MODE_SET 0x01u
#define ERR_LEN 256

/* The lists as written: clang-format refills them differently on each pass. */
// clang-format off
#define STR_FIELDS(X) \
    X(bind) X(websocket_bind) X(admin_bind) X(admin_key) X(store) X(redis_prefix) \
    X(server_id) X(starting_rooms) X(default_room) X(welcome_message) X(token_secret) \
    X(log_level) X(pid_file) X(log_file)
#define NUM_FIELDS(X) \
    X(port) X(websocket_port) X(admin_port) X(workers) X(server_timeout) X(redis_wait) \
    X(announcements) X(max_connections) X(max_line) X(max_room_name) X(max_params) \
    X(output_limit) X(say_rate) X(say_burst) X(idle_timeout) X(room_view_limit)
// clang-format on

static bool configs_equal(const struct roomd_config *a, const struct roomd_config *b)
{
#define CMP_STR(f)                                                                                 \
    if (!a->f || !b->f || strcmp(a->f, b->f) != 0)                                                 \
        return false;
#define CMP_NUM(f)                                                                                 \
    if (a->f != b->f)                                                                              \
        return false;
    STR_FIELDS(CMP_STR)
    NUM_FIELDS(CMP_NUM)
    return true;
}

static void check_error(int rc, const char *err)
{
    if (rc != 0 && (rc != -1 || !*err || strlen(err) >= ERR_LEN))
        abort();
}

static char *trim(char *s, char *end)
{
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

/* The oracle: TEXT (NUL-free, NUL-terminated, modified in place). */
static int model_load(struct roomd_config *cfg, char *text)
{
    char err[ERR_LEN];
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        char *end = nl ? nl : line + strlen(line);
        char *next = nl ? nl + 1 : end;
        char *s = trim(line, end);
        line = next;
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            return -1;
        char *key = trim(s, eq), *value = trim(eq + 1, eq + 1 + strlen(eq + 1));
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        if (config_set(cfg, key, value, err, sizeof(err)) < 0)
            return -1;
    }
    return 0;
}

static void fuzz_file(const char *text, size_t len)
{
    int fd = memfd_create("fuzz_config", 0);
    if (fd < 0)
        abort();
    if (len && write(fd, text, len) != (ssize_t)len)
        abort();
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

    struct roomd_config cfg;
    char err[ERR_LEN] = "";
    config_init(&cfg);
    int rc = config_load_file(&cfg, path, err, sizeof(err));
    close(fd);
    check_error(rc, err);
    char verr[ERR_LEN] = "";
    check_error(config_validate(&cfg, verr, sizeof(verr)), verr);

    if (!memchr(text, '\0', len)) {
        char *copy = malloc(len + 1);
        if (!copy)
            abort();
        memcpy(copy, text, len);
        copy[len] = '\0';
        struct roomd_config want;
        config_init(&want);
        if (model_load(&want, copy) != rc || !configs_equal(&cfg, &want))
            abort();
        config_free(&want);
        free(copy);
    }
    config_free(&cfg);
}

static void fuzz_set(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        abort();
    memcpy(copy, text, len);
    copy[len] = '\0';
    char *eq = strchr(copy, '=');
    const char *value = "";
    if (eq) {
        *eq = '\0';
        value = eq + 1;
    }
    struct roomd_config cfg, before;
    config_init(&cfg);
    config_init(&before);
    char err[ERR_LEN] = "";
    int rc = config_set(&cfg, copy, value, err, sizeof(err));
    check_error(rc, err);
    if (rc != 0 && !configs_equal(&cfg, &before))
        abort(); /* a refused value changes nothing */
    char verr[ERR_LEN] = "";
    check_error(config_validate(&cfg, verr, sizeof(verr)), verr);
    config_free(&cfg);
    config_free(&before);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool set = data[0] & MODE_SET;
    const char *text = (const char *)data + 1;
    size--;
    if (set)
        fuzz_set(text, size);
    else
        fuzz_file(text, size);
    return 0;
}
