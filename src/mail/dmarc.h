/*
 * dmarc — DMARC evaluation (DMARCbis, RFC 9989) as a pure, resumable
 * state machine, plus the record and From-header parsers it needs.
 *
 * Like spf.h, the evaluator never blocks and does no I/O: it asks the
 * caller one DNS question at a time and the caller answers it. Use:
 *
 *	struct dmarc *d = dmarc_new();
 *	struct dmarc_input in = { .from_domain = "example.com",
 *		.spf = { "bounce.example.com", true },
 *		.dkim = sigs, .ndkim = nsigs };
 *	enum dmarc_step st = dmarc_start(d, &in, NULL);
 *	while (st == DMARC_STEP_QUERY) {
 *		const struct dmarc_query *q = dmarc_query(d);
 *		... resolve q->name / q->type, fill a struct dmarc_answer ...
 *		st = dmarc_resume(d, &answer);
 *	}
 *	dmarc_result(d), dmarc_disposition(d), dmarc_ar(d) ...
 *	dmarc_free(d);
 *
 * Semantics (RFC 9989):
 *  - Policy discovery is the DNS tree walk: _dmarc.<From domain>, then
 *    _dmarc.<parent>, one label at a time; a domain of 8 or more labels
 *    jumps straight to its last 7 labels. At most DMARC_WALK_MAX (8)
 *    names per walk. The first name holding exactly one v=DMARC1 record
 *    gives the policy. No record anywhere → result none.
 *  - The Organizational Domain (relaxed alignment) comes from the same
 *    walk: the first record with psd=n names it; a record with psd=y
 *    above the start names the domain one label below it; otherwise the
 *    record with the fewest labels; with no record, the domain itself.
 *    Walks are done only when needed (an identifier that is identical
 *    to the From domain aligns without DNS; one outside the From
 *    domain's Organizational Domain cannot align) and every answer is
 *    cached for the evaluation, so walks share their upper names.
 *  - Policy: p at the From domain; above it np (when the From domain
 *    does not exist), else sp, else p. Existence (RFC 9989: NXDOMAIN or
 *    NODATA for A, AAAA and MX) is only needed when the result is fail,
 *    the record was found above the From domain and has np=; it is then
 *    taken from dmarc_input.from_exists or asked as A, AAAA, MX
 *    questions (stopping at the first answer or NXDOMAIN).
 *  - t=y (testing) lowers the disposition one step (reject → quarantine,
 *    quarantine → none); dmarc_policy() still reports the published one.
 *  - pct= is ignored: RFC 9989 removed it (t= replaces pct=0). rf= and
 *    ri= (removed too) are parsed for reports only; errors there are
 *    warnings and never change the result.
 *  - Any TEMPFAIL/TIMEOUT that the result depends on → temperror. A From
 *    domain that is not a DNS name, or more than max_queries questions →
 *    permerror.
 *
 * Legacy mode (tests only): with opts->org_domain set, discovery and
 * alignment follow RFC 7489 instead — _dmarc.<From domain>, then
 * _dmarc.<Organizational Domain> from the callback (the corpus runner
 * drives it with the Public Suffix List). Production leaves it NULL.
 *
 * Trust: TXT records, and every domain in the input (From header, MAIL
 * FROM, HELO, DKIM d=), are attacker-controlled: they are validated,
 * length-checked and copied. Names that reach dmarc_ar() are LDH only.
 * Domains must be ASCII (A-labels); the caller converts U-labels.
 */
#ifndef TODOKU_MAIL_DMARC_H
#define TODOKU_MAIL_DMARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DMARC_NAME_MAX 253	 /* a DNS name in text form, no final dot */
#define DMARC_WALK_MAX 8	 /* names per tree walk (RFC 9989) */
#define DMARC_WALK_LABELS 7	 /* a long name jumps to this many labels */
#define DMARC_IDS_MAX 16	 /* DKIM identifiers looked at */
#define DMARC_URIS_MAX 8	 /* rua / ruf URIs kept */
#define DMARC_URI_MAX 256	 /* one mailto: address kept */
#define DMARC_QUERIES_DEFAULT 64 /* cache size: distinct questions */
#define DMARC_REASON_MAX 512

enum dmarc_result {
	DMARC_NONE,
	DMARC_PASS,
	DMARC_FAIL,
	DMARC_TEMPERROR,
	DMARC_PERMERROR,
};

enum dmarc_policy {
	DMARC_P_UNSET, /* tag absent (sp, np) / no policy */
	DMARC_P_NONE,
	DMARC_P_QUARANTINE,
	DMARC_P_REJECT,
};

enum dmarc_align { DMARC_ALIGN_RELAXED, DMARC_ALIGN_STRICT };

enum dmarc_psd { DMARC_PSD_U, DMARC_PSD_Y, DMARC_PSD_N };

enum dmarc_step {
	DMARC_STEP_QUERY, /* answer dmarc_query(d), call dmarc_resume() */
	DMARC_STEP_DONE,  /* results are final */
};

enum dmarc_qtype { DMARC_Q_TXT, DMARC_Q_A, DMARC_Q_AAAA, DMARC_Q_MX };

enum dmarc_rcode {
	DMARC_DNS_ANSWER,   /* NOERROR with records */
	DMARC_DNS_NODATA,   /* NOERROR, no records of that type */
	DMARC_DNS_NXDOMAIN, /* the name does not exist */
	DMARC_DNS_TEMPFAIL, /* SERVFAIL, REFUSED, malformed reply, ... */
	DMARC_DNS_TIMEOUT,
};

struct dmarc_query {
	enum dmarc_qtype type;
	char name[DMARC_NAME_MAX + 1]; /* "_dmarc.example.com" for TXT */
};

/* One record: TXT = its character-strings joined with no separator;
 * other types are only counted (their data is not read). */
struct dmarc_rdata {
	const char *data;
	size_t len;
};

struct dmarc_answer {
	enum dmarc_rcode rcode;
	size_t count; /* records in rr (ignored unless DMARC_DNS_ANSWER) */
	const struct dmarc_rdata *rr;
};

/* An authenticated identifier: the SPF domain (MAIL FROM domain, or the
 * HELO name for the null path) or a DKIM signature's d=. Only those
 * with pass set can align. */
struct dmarc_ident {
	const char *domain;
	bool pass;
};

enum dmarc_exists { DMARC_EXISTS_ASK, DMARC_EXISTS_YES, DMARC_EXISTS_NO };

struct dmarc_input {
	const char *from_domain; /* the RFC5322.From domain */
	struct dmarc_ident spf;	 /* domain NULL: SPF not checked */
	const struct dmarc_ident *dkim;
	size_t ndkim; /* only the first DMARC_IDS_MAX are used */
	enum dmarc_exists from_exists; /* for np=; ASK = ask DNS if needed */
};

/* Legacy RFC 7489 Organizational Domain (tests): write the org domain
 * of name (lowercase, no final dot) into out; false = none (the name
 * is a public suffix). */
typedef bool (*dmarc_org_fn)(void *ctx, const char *name, char *out,
			     size_t outsz);

struct dmarc_opts {
	unsigned max_queries;	 /* default and ceiling DMARC_QUERIES_DEFAULT */
	dmarc_org_fn org_domain; /* NULL (production): DMARCbis tree walk */
	void *org_ctx;
};

/* ---- the record parser (attacker-controlled TXT; also fuzzed) ---- */

#define DMARC_FO_0 0x1
#define DMARC_FO_1 0x2
#define DMARC_FO_D 0x4
#define DMARC_FO_S 0x8

/* Warnings: a syntax error the parser recovered from (RFC 9989: use the
 * default, or ignore the tag). None of them makes a record unusable. */
#define DMARC_W_P_MISSING 0x0001 /* no p=: treated as p=none */
#define DMARC_W_POLICY 0x0002	 /* bad p/sp/np, rua present: p=none */
#define DMARC_W_ADKIM 0x0004
#define DMARC_W_ASPF 0x0008
#define DMARC_W_FO 0x0010
#define DMARC_W_RF 0x0020
#define DMARC_W_RI 0x0040
#define DMARC_W_PSD 0x0080
#define DMARC_W_T 0x0100
#define DMARC_W_DUP 0x0200    /* a tag repeated: the first one counts */
#define DMARC_W_SYNTAX 0x0400 /* a term that is not tag=value */
#define DMARC_W_URI 0x0800    /* a rua/ruf URI that is not usable */

struct dmarc_uri {
	char addr[DMARC_URI_MAX + 1]; /* after "mailto:", NUL-terminated */
	uint64_t max_size;	      /* octets from "!size", 0 = none */
};

struct dmarc_record {
	uint8_t p, sp, np;     /* enum dmarc_policy */
	uint8_t adkim, aspf;   /* enum dmarc_align */
	uint8_t psd;	       /* enum dmarc_psd */
	bool testing;	       /* t=y */
	uint8_t fo;	       /* DMARC_FO_* bits, default DMARC_FO_0 */
	bool rf_afrf;	       /* rf= (RFC 7489; reports only) */
	uint32_t ri;	       /* ri= (RFC 7489; reports only), 86400 */
	unsigned warnings;     /* DMARC_W_* */
	unsigned nrua, nruf;   /* usable mailto: URIs kept */
	unsigned uris_dropped; /* unusable or beyond DMARC_URIS_MAX */
	struct dmarc_uri rua[DMARC_URIS_MAX];
	struct dmarc_uri ruf[DMARC_URIS_MAX];
};

enum dmarc_parse {
	DMARC_REC_OK,
	DMARC_REC_NOT_DMARC,  /* does not start with v=DMARC1: not ours */
	DMARC_REC_BAD_POLICY, /* bad p/sp/np and no usable rua: unusable */
};

/* True when rec (len octets) starts with v=DMARC1 (record selection). */
bool dmarc_record_is_dmarc(const char *rec, size_t len);
/* Parse a whole TXT record into r (always fully initialised). */
enum dmarc_parse dmarc_record_parse(const char *rec, size_t len,
				    struct dmarc_record *r);

/* ---- the From header helper (also fuzzed) ---- */

enum dmarc_from {
	DMARC_FROM_OK,	     /* one address, or several in one domain */
	DMARC_FROM_NONE,     /* no address: DMARC cannot apply */
	DMARC_FROM_MULTIPLE, /* addresses in different domains */
	DMARC_FROM_BAD,	     /* unparseable, or the domain is not a name */
};

/*
 * The RFC5322.From domain of one From header field value (unfolded or
 * not; comments, quoted strings, display names, a group wrapper and
 * stray angle brackets are tolerated). Writes the lowercase domain (no
 * final dot) into out. RFC 9989 §4.4: several addresses go ahead only
 * when they share one domain; otherwise the message is exempt (the
 * caller decides; rejecting is allowed). A message with zero or more
 * than one From field is the caller's to reject before calling this.
 * *naddr (may be NULL) receives the number of addresses seen.
 */
enum dmarc_from dmarc_from_domain(const char *value, size_t len, char *out,
				  size_t outsz, unsigned *naddr);

/*
 * Normalise a domain into out: lowercase, leading and trailing dots
 * dropped; false when what remains is not an LDH(+_)
 * name of at most 253 octets with labels of 1..63 octets.
 */
bool dmarc_domain_norm(const char *in, size_t len, char *out, size_t outsz);

/* ---- the evaluator ---- */

struct dmarc;

/* A new evaluator, or NULL when memory is short (answer 451 4.3.0). */
struct dmarc *dmarc_new(void);
void dmarc_free(struct dmarc *d);
/* Start an evaluation (the evaluator may be reused). in is copied. */
enum dmarc_step dmarc_start(struct dmarc *d, const struct dmarc_input *in,
			    const struct dmarc_opts *opts);
/* The outstanding question (valid while the last step was QUERY). */
const struct dmarc_query *dmarc_query(const struct dmarc *d);
/* Feed the answer to dmarc_query(d); returns the next step. */
enum dmarc_step dmarc_resume(struct dmarc *d, const struct dmarc_answer *a);
/* Give up (deadline passed): the result becomes temperror. */
void dmarc_abort(struct dmarc *d, const char *why);

enum dmarc_result dmarc_result(const struct dmarc *d);
/* The published policy for the From domain (p, sp or np), UNSET when
 * there is no usable record. Reported for pass too (np then not asked). */
enum dmarc_policy dmarc_policy(const struct dmarc *d);
/* What to enforce: none on pass; the policy lowered by t=y on fail. */
enum dmarc_policy dmarc_disposition(const struct dmarc *d);
/* "p", "sp" or "np": the tag dmarc_policy() came from ("" if none). */
const char *dmarc_policy_tag(const struct dmarc *d);
/* The parsed policy record, NULL when none was found. */
const struct dmarc_record *dmarc_record(const struct dmarc *d);
/* The domain whose _dmarc record was used ("" if none). */
const char *dmarc_policy_domain(const struct dmarc *d);
/* The normalised From domain ("" if invalid). */
const char *dmarc_from(const struct dmarc *d);
/* The Organizational Domain of the From domain ("" if not computed:
 * no relaxed comparison needed it). */
const char *dmarc_org_domain(const struct dmarc *d);
/* The identifier that aligned, or NULL. */
const char *dmarc_aligned_spf(const struct dmarc *d);
const char *dmarc_aligned_dkim(const struct dmarc *d);
/* Authentication-Results method text (RFC 8601), e.g.
 * "dmarc=fail (p=reject) header.from=example.com". */
const char *dmarc_ar(const struct dmarc *d);
/* One line for logs: why this result. */
const char *dmarc_reason(const struct dmarc *d);
/* Questions asked so far in this evaluation. */
unsigned dmarc_queries(const struct dmarc *d);
/* "pass", "fail", ... (RFC 8601 names) and "none", "quarantine", ... */
const char *dmarc_result_name(enum dmarc_result r);
const char *dmarc_policy_name(enum dmarc_policy p);

/*
 * The names a DMARCbis tree walk queries for domain (normalised), in
 * order, without the "_dmarc." prefix: domain itself, then its parents
 * (jumping to the last 7 labels first when it has 8 or more). Returns
 * how many (0 for an empty name); names[i] point into domain.
 */
size_t dmarc_walk_names(const char *domain, const char *names[DMARC_WALK_MAX]);

#endif
