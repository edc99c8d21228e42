/*
 * fuzz_dsn — libFuzzer target for mail/dsn.c.
 *
 * Input: byte 0 flags (bit 0 RET=FULL, bit 1 orig_total larger than what
 * was read), bytes 1-2 the RET=FULL cap, then the ORCPT value up to the
 * first NUL octet, then the original message. Invariants: a report is
 * always composed, it ends with its own close delimiter, the ORCPT shown
 * to people is bounded and NUL-terminated, the multipart
 * boundary found in the original's header block is 1 to 70 bchars not
 * ending in a space.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/dsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ORCPT_MAX 600

static void
check_boundary(const char *orig, size_t n)
{
	char b[71];
	size_t hl = dsn_header_len(orig, n);
	size_t k = dsn_multipart_boundary(orig, hl, b, sizeof(b)), i;

	if (k == 0)
		return;
	if (k > 70 || strlen(b) != k || b[k - 1] == ' ')
		abort();
	for (i = 0; i < k; i++)
		if (strchr(
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			"0123456789'()+_,-./:=? ",
			b[i]) == NULL)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char orcpt[FUZZ_ORCPT_MAX + 1];
	const uint8_t *nul;
	const char *orig;
	size_t n, olen;
	struct buf out;
	char tail[128], want[160];
	struct dsn_rcpt r = {
	    .final_rcpt = "bob@example.net",
	    .action = DSN_FAILED,
	    .status = "5.1.1",
	    .remote_mta = "mx.example.net",
	    .diag_type = "smtp",
	    .diag = "550 5.1.1 no",
	};
	struct dsn_msg m = {
	    .reporting_mta = "mx.example.org",
	    .queue_id = "Q1",
	    .sender = "alice@example.org",
	    .now = 1700000000,
	    .rcpts = &r,
	    .nrcpts = 1,
	    .boundary_seed = "fz",
	};

	if (size < 3)
		return 0;
	m.ret_full = data[0] & 1;
	m.ret_max = (size_t)data[1] << 8 | data[2];
	data += 3;
	size -= 3;
	nul = memchr(data, 0, size);
	n = nul ? (size_t)(nul - data) : size;
	olen = n < FUZZ_ORCPT_MAX ? n : FUZZ_ORCPT_MAX;
	memcpy(orcpt, data, olen);
	orcpt[olen] = '\0';
	r.orig_rcpt = orcpt;
	orig = nul ? (const char *)nul + 1 : "";
	m.orig = orig;
	m.orig_len = nul ? size - n - 1 : 0;
	m.orig_total = (data[-3] & 2) ? m.orig_len + 100 : 0;
	check_boundary(m.orig, m.orig_len);
	{
		char disp[700];
		size_t k = dsn_orcpt_display(orcpt, disp, sizeof(disp));

		if (k >= sizeof(disp) || strlen(disp) != k)
			abort();
	}
	buf_init(&out, 8u << 20);
	if (dsn_compose(&m, &out) != 0)
		abort();
	if (out.len < 8 || memcmp(out.data + out.len - 4, "--\r\n", 4) != 0)
		abort();
	/* the last line is the close delimiter of the report's boundary */
	n = out.len - 4;
	while (n > 0 && out.data[n - 1] != '\n')
		n--;
	if (out.len - n > sizeof(tail) || out.data[n] != '-' ||
	    out.data[n + 1] != '-' ||
	    memmem(out.data, n, "boundary=\"", 10) == NULL)
		abort();
	memcpy(tail, out.data + n + 2, out.len - n - 6);
	tail[out.len - n - 6] = '\0';
	snprintf(want, sizeof(want), "boundary=\"%s\"", tail);
	if (strstr(out.data, want) == NULL)
		abort();
	buf_free(&out);
	return 0;
}
