/*
 * dsn — compose delivery status notifications (RFC 3464, RFC 3462
 * multipart/report) as complete RFC 5322 messages with CRLF line ends.
 *
 * Pure: inputs are the facts (reporting MTA, original envelope, per
 * recipient action/status/diagnostic), output is bytes in a buf. The
 * human-readable part says in plain words what happened, quotes the
 * remote or local diagnostic verbatim (every line of a multi-line
 * reply), and suggests what usually fixes it. The third part is
 * text/rfc822-headers (the original header block) or message/rfc822
 * (the whole message) when ret_full is set.
 *
 * RET=FULL under a size cap (ret_max): the header block is always
 * returned whole; the body is cut at the last line end that keeps the
 * returned octets within ret_max, and the text part says so (how much
 * of how much). If the original is a multipart, the close delimiter of
 * its top-level boundary is appended after the cut, so the returned
 * message stays a well-formed MIME entity (nested multiparts left open
 * end with it, RFC 2046 §5.1.2). The original is otherwise never
 * changed (signed mail stays verifiable): 8-bit content is labelled
 * Content-Transfer-Encoding: 8bit on the part and on the report (RFC
 * 2046 §5.2.1 allows no other encoding for message/rfc822; RFC 6152),
 * and dsn_is_8bit tells the caller to send the report with
 * BODY=8BITMIME.
 *
 * RET=FULL of an original with a line over 998 octets (RFC 5322 §2.1.1;
 * CRLF not counted) in what would be returned: the header block alone
 * is returned (text/rfc822-headers), and the text part names the line
 * and its length. Sent on, such a line would be folded by smtp-out, so
 * the "returned" original would no longer be the one sent. Header lines
 * over 998 octets in text/rfc822-headers are cut at 998 (never inside a
 * UTF-8 character), and the text part says so.
 *
 * All header fields we write from envelope data are checked: CR, LF
 * and other control characters are replaced, never passed through.
 * Non-ASCII bytes in values and diagnostics become '?' (not xtext: the
 * text is for people), except addresses in the text part: when one
 * holds a well-formed UTF-8 character (an SMTPUTF8 recipient, a decoded
 * RFC 6533 ORCPT) the text part is charset=utf-8, 8bit, and shows it.
 * The Original-Recipient field keeps (or gets) the 7-bit RFC 6533 form. A
 * multi-line diagnostic keeps one line per reply line: indented in the text
 * part, folded onto continuation lines in Diagnostic-Code (RFC 3464 §2.1.1).
 * The MIME boundary is derived from boundary_seed and changed if it occurs in
 * the original or a diagnostic.
 */
#ifndef TODOKU_MAIL_DSN_H
#define TODOKU_MAIL_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "lib/buf.h"

enum dsn_action {
	DSN_FAILED,
	DSN_DELAYED,
	DSN_DELIVERED,
	DSN_RELAYED,
	DSN_EXPANDED
};

struct dsn_rcpt {
	const char *final_rcpt; /* "user@domain" */
	const char *orig_rcpt;	/* ORCPT value "rfc822;addr" or NULL */
	enum dsn_action action;
	const char *status;	/* "5.1.1" */
	const char *remote_mta; /* host name or NULL for local delivery */
	const char *diag_type;	/* "smtp" or "x-local" */
	const char *diag; /* verbatim reply/reason; may contain CRLF or LF */
	time_t last_attempt;
	time_t will_retry_until; /* DSN_DELAYED, else 0 */
	const char *remote_addr; /* IP address of remote_mta, or NULL */
};

struct dsn_msg {
	const char *reporting_mta; /* our host name */
	const char *queue_id;
	const char *envid;  /* or NULL */
	const char *sender; /* original envelope sender (bounce goes there) */
	time_t arrival;
	time_t now;
	const struct dsn_rcpt *rcpts;
	size_t nrcpts;
	const char *orig; /* original message (header block, or whole) */
	size_t orig_len;
	/* size of the whole original when orig holds only its first
	 * orig_len octets; 0 (or <= orig_len): orig is all of it */
	size_t orig_total;
	/* ret_full: return at most this many octets of the original
	 * (header block always whole); 0: no cap */
	size_t ret_max;
	bool ret_full; /* include the whole message, else headers only */
	const char *boundary_seed; /* makes the MIME boundary unique */
};

/* Append the DSN message (headers + body) to out; -1 (out unchanged) if
 * out's max is hit or sender is NULL/empty (no DSN to a null sender,
 * RFC 5321 §4.5.5 / RFC 3461 §6.2). */
int dsn_compose(const struct dsn_msg *m, struct buf *out);
/* Length of the header block of a message (up to and including the empty
 * line), or len if there is none. */
size_t dsn_header_len(const char *msg, size_t len);
/* Does a composed report hold 8-bit octets (must go with BODY=8BITMIME)? */
bool dsn_is_8bit(const char *report, size_t len);
/*
 * The boundary parameter of a header block's Content-Type when it is a
 * multipart type (RFC 2045 §5.1, RFC 2046 §5.1.1: 1 to 70 characters of
 * bchars, quoted or a token; folded fields are unfolded). Writes it to
 * out (size >= 71) and returns its length; 0 when the type is not
 * multipart or there is no valid boundary. Reads only hdr[0..n).
 */
size_t dsn_multipart_boundary(const char *hdr, size_t n, char *out,
			      size_t size);
/*
 * The address of an ORCPT value ("type;address") for people: a "utf-8"
 * one is RFC 6533 utf-8-addr-xtext, whose \x{HEX} escapes are decoded
 * to UTF-8 (an escape of a control or a malformed one stays as it is
 * written); "rfc822" and other types as they are. Writes at most size-1
 * octets plus NUL, never splitting a character; returns the length.
 */
size_t dsn_orcpt_display(const char *orcpt, char *out, size_t size);

#endif
