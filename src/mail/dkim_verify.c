/*
 * dkim_verify — see dkim_verify.h.
 *
 * Life of a signature: parsed and checked when the header block ends (its
 * header hash is computed right then, so the header block could be
 * dropped); its body hasher is shared with every signature of the same
 * (c= body, hash, l=); the key arrives whenever the caller's DNS answers
 * and is checked at once; at finish the body hash and the signature are
 * compared and RFC 8301 policy applied. A signature whose result is known
 * early (syntax, expiry, key) keeps it; later steps skip it.
 */
#include "mail/dkim_verify.h"

#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"
#include "mail/dkim_canon.h"
#include "mail/dkim_crypto.h"

#define DKIM_MAX_HEADER_DEFAULT (1024 * 1024)
#define DKIM_MAX_SIGS_DEFAULT 8

struct vsig {
	struct dkim_sig_result r;
	bool decided; /* r.result is final */
	bool answered;
	struct dkim_sig *sig;
	int body; /* index into bodies, -1 none */
	uint8_t hhash[32];
	size_t hlen;
	EVP_PKEY *key;
	char query[2 * DKIM_DOMAIN_MAX + 16];
};

struct vbody {
	struct dkim_body b;
	uint8_t hash[32];
	size_t hlen;
	bool done, ok;
};

struct dkim_verifier {
	struct dkim_verify_opts o;
	struct dkim_split split;
	bool headers_done, finished;
	size_t nsigs;
	struct vsig *sigs;
	size_t nbodies;
	struct vbody **bodies;
};

const char *
dkim_result_name(enum dkim_result r)
{
	static const char *const names[] = {"pass",	 "fail",      "neutral",
					    "temperror", "permerror", "policy"};

	return (unsigned)r < 6 ? names[r] : "permerror";
}

struct dkim_verifier *
dkim_verify_new(const struct dkim_verify_opts *o)
{
	struct dkim_verifier *v = tcalloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	v->o = *o;
	if (v->o.max_header == 0)
		v->o.max_header = DKIM_MAX_HEADER_DEFAULT;
	if (v->o.max_sigs == 0)
		v->o.max_sigs = DKIM_MAX_SIGS_DEFAULT;
	dkim_split_init(&v->split, v->o.max_header);
	return v;
}

void
dkim_verify_free(struct dkim_verifier *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->nsigs; i++) {
		xfree(v->sigs[i].sig);
		EVP_PKEY_free(v->sigs[i].key);
	}
	xfree(v->sigs);
	for (i = 0; i < v->nbodies; i++) {
		dkim_body_free(&v->bodies[i]->b);
		xfree(v->bodies[i]);
	}
	xfree(v->bodies);
	dkim_split_free(&v->split);
	xfree(v);
}

static void
decide(struct vsig *s, enum dkim_result r, const char *reason)
{
	if (s->decided)
		return;
	s->decided = true;
	s->r.result = r;
	s->r.reason = reason;
}

static void
copy_slice(char *dst, size_t max, struct dkim_slice s)
{
	size_t n = s.n < max - 1 ? s.n : max - 1;

	memcpy(dst, s.p, n);
	dst[n] = '\0';
}

static bool
is_sig_field(const struct dkim_split *sp, const struct dkim_field *f)
{
	struct dkim_slice name = {sp->hdr.data + f->off, f->name_len};

	return dkim_slice_eqi(name, "DKIM-Signature", 14);
}

/* The shared body hasher for this signature; -1 on failure. */
static int
body_for(struct dkim_verifier *v, const struct dkim_sig *sig)
{
	bool sha1 = dkim_alg_is_sha1(sig->alg);
	int64_t l = sig->has_l
			? (int64_t)(sig->l > INT64_MAX ? INT64_MAX : sig->l)
			: -1;
	struct vbody *vb;
	size_t i;

	for (i = 0; i < v->nbodies; i++) {
		struct dkim_body *b = &v->bodies[i]->b;

		if (b->canon == sig->bcanon && b->sha1 == sha1 &&
		    b->has_limit == (l >= 0) &&
		    (l < 0 || b->limit == (uint64_t)l))
			return (int)i;
	}
	vb = tcalloc(1, sizeof(*vb));
	if (vb == NULL)
		return -1;
	if (dkim_body_init(&vb->b, sig->bcanon, sha1, l) < 0) {
		xfree(vb);
		return -1;
	}
	v->bodies[v->nbodies] = vb;
	return (int)v->nbodies++;
}

static void
fill_ids(struct vsig *s)
{
	const struct dkim_sig *sig = s->sig;
	const struct dkim_tag *b = dkim_tags_get(&sig->tags, "b");
	size_t i, k = 0;

	s->r.alg = sig->alg;
	copy_slice(s->r.domain, sizeof(s->r.domain), sig->d);
	copy_slice(s->r.selector, sizeof(s->r.selector), sig->s);
	memcpy(s->r.auid, sig->auid, sizeof(s->r.auid));
	for (i = 0; b != NULL && i < b->value.n && k < 8; i++) {
		char c = b->value.p[i];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			s->r.b_prefix[k++] = c;
	}
	s->r.b_prefix[k] = '\0';
	s->r.l_warning = sig->has_l;
	s->r.l = sig->l;
}

/* Emptied b= value: the field with the octets between "b=" and ";" cut. */
static int
sig_hash(const struct dkim_split *sp, const struct dkim_field *f,
	 struct vsig *s)
{
	const char *raw = sp->hdr.data + f->off;
	size_t vo = f->value_off, n = f->len, cut0, cut1;
	char *tmp = tmalloc(n + 1);
	int rc;

	if (tmp == NULL)
		return -1;
	cut0 = vo + s->sig->b_start;
	cut1 = vo + s->sig->b_end;
	memcpy(tmp, raw, cut0);
	memcpy(tmp + cut0, raw + cut1, n - cut1);
	rc = dkim_header_hash(
	    sp, s->sig->hdrs, s->sig->nhdrs, tmp, n - (cut1 - cut0),
	    s->sig->hcanon, dkim_alg_is_sha1(s->sig->alg), s->hhash, &s->hlen);
	xfree(tmp);
	return rc;
}

/* The value of the field ends before its CRLF (the parser wants no
 * trailing line break). */
static size_t
value_len(const struct dkim_split *sp, const struct dkim_field *f)
{
	size_t n = f->len - f->value_off;
	const char *p = sp->hdr.data + f->off + f->value_off;

	if (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n')
		n -= 2;
	return n;
}

static void
setup_sig(struct dkim_verifier *v, const struct dkim_field *f, struct vsig *s)
{
	const char *err = NULL;
	const struct dkim_split *sp = &v->split;

	s->body = -1;
	s->sig = tmalloc(sizeof(*s->sig));
	if (s->sig == NULL) {
		decide(s, DKIM_TEMPERROR, "out of memory");
		return;
	}
	if (dkim_sig_parse(sp->hdr.data + f->off + f->value_off,
			   value_len(sp, f), s->sig, &err) < 0) {
		xfree(s->sig);
		s->sig = NULL;
		decide(s, DKIM_PERMERROR, err);
		return;
	}
	fill_ids(s);
	if (s->sig->has_x && v->o.now > s->sig->x) {
		decide(s, DKIM_PERMERROR, "signature expired (x=)");
		return;
	}
	if (dkim_alg_is_sha1(s->sig->alg) && !v->o.check_legacy) {
		decide(s, DKIM_FAIL, "rsa-sha1 is not allowed (RFC 8301)");
		return;
	}
	if (sig_hash(sp, f, s) < 0 || (s->body = body_for(v, s->sig)) < 0) {
		decide(s, DKIM_TEMPERROR, "out of memory");
		return;
	}
	snprintf(s->query, sizeof(s->query), "%s._domainkey.%s", s->r.selector,
		 s->r.domain);
}

static int
on_headers(struct dkim_verifier *v)
{
	struct dkim_split *sp = &v->split;
	size_t i, n = 0;

	v->headers_done = true;
	if (dkim_split_fields(sp) < 0)
		return -1;
	for (i = 0; i < sp->nfields; i++)
		n += is_sig_field(sp, &sp->fields[i]);
	if (n == 0)
		return 0;
	v->sigs = tcalloc(n, sizeof(*v->sigs));
	v->bodies = tcalloc(n, sizeof(*v->bodies));
	if (v->sigs == NULL || v->bodies == NULL)
		return -1;
	for (i = 0; i < sp->nfields; i++) {
		struct vsig *s;

		if (!is_sig_field(sp, &sp->fields[i]))
			continue;
		s = &v->sigs[v->nsigs++];
		if (v->nsigs > v->o.max_sigs) {
			s->body = -1;
			decide(s, DKIM_POLICY, "too many signatures");
			continue;
		}
		setup_sig(v, &sp->fields[i], s);
	}
	return 0;
}

int
dkim_verify_feed(struct dkim_verifier *v, const void *p, size_t n)
{
	const char *body = p;
	size_t blen = n, i;
	bool done = false;

	if (v->finished)
		return 0;
	if (!v->headers_done) {
		done = dkim_split_feed(&v->split, p, n, &body, &blen);
		if (done && on_headers(v) < 0)
			v->split.overflow = true; /* out of memory: give up */
	}
	for (i = 0; blen > 0 && i < v->nbodies; i++)
		dkim_body_feed(&v->bodies[i]->b, body, blen);
	return done ? 1 : 0;
}

size_t
dkim_verify_nsigs(const struct dkim_verifier *v)
{
	return v->nsigs;
}

bool
dkim_verify_overflow(const struct dkim_verifier *v)
{
	return v->split.overflow;
}

const char *
dkim_verify_query(const struct dkim_verifier *v, size_t i)
{
	const struct vsig *s;

	if (i >= v->nsigs)
		return NULL;
	s = &v->sigs[i];
	return (s->decided || s->answered || s->query[0] == '\0') ? NULL
								  : s->query;
}

/* Key record checks against the signature (§6.1.2, RFC 8301). */
static void
use_key(struct vsig *s, const struct dkim_keyrec *k)
{
	const struct dkim_sig *sig = s->sig;
	bool ed = sig->alg == DKIM_ALG_ED25519_SHA256;
	const char *at;

	s->r.testing = k->testing;
	if (k->revoked)
		return decide(s, DKIM_FAIL, "key revoked");
	if ((k->type == DKIM_KEY_ED25519) != ed)
		return decide(s, DKIM_PERMERROR, "key type does not match a=");
	if (dkim_alg_is_sha1(sig->alg) ? !k->sha1_ok : !k->sha256_ok)
		return decide(s, DKIM_PERMERROR,
			      "hash algorithm not allowed by key (h=)");
	at = strrchr(sig->auid, '@');
	if (k->strict && !dkim_slice_eqi(sig->d, at + 1, strlen(at + 1)))
		return decide(s, DKIM_PERMERROR,
			      "key requires i= domain equal to d= (t=s)");
	s->key = dkim_pubkey(k);
	if (s->key == NULL)
		return decide(s, DKIM_PERMERROR, "invalid public key");
	s->r.key_bits = (unsigned)EVP_PKEY_get_bits(s->key);
}

void
dkim_verify_answer(struct dkim_verifier *v, size_t i, enum dkim_dns st,
		   const struct dkim_slice *rec, size_t nrec)
{
	struct dkim_keyrec *k;
	const char *err = "no key record";
	struct vsig *s;
	size_t j;

	if (i >= v->nsigs || dkim_verify_query(v, i) == NULL)
		return;
	s = &v->sigs[i];
	s->answered = true;
	if (st == DKIM_DNS_TEMPFAIL)
		return decide(s, DKIM_TEMPERROR, "key lookup failed (DNS)");
	if (st == DKIM_DNS_NXDOMAIN)
		return decide(s, DKIM_PERMERROR, "no key for signature");
	if ((k = tmalloc(sizeof(*k))) == NULL)
		return decide(s, DKIM_TEMPERROR, "out of memory");
	/* Several records: the first that parses is the key (§3.6.2.2). */
	for (j = 0; j < nrec; j++) {
		const char *e = NULL;

		if (dkim_key_parse(rec[j].p, rec[j].n, k, &e) == 0)
			break;
		if (j == 0)
			err = e;
	}
	if (j == nrec)
		decide(s, DKIM_PERMERROR, err);
	else
		use_key(s, k);
	xfree(k);
}

static void
finish_body(struct vbody *vb)
{
	if (vb->done)
		return;
	vb->done = true;
	vb->ok = dkim_body_final(&vb->b, vb->hash, &vb->hlen) == 0;
}

static void
check_sig(struct dkim_verifier *v, struct vsig *s)
{
	struct vbody *vb;
	bool bh_ok, sig_ok;
	int rc;

	if (s->decided)
		return;
	if (!s->answered)
		return decide(s, DKIM_TEMPERROR, "no DNS answer for the key");
	vb = v->bodies[s->body];
	finish_body(vb);
	if (!vb->ok)
		return decide(s, DKIM_TEMPERROR, "hash failure");
	s->r.body_len = vb->b.canon_len;
	bh_ok = vb->hlen == s->sig->bhlen &&
		memcmp(vb->hash, s->sig->bh, vb->hlen) == 0;
	rc = dkim_verify_hash(s->key, s->sig->alg, s->hhash, s->hlen, s->sig->b,
			      s->sig->blen);
	sig_ok = rc == 1;
	if (dkim_alg_is_sha1(s->sig->alg)) {
		s->r.legacy_ok = bh_ok && sig_ok;
		return decide(s, DKIM_FAIL,
			      "rsa-sha1 is not allowed (RFC 8301)");
	}
	if (!bh_ok)
		return decide(s, DKIM_FAIL, "body hash did not verify");
	if (!sig_ok)
		return decide(s, DKIM_FAIL, "signature did not verify");
	if (s->r.key_bits < 1024 && s->sig->alg == DKIM_ALG_RSA_SHA256) {
		s->r.legacy_ok = true;
		snprintf(s->r.reason_buf, sizeof(s->r.reason_buf),
			 "key too short (%u bits)", s->r.key_bits);
		return decide(s, DKIM_FAIL, s->r.reason_buf);
	}
	if (s->sig->has_l && s->sig->l < vb->b.canon_len) {
		snprintf(s->r.reason_buf, sizeof(s->r.reason_buf),
			 "l= signs %llu of %llu body octets",
			 (unsigned long long)s->sig->l,
			 (unsigned long long)vb->b.canon_len);
		return decide(s, DKIM_PASS, s->r.reason_buf);
	}
	decide(s, DKIM_PASS, s->sig->has_l ? "l= covers the whole body" : "");
}

void
dkim_verify_finish(struct dkim_verifier *v)
{
	size_t i;

	if (v->finished)
		return;
	if (!v->headers_done) { /* no empty line: all header, empty body */
		v->split.in_body = true;
		if (on_headers(v) < 0)
			v->split.overflow = true;
	}
	v->finished = true;
	for (i = 0; i < v->nsigs; i++) {
		struct vsig *s = &v->sigs[i];

		check_sig(v, s);
		if (s->r.testing && s->r.result == DKIM_FAIL) {
			char why[64];

			snprintf(why, sizeof(why), "%s", s->r.reason);
			s->r.result = DKIM_NEUTRAL;
			snprintf(s->r.reason_buf, sizeof(s->r.reason_buf),
				 "%s (key in testing mode)", why);
			s->r.reason = s->r.reason_buf;
		}
	}
}

const struct dkim_sig_result *
dkim_verify_result(const struct dkim_verifier *v, size_t i)
{
	return i < v->nsigs ? &v->sigs[i].r : NULL;
}
