/*
 * dmarc_agg — see dmarc_agg.h.
 */
#include "todoku/dmarc_agg.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/addr.h"
#include "mail/conf.h"
#include "mail/dmarc.h"
#include "mail/dns_answer.h"
#include "mail/dns_msg.h"
#include "todoku/proto.h"
#include "todoku/spool.h"

void
dmarc_agg_put(struct ipc_out *o, const struct dmarc_rep_row *row)
{
	ipc_put_i64(o, row->time);
	for (size_t i = 0; i < dmarc_rep_nfields; i++)
		ipc_put_str(o, (const char *)row + dmarc_rep_fields[i].off);
	ipc_put_u32(o, row->ndkim);
	for (unsigned i = 0; i < row->ndkim && i < DMARC_REP_DKIM_MAX; i++) {
		ipc_put_str(o, row->dkim[i].domain);
		ipc_put_str(o, row->dkim[i].selector);
		ipc_put_str(o, row->dkim[i].result);
	}
}

#define GETS(dst, sz) snprintf((dst), (sz), "%s", ipc_get_str(in))

int
dmarc_agg_get(struct ipc_in *in, struct dmarc_rep_row *row)
{
	uint32_t n;

	memset(row, 0, sizeof(*row));
	row->time = ipc_get_i64(in);
	for (size_t i = 0; i < dmarc_rep_nfields; i++)
		GETS((char *)row + dmarc_rep_fields[i].off,
		     dmarc_rep_fields[i].size);
	n = ipc_get_u32(in);
	for (uint32_t i = 0; i < n && !in->err; i++) {
		struct dmarc_rep_dkim extra, *d = &extra;
		if (row->ndkim < DMARC_REP_DKIM_MAX)
			d = &row->dkim[row->ndkim++];
		GETS(d->domain, sizeof(d->domain));
		GETS(d->selector, sizeof(d->selector));
		GETS(d->result, sizeof(d->result));
	}
	return in->err ? -1 : 0;
}

/* ---- the report run -------------------------------------------------- */

enum dest_state { DEST_OK, DEST_ASK, DEST_DENIED, DEST_TEMP, DEST_BAD };

struct dest {
	char addr[ADDR_PATH_MAX + 2];
	char domain[ADDR_DOMAIN_MAX + 1];
	uint64_t max_size;
	enum dest_state state;
};

struct group {
	size_t first, n; /* rows of one policy domain */
	struct dest dests[DMARC_URIS_MAX];
	size_t ndests;
};

struct dmarc_agg {
	struct dmarc_agg_env env;
	int running;
	int64_t now;
	struct dmarc_rep_row *rows;
	int64_t *ids;
	size_t nrows;
	struct group *groups;
	size_t ngroups;
	unsigned asking;     /* DNS questions out */
	unsigned committing; /* report messages being committed */
	uint64_t serial;     /* report ids */
	struct buf summary;
	dmarc_agg_done_cb *done;
	void *done_arg;
};

struct dmarc_agg *
dmarc_agg_new(const struct dmarc_agg_env *env)
{
	struct dmarc_agg *a = xcalloc(1, sizeof(*a));

	a->env = *env;
	return a;
}

static void
run_clear(struct dmarc_agg *a)
{
	xfree(a->rows);
	xfree(a->ids);
	xfree(a->groups);
	a->rows = NULL;
	a->ids = NULL;
	a->groups = NULL;
	a->nrows = a->ngroups = 0;
	buf_free(&a->summary);
	a->running = 0;
}

void
dmarc_agg_free(struct dmarc_agg *a)
{
	if (a == NULL)
		return;
	run_clear(a);
	xfree(a);
}

static void run_note(struct dmarc_agg *a, const struct group *g,
		     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One summary line (and one log line) about a group. */
static void
run_note(struct dmarc_agg *a, const struct group *g, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_info("dmarc report for %s: %s", a->rows[g->first].policy_domain,
		 line);
	buf_addf(&a->summary, "%s: %s\n", a->rows[g->first].policy_domain,
		 line);
}

static void
run_finish(struct dmarc_agg *a)
{
	if (a->asking > 0 || a->committing > 0)
		return;
	if (a->done)
		a->done(a->done_arg, &a->summary);
	run_clear(a);
}

/* Is domain inside org (equal, or a subdomain of it)? */
static bool
domain_within(const char *domain, const char *org)
{
	size_t dl = strlen(domain), ol = strlen(org);

	if (ol == 0 || dl < ol || strcasecmp(domain + dl - ol, org) != 0)
		return false;
	return dl == ol || domain[dl - ol - 1] == '.';
}

/* The rua destinations of a group, from its newest row. */
static void
group_dests(struct dmarc_agg *a, struct group *g)
{
	const struct dmarc_rep_row *row = &a->rows[g->first + g->n - 1];
	const char *s = row->rua;

	while (*s && g->ndests < DMARC_URIS_MAX) {
		struct dest *d = &g->dests[g->ndests++];
		size_t n = strcspn(s, " \n");
		struct mailaddr m;
		unsigned long long max = 0;

		if (addr_parse_mailbox(s, n, 0, &m) != ADDR_OK) {
			d->state = DEST_BAD;
			snprintf(d->addr, sizeof(d->addr), "%.*s", (int)n, s);
		} else {
			addr_format(&m, d->addr, sizeof(d->addr));
			snprintf(d->domain, sizeof(d->domain), "%s", m.domain);
			for (char *c = d->domain; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			d->state = domain_within(d->domain, row->org_domain)
				       ? DEST_OK
				       : DEST_ASK;
		}
		s += n;
		if (*s == ' ')
			sscanf(s + 1, "%llu", &max);
		d->max_size = max;
		s += strcspn(s, "\n");
		s += *s == '\n';
	}
}

/* RFC 7489 §7.1: <policy domain>._report._dmarc.<rua domain> TXT. */
static void
dest_ask(struct dmarc_agg *a, size_t gi, size_t di)
{
	struct group *g = &a->groups[gi];
	struct dest *d = &g->dests[di];
	struct ipc *lk = a->env.lookup(a->env.arg);
	char name[2 * DMARC_REP_NAME + 32];
	struct ipc_out o;

	snprintf(name, sizeof(name), "%s._report._dmarc.%s",
		 a->rows[g->first].policy_domain, d->domain);
	if (lk == NULL || strlen(name) > DMARC_NAME_MAX) {
		d->state = lk == NULL ? DEST_TEMP : DEST_DENIED;
		return;
	}
	ipc_out_init(&o);
	ipc_put_str(&o, name);
	ipc_put_u32(&o, DNS_T_TXT);
	ipc_send(lk, D_QUERY, (uint64_t)gi << 8 | di, -1, &o);
	ipc_out_free(&o);
	a->asking++;
}

static void groups_emit(struct dmarc_agg *a);

static void
on_loaded(void *arg, int err, struct dmarc_rep_row *rows, int64_t *ids,
	  size_t n)
{
	struct dmarc_agg *a = arg;

	a->rows = rows;
	a->ids = ids;
	a->nrows = n;
	buf_init(&a->summary, 1u << 20);
	if (err)
		buf_adds(&a->summary, "error: the spool could not be read\n");
	a->groups = xcalloc(n ? n : 1, sizeof(*a->groups));
	for (size_t i = 0; i < n; i++) {
		struct group *g =
		    a->ngroups ? &a->groups[a->ngroups - 1] : NULL;
		if (g == NULL || strcmp(rows[g->first].policy_domain,
					rows[i].policy_domain) != 0) {
			g = &a->groups[a->ngroups++];
			g->first = i;
		}
		g->n++;
	}
	for (size_t gi = 0; gi < a->ngroups; gi++) {
		group_dests(a, &a->groups[gi]);
		for (size_t di = 0; di < a->groups[gi].ndests; di++)
			if (a->groups[gi].dests[di].state == DEST_ASK)
				dest_ask(a, gi, di);
	}
	if (a->asking == 0)
		groups_emit(a);
}

int
dmarc_agg_run(struct dmarc_agg *a, int64_t now, dmarc_agg_done_cb *cb,
	      void *arg)
{
	if (a->running)
		return -1;
	a->running = 1;
	a->now = now;
	a->done = cb;
	a->done_arg = arg;
	spool_dmarc_load(a->env.spool, now, DMARC_AGG_ROWS_MAX, on_loaded, a);
	return 0;
}

static bool
txt_authorizes(struct ipc_in *in)
{
	int rcode = (int)ipc_get_u32(in);
	int sec = ipc_get_u8(in);
	size_t len, off[32], rlen[32], n = 32;
	const void *pkt = ipc_get_data(in, &len);
	struct buf data;
	bool ok = false;

	ipc_end(in);
	buf_init(&data, 64 * 1024);
	if (dns_answer_records(rcode, pkt, len, sec, DNS_T_TXT, &data, off,
			       rlen, &n) == DNS_ANS_RECORDS)
		for (size_t i = 0; i < n && !ok; i++)
			ok = dmarc_record_is_dmarc(data.data + off[i], rlen[i]);
	buf_free(&data);
	return ok;
}

void
dmarc_agg_answer(struct dmarc_agg *a, uint64_t id, struct ipc_in *in)
{
	size_t gi = id >> 8, di = id & 0xff;
	bool ok = txt_authorizes(in);

	if (!a->running || a->asking == 0 || gi >= a->ngroups ||
	    di >= a->groups[gi].ndests ||
	    a->groups[gi].dests[di].state != DEST_ASK)
		return; /* an answer from an earlier run */
	a->groups[gi].dests[di].state = ok ? DEST_OK : DEST_DENIED;
	if (--a->asking == 0)
		groups_emit(a);
}

void
dmarc_agg_lookup_lost(struct dmarc_agg *a)
{
	if (!a->running || a->asking == 0)
		return;
	for (size_t gi = 0; gi < a->ngroups; gi++)
		for (size_t di = 0; di < a->groups[gi].ndests; di++)
			if (a->groups[gi].dests[di].state == DEST_ASK)
				a->groups[gi].dests[di].state = DEST_TEMP;
	a->asking = 0;
	groups_emit(a);
}

/* ---- building and queueing ------------------------------------------- */

static void
on_committed(void *arg, int err, struct spool_msg *m)
{
	struct dmarc_agg *a = arg;

	if (err)
		log_err("dmarc report %s: commit failed; rows kept", m->id);
	else
		a->env.queued(a->env.arg, m);
	a->committing--;
	run_finish(a);
}

/* Queue one report message to d; the first one of a group carries the
 * deletion of the group's rows. */
static void
report_queue(struct dmarc_agg *a, struct group *g, const struct dest *d,
	     const struct buf *msg, int take_rows)
{
	const struct conf *c = a->env.conf(a->env.arg);
	struct spool_msg *m = spool_msg_new(a->env.spool, (time_t)a->now);

	m->sender = xstrdup(conf_dmarc_report_from(c));
	m->helo = xstrdup(c->hostname);
	m->client = xstrdup("dmarc-report [local]");
	spool_msg_add_rcpt(m, d->addr, d->addr, NULL, 0);
	if (spool_msg_write(a->env.spool, m, msg->data, msg->len) < 0) {
		run_note(a, g, "not sent to %s: spool write failed", d->addr);
		spool_msg_discard(a->env.spool, m);
		return;
	}
	if (take_rows) {
		m->dmarc_done = xcalloc(g->n, sizeof(*m->dmarc_done));
		memcpy(m->dmarc_done, a->ids + g->first,
		       g->n * sizeof(*m->dmarc_done));
		m->ndmarc_done = g->n;
	}
	run_note(a, g, "%zu messages reported to %s as %s", g->n, d->addr,
		 m->id);
	a->committing++;
	spool_msg_commit(a->env.spool, m, on_committed, a);
}

static void
rfc5322_date(int64_t t, char *out, size_t sz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, sz, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static const char *
dest_why(enum dest_state s)
{
	switch (s) {
	case DEST_DENIED:
		return "the destination does not accept reports for this "
		       "domain (no v=DMARC1 record at the _report._dmarc "
		       "name, RFC 7489 section 7.1)";
	case DEST_TEMP:
		return "temporary DNS failure checking the external "
		       "destination";
	case DEST_BAD:
		return "the rua address is not usable";
	default:
		return "?";
	}
}

static void
group_emit(struct dmarc_agg *a, struct group *g)
{
	const struct conf *c = a->env.conf(a->env.arg);
	const char *from = conf_dmarc_report_from(c);
	const char *at = strrchr(from, '@');
	char id[128], date[64];
	struct dmarc_rep_meta m = {0};
	struct buf xml, gz, msg;
	int sent = 0, temp = 0;

	snprintf(id, sizeof(id), "%lld.%llu.%s", (long long)a->now,
		 (unsigned long long)++a->serial, c->hostname);
	m.org_name = conf_dmarc_report_org(c);
	m.email = from;
	m.report_id = id;
	m.receiver = at ? at + 1 : c->hostname;
	m.policy_domain = a->rows[g->first].policy_domain;
	m.begin = a->rows[g->first].time;
	m.end = a->now;
	m.generator = "todoku";
	rfc5322_date(a->now, date, sizeof(date));
	buf_init(&xml, DMARC_REP_XML_MAX);
	buf_init(&gz, DMARC_REP_XML_MAX);
	if (dmarc_rep_xml(&m, a->rows + g->first, g->n, &xml) < 0 ||
	    dmarc_rep_gzip(xml.data, xml.len, &gz) < 0) {
		run_note(a, g, "report too large; %zu rows dropped", g->n);
		g->ndests = 0;
	}
	for (size_t di = 0; di < g->ndests; di++) {
		const struct dest *d = &g->dests[di];
		if (d->state != DEST_OK) {
			temp += d->state == DEST_TEMP;
			run_note(a, g, "not sent to %s: %s", d->addr,
				 dest_why(d->state));
			continue;
		}
		buf_init(&msg, DMARC_REP_MSG_MAX);
		if (dmarc_rep_message(&m, d->addr, date, c->hostname, gz.data,
				      gz.len, &msg) < 0)
			run_note(a, g, "not sent to %s: message too large",
				 d->addr);
		else if (d->max_size && msg.len > d->max_size)
			run_note(a, g,
				 "not sent to %s: %zu octets exceed its "
				 "size limit of %llu",
				 d->addr, msg.len,
				 (unsigned long long)d->max_size);
		else
			report_queue(a, g, d, &msg, sent++ == 0);
		buf_free(&msg);
	}
	if (sent == 0 && temp > 0 && m.begin < a->now - DMARC_AGG_KEEP_S) {
		run_note(a, g,
			 "rows older than %d days dropped after "
			 "temporary failures",
			 DMARC_AGG_KEEP_S / 86400);
		temp = 0;
	}
	if (sent == 0 && temp == 0) {
		int64_t *ids = xcalloc(g->n, sizeof(*ids));
		memcpy(ids, a->ids + g->first, g->n * sizeof(*ids));
		spool_dmarc_delete(a->env.spool, ids, g->n);
		run_note(a, g, "%zu rows dropped (no destination)", g->n);
	} else if (sent == 0) {
		run_note(a, g, "%zu rows kept for the next run", g->n);
	}
	buf_free(&xml);
	buf_free(&gz);
}

static void
groups_emit(struct dmarc_agg *a)
{
	if (a->nrows == 0)
		buf_adds(&a->summary, "no DMARC report rows\n");
	for (size_t gi = 0; gi < a->ngroups; gi++)
		group_emit(a, &a->groups[gi]);
	run_finish(a);
}
