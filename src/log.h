/* log.h -- leveled log lines to stderr (journald picks them up). */
#ifndef ROOMD_LOG_H
#define ROOMD_LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Parse "debug", "info", "warn"/"warning", "error"; -1 when unknown. */
int log_level_parse(const char *name);
void log_set_level(enum log_level level);
/* Log to PATH (appending), or to stderr when PATH is empty; also the SIGHUP
 * reopen after logrotate.  Returns 0, or -1 (logging stays where it was). */
int log_reopen(const char *path);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
