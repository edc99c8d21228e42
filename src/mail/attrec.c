/*
 * attrec — see attrec.h.
 */
#include "mail/attrec.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/json.h"

static const char *const sec_names[] = {"unchecked", "insecure", "secure",
					"bogus"};
static const char *const v6plan_names[] = {"usual", "ipv4-first", "probe"};

/* A private copy of at most max octets of s (NULL stays NULL); *cut
 * set when s was longer. Cuts never split a UTF-8 sequence. */
static char *
cap_dup(const char *s, size_t max, uint8_t *cut)
{
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s);
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		if (cut)
			*cut = 1;
	}
	return xstrndup(s, n);
}

static size_t
slen(const char *s)
{
	return s ? strlen(s) : 0;
}

/* ---- DNS ---------------------------------------------------------- */

void
attrec_dns_init(struct attrec_dns_set *s)
{
	memset(s, 0, sizeof(*s));
}

void
attrec_dns_free(struct attrec_dns_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct attrec_dns *q = &s->q[i];
		xfree(q->qname);
		xfree(q->qtype);
		xfree(q->result);
		xfree(q->rcode);
		xfree(q->why);
		for (size_t k = 0; k < q->nrr; k++)
			xfree(q->rr[k].data);
	}
	attrec_dns_init(s);
}

struct attrec_dns *
attrec_dns_add(struct attrec_dns_set *s, const char *qname, const char *qtype,
	       const char *result, const char *rcode, int dnssec,
	       const char *why)
{
	struct attrec_dns *q;
	size_t need = slen(qname) + slen(why) + 64;

	if (s->n >= ATTREC_DNS_MAX || s->bytes + need > ATTREC_DNS_BYTES) {
		s->cut++;
		return NULL;
	}
	q = &s->q[s->n++];
	memset(q, 0, sizeof(*q));
	q->qname = cap_dup(qname ? qname : "", ATTREC_NAME_MAX, NULL);
	q->qtype = cap_dup(qtype ? qtype : "", 16, NULL);
	q->result = cap_dup(result ? result : "", 16, NULL);
	q->rcode = cap_dup(rcode ? rcode : "", 64, NULL);
	q->dnssec = dnssec >= 0 && dnssec <= ATTREC_SEC_BOGUS
			? (uint8_t)dnssec
			: ATTREC_SEC_UNCHECKED;
	q->why = cap_dup(why, ATTREC_DETAIL_MAX, NULL);
	s->bytes += need;
	return q;
}

void
attrec_dns_result(struct attrec_dns *q, const char *result)
{
	if (q == NULL)
		return;
	xfree(q->result);
	q->result = cap_dup(result ? result : "", 16, NULL);
}

void
attrec_dns_rr(struct attrec_dns_set *s, struct attrec_dns *q, uint32_t ttl,
	      int32_t pref, const char *data)
{
	size_t need = slen(data) + 16;

	if (q == NULL)
		return;
	if (q->nrr >= ATTREC_RR_MAX || s->bytes + need > ATTREC_DNS_BYTES) {
		q->rr_cut++;
		return;
	}
	q->rr[q->nrr].ttl = ttl;
	q->rr[q->nrr].pref = pref;
	q->rr[q->nrr].data = cap_dup(data ? data : "", ATTREC_NAME_MAX, NULL);
	q->nrr++;
	s->bytes += need;
}

void
attrec_put_dns(struct ipc_out *o, const struct attrec_dns_set *s)
{
	ipc_put_u8(o, s->implicit);
	ipc_put_u32(o, s->cut);
	ipc_put_u32(o, (uint32_t)s->n);
	for (size_t i = 0; i < s->n; i++) {
		const struct attrec_dns *q = &s->q[i];
		ipc_put_str(o, q->qname);
		ipc_put_str(o, q->qtype);
		ipc_put_str(o, q->result);
		ipc_put_str(o, q->rcode);
		ipc_put_u8(o, q->dnssec);
		ipc_put_str(o, q->why ? q->why : "");
		ipc_put_u32(o, q->rr_cut);
		ipc_put_u32(o, (uint32_t)q->nrr);
		for (size_t k = 0; k < q->nrr; k++) {
			ipc_put_u32(o, q->rr[k].ttl);
			ipc_put_u32(o, (uint32_t)q->rr[k].pref);
			ipc_put_str(o, q->rr[k].data);
		}
	}
}

void
attrec_get_dns(struct ipc_in *in, struct attrec_dns_set *s)
{
	uint32_t n;

	attrec_dns_init(s);
	s->implicit = ipc_get_u8(in);
	s->cut = ipc_get_u32(in);
	n = ipc_get_u32(in);
	for (uint32_t i = 0; i < n && !in->err; i++) {
		const char *qname = ipc_get_str(in), *qtype = ipc_get_str(in);
		const char *result = ipc_get_str(in), *rcode = ipc_get_str(in);
		int sec = ipc_get_u8(in);
		const char *why = ipc_get_str(in);
		uint32_t rr_cut = ipc_get_u32(in), nrr = ipc_get_u32(in);
		struct attrec_dns *q = attrec_dns_add(
		    s, qname, qtype, result, rcode, sec, *why ? why : NULL);
		if (q)
			q->rr_cut = rr_cut;
		for (uint32_t k = 0; k < nrr && !in->err; k++) {
			uint32_t ttl = ipc_get_u32(in);
			int32_t pref = (int32_t)ipc_get_u32(in);
			attrec_dns_rr(s, q, ttl, pref, ipc_get_str(in));
		}
	}
}

/* ---- addresses, TLS, dialogue ---------------------------------------- */

static void
tls_free(struct attrec_tls *t)
{
	xfree(t->version);
	xfree(t->cipher);
	xfree(t->policy);
	xfree(t->verify);
	xfree(t->name);
	xfree(t->error);
	memset(t, 0, sizeof(*t));
}

static void
tls_copy(struct attrec_tls *d, const struct attrec_tls *s)
{
	d->state = s->state;
	d->verified = s->verified;
	d->version = cap_dup(s->version, 64, NULL);
	d->cipher = cap_dup(s->cipher, 128, NULL);
	d->policy = cap_dup(s->policy, 16, NULL);
	d->verify = cap_dup(s->verify, 16, NULL);
	d->name = cap_dup(s->name, ATTREC_NAME_MAX, NULL);
	d->error = cap_dup(s->error, ATTREC_DETAIL_MAX, NULL);
}

static size_t
tls_bytes(const struct attrec_tls *t)
{
	return slen(t->version) + slen(t->cipher) + slen(t->name) +
	       slen(t->error) + 32;
}

void
attrec_conn_init(struct attrec_conn *c)
{
	memset(c, 0, sizeof(*c));
}

void
attrec_conn_clear(struct attrec_conn *c)
{
	for (size_t i = 0; i < c->naddr; i++) {
		xfree(c->addr[i].host);
		xfree(c->addr[i].address);
		xfree(c->addr[i].outcome);
		xfree(c->addr[i].detail);
		tls_free(&c->addr[i].tls);
	}
	for (size_t i = 0; i < c->nturn; i++) {
		xfree(c->turn[i].command);
		xfree(c->turn[i].reply);
	}
	c->naddr = c->nturn = 0;
	c->addr_cut = c->turn_cut = 0;
	c->bytes = 0;
	/* v6_plan, recent and the address limit stay: how the live
	 * connection was chosen */
	c->time_limit = 0;
	c->tl_tried = c->tl_total = 0;
}

void
attrec_conn_free(struct attrec_conn *c)
{
	attrec_conn_clear(c);
	for (size_t i = 0; i < c->nrecent; i++)
		xfree(c->recent[i]);
	for (size_t i = 0; i < c->nskipped; i++)
		xfree(c->skipped[i]);
	tls_free(&c->tls);
	attrec_conn_init(c);
}

void
attrec_conn_connected(struct attrec_conn *c)
{
	c->rseq = c->cseq;
	tls_free(&c->tls);
}

/* Place one address entry (tls: moved in, may be NULL); its index, or
 * -1 when it was left out. */
static int
conn_addr_put(struct attrec_conn *c, const char *host, const char *address,
	      uint32_t port, int family, const char *outcome,
	      const char *detail, struct attrec_tls *tls, int move)
{
	struct attrec_addr *a;
	size_t need = slen(host) + slen(address) + slen(outcome) +
		      slen(detail) + (tls ? tls_bytes(tls) : 0) + 32;

	if (c->naddr >= ATTREC_ADDR_MAX ||
	    c->bytes + need > ATTREC_CONN_BYTES) {
		c->addr_cut++;
		if (tls && move)
			tls_free(tls);
		return -1;
	}
	a = &c->addr[c->naddr++];
	memset(a, 0, sizeof(*a));
	a->host = cap_dup(host ? host : "", ATTREC_NAME_MAX, NULL);
	a->address = cap_dup(address ? address : "", 64, NULL);
	a->port = port;
	a->family = (uint8_t)family;
	a->outcome = cap_dup(outcome ? outcome : "", 32, NULL);
	a->detail = cap_dup(detail, ATTREC_DETAIL_MAX, NULL);
	if (tls && move) {
		a->tls = *tls;
		memset(tls, 0, sizeof(*tls));
	} else if (tls) {
		tls_copy(&a->tls, tls);
	}
	c->bytes += need;
	return (int)(c->naddr - 1);
}

int
attrec_conn_addr(struct attrec_conn *c, const char *host, const char *address,
		 uint32_t port, int family, const char *outcome,
		 const char *detail)
{
	/* copied: every job carried by the connection shows its TLS */
	int k = conn_addr_put(c, host, address, port, family, outcome,
			      detail && *detail ? detail : NULL, &c->tls, 0);

	/* the dialogue since the previous outcome was with this address */
	for (size_t i = 0; i < c->nturn; i++)
		if (c->turn[i].addr == ATTREC_ADDR_PENDING)
			c->turn[i].addr = k >= 0 ? k : ATTREC_ADDR_NONE;
	return k;
}

void
attrec_conn_addr_note(struct attrec_conn *c, int k, unsigned flags,
		      uint32_t message)
{
	if (k < 0 || (size_t)k >= c->naddr)
		return;
	c->addr[k].flags |= (uint8_t)flags;
	c->addr[k].message = message;
}

void
attrec_conn_recent(struct attrec_conn *c, const char *address)
{
	if (address == NULL || c->nrecent >= ATTREC_ADDR_MAX)
		return;
	for (size_t i = 0; i < c->nrecent; i++)
		if (strcmp(c->recent[i], address) == 0)
			return;
	c->recent[c->nrecent++] = cap_dup(address, 64, NULL);
}

/* One address left out by max-addresses (bounded, the rest counted). */
static void
conn_skipped(struct attrec_conn *c, const char *address)
{
	if (c->nskipped >= ATTREC_ADDR_MAX) {
		c->al_cut++;
		return;
	}
	c->skipped[c->nskipped++] = cap_dup(address ? address : "", 64, NULL);
}

void
attrec_conn_addr_limit(struct attrec_conn *c, uint32_t max, uint32_t total,
		       const char *const *skipped, size_t n)
{
	for (size_t i = 0; i < c->nskipped; i++)
		xfree(c->skipped[i]);
	c->nskipped = 0;
	c->al_cut = 0;
	c->al_max = max;
	c->al_total = total;
	for (size_t i = 0; i < n; i++)
		conn_skipped(c, skipped[i]);
}

void
attrec_conn_mark_v4_retry(struct attrec_conn *c, size_t from)
{
	for (size_t i = from; i < c->naddr; i++)
		c->addr[i].flags |= ATTREC_AF_V4_RETRY;
}

static void
tls_set(struct attrec_tls *t, int state, const char *policy, const char *verify,
	const char *name)
{
	tls_free(t);
	t->state = (uint8_t)state;
	t->policy = cap_dup(policy, 16, NULL);
	t->verify = cap_dup(verify, 16, NULL);
	t->name = cap_dup(name, ATTREC_NAME_MAX, NULL);
}

void
attrec_conn_tls_ok(struct attrec_conn *c, const char *version,
		   const char *cipher, int verified, const char *policy,
		   const char *verify, const char *name)
{
	tls_set(&c->tls, ATTREC_TLS_OK, policy, verify, name);
	c->tls.verified = verified != 0;
	c->tls.version = cap_dup(version, 64, NULL);
	c->tls.cipher = cap_dup(cipher, 128, NULL);
}

void
attrec_conn_tls_failed(struct attrec_conn *c, const char *policy,
		       const char *verify, const char *name, const char *error)
{
	tls_set(&c->tls, ATTREC_TLS_FAILED, policy, verify, name);
	c->tls.error = cap_dup(error, ATTREC_DETAIL_MAX, NULL);
}

/* Room for one more turn: a full dialogue keeps its first half and
 * drops the oldest turn after it, so the last replies (the ones that
 * decided the outcome) are always there. */
static struct attrec_turn *
turn_new(struct attrec_conn *c, size_t need)
{
	struct attrec_turn *t;

	while (c->nturn > 0 && (c->nturn >= ATTREC_TURN_MAX ||
				c->bytes + need > ATTREC_CONN_BYTES)) {
		size_t k = c->nturn > ATTREC_TURN_MAX / 2 ? ATTREC_TURN_MAX / 2
							  : c->nturn - 1;
		struct attrec_turn *d = &c->turn[k];
		size_t freed = slen(d->command) + slen(d->reply) + 8;
		xfree(d->command);
		xfree(d->reply);
		memmove(d, d + 1, (c->nturn - k - 1) * sizeof(*d));
		c->nturn--;
		c->turn_cut++;
		c->bytes -= freed < c->bytes ? freed : c->bytes;
		if (k == 0)
			break;
	}
	if (c->nturn >= ATTREC_TURN_MAX || c->bytes + need > ATTREC_CONN_BYTES)
		return NULL;
	t = &c->turn[c->nturn++];
	memset(t, 0, sizeof(*t));
	t->addr = ATTREC_ADDR_PENDING;
	c->bytes += need;
	return t;
}

void
attrec_conn_sent(struct attrec_conn *c, const char *lines)
{
	const char *s = lines ? lines : "";

	while (*s) {
		size_t n = strcspn(s, "\r\n");
		if (n > 0) {
			char *cmd = xstrndup(s, n);
			struct attrec_turn *t = turn_new(
			    c, (n < ATTREC_CMD_MAX ? n : ATTREC_CMD_MAX) + 8);
			if (t) {
				t->seq = c->cseq;
				t->command =
				    cap_dup(cmd, ATTREC_CMD_MAX, &t->cut);
			} else {
				c->turn_cut++;
			}
			c->cseq++;
			xfree(cmd);
		}
		s += n;
		s += strspn(s, "\r\n");
	}
}

void
attrec_conn_reply(struct attrec_conn *c, const char *text, size_t n)
{
	struct attrec_turn *t = NULL;
	char *r = xstrndup(text ? text : "", text ? n : 0);

	if (c->rseq < c->cseq) {
		/* the oldest unanswered command; gone if it was dropped */
		for (size_t i = 0; i < c->nturn; i++)
			if (c->turn[i].command && c->turn[i].seq == c->rseq &&
			    c->turn[i].reply == NULL)
				t = &c->turn[i];
		c->rseq++;
		if (t == NULL) {
			xfree(r);
			return;
		}
		c->bytes += (n < ATTREC_REPLY_MAX ? n : ATTREC_REPLY_MAX);
	} else {
		/* the greeting (or a reply nobody asked for) */
		t = turn_new(c,
			     (n < ATTREC_REPLY_MAX ? n : ATTREC_REPLY_MAX) + 8);
		if (t == NULL) {
			c->turn_cut++;
			xfree(r);
			return;
		}
		t->seq = UINT64_MAX;
	}
	t->reply = cap_dup(r, ATTREC_REPLY_MAX, &t->cut);
	xfree(r);
}

/* A turn's address index after its addresses were copied (map: old
 * index -> new, -1 left out). */
static int32_t
turn_addr_map(int32_t old, const int *map, size_t n)
{
	if (old < 0)
		return old;
	if ((size_t)old >= n || map[old] < 0)
		return ATTREC_ADDR_NONE;
	return map[old];
}

void
attrec_conn_append(struct attrec_conn *dst, const struct attrec_conn *src)
{
	int map[ATTREC_ADDR_MAX];

	dst->addr_cut += src->addr_cut;
	dst->turn_cut += src->turn_cut;
	for (size_t i = 0; i < src->naddr; i++) {
		const struct attrec_addr *a = &src->addr[i];
		struct attrec_tls t;
		memset(&t, 0, sizeof(t));
		tls_copy(&t, &a->tls);
		map[i] = conn_addr_put(dst, a->host, a->address, a->port,
				       a->family, a->outcome, a->detail, &t, 1);
		attrec_conn_addr_note(dst, map[i], a->flags, a->message);
	}
	if (src->v6_plan)
		dst->v6_plan = src->v6_plan;
	for (size_t i = 0; i < src->nrecent; i++)
		attrec_conn_recent(dst, src->recent[i]);
	if (src->time_limit) {
		dst->time_limit = 1;
		dst->tl_tried = src->tl_tried;
		dst->tl_total = src->tl_total;
	}
	if (src->al_max) {
		attrec_conn_addr_limit(dst, src->al_max, src->al_total,
				       (const char *const *)src->skipped,
				       src->nskipped);
		dst->al_cut += src->al_cut;
	}
	for (size_t i = 0; i < src->nturn; i++) {
		const struct attrec_turn *s = &src->turn[i];
		struct attrec_turn *t =
		    turn_new(dst, slen(s->command) + slen(s->reply) + 8);
		if (t == NULL) {
			dst->turn_cut++;
			continue;
		}
		t->seq = UINT64_MAX; /* answered or not, pairing is over */
		t->command = cap_dup(s->command, ATTREC_CMD_MAX, NULL);
		t->reply = cap_dup(s->reply, ATTREC_REPLY_MAX, NULL);
		t->cut = s->cut;
		t->addr = turn_addr_map(s->addr, map, src->naddr);
	}
}

/* Strings that may be NULL travel as u8 present + str. */
static void
put_opt(struct ipc_out *o, const char *s)
{
	ipc_put_u8(o, s != NULL);
	ipc_put_str(o, s ? s : "");
}

static const char *
get_opt(struct ipc_in *in)
{
	int present = ipc_get_u8(in);
	const char *s = ipc_get_str(in);

	return present ? s : NULL;
}

static void
put_tls(struct ipc_out *o, const struct attrec_tls *t)
{
	ipc_put_u8(o, t->state);
	ipc_put_u8(o, t->verified);
	put_opt(o, t->version);
	put_opt(o, t->cipher);
	put_opt(o, t->policy);
	put_opt(o, t->verify);
	put_opt(o, t->name);
	put_opt(o, t->error);
}

static void
get_tls(struct ipc_in *in, struct attrec_tls *t)
{
	struct attrec_tls s;

	memset(&s, 0, sizeof(s));
	s.state = ipc_get_u8(in);
	s.verified = ipc_get_u8(in);
	/* borrowed from the payload, copied by tls_copy */
	s.version = (char *)get_opt(in);
	s.cipher = (char *)get_opt(in);
	s.policy = (char *)get_opt(in);
	s.verify = (char *)get_opt(in);
	s.name = (char *)get_opt(in);
	s.error = (char *)get_opt(in);
	tls_copy(t, &s);
}

void
attrec_put_conn(struct ipc_out *o, const struct attrec_conn *c)
{
	ipc_put_u8(o, c->v6_plan);
	ipc_put_u8(o, c->time_limit);
	ipc_put_u32(o, c->tl_tried);
	ipc_put_u32(o, c->tl_total);
	ipc_put_u32(o, (uint32_t)c->nrecent);
	for (size_t i = 0; i < c->nrecent; i++)
		ipc_put_str(o, c->recent[i]);
	ipc_put_u32(o, c->al_max);
	ipc_put_u32(o, c->al_total);
	ipc_put_u32(o, c->al_cut);
	ipc_put_u32(o, (uint32_t)c->nskipped);
	for (size_t i = 0; i < c->nskipped; i++)
		ipc_put_str(o, c->skipped[i]);
	ipc_put_u32(o, c->addr_cut);
	ipc_put_u32(o, (uint32_t)c->naddr);
	for (size_t i = 0; i < c->naddr; i++) {
		const struct attrec_addr *a = &c->addr[i];
		ipc_put_str(o, a->host);
		ipc_put_str(o, a->address);
		ipc_put_u32(o, a->port);
		ipc_put_u8(o, a->family);
		ipc_put_str(o, a->outcome);
		put_opt(o, a->detail);
		put_tls(o, &a->tls);
		ipc_put_u8(o, a->flags);
		ipc_put_u32(o, a->message);
	}
	ipc_put_u32(o, c->turn_cut);
	ipc_put_u32(o, (uint32_t)c->nturn);
	for (size_t i = 0; i < c->nturn; i++) {
		put_opt(o, c->turn[i].command);
		put_opt(o, c->turn[i].reply);
		ipc_put_u8(o, c->turn[i].cut);
		ipc_put_u32(o, (uint32_t)c->turn[i].addr);
	}
}

/* max-addresses: kept, of how many, and the addresses left out */
static void
conn_get_limit(struct ipc_in *in, struct attrec_conn *c)
{
	uint32_t n;

	c->al_max = ipc_get_u32(in);
	c->al_total = ipc_get_u32(in);
	c->al_cut = ipc_get_u32(in);
	n = ipc_get_u32(in);
	for (uint32_t i = 0; i < n && !in->err; i++)
		conn_skipped(c, ipc_get_str(in));
}

/* format: the stored record's (ATTREC_PACK_V*): V1 has no notes, V2 no
 * address limit; IPC is always the newest */
static void
conn_get(struct ipc_in *in, struct attrec_conn *c, int format)
{
	int notes = format >= ATTREC_PACK_V2;
	uint32_t n;
	int map[ATTREC_ADDR_MAX];
	size_t nmap = 0;

	attrec_conn_init(c);
	if (notes) {
		c->v6_plan = ipc_get_u8(in) % 3;
		c->time_limit = ipc_get_u8(in) != 0;
		c->tl_tried = ipc_get_u32(in);
		c->tl_total = ipc_get_u32(in);
		n = ipc_get_u32(in);
		for (uint32_t i = 0; i < n && !in->err; i++)
			attrec_conn_recent(c, ipc_get_str(in));
	}
	if (format >= ATTREC_PACK_V3)
		conn_get_limit(in, c);
	c->addr_cut = ipc_get_u32(in);
	n = ipc_get_u32(in);
	for (uint32_t i = 0; i < n && !in->err; i++) {
		const char *host = ipc_get_str(in), *addr = ipc_get_str(in);
		uint32_t port = ipc_get_u32(in);
		int family = ipc_get_u8(in);
		const char *outcome = ipc_get_str(in), *detail = get_opt(in);
		struct attrec_tls t;
		int k;
		memset(&t, 0, sizeof(t));
		get_tls(in, &t);
		k = conn_addr_put(c, host, addr, port, family, outcome, detail,
				  &t, 1);
		if (notes) {
			unsigned flags = ipc_get_u8(in);
			uint32_t message = ipc_get_u32(in);
			attrec_conn_addr_note(c, k, flags, message);
		}
		if (nmap < ATTREC_ADDR_MAX)
			map[nmap++] = k;
	}
	c->turn_cut += ipc_get_u32(in);
	n = ipc_get_u32(in);
	for (uint32_t i = 0; i < n && !in->err; i++) {
		const char *cmd = get_opt(in), *reply = get_opt(in);
		uint8_t cut = ipc_get_u8(in);
		int32_t addr = (int32_t)ipc_get_u32(in);
		struct attrec_turn *t =
		    turn_new(c, slen(cmd) + slen(reply) + 8);
		if (t == NULL) {
			c->turn_cut++;
			continue;
		}
		t->seq = UINT64_MAX;
		t->command = cap_dup(cmd, ATTREC_CMD_MAX, NULL);
		t->reply = cap_dup(reply, ATTREC_REPLY_MAX, NULL);
		t->cut = cut;
		t->addr = turn_addr_map(
		    addr < ATTREC_ADDR_PENDING ? ATTREC_ADDR_NONE : addr, map,
		    nmap);
	}
}

void
attrec_get_conn(struct ipc_in *in, struct attrec_conn *c)
{
	conn_get(in, c, ATTREC_PACK_V3);
}

/* ---- storage ----------------------------------------------------------- */

void
attrec_pack(const struct attrec_view *v, struct ipc_out *o)
{
	ipc_put_u8(o, ATTREC_PACK_V3);
	put_opt(o, v->route_kind);
	put_opt(o, v->route_via);
	put_opt(o, v->command && *v->command ? v->command : NULL);
	ipc_put_i64(o, (int64_t)v->next_attempt);
	put_opt(o, v->next_reason);
	ipc_put_u8(o, v->dns != NULL);
	if (v->dns)
		attrec_put_dns(o, v->dns);
	ipc_put_u8(o, v->conn != NULL);
	if (v->conn)
		attrec_put_conn(o, v->conn);
}

int
attrec_unpack(const void *p, size_t n, struct attrec_unpacked *u)
{
	struct ipc_in in = {0};
	struct attrec_view *v = &u->view;
	int format;

	memset(v, 0, sizeof(*v));
	attrec_dns_init(&u->dns);
	attrec_conn_init(&u->conn);
	in.p = p;
	in.len = n;
	format = ipc_get_u8(&in);
	if (format < ATTREC_PACK_V1 || format > ATTREC_PACK_V3)
		return -1;
	v->route_kind = get_opt(&in);
	v->route_via = get_opt(&in);
	v->command = get_opt(&in);
	v->next_attempt = (time_t)ipc_get_i64(&in);
	v->next_reason = get_opt(&in);
	if (ipc_get_u8(&in)) {
		attrec_dns_free(&u->dns);
		attrec_get_dns(&in, &u->dns);
		v->dns = &u->dns;
	}
	if (ipc_get_u8(&in)) {
		attrec_conn_free(&u->conn);
		conn_get(&in, &u->conn, format);
		v->conn = &u->conn;
	}
	return in.err || in.off != in.len ? -1 : 0;
}

void
attrec_unpacked_free(struct attrec_unpacked *u)
{
	attrec_dns_free(&u->dns);
	attrec_conn_free(&u->conn);
	memset(&u->view, 0, sizeof(u->view));
}

/* ---- JSON ------------------------------------------------------------ */

/* The MX preference of host in the record's MX answers; -1 unknown. */
static long
view_pref(const struct attrec_view *v, const char *host)
{
	if (v->dns == NULL || host == NULL)
		return -1;
	for (size_t i = 0; i < v->dns->n; i++) {
		const struct attrec_dns *q = &v->dns->q[i];
		if (strcmp(q->qtype, "MX") != 0)
			continue;
		for (size_t k = 0; k < q->nrr; k++)
			if (strcasecmp(q->rr[k].data, host) == 0)
				return q->rr[k].pref;
	}
	return v->dns->implicit ? 0 : -1;
}

static void
json_time_m(struct json *j, const char *key, time_t t)
{
	char s[32];

	if (t == 0) {
		json_null_m(j, key);
		return;
	}
	clock_iso8601(t, s, sizeof(s));
	json_str_m(j, key, s);
}

static void
json_dns(struct json *j, const struct attrec_dns_set *s)
{
	json_arr_open(j, "dns");
	for (size_t i = 0; s && i < s->n; i++) {
		const struct attrec_dns *q = &s->q[i];
		uint32_t ttl = 0;
		json_obj_open(j, NULL);
		json_str_m(j, "qname", q->qname);
		json_str_m(j, "qtype", q->qtype);
		json_str_m(j, "result", q->result);
		json_str_m(j, "rcode", q->rcode);
		json_str_m(j, "dnssec", sec_names[q->dnssec & 3]);
		if (q->why)
			json_str_m(j, "dnssec_why", q->why);
		for (size_t k = 0; k < q->nrr; k++)
			if (k == 0 || q->rr[k].ttl < ttl)
				ttl = q->rr[k].ttl;
		if (q->nrr)
			json_int_m(j, "ttl", ttl);
		else
			json_null_m(j, "ttl");
		json_null_m(j, "tcp"); /* libunbound does not say */
		json_arr_open(j, "records");
		for (size_t k = 0; k < q->nrr; k++) {
			json_obj_open(j, NULL);
			if (q->rr[k].pref >= 0)
				json_int_m(j, "pref", q->rr[k].pref);
			json_str_m(j, "data", q->rr[k].data);
			json_int_m(j, "ttl", q->rr[k].ttl);
			json_obj_close(j);
		}
		json_arr_close(j);
		if (q->rr_cut)
			json_int_m(j, "records_left_out", q->rr_cut);
		json_obj_close(j);
	}
	json_arr_close(j);
}

static void
json_tls(struct json *j, const struct attrec_tls *t)
{
	if (t->state == ATTREC_TLS_NONE) {
		json_null_m(j, "tls");
		return;
	}
	json_obj_open(j, "tls");
	json_str_m(j, "result", t->state == ATTREC_TLS_OK ? "ok" : "failed");
	json_str_m(j, "version", t->version);
	json_str_m(j, "cipher", t->cipher);
	json_bool_m(j, "verified", t->verified);
	json_str_m(j, "policy", t->policy);
	json_str_m(j, "verify", t->verify);
	json_str_m(j, "name", t->name);
	json_str_m(j, "error", t->error);
	json_obj_close(j);
}

static void
json_addrs(struct json *j, const struct attrec_view *v)
{
	const struct attrec_conn *c = v->conn;

	json_arr_open(j, "addresses");
	for (size_t i = 0; c && i < c->naddr; i++) {
		const struct attrec_addr *a = &c->addr[i];
		long pref = view_pref(v, a->host);
		json_obj_open(j, NULL);
		json_str_m(j, "host", a->host);
		if (pref >= 0)
			json_int_m(j, "pref", pref);
		else
			json_null_m(j, "pref");
		json_str_m(j, "address", a->address);
		json_int_m(j, "port", a->port);
		json_int_m(j, "family", a->family);
		json_str_m(j, "outcome", a->outcome);
		json_str_m(j, "detail", a->detail);
		json_tls(j, &a->tls);
		json_bool_m(j, "failed_recently",
			    (a->flags & ATTREC_AF_FAILED_RECENTLY) != 0);
		json_bool_m(j, "ipv4_retry",
			    (a->flags & ATTREC_AF_V4_RETRY) != 0);
		if (a->message)
			json_int_m(j, "message", a->message);
		else
			json_null_m(j, "message");
		json_obj_close(j);
	}
	json_arr_close(j);
}

static void
json_dialogue(struct json *j, const struct attrec_conn *c)
{
	json_arr_open(j, "dialogue");
	for (size_t i = 0; c && i < c->nturn; i++) {
		json_obj_open(j, NULL);
		if (c->turn[i].addr >= 0)
			json_int_m(j, "address", c->turn[i].addr);
		else
			json_null_m(j, "address");
		json_str_m(j, "command", c->turn[i].command);
		json_str_m(j, "reply", c->turn[i].reply);
		if (c->turn[i].cut)
			json_bool_m(j, "truncated", 1);
		json_obj_close(j);
	}
	json_arr_close(j);
}

/* "address_limit": null, or {"max", "addresses", "skipped": [...],
 * "skipped_unlisted"} */
static void
json_addr_limit(struct json *j, const struct attrec_conn *c)
{
	if (c == NULL || c->al_max == 0) {
		json_null_m(j, "address_limit");
		return;
	}
	json_obj_open(j, "address_limit");
	json_int_m(j, "max", c->al_max);
	json_int_m(j, "addresses", c->al_total);
	json_arr_open(j, "skipped");
	for (size_t i = 0; i < c->nskipped; i++)
		json_str_m(j, NULL, c->skipped[i]);
	json_arr_close(j);
	json_int_m(j, "skipped_unlisted", c->al_cut);
	json_obj_close(j);
}

int
attrec_json(const struct attrec_view *v, struct buf *out)
{
	struct json j;
	const struct attrec_conn *c = v->conn;

	json_init(&j, out);
	json_obj_open(&j, NULL);
	json_int_m(&j, "version", 1);
	json_time_m(&j, "time", v->time);
	json_obj_open(&j, "route");
	json_str_m(&j, "kind", v->route_kind);
	json_str_m(&j, "via", v->route_via);
	json_obj_close(&j);
	json_dns(&j, v->dns);
	json_str_m(&j, "ipv6_plan", v6plan_names[c ? c->v6_plan % 3 : 0]);
	json_arr_open(&j, "failed_recently");
	for (size_t i = 0; c && i < c->nrecent; i++)
		json_str_m(&j, NULL, c->recent[i]);
	json_arr_close(&j);
	if (c && c->time_limit) {
		json_obj_open(&j, "time_limit");
		json_int_m(&j, "tried", c->tl_tried);
		json_int_m(&j, "addresses", c->tl_total);
		json_obj_close(&j);
	} else {
		json_null_m(&j, "time_limit");
	}
	json_addr_limit(&j, c);
	json_addrs(&j, v);
	json_dialogue(&j, c);
	json_obj_open(&j, "truncated");
	json_int_m(&j, "dns", v->dns ? v->dns->cut : 0);
	json_int_m(&j, "addresses", c ? c->addr_cut : 0);
	json_int_m(&j, "dialogue", c ? c->turn_cut : 0);
	json_obj_close(&j);
	json_obj_open(&j, "result");
	json_str_m(&j, "result", v->result);
	json_str_m(&j, "status", v->status);
	json_str_m(&j, "reply", v->reply);
	json_str_m(&j, "command",
		   v->command && *v->command ? v->command : NULL);
	json_str_m(&j, "where", v->where);
	json_obj_close(&j);
	json_time_m(&j, "next_attempt", v->next_attempt);
	json_str_m(&j, "next_reason", v->next_reason);
	json_obj_close(&j);
	return json_end(&j);
}

/* ---- readable text ----------------------------------------------------- */

/* Remote text for a terminal: control characters, DEL and octets that
 * are not UTF-8 as \xNN. */
static void
text_str(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	if (s == NULL) {
		buf_adds(b, "-");
		return;
	}
	n = strlen(s);
	for (size_t i = 0; i < n;) {
		size_t len = json_utf8_len(p + i, n - i);
		if (len == 0 || p[i] < 0x20 || p[i] == 0x7f) {
			buf_addf(b, "\\x%02x", p[i]);
			i++;
			continue;
		}
		buf_add(b, p + i, len);
		i += len;
	}
}

static void
text_lines(struct buf *b, const char *prefix, const char *s)
{
	if (s == NULL) {
		buf_addf(b, "%s(none)\n", prefix);
		return;
	}
	while (*s) {
		size_t n = strcspn(s, "\r\n");
		char *line = xstrndup(s, n);
		buf_adds(b, prefix);
		text_str(b, line);
		buf_adds(b, "\n");
		xfree(line);
		s += n;
		s += strspn(s, "\r\n");
	}
}

static void
text_dns(struct buf *b, const struct attrec_dns_set *s)
{
	for (size_t i = 0; s && i < s->n; i++) {
		const struct attrec_dns *q = &s->q[i];
		buf_adds(b, "        dns ");
		text_str(b, q->qtype);
		buf_adds(b, " ");
		text_str(b, q->qname);
		buf_adds(b, ": ");
		text_str(b, q->result);
		buf_adds(b, " (");
		text_str(b, q->rcode);
		buf_addf(b, ", dnssec %s", sec_names[q->dnssec & 3]);
		if (q->why) {
			buf_adds(b, ": ");
			text_str(b, q->why);
		}
		buf_adds(b, ")\n");
		for (size_t k = 0; k < q->nrr; k++) {
			buf_adds(b, "          ");
			if (q->rr[k].pref >= 0)
				buf_addf(b, "%d ", (int)q->rr[k].pref);
			text_str(b, q->rr[k].data);
			buf_addf(b, "  ttl %u\n", q->rr[k].ttl);
		}
		if (q->rr_cut)
			buf_addf(b, "          (%u more records left out)\n",
				 q->rr_cut);
	}
	if (s && s->cut)
		buf_addf(b, "        (%u more DNS answers left out)\n", s->cut);
}

/* The turns that went to address k (k < 0: to no known address). */
static void
text_turns(struct buf *b, const struct attrec_conn *c, int k)
{
	for (size_t i = 0; i < c->nturn; i++) {
		const struct attrec_turn *t = &c->turn[i];
		if ((k >= 0 && t->addr != k) || (k < 0 && t->addr >= 0))
			continue;
		if (t->command)
			text_lines(b, "            > ", t->command);
		text_lines(b, "            < ", t->reply);
	}
}

/* "tls POLICY, verify MODE" */
static void
text_tls_policy(struct buf *b, const struct attrec_tls *t)
{
	buf_adds(b, "tls ");
	text_str(b, t->policy);
	buf_adds(b, ", verify ");
	text_str(b, t->verify);
}

static void
text_addr_notes(struct buf *b, const struct attrec_addr *a)
{
	if (a->flags & ATTREC_AF_FAILED_RECENTLY)
		buf_adds(b, "          failed recently: ordered last\n");
	if (a->flags & ATTREC_AF_V4_RETRY)
		buf_adds(b, "          IPv4 retry after a policy refusal over "
			    "IPv6\n");
	if (a->message > 1)
		buf_addf(b, "          connection reused: message %u on it\n",
			 a->message);
}

/* "max-addresses 2 of 4 addresses; skipped: a, b" */
static void
text_addr_limit(struct buf *b, const struct attrec_conn *c)
{
	if (c->al_max == 0)
		return;
	buf_addf(b,
		 "        max-addresses %u of %u addresses in the attempt's "
		 "order; skipped by the limit: ",
		 c->al_max, c->al_total);
	for (size_t i = 0; i < c->nskipped; i++) {
		if (i > 0)
			buf_adds(b, ", ");
		text_str(b, c->skipped[i]);
	}
	if (c->al_cut)
		buf_addf(b, "%s%u more", c->nskipped ? " and " : "", c->al_cut);
	buf_adds(b, "\n");
}

/* How the addresses were ordered and why they stopped early. */
static void
text_conn_notes(struct buf *b, const struct attrec_conn *c)
{
	if (c == NULL)
		return;
	if (c->v6_plan == ATTREC_V6_V4_FIRST)
		buf_adds(b, "        IPv6 suspended: IPv4 addresses first\n");
	else if (c->v6_plan == ATTREC_V6_PROBE)
		buf_adds(b, "        IPv6 suspension over: this attempt probes "
			    "IPv6\n");
	for (size_t i = 0; i < c->nrecent; i++) {
		buf_adds(b, i == 0 ? "        failed recently, ordered last: "
				   : ", ");
		text_str(b, c->recent[i]);
		if (i + 1 == c->nrecent)
			buf_adds(b, "\n");
	}
	if (c->time_limit)
		buf_addf(b,
			 "        attempt time limit reached after %u of %u "
			 "addresses\n",
			 c->tl_tried, c->tl_total);
	text_addr_limit(b, c);
}

static void
text_addrs(struct buf *b, const struct attrec_view *v)
{
	const struct attrec_conn *c = v->conn;

	for (size_t i = 0; c && i < c->naddr; i++) {
		const struct attrec_addr *a = &c->addr[i];
		const struct attrec_tls *t = &a->tls;
		long pref = view_pref(v, a->host);
		buf_adds(b, "        address ");
		text_str(b, a->host);
		buf_adds(b, a->family == 6 ? " [" : " ");
		text_str(b, a->address);
		buf_addf(b, a->family == 6 ? "]:%u" : ":%u", a->port);
		if (pref >= 0)
			buf_addf(b, " (pref %ld)", pref);
		buf_adds(b, ": ");
		text_str(b, a->outcome);
		if (a->detail) {
			buf_adds(b, ": ");
			text_str(b, a->detail);
		}
		buf_adds(b, "\n");
		text_addr_notes(b, a);
		if (t->state == ATTREC_TLS_OK) {
			buf_adds(b, "          tls ");
			text_str(b, t->version);
			buf_adds(b, " ");
			text_str(b, t->cipher);
			buf_addf(b, ", certificate %s (",
				 t->verified ? "verified" : "not verified");
			text_tls_policy(b, t);
			buf_adds(b, ")\n");
		} else if (t->state == ATTREC_TLS_FAILED) {
			buf_adds(b, "          tls failed (");
			text_tls_policy(b, t);
			buf_adds(b, "): ");
			text_str(b, t->error);
			buf_adds(b, "\n");
		}
		text_turns(b, c, (int)i);
	}
	if (c && c->addr_cut)
		buf_addf(b, "        (%u more addresses left out)\n",
			 c->addr_cut);
}

int
attrec_text(const struct attrec_view *v, struct buf *out)
{
	const struct attrec_conn *c = v->conn;
	char when[32];

	buf_adds(out, "        route ");
	text_str(out, v->route_kind);
	if (v->route_via) {
		buf_adds(out, " via ");
		text_str(out, v->route_via);
	}
	buf_adds(out, "\n");
	text_dns(out, v->dns);
	text_conn_notes(out, c);
	text_addrs(out, v);
	for (size_t i = 0; c && i < c->nturn; i++) {
		if (c->turn[i].addr < 0) {
			buf_adds(out,
				 "        dialogue at no recorded address:\n");
			text_turns(out, c, -1);
			break;
		}
	}
	if (c && c->turn_cut)
		buf_addf(out, "        (%u dialogue lines left out)\n",
			 c->turn_cut);
	if (v->next_attempt) {
		clock_iso8601(v->next_attempt, when, sizeof(when));
		buf_addf(out, "        next attempt %s: ", when);
	} else {
		buf_adds(out, "        no next attempt: ");
	}
	text_str(out, v->next_reason);
	return buf_adds(out, "\n");
}
