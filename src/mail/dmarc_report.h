/*
 * dmarc_report — DMARC aggregate reports (RFC 9990, the DMARCbis
 * successor of RFC 7489 §7.2) as a pure builder: evaluation rows in,
 * the XML document, its gzip and the MIME message out.
 *
 * What it does:
 *  - dmarc_rep_row holds what one DMARC evaluation contributes to a
 *    report (the policy as published, the identifiers, the SPF and DKIM
 *    results, the disposition applied). smtp-in fills one per evaluated
 *    message; the queue stores them; the report job hands them back here.
 *  - dmarc_rep_xml() writes one <feedback> document for rows of one
 *    policy domain: rows that agree on everything but their time are one
 *    <record> with a <count>. policy_published comes from the newest row.
 *  - dmarc_rep_gzip() compresses (zlib, gzip framing).
 *  - dmarc_rep_message() wraps the gzip in a multipart/mixed message
 *    (RFC 9990 §5: Subject "Report Domain: ... Submitter: ... Report-ID:
 *    ...", application/gzip attachment named receiver!policy!begin!end).
 *
 * What it owns: nothing beyond the caller's buffers; no I/O, no clock
 * (times come in), no globals.
 *
 * Trust: every string of a row may come from the network (domains,
 * selectors, the client address). The XML writer escapes & < > " ' and
 * replaces control and non-ASCII bytes with '?', so the document is
 * always well formed; header fields of the message take only validated
 * names and the operator's configuration. It parses nothing.
 */
#ifndef TODOKU_MAIL_DMARC_REPORT_H
#define TODOKU_MAIL_DMARC_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define DMARC_REP_NAME 254   /* a domain name and its NUL */
#define DMARC_REP_DKIM_MAX 8 /* DKIM results kept per message */
#define DMARC_REP_RUA 1024   /* "addr size\n" lines of the rua URIs */
#define DMARC_REP_XML_MAX (32u * 1024 * 1024)
#define DMARC_REP_MSG_MAX (48u * 1024 * 1024)

struct dmarc_rep_dkim {
	char domain[DMARC_REP_NAME];
	char selector[DMARC_REP_NAME];
	char result[16]; /* RFC 8601 name: pass, fail, neutral, ... */
};

struct dmarc_rep_row {
	int64_t time; /* UTC seconds of the evaluation */
	/* the policy as published */
	char policy_domain[DMARC_REP_NAME];
	char org_domain[DMARC_REP_NAME]; /* for the external-destination
					    check; policy_domain if unknown */
	char p[12], sp[12], np[12];	 /* "none" ... ; "" when absent */
	char adkim[2], aspf[2];		 /* "r" or "s" */
	char testing[2];		 /* "y" (t=y) or "n" */
	char rua[DMARC_REP_RUA];	 /* "address max-octets\n" per URI */
	/* the message */
	char source_ip[64];
	char header_from[DMARC_REP_NAME];
	char envelope_from[DMARC_REP_NAME]; /* domain; "" for <> */
	char spf_domain[DMARC_REP_NAME];
	char spf_scope[8]; /* "mfrom" or "helo" */
	char spf_result[16];
	unsigned ndkim;
	struct dmarc_rep_dkim dkim[DMARC_REP_DKIM_MAX];
	/* the verdict */
	char disposition[12]; /* none, quarantine, reject: what we applied */
	char dkim_align[8];   /* "pass" or "fail" (DMARC-aligned DKIM) */
	char spf_align[8];
	char result[16]; /* dmarc result: pass, fail, ... */
};

struct dmarc_rep_meta {
	const char *org_name;	   /* ours */
	const char *email;	   /* the reporting address */
	const char *report_id;	   /* unique per report */
	const char *receiver;	   /* our domain, for the file name */
	const char *policy_domain; /* the domain reported on */
	int64_t begin, end;	   /* UTC seconds */
	const char *generator;	   /* "todoku 0.1.0" or NULL */
};

/* The text fields of a row (every char array but dkim), for storage
 * and IPC: name (also the spool column), offset and size in the row. */
struct dmarc_rep_field {
	const char *name;
	size_t off, size;
};
extern const struct dmarc_rep_field dmarc_rep_fields[];
extern const size_t dmarc_rep_nfields;
/* The DKIM results as "domain TAB selector TAB result" lines (tabs and
 * newlines inside a value become '?'); -1 if out is short. */
int dmarc_rep_dkim_text(const struct dmarc_rep_row *r, char *out, size_t outsz);
/* The inverse: lines of that form into r->dkim (extra lines ignored). */
void dmarc_rep_dkim_load(struct dmarc_rep_row *r, const char *text);

/* True when a and b make the same <record> (all but time). */
bool dmarc_rep_same_record(const struct dmarc_rep_row *a,
			   const struct dmarc_rep_row *b);
/* The XML document for n rows of one policy domain; -1 if out is full
 * or n is 0. */
int dmarc_rep_xml(const struct dmarc_rep_meta *m,
		  const struct dmarc_rep_row *rows, size_t n, struct buf *out);
/* gzip (RFC 1952) of in; -1 on error or if out is full. */
int dmarc_rep_gzip(const void *in, size_t n, struct buf *out);
/* "receiver!policy-domain!begin!end.xml.gz"; -1 if it does not fit. */
int dmarc_rep_filename(const struct dmarc_rep_meta *m, char *out, size_t outsz);
/* The whole message (CRLF lines) to rcpt, date is the Date: value
 * (RFC 5322, the caller's clock), msgid_host the right side of the
 * Message-ID. -1 if out is full. */
int dmarc_rep_message(const struct dmarc_rep_meta *m, const char *rcpt,
		      const char *date, const char *msgid_host, const void *gz,
		      size_t gzlen, struct buf *out);

#endif
