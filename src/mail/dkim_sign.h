/*
 * dkim_sign — DKIM signing (RFC 6376 §5, RFC 8463), split so that the
 * private key touches only a 32-byte hash (DESIGN §7, the keys role).
 *
 *   s = dkim_signer_new(&opts, &err);
 *   dkim_signer_feed(s, chunk, n) ...        the message, any split
 *   dkim_signer_hash(s, hash, &err);         end: the header hash
 *   dkim_sign_hash(key, alg, hash, sig, &n);  in the keys role
 *   dkim_signer_header(s, sig, n, &out);     "DKIM-Signature: ...\r\n"
 *   dkim_signer_free(s);
 *
 * The header lists v a c d s [t] [x] [i] h bh b, folded so no line passes
 * 78 octets. h= is opts.headers, or by default each of DKIM_SIGN_DEFAULT
 * present in the message, once per instance, with From once more
 * (oversigned, so a From cannot be added). A message without From is
 * refused. Input must have CRLF line ends.
 *
 * Keys: dkim_key_check refuses RSA under 2048 bits and a key type that
 * does not match the algorithm; dkim_sign_hash itself does not check, so
 * tests can reproduce published vectors made with older keys.
 */
#ifndef TODOKU_MAIL_DKIM_SIGN_H
#define TODOKU_MAIL_DKIM_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "lib/buf.h"
#include "mail/dkim_tags.h"

/* Signature bytes: RSA-8192 fits. */
#define DKIM_SIG_MAX 1024

struct dkim_sign_opts {
	const char *domain;   /* d= */
	const char *selector; /* s= */
	enum dkim_alg alg;    /* rsa-sha256 or ed25519-sha256 */
	enum dkim_canon hcanon, bcanon;
	const char *const *headers; /* h= as given; NULL = default rule */
	size_t nheaders;
	uint64_t t, x;	   /* 0 = tag left out */
	const char *auid;  /* i=, or NULL */
	size_t max_header; /* 0 = 1 MiB */
};

/* relaxed/relaxed, rsa-sha256, default headers, no t=. */
void dkim_sign_opts_default(struct dkim_sign_opts *o);

struct dkim_signer;

struct dkim_signer *dkim_signer_new(const struct dkim_sign_opts *o,
				    const char **err);
void dkim_signer_feed(struct dkim_signer *s, const void *p, size_t n);
/* End of the message: hash (32 octets) to sign. 0 or -1 with *err. */
int dkim_signer_hash(struct dkim_signer *s, uint8_t hash[32], const char **err);
/* Append the complete field, CRLF included. 0 or -1 (out full). */
int dkim_signer_header(struct dkim_signer *s, const uint8_t *sig, size_t siglen,
		       struct buf *out);
void dkim_signer_free(struct dkim_signer *s);

/* The private-key operation; *siglen in: room, out: length. 0 or -1. */
int dkim_sign_hash(EVP_PKEY *key, enum dkim_alg alg, const uint8_t hash[32],
		   uint8_t *sig, size_t *siglen);

/* A private key from PEM (PKCS#1 or PKCS#8), or NULL. */
EVP_PKEY *dkim_key_load_pem(const char *pem, size_t n);
/* An Ed25519 private key from its 32-byte seed, or NULL. */
EVP_PKEY *dkim_key_ed25519_seed(const uint8_t seed[32]);
/* 0 if key can sign alg under our policy; -1 with *err. */
int dkim_key_check(EVP_PKEY *key, enum dkim_alg alg, const char **err);

/*
 * Zone-file text of the key record for selector._domainkey.domain, the
 * record split into quoted strings of at most 255 octets. 0 or -1.
 */
int dkim_txt_record(EVP_PKEY *key, const char *domain, const char *selector,
		    struct buf *txt);
/* New key (RSA 2048 or Ed25519): PKCS#8 PEM and the TXT record. */
int dkim_keygen(enum dkim_alg alg, const char *domain, const char *selector,
		struct buf *pem, struct buf *txt);

#endif
