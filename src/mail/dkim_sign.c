/*
 * dkim_sign — see dkim_sign.h.
 *
 * The field is built twice from the same pieces: once as the template
 * ending in "b=" (what the header hash covers, §3.7), then as the template
 * plus the folded signature. Folding happens only at token boundaries and
 * inside base64 values, so emptying b= on the verifier's side gives the
 * template back octet for octet, whatever the canonicalisation.
 */
#include "mail/dkim_sign.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lib/alloc.h"
#include "mail/dkim_canon.h"
#include "mail/dkim_crypto.h"

#define DKIM_LINE_MAX 78
#define DKIM_SIGN_HDR_DEFAULT (1024 * 1024)

/* clang-format off */
#define NAME(s) {s, sizeof(s) - 1}
/* clang-format on */
static const struct dkim_slice sign_default[] = {
    NAME("From"),
    NAME("To"),
    NAME("Cc"),
    NAME("Subject"),
    NAME("Date"),
    NAME("Message-ID"),
    NAME("Reply-To"),
    NAME("In-Reply-To"),
    NAME("References"),
    NAME("MIME-Version"),
    NAME("Content-Type"),
    NAME("Content-Transfer-Encoding"),
    NAME("List-Unsubscribe"),
    NAME("List-Unsubscribe-Post"),
};
#undef NAME
#define SIGN_DEFAULT_N (sizeof(sign_default) / sizeof(sign_default[0]))

struct dkim_signer {
	struct dkim_sign_opts o;
	struct dkim_split split;
	struct buf tmpl; /* the field up to and including "b=" */
	size_t col;	 /* column after the template */
	bool hashed;
	struct dkim_body body; /* last: its 16 KiB stage is never zeroed */
};

/* A folding writer: tokens, separated by SP, or by CRLF TAB past 78. */
struct fold {
	struct buf *b;
	size_t col;
	int err;
};

/* One token, prefix value suffix ("d=" "example.com" ";"): after SP, or
 * at the start of a new line when it would pass 78 columns. */
static void
fold_token(struct fold *f, bool space, const char *pre, const char *val,
	   size_t vn, const char *post)
{
	size_t pn = strlen(pre), sn = strlen(post), n = pn + vn + sn;

	if (f->col + (space ? 1 : 0) + n > DKIM_LINE_MAX && f->col > 1) {
		f->err |= buf_add(f->b, "\r\n\t", 3);
		f->col = 1;
	} else if (space) {
		f->err |= buf_addc(f->b, ' ');
		f->col++;
	}
	f->err |= buf_add(f->b, pre, pn);
	f->err |= buf_add(f->b, val, vn);
	f->err |= buf_add(f->b, post, sn);
	f->col += n;
}

static void
fold_put(struct fold *f, const char *s, size_t n, bool space)
{
	fold_token(f, space, "", s, n, "");
}

static void
fold_puts(struct fold *f, const char *s, bool space)
{
	fold_put(f, s, strlen(s), space);
}

/* Base64 text, broken wherever the line is full (FWS is allowed inside). */
static void
fold_b64(struct fold *f, const char *s, size_t n)
{
	while (n > 0) {
		size_t room =
		    DKIM_LINE_MAX > f->col ? DKIM_LINE_MAX - f->col : 0;

		if (room == 0) {
			f->err |= buf_add(f->b, "\r\n\t", 3);
			f->col = 1;
			continue;
		}
		if (room > n)
			room = n;
		f->err |= buf_add(f->b, s, room);
		f->col += room;
		s += room;
		n -= room;
	}
}

void
dkim_sign_opts_default(struct dkim_sign_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->alg = DKIM_ALG_RSA_SHA256;
	o->hcanon = DKIM_CANON_RELAXED;
	o->bcanon = DKIM_CANON_RELAXED;
}

struct dkim_signer *
dkim_signer_new(const struct dkim_sign_opts *o, const char **err)
{
	struct dkim_signer *s;

	if (o->domain == NULL || o->selector == NULL ||
	    !dkim_domain_ok(o->domain, strlen(o->domain), false) ||
	    !dkim_domain_ok(o->selector, strlen(o->selector), true)) {
		*err = "invalid domain or selector";
		return NULL;
	}
	if (o->alg != DKIM_ALG_RSA_SHA256 &&
	    o->alg != DKIM_ALG_ED25519_SHA256) {
		*err = "unsupported signing algorithm";
		return NULL;
	}
	if ((s = tmalloc(sizeof(*s))) == NULL) {
		*err = "out of memory";
		return NULL;
	}
	memset(s, 0, offsetof(struct dkim_signer, body));
	s->o = *o;
	dkim_split_init(&s->split,
			o->max_header ? o->max_header : DKIM_SIGN_HDR_DEFAULT);
	buf_init(&s->tmpl, 64 * 1024);
	if (dkim_body_init(&s->body, o->bcanon, false, -1) < 0) {
		*err = "hash initialisation failed";
		dkim_signer_free(s);
		return NULL;
	}
	return s;
}

void
dkim_signer_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	dkim_body_free(&s->body);
	dkim_split_free(&s->split);
	buf_free(&s->tmpl);
	xfree(s);
}

void
dkim_signer_feed(struct dkim_signer *s, const void *p, size_t n)
{
	const char *body;
	size_t blen;

	if (s->hashed)
		return;
	dkim_split_feed(&s->split, p, n, &body, &blen);
	if (blen > 0)
		dkim_body_feed(&s->body, body, blen);
}

static size_t
count_fields(const struct dkim_split *sp, const char *name)
{
	size_t i, n = 0;

	for (i = 0; i < sp->nfields; i++) {
		struct dkim_slice fn = {sp->hdr.data + sp->fields[i].off,
					sp->fields[i].name_len};

		n += dkim_slice_eqi(fn, name, strlen(name));
	}
	return n;
}

/* How many fields carry each default name, in one pass over the fields. */
static void
count_default(const struct dkim_split *sp, size_t count[SIGN_DEFAULT_N])
{
	size_t i, j;

	for (j = 0; j < sp->nfields; j++) {
		struct dkim_slice fn = {sp->hdr.data + sp->fields[j].off,
					sp->fields[j].name_len};

		for (i = 0; i < SIGN_DEFAULT_N; i++)
			count[i] += fn.n == sign_default[i].n &&
				    dkim_slice_eqi(fn, sign_default[i].p,
						   sign_default[i].n);
	}
}

/*
 * The h= names: the configured list as it is, or the default rule: each
 * default name once per field that carries it, From once more
 * (oversigned, so no From can be added above the signed ones).
 */
static int
pick_headers(struct dkim_signer *s, struct dkim_slice **out, size_t *nout)
{
	size_t count[SIGN_DEFAULT_N] = {0}, i, k, total = 0, n = 0;
	struct dkim_slice *h;

	if (s->o.headers != NULL) {
		h = tcalloc(s->o.nheaders + 1, sizeof(*h));
		if (h == NULL)
			return -1;
		for (i = 0; i < s->o.nheaders; i++) {
			h[i].p = s->o.headers[i];
			h[i].n = strlen(s->o.headers[i]);
		}
		*out = h;
		*nout = s->o.nheaders;
		return 0;
	}
	count_default(&s->split, count);
	for (i = 0; i < SIGN_DEFAULT_N; i++) {
		if (strcmp(sign_default[i].p, "From") == 0)
			count[i]++;
		total += count[i];
	}
	h = tcalloc(total + 1, sizeof(*h));
	if (h == NULL)
		return -1;
	for (i = 0; i < SIGN_DEFAULT_N; i++)
		for (k = 0; k < count[i]; k++)
			h[n++] = sign_default[i];
	*out = h;
	*nout = n;
	return 0;
}

/* pre is the tag name with its "=". */
static void
put_tag(struct fold *f, const char *pre, const char *val)
{
	fold_token(f, true, pre, val, strlen(val), ";");
}

static void
put_num(struct fold *f, const char *pre, uint64_t v)
{
	char num[32];
	int k = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);

	if (k > 0)
		put_tag(f, pre, num);
}

static void
put_h(struct fold *f, const struct dkim_slice *h, size_t nh)
{
	size_t i;

	for (i = 0; i < nh; i++)
		fold_token(f, i == 0, i == 0 ? "h=" : "", h[i].p, h[i].n,
			   i + 1 < nh ? ":" : ";");
}

static void
put_b64(struct fold *f, const char *name, const uint8_t *p, size_t n)
{
	char enc[4 * ((DKIM_SIG_MAX + 2) / 3) + 1];
	int k = EVP_EncodeBlock((unsigned char *)enc, p, (int)n);

	fold_puts(f, name, true);
	if (k > 0)
		fold_b64(f, enc, (size_t)k);
}

static int
build_template(struct dkim_signer *s, const uint8_t *bh,
	       const struct dkim_slice *h, size_t nh)
{
	struct fold f = {&s->tmpl, 0, 0};
	const char *canon[] = {"simple", "relaxed"};
	char c[32];

	f.err |= buf_adds(&s->tmpl, "DKIM-Signature:");
	f.col = s->tmpl.len;
	put_tag(&f, "v=", "1");
	put_tag(&f, "a=", dkim_alg_name(s->o.alg));
	snprintf(c, sizeof(c), "%s/%s", canon[s->o.hcanon], canon[s->o.bcanon]);
	put_tag(&f, "c=", c);
	put_tag(&f, "d=", s->o.domain);
	put_tag(&f, "s=", s->o.selector);
	if (s->o.t)
		put_num(&f, "t=", s->o.t);
	if (s->o.x)
		put_num(&f, "x=", s->o.x);
	if (s->o.auid)
		put_tag(&f, "i=", s->o.auid);
	put_h(&f, h, nh);
	put_b64(&f, "bh=", bh, 32);
	fold_puts(&f, ";", false);
	fold_puts(&f, "b=", true);
	s->col = f.col;
	return f.err ? -1 : 0;
}

static bool
has_from(const struct dkim_slice *h, size_t nh, const struct dkim_split *sp)
{
	size_t i;

	if (count_fields(sp, "From") == 0)
		return false;
	for (i = 0; i < nh; i++) {
		if (dkim_slice_eqi(h[i], "From", 4))
			return true;
	}
	return false;
}

int
dkim_signer_hash(struct dkim_signer *s, uint8_t hash[32], const char **err)
{
	struct dkim_slice *h = NULL;
	uint8_t bh[32];
	size_t nh = 0, len;
	int rc = -1;

	*err = "out of memory";
	if (s->hashed || s->split.overflow) {
		*err = s->hashed ? "already hashed" : "header block too large";
		return -1;
	}
	s->hashed = true;
	s->split.in_body = true;
	if (dkim_split_fields(&s->split) < 0 || pick_headers(s, &h, &nh) < 0)
		goto out;
	if (!has_from(h, nh, &s->split)) {
		*err = "no From header field to sign";
		goto out;
	}
	if (dkim_body_final(&s->body, bh, &len) < 0 ||
	    build_template(s, bh, h, nh) < 0)
		goto out;
	if (dkim_header_hash(&s->split, h, nh, s->tmpl.data, s->tmpl.len,
			     s->o.hcanon, false, hash, &len) < 0)
		goto out;
	rc = 0;
out:
	xfree(h);
	return rc;
}

int
dkim_signer_header(struct dkim_signer *s, const uint8_t *sig, size_t siglen,
		   struct buf *out)
{
	char enc[4 * ((DKIM_SIG_MAX + 2) / 3) + 1];
	struct fold f = {out, s->col, 0};
	int k;

	if (!s->hashed || siglen == 0 || siglen > DKIM_SIG_MAX)
		return -1;
	k = EVP_EncodeBlock((unsigned char *)enc, sig, (int)siglen);
	f.err |= buf_add(out, s->tmpl.data, s->tmpl.len);
	if (k > 0)
		fold_b64(&f, enc, (size_t)k);
	f.err |= buf_add(out, "\r\n", 2);
	return f.err ? -1 : 0;
}

int
dkim_sign_hash(EVP_PKEY *key, enum dkim_alg alg, const uint8_t hash[32],
	       uint8_t *sig, size_t *siglen)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_MD_CTX *md = NULL;
	int rc = -1;

	if (alg == DKIM_ALG_RSA_SHA256 && EVP_PKEY_is_a(key, "RSA")) {
		ctx = EVP_PKEY_CTX_new(key, NULL);
		if (ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
		    EVP_PKEY_sign(ctx, sig, siglen, hash, 32) == 1)
			rc = 0;
	} else if (alg == DKIM_ALG_ED25519_SHA256 &&
		   EVP_PKEY_is_a(key, "ED25519")) {
		md = EVP_MD_CTX_new();
		if (md != NULL &&
		    EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
		    EVP_DigestSign(md, sig, siglen, hash, 32) == 1)
			rc = 0;
	}
	EVP_PKEY_CTX_free(ctx);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

EVP_PKEY *
dkim_key_load_pem(const char *pem, size_t n)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)n);
	EVP_PKEY *k;

	if (bio == NULL)
		return NULL;
	k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return k;
}

EVP_PKEY *
dkim_key_ed25519_seed(const uint8_t seed[32])
{
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
}

int
dkim_key_check(EVP_PKEY *key, enum dkim_alg alg, const char **err)
{
	if (alg == DKIM_ALG_RSA_SHA256) {
		if (!EVP_PKEY_is_a(key, "RSA")) {
			*err = "key is not an RSA key";
			return -1;
		}
		if (EVP_PKEY_get_bits(key) < 2048) {
			*err = "RSA key shorter than 2048 bits";
			return -1;
		}
		return 0;
	}
	if (alg == DKIM_ALG_ED25519_SHA256 && EVP_PKEY_is_a(key, "ED25519"))
		return 0;
	*err = "key does not match the algorithm";
	return -1;
}

/* p= octets: SPKI DER for RSA, the raw 32 octets for Ed25519 (RFC 8463). */
static int
public_octets(EVP_PKEY *key, uint8_t *out, size_t max, size_t *len)
{
	unsigned char *p = out;
	int n;

	if (EVP_PKEY_is_a(key, "ED25519")) {
		*len = max;
		return EVP_PKEY_get_raw_public_key(key, out, len) == 1 ? 0 : -1;
	}
	n = i2d_PUBKEY(key, NULL);
	if (n <= 0 || (size_t)n > max)
		return -1;
	n = i2d_PUBKEY(key, &p);
	*len = (size_t)n;
	return n > 0 ? 0 : -1;
}

int
dkim_txt_record(EVP_PKEY *key, const char *domain, const char *selector,
		struct buf *txt)
{
	uint8_t der[DKIM_KEY_P_MAX];
	char enc[4 * (DKIM_KEY_P_MAX / 3 + 1) + 1];
	struct buf rec;
	size_t len, off, k;
	int n, err = 0;

	if (public_octets(key, der, sizeof(der), &len) < 0)
		return -1;
	n = EVP_EncodeBlock((unsigned char *)enc, der, (int)len);
	if (n <= 0)
		return -1;
	buf_init(&rec, 8192);
	err |= buf_addf(&rec, "v=DKIM1; k=%s; p=%s",
			EVP_PKEY_is_a(key, "ED25519") ? "ed25519" : "rsa", enc);
	err |= buf_addf(txt, "%s._domainkey.%s. IN TXT (", selector, domain);
	for (off = 0; err == 0 && off < rec.len; off += k) {
		k = rec.len - off > 255 ? 255 : rec.len - off;
		err |= buf_addf(txt, "%s\"%.*s\"", off == 0 ? " " : "\n\t",
				(int)k, rec.data + off);
	}
	err |= buf_adds(txt, " )\n");
	buf_free(&rec);
	return err ? -1 : 0;
}

int
dkim_keygen(enum dkim_alg alg, const char *domain, const char *selector,
	    struct buf *pem, struct buf *txt)
{
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	char *data;
	long n;
	int rc = -1;

	if (alg == DKIM_ALG_RSA_SHA256)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else if (alg == DKIM_ALG_ED25519_SHA256)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (key == NULL || (bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	n = BIO_get_mem_data(bio, &data);
	if (n <= 0 || buf_add(pem, data, (size_t)n) < 0 ||
	    dkim_txt_record(key, domain, selector, txt) < 0)
		goto out;
	rc = 0;
out:
	BIO_free(bio);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}
