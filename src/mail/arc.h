/*
 * arc — Authenticated Received Chain (RFC 8617): chain validation and
 * sealing, pure and resumable, on top of the DKIM modules (tag lists,
 * canonicalisation, header hash, hash-only signatures).
 *
 * Parsing (pure, no OpenSSL, no allocation except arc_chain_parse):
 *   arc_aar_instance   the "i=N;" prefix of ARC-Authentication-Results
 *   arc_ams_parse      an ARC-Message-Signature value
 *   arc_seal_parse     an ARC-Seal value
 *   arc_chain_parse    every ARC field of a header block, sorted into sets
 *                      by instance, with the structural rules of §5.2
 *                      steps 1-3 (at most 50 sets, 1..N contiguous, one
 *                      of each field per set, cv= none for i=1 and pass
 *                      after, newest cv=fail is a fail).
 *
 * Verification (§5.2), asynchronous like dkim_verify:
 *   v = arc_verify_new(&opts);
 *   arc_verify_feed(v, chunk, n) ...   returns 1 once the header block is
 *     complete; then for k < arc_verify_nqueries(v), look up the TXT name
 *     arc_verify_query(v, k) and hand it back with arc_verify_answer().
 *     Key names are shared: the AMS and every AS with the same s=/d= need
 *     one lookup.
 *   arc_verify_finish(v); r = arc_verify_result(v); arc_verify_free(v);
 * The newest AMS is verified like a DKIM signature (its h= may not name
 * ARC-Seal); every AS is verified over the ARC sets 1..i in order (AAR,
 * AMS, AS; relaxed header canonicalisation; the AS's own b= emptied).
 * With opts.oldest_pass the older AMSs are verified too, newest first,
 * to report the oldest instance whose AMS still verifies (header.oldest-pass
 * of RFC 8617 §10.1); they never change pass into fail.
 *
 * Sealing (§5.1): the private key sees only two 32-byte hashes:
 *   s = arc_sealer_new(&opts, &err);
 *   arc_sealer_feed(s, chunk, n) ...
 *   arc_sealer_ams_hash(s, h, &err);      dkim_sign_hash(key, alg, h, ...)
 *   arc_sealer_seal_hash(s, amssig, n, h, &err);   dkim_sign_hash again
 *   arc_sealer_headers(s, assig, n, &out);  ARC-Seal, ARC-Message-Signature,
 *                                          ARC-Authentication-Results, top
 *                                          to bottom, each ending CRLF
 * opts.chain is the validation result of the chain as received (from
 * arc_verify; arc_sealer_set_chain may set it, and opts.results, once the
 * message has streamed past; 0, or -1 for a results text with a line
 * end or a sealer already used); cv= is set from it, and a failed chain is
 * sealed over the new set only (§5.1.2); a chain whose newest seal already says
 * cv=fail is not sealed again (arc_sealer_ams_hash fails). Tags are written in
 * alphabetical order with "; " between them; lines are folded only between
 * tags, never inside b=, so the seal over our AMS does not depend on how a
 * value was folded.
 *
 * Trust: every header field and DNS answer here is attacker-written. Counts
 * are bounded: ARC_MAX_INSTANCES sets, opts.max_keys lookups, opts.max_header
 * octets of header block. Memory: one object per message, freed by *_free;
 * allocation failure gives a fail marked temporary (verify) or -1 (seal).
 * Input must have CRLF line ends (smtp_data guarantees it).
 *
 * Fuzzed by src/mail/fuzz_arc.c.
 */
#ifndef TODOKU_MAIL_ARC_H
#define TODOKU_MAIL_ARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "mail/dkim_canon.h"
#include "mail/dkim_tags.h"
#include "mail/dkim_verify.h"

#define ARC_MAX_INSTANCES 50 /* RFC 8617 §4.2.1 */
#define ARC_KEYS_DEFAULT 8   /* distinct key lookups per message */
#define ARC_BODIES_MAX 4     /* distinct body hashes (oldest-pass) */

enum arc_result {
	ARC_NONE = 0,
	ARC_PASS,
	ARC_FAIL,
};

enum arc_cv {
	ARC_CV_NONE = 0,
	ARC_CV_PASS,
	ARC_CV_FAIL,
};

enum arc_kind {
	ARC_AAR = 0,
	ARC_AMS,
	ARC_AS,
	ARC_KINDS,
};

/* An ARC-Message-Signature or ARC-Seal, parsed. Slices point into the
 * caller's input. */
struct arc_sig {
	unsigned inst; /* i= */
	enum dkim_alg alg;
	enum dkim_canon hcanon, bcanon; /* AMS c= (default simple/simple) */
	enum arc_cv cv;			/* AS only */
	struct dkim_slice d, s;
	bool has_l, has_t;
	uint64_t l, t;
	size_t nhdrs; /* AMS h= (empty names dropped) */
	struct dkim_slice hdrs[DKIM_SIG_HDRS_MAX];
	uint8_t bh[32];
	size_t bhlen;
	uint8_t b[DKIM_SIG_B_MAX];
	size_t blen;
	size_t b_start, b_end; /* input offsets of the b= value */
};

const char *arc_result_name(enum arc_result r);
const char *arc_cv_name(enum arc_cv cv);

/* The instance of an AAR value ("i=" 1*DIGIT [CFWS] ";"): 0 or -1, *err. */
int arc_aar_instance(const char *v, size_t n, unsigned *inst, const char **err);
/* The i= of an AMS or AS value, without checking the rest: 0 or -1. */
int arc_sig_instance(const char *v, size_t n, unsigned *inst, const char **err);
/* Full parse of an AMS value: 0 or -1 with *err (static text). rsa-sha1
 * and unknown a= are errors. */
int arc_ams_parse(const char *v, size_t n, struct arc_sig *sig,
		  const char **err);
/* Full parse of an AS value (h= is an error, cv= required). */
int arc_seal_parse(const char *v, size_t n, struct arc_sig *sig,
		   const char **err);

/* The ARC fields of a header block, by instance. */
struct arc_chain {
	bool any;		/* some ARC field present */
	unsigned n;		/* highest instance seen (<= 50) */
	enum arc_result status; /* NONE, FAIL (reason), or PASS: structure ok */
	const char *reason;
	char reason_buf[96];
	bool newest_fail; /* the newest AS says cv=fail: never seal again */
	/* field index (into split.fields) + 1, 0 = absent; [inst][kind] */
	size_t field[ARC_MAX_INSTANCES + 1][ARC_KINDS];
	struct arc_sig *seal; /* seal[i-1], parsed when structure is ok */
};

/*
 * Sort the ARC fields of sp (indexed with dkim_split_fields) into sets and
 * apply the structural rules; with structure ok, parse every AS into
 * c->seal. 0, or -1 on allocation failure. Free with arc_chain_free.
 */
int arc_chain_parse(const struct dkim_split *sp, struct arc_chain *c);
void arc_chain_free(struct arc_chain *c);
/* The value of field idx (after the colon, without the final CRLF). */
struct dkim_slice arc_field_value(const struct dkim_split *sp, size_t idx);

/* Verification. */
struct arc_verify_opts {
	size_t max_header; /* header block bytes kept; 0 = 1 MiB */
	unsigned max_keys; /* distinct key lookups; 0 = ARC_KEYS_DEFAULT */
	bool oldest_pass;  /* also verify older AMSs (more lookups) */
};

struct arc_verify_result {
	enum arc_result result;
	const char *reason; /* static text or reason_buf; "" on pass */
	char reason_buf[128];
	unsigned instances;   /* N: sets on the message */
	unsigned oldest_pass; /* 0: every AMS verified, or not computed */
	bool temporary; /* fail came from DNS or memory, not the message */
};

struct arc_verifier;

struct arc_verifier *arc_verify_new(const struct arc_verify_opts *o);
void arc_verify_free(struct arc_verifier *v);
int arc_verify_feed(struct arc_verifier *v, const void *p, size_t n);
size_t arc_verify_nqueries(const struct arc_verifier *v);
/* "selector._domainkey.domain" to look up as TXT, or NULL (answered). */
const char *arc_verify_query(const struct arc_verifier *v, size_t k);
void arc_verify_answer(struct arc_verifier *v, size_t k, enum dkim_dns st,
		       const struct dkim_slice *rec, size_t nrec);
void arc_verify_finish(struct arc_verifier *v);
const struct arc_verify_result *arc_verify_result(const struct arc_verifier *v);
/* "arc=pass (i=2) header.oldest-pass=1" / "arc=fail (reason)" appended to
 * out for Authentication-Results. 0 or -1 (out full). */
int arc_verify_ar(const struct arc_verify_result *r, struct buf *out);

/* Sealing. */
struct arc_seal_opts {
	const char *authserv_id;
	const char *results; /* resinfo after "authserv-id;", NULL = none */
	const char *domain, *selector;
	enum dkim_alg alg;	    /* rsa-sha256 or ed25519-sha256 */
	const char *const *headers; /* AMS h=; NULL = ARC default list */
	size_t nheaders;
	uint64_t t;	       /* t=; 0 = left out */
	enum arc_result chain; /* the chain as received */
	size_t max_header;     /* 0 = 1 MiB */
};

struct arc_sealer;

struct arc_sealer *arc_sealer_new(const struct arc_seal_opts *o,
				  const char **err);
void arc_sealer_feed(struct arc_sealer *s, const void *p, size_t n);
/* End of message: the AMS hash to sign. 0 or -1 with *err (no From, chain
 * status does not match the message, 50 sets already, ...). */
int arc_sealer_ams_hash(struct arc_sealer *s, uint8_t hash[32],
			const char **err);
/* With the AMS signature: the AS hash to sign. 0 or -1 with *err. */
int arc_sealer_seal_hash(struct arc_sealer *s, const uint8_t *sig,
			 size_t siglen, uint8_t hash[32], const char **err);
/* With the AS signature: the three fields appended to out. 0 or -1. */
int arc_sealer_headers(struct arc_sealer *s, const uint8_t *sig, size_t siglen,
		       struct buf *out);
/* The instance being added (known after arc_sealer_ams_hash). */
unsigned arc_sealer_instance(const struct arc_sealer *s);
/* Set opts.chain and opts.results after arc_sealer_new, before
 * arc_sealer_ams_hash: a sealer that streams the message learns the
 * verification result only at its end. results must outlive s. */
int arc_sealer_set_chain(struct arc_sealer *s, enum arc_result chain,
			 const char *results);
void arc_sealer_free(struct arc_sealer *s);

#endif
