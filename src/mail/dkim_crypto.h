/*
 * dkim_crypto — the OpenSSL side of DKIM, shared by signer and verifier:
 * the header hash (§3.7), public keys from key records, signatures over a
 * 32-byte (or 20-byte) hash.
 *
 * The header hash is the only input of the private-key operation: RSA
 * signs it as a PKCS#1 v1.5 DigestInfo, Ed25519 (RFC 8463) signs the
 * 32-byte SHA-256 hash itself with PureEdDSA. So the keys role (DESIGN
 * §7) needs only (key, algorithm, hash).
 */
#ifndef TODOKU_MAIL_DKIM_CRYPTO_H
#define TODOKU_MAIL_DKIM_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mail/dkim_canon.h"
#include "mail/dkim_tags.h"

/*
 * Hash the header fields named in h[] (bottom-up, each instance used once,
 * names without a remaining instance contribute nothing: §5.4.2) and then
 * sigfield (the DKIM-Signature field as it will appear, with the b= value
 * emptied) without its CRLF. out gets 20 or 32 octets. 0 or -1.
 */
int dkim_header_hash(const struct dkim_split *sp, const struct dkim_slice *h,
		     size_t nh, const char *sigfield, size_t siglen,
		     enum dkim_canon c, bool sha1, uint8_t out[32],
		     size_t *outlen);

/* A public key from a key record's p= (SPKI, or bare RSAPublicKey for
 * RSA). NULL if it does not decode. */
EVP_PKEY *dkim_pubkey(const struct dkim_keyrec *k);
/* 1 verified, 0 not, -1 error. */
int dkim_verify_hash(EVP_PKEY *key, enum dkim_alg alg, const uint8_t *hash,
		     size_t hlen, const uint8_t *sig, size_t siglen);

#endif
