/*
 * dmarc_report — see dmarc_report.h.
 */
#include "mail/dmarc_report.h"

#include <stdio.h>
#include <string.h>

#include <zlib.h>

#include "lib/alloc.h"

#define XMLNS "urn:ietf:params:xml:ns:dmarc-2.0"
#define GZ_WINDOW (15 + 16) /* deflate window 2^15, gzip framing */
#define B64_LINE 76

/* ---- storage form ------------------------------------------------------ */

#define F(n)                                                                   \
	{                                                                      \
#n, offsetof(struct dmarc_rep_row, n),                         \
		    sizeof(((struct dmarc_rep_row *)0)->n)                     \
	}
const struct dmarc_rep_field dmarc_rep_fields[] = {
    F(policy_domain),
    F(org_domain),
    F(p),
    F(sp),
    F(np),
    F(adkim),
    F(aspf),
    F(testing),
    F(rua),
    F(source_ip),
    F(header_from),
    F(envelope_from),
    F(spf_domain),
    F(spf_scope),
    F(spf_result),
    F(disposition),
    F(dkim_align),
    F(spf_align),
    F(result),
};
#undef F
const size_t dmarc_rep_nfields =
    sizeof(dmarc_rep_fields) / sizeof(dmarc_rep_fields[0]);

static int
dkim_put(char **p, char *end, const char *s, char sep)
{
	for (; *s; s++) {
		if (*p + 1 >= end)
			return -1;
		*(*p)++ = *s == '\t' || *s == '\n' || *s == '\r' ? '?' : *s;
	}
	if (*p + 1 >= end)
		return -1;
	*(*p)++ = sep;
	**p = '\0';
	return 0;
}

int
dmarc_rep_dkim_text(const struct dmarc_rep_row *r, char *out, size_t outsz)
{
	char *p = out, *end = out + outsz;

	if (outsz == 0)
		return -1;
	*p = '\0';
	for (unsigned i = 0; i < r->ndkim && i < DMARC_REP_DKIM_MAX; i++) {
		const struct dmarc_rep_dkim *d = &r->dkim[i];
		if (dkim_put(&p, end, d->domain, '\t') < 0 ||
		    dkim_put(&p, end, d->selector, '\t') < 0 ||
		    dkim_put(&p, end, d->result, '\n') < 0)
			return -1;
	}
	return 0;
}

/* Copy the text up to sep (or end of string) into dst; returns what
 * follows sep, or NULL at the end of the string. */
static const char *
dkim_take(const char *s, char sep, char *dst, size_t dstsz)
{
	size_t n = strcspn(s, sep == '\t' ? "\t\n" : "\n");

	snprintf(dst, dstsz, "%.*s", (int)n, s);
	return s[n] ? s + n + 1 : NULL;
}

void
dmarc_rep_dkim_load(struct dmarc_rep_row *r, const char *text)
{
	const char *s = text;

	r->ndkim = 0;
	while (s && *s && r->ndkim < DMARC_REP_DKIM_MAX) {
		struct dmarc_rep_dkim *d = &r->dkim[r->ndkim++];
		s = dkim_take(s, '\t', d->domain, sizeof(d->domain));
		s = s ? dkim_take(s, '\t', d->selector, sizeof(d->selector))
		      : NULL;
		s = s ? dkim_take(s, '\n', d->result, sizeof(d->result)) : NULL;
	}
}

/* ---- grouping -------------------------------------------------------- */

static bool
dkim_same(const struct dmarc_rep_row *a, const struct dmarc_rep_row *b)
{
	if (a->ndkim != b->ndkim)
		return false;
	for (unsigned i = 0; i < a->ndkim && i < DMARC_REP_DKIM_MAX; i++) {
		const struct dmarc_rep_dkim *x = &a->dkim[i], *y = &b->dkim[i];
		if (strcmp(x->domain, y->domain) != 0 ||
		    strcmp(x->selector, y->selector) != 0 ||
		    strcmp(x->result, y->result) != 0)
			return false;
	}
	return true;
}

bool
dmarc_rep_same_record(const struct dmarc_rep_row *a,
		      const struct dmarc_rep_row *b)
{
	return strcmp(a->source_ip, b->source_ip) == 0 &&
	       strcmp(a->disposition, b->disposition) == 0 &&
	       strcmp(a->dkim_align, b->dkim_align) == 0 &&
	       strcmp(a->spf_align, b->spf_align) == 0 &&
	       strcmp(a->header_from, b->header_from) == 0 &&
	       strcmp(a->envelope_from, b->envelope_from) == 0 &&
	       strcmp(a->spf_domain, b->spf_domain) == 0 &&
	       strcmp(a->spf_scope, b->spf_scope) == 0 &&
	       strcmp(a->spf_result, b->spf_result) == 0 && dkim_same(a, b);
}

/* ---- XML -------------------------------------------------------------- */

/* Text content: the five XML specials as entities, anything outside
 * printable ASCII as '?' (the document stays well formed whatever the
 * peer sent). */
static int
xml_text(struct buf *b, const char *s)
{
	int r = 0;

	for (; *s && r == 0; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '&':
			r = buf_adds(b, "&amp;");
			break;
		case '<':
			r = buf_adds(b, "&lt;");
			break;
		case '>':
			r = buf_adds(b, "&gt;");
			break;
		case '"':
			r = buf_adds(b, "&quot;");
			break;
		case '\'':
			r = buf_adds(b, "&apos;");
			break;
		default:
			r = buf_addc(b, c < 0x20 || c > 0x7e ? '?' : (char)c);
		}
	}
	return r;
}

/* <name>text</name> at an indentation depth. */
static int
xml_elem(struct buf *b, int depth, const char *name, const char *text)
{
	int r = buf_addf(b, "%*s<%s>", depth * 2, "", name);

	r = r ? r : xml_text(b, text);
	return r ? r : buf_addf(b, "</%s>\n", name);
}

static int
xml_open(struct buf *b, int depth, const char *name)
{
	return buf_addf(b, "%*s<%s>\n", depth * 2, "", name);
}

static int
xml_close(struct buf *b, int depth, const char *name)
{
	return buf_addf(b, "%*s</%s>\n", depth * 2, "", name);
}

static int
xml_metadata(struct buf *b, const struct dmarc_rep_meta *m)
{
	char t[32];
	int r = xml_open(b, 1, "report_metadata");

	r = r ? r : xml_elem(b, 2, "org_name", m->org_name);
	r = r ? r : xml_elem(b, 2, "email", m->email);
	r = r ? r : xml_elem(b, 2, "report_id", m->report_id);
	r = r ? r : xml_open(b, 2, "date_range");
	snprintf(t, sizeof(t), "%lld", (long long)m->begin);
	r = r ? r : xml_elem(b, 3, "begin", t);
	snprintf(t, sizeof(t), "%lld", (long long)m->end);
	r = r ? r : xml_elem(b, 3, "end", t);
	r = r ? r : xml_close(b, 2, "date_range");
	if (m->generator)
		r = r ? r : xml_elem(b, 2, "generator", m->generator);
	return r ? r : xml_close(b, 1, "report_metadata");
}

/* The published policy; absent sp means p, absent np means sp. */
static int
xml_policy(struct buf *b, const struct dmarc_rep_row *row)
{
	const char *p = row->p[0] ? row->p : "none";
	const char *sp = row->sp[0] ? row->sp : p;
	const char *np = row->np[0] ? row->np : sp;
	const char *ad = strcmp(row->adkim, "s") == 0 ? "s" : "r";
	const char *as = strcmp(row->aspf, "s") == 0 ? "s" : "r";
	int r = xml_open(b, 1, "policy_published");

	r = r ? r : xml_elem(b, 2, "domain", row->policy_domain);
	r = r ? r : xml_elem(b, 2, "p", p);
	r = r ? r : xml_elem(b, 2, "sp", sp);
	r = r ? r : xml_elem(b, 2, "np", np);
	r = r ? r : xml_elem(b, 2, "adkim", ad);
	r = r ? r : xml_elem(b, 2, "aspf", as);
	r = r ? r : xml_elem(b, 2, "discovery_method", "treewalk");
	r = r ? r
	      : xml_elem(b, 2, "testing",
			 strcmp(row->testing, "y") == 0 ? "y" : "n");
	return r ? r : xml_close(b, 1, "policy_published");
}

static int
xml_auth_results(struct buf *b, const struct dmarc_rep_row *row)
{
	int r = xml_open(b, 2, "auth_results");

	for (unsigned i = 0; i < row->ndkim && i < DMARC_REP_DKIM_MAX; i++) {
		const struct dmarc_rep_dkim *d = &row->dkim[i];
		r = r ? r : xml_open(b, 3, "dkim");
		r = r ? r : xml_elem(b, 4, "domain", d->domain);
		if (d->selector[0])
			r = r ? r : xml_elem(b, 4, "selector", d->selector);
		r = r ? r : xml_elem(b, 4, "result", d->result);
		r = r ? r : xml_close(b, 3, "dkim");
	}
	r = r ? r : xml_open(b, 3, "spf");
	r = r ? r : xml_elem(b, 4, "domain", row->spf_domain);
	if (row->spf_scope[0])
		r = r ? r : xml_elem(b, 4, "scope", row->spf_scope);
	r = r ? r
	      : xml_elem(b, 4, "result",
			 row->spf_result[0] ? row->spf_result : "none");
	r = r ? r : xml_close(b, 3, "spf");
	return r ? r : xml_close(b, 2, "auth_results");
}

static int
xml_record(struct buf *b, const struct dmarc_rep_row *row, uint64_t count)
{
	char n[32];
	int r = xml_open(b, 1, "record");

	snprintf(n, sizeof(n), "%llu", (unsigned long long)count);
	r = r ? r : xml_open(b, 2, "row");
	r = r ? r : xml_elem(b, 3, "source_ip", row->source_ip);
	r = r ? r : xml_elem(b, 3, "count", n);
	r = r ? r : xml_open(b, 3, "policy_evaluated");
	r = r ? r : xml_elem(b, 4, "disposition", row->disposition);
	r = r ? r : xml_elem(b, 4, "dkim", row->dkim_align);
	r = r ? r : xml_elem(b, 4, "spf", row->spf_align);
	r = r ? r : xml_close(b, 3, "policy_evaluated");
	r = r ? r : xml_close(b, 2, "row");
	r = r ? r : xml_open(b, 2, "identifiers");
	if (row->envelope_from[0])
		r = r ? r : xml_elem(b, 3, "envelope_from", row->envelope_from);
	r = r ? r : xml_elem(b, 3, "header_from", row->header_from);
	r = r ? r : xml_close(b, 2, "identifiers");
	r = r ? r : xml_auth_results(b, row);
	return r ? r : xml_close(b, 1, "record");
}

/* One <record> per distinct row, in order of first appearance. */
static int
xml_records(struct buf *b, const struct dmarc_rep_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t count = 0;
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = dmarc_rep_same_record(&rows[j], &rows[i]);
		if (seen)
			continue;
		for (size_t j = i; j < n; j++)
			count += dmarc_rep_same_record(&rows[i], &rows[j]);
		if (xml_record(b, &rows[i], count) < 0)
			return -1;
	}
	return 0;
}

int
dmarc_rep_xml(const struct dmarc_rep_meta *m, const struct dmarc_rep_row *rows,
	      size_t n, struct buf *out)
{
	int r;

	if (n == 0)
		return -1;
	r = buf_adds(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			  "<feedback xmlns=\"" XMLNS "\">\n"
			  "  <version>1.0</version>\n");
	r = r ? r : xml_metadata(out, m);
	r = r ? r : xml_policy(out, &rows[n - 1]);
	r = r ? r : xml_records(out, rows, n);
	return r ? r : buf_adds(out, "</feedback>\n");
}

/* ---- gzip ------------------------------------------------------------- */

int
dmarc_rep_gzip(const void *in, size_t n, struct buf *out)
{
	z_stream z = {0};
	unsigned char tmp[16384];
	int rc, r = 0;

	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, GZ_WINDOW, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	do {
		z.next_out = tmp;
		z.avail_out = sizeof(tmp);
		rc = deflate(&z, Z_FINISH);
		if (rc == Z_STREAM_ERROR)
			r = -1;
		else
			r = buf_add(out, tmp, sizeof(tmp) - z.avail_out);
	} while (rc == Z_OK && r == 0);
	deflateEnd(&z);
	return r == 0 && rc == Z_STREAM_END ? 0 : -1;
}

/* ---- the message ------------------------------------------------------ */

int
dmarc_rep_filename(const struct dmarc_rep_meta *m, char *out, size_t outsz)
{
	int n =
	    snprintf(out, outsz, "%s!%s!%lld!%lld.xml.gz", m->receiver,
		     m->policy_domain, (long long)m->begin, (long long)m->end);
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

static int
base64_lines(const unsigned char *p, size_t n, struct buf *out)
{
	static const char al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
	    "vwxyz0123456789+/";
	size_t col = 0;
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		char q[4];
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = al[v >> 18 & 63];
		q[1] = al[v >> 12 & 63];
		q[2] = i + 1 < n ? al[v >> 6 & 63] : '=';
		q[3] = i + 2 < n ? al[v & 63] : '=';
		r = buf_add(out, q, 4);
		col += 4;
		if (col >= B64_LINE && r == 0) {
			r = buf_adds(out, "\r\n");
			col = 0;
		}
	}
	return r ? r : col ? buf_adds(out, "\r\n") : 0;
}

/* Header values come from validated names and configuration; still,
 * no CR/LF may reach a header. */
static int
hdr_value(struct buf *b, const char *s)
{
	int r = 0;

	for (; *s && r == 0; s++) {
		unsigned char c = (unsigned char)*s;
		r = buf_addc(b, c < 0x20 || c > 0x7e ? '?' : (char)c);
	}
	return r;
}

static int
msg_headers(const struct dmarc_rep_meta *m, const char *rcpt, const char *date,
	    const char *msgid_host, const char *boundary, struct buf *b)
{
	int r = buf_adds(b, "From: ");

	r = r ? r : hdr_value(b, m->email);
	r = r ? r : buf_adds(b, "\r\nTo: ");
	r = r ? r : hdr_value(b, rcpt);
	r = r ? r : buf_adds(b, "\r\nSubject: Report Domain: ");
	r = r ? r : hdr_value(b, m->policy_domain);
	r = r ? r : buf_adds(b, " Submitter: ");
	r = r ? r : hdr_value(b, m->receiver);
	r = r ? r : buf_adds(b, " Report-ID: ");
	r = r ? r : hdr_value(b, m->report_id);
	r = r ? r : buf_adds(b, "\r\nDate: ");
	r = r ? r : hdr_value(b, date);
	r = r ? r : buf_adds(b, "\r\nMessage-ID: <dmarc-report.");
	r = r ? r : hdr_value(b, m->report_id);
	r = r ? r : buf_addc(b, '@');
	r = r ? r : hdr_value(b, msgid_host);
	r = r ? r
	      : buf_addf(b,
			 ">\r\nMIME-Version: 1.0\r\n"
			 "Content-Type: multipart/mixed; boundary=\"%s\"\r\n"
			 "Auto-Submitted: auto-generated\r\n\r\n",
			 boundary);
	return r;
}

int
dmarc_rep_message(const struct dmarc_rep_meta *m, const char *rcpt,
		  const char *date, const char *msgid_host, const void *gz,
		  size_t gzlen, struct buf *out)
{
	char fname[4 * DMARC_REP_NAME], boundary[64];
	int r;

	if (dmarc_rep_filename(m, fname, sizeof(fname)) < 0)
		return -1;
	/* base64 and the fixed text never contain "=_" followed by this */
	snprintf(boundary, sizeof(boundary), "=_todoku-dmarc-%lld-%lld",
		 (long long)m->begin, (long long)m->end);
	r = msg_headers(m, rcpt, date, msgid_host, boundary, out);
	r = r ? r
	      : buf_addf(out,
			 "This is a MIME message.\r\n\r\n--%s\r\n"
			 "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
			 "DMARC aggregate report for ",
			 boundary);
	r = r ? r : hdr_value(out, m->policy_domain);
	r = r ? r : buf_addf(out, " from ");
	r = r ? r : hdr_value(out, m->org_name);
	r = r ? r
	      : buf_addf(out,
			 ".\r\n\r\n--%s\r\n"
			 "Content-Type: application/gzip; name=\"",
			 boundary);
	r = r ? r : hdr_value(out, fname);
	r = r ? r
	      : buf_adds(out, "\"\r\nContent-Transfer-Encoding: base64\r\n"
			      "Content-Disposition: attachment; filename=\"");
	r = r ? r : hdr_value(out, fname);
	r = r ? r : buf_adds(out, "\"\r\n\r\n");
	r = r ? r : base64_lines(gz, gzlen, out);
	return r ? r : buf_addf(out, "\r\n--%s--\r\n", boundary);
}
