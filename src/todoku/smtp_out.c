/*
 * smtp_out — see smtp_out.h.
 */
#include "todoku/smtp_out.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/conf.h"
#include "mail/smtp_client.h"
#include "mail/smtp_reply.h"
#include "todoku/proto.h"
#include "todoku/role.h"

enum io_state { IO_CONNECT, IO_TALK, IO_HANDSHAKE, IO_DONE };

struct target {
	int family;
	uint8_t addr[16];
	char host[256];
};

struct smtpo;

struct job {
	struct smtpo *o;
	uint64_t id;
	char msg[32];
	char domain[256];
	int body_fd;
	char *sender, *envid;
	/* the session: [delivery] for MX, the [route] for a smarthost */
	unsigned port;
	int tls; /* enum conf_tls */
	int implicit_tls;
	char *helo, *auth_user, *auth_pass;
	char *source4, *source6; /* "" or the address to bind */
	struct buf prepend; /* trace headers sent before the stored body */
	struct smtp_client_msg m;
	struct smtp_client_rcpt *rcpts;
	uint64_t *rcpt_ids;
	struct target t[SMTPO_TARGETS_MAX];
	size_t nt, ti;
	struct buf trace;
	char where[400];
	/* the connection to t[ti] */
	int fd;
	SSL *ssl;
	enum io_state io;
	struct event *ev, *timer;
	struct smtp_client *c;
	struct smtp_reply_parser rp;
	struct buf in; /* received, not yet parsed */
	struct buf out;
	int started; /* msg_start done */
	int in_body;
	off_t body_off;
	struct smtp_dotstuff ds;
	int body_end_pending;
	int implicit_pending; /* smtps: handshake before the engine runs */
	char last_fail[512];
};

struct smtpo {
	struct role_env *env;
	struct ipc *master;
	struct ipc *queue;
	SSL_CTX *tls;
};

static void job_pump(struct job *j);
static void job_next_target(struct job *j, const char *why);

/* ---- address health memory -------------------------------------------- */

/*
 * Addresses that recently refused us, timed out or never greeted are
 * tried last for a while (60 s doubling to 1 h per consecutive failure),
 * so a dead round-robin member does not cost every attempt a timeout.
 * They are still tried when nothing else is left.
 */
#define HEALTH_SLOTS 256

struct health {
	int family;
	uint8_t addr[16];
	unsigned port;
	unsigned fails;
	time_t until;
};

static struct health health[HEALTH_SLOTS];

static struct health *
health_find(const struct target *t, unsigned port, int create)
{
	struct health *free_slot = NULL, *oldest = &health[0];

	for (size_t i = 0; i < HEALTH_SLOTS; i++) {
		struct health *h = &health[i];
		if (h->family == t->family && h->port == port &&
		    memcmp(h->addr, t->addr, 16) == 0)
			return h;
		if (h->family == 0 && free_slot == NULL)
			free_slot = h;
		if (h->until < oldest->until)
			oldest = h;
	}
	if (!create)
		return NULL;
	if (free_slot == NULL)
		free_slot = oldest;
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->family = t->family;
	memcpy(free_slot->addr, t->addr, 16);
	free_slot->port = port;
	return free_slot;
}

static void
health_failed(const struct target *t, unsigned port)
{
	struct health *h = health_find(t, port, 1);
	time_t backoff = 60;

	for (unsigned i = 0; i < h->fails && backoff < 3600; i++)
		backoff *= 2;
	h->fails++;
	h->until = time(NULL) + (backoff > 3600 ? 3600 : backoff);
}

static void
health_ok(const struct target *t, unsigned port)
{
	struct health *h = health_find(t, port, 0);

	if (h != NULL)
		memset(h, 0, sizeof(*h));
}

static int
health_dead(const struct target *t, unsigned port)
{
	struct health *h = health_find(t, port, 0);

	return h != NULL && h->until > time(NULL);
}

/* Move recently dead addresses behind the live ones, order kept. */
static void
health_order(struct job *j)
{
	struct target live[SMTPO_TARGETS_MAX], dead[SMTPO_TARGETS_MAX];
	size_t nl = 0, nd = 0;

	for (size_t i = 0; i < j->nt; i++) {
		if (health_dead(&j->t[i], j->port))
			dead[nd++] = j->t[i];
		else
			live[nl++] = j->t[i];
	}
	if (nd == 0 || nl == 0)
		return;
	memcpy(j->t, live, nl * sizeof(*live));
	memcpy(j->t + nl, dead, nd * sizeof(*dead));
	buf_addf(&j->trace, "  %zu address(es) failed recently; tried last\n",
		 nd);
}

/* ---- helpers ------------------------------------------------------------ */

static void
job_addr_text(const struct target *t, char *dst, size_t len)
{
	inet_ntop(t->family == 6 ? AF_INET6 : AF_INET, t->addr, dst,
		  (socklen_t)len);
}

static void
job_conn_close(struct job *j)
{
	if (j->ev) {
		event_free(j->ev);
		j->ev = NULL;
	}
	if (j->ssl) {
		SSL_free(j->ssl);
		j->ssl = NULL;
	}
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	if (j->c) {
		smtp_client_free(j->c);
		j->c = NULL;
	}
	smtp_reply_parser_free(&j->rp);
	buf_reset(&j->out);
	buf_reset(&j->in);
	j->in_body = 0;
	j->started = 0;
	j->body_end_pending = 0;
	j->implicit_pending = 0;
	evtimer_del(j->timer);
}

static void
job_free(struct job *j)
{
	job_conn_close(j);
	event_free(j->timer);
	if (j->body_fd >= 0)
		close(j->body_fd);
	for (size_t i = 0; i < j->m.nrcpts; i++) {
		xfree((char *)j->rcpts[i].addr);
		xfree((char *)j->rcpts[i].orcpt);
	}
	xfree(j->rcpts);
	xfree(j->rcpt_ids);
	xfree(j->sender);
	xfree(j->envid);
	xfree(j->helo);
	xfree(j->source4);
	xfree(j->source6);
	xfree(j->auth_user);
	if (j->auth_pass)
		explicit_bzero(j->auth_pass, strlen(j->auth_pass));
	xfree(j->auth_pass);
	buf_free(&j->trace);
	buf_free(&j->out);
	buf_free(&j->in);
	buf_free(&j->prepend);
	xfree(j);
}

/* ---- results ------------------------------------------------------------ */

static void
job_send_result(struct job *j, const char *fallback_status,
		const char *fallback_reply)
{
	struct ipc_out o;

	ipc_out_init(&o);
	ipc_put_str(&o, j->where);
	ipc_put_str(&o, j->trace.data ? j->trace.data : "");
	ipc_put_u32(&o, (uint32_t)j->m.nrcpts);
	for (size_t i = 0; i < j->m.nrcpts; i++) {
		const struct smtp_client_outcome *oc =
			j->c ? smtp_client_outcome(j->c, i) : NULL;
		ipc_put_u64(&o, j->rcpt_ids[i]);
		if (oc == NULL || oc->result == SMTPC_PENDING) {
			ipc_put_u8(&o, SMTPC_DEFERRED);
			ipc_put_str(&o, fallback_status);
			ipc_put_str(&o, fallback_reply);
			ipc_put_str(&o, "");
		} else {
			ipc_put_u8(&o, (uint8_t)oc->result);
			ipc_put_str(&o, oc->status);
			ipc_put_str(&o, oc->reply.data ? oc->reply.data : "");
			ipc_put_str(&o, smtp_client_cmd_name(oc->cmd));
		}
	}
	if (j->o->queue)
		ipc_send(j->o->queue, O_RESULT, j->id, -1, &o);
	ipc_out_free(&o);
}

static void
job_done(struct job *j)
{
	char reply[1024];

	snprintf(reply, sizeof(reply),
		 "no address of %s accepted a connection for this message%s%s",
		 j->domain, j->last_fail[0] ? "; last error: " : "",
		 j->last_fail);
	job_send_result(j, "4.4.1", reply);
	job_free(j);
}

/* ---- byte layer ------------------------------------------------------- */

static void job_on_event(evutil_socket_t fd, short what, void *arg);

static void
job_wait(struct job *j, short what, uint64_t secs)
{
	struct timeval tv = {(time_t)secs, 0};

	if (j->ev == NULL)
		j->ev = event_new(j->o->env->base, j->fd, what, job_on_event, j);
	else
		event_assign(j->ev, j->o->env->base, j->fd, what, job_on_event,
			     j);
	event_add(j->ev, NULL);
	evtimer_add(j->timer, &tv);
}

static uint64_t
job_timeout(struct job *j)
{
	const struct conf *c = j->o->env->conf;

	if (j->c == NULL)
		return c->delivery_timeout_connect;
	switch (smtp_client_timeout(j->c)) {
	case SMTPC_TO_GREETING:
		return c->delivery_timeout_greeting;
	case SMTPC_TO_DOT:
		return c->delivery_timeout_data_end;
	default:
		return c->delivery_timeout_command;
	}
}

/* Write what is buffered; 1 done, 0 wait (event armed), -1 error. */
static int
job_flush(struct job *j)
{
	while (j->out.len > 0) {
		ssize_t w;
		if (j->ssl) {
			int r = SSL_write(j->ssl, j->out.data, (int)j->out.len);
			if (r <= 0) {
				int e = SSL_get_error(j->ssl, r);
				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE) {
					job_wait(j, e == SSL_ERROR_WANT_READ
							    ? EV_READ
							    : EV_WRITE,
						 job_timeout(j));
					return 0;
				}
				return -1;
			}
			w = r;
		} else {
			w = write(j->fd, j->out.data, j->out.len);
			if (w < 0 && errno == EAGAIN) {
				job_wait(j, EV_WRITE, job_timeout(j));
				return 0;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -1;
		}
		buf_consume(&j->out, (size_t)w);
	}
	return 1;
}

/* Read what the server sent into j->in; 1 progress, 0 wait, -1 EOF. */
static int
job_read(struct job *j)
{
	char tmp[SMTPO_READ];
	ssize_t r;

	if (j->ssl) {
		int n = SSL_read(j->ssl, tmp, sizeof(tmp));
		if (n <= 0) {
			int e = SSL_get_error(j->ssl, n);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			return -1;
		}
		r = n;
	} else {
		r = read(j->fd, tmp, sizeof(tmp));
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (r <= 0)
			return -1;
	}
	if (buf_add(&j->in, tmp, (size_t)r) < 0)
		return -1; /* a server flooding us */
	return 1;
}

/* The dialogue in the attempt record: one line per command or reply
 * line, control characters escaped (AUTH is already redacted). */
static void
job_trace_lines(struct job *j, const char *dir, const char *s, size_t n)
{
	struct buf clean;
	size_t i = 0;

	buf_init(&clean, 8192);
	while (i < n) {
		size_t e = i;
		while (e < n && s[e] != '\r' && s[e] != '\n')
			e++;
		if (e > i) {
			buf_reset(&clean);
			smtp_reply_sanitize(s + i, e - i, &clean);
			buf_addf(&j->trace, "    %s%s\n", dir,
				 clean.data ? clean.data : "");
			/* log-level = debug: the dialogue, one line each */
			log_debug("%s: %s %s%s", j->msg, j->where, dir,
				  clean.data ? clean.data : "");
		}
		i = e;
		while (i < n && (s[i] == '\r' || s[i] == '\n'))
			i++;
	}
	buf_free(&clean);
}

/* Hand one complete reply from j->in to the engine; 0 if none yet. */
static int
job_take_reply(struct job *j)
{
	struct smtp_response resp;
	bool done = false;
	size_t used;

	if (j->in.len == 0)
		return 0;
	used = smtp_reply_feed(&j->rp, j->in.data, j->in.len, &resp, &done);
	buf_consume(&j->in, used);
	if (!done)
		return 0;
	job_trace_lines(j, "< ", resp.text.data ? resp.text.data : "",
			resp.text.len);
	smtp_client_reply(j->c, &resp);
	smtp_response_free(&resp);
	return 1;
}

/* ---- TLS ---------------------------------------------------------------- */

static void
job_tls_step(struct job *j)
{
	int r = SSL_connect(j->ssl);
	char why[256];

	if (r == 1) {
		buf_addf(&j->trace, "  TLS %s %s (certificate not verified)\n",
			 SSL_get_version(j->ssl), SSL_get_cipher_name(j->ssl));
		j->io = IO_TALK;
		if (j->implicit_pending)
			j->implicit_pending = 0;
		else
			smtp_client_tls_done(j->c, true, "");
		job_pump(j);
		return;
	}
	r = SSL_get_error(j->ssl, r);
	if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) {
		job_wait(j, r == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE,
			 j->o->env->conf->delivery_timeout_command);
		return;
	}
	snprintf(why, sizeof(why), "TLS handshake failed: %s",
		 ERR_reason_error_string(ERR_peek_last_error())
			 ? ERR_reason_error_string(ERR_get_error())
			 : "connection closed");
	ERR_clear_error();
	if (j->implicit_pending) {
		job_next_target(j, why);
		return;
	}
	j->io = IO_TALK;
	SSL_free(j->ssl);
	j->ssl = NULL;
	smtp_client_tls_done(j->c, false, why);
	job_pump(j);
}

static void
job_start_tls(struct job *j)
{
	const struct target *t = &j->t[j->ti];

	/* RFC 3207 §4.2: nothing the server sent after its 220 counts */
	if (j->in.len)
		buf_addf(&j->trace, "  discarded %zu plaintext bytes sent "
				    "after 220 to STARTTLS\n",
			 j->in.len);
	buf_reset(&j->in);
	smtp_reply_parser_free(&j->rp);
	smtp_reply_parser_init(&j->rp);
	j->ssl = SSL_new(j->o->tls);
	if (j->ssl == NULL || SSL_set_fd(j->ssl, j->fd) != 1) {
		smtp_client_tls_done(j->c, false, "cannot set up TLS");
		job_pump(j);
		return;
	}
	if (t->host[0] && inet_pton(AF_INET, t->host, &(struct in_addr){0}) != 1)
		SSL_set_tlsext_host_name(j->ssl, t->host);
	j->io = IO_HANDSHAKE;
	job_tls_step(j);
}

/* ---- body --------------------------------------------------------------- */

/* Stream the body through the dot-stuffer; returns when it must wait. */
static void
job_body(struct job *j)
{
	char in[SMTPO_BODY_CHUNK];

	for (;;) {
		int f = job_flush(j);
		ssize_t r;
		size_t used = 0;

		if (f < 0) {
			smtp_client_lost(j->c, "write failed during DATA");
			j->in_body = 0;
			job_pump(j);
			return;
		}
		if (f == 0)
			return;
		if (j->body_end_pending) {
			j->in_body = 0;
			j->body_end_pending = 0;
			smtp_client_body_sent(j->c);
			job_pump(j);
			return;
		}
		if ((size_t)j->body_off < j->prepend.len) {
			r = (ssize_t)(j->prepend.len - (size_t)j->body_off);
			if ((size_t)r > sizeof(in))
				r = sizeof(in);
			memcpy(in, j->prepend.data + j->body_off, (size_t)r);
		} else {
			r = pread(j->body_fd, in, sizeof(in),
				  j->body_off - (off_t)j->prepend.len);
		}
		if (r < 0) {
			smtp_client_lost(j->c, "cannot read the stored body");
			j->in_body = 0;
			job_pump(j);
			return;
		}
		if (r == 0) {
			smtp_dotstuff_end(&j->ds, &j->out);
			j->body_end_pending = 1;
			continue;
		}
		while (used < (size_t)r) {
			used += smtp_dotstuff_feed(&j->ds, in + used,
						   (size_t)r - used, &j->out);
			if (used < (size_t)r && job_flush(j) != 1)
				break;
		}
		j->body_off += (off_t)used;
	}
}

/* ---- the engine loop -------------------------------------------------- */

static void
job_conn_finished(struct job *j)
{
	const char *reason = "";
	enum smtpc_fail f = smtp_client_failure(j->c, &reason);
	char addr[64];

	job_addr_text(&j->t[j->ti], addr, sizeof(addr));
	if (smtp_client_try_next(j->c)) {
		buf_addf(&j->trace, "  %s [%s]: %s\n", j->t[j->ti].host, addr,
			 reason[0] ? reason : "failed");
		if (f == SMTPC_FAIL_LOST || f == SMTPC_FAIL_GREETING)
			health_failed(&j->t[j->ti], j->port);
		job_next_target(j, reason);
		return;
	}
	health_ok(&j->t[j->ti], j->port);
	buf_addf(&j->trace, "  %s [%s]: session %s%s%s\n", j->t[j->ti].host,
		 addr, f == SMTPC_FAIL_NONE ? "completed" : "failed",
		 reason[0] ? ": " : "", reason);
	job_send_result(j, "4.4.2", reason[0] ? reason : "connection lost");
	job_free(j);
}

static void
job_pump(struct job *j)
{
	for (;;) {
		const char *data;
		size_t len;
		enum smtpc_action a = smtp_client_next(j->c, &data, &len);

		switch (a) {
		case SMTPC_ACT_SEND:
			if (buf_add(&j->out, data, len) < 0) {
				smtp_client_lost(j->c, "output buffer full");
				continue;
			}
			job_trace_lines(j, "> ", smtp_client_transcript(j->c),
					strlen(smtp_client_transcript(j->c)));
			continue;
		case SMTPC_ACT_READ: {
			int f = job_flush(j);
			if (f < 0) {
				smtp_client_lost(j->c, "write failed");
				continue;
			}
			if (f == 0)
				return;
			if (job_take_reply(j))
				continue;
			if (j->ssl && SSL_pending(j->ssl) > 0) {
				if (job_read(j) < 0)
					smtp_client_lost(j->c, "TLS read failed");
				continue;
			}
			job_wait(j, EV_READ, job_timeout(j));
			return;
		}
		case SMTPC_ACT_STARTTLS:
			if (job_flush(j) != 1) {
				smtp_client_tls_done(j->c, false,
						     "cannot flush before TLS");
				continue;
			}
			job_start_tls(j);
			return;
		case SMTPC_ACT_BODY:
			if (!j->in_body) {
				j->in_body = 1;
				j->body_off = 0;
				smtp_dotstuff_init(&j->ds);
			}
			job_body(j);
			return;
		case SMTPC_ACT_DOWNGRADE:
			smtp_client_msg_abort(
				j->c, "5.6.3",
				"the message has 8-bit content and the server "
				"does not offer 8BITMIME (7-bit conversion is "
				"not implemented)");
			continue;
		case SMTPC_ACT_NEED_MSG:
			if (!j->started && smtp_client_can_send(j->c) &&
			    smtp_client_msg_start(j->c, &j->m) == 0) {
				j->started = 1;
				continue;
			}
			smtp_client_quit(j->c);
			continue;
		case SMTPC_ACT_CLOSE:
			job_flush(j);
			job_conn_finished(j);
			return;
		}
	}
}

static void
job_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	evtimer_del(j->timer);
	if (j->io == IO_HANDSHAKE) {
		job_tls_step(j);
		return;
	}
	if (j->in_body) {
		job_body(j);
		return;
	}
	if (what & EV_READ) {
		int r = job_read(j);
		if (r < 0)
			smtp_client_lost(j->c, "connection closed by the server");
	}
	job_pump(j);
}

static void
job_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	char why[128];

	if (j->io == IO_CONNECT) {
		job_next_target(j, "connection timed out");
		return;
	}
	if (j->implicit_pending) {
		job_next_target(j, "TLS handshake timed out");
		return;
	}
	snprintf(why, sizeof(why), "timeout in state %s",
		 smtp_client_state_name(j->c));
	if (j->ev)
		event_del(j->ev);
	j->in_body = 0;
	j->io = IO_TALK;
	smtp_client_lost(j->c, why);
	job_pump(j);
}

/* ---- connecting --------------------------------------------------------- */

static void
job_on_connected(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	const struct conf *c = j->o->env->conf;
	struct smtp_client_params p = {0};
	int err = 0;
	socklen_t sl = sizeof(err);
	char why[256];

	evtimer_del(j->timer);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0 || err != 0) {
		snprintf(why, sizeof(why), "connect: %s", strerror(err));
		job_next_target(j, why);
		return;
	}
	(void)c;
	p.helo = j->helo;
	p.tls = j->tls == CONF_TLS_MUST	   ? SMTPC_TLS_MUST
		: j->tls == CONF_TLS_NONE ? SMTPC_TLS_OFF
					  : SMTPC_TLS_MAY;
	p.in_tls = j->implicit_tls;
	p.auth_user = *j->auth_user ? j->auth_user : NULL;
	p.auth_pass = *j->auth_user ? j->auth_pass : NULL;
	p.max_msgs = 1;
	j->c = smtp_client_new(&p);
	if (j->c == NULL) {
		job_next_target(j, "invalid HELO name or credentials");
		return;
	}
	smtp_reply_parser_init(&j->rp);
	if (j->implicit_tls) {
		/* smtps://: TLS before the greeting */
		j->implicit_pending = 1;
		job_start_tls(j);
		return;
	}
	j->io = IO_TALK;
	job_pump(j);
}

/* [delivery]/[route] source-ipv4/6: what the receiver checks for PTR. */
static int
job_bind_source(struct job *j, int family)
{
	const char *src = family == 6 ? j->source6 : j->source4;
	struct sockaddr_storage ss = {0};
	socklen_t sl;

	if (src == NULL || *src == '\0')
		return 0;
	if (family == 6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, src, &s6->sin6_addr);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, src, &s4->sin_addr);
		sl = sizeof(*s4);
	}
	return bind(j->fd, (struct sockaddr *)&ss, sl);
}

static void
job_try_target(struct job *j)
{
	const struct target *t = &j->t[j->ti];
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	char addr[64];

	job_addr_text(t, addr, sizeof(addr));
	snprintf(j->where, sizeof(j->where), "%s [%s]:%u", t->host, addr,
		 j->port);
	if (t->family == 6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, t->addr, 16);
		s6->sin6_port = htons((uint16_t)j->port);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, t->addr, 4);
		s4->sin_port = htons((uint16_t)j->port);
		sl = sizeof(*s4);
	}
	j->io = IO_CONNECT;
	j->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (j->fd >= 0 && job_bind_source(j, t->family) < 0) {
		char why[128];
		snprintf(why, sizeof(why), "bind to source address: %s",
			 strerror(errno));
		job_next_target(j, why);
		return;
	}
	if (j->fd < 0 || (connect(j->fd, (struct sockaddr *)&ss, sl) < 0 &&
			  errno != EINPROGRESS)) {
		char why[128];
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		job_next_target(j, why);
		return;
	}
	j->ev = event_new(j->o->env->base, j->fd, EV_WRITE, job_on_connected, j);
	event_add(j->ev, NULL);
	{
		struct timeval tv = {
			(time_t)j->o->env->conf->delivery_timeout_connect, 0};
		evtimer_add(j->timer, &tv);
	}
}

static void
job_next_target(struct job *j, const char *why)
{
	char addr[64];

	if (j->io == IO_CONNECT) {
		job_addr_text(&j->t[j->ti], addr, sizeof(addr));
		buf_addf(&j->trace, "  %s [%s]: %s\n", j->t[j->ti].host, addr,
			 why);
		health_failed(&j->t[j->ti], j->port);
	}
	snprintf(j->last_fail, sizeof(j->last_fail), "%s: %s", j->where, why);
	log_info("%s: %s: %s; trying the next address", j->msg, j->where, why);
	job_conn_close(j);
	if (++j->ti >= j->nt) {
		job_done(j);
		return;
	}
	job_try_target(j);
}

/* ---- jobs from the queue ------------------------------------------------ */

static void
smtpo_on_deliver(struct smtpo *o, const struct ipc_hdr *h, struct ipc_in *in,
		 int fd)
{
	struct job *j = xcalloc(1, sizeof(*j));
	uint32_t n, nt;

	j->o = o;
	j->id = h->id;
	j->fd = -1;
	j->body_fd = fd;
	snprintf(j->msg, sizeof(j->msg), "%s", ipc_get_str(in));
	snprintf(j->domain, sizeof(j->domain), "%s", ipc_get_str(in));
	j->sender = xstrdup(ipc_get_str(in));
	j->m.size = ipc_get_u64(in);
	j->m.eightbit = ipc_get_u8(in);
	j->m.smtputf8 = ipc_get_u8(in);
	j->m.ret = (enum smtp_ret)ipc_get_u8(in);
	j->envid = xstrdup(ipc_get_str(in));
	j->port = ipc_get_u32(in);
	j->tls = ipc_get_u8(in);
	j->implicit_tls = ipc_get_u8(in);
	j->helo = xstrdup(ipc_get_str(in));
	j->auth_user = xstrdup(ipc_get_str(in));
	j->auth_pass = xstrdup(ipc_get_str(in));
	j->source4 = xstrdup(ipc_get_str(in));
	j->source6 = xstrdup(ipc_get_str(in));
	{
		size_t plen;
		const void *pp = ipc_get_data(in, &plen);
		buf_init(&j->prepend, IPC_MAX_PAYLOAD);
		buf_add(&j->prepend, pp, plen);
	}
	n = ipc_get_u32(in);
	j->rcpts = xcalloc(n ? n : 1, sizeof(*j->rcpts));
	j->rcpt_ids = xcalloc(n ? n : 1, sizeof(*j->rcpt_ids));
	for (uint32_t i = 0; i < n && !in->err; i++) {
		const char *orcpt;
		j->rcpt_ids[i] = ipc_get_u64(in);
		j->rcpts[i].addr = xstrdup(ipc_get_str(in));
		j->rcpts[i].notify = ipc_get_u32(in);
		orcpt = ipc_get_str(in);
		j->rcpts[i].orcpt = *orcpt ? xstrdup(orcpt) : NULL;
	}
	nt = ipc_get_u32(in);
	for (uint32_t i = 0; i < nt && !in->err; i++) {
		size_t alen;
		const void *a;
		struct target *t = &j->t[j->nt < SMTPO_TARGETS_MAX ? j->nt : 0];
		t->family = ipc_get_u8(in);
		a = ipc_get_data(in, &alen);
		memcpy(t->addr, a, alen < 16 ? alen : 16);
		snprintf(t->host, sizeof(t->host), "%s", ipc_get_str(in));
		if (j->nt < SMTPO_TARGETS_MAX)
			j->nt++;
	}
	ipc_end(in);
	j->m.sender = j->sender;
	j->m.rcpts = j->rcpts;
	j->m.nrcpts = n;
	j->m.envid = *j->envid ? j->envid : NULL;
	buf_init(&j->trace, SMTPO_TRACE_MAX);
	buf_init(&j->out, SMTPC_OUT_MAX);
	buf_init(&j->in, 256 * 1024);
	j->timer = evtimer_new(o->env->base, job_on_timeout, j);
	if (j->nt == 0) {
		job_done(j);
		return;
	}
	health_order(j);
	job_try_target(j);
}

static void
smtpo_queue_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		int fd, void *arg)
{
	if (h->type != O_DELIVER)
		log_panic("smtp-out: unexpected message %u", h->type);
	smtpo_on_deliver(arg, h, in, fd);
}

static void
smtpo_queue_close(struct ipc *ipc, void *arg)
{
	struct smtpo *o = arg;

	/* jobs in flight finish; their results are dropped */
	ipc_free(o->queue);
	o->queue = NULL;
}

static void
smtpo_master_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		 int fd, void *arg)
{
	struct smtpo *o = arg;

	switch (h->type) {
	case M_PEER:
		ipc_get_u8(in);
		ipc_get_u32(in);
		ipc_end(in);
		if (o->queue)
			ipc_free(o->queue);
		o->queue = ipc_new(o->env->base, fd, smtpo_queue_msg,
				   smtpo_queue_close, o);
		return;
	case M_RELOAD: {
		struct conf *nc = role_reload_conf(o->env, in);
		if (nc != NULL) {
			conf_free(o->env->conf);
			o->env->conf = nc;
			log_set_level(nc->log_level);
		}
		break;
	}
	case M_SHUTDOWN:
		ipc_end(in);
		exit(0);
	default:
		log_panic("smtp-out: unexpected master message %u", h->type);
	}
	if (fd >= 0)
		close(fd);
}

static void
smtpo_master_close(struct ipc *ipc, void *arg)
{
	exit(0);
}

int
smtp_out_main(struct role_env *env)
{
	static struct smtpo o;

	o.env = env;
	o.tls = SSL_CTX_new(TLS_client_method());
	if (o.tls == NULL)
		log_fatal("smtp-out: cannot create a TLS context");
	SSL_CTX_set_min_proto_version(o.tls, TLS1_2_VERSION);
	SSL_CTX_set_verify(o.tls, SSL_VERIFY_NONE, NULL);
	o.master = ipc_new(env->base, ROLE_MASTER_FD, smtpo_master_msg,
			   smtpo_master_close, &o);
	event_base_dispatch(env->base);
	return 0;
}
