/*
 * log: leveled logging to stderr or a file, with timestamps.
 *
 * Nothing secret is ever passed to these functions: no API key, prompt,
 * completion or credential.  Callers log hosts, paths, statuses and counts.
 */
#ifndef HALTON_LOG_H
#define HALTON_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets where logs go: NULL = stderr.  Returns 0, or -1 (errno) if the file
 * cannot be opened (logging then stays where it was). */
int log_open(const char *path);
/* Reopens the current log file (after rotation, on SIGHUP). */
int log_reopen(void);
void log_close(void);
void log_set_level(enum log_level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 if unknown. */
int log_level_parse(const char *, enum log_level *);
const char *log_level_name(enum log_level);
/* Routes libevent's internal messages through this log. */
void log_libevent_init(void);

#if defined(__GNUC__)
#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LOG_PRINTF(a, b)
#endif

void log_msg(enum log_level, const char *, ...) LOG_PRINTF(2, 3);
/* log_warn appends ": strerror(errno)"; log_warnx does not (OpenBSD). */
void log_warn(const char *, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *, ...) LOG_PRINTF(1, 2);
void log_info(const char *, ...) LOG_PRINTF(1, 2);
void log_debug(const char *, ...) LOG_PRINTF(1, 2);
void log_error(const char *, ...) LOG_PRINTF(1, 2);

#endif
