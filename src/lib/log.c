/* log — see log.h. */
#include "lib/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char log_role[32] = "todoku";
static int log_syslog;
static enum log_level log_level = LOG_LVL_INFO;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

/*
 * The pid in every stderr line, asked once per process instead of once
 * per line (glibc does not cache getpid(), so each line cost a system
 * call); a child of fork() asks again in its atfork handler.
 */
static pid_t log_pid_cached;
static pthread_once_t log_pid_once = PTHREAD_ONCE_INIT;

static void
log_pid_refresh(void)
{
	log_pid_cached = getpid();
}

static void
log_pid_init(void)
{
	log_pid_refresh();
	pthread_atfork(NULL, NULL, log_pid_refresh);
}

static pid_t
log_pid(void)
{
	pthread_once(&log_pid_once, log_pid_init);
	return log_pid_cached;
}

void
log_init(const char *role, int use_syslog, enum log_level level)
{
	log_set_role(role);
	log_syslog = use_syslog;
	log_level = level;
	if (use_syslog)
		openlog("todoku", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_role(const char *role)
{
	snprintf(log_role, sizeof(log_role), "%s", role);
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

const char *
log_level_name(enum log_level level)
{
	return level_names[level];
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warn") == 0) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -1;
}

static void log_vemit(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
log_vemit(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[4096];
	int saved = errno;

	if (level > log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_syslog) {
		syslog(prio[level], "%s: %s", log_role, line);
	} else {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ todoku/%s[%d]: %s%s\n", stamp,
			ts.tv_nsec / 1000000, log_role, (int)log_pid(),
			level <= LOG_LVL_WARN
			    ? (level == LOG_LVL_ERR ? "error: " : "warning: ")
			    : "",
			line);
	}
	errno = saved;
}

#define LOG_FN(name, lvl)                                                      \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_vemit(lvl, fmt, ap);                                       \
		va_end(ap);                                                    \
	}

LOG_FN(log_err, LOG_LVL_ERR)
LOG_FN(log_warn, LOG_LVL_WARN)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	abort();
}

char *
log_escape(char *dst, size_t dstlen, const void *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = src;
	size_t o = 0;

	if (dstlen == 0)
		return dst;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		size_t need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1
			      : c == '\\'			   ? 2
								   : 4;
		if (o + need + 4 > dstlen) {
			if (o + 3 < dstlen) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			dst[o++] = (char)c;
		} else if (need == 2) {
			dst[o++] = '\\';
			dst[o++] = '\\';
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}
