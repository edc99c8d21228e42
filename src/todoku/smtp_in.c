/*
 * smtp_in — see smtp_in.h.
 */
#include "todoku/smtp_in.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/addr.h"
#include "mail/ar_strip.h"
#include "mail/arc.h"
#include "mail/conf.h"
#include "mail/dkim_sign.h"
#include "mail/hopcount.h"
#include "mail/resolve.h"
#include "mail/smtp_cmd.h"
#include "mail/smtp_data.h"
#include "mail/srs.h"
#include "todoku/auth_in.h"
#include "todoku/dmarc_agg.h"
#include "todoku/proto.h"
#include "todoku/role.h"

enum sess_state { S_CMD, S_WAIT_OPEN, S_DATA, S_WAIT_RESULT, S_CLOSING };

static const char *const state_names[] = {"cmd", "wait-open", "data",
					  "wait-result", "closing"};

struct confref {
	struct conf *c;
	int refs;
};

struct rcpt {
	char addr[ADDR_PATH_MAX + 2];
	char orig[ADDR_PATH_MAX + 2]; /* SRS address addr came from, or "" */
	char orcpt[SMTP_ORCPT_MAX + 1];
	unsigned notify;
};

struct smtpd;

struct session {
	struct smtpd *d;
	struct session *next;
	uint64_t txn_id;
	int fd;
	struct event *rev, *wev, *timer;
	struct confref *cref;
	const struct conf *conf;
	char addr[64];
	char name[256];
	const char *listener; /* [listen "NAME"] it came in on */
	struct sockaddr_storage peer;
	int trusted;
	enum sess_state state;
	struct buf in, out;
	int helo_seen, esmtp;
	char helo[256];
	int mail_seen;
	struct smtp_mail_args mail;
	struct rcpt *rcpts;
	size_t nrcpts;
	struct smtp_data dp;
	struct hopcount hops; /* Received fields of the header block */
	struct buf chunk;
	unsigned credit;
	int txn_open;	/* the queue knows this transaction */
	int txn_failed; /* the queue went away mid-transaction */
	char qid[32];
	unsigned errors;
	unsigned messages;
	int skip_line;
	int data_ended;	      /* CRLF.CRLF seen; last chunk and Q_END pending */
	struct auth_in *auth; /* SPF/DKIM/DMARC of this transaction */
	uint64_t auth_gen;    /* names its DNS questions */
	int auth_waiting;     /* end of data seen, waiting for the checks */
	int processing;	      /* inside sess_process: it flushes when done */
	int hdr_phase;	      /* the chunk still holds only the header block */
	struct dkim_signer *signer; /* DKIM signing of this message */
	char sign_domain[256];
	int sign_waiting; /* K_SIGN sent, waiting for the signature */
	int forwards;	  /* a recipient is forwarded to a non-local address */
	struct arc_sealer *sealer; /* ARC seal of a forwarded message */
	int seal_stage;		   /* 1: AMS signature awaited, 2: AS's */
	struct event *auth_timer;
};

struct smtpd {
	struct role_env *env;
	struct confref *cref;
	struct ipc *master;
	struct ipc *queue;
	struct ipc *lookup;
	struct ipc *keys;
	uint64_t next_auth;
	struct event **listen_ev;
	char **listen_names; /* [listen "NAME"] of each socket */
	size_t nlisten;
	struct session *sessions;
	size_t nsessions;
	uint64_t next_txn;
	int stopping;
};

static void sess_process(struct session *s);
static void sess_run(struct session *s);
static void sess_auth_done(void *arg);
static int sess_sign_request(struct session *s);
static void sess_sign_start(struct session *s, const char *hdr, size_t len);
static void sess_seal_start(struct session *s);
static int sess_seal_request(struct session *s);
static void sess_close(struct session *s);

/* ---- configuration snapshots ------------------------------------------ */

static void
confref_put(struct confref *r)
{
	if (--r->refs == 0) {
		conf_free(r->c);
		xfree(r);
	}
}

static struct confref *
confref_new(struct conf *c)
{
	struct confref *r = xcalloc(1, sizeof(*r));

	r->c = c;
	r->refs = 1;
	return r;
}

/* ---- output -------------------------------------------------------------- */

static void
sess_flush(struct session *s)
{
	while (s->out.len > 0) {
		ssize_t w = write(s->fd, s->out.data, s->out.len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				event_add(s->wev, NULL);
				return;
			}
			s->out.len = 0;
			sess_close(s);
			return;
		}
		buf_consume(&s->out, (size_t)w);
	}
	if (s->state == S_CLOSING)
		sess_close(s);
}

static void sess_reply(struct session *s, int code, const char *status,
		       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
sess_reply(struct session *s, int code, const char *status, const char *fmt,
	   ...)
{
	char text[512];
	va_list ap;
	size_t before = s->out.len;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (status)
		buf_addf(&s->out, "%d %s %s\r\n", code, status, text);
	else
		buf_addf(&s->out, "%d %s\r\n", code, text);
	if (s->out.len == before) {
		log_warn("%s: client does not read its replies; closing",
			 s->addr);
		s->out.len = 0;
		s->state = S_CLOSING;
		return;
	}
	if (log_get_level() >= LOG_LVL_DEBUG)
		log_debug("%s > %.*s", s->addr, (int)(s->out.len - before - 2),
			  s->out.data + before);
	if (code >= 400 && code != 421)
		s->errors++;
}

/* ---- state -------------------------------------------------------------- */

static void
sess_timer(struct session *s)
{
	uint64_t secs;
	struct timeval tv;

	switch (s->state) {
	case S_DATA:
		secs = s->conf->timeout_data_block;
		break;
	case S_WAIT_OPEN:
	case S_WAIT_RESULT:
		secs = s->conf->timeout_data_end;
		break;
	default:
		secs = s->conf->timeout_command;
	}
	tv.tv_sec = (time_t)secs;
	tv.tv_usec = 0;
	evtimer_add(s->timer, &tv);
}

static void
sess_set_state(struct session *s, enum sess_state st)
{
	if (s->state == st)
		return;
	log_debug("%s: %s -> %s", s->addr, state_names[s->state],
		  state_names[st]);
	s->state = st;
	if (st != S_CLOSING)
		sess_timer(s);
}

static void
sess_txn_abort(struct session *s)
{
	/* once Q_END is sent the queue decides; an abort cannot undo it */
	if (s->txn_open && s->d->queue != NULL && !s->txn_failed &&
	    (s->state != S_WAIT_RESULT || s->auth_waiting || s->sign_waiting))
		ipc_send(s->d->queue, Q_ABORT, s->txn_id, -1, NULL);
	s->txn_open = 0;
}

/* RFC 5321 §4.1.1.5: forget sender, recipients and buffers. */
static void
sess_mail_reset(struct session *s)
{
	sess_txn_abort(s);
	s->mail_seen = 0;
	memset(&s->mail, 0, sizeof(s->mail));
	xfree(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	buf_reset(&s->chunk);
	s->txn_failed = 0;
	s->qid[0] = '\0';
	auth_in_free(s->auth);
	s->auth = NULL;
	s->auth_waiting = 0;
	dkim_signer_free(s->signer);
	s->signer = NULL;
	s->sign_waiting = 0;
	s->forwards = 0;
	arc_sealer_free(s->sealer);
	s->sealer = NULL;
	s->seal_stage = 0;
	if (s->auth_timer)
		evtimer_del(s->auth_timer);
}

static void
sess_hangup(struct session *s, int code, const char *status, const char *text)
{
	sess_mail_reset(s);
	sess_reply(s, code, status, "%s %s", s->conf->hostname, text);
	sess_set_state(s, S_CLOSING);
}

/* ---- commands ------------------------------------------------------------ */

static int
sess_need_helo(struct session *s)
{
	if (s->helo_seen)
		return 0;
	sess_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
	return -1;
}

/*
 * Many real clients send a HELO name that is not a domain (Windows host
 * names with "_", bare words, trailing junk). Like Postfix, accept the
 * first word when it is printable ASCII: it is only recorded (escaped by
 * construction) in Received:, never trusted. Empty stays an error.
 */
static int
sess_helo_lenient(const struct smtp_cmd *c, char *dst, size_t len)
{
	size_t n = 0;

	while (n < c->arglen && c->arg[n] != ' ')
		n++;
	if (n == 0 || n >= len)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (c->arg[i] < 0x21 || c->arg[i] > 0x7e || c->arg[i] == '(' ||
		    c->arg[i] == ')')
			return -1;
	memcpy(dst, c->arg, n);
	dst[n] = '\0';
	return 0;
}

/*
 * DSN (RFC 3461) is offered only where its parameters are honoured end
 * to end (DESIGN §7): to clients in trusted-networks, whose mail we
 * relay and whose senders get our notifications. Anybody else gets
 * 555 5.5.4 for NOTIFY/RET/ENVID/ORCPT: a stranger could otherwise ask
 * us to mail "delivered" reports to a forged sender. (When smtp-in
 * gains SMTP AUTH, authenticated sessions belong here too.)
 */
static bool
sess_dsn_ok(const struct session *s)
{
	return s->esmtp && s->trusted;
}

static void
cmd_helo(struct session *s, const struct smtp_cmd *c)
{
	struct smtp_reply err;
	char helo[256];

	if (smtp_helo_parse(c->arg, c->arglen, helo, sizeof(helo), &err) < 0 &&
	    sess_helo_lenient(c, helo, sizeof(helo)) < 0) {
		sess_reply(s, err.code, err.status, "%s", err.text);
		return;
	}
	sess_mail_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%s", helo);
	s->helo_seen = 1;
	s->esmtp = c->verb == SMTP_EHLO;
	if (!s->esmtp) {
		sess_reply(s, 250, NULL, "%s", s->conf->hostname);
		return;
	}
	buf_addf(&s->out,
		 "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n"
		 "250-8BITMIME\r\n250-SMTPUTF8\r\n%s"
		 "250 ENHANCEDSTATUSCODES\r\n",
		 s->conf->hostname,
		 (unsigned long long)s->conf->max_message_size,
		 sess_dsn_ok(s) ? "250-DSN\r\n" : "");
	log_debug("%s > 250 %s (EHLO keywords)", s->addr, s->conf->hostname);
}

/*
 * RFC 6531: a U-label domain is stored in its A-label form (RFC 5890
 * §2.3.2.1: the two are equivalent), so local-domain matching, routing,
 * SRS and DNS only ever see ASCII domains; local parts stay as written.
 * -1 (replied) when the name is no valid IDN.
 */
static int
sess_alabel(struct session *s, struct mailaddr *a, const char *status)
{
	enum addr_err e = addr_domain_ascii(a);

	if (e == ADDR_OK)
		return 0;
	sess_reply(s, 553, status, "Invalid internationalized domain name (%s)",
		   addr_strerror(e));
	return -1;
}

static void
cmd_mail(struct session *s, const struct smtp_cmd *c)
{
	struct smtp_ext ext = {s->esmtp, s->esmtp, s->esmtp, sess_dsn_ok(s)};
	struct smtp_reply err;

	if (sess_need_helo(s) < 0)
		return;
	if (s->mail_seen) {
		sess_reply(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	if (smtp_mail_parse(c->arg, c->arglen, &ext, &s->mail, &err) < 0) {
		sess_reply(s, err.code, err.status, "%s", err.text);
		return;
	}
	if (sess_alabel(s, &s->mail.from, "5.1.7") < 0)
		return;
	if (s->mail.has_size && s->mail.size > s->conf->max_message_size) {
		sess_reply(s, 552, "5.3.4",
			   "Message size exceeds fixed limit of %llu bytes",
			   (unsigned long long)s->conf->max_message_size);
		return;
	}
	s->mail_seen = 1;
	sess_reply(s, 250, "2.1.0", "Ok");
}

/*
 * A bounce to one of our SRS addresses (SRS0=/SRS1= at srs-domain):
 * reverse it with the secrets. 1: not one (carry on), 0: *a is now the
 * original sender and orig the SRS address, -1: refused (replied).
 * Only an address whose hash verifies gets through, so this opens no
 * relay.
 */
static int
sess_rcpt_srs(struct session *s, struct mailaddr *a, char *orig, size_t origlen)
{
	const struct conf *c = s->conf;
	struct srs_secret sec[CONF_SRS_SECRETS_MAX];
	char addr[ADDR_PATH_MAX + 2], out[SRS_OUT_SIZE];
	struct mailaddr b;
	size_t n = 0;
	enum srs_err e;

	if (c->nsrs_secrets == 0 || a->quoted ||
	    strcasecmp(a->domain, conf_srs_domain(c)) != 0)
		return 1;
	addr_format(a, addr, sizeof(addr));
	if (!srs_is_srs(addr))
		return 1;
	for (; n < c->nsrs_secrets && n < CONF_SRS_SECRETS_MAX; n++) {
		sec[n].key = (const unsigned char *)c->srs_secrets[n];
		sec[n].len = strlen(c->srs_secrets[n]);
	}
	e = srs_reverse(sec, n, 0, clock_now(), c->srs_max_age, addr, out,
			sizeof(out));
	if (e == SRS_OK &&
	    addr_parse_mailbox(out, strlen(out), ADDR_F_UTF8, &b) != ADDR_OK)
		e = SRS_E_SYNTAX;
	switch (e) {
	case SRS_OK:
		break;
	case SRS_E_HASH:
	case SRS_E_EXPIRED:
		log_info("%s: RCPT <%s> refused: %s", s->addr, addr,
			 srs_strerror(e));
		sess_reply(s, 550, "5.7.1",
			   "Recipient address rejected: forged or expired SRS "
			   "address (%s)",
			   srs_strerror(e));
		return -1;
	case SRS_E_ARG:
	case SRS_E_CRYPTO:
		log_err("%s: SRS reversal of <%s> failed: %s", s->addr, addr,
			srs_strerror(e));
		sess_reply(s, 451, "4.3.0",
			   "Local error in processing, try again later");
		return -1;
	default:
		sess_reply(s, 550, "5.1.1",
			   "Recipient address rejected: malformed SRS address "
			   "(%s)",
			   srs_strerror(e));
		return -1;
	}
	log_info("%s: SRS address <%s> reversed to <%s>", s->addr, addr, out);
	snprintf(orig, origlen, "%s", addr);
	*a = b;
	return 0;
}

/* Is this recipient acceptable from this client? Replies if not. A
 * valid SRS address is replaced by the address it stands for (orig
 * gets the SRS address; "" for every other recipient). */
static int
sess_rcpt_policy(struct session *s, struct mailaddr *a, char *orig,
		 size_t origlen)
{
	struct resolved r;
	int srs;

	orig[0] = '\0';
	if (a->domain[0] == '\0' && s->conf->ndomains > 0)
		snprintf(a->domain, sizeof(a->domain), "%s",
			 s->conf->domains[0].name);
	if ((srs = sess_rcpt_srs(s, a, orig, origlen)) < 0)
		return -1;
	if (resolve_rcpt(s->conf, a, &r) < 0)
		r.kind = RESOLVE_NO_USER;
	switch (r.kind) {
	case RESOLVE_LOCAL:
	case RESOLVE_ALIAS:
		return 0;
	case RESOLVE_NO_USER:
		sess_reply(s, 550, "5.1.1",
			   "Recipient address rejected: user unknown in "
			   "local recipient table");
		return -1;
	case RESOLVE_REMOTE:
		/* a bounce returning to its origin through our SRS address */
		if (s->trusted || srs == 0)
			return 0;
		sess_reply(s, 554, "5.7.1",
			   "Relay access denied: %s is not a local domain and "
			   "your address is not trusted",
			   a->domain);
		return -1;
	}
	return -1;
}

static void
cmd_rcpt(struct session *s, const struct smtp_cmd *c)
{
	/* RFC 6531 §3.4: UTF-8 recipients only in an SMTPUTF8 transaction */
	struct smtp_ext ext = {s->esmtp, s->esmtp, s->mail.smtputf8,
			       sess_dsn_ok(s)};
	struct smtp_rcpt_args ra;
	struct smtp_reply err;
	struct rcpt *r;
	char orig[ADDR_PATH_MAX + 2];

	if (!s->mail_seen) {
		sess_reply(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (smtp_rcpt_parse(c->arg, c->arglen, &ext, &ra, &err) < 0) {
		sess_reply(s, err.code, err.status, "%s", err.text);
		return;
	}
	if (sess_alabel(s, &ra.to, "5.1.3") < 0)
		return;
	if (s->nrcpts >= s->conf->max_recipients) {
		sess_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (sess_rcpt_policy(s, &ra.to, orig, sizeof(orig)) < 0)
		return;
	if (!s->forwards && resolve_forwards_out(s->conf, &ra.to, orig))
		s->forwards = 1;
	s->rcpts = xrealloc(s->rcpts, (s->nrcpts + 1) * sizeof(*s->rcpts));
	r = &s->rcpts[s->nrcpts++];
	addr_format(&ra.to, r->addr, sizeof(r->addr));
	snprintf(r->orig, sizeof(r->orig), "%s", orig);
	snprintf(r->orcpt, sizeof(r->orcpt), "%s", ra.orcpt);
	r->notify = ra.notify;
	sess_reply(s, 250, "2.1.5", "Ok");
}

/* The Received "with" keyword (RFC 3848; RFC 6531 §3.7.3 for UTF8SMTP). */
static const char *
sess_with_proto(const struct session *s)
{
	if (!s->esmtp)
		return "SMTP";
	return s->mail.smtputf8 ? "UTF8SMTP" : "ESMTP";
}

static void
cmd_data(struct session *s, const struct smtp_cmd *c)
{
	struct ipc_out o;
	char from[ADDR_PATH_MAX + 2];

	if (!s->mail_seen) {
		sess_reply(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (s->nrcpts == 0) {
		sess_reply(s, 554, "5.5.1", "Error: no valid recipients");
		return;
	}
	if (s->d->queue == NULL) {
		sess_reply(s, 451, "4.3.0",
			   "Queue temporarily unavailable, try again later");
		return;
	}
	addr_format(&s->mail.from, from, sizeof(from));
	s->txn_id = ++s->d->next_txn;
	ipc_out_init(&o);
	ipc_put_str(&o, s->addr);
	ipc_put_str(&o, s->name);
	ipc_put_str(&o, s->helo);
	ipc_put_str(&o, sess_with_proto(s));
	ipc_put_str(&o, from);
	ipc_put_u8(&o, s->mail.body == SMTP_BODY_8BITMIME);
	ipc_put_u8(&o, s->mail.smtputf8);
	ipc_put_u8(&o, (uint8_t)s->mail.ret);
	ipc_put_str(&o, s->mail.envid);
	ipc_put_u32(&o, (uint32_t)s->nrcpts);
	for (size_t i = 0; i < s->nrcpts; i++) {
		ipc_put_str(&o, s->rcpts[i].addr);
		ipc_put_str(&o, s->rcpts[i].orcpt);
		ipc_put_u32(&o, s->rcpts[i].notify);
		ipc_put_str(&o, s->rcpts[i].orig);
	}
	ipc_send(s->d->queue, Q_OPEN, s->txn_id, -1, &o);
	ipc_out_free(&o);
	s->txn_open = 1;
	sess_set_state(s, S_WAIT_OPEN);
}

static void
sess_command(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd c;
	struct smtp_reply err;

	if (smtp_cmd_parse(line, len, &c, &err) < 0) {
		sess_reply(s, err.code, err.status, "%s", err.text);
		return;
	}
	switch (c.verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		cmd_helo(s, &c);
		break;
	case SMTP_MAIL:
		cmd_mail(s, &c);
		break;
	case SMTP_RCPT:
		cmd_rcpt(s, &c);
		break;
	case SMTP_DATA:
		cmd_data(s, &c);
		break;
	case SMTP_RSET:
		sess_mail_reset(s);
		sess_reply(s, 250, "2.0.0", "Ok");
		break;
	case SMTP_NOOP:
		sess_reply(s, 250, "2.0.0", "Ok");
		break;
	case SMTP_QUIT:
		sess_reply(s, 221, "2.0.0", "Bye");
		sess_set_state(s, S_CLOSING);
		break;
	case SMTP_VRFY:
		sess_reply(s, 252, "2.5.2",
			   "Cannot VRFY user, but will accept message and "
			   "attempt delivery");
		break;
	case SMTP_HELP:
		sess_reply(s, 214, "2.0.0",
			   "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT "
			   "VRFY HELP");
		break;
	default:
		sess_reply(s, 502, "5.5.1", "Error: command not implemented");
		break;
	}
}

/* ---- input framing ------------------------------------------------------- */

/* One command line from the input buffer; 0 if none complete yet. */
static int
sess_take_line(struct session *s)
{
	char line[SMTP_LINE_MAX + 2];
	char esc[256];
	char *lf = memchr(s->in.data, '\n', s->in.len);
	size_t len;

	if (s->skip_line) {
		if (lf == NULL) {
			buf_reset(&s->in);
			return 0;
		}
		buf_consume(&s->in, (size_t)(lf - s->in.data) + 1);
		s->skip_line = 0;
		return 1;
	}
	if (lf == NULL) {
		/* a full-length line and its CR may come before the LF */
		if (s->in.len > SMTP_LINE_MAX + 1) {
			sess_reply(s, 500, "5.5.2", "Error: line too long");
			s->skip_line = 1;
			buf_reset(&s->in);
		}
		return 0;
	}
	len = (size_t)(lf - s->in.data);
	if (len == 0 || s->in.data[len - 1] != '\r') {
		sess_reply(s, 500, "5.5.2",
			   "Error: bare LF received; commands end with CRLF");
	} else if (len - 1 > SMTP_LINE_MAX) {
		sess_reply(s, 500, "5.5.2", "Error: line too long");
	} else if (memchr(s->in.data, '\r', len - 1) ||
		   memchr(s->in.data, '\0', len - 1)) {
		sess_reply(s, 500, "5.5.2",
			   "Error: bare CR or NUL in command line");
	} else {
		memcpy(line, s->in.data, len - 1);
		line[len - 1] = '\0';
		buf_consume(&s->in, len + 1);
		if (log_get_level() >= LOG_LVL_DEBUG)
			log_debug("%s < %s", s->addr,
				  log_escape(esc, sizeof(esc), line, len - 1));
		sess_command(s, line, len - 1);
		return 1;
	}
	buf_consume(&s->in, len + 1);
	return 1;
}

static void
sess_send_chunk(struct session *s)
{
	struct ipc_out o;

	if (s->chunk.len == 0)
		return;
	if (s->auth != NULL && !smtp_data_rejected(&s->dp))
		auth_in_feed(s->auth, s->chunk.data, s->chunk.len);
	if (s->signer != NULL && !smtp_data_rejected(&s->dp))
		dkim_signer_feed(s->signer, s->chunk.data, s->chunk.len);
	if (s->sealer != NULL && !smtp_data_rejected(&s->dp))
		arc_sealer_feed(s->sealer, s->chunk.data, s->chunk.len);
	if (s->txn_open && !s->txn_failed && s->d->queue != NULL) {
		ipc_out_init(&o);
		ipc_put_data(&o, s->chunk.data, s->chunk.len);
		ipc_send(s->d->queue, Q_CHUNK, s->txn_id, -1, &o);
		ipc_out_free(&o);
		s->credit--;
	}
	buf_reset(&s->chunk);
}

/* RFC 5321 §6.3: more Received fields than [smtp] max-hops is a loop. */
static bool
sess_too_many_hops(const struct session *s)
{
	return s->hops.count > s->conf->max_hops;
}

/*
 * Count the Received fields of the message bytes the DATA parser just
 * appended to the chunk (from offset from). Once the header block shows
 * too many, the transaction is dropped at once (nothing more reaches the
 * queue); the reply waits for the end of data.
 */
static void
sess_count_hops(struct session *s, size_t from)
{
	bool was = sess_too_many_hops(s);

	if (hopcount_done(&s->hops) || s->chunk.len <= from)
		return;
	hopcount_feed(&s->hops, s->chunk.data + from, s->chunk.len - from);
	if (!was && sess_too_many_hops(s)) {
		log_info("%s: message %s refused in DATA: more than %u "
			 "Received header fields (mail loop?)",
			 s->addr, s->qid, s->conf->max_hops);
		sess_txn_abort(s);
	}
}

static void
sess_data_end(struct session *s)
{
	if (s->dp.too_big || s->dp.bare_eol || s->dp.nul) {
		sess_txn_abort(s);
		if (s->dp.too_big)
			sess_reply(
			    s, 552, "5.3.4",
			    "Error: message exceeds the size limit of "
			    "%llu bytes",
			    (unsigned long long)s->conf->max_message_size);
		else
			sess_reply(s, 550, "5.5.2",
				   "Error: bare CR or LF or NUL in message "
				   "data (only CRLF line ends are allowed); "
				   "message discarded");
		sess_mail_reset(s);
		sess_set_state(s, S_CMD);
		return;
	}
	if (sess_too_many_hops(s)) {
		sess_txn_abort(s);
		sess_reply(s, 554, "5.4.6",
			   "Error: too many hops (%u Received header fields, "
			   "limit %u): mail loop? Check forwarding and relay "
			   "settings and MX records on the way",
			   s->hops.count, s->conf->max_hops);
		sess_mail_reset(s);
		sess_set_state(s, S_CMD);
		return;
	}
	if (s->txn_failed || s->d->queue == NULL) {
		sess_reply(s, 451, "4.3.0",
			   "Error: queue went away, try again later");
		s->txn_open = 0;
		sess_mail_reset(s);
		sess_set_state(s, S_CMD);
		return;
	}
	sess_set_state(s, S_WAIT_RESULT);
	if (s->signer != NULL && sess_sign_request(s) == 0)
		return; /* Q_END follows the signature */
	if (s->auth != NULL) {
		struct timeval tv = {(time_t)s->conf->auth_eod_budget, 0};
		s->auth_waiting = 1;
		evtimer_add(s->auth_timer, &tv);
		if (auth_in_finished(s->auth))
			sess_auth_done(s); /* ended early (lookup lost) */
		else
			auth_in_end(s->auth); /* may finish at once */
		return;
	}
	ipc_send(s->d->queue, Q_END, s->txn_id, -1, NULL);
}

static int
sess_sign_request(struct session *s)
{
	uint8_t hash[32];
	const char *err = NULL;
	struct ipc_out o;

	if (dkim_signer_hash(s->signer, hash, &err) < 0) {
		log_warn("%s: %s: not signed: %s", s->addr, s->qid,
			 err ? err : "?");
		return -1;
	}
	ipc_out_init(&o);
	ipc_put_str(&o, s->sign_domain);
	ipc_put_data(&o, hash, sizeof(hash));
	ipc_send(s->d->keys, K_SIGN, s->txn_id, -1, &o);
	ipc_out_free(&o);
	s->sign_waiting = 1;
	return 0;
}

/* The signature is back: store the DKIM-Signature, then commit. */
static void
sess_on_signature(struct session *s, int ok, const void *sig, size_t n,
		  const char *err)
{
	struct buf h;
	struct ipc_out o;

	s->sign_waiting = 0;
	buf_init(&h, 8192);
	if (ok && dkim_signer_header(s->signer, sig, n, &h) == 0) {
		ipc_out_init(&o);
		ipc_put_data(&o, h.data, h.len);
		ipc_send(s->d->queue, Q_PREPEND, s->txn_id, -1, &o);
		ipc_out_free(&o);
		log_info("%s: DKIM-signed for %s", s->qid, s->sign_domain);
	} else {
		log_warn("%s: %s: not signed: %s", s->addr, s->qid,
			 ok ? "signature field too large" : err);
	}
	buf_free(&h);
	if (s->d->queue != NULL && !s->txn_failed)
		ipc_send(s->d->queue, Q_END, s->txn_id, -1, NULL);
}

/* The DMARC report row of this message (Q_DMARC), if it has one. */
static void
sess_send_dmarc(struct session *s)
{
	struct dmarc_rep_row *row;
	struct ipc_out o;

	if (!s->conf->dmarc_reports)
		return; /* reporting is off: nothing is kept */
	row = xmalloc(sizeof(*row));
	if (auth_in_dmarc_row(s->auth, row)) {
		ipc_out_init(&o);
		dmarc_agg_put(&o, row);
		ipc_send(s->d->queue, Q_DMARC, s->txn_id, -1, &o);
		ipc_out_free(&o);
	}
	xfree(row);
}

/* The checks are final: prepend their headers and commit, or refuse. */
static void
sess_auth_done(void *arg)
{
	struct session *s = arg;
	const char *text;
	struct ipc_out o;

	if (!s->auth_waiting)
		return; /* finished while still receiving: wait for the end */
	s->auth_waiting = 0;
	evtimer_del(s->auth_timer);
	if (s->d->queue == NULL || s->txn_failed) {
		sess_reply(s, 451, "4.3.0",
			   "Error: queue went away, try again "
			   "later");
		s->txn_open = 0;
		sess_mail_reset(s);
		sess_set_state(s, S_CMD);
		if (!s->processing)
			sess_flush(s);
		return;
	}
	if (auth_in_reject(s->auth, &text)) {
		log_info("%s: %s refused at end of data: %s", s->addr, s->qid,
			 text);
		sess_send_dmarc(s); /* refused mail counts in reports */
		ipc_send(s->d->queue, Q_ABORT, s->txn_id, -1, NULL);
		s->txn_open = 0;
		sess_reply(s, 550, "5.7.1", "%s", text);
		sess_mail_reset(s);
		sess_set_state(s, S_CMD);
		event_add(s->rev, NULL);
		if (!s->processing)
			sess_run(s);
		return;
	}
	ipc_out_init(&o);
	ipc_put_data(&o, auth_in_headers(s->auth),
		     strlen(auth_in_headers(s->auth)));
	ipc_send(s->d->queue, Q_PREPEND, s->txn_id, -1, &o);
	ipc_out_free(&o);
	sess_send_dmarc(s); /* stored in the commit of Q_END */
	if (s->sealer != NULL && sess_seal_request(s) == 0)
		return; /* Q_END follows the seal */
	ipc_send(s->d->queue, Q_END, s->txn_id, -1, NULL);
}

/*
 * ARC sealing (RFC 8617 §5.1) of a message forwarded to a non-local
 * address (resolve_forwards_out): our results of the checks go into
 * the ARC-Authentication-Results, the AMS covers the message as stored,
 * the seal covers the chain with cv= from our verification of the chain
 * as received. The key is the [dkim] key of srs-domain, in the keys
 * role: it gets two 32-byte hashes, one after the other. The three
 * fields are one prepend record, on top, before the commit.
 */
static void
sess_seal_start(struct session *s)
{
	const struct conf_dkim *k;
	struct arc_seal_opts o = {0};
	const char *err = NULL;

	if (!s->forwards || s->auth == NULL || s->d->keys == NULL ||
	    (k = conf_dkim_find(s->conf, conf_srs_domain(s->conf))) == NULL)
		return;
	o.authserv_id =
	    s->conf->authserv_id ? s->conf->authserv_id : s->conf->hostname;
	o.domain = k->domain;
	o.selector = k->selector;
	o.alg = k->algorithm ? DKIM_ALG_ED25519_SHA256 : DKIM_ALG_RSA_SHA256;
	o.t = (uint64_t)clock_now();
	o.chain = ARC_NONE; /* known at the end: arc_sealer_set_chain */
	s->sealer = arc_sealer_new(&o, &err);
	if (s->sealer == NULL)
		log_warn("%s: %s: cannot ARC-seal for %s: %s", s->addr, s->qid,
			 k->domain, err ? err : "?");
}

static void
sess_keys_sign(struct session *s, const char *domain, const uint8_t hash[32])
{
	struct ipc_out o;

	ipc_out_init(&o);
	ipc_put_str(&o, domain);
	ipc_put_data(&o, hash, 32);
	ipc_send(s->d->keys, K_SIGN, s->txn_id, -1, &o);
	ipc_out_free(&o);
	s->sign_waiting = 1;
}

/* The checks are final: hash the AMS and ask for its signature. 0 when
 * a signature was asked for; -1: not sealed (logged), commit now. */
static int
sess_seal_request(struct session *s)
{
	bool temporary = false;
	enum arc_result chain = auth_in_arc_chain(s->auth, &temporary);
	uint8_t hash[32];
	const char *err = NULL;

	if (s->d->keys == NULL)
		err = "keys role went away";
	else if (chain == ARC_FAIL && temporary)
		err = "the chain as received could not be checked (temporary)";
	else if (arc_sealer_set_chain(s->sealer, chain,
				      auth_in_results(s->auth)) < 0)
		err = "results not usable";
	else if (arc_sealer_ams_hash(s->sealer, hash, &err) == 0) {
		sess_keys_sign(s, conf_srs_domain(s->conf), hash);
		s->seal_stage = 1;
		return 0;
	}
	log_warn("%s: %s: not ARC-sealed: %s", s->addr, s->qid,
		 err ? err : "?");
	return -1;
}

/* A signature for the seal is back: ask for the next one, or store the
 * ARC set; then commit. */
static void
sess_on_seal_signature(struct session *s, int ok, const void *sig, size_t n,
		       const char *err)
{
	uint8_t hash[32];
	struct buf h;
	struct ipc_out o;

	s->sign_waiting = 0;
	if (!ok) {
		log_warn("%s: %s: not ARC-sealed: %s", s->addr, s->qid, err);
	} else if (s->seal_stage == 1) {
		if (arc_sealer_seal_hash(s->sealer, sig, n, hash, &err) == 0 &&
		    s->d->keys != NULL) {
			sess_keys_sign(s, conf_srs_domain(s->conf), hash);
			s->seal_stage = 2;
			return;
		}
		log_warn("%s: %s: not ARC-sealed: %s", s->addr, s->qid,
			 s->d->keys ? err : "keys role went away");
	} else {
		buf_init(&h, 64 * 1024);
		if (arc_sealer_headers(s->sealer, sig, n, &h) == 0) {
			ipc_out_init(&o);
			ipc_put_data(&o, h.data, h.len);
			ipc_send(s->d->queue, Q_PREPEND, s->txn_id, -1, &o);
			ipc_out_free(&o);
			log_info("%s: ARC-sealed i=%u for %s", s->qid,
				 arc_sealer_instance(s->sealer),
				 conf_srs_domain(s->conf));
		} else {
			log_warn("%s: %s: not ARC-sealed: fields too large",
				 s->addr, s->qid);
		}
		buf_free(&h);
	}
	s->seal_stage = 0;
	if (s->d->queue != NULL && !s->txn_failed)
		ipc_send(s->d->queue, Q_END, s->txn_id, -1, NULL);
}

/* A K_SIG for this transaction: a DKIM signature or one of the seal's. */
static void
sess_on_keys(struct session *s, int ok, const void *sig, size_t n,
	     const char *err)
{
	if (s->seal_stage != 0)
		sess_on_seal_signature(s, ok, sig, n, err);
	else
		sess_on_signature(s, ok, sig, n, err);
}

static void
sess_auth_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	char why[96];

	snprintf(why, sizeof(why), "auth-eod-budget of %llu s exhausted",
		 (unsigned long long)s->conf->auth_eod_budget);
	if (s->auth)
		auth_in_abort(s->auth, why);
}

static void
sess_auth_query(void *arg, uint32_t qid, const char *name, uint16_t type)
{
	struct session *s = arg;
	struct ipc_out o;

	if (s->d->lookup == NULL) {
		auth_in_answer(s->auth, qid, 2 /* SERVFAIL */, 0, NULL, 0);
		return;
	}
	ipc_out_init(&o);
	ipc_put_str(&o, name);
	ipc_put_u32(&o, type);
	ipc_send(s->d->lookup, D_QUERY, s->auth_gen << 8 | qid, -1, &o);
	ipc_out_free(&o);
}

/* Start SPF now and DKIM as the message streams (untrusted clients). */
static void
sess_auth_start(struct session *s)
{
	struct auth_in_params p = {0};
	char from[ADDR_PATH_MAX + 2];
	int spf, dmarc;

	if (s->trusted || s->d->lookup == NULL)
		return;
	addr_format(&s->mail.from, from, sizeof(from));
	p.ip = s->addr;
	p.helo = s->helo;
	p.sender = from;
	p.authserv_id =
	    s->conf->authserv_id ? s->conf->authserv_id : s->conf->hostname;
	p.hostname = s->conf->hostname;
	p.now = clock_now();
	spf = s->conf->spf_policy;
	dmarc = s->conf->dmarc_policy;
	/* a [listen] section may set its own policy (issue 4) */
	for (size_t i = 0; s->listener && i < s->conf->nlistens; i++) {
		const struct conf_listen *l = &s->conf->listens[i];
		if (strcmp(l->name, s->listener) != 0)
			continue;
		spf = l->spf_policy >= 0 ? l->spf_policy : spf;
		dmarc = l->dmarc_policy >= 0 ? l->dmarc_policy : dmarc;
	}
	p.spf_policy = spf ? AUTH_SPF_REJECT : AUTH_SPF_RECORD;
	p.dmarc_policy = dmarc ? AUTH_DMARC_ENFORCE : AUTH_DMARC_RECORD;
	s->auth_gen = ++s->d->next_auth;
	s->auth = auth_in_new(&p, sess_auth_query, sess_auth_done, s);
}

/*
 * DKIM signing (issue 4, DESIGN §7): mail from trusted clients whose
 * From domain has a [dkim] section is signed on the stream; only the
 * 32-byte hash goes to the keys role, the signature comes back and the
 * DKIM-Signature field is stored as a prepend record before the commit.
 */
static void
sess_sign_start(struct session *s, const char *hdr, size_t len)
{
	const struct conf_dkim *k;
	struct dkim_sign_opts o;
	const char *err = NULL;

	if (!s->trusted || s->d->keys == NULL ||
	    auth_in_from_domain(hdr, len, s->sign_domain,
				sizeof(s->sign_domain)) < 0 ||
	    (k = conf_dkim_find(s->conf, s->sign_domain)) == NULL)
		return;
	dkim_sign_opts_default(&o);
	o.domain = k->domain;
	o.selector = k->selector;
	o.alg = k->algorithm ? DKIM_ALG_ED25519_SHA256 : DKIM_ALG_RSA_SHA256;
	o.t = (uint64_t)clock_now();
	s->signer = dkim_signer_new(&o, &err);
	if (s->signer == NULL)
		log_warn("%s: %s: cannot sign for %s: %s", s->addr, s->qid,
			 k->domain, err ? err : "?");
}

/*
 * While the header block is in the first chunk, hold it; once it is
 * complete, drop Authentication-Results fields that claim our
 * authserv-id (RFC 8601 §5) before anything is stored or verified. A
 * header block longer than one chunk is passed on unfiltered (logged).
 */
static void
sess_filter_header(struct session *s, bool end)
{
	const char *id =
	    s->conf->authserv_id ? s->conf->authserv_id : s->conf->hostname;
	const char *hend = NULL;
	size_t hlen;
	struct buf out;
	int removed;

	if (s->chunk.len >= 2 && memcmp(s->chunk.data, "\r\n", 2) == 0)
		hend = s->chunk.data; /* no header at all */
	else if (s->chunk.len > 0)
		hend = strstr(s->chunk.data, "\r\n\r\n");
	if (hend == NULL && !end) {
		if (s->chunk.len >= CHUNK_MAX) {
			s->hdr_phase = 0;
			log_warn(
			    "%s: %s: header block longer than %d octets "
			    "not checked for forged Authentication-Results",
			    s->addr, s->qid, CHUNK_MAX);
		}
		return;
	}
	s->hdr_phase = 0;
	hlen = hend ? (size_t)(hend - s->chunk.data) + 2 : s->chunk.len;
	sess_sign_start(s, s->chunk.data, hlen);
	sess_seal_start(s);
	buf_init(&out, s->chunk.max);
	removed = ar_strip(s->chunk.data, hlen, id, &out);
	if (removed > 0 &&
	    buf_add(&out, s->chunk.data + hlen, s->chunk.len - hlen) == 0) {
		log_info("%s: %s: removed %d Authentication-Results field(s) "
			 "claiming our authserv-id %s",
			 s->addr, s->qid, removed, id);
		buf_free(&s->chunk);
		s->chunk = out;
		return;
	}
	buf_free(&out);
}

/* May a chunk go to the queue now? (no credit: wait for Q_CREDIT) */
static int
sess_chunk_blocked(const struct session *s)
{
	return s->credit == 0 && s->txn_open && !s->txn_failed &&
	       s->d->queue != NULL;
}

/*
 * Feed DATA bytes to the stream parser and chunks to the queue. Returns
 * 0 when nothing more can happen until input or credit arrives.
 */
static int
sess_take_data(struct session *s)
{
	int was_rejected = smtp_data_rejected(&s->dp);
	bool end = false;
	size_t used, before;

	if (s->chunk.len > 0 && !s->hdr_phase &&
	    (s->chunk.len >= CHUNK_MAX || s->data_ended)) {
		if (sess_chunk_blocked(s))
			return 0;
		sess_send_chunk(s);
	}
	if (s->data_ended) {
		s->data_ended = 0;
		sess_data_end(s);
		return 1;
	}
	if (s->in.len == 0)
		return 0;
	before = s->chunk.len;
	used = smtp_data_feed(&s->dp, s->in.data, s->in.len, &s->chunk, &end);
	buf_consume(&s->in, used);
	sess_count_hops(s, before);
	if (s->hdr_phase)
		sess_filter_header(s, end);
	if (!was_rejected && smtp_data_rejected(&s->dp)) {
		log_info("%s: message %s refused in DATA (%s)", s->addr, s->qid,
			 s->dp.too_big ? "too big" : "bare CR/LF or NUL");
		sess_txn_abort(s);
	}
	if (s->dp.discarded > 2 * s->conf->max_message_size + 1048576) {
		sess_hangup(s, 421, "4.5.2",
			    "Error: too much discarded data, closing");
		return 0;
	}
	if (end)
		s->data_ended = 1;
	return end || used > 0 || s->chunk.len >= CHUNK_MAX;
}

static void
sess_process(struct session *s)
{
	int progress = 1;

	s->processing = 1;

	while (progress && (s->in.len > 0 || s->state == S_DATA)) {
		if (s->errors > s->conf->max_errors) {
			sess_hangup(s, 421, "4.7.0",
				    "Error: too many errors, closing");
			break;
		}
		switch (s->state) {
		case S_CMD:
			progress = sess_take_line(s);
			break;
		case S_DATA:
			progress = sess_take_data(s);
			break;
		default:
			progress = 0;
		}
	}
	if (s->errors > s->conf->max_errors && s->state != S_CLOSING)
		sess_hangup(s, 421, "4.7.0", "Error: too many errors, closing");
	s->processing = 0;
}

/*
 * Process input, then flush; s may be freed: call it last. What the
 * input makes us send the queue leaves together (a last chunk and
 * Q_END in one system call).
 */
static void
sess_run(struct session *s)
{
	struct ipc *q = s->d->queue;

	if (q != NULL)
		ipc_cork(q);
	sess_process(s);
	if (q != NULL)
		ipc_uncork(q);
	sess_flush(s);
}

static void
sess_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	char tmp[SMTP_IN_READ];
	size_t room = s->in.max - s->in.len;
	ssize_t r;

	if (room == 0) {
		event_del(s->rev);
		return;
	}
	r = read(fd, tmp, room < sizeof(tmp) ? room : sizeof(tmp));
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		log_info("%s: lost connection in state %s", s->addr,
			 state_names[s->state]);
		sess_close(s);
		return;
	}
	buf_add(&s->in, tmp, (size_t)r);
	sess_timer(s);
	sess_run(s);
}

static void
sess_on_write(evutil_socket_t fd, short what, void *arg)
{
	sess_flush(arg);
}

static void
sess_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	log_info("%s: timeout in state %s", s->addr, state_names[s->state]);
	sess_hangup(s, 421, "4.4.2", "Error: timeout exceeded");
	sess_flush(s);
}

/* ---- session lifecycle --------------------------------------------------- */

static void
sess_close(struct session *s)
{
	struct smtpd *d = s->d;

	sess_mail_reset(s);
	for (struct session **pp = &d->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	d->nsessions--;
	log_info("disconnect from %s[%s] messages=%u errors=%u", s->name,
		 s->addr, s->messages, s->errors);
	event_free(s->rev);
	event_free(s->wev);
	event_free(s->timer);
	event_free(s->auth_timer);
	close(s->fd);
	buf_free(&s->in);
	buf_free(&s->out);
	buf_free(&s->chunk);
	confref_put(s->cref);
	xfree(s);
}

static void
sess_new(struct smtpd *d, int fd, const struct sockaddr_storage *ss,
	 const char *listener)
{
	struct session *s = xcalloc(1, sizeof(*s));
	struct event_base *base = d->env->base;

	s->listener = listener;
	s->d = d;
	s->fd = fd;
	s->cref = d->cref;
	s->cref->refs++;
	s->conf = s->cref->c;
	s->peer = *ss;
	sockaddr_ntop((const struct sockaddr *)ss, s->addr, sizeof(s->addr));
	snprintf(s->name, sizeof(s->name), "unknown");
	s->trusted = conf_is_trusted(s->conf, (const struct sockaddr *)ss);
	buf_init(&s->in, SMTP_IN_READ + SMTP_LINE_MAX);
	buf_init(&s->out, SMTP_OUT_MAX);
	buf_init(&s->chunk, CHUNK_MAX + 4096);
	s->rev = event_new(base, fd, EV_READ | EV_PERSIST, sess_on_read, s);
	s->wev = event_new(base, fd, EV_WRITE, sess_on_write, s);
	s->timer = evtimer_new(base, sess_on_timeout, s);
	s->auth_timer = evtimer_new(base, sess_auth_timeout, s);
	s->next = d->sessions;
	d->sessions = s;
	d->nsessions++;
	log_info("connect from %s[%s]%s", s->name, s->addr,
		 s->trusted ? " (trusted)" : "");
	s->state = S_CMD;
	sess_timer(s);
	event_add(s->rev, NULL);
	sess_reply(s, 220, NULL, "%s ESMTP todoku", s->conf->hostname);
	sess_flush(s);
}

static void
smtpd_on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct smtpd *d = arg;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const char *listener = NULL;
	int fd;

	fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		     SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return; /* another smtp-in process won the race */
	if (d->stopping || d->nsessions >= SMTP_MAX_SESSIONS) {
		static const char busy[] =
		    "421 4.3.2 Service not available, try again later\r\n";
		if (write(fd, busy, sizeof(busy) - 1) < 0)
			log_debug("busy reply lost");
		close(fd);
		return;
	}
	for (size_t i = 0; i < d->nlisten; i++)
		if (event_get_fd(d->listen_ev[i]) == lfd)
			listener = d->listen_names[i];
	sess_new(d, fd, &ss, listener);
}

/* ---- queue channel --------------------------------------------------------
 */

static struct session *
smtpd_find_txn(struct smtpd *d, uint64_t id)
{
	for (struct session *s = d->sessions; s; s = s->next)
		if (s->txn_open && s->txn_id == id)
			return s;
	return NULL;
}

/*
 * Our Received field. It is queued, not written: the queue needs it
 * only with the body, and every transaction sends the queue a chunk,
 * Q_END or Q_ABORT after it, so it travels with that one (one wake-up
 * of the queue fewer per message).
 */
static void
sess_prepend_received(struct session *s)
{
	struct ipc_out o;
	struct buf h;
	char date[64];

	clock_rfc5322(clock_now(), date, sizeof(date));
	buf_init(&h, 2048);
	buf_addf(&h,
		 "Received: from %s (%s [%s])\r\n\tby %s (todoku) with %s "
		 "id %s",
		 s->helo, s->name, s->addr, s->conf->hostname,
		 sess_with_proto(s), s->qid);
	if (s->nrcpts == 1)
		buf_addf(&h, "\r\n\tfor <%s>", s->rcpts[0].addr);
	buf_addf(&h, "; %s\r\n", date);
	ipc_out_init(&o);
	ipc_put_data(&o, h.data, h.len);
	ipc_send_later(s->d->queue, Q_PREPEND, s->txn_id, &o);
	ipc_out_free(&o);
	buf_free(&h);
}

static void
smtpd_on_open_ok(struct session *s, struct ipc_in *in)
{
	snprintf(s->qid, sizeof(s->qid), "%s", ipc_get_str(in));
	s->credit = ipc_get_u32(in);
	ipc_end(in);
	sess_prepend_received(s);
	sess_auth_start(s);
	s->hdr_phase = 1;
	smtp_data_init(&s->dp, s->conf->max_message_size);
	hopcount_init(&s->hops);
	sess_set_state(s, S_DATA);
	sess_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	sess_run(s);
}

static void
smtpd_on_result(struct session *s, struct ipc_in *in)
{
	int code = (int)ipc_get_u32(in);
	const char *status = ipc_get_str(in);
	const char *text = ipc_get_str(in);

	ipc_end(in);
	s->txn_open = 0;
	if (code == 250)
		s->messages++;
	sess_reply(s, code, status, "%s", text);
	sess_mail_reset(s);
	if (s->d->stopping)
		sess_hangup(s, 421, "4.3.2", "Service shutting down");
	else
		sess_set_state(s, S_CMD);
	event_add(s->rev, NULL);
	sess_run(s);
}

static void
smtpd_queue_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		int fd, void *arg)
{
	struct smtpd *d = arg;
	struct session *s = smtpd_find_txn(d, h->id);

	if (fd >= 0)
		close(fd);
	if (s == NULL) {
		/* session already gone: read and drop */
		in->off = in->len;
		return;
	}
	switch (h->type) {
	case Q_OPEN_OK:
		if (s->state != S_WAIT_OPEN)
			log_panic("Q_OPEN_OK in state %s",
				  state_names[s->state]);
		smtpd_on_open_ok(s, in);
		break;
	case Q_CREDIT:
		s->credit += ipc_get_u32(in);
		ipc_end(in);
		event_add(s->rev, NULL);
		sess_run(s);
		break;
	case Q_RESULT:
		smtpd_on_result(s, in);
		break;
	default:
		log_panic("smtp-in: unexpected queue message %u", h->type);
	}
}

static void
smtpd_lookup_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		 int fd, void *arg)
{
	struct smtpd *d = arg;
	uint32_t rcode;
	int sec;
	const void *pkt;
	size_t len;

	if (fd >= 0)
		close(fd);
	if (h->type != D_ANSWER)
		log_panic("smtp-in: unexpected lookup message %u", h->type);
	rcode = ipc_get_u32(in);
	sec = ipc_get_u8(in);
	pkt = ipc_get_data(in, &len);
	ipc_end(in);
	for (struct session *s = d->sessions; s; s = s->next) {
		if (s->auth != NULL && s->auth_gen == h->id >> 8) {
			auth_in_answer(s->auth, (uint32_t)(h->id & 0xff),
				       (int)rcode, sec, pkt, len);
			return;
		}
	}
}

static void
smtpd_keys_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
	       int fd, void *arg)
{
	struct smtpd *d = arg;
	int ok;
	const void *sig;
	size_t n;
	const char *err;

	if (fd >= 0)
		close(fd);
	if (h->type != K_SIG)
		log_panic("smtp-in: unexpected keys message %u", h->type);
	ok = ipc_get_u8(in);
	sig = ipc_get_data(in, &n);
	err = ipc_get_str(in);
	for (struct session *s = d->sessions; s; s = s->next) {
		if (s->sign_waiting && s->txn_open && s->txn_id == h->id) {
			sess_on_keys(s, ok, sig, n, err);
			break;
		}
	}
	ipc_end(in);
}

static void
smtpd_keys_close(struct ipc *ipc, void *arg)
{
	struct smtpd *d = arg;

	log_warn("keys role went away; messages waiting for a signature go "
		 "unsigned");
	ipc_free(d->keys);
	d->keys = NULL;
	for (struct session *s = d->sessions; s; s = s->next)
		if (s->sign_waiting)
			sess_on_keys(s, 0, "", 0, "keys role went away");
}

static void
smtpd_lookup_close(struct ipc *ipc, void *arg)
{
	struct smtpd *d = arg;

	log_warn("lookup went away; open authentication checks end as "
		 "temperror");
	ipc_free(d->lookup);
	d->lookup = NULL;
	for (struct session *s = d->sessions, *n; s; s = n) {
		n = s->next;
		if (s->auth != NULL)
			auth_in_abort(s->auth, "lookup role went away");
	}
}

static void
smtpd_queue_close(struct ipc *ipc, void *arg)
{
	struct smtpd *d = arg;

	log_warn("queue went away; failing open transactions with 451");
	for (struct session *s = d->sessions, *n; s; s = n) {
		n = s->next;
		if (!s->txn_open)
			continue;
		s->txn_failed = 1;
		if (s->state == S_WAIT_OPEN || s->state == S_WAIT_RESULT) {
			s->txn_open = 0;
			sess_reply(s, 451, "4.3.0",
				   "Error: queue went away, try again later");
			sess_mail_reset(s);
			sess_set_state(s, S_CMD);
			sess_flush(s);
		}
	}
	ipc_free(d->queue);
	d->queue = NULL;
}

/* ---- master channel -------------------------------------------------------
 */

static void
smtpd_shutdown(struct smtpd *d)
{
	d->stopping = 1;
	for (size_t i = 0; i < d->nlisten; i++)
		event_del(d->listen_ev[i]);
	for (struct session *s = d->sessions, *n; s; s = n) {
		n = s->next;
		if (s->state == S_WAIT_RESULT)
			continue; /* the queue's answer is coming */
		sess_hangup(s, 421, "4.3.2", "Service shutting down");
		sess_flush(s);
	}
}

static void
smtpd_reload(struct smtpd *d, struct ipc_in *in)
{
	struct conf *nc = role_reload_conf(d->env, in);

	if (nc == NULL)
		return;
	confref_put(d->cref);
	d->cref = confref_new(nc);
	log_set_level(nc->log_level);
	log_info("configuration reloaded; new sessions use it");
}

static void
smtpd_add_listener(struct smtpd *d, int fd, const char *name)
{
	d->listen_names = xrealloc(d->listen_names,
				   (d->nlisten + 1) * sizeof(*d->listen_names));
	d->listen_names[d->nlisten] = xstrdup(name);
	d->listen_ev =
	    xrealloc(d->listen_ev, (d->nlisten + 1) * sizeof(*d->listen_ev));
	fd_nonblock(fd);
	d->listen_ev[d->nlisten++] = event_new(
	    d->env->base, fd, EV_READ | EV_PERSIST, smtpd_on_accept, d);
	event_add(d->listen_ev[d->nlisten - 1], NULL);
}

static void
smtpd_master_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		 int fd, void *arg)
{
	struct smtpd *d = arg;

	switch (h->type) {
	case M_PEER: {
		enum role_id r = (enum role_id)ipc_get_u8(in);
		ipc_get_u32(in);
		ipc_end(in);
		if (r == ROLE_KEYS) {
			if (d->keys)
				ipc_free(d->keys);
			d->keys = ipc_new(d->env->base, fd, smtpd_keys_msg,
					  smtpd_keys_close, d);
			return;
		}
		if (r == ROLE_LOOKUP) {
			if (d->lookup)
				ipc_free(d->lookup);
			d->lookup = ipc_new(d->env->base, fd, smtpd_lookup_msg,
					    smtpd_lookup_close, d);
			return;
		}
		if (d->queue)
			ipc_free(d->queue);
		d->queue = ipc_new(d->env->base, fd, smtpd_queue_msg,
				   smtpd_queue_close, d);
		return;
	}
	case M_LISTEN: {
		char name[64];
		snprintf(name, sizeof(name), "%s", ipc_get_str(in));
		ipc_end(in);
		smtpd_add_listener(d, fd, name);
		return;
	}
	case M_RELOAD:
		smtpd_reload(d, in);
		break;
	case M_SHUTDOWN:
		ipc_end(in);
		smtpd_shutdown(d);
		break;
	default:
		log_panic("smtp-in: unexpected master message %u", h->type);
	}
	if (fd >= 0)
		close(fd);
}

static void
smtpd_master_close(struct ipc *ipc, void *arg)
{
	struct smtpd *d = arg;

	smtpd_shutdown(d);
	exit(0);
}

static void
smtpd_on_check_stop(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd *d = arg;
	static unsigned waited;

	if (!d->stopping)
		return;
	if (d->nsessions == 0 || ++waited > SMTP_SHUTDOWN_GRACE_S * 10) {
		if (d->queue)
			ipc_flush(d->queue);
		exit(0);
	}
}

int
smtp_in_main(struct role_env *env)
{
	static struct smtpd d;
	struct timeval tenth = {0, 100000};
	struct event *check;

	d.env = env;
	d.cref = confref_new(env->conf);
	d.master = ipc_new(env->base, ROLE_MASTER_FD, smtpd_master_msg,
			   smtpd_master_close, &d);
	check = event_new(env->base, -1, EV_PERSIST, smtpd_on_check_stop, &d);
	event_add(check, &tenth);
	event_base_dispatch(env->base);
	return 0;
}
