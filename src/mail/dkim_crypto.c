/* dkim_crypto — header hash, public keys, hash signatures; see the .h. */
#include "mail/dkim_crypto.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lib/alloc.h"

static bool
name_is(const struct dkim_split *sp, const struct dkim_field *f,
	struct dkim_slice name)
{
	struct dkim_slice fn = {sp->hdr.data + f->off, f->name_len};

	return fn.n == name.n && dkim_slice_eqi(fn, name.p, name.n);
}

/* The canonical forms of the fields named in h[], bottom-up, each
 * instance used once, appended to out. */
static int
canon_selected(const struct dkim_split *sp, const struct dkim_slice *h,
	       size_t nh, enum dkim_canon c, struct buf *out)
{
	bool *used = tcalloc(sp->nfields + 1, sizeof(bool));
	size_t k, j;
	int rc = 0;

	if (used == NULL)
		return -1;
	for (k = 0; k < nh && rc == 0; k++) {
		for (j = sp->nfields; j-- > 0;) {
			const struct dkim_field *f = &sp->fields[j];

			if (used[j] || !name_is(sp, f, h[k]))
				continue;
			used[j] = true;
			rc = dkim_hcanon(c, sp->hdr.data + f->off, f->len, true,
					 out);
			break;
		}
	}
	xfree(used);
	return rc;
}

/* The whole canonical header input is built first and hashed in one
 * update: a dozen small updates cost more than the copy. */
int
dkim_header_hash(const struct dkim_split *sp, const struct dkim_slice *h,
		 size_t nh, const char *sigfield, size_t siglen,
		 enum dkim_canon c, bool sha1, uint8_t out[32], size_t *outlen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct buf tmp;
	unsigned len = 0;
	int rc = -1;

	buf_init(&tmp, sp->hdr.len + siglen + 16);
	if (md == NULL || EVP_DigestInit_ex(md, dkim_md(sha1), NULL) != 1 ||
	    buf_reserve(&tmp, sp->hdr.len + siglen + 2) < 0)
		goto out;
	if (canon_selected(sp, h, nh, c, &tmp) < 0 ||
	    dkim_hcanon(c, sigfield, siglen, false, &tmp) < 0 ||
	    EVP_DigestUpdate(md, tmp.data, tmp.len) != 1 ||
	    EVP_DigestFinal_ex(md, out, &len) != 1)
		goto out;
	*outlen = len;
	rc = 0;
out:
	buf_free(&tmp);
	EVP_MD_CTX_free(md);
	return rc;
}

static EVP_PKEY *
rsa_pubkey(const uint8_t *p, size_t n)
{
	const unsigned char *q = p;
	EVP_PKEY *k = d2i_PUBKEY(NULL, &q, (long)n);

	if (k != NULL && (!EVP_PKEY_is_a(k, "RSA") || q != p + n)) {
		EVP_PKEY_free(k);
		return NULL;
	}
	if (k != NULL)
		return k;
	q = p; /* a bare PKCS#1 RSAPublicKey */
	k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)n);
	if (k != NULL && q != p + n) {
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

EVP_PKEY *
dkim_pubkey(const struct dkim_keyrec *k)
{
	if (k->revoked)
		return NULL;
	if (k->type == DKIM_KEY_ED25519) {
		if (k->plen != 32)
			return NULL;
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, k->p,
						   32);
	}
	return rsa_pubkey(k->p, k->plen);
}

static int
verify_rsa(EVP_PKEY *key, bool sha1, const uint8_t *hash, size_t hlen,
	   const uint8_t *sig, size_t siglen)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	int rc = -1;

	if (ctx == NULL)
		return -1;
	if (EVP_PKEY_verify_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
	    EVP_PKEY_CTX_set_signature_md(ctx, sha1 ? EVP_sha1()
						    : EVP_sha256()) == 1)
		rc = EVP_PKEY_verify(ctx, sig, siglen, hash, hlen) == 1;
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

static int
verify_ed25519(EVP_PKEY *key, const uint8_t *hash, size_t hlen,
	       const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = -1;

	if (md == NULL)
		return -1;
	if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1)
		rc = EVP_DigestVerify(md, sig, siglen, hash, hlen) == 1;
	EVP_MD_CTX_free(md);
	return rc;
}

int
dkim_verify_hash(EVP_PKEY *key, enum dkim_alg alg, const uint8_t *hash,
		 size_t hlen, const uint8_t *sig, size_t siglen)
{
	int rc;

	switch (alg) {
	case DKIM_ALG_RSA_SHA1:
	case DKIM_ALG_RSA_SHA256:
		if (!EVP_PKEY_is_a(key, "RSA"))
			return -1;
		rc = verify_rsa(key, alg == DKIM_ALG_RSA_SHA1, hash, hlen, sig,
				siglen);
		break;
	case DKIM_ALG_ED25519_SHA256:
		if (!EVP_PKEY_is_a(key, "ED25519"))
			return -1;
		rc = verify_ed25519(key, hash, hlen, sig, siglen);
		break;
	default:
		return -1;
	}
	/* A failed check leaves errors queued; do not leak them to others. */
	ERR_clear_error();
	return rc;
}
