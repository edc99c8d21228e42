/* dns_msg — DNS message parser; contract in dns_msg.h. */
#include <stdio.h>
#include <string.h>

#include "mail/dns_msg.h"

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint8_t
lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/*
 * Walk the name at off. *inl gets the octets the name occupies at off
 * (up to and including the first pointer, or the root label). If wire is
 * not NULL the lowercased uncompressed form goes there (DNS_NAME_MAX
 * octets) and its length into *wlen. Each pointer must point before the
 * label run it ends, so run strictly decreases and the walk terminates.
 */
static enum dns_err
name_walk(const uint8_t *p, size_t len, size_t off, size_t *inl, uint8_t *wire,
	  size_t *wlen)
{
	size_t pos = off, run = off, total = 0, i, t;
	bool jumped = false;
	uint8_t c;

	for (;;) {
		if (pos >= len)
			return DNS_E_TRUNCATED;
		c = p[pos];
		if ((c & 0xc0) == 0xc0) {
			if (pos + 1 >= len)
				return DNS_E_TRUNCATED;
			t = (size_t)(c & 0x3f) << 8 | p[pos + 1];
			if (t < DNS_HEADER_LEN || t >= run)
				return DNS_E_BAD_POINTER;
			if (!jumped)
				*inl = pos + 2 - off;
			jumped = true;
			pos = run = t;
			continue;
		}
		if ((c & 0xc0) != 0)
			return DNS_E_BAD_LABEL;
		if (total + c + 1 > DNS_NAME_MAX)
			return DNS_E_NAME_TOO_LONG;
		if (pos + 1 + c > len)
			return DNS_E_TRUNCATED;
		if (wire != NULL)
			for (i = 0; i <= c; i++)
				wire[total + i] = lower(p[pos + i]);
		total += (size_t)c + 1;
		if (c == 0)
			break;
		pos += (size_t)c + 1;
	}
	if (!jumped)
		*inl = pos + 1 - off;
	if (wlen != NULL)
		*wlen = total;
	return DNS_OK;
}

/* A name that must end exactly at end (rdata); returns its offset. */
static enum dns_err
rdata_name(const uint8_t *p, size_t len, size_t *pos, size_t end, uint16_t *off)
{
	size_t inl = 0;
	enum dns_err e = name_walk(p, len, *pos, &inl, NULL, NULL);

	if (e != DNS_OK)
		return e;
	if (inl > end - *pos)
		return DNS_E_RDATA;
	*off = (uint16_t)*pos;
	*pos += inl;
	return DNS_OK;
}

static enum dns_err
rd_txt(const uint8_t *p, size_t pos, size_t end, struct dns_rr *rr)
{
	unsigned n = 0, total = 0;

	if (pos == end)
		return DNS_E_RDATA;
	while (pos < end) {
		total += p[pos];
		pos += (size_t)p[pos] + 1;
		n++;
	}
	if (pos != end)
		return DNS_E_RDATA;
	rr->rd.txt.nstrings = (uint16_t)n;
	rr->rd.txt.total = (uint16_t)total;
	return DNS_OK;
}

static enum dns_err
rd_soa(const uint8_t *p, size_t len, size_t pos, size_t end, struct dns_rr *rr)
{
	enum dns_err e;

	if ((e = rdata_name(p, len, &pos, end, &rr->rd.soa.mname)) != DNS_OK ||
	    (e = rdata_name(p, len, &pos, end, &rr->rd.soa.rname)) != DNS_OK)
		return e == DNS_E_RDATA || e == DNS_E_TRUNCATED ? DNS_E_RDATA
								: e;
	if (end - pos != 20)
		return DNS_E_RDATA;
	rr->rd.soa.serial = get32(p + pos);
	rr->rd.soa.refresh = get32(p + pos + 4);
	rr->rd.soa.retry = get32(p + pos + 8);
	rr->rd.soa.expire = get32(p + pos + 12);
	rr->rd.soa.minimum = get32(p + pos + 16);
	return DNS_OK;
}

/* One name filling the whole rdata (after skip octets). */
static enum dns_err
rd_one_name(const uint8_t *p, size_t len, size_t pos, size_t end, uint16_t *off)
{
	enum dns_err e = rdata_name(p, len, &pos, end, off);

	if (e == DNS_E_TRUNCATED)
		return DNS_E_RDATA;
	if (e != DNS_OK)
		return e;
	return pos == end ? DNS_OK : DNS_E_RDATA;
}

static enum dns_err
rd_decode(const uint8_t *p, size_t len, struct dns_rr *rr)
{
	size_t pos = rr->rdata, end = pos + rr->rdlength;

	if (rr->class != DNS_C_IN)
		return DNS_OK;
	switch (rr->type) {
	case DNS_T_A:
		if (rr->rdlength != 4)
			return DNS_E_RDATA;
		memcpy(rr->rd.a, p + pos, 4);
		return DNS_OK;
	case DNS_T_AAAA:
		if (rr->rdlength != 16)
			return DNS_E_RDATA;
		memcpy(rr->rd.aaaa, p + pos, 16);
		return DNS_OK;
	case DNS_T_MX:
		if (rr->rdlength < 3)
			return DNS_E_RDATA;
		rr->rd.mx.preference = get16(p + pos);
		return rd_one_name(p, len, pos + 2, end, &rr->rd.mx.exchange);
	case DNS_T_CNAME:
	case DNS_T_PTR:
	case DNS_T_NS:
		return rd_one_name(p, len, pos, end, &rr->rd.target);
	case DNS_T_SOA:
		return rd_soa(p, len, pos, end, rr);
	case DNS_T_TXT:
		return rd_txt(p, pos, end, rr);
	default:
		return DNS_OK;
	}
}

static enum dns_err
parse_rr(const uint8_t *p, size_t len, size_t *pos, struct dns_rr *rr)
{
	size_t inl = 0;
	enum dns_err e = name_walk(p, len, *pos, &inl, NULL, NULL);
	const uint8_t *h;

	if (e != DNS_OK)
		return e;
	rr->name = (uint16_t)*pos;
	*pos += inl;
	if (len - *pos < 10)
		return DNS_E_TRUNCATED;
	h = p + *pos;
	rr->type = get16(h);
	rr->class = get16(h + 2);
	rr->ttl = get32(h + 4);
	if (rr->ttl > 0x7fffffffu)
		rr->ttl = 0;
	rr->rdlength = get16(h + 8);
	*pos += 10;
	if (len - *pos < rr->rdlength)
		return DNS_E_TRUNCATED;
	rr->rdata = (uint16_t)*pos;
	*pos += rr->rdlength;
	return rd_decode(p, len, rr);
}

static void
parse_header(const uint8_t *p, struct dns_msg *m)
{
	m->id = get16(p);
	m->flags = get16(p + 2);
	m->qr = (m->flags & 0x8000) != 0;
	m->opcode = (uint8_t)((m->flags >> 11) & 0xf);
	m->aa = (m->flags & 0x0400) != 0;
	m->tc = (m->flags & 0x0200) != 0;
	m->rd = (m->flags & 0x0100) != 0;
	m->ra = (m->flags & 0x0080) != 0;
	m->ad = (m->flags & 0x0020) != 0;
	m->cd = (m->flags & 0x0010) != 0;
	m->rcode = (uint8_t)(m->flags & 0xf);
	m->qdcount = get16(p + 4);
	m->ancount = get16(p + 6);
	m->nscount = get16(p + 8);
	m->arcount = get16(p + 10);
}

static enum dns_err
parse_questions(const uint8_t *p, size_t len, size_t *pos, struct dns_msg *m)
{
	struct dns_question q;
	size_t inl = 0;
	enum dns_err e;
	unsigned i;

	for (i = 0; i < m->qdcount; i++) {
		if ((e = name_walk(p, len, *pos, &inl, NULL, NULL)) != DNS_OK)
			return e;
		q.name = (uint16_t)*pos;
		*pos += inl;
		if (len - *pos < 4)
			return DNS_E_TRUNCATED;
		q.type = get16(p + *pos);
		q.class = get16(p + *pos + 2);
		*pos += 4;
		if (m->nq < DNS_MSG_QD_MAX)
			m->q[m->nq++] = q;
		else
			m->dropped[DNS_SECTIONS]++;
	}
	return DNS_OK;
}

static enum dns_err
parse_section(const uint8_t *p, size_t len, size_t *pos, struct dns_msg *m,
	      int sec, unsigned count)
{
	struct dns_rr rr;
	enum dns_err e;
	unsigned i;

	for (i = 0; i < count; i++) {
		memset(&rr, 0, sizeof(rr));
		if ((e = parse_rr(p, len, pos, &rr)) != DNS_OK)
			return e;
		if (m->nrr[sec] < DNS_MSG_RR_MAX)
			m->rr[sec][m->nrr[sec]++] = rr;
		else
			m->dropped[sec]++;
	}
	return DNS_OK;
}

static enum dns_err
parse_body(const uint8_t *p, size_t len, struct dns_msg *m)
{
	size_t pos = DNS_HEADER_LEN;
	unsigned counts[DNS_SECTIONS] = {m->ancount, m->nscount, m->arcount};
	enum dns_err e;
	int s;

	if ((e = parse_questions(p, len, &pos, m)) != DNS_OK)
		return e;
	for (s = 0; s < DNS_SECTIONS; s++)
		if ((e = parse_section(p, len, &pos, m, s, counts[s])) !=
		    DNS_OK)
			return e;
	m->trailing = len - pos;
	return DNS_OK;
}

enum dns_err
dns_msg_parse(const uint8_t *pkt, size_t len, struct dns_msg *out)
{
	enum dns_err e;

	memset(out, 0, sizeof(*out));
	if (pkt == NULL || len < DNS_HEADER_LEN)
		return DNS_E_SHORT;
	if (len > DNS_PKT_MAX)
		return DNS_E_TOO_BIG;
	parse_header(pkt, out);
	out->pkt = pkt;
	out->len = len;
	if ((e = parse_body(pkt, len, out)) != DNS_OK) {
		out->nq = 0;
		memset(out->nrr, 0, sizeof(out->nrr));
		memset(out->dropped, 0, sizeof(out->dropped));
		out->pkt = NULL;
		out->len = 0;
	}
	return e;
}

size_t
dns_name_wire(const struct dns_msg *m, uint16_t off, uint8_t *wire)
{
	size_t inl = 0, wlen = 0;

	if (m->pkt == NULL ||
	    name_walk(m->pkt, m->len, off, &inl, wire, &wlen) != DNS_OK)
		return 0;
	return wlen;
}

static bool
plain_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_' || c == '*';
}

/* Append one octet of a label; false when it does not fit. */
static bool
put_octet(char *dst, size_t size, size_t *n, uint8_t c)
{
	if (plain_char(c)) {
		if (*n + 1 >= size)
			return false;
		dst[(*n)++] = (char)c;
		return true;
	}
	if (*n + 4 >= size)
		return false;
	dst[(*n)++] = '\\';
	dst[(*n)++] = (char)('0' + c / 100);
	dst[(*n)++] = (char)('0' + c / 10 % 10);
	dst[(*n)++] = (char)('0' + c % 10);
	return true;
}

size_t
dns_name_text(const struct dns_msg *m, uint16_t off, char *dst, size_t size)
{
	uint8_t wire[DNS_NAME_MAX];
	size_t wlen, i = 0, j, n = 0;

	if (size == 0)
		return 0;
	dst[0] = '\0';
	if ((wlen = dns_name_wire(m, off, wire)) == 0)
		return 0;
	if (wlen == 1) {
		if (size > 1)
			dst[n++] = '.';
		dst[n] = '\0';
		return n;
	}
	while (i < wlen && wire[i] != 0) {
		if (i > 0) {
			if (n + 1 >= size)
				break;
			dst[n++] = '.';
		}
		for (j = 1; j <= wire[i]; j++)
			if (!put_octet(dst, size, &n, wire[i + j]))
				goto out;
		i += (size_t)wire[i] + 1;
	}
out:
	dst[n] = '\0';
	return n;
}

static bool
wire_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen > 0 && alen == blen && memcmp(a, b, alen) == 0;
}

bool
dns_name_equal(const struct dns_msg *m, uint16_t a, uint16_t b)
{
	uint8_t wa[DNS_NAME_MAX], wb[DNS_NAME_MAX];
	size_t la = dns_name_wire(m, a, wa), lb = dns_name_wire(m, b, wb);

	return wire_equal(wa, la, wb, lb);
}

/* Index of the first answer CNAME owned by cur, or -1. */
static int
find_cname(const struct dns_msg *m, const uint8_t *cur, size_t clen)
{
	uint8_t w[DNS_NAME_MAX];
	const struct dns_rr *rr;
	unsigned i;

	for (i = 0; i < m->nrr[DNS_SEC_ANSWER]; i++) {
		rr = &m->rr[DNS_SEC_ANSWER][i];
		if (rr->type == DNS_T_CNAME && rr->class == DNS_C_IN &&
		    wire_equal(cur, clen, w, dns_name_wire(m, rr->name, w)))
			return (int)i;
	}
	return -1;
}

static void
collect(const struct dns_msg *m, uint16_t qtype, const uint8_t *cur,
	size_t clen, struct dns_chain *out)
{
	uint8_t w[DNS_NAME_MAX];
	const struct dns_rr *rr;
	unsigned i;

	for (i = 0; i < m->nrr[DNS_SEC_ANSWER]; i++) {
		rr = &m->rr[DNS_SEC_ANSWER][i];
		if (rr->type == qtype &&
		    wire_equal(cur, clen, w, dns_name_wire(m, rr->name, w)))
			out->idx[out->n++] = (uint16_t)i;
	}
}

enum dns_err
dns_msg_chain(const struct dns_msg *m, uint16_t qtype, struct dns_chain *out)
{
	uint8_t cur[DNS_NAME_MAX];
	size_t clen;
	int c;

	memset(out, 0, sizeof(*out));
	if (m->nq == 0)
		return DNS_E_NO_QUESTION;
	out->final = m->q[0].name;
	clen = dns_name_wire(m, out->final, cur);
	for (;;) {
		collect(m, qtype, cur, clen, out);
		if (out->n > 0 || qtype == DNS_T_CNAME)
			return DNS_OK;
		if ((c = find_cname(m, cur, clen)) < 0)
			return DNS_OK;
		if (out->hops++ == DNS_CNAME_HOPS_MAX)
			return DNS_E_CNAME_LOOP;
		out->final = m->rr[DNS_SEC_ANSWER][c].rd.target;
		clen = dns_name_wire(m, out->final, cur);
	}
}

bool
dns_txt_next(const struct dns_msg *m, const struct dns_rr *rr, size_t *pos,
	     const uint8_t **s, size_t *n)
{
	const uint8_t *p;

	if (rr->type != DNS_T_TXT || rr->rd.txt.nstrings == 0 ||
	    *pos >= rr->rdlength)
		return false;
	p = m->pkt + rr->rdata + *pos;
	*n = p[0];
	*s = p + 1;
	*pos += *n + 1;
	return true;
}

size_t
dns_txt_concat(const struct dns_msg *m, const struct dns_rr *rr, uint8_t *dst,
	       size_t size)
{
	const uint8_t *s;
	size_t pos = 0, n, done = 0, k;

	while (dns_txt_next(m, rr, &pos, &s, &n)) {
		k = done < size ? size - done : 0;
		if (k > n)
			k = n;
		if (k > 0)
			memcpy(dst + done, s, k);
		done += n;
	}
	return done;
}

const char *
dns_strerror(enum dns_err e)
{
	switch (e) {
	case DNS_OK:
		return "no error";
	case DNS_E_SHORT:
		return "message shorter than the DNS header";
	case DNS_E_TOO_BIG:
		return "message longer than 65535 octets";
	case DNS_E_TRUNCATED:
		return "name, record or count runs past the end of the message";
	case DNS_E_BAD_LABEL:
		return "label longer than 63 octets or extended label type";
	case DNS_E_NAME_TOO_LONG:
		return "name longer than 255 octets";
	case DNS_E_BAD_POINTER:
		return "compression pointer into the header, forward or "
		       "looping";
	case DNS_E_RDATA:
		return "record data does not match its type";
	case DNS_E_NO_QUESTION:
		return "message has no question";
	case DNS_E_CNAME_LOOP:
		return "CNAME chain too long or looping";
	}
	return "unknown DNS error";
}

const char *
dns_type_name(uint16_t type)
{
	switch (type) {
	case DNS_T_A:
		return "A";
	case DNS_T_NS:
		return "NS";
	case DNS_T_CNAME:
		return "CNAME";
	case DNS_T_SOA:
		return "SOA";
	case DNS_T_PTR:
		return "PTR";
	case DNS_T_MX:
		return "MX";
	case DNS_T_TXT:
		return "TXT";
	case DNS_T_AAAA:
		return "AAAA";
	case DNS_T_OPT:
		return "OPT";
	}
	return "TYPE";
}

const char *
dns_rcode_name(unsigned rcode)
{
	static const char *const names[] = {"NOERROR",	"FORMERR", "SERVFAIL",
					    "NXDOMAIN", "NOTIMP",  "REFUSED"};

	return rcode < sizeof(names) / sizeof(names[0]) ? names[rcode]
							: "RCODE";
}

/* Value of a \DDD escape at s (n octets available), or -1. */
static int
dns_esc_value(const char *s, size_t n)
{
	int v = 0;

	if (n < 4 || s[0] != '\\')
		return -1;
	for (size_t i = 1; i < 4; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= 255 ? v : -1;
}

size_t
dns_text_readable(char *dst, size_t size, const char *src, size_t n)
{
	size_t i = 0, o = 0;

	while (i < n && src[i] != '\0') {
		unsigned char c = (unsigned char)src[i];
		int v = dns_esc_value(src + i, n - i);
		char tmp[5];
		size_t k;

		if (v >= 0x20 && v < 0x7f && v != '\\') {
			tmp[0] = (char)v;
			k = 1;
			i += 4;
		} else if (v >= 0) {
			memcpy(tmp, src + i, 4);
			k = 4;
			i += 4;
		} else if (c >= 0x20 && c < 0x7f) {
			tmp[0] = (char)c;
			k = 1;
			i++;
		} else {
			snprintf(tmp, sizeof(tmp), "\\%03u", c);
			k = 4;
			i++;
		}
		if (o + k >= size)
			break;
		memcpy(dst + o, tmp, k);
		o += k;
	}
	dst[o] = '\0';
	return o;
}
