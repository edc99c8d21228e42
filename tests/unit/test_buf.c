/*
 * test_buf — the bounded buffer: the maximum is a hard wall, failures
 * (limit or allocation) leave the buffer as it was, data stays
 * NUL-terminated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/buf.h"

static void
test_empty(void **state)
{
	struct buf b;
	char *s;

	buf_init(&b, 16);
	assert_int_equal(b.len, 0);
	assert_null(b.data);
	buf_reset(&b);
	buf_consume(&b, 0);
	buf_consume(&b, 5);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_add(&b, "", 0), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	buf_free(&b);
	/* stealing from a buffer that never allocated gives "" */
	buf_init(&b, 16);
	s = buf_steal(&b);
	assert_string_equal(s, "");
	xfree(s);
	buf_free(&b);
}

static void
test_bounded(void **state)
{
	struct buf b;
	char big[100];

	memset(big, 'x', sizeof big);
	buf_init(&b, 10);
	assert_int_equal(buf_add(&b, "12345", 5), 0);
	assert_int_equal(buf_add(&b, "67890", 5), 0); /* exactly max */
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "1234567890");
	assert_int_equal(buf_addc(&b, 'x'), -1); /* one more byte */
	assert_int_equal(buf_adds(&b, "y"), -1);
	assert_int_equal(buf_addf(&b, "%d", 1), -1);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "1234567890");
	/* an empty append at the maximum is fine */
	assert_int_equal(buf_add(&b, "", 0), 0);
	buf_free(&b);

	/* one over, in a single append, fails and changes nothing */
	buf_init(&b, 10);
	assert_int_equal(buf_adds(&b, "abc"), 0);
	assert_int_equal(buf_add(&b, big, 8), -1);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "abc");
	assert_int_equal(buf_add(&b, big, 7), 0);
	assert_int_equal(b.len, 10);
	/* sizes that would overflow len + n are refused, not wrapped */
	assert_int_equal(buf_add(&b, big, SIZE_MAX), -1);
	assert_int_equal(buf_add(&b, big, SIZE_MAX - 5), -1);
	assert_int_equal(b.len, 10);
	buf_free(&b);

	/* a large maximum grows by doubling well past the first chunk */
	buf_init(&b, 1000);
	for (int i = 0; i < 100; i++)
		assert_int_equal(buf_add(&b, big, 10), 0);
	assert_int_equal(b.len, 1000);
	assert_int_equal(buf_addc(&b, 'z'), -1);
	assert_true(b.cap <= 1001);
	assert_int_equal(b.data[1000], '\0');
	buf_free(&b);

	/* max 0: nothing at all fits */
	buf_init(&b, 0);
	assert_int_equal(buf_addc(&b, 'a'), -1);
	assert_int_equal(buf_add(&b, "", 0), 0);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_addf(void **state)
{
	struct buf b;

	buf_init(&b, 64);
	assert_int_equal(buf_addf(&b, "%s=%d", "n", 42), 0);
	assert_int_equal(buf_addf(&b, ",%05u,%c", 7u, 'q'), 0);
	assert_string_equal(b.data, "n=42,00007,q");
	assert_int_equal(b.len, strlen("n=42,00007,q"));
	assert_int_equal(buf_addf(&b, "%s", ""), 0);
	assert_int_equal(b.len, 12);
	buf_free(&b);

	/* formatted output that does not fit leaves the buffer alone */
	buf_init(&b, 8);
	assert_int_equal(buf_addf(&b, "%s", "abcd"), 0);
	assert_int_equal(buf_addf(&b, "%d", 12345), -1);
	assert_int_equal(b.len, 4);
	assert_string_equal(b.data, "abcd");
	assert_int_equal(buf_addf(&b, "%d", 1234), 0); /* exactly max */
	assert_string_equal(b.data, "abcd1234");
	buf_free(&b);
}

static void
test_consume_reset(void **state)
{
	struct buf b;

	buf_init(&b, 32);
	assert_int_equal(buf_adds(&b, "hello world"), 0);
	buf_consume(&b, 6);
	assert_int_equal(b.len, 5);
	assert_string_equal(b.data, "world");
	buf_consume(&b, 0);
	assert_string_equal(b.data, "world");
	buf_consume(&b, 4);
	assert_string_equal(b.data, "d");
	buf_consume(&b, 1);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_adds(&b, "abc"), 0);
	buf_consume(&b, 100); /* more than there is: empties */
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");

	/* consumed room is usable again up to the maximum */
	assert_int_equal(buf_add(&b, "0123456789abcdef0123456789abcdef", 32),
			 0);
	assert_int_equal(buf_addc(&b, 'x'), -1);
	buf_consume(&b, 16);
	assert_int_equal(buf_add(&b, "ZZZZZZZZZZZZZZZZ", 16), 0);
	assert_string_equal(b.data, "0123456789abcdefZZZZZZZZZZZZZZZZ");

	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_adds(&b, "again"), 0);
	assert_string_equal(b.data, "again");
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	/* a freed buffer can be used again with the same maximum */
	assert_int_equal(buf_adds(&b, "reuse"), 0);
	assert_string_equal(b.data, "reuse");
	buf_free(&b);
}

static void
test_steal(void **state)
{
	struct buf b;
	char *s;

	buf_init(&b, 32);
	assert_int_equal(buf_adds(&b, "owned"), 0);
	s = buf_steal(&b);
	assert_string_equal(s, "owned");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	/* the buffer is empty and usable after giving its data away */
	assert_int_equal(buf_adds(&b, "new"), 0);
	assert_string_equal(b.data, "new");
	assert_string_equal(s, "owned");
	xfree(s);
	buf_free(&b);
}

static void
test_nul_terminated(void **state)
{
	struct buf b;
	const char bin[] = {'a', '\0', 'b'};

	buf_init(&b, 64);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(buf_addc(&b, (char)('a' + i % 26)), 0);
		assert_int_equal(b.data[b.len], '\0');
		assert_int_equal(strlen(b.data), b.len);
	}
	buf_reset(&b);
	/* binary data keeps its length; the terminator follows it */
	assert_int_equal(buf_add(&b, bin, sizeof bin), 0);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, bin, 3);
	assert_int_equal(b.data[3], '\0');
	buf_free(&b);
}

static void
test_alloc_failure(void **state)
{
	struct buf b;

	/* the very first allocation fails: nothing changes */
	buf_init(&b, 1 << 20);
	alloc_fail_after(0);
	assert_int_equal(buf_adds(&b, "abc"), -1);
	alloc_fail_after(-1);
	assert_int_equal(b.len, 0);
	assert_null(b.data);
	assert_int_equal(buf_adds(&b, "abc"), 0);
	assert_string_equal(b.data, "abc");

	/* growth fails: the old contents are intact and usable */
	char chunk[200];
	memset(chunk, 'c', sizeof chunk);
	alloc_fail_after(0);
	assert_int_equal(buf_add(&b, chunk, sizeof chunk), -1);
	assert_int_equal(buf_addf(&b, "%0300d", 1), -1);
	alloc_fail_after(-1);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "abc");
	/* appends that fit the current capacity need no allocation */
	alloc_fail_after(0);
	assert_int_equal(buf_adds(&b, "de"), 0);
	alloc_fail_after(-1);
	assert_string_equal(b.data, "abcde");
	assert_int_equal(buf_add(&b, chunk, sizeof chunk), 0);
	assert_int_equal(b.len, 205);
	assert_int_equal(b.data[205], '\0');

	/* fail on a later allocation, not just the next one */
	size_t len = b.len;
	int failed = 0;
	alloc_fail_after(1);
	for (int i = 0; i < 100 && !failed; i++) {
		if (buf_add(&b, chunk, sizeof chunk) < 0)
			failed = 1;
		else
			len += sizeof chunk;
	}
	alloc_fail_after(-1);
	assert_true(failed);
	assert_int_equal(b.len, len);
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(buf_adds(&b, "tail"), 0);
	assert_string_equal(b.data + len, "tail");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_bounded),
	    cmocka_unit_test(test_addf),
	    cmocka_unit_test(test_consume_reset),
	    cmocka_unit_test(test_steal),
	    cmocka_unit_test(test_nul_terminated),
	    cmocka_unit_test(test_alloc_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
