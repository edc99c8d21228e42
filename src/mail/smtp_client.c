/* smtp_client — see smtp_client.h. */
#include "mail/smtp_client.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/addr.h"

/*
 * States of one connection. A state ending in a reply has one handler
 * in sc_handlers[]; the others are waits on the caller (TLS, BODY,
 * DOWNGRADE, READY) or final (CLOSED).
 */
enum sc_state {
	SC_GREETING,   /* connected, waiting for 220 */
	SC_EHLO,       /* EHLO sent */
	SC_HELO,       /* HELO sent after EHLO got 5xx */
	SC_STARTTLS,   /* STARTTLS sent */
	SC_TLS,	       /* caller doing the TLS handshake */
	SC_AUTH_PLAIN, /* AUTH PLAIN <initial response> sent */
	SC_AUTH_LOGIN, /* AUTH LOGIN sent, expecting 334 */
	SC_AUTH_USER,  /* LOGIN user name sent */
	SC_AUTH_PASS,  /* LOGIN password sent */
	SC_READY,      /* no transaction: caller gives a message or quits */
	SC_DOWNGRADE,  /* caller converting the body to 7 bit */
	SC_RSET,       /* RSET sent before the next MAIL */
	SC_MAIL,       /* MAIL sent (with RCPTs and DATA if pipelining) */
	SC_RCPT,       /* waiting for the reply of RCPT number ri */
	SC_DATA,       /* waiting for 354 */
	SC_BODY,       /* caller sending the body */
	SC_DOT,	       /* waiting for the reply to the final dot */
	SC_NULLDOT,    /* lone "." after 354 with no recipient (RFC 2920) */
	SC_QUIT,       /* QUIT sent */
	SC_CLOSED,
	SC_NSTATES
};

static const char *const sc_state_names[] = {
    "greeting",	  "ehlo",	"helo",	     "starttls",  "tls",
    "auth-plain", "auth-login", "auth-user", "auth-pass", "ready",
    "downgrade",  "rset",	"mail",	     "rcpt",	  "data",
    "body",	  "dot",	"null-dot",  "quit",	  "closed",
};

_Static_assert(sizeof(sc_state_names) / sizeof(sc_state_names[0]) == SC_NSTATES,
	       "one name per state");

struct sc_rcpt {
	bool sent;     /* its RCPT was written */
	bool accepted; /* RCPT got 2xx; waits for the end of data */
};

struct smtp_client {
	enum sc_state state;
	char helo[SMTPC_HELO_MAX + 1];
	char user[SMTPC_CRED_MAX + 1];
	char pass[SMTPC_CRED_MAX + 1];
	bool auth;
	enum smtpc_tls tls;
	bool in_tls;
	bool tls_refused; /* STARTTLS got a non-220 under policy MAY */
	unsigned max_msgs;
	unsigned msgs_done;
	struct smtp_ehlo ehlo;

	/* Transaction. */
	const struct smtp_client_msg *msg;
	struct smtp_client_outcome *oc;
	struct sc_rcpt *rs;
	size_t n;
	size_t ri; /* recipient whose RCPT reply is awaited */
	size_t naccepted;
	uint64_t size;
	bool eightbit;
	bool utf8;
	char wsender[ADDR_PATH_MAX + 2]; /* sender as sent (A-labels) */
	char **wrcpt; /* recipients rewritten to A-labels, or NULL */
	bool in_txn;  /* MAIL of the current message was sent */
	bool dirty;   /* a MAIL was sent since the last RSET */
	bool batch;   /* RCPTs and DATA went with MAIL (PIPELINING) */
	bool mail_failed;
	struct smtp_response mailfail; /* MAIL's reply when batch failed */

	struct buf out; /* bytes for the next SEND */
	struct buf log; /* the same, AUTH data redacted */
	bool out_ready;
	bool out_secret; /* out holds credentials: wipe before reuse */

	enum smtpc_fail fail;
	bool try_next;
	struct buf reason;
};

typedef void sc_handler(struct smtp_client *c, const struct smtp_response *r);

static void sc_ehlo(struct smtp_client *c);
static void sc_after_hello(struct smtp_client *c);
static void sc_txn_begin(struct smtp_client *c);

/* --- state, output, failure ------------------------------------------ */

static void
sc_set_state(struct smtp_client *c, enum sc_state st)
{
	if (c->state != st)
		log_debug("smtp-out: state %s -> %s", sc_state_names[c->state],
			  sc_state_names[st]);
	c->state = st;
}

static void
sc_out_begin(struct smtp_client *c)
{
	if (c->out_ready)
		return;
	if (c->out_secret && c->out.data != NULL)
		explicit_bzero(c->out.data, c->out.cap);
	c->out_secret = false;
	buf_reset(&c->out);
	buf_reset(&c->log);
	c->out_ready = true;
}

static void sc_fail(struct smtp_client *c, enum smtpc_fail kind,
		    const char *what, const struct smtp_response *r, bool quit);

/* Queue one command line; logtext replaces it in the transcript. */
static bool
sc_send(struct smtp_client *c, const char *line, size_t n, const char *logtext)
{
	sc_out_begin(c);
	if (buf_add(&c->out, line, n) < 0 || buf_add(&c->out, "\r\n", 2) < 0) {
		sc_fail(c, SMTPC_FAIL_NOMEM, "cannot queue a command", NULL,
			false);
		return false;
	}
	/* The transcript is for people; losing part of it is harmless. */
	if (logtext != NULL)
		(void)buf_adds(&c->log, logtext);
	else
		(void)buf_add(&c->log, line, n);
	(void)buf_addc(&c->log, '\n');
	return true;
}

static bool
sc_sends(struct smtp_client *c, const char *line)
{
	return sc_send(c, line, strlen(line), NULL);
}

static enum smtpc_cmd
sc_state_cmd(enum sc_state st)
{
	switch (st) {
	case SC_GREETING:
		return SMTPC_CMD_GREETING;
	case SC_EHLO:
		return SMTPC_CMD_EHLO;
	case SC_HELO:
		return SMTPC_CMD_HELO;
	case SC_STARTTLS:
		return SMTPC_CMD_STARTTLS;
	case SC_AUTH_PLAIN:
	case SC_AUTH_LOGIN:
	case SC_AUTH_USER:
	case SC_AUTH_PASS:
		return SMTPC_CMD_AUTH;
	case SC_RSET:
		return SMTPC_CMD_RSET;
	case SC_MAIL:
		return SMTPC_CMD_MAIL;
	case SC_RCPT:
		return SMTPC_CMD_RCPT;
	case SC_DATA:
		return SMTPC_CMD_DATA;
	case SC_BODY:
	case SC_DOT:
	case SC_NULLDOT:
		return SMTPC_CMD_DOT;
	case SC_QUIT:
		return SMTPC_CMD_QUIT;
	default:
		return SMTPC_CMD_NONE;
	}
}

/* Sanitized reply lines joined by " / ". */
static void
sc_reason_reply(struct buf *b, const struct smtp_response *r)
{
	const char *l;
	size_t i, n;

	for (i = 0; i < r->nlines; i++) {
		l = smtp_response_line(r, i, &n);
		if (i > 0)
			(void)buf_adds(b, " / ");
		if (smtp_reply_sanitize(l, n, b) < 0)
			return;
	}
}

static enum smtpc_result
sc_result_of(int code)
{
	if (code >= 200 && code < 300)
		return SMTPC_DELIVERED;
	if (code >= 500 && code < 600)
		return SMTPC_BOUNCED;
	return SMTPC_DEFERRED;
}

static void
sc_outcome_reply(struct smtp_client *c, size_t i, enum smtpc_cmd cmd,
		 const struct smtp_response *r, enum smtpc_result res)
{
	struct smtp_client_outcome *o = &c->oc[i];

	o->result = res;
	o->cmd = cmd;
	o->code = r->code;
	o->local = false;
	smtp_response_status(r, o->status);
	if (res == SMTPC_DEFERRED && o->status[0] != '4')
		memcpy(o->status, "4.0.0", 6);
	buf_reset(&o->reply);
	if (r->text.len > 0)
		(void)buf_add(&o->reply, r->text.data, r->text.len);
}

static void
sc_outcome_local(struct smtp_client *c, size_t i, enum smtpc_cmd cmd,
		 const char *status, const char *text)
{
	struct smtp_client_outcome *o = &c->oc[i];

	o->result = status[0] == '5' ? SMTPC_BOUNCED : SMTPC_DEFERRED;
	o->cmd = cmd;
	o->code = 0;
	o->local = true;
	memcpy(o->status, "4.0.0", 6);
	if (strlen(status) < SMTP_STATUS_MAX)
		memcpy(o->status, status, strlen(status) + 1);
	buf_reset(&o->reply);
	(void)buf_adds(&o->reply, text);
}

/* Every recipient still pending gets the same local outcome. */
static void
sc_local_all(struct smtp_client *c, const char *status, const char *text)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (c->oc[i].result == SMTPC_PENDING)
			sc_outcome_local(c, i, SMTPC_CMD_NONE, status, text);
}

static const char *
sc_fail_status(enum smtpc_fail kind)
{
	switch (kind) {
	case SMTPC_FAIL_NOMEM:
		return "4.3.0";
	case SMTPC_FAIL_PROTOCOL:
		return "4.5.0";
	default:
		return "4.4.2";
	}
}

/*
 * The connection is over. Inside a transaction every unfinished
 * recipient is deferred (by r if it is a 4xx, else locally); outside
 * one nothing was touched and the caller may try the next address.
 */
static void
sc_fail(struct smtp_client *c, enum smtpc_fail kind, const char *what,
	const struct smtp_response *r, bool quit)
{
	enum smtpc_cmd cmd = sc_state_cmd(c->state);
	size_t i;

	if (c->fail == SMTPC_FAIL_NONE) {
		c->fail = kind;
		c->try_next = !c->in_txn;
		buf_reset(&c->reason);
		(void)buf_adds(&c->reason, what);
		if (r != NULL && r->nlines > 0) {
			(void)buf_adds(&c->reason, ": ");
			sc_reason_reply(&c->reason, r);
		}
	}
	for (i = 0; c->in_txn && i < c->n; i++) {
		if (c->oc[i].result != SMTPC_PENDING)
			continue;
		if (r != NULL && r->code / 100 == 4)
			sc_outcome_reply(c, i, cmd, r, SMTPC_DEFERRED);
		else
			sc_outcome_local(c, i, cmd, sc_fail_status(kind),
					 c->reason.data ? c->reason.data
							: what);
	}
	c->in_txn = false;
	c->out_ready = false; /* half-built batches are never sent */
	sc_set_state(c, SC_CLOSED);
	if (quit && kind != SMTPC_FAIL_NOMEM && sc_sends(c, "QUIT"))
		sc_set_state(c, SC_QUIT);
}

/* --- encoders ---------------------------------------------------------- */

int
smtp_base64(const void *in, size_t n, struct buf *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = in;
	char q[4];
	uint32_t v;
	size_t i;

	for (i = 0; i < n; i += 3) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = tab[(v >> 18) & 63];
		q[1] = tab[(v >> 12) & 63];
		q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? tab[v & 63] : '=';
		if (buf_add(out, q, 4) < 0)
			return -1;
	}
	return 0;
}

/* xtext (RFC 3461 §4) of s. */
static int
sc_xtext(struct buf *b, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	for (; *u; u++) {
		if (*u < 33 || *u > 126 || *u == '+' || *u == '=') {
			if (buf_addf(b, "+%02X", *u) < 0)
				return -1;
		} else if (buf_addc(b, (char)*u) < 0)
			return -1;
	}
	return 0;
}

/* UTF-8 of code point cp (a scalar value) into b. */
static int
sc_put_utf8(struct buf *b, unsigned long cp)
{
	unsigned char u[4];
	size_t n;

	if (cp < 0x800) {
		u[0] = (unsigned char)(0xC0 | (cp >> 6));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xE0 | (cp >> 12));
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xF0 | (cp >> 18));
		u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		n = 4;
	}
	u[n - 1] = (unsigned char)(0x80 | (cp & 0x3F));
	return buf_add(b, u, n);
}

/* A \x{HEX} escape of a non-ASCII scalar value at s: its code point
 * and length in *k; 0 otherwise (copied as it is). */
static unsigned long
sc_unitext_escape(const char *s, size_t *k)
{
	unsigned long cp = 0;
	size_t i;

	if (strncmp(s, "\\x{", 3) != 0)
		return 0;
	for (i = 3; i < 9 && isxdigit((unsigned char)s[i]); i++)
		cp = cp * 16 + (unsigned long)(isdigit((unsigned char)s[i])
						   ? s[i] - '0'
						   : (s[i] | 0x20) - 'a' + 10);
	if (i == 3 || s[i] != '}' || cp < 0x80 || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	*k = i + 1;
	return cp;
}

/*
 * RFC 6533 §3 utf-8-addr-unitext of a stored utf-8-addr-xtext address
 * (smtp_cmd's 7-bit form): the \x{HEX} escapes of non-ASCII characters
 * become raw UTF-8; those of '\\', '+' and '=' stay (QUCHAR excludes
 * them); any other octet outside QCHAR is xtext-encoded as sc_xtext
 * does. Only in an SMTPUTF8 transaction.
 */
static int
sc_unitext(struct buf *b, const char *s)
{
	size_t k;
	unsigned long cp;

	while (*s) {
		unsigned char c = (unsigned char)*s;
		int r;

		if ((cp = sc_unitext_escape(s, &k)) != 0) {
			if (sc_put_utf8(b, cp) < 0)
				return -1;
			s += k;
			continue;
		}
		if (c < 33 || c > 126 || c == '+' || c == '=')
			r = buf_addf(b, "+%02X", c);
		else
			r = buf_addc(b, (char)c);
		if (r < 0)
			return -1;
		s++;
	}
	return 0;
}

/* No octet that could end or break the command line or the path. */
static bool
sc_addr_ok(const char *s, bool empty_ok)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = 0;

	if (s == NULL || (*s == '\0' && !empty_ok))
		return false;
	for (; *u; u++, n++)
		if (*u < 0x20 || *u == 0x7f || *u == '<' || *u == '>')
			return false;
	return n <= 1024;
}

static bool
sc_nonascii(const char *s)
{
	for (; s != NULL && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* --- hello, TLS, AUTH -------------------------------------------------- */

static void
sc_on_greeting(struct smtp_client *c, const struct smtp_response *r)
{
	if (r->code / 100 != 2) {
		sc_fail(c, SMTPC_FAIL_GREETING, "greeting refused", r, true);
		return;
	}
	sc_ehlo(c);
}

/*
 * Resets, one per layer of session state. EHLO (first, after HELO
 * fallback, after STARTTLS) calls sc_helo_reset; every message starts
 * with sc_txn_reset. RSET on the wire is sent by msg_start before the
 * transaction reset takes effect on the server.
 */
static void
sc_helo_reset(struct smtp_client *c)
{
	memset(&c->ehlo, 0, sizeof(c->ehlo));
}

static void
sc_txn_reset(struct smtp_client *c, const struct smtp_client_msg *m)
{
	c->msg = m;
	c->size = m->size;
	c->eightbit = m->eightbit;
	c->utf8 = false;
	c->ri = 0;
	c->naccepted = 0;
	c->batch = false;
	c->mail_failed = false;
	c->in_txn = false;
	smtp_response_free(&c->mailfail);
}

static void
sc_ehlo(struct smtp_client *c)
{
	char line[SMTPC_HELO_MAX + 8];
	size_t n = strlen(c->helo);

	memcpy(line, "EHLO ", 5);
	memcpy(line + 5, c->helo, n);
	sc_helo_reset(c);
	if (sc_send(c, line, n + 5, NULL))
		sc_set_state(c, SC_EHLO);
}

static void
sc_on_ehlo(struct smtp_client *c, const struct smtp_response *r)
{
	char line[SMTPC_HELO_MAX + 8];
	size_t n = strlen(c->helo);

	if (r->code / 100 == 2) {
		smtp_ehlo_parse(r, &c->ehlo);
		sc_after_hello(c);
		return;
	}
	if (r->code / 100 != 5) {
		sc_fail(c, SMTPC_FAIL_HELO, "EHLO refused", r, true);
		return;
	}
	/* RFC 5321 §3.2: a server without extensions; try HELO. */
	memcpy(line, "HELO ", 5);
	memcpy(line + 5, c->helo, n);
	if (sc_send(c, line, n + 5, NULL))
		sc_set_state(c, SC_HELO);
}

static void
sc_on_helo(struct smtp_client *c, const struct smtp_response *r)
{
	if (r->code / 100 != 2) {
		sc_fail(c, SMTPC_FAIL_HELO, "EHLO and HELO refused", r, true);
		return;
	}
	sc_helo_reset(c);
	sc_after_hello(c);
}

static void
sc_auth_plain(struct smtp_client *c)
{
	struct buf cred, line;
	size_t un = strlen(c->user), pn = strlen(c->pass);
	bool ok;

	buf_init(&cred, 2 * SMTPC_CRED_MAX + 4);
	buf_init(&line, 4 * SMTPC_CRED_MAX + 32);
	ok = buf_addc(&cred, '\0') == 0 && buf_add(&cred, c->user, un) == 0 &&
	     buf_addc(&cred, '\0') == 0 && buf_add(&cred, c->pass, pn) == 0 &&
	     buf_adds(&line, "AUTH PLAIN ") == 0 &&
	     smtp_base64(cred.data, cred.len, &line) == 0;
	if (!ok)
		sc_fail(c, SMTPC_FAIL_NOMEM, "cannot build AUTH", NULL, false);
	else if (sc_send(c, line.data, line.len, "AUTH PLAIN <redacted>")) {
		c->out_secret = true;
		sc_set_state(c, SC_AUTH_PLAIN);
	}
	if (cred.data != NULL)
		explicit_bzero(cred.data, cred.cap);
	if (line.data != NULL)
		explicit_bzero(line.data, line.cap);
	buf_free(&cred);
	buf_free(&line);
}

/* One LOGIN step: base64 of secret s, then state st. */
static void
sc_auth_login_step(struct smtp_client *c, const char *s, enum sc_state st)
{
	struct buf line;

	buf_init(&line, 2 * SMTPC_CRED_MAX + 8);
	if (smtp_base64(s, strlen(s), &line) < 0)
		sc_fail(c, SMTPC_FAIL_NOMEM, "cannot build AUTH", NULL, false);
	else if (sc_send(c, line.data ? line.data : "", line.len,
			 "<redacted>")) {
		c->out_secret = true;
		sc_set_state(c, st);
	}
	if (line.data != NULL)
		explicit_bzero(line.data, line.cap);
	buf_free(&line);
}

static void
sc_auth_start(struct smtp_client *c)
{
	if (!c->in_tls) {
		sc_fail(c, SMTPC_FAIL_AUTH,
			"AUTH credentials configured but the connection is "
			"not TLS; not sending them in plaintext",
			NULL, true);
		return;
	}
	if (c->ehlo.auth_mechs & SMTP_AUTH_PLAIN)
		sc_auth_plain(c);
	else if ((c->ehlo.auth_mechs & SMTP_AUTH_LOGIN) &&
		 sc_sends(c, "AUTH LOGIN"))
		sc_set_state(c, SC_AUTH_LOGIN);
	else if (c->fail == SMTPC_FAIL_NONE)
		sc_fail(c, SMTPC_FAIL_AUTH,
			"AUTH credentials configured but the server offers "
			"neither AUTH PLAIN nor AUTH LOGIN",
			NULL, true);
}

static void
sc_after_hello(struct smtp_client *c)
{
	if (!c->in_tls && c->tls != SMTPC_TLS_OFF && c->ehlo.starttls &&
	    !c->tls_refused) {
		if (sc_sends(c, "STARTTLS"))
			sc_set_state(c, SC_STARTTLS);
		return;
	}
	if (!c->in_tls && c->tls == SMTPC_TLS_MUST) {
		sc_fail(c, SMTPC_FAIL_TLS,
			"TLS required but the server does not offer STARTTLS",
			NULL, true);
		return;
	}
	if (c->auth) {
		sc_auth_start(c);
		return;
	}
	sc_set_state(c, SC_READY);
}

static void
sc_on_starttls(struct smtp_client *c, const struct smtp_response *r)
{
	if (r->code == 220) {
		sc_set_state(c, SC_TLS);
		return;
	}
	if (c->tls == SMTPC_TLS_MUST) {
		sc_fail(c, SMTPC_FAIL_TLS, "TLS required but STARTTLS refused",
			r, true);
		return;
	}
	c->tls_refused = true; /* opportunistic: go on in plaintext */
	sc_after_hello(c);
}

static void
sc_auth_failed(struct smtp_client *c, const struct smtp_response *r)
{
	/* Inside a 334 exchange QUIT would be read as a SASL response. */
	sc_fail(c, r->code >= 400 ? SMTPC_FAIL_AUTH_REFUSED : SMTPC_FAIL_AUTH,
		"authentication failed", r, r->code != 334);
}

static void
sc_on_auth_plain(struct smtp_client *c, const struct smtp_response *r)
{
	if (r->code / 100 == 2)
		sc_set_state(c, SC_READY);
	else
		sc_auth_failed(c, r);
}

static void
sc_on_auth_login(struct smtp_client *c, const struct smtp_response *r)
{
	if (r->code == 334)
		sc_auth_login_step(c, c->user, SC_AUTH_USER);
	else
		sc_auth_failed(c, r);
}

static void
sc_on_auth_user(struct smtp_client *c, const struct smtp_response *r)
{
	if (r->code == 334)
		sc_auth_login_step(c, c->pass, SC_AUTH_PASS);
	else
		sc_auth_failed(c, r);
}

static void
sc_on_auth_pass(struct smtp_client *c, const struct smtp_response *r)
{
	sc_on_auth_plain(c, r);
}

/* --- transaction ------------------------------------------------------- */

static void
sc_txn_end(struct smtp_client *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (c->oc[i].result == SMTPC_PENDING)
			sc_outcome_local(c, i, sc_state_cmd(c->state), "4.5.0",
					 "no reply for this recipient");
	if (c->in_txn)
		c->msgs_done++;
	c->in_txn = false;
	smtp_response_free(&c->mailfail);
	sc_set_state(c, SC_READY);
}

static int
sc_mail_params(struct smtp_client *c, struct buf *b)
{
	const struct smtp_client_msg *m = c->msg;
	int rc = 0;

	if (c->ehlo.size)
		rc |= buf_addf(b, " SIZE=%llu", (unsigned long long)c->size);
	if (c->eightbit && c->ehlo.eightbitmime)
		rc |= buf_adds(b, " BODY=8BITMIME");
	if (c->utf8)
		rc |= buf_adds(b, " SMTPUTF8");
	if (c->ehlo.dsn && m->ret != SMTP_RET_UNSPEC)
		rc |= buf_adds(b, m->ret == SMTP_RET_FULL ? " RET=FULL"
							  : " RET=HDRS");
	if (c->ehlo.dsn && m->envid != NULL && *m->envid != '\0') {
		rc |= buf_adds(b, " ENVID=");
		rc |= sc_xtext(b, m->envid);
	}
	return rc;
}

static int
sc_rcpt_params(struct smtp_client *c, const struct smtp_client_rcpt *rc,
	       struct buf *b)
{
	static const char *const names[] = {"SUCCESS", "FAILURE", "DELAY"};
	static const unsigned bits[] = {SMTP_NOTIFY_SUCCESS,
					SMTP_NOTIFY_FAILURE, SMTP_NOTIFY_DELAY};
	const char *semi, *p;
	int r = 0, k, nn = 0;

	if (!c->ehlo.dsn)
		return 0;
	if (rc->notify & SMTP_NOTIFY_NEVER)
		r |= buf_adds(b, " NOTIFY=NEVER");
	else
		for (k = 0; k < 3; k++)
			if (rc->notify & bits[k])
				r |=
				    buf_addf(b, "%s%s",
					     nn++ ? "," : " NOTIFY=", names[k]);
	if (rc->orcpt == NULL || *rc->orcpt == '\0')
		return r;
	semi = strchr(rc->orcpt, ';');
	for (p = rc->orcpt; semi != NULL && p < semi; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '=' || *p == '+')
			return r; /* no sane addr-type: leave ORCPT out */
	if (semi == NULL || semi == rc->orcpt)
		r |= buf_adds(b, " ORCPT=rfc822;");
	else {
		r |= buf_adds(b, " ORCPT=");
		r |= buf_add(b, rc->orcpt, (size_t)(semi - rc->orcpt + 1));
	}
	/* a "utf-8" one (stored 7-bit): raw UTF-8 in an SMTPUTF8
	 * transaction, else as stored (RFC 6533 §3) */
	if (c->utf8 && semi != NULL && semi - rc->orcpt == 5 &&
	    strncasecmp(rc->orcpt, "utf-8", 5) == 0)
		r |= sc_unitext(b, semi + 1);
	else
		r |= sc_xtext(b, semi ? semi + 1 : rc->orcpt);
	return r;
}

static bool
sc_send_rcpt(struct smtp_client *c, size_t i)
{
	struct buf b;
	bool ok;

	buf_init(&b, SMTPC_OUT_MAX);
	ok = buf_addf(&b, "RCPT TO:<%s>",
		      c->wrcpt[i] ? c->wrcpt[i] : c->msg->rcpts[i].addr) == 0 &&
	     sc_rcpt_params(c, &c->msg->rcpts[i], &b) == 0;
	if (!ok)
		sc_fail(c, SMTPC_FAIL_NOMEM, "cannot build RCPT", NULL, false);
	else
		ok = sc_send(c, b.data, b.len, NULL);
	buf_free(&b);
	if (ok) {
		c->rs[i].sent = true;
		c->ri = i;
	}
	return ok;
}

/* The next recipient from i on that is sent (batch) or still to send. */
static size_t
sc_next_rcpt(const struct smtp_client *c, size_t i)
{
	for (; i < c->n; i++) {
		if (c->batch && c->rs[i].sent)
			break;
		if (!c->batch && !c->rs[i].sent &&
		    c->oc[i].result == SMTPC_PENDING)
			break;
	}
	return i;
}

static void
sc_send_mail(struct smtp_client *c)
{
	struct buf b;
	bool ok;
	size_t i;

	buf_init(&b, SMTPC_OUT_MAX);
	ok = buf_addf(&b, "MAIL FROM:<%s>", c->wsender) == 0 &&
	     sc_mail_params(c, &b) == 0;
	if (!ok)
		sc_fail(c, SMTPC_FAIL_NOMEM, "cannot build MAIL", NULL, false);
	else
		ok = sc_send(c, b.data, b.len, NULL);
	buf_free(&b);
	if (!ok)
		return;
	c->in_txn = true;
	c->dirty = true;
	sc_set_state(c, SC_MAIL);
	if (!c->ehlo.pipelining)
		return;
	/* RFC 2920 §3.1: MAIL, RCPTs and DATA in one group. */
	for (i = 0; i < c->n; i++)
		if (c->oc[i].result == SMTPC_PENDING && !sc_send_rcpt(c, i))
			return;
	if (sc_sends(c, "DATA"))
		c->batch = true;
}

/*
 * addr without non-ASCII for a server lacking SMTPUTF8: a U-label
 * domain becomes A-labels. 0 ok, -1 the local part is UTF-8, -2 the
 * domain is no valid IDN.
 */
static int
sc_ascii_addr(const char *addr, char *out, size_t len)
{
	struct mailaddr a;

	if (!sc_nonascii(addr)) {
		snprintf(out, len, "%s", addr);
		return 0;
	}
	if (addr_parse_mailbox(addr, strlen(addr),
			       ADDR_F_UTF8 | ADDR_F_NO_DOMAIN_OK,
			       &a) != ADDR_OK)
		return -2;
	if (!addr_local_ascii(&a))
		return -1;
	if (addr_domain_ascii(&a) != ADDR_OK)
		return -2;
	addr_format(&a, out, len);
	return 0;
}

static const char *
sc_ascii_why(int r, bool sender)
{
	if (r == -2)
		return sender ? "the sender domain is not a valid "
				"internationalized domain name"
			      : "the recipient domain is not a valid "
				"internationalized domain name";
	return sender ? "the sender address has a UTF-8 local part and the "
			"server does not offer SMTPUTF8 (RFC 6531); it is "
			"never downgraded"
		      : "the recipient address has a UTF-8 local part and "
			"the server does not offer SMTPUTF8 (RFC 6531); it "
			"cannot be delivered there";
}

static bool
sc_needs_utf8(const struct smtp_client *c)
{
	const struct smtp_client_msg *m = c->msg;

	if ((m->smtputf8 && m->hdr_utf8) || sc_nonascii(m->sender))
		return true;
	for (size_t i = 0; i < c->n; i++)
		if (c->oc[i].result == SMTPC_PENDING &&
		    sc_nonascii(m->rcpts[i].addr))
			return true;
	return false;
}

/* SMTPUTF8 needed and not offered: A-labels where that is enough. */
static void
sc_utf8_fallback(struct smtp_client *c)
{
	const struct smtp_client_msg *m = c->msg;
	char tmp[ADDR_PATH_MAX + 2];
	int r;

	if (m->smtputf8 && m->hdr_utf8) {
		sc_local_all(c, "5.6.7",
			     "the message header contains UTF-8 (RFC 6532) and "
			     "the server does not offer SMTPUTF8; it is never "
			     "downgraded");
		return;
	}
	if ((r = sc_ascii_addr(m->sender, c->wsender, sizeof(c->wsender))) <
	    0) {
		sc_local_all(c, r == -2 ? "5.1.7" : "5.6.7",
			     sc_ascii_why(r, true));
		return;
	}
	for (size_t i = 0; i < c->n; i++) {
		if (c->oc[i].result != SMTPC_PENDING ||
		    !sc_nonascii(m->rcpts[i].addr))
			continue;
		r = sc_ascii_addr(m->rcpts[i].addr, tmp, sizeof(tmp));
		if (r < 0)
			sc_outcome_local(c, i, SMTPC_CMD_NONE,
					 r == -2 ? "5.1.3" : "5.6.7",
					 sc_ascii_why(r, false));
		else if ((c->wrcpt[i] = tmalloc(strlen(tmp) + 1)) == NULL)
			sc_outcome_local(c, i, SMTPC_CMD_NONE, "4.3.0",
					 "out of memory");
		else
			memcpy(c->wrcpt[i], tmp, strlen(tmp) + 1);
	}
}

static size_t
sc_pending(const struct smtp_client *c)
{
	size_t i, n = 0;

	for (i = 0; i < c->n; i++)
		n += c->oc[i].result == SMTPC_PENDING;
	return n;
}

/* RFC 5321 §4.5.3.1.6: never more than 998 octets on a line. */
static bool
sc_lines_ok(struct smtp_client *c)
{
	const struct smtp_client_msg *m = c->msg;
	char why[300];

	if (!m->signed_body || (m->hdr_line_max <= SMTPC_LINE_MAX &&
				m->body_line_max <= SMTPC_LINE_MAX))
		return true;
	snprintf(why, sizeof(why),
		 "the message has a %s line of %u octets (SMTP allows 998) "
		 "and carries our DKIM signature: folding the line would "
		 "break the signature, so it is not sent; the sender should "
		 "use quoted-printable or base64 for long lines",
		 m->body_line_max > SMTPC_LINE_MAX ? "body" : "header",
		 m->body_line_max > SMTPC_LINE_MAX ? m->body_line_max
						   : m->hdr_line_max);
	sc_local_all(c, "5.6.3", why);
	return false;
}

/* Checks that need no server round trip; then MAIL. */
static void
sc_txn_begin(struct smtp_client *c)
{
	const struct smtp_client_msg *m = c->msg;
	size_t i;

	snprintf(c->wsender, sizeof(c->wsender), "%s", m->sender);
	if (!sc_addr_ok(m->sender, true))
		sc_local_all(c, "5.1.7", "sender address unusable in SMTP");
	for (i = 0; i < c->n; i++)
		if (c->oc[i].result == SMTPC_PENDING &&
		    !sc_addr_ok(m->rcpts[i].addr, false))
			sc_outcome_local(c, i, SMTPC_CMD_NONE, "5.1.3",
					 "recipient address unusable in SMTP");
	c->utf8 = false;
	if (sc_pending(c) > 0 && sc_needs_utf8(c)) {
		if (c->ehlo.smtputf8)
			c->utf8 = true;
		else
			sc_utf8_fallback(c);
	}
	if (sc_pending(c) == 0 || !sc_lines_ok(c)) {
		sc_txn_end(c);
		return;
	}
	if (c->ehlo.size && c->ehlo.size_max > 0 &&
	    c->size > c->ehlo.size_max) {
		sc_local_all(c, "5.3.4",
			     "message larger than the server's SIZE limit");
		sc_txn_end(c);
	} else if (c->eightbit && !c->ehlo.eightbitmime) {
		if (m->signed_body) {
			sc_local_all(c, "5.6.3",
				     "8-bit signed message and the server "
				     "lacks 8BITMIME; a signed body is never "
				     "downgraded");
			sc_txn_end(c);
		} else
			sc_set_state(c, SC_DOWNGRADE);
	} else
		sc_send_mail(c);
}

static void
sc_on_rset(struct smtp_client *c, const struct smtp_response *r)
{
	if (r->code != 250) {
		sc_fail(c, SMTPC_FAIL_RSET, "RSET refused", r, true);
		return;
	}
	c->dirty = false;
	sc_txn_begin(c);
}

static void
sc_on_mail(struct smtp_client *c, const struct smtp_response *r)
{
	size_t i;

	if (r->code / 100 != 2) {
		if (!c->batch) {
			for (i = 0; i < c->n; i++)
				if (c->oc[i].result == SMTPC_PENDING)
					sc_outcome_reply(c, i, SMTPC_CMD_MAIL,
							 r,
							 sc_result_of(r->code));
			sc_txn_end(c);
			return;
		}
		/* Pipelined: the RCPT and DATA replies are still due. */
		c->mail_failed = true;
		if (smtp_response_copy(&c->mailfail, r) < 0) {
			sc_fail(c, SMTPC_FAIL_NOMEM, "cannot keep reply", r,
				false);
			return;
		}
	}
	i = sc_next_rcpt(c, 0);
	if (c->batch) {
		c->ri = i;
		sc_set_state(c, SC_RCPT);
	} else if (sc_send_rcpt(c, i))
		sc_set_state(c, SC_RCPT);
}

static void
sc_on_rcpt(struct smtp_client *c, const struct smtp_response *r)
{
	size_t i = c->ri, next;

	if (c->mail_failed)
		sc_outcome_reply(c, i, SMTPC_CMD_MAIL, &c->mailfail,
				 sc_result_of(c->mailfail.code));
	else if (r->code / 100 == 2) {
		c->rs[i].accepted = true;
		c->naccepted++;
	} else
		sc_outcome_reply(c, i, SMTPC_CMD_RCPT, r,
				 sc_result_of(r->code));
	next = sc_next_rcpt(c, i + 1);
	if (next < c->n) {
		if (c->batch)
			c->ri = next;
		else
			sc_send_rcpt(c, next);
		return;
	}
	if (c->batch)
		sc_set_state(c, SC_DATA);
	else if (c->naccepted > 0 && sc_sends(c, "DATA"))
		sc_set_state(c, SC_DATA);
	else if (c->naccepted == 0)
		sc_txn_end(c);
}

/* The reply r applies to every accepted recipient. */
static void
sc_accepted_outcome(struct smtp_client *c, enum smtpc_cmd cmd,
		    const struct smtp_response *r, enum smtpc_result res)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (c->rs[i].accepted && c->oc[i].result == SMTPC_PENDING)
			sc_outcome_reply(c, i, cmd, r, res);
}

static void
sc_on_data(struct smtp_client *c, const struct smtp_response *r)
{
	if (r->code == 354 && c->naccepted > 0 && !c->mail_failed) {
		sc_set_state(c, SC_BODY);
		return;
	}
	if (r->code == 354) {
		/* RFC 2920 §3.1: accepted without recipients: lone dot. */
		if (sc_sends(c, "."))
			sc_set_state(c, SC_NULLDOT);
		return;
	}
	/* 2xx to DATA is out of step: not a delivery, retry later. */
	sc_accepted_outcome(c, SMTPC_CMD_DATA, r,
			    r->code / 100 == 5 ? SMTPC_BOUNCED
					       : SMTPC_DEFERRED);
	sc_txn_end(c);
}

static void
sc_on_dot(struct smtp_client *c, const struct smtp_response *r)
{
	sc_accepted_outcome(c, SMTPC_CMD_DOT, r, sc_result_of(r->code));
	sc_txn_end(c);
}

static void
sc_on_nulldot(struct smtp_client *c, const struct smtp_response *r)
{
	sc_txn_end(c); /* its reply means nothing: no recipient */
}

static void
sc_on_quit(struct smtp_client *c, const struct smtp_response *r)
{
	sc_set_state(c, SC_CLOSED);
}

static sc_handler *const sc_handlers[SC_NSTATES] = {
    [SC_GREETING] = sc_on_greeting,
    [SC_EHLO] = sc_on_ehlo,
    [SC_HELO] = sc_on_helo,
    [SC_STARTTLS] = sc_on_starttls,
    [SC_AUTH_PLAIN] = sc_on_auth_plain,
    [SC_AUTH_LOGIN] = sc_on_auth_login,
    [SC_AUTH_USER] = sc_on_auth_user,
    [SC_AUTH_PASS] = sc_on_auth_pass,
    [SC_RSET] = sc_on_rset,
    [SC_MAIL] = sc_on_mail,
    [SC_RCPT] = sc_on_rcpt,
    [SC_DATA] = sc_on_data,
    [SC_DOT] = sc_on_dot,
    [SC_NULLDOT] = sc_on_nulldot,
    [SC_QUIT] = sc_on_quit,
};

/* --- public ------------------------------------------------------------ */

static bool
sc_copy_str(char *dst, const char *src, size_t max, bool space_ok)
{
	size_t n = strlen(src), i;

	if (n == 0 || n > max)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)src[i] < 0x20 || src[i] == 0x7f ||
		    (!space_ok && src[i] == ' '))
			return false;
	memcpy(dst, src, n + 1);
	return true;
}

struct smtp_client *
smtp_client_new(const struct smtp_client_params *p)
{
	struct smtp_client *c;

	if (p->helo == NULL ||
	    ((p->auth_user == NULL) != (p->auth_pass == NULL)))
		return NULL;
	c = tcalloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	if (!sc_copy_str(c->helo, p->helo, SMTPC_HELO_MAX, false) ||
	    (p->auth_user != NULL &&
	     (!sc_copy_str(c->user, p->auth_user, SMTPC_CRED_MAX, true) ||
	      !sc_copy_str(c->pass, p->auth_pass, SMTPC_CRED_MAX, true)))) {
		smtp_client_free(c);
		return NULL;
	}
	c->auth = p->auth_user != NULL;
	c->tls = p->tls;
	c->in_tls = p->in_tls;
	c->max_msgs = p->max_msgs ? p->max_msgs : 1;
	c->state = SC_GREETING;
	smtp_response_init(&c->mailfail);
	buf_init(&c->out, SMTPC_OUT_MAX);
	buf_init(&c->log, SMTPC_OUT_MAX);
	buf_init(&c->reason, SMTPC_REASON_MAX);
	return c;
}

static void
sc_msg_free(struct smtp_client *c)
{
	size_t i;

	for (i = 0; c->oc != NULL && i < c->n; i++)
		buf_free(&c->oc[i].reply);
	for (i = 0; c->wrcpt != NULL && i < c->n; i++)
		xfree(c->wrcpt[i]);
	xfree(c->wrcpt);
	c->wrcpt = NULL;
	xfree(c->oc);
	xfree(c->rs);
	c->oc = NULL;
	c->rs = NULL;
	c->n = 0;
	c->msg = NULL;
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c == NULL)
		return;
	sc_msg_free(c);
	smtp_response_free(&c->mailfail);
	if (c->out.data != NULL)
		explicit_bzero(c->out.data, c->out.cap);
	buf_free(&c->out);
	buf_free(&c->log);
	buf_free(&c->reason);
	explicit_bzero(c, sizeof(*c));
	xfree(c);
}

enum smtpc_action
smtp_client_next(struct smtp_client *c, const char **data, size_t *len)
{
	*data = NULL;
	*len = 0;
	if (c->out_ready) {
		c->out_ready = false;
		*data = c->out.data;
		*len = c->out.len;
		return SMTPC_ACT_SEND;
	}
	switch (c->state) {
	case SC_TLS:
		return SMTPC_ACT_STARTTLS;
	case SC_BODY:
		return SMTPC_ACT_BODY;
	case SC_DOWNGRADE:
		return SMTPC_ACT_DOWNGRADE;
	case SC_READY:
		return SMTPC_ACT_NEED_MSG;
	case SC_CLOSED:
		return SMTPC_ACT_CLOSE;
	default:
		return SMTPC_ACT_READ;
	}
}

void
smtp_client_reply(struct smtp_client *c, const struct smtp_response *r)
{
	sc_handler *h = sc_handlers[c->state];

	if (c->state == SC_CLOSED)
		return;
	if (r->error != SMTP_REPLY_OK) {
		sc_fail(c, SMTPC_FAIL_PROTOCOL, smtp_reply_strerror(r->error),
			r, false);
		return;
	}
	if (h == NULL) {
		sc_fail(c, SMTPC_FAIL_PROTOCOL, "unexpected reply", r, false);
		return;
	}
	if (r->code == 421 && c->state != SC_QUIT) {
		sc_fail(c, SMTPC_FAIL_421, "service closing", r, false);
		return;
	}
	h(c, r);
}

/* Fail with "what: why" (why sanitized: it may quote the peer). */
static void
sc_fail_why(struct smtp_client *c, enum smtpc_fail kind, const char *what,
	    const char *why)
{
	struct buf b;

	buf_init(&b, SMTPC_REASON_MAX);
	if (buf_adds(&b, what) < 0 ||
	    (why != NULL && *why != '\0' &&
	     (buf_adds(&b, ": ") < 0 ||
	      smtp_reply_sanitize(why, strlen(why), &b) < 0))) {
		buf_free(&b);
		sc_fail(c, kind, what, NULL, false);
		return;
	}
	sc_fail(c, kind, b.data, NULL, false);
	buf_free(&b);
}

void
smtp_client_lost(struct smtp_client *c, const char *why)
{
	char what[64];
	const char *st = sc_state_names[c->state];

	if (c->state == SC_QUIT || c->state == SC_CLOSED) {
		sc_set_state(c, SC_CLOSED);
		return;
	}
	memcpy(what, "connection lost in ", 20);
	memcpy(what + 19, st, strlen(st) + 1);
	sc_fail_why(c, SMTPC_FAIL_LOST, what, why);
}

void
smtp_client_tls_done(struct smtp_client *c, bool ok, const char *why)
{
	if (c->state != SC_TLS)
		return;
	if (!ok) {
		sc_fail_why(c, SMTPC_FAIL_TLS, "TLS handshake failed", why);
		return;
	}
	/* RFC 3207 §4.2: forget everything learnt before TLS. */
	c->in_tls = true;
	sc_ehlo(c);
}

void
smtp_client_body_sent(struct smtp_client *c)
{
	if (c->state == SC_BODY)
		sc_set_state(c, SC_DOT);
}

void
smtp_client_downgraded(struct smtp_client *c, uint64_t new_size)
{
	if (c->state != SC_DOWNGRADE)
		return;
	c->eightbit = false;
	c->size = new_size;
	sc_txn_begin(c);
}

void
smtp_client_msg_abort(struct smtp_client *c, const char *status,
		      const char *text)
{
	if (c->state != SC_DOWNGRADE)
		return;
	sc_local_all(c, status, text);
	sc_txn_end(c);
}

bool
smtp_client_can_send(const struct smtp_client *c)
{
	return c->state == SC_READY && c->fail == SMTPC_FAIL_NONE &&
	       c->msgs_done < c->max_msgs;
}

int
smtp_client_msg_start(struct smtp_client *c, const struct smtp_client_msg *m)
{
	size_t i;

	if (!smtp_client_can_send(c) || m->nrcpts == 0 || m->sender == NULL)
		return -1;
	sc_msg_free(c);
	c->oc = tcalloc(m->nrcpts, sizeof(*c->oc));
	c->rs = tcalloc(m->nrcpts, sizeof(*c->rs));
	c->wrcpt = tcalloc(m->nrcpts, sizeof(*c->wrcpt));
	if (c->oc == NULL || c->rs == NULL || c->wrcpt == NULL) {
		sc_fail(c, SMTPC_FAIL_NOMEM, "cannot start a transaction", NULL,
			false);
		return -1;
	}
	c->n = m->nrcpts;
	for (i = 0; i < c->n; i++)
		buf_init(&c->oc[i].reply, SMTP_REPLY_TEXT_MAX);
	sc_txn_reset(c, m);
	if (!c->dirty) {
		sc_txn_begin(c);
		return 0;
	}
	/* DESIGN §7: reuse a connection only after RSET got 250. */
	if (sc_sends(c, "RSET"))
		sc_set_state(c, SC_RSET);
	return 0;
}

void
smtp_client_quit(struct smtp_client *c)
{
	if (c->state == SC_READY && sc_sends(c, "QUIT"))
		sc_set_state(c, SC_QUIT);
}

const struct smtp_client_outcome *
smtp_client_outcome(const struct smtp_client *c, size_t i)
{
	return i < c->n ? &c->oc[i] : NULL;
}

const struct smtp_ehlo *
smtp_client_ehlo(const struct smtp_client *c)
{
	return &c->ehlo;
}

bool
smtp_client_in_tls(const struct smtp_client *c)
{
	return c->in_tls;
}

unsigned
smtp_client_msgs_done(const struct smtp_client *c)
{
	return c->msgs_done;
}

enum smtpc_fail
smtp_client_failure(const struct smtp_client *c, const char **reason)
{
	*reason = c->reason.data ? c->reason.data : "";
	return c->fail;
}

bool
smtp_client_try_next(const struct smtp_client *c)
{
	return c->fail != SMTPC_FAIL_NONE && c->try_next;
}

const char *
smtp_client_transcript(const struct smtp_client *c)
{
	return c->log.data ? c->log.data : "";
}

const char *
smtp_client_state_name(const struct smtp_client *c)
{
	return sc_state_names[c->state];
}

const char *
smtp_client_cmd_name(enum smtpc_cmd cmd)
{
	static const char *const names[] = {
	    "none", "greeting", "EHLO", "HELO",	       "STARTTLS", "AUTH",
	    "MAIL", "RCPT",	"DATA", "end of data", "RSET",	   "QUIT",
	};

	if ((unsigned)cmd >= sizeof(names) / sizeof(names[0]))
		return "?";
	return names[cmd];
}

enum smtpc_timeout
smtp_client_timeout(const struct smtp_client *c)
{
	switch (c->state) {
	case SC_GREETING:
		return SMTPC_TO_GREETING;
	case SC_MAIL:
		return SMTPC_TO_MAIL;
	case SC_RCPT:
		return SMTPC_TO_RCPT;
	case SC_DATA:
		return SMTPC_TO_DATA_INIT;
	case SC_BODY:
		return SMTPC_TO_DATA_BLOCK;
	case SC_DOT:
	case SC_NULLDOT:
		return SMTPC_TO_DOT;
	default:
		return SMTPC_TO_OTHER;
	}
}

unsigned
smtp_client_timeout_secs(enum smtpc_timeout t)
{
	switch (t) {
	case SMTPC_TO_DATA_INIT:
		return 120;
	case SMTPC_TO_DATA_BLOCK:
		return 180;
	case SMTPC_TO_DOT:
		return 600;
	default:
		return 300;
	}
}

/* --- dot-stuffing ------------------------------------------------------ */

enum smtp_dotstuff_state {
	DS_BOL,	 /* at the start of a line */
	DS_MID,	 /* inside a line */
	DS_CR,	 /* a CR was read; its LF may follow */
	DS_DONE, /* terminator written */
};

void
smtp_dotstuff_init(struct smtp_dotstuff *d)
{
	memset(d, 0, sizeof(*d));
	d->state = DS_BOL;
}

static bool
ds_add(struct smtp_dotstuff *d, struct buf *out, const char *p, size_t n)
{
	if (buf_add(out, p, n) < 0) {
		if (n <= out->max - out->len)
			d->nomem = true;
		return false;
	}
	d->out_bytes += n;
	return true;
}

static void
ds_line(struct smtp_dotstuff *d, unsigned add)
{
	d->line_len =
	    add > 0xffffffu - d->line_len ? 0xffffffu : d->line_len + add;
	if (d->line_len > SMTPC_LINE_MAX)
		d->long_line = true;
}

/* A run of ordinary octets inside a line; returns the count taken. */
static size_t
ds_run(struct smtp_dotstuff *d, const char *in, size_t n, struct buf *out)
{
	size_t k = 0, room = out->max - out->len;

	while (k < n && in[k] != '\r' && in[k] != '\n')
		k++;
	if (k > room)
		k = room;
	if (d->line_len < SMTPC_LINE_MAX && k > SMTPC_LINE_MAX - d->line_len)
		k = SMTPC_LINE_MAX - d->line_len;
	if (k == 0 || !ds_add(d, out, in, k))
		return 0;
	ds_line(d, (unsigned)(k > 0xffffff ? 0xffffff : k));
	return k;
}

/* One octet outside a run: CR, LF, or the first octet of a line. */
static bool
ds_octet(struct smtp_dotstuff *d, char c, struct buf *out)
{
	char e[5];
	size_t k = 0;
	int st = d->state;
	unsigned len = d->line_len;
	bool bare = false;

	if (st == DS_CR && c != '\n') {
		e[k++] = '\r'; /* bare CR: close the line */
		e[k++] = '\n';
		bare = true;
		st = DS_BOL;
		len = 0;
	}
	if (c == '\r') {
		st = DS_CR;
	} else if (c == '\n') {
		e[k++] = '\r';
		e[k++] = '\n';
		bare |= st != DS_CR;
		st = DS_BOL;
		len = 0;
	} else {
		if (st == DS_BOL && c == '.') {
			e[k++] = '.';
			len++;
		}
		e[k++] = c;
		len++;
		st = DS_MID;
	}
	if (k > 0 && !ds_add(d, out, e, k))
		return false;
	if (bare)
		d->bare_eol = true;
	d->state = st;
	d->line_len = 0;
	ds_line(d, len);
	return true;
}

static bool
ds_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Queue n octets of a header step (room is checked by the caller). */
static void
ds_q(struct smtp_dotstuff *d, const char *p, size_t n)
{
	memcpy(d->q + d->qlen, p, n);
	d->qlen += (unsigned)n;
}

/* Move queued octets to out; false while some are left (out full). */
static bool
ds_q_drain(struct smtp_dotstuff *d, struct buf *out)
{
	size_t k = d->qlen, room = out->max - out->len;

	if (k > room)
		k = room;
	if (k > 0 && !ds_add(d, out, d->q, k))
		return false;
	memmove(d->q, d->q + k, d->qlen - k);
	d->qlen -= (unsigned)k;
	return d->qlen == 0;
}

/* Header line: queue what is held back. */
static void
ds_hdr_flush(struct smtp_dotstuff *d)
{
	ds_q(d, d->pend, d->plen);
	d->plen = 0;
	d->emitted = d->line_len;
}

/* A header line is full before the next octet: fold it. */
static void
ds_hdr_fold(struct smtp_dotstuff *d)
{
	d->long_line = true;
	if (d->plen > 0 && ds_wsp(d->pend[0]) && d->emitted > 0) {
		/* break before the blank: it starts the continuation line */
		ds_q(d, "\r\n", 2);
		d->line_len = d->plen;
		d->emitted = 0;
	}
	if (d->line_len < SMTPC_LINE_MAX)
		return;
	ds_hdr_flush(d);
	ds_q(d, "\r\n ", 3);
	d->line_len = d->emitted = 1;
}

/* The header line ends (CRLF, bare CR or bare LF). */
static void
ds_hdr_eol(struct smtp_dotstuff *d, bool bare)
{
	ds_hdr_flush(d);
	ds_q(d, "\r\n", 2);
	if (d->line_len == 0)
		d->in_body = true; /* the empty line ends the header block */
	d->bare_eol |= bare;
	d->line_len = d->emitted = 0;
	d->state = DS_BOL;
}

/*
 * One octet of the header block, queued in d->q (empty on entry; one
 * step needs at most a held-back line plus 8 octets). The current line
 * is held from its last blank on (pend), so a fold can go before it.
 */
static void
ds_hdr_octet(struct smtp_dotstuff *d, char c)
{
	if (d->state == DS_CR && c != '\n')
		ds_hdr_eol(d, true); /* bare CR */
	if (c == '\r') {
		d->state = DS_CR;
		return;
	}
	if (c == '\n') {
		ds_hdr_eol(d, d->state != DS_CR);
		return;
	}
	if (d->in_body) { /* a bare CR ended the block: c is body */
		d->pend[d->plen++] = c;
		d->line_len += 1 + (c == '.');
		if (c == '.')
			ds_q(d, ".", 1);
		ds_hdr_flush(d);
		d->state = DS_MID;
		return;
	}
	if (ds_wsp(c) && d->line_len > 0) {
		ds_hdr_flush(d);
		if (d->line_len >= SMTPC_LINE_MAX) {
			d->long_line = true;
			ds_q(d, "\r\n", 2);
			d->line_len = d->emitted = 0;
		}
	} else if (d->line_len >= SMTPC_LINE_MAX)
		ds_hdr_fold(d);
	if (d->state == DS_BOL && c == '.') {
		d->pend[d->plen++] = '.';
		d->line_len++;
	}
	d->pend[d->plen++] = c;
	d->line_len++;
	d->state = DS_MID;
}

/* Body line full and more to come: break it. */
static bool
ds_body_break(struct smtp_dotstuff *d, struct buf *out)
{
	if (!ds_add(d, out, "\r\n", 2))
		return false;
	d->long_line = true;
	d->line_len = 0;
	d->state = DS_BOL;
	return true;
}

size_t
smtp_dotstuff_feed(struct smtp_dotstuff *d, const char *in, size_t n,
		   struct buf *out)
{
	size_t i = 0, k;

	while (i < n && d->state != DS_DONE) {
		if (!ds_q_drain(d, out))
			break;
		if (!d->in_body) {
			ds_hdr_octet(d, in[i]);
			i++;
		} else if (d->state == DS_MID && in[i] != '\r' &&
			   in[i] != '\n') {
			if (d->line_len >= SMTPC_LINE_MAX) {
				if (!ds_body_break(d, out))
					break;
				continue;
			}
			k = ds_run(d, in + i, n - i, out);
			if (k == 0)
				break;
			i += k;
		} else if (ds_octet(d, in[i], out))
			i++;
		else
			break;
	}
	(void)ds_q_drain(d, out);
	return i;
}

int
smtp_dotstuff_end(struct smtp_dotstuff *d, struct buf *out)
{
	const char *e = ".\r\n";

	if (d->state == DS_DONE)
		return 0;
	if (d->plen > 0)
		ds_hdr_flush(d);
	if (!ds_q_drain(d, out))
		return -1;
	if (d->state != DS_BOL)
		e = "\r\n.\r\n";
	if (!ds_add(d, out, e, strlen(e)))
		return -1;
	if (d->state == DS_CR)
		d->bare_eol = true;
	d->state = DS_DONE;
	return 0;
}

/* --- message shape ------------------------------------------------------ */

enum sh_state { SH_BOL, SH_MID, SH_CR };

void
smtp_shape_init(struct smtp_shape *s)
{
	memset(s, 0, sizeof(*s));
	s->state = SH_BOL;
}

/* The current line ended (CRLF, bare CR or bare LF). */
static void
sh_eol(struct smtp_shape *s)
{
	if (!s->in_body && s->cur == 0)
		s->in_body = true; /* the empty line ends the header block */
	s->cur = 0;
	s->state = SH_BOL;
}

void
smtp_shape_feed(struct smtp_shape *s, const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	bool hdr = !s->in_body;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = u[i];

		if (s->state == SH_CR && c != '\n')
			sh_eol(s); /* bare CR */
		if (c == '\r') {
			s->state = SH_CR;
			continue;
		}
		if (c == '\n') {
			sh_eol(s);
			hdr = !s->in_body;
			continue;
		}
		hdr = !s->in_body;
		if (s->state == SH_BOL && c == '.')
			s->cur++; /* the stuffed dot */
		s->state = SH_MID;
		if (s->cur < 0xffffffu)
			s->cur++;
		if (hdr) {
			s->hdr_8bit |= c >= 0x80;
			if (s->cur > s->hdr_max)
				s->hdr_max = s->cur;
		} else {
			s->body_8bit |= c >= 0x80;
			if (s->cur > s->body_max)
				s->body_max = s->cur;
		}
	}
}

bool
smtp_has_field(const char *p, size_t n, const char *name)
{
	size_t k = strlen(name), i = 0;

	while (i + k < n) {
		if (strncasecmp(p + i, name, k) == 0) {
			size_t j = i + k;
			while (j < n && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (j < n && p[j] == ':')
				return true;
		}
		const char *nl = memchr(p + i, '\n', n - i);
		if (nl == NULL)
			break;
		i = (size_t)(nl - p) + 1;
		if (i + 1 < n && (p[i] == '\r' || p[i] == '\n'))
			break; /* end of the header block */
	}
	return false;
}
