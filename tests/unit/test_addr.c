/* test_addr — RFC 5321 path and mailbox parsing (mail/addr.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/addr.h"

/* Parse a NUL-terminated path; returns the error, *end in *endp. */
static enum addr_err
path(const char *s, unsigned flags, struct mailaddr *a, size_t *endp)
{
	size_t end = 0;
	enum addr_err e = addr_parse_path(s, strlen(s), flags, a, &end);

	if (endp != NULL)
		*endp = end;
	return e;
}

static enum addr_err
mbox(const char *s, unsigned flags, struct mailaddr *a)
{
	return addr_parse_mailbox(s, strlen(s), flags, a);
}

/* A string of n copies of c in a static buffer. */
static const char *
rep(char *dst, char c, size_t n)
{
	memset(dst, c, n);
	dst[n] = '\0';
	return dst;
}

/* A domain of exactly n octets made of 63-octet labels. */
static const char *
long_domain(char *dst, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		dst[i] = (i % 64 == 63) ? '.' : 'a';
	dst[n] = '\0';
	return dst;
}

static void
test_simple(void **state)
{
	struct mailaddr a;
	size_t end;

	assert_int_equal(path("<User@Example.COM> SIZE=1", 0, &a, &end),
			 ADDR_OK);
	assert_string_equal(a.local, "User");
	assert_string_equal(a.domain, "example.com");
	assert_int_equal(end, 18);
	assert_false(a.quoted);
	assert_false(a.is_null);
	assert_int_equal(path("<a.b.c+tag@x-y.example>", 0, &a, NULL), ADDR_OK);
	assert_string_equal(a.local, "a.b.c+tag");
	assert_int_equal(path("<!#$%&'*+-/=?^_`{|}~@x.y>", 0, &a, NULL),
			 ADDR_OK);
	assert_int_equal(path("<a@123.example>", 0, &a, NULL), ADDR_OK);
	assert_int_equal(path("<a@b>", 0, &a, NULL), ADDR_OK);
}

static void
test_bad_syntax(void **state)
{
	static const char *const bad[] = {
	    "<.a@b.c>",
	    "<a.@b.c>",
	    "<a..b@b.c>",
	    "<a b@b.c>",
	    "<a@b.c x>",
	    "<a(b)@c.d>",
	    "<a@@b.c>",
	    "<@b.c>",
	    "<a@b.c.>",
	    "<a@.b.c>",
	    "<a@b..c>",
	    "<a@-b.c>",
	    "<a@b-.c>",
	    "<a@b_c.d>",
	    "<\"a@b.c>",
	    "<\"a\x01\"@b.c>",
	    "<a@b.c)>",
	    "<a,b@c.d>",
	    "<a@b.c",
	    "<",
	    "<a@>",
	    "<a\\@b.c>",
	    "<\"a\\\x01\"@b.c>",
	};
	struct mailaddr a;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (path(bad[i], ADDR_F_UTF8, &a, NULL) == ADDR_OK)
			fail_msg("accepted %s", bad[i]);
	}
	assert_int_equal(path("a@b.c", 0, &a, NULL), ADDR_E_NO_BRACKETS);
	assert_int_equal(path("", 0, &a, NULL), ADDR_E_NO_BRACKETS);
	assert_int_equal(path("<a@b.c", 0, &a, NULL), ADDR_E_NO_BRACKETS);
	assert_int_equal(path("<a@b.c.>", 0, &a, NULL), ADDR_E_BAD_DOMAIN);
	assert_int_equal(path("<a@b_c>", 0, &a, NULL), ADDR_E_SYNTAX);
}

static void
test_null_and_postmaster(void **state)
{
	struct mailaddr a;
	size_t end;

	assert_int_equal(path("<>", 0, &a, NULL), ADDR_E_NULL_NOT_ALLOWED);
	assert_int_equal(path("<> SIZE=10", ADDR_F_NULL_OK, &a, &end), ADDR_OK);
	assert_true(a.is_null);
	assert_string_equal(a.local, "");
	assert_string_equal(a.domain, "");
	assert_int_equal(end, 2);
	assert_int_equal(path("<PostMaster>", 0, &a, NULL), ADDR_E_NO_DOMAIN);
	assert_int_equal(path("<PostMaster>", ADDR_F_NO_DOMAIN_OK, &a, &end),
			 ADDR_OK);
	assert_string_equal(a.local, "postmaster");
	assert_string_equal(a.domain, "");
	assert_int_equal(end, 12);
	assert_int_equal(path("<bob>", ADDR_F_NO_DOMAIN_OK, &a, NULL),
			 ADDR_E_NO_DOMAIN);
	assert_int_equal(
	    path("<\"postmaster\">", ADDR_F_NO_DOMAIN_OK, &a, NULL),
	    ADDR_E_NO_DOMAIN);
	assert_int_equal(
	    path("<@a.b:postmaster>", ADDR_F_NO_DOMAIN_OK, &a, NULL),
	    ADDR_E_NO_DOMAIN);
	assert_int_equal(mbox("postmaster", ADDR_F_NO_DOMAIN_OK, &a), ADDR_OK);
	assert_int_equal(mbox("", 0, &a), ADDR_E_NULL_NOT_ALLOWED);
	assert_int_equal(mbox("", ADDR_F_NULL_OK, &a), ADDR_OK);
	assert_true(a.is_null);
}

static void
test_source_route(void **state)
{
	struct mailaddr a;
	size_t end;

	assert_int_equal(
	    path("<@a.example,@B.example:u@C.example>", 0, &a, &end), ADDR_OK);
	assert_string_equal(a.local, "u");
	assert_string_equal(a.domain, "c.example");
	assert_int_equal(end, 35);
	assert_int_equal(path("<@a.example:u@c.example>", 0, &a, NULL),
			 ADDR_OK);
	assert_int_not_equal(path("<@a.example u@c>", 0, &a, NULL), ADDR_OK);
	assert_int_not_equal(path("<@a.example,u@c>", 0, &a, NULL), ADDR_OK);
	assert_int_not_equal(path("<@:u@c>", 0, &a, NULL), ADDR_OK);
	assert_int_not_equal(path("<@a,:u@c>", 0, &a, NULL), ADDR_OK);
	assert_int_not_equal(path("<@[1.2.3.4]:u@c>", 0, &a, NULL), ADDR_OK);
	assert_int_not_equal(path("<@a.b:>", ADDR_F_NULL_OK, &a, NULL),
			     ADDR_OK);
}

static void
test_quoted(void **state)
{
	struct mailaddr a;
	size_t end;

	assert_int_equal(path("<\"a@b\"@c.example>", 0, &a, &end), ADDR_OK);
	assert_string_equal(a.local, "\"a@b\"");
	assert_string_equal(a.domain, "c.example");
	assert_true(a.quoted);
	assert_int_equal(end, 17);
	assert_int_equal(path("<a%b.example@c.example>", 0, &a, NULL), ADDR_OK);
	assert_string_equal(a.local, "a%b.example");
	assert_string_equal(a.domain, "c.example");
	assert_int_equal(path("<\"x>y\\\"z\\\\ w\"@c.example>", 0, &a, &end),
			 ADDR_OK);
	assert_string_equal(a.local, "\"x>y\\\"z\\\\ w\"");
	assert_int_equal(end, strlen("<\"x>y\\\"z\\\\ w\"@c.example>"));
	assert_int_equal(path("<\"\"@c.example>", 0, &a, NULL), ADDR_OK);
	assert_string_equal(a.local, "\"\"");
	assert_int_not_equal(path("<\"a\"b@c.example>", 0, &a, NULL), ADDR_OK);
	assert_int_not_equal(path("<\"a\\\"@c.example>", 0, &a, NULL), ADDR_OK);
	assert_int_not_equal(path("<\"a\tb\"@c.example>", 0, &a, NULL),
			     ADDR_OK);
}

static void
test_literals(void **state)
{
	struct mailaddr a;

	assert_int_equal(path("<u@[192.0.2.1]>", 0, &a, NULL), ADDR_OK);
	assert_string_equal(a.domain, "[192.0.2.1]");
	assert_int_equal(path("<u@[IPv6:2001:DB8::1]>", 0, &a, NULL), ADDR_OK);
	assert_string_equal(a.domain, "[IPv6:2001:DB8::1]");
	assert_int_equal(path("<u@[ipv6:::ffff:192.0.2.1]>", 0, &a, NULL),
			 ADDR_OK);
	assert_int_equal(path("<u@[192.0.2.256]>", 0, &a, NULL),
			 ADDR_E_BAD_DOMAIN);
	assert_int_equal(path("<u@[192.0.2]>", 0, &a, NULL), ADDR_E_BAD_DOMAIN);
	assert_int_equal(path("<u@[2001:db8::1]>", 0, &a, NULL),
			 ADDR_E_BAD_DOMAIN);
	assert_int_equal(path("<u@[IPv6:1.2.3.4]>", 0, &a, NULL),
			 ADDR_E_BAD_DOMAIN);
	assert_int_equal(path("<u@[tag:stuff]>", 0, &a, NULL),
			 ADDR_E_BAD_DOMAIN);
	assert_int_equal(path("<u@[1.2.3.4>", 0, &a, NULL), ADDR_E_BAD_DOMAIN);
	assert_int_equal(path("<u@[]>", 0, &a, NULL), ADDR_E_BAD_DOMAIN);
	assert_true(addr_literal_valid("[10.0.0.1]", 10));
	assert_false(addr_literal_valid("10.0.0.1", 8));
	assert_false(addr_literal_valid("[IPv6:]", 7));
}

static void
test_limits(void **state)
{
	char lp[300], dom[300], in[700];
	struct mailaddr a;

	/* local part: 64 ok, 65 not */
	snprintf(in, sizeof(in), "<%s@b.c>", rep(lp, 'x', 64));
	assert_int_equal(path(in, 0, &a, NULL), ADDR_OK);
	assert_int_equal(strlen(a.local), 64);
	snprintf(in, sizeof(in), "<%s@b.c>", rep(lp, 'x', 65));
	assert_int_equal(path(in, 0, &a, NULL), ADDR_E_LOCAL_TOO_LONG);
	/* quoted local part counts its quotes */
	snprintf(in, sizeof(in), "<\"%s\"@b.c>", rep(lp, 'x', 62));
	assert_int_equal(path(in, 0, &a, NULL), ADDR_OK);
	snprintf(in, sizeof(in), "<\"%s\"@b.c>", rep(lp, 'x', 63));
	assert_int_equal(path(in, 0, &a, NULL), ADDR_E_LOCAL_TOO_LONG);
	/* labels: 63 ok, 64 not */
	snprintf(in, sizeof(in), "<a@%s.c>", rep(dom, 'd', 63));
	assert_int_equal(path(in, 0, &a, NULL), ADDR_OK);
	snprintf(in, sizeof(in), "<a@%s.c>", rep(dom, 'd', 64));
	assert_int_equal(path(in, 0, &a, NULL), ADDR_E_BAD_DOMAIN);
	/* domain: 255 valid as a name, 256 not */
	assert_true(addr_domain_valid(long_domain(dom, 255), 255));
	assert_false(addr_domain_valid(long_domain(dom, 256), 256));
	snprintf(in, sizeof(in), "<a@%s>", long_domain(dom, 256));
	assert_int_equal(path(in, 0, &a, NULL), ADDR_E_DOMAIN_TOO_LONG);
	/* path: 256 octets with brackets ok, 257 not */
	snprintf(in, sizeof(in), "<a@%s>", long_domain(dom, 252));
	assert_int_equal(strlen(in), 256);
	assert_int_equal(path(in, 0, &a, NULL), ADDR_OK);
	snprintf(in, sizeof(in), "<a@%s>", long_domain(dom, 253));
	assert_int_equal(path(in, 0, &a, NULL), ADDR_E_PATH_TOO_LONG);
	/* the source route counts towards the 256 */
	snprintf(in, sizeof(in), "<@x.y:a@%s>", long_domain(dom, 252));
	assert_int_equal(path(in, 0, &a, NULL), ADDR_E_PATH_TOO_LONG);
	/* bare mailbox: 254 ok, 255 not */
	snprintf(in, sizeof(in), "a@%s", long_domain(dom, 252));
	assert_int_equal(mbox(in, 0, &a), ADDR_OK);
	snprintf(in, sizeof(in), "a@%s", long_domain(dom, 253));
	assert_int_equal(mbox(in, 0, &a), ADDR_E_PATH_TOO_LONG);
}

static void
test_utf8(void **state)
{
	struct mailaddr a;

	assert_int_equal(path("<pel\xc3\xa9@example.com>", 0, &a, NULL),
			 ADDR_E_8BIT);
	assert_int_equal(path("<a@\xc3\xa9x.com>", 0, &a, NULL), ADDR_E_8BIT);
	assert_int_equal(path("<pel\xc3\xa9@\xe4\xbe\x8b.\xe6\xb5\x8b>",
			      ADDR_F_UTF8, &a, NULL),
			 ADDR_OK);
	assert_string_equal(a.local, "pel\xc3\xa9");
	assert_string_equal(a.domain, "\xe4\xbe\x8b.\xe6\xb5\x8b");
	assert_int_equal(
	    path("<\"\xf0\x9f\x98\x80 x\"@a.b>", ADDR_F_UTF8, &a, NULL),
	    ADDR_OK);
	/* ill-formed: lone continuation, overlong, surrogate, > U+10FFFF,
	 * truncated */
	assert_int_not_equal(path("<a\x80@a.b>", ADDR_F_UTF8, &a, NULL),
			     ADDR_OK);
	assert_int_not_equal(path("<a\xc0\xaf@a.b>", ADDR_F_UTF8, &a, NULL),
			     ADDR_OK);
	assert_int_not_equal(path("<a\xed\xa0\x80@a.b>", ADDR_F_UTF8, &a, NULL),
			     ADDR_OK);
	assert_int_not_equal(
	    path("<a\xf4\x90\x80\x80@a.b>", ADDR_F_UTF8, &a, NULL), ADDR_OK);
	assert_int_not_equal(path("<a@b.\xe4\xbe>", ADDR_F_UTF8, &a, NULL),
			     ADDR_OK);
	assert_int_not_equal(path("<a@b.\xe0\x80\x80>", ADDR_F_UTF8, &a, NULL),
			     ADDR_OK);
	assert_false(addr_domain_valid("\xc3\xa9.com", 6));
	/* C1 controls (U+0080..U+009F), in atoms, quoted strings, domains */
	assert_int_equal(path("<a\xc2\x85@a.b>", ADDR_F_UTF8, &a, NULL),
			 ADDR_E_SYNTAX);
	assert_int_equal(path("<\"a\xc2\x9f\"@a.b>", ADDR_F_UTF8, &a, NULL),
			 ADDR_E_SYNTAX);
	assert_int_not_equal(path("<a@b\xc2\x80.c>", ADDR_F_UTF8, &a, NULL),
			     ADDR_OK);
	/* U+00A0 is the first non-control code point: fine */
	assert_int_equal(path("<a\xc2\xa0@a.b>", ADDR_F_UTF8, &a, NULL),
			 ADDR_OK);
	/* C0 controls and DEL never pass, UTF-8 or not */
	assert_int_not_equal(path("<a\x01@a.b>", ADDR_F_UTF8, &a, NULL),
			     ADDR_OK);
	assert_int_not_equal(path("<\"a\x7f\"@a.b>", ADDR_F_UTF8, &a, NULL),
			     ADDR_OK);
	/* 5- and 6-octet forms and 0xFE/0xFF */
	assert_int_not_equal(
	    path("<a\xf8\x88\x80\x80\x80@a.b>", ADDR_F_UTF8, &a, NULL),
	    ADDR_OK);
	assert_int_not_equal(path("<a\xfe@a.b>", ADDR_F_UTF8, &a, NULL),
			     ADDR_OK);
}

static void
test_alabel(void **state)
{
	struct mailaddr a;

	assert_int_equal(path("<J\xc3\xbcrgen@B\xc3\xbc"
			      "cher.Example>",
			      ADDR_F_UTF8, &a, NULL),
			 ADDR_OK);
	assert_false(addr_ascii(&a));
	assert_false(addr_local_ascii(&a));
	assert_int_equal(addr_domain_ascii(&a), ADDR_OK);
	assert_string_equal(a.domain, "xn--bcher-kva.example");
	assert_string_equal(a.local, "J\xc3\xbcrgen");
	/* upper-case U+00DC maps to the same A-label (UTS #46) */
	assert_int_equal(path("<x@B\xc3\x9c"
			      "CHER.example>",
			      ADDR_F_UTF8, &a, NULL),
			 ADDR_OK);
	assert_int_equal(addr_domain_ascii(&a), ADDR_OK);
	assert_string_equal(a.domain, "xn--bcher-kva.example");
	assert_true(addr_ascii(&a));
	/* ASCII domains and literals are left alone */
	assert_int_equal(path("<x@[127.0.0.1]>", 0, &a, NULL), ADDR_OK);
	assert_int_equal(addr_domain_ascii(&a), ADDR_OK);
	assert_string_equal(a.domain, "[127.0.0.1]");
	/* a label that starts with a combining mark is no IDN */
	assert_int_equal(path("<x@\xcc\x81"
			      "abc.example>",
			      ADDR_F_UTF8, &a, NULL),
			 ADDR_OK);
	assert_int_equal(addr_domain_ascii(&a), ADDR_E_BAD_DOMAIN);
	/* the UTS #46 mapping turns U+00A0 into a space: no domain (fuzz) */
	assert_int_equal(mbox("x@ah\xc2\xa0", ADDR_F_UTF8, &a), ADDR_OK);
	assert_int_equal(addr_domain_ascii(&a), ADDR_E_BAD_DOMAIN);
	/* U+00E9 repeated: a 60-octet U-label, a short A-label */
	{
		char in[300] = "<x@", *p = in + 3;
		for (int i = 0; i < 30; i++, p += 2)
			memcpy(p, "\xc3\xa9", 2);
		memcpy(p, ".b>", 4);
		assert_int_equal(path(in, ADDR_F_UTF8, &a, NULL), ADDR_OK);
		assert_int_equal(addr_domain_ascii(&a), ADDR_OK);
		assert_memory_equal(a.domain, "xn--", 4);
		assert_true(addr_ascii(&a));
	}
}

static void
test_mailbox(void **state)
{
	struct mailaddr a;

	assert_int_equal(mbox("Bob@Example.Org", 0, &a), ADDR_OK);
	assert_string_equal(a.local, "Bob");
	assert_string_equal(a.domain, "example.org");
	assert_int_equal(mbox("<bob@example.org>", 0, &a), ADDR_E_SYNTAX);
	assert_int_equal(mbox("bob@example.org ", 0, &a), ADDR_E_SYNTAX);
	assert_int_equal(mbox("bob", 0, &a), ADDR_E_NO_DOMAIN);
	assert_int_equal(mbox("\"a b\"@[127.0.0.1]", 0, &a), ADDR_OK);
	assert_int_equal(addr_parse_mailbox("a@b.c\0x", 7, 0, &a),
			 ADDR_E_SYNTAX);
}

static void
test_domain_valid(void **state)
{
	assert_true(addr_domain_valid("example.com", 11));
	assert_true(addr_domain_valid("EXAMPLE", 7));
	assert_true(addr_domain_valid("a-b.c", 5));
	assert_true(addr_domain_valid("xn--bcher-kva.example", 21));
	assert_false(addr_domain_valid("", 0));
	assert_false(addr_domain_valid("example.com.", 12));
	assert_false(addr_domain_valid(".example", 8));
	assert_false(addr_domain_valid("a..b", 4));
	assert_false(addr_domain_valid("-a.b", 4));
	assert_false(addr_domain_valid("a-.b", 4));
	assert_false(addr_domain_valid("a b", 3));
	assert_false(addr_domain_valid("a_b", 3));
	assert_false(addr_domain_valid("ab\0", 3));
	assert_false(addr_domain_valid(NULL, 0));
}

static void
test_format_equal_strerror(void **state)
{
	struct mailaddr a, b;
	char out[ADDR_PATH_MAX + 2];
	int e;

	assert_int_equal(path("<Bob@Example.org>", 0, &a, NULL), ADDR_OK);
	addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "Bob@example.org");
	addr_format(&a, out, 5);
	assert_string_equal(out, "Bob@");
	assert_int_equal(mbox("Bob@EXAMPLE.ORG", 0, &b), ADDR_OK);
	assert_true(addr_equal(&a, &b));
	assert_int_equal(mbox("bob@example.org", 0, &b), ADDR_OK);
	assert_false(addr_equal(&a, &b));
	assert_int_equal(path("<>", ADDR_F_NULL_OK, &b, NULL), ADDR_OK);
	assert_false(addr_equal(&a, &b));
	addr_format(&b, out, sizeof(out));
	assert_string_equal(out, "");
	assert_true(addr_equal(&b, &b));
	assert_int_equal(path("<postmaster>", ADDR_F_NO_DOMAIN_OK, &b, NULL),
			 ADDR_OK);
	addr_format(&b, out, sizeof(out));
	assert_string_equal(out, "postmaster");
	for (e = ADDR_OK; e <= ADDR_E_NO_DOMAIN; e++)
		assert_non_null(addr_strerror((enum addr_err)e));
	assert_string_equal(addr_strerror(ADDR_E_LOCAL_TOO_LONG),
			    "local part longer than 64 octets");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple),
	    cmocka_unit_test(test_bad_syntax),
	    cmocka_unit_test(test_null_and_postmaster),
	    cmocka_unit_test(test_source_route),
	    cmocka_unit_test(test_quoted),
	    cmocka_unit_test(test_literals),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_alabel),
	    cmocka_unit_test(test_mailbox),
	    cmocka_unit_test(test_domain_valid),
	    cmocka_unit_test(test_format_equal_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
