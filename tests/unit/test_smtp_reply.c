/* test_smtp_reply — SMTP reply parser (mail/smtp_reply.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "mail/smtp_reply.h"

#define MAXR 8

/* Parse n bytes fed in pieces of `piece` (0: whole); returns replies. */
static size_t
parse(const char *in, size_t n, size_t piece, struct smtp_response *r,
      size_t maxr)
{
	struct smtp_reply_parser p;
	size_t pos = 0, len, used, nr = 0;
	bool done;

	smtp_reply_parser_init(&p);
	while (pos < n) {
		len = piece == 0 || piece > n - pos ? n - pos : piece;
		used = smtp_reply_feed(&p, in + pos, len, &r[nr], &done);
		assert_true(used <= len);
		pos += used;
		if (done) {
			assert_true(nr < maxr);
			nr++;
		} else
			assert_int_equal(used, len);
	}
	smtp_reply_parser_free(&p);
	return nr;
}

static size_t
parses(const char *in, struct smtp_response *r)
{
	return parse(in, strlen(in), 0, r, MAXR);
}

static void
free_all(struct smtp_response *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		smtp_response_free(&r[i]);
}

static void
assert_line(const struct smtp_response *r, size_t i, const char *want)
{
	size_t n;
	const char *l = smtp_response_line(r, i, &n);

	assert_int_equal(n, strlen(want));
	assert_memory_equal(l, want, n);
}

static void
test_single(void **state)
{
	struct smtp_response r[MAXR];
	char st[SMTP_STATUS_MAX];

	assert_int_equal(parses("250 2.1.0 Ok\r\n", r), 1);
	assert_int_equal(r[0].code, 250);
	assert_int_equal(r[0].error, SMTP_REPLY_OK);
	assert_int_equal(r[0].nlines, 1);
	assert_string_equal(r[0].text.data, "250 2.1.0 Ok");
	assert_string_equal(r[0].lines[0].status, "2.1.0");
	smtp_response_status(&r[0], st);
	assert_string_equal(st, "2.1.0");
	assert_false(r[0].bare_lf);
	free_all(r, 1);

	assert_int_equal(parses("354\r\n", r), 1);
	assert_int_equal(r[0].code, 354);
	assert_int_equal(r[0].error, SMTP_REPLY_OK);
	free_all(r, 1);
}

static void
test_multiline(void **state)
{
	struct smtp_response r[MAXR];
	char st[SMTP_STATUS_MAX];
	const char *in = "550-5.7.1 [192.0.2.1] Our system has detected\r\n"
			 "550-5.7.1 very low reputation of the sending IP\r\n"
			 "550 5.7.1 https://support.example/answer 1si\r\n"
			 "221 bye\r\n";

	assert_int_equal(parses(in, r), 2);
	assert_int_equal(r[0].code, 550);
	assert_int_equal(r[0].nlines, 3);
	assert_line(&r[0], 0, "550-5.7.1 [192.0.2.1] Our system has detected");
	assert_line(&r[0], 2, "550 5.7.1 https://support.example/answer 1si");
	assert_string_equal(
	    r[0].text.data,
	    "550-5.7.1 [192.0.2.1] Our system has detected\r\n"
	    "550-5.7.1 very low reputation of the sending IP\r\n"
	    "550 5.7.1 https://support.example/answer 1si");
	smtp_response_status(&r[0], st);
	assert_string_equal(st, "5.7.1");
	assert_int_equal(r[1].code, 221);
	free_all(r, 2);
}

static void
test_mixed_codes(void **state)
{
	struct smtp_response r[MAXR];
	struct smtp_reply_parser p;
	struct smtp_response one;
	const char *in = "250-first\r\n251 second\r\n250 later\r\n";
	bool done;
	size_t used;

	smtp_reply_parser_init(&p);
	used = smtp_reply_feed(&p, in, strlen(in), &one, &done);
	assert_true(done);
	assert_int_equal(used, strlen(in)); /* dead: swallows the rest */
	assert_int_equal(one.error, SMTP_REPLY_EMIXED);
	assert_int_equal(one.code, 250);
	assert_int_equal(one.nlines, 2);
	assert_true(smtp_reply_parser_dead(&p));
	used = smtp_reply_feed(&p, "250 ok\r\n", 8, &one, &done);
	assert_false(done);
	assert_int_equal(used, 8);
	smtp_response_free(&one);
	smtp_reply_parser_free(&p);

	assert_int_equal(parses("hello\r\n", r), 1);
	assert_int_equal(r[0].error, SMTP_REPLY_ESYNTAX);
	free_all(r, 1);
	assert_int_equal(parses("2500 x\r\n", r), 1);
	assert_int_equal(r[0].error, SMTP_REPLY_ESYNTAX);
	free_all(r, 1);
	assert_int_equal(parses("199 x\r\n", r), 1);
	assert_int_equal(r[0].error, SMTP_REPLY_ESYNTAX);
	free_all(r, 1);
	assert_int_equal(parses("250-ok\r\nfoo\r\n", r), 1);
	assert_int_equal(r[0].error, SMTP_REPLY_ESYNTAX);
	free_all(r, 1);
}

static void
test_enhanced(void **state)
{
	char st[SMTP_STATUS_MAX];
	struct smtp_response r[MAXR];

	assert_int_equal(smtp_status_parse("5.7.1 x", 7, st), 5);
	assert_string_equal(st, "5.7.1");
	assert_int_equal(smtp_status_parse("4.123.456", 9, st), 9);
	assert_int_equal(smtp_status_parse("4.1234.5", 8, st), 0);
	assert_int_equal(smtp_status_parse("3.1.1 x", 7, st), 0);
	assert_int_equal(smtp_status_parse("5.1.1x", 6, st), 0);
	assert_int_equal(smtp_status_parse("5.1.", 4, st), 0);
	assert_int_equal(smtp_status_parse("5..1 ", 5, st), 0);
	assert_string_equal(st, "");

	assert_int_equal(parses("553 No such user\r\n", r), 1);
	smtp_response_status(&r[0], st);
	assert_string_equal(st, "5.0.0");
	free_all(r, 1);
	assert_int_equal(parses("450 5.2.1 class mismatch\r\n", r), 1);
	assert_string_equal(r[0].lines[0].status, "5.2.1");
	smtp_response_status(&r[0], st);
	assert_string_equal(st, "4.0.0");
	free_all(r, 1);
	assert_int_equal(parses("250-a\r\n250 2.0.0 b\r\n", r), 1);
	assert_string_equal(r[0].lines[1].status, "2.0.0");
	free_all(r, 1);
}

static void
test_ehlo(void **state)
{
	struct smtp_response r[MAXR];
	struct smtp_ehlo e;
	const char *in = "250-mx.example.org greets you\r\n"
			 "250-pipelining\r\n"
			 "250-Size 35882577\r\n"
			 "250-8bitmime\r\n"
			 "250-AUTH PLAIN login\r\n"
			 "250-AUTH=XOAUTH2\r\n"
			 "250-STARTTLS\r\n"
			 "250-DSN\r\n"
			 "250-ENHANCEDSTATUSCODES\r\n"
			 "250-CHUNKING\r\n"
			 "250 SMTPUTF8\r\n";

	assert_int_equal(parses(in, r), 1);
	smtp_ehlo_parse(&r[0], &e);
	assert_true(e.pipelining);
	assert_true(e.size);
	assert_int_equal(e.size_max, 35882577);
	assert_true(e.eightbitmime);
	assert_true(e.auth);
	assert_int_equal(e.auth_mechs,
			 SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_XOAUTH2);
	assert_true(e.starttls);
	assert_true(e.dsn);
	assert_true(e.enhancedstatuscodes);
	assert_true(e.chunking);
	assert_true(e.smtputf8);
	free_all(r, 1);

	/* The greeting line is not a keyword; SIZE without a number. */
	assert_int_equal(
	    parses("250-STARTTLS\r\n250-SIZE\r\n250 PIPELININGX\r\n", r), 1);
	smtp_ehlo_parse(&r[0], &e);
	assert_false(e.starttls);
	assert_true(e.size);
	assert_int_equal(e.size_max, 0);
	assert_false(e.pipelining);
	free_all(r, 1);

	assert_int_equal(
	    parses("250-x\r\n250 SIZE 99999999999999999999999\r\n", r), 1);
	smtp_ehlo_parse(&r[0], &e);
	assert_int_equal(e.size_max, 0);
	free_all(r, 1);
}

static void
test_line_limits(void **state)
{
	static char in[SMTP_REPLY_LINE_MAX + 64];
	struct smtp_response r[MAXR];

	memset(in, 'a', sizeof(in));
	memcpy(in, "250 ", 4);
	memcpy(in + SMTP_REPLY_LINE_MAX, "\r\n", 2);
	assert_int_equal(parse(in, SMTP_REPLY_LINE_MAX + 2, 0, r, MAXR), 1);
	assert_int_equal(r[0].error, SMTP_REPLY_OK);
	assert_int_equal(r[0].lines[0].len, SMTP_REPLY_LINE_MAX);
	free_all(r, 1);

	memcpy(in + SMTP_REPLY_LINE_MAX, "b\r\n", 3);
	assert_int_equal(parse(in, SMTP_REPLY_LINE_MAX + 3, 0, r, MAXR), 1);
	assert_int_equal(r[0].error, SMTP_REPLY_ELONG);
	assert_int_equal(r[0].code, 250);
	assert_int_equal(r[0].lines[0].len, SMTP_REPLY_LINE_MAX);
	assert_memory_equal(r[0].text.data, in, SMTP_REPLY_LINE_MAX);
	free_all(r, 1);
}

static void
test_count_limits(void **state)
{
	static char in[200 * 2100];
	struct smtp_response r[MAXR];
	size_t n = 0, i;

	for (i = 0; i < SMTP_REPLY_LINES_MAX; i++) {
		memcpy(in + n,
		       i + 1 < SMTP_REPLY_LINES_MAX ? "250-x\r\n" : "250 x\r\n",
		       7);
		n += 7;
	}
	assert_int_equal(parse(in, n, 0, r, MAXR), 1);
	assert_int_equal(r[0].error, SMTP_REPLY_OK);
	assert_int_equal(r[0].nlines, SMTP_REPLY_LINES_MAX);
	free_all(r, 1);

	memcpy(in + n - 7, "250-x\r\n250 x\r\n", 14);
	n += 7;
	assert_int_equal(parse(in, n, 0, r, MAXR), 1);
	assert_int_equal(r[0].error, SMTP_REPLY_ELINES);
	assert_int_equal(r[0].nlines, SMTP_REPLY_LINES_MAX);
	free_all(r, 1);

	/* 40 lines of 2000 octets pass 64 KiB. */
	n = 0;
	for (i = 0; i < 40; i++) {
		memset(in + n, 'y', 2000);
		memcpy(in + n, "250-", 4);
		memcpy(in + n + 2000, "\r\n", 2);
		n += 2002;
	}
	assert_int_equal(parse(in, n, 0, r, MAXR), 1);
	assert_int_equal(r[0].error, SMTP_REPLY_EBIG);
	assert_true(r[0].text.len <= SMTP_REPLY_TEXT_MAX);
	free_all(r, 1);
}

static void
test_bare_lf_and_cr(void **state)
{
	struct smtp_response r[MAXR];

	assert_int_equal(parses("250-a\n250 b\r\n", r), 1);
	assert_true(r[0].bare_lf);
	assert_int_equal(r[0].nlines, 2);
	assert_string_equal(r[0].text.data, "250-a\r\n250 b");
	free_all(r, 1);

	assert_int_equal(parses("250 a\rb\r\r\n", r), 1);
	assert_false(r[0].bare_lf);
	assert_int_equal(r[0].lines[0].len, 8);
	assert_memory_equal(r[0].text.data, "250 a\rb\r", 8);
	free_all(r, 1);
}

/* Every split point gives the same replies as one feed. */
static void
test_split_feeds(void **state)
{
	const char *in = "220-mx.example ESMTP\r\n220 ready\r\n"
			 "250-mx\r\n250-PIPELINING\n250 8BITMIME\r\n"
			 "550-5.1.1 no\r\r\n550 5.1.1 such user\r\n"
			 "451 4.3.0 try later\r\n";
	struct smtp_response a[MAXR], b[MAXR];
	struct smtp_reply_parser p;
	size_t n = strlen(in), na, nb, k, i, used, pos;
	bool done;

	na = parse(in, n, 0, a, MAXR);
	assert_int_equal(na, 4);
	for (k = 1; k < n; k++) {
		/* Two pieces split at k. */
		smtp_reply_parser_init(&p);
		nb = 0;
		pos = 0;
		while (pos < n) {
			size_t end = pos < k ? k : n;

			used = smtp_reply_feed(&p, in + pos, end - pos, &b[nb],
					       &done);
			pos += used;
			if (done)
				nb++;
		}
		smtp_reply_parser_free(&p);
		assert_int_equal(nb, na);
		for (i = 0; i < na; i++) {
			assert_int_equal(a[i].code, b[i].code);
			assert_int_equal(a[i].nlines, b[i].nlines);
			assert_int_equal(a[i].bare_lf, b[i].bare_lf);
			assert_int_equal(a[i].text.len, b[i].text.len);
			assert_memory_equal(a[i].text.data, b[i].text.data,
					    a[i].text.len);
		}
		free_all(b, nb);
	}
	nb = parse(in, n, 1, b, MAXR);
	assert_int_equal(nb, na);
	for (i = 0; i < na; i++)
		assert_string_equal(a[i].text.data, b[i].text.data);
	free_all(b, nb);
	free_all(a, na);
}

static void
sanitized(const char *in, size_t n, const char *want)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(smtp_reply_sanitize(in, n, &b), 0);
	assert_string_equal(b.data ? b.data : "", want);
	buf_free(&b);
}

static void
test_sanitize(void **state)
{
	struct smtp_response r[MAXR];
	struct buf b;

	sanitized("a\x01"
		  "b",
		  3, "a\\x01b");
	sanitized("caf\xc3\xa9", 5, "caf\xc3\xa9");
	sanitized("\xff", 1, "\\xff");
	sanitized("\xc0\xaf", 2, "\\xc0\\xaf");
	sanitized("\xed\xa0\x80", 3, "\\xed\\xa0\\x80");
	sanitized("\xe2\x82", 2, "\\xe2\\x82");
	sanitized("\xf0\x9f\x98\x80!", 5, "\xf0\x9f\x98\x80!");
	sanitized("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80");
	sanitized("a\\b\x7f", 4, "a\\\\b\\x7f");
	sanitized("\r\n\0", 3, "\\x0d\\x0a\\x00");

	assert_int_equal(parses("550-a\x1b[31m\r\n550 b\r\n", r), 1);
	buf_init(&b, 1024);
	assert_int_equal(smtp_response_quote(&r[0], &b), 0);
	assert_string_equal(b.data, "550-a\\x1b[31m\n550 b");
	buf_free(&b);
	buf_init(&b, 4);
	assert_int_equal(smtp_response_quote(&r[0], &b), -1);
	buf_free(&b);
	free_all(r, 1);
}

static void
test_copy(void **state)
{
	struct smtp_response r[MAXR], c;

	assert_int_equal(parses("250-a\r\n250 2.0.0 b\r\n", r), 1);
	assert_int_equal(smtp_response_copy(&c, &r[0]), 0);
	free_all(r, 1);
	assert_int_equal(c.nlines, 2);
	assert_line(&c, 1, "250 2.0.0 b");
	smtp_response_free(&c);
	assert_string_equal(smtp_reply_strerror(SMTP_REPLY_EMIXED),
			    "reply code changed inside a multi-line reply");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_single),
	    cmocka_unit_test(test_multiline),
	    cmocka_unit_test(test_mixed_codes),
	    cmocka_unit_test(test_enhanced),
	    cmocka_unit_test(test_ehlo),
	    cmocka_unit_test(test_line_limits),
	    cmocka_unit_test(test_count_limits),
	    cmocka_unit_test(test_bare_lf_and_cr),
	    cmocka_unit_test(test_split_feeds),
	    cmocka_unit_test(test_sanitize),
	    cmocka_unit_test(test_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
