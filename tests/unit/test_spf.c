/*
 * test_spf — SPF check_host() (mail/spf.c): macro vectors, parser, limits,
 * and the RFC 7208 conformance suite.
 *
 * A stub resolver answers the evaluator's questions from an in-memory
 * zone. The suite (corpora/spf/rfc7208-tests.yml) is converted at test
 * time by tests/spf/convert.py into the build directory and every case
 * is run; cases treated differently on purpose are listed in
 * tests/spf/README.md. The corpora live in $TODOKU_CORPORA, by default
 * <repo>/../shared/corpora.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail/spf.h"

extern char **environ;

/* ---------------------------------------------------------------- */
/* stub zone                                                          */

#define ZONE_MAX 512
#define VAL_LEN 1024

struct zrr {
	char name[300];
	char type[8];	   /* A AAAA MX PTR CNAME TXT, "exists", "timeout" */
	char val[VAL_LEN]; /* text, or answerable types for "timeout" */
	size_t vlen;
	uint8_t bin[16]; /* A/AAAA */
};

static struct zrr zone[ZONE_MAX];
static size_t nzone;

static void
zone_reset(void)
{
	nzone = 0;
}

static void
zone_add_n(const char *name, const char *type, const char *val, size_t vlen)
{
	struct zrr *z;

	assert_true(nzone < ZONE_MAX);
	assert_true(vlen < VAL_LEN);
	z = &zone[nzone++];
	memset(z, 0, sizeof(*z));
	snprintf(z->name, sizeof(z->name), "%s", name);
	snprintf(z->type, sizeof(z->type), "%s", type);
	memcpy(z->val, val, vlen);
	z->vlen = vlen;
	if (strcmp(type, "A") == 0)
		assert_int_equal(inet_pton(AF_INET, val, z->bin), 1);
	if (strcmp(type, "AAAA") == 0)
		assert_int_equal(inet_pton(AF_INET6, val, z->bin), 1);
}

static void
zone_add(const char *name, const char *type, const char *val)
{
	zone_add_n(name, type, val, strlen(val));
	zone_add_n(name, "exists", "", 0);
}

/* DNS names compare without case and without the final dot. */
static bool
name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static const char *
qtype_name(enum spf_qtype t)
{
	static const char *const n[] = {"TXT", "A", "AAAA", "MX", "PTR"};

	return n[t];
}

static bool
type_listed(const char *list, const char *type)
{
	size_t n = strlen(type);
	const char *p;

	for (p = list; (p = strstr(p, type)) != NULL; p += n)
		if ((p == list || p[-1] == ',') &&
		    (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

static struct spf_rdata answer_rr[ZONE_MAX];

/* Answer one question from the zone, following CNAMEs. */
static void
zone_resolve(const struct spf_query *q, struct spf_answer *a)
{
	const char *type = qtype_name(q->type), *name = q->name;
	bool exists, cname;
	size_t i, hops;

	memset(a, 0, sizeof(*a));
	a->rr = answer_rr;
	for (hops = 0; hops < 8; hops++) {
		exists = cname = false;
		for (i = 0; i < nzone; i++) {
			if (!name_eq(zone[i].name, name))
				continue;
			exists = true;
			if (strcmp(zone[i].type, "timeout") == 0 &&
			    !type_listed(zone[i].val, type)) {
				a->rcode = SPF_DNS_TIMEOUT;
				return;
			}
		}
		for (i = 0; i < nzone; i++) {
			if (!name_eq(zone[i].name, name))
				continue;
			if (strcmp(zone[i].type, type) == 0) {
				struct spf_rdata *r = &answer_rr[a->count++];

				if (q->type == SPF_Q_A ||
				    q->type == SPF_Q_AAAA) {
					r->data = (const char *)zone[i].bin;
					r->len = q->type == SPF_Q_A ? 4 : 16;
				} else {
					r->data = zone[i].val;
					r->len = zone[i].vlen;
				}
			}
		}
		if (a->count > 0) {
			a->rcode = SPF_DNS_ANSWER;
			return;
		}
		for (i = 0; i < nzone && !cname; i++)
			if (name_eq(zone[i].name, name) &&
			    strcmp(zone[i].type, "CNAME") == 0) {
				name = zone[i].val;
				cname = true;
			}
		if (cname)
			continue;
		if (exists)
			a->rcode = SPF_DNS_NODATA;
		else if (strncasecmp(name, "error.", 6) == 0)
			a->rcode = SPF_DNS_TIMEOUT;
		else
			a->rcode = SPF_DNS_NXDOMAIN;
		return;
	}
	a->rcode = SPF_DNS_TEMPFAIL; /* CNAME loop: SERVFAIL */
}

/* Run one evaluation against the zone; returns the evaluator. */
static struct spf *
run_spf(const char *ip, const char *sender, const char *helo,
	const struct spf_opts *o)
{
	struct spf *s = spf_new();
	struct spf_answer a;
	enum spf_step st;
	unsigned guard = 0;

	assert_non_null(s);
	st = spf_start(s, ip, NULL, sender, helo, o);
	while (st == SPF_STEP_QUERY) {
		assert_true(++guard < 1000);
		zone_resolve(spf_query(s), &a);
		st = spf_resume(s, &a);
	}
	return s;
}

static enum spf_result
check(const char *ip, const char *sender, const char *helo)
{
	struct spf *s = run_spf(ip, sender, helo, NULL);
	enum spf_result r = spf_result(s);

	spf_free(s);
	return r;
}

/* ---------------------------------------------------------------- */
/* macro expansion: RFC 7208 §7.4 examples                            */

static const char *
expand(const char *ip, const char *spec, unsigned flags)
{
	static char out[SPF_EXPAND_MAX + 1];
	struct spf_macro_env e = {
	    .local = "strong-bad",
	    .odomain = "email.example.com",
	    .domain = "email.example.com",
	    .helo = "mx.example.org",
	    .receiver = "mx.example.net",
	    .ptr = "unknown",
	    .now = 1700000000,
	};
	uint8_t a[16];

	if (inet_pton(AF_INET, ip, a) == 1) {
		memcpy(e.ip, a, 4);
	} else {
		assert_int_equal(inet_pton(AF_INET6, ip, e.ip), 1);
		e.v6 = true;
	}
	if (spf_macro_expand(spec, strlen(spec), flags, &e, out, sizeof(out)) <
	    0)
		return NULL;
	return out;
}

static void
test_macro_rfc_vectors(void **state)
{
	static const char *const v4[][2] = {
	    {"%{s}", "strong-bad@email.example.com"},
	    {"%{o}", "email.example.com"},
	    {"%{d}", "email.example.com"},
	    {"%{d4}", "email.example.com"},
	    {"%{d3}", "email.example.com"},
	    {"%{d2}", "example.com"},
	    {"%{d1}", "com"},
	    {"%{dr}", "com.example.email"},
	    {"%{d2r}", "example.email"},
	    {"%{l}", "strong-bad"},
	    {"%{l-}", "strong.bad"},
	    {"%{lr}", "strong-bad"},
	    {"%{lr-}", "bad.strong"},
	    {"%{l1r-}", "strong"},
	    {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
	    {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
	    {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
	     "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
	    {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
	     "3.2.0.192.in-addr.strong.lp._spf.example.com"},
	    {"%{d2}.trusted-domains.example.net",
	     "example.com.trusted-domains.example.net"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v4) / sizeof(v4[0]); i++)
		assert_string_equal(expand("192.0.2.3", v4[i][0], 0), v4[i][1]);
	/* IPv6 %{i}: dotted nibbles (§7.3) */
	assert_string_equal(
	    expand("2001:db8::cb01", "%{ir}.%{v}._spf.%{d2}", 0),
	    "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8."
	    "b.d.0.1.0.0.2.ip6._spf.example.com");
	assert_string_equal(expand("2001:db8::cb01", "%{i}", 0),
			    "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
			    "0.0.0.0.c.b.0.1");
	assert_string_equal(expand("2001:db8::cb01", "%{c}", SPF_MACRO_EXP),
			    "2001:db8::cb01");
}

static void
test_macro_syntax(void **state)
{
	(void)state;
	assert_string_equal(expand("192.0.2.3", "a%%b%_c%-d", 0), "a%b c%20d");
	/* uppercase: URL-escaped (§7.3) */
	assert_string_equal(expand("192.0.2.3", "%{S}", 0),
			    "strong-bad%40email.example.com");
	assert_string_equal(expand("192.0.2.3", "%{d2R}", 0), "example.email");
	/* c, r, t only in explanations */
	assert_null(expand("192.0.2.3", "%{c}", 0));
	assert_null(expand("192.0.2.3", "%{r}", 0));
	assert_string_equal(
	    expand("192.0.2.3", "%{c} %{r} %{t}", SPF_MACRO_EXP),
	    "192.0.2.3 mx.example.net 1700000000");
	/* spaces only in explanations */
	assert_null(expand("192.0.2.3", "a b", 0));
	assert_null(expand("192.0.2.3", "%{d0}", 0));
	assert_null(expand("192.0.2.3", "%{x}", 0));
	assert_null(expand("192.0.2.3", "%(d)", 0));
	assert_null(expand("192.0.2.3", "%{d", 0));
	assert_null(expand("192.0.2.3", "x%", 0));
	assert_string_equal(expand("192.0.2.3", "%{d999}", 0),
			    "email.example.com");
	assert_true(spf_macro_uses_p("x.%{p}", 6));
	assert_true(spf_macro_uses_p("%{P2}", 5));
	assert_false(spf_macro_uses_p("%{d}.p", 6));
	assert_true(spf_domain_spec_valid("%{d}", 4));
	assert_true(spf_domain_spec_valid("x.%{d}.com.", 11));
	assert_false(spf_domain_spec_valid("%{d}com", 7));
	assert_false(spf_domain_spec_valid("museum", 6));
	assert_false(spf_domain_spec_valid("museum.", 7));
	assert_false(spf_domain_spec_valid("abc.123", 7));
	assert_true(spf_domain_spec_valid("foo.xn--zckzah", 14));
	assert_false(spf_domain_spec_valid("foo.-com", 8));
}

static void
test_name_fix(void **state)
{
	char n[600];
	size_t i;

	(void)state;
	snprintf(n, sizeof(n), "example.com.");
	assert_true(spf_name_fix(n));
	assert_string_equal(n, "example.com");
	snprintf(n, sizeof(n), "a..b");
	assert_false(spf_name_fix(n));
	/* longer than 253: labels go from the left (§7.3) */
	for (i = 0; i < 50; i++)
		memcpy(n + i * 6, "label.", 6);
	snprintf(n + 300, sizeof(n) - 300, "example.com");
	assert_true(spf_name_fix(n));
	assert_true(strlen(n) <= SPF_NAME_MAX);
	assert_string_equal(n + strlen(n) - 11, "example.com");
	memset(n, 'x', 64);
	snprintf(n + 64, sizeof(n) - 64, ".com");
	assert_false(spf_name_fix(n));
}

/* ---------------------------------------------------------------- */
/* record parser                                                      */

static int
parse(const char *rec, struct spf_record *r)
{
	char err[128];

	return spf_record_parse(rec, strlen(rec), r, err, sizeof(err));
}

static void
test_parser(void **state)
{
	static struct spf_record r;
	static const char *const bad[] = {
	    "v=spf1 -all.",
	    "v=spf1 all:x",
	    "v=spf1 a/33",
	    "v=spf1 a//129",
	    "v=spf1 a/24/64",
	    "v=spf1 ip4:1.2.3",
	    "v=spf1 ip4:1.2.3.4/032",
	    "v=spf1 ip4:01.2.3.4",
	    "v=spf1 ip6:::1//64",
	    "v=spf1 include",
	    "v=spf1 exists",
	    "v=spf1 ptr/0",
	    "v=spf1 redirect:x.com",
	    "v=spf1 1up=x",
	    "v=spf1 =all",
	    "v=spf1 exp=",
	    "v=spf1 redirect=a.com redirect=b.com",
	    "v=spf1 exp=a.com exp=b.com",
	    "v=spf1 foo=%x",
	    "v=spf1 a:%{c}.com",
	    "v=spf1 a\tmx",
	    "v=spf1 moo",
	    "v=spf10",
	    "v=spf1 include:a.com/24",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &r) == 0)
			fail_msg("accepted: %s", bad[i]);
	}
	assert_int_equal(
	    parse("V=SpF1 a/24//64 MX:%{d2}.x.org//0 -IP4:1.2.3.4/8 "
		  "ip6:2001:db8::/32 ~exists:%{i}.e.org "
		  "?include:i.org ptr:p.org Redirect=r.org "
		  "exp=e.%{d} x-y.z=%{c}   ",
		  &r),
	    0);
	assert_int_equal(r.nterms, 10);
	assert_int_equal(r.terms[0].kind, SPF_T_A);
	assert_int_equal(r.terms[0].cidr4, 24);
	assert_int_equal(r.terms[0].cidr6, 64);
	assert_int_equal(r.terms[1].kind, SPF_T_MX);
	assert_int_equal(r.terms[1].cidr4, 32);
	assert_int_equal(r.terms[1].cidr6, 0);
	assert_int_equal(r.terms[1].dlen, strlen("%{d2}.x.org"));
	assert_int_equal(r.terms[2].qual, '-');
	assert_int_equal(r.terms[2].cidr4, 8);
	assert_int_equal(r.terms[4].qual, '~');
	assert_int_equal(r.redirect, 7);
	assert_int_equal(r.exp, 8);
	assert_int_equal(r.terms[9].kind, SPF_T_UNKNOWN_MOD);
	assert_int_equal(parse("v=spf1", &r), 0);
	assert_int_equal(r.nterms, 0);
	assert_true(spf_record_is_spf("v=spf1 -all", 11));
	assert_false(spf_record_is_spf("v=spf1x", 7));
}

/* ---------------------------------------------------------------- */
/* evaluation, limits                                                 */

static void
test_include_redirect_limits(void **state)
{
	char rec[256];
	int i;

	(void)state;
	/* 1 + 9 nested includes = 10 DNS mechanisms: fine */
	zone_reset();
	for (i = 0; i < 10; i++) {
		char name[32];

		snprintf(name, sizeof(name), "i%d.example.com", i);
		snprintf(rec, sizeof(rec), "v=spf1 include:i%d.example.com",
			 i + 1);
		zone_add(name, "TXT", rec);
	}
	zone_add("i10.example.com", "TXT", "v=spf1 +all");
	zone_add("ok.example.com", "TXT", "v=spf1 include:i1.example.com -all");
	zone_add("over.example.com", "TXT",
		 "v=spf1 include:i0.example.com -all");
	assert_int_equal(check("192.0.2.1", "a@ok.example.com", "h"), SPF_PASS);
	assert_int_equal(check("192.0.2.1", "a@over.example.com", "h"),
			 SPF_PERMERROR);
	/* redirect counts too, and across the chain */
	zone_reset();
	zone_add("r.example.com", "TXT",
		 "v=spf1 a a a a a redirect=s.example.com");
	zone_add("s.example.com", "TXT", "v=spf1 mx mx mx mx ?all");
	zone_add("t.example.com", "TXT",
		 "v=spf1 a a a a a redirect=u.example.com");
	zone_add("u.example.com", "TXT", "v=spf1 mx mx mx mx mx ?all");
	zone_add("r.example.com", "A", "198.51.100.1");
	zone_add("s.example.com", "MX", "mx.example.com");
	zone_add("t.example.com", "A", "198.51.100.1");
	zone_add("u.example.com", "MX", "mx.example.com");
	zone_add("mx.example.com", "A", "198.51.100.2");
	assert_int_equal(check("192.0.2.1", "a@r.example.com", "h"),
			 SPF_NEUTRAL);
	assert_int_equal(check("192.0.2.1", "a@t.example.com", "h"),
			 SPF_PERMERROR);
	/* include loop */
	zone_reset();
	zone_add("l.example.com", "TXT", "v=spf1 include:l.example.com");
	assert_int_equal(check("192.0.2.1", "a@l.example.com", "h"),
			 SPF_PERMERROR);
}

static void
test_void_lookups(void **state)
{
	struct spf_opts o = {.void_max = 3};
	struct spf *s;

	(void)state;
	zone_reset();
	zone_add("v.example.com", "TXT",
		 "v=spf1 a:n1.example.com include:w.example.com ?all");
	zone_add("w.example.com", "TXT",
		 "v=spf1 exists:n2.example.com mx:n3.example.com -all");
	zone_add("n3.example.com", "A", "192.0.2.9"); /* exists, no MX */
	/* three void lookups across the include: one too many */
	assert_int_equal(check("192.0.2.1", "a@v.example.com", "h"),
			 SPF_PERMERROR);
	s = run_spf("192.0.2.1", "a@v.example.com", "h", &o);
	assert_int_equal(spf_result(s), SPF_NEUTRAL);
	spf_free(s);
	/* NXDOMAIN and timeouts */
	zone_reset();
	zone_add("t.example.com", "TXT", "v=spf1 a:slow.example.com -all");
	zone_add_n("slow.example.com", "timeout", "", 0);
	assert_int_equal(check("192.0.2.1", "a@t.example.com", "h"),
			 SPF_TEMPERROR);
	assert_int_equal(check("192.0.2.1", "a@none.example.com", "h"),
			 SPF_NONE);
}

static void
test_mx_ptr_limits(void **state)
{
	char name[32];
	int i;

	(void)state;
	zone_reset();
	zone_add("m.example.com", "TXT", "v=spf1 mx -all");
	for (i = 0; i < 11; i++) {
		snprintf(name, sizeof(name), "mx%d.example.com", i);
		zone_add("m.example.com", "MX", name);
	}
	assert_int_equal(check("192.0.2.1", "a@m.example.com", "h"),
			 SPF_PERMERROR);
	/* names of 253 octets plus the final dot, and longer ones */
	zone_reset();
	zone_add("m.example.com", "TXT", "v=spf1 mx ptr -all");
	for (i = 0; i < 3; i++) {
		char big[300];

		memset(big, 'a', sizeof(big));
		for (size_t k = 63; k < sizeof(big); k += 64)
			big[k] = '.';
		big[253 + i] = '\0';
		big[252 + i] = '.';
		zone_add("m.example.com", "MX", big);
		zone_add("1.2.0.192.in-addr.arpa", "PTR", big);
	}
	assert_int_equal(check("192.0.2.1", "a@m.example.com", "h"), SPF_FAIL);
	/* more than 10 PTR names: the 11th is not looked at */
	zone_reset();
	zone_add("p.example.com", "TXT", "v=spf1 ptr -all");
	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "h%d.other.net", i);
		zone_add("1.2.0.192.in-addr.arpa", "PTR", name);
	}
	zone_add("1.2.0.192.in-addr.arpa", "PTR", "h.p.example.com");
	zone_add("h.p.example.com", "A", "192.0.2.1");
	assert_int_equal(check("192.0.2.1", "a@p.example.com", "h"), SPF_FAIL);
	zone_reset();
	zone_add("p.example.com", "TXT", "v=spf1 ptr -all");
	zone_add("1.2.0.192.in-addr.arpa", "PTR", "h.p.example.com.");
	zone_add("h.p.example.com", "A", "192.0.2.1");
	assert_int_equal(check("192.0.2.1", "a@p.example.com", "h"), SPF_PASS);
}

static void
test_ipv6(void **state)
{
	struct spf *s;

	(void)state;
	zone_reset();
	zone_add("six.example.com", "TXT",
		 "v=spf1 exists:%{ir}.%{v}.%{d} ip4:192.0.2.0/24 -all");
	zone_add("1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0."
		 "0.2.ip6.six.example.com",
		 "A", "127.0.0.2");
	s = run_spf("2001:db8::cb01", "a@six.example.com", "h", NULL);
	assert_int_equal(spf_result(s), SPF_PASS);
	assert_non_null(strstr(spf_reason(s), "exists:"));
	assert_string_equal(spf_mechanism(s), "exists:%{ir}.%{v}.%{d}");
	spf_free(s);
	assert_int_equal(check("2001:db8::cb02", "a@six.example.com", "h"),
			 SPF_FAIL);
	/* IPv4-mapped IPv6 is IPv4 */
	assert_int_equal(check("::ffff:192.0.2.7", "a@six.example.com", "h"),
			 SPF_PASS);
}

static void
test_exp(void **state)
{
	struct spf_opts o = {.receiver = "mx.example.net", .now = 42};
	struct spf *s;

	(void)state;
	zone_reset();
	zone_add("e.example.com", "TXT",
		 "v=spf1 include:i.example.com -all exp=why.%{d}");
	zone_add("i.example.com", "TXT", "v=spf1 -all exp=nope.example.com");
	zone_add("why.e.example.com", "TXT",
		 "%{l} from %{c} not via %{r} at %{t}, see %{d}");
	zone_add("nope.example.com", "TXT", "wrong");
	s = run_spf("192.0.2.1", "Joe@e.example.com", "h", &o);
	assert_int_equal(spf_result(s), SPF_FAIL);
	assert_string_equal(spf_explanation(s),
			    "Joe from 192.0.2.1 not via mx.example.net at 42, "
			    "see e.example.com");
	assert_string_equal(spf_mechanism(s), "-all");
	spf_free(s);
	/* redirect replaces the exp of the first record */
	zone_reset();
	zone_add("r.example.com", "TXT",
		 "v=spf1 exp=x.example.com redirect=q.example.com");
	zone_add("q.example.com", "TXT", "v=spf1 -all");
	zone_add("x.example.com", "TXT", "no");
	s = run_spf("192.0.2.1", "a@r.example.com", "h", NULL);
	assert_int_equal(spf_result(s), SPF_FAIL);
	assert_null(spf_explanation(s));
	spf_free(s);
}

static void
test_queries_and_abort(void **state)
{
	struct spf_opts o = {.max_queries = 3};
	struct spf_answer a;
	struct spf *s;

	(void)state;
	zone_reset();
	zone_add("q.example.com", "TXT",
		 "v=spf1 a:a.example.com "
		 "a:b.example.com a:c.example.com -all");
	zone_add("a.example.com", "A", "192.0.2.9");
	zone_add("b.example.com", "A", "192.0.2.9");
	zone_add("c.example.com", "A", "192.0.2.1");
	s = run_spf("192.0.2.1", "a@q.example.com", "h", NULL);
	assert_int_equal(spf_result(s), SPF_PASS);
	assert_int_equal(spf_queries(s), 4);
	spf_free(s);
	s = run_spf("192.0.2.1", "a@q.example.com", "h", &o);
	assert_int_equal(spf_result(s), SPF_PERMERROR);
	spf_free(s);
	/* the caller's deadline */
	s = spf_new();
	assert_int_equal(
	    spf_start(s, "192.0.2.1", NULL, "a@q.example.com", "h", NULL),
	    SPF_STEP_QUERY);
	assert_int_equal(spf_query(s)->type, SPF_Q_TXT);
	assert_string_equal(spf_query(s)->name, "q.example.com");
	zone_resolve(spf_query(s), &a);
	assert_int_equal(spf_resume(s, &a), SPF_STEP_QUERY);
	spf_abort(s, "deadline");
	assert_int_equal(spf_result(s), SPF_TEMPERROR);
	assert_string_equal(spf_reason(s), "deadline");
	/* reuse; bad inputs */
	assert_int_equal(
	    spf_start(s, "nonsense", NULL, "a@q.example.com", "h", NULL),
	    SPF_STEP_DONE);
	assert_int_equal(spf_result(s), SPF_PERMERROR);
	assert_int_equal(
	    spf_start(s, "192.0.2.1", NULL, "", "[192.0.2.1]", NULL),
	    SPF_STEP_DONE);
	assert_int_equal(spf_result(s), SPF_NONE);
	assert_int_equal(
	    spf_start(s, "192.0.2.1", NULL, "a@localhost", "h", NULL),
	    SPF_STEP_DONE);
	assert_int_equal(spf_result(s), SPF_NONE);
	spf_free(s);
}

static void
test_p_macro(void **state)
{
	(void)state;
	zone_reset();
	zone_add("p.example.com", "TXT",
		 "v=spf1 exists:%{p}.ok.example.com -all");
	zone_add("1.2.0.192.in-addr.arpa", "PTR", "other.example.net");
	zone_add("1.2.0.192.in-addr.arpa", "PTR", "mail.p.example.com");
	zone_add("other.example.net", "A", "192.0.2.1");
	zone_add("mail.p.example.com", "A", "192.0.2.1");
	zone_add("mail.p.example.com.ok.example.com", "A", "127.0.0.2");
	/* the subdomain of <domain> is preferred */
	assert_int_equal(check("192.0.2.1", "a@p.example.com", "h"), SPF_PASS);
	/* unvalidated: "unknown" */
	assert_int_equal(check("192.0.2.5", "a@p.example.com", "h"), SPF_FAIL);
}

/* ---------------------------------------------------------------- */
/* the RFC 7208 suite                                                 */

static size_t
unesc(const char *tok, char *out, size_t outsz)
{
	size_t n = 0;
	unsigned v;

	assert_true(tok[0] == '=');
	for (tok++; *tok != '\0' && n + 1 < outsz; tok++) {
		if (*tok == '%' && sscanf(tok + 1, "%2x", &v) == 1) {
			out[n++] = (char)v;
			tok += 2;
		} else {
			out[n++] = *tok;
		}
	}
	out[n] = '\0';
	return n;
}

/* The repository: this file is compiled as <repo>/tests/unit/test_spf.c,
 * named relative to the build directory, where meson runs the test. */
static void
repo_dir(char *dst, size_t n)
{
	const char *f = __FILE__, *e = strstr(f, "tests/unit/test_spf.c");

	if (e == NULL || e == f)
		snprintf(dst, n, ".");
	else
		snprintf(dst, n, "%.*s", (int)(e - f - 1), f);
}

static int
convert_suite(const char *yml, const char *out)
{
	char repo[1024], script[1100];
	char *argv[5];
	pid_t pid;
	int st;

	repo_dir(repo, sizeof(repo));
	snprintf(script, sizeof(script), "%s/tests/spf/convert.py", repo);
	argv[0] = "python3";
	argv[1] = script;
	argv[2] = (char *)yml;
	argv[3] = (char *)out;
	argv[4] = NULL;
	if (posix_spawn(&pid, "/usr/bin/python3", NULL, NULL, argv, environ) !=
	    0)
		return -1;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return 0;
}

struct suite_count {
	int passed, failed, exp_case;
};

static void
suite_case(char **tok, int ntok, struct suite_count *c)
{
	char name[256], host[256], from[512], helo[512], exp[1024];
	const char *got_exp;
	enum spf_result r;
	struct spf *s;
	bool ok;

	assert_int_equal(ntok, 7);
	unesc(tok[1], name, sizeof(name));
	unesc(tok[2], host, sizeof(host));
	unesc(tok[3], from, sizeof(from));
	unesc(tok[4], helo, sizeof(helo));
	s = run_spf(host, from, helo, NULL);
	r = spf_result(s);
	ok = type_listed(tok[5], spf_result_name(r));
	got_exp = spf_explanation(s);
	if (ok && strcmp(tok[6], "-") != 0) {
		unesc(tok[6], exp, sizeof(exp));
		if (strcmp(exp, "DEFAULT") == 0) {
			ok = got_exp == NULL;
		} else if (got_exp == NULL || strcmp(got_exp, exp) != 0) {
			/* %{i} nibbles: we write lowercase (RFC 7208 §7.4
			 * example), the suite expects uppercase; see README */
			ok = got_exp != NULL && strcasecmp(got_exp, exp) == 0;
			c->exp_case += ok;
		}
	}
	if (ok) {
		c->passed++;
	} else {
		c->failed++;
		printf("FAIL %s: want %s%s%s, got %s (%s)%s%s\n", name, tok[5],
		       strcmp(tok[6], "-") != 0 ? " exp " : "",
		       strcmp(tok[6], "-") != 0 ? tok[6] : "",
		       spf_result_name(r), spf_reason(s),
		       got_exp != NULL ? " exp: " : "",
		       got_exp != NULL ? got_exp : "");
	}
	spf_free(s);
}

static void
suite_line(char *line, struct suite_count *c)
{
	char *tok[8], *p = line, name[300], val[VAL_LEN];
	int ntok = 0;
	size_t vlen;

	line[strcspn(line, "\n")] = '\0';
	while (ntok < 8 && (tok[ntok] = strsep(&p, " ")) != NULL)
		ntok++;
	if (ntok == 0 || tok[0][0] == '\0')
		return;
	if (strcmp(tok[0], "scenario") == 0) {
		zone_reset();
	} else if (strcmp(tok[0], "rr") == 0 && ntok == 4) {
		unesc(tok[1], name, sizeof(name));
		vlen = unesc(tok[3], val, sizeof(val));
		zone_add_n(name, tok[2], val, vlen);
	} else if (strcmp(tok[0], "exists") == 0 && ntok == 2) {
		unesc(tok[1], name, sizeof(name));
		zone_add_n(name, "exists", "", 0);
	} else if (strcmp(tok[0], "timeout") == 0 && ntok == 3) {
		unesc(tok[1], name, sizeof(name));
		zone_add_n(name, "timeout", tok[2], strlen(tok[2]));
	} else if (strcmp(tok[0], "test") == 0) {
		suite_case(tok, ntok, c);
	} else {
		fail_msg("bad converted line: %s", tok[0]);
	}
}

static void
test_rfc7208_suite(void **state)
{
	struct suite_count c = {0, 0, 0};
	char corpora[1100], yml[1200], line[8192];
	const char *env = getenv("TODOKU_CORPORA");
	const char *out = "spf-rfc7208-tests.txt";
	FILE *f;

	(void)state;
	if (env != NULL && env[0] != '\0') {
		snprintf(corpora, sizeof(corpora), "%s", env);
	} else {
		char repo[1024];

		repo_dir(repo, sizeof(repo));
		snprintf(corpora, sizeof(corpora), "%s/../shared/corpora",
			 repo);
	}
	snprintf(yml, sizeof(yml), "%s/spf/rfc7208-tests.yml", corpora);
	if (access(yml, R_OK) != 0)
		fail_msg("cannot read %s (set TODOKU_CORPORA)", yml);
	if (convert_suite(yml, out) != 0)
		fail_msg("tests/spf/convert.py failed on %s", yml);
	f = fopen(out, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		suite_line(line, &c);
	fclose(f);
	printf("spf rfc7208: %d passed, %d failed", c.passed, c.failed);
	if (c.exp_case > 0)
		printf(" (%d explanation%s matched ignoring case, see "
		       "tests/spf/README.md)",
		       c.exp_case, c.exp_case == 1 ? "" : "s");
	printf("\n");
	assert_int_equal(c.failed, 0);
	assert_int_equal(c.passed, 203);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_macro_rfc_vectors),
	    cmocka_unit_test(test_macro_syntax),
	    cmocka_unit_test(test_name_fix),
	    cmocka_unit_test(test_parser),
	    cmocka_unit_test(test_include_redirect_limits),
	    cmocka_unit_test(test_void_lookups),
	    cmocka_unit_test(test_mx_ptr_limits),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_exp),
	    cmocka_unit_test(test_queries_and_abort),
	    cmocka_unit_test(test_p_macro),
	    cmocka_unit_test(test_rfc7208_suite),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
