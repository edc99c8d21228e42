/*
 * mx — where mail for a domain goes: the MX decision (RFC 5321 §5.1,
 * RFC 7505), pure.
 *
 * Two steps, both pure functions of their input (no DNS, no clock, no
 * global random state; the shuffle uses the seed the caller passes):
 *
 * 1. mx_decide: the MX lookup outcome of the recipient domain becomes
 *    DELIVER (ordered host list), DEFER (4.x.x) or BOUNCE (5.x.x).
 *    - ANSWER: hosts sorted by preference, equal preferences shuffled
 *      (splitmix64 from seed), duplicate names kept once at their best
 *      preference. An ANSWER with no usable record defers (4.4.3): the
 *      caller reports an empty answer as NODATA, so this is an
 *      inconsistency and must not become an implicit MX.
 *    - NODATA: implicit MX, the domain itself at preference 0.
 *    - NXDOMAIN: bounce 5.1.2 (RFC 3463: bad destination system).
 *    - TEMPFAIL (SERVFAIL, timeout, REFUSED, anything else) and BOGUS
 *      (DNSSEC validation failed): defer 4.4.3 (RFC 3463: directory
 *      server failure). Never a fallback to the domain's A/AAAA record
 *      (DESIGN §1 story 1): the host list stays empty.
 *    - Null MX (RFC 7505 §3: exchange "." / root; we accept "" too):
 *      when every record is a null MX, bounce 5.1.10 (RFC 7505 §4,
 *      basic code 556). RFC 7505 §3 says a domain with a null MX "MUST
 *      NOT advertise any other MX RR" and defines no client behaviour
 *      for the mix; the "." record names no host, so it is dropped, the
 *      other MX hosts are used, and MX_W_NULL_MIXED is raised. A "."
 *      with a preference other than 0 is treated the same and flagged
 *      MX_W_NULL_PREF.
 *    - MX that is ourselves (DESIGN §7): a record whose exchange equals
 *      one of our names (ASCII case-insensitive, trailing dot ignored)
 *      sets our preference; every MX with that preference or worse is
 *      discarded and only more preferred ones are used; none left:
 *      bounce 5.4.6 (RFC 3463: routing loop). Applies to the implicit MX
 *      too.
 *    - An exchange that is an IP address ("192.0.2.1", "[::1]") is not
 *      valid (RFC 5321 §5.1) but is kept as a name to look up, with
 *      MX_W_IP_LITERAL; an exchange that is an alias (the caller sets
 *      cname) is kept, with MX_W_CNAME. Exchanges longer than
 *      DNS_NAME_TEXT_MAX are dropped (MX_W_BAD_NAME).
 *    At most MX_RECORDS_MAX records are read (the rest are ignored,
 *    MX_W_TOO_MANY) and MX_HOSTS_MAX hosts kept (after sorting and
 *    shuffling, so the most preferred survive).
 *
 * 2. mx_plan_addresses: per-host A and AAAA results become the ordered
 *    address list, at most max_addresses (0 means MX_ADDR_DEFAULT, capped
 *    at MX_ADDR_MAX), duplicates removed. Host order is kept (MX
 *    preference); within a host, by policy: any = families interleaved,
 *    IPv6 first (v6, v4, v6, v4, ...); prefer-ipv6/prefer-ipv4 = all of
 *    the preferred family, then the other; ipv4-only/ipv6-only = one
 *    family. Only lookups of the families the policy allows count. No
 *    address at all: if any counted lookup failed temporarily (TEMPFAIL
 *    or BOGUS), defer 4.4.3; otherwise (NXDOMAIN/NODATA everywhere)
 *    bounce 5.4.4 (RFC 3463: unable to route).
 *
 * 2b. mx_plan_addresses_self: the same, and an MX host is also
 *    ourselves when one of its addresses (A or AAAA, whatever the
 *    policy) is in self (RFC 5321 §5.1: "by name or address"; our
 *    listening addresses). The first such host, in preference order,
 *    sets our preference as in step 1: only more preferred hosts are
 *    used, with warning naming the host and address; none left: bounce
 *    5.4.6, explain naming them.
 *
 * Every result carries explain, one printable-ASCII line for logs and
 * bounces (names from DNS arrive escaped from dns_name_text; the domain
 * and detail strings are escaped here as \DDD when not printable).
 * warning holds one line per raised MX_W_* flag, joined by "; ".
 */
#ifndef TODOKU_MAIL_MX_H
#define TODOKU_MAIL_MX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/dns_msg.h"

#define MX_NAME_SIZE (DNS_NAME_TEXT_MAX + 1)
#define MX_RECORDS_MAX DNS_MSG_RR_MAX
#define MX_HOSTS_MAX 32
#define MX_ADDR_DEFAULT 10 /* [delivery] max-addresses */
#define MX_ADDR_MAX 64
#define MX_EXPLAIN_SIZE 512

/* Outcome of one DNS lookup as the resolver reported it. */
enum mx_lookup {
	MX_L_ANSWER,   /* NOERROR with records */
	MX_L_NODATA,   /* NOERROR, no records of the type */
	MX_L_NXDOMAIN, /* the name does not exist */
	MX_L_TEMPFAIL, /* SERVFAIL, timeout, REFUSED, anything else */
	MX_L_BOGUS,    /* DNSSEC validation failed */
};

enum mx_action { MX_DELIVER, MX_DEFER, MX_BOUNCE };

enum mx_ip_policy {
	MX_IP_ANY,
	MX_IP_PREFER_V4,
	MX_IP_PREFER_V6,
	MX_IP_V4_ONLY,
	MX_IP_V6_ONLY,
};

#define MX_W_IP_LITERAL 0x01 /* an exchange is an IP address */
#define MX_W_CNAME 0x02	     /* an exchange is an alias */
#define MX_W_NULL_MIXED 0x04 /* null MX beside other MX records */
#define MX_W_NULL_PREF 0x08  /* "." with a preference other than 0 */
#define MX_W_TOO_MANY 0x10   /* records or hosts past the limits */
#define MX_W_SELF 0x20	     /* we are an MX; worse ones dropped */
#define MX_W_BAD_NAME 0x40   /* an exchange too long to be a name */

struct mx_record {
	uint16_t preference;
	const char *exchange; /* presentation form; "." or "" = null MX */
	bool cname;	      /* the exchange turned out to be an alias */
};

struct mx_query {
	const char *domain;
	enum mx_lookup lookup;
	const char *detail; /* e.g. "SERVFAIL", "timeout"; may be NULL */
	const struct mx_record *records;
	size_t nrecords;
	const char *const *self; /* our host names */
	size_t nself;
	uint64_t seed; /* shuffle of equal preferences */
};

struct mx_host {
	uint16_t preference;
	bool implicit; /* the domain itself (NODATA) */
	bool cname;
	bool ip_literal;
	char name[MX_NAME_SIZE];
};

struct mx_decision {
	enum mx_action action;
	const char *status; /* "4.4.3", ...; NULL when DELIVER */
	unsigned warnings;  /* MX_W_* */
	uint16_t nhosts;
	struct mx_host hosts[MX_HOSTS_MAX];
	char explain[MX_EXPLAIN_SIZE];
	char warning[MX_EXPLAIN_SIZE]; /* "" when warnings == 0 */
};

/* Address lookups of one host (d->hosts[i]); arrays owned by the caller. */
struct mx_addrs {
	enum mx_lookup a, aaaa;
	const char *detail; /* may be NULL */
	const uint8_t (*v4)[4];
	size_t nv4;
	const uint8_t (*v6)[16];
	size_t nv6;
};

struct mx_target {
	int family; /* 4 or 6 */
	uint8_t addr[16];
	uint16_t host; /* index into the decision's hosts */
};

struct mx_plan {
	enum mx_action action;
	const char *status; /* NULL when DELIVER */
	size_t n;
	struct mx_target t[MX_ADDR_MAX];
	char explain[MX_EXPLAIN_SIZE];
	char warning[MX_EXPLAIN_SIZE]; /* an MX host is us by address, or "" */
};

/* Our own addresses (step 2b); arrays owned by the caller. */
struct mx_self_addrs {
	const uint8_t (*v4)[4];
	size_t nv4;
	const uint8_t (*v6)[16];
	size_t nv6;
};

/* Step 1: the MX decision for q (see top). */
void mx_decide(const struct mx_query *q, struct mx_decision *d);
/* Step 2: addresses; per_host has d->nhosts entries. A decision that is
 * not DELIVER is copied (action, status, explain) with no addresses. */
void mx_plan_addresses(const struct mx_decision *d,
		       const struct mx_addrs *per_host, enum mx_ip_policy pol,
		       size_t max_addresses, struct mx_plan *out);
/* Step 2b: step 2 with our own addresses (self may be NULL: step 2). */
void mx_plan_addresses_self(const struct mx_decision *d,
			    const struct mx_addrs *per_host,
			    const struct mx_self_addrs *self,
			    enum mx_ip_policy pol, size_t max_addresses,
			    struct mx_plan *out);
/* "any", "prefer-ipv4", "prefer-ipv6", "ipv4-only", "ipv6-only". */
const char *mx_ip_policy_name(enum mx_ip_policy p);
bool mx_ip_policy_parse(const char *s, enum mx_ip_policy *out);
/* "answer", "NODATA", "NXDOMAIN", "temporary failure", "DNSSEC bogus" */
const char *mx_lookup_name(enum mx_lookup l);

#endif
