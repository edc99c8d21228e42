/*
 * fuzz_dns_msg — libFuzzer target for mail/dns_msg.c and mail/mx.c.
 *
 * The input is a DNS message. Invariants: parsing never crashes; on
 * success every stored name decompresses to a presentation form of at
 * most DNS_NAME_TEXT_MAX octets made only of [a-z0-9-_*.\] (no byte a log
 * or header could misread); rdata stays inside the packet; TXT strings
 * add up to their total. The MX answers (CNAME chain followed) then go
 * through mx_decide, and the A/AAAA records of the message through
 * mx_plan_addresses (and with half of them ours, mx_plan_addresses_self,
 * which must never plan one of ours), whose outputs must respect their
 * bounds. The raw
 * input is also read as text by dns_text_readable (a resolver's reason
 * string): its output is bounded, NUL-terminated, printable ASCII only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dns_msg.h"
#include "mail/mx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_text(const uint8_t *data, size_t size)
{
	char out[97];
	size_t n = dns_text_readable(out, sizeof(out), (const char *)data,
				     size),
	       i;

	if (n >= sizeof(out) || strlen(out) != n)
		abort();
	for (i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 ||
		    (unsigned char)out[i] > 0x7e)
			abort();
}

static struct dns_msg m;
static char names[DNS_MSG_RR_MAX][DNS_NAME_TEXT_MAX + 1];
static struct mx_record recs[DNS_MSG_RR_MAX];
static struct mx_decision d;
static struct mx_plan plan;
static uint8_t v4[DNS_MSG_RR_MAX][4];
static uint8_t v6[DNS_MSG_RR_MAX][16];

static void
check_name(uint16_t off)
{
	char buf[DNS_NAME_TEXT_MAX + 1];
	uint8_t wire[DNS_NAME_MAX];
	size_t n = dns_name_text(&m, off, buf, sizeof(buf)), i;

	if (n == 0 || n > DNS_NAME_TEXT_MAX || strlen(buf) != n)
		abort();
	for (i = 0; i < n; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789-_*.\\",
			   buf[i]) == NULL)
			abort();
	if (dns_name_wire(&m, off, wire) == 0)
		abort();
}

static void
check_rr(const struct dns_rr *rr)
{
	uint8_t buf[64];
	size_t pos = 0, n, sum = 0;
	const uint8_t *s;

	check_name(rr->name);
	if ((size_t)rr->rdata + rr->rdlength > m.len)
		abort();
	if (rr->class != DNS_C_IN)
		return;
	if (rr->type == DNS_T_MX)
		check_name(rr->rd.mx.exchange);
	if (rr->type == DNS_T_CNAME || rr->type == DNS_T_NS ||
	    rr->type == DNS_T_PTR)
		check_name(rr->rd.target);
	if (rr->type == DNS_T_SOA) {
		check_name(rr->rd.soa.mname);
		check_name(rr->rd.soa.rname);
	}
	if (rr->type == DNS_T_TXT) {
		while (dns_txt_next(&m, rr, &pos, &s, &n))
			sum += n;
		if (sum != rr->rd.txt.total ||
		    dns_txt_concat(&m, rr, buf, sizeof(buf)) != sum)
			abort();
	}
}

static void
check_plan(void)
{
	size_t i;

	if (plan.n > MX_ADDR_MAX || strlen(plan.explain) >= MX_EXPLAIN_SIZE)
		abort();
	for (i = 0; i < plan.n; i++)
		if (plan.t[i].host >= d.nhosts ||
		    (plan.t[i].family != 4 && plan.t[i].family != 6))
			abort();
	if ((plan.action == MX_DELIVER) != (plan.n > 0))
		abort();
}

static void
run_mx(uint64_t seed)
{
	static const char *const self[] = {"mx1.example.com"};
	static struct mx_addrs per[MX_HOSTS_MAX];
	struct dns_chain c;
	struct mx_query q = {
	    .domain = "example.com", .self = self, .nself = 1, .seed = seed};
	const struct dns_rr *rr;
	struct mx_self_addrs me;
	size_t i, j, n4 = 0, n6 = 0;

	if (dns_msg_chain(&m, DNS_T_MX, &c) != DNS_OK)
		return;
	for (i = 0; i < c.n; i++) {
		rr = &m.rr[DNS_SEC_ANSWER][c.idx[i]];
		dns_name_text(&m, rr->rd.mx.exchange, names[i],
			      sizeof(names[i]));
		recs[i].preference = rr->rd.mx.preference;
		recs[i].exchange = names[i];
		recs[i].cname = (seed >> i) & 1;
	}
	q.records = recs;
	q.nrecords = c.n;
	q.lookup = c.n > 0 ? MX_L_ANSWER : (enum mx_lookup)(seed % 5);
	mx_decide(&q, &d);
	if (d.nhosts > MX_HOSTS_MAX ||
	    (d.action == MX_DELIVER) != (d.nhosts > 0))
		abort();
	if (d.action != MX_DELIVER && d.status == NULL)
		abort();
	for (i = 0; i < DNS_SECTIONS * DNS_MSG_RR_MAX; i++) {
		rr = &m.rr[i / DNS_MSG_RR_MAX][i % DNS_MSG_RR_MAX];
		if (i % DNS_MSG_RR_MAX >= m.nrr[i / DNS_MSG_RR_MAX])
			continue;
		if (rr->type == DNS_T_A && rr->class == DNS_C_IN)
			memcpy(v4[n4++], rr->rd.a, 4);
		if (rr->type == DNS_T_AAAA && rr->class == DNS_C_IN &&
		    n6 < DNS_MSG_RR_MAX)
			memcpy(v6[n6++], rr->rd.aaaa, 16);
		if (n4 == DNS_MSG_RR_MAX)
			break;
	}
	for (i = 0; i < d.nhosts; i++) {
		per[i].a = (enum mx_lookup)((seed >> (2 * i)) % 5);
		per[i].aaaa = (enum mx_lookup)((seed >> (2 * i + 1)) % 5);
		per[i].detail = NULL;
		per[i].v4 = (const uint8_t(*)[4])v4;
		per[i].nv4 = (n4 >> (i % 3)) * (per[i].a == MX_L_ANSWER);
		per[i].v6 = (const uint8_t(*)[16])v6;
		per[i].nv6 = (n6 >> (i % 2)) * (per[i].aaaa == MX_L_ANSWER);
	}
	mx_plan_addresses(&d, per, (enum mx_ip_policy)(seed % 5),
			  (size_t)(seed >> 8) % 80, &plan);
	check_plan();
	/* the same with some of the addresses ours (step 2b) */
	me.v4 = (const uint8_t(*)[4])v4 + n4 / 2;
	me.nv4 = n4 - n4 / 2;
	me.v6 = (const uint8_t(*)[16])v6 + n6 / 2;
	me.nv6 = n6 - n6 / 2;
	mx_plan_addresses_self(&d, per, &me, (enum mx_ip_policy)(seed % 5),
			       (size_t)(seed >> 8) % 80, &plan);
	check_plan();
	/* no planned address is one of ours */
	for (i = 0; i < plan.n; i++)
		for (j = 0; j < (plan.t[i].family == 4 ? me.nv4 : me.nv6); j++)
			if (memcmp(plan.t[i].addr,
				   plan.t[i].family == 4 ? me.v4[j] : me.v6[j],
				   plan.t[i].family == 4 ? 4 : 16) == 0)
				abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned s, i;
	uint64_t seed = 0;

	check_text(data, size);
	if (dns_msg_parse(data, size, &m) != DNS_OK)
		return 0;
	for (i = 0; i < m.nq; i++)
		check_name(m.q[i].name);
	for (s = 0; s < DNS_SECTIONS; s++)
		for (i = 0; i < m.nrr[s]; i++)
			check_rr(&m.rr[s][i]);
	for (i = 0; i < 8 && i < size; i++)
		seed = seed << 8 | data[size - 1 - i];
	run_mx(seed);
	return 0;
}
