/*
 * dkim_tool — a test driver for mail/dkim_*: sign, verify, canonicalise,
 * keygen from the command line, with DNS answers from a file. Used by the
 * conformance runner (run_corpus.py) and the interop tests.
 *
 *   dkim_tool verify [--dns FILE] [--now T] [--legacy] [--chunk N] [FILE]
 *       one line per signature: "INDEX RESULT d=D s=S a=ALG legacy=0|1
 *       reason=TEXT"; exit 0.
 *   dkim_tool sign (--key PEM | --seed B64FILE) -d D -s S [-a ALG]
 *       [-c H/B] [-t T] [-x X] [-i AUID] [--headers A:B:...] [--allow-weak]
 *       [--chunk N] [FILE]      the signed message on stdout
 *   dkim_tool canon-body simple|relaxed [--limit L] < in > out
 *   dkim_tool canon-header simple|relaxed < field > out
 *       the canonical form; exits 1 if feeding in two pieces at any split
 *       point, or octet by octet, gives a different result.
 *   dkim_tool keygen rsa|ed25519 -d D -s S --out PEM   TXT record on stdout
 *
 * DNS file: one record per line, "name<TAB>value"; the value "!NXDOMAIN"
 * or "!TEMPFAIL" gives that answer; a name not listed is NXDOMAIN; several
 * lines for one name give several records; '#' starts a comment line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "mail/dkim_canon.h"
#include "mail/dkim_sign.h"
#include "mail/dkim_verify.h"

#define TOOL_MAX (64u * 1024 * 1024)

static void
die(const char *msg)
{
	fprintf(stderr, "dkim_tool: %s\n", msg);
	exit(2);
}

static void
slurp(FILE *f, struct buf *b)
{
	char tmp[65536];
	size_t n;

	buf_init(b, TOOL_MAX);
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
		if (buf_add(b, tmp, n) < 0)
			die("input too large");
	}
	if (b->data == NULL && buf_add(b, "", 0) < 0)
		die("out of memory");
}

static void
slurp_path(const char *path, struct buf *b)
{
	FILE *f = path && strcmp(path, "-") != 0 ? fopen(path, "rb") : stdin;

	if (f == NULL) {
		fprintf(stderr, "dkim_tool: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	slurp(f, b);
	if (f != stdin)
		fclose(f);
}

static uint64_t
num(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0')
		die("bad number");
	return (uint64_t)v;
}

struct dns_rec {
	char *name, *value;
};

struct dns {
	struct dns_rec *r;
	size_t n;
	struct buf text;
};

static void
dns_load(struct dns *d, const char *path)
{
	char *line, *next, *tab;
	size_t cap = 0;

	memset(d, 0, sizeof(*d));
	if (path == NULL)
		return;
	slurp_path(path, &d->text);
	for (line = d->text.data; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line == '#' || (tab = strchr(line, '\t')) == NULL)
			continue;
		*tab = '\0';
		if (d->n == cap) {
			cap = cap ? cap * 2 : 16;
			d->r = xrealloc(d->r, cap * sizeof(*d->r));
		}
		d->r[d->n].name = line;
		d->r[d->n++].value = tab + 1;
	}
}

static void
answer(struct dkim_verifier *v, size_t i, const struct dns *d)
{
	const char *q = dkim_verify_query(v, i);
	struct dkim_slice recs[16];
	size_t k, n = 0;

	if (q == NULL)
		return;
	for (k = 0; k < d->n && n < 16; k++) {
		if (strcasecmp(d->r[k].name, q) != 0)
			continue;
		if (strcmp(d->r[k].value, "!NXDOMAIN") == 0)
			return dkim_verify_answer(v, i, DKIM_DNS_NXDOMAIN, NULL,
						  0);
		if (strcmp(d->r[k].value, "!TEMPFAIL") == 0)
			return dkim_verify_answer(v, i, DKIM_DNS_TEMPFAIL, NULL,
						  0);
		recs[n].p = d->r[k].value;
		recs[n++].n = strlen(d->r[k].value);
	}
	dkim_verify_answer(v, i, n ? DKIM_DNS_OK : DKIM_DNS_NXDOMAIN, recs, n);
}

static int
cmd_verify(int argc, char **argv)
{
	struct dkim_verify_opts o = {0};
	const char *dnsfile = NULL, *path = NULL;
	size_t chunk = 65536, off, i, k;
	struct dkim_verifier *v;
	struct dns d;
	struct buf msg;
	int a;

	o.now = (uint64_t)time(NULL);
	for (a = 0; a < argc; a++) {
		if (strcmp(argv[a], "--dns") == 0 && a + 1 < argc)
			dnsfile = argv[++a];
		else if (strcmp(argv[a], "--now") == 0 && a + 1 < argc)
			o.now = num(argv[++a]);
		else if (strcmp(argv[a], "--chunk") == 0 && a + 1 < argc)
			chunk = (size_t)num(argv[++a]);
		else if (strcmp(argv[a], "--legacy") == 0)
			o.check_legacy = true;
		else
			path = argv[a];
	}
	if (chunk == 0)
		die("chunk must be > 0");
	dns_load(&d, dnsfile);
	slurp_path(path, &msg);
	if ((v = dkim_verify_new(&o)) == NULL)
		die("out of memory");
	for (off = 0; off < msg.len; off += k) {
		k = msg.len - off < chunk ? msg.len - off : chunk;
		if (dkim_verify_feed(v, msg.data + off, k) == 1) {
			/* As a real caller would: ask as soon as headers end.
			 */
			for (i = 0; i < dkim_verify_nsigs(v); i++)
				answer(v, i, &d);
		}
	}
	dkim_verify_finish(v);
	for (i = 0; i < dkim_verify_nsigs(v); i++) /* no body: late answers */
		answer(v, i, &d);
	if (dkim_verify_overflow(v))
		printf("overflow\n");
	for (i = 0; i < dkim_verify_nsigs(v); i++) {
		const struct dkim_sig_result *r = dkim_verify_result(v, i);

		printf("%zu %s d=%s s=%s a=%s legacy=%d bits=%u reason=%s\n",
		       i + 1, dkim_result_name(r->result), r->domain,
		       r->selector, dkim_alg_name(r->alg), r->legacy_ok,
		       r->key_bits, r->reason ? r->reason : "");
	}
	dkim_verify_free(v);
	buf_free(&msg);
	buf_free(&d.text);
	xfree(d.r);
	return 0;
}

static EVP_PKEY *
load_key(const char *pem, const char *seed)
{
	struct buf b;
	uint8_t raw[64];
	size_t n;
	EVP_PKEY *k = NULL;

	if (pem != NULL) {
		slurp_path(pem, &b);
		k = dkim_key_load_pem(b.data, b.len);
	} else if (seed != NULL) {
		slurp_path(seed, &b);
		if (dkim_b64_decode(b.data, b.len, raw, sizeof(raw), &n) == 0 &&
		    n == 32)
			k = dkim_key_ed25519_seed(raw);
	} else {
		die("--key or --seed needed");
	}
	buf_free(&b);
	if (k == NULL)
		die("cannot load the private key");
	return k;
}

static size_t
split_headers(char *list, const char **out, size_t max)
{
	size_t n = 0;
	char *p = list, *c;

	while (p && *p && n < max) {
		c = strchr(p, ':');
		if (c)
			*c++ = '\0';
		out[n++] = p;
		p = c;
	}
	return n;
}

static void
parse_canon(const char *s, struct dkim_sign_opts *o)
{
	o->hcanon = strncmp(s, "relaxed", 7) == 0 ? DKIM_CANON_RELAXED
						  : DKIM_CANON_SIMPLE;
	s = strchr(s, '/');
	o->bcanon = s && strcmp(s + 1, "relaxed") == 0 ? DKIM_CANON_RELAXED
						       : DKIM_CANON_SIMPLE;
}

static int
do_sign(struct dkim_sign_opts *o, EVP_PKEY *key, const struct buf *msg,
	size_t chunk)
{
	struct dkim_signer *s;
	const char *err = NULL;
	uint8_t hash[32], sig[DKIM_SIG_MAX];
	size_t siglen = sizeof(sig), off, k;
	struct buf out;

	if ((s = dkim_signer_new(o, &err)) == NULL)
		die(err);
	for (off = 0; off < msg->len; off += k) {
		k = msg->len - off < chunk ? msg->len - off : chunk;
		dkim_signer_feed(s, msg->data + off, k);
	}
	if (dkim_signer_hash(s, hash, &err) < 0)
		die(err);
	if (dkim_sign_hash(key, o->alg, hash, sig, &siglen) < 0)
		die("signing failed");
	buf_init(&out, TOOL_MAX);
	if (dkim_signer_header(s, sig, siglen, &out) < 0 ||
	    buf_add(&out, msg->data, msg->len) < 0)
		die("output too large");
	fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	dkim_signer_free(s);
	return 0;
}

static int
cmd_sign(int argc, char **argv)
{
	struct dkim_sign_opts o;
	const char *pem = NULL, *seed = NULL, *path = NULL, *err = NULL;
	const char *hdrs[64];
	bool weak = false;
	size_t chunk = 65536;
	struct buf msg;
	EVP_PKEY *key;
	int a, rc;

	dkim_sign_opts_default(&o);
	for (a = 0; a < argc; a++) {
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;

		if (strcmp(argv[a], "--allow-weak") == 0) {
			weak = true;
			continue;
		}
		if (v == NULL) {
			path = argv[a];
			continue;
		}
		a++;
		if (strcmp(argv[a - 1], "--key") == 0)
			pem = v;
		else if (strcmp(argv[a - 1], "--seed") == 0)
			seed = v;
		else if (strcmp(argv[a - 1], "-d") == 0)
			o.domain = v;
		else if (strcmp(argv[a - 1], "-s") == 0)
			o.selector = v;
		else if (strcmp(argv[a - 1], "-a") == 0)
			o.alg = strncmp(v, "ed25519", 7) == 0
				    ? DKIM_ALG_ED25519_SHA256
				    : DKIM_ALG_RSA_SHA256;
		else if (strcmp(argv[a - 1], "-c") == 0)
			parse_canon(v, &o);
		else if (strcmp(argv[a - 1], "-t") == 0)
			o.t = num(v);
		else if (strcmp(argv[a - 1], "-x") == 0)
			o.x = num(v);
		else if (strcmp(argv[a - 1], "-i") == 0)
			o.auid = v;
		else if (strcmp(argv[a - 1], "--chunk") == 0)
			chunk = (size_t)num(v);
		else if (strcmp(argv[a - 1], "--headers") == 0) {
			o.nheaders = split_headers(argv[a], hdrs, 64);
			o.headers = hdrs;
		} else {
			path = argv[--a];
		}
	}
	key = load_key(pem, seed);
	if (!weak && dkim_key_check(key, o.alg, &err) < 0)
		die(err);
	slurp_path(path, &msg);
	rc = do_sign(&o, key, &msg, chunk ? chunk : 1);
	EVP_PKEY_free(key);
	buf_free(&msg);
	return rc;
}

static void
canon_body_once(enum dkim_canon c, int64_t limit, const struct buf *in,
		size_t split, bool bytewise, struct buf *out)
{
	struct dkim_body b;
	uint8_t h[32];
	size_t n, i;

	buf_init(out, TOOL_MAX);
	if (dkim_body_init(&b, c, false, limit) < 0)
		die("EVP");
	b.tap = out;
	if (bytewise) {
		for (i = 0; i < in->len; i++)
			dkim_body_feed(&b, in->data + i, 1);
	} else {
		dkim_body_feed(&b, in->data, split);
		dkim_body_feed(&b, in->data + split, in->len - split);
	}
	if (dkim_body_final(&b, h, &n) < 0 || buf_add(out, "", 0) < 0)
		die("EVP");
}

static bool
same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static int
cmd_canon_body(int argc, char **argv)
{
	enum dkim_canon c = DKIM_CANON_SIMPLE;
	int64_t limit = -1;
	struct buf in, ref, alt;
	size_t k;
	int a, rc = 0;

	for (a = 0; a < argc; a++) {
		if (strcmp(argv[a], "relaxed") == 0)
			c = DKIM_CANON_RELAXED;
		else if (strcmp(argv[a], "--limit") == 0 && a + 1 < argc)
			limit = (int64_t)num(argv[++a]);
	}
	slurp(stdin, &in);
	canon_body_once(c, limit, &in, in.len, false, &ref);
	for (k = 0; k <= in.len && rc == 0; k++) {
		canon_body_once(c, limit, &in, k, false, &alt);
		if (!same(&ref, &alt))
			rc = 1;
		buf_free(&alt);
	}
	canon_body_once(c, limit, &in, 0, true, &alt);
	if (!same(&ref, &alt))
		rc = 1;
	if (rc)
		fprintf(stderr, "dkim_tool: result depends on the split\n");
	fwrite(ref.data, 1, ref.len, stdout);
	buf_free(&alt);
	buf_free(&ref);
	buf_free(&in);
	return rc;
}

static int
cmd_canon_header(int argc, char **argv)
{
	enum dkim_canon c = argc > 0 && strcmp(argv[0], "relaxed") == 0
				? DKIM_CANON_RELAXED
				: DKIM_CANON_SIMPLE;
	struct buf in, out;

	slurp(stdin, &in);
	buf_init(&out, TOOL_MAX);
	if (dkim_hcanon(c, in.data, in.len, true, &out) < 0)
		die("not a header field");
	fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	buf_free(&in);
	return 0;
}

static int
cmd_keygen(int argc, char **argv)
{
	enum dkim_alg alg = DKIM_ALG_RSA_SHA256;
	const char *d = NULL, *s = NULL, *outp = NULL;
	struct buf pem, txt;
	FILE *f;
	int a;

	for (a = 0; a < argc; a++) {
		if (strcmp(argv[a], "ed25519") == 0)
			alg = DKIM_ALG_ED25519_SHA256;
		else if (strcmp(argv[a], "-d") == 0 && a + 1 < argc)
			d = argv[++a];
		else if (strcmp(argv[a], "-s") == 0 && a + 1 < argc)
			s = argv[++a];
		else if (strcmp(argv[a], "--out") == 0 && a + 1 < argc)
			outp = argv[++a];
	}
	if (d == NULL || s == NULL || outp == NULL)
		die("keygen needs -d, -s and --out");
	buf_init(&pem, 65536);
	buf_init(&txt, 65536);
	if (dkim_keygen(alg, d, s, &pem, &txt) < 0)
		die("keygen failed");
	if ((f = fopen(outp, "wb")) == NULL ||
	    fwrite(pem.data, 1, pem.len, f) != pem.len || fclose(f) != 0)
		die("cannot write the key");
	fwrite(txt.data, 1, txt.len, stdout);
	buf_free(&pem);
	buf_free(&txt);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: dkim_tool "
		    "verify|sign|canon-body|canon-header|keygen");
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 2, argv + 2);
	if (strcmp(argv[1], "sign") == 0)
		return cmd_sign(argc - 2, argv + 2);
	if (strcmp(argv[1], "canon-body") == 0)
		return cmd_canon_body(argc - 2, argv + 2);
	if (strcmp(argv[1], "canon-header") == 0)
		return cmd_canon_header(argc - 2, argv + 2);
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 2, argv + 2);
	die("unknown command");
	return 2;
}
