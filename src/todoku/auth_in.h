/*
 * auth_in — sender authentication of one incoming message (SPF, DKIM,
 * DMARC), run by smtp-in on the message as it streams to the queue.
 *
 * The evaluators are the pure resumable ones of src/mail (spf, dkim_
 * verify, dmarc); their DNS questions go to the lookup role through the
 * caller (send callback: query id, name, type) and come back through
 * auth_in_answer(). Nothing here blocks: SPF starts with the transaction,
 * DKIM key lookups start when the header block is complete, DMARC
 * starts once SPF and DKIM are final (it needs both) after end of data.
 *
 * The result is the trace header text to prepend (Authentication-Results
 * of our authserv-id, RFC 8601, and Received-SPF, RFC 7208 §9.1) and a
 * verdict: accept, or reject with an SMTP reply (550 5.7.1 for a DMARC
 * p=reject failure or an SPF fail under spf-policy = reject). A deadline
 * (auth-eod-budget) is the caller's: auth_in_abort() turns whatever is
 * still open into temperror.
 *
 * For an ARC seal (RFC 8617) of a forwarded message the same results are
 * available on one line (auth_in_results) with the chain's validation
 * (auth_in_arc_chain).
 *
 * Values that came from the network (HELO, sender, domains) reach the
 * headers only after validation by the evaluators (LDH names) or with
 * every byte outside printable ASCII, ';', '(' and ')' replaced.
 */
#ifndef TODOKU_AUTH_IN_H
#define TODOKU_AUTH_IN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "mail/arc.h"
#include "mail/dmarc_report.h"

#define AUTH_IN_MAX_QUERIES 64 /* DNS questions in flight per message */
#define AUTH_IN_HDR_MAX (256 * 1024)

enum auth_in_policy_spf { AUTH_SPF_RECORD, AUTH_SPF_REJECT };
enum auth_in_policy_dmarc { AUTH_DMARC_RECORD, AUTH_DMARC_ENFORCE };

struct auth_in_params {
	const char *ip; /* client address, text */
	const char *helo;
	const char *sender; /* MAIL FROM mailbox, "" for <> */
	const char *authserv_id;
	const char *hostname; /* %{r} for SPF */
	int64_t now;
	enum auth_in_policy_spf spf_policy;
	enum auth_in_policy_dmarc dmarc_policy;
};

struct auth_in;

/* Ask the DNS: qid identifies the question in auth_in_answer(). */
typedef void auth_in_query_cb(void *arg, uint32_t qid, const char *name,
			      uint16_t type);
/* Everything is final (after auth_in_end): read the verdict. */
typedef void auth_in_done_cb(void *arg);

struct auth_in *auth_in_new(const struct auth_in_params *p,
			    auth_in_query_cb *query, auth_in_done_cb *done,
			    void *arg);
void auth_in_free(struct auth_in *a);
/* Message bytes as stored (CRLF, dot-unstuffing undone). */
void auth_in_feed(struct auth_in *a, const void *p, size_t n);
/* The answer to question qid, as libunbound reported it. */
void auth_in_answer(struct auth_in *a, uint32_t qid, int rcode, int sec,
		    const void *pkt, size_t len);
/* End of data: done_cb runs (maybe at once) when all is final. */
void auth_in_end(struct auth_in *a);
/* Deadline: open checks become temperror; done_cb runs. */
void auth_in_abort(struct auth_in *a, const char *why);
/* The domain of the single From: field of a header block (RFC 5322
 * address, comments and display names allowed); -1 if there is not
 * exactly one From field or it has no single domain. */
int auth_in_from_domain(const char *hdr, size_t len, char *out, size_t outlen);
/* True once the verdict is final (done_cb has run). */
bool auth_in_finished(const struct auth_in *a);
/* The headers to prepend (CRLF lines). */
const char *auth_in_headers(const struct auth_in *a);
/* Our results (the resinfo of the Authentication-Results header after
 * the authserv-id, unfolded to one line) for ARC-Authentication-Results;
 * valid once finished. */
const char *auth_in_results(const struct auth_in *a);
/* The ARC chain as received (valid once finished); *temporary: the
 * failure came from DNS or memory, not from the message. */
enum arc_result auth_in_arc_chain(const struct auth_in *a, bool *temporary);
/* What this message contributes to a DMARC aggregate report: true (row
 * filled) when DMARC was evaluated to pass or fail under a record that
 * asks for reports (rua=); false otherwise. The disposition is the one
 * we applied (none unless the listener enforces). */
bool auth_in_dmarc_row(const struct auth_in *a, struct dmarc_rep_row *row);
/* True when the message must be refused; reply text (after "550 5.7.1"). */
bool auth_in_reject(const struct auth_in *a, const char **text);

#endif
