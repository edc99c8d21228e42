/*
 * maildir — see maildir.h.
 *
 * Order of work, each step relative to a directory fd:
 *   open parent of DIR; mkdirat DIR (EEXIST is fine); openat DIR with
 *   O_NOFOLLOW; mkdirat + openat tmp, new, cur the same way; create
 *   tmp/UNIQUE (O_EXCL|O_NOFOLLOW); write; fsync; close; renameat
 *   tmp/UNIQUE -> new/UNIQUE; fsync new/.
 *
 * The parent is opened without O_NOFOLLOW: it is the domain's mailbox
 * root from configuration, and operators do link /var/mail elsewhere.
 * Everything below it is opened with O_NOFOLLOW, so a symlink planted at
 * DIR or at tmp/new/cur fails with ELOOP/ENOTDIR before a byte is
 * written.
 *
 * Conversion: prefix and body are one stream; CRLF becomes LF, a CR not
 * followed by LF is kept (the state crosses chunk boundaries).
 *
 * If fsync of new/ fails after the rename, the file is unlinked from
 * new/ again and TEMP returned: a duplicate after the retry is better
 * than a message that a crash could lose after we said "delivered".
 */
#include "todoku/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/util.h"

#define MAILDIR_CHUNK 65536
#define MAILDIR_NAME_MAX 256
#define MAILDIR_CREATE_TRIES 5
#define MAILDIR_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

struct maildir_job {
	const char *dir;
	char *err;
	size_t errlen;
	int parent_fd, md_fd, tmp_fd, new_fd, file_fd;
	char name[MAILDIR_NAME_MAX];
	char final[MAILDIR_NAME_MAX]; /* name in new/, "" = same as tmp */
	int tmp_exists;
	int already; /* an earlier attempt already delivered it */
	/* converter state */
	int pending_cr;
	size_t out_len;
	char out[MAILDIR_CHUNK];
	char in[MAILDIR_CHUNK];
};

static atomic_ulong maildir_counter;

/*
 * Errno → result. Full disk, quota, I/O errors, resource shortages and
 * interruptions pass: retry later. Symlinks, non-directories, permission
 * and read-only file systems need a person: refuse. Anything else
 * (ENOENT for a missing mailbox root, for example an unmounted file
 * system) is treated as temporary, so mail waits for the operator
 * instead of bouncing; it still bounces when the message expires.
 */
static enum maildir_result
maildir_classify(int err)
{
	switch (err) {
	case ELOOP:
	case ENOTDIR:
	case EACCES:
	case EPERM:
	case EROFS:
		return MAILDIR_PERM;
	default:
		return MAILDIR_TEMP;
	}
}

static enum maildir_result
maildir_fail(struct maildir_job *j, const char *step, int err)
{
	const char *why = strerror(err);

	if (err == ELOOP)
		why = "is a symbolic link, refused";
	if (j->err != NULL && j->errlen > 0)
		snprintf(j->err, j->errlen, "maildir %s: %s: %s", j->dir, step,
			 why);
	return maildir_classify(err);
}

/* Split dir into a parent path (in buf) and the last component. */
static const char *
maildir_split(const char *dir, char *buf, size_t len, size_t *baselen)
{
	size_t n = strlen(dir), b;

	while (n > 1 && dir[n - 1] == '/')
		n--;
	b = n;
	while (b > 0 && dir[b - 1] != '/')
		b--;
	*baselen = n - b;
	if (b == 0) {
		snprintf(buf, len, ".");
	} else {
		size_t pl = b > 1 ? b - 1 : 1; /* keep "/" for "/x" */

		if (pl >= len)
			return NULL;
		memcpy(buf, dir, pl);
		buf[pl] = '\0';
	}
	return dir + b;
}

/* mkdirat (EEXIST is fine), then open it without following a link.
 * Linux reports a symlink opened with O_DIRECTORY|O_NOFOLLOW as ENOTDIR;
 * it is turned into ELOOP so the reason names the symlink. */
static int
maildir_subdir(int at, const char *name, int *fd)
{
	struct stat st;

	if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
		return -1;
	*fd = openat(at, name, MAILDIR_DIR_FLAGS);
	if (*fd >= 0)
		return 0;
	if (errno == ENOTDIR &&
	    fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		errno = ELOOP;
	return -1;
}

static enum maildir_result
maildir_open_dirs(struct maildir_job *j)
{
	char parent[4096], base[MAILDIR_NAME_MAX];
	size_t blen;
	const char *b = maildir_split(j->dir, parent, sizeof parent, &blen);
	int cur_fd;

	if (b == NULL || blen == 0 || blen >= sizeof base)
		return maildir_fail(j, "path", ENAMETOOLONG);
	memcpy(base, b, blen);
	base[blen] = '\0';
	j->parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->parent_fd < 0)
		return maildir_fail(j, "open parent", errno);
	if (maildir_subdir(j->parent_fd, base, &j->md_fd) < 0)
		return maildir_fail(j, "open", errno);
	if (maildir_subdir(j->md_fd, "tmp", &j->tmp_fd) < 0)
		return maildir_fail(j, "open tmp", errno);
	if (maildir_subdir(j->md_fd, "new", &j->new_fd) < 0)
		return maildir_fail(j, "open new", errno);
	if (maildir_subdir(j->md_fd, "cur", &cur_fd) < 0)
		return maildir_fail(j, "open cur", errno);
	close(cur_fd);
	return MAILDIR_OK;
}

/* Host name with '/' and ':' escaped as \057 and \072 (the usual Maildir
 * convention); other unusual bytes become '_'. */
static void
maildir_host(char *dst, size_t len)
{
	char h[256];
	size_t i, o = 0;

	if (gethostname(h, sizeof h) < 0 || h[0] == '\0')
		snprintf(h, sizeof h, "localhost");
	h[sizeof h - 1] = '\0';
	for (i = 0; h[i] != '\0' && o + 5 < len; i++) {
		unsigned char ch = (unsigned char)h[i];

		if (ch == '/' || ch == ':') {
			snprintf(dst + o, len - o, "\\%03o", ch);
			o += 4;
		} else {
			dst[o++] = (ch > 0x20 && ch < 0x7f) ? (char)ch : '_';
		}
	}
	dst[o] = '\0';
}

static void
maildir_unique(struct maildir_job *j)
{
	struct timespec ts;
	char host[128];
	unsigned long q = atomic_fetch_add(&maildir_counter, 1);

	clock_gettime(CLOCK_REALTIME, &ts);
	maildir_host(host, sizeof host);
	snprintf(j->name, sizeof j->name, "%lld.M%ldP%ldQ%lu.%s",
		 (long long)ts.tv_sec, ts.tv_nsec / 1000L, (long)getpid(), q,
		 host);
}

static enum maildir_result
maildir_create(struct maildir_job *j)
{
	int i;

	for (i = 0; i < MAILDIR_CREATE_TRIES; i++) {
		maildir_unique(j);
		j->file_fd = openat(
		    j->tmp_fd, j->name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (j->file_fd >= 0) {
			j->tmp_exists = 1;
			return MAILDIR_OK;
		}
		if (errno != EEXIST)
			break;
	}
	return maildir_fail(j, "create tmp file", errno);
}

static int
maildir_flush(struct maildir_job *j)
{
	if (j->out_len == 0)
		return 0;
	if (write_full(j->file_fd, j->out, j->out_len) < 0)
		return -1;
	j->out_len = 0;
	return 0;
}

static int
maildir_emit(struct maildir_job *j, char c)
{
	if (j->out_len == sizeof j->out && maildir_flush(j) < 0)
		return -1;
	j->out[j->out_len++] = c;
	return 0;
}

/* Feed bytes through the CRLF → LF converter. */
static int
maildir_feed(struct maildir_job *j, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (j->pending_cr) {
			j->pending_cr = 0;
			if (p[i] != '\n' && maildir_emit(j, '\r') < 0)
				return -1;
		}
		if (p[i] == '\r') {
			j->pending_cr = 1;
			continue;
		}
		if (maildir_emit(j, p[i]) < 0)
			return -1;
	}
	return 0;
}

static enum maildir_result
maildir_copy_body(struct maildir_job *j, int body_fd)
{
	off_t off = 0;
	ssize_t n;

	for (;;) {
		n = pread(body_fd, j->in, sizeof j->in, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return maildir_fail(j, "read body", errno);
		if (n == 0)
			return MAILDIR_OK;
		if (maildir_feed(j, j->in, (size_t)n) < 0)
			return maildir_fail(j, "write", errno);
		off += n;
	}
}

static enum maildir_result
maildir_write(struct maildir_job *j, const char *prefix, size_t prefix_len,
	      int body_fd)
{
	enum maildir_result r;

	if (prefix_len > 0 && maildir_feed(j, prefix, prefix_len) < 0)
		return maildir_fail(j, "write", errno);
	r = maildir_copy_body(j, body_fd);
	if (r != MAILDIR_OK)
		return r;
	if (j->pending_cr && maildir_emit(j, '\r') < 0)
		return maildir_fail(j, "write", errno);
	if (maildir_flush(j) < 0)
		return maildir_fail(j, "write", errno);
	if (fsync(j->file_fd) < 0)
		return maildir_fail(j, "fsync", errno);
	r = close(j->file_fd) < 0 ? maildir_fail(j, "close", errno)
				  : MAILDIR_OK;
	j->file_fd = -1;
	return r;
}

static enum maildir_result
maildir_commit(struct maildir_job *j)
{
	int err;

	if (j->final[0] == '\0') {
		if (renameat(j->tmp_fd, j->name, j->new_fd, j->name) < 0)
			return maildir_fail(j, "rename into new", errno);
		j->tmp_exists = 0;
	} else {
		/* link, not rename: an existing file means an earlier attempt
		 * (cut off before its result was recorded) delivered it */
		if (linkat(j->tmp_fd, j->name, j->new_fd, j->final, 0) < 0) {
			if (errno != EEXIST)
				return maildir_fail(j, "link into new", errno);
			j->already = 1;
		}
		unlinkat(j->tmp_fd, j->name, 0);
		j->tmp_exists = 0;
		if (j->already)
			return MAILDIR_OK;
		memcpy(j->name, j->final, sizeof(j->name));
	}
	if (fsync(j->new_fd) == 0)
		return MAILDIR_OK;
	err = errno;
	unlinkat(j->new_fd, j->name, 0);
	return maildir_fail(j, "fsync new", err);
}

static void
maildir_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void
maildir_cleanup(struct maildir_job *j)
{
	int saved = errno;

	maildir_close(&j->file_fd);
	if (j->tmp_exists)
		unlinkat(j->tmp_fd, j->name, 0);
	maildir_close(&j->new_fd);
	maildir_close(&j->tmp_fd);
	maildir_close(&j->md_fd);
	maildir_close(&j->parent_fd);
	errno = saved;
}

enum maildir_result
maildir_deliver(const char *dir, const char *prefix, size_t prefix_len,
		int body_fd, char *err, size_t errlen)
{
	return maildir_deliver_once(dir, NULL, prefix, prefix_len, body_fd, err,
				    errlen);
}

enum maildir_result
maildir_deliver_once(const char *dir, const char *key, const char *prefix,
		     size_t prefix_len, int body_fd, char *err, size_t errlen)
{
	struct maildir_job *j = tmalloc(sizeof *j);
	enum maildir_result r;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (j == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "maildir %s: alloc: %s", dir,
				 strerror(ENOMEM));
		return MAILDIR_TEMP;
	}
	memset(j, 0, offsetof(struct maildir_job, out));
	j->dir = dir;
	j->err = err;
	j->errlen = errlen;
	j->parent_fd = j->md_fd = j->tmp_fd = j->new_fd = j->file_fd = -1;
	if (key != NULL) {
		char host[128];
		maildir_host(host, sizeof host);
		snprintf(j->final, sizeof j->final, "%s.%s", key, host);
		if (strchr(key, '/') != NULL || key[0] == '.')
			log_panic("maildir: bad key %s", key);
	}
	r = maildir_open_dirs(j);
	if (r == MAILDIR_OK)
		r = maildir_create(j);
	if (r == MAILDIR_OK)
		r = maildir_write(j, prefix, prefix_len, body_fd);
	if (r == MAILDIR_OK)
		r = maildir_commit(j);
	maildir_cleanup(j);
	xfree(j);
	return r;
}
