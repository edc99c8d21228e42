/*
 * attrec — the structured attempt record (docs/attempt-record.md).
 *
 * What it does: holds the facts of one delivery attempt as typed data
 * and turns them into the stored forms. The facts come from three
 * roles: lookup gathers the DNS answers (struct attrec_dns_set), smtp-out
 * the addresses it tried, TLS and the dialogue (struct attrec_conn),
 * queue adds the route, the recipient's result and the next attempt
 * time with its reason (struct attrec_view). attrec_put_* / attrec_get_*
 * carry the first two through IPC in a fixed field order (proto.h);
 * attrec_json writes the record as one JSON object (lib/json: remote
 * text escaped, invalid UTF-8 replaced), attrec_text a readable form
 * whose remote text has control characters and invalid UTF-8 shown as
 * \xNN.
 *
 * Bounded: at most ATTREC_DNS_MAX answers of ATTREC_RR_MAX records,
 * ATTREC_ADDR_MAX addresses, ATTREC_TURN_MAX dialogue turns, every
 * string cut at its own maximum, and a byte budget per set so a record
 * always fits one IPC payload. Whatever is left out is counted and the
 * JSON says so ("truncated"), never silently.
 *
 * Ownership: every string in the sets is a private copy (lib/alloc);
 * attrec_*_free releases them. A view borrows everything it points at.
 * Pure: no I/O, no clocks (times are given), no globals.
 */
#ifndef TODOKU_MAIL_ATTREC_H
#define TODOKU_MAIL_ATTREC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/ipc.h"

#define ATTREC_DNS_MAX 24
#define ATTREC_RR_MAX 12
#define ATTREC_ADDR_MAX 24
#define ATTREC_TURN_MAX 40
#define ATTREC_NAME_MAX 256   /* DNS names, record data, host names */
#define ATTREC_CMD_MAX 512    /* one command line */
#define ATTREC_REPLY_MAX 2048 /* one reply, all its lines */
#define ATTREC_DETAIL_MAX 600 /* an address outcome's detail, TLS errors */
#define ATTREC_DNS_BYTES 16384
#define ATTREC_CONN_BYTES 65536

/* DNSSEC state of one answer as libunbound reports it. */
enum attrec_dnssec {
	ATTREC_SEC_UNCHECKED = 0, /* not validating */
	ATTREC_SEC_INSECURE,
	ATTREC_SEC_SECURE,
	ATTREC_SEC_BOGUS,
};

struct attrec_rr {
	uint32_t ttl;
	int32_t pref; /* MX preference, -1 for other types */
	char *data;   /* exchange name or address text */
};

/* One query and what libunbound said. */
struct attrec_dns {
	char *qname;
	char *qtype;	/* "MX", "A", "AAAA" */
	char *result;	/* answer|nodata|nxdomain|tempfail|bogus */
	char *rcode;	/* "NOERROR", "SERVFAIL", ... or libunbound's error */
	uint8_t dnssec; /* enum attrec_dnssec */
	char *why;	/* the validator's reason (bogus), or NULL */
	size_t nrr;
	unsigned rr_cut; /* records left out */
	struct attrec_rr rr[ATTREC_RR_MAX];
};

struct attrec_dns_set {
	uint8_t implicit; /* NODATA for MX: the domain's own addresses */
	size_t n;
	unsigned cut; /* answers left out */
	size_t bytes;
	struct attrec_dns q[ATTREC_DNS_MAX];
};

/* TLS on one address. */
enum attrec_tls_state {
	ATTREC_TLS_NONE = 0, /* not attempted */
	ATTREC_TLS_OK,
	ATTREC_TLS_FAILED,
};

struct attrec_tls {
	uint8_t state;
	uint8_t verified;
	char *version, *cipher;
	char *policy; /* "may", "must", "smtps" */
	char *verify; /* "none", "ca" */
	char *name;   /* the name checked (verify = ca) */
	char *error;  /* why the handshake failed */
};

/* attrec_addr.flags */
#define ATTREC_AF_FAILED_RECENTLY 1u /* health memory: ordered last */
#define ATTREC_AF_V4_RETRY 2u	     /* the IPv4 retry after 4.7/5.7 on v6 */

struct attrec_addr {
	char *host;
	char *address;
	uint32_t port;
	uint8_t family; /* 4 or 6 */
	char *outcome;	/* see docs/attempt-record.md */
	char *detail;
	struct attrec_tls tls;
	uint8_t flags; /* ATTREC_AF_* */
	uint32_t
	    message; /* k: the k-th transaction on the connection; 0 none */
};

/* How the attempt ordered the families (DESIGN §7 IPv6 health). */
enum attrec_v6plan {
	ATTREC_V6_USUAL = 0, /* the usual order */
	ATTREC_V6_V4_FIRST,  /* IPv6 suspended: IPv4 addresses first */
	ATTREC_V6_PROBE,     /* suspension over: this attempt probes IPv6 */
};

/* attrec_turn.addr before its address's outcome is known, or when that
 * address was left out */
#define ATTREC_ADDR_PENDING (-1)
#define ATTREC_ADDR_NONE (-2)

struct attrec_turn {
	uint64_t seq;  /* command sequence number (pairing), internal */
	int32_t addr;  /* index into addr[] of the address it went to */
	char *command; /* NULL: nothing was sent (the greeting) */
	char *reply;   /* NULL: no reply came */
	uint8_t cut;   /* the reply or command was cut */
};

/* What smtp-out gathers on a connection and hands to its jobs. */
struct attrec_conn {
	size_t naddr;
	unsigned addr_cut;
	struct attrec_addr addr[ATTREC_ADDR_MAX];
	size_t nturn;
	unsigned turn_cut;
	struct attrec_turn turn[ATTREC_TURN_MAX];
	size_t bytes;
	/* addresses the health memory ordered last (failed recently),
	 * tried or not */
	size_t nrecent;
	char *recent[ATTREC_ADDR_MAX];
	uint8_t v6_plan;    /* enum attrec_v6plan */
	uint8_t time_limit; /* max-attempt-time stopped the addresses */
	uint32_t tl_tried, tl_total; /* ... after tried of total addresses */
	/* max-addresses cut the ordered list: al_max of al_total kept;
	 * the addresses left out, in order (al_cut: not listed) */
	uint32_t al_max, al_total;
	size_t nskipped;
	unsigned al_cut;
	char *skipped[ATTREC_ADDR_MAX];
	/* pairing of replies with commands on the live connection */
	uint64_t cseq, rseq;
	struct attrec_tls tls; /* of the current address, not yet placed */
};

/* The whole record of one recipient's attempt, as queue renders it. */
struct attrec_view {
	time_t time;
	const char *route_kind; /* "mx", "implicit", "smarthost", "local" */
	const char *route_via;	/* domain, relay host:port or mailbox */
	const struct attrec_dns_set *dns;
	const struct attrec_conn *conn;
	const char *result; /* delivered|deferred|bounced */
	const char *status, *reply, *command, *where;
	time_t next_attempt; /* 0: none */
	const char *next_reason;
};

/* ---- DNS (lookup) ---- */
void attrec_dns_init(struct attrec_dns_set *s);
void attrec_dns_free(struct attrec_dns_set *s);
/* A new answer; NULL when the set is full (counted). */
struct attrec_dns *attrec_dns_add(struct attrec_dns_set *s, const char *qname,
				  const char *qtype, const char *result,
				  const char *rcode, int dnssec,
				  const char *why);
/* The answer's result once the records are known (answer -> nodata). */
void attrec_dns_result(struct attrec_dns *q, const char *result);
void attrec_dns_rr(struct attrec_dns_set *s, struct attrec_dns *q, uint32_t ttl,
		   int32_t pref, const char *data);
void attrec_put_dns(struct ipc_out *o, const struct attrec_dns_set *s);
void attrec_get_dns(struct ipc_in *in, struct attrec_dns_set *s);

/* ---- addresses, TLS, dialogue (smtp-out) ---- */
void attrec_conn_init(struct attrec_conn *c);
void attrec_conn_free(struct attrec_conn *c);
/* Forget the addresses and dialogue (handed to a job); the pairing
 * state stays with the live connection. */
void attrec_conn_clear(struct attrec_conn *c);
/* A new connection: replies pair with commands sent on it only. */
void attrec_conn_connected(struct attrec_conn *c);
/* The address's index in c->addr, or -1 when it was left out. */
int attrec_conn_addr(struct attrec_conn *c, const char *host,
		     const char *address, uint32_t port, int family,
		     const char *outcome, const char *detail);
/* Notes on address k (an index attrec_conn_addr returned; -1: none):
 * ATTREC_AF_* flags, the transaction's number on its connection. */
void attrec_conn_addr_note(struct attrec_conn *c, int k, unsigned flags,
			   uint32_t message);
/* An address the health memory ordered last (kept once, bounded). */
void attrec_conn_recent(struct attrec_conn *c, const char *address);
/* max-addresses kept max of the total ordered addresses; skipped[0..n)
 * are the ones left out (kept up to ATTREC_ADDR_MAX, the rest counted). */
void attrec_conn_addr_limit(struct attrec_conn *c, uint32_t max, uint32_t total,
			    const char *const *skipped, size_t n);
/* Mark the addresses from index `from` on as tried in the IPv4 retry. */
void attrec_conn_mark_v4_retry(struct attrec_conn *c, size_t from);
void attrec_conn_tls_ok(struct attrec_conn *c, const char *version,
			const char *cipher, int verified, const char *policy,
			const char *verify, const char *name);
void attrec_conn_tls_failed(struct attrec_conn *c, const char *policy,
			    const char *verify, const char *name,
			    const char *error);
/* One or more command lines just sent (CRLF separated). */
void attrec_conn_sent(struct attrec_conn *c, const char *lines);
/* One complete reply (its lines, CRLF joined). */
void attrec_conn_reply(struct attrec_conn *c, const char *text, size_t n);
/* Append src's addresses and dialogue to dst (copies). */
void attrec_conn_append(struct attrec_conn *dst, const struct attrec_conn *src);
void attrec_put_conn(struct ipc_out *o, const struct attrec_conn *c);
void attrec_get_conn(struct ipc_in *in, struct attrec_conn *c);

/* ---- storage (spool: attempt.rec) ---- */
/*
 * The record as the spool stores it: only what the attempt row's own
 * columns (time, result, status, reply, where) do not hold, in the IPC
 * encoding above: u8 format (ATTREC_PACK_V3), opt route kind, opt route
 * via, opt command, i64 next attempt, opt next reason, u8 has DNS +
 * attrec_put_dns, u8 has connection + attrec_put_conn. Formats 1 and 2
 * are read, no longer written: format 1 had no address notes, family
 * plan and time limit; format 2 no address limit.
 */
#define ATTREC_PACK_V1 1
#define ATTREC_PACK_V2 2
#define ATTREC_PACK_V3 3
void attrec_pack(const struct attrec_view *v, struct ipc_out *o);

/* A decoded stored record; view borrows dns and conn from it. */
struct attrec_unpacked {
	struct attrec_dns_set dns;
	struct attrec_conn conn;
	struct attrec_view view;
};
/* Decode n octets (bounded: reads never pass p + n). 0, or -1 when p is
 * not a complete record of a known format (u->view then holds what was
 * read). The view's strings point into p. attrec_unpacked_free after
 * either. The caller sets the row's time, result, status, reply, where. */
int attrec_unpack(const void *p, size_t n, struct attrec_unpacked *u);
void attrec_unpacked_free(struct attrec_unpacked *u);

/* ---- output (queue) ---- */
int attrec_json(const struct attrec_view *v, struct buf *out);
int attrec_text(const struct attrec_view *v, struct buf *out);

#endif
