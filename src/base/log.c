#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "halton/log.h"

static FILE *log_file;		/* NULL = stderr */
static char *log_path;
static enum log_level log_level = LOG_INFO;

static const char *const level_names[] = {
	[LOG_ERROR] = "error",
	[LOG_WARN] = "warn",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

int
log_open(const char *path)
{
	FILE *f;
	char *copy;

	if (path == NULL) {
		log_close();
		return 0;
	}
	if ((f = fopen(path, "a")) == NULL)
		return -1;
	if ((copy = strdup(path)) == NULL) {
		fclose(f);
		return -1;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	log_close();
	log_file = f;
	log_path = copy;
	return 0;
}

int
log_reopen(void)
{
	FILE *f;

	if (log_path == NULL)
		return 0;
	if ((f = fopen(log_path, "a")) == NULL)
		return -1;
	setvbuf(f, NULL, _IOLBF, 0);
	fclose(log_file);
	log_file = f;
	return 0;
}

void
log_close(void)
{
	if (log_file != NULL)
		fclose(log_file);
	log_file = NULL;
	free(log_path);
	log_path = NULL;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return level_names[level];
}

static void
log_vmsg(enum log_level level, const char *suffix, const char *fmt,
    va_list ap)
{
	FILE *out = log_file != NULL ? log_file : stderr;
	char stamp[32];
	struct timespec ts;
	struct tm tm;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(out, "%s.%03ldZ %s: ", stamp, ts.tv_nsec / 1000000,
	    level_names[level]);
	vfprintf(out, fmt, ap);
	if (suffix != NULL)
		fprintf(out, ": %s", suffix);
	fputc('\n', out);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	const char *cause = strerror(errno);

	va_start(ap, fmt);
	log_vmsg(LOG_WARN, cause, fmt, ap);
	va_end(ap);
}

#define LOG_FN(name, level)                                                \
	void name(const char *fmt, ...)                                    \
	{                                                                  \
		va_list ap;                                                \
		va_start(ap, fmt);                                         \
		log_vmsg(level, NULL, fmt, ap);                            \
		va_end(ap);                                                \
	}

LOG_FN(log_warnx, LOG_WARN)
LOG_FN(log_info, LOG_INFO)
LOG_FN(log_debug, LOG_DEBUG)
LOG_FN(log_error, LOG_ERROR)

static void
libevent_log_cb(int severity, const char *msg)
{
	enum log_level level;

	switch (severity) {
	case EVENT_LOG_DEBUG:
		level = LOG_DEBUG;
		break;
	case EVENT_LOG_MSG:
		level = LOG_INFO;
		break;
	case EVENT_LOG_WARN:
		level = LOG_WARN;
		break;
	default:
		level = LOG_ERROR;
		break;
	}
	log_msg(level, "libevent: %s", msg);
}

void
log_libevent_init(void)
{
	event_set_log_callback(libevent_log_cb);
}
