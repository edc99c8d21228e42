/*
 * util — small generic helpers: fd flags, full writes, number parsing,
 * sockaddr text, JSON string escaping.
 *
 * Nothing here knows about mail.
 */
#ifndef TODOKU_LIB_UTIL_H
#define TODOKU_LIB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/buf.h"

int fd_nonblock(int fd);
int fd_cloexec(int fd);
/* write all of p, retrying EINTR; -1 on error */
int write_full(int fd, const void *p, size_t n);
/* strict decimal; -1 on junk or overflow */
int parse_u64(const char *s, uint64_t *out);
/* "25M", "128K", "1G", plain bytes */
int parse_size(const char *s, uint64_t *out);
/* "30s", "5m", "4h", "5d", plain seconds */
int parse_duration(const char *s, uint64_t *out);
/* "1.2.3.4:25", "[::1]:25" -> sockaddr; -1 on junk */
int parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* "127.0.0.0/8", "::1", "::1/128" */
int parse_cidr(const char *s, struct sockaddr_storage *net, int *prefix);
bool cidr_match(const struct sockaddr_storage *net, int prefix,
		const struct sockaddr *addr);
/* address text without port ("127.0.0.1", "::1"); IPv4-mapped unmapped */
void sockaddr_ntop(const struct sockaddr *sa, char *dst, size_t len);
int sockaddr_port(const struct sockaddr *sa);
/* append s as a JSON string literal (with quotes) */
int json_str(struct buf *b, const char *s);
/* mkdir -p with mode; 0 or -1 with errno */
int mkdir_p(const char *path, unsigned mode);

#endif
