/* Unit tests for mail/arc: parsers, chain structure, seal -> verify. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "mail/arc.h"
#include "mail/dkim_sign.h"

static const char base_msg[] = "From: a@example.org\r\n"
			       "To: b@example.net\r\n"
			       "Subject: hi\r\n"
			       "Date: Thu, 14 Jan 2015 15:00:01 -0800\r\n"
			       "\r\n"
			       "Hello  world \r\n\r\n";

/* ---- parsers ------------------------------------------------------------ */

static void
test_aar_instance(void **state)
{
	const char *err;
	unsigned i = 0;

	(void)state;
	assert_int_equal(arc_aar_instance("i=1; a.example; none", 20, &i, &err),
			 0);
	assert_int_equal(i, 1);
	assert_int_equal(arc_aar_instance(" i = 12 (c) ; x", 15, &i, &err), 0);
	assert_int_equal(i, 12);
	assert_int_equal(arc_aar_instance("i=1 a.example;", 14, &i, &err), -1);
	assert_int_equal(arc_aar_instance("a.example; i=1;", 15, &i, &err), -1);
	assert_int_equal(arc_aar_instance("i=0;", 4, &i, &err), -1);
	assert_int_equal(arc_aar_instance("i=;", 3, &i, &err), -1);
	assert_int_equal(arc_aar_instance("i=x;", 4, &i, &err), -1);
}

#define AMS_OK                                                                 \
	"i=1; a=rsa-sha256; d=example.org; s=sel; h=from:to; "                 \
	"bh=KWSe46TZKCcDbH4klJPo+tjk5LWJnVRlP5pvjXFZYLQ=; b=AAAA"

static void
test_ams_parse(void **state)
{
	struct arc_sig *s = xmalloc(sizeof(*s));
	const char *err = NULL;
	const char *bad[] = {
	    AMS_OK "; h=x", /* dup */
	    "i=1; a=rsa-sha1; d=example.org; s=sel; h=from; bh=AA==; b=AAAA",
	    "i=1; a=rsa-sha256; d=example.org; s=sel; h=from:arc-seal; "
	    "bh=KWSe46TZKCcDbH4klJPo+tjk5LWJnVRlP5pvjXFZYLQ=; b=AAAA",
	    "a=rsa-sha256; d=example.org; s=sel; h=from; "
	    "bh=KWSe46TZKCcDbH4klJPo+tjk5LWJnVRlP5pvjXFZYLQ=; b=AAAA",
	    AMS_OK "; c=relaxed/fancy",
	    AMS_OK "; t=1 2",
	};
	size_t i;

	(void)state;
	assert_int_equal(arc_ams_parse(AMS_OK, strlen(AMS_OK), s, &err), 0);
	assert_int_equal(s->inst, 1);
	assert_int_equal(s->hcanon, DKIM_CANON_SIMPLE); /* c= absent */
	assert_int_equal(s->nhdrs, 2);
	assert_int_equal(
	    arc_ams_parse(AMS_OK "; h=", strlen(AMS_OK) + 4, s, &err),
	    -1); /* duplicate h= */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(arc_ams_parse(bad[i], strlen(bad[i]), s, &err),
				 -1);
	xfree(s);
}

static void
test_seal_parse(void **state)
{
	struct arc_sig *s = xmalloc(sizeof(*s));
	const char *ok = "i=2; a=ed25519-sha256; cv=pass; d=example.org; "
			 "s=sel; t=5; b=AAAA";
	const char *bad[] = {
	    "i=1; a=rsa-sha256; cv=Pass; d=example.org; s=sel; b=AAAA",
	    "i=1; a=rsa-sha256; d=example.org; s=sel; b=AAAA",
	    "i=1; a=rsa-sha256; cv=none; d=example.org; s=sel; h=x; b=AAAA",
	    "i=1; a=rsa-sha256; cv=none; d=example..org; s=sel; b=AAAA",
	    "i=1; a=rsa-sha256; cv=none; d=example.org; s=sel; b=",
	};
	const char *err;
	size_t i;

	(void)state;
	assert_int_equal(arc_seal_parse(ok, strlen(ok), s, &err), 0);
	assert_int_equal(s->cv, ARC_CV_PASS);
	assert_int_equal(s->alg, DKIM_ALG_ED25519_SHA256);
	assert_true(s->has_t);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    arc_seal_parse(bad[i], strlen(bad[i]), s, &err), -1);
	xfree(s);
}

/* ---- chain structure ---------------------------------------------------- */

static void
chain_of(const char *hdr, struct dkim_split *sp, struct arc_chain *c)
{
	const char *body;
	size_t blen;

	dkim_split_init(sp, 1 << 20);
	dkim_split_feed(sp, hdr, strlen(hdr), &body, &blen);
	sp->in_body = true;
	assert_int_equal(dkim_split_fields(sp), 0);
	assert_int_equal(arc_chain_parse(sp, c), 0);
}

#define AS(i, cv)                                                              \
	"ARC-Seal: i=" #i "; a=rsa-sha256; cv=" #cv                            \
	"; d=example.org; s=s; b=AAAA\r\n"
#define AMS(i)                                                                 \
	"ARC-Message-Signature: i=" #i "; a=rsa-sha256; d=example.org; s=s; "  \
	"h=from; bh=KWSe46TZKCcDbH4klJPo+tjk5LWJnVRlP5pvjXFZYLQ=; b=AAAA\r\n"
#define AAR(i) "ARC-Authentication-Results: i=" #i "; example.org; none\r\n"

static enum arc_result
structure(const char *hdr, const char **reason, bool *newest_fail)
{
	struct dkim_split sp;
	struct arc_chain *c = xmalloc(sizeof(*c));
	static char why[128];
	enum arc_result r;

	chain_of(hdr, &sp, c);
	r = c->status;
	snprintf(why, sizeof(why), "%s", c->reason);
	*reason = why;
	if (newest_fail != NULL)
		*newest_fail = c->newest_fail;
	arc_chain_free(c);
	xfree(c);
	dkim_split_free(&sp);
	return r;
}

static void
test_structure(void **state)
{
	const char *why;
	bool nf;

	(void)state;
	assert_int_equal(structure("From: a@b\r\n\r\n", &why, NULL), ARC_NONE);
	assert_int_equal(structure(AS(1, none) AMS(1)
				       AAR(1) "From: a@b\r\n\r\n",
				   &why, NULL),
			 ARC_PASS);
	/* order of fields does not matter, sets are found by i= */
	assert_int_equal(structure(AAR(2) AS(1, none) AMS(2) AAR(1) AMS(1)
				       AS(2, pass) "\r\n",
				   &why, NULL),
			 ARC_PASS);
	assert_int_equal(structure(AS(1, none) AAR(1) "\r\n", &why, NULL),
			 ARC_FAIL);
	assert_string_equal(why, "AMS(1): missing");
	assert_int_equal(
	    structure(AS(1, none) AMS(1) AMS(1) AAR(1) "\r\n", &why, NULL),
	    ARC_FAIL);
	assert_string_equal(why, "AMS(1): duplicate");
	assert_int_equal(
	    structure(AS(1, pass) AMS(1) AAR(1) "\r\n", &why, NULL), ARC_FAIL);
	assert_int_equal(structure(AS(1, none) AMS(1) AAR(1) AS(2, none) AMS(2)
				       AAR(2) "\r\n",
				   &why, NULL),
			 ARC_FAIL);
	/* a gap: sets 1 and 3 */
	assert_int_equal(structure(AS(1, none) AMS(1) AAR(1) AS(3, pass) AMS(3)
				       AAR(3) "\r\n",
				   &why, NULL),
			 ARC_FAIL);
	assert_int_equal(structure(AS(51, pass) "\r\n", &why, NULL), ARC_FAIL);
	assert_int_equal(structure(AS(1, none) AMS(1) AAR(1) AS(2, fail) AMS(2)
				       AAR(2) "\r\n",
				   &why, &nf),
			 ARC_FAIL);
	assert_true(nf);
	assert_int_equal(structure("ARC-Seal: a=rsa-sha256\r\n\r\n", &why, &nf),
			 ARC_FAIL);
	assert_false(nf);
}

/* ---- seal -> verify ----------------------------------------------------- */

struct world {
	EVP_PKEY *key;
	enum dkim_alg alg;
	char record[1024];
};

static void
world_record(struct world *w)
{
	unsigned char der[600], *p = der, b64[900];
	size_t n = sizeof(der);
	int len;

	if (w->alg == DKIM_ALG_ED25519_SHA256) {
		assert_int_equal(EVP_PKEY_get_raw_public_key(w->key, der, &n),
				 1);
		len = (int)n;
	} else {
		len = i2d_PUBKEY(w->key, &p);
		assert_true(len > 0);
	}
	EVP_EncodeBlock(b64, der, len);
	snprintf(w->record, sizeof(w->record), "v=DKIM1; k=%s; p=%s",
		 w->alg == DKIM_ALG_ED25519_SHA256 ? "ed25519" : "rsa", b64);
}

/* Seal msg with the given chain status; the new fields are put on top. */
static void
seal(struct world *w, enum arc_result chain, uint64_t t, struct buf *msg)
{
	struct arc_seal_opts o = {
	    .authserv_id = "mx.example.org",
	    .results = "spf=pass smtp.mailfrom=example.org; dkim=none",
	    .domain = "example.org",
	    .selector = "arc",
	    .alg = w->alg,
	    .t = t,
	    .chain = chain,
	};
	const char *err = NULL;
	struct arc_sealer *s = arc_sealer_new(&o, &err);
	uint8_t hash[32], sig[DKIM_SIG_MAX];
	size_t n = sizeof(sig);
	struct buf out;

	assert_non_null(s);
	arc_sealer_feed(s, msg->data, msg->len);
	assert_int_equal(arc_sealer_ams_hash(s, hash, &err), 0);
	assert_int_equal(dkim_sign_hash(w->key, w->alg, hash, sig, &n), 0);
	assert_int_equal(arc_sealer_seal_hash(s, sig, n, hash, &err), 0);
	n = sizeof(sig);
	assert_int_equal(dkim_sign_hash(w->key, w->alg, hash, sig, &n), 0);
	buf_init(&out, 1 << 20);
	assert_int_equal(arc_sealer_headers(s, sig, n, &out), 0);
	assert_int_equal(buf_add(&out, msg->data, msg->len), 0);
	buf_reset(msg);
	assert_int_equal(buf_add(msg, out.data, out.len), 0);
	buf_free(&out);
	arc_sealer_free(s);
}

static struct arc_verify_result
verify(struct world *w, const struct buf *msg, size_t chunk)
{
	struct arc_verify_opts o = {.oldest_pass = true};
	struct arc_verifier *v = arc_verify_new(&o);
	struct arc_verify_result r;
	size_t off = 0, k;

	assert_non_null(v);
	while (off < msg->len) {
		size_t n = msg->len - off < chunk ? msg->len - off : chunk;

		if (arc_verify_feed(v, msg->data + off, n) == 1) {
			for (k = 0; k < arc_verify_nqueries(v); k++) {
				struct dkim_slice rec = {w->record,
							 strlen(w->record)};

				assert_string_equal(
				    arc_verify_query(v, k),
				    "arc._domainkey.example.org");
				arc_verify_answer(v, k, DKIM_DNS_OK, &rec, 1);
			}
		}
		off += n;
	}
	arc_verify_finish(v);
	r = *arc_verify_result(v);
	if (r.reason == arc_verify_result(v)->reason_buf)
		r.reason = "(copied)";
	arc_verify_free(v);
	return r;
}

static void
round_trip(struct world *w)
{
	struct arc_verify_result r;
	struct buf msg, ar;
	char *p;

	world_record(w);
	buf_init(&msg, 1 << 20);
	buf_adds(&msg, base_msg);
	r = verify(w, &msg, 1 << 20);
	assert_int_equal(r.result, ARC_NONE);

	seal(w, ARC_NONE, 1700000000, &msg);
	r = verify(w, &msg, 1);
	assert_int_equal(r.result, ARC_PASS);
	assert_int_equal(r.instances, 1);

	/* a mailing list rewrites the Subject, checks the chain, seals */
	p = strstr(msg.data, "Subject: hi");
	assert_non_null(p);
	memcpy(p, "Subject: HI", 11);
	r = verify(w, &msg, 7);
	assert_int_equal(r.result, ARC_FAIL);
	assert_non_null(strstr(msg.data, "cv=none"));
	seal(w, ARC_PASS, 1700000001, &msg);
	r = verify(w, &msg, 64);
	assert_int_equal(r.result, ARC_PASS);
	assert_int_equal(r.instances, 2);
	assert_int_equal(r.oldest_pass, 2); /* AMS(1) broke, AMS(2) holds */
	buf_init(&ar, 256);
	assert_int_equal(arc_verify_ar(&r, &ar), 0);
	assert_string_equal(ar.data, "arc=pass (i=2) header.oldest-pass=2");
	buf_free(&ar);

	/* the body changes after the last seal: the newest AMS fails */
	p = strstr(msg.data, "Hello");
	assert_non_null(p);
	*p = 'J';
	r = verify(w, &msg, 3);
	assert_int_equal(r.result, ARC_FAIL);
	*p = 'H';

	/* a hop that found the chain broken seals with cv=fail */
	seal(w, ARC_FAIL, 1700000002, &msg);
	assert_non_null(strstr(msg.data, "cv=fail"));
	r = verify(w, &msg, 1 << 20);
	assert_int_equal(r.result, ARC_FAIL);
	buf_free(&msg);
}

static void
test_round_trip_ed25519(void **state)
{
	struct world w = {.alg = DKIM_ALG_ED25519_SHA256};
	uint8_t seed[32];

	(void)state;
	memset(seed, 7, sizeof(seed));
	w.key = dkim_key_ed25519_seed(seed);
	assert_non_null(w.key);
	round_trip(&w);
	EVP_PKEY_free(w.key);
}

static void
test_round_trip_rsa(void **state)
{
	struct world w = {.alg = DKIM_ALG_RSA_SHA256};

	(void)state;
	w.key = EVP_RSA_gen(2048);
	assert_non_null(w.key);
	round_trip(&w);
	EVP_PKEY_free(w.key);
}

static void
test_sealer_refuses(void **state)
{
	struct arc_seal_opts o = {
	    .authserv_id = "mx.example.org",
	    .domain = "example.org",
	    .selector = "arc",
	    .alg = DKIM_ALG_RSA_SHA1,
	    .chain = ARC_NONE,
	};
	const char *h[] = {"from", "arc-seal"};
	const char *err = NULL;
	struct arc_sealer *s;
	uint8_t hash[32];

	(void)state;
	assert_null(arc_sealer_new(&o, &err));
	o.alg = DKIM_ALG_RSA_SHA256;
	o.headers = h;
	o.nheaders = 2;
	assert_null(arc_sealer_new(&o, &err));
	o.headers = NULL;
	o.authserv_id = "bad\r\nid";
	assert_null(arc_sealer_new(&o, &err));
	o.authserv_id = "mx.example.org";
	/* chain said none but the message has ARC fields */
	s = arc_sealer_new(&o, &err);
	assert_non_null(s);
	arc_sealer_feed(s, AS(1, none) AMS(1) AAR(1) "From: a@b\r\n\r\nx\r\n",
			strlen(AS(1, none) AMS(1) AAR(1)) + 16);
	assert_int_equal(arc_sealer_ams_hash(s, hash, &err), -1);
	arc_sealer_free(s);
	/* no From */
	s = arc_sealer_new(&o, &err);
	arc_sealer_feed(s, "To: a@b\r\n\r\nx\r\n", 14);
	assert_int_equal(arc_sealer_ams_hash(s, hash, &err), -1);
	arc_sealer_free(s);
	/* chain and results set after the stream (smtp-in's order) */
	s = arc_sealer_new(&o, &err);
	assert_non_null(s);
	assert_int_equal(arc_sealer_set_chain(s, ARC_NONE, "spf=pass\r\nX: y"),
			 -1);
	arc_sealer_feed(s, AS(1, none) AMS(1) AAR(1) "From: a@b\r\n\r\nx\r\n",
			strlen(AS(1, none) AMS(1) AAR(1)) + 16);
	assert_int_equal(arc_sealer_set_chain(s, ARC_FAIL, "arc=fail"), 0);
	assert_int_equal(arc_sealer_ams_hash(s, hash, &err), 0);
	assert_int_equal(arc_sealer_instance(s), 2);
	assert_int_equal(arc_sealer_set_chain(s, ARC_PASS, ""), -1); /* late */
	arc_sealer_free(s);
	/* the newest seal says cv=fail: never sealed again */
	s = arc_sealer_new(&o, &err);
	arc_sealer_feed(s, AS(1, fail) AMS(1) AAR(1) "From: a@b\r\n\r\nx\r\n",
			strlen(AS(1, fail) AMS(1) AAR(1)) + 16);
	assert_int_equal(arc_sealer_set_chain(s, ARC_FAIL, NULL), 0);
	assert_int_equal(arc_sealer_ams_hash(s, hash, &err), -1);
	assert_string_equal(err, "chain already sealed as failed (cv=fail)");
	arc_sealer_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_aar_instance),
	    cmocka_unit_test(test_ams_parse),
	    cmocka_unit_test(test_seal_parse),
	    cmocka_unit_test(test_structure),
	    cmocka_unit_test(test_round_trip_ed25519),
	    cmocka_unit_test(test_round_trip_rsa),
	    cmocka_unit_test(test_sealer_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
