/*
 * fuzz_dkim_canon — differential libFuzzer target for the DKIM body
 * canonicaliser (dkim_body, mail/dkim_canon.h).
 *
 * The input is a body behind a 3-octet prefix: octet 0 picks simple or
 * relaxed, whether an l= limit applies and how the body is cut into
 * chunks (whole, octet by octet, small or large random pieces); octets
 * 1-2 are the limit and the seed of the cuts. The fast canonicaliser's
 * output (its tap), its counters and its hash must equal those of the
 * reference below, which follows RFC 6376 §3.4.3/§3.4.4 line by line
 * and is slow on purpose. Any difference aborts.
 *
 * test_dkim runs the same function over generated bodies, so the
 * comparison also runs in every unit-test run, not only under libFuzzer.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/buf.h"
#include "mail/dkim_canon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
ref_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Relaxed, one line: WSP runs become one SP, WSP at the end goes. */
static void
ref_relaxed_line(const uint8_t *p, size_t n, struct buf *out)
{
	bool ws = false;

	for (size_t i = 0; i < n; i++) {
		if (ref_wsp(p[i])) {
			ws = true;
			continue;
		}
		if (ws)
			buf_addc(out, ' ');
		ws = false;
		buf_addc(out, (char)p[i]);
	}
}

/*
 * The canonical body by the book: lines end at CRLF (a last line without
 * one still counts), each line is rewritten (relaxed) and ends in CRLF,
 * empty lines at the end are dropped; simple turns an empty result into
 * one CRLF.
 */
static void
ref_canon(bool relaxed, const uint8_t *p, size_t n, struct buf *out)
{
	size_t i = 0, e, before, keep = 0;

	while (i < n) {
		for (e = i; e < n; e++)
			if (p[e] == '\r' && e + 1 < n && p[e + 1] == '\n')
				break;
		before = out->len;
		if (relaxed)
			ref_relaxed_line(p + i, e - i, out);
		else
			buf_add(out, p + i, e - i);
		bool empty = out->len == before;
		buf_add(out, "\r\n", 2);
		if (!empty)
			keep = out->len;
		i = e < n ? e + 2 : n;
	}
	out->len = keep;
	if (!relaxed && keep == 0)
		buf_add(out, "\r\n", 2);
}

static uint32_t
next_cut(uint32_t *seed, unsigned mode, size_t left)
{
	uint32_t x = *seed, max;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*seed = x;
	max = mode == 1 ? 1 : mode == 2 ? 17 : 40000;
	if (mode == 0 || left < 1)
		return (uint32_t)left;
	return 1 + x % max;
}

static void
check(bool ok)
{
	if (!ok)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_body b;
	struct buf want, got;
	uint8_t h[32], wh[32];
	unsigned int whl;
	size_t hl, i, k;
	bool relaxed;
	int64_t limit;
	uint32_t seed;

	if (size < 3)
		return 0;
	relaxed = data[0] & 1;
	limit = (data[0] & 2) ? (int64_t)(data[1] | data[2] << 8) : -1;
	seed = 0x9e3779b9u ^ data[1] ^ (uint32_t)data[2] << 8;
	buf_init(&want, 4 * size + 16);
	buf_init(&got, 4 * size + 16);
	ref_canon(relaxed, data + 3, size - 3, &want);
	check(dkim_body_init(&b,
			     relaxed ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE,
			     false, limit) == 0);
	b.tap = &got;
	for (i = 3; i < size; i += k) {
		k = next_cut(&seed, (data[0] >> 2) & 3, size - i);
		if (k > size - i)
			k = size - i;
		dkim_body_feed(&b, data + i, k);
	}
	check(dkim_body_final(&b, h, &hl) == 0 && hl == 32);
	check(got.len == want.len &&
	      (want.len == 0 || memcmp(got.data, want.data, want.len) == 0));
	check(b.canon_len == want.len);
	k = limit >= 0 && (size_t)limit < want.len ? (size_t)limit : want.len;
	check(b.hashed == k);
	check(EVP_Digest(want.data ? want.data : "", k, wh, &whl, EVP_sha256(),
			 NULL) == 1);
	check(memcmp(h, wh, 32) == 0);
	buf_free(&want);
	buf_free(&got);
	return 0;
}
