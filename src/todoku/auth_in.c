/*
 * auth_in — see auth_in.h.
 */
#include "todoku/auth_in.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/arc.h"
#include "mail/dkim_verify.h"
#include "mail/dmarc.h"
#include "mail/dns_answer.h"
#include "mail/dns_msg.h"
#include "mail/spf.h"

#define AUTH_IN_RECORDS 64
#define AUTH_IN_ANSWER_MAX (64 * 1024)

enum qkind { Q_FREE = 0, Q_SPF, Q_DKIM, Q_DMARC, Q_ARC };

struct pending {
	enum qkind kind;
	uint16_t idx; /* DKIM signature */
	uint16_t type;
};

struct auth_in {
	struct auth_in_params p;
	char *ip, *helo, *sender, *authserv_id, *hostname;
	auth_in_query_cb *query;
	auth_in_done_cb *done;
	void *arg;
	struct pending q[AUTH_IN_MAX_QUERIES];
	unsigned outstanding;
	unsigned dkim_outstanding;
	/* SPF */
	struct spf *spf;
	int spf_done;
	enum spf_result spf_res;
	/* DKIM */
	struct dkim_verifier *dkim;
	int dkim_finished;
	/* ARC (its key lookups count with DKIM's: both end together) */
	struct arc_verifier *arc;
	/* header block, for From: */
	struct buf hdr;
	int hdr_complete;
	/* DMARC */
	struct dmarc *dmarc;
	int dmarc_started, dmarc_done;
	char dmarc_skip[128]; /* why DMARC did not apply */
	int ended, finished;
	struct buf out;
	struct buf aar; /* our results on one line, for ARC (RFC 8617 §4.1.1) */
	int reject;
	char reject_text[512];
};

static void auth_maybe_progress(struct auth_in *a);
static void auth_fail_query(struct auth_in *a, enum qkind kind, uint16_t idx);

/* ---- the DNS questions ------------------------------------------------- */

static void
auth_ask(struct auth_in *a, enum qkind kind, uint16_t idx, const char *name,
	 uint16_t type)
{
	for (uint32_t i = 0; i < AUTH_IN_MAX_QUERIES; i++) {
		if (a->q[i].kind != Q_FREE)
			continue;
		a->q[i].kind = kind;
		a->q[i].idx = idx;
		a->q[i].type = type;
		a->outstanding++;
		if (kind == Q_DKIM || kind == Q_ARC)
			a->dkim_outstanding++;
		a->query(a->arg, i, name, type);
		return;
	}
	log_warn("auth: too many DNS questions for one message; %s %s "
		 "treated as a temporary failure",
		 name, dns_type_name(type));
	auth_fail_query(a, kind, idx);
}

static uint16_t
spf_type(enum spf_qtype t)
{
	static const uint16_t map[] = {DNS_T_TXT, DNS_T_A, DNS_T_AAAA, DNS_T_MX,
				       DNS_T_PTR};
	return map[t];
}

static uint16_t
dmarc_type(enum dmarc_qtype t)
{
	static const uint16_t map[] = {DNS_T_TXT, DNS_T_A, DNS_T_AAAA,
				       DNS_T_MX};
	return map[t];
}

/* ---- SPF ----------------------------------------------------------------- */

static void
auth_spf_step(struct auth_in *a, enum spf_step st)
{
	if (st == SPF_STEP_QUERY) {
		const struct spf_query *q = spf_query(a->spf);
		auth_ask(a, Q_SPF, 0, q->name, spf_type(q->type));
		return;
	}
	a->spf_done = 1;
	a->spf_res = spf_result(a->spf);
}

/* ---- DMARC -----------------------------------------------------------------
 */

static void
auth_dmarc_step(struct auth_in *a, enum dmarc_step st)
{
	if (st == DMARC_STEP_QUERY) {
		const struct dmarc_query *q = dmarc_query(a->dmarc);
		auth_ask(a, Q_DMARC, 0, q->name, dmarc_type(q->type));
		return;
	}
	a->dmarc_done = 1;
}

/* The one From: field of a header block; 0 none, -1 several. */
static int
from_field(const char *h, size_t hl, const char **val, size_t *len)
{
	const char *end = h + hl;
	int found = 0;

	for (const char *line = h; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *stop = nl ? nl + 1 : end;
		if (stop - line >= 5 && strncasecmp(line, "From:", 5) == 0) {
			const char *v = line + 5, *e = stop;
			/* the field continues on folded lines */
			while (e < end && (*e == ' ' || *e == '\t')) {
				const char *n2 =
				    memchr(e, '\n', (size_t)(end - e));
				e = n2 ? n2 + 1 : end;
			}
			if (found++)
				return -1;
			*val = v;
			*len = (size_t)(e - v);
		}
		if (stop - line <= 2 && (line[0] == '\r' || line[0] == '\n'))
			break; /* end of the header block */
		line = stop;
	}
	return found;
}

static int
auth_from_field(const struct auth_in *a, const char **val, size_t *len)
{
	return from_field(a->hdr.data ? a->hdr.data : "", a->hdr.len, val, len);
}

int
auth_in_from_domain(const char *hdr, size_t len, char *out, size_t outlen)
{
	const char *val = NULL;
	size_t vlen = 0;

	if (from_field(hdr, len, &val, &vlen) != 1)
		return -1;
	return dmarc_from_domain(val, vlen, out, outlen, NULL) == DMARC_FROM_OK
		   ? 0
		   : -1;
}

static void
auth_dmarc_start(struct auth_in *a)
{
	struct dmarc_ident dk[8];
	struct dmarc_input in = {0};
	char from[256];
	const char *val = NULL;
	size_t len = 0, n = 0;
	int nf = auth_from_field(a, &val, &len);

	a->dmarc_started = 1;
	if (nf != 1) {
		snprintf(a->dmarc_skip, sizeof(a->dmarc_skip), "%s",
			 nf == 0 ? "no From header field"
				 : "several From header fields");
		a->dmarc_done = 1;
		return;
	}
	if (dmarc_from_domain(val, len, from, sizeof(from), NULL) !=
	    DMARC_FROM_OK) {
		snprintf(a->dmarc_skip, sizeof(a->dmarc_skip),
			 "no single From domain");
		a->dmarc_done = 1;
		return;
	}
	for (size_t i = 0; i < dkim_verify_nsigs(a->dkim) && n < 8; i++) {
		const struct dkim_sig_result *r =
		    dkim_verify_result(a->dkim, i);
		if (r == NULL || r->domain[0] == '\0')
			continue;
		dk[n].domain = r->domain;
		dk[n].pass = r->result == DKIM_PASS;
		n++;
	}
	in.from_domain = from;
	in.spf.domain = spf_domain(a->spf)[0] ? spf_domain(a->spf) : NULL;
	in.spf.pass = a->spf_res == SPF_PASS;
	in.dkim = dk;
	in.ndkim = n;
	in.from_exists = DMARC_EXISTS_ASK;
	if ((a->dmarc = dmarc_new()) == NULL) {
		snprintf(a->dmarc_skip, sizeof(a->dmarc_skip), "out of memory");
		a->dmarc_done = 1;
		return;
	}
	auth_dmarc_step(a, dmarc_start(a->dmarc, &in, NULL));
}

/* ---- the verdict ------------------------------------------------------- */

/* Text from evaluators into a header comment: no parentheses, no
 * backslash, no control or non-ASCII bytes. */
static void
auth_comment(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '\\')
			c = c == '(' || c == ')' ? '\'' : '?';
		buf_addc(b, (char)c);
	}
}

/* An envelope value in a header: printable ASCII only, no ; " \ ( ). */
static void
auth_token(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c >= 0x7f || strchr(";\"\\()", c))
			c = '?';
		buf_addc(b, (char)c);
	}
}

static void
auth_compose_spf(struct auth_in *a)
{
	const char *res = spf_result_name(a->spf_res);
	int helo = a->sender[0] == '\0';

	buf_addf(&a->out, ";\r\n\tspf=%s (", res);
	auth_comment(&a->out, spf_reason(a->spf));
	buf_adds(&a->out, helo ? ") smtp.helo=" : ") smtp.mailfrom=");
	auth_token(&a->out, helo ? a->helo : a->sender);
}

static void
auth_compose_dkim(struct auth_in *a)
{
	size_t n = dkim_verify_nsigs(a->dkim);

	if (n == 0) {
		buf_adds(&a->out, ";\r\n\tdkim=none");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct dkim_sig_result *r =
		    dkim_verify_result(a->dkim, i);
		buf_addf(&a->out, ";\r\n\tdkim=%s (",
			 dkim_result_name(r->result));
		auth_comment(&a->out, r->reason ? r->reason : "");
		if (r->key_bits)
			buf_addf(&a->out, "; %u-bit key", r->key_bits);
		buf_adds(&a->out, ")");
		if (r->domain[0]) {
			buf_adds(&a->out, " header.d=");
			auth_token(&a->out, r->domain);
		}
		if (r->selector[0]) {
			buf_adds(&a->out, " header.s=");
			auth_token(&a->out, r->selector);
		}
		if (r->b_prefix[0]) {
			buf_adds(&a->out, " header.b=");
			auth_token(&a->out, r->b_prefix);
		}
	}
}

static void
auth_compose_arc(struct auth_in *a)
{
	struct buf t;

	buf_init(&t, 1024);
	if (arc_verify_ar(arc_verify_result(a->arc), &t) == 0 && t.len > 0) {
		buf_adds(&a->out, ";\r\n\t");
		auth_comment(&a->out, t.data);
	}
	buf_free(&t);
}

static void
auth_compose_dmarc(struct auth_in *a)
{
	if (a->dmarc == NULL) {
		buf_adds(&a->out, ";\r\n\tdmarc=none (");
		auth_comment(&a->out, a->dmarc_skip);
		buf_adds(&a->out, ")");
		return;
	}
	buf_adds(&a->out, ";\r\n\t");
	auth_comment(&a->out, dmarc_ar(a->dmarc));
}

static void
auth_verdict(struct auth_in *a)
{
	if (a->dmarc && a->p.dmarc_policy == AUTH_DMARC_ENFORCE &&
	    dmarc_result(a->dmarc) == DMARC_FAIL) {
		enum dmarc_policy d = dmarc_disposition(a->dmarc);
		if (d == DMARC_P_REJECT) {
			a->reject = 1;
			snprintf(a->reject_text, sizeof(a->reject_text),
				 "message rejected: the DMARC policy of %s is "
				 "reject and the message fails DMARC (SPF %s, "
				 "no aligned DKIM pass)",
				 dmarc_policy_domain(a->dmarc),
				 spf_result_name(a->spf_res));
			return;
		}
		if (d == DMARC_P_QUARANTINE)
			buf_addf(&a->out,
				 "X-Todoku-Quarantine: DMARC policy of %s is "
				 "quarantine and the message fails DMARC\r\n",
				 dmarc_policy_domain(a->dmarc));
	}
	if (a->p.spf_policy == AUTH_SPF_REJECT && a->spf_res == SPF_FAIL) {
		a->reject = 1;
		snprintf(a->reject_text, sizeof(a->reject_text),
			 "message rejected: SPF fail for %s (%s)",
			 spf_domain(a->spf), spf_reason(a->spf));
		for (char *c = a->reject_text; *c; c++)
			if ((unsigned char)*c < 0x20 ||
			    (unsigned char)*c > 0x7e)
				*c = '?';
	}
}

/* The resinfo after "authserv-id" (";\r\n\tspf=...;\r\n\tdkim=...") as
 * one line without the leading "; ", for the ARC-Authentication-Results
 * field: the same results, the same words. */
static void
auth_unfold(struct buf *out, const char *p, size_t n)
{
	buf_reset(out);
	if (n >= 4 && memcmp(p, ";\r\n\t", 4) == 0)
		p += 4, n -= 4;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && i + 2 < n && p[i + 1] == '\n' &&
		    (p[i + 2] == '\t' || p[i + 2] == ' ')) {
			buf_addc(out, ' ');
			i += 2;
		} else if (p[i] != '\r' && p[i] != '\n') {
			buf_addc(out, p[i]);
		}
	}
}

static void
auth_compose(struct auth_in *a)
{
	size_t start;

	buf_reset(&a->out);
	auth_verdict(a);
	buf_adds(&a->out, "Authentication-Results: ");
	auth_token(&a->out, a->authserv_id);
	start = a->out.len;
	auth_compose_spf(a);
	auth_compose_dkim(a);
	auth_compose_arc(a);
	auth_compose_dmarc(a);
	auth_unfold(&a->aar, a->out.data + start, a->out.len - start);
	buf_adds(&a->out, "\r\nReceived-SPF: ");
	buf_adds(&a->out, spf_result_name(a->spf_res));
	buf_adds(&a->out, " (");
	auth_token(&a->out, a->authserv_id);
	buf_adds(&a->out, ": ");
	auth_comment(&a->out, spf_reason(a->spf));
	buf_adds(&a->out, ")\r\n\tclient-ip=");
	auth_token(&a->out, a->ip);
	buf_adds(&a->out, "; envelope-from=\"");
	auth_token(&a->out, a->sender);
	buf_adds(&a->out, "\"; helo=");
	auth_token(&a->out, a->helo);
	buf_adds(&a->out, ";\r\n");
}

static void
auth_maybe_progress(struct auth_in *a)
{
	if (a->finished || !a->ended)
		return;
	if (!a->dkim_finished && a->dkim_outstanding == 0) {
		dkim_verify_finish(a->dkim);
		arc_verify_finish(a->arc);
		a->dkim_finished = 1;
	}
	if (a->spf_done && a->dkim_finished && !a->dmarc_started)
		auth_dmarc_start(a);
	if (!a->dmarc_done || a->outstanding > 0)
		return;
	auth_compose(a);
	a->finished = 1;
	a->done(a->arg);
}

/* ---- the report row ---------------------------------------------------- */

static const char *
rep_policy(uint8_t p)
{
	return p == DMARC_P_UNSET ? "" : dmarc_policy_name(p);
}

static void
rep_rua(const struct dmarc_record *rec, struct dmarc_rep_row *row)
{
	size_t off = 0;

	for (unsigned i = 0; i < rec->nrua && i < DMARC_URIS_MAX; i++) {
		int n = snprintf(row->rua + off, sizeof(row->rua) - off,
				 "%s %llu\n", rec->rua[i].addr,
				 (unsigned long long)rec->rua[i].max_size);
		if (n < 0 || (size_t)n >= sizeof(row->rua) - off) {
			row->rua[off] = '\0';
			return;
		}
		off += (size_t)n;
	}
}

static void
rep_dkim(const struct auth_in *a, struct dmarc_rep_row *row)
{
	for (size_t i = 0;
	     i < dkim_verify_nsigs(a->dkim) && row->ndkim < DMARC_REP_DKIM_MAX;
	     i++) {
		const struct dkim_sig_result *r =
		    dkim_verify_result(a->dkim, i);
		struct dmarc_rep_dkim *d = &row->dkim[row->ndkim];
		if (r == NULL || r->domain[0] == '\0')
			continue;
		snprintf(d->domain, sizeof(d->domain), "%s", r->domain);
		snprintf(d->selector, sizeof(d->selector), "%s", r->selector);
		snprintf(d->result, sizeof(d->result), "%s",
			 dkim_result_name(r->result));
		row->ndkim++;
	}
}

#define SETF(f, ...) snprintf(row->f, sizeof(row->f), __VA_ARGS__)

bool
auth_in_dmarc_row(const struct auth_in *a, struct dmarc_rep_row *row)
{
	const struct dmarc_record *rec =
	    a->dmarc ? dmarc_record(a->dmarc) : NULL;
	enum dmarc_result res = a->dmarc ? dmarc_result(a->dmarc) : DMARC_NONE;
	const char *at = strrchr(a->sender, '@');
	int enforce = a->p.dmarc_policy == AUTH_DMARC_ENFORCE;

	if (rec == NULL || rec->nrua == 0 ||
	    (res != DMARC_PASS && res != DMARC_FAIL))
		return false;
	memset(row, 0, sizeof(*row));
	row->time = a->p.now;
	SETF(policy_domain, "%s", dmarc_policy_domain(a->dmarc));
	SETF(org_domain, "%s",
	     dmarc_org_domain(a->dmarc)[0] ? dmarc_org_domain(a->dmarc)
					   : dmarc_policy_domain(a->dmarc));
	SETF(p, "%s", rep_policy(rec->p));
	SETF(sp, "%s", rep_policy(rec->sp));
	SETF(np, "%s", rep_policy(rec->np));
	SETF(adkim, "%s", rec->adkim == DMARC_ALIGN_STRICT ? "s" : "r");
	SETF(aspf, "%s", rec->aspf == DMARC_ALIGN_STRICT ? "s" : "r");
	SETF(testing, "%s", rec->testing ? "y" : "n");
	rep_rua(rec, row);
	SETF(source_ip, "%s", a->ip);
	SETF(header_from, "%s", dmarc_from(a->dmarc));
	SETF(envelope_from, "%s", at ? at + 1 : "");
	SETF(spf_domain, "%s", spf_domain(a->spf));
	SETF(spf_scope, "%s", a->sender[0] ? "mfrom" : "helo");
	SETF(spf_result, "%s", spf_result_name(a->spf_res));
	rep_dkim(a, row);
	SETF(disposition, "%s",
	     enforce && dmarc_disposition(a->dmarc) != DMARC_P_UNSET
		 ? dmarc_policy_name(dmarc_disposition(a->dmarc))
		 : "none");
	SETF(dkim_align, "%s", dmarc_aligned_dkim(a->dmarc) ? "pass" : "fail");
	SETF(spf_align, "%s", dmarc_aligned_spf(a->dmarc) ? "pass" : "fail");
	SETF(result, "%s", dmarc_result_name(res));
	return true;
}

#undef SETF

/* ---- API ------------------------------------------------------------------
 */

struct auth_in *
auth_in_new(const struct auth_in_params *p, auth_in_query_cb *query,
	    auth_in_done_cb *done, void *arg)
{
	struct auth_in *a = xcalloc(1, sizeof(*a));
	struct dkim_verify_opts dko = {0};
	struct spf_opts so = {0};

	a->p = *p;
	a->ip = xstrdup(p->ip);
	a->helo = xstrdup(p->helo);
	a->sender = xstrdup(p->sender);
	a->authserv_id = xstrdup(p->authserv_id);
	a->hostname = xstrdup(p->hostname);
	a->query = query;
	a->done = done;
	a->arg = arg;
	buf_init(&a->hdr, AUTH_IN_HDR_MAX);
	buf_init(&a->out, 64 * 1024);
	buf_init(&a->aar, 64 * 1024);
	dko.now = (uint64_t)p->now;
	a->dkim = dkim_verify_new(&dko);
	a->arc = arc_verify_new(NULL);
	a->spf = spf_new();
	if (a->dkim == NULL || a->spf == NULL || a->arc == NULL)
		log_fatal("auth: out of memory");
	so.receiver = a->hostname;
	so.now = p->now;
	auth_spf_step(a,
		      spf_start(a->spf, a->ip, NULL, a->sender, a->helo, &so));
	return a;
}

void
auth_in_free(struct auth_in *a)
{
	if (a == NULL)
		return;
	spf_free(a->spf);
	dkim_verify_free(a->dkim);
	arc_verify_free(a->arc);
	dmarc_free(a->dmarc);
	xfree(a->ip);
	xfree(a->helo);
	xfree(a->sender);
	xfree(a->authserv_id);
	xfree(a->hostname);
	buf_free(&a->hdr);
	buf_free(&a->out);
	buf_free(&a->aar);
	xfree(a);
}

static void
auth_header_capture(struct auth_in *a, const char *p, size_t n)
{
	size_t room = a->hdr.max - a->hdr.len;
	const char *end;

	if (a->hdr_complete)
		return;
	if (n > room)
		n = room;
	buf_add(&a->hdr, p, n);
	if (a->hdr.len >= 2 && memcmp(a->hdr.data, "\r\n", 2) == 0)
		a->hdr_complete = 1;
	end = a->hdr.len ? strstr(a->hdr.data, "\r\n\r\n") : NULL;
	if (end != NULL || a->hdr.len == a->hdr.max)
		a->hdr_complete = 1;
}

void
auth_in_feed(struct auth_in *a, const void *p, size_t n)
{
	auth_header_capture(a, p, n);
	if (arc_verify_feed(a->arc, p, n) == 1) {
		for (size_t k = 0; k < arc_verify_nqueries(a->arc); k++) {
			const char *name = arc_verify_query(a->arc, k);
			if (name != NULL)
				auth_ask(a, Q_ARC, (uint16_t)k, name,
					 DNS_T_TXT);
		}
	}
	if (dkim_verify_feed(a->dkim, p, n) == 1) {
		for (size_t i = 0; i < dkim_verify_nsigs(a->dkim); i++) {
			const char *name = dkim_verify_query(a->dkim, i);
			if (name != NULL)
				auth_ask(a, Q_DKIM, (uint16_t)i, name,
					 DNS_T_TXT);
		}
	}
}

static void
auth_answer_spf(struct auth_in *a, enum dns_answer_kind k,
		const struct buf *data, const size_t *off, const size_t *len,
		size_t n)
{
	struct spf_rdata rr[AUTH_IN_RECORDS];
	struct spf_answer ans = {0};

	for (size_t i = 0; i < n; i++) {
		rr[i].data = data->data + off[i];
		rr[i].len = len[i];
	}
	ans.rcode = k == DNS_ANS_RECORDS    ? SPF_DNS_ANSWER
		    : k == DNS_ANS_NODATA   ? SPF_DNS_NODATA
		    : k == DNS_ANS_NXDOMAIN ? SPF_DNS_NXDOMAIN
					    : SPF_DNS_TEMPFAIL;
	ans.count = n;
	ans.rr = rr;
	auth_spf_step(a, spf_resume(a->spf, &ans));
}

/* A key record for DKIM (kind Q_DKIM) or ARC (Q_ARC): same answer form. */
static void
auth_answer_key(struct auth_in *a, enum qkind kind, uint16_t idx,
		enum dns_answer_kind k, const struct buf *data,
		const size_t *off, const size_t *len, size_t n)
{
	struct dkim_slice rec[AUTH_IN_RECORDS];
	enum dkim_dns st = k == DNS_ANS_RECORDS || k == DNS_ANS_NODATA
			       ? DKIM_DNS_OK
			   : k == DNS_ANS_NXDOMAIN ? DKIM_DNS_NXDOMAIN
						   : DKIM_DNS_TEMPFAIL;
	size_t nrec = k == DNS_ANS_RECORDS ? n : 0;

	for (size_t i = 0; i < nrec; i++) {
		rec[i].p = data->data + off[i];
		rec[i].n = len[i];
	}
	if (kind == Q_DKIM)
		dkim_verify_answer(a->dkim, idx, st, rec, nrec);
	else
		arc_verify_answer(a->arc, idx, st, rec, nrec);
	a->dkim_outstanding--;
}

static void
auth_answer_dmarc(struct auth_in *a, enum dns_answer_kind k,
		  const struct buf *data, const size_t *off, const size_t *len,
		  size_t n)
{
	struct dmarc_rdata rr[AUTH_IN_RECORDS];
	struct dmarc_answer ans = {0};

	for (size_t i = 0; i < n; i++) {
		rr[i].data = data->data + off[i];
		rr[i].len = len[i];
	}
	ans.rcode = k == DNS_ANS_RECORDS    ? DMARC_DNS_ANSWER
		    : k == DNS_ANS_NODATA   ? DMARC_DNS_NODATA
		    : k == DNS_ANS_NXDOMAIN ? DMARC_DNS_NXDOMAIN
					    : DMARC_DNS_TEMPFAIL;
	ans.count = n;
	ans.rr = rr;
	auth_dmarc_step(a, dmarc_resume(a->dmarc, &ans));
}

/* A question that could not be asked: a temporary failure at once. */
static void
auth_fail_query(struct auth_in *a, enum qkind kind, uint16_t idx)
{
	struct buf none;
	size_t z = 0;

	buf_init(&none, 1);
	if (kind == Q_SPF)
		auth_answer_spf(a, DNS_ANS_TEMPFAIL, &none, &z, &z, 0);
	else if (kind == Q_DKIM)
		dkim_verify_answer(a->dkim, idx, DKIM_DNS_TEMPFAIL, NULL, 0);
	else if (kind == Q_ARC)
		arc_verify_answer(a->arc, idx, DKIM_DNS_TEMPFAIL, NULL, 0);
	else
		auth_answer_dmarc(a, DNS_ANS_TEMPFAIL, &none, &z, &z, 0);
	buf_free(&none);
}

void
auth_in_answer(struct auth_in *a, uint32_t qid, int rcode, int sec,
	       const void *pkt, size_t len)
{
	size_t off[AUTH_IN_RECORDS], rl[AUTH_IN_RECORDS], n = AUTH_IN_RECORDS;
	struct pending q;
	struct buf data;
	enum dns_answer_kind k;

	if (qid >= AUTH_IN_MAX_QUERIES || a->q[qid].kind == Q_FREE ||
	    a->finished)
		return;
	q = a->q[qid];
	a->q[qid].kind = Q_FREE;
	a->outstanding--;
	buf_init(&data, AUTH_IN_ANSWER_MAX);
	k = dns_answer_records(rcode, pkt, len, sec, q.type, &data, off, rl,
			       &n);
	if (q.kind == Q_SPF)
		auth_answer_spf(a, k, &data, off, rl, n);
	else if (q.kind == Q_DKIM || q.kind == Q_ARC)
		auth_answer_key(a, q.kind, q.idx, k, &data, off, rl, n);
	else
		auth_answer_dmarc(a, k, &data, off, rl, n);
	buf_free(&data);
	auth_maybe_progress(a);
}

void
auth_in_end(struct auth_in *a)
{
	a->ended = 1;
	auth_maybe_progress(a);
}

void
auth_in_abort(struct auth_in *a, const char *why)
{
	if (a->finished)
		return;
	log_warn("auth: %s; open checks become temperror", why);
	for (uint32_t i = 0; i < AUTH_IN_MAX_QUERIES; i++) {
		if (a->q[i].kind == Q_DKIM)
			dkim_verify_answer(a->dkim, a->q[i].idx,
					   DKIM_DNS_TEMPFAIL, NULL, 0);
		else if (a->q[i].kind == Q_ARC)
			arc_verify_answer(a->arc, a->q[i].idx,
					  DKIM_DNS_TEMPFAIL, NULL, 0);
		a->q[i].kind = Q_FREE;
	}
	a->outstanding = a->dkim_outstanding = 0;
	if (!a->spf_done) {
		spf_abort(a->spf, why);
		a->spf_done = 1;
		a->spf_res = spf_result(a->spf);
	}
	if (a->dmarc && !a->dmarc_done) {
		dmarc_abort(a->dmarc, why);
		a->dmarc_done = 1;
	}
	a->ended = 1;
	if (!a->dkim_finished) {
		dkim_verify_finish(a->dkim);
		arc_verify_finish(a->arc);
		a->dkim_finished = 1;
	}
	if (!a->dmarc_started) {
		/* DMARC would need more DNS: none within the budget */
		a->dmarc_started = a->dmarc_done = 1;
		snprintf(a->dmarc_skip, sizeof(a->dmarc_skip),
			 "not evaluated: %s", why);
	}
	auth_compose(a);
	a->finished = 1;
	a->done(a->arg);
}

bool
auth_in_finished(const struct auth_in *a)
{
	return a->finished != 0;
}

const char *
auth_in_headers(const struct auth_in *a)
{
	return a->out.data ? a->out.data : "";
}

const char *
auth_in_results(const struct auth_in *a)
{
	return a->aar.data ? a->aar.data : "";
}

enum arc_result
auth_in_arc_chain(const struct auth_in *a, bool *temporary)
{
	const struct arc_verify_result *r = arc_verify_result(a->arc);

	*temporary = r->temporary;
	return r->result;
}

bool
auth_in_reject(const struct auth_in *a, const char **text)
{
	*text = a->reject_text;
	return a->reject != 0;
}
