/* test_smtp_data — DATA stream state machine (mail/smtp_data.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "mail/smtp_data.h"

#define BIG (1u << 20)

/* What one run over an input produced. */
struct result {
	char out[8192];
	size_t outlen;
	size_t endpos; /* input offset just past the end line, or 0 */
	bool end;
	struct smtp_data d;
};

static uint32_t rng_state = 12345;

static uint32_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/*
 * Feed in in pieces: piece 0 means random lengths, else fixed. The output
 * buffer has maximum outmax and is flushed into r->out whenever feeding
 * stops early. Stops at the end of data.
 */
static void
run(const char *in, size_t n, size_t piece, size_t outmax, uint64_t max_size,
    struct result *r)
{
	struct buf out;
	size_t pos = 0, len, used;
	int stalls = 0;

	memset(r, 0, sizeof(*r));
	smtp_data_init(&r->d, max_size);
	buf_init(&out, outmax);
	while (pos < n && !r->end) {
		len = piece ? piece : 1 + rng() % 17;
		if (len > n - pos)
			len = n - pos;
		used = smtp_data_feed(&r->d, in + pos, len, &out, &r->end);
		assert_true(used <= len);
		pos += used;
		if (used == 0 && !r->end)
			assert_true(++stalls < 3);
		else
			stalls = 0;
		assert_true(r->outlen + out.len <= sizeof(r->out));
		memcpy(r->out + r->outlen, out.data ? out.data : "", out.len);
		r->outlen += out.len;
		buf_reset(&out);
	}
	r->out[r->outlen] = '\0';
	if (r->end)
		r->endpos = pos;
	buf_free(&out);
}

static void
runs(const char *in, uint64_t max_size, struct result *r)
{
	run(in, strlen(in), strlen(in) ? strlen(in) : 1, BIG, max_size, r);
}

static void
same(const struct result *a, const struct result *b)
{
	assert_int_equal(a->outlen, b->outlen);
	assert_memory_equal(a->out, b->out, a->outlen);
	assert_int_equal(a->end, b->end);
	assert_int_equal(a->endpos, b->endpos);
	assert_int_equal(a->d.size, b->d.size);
	assert_int_equal(a->d.discarded, b->d.discarded);
	assert_int_equal(a->d.bare_eol, b->d.bare_eol);
	assert_int_equal(a->d.nul, b->d.nul);
	assert_int_equal(a->d.too_big, b->d.too_big);
	assert_int_equal(a->d.long_line, b->d.long_line);
	assert_int_equal(a->d.eightbit, b->d.eightbit);
}

/* Whole, 1-byte, random pieces, tiny output buffers: all the same. */
static void
check_splits(const char *in, size_t n, uint64_t max_size)
{
	struct result whole, other;
	size_t outmax;
	int i;

	run(in, n, n ? n : 1, BIG, max_size, &whole);
	run(in, n, 1, BIG, max_size, &other);
	same(&whole, &other);
	for (i = 0; i < 20; i++) {
		run(in, n, 0, BIG, max_size, &other);
		same(&whole, &other);
	}
	for (outmax = 2; outmax < 6; outmax++) {
		run(in, n, 0, outmax, max_size, &other);
		same(&whole, &other);
		run(in, n, n ? n : 1, outmax, max_size, &other);
		same(&whole, &other);
	}
}

static void
test_simple(void **state)
{
	const char *in = "Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
	struct result r;

	runs(in, BIG, &r);
	assert_true(r.end);
	assert_string_equal(r.out, "Subject: hi\r\n\r\nbody\r\n");
	assert_int_equal(r.endpos, strlen(in) - 6);
	assert_int_equal(r.d.size, r.outlen);
	assert_false(smtp_data_rejected(&r.d));
	assert_false(r.d.eightbit);
	check_splits(in, strlen(in), BIG);
}

static void
test_empty_and_first_line(void **state)
{
	struct result r;

	runs(".\r\nNOOP\r\n", BIG, &r);
	assert_true(r.end);
	assert_int_equal(r.endpos, 3);
	assert_int_equal(r.outlen, 0);
	runs("\r\n.\r\n", BIG, &r);
	assert_true(r.end);
	assert_string_equal(r.out, "\r\n");
	/* no end yet: the caller waits for more */
	runs("abc\r\n.\r", BIG, &r);
	assert_false(r.end);
	assert_string_equal(r.out, "abc\r\n");
	assert_false(r.d.bare_eol);
}

static void
test_dot_stuffing(void **state)
{
	const char *in = "..foo\r\n.bar\r\n...\r\n..\r\nx.\r\n.\r\n";
	struct result r;

	runs(in, BIG, &r);
	assert_true(r.end);
	assert_string_equal(r.out, ".foo\r\nbar\r\n..\r\n.\r\nx.\r\n");
	assert_false(smtp_data_rejected(&r.d));
	check_splits(in, strlen(in), BIG);
}

static void
test_smuggling(void **state)
{
	static const char *const variants[] = {
	    "\n.\n",   "\n.\r\n", "\r\n.\n", "\r.\r\n",
	    "\r\n.\r", "\r.\r",	  "\n",	     "\r",
	};
	const char *tail = "MAIL FROM:<evil@example>\r\nRCPT TO:<v@x>\r\n"
			   "DATA\r\nsmuggled\r\n";
	char in[512];
	struct result r;
	size_t i, n;

	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		n = (size_t)snprintf(in, sizeof(in), "x%s%s.\r\nNEXT",
				     variants[i], tail);
		runs(in, BIG, &r);
		assert_true(r.end);
		assert_int_equal(r.endpos, n - 4);
		assert_true(r.d.bare_eol);
		assert_true(smtp_data_rejected(&r.d));
		assert_true(strcmp(r.out, "x") == 0 ||
			    strcmp(r.out, "x\r\n") == 0);
		assert_true(r.d.discarded > 0);
		check_splits(in, n, BIG);
	}
}

static void
test_bare_never_ends(void **state)
{
	struct result r;

	runs("a\n.\nb\n.\n", BIG, &r);
	assert_false(r.end);
	assert_true(r.d.bare_eol);
	assert_string_equal(r.out, "a");
	/* CR CR LF contains a real CRLF: the end is genuine */
	runs("a\r\r\n.\r\n", BIG, &r);
	assert_true(r.end);
	assert_true(r.d.bare_eol);
	assert_string_equal(r.out, "a");
	/* a bare LF on the very first byte */
	runs("\n.\r\n\r\n.\r\n", BIG, &r);
	assert_true(r.end);
	assert_int_equal(r.endpos, 9);
	assert_int_equal(r.outlen, 0);
	assert_int_equal(r.d.discarded, 9);
}

/* CRLF.CRLF at every split point of a two-piece feed. */
static void
test_split_every_boundary(void **state)
{
	const char *in = "line one\r\n..two\r\n.\r\nRSET\r\n";
	size_t n = strlen(in), cut, used1, used2;
	struct result whole;
	struct smtp_data d;
	struct buf out;
	bool end;

	runs(in, BIG, &whole);
	for (cut = 0; cut <= n; cut++) {
		smtp_data_init(&d, BIG);
		buf_init(&out, BIG);
		used1 = smtp_data_feed(&d, in, cut, &out, &end);
		used2 =
		    end ? 0 : smtp_data_feed(&d, in + cut, n - cut, &out, &end);
		assert_true(end);
		assert_int_equal(used1 + used2, whole.endpos);
		assert_int_equal(out.len, whole.outlen);
		assert_memory_equal(out.data, whole.out, out.len);
		buf_free(&out);
	}
}

static void
test_nul(void **state)
{
	const char a[] = "ab\0cd\r\nef\r\n.\r\n";
	struct result r;

	run(a, sizeof(a) - 1, sizeof(a) - 1, BIG, BIG, &r);
	assert_true(r.end);
	assert_true(r.d.nul);
	assert_false(r.d.bare_eol);
	assert_true(smtp_data_rejected(&r.d));
	assert_int_equal(r.outlen, 2);
	assert_int_equal(r.d.discarded, sizeof(a) - 1 - 2);
	check_splits(a, sizeof(a) - 1, BIG);
}

static void
test_size_limit(void **state)
{
	const char *in = "12345678\r\n.\r\n"; /* 10 message octets */
	struct result r;

	runs(in, 10, &r);
	assert_true(r.end);
	assert_false(r.d.too_big);
	assert_int_equal(r.outlen, 10);
	runs(in, 9, &r);
	assert_true(r.end);
	assert_true(r.d.too_big);
	assert_true(smtp_data_rejected(&r.d));
	assert_true(r.outlen <= 9);
	assert_int_equal(r.d.size, 10);
	check_splits(in, strlen(in), 9);
	runs(in, 5, &r);
	assert_true(r.d.too_big);
	assert_int_equal(r.outlen, 5);
	check_splits(in, strlen(in), 5);
	runs(in, 0, &r);
	assert_true(r.d.too_big);
	assert_int_equal(r.outlen, 0);
}

static void
test_long_line_and_8bit(void **state)
{
	char in[2100];
	struct result r;

	memset(in, 'a', 998);
	memcpy(in + 998, "\r\n.\r\n", 6);
	runs(in, BIG, &r);
	assert_true(r.end);
	assert_false(r.d.long_line);
	memset(in, 'a', 999);
	memcpy(in + 999, "\r\n.\r\n", 6);
	runs(in, BIG, &r);
	assert_true(r.d.long_line);
	assert_false(smtp_data_rejected(&r.d));
	assert_int_equal(r.outlen, 1001);
	check_splits(in, strlen(in), BIG);
	/* a stuffed dot does not count: ".." + 997 = 998 after unstuffing */
	in[0] = '.';
	memset(in + 1, '.', 1);
	memset(in + 2, 'b', 997);
	memcpy(in + 999, "\r\n.\r\n", 6);
	runs(in, BIG, &r);
	assert_false(r.d.long_line);
	runs("caf\xc3\xa9\r\n.\r\n", BIG, &r);
	assert_true(r.d.eightbit);
	assert_false(smtp_data_rejected(&r.d));
}

static void
test_after_end(void **state)
{
	struct smtp_data d;
	struct buf out;
	bool end = false;

	smtp_data_init(&d, BIG);
	buf_init(&out, 100);
	assert_int_equal(smtp_data_feed(&d, ".\r\nX", 4, &out, &end), 3);
	assert_true(end);
	end = false;
	assert_int_equal(smtp_data_feed(&d, "X", 1, &out, &end), 0);
	assert_true(end);
	assert_int_equal(smtp_data_feed(&d, "", 0, &out, &end), 0);
	buf_free(&out);
}

static void
test_output_full(void **state)
{
	struct smtp_data d;
	struct buf out;
	bool end;
	size_t used;

	smtp_data_init(&d, BIG);
	buf_init(&out, 4);
	used = smtp_data_feed(&d, "abcdef\r\n.\r\n", 11, &out, &end);
	assert_int_equal(used, 4);
	assert_false(end);
	assert_int_equal(out.len, 4);
	/* no progress until flushed */
	assert_int_equal(smtp_data_feed(&d, "ef\r\n.\r\n", 7, &out, &end), 0);
	buf_reset(&out);
	used = smtp_data_feed(&d, "ef\r\n.\r\n", 7, &out, &end);
	assert_int_equal(used, 7);
	assert_true(end);
	assert_memory_equal(out.data, "ef\r\n", 4);
	assert_false(d.nomem);
	buf_free(&out);
}

/* Random byte soup over a small alphabet: splits never matter. */
static void
test_random_inputs(void **state)
{
	static const char alpha[] = "\r\n.a\0\x80";
	char in[200];
	size_t n, i;
	int round;

	for (round = 0; round < 300; round++) {
		n = rng() % sizeof(in);
		for (i = 0; i < n; i++)
			in[i] = alpha[rng() % (sizeof(alpha) - 1)];
		check_splits(in, n, 1 + rng() % 64);
		check_splits(in, n, BIG);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple),
	    cmocka_unit_test(test_empty_and_first_line),
	    cmocka_unit_test(test_dot_stuffing),
	    cmocka_unit_test(test_smuggling),
	    cmocka_unit_test(test_bare_never_ends),
	    cmocka_unit_test(test_split_every_boundary),
	    cmocka_unit_test(test_nul),
	    cmocka_unit_test(test_size_limit),
	    cmocka_unit_test(test_long_line_and_8bit),
	    cmocka_unit_test(test_after_end),
	    cmocka_unit_test(test_output_full),
	    cmocka_unit_test(test_random_inputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
