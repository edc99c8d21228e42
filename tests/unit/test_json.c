/*
 * test_json — the bounded JSON writer: escaping of control characters
 * and invalid UTF-8, cuts on character boundaries, nesting and commas,
 * a full buffer and unbalanced documents reported as errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/json.h"

static void
esc_is(const char *in, size_t n, size_t max, const char *want, int want_cut)
{
	struct buf b;
	int cut = -1;

	buf_init(&b, 4096);
	assert_int_equal(json_escape(&b, in, n, max, &cut), 0);
	assert_string_equal(b.data, want);
	assert_int_equal(cut, want_cut);
	buf_free(&b);
}

static void
test_escape(void **state)
{
	esc_is("plain", 5, 100, "\"plain\"", 0);
	esc_is("a\"b\\c", 5, 100, "\"a\\\"b\\\\c\"", 0);
	esc_is("250-x\r\n250 y", 12, 100, "\"250-x\\u000d\\u000a250 y\"", 0);
	esc_is("\x1b[31m\x7f", 6, 100, "\"\\u001b[31m\\u007f\"", 0);
	/* valid UTF-8 of every length passes */
	esc_is("\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80", 9, 100,
	       "\"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\"", 0);
	/* invalid: lone continuation, overlong, surrogate, > U+10FFFF,
	 * truncated sequence, 0xff */
	esc_is("\x80", 1, 100, "\"\\ufffd\"", 0);
	esc_is("\xc0\xaf", 2, 100, "\"\\ufffd\\ufffd\"", 0);
	esc_is("\xed\xa0\x80", 3, 100, "\"\\ufffd\\ufffd\\ufffd\"", 0);
	esc_is("\xf4\x90\x80\x80", 4, 100, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"",
	       0);
	esc_is("a\xe6\x97", 3, 100, "\"a\\ufffd\\ufffd\"", 0);
	esc_is("\xff"
	       "z",
	       2, 100, "\"\\ufffdz\"", 0);
	/* a NUL inside the given length is escaped, not an end */
	esc_is("a\0b", 3, 100, "\"a\\u0000b\"", 0);
	/* cuts: at max octets, never inside a character */
	esc_is("abcdef", 6, 3, "\"abc\"", 1);
	esc_is("ab\xc3\xa9", 4, 3, "\"ab\"", 1);
	esc_is("ab\xc3\xa9", 4, 4, "\"ab\xc3\xa9\"", 0);
	assert_int_equal(json_utf8_len((const unsigned char *)"\xc3\xa9", 2),
			 2);
	assert_int_equal(json_utf8_len((const unsigned char *)"\xc3", 1), 0);
}

static void
test_document(void **state)
{
	struct buf b;
	struct json j;

	buf_init(&b, 4096);
	json_init(&j, &b);
	json_obj_open(&j, NULL);
	json_str_m(&j, "a", "x");
	json_int_m(&j, "n", -5);
	json_bool_m(&j, "t", 1);
	json_null_m(&j, "z");
	json_str_m(&j, "s", NULL);
	json_arr_open(&j, "l");
	json_int_m(&j, NULL, 1);
	json_obj_open(&j, NULL);
	json_obj_close(&j);
	json_raw_m(&j, NULL, "{\"r\": 2}");
	json_arr_close(&j);
	assert_int_equal(json_strn_m(&j, "k\"q", "long text", 4), 1);
	json_obj_close(&j);
	assert_int_equal(json_end(&j), 0);
	assert_string_equal(b.data,
			    "{\"a\": \"x\", \"n\": -5, \"t\": true, \"z\": "
			    "null, \"s\": null, \"l\": [1, {}, {\"r\": 2}], "
			    "\"k\\\"q\": \"long\"}");
	buf_free(&b);
}

static void
test_errors(void **state)
{
	struct buf b;
	struct json j;

	/* the buffer's maximum: an error, never a silent cut */
	buf_init(&b, 16);
	json_init(&j, &b);
	json_obj_open(&j, NULL);
	json_str_m(&j, "key", "a value longer than the buffer");
	json_obj_close(&j);
	assert_int_equal(json_end(&j), -1);
	buf_free(&b);

	/* unbalanced */
	buf_init(&b, 1024);
	json_init(&j, &b);
	json_arr_open(&j, NULL);
	assert_int_equal(json_end(&j), -1);
	buf_reset(&b);
	json_init(&j, &b);
	json_obj_close(&j);
	assert_int_equal(json_end(&j), -1);

	/* nesting deeper than JSON_DEPTH_MAX */
	buf_reset(&b);
	json_init(&j, &b);
	for (int i = 0; i <= JSON_DEPTH_MAX; i++)
		json_arr_open(&j, NULL);
	for (int i = 0; i <= JSON_DEPTH_MAX; i++)
		json_arr_close(&j);
	assert_int_equal(json_end(&j), -1);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_document),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
