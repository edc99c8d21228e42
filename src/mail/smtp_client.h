/*
 * smtp_client — the protocol engine of one outbound SMTP connection
 * (pure: no sockets, no clock, no TLS library).
 *
 * The caller owns the socket, TLS, timers and the body; the engine says
 * what to do next and consumes parsed replies (smtp_reply.h):
 *
 *   c = smtp_client_new(&params);
 *   for (;;) switch (smtp_client_next(c, &data, &len)) {
 *   SEND:      write data[0..len) (valid until the next engine call)
 *   READ:      arm smtp_client_timeout(c); feed a reply with
 *              smtp_client_reply(), or report smtp_client_lost()
 *   STARTTLS:  the server said 220 to STARTTLS. Discard every byte
 *              received after that 220 and everything still buffered
 *              (RFC 3207 §4.2; a server may not pipeline after it: such
 *              bytes are an injection attempt), do the handshake, then
 *              smtp_client_tls_done(c, ok, why).
 *   BODY:      send the body through struct smtp_dotstuff (it ends the
 *              body with CRLF "." CRLF), re-arming the DATA_BLOCK timer
 *              per write, then smtp_client_body_sent(c).
 *   DOWNGRADE: the body is 8-bit, the server lacks 8BITMIME and the body
 *              is not signed: convert it to 7-bit and call
 *              smtp_client_downgraded(c, new_size), or give up with
 *              smtp_client_msg_abort().
 *   NEED_MSG:  ready for a message; the previous one's outcomes are
 *              final. smtp_client_msg_start() if smtp_client_can_send()
 *              and mail remains, else smtp_client_quit().
 *   CLOSE:     close the connection; smtp_client_failure() says why when
 *              it was not a clean QUIT.
 *   }
 *
 * Rules (RFC 5321, DESIGN §7): greeting other than 2xx, EHLO/HELO
 * failure, TLS failure and AUTH failure are connection-level failures
 * (smtp_client_try_next(): no recipient was touched; try the next
 * address). EHLO 5xx falls back to HELO (no extensions). STARTTLS is
 * used when offered and policy is MAY or MUST; MUST never sends an
 * envelope in plaintext. After TLS, EHLO is sent again and the earlier
 * extensions are forgotten. AUTH (PLAIN preferred, else LOGIN) is used
 * only inside TLS; credentials configured but no TLS, or no usable
 * mechanism, fail the session rather than send mail unauthenticated.
 * PIPELINING sends MAIL, every RCPT and DATA in one batch and matches
 * replies in order; RFC 2920 §3.1: when DATA gets 354 although no RCPT
 * succeeded, a lone "." is sent and its reply ignored. Every transaction
 * after the first starts with RSET, which must get 250. A 421 anywhere
 * defers everything pending and closes. A lost connection or timeout
 * defers every recipient not yet finished (4.4.2).
 *
 * SMTPUTF8 (RFC 6531) is used only when needed and offered. Needed: a
 * non-ASCII envelope address, or smtputf8 && hdr_utf8 (UTF-8 headers
 * are legal only in an SMTPUTF8 transaction, RFC 6532). Needed but not
 * offered: addresses whose only non-ASCII part is the domain are sent
 * with A-labels; a recipient with a UTF-8 local part bounces (5.6.7,
 * local), a sender with one or UTF-8 headers bounce every recipient.
 * Nothing is silently downgraded.
 *
 * Line length (RFC 5321 §4.5.3.1.6): the caller measures the message
 * with struct smtp_shape first. A line longer than SMTPC_LINE_MAX in a
 * message signed_body bounces (5.6.3: folding it would break our DKIM
 * signature); unsigned content is folded by the dot-stuffer.
 *
 * Each recipient ends DELIVERED, DEFERRED, BOUNCED, or stays PENDING
 * when the connection failed before its transaction began. An outcome
 * carries the command it answered, the full reply (every line
 * verbatim, CRLF-joined; sanitize before storing or logging), and the
 * enhanced status (from the reply, else derived: 4.0.0/5.0.0). Local
 * decisions (SIZE too big 5.3.4, signed 8-bit body 5.6.3, SMTPUTF8
 * not offered 5.6.7, unusable address 5.1.3/5.1.7) have code 0 and
 * local set; nothing was sent for them.
 *
 * Logging: smtp_client_transcript() holds the commands of the last
 * SEND with AUTH data redacted ("AUTH PLAIN <redacted>"); the engine
 * never puts credentials in any other text. State changes go through
 * one setter that logs them at debug level.
 *
 * Ownership: params strings are copied. The message passed to
 * smtp_client_msg_start() (and its strings) must stay valid until the
 * next NEED_MSG or CLOSE. Outcomes live until the next msg_start or
 * smtp_client_free(). Allocation failure fails the connection (kind
 * NOMEM: everything pending deferred).
 */
#ifndef TODOKU_MAIL_SMTP_CLIENT_H
#define TODOKU_MAIL_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "mail/smtp_cmd.h"
#include "mail/smtp_reply.h"

#define SMTPC_HELO_MAX 255
#define SMTPC_CRED_MAX 255
#define SMTPC_OUT_MAX (4u << 20) /* one pipelined batch */
#define SMTPC_REASON_MAX 4096
#define SMTPC_LINE_MAX 998 /* wire line length noted by the dot-stuffer */

enum smtpc_tls { SMTPC_TLS_OFF, SMTPC_TLS_MAY, SMTPC_TLS_MUST };

struct smtp_client_params {
	const char *helo; /* our name: domain or address literal */
	enum smtpc_tls tls;
	bool in_tls;	       /* already TLS (implicit TLS port) */
	const char *auth_user; /* NULL: no AUTH */
	const char *auth_pass;
	unsigned max_msgs; /* transactions per connection; 0 means 1 */
};

struct smtp_client_rcpt {
	const char *addr;  /* mailbox, no angle brackets */
	unsigned notify;   /* SMTP_NOTIFY_* bits, 0: none */
	const char *orcpt; /* "rfc822;addr" decoded, or NULL */
};

struct smtp_client_msg {
	const char *sender; /* "" for the null reverse-path */
	const struct smtp_client_rcpt *rcpts;
	size_t nrcpts;
	uint64_t size;		/* octets of the stored message */
	bool eightbit;		/* body has octets >= 0x80 */
	bool smtputf8;		/* received with the SMTPUTF8 parameter */
	bool hdr_utf8;		/* its header block has octets >= 0x80 */
	bool signed_body;	/* DKIM-signed by us: never downgrade or fold */
	unsigned hdr_line_max;	/* longest header line (smtp_shape) */
	unsigned body_line_max; /* longest body line (smtp_shape) */
	enum smtp_ret ret;
	const char *envid; /* decoded, or NULL */
};

enum smtpc_action {
	SMTPC_ACT_SEND,
	SMTPC_ACT_READ,
	SMTPC_ACT_STARTTLS,
	SMTPC_ACT_BODY,
	SMTPC_ACT_DOWNGRADE,
	SMTPC_ACT_NEED_MSG,
	SMTPC_ACT_CLOSE,
};

enum smtpc_cmd {
	SMTPC_CMD_NONE = 0, /* local decision or lost connection */
	SMTPC_CMD_GREETING,
	SMTPC_CMD_EHLO,
	SMTPC_CMD_HELO,
	SMTPC_CMD_STARTTLS,
	SMTPC_CMD_AUTH,
	SMTPC_CMD_MAIL,
	SMTPC_CMD_RCPT,
	SMTPC_CMD_DATA,
	SMTPC_CMD_DOT, /* end of data */
	SMTPC_CMD_RSET,
	SMTPC_CMD_QUIT,
};

enum smtpc_result {
	SMTPC_PENDING = 0,
	SMTPC_DELIVERED,
	SMTPC_DEFERRED,
	SMTPC_BOUNCED,
};

struct smtp_client_outcome {
	enum smtpc_result result;
	enum smtpc_cmd cmd; /* the command the reply answered */
	int code;	    /* 0: decided locally or connection lost */
	bool local;
	char status[SMTP_STATUS_MAX];
	struct buf reply; /* verbatim reply lines, or our explanation */
};

enum smtpc_fail {
	SMTPC_FAIL_NONE = 0,
	SMTPC_FAIL_GREETING, /* non-2xx greeting */
	SMTPC_FAIL_HELO,     /* EHLO and HELO refused */
	SMTPC_FAIL_TLS,	     /* TLS required but unavailable, or handshake */
	SMTPC_FAIL_AUTH,     /* AUTH impossible here (no TLS, no mechanism) */
	SMTPC_FAIL_AUTH_REFUSED, /* the server refused our credentials */
	SMTPC_FAIL_421,		 /* service closing */
	SMTPC_FAIL_LOST,	 /* connection lost or timed out */
	SMTPC_FAIL_PROTOCOL,	 /* unparsable or out-of-step reply */
	SMTPC_FAIL_RSET,	 /* RSET refused: connection not reusable */
	SMTPC_FAIL_NOMEM,
};

/* RFC 5321 §4.5.3.2 timeout classes. */
enum smtpc_timeout {
	SMTPC_TO_GREETING,   /* 5 min */
	SMTPC_TO_MAIL,	     /* 5 min */
	SMTPC_TO_RCPT,	     /* 5 min */
	SMTPC_TO_DATA_INIT,  /* 2 min */
	SMTPC_TO_DATA_BLOCK, /* 3 min per write */
	SMTPC_TO_DOT,	     /* 10 min */
	SMTPC_TO_OTHER,	     /* 5 min */
};

struct smtp_client;

/* NULL if helo/credentials are invalid (too long, CR/LF/space...). */
struct smtp_client *smtp_client_new(const struct smtp_client_params *p);
void smtp_client_free(struct smtp_client *c);

enum smtpc_action smtp_client_next(struct smtp_client *c, const char **data,
				   size_t *len);
/* A complete reply from smtp_reply_feed(); only valid in READ. */
void smtp_client_reply(struct smtp_client *c, const struct smtp_response *r);
/* EOF, I/O error or timeout (why: short text for the reason). */
void smtp_client_lost(struct smtp_client *c, const char *why);
void smtp_client_tls_done(struct smtp_client *c, bool ok, const char *why);
void smtp_client_body_sent(struct smtp_client *c);
void smtp_client_downgraded(struct smtp_client *c, uint64_t new_size);
/* Give up the current message locally (status class picks the result). */
void smtp_client_msg_abort(struct smtp_client *c, const char *status,
			   const char *text);

bool smtp_client_can_send(const struct smtp_client *c);
/* -1 when not in NEED_MSG, the limit is reached or msg is empty. */
int smtp_client_msg_start(struct smtp_client *c,
			  const struct smtp_client_msg *m);
void smtp_client_quit(struct smtp_client *c);

const struct smtp_client_outcome *
smtp_client_outcome(const struct smtp_client *c, size_t i);
const struct smtp_ehlo *smtp_client_ehlo(const struct smtp_client *c);
bool smtp_client_in_tls(const struct smtp_client *c);
unsigned smtp_client_msgs_done(const struct smtp_client *c);
/* The failure kind and a sanitized one-line reason ("" if none). */
enum smtpc_fail smtp_client_failure(const struct smtp_client *c,
				    const char **reason);
bool smtp_client_try_next(const struct smtp_client *c);
const char *smtp_client_transcript(const struct smtp_client *c);
const char *smtp_client_state_name(const struct smtp_client *c);
const char *smtp_client_cmd_name(enum smtpc_cmd cmd);

enum smtpc_timeout smtp_client_timeout(const struct smtp_client *c);
unsigned smtp_client_timeout_secs(enum smtpc_timeout t);

/* Base64 (RFC 4648) of n bytes appended to out; -1 if out is full. */
int smtp_base64(const void *in, size_t n, struct buf *out);

/*
 * smtp_shape — what delivery must know about a stored message before
 * MAIL: the longest header and body line in wire octets (a leading "."
 * counts twice: it is stuffed; CR and LF excluded), and whether the
 * header block (up to the first empty line) or the body has octets
 * >= 0x80. Bare CR or LF end a line, as the dot-stuffer treats them.
 * Feed the prepend records and the stored body in order.
 */
struct smtp_shape {
	int state; /* private */
	unsigned cur;
	bool in_body;
	unsigned hdr_max, body_max;
	bool hdr_8bit, body_8bit;
};

void smtp_shape_init(struct smtp_shape *s);
void smtp_shape_feed(struct smtp_shape *s, const char *p, size_t n);
/* True if the header block p[0..n) has a field named name (any case). */
bool smtp_has_field(const char *p, size_t n, const char *name);

/*
 * smtp_dotstuff — stored message (CRLF line ends) to DATA wire bytes.
 *
 * A line starting with "." gets another "."; a bare CR or LF becomes CR
 * LF (bare_eol notes it: it should not exist in the spool). No line on
 * the wire is ever longer than SMTPC_LINE_MAX octets (RFC 5321
 * §4.5.3.1.6); a longer one is folded and long_line set:
 *   - in the header block (up to the first empty line) before the last
 *     space or tab that fits, which is RFC 5322 folding: the field's
 *     unfolded value is unchanged; with no such blank, after 998 octets
 *     with CRLF SP (the field gains one space);
 *   - in the body after 998 octets with CRLF (the body gains a line
 *     break there).
 * Either changes what a DKIM signature covers: the engine refuses to
 * send a signed message with such a line, so only unsigned content is
 * ever folded. smtp_dotstuff_end() adds CRLF if the body did not end
 * with one, then "." CRLF. Output never depends on how the input was
 * split.
 */
struct smtp_dotstuff {
	int state; /* private */
	unsigned line_len;
	bool bare_eol;
	bool long_line;
	bool nomem; /* buf_add failed below out->max */
	uint64_t out_bytes;
	bool in_body;		       /* private: past the header block */
	unsigned plen, emitted;	       /* private: header line held back */
	char pend[SMTPC_LINE_MAX + 2]; /* private: since its last blank */
	unsigned qlen;		       /* private: decided, not yet in out */
	char q[SMTPC_LINE_MAX + 16];
};

void smtp_dotstuff_init(struct smtp_dotstuff *d);
/* Consume up to n bytes; stops early when out is full (flush, call again). */
size_t smtp_dotstuff_feed(struct smtp_dotstuff *d, const char *in, size_t n,
			  struct buf *out);
/* Append the terminator; -1 if out lacks room (flush and call again). */
int smtp_dotstuff_end(struct smtp_dotstuff *d, struct buf *out);

#endif
