/*
 * test_spool — the durable queue store, driven through its API on a real
 * libevent base in a fresh mkdtemp directory per test.
 *
 * Every asynchronous call is followed by wait(), which runs the loop
 * until the callback set its flag (a 50 ms tick and a deadline keep a
 * lost callback from hanging the test). Durability is checked by closing
 * and reopening the spool, crash recovery by leaving files behind by hand.
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
#include <ftw.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/ipc.h"
#include "mail/attrec.h"
#include "mail/smtp_cmd.h"
#include "todoku/spool.h"

#define INLINE_MAX 4096
#define MAX_PENDING 64

struct pend {
	uint64_t rcpt_id;
	char msg[SPOOL_ID_LEN + 1];
	char sender[128];
	char addr[128];
	int state;
	unsigned attempts;
	time_t next_attempt;
};

struct fx {
	char dir[64];
	struct event_base *base;
	struct event *tick;
	struct spool *sp;
	/* last commit */
	int done, err;
	char id[SPOOL_ID_LEN + 1];
	uint64_t rids[8];
	size_t nrids;
	/* last body */
	struct buf body, prepend;
	/* last result */
	struct spool_result res;
	/* last query */
	char *out;
	/* spool_load_pending */
	struct pend pend[MAX_PENDING];
	size_t npend;
};

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
}

static void
spool_up(struct fx *f)
{
	char err[256] = "";

	f->sp = spool_open(f->dir, INLINE_MAX, f->base, err, sizeof err);
	if (f->sp == NULL)
		fail_msg("spool_open: %s", err);
}

static void
reopen(struct fx *f)
{
	spool_close(f->sp);
	spool_up(f);
}

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	struct timeval tv = {0, 50000};

	snprintf(f->dir, sizeof f->dir, "/tmp/test_spool.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->base = event_base_new();
	assert_non_null(f->base);
	f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, NULL);
	event_add(f->tick, &tv);
	buf_init(&f->body, 1u << 24);
	buf_init(&f->prepend, 1u << 20);
	spool_up(f);
	*state = f;
	return 0;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	if (f->sp)
		spool_close(f->sp);
	event_free(f->tick);
	event_base_free(f->base);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	buf_free(&f->body);
	buf_free(&f->prepend);
	xfree(f->out);
	xfree(f);
	return 0;
}

static void
wait(struct fx *f)
{
	time_t deadline = time(NULL) + 30;

	while (!f->done && time(NULL) < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_true(f->done);
}

static void
body_path(struct fx *f, const char *id, char *dst, size_t len)
{
	snprintf(dst, len, "%s/body/%s", f->dir, id);
}

static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* ---- committing ---------------------------------------------------------- */

static void
on_commit(void *arg, int err, struct spool_msg *m)
{
	struct fx *f = arg;

	f->done = 1;
	f->err = err;
	memcpy(f->id, m->id, sizeof f->id);
	f->nrids = m->nrcpts;
	for (size_t i = 0; i < m->nrcpts && i < 8; i++)
		f->rids[i] = m->rcpts[i].id;
}

static struct spool_msg *
msg_new(struct fx *f, const char *sender, const char *body, size_t len,
	const char *rcpt1, const char *rcpt2)
{
	struct spool_msg *m = spool_msg_new(f->sp, time(NULL));

	assert_non_null(m);
	assert_int_equal(strlen(m->id), SPOOL_ID_LEN);
	m->sender = xstrdup(sender);
	m->client = xstrdup("client.example [192.0.2.1]");
	m->helo = xstrdup("client.example");
	assert_int_equal(buf_adds(&m->prepend, "Received: from test\r\n"), 0);
	assert_int_equal(spool_msg_add_rcpt(m, rcpt1, rcpt1, NULL, 0), 0);
	if (rcpt2)
		assert_int_equal(
		    spool_msg_add_rcpt(m, rcpt2, "alias@x", NULL, 0), 0);
	/* in uneven chunks, as DATA would deliver them */
	for (size_t off = 0; off < len;) {
		size_t n = len - off < 1000 ? len - off : 1000;
		assert_int_equal(spool_msg_write(f->sp, m, body + off, n), 0);
		off += n;
	}
	assert_int_equal(m->size, len);
	return m;
}

static void
commit(struct fx *f, struct spool_msg *m)
{
	f->done = 0;
	f->err = 12345;
	spool_msg_commit(f->sp, m, on_commit, f);
	wait(f);
	assert_int_equal(f->err, 0);
}

/* commit a small message; its id is in f->id */
static void
commit_simple(struct fx *f, const char *sender, const char *body,
	      const char *rcpt1, const char *rcpt2)
{
	commit(f, msg_new(f, sender, body, strlen(body), rcpt1, rcpt2));
}

static void
on_pending(void *arg, const struct spool_pending *p)
{
	struct fx *f = arg;
	struct pend *d;

	assert_true(f->npend < MAX_PENDING);
	d = &f->pend[f->npend++];
	d->rcpt_id = p->rcpt_id;
	memcpy(d->msg, p->msg, sizeof d->msg);
	snprintf(d->sender, sizeof d->sender, "%s", p->sender);
	snprintf(d->addr, sizeof d->addr, "%s", p->addr);
	d->state = p->state;
	d->attempts = p->attempts;
	d->next_attempt = p->next_attempt;
}

static size_t
load_pending(struct fx *f)
{
	int n;

	f->npend = 0;
	n = spool_load_pending(f->sp, on_pending, f);
	assert_int_equal(n, (int)f->npend);
	return f->npend;
}

static struct pend *
find_pending(struct fx *f, uint64_t rcpt_id)
{
	for (size_t i = 0; i < f->npend; i++)
		if (f->pend[i].rcpt_id == rcpt_id)
			return &f->pend[i];
	return NULL;
}

/* ---- bodies ----------------------------------------------------------------
 */

static void
on_body(void *arg, int err, int fd, const char *prepend, size_t plen,
	const struct spool_msginfo *info)
{
	struct fx *f = arg;
	char tmp[8192];
	off_t off = 0;
	ssize_t r;

	f->done = 1;
	f->err = err;
	buf_reset(&f->body);
	buf_reset(&f->prepend);
	if (err)
		return;
	assert_true(fd >= 0);
	if (plen)
		assert_int_equal(buf_add(&f->prepend, prepend, plen), 0);
	/* pread: the consumer must not depend on the file offset */
	while ((r = pread(fd, tmp, sizeof tmp, off)) > 0) {
		assert_int_equal(buf_add(&f->body, tmp, (size_t)r), 0);
		off += r;
	}
	assert_int_equal(r, 0);
}

static int
load_body(struct fx *f, const char *id)
{
	f->done = 0;
	f->err = 12345;
	spool_load_body(f->sp, id, on_body, f);
	wait(f);
	return f->err;
}

/* ---- results and queries
 * ------------------------------------------------------ */

static void
on_result(void *arg, int err, struct spool_result *r)
{
	struct fx *f = arg;

	f->done = 1;
	f->err = err;
	assert_ptr_equal(r, &f->res);
}

static void
record_ex(struct fx *f, uint64_t rcpt_id, const char *msg, int state,
	  const char *reply, const char *bounce_to, int success)
{
	struct spool_result *r = &f->res;

	memset(r, 0, sizeof *r);
	r->success = success;
	r->rcpt_id = rcpt_id;
	snprintf(r->msg, sizeof r->msg, "%s", msg);
	r->time = time(NULL);
	r->new_state = state;
	r->where = "maildir /var/mail/example.net/bob";
	r->result = state == SPOOL_DELIVERED ? "delivered"
		    : state == SPOOL_BOUNCED ? "bounced"
					     : "deferred";
	r->status = state == SPOOL_DELIVERED ? "2.0.0"
		    : state == SPOOL_BOUNCED ? "5.1.1"
					     : "4.2.0";
	r->reply = reply;
	r->next_attempt = r->time + 600;
	r->reporting_mta = "mx.example.net";
	r->bounce_to = bounce_to;
	r->final_rcpt = "bob@example.net";
	f->done = 0;
	f->err = 12345;
	spool_record(f->sp, r, on_result, f);
	wait(f);
	assert_int_equal(f->err, 0);
}

static void
record(struct fx *f, uint64_t rcpt_id, const char *msg, int state,
       const char *reply, const char *bounce_to)
{
	record_ex(f, rcpt_id, msg, state, reply, bounce_to, 0);
}

static void
on_query(void *arg, int err, struct buf *out)
{
	struct fx *f = arg;

	f->done = 1;
	f->err = err;
	xfree(f->out);
	f->out = xstrdup(out->data ? out->data : "");
	assert_int_equal(strlen(f->out), out->len);
}

static int
query(struct fx *f, enum spool_query q, const char *id, int json)
{
	f->done = 0;
	f->err = 12345;
	spool_query(f->sp, q, id, json, on_query, f);
	wait(f);
	return f->err;
}

/* ---- a small strict JSON checker (RFC 8259 grammar, no semantics) -------- */

static const char *json_value(const char *p, int depth);

static const char *
json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *
json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (; *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL; /* includes the terminating NUL */
		if (*p != '\\')
			continue;
		p++;
		if (*p == 'u') {
			for (int i = 1; i <= 4; i++)
				if (strchr("0123456789abcdefABCDEF", p[i]) ==
					NULL ||
				    p[i] == '\0')
					return NULL;
			p += 4;
		} else if (*p == '\0' || strchr("\"\\/bfnrt", *p) == NULL) {
			return NULL;
		}
	}
	return p + 1;
}

static const char *
json_number(const char *p)
{
	const char *s;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		s = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == s)
			return NULL;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		s = p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == s)
			return NULL;
	}
	return p;
}

static const char *
json_list(const char *p, char close, int depth, int object)
{
	p = json_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (object) {
			if ((p = json_string(p)) == NULL)
				return NULL;
			p = json_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		if ((p = json_value(p, depth + 1)) == NULL)
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
		p = json_ws(p);
	}
}

static const char *
json_value(const char *p, int depth)
{
	if (depth > 32)
		return NULL;
	p = json_ws(p);
	switch (*p) {
	case '{':
		return json_list(p, '}', depth, 1);
	case '[':
		return json_list(p, ']', depth, 0);
	case '"':
		return json_string(p);
	case 't':
		return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
	case 'f':
		return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
	case 'n':
		return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
	default:
		return json_number(p);
	}
}

static bool
json_valid(const char *s)
{
	const char *p = json_value(s, 0);

	return p != NULL && *json_ws(p) == '\0';
}

static void
test_json_checker(void **state)
{
	/* the checker itself must tell good from bad */
	assert_true(json_valid("[]\n"));
	assert_true(json_valid("[{\"a\": \"b\\\"\\u0001\", \"n\": -1.5e3,"
			       " \"t\": true, \"x\": null, \"l\": [1, 2]}]"));
	assert_false(json_valid("["));
	assert_false(json_valid("[1,]"));
	assert_false(json_valid("{\"a\" 1}"));
	assert_false(json_valid("{\"a\": 1}}"));
	assert_false(json_valid("[\"a\nb\"]"));
	assert_false(json_valid("[\"\\x41\"]"));
	assert_false(json_valid("[\"\\u00g1\"]"));
	assert_false(json_valid("[01]"));
	assert_false(json_valid("[\"open]"));
	assert_false(json_valid("{\"a\": 1, \"b\"}"));
}

/* ---- tests ------------------------------------------------------------------
 */

#define BODY_SMALL                                                             \
	"From: a@example.org\r\nSubject: hello there\r\n\r\nshort body\r\n"

static void
test_commit_and_reopen(void **state)
{
	struct fx *f = *state;
	char id[SPOOL_ID_LEN + 1];
	uint64_t r1, r2;
	struct pend *p;

	assert_int_equal(load_pending(f), 0);
	commit_simple(f, "a@example.org", BODY_SMALL, "bob@example.net",
		      "carol@example.net");
	assert_int_equal(f->nrids, 2);
	r1 = f->rids[0];
	r2 = f->rids[1];
	assert_true(r1 != 0 && r2 != 0 && r1 != r2);
	memcpy(id, f->id, sizeof id);
	assert_true(spool_commits(f->sp) >= 1);

	/* durable: a fresh open of the same directory sees both */
	reopen(f);
	assert_int_equal(load_pending(f), 2);
	p = find_pending(f, r1);
	assert_non_null(p);
	assert_string_equal(p->msg, id);
	assert_string_equal(p->sender, "a@example.org");
	assert_string_equal(p->addr, "bob@example.net");
	assert_int_equal(p->state, SPOOL_QUEUED);
	assert_int_equal(p->attempts, 0);
	p = find_pending(f, r2);
	assert_non_null(p);
	assert_string_equal(p->addr, "carol@example.net");
	assert_string_equal(p->msg, id);

	/* the body and the prepended trace header come back as stored */
	assert_int_equal(load_body(f, id), 0);
	assert_int_equal(f->body.len, strlen(BODY_SMALL));
	assert_memory_equal(f->body.data, BODY_SMALL, f->body.len);
	assert_string_equal(f->prepend.data, "Received: from test\r\n");

	/* a message id nobody committed has no body */
	assert_int_not_equal(load_body(f, "0000000000000Z"), 0);

	/* a second message gets its own id and recipient ids */
	commit_simple(f, "", "x\r\n", "dave@example.net", NULL);
	assert_string_not_equal(f->id, id);
	assert_true(f->rids[0] != r1 && f->rids[0] != r2);
	reopen(f);
	assert_int_equal(load_pending(f), 3);
	p = find_pending(f, f->rids[0]);
	assert_non_null(p);
	assert_string_equal(p->sender, "");
}

static char *
make_body(size_t len, unsigned seed)
{
	char *b = xmalloc(len + 1);
	static const char hdr[] = "Subject: big\r\n\r\n";

	for (size_t i = 0; i < len; i++)
		b[i] = (char)((i * 131 + seed + (i >> 10)) & 0xff);
	/* a header block so bounces can quote it, then binary junk */
	if (len > sizeof hdr)
		memcpy(b, hdr, sizeof hdr - 1);
	b[len] = '\0';
	return b;
}

static void
test_spill_and_inline(void **state)
{
	struct fx *f = *state;
	size_t biglen = 300 * 1000 + 17;
	char *big = make_body(biglen, 1);
	char *edge = make_body(INLINE_MAX, 2);
	char *over = make_body(INLINE_MAX + 1, 3);
	char path[256], id[SPOOL_ID_LEN + 1];
	struct spool_msg *m;
	struct stat st;

	/* larger than inline_max: spills to body/ID */
	m = msg_new(f, "a@example.org", big, biglen, "bob@example.net", NULL);
	assert_true(m->body_fd >= 0);
	body_path(f, m->id, path, sizeof path);
	assert_true(exists(path));
	commit(f, m);
	memcpy(id, f->id, sizeof id);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, biglen);
	reopen(f);
	assert_true(exists(path)); /* committed: recovery keeps it */
	assert_int_equal(load_body(f, id), 0);
	assert_int_equal(f->body.len, biglen);
	assert_memory_equal(f->body.data, big, biglen);

	/* exactly inline_max stays in the database */
	m = msg_new(f, "a@example.org", edge, INLINE_MAX, "bob@example.net",
		    NULL);
	assert_int_equal(m->body_fd, -1);
	commit(f, m);
	body_path(f, f->id, path, sizeof path);
	assert_false(exists(path));
	memcpy(id, f->id, sizeof id);
	assert_int_equal(load_body(f, id), 0); /* a memfd */
	assert_int_equal(f->body.len, INLINE_MAX);
	assert_memory_equal(f->body.data, edge, INLINE_MAX);

	/* one byte more spills, even when it comes in the last chunk */
	m = msg_new(f, "a@example.org", over, INLINE_MAX + 1, "bob@example.net",
		    NULL);
	assert_true(m->body_fd >= 0);
	commit(f, m);
	memcpy(id, f->id, sizeof id);
	body_path(f, id, path, sizeof path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, INLINE_MAX + 1);
	assert_int_equal(load_body(f, id), 0);
	assert_int_equal(f->body.len, INLINE_MAX + 1);
	assert_memory_equal(f->body.data, over, INLINE_MAX + 1);

	/* an empty body is a valid (inline) body */
	commit(f, msg_new(f, "a@example.org", "", 0, "bob@example.net", NULL));
	assert_int_equal(load_body(f, f->id), 0);
	assert_int_equal(f->body.len, 0);

	/* discarding an uncommitted spilled message removes its file */
	m = msg_new(f, "a@example.org", big, biglen, "bob@example.net", NULL);
	body_path(f, m->id, path, sizeof path);
	assert_true(exists(path));
	spool_msg_discard(f->sp, m);
	assert_false(exists(path));

	xfree(big);
	xfree(edge);
	xfree(over);
}

static void
test_group_commit(void **state)
{
	struct fx *f = *state;
	enum { N = 50 };
	struct spool_msg *m[N];
	char ids[N][SPOOL_ID_LEN + 1];
	uint64_t before, groups;
	int ndone = 0;
	char body[64];

	/* build every message first so submitting is all that is timed */
	for (int i = 0; i < N; i++) {
		snprintf(body, sizeof body, "Subject: %d\r\n\r\nbody %d\r\n", i,
			 i);
		m[i] = msg_new(f, "a@example.org", body, strlen(body),
			       "bob@example.net", NULL);
		memcpy(ids[i], m[i]->id, sizeof ids[i]);
	}
	for (int i = 0; i < N; i++)
		for (int k = 0; k < i; k++)
			assert_string_not_equal(ids[i], ids[k]);
	before = spool_commits(f->sp);
	for (int i = 0; i < N; i++) {
		f->done = 0;
		spool_msg_commit(f->sp, m[i], on_commit, f);
	}
	/* callbacks arrive in submission order; count them all */
	time_t deadline = time(NULL) + 30;
	while (ndone < N && time(NULL) < deadline) {
		f->done = 0;
		event_base_loop(f->base, EVLOOP_ONCE);
		if (!f->done)
			continue;
		/* each loop pass may run several callbacks; the last one
		 * tells how far we got */
		for (int i = ndone; i < N; i++)
			if (strcmp(f->id, ids[i]) == 0)
				ndone = i + 1;
		assert_int_equal(f->err, 0);
	}
	assert_int_equal(ndone, N);
	groups = spool_commits(f->sp) - before;
	print_message("group commit: %d messages in %llu commit(s)\n", N,
		      (unsigned long long)groups);
	assert_true(groups >= 1);
	assert_true(groups < N);
	assert_int_equal(load_pending(f), N);
}

/*
 * A delivery result does not cost an fsync of its own: it waits for the
 * next group that writes (a received message) and commits with it; a
 * group of reads alone leaves it waiting.
 */
static void
test_result_rides_with_commit(void **state)
{
	struct fx *f = *state;
	struct spool_result *r = &f->res;
	struct timespec pause = {0, 30 * 1000000L};
	char id[SPOOL_ID_LEN + 1];
	uint64_t before;
	int result_done = 0;

	spool_set_lazy_ms(f->sp, 20000);
	commit(f, msg_new(f, "a@example.org", "Subject: x\r\n\r\nx\r\n", 17,
			  "bob@example.net", NULL));
	memcpy(id, f->id, sizeof id);
	memset(r, 0, sizeof *r);
	r->rcpt_id = f->rids[0];
	snprintf(r->msg, sizeof r->msg, "%s", id);
	r->time = time(NULL);
	r->new_state = SPOOL_DELIVERED;
	r->where = "maildir";
	r->result = "delivered";
	r->status = "2.0.0";
	r->reply = "ok";
	r->reporting_mta = "mx.example.net";
	r->final_rcpt = "bob@example.net";
	before = spool_commits(f->sp);
	f->done = 0;
	spool_record(f->sp, r, on_result, f);
	/* a writer that took results at once would commit it alone now */
	nanosleep(&pause, NULL);
	for (int i = 0; i < 5; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_false(f->done);
	/* reads do not flush it either */
	assert_int_equal(query(f, SPOOL_LIST, NULL, 1), 0);
	assert_non_null(strstr(f->out, "\"queued\""));
	/* a received message does: one commit for both */
	commit(f, msg_new(f, "c@example.org", "Subject: y\r\n\r\ny\r\n", 17,
			  "bob@example.net", NULL));
	for (time_t end = time(NULL) + 10; time(NULL) < end && !result_done;) {
		result_done = f->res.msg_done;
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	assert_int_equal(f->res.msg_done, 1);
	assert_int_equal(spool_commits(f->sp) - before, 1);
	assert_int_equal(load_pending(f), 1);
}

static void
test_recover_partial_bodies(void **state)
{
	struct fx *f = *state;
	size_t biglen = 20000;
	char *big = make_body(biglen, 4);
	char orphan[256], kept[256], stray[256];
	char id[SPOOL_ID_LEN + 1];
	int fd;

	commit(f, msg_new(f, "a@example.org", big, biglen, "bob@example.net",
			  NULL));
	memcpy(id, f->id, sizeof id);
	body_path(f, id, kept, sizeof kept);
	spool_close(f->sp);
	f->sp = NULL;

	/* a body written before a crash, never committed */
	body_path(f, "01ABCDEFGHJKMN", orphan, sizeof orphan);
	fd = open(orphan, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "partial", 7), 7);
	close(fd);
	/* and a file that is no message id at all */
	body_path(f, "junk-not-an-id", stray, sizeof stray);
	fd = open(stray, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);

	spool_up(f);
	assert_false(exists(orphan));
	assert_false(exists(stray));
	assert_true(exists(kept));
	assert_int_equal(load_body(f, id), 0);
	assert_int_equal(f->body.len, biglen);
	assert_memory_equal(f->body.data, big, biglen);
	assert_int_equal(load_pending(f), 1);
	xfree(big);
}

static void
test_unclean_marker(void **state)
{
	struct fx *f = *state;
	char marker[128];
	int fd;

	snprintf(marker, sizeof marker, "%s/running", f->dir);
	/* while open, the marker says "not stopped cleanly" */
	assert_true(exists(marker));
	commit_simple(f, "a@example.org", BODY_SMALL, "bob@example.net", NULL);
	spool_close(f->sp);
	f->sp = NULL;
	assert_false(exists(marker));

	/* left behind by a crash: quick_check runs and the spool opens */
	fd = open(marker, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	spool_up(f);
	assert_true(exists(marker));
	assert_int_equal(load_pending(f), 1);
	commit_simple(f, "a@example.org", BODY_SMALL, "carol@example.net",
		      NULL);
	reopen(f);
	assert_int_equal(load_pending(f), 2);
}

static void
test_delivered_removes(void **state)
{
	struct fx *f = *state;
	size_t biglen = 10000;
	char *big = make_body(biglen, 5);
	char id[SPOOL_ID_LEN + 1], path[256];
	uint64_t r1, r2;

	commit(f, msg_new(f, "a@example.org", big, biglen, "bob@example.net",
			  "carol@example.net"));
	memcpy(id, f->id, sizeof id);
	r1 = f->rids[0];
	r2 = f->rids[1];
	body_path(f, id, path, sizeof path);
	assert_true(exists(path));

	record(f, r1, id, SPOOL_DELIVERED, "ok", NULL);
	assert_int_equal(f->res.msg_done, 0);
	assert_true(exists(path));
	assert_int_equal(query(f, SPOOL_LIST, NULL, 1), 0);
	assert_non_null(strstr(f->out, id));
	assert_non_null(strstr(f->out, "\"delivered\""));
	assert_int_equal(load_pending(f), 1);
	assert_int_equal(f->pend[0].rcpt_id, r2);

	record(f, r2, id, SPOOL_DELIVERED, "ok", NULL);
	assert_int_equal(f->res.msg_done, 1);
	assert_false(exists(path));
	assert_int_equal(query(f, SPOOL_LIST, NULL, 1), 0);
	assert_null(strstr(f->out, id));
	assert_string_equal(f->out, "[]\n");
	assert_int_equal(query(f, SPOOL_LIST, NULL, 0), 0);
	assert_null(strstr(f->out, id));
	assert_int_not_equal(query(f, SPOOL_SHOW, id, 1), 0);
	assert_int_not_equal(load_body(f, id), 0);
	assert_int_equal(load_pending(f), 0);
	reopen(f);
	assert_int_equal(load_pending(f), 0);
	xfree(big);
}

static void
check_bounce(struct fx *f, const char *id, const char *subject)
{
	char bid[SPOOL_ID_LEN + 1];
	uint64_t brcpt;
	struct pend *p;

	assert_int_equal(f->res.msg_done, 1);
	assert_int_equal(strlen(f->res.bounce_id), SPOOL_ID_LEN);
	assert_string_not_equal(f->res.bounce_id, id);
	assert_true(f->res.bounce_rcpt_id != 0);
	memcpy(bid, f->res.bounce_id, sizeof bid);
	brcpt = f->res.bounce_rcpt_id;

	/* the DSN is a queued message from the null sender */
	assert_int_equal(load_pending(f), 1);
	p = find_pending(f, brcpt);
	assert_non_null(p);
	assert_string_equal(p->msg, bid);
	assert_string_equal(p->sender, "");
	assert_string_equal(p->addr, "a@example.org");
	assert_int_equal(p->state, SPOOL_QUEUED);

	assert_int_equal(query(f, SPOOL_SHOW, bid, 1), 0);
	assert_true(json_valid(f->out));
	assert_non_null(strstr(f->out, "\"sender\": \"\""));
	assert_non_null(strstr(f->out, "\"address\": \"a@example.org\""));

	assert_int_equal(load_body(f, bid), 0);
	assert_non_null(strstr(f->body.data, "no such user here"));
	assert_non_null(strstr(f->body.data, subject));
	assert_non_null(strstr(f->body.data, "bob@example.net"));
	assert_non_null(strstr(f->body.data, "5.1.1"));
	assert_non_null(strstr(f->body.data, id));
	/* the original message is gone */
	assert_int_not_equal(query(f, SPOOL_SHOW, id, 1), 0);
}

static void
test_bounce(void **state)
{
	struct fx *f = *state;
	char id[SPOOL_ID_LEN + 1], path[256];
	size_t biglen = 50000;
	char *big = make_body(biglen, 6);

	/* inline original */
	commit_simple(f, "a@example.org",
		      "From: a@example.org\r\nSubject: Quarterly report\r\n"
		      "\r\nnumbers\r\n",
		      "bob@example.net", NULL);
	memcpy(id, f->id, sizeof id);
	record(f, f->rids[0], id, SPOOL_BOUNCED, "no such user here",
	       "a@example.org");
	check_bounce(f, id, "Subject: Quarterly report");

	/* deliver the DSN so the queue is empty again */
	record(f, f->res.bounce_rcpt_id, f->res.bounce_id, SPOOL_DELIVERED,
	       "ok", NULL);
	assert_int_equal(f->res.msg_done, 1);
	assert_int_equal(load_pending(f), 0);

	/* spilled original: the headers are read from body/ID */
	commit(f, msg_new(f, "a@example.org", big, biglen, "bob@example.net",
			  NULL));
	memcpy(id, f->id, sizeof id);
	body_path(f, id, path, sizeof path);
	record(f, f->rids[0], id, SPOOL_BOUNCED, "no such user here",
	       "a@example.org");
	check_bounce(f, id, "Subject: big");
	assert_false(exists(path));

	/* bounced without bounce_to: no DSN, message removed */
	commit_simple(f, "", BODY_SMALL, "bob@example.net", NULL);
	memcpy(id, f->id, sizeof id);
	record(f, f->rids[0], id, SPOOL_BOUNCED, "no such user here", NULL);
	assert_int_equal(f->res.msg_done, 1);
	assert_int_equal(f->res.bounce_rcpt_id, 0);
	assert_int_not_equal(query(f, SPOOL_SHOW, id, 1), 0);
	xfree(big);
}

/* NOTIFY decides which reports exist (RFC 3461 §4.1); ORCPT, else the
 * address the client gave, becomes Original-Recipient. */
static void
test_notify_reports(void **state)
{
	struct fx *f = *state;
	struct spool_msg *m;
	char id[SPOOL_ID_LEN + 1], bid[SPOOL_ID_LEN + 1];
	static const unsigned notify[] = {
	    SMTP_NOTIFY_SUCCESS, 0, SMTP_NOTIFY_NEVER, SMTP_NOTIFY_SUCCESS,
	    SMTP_NOTIFY_FAILURE};

	m = spool_msg_new(f->sp, time(NULL));
	m->sender = xstrdup("a@example.org");
	m->envid = xstrdup("env-1");
	m->ret = 1; /* FULL: only ever for failures */
	assert_int_equal(spool_msg_add_rcpt(m, "b1@example.net", "list@x",
					    "rfc822;B1@example.net", notify[0]),
			 0);
	assert_int_equal(spool_msg_add_rcpt(m, "b2@example.net",
					    "b2@example.net", NULL, notify[1]),
			 0);
	assert_int_equal(spool_msg_add_rcpt(m, "b3@example.net",
					    "b3@example.net", NULL, notify[2]),
			 0);
	assert_int_equal(
	    spool_msg_add_rcpt(m, "b4@example.net", "team@x", NULL, notify[3]),
	    0);
	assert_int_equal(spool_msg_add_rcpt(m, "b5@example.net",
					    "b5@example.net", NULL, notify[4]),
			 0);
	assert_int_equal(
	    spool_msg_write(f->sp, m, BODY_SMALL, strlen(BODY_SMALL)), 0);
	commit(f, m);
	memcpy(id, f->id, sizeof id);

	/* SUCCESS, delivered here: "delivered", ORCPT, ENVID, headers only */
	f->res.success = 0;
	record_ex(f, f->rids[0], id, SPOOL_DELIVERED, "ok", "a@example.org",
		  SPOOL_DELIVERED);
	assert_int_equal(strlen(f->res.bounce_id), SPOOL_ID_LEN);
	memcpy(bid, f->res.bounce_id, sizeof bid);
	assert_int_equal(load_body(f, bid), 0);
	assert_non_null(strstr(f->body.data, "Action: delivered"));
	assert_non_null(
	    strstr(f->body.data, "Original-Recipient: rfc822;B1@example.net"));
	assert_non_null(strstr(f->body.data, "Original-Envelope-Id: env-1"));
	assert_non_null(strstr(f->body.data, "text/rfc822-headers"));
	assert_null(strstr(f->body.data, "message/rfc822"));
	/* no NOTIFY: no success report, even when asked to consider one */
	record_ex(f, f->rids[1], id, SPOOL_DELIVERED, "ok", "a@example.org",
		  SPOOL_DELIVERED);
	assert_string_equal(f->res.bounce_id, "");
	/* NEVER: no bounce */
	record_ex(f, f->rids[2], id, SPOOL_BOUNCED, "no", "a@example.org", 0);
	assert_string_equal(f->res.bounce_id, "");
	/* SUCCESS to a next hop without DSN: "relayed", the client's
	 * address (before the alias) as Original-Recipient */
	record_ex(f, f->rids[3], id, SPOOL_DELIVERED, "ok", "a@example.org",
		  SPOOL_RELAYED);
	memcpy(bid, f->res.bounce_id, sizeof bid);
	assert_int_equal(load_body(f, bid), 0);
	assert_non_null(strstr(f->body.data, "Action: relayed"));
	assert_non_null(
	    strstr(f->body.data, "Original-Recipient: rfc822;team@x"));
	/* FAILURE: the bounce returns the whole message (RET=FULL) */
	record_ex(f, f->rids[4], id, SPOOL_BOUNCED, "no", "a@example.org", 0);
	memcpy(bid, f->res.bounce_id, sizeof bid);
	assert_int_equal(load_body(f, bid), 0);
	assert_non_null(strstr(f->body.data, "Action: failed"));
	assert_non_null(strstr(f->body.data, "message/rfc822"));
}

static void
test_query(void **state)
{
	struct fx *f = *state;
	char id1[SPOOL_ID_LEN + 1], id2[SPOOL_ID_LEN + 1];

	/* empty queue */
	assert_int_equal(query(f, SPOOL_LIST, NULL, 1), 0);
	assert_true(json_valid(f->out));
	assert_string_equal(f->out, "[]\n");
	assert_int_equal(query(f, SPOOL_LIST, NULL, 0), 0);
	assert_non_null(strstr(f->out, "empty"));

	/* text that needs escaping in every string field we control */
	commit_simple(f, "we\"ird\\send\ter@example.org", BODY_SMALL,
		      "bob@example.net", "carol@example.net");
	memcpy(id1, f->id, sizeof id1);
	commit_simple(f, "", BODY_SMALL, "dave@example.net", NULL);
	memcpy(id2, f->id, sizeof id2);
	record(f, f->rids[0], id2, SPOOL_DEFERRED,
	       "4.2.0 \"mailbox\\full\"\r\n", NULL);

	assert_int_equal(query(f, SPOOL_LIST, NULL, 1), 0);
	if (!json_valid(f->out))
		fail_msg("invalid JSON: %s", f->out);
	assert_int_equal(f->out[0], '[');
	assert_int_equal(count(f->out, "\"id\": "), 2);
	assert_int_equal(count(f->out, "\"address\": "), 3);
	assert_non_null(strstr(f->out, id1));
	assert_non_null(strstr(f->out, id2));
	assert_non_null(strstr(f->out, "\"sender\": "));
	assert_non_null(strstr(f->out, "\"recipients\": ["));
	assert_non_null(strstr(f->out, "\"state\": \"deferred\""));
	assert_non_null(strstr(f->out, "\"state\": \"queued\""));
	assert_non_null(strstr(f->out, "we\\\"ird\\\\send\\u0009er"));
	assert_non_null(strstr(f->out, "\"attempts\": 1"));
	assert_non_null(strstr(f->out, "\"client\": \"client.example"));
	/* the list does not carry histories */
	assert_null(strstr(f->out, "\"history\""));

	assert_int_equal(query(f, SPOOL_SHOW, id2, 1), 0);
	if (!json_valid(f->out))
		fail_msg("invalid JSON: %s", f->out);
	assert_int_equal(f->out[0], '{');
	assert_non_null(strstr(f->out, "\"history\": [{"));
	assert_non_null(strstr(f->out, "mailbox\\\\full"));
	assert_null(strstr(f->out, id1));

	assert_int_equal(query(f, SPOOL_SHOW, id1, 0), 0);
	assert_non_null(strstr(f->out, id1));
	assert_non_null(strstr(f->out, "carol@example.net"));

	/* unknown ids are an error in both formats */
	assert_int_not_equal(query(f, SPOOL_SHOW, "0000000000000Z", 1), 0);
	assert_int_not_equal(query(f, SPOOL_SHOW, "0000000000000Z", 0), 0);
	assert_int_not_equal(query(f, SPOOL_SHOW, "", 1), 0);
}

static void
test_attempt_history(void **state)
{
	struct fx *f = *state;
	char id[SPOOL_ID_LEN + 1], reply[32];
	uint64_t rid;
	struct pend *p;

	commit_simple(f, "a@example.org", BODY_SMALL, "bob@example.net", NULL);
	memcpy(id, f->id, sizeof id);
	rid = f->rids[0];
	for (int i = 1; i <= 20; i++) {
		snprintf(reply, sizeof reply, "attempt %d", i);
		record(f, rid, id, SPOOL_DEFERRED, reply, NULL);
		assert_int_equal(f->res.msg_done, 0);
	}
	assert_int_equal(query(f, SPOOL_SHOW, id, 1), 0);
	if (!json_valid(f->out))
		fail_msg("invalid JSON: %s", f->out);
	/* first 3 and last 10 kept, in order */
	assert_int_equal(count(f->out, "{\"time\": "), 13);
	for (int i = 1; i <= 20; i++) {
		char q[40];
		snprintf(q, sizeof q, "\"reply\": \"attempt %d\"", i);
		if ((strstr(f->out, q) != NULL) != (i <= 3 || i > 10))
			fail_msg("attempt %d wrongly %s", i,
				 i <= 3 || i > 10 ? "dropped" : "kept");
	}
	assert_true(strstr(f->out, "\"attempt 3\"") <
		    strstr(f->out, "\"attempt 11\""));
	/* the counter still counts every attempt */
	assert_non_null(strstr(f->out, "\"attempts\": 20"));
	assert_non_null(strstr(f->out, "\"last_reply\": \"attempt 20\""));

	reopen(f);
	assert_int_equal(load_pending(f), 1);
	p = find_pending(f, rid);
	assert_non_null(p);
	assert_int_equal(p->attempts, 20);
	assert_int_equal(p->state, SPOOL_DEFERRED);
	assert_true(p->next_attempt > time(NULL) + 500);
	/* one more after a restart keeps the bound */
	record(f, rid, id, SPOOL_DEFERRED, "attempt 21", NULL);
	assert_int_equal(query(f, SPOOL_SHOW, id, 1), 0);
	assert_int_equal(count(f->out, "{\"time\": "), 13);
	assert_null(strstr(f->out, "\"attempt 11\""));
	assert_non_null(strstr(f->out, "\"attempt 1\""));
	assert_non_null(strstr(f->out, "\"attempt 21\""));
}

/* Identical consecutive outcomes are counted on each kept attempt, so
 * the bounded history still tells how long one reply went on. */
static void
test_attempt_repeats(void **state)
{
	struct fx *f = *state;
	char id[SPOOL_ID_LEN + 1], q[64];
	uint64_t rid;

	commit_simple(f, "a@example.org", BODY_SMALL, "bob@example.net", NULL);
	memcpy(id, f->id, sizeof id);
	rid = f->rids[0];
	for (int i = 1; i <= 30; i++)
		record(f, rid, id, SPOOL_DEFERRED, "450 4.5.0 busy", NULL);
	assert_int_equal(query(f, SPOOL_SHOW, id, 1), 0);
	if (!json_valid(f->out))
		fail_msg("invalid JSON: %s", f->out);
	assert_int_equal(count(f->out, "{\"time\": "), 13);
	/* the first 3 count 1..3, the last 10 count 21..30 */
	for (int i = 1; i <= 30; i++) {
		snprintf(q, sizeof q, "\"repeats\": %d, ", i);
		if ((strstr(f->out, q) != NULL) != (i <= 3 || i > 20))
			fail_msg("repeats %d wrongly %s", i,
				 i <= 3 || i > 20 ? "missing" : "present");
	}
	assert_non_null(strstr(f->out, "\"attempts\": 30"));
	/* a different outcome starts a new run, across a restart too */
	record(f, rid, id, SPOOL_DEFERRED, "421 4.3.2 closing", NULL);
	reopen(f);
	record(f, rid, id, SPOOL_DEFERRED, "421 4.3.2 closing", NULL);
	assert_int_equal(query(f, SPOOL_SHOW, id, 1), 0);
	assert_int_equal(count(f->out, "\"reply\": \"421 4.3.2 closing\", "
				       "\"detail\": \"\", \"repeats\": 1, "),
			 1);
	assert_int_equal(count(f->out, "\"reply\": \"421 4.3.2 closing\", "
				       "\"detail\": \"\", \"repeats\": 2, "),
			 1);
	assert_int_equal(query(f, SPOOL_SHOW, id, 0), 0);
	assert_non_null(strstr(f->out, "the same outcome 2 attempts in a row"));
}

static void
record_rec(struct fx *f, uint64_t rid, const char *id, const char *reply,
	   const char *detail, const void *rec, size_t nrec)
{
	struct spool_result *r = &f->res;

	memset(r, 0, sizeof *r);
	r->rcpt_id = rid;
	snprintf(r->msg, sizeof r->msg, "%s", id);
	r->time = time(NULL);
	r->new_state = SPOOL_DEFERRED;
	r->where = "smtp mx.example.net";
	r->result = "deferred";
	r->status = "4.2.0";
	r->reply = reply;
	r->detail = detail;
	r->rec = rec;
	r->nrec = nrec;
	r->next_attempt = r->time + 600;
	r->reporting_mta = "mx.example.net";
	r->final_rcpt = "bob@example.net";
	f->done = 0;
	f->err = 12345;
	spool_record(f->sp, r, on_result, f);
	wait(f);
	assert_int_equal(f->err, 0);
}

static void
db_exec(struct fx *f, const char *sql)
{
	char db[128];
	sqlite3 *h;

	spool_close(f->sp);
	snprintf(db, sizeof db, "%s/queue.db", f->dir);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	spool_up(f);
}

/* A packed record: an MX route, one answer, one refused address. */
static void
pack_rec(struct ipc_out *o)
{
	struct attrec_dns_set dns;
	struct attrec_conn conn;
	struct attrec_view v = {0};
	struct attrec_dns *q;

	attrec_dns_init(&dns);
	q = attrec_dns_add(&dns, "example.net", "MX", "answer", "NOERROR", 0,
			   NULL);
	attrec_dns_rr(&dns, q, 300, 10, "mx.example.net");
	attrec_conn_init(&conn);
	attrec_conn_addr(&conn, "mx.example.net", "192.0.2.1", 25, 4, "refused",
			 "connection refused");
	v.route_kind = "mx";
	v.route_via = "example.net";
	v.dns = &dns;
	v.conn = &conn;
	v.next_attempt = 1800000000;
	v.next_reason = "retry schedule step 1 of 1: 600 s";
	ipc_out_init(o);
	attrec_pack(&v, o);
	attrec_conn_free(&conn);
	attrec_dns_free(&dns);
}

/* The record is stored once, packed, and rendered as a JSON object or
 * as text when shown; rows without one show what they have: the JSON
 * and text of the first stored form, or (older spools, whose attempt
 * table gets the columns when opened) the free-text detail. */
static void
test_attempt_record(void **state)
{
	struct fx *f = *state;
	char id[SPOOL_ID_LEN + 1];
	uint64_t rid;
	struct ipc_out o;

	commit_simple(f, "a@example.org", BODY_SMALL, "bob@example.net", NULL);
	memcpy(id, f->id, sizeof id);
	rid = f->rids[0];
	/* a spool made before the record: no record columns, a text row */
	db_exec(f, "ALTER TABLE attempt DROP COLUMN record;"
		   "ALTER TABLE attempt DROP COLUMN record_text;"
		   "ALTER TABLE attempt DROP COLUMN rec;");
	record_rec(f, rid, id, "450 old", "  old trace line", NULL, 0);
	/* a row of the first record form: JSON and text */
	record_rec(f, rid, id, "450 json", "  json trace line", NULL, 0);
	db_exec(f, "UPDATE attempt SET record = '{\"version\": 1, \"route\":"
		   " {\"kind\": \"local\"}}', record_text = '        route"
		   " local via /m\n' WHERE reply = '450 json'");
	pack_rec(&o);
	record_rec(f, rid, id, "450 new", "  new trace line", o.b.data,
		   o.b.len);
	ipc_out_free(&o);
	/* a damaged packed record shows the row's detail */
	record_rec(f, rid, id, "450 bad", "  bad trace line", "\001\002", 2);
	assert_int_equal(query(f, SPOOL_SHOW, id, 1), 0);
	if (!json_valid(f->out))
		fail_msg("invalid JSON: %s", f->out);
	assert_int_equal(count(f->out, "\"record\": null}"), 2);
	assert_non_null(strstr(
	    f->out,
	    "\"record\": {\"version\": 1, \"route\": {\"kind\": \"local\"}}}"));
	assert_non_null(strstr(f->out, "\"route\": {\"kind\": \"mx\", \"via\": "
				       "\"example.net\"}"));
	assert_non_null(strstr(f->out, "\"result\": {\"result\": \"deferred\", "
				       "\"status\": \"4.2.0\", \"reply\": "
				       "\"450 new\""));
	assert_non_null(strstr(f->out, "\"outcome\": \"refused\""));
	assert_non_null(strstr(f->out, "\"next_attempt\": "
				       "\"2027-01-15T08:00:00Z\""));
	assert_int_equal(query(f, SPOOL_SHOW, id, 0), 0);
	assert_non_null(strstr(f->out, "|   old trace line"));
	assert_null(strstr(f->out, "json trace line"));
	assert_non_null(strstr(f->out, "        route local via /m\n"));
	assert_null(strstr(f->out, "new trace line"));
	assert_non_null(strstr(f->out, "        route mx via example.net\n"));
	assert_non_null(strstr(f->out, "address mx.example.net 192.0.2.1:25 "
				       "(pref 10): refused"));
	assert_non_null(strstr(f->out, "|   bad trace line"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_checker),
	    cmocka_unit_test_setup_teardown(test_commit_and_reopen, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_spill_and_inline, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_result_rides_with_commit,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recover_partial_bodies, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_unclean_marker, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_delivered_removes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_bounce, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notify_reports, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_query, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attempt_history, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_attempt_record, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_attempt_repeats, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
