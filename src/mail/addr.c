/*
 * addr — RFC 5321 §4.1.2 paths and mailboxes; see addr.h for the contract.
 *
 * The parser walks the input once, left to right, and never writes past
 * the fixed arrays of struct mailaddr: every length is checked against
 * its limit before anything is copied. No heap, no globals.
 *
 * Grammar followed (RFC 5321 §4.1.2, §4.1.3; RFC 6531 §3.3 for UTF-8):
 *   Path          = "<" [ A-d-l ":" ] Mailbox ">"
 *   A-d-l         = At-domain *( "," At-domain ), At-domain = "@" Domain
 *   Mailbox       = Local-part "@" ( Domain / address-literal )
 *   Local-part    = Dot-string / Quoted-string
 *   address-literal = "[" ( IPv4 / "IPv6:" IPv6 ) "]"   (checked with
 *                   inet_pton; General-address-literal is refused)
 * Length limits: local part 64, domain 255, whole path 256 including the
 * brackets and any source route; a bare mailbox is therefore at most 254.
 * A trailing dot in a domain is refused.
 */
#include "mail/addr.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bytes of the longest address literal we accept, brackets included. */
#define ADDR_LITERAL_MAX 64

static bool
addr_is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
addr_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
addr_is_atext(unsigned char c)
{
	return addr_is_alpha(c) || addr_is_digit(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* qtextSMTP and the second octet of quoted-pairSMTP share %d32-126. */
static bool
addr_is_qtext(unsigned char c)
{
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

static unsigned char
addr_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629) starting at p, or
 * 0 if there is none: no overlong forms, no surrogates, nothing above
 * U+10FFFF, no C1 controls, no ASCII (callers handle that themselves;
 * C0 controls and DEL are never atext/qtext).
 */
static size_t
addr_utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	size_t len, i;

	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	/* C1 controls U+0080..U+009F: no place in an address */
	if (c == 0xC2 && p[1] <= 0x9F)
		return 0;
	return len;
}

/*
 * Length of one non-ASCII character at p for the given flags, or 0 with
 * *err set (ADDR_E_8BIT without ADDR_F_UTF8, else ADDR_E_SYNTAX).
 */
static size_t
addr_8bit_len(const unsigned char *p, size_t n, unsigned flags,
	      enum addr_err *err)
{
	size_t len;

	if (!(flags & ADDR_F_UTF8)) {
		*err = ADDR_E_8BIT;
		return 0;
	}
	len = addr_utf8_len(p, n);
	if (len == 0)
		*err = ADDR_E_SYNTAX;
	return len;
}

/* Dot-string: Atom *("." Atom). Sets *used to its length. */
static enum addr_err
addr_scan_dot_string(const unsigned char *s, size_t n, unsigned flags,
		     size_t *used)
{
	enum addr_err err = ADDR_E_SYNTAX;
	size_t i = 0, atom = 0, k;

	while (i < n) {
		if (addr_is_atext(s[i])) {
			i++;
			atom++;
		} else if (s[i] >= 0x80) {
			k = addr_8bit_len(s + i, n - i, flags, &err);
			if (k == 0)
				return err;
			i += k;
			atom++;
		} else if (s[i] == '.' && atom > 0) {
			i++;
			atom = 0;
		} else {
			break;
		}
	}
	if (atom == 0)
		return ADDR_E_SYNTAX; /* empty, or ends with a dot */
	*used = i;
	return ADDR_OK;
}

/* Quoted-string, starting at the opening quote; *used includes both. */
static enum addr_err
addr_scan_quoted(const unsigned char *s, size_t n, unsigned flags, size_t *used)
{
	enum addr_err err = ADDR_E_SYNTAX;
	size_t i = 1, k;

	while (i < n && s[i] != '"') {
		if (addr_is_qtext(s[i])) {
			i++;
		} else if (s[i] == '\\') {
			if (i + 1 >= n || s[i + 1] < 32 || s[i + 1] > 126)
				return ADDR_E_SYNTAX;
			i += 2;
		} else if (s[i] >= 0x80) {
			k = addr_8bit_len(s + i, n - i, flags, &err);
			if (k == 0)
				return err;
			i += k;
		} else {
			return ADDR_E_SYNTAX;
		}
	}
	if (i >= n)
		return ADDR_E_SYNTAX;
	*used = i + 1;
	return ADDR_OK;
}

/* Extent of a would-be domain: LDH, dots and (checked later) 8-bit. */
static size_t
addr_domain_span(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n && (addr_is_alpha(s[i]) || addr_is_digit(s[i]) ||
			 s[i] == '-' || s[i] == '.' || s[i] >= 0x80))
		i++;
	return i;
}

/* One label: let-dig [ldh-str], 1..63 octets; 8-bit per flags. */
static enum addr_err
addr_check_label(const unsigned char *s, size_t n, unsigned flags)
{
	enum addr_err err = ADDR_E_BAD_DOMAIN;
	size_t i = 0, k;

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return ADDR_E_BAD_DOMAIN;
	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		k = addr_8bit_len(s + i, n - i, flags, &err);
		if (k == 0)
			return err == ADDR_E_8BIT ? err : ADDR_E_BAD_DOMAIN;
		i += k;
	}
	return ADDR_OK;
}

/* A whole domain name of n octets (span already limited to LDH/8-bit). */
static enum addr_err
addr_check_domain(const unsigned char *s, size_t n, unsigned flags)
{
	enum addr_err err;
	size_t start = 0, i;

	if (n == 0)
		return ADDR_E_BAD_DOMAIN;
	if (n > ADDR_DOMAIN_MAX)
		return ADDR_E_DOMAIN_TOO_LONG;
	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		err = addr_check_label(s + start, i - start, flags);
		if (err != ADDR_OK)
			return err;
		start = i + 1;
	}
	return ADDR_OK;
}

bool
addr_domain_valid(const char *d, size_t n)
{
	const unsigned char *s = (const unsigned char *)d;

	if (d == NULL || addr_domain_span(s, n) != n)
		return false;
	return addr_check_domain(s, n, 0) == ADDR_OK;
}

/* Content between the brackets of an address literal. */
static bool
addr_literal_body_valid(const char *s, size_t n)
{
	char tmp[ADDR_LITERAL_MAX];
	unsigned char bin[16];
	int af = AF_INET;

	if (n >= 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		af = AF_INET6;
		s += 5;
		n -= 5;
	}
	if (n == 0 || n >= sizeof(tmp) || memchr(s, '\0', n) != NULL)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(af, tmp, bin) == 1;
}

bool
addr_literal_valid(const char *s, size_t n)
{
	if (s == NULL || n < 2 || n > ADDR_LITERAL_MAX || s[0] != '[' ||
	    s[n - 1] != ']')
		return false;
	return addr_literal_body_valid(s + 1, n - 2);
}

/* Address literal starting at '['; *used includes both brackets. */
static enum addr_err
addr_scan_literal(const char *s, size_t n, size_t *used)
{
	const char *close =
	    memchr(s, ']', n < ADDR_LITERAL_MAX ? n : ADDR_LITERAL_MAX);

	if (close == NULL)
		return ADDR_E_BAD_DOMAIN;
	*used = (size_t)(close - s) + 1;
	return addr_literal_valid(s, *used) ? ADDR_OK : ADDR_E_BAD_DOMAIN;
}

/* Domain or address literal; copied (names lowercased) into out. */
static enum addr_err
addr_parse_domain_part(const char *s, size_t n, unsigned flags,
		       struct mailaddr *out, size_t *used)
{
	const unsigned char *u = (const unsigned char *)s;
	enum addr_err err;
	size_t len, i;

	if (n > 0 && s[0] == '[') {
		err = addr_scan_literal(s, n, &len);
		if (err != ADDR_OK)
			return err;
		memcpy(out->domain, s, len);
		out->domain[len] = '\0';
		*used = len;
		return ADDR_OK;
	}
	len = addr_domain_span(u, n);
	err = addr_check_domain(u, len, flags);
	if (err != ADDR_OK)
		return err;
	for (i = 0; i < len; i++)
		out->domain[i] = (char)addr_lower(u[i]);
	out->domain[len] = '\0';
	*used = len;
	return ADDR_OK;
}

/*
 * Mailbox at s, stopping at the first octet that cannot continue it.
 * Without "@domain" the local part is still stored and ADDR_E_NO_DOMAIN
 * returned, so callers can apply the postmaster rule.
 */
static enum addr_err
addr_parse_mbox(const char *s, size_t n, unsigned flags, struct mailaddr *out,
		size_t *used)
{
	const unsigned char *u = (const unsigned char *)s;
	enum addr_err err;
	size_t llen, dlen;

	if (n > 0 && s[0] == '"')
		err = addr_scan_quoted(u, n, flags, &llen);
	else
		err = addr_scan_dot_string(u, n, flags, &llen);
	if (err != ADDR_OK)
		return err;
	if (llen > ADDR_LOCAL_MAX)
		return ADDR_E_LOCAL_TOO_LONG;
	memcpy(out->local, s, llen);
	out->local[llen] = '\0';
	out->quoted = s[0] == '"';
	*used = llen;
	if (llen >= n || s[llen] != '@')
		return ADDR_E_NO_DOMAIN;
	err = addr_parse_domain_part(s + llen + 1, n - llen - 1, flags, out,
				     &dlen);
	if (err != ADDR_OK)
		return err;
	*used = llen + 1 + dlen;
	return ADDR_OK;
}

/* "postmaster" without a domain, when the caller allows it. */
static enum addr_err
addr_no_domain(struct mailaddr *out, unsigned flags)
{
	if (!(flags & ADDR_F_NO_DOMAIN_OK) || out->quoted ||
	    strcasecmp(out->local, "postmaster") != 0)
		return ADDR_E_NO_DOMAIN;
	memcpy(out->local, "postmaster", sizeof("postmaster"));
	out->domain[0] = '\0';
	return ADDR_OK;
}

static void
addr_clear(struct mailaddr *out)
{
	out->local[0] = '\0';
	out->domain[0] = '\0';
	out->quoted = false;
	out->is_null = false;
}

/* Source route "@a,@b:" (discarded); *used is 0 when there is none. */
static enum addr_err
addr_skip_adl(const char *s, size_t n, size_t *used)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, len;

	*used = 0;
	if (n == 0 || s[0] != '@')
		return ADDR_OK;
	for (;;) {
		if (i >= n || s[i] != '@')
			return ADDR_E_SYNTAX;
		i++;
		len = addr_domain_span(u + i, n - i);
		if (addr_check_domain(u + i, len, 0) != ADDR_OK)
			return ADDR_E_BAD_DOMAIN;
		i += len;
		if (i < n && s[i] == ',') {
			i++;
			continue;
		}
		if (i < n && s[i] == ':')
			break;
		return ADDR_E_SYNTAX;
	}
	*used = i + 1;
	return ADDR_OK;
}

static enum addr_err
addr_null_path(unsigned flags, struct mailaddr *out, size_t *end)
{
	if (!(flags & ADDR_F_NULL_OK))
		return ADDR_E_NULL_NOT_ALLOWED;
	out->is_null = true;
	*end = 2;
	return ADDR_OK;
}

/* Maps "no domain" to the postmaster rule; other errors pass through. */
static enum addr_err
addr_finish_mbox(enum addr_err err, bool routed, unsigned flags,
		 struct mailaddr *out)
{
	if (err == ADDR_E_NO_DOMAIN && !routed)
		err = addr_no_domain(out, flags);
	return err;
}

enum addr_err
addr_parse_path(const char *s, size_t n, unsigned flags, struct mailaddr *out,
		size_t *end)
{
	enum addr_err err;
	size_t adl, used, i;

	addr_clear(out);
	if (n == 0 || s[0] != '<')
		return ADDR_E_NO_BRACKETS;
	if (n >= 2 && s[1] == '>')
		return addr_null_path(flags, out, end);
	err = addr_skip_adl(s + 1, n - 1, &adl);
	if (err != ADDR_OK)
		return err;
	i = 1 + adl;
	err = addr_parse_mbox(s + i, n - i, flags, out, &used);
	err = addr_finish_mbox(err, adl > 0, flags, out);
	if (err != ADDR_OK)
		return err;
	i += used;
	if (i >= n)
		return ADDR_E_NO_BRACKETS;
	if (s[i] != '>')
		return ADDR_E_SYNTAX;
	if (i + 1 > ADDR_PATH_MAX)
		return ADDR_E_PATH_TOO_LONG;
	*end = i + 1;
	return ADDR_OK;
}

enum addr_err
addr_parse_mailbox(const char *s, size_t n, unsigned flags,
		   struct mailaddr *out)
{
	enum addr_err err;
	size_t used;

	addr_clear(out);
	if (n == 0) {
		if (!(flags & ADDR_F_NULL_OK))
			return ADDR_E_NULL_NOT_ALLOWED;
		out->is_null = true;
		return ADDR_OK;
	}
	err = addr_parse_mbox(s, n, flags, out, &used);
	err = addr_finish_mbox(err, false, flags, out);
	if (err != ADDR_OK)
		return err;
	if (used != n)
		return ADDR_E_SYNTAX;
	if (n > ADDR_PATH_MAX - 2)
		return ADDR_E_PATH_TOO_LONG;
	return ADDR_OK;
}

const char *
addr_strerror(enum addr_err e)
{
	switch (e) {
	case ADDR_OK:
		return "no error";
	case ADDR_E_SYNTAX:
		return "address syntax error";
	case ADDR_E_NO_BRACKETS:
		return "address must be enclosed in <>";
	case ADDR_E_LOCAL_TOO_LONG:
		return "local part longer than 64 octets";
	case ADDR_E_DOMAIN_TOO_LONG:
		return "domain longer than 255 octets";
	case ADDR_E_PATH_TOO_LONG:
		return "address longer than 256 octets";
	case ADDR_E_BAD_DOMAIN:
		return "invalid domain name";
	case ADDR_E_8BIT:
		return "non-ASCII address without SMTPUTF8";
	case ADDR_E_NULL_NOT_ALLOWED:
		return "null address not allowed here";
	case ADDR_E_NO_DOMAIN:
		return "address lacks a domain";
	}
	return "unknown address error";
}

void
addr_format(const struct mailaddr *a, char *dst, size_t len)
{
	if (len == 0)
		return;
	if (a->is_null)
		dst[0] = '\0';
	else if (a->domain[0] == '\0')
		snprintf(dst, len, "%s", a->local);
	else
		snprintf(dst, len, "%s@%s", a->local, a->domain);
}

bool
addr_equal(const struct mailaddr *a, const struct mailaddr *b)
{
	if (a->is_null || b->is_null)
		return a->is_null == b->is_null;
	return strcmp(a->local, b->local) == 0 &&
	       strcasecmp(a->domain, b->domain) == 0;
}

static bool
addr_has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

bool
addr_local_ascii(const struct mailaddr *a)
{
	return !addr_has_8bit(a->local);
}

bool
addr_ascii(const struct mailaddr *a)
{
	return !addr_has_8bit(a->local) && !addr_has_8bit(a->domain);
}

enum addr_err
addr_idna_ascii(const char *d, char *out, size_t outlen)
{
	uint8_t *res = NULL;
	size_t n;
	int rc;

	if (!addr_has_8bit(d)) {
		n = strlen(d);
		if (n >= outlen)
			return ADDR_E_DOMAIN_TOO_LONG;
		for (size_t i = 0; i <= n; i++)
			out[i] = (char)addr_lower((unsigned char)d[i]);
		return ADDR_OK;
	}
	rc = idn2_lookup_u8((const uint8_t *)d, &res,
			    IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK || res == NULL) {
		idn2_free(res);
		return rc == IDN2_TOO_BIG_DOMAIN ? ADDR_E_DOMAIN_TOO_LONG
						 : ADDR_E_BAD_DOMAIN;
	}
	n = strlen((const char *)res);
	if (n > ADDR_DOMAIN_MAX || n >= outlen) {
		idn2_free(res);
		return ADDR_E_DOMAIN_TOO_LONG;
	}
	for (size_t i = 0; i <= n; i++)
		out[i] = (char)addr_lower(res[i]);
	idn2_free(res);
	/* UTS #46 mapping may yield anything (U+00A0 becomes a space):
	 * only a valid LDH name is a domain */
	return addr_domain_valid(out, n) ? ADDR_OK : ADDR_E_BAD_DOMAIN;
}

enum addr_err
addr_domain_ascii(struct mailaddr *a)
{
	char d[ADDR_DOMAIN_MAX + 1];
	enum addr_err e;

	if (a->is_null || !addr_has_8bit(a->domain))
		return ADDR_OK;
	e = addr_idna_ascii(a->domain, d, sizeof(d));
	if (e != ADDR_OK)
		return e;
	if (strlen(a->local) + 1 + strlen(d) > ADDR_PATH_MAX - 2)
		return ADDR_E_DOMAIN_TOO_LONG;
	memcpy(a->domain, d, strlen(d) + 1);
	return ADDR_OK;
}
