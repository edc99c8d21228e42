/*
 * fuzz_dkim_tags — libFuzzer target for the DKIM parsers of untrusted
 * text: tag lists, DKIM-Signature values, key records, base64; and the
 * verifier over a whole message (header split, field selection,
 * canonicalisation) with the input's tail as the key record.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dkim_tags.h"
#include "mail/dkim_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dkim_sig sig;
	static struct dkim_keyrec key;
	static struct dkim_tags tags;
	const char *s = (const char *)data, *err = NULL;
	struct dkim_verify_opts o = {.now = 1700000000};
	struct dkim_verifier *v;
	struct dkim_slice rec;
	size_t i, split = size / 2;
	uint8_t out[64];

	dkim_tags_parse(s, size, &tags, &err);
	dkim_sig_parse(s, size, &sig, &err);
	dkim_key_parse(s, size, &key, &err);
	dkim_b64_decode(s, size, out, sizeof(out), &i);
	v = dkim_verify_new(&o);
	if (v == NULL)
		return 0;
	for (i = 0; i < split; i += 13)
		dkim_verify_feed(v, s + i, split - i < 13 ? split - i : 13);
	rec.p = s + split;
	rec.n = size - split;
	for (i = 0; i < dkim_verify_nsigs(v); i++)
		dkim_verify_answer(v, i, DKIM_DNS_OK, &rec, 1);
	dkim_verify_finish(v);
	dkim_verify_free(v);
	return 0;
}
