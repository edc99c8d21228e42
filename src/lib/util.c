/* util — see util.h. */
#include "lib/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/json.h"

int
fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

int
fd_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

int
write_full(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int
parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int
parse_scaled(const char *s, const char *units, const uint64_t *mult,
	     uint64_t *out)
{
	char num[32];
	size_t n = strlen(s);
	uint64_t v, m = 1;
	const char *u;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	if ((u = strchr(units, num[n - 1])) != NULL && num[n - 1] != '\0') {
		m = mult[u - units];
		num[n - 1] = '\0';
	}
	if (parse_u64(num, &v) < 0 || (v != 0 && m > UINT64_MAX / v))
		return -1;
	*out = v * m;
	return 0;
}

int
parse_size(const char *s, uint64_t *out)
{
	static const uint64_t mult[] = {1024,	 1024,	     1048576,
					1048576, 1073741824, 1073741824};
	return parse_scaled(s, "kKmMgG", mult, out);
}

int
parse_duration(const char *s, uint64_t *out)
{
	static const uint64_t mult[] = {1, 60, 3600, 86400, 604800};
	return parse_scaled(s, "smhdw", mult, out);
}

int
parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	uint64_t port;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		hl = (size_t)(end - s - 1);
		colon = end + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (parse_u64(colon + 1, &port) < 0 || port > 65535)
		return -1;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

int
parse_cidr(const char *s, struct sockaddr_storage *net, int *prefix)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t p = 0;

	memset(net, 0, sizeof(*net));
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (slash && parse_u64(slash + 1, &p) < 0)
		return -1;
	struct sockaddr_in *sin = (struct sockaddr_in *)net;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)net;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		if (!slash)
			p = 32;
		if (p > 32)
			return -1;
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		if (!slash)
			p = 128;
		if (p > 128)
			return -1;
	} else {
		return -1;
	}
	*prefix = (int)p;
	return 0;
}

static bool
bits_match(const void *va, const void *vb, int prefix)
{
	const unsigned char *a = va, *b = vb;
	int full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool
cidr_match(const struct sockaddr_storage *net, int prefix,
	   const struct sockaddr *addr)
{
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
	struct in_addr v4;
	const void *abytes;
	int afam = addr->sa_family;

	if (afam == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
		memcpy(&v4, &a6->sin6_addr.s6_addr[12], 4);
		abytes = &v4;
		afam = AF_INET;
	} else if (afam == AF_INET6) {
		abytes = &a6->sin6_addr;
	} else {
		abytes = &((const struct sockaddr_in *)addr)->sin_addr;
	}
	if (afam != net->ss_family)
		return false;
	if (afam == AF_INET)
		return bits_match(abytes,
				  &((const struct sockaddr_in *)net)->sin_addr,
				  prefix);
	return bits_match(
	    abytes, &((const struct sockaddr_in6 *)net)->sin6_addr, prefix);
}

void
sockaddr_ntop(const struct sockaddr *sa, char *dst, size_t len)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			  dst, (socklen_t)len);
	} else if (sa->sa_family == AF_INET6 &&
		   IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], dst,
			  (socklen_t)len);
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &s6->sin6_addr, dst, (socklen_t)len);
	} else {
		snprintf(dst, len, "local");
	}
}

int
sockaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

int
json_str(struct buf *b, const char *s)
{
	return json_escape(b, s, strlen(s), (size_t)-1, NULL);
}

int
mkdir_p(const char *path, unsigned mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0) {
		struct stat st;

		/* EEXIST also covers a file or dangling symlink in the way */
		if (errno != EEXIST || stat(tmp, &st) < 0)
			return -1;
		if (!S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			return -1;
		}
	}
	return 0;
}
