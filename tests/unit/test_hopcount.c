/* test_hopcount — Received field counting (mail/hopcount.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/hopcount.h"

/* Count over s fed whole, then in every fixed piece size: all agree. */
static unsigned
count_of(const char *s, bool *done)
{
	struct hopcount whole, part;
	size_t n = strlen(s), piece, pos, len;

	hopcount_init(&whole);
	hopcount_feed(&whole, s, n);
	for (piece = 1; piece <= 9; piece++) {
		hopcount_init(&part);
		for (pos = 0; pos < n; pos += len) {
			len = n - pos < piece ? n - pos : piece;
			hopcount_feed(&part, s + pos, len);
		}
		assert_int_equal(part.count, whole.count);
		assert_int_equal(hopcount_done(&part), hopcount_done(&whole));
	}
	if (done)
		*done = hopcount_done(&whole);
	return whole.count;
}

static void
test_plain(void **st)
{
	bool done;

	(void)st;
	assert_int_equal(count_of("Received: from a by b\r\n"
				  "Received: from c by d\r\n"
				  "Subject: hi\r\n"
				  "\r\n"
				  "body\r\n",
				  &done),
			 2);
	assert_true(done);
	assert_int_equal(count_of("Subject: none\r\n\r\nReceived: x\r\n", NULL),
			 0);
}

static void
test_case_and_folding(void **st)
{
	(void)st;
	assert_int_equal(count_of("RECEIVED: from a\r\n"
				  "received: from b\r\n"
				  "ReCeIvEd:\r\n"
				  "\tfrom c\r\n"
				  " by d\r\n"
				  "Received : obsolete space before colon\r\n"
				  "\r\n",
				  NULL),
			 4);
}

static void
test_not_received(void **st)
{
	(void)st;
	/* similar names, continuation text, and the body never count */
	assert_int_equal(count_of("Received-SPF: pass\r\n"
				  "X-Received: by x\r\n"
				  "Receive: x\r\n"
				  "Subject: a\r\n"
				  " Received: folded text\r\n"
				  "\r\n"
				  "Received: in the body\r\n",
				  NULL),
			 0);
}

static void
test_header_end(void **st)
{
	bool done;

	(void)st;
	/* a line that is not a header field ends the header block */
	assert_int_equal(count_of("Received: a\r\n"
				  "this is not a header\r\n"
				  "Received: b\r\n",
				  &done),
			 1);
	assert_true(done);
	assert_int_equal(count_of("Received: a\r\nReceived: b", &done), 2);
	assert_false(done);
	assert_int_equal(count_of("", &done), 0);
	assert_false(done);
	assert_int_equal(count_of("\r\nReceived: a\r\n", &done), 0);
	assert_true(done);
}

/* 101 fields of 100-octet lines split at every offset pattern. */
static void
test_many(void **st)
{
	static char msg[120 * 128];
	size_t n = 0;
	int i;

	(void)st;
	for (i = 0; i < 101; i++)
		n +=
		    (size_t)snprintf(msg + n, sizeof(msg) - n,
				     "%s: from h%d.example (h%d [192.0.2.1])"
				     "\r\n\tby mx.example; Tue, 1 Jan 2030\r\n",
				     i % 2 ? "received" : "Received", i, i);
	snprintf(msg + n, sizeof(msg) - n, "Subject: x\r\n\r\nbody\r\n");
	assert_int_equal(count_of(msg, NULL), 101);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_case_and_folding),
	    cmocka_unit_test(test_not_received),
	    cmocka_unit_test(test_header_end),
	    cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
