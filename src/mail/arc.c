/* arc — ARC chain validation and sealing (RFC 8617); see the .h. */
#include "mail/arc.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "lib/alloc.h"
#include "mail/dkim_crypto.h"

#define ARC_MAX_HEADER_DEFAULT ((size_t)1 << 20)
#define ARC_QUERY_MAX (2 * DKIM_DOMAIN_MAX + 16)
#define ARC_FOLD 78 /* fold tag lists before this column */

/* ---- small text helpers ------------------------------------------------ */

const char *
arc_result_name(enum arc_result r)
{
	switch (r) {
	case ARC_PASS:
		return "pass";
	case ARC_FAIL:
		return "fail";
	default:
		return "none";
	}
}

const char *
arc_cv_name(enum arc_cv cv)
{
	switch (cv) {
	case ARC_CV_PASS:
		return "pass";
	case ARC_CV_FAIL:
		return "fail";
	default:
		return "none";
	}
}

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
slice_is(struct dkim_slice s, const char *lit)
{
	size_t n = strlen(lit);

	return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* 1*DIGIT, at most 19 of them (no overflow). */
static bool
parse_u64(struct dkim_slice s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (s.n == 0 || s.n > 19)
		return false;
	for (i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	*out = v;
	return true;
}

static bool
parse_inst(struct dkim_slice s, unsigned *inst)
{
	uint64_t v;

	if (!parse_u64(s, &v) || v < 1 || v > 1000)
		return false;
	*inst = (unsigned)v;
	return true;
}

/* Skip white space and (nested) comments; returns the new position. */
static size_t
skip_cfws(const char *v, size_t n, size_t i)
{
	unsigned depth = 0;

	for (; i < n; i++) {
		if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && depth > 0)
			depth--;
		else if (v[i] == '\\' && depth > 0 && i + 1 < n)
			i++;
		else if (depth == 0 && !is_wsp(v[i]))
			break;
	}
	return i;
}

/* ---- parsers --------------------------------------------------------------
 */

int
arc_aar_instance(const char *v, size_t n, unsigned *inst, const char **err)
{
	size_t i = skip_cfws(v, n, 0), d0;
	struct dkim_slice num;

	*err = "AAR does not start with i=";
	if (i >= n || v[i] != 'i')
		return -1;
	i = skip_cfws(v, n, i + 1);
	if (i >= n || v[i] != '=')
		return -1;
	d0 = i = skip_cfws(v, n, i + 1);
	while (i < n && v[i] >= '0' && v[i] <= '9')
		i++;
	num.p = v + d0;
	num.n = i - d0;
	*err = "AAR i= is not a valid instance";
	if (!parse_inst(num, inst))
		return -1;
	i = skip_cfws(v, n, i);
	*err = "AAR i= is not followed by ';'";
	if (i >= n || v[i] != ';')
		return -1;
	return 0;
}

int
arc_sig_instance(const char *v, size_t n, unsigned *inst, const char **err)
{
	struct dkim_tags *t = tmalloc(sizeof(*t));
	const struct dkim_tag *tag;
	int rc = -1;

	if (t == NULL) {
		*err = "out of memory";
		return -1;
	}
	if (dkim_tags_parse(v, n, t, err) < 0)
		goto out;
	tag = dkim_tags_get(t, "i");
	*err = "i= missing";
	if (tag == NULL)
		goto out;
	*err = "i= is not a valid instance";
	if (parse_inst(tag->value, inst))
		rc = 0;
out:
	xfree(t);
	return rc;
}

static int
parse_alg(const struct dkim_tags *t, struct arc_sig *sig, const char **err)
{
	const struct dkim_tag *a = dkim_tags_get(t, "a");

	*err = "a= missing";
	if (a == NULL)
		return -1;
	*err = "a= algorithm not supported";
	if (slice_is(a->value, "rsa-sha256"))
		sig->alg = DKIM_ALG_RSA_SHA256;
	else if (slice_is(a->value, "ed25519-sha256"))
		sig->alg = DKIM_ALG_ED25519_SHA256;
	else
		return -1;
	return 0;
}

/* i=, a=, b=, d=, s=, t= shared by AMS and AS. */
static int
parse_common(const struct dkim_tags *t, struct arc_sig *sig, const char **err)
{
	const struct dkim_tag *tag;

	if ((tag = dkim_tags_get(t, "i")) == NULL)
		return *err = "i= missing", -1;
	if (!parse_inst(tag->value, &sig->inst))
		return *err = "i= is not a valid instance", -1;
	if (parse_alg(t, sig, err) < 0)
		return -1;
	if ((tag = dkim_tags_get(t, "b")) == NULL)
		return *err = "b= missing", -1;
	if (dkim_b64_decode(tag->value.p, tag->value.n, sig->b, sizeof(sig->b),
			    &sig->blen) < 0 ||
	    sig->blen == 0)
		return *err = "b= is not a valid signature", -1;
	sig->b_start = tag->val_start;
	sig->b_end = tag->val_end;
	if ((tag = dkim_tags_get(t, "d")) == NULL)
		return *err = "d= missing", -1;
	sig->d = tag->value;
	if (!dkim_domain_ok(sig->d.p, sig->d.n, false) ||
	    sig->d.n > DKIM_DOMAIN_MAX)
		return *err = "invalid d= domain", -1;
	if ((tag = dkim_tags_get(t, "s")) == NULL)
		return *err = "s= missing", -1;
	sig->s = tag->value;
	if (!dkim_domain_ok(sig->s.p, sig->s.n, true) ||
	    sig->s.n > DKIM_DOMAIN_MAX)
		return *err = "invalid s= selector", -1;
	if ((tag = dkim_tags_get(t, "t")) != NULL) {
		sig->has_t = true;
		if (!parse_u64(tag->value, &sig->t))
			return *err = "invalid t=", -1;
	}
	return 0;
}

static int
parse_canon(const struct dkim_tags *t, struct arc_sig *sig, const char **err)
{
	const struct dkim_tag *c = dkim_tags_get(t, "c");
	struct dkim_slice h, b = {NULL, 0};
	const char *slash;

	sig->hcanon = sig->bcanon = DKIM_CANON_SIMPLE;
	if (c == NULL)
		return 0;
	h = c->value;
	slash = memchr(h.p, '/', h.n);
	if (slash != NULL) {
		b.p = slash + 1;
		b.n = h.n - (size_t)(slash + 1 - h.p);
		h.n = (size_t)(slash - h.p);
	}
	*err = "c= canonicalisation not supported";
	if (slice_is(h, "relaxed"))
		sig->hcanon = DKIM_CANON_RELAXED;
	else if (!slice_is(h, "simple"))
		return -1;
	if (slash == NULL)
		return 0;
	if (slice_is(b, "relaxed"))
		sig->bcanon = DKIM_CANON_RELAXED;
	else if (!slice_is(b, "simple"))
		return -1;
	return 0;
}

/* h=: names separated by ':' with FWS around; empty names are skipped. */
static int
parse_h(struct dkim_slice h, struct arc_sig *sig, const char **err)
{
	size_t i = 0;

	while (i <= h.n) {
		size_t j = i, a, z;

		while (j < h.n && h.p[j] != ':')
			j++;
		for (a = i; a < j && is_wsp(h.p[a]); a++)
			;
		for (z = j; z > a && is_wsp(h.p[z - 1]); z--)
			;
		if (z > a) {
			struct dkim_slice name = {h.p + a, z - a};

			if (sig->nhdrs == DKIM_SIG_HDRS_MAX)
				return *err = "too many names in h=", -1;
			if (dkim_slice_eqi(name, "ARC-Seal", 8))
				return *err = "h= names ARC-Seal", -1;
			sig->hdrs[sig->nhdrs++] = name;
		}
		i = j + 1;
	}
	return 0;
}

int
arc_ams_parse(const char *v, size_t n, struct arc_sig *sig, const char **err)
{
	struct dkim_tags *t = tmalloc(sizeof(*t));
	const struct dkim_tag *tag;
	int rc = -1;

	if (t == NULL)
		return *err = "out of memory", -1;
	memset(sig, 0, sizeof(*sig));
	if (dkim_tags_parse(v, n, t, err) < 0 ||
	    parse_common(t, sig, err) < 0 || parse_canon(t, sig, err) < 0)
		goto out;
	if ((tag = dkim_tags_get(t, "bh")) == NULL) {
		*err = "bh= missing";
		goto out;
	}
	if (dkim_b64_decode(tag->value.p, tag->value.n, sig->bh,
			    sizeof(sig->bh), &sig->bhlen) < 0 ||
	    sig->bhlen != 32) {
		*err = "bh= is not a SHA-256 hash";
		goto out;
	}
	if ((tag = dkim_tags_get(t, "h")) == NULL) {
		*err = "h= missing";
		goto out;
	}
	if (parse_h(tag->value, sig, err) < 0)
		goto out;
	if ((tag = dkim_tags_get(t, "l")) != NULL) {
		sig->has_l = true;
		if (!parse_u64(tag->value, &sig->l)) {
			*err = "invalid l=";
			goto out;
		}
	}
	rc = 0;
out:
	xfree(t);
	return rc;
}

int
arc_seal_parse(const char *v, size_t n, struct arc_sig *sig, const char **err)
{
	struct dkim_tags *t = tmalloc(sizeof(*t));
	const struct dkim_tag *tag;
	int rc = -1;

	if (t == NULL)
		return *err = "out of memory", -1;
	memset(sig, 0, sizeof(*sig));
	if (dkim_tags_parse(v, n, t, err) < 0 || parse_common(t, sig, err) < 0)
		goto out;
	sig->hcanon = sig->bcanon = DKIM_CANON_RELAXED;
	*err = "h= is not allowed in ARC-Seal";
	if (dkim_tags_get(t, "h") != NULL)
		goto out;
	*err = "cv= missing";
	if ((tag = dkim_tags_get(t, "cv")) == NULL)
		goto out;
	*err = "cv= is not none, pass or fail";
	if (slice_is(tag->value, "none"))
		sig->cv = ARC_CV_NONE;
	else if (slice_is(tag->value, "pass"))
		sig->cv = ARC_CV_PASS;
	else if (slice_is(tag->value, "fail"))
		sig->cv = ARC_CV_FAIL;
	else
		goto out;
	rc = 0;
out:
	xfree(t);
	return rc;
}

/* ---- chain structure (§5.2 steps 1-3) --------------------------------- */

static int
field_kind(const struct dkim_split *sp, const struct dkim_field *f)
{
	struct dkim_slice name = {sp->hdr.data + f->off, f->name_len};

	if (dkim_slice_eqi(name, "ARC-Authentication-Results", 26))
		return ARC_AAR;
	if (dkim_slice_eqi(name, "ARC-Message-Signature", 21))
		return ARC_AMS;
	if (dkim_slice_eqi(name, "ARC-Seal", 8))
		return ARC_AS;
	return -1;
}

struct dkim_slice
arc_field_value(const struct dkim_split *sp, size_t idx)
{
	const struct dkim_field *f = &sp->fields[idx];
	struct dkim_slice s = {sp->hdr.data + f->off + f->value_off,
			       f->len - f->value_off};

	if (s.n >= 2 && s.p[s.n - 2] == '\r' && s.p[s.n - 1] == '\n')
		s.n -= 2;
	return s;
}

static const char *const kind_name[ARC_KINDS] = {"AAR", "AMS", "AS"};

static void
chain_fail(struct arc_chain *c, const char *what, unsigned inst,
	   const char *why)
{
	if (c->status == ARC_FAIL)
		return; /* keep the first reason */
	c->status = ARC_FAIL;
	if (inst > 0)
		snprintf(c->reason_buf, sizeof(c->reason_buf), "%s(%u): %s",
			 what, inst, why);
	else
		snprintf(c->reason_buf, sizeof(c->reason_buf), "%s: %s", what,
			 why);
	c->reason = c->reason_buf;
}

/* Record one ARC field; false once the chain has failed. */
static bool
chain_add(const struct dkim_split *sp, struct arc_chain *c, size_t idx,
	  int kind)
{
	struct dkim_slice v = arc_field_value(sp, idx);
	const char *err = NULL;
	unsigned inst = 0;
	int rc;

	if (kind == ARC_AAR)
		rc = arc_aar_instance(v.p, v.n, &inst, &err);
	else
		rc = arc_sig_instance(v.p, v.n, &inst, &err);
	if (rc < 0) {
		chain_fail(c, kind_name[kind], 0, err);
		return false;
	}
	if (inst > ARC_MAX_INSTANCES) {
		chain_fail(c, kind_name[kind], inst, "more than 50 ARC sets");
		c->n = ARC_MAX_INSTANCES;
		return false;
	}
	if (inst > c->n)
		c->n = inst;
	if (c->field[inst][kind] != 0) {
		chain_fail(c, kind_name[kind], inst, "duplicate");
		return false;
	}
	c->field[inst][kind] = idx + 1;
	return true;
}

static int
chain_seals(const struct dkim_split *sp, struct arc_chain *c)
{
	unsigned i;

	c->seal = tcalloc(c->n, sizeof(*c->seal));
	if (c->seal == NULL)
		return -1;
	for (i = 1; i <= c->n; i++) {
		struct dkim_slice v =
		    arc_field_value(sp, c->field[i][ARC_AS] - 1);
		const char *err = NULL;
		enum arc_cv want = i == 1 ? ARC_CV_NONE : ARC_CV_PASS;

		if (arc_seal_parse(v.p, v.n, &c->seal[i - 1], &err) < 0) {
			chain_fail(c, "AS", i, err);
			return 0;
		}
		if (c->seal[i - 1].cv != want) {
			chain_fail(c, "AS", i,
				   i == 1 ? "cv= is not none"
					  : "cv= is not pass");
			return 0;
		}
	}
	return 0;
}

/* Step 2: the newest AS says the chain already failed. */
static bool
newest_says_fail(const struct dkim_split *sp, const struct arc_chain *c)
{
	struct arc_sig *s;
	struct dkim_slice v;
	const char *err;
	bool fail;

	if (c->field[c->n][ARC_AS] == 0)
		return false;
	if ((s = tmalloc(sizeof(*s))) == NULL)
		return false;
	v = arc_field_value(sp, c->field[c->n][ARC_AS] - 1);
	fail = arc_seal_parse(v.p, v.n, s, &err) == 0 && s->cv == ARC_CV_FAIL;
	xfree(s);
	return fail;
}

int
arc_chain_parse(const struct dkim_split *sp, struct arc_chain *c)
{
	size_t i;
	unsigned k;
	int kind;

	memset(c, 0, sizeof(*c));
	c->reason = "";
	for (i = 0; i < sp->nfields; i++) {
		if ((kind = field_kind(sp, &sp->fields[i])) < 0)
			continue;
		c->any = true;
		(void)chain_add(sp, c, i, kind); /* all: n is the highest */
	}
	if (!c->any)
		return 0; /* ARC_NONE */
	if (c->status == ARC_FAIL)
		return 0;
	if (newest_says_fail(sp, c)) {
		c->newest_fail = true;
		chain_fail(c, "AS", c->n, "chain already failed (cv=fail)");
		return 0;
	}
	for (k = 1; k <= c->n; k++) {
		for (kind = 0; kind < ARC_KINDS; kind++) {
			if (c->field[k][kind] == 0) {
				chain_fail(c, kind_name[kind], k, "missing");
				return 0;
			}
		}
	}
	c->status = ARC_PASS;
	return chain_seals(sp, c);
}

void
arc_chain_free(struct arc_chain *c)
{
	xfree(c->seal);
	c->seal = NULL;
}

/* ---- hashing ---------------------------------------------------------- */

/* The field idx with the octets [cut0, cut1) of its value removed (b=). */
static char *
field_cut(const struct dkim_split *sp, size_t idx, size_t cut0, size_t cut1,
	  size_t *len)
{
	const struct dkim_field *f = &sp->fields[idx];
	const char *raw = sp->hdr.data + f->off;
	size_t a = f->value_off + cut0, z = f->value_off + cut1;
	char *tmp = tmalloc(f->len + 1);

	if (tmp == NULL)
		return NULL;
	memcpy(tmp, raw, a);
	memcpy(tmp + a, raw + z, f->len - z);
	*len = f->len - (z - a);
	return tmp;
}

/* The header hash of an AMS (like DKIM, §5.4). */
static int
ams_hash(const struct dkim_split *sp, size_t idx, const struct arc_sig *sig,
	 uint8_t out[32])
{
	size_t len, hlen = 0;
	char *tmp = field_cut(sp, idx, sig->b_start, sig->b_end, &len);
	int rc;

	if (tmp == NULL)
		return -1;
	/* dkim_header_hash wants the signature field without its CRLF */
	if (len >= 2 && tmp[len - 2] == '\r' && tmp[len - 1] == '\n')
		len -= 2;
	rc = dkim_header_hash(sp, sig->hdrs, sig->nhdrs, tmp, len, sig->hcanon,
			      false, out, &hlen);
	xfree(tmp);
	return rc;
}

static int
md_field(EVP_MD_CTX *md, const char *f, size_t n, bool crlf, struct buf *tmp)
{
	buf_reset(tmp);
	if (dkim_hcanon(DKIM_CANON_RELAXED, f, n, crlf, tmp) < 0)
		return -1;
	return EVP_DigestUpdate(md, tmp->data, tmp->len) == 1 ? 0 : -1;
}

/* Sets 1..upto-1 of the message, whole, relaxed (§5.1.1). */
static int
md_sets(EVP_MD_CTX *md, const struct dkim_split *sp, const struct arc_chain *c,
	unsigned upto, struct buf *tmp)
{
	unsigned i;
	int k;

	for (i = 1; i < upto; i++) {
		for (k = 0; k < ARC_KINDS; k++) {
			const struct dkim_field *f =
			    &sp->fields[c->field[i][k] - 1];

			if (md_field(md, sp->hdr.data + f->off, f->len, true,
				     tmp) < 0)
				return -1;
		}
	}
	return 0;
}

static EVP_MD_CTX *
md_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (md != NULL && EVP_DigestInit_ex(md, dkim_md(false), NULL) != 1) {
		EVP_MD_CTX_free(md);
		md = NULL;
	}
	return md;
}

static int
md_final(EVP_MD_CTX *md, uint8_t out[32])
{
	unsigned len = 0;
	int rc = EVP_DigestFinal_ex(md, out, &len) == 1 && len == 32 ? 0 : -1;

	EVP_MD_CTX_free(md);
	return rc;
}

/* The hash AS(i) signs: sets 1..i-1, AAR(i), AMS(i), AS(i) b= emptied. */
static int
seal_hash(const struct dkim_split *sp, const struct arc_chain *c, unsigned i,
	  uint8_t out[32])
{
	EVP_MD_CTX *md = md_new();
	const struct arc_sig *s = &c->seal[i - 1];
	size_t as = c->field[i][ARC_AS] - 1, len;
	char *cut = NULL;
	struct buf tmp;
	int rc = -1;

	buf_init(&tmp, sp->hdr.len + 16);
	if (md == NULL)
		goto out;
	if (md_sets(md, sp, c, i, &tmp) < 0)
		goto out;
	for (int k = 0; k < ARC_AS; k++) {
		const struct dkim_field *f = &sp->fields[c->field[i][k] - 1];

		if (md_field(md, sp->hdr.data + f->off, f->len, true, &tmp) < 0)
			goto out;
	}
	if ((cut = field_cut(sp, as, s->b_start, s->b_end, &len)) == NULL ||
	    md_field(md, cut, len, false, &tmp) < 0)
		goto out;
	rc = md_final(md, out);
	md = NULL;
out:
	EVP_MD_CTX_free(md);
	xfree(cut);
	buf_free(&tmp);
	return rc;
}

/* ---- verifier ---------------------------------------------------------- */

struct akey {
	char name[ARC_QUERY_MAX];
	bool answered, temp;
	const char *err; /* static text, NULL = key usable */
	EVP_PKEY *pk;
	struct dkim_keyrec rec;
};

struct abody {
	struct dkim_body b;
	bool done, ok;
	uint8_t hash[32];
	size_t hlen;
};

struct aams {
	struct arc_sig sig;
	bool ok;  /* parsed, hashed, key and body assigned */
	int key;  /* index into keys */
	int body; /* index into bodies */
	uint8_t hhash[32];
};

struct arc_verifier {
	struct arc_verify_opts o;
	struct dkim_split split;
	bool headers_done, finished, decided;
	struct arc_chain chain;
	struct aams *ams; /* ams[i-1]; only those we verify are ok */
	int as_key[ARC_MAX_INSTANCES + 1];
	uint8_t as_hash[ARC_MAX_INSTANCES + 1][32];
	unsigned ams_low; /* oldest AMS set up for verification */
	struct akey *keys;
	size_t nkeys;
	struct abody *bodies[ARC_BODIES_MAX];
	size_t nbodies;
	struct arc_verify_result r;
};

struct arc_verifier *
arc_verify_new(const struct arc_verify_opts *o)
{
	struct arc_verifier *v = tcalloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	if (o != NULL)
		v->o = *o;
	if (v->o.max_header == 0)
		v->o.max_header = ARC_MAX_HEADER_DEFAULT;
	if (v->o.max_keys == 0)
		v->o.max_keys = ARC_KEYS_DEFAULT;
	v->keys = tcalloc(v->o.max_keys, sizeof(*v->keys));
	if (v->keys == NULL) {
		xfree(v);
		return NULL;
	}
	dkim_split_init(&v->split, v->o.max_header);
	v->r.reason = "";
	return v;
}

void
arc_verify_free(struct arc_verifier *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->nkeys; i++)
		EVP_PKEY_free(v->keys[i].pk);
	for (i = 0; i < v->nbodies; i++) {
		dkim_body_free(&v->bodies[i]->b);
		xfree(v->bodies[i]);
	}
	xfree(v->keys);
	xfree(v->ams);
	arc_chain_free(&v->chain);
	dkim_split_free(&v->split);
	xfree(v);
}

static void
decide(struct arc_verifier *v, enum arc_result r, const char *reason)
{
	if (v->decided)
		return;
	v->decided = true;
	v->r.result = r;
	v->r.reason = reason;
}

static void
decidef(struct arc_verifier *v, bool temp, const char *what, unsigned inst,
	const char *why)
{
	if (v->decided)
		return;
	snprintf(v->r.reason_buf, sizeof(v->r.reason_buf), "%s(%u): %s", what,
		 inst, why);
	v->r.temporary = temp;
	decide(v, ARC_FAIL, v->r.reason_buf);
}

/* The key slot for s=/d=, shared; -1 when over the lookup budget. */
static int
key_for(struct arc_verifier *v, const struct arc_sig *sig)
{
	char name[ARC_QUERY_MAX];
	size_t i;

	snprintf(name, sizeof(name), "%.*s._domainkey.%.*s", (int)sig->s.n,
		 sig->s.p, (int)sig->d.n, sig->d.p);
	for (i = 0; i < v->nkeys; i++)
		if (strcasecmp(v->keys[i].name, name) == 0)
			return (int)i;
	if (v->nkeys == v->o.max_keys)
		return -1;
	memcpy(v->keys[v->nkeys].name, name, sizeof(name));
	return (int)v->nkeys++;
}

static int
body_for(struct arc_verifier *v, const struct arc_sig *sig)
{
	int64_t l = sig->has_l
			? (int64_t)(sig->l > INT64_MAX ? INT64_MAX : sig->l)
			: -1;
	struct abody *ab;
	size_t i;

	for (i = 0; i < v->nbodies; i++) {
		struct dkim_body *b = &v->bodies[i]->b;

		if (b->canon == sig->bcanon && b->has_limit == (l >= 0) &&
		    (l < 0 || b->limit == (uint64_t)l))
			return (int)i;
	}
	if (v->nbodies == ARC_BODIES_MAX)
		return -1;
	if ((ab = tcalloc(1, sizeof(*ab))) == NULL)
		return -1;
	if (dkim_body_init(&ab->b, sig->bcanon, false, l) < 0) {
		xfree(ab);
		return -1;
	}
	v->bodies[v->nbodies] = ab;
	return (int)v->nbodies++;
}

/* Parse, hash and assign key and body to AMS(i); err on failure. */
static bool
setup_ams(struct arc_verifier *v, unsigned i, const char **err, bool *temp)
{
	struct aams *a = &v->ams[i - 1];
	size_t idx = v->chain.field[i][ARC_AMS] - 1;
	struct dkim_slice val = arc_field_value(&v->split, idx);

	*temp = false;
	if (arc_ams_parse(val.p, val.n, &a->sig, err) < 0)
		return false;
	*temp = true;
	if (ams_hash(&v->split, idx, &a->sig, a->hhash) < 0)
		return *err = "out of memory", false;
	if ((a->key = key_for(v, &a->sig)) < 0)
		return *err = "too many distinct keys", false;
	if ((a->body = body_for(v, &a->sig)) < 0)
		return *err = "too many distinct body hashes", false;
	a->ok = true;
	return true;
}

static void
setup_seals(struct arc_verifier *v)
{
	unsigned i;

	for (i = v->chain.n; i >= 1; i--) {
		if (seal_hash(&v->split, &v->chain, i, v->as_hash[i]) < 0)
			return decidef(v, true, "AS", i, "out of memory");
		if ((v->as_key[i] = key_for(v, &v->chain.seal[i - 1])) < 0)
			return decidef(v, true, "AS", i,
				       "too many distinct keys");
	}
}

static void
on_headers(struct arc_verifier *v)
{
	const char *err = NULL;
	bool temp;
	unsigned n, i;

	v->headers_done = true;
	if (v->split.overflow)
		return decide(v, ARC_FAIL, "header block too large");
	if (dkim_split_fields(&v->split) < 0 ||
	    arc_chain_parse(&v->split, &v->chain) < 0) {
		v->r.temporary = true;
		return decide(v, ARC_FAIL, "out of memory");
	}
	n = v->r.instances = v->chain.n;
	if (v->chain.status != ARC_PASS) {
		snprintf(v->r.reason_buf, sizeof(v->r.reason_buf), "%s",
			 v->chain.reason);
		return decide(v, v->chain.status, v->r.reason_buf);
	}
	if ((v->ams = tcalloc(n, sizeof(*v->ams))) == NULL) {
		v->r.temporary = true;
		return decide(v, ARC_FAIL, "out of memory");
	}
	if (!setup_ams(v, n, &err, &temp))
		return decidef(v, temp, "AMS", n, err);
	setup_seals(v);
	v->ams_low = n;
	for (i = n - 1; v->o.oldest_pass && i >= 1 && !v->decided; i--) {
		if (!setup_ams(v, i, &err, &temp))
			break;
		v->ams_low = i;
	}
}

int
arc_verify_feed(struct arc_verifier *v, const void *p, size_t n)
{
	const char *body = p;
	size_t blen = n, i;
	bool done = false;

	if (v->finished)
		return 0;
	if (!v->headers_done) {
		done = dkim_split_feed(&v->split, p, n, &body, &blen);
		if (done)
			on_headers(v);
	}
	for (i = 0; blen > 0 && i < v->nbodies; i++)
		dkim_body_feed(&v->bodies[i]->b, body, blen);
	return done ? 1 : 0;
}

size_t
arc_verify_nqueries(const struct arc_verifier *v)
{
	return v->decided ? 0 : v->nkeys;
}

const char *
arc_verify_query(const struct arc_verifier *v, size_t k)
{
	if (v->decided || k >= v->nkeys || v->keys[k].answered)
		return NULL;
	return v->keys[k].name;
}

/*
 * A key record with bare CR or LF turned into spaces: records published
 * with line breaks inside p= are common (and in the ValiMail suite);
 * between tags and inside base64 they are only white space.
 */
static int
key_parse_lenient(struct dkim_slice r, struct dkim_keyrec *k, const char **e)
{
	char *tmp;
	size_t i;
	int rc;

	if (memchr(r.p, '\n', r.n) == NULL && memchr(r.p, '\r', r.n) == NULL)
		return dkim_key_parse(r.p, r.n, k, e);
	if ((tmp = tmalloc(r.n + 1)) == NULL)
		return *e = "out of memory", -1;
	for (i = 0; i < r.n; i++)
		tmp[i] = r.p[i] == '\r' || r.p[i] == '\n' ? ' ' : r.p[i];
	rc = dkim_key_parse(tmp, r.n, k, e);
	xfree(tmp);
	return rc;
}

static void
load_key(struct akey *k, const struct dkim_slice *rec, size_t nrec)
{
	const char *err = "no key record";
	size_t j;

	for (j = 0; j < nrec; j++) {
		const char *e = NULL;

		if (key_parse_lenient(rec[j], &k->rec, &e) == 0)
			break;
		if (j == 0)
			err = e;
	}
	if (j == nrec) {
		k->err = err;
		return;
	}
	if (k->rec.revoked) {
		k->err = "key revoked";
		return;
	}
	if ((k->pk = dkim_pubkey(&k->rec)) == NULL)
		k->err = "invalid public key";
}

void
arc_verify_answer(struct arc_verifier *v, size_t k, enum dkim_dns st,
		  const struct dkim_slice *rec, size_t nrec)
{
	struct akey *key;

	if (arc_verify_query(v, k) == NULL)
		return;
	key = &v->keys[k];
	key->answered = true;
	if (st == DKIM_DNS_TEMPFAIL) {
		key->temp = true;
		key->err = "key lookup failed (DNS)";
	} else if (st == DKIM_DNS_NXDOMAIN) {
		key->err = "no key for signature";
	} else {
		load_key(key, rec, nrec);
	}
}

/* Check one signature with its key; NULL if it verifies, else why. */
static const char *
check_sig(const struct arc_verifier *v, int ki, const struct arc_sig *sig,
	  const uint8_t hash[32], bool *temp)
{
	const struct akey *k = &v->keys[ki];
	bool ed = sig->alg == DKIM_ALG_ED25519_SHA256;

	*temp = false;
	if (!k->answered)
		return *temp = true, "no DNS answer for the key";
	if (k->err != NULL)
		return *temp = k->temp, k->err;
	if ((k->rec.type == DKIM_KEY_ED25519) != ed)
		return "key type does not match a=";
	if (!k->rec.sha256_ok)
		return "hash algorithm not allowed by key (h=)";
	if (!ed && EVP_PKEY_get_bits(k->pk) < 1024)
		return "key too short (RFC 8301)";
	if (dkim_verify_hash(k->pk, sig->alg, hash, 32, sig->b, sig->blen) != 1)
		return "signature did not verify";
	return NULL;
}

static const char *
check_ams(struct arc_verifier *v, unsigned i, bool *temp)
{
	struct aams *a = &v->ams[i - 1];
	struct abody *ab;

	*temp = false;
	if (!a->ok)
		return "not checked";
	ab = v->bodies[a->body];
	if (!ab->done) {
		ab->done = true;
		ab->ok = dkim_body_final(&ab->b, ab->hash, &ab->hlen) == 0;
	}
	if (!ab->ok)
		return *temp = true, "hash failure";
	if (ab->hlen != 32 || memcmp(ab->hash, a->sig.bh, 32) != 0)
		return "body hash did not verify";
	return check_sig(v, a->key, &a->sig, a->hhash, temp);
}

static void
find_oldest_pass(struct arc_verifier *v)
{
	unsigned i;
	bool temp;

	v->r.oldest_pass = 0;
	for (i = v->chain.n - 1; i >= 1; i--) {
		if (i < v->ams_low || check_ams(v, i, &temp) != NULL) {
			v->r.oldest_pass = i + 1;
			return;
		}
	}
}

void
arc_verify_finish(struct arc_verifier *v)
{
	const char *why;
	bool temp;
	unsigned i;

	if (v->finished)
		return;
	if (!v->headers_done) { /* no empty line: all header, empty body */
		v->split.in_body = true;
		on_headers(v);
	}
	v->finished = true;
	if (v->decided)
		return;
	if ((why = check_ams(v, v->chain.n, &temp)) != NULL)
		return decidef(v, temp, "AMS", v->chain.n, why);
	for (i = v->chain.n; i >= 1; i--) {
		why = check_sig(v, v->as_key[i], &v->chain.seal[i - 1],
				v->as_hash[i], &temp);
		if (why != NULL)
			return decidef(v, temp, "AS", i, why);
	}
	if (v->o.oldest_pass)
		find_oldest_pass(v);
	decide(v, ARC_PASS, "");
}

const struct arc_verify_result *
arc_verify_result(const struct arc_verifier *v)
{
	return &v->r;
}

int
arc_verify_ar(const struct arc_verify_result *r, struct buf *out)
{
	switch (r->result) {
	case ARC_PASS:
		if (r->oldest_pass > 0)
			return buf_addf(out,
					"arc=pass (i=%u) header.oldest-pass=%u",
					r->instances, r->oldest_pass);
		return buf_addf(out, "arc=pass (i=%u)", r->instances);
	case ARC_FAIL:
		return buf_addf(out, "arc=fail (%s)", r->reason);
	default:
		return buf_adds(out, "arc=none");
	}
}

/* ---- sealer ------------------------------------------------------------ */

/* Fields the AMS signs by default, when present: the DKIM set plus the
 * DKIM signatures themselves (so a later hop can tell they were intact). */
static const char *const arc_default_headers[] = {
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "dkim-signature",
};

struct arc_sealer {
	struct arc_seal_opts o;
	struct dkim_split split;
	struct dkim_body body;
	bool body_ok, headers_done;
	int stage; /* 0 feeding, 1 AMS hashed, 2 AS hashed */
	struct arc_chain chain;
	unsigned inst;
	struct dkim_slice *h;
	size_t nh;
	char bh[64];
	struct buf ams, aar, as; /* the fields, CRLF included */
};

static bool
text_ok(const char *s, bool empty_ok)
{
	if (s == NULL)
		return empty_ok;
	if (*s == '\0' && !empty_ok)
		return false;
	return strpbrk(s, "\r\n") == NULL;
}

static int
seal_opts_check(const struct arc_seal_opts *o, const char **err)
{
	size_t i;

	if (o->domain == NULL ||
	    !dkim_domain_ok(o->domain, strlen(o->domain), false))
		return *err = "invalid domain", -1;
	if (o->selector == NULL ||
	    !dkim_domain_ok(o->selector, strlen(o->selector), true))
		return *err = "invalid selector", -1;
	if (o->alg != DKIM_ALG_RSA_SHA256 && o->alg != DKIM_ALG_ED25519_SHA256)
		return *err = "algorithm must be rsa-sha256 or ed25519-sha256",
		       -1;
	if (!text_ok(o->authserv_id, false) || strchr(o->authserv_id, ';'))
		return *err = "invalid authserv-id", -1;
	if (!text_ok(o->results, true))
		return *err = "results must be one line", -1;
	for (i = 0; o->headers != NULL && i < o->nheaders; i++) {
		if (!text_ok(o->headers[i], false) ||
		    strpbrk(o->headers[i], ": \t;") != NULL)
			return *err = "invalid header name", -1;
		if (strcasecmp(o->headers[i], "ARC-Seal") == 0)
			return *err = "h= may not name ARC-Seal", -1;
	}
	if (o->headers != NULL &&
	    (o->nheaders == 0 || o->nheaders > DKIM_SIG_HDRS_MAX))
		return *err = "bad number of header names", -1;
	return 0;
}

struct arc_sealer *
arc_sealer_new(const struct arc_seal_opts *o, const char **err)
{
	struct arc_sealer *s;

	if (seal_opts_check(o, err) < 0)
		return NULL;
	if ((s = tcalloc(1, sizeof(*s))) == NULL) {
		*err = "out of memory";
		return NULL;
	}
	s->o = *o;
	if (s->o.max_header == 0)
		s->o.max_header = ARC_MAX_HEADER_DEFAULT;
	dkim_split_init(&s->split, s->o.max_header);
	s->body_ok =
	    dkim_body_init(&s->body, DKIM_CANON_RELAXED, false, -1) == 0;
	buf_init(&s->ams, 64 * 1024);
	buf_init(&s->aar, 64 * 1024);
	buf_init(&s->as, 64 * 1024);
	return s;
}

void
arc_sealer_free(struct arc_sealer *s)
{
	if (s == NULL)
		return;
	dkim_body_free(&s->body);
	dkim_split_free(&s->split);
	arc_chain_free(&s->chain);
	xfree(s->h);
	buf_free(&s->ams);
	buf_free(&s->aar);
	buf_free(&s->as);
	xfree(s);
}

void
arc_sealer_feed(struct arc_sealer *s, const void *p, size_t n)
{
	const char *body = p;
	size_t blen = n;

	if (s->stage != 0)
		return;
	if (!s->headers_done)
		s->headers_done =
		    dkim_split_feed(&s->split, p, n, &body, &blen);
	if (blen > 0 && s->body_ok)
		dkim_body_feed(&s->body, body, blen);
}

unsigned
arc_sealer_instance(const struct arc_sealer *s)
{
	return s->inst;
}

int
arc_sealer_set_chain(struct arc_sealer *s, enum arc_result chain,
		     const char *results)
{
	if (s->stage != 0 || !text_ok(results, true))
		return -1;
	s->o.chain = chain;
	s->o.results = results;
	return 0;
}

/* Append tags "name: t1; t2; ..." folded between tags, with CRLF. */
static int
put_tags(struct buf *out, const char *name, const char *const *tag, size_t n)
{
	size_t col = strlen(name) + 2, i;
	int rc = buf_addf(out, "%s: ", name);

	for (i = 0; i < n && rc == 0; i++) {
		size_t len = strlen(tag[i]) + (i + 1 < n);

		if (i > 0 && col + 1 + len > ARC_FOLD) {
			rc = buf_adds(out, "\r\n ");
			col = 1;
		} else if (i > 0) {
			rc |= buf_addc(out, ' ');
			col++;
		}
		rc |= buf_adds(out, tag[i]);
		if (i + 1 < n)
			rc |= buf_addc(out, ';');
		col += len;
	}
	rc |= buf_adds(out, "\r\n");
	return rc == 0 ? 0 : -1;
}

/* Base64 of sig into a fresh buffer ("b=..."), or NULL. */
static char *
b64_tag(const char *tag, const uint8_t *p, size_t n)
{
	size_t tl = strlen(tag), cap = tl + 4 * ((n + 2) / 3) + 1;
	char *s = tmalloc(cap);

	if (s == NULL)
		return NULL;
	memcpy(s, tag, tl);
	EVP_EncodeBlock((unsigned char *)s + tl, p, (int)n);
	return s;
}

static int
build_ams(struct arc_sealer *s, const uint8_t *sig, size_t siglen)
{
	char a[32], c[] = "c=relaxed/relaxed", d[DKIM_DOMAIN_MAX + 3];
	char sel[DKIM_DOMAIN_MAX + 3], i[16], t[32];
	struct buf h;
	char *b = b64_tag("b=", sig, siglen);
	const char *tags[9];
	size_t n = 0, k;
	int rc = -1;

	buf_init(&h, 64 * 1024);
	if (b == NULL)
		goto out;
	snprintf(a, sizeof(a), "a=%s", dkim_alg_name(s->o.alg));
	snprintf(d, sizeof(d), "d=%s", s->o.domain);
	snprintf(sel, sizeof(sel), "s=%s", s->o.selector);
	snprintf(i, sizeof(i), "i=%u", s->inst);
	snprintf(t, sizeof(t), "t=%llu", (unsigned long long)s->o.t);
	if (buf_adds(&h, "h=") < 0)
		goto out;
	for (k = 0; k < s->nh; k++)
		if (buf_addf(&h, "%s%.*s", k ? ":" : "", (int)s->h[k].n,
			     s->h[k].p) < 0)
			goto out;
	tags[n++] = a;
	tags[n++] = b;
	tags[n++] = s->bh;
	tags[n++] = c;
	tags[n++] = d;
	tags[n++] = h.data;
	tags[n++] = i;
	tags[n++] = sel;
	if (s->o.t != 0)
		tags[n++] = t;
	buf_reset(&s->ams);
	rc = put_tags(&s->ams, "ARC-Message-Signature", tags, n);
out:
	buf_free(&h);
	xfree(b);
	return rc;
}

static int
build_as(struct arc_sealer *s, const uint8_t *sig, size_t siglen)
{
	char a[32], cv[16], d[DKIM_DOMAIN_MAX + 3], sel[DKIM_DOMAIN_MAX + 3];
	char i[16], t[32];
	char *b = b64_tag("b=", sig, siglen);
	const char *tags[7];
	size_t n = 0;
	enum arc_cv v = s->o.chain == ARC_PASS	 ? ARC_CV_PASS
			: s->o.chain == ARC_FAIL ? ARC_CV_FAIL
						 : ARC_CV_NONE;
	int rc;

	if (b == NULL)
		return -1;
	snprintf(a, sizeof(a), "a=%s", dkim_alg_name(s->o.alg));
	snprintf(cv, sizeof(cv), "cv=%s", arc_cv_name(v));
	snprintf(d, sizeof(d), "d=%s", s->o.domain);
	snprintf(sel, sizeof(sel), "s=%s", s->o.selector);
	snprintf(i, sizeof(i), "i=%u", s->inst);
	snprintf(t, sizeof(t), "t=%llu", (unsigned long long)s->o.t);
	tags[n++] = a;
	tags[n++] = b;
	tags[n++] = cv;
	tags[n++] = d;
	tags[n++] = i;
	tags[n++] = sel;
	if (s->o.t != 0)
		tags[n++] = t;
	buf_reset(&s->as);
	rc = put_tags(&s->as, "ARC-Seal", tags, n);
	xfree(b);
	return rc;
}

/* "i=N; authserv-id; results", folded after a ';' when a line gets long. */
static int
build_aar(struct arc_sealer *s)
{
	const char *r = s->o.results != NULL && *s->o.results != '\0'
			    ? s->o.results
			    : "none";
	size_t col, i;
	int rc;

	buf_reset(&s->aar);
	rc = buf_addf(&s->aar, "ARC-Authentication-Results: i=%u; %s;", s->inst,
		      s->o.authserv_id);
	col = s->aar.len;
	while (*r == ' ' || *r == '\t')
		r++;
	rc |= buf_addc(&s->aar, ' ');
	for (i = 0; r[i] != '\0' && rc == 0; i++) {
		bool fold = r[i] == ' ' && i > 0 && r[i - 1] == ';' &&
			    col > ARC_FOLD - 20;

		rc =
		    fold ? buf_adds(&s->aar, "\r\n ") : buf_addc(&s->aar, r[i]);
		col = fold ? 1 : col + 1;
	}
	rc |= buf_adds(&s->aar, "\r\n");
	return rc == 0 ? 0 : -1;
}

static bool
field_present(const struct dkim_split *sp, const char *name)
{
	size_t i;

	for (i = 0; i < sp->nfields; i++) {
		struct dkim_slice fn = {sp->hdr.data + sp->fields[i].off,
					sp->fields[i].name_len};

		if (dkim_slice_eqi(fn, name, strlen(name)))
			return true;
	}
	return false;
}

static size_t
field_count(const struct dkim_split *sp, const char *name)
{
	size_t i, n = 0;

	for (i = 0; i < sp->nfields; i++) {
		struct dkim_slice fn = {sp->hdr.data + sp->fields[i].off,
					sp->fields[i].name_len};

		n += dkim_slice_eqi(fn, name, strlen(name));
	}
	return n;
}

/* h=: opts.headers, or each default name once per instance present, with
 * From once more (a From added later breaks the AMS). */
static int
choose_headers(struct arc_sealer *s)
{
	size_t max = DKIM_SIG_HDRS_MAX, i, k;
	const char *const *list = s->o.headers;
	size_t n = s->o.nheaders;

	if ((s->h = tcalloc(max, sizeof(*s->h))) == NULL)
		return -1;
	if (list != NULL) {
		for (i = 0; i < n; i++)
			s->h[s->nh++] =
			    (struct dkim_slice){list[i], strlen(list[i])};
		return 0;
	}
	list = arc_default_headers;
	n = sizeof(arc_default_headers) / sizeof(arc_default_headers[0]);
	for (i = 0; i < n; i++) {
		size_t c = field_count(&s->split, list[i]) + (i == 0);

		for (k = 0; k < c && s->nh < max; k++)
			s->h[s->nh++] =
			    (struct dkim_slice){list[i], strlen(list[i])};
	}
	return 0;
}

/* The instance to add, from the chain on the message and opts.chain. */
static int
choose_instance(struct arc_sealer *s, const char **err)
{
	struct arc_chain *c = &s->chain;

	if (dkim_split_fields(&s->split) < 0 ||
	    arc_chain_parse(&s->split, c) < 0)
		return *err = "out of memory", -1;
	if (s->o.chain == ARC_NONE && c->any)
		return *err = "message has ARC fields but chain is none", -1;
	if (s->o.chain == ARC_PASS && c->status != ARC_PASS)
		return *err = "chain is pass but its structure is not", -1;
	if (c->newest_fail)
		return *err = "chain already sealed as failed (cv=fail)", -1;
	if (c->n >= ARC_MAX_INSTANCES)
		return *err = "message already has 50 ARC sets", -1;
	s->inst = c->n + 1;
	return 0;
}

int
arc_sealer_ams_hash(struct arc_sealer *s, uint8_t hash[32], const char **err)
{
	uint8_t bh[32];
	size_t bhlen = 0, hlen = 0;
	char *bhtag = NULL;

	if (s->stage != 0)
		return *err = "sealer used out of order", -1;
	if (s->split.overflow)
		return *err = "header block too large", -1;
	s->split.in_body = true; /* a message without a body */
	if (choose_instance(s, err) < 0)
		return -1;
	if (!field_present(&s->split, "From"))
		return *err = "message has no From field", -1;
	if (!s->body_ok || dkim_body_final(&s->body, bh, &bhlen) < 0)
		return *err = "body hash failed", -1;
	if ((bhtag = b64_tag("bh=", bh, bhlen)) == NULL ||
	    strlen(bhtag) >= sizeof(s->bh)) {
		xfree(bhtag);
		return *err = "out of memory", -1;
	}
	memcpy(s->bh, bhtag, strlen(bhtag) + 1);
	xfree(bhtag);
	if (choose_headers(s) < 0 || build_ams(s, NULL, 0) < 0)
		return *err = "out of memory", -1;
	if (dkim_header_hash(&s->split, s->h, s->nh, s->ams.data,
			     s->ams.len - 2, DKIM_CANON_RELAXED, false, hash,
			     &hlen) < 0)
		return *err = "header hash failed", -1;
	s->stage = 1;
	return 0;
}

int
arc_sealer_seal_hash(struct arc_sealer *s, const uint8_t *sig, size_t siglen,
		     uint8_t hash[32], const char **err)
{
	EVP_MD_CTX *md;
	struct buf tmp;
	int rc = -1;

	if (s->stage != 1 || siglen == 0 || siglen > DKIM_SIG_B_MAX)
		return *err = "sealer used out of order", -1;
	if (build_ams(s, sig, siglen) < 0 || build_aar(s) < 0 ||
	    build_as(s, NULL, 0) < 0 || (md = md_new()) == NULL)
		return *err = "out of memory", -1;
	buf_init(&tmp, s->split.hdr.len + s->ams.len + s->aar.len + 1024);
	/* a failed chain is sealed over the new set alone (§5.1.2) */
	if (s->o.chain != ARC_FAIL &&
	    md_sets(md, &s->split, &s->chain, s->inst, &tmp) < 0)
		goto out;
	if (md_field(md, s->aar.data, s->aar.len, true, &tmp) < 0 ||
	    md_field(md, s->ams.data, s->ams.len, true, &tmp) < 0 ||
	    md_field(md, s->as.data, s->as.len, false, &tmp) < 0)
		goto out;
	rc = md_final(md, hash);
	md = NULL;
out:
	EVP_MD_CTX_free(md);
	buf_free(&tmp);
	if (rc < 0)
		*err = "seal hash failed";
	else
		s->stage = 2;
	return rc;
}

int
arc_sealer_headers(struct arc_sealer *s, const uint8_t *sig, size_t siglen,
		   struct buf *out)
{
	if (s->stage != 2 || siglen == 0 || siglen > DKIM_SIG_B_MAX)
		return -1;
	if (build_as(s, sig, siglen) < 0)
		return -1;
	if (buf_add(out, s->as.data, s->as.len) < 0 ||
	    buf_add(out, s->ams.data, s->ams.len) < 0 ||
	    buf_add(out, s->aar.data, s->aar.len) < 0)
		return -1;
	return 0;
}
