/*
 * smtp_cmd — SMTP command-line parsing (pure).
 *
 * smtp_cmd_parse() takes one command line *without* its CRLF (the caller
 * frames lines and rejects bare CR/LF and NUL) and identifies the verb
 * (case-insensitive, RFC 5321 §2.4) and its argument. MAIL/RCPT need
 * the exact "MAIL FROM:" / "RCPT TO:" prefix; a space after the colon is
 * tolerated (common clients send it) but counted as a deviation.
 *
 * smtp_mail_parse()/smtp_rcpt_parse() split "FROM:<path> params" into
 * the address (via addr.h) and the ESMTP parameters (RFC 5321 §4.1.2
 * esmtp-param). Known parameters are decoded; unknown ones are an error
 * (555 5.5.4). Duplicate parameters are errors. xtext (RFC 3461 §4) is
 * decoded for ENVID and ORCPT.
 *
 * Every error comes with the SMTP reply to send (code, enhanced status,
 * text) so smtp-in never invents its own wording for parser failures.
 * The texts are static and never echo client bytes; the codes chosen for
 * each error class are listed at the top of smtp_cmd.c.
 *
 * smtp_cmd_parse() ignores extra spaces between verb and argument and at
 * the end of the line (never TABs); arg excludes them. DATA, RSET, QUIT
 * and STARTTLS refuse an argument; HELO, EHLO, MAIL, RCPT, VRFY, EXPN,
 * AUTH and BDAT require one (501 5.5.4).
 *
 * A non-ASCII address is accepted only with ext->smtputf8 and, for MAIL,
 * only with the SMTPUTF8 parameter (else 553 5.6.7). For RCPT, the caller
 * must set ext->smtputf8 only when the transaction's MAIL carried
 * SMTPUTF8 (smtp_mail_args.smtputf8), not merely because it is offered.
 */
#ifndef TODOKU_MAIL_SMTP_CMD_H
#define TODOKU_MAIL_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/addr.h"

enum smtp_verb {
	SMTP_UNKNOWN = 0,
	SMTP_HELO,
	SMTP_EHLO,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_QUIT,
	SMTP_VRFY,
	SMTP_EXPN,
	SMTP_HELP,
	SMTP_STARTTLS,
	SMTP_AUTH,
	SMTP_BDAT,
};

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg; /* points into the line: text after the verb and
			    one space, or "" */
	size_t arglen;
};

/* An SMTP reply chosen by a parser: e.g. 501, "5.5.4", "Syntax error..." */
struct smtp_reply {
	int code;
	const char *status;
	const char *text;
};

enum smtp_body { SMTP_BODY_UNSPEC = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_UNSPEC = 0, SMTP_RET_FULL, SMTP_RET_HDRS };

#define SMTP_NOTIFY_NEVER 0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY 0x8

#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500

struct smtp_mail_args {
	struct mailaddr from;
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1]; /* decoded xtext, "" if absent */
	bool lax_colon; /* "FROM: <": a space followed the colon */
};

struct smtp_rcpt_args {
	struct mailaddr to;
	unsigned notify; /* SMTP_NOTIFY_* bits, 0 if absent */
	char
	    orcpt[SMTP_ORCPT_MAX + 1]; /* "rfc822;addr" decoded, "" if absent */
	bool lax_colon;		       /* "TO: <": a space followed the colon */
};

/* Which ESMTP parameters the server currently accepts. */
struct smtp_ext {
	bool size;
	bool eightbit;
	bool smtputf8;
	bool dsn;
};

/* 0 on success; -1 with *err set (e.g. 500 5.5.2 for unknown verb). */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out,
		   struct smtp_reply *err);
int smtp_mail_parse(const char *arg, size_t len, const struct smtp_ext *ext,
		    struct smtp_mail_args *out, struct smtp_reply *err);
int smtp_rcpt_parse(const char *arg, size_t len, const struct smtp_ext *ext,
		    struct smtp_rcpt_args *out, struct smtp_reply *err);
/* HELO/EHLO argument: a domain or address literal; 0 ok, -1 501 5.5.4 */
int smtp_helo_parse(const char *arg, size_t len, char *dst, size_t dstlen,
		    struct smtp_reply *err);
const char *smtp_verb_name(enum smtp_verb v);

#endif
