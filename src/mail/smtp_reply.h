/*
 * smtp_reply — parse SMTP replies sent by remote servers (pure).
 *
 * Trust: the bytes come from any server on the internet. Everything here
 * is bounded and never trusts a length or a count from the peer.
 *
 * smtp_reply_feed() is incremental: give it whatever the socket produced;
 * it consumes bytes until one complete reply (RFC 5321 §4.2: zero or more
 * "ddd-text" lines, then "ddd text" or "ddd") is assembled, and stops
 * there so the caller can act on it. The result never depends on how the
 * input was split across calls.
 *
 * Each line is kept verbatim (without its line end) in resp->text, lines
 * joined by CRLF, so a bounce can quote every line the server wrote. The
 * enhanced status code (RFC 2034/3463 class.subject.detail) is parsed
 * from each line where present.
 *
 * Tolerated but recorded: bare LF as line end (bare_lf); a CR not
 * followed by LF stays in the line text (the sanitizer escapes it).
 *
 * Protocol errors (resp->error != SMTP_REPLY_OK): a line without a valid
 * reply code, a continuation line with another code than the first, a
 * line longer than SMTP_REPLY_LINE_MAX octets (the first part is kept),
 * more than SMTP_REPLY_LINES_MAX lines or SMTP_REPLY_TEXT_MAX octets, an
 * allocation failure. The reply is completed at once with what was read
 * and the parser becomes dead: later calls consume all input and return
 * nothing. The caller must drop the connection (the reply stream can no
 * longer be trusted to stay in step with the commands).
 *
 * smtp_ehlo_parse() extracts the extensions from an EHLO reply, keywords
 * case-insensitive. smtp_reply_sanitize() makes reply text safe to store,
 * log or quote: control characters and invalid UTF-8 become \xNN,
 * backslash becomes \\, valid UTF-8 is kept.
 *
 * Ownership: a struct smtp_response owns its text buffer; free it with
 * smtp_response_free(). The parser owns nothing once freed.
 */
#ifndef TODOKU_MAIL_SMTP_REPLY_H
#define TODOKU_MAIL_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define SMTP_REPLY_LINE_MAX 2048  /* octets per line, line end excluded */
#define SMTP_REPLY_LINES_MAX 100  /* lines per reply */
#define SMTP_REPLY_TEXT_MAX 65536 /* octets per reply, CRLFs included */
#define SMTP_STATUS_MAX 12	  /* "5.123.123" + NUL fits */

enum smtp_reply_err {
	SMTP_REPLY_OK = 0,
	SMTP_REPLY_ESYNTAX, /* line without a reply code */
	SMTP_REPLY_EMIXED,  /* continuation line with a different code */
	SMTP_REPLY_ELONG,   /* line longer than SMTP_REPLY_LINE_MAX */
	SMTP_REPLY_ELINES,  /* more than SMTP_REPLY_LINES_MAX lines */
	SMTP_REPLY_EBIG,    /* more than SMTP_REPLY_TEXT_MAX octets */
	SMTP_REPLY_ENOMEM,  /* allocation failed */
};

struct smtp_reply_line {
	uint32_t off; /* into text.data */
	uint32_t len;
	char status[SMTP_STATUS_MAX]; /* enhanced status or "" */
};

struct smtp_response {
	int code; /* 200..599; 0 if the first line had no code */
	enum smtp_reply_err error;
	bool bare_lf; /* some line ended in a bare LF */
	size_t nlines;
	struct smtp_reply_line lines[SMTP_REPLY_LINES_MAX];
	struct buf text; /* the lines verbatim, joined by CRLF */
};

struct smtp_reply_parser {
	int state; /* private */
	bool cr;   /* private: the last octet was a CR */
	size_t linelen;
	char line[SMTP_REPLY_LINE_MAX + 1];
	struct smtp_response cur; /* private: reply being assembled */
};

enum smtp_auth_mech {
	SMTP_AUTH_PLAIN = 0x1,
	SMTP_AUTH_LOGIN = 0x2,
	SMTP_AUTH_CRAM_MD5 = 0x4,
	SMTP_AUTH_XOAUTH2 = 0x8,
	SMTP_AUTH_OTHER = 0x80,
};

/* Extensions a server advertised in its EHLO reply. */
struct smtp_ehlo {
	bool pipelining;
	bool size;
	uint64_t size_max; /* 0: no limit announced */
	bool eightbitmime;
	bool smtputf8;
	bool starttls;
	bool auth;
	unsigned auth_mechs; /* enum smtp_auth_mech bits */
	bool dsn;
	bool enhancedstatuscodes;
	bool chunking;
};

void smtp_reply_parser_init(struct smtp_reply_parser *p);
void smtp_reply_parser_free(struct smtp_reply_parser *p);
/* True once a protocol error made the parser dead. */
bool smtp_reply_parser_dead(const struct smtp_reply_parser *p);
/*
 * Consume up to n bytes. Returns the bytes consumed; when *done is set,
 * out (initialised by this call; free it with smtp_response_free) holds
 * a complete reply and the remaining input is for the next call.
 */
size_t smtp_reply_feed(struct smtp_reply_parser *p, const char *in, size_t n,
		       struct smtp_response *out, bool *done);

void smtp_response_init(struct smtp_response *r);
void smtp_response_free(struct smtp_response *r);
/* Deep copy; -1 on allocation failure (dst is then empty). */
int smtp_response_copy(struct smtp_response *dst,
		       const struct smtp_response *src);
/* Line i: the whole line, code included, without its line end. */
const char *smtp_response_line(const struct smtp_response *r, size_t i,
			       size_t *len);
/*
 * The enhanced status that applies: the first line's, if its class
 * matches the reply code's first digit; else derived from the code
 * (2.0.0, 4.0.0, 5.0.0). Writes at most SMTP_STATUS_MAX octets.
 */
void smtp_response_status(const struct smtp_response *r, char *dst);
const char *smtp_reply_strerror(enum smtp_reply_err e);

/* Parse "class.subject.detail" at s (followed by SP or end); length or 0. */
size_t smtp_status_parse(const char *s, size_t n, char *dst);

void smtp_ehlo_parse(const struct smtp_response *r, struct smtp_ehlo *e);

/* Append the sanitized form of n bytes at s to out; -1 if out is full. */
int smtp_reply_sanitize(const char *s, size_t n, struct buf *out);
/* All lines sanitized, joined by "\n"; -1 if out is full. */
int smtp_response_quote(const struct smtp_response *r, struct buf *out);

#endif
