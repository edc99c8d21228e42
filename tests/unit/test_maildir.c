/*
 * test_maildir — maildir_deliver in a fresh mkdtemp tree per test.
 *
 * Layout: ROOT/example.com is the domain's mailbox root (exists),
 * ROOT/example.com/alice the Maildir (created by the first delivery),
 * ROOT/elsewhere a directory symlinks point at, ROOT/body the message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "todoku/maildir.h"

#define T_PREFIX "Return-Path: <a@example.org>\r\nDelivered-To: alice\r\n"

struct fx {
	char root[64];
	char domain[128];
	char md[160];
	char elsewhere[128];
	int body_fd;
	char err[512];
};

static void
path(char *dst, size_t len, const char *a, const char *b)
{
	int n = snprintf(dst, len, "%s/%s", a, b);

	assert_true(n > 0 && (size_t)n < len);
}

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	char body[192];

	snprintf(f->root, sizeof f->root, "/tmp/test_maildir.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	path(f->domain, sizeof f->domain, f->root, "example.com");
	path(f->md, sizeof f->md, f->domain, "alice");
	path(f->elsewhere, sizeof f->elsewhere, f->root, "elsewhere");
	assert_int_equal(mkdir(f->domain, 0700), 0);
	assert_int_equal(mkdir(f->elsewhere, 0700), 0);
	path(body, sizeof body, f->root, "body");
	f->body_fd = open(body, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(f->body_fd >= 0);
	*state = f;
	return 0;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	chmod(p, 0700);
	return remove(p);
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	close(f->body_fd);
	chmod(f->md, 0700);
	nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	xfree(f);
	return 0;
}

static void
set_body(struct fx *f, const char *p, size_t n, off_t leave_at)
{
	assert_int_equal(ftruncate(f->body_fd, 0), 0);
	assert_int_equal(pwrite(f->body_fd, p, n, 0), (ssize_t)n);
	assert_int_equal(lseek(f->body_fd, leave_at, SEEK_SET), leave_at);
}

/* Number of entries in dir (without . and ..); name of the last one. */
static int
count(const char *dir, char *name, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (name != NULL)
			snprintf(name, len, "%s", e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static int
count_sub(const struct fx *f, const char *sub, char *name, size_t len)
{
	char p[200];

	path(p, sizeof p, f->md, sub);
	return count(p, name, len);
}

/* Contents of md/new/<name> into b. */
static void
read_new(const struct fx *f, const char *name, struct buf *b)
{
	char p[512];
	char chunk[65536];
	ssize_t n;
	int fd;

	snprintf(p, sizeof p, "%s/new/%s", f->md, name);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	buf_init(b, 8u << 20);
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		assert_int_equal(buf_add(b, chunk, (size_t)n), 0);
	assert_int_equal(n, 0);
	close(fd);
}

static enum maildir_result
deliver(struct fx *f, const char *dir)
{
	return maildir_deliver(dir, T_PREFIX, strlen(T_PREFIX), f->body_fd,
			       f->err, sizeof f->err);
}

/* The unique name: digits ".M" digits "P" digits "Q" digits "." host. */
static void
check_name(const char *name)
{
	const char *marks[] = {".M", "P", "Q", "."};
	const char *p = name;
	size_t i;

	assert_null(strchr(name, ':'));
	assert_null(strchr(name, '/'));
	for (i = 0; i < 4; i++) {
		assert_true(*p >= '0' && *p <= '9');
		while (*p >= '0' && *p <= '9')
			p++;
		assert_true(strncmp(p, marks[i], strlen(marks[i])) == 0);
		p += strlen(marks[i]);
	}
	assert_true(*p != '\0');
}

static void
test_deliver_basic(void **state)
{
	struct fx *f = *state;
	static const char body[] = "Subject: hi\r\n\r\nline one\r\n"
				   "bare\rcr stays\r\nlast\r";
	static const char want[] = "Return-Path: <a@example.org>\n"
				   "Delivered-To: alice\n"
				   "Subject: hi\n\nline one\n"
				   "bare\rcr stays\nlast\r";
	char name[256], name2[256];
	struct buf b;
	struct stat st;
	char p[200];

	set_body(f, body, sizeof body - 1, 7);
	assert_int_equal(deliver(f, f->md), MAILDIR_OK);
	assert_string_equal(f->err, "");
	assert_int_equal(lseek(f->body_fd, 0, SEEK_CUR), 7);
	assert_int_equal(count_sub(f, "new", name, sizeof name), 1);
	assert_int_equal(count_sub(f, "tmp", NULL, 0), 0);
	assert_int_equal(count_sub(f, "cur", NULL, 0), 0);
	check_name(name);
	path(p, sizeof p, f->md, "cur");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	read_new(f, name, &b);
	assert_int_equal(b.len, sizeof want - 1);
	assert_memory_equal(b.data, want, sizeof want - 1);
	buf_free(&b);

	/* a second delivery gets its own name; the first is untouched */
	assert_int_equal(deliver(f, f->md), MAILDIR_OK);
	assert_int_equal(count_sub(f, "new", name2, sizeof name2), 2);
	assert_int_equal(count_sub(f, "tmp", NULL, 0), 0);
}

static void
test_trailing_slash(void **state)
{
	struct fx *f = *state;
	char dir[200];

	set_body(f, "x\r\n", 3, 0);
	snprintf(dir, sizeof dir, "%s/", f->md);
	assert_int_equal(deliver(f, dir), MAILDIR_OK);
	assert_int_equal(count_sub(f, "new", NULL, 0), 1);
}

static void
test_symlinked_maildir(void **state)
{
	struct fx *f = *state;

	set_body(f, "x\r\n", 3, 0);
	assert_int_equal(symlink(f->elsewhere, f->md), 0);
	assert_int_equal(deliver(f, f->md), MAILDIR_PERM);
	assert_non_null(strstr(f->err, "symbolic link"));
	assert_true(strncmp(f->err, "maildir ", 8) == 0);
	assert_int_equal(count(f->elsewhere, NULL, 0), 0);
}

static void
test_symlinked_subdir(void **state)
{
	struct fx *f = *state;
	const char *subs[] = {"new", "tmp", "cur"};
	char p[200];
	size_t i;

	set_body(f, "x\r\n", 3, 0);
	assert_int_equal(mkdir(f->md, 0700), 0);
	for (i = 0; i < 3; i++) {
		path(p, sizeof p, f->md, subs[i]);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	for (i = 0; i < 3; i++) {
		char other[200];

		path(p, sizeof p, f->md, subs[i]);
		path(other, sizeof other, f->root, subs[i]);
		assert_int_equal(mkdir(other, 0700), 0);
		assert_int_equal(rmdir(p), 0);
		assert_int_equal(symlink(other, p), 0);
		assert_int_equal(deliver(f, f->md), MAILDIR_PERM);
		assert_non_null(strstr(f->err, subs[i]));
		assert_non_null(strstr(f->err, "symbolic link"));
		assert_int_equal(count(other, NULL, 0), 0);
		assert_int_equal(unlink(p), 0);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	assert_int_equal(count_sub(f, "tmp", NULL, 0), 0);
	assert_int_equal(count_sub(f, "new", NULL, 0), 0);
	assert_int_equal(deliver(f, f->md), MAILDIR_OK);
}

static void
test_missing_parent(void **state)
{
	struct fx *f = *state;
	char dir[200], gone[200];

	set_body(f, "x\r\n", 3, 0);
	path(gone, sizeof gone, f->root, "nosuch.example");
	path(dir, sizeof dir, gone, "alice");
	assert_int_equal(deliver(f, dir), MAILDIR_TEMP);
	assert_non_null(strstr(f->err, "open parent"));
	assert_non_null(strstr(f->err, dir));
	assert_int_equal(access(gone, F_OK), -1);
}

static void
test_maildir_is_file(void **state)
{
	struct fx *f = *state;
	int fd = open(f->md, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	close(fd);
	set_body(f, "x\r\n", 3, 0);
	assert_int_equal(deliver(f, f->md), MAILDIR_PERM);
}

static void
test_bad_body_fd(void **state)
{
	struct fx *f = *state;

	assert_int_equal(maildir_deliver(f->md, T_PREFIX, strlen(T_PREFIX), -1,
					 f->err, sizeof f->err),
			 MAILDIR_TEMP);
	assert_non_null(strstr(f->err, "read body"));
	assert_int_equal(count_sub(f, "tmp", NULL, 0), 0);
	assert_int_equal(count_sub(f, "new", NULL, 0), 0);
}

/* 1 MiB of CRLF lines, with a CRLF split across the 64 KiB read size. */
static void
test_large_body(void **state)
{
	struct fx *f = *state;
	size_t n = 1u << 20, i, o = strlen(T_PREFIX) - 2;
	char *body = xmalloc(n), *want = xmalloc(n + 64);
	char name[256];
	struct buf b;

	for (i = 0; i < n; i++)
		body[i] = (char)('a' + i % 26);
	for (i = 77; i + 1 < n; i += 80) {
		body[i] = '\r';
		body[i + 1] = '\n';
	}
	body[65535] = '\r';
	body[65536] = '\n';
	body[131071] = '\r'; /* a lone CR at a chunk end stays */
	body[131072] = 'x';
	memcpy(want, "Return-Path: <a@example.org>\nDelivered-To: alice\n", o);
	for (i = 0; i < n; i++)
		if (!(body[i] == '\r' && i + 1 < n && body[i + 1] == '\n'))
			want[o++] = body[i];
	set_body(f, body, n, (off_t)n);
	assert_int_equal(deliver(f, f->md), MAILDIR_OK);
	assert_int_equal(lseek(f->body_fd, 0, SEEK_CUR), (off_t)n);
	assert_int_equal(count_sub(f, "new", name, sizeof name), 1);
	read_new(f, name, &b);
	assert_int_equal(b.len, o);
	assert_memory_equal(b.data, want, o);
	buf_free(&b);
	xfree(body);
	xfree(want);
}

static void
test_readonly(void **state)
{
	struct fx *f = *state;
	char p[200];

	if (geteuid() == 0)
		skip(); /* root ignores the mode bits */
	set_body(f, "x\r\n", 3, 0);
	assert_int_equal(deliver(f, f->md), MAILDIR_OK);
	path(p, sizeof p, f->md, "tmp");
	assert_int_equal(chmod(p, 0500), 0);
	assert_int_equal(deliver(f, f->md), MAILDIR_PERM);
	assert_non_null(strstr(f->err, "create tmp file"));
	assert_int_equal(count_sub(f, "new", NULL, 0), 1);
	assert_int_equal(chmod(p, 0700), 0);
}

/* Same key twice (a redelivery after a crash): one file, both OK. */
static void
test_deliver_once(void **state)
{
	struct fx *f = *state;
	char name[256];

	set_body(f, "Subject: x\r\n\r\nbody\r\n", 21, 0);
	assert_int_equal(maildir_deliver_once(f->md, "1700000000.QABCR7",
					      T_PREFIX, strlen(T_PREFIX),
					      f->body_fd, f->err,
					      sizeof f->err),
			 MAILDIR_OK);
	assert_int_equal(maildir_deliver_once(f->md, "1700000000.QABCR7",
					      T_PREFIX, strlen(T_PREFIX),
					      f->body_fd, f->err,
					      sizeof f->err),
			 MAILDIR_OK);
	assert_int_equal(count_sub(f, "new", name, sizeof name), 1);
	assert_int_equal(strncmp(name, "1700000000.QABCR7.", 18), 0);
	assert_int_equal(count_sub(f, "tmp", NULL, 0), 0);
	/* another recipient of the same message is another file */
	assert_int_equal(maildir_deliver_once(f->md, "1700000000.QABCR8",
					      T_PREFIX, strlen(T_PREFIX),
					      f->body_fd, f->err,
					      sizeof f->err),
			 MAILDIR_OK);
	assert_int_equal(count_sub(f, "new", NULL, 0), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_deliver_basic, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_trailing_slash, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_symlinked_maildir, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_symlinked_subdir, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_missing_parent, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_maildir_is_file, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_bad_body_fd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deliver_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
