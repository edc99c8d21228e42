/* test_smtp_cmd — command lines, MAIL/RCPT arguments, HELO (smtp_cmd.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/smtp_cmd.h"

static const struct smtp_ext ext_all = {true, true, true, true};
static const struct smtp_ext ext_none = {false, false, false, false};
/* DSN offered, no SMTPUTF8 in the transaction */
static const struct smtp_ext ext_dsn = {true, true, false, true};

static int
cmd(const char *line, struct smtp_cmd *c, struct smtp_reply *r)
{
	return smtp_cmd_parse(line, strlen(line), c, r);
}

static int
mail(const char *arg, const struct smtp_ext *ext, struct smtp_mail_args *m,
     struct smtp_reply *r)
{
	return smtp_mail_parse(arg, strlen(arg), ext, m, r);
}

static int
rcpt(const char *arg, const struct smtp_ext *ext, struct smtp_rcpt_args *a,
     struct smtp_reply *r)
{
	return smtp_rcpt_parse(arg, strlen(arg), ext, a, r);
}

static void
reply_is(const struct smtp_reply *r, int code, const char *status)
{
	assert_int_equal(r->code, code);
	assert_string_equal(r->status, status);
	assert_non_null(r->text);
	assert_true(strlen(r->text) > 0 && strlen(r->text) < 80);
	assert_null(strstr(r->text, "evil"));
}

static void
mail_fails(const char *arg, const struct smtp_ext *ext, int code,
	   const char *status)
{
	struct smtp_mail_args m;
	struct smtp_reply r;

	if (mail(arg, ext, &m, &r) == 0)
		fail_msg("MAIL accepted %s", arg);
	reply_is(&r, code, status);
}

static void
rcpt_fails(const char *arg, const struct smtp_ext *ext, int code,
	   const char *status)
{
	struct smtp_rcpt_args a;
	struct smtp_reply r;

	if (rcpt(arg, ext, &a, &r) == 0)
		fail_msg("RCPT accepted %s", arg);
	reply_is(&r, code, status);
}

static void
test_verbs(void **state)
{
	static const struct {
		const char *line;
		enum smtp_verb verb;
	} ok[] = {
	    {"HELO a.example", SMTP_HELO}, {"ehlo a.example", SMTP_EHLO},
	    {"MaIl FROM:<>", SMTP_MAIL},   {"rcpt TO:<a@b>", SMTP_RCPT},
	    {"DATA", SMTP_DATA},	   {"rset", SMTP_RSET},
	    {"NOOP", SMTP_NOOP},	   {"NOOP anything at all", SMTP_NOOP},
	    {"QUIT", SMTP_QUIT},	   {"VRFY bob", SMTP_VRFY},
	    {"EXPN list", SMTP_EXPN},	   {"HELP", SMTP_HELP},
	    {"HELP MAIL", SMTP_HELP},	   {"StartTLS", SMTP_STARTTLS},
	    {"AUTH PLAIN", SMTP_AUTH},	   {"BDAT 100 LAST", SMTP_BDAT},
	};
	struct smtp_cmd c;
	struct smtp_reply r;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (cmd(ok[i].line, &c, &r) != 0)
			fail_msg("refused %s", ok[i].line);
		assert_int_equal(c.verb, ok[i].verb);
	}
	assert_int_equal(cmd("MAIL FROM:<a@b> SIZE=1", &c, &r), 0);
	assert_int_equal(c.arglen, 17);
	assert_memory_equal(c.arg, "FROM:<a@b> SIZE=1", 17);
	assert_int_equal(cmd("DATA", &c, &r), 0);
	assert_string_equal(c.arg, "");
	assert_int_equal(c.arglen, 0);
}

static void
test_spaces(void **state)
{
	struct smtp_cmd c;
	struct smtp_reply r;

	assert_int_equal(cmd("MAIL   FROM:<a@b>   ", &c, &r), 0);
	assert_int_equal(c.arglen, 10);
	assert_memory_equal(c.arg, "FROM:<a@b>", 10);
	assert_int_equal(cmd("QUIT ", &c, &r), 0);
	assert_int_equal(c.verb, SMTP_QUIT);
	assert_int_equal(cmd("HELP   ", &c, &r), 0);
	assert_int_equal(c.arglen, 0);
	/* TAB is not a separator */
	assert_int_equal(cmd("MAIL\tFROM:<a@b>", &c, &r), -1);
	reply_is(&r, 500, "5.5.2");
	assert_int_equal(cmd("QUIT\t", &c, &r), -1);
	reply_is(&r, 500, "5.5.2");
}

static void
test_unknown(void **state)
{
	static const char *const bad[] = {
	    "",	    "FOO", "MAILX FROM:<a@b>", " MAIL FROM:<a@b>", "HELO1",
	    "X-EV", "QUI", "STARTTLSX",	       "DATA\r",	   "evil\x01",
	};
	struct smtp_cmd c;
	struct smtp_reply r;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cmd(bad[i], &c, &r) == 0)
			fail_msg("accepted %s", bad[i]);
		reply_is(&r, 500, "5.5.2");
		assert_int_equal(c.verb, SMTP_UNKNOWN);
	}
	assert_string_equal(r.text, "Command unrecognized");
}

static void
test_arg_policy(void **state)
{
	static const char *const noargs[] = {"DATA x", "RSET x", "QUIT now",
					     "STARTTLS x"};
	static const char *const needargs[] = {"HELO", "EHLO ", "MAIL", "RCPT",
					       "VRFY", "EXPN",	"AUTH", "BDAT"};
	struct smtp_cmd c;
	struct smtp_reply r;
	size_t i;

	for (i = 0; i < sizeof(noargs) / sizeof(noargs[0]); i++) {
		assert_int_equal(cmd(noargs[i], &c, &r), -1);
		reply_is(&r, 501, "5.5.4");
	}
	for (i = 0; i < sizeof(needargs) / sizeof(needargs[0]); i++) {
		assert_int_equal(cmd(needargs[i], &c, &r), -1);
		reply_is(&r, 501, "5.5.4");
	}
}

static void
test_mail_basic(void **state)
{
	struct smtp_mail_args m;
	struct smtp_reply r;

	assert_int_equal(mail("FROM:<Bob@Example.ORG>", &ext_none, &m, &r), 0);
	assert_string_equal(m.from.local, "Bob");
	assert_string_equal(m.from.domain, "example.org");
	assert_false(m.lax_colon);
	assert_false(m.has_size);
	assert_int_equal(m.body, SMTP_BODY_UNSPEC);
	assert_int_equal(m.ret, SMTP_RET_UNSPEC);
	assert_string_equal(m.envid, "");
	assert_int_equal(mail("from:<>", &ext_none, &m, &r), 0);
	assert_true(m.from.is_null);
	assert_int_equal(mail("FROM: <a@b.c>", &ext_none, &m, &r), 0);
	assert_true(m.lax_colon);
	assert_int_equal(mail("FROM:<@x.y,@z.w:a@b.c>", &ext_none, &m, &r), 0);
	assert_string_equal(m.from.domain, "b.c");
	mail_fails("FROM:  <a@b.c>", &ext_none, 501, "5.1.7");
	mail_fails("FROM<a@b.c>", &ext_none, 501, "5.5.4");
	mail_fails("FROM :<a@b.c>", &ext_none, 501, "5.5.4");
	mail_fails("TO:<a@b.c>", &ext_none, 501, "5.5.4");
	mail_fails("", &ext_none, 501, "5.5.4");
	mail_fails("FROM:a@b.c", &ext_none, 501, "5.1.7");
	mail_fails("FROM:<evil@b..c>", &ext_none, 501, "5.1.7");
	mail_fails("FROM:<postmaster>", &ext_none, 501, "5.1.7");
	mail_fails("FROM:<a@b.c>x", &ext_none, 501, "5.5.4");
}

static void
test_mail_size(void **state)
{
	struct smtp_ext size_only = {.size = true};
	struct smtp_mail_args m;
	struct smtp_reply r;

	assert_int_equal(mail("FROM:<a@b.c> SIZE=12345", &size_only, &m, &r),
			 0);
	assert_true(m.has_size);
	assert_int_equal(m.size, 12345);
	assert_int_equal(mail("FROM:<> size=0", &size_only, &m, &r), 0);
	assert_true(m.has_size);
	assert_int_equal(m.size, 0);
	assert_int_equal(
	    mail("FROM:<> SIZE=18446744073709551615", &size_only, &m, &r), 0);
	assert_true(m.size == UINT64_MAX);
	mail_fails("FROM:<> SIZE=18446744073709551616", &size_only, 501,
		   "5.5.4");
	mail_fails("FROM:<> SIZE=99999999999999999999", &size_only, 501,
		   "5.5.4");
	mail_fails("FROM:<> SIZE=000000000000000000001", &size_only, 501,
		   "5.5.4");
	mail_fails("FROM:<> SIZE=12a", &size_only, 501, "5.5.4");
	mail_fails("FROM:<> SIZE=-1", &size_only, 501, "5.5.4");
	mail_fails("FROM:<> SIZE=", &size_only, 501, "5.5.4");
	mail_fails("FROM:<> SIZE", &size_only, 501, "5.5.4");
	mail_fails("FROM:<> SIZE=1 SIZE=1", &size_only, 501, "5.5.4");
	mail_fails("FROM:<> SIZE=1", &ext_none, 555, "5.5.4");
}

static void
test_mail_body_utf8(void **state)
{
	struct smtp_mail_args m;
	struct smtp_reply r;

	assert_int_equal(mail("FROM:<> BODY=7BIT", &ext_all, &m, &r), 0);
	assert_int_equal(m.body, SMTP_BODY_7BIT);
	assert_int_equal(mail("FROM:<> body=8bitmime", &ext_all, &m, &r), 0);
	assert_int_equal(m.body, SMTP_BODY_8BITMIME);
	mail_fails("FROM:<> BODY=BINARYMIME", &ext_all, 555, "5.5.4");
	mail_fails("FROM:<> BODY=9BIT", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> BODY", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> BODY=7BIT BODY=7BIT", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> BODY=8BITMIME", &ext_none, 555, "5.5.4");

	assert_int_equal(mail("FROM:<pel\xc3\xa9@\xc3\xa9.example> SMTPUTF8",
			      &ext_all, &m, &r),
			 0);
	assert_true(m.smtputf8);
	assert_string_equal(m.from.local, "pel\xc3\xa9");
	assert_int_equal(mail("FROM:<a@b.c> smtputf8", &ext_all, &m, &r), 0);
	assert_true(m.smtputf8);
	mail_fails("FROM:<pel\xc3\xa9@b.c>", &ext_all, 553, "5.6.7");
	mail_fails("FROM:<pel\xc3\xa9@b.c> SMTPUTF8", &ext_none, 553, "5.6.7");
	mail_fails("FROM:<pel\xc3@b.c> SMTPUTF8", &ext_all, 501, "5.1.7");
	mail_fails("FROM:<a@b.c> SMTPUTF8=yes", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<a@b.c> SMTPUTF8", &ext_none, 555, "5.5.4");
	mail_fails("FROM:<a@b.c> SMTPUTF8 SMTPUTF8", &ext_all, 501, "5.5.4");
	/* UTF-8 in an esmtp-value is syntax only with SMTPUTF8 (RFC 6531
	 * §3.3); the unknown parameter is then what is refused */
	mail_fails("FROM:<a@b.c> X=\xc3\xa9", &ext_dsn, 501, "5.5.4");
	mail_fails("FROM:<a@b.c> X=\xc3\xa9", &ext_all, 555, "5.5.4");
}

static void
test_mail_dsn(void **state)
{
	char arg[300];
	struct smtp_mail_args m;
	struct smtp_reply r;

	assert_int_equal(
	    mail("FROM:<> RET=FULL ENVID=QQ+2B314+3D", &ext_all, &m, &r), 0);
	assert_int_equal(m.ret, SMTP_RET_FULL);
	assert_string_equal(m.envid, "QQ+314=");
	assert_int_equal(mail("FROM:<> ret=hdrs envid=a+2b", &ext_all, &m, &r),
			 0);
	assert_int_equal(m.ret, SMTP_RET_HDRS);
	assert_string_equal(m.envid, "a+");
	mail_fails("FROM:<> RET=ALL", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> RET", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> RET=FULL RET=HDRS", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> RET=FULL", &ext_none, 555, "5.5.4");
	mail_fails("FROM:<> ENVID=x", &ext_none, 555, "5.5.4");
	mail_fails("FROM:<> ENVID=a+0D+0Ab", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> ENVID=a+00", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> ENVID=a+4", &ext_all, 501, "5.5.4");
	/* 8-bit octets in a MAIL parameter: refused, SMTPUTF8 or not */
	mail_fails("FROM:<> SMTPUTF8 ENVID=a\xc3\xb6", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> ENVID=a\xc3\xb6", &ext_dsn, 501, "5.5.4");
	mail_fails("FROM:<> ENVID=a+", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> ENVID=a+GG", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> ENVID", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> ENVID=a ENVID=b", &ext_all, 501, "5.5.4");
	/* 100 decoded octets fit, 101 do not */
	snprintf(arg, sizeof(arg), "FROM:<> ENVID=%0100d", 0);
	assert_int_equal(mail(arg, &ext_all, &m, &r), 0);
	assert_int_equal(strlen(m.envid), 100);
	snprintf(arg, sizeof(arg), "FROM:<> ENVID=%0101d", 0);
	mail_fails(arg, &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> NOTIFY=NEVER", &ext_all, 555, "5.5.4");
	mail_fails("FROM:<> ORCPT=rfc822;a", &ext_all, 555, "5.5.4");
}

static void
test_mail_param_syntax(void **state)
{
	mail_fails("FROM:<>SIZE=1", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> =1", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> -X=1", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> SIZE=1=2", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> SIZE=1\t", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> SI_ZE=1", &ext_all, 501, "5.5.4");
	mail_fails("FROM:<> FOO=bar", &ext_all, 555, "5.5.4");
	mail_fails("FROM:<> X-EVIL", &ext_all, 555, "5.5.4");
	mail_fails("FROM:<> AUTH=<>", &ext_all, 555, "5.5.4");
	{
		struct smtp_mail_args m;
		struct smtp_reply r;

		assert_int_equal(
		    mail("FROM:<>  SIZE=1   BODY=7BIT", &ext_all, &m, &r), 0);
		assert_int_equal(m.size, 1);
		assert_int_equal(m.body, SMTP_BODY_7BIT);
		assert_int_equal(mail("FROM:<> ", &ext_all, &m, &r), 0);
	}
}

static void
test_rcpt(void **state)
{
	struct smtp_rcpt_args a;
	struct smtp_reply r;

	assert_int_equal(rcpt("TO:<Bob@Example.ORG>", &ext_none, &a, &r), 0);
	assert_string_equal(a.to.domain, "example.org");
	assert_int_equal(a.notify, 0);
	assert_string_equal(a.orcpt, "");
	assert_int_equal(rcpt("to: <POSTMASTER>", &ext_none, &a, &r), 0);
	assert_string_equal(a.to.local, "postmaster");
	assert_true(a.lax_colon);
	assert_int_equal(rcpt("TO:<\"a@b\"@c.d>", &ext_none, &a, &r), 0);
	rcpt_fails("TO:<>", &ext_none, 501, "5.1.3");
	rcpt_fails("TO:<bob>", &ext_none, 501, "5.1.3");
	rcpt_fails("TO:<evil@@x>", &ext_none, 501, "5.1.3");
	rcpt_fails("TO:bob@x.y", &ext_none, 501, "5.1.3");
	rcpt_fails("FROM:<a@b.c>", &ext_none, 501, "5.5.4");
	rcpt_fails("TO:<caf\xc3\xa9@x.y>", &ext_none, 553, "5.6.7");
	assert_int_equal(rcpt("TO:<caf\xc3\xa9@x.y>", &ext_all, &a, &r), 0);
	rcpt_fails("TO:<a@b.c> SIZE=1", &ext_all, 555, "5.5.4");
	rcpt_fails("TO:<a@b.c> SMTPUTF8", &ext_all, 555, "5.5.4");
}

static void
test_rcpt_dsn(void **state)
{
	char arg[700], val[600];
	struct smtp_rcpt_args a;
	struct smtp_reply r;

	assert_int_equal(rcpt("TO:<a@b.c> NOTIFY=NEVER", &ext_all, &a, &r), 0);
	assert_int_equal(a.notify, SMTP_NOTIFY_NEVER);
	assert_int_equal(
	    rcpt("TO:<a@b.c> notify=success,Failure,DELAY", &ext_all, &a, &r),
	    0);
	assert_int_equal(a.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE |
				       SMTP_NOTIFY_DELAY);
	assert_int_equal(rcpt("TO:<a@b.c> NOTIFY=DELAY", &ext_all, &a, &r), 0);
	assert_int_equal(a.notify, SMTP_NOTIFY_DELAY);
	rcpt_fails("TO:<a@b.c> NOTIFY=NEVER,DELAY", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> NOTIFY=SUCCESS,,DELAY", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> NOTIFY=SUCCESS,", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> NOTIFY=,SUCCESS", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> NOTIFY=DELAY,DELAY", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> NOTIFY=ALWAYS", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> NOTIFY", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> NOTIFY=NEVER NOTIFY=NEVER", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> NOTIFY=NEVER", &ext_none, 555, "5.5.4");

	assert_int_equal(
	    rcpt("TO:<a@b.c> ORCPT=rfc822;Bob+40Example.org", &ext_all, &a, &r),
	    0);
	assert_string_equal(a.orcpt, "rfc822;Bob@Example.org");
	assert_int_equal(rcpt("TO:<a@b.c> NOTIFY=FAILURE ORCPT=rfc822;x+20y",
			      &ext_all, &a, &r),
			 0);
	assert_string_equal(a.orcpt, "rfc822;x y");
	assert_int_equal(a.notify, SMTP_NOTIFY_FAILURE);
	rcpt_fails("TO:<a@b.c> ORCPT=rfc822", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=;a", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=rfc822;", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=rf_c;a", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=rfc822;a+0Ab", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=rfc822;a ORCPT=rfc822;b", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=rfc822;a", &ext_none, 555, "5.5.4");
	/* address types we can report back: rfc822 and utf-8 (RFC 6533) */
	rcpt_fails("TO:<a@b.c> ORCPT=x400;a", &ext_all, 501, "5.5.4");
	assert_int_equal(rcpt("TO:<a@b.c> ORCPT=UTF-8;b+40c", &ext_all, &a, &r),
			 0);
	assert_string_equal(a.orcpt, "UTF-8;b@c");
	/* RFC 6533: stored as 7-bit utf-8-addr-xtext, escapes normalised,
	 * '+' and '=' escaped */
	assert_int_equal(rcpt("TO:<a@b.c> ORCPT=utf-8;J\\x{f6}rg\\x{5c}"
			      "+2Bx+3D@b\\x{1F600}.de\\x{2b}",
			      &ext_all, &a, &r),
			 0);
	assert_string_equal(
	    a.orcpt,
	    "utf-8;J\\x{F6}rg\\x{5C}\\x{2B}x\\x{3D}@b\\x{1F600}.de\\x{2B}");
	/* UTF-8 octets xtext-encoded are escaped too (SMTPUTF8 only) */
	assert_int_equal(
	    rcpt("TO:<a@b.c> ORCPT=utf-8;J+C3+B6rg@b.de", &ext_all, &a, &r), 0);
	assert_string_equal(a.orcpt, "utf-8;J\\x{F6}rg@b.de");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;J+C3+B6rg@b.de", &ext_dsn, 501,
		   "5.5.4");
	/* RFC 6533 HEXPOINT: the fewest digits (at least two), and only
	 * for non-ASCII or the xtext specials */
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;J\\x{00F6}rg@b", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;\\x{41}b@b", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;\\x{0041}b@b", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;\\x{02B}b@b", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;\\x{01F600}b@b", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;\\x{20}b@b", &ext_all, 501, "5.5.4");
	assert_int_equal(rcpt("TO:<a@b.c> ORCPT=utf-8;\\x{100}\\x{FFFD}"
			      "\\x{10FFFF}@b",
			      &ext_all, &a, &r),
			 0);
	assert_string_equal(a.orcpt, "utf-8;\\x{100}\\x{FFFD}\\x{10FFFF}@b");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\\x{D800}@b", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\\x{110000}@b", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\\x{9}@b", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\\x{85}@b", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\\x{}@b", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\\y@b", &ext_all, 501, "5.5.4");
	/* raw UTF-8 (utf-8-addr-unitext): only in an SMTPUTF8 transaction,
	 * stored in the same 7-bit form */
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;J\xc3\xb6rg@b.de", &ext_dsn, 501,
		   "5.5.4");
	assert_int_equal(rcpt("TO:<a@b.c> ORCPT=utf-8;J\xc3\xb6rg@b\xc3\xa4r."
			      "de NOTIFY=FAILURE",
			      &ext_all, &a, &r),
			 0);
	assert_string_equal(a.orcpt, "utf-8;J\\x{F6}rg@b\\x{E4}r.de");
	assert_int_equal(a.notify, SMTP_NOTIFY_FAILURE);
	assert_int_equal(rcpt("TO:<a@b.c> ORCPT=utf-8;\xe7\x94\xb0\\x{2B}"
			      "\xf0\x9f\x98\x80@\\x{E4}.de",
			      &ext_all, &a, &r),
			 0);
	assert_string_equal(a.orcpt,
			    "utf-8;\\x{7530}\\x{2B}\\x{1F600}@\\x{E4}.de");
	/* ill-formed UTF-8: overlong, surrogate, cut short, stray
	 * continuation, above U+10FFFF; C1 controls */
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\xc0\xaf"
		   "b@b",
		   &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\xed\xa0\x80@b", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\xc3", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\xb6@b", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\xf4\x90\x80\x80@b", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a\xc2\x85@b", &ext_all, 501,
		   "5.5.4");
	/* other parameters never take 8-bit octets */
	rcpt_fails("TO:<a@b.c> NOTIFY=FAILURE\xc3\xb6", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a+C0+AFb@b", &ext_all, 501, "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=utf-8;a+ED+A0+80@b", &ext_all, 501,
		   "5.5.4");
	rcpt_fails("TO:<a@b.c> ORCPT=rfc822;J\xc3\xb6rg@b.de", &ext_all, 501,
		   "5.5.4");
	/* 500 octets as sent, even when the decoded value is shorter */
	for (int k = 0; k < 165; k++)
		memcpy(val + 3 * k, "+41", 3);
	val[495] = '\0';
	snprintf(arg, sizeof(arg), "TO:<a@b.c> ORCPT=rfc822;%s", val);
	rcpt_fails(arg, &ext_all, 501, "5.5.4");
	/* "rfc822;" + 493 = 500 octets fit, one more does not */
	memset(val, 'v', 493);
	val[493] = '\0';
	snprintf(arg, sizeof(arg), "TO:<a@b.c> ORCPT=rfc822;%s", val);
	assert_int_equal(rcpt(arg, &ext_all, &a, &r), 0);
	assert_int_equal(strlen(a.orcpt), 500);
	memset(val, 'v', 494);
	val[494] = '\0';
	snprintf(arg, sizeof(arg), "TO:<a@b.c> ORCPT=rfc822;%s", val);
	rcpt_fails(arg, &ext_all, 501, "5.5.4");
}

static void
test_helo(void **state)
{
	char dst[300];
	struct smtp_reply r;

	assert_int_equal(
	    smtp_helo_parse("Mail.Example.COM", 16, dst, sizeof(dst), &r), 0);
	assert_string_equal(dst, "mail.example.com");
	assert_int_equal(
	    smtp_helo_parse("[192.0.2.1]", 11, dst, sizeof(dst), &r), 0);
	assert_string_equal(dst, "[192.0.2.1]");
	assert_int_equal(
	    smtp_helo_parse("[IPv6:2001:db8::1]", 18, dst, sizeof(dst), &r), 0);
	assert_int_equal(smtp_helo_parse("", 0, dst, sizeof(dst), &r), -1);
	reply_is(&r, 501, "5.5.4");
	assert_int_equal(smtp_helo_parse("evil_host", 9, dst, sizeof(dst), &r),
			 -1);
	reply_is(&r, 501, "5.5.4");
	assert_int_equal(smtp_helo_parse("a.b extra", 9, dst, sizeof(dst), &r),
			 -1);
	assert_int_equal(smtp_helo_parse("a.b.", 4, dst, sizeof(dst), &r), -1);
	assert_int_equal(
	    smtp_helo_parse("[1.2.3.999]", 11, dst, sizeof(dst), &r), -1);
	reply_is(&r, 501, "5.5.4");
	assert_int_equal(smtp_helo_parse("a.example", 9, dst, 9, &r), -1);
	assert_int_equal(smtp_helo_parse("a.example", 9, dst, 10, &r), 0);
	assert_string_equal(dst, "a.example");
}

static void
test_verb_names(void **state)
{
	assert_string_equal(smtp_verb_name(SMTP_MAIL), "MAIL");
	assert_string_equal(smtp_verb_name(SMTP_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_verb_name(SMTP_BDAT), "BDAT");
	assert_string_equal(smtp_verb_name(SMTP_UNKNOWN), "UNKNOWN");
	assert_string_equal(smtp_verb_name((enum smtp_verb)99), "UNKNOWN");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verbs),
	    cmocka_unit_test(test_spaces),
	    cmocka_unit_test(test_unknown),
	    cmocka_unit_test(test_arg_policy),
	    cmocka_unit_test(test_mail_basic),
	    cmocka_unit_test(test_mail_size),
	    cmocka_unit_test(test_mail_body_utf8),
	    cmocka_unit_test(test_mail_dsn),
	    cmocka_unit_test(test_mail_param_syntax),
	    cmocka_unit_test(test_rcpt),
	    cmocka_unit_test(test_rcpt_dsn),
	    cmocka_unit_test(test_helo),
	    cmocka_unit_test(test_verb_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
