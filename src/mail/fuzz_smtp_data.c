/*
 * fuzz_smtp_data — libFuzzer target for mail/smtp_data.c.
 *
 * The first byte picks the piece length (low 5 bits), a small output
 * buffer size and the size limit (high 3 bits); the rest is the DATA
 * stream. Each input is fed twice: whole into a large buffer, and in
 * pieces into a tiny one that is flushed whenever feeding stops early.
 * Invariants: both runs agree byte for byte and end at the same offset;
 * output never exceeds the input or max_size; nothing is written after
 * bare_eol or nul is set; every CR and LF in the output is a CRLF pair.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_run {
	struct smtp_data d;
	struct buf all; /* everything written, flushes included */
	size_t endpos;
	bool end;
};

static void
fz_flush(struct fz_run *r, struct buf *out)
{
	if (out->len > 0 && buf_add(&r->all, out->data, out->len) < 0)
		abort();
	buf_reset(out);
}

static void
fz_feed(struct fz_run *r, const char *in, size_t n, size_t piece, size_t outmax,
	uint64_t max_size)
{
	struct buf out;
	size_t pos = 0, len, used, before;
	bool lost;

	smtp_data_init(&r->d, max_size);
	buf_init(&r->all, n + 16);
	buf_init(&out, outmax);
	r->end = false;
	while (pos < n && !r->end) {
		len = n - pos < piece ? n - pos : piece;
		lost = r->d.bare_eol || r->d.nul;
		before = out.len;
		used = smtp_data_feed(&r->d, in + pos, len, &out, &r->end);
		if (used > len || (lost && out.len != before))
			abort();
		if (used == 0 && !r->end && out.len == 0)
			abort(); /* stalled with room to spare */
		pos += used;
		fz_flush(r, &out);
	}
	r->endpos = r->end ? pos : 0;
	buf_free(&out);
}

static void
fz_check_crlf(const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\r' &&
		    (i + 1 >= b->len || b->data[i + 1] != '\n'))
			abort();
		if (b->data[i] == '\n' && (i == 0 || b->data[i - 1] != '\r'))
			abort();
		if (b->data[i] == '\0')
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_run a, b;
	uint64_t max_size;
	size_t piece, outmax;
	const char *in;

	if (size == 0)
		return 0;
	piece = 1 + (data[0] & 31);
	outmax = 2 + (data[0] >> 5);
	max_size = (data[0] & 0x80) ? (uint64_t)(data[0] & 0x3f) : UINT64_MAX;
	in = (const char *)data + 1;
	size--;
	fz_feed(&a, in, size, size ? size : 1, size + 16, max_size);
	fz_feed(&b, in, size, piece, outmax, max_size);
	if (a.all.len != b.all.len || a.end != b.end || a.endpos != b.endpos ||
	    a.d.size != b.d.size || a.d.discarded != b.d.discarded ||
	    a.d.bare_eol != b.d.bare_eol || a.d.nul != b.d.nul ||
	    a.d.too_big != b.d.too_big || a.d.long_line != b.d.long_line)
		abort();
	if (a.all.len > 0 && memcmp(a.all.data, b.all.data, a.all.len) != 0)
		abort();
	if (a.all.len > size || a.all.len > max_size || a.d.size > size)
		abort();
	fz_check_crlf(&a.all);
	buf_free(&a.all);
	buf_free(&b.all);
	return 0;
}
