/*
 * log — one line per event, to stderr or syslog.
 *
 * Failure kinds (one verb each, after Postfix's msg.c):
 *   log_panic  a bug in todoku: log and abort() (core for the developer)
 *   log_fatal  a broken environment: log and exit(1)
 *   log_err/log_warn/log_info/log_debug  ordinary events
 *
 * Lines carry the process role as prefix ("todoku/smtp-in[pid]: ...").
 * Untrusted bytes must pass through log_escape() before they are logged;
 * it makes control characters and non-ASCII visible as \xNN.
 */
#ifndef TODOKU_LIB_LOG_H
#define TODOKU_LIB_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *role, int use_syslog, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_set_role(const char *role);
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void log_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Escape n bytes of src into dst (size dstlen, always terminated).
 * Printable ASCII is kept; everything else becomes \xNN, backslash \\.
 * Truncates with "..." when dst is too small. Returns dst.
 */
char *log_escape(char *dst, size_t dstlen, const void *src, size_t n);

#endif
