/*
 * smtp_in — the smtp-in role: SMTP sessions on the listening sockets.
 *
 * Network-facing and unprivileged; it has no spool access. A message is
 * streamed to the queue role in CHUNK_MAX chunks under credit flow
 * control (when the window is spent, the client is no longer read), and
 * the final reply to DATA is the queue's: 250 only after the commit.
 * Headers it generates (Received, the sender authentication results, a
 * DKIM-Signature for trusted mail, the ARC set of a forwarded message)
 * are sent as Q_PREPEND records before Q_END; signatures come from the
 * keys role, which sees only 32-byte hashes.
 *
 * Session state machine (one setter, sess_set_state, logs transitions):
 *
 *   CMD --DATA--> WAIT_OPEN --Q_OPEN_OK--> DATA --CRLF.CRLF--> WAIT_RESULT
 *    ^               |                      |                     |
 *    +---------------+--(refused)-----------+--(rejected)---------+
 *   any --QUIT/timeout/too many errors/shutdown--> CLOSING
 *
 * Limits (DESIGN §7): command lines up to SMTP_LINE_MAX octets, DATA
 * lines unlimited within the size limit; bare CR or LF in a command is
 * refused, in DATA it switches to discard-until-CRLF.CRLF then 550 5.5.2;
 * NUL refused; [smtp] max-recipients (452 4.5.3), max-errors (421 4.7.0),
 * per-state timeouts (421 4.4.2), max-hops (RFC 5321 §6.3: more
 * Received fields than that in the header block drops the transaction
 * as soon as the header shows it, 554 5.4.6 at the end of data). Replies carry enhanced status codes
 * except the greeting and the HELO/EHLO replies (RFC 2034 §4).
 */
#ifndef TODOKU_SMTP_IN_H
#define TODOKU_SMTP_IN_H

#define SMTP_LINE_MAX 2048
#define SMTP_MAX_SESSIONS 2000
#define SMTP_OUT_MAX (256 * 1024)
#define SMTP_IN_READ (64 * 1024)
#define SMTP_SHUTDOWN_GRACE_S 10

#endif
