/* smtp_reply — see smtp_reply.h. */
#include "mail/smtp_reply.h"

#include <string.h>
#include <strings.h>

enum smtp_reply_state {
	SR_LINE, /* reading a line */
	SR_DEAD, /* a protocol error ended the stream */
};

static const char *const sr_errstr[] = {
    [SMTP_REPLY_OK] = "ok",
    [SMTP_REPLY_ESYNTAX] = "reply line without a reply code",
    [SMTP_REPLY_EMIXED] = "reply code changed inside a multi-line reply",
    [SMTP_REPLY_ELONG] = "reply line too long",
    [SMTP_REPLY_ELINES] = "too many reply lines",
    [SMTP_REPLY_EBIG] = "reply too long",
    [SMTP_REPLY_ENOMEM] = "out of memory reading a reply",
};

const char *
smtp_reply_strerror(enum smtp_reply_err e)
{
	if ((unsigned)e >= sizeof(sr_errstr) / sizeof(sr_errstr[0]))
		return "unknown reply error";
	return sr_errstr[e];
}

void
smtp_response_init(struct smtp_response *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->text, SMTP_REPLY_TEXT_MAX);
}

void
smtp_response_free(struct smtp_response *r)
{
	buf_free(&r->text);
	smtp_response_init(r);
}

int
smtp_response_copy(struct smtp_response *dst, const struct smtp_response *src)
{
	*dst = *src;
	buf_init(&dst->text, SMTP_REPLY_TEXT_MAX);
	if (src->text.len > 0 &&
	    buf_add(&dst->text, src->text.data, src->text.len) < 0) {
		smtp_response_init(dst);
		return -1;
	}
	return 0;
}

const char *
smtp_response_line(const struct smtp_response *r, size_t i, size_t *len)
{
	if (i >= r->nlines || r->text.data == NULL) {
		*len = 0;
		return "";
	}
	*len = r->lines[i].len;
	return r->text.data + r->lines[i].off;
}

void
smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	p->state = SR_LINE;
	p->cr = false;
	p->linelen = 0;
	smtp_response_init(&p->cur);
}

void
smtp_reply_parser_free(struct smtp_reply_parser *p)
{
	smtp_response_free(&p->cur);
	p->state = SR_DEAD;
}

bool
smtp_reply_parser_dead(const struct smtp_reply_parser *p)
{
	return p->state == SR_DEAD;
}

static bool
sr_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 1 to 3 digits; returns the count, 0 if none. */
static size_t
sr_digits(const char *s, size_t n, size_t max)
{
	size_t i = 0;

	while (i < n && i < max && sr_digit(s[i]))
		i++;
	if (i < n && i == max && sr_digit(s[i]))
		return 0; /* too many digits */
	return i;
}

size_t
smtp_status_parse(const char *s, size_t n, char *dst)
{
	size_t i, d;

	dst[0] = '\0';
	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	i = 2;
	d = sr_digits(s + i, n - i, 3);
	if (d == 0 || i + d >= n || s[i + d] != '.')
		return 0;
	i += d + 1;
	d = sr_digits(s + i, n - i, 3);
	if (d == 0)
		return 0;
	i += d;
	if (i < n && s[i] != ' ')
		return 0;
	memcpy(dst, s, i);
	dst[i] = '\0';
	return i;
}

void
smtp_response_status(const struct smtp_response *r, char *dst)
{
	int cls = r->code / 100;

	if (r->nlines > 0 && r->lines[0].status[0] != '\0' &&
	    r->lines[0].status[0] - '0' == cls) {
		memcpy(dst, r->lines[0].status, SMTP_STATUS_MAX);
		return;
	}
	if (cls == 2)
		memcpy(dst, "2.0.0", 6);
	else if (cls == 4)
		memcpy(dst, "4.0.0", 6);
	else
		memcpy(dst, "5.0.0", 6);
}

/* The reply code of a line, or 0 when the line has no valid one. */
static int
sr_code(const char *l, size_t n, bool *last)
{
	if (n < 3 || l[0] < '2' || l[0] > '5' || !sr_digit(l[1]) ||
	    !sr_digit(l[2]))
		return 0;
	if (n > 3 && l[3] != ' ' && l[3] != '-')
		return 0;
	*last = n == 3 || l[3] == ' ';
	return (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
}

/* Store the current line in p->cur; sets cur.error on failure. */
static void
sr_store(struct smtp_reply_parser *p)
{
	struct smtp_response *r = &p->cur;
	struct smtp_reply_line *ln;
	size_t sep = r->nlines > 0 ? 2 : 0;

	if (r->nlines == SMTP_REPLY_LINES_MAX) {
		r->error = SMTP_REPLY_ELINES;
		return;
	}
	if (r->text.len + sep + p->linelen > SMTP_REPLY_TEXT_MAX) {
		r->error = SMTP_REPLY_EBIG;
		return;
	}
	if ((sep && buf_add(&r->text, "\r\n", 2) < 0) ||
	    buf_add(&r->text, p->line, p->linelen) < 0) {
		r->error = SMTP_REPLY_ENOMEM;
		return;
	}
	ln = &r->lines[r->nlines++];
	ln->off = (uint32_t)(r->text.len - p->linelen);
	ln->len = (uint32_t)p->linelen;
	ln->status[0] = '\0';
	if (p->linelen > 4)
		smtp_status_parse(p->line + 4, p->linelen - 4, ln->status);
}

/* A line is complete (or overlong: err set); true when the reply is. */
static bool
sr_line_end(struct smtp_reply_parser *p, enum smtp_reply_err err)
{
	struct smtp_response *r = &p->cur;
	bool last = false;
	int code = sr_code(p->line, p->linelen, &last);

	if (r->nlines == 0)
		r->code = code;
	sr_store(p);
	p->linelen = 0;
	if (r->error == SMTP_REPLY_OK)
		r->error = err;
	if (r->error == SMTP_REPLY_OK && code == 0)
		r->error = SMTP_REPLY_ESYNTAX;
	if (r->error == SMTP_REPLY_OK && code != r->code)
		r->error = SMTP_REPLY_EMIXED;
	if (r->error != SMTP_REPLY_OK) {
		p->state = SR_DEAD;
		return true;
	}
	return last;
}

/* Append one octet to the line; true when it did not fit. */
static bool
sr_addc(struct smtp_reply_parser *p, char c)
{
	if (p->linelen == SMTP_REPLY_LINE_MAX)
		return true;
	p->line[p->linelen++] = c;
	return false;
}

/* One octet; true when a reply is complete. */
static bool
sr_octet(struct smtp_reply_parser *p, char c)
{
	bool full = false;

	if (c == '\n') {
		if (!p->cr)
			p->cur.bare_lf = true;
		p->cr = false;
		return sr_line_end(p, SMTP_REPLY_OK);
	}
	if (p->cr)
		full = sr_addc(p, '\r');
	p->cr = c == '\r';
	if (!p->cr && !full)
		full = sr_addc(p, c);
	if (full)
		return sr_line_end(p, SMTP_REPLY_ELONG);
	return false;
}

size_t
smtp_reply_feed(struct smtp_reply_parser *p, const char *in, size_t n,
		struct smtp_response *out, bool *done)
{
	size_t i = 0;

	*done = false;
	if (p->state == SR_DEAD)
		return n;
	while (i < n) {
		if (sr_octet(p, in[i++])) {
			*out = p->cur;
			smtp_response_init(&p->cur);
			*done = true;
			return p->state == SR_DEAD ? n : i;
		}
	}
	return i;
}

/* --- EHLO keywords ---------------------------------------------------- */

static bool
sr_word_eq(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

static unsigned
sr_auth_mech(const char *w, size_t n)
{
	if (sr_word_eq(w, n, "PLAIN"))
		return SMTP_AUTH_PLAIN;
	if (sr_word_eq(w, n, "LOGIN"))
		return SMTP_AUTH_LOGIN;
	if (sr_word_eq(w, n, "CRAM-MD5"))
		return SMTP_AUTH_CRAM_MD5;
	if (sr_word_eq(w, n, "XOAUTH2"))
		return SMTP_AUTH_XOAUTH2;
	return SMTP_AUTH_OTHER;
}

/* Mechanisms in s[0..n) separated by spaces. */
static unsigned
sr_auth_list(const char *s, size_t n)
{
	unsigned bits = 0;
	size_t i = 0, j;

	while (i < n) {
		while (i < n && s[i] == ' ')
			i++;
		j = i;
		while (j < n && s[j] != ' ')
			j++;
		if (j > i)
			bits |= sr_auth_mech(s + i, j - i);
		i = j;
	}
	return bits;
}

/* "SIZE n": n in decimal; 0 (no limit known) when absent or absurd. */
static uint64_t
sr_size(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && s[i] == ' ')
		i++;
	if (i == n)
		return 0;
	for (; i < n && s[i] != ' '; i++) {
		if (!sr_digit(s[i]) || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

/* One EHLO line's keyword kw[0..kn) with parameters ps[0..pn). */
static void
sr_ehlo_kw(struct smtp_ehlo *e, const char *kw, size_t kn, const char *ps,
	   size_t pn)
{
	if (sr_word_eq(kw, kn, "PIPELINING"))
		e->pipelining = true;
	else if (sr_word_eq(kw, kn, "SIZE")) {
		e->size = true;
		e->size_max = sr_size(ps, pn);
	} else if (sr_word_eq(kw, kn, "8BITMIME"))
		e->eightbitmime = true;
	else if (sr_word_eq(kw, kn, "SMTPUTF8"))
		e->smtputf8 = true;
	else if (sr_word_eq(kw, kn, "STARTTLS"))
		e->starttls = true;
	else if (sr_word_eq(kw, kn, "AUTH")) {
		e->auth = true;
		e->auth_mechs |= sr_auth_list(ps, pn);
	} else if (sr_word_eq(kw, kn, "DSN"))
		e->dsn = true;
	else if (sr_word_eq(kw, kn, "ENHANCEDSTATUSCODES"))
		e->enhancedstatuscodes = true;
	else if (sr_word_eq(kw, kn, "CHUNKING"))
		e->chunking = true;
}

void
smtp_ehlo_parse(const struct smtp_response *r, struct smtp_ehlo *e)
{
	const char *l;
	size_t i, n, k;

	memset(e, 0, sizeof(*e));
	for (i = 1; i < r->nlines; i++) {
		l = smtp_response_line(r, i, &n);
		if (n <= 4)
			continue;
		l += 4;
		n -= 4;
		k = 0;
		/* "AUTH=LOGIN PLAIN" is the pre-standard form of AUTH. */
		while (k < n && l[k] != ' ' && l[k] != '=')
			k++;
		sr_ehlo_kw(e, l, k, l + (k < n ? k + 1 : k),
			   k < n ? n - k - 1 : 0);
	}
}

/* --- sanitizer -------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (lead octet >= 0x80), or 0. */
static size_t
sr_utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int
smtp_reply_sanitize(const char *s, size_t n, struct buf *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if (u[i] >= 0x80 && (k = sr_utf8_len(u + i, n - i)) > 0) {
			if (buf_add(out, u + i, k) < 0)
				return -1;
			i += k;
			continue;
		}
		if (u[i] < 0x20 || u[i] >= 0x7f) {
			if (buf_addf(out, "\\x%02x", u[i]) < 0)
				return -1;
		} else if (u[i] == '\\') {
			if (buf_add(out, "\\\\", 2) < 0)
				return -1;
		} else if (buf_addc(out, (char)u[i]) < 0)
			return -1;
		i++;
	}
	return 0;
}

int
smtp_response_quote(const struct smtp_response *r, struct buf *out)
{
	const char *l;
	size_t i, n;

	for (i = 0; i < r->nlines; i++) {
		l = smtp_response_line(r, i, &n);
		if ((i > 0 && buf_addc(out, '\n') < 0) ||
		    smtp_reply_sanitize(l, n, out) < 0)
			return -1;
	}
	return 0;
}
