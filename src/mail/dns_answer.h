/*
 * dns_answer — the records of one type in a resolver's answer, in the
 * flat form the SPF, DKIM and DMARC evaluators take (pure).
 *
 * Input: what libunbound reports for one query (rcode, DNSSEC status,
 * wire-format packet, untrusted). Output: an outcome (records / NODATA /
 * NXDOMAIN / temporary failure — a bogus answer, a malformed packet or
 * any rcode but NOERROR and NXDOMAIN count as temporary) and up to room
 * records appended to data, each given by its offset and length: TXT =
 * its character-strings joined; A/AAAA = the 4/16 address octets; MX =
 * the exchange and PTR = the target in presentation form (dns_msg.h).
 * CNAME chains inside the answer are followed.
 */
#ifndef TODOKU_MAIL_DNS_ANSWER_H
#define TODOKU_MAIL_DNS_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

enum dns_answer_kind {
	DNS_ANS_RECORDS,
	DNS_ANS_NODATA,
	DNS_ANS_NXDOMAIN,
	DNS_ANS_TEMPFAIL,
};

/* sec: 1 = DNSSEC bogus (libunbound's convention). *n in: room; out:
 * records stored. */
enum dns_answer_kind dns_answer_records(int rcode, const void *pkt, size_t len,
					int sec, uint16_t qtype,
					struct buf *data, size_t *off,
					size_t *rlen, size_t *n);

#endif
