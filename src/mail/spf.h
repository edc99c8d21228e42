/*
 * spf — SPF check_host() (RFC 7208) as a pure, resumable state machine.
 *
 * The evaluator never blocks and never does I/O: it asks the caller DNS
 * questions one at a time and the caller answers them. Use:
 *
 *	struct spf *s = spf_new();
 *	enum spf_step st = spf_start(s, "192.0.2.1", NULL, "u@example.com",
 *				     "mx.example.com", NULL);
 *	while (st == SPF_STEP_QUERY) {
 *		const struct spf_query *q = spf_query(s);
 *		... resolve q->name / q->type, fill a struct spf_answer ...
 *		st = spf_resume(s, &answer);
 *	}
 *	spf_result(s), spf_reason(s), spf_explanation(s) ...
 *	spf_free(s);
 *
 * Exactly one question is outstanding at a time. The caller owns the
 * answer's memory; the evaluator copies what it keeps before returning.
 * CNAME chains are the resolver's job: answer with the final records.
 *
 * Semantics (RFC 7208): record selection (§4.5), all mechanisms and
 * modifiers (§5, §6), macros (§7), the 10 DNS-mechanism limit and the 2
 * void-lookup limit counted across include and redirect (§4.6.4), at most
 * 10 MX names (more → permerror) and 10 PTR names (the rest ignored).
 * Any temperror or permerror anywhere ends the whole evaluation.
 *
 * Limits of our own (memory is bounded): a record of SPF_RECORD_MAX
 * octets and SPF_TERMS_MAX terms (more → permerror), a macro expansion of
 * SPF_EXPAND_MAX octets (longer → treated as a malformed name), at most
 * max_queries questions per evaluation (more → permerror). The overall
 * time limit is the caller's: watch spf_queries() and the clock, and call
 * spf_abort() when the deadline passes (the result is then temperror).
 *
 * Trust: records, names and addresses in answers are attacker-controlled;
 * they are length-checked and copied. Sender, HELO and IP come from the
 * SMTP session (untrusted too) and are validated by spf_start().
 */
#ifndef TODOKU_MAIL_SPF_H
#define TODOKU_MAIL_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPF_NAME_MAX 253	/* a DNS name in text form, no final dot */
#define SPF_RECORD_MAX 4096	/* one SPF record (TXT strings joined) */
#define SPF_TERMS_MAX 128	/* terms in one record */
#define SPF_EXPAND_MAX 2048	/* one macro expansion */
#define SPF_DNS_MECH_MAX 10	/* RFC 7208 §4.6.4 */
#define SPF_VOID_MAX 2		/* RFC 7208 §4.6.4 */
#define SPF_RR_MAX 10		/* MX and PTR names looked at, §4.6.4 */
#define SPF_QUERIES_DEFAULT 130 /* RFC limits never need more */
#define SPF_REASON_MAX 512

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

enum spf_step {
	SPF_STEP_QUERY, /* answer spf_query(s), then call spf_resume() */
	SPF_STEP_DONE,	/* spf_result() and friends are final */
};

enum spf_qtype { SPF_Q_TXT, SPF_Q_A, SPF_Q_AAAA, SPF_Q_MX, SPF_Q_PTR };

enum spf_rcode {
	SPF_DNS_ANSWER,	  /* NOERROR with records */
	SPF_DNS_NODATA,	  /* NOERROR, no records of that type */
	SPF_DNS_NXDOMAIN, /* the name does not exist */
	SPF_DNS_TEMPFAIL, /* SERVFAIL, REFUSED, malformed reply, ... */
	SPF_DNS_TIMEOUT,
};

struct spf_query {
	enum spf_qtype type;
	char name[SPF_NAME_MAX + 1]; /* lowercase not guaranteed */
};

/*
 * One record of an answer: TXT = the character-strings joined with no
 * separator (may contain any octet); MX = the exchange name; PTR = the
 * target name (either with or without the final dot); A = 4 octets in
 * network order; AAAA = 16 octets.
 */
struct spf_rdata {
	const char *data;
	size_t len;
};

struct spf_answer {
	enum spf_rcode rcode;
	size_t count; /* records in rr (ignored unless SPF_DNS_ANSWER) */
	const struct spf_rdata *rr;
};

/* Optional inputs; a NULL pointer or zero field means the default. */
struct spf_opts {
	const char *receiver; /* %{r}, default "unknown" */
	int64_t now; /* %{t}, seconds since the epoch (pure: no clock) */
	unsigned max_queries; /* default SPF_QUERIES_DEFAULT */
	unsigned void_max;    /* default SPF_VOID_MAX */
};

struct spf;

/* A new evaluator, or NULL when memory is short (answer 451 4.3.0). */
struct spf *spf_new(void);
void spf_free(struct spf *s);
/*
 * Start check_host(). ip is the client address in text form (IPv4-mapped
 * IPv6 is treated as IPv4). sender is the MAIL FROM mailbox ("" for the
 * null path: the HELO identity postmaster@helo is checked instead).
 * domain is the domain to check; NULL means the sender's domain (or helo
 * when sender is ""). A malformed domain gives none at once (§4.3); a bad
 * ip gives permerror. May be called again to reuse the evaluator.
 */
enum spf_step spf_start(struct spf *s, const char *ip, const char *domain,
			const char *sender, const char *helo,
			const struct spf_opts *opts);
/* The outstanding question (valid while the last step was QUERY). */
const struct spf_query *spf_query(const struct spf *s);
/* Feed the answer to spf_query(s); returns the next step. */
enum spf_step spf_resume(struct spf *s, const struct spf_answer *a);
/* Give up (deadline passed): the result becomes temperror. */
void spf_abort(struct spf *s, const char *why);

enum spf_result spf_result(const struct spf *s);
/* One line for logs and Received-SPF comments: what matched or failed. */
const char *spf_reason(const struct spf *s);
/* The mechanism that decided the result as written ("" if none). */
const char *spf_mechanism(const struct spf *s);
/* The expanded exp= text for fail, or NULL (use a default text). */
const char *spf_explanation(const struct spf *s);
/* The domain that was checked (after defaulting), "" if none. */
const char *spf_domain(const struct spf *s);
/* Questions asked so far in this evaluation. */
unsigned spf_queries(const struct spf *s);
/* "pass", "fail", ... (RFC 7208 §2.6 names, lowercase). */
const char *spf_result_name(enum spf_result r);

/* ---- the pure record parser and macro expander (also fuzzed) ---- */

enum spf_kind {
	SPF_T_ALL,
	SPF_T_INCLUDE,
	SPF_T_A,
	SPF_T_MX,
	SPF_T_PTR,
	SPF_T_IP4,
	SPF_T_IP6,
	SPF_T_EXISTS,
	SPF_T_REDIRECT, /* modifiers from here on */
	SPF_T_EXP,
	SPF_T_UNKNOWN_MOD,
};

struct spf_term {
	uint8_t kind;	      /* enum spf_kind */
	char qual;	      /* '+', '-', '~' or '?' */
	uint8_t cidr4, cidr6; /* 32 and 128 unless given */
	uint16_t off, len;    /* the whole term in the record */
	uint16_t doff, dlen;  /* domain-spec or value; dlen 0 = none */
	uint8_t ip[16];	      /* ip4 (4 octets) or ip6 network */
};

struct spf_record {
	size_t nterms;
	struct spf_term terms[SPF_TERMS_MAX];
	int redirect, exp; /* index into terms, -1 if absent */
};

/*
 * True when rec (len octets) starts with "v=spf1" (any case) followed by
 * a space or the end: the record selection test of §4.5.
 */
bool spf_record_is_spf(const char *rec, size_t len);
/*
 * Parse a whole record (version included) into r. Returns 0, or -1 with
 * a short English reason in err (errlen octets) on any syntax error
 * (RFC 7208 §4.6: the whole record is checked before evaluation).
 */
int spf_record_parse(const char *rec, size_t len, struct spf_record *r,
		     char *err, size_t errlen);

struct spf_macro_env {
	const char *local, *odomain; /* sender local part and domain */
	const char *domain;	     /* current <domain> */
	const char *helo;
	const char *receiver;
	const char *ptr; /* validated name (%{p}), "unknown" if none */
	int64_t now;
	uint8_t ip[16];
	bool v6;
};

#define SPF_MACRO_EXP 0x1 /* explanation text: c, r, t allowed */

/* True when s (n octets) is valid macro-string syntax (flags as above). */
bool spf_macro_valid(const char *s, size_t n, unsigned flags);
/* True when s is a valid domain-spec (§7.1: ends in macro or toplabel). */
bool spf_domain_spec_valid(const char *s, size_t n);
/* True when s uses the p macro (needs a PTR lookup to expand). */
bool spf_macro_uses_p(const char *s, size_t n);
/*
 * Expand a macro-string into out (outsz octets, NUL-terminated).
 * Returns the length, or -1 on a syntax error or if the result does not
 * fit. Domain-name truncation (§7.3) is the caller's (spf_name_fix).
 */
long spf_macro_expand(const char *s, size_t n, unsigned flags,
		      const struct spf_macro_env *env, char *out, size_t outsz);
/*
 * Make an expanded target name queryable in place: drop one final dot,
 * drop labels from the left until at most 253 octets (§7.3). Returns
 * false when the name still has an empty or over-long label.
 */
bool spf_name_fix(char *name);

#endif
