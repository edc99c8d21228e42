/*
 * smtp_out — see smtp_out.h.
 */
#include "todoku/smtp_out.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/attrec.h"
#include "mail/conf.h"
#include "mail/smtp_client.h"
#include "mail/smtp_reply.h"
#include "mail/v6health.h"
#include "todoku/proto.h"
#include "todoku/role.h"

enum io_state { IO_CONNECT, IO_TALK, IO_HANDSHAKE, IO_IDLE, IO_DONE };

struct target {
	int family;
	uint8_t addr[16];
	char host[256];
	uint8_t recent_fail; /* conn_order: failed recently, ordered last */
};

struct smtpo;
struct conn;

/* The final outcome of one recipient, kept past the engine's lifetime. */
struct rres {
	int result; /* enum smtpc_result; PENDING: not tried */
	char status[SMTP_STATUS_MAX];
	char *reply;
	const char *cmd;
	int code;
	int retry;   /* to be tried again over IPv4 */
	int hop_dsn; /* the server that answered offered DSN (RFC 3461) */
};

/* How to reach the next hop; the connection cache key is made of it. */
struct sess {
	unsigned port;
	int tls; /* enum conf_tls */
	int implicit_tls;
	int verify;	    /* enum conf_verify */
	char *ca;	    /* CA store for verify = ca */
	char *helo, *helo6; /* EHLO name over IPv4, over IPv6 */
	char *auth_user, *auth_pass;
	char *source4, *source6; /* "" or the address to bind */
};

/* One O_DELIVER: one message, the recipients of one domain. */
struct job {
	struct smtpo *o;
	uint64_t id;
	uint64_t session; /* queue's session id, 0: none */
	char msg[32];
	char domain[256];
	int body_fd;
	char *sender, *envid;
	struct sess s;
	struct buf prepend; /* trace headers sent before the stored body */
	struct smtp_client_msg m; /* every recipient */
	struct smtp_client_rcpt *rcpts;
	uint64_t *rcpt_ids;
	struct rres *res;
	/* the transaction in progress: a subset of m (IPv4 retry) */
	struct smtp_client_msg tm;
	struct smtp_client_rcpt *trc;
	size_t *tidx;
	struct target t[SMTPO_TARGETS_MAX];
	size_t nt;
	struct attrec_conn rec; /* the attempt record (mail/attrec) */
	char where[400];
	int verdict;	  /* SMTPO_V_* for O_RESULT */
	int v4_retry;	  /* 1: a 4.7/5.7 over IPv6 sent it to IPv4 */
	char *v6_reply;	  /* that reply, verbatim */
	struct job *next; /* in the connection's waiting list */
};

/* One outbound connection, carrying jobs one after another. */
struct conn {
	struct smtpo *o;
	uint64_t session;	/* the queue's session it carries, 0: none */
	uint64_t last_job;	/* the last job of that session given to it */
	struct conn *successor; /* connects once this one is closed */
	struct sess s;
	struct target t[SMTPO_TARGETS_MAX];
	size_t nt, ti;
	int fd;
	SSL *ssl;
	enum io_state io;
	struct event *ev, *timer;
	struct smtp_client *c;
	struct smtp_reply_parser rp;
	struct buf in; /* received, not yet parsed */
	struct buf out;
	struct job *cur; /* its transaction is on the wire */
	struct job *wait, **wait_tail;
	int in_body;
	off_t body_off;
	struct smtp_dotstuff ds;
	int body_end_pending;
	int implicit_pending; /* smtps: handshake before the engine runs */
	time_t born;	      /* connected (monotonic) */
	uint64_t started;     /* the attempt's first address (mono_ms) */
	int time_up;	      /* max-attempt-time stopped the addresses */
	unsigned msgs;	      /* transactions started on this connection */
	int conn_failed;      /* reconnects are not tried after this */
	struct attrec_conn
	    rec;	  /* the attempt record, not yet handed to a job */
	unsigned replies; /* since connected: 1 = the greeting */
	char where[400];
	char last_fail[1024];
	char verify_fail[1024]; /* the last certificate verification failure */
	struct conn *next;
};

/* One TLS context per CA store in use (verify = none: ca ""). */
struct tls_ctx {
	char *ca;
	SSL_CTX *ctx;
	struct tls_ctx *next;
};

struct smtpo {
	struct role_env *env;
	struct ipc *master;
	struct ipc *queue;
	struct tls_ctx *tls;
	struct conn *conns;
};

static void conn_pump(struct conn *cn);
static void conn_next_target(struct conn *cn, const char *why);
static void conn_connect(struct conn *cn);
static void job_finish(struct job *j);

static time_t
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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

/* ---- IPv6 family health memory ----------------------------------------- */

/*
 * DESIGN §7: IPv6 is suspended after network-level connect failures at
 * [delivery] ipv6-suspend-after distinct IPv6 addresses (mail/v6health);
 * while suspended, IPv4 addresses go first. This process's memory only:
 * each smtp-out process keeps its own, a restart forgets it.
 */
static struct v6h v6health;

static struct v6h_params
v6h_params_of(const struct conf *c)
{
	struct v6h_params p = {
	    .suspend_after = c->delivery_v6_suspend_after,
	    .suspend_for = c->delivery_v6_suspend_for,
	    /* a probe's IPv6 outcome is known within a connect timeout */
	    .probe_window = c->delivery_timeout_connect,
	};
	return p;
}

/* A connect to the current address failed with err (errno). */
static void
v6_connect_failed(struct conn *cn, int err, const char *why)
{
	const struct target *t = &cn->t[cn->ti];
	struct v6h_params p = v6h_params_of(cn->o->env->conf);
	char what[V6H_WHY_MAX];

	if (t->family != 6 || !v6h_network_errno(err))
		return;
	snprintf(what, sizeof(what), "%.200s: %.90s", cn->where, why);
	switch (v6h_failed(&v6health, &p, t->addr, what, mono_now())) {
	case V6H_EV_SUSPENDED:
		log_warn("IPv6 suspended for %llus: network-level connection "
			 "failures at %u IPv6 addresses and no IPv6 connection "
			 "in between (last: %s); IPv4 addresses are tried "
			 "first until a probe over IPv6 connects",
			 (unsigned long long)p.suspend_for, v6health.nfail,
			 what);
		break;
	case V6H_EV_STILL_DOWN:
		log_info("IPv6 still failing (%s); suspended for another %llus",
			 what, (unsigned long long)p.suspend_for);
		break;
	default:
		break;
	}
}

/* A TCP connection to the current address was established. */
static void
v6_connected(struct conn *cn)
{
	if (cn->t[cn->ti].family != 6)
		return;
	if (v6h_ok(&v6health) == V6H_EV_RESUMED)
		log_info("IPv6 resumed: %s accepted a connection", cn->where);
}

/* The plan for this connection's addresses; only an attempt that has
 * addresses of both families takes one (so the probe is one that can
 * fall back to IPv4). */
static enum v6h_plan
conn_v6_plan(struct conn *cn)
{
	struct v6h_params p = v6h_params_of(cn->o->env->conf);
	size_t n4 = 0, n6 = 0;

	for (size_t i = 0; i < cn->nt; i++) {
		n4 += cn->t[i].family == 4;
		n6 += cn->t[i].family == 6;
	}
	if (n4 == 0 || n6 == 0)
		return V6H_PLAN_NORMAL;
	return v6h_take_plan(&v6health, &p, mono_now());
}

static void addr_text(const struct target *t, char *dst, size_t len);

/*
 * DESIGN §7: one attempt tries at most max-addresses. The lookup hands
 * over every address (up to SMTPO_TARGETS_MAX) so the cut falls on the
 * final order: IPv4 moved forward while IPv6 is suspended, dead ones
 * moved back, are not lost behind addresses that were cut first. The
 * record names the ones left out.
 */
static void
conn_cap(struct conn *cn)
{
	size_t max = cn->o->env->conf->delivery_max_addresses;
	char a[SMTPO_TARGETS_MAX][64];
	const char *skipped[SMTPO_TARGETS_MAX];

	if (max == 0 || cn->nt <= max)
		return;
	for (size_t i = max; i < cn->nt; i++) {
		addr_text(&cn->t[i], a[i - max], sizeof(a[0]));
		skipped[i - max] = a[i - max];
	}
	attrec_conn_addr_limit(&cn->rec, (uint32_t)max, (uint32_t)cn->nt,
			       skipped, cn->nt - max);
	log_info("%s: max-addresses %zu: the last %zu of %zu addresses "
		 "(first left out: %s) are not tried in this attempt",
		 cn->wait ? cn->wait->msg : "-", max, cn->nt - max, cn->nt,
		 a[0]);
	cn->nt = max;
}

/*
 * The attempt's address order: the lookup's (the queue moved IPv4 first
 * for an IPv4-first destination), then, stable, IPv4 before IPv6 while
 * IPv6 is suspended, and recently dead addresses behind live ones; then
 * the max-addresses cut.
 */
static void
conn_order(struct conn *cn)
{
	struct target t[SMTPO_TARGETS_MAX];
	int fam[SMTPO_TARGETS_MAX] = {0};
	bool dead[SMTPO_TARGETS_MAX] = {0};
	size_t perm[SMTPO_TARGETS_MAX], nd = 0;
	enum v6h_plan plan = conn_v6_plan(cn);
	const char *msg = cn->wait ? cn->wait->msg : "-";

	for (size_t i = 0; i < cn->nt; i++) {
		fam[i] = cn->t[i].family;
		dead[i] = health_dead(&cn->t[i], cn->s.port);
		nd += dead[i];
	}
	v6h_order(fam, dead, cn->nt, plan == V6H_PLAN_V6_LAST, perm);
	for (size_t i = 0; i < cn->nt; i++) {
		t[i] = cn->t[perm[i]];
		t[i].recent_fail = nd < cn->nt && dead[perm[i]];
	}
	memcpy(cn->t, t, cn->nt * sizeof(*t));
	for (size_t i = 0; i < cn->nt; i++) {
		char a[64];
		if (!cn->t[i].recent_fail)
			continue;
		addr_text(&cn->t[i], a, sizeof(a));
		attrec_conn_recent(&cn->rec, a);
	}
	cn->rec.v6_plan = plan == V6H_PLAN_V6_LAST ? ATTREC_V6_V4_FIRST
			  : plan == V6H_PLAN_PROBE ? ATTREC_V6_PROBE
						   : ATTREC_V6_USUAL;
	if (plan == V6H_PLAN_V6_LAST) {
		unsigned long long left = v6h_remaining(&v6health, mono_now());
		log_info("%s: IPv6 suspended (%llus left): IPv4 addresses "
			 "first",
			 msg, left);
	} else if (plan == V6H_PLAN_PROBE) {
		log_info("%s: IPv6 suspension time over: this attempt probes "
			 "IPv6",
			 msg);
	}
	conn_cap(cn);
}

/* ---- helpers ------------------------------------------------------------ */

static void
addr_text(const struct target *t, char *dst, size_t len)
{
	inet_ntop(t->family == 6 ? AF_INET6 : AF_INET, t->addr, dst,
		  (socklen_t)len);
}

/* ---- the structured attempt record (mail/attrec) ------------------------ */

/* The record's outcome of an address whose session ended with f
 * (greeting: the only reply so far was the greeting). */
static const char *
rec_outcome(enum smtpc_fail f, const char *reason, int greeting)
{
	if (f == SMTPC_FAIL_421 && greeting)
		return "greeting-4xx";
	switch (f) {
	case SMTPC_FAIL_NONE:
		return "ok";
	case SMTPC_FAIL_GREETING:
		return strncmp(reason, "greeting refused: 4", 19) == 0
			   ? "greeting-4xx"
			   : "greeting-5xx";
	case SMTPC_FAIL_HELO:
		return "helo-refused";
	case SMTPC_FAIL_TLS:
		return "tls-failed";
	case SMTPC_FAIL_AUTH:
		return "auth-unavailable";
	case SMTPC_FAIL_AUTH_REFUSED:
		return "auth-refused";
	case SMTPC_FAIL_421:
		return "closed-421";
	case SMTPC_FAIL_LOST:
		return strncmp(reason, "connection lost in greeting", 27) == 0
			   ? "no-greeting"
			   : "lost";
	case SMTPC_FAIL_PROTOCOL:
		return "protocol-error";
	case SMTPC_FAIL_RSET:
		return "rset-refused";
	case SMTPC_FAIL_NOMEM:
		break;
	}
	return "local-error";
}

/* The record's entry for the address the connection is at. */
static void
rec_addr(struct conn *cn, const char *outcome, const char *detail)
{
	char addr[64];
	const struct target *t = &cn->t[cn->ti];

	int k;

	addr_text(t, addr, sizeof(addr));
	k = attrec_conn_addr(&cn->rec, t->host, addr, cn->s.port, t->family,
			     outcome, detail);
	attrec_conn_addr_note(&cn->rec, k,
			      t->recent_fail ? ATTREC_AF_FAILED_RECENTLY : 0,
			      cn->msgs);
}

/* Hand the connection's record to a job; the addresses of its IPv4
 * retry are marked so. */
static void
rec_hand(struct job *j, const struct conn *cn)
{
	size_t from = j->rec.naddr;

	attrec_conn_append(&j->rec, &cn->rec);
	if (j->v4_retry)
		attrec_conn_mark_v4_retry(&j->rec, from);
}

static const char *
rec_tls_policy(const struct sess *s)
{
	return s->implicit_tls ? "smtps" : conf_tls_names[s->tls];
}

static void
sess_copy(struct sess *d, const struct sess *s)
{
	d->port = s->port;
	d->tls = s->tls;
	d->implicit_tls = s->implicit_tls;
	d->verify = s->verify;
	d->ca = xstrdup(s->ca);
	d->helo = xstrdup(s->helo);
	d->helo6 = xstrdup(s->helo6);
	d->auth_user = xstrdup(s->auth_user);
	d->auth_pass = xstrdup(s->auth_pass);
	d->source4 = xstrdup(s->source4);
	d->source6 = xstrdup(s->source6);
}

static void
sess_free(struct sess *s)
{
	xfree(s->helo);
	xfree(s->helo6);
	xfree(s->ca);
	xfree(s->source4);
	xfree(s->source6);
	xfree(s->auth_user);
	if (s->auth_pass)
		explicit_bzero(s->auth_pass, strlen(s->auth_pass));
	xfree(s->auth_pass);
	memset(s, 0, sizeof(*s));
}

/* The source address and HELO name of a session over this family. */
static const char *
sess_source(const struct sess *s, int family)
{
	return family == 6 ? s->source6 : s->source4;
}

static const char *
sess_helo(const struct sess *s, int family)
{
	return family == 6 ? s->helo6 : s->helo;
}

/* The connection cache key, DESIGN §7: address, port, source address,
 * HELO (both of the family), TLS policy, SASL identity (the verify
 * name: conn_find_idle). */
static int
sess_same(const struct sess *a, const struct sess *b, int family)
{
	return a->port == b->port && a->tls == b->tls &&
	       a->implicit_tls == b->implicit_tls && a->verify == b->verify &&
	       strcmp(a->ca, b->ca) == 0 &&
	       strcmp(sess_helo(a, family), sess_helo(b, family)) == 0 &&
	       strcmp(a->auth_user, b->auth_user) == 0 &&
	       strcmp(a->auth_pass, b->auth_pass) == 0 &&
	       strcmp(sess_source(a, family), sess_source(b, family)) == 0;
}

static int
is_policy_status(const char *st)
{
	return (st[0] == '4' || st[0] == '5') && strncmp(st + 1, ".7.", 3) == 0;
}

/* ---- jobs ------------------------------------------------------------- */

static void
job_free(struct job *j)
{
	if (j->body_fd >= 0)
		close(j->body_fd);
	for (size_t i = 0; i < j->m.nrcpts; i++) {
		xfree((char *)j->rcpts[i].addr);
		xfree((char *)j->rcpts[i].orcpt);
		xfree(j->res[i].reply);
	}
	xfree(j->rcpts);
	xfree(j->rcpt_ids);
	xfree(j->res);
	xfree(j->trc);
	xfree(j->tidx);
	xfree(j->sender);
	xfree(j->envid);
	xfree(j->v6_reply);
	sess_free(&j->s);
	attrec_conn_free(&j->rec);
	buf_free(&j->prepend);
	xfree(j);
}

/* The next transaction carries the recipients still PENDING. */
static void
job_txn_prepare(struct job *j)
{
	size_t n = 0;

	for (size_t i = 0; i < j->m.nrcpts; i++) {
		if (j->res[i].result != SMTPC_PENDING && !j->res[i].retry)
			continue;
		j->trc[n] = j->rcpts[i];
		j->tidx[n++] = i;
	}
	j->tm = j->m;
	j->tm.rcpts = j->trc;
	j->tm.nrcpts = n;
}

/* One octet per recipient: 1 if the server that took it offered DSN, so
 * the queue knows whether a NOTIFY=SUCCESS needs our "relayed" report. */
static void
job_put_hop_dsn(const struct job *j, struct ipc_out *o)
{
	uint8_t *map = xcalloc(j->m.nrcpts ? j->m.nrcpts : 1, 1);

	for (size_t i = 0; i < j->m.nrcpts; i++)
		map[i] =
		    j->res[i].result == SMTPC_DELIVERED && j->res[i].hop_dsn;
	ipc_put_data(o, map, j->m.nrcpts);
	xfree(map);
}

static void
job_send_result(struct job *j, const char *fallback_status,
		const char *fallback_reply)
{
	struct ipc_out o;

	ipc_out_init(&o);
	ipc_put_str(&o, j->where);
	ipc_put_u32(&o, (uint32_t)j->m.nrcpts);
	for (size_t i = 0; i < j->m.nrcpts; i++) {
		const struct rres *r = &j->res[i];
		ipc_put_u64(&o, j->rcpt_ids[i]);
		if (r->result == SMTPC_PENDING &&
		    j->verdict == SMTPO_V_UNTRIED) {
			ipc_put_u8(&o, SMTPC_PENDING);
			ipc_put_str(&o, "4.4.2");
			ipc_put_str(&o, "not attempted: the connection ended "
					"before this message");
			ipc_put_str(&o, "");
		} else if (r->result == SMTPC_PENDING) {
			ipc_put_u8(&o, SMTPC_DEFERRED);
			ipc_put_str(&o, fallback_status);
			ipc_put_str(&o, fallback_reply);
			ipc_put_str(&o, "");
		} else {
			ipc_put_u8(&o, (uint8_t)r->result);
			ipc_put_str(&o, r->status);
			ipc_put_str(&o, r->reply ? r->reply : "");
			ipc_put_str(&o, r->cmd ? r->cmd : "");
		}
	}
	/* appended fields: see smtp_out.h */
	ipc_put_u8(&o, (uint8_t)j->verdict);
	ipc_put_u8(&o, (uint8_t)j->v4_retry);
	ipc_put_str(&o, j->v6_reply ? j->v6_reply : "");
	job_put_hop_dsn(j, &o);
	attrec_put_conn(&o, &j->rec);
	if (j->o->queue)
		ipc_send(j->o->queue, O_RESULT, j->id, -1, &o);
	ipc_out_free(&o);
}

/* No address gave a session. A certificate that failed verification
 * is the reason that matters (4.7.5, RFC 3463): it is quoted first.
 * limit: why the addresses stopped early ("": they ran out). */
static void
job_fail_conn(struct job *j, const char *domain, const char *limit,
	      const char *last_fail, const char *verify_fail)
{
	char reply[1600];

	if (limit[0])
		snprintf(reply, sizeof(reply),
			 "%s of %s (max-attempt-time %llus); last: %s%s%.600s",
			 limit, domain,
			 (unsigned long long)
			     j->o->env->conf->delivery_max_attempt_time,
			 last_fail[0] ? last_fail : "none",
			 verify_fail[0] ? "; certificate: " : "", verify_fail);
	else if (verify_fail[0])
		snprintf(reply, sizeof(reply),
			 "no address of %s gave a verified TLS session for "
			 "this message: %s%s%s",
			 domain, verify_fail,
			 strcmp(last_fail, verify_fail) ? "; last error: " : "",
			 strcmp(last_fail, verify_fail) ? last_fail : "");
	else
		snprintf(reply, sizeof(reply),
			 "no address of %s accepted a connection for this "
			 "message%s%s",
			 domain, last_fail[0] ? "; last error: " : "",
			 last_fail);
	/* the time limit ends the attempt: recorded, not handed back to
	 * the destination for another round (a connection failure all the
	 * same for its slow start) */
	if (j->verdict == SMTPO_V_NONE)
		j->verdict = limit[0] ? SMTPO_V_FAILED : SMTPO_V_CONN_FAILED;
	job_send_result(j, verify_fail[0] ? "4.7.5" : "4.4.1", reply);
	job_free(j);
}

/* ---- connections: lifetime --------------------------------------------- */

static void
conn_wait_push(struct conn *cn, struct job *j, int front)
{
	j->next = NULL;
	if (front) {
		j->next = cn->wait;
		cn->wait = j;
		if (cn->wait_tail == &cn->wait)
			cn->wait_tail = &j->next;
		return;
	}
	*cn->wait_tail = j;
	cn->wait_tail = &j->next;
}

static struct job *
conn_wait_pop(struct conn *cn)
{
	struct job *j = cn->wait;

	if (j == NULL)
		return NULL;
	cn->wait = j->next;
	if (cn->wait == NULL)
		cn->wait_tail = &cn->wait;
	j->next = NULL;
	return j;
}

/*
 * The one setter of cn->session. The queue counts a session against
 * its destination's concurrency limit until the connection that carried
 * it is gone: when cn stops carrying a session (closed, or taken over by
 * another session) the queue hears O_CLOSED with the last job it gave
 * this connection, so it can tell a close that is news from one that a
 * later job of the same session already superseded.
 */
static void
conn_set_session(struct conn *cn, uint64_t session, uint64_t job)
{
	struct ipc_out o;

	if (cn->session != 0 && cn->session != session &&
	    cn->o->queue != NULL) {
		ipc_out_init(&o);
		ipc_put_u64(&o, cn->last_job);
		ipc_send(cn->o->queue, O_CLOSED, cn->session, -1, &o);
		ipc_out_free(&o);
	}
	cn->session = session;
	cn->last_job = job;
}

/* Close the socket and forget the engine; jobs stay. */
static void
conn_close_socket(struct conn *cn)
{
	if (cn->ev) {
		event_free(cn->ev);
		cn->ev = NULL;
	}
	if (cn->ssl) {
		SSL_free(cn->ssl);
		cn->ssl = NULL;
	}
	if (cn->fd >= 0)
		close(cn->fd);
	cn->fd = -1;
	if (cn->c) {
		smtp_client_free(cn->c);
		cn->c = NULL;
	}
	smtp_reply_parser_free(&cn->rp);
	buf_reset(&cn->out);
	buf_reset(&cn->in);
	cn->in_body = 0;
	cn->body_end_pending = 0;
	cn->implicit_pending = 0;
	cn->io = IO_DONE;
	evtimer_del(cn->timer);
}

static void
conn_free(struct conn *cn)
{
	struct smtpo *o = cn->o;
	struct conn *next = cn->successor;

	conn_close_socket(cn);
	conn_set_session(cn, 0, 0);
	for (struct conn **pp = &o->conns; *pp; pp = &(*pp)->next) {
		if (*pp == cn) {
			*pp = cn->next;
			break;
		}
	}
	event_free(cn->timer);
	sess_free(&cn->s);
	attrec_conn_free(&cn->rec);
	buf_free(&cn->out);
	buf_free(&cn->in);
	xfree(cn);
	if (next != NULL)
		conn_connect(next); /* its predecessor's slot is free now */
}

static void conn_on_timeout(evutil_socket_t fd, short what, void *arg);

/* A new connection for j; session: the queue session it carries (0:
 * none, e.g. an IPv4 retry beside the session's own connection). */
static struct conn *
conn_new(struct smtpo *o, const struct job *j, uint64_t session,
	 int only_family)
{
	struct conn *cn = xcalloc(1, sizeof(*cn));

	cn->o = o;
	cn->fd = -1;
	conn_set_session(cn, session, j->id);
	sess_copy(&cn->s, &j->s);
	for (size_t i = 0; i < j->nt; i++)
		if (only_family == 0 || j->t[i].family == only_family)
			cn->t[cn->nt++] = j->t[i];
	cn->wait_tail = &cn->wait;
	buf_init(&cn->out, SMTPC_OUT_MAX);
	buf_init(&cn->in, 256 * 1024);
	cn->timer = evtimer_new(o->env->base, conn_on_timeout, cn);
	cn->io = IO_DONE;
	cn->started = mono_ms();
	cn->next = o->conns;
	o->conns = cn;
	return cn;
}

/* Every address tried failed (or max-attempt-time stopped them): the
 * jobs waiting on this connection are done. */
static void
conn_give_up(struct conn *cn)
{
	struct job *j;
	char domain[256], limit[200] = "";

	if (cn->time_up) {
		snprintf(limit, sizeof(limit),
			 "attempt time limit reached after %zu of %zu "
			 "addresses",
			 cn->ti, cn->nt);
		log_info("%s: %s (max-attempt-time %llus); last: %s; deferred",
			 cn->wait ? cn->wait->msg : "-", limit,
			 (unsigned long long)
			     cn->o->env->conf->delivery_max_attempt_time,
			 cn->last_fail);
		cn->rec.time_limit = 1;
		cn->rec.tl_tried = (uint32_t)cn->ti;
		cn->rec.tl_total = (uint32_t)cn->nt;
	}

	while ((j = conn_wait_pop(cn)) != NULL) {
		snprintf(domain, sizeof(domain), "%s", j->domain);
		snprintf(j->where, sizeof(j->where), "%s", cn->where);
		rec_hand(j, cn);
		if (j->v4_retry) {
			/* the IPv6 outcome stands; IPv4 was unreachable */
			if (j->verdict == SMTPO_V_NONE)
				j->verdict = SMTPO_V_OK;
			for (size_t i = 0; i < j->m.nrcpts; i++)
				j->res[i].retry = 0;
			job_send_result(j, "4.4.1", "IPv4 retry failed");
			job_free(j);
			continue;
		}
		job_fail_conn(j, domain, limit, cn->last_fail, cn->verify_fail);
	}
	conn_free(cn);
}

/*
 * The relay refused our credentials. They would be refused at its other
 * addresses too, and again if the jobs went back to the destination:
 * each retry is one more failed login against the account (relays lock
 * accounts for that). So this attempt ends here for every waiting job,
 * deferred with the relay's reply; the session itself worked, so the
 * destination's slow start and dead state are not touched (verdict ok).
 */
static void
conn_auth_refused(struct conn *cn, const char *why)
{
	struct job *j;
	char reply[1600];

	snprintf(reply, sizeof(reply),
		 "the relay %s refused our login (auth-user of the route): "
		 "%s; fix the credentials; not retried at other addresses",
		 cn->where, why);
	while ((j = conn_wait_pop(cn)) != NULL) {
		snprintf(j->where, sizeof(j->where), "%s", cn->where);
		rec_hand(j, cn);
		j->verdict = SMTPO_V_OK;
		job_send_result(j, "4.7.8", reply);
		job_free(j);
	}
	log_warn("%s: %s", cn->where, reply);
	conn_free(cn);
}

/* Start again from the first address with a fresh connection (the
 * cached one was closed by the server, refused RSET, or reached its
 * message or age limit). */
static void
conn_reconnect(struct conn *cn)
{
	conn_close_socket(cn);
	cn->ti = 0;
	cn->msgs = 0;
	cn->born = 0;
	cn->started = mono_ms();
	conn_connect(cn);
}

/* A waiting job has no live connection after all: every job behind
 * it is returned to the queue untried (it re-dispatches them). */
static void
conn_return_untried(struct conn *cn)
{
	struct job *j;

	while ((j = conn_wait_pop(cn)) != NULL) {
		snprintf(j->where, sizeof(j->where), "%s", cn->where);
		if (j->v4_retry) {
			for (size_t i = 0; i < j->m.nrcpts; i++)
				j->res[i].retry = 0;
			j->verdict = SMTPO_V_OK;
			job_send_result(j, "4.4.2",
					"IPv4 retry: connection lost");
			job_free(j);
			continue;
		}
		j->verdict = SMTPO_V_UNTRIED;
		job_send_result(j, "4.4.2", "not attempted");
		job_free(j);
	}
}

/* ---- byte layer ------------------------------------------------------- */

static void conn_on_event(evutil_socket_t fd, short what, void *arg);

static void
conn_wait_io(struct conn *cn, short what, uint64_t secs)
{
	struct timeval tv = {(time_t)secs, 0};

	if (cn->ev == NULL)
		cn->ev = event_new(cn->o->env->base, cn->fd, what,
				   conn_on_event, cn);
	else
		event_assign(cn->ev, cn->o->env->base, cn->fd, what,
			     conn_on_event, cn);
	event_add(cn->ev, NULL);
	evtimer_add(cn->timer, &tv);
}

static uint64_t
conn_timeout(struct conn *cn)
{
	const struct conf *c = cn->o->env->conf;

	if (cn->c == NULL)
		return c->delivery_timeout_connect;
	switch (smtp_client_timeout(cn->c)) {
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
conn_flush(struct conn *cn)
{
	while (cn->out.len > 0) {
		ssize_t w;
		if (cn->ssl) {
			int r =
			    SSL_write(cn->ssl, cn->out.data, (int)cn->out.len);
			if (r <= 0) {
				int e = SSL_get_error(cn->ssl, r);
				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE) {
					conn_wait_io(cn,
						     e == SSL_ERROR_WANT_READ
							 ? EV_READ
							 : EV_WRITE,
						     conn_timeout(cn));
					return 0;
				}
				return -1;
			}
			w = r;
		} else {
			w = write(cn->fd, cn->out.data, cn->out.len);
			if (w < 0 && errno == EAGAIN) {
				conn_wait_io(cn, EV_WRITE, conn_timeout(cn));
				return 0;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -1;
		}
		buf_consume(&cn->out, (size_t)w);
	}
	return 1;
}

/* Read what the server sent into cn->in; 1 progress, 0 wait, -1 EOF. */
static int
conn_read(struct conn *cn)
{
	char tmp[SMTPO_READ];
	ssize_t r;

	if (cn->ssl) {
		int n = SSL_read(cn->ssl, tmp, sizeof(tmp));
		if (n <= 0) {
			int e = SSL_get_error(cn->ssl, n);
			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE)
				return 0;
			return -1;
		}
		r = n;
	} else {
		r = read(cn->fd, tmp, sizeof(tmp));
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (r <= 0)
			return -1;
	}
	if (buf_add(&cn->in, tmp, (size_t)r) < 0)
		return -1; /* a server flooding us */
	return 1;
}

/* log-level = debug: the dialogue in the log, one line per command or
 * reply line, control characters escaped (AUTH is already redacted).
 * The attempt record keeps it (attrec_conn_sent/reply) at every level. */
static void
conn_debug_lines(struct conn *cn, const char *dir, const char *s, size_t n)
{
	struct buf clean;
	size_t i = 0;
	const char *msg = cn->cur    ? cn->cur->msg
			  : cn->wait ? cn->wait->msg
				     : "-";

	if (log_get_level() < LOG_LVL_DEBUG)
		return;
	buf_init(&clean, 8192);
	while (i < n) {
		size_t e = i;
		while (e < n && s[e] != '\r' && s[e] != '\n')
			e++;
		if (e > i) {
			buf_reset(&clean);
			smtp_reply_sanitize(s + i, e - i, &clean);
			log_debug("%s: %s %s%s", msg, cn->where, dir,
				  clean.data ? clean.data : "");
		}
		i = e;
		while (i < n && (s[i] == '\r' || s[i] == '\n'))
			i++;
	}
	buf_free(&clean);
}

/* Hand one complete reply from cn->in to the engine; 0 if none yet. */
static int
conn_take_reply(struct conn *cn)
{
	struct smtp_response resp;
	bool done = false;
	size_t used;

	if (cn->in.len == 0)
		return 0;
	used = smtp_reply_feed(&cn->rp, cn->in.data, cn->in.len, &resp, &done);
	buf_consume(&cn->in, used);
	if (!done)
		return 0;
	conn_debug_lines(cn, "< ", resp.text.data ? resp.text.data : "",
			 resp.text.len);
	attrec_conn_reply(&cn->rec, resp.text.data ? resp.text.data : "",
			  resp.text.len);
	cn->replies++;
	smtp_client_reply(cn->c, &resp);
	smtp_response_free(&resp);
	return 1;
}

/* ---- TLS ---------------------------------------------------------------- */

/* The context for a CA store (verify = none: "", no store), made on
 * first use and kept until a reload. */
static SSL_CTX *
tls_ctx_get(struct smtpo *o, const struct sess *s, char *why, size_t wl)
{
	const char *ca = s->verify == CONF_VERIFY_NONE ? "" : s->ca;
	struct tls_ctx *t;
	SSL_CTX *ctx;
	struct stat st;
	int dir;

	for (t = o->tls; t; t = t->next)
		if (strcmp(t->ca, ca) == 0)
			return t->ctx;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(why, wl, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (*ca) {
		dir = stat(ca, &st) == 0 && S_ISDIR(st.st_mode);
		if (SSL_CTX_load_verify_locations(ctx, dir ? NULL : ca,
						  dir ? ca : NULL) != 1) {
			const char *e =
			    ERR_reason_error_string(ERR_get_error());
			snprintf(why, wl,
				 "cannot load CA certificates from %s: %s", ca,
				 e ? e : "unknown error");
			ERR_clear_error();
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	t = xcalloc(1, sizeof(*t));
	t->ca = xstrdup(ca);
	t->ctx = ctx;
	t->next = o->tls;
	o->tls = t;
	return ctx;
}

/* A reload may have changed the CA files: contexts are made again (a
 * live SSL keeps its own reference). */
static void
tls_ctx_flush(struct smtpo *o)
{
	while (o->tls) {
		struct tls_ctx *t = o->tls;
		o->tls = t->next;
		SSL_CTX_free(t->ctx);
		xfree(t->ca);
		xfree(t);
	}
}

static int
is_ip_literal(const char *host)
{
	uint8_t a[16];

	return inet_pton(AF_INET, host, a) == 1 ||
	       inet_pton(AF_INET6, host, a) == 1;
}

/* SNI is the host we connect to (never an IP address, RFC 6066 §3);
 * verify = ca checks the certificate against that same name: the MX
 * host name, or the smarthost of via (its IP address when via is an
 * address literal). */
static int
tls_set_peer(struct conn *cn)
{
	const char *host = cn->t[cn->ti].host;
	int literal = is_ip_literal(host);

	if (host[0] && !literal)
		SSL_set_tlsext_host_name(cn->ssl, host);
	if (cn->s.verify == CONF_VERIFY_NONE)
		return 0;
	if (host[0] == '\0')
		return -1;
	if (literal)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(cn->ssl),
						     host) == 1
			   ? 0
			   : -1;
	SSL_set_hostflags(cn->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return SSL_set1_host(cn->ssl, host) == 1 ? 0 : -1;
}

/* The handshake is done: with verify = ca it was verified by OpenSSL
 * (SSL_VERIFY_PEER fails the handshake otherwise); checked once more. */
static int
tls_verified(struct conn *cn)
{
	X509 *cert;

	if (cn->s.verify == CONF_VERIFY_NONE)
		return 1;
	cert = SSL_get1_peer_certificate(cn->ssl);
	if (cert == NULL)
		return 0;
	X509_free(cert);
	return SSL_get_verify_result(cn->ssl) == X509_V_OK;
}

/* The handshake failed; why says why (the engine prefixes "TLS
 * handshake failed"), with OpenSSL's exact verification error when the
 * certificate was the reason. */
static void
tls_failure(struct conn *cn, int done, char *why, size_t wl)
{
	long vr = SSL_get_verify_result(cn->ssl);
	unsigned long e = ERR_peek_last_error();

	if (cn->s.verify != CONF_VERIFY_NONE && (vr != X509_V_OK || done)) {
		snprintf(why, wl,
			 "certificate verification failed (verify = %s, "
			 "name %s): %s",
			 conf_verify_names[cn->s.verify], cn->t[cn->ti].host,
			 vr != X509_V_OK ? X509_verify_cert_error_string(vr)
					 : "no certificate");
		snprintf(cn->verify_fail, sizeof(cn->verify_fail),
			 "%.400s: TLS handshake failed: %.560s", cn->where,
			 why);
		log_warn("%s: TLS handshake failed: %s", cn->where, why);
	} else {
		snprintf(why, wl, "%s",
			 e && ERR_reason_error_string(e)
			     ? ERR_reason_error_string(e)
			     : "connection closed");
	}
	attrec_conn_tls_failed(&cn->rec, rec_tls_policy(&cn->s),
			       conf_verify_names[cn->s.verify],
			       cn->t[cn->ti].host, why);
	ERR_clear_error();
}

static void
conn_tls_step(struct conn *cn)
{
	int r = SSL_connect(cn->ssl), e;
	char why[600];

	if (r == 1 && tls_verified(cn)) {
		attrec_conn_tls_ok(
		    &cn->rec, SSL_get_version(cn->ssl),
		    SSL_get_cipher_name(cn->ssl),
		    cn->s.verify != CONF_VERIFY_NONE, rec_tls_policy(&cn->s),
		    conf_verify_names[cn->s.verify], cn->t[cn->ti].host);
		cn->io = IO_TALK;
		if (cn->implicit_pending)
			cn->implicit_pending = 0;
		else
			smtp_client_tls_done(cn->c, true, "");
		conn_pump(cn);
		return;
	}
	if (r != 1) {
		e = SSL_get_error(cn->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			conn_wait_io(
			    cn, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE,
			    cn->o->env->conf->delivery_timeout_command);
			return;
		}
	}
	tls_failure(cn, r == 1, why, sizeof(why));
	if (cn->implicit_pending) {
		char full[700];
		snprintf(full, sizeof(full), "TLS handshake failed: %s", why);
		conn_next_target(cn, full);
		return;
	}
	cn->io = IO_TALK;
	SSL_free(cn->ssl);
	cn->ssl = NULL;
	smtp_client_tls_done(cn->c, false, why);
	conn_pump(cn);
}

static void
conn_start_tls(struct conn *cn)
{
	char why[600] = "cannot set up TLS";
	SSL_CTX *ctx;

	/* RFC 3207 §4.2: nothing the server sent after its 220 counts */
	if (cn->in.len)
		log_debug("%s: discarded %zu plaintext octets sent after 220 "
			  "to STARTTLS",
			  cn->where, cn->in.len);
	buf_reset(&cn->in);
	smtp_reply_parser_free(&cn->rp);
	smtp_reply_parser_init(&cn->rp);
	ctx = tls_ctx_get(cn->o, &cn->s, why, sizeof(why));
	cn->ssl = ctx ? SSL_new(ctx) : NULL;
	if (cn->ssl == NULL || SSL_set_fd(cn->ssl, cn->fd) != 1 ||
	    tls_set_peer(cn) < 0) {
		if (cn->ssl) {
			SSL_free(cn->ssl);
			cn->ssl = NULL;
		}
		if (cn->implicit_pending) {
			conn_next_target(cn, why);
			return;
		}
		smtp_client_tls_done(cn->c, false, why);
		conn_pump(cn);
		return;
	}
	cn->io = IO_HANDSHAKE;
	conn_tls_step(cn);
}

/* ---- body --------------------------------------------------------------- */

/* The body could not be sent: the engine records the loss. */
static void
conn_body_lost(struct conn *cn, const char *why)
{
	smtp_client_lost(cn->c, why);
	cn->in_body = 0;
	conn_pump(cn);
}

/*
 * Send the message (trace headers, then the stored body) dot-stuffed.
 * Bytes are gathered into writes of SMTPO_BODY_CHUNK, the terminator
 * with the last of them: a small message is one write. Separate small
 * writes would each be a segment, and without TCP_NODELAY the second
 * would wait for the peer's delayed ACK (40 ms on Linux) per message.
 * Returns when it must wait for the socket.
 */
static void
conn_body(struct conn *cn)
{
	struct job *j = cn->cur;
	char in[SMTPO_BODY_CHUNK];

	for (;;) {
		ssize_t r;
		size_t used = 0;

		/* one write per chunk, the end of data in the write of the
		 * last bytes (TCP_NODELAY: each write is sent at once) */
		if (cn->out.len >= SMTPO_BODY_CHUNK || cn->body_end_pending) {
			int f = conn_flush(cn);
			if (f < 0) {
				conn_body_lost(cn, "write failed during DATA");
				return;
			}
			if (f == 0)
				return;
		}
		if (cn->body_end_pending) {
			cn->in_body = 0;
			cn->body_end_pending = 0;
			smtp_client_body_sent(cn->c);
			conn_pump(cn);
			return;
		}
		if ((size_t)cn->body_off < j->prepend.len) {
			r = (ssize_t)(j->prepend.len - (size_t)cn->body_off);
			if ((size_t)r > sizeof(in))
				r = sizeof(in);
			memcpy(in, j->prepend.data + cn->body_off, (size_t)r);
		} else {
			r = pread(j->body_fd, in, sizeof(in),
				  cn->body_off - (off_t)j->prepend.len);
		}
		if (r < 0) {
			conn_body_lost(cn, "cannot read the stored body");
			return;
		}
		if (r == 0) {
			if (smtp_dotstuff_end(&cn->ds, &cn->out) < 0 &&
			    (conn_flush(cn) != 1 ||
			     smtp_dotstuff_end(&cn->ds, &cn->out) < 0)) {
				conn_body_lost(cn, "output buffer full");
				return;
			}
			cn->body_end_pending = 1;
			continue;
		}
		while (used < (size_t)r) {
			used += smtp_dotstuff_feed(&cn->ds, in + used,
						   (size_t)r - used, &cn->out);
			if (used < (size_t)r && conn_flush(cn) != 1)
				break;
		}
		cn->body_off += (off_t)used;
	}
}

/* ---- transactions ------------------------------------------------------- */

/* The engine's outcomes of the transaction that just ended become the
 * job's, and the connection's record so far goes into the job's. */
static void
job_collect(struct conn *cn, struct job *j)
{
	for (size_t k = 0; k < j->tm.nrcpts; k++) {
		const struct smtp_client_outcome *oc =
		    smtp_client_outcome(cn->c, k);
		struct rres *r = &j->res[j->tidx[k]];
		if (oc == NULL || oc->result == SMTPC_PENDING)
			continue;
		r->result = oc->result;
		snprintf(r->status, sizeof(r->status), "%s", oc->status);
		xfree(r->reply);
		r->reply = xstrdup(oc->reply.data ? oc->reply.data : "");
		r->cmd = smtp_client_cmd_name(oc->cmd);
		r->code = oc->code;
		r->retry = 0;
		r->hop_dsn = smtp_client_ehlo(cn->c)->dsn;
	}
	snprintf(j->where, sizeof(j->where), "%s", cn->where);
	{
		const char *reason = "";
		enum smtpc_fail f = smtp_client_failure(cn->c, &reason);
		char d[64];
		snprintf(d, sizeof(d), "message %u on this connection",
			 cn->msgs);
		rec_addr(cn, rec_outcome(f, reason, cn->replies <= 1),
			 *reason ? reason : d);
		rec_hand(j, cn);
		attrec_conn_clear(&cn->rec);
	}
}

static struct conn *conn_find_idle(struct smtpo *o, const struct job *j,
				   int family);
static void conn_add_job(struct conn *cn, struct job *j);

/*
 * DESIGN §7 IPv6 rule: a 4.7.x/5.7.x reply over IPv6 (the receiver's
 * PTR/authentication policy for IPv6 senders, e.g. Gmail's "does not
 * meet IPv6 sending guidelines") is retried once over IPv4 at once when
 * the destination has IPv4 addresses; the queue marks it IPv4-first.
 */
/*
 * The retry takes over the session of the connection `from` the job was
 * refused on: the waiting jobs of the session move with it, `from` says
 * QUIT, and the IPv4 connection opens only once `from` is closed, so the
 * destination never sees one connection more than the queue counted.
 * Without a session (or from), the IPv4 connection opens at once.
 */
static void
conn_hand_over(struct conn *from, struct conn *to)
{
	struct job *w;

	while ((w = conn_wait_pop(from)) != NULL)
		conn_wait_push(to, w, 0);
	to->session = from->session; /* moved, not closed: no O_CLOSED */
	to->last_job = from->last_job;
	from->session = 0;
	from->last_job = 0;
	from->successor = to;
}

static int
job_v4_retry(struct job *j, int family, struct conn *from)
{
	size_t n = 0, first = 0, v4 = 0;
	struct conn *cn;
	char clean[1024];

	if (family != 6 || j->v4_retry)
		return 0;
	for (size_t i = 0; i < j->nt; i++)
		v4 += j->t[i].family == 4;
	if (v4 == 0)
		return 0;
	for (size_t i = 0; i < j->m.nrcpts; i++) {
		const struct rres *r = &j->res[i];
		if ((r->result == SMTPC_DEFERRED ||
		     r->result == SMTPC_BOUNCED) &&
		    r->code != 0 && is_policy_status(r->status)) {
			if (n++ == 0)
				first = i;
		}
	}
	if (n == 0)
		return 0;
	for (size_t i = 0; i < j->m.nrcpts; i++) {
		struct rres *r = &j->res[i];
		r->retry = (r->result == SMTPC_DEFERRED ||
			    r->result == SMTPC_BOUNCED) &&
			   r->code != 0 && is_policy_status(r->status);
	}
	j->v4_retry = 1;
	j->v6_reply = xstrdup(j->res[first].reply ? j->res[first].reply : "");
	{
		struct buf b;
		buf_init(&b, sizeof(clean));
		smtp_reply_sanitize(j->v6_reply, strlen(j->v6_reply), &b);
		snprintf(clean, sizeof(clean), "%s", b.data ? b.data : "");
		buf_free(&b);
	}
	log_info("%s: %s refused the message over IPv6 (%s); retrying over "
		 "IPv4 now",
		 j->msg, j->where, clean);
	if (from != NULL && from->session != 0 && from->successor == NULL) {
		cn = conn_new(j->o, j, 0, 4);
		conn_wait_push(cn, j, 0);
		conn_hand_over(from, cn);
		conn_order(cn);
		return 1;
	}
	cn = conn_find_idle(j->o, j, 4);
	if (cn != NULL) {
		conn_set_session(cn, 0, 0);
		conn_add_job(cn, j);
		return 1;
	}
	cn = conn_new(j->o, j, 0, 4);
	conn_wait_push(cn, j, 0);
	conn_order(cn);
	conn_connect(cn);
	return 1;
}

/* The job's transaction ended on connection cn, of this family. */
static void
job_done_on(struct job *j, int family, struct conn *cn)
{
	if (job_v4_retry(j, family, cn))
		return;
	job_finish(j);
}

static void
job_finish(struct job *j)
{
	for (size_t i = 0; i < j->m.nrcpts; i++)
		j->res[i].retry = 0;
	job_send_result(j, "4.4.2", "connection lost");
	job_free(j);
}

static void
conn_start_job(struct conn *cn, struct job *j)
{
	job_txn_prepare(j);
	cn->cur = j;
	cn->msgs++;
	if (smtp_client_msg_start(cn->c, &j->tm) != 0) {
		/* nothing to send (or no memory): the engine decides */
		cn->cur = NULL;
		j->verdict = SMTPO_V_OK;
		job_collect(cn, j);
		job_finish(j);
	}
}

static void
conn_idle(struct conn *cn)
{
	struct timeval tv = {(time_t)cn->o->env->conf->delivery_conn_idle, 0};

	cn->io = IO_IDLE;
	if (cn->ev == NULL)
		cn->ev = event_new(cn->o->env->base, cn->fd, EV_READ,
				   conn_on_event, cn);
	else
		event_assign(cn->ev, cn->o->env->base, cn->fd, EV_READ,
			     conn_on_event, cn);
	event_add(cn->ev, NULL);
	evtimer_add(cn->timer, &tv);
}

/* NEED_MSG: 1 to keep pumping, 0 to return (idle). */
static int
conn_need_msg(struct conn *cn)
{
	struct job *j;

	if (cn->cur != NULL) {
		int fam = cn->t[cn->ti].family;
		j = cn->cur;
		cn->cur = NULL;
		job_collect(cn, j);
		if (j->verdict == SMTPO_V_NONE)
			j->verdict = SMTPO_V_OK;
		job_done_on(j, fam, cn);
	}
	if (cn->successor == NULL && smtp_client_can_send(cn->c) &&
	    mono_now() - cn->born <
		(time_t)cn->o->env->conf->delivery_conn_max_age) {
		while ((j = conn_wait_pop(cn)) != NULL) {
			conn_start_job(cn, j);
			if (cn->cur != NULL)
				return 1;
		}
		conn_idle(cn);
		return 0;
	}
	smtp_client_quit(cn->c);
	return 1;
}

static void
conn_closed(struct conn *cn)
{
	const char *reason = "";
	enum smtpc_fail f = smtp_client_failure(cn->c, &reason);
	int tn = smtp_client_try_next(cn->c);
	int fam = cn->t[cn->ti].family;
	char why[600];

	snprintf(why, sizeof(why), "%s", reason[0] ? reason : "failed");
	if (cn->cur != NULL) {
		struct job *j = cn->cur;
		cn->cur = NULL;
		if (tn) {
			conn_wait_push(cn, j, 1); /* untouched */
		} else {
			job_collect(cn, j);
			j->verdict = f == SMTPC_FAIL_421 ||
					     f == SMTPC_FAIL_LOST ||
					     f == SMTPC_FAIL_TLS
					 ? SMTPO_V_FAILED
					 : SMTPO_V_OK;
			health_ok(&cn->t[cn->ti], cn->s.port);
			job_done_on(j, fam, cn);
			if (f != SMTPC_FAIL_NONE) {
				conn_close_socket(cn);
				conn_return_untried(cn);
				conn_free(cn);
				return;
			}
		}
	}
	if (cn->wait == NULL) {
		conn_free(cn);
		return;
	}
	if (f == SMTPC_FAIL_NONE || !tn) {
		/* message or age limit reached with jobs left */
		conn_reconnect(cn);
		return;
	}
	if (cn->msgs > 0) {
		/* a connection that carried mail before: closed while idle,
		 * or RSET refused; the destination is not at fault */
		conn_reconnect(cn);
		return;
	}
	rec_addr(cn, rec_outcome(f, why, cn->replies <= 1), why);
	if (f == SMTPC_FAIL_AUTH_REFUSED) {
		conn_auth_refused(cn, why);
		return;
	}
	if (f == SMTPC_FAIL_LOST || f == SMTPC_FAIL_GREETING)
		health_failed(&cn->t[cn->ti], cn->s.port);
	cn->io = IO_TALK; /* the address is already in the record */
	conn_next_target(cn, why);
}

static void
conn_pump(struct conn *cn)
{
	for (;;) {
		const char *data;
		size_t len;
		enum smtpc_action a = smtp_client_next(cn->c, &data, &len);

		switch (a) {
		case SMTPC_ACT_SEND:
			if (buf_add(&cn->out, data, len) < 0) {
				smtp_client_lost(cn->c, "output buffer full");
				continue;
			}
			conn_debug_lines(cn, "> ",
					 smtp_client_transcript(cn->c),
					 strlen(smtp_client_transcript(cn->c)));
			attrec_conn_sent(&cn->rec,
					 smtp_client_transcript(cn->c));
			continue;
		case SMTPC_ACT_READ: {
			int f = conn_flush(cn);
			if (f < 0) {
				smtp_client_lost(cn->c, "write failed");
				continue;
			}
			if (f == 0)
				return;
			if (conn_take_reply(cn))
				continue;
			if (cn->ssl && SSL_pending(cn->ssl) > 0) {
				if (conn_read(cn) < 0)
					smtp_client_lost(cn->c,
							 "TLS read failed");
				continue;
			}
			conn_wait_io(cn, EV_READ, conn_timeout(cn));
			return;
		}
		case SMTPC_ACT_STARTTLS:
			if (conn_flush(cn) != 1) {
				smtp_client_tls_done(cn->c, false,
						     "cannot flush before TLS");
				continue;
			}
			conn_start_tls(cn);
			return;
		case SMTPC_ACT_BODY:
			if (!cn->in_body) {
				cn->in_body = 1;
				cn->body_off = 0;
				smtp_dotstuff_init(&cn->ds);
			}
			conn_body(cn);
			return;
		case SMTPC_ACT_DOWNGRADE:
			smtp_client_msg_abort(
			    cn->c, "5.6.3",
			    "the message has 8-bit content and the server "
			    "does not offer 8BITMIME (7-bit conversion is "
			    "not implemented)");
			continue;
		case SMTPC_ACT_NEED_MSG:
			if (conn_need_msg(cn))
				continue;
			return;
		case SMTPC_ACT_CLOSE:
			conn_flush(cn);
			conn_closed(cn);
			return;
		}
	}
}

/* The server spoke (or closed) while the connection was idle: it is
 * not reused. TLS records that carry no data (tickets) are fine. */
static void
conn_idle_read(struct conn *cn)
{
	char tmp[512];

	if (cn->ssl) {
		int n = SSL_read(cn->ssl, tmp, sizeof(tmp));
		if (n <= 0) {
			int e = SSL_get_error(cn->ssl, n);
			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE)
				return; /* still idle, event stays armed */
		}
	}
	log_debug("%s: closed by the server while idle", cn->where);
	conn_free(cn);
}

static void
conn_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct conn *cn = arg;

	if (cn->io == IO_IDLE) {
		conn_idle_read(cn);
		return;
	}
	evtimer_del(cn->timer);
	if (cn->io == IO_HANDSHAKE) {
		conn_tls_step(cn);
		return;
	}
	if (cn->in_body) {
		conn_body(cn);
		return;
	}
	if (what & EV_READ) {
		int r = conn_read(cn);
		if (r < 0)
			smtp_client_lost(cn->c,
					 "connection closed by the server");
	}
	conn_pump(cn);
}

static void
conn_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *cn = arg;
	char why[128];

	if (cn->io == IO_IDLE) {
		/* linger over: QUIT */
		if (cn->ev)
			event_del(cn->ev);
		cn->io = IO_TALK;
		smtp_client_quit(cn->c);
		conn_pump(cn);
		return;
	}
	if (cn->io == IO_CONNECT) {
		v6_connect_failed(cn, ETIMEDOUT, "connection timed out");
		conn_next_target(cn, "connection timed out");
		return;
	}
	if (cn->implicit_pending) {
		conn_next_target(cn, "TLS handshake timed out");
		return;
	}
	snprintf(why, sizeof(why), "timeout in state %s",
		 smtp_client_state_name(cn->c));
	if (cn->ev)
		event_del(cn->ev);
	cn->in_body = 0;
	cn->io = IO_TALK;
	smtp_client_lost(cn->c, why);
	conn_pump(cn);
}

/* ---- connecting --------------------------------------------------------- */

/* connect() (or bind, socket) failed with err: the family health
 * memory hears of it, then the next address. */
static void
conn_connect_failed(struct conn *cn, int err, const char *what)
{
	char why[160];

	snprintf(why, sizeof(why), "%s: %s", what, strerror(err));
	v6_connect_failed(cn, err, why);
	conn_next_target(cn, why);
}

static void
conn_on_connected(evutil_socket_t fd, short what, void *arg)
{
	struct conn *cn = arg;
	struct smtp_client_params p = {0};
	int err = 0;
	socklen_t sl = sizeof(err);

	evtimer_del(cn->timer);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
		err = errno;
	if (err != 0) {
		conn_connect_failed(cn, err, "connect");
		return;
	}
	v6_connected(cn);
	p.helo = sess_helo(&cn->s, cn->t[cn->ti].family);
	p.tls = cn->s.tls == CONF_TLS_MUST   ? SMTPC_TLS_MUST
		: cn->s.tls == CONF_TLS_NONE ? SMTPC_TLS_OFF
					     : SMTPC_TLS_MAY;
	p.in_tls = cn->s.implicit_tls;
	p.auth_user = *cn->s.auth_user ? cn->s.auth_user : NULL;
	p.auth_pass = *cn->s.auth_user ? cn->s.auth_pass : NULL;
	p.max_msgs = cn->o->env->conf->delivery_conn_max_msgs;
	cn->c = smtp_client_new(&p);
	if (cn->c == NULL) {
		conn_next_target(cn, "invalid HELO name or credentials");
		return;
	}
	cn->born = mono_now();
	smtp_reply_parser_init(&cn->rp);
	if (cn->s.implicit_tls) {
		/* smtps://: TLS before the greeting */
		cn->implicit_pending = 1;
		conn_start_tls(cn);
		return;
	}
	cn->io = IO_TALK;
	conn_pump(cn);
}

/* [delivery]/[route] source-ipv4/6: what the receiver checks for PTR. */
static int
conn_bind_source(struct conn *cn, int family)
{
	const char *src = sess_source(&cn->s, family);
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
	return bind(cn->fd, (struct sockaddr *)&ss, sl);
}

static void
conn_connect(struct conn *cn)
{
	const struct target *t;
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	char addr[64];

	if (cn->ti >= cn->nt) {
		conn_give_up(cn);
		return;
	}
	/* DESIGN §7: at most max-addresses within max-attempt-time; the
	 * address in progress runs to its own timeouts, no new one starts */
	if (cn->ti > 0 &&
	    mono_ms() - cn->started >=
		cn->o->env->conf->delivery_max_attempt_time * 1000) {
		cn->time_up = 1;
		conn_give_up(cn);
		return;
	}
	t = &cn->t[cn->ti];
	addr_text(t, addr, sizeof(addr));
	snprintf(cn->where, sizeof(cn->where), "%s [%s]:%u", t->host, addr,
		 cn->s.port);
	if (t->family == 6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, t->addr, 16);
		s6->sin6_port = htons((uint16_t)cn->s.port);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, t->addr, 4);
		s4->sin_port = htons((uint16_t)cn->s.port);
		sl = sizeof(*s4);
	}
	cn->io = IO_CONNECT;
	attrec_conn_connected(&cn->rec);
	cn->replies = 0;
	cn->fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (cn->fd >= 0) {
		/* we batch our own writes (a pipelined group, a body chunk);
		 * Nagle would hold each one until the previous is ACKed */
		int one = 1;
		(void)setsockopt(cn->fd, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one));
	}
	if (cn->fd >= 0 && conn_bind_source(cn, t->family) < 0) {
		conn_connect_failed(cn, errno, "bind to source address");
		return;
	}
	if (cn->fd < 0 || (connect(cn->fd, (struct sockaddr *)&ss, sl) < 0 &&
			   errno != EINPROGRESS)) {
		conn_connect_failed(cn, errno, "connect");
		return;
	}
	cn->ev = event_new(cn->o->env->base, cn->fd, EV_WRITE,
			   conn_on_connected, cn);
	event_add(cn->ev, NULL);
	{
		struct timeval tv = {
		    (time_t)cn->o->env->conf->delivery_timeout_connect, 0};
		evtimer_add(cn->timer, &tv);
	}
}

static void
conn_next_target(struct conn *cn, const char *why)
{
	if (cn->io == IO_CONNECT) {
		health_failed(&cn->t[cn->ti], cn->s.port);
		rec_addr(cn,
			 strstr(why, "refused")	    ? "refused"
			 : strstr(why, "timed out") ? "timeout"
						    : "connect-failed",
			 why);
	} else if (cn->io != IO_TALK && cn->ti < cn->nt) {
		/* smtps: the handshake failed before any SMTP */
		rec_addr(cn, "tls-failed", why);
	}
	snprintf(cn->last_fail, sizeof(cn->last_fail), "%s: %s", cn->where,
		 why);
	log_info("%s: %s: %s; trying the next address",
		 cn->wait ? cn->wait->msg : "-", cn->where, why);
	conn_close_socket(cn);
	cn->ti++;
	conn_connect(cn);
}

/* ---- the connection cache ------------------------------------------------ */

/* An idle connection with the same key to one of the job's addresses. */
static struct conn *
conn_find_idle(struct smtpo *o, const struct job *j, int family)
{
	for (struct conn *cn = o->conns; cn; cn = cn->next) {
		const struct target *t;
		if (cn->io != IO_IDLE || cn->cur || cn->wait)
			continue;
		t = &cn->t[cn->ti];
		if (family && t->family != family)
			continue;
		if (!sess_same(&cn->s, &j->s, t->family))
			continue;
		if (mono_now() - cn->born >=
		    (time_t)cn->o->env->conf->delivery_conn_max_age)
			continue;
		/* verify = ca: the name checked is part of the key */
		for (size_t i = 0; i < j->nt; i++)
			if (j->t[i].family == t->family &&
			    memcmp(j->t[i].addr, t->addr, 16) == 0 &&
			    (cn->s.verify == CONF_VERIFY_NONE ||
			     strcasecmp(j->t[i].host, t->host) == 0))
				return cn;
	}
	return NULL;
}

/*
 * The first job of a new queue session may take an idle connection
 * (connection-idle-time) with the same key to the address this attempt would
 * try first anyway: it meets the address order as a fresh connection
 * would, without the connect, greeting and EHLO (DESIGN §7's connection
 * cache, "reuse only after RSET gets 250": the next transaction on it
 * starts with RSET). Not when the health memory or an IPv6 suspension
 * could put another address first: those attempts connect afresh.
 * Without this a destination whose mail leaves as fast as it arrives
 * (one job per queue session) paid a connection per message.
 */
static struct conn *
conn_adopt_idle(struct smtpo *o, const struct job *j)
{
	const struct target *first = &j->t[0];
	struct conn *cn;

	if (j->session == 0 || j->nt == 0 || health_dead(first, j->s.port))
		return NULL;
	if (first->family == 6)
		for (size_t i = 1; i < j->nt; i++)
			if (j->t[i].family == 4)
				return NULL; /* the IPv6 plan decides */
	for (cn = o->conns; cn; cn = cn->next) {
		const struct target *t = &cn->t[cn->ti];
		if (cn->io != IO_IDLE || cn->cur || cn->wait ||
		    t->family != first->family ||
		    memcmp(t->addr, first->addr, 16) != 0 ||
		    !sess_same(&cn->s, &j->s, t->family) ||
		    mono_now() - cn->born >=
			(time_t)o->env->conf->delivery_conn_max_age)
			continue;
		/* verify = ca: the name checked is part of the key */
		if (cn->s.verify != CONF_VERIFY_NONE &&
		    strcasecmp(first->host, t->host) != 0)
			continue;
		conn_set_session(cn, j->session, j->id);
		return cn;
	}
	return NULL;
}

static void
conn_add_job(struct conn *cn, struct job *j)
{
	conn_wait_push(cn, j, 0);
	if (cn->io == IO_IDLE) {
		if (cn->ev)
			event_del(cn->ev);
		evtimer_del(cn->timer);
		cn->io = IO_TALK;
		conn_pump(cn);
	}
}

/* ---- jobs from the queue ------------------------------------------------ */

/*
 * What the engine must know before MAIL (smtp_client.h): the longest
 * header and body lines, UTF-8 in the header block, and whether we
 * signed it (our DKIM-Signature is a prepend record; the stored body
 * is never ours to change). One sequential read of the body, the same
 * I/O the DATA phase does; an unreadable body shows up there.
 */
static void
job_shape(struct job *j)
{
	struct smtp_shape sh;
	char in[SMTPO_BODY_CHUNK];
	off_t off = 0;
	ssize_t r;

	smtp_shape_init(&sh);
	smtp_shape_feed(&sh, j->prepend.data ? j->prepend.data : "",
			j->prepend.len);
	while ((r = pread(j->body_fd, in, sizeof(in), off)) > 0) {
		smtp_shape_feed(&sh, in, (size_t)r);
		off += r;
	}
	j->m.hdr_utf8 = sh.hdr_8bit;
	j->m.hdr_line_max = sh.hdr_max;
	j->m.body_line_max = sh.body_max;
	j->m.signed_body =
	    j->prepend.len > 0 &&
	    smtp_has_field(j->prepend.data, j->prepend.len, "DKIM-Signature");
}

/* A job of session `session` ended without a connection: unless one
 * carries the session, tell the queue it holds none (O_CLOSED). */
static void
smtpo_session_unused(struct smtpo *o, uint64_t session, uint64_t job)
{
	struct conn none = {.o = o};

	if (session == 0)
		return;
	for (struct conn *cn = o->conns; cn; cn = cn->next)
		if (cn->session == session)
			return;
	conn_set_session(&none, session, job);
	conn_set_session(&none, 0, 0);
}

static void
smtpo_on_deliver(struct smtpo *o, const struct ipc_hdr *h, struct ipc_in *in,
		 int fd)
{
	struct job *j = xcalloc(1, sizeof(*j));
	struct conn *cn = NULL;
	uint32_t n, nt;

	j->o = o;
	j->id = h->id;
	j->body_fd = fd;
	snprintf(j->msg, sizeof(j->msg), "%s", ipc_get_str(in));
	snprintf(j->domain, sizeof(j->domain), "%s", ipc_get_str(in));
	j->sender = xstrdup(ipc_get_str(in));
	j->m.size = ipc_get_u64(in);
	j->m.eightbit = ipc_get_u8(in);
	j->m.smtputf8 = ipc_get_u8(in);
	j->m.ret = (enum smtp_ret)ipc_get_u8(in);
	j->envid = xstrdup(ipc_get_str(in));
	j->s.port = ipc_get_u32(in);
	j->s.tls = ipc_get_u8(in);
	j->s.implicit_tls = ipc_get_u8(in);
	j->s.verify = ipc_get_u8(in);
	j->s.ca = xstrdup(ipc_get_str(in));
	j->s.helo = xstrdup(ipc_get_str(in));
	j->s.helo6 = xstrdup(ipc_get_str(in));
	j->s.auth_user = xstrdup(ipc_get_str(in));
	j->s.auth_pass = xstrdup(ipc_get_str(in));
	j->s.source4 = xstrdup(ipc_get_str(in));
	j->s.source6 = xstrdup(ipc_get_str(in));
	{
		size_t plen;
		const void *pp = ipc_get_data(in, &plen);
		buf_init(&j->prepend, IPC_MAX_PAYLOAD);
		buf_add(&j->prepend, pp, plen);
	}
	n = ipc_get_u32(in);
	j->rcpts = xcalloc(n ? n : 1, sizeof(*j->rcpts));
	j->rcpt_ids = xcalloc(n ? n : 1, sizeof(*j->rcpt_ids));
	j->res = xcalloc(n ? n : 1, sizeof(*j->res));
	j->trc = xcalloc(n ? n : 1, sizeof(*j->trc));
	j->tidx = xcalloc(n ? n : 1, sizeof(*j->tidx));
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
	j->session = ipc_get_u64(in);
	ipc_end(in);
	j->m.sender = j->sender;
	j->m.rcpts = j->rcpts;
	j->m.nrcpts = n;
	j->m.envid = *j->envid ? j->envid : NULL;
	job_shape(j);
	if (j->nt == 0 || n == 0) {
		uint64_t session = j->session, id = j->id;
		job_fail_conn(j, j->domain, "", "", "");
		smtpo_session_unused(o, session, id);
		return;
	}
	/* the queue's session: the connection it already carries */
	if (j->session != 0)
		for (cn = o->conns; cn; cn = cn->next)
			if (cn->session == j->session) {
				conn_set_session(cn, j->session, j->id);
				break;
			}
	if (cn == NULL)
		cn = conn_adopt_idle(o, j);
	if (cn != NULL) {
		conn_add_job(cn, j);
		return;
	}
	cn = conn_new(o, j, j->session, 0);
	conn_wait_push(cn, j, 0);
	conn_order(cn);
	conn_connect(cn);
}

static void
smtpo_queue_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		int fd, void *arg)
{
	if (h->type != O_DELIVER)
		log_panic("smtp-out: unexpected message %u", h->type);
	smtpo_on_deliver(arg, h, in, fd);
}

/* The queue went away: the sessions it numbered mean nothing to the
 * next one (whose numbers start again at 1), so no connection keeps one. */
static void
smtpo_forget_queue(struct smtpo *o)
{
	if (o->queue != NULL)
		ipc_free(o->queue);
	o->queue = NULL;
	for (struct conn *cn = o->conns; cn; cn = cn->next)
		conn_set_session(cn, 0, 0);
}

static void
smtpo_queue_close(struct ipc *ipc, void *arg)
{
	/* jobs in flight finish; their results are dropped */
	smtpo_forget_queue(arg);
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
		smtpo_forget_queue(o);
		o->queue = ipc_new(o->env->base, fd, smtpo_queue_msg,
				   smtpo_queue_close, o);
		return;
	case M_RELOAD: {
		struct conf *nc = role_reload_conf(o->env, in);
		if (nc != NULL) {
			conf_free(o->env->conf);
			o->env->conf = nc;
			tls_ctx_flush(o);
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
	{
		/* fail at start, not at the first delivery */
		struct sess none = {.verify = CONF_VERIFY_NONE};
		char why[600];
		if (tls_ctx_get(&o, &none, why, sizeof(why)) == NULL)
			log_fatal("smtp-out: %s", why);
	}
	o.master = ipc_new(env->base, ROLE_MASTER_FD, smtpo_master_msg,
			   smtpo_master_close, &o);
	event_base_dispatch(env->base);
	return 0;
}
