/*
 * test_ipc — two endpoints over a real socketpair on one libevent base.
 *
 * Endpoint a sends, endpoint b receives into a log of records; the loop
 * runs until the expected count arrives (a 50 ms tick and a deadline keep
 * a broken endpoint from hanging the test). Panics are checked in a
 * forked child that must die of SIGABRT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/ipc.h"

enum { T_FIELDS = 1, T_EMPTY, T_BIG, T_SMALL, T_FD };

#define BIG_DATA (IPC_MAX_PAYLOAD - 4 - 4) /* u32 seq + data length */

struct rec {
	uint16_t type;
	uint64_t id;
	int fd;
	uint32_t seq;
	int ok; /* payload decoded and checked */
};

struct fx {
	struct event_base *base;
	struct event *tick;
	struct ipc *a, *b;
	struct rec *recs;
	size_t nrecs, caprecs;
	int a_closed, b_closed;
	size_t b_msgs_at_close;
};

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
}

static unsigned char
pattern(uint32_t seq, size_t i)
{
	return (unsigned char)(seq * 31 + i * 7 + (i >> 9));
}

static void
decode_fields(struct ipc_in *in, struct rec *r)
{
	size_t n;
	const void *d;
	int ok = 1;

	ok &= ipc_get_u8(in) == 0xab;
	ok &= ipc_get_u8(in) == 0;
	ok &= ipc_get_u32(in) == 0xdeadbeef;
	ok &= ipc_get_u64(in) == UINT64_MAX;
	ok &= ipc_get_u64(in) == 0x0102030405060708ull;
	ok &= ipc_get_i64(in) == INT64_MIN;
	ok &= ipc_get_i64(in) == -1;
	ok &= strcmp(ipc_get_str(in), "hello, world") == 0;
	ok &= strcmp(ipc_get_str(in), "") == 0; /* sent as NULL */
	ok &= strcmp(ipc_get_str(in), "") == 0;
	ok &= strcmp(ipc_get_str(in), "caf\xc3\xa9") == 0;
	d = ipc_get_data(in, &n);
	ok &= n == 5 && memcmp(d, "a\0b\0c", 5) == 0;
	d = ipc_get_data(in, &n);
	ok &= n == 0;
	ok &= ipc_get_u32(in) == 7;
	ok &= in->err == 0 && in->off == in->len;
	ipc_end(in);
	r->ok = ok;
}

static void
decode_big(struct ipc_in *in, struct rec *r)
{
	size_t n;
	const unsigned char *d;

	r->seq = ipc_get_u32(in);
	d = ipc_get_data(in, &n);
	ipc_end(in);
	r->ok = n == BIG_DATA;
	for (size_t i = 0; r->ok && i < n; i++)
		if (d[i] != pattern(r->seq, i))
			r->ok = 0;
}

static void
b_on_msg(struct ipc *ipc, const struct ipc_hdr *hdr, struct ipc_in *in, int fd,
	 void *arg)
{
	struct fx *f = arg;
	struct rec *r;

	if (f->nrecs == f->caprecs) {
		f->caprecs = f->caprecs ? 2 * f->caprecs : 64;
		f->recs = xrealloc(f->recs, f->caprecs * sizeof *f->recs);
	}
	r = &f->recs[f->nrecs++];
	memset(r, 0, sizeof *r);
	r->type = hdr->type;
	r->id = hdr->id;
	r->fd = fd;
	switch (hdr->type) {
	case T_FIELDS:
		decode_fields(in, r);
		break;
	case T_EMPTY:
		r->ok = in->len == 0;
		ipc_end(in);
		break;
	case T_BIG:
		decode_big(in, r);
		break;
	case T_SMALL:
	case T_FD:
		r->seq = ipc_get_u32(in);
		ipc_end(in);
		r->ok = 1;
		break;
	default:
		fail_msg("unexpected message type %u", hdr->type);
	}
}

static void
a_on_msg(struct ipc *ipc, const struct ipc_hdr *hdr, struct ipc_in *in, int fd,
	 void *arg)
{
	/* b answers nothing in these tests except the close test */
	b_on_msg(ipc, hdr, in, fd, arg);
}

static void
a_on_close(struct ipc *ipc, void *arg)
{
	struct fx *f = arg;

	f->a_closed++;
	f->b_msgs_at_close = f->nrecs;
}

static void
b_on_close(struct ipc *ipc, void *arg)
{
	struct fx *f = arg;

	f->b_closed++;
}

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	struct timeval tv = {0, 50000};
	int sv[2];

	f->base = event_base_new();
	assert_non_null(f->base);
	f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, NULL);
	event_add(f->tick, &tv);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->a = ipc_new(f->base, sv[0], a_on_msg, a_on_close, f);
	f->b = ipc_new(f->base, sv[1], b_on_msg, b_on_close, f);
	assert_int_equal(ipc_fd(f->a), sv[0]);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	for (size_t i = 0; i < f->nrecs; i++)
		if (f->recs[i].fd >= 0)
			close(f->recs[i].fd);
	ipc_free(f->a);
	ipc_free(f->b);
	event_free(f->tick);
	event_base_free(f->base);
	xfree(f->recs);
	xfree(f);
	return 0;
}

/* Run the loop until cond holds; fail after 20 s. */
#define RUN_UNTIL(f, cond)                                                     \
	do {                                                                   \
		time_t deadline_ = time(NULL) + 20;                            \
		while (!(cond) && time(NULL) < deadline_)                      \
			event_base_loop((f)->base, EVLOOP_ONCE);               \
		assert_true(cond);                                             \
	} while (0)

static void
send_u32(struct ipc *ipc, uint16_t type, uint64_t id, int fd, uint32_t v)
{
	struct ipc_out o;

	ipc_out_init(&o);
	ipc_put_u32(&o, v);
	assert_int_equal(ipc_send(ipc, type, id, fd, &o), 0);
	ipc_out_free(&o);
}

static void
test_fields_roundtrip(void **state)
{
	struct fx *f = *state;
	struct ipc_out o;

	ipc_out_init(&o);
	ipc_put_u8(&o, 0xab);
	ipc_put_u8(&o, 0);
	ipc_put_u32(&o, 0xdeadbeef);
	ipc_put_u64(&o, UINT64_MAX);
	ipc_put_u64(&o, 0x0102030405060708ull);
	ipc_put_i64(&o, INT64_MIN);
	ipc_put_i64(&o, -1);
	ipc_put_str(&o, "hello, world");
	ipc_put_str(&o, NULL);
	ipc_put_str(&o, "");
	ipc_put_str(&o, "caf\xc3\xa9");
	ipc_put_data(&o, "a\0b\0c", 5);
	ipc_put_data(&o, NULL, 0);
	ipc_put_u32(&o, 7);
	assert_int_equal(
	    ipc_send(f->a, T_FIELDS, 0x1122334455667788ull, -1, &o), 0);
	assert_int_equal(ipc_send(f->a, T_EMPTY, 2, -1, NULL), 0);
	assert_int_equal(ipc_send(f->a, T_FIELDS, UINT64_MAX, -1, &o), 0);
	send_u32(f->a, T_SMALL, 4, -1, 44);
	ipc_out_free(&o);

	RUN_UNTIL(f, f->nrecs >= 4);
	assert_int_equal(f->nrecs, 4);
	assert_int_equal(f->recs[0].type, T_FIELDS);
	assert_int_equal(f->recs[0].id, 0x1122334455667788ull);
	assert_true(f->recs[0].ok);
	assert_int_equal(f->recs[0].fd, -1);
	assert_int_equal(f->recs[1].type, T_EMPTY);
	assert_int_equal(f->recs[1].id, 2);
	assert_true(f->recs[1].ok);
	assert_int_equal(f->recs[2].type, T_FIELDS);
	assert_int_equal(f->recs[2].id, UINT64_MAX);
	assert_true(f->recs[2].ok);
	assert_int_equal(f->recs[3].type, T_SMALL);
	assert_int_equal(f->recs[3].seq, 44);
	assert_int_equal(f->a_closed + f->b_closed, 0);

	/* and the other direction */
	send_u32(f->b, T_SMALL, 5, -1, 55);
	RUN_UNTIL(f, f->nrecs >= 5);
	assert_int_equal(f->recs[4].id, 5);
	assert_int_equal(f->recs[4].seq, 55);
}

static int
tmpfile_fd(void)
{
	char path[] = "/tmp/test_ipc.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

static void
test_fd_passing(void **state)
{
	struct fx *f = *state;
	int fa = tmpfile_fd(), fb = tmpfile_fd();
	struct stat sa, sb, sr;
	char got[16] = {0};

	/* fds interleaved with fd-less messages must pair with their own */
	send_u32(f->a, T_SMALL, 1, -1, 1);
	send_u32(f->a, T_FD, 2, fa, 2);
	send_u32(f->a, T_SMALL, 3, -1, 3);
	send_u32(f->a, T_SMALL, 4, -1, 4);
	send_u32(f->a, T_FD, 5, fb, 5);
	RUN_UNTIL(f, f->nrecs >= 5);
	assert_int_equal(f->recs[0].fd, -1);
	assert_int_equal(f->recs[2].fd, -1);
	assert_int_equal(f->recs[3].fd, -1);
	assert_true(f->recs[1].fd >= 0);
	assert_true(f->recs[4].fd >= 0);
	/* the sender keeps its own descriptor */
	assert_true(fcntl(fa, F_GETFD) >= 0);
	/* received fds are close-on-exec */
	assert_true(fcntl(f->recs[1].fd, F_GETFD) & FD_CLOEXEC);

	assert_int_equal(fstat(fa, &sa), 0);
	assert_int_equal(fstat(fb, &sb), 0);
	assert_int_equal(fstat(f->recs[1].fd, &sr), 0);
	assert_true(sr.st_dev == sa.st_dev && sr.st_ino == sa.st_ino);
	assert_int_equal(fstat(f->recs[4].fd, &sr), 0);
	assert_true(sr.st_dev == sb.st_dev && sr.st_ino == sb.st_ino);

	/* write through the received fd, read through the original */
	assert_int_equal(pwrite(f->recs[1].fd, "via-received", 12, 0), 12);
	assert_int_equal(pread(fa, got, sizeof got, 0), 12);
	assert_string_equal(got, "via-received");
	/* and the other way */
	memset(got, 0, sizeof got);
	assert_int_equal(pwrite(fb, "via-original", 12, 0), 12);
	assert_int_equal(pread(f->recs[4].fd, got, sizeof got, 0), 12);
	assert_string_equal(got, "via-original");
	close(fa);
	close(fb);
}

static void
send_big(struct ipc *ipc, uint32_t seq, int fd, unsigned char *data)
{
	struct ipc_out o;

	for (size_t i = 0; i < BIG_DATA; i++)
		data[i] = pattern(seq, i);
	ipc_out_init(&o);
	ipc_put_u32(&o, seq);
	ipc_put_data(&o, data, BIG_DATA);
	assert_int_equal(o.b.len, IPC_MAX_PAYLOAD);
	assert_int_equal(ipc_send(ipc, T_BIG, seq, fd, &o), 0);
	ipc_out_free(&o);
}

static void
test_many_in_order(void **state)
{
	struct fx *f = *state;
	enum { N = 240 };
	unsigned char *data = xmalloc(BIG_DATA);
	ino_t ino[N] = {0};
	struct stat st;
	uint32_t seq;

	/* Everything is queued before the receiver runs at all. Messages
	 * 0 and 1 of every five carry a file of their own, so a big one
	 * with an fd is often followed by a small one with an fd: the
	 * second fd can arrive in the read that completes the first
	 * message, and each must still pair with its own. */
	for (seq = 0; seq < N; seq++) {
		int fd = -1;
		if (seq % 5 <= 1) {
			fd = tmpfile_fd();
			assert_int_equal(fstat(fd, &st), 0);
			ino[seq] = st.st_ino;
		}
		if (seq % 3 == 0)
			send_big(f->a, seq, fd, data);
		else
			send_u32(f->a, fd >= 0 ? T_FD : T_SMALL, seq, fd, seq);
		if (fd >= 0)
			close(fd);
	}
	assert_true(ipc_queued(f->a) > 10u * IPC_MAX_PAYLOAD);
	xfree(data);

	RUN_UNTIL(f, f->nrecs >= N);
	assert_int_equal(f->nrecs, N);
	for (uint32_t i = 0; i < N; i++) {
		struct rec *r = &f->recs[i];
		if (r->id != i || r->seq != i || !r->ok)
			fail_msg("message %u: id %llu seq %u ok %d", i,
				 (unsigned long long)r->id, r->seq, r->ok);
		assert_int_equal(r->type, i % 3 == 0   ? T_BIG
					  : i % 5 <= 1 ? T_FD
						       : T_SMALL);
		assert_int_equal(r->fd >= 0, i % 5 <= 1);
		if (r->fd < 0)
			continue;
		assert_int_equal(fstat(r->fd, &st), 0);
		if (st.st_ino != ino[i])
			fail_msg("message %u carries the wrong file", i);
	}
	assert_int_equal(ipc_queued(f->a), 0);
	assert_int_equal(f->a_closed + f->b_closed, 0);
}

/* Let the loop run a while without expecting anything. */
static void
spin(struct fx *f)
{
	for (int i = 0; i < 20; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static void
test_send_later_and_cork(void **state)
{
	struct fx *f = *state;
	struct ipc_out o;
	int fd = tmpfile_fd();

	/* a later message waits for the next send, then goes first */
	ipc_out_init(&o);
	ipc_put_u32(&o, 1);
	assert_int_equal(ipc_send_later(f->a, T_SMALL, 1, &o), 0);
	ipc_out_free(&o);
	spin(f);
	assert_int_equal(f->nrecs, 0);
	assert_true(ipc_queued(f->a) > 0);
	send_u32(f->a, T_SMALL, 2, -1, 2);
	RUN_UNTIL(f, f->nrecs >= 2);
	assert_int_equal(f->recs[0].seq, 1);
	assert_int_equal(f->recs[1].seq, 2);

	/* a cork with only a later message in it writes nothing */
	ipc_out_init(&o);
	ipc_put_u32(&o, 3);
	assert_int_equal(ipc_send_later(f->a, T_SMALL, 3, &o), 0);
	ipc_out_free(&o);
	ipc_cork(f->a);
	ipc_uncork(f->a);
	spin(f);
	assert_int_equal(f->nrecs, 2);

	/* corked (nested): nothing leaves until the last uncork */
	ipc_cork(f->a);
	ipc_cork(f->a);
	send_u32(f->a, T_FD, 4, fd, 4); /* an fd in the middle of a batch */
	send_u32(f->a, T_SMALL, 5, -1, 5);
	ipc_uncork(f->a);
	spin(f);
	assert_int_equal(f->nrecs, 2);
	ipc_uncork(f->a);
	RUN_UNTIL(f, f->nrecs >= 5);
	assert_int_equal(f->nrecs, 5);
	for (uint32_t i = 2; i < 5; i++) {
		assert_int_equal(f->recs[i].seq, i + 1);
		assert_int_equal(f->recs[i].fd >= 0, i == 3);
	}
	assert_int_equal(ipc_queued(f->a), 0);
	assert_int_equal(f->a_closed + f->b_closed, 0);
	close(fd);
}

static void
test_queue_bound(void **state)
{
	struct fx *f = *state;
	unsigned char *data = xcalloc(1, BIG_DATA);
	uint32_t seq;
	int refused = 0;
	struct ipc_out o;

	/* nobody reads: the queue must stop at IPC_MAX_QUEUED */
	for (seq = 0; seq < 2 * IPC_MAX_QUEUED / IPC_MAX_PAYLOAD; seq++) {
		for (size_t i = 0; i < 64; i++)
			data[i] = pattern(seq, i);
		ipc_out_init(&o);
		ipc_put_u32(&o, seq);
		ipc_put_data(&o, data, BIG_DATA);
		if (ipc_send(f->a, T_BIG, seq, -1, &o) < 0)
			refused = 1;
		ipc_out_free(&o);
		if (refused)
			break;
		assert_true(ipc_queued(f->a) <= IPC_MAX_QUEUED);
	}
	assert_true(refused);
	assert_true(seq > IPC_MAX_QUEUED / IPC_MAX_PAYLOAD / 2);
	assert_true(ipc_queued(f->a) <= IPC_MAX_QUEUED);
	/* a small message may still fit; the endpoint is not broken */
	assert_int_equal(f->a_closed, 0);
	xfree(data);
}

static void
test_close_callback(void **state)
{
	struct fx *f = *state;

	/* what b sent before closing arrives before a learns of the close */
	send_u32(f->b, T_SMALL, 1, -1, 1);
	send_u32(f->b, T_SMALL, 2, -1, 2);
	send_u32(f->b, T_SMALL, 3, -1, 3);
	/* and half a header: EOF inside a message still closes */
	assert_int_equal(write(ipc_fd(f->b), "\x05\0\0", 3), 3);
	ipc_free(f->b);
	f->b = NULL;
	RUN_UNTIL(f, f->a_closed > 0);
	assert_int_equal(f->a_closed, 1);
	assert_int_equal(f->b_msgs_at_close, 3);
	assert_int_equal(f->nrecs, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(f->recs[i].seq, i + 1);
	/* a closed endpoint refuses to send, and the callback is not
	 * repeated however long the loop runs */
	assert_int_equal(ipc_send(f->a, T_EMPTY, 9, -1, NULL), -1);
	for (int i = 0; i < 3; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->a_closed, 1);
	assert_int_equal(f->b_closed, 0);
}

/* ---- panics -------------------------------------------------------------- */

static int
in_child(void (*fn)(void))
{
	int status, devnull;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGABRT, SIG_DFL);
		devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 2); /* the panic line is expected */
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void
child_leftover(void)
{
	static const unsigned char p[12] = {1, 0, 0, 0};
	struct ipc_in in = {p, sizeof p, 0, 0, 99};

	ipc_get_u32(&in);
	ipc_get_u32(&in);
	ipc_end(&in); /* 4 bytes left */
}

static void
child_overread(void)
{
	static const unsigned char p[4] = {0};
	struct ipc_in in = {p, sizeof p, 0, 0, 99};

	ipc_get_u64(&in);
	ipc_end(&in);
}

static void
child_overread_then_exact(void)
{
	static const unsigned char p[4] = {0xff, 0xff, 0, 0};
	struct ipc_in in = {p, sizeof p, 0, 0, 99};

	/* the data length is read, the data is missing: the error sticks
	 * even though every byte of the message was consumed */
	ipc_get_data(&in, &(size_t){0});
	ipc_end(&in);
}

static void
child_bad_string(void)
{
	/* length 3 but the terminator is missing */
	static const unsigned char p[8] = {3, 0, 0, 0, 'a', 'b', 'c', 'd'};
	struct ipc_in in = {p, sizeof p, 0, 0, 99};

	ipc_get_str(&in);
	ipc_end(&in);
}

static void
child_embedded_nul(void)
{
	static const unsigned char p[8] = {3, 0, 0, 0, 'a', 0, 'c', 0};
	struct ipc_in in = {p, sizeof p, 0, 0, 99};

	ipc_get_str(&in);
	ipc_end(&in);
}

static void
child_exact(void)
{
	static const unsigned char p[12] = {2, 0, 0, 0, 'o', 'k', 0, 9};
	struct ipc_in in = {p, 8, 0, 0, 99};

	if (strcmp(ipc_get_str(&in), "ok") != 0 || ipc_get_u8(&in) != 9)
		_exit(2);
	ipc_end(&in);
}

static void
short_reader(struct ipc *ipc, const struct ipc_hdr *hdr, struct ipc_in *in,
	     int fd, void *arg)
{
	ipc_get_u32(in);
	ipc_end(in); /* the sender put two fields */
}

/* The same through real endpoints: the receiver reads one field short. */
static void
child_real_leftover(void)
{
	struct event_base *base = event_base_new();
	struct ipc_out o;
	struct ipc *a, *b;
	int sv[2];

	if (base == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		_exit(3);
	a = ipc_new(base, sv[0], short_reader, NULL, NULL);
	b = ipc_new(base, sv[1], short_reader, NULL, NULL);
	ipc_out_init(&o);
	ipc_put_u32(&o, 1);
	ipc_put_u32(&o, 2);
	ipc_send(b, T_SMALL, 1, -1, &o);
	for (int i = 0; i < 100; i++)
		event_base_loop(base, EVLOOP_ONCE);
	ipc_out_free(&o);
	ipc_free(a);
	ipc_free(b);
	event_base_free(base);
}

static void
assert_aborted(int status)
{
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void
test_ipc_end_panics(void **state)
{
	int status = in_child(child_exact);

	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_aborted(in_child(child_leftover));
	assert_aborted(in_child(child_overread));
	assert_aborted(in_child(child_overread_then_exact));
	assert_aborted(in_child(child_bad_string));
	assert_aborted(in_child(child_embedded_nul));
	assert_aborted(in_child(child_real_leftover));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fields_roundtrip, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_fd_passing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_in_order, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_send_later_and_cork, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_callback, setup,
					    teardown),
	    cmocka_unit_test(test_ipc_end_panics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
