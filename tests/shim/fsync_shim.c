/*
 * fsync_shim — a test-only LD_PRELOAD library that makes fsync(2) and
 * fdatasync(2) slow or failing for chosen files, to simulate a slow or
 * failing disk under a real todoku. Built by meson, never installed.
 *
 * It interposes fsync and fdatasync only: SQLite (Debian's build) calls
 * fdatasync and nothing else of the family (no msync, no
 * sync_file_range), and todoku's own body/Maildir syncs are fsync or
 * fdatasync. A call "matches" when the path of its fd (readlink of
 * /proc/self/fd/N) contains TODOKU_SHIM_MATCH; calls that do not match
 * go straight to libc. For matching calls, controlled by the
 * environment (read once, at the first call):
 *
 *   TODOKU_SHIM_MATCH=SUBSTR       which files (required; unset = inert)
 *   TODOKU_SHIM_DELAY_US=N         sleep N µs before the real call
 *   TODOKU_SHIM_FAIL=eio:N         the Nth matching call of this process
 *   TODOKU_SHIM_FAIL=enospc:N      fails once with EIO/ENOSPC, without
 *                                  calling the real one (after the delay)
 *   TODOKU_SHIM_FAIL=eio           with TODOKU_SHIM_TRIGGER: fail the
 *   TODOKU_SHIM_TRIGGER=FILE       first matching call (of any process)
 *                                  that finds FILE and can unlink it,
 *                                  i.e. once, when the test says so
 *   TODOKU_SHIM_LOG=FILE           append one line per matching call:
 *                                  "pid func path result t0 t1" (result
 *                                  0 or an errno name; t0/t1 are
 *                                  CLOCK_MONOTONIC seconds at entry and
 *                                  return), O_APPEND: forks may share it
 *
 * It owns nothing but its configuration; it never changes a call that
 * does not match and never retries or hides a real failure.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);

static struct {
	const char *match;
	long delay_us;
	int fail_errno;
	unsigned long fail_nth; /* 0: by trigger file */
	const char *trigger;
	const char *log;
	int (*real_fsync)(int);
	int (*real_fdatasync)(int);
} shim;

static pthread_once_t shim_once = PTHREAD_ONCE_INIT;
static unsigned long shim_calls; /* matching calls, atomic */

static void
shim_init(void)
{
	const char *fail = getenv("TODOKU_SHIM_FAIL");
	const char *delay = getenv("TODOKU_SHIM_DELAY_US");
	const char *colon;

	shim.real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	shim.real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	shim.match = getenv("TODOKU_SHIM_MATCH");
	shim.delay_us = delay ? atol(delay) : 0;
	shim.trigger = getenv("TODOKU_SHIM_TRIGGER");
	shim.log = getenv("TODOKU_SHIM_LOG");
	if (fail != NULL && *fail != '\0') {
		shim.fail_errno =
		    strncmp(fail, "enospc", 6) == 0 ? ENOSPC : EIO;
		colon = strchr(fail, ':');
		shim.fail_nth = colon ? strtoul(colon + 1, NULL, 10) : 0;
	}
}

static int
shim_matches(int fd, char *path, size_t n)
{
	char link[64];
	ssize_t len;

	if (shim.match == NULL || *shim.match == '\0')
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	len = readlink(link, path, n - 1);
	if (len < 0)
		return 0;
	path[len] = '\0';
	return strstr(path, shim.match) != NULL;
}

static int
shim_should_fail(unsigned long nth)
{
	if (shim.fail_errno == 0)
		return 0;
	if (shim.fail_nth > 0)
		return nth == shim.fail_nth;
	/* trigger file: whoever unlinks it takes the one failure */
	return shim.trigger != NULL && unlink(shim.trigger) == 0;
}

static double
shim_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
shim_log(const char *func, const char *path, int err, double t0, double t1)
{
	char line[PATH_MAX + 128];
	int fd, n;

	if (shim.log == NULL)
		return;
	n = snprintf(line, sizeof(line), "%ld %s %s %s %.6f %.6f\n",
		     (long)getpid(), func, path,
		     err == 0	     ? "0"
		     : err == EIO    ? "EIO"
		     : err == ENOSPC ? "ENOSPC"
				     : "ERR",
		     t0, t1);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return;
	fd = open(shim.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) < 0) {
		/* nothing to do: the log is best effort */
	}
	close(fd);
}

static int
shim_call(int fd, int data_only)
{
	int (*real)(int);
	const char *func = data_only ? "fdatasync" : "fsync";
	char path[PATH_MAX];
	double t0;
	int rc, err, fail;

	pthread_once(&shim_once, shim_init);
	real = data_only ? shim.real_fdatasync : shim.real_fsync;
	if (!shim_matches(fd, path, sizeof(path)))
		return real(fd);
	t0 = shim_now();
	fail = shim_should_fail(
	    __atomic_add_fetch(&shim_calls, 1, __ATOMIC_SEQ_CST));
	if (shim.delay_us > 0) {
		struct timespec d = {shim.delay_us / 1000000,
				     (shim.delay_us % 1000000) * 1000};
		while (nanosleep(&d, &d) < 0 && errno == EINTR)
			;
	}
	if (fail) {
		rc = -1;
		err = shim.fail_errno;
	} else {
		rc = real(fd);
		err = rc < 0 ? errno : 0;
	}
	shim_log(func, path, err, t0, shim_now());
	if (rc < 0)
		errno = err;
	return rc;
}

int
fsync(int fd)
{
	return shim_call(fd, 0);
}

int
fdatasync(int fd)
{
	return shim_call(fd, 1);
}
