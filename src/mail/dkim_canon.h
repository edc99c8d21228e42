/*
 * dkim_canon — DKIM canonicalisation (RFC 6376 §3.4) and hashing, on the
 * stream.
 *
 * Three pieces, all fed in arbitrary chunks (a split may fall anywhere,
 * inside a CRLF, a run of white space or the trailing empty lines; the
 * result never depends on the split):
 *
 *   dkim_split   message bytes -> the header block (kept, bounded) and the
 *                body bytes (handed back to the caller, never kept).
 *   dkim_body    body bytes -> canonical body -> SHA-1/SHA-256 (EVP), with
 *                the l= limit. One dkim_body serves every signature that
 *                shares (canonicalisation, hash, l=): the body is hashed
 *                once per distinct triple, not once per signature.
 *   dkim_hcanon  one header field -> its canonical form.
 *
 * Input is taken to have CRLF line ends (smtp_data guarantees it); a bare
 * CR or LF is an ordinary octet here. Callers with LF files convert first.
 *
 * Failure modes: allocation or EVP failure sets ->error; the caller turns
 * it into temperror. Not thread-safe per object. The one global is
 * dkim_md()'s: the digests fetched from OpenSSL once per process
 * (pthread_once), read-only after that.
 */
#ifndef TODOKU_MAIL_DKIM_CANON_H
#define TODOKU_MAIL_DKIM_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "lib/buf.h"
#include "mail/dkim_tags.h"

/* Canonical octets batched per EVP update (longer spans go straight). */
#define DKIM_BODY_STAGE 16384

struct dkim_body {
	enum dkim_canon canon;
	bool sha1;
	bool has_limit;
	uint64_t limit;	    /* l=: octets of canonical body hashed */
	uint64_t canon_len; /* canonical body octets in total (l= or not) */
	uint64_t hashed;    /* canonical body octets hashed */
	bool error;
	struct buf *tap; /* tests: a copy of the canonical body */
	/* private */
	void *md;	       /* EVP_MD_CTX */
	uint64_t crlf_pending; /* CRLFs not yet known to be followed by
				  content (dropped at the end of the body) */
	bool cr_pending;       /* a chunk ended in CR: CRLF or content? */
	bool ws_pending;       /* relaxed: a chunk ended in a WSP run */
	bool any;	       /* some content octet was emitted */
	size_t stage_len;
	uint8_t stage[DKIM_BODY_STAGE];
};

/*
 * SHA-1 or SHA-256 for EVP_DigestInit_ex, fetched once: OpenSSL 3 looks
 * the implementation up again (under a lock) on every init with
 * EVP_sha256(), which costs as much as hashing a small message. Falls back
 * to EVP_sha1()/EVP_sha256() if the fetch failed.
 */
const EVP_MD *dkim_md(bool sha1);

/* 0 or -1 (EVP failure). limit < 0 means none. */
int dkim_body_init(struct dkim_body *b, enum dkim_canon c, bool sha1,
		   int64_t limit);
void dkim_body_feed(struct dkim_body *b, const void *p, size_t n);
/* End of body: out gets 20 or 32 octets; 0 or -1. Frees the EVP state. */
int dkim_body_final(struct dkim_body *b, uint8_t out[32], size_t *outlen);
/* Frees the EVP state (safe after final, or twice). */
void dkim_body_free(struct dkim_body *b);

/*
 * Canonical form of one header field (name, colon, value, with its folding
 * and final CRLF as received; a missing final CRLF is supplied) appended
 * to out. crlf=false leaves the final CRLF off (the DKIM-Signature field
 * itself, §3.7). -1 if out is full.
 */
int dkim_hcanon(enum dkim_canon c, const char *f, size_t n, bool crlf,
		struct buf *out);

struct dkim_field {
	size_t off, len;  /* in the header block, CRLF included */
	size_t name_len;  /* field name without trailing WSP */
	size_t value_off; /* just after the colon */
};

struct dkim_split {
	struct buf hdr; /* the header block, without the empty line */
	bool in_body;
	bool overflow;	/* header block passed its maximum */
	unsigned match; /* private: CRLF CRLF progress */
	size_t nfields;
	struct dkim_field *fields;
};

void dkim_split_init(struct dkim_split *s, size_t max_header);
void dkim_split_free(struct dkim_split *s);
/*
 * Consume n message octets. Header octets are kept; once the empty line
 * is seen, *body and *bodylen give the body octets of this chunk (a pointer
 * into p). Returns true on the call that completes the header block.
 * After overflow nothing more is kept (the caller gives up on DKIM).
 */
bool dkim_split_feed(struct dkim_split *s, const char *p, size_t n,
		     const char **body, size_t *bodylen);
/* Index the header fields (at the end of the header block, or at the end
 * of a message without a body). 0 or -1 (allocation). */
int dkim_split_fields(struct dkim_split *s);

#endif
