/*
 * fuzz_hopcount — libFuzzer target for mail/hopcount.c.
 *
 * The first byte picks a piece length; the rest is a message. It is fed
 * whole and in pieces. Invariants: both runs agree on the count and on
 * whether the header ended; the count never exceeds the number of
 * case-insensitive "received" occurrences in the input; a run that
 * ended its header stays ended and ignores more input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/hopcount.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
fz_occurrences(const char *p, size_t n)
{
	static const char w[] = "received";
	size_t i, j, k = 0;

	for (i = 0; i + 8 <= n; i++) {
		for (j = 0; j < 8; j++)
			if ((p[i + j] | 0x20) != w[j])
				break;
		k += j == 8;
	}
	return k;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hopcount a, b;
	size_t piece, pos, len;
	const char *in;
	unsigned before;

	if (size == 0)
		return 0;
	piece = 1 + (data[0] & 15);
	in = (const char *)data + 1;
	size--;
	hopcount_init(&a);
	hopcount_feed(&a, in, size);
	hopcount_init(&b);
	for (pos = 0; pos < size; pos += len) {
		len = size - pos < piece ? size - pos : piece;
		hopcount_feed(&b, in + pos, len);
	}
	if (a.count != b.count || hopcount_done(&a) != hopcount_done(&b))
		abort();
	if (a.count > fz_occurrences(in, size))
		abort();
	if (hopcount_done(&a)) {
		before = a.count;
		hopcount_feed(&a, "Received: x\r\n", 13);
		if (a.count != before || !hopcount_done(&a))
			abort();
	}
	return 0;
}
