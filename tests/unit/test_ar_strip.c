/* test_ar_strip — forged Authentication-Results removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "mail/ar_strip.h"

static char out_text[4096];

static int
strip(const char *in)
{
	struct buf b;
	int r;

	buf_init(&b, sizeof(out_text) - 1);
	r = ar_strip(in, strlen(in), "mx.example.com", &b);
	memcpy(out_text, b.data ? b.data : "", b.len);
	out_text[b.len] = '\0';
	buf_free(&b);
	return r;
}

static void
test_removes_ours_keeps_others(void **state)
{
	const char *in =
	    "Received: from a\r\n\tby b\r\n"
	    "Authentication-Results: mx.example.com; spf=pass\r\n"
	    "\tsmtp.mailfrom=x@y\r\n"
	    "Authentication-Results: other.example; dkim=pass\r\n"
	    "authentication-results:  (comment (nested)) MX.Example.COM;\r\n"
	    " dmarc=pass\r\n"
	    "Subject: hi\r\n"
	    "\r\n";

	assert_int_equal(strip(in), 2);
	assert_string_equal(
	    out_text, "Received: from a\r\n\tby b\r\n"
		      "Authentication-Results: other.example; dkim=pass\r\n"
		      "Subject: hi\r\n"
		      "\r\n");
}

static void
test_lookalikes_kept(void **state)
{
	const char *in =
	    "Authentication-Results: mx.example.com.evil; spf=pass\r\n"
	    "Authentication-Results: mx.example.co; spf=pass\r\n"
	    "Authentication-Results: (unterminated mx.example.com; x\r\n"
	    "X-Authentication-Results: mx.example.com; spf=pass\r\n"
	    "\r\n";

	assert_int_equal(strip(in), 0);
	assert_string_equal(out_text, in);
}

static void
test_no_trailing_newline_and_version(void **state)
{
	assert_int_equal(strip("Authentication-Results: mx.example.com 1; "
			       "none"),
			 1);
	assert_string_equal(out_text, "");
	assert_int_equal(strip("Authentication-Results:mx.example.com;none\r\n"
			       "A: b\r\n"),
			 1);
	assert_string_equal(out_text, "A: b\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_removes_ours_keeps_others),
	    cmocka_unit_test(test_lookalikes_kept),
	    cmocka_unit_test(test_no_trailing_newline_and_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
