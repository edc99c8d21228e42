/*
 * dsn — see dsn.h.
 *
 * Layout of what dsn_compose writes (every line ends in CRLF):
 *
 *   top-level header fields (From, To, Subject, Date, Message-ID,
 *   Auto-Submitted, MIME-Version, Content-Type), a one-line preamble,
 *   then three body parts separated by "--BOUNDARY":
 *     1. text/plain: intro, one paragraph per recipient (what happened,
 *        the remote host, the diagnostic quoted line by line with an
 *        indent, a "what usually fixes it" line chosen by status class);
 *     2. message/delivery-status: RFC 3464 per-message fields, then one
 *        block of per-recipient fields per recipient;
 *     3. text/rfc822-headers or message/rfc822 (ret_full) with the
 *        original, line ends normalised to CRLF; omitted if orig_len is 0.
 *
 * Trust: every value that came from the envelope or a remote server is
 * written through a cleaner. Control characters (CR and LF included) and
 * bytes >= 0x80 become '?', so no value can end a header line or start a
 * new field. Diagnostics are split on LF (a CR before it is dropped) and
 * each line is cleaned separately; empty lines are skipped because an
 * empty continuation line would end the header block. Non-ASCII is
 * replaced rather than xtext-encoded: the text is for people, and '?'
 * keeps it readable. Lines longer than DSN_LINE_MAX are cut onto further
 * continuation lines so no output line passes RFC 5322's 998 limit.
 *
 * The original message is copied as is apart from line ends; if it holds
 * 8-bit bytes the part and the whole report are labelled
 * Content-Transfer-Encoding: 8bit (a relay without 8BITMIME has to
 * downgrade or refuse it; that is the sender's job, not ours).
 *
 * The boundary is "=_todoku_" + the seed's alphanumerics + a hash of
 * seed, queue id and time. If it occurs anywhere in the original or in a
 * diagnostic, a counter is appended and the check repeats, so no line
 * we copy can look like a delimiter.
 */
#include "mail/dsn.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/clock.h"

/* Longest piece of a diagnostic written on one output line. */
#define DSN_LINE_MAX 900
#define DSN_BOUNDARY_MAX 80
#define DSN_SEED_MAX 24
#define DSN_INDENT "    "
#define DSN_MIME_BOUNDARY_MAX 70 /* RFC 2046 §5.1.1 */
#define DSN_CTYPE_MAX 2048	 /* unfolded Content-Type looked at */
#define DSN_ORCPT_TEXT_MAX 1024	 /* a decoded ORCPT address */
#define DSN_ORIG_LINE_MAX 998	 /* RFC 5322 §2.1.1, without CRLF */

/* What part 3 carries (decided once, before anything is written). */
struct dsn_orig {
	const char *p;
	size_t n; /* octets of the original copied; 0: no part 3 */
	int full; /* message/rfc822, else text/rfc822-headers */
	int cut;  /* RET=FULL cut short by ret_max */
	/* RET=FULL refused for a line over DSN_ORIG_LINE_MAX: in the
	 * header (long_body 0) or body, its number there and its length */
	int long_line, long_body;
	size_t long_no, long_len;
	int hdr_cut; /* header lines over the limit shown cut short */
	int eightbit;
	char close[DSN_MIME_BOUNDARY_MAX + 1]; /* multipart to close, or "" */
	int close_mode; /* 0 nothing, 1 close only, 2 empty part + close */
};

struct dsn_ctx {
	const struct dsn_msg *m;
	struct buf *out;
	char boundary[DSN_BOUNDARY_MAX];
	struct dsn_orig o;
	int text8; /* the text part is UTF-8 (an address needs it) */
	int rc;	   /* -1 once any append failed */
};

static void
put(struct dsn_ctx *c, const void *p, size_t n)
{
	if (buf_add(c->out, p, n) < 0)
		c->rc = -1;
}

static void
put_str(struct dsn_ctx *c, const char *s)
{
	put(c, s, strlen(s));
}

static void putf(struct dsn_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
putf(struct dsn_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (buf_vaddf(c->out, fmt, ap) < 0)
		c->rc = -1;
	va_end(ap);
}

static int
dsn_is_unsafe(unsigned char ch)
{
	return ch < 0x20 || ch >= 0x7f;
}

/* Append n bytes of s with unsafe bytes replaced by '?'. */
static void
put_clean_n(struct dsn_ctx *c, const char *s, size_t n)
{
	size_t i, start = 0;

	for (i = 0; i < n; i++) {
		if (!dsn_is_unsafe((unsigned char)s[i]))
			continue;
		put(c, s + start, i - start);
		put_str(c, "?");
		start = i + 1;
	}
	put(c, s + start, n - start);
}

static void
put_clean(struct dsn_ctx *c, const char *s)
{
	if (s != NULL)
		put_clean_n(c, s, strlen(s));
}

/* An address between angle brackets: '<' and '>' are also replaced so
 * the value cannot close the bracket and add another address. */
static void
put_addr(struct dsn_ctx *c, const char *s)
{
	const char *p;

	if (s == NULL)
		return;
	for (p = s; *p != '\0'; p++) {
		if (*p == '<' || *p == '>' || dsn_is_unsafe((unsigned char)*p))
			put_str(c, "?");
		else
			put(c, p, 1);
	}
}

static long dsn_utf8_cp(const unsigned char *u, size_t *k);

/* A printable code point for the text part (no C0, DEL or C1)? */
static int
dsn_cp_printable(long cp)
{
	return cp >= 0xA0 && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

/*
 * An address in the text part: like put_addr, but when the text part is
 * UTF-8, a well-formed printable non-ASCII character is written as it
 * is (people read it); anything else unsafe is still '?'.
 */
static void
put_addr_text(struct dsn_ctx *c, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t k;
	long cp;

	if (s == NULL)
		return;
	while (*u != '\0') {
		k = 1;
		cp = *u >= 0x80 && c->text8 ? dsn_utf8_cp(u, &k) : -1;
		if (*u >= 0x80 && dsn_cp_printable(cp))
			put(c, u, k);
		else if (*u == '<' || *u == '>' || dsn_is_unsafe(*u))
			put_str(c, "?");
		else
			put(c, u, 1);
		u += k;
	}
}

/* A host name or token: letters, digits, '.', '-', '_' only. */
static void
put_token(struct dsn_ctx *c, const char *s, const char *fallback)
{
	const char *p;

	if (s == NULL || *s == '\0')
		s = fallback;
	for (p = s; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;
		int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			 (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
			 ch == '_';

		put(c, ok ? p : "-", 1);
	}
}

static void
put_date(struct dsn_ctx *c, time_t t)
{
	char d[64];

	clock_rfc5322(t, d, sizeof d);
	put_str(c, d);
}

/*
 * Call fn(arg, line, len) for each line of a diagnostic: split on LF, a
 * CR before the LF dropped, trailing blanks trimmed, empty lines skipped,
 * long lines cut into DSN_LINE_MAX pieces.
 */
typedef void (*dsn_line_fn)(struct dsn_ctx *c, const char *line, size_t n,
			    int first);

static void
dsn_each_line(struct dsn_ctx *c, const char *s, dsn_line_fn fn)
{
	int first = 1;

	while (s != NULL && *s != '\0') {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		size_t off = 0;

		while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' ||
				 s[n - 1] == '\t'))
			n--;
		while (off < n) {
			size_t k = n - off;

			if (k > DSN_LINE_MAX)
				k = DSN_LINE_MAX;
			fn(c, s + off, k, first);
			first = 0;
			off += k;
		}
		s = nl ? nl + 1 : s + strlen(s);
	}
}

/* ---- status classification ---- */

/* Valid "d.ddd.ddd" status with class 2, 4 or 5? */
static int
dsn_status_ok(const char *s)
{
	int part, digits;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	s += 2;
	for (part = 0; part < 2; part++) {
		for (digits = 0; *s >= '0' && *s <= '9'; s++)
			digits++;
		if (digits < 1 || digits > 3)
			return 0;
		if (part == 0 && *s++ != '.')
			return 0;
	}
	return *s == '\0';
}

static const char *
dsn_status(const struct dsn_rcpt *r)
{
	if (dsn_status_ok(r->status))
		return r->status;
	switch (r->action) {
	case DSN_FAILED:
		return "5.0.0";
	case DSN_DELAYED:
		return "4.0.0";
	default:
		return "2.0.0";
	}
}

static const char *
dsn_action_word(enum dsn_action a)
{
	switch (a) {
	case DSN_FAILED:
		return "failed";
	case DSN_DELAYED:
		return "delayed";
	case DSN_DELIVERED:
		return "delivered";
	case DSN_RELAYED:
		return "relayed";
	case DSN_EXPANDED:
		return "expanded";
	}
	return "failed";
}

/* The report's overall kind: failed beats delayed beats success. */
static enum dsn_action
dsn_kind(const struct dsn_msg *m)
{
	enum dsn_action k = DSN_DELIVERED;
	size_t i;

	for (i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].action == DSN_FAILED)
			return DSN_FAILED;
		if (m->rcpts[i].action == DSN_DELAYED)
			k = DSN_DELAYED;
	}
	return k;
}

static const char *
dsn_subject(enum dsn_action kind)
{
	if (kind == DSN_FAILED)
		return "Undelivered Mail Returned to Sender";
	if (kind == DSN_DELAYED)
		return "Delayed Mail (still being retried)";
	return "Successful Mail Delivery Report";
}

/* ---- boundary and message id ---- */

static uint64_t
dsn_hash(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t
dsn_msg_hash(const struct dsn_msg *m)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	long long now = (long long)m->now;

	if (m->boundary_seed != NULL)
		h = dsn_hash(h, m->boundary_seed, strlen(m->boundary_seed));
	if (m->queue_id != NULL)
		h = dsn_hash(h, m->queue_id, strlen(m->queue_id));
	return dsn_hash(h, &now, sizeof now);
}

static int
dsn_contains(const char *hay, size_t n, const char *needle)
{
	return hay != NULL && memmem(hay, n, needle, strlen(needle)) != NULL;
}

static int
dsn_boundary_used(const struct dsn_msg *m, const char *b)
{
	size_t i;

	if (dsn_contains(m->orig, m->orig_len, b))
		return 1;
	for (i = 0; i < m->nrcpts; i++) {
		const char *d = m->rcpts[i].diag;

		if (d != NULL && dsn_contains(d, strlen(d), b))
			return 1;
	}
	return 0;
}

static void
dsn_make_boundary(const struct dsn_msg *m, char *dst, size_t len)
{
	char seed[DSN_SEED_MAX + 1];
	const char *s = m->boundary_seed ? m->boundary_seed : "";
	size_t n = 0;
	unsigned tries;
	uint64_t h = dsn_msg_hash(m);

	for (; *s != '\0' && n < DSN_SEED_MAX; s++)
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9'))
			seed[n++] = *s;
	seed[n] = '\0';
	snprintf(dst, len, "=_todoku_%s_%016llx", seed, (unsigned long long)h);
	for (tries = 1; dsn_boundary_used(m, dst); tries++) {
		h = dsn_hash(h, &tries, sizeof tries);
		snprintf(dst, len, "=_todoku_%s_%016llx_%u", seed,
			 (unsigned long long)h, tries);
	}
}

static int
dsn_has_8bit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return 1;
	return 0;
}

/* Is line p[0..n) (no line end) the dash-boundary "--b" (close: "--b--"),
 * transport padding allowed after it? 1 open, 2 close, 0 neither. */
static int
dsn_delim_line(const char *p, size_t n, const char *b)
{
	size_t bl = strlen(b), k;

	if (n < bl + 2 || p[0] != '-' || p[1] != '-' ||
	    memcmp(p + 2, b, bl) != 0)
		return 0;
	k = bl + 2;
	if (n >= k + 2 && p[k] == '-' && p[k + 1] == '-') {
		k += 2;
		while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
			k++;
		return k == n ? 2 : 0;
	}
	while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
		k++;
	return k == n ? 1 : 0;
}

/* After a cut in a multipart with boundary b: what to append so the
 * entity is complete (see struct dsn_orig.close_mode). */
static int
dsn_close_mode(const char *body, size_t n, const char *b)
{
	size_t pos = 0;
	int seen = 0;

	while (pos < n) {
		const char *nl = memchr(body + pos, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - body) - pos : n - pos;
		int d = dsn_delim_line(body + pos, len, b);

		if (d == 2)
			return 0;
		seen |= d == 1;
		pos += len + 1;
	}
	return seen ? 1 : 2;
}

/* The first line of p[0..n) longer than DSN_ORIG_LINE_MAX octets (line
 * end not counted): its number (from 1), length in *len; 0 when none. */
static size_t
dsn_long_line(const char *p, size_t n, size_t *len)
{
	size_t pos = 0, no = 0;

	while (pos < n) {
		const char *nl = memchr(p + pos, '\n', n - pos);
		size_t end = nl ? (size_t)(nl - p) : n, k = end - pos;

		no++;
		if (nl != NULL && k > 0 && p[end - 1] == '\r')
			k--;
		if (k > DSN_ORIG_LINE_MAX) {
			*len = k;
			return no;
		}
		pos = end + 1;
	}
	return 0;
}

/* RET=FULL of an original with a line over DSN_ORIG_LINE_MAX octets:
 * smtp-out would fold it on the way, changing the message returned (and
 * message/rfc822 allows no such line, RFC 5322 §2.1.1 / RFC 6152); the
 * header block alone goes back, and the text part says why. */
static void
dsn_plan_long(struct dsn_orig *o, size_t hl)
{
	size_t no, len;

	if ((no = dsn_long_line(o->p, hl, &len)) == 0) {
		if ((no = dsn_long_line(o->p + hl, o->n - hl, &len)) == 0)
			return;
		o->long_body = 1;
	}
	o->long_line = 1;
	o->long_no = no;
	o->long_len = len;
	o->n = hl;
	o->full = o->cut = o->close_mode = 0;
	o->close[0] = '\0';
}

/* Plan part 3: headers only, the whole message, or (RET=FULL over
 * ret_max) the header block plus the body up to the last line end that
 * fits. A read prefix without the end of the header block falls back
 * to headers, as does an original with a line too long to return
 * unchanged (dsn_plan_long). */
static void
dsn_plan_orig(const struct dsn_msg *m, struct dsn_orig *o)
{
	size_t hl, lim;
	int more;
	const char *nl;

	memset(o, 0, sizeof(*o));
	if (m->orig == NULL || m->orig_len == 0)
		return;
	o->p = m->orig;
	hl = dsn_header_len(m->orig, m->orig_len);
	more = m->orig_total > m->orig_len;
	lim = m->ret_max != 0 && m->ret_max < m->orig_len ? m->ret_max
							  : m->orig_len;
	if (!m->ret_full || (hl == m->orig_len && (more || lim < hl))) {
		o->n = hl;
	} else if (lim == m->orig_len && !more) {
		o->n = m->orig_len;
		o->full = 1;
	} else {
		if (lim < hl)
			lim = hl;
		nl = lim > hl ? memrchr(m->orig + hl, '\n', lim - hl) : NULL;
		o->n = nl ? (size_t)(nl - m->orig) + 1 : hl;
		o->full = 1;
		o->cut = 1;
		if (dsn_multipart_boundary(m->orig, hl, o->close,
					   sizeof(o->close)) > 0)
			o->close_mode =
			    dsn_close_mode(m->orig + hl, o->n - hl, o->close);
	}
	if (o->full)
		dsn_plan_long(o, hl);
	if (!o->full) {
		size_t len;
		o->hdr_cut = dsn_long_line(o->p, o->n, &len) != 0;
	}
	o->eightbit = dsn_has_8bit(o->p, o->n);
}

/* ---- top-level header ---- */

static void
dsn_put_header(struct dsn_ctx *c, int eightbit)
{
	const struct dsn_msg *m = c->m;

	put_str(c, "From: Mail Delivery System <MAILER-DAEMON@");
	put_token(c, m->reporting_mta, "localhost");
	put_str(c, ">\r\nTo: <");
	put_addr(c, m->sender);
	putf(c, ">\r\nSubject: %s\r\nDate: ", dsn_subject(dsn_kind(m)));
	put_date(c, m->now);
	put_str(c, "\r\nMessage-ID: <dsn.");
	put_token(c, m->queue_id, "noqueue");
	putf(c, ".%lld.%08llx@", (long long)m->now,
	     (unsigned long long)(dsn_msg_hash(m) & 0xffffffffULL));
	put_token(c, m->reporting_mta, "localhost");
	put_str(c,
		">\r\nAuto-Submitted: auto-replied\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: multipart/report; report-type=delivery-status;"
		"\r\n\tboundary=\"");
	put_str(c, c->boundary);
	put_str(c, "\"\r\n");
	if (eightbit)
		put_str(c, "Content-Transfer-Encoding: 8bit\r\n");
	put_str(c, "\r\nThis is a MIME-encapsulated delivery status "
		   "notification.\r\n");
}

static void
dsn_put_delim(struct dsn_ctx *c, const char *ctype)
{
	putf(c, "\r\n--%s\r\n", c->boundary);
	if (ctype != NULL)
		putf(c, "Content-Type: %s\r\n", ctype);
}

/* ---- part 1: text for people ---- */

/* Write each '\n'-separated line of text (our own constant wording)
 * with indent in front and CRLF after. */
static void
put_lines(struct dsn_ctx *c, const char *indent, const char *text)
{
	while (*text != '\0') {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);

		put_str(c, indent);
		put(c, text, n);
		put_str(c, "\r\n");
		text += nl ? n + 1 : n;
	}
}

static int
dsn_any(const struct dsn_msg *m, enum dsn_action a)
{
	size_t i;

	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].action == a)
			return 1;
	return 0;
}

static void
dsn_put_intro(struct dsn_ctx *c)
{
	const struct dsn_msg *m = c->m;

	if (dsn_any(m, DSN_FAILED))
		put_lines(c, "",
			  "Your message could not be delivered to one or "
			  "more recipients.\n"
			  "For those, the mail system has given up and "
			  "will not try again.");
	if (dsn_any(m, DSN_FAILED) && dsn_any(m, DSN_DELAYED))
		put_str(c, "\r\n");
	if (dsn_any(m, DSN_DELAYED))
		put_lines(c, "",
			  "Delivery to one or more recipients has been "
			  "delayed.\n"
			  "The mail system is still trying; you do not "
			  "need to send\nthe message again.");
	if (dsn_kind(m) == DSN_DELIVERED && !dsn_any(m, DSN_RELAYED) &&
	    !dsn_any(m, DSN_EXPANDED))
		put_lines(c, "",
			  "Your message was delivered to the "
			  "recipients listed below.");
	if (dsn_kind(m) == DSN_DELIVERED && dsn_any(m, DSN_EXPANDED))
		put_lines(c, "",
			  "Your message reached the addresses listed below. "
			  "Each of them\nstands for several other addresses, "
			  "and the message has been\npassed on to all of "
			  "them. You get no success report for each\nof "
			  "those; failures are still reported if you asked "
			  "for them.");
	if (dsn_kind(m) == DSN_DELIVERED && dsn_any(m, DSN_RELAYED))
		put_lines(c, "",
			  "Your message was passed on to the next mail system "
			  "for the\nrecipients listed below. That system does "
			  "not send delivery\nreports, so this is the last "
			  "report you will get for them.");
}

static const char *
dsn_what_happened(const struct dsn_rcpt *r)
{
	switch (r->action) {
	case DSN_FAILED:
		return "could not be delivered (permanent failure).";
	case DSN_DELAYED:
		return "not delivered yet (temporary failure).";
	case DSN_DELIVERED:
		return "delivered.";
	case DSN_RELAYED:
		return "passed on to a system that sends no further reports.";
	case DSN_EXPANDED:
		return "an alias: passed on to the addresses it stands for.";
	}
	return "could not be delivered.";
}

/* Advice for a permanent (5.x.x) status, by subject digit. */
static const char *
dsn_advice_perm(char subject)
{
	switch (subject) {
	case '1':
		return "The address is wrong or there is no such user.\n"
		       "Check the spelling, or ask the recipient for the right "
		       "address.";
	case '2':
		return "The recipient's mailbox is full or disabled.\n"
		       "The recipient has to make room or contact their "
		       "provider.";
	case '3':
	case '4':
		return "A system or network problem on the receiving side\n"
		       "(for example no working mail server for the domain, "
		       "or a\nrouting loop). The recipient's administrator has "
		       "to fix it.";
	case '5':
		return "The two mail servers disagreed about the protocol.\n"
		       "Forward this report to your mail administrator.";
	case '6':
		return "The receiving server refused the content (size, "
		       "format\nor attachment type). Try a smaller message or "
		       "another format.";
	case '7':
		return "The receiving server refused the message by policy:\n"
		       "authentication, reputation or a blocklist. The "
		       "sending\ndomain's administrator should check its SPF, "
		       "DKIM and DMARC\nrecords, the reverse DNS (PTR) of the "
		       "sending IP address,\nand blocklist listings; sending "
		       "through a relay with a clean\nIP address may be "
		       "needed.";
	}
	return "Read the server's words above; if they do not explain it,\n"
	       "forward this report to your mail administrator.";
}

static void
dsn_put_advice(struct dsn_ctx *c, const struct dsn_rcpt *r, const char *st)
{
	put_str(c, DSN_INDENT "What usually fixes it:\r\n");
	if (st[0] == '4' && r->action == DSN_DELAYED) {
		put_lines(c, DSN_INDENT DSN_INDENT,
			  "Nothing yet: the receiving server asked us to try "
			  "again\nlater. The server is still being retried");
		if (r->will_retry_until != 0) {
			put_str(c, DSN_INDENT DSN_INDENT "until ");
			put_date(c, r->will_retry_until);
			put_str(c, "\r\n");
		}
		return;
	}
	if (st[0] == '4') {
		put_lines(c, DSN_INDENT DSN_INDENT,
			  "The receiving side kept answering with a temporary "
			  "error\nuntil the message expired. It may be "
			  "overloaded, down, or\nrefusing us for a while; "
			  "try again later.");
		return;
	}
	put_lines(c, DSN_INDENT DSN_INDENT, dsn_advice_perm(st[2]));
}

static void
dsn_text_diag_line(struct dsn_ctx *c, const char *line, size_t n, int first)
{
	put_str(c, DSN_INDENT DSN_INDENT);
	put_clean_n(c, line, n);
	put_str(c, "\r\n");
}

static void
dsn_put_text_rcpt(struct dsn_ctx *c, const struct dsn_rcpt *r)
{
	const char *st = dsn_status(r);

	char orig[DSN_ORCPT_TEXT_MAX];

	put_str(c, "\r\n<");
	put_addr_text(c, r->final_rcpt);
	put_str(c, ">: ");
	put_str(c, dsn_what_happened(r));
	put_str(c, "\r\n");
	if (r->orig_rcpt != NULL &&
	    dsn_orcpt_display(r->orig_rcpt, orig, sizeof(orig)) > 0 &&
	    (r->final_rcpt == NULL || strcasecmp(orig, r->final_rcpt) != 0)) {
		put_str(c, DSN_INDENT "Original recipient: <");
		put_addr_text(c, orig);
		put_str(c, ">\r\n");
	}
	putf(c, DSN_INDENT "Status code: %s\r\n", st);
	if (r->remote_mta != NULL && *r->remote_mta != '\0') {
		put_str(c, DSN_INDENT "Remote server: ");
		put_token(c, r->remote_mta, "unknown");
		if (r->remote_addr != NULL && *r->remote_addr != '\0') {
			put_str(c, " [");
			put_token(c, r->remote_addr, "?");
			put_str(c, "]");
		}
		put_str(c, "\r\n");
	}
	if (r->diag != NULL && *r->diag != '\0') {
		put_str(c, r->remote_mta ? DSN_INDENT "The server said:\r\n"
					 : DSN_INDENT "Reason:\r\n");
		dsn_each_line(c, r->diag, dsn_text_diag_line);
	}
	if (st[0] != '2')
		dsn_put_advice(c, r, st);
}

static void
dsn_put_text(struct dsn_ctx *c)
{
	const struct dsn_msg *m = c->m;
	size_t i;

	dsn_put_delim(c, c->text8 ? "text/plain; charset=utf-8"
				  : "text/plain; charset=us-ascii");
	if (c->text8)
		put_str(c, "Content-Transfer-Encoding: 8bit\r\n");
	put_str(c, "Content-Description: Notification\r\n\r\n"
		   "This is the mail system at ");
	put_token(c, m->reporting_mta, "localhost");
	put_str(c, ".\r\n\r\n");
	dsn_put_intro(c);
	for (i = 0; i < m->nrcpts; i++)
		dsn_put_text_rcpt(c, &m->rcpts[i]);
	if (c->o.n == 0)
		return;
	if (c->o.long_line)
		putf(c,
		     "\r\nYour original message is not attached whole: line "
		     "%zu of its %s\r\nis %zu octets long, more than the %d "
		     "octets a line of a returned\r\nmessage may have "
		     "(RFC 5322 section 2.1.1). Sending it on would have\r\n"
		     "changed it, so only its header is attached.\r\n",
		     c->o.long_no, c->o.long_body ? "body" : "header",
		     c->o.long_len, DSN_ORIG_LINE_MAX);
	else if (!c->o.full)
		put_str(c, "\r\nThe header of your original message is "
			   "attached.\r\n");
	else if (!c->o.cut)
		put_str(c, "\r\nYour original message is attached.\r\n");
	else
		putf(c,
		     "\r\nYour original message is attached, but only its "
		     "first %zu\r\noctets of %zu: it was cut at the end of a "
		     "line to stay within\r\nthis system's limit for returned "
		     "messages (%zu octets).\r\nThe rest was left out.\r\n",
		     c->o.n,
		     m->orig_total > m->orig_len ? m->orig_total : m->orig_len,
		     m->ret_max);
	if (c->o.hdr_cut)
		putf(c,
		     "Header lines longer than %d octets are shown cut "
		     "short.\r\n",
		     DSN_ORIG_LINE_MAX);
}

/* ---- part 2: message/delivery-status ---- */

/* One UTF-8 code point at u (NUL-terminated; *k its length), or -1 when
 * ill-formed (overlong, surrogate, above U+10FFFF, cut short). */
static long
dsn_utf8_cp(const unsigned char *u, size_t *k)
{
	static const long min[5] = {0, 0, 0x80, 0x800, 0x10000};
	size_t n = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC2 ? 2 : 0;
	long cp = n == 4 ? u[0] & 0x07 : n == 3 ? u[0] & 0x0F : u[0] & 0x1F;

	if (n == 0 || u[0] > 0xF4)
		return -1;
	for (size_t i = 1; i < n; i++) {
		if ((u[i] & 0xC0) != 0x80)
			return -1;
		cp = (cp << 6) | (u[i] & 0x3F);
	}
	if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	*k = n;
	return cp;
}

/*
 * RFC 6533 §3 utf-8-addr-xtext: an SMTPUTF8 address in an ASCII report
 * field, every non-ASCII code point, control, '\\', '+' and '=' as
 * \x{HEX}, so nothing is lost and the field stays 7-bit.
 */
static void
put_utf8_addr(struct dsn_ctx *c, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t k;
	long cp;

	while (*u != '\0') {
		if (*u >= 0x21 && *u < 0x7f && *u != '\\' && *u != '+' &&
		    *u != '=') {
			put(c, (const char *)u++, 1);
			continue;
		}
		k = 1;
		cp = *u < 0x80 ? *u : dsn_utf8_cp(u, &k);
		if (cp < 0) {
			put_str(c, "?");
			k = 1;
		} else
			putf(c, "\\x{%lX}", cp);
		u += k;
	}
}

static void
dsn_field_diag_line(struct dsn_ctx *c, const char *line, size_t n, int first)
{
	if (!first)
		put_str(c, "\r\n ");
	put_clean_n(c, line, n);
}

static void
dsn_put_status_rcpt(struct dsn_ctx *c, const struct dsn_rcpt *r)
{
	put_str(c, "\r\n");
	if (r->orig_rcpt != NULL && *r->orig_rcpt != '\0') {
		const char *semi = strchr(r->orig_rcpt, ';');

		/* a UTF-8 address (the one named in an SMTPUTF8 RCPT) in
		 * RFC 6533's 7-bit form; stored utf-8 ORCPTs already are */
		put_str(c, "Original-Recipient: ");
		if (semi != NULL &&
		    dsn_has_8bit(r->orig_rcpt, strlen(r->orig_rcpt))) {
			put_str(c, "utf-8;");
			put_utf8_addr(c, semi + 1);
		} else {
			put_clean(c, r->orig_rcpt);
		}
		put_str(c, "\r\n");
	}
	if (r->final_rcpt != NULL &&
	    dsn_has_8bit(r->final_rcpt, strlen(r->final_rcpt))) {
		put_str(c, "Final-Recipient: utf-8; ");
		put_utf8_addr(c, r->final_rcpt);
	} else {
		put_str(c, "Final-Recipient: rfc822; ");
		put_clean(c, r->final_rcpt);
	}
	putf(c, "\r\nAction: %s\r\nStatus: %s\r\n", dsn_action_word(r->action),
	     dsn_status(r));
	if (r->remote_mta != NULL && *r->remote_mta != '\0') {
		put_str(c, "Remote-MTA: dns; ");
		put_token(c, r->remote_mta, "unknown");
		put_str(c, "\r\n");
	}
	if (r->diag != NULL && *r->diag != '\0') {
		put_str(c, "Diagnostic-Code: ");
		put_token(c, r->diag_type, "smtp");
		put_str(c, "; ");
		dsn_each_line(c, r->diag, dsn_field_diag_line);
		put_str(c, "\r\n");
	}
	if (r->last_attempt != 0) {
		put_str(c, "Last-Attempt-Date: ");
		put_date(c, r->last_attempt);
		put_str(c, "\r\n");
	}
	if (r->action == DSN_DELAYED && r->will_retry_until != 0) {
		put_str(c, "Will-Retry-Until: ");
		put_date(c, r->will_retry_until);
		put_str(c, "\r\n");
	}
}

static void
dsn_put_status(struct dsn_ctx *c)
{
	const struct dsn_msg *m = c->m;
	size_t i;

	dsn_put_delim(c, "message/delivery-status");
	put_str(c, "Content-Description: Delivery report\r\n\r\n"
		   "Reporting-MTA: dns; ");
	put_token(c, m->reporting_mta, "localhost");
	put_str(c, "\r\nX-Todoku-Queue-ID: ");
	put_token(c, m->queue_id, "none");
	put_str(c, "\r\n");
	if (m->envid != NULL && *m->envid != '\0') {
		put_str(c, "Original-Envelope-Id: ");
		put_clean(c, m->envid);
		put_str(c, "\r\n");
	}
	if (m->arrival != 0) {
		put_str(c, "Arrival-Date: ");
		put_date(c, m->arrival);
		put_str(c, "\r\n");
	}
	for (i = 0; i < m->nrcpts; i++)
		dsn_put_status_rcpt(c, &m->rcpts[i]);
}

/* ---- part 3: the original ---- */

/* Copy p[0..n) with every line end (LF or CRLF) written as CRLF; the
 * copy always ends with CRLF. */
/* Line p[0..n) (no line end) and CRLF; cap > 0: at most cap octets,
 * cut before a UTF-8 continuation octet so no character is split. */
static void
dsn_put_line(struct dsn_ctx *c, const char *p, size_t n, size_t cap)
{
	if (cap > 0 && n > cap) {
		n = cap;
		while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
			n--;
	}
	put(c, p, n);
	put_str(c, "\r\n");
}

/* p[0..n) with CRLF line ends; cap: see dsn_put_line. */
static void
dsn_put_crlf(struct dsn_ctx *c, const char *p, size_t n, size_t cap)
{
	size_t start = 0, i;

	for (i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		dsn_put_line(c, p + start,
			     (i > start && p[i - 1] == '\r') ? i - start - 1
							     : i - start,
			     cap);
		start = i + 1;
	}
	if (start < n)
		dsn_put_line(c, p + start, n - start, cap);
}

/* Header block without the empty line that ends it (if it has one). */
static size_t
dsn_trim_blank(const char *p, size_t n)
{
	size_t k = n;

	if (k == 0 || p[k - 1] != '\n')
		return n;
	k--;
	if (k > 0 && p[k - 1] == '\r')
		k--;
	return (k == 0 || p[k - 1] == '\n') ? k : n;
}

static void
dsn_put_orig(struct dsn_ctx *c)
{
	const struct dsn_orig *o = &c->o;
	size_t n = o->n;

	if (n == 0)
		return;
	if (o->full) {
		dsn_put_delim(c, "message/rfc822");
		put_str(
		    c, o->cut ? "Content-Description: Undelivered message "
				"(cut short)\r\n"
			      : "Content-Description: Undelivered message\r\n");
	} else {
		dsn_put_delim(c, "text/rfc822-headers");
		put_str(c, "Content-Description: Undelivered message headers"
			   "\r\n");
		n = dsn_trim_blank(o->p, n);
	}
	if (o->eightbit)
		put_str(c, "Content-Transfer-Encoding: 8bit\r\n");
	put_str(c, "\r\n");
	/* a whole message is only returned without long lines; a header
	 * block keeps within them by cutting its longest lines */
	dsn_put_crlf(c, o->p, n, o->full ? 0 : DSN_ORIG_LINE_MAX);
	if (o->close_mode == 2)
		putf(c, "--%s\r\n\r\n", o->close);
	if (o->close_mode != 0)
		putf(c, "--%s--\r\n", o->close);
}

/* Does an address shown in the text part need UTF-8 (a well-formed
 * printable non-ASCII character in it)? */
static int
dsn_addr_utf8(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t k;

	for (; s != NULL && *u != '\0'; u++)
		if (*u >= 0x80 && dsn_cp_printable(dsn_utf8_cp(u, &k)))
			return 1;
	return 0;
}

static int
dsn_text_needs_utf8(const struct dsn_msg *m)
{
	char orig[DSN_ORCPT_TEXT_MAX];

	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct dsn_rcpt *r = &m->rcpts[i];

		if (dsn_addr_utf8(r->final_rcpt))
			return 1;
		if (r->orig_rcpt != NULL &&
		    dsn_orcpt_display(r->orig_rcpt, orig, sizeof(orig)) > 0 &&
		    dsn_addr_utf8(orig))
			return 1;
	}
	return 0;
}

int
dsn_compose(const struct dsn_msg *m, struct buf *out)
{
	struct dsn_ctx c;
	size_t start = out->len;

	if (m->sender == NULL || *m->sender == '\0')
		return -1;
	c.m = m;
	c.out = out;
	c.rc = 0;
	dsn_plan_orig(m, &c.o);
	c.text8 = dsn_text_needs_utf8(m);
	dsn_make_boundary(m, c.boundary, sizeof c.boundary);
	dsn_put_header(&c, c.o.eightbit || c.text8);
	dsn_put_text(&c);
	dsn_put_status(&c);
	dsn_put_orig(&c);
	putf(&c, "\r\n--%s--\r\n", c.boundary);
	if (c.rc < 0) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
		return -1;
	}
	return 0;
}

size_t
dsn_header_len(const char *msg, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(msg + pos, '\n', len - pos);
		size_t end;

		if (nl == NULL)
			return len;
		end = (size_t)(nl - msg);
		if (end == pos || (end == pos + 1 && msg[pos] == '\r'))
			return end + 1;
		pos = end + 1;
	}
	return len;
}

bool
dsn_is_8bit(const char *report, size_t len)
{
	return dsn_has_8bit(report, len) != 0;
}

/* ---- the boundary of a multipart original ---- */

/* Unfold the first Content-Type field of the header block at hdr (at
 * most n octets) into v (NUL-ended, cut at size-1); 0 if none. */
static int
dsn_ctype_value(const char *hdr, size_t n, char *v, size_t size)
{
	size_t pos = 0, o = 0;
	int in = 0;

	while (pos < n) {
		const char *nl = memchr(hdr + pos, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - hdr) - pos : n - pos, i = 0;
		const char *l = hdr + pos;

		pos += len + 1;
		if (len > 0 && l[len - 1] == '\r')
			len--;
		if (len == 0 || (in && l[0] != ' ' && l[0] != '\t'))
			break; /* end of the header block or of the field */
		if (!in) {
			if (len < 13 || strncasecmp(l, "Content-Type", 12) != 0)
				continue;
			for (i = 12; i < len && (l[i] == ' ' || l[i] == '\t');
			     i++)
				;
			if (i == len || l[i] != ':')
				continue;
			in = 1;
			i++;
		}
		for (; i < len && o + 1 < size; i++)
			v[o++] = l[i];
	}
	v[o] = '\0';
	return in;
}

static int
dsn_bchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("'()+_,-./:=? ", ch) != NULL);
}

static int
dsn_tchar(char ch)
{
	return ch > 0x20 && ch < 0x7f &&
	       strchr("()<>@,;:\\\"/[]?=", ch) == NULL;
}

static const char *
dsn_skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A parameter value at p (quoted-string or token) into out; returns the
 * position after it, or NULL when malformed or too long. */
static const char *
dsn_param_value(const char *p, char *out, size_t size, size_t *len)
{
	size_t o = 0;

	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\0')
				return NULL;
			if (*p == '\\' && p[1] != '\0')
				p++;
			if (o + 1 >= size)
				return NULL;
			out[o++] = *p;
		}
		p++;
	} else {
		for (; dsn_tchar(*p); p++) {
			if (o + 1 >= size)
				return NULL;
			out[o++] = *p;
		}
	}
	out[o] = '\0';
	*len = o;
	return p;
}

size_t
dsn_multipart_boundary(const char *hdr, size_t n, char *out, size_t size)
{
	char v[DSN_CTYPE_MAX], val[DSN_CTYPE_MAX];
	const char *p;
	size_t len, i;

	if (size < DSN_MIME_BOUNDARY_MAX + 1 ||
	    !dsn_ctype_value(hdr, n, v, sizeof(v)))
		return 0;
	p = dsn_skip_ws(v);
	if (strncasecmp(p, "multipart/", 10) != 0)
		return 0;
	for (p += 10; dsn_tchar(*p); p++)
		;
	for (;;) {
		const char *a;
		int is_b;

		p = dsn_skip_ws(p);
		if (*p != ';')
			return 0;
		a = p = dsn_skip_ws(p + 1);
		while (dsn_tchar(*p))
			p++;
		is_b = p - a == 8 && strncasecmp(a, "boundary", 8) == 0;
		p = dsn_skip_ws(p);
		if (*p != '=')
			return 0;
		p = dsn_param_value(dsn_skip_ws(p + 1), val, sizeof(val), &len);
		if (p == NULL)
			return 0;
		if (!is_b)
			continue;
		if (len == 0 || len > DSN_MIME_BOUNDARY_MAX ||
		    val[len - 1] == ' ')
			return 0;
		for (i = 0; i < len; i++)
			if (!dsn_bchar(val[i]))
				return 0;
		memcpy(out, val, len + 1);
		return len;
	}
}

/* ---- an ORCPT for people ---- */

/* UTF-8 form of code point cp into d (room for 4); its length. */
static size_t
dsn_utf8_put(long cp, char *d)
{
	if (cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (char)(0xC0 | (cp >> 6));
		d[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (char)(0xE0 | (cp >> 12));
		d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		d[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	d[0] = (char)(0xF0 | (cp >> 18));
	d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	d[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* A \x{HEX} escape at s: its code point and length (*k), or -1 when it
 * is not 1 to 6 hex digits naming a scalar value. */
static long
dsn_embedded_cp(const char *s, size_t *k)
{
	long cp = 0;
	size_t i;

	if (s[0] != '\\' || s[1] != 'x' || s[2] != '{')
		return -1;
	for (i = 3; i < 9 && isxdigit((unsigned char)s[i]); i++)
		cp =
		    cp * 16 + (isdigit((unsigned char)s[i])
				   ? s[i] - '0'
				   : (tolower((unsigned char)s[i]) - 'a' + 10));
	if (i == 3 || s[i] != '}' || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	*k = i + 1;
	return cp;
}

size_t
dsn_orcpt_display(const char *orcpt, char *out, size_t size)
{
	const char *semi = strchr(orcpt, ';');
	const char *p = semi ? semi + 1 : orcpt;
	int utf8 = semi != NULL && semi - orcpt == 5 &&
		   strncasecmp(orcpt, "utf-8", 5) == 0;
	size_t o = 0, k, n;
	char tmp[4];
	long cp;

	if (size == 0)
		return 0;
	while (*p != '\0') {
		k = 1;
		cp = utf8 ? dsn_embedded_cp(p, &k) : -1;
		if (cp >= 0x20 && cp != 0x7F && !(cp >= 0x80 && cp < 0xA0)) {
			n = dsn_utf8_put(cp, tmp);
		} else {
			k = 1;
			tmp[0] = *p;
			n = 1;
		}
		if (o + n >= size)
			break;
		memcpy(out + o, tmp, n);
		o += n;
		p += k;
	}
	out[o] = '\0';
	return o;
}
