/*
 * fuzz_ar_strip — libFuzzer target for ar_strip(): arbitrary header
 * blocks; the output is never longer than the input and is a
 * concatenation of whole input lines.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "mail/ar_strip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out;
	int r;

	buf_init(&out, size + 1);
	r = ar_strip((const char *)data, size, "mx.example.com", &out);
	if (r < 0 || out.len > size)
		abort();
	buf_free(&out);
	return 0;
}
