/*
 * dkim_verify — verify every DKIM-Signature of a message (RFC 6376 §6,
 * RFC 8301, RFC 8463), asynchronously: no DNS, no blocking, no globals.
 *
 * Use:
 *   v = dkim_verify_new(&opts);
 *   dkim_verify_feed(v, chunk, n) ...      message bytes, any split
 *     when it returns 1 the header block is complete: for each signature i
 *     with dkim_verify_query(v, i) != NULL, look up that TXT name (the
 *     caller's resolver, asynchronously) and hand the answer back with
 *     dkim_verify_answer(v, i, ...) at any time before dkim_verify_finish.
 *   dkim_verify_finish(v);                 end of message
 *   dkim_verify_result(v, i) for i < dkim_verify_nsigs(v)
 *   dkim_verify_free(v);
 * A signature without an answer at finish is temperror. Body hashes are
 * computed once per distinct (body canonicalisation, hash, l=).
 *
 * Policy: rsa-sha1 and RSA keys under 1024 bits fail (RFC 8301); x= in the
 * past is permerror; l= is accepted and flagged (l_warning); a key in
 * testing mode (t=y) turns fail into neutral. With opts.check_legacy,
 * rsa-sha1 signatures are still looked up and checked so that legacy_ok
 * tells whether they would have verified under RFC 6376 alone (useful to
 * tell a sender what to fix); without it they fail without DNS.
 *
 * Trust: everything here (header fields, DNS answers) is attacker-written;
 * counts are bounded (opts.max_sigs, opts.max_header, DKIM_TAGS_MAX).
 * Memory: one object per message, freed by dkim_verify_free.
 */
#ifndef TODOKU_MAIL_DKIM_VERIFY_H
#define TODOKU_MAIL_DKIM_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/dkim_tags.h"

enum dkim_result {
	DKIM_PASS = 0,
	DKIM_FAIL,
	DKIM_NEUTRAL,
	DKIM_TEMPERROR,
	DKIM_PERMERROR,
	DKIM_POLICY,
};

enum dkim_dns {
	DKIM_DNS_OK = 0, /* TXT records follow (maybe none) */
	DKIM_DNS_NXDOMAIN,
	DKIM_DNS_TEMPFAIL,
};

struct dkim_verify_opts {
	uint64_t now;	   /* seconds since the epoch, for x= */
	size_t max_header; /* header block bytes kept; 0 = 1 MiB */
	unsigned max_sigs; /* signatures evaluated; 0 = 8 */
	bool check_legacy; /* see above */
};

struct dkim_sig_result {
	enum dkim_result result;
	const char *reason; /* static text or reason_buf */
	char reason_buf[96];
	enum dkim_alg alg;
	char domain[DKIM_DOMAIN_MAX + 1];   /* d= */
	char selector[DKIM_DOMAIN_MAX + 1]; /* s= */
	char auid[DKIM_AUID_MAX + 1];	    /* i= (or "@" d=) */
	char b_prefix[9];		    /* header.b for RFC 8601 */
	bool l_warning;	      /* l= present: unsigned content may follow */
	uint64_t l, body_len; /* l= and the canonical body length */
	bool testing;	      /* key t=y */
	unsigned key_bits;
	bool legacy_ok; /* failed only by RFC 8301 policy */
};

struct dkim_verifier;

const char *dkim_result_name(enum dkim_result r);

/* NULL on allocation failure. */
struct dkim_verifier *dkim_verify_new(const struct dkim_verify_opts *o);
void dkim_verify_free(struct dkim_verifier *v);
/* 1 when this call completed the header block, else 0. */
int dkim_verify_feed(struct dkim_verifier *v, const void *p, size_t n);
/* Signatures found (valid or not); known once the header block is. */
size_t dkim_verify_nsigs(const struct dkim_verifier *v);
/* "selector._domainkey.domain" to look up as TXT, or NULL (none needed). */
const char *dkim_verify_query(const struct dkim_verifier *v, size_t i);
/* The answer: for OK, nrec TXT records, each its strings concatenated. */
void dkim_verify_answer(struct dkim_verifier *v, size_t i, enum dkim_dns st,
			const struct dkim_slice *rec, size_t nrec);
void dkim_verify_finish(struct dkim_verifier *v);
const struct dkim_sig_result *dkim_verify_result(const struct dkim_verifier *v,
						 size_t i);
/* The header block passed opts.max_header: nothing could be checked. */
bool dkim_verify_overflow(const struct dkim_verifier *v);

#endif
