/*
 * fuzz_smtp_cmd — libFuzzer target for mail/smtp_cmd.c (and addr.c).
 *
 * The first byte picks the smtp_ext flags; the rest is one command line.
 * It goes through smtp_cmd_parse, then the argument through the MAIL,
 * RCPT and HELO parsers whatever the verb was (more coverage). Checks:
 * arg stays inside the line, every error carries a 4xx/5xx code, an
 * enhanced status and a short text that is one of our static strings
 * (never a pointer into the input), and decoded values are terminated,
 * within their limits and free of control characters.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/smtp_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fz_reply(const struct smtp_reply *r, const char *in, size_t n)
{
	if (r->code < 400 || r->code > 599 || r->status == NULL ||
	    r->text == NULL || strlen(r->text) == 0 || strlen(r->text) > 80)
		abort();
	if (r->text >= in && r->text < in + n)
		abort();
}

static void
fz_printable(const char *s, size_t max)
{
	size_t n = strlen(s), i;

	if (n > max)
		abort();
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 32 || (unsigned char)s[i] > 126)
			abort();
}

static void
fz_args(const char *a, size_t n, const struct smtp_ext *ext)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	struct smtp_reply err;
	char helo[ADDR_DOMAIN_MAX + 1];

	if (smtp_mail_parse(a, n, ext, &m, &err) < 0)
		fz_reply(&err, a, n);
	else
		fz_printable(m.envid, SMTP_ENVID_MAX);
	if (smtp_rcpt_parse(a, n, ext, &r, &err) < 0) {
		fz_reply(&err, a, n);
	} else {
		fz_printable(r.orcpt, SMTP_ORCPT_MAX);
		if (r.orcpt[0] != '\0' && strncasecmp(r.orcpt, "rfc822;", 7) &&
		    strncasecmp(r.orcpt, "utf-8;", 6))
			abort();
		if ((r.notify & SMTP_NOTIFY_NEVER) &&
		    r.notify != SMTP_NOTIFY_NEVER)
			abort();
	}
	if (smtp_helo_parse(a, n, helo, sizeof(helo), &err) < 0)
		fz_reply(&err, a, n);
	else
		fz_printable(helo, ADDR_DOMAIN_MAX);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_ext ext;
	struct smtp_cmd cmd;
	struct smtp_reply err;
	const char *line;

	if (size == 0)
		return 0;
	ext.size = data[0] & 1;
	ext.eightbit = data[0] & 2;
	ext.smtputf8 = data[0] & 4;
	ext.dsn = data[0] & 8;
	line = (const char *)data + 1;
	size--;
	if (smtp_cmd_parse(line, size, &cmd, &err) < 0) {
		fz_reply(&err, line, size);
		fz_args(line, size, &ext);
		return 0;
	}
	if (cmd.arglen > 0 &&
	    (cmd.arg < line || cmd.arg + cmd.arglen > line + size))
		abort();
	if (strcmp(smtp_verb_name(cmd.verb), "UNKNOWN") == 0)
		abort();
	fz_args(cmd.arg, cmd.arglen, &ext);
	return 0;
}
