/*
 * ctl — see ctl.h.
 */
#include "todoku/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "mail/conf.h"

static int
ctl_connect(const struct conf *conf)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;
	int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s",
			 conf->spool, CTL_SOCKET_NAME);

	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		fprintf(stderr,
			"todoku: spool path too long for a socket: %s\n",
			conf->spool);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr,
			"todoku: cannot reach the daemon at %s: %s\n"
			"todoku: is `todoku serve` running with this "
			"configuration (%s)?\n",
			sun.sun_path, strerror(errno), conf->path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
ctl_request(const struct conf *conf, const char *request)
{
	struct buf answer;
	char tmp[8192];
	ssize_t r;
	char *nl;
	int fd = ctl_connect(conf);

	if (fd < 0)
		return 69;
	if (write_full(fd, request, strlen(request)) < 0 ||
	    write_full(fd, "\n", 1) < 0) {
		fprintf(stderr, "todoku: control socket: %s\n",
			strerror(errno));
		close(fd);
		return 69;
	}
	buf_init(&answer, 256u * 1024 * 1024);
	while ((r = read(fd, tmp, sizeof(tmp))) > 0)
		if (buf_add(&answer, tmp, (size_t)r) < 0)
			break;
	close(fd);
	nl = answer.data ? strchr(answer.data, '\n') : NULL;
	if (nl == NULL) {
		fprintf(stderr, "todoku: the daemon closed the control "
				"connection without an answer\n");
		buf_free(&answer);
		return 69;
	}
	*nl = '\0';
	if (strcmp(answer.data, "ok") != 0) {
		const char *msg = answer.data;
		if (strncmp(msg, "error ", 6) == 0)
			msg += 6;
		fprintf(stderr, "todoku: %s\n", msg);
		buf_free(&answer);
		return 1;
	}
	fwrite(nl + 1, 1, answer.len - (size_t)(nl + 1 - answer.data), stdout);
	buf_free(&answer);
	return 0;
}
