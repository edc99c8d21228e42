/*
 * fuzz_smtp_reply — libFuzzer target for mail/smtp_reply.c and the
 * engine in mail/smtp_client.c that consumes its replies.
 *
 * The first byte picks the piece length (low 4 bits), the TLS policy,
 * whether AUTH is configured and whether the TLS handshake succeeds;
 * the rest is what "the server" sends. The replies, parsed from pieces,
 * drive a client through as many transactions as the bytes allow; the
 * caller's side (TLS, body, downgrade, next message) is simulated.
 *
 * Invariants: parsing in pieces and in one feed gives the same replies;
 * every reply respects the line, count and size limits; the client only
 * writes whole CRLF lines with no other CR or LF; no credential ever
 * reaches the transcript; the engine always makes progress; when a
 * transaction ends, no recipient is left pending; the dot-stuffer gives
 * the same CRLF-only bytes for any split.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/smtp_client.h"
#include "mail/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct smtp_client_rcpt fz_rcpts[] = {
    {.addr = "a@example.org",
     .notify = SMTP_NOTIFY_FAILURE,
     .orcpt = "rfc822;a@example.org"},
    {.addr = "b@example.org"},
    {.addr = "c@example.org", .notify = SMTP_NOTIFY_NEVER},
};
static const struct smtp_client_msg fz_msgs[] = {
    {.sender = "s@example.net",
     .rcpts = fz_rcpts,
     .nrcpts = 3,
     .size = 5000,
     .eightbit = true,
     .envid = "x"},
    {.sender = "",
     .rcpts = fz_rcpts,
     .nrcpts = 1,
     .size = 10,
     .eightbit = true,
     .signed_body = true},
    {.sender = "s@example.net", .rcpts = fz_rcpts + 1, .nrcpts = 2},
};

/* FNV-1a over every reply, so two parse runs can be compared. */
static uint64_t
fz_hash(uint64_t h, const struct smtp_response *r)
{
	size_t i;

	h = (h ^ (uint64_t)r->code) * 1099511628211u;
	h = (h ^ (uint64_t)r->error) * 1099511628211u;
	h = (h ^ (uint64_t)r->nlines) * 1099511628211u;
	for (i = 0; i < r->text.len; i++)
		h = (h ^ (unsigned char)r->text.data[i]) * 1099511628211u;
	return h;
}

static void
fz_check_reply(const struct smtp_response *r)
{
	size_t i;

	if (r->nlines > SMTP_REPLY_LINES_MAX ||
	    r->text.len > SMTP_REPLY_TEXT_MAX)
		abort();
	for (i = 0; i < r->nlines; i++)
		if (r->lines[i].len > SMTP_REPLY_LINE_MAX ||
		    (size_t)r->lines[i].off + r->lines[i].len > r->text.len)
			abort();
	if (r->error == SMTP_REPLY_OK && (r->code < 200 || r->code > 599))
		abort();
}

static void
fz_check_output(const char *p, size_t n)
{
	size_t i;

	if (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n')
		abort();
	for (i = 0; i < n; i++) {
		if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
			abort();
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			abort();
	}
}

static void
fz_check_done(struct smtp_client *c, size_t nrcpts, bool failed)
{
	const struct smtp_client_outcome *o;
	size_t i;

	for (i = 0; i < nrcpts; i++) {
		o = smtp_client_outcome(c, i);
		if (o == NULL)
			abort();
		if (o->result == SMTPC_PENDING && !failed)
			abort();
		if (o->result == SMTPC_PENDING && !smtp_client_try_next(c))
			abort();
	}
}

/* The caller's side of one action; false when the session is over. */
static bool
fz_act(struct smtp_client *c, enum smtpc_action a, uint8_t cfg, size_t *nmsg,
       size_t *cur)
{
	const char *reason;

	switch (a) {
	case SMTPC_ACT_STARTTLS:
		smtp_client_tls_done(c, (cfg & 0x80) != 0, "handshake");
		return true;
	case SMTPC_ACT_BODY:
		smtp_client_body_sent(c);
		return true;
	case SMTPC_ACT_DOWNGRADE:
		if (cfg & 0x40)
			smtp_client_downgraded(c, 6000);
		else
			smtp_client_msg_abort(c, "4.6.0", "cannot downgrade");
		return true;
	case SMTPC_ACT_NEED_MSG:
		if (*cur != SIZE_MAX)
			fz_check_done(c, fz_msgs[*cur].nrcpts, false);
		if (*nmsg < 3 && smtp_client_can_send(c)) {
			*cur = *nmsg;
			if (smtp_client_msg_start(c, &fz_msgs[(*nmsg)++]) < 0)
				abort();
		} else
			smtp_client_quit(c);
		return true;
	case SMTPC_ACT_CLOSE:
		if (*cur != SIZE_MAX)
			fz_check_done(c, fz_msgs[*cur].nrcpts,
				      smtp_client_failure(c, &reason) !=
					  SMTPC_FAIL_NONE);
		return false;
	default:
		abort();
	}
}

static uint64_t
fz_session(const char *in, size_t n, size_t piece, uint8_t cfg)
{
	static const enum smtpc_tls pol[] = {SMTPC_TLS_OFF, SMTPC_TLS_MAY,
					     SMTPC_TLS_MUST, SMTPC_TLS_MAY};
	struct smtp_client_params prm = {.helo = "out.example.net",
					 .tls = pol[(cfg >> 4) & 3],
					 .max_msgs = 2};
	struct smtp_reply_parser p;
	struct smtp_response r;
	struct smtp_client *c;
	enum smtpc_action a;
	const char *data;
	size_t pos = 0, len, used, nmsg = 0, cur = SIZE_MAX, steps = 0;
	uint64_t h = 1469598103934665603u;
	bool done;

	if (cfg & 0x08) {
		prm.auth_user = "user";
		prm.auth_pass = "pw-secret";
	}
	c = smtp_client_new(&prm);
	if (c == NULL)
		abort();
	smtp_reply_parser_init(&p);
	for (;;) {
		if (++steps > 100000)
			abort(); /* no progress */
		a = smtp_client_next(c, &data, &len);
		if (a == SMTPC_ACT_SEND) {
			fz_check_output(data, len);
			if (strstr(smtp_client_transcript(c), "cHctc2VjcmV0") ||
			    strstr(smtp_client_transcript(c), "AHVzZXIAcHct"))
				abort();
			continue;
		}
		if (a != SMTPC_ACT_READ) {
			if (!fz_act(c, a, cfg, &nmsg, &cur))
				break;
			continue;
		}
		if (pos >= n) {
			smtp_client_lost(c, "eof");
			continue;
		}
		len = n - pos < piece ? n - pos : piece;
		used = smtp_reply_feed(&p, in + pos, len, &r, &done);
		if (used > len || (!done && used != len))
			abort();
		pos += used;
		if (done) {
			fz_check_reply(&r);
			h = fz_hash(h, &r);
			smtp_client_reply(c, &r);
			smtp_response_free(&r);
		}
	}
	/* Replies the session did not read, so both runs hash the same. */
	while (pos < n) {
		used = smtp_reply_feed(&p, in + pos, n - pos, &r, &done);
		pos += used;
		if (done) {
			fz_check_reply(&r);
			h = fz_hash(h, &r);
			smtp_response_free(&r);
		}
	}
	smtp_reply_parser_free(&p);
	smtp_client_free(c);
	return h;
}

/* Reply hashes from one whole feed. */
static uint64_t
fz_whole(const char *in, size_t n)
{
	struct smtp_reply_parser p;
	struct smtp_response r;
	uint64_t h = 1469598103934665603u;
	size_t pos = 0;
	bool done;

	smtp_reply_parser_init(&p);
	while (pos < n) {
		pos += smtp_reply_feed(&p, in + pos, n - pos, &r, &done);
		if (done) {
			h = fz_hash(h, &r);
			smtp_response_free(&r);
		}
	}
	smtp_reply_parser_free(&p);
	return h;
}

static void
fz_stuff(const char *in, size_t n, size_t piece, struct buf *res)
{
	struct smtp_dotstuff d;
	struct buf out;
	size_t pos = 0, len;

	smtp_dotstuff_init(&d);
	buf_init(&out, 7);
	while (pos < n) {
		len = n - pos < piece ? n - pos : piece;
		pos += smtp_dotstuff_feed(&d, in + pos, len, &out);
		if (buf_add(res, out.data, out.len) < 0)
			abort();
		buf_reset(&out);
	}
	while (smtp_dotstuff_end(&d, &out) < 0) {
		if (buf_add(res, out.data, out.len) < 0)
			abort();
		buf_reset(&out);
	}
	if (buf_add(res, out.data, out.len) < 0 || d.out_bytes != res->len)
		abort();
	buf_free(&out);
}

static void
fz_dotstuff(const char *in, size_t n, size_t piece)
{
	struct buf a, b;

	buf_init(&a, 3 * n + 16);
	buf_init(&b, 3 * n + 16);
	fz_stuff(in, n, n ? n : 1, &a);
	fz_stuff(in, n, piece, &b);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	fz_check_output(a.data, a.len);
	if (a.len < 3 || memcmp(a.data + a.len - 3, ".\r\n", 3) != 0 ||
	    (a.len > 3 && memcmp(a.data + a.len - 5, "\r\n", 2) != 0))
		abort();
	buf_free(&a);
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in;
	size_t piece;
	uint8_t cfg;

	if (size == 0)
		return 0;
	cfg = data[0];
	piece = 1 + (cfg & 7) * 3;
	in = (const char *)data + 1;
	size--;
	if (fz_session(in, size, piece, cfg) != fz_whole(in, size))
		abort();
	fz_dotstuff(in, size, piece);
	return 0;
}
