/*
 * test_dmarc — DMARC (mail/dmarc.c): record parser, From helper, tree
 * walk question sequence, alignment, sp/np/psd, temperror, and the
 * corpus tables of corpora/dmarc/ (opendmarc, mailauth, PSL).
 *
 * A scripted stub zone answers the evaluator's questions and records
 * them, so tests can assert the exact walk. The corpus runner converts
 * the JSON and PSL files with tests/dmarc/convert.py at test time; the
 * cases treated differently because of DMARCbis (RFC 9989) are listed
 * in tests/dmarc/README.md and counted apart. The corpora live in
 * $TODOKU_CORPORA, by default <repo>/../shared/corpora.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "mail/dmarc.h"

extern char **environ;

/* ---------------------------------------------------------------- */
/* stub zone                                                          */

#define ZONE_MAX 64
#define LOG_MAX 80

struct zrr {
	char name[300];
	enum dmarc_qtype type;
	enum dmarc_rcode rcode;
	char txt[512];
};

static struct zrr zone[ZONE_MAX];
static size_t nzone;
/* what names not in the zone answer */
static enum dmarc_rcode zone_default = DMARC_DNS_NXDOMAIN;
static char zone_default_txt[512]; /* "" = none */
static char asked[LOG_MAX][300];
static size_t nasked;

static void
zone_reset(void)
{
	nzone = 0;
	nasked = 0;
	zone_default = DMARC_DNS_NXDOMAIN;
	zone_default_txt[0] = '\0';
}

static void
zone_add(const char *name, enum dmarc_qtype type, enum dmarc_rcode rc,
	 const char *txt)
{
	assert_true(nzone < ZONE_MAX);
	snprintf(zone[nzone].name, sizeof(zone[nzone].name), "%s", name);
	zone[nzone].type = type;
	zone[nzone].rcode = rc;
	snprintf(zone[nzone].txt, sizeof(zone[nzone].txt), "%s",
		 txt != NULL ? txt : "");
	nzone++;
}

static void
txt(const char *name, const char *rec)
{
	zone_add(name, DMARC_Q_TXT, DMARC_DNS_ANSWER, rec);
}

static const char *
qtype_name(enum dmarc_qtype t)
{
	static const char *const n[] = {"TXT", "A", "AAAA", "MX"};

	return n[t];
}

/* Answer q from the zone: every matching record; a name present with
 * another type only is NODATA. */
static void
zone_answer(const struct dmarc_query *q, struct dmarc_answer *a,
	    struct dmarc_rdata *rr, size_t rrmax)
{
	bool name_seen = false;
	size_t i;

	a->count = 0;
	a->rr = rr;
	a->rcode = zone_default;
	for (i = 0; i < nzone; i++) {
		if (strcasecmp(zone[i].name, q->name) != 0)
			continue;
		name_seen = true;
		if (zone[i].type != q->type)
			continue;
		if (zone[i].rcode != DMARC_DNS_ANSWER) {
			a->rcode = zone[i].rcode;
			a->count = 0;
			return;
		}
		assert_true(a->count < rrmax);
		rr[a->count].data = zone[i].txt;
		rr[a->count].len = strlen(zone[i].txt);
		a->count++;
	}
	if (a->count > 0) {
		a->rcode = DMARC_DNS_ANSWER;
	} else if (name_seen) {
		a->rcode = DMARC_DNS_NODATA;
	} else if (zone_default_txt[0] != '\0' && q->type == DMARC_Q_TXT) {
		rr[0].data = zone_default_txt;
		rr[0].len = strlen(zone_default_txt);
		a->count = 1;
		a->rcode = DMARC_DNS_ANSWER;
	}
}

static struct dmarc *
run_opts(const struct dmarc_input *in, const struct dmarc_opts *o)
{
	struct dmarc *d = dmarc_new();
	struct dmarc_rdata rr[8];
	struct dmarc_answer a;
	enum dmarc_step st;

	assert_non_null(d);
	nasked = 0;
	st = dmarc_start(d, in, o);
	while (st == DMARC_STEP_QUERY) {
		const struct dmarc_query *q = dmarc_query(d);

		assert_true(nasked < LOG_MAX);
		snprintf(asked[nasked++], sizeof(asked[0]), "%s %s",
			 qtype_name(q->type), q->name);
		zone_answer(q, &a, rr, 8);
		st = dmarc_resume(d, &a);
	}
	return d;
}

static struct dmarc *
run(const char *from, const char *spf, const char *dkim1, const char *dkim2)
{
	struct dmarc_ident k[2] = {{dkim1, true}, {dkim2, true}};
	struct dmarc_input in = {
	    .from_domain = from,
	    .spf = {spf, spf != NULL},
	    .dkim = k,
	    .ndkim = dkim2 != NULL   ? 2
		     : dkim1 != NULL ? 1
				     : 0,
	};

	return run_opts(&in, NULL);
}

/* The questions asked, joined by ", ". */
static const char *
asked_list(void)
{
	static char buf[4096];
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < nasked; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s",
				      i ? ", " : "", asked[i]);
	return buf;
}

/* ---------------------------------------------------------------- */
/* record parser                                                      */

static void
test_record_basic(void **state)
{
	const char *r = "v=DMARC1; p=Reject; sp=quarantine; np=reject; "
			"adkim=s; aspf=r; psd=n; t=y; fo=1:d; ri=3600; rf=afrf;"
			" rua=mailto:a@example.com!10m, mailto:b@example.net;"
			" ruf=mailto:f@example.com?subject=x; pct=20; x=y";
	struct dmarc_record rec;

	(void)state;
	assert_true(dmarc_record_is_dmarc(r, strlen(r)));
	assert_int_equal(dmarc_record_parse(r, strlen(r), &rec), DMARC_REC_OK);
	assert_int_equal(rec.p, DMARC_P_REJECT);
	assert_int_equal(rec.sp, DMARC_P_QUARANTINE);
	assert_int_equal(rec.np, DMARC_P_REJECT);
	assert_int_equal(rec.adkim, DMARC_ALIGN_STRICT);
	assert_int_equal(rec.aspf, DMARC_ALIGN_RELAXED);
	assert_int_equal(rec.psd, DMARC_PSD_N);
	assert_true(rec.testing);
	assert_int_equal(rec.fo, DMARC_FO_1 | DMARC_FO_D);
	assert_int_equal(rec.ri, 3600);
	assert_int_equal(rec.nrua, 2);
	assert_string_equal(rec.rua[0].addr, "a@example.com");
	assert_int_equal(rec.rua[0].max_size, 10ull << 20);
	assert_string_equal(rec.rua[1].addr, "b@example.net");
	assert_int_equal(rec.rua[1].max_size, 0);
	assert_int_equal(rec.nruf, 1);
	assert_string_equal(rec.ruf[0].addr, "f@example.com");
	assert_int_equal(rec.warnings, 0); /* pct= and x= are ignored */
}

static void
test_record_defaults_and_errors(void **state)
{
	const char *mixed = "v=DMARC1; p=none; adkim=x; aspf=; psd=q; t=1; "
			    "fo=0:z; ri=-1; rf=iodef; p=reject; junk; 9x=1";
	struct dmarc_record rec;
	const char *bad[] = {"",
			     "v=DMARC1p=none",
			     "v=DMARC10; p=none",
			     "p=none; v=DMARC1",
			     "v=dmarc1; p=none",
			     "v = DMARC2",
			     " ;v=DMARC1",
			     "spf1 v=DMARC1"};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    dmarc_record_parse(bad[i], strlen(bad[i]), &rec),
		    DMARC_REC_NOT_DMARC);
	/* whitespace around v and = is fine; V is a tag name */
	assert_int_equal(dmarc_record_parse(" V = DMARC1 ;p=none", 19, &rec),
			 DMARC_REC_OK);
	/* defaults */
	assert_int_equal(dmarc_record_parse("v=DMARC1", 8, &rec), DMARC_REC_OK);
	assert_int_equal(rec.p, DMARC_P_NONE);
	assert_int_equal(rec.warnings, DMARC_W_P_MISSING);
	assert_int_equal(rec.sp, DMARC_P_UNSET);
	assert_int_equal(rec.np, DMARC_P_UNSET);
	assert_int_equal(rec.adkim, DMARC_ALIGN_RELAXED);
	assert_int_equal(rec.psd, DMARC_PSD_U);
	assert_int_equal(rec.fo, DMARC_FO_0);
	assert_int_equal(rec.ri, 86400);
	assert_false(rec.testing);
	/* bad p without rua: unusable; with a usable rua: p=none */
	assert_int_equal(dmarc_record_parse("v=DMARC1; p=rej", 15, &rec),
			 DMARC_REC_BAD_POLICY);
	assert_int_equal(
	    dmarc_record_parse("v=DMARC1; p=reject; sp=x", 24, &rec),
	    DMARC_REC_BAD_POLICY);
	assert_int_equal(
	    dmarc_record_parse("v=DMARC1; np=bad; rua=ftp://x", 29, &rec),
	    DMARC_REC_BAD_POLICY);
	assert_int_equal(
	    dmarc_record_parse("v=DMARC1; p=rej; sp=reject; rua=mailto:r@x.org",
			       46, &rec),
	    DMARC_REC_OK);
	assert_int_equal(rec.p, DMARC_P_NONE);
	assert_int_equal(rec.sp, DMARC_P_UNSET);
	assert_true(rec.warnings & DMARC_W_POLICY);
	/* other bad values: default kept, warning set */
	assert_int_equal(dmarc_record_parse(mixed, strlen(mixed), &rec),
			 DMARC_REC_OK);
	assert_int_equal(rec.p, DMARC_P_NONE); /* the first p counts */
	assert_int_equal(rec.warnings,
			 DMARC_W_ADKIM | DMARC_W_ASPF | DMARC_W_PSD |
			     DMARC_W_T | DMARC_W_FO | DMARC_W_RI | DMARC_W_RF |
			     DMARC_W_DUP | DMARC_W_SYNTAX);
	assert_int_equal(rec.adkim, DMARC_ALIGN_RELAXED);
	assert_int_equal(rec.fo, DMARC_FO_0);
}

static void
test_record_uris(void **state)
{
	const char *r = "v=DMARC1;p=none;rua=mailto:a@b.c!x,ftp://x, "
			"mailto://abuse.com,mailto:ok@b.c!2k,mailto:@b.c,"
			"mailto:big@b.c!99999999999999999t";
	struct dmarc_record rec;
	char many[2048];
	size_t n, i;

	(void)state;
	assert_int_equal(dmarc_record_parse(r, strlen(r), &rec), DMARC_REC_OK);
	assert_int_equal(rec.nrua, 1);
	assert_string_equal(rec.rua[0].addr, "ok@b.c");
	assert_int_equal(rec.rua[0].max_size, 2048);
	assert_int_equal(rec.uris_dropped, 5);
	assert_true(rec.warnings & DMARC_W_URI);
	/* more than DMARC_URIS_MAX: kept up to the limit, rest counted */
	n = (size_t)snprintf(many, sizeof(many), "v=DMARC1; rua=");
	for (i = 0; i < DMARC_URIS_MAX + 3; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n,
				      "%smailto:r%zu@x.org", i ? "," : "", i);
	assert_int_equal(dmarc_record_parse(many, n, &rec), DMARC_REC_OK);
	assert_int_equal(rec.nrua, DMARC_URIS_MAX);
	assert_int_equal(rec.uris_dropped, 3);
}

/* ---------------------------------------------------------------- */
/* From helper and domains                                            */

static void
test_from_domain(void **state)
{
	struct {
		const char *v;
		enum dmarc_from want;
		const char *dom;
	} c[] = {
	    {"Joe <joe@Example.COM.>", DMARC_FROM_OK, "example.com"},
	    {"\"a@evil.test\" <joe@example.com>", DMARC_FROM_OK, "example.com"},
	    {"(x@evil.test) joe@example.com (y@evil.test)", DMARC_FROM_OK,
	     "example.com"},
	    {"a@example.com, B <b@EXAMPLE.com>", DMARC_FROM_OK, "example.com"},
	    {"a@example.com, b@example.net", DMARC_FROM_MULTIPLE, NULL},
	    {"", DMARC_FROM_NONE, NULL},
	    {"undisclosed-recipients:;", DMARC_FROM_NONE, NULL},
	    {"Joe", DMARC_FROM_BAD, NULL},
	    {"joe@[192.0.2.1]", DMARC_FROM_BAD, NULL},
	    {"a@b@example.com", DMARC_FROM_BAD, NULL},
	    {"<@example.com>", DMARC_FROM_BAD, NULL},
	    {"joe@exa mple.com", DMARC_FROM_BAD, NULL},
	    {"\"unterminated <joe@example.com>", DMARC_FROM_BAD, NULL},
	    {"(unterminated joe@example.com", DMARC_FROM_BAD, NULL},
	    {"joe@example..com", DMARC_FROM_BAD, NULL},
	    {"grp: a@example.com, b@example.com;", DMARC_FROM_OK,
	     "example.com"},
	    {"Joe\r\n <joe@example.com>", DMARC_FROM_OK, "example.com"},
	};
	char out[254];
	unsigned n;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		enum dmarc_from r = dmarc_from_domain(c[i].v, strlen(c[i].v),
						      out, sizeof(out), &n);

		if (r != c[i].want)
			fail_msg("%s: got %d want %d", c[i].v, r, c[i].want);
		if (c[i].dom != NULL)
			assert_string_equal(out, c[i].dom);
	}
	assert_int_equal(
	    dmarc_from_domain("a@x.org, b@y.org", 16, out, sizeof(out), &n),
	    DMARC_FROM_MULTIPLE);
	assert_int_equal(n, 2);
	assert_int_equal(
	    dmarc_from_domain("a\0@x.org", 8, out, sizeof(out), &n),
	    DMARC_FROM_BAD);
	/* an output buffer too small is refused, not overrun */
	assert_int_equal(dmarc_from_domain("a@example.com", 13, out, 5, NULL),
			 DMARC_FROM_BAD);
}

static void
test_domain_norm_and_walk(void **state)
{
	const char *names[DMARC_WALK_MAX];
	char out[300], big[300];
	size_t n;

	(void)state;
	assert_true(dmarc_domain_norm("..Mac.COM..", 11, out, sizeof(out)));
	assert_string_equal(out, "mac.com");
	assert_false(dmarc_domain_norm("mac...com", 9, out, sizeof(out)));
	assert_false(dmarc_domain_norm("...", 3, out, sizeof(out)));
	assert_false(dmarc_domain_norm("a b.com", 7, out, sizeof(out)));
	memset(big, 'a', 64);
	memcpy(big + 64, ".com", 5);
	assert_false(dmarc_domain_norm(big, 68, out, sizeof(out)));
	assert_true(dmarc_domain_norm(big + 1, 67, out, sizeof(out)));

	n = dmarc_walk_names("com", names);
	assert_int_equal(n, 1);
	n = dmarc_walk_names("a.mail.example.com", names);
	assert_int_equal(n, 4);
	assert_string_equal(names[1], "mail.example.com");
	assert_string_equal(names[3], "com");
	/* 10 labels: the name, then straight to its last 7 labels */
	n = dmarc_walk_names("a.b.c.d.e.f.g.h.example.com", names);
	assert_int_equal(n, DMARC_WALK_MAX);
	assert_string_equal(names[0], "a.b.c.d.e.f.g.h.example.com");
	assert_string_equal(names[1], "d.e.f.g.h.example.com");
	assert_string_equal(names[7], "com");
	/* 8 labels: one label at a time */
	n = dmarc_walk_names("a.b.c.d.e.f.example.com", names);
	assert_int_equal(n, 8);
	assert_string_equal(names[1], "b.c.d.e.f.example.com");
}

/* ---------------------------------------------------------------- */
/* evaluator                                                          */

static void
test_walk_sequence(void **state)
{
	struct dmarc *d;

	(void)state;
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=reject");
	d = run("a.b.mail.example.com", NULL, NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_FAIL);
	assert_string_equal(asked_list(), "TXT _dmarc.a.b.mail.example.com, "
					  "TXT _dmarc.b.mail.example.com, "
					  "TXT _dmarc.mail.example.com, "
					  "TXT _dmarc.example.com");
	assert_string_equal(dmarc_policy_domain(d), "example.com");
	assert_int_equal(dmarc_policy(d), DMARC_P_REJECT);
	assert_string_equal(dmarc_policy_tag(d), "p");
	assert_string_equal(dmarc_ar(d), "dmarc=fail (p=reject) "
					 "header.from=a.b.mail.example.com");
	dmarc_free(d);

	/* relaxed DKIM d=example.com: the org walks reuse the cache and
	 * add only _dmarc.com */
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=reject");
	d = run("a.b.mail.example.com", NULL, "Example.com", NULL);
	assert_int_equal(dmarc_result(d), DMARC_PASS);
	assert_int_equal(dmarc_queries(d), 5);
	assert_string_equal(asked[4], "TXT _dmarc.com");
	assert_string_equal(dmarc_org_domain(d), "example.com");
	assert_string_equal(dmarc_aligned_dkim(d), "example.com");
	assert_null(dmarc_aligned_spf(d));
	assert_int_equal(dmarc_disposition(d), DMARC_P_NONE);
	assert_string_equal(dmarc_ar(d), "dmarc=pass (p=reject) "
					 "header.from=a.b.mail.example.com");
	dmarc_free(d);

	/* a long name: 8 questions at most, then none */
	zone_reset();
	d = run("a.b.c.d.e.f.g.h.i.example.com", NULL, NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_NONE);
	assert_int_equal(dmarc_queries(d), 8);
	assert_string_equal(asked[1], "TXT _dmarc.e.f.g.h.i.example.com");
	assert_string_equal(
	    dmarc_ar(d),
	    "dmarc=none header.from=a.b.c.d.e.f.g.h.i.example.com");
	dmarc_free(d);

	/* identical identifier: one question only */
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=quarantine; adkim=s; aspf=s");
	d = run("example.com", "example.com", NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_PASS);
	assert_int_equal(dmarc_queries(d), 1);
	assert_string_equal(dmarc_aligned_spf(d), "example.com");
	dmarc_free(d);
}

static void
test_record_selection(void **state)
{
	struct dmarc *d;

	(void)state;
	/* two DMARC records at a name: both discarded, the walk goes on */
	zone_reset();
	txt("_dmarc.mail.example.com", "v=DMARC1; p=none");
	txt("_dmarc.mail.example.com", "v=DMARC1; p=reject");
	txt("_dmarc.mail.example.com", "unrelated");
	txt("_dmarc.example.com", "v=DMARC1; p=quarantine");
	d = run("mail.example.com", NULL, NULL, NULL);
	assert_string_equal(dmarc_policy_domain(d), "example.com");
	assert_int_equal(dmarc_policy(d), DMARC_P_QUARANTINE);
	dmarc_free(d);
	/* an unusable record stops the walk: no DMARC processing */
	zone_reset();
	txt("_dmarc.mail.example.com", "v=DMARC1; p=bogus");
	txt("_dmarc.example.com", "v=DMARC1; p=reject");
	d = run("mail.example.com", NULL, NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_NONE);
	assert_null(dmarc_record(d));
	assert_int_equal(dmarc_queries(d), 1);
	dmarc_free(d);
	/* a non-DMARC TXT record is not a record */
	zone_reset();
	txt("_dmarc.example.com", "v=spf1 -all");
	d = run("example.com", NULL, NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_NONE);
	dmarc_free(d);
}

static void
test_alignment_modes(void **state)
{
	struct dmarc *d;

	(void)state;
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=reject; adkim=s");
	d = run("example.com", NULL, "mail.example.com", NULL);
	assert_int_equal(dmarc_result(d), DMARC_FAIL);
	assert_int_equal(dmarc_queries(d), 1); /* strict: no walk */
	dmarc_free(d);
	d = run("example.com", "mail.example.com", NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_PASS); /* aspf=r */
	assert_string_equal(dmarc_aligned_spf(d), "mail.example.com");
	dmarc_free(d);
	/* outside the org domain: no walk for the identifier */
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=reject");
	d = run("example.com", "example.net", "notexample.com", NULL);
	assert_int_equal(dmarc_result(d), DMARC_FAIL);
	assert_string_equal(asked_list(),
			    "TXT _dmarc.example.com, TXT _dmarc.com");
	dmarc_free(d);
	/* a failed DKIM signature never aligns */
	{
		struct dmarc_ident k = {"example.com", false};
		struct dmarc_input in = {
		    .from_domain = "example.com", .dkim = &k, .ndkim = 1};

		zone_reset();
		txt("_dmarc.example.com", "v=DMARC1; p=reject");
		d = run_opts(&in, NULL);
		assert_int_equal(dmarc_result(d), DMARC_FAIL);
		dmarc_free(d);
	}
}

static void
test_psd(void **state)
{
	struct dmarc *d;

	(void)state;
	/* psd=y at the TLD: org domain is one label below it */
	zone_reset();
	txt("_dmarc.example", "v=DMARC1; p=reject; psd=y");
	d = run("a.b.example", NULL, "x.b.example", NULL);
	assert_string_equal(dmarc_policy_domain(d), "example");
	assert_string_equal(dmarc_policy_tag(d), "p");
	assert_int_equal(dmarc_result(d), DMARC_PASS);
	assert_string_equal(dmarc_org_domain(d), "b.example");
	dmarc_free(d);
	/* different registrations under the PSD do not align */
	d = run("a.b.example", NULL, "c.example", NULL);
	assert_int_equal(dmarc_result(d), DMARC_FAIL);
	dmarc_free(d);
	/* psd=n below an ordinary record: a separate organisation */
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=reject");
	txt("_dmarc.dept.example.com", "v=DMARC1; p=reject; psd=n");
	d = run("dept.example.com", NULL, "example.com", NULL);
	assert_int_equal(dmarc_result(d), DMARC_FAIL);
	assert_string_equal(dmarc_org_domain(d), "dept.example.com");
	assert_int_equal(dmarc_queries(d), 1);
	dmarc_free(d);
	d = run("example.com", NULL, "x.dept.example.com", NULL);
	assert_int_equal(dmarc_result(d), DMARC_FAIL);
	dmarc_free(d);
	/* without psd: the record with the fewest labels wins */
	d = run("example.com", NULL, "x.example.com", NULL);
	assert_int_equal(dmarc_result(d), DMARC_PASS);
	dmarc_free(d);
	/* psd=y at the From domain itself: the PSD is its own org domain,
	 * while a name below it is a registration of its own */
	zone_reset();
	txt("_dmarc.gov.example", "v=DMARC1; p=reject; psd=y");
	d = run("gov.example", NULL, "mail.gov.example", NULL);
	assert_int_equal(dmarc_result(d), DMARC_FAIL);
	assert_string_equal(dmarc_org_domain(d), "gov.example");
	dmarc_free(d);
}

static void
test_sp_np(void **state)
{
	struct dmarc_input in = {.from_domain = "nx.example.com"};
	struct dmarc *d;

	(void)state;
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=none; sp=quarantine; np=reject");
	zone_add("www.example.com", DMARC_Q_A, DMARC_DNS_ANSWER, "");
	zone_add("mx.example.com", DMARC_Q_MX, DMARC_DNS_ANSWER, "");
	/* the From domain exists: sp */
	d = run("www.example.com", NULL, NULL, NULL);
	assert_int_equal(dmarc_policy(d), DMARC_P_QUARANTINE);
	assert_string_equal(dmarc_policy_tag(d), "sp");
	assert_string_equal(asked[nasked - 1], "A www.example.com");
	dmarc_free(d);
	/* exists through MX only: A and AAAA are NODATA */
	d = run("mx.example.com", NULL, NULL, NULL);
	assert_string_equal(dmarc_policy_tag(d), "sp");
	assert_string_equal(
	    asked_list(), "TXT _dmarc.mx.example.com, TXT _dmarc.example.com, "
			  "A mx.example.com, AAAA mx.example.com, "
			  "MX mx.example.com");
	dmarc_free(d);
	/* NXDOMAIN: np */
	nasked = 0;
	d = run("nx.example.com", NULL, NULL, NULL);
	assert_int_equal(dmarc_policy(d), DMARC_P_REJECT);
	assert_string_equal(dmarc_policy_tag(d), "np");
	assert_string_equal(dmarc_ar(d), "dmarc=fail (np=reject) "
					 "header.from=nx.example.com");
	assert_string_equal(asked[nasked - 1], "A nx.example.com");
	dmarc_free(d);
	/* the caller says it exists: no question */
	nasked = 0;
	in.from_exists = DMARC_EXISTS_YES;
	d = run_opts(&in, NULL);
	assert_string_equal(dmarc_policy_tag(d), "sp");
	assert_int_equal(nasked, 2);
	dmarc_free(d);
	in.from_exists = DMARC_EXISTS_NO;
	d = run_opts(&in, NULL);
	assert_string_equal(dmarc_policy_tag(d), "np");
	dmarc_free(d);
	/* existence check failing: temperror */
	zone_add("tf.example.com", DMARC_Q_A, DMARC_DNS_TIMEOUT, "");
	d = run("tf.example.com", NULL, NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_TEMPERROR);
	dmarc_free(d);
	/* np is not consulted at the From domain itself, nor on pass */
	d = run("example.com", NULL, NULL, NULL);
	assert_string_equal(dmarc_policy_tag(d), "p");
	dmarc_free(d);
	nasked = 0;
	d = run("nx.example.com", NULL, "nx.example.com", NULL);
	assert_int_equal(dmarc_result(d), DMARC_PASS);
	assert_string_equal(dmarc_policy_tag(d), "sp");
	assert_int_equal(nasked, 2);
	dmarc_free(d);
	/* no sp: p for subdomains */
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=reject");
	d = run("sub.example.com", NULL, NULL, NULL);
	assert_string_equal(dmarc_policy_tag(d), "p");
	assert_int_equal(dmarc_policy(d), DMARC_P_REJECT);
	dmarc_free(d);
}

static void
test_testing_flag(void **state)
{
	struct dmarc *d;

	(void)state;
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=reject; t=y");
	d = run("example.com", NULL, NULL, NULL);
	assert_int_equal(dmarc_policy(d), DMARC_P_REJECT);
	assert_int_equal(dmarc_disposition(d), DMARC_P_QUARANTINE);
	assert_string_equal(dmarc_ar(d), "dmarc=fail (p=reject dis=quarantine)"
					 " header.from=example.com");
	dmarc_free(d);
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=quarantine; t=y");
	d = run("example.com", NULL, NULL, NULL);
	assert_int_equal(dmarc_disposition(d), DMARC_P_NONE);
	dmarc_free(d);
}

static void
test_temperror(void **state)
{
	struct dmarc *d;

	(void)state;
	/* during policy discovery */
	zone_reset();
	zone_add("_dmarc.example.com", DMARC_Q_TXT, DMARC_DNS_TEMPFAIL, NULL);
	d = run("mail.example.com", NULL, NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_TEMPERROR);
	assert_int_equal(dmarc_policy(d), DMARC_P_UNSET);
	assert_string_equal(dmarc_ar(d),
			    "dmarc=temperror header.from=mail.example.com");
	assert_non_null(strstr(dmarc_reason(d), "_dmarc.example.com"));
	dmarc_free(d);
	/* during the org walk of an identifier */
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=reject");
	zone_add("_dmarc.mail.example.com", DMARC_Q_TXT, DMARC_DNS_TIMEOUT,
		 NULL);
	d = run("example.com", "mail.example.com", NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_TEMPERROR);
	dmarc_free(d);
	/* ... unless another identifier aligns */
	d = run("example.com", "mail.example.com", "example.com", NULL);
	assert_int_equal(dmarc_result(d), DMARC_PASS);
	assert_null(dmarc_aligned_spf(d));
	dmarc_free(d);
	/* during the org walk of the From domain */
	zone_reset();
	txt("_dmarc.example.com", "v=DMARC1; p=reject");
	zone_add("_dmarc.com", DMARC_Q_TXT, DMARC_DNS_TEMPFAIL, NULL);
	d = run("example.com", "mail.example.com", NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_TEMPERROR);
	dmarc_free(d);
	/* abort */
	{
		struct dmarc_input in = {.from_domain = "example.com"};
		struct dmarc *e = dmarc_new();

		assert_int_equal(dmarc_start(e, &in, NULL), DMARC_STEP_QUERY);
		dmarc_abort(e, "deadline");
		assert_int_equal(dmarc_result(e), DMARC_TEMPERROR);
		assert_string_equal(dmarc_reason(e), "aborted: deadline");
		dmarc_free(e);
	}
}

static void
test_limits_and_input(void **state)
{
	struct dmarc_opts o = {.max_queries = 2};
	struct dmarc_input in = {.from_domain = "a.b.example.com"};
	struct dmarc *d;

	(void)state;
	zone_reset();
	d = run_opts(&in, &o);
	assert_int_equal(dmarc_result(d), DMARC_PERMERROR);
	assert_int_equal(dmarc_queries(d), 2);
	dmarc_free(d);
	d = run("bad domain", NULL, NULL, NULL);
	assert_int_equal(dmarc_result(d), DMARC_PERMERROR);
	assert_string_equal(dmarc_ar(d), "dmarc=permerror");
	dmarc_free(d);
	/* a From name too long for a _dmarc prefix: its parents still */
	{
		char name[300];

		memset(name, 'a', 60);
		memset(name + 61, 'b', 60);
		memset(name + 122, 'c', 60);
		memset(name + 183, 'd', 60);
		name[60] = name[121] = name[182] = '.';
		memcpy(name + 243, ".example", 9);
		zone_reset();
		txt("_dmarc.example", "v=DMARC1; p=reject");
		d = run(name, NULL, NULL, NULL);
		assert_int_equal(dmarc_result(d), DMARC_FAIL);
		assert_int_equal(dmarc_queries(d), 4);
		dmarc_free(d);
	}
}

/* ---------------------------------------------------------------- */
/* corpus: PSL (tests only, RFC 7489 Organizational Domain)          */

static char **psl_rules;
static size_t npsl, psl_cap;
static bool psl_sorted;

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
psl_has(const char *r)
{
	return bsearch(&r, psl_rules, npsl, sizeof(char *), cmp_str) != NULL;
}

/* Labels of the public suffix of name (>= 1: the "*" default rule). */
static size_t
psl_suffix_labels(const char *name)
{
	const char *suf[130];
	size_t n = 0, k, best = 1;
	char rule[300];
	const char *p = name;

	suf[n++] = name;
	while ((p = strchr(p, '.')) != NULL && n < 130)
		suf[n++] = ++p;
	/* suf[i] has n - i labels */
	for (k = 1; k <= n; k++) {
		const char *s = suf[n - k];

		snprintf(rule, sizeof(rule), "!%s", s);
		if (psl_has(rule))
			return k - 1;
		if (k > 1)
			snprintf(rule, sizeof(rule), "*.%s", suf[n - k + 1]);
		if (psl_has(s) || (k > 1 && psl_has(rule)))
			best = k;
	}
	return best;
}

static bool
psl_org(void *ctx, const char *name, char *out, size_t outsz)
{
	size_t n = 1, k;
	const char *p;

	(void)ctx;
	if (name[0] == '.' || name[0] == '\0')
		return false;
	for (p = name; *p != '\0'; p++)
		n += *p == '.';
	k = psl_suffix_labels(name) + 1;
	if (k > n)
		return false;
	for (p = name; n > k; n--)
		p = strchr(p, '.') + 1;
	snprintf(out, outsz, "%s", p);
	return true;
}

/* ---------------------------------------------------------------- */
/* corpus plumbing                                                    */

static void
repo_dir(char *dst, size_t n)
{
	const char *f = __FILE__, *e = strstr(f, "tests/unit/test_dmarc.c");

	if (e == NULL || e == f)
		snprintf(dst, n, ".");
	else
		snprintf(dst, n, "%.*s", (int)(e - f - 1), f);
}

static void
corpora_dir(char *dst, size_t n)
{
	const char *env = getenv("TODOKU_CORPORA");
	char repo[1024];

	if (env != NULL && env[0] != '\0') {
		snprintf(dst, n, "%s", env);
		return;
	}
	repo_dir(repo, sizeof(repo));
	snprintf(dst, n, "%s/../shared/corpora", repo);
}

static int
convert(const char *corpora, const char *out)
{
	char repo[1024], script[1100];
	char *argv[5];
	pid_t pid;
	int st;

	repo_dir(repo, sizeof(repo));
	snprintf(script, sizeof(script), "%s/tests/dmarc/convert.py", repo);
	argv[0] = "python3";
	argv[1] = script;
	argv[2] = (char *)corpora;
	argv[3] = (char *)out;
	argv[4] = NULL;
	if (posix_spawn(&pid, "/usr/bin/python3", NULL, NULL, argv, environ) !=
	    0)
		return -1;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decode s in place. */
static char *
unq(char *s)
{
	char *w = s, *r = s;

	while (*r != '\0') {
		if (r[0] == '%' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
			*w++ = (char)(hexval(r[1]) * 16 + hexval(r[2]));
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return s;
}

struct count {
	int passed, failed, bis;
};

static void
count_case(struct count *c, bool ok, bool deviation, const char *table,
	   const char *id, const char *got)
{
	if (ok && !deviation) {
		c->passed++;
	} else if (!ok && deviation) {
		c->bis++;
	} else {
		c->failed++;
		printf("FAIL dmarc %s case %s: %s%s\n", table, id,
		       deviation ? "listed as a DMARCbis deviation but passes; "
				 : "",
		       got);
	}
}

static void
print_count(const char *table, const struct count *c, int want)
{
	printf("dmarc %s: %d passed, %d failed", table, c->passed, c->failed);
	if (c->bis > 0)
		printf(" (%d treated differently under DMARCbis, see "
		       "tests/dmarc/README.md)",
		       c->bis);
	printf("\n");
	if (c->failed != 0 || c->passed + c->bis < want)
		fail_msg("dmarc %s: %d cases ran, %d failed (want %d)", table,
			 c->passed + c->bis + c->failed, c->failed, want);
}

/* ---------------------------------------------------------------- */
/* corpus: opendmarc tables                                           */

static bool
listed(const char *id, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, id) == 0)
			return true;
	return false;
}

/* Read a TSV (header skipped): calls fn with the fields of each row. */
static void
read_tsv(const char *path, void (*fn)(char **f, int nf, struct count *c),
	 struct count *c)
{
	char line[2048], *f[8], *p;
	FILE *fp = fopen(path, "r");
	int nf, row = 0;

	if (fp == NULL)
		fail_msg("cannot read %s (set TODOKU_CORPORA)", path);
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (row++ == 0 || line[0] == '\0')
			continue;
		p = line;
		for (nf = 0; nf < 8 && (f[nf] = strsep(&p, "\t")) != NULL; nf++)
			;
		fn(f, nf, c);
	}
	fclose(fp);
}

/* RFC 9989 differences (tests/dmarc/README.md) */
static const char *const parse_bis[] = {"5", "14", "15", NULL};
static const char *const from_bis[] = {"7", "8", NULL};

static const char *
parse_outcome(const char *rec)
{
	unsigned recoverable = DMARC_W_URI | DMARC_W_P_MISSING;
	struct dmarc_record r;
	enum dmarc_parse ps = dmarc_record_parse(rec, strlen(rec), &r);

	if (rec[0] == '\0')
		return "DMARC_PARSE_ERROR_EMPTY";
	if (ps == DMARC_REC_NOT_DMARC)
		return "DMARC_PARSE_ERROR_BAD_VERSION";
	if (ps == DMARC_REC_BAD_POLICY || (r.warnings & ~recoverable) != 0)
		return "DMARC_PARSE_ERROR_BAD_VALUE";
	return "DMARC_PARSE_OKAY";
}

static void
parse_row(char **f, int nf, struct count *c)
{
	const char *got;

	assert_int_equal(nf, 3);
	got = parse_outcome(f[1]);
	count_case(c, strcmp(got, f[2]) == 0, listed(f[0], parse_bis),
		   "opendmarc record-parse", f[0], got);
}

static bool
psl_aligned(const char *a, const char *b, bool strict)
{
	char na[300], nb[300], oa[300], ob[300];

	if (!dmarc_domain_norm(a, strlen(a), na, sizeof(na)) ||
	    !dmarc_domain_norm(b, strlen(b), nb, sizeof(nb)))
		return false;
	if (strict || strcmp(na, nb) == 0)
		return strcmp(na, nb) == 0;
	if (!psl_org(NULL, na, oa, sizeof(oa)))
		snprintf(oa, sizeof(oa), "%s", na);
	if (!psl_org(NULL, nb, ob, sizeof(ob)))
		snprintf(ob, sizeof(ob), "%s", nb);
	return strcmp(oa, ob) == 0;
}

static void
align_row(char **f, int nf, struct count *c)
{
	bool got;

	assert_int_equal(nf, 5);
	got = psl_aligned(f[1], f[2], strcmp(f[3], "strict") == 0);
	count_case(c, got == (strcmp(f[4], "yes") == 0), false,
		   "opendmarc alignment", f[0],
		   got ? "aligned" : "not aligned");
}

static void
from_row(char **f, int nf, struct count *c)
{
	char dom[254] = "";
	enum dmarc_from r;

	assert_int_equal(nf, 3);
	r = dmarc_from_domain(f[1], strlen(f[1]), dom, sizeof(dom), NULL);
	count_case(c, r == DMARC_FROM_OK && strcmp(dom, f[2]) == 0,
		   listed(f[0], from_bis), "opendmarc from-domain", f[0],
		   r == DMARC_FROM_OK ? dom : "no single domain");
}

static void
test_corpus_opendmarc(void **state)
{
	static const struct {
		const char *file, *name;
		void (*fn)(char **, int, struct count *);
		int want;
	} t[] = {
	    {"record-parse.tsv", "opendmarc record-parse", parse_row, 19},
	    {"alignment.tsv", "opendmarc alignment", align_row, 10},
	    {"from-domain.tsv", "opendmarc from-domain", from_row, 13},
	};
	char corpora[1100], path[1300];
	size_t i;

	(void)state;
	assert_true(npsl > 0); /* loaded by the PSL test */
	corpora_dir(corpora, sizeof(corpora));
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct count c = {0, 0, 0};

		snprintf(path, sizeof(path), "%s/dmarc/opendmarc/%s", corpora,
			 t[i].file);
		read_tsv(path, t[i].fn, &c);
		print_count(t[i].name, &c, t[i].want);
	}
}

/* ---------------------------------------------------------------- */
/* corpus: PSL and mailauth (converted)                               */

#define MA_MAX 16

struct ma_case {
	char id[16];
	char from[4][256];
	int nfrom;
	char dkim[MA_MAX][256];
	int ndkim;
	char spf[256];
	char expect[MA_MAX][2][256];
	int nexpect;
};

static struct ma_case mc;
/* 6, 8: pct=; 23: one From domain in two addresses */
static const char *const ma_bis[] = {"6", "8", "23", NULL};

static bool
ma_check(struct dmarc *d, enum dmarc_from fr, const char *k, const char *v,
	 bool *pct)
{
	const struct dmarc_record *r = dmarc_record(d);

	if (strcmp(k, "dmarc_result") == 0) {
		if (fr == DMARC_FROM_MULTIPLE)
			return strstr(v, "not evaluated") != NULL;
		return strcmp(v, dmarc_result_name(dmarc_result(d))) == 0;
	}
	if (strcmp(k, "pct") == 0) {
		*pct = true; /* RFC 9989 removed pct=: never reported */
		return false;
	}
	if (strcmp(k, "applied_policy") == 0)
		return strcmp(v, dmarc_policy_name(dmarc_policy(d))) == 0;
	if (strcmp(k, "policy_domain") == 0)
		return strcmp(v, dmarc_policy_domain(d)) == 0;
	if (strcmp(k, "header_from_domain") == 0)
		return strcmp(v, dmarc_from(d)) == 0;
	if (strcmp(k, "aligned_spf_domain") == 0)
		return dmarc_aligned_spf(d) != NULL &&
		       strcmp(v, dmarc_aligned_spf(d)) == 0;
	if (strcmp(k, "dkim_aligned") == 0)
		return (dmarc_aligned_dkim(d) != NULL) ==
		       (strcmp(v, "true") == 0);
	if (r == NULL)
		return false;
	if (strcmp(k, "p") == 0)
		return strcmp(v, dmarc_policy_name(r->p)) == 0;
	if (strcmp(k, "sp") == 0)
		return strcmp(v, dmarc_policy_name(r->sp)) == 0;
	if (strcmp(k, "dkim_alignment_mode") == 0 ||
	    strcmp(k, "spf_alignment_mode") == 0) {
		uint8_t m = k[0] == 'd' ? r->adkim : r->aspf;

		return strcmp(v, m == DMARC_ALIGN_STRICT ? "strict"
							 : "relaxed") == 0;
	}
	fail_msg("mailauth: unknown expectation %s", k);
	return false;
}

static void
ma_run(struct count *c, bool legacy)
{
	struct dmarc_ident k[MA_MAX], s = {mc.spf, mc.spf[0] != '\0'};
	struct dmarc_opts o = {.org_domain = legacy ? psl_org : NULL};
	struct dmarc_input in = {.spf = s, .dkim = k};
	char hdr[1200], dom[254] = "", got[600];
	enum dmarc_from fr;
	struct dmarc *d;
	bool ok = true, pct = false;
	int i, n = 0;

	for (i = 0; i < mc.nfrom; i++)
		n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "%s%s",
			      i ? ", " : "", mc.from[i]);
	fr = dmarc_from_domain(hdr, strlen(hdr), dom, sizeof(dom), NULL);
	for (i = 0; i < mc.ndkim; i++) {
		k[i].domain = mc.dkim[i];
		k[i].pass = true;
	}
	in.ndkim = (size_t)mc.ndkim;
	in.from_domain = fr == DMARC_FROM_OK ? dom : NULL;
	nasked = 0;
	d = run_opts(&in, &o);
	for (i = 0; i < mc.nexpect; i++) {
		bool p = false;

		if (!ma_check(d, fr, mc.expect[i][0], mc.expect[i][1], &p) &&
		    !p)
			ok = false;
		pct |= p;
	}
	snprintf(got, sizeof(got), "%s; %s; asked %s", dmarc_ar(d),
		 dmarc_reason(d), asked_list());
	/* a pct= case is a deviation only when all else matched */
	count_case(c, ok && !pct, listed(mc.id, ma_bis) && (ok || !pct),
		   legacy ? "mailauth (RFC 7489 PSL mode)" : "mailauth", mc.id,
		   got);
	dmarc_free(d);
}

static void
ma_line(char **tok, int ntok, struct count *walk, struct count *legacy)
{
	const char *kind = tok[0];

	if (strcmp(kind, "ma-case") == 0) {
		memset(&mc, 0, sizeof(mc));
		zone_reset();
		snprintf(mc.id, sizeof(mc.id), "%s", unq(tok[1]));
	} else if (strcmp(kind, "ma-txt") == 0 && ntok == 3) {
		txt(unq(tok[1]), unq(tok[2]));
	} else if (strcmp(kind, "ma-nx") == 0) {
		zone_add(unq(tok[1]), DMARC_Q_TXT, DMARC_DNS_NXDOMAIN, NULL);
	} else if (strcmp(kind, "ma-other") == 0) {
		if (strcmp(tok[1], "TIMEOUT") == 0)
			zone_default = DMARC_DNS_TIMEOUT;
		else if (strcmp(tok[1], "TXT") == 0 && ntok == 3)
			snprintf(zone_default_txt, sizeof(zone_default_txt),
				 "%s", unq(tok[2]));
	} else if (strcmp(kind, "ma-from") == 0 && mc.nfrom < 4) {
		snprintf(mc.from[mc.nfrom++], 256, "%s", unq(tok[1]));
	} else if (strcmp(kind, "ma-dkim") == 0 && mc.ndkim < MA_MAX) {
		snprintf(mc.dkim[mc.ndkim++], 256, "%s", unq(tok[1]));
	} else if (strcmp(kind, "ma-spf") == 0) {
		snprintf(mc.spf, sizeof(mc.spf), "%s", unq(tok[1]));
	} else if (strcmp(kind, "ma-expect") == 0 && mc.nexpect < MA_MAX) {
		snprintf(mc.expect[mc.nexpect][0], 256, "%s", unq(tok[1]));
		snprintf(mc.expect[mc.nexpect++][1], 256, "%s", unq(tok[2]));
	} else if (strcmp(kind, "ma-end") == 0) {
		ma_run(walk, false);
		ma_run(legacy, true);
	} else {
		fail_msg("bad converted line: %s", kind);
	}
}

static void
psl_line(char **tok, int ntok, struct count *c)
{
	char out[300] = "";
	const char *in, *want;
	bool got;

	if (strcmp(tok[0], "psl-rule") == 0) {
		if (npsl == psl_cap) {
			psl_cap = psl_cap ? psl_cap * 2 : 1024;
			psl_rules =
			    xrealloc(psl_rules, psl_cap * sizeof(char *));
		}
		psl_rules[npsl++] = xstrdup(unq(tok[1]));
		return;
	}
	assert_int_equal(ntok, 3);
	if (!psl_sorted) {
		qsort(psl_rules, npsl, sizeof(char *), cmp_str);
		psl_sorted = true;
	}
	in = unq(tok[1]);
	want = unq(tok[2]);
	got = strcmp(in, "-") != 0 && psl_org(NULL, in, out, sizeof(out));
	/* input case is not significant (PSL tests: "WwW.example.COM") */
	count_case(c, got ? strcasecmp(out, want) == 0 : strcmp(want, "-") == 0,
		   false, "psl", in, got ? out : "null");
}

static void
test_corpus_converted(void **state)
{
	struct count psl = {0, 0, 0}, walk = {0, 0, 0}, legacy = {0, 0, 0};
	char corpora[1100], line[8192], *tok[4], *p;
	const char *out = "dmarc-corpus.txt";
	FILE *f;
	int ntok;

	(void)state;
	corpora_dir(corpora, sizeof(corpora));
	if (convert(corpora, out) != 0)
		fail_msg("tests/dmarc/convert.py failed on %s", corpora);
	f = fopen(out, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		p = line;
		for (ntok = 0;
		     ntok < 4 && (tok[ntok] = strsep(&p, " ")) != NULL; ntok++)
			;
		if (strncmp(tok[0], "psl-", 4) == 0)
			psl_line(tok, ntok, &psl);
		else
			ma_line(tok, ntok, &walk, &legacy);
	}
	fclose(f);
	print_count("psl", &psl, 78);
	print_count("mailauth", &walk, 26);
	print_count("mailauth (RFC 7489 PSL mode)", &legacy, 26);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_basic),
	    cmocka_unit_test(test_record_defaults_and_errors),
	    cmocka_unit_test(test_record_uris),
	    cmocka_unit_test(test_from_domain),
	    cmocka_unit_test(test_domain_norm_and_walk),
	    cmocka_unit_test(test_walk_sequence),
	    cmocka_unit_test(test_record_selection),
	    cmocka_unit_test(test_alignment_modes),
	    cmocka_unit_test(test_psd),
	    cmocka_unit_test(test_sp_np),
	    cmocka_unit_test(test_testing_flag),
	    cmocka_unit_test(test_temperror),
	    cmocka_unit_test(test_limits_and_input),
	    cmocka_unit_test(test_corpus_converted),
	    cmocka_unit_test(test_corpus_opendmarc),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	size_t i;

	for (i = 0; i < npsl; i++)
		xfree(psl_rules[i]);
	xfree(psl_rules);
	return r;
}
