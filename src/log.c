/* log.c -- one line per event: timestamp, level, text.
 *
 * Each line is formatted into a local buffer and written with a single
 * write(2), so lines from different threads never interleave. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static _Atomic int log_threshold = LOG_LVL_INFO;
static _Atomic int log_fd = STDERR_FILENO;
/* log_file = syslog: lines go to syslog(3) with their level. */
static _Atomic bool log_to_syslog;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *name)
{
    if (strcasecmp(name, "warning") == 0)
        return LOG_LVL_WARN;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void log_set_level(enum log_level level)
{
    log_threshold = level;
}

int log_reopen(const char *path)
{
    if (path && strcmp(path, "syslog") == 0) {
        openlog("roomd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        log_to_syslog = true;
        return 0;
    }
    log_to_syslog = false;
    int fd = STDERR_FILENO;
    if (path && *path) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return -1;
    }
    int old = atomic_exchange(&log_fd, fd);
    if (old != STDERR_FILENO)
        close(old); /* a line being written to it at this moment may be lost */
    return 0;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level < log_threshold)
        return;
    if (log_to_syslog) {
        static const int priorities[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        va_list ap;
        va_start(ap, fmt);
        vsyslog(priorities[level], fmt, ap);
        va_end(ap);
        return;
    }
    char line[1024];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - n, ".%03d [%s] ", (int)(tv.tv_usec / 1000),
                  level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    n = (len < 0) ? n : n + (size_t)len;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t rc = write(atomic_load(&log_fd), line, n);
    (void)rc;
}
