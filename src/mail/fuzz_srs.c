/*
 * fuzz_srs — libFuzzer target for mail/srs.c.
 *
 * The first byte picks the hash length and max age; the rest is reversed
 * as an SRS address and forwarded as a sender. Invariants: every result
 * fits SRS_OUT_SIZE with a local part of at most 64 octets, outputs are
 * "" on error, a forwarded address reverses (to the input, or for SRS1
 * to an SRS0 address at the first forwarder), and the reversal of our own
 * fresh SRS0 gives back a parseable mailbox.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/addr.h"
#include "mail/srs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW INT64_C(1700000000)

static const struct srs_secret fuzz_keys[] = {
    {(const unsigned char *)"fuzz-secret-new", 15},
    {(const unsigned char *)"fuzz-secret-old", 15},
};

static void
fuzz_check_out(enum srs_err e, const char *out)
{
	const char *at;

	if (e != SRS_OK) {
		if (out[0] != '\0')
			abort();
		return;
	}
	if (strlen(out) >= SRS_OUT_SIZE)
		abort();
	at = strrchr(out, '@');
	if (out[0] != '\0' && (at == NULL || at - out > ADDR_LOCAL_MAX))
		abort();
}

/* What we forwarded must reverse with the same secrets, now. */
static void
fuzz_round_trip(const char *sender, const char *fwd, unsigned hash_len)
{
	char back[SRS_OUT_SIZE];
	enum srs_err e;

	if (fwd[0] == '\0' || strcasecmp(fwd, sender) == 0)
		return; /* null sender, or our own address copied */
	e = srs_reverse(fuzz_keys, 2, hash_len, NOW, 0, fwd, back,
			sizeof(back));
	if (e != SRS_OK)
		abort();
	if (strncmp(fwd, "SRS0", 4) == 0 && strcmp(back, sender) != 0) {
		/* the domain comes back lowercased; compare loosely */
		if (strcasecmp(back, sender) != 0)
			abort();
	}
	if (strncmp(fwd, "SRS1", 4) == 0 && strncmp(back, "SRS0", 4) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[SRS_OUT_SIZE + 64], out[SRS_OUT_SIZE];
	unsigned hash_len, max_age;
	enum srs_err e;

	if (size == 0)
		return 0;
	hash_len = SRS_HASH_MIN + (data[0] & 7);
	max_age = (data[0] >> 3) * 3;
	data++;
	size--;
	if (size >= sizeof(in))
		size = sizeof(in) - 1;
	memcpy(in, data, size);
	in[size] = '\0';

	e = srs_reverse(fuzz_keys, 2, hash_len, NOW + (int64_t)max_age * 86400,
			max_age, in, out, sizeof(out));
	fuzz_check_out(e, out);

	e = srs_forward(&fuzz_keys[0], hash_len, NOW, in, "fwd.example", out,
			sizeof(out));
	fuzz_check_out(e, out);
	if (e == SRS_OK)
		fuzz_round_trip(in, out, hash_len);
	srs_is_srs(in);
	return 0;
}
