/*
 * dns_msg — DNS message parser (RFC 1035 §4.1, RFC 3596), pure.
 *
 * Input is an untrusted DNS answer in wire format (what libunbound hands
 * to its callback). Output is a struct dns_msg that points into the
 * packet: names are kept as offsets and decompressed on demand by the
 * helpers below, so the packet must outlive the struct and must not be
 * changed while it is used. Nothing is allocated; no sockets, no globals.
 *
 * Everything is validated up front, so a helper given an offset taken
 * from a parsed struct cannot fail:
 *  - header: 12 octets; packets longer than 65535 octets are refused.
 *  - names: labels of 0..63 octets (extended label types 0x40/0x80 are
 *    refused), at most 255 octets in wire form including length octets
 *    and the root. A compression pointer must point into the message
 *    (not the header) and strictly before the label run that contains
 *    it (a "prior occurrence", RFC 1035 §4.1.4): forward pointers,
 *    self-pointers and loops are errors, and every walk terminates.
 *  - RRs: class IN rdata is decoded for A (4 octets), AAAA (16), MX
 *    (preference + exchange), CNAME, PTR, NS (one name), SOA (two names
 *    and 20 octets) and TXT (one or more character-strings that exactly
 *    fill rdlength). A name inside rdata must end exactly at the end of
 *    rdata (its pointers may point anywhere before it). Other types and
 *    classes keep raw rdata only (rdata/rdlength).
 *  - TTLs with the top bit set are read as 0 (RFC 2181 §8).
 *
 * Bounds: at most DNS_MSG_QD_MAX questions and DNS_MSG_RR_MAX RRs per
 * section are stored; further ones are still fully validated, then
 * counted in dropped[] (the header counts stay in qdcount/ancount/...).
 * Octets after the last section are allowed and counted in trailing.
 * Malformed input returns an error code, never a crash or a partial
 * "success".
 *
 * Presentation form (dns_name_text): lowercase ASCII, labels joined by
 * ".", NO trailing dot; the root name alone is ".". Every octet outside
 * [a-z0-9-_*] (after lowercasing A-Z) is written as \DDD, so a hostile
 * name cannot inject spaces, CR/LF, quotes, dots inside labels or
 * non-ASCII into logs or headers. The result is still accepted by
 * libunbound's name parser (it understands \DDD).
 */
#ifndef TODOKU_MAIL_DNS_MSG_H
#define TODOKU_MAIL_DNS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HEADER_LEN 12
#define DNS_PKT_MAX 65535 /* largest message (TCP length prefix) */
#define DNS_NAME_MAX 255  /* wire octets of a name, root included */
#define DNS_LABEL_MAX 63
#define DNS_NAME_TEXT_MAX 1004 /* longest presentation form (\DDD) */
#define DNS_MSG_QD_MAX 4
#define DNS_MSG_RR_MAX 256 /* stored RRs per section */
#define DNS_CNAME_HOPS_MAX 16

enum dns_type {
	DNS_T_A = 1,
	DNS_T_NS = 2,
	DNS_T_CNAME = 5,
	DNS_T_SOA = 6,
	DNS_T_PTR = 12,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
	DNS_T_OPT = 41,
};

#define DNS_C_IN 1

enum dns_rcode {
	DNS_R_NOERROR = 0,
	DNS_R_FORMERR = 1,
	DNS_R_SERVFAIL = 2,
	DNS_R_NXDOMAIN = 3,
	DNS_R_NOTIMP = 4,
	DNS_R_REFUSED = 5,
};

enum dns_section { DNS_SEC_ANSWER, DNS_SEC_AUTHORITY, DNS_SEC_ADDITIONAL };
#define DNS_SECTIONS 3

enum dns_err {
	DNS_OK = 0,
	DNS_E_SHORT,	     /* shorter than the 12-octet header */
	DNS_E_TOO_BIG,	     /* longer than 65535 octets */
	DNS_E_TRUNCATED,     /* a name, RR or count runs past the end */
	DNS_E_BAD_LABEL,     /* label type 0x40/0x80 (length > 63) */
	DNS_E_NAME_TOO_LONG, /* more than 255 octets decompressed */
	DNS_E_BAD_POINTER,   /* into the header, forward, or a loop */
	DNS_E_RDATA,	     /* rdata does not fit its type */
	DNS_E_NO_QUESTION,   /* dns_msg_chain: the message has no question */
	DNS_E_CNAME_LOOP,    /* dns_msg_chain: more than 16 CNAME hops */
};

struct dns_question {
	uint16_t name; /* offset of the (maybe compressed) name */
	uint16_t type;
	uint16_t class;
};

struct dns_rr {
	uint16_t name; /* owner name offset */
	uint16_t type;
	uint16_t class;
	uint32_t ttl;
	uint16_t rdata; /* offset of rdata in the packet */
	uint16_t rdlength;
	union {
		uint8_t a[4];
		uint8_t aaaa[16];
		struct {
			uint16_t preference;
			uint16_t exchange; /* name offset */
		} mx;
		uint16_t target; /* CNAME, PTR, NS: name offset */
		struct {
			uint16_t mname, rname; /* name offsets */
			uint32_t serial, refresh, retry, expire, minimum;
		} soa;
		struct {
			uint16_t nstrings; /* character-strings, >= 1 */
			uint16_t total; /* their octets, length octets excl. */
		} txt;
	} rd;
};

struct dns_msg {
	const uint8_t *pkt; /* borrowed, see top */
	size_t len;
	uint16_t id;
	uint16_t flags; /* raw header flags word */
	bool qr, aa, tc, rd, ra, ad, cd;
	uint8_t opcode;
	uint8_t rcode; /* header RCODE (4 bits; no EDNS extension) */
	uint16_t qdcount, ancount, nscount, arcount; /* as in the header */
	uint16_t nq;
	struct dns_question q[DNS_MSG_QD_MAX];
	uint16_t nrr[DNS_SECTIONS];
	unsigned dropped[DNS_SECTIONS + 1]; /* [3]: questions */
	size_t trailing;		    /* octets after the last RR */
	struct dns_rr rr[DNS_SECTIONS][DNS_MSG_RR_MAX];
};

/* The answer RRs of one type reached from the first question's name by
 * following CNAMEs inside the answer section (what a recursive resolver
 * returns for "example.com MX" when example.com is an alias). */
struct dns_chain {
	uint16_t final; /* name offset of the last name in the chain */
	unsigned hops;	/* CNAMEs followed */
	uint16_t n;
	uint16_t idx[DNS_MSG_RR_MAX]; /* indexes into rr[DNS_SEC_ANSWER] */
};

/* Parse len octets at pkt into *out (about 30 KiB; keep it off small
 * stacks). On error only the header fields are meaningful (when len >=
 * 12); nq and nrr[] are 0 and pkt is NULL. */
enum dns_err dns_msg_parse(const uint8_t *pkt, size_t len, struct dns_msg *out);
/* Presentation form of the name at off (see top). Writes at most size-1
 * chars plus NUL, never splitting a \DDD escape; with size >
 * DNS_NAME_TEXT_MAX nothing is ever cut. Returns the length written. */
size_t dns_name_text(const struct dns_msg *m, uint16_t off, char *dst,
		     size_t size);
/* Uncompressed lowercase wire form into wire[DNS_NAME_MAX]; returns its
 * length (>= 1), 0 if off does not hold a valid name. */
size_t dns_name_wire(const struct dns_msg *m, uint16_t off, uint8_t *wire);
/* Case-insensitive (ASCII) comparison of two names of the message. */
bool dns_name_equal(const struct dns_msg *m, uint16_t a, uint16_t b);
/* Follow the CNAME chain of the first question; collect answers of
 * qtype owned by its last name. n == 0 with DNS_OK means no such data. */
enum dns_err dns_msg_chain(const struct dns_msg *m, uint16_t qtype,
			   struct dns_chain *out);
/* Iterate TXT character-strings: start with *pos = 0; each call yields
 * one string (s, n) and returns false after the last. */
bool dns_txt_next(const struct dns_msg *m, const struct dns_rr *rr, size_t *pos,
		  const uint8_t **s, size_t *n);
/* Concatenated TXT strings (raw octets, no NUL added). Copies at most
 * size octets; returns the full length (rd.txt.total). */
size_t dns_txt_concat(const struct dns_msg *m, const struct dns_rr *rr,
		      uint8_t *dst, size_t size);
/* Short English text for an error ("compression pointer ..."). */
const char *dns_strerror(enum dns_err e);
/* "A", "MX", ... or "TYPE" for others (callers print the number). */
const char *dns_type_name(uint16_t type);
/* "NOERROR", "SERVFAIL", "NXDOMAIN", ... or "RCODE" for others. */
const char *dns_rcode_name(unsigned rcode);
/*
 * Readable copy of free text that may hold DNS presentation escapes
 * (RFC 1035 §5.1: a resolver's reason text, a name with odd octets):
 * for people, in replies, bounces and logs. A \DDD escape of a
 * printable ASCII octet (space included; not '\\' itself, which would
 * make the result ambiguous) is written as that octet; every other
 * escape is kept as it is. An octet that is a control or not ASCII is
 * written as \DDD, so the result is printable ASCII only. Reads at most
 * n octets of src (stops at NUL), writes at most size-1 octets plus a
 * NUL (size >= 1), never splitting an escape. Returns the length
 * written.
 */
size_t dns_text_readable(char *dst, size_t size, const char *src, size_t n);

#endif
