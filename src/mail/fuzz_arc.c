/*
 * fuzz_arc — libFuzzer target for the ARC parsers of untrusted text: the
 * AAR instance prefix, AMS and AS values, the chain structure over a
 * whole header block, and the verifier end to end (the input's tail is
 * served as the key record of every lookup); then the sealer over the
 * same message with a fixed Ed25519 key.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/arc.h"
#include "mail/dkim_sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_verify(const char *s, size_t split, size_t size)
{
	struct arc_verify_opts o = {.oldest_pass = true};
	struct arc_verifier *v = arc_verify_new(&o);
	struct dkim_slice rec = {s + split, size - split};
	struct buf ar;
	size_t i, k;

	if (v == NULL)
		return;
	for (i = 0; i < split; i += 11) {
		if (arc_verify_feed(v, s + i,
				    split - i < 11 ? split - i : 11) != 1)
			continue;
		for (k = 0; k < arc_verify_nqueries(v); k++)
			arc_verify_answer(
			    v, k, k % 3 ? DKIM_DNS_OK : DKIM_DNS_TEMPFAIL, &rec,
			    1);
	}
	arc_verify_finish(v);
	buf_init(&ar, 4096);
	arc_verify_ar(arc_verify_result(v), &ar);
	buf_free(&ar);
	arc_verify_free(v);
}

static void
fuzz_seal(const char *s, size_t n)
{
	static EVP_PKEY *key;
	struct arc_seal_opts o = {
	    .authserv_id = "mx.example.org",
	    .results = "spf=pass",
	    .domain = "example.org",
	    .selector = "arc",
	    .alg = DKIM_ALG_ED25519_SHA256,
	    .chain = n % 3 == 0	  ? ARC_NONE
		     : n % 3 == 1 ? ARC_PASS
				  : ARC_FAIL,
	};
	uint8_t hash[32], sig[DKIM_SIG_MAX], seed[32] = {1};
	size_t sl = sizeof(sig);
	const char *err;
	struct arc_sealer *z;
	struct buf out;

	if (key == NULL && (key = dkim_key_ed25519_seed(seed)) == NULL)
		return;
	if ((z = arc_sealer_new(&o, &err)) == NULL)
		return;
	arc_sealer_feed(z, s, n);
	buf_init(&out, 1 << 20);
	if (arc_sealer_ams_hash(z, hash, &err) == 0 &&
	    dkim_sign_hash(key, o.alg, hash, sig, &sl) == 0 &&
	    arc_sealer_seal_hash(z, sig, sl, hash, &err) == 0)
		arc_sealer_headers(z, sig, sl, &out);
	buf_free(&out);
	arc_sealer_free(z);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct arc_sig sig;
	const char *s = (const char *)data, *err = NULL;
	unsigned inst;

	arc_aar_instance(s, size, &inst, &err);
	arc_sig_instance(s, size, &inst, &err);
	arc_ams_parse(s, size, &sig, &err);
	arc_seal_parse(s, size, &sig, &err);
	fuzz_verify(s, size / 2, size);
	fuzz_seal(s, size / 2);
	return 0;
}
