/* test_mx — the MX decision and address plan (mail/mx.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/mx.h"

static struct mx_decision d;
static struct mx_plan plan;

static const char *const self[] = {"mx.ours.example"};

static void
decide(enum mx_lookup l, const struct mx_record *r, size_t n, uint64_t seed)
{
	struct mx_query q = {
	    .domain = "example.com",
	    .lookup = l,
	    .records = r,
	    .nrecords = n,
	    .self = self,
	    .nself = 1,
	    .seed = seed,
	};

	mx_decide(&q, &d);
}

static void
assert_hosts(const char *const *names, size_t n)
{
	size_t i;

	assert_int_equal(d.action, MX_DELIVER);
	assert_null(d.status);
	assert_int_equal(d.nhosts, n);
	for (i = 0; i < n; i++)
		assert_string_equal(d.hosts[i].name, names[i]);
}

static void
test_sorted(void **state)
{
	static const struct mx_record r[] = {
	    {20, "b.example.com", false},
	    {10, "a.example.com.", false},
	    {30, "C.example.com", false},
	};
	static const char *const want[] = {"a.example.com", "b.example.com",
					   "C.example.com"};

	decide(MX_L_ANSWER, r, 3, 1);
	assert_hosts(want, 3);
	assert_int_equal(d.hosts[0].preference, 10);
	assert_int_equal(d.hosts[2].preference, 30);
	assert_int_equal(d.warnings, 0);
	assert_string_equal(d.warning, "");
	assert_string_equal(d.explain, "example.com: 3 MX hosts, first "
				       "a.example.com (preference 10)");
}

/* Order of the 8 equal-preference hosts as a string of letters. */
static void
shuffled(uint64_t seed, char *out)
{
	static const struct mx_record r[] = {
	    {10, "a", false},	 {10, "b", false},    {10, "c", false},
	    {10, "d", false},	 {5, "first", false}, {10, "e", false},
	    {10, "f", false},	 {10, "g", false},    {10, "h", false},
	    {50, "last", false},
	};
	size_t i;

	decide(MX_L_ANSWER, r, sizeof(r) / sizeof(r[0]), seed);
	assert_int_equal(d.action, MX_DELIVER);
	assert_int_equal(d.nhosts, 10);
	assert_string_equal(d.hosts[0].name, "first");
	assert_string_equal(d.hosts[9].name, "last");
	for (i = 0; i < 8; i++) {
		assert_int_equal(d.hosts[i + 1].preference, 10);
		assert_int_equal(strlen(d.hosts[i + 1].name), 1);
		out[i] = d.hosts[i + 1].name[0];
	}
	out[8] = '\0';
}

static void
test_shuffle(void **state)
{
	char a[9], b[9], c[9], seen[9];
	unsigned distinct = 0, s, i;

	shuffled(42, a);
	shuffled(42, b);
	assert_string_equal(a, b); /* deterministic */
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < 8; i++) /* a permutation */
		seen[a[i] - 'a'] = 1;
	for (i = 0; i < 8; i++)
		assert_int_equal(seen[i], 1);
	for (s = 1; s <= 20; s++) {
		shuffled(s, c);
		if (strcmp(c, a) != 0)
			distinct++;
	}
	assert_true(distinct >= 15); /* and varies across seeds */
}

static void
test_nodata_implicit(void **state)
{
	static const char *const want[] = {"example.com"};

	decide(MX_L_NODATA, NULL, 0, 1);
	assert_hosts(want, 1);
	assert_true(d.hosts[0].implicit);
	assert_int_equal(d.hosts[0].preference, 0);
	assert_non_null(strstr(d.explain, "implicit MX"));
}

static void
test_nxdomain(void **state)
{
	decide(MX_L_NXDOMAIN, NULL, 0, 1);
	assert_int_equal(d.action, MX_BOUNCE);
	assert_string_equal(d.status, "5.1.2");
	assert_int_equal(d.nhosts, 0);
	assert_string_equal(d.explain,
			    "domain example.com does not exist (NXDOMAIN)");
}

static void
test_tempfail_never_a_record(void **state)
{
	static const struct mx_record junk[] = {{10, "mx.example.com", false}};
	static const uint8_t v4[][4] = {{198, 51, 100, 80}};
	struct mx_addrs a = {MX_L_ANSWER, MX_L_NODATA, NULL, v4, 1, NULL, 0};
	struct mx_query q = {.domain = "example.com",
			     .lookup = MX_L_TEMPFAIL,
			     .detail = "SERVFAIL"};

	mx_decide(&q, &d);
	assert_int_equal(d.action, MX_DEFER);
	assert_string_equal(d.status, "4.4.3");
	assert_int_equal(d.nhosts, 0);
	assert_string_equal(d.explain,
			    "MX lookup for example.com failed temporarily "
			    "(SERVFAIL); not falling back to the A record "
			    "(RFC 5321 section 5.1); will retry");
	/* Even with records passed along, and even when the domain's own A
	 * record is handed to the planner, no address comes out. */
	decide(MX_L_TEMPFAIL, junk, 1, 1);
	assert_int_equal(d.nhosts, 0);
	mx_plan_addresses(&d, &a, MX_IP_ANY, 0, &plan);
	assert_int_equal(plan.action, MX_DEFER);
	assert_string_equal(plan.status, "4.4.3");
	assert_int_equal(plan.n, 0);
	assert_non_null(strstr(plan.explain, "not falling back"));
	decide(MX_L_BOGUS, NULL, 0, 1);
	assert_int_equal(d.action, MX_DEFER);
	assert_string_equal(d.status, "4.4.3");
	assert_non_null(strstr(d.explain, "DNSSEC"));
	/* the detail is text for people: its spaces stay spaces */
	q.lookup = MX_L_BOGUS;
	q.detail = "DNSSEC bogus";
	mx_decide(&q, &d);
	assert_non_null(strstr(d.explain, "(DNSSEC bogus);"));
	assert_null(strstr(d.explain, "\\032"));
	decide((enum mx_lookup)77, NULL, 0, 1); /* unknown: temporary */
	assert_int_equal(d.action, MX_DEFER);
}

static void
test_null_mx(void **state)
{
	static const struct mx_record null0[] = {{0, ".", false}};
	static const struct mx_record empty[] = {{0, "", false}};
	static const struct mx_record null10[] = {{10, ".", false}};
	static const struct mx_record mixed[] = {
	    {0, ".", false},
	    {10, "mx.example.com", false},
	};
	static const char *const want[] = {"mx.example.com"};

	decide(MX_L_ANSWER, null0, 1, 1);
	assert_int_equal(d.action, MX_BOUNCE);
	assert_string_equal(d.status, "5.1.10");
	assert_string_equal(d.explain, "example.com does not accept mail "
				       "(null MX, RFC 7505)");
	assert_int_equal(d.warnings, 0);
	decide(MX_L_ANSWER, empty, 1, 1);
	assert_string_equal(d.status, "5.1.10");
	decide(MX_L_ANSWER, null10, 1, 1);
	assert_string_equal(d.status, "5.1.10");
	assert_int_equal(d.warnings, MX_W_NULL_PREF);
	decide(MX_L_ANSWER, mixed, 2, 1);
	assert_hosts(want, 1);
	assert_int_equal(d.warnings, MX_W_NULL_MIXED);
	assert_non_null(strstr(d.warning, "RFC 7505"));
}

static void
test_self_first(void **state)
{
	static const struct mx_record r[] = {
	    {20, "b.example.com", false},
	    {10, "MX.Ours.Example.", false},
	};

	decide(MX_L_ANSWER, r, 2, 1);
	assert_int_equal(d.action, MX_BOUNCE);
	assert_string_equal(d.status, "5.4.6");
	assert_int_equal(d.nhosts, 0);
	assert_non_null(strstr(d.explain, "preference 10"));
	assert_non_null(strstr(d.explain, "mail loop"));
}

static void
test_self_middle_and_last(void **state)
{
	static const struct mx_record mid[] = {
	    {30, "c.example.com", false},
	    {20, "mx.ours.example", false},
	    {10, "a.example.com", false},
	    {20, "b.example.com", false}, /* equal to ours: dropped too */
	};
	static const struct mx_record last[] = {
	    {10, "a.example.com", false},
	    {20, "b.example.com", false},
	    {30, "mx.ours.example", false},
	};
	static const char *const want_mid[] = {"a.example.com"};
	static const char *const want_last[] = {"a.example.com",
						"b.example.com"};

	decide(MX_L_ANSWER, mid, 4, 1);
	assert_hosts(want_mid, 1);
	assert_int_equal(d.warnings, MX_W_SELF);
	decide(MX_L_ANSWER, last, 3, 1);
	assert_hosts(want_last, 2);
	assert_int_equal(d.warnings, MX_W_SELF);
}

static void
test_self_equal_best(void **state)
{
	static const struct mx_record r[] = {
	    {10, "a.example.com", false},
	    {10, "mx.ours.example", false},
	    {20, "b.example.com", false},
	};

	decide(MX_L_ANSWER, r, 3, 7);
	assert_int_equal(d.action, MX_BOUNCE);
	assert_string_equal(d.status, "5.4.6");
}

static void
test_self_implicit(void **state)
{
	struct mx_query q = {.domain = "MX.ours.example",
			     .lookup = MX_L_NODATA,
			     .self = self,
			     .nself = 1};

	mx_decide(&q, &d);
	assert_int_equal(d.action, MX_BOUNCE);
	assert_string_equal(d.status, "5.4.6");
}

static void
test_ip_literal_and_cname(void **state)
{
	static const struct mx_record r[] = {
	    {10, "192.0.2.1", false},
	    {20, "alias.example.com", true},
	    {30, "[2001:db8::1]", false},
	};

	decide(MX_L_ANSWER, r, 3, 1);
	assert_int_equal(d.action, MX_DELIVER);
	assert_int_equal(d.nhosts, 3);
	assert_string_equal(d.hosts[0].name, "192.0.2.1");
	assert_true(d.hosts[0].ip_literal);
	assert_true(d.hosts[1].cname);
	assert_false(d.hosts[1].ip_literal);
	assert_true(d.hosts[2].ip_literal);
	assert_int_equal(d.warnings, MX_W_IP_LITERAL | MX_W_CNAME);
	assert_non_null(strstr(d.warning, "IP address"));
	assert_non_null(strstr(d.warning, "; "));
	assert_non_null(strstr(d.warning, "CNAME"));
}

static void
test_dedupe_and_empty(void **state)
{
	static const struct mx_record dup[] = {
	    {30, "a.example.com", false},
	    {10, "A.example.com", false},
	    {20, "b.example.com", false},
	};
	static const char *const want[] = {"A.example.com", "b.example.com"};

	decide(MX_L_ANSWER, dup, 3, 1);
	assert_hosts(want, 2);
	assert_int_equal(d.hosts[0].preference, 10);
	/* ANSWER without records is not NODATA: no implicit MX. */
	decide(MX_L_ANSWER, NULL, 0, 1);
	assert_int_equal(d.action, MX_DEFER);
	assert_string_equal(d.status, "4.4.3");
	assert_int_equal(d.nhosts, 0);
}

static void
test_too_many(void **state)
{
	static struct mx_record r[MX_RECORDS_MAX + 5];
	static char names[MX_RECORDS_MAX + 5][16];
	size_t i;

	for (i = 0; i < MX_RECORDS_MAX + 5; i++) {
		snprintf(names[i], sizeof(names[i]), "mx%zu.example", i);
		r[i].preference = (uint16_t)(1000 - i);
		r[i].exchange = names[i];
	}
	decide(MX_L_ANSWER, r, MX_RECORDS_MAX + 5, 1);
	assert_int_equal(d.action, MX_DELIVER);
	assert_int_equal(d.nhosts, MX_HOSTS_MAX);
	assert_int_equal(d.warnings, MX_W_TOO_MANY);
	/* The most preferred of the records read come first. */
	assert_int_equal(d.hosts[0].preference, 1000 - (MX_RECORDS_MAX - 1));
}

static void
test_explain_escapes(void **state)
{
	struct mx_query q = {.domain = "evil.example\r\nX-Injected: 1",
			     .lookup = MX_L_NXDOMAIN};

	mx_decide(&q, &d);
	assert_null(strchr(d.explain, '\r'));
	assert_null(strchr(d.explain, '\n'));
	assert_non_null(strstr(d.explain, "evil.example\\013\\010X-Injected:"
					  "\\0321"));
}

/* --- addresses --- */

static const uint8_t a4[][4] = {{192, 0, 2, 1}, {192, 0, 2, 2}};
static const uint8_t a6[][16] = {{0x20, 0x01, 0x0d, 0xb8, [15] = 1},
				 {0x20, 0x01, 0x0d, 0xb8, [15] = 2}};
static const uint8_t b4[][4] = {{198, 51, 100, 1}};

static void
two_hosts(void)
{
	static const struct mx_record r[] = {
	    {10, "a.example.com", false},
	    {20, "b.example.com", false},
	};

	decide(MX_L_ANSWER, r, 2, 1);
	assert_int_equal(d.nhosts, 2);
}

/* The plan as a string: "a6 a4 b4" = host letter + family. */
static const char *
order(void)
{
	static char s[MX_ADDR_MAX * 4];
	size_t i, o = 0;

	s[0] = '\0';
	for (i = 0; i < plan.n; i++)
		o += (size_t)snprintf(
		    s + o, sizeof(s) - o, "%s%c%d%u", i > 0 ? " " : "",
		    'a' + plan.t[i].host, plan.t[i].family,
		    plan.t[i].family == 4 ? plan.t[i].addr[3]
					  : plan.t[i].addr[15]);
	return s;
}

static void
plan_policy(enum mx_ip_policy pol, size_t max)
{
	struct mx_addrs h[2] = {
	    {MX_L_ANSWER, MX_L_ANSWER, NULL, a4, 2, a6, 2},
	    {MX_L_ANSWER, MX_L_NODATA, NULL, b4, 1, NULL, 0},
	};

	two_hosts();
	mx_plan_addresses(&d, h, pol, max, &plan);
}

static void
test_policies(void **state)
{
	plan_policy(MX_IP_ANY, 0);
	assert_int_equal(plan.action, MX_DELIVER);
	assert_null(plan.status);
	assert_string_equal(order(), "a61 a41 a62 a42 b41");
	assert_memory_equal(plan.t[4].addr, ((uint8_t[]){198, 51, 100, 1}), 4);
	plan_policy(MX_IP_PREFER_V4, 0);
	assert_string_equal(order(), "a41 a42 a61 a62 b41");
	plan_policy(MX_IP_PREFER_V6, 0);
	assert_string_equal(order(), "a61 a62 a41 a42 b41");
	plan_policy(MX_IP_V4_ONLY, 0);
	assert_string_equal(order(), "a41 a42 b41");
	plan_policy(MX_IP_V6_ONLY, 0);
	assert_string_equal(order(), "a61 a62");
	assert_non_null(strstr(plan.explain, "ip=ipv6-only"));
	plan_policy(MX_IP_ANY, 3);
	assert_string_equal(order(), "a61 a41 a62");
	plan_policy(MX_IP_ANY, 1000); /* capped at MX_ADDR_MAX */
	assert_int_equal(plan.n, 5);
}

static void
test_default_max_and_dupes(void **state)
{
	static uint8_t many[20][4];
	struct mx_addrs h[2] = {
	    {MX_L_ANSWER, MX_L_NODATA, NULL, many, 20, NULL, 0},
	    {MX_L_ANSWER, MX_L_NODATA, NULL, many, 20, NULL, 0},
	};
	size_t i;

	for (i = 0; i < 20; i++) {
		many[i][0] = 10;
		many[i][3] = (uint8_t)(i / 2); /* pairs of duplicates */
	}
	two_hosts();
	mx_plan_addresses(&d, h, MX_IP_ANY, 0, &plan);
	assert_int_equal(plan.n, MX_ADDR_DEFAULT);
	for (i = 0; i < plan.n; i++) {
		assert_int_equal(plan.t[i].addr[3], i);
		assert_int_equal(plan.t[i].host, 0);
	}
	/* Same addresses on the second host are not tried twice. */
	mx_plan_addresses(&d, h, MX_IP_ANY, 64, &plan);
	assert_int_equal(plan.n, 10);
}

static void
test_all_temp(void **state)
{
	struct mx_addrs h[2] = {
	    {MX_L_TEMPFAIL, MX_L_TEMPFAIL, "timeout", NULL, 0, NULL, 0},
	    {MX_L_BOGUS, MX_L_TEMPFAIL, NULL, NULL, 0, NULL, 0},
	};

	two_hosts();
	mx_plan_addresses(&d, h, MX_IP_ANY, 0, &plan);
	assert_int_equal(plan.action, MX_DEFER);
	assert_string_equal(plan.status, "4.4.3");
	assert_int_equal(plan.n, 0);
	assert_non_null(strstr(plan.explain, "(timeout)"));
	/* One temporary failure among NXDOMAINs still defers. */
	h[0] = (struct mx_addrs){.a = MX_L_NXDOMAIN, .aaaa = MX_L_NXDOMAIN};
	mx_plan_addresses(&d, h, MX_IP_ANY, 0, &plan);
	assert_string_equal(plan.status, "4.4.3");
}

static void
test_no_addresses(void **state)
{
	struct mx_addrs h[2] = {
	    {MX_L_NXDOMAIN, MX_L_NXDOMAIN, NULL, NULL, 0, NULL, 0},
	    {MX_L_NODATA, MX_L_NODATA, NULL, NULL, 0, NULL, 0},
	};
	struct mx_addrs v4only[2] = {
	    {MX_L_ANSWER, MX_L_NODATA, NULL, a4, 2, NULL, 0},
	    {MX_L_ANSWER, MX_L_TEMPFAIL, NULL, b4, 1, NULL, 0},
	};

	two_hosts();
	mx_plan_addresses(&d, h, MX_IP_ANY, 0, &plan);
	assert_int_equal(plan.action, MX_BOUNCE);
	assert_string_equal(plan.status, "5.4.4");
	assert_non_null(strstr(plan.explain, "unable to route"));
	/* ipv6-only: the IPv4 addresses do not count ... */
	v4only[1].aaaa = MX_L_NODATA;
	mx_plan_addresses(&d, v4only, MX_IP_V6_ONLY, 0, &plan);
	assert_string_equal(plan.status, "5.4.4");
	assert_non_null(strstr(plan.explain, "ip=ipv6-only"));
	/* ... and neither does an IPv6 failure under ipv4-only. */
	h[1].aaaa = MX_L_TEMPFAIL;
	mx_plan_addresses(&d, h, MX_IP_V4_ONLY, 0, &plan);
	assert_string_equal(plan.status, "5.4.4");
	mx_plan_addresses(&d, h, MX_IP_ANY, 0, &plan);
	assert_string_equal(plan.status, "4.4.3");
}

static void
test_backup_when_first_fails(void **state)
{
	struct mx_addrs h[2] = {
	    {MX_L_TEMPFAIL, MX_L_TEMPFAIL, NULL, NULL, 0, NULL, 0},
	    {MX_L_ANSWER, MX_L_NODATA, NULL, b4, 1, NULL, 0},
	};

	two_hosts();
	mx_plan_addresses(&d, h, MX_IP_ANY, 0, &plan);
	assert_int_equal(plan.action, MX_DELIVER);
	assert_string_equal(order(), "b41");
	assert_non_null(strstr(plan.explain, "failed temporarily"));
}

static void
test_implicit_no_address(void **state)
{
	struct mx_addrs h = {.a = MX_L_NODATA, .aaaa = MX_L_NODATA};

	decide(MX_L_NODATA, NULL, 0, 1);
	mx_plan_addresses(&d, &h, MX_IP_ANY, 0, &plan);
	assert_string_equal(plan.status, "5.4.4");
	assert_non_null(strstr(plan.explain, "the domain itself"));
}

static void
test_bounce_copied(void **state)
{
	decide(MX_L_NXDOMAIN, NULL, 0, 1);
	mx_plan_addresses(&d, NULL, MX_IP_ANY, 0, &plan);
	assert_int_equal(plan.action, MX_BOUNCE);
	assert_string_equal(plan.status, "5.1.2");
	assert_string_equal(plan.explain, d.explain);
}

static void
test_policy_names(void **state)
{
	enum mx_ip_policy p;

	assert_true(mx_ip_policy_parse("prefer-ipv6", &p));
	assert_int_equal(p, MX_IP_PREFER_V6);
	assert_string_equal(mx_ip_policy_name(MX_IP_V4_ONLY), "ipv4-only");
	assert_false(mx_ip_policy_parse("ipv6", &p));
	assert_string_equal(mx_lookup_name(MX_L_NXDOMAIN), "NXDOMAIN");
}

/* Three hosts at preferences 10, 20, 30. */
static void
three_hosts(void)
{
	static const struct mx_record r[] = {
	    {10, "a.example.com", false},
	    {20, "b.example.com", false},
	    {30, "c.example.com", false},
	};

	decide(MX_L_ANSWER, r, 3, 1);
	assert_int_equal(d.nhosts, 3);
}

static void
test_self_by_address(void **state)
{
	static const uint8_t me4[][4] = {{198, 51, 100, 1}};
	static const uint8_t me6[][16] = {{0x20, 0x01, 0x0d, 0xb8, [15] = 2}};
	struct mx_self_addrs me = {me4, 1, NULL, 0};
	struct mx_addrs h[3] = {
	    {MX_L_ANSWER, MX_L_ANSWER, NULL, a4, 2, a6, 1},
	    {MX_L_ANSWER, MX_L_NODATA, NULL, b4, 1, NULL, 0},
	    {MX_L_ANSWER, MX_L_NODATA, NULL, a4, 1, NULL, 0},
	};

	/* b (20) is us by its A record: only a (10) is used */
	three_hosts();
	mx_plan_addresses_self(&d, h, &me, MX_IP_ANY, 0, &plan);
	assert_int_equal(plan.action, MX_DELIVER);
	assert_string_equal(order(), "a61 a41 a42");
	assert_non_null(strstr(plan.warning, "b.example.com"));
	assert_non_null(strstr(plan.warning, "198.51.100.1"));
	assert_non_null(strstr(plan.explain, "from 1 MX host "));
	/* without our addresses, b and c are used as before */
	mx_plan_addresses_self(&d, h, NULL, MX_IP_ANY, 0, &plan);
	assert_string_equal(order(), "a61 a41 a42 b41");
	assert_string_equal(plan.warning, "");
	/* even under ipv6-only, an IPv4 address that is ours marks us */
	mx_plan_addresses_self(&d, h, &me, MX_IP_V6_ONLY, 0, &plan);
	assert_string_equal(order(), "a61");
	/* a (10) is us by its second AAAA: nothing more preferred, 5.4.6 */
	me = (struct mx_self_addrs){NULL, 0, me6, 1};
	h[0].nv6 = 2;
	mx_plan_addresses_self(&d, h, &me, MX_IP_V4_ONLY, 0, &plan);
	assert_int_equal(plan.action, MX_BOUNCE);
	assert_string_equal(plan.status, "5.4.6");
	assert_int_equal(plan.n, 0);
	assert_non_null(strstr(plan.explain, "a.example.com"));
	assert_non_null(strstr(plan.explain, "2001:db8::2"));
	assert_non_null(strstr(plan.explain, "mail loop"));
	/* the more preferred host fails temporarily: defer, never us */
	me = (struct mx_self_addrs){me4, 1, NULL, 0};
	h[0] = (struct mx_addrs){.a = MX_L_TEMPFAIL, .aaaa = MX_L_TEMPFAIL};
	mx_plan_addresses_self(&d, h, &me, MX_IP_ANY, 0, &plan);
	assert_int_equal(plan.action, MX_DEFER);
	assert_string_equal(plan.status, "4.4.3");
	assert_int_equal(plan.n, 0);
}

static void
test_self_by_address_implicit(void **state)
{
	static const uint8_t me4[][4] = {{192, 0, 2, 2}};
	struct mx_self_addrs me = {me4, 1, NULL, 0};
	struct mx_addrs h = {MX_L_ANSWER, MX_L_NODATA, NULL, a4, 2, NULL, 0};

	decide(MX_L_NODATA, NULL, 0, 1);
	mx_plan_addresses_self(&d, &h, &me, MX_IP_ANY, 0, &plan);
	assert_int_equal(plan.action, MX_BOUNCE);
	assert_string_equal(plan.status, "5.4.6");
	assert_non_null(strstr(plan.explain, "the domain itself"));
	assert_non_null(strstr(plan.explain, "192.0.2.2"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sorted),
	    cmocka_unit_test(test_shuffle),
	    cmocka_unit_test(test_nodata_implicit),
	    cmocka_unit_test(test_nxdomain),
	    cmocka_unit_test(test_tempfail_never_a_record),
	    cmocka_unit_test(test_null_mx),
	    cmocka_unit_test(test_self_first),
	    cmocka_unit_test(test_self_middle_and_last),
	    cmocka_unit_test(test_self_equal_best),
	    cmocka_unit_test(test_self_implicit),
	    cmocka_unit_test(test_ip_literal_and_cname),
	    cmocka_unit_test(test_dedupe_and_empty),
	    cmocka_unit_test(test_too_many),
	    cmocka_unit_test(test_explain_escapes),
	    cmocka_unit_test(test_policies),
	    cmocka_unit_test(test_default_max_and_dupes),
	    cmocka_unit_test(test_all_temp),
	    cmocka_unit_test(test_no_addresses),
	    cmocka_unit_test(test_backup_when_first_fails),
	    cmocka_unit_test(test_implicit_no_address),
	    cmocka_unit_test(test_bounce_copied),
	    cmocka_unit_test(test_policy_names),
	    cmocka_unit_test(test_self_by_address),
	    cmocka_unit_test(test_self_by_address_implicit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
