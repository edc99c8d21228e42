/*
 * dkim_tags — the untrusted text of DKIM: tag lists (RFC 6376 §3.2), the
 * DKIM-Signature header field (§3.5) and key records (§3.6.1).
 *
 * Pure parsers: bytes in, results out; no OpenSSL, no allocation. Every
 * slice a result holds points into the caller's input, which must outlive
 * the result. Base64 values (bh=, b=, p=) are decoded into fixed arrays of
 * the result, so an oversized value is an error, not an allocation.
 *
 * Strictness: the RFC grammar is followed (tag names ALPHA *(ALNUM/"_"),
 * values of VALCHARs separated by folding white space, a duplicate tag is
 * an error, one trailing ";" allowed, an empty tag-spec ";;" is an error).
 * Unknown tags are ignored. Errors carry a static reason text suitable for
 * an Authentication-Results comment.
 *
 * Fuzzed by src/mail/fuzz_dkim_tags.c.
 */
#ifndef TODOKU_MAIL_DKIM_TAGS_H
#define TODOKU_MAIL_DKIM_TAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits (attacker-controlled counts; named here, not configurable). */
#define DKIM_TAGS_MAX 64     /* tags per tag list */
#define DKIM_SIG_HDRS_MAX 64 /* names in h= */
#define DKIM_SIG_B_MAX 1024  /* b= octets: RSA-8192 */
#define DKIM_KEY_P_MAX 2048  /* p= octets: an RSA-8192 SPKI fits */
#define DKIM_DOMAIN_MAX 253  /* d= and selector text */
#define DKIM_AUID_MAX 320    /* decoded i= */

struct dkim_slice {
	const char *p;
	size_t n;
};

struct dkim_tag {
	struct dkim_slice name;
	struct dkim_slice value; /* without surrounding FWS; may hold FWS */
	size_t val_start;	 /* input offset just after '=' */
	size_t val_end;		 /* input offset of ';' or end of input */
};

struct dkim_tags {
	size_t n;
	struct dkim_tag tag[DKIM_TAGS_MAX];
};

/* Parse a tag list; 0 or -1 with *err set (static text). */
int dkim_tags_parse(const char *s, size_t n, struct dkim_tags *out,
		    const char **err);
/* The tag with this name (case-sensitive, as in the RFC), or NULL. */
const struct dkim_tag *dkim_tags_get(const struct dkim_tags *t,
				     const char *name);

/* Base64 with FWS anywhere (RFC 6376 base64string); -1 if out is short. */
int dkim_b64_decode(const char *s, size_t n, uint8_t *out, size_t max,
		    size_t *outlen);

enum dkim_alg {
	DKIM_ALG_UNKNOWN = 0,
	DKIM_ALG_RSA_SHA1,
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_ED25519_SHA256,
};

enum dkim_canon {
	DKIM_CANON_SIMPLE = 0,
	DKIM_CANON_RELAXED,
};

/* The algorithm and hash names. */
const char *dkim_alg_name(enum dkim_alg a);
bool dkim_alg_is_sha1(enum dkim_alg a);

struct dkim_sig {
	struct dkim_tags tags;
	enum dkim_alg alg;
	enum dkim_canon hcanon, bcanon;
	struct dkim_slice d, s;
	char auid[DKIM_AUID_MAX + 1]; /* decoded i=, or "@" d= */
	size_t nhdrs;
	struct dkim_slice hdrs[DKIM_SIG_HDRS_MAX];
	bool has_l, has_t, has_x;
	uint64_t l, t, x;
	uint8_t bh[64];
	size_t bhlen;
	uint8_t b[DKIM_SIG_B_MAX];
	size_t blen;
	/* Input offsets of the b= value (emptied for the header hash). */
	size_t b_start, b_end;
};

/*
 * Parse and check the value of a DKIM-Signature field (the bytes after the
 * colon, folding included): required tags, v=1, known a= and c=, q=dns/txt,
 * h= names From, i= within d=, d= and s= syntax, x= not before t=.
 * Returns 0 or -1 with *err. Unsupported-but-wellformed values also fail:
 * *unsupported is set then (a= or c= or q= or v= not known), which callers
 * may report differently. rsa-sha1 parses (alg is set): refusing it is
 * policy (RFC 8301), decided by the verifier.
 */
int dkim_sig_parse(const char *value, size_t n, struct dkim_sig *sig,
		   const char **err);

struct dkim_keyrec {
	enum { DKIM_KEY_RSA, DKIM_KEY_ED25519 } type;
	bool revoked;	/* p= empty */
	bool testing;	/* t=y */
	bool strict;	/* t=s: i= domain must equal d= */
	bool sha1_ok;	/* h= absent or names sha1 */
	bool sha256_ok; /* h= absent or names sha256 */
	uint8_t p[DKIM_KEY_P_MAX];
	size_t plen;
};

/* Parse a key record (TXT strings already concatenated). 0 or -1, *err. */
int dkim_key_parse(const char *s, size_t n, struct dkim_keyrec *key,
		   const char **err);

/* A DNS name of LDH labels (and "_" for selectors); no empty label. */
bool dkim_domain_ok(const char *s, size_t n, bool underscore);
/* ASCII case-insensitive equality of two slices. */
bool dkim_slice_eqi(struct dkim_slice a, const char *b, size_t bn);

#endif
