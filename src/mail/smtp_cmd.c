/*
 * smtp_cmd — SMTP command lines and MAIL/RCPT arguments; see smtp_cmd.h.
 *
 * Leniency (documented deviations from RFC 5321's single SP):
 *   - any number of spaces between verb and argument, and trailing spaces
 *     at the end of the line, are ignored; a TAB is never a separator
 *     ("MAIL\tFROM:" is an unknown command);
 *   - one space after "FROM:"/"TO:" is tolerated (lax_colon is set), two
 *     are a syntax error;
 *   - ESMTP parameters may be separated by more than one space;
 *   - xtext hex digits may be lower case.
 *
 * Replies chosen (RFC 5321 §4.2.2/4.2.3, RFC 3463, RFC 1870, RFC 6531):
 *   unknown or malformed verb              500 5.5.2
 *   argument given to DATA/RSET/QUIT/STARTTLS  501 5.5.4
 *   argument missing (HELO EHLO MAIL RCPT VRFY EXPN AUTH BDAT)  501 5.5.4
 *   "FROM:" / "TO:" prefix missing         501 5.5.4
 *   bad sender address syntax or length    501 5.1.7 (addr_strerror text)
 *   bad recipient address syntax or length 501 5.1.3 (addr_strerror text)
 *   non-ASCII address without SMTPUTF8     553 5.6.7 (RFC 6531 §3.7.4.2)
 *   parameter syntax, duplicate, bad value 501 5.5.4 (this includes
 *     NOTIFY=NEVER with another keyword, bad xtext in ENVID/ORCPT, an
 *     ORCPT address type other than rfc822/utf-8, RFC 3461 lengths)
 *   unknown or not advertised parameter    555 5.5.4
 *   BODY=BINARYMIME (not implemented)      555 5.5.4
 *   HELO/EHLO argument not a domain/literal 501 5.5.4
 * Every reply text is a static string: attacker bytes are never echoed.
 */
#include "mail/smtp_cmd.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum smtp_argp { SMTP_ARG_NONE, SMTP_ARG_OPT, SMTP_ARG_REQ };

struct smtp_verb_def {
	const char *name;
	enum smtp_verb verb;
	enum smtp_argp argp;
};

static const struct smtp_verb_def smtp_verbs[] = {
    {"HELO", SMTP_HELO, SMTP_ARG_REQ},
    {"EHLO", SMTP_EHLO, SMTP_ARG_REQ},
    {"MAIL", SMTP_MAIL, SMTP_ARG_REQ},
    {"RCPT", SMTP_RCPT, SMTP_ARG_REQ},
    {"DATA", SMTP_DATA, SMTP_ARG_NONE},
    {"RSET", SMTP_RSET, SMTP_ARG_NONE},
    {"NOOP", SMTP_NOOP, SMTP_ARG_OPT},
    {"QUIT", SMTP_QUIT, SMTP_ARG_NONE},
    {"VRFY", SMTP_VRFY, SMTP_ARG_REQ},
    {"EXPN", SMTP_EXPN, SMTP_ARG_REQ},
    {"HELP", SMTP_HELP, SMTP_ARG_OPT},
    {"STARTTLS", SMTP_STARTTLS, SMTP_ARG_NONE},
    {"AUTH", SMTP_AUTH, SMTP_ARG_REQ},
    {"BDAT", SMTP_BDAT, SMTP_ARG_REQ},
};

#define SMTP_NVERBS (sizeof(smtp_verbs) / sizeof(smtp_verbs[0]))

/* A decoded "keyword[=value]" from the parameter list. */
struct smtp_param {
	const char *kw;
	size_t kwlen;
	const char *val; /* NULL when there is no "=" */
	size_t vallen;
};

static int
smtp_fail(struct smtp_reply *err, int code, const char *status,
	  const char *text)
{
	err->code = code;
	err->status = status;
	err->text = text;
	return -1;
}

static int
smtp_syntax(struct smtp_reply *err, const char *text)
{
	return smtp_fail(err, 501, "5.5.4", text);
}

static bool
smtp_is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
smtp_is_alnum(unsigned char c)
{
	return smtp_is_alpha(c) || (c >= '0' && c <= '9');
}

/* Case-insensitive: do the n bytes at s equal the C string w? */
static bool
smtp_word_eq(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

static const struct smtp_verb_def *
smtp_verb_lookup(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < SMTP_NVERBS; i++)
		if (smtp_word_eq(s, n, smtp_verbs[i].name))
			return &smtp_verbs[i];
	return NULL;
}

const char *
smtp_verb_name(enum smtp_verb v)
{
	size_t i;

	for (i = 0; i < SMTP_NVERBS; i++)
		if (smtp_verbs[i].verb == v)
			return smtp_verbs[i].name;
	return "UNKNOWN";
}

static int
smtp_check_argp(const struct smtp_verb_def *def, size_t arglen,
		struct smtp_reply *err)
{
	if (def->argp == SMTP_ARG_NONE && arglen > 0)
		return smtp_syntax(err, "No parameters allowed");
	if (def->argp == SMTP_ARG_REQ && arglen == 0)
		return smtp_syntax(err, "Argument required");
	return 0;
}

int
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out,
	       struct smtp_reply *err)
{
	const struct smtp_verb_def *def;
	size_t vlen = 0, i, e;

	out->verb = SMTP_UNKNOWN;
	out->arg = "";
	out->arglen = 0;
	while (vlen < len && smtp_is_alpha((unsigned char)line[vlen]))
		vlen++;
	def = smtp_verb_lookup(line, vlen);
	if (def == NULL || (vlen < len && line[vlen] != ' '))
		return smtp_fail(err, 500, "5.5.2", "Command unrecognized");
	for (i = vlen; i < len && line[i] == ' '; i++)
		;
	for (e = len; e > i && line[e - 1] == ' '; e--)
		;
	out->verb = def->verb;
	if (e > i) {
		out->arg = line + i;
		out->arglen = e - i;
	}
	return smtp_check_argp(def, out->arglen, err);
}

/*
 * "FROM:" / "TO:" at the start of arg, optionally one space; *pos is set
 * past them. 0 or -1.
 */
static int
smtp_prefix(const char *arg, size_t len, const char *pfx, size_t *pos,
	    bool *lax)
{
	size_t n = strlen(pfx);

	if (len < n || strncasecmp(arg, pfx, n) != 0)
		return -1;
	*lax = false;
	if (n < len && arg[n] == ' ') {
		*lax = true;
		n++;
	}
	*pos = n;
	return 0;
}

/* esmtp-value octets: %d33-60 / %d62-126, and under SMTPUTF8 (utf8)
 * the octets of UTF8-non-ascii too (RFC 6531 §3.3); only a "utf-8"
 * ORCPT takes them, every other parameter refuses them. */
static bool
smtp_is_value_char(unsigned char c, bool utf8)
{
	return (c >= 33 && c <= 126 && c != '=') || (utf8 && c >= 0x80);
}

/*
 * Next "SP keyword[=value]" at s[*pos]. 1 with *p filled, 0 at the end,
 * -1 with a 501 in *err.
 */
static int
smtp_next_param(const char *s, size_t n, size_t *pos, struct smtp_param *p,
		bool utf8, struct smtp_reply *err)
{
	size_t i = *pos;

	if (i >= n)
		return 0;
	if (s[i] != ' ')
		return smtp_syntax(err, "Syntax error after address");
	while (i < n && s[i] == ' ')
		i++;
	if (i >= n)
		return 0;
	p->kw = s + i;
	if (!smtp_is_alnum((unsigned char)s[i]))
		return smtp_syntax(err, "Syntax error in parameters");
	while (i < n && (smtp_is_alnum((unsigned char)s[i]) || s[i] == '-'))
		i++;
	p->kwlen = (size_t)(s + i - p->kw);
	p->val = NULL;
	p->vallen = 0;
	if (i < n && s[i] == '=') {
		p->val = s + ++i;
		while (i < n && smtp_is_value_char((unsigned char)s[i], utf8))
			i++;
		p->vallen = (size_t)(s + i - p->val);
		if (p->vallen == 0)
			return smtp_syntax(err, "Syntax error in parameters");
	}
	if (i < n && s[i] != ' ')
		return smtp_syntax(err, "Syntax error in parameters");
	*pos = i;
	return 1;
}

static int
smtp_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Decode xtext (RFC 3461 §4) into dst (room for max octets plus NUL).
 * Decoded octets must be printable ASCII or space, so no NUL or line
 * break can reach a stored envelope; with allow8, raw octets >= 0x80
 * pass too (RFC 6533 utf-8-addr-unitext; the caller checks them).
 * Returns the length or -1.
 */
static int
smtp_xtext_decode(const char *s, size_t n, char *dst, size_t max, int allow8)
{
	size_t i, o = 0;
	int hi, lo, c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '+') {
			if (i + 2 >= n)
				return -1;
			hi = smtp_hex((unsigned char)s[i + 1]);
			lo = smtp_hex((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		} else if (c < 33 || c == 127 || (c > 127 && !allow8) ||
			   c == '=') {
			return -1;
		}
		if (c < 32 || c == 127 || (c > 127 && !allow8) || o >= max)
			return -1;
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return (int)o;
}

/* One UTF-8 scalar value at s (n octets left): its length in *k, or -1
 * when ill-formed (overlong, surrogate, above U+10FFFF, cut short). */
static long
smtp_utf8_scalar(const unsigned char *s, size_t n, size_t *k)
{
	size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
	long cp = len == 4 ? s[0] & 0x07 : len == 3 ? s[0] & 0x0F : s[0] & 0x1F;
	static const long min[5] = {0, 0, 0x80, 0x800, 0x10000};

	if (len == 0 || s[0] > 0xF4 || len > n)
		return -1;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	*k = len;
	return cp;
}

/* Hex digits needed for cp in an RFC 6533 HEXPOINT: the fewest, at
 * least two. */
static size_t
smtp_hexpoint_digits(long cp)
{
	size_t d = 2;

	for (long v = cp >> 8; v > 0; v >>= 4)
		d++;
	return d;
}

/*
 * A \x{HEX} escape at s (n octets left): its code point, length in *k;
 * -1 unless it is an RFC 6533 §3 EmbeddedUnicodeChar: HEXPOINT names a
 * scalar value outside ASCII or one of the xtext specials it may
 * escape ('+', '=', '\\', SP and controls; the caller refuses the
 * last two), in the fewest hex digits but at least two (no leading
 * zeros: \x{41} and \x{00F6} are not HEXPOINTs). Hex digits in either
 * case (ABNF strings are case-insensitive).
 */
static long
smtp_embedded_char(const char *s, size_t n, size_t *k)
{
	size_t i;
	long cp = 0;
	int h;

	if (n < 5 || s[0] != '\\' || s[1] != 'x' || s[2] != '{')
		return -1;
	for (i = 3; i < n && i < 10 && s[i] != '}'; i++) {
		if ((h = smtp_hex((unsigned char)s[i])) < 0)
			return -1;
		cp = cp * 16 + h;
	}
	if (i == 3 || i >= n || s[i] != '}' || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF) ||
	    i - 3 != smtp_hexpoint_digits(cp) ||
	    (cp > 0x20 && cp < 0x7f && cp != '+' && cp != '=' && cp != '\\'))
		return -1;
	*k = i + 1;
	return cp;
}

/*
 * RFC 6533 §3: the address of a "utf-8" ORCPT, given as
 * utf-8-addr-xtext (\x{HEX} for what is not a QCHAR) or, under SMTPUTF8
 * only, utf-8-addr-unitext (raw UTF-8, well-formed; the caller lets
 * 8-bit octets through only then), normalised in place to the 7-bit
 * utf-8-addr-xtext form: every non-ASCII character and '\\', '+', '='
 * as \x{HEX} (upper-case, no leading zeros). Controls (C0, DEL, C1) and
 * spaces are refused, as in every other stored value. -1 when malformed
 * or when the normalised form would not fit max octets.
 */
static int
smtp_orcpt_utf8(char *s, size_t max)
{
	char in[SMTP_ORCPT_MAX + 1];
	size_t n = strlen(s), i = 0, o = 0, k;
	long cp;

	if (n == 0 || n >= sizeof(in))
		return -1;
	memcpy(in, s, n + 1);
	while (i < n) {
		unsigned char c = (unsigned char)in[i];
		char tmp[12];
		int len;

		if (c > 0x20 && c < 0x7f && c != '\\' && c != '+' && c != '=') {
			if (o + 1 > max)
				return -1;
			s[o++] = (char)c;
			i++;
			continue;
		}
		k = 1;
		cp = c == '\\'	 ? smtp_embedded_char(in + i, n - i, &k)
		     : c >= 0x80 ? smtp_utf8_scalar(
				       (const unsigned char *)in + i, n - i, &k)
		     : (c == '+' || c == '=') ? c
					      : -1;
		if (cp < 0x21 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
			return -1;
		len = snprintf(tmp, sizeof(tmp), "\\x{%lX}", (unsigned long)cp);
		if (cp < 0x7f && cp != '\\' && cp != '+' && cp != '=')
			len = snprintf(tmp, sizeof(tmp), "%c", (int)cp);
		if (o + (size_t)len > max)
			return -1;
		memcpy(s + o, tmp, (size_t)len);
		o += (size_t)len;
		i += k;
	}
	s[o] = '\0';
	return 0;
}

static int
smtp_param_size(const struct smtp_param *p, const struct smtp_ext *ext,
		void *args, struct smtp_reply *err)
{
	struct smtp_mail_args *m = args;
	uint64_t v = 0;
	size_t i;

	if (p->val == NULL || p->vallen > 20)
		return smtp_syntax(err, "Invalid SIZE value");
	for (i = 0; i < p->vallen; i++) {
		unsigned d = (unsigned char)p->val[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return smtp_syntax(err, "Invalid SIZE value");
		v = v * 10 + d;
	}
	m->has_size = true;
	m->size = v;
	return 0;
}

static int
smtp_param_body(const struct smtp_param *p, const struct smtp_ext *ext,
		void *args, struct smtp_reply *err)
{
	struct smtp_mail_args *m = args;

	if (p->val != NULL && smtp_word_eq(p->val, p->vallen, "7BIT"))
		m->body = SMTP_BODY_7BIT;
	else if (p->val != NULL && smtp_word_eq(p->val, p->vallen, "8BITMIME"))
		m->body = SMTP_BODY_8BITMIME;
	else if (p->val != NULL &&
		 smtp_word_eq(p->val, p->vallen, "BINARYMIME"))
		return smtp_fail(err, 555, "5.5.4", "BINARYMIME not supported");
	else
		return smtp_syntax(err, "Invalid BODY value");
	return 0;
}

static int
smtp_param_smtputf8(const struct smtp_param *p, const struct smtp_ext *ext,
		    void *args, struct smtp_reply *err)
{
	struct smtp_mail_args *m = args;

	if (p->val != NULL)
		return smtp_syntax(err, "SMTPUTF8 takes no value");
	m->smtputf8 = true;
	return 0;
}

static int
smtp_param_ret(const struct smtp_param *p, const struct smtp_ext *ext,
	       void *args, struct smtp_reply *err)
{
	struct smtp_mail_args *m = args;

	if (p->val != NULL && smtp_word_eq(p->val, p->vallen, "FULL"))
		m->ret = SMTP_RET_FULL;
	else if (p->val != NULL && smtp_word_eq(p->val, p->vallen, "HDRS"))
		m->ret = SMTP_RET_HDRS;
	else
		return smtp_syntax(err, "Invalid RET value");
	return 0;
}

static int
smtp_param_envid(const struct smtp_param *p, const struct smtp_ext *ext,
		 void *args, struct smtp_reply *err)
{
	struct smtp_mail_args *m = args;

	if (p->val == NULL || smtp_xtext_decode(p->val, p->vallen, m->envid,
						SMTP_ENVID_MAX, 0) < 0) {
		m->envid[0] = '\0';
		return smtp_syntax(err, "Invalid ENVID value");
	}
	return 0;
}

/* One NOTIFY keyword to its bit, 0 if unknown. */
static unsigned
smtp_notify_bit(const char *s, size_t n)
{
	if (smtp_word_eq(s, n, "NEVER"))
		return SMTP_NOTIFY_NEVER;
	if (smtp_word_eq(s, n, "SUCCESS"))
		return SMTP_NOTIFY_SUCCESS;
	if (smtp_word_eq(s, n, "FAILURE"))
		return SMTP_NOTIFY_FAILURE;
	if (smtp_word_eq(s, n, "DELAY"))
		return SMTP_NOTIFY_DELAY;
	return 0;
}

static int
smtp_param_notify(const struct smtp_param *p, const struct smtp_ext *ext,
		  void *args, struct smtp_reply *err)
{
	struct smtp_rcpt_args *r = args;
	size_t i = 0, start;
	unsigned bits = 0, bit;

	if (p->val == NULL)
		return smtp_syntax(err, "Invalid NOTIFY value");
	while (i <= p->vallen) {
		start = i;
		while (i < p->vallen && p->val[i] != ',')
			i++;
		bit = smtp_notify_bit(p->val + start, i - start);
		if (bit == 0 || (bits & bit) != 0)
			return smtp_syntax(err, "Invalid NOTIFY value");
		bits |= bit;
		i++;
	}
	if ((bits & SMTP_NOTIFY_NEVER) != 0 && bits != SMTP_NOTIFY_NEVER)
		return smtp_syntax(err, "NOTIFY=NEVER must be alone");
	r->notify = bits;
	return 0;
}

/*
 * ORCPT=addr-type;xtext, stored as "addr-type;decoded". The whole
 * parameter value is at most 500 octets as sent (RFC 3461 §4.2); the
 * addr-type must be one we can report back: "rfc822" or "utf-8" (RFC
 * 6533: stored in its 7-bit utf-8-addr-xtext form, see
 * smtp_orcpt_utf8; the DSN decodes it for people).
 */
static int
smtp_param_orcpt(const struct smtp_param *p, const struct smtp_ext *ext,
		 void *args, struct smtp_reply *err)
{
	struct smtp_rcpt_args *r = args;
	const char *semi;
	size_t tlen;
	int utf8;

	semi = p->val != NULL ? memchr(p->val, ';', p->vallen) : NULL;
	if (semi == NULL || semi + 1 == p->val + p->vallen ||
	    p->vallen > SMTP_ORCPT_MAX)
		return smtp_syntax(err, "Invalid ORCPT value");
	tlen = (size_t)(semi - p->val);
	utf8 = smtp_word_eq(p->val, tlen, "utf-8");
	if (!smtp_word_eq(p->val, tlen, "rfc822") && !utf8)
		return smtp_syntax(err, "ORCPT address type not supported");
	memcpy(r->orcpt, p->val, tlen + 1);
	/* 8-bit octets, raw or xtext-encoded, only as utf-8-addr-unitext
	 * and only in an SMTPUTF8 transaction (RFC 6533 §3, RFC 6531) */
	if (smtp_xtext_decode(semi + 1, p->vallen - tlen - 1,
			      r->orcpt + tlen + 1, SMTP_ORCPT_MAX - tlen - 1,
			      utf8 && ext->smtputf8) < 0 ||
	    (utf8 && smtp_orcpt_utf8(r->orcpt + tlen + 1,
				     SMTP_ORCPT_MAX - tlen - 1) < 0)) {
		r->orcpt[0] = '\0';
		return smtp_syntax(err, "Invalid ORCPT value");
	}
	return 0;
}

typedef int (*smtp_param_fn)(const struct smtp_param *, const struct smtp_ext *,
			     void *, struct smtp_reply *);

/* A known parameter: its keyword, the smtp_ext flag that enables it. */
struct smtp_param_def {
	const char *kw;
	size_t ext_off;
	smtp_param_fn fn;
};

static const struct smtp_param_def smtp_mail_params[] = {
    {"SIZE", offsetof(struct smtp_ext, size), smtp_param_size},
    {"BODY", offsetof(struct smtp_ext, eightbit), smtp_param_body},
    {"SMTPUTF8", offsetof(struct smtp_ext, smtputf8), smtp_param_smtputf8},
    {"RET", offsetof(struct smtp_ext, dsn), smtp_param_ret},
    {"ENVID", offsetof(struct smtp_ext, dsn), smtp_param_envid},
    {NULL, 0, NULL},
};

static const struct smtp_param_def smtp_rcpt_params[] = {
    {"NOTIFY", offsetof(struct smtp_ext, dsn), smtp_param_notify},
    {"ORCPT", offsetof(struct smtp_ext, dsn), smtp_param_orcpt},
    {NULL, 0, NULL},
};

static bool
smtp_ext_on(const struct smtp_ext *ext, size_t off)
{
	const bool *flag = (const bool *)((const char *)ext + off);

	return *flag;
}

/* All parameters after the path; each known one at most once. */
static int
smtp_parse_params(const char *s, size_t n, const struct smtp_ext *ext,
		  const struct smtp_param_def *defs, void *args,
		  const char *unknown, struct smtp_reply *err)
{
	struct smtp_param p;
	unsigned seen = 0;
	size_t pos = 0, k;
	int r;

	while ((r = smtp_next_param(s, n, &pos, &p, ext->smtputf8, err)) > 0) {
		for (k = 0; defs[k].kw != NULL; k++)
			if (smtp_word_eq(p.kw, p.kwlen, defs[k].kw))
				break;
		if (defs[k].kw == NULL || !smtp_ext_on(ext, defs[k].ext_off))
			return smtp_fail(err, 555, "5.5.4", unknown);
		if (seen & (1u << k))
			return smtp_syntax(err, "Duplicate parameter");
		seen |= 1u << k;
		if (defs[k].fn(&p, ext, args, err) < 0)
			return -1;
	}
	return r;
}

static bool
smtp_has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

static int
smtp_addr_fail(enum addr_err e, const char *status, struct smtp_reply *err)
{
	if (e == ADDR_E_8BIT)
		return smtp_fail(err, 553, "5.6.7",
				 "Non-ASCII address requires SMTPUTF8");
	return smtp_fail(err, 501, status, addr_strerror(e));
}

static void
smtp_mail_clear(struct smtp_mail_args *out)
{
	memset(out, 0, sizeof(*out));
	out->body = SMTP_BODY_UNSPEC;
	out->ret = SMTP_RET_UNSPEC;
}

int
smtp_mail_parse(const char *arg, size_t len, const struct smtp_ext *ext,
		struct smtp_mail_args *out, struct smtp_reply *err)
{
	unsigned flags = ADDR_F_NULL_OK;
	enum addr_err e;
	size_t pos, end;

	smtp_mail_clear(out);
	if (smtp_prefix(arg, len, "FROM:", &pos, &out->lax_colon) < 0)
		return smtp_syntax(err, "Syntax: MAIL FROM:<address>");
	if (ext->smtputf8)
		flags |= ADDR_F_UTF8;
	e = addr_parse_path(arg + pos, len - pos, flags, &out->from, &end);
	if (e != ADDR_OK)
		return smtp_addr_fail(e, "5.1.7", err);
	pos += end;
	if (smtp_parse_params(arg + pos, len - pos, ext, smtp_mail_params, out,
			      "MAIL parameter not recognized", err) < 0)
		return -1;
	if (!out->smtputf8 &&
	    (smtp_has_8bit(out->from.local) || smtp_has_8bit(out->from.domain)))
		return smtp_addr_fail(ADDR_E_8BIT, "5.1.7", err);
	return 0;
}

int
smtp_rcpt_parse(const char *arg, size_t len, const struct smtp_ext *ext,
		struct smtp_rcpt_args *out, struct smtp_reply *err)
{
	unsigned flags = ADDR_F_NO_DOMAIN_OK;
	enum addr_err e;
	size_t pos, end;

	memset(out, 0, sizeof(*out));
	if (smtp_prefix(arg, len, "TO:", &pos, &out->lax_colon) < 0)
		return smtp_syntax(err, "Syntax: RCPT TO:<address>");
	if (ext->smtputf8)
		flags |= ADDR_F_UTF8;
	e = addr_parse_path(arg + pos, len - pos, flags, &out->to, &end);
	if (e != ADDR_OK)
		return smtp_addr_fail(e, "5.1.3", err);
	pos += end;
	return smtp_parse_params(arg + pos, len - pos, ext, smtp_rcpt_params,
				 out, "RCPT parameter not recognized", err);
}

int
smtp_helo_parse(const char *arg, size_t len, char *dst, size_t dstlen,
		struct smtp_reply *err)
{
	size_t i;

	if (len == 0)
		return smtp_syntax(err, "Domain name required");
	if (len >= dstlen)
		return smtp_syntax(err, "Domain name too long");
	if (arg[0] == '[') {
		if (!addr_literal_valid(arg, len))
			return smtp_syntax(err, "Invalid address literal");
		memcpy(dst, arg, len);
	} else {
		if (!addr_domain_valid(arg, len))
			return smtp_syntax(err, "Invalid domain name");
		for (i = 0; i < len; i++)
			dst[i] = (arg[i] >= 'A' && arg[i] <= 'Z')
				     ? (char)(arg[i] - 'A' + 'a')
				     : arg[i];
	}
	dst[len] = '\0';
	return 0;
}
