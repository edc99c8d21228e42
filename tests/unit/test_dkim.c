/* test_dkim — canonicalisation, tag lists, verify and sign (mail/dkim_*). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "mail/dkim_canon.h"
#include "mail/dkim_crypto.h"
#include "mail/dkim_sign.h"
#include "mail/dkim_tags.h"
#include "mail/dkim_verify.h"

/* Canonical body of in fed at split k (k > n: octet by octet). */
static void
canon_at(enum dkim_canon c, int64_t l, const char *in, size_t k,
	 struct buf *out)
{
	struct dkim_body b;
	uint8_t h[32];
	size_t n = strlen(in), i, hl;

	buf_init(out, 1 << 20);
	assert_int_equal(dkim_body_init(&b, c, false, l), 0);
	b.tap = out;
	if (k > n) {
		for (i = 0; i < n; i++)
			dkim_body_feed(&b, in + i, 1);
	} else {
		dkim_body_feed(&b, in, k);
		dkim_body_feed(&b, in + k, n - k);
	}
	assert_int_equal(dkim_body_final(&b, h, &hl), 0);
	assert_int_equal(buf_add(out, "", 0), 0);
	if (l >= 0)
		assert_true(
		    b.hashed ==
		    ((uint64_t)l < b.canon_len ? (uint64_t)l : b.canon_len));
}

static void
check_body(enum dkim_canon c, const char *in, const char *want)
{
	size_t k, n = strlen(in);
	struct buf out;

	for (k = 0; k <= n + 1; k++) {
		canon_at(c, -1, in, k, &out);
		if (out.len != strlen(want) || memcmp(out.data, want, out.len))
			fail_msg("split %zu of %s", k, in);
		buf_free(&out);
	}
}

static void
test_body_simple(void **st)
{
	(void)st;
	check_body(DKIM_CANON_SIMPLE, "", "\r\n");
	check_body(DKIM_CANON_SIMPLE, "\r\n\r\n\r\n", "\r\n");
	check_body(DKIM_CANON_SIMPLE, "a  b \r\n\r\n", "a  b \r\n");
	check_body(DKIM_CANON_SIMPLE, "a\r\n\r\nb", "a\r\n\r\nb\r\n");
	check_body(DKIM_CANON_SIMPLE, "a\r\n \r\n", "a\r\n \r\n");
	check_body(DKIM_CANON_SIMPLE, "a\r", "a\r\r\n");
	check_body(DKIM_CANON_SIMPLE, "a\r\r\n\r\n", "a\r\r\n");
	check_body(DKIM_CANON_SIMPLE, "a\nb\r\n", "a\nb\r\n");
}

static void
test_body_relaxed(void **st)
{
	(void)st;
	check_body(DKIM_CANON_RELAXED, "", "");
	check_body(DKIM_CANON_RELAXED, "\r\n \t\r\n\r\n", "");
	check_body(DKIM_CANON_RELAXED, " C \r\nD \t E\r\n\r\n\r\n",
		   " C\r\nD E\r\n");
	check_body(DKIM_CANON_RELAXED, "a \t", "a\r\n");
	check_body(DKIM_CANON_RELAXED, "a  b c\t\td\r\n \r\ne",
		   "a b c d\r\n\r\ne\r\n");
	check_body(DKIM_CANON_RELAXED, "x\r \r\n", "x\r\r\n");
}

static void
test_body_limit(void **st)
{
	struct buf out;

	(void)st;
	/* l= limits what is hashed, not what is canonicalised. */
	canon_at(DKIM_CANON_RELAXED, 3, "abcdef\r\n", 2, &out);
	assert_int_equal(out.len, 8);
	buf_free(&out);
	canon_at(DKIM_CANON_SIMPLE, 0, "abc\r\n", 9, &out);
	buf_free(&out);
	canon_at(DKIM_CANON_SIMPLE, 100, "abc\r\n", 1, &out);
	buf_free(&out);
}

/* The differential harness (src/mail/fuzz_dkim_canon.c), linked in. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t gen_state = 1;

static uint32_t
gen(uint32_t n)
{
	gen_state = gen_state * 1103515245u + 12345u;
	return (gen_state >> 8) % n;
}

/*
 * A body that has every kind of octet the canonicaliser treats apart:
 * words and single SPs, SP and TAB runs inside and at the end of lines,
 * WSP-only and empty lines, bare CR and LF, CR before WSP, long stretches
 * with nothing to rewrite (longer than the 16 KiB stage) and, at the end,
 * empty lines and white space.
 */
static void
gen_body(struct buf *m, size_t size)
{
	static const char *const bits[] = {
	    "word", " ",    " ",	"  ",	      "\t",	" \t ",
	    "\r\n", "\r\n", "\r\n\r\n", " \r\n",      "\t\r\n", "\r",
	    "\n",   "\r ",  " \r",	"x\r\n \r\n", ".",
	};
	size_t i;

	buf_init(m, 2 * size + 1024);
	while (m->len < size) {
		if (gen(200) == 0) {
			for (i = gen(40000); i > 0; i--)
				buf_addc(m, (char)('A' + gen(26)));
			continue;
		}
		buf_adds(m, bits[gen(sizeof(bits) / sizeof(bits[0]))]);
	}
	buf_adds(m, gen(2) ? "\r\n \r\n\t\r\n\r\n" : " \t");
}

static void
hash_chunked(enum dkim_canon c, const struct buf *m, uint32_t maxcut,
	     uint8_t h[32], uint64_t *len)
{
	struct dkim_body b;
	size_t i, k, hl;

	assert_int_equal(dkim_body_init(&b, c, false, -1), 0);
	for (i = 0; i < m->len; i += k) {
		k = maxcut ? 1 + gen(maxcut) : m->len;
		if (k > m->len - i)
			k = m->len - i;
		dkim_body_feed(&b, m->data + i, k);
	}
	assert_int_equal(dkim_body_final(&b, h, &hl), 0);
	*len = b.canon_len;
}

/* The same 200 KiB body cut anywhere hashes the same as in one piece. */
static void
test_body_chunks(void **st)
{
	static const uint32_t cuts[] = {1, 2, 3, 16, 17, 100, 4096, 70000};
	enum dkim_canon c;
	uint8_t whole[32], part[32];
	uint64_t wlen, plen;
	struct buf m;
	size_t k, round;

	(void)st;
	gen_body(&m, 200 * 1024);
	for (c = DKIM_CANON_SIMPLE; c <= DKIM_CANON_RELAXED; c++) {
		hash_chunked(c, &m, 0, whole, &wlen);
		for (k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
			for (round = 0; round < 3; round++) {
				hash_chunked(c, &m, cuts[k], part, &plen);
				assert_int_equal(plen, wlen);
				assert_memory_equal(part, whole, 32);
			}
		}
	}
	buf_free(&m);
}

/* The fast canonicaliser against the reference, on generated bodies in
 * every mode of the harness: simple/relaxed, l= or not, four ways of
 * cutting (the 20 large bodies, up to 80 KiB, not octet by octet). */
static void
test_body_reference(void **st)
{
	struct buf m, in;
	size_t n, mode;

	(void)st;
	for (n = 0; n < 520; n++) {
		bool big = n >= 500;

		gen_body(&m, big ? 20000 + gen(60000) : gen(300));
		buf_init(&in, m.len + 8);
		for (mode = 0; mode < 16; mode++) {
			uint8_t hdr[3] = {(uint8_t)mode, (uint8_t)gen(256),
					  (uint8_t)gen(4)};

			if (big && (mode >> 2) == 1)
				continue; /* octet by octet: small ones do */
			buf_reset(&in);
			buf_add(&in, hdr, 3);
			buf_add(&in, m.data, m.len);
			LLVMFuzzerTestOneInput((const uint8_t *)in.data,
					       in.len);
		}
		buf_free(&in);
		buf_free(&m);
	}
}

/* Header block and body of msg, fed octet by octet when k == 0, else in
 * pieces of k octets. */
static void
split_in(const char *msg, size_t k, struct buf *hdr, struct buf *body)
{
	struct dkim_split sp;
	const char *b;
	size_t n = strlen(msg), i, step, bl;

	dkim_split_init(&sp, 4096);
	buf_init(body, 4096);
	for (i = 0; i < n; i += step) {
		step = k == 0 ? 1 : k;
		if (step > n - i)
			step = n - i;
		dkim_split_feed(&sp, msg + i, step, &b, &bl);
		buf_add(body, b, bl);
	}
	buf_init(hdr, 4096);
	buf_add(hdr, sp.hdr.data ? sp.hdr.data : "", sp.hdr.len);
	assert_true(sp.in_body || strstr(msg, "\r\n\r\n") == NULL);
	dkim_split_free(&sp);
}

/* The header block ends at the first empty line, however the message is
 * cut (each CR and LF of CRLF CRLF on either side of a cut). */
static void
test_split_cuts(void **st)
{
	static const struct {
		const char *msg, *hdr, *body;
	} cases[] = {
	    {"A: b\r\n\r\nbody\r\n\r\nx", "A: b\r\n", "body\r\n\r\nx"},
	    {"\r\nbody", "", "body"},
	    {"A: b\r\n\r\n", "A: b\r\n", ""},
	    {"A: b\r\r\n\r\nx", "A: b\r\r\n", "x"},
	    {"A: b\n\r\n\r\nx", "A: b\n\r\n", "x"},
	    {"A: b\r\n\n\r\nc\r\n\r\n\r\nx", "A: b\r\n\n\r\nc\r\n", "\r\nx"},
	    {"A: b\r\n c\r\nD:\r\r\r\n\r\nx\r\n", "A: b\r\n c\r\nD:\r\r\r\n",
	     "x\r\n"},
	    {"A: very long field value with no end in sight\r\n\r\n!",
	     "A: very long field value with no end in sight\r\n", "!"},
	};
	struct buf h, b;
	size_t c, k;

	(void)st;
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (k = 0; k <= strlen(cases[c].msg); k++) {
			split_in(cases[c].msg, k, &h, &b);
			if (strcmp(h.data ? h.data : "", cases[c].hdr) != 0 ||
			    strcmp(b.data ? b.data : "", cases[c].body) != 0)
				fail_msg("case %zu in pieces of %zu", c, k);
			buf_free(&h);
			buf_free(&b);
		}
	}
}

static void
check_hdr(enum dkim_canon c, const char *in, const char *want)
{
	struct buf out;

	buf_init(&out, 4096);
	assert_int_equal(dkim_hcanon(c, in, strlen(in), true, &out), 0);
	assert_int_equal(buf_add(&out, "", 0), 0);
	assert_string_equal(out.data, want);
	buf_free(&out);
}

static void
test_header_canon(void **st)
{
	(void)st;
	check_hdr(DKIM_CANON_RELAXED, "SubjeCT: Your Name\r\n",
		  "subject:Your Name\r\n");
	check_hdr(DKIM_CANON_RELAXED, "Subject \t:\t Kimi \t \r\n No \t\r\n",
		  "subject:Kimi No\r\n");
	check_hdr(DKIM_CANON_RELAXED, "A:\r\n", "a:\r\n");
	check_hdr(DKIM_CANON_SIMPLE, "SubjeCT : x \r\n y\r\n",
		  "SubjeCT : x \r\n y\r\n");
	check_hdr(DKIM_CANON_SIMPLE, "X: no crlf", "X: no crlf\r\n");
}

static void
expect_tags_err(const char *s, const char *err)
{
	struct dkim_tags t;
	const char *e = NULL;

	assert_int_equal(dkim_tags_parse(s, strlen(s), &t, &e), -1);
	assert_string_equal(e, err);
}

static void
test_tags(void **st)
{
	struct dkim_tags t;
	const char *e = NULL;
	const char *ok = " a = 1 ;\r\n\tb=x y\r\n z ; c=;";
	const struct dkim_tag *b;

	(void)st;
	assert_int_equal(dkim_tags_parse(ok, strlen(ok), &t, &e), 0);
	assert_int_equal(t.n, 3);
	b = dkim_tags_get(&t, "b");
	assert_non_null(b);
	assert_int_equal(b->value.n, strlen("x y\r\n z"));
	assert_int_equal(dkim_tags_get(&t, "c")->value.n, 0);
	assert_null(dkim_tags_get(&t, "d"));
	assert_int_equal(dkim_tags_parse("", 0, &t, &e), 0);
	expect_tags_err("a=1; a=2", "duplicate tag");
	expect_tags_err("a=1;;b=2", "tag name expected");
	expect_tags_err("a", "'=' expected after tag name");
	expect_tags_err("1a=2", "tag name expected");
	expect_tags_err("a=1\nb", "bare CR or LF in tag list");
	expect_tags_err("a=1\r\nb=2", "bare CR or LF in tag list");
	expect_tags_err("a=\x01", "invalid character in tag value");
	expect_tags_err("a=\xc3\xa9", "invalid character in tag value");
}

static const char SIG_OK[] =
    "v=1; a=rsa-sha256; d=example.com; s=sel; h=From:To; bh="
    "47DEQpj8HBSa+/TVW1lhRgEZAA+SCbYx7ZLd6UCyR8M=; b=AAAA";

static void
expect_sig_err(const char *extra, const char *err)
{
	char s[512];
	struct dkim_sig *sig = malloc(sizeof(*sig));
	const char *e = NULL;

	snprintf(s, sizeof(s), "%s%s", SIG_OK, extra);
	assert_int_equal(dkim_sig_parse(s, strlen(s), sig, &e), err ? -1 : 0);
	if (err)
		assert_string_equal(e, err);
	free(sig);
}

static void
test_sig_parse(void **st)
{
	struct dkim_sig *sig = malloc(sizeof(*sig));
	const char *e = NULL;
	const char *bad_h = "v=1; a=rsa-sha256; d=example.com; s=sel; h=To; "
			    "bh=47DEQpj8HBSa+/TVW1lhRgEZAA+SCbYx7ZLd6UCyR8M=; "
			    "b=AAAA";

	(void)st;
	expect_sig_err("", NULL);
	expect_sig_err("; i=joe@sub.example.com", NULL);
	expect_sig_err("; i=joe@example.com.evil", "i= domain is not d= or a "
						   "subdomain");
	expect_sig_err("; i=joe@xexample.com", "i= domain is not d= or a "
					       "subdomain");
	expect_sig_err("; t=200; x=100", "x= is not after t=");
	expect_sig_err("; l=12x", "invalid l= tag");
	expect_sig_err("; c=simple/strange", "unsupported canonicalization "
					     "(c=)");
	expect_sig_err("; q=http", "unsupported query method (q=)");
	expect_sig_err("; v=1", "duplicate tag");
	assert_int_equal(dkim_sig_parse(bad_h, strlen(bad_h), sig, &e), -1);
	assert_string_equal(e, "From is not signed (h=)");
	free(sig);
}

static void
test_key_parse(void **st)
{
	struct dkim_keyrec *k = malloc(sizeof(*k));
	const char *e = NULL;
	const char *r;

	(void)st;
	r = "v=DKIM1; k=ed25519; "
	    "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
	assert_int_equal(dkim_key_parse(r, strlen(r), k, &e), 0);
	assert_int_equal(k->type, DKIM_KEY_ED25519);
	assert_int_equal(k->plen, 32);
	r = "k=rsa; p=";
	assert_int_equal(dkim_key_parse(r, strlen(r), k, &e), 0);
	assert_true(k->revoked);
	r = "p=AAAA; v=DKIM1";
	assert_int_equal(dkim_key_parse(r, strlen(r), k, &e), -1);
	r = "v=DKIM1; k=dsa; p=AAAA";
	assert_int_equal(dkim_key_parse(r, strlen(r), k, &e), -1);
	r = "v=DKIM1; s=tlsrpt; p=AAAA";
	assert_int_equal(dkim_key_parse(r, strlen(r), k, &e), -1);
	r = "v=DKIM1; h=sha1; t=y:s; p=AAAA";
	assert_int_equal(dkim_key_parse(r, strlen(r), k, &e), 0);
	assert_true(k->sha1_ok && !k->sha256_ok && k->testing && k->strict);
	r = "p=AAA";
	assert_int_equal(dkim_key_parse(r, strlen(r), k, &e), -1);
	free(k);
}

static const char MSG[] =
    "From: Joe <joe@example.com>\r\n"
    "To: Suzie <suzie@example.net>\r\n"
    "Subject: Is dinner   ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700\r\n"
    "\r\n"
    "Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n"
    "\r\n\r\n";

/* Sign msg with key; the signed message in out. */
static void
sign_msg(EVP_PKEY *key, struct dkim_sign_opts *o, const char *msg,
	 struct buf *out)
{
	const char *err = NULL;
	struct dkim_signer *s = dkim_signer_new(o, &err);
	uint8_t hash[32], sig[DKIM_SIG_MAX];
	size_t siglen = sizeof(sig);

	assert_non_null(s);
	dkim_signer_feed(s, msg, 7);
	dkim_signer_feed(s, msg + 7, strlen(msg) - 7);
	assert_int_equal(dkim_signer_hash(s, hash, &err), 0);
	assert_int_equal(dkim_sign_hash(key, o->alg, hash, sig, &siglen), 0);
	buf_init(out, 1 << 20);
	assert_int_equal(dkim_signer_header(s, sig, siglen, out), 0);
	assert_int_equal(buf_adds(out, msg), 0);
	dkim_signer_free(s);
}

/* Verify with one key record; the result of signature 1. */
static struct dkim_sig_result
verify_msg(const char *msg, size_t n, const char *rec, uint64_t now)
{
	struct dkim_verify_opts o = {.now = now};
	struct dkim_verifier *v = dkim_verify_new(&o);
	struct dkim_slice r = {rec, strlen(rec)};
	struct dkim_sig_result res;
	size_t i;

	for (i = 0; i < n; i += 5)
		dkim_verify_feed(v, msg + i, n - i < 5 ? n - i : 5);
	assert_true(dkim_verify_nsigs(v) >= 1);
	dkim_verify_answer(v, 0, DKIM_DNS_OK, &r, 1);
	dkim_verify_finish(v);
	res = *dkim_verify_result(v, 0);
	if (res.reason == dkim_verify_result(v, 0)->reason_buf)
		res.reason = res.reason_buf;
	dkim_verify_free(v);
	return res;
}

static void
key_record(EVP_PKEY *key, char *rec, size_t max)
{
	struct buf txt;
	const char *q;
	size_t n = 0;

	/* the zone text: concatenate its quoted strings */
	buf_init(&txt, 8192);
	assert_int_equal(dkim_txt_record(key, "example.com", "sel", &txt), 0);
	for (q = strchr(txt.data, '"'); q != NULL;) {
		const char *e = strchr(q + 1, '"');

		assert_true(e - q - 1 <= 255);
		assert_true(n + (size_t)(e - q - 1) < max);
		memcpy(rec + n, q + 1, (size_t)(e - q - 1));
		n += (size_t)(e - q - 1);
		q = strchr(e + 1, '"');
	}
	rec[n] = '\0';
	buf_free(&txt);
}

static void
test_sign_verify_ed25519(void **st)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct dkim_sign_opts o;
	struct dkim_sig_result r;
	struct buf m, m2;
	char rec[4096];

	(void)st;
	key_record(key, rec, sizeof(rec));
	dkim_sign_opts_default(&o);
	o.domain = "example.com";
	o.selector = "sel";
	o.alg = DKIM_ALG_ED25519_SHA256;
	o.t = 1000;
	o.x = 2000;
	sign_msg(key, &o, MSG, &m);
	assert_non_null(strstr(m.data, "h=From:From:To:Subject:Date;"));
	r = verify_msg(m.data, m.len, rec, 1500);
	assert_int_equal(r.result, DKIM_PASS);
	/* x= in the past */
	r = verify_msg(m.data, m.len, rec, 2001);
	assert_int_equal(r.result, DKIM_PERMERROR);
	assert_string_equal(r.reason, "signature expired (x=)");
	/* oversigned From: adding a second From breaks the signature */
	buf_init(&m2, 1 << 20);
	buf_add(&m2, m.data, m.len);
	buf_adds(&m2, "");
	{
		char *p = strstr(m2.data, "\r\nFrom:");
		struct buf m3;

		buf_init(&m3, 1 << 20);
		buf_add(&m3, m2.data, (size_t)(p - m2.data) + 2);
		buf_adds(&m3, "From: evil@example.org\r\n");
		buf_adds(&m3, p + 2);
		r = verify_msg(m3.data, m3.len, rec, 1500);
		assert_int_equal(r.result, DKIM_FAIL);
		assert_string_equal(r.reason, "signature did not verify");
		buf_free(&m3);
	}
	/* body changed */
	buf_reset(&m2);
	buf_add(&m2, m.data, m.len - 4);
	buf_adds(&m2, "!\r\n");
	r = verify_msg(m2.data, m2.len, rec, 1500);
	assert_int_equal(r.result, DKIM_FAIL);
	assert_string_equal(r.reason, "body hash did not verify");
	/* revoked and mismatched keys */
	r = verify_msg(m.data, m.len, "v=DKIM1; k=ed25519; p=", 1500);
	assert_int_equal(r.result, DKIM_FAIL);
	assert_string_equal(r.reason, "key revoked");
	r = verify_msg(m.data, m.len, "v=DKIM1; k=rsa; p=AAAA", 1500);
	assert_int_equal(r.result, DKIM_PERMERROR);
	buf_free(&m);
	buf_free(&m2);
	EVP_PKEY_free(key);
}

static void
test_short_key(void **st)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	EVP_PKEY *big = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	struct dkim_sign_opts o;
	struct dkim_sig_result r;
	const char *err = NULL;
	struct buf m;
	char rec[4096];

	(void)st;
	assert_int_equal(dkim_key_check(key, DKIM_ALG_RSA_SHA256, &err), -1);
	assert_int_equal(dkim_key_check(big, DKIM_ALG_RSA_SHA256, &err), 0);
	dkim_sign_opts_default(&o);
	o.domain = "example.com";
	o.selector = "sel";
	key_record(key, rec, sizeof(rec));
	sign_msg(key, &o, MSG, &m);
	r = verify_msg(m.data, m.len, rec, 0);
	assert_int_equal(r.result, DKIM_FAIL);
	assert_string_equal(r.reason, "key too short (512 bits)");
	assert_true(r.legacy_ok);
	buf_free(&m);
	(void)big;
	EVP_PKEY_free(key);
	EVP_PKEY_free(big);
}

/* A signature with l= made by hand (our signer never uses l=). */
static void
test_l_tag(void **st)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	const char *body = "Hi.\r\n";
	struct dkim_body b;
	struct dkim_split sp;
	struct dkim_sig_result r;
	uint8_t bh[32], hash[32], sig[DKIM_SIG_MAX];
	char enc[200], rec[4096];
	size_t n, siglen = sizeof(sig);
	const char *bp;
	struct buf m, f;
	struct dkim_slice h = {"From", 4};

	(void)st;
	key_record(key, rec, sizeof(rec));
	assert_int_equal(dkim_body_init(&b, DKIM_CANON_RELAXED, false, 5), 0);
	dkim_body_feed(&b, body, strlen(body));
	assert_int_equal(dkim_body_final(&b, bh, &n), 0);
	EVP_EncodeBlock((unsigned char *)enc, bh, 32);
	buf_init(&f, 4096);
	buf_addf(&f,
		 "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;"
		 " d=example.com; s=sel; l=5; h=From; bh=%s; b=",
		 enc);
	dkim_split_init(&sp, 4096);
	dkim_split_feed(&sp, "From: a@example.com\r\n\r\n", 23, &bp, &n);
	assert_int_equal(dkim_split_fields(&sp), 0);
	assert_int_equal(dkim_header_hash(&sp, &h, 1, f.data, f.len,
					  DKIM_CANON_RELAXED, false, hash, &n),
			 0);
	assert_int_equal(
	    dkim_sign_hash(key, DKIM_ALG_ED25519_SHA256, hash, sig, &siglen),
	    0);
	EVP_EncodeBlock((unsigned char *)enc, sig, (int)siglen);
	buf_init(&m, 8192);
	buf_addf(&m, "%s%s\r\nFrom: a@example.com\r\n\r\n%s", f.data, enc,
		 body);
	r = verify_msg(m.data, m.len, rec, 0);
	assert_int_equal(r.result, DKIM_PASS);
	assert_true(r.l_warning);
	/* appended content is not covered: still pass, flagged */
	buf_adds(&m, "Click here: http://evil.example/\r\n");
	r = verify_msg(m.data, m.len, rec, 0);
	assert_int_equal(r.result, DKIM_PASS);
	assert_true(r.l_warning);
	assert_non_null(strstr(r.reason, "l= signs 5 of"));
	buf_free(&m);
	buf_free(&f);
	dkim_split_free(&sp);
	EVP_PKEY_free(key);
}

/* RFC 8463 appendix A: the header hash signed with the published keys
 * gives the published b= exactly (Ed25519 and PKCS#1 v1.5 are
 * deterministic), and both signatures verify. */
static char *
corpus_file(const char *name, size_t *n)
{
	const char *env = getenv("TODOKU_CORPORA");
	char path[4096];
	struct buf b;
	FILE *f;
	char tmp[4096];
	size_t k;

	const char *slash = strrchr(__FILE__, '/');
	int dl = slash ? (int)(slash - __FILE__) : 1;

	/* default: <repo>/../shared/corpora, found from this file's path */
	if (env)
		snprintf(path, sizeof(path), "%s/dkim/rfc8463/%s", env, name);
	else
		snprintf(path, sizeof(path),
			 "%.*s/../../../shared/corpora/dkim/rfc8463/%s", dl,
			 slash ? __FILE__ : ".", name);
	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	buf_init(&b, 1 << 20);
	while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_add(&b, tmp, k);
	fclose(f);
	*n = b.len;
	return buf_steal(&b);
}

static void
rfc8463_one(struct dkim_split *sp, size_t fi, EVP_PKEY *key)
{
	const struct dkim_field *f = &sp->fields[fi];
	const char *raw = sp->hdr.data + f->off;
	struct dkim_sig *sig = malloc(sizeof(*sig));
	const char *err = NULL;
	char tmp[2048];
	uint8_t hash[32], out[DKIM_SIG_MAX];
	size_t hl, ol = sizeof(out), vl = f->len - f->value_off - 2, c0, c1;

	assert_int_equal(dkim_sig_parse(raw + f->value_off, vl, sig, &err), 0);
	c0 = f->value_off + sig->b_start;
	c1 = f->value_off + sig->b_end;
	memcpy(tmp, raw, c0);
	memcpy(tmp + c0, raw + c1, f->len - c1);
	assert_int_equal(dkim_header_hash(sp, sig->hdrs, sig->nhdrs, tmp,
					  f->len - (c1 - c0), sig->hcanon,
					  false, hash, &hl),
			 0);
	assert_int_equal(dkim_sign_hash(key, sig->alg, hash, out, &ol), 0);
	assert_int_equal(ol, sig->blen);
	assert_memory_equal(out, sig->b, ol);
	free(sig);
}

static void
test_rfc8463(void **st)
{
	static const uint8_t seed_b64[] =
	    "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
	size_t n, pn, sl;
	char *msg = corpus_file("signed-message.eml", &n);
	char *pem = corpus_file("test-rsa.private.pem", &pn);
	struct dkim_split sp;
	const char *body;
	size_t blen;
	uint8_t seed[64];
	EVP_PKEY *ed, *rsa;

	(void)st;
	if (msg == NULL || pem == NULL)
		fail_msg("corpus not found (TODOKU_CORPORA)");
	assert_int_equal(dkim_b64_decode((const char *)seed_b64,
					 strlen((const char *)seed_b64), seed,
					 sizeof(seed), &sl),
			 0);
	ed = dkim_key_ed25519_seed(seed);
	rsa = dkim_key_load_pem(pem, pn);
	assert_non_null(ed);
	assert_non_null(rsa);
	dkim_split_init(&sp, 1 << 20);
	assert_true(dkim_split_feed(&sp, msg, n, &body, &blen));
	assert_int_equal(dkim_split_fields(&sp), 0);
	rfc8463_one(&sp, 0, ed);
	rfc8463_one(&sp, 1, rsa);
	dkim_split_free(&sp);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
	free(msg);
	free(pem);
}

static void
test_keygen(void **st)
{
	struct buf pem, txt;

	(void)st;
	buf_init(&pem, 65536);
	buf_init(&txt, 65536);
	assert_int_equal(
	    dkim_keygen(DKIM_ALG_RSA_SHA256, "example.com", "s1", &pem, &txt),
	    0);
	assert_non_null(strstr(txt.data, "s1._domainkey.example.com. IN TXT"));
	assert_non_null(strstr(txt.data, "\"v=DKIM1; k=rsa; p=MIIB"));
	{
		EVP_PKEY *k = dkim_key_load_pem(pem.data, pem.len);

		assert_non_null(k);
		EVP_PKEY_free(k);
	}
	buf_free(&pem);
	buf_free(&txt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_body_simple),
	    cmocka_unit_test(test_body_relaxed),
	    cmocka_unit_test(test_body_limit),
	    cmocka_unit_test(test_body_chunks),
	    cmocka_unit_test(test_body_reference),
	    cmocka_unit_test(test_split_cuts),
	    cmocka_unit_test(test_header_canon),
	    cmocka_unit_test(test_tags),
	    cmocka_unit_test(test_sig_parse),
	    cmocka_unit_test(test_key_parse),
	    cmocka_unit_test(test_sign_verify_ed25519),
	    cmocka_unit_test(test_short_key),
	    cmocka_unit_test(test_l_tag),
	    cmocka_unit_test(test_rfc8463),
	    cmocka_unit_test(test_keygen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
