/*
 * dns_answer — see dns_answer.h.
 */
#include "mail/dns_answer.h"

#include "lib/alloc.h"
#include "mail/dns_msg.h"

enum dns_answer_kind
dns_answer_records(int rcode, const void *pkt, size_t len, int sec,
		   uint16_t qtype, struct buf *data, size_t *off, size_t *rlen,
		   size_t *n)
{
	struct dns_msg *m;
	struct dns_chain ch;
	enum dns_answer_kind a = DNS_ANS_TEMPFAIL;
	size_t room = *n;

	*n = 0;
	if (sec == 1) /* bogus */
		return DNS_ANS_TEMPFAIL;
	if (rcode == DNS_R_NXDOMAIN)
		return DNS_ANS_NXDOMAIN;
	if (rcode != DNS_R_NOERROR || pkt == NULL || len == 0)
		return DNS_ANS_TEMPFAIL;
	m = xmalloc(sizeof(*m));
	if (dns_msg_parse(pkt, len, m) != DNS_OK)
		goto out;
	if (m->rcode == DNS_R_NXDOMAIN) {
		a = DNS_ANS_NXDOMAIN;
		goto out;
	}
	if (m->rcode != DNS_R_NOERROR || dns_msg_chain(m, qtype, &ch) != DNS_OK)
		goto out;
	a = DNS_ANS_RECORDS;
	for (uint16_t i = 0; i < ch.n && *n < room; i++) {
		const struct dns_rr *rr = &m->rr[DNS_SEC_ANSWER][ch.idx[i]];
		char name[DNS_NAME_TEXT_MAX + 1];
		size_t start = data->len;
		int r = 0;

		switch (qtype) {
		case DNS_T_TXT: {
			size_t pos = 0, sn;
			const uint8_t *s;
			while (r == 0 && dns_txt_next(m, rr, &pos, &s, &sn))
				r = buf_add(data, s, sn);
			break;
		}
		case DNS_T_A:
			r = buf_add(data, rr->rd.a, 4);
			break;
		case DNS_T_AAAA:
			r = buf_add(data, rr->rd.aaaa, 16);
			break;
		case DNS_T_MX:
			dns_name_text(m, rr->rd.mx.exchange, name,
				      sizeof(name));
			r = buf_adds(data, name);
			break;
		case DNS_T_PTR:
			dns_name_text(m, rr->rd.target, name, sizeof(name));
			r = buf_adds(data, name);
			break;
		default:
			continue;
		}
		if (r != 0) { /* more record data than we keep */
			a = DNS_ANS_TEMPFAIL;
			break;
		}
		off[*n] = start;
		rlen[*n] = data->len - start;
		(*n)++;
	}
	if (a == DNS_ANS_RECORDS && *n == 0)
		a = DNS_ANS_NODATA;
out:
	xfree(m);
	return a;
}
