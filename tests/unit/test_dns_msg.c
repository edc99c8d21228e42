/* test_dns_msg — DNS message parser (mail/dns_msg.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/dns_msg.h"

/* One message is about 30 KiB: keep it off the test stack. */
static struct dns_msg m;

#define EXAMPLE_COM 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0
#define HDR(flags, qd, an, ns, ar)                                             \
	0x12, 0x34, (flags) >> 8, (flags)&0xff, 0, qd, 0, an, 0, ns, 0, ar

/* --- a tiny builder for longer packets (tests only) --- */
struct pb {
	uint8_t b[DNS_PKT_MAX];
	size_t n;
};

static void
pb_u8(struct pb *p, unsigned v)
{
	p->b[p->n++] = (uint8_t)v;
}

static void
pb_u16(struct pb *p, unsigned v)
{
	pb_u8(p, v >> 8);
	pb_u8(p, v & 0xff);
}

static void
pb_u32(struct pb *p, uint32_t v)
{
	pb_u16(p, v >> 16);
	pb_u16(p, v & 0xffff);
}

static void
pb_hdr(struct pb *p, unsigned flags, unsigned qd, unsigned an, unsigned ns,
       unsigned ar)
{
	p->n = 0;
	pb_u16(p, 0xbeef);
	pb_u16(p, flags);
	pb_u16(p, qd);
	pb_u16(p, an);
	pb_u16(p, ns);
	pb_u16(p, ar);
}

/* Uncompressed name from "a.b.c" ("" = root); returns its offset. */
static uint16_t
pb_name(struct pb *p, const char *s)
{
	size_t off = p->n, l;
	const char *dot;

	while (*s != '\0') {
		dot = strchr(s, '.');
		l = dot != NULL ? (size_t)(dot - s) : strlen(s);
		pb_u8(p, (unsigned)l);
		memcpy(p->b + p->n, s, l);
		p->n += l;
		s += l + (dot != NULL);
	}
	pb_u8(p, 0);
	return (uint16_t)off;
}

/* Owner, type, class IN, ttl; returns where rdlength goes. */
static size_t
pb_rr(struct pb *p, const char *owner, unsigned type, uint32_t ttl)
{
	size_t at;

	pb_name(p, owner);
	pb_u16(p, type);
	pb_u16(p, DNS_C_IN);
	pb_u32(p, ttl);
	at = p->n;
	pb_u16(p, 0);
	return at;
}

static void
pb_end(struct pb *p, size_t at)
{
	size_t len = p->n - at - 2;

	p->b[at] = (uint8_t)(len >> 8);
	p->b[at + 1] = (uint8_t)(len & 0xff);
}

static struct pb pk;

static const char *
text(uint16_t off)
{
	static char buf[DNS_NAME_TEXT_MAX + 1];

	dns_name_text(&m, off, buf, sizeof(buf));
	return buf;
}

/* --- well-formed answers --- */

/* example.com MX: two MX with compression, glue A in additional. */
static const uint8_t mx_answer[] = {
    HDR(0x8180, 1, 2, 0, 1),
    EXAMPLE_COM,
    0,
    15,
    0,
    1, /* question at 12 */
    /* 29: */ 0xc0,
    12,
    0,
    15,
    0,
    1,
    0,
    0,
    0x0e,
    0x10,
    0,
    8, /* */
    0,
    10,
    3,
    'm',
    'x',
    '1',
    0xc0,
    12, /* rdata at 41, name at 43 */
    /* 49: */ 0xc0,
    12,
    0,
    15,
    0,
    1,
    0,
    0,
    0x0e,
    0x10,
    0,
    8, /* */
    0,
    20,
    3,
    'M',
    'X',
    '2',
    0xc0,
    12,
    /* 69: */ 0xc0,
    43,
    0,
    1,
    0,
    1,
    0,
    0,
    0,
    60,
    0,
    4,
    192,
    0,
    2,
    1,
};

static void
test_mx_answer(void **state)
{
	const struct dns_rr *rr;
	struct dns_chain c;

	assert_int_equal(dns_msg_parse(mx_answer, sizeof(mx_answer), &m),
			 DNS_OK);
	assert_int_equal(m.id, 0x1234);
	assert_true(m.qr);
	assert_true(m.rd);
	assert_true(m.ra);
	assert_false(m.tc);
	assert_false(m.aa);
	assert_int_equal(m.rcode, DNS_R_NOERROR);
	assert_int_equal(m.nq, 1);
	assert_string_equal(text(m.q[0].name), "example.com");
	assert_int_equal(m.q[0].type, DNS_T_MX);
	assert_int_equal(m.nrr[DNS_SEC_ANSWER], 2);
	assert_int_equal(m.nrr[DNS_SEC_AUTHORITY], 0);
	assert_int_equal(m.nrr[DNS_SEC_ADDITIONAL], 1);
	rr = &m.rr[DNS_SEC_ANSWER][0];
	assert_int_equal(rr->type, DNS_T_MX);
	assert_int_equal(rr->ttl, 3600);
	assert_int_equal(rr->rd.mx.preference, 10);
	assert_string_equal(text(rr->name), "example.com");
	assert_string_equal(text(rr->rd.mx.exchange), "mx1.example.com");
	rr = &m.rr[DNS_SEC_ANSWER][1];
	assert_int_equal(rr->rd.mx.preference, 20);
	assert_string_equal(text(rr->rd.mx.exchange), "mx2.example.com");
	rr = &m.rr[DNS_SEC_ADDITIONAL][0];
	assert_string_equal(text(rr->name), "mx1.example.com");
	assert_int_equal(rr->type, DNS_T_A);
	assert_memory_equal(rr->rd.a, ((uint8_t[]){192, 0, 2, 1}), 4);
	assert_int_equal(m.trailing, 0);
	assert_true(
	    dns_name_equal(&m, m.q[0].name, m.rr[DNS_SEC_ANSWER][0].name));
	assert_false(dns_name_equal(&m, m.q[0].name, 43));
	assert_int_equal(dns_msg_chain(&m, DNS_T_MX, &c), DNS_OK);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.hops, 0);
	assert_int_equal(c.idx[0], 0);
	assert_int_equal(c.idx[1], 1);
}

static void
test_truncated_tc(void **state)
{
	static const uint8_t tc[] = {
	    HDR(0x8380, 1, 0, 0, 0), EXAMPLE_COM, 0, 15, 0, 1};
	static const uint8_t tc_cut[] = {
	    HDR(0x8380, 1, 3, 0, 0), EXAMPLE_COM, 0, 15, 0, 1};

	assert_int_equal(dns_msg_parse(tc, sizeof(tc), &m), DNS_OK);
	assert_true(m.tc);
	assert_int_equal(m.nrr[DNS_SEC_ANSWER], 0);
	/* A cut packet that still claims its answers is an error. */
	assert_int_equal(dns_msg_parse(tc_cut, sizeof(tc_cut), &m),
			 DNS_E_TRUNCATED);
	assert_true(m.tc);
	assert_int_equal(m.nq, 0);
}

/* nx.example.com MX -> NXDOMAIN, SOA of example.com in authority. */
static const uint8_t nxdomain[] = {
    HDR(0x8583, 1, 0, 1, 0),
    2,
    'n',
    'x',
    EXAMPLE_COM,
    0,
    15,
    0,
    1, /* example.com at 15 */
    /* 32: */ 0xc0,
    15,
    0,
    6,
    0,
    1,
    0,
    0,
    0x01,
    0x2c,
    0,
    39, /* */
    3,
    'n',
    's',
    '1',
    0xc0,
    15, /* */
    10,
    'h',
    'o',
    's',
    't',
    'm',
    'a',
    's',
    't',
    'e',
    'r',
    0xc0,
    15, /* */
    0,
    0,
    0,
    1,
    0,
    0,
    0x1c,
    0x20,
    0,
    0,
    0x0e,
    0x10,
    0,
    9,
    0x3a,
    0x80, /* */
    0,
    0,
    0,
    60,
};

static void
test_nxdomain_soa(void **state)
{
	const struct dns_rr *soa;
	struct dns_chain c;

	assert_int_equal(dns_msg_parse(nxdomain, sizeof(nxdomain), &m), DNS_OK);
	assert_int_equal(m.rcode, DNS_R_NXDOMAIN);
	assert_true(m.aa);
	assert_string_equal(dns_rcode_name(m.rcode), "NXDOMAIN");
	assert_string_equal(text(m.q[0].name), "nx.example.com");
	assert_int_equal(m.nrr[DNS_SEC_AUTHORITY], 1);
	soa = &m.rr[DNS_SEC_AUTHORITY][0];
	assert_int_equal(soa->type, DNS_T_SOA);
	assert_int_equal(soa->ttl, 300);
	assert_string_equal(text(soa->name), "example.com");
	assert_string_equal(text(soa->rd.soa.mname), "ns1.example.com");
	assert_string_equal(text(soa->rd.soa.rname), "hostmaster.example.com");
	assert_int_equal(soa->rd.soa.serial, 1);
	assert_int_equal(soa->rd.soa.refresh, 7200);
	assert_int_equal(soa->rd.soa.retry, 3600);
	assert_int_equal(soa->rd.soa.expire, 604800);
	assert_int_equal(soa->rd.soa.minimum, 60);
	assert_int_equal(dns_msg_chain(&m, DNS_T_MX, &c), DNS_OK);
	assert_int_equal(c.n, 0);
}

static void
test_nodata(void **state)
{
	struct dns_chain c;
	size_t at;

	pb_hdr(&pk, 0x8580, 1, 0, 1, 0);
	pb_name(&pk, "www.example.com");
	pb_u16(&pk, DNS_T_MX);
	pb_u16(&pk, DNS_C_IN);
	at = pb_rr(&pk, "example.com", DNS_T_SOA, 3600);
	pb_name(&pk, "ns.example.com");
	pb_name(&pk, "root.example.com");
	pb_u32(&pk, 2024010101);
	pb_u32(&pk, 1);
	pb_u32(&pk, 2);
	pb_u32(&pk, 3);
	pb_u32(&pk, 900);
	pb_end(&pk, at);
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_OK);
	assert_int_equal(m.rcode, DNS_R_NOERROR);
	assert_int_equal(m.nrr[DNS_SEC_ANSWER], 0);
	assert_int_equal(m.rr[DNS_SEC_AUTHORITY][0].rd.soa.minimum, 900);
	assert_int_equal(m.rr[DNS_SEC_AUTHORITY][0].rd.soa.serial, 2024010101);
	assert_int_equal(dns_msg_chain(&m, DNS_T_MX, &c), DNS_OK);
	assert_int_equal(c.n, 0);
}

static void
test_cname_chain(void **state)
{
	struct dns_chain c;
	size_t at;

	pb_hdr(&pk, 0x8180, 1, 4, 0, 0);
	pb_name(&pk, "WWW.Example.COM");
	pb_u16(&pk, DNS_T_A);
	pb_u16(&pk, DNS_C_IN);
	at = pb_rr(&pk, "www.example.com", DNS_T_CNAME, 300);
	pb_name(&pk, "web.example.com");
	pb_end(&pk, at);
	at = pb_rr(&pk, "web.example.com", DNS_T_CNAME, 300);
	pb_name(&pk, "host.example.net");
	pb_end(&pk, at);
	at = pb_rr(&pk, "other.example.net", DNS_T_A, 300); /* not ours */
	pb_u32(&pk, 0xc0000209);
	pb_end(&pk, at);
	at = pb_rr(&pk, "HOST.example.net", DNS_T_A, 300);
	pb_u32(&pk, 0xc0000207);
	pb_end(&pk, at);
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_OK);
	assert_int_equal(dns_msg_chain(&m, DNS_T_A, &c), DNS_OK);
	assert_int_equal(c.hops, 2);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.idx[0], 3);
	assert_string_equal(text(c.final), "host.example.net");
	assert_memory_equal(m.rr[DNS_SEC_ANSWER][3].rd.a,
			    ((uint8_t[]){192, 0, 2, 7}), 4);
	/* Asking for the CNAME itself does not follow. */
	assert_int_equal(dns_msg_chain(&m, DNS_T_CNAME, &c), DNS_OK);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.hops, 0);
}

static void
test_cname_loop(void **state)
{
	struct dns_chain c;
	size_t at;

	pb_hdr(&pk, 0x8180, 1, 2, 0, 0);
	pb_name(&pk, "a.example");
	pb_u16(&pk, DNS_T_MX);
	pb_u16(&pk, DNS_C_IN);
	at = pb_rr(&pk, "a.example", DNS_T_CNAME, 300);
	pb_name(&pk, "b.example");
	pb_end(&pk, at);
	at = pb_rr(&pk, "b.example", DNS_T_CNAME, 300);
	pb_name(&pk, "a.example");
	pb_end(&pk, at);
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_OK);
	assert_int_equal(dns_msg_chain(&m, DNS_T_MX, &c), DNS_E_CNAME_LOOP);
}

static void
test_txt_strings(void **state)
{
	const struct dns_rr *rr;
	const uint8_t *s;
	uint8_t buf[128];
	size_t at, pos = 0, n;

	pb_hdr(&pk, 0x8180, 1, 1, 0, 0);
	pb_name(&pk, "example.com");
	pb_u16(&pk, DNS_T_TXT);
	pb_u16(&pk, DNS_C_IN);
	at = pb_rr(&pk, "example.com", DNS_T_TXT, 60);
	pb_u8(&pk, 7);
	memcpy(pk.b + pk.n, "v=spf1 ", 7);
	pk.n += 7;
	pb_u8(&pk, 0); /* an empty string keeps its place */
	pb_u8(&pk, 4);
	memcpy(pk.b + pk.n, "-all", 4);
	pk.n += 4;
	pb_end(&pk, at);
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_OK);
	rr = &m.rr[DNS_SEC_ANSWER][0];
	assert_int_equal(rr->rd.txt.nstrings, 3);
	assert_int_equal(rr->rd.txt.total, 11);
	assert_true(dns_txt_next(&m, rr, &pos, &s, &n));
	assert_int_equal(n, 7);
	assert_memory_equal(s, "v=spf1 ", 7);
	assert_true(dns_txt_next(&m, rr, &pos, &s, &n));
	assert_int_equal(n, 0);
	assert_true(dns_txt_next(&m, rr, &pos, &s, &n));
	assert_int_equal(n, 4);
	assert_memory_equal(s, "-all", 4);
	assert_false(dns_txt_next(&m, rr, &pos, &s, &n));
	assert_int_equal(dns_txt_concat(&m, rr, buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "v=spf1 -all", 11);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(dns_txt_concat(&m, rr, buf, 5), 11);
	assert_memory_equal(buf, "v=spfx", 6);
}

static void
test_aaaa(void **state)
{
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
				       0,    0,	   0,	 0,    0, 0, 0, 1};
	size_t at;

	pb_hdr(&pk, 0x8180, 1, 1, 0, 0);
	pb_name(&pk, "mx1.example.com");
	pb_u16(&pk, DNS_T_AAAA);
	pb_u16(&pk, DNS_C_IN);
	at = pb_rr(&pk, "mx1.example.com", DNS_T_AAAA, 0x80000000u);
	memcpy(pk.b + pk.n, v6, 16);
	pk.n += 16;
	pb_end(&pk, at);
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_OK);
	assert_int_equal(m.rr[DNS_SEC_ANSWER][0].type, DNS_T_AAAA);
	assert_memory_equal(m.rr[DNS_SEC_ANSWER][0].rd.aaaa, v6, 16);
	/* RFC 2181 §8: a TTL with the top bit set means 0. */
	assert_int_equal(m.rr[DNS_SEC_ANSWER][0].ttl, 0);
	/* AAAA of 4 octets is malformed. */
	pk.b[at + 1] = 4;
	pk.n = at + 2 + 4;
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_E_RDATA);
}

static void
test_unknown_type_raw(void **state)
{
	size_t at;

	pb_hdr(&pk, 0x8180, 1, 1, 0, 1);
	pb_name(&pk, "example.com");
	pb_u16(&pk, 99);
	pb_u16(&pk, DNS_C_IN);
	at = pb_rr(&pk, "example.com", 99, 60);
	pb_u16(&pk, 0xabcd);
	pb_u8(&pk, 0xff);
	pb_end(&pk, at);
	pb_name(&pk, ""); /* EDNS OPT: root owner, class = UDP size */
	pb_u16(&pk, DNS_T_OPT);
	pb_u16(&pk, 1232);
	pb_u32(&pk, 0);
	pb_u16(&pk, 0);
	pb_u8(&pk, 0); /* one trailing octet */
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_OK);
	assert_int_equal(m.rr[DNS_SEC_ANSWER][0].type, 99);
	assert_int_equal(m.rr[DNS_SEC_ANSWER][0].rdlength, 3);
	assert_int_equal(pk.b[m.rr[DNS_SEC_ANSWER][0].rdata], 0xab);
	assert_int_equal(m.rr[DNS_SEC_ADDITIONAL][0].type, DNS_T_OPT);
	assert_int_equal(m.rr[DNS_SEC_ADDITIONAL][0].class, 1232);
	assert_string_equal(text(m.rr[DNS_SEC_ADDITIONAL][0].name), ".");
	assert_int_equal(m.trailing, 1);
}

static void
test_escaping(void **state)
{
	static const uint8_t odd[] = {
	    HDR(0x8180, 1, 0, 0, 0),
	    8,
	    'A',
	    '.',
	    'b',
	    ' ',
	    0xff,
	    '\r',
	    '\n',
	    '\\',
	    3,
	    'C',
	    '_',
	    '*',
	    0,
	    0,
	    1,
	    0,
	    1,
	};
	char small[8];

	assert_int_equal(dns_msg_parse(odd, sizeof(odd), &m), DNS_OK);
	assert_string_equal(text(m.q[0].name),
			    "a\\046b\\032\\255\\013\\010\\092.c_*");
	/* A short buffer never splits an escape. */
	assert_int_equal(dns_name_text(&m, m.q[0].name, small, sizeof(small)),
			 6);
	assert_string_equal(small, "a\\046b");
}

static void
test_dropped_past_limit(void **state)
{
	size_t at;
	unsigned i;

	pb_hdr(&pk, 0x8180, 1, 300, 0, 0);
	pb_name(&pk, "many.example");
	pb_u16(&pk, DNS_T_A);
	pb_u16(&pk, DNS_C_IN);
	for (i = 0; i < 300; i++) {
		pb_u16(&pk, 0xc00c);
		pb_u16(&pk, DNS_T_A);
		pb_u16(&pk, DNS_C_IN);
		pb_u32(&pk, 60);
		at = pk.n;
		pb_u16(&pk, 0);
		pb_u32(&pk, 0x0a000000u + i);
		pb_end(&pk, at);
	}
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_OK);
	assert_int_equal(m.ancount, 300);
	assert_int_equal(m.nrr[DNS_SEC_ANSWER], DNS_MSG_RR_MAX);
	assert_int_equal(m.dropped[DNS_SEC_ANSWER], 300 - DNS_MSG_RR_MAX);
	/* ... but the dropped ones are still validated. */
	pk.b[pk.n - 5] = 5;
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_E_TRUNCATED);
}

/* --- malformed --- */

static void
test_short_and_big(void **state)
{
	static uint8_t big[DNS_PKT_MAX + 1];

	assert_int_equal(dns_msg_parse(mx_answer, 11, &m), DNS_E_SHORT);
	assert_int_equal(dns_msg_parse(NULL, 0, &m), DNS_E_SHORT);
	assert_int_equal(dns_msg_parse(big, sizeof(big), &m), DNS_E_TOO_BIG);
	/* Every prefix of a good answer fails cleanly. */
	for (size_t n = 12; n < sizeof(mx_answer); n++)
		assert_int_equal(dns_msg_parse(mx_answer, n, &m),
				 DNS_E_TRUNCATED);
}

static void
test_pointer_loop(void **state)
{
	static const uint8_t self[] = {
	    HDR(0x8180, 1, 0, 0, 0), 0xc0, 12, 0, 1, 0, 1};
	static const uint8_t back[] = {
	    HDR(0x8180, 1, 0, 0, 0), 1, 'a', 0xc0, 12, 0, 1, 0, 1};
	/* Question ok; the answer owner jumps to 29, whose label run then
	 * points forward to 31 and back: a loop through a forward pointer. */
	static const uint8_t two[] = {
	    HDR(0x8180, 1, 1, 0, 0), EXAMPLE_COM, 0, 1, 0, 1,
	    /* 29 */ 0xc0,	     31,
	    /* 31 */ 0xc0,	     29,	  0, 1, 0, 1, 0, 0, 0, 1, 0, 0,
	};

	assert_int_equal(dns_msg_parse(self, sizeof(self), &m),
			 DNS_E_BAD_POINTER);
	assert_int_equal(dns_msg_parse(back, sizeof(back), &m),
			 DNS_E_BAD_POINTER);
	assert_int_equal(dns_msg_parse(two, sizeof(two), &m),
			 DNS_E_BAD_POINTER);
}

static void
test_pointer_bad_target(void **state)
{
	static const uint8_t past_end[] = {HDR(0x8180, 1, 1, 0, 0),
					   EXAMPLE_COM,
					   0,
					   1,
					   0,
					   1,
					   0xff,
					   0xff,
					   0,
					   1,
					   0,
					   1,
					   0,
					   0,
					   0,
					   1,
					   0,
					   0};
	static const uint8_t header[] = {HDR(0x8180, 1, 1, 0, 0),
					 EXAMPLE_COM,
					 0,
					 1,
					 0,
					 1,
					 0xc0,
					 4,
					 0,
					 1,
					 0,
					 1,
					 0,
					 0,
					 0,
					 1,
					 0,
					 0};
	static const uint8_t forward[] = {
	    HDR(0x8180, 1, 0, 0, 0), 0xc0, 14, 1, 'a', 0, 0, 1, 0, 1};
	static const uint8_t cut[] = {HDR(0x8180, 1, 0, 0, 0), 0xc0};

	assert_int_equal(dns_msg_parse(past_end, sizeof(past_end), &m),
			 DNS_E_BAD_POINTER);
	assert_int_equal(dns_msg_parse(header, sizeof(header), &m),
			 DNS_E_BAD_POINTER);
	assert_int_equal(dns_msg_parse(forward, sizeof(forward), &m),
			 DNS_E_BAD_POINTER);
	assert_int_equal(dns_msg_parse(cut, sizeof(cut), &m), DNS_E_TRUNCATED);
}

static void
test_label_too_long(void **state)
{
	uint8_t p[12 + 1 + 64 + 1 + 4];
	size_t i;

	memset(p, 0, sizeof(p));
	p[5] = 1; /* qdcount */
	p[12] = 64;
	for (i = 0; i < 64; i++)
		p[13 + i] = 'a';
	assert_int_equal(dns_msg_parse(p, sizeof(p), &m), DNS_E_BAD_LABEL);
	/* 63 is fine: drop one octet. */
	p[12] = 63;
	p[76] = 0;
	assert_int_equal(dns_msg_parse(p, sizeof(p) - 1, &m), DNS_OK);
	assert_int_equal(strlen(text(m.q[0].name)), 63);
}

/* Question of labels of the given sizes. */
static void
long_name(const unsigned *labels, size_t n)
{
	size_t i, j;

	pb_hdr(&pk, 0x8180, 1, 0, 0, 0);
	for (i = 0; i < n; i++) {
		pb_u8(&pk, labels[i]);
		for (j = 0; j < labels[i]; j++)
			pb_u8(&pk, 'a' + (unsigned)i);
	}
	pb_u8(&pk, 0);
	pb_u16(&pk, DNS_T_A);
	pb_u16(&pk, DNS_C_IN);
}

static void
test_name_too_long(void **state)
{
	static const unsigned ok[] = {63, 63, 63, 61};	/* 255 octets */
	static const unsigned bad[] = {63, 63, 63, 62}; /* 256 octets */

	long_name(ok, 4);
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_OK);
	assert_int_equal(strlen(text(m.q[0].name)), 253);
	long_name(bad, 4);
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_E_NAME_TOO_LONG);
}

static void
test_name_too_long_compressed(void **state)
{
	static const unsigned ok[] = {63, 63, 63, 61};
	size_t at;

	long_name(ok, 4); /* question: a 255-octet name at 12 */
	pk.b[7] = 1;	  /* one answer */
	pb_u8(&pk, 1);
	pb_u8(&pk, 'x');
	pb_u16(&pk, 0xc00c); /* x + 255 = 257 octets */
	pb_u16(&pk, DNS_T_A);
	pb_u16(&pk, DNS_C_IN);
	pb_u32(&pk, 1);
	at = pk.n;
	pb_u16(&pk, 0);
	pb_u32(&pk, 1);
	pb_end(&pk, at);
	assert_int_equal(dns_msg_parse(pk.b, pk.n, &m), DNS_E_NAME_TOO_LONG);
}

static void
test_rdlength_past_end(void **state)
{
	static const uint8_t p[] = {HDR(0x8180, 1, 1, 0, 0),
				    EXAMPLE_COM,
				    0,
				    1,
				    0,
				    1,
				    0xc0,
				    12,
				    0,
				    1,
				    0,
				    1,
				    0,
				    0,
				    0,
				    60,
				    0,
				    4,
				    192,
				    0};

	assert_int_equal(dns_msg_parse(p, sizeof(p), &m), DNS_E_TRUNCATED);
}

static void
test_rdata_mismatch(void **state)
{
	static const uint8_t a5[] = {HDR(0x8180, 1, 1, 0, 0),
				     EXAMPLE_COM,
				     0,
				     1,
				     0,
				     1,
				     0xc0,
				     12,
				     0,
				     1,
				     0,
				     1,
				     0,
				     0,
				     0,
				     60,
				     0,
				     5,
				     192,
				     0,
				     2,
				     1,
				     9};
	/* MX whose exchange runs past rdlength into the next octets. */
	static const uint8_t mxlong[] = {HDR(0x8180, 1, 1, 0, 0),
					 EXAMPLE_COM,
					 0,
					 15,
					 0,
					 1,
					 0xc0,
					 12,
					 0,
					 15,
					 0,
					 1,
					 0,
					 0,
					 0,
					 60,
					 0,
					 4,
					 0,
					 10,
					 1,
					 'a',
					 0};
	/* TXT whose string runs past rdlength. */
	static const uint8_t txt[] = {HDR(0x8180, 1, 1, 0, 0),
				      EXAMPLE_COM,
				      0,
				      16,
				      0,
				      1,
				      0xc0,
				      12,
				      0,
				      16,
				      0,
				      1,
				      0,
				      0,
				      0,
				      60,
				      0,
				      2,
				      5,
				      'a',
				      'b',
				      'c',
				      'd',
				      'e'};
	static const uint8_t txt0[] = {HDR(0x8180, 1, 1, 0, 0),
				       EXAMPLE_COM,
				       0,
				       16,
				       0,
				       1,
				       0xc0,
				       12,
				       0,
				       16,
				       0,
				       1,
				       0,
				       0,
				       0,
				       60,
				       0,
				       0};
	/* SOA with 19 octets of numbers. */
	static const uint8_t soa[] = {HDR(0x8180, 1, 1, 0, 0),
				      EXAMPLE_COM,
				      0,
				      6,
				      0,
				      1,
				      0xc0,
				      12,
				      0,
				      6,
				      0,
				      1,
				      0,
				      0,
				      0,
				      60,
				      0,
				      23,
				      0xc0,
				      12,
				      0xc0,
				      12,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0,
				      0};

	assert_int_equal(dns_msg_parse(a5, sizeof(a5), &m), DNS_E_RDATA);
	assert_int_equal(dns_msg_parse(mxlong, sizeof(mxlong), &m),
			 DNS_E_RDATA);
	assert_int_equal(dns_msg_parse(txt, sizeof(txt), &m), DNS_E_RDATA);
	assert_int_equal(dns_msg_parse(txt0, sizeof(txt0), &m), DNS_E_RDATA);
	assert_int_equal(dns_msg_parse(soa, sizeof(soa), &m), DNS_E_RDATA);
}

static void
test_counts_past_packet(void **state)
{
	uint8_t p[sizeof(mx_answer)];

	memcpy(p, mx_answer, sizeof(p));
	p[7] = 200; /* ancount */
	assert_int_equal(dns_msg_parse(p, sizeof(p), &m), DNS_E_TRUNCATED);
	memcpy(p, mx_answer, sizeof(p));
	p[4] = 0xff; /* qdcount 65281 */
	assert_int_equal(dns_msg_parse(p, sizeof(p), &m), DNS_E_TRUNCATED);
	assert_int_equal(m.nq, 0);
	assert_int_equal(m.nrr[DNS_SEC_ANSWER], 0);
}

static void
test_names_and_text(void **state)
{
	assert_string_equal(dns_type_name(DNS_T_MX), "MX");
	assert_string_equal(dns_type_name(4242), "TYPE");
	assert_string_equal(dns_rcode_name(2), "SERVFAIL");
	assert_string_equal(dns_rcode_name(15), "RCODE");
	assert_string_equal(dns_strerror(DNS_E_BAD_POINTER),
			    "compression pointer into the header, forward or "
			    "looping");
}

/* Presentation escapes in text for people: printable ones decoded,
 * others kept, raw controls and 8-bit octets escaped, bounded. */
static void
test_text_readable(void **state)
{
	char out[128];
	static const char why[] = "validation failure <a\\032b.example. MX "
				  "IN>: key\\009x \\092 \\256 \\07 end\\";

	(void)state;
	assert_int_equal(
	    dns_text_readable(out, sizeof(out), "DNSSEC\\032bogus", 100), 12);
	assert_string_equal(out, "DNSSEC bogus");
	dns_text_readable(out, sizeof(out), why, sizeof(why));
	assert_string_equal(out, "validation failure <a b.example. MX IN>: "
				 "key\\009x \\092 \\256 \\07 end\\");
	dns_text_readable(out, sizeof(out), "a\tb\r\nc\xc3\xa9", 100);
	assert_string_equal(out, "a\\009b\\013\\010c\\195\\169");
	/* n bounds the input; size bounds the output, escapes never cut */
	dns_text_readable(out, sizeof(out), "abc\\032def", 4);
	assert_string_equal(out, "abc\\");
	assert_int_equal(dns_text_readable(out, 6, "ab\tcd", 100), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(dns_text_readable(out, 1, "abc", 3), 0);
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mx_answer),
	    cmocka_unit_test(test_truncated_tc),
	    cmocka_unit_test(test_nxdomain_soa),
	    cmocka_unit_test(test_nodata),
	    cmocka_unit_test(test_cname_chain),
	    cmocka_unit_test(test_cname_loop),
	    cmocka_unit_test(test_txt_strings),
	    cmocka_unit_test(test_aaaa),
	    cmocka_unit_test(test_unknown_type_raw),
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_dropped_past_limit),
	    cmocka_unit_test(test_short_and_big),
	    cmocka_unit_test(test_pointer_loop),
	    cmocka_unit_test(test_pointer_bad_target),
	    cmocka_unit_test(test_label_too_long),
	    cmocka_unit_test(test_name_too_long),
	    cmocka_unit_test(test_name_too_long_compressed),
	    cmocka_unit_test(test_rdlength_past_end),
	    cmocka_unit_test(test_rdata_mismatch),
	    cmocka_unit_test(test_counts_past_packet),
	    cmocka_unit_test(test_names_and_text),
	    cmocka_unit_test(test_text_readable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
