/*
 * test_smtp_client — outbound SMTP engine (mail/smtp_client.c).
 *
 * Dialogues are data: "C: line" is a command the client must send next,
 * "S: line" a reply line from the server (fed through the reply parser
 * so multi-line replies arrive as one), and single words drive the
 * caller's side: MSG (start the next message), QUIT, TLS / TLSFAIL
 * (handshake result), BODY (body sent), DOWNGRADE, LOST (timeout or
 * EOF), CLOSE (the engine must say close).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "mail/smtp_client.h"

struct world {
	struct smtp_client *c;
	struct smtp_reply_parser p;
	struct buf pending;    /* sent, not yet matched by "C:" */
	struct buf transcript; /* every transcript the engine produced */
	const struct smtp_client_msg *msgs;
	size_t nmsgs, next_msg;
	uint64_t downgraded_size;
};

static enum smtpc_action
w_next(struct world *w)
{
	const char *data;
	size_t len;
	enum smtpc_action a;

	while ((a = smtp_client_next(w->c, &data, &len)) == SMTPC_ACT_SEND) {
		assert_int_equal(buf_add(&w->pending, data, len), 0);
		assert_int_equal(
		    buf_adds(&w->transcript, smtp_client_transcript(w->c)), 0);
	}
	return a;
}

static void
w_cmd(struct world *w, const char *want)
{
	size_t n = strlen(want);

	if (w->pending.len == 0)
		(void)w_next(w);
	if (w->pending.len < n + 2 || memcmp(w->pending.data, want, n) != 0 ||
	    memcmp(w->pending.data + n, "\r\n", 2) != 0)
		fail_msg("expected \"%s\", client sent \"%s\"", want,
			 w->pending.data ? w->pending.data : "(nothing)");
	buf_consume(&w->pending, n + 2);
}

static void
w_reply_line(struct world *w, const char *line)
{
	struct smtp_response r;
	struct buf b;
	bool done = false;
	size_t used;

	buf_init(&b, 8192);
	assert_int_equal(buf_addf(&b, "%s\r\n", line), 0);
	used = smtp_reply_feed(&w->p, b.data, b.len, &r, &done);
	assert_int_equal(used, b.len);
	buf_free(&b);
	if (!done)
		return;
	if (w->pending.len != 0)
		fail_msg("unmatched client output: %s", w->pending.data);
	assert_int_equal(w_next(w), SMTPC_ACT_READ);
	if (w->pending.len != 0)
		fail_msg("unmatched client output: %s", w->pending.data);
	smtp_client_reply(w->c, &r);
	smtp_response_free(&r);
}

static void
w_expect(struct world *w, enum smtpc_action want)
{
	if (w->pending.len != 0)
		fail_msg("unmatched client output: %s", w->pending.data);
	assert_int_equal(w_next(w), want);
}

static void
w_step(struct world *w, const char *s)
{
	if (strncmp(s, "C: ", 3) == 0)
		w_cmd(w, s + 3);
	else if (strncmp(s, "S: ", 3) == 0)
		w_reply_line(w, s + 3);
	else if (strcmp(s, "MSG") == 0) {
		w_expect(w, SMTPC_ACT_NEED_MSG);
		assert_true(w->next_msg < w->nmsgs);
		assert_true(smtp_client_can_send(w->c));
		assert_int_equal(
		    smtp_client_msg_start(w->c, &w->msgs[w->next_msg++]), 0);
	} else if (strcmp(s, "QUIT") == 0) {
		w_expect(w, SMTPC_ACT_NEED_MSG);
		smtp_client_quit(w->c);
	} else if (strcmp(s, "TLS") == 0) {
		w_expect(w, SMTPC_ACT_STARTTLS);
		smtp_client_tls_done(w->c, true, NULL);
	} else if (strcmp(s, "TLSFAIL") == 0) {
		w_expect(w, SMTPC_ACT_STARTTLS);
		smtp_client_tls_done(w->c, false, "certificate expired");
	} else if (strcmp(s, "BODY") == 0) {
		w_expect(w, SMTPC_ACT_BODY);
		assert_int_equal(smtp_client_timeout(w->c),
				 SMTPC_TO_DATA_BLOCK);
		smtp_client_body_sent(w->c);
		assert_int_equal(smtp_client_timeout(w->c), SMTPC_TO_DOT);
	} else if (strcmp(s, "DOWNGRADE") == 0) {
		w_expect(w, SMTPC_ACT_DOWNGRADE);
		smtp_client_downgraded(w->c, w->downgraded_size);
	} else if (strcmp(s, "LOST") == 0)
		smtp_client_lost(w->c, "timeout");
	else if (strcmp(s, "CLOSE") == 0)
		w_expect(w, SMTPC_ACT_CLOSE);
	else
		fail_msg("bad script step %s", s);
}

/* Run script (NULL-terminated); the world stays for assertions. */
static void
w_run(struct world *w, const struct smtp_client_params *p,
      const struct smtp_client_msg *msgs, size_t nmsgs,
      const char *const *script)
{
	memset(w, 0, sizeof(*w));
	w->c = smtp_client_new(p);
	assert_non_null(w->c);
	smtp_reply_parser_init(&w->p);
	buf_init(&w->pending, 1 << 20);
	buf_init(&w->transcript, 1 << 20);
	w->msgs = msgs;
	w->nmsgs = nmsgs;
	for (; *script != NULL; script++)
		w_step(w, *script);
}

static void
w_free(struct world *w)
{
	smtp_client_free(w->c);
	smtp_reply_parser_free(&w->p);
	buf_free(&w->pending);
	buf_free(&w->transcript);
}

static void
assert_outcome(struct world *w, size_t i, enum smtpc_result res,
	       enum smtpc_cmd cmd, int code, const char *status)
{
	const struct smtp_client_outcome *o = smtp_client_outcome(w->c, i);

	assert_non_null(o);
	assert_int_equal(o->result, res);
	assert_int_equal(o->cmd, cmd);
	assert_int_equal(o->code, code);
	assert_string_equal(o->status, status);
}

static const struct smtp_client_params plain_params = {
    .helo = "out.example.net", .tls = SMTPC_TLS_OFF, .max_msgs = 10};

static const struct smtp_client_rcpt one_rcpt[] = {{.addr = "bob@example.org"}};
static const struct smtp_client_rcpt two_rcpts[] = {
    {.addr = "bob@example.org"}, {.addr = "carol@example.org"}};

static const struct smtp_client_msg msg1 = {.sender = "alice@example.net",
					    .rcpts = one_rcpt,
					    .nrcpts = 1,
					    .size = 1234};
static const struct smtp_client_msg msg2 = {.sender = "alice@example.net",
					    .rcpts = two_rcpts,
					    .nrcpts = 2,
					    .size = 1234};

#define GREET "S: 220 mx.example.org ESMTP"

static void
test_happy_lockstep(void **state)
{
	static const char *const script[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250-SIZE 10000000",
	    "S: 250 ENHANCEDSTATUSCODES",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net> SIZE=1234",
	    "S: 250 2.1.0 Ok",
	    "C: RCPT TO:<bob@example.org>",
	    "S: 250 2.1.5 Ok",
	    "C: DATA",
	    "S: 354 End data with <CR><LF>.<CR><LF>",
	    "BODY",
	    "S: 250 2.0.0 Ok: queued as 4Xyz",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 2.0.0 Bye",
	    "CLOSE",
	    NULL};
	struct world w;
	const char *reason;

	w_run(&w, &plain_params, &msg1, 1, script);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	assert_string_equal(smtp_client_outcome(w.c, 0)->reply.data,
			    "250 2.0.0 Ok: queued as 4Xyz");
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_NONE);
	assert_int_equal(smtp_client_msgs_done(w.c), 1);
	w_free(&w);
}

static void
test_happy_pipelining(void **state)
{
	static const struct smtp_client_rcpt rc[] = {
	    {.addr = "bob@example.org",
	     .notify = SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY,
	     .orcpt = "rfc822;Bob+x@example.org"},
	    {.addr = "carol@example.org", .notify = SMTP_NOTIFY_NEVER}};
	static const struct smtp_client_msg m = {.sender = "alice@example.net",
						 .rcpts = rc,
						 .nrcpts = 2,
						 .size = 99,
						 .eightbit = true,
						 .ret = SMTP_RET_HDRS,
						 .envid = "id=1"};
	static const char *const script[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250-PIPELINING",
	    "S: 250-8BITMIME",
	    "S: 250-DSN",
	    "S: 250 SIZE",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net> SIZE=99 BODY=8BITMIME RET=HDRS "
	    "ENVID=id+3D1",
	    "C: RCPT TO:<bob@example.org> NOTIFY=FAILURE,DELAY "
	    "ORCPT=rfc822;Bob+2Bx@example.org",
	    "C: RCPT TO:<carol@example.org> NOTIFY=NEVER",
	    "C: DATA",
	    "S: 250 2.1.0 Ok",
	    "S: 250 2.1.5 Ok",
	    "S: 250 2.1.5 Ok",
	    "S: 354 go ahead",
	    "BODY",
	    "S: 250 2.0.0 queued",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	struct world w;

	w_run(&w, &plain_params, &m, 1, script);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	assert_outcome(&w, 1, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	w_free(&w);
}

/* DSN parameters only to a server that offers DSN (RFC 3461 §5.1):
 * without it MAIL and RCPT carry none of them; with it, xtext encodes
 * '+', '=', space and controls, and a utf-8 ORCPT keeps its type. */
static void
test_dsn_params_only_when_offered(void **state)
{
	static const struct smtp_client_rcpt rc[] = {
	    {.addr = "bob@example.org",
	     .notify = SMTP_NOTIFY_SUCCESS,
	     .orcpt = "utf-8;b o=b+@example.org"}};
	static const struct smtp_client_msg m = {.sender = "alice@example.net",
						 .rcpts = rc,
						 .nrcpts = 1,
						 .size = 10,
						 .ret = SMTP_RET_FULL,
						 .envid = "a b"};
	static const char *const plain[] = {GREET,
					    "C: EHLO out.example.net",
					    "S: 250 mx.example.org",
					    "MSG",
					    "C: MAIL FROM:<alice@example.net>",
					    "S: 250 2.1.0 Ok",
					    "C: RCPT TO:<bob@example.org>",
					    "S: 250 2.1.5 Ok",
					    "C: DATA",
					    "S: 354 go",
					    "BODY",
					    "S: 250 2.0.0 queued",
					    "QUIT",
					    "C: QUIT",
					    "S: 221 Bye",
					    "CLOSE",
					    NULL};
	static const char *const dsn[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250 DSN",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net> RET=FULL ENVID=a+20b",
	    "S: 250 2.1.0 Ok",
	    "C: RCPT TO:<bob@example.org> NOTIFY=SUCCESS "
	    "ORCPT=utf-8;b+20o+3Db+2B@example.org",
	    "S: 250 2.1.5 Ok",
	    "C: DATA",
	    "S: 354 go",
	    "BODY",
	    "S: 250 2.0.0 queued",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	struct world w;

	w_run(&w, &plain_params, &m, 1, plain);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	assert_false(smtp_client_ehlo(w.c)->dsn);
	w_free(&w);
	w_run(&w, &plain_params, &m, 1, dsn);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	assert_true(smtp_client_ehlo(w.c)->dsn);
	w_free(&w);
}

static void
test_rcpt_busy_one_of_two(void **state)
{
	static const char *const script[] = {GREET,
					     "C: EHLO out.example.net",
					     "S: 250 mx.example.org",
					     "MSG",
					     "C: MAIL FROM:<alice@example.net>",
					     "S: 250 2.1.0 Ok",
					     "C: RCPT TO:<bob@example.org>",
					     "S: 250 2.1.5 Ok",
					     "C: RCPT TO:<carol@example.org>",
					     "S: 450 4.5.0 Mail system is Busy",
					     "C: DATA",
					     "S: 354 go",
					     "BODY",
					     "S: 250 2.0.0 queued",
					     "QUIT",
					     "C: QUIT",
					     "S: 221 Bye",
					     "CLOSE",
					     NULL};
	struct world w;

	w_run(&w, &plain_params, &msg2, 1, script);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	assert_outcome(&w, 1, SMTPC_DEFERRED, SMTPC_CMD_RCPT, 450, "4.5.0");
	assert_string_equal(smtp_client_outcome(w.c, 1)->reply.data,
			    "450 4.5.0 Mail system is Busy");
	w_free(&w);
}

static void
test_rcpt_no_such_user(void **state)
{
	static const char *const lockstep[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250 mx.example.org",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net>",
	    "S: 250 2.1.0 Ok",
	    "C: RCPT TO:<bob@example.org>",
	    "S: 553 5.3.2 No such user",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	/* Pipelined: DATA refused, as it should be. */
	static const char *const piped[] = {GREET,
					    "C: EHLO out.example.net",
					    "S: 250-mx.example.org",
					    "S: 250 PIPELINING",
					    "MSG",
					    "C: MAIL FROM:<alice@example.net>",
					    "C: RCPT TO:<bob@example.org>",
					    "C: DATA",
					    "S: 250 2.1.0 Ok",
					    "S: 553 5.3.2 No such user",
					    "S: 554 5.5.1 No valid recipients",
					    "QUIT",
					    "C: QUIT",
					    "S: 221 Bye",
					    "CLOSE",
					    NULL};
	/* RFC 2920 §3.1: DATA accepted anyway: send a lone dot. */
	static const char *const piped354[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250 PIPELINING",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net>",
	    "C: RCPT TO:<bob@example.org>",
	    "C: DATA",
	    "S: 250 2.1.0 Ok",
	    "S: 553 5.3.2 No such user",
	    "S: 354 go ahead",
	    "C: .",
	    "S: 554 5.5.1 no recipients",
	    "MSG",
	    "C: RSET",
	    "S: 250 2.0.0 Ok",
	    "C: MAIL FROM:<alice@example.net>",
	    "C: RCPT TO:<bob@example.org>",
	    "C: DATA",
	    "S: 250 2.1.0 Ok",
	    "S: 250 2.1.5 Ok",
	    "S: 354 go ahead",
	    "BODY",
	    "S: 250 ok",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	const struct smtp_client_msg two[] = {msg1, msg1};
	struct world w;

	w_run(&w, &plain_params, &msg1, 1, lockstep);
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_RCPT, 553, "5.3.2");
	w_free(&w);
	w_run(&w, &plain_params, &msg1, 1, piped);
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_RCPT, 553, "5.3.2");
	w_free(&w);
	w_run(&w, &plain_params, two, 2, piped354);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	w_free(&w);
}

static void
test_mail_refused(void **state)
{
	static const char *const piped[] = {GREET,
					    "C: EHLO out.example.net",
					    "S: 250-mx.example.org",
					    "S: 250 PIPELINING",
					    "MSG",
					    "C: MAIL FROM:<alice@example.net>",
					    "C: RCPT TO:<bob@example.org>",
					    "C: RCPT TO:<carol@example.org>",
					    "C: DATA",
					    "S: 550 5.7.1 Sender rejected",
					    "S: 503 5.5.1 need MAIL",
					    "S: 503 5.5.1 need MAIL",
					    "S: 503 5.5.1 need MAIL",
					    "QUIT",
					    "C: QUIT",
					    "S: 221 Bye",
					    "CLOSE",
					    NULL};
	struct world w;

	w_run(&w, &plain_params, &msg2, 1, piped);
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_MAIL, 550, "5.7.1");
	assert_outcome(&w, 1, SMTPC_BOUNCED, SMTPC_CMD_MAIL, 550, "5.7.1");
	w_free(&w);
}

static void
test_dot_multiline_550(void **state)
{
	static const char *const script[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250 mx.example.org",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net>",
	    "S: 250 2.1.0 Ok",
	    "C: RCPT TO:<bob@example.org>",
	    "S: 250 2.1.5 Ok",
	    "C: DATA",
	    "S: 354 go",
	    "BODY",
	    "S: 550-5.7.1 [192.0.2.1] Our system has detected that this",
	    "S: 550-5.7.1 message is likely unsolicited mail.",
	    "S: 550 5.7.1 https://support.example/mail 1si",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	struct world w;

	w_run(&w, &plain_params, &msg1, 1, script);
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_DOT, 550, "5.7.1");
	assert_string_equal(
	    smtp_client_outcome(w.c, 0)->reply.data,
	    "550-5.7.1 [192.0.2.1] Our system has detected that this\r\n"
	    "550-5.7.1 message is likely unsolicited mail.\r\n"
	    "550 5.7.1 https://support.example/mail 1si");
	w_free(&w);
}

static void
test_greeting_failures(void **state)
{
	static const char *const s421[] = {"S: 421 4.3.2 too many connections",
					   "CLOSE", NULL};
	static const char *const s554[] = {"S: 554 5.7.1 go away", "C: QUIT",
					   "S: 221 bye", "CLOSE", NULL};
	static const char *const stimeout[] = {"LOST", "CLOSE", NULL};
	struct world w;
	const char *reason;

	w_run(&w, &plain_params, &msg1, 1, s421);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_421);
	assert_string_equal(reason,
			    "service closing: 421 4.3.2 too many connections");
	assert_true(smtp_client_try_next(w.c));
	assert_null(smtp_client_outcome(w.c, 0));
	w_free(&w);

	w_run(&w, &plain_params, &msg1, 1, s554);
	assert_int_equal(smtp_client_failure(w.c, &reason),
			 SMTPC_FAIL_GREETING);
	assert_true(smtp_client_try_next(w.c));
	w_free(&w);

	memset(&w, 0, sizeof(w));
	w.c = smtp_client_new(&plain_params);
	assert_int_equal(smtp_client_timeout(w.c), SMTPC_TO_GREETING);
	assert_int_equal(smtp_client_timeout_secs(SMTPC_TO_GREETING), 300);
	smtp_client_free(w.c);
	w_run(&w, &plain_params, &msg1, 1, stimeout);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_LOST);
	assert_string_equal(reason, "connection lost in greeting: timeout");
	assert_true(smtp_client_try_next(w.c));
	w_free(&w);
}

static void
test_ehlo_502_helo(void **state)
{
	static const char *const script[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 502 5.5.2 Command not recognized",
	    "C: HELO out.example.net",
	    "S: 250 mx.example.org",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net>",
	    "S: 250 Ok",
	    "C: RCPT TO:<bob@example.org>",
	    "S: 250 Ok",
	    "C: DATA",
	    "S: 354 go",
	    "BODY",
	    "S: 250 Ok",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	static const char *const both[] = {
	    GREET,	   "C: EHLO out.example.net",
	    "S: 500 what", "C: HELO out.example.net",
	    "S: 501 no",   "C: QUIT",
	    "S: 221 Bye",  "CLOSE",
	    NULL};
	struct world w;
	const char *reason;

	w_run(&w, &plain_params, &msg1, 1, script);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	w_free(&w);
	w_run(&w, &plain_params, &msg1, 1, both);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_HELO);
	w_free(&w);
}

static void
test_starttls(void **state)
{
	static const struct smtp_client_params may = {.helo = "out.example.net",
						      .tls = SMTPC_TLS_MAY};
	static const struct smtp_client_params must = {
	    .helo = "out.example.net", .tls = SMTPC_TLS_MUST};
	/* After TLS, PIPELINING is forgotten: the new EHLO lacks it. */
	static const char *const ok[] = {GREET,
					 "C: EHLO out.example.net",
					 "S: 250-mx.example.org",
					 "S: 250-PIPELINING",
					 "S: 250 STARTTLS",
					 "C: STARTTLS",
					 "S: 220 2.0.0 Ready to start TLS",
					 "TLS",
					 "C: EHLO out.example.net",
					 "S: 250-mx.example.org",
					 "S: 250 8BITMIME",
					 "MSG",
					 "C: MAIL FROM:<alice@example.net>",
					 "S: 250 Ok",
					 "C: RCPT TO:<bob@example.org>",
					 "S: 250 Ok",
					 "C: DATA",
					 "S: 354 go",
					 "BODY",
					 "S: 250 Ok",
					 "QUIT",
					 "C: QUIT",
					 "S: 221 Bye",
					 "CLOSE",
					 NULL};
	static const char *const not_offered[] = {GREET,
						  "C: EHLO out.example.net",
						  "S: 250 mx.example.org",
						  "C: QUIT",
						  "S: 221 Bye",
						  "CLOSE",
						  NULL};
	static const char *const refused[] = {GREET,
					      "C: EHLO out.example.net",
					      "S: 250-mx.example.org",
					      "S: 250 STARTTLS",
					      "C: STARTTLS",
					      "S: 454 4.7.0 TLS not available",
					      "C: QUIT",
					      "S: 221 Bye",
					      "CLOSE",
					      NULL};
	static const char *const may_refused[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250 STARTTLS",
	    "C: STARTTLS",
	    "S: 454 4.7.0 TLS not available",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net>",
	    "S: 250 Ok",
	    "C: RCPT TO:<bob@example.org>",
	    "LOST",
	    "CLOSE",
	    NULL};
	static const char *const handshake[] = {GREET,
						"C: EHLO out.example.net",
						"S: 250-mx.example.org",
						"S: 250 STARTTLS",
						"C: STARTTLS",
						"S: 220 go",
						"TLSFAIL",
						"CLOSE",
						NULL};
	struct world w;
	const char *reason;

	w_run(&w, &may, &msg1, 1, ok);
	assert_true(smtp_client_in_tls(w.c));
	assert_false(smtp_client_ehlo(w.c)->starttls);
	assert_true(smtp_client_ehlo(w.c)->eightbitmime);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	w_free(&w);
	w_run(&w, &must, &msg1, 1, ok);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	w_free(&w);

	w_run(&w, &must, &msg1, 1, not_offered);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_TLS);
	assert_string_equal(
	    reason, "TLS required but the server does not offer STARTTLS");
	assert_true(smtp_client_try_next(w.c));
	assert_false(smtp_client_can_send(w.c));
	assert_int_equal(smtp_client_msg_start(w.c, &msg1), -1);
	w_free(&w);

	w_run(&w, &must, &msg1, 1, refused);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_TLS);
	assert_string_equal(reason, "TLS required but STARTTLS refused: 454 "
				    "4.7.0 TLS not available");
	w_free(&w);

	/* Opportunistic: refusal means plaintext; then the link drops. */
	w_run(&w, &may, &msg1, 1, may_refused);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_LOST);
	assert_false(smtp_client_try_next(w.c));
	assert_outcome(&w, 0, SMTPC_DEFERRED, SMTPC_CMD_RCPT, 0, "4.4.2");
	w_free(&w);

	w_run(&w, &may, &msg1, 1, handshake);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_TLS);
	assert_string_equal(reason,
			    "TLS handshake failed: certificate expired");
	w_free(&w);
}

static void
test_auth(void **state)
{
	static const struct smtp_client_params p = {.helo = "out.example.net",
						    .tls = SMTPC_TLS_MUST,
						    .auth_user = "alice",
						    .auth_pass = "s3cret"};
	static const struct smtp_client_params off = {.helo = "out.example.net",
						      .tls = SMTPC_TLS_OFF,
						      .auth_user = "alice",
						      .auth_pass = "s3cret"};
	/* base64("\0alice\0s3cret") */
	static const char *const plain[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250-AUTH PLAIN LOGIN",
	    "S: 250 STARTTLS",
	    "C: STARTTLS",
	    "S: 220 go",
	    "TLS",
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250 AUTH LOGIN PLAIN",
	    "C: AUTH PLAIN AGFsaWNlAHMzY3JldA==",
	    "S: 235 2.7.0 Authentication successful",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	static const char *const login[] = {GREET,
					    "C: EHLO out.example.net",
					    "S: 250-mx.example.org",
					    "S: 250 STARTTLS",
					    "C: STARTTLS",
					    "S: 220 go",
					    "TLS",
					    "C: EHLO out.example.net",
					    "S: 250-mx.example.org",
					    "S: 250 AUTH=LOGIN",
					    "C: AUTH LOGIN",
					    "S: 334 VXNlcm5hbWU6",
					    "C: YWxpY2U=",
					    "S: 334 UGFzc3dvcmQ6",
					    "C: czNjcmV0",
					    "S: 535 5.7.8 bad credentials",
					    "C: QUIT",
					    "S: 221 Bye",
					    "CLOSE",
					    NULL};
	static const char *const notls[] = {GREET,
					    "C: EHLO out.example.net",
					    "S: 250-mx.example.org",
					    "S: 250 AUTH PLAIN",
					    "C: QUIT",
					    "S: 221 Bye",
					    "CLOSE",
					    NULL};
	struct world w;
	const char *reason;

	w_run(&w, &p, &msg1, 1, plain);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_NONE);
	assert_non_null(strstr(w.transcript.data, "AUTH PLAIN <redacted>"));
	assert_null(strstr(w.transcript.data, "AGFsaWNl"));
	w_free(&w);

	w_run(&w, &p, &msg1, 1, login);
	assert_int_equal(smtp_client_failure(w.c, &reason),
			 SMTPC_FAIL_AUTH_REFUSED);
	assert_string_equal(reason,
			    "authentication failed: 535 5.7.8 bad credentials");
	assert_null(strstr(w.transcript.data, "YWxpY2U="));
	assert_null(strstr(w.transcript.data, "czNjcmV0"));
	assert_true(smtp_client_try_next(w.c));
	w_free(&w);

	w_run(&w, &off, &msg1, 1, notls);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_AUTH);
	assert_null(strstr(w.transcript.data, "AUTH"));
	w_free(&w);
}

static void
test_local_refusals(void **state)
{
	static const struct smtp_client_msg big = {.sender = "a@example.net",
						   .rcpts = one_rcpt,
						   .nrcpts = 1,
						   .size = 5000};
	static const struct smtp_client_msg sig8 = {.sender = "a@example.net",
						    .rcpts = one_rcpt,
						    .nrcpts = 1,
						    .size = 10,
						    .eightbit = true,
						    .signed_body = true};
	static const struct smtp_client_msg u8 = {.sender = "a@example.net",
						  .rcpts = one_rcpt,
						  .nrcpts = 1,
						  .size = 10,
						  .eightbit = true};
	static const struct smtp_client_msg utf = {.sender =
						       "\xc3\xa9@example.net",
						   .rcpts = one_rcpt,
						   .nrcpts = 1,
						   .size = 10};
	const struct smtp_client_msg all[] = {big, sig8, utf, u8};
	static const char *const script[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250 SIZE 1000",
	    "MSG", /* big: 5.3.4 */
	    "MSG", /* signed 8-bit: 5.6.3 */
	    "MSG", /* needs SMTPUTF8: 5.6.7 */
	    "MSG",
	    "DOWNGRADE",
	    "C: MAIL FROM:<a@example.net> SIZE=20",
	    "S: 250 ok",
	    "C: RCPT TO:<bob@example.org>",
	    "S: 250 ok",
	    "C: DATA",
	    "S: 354 go",
	    "BODY",
	    "S: 250 ok",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	struct world w;
	size_t i;

	/* Run it step by step to check each local outcome. */
	memset(&w, 0, sizeof(w));
	w.c = smtp_client_new(&plain_params);
	smtp_reply_parser_init(&w.p);
	buf_init(&w.pending, 1 << 20);
	buf_init(&w.transcript, 1 << 20);
	w.msgs = all;
	w.nmsgs = 4;
	w.downgraded_size = 20;
	for (i = 0; i < 5; i++)
		w_step(&w, script[i]);
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_NONE, 0, "5.3.4");
	assert_true(smtp_client_outcome(w.c, 0)->local);
	w_step(&w, script[i++]);
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_NONE, 0, "5.6.3");
	w_step(&w, script[i++]);
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_NONE, 0, "5.6.7");
	for (; script[i] != NULL; i++)
		w_step(&w, script[i]);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	assert_int_equal(smtp_client_msgs_done(w.c), 1);
	w_free(&w);
}

/* RFC 6533 §3: a stored utf-8 ORCPT (7-bit utf-8-addr-xtext) goes as
 * raw UTF-8 (utf-8-addr-unitext) in an SMTPUTF8 transaction, '\', '+'
 * and '=' still escaped; without SMTPUTF8 for this message (not needed
 * here, or not offered) it goes as stored. */
static void
test_utf8_orcpt_forms(void **state)
{
	static const struct smtp_client_rcpt rc[] = {
	    {.addr = "j\xc3\xb6rg@example.org",
	     .notify = SMTP_NOTIFY_FAILURE,
	     .orcpt = "utf-8;J\\x{F6}rg\\x{2B}1@b\\x{1F600}.de"}};
	static const struct smtp_client_rcpt rc7[] = {
	    {.addr = "jorg@example.org",
	     .notify = SMTP_NOTIFY_FAILURE,
	     .orcpt = "utf-8;J\\x{F6}rg\\x{2B}1@b\\x{1F600}.de"}};
	static const struct smtp_client_msg m = {.sender = "a@x.net",
						 .rcpts = rc,
						 .nrcpts = 1,
						 .size = 10,
						 .smtputf8 = true};
	static const struct smtp_client_msg m7 = {.sender = "a@x.net",
						  .rcpts = rc7,
						  .nrcpts = 1,
						  .size = 10,
						  .smtputf8 = true};
	static const char *const utf8[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250-DSN",
	    "S: 250 SMTPUTF8",
	    "MSG",
	    "C: MAIL FROM:<a@x.net> SMTPUTF8",
	    "S: 250 2.1.0 Ok",
	    "C: RCPT TO:<j\xc3\xb6rg@example.org> NOTIFY=FAILURE "
	    "ORCPT=utf-8;J\xc3\xb6rg\\x{2B}1@b\xf0\x9f\x98\x80.de",
	    "S: 250 2.1.5 Ok",
	    "C: DATA",
	    "S: 354 go",
	    "BODY",
	    "S: 250 2.0.0 queued",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	/* SMTPUTF8 offered but not needed by this message: 7-bit form */
	static const char *const ascii[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250-DSN",
	    "S: 250 SMTPUTF8",
	    "MSG",
	    "C: MAIL FROM:<a@x.net>",
	    "S: 250 2.1.0 Ok",
	    "C: RCPT TO:<jorg@example.org> NOTIFY=FAILURE "
	    "ORCPT=utf-8;J\\x{F6}rg\\x{2B}1@b\\x{1F600}.de",
	    "S: 250 2.1.5 Ok",
	    "C: DATA",
	    "S: 354 go",
	    "BODY",
	    "S: 250 2.0.0 queued",
	    "QUIT",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	struct world w;

	w_run(&w, &plain_params, &m, 1, utf8);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	w_free(&w);
	w_run(&w, &plain_params, &m7, 1, ascii);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	w_free(&w);
}

static void
test_smtputf8(void **state)
{
	static const struct smtp_client_rcpt r_ascii[] = {{.addr = "b@x.org"}};
	static const struct smtp_client_rcpt r_mixed[] = {
	    {.addr = "b@b\xc3\xbc"
		     "cher.example"},
	    {.addr = "j\xc3\xbcrgen@x.org"},
	    {.addr = "c@x.org"}};
	/* asked for SMTPUTF8, ASCII envelope and header: not needed */
	static const struct smtp_client_msg plain = {.sender = "a@x.net",
						     .rcpts = r_ascii,
						     .nrcpts = 1,
						     .size = 10,
						     .smtputf8 = true};
	/* UTF-8 local part: needed */
	static const struct smtp_client_msg loc = {
	    .sender = "a@x.net", .rcpts = r_mixed + 1, .nrcpts = 1, .size = 10};
	/* UTF-8 header in an SMTPUTF8 message: needed */
	static const struct smtp_client_msg hdr = {.sender = "a@x.net",
						   .rcpts = r_ascii,
						   .nrcpts = 1,
						   .size = 10,
						   .smtputf8 = true,
						   .hdr_utf8 = true};
	/* the same header without the parameter: 8BITMIME's business */
	static const struct smtp_client_msg hdr8 = {.sender = "a@x.net",
						    .rcpts = r_ascii,
						    .nrcpts = 1,
						    .size = 10,
						    .hdr_utf8 = true};
	const struct smtp_client_msg offered[] = {plain, loc, hdr};
	static const char *const s1[] = {GREET,
					 "C: EHLO out.example.net",
					 "S: 250-mx.example.org",
					 "S: 250 SMTPUTF8",
					 "MSG",
					 "C: MAIL FROM:<a@x.net>",
					 "S: 250 ok",
					 "C: RCPT TO:<b@x.org>",
					 "S: 250 ok",
					 "C: DATA",
					 "S: 354 go",
					 "BODY",
					 "S: 250 ok",
					 "MSG",
					 "C: RSET",
					 "S: 250 ok",
					 "C: MAIL FROM:<a@x.net> SMTPUTF8",
					 "S: 250 ok",
					 "C: RCPT TO:<j\xc3\xbcrgen@x.org>",
					 "S: 250 ok",
					 "C: DATA",
					 "S: 354 go",
					 "BODY",
					 "S: 250 ok",
					 "MSG",
					 "C: RSET",
					 "S: 250 ok",
					 "C: MAIL FROM:<a@x.net> SMTPUTF8",
					 "S: 250 ok",
					 "C: RCPT TO:<b@x.org>",
					 "S: 250 ok",
					 "C: DATA",
					 "S: 354 go",
					 "BODY",
					 "S: 250 ok",
					 "QUIT",
					 "C: QUIT",
					 "S: 221 Bye",
					 "CLOSE",
					 NULL};
	/* not offered: A-labels for the domain-only case, 5.6.7 for the
	 * UTF-8 local part, the others go on */
	static const struct smtp_client_msg mixed = {
	    .sender = "a@x.net", .rcpts = r_mixed, .nrcpts = 3, .size = 10};
	static const struct smtp_client_msg usender = {.sender =
							   "\xc3\xa9@x.net",
						       .rcpts = r_ascii,
						       .nrcpts = 1,
						       .size = 10};
	const struct smtp_client_msg notoffered[] = {mixed, usender, hdr, hdr8};
	static const char *const s2[] = {GREET,
					 "C: EHLO out.example.net",
					 "S: 250 mx.example.org",
					 "MSG",
					 "C: MAIL FROM:<a@x.net>",
					 "S: 250 ok",
					 "C: RCPT TO:<b@xn--bcher-kva.example>",
					 "S: 250 ok",
					 "C: RCPT TO:<c@x.org>",
					 "S: 250 ok",
					 "C: DATA",
					 "S: 354 go",
					 "BODY",
					 "S: 250 ok",
					 NULL};
	struct world w;
	const struct smtp_client_outcome *o;

	w_run(&w, &plain_params, offered, 3, s1);
	w_free(&w);

	w_run(&w, &plain_params, notoffered, 4, s2);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	assert_outcome(&w, 1, SMTPC_BOUNCED, SMTPC_CMD_NONE, 0, "5.6.7");
	o = smtp_client_outcome(w.c, 1);
	assert_true(o->local);
	assert_non_null(strstr(o->reply.data, "UTF-8 local part"));
	assert_non_null(strstr(o->reply.data, "does not offer SMTPUTF8"));
	assert_outcome(&w, 2, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	/* UTF-8 sender: every recipient, nothing sent */
	w_step(&w, "MSG");
	w_step(&w, "C: RSET");
	w_step(&w, "S: 250 ok");
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_NONE, 0, "5.6.7");
	/* UTF-8 header of an SMTPUTF8 message */
	w_step(&w, "MSG");
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_NONE, 0, "5.6.7");
	assert_non_null(strstr(smtp_client_outcome(w.c, 0)->reply.data,
			       "header contains UTF-8"));
	/* 8-bit header without SMTPUTF8 asked: sent (8-bit rules apply) */
	w_step(&w, "MSG");
	w_step(&w, "C: MAIL FROM:<a@x.net>");
	w_free(&w);
}

static void
test_long_lines_signed(void **state)
{
	static const struct smtp_client_msg sig = {.sender = "a@example.net",
						   .rcpts = one_rcpt,
						   .nrcpts = 1,
						   .size = 3000,
						   .signed_body = true,
						   .body_line_max = 1500};
	static const struct smtp_client_msg sigh = {.sender = "a@example.net",
						    .rcpts = one_rcpt,
						    .nrcpts = 1,
						    .size = 3000,
						    .signed_body = true,
						    .hdr_line_max = 999,
						    .body_line_max = 998};
	static const struct smtp_client_msg unsig = {.sender = "a@example.net",
						     .rcpts = one_rcpt,
						     .nrcpts = 1,
						     .size = 3000,
						     .body_line_max = 1500};
	const struct smtp_client_msg all[] = {sig, sigh, unsig};
	static const char *const script[] = {GREET, "C: EHLO out.example.net",
					     "S: 250 mx.example.org", "MSG",
					     NULL};
	struct world w;
	const char *t;

	w_run(&w, &plain_params, all, 3, script);
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_NONE, 0, "5.6.3");
	t = smtp_client_outcome(w.c, 0)->reply.data;
	assert_non_null(strstr(t, "body line of 1500 octets"));
	assert_non_null(strstr(t, "DKIM signature"));
	w_step(&w, "MSG");
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_NONE, 0, "5.6.3");
	assert_non_null(strstr(smtp_client_outcome(w.c, 0)->reply.data,
			       "header line of 999 octets"));
	/* unsigned: sent (the dot-stuffer folds) */
	w_step(&w, "MSG");
	w_step(&w, "C: MAIL FROM:<a@example.net>");
	w_free(&w);
}

static void
test_shape(void **state)
{
	struct smtp_shape sh;
	char big[1200];

	smtp_shape_init(&sh);
	smtp_shape_feed(&sh, "Subject: caf\xc3\xa9\r\n", 16);
	smtp_shape_feed(&sh, "X: 1\r", 5); /* split CRLF */
	smtp_shape_feed(&sh, "\n\r\n.ab\r\n", 8);
	assert_true(sh.hdr_8bit);
	assert_false(sh.body_8bit);
	assert_int_equal(sh.hdr_max, 14);
	assert_int_equal(sh.body_max, 4); /* ".ab" goes out as "..ab" */
	memset(big, 'x', sizeof(big));
	smtp_shape_feed(&sh, big, sizeof(big));
	smtp_shape_feed(&sh, "\n\xff", 2);
	assert_int_equal(sh.body_max, 1200);
	assert_true(sh.body_8bit);
	assert_int_equal(sh.hdr_max, 14);

	assert_true(smtp_has_field("Received: x\r\nDKIM-Signature: v=1\r\n", 36,
				   "DKIM-Signature"));
	assert_true(
	    smtp_has_field("dkim-signature : v=1\r\n", 22, "DKIM-Signature"));
	assert_false(
	    smtp_has_field("X-DKIM-Signature: v=1\r\n", 23, "DKIM-Signature"));
	assert_false(smtp_has_field("Received: x\r\n\tDKIM-Signature: v\r\n",
				    34, "DKIM-Signature"));
	assert_false(smtp_has_field("A: b\r\n\r\nDKIM-Signature: v=1\r\n", 29,
				    "DKIM-Signature"));
}

static void
test_bad_addresses(void **state)
{
	static const struct smtp_client_rcpt rc[] = {
	    {.addr = "bob@example.org>\r\nRSET"},
	    {.addr = "carol@example.org"}};
	static const struct smtp_client_msg m = {
	    .sender = "a@example.net", .rcpts = rc, .nrcpts = 2};
	static const char *const script[] = {GREET,
					     "C: EHLO out.example.net",
					     "S: 250 mx.example.org",
					     "MSG",
					     "C: MAIL FROM:<a@example.net>",
					     "S: 250 ok",
					     "C: RCPT TO:<carol@example.org>",
					     "S: 250 ok",
					     "C: DATA",
					     "S: 354 go",
					     "BODY",
					     "S: 250 ok",
					     "QUIT",
					     "C: QUIT",
					     "S: 221 Bye",
					     "CLOSE",
					     NULL};
	struct world w;

	w_run(&w, &plain_params, &m, 1, script);
	assert_outcome(&w, 0, SMTPC_BOUNCED, SMTPC_CMD_NONE, 0, "5.1.3");
	assert_outcome(&w, 1, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	w_free(&w);
}

static void
test_reuse_rset(void **state)
{
	static const struct smtp_client_params two = {.helo = "out.example.net",
						      .max_msgs = 2};
	const struct smtp_client_msg msgs[] = {msg1, msg1, msg1};
	static const char *const script[] = {GREET,
					     "C: EHLO out.example.net",
					     "S: 250-mx.example.org",
					     "S: 250 PIPELINING",
					     "MSG",
					     "C: MAIL FROM:<alice@example.net>",
					     "C: RCPT TO:<bob@example.org>",
					     "C: DATA",
					     "S: 250 ok",
					     "S: 250 ok",
					     "S: 354 go",
					     "BODY",
					     "S: 250 ok 1",
					     "MSG",
					     "C: RSET",
					     "S: 250 2.0.0 ok",
					     "C: MAIL FROM:<alice@example.net>",
					     "C: RCPT TO:<bob@example.org>",
					     "C: DATA",
					     "S: 250 ok",
					     "S: 250 ok",
					     "S: 354 go",
					     "BODY",
					     "S: 250 ok 2",
					     NULL};
	static const char *const rset_refused[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250 mx",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net>",
	    "S: 550 no",
	    "MSG",
	    "C: RSET",
	    "S: 500 what",
	    "C: QUIT",
	    "S: 221 Bye",
	    "CLOSE",
	    NULL};
	struct world w;
	const char *reason;

	w_run(&w, &two, msgs, 3, script);
	assert_outcome(&w, 0, SMTPC_DELIVERED, SMTPC_CMD_DOT, 250, "2.0.0");
	assert_int_equal(smtp_client_msgs_done(w.c), 2);
	assert_false(smtp_client_can_send(w.c)); /* limit reached */
	w_step(&w, "QUIT");
	w_step(&w, "C: QUIT");
	w_free(&w);

	w_run(&w, &two, msgs, 3, rset_refused);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_RSET);
	assert_true(smtp_client_try_next(w.c));
	assert_outcome(&w, 0, SMTPC_PENDING, SMTPC_CMD_NONE, 0, "");
	w_free(&w);
}

static void
test_421_and_lost(void **state)
{
	static const char *const mid421[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250-mx.example.org",
	    "S: 250 PIPELINING",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net>",
	    "C: RCPT TO:<bob@example.org>",
	    "C: RCPT TO:<carol@example.org>",
	    "C: DATA",
	    "S: 250 ok",
	    "S: 250 ok",
	    "S: 421 4.7.0 Try again later, closing connection",
	    "CLOSE",
	    NULL};
	static const char *const lost_body[] = {
	    GREET,
	    "C: EHLO out.example.net",
	    "S: 250 mx.example.org",
	    "MSG",
	    "C: MAIL FROM:<alice@example.net>",
	    "S: 250 ok",
	    "C: RCPT TO:<bob@example.org>",
	    "S: 250 ok",
	    "C: RCPT TO:<carol@example.org>",
	    "S: 550 5.1.1 unknown",
	    "C: DATA",
	    "S: 354 go",
	    "LOST",
	    "CLOSE",
	    NULL};
	struct world w;
	const char *reason;

	w_run(&w, &plain_params, &msg2, 1, mid421);
	assert_int_equal(smtp_client_failure(w.c, &reason), SMTPC_FAIL_421);
	assert_false(smtp_client_try_next(w.c));
	assert_outcome(&w, 0, SMTPC_DEFERRED, SMTPC_CMD_RCPT, 421, "4.7.0");
	assert_outcome(&w, 1, SMTPC_DEFERRED, SMTPC_CMD_RCPT, 421, "4.7.0");
	w_free(&w);

	w_run(&w, &plain_params, &msg2, 1, lost_body);
	assert_outcome(&w, 0, SMTPC_DEFERRED, SMTPC_CMD_DOT, 0, "4.4.2");
	assert_string_equal(smtp_client_outcome(w.c, 0)->reply.data,
			    "connection lost in body: timeout");
	assert_outcome(&w, 1, SMTPC_BOUNCED, SMTPC_CMD_RCPT, 550, "5.1.1");
	w_free(&w);
}

static void
test_protocol_error(void **state)
{
	static const char *const script[] = {GREET,
					     "C: EHLO out.example.net",
					     "S: 250-mx.example.org",
					     "S: 220 mixed",
					     "CLOSE",
					     NULL};
	struct world w;
	const char *reason;

	w_run(&w, &plain_params, &msg1, 1, script);
	assert_int_equal(smtp_client_failure(w.c, &reason),
			 SMTPC_FAIL_PROTOCOL);
	w_free(&w);
}

static void
test_timeouts(void **state)
{
	static const char *const script[] = {
	    GREET, "C: EHLO out.example.net",	       "S: 250 mx.example.org",
	    "MSG", "C: MAIL FROM:<alice@example.net>", NULL};
	struct world w;

	w_run(&w, &plain_params, &msg1, 1, script);
	assert_int_equal(smtp_client_timeout(w.c), SMTPC_TO_MAIL);
	w_step(&w, "S: 250 ok");
	w_step(&w, "C: RCPT TO:<bob@example.org>");
	assert_int_equal(smtp_client_timeout(w.c), SMTPC_TO_RCPT);
	w_step(&w, "S: 250 ok");
	w_step(&w, "C: DATA");
	assert_int_equal(smtp_client_timeout(w.c), SMTPC_TO_DATA_INIT);
	assert_int_equal(smtp_client_timeout_secs(SMTPC_TO_DATA_INIT), 120);
	assert_int_equal(smtp_client_timeout_secs(SMTPC_TO_DATA_BLOCK), 180);
	assert_int_equal(smtp_client_timeout_secs(SMTPC_TO_DOT), 600);
	assert_int_equal(smtp_client_timeout_secs(SMTPC_TO_OTHER), 300);
	w_free(&w);
}

/* --- dot-stuffer ------------------------------------------------------- */

/* Stuff in, fed in pieces, through an output buffer of outmax. */
static void
stuff(const char *in, size_t n, size_t piece, size_t outmax, struct buf *res,
      struct smtp_dotstuff *d)
{
	struct buf out;
	size_t pos = 0, len, used;

	smtp_dotstuff_init(d);
	buf_init(&out, outmax);
	buf_init(res, 1 << 16);
	while (pos < n) {
		len = n - pos < piece ? n - pos : piece;
		used = smtp_dotstuff_feed(d, in + pos, len, &out);
		assert_true(used > 0 || out.len > 0);
		pos += used;
		assert_int_equal(buf_add(res, out.data, out.len), 0);
		buf_reset(&out);
	}
	while (smtp_dotstuff_end(d, &out) < 0) {
		assert_true(out.len > 0);
		assert_int_equal(buf_add(res, out.data, out.len), 0);
		buf_reset(&out);
	}
	assert_int_equal(buf_add(res, out.data, out.len), 0);
	buf_free(&out);
}

static void
stuffed(const char *in, const char *want, bool bare)
{
	struct smtp_dotstuff d;
	struct buf res;
	size_t n = strlen(in), piece, outmax;

	for (piece = 1; piece <= n + 1; piece++) {
		for (outmax = 5; outmax <= 64; outmax += 59) {
			stuff(in, n, piece, outmax, &res, &d);
			assert_string_equal(res.data, want);
			assert_int_equal(d.bare_eol, bare);
			assert_int_equal(d.out_bytes, strlen(want));
			buf_free(&res);
		}
	}
}

/* Longest wire line of res (CRLF excluded); fails on a bare CR/LF. */
static size_t
max_line(const struct buf *res)
{
	size_t i, cur = 0, mx = 0;

	for (i = 0; i < res->len; i++) {
		if (res->data[i] == '\r') {
			assert_true(i + 1 < res->len &&
				    res->data[i + 1] == '\n');
			i++;
			cur = 0;
			continue;
		}
		assert_true(res->data[i] != '\n');
		if (++cur > mx)
			mx = cur;
	}
	return mx;
}

static void
fold_checks(void)
{
	static char msg[6000];
	struct smtp_dotstuff d;
	struct buf res;
	size_t n = 0, piece;

	/* a 2000-octet header of words, a 3000-octet body line */
	n += (size_t)snprintf(msg, sizeof(msg), "To: ");
	while (n < 2000)
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, "word%zu ", n);
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "\r\n\r\n");
	memset(msg + n, 'b', 3000);
	msg[n + 998] = '.';
	n += 3000;
	memcpy(msg + n, "\r\n", 2);
	n += 2;
	for (piece = 1; piece < 5000; piece = piece * 3 + 1) {
		stuff(msg, n, piece, 64, &res, &d);
		assert_true(d.long_line);
		assert_true(max_line(&res) <= 998);
		/* header folded before blanks only: unfolding gives it back */
		{
			const char *end = strstr(res.data, "\r\n\r\n");
			size_t hl = (size_t)(end - res.data), j, k = 0;
			char *un = malloc(hl + 1);
			for (j = 0; j < hl; j++) {
				if (res.data[j] == '\r') {
					assert_true(res.data[j + 2] == ' ');
					j++;
					continue;
				}
				un[k++] = res.data[j];
			}
			assert_memory_equal(un, msg, k);
			free(un);
		}
		/* the body line broken at 998; the '.' that starts the next
		 * piece is stuffed */
		assert_non_null(strstr(res.data, "bb\r\n..bbb"));
		buf_free(&res);
	}
}

static void
test_dotstuff(void **state)
{
	struct smtp_dotstuff d;
	struct buf res;
	static char longl[1200];

	stuffed("", ".\r\n", false);
	stuffed(".\r\n", "..\r\n.\r\n", false);
	stuffed("..\r\n", "...\r\n.\r\n", false);
	stuffed("a\r\n.b\r\n", "a\r\n..b\r\n.\r\n", false);
	stuffed("x.\r\n.", "x.\r\n..\r\n.\r\n", false);
	stuffed("no end", "no end\r\n.\r\n", false);
	stuffed("a\nb\n", "a\r\nb\r\n.\r\n", true);
	stuffed("a\n.b", "a\r\n..b\r\n.\r\n", true);
	stuffed("a\rb\r", "a\r\nb\r\n.\r\n", true);
	stuffed("a\r\r\n.", "a\r\n\r\n..\r\n.\r\n", true);
	stuffed("a\r.\r\n", "a\r\n..\r\n.\r\n", true);
	stuffed("\r\n\r\n", "\r\n\r\n.\r\n", false);

	memset(longl, 'x', sizeof(longl));
	stuff(longl, 998, 4096, 4096, &res, &d);
	assert_false(d.long_line);
	buf_free(&res);
	longl[0] = '.'; /* stuffing makes it 999 on the wire */
	stuff(longl, 998, 100, 4096, &res, &d);
	assert_true(d.long_line);
	buf_free(&res);
	/* no empty line: all header; no blank to fold at: CRLF SP */
	stuff(longl, sizeof(longl), 7, 16, &res, &d);
	assert_true(d.long_line);
	assert_int_equal(res.len, sizeof(longl) + 1 + 3 + 5);
	assert_memory_equal(res.data + 998, "\r\n x", 4);
	buf_free(&res);
	fold_checks();
}

static void
test_base64(void **state)
{
	struct buf b;

	buf_init(&b, 64);
	assert_int_equal(smtp_base64("", 0, &b), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(smtp_base64("f", 1, &b), 0);
	assert_string_equal(b.data, "Zg==");
	buf_reset(&b);
	assert_int_equal(smtp_base64("fo", 2, &b), 0);
	assert_string_equal(b.data, "Zm8=");
	buf_reset(&b);
	assert_int_equal(smtp_base64("foobar", 6, &b), 0);
	assert_string_equal(b.data, "Zm9vYmFy");
	buf_free(&b);
}

static void
test_new_rejects(void **state)
{
	struct smtp_client_params p = {.helo = "bad name"};

	assert_null(smtp_client_new(&p));
	p.helo = "ok.example\r\nRSET";
	assert_null(smtp_client_new(&p));
	p.helo = "ok.example";
	p.auth_user = "u";
	assert_null(smtp_client_new(&p)); /* user without password */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_happy_lockstep),
	    cmocka_unit_test(test_happy_pipelining),
	    cmocka_unit_test(test_dsn_params_only_when_offered),
	    cmocka_unit_test(test_rcpt_busy_one_of_two),
	    cmocka_unit_test(test_rcpt_no_such_user),
	    cmocka_unit_test(test_mail_refused),
	    cmocka_unit_test(test_dot_multiline_550),
	    cmocka_unit_test(test_greeting_failures),
	    cmocka_unit_test(test_ehlo_502_helo),
	    cmocka_unit_test(test_starttls),
	    cmocka_unit_test(test_auth),
	    cmocka_unit_test(test_local_refusals),
	    cmocka_unit_test(test_smtputf8),
	    cmocka_unit_test(test_utf8_orcpt_forms),
	    cmocka_unit_test(test_long_lines_signed),
	    cmocka_unit_test(test_shape),
	    cmocka_unit_test(test_bad_addresses),
	    cmocka_unit_test(test_reuse_rset),
	    cmocka_unit_test(test_421_and_lost),
	    cmocka_unit_test(test_protocol_error),
	    cmocka_unit_test(test_timeouts),
	    cmocka_unit_test(test_dotstuff),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_new_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
