/*
 * lookup — see lookup.h.
 */
#include "todoku/lookup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound-event.h>
#include <unbound.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "mail/attrec.h"
#include "mail/conf.h"
#include "mail/dns_msg.h"
#include "mail/mx.h"
#include "todoku/proto.h"
#include "todoku/role.h"

struct lk_host {
	enum mx_lookup a, aaaa;
	char detail[64];
	uint8_t v4[LOOKUP_ADDRS_PER_HOST][4];
	size_t nv4;
	uint8_t v6[LOOKUP_ADDRS_PER_HOST][16];
	size_t nv6;
};

struct lookup;

struct lk_req {
	struct lookup *lk;
	uint64_t id;
	char domain[256];
	enum mx_ip_policy pol;
	char *self[8];
	size_t nself;
	struct mx_decision dec;
	struct lk_host hosts[MX_HOSTS_MAX];
	int pending;
	int mx_done;
	int host_mode; /* smarthost: domain is the relay host, no MX */
	struct attrec_dns_set dns; /* the same, typed (mail/attrec) */
	struct attrec_dns *cur;	   /* the answer being handled */
	struct lk_req *next;
};

struct lk_query {
	struct lk_req *req;
	int host; /* -1: the MX query */
	int type;
};

/* A role that asks us (queue: routes and queries; smtp-in: queries). */
struct lk_peer {
	struct lookup *lk;
	struct ipc *ipc; /* NULL once closed */
	int refs;	 /* queries in flight + 1 while connected */
	struct lk_peer *next;
};

/* Our own addresses: an MX host with one of them is us (RFC 5321 §5.1). */
struct lk_self {
	uint8_t v4[LOOKUP_SELF_MAX][4];
	size_t nv4;
	uint8_t v6[LOOKUP_SELF_MAX][16];
	size_t nv6;
};

struct lookup {
	struct role_env *env;
	struct lk_self self;
	struct ub_ctx *ub;
	struct ipc *master;
	struct ipc *queue;
	struct lk_peer *peers;
	struct lk_req *reqs;
	size_t nreqs;
	int validate; /* [dns] dnssec = validate: record secure/insecure */
};

static void lk_finish(struct lk_req *r);

/* ---- libunbound ------------------------------------------------------- */

/* A numeric option; libunbound refusing a value conf accepted is a bug. */
static void
lk_option(struct ub_ctx *ub, const char *opt, char *num, size_t len, uint64_t v)
{
	int rc;

	snprintf(num, len, "%llu", (unsigned long long)v);
	rc = ub_ctx_set_option(ub, opt, num);
	if (rc != 0)
		log_fatal("libunbound: %s %s: %s", opt, num, ub_strerror(rc));
}

/* resolver = forward: [dns] servers, or /etc/resolv.conf. */
static int
lk_forward(struct ub_ctx *ub, const struct conf *c)
{
	char fwd[128];
	int rc = 0;

	for (size_t i = 0; i < c->ndns_servers && rc == 0; i++) {
		/* "IP:PORT" / "[IPv6]:PORT" -> unbound's "IP@PORT" */
		const char *s = c->dns_servers[i];
		const char *colon = strrchr(s, ':');
		if (s[0] == '[') {
			const char *end = strchr(s, ']');
			snprintf(fwd, sizeof(fwd), "%.*s%s%s",
				 end ? (int)(end - s - 1) : 0, s + 1,
				 end && end[1] == ':' ? "@" : "",
				 end && end[1] == ':' ? end + 2 : "");
		} else if (colon && strchr(s, ':') == colon) {
			snprintf(fwd, sizeof(fwd), "%.*s@%s", (int)(colon - s),
				 s, colon + 1);
		} else {
			snprintf(fwd, sizeof(fwd), "%s", s);
		}
		rc = ub_ctx_set_fwd(ub, fwd);
	}
	if (c->ndns_servers == 0)
		rc = ub_ctx_resolvconf(ub, NULL);
	return rc;
}

/* resolver = recursive: libunbound iterates from the root itself. A
 * root-hints file names a private root (tests, isolated networks): its
 * servers may then be loopback addresses, which libunbound otherwise
 * refuses to query. */
static int
lk_recursive(struct ub_ctx *ub, const struct conf *c)
{
	int rc = 0;

	if (c->dns_root_hints != NULL) {
		rc = ub_ctx_set_option(ub, "root-hints:", c->dns_root_hints);
		if (rc == 0)
			rc = ub_ctx_set_option(ub,
					       "do-not-query-localhost:", "no");
	}
	return rc;
}

static struct ub_ctx *
lk_context(struct lookup *lk)
{
	const struct conf *c = lk->env->conf;
	struct ub_ctx *ub = ub_ctx_create_event(lk->env->base);
	char num[32];
	int rc;

	if (ub == NULL)
		log_fatal("libunbound: cannot create a context");
	/* library defaults are tiny (DESIGN §7): [dns] sets them */
	lk_option(ub, "outgoing-range:", num, sizeof(num),
		  c->dns_outgoing_range);
	lk_option(ub, "outgoing-num-tcp:", num, sizeof(num),
		  c->dns_outgoing_num_tcp);
	lk_option(ub, "msg-cache-size:", num, sizeof(num),
		  c->dns_msg_cache_size);
	lk_option(ub, "rrset-cache-size:", num, sizeof(num),
		  c->dns_rrset_cache_size);
	ub_ctx_set_option(ub, "do-ip6:", "yes");
	/* libunbound answers the special-use "test." (RFC 6761) locally with
	 * NXDOMAIN; let it through so test zones served by [dns] servers
	 * resolve (elsewhere the root answers NXDOMAIN just the same) */
	ub_ctx_set_option(ub, "local-zone:", "test. transparent");
	if (c->dns_resolver == CONF_RESOLVER_RECURSIVE)
		rc = lk_recursive(ub, c);
	else
		rc = lk_forward(ub, c);
	if (rc == 0 && c->dns_dnssec == CONF_DNSSEC_VALIDATE)
		rc = ub_ctx_add_ta_file(ub, c->dns_trust_anchor);
	lk->validate = c->dns_dnssec == CONF_DNSSEC_VALIDATE;
	if (rc != 0)
		log_fatal("libunbound: %s", ub_strerror(rc));
	return ub;
}

/* Outcome of one query as mx.h sees it. */
static enum mx_lookup
lk_outcome(int err, const struct dns_msg *m, int parsed, int sec, char *detail,
	   size_t len)
{
	if (sec == 1) {
		snprintf(detail, len, "DNSSEC bogus");
		return MX_L_BOGUS;
	}
	if (err == DNS_R_NXDOMAIN || (parsed && m->rcode == DNS_R_NXDOMAIN))
		return MX_L_NXDOMAIN;
	if (err != 0 || !parsed || m->rcode != DNS_R_NOERROR) {
		snprintf(detail, len, "%s",
			 err	  ? dns_rcode_name((unsigned)err)
			 : parsed ? dns_rcode_name(m->rcode)
				  : "malformed answer");
		return MX_L_TEMPFAIL;
	}
	return MX_L_ANSWER; /* refined to NODATA by the caller */
}

static void lk_query(struct lk_req *r, const char *name, int type, int host);

/* Returns the outcome refined (an answer without records is NODATA). */
static enum mx_lookup
lk_on_mx(struct lk_req *r, enum mx_lookup out, const struct dns_msg *m,
	 const char *detail)
{
	struct mx_record recs[MX_RECORDS_MAX];
	char names[32][MX_NAME_SIZE];
	struct dns_chain ch;
	struct mx_query q = {0};
	size_t n = 0;

	if (out == MX_L_ANSWER && dns_msg_chain(m, DNS_T_MX, &ch) == DNS_OK) {
		for (uint16_t i = 0; i < ch.n && n < 32; i++) {
			const struct dns_rr *rr =
			    &m->rr[DNS_SEC_ANSWER][ch.idx[i]];
			dns_name_text(m, rr->rd.mx.exchange, names[n],
				      sizeof(names[n]));
			recs[n].preference = rr->rd.mx.preference;
			recs[n].exchange = names[n];
			recs[n].cname = false;
			attrec_dns_rr(&r->dns, r->cur, rr->ttl,
				      rr->rd.mx.preference, names[n]);
			n++;
		}
		if (n == 0)
			out = MX_L_NODATA;
	}
	q.domain = r->domain;
	q.lookup = out;
	q.detail = detail[0] ? detail : NULL;
	q.records = recs;
	q.nrecords = n;
	q.self = (const char *const *)r->self;
	q.nself = r->nself;
	q.seed = (uint64_t)random() << 32 ^ (uint64_t)random();
	mx_decide(&q, &r->dec);
	r->mx_done = 1;
	r->dns.implicit =
	    !r->host_mode && r->dec.nhosts > 0 && r->dec.hosts[0].implicit;
	if (r->dec.action != MX_DELIVER)
		return out;
	for (uint16_t i = 0; i < r->dec.nhosts; i++) {
		r->hosts[i].a = r->hosts[i].aaaa = MX_L_TEMPFAIL;
		if (r->pol != MX_IP_V6_ONLY)
			lk_query(r, r->dec.hosts[i].name, DNS_T_A, i);
		if (r->pol != MX_IP_V4_ONLY)
			lk_query(r, r->dec.hosts[i].name, DNS_T_AAAA, i);
	}
	return out;
}

static enum mx_lookup
lk_on_addr(struct lk_req *r, int hi, int type, enum mx_lookup out,
	   const struct dns_msg *m, const char *detail)
{
	struct lk_host *h = &r->hosts[hi];
	struct dns_chain ch;
	size_t got = 0;

	if (out == MX_L_ANSWER &&
	    dns_msg_chain(m, (uint16_t)type, &ch) == DNS_OK) {
		for (uint16_t i = 0; i < ch.n; i++) {
			const struct dns_rr *rr =
			    &m->rr[DNS_SEC_ANSWER][ch.idx[i]];
			char txt[64];
			if (type == DNS_T_A && h->nv4 < LOOKUP_ADDRS_PER_HOST) {
				memcpy(h->v4[h->nv4++], rr->rd.a, 4);
				inet_ntop(AF_INET, rr->rd.a, txt, sizeof(txt));
			} else if (type == DNS_T_AAAA &&
				   h->nv6 < LOOKUP_ADDRS_PER_HOST) {
				memcpy(h->v6[h->nv6++], rr->rd.aaaa, 16);
				inet_ntop(AF_INET6, rr->rd.aaaa, txt,
					  sizeof(txt));
			} else {
				continue;
			}
			attrec_dns_rr(&r->dns, r->cur, rr->ttl, -1, txt);
			got++;
		}
		if (got == 0)
			out = MX_L_NODATA;
	}
	if (type == DNS_T_A)
		h->a = out;
	else
		h->aaaa = out;
	if (detail[0])
		snprintf(h->detail, sizeof(h->detail), "%s", detail);
	return out;
}

/* The record's name of an outcome (docs/attempt-record.md). */
static const char *
lk_result_name(enum mx_lookup out)
{
	switch (out) {
	case MX_L_ANSWER:
		return "answer";
	case MX_L_NODATA:
		return "nodata";
	case MX_L_NXDOMAIN:
		return "nxdomain";
	case MX_L_BOGUS:
		return "bogus";
	case MX_L_TEMPFAIL:
		break;
	}
	return "tempfail";
}

/* Start the record's entry for one answer: what libunbound reported. */
static struct attrec_dns *
lk_record_answer(struct lk_req *r, const struct lk_query *qq, int err,
		 const struct dns_msg *m, int parsed, int sec, const char *why)
{
	const char *name =
	    qq->host < 0 ? r->domain : r->dec.hosts[qq->host].name;
	const char *rcode = err < 0   ? ub_strerror(err)
			    : err > 0 ? dns_rcode_name((unsigned)err)
			    : parsed  ? dns_rcode_name(m->rcode)
				      : "malformed answer";
	int dnssec = !r->lk->validate ? ATTREC_SEC_UNCHECKED
		     : sec == 2	      ? ATTREC_SEC_SECURE
		     : sec == 1	      ? ATTREC_SEC_BOGUS
				      : ATTREC_SEC_INSECURE;
	char text[201] = "";

	/* the validator's reason: libunbound writes names in presentation
	 * form (\032 for a space); readable for people, other escapes kept */
	if (sec == 1 && why != NULL)
		dns_text_readable(text, sizeof(text), why, strlen(why));
	return attrec_dns_add(&r->dns, name, dns_type_name((uint16_t)qq->type),
			      "", rcode, dnssec, text[0] ? text : NULL);
}

static void
lk_callback(void *arg, int err, void *pkt, int len, int sec, char *why,
	    int ratelimited)
{
	struct lk_query *qq = arg;
	struct lk_req *r = qq->req;
	struct dns_msg *m = xmalloc(sizeof(*m));
	char detail[64] = "";
	int parsed = 0;
	enum mx_lookup out;
	struct attrec_dns *cur;

	if (err == 0 && pkt != NULL)
		parsed = dns_msg_parse(pkt, (size_t)len, m) == DNS_OK;
	out = lk_outcome(err, m, parsed, sec, detail, sizeof(detail));
	/* a local: handling an MX answer starts the address queries,
	 * whose answers may come back (and set r->cur) right away */
	cur = lk_record_answer(r, qq, err, m, parsed, sec, why);
	r->cur = cur;
	if (qq->host < 0)
		out = lk_on_mx(r, out, m, detail);
	else
		out = lk_on_addr(r, qq->host, qq->type, out, m, detail);
	attrec_dns_result(cur, lk_result_name(out));
	r->cur = NULL;
	xfree(m);
	xfree(qq);
	if (--r->pending == 0)
		lk_finish(r);
}

static void
lk_query(struct lk_req *r, const char *name, int type, int host)
{
	struct lk_query *qq = xcalloc(1, sizeof(*qq));
	int id, rc;

	qq->req = r;
	qq->host = host;
	qq->type = type;
	r->pending++;
	rc = ub_resolve_event(r->lk->ub, name, type, DNS_C_IN, qq, lk_callback,
			      &id);
	if (rc != 0) {
		log_warn("libunbound: %s %s: %s", name, dns_type_name(type),
			 ub_strerror(rc));
		/* report as a temporary failure through the normal path */
		lk_callback(qq, DNS_R_SERVFAIL, NULL, 0, 0, NULL, 0);
	}
}

/* ---- our own addresses ------------------------------------------------ */

static void
lk_self_add(struct lk_self *s, const struct sockaddr *sa)
{
	const uint8_t *a;
	size_t i;

	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)
			->sin_addr;
		for (i = 0; i < s->nv4; i++)
			if (memcmp(s->v4[i], a, 4) == 0)
				return;
		if (s->nv4 < LOOKUP_SELF_MAX)
			memcpy(s->v4[s->nv4++], a, 4);
		return;
	}
	if (sa->sa_family != AF_INET6)
		return;
	a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
		struct sockaddr_in v4 = {.sin_family = AF_INET};
		memcpy(&v4.sin_addr, a + 12, 4);
		lk_self_add(s, (const struct sockaddr *)&v4);
		return;
	}
	for (i = 0; i < s->nv6; i++)
		if (memcmp(s->v6[i], a, 16) == 0)
			return;
	if (s->nv6 < LOOKUP_SELF_MAX)
		memcpy(s->v6[s->nv6++], a, 16);
}

/* 0.0.0.0 or :: : the listener takes every address of the host. */
static int
lk_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
		       htonl(INADDR_ANY);
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(
		    &((const struct sockaddr_in6 *)ss)->sin6_addr);
	return 0;
}

/*
 * Our addresses from [listen]; a wildcard listener adds every interface
 * address (getifaddrs), both families (a [::] socket takes IPv4 too).
 * Run at start and at reload: interfaces added later count from the
 * next reload.
 */
static void
lk_self_load(struct lookup *lk)
{
	const struct conf *c = lk->env->conf;
	struct ifaddrs *ifa = NULL, *i;
	int wild = 0;

	memset(&lk->self, 0, sizeof(lk->self));
	for (size_t k = 0; k < c->nlistens; k++) {
		if (lk_wildcard(&c->listens[k].ss))
			wild = 1;
		else
			lk_self_add(&lk->self,
				    (const struct sockaddr *)&c->listens[k].ss);
	}
	if (wild && getifaddrs(&ifa) < 0)
		log_warn("lookup: getifaddrs: %s: an MX host that is this "
			 "host by an interface address is not recognised",
			 strerror(errno));
	for (i = ifa; i != NULL; i = i->ifa_next)
		if (i->ifa_addr != NULL)
			lk_self_add(&lk->self, i->ifa_addr);
	if (ifa != NULL)
		freeifaddrs(ifa);
	log_debug("lookup: %zu IPv4 and %zu IPv6 addresses of our own",
		  lk->self.nv4, lk->self.nv6);
}

/* ---- requests --------------------------------------------------------- */

static void
lk_req_free(struct lookup *lk, struct lk_req *r)
{
	for (struct lk_req **pp = &lk->reqs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	lk->nreqs--;
	for (size_t i = 0; i < r->nself; i++)
		xfree(r->self[i]);
	attrec_dns_free(&r->dns);
	xfree(r);
}

static void
lk_send_result(struct lk_req *r, const struct mx_plan *p)
{
	struct ipc_out o;
	char warning[2 * MX_EXPLAIN_SIZE + 8];

	ipc_out_init(&o);
	ipc_put_u8(&o, (uint8_t)p->action);
	ipc_put_str(&o, p->status ? p->status : "");
	ipc_put_str(&o, p->explain);
	snprintf(warning, sizeof(warning), "%s%s%s", r->dec.warning,
		 r->dec.warning[0] && p->warning[0] ? "; " : "", p->warning);
	ipc_put_str(&o, warning);
	ipc_put_u32(&o, (uint32_t)p->n);
	for (size_t i = 0; i < p->n; i++) {
		const struct mx_target *t = &p->t[i];
		ipc_put_u8(&o, (uint8_t)t->family);
		ipc_put_data(&o, t->addr, 16);
		ipc_put_str(&o, r->dec.hosts[t->host].name);
		ipc_put_u32(&o, r->dec.hosts[t->host].preference);
	}
	attrec_put_dns(&o, &r->dns);
	if (r->lk->queue)
		ipc_send(r->lk->queue, R_ROUTE_RESULT, r->id, -1, &o);
	ipc_out_free(&o);
}

static void
lk_finish(struct lk_req *r)
{
	struct mx_addrs per[MX_HOSTS_MAX];
	struct mx_plan *p = xmalloc(sizeof(*p));
	const struct lk_self *me = &r->lk->self;
	struct mx_self_addrs self = {(const uint8_t(*)[4])me->v4, me->nv4,
				     (const uint8_t(*)[16])me->v6, me->nv6};

	memset(per, 0, sizeof(per));
	for (uint16_t i = 0; i < r->dec.nhosts; i++) {
		per[i].a = r->hosts[i].a;
		per[i].aaaa = r->hosts[i].aaaa;
		per[i].detail =
		    r->hosts[i].detail[0] ? r->hosts[i].detail : NULL;
		per[i].v4 = (const uint8_t(*)[4])r->hosts[i].v4;
		per[i].nv4 = r->hosts[i].nv4;
		per[i].v6 = (const uint8_t(*)[16])r->hosts[i].v6;
		per[i].nv6 = r->hosts[i].nv6;
	}
	/* every address, up to MX_ADDR_MAX: smtp-out applies max-addresses
	 * to its final order (IPv6 health, dead addresses last) */
	/* a smarthost may be ours by address (a content filter on another
	 * port of this host): only its name is checked, like Postfix */
	mx_plan_addresses_self(&r->dec, per, r->host_mode ? NULL : &self,
			       r->pol, MX_ADDR_MAX, p);
	if (r->dec.warning[0])
		log_warn("route %s: %s", r->domain, r->dec.warning);
	if (p->warning[0])
		log_warn("route %s: %s", r->domain, p->warning);
	log_info("route %s: %s", r->domain, p->explain);
	lk_send_result(r, p);
	xfree(p);
	lk_req_free(r->lk, r);
}

/*
 * A smarthost ([route] via): no MX lookup; the relay host is the only
 * "MX" (the implicit-MX path of mx_decide, which also catches a relay
 * that is ourselves). An IP address needs no lookup at all.
 */
static void
lk_start_host(struct lk_req *r)
{
	uint8_t a[16];
	int v6 = inet_pton(AF_INET6, r->domain, a) == 1;

	if (v6 || inet_pton(AF_INET, r->domain, a) == 1) {
		memset(&r->dec, 0, sizeof(r->dec));
		r->dec.action = MX_DELIVER;
		r->dec.nhosts = 1;
		snprintf(r->dec.hosts[0].name, sizeof(r->dec.hosts[0].name),
			 "%s", r->domain);
		r->hosts[0].a = v6 ? MX_L_NODATA : MX_L_ANSWER;
		r->hosts[0].aaaa = v6 ? MX_L_ANSWER : MX_L_NODATA;
		if (v6)
			memcpy(r->hosts[0].v6[r->hosts[0].nv6++], a, 16);
		else
			memcpy(r->hosts[0].v4[r->hosts[0].nv4++], a, 4);
		r->mx_done = 1;
		return;
	}
	lk_on_mx(r, MX_L_NODATA, NULL, "");
}

static void
lk_on_route(struct lookup *lk, const struct ipc_hdr *h, struct ipc_in *in)
{
	struct lk_req *r = xcalloc(1, sizeof(*r));
	uint32_t nself;

	r->lk = lk;
	r->id = h->id;
	snprintf(r->domain, sizeof(r->domain), "%s", ipc_get_str(in));
	r->host_mode = ipc_get_u8(in);
	r->pol = (enum mx_ip_policy)ipc_get_u8(in);
	nself = ipc_get_u32(in);
	for (uint32_t i = 0; i < nself && !in->err; i++) {
		const char *s = ipc_get_str(in);
		if (r->nself < 8)
			r->self[r->nself++] = xstrdup(s);
	}
	ipc_end(in);
	r->next = lk->reqs;
	lk->reqs = r;
	lk->nreqs++;
	r->pending = 1; /* held until the first query is submitted */
	if (r->host_mode)
		lk_start_host(r);
	else
		lk_query(r, r->domain, DNS_T_MX, -1);
	if (--r->pending == 0)
		lk_finish(r);
}

/* ---- channels ----------------------------------------------------------- */

/* ---- raw DNS queries for the authentication checks (D_QUERY) -------- */

struct lk_raw {
	struct lk_peer *peer;
	uint64_t id;
};

static void
lk_peer_put(struct lk_peer *p)
{
	if (--p->refs > 0)
		return;
	for (struct lk_peer **pp = &p->lk->peers; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	xfree(p);
}

static void
lk_raw_cb(void *arg, int err, void *pkt, int len, int sec, char *why,
	  int ratelimited)
{
	struct lk_raw *q = arg;
	struct ipc_out o;

	if (q->peer->ipc != NULL) {
		ipc_out_init(&o);
		ipc_put_u32(&o, (uint32_t)err);
		ipc_put_u8(&o, (uint8_t)sec);
		ipc_put_data(&o, err == 0 && pkt ? pkt : "",
			     err == 0 && pkt && len > 0 ? (size_t)len : 0);
		ipc_send(q->peer->ipc, D_ANSWER, q->id, -1, &o);
		ipc_out_free(&o);
	}
	lk_peer_put(q->peer);
	xfree(q);
}

static void
lk_on_query(struct lk_peer *p, const struct ipc_hdr *h, struct ipc_in *in)
{
	char name[DNS_NAME_TEXT_MAX + 1];
	uint32_t type;
	struct lk_raw *q;
	int id, rc;

	snprintf(name, sizeof(name), "%s", ipc_get_str(in));
	type = ipc_get_u32(in);
	ipc_end(in);
	q = xcalloc(1, sizeof(*q));
	q->peer = p;
	q->id = h->id;
	p->refs++;
	rc = ub_resolve_event(p->lk->ub, name, (int)type, DNS_C_IN, q,
			      lk_raw_cb, &id);
	if (rc != 0)
		lk_raw_cb(q, DNS_R_SERVFAIL, NULL, 0, 0, NULL, 0);
}

/* ---- channels ----------------------------------------------------------- */

static void
lk_peer_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in, int fd,
	    void *arg)
{
	struct lk_peer *p = arg;

	if (fd >= 0)
		close(fd);
	if (h->type == R_ROUTE && p->lk->queue == ipc)
		lk_on_route(p->lk, h, in);
	else if (h->type == D_QUERY)
		lk_on_query(p, h, in);
	else
		log_panic("lookup: unexpected message %u", h->type);
}

static void
lk_peer_close(struct ipc *ipc, void *arg)
{
	struct lk_peer *p = arg;

	/* answers still in flight are dropped when they arrive */
	if (p->lk->queue == ipc)
		p->lk->queue = NULL;
	ipc_free(p->ipc);
	p->ipc = NULL;
	lk_peer_put(p);
}

static void
lk_add_peer(struct lookup *lk, int fd, enum role_id role)
{
	struct lk_peer *p = xcalloc(1, sizeof(*p));

	p->lk = lk;
	p->refs = 1;
	p->ipc = ipc_new(lk->env->base, fd, lk_peer_msg, lk_peer_close, p);
	p->next = lk->peers;
	lk->peers = p;
	if (role == ROLE_QUEUE)
		lk->queue = p->ipc;
}

static void
lk_master_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
	      int fd, void *arg)
{
	struct lookup *lk = arg;

	switch (h->type) {
	case M_PEER: {
		enum role_id r = (enum role_id)ipc_get_u8(in);
		ipc_get_u32(in);
		ipc_end(in);
		lk_add_peer(lk, fd, r);
		return;
	}
	case M_RELOAD: {
		struct conf *nc = role_reload_conf(lk->env, in);
		if (nc != NULL) {
			conf_free(lk->env->conf);
			lk->env->conf = nc;
			log_set_level(nc->log_level);
			lk_self_load(lk);
			/* a new context for new [dns] servers; the old one
			 * stays until its queries are done (leaked: rare) */
			lk->ub = lk_context(lk);
		}
		break;
	}
	case M_SHUTDOWN:
		ipc_end(in);
		exit(0);
	default:
		log_panic("lookup: unexpected master message %u", h->type);
	}
	if (fd >= 0)
		close(fd);
}

static void
lk_master_close(struct ipc *ipc, void *arg)
{
	exit(0);
}

int
lookup_main(struct role_env *env)
{
	static struct lookup lk;

	lk.env = env;
	srandom((unsigned)(clock_mono_ms() ^ (uint64_t)getpid()));
	lk.ub = lk_context(&lk);
	lk_self_load(&lk);
	lk.master = ipc_new(env->base, ROLE_MASTER_FD, lk_master_msg,
			    lk_master_close, &lk);
	event_base_dispatch(env->base);
	return 0;
}
