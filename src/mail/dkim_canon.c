/*
 * dkim_canon — see dkim_canon.h.
 *
 * Body canonicalisation as a small state machine whose only memory is:
 * how many CRLFs are pending (empty lines at the end are dropped, so a
 * CRLF is emitted only once content follows), whether a CR is held back
 * (it may be the first half of a CRLF split across chunks), and for
 * relaxed whether a run of WSP is pending (dropped at the end of a line,
 * one SP before content). Canonical octets go through a staging array so
 * EVP sees few, large updates; runs of ordinary octets are copied whole.
 */
#include "mail/dkim_canon.h"

#include <string.h>

#include <openssl/evp.h>

#include "lib/alloc.h"

static void
stage_flush(struct dkim_body *b)
{
	if (b->stage_len > 0 && b->md != NULL &&
	    EVP_DigestUpdate(b->md, b->stage, b->stage_len) != 1)
		b->error = true;
	b->stage_len = 0;
}

static void
emit(struct dkim_body *b, const uint8_t *p, size_t n)
{
	size_t take = n, k;

	b->canon_len += n;
	if (b->tap != NULL && buf_add(b->tap, p, n) < 0)
		b->error = true;
	if (b->has_limit && b->limit - b->hashed < take)
		take = (size_t)(b->limit - b->hashed);
	b->hashed += take;
	while (take > 0) {
		if (b->stage_len == sizeof(b->stage))
			stage_flush(b);
		k = sizeof(b->stage) - b->stage_len;
		if (k > take)
			k = take;
		memcpy(b->stage + b->stage_len, p, k);
		b->stage_len += k;
		p += k;
		take -= k;
	}
}

static void
emit_crlf(struct dkim_body *b)
{
	emit(b, (const uint8_t *)"\r\n", 2);
}

/* Content follows: the pending CRLFs were inner lines after all. */
static void
content_prefix(struct dkim_body *b)
{
	for (; b->crlf_pending > 0; b->crlf_pending--)
		emit_crlf(b);
	if (b->ws_pending)
		emit(b, (const uint8_t *)" ", 1);
	b->ws_pending = false;
	b->any = true;
	b->line_open = true;
}

int
dkim_body_init(struct dkim_body *b, enum dkim_canon c, bool sha1, int64_t limit)
{
	memset(b, 0, offsetof(struct dkim_body, stage));
	b->canon = c;
	b->sha1 = sha1;
	b->has_limit = limit >= 0;
	b->limit = limit >= 0 ? (uint64_t)limit : 0;
	b->md = EVP_MD_CTX_new();
	if (b->md == NULL ||
	    EVP_DigestInit_ex(b->md, sha1 ? EVP_sha1() : EVP_sha256(), NULL) !=
		1) {
		dkim_body_free(b);
		b->error = true;
		return -1;
	}
	return 0;
}

/* The CR held back was not part of a CRLF: it is content. */
static void
held_cr(struct dkim_body *b)
{
	b->cr_pending = false;
	content_prefix(b);
	emit(b, (const uint8_t *)"\r", 1);
}

static void
end_line(struct dkim_body *b)
{
	b->cr_pending = false;
	b->crlf_pending++;
	b->ws_pending = false;
	b->line_open = false;
}

static size_t
simple_run(struct dkim_body *b, const uint8_t *p, size_t n)
{
	const uint8_t *cr = memchr(p, '\r', n);
	size_t k = cr != NULL ? (size_t)(cr - p) : n;

	content_prefix(b);
	emit(b, p, k);
	return k;
}

static bool
relaxed_special(uint8_t c)
{
	return c == '\r' || c == ' ' || c == '\t';
}

/* Octets that relaxed leaves alone: no CR, no tab, single SP inside. */
static size_t
relaxed_run(struct dkim_body *b, const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (!relaxed_special(p[i])) {
			i++;
			continue;
		}
		if (p[i] == ' ' && i + 1 < n && !relaxed_special(p[i + 1])) {
			i += 2;
			continue;
		}
		break;
	}
	content_prefix(b);
	emit(b, p, i);
	return i;
}

void
dkim_body_feed(struct dkim_body *b, const void *in, size_t n)
{
	const uint8_t *p = in;
	size_t i = 0;
	bool relaxed = b->canon == DKIM_CANON_RELAXED;

	while (i < n) {
		uint8_t c = p[i];

		if (b->cr_pending) {
			if (c == '\n') {
				end_line(b);
				i++;
			} else {
				held_cr(b);
			}
			continue;
		}
		if (c == '\r') {
			b->cr_pending = true;
			i++;
		} else if (relaxed && (c == ' ' || c == '\t')) {
			b->ws_pending = true;
			i++;
		} else if (relaxed) {
			i += relaxed_run(b, p + i, n - i);
		} else {
			i += simple_run(b, p + i, n - i);
		}
	}
}

void
dkim_body_free(struct dkim_body *b)
{
	EVP_MD_CTX_free(b->md);
	b->md = NULL;
}

int
dkim_body_final(struct dkim_body *b, uint8_t out[32], size_t *outlen)
{
	unsigned len = 0;

	if (b->cr_pending)
		held_cr(b);
	/* Simple: exactly one CRLF ends the body, also an empty one.
	 * Relaxed: an empty body stays empty. */
	if (b->canon == DKIM_CANON_SIMPLE || b->any)
		emit_crlf(b);
	stage_flush(b);
	if (b->md == NULL || b->error ||
	    EVP_DigestFinal_ex(b->md, out, &len) != 1) {
		dkim_body_free(b);
		b->error = true;
		return -1;
	}
	*outlen = len;
	dkim_body_free(b);
	return 0;
}

static bool
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int
hcanon_relaxed(const char *f, size_t n, bool crlf, struct buf *out)
{
	const char *colon = memchr(f, ':', n);
	size_t i, nl, start;
	bool ws = false, any = false;

	if (colon == NULL)
		return -1;
	nl = (size_t)(colon - f);
	while (nl > 0 && is_wsp((unsigned char)f[nl - 1]))
		nl--;
	for (i = 0; i < nl; i++) {
		char c = f[i];

		if (buf_addc(out, (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c) <
		    0)
			return -1;
	}
	if (buf_addc(out, ':') < 0)
		return -1;
	for (i = (size_t)(colon - f) + 1; i < n;) {
		if (f[i] == '\r' && i + 1 < n && f[i + 1] == '\n') {
			i += 2;
			continue;
		}
		if (is_wsp((unsigned char)f[i])) {
			ws = true;
			i++;
			continue;
		}
		if (ws && any && buf_addc(out, ' ') < 0)
			return -1;
		ws = false;
		start = i;
		while (i < n && !is_wsp((unsigned char)f[i]) && f[i] != '\r')
			i++;
		if (i == start) /* a bare CR is content */
			i++;
		if (buf_add(out, f + start, i - start) < 0)
			return -1;
		any = true;
	}
	if (crlf && buf_add(out, "\r\n", 2) < 0)
		return -1;
	return 0;
}

int
dkim_hcanon(enum dkim_canon c, const char *f, size_t n, bool crlf,
	    struct buf *out)
{
	bool has_crlf = n >= 2 && f[n - 2] == '\r' && f[n - 1] == '\n';

	if (c == DKIM_CANON_RELAXED)
		return hcanon_relaxed(f, has_crlf ? n - 2 : n, crlf, out);
	if (buf_add(out, f, has_crlf ? n - 2 : n) < 0)
		return -1;
	if (crlf && buf_add(out, "\r\n", 2) < 0)
		return -1;
	return 0;
}

void
dkim_split_init(struct dkim_split *s, size_t max_header)
{
	memset(s, 0, sizeof(*s));
	buf_init(&s->hdr, max_header);
	s->match = 2; /* the first line counts as following a CRLF */
}

void
dkim_split_free(struct dkim_split *s)
{
	buf_free(&s->hdr);
	xfree(s->fields);
	s->fields = NULL;
	s->nfields = 0;
}

/* Index of the octet ending the header block in p, or n. */
static size_t
find_end(struct dkim_split *s, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = p[i];

		if (c == '\r') {
			s->match = s->match == 2 ? 3 : 1;
		} else if (c == '\n') {
			if (s->match == 3)
				return i;
			s->match = s->match == 1 ? 2 : 0;
		} else {
			s->match = 0;
		}
	}
	return n;
}

bool
dkim_split_feed(struct dkim_split *s, const char *p, size_t n,
		const char **body, size_t *bodylen)
{
	size_t end;

	*body = NULL;
	*bodylen = 0;
	if (s->in_body) {
		*body = p;
		*bodylen = n;
		return false;
	}
	end = find_end(s, p, n);
	if (!s->overflow && buf_add(&s->hdr, p, end < n ? end + 1 : n) < 0) {
		s->overflow = true;
		buf_reset(&s->hdr);
	}
	if (end == n)
		return false;
	s->in_body = true;
	if (!s->overflow) {
		s->hdr.len -= 2; /* the empty line */
		s->hdr.data[s->hdr.len] = '\0';
	}
	*body = p + end + 1;
	*bodylen = n - end - 1;
	return true;
}

static int
add_field(struct dkim_split *s, size_t off, size_t len, size_t *cap)
{
	const char *f = s->hdr.data + off;
	const char *colon = memchr(f, ':', len);
	struct dkim_field *nf;
	size_t nl;

	if (colon == NULL)
		return 0; /* not a header field: never selected */
	nl = (size_t)(colon - f);
	while (nl > 0 && is_wsp((unsigned char)f[nl - 1]))
		nl--;
	if (s->nfields == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		nf = trealloc(s->fields, *cap * sizeof(*nf));
		if (nf == NULL)
			return -1;
		s->fields = nf;
	}
	nf = &s->fields[s->nfields++];
	nf->off = off;
	nf->len = len;
	nf->name_len = nl;
	nf->value_off = (size_t)(colon - f) + 1;
	return 0;
}

int
dkim_split_fields(struct dkim_split *s)
{
	const char *h = s->hdr.data;
	size_t n = s->hdr.len, i = 0, start = 0, cap = 0;
	const char *lf;

	xfree(s->fields);
	s->fields = NULL;
	s->nfields = 0;
	if (s->overflow || n == 0)
		return 0;
	/* A field ends before a line that does not start with WSP. */
	while (i < n) {
		lf = memchr(h + i, '\n', n - i);
		i = lf != NULL ? (size_t)(lf - h) + 1 : n;
		if (i < n && is_wsp((unsigned char)h[i]))
			continue;
		if (!is_wsp((unsigned char)h[start]) &&
		    add_field(s, start, i - start, &cap) < 0)
			return -1;
		start = i;
	}
	return 0;
}
