/* mx — the MX decision; contract in mx.h. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "mail/mx.h"

struct ent {
	uint16_t pref;
	bool cname;
	const char *name;
	size_t len; /* without a trailing dot */
};

/* splitmix64: a small, well-mixed generator; tests fix the seed. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Printable ASCII copy of s (at most n octets, stops at NUL); other
 * octets and backslash become \DDD. Always NUL-terminates. */
static void
safe_copy(char *dst, size_t size, const char *s, size_t n)
{
	size_t i, o = 0;
	unsigned char c;

	for (i = 0; i < n && s[i] != '\0'; i++) {
		c = (unsigned char)s[i];
		if (c > 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= size)
				break;
			dst[o++] = (char)c;
			continue;
		}
		if (o + 4 >= size)
			break;
		dst[o++] = '\\';
		dst[o++] = (char)('0' + c / 100);
		dst[o++] = (char)('0' + c / 10 % 10);
		dst[o++] = (char)('0' + c % 10);
	}
	if (size > 0)
		dst[o] = '\0';
}

static void
safe_name(char *dst, size_t size, const char *s)
{
	safe_copy(dst, size, s != NULL ? s : "", DNS_NAME_TEXT_MAX);
}

static size_t
name_len(const char *s)
{
	size_t n = strnlen(s, MX_NAME_SIZE);

	if (n > 1 && n < MX_NAME_SIZE && s[n - 1] == '.')
		n--;
	return n;
}

static bool
is_null_mx(const char *s)
{
	return s[0] == '\0' || (s[0] == '.' && s[1] == '\0');
}

static bool
name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;
	char x, y;

	if (alen != blen)
		return false;
	for (i = 0; i < alen; i++) {
		x = a[i];
		y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (char)(y + 32);
		if (x != y)
			return false;
	}
	return true;
}

static bool
is_self(const struct mx_query *q, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < q->nself; i++)
		if (q->self[i] != NULL &&
		    name_eq(name, len, q->self[i], name_len(q->self[i])))
			return true;
	return false;
}

static bool
is_ip_literal(const char *name, size_t len)
{
	char tmp[64];
	unsigned char bin[16];

	if (len >= 2 && name[0] == '[' && name[len - 1] == ']') {
		name++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, name, len);
	tmp[len] = '\0';
	if (strncmp(tmp, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, tmp + 5, bin) == 1;
	return inet_pton(AF_INET, tmp, bin) == 1 ||
	       inet_pton(AF_INET6, tmp, bin) == 1;
}

static void
warn(struct mx_decision *d, unsigned flag, const char *text)
{
	size_t n;

	if (d->warnings & flag)
		return;
	d->warnings |= flag;
	n = strlen(d->warning);
	snprintf(d->warning + n, sizeof(d->warning) - n, "%s%s",
		 n > 0 ? "; " : "", text);
}

static void
finish(struct mx_decision *d, enum mx_action a, const char *status)
{
	d->action = a;
	d->status = status;
	if (a != MX_DELIVER)
		d->nhosts = 0;
}

static void
sort_and_shuffle(struct ent *e, size_t n, uint64_t seed)
{
	struct ent t;
	size_t i, j, k, run;

	for (i = 1; i < n; i++) /* stable insertion sort */
		for (j = i; j > 0 && e[j - 1].pref > e[j].pref; j--) {
			t = e[j];
			e[j] = e[j - 1];
			e[j - 1] = t;
		}
	for (i = 0; i < n; i = run) {
		for (run = i + 1; run < n && e[run].pref == e[i].pref; run++)
			;
		for (k = run - 1; k > i; k--) { /* Fisher-Yates */
			j = i + (size_t)(rng_next(&seed) % (k - i + 1));
			t = e[k];
			e[k] = e[j];
			e[j] = t;
		}
	}
}

/* Records into e[], dropping null MX entries and bad names. */
static size_t
gather(const struct mx_query *q, struct ent *e, struct mx_decision *d,
       size_t *nnull)
{
	const struct mx_record *r;
	size_t i, n = 0, lim = q->nrecords;

	if (lim > MX_RECORDS_MAX) {
		lim = MX_RECORDS_MAX;
		warn(d, MX_W_TOO_MANY, "more MX records than can be used");
	}
	*nnull = 0;
	for (i = 0; i < lim; i++) {
		r = &q->records[i];
		if (r->exchange == NULL || is_null_mx(r->exchange)) {
			if (r->preference != 0)
				warn(d, MX_W_NULL_PREF,
				     "MX \".\" with a preference other than 0");
			(*nnull)++;
			continue;
		}
		e[n].len = name_len(r->exchange);
		if (e[n].len > DNS_NAME_TEXT_MAX) {
			warn(d, MX_W_BAD_NAME, "MX exchange too long");
			continue;
		}
		e[n].pref = r->preference;
		e[n].cname = r->cname;
		e[n].name = r->exchange;
		n++;
	}
	return n;
}

/* Keep the first (best) entry of each name. */
static size_t
dedupe(struct ent *e, size_t n)
{
	size_t i, j, o = 0;

	for (i = 0; i < n; i++) {
		for (j = 0; j < o; j++)
			if (name_eq(e[j].name, e[j].len, e[i].name, e[i].len))
				break;
		if (j == o)
			e[o++] = e[i];
	}
	return o;
}

/* Drop our own preference and worse; returns the new count. */
static size_t
drop_self(const struct mx_query *q, struct ent *e, size_t n, bool *found,
	  uint16_t *ours)
{
	size_t i, o = 0;

	*found = false;
	for (i = 0; i < n; i++)
		if (is_self(q, e[i].name, e[i].len) &&
		    (!*found || e[i].pref < *ours)) {
			*found = true;
			*ours = e[i].pref;
		}
	if (!*found)
		return n;
	for (i = 0; i < n; i++)
		if (e[i].pref < *ours)
			e[o++] = e[i];
	return o;
}

static void
add_host(struct mx_decision *d, const char *name, size_t len, uint16_t pref,
	 bool cname, bool implicit)
{
	struct mx_host *h = &d->hosts[d->nhosts++];

	h->preference = pref;
	h->cname = cname;
	h->implicit = implicit;
	memcpy(h->name, name, len);
	h->name[len] = '\0';
	h->ip_literal = is_ip_literal(name, len);
	if (h->ip_literal)
		warn(d, MX_W_IP_LITERAL,
		     "an MX exchange is an IP address, not a host name "
		     "(RFC 5321 section 5.1); looked up as a name");
	if (cname)
		warn(d, MX_W_CNAME,
		     "an MX exchange is a CNAME (RFC 5321 section 5.1); "
		     "followed");
}

static void
deliver_text(struct mx_decision *d, const char *dom)
{
	char first[128];

	safe_name(first, sizeof(first), d->hosts[0].name);
	snprintf(d->explain, sizeof(d->explain),
		 "%s: %u MX host%s, first %s (preference %u)", dom,
		 (unsigned)d->nhosts, d->nhosts == 1 ? "" : "s", first,
		 (unsigned)d->hosts[0].preference);
}

static void
self_loop(struct mx_decision *d, const char *dom, uint16_t ours)
{
	snprintf(d->explain, sizeof(d->explain),
		 "MX for %s points to this host at preference %u and no more "
		 "preferred MX exists: mail loop or misconfiguration",
		 dom, (unsigned)ours);
	finish(d, MX_BOUNCE, "5.4.6");
}

static void
decide_answer(const struct mx_query *q, struct mx_decision *d, const char *dom)
{
	struct ent w[MX_RECORDS_MAX];
	size_t n, nnull, i;
	uint16_t ours = 0;
	bool self;

	n = gather(q, w, d, &nnull);
	if (n == 0 && nnull > 0) {
		snprintf(d->explain, sizeof(d->explain),
			 "%s does not accept mail (null MX, RFC 7505)", dom);
		finish(d, MX_BOUNCE, "5.1.10");
		return;
	}
	if (nnull > 0)
		warn(d, MX_W_NULL_MIXED,
		     "null MX published beside other MX records (RFC 7505 "
		     "section 3 forbids it); null MX ignored");
	if (n == 0) {
		snprintf(d->explain, sizeof(d->explain),
			 "MX answer for %s held no usable record; will retry",
			 dom);
		finish(d, MX_DEFER, "4.4.3");
		return;
	}
	sort_and_shuffle(w, n, q->seed);
	n = dedupe(w, n);
	n = drop_self(q, w, n, &self, &ours);
	if (self && n == 0) {
		self_loop(d, dom, ours);
		return;
	}
	if (self)
		warn(d, MX_W_SELF,
		     "this host is an MX of the domain; only "
		     "more preferred MX hosts are used");
	if (n > MX_HOSTS_MAX) {
		n = MX_HOSTS_MAX;
		warn(d, MX_W_TOO_MANY, "more MX hosts than can be used");
	}
	for (i = 0; i < n; i++)
		add_host(d, w[i].name, w[i].len, w[i].pref, w[i].cname, false);
	deliver_text(d, dom);
	finish(d, MX_DELIVER, NULL);
}

static void
decide_nodata(const struct mx_query *q, struct mx_decision *d, const char *dom)
{
	const char *name = q->domain != NULL ? q->domain : "";
	size_t len = name_len(name);

	if (len == 0 || len > DNS_NAME_TEXT_MAX) {
		snprintf(d->explain, sizeof(d->explain),
			 "no usable domain name to deliver to");
		finish(d, MX_BOUNCE, "5.1.2");
		return;
	}
	if (is_self(q, name, len)) {
		self_loop(d, dom, 0);
		return;
	}
	add_host(d, name, len, 0, false, true);
	snprintf(d->explain, sizeof(d->explain),
		 "%s has no MX records (NODATA); delivering to the domain "
		 "itself as implicit MX (RFC 5321 section 5.1)",
		 dom);
	finish(d, MX_DELIVER, NULL);
}

static void
decide_fail(const struct mx_query *q, struct mx_decision *d, const char *dom)
{
	char detail[64];

	dns_text_readable(detail, sizeof(detail),
			  q->detail != NULL	    ? q->detail
			  : q->lookup == MX_L_BOGUS ? "DNSSEC validation failed"
						    : "temporary DNS failure",
			  sizeof(detail));
	snprintf(d->explain, sizeof(d->explain),
		 "MX lookup for %s failed temporarily (%s); not falling back "
		 "to the A record (RFC 5321 section 5.1); will retry",
		 dom, detail);
	finish(d, MX_DEFER, "4.4.3");
}

void
mx_decide(const struct mx_query *q, struct mx_decision *d)
{
	char dom[300];

	memset(d, 0, sizeof(*d));
	safe_name(dom, sizeof(dom), q->domain);
	switch (q->lookup) {
	case MX_L_ANSWER:
		decide_answer(q, d, dom);
		return;
	case MX_L_NODATA:
		decide_nodata(q, d, dom);
		return;
	case MX_L_NXDOMAIN:
		snprintf(d->explain, sizeof(d->explain),
			 "domain %s does not exist (NXDOMAIN)", dom);
		finish(d, MX_BOUNCE, "5.1.2");
		return;
	case MX_L_TEMPFAIL:
	case MX_L_BOGUS:
	default:
		decide_fail(q, d, dom);
		return;
	}
}

struct plan_ctx {
	struct mx_plan *out;
	size_t max;
	uint16_t host;
};

static bool
same_target(const struct mx_target *t, int family, const uint8_t *addr)
{
	return t->family == family &&
	       memcmp(t->addr, addr, family == 4 ? 4 : 16) == 0;
}

static void
add_target(struct plan_ctx *c, int family, const uint8_t *addr)
{
	struct mx_plan *o = c->out;
	struct mx_target *t;
	size_t i;

	if (o->n >= c->max)
		return;
	for (i = 0; i < o->n; i++)
		if (same_target(&o->t[i], family, addr))
			return;
	t = &o->t[o->n++];
	memset(t, 0, sizeof(*t));
	t->family = family;
	memcpy(t->addr, addr, family == 4 ? 4 : 16);
	t->host = c->host;
}

static bool
v4_allowed(enum mx_ip_policy pol)
{
	return pol != MX_IP_V6_ONLY;
}

static bool
v6_allowed(enum mx_ip_policy pol)
{
	return pol != MX_IP_V4_ONLY;
}

/* Addresses of one host in policy order. */
static void
host_targets(struct plan_ctx *c, const struct mx_addrs *a,
	     enum mx_ip_policy pol)
{
	size_t n4 = v4_allowed(pol) && a->v4 != NULL ? a->nv4 : 0;
	size_t n6 = v6_allowed(pol) && a->v6 != NULL ? a->nv6 : 0;
	size_t i;

	if (pol == MX_IP_ANY) {
		for (i = 0; i < n4 || i < n6; i++) {
			if (i < n6)
				add_target(c, 6, a->v6[i]);
			if (i < n4)
				add_target(c, 4, a->v4[i]);
		}
		return;
	}
	if (pol == MX_IP_PREFER_V4)
		for (i = 0; i < n4; i++)
			add_target(c, 4, a->v4[i]);
	for (i = 0; i < n6; i++)
		add_target(c, 6, a->v6[i]);
	if (pol != MX_IP_PREFER_V4)
		for (i = 0; i < n4; i++)
			add_target(c, 4, a->v4[i]);
}

static bool
temp_lookup(enum mx_lookup l)
{
	return l == MX_L_TEMPFAIL || l == MX_L_BOGUS ||
	       (l != MX_L_ANSWER && l != MX_L_NODATA && l != MX_L_NXDOMAIN);
}

/* Did a lookup the policy counts fail temporarily for this host? */
static bool
host_temp(const struct mx_addrs *a, enum mx_ip_policy pol)
{
	return (v4_allowed(pol) && temp_lookup(a->a)) ||
	       (v6_allowed(pol) && temp_lookup(a->aaaa));
}

static void
plan_copy(const struct mx_decision *d, struct mx_plan *out)
{
	out->action = d->action;
	out->status = d->status;
	memcpy(out->explain, d->explain, sizeof(out->explain));
}

static void
plan_explain(const struct mx_decision *d, uint16_t nhosts, struct mx_plan *out,
	     enum mx_ip_policy pol, size_t ntemp, const char *detail)
{
	const char *p = mx_ip_policy_name(pol);
	char first[128];

	safe_name(first, sizeof(first), d->hosts[0].name);
	if (out->n > 0)
		snprintf(out->explain, sizeof(out->explain),
			 "%zu address%s from %u MX host%s (first %s, ip=%s)%s",
			 out->n, out->n == 1 ? "" : "es", (unsigned)nhosts,
			 nhosts == 1 ? "" : "s", first, p,
			 ntemp > 0 ? "; some address lookups failed "
				     "temporarily"
				   : "");
	else if (ntemp > 0)
		snprintf(out->explain, sizeof(out->explain),
			 "address lookups for the MX hosts (first %s) failed "
			 "temporarily (%s); will retry",
			 first, detail);
	else
		snprintf(out->explain, sizeof(out->explain),
			 "no MX host (first %s%s) has an address usable with "
			 "ip=%s: unable to route",
			 first,
			 d->hosts[0].implicit ? ", the domain itself" : "", p);
}

static bool
self_has(const struct mx_self_addrs *s, int family, const uint8_t *addr)
{
	size_t i;

	if (family == 4) {
		for (i = 0; i < s->nv4; i++)
			if (memcmp(s->v4[i], addr, 4) == 0)
				return true;
	} else {
		for (i = 0; i < s->nv6; i++)
			if (memcmp(s->v6[i], addr, 16) == 0)
				return true;
	}
	return false;
}

/* One of host a's addresses that is ours, as text into buf; or false. */
static bool
host_self_addr(const struct mx_addrs *a, const struct mx_self_addrs *s,
	       char *buf, size_t size)
{
	size_t i;

	for (i = 0; a->v4 != NULL && i < a->nv4; i++)
		if (self_has(s, 4, a->v4[i]))
			return inet_ntop(AF_INET, a->v4[i], buf,
					 (socklen_t)size) != NULL;
	for (i = 0; a->v6 != NULL && i < a->nv6; i++)
		if (self_has(s, 6, a->v6[i]))
			return inet_ntop(AF_INET6, a->v6[i], buf,
					 (socklen_t)size) != NULL;
	return false;
}

/*
 * Step 2b: the number of hosts to use, those more preferred than the
 * first host that is ours by address (all of them when none is). Writes
 * the warning, or the bounce, into out.
 */
static uint16_t
self_by_address(const struct mx_decision *d, const struct mx_addrs *per_host,
		const struct mx_self_addrs *s, struct mx_plan *out)
{
	char addr[64], name[128];
	uint16_t i, keep = 0;

	for (i = 0; i < d->nhosts; i++)
		if (host_self_addr(&per_host[i], s, addr, sizeof(addr)))
			break;
	if (i == d->nhosts)
		return d->nhosts;
	while (keep < i && d->hosts[keep].preference < d->hosts[i].preference)
		keep++;
	safe_name(name, sizeof(name), d->hosts[i].name);
	if (keep == 0) {
		snprintf(out->explain, sizeof(out->explain),
			 "MX host %s%s (preference %u) has address %s, which "
			 "is one of this host's own addresses, and no more "
			 "preferred MX exists: mail loop or misconfiguration "
			 "(check the domain's MX records and [listen])",
			 name,
			 d->hosts[i].implicit ? " (the domain itself)" : "",
			 (unsigned)d->hosts[i].preference, addr);
		return 0;
	}
	snprintf(out->warning, sizeof(out->warning),
		 "MX host %s (preference %u) has address %s, one of this "
		 "host's own addresses: only more preferred MX hosts are used",
		 name, (unsigned)d->hosts[i].preference, addr);
	return keep;
}

void
mx_plan_addresses(const struct mx_decision *d, const struct mx_addrs *per_host,
		  enum mx_ip_policy pol, size_t max_addresses,
		  struct mx_plan *out)
{
	mx_plan_addresses_self(d, per_host, NULL, pol, max_addresses, out);
}

void
mx_plan_addresses_self(const struct mx_decision *d,
		       const struct mx_addrs *per_host,
		       const struct mx_self_addrs *self, enum mx_ip_policy pol,
		       size_t max_addresses, struct mx_plan *out)
{
	struct plan_ctx c = {out, max_addresses, 0};
	size_t i, ntemp = 0;
	uint16_t nhosts;
	char detail[64] = "temporary DNS failure";

	memset(out, 0, sizeof(*out));
	if (d->action != MX_DELIVER || d->nhosts == 0 || per_host == NULL) {
		plan_copy(d, out);
		if (d->action == MX_DELIVER) {
			out->action = MX_DEFER;
			out->status = "4.4.3";
		}
		return;
	}
	if (c.max == 0)
		c.max = MX_ADDR_DEFAULT;
	if (c.max > MX_ADDR_MAX)
		c.max = MX_ADDR_MAX;
	nhosts =
	    self != NULL ? self_by_address(d, per_host, self, out) : d->nhosts;
	if (nhosts == 0) {
		out->action = MX_BOUNCE;
		out->status = "5.4.6";
		return;
	}
	for (i = 0; i < nhosts; i++) {
		c.host = (uint16_t)i;
		host_targets(&c, &per_host[i], pol);
		if (host_temp(&per_host[i], pol) && ntemp++ == 0 &&
		    per_host[i].detail != NULL)
			dns_text_readable(detail, sizeof(detail),
					  per_host[i].detail, sizeof(detail));
	}
	plan_explain(d, nhosts, out, pol, ntemp, detail);
	if (out->n > 0)
		out->action = MX_DELIVER;
	else if (ntemp > 0) {
		out->action = MX_DEFER;
		out->status = "4.4.3";
	} else {
		out->action = MX_BOUNCE;
		out->status = "5.4.4";
	}
}

static const char *const policy_names[] = {
    "any", "prefer-ipv4", "prefer-ipv6", "ipv4-only", "ipv6-only",
};

const char *
mx_ip_policy_name(enum mx_ip_policy p)
{
	if ((unsigned)p >= sizeof(policy_names) / sizeof(policy_names[0]))
		return "?";
	return policy_names[p];
}

bool
mx_ip_policy_parse(const char *s, enum mx_ip_policy *out)
{
	size_t i;

	for (i = 0; i < sizeof(policy_names) / sizeof(policy_names[0]); i++)
		if (strcmp(s, policy_names[i]) == 0) {
			*out = (enum mx_ip_policy)i;
			return true;
		}
	return false;
}

const char *
mx_lookup_name(enum mx_lookup l)
{
	switch (l) {
	case MX_L_ANSWER:
		return "answer";
	case MX_L_NODATA:
		return "NODATA";
	case MX_L_NXDOMAIN:
		return "NXDOMAIN";
	case MX_L_TEMPFAIL:
		return "temporary failure";
	case MX_L_BOGUS:
		return "DNSSEC bogus";
	}
	return "unknown";
}
