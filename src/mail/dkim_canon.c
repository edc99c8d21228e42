/*
 * dkim_canon — see dkim_canon.h.
 *
 * Body canonicalisation works on spans. Almost all of a body passes
 * through unchanged: simple canonicalisation changes nothing but the
 * empty lines at the end, relaxed also rewrites white space, and only
 * where a run of WSP is longer than one SP, holds a TAB or ends a line.
 * So each chunk is cut at the few octets where the output may differ
 * from the input ("stops"), the spans between stops go to the hash as
 * they are, and only the stops are looked at one by one.
 *
 * A span ending in CRLFs is emitted up to its last content octet; its
 * trailing CRLFs become a pending count, emitted only when more content
 * follows (so empty lines at the end of the body are never emitted).
 * What a chunk boundary leaves undecided is carried in two flags: a CR
 * that may be the first half of a CRLF, and (relaxed) a run of WSP that
 * may end its line. settle() decides them against the next octets.
 *
 * Canonical octets reach EVP through a 16 KiB staging array, or straight
 * from the caller's buffer when a span is at least that long, so EVP
 * sees few, large updates whatever the shape of the text.
 */
#include "mail/dkim_canon.h"

#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/alloc.h"

static EVP_MD *md_sha1, *md_sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void
md_fetch(void)
{
	md_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *
dkim_md(bool sha1)
{
	pthread_once(&md_once, md_fetch);
	if (sha1)
		return md_sha1 != NULL ? md_sha1 : EVP_sha1();
	return md_sha256 != NULL ? md_sha256 : EVP_sha256();
}

static void
stage_flush(struct dkim_body *b)
{
	if (b->stage_len > 0 && b->md != NULL &&
	    EVP_DigestUpdate(b->md, b->stage, b->stage_len) != 1)
		b->error = true;
	b->stage_len = 0;
}

/* n canonical octets: counted, tapped, hashed up to l=. */
static void
emit(struct dkim_body *b, const uint8_t *p, size_t n)
{
	size_t take = n;

	b->canon_len += n;
	if (b->tap != NULL && buf_add(b->tap, p, n) < 0)
		b->error = true;
	if (b->has_limit && b->limit - b->hashed < take)
		take = (size_t)(b->limit - b->hashed);
	b->hashed += take;
	if (take == 0)
		return;
	if (b->stage_len + take > sizeof(b->stage))
		stage_flush(b);
	if (take >= sizeof(b->stage)) {
		if (b->md != NULL && EVP_DigestUpdate(b->md, p, take) != 1)
			b->error = true;
		return;
	}
	memcpy(b->stage + b->stage_len, p, take);
	b->stage_len += take;
}

static void
emit_crlfs(struct dkim_body *b, uint64_t n)
{
	static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
	const uint64_t per = (sizeof(crlfs) - 1) / 2;

	for (; n > per; n -= per)
		emit(b, (const uint8_t *)crlfs, 2 * per);
	emit(b, (const uint8_t *)crlfs, 2 * (size_t)n);
}

/*
 * Content follows: the pending CRLFs were inner lines after all, and a
 * pending WSP run was inside its line (one SP). Then the n octets of p.
 */
static void
put_content(struct dkim_body *b, const uint8_t *p, size_t n)
{
	if (b->crlf_pending > 0)
		emit_crlfs(b, b->crlf_pending);
	b->crlf_pending = 0;
	if (b->ws_pending)
		emit(b, (const uint8_t *)" ", 1);
	b->ws_pending = false;
	emit(b, p, n);
	b->any = true;
}

/* Octets passed through unchanged, except for their trailing CRLFs. */
static void
put_span(struct dkim_body *b, const uint8_t *p, size_t n)
{
	uint64_t t = 0;

	while (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n') {
		n -= 2;
		t++;
	}
	if (n > 0) {
		put_content(b, p, n);
		b->crlf_pending = t;
	} else {
		b->crlf_pending += t;
	}
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
	    EVP_DigestInit_ex(b->md, dkim_md(sha1), NULL) != 1) {
		dkim_body_free(b);
		b->error = true;
		return -1;
	}
	return 0;
}

static bool
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/*
 * Decides what the previous octets left open, looking at p[i..n): a held
 * CR (CRLF or content) and a WSP run (dropped at the end of its line, else
 * one SP). Returns where the span scan resumes.
 */
static size_t
settle(struct dkim_body *b, const uint8_t *p, size_t i, size_t n)
{
	if (b->ws_pending && !b->cr_pending)
		while (i < n && is_wsp(p[i]))
			i++;
	if (i == n)
		return n;
	if (b->cr_pending) {
		b->cr_pending = false;
		if (p[i] == '\n') {
			b->ws_pending = false;
			b->crlf_pending++;
			return i + 1;
		}
		put_content(b, (const uint8_t *)"\r", 1);
		return i;
	}
	if (!b->ws_pending)
		return i;
	if (p[i] == '\r' && i + 1 == n) {
		b->cr_pending = true;
		return n;
	}
	/* At the end of a line the run goes (the CRLF is part of the next
	 * span); before content it is one SP. */
	if (p[i] == '\r' && p[i + 1] == '\n')
		b->ws_pending = false;
	else
		put_content(b, NULL, 0);
	return i;
}

/* Simple: only a CR ending the chunk is undecided. */
static size_t
simple_scan(const uint8_t *p, size_t n)
{
	return p[n - 1] == '\r' ? n - 1 : n;
}

/*
 * Relaxed: p[i] is a stop if the output may differ there from the input:
 * a TAB, an SP followed by WSP or CR (a longer run or the end of a line),
 * or an SP or CR that ends the chunk.
 */
static bool
relaxed_stop(const uint8_t *p, size_t i, size_t n)
{
	if (p[i] == '\t')
		return true;
	if (p[i] == '\r')
		return i + 1 == n;
	if (p[i] != ' ')
		return false;
	return i + 1 == n || is_wsp(p[i + 1]) || p[i + 1] == '\r';
}

typedef uint8_t dkim_v16 __attribute__((vector_size(16)));

/* False if no octet of p[0..16) is a stop (reads p[0..17)). A filter
 * only: relaxed_stop() finds the exact octet. */
static bool
block_may_stop(const uint8_t *p)
{
	dkim_v16 c, next, stop;
	uint64_t half[2];

	memcpy(&c, p, sizeof(c));
	memcpy(&next, p + 1, sizeof(next));
	stop = (dkim_v16)((c == '\t') |
			  ((c == ' ') &
			   ((next == ' ') | (next == '\t') | (next == '\r'))));
	memcpy(half, &stop, sizeof(half));
	return (half[0] | half[1]) != 0;
}

/* The first stop in p[i..n), or n. Sixteen octets at a time while they
 * are all ordinary; a block that may hold a stop is looked at octet by
 * octet. */
static size_t
relaxed_scan(const uint8_t *p, size_t i, size_t n)
{
	size_t end;

	for (;;) {
		while (n - i >= 17 && !block_may_stop(p + i))
			i += 16;
		end = n - i > 16 ? i + 16 : n;
		for (; i < end; i++)
			if (relaxed_stop(p, i, n))
				return i;
		if (i == n)
			return n;
	}
}

void
dkim_body_feed(struct dkim_body *b, const void *in, size_t n)
{
	const uint8_t *p = in;
	size_t i = settle(b, p, 0, n), stop;

	while (i < n) {
		stop = b->canon == DKIM_CANON_RELAXED ? relaxed_scan(p, i, n)
						      : simple_scan(p, n);
		put_span(b, p + i, stop - i);
		if (stop == n)
			return;
		if (p[stop] == '\r')
			b->cr_pending = true; /* the last octet */
		else
			b->ws_pending = true;
		i = settle(b, p, stop + 1, n);
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

	if (b->cr_pending) /* a CR at the very end is content */
		put_content(b, (const uint8_t *)"\r", 1);
	b->cr_pending = b->ws_pending = false; /* WSP ending the last line */
	/* Simple: exactly one CRLF ends the body, also an empty one.
	 * Relaxed: an empty body stays empty. */
	if (b->canon == DKIM_CANON_SIMPLE || b->any)
		emit_crlfs(b, 1);
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

static char
ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/*
 * Relaxed (§3.4.2): the name lowercased without WSP before the colon,
 * the value unfolded, WSP runs as one SP and none at either end. The
 * result is never longer than the field plus a CRLF, so it is written in
 * place into room reserved once.
 */
static int
hcanon_relaxed(const char *f, size_t n, bool crlf, struct buf *out)
{
	const char *colon = memchr(f, ':', n);
	size_t i, nl;
	char *o, *value;
	bool ws = false;

	if (colon == NULL || buf_reserve(out, n + 2) < 0)
		return -1;
	o = out->data + out->len;
	nl = (size_t)(colon - f);
	while (nl > 0 && is_wsp((unsigned char)f[nl - 1]))
		nl--;
	for (i = 0; i < nl; i++)
		*o++ = ascii_lower(f[i]);
	*o++ = ':';
	value = o;
	for (i = (size_t)(colon - f) + 1; i < n; i++) {
		if (f[i] == '\r' && i + 1 < n && f[i + 1] == '\n') {
			i++; /* unfold; a bare CR is content */
		} else if (is_wsp((unsigned char)f[i])) {
			ws = true;
		} else {
			if (ws && o != value)
				*o++ = ' ';
			ws = false;
			*o++ = f[i];
		}
	}
	if (crlf) {
		*o++ = '\r';
		*o++ = '\n';
	}
	out->len = (size_t)(o - out->data);
	out->data[out->len] = '\0';
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

/* s->match: 2 after a CRLF (or at the start), 3 after CRLF CR, 1 after
 * another CR, 0 otherwise. One non-LF octet. */
static unsigned
match_step(unsigned m, char c)
{
	if (c == '\r')
		return m == 2 ? 3 : 1;
	return 0;
}

/* The state after the non-LF octets p[i..j). Only the last three can
 * matter: state 2 holds only right after an LF, so when octets are
 * skipped the first one looked at sets the state whatever it was. */
static unsigned
match_run(unsigned m, const char *p, size_t i, size_t j)
{
	if (j - i > 3) {
		i = j - 3;
		m = 0;
	}
	for (; i < j; i++)
		m = match_step(m, p[i]);
	return m;
}

/* Index of the LF ending the header block (CRLF CRLF) in p, or n. */
static size_t
find_end(struct dkim_split *s, const char *p, size_t n)
{
	const char *lf;
	size_t i = 0, j;

	while ((lf = memchr(p + i, '\n', n - i)) != NULL) {
		j = (size_t)(lf - p);
		s->match = match_run(s->match, p, i, j);
		if (s->match == 3)
			return j;
		s->match = s->match == 1 ? 2 : 0;
		i = j + 1;
	}
	s->match = match_run(s->match, p, i, n);
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
