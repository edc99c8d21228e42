/*
 * test_dsn — dsn_compose and dsn_header_len.
 *
 * Each composed report is parsed back with a small MIME splitter below:
 * top-level header, boundary, parts, fields (raw, with folding kept), so
 * the tests check structure and exact field values, not substrings only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "mail/dsn.h"

#define T_NOW ((time_t)1795600000)
#define T_ARRIVAL (T_NOW - 3600)
#define T_MAX (4u << 20)

static const char orig_msg[] = "From: Alice <alice@example.org>\r\n"
			       "To: bob@example.net\r\n"
			       "Subject: hello\r\n"
			       "Message-ID: <m1@example.org>\r\n"
			       "\r\n"
			       "Body line one.\r\n"
			       "Body line two.\r\n";

/* ---- a small parser for the composed report ---- */

struct part {
	const char *hdr; /* header block, without the empty line */
	size_t hdr_len;
	const char *body;
	size_t body_len;
};

struct report {
	struct buf out;
	const char *hdr;
	size_t hdr_len;
	char boundary[128];
	struct part parts[8];
	size_t nparts;
	int closed; /* the close delimiter was seen */
};

static void
split_part(const char *p, size_t n, struct part *pt)
{
	const char *e = memmem(p, n, "\r\n\r\n", 4);

	if (n >= 2 && p[0] == '\r' && p[1] == '\n') {
		pt->hdr = p;
		pt->hdr_len = 0;
		pt->body = p + 2;
		pt->body_len = n - 2;
		return;
	}
	assert_non_null(e);
	pt->hdr = p;
	pt->hdr_len = (size_t)(e - p) + 2;
	pt->body = e + 4;
	pt->body_len = n - (size_t)(e + 4 - p);
}

/* Find "boundary=\"...\"" in the top header. */
static void
find_boundary(struct report *r)
{
	const char *b = strstr(r->hdr, "boundary=\"");
	const char *e;

	assert_non_null(b);
	b += strlen("boundary=\"");
	e = strchr(b, '"');
	assert_non_null(e);
	assert_true((size_t)(e - b) < sizeof r->boundary);
	memcpy(r->boundary, b, (size_t)(e - b));
	r->boundary[e - b] = '\0';
}

static void
parse_report(struct report *r)
{
	char delim[160];
	const char *s = r->out.data, *end = s + r->out.len, *p, *next;
	size_t dl;

	r->hdr = s;
	p = strstr(s, "\r\n\r\n");
	assert_non_null(p);
	r->hdr_len = (size_t)(p - s) + 2;
	find_boundary(r);
	dl = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", r->boundary);
	p = memmem(p, (size_t)(end - p), delim, dl);
	r->nparts = 0;
	r->closed = 0;
	while (p != NULL) {
		p += dl;
		if (p + 2 <= end && memcmp(p, "--", 2) == 0) {
			r->closed = 1;
			assert_string_equal(p, "--\r\n");
			return;
		}
		assert_memory_equal(p, "\r\n", 2);
		p += 2;
		next = memmem(p, (size_t)(end - p), delim, dl);
		assert_non_null(next);
		assert_true(r->nparts < 8);
		split_part(p, (size_t)(next - p), &r->parts[r->nparts++]);
		p = next;
	}
}

/* Raw value of field name in block (folding kept, CRLFs inside), as a
 * new string, or NULL. Fails the test if the field occurs twice. */
static char *
field(const char *block, size_t len, const char *name)
{
	size_t nl = strlen(name), pos = 0;
	char *found = NULL;

	while (pos < len) {
		const char *line = block + pos;
		const char *e = memmem(line, len - pos, "\r\n", 2);
		size_t vend;

		assert_non_null(e);
		vend = (size_t)(e - block);
		while (vend + 2 < len &&
		       (block[vend + 2] == ' ' || block[vend + 2] == '\t')) {
			const char *e2 =
			    memmem(block + vend + 2, len - vend - 2, "\r\n", 2);

			assert_non_null(e2);
			vend = (size_t)(e2 - block);
		}
		if ((size_t)(e - line) > nl &&
		    strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;

			assert_null(found);
			while (*v == ' ')
				v++;
			found = xstrndup(v, (size_t)(block + vend - v));
		}
		pos = vend + 2;
	}
	return found;
}

static void
expect_field(const char *block, size_t len, const char *name, const char *want)
{
	char *v = field(block, len, name);

	if (want == NULL) {
		assert_null(v);
		return;
	}
	assert_non_null(v);
	assert_string_equal(v, want);
	xfree(v);
}

/* Every line ends in CRLF; no bare CR or LF anywhere. */
static void
assert_crlf_only(const struct buf *b)
{
	size_t i;

	assert_true(b->len >= 2);
	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\n')
			assert_true(i > 0 && b->data[i - 1] == '\r');
		if (b->data[i] == '\r')
			assert_true(i + 1 < b->len && b->data[i + 1] == '\n');
	}
	assert_memory_equal(b->data + b->len - 2, "\r\n", 2);
}

/* Per-message block is the first paragraph of part 2; per-recipient
 * blocks follow, separated by empty lines. Returns block k. */
static void
status_block(const struct part *pt, size_t k, const char **p, size_t *n)
{
	const char *s = pt->body, *end = pt->body + pt->body_len, *e;

	for (;;) {
		e = memmem(s, (size_t)(end - s), "\r\n\r\n", 4);
		if (k == 0) {
			*p = s;
			*n = e ? (size_t)(e - s) + 2 : (size_t)(end - s);
			return;
		}
		assert_non_null(e);
		s = e + 4;
		k--;
	}
}

/* ---- fixtures ---- */

static struct dsn_rcpt
failed_rcpt(void)
{
	struct dsn_rcpt r = {
	    .final_rcpt = "bob@example.net",
	    .orig_rcpt = "rfc822;bob@example.net",
	    .action = DSN_FAILED,
	    .status = "5.1.1",
	    .remote_mta = "mx1.example.net",
	    .diag_type = "smtp",
	    .diag = "550-5.1.1 The email account that you tried to reach "
		    "does not exist.\r\n"
		    "550-5.1.1 Please try double-checking the recipient's "
		    "email\r\n"
		    "550 5.1.1 address for typos.",
	    .last_attempt = T_NOW - 60,
	};
	return r;
}

static struct dsn_msg
base_msg(const struct dsn_rcpt *rcpts, size_t n)
{
	struct dsn_msg m = {
	    .reporting_mta = "mx.example.org",
	    .queue_id = "Q123ABC",
	    .envid = "env-42",
	    .sender = "alice@example.org",
	    .arrival = T_ARRIVAL,
	    .now = T_NOW,
	    .rcpts = rcpts,
	    .nrcpts = n,
	    .orig = orig_msg,
	    .orig_len = sizeof orig_msg - 1,
	    .ret_full = false,
	    .boundary_seed = "seed01",
	};
	return m;
}

static void
compose(const struct dsn_msg *m, struct report *r)
{
	buf_init(&r->out, T_MAX);
	assert_int_equal(dsn_compose(m, &r->out), 0);
	assert_crlf_only(&r->out);
	parse_report(r);
}

static void
date_of(time_t t, char *d, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(d, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* ---- tests ---- */

static void
test_structure(void **state)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	const char *blk;
	size_t n;
	char d[64], *v;

	compose(&m, &r);
	expect_field(r.hdr, r.hdr_len, "From",
		     "Mail Delivery System <MAILER-DAEMON@mx.example.org>");
	expect_field(r.hdr, r.hdr_len, "To", "<alice@example.org>");
	expect_field(r.hdr, r.hdr_len, "Subject",
		     "Undelivered Mail Returned to Sender");
	date_of(T_NOW, d, sizeof d);
	expect_field(r.hdr, r.hdr_len, "Date", d);
	expect_field(r.hdr, r.hdr_len, "Auto-Submitted", "auto-replied");
	expect_field(r.hdr, r.hdr_len, "MIME-Version", "1.0");
	v = field(r.hdr, r.hdr_len, "Message-ID");
	assert_non_null(v);
	assert_true(v[0] == '<' && strstr(v, "Q123ABC") != NULL);
	assert_non_null(strstr(v, "@mx.example.org>"));
	xfree(v);
	v = field(r.hdr, r.hdr_len, "Content-Type");
	assert_non_null(strstr(v, "multipart/report; "
				  "report-type=delivery-status;"));
	xfree(v);
	assert_non_null(strstr(r.boundary, "seed01"));
	assert_int_equal(r.nparts, 3);
	assert_true(r.closed);

	expect_field(r.parts[0].hdr, r.parts[0].hdr_len, "Content-Type",
		     "text/plain; charset=us-ascii");
	expect_field(r.parts[1].hdr, r.parts[1].hdr_len, "Content-Type",
		     "message/delivery-status");
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Type",
		     "text/rfc822-headers");

	status_block(&r.parts[1], 0, &blk, &n);
	expect_field(blk, n, "Reporting-MTA", "dns; mx.example.org");
	expect_field(blk, n, "X-Todoku-Queue-ID", "Q123ABC");
	expect_field(blk, n, "Original-Envelope-Id", "env-42");
	date_of(T_ARRIVAL, d, sizeof d);
	expect_field(blk, n, "Arrival-Date", d);
	expect_field(blk, n, "Final-Recipient", NULL);

	status_block(&r.parts[1], 1, &blk, &n);
	expect_field(blk, n, "Original-Recipient", "rfc822;bob@example.net");
	expect_field(blk, n, "Final-Recipient", "rfc822; bob@example.net");
	expect_field(blk, n, "Action", "failed");
	expect_field(blk, n, "Status", "5.1.1");
	expect_field(blk, n, "Remote-MTA", "dns; mx1.example.net");
	date_of(T_NOW - 60, d, sizeof d);
	expect_field(blk, n, "Last-Attempt-Date", d);
	expect_field(blk, n, "Will-Retry-Until", NULL);

	/* text part: recipient, host, advice for 5.1.x */
	assert_non_null(memmem(r.parts[0].body, r.parts[0].body_len,
			       "<bob@example.net>: could not be delivered",
			       41));
	assert_non_null(memmem(r.parts[0].body, r.parts[0].body_len,
			       "Remote server: mx1.example.net", 30));
	assert_non_null(
	    memmem(r.parts[0].body, r.parts[0].body_len, "no such user", 12));

	/* headers only: the original header block, no body */
	n = (size_t)(strstr(orig_msg, "\r\n\r\n") - orig_msg) + 2;
	assert_int_equal(r.parts[2].body_len, n);
	assert_memory_equal(r.parts[2].body, orig_msg, n);
	assert_null(
	    memmem(r.parts[2].body, r.parts[2].body_len, "Body line", 9));
	buf_free(&r.out);
}

/* The human text names the address too; Remote-MTA keeps the name only. */
static void
test_remote_addr(void **state)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m;
	struct report r;
	const char *want = "Remote server: mx1.example.net [192.0.2.7]\r\n";
	const char *mta = "Remote-MTA: dns; mx1.example.net\r\n";

	(void)state;
	rc.remote_addr = "192.0.2.7";
	m = base_msg(&rc, 1);
	compose(&m, &r);
	assert_non_null(
	    memmem(r.parts[0].body, r.parts[0].body_len, want, strlen(want)));
	assert_non_null(
	    memmem(r.parts[1].body, r.parts[1].body_len, mta, strlen(mta)));
	assert_null(
	    memmem(r.parts[1].body, r.parts[1].body_len, "192.0.2.7", 9));
	buf_free(&r.out);
}

static void
test_multiline_diag(void **state)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	const char *blk;
	size_t n;
	static const char quoted[] =
	    "The server said:\r\n"
	    "        550-5.7.1 [192.0.2.1] Our system has detected that "
	    "this\r\n"
	    "        550-5.7.1 message is likely unsolicited mail.\r\n"
	    "        550 5.7.1 See the sender guidelines.\r\n";

	rc.status = "5.7.1";
	rc.diag = "550-5.7.1 [192.0.2.1] Our system has detected that this\n"
		  "550-5.7.1 message is likely unsolicited mail.\r\n"
		  "550 5.7.1 See the sender guidelines.\r\n";
	compose(&m, &r);
	status_block(&r.parts[1], 1, &blk, &n);
	expect_field(blk, n, "Diagnostic-Code",
		     "smtp; 550-5.7.1 [192.0.2.1] Our system has detected "
		     "that this\r\n"
		     " 550-5.7.1 message is likely unsolicited mail.\r\n"
		     " 550 5.7.1 See the sender guidelines.");
	assert_non_null(memmem(r.parts[0].body, r.parts[0].body_len, quoted,
			       strlen(quoted)));
	assert_non_null(memmem(r.parts[0].body, r.parts[0].body_len, "SPF", 3));
	assert_non_null(memmem(r.parts[0].body, r.parts[0].body_len, "PTR", 3));
	buf_free(&r.out);
}

static int
has_line_starting(const struct buf *b, const char *prefix)
{
	size_t pl = strlen(prefix), i;

	for (i = 0; i < b->len; i++)
		if ((i == 0 || b->data[i - 1] == '\n') && b->len - i >= pl &&
		    strncasecmp(b->data + i, prefix, pl) == 0)
			return 1;
	return 0;
}

static void
test_utf8_rcpt(void **state)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	const char *blk;
	size_t n;

	/* SMTPUTF8 recipient: RFC 6533 utf-8 type, 7-bit xtext */
	rc.final_rcpt = "j\xc3\xbcrgen+\xf0\x9f\x98\x80@example.net";
	compose(&m, &r);
	status_block(&r.parts[1], 1, &blk, &n);
	expect_field(blk, n, "Final-Recipient",
		     "utf-8; j\\x{FC}rgen\\x{2B}\\x{1F600}@example.net");
	buf_free(&r.out);
}

static void
test_injection(void **state)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	const char *blk;
	size_t n, i;

	m.sender = "evil@example.org>\r\nBcc: victim@example.com";
	m.envid = "e1\r\nX-Injected-Env: 1";
	m.queue_id = "Q1\r\nX-Injected-Q: 1";
	rc.final_rcpt = "bob@example.net\nX-Injected-Rcpt: 1";
	rc.orig_rcpt = "rfc822;bob\rX-Injected-Orcpt: 1";
	rc.remote_mta = "mx\r\nX-Injected-Mta: 1";
	rc.diag_type = "smtp\r\nX-Injected-Type: 1";
	rc.diag = "550 caf\xc3\xa9 \x01\x1b[31m\r\n\r\n\r\n550 end";
	compose(&m, &r);
	assert_false(has_line_starting(&r.out, "Bcc:"));
	assert_false(has_line_starting(&r.out, "X-Injected"));
	expect_field(r.hdr, r.hdr_len, "To",
		     "<evil@example.org???Bcc: victim@example.com>");
	status_block(&r.parts[1], 0, &blk, &n);
	expect_field(blk, n, "Original-Envelope-Id", "e1??X-Injected-Env: 1");
	status_block(&r.parts[1], 1, &blk, &n);
	expect_field(blk, n, "Final-Recipient",
		     "rfc822; bob@example.net?X-Injected-Rcpt: 1");
	expect_field(blk, n, "Original-Recipient",
		     "rfc822;bob?X-Injected-Orcpt: 1");
	/* non-ASCII and controls become '?'; empty lines are dropped */
	expect_field(blk, n, "Diagnostic-Code",
		     "smtp--X-Injected-Type--1; 550 caf?? ??[31m\r\n 550 end");
	expect_field(blk, n, "Remote-MTA", "dns; mx--X-Injected-Mta--1");
	/* the report is pure ASCII without 8-bit originals */
	for (i = 0; i < r.out.len; i++)
		assert_true((unsigned char)r.out.data[i] < 0x80);
	buf_free(&r.out);
}

static void
test_ret_full(void **state)
{
	static const char lf_msg[] = "Subject: lf only\n"
				     "From: a@example.org\n"
				     "\n"
				     "line one\n"
				     "bare\rcr\n"
				     "last line without newline";
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	static const char want[] = "Subject: lf only\r\n"
				   "From: a@example.org\r\n"
				   "\r\n"
				   "line one\r\n"
				   "bare\rcr\r\n"
				   "last line without newline\r\n";

	m.ret_full = true;
	m.orig = lf_msg;
	m.orig_len = sizeof lf_msg - 1;
	buf_init(&r.out, T_MAX);
	assert_int_equal(dsn_compose(&m, &r.out), 0);
	parse_report(&r);
	assert_int_equal(r.nparts, 3);
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Type",
		     "message/rfc822");
	assert_int_equal(r.parts[2].body_len, sizeof want - 1);
	assert_memory_equal(r.parts[2].body, want, sizeof want - 1);
	buf_free(&r.out);

	/* same message, headers only: just the two header lines */
	m.ret_full = false;
	compose(&m, &r);
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Type",
		     "text/rfc822-headers");
	assert_int_equal(r.parts[2].body_len, 39);
	assert_memory_equal(r.parts[2].body, want, 39);
	buf_free(&r.out);

	/* no original at all: two parts */
	m.orig = NULL;
	m.orig_len = 0;
	compose(&m, &r);
	assert_int_equal(r.nparts, 2);
	buf_free(&r.out);
}

static void
test_delayed_vs_failed(void **state)
{
	struct dsn_rcpt rc[2];
	struct dsn_msg m;
	struct report r;
	const char *blk;
	size_t n;
	char d[64];

	rc[0] = failed_rcpt();
	rc[0].action = DSN_DELAYED;
	rc[0].status = "4.5.0";
	rc[0].diag = "450 4.5.0 Mail system is Busy";
	rc[0].will_retry_until = T_ARRIVAL + 5 * 86400;
	m = base_msg(rc, 1);
	compose(&m, &r);
	expect_field(r.hdr, r.hdr_len, "Subject",
		     "Delayed Mail (still being retried)");
	status_block(&r.parts[1], 1, &blk, &n);
	expect_field(blk, n, "Action", "delayed");
	expect_field(blk, n, "Status", "4.5.0");
	date_of(T_ARRIVAL + 5 * 86400, d, sizeof d);
	expect_field(blk, n, "Will-Retry-Until", d);
	assert_non_null(memmem(r.parts[0].body, r.parts[0].body_len,
			       "still being retried\r\n        until", 34));
	assert_non_null(
	    memmem(r.parts[0].body, r.parts[0].body_len, d, strlen(d)));
	buf_free(&r.out);

	/* one failed and one delayed: the failure decides the subject */
	rc[1] = failed_rcpt();
	rc[1].final_rcpt = "carol@example.net";
	rc[1].will_retry_until = T_NOW; /* ignored for failed */
	m = base_msg(rc, 2);
	compose(&m, &r);
	expect_field(r.hdr, r.hdr_len, "Subject",
		     "Undelivered Mail Returned to Sender");
	status_block(&r.parts[1], 2, &blk, &n);
	expect_field(blk, n, "Final-Recipient", "rfc822; carol@example.net");
	expect_field(blk, n, "Action", "failed");
	expect_field(blk, n, "Will-Retry-Until", NULL);
	buf_free(&r.out);

	/* delivered: success subject, no advice, 2.0.0 for a bad status */
	rc[0] = failed_rcpt();
	rc[0].action = DSN_DELIVERED;
	rc[0].status = "5.1.1\r\nX: y";
	rc[0].diag = "250 2.0.0 OK";
	m = base_msg(rc, 1);
	compose(&m, &r);
	expect_field(r.hdr, r.hdr_len, "Subject",
		     "Successful Mail Delivery Report");
	status_block(&r.parts[1], 1, &blk, &n);
	expect_field(blk, n, "Status", "2.0.0");
	expect_field(blk, n, "Action", "delivered");
	assert_null(memmem(r.parts[0].body, r.parts[0].body_len,
			   "What usually fixes it", 21));
	buf_free(&r.out);

	/* relayed (next hop without DSN): says so, success subject */
	rc[0].action = DSN_RELAYED;
	rc[0].status = "2.1.5";
	m = base_msg(rc, 1);
	compose(&m, &r);
	expect_field(r.hdr, r.hdr_len, "Subject",
		     "Successful Mail Delivery Report");
	status_block(&r.parts[1], 1, &blk, &n);
	expect_field(blk, n, "Action", "relayed");
	expect_field(blk, n, "Status", "2.1.5");
	assert_non_null(memmem(r.parts[0].body, r.parts[0].body_len,
			       "does not send delivery", 22));
	assert_null(memmem(r.parts[0].body, r.parts[0].body_len,
			   "What usually fixes it", 21));
	buf_free(&r.out);
}

static void
test_boundary_collision(void **state)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	struct buf evil;
	char first[128];

	compose(&m, &r);
	memcpy(first, r.boundary, sizeof first);
	buf_free(&r.out);

	buf_init(&evil, T_MAX);
	assert_int_equal(buf_addf(&evil,
				  "Subject: x\r\nX-B: %s\r\n\r\n--%s\r\n"
				  "Content-Type: text/plain\r\n\r\nfake\r\n"
				  "--%s--\r\n",
				  first, first, first),
			 0);
	m.orig = evil.data;
	m.orig_len = evil.len;
	m.ret_full = true;
	compose(&m, &r);
	assert_string_not_equal(r.boundary, first);
	assert_null(strstr(evil.data, r.boundary));
	assert_int_equal(r.nparts, 3);
	assert_true(r.closed);
	assert_int_equal(r.parts[2].body_len, evil.len);
	buf_free(&r.out);
	buf_free(&evil);
}

static void
test_eightbit_original(void **state)
{
	static const char msg8[] = "Subject: caf\xc3\xa9\r\n\r\nbody\r\n";
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;

	m.orig = msg8;
	m.orig_len = sizeof msg8 - 1;
	compose(&m, &r);
	expect_field(r.hdr, r.hdr_len, "Content-Transfer-Encoding", "8bit");
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len,
		     "Content-Transfer-Encoding", "8bit");
	buf_free(&r.out);

	m.orig = orig_msg;
	m.orig_len = sizeof orig_msg - 1;
	compose(&m, &r);
	expect_field(r.hdr, r.hdr_len, "Content-Transfer-Encoding", NULL);
	buf_free(&r.out);
}

static void
test_limits_and_null_sender(void **state)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct buf b;

	buf_init(&b, 300);
	assert_int_equal(buf_adds(&b, "keep"), 0);
	assert_int_equal(dsn_compose(&m, &b), -1);
	assert_int_equal(b.len, 4);
	assert_string_equal(b.data, "keep");
	buf_free(&b);

	buf_init(&b, T_MAX);
	m.sender = "";
	assert_int_equal(dsn_compose(&m, &b), -1);
	m.sender = NULL;
	assert_int_equal(dsn_compose(&m, &b), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_header_len(void **state)
{
	static const char crlf[] = "A: 1\r\nB: 2\r\n\r\nbody\r\n";
	static const char lf[] = "A: 1\nB: 2\n\nbody\n";
	static const char mixed[] = "A: 1\r\nB: 2\n\r\nbody";
	static const char nobody[] = "A: 1\r\nB: 2\r\n";
	static const char noeol[] = "A: 1\r\nB: 2";
	static const char blank_first[] = "\r\nbody\r\n";
	static const char folded[] = "A: 1\r\n  \r\n\r\nbody";

	assert_int_equal(dsn_header_len(crlf, sizeof crlf - 1), 14);
	assert_int_equal(dsn_header_len(lf, sizeof lf - 1), 11);
	assert_int_equal(dsn_header_len(mixed, sizeof mixed - 1), 13);
	assert_int_equal(dsn_header_len(nobody, sizeof nobody - 1),
			 sizeof nobody - 1);
	assert_int_equal(dsn_header_len(noeol, sizeof noeol - 1),
			 sizeof noeol - 1);
	assert_int_equal(dsn_header_len(blank_first, sizeof blank_first - 1),
			 2);
	assert_int_equal(dsn_header_len("", 0), 0);
	/* a whitespace-only line is not the end of the header block */
	assert_int_equal(dsn_header_len(folded, sizeof folded - 1), 12);
}

static void
test_long_diag_line(void **state)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	char *longd = xmalloc(3001);
	size_t i, col = 0;

	memset(longd, 'x', 3000);
	longd[3000] = '\0';
	rc.diag = longd;
	compose(&m, &r);
	for (i = 0; i < r.out.len; i++) {
		col = r.out.data[i] == '\n' ? 0 : col + 1;
		assert_true(col <= 998);
	}
	buf_free(&r.out);
	xfree(longd);
}

/* Deterministic xorshift for the random-input test. */
static uint32_t
rnd(uint32_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 17;
	*st ^= *st << 5;
	return *st;
}

static char *
rnd_str(uint32_t *st)
{
	size_t n = rnd(st) % 40, i;
	char *s = xmalloc(n + 1);

	for (i = 0; i < n; i++)
		s[i] = (char)(1 + rnd(st) % 255);
	s[n] = '\0';
	return s;
}

/* Top-level header names are exactly ours, whatever the input. */
static void
check_top_names(const struct report *r)
{
	static const char *const names[] = {"From:",
					    "To:",
					    "Subject:",
					    "Date:",
					    "Message-ID:",
					    "Auto-Submitted:",
					    "MIME-Version:",
					    "Content-Type:",
					    "Content-Transfer-Encoding:",
					    "\t"};
	size_t pos = 0, i;

	while (pos < r->hdr_len) {
		const char *line = r->hdr + pos;
		const char *e = strstr(line, "\r\n");
		int ok = 0;

		for (i = 0; i < sizeof names / sizeof names[0]; i++)
			ok |= strncmp(line, names[i], strlen(names[i])) == 0;
		assert_true(ok);
		pos = (size_t)(e - r->hdr) + 2;
	}
}

static void
test_random_inputs(void **state)
{
	uint32_t st = 12345;
	int iter;

	for (iter = 0; iter < 300; iter++) {
		struct dsn_rcpt rc = failed_rcpt();
		struct dsn_msg m = base_msg(&rc, 1);
		struct report r;
		char *f[8];
		int i;

		for (i = 0; i < 8; i++)
			f[i] = rnd_str(&st);
		m.sender = f[0][0] ? f[0] : "x";
		m.envid = f[1];
		m.queue_id = f[2];
		m.reporting_mta = f[3];
		rc.final_rcpt = f[4];
		rc.orig_rcpt = f[5];
		rc.diag = f[6];
		rc.remote_mta = f[7];
		rc.action = (enum dsn_action)(rnd(&st) % 5);
		compose(&m, &r);
		check_top_names(&r);
		assert_int_equal(r.nparts, 3);
		assert_true(r.closed);
		buf_free(&r.out);
		for (i = 0; i < 8; i++)
			xfree(f[i]);
	}
}

/* RET=FULL over ret_max: header block whole, body cut after the last
 * line end that fits, the text part says how much, nothing else changed. */
static void
test_ret_full_cut(void **state)
{
	static const char msg[] = "Subject: big\r\n"
				  "From: a@example.org\r\n"
				  "\r\n"
				  "line 01 aaaaaaaaaa\r\n"
				  "line 02 bbbbbbbbbb\r\n"
				  "line 03 cccccccccc\r\n"
				  "line 04 dddddddddd\r\n";
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	size_t hl = 37; /* the header block with its empty line */

	m.ret_full = true;
	m.orig = msg;
	m.orig_len = sizeof msg - 1;
	m.ret_max = hl + 2 * 20 + 7; /* two lines and part of the third */
	compose(&m, &r);
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Type",
		     "message/rfc822");
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Description",
		     "Undelivered message (cut short)");
	assert_int_equal(r.parts[2].body_len, hl + 40);
	assert_memory_equal(r.parts[2].body, msg, hl + 40);
	assert_non_null(strstr(r.out.data, "first 77\r\noctets of 117"));
	buf_free(&r.out);

	/* a cap inside the header block: the header block whole, no body */
	m.ret_max = 10;
	compose(&m, &r);
	assert_int_equal(r.parts[2].body_len, hl);
	buf_free(&r.out);

	/* exactly the message: whole, not cut */
	m.ret_max = sizeof msg - 1;
	compose(&m, &r);
	assert_int_equal(r.parts[2].body_len, sizeof msg - 1);
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Description",
		     "Undelivered message");
	assert_null(strstr(r.out.data, "cut at the end"));
	buf_free(&r.out);

	/* only a prefix was read (orig_total larger): cut even without cap */
	m.ret_max = 0;
	m.orig_len = sizeof msg - 1 - 5;
	m.orig_total = 5000;
	compose(&m, &r);
	assert_int_equal(r.parts[2].body_len, hl + 60);
	assert_non_null(strstr(r.out.data, "octets of 5000"));
	buf_free(&r.out);

	/* a prefix without the end of the header block: headers only */
	m.orig_len = 20;
	compose(&m, &r);
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Type",
		     "text/rfc822-headers");
	buf_free(&r.out);
}

/* A multipart original cut short is closed with its own boundary. */
static void
test_ret_full_cut_multipart(void **state)
{
	static const char msg[] =
	    "Subject: parts\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed;\r\n"
	    "\tcharset=x; BOUNDARY=\"b1 x\"\r\n"
	    "\r\n"
	    "preamble\r\n"
	    "--b1 x\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "first part\r\n"
	    "--b1 x\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "second part, long long long long long long long long\r\n"
	    "--b1 x--\r\n";
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	const char *hdr_end = strstr(msg, "\r\n\r\n") + 4;
	size_t hl = (size_t)(hdr_end - msg);
	const char *second = strstr(msg, "second part");
	size_t keep = (size_t)(second - msg);

	m.ret_full = true;
	m.orig = msg;
	m.orig_len = sizeof msg - 1;
	m.ret_max = keep + 10; /* inside the second part's only line */
	compose(&m, &r);
	assert_int_equal(r.parts[2].body_len, keep + strlen("--b1 x--\r\n"));
	assert_memory_equal(r.parts[2].body, msg, keep);
	assert_memory_equal(r.parts[2].body + keep, "--b1 x--\r\n", 10);
	assert_true(r.closed);
	assert_int_equal(r.nparts, 3);
	buf_free(&r.out);

	/* cut in the preamble: an empty part, then the close delimiter */
	m.ret_max = hl + 3;
	compose(&m, &r);
	assert_int_equal(r.parts[2].body_len,
			 hl + strlen("--b1 x\r\n\r\n--b1 x--\r\n"));
	assert_memory_equal(r.parts[2].body + hl, "--b1 x\r\n\r\n--b1 x--\r\n",
			    20);
	buf_free(&r.out);

	/* cut after the close delimiter (epilogue): nothing added */
	m.ret_max = 0;
	m.orig_total = sizeof msg + 100;
	compose(&m, &r);
	assert_int_equal(r.parts[2].body_len, sizeof msg - 1);
	buf_free(&r.out);
}

static void
expect_boundary(const char *hdr, const char *want)
{
	char out[71];
	size_t n = dsn_multipart_boundary(hdr, strlen(hdr), out, sizeof out);

	if (want == NULL) {
		assert_int_equal(n, 0);
		return;
	}
	assert_int_equal(n, strlen(want));
	assert_string_equal(out, want);
}

static void
test_multipart_boundary(void **state)
{
	char long71[200];

	expect_boundary("Content-Type: multipart/mixed; boundary=abc\r\n\r\n",
			"abc");
	expect_boundary("content-type :  Multipart/Alternative;\r\n"
			" x=\"a;b=\\\"c\"; Boundary = \"q:r=s t\"\r\n\r\nbody",
			"q:r=s t");
	expect_boundary("Subject: x\nContent-Type: multipart/signed; "
			"protocol=\"application/pgp-signature\";\n"
			"\tboundary=\"sig\"\n\n",
			"sig");
	expect_boundary("Content-Type: text/plain; boundary=abc\r\n\r\n", NULL);
	expect_boundary("Content-Type: multipart/mixed\r\n\r\n", NULL);
	expect_boundary("Content-Type: multipart/mixed; boundary=\"\"\r\n",
			NULL);
	expect_boundary("Content-Type: multipart/mixed; boundary=\"a \"\r\n",
			NULL);
	expect_boundary("Content-Type: multipart/mixed; boundary=\"a<b\"\r\n",
			NULL);
	expect_boundary("Content-Type: multipart/mixed; boundary=\"abc\r\n",
			NULL);
	expect_boundary("Content-Type: multipart/mixed; boundaryx=abc\r\n",
			NULL);
	/* only the first Content-Type, and not one in the body */
	expect_boundary("Content-Type: text/plain\r\nContent-Type: multipart/"
			"mixed; boundary=z\r\n",
			NULL);
	expect_boundary("Subject: s\r\n\r\nContent-Type: multipart/mixed; "
			"boundary=z\r\n",
			NULL);
	memset(long71, 'a', 71);
	snprintf(long71 + 71, sizeof long71 - 71, "%s", "");
	{
		char h[300];

		snprintf(h, sizeof h,
			 "Content-Type: multipart/mixed; boundary=%s\r\n",
			 long71);
		expect_boundary(h, NULL);
		long71[70] = '\0';
		snprintf(h, sizeof h,
			 "Content-Type: multipart/mixed; boundary=%s\r\n",
			 long71);
		expect_boundary(h, long71);
	}
	assert_true(dsn_is_8bit("a\xc3\xa9", 3));
	assert_false(dsn_is_8bit("abc\r\n", 5));
}

/* RFC 6533 ORCPT: decoded for people in the text part (UTF-8), kept in
 * its 7-bit form in Original-Recipient. */
static void
test_utf8_orcpt(void **state)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	const char *blk;
	size_t n;
	char out[64];

	rc.orig_rcpt = "utf-8;J\\x{F6}rg@b\\x{E4}r.example";
	compose(&m, &r);
	expect_field(r.parts[0].hdr, r.parts[0].hdr_len, "Content-Type",
		     "text/plain; charset=utf-8");
	expect_field(r.parts[0].hdr, r.parts[0].hdr_len,
		     "Content-Transfer-Encoding", "8bit");
	expect_field(r.hdr, r.hdr_len, "Content-Transfer-Encoding", "8bit");
	assert_non_null(memmem(r.parts[0].body, r.parts[0].body_len,
			       "    Original recipient: <J\xc3\xb6rg@b\xc3\xa4r"
			       ".example>\r\n",
			       44));
	status_block(&r.parts[1], 1, &blk, &n);
	expect_field(blk, n, "Original-Recipient",
		     "utf-8;J\\x{F6}rg@b\\x{E4}r.example");
	assert_true(dsn_is_8bit(r.out.data, r.out.len));
	buf_free(&r.out);

	/* the fallback ORCPT (the address given in an SMTPUTF8 RCPT) gets
	 * the 7-bit utf-8 form, not '?' */
	rc.orig_rcpt = "rfc822;J\xc3\xb6rg@example.net";
	compose(&m, &r);
	status_block(&r.parts[1], 1, &blk, &n);
	expect_field(blk, n, "Original-Recipient",
		     "utf-8;J\\x{F6}rg@example.net");
	buf_free(&r.out);

	/* ASCII ORCPT equal to the final recipient: no extra line, us-ascii */
	rc.orig_rcpt = "rfc822;BOB@example.net";
	compose(&m, &r);
	expect_field(r.parts[0].hdr, r.parts[0].hdr_len, "Content-Type",
		     "text/plain; charset=us-ascii");
	assert_null(memmem(r.parts[0].body, r.parts[0].body_len,
			   "Original recipient", 18));
	expect_field(r.hdr, r.hdr_len, "Content-Transfer-Encoding", NULL);
	buf_free(&r.out);

	/* decoding: controls and malformed escapes stay as written */
	assert_int_equal(dsn_orcpt_display("utf-8;a\\x{7}\\x{D800}\\x{zz}"
					   "\\x{1F600}\\x{5C}",
					   out, sizeof out),
			 strlen("a\\x{7}\\x{D800}\\x{zz}\xf0\x9f\x98\x80\\"));
	assert_string_equal(out, "a\\x{7}\\x{D800}\\x{zz}\xf0\x9f\x98\x80\\");
	dsn_orcpt_display("rfc822;a\\x{F6}@b", out, sizeof out);
	assert_string_equal(out, "a\\x{F6}@b");
	/* bounded, never a split character */
	assert_int_equal(dsn_orcpt_display("utf-8;ab\\x{F6}", out, 4), 2);
	assert_string_equal(out, "ab");
}

/* The longest line of b, CRLF not counted. */
static size_t
longest_line(const struct buf *b)
{
	size_t best = 0, start = 0;

	for (size_t i = 0; i + 1 < b->len; i++)
		if (b->data[i] == '\r' && b->data[i + 1] == '\n') {
			if (i - start > best)
				best = i - start;
			start = i + 2;
		}
	return best;
}

/* RET=FULL with a line over 998 octets in the body or the header: the
 * header alone is returned (text/rfc822-headers, every line within 998),
 * and the text part says which line and why. Exactly 998 still goes back
 * whole. */
static void
test_ret_full_long_line(void **state)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_msg m = base_msg(&rc, 1);
	struct report r;
	struct buf o;
	const char *hdr = "From: a@example.org\r\nSubject: long\r\n\r\n";
	char *text;

	buf_init(&o, 1 << 20);
	buf_adds(&o, hdr);
	buf_adds(&o, "short line\r\n");
	for (int i = 0; i < 998; i++)
		buf_addc(&o, 'x');
	buf_adds(&o, "\r\nend\r\n");
	m.ret_full = true;
	m.orig = o.data;
	m.orig_len = o.len;
	compose(&m, &r);
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Type",
		     "message/rfc822");
	assert_int_equal(r.parts[2].body_len, o.len);
	buf_free(&r.out);

	/* 999 octets on line 2 of the body */
	buf_reset(&o);
	buf_adds(&o, hdr);
	buf_adds(&o, "short line\r\n");
	for (int i = 0; i < 999; i++)
		buf_addc(&o, 'y');
	buf_adds(&o, "\r\nend\r\n");
	m.orig = o.data;
	m.orig_len = o.len;
	compose(&m, &r);
	assert_int_equal(r.nparts, 3);
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Type",
		     "text/rfc822-headers");
	assert_int_equal(r.parts[2].body_len, strlen(hdr) - 2);
	assert_memory_equal(r.parts[2].body, hdr, strlen(hdr) - 2);
	text = xstrndup(r.parts[0].body, r.parts[0].body_len);
	assert_non_null(strstr(text, "Your original message is not attached "
				     "whole: line 2 of its body\r\nis 999 "
				     "octets long, more than the 998"));
	assert_null(strstr(text, "The header of your original message is "
				 "attached."));
	xfree(text);
	assert_true(longest_line(&r.out) <= 998);
	buf_free(&r.out);

	/* the same under a ret_max cut that ends before the long line: the
	 * cut prefix goes back as usual */
	m.ret_max = strlen(hdr) + 14;
	compose(&m, &r);
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Type",
		     "message/rfc822");
	buf_free(&r.out);
	m.ret_max = 0;

	/* a header line of 1200 octets: headers only, that line cut at
	 * 998 without splitting a UTF-8 character */
	buf_reset(&o);
	buf_adds(&o, "Subject: ");
	for (int i = 0; i < 594; i++)
		buf_adds(&o, "\xc3\xa9"); /* 9 + 1188 octets */
	buf_adds(&o, "\r\nFrom: a@example.org\r\n\r\nbody\r\n");
	m.orig = o.data;
	m.orig_len = o.len;
	compose(&m, &r);
	expect_field(r.parts[2].hdr, r.parts[2].hdr_len, "Content-Type",
		     "text/rfc822-headers");
	/* 9 + 2 * 494 = 997: the cut backs off the half character */
	assert_int_equal(r.parts[2].body_len, 997 + 2 + 21);
	assert_memory_equal(r.parts[2].body, o.data, 997);
	assert_memory_equal(r.parts[2].body + 997, "\r\nFrom: a@example.org",
			    21);
	text = xstrndup(r.parts[0].body, r.parts[0].body_len);
	assert_non_null(strstr(text, "line 1 of its header\r\nis 1197 octets"));
	assert_non_null(strstr(text, "Header lines longer than 998 octets are "
				     "shown cut short."));
	xfree(text);
	assert_true(longest_line(&r.out) <= 998);
	buf_free(&r.out);

	/* RET=HDRS: the same cut, no word about the body */
	m.ret_full = false;
	compose(&m, &r);
	assert_int_equal(r.parts[2].body_len, 997 + 2 + 21);
	text = xstrndup(r.parts[0].body, r.parts[0].body_len);
	assert_null(strstr(text, "not attached whole"));
	assert_non_null(strstr(text, "The header of your original message is "
				     "attached."));
	xfree(text);
	buf_free(&r.out);
	buf_free(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_structure),
	    cmocka_unit_test(test_multiline_diag),
	    cmocka_unit_test(test_remote_addr),
	    cmocka_unit_test(test_injection),
	    cmocka_unit_test(test_utf8_rcpt),
	    cmocka_unit_test(test_utf8_orcpt),
	    cmocka_unit_test(test_ret_full),
	    cmocka_unit_test(test_ret_full_cut),
	    cmocka_unit_test(test_ret_full_cut_multipart),
	    cmocka_unit_test(test_ret_full_long_line),
	    cmocka_unit_test(test_multipart_boundary),
	    cmocka_unit_test(test_delayed_vs_failed),
	    cmocka_unit_test(test_boundary_collision),
	    cmocka_unit_test(test_eightbit_original),
	    cmocka_unit_test(test_limits_and_null_sender),
	    cmocka_unit_test(test_header_len),
	    cmocka_unit_test(test_long_diag_line),
	    cmocka_unit_test(test_random_inputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
