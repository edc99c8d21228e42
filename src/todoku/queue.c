/*
 * queue — see queue.h.
 */
#include "todoku/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/addr.h"
#include "mail/attrec.h"
#include "mail/conf.h"
#include "mail/mx.h"
#include "mail/resolve.h"
#include "mail/schedule.h"
#include "mail/smtp_client.h"
#include "mail/smtp_cmd.h"
#include "mail/smtp_reply.h"
#include "mail/srs.h"
#include "todoku/ctl.h"
#include "todoku/dmarc_agg.h"
#include "todoku/maildir.h"
#include "todoku/proto.h"
#include "todoku/role.h"
#include "todoku/smtp_out.h"
#include "todoku/spool.h"

struct queue;

struct qpeer {
	struct queue *q;
	struct ipc *ipc;
	enum role_id role;
	unsigned instance;
	struct qpeer *next;
};

struct txn {
	struct queue *q;
	struct qpeer *peer; /* NULL once the peer went away */
	uint64_t id;
	struct spool_msg *msg; /* NULL while committing */
	int committing;
	unsigned owed; /* chunks stored since the last Q_CREDIT */
	struct txn *next;
};

struct entry {
	uint64_t rcpt_id;
	char msg[SPOOL_ID_LEN + 1];
	char *sender;
	char *addr;
	int forwarded; /* came from an alias or catch-all (orig != addr) */
	int state;
	unsigned attempts;
	time_t next_attempt;
	time_t arrival;
	int held;
	int in_flight;
	int at_local;	  /* L_DELIVER sent, no L_RESULT yet */
	int warned;	  /* a delay warning went out */
	int deleted;	  /* deleted by the operator while in flight */
	unsigned crashes; /* attempts that died with local or smtp-out */
	unsigned notify;  /* DSN NOTIFY bits (smtp_cmd.h), 0: not given */
	char *orcpt;	  /* DSN ORCPT or NULL: passed to the next hop */
	int hop;	  /* how the last delivery went: QUEUE_HOP_* */
	uint64_t job;	  /* the remote job it went with last (rjob id) */
	struct entry *next, *prev; /* q->entries */
	/* the indexes (index_*, heap_*): rcpt_id and message buckets, and the
	 * position in the next-attempt heap */
	struct entry *idnext, *idprev, *mnext, *mprev;
	size_t hpos;
};

/* Where a delivered recipient went, for its success report (RFC 3461
 * §6.2.1): final delivery here, or a next hop with or without DSN. */
enum { QUEUE_HOP_LOCAL = 0, QUEUE_HOP_PLAIN, QUEUE_HOP_DSN };

struct attempt {
	struct queue *q;
	struct entry *e;
	struct spool_result res;
	char where[600];
	char reply[4096];
	char status[16];
	char bounce_to[ADDR_PATH_MAX + 2];
	char *remote_mta;
	char *remote_addr;
	/* the structured record: facts borrowed until attempt_submit, which
	 * packs it (rec) */
	struct attrec_view view;
	char route_via[ADDR_DOMAIN_MAX + 300];
	char command[16];
	char next_reason[300];
	struct ipc_out rec; /* the record, packed (attrec_pack) */
};

struct rjob;

struct ctlconn {
	struct queue *q;
	int fd;
	struct event *ev;
	char in[CTL_REQUEST_MAX];
	size_t inlen;
	struct buf out;
	size_t off;
};

struct queue {
	struct role_env *env;
	struct spool *spool;
	struct ipc *master;
	struct qpeer *peers;
	struct qpeer *local;
	struct qpeer *lookup;
	unsigned nsmtp_out; /* smtp-out peers connected (any number) */
	struct rjob *rjobs;
	uint64_t next_rjob;
	struct txn *txns;
	struct entry *entries;
	/* indexes of entries (entry_add/entry_remove keep them): buckets by
	 * rcpt_id and by message id (ncap each, a power of two), and a
	 * binary min-heap by entry_key (every entry, nheap of them) */
	struct entry **byid, **bymsg;
	size_t ncap, nent;
	struct entry **heap;
	size_t nheap, heapcap;
	unsigned inflight;
	struct event *tick;
	struct event *kick; /* queue_kick: one decision per loop pass */
	int kicked;
	struct event *credit_ev; /* queue_owe_credit: after the read pass */
	int credit_due;
	int ctl_fd;
	struct event *ctl_ev;
	int stopping;
	time_t wake_at;		      /* next decision the tick must not skip */
	struct attempt *last_attempt; /* set by queue_finish */
	int defer_submit; /* queue_finish: leave submission to the caller */
	struct dmarc_agg *dmarc;
	time_t dmarc_next; /* next timed report run */
};

static void queue_dispatch(struct queue *q);
static void queue_kick(struct queue *q);

/* ---- scheduler entries ---------------------------------------------- */

/* The scheduler's parameters (mail/schedule) from the configuration. */
static void
queue_sched_params(const struct conf *c, struct sched_params *p)
{
	p->dest_init = (double)c->delivery_dest_conc;
	p->dest_max = (double)c->delivery_dest_conc_max;
	p->dead_after = c->delivery_dead_after;
	p->max_sessions = c->delivery_max_sessions;
	p->retry = c->retry;
	p->nretry = c->nretry;
	p->warn_after = c->warn_after;
	p->give_up_after = c->give_up_after;
}

/*
 * The entry indexes, so no event pays for the whole queue (a deferred
 * backlog of tens of thousands of recipients is normal during an
 * outage): rcpt_id -> entry (delivery results), message id -> its
 * entries (grouping a job), and a binary min-heap of every entry by
 * entry_key, the next-attempt index of DESIGN §7: the entries due now
 * are the heap's top, found without looking at the others, and the
 * first of the others gives the wake-up (queue_dispatch). An entry in
 * flight keeps its place and key (it is skipped while it is due); a held
 * one sits at the bottom (ENTRY_NEVER). next_attempt and held change
 * only through entry_set_next and entry_set_held, which move it.
 */
#define ENTRY_NEVER ((time_t)INT64_MAX)

static time_t
entry_key(const struct entry *e)
{
	return e->held ? ENTRY_NEVER : e->next_attempt;
}

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

static size_t
bucket_id(const struct queue *q, uint64_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 20) & (q->ncap - 1);
}

static size_t
bucket_msg(const struct queue *q, const char *msg)
{
	return (size_t)hash_str(msg) & (q->ncap - 1);
}

static void
index_link(struct queue *q, struct entry *e)
{
	struct entry **b = &q->byid[bucket_id(q, e->rcpt_id)];

	e->idprev = NULL;
	e->idnext = *b;
	if (*b != NULL)
		(*b)->idprev = e;
	*b = e;
	/* a message's entries keep the order of q->entries (newest first) */
	b = &q->bymsg[bucket_msg(q, e->msg)];
	e->mprev = NULL;
	e->mnext = *b;
	if (*b != NULL)
		(*b)->mprev = e;
	*b = e;
}

static void
index_unlink(struct queue *q, struct entry *e)
{
	if (e->idprev != NULL)
		e->idprev->idnext = e->idnext;
	else
		q->byid[bucket_id(q, e->rcpt_id)] = e->idnext;
	if (e->idnext != NULL)
		e->idnext->idprev = e->idprev;
	if (e->mprev != NULL)
		e->mprev->mnext = e->mnext;
	else
		q->bymsg[bucket_msg(q, e->msg)] = e->mnext;
	if (e->mnext != NULL)
		e->mnext->mprev = e->mprev;
}

/* Buckets for at least one per entry; rebuilt from q->entries, oldest
 * first, so each bucket keeps the list's order. */
static void
index_grow(struct queue *q)
{
	struct entry *last = NULL;

	if (q->nent < q->ncap)
		return;
	xfree(q->byid);
	xfree(q->bymsg);
	q->ncap = q->ncap ? q->ncap * 2 : 1024;
	q->byid = xcalloc(q->ncap, sizeof(*q->byid));
	q->bymsg = xcalloc(q->ncap, sizeof(*q->bymsg));
	for (struct entry *e = q->entries; e; e = e->next)
		last = e;
	for (struct entry *e = last; e; e = e->prev)
		index_link(q, e);
}

static void
heap_put(struct queue *q, size_t i, struct entry *e)
{
	q->heap[i] = e;
	e->hpos = i;
}

static void
heap_up(struct queue *q, size_t i)
{
	struct entry *e = q->heap[i];

	while (i > 0 && entry_key(q->heap[(i - 1) / 2]) > entry_key(e)) {
		heap_put(q, i, q->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_put(q, i, e);
}

static void
heap_down(struct queue *q, size_t i)
{
	struct entry *e = q->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= q->nheap)
			break;
		if (c + 1 < q->nheap &&
		    entry_key(q->heap[c + 1]) < entry_key(q->heap[c]))
			c++;
		if (entry_key(q->heap[c]) >= entry_key(e))
			break;
		heap_put(q, i, q->heap[c]);
		i = c;
	}
	heap_put(q, i, e);
}

static void
heap_add(struct queue *q, struct entry *e)
{
	if (q->nheap == q->heapcap) {
		q->heapcap = q->heapcap ? q->heapcap * 2 : 1024;
		q->heap = xrealloc(q->heap, q->heapcap * sizeof(*q->heap));
	}
	heap_put(q, q->nheap++, e);
	heap_up(q, e->hpos);
}

static void
heap_del(struct queue *q, struct entry *e)
{
	size_t i = e->hpos;
	struct entry *last = q->heap[--q->nheap];

	if (last == e)
		return;
	heap_put(q, i, last);
	heap_up(q, i);
	heap_down(q, last->hpos);
}

/* The key of e changed: move it to its place. */
static void
heap_moved(struct queue *q, struct entry *e)
{
	heap_up(q, e->hpos);
	heap_down(q, e->hpos);
}

static void
entry_set_next(struct queue *q, struct entry *e, time_t t)
{
	e->next_attempt = t;
	heap_moved(q, e);
}

static void
entry_set_held(struct queue *q, struct entry *e, int held)
{
	e->held = held;
	heap_moved(q, e);
}

static struct entry *
entry_add(struct queue *q, uint64_t rcpt_id, const char *msg,
	  const char *sender, const char *addr, time_t next, time_t arrival)
{
	struct entry *e = xcalloc(1, sizeof(*e));

	e->rcpt_id = rcpt_id;
	snprintf(e->msg, sizeof(e->msg), "%s", msg);
	e->sender = xstrdup(sender);
	e->addr = xstrdup(addr);
	e->next_attempt = next;
	e->arrival = arrival;
	e->next = q->entries;
	if (e->next != NULL)
		e->next->prev = e;
	q->entries = e;
	q->nent++;
	if (q->nent >= q->ncap)
		index_grow(q); /* links e with the others */
	else
		index_link(q, e);
	heap_add(q, e);
	q->wake_at = 0; /* decide at the next tick at the latest */
	return e;
}

static void
entry_remove(struct queue *q, struct entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		q->entries = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	index_unlink(q, e);
	heap_del(q, e);
	q->nent--;
	xfree(e->sender);
	xfree(e->addr);
	xfree(e->orcpt);
	xfree(e);
}

static struct entry *
queue_find_entry(struct queue *q, uint64_t rcpt_id)
{
	if (q->ncap == 0)
		return NULL;
	for (struct entry *e = q->byid[bucket_id(q, rcpt_id)]; e; e = e->idnext)
		if (e->rcpt_id == rcpt_id)
			return e;
	return NULL;
}

/* A recipient the client did not name itself (resolve_forwarded). */
static int
rcpt_forwarded(const char *orig, const char *addr)
{
	return resolve_forwarded(orig, addr);
}

static void
queue_load_one(void *arg, const struct spool_pending *p)
{
	struct queue *q = arg;
	struct sched_params sp;
	struct entry *e;

	/* a stored time further ahead than the largest backoff (a clock
	 * that jumped back, a shorter schedule) is clamped (DESIGN §7) */
	queue_sched_params(q->env->conf, &sp);
	e = entry_add(q, p->rcpt_id, p->msg, p->sender, p->addr,
		      sched_clamp(&sp, p->next_attempt, clock_now()),
		      p->arrival);

	e->forwarded = rcpt_forwarded(p->orig, p->addr);
	e->state = p->state;
	e->attempts = p->attempts;
	entry_set_held(q, e, p->held);
	e->crashes = p->crashes;
	e->warned = p->warned;
	e->notify = p->notify;
	e->orcpt = p->orcpt && *p->orcpt ? xstrdup(p->orcpt) : NULL;
}

/* ---- delivery results ----------------------------------------------- */

static void
queue_on_recorded(void *arg, int err, struct spool_result *r)
{
	struct attempt *a = arg;
	struct queue *q = a->q;
	struct entry *e = a->e;

	if (err) {
		log_err("%s: cannot record attempt for <%s> (spool error %d); "
			"will retry",
			e->msg, e->addr, err);
		e->in_flight = 0;
		entry_set_next(q, e, clock_now() + 60);
	} else {
		if (r->bounce_id[0]) {
			log_info("%s: sender %s notification: %s", e->msg,
				 r->warn && r->new_state == SPOOL_DEFERRED
				     ? "delay"
				     : "non-delivery",
				 r->bounce_id);
			entry_add(q, r->bounce_rcpt_id, r->bounce_id, "",
				  r->bounce_to, r->time, r->time);
		}
		if (r->msg_done)
			log_info("%s: removed", e->msg);
		if (r->hold) {
			entry_set_held(q, e, 1);
			log_warn("%s: held: %s", e->msg, r->reply);
		}
		if (r->new_state >= SPOOL_DELIVERED) {
			entry_remove(q, e);
		} else {
			e->state = r->new_state;
			e->attempts++;
			entry_set_next(q, e, r->next_attempt);
			e->in_flight = 0;
			/* waiting again: the next decision is due by then */
			if (e->next_attempt < q->wake_at)
				q->wake_at = e->next_attempt;
		}
	}
	xfree(a->remote_mta);
	xfree(a->remote_addr);
	ipc_out_free(&a->rec);
	xfree(a);
	queue_kick(q);
}

/* Where a report to sender goes (a local alias resolved to its first
 * address), allocated; NULL if sender (not <>) does not parse. */
static char *
queue_report_target(struct queue *q, const char *sender)
{
	struct mailaddr m;
	struct resolve_list l = {0};
	char out[ADDR_PATH_MAX + 2];

	if (addr_parse_mailbox(sender, strlen(sender), ADDR_F_UTF8, &m) !=
	    ADDR_OK)
		return NULL;
	snprintf(out, sizeof(out), "%s", sender);
	if (resolve_expand(q->env->conf, &m, &l) == 0 && l.n > 0)
		addr_format(&l.items[0].addr, out, sizeof(out));
	resolve_list_free(&l);
	return xstrdup(out);
}

/* Where a DSN for this message goes: never to <>. */
static void
queue_bounce_target(struct queue *q, struct attempt *a)
{
	struct mailaddr m;
	struct resolve_list l = {0};

	if (a->e->sender[0] == '\0')
		return;
	if (addr_parse_mailbox(a->e->sender, strlen(a->e->sender), ADDR_F_UTF8,
			       &m) != ADDR_OK)
		return;
	if (resolve_expand(q->env->conf, &m, &l) == 0 && l.n > 0)
		addr_format(&l.items[0].addr, a->bounce_to,
			    sizeof(a->bounce_to));
	else
		snprintf(a->bounce_to, sizeof(a->bounce_to), "%s",
			 a->e->sender);
	resolve_list_free(&l);
	a->res.bounce_to = a->bounce_to;
}

/* remote: "host" or "host [address]" (the smtp-out "where" prefix). */
static void
attempt_set_remote(struct attempt *a, const char *remote)
{
	const char *sp = strstr(remote, " [");
	const char *end = sp ? strchr(sp + 2, ']') : NULL;

	if (end == NULL) {
		a->remote_mta = xstrdup(remote);
		return;
	}
	a->remote_mta = xstrndup(remote, (size_t)(sp - remote));
	a->remote_addr = xstrndup(sp + 2, (size_t)(end - sp - 2));
}

/* Why a deferred recipient is next tried when it is (the record's
 * next_reason): the retry schedule step, the deadline, or a hold. */
static void
attempt_next_reason(struct attempt *a, const struct conf *c, time_t now,
		    const struct sched_temp *t)
{
	const struct entry *e = a->e;
	size_t step = e->attempts; /* sched_retry_delay's index */

	if (e->held)
		snprintf(a->next_reason, sizeof(a->next_reason),
			 "held by the operator: not tried before `queue "
			 "release`");
	else if (t->next >= t->retry_until)
		snprintf(a->next_reason, sizeof(a->next_reason),
			 "last retry, at the give-up-after deadline (%llu s "
			 "after arrival)",
			 (unsigned long long)c->give_up_after);
	else if (c->nretry == 0)
		snprintf(a->next_reason, sizeof(a->next_reason),
			 "retry after %lld s (default interval)",
			 (long long)(t->next - now));
	else
		snprintf(a->next_reason, sizeof(a->next_reason),
			 "retry schedule step %zu of %zu: %lld s%s",
			 (step < c->nretry ? step : c->nretry - 1) + 1,
			 c->nretry, (long long)(t->next - now),
			 step >= c->nretry ? " (the last interval repeats)"
					   : "");
}

/* The record's route and facts: given by the caller (facts), or, for
 * outcomes decided without a route, from where ("maildir PATH": local). */
static void
attempt_set_facts(struct attempt *a, const struct attrec_view *facts,
		  const char *where, time_t now)
{
	if (facts != NULL) {
		a->view = *facts;
		snprintf(a->route_via, sizeof(a->route_via), "%s",
			 facts->route_via ? facts->route_via : "");
		snprintf(a->command, sizeof(a->command), "%s",
			 facts->command ? facts->command : "");
	} else if (strncmp(where, "maildir ", 8) == 0) {
		a->view.route_kind = "local";
		snprintf(a->route_via, sizeof(a->route_via), "%s", where + 8);
	} else {
		a->view.route_kind =
		    strcmp(where, "local") == 0 ? "local" : "none";
	}
	a->view.route_via = a->route_via[0] ? a->route_via : NULL;
	a->view.command = a->command[0] ? a->command : NULL;
	a->view.time = now;
}

/* Pack the record (the facts are borrowed only until here) and store
 * the attempt. */
static void
attempt_submit(struct queue *q, struct attempt *a)
{

	if (a->res.hold)
		snprintf(a->next_reason, sizeof(a->next_reason),
			 "message held: %.280s", a->reply);
	a->view.result = a->res.result;
	a->view.status = a->status;
	a->view.reply = a->reply;
	a->view.where = a->where;
	a->view.next_attempt =
	    a->res.new_state == SPOOL_DEFERRED ? a->res.next_attempt : 0;
	a->view.next_reason = a->next_reason;
	/* stored once, packed; JSON and text are rendered when shown */
	ipc_out_init(&a->rec);
	attrec_pack(&a->view, &a->rec);
	a->view.dns = NULL;
	a->view.conn = NULL;
	a->res.rec = a->rec.b.data;
	a->res.nrec = a->rec.b.len;
	spool_record(q->spool, &a->res, queue_on_recorded, a);
}

/*
 * Record the outcome of one attempt. kind: MAILDIR_OK, MAILDIR_TEMP or
 * MAILDIR_PERM; status is the enhanced status code. facts: the route,
 * DNS answers and connection facts of the structured record (borrowed
 * until attempt_submit), or NULL.
 */
static void
queue_finish_ex(struct queue *q, struct entry *e, int kind, const char *status,
		const char *where, const char *reply, const char *remote_mta,
		const struct attrec_view *facts)
{
	struct attempt *a;
	const struct conf *c = q->env->conf;
	time_t now = clock_now();
	struct sched_params sp;
	struct sched_rcpt sr = {e->arrival, e->attempts, (uint8_t)e->held,
				(uint8_t)e->warned, e->sender[0] == '\0'};
	struct sched_temp t;

	queue_sched_params(c, &sp);
	sched_on_temp(&sp, &sr, now, (uint32_t)random(), &t);
	if (e->deleted) {
		log_info("%s: to=<%s>: attempt ended after the message was "
			 "deleted; result dropped",
			 e->msg, e->addr);
		entry_remove(q, e);
		return;
	}
	a = xcalloc(1, sizeof(*a));
	a->q = q;
	a->e = e;
	if (remote_mta && *remote_mta)
		attempt_set_remote(a, remote_mta);
	a->res.remote_mta = a->remote_mta;
	a->res.remote_addr = a->remote_addr;
	snprintf(a->where, sizeof(a->where), "%s", where);
	snprintf(a->reply, sizeof(a->reply), "%s", reply);
	snprintf(a->status, sizeof(a->status), "%s", status);
	a->res.rcpt_id = e->rcpt_id;
	snprintf(a->res.msg, sizeof(a->res.msg), "%s", e->msg);
	a->res.time = now;
	a->res.where = a->where;
	a->res.reply = a->reply;
	a->res.status = a->status;
	a->res.reporting_mta = c->hostname;
	a->res.final_rcpt = e->addr;
	attempt_set_facts(a, facts, where, now);
	if (kind == MAILDIR_TEMP && t.expire) {
		kind = MAILDIR_PERM;
		snprintf(a->status, sizeof(a->status), "4.4.7");
		snprintf(a->reply, sizeof(a->reply),
			 "message expired after %llu s in the queue; last "
			 "error: %s",
			 (unsigned long long)c->give_up_after, reply);
		snprintf(a->next_reason, sizeof(a->next_reason),
			 "expired: give-up-after (%llu s) has passed since "
			 "arrival",
			 (unsigned long long)c->give_up_after);
	}
	if (kind == MAILDIR_OK) {
		snprintf(a->next_reason, sizeof(a->next_reason), "delivered");
		a->res.new_state = SPOOL_DELIVERED;
		a->res.result = "delivered";
		if ((e->notify & SMTP_NOTIFY_SUCCESS) &&
		    e->hop != QUEUE_HOP_DSN) {
			/* the next hop with DSN reports success itself */
			a->res.success = e->hop == QUEUE_HOP_LOCAL
					     ? SPOOL_DELIVERED
					     : SPOOL_RELAYED;
			queue_bounce_target(q, a);
		}
		log_info("%s: to=<%s>, relay=%s, status=delivered", e->msg,
			 e->addr, where);
	} else if (kind == MAILDIR_TEMP) {
		a->res.new_state = SPOOL_DEFERRED;
		a->res.result = "deferred";
		/* the last retry falls on the give-up-after deadline */
		a->res.next_attempt = t.next;
		attempt_next_reason(a, c, now, &t);
		if (t.warn) {
			/* RFC 3464 Action: delayed, once per recipient */
			a->res.warn = 1;
			a->res.retry_until = t.retry_until;
			queue_bounce_target(q, a);
			e->warned = 1;
		}
		log_info("%s: to=<%s>, relay=%s, status=deferred (%s %s)",
			 e->msg, e->addr, where, status, reply);
	} else {
		a->res.new_state = SPOOL_BOUNCED;
		a->res.result = "bounced";
		if (a->next_reason[0] == '\0')
			snprintf(a->next_reason, sizeof(a->next_reason),
				 "permanent failure: not retried");
		queue_bounce_target(q, a);
		log_info("%s: to=<%s>, relay=%s, status=bounced (%s %s)%s",
			 e->msg, e->addr, where, a->status, a->reply,
			 a->res.bounce_to ? ""
					  : "; no notification to the null "
					    "sender");
	}
	q->last_attempt = a;
	if (!q->defer_submit)
		attempt_submit(q, a);
}

static void
queue_finish(struct queue *q, struct entry *e, int kind, const char *status,
	     const char *where, const char *reply)
{
	queue_finish_ex(q, e, kind, status, where, reply, NULL, NULL);
}

/* ---- local delivery -------------------------------------------------- */

struct dispatch {
	struct queue *q;
	struct entry *e;
	char mailbox[PATH_MAX];
};

static void
queue_on_body(void *arg, int err, int body_fd, const char *prepend,
	      size_t prepend_len, const struct spool_msginfo *info)
{
	struct dispatch *d = arg;
	struct queue *q = d->q;
	struct entry *e = d->e;
	struct ipc_out o;
	struct buf prefix;

	if (err || q->local == NULL) {
		if (err)
			log_err("%s: cannot read the stored message", e->msg);
		e->in_flight = 0;
		entry_set_next(q, e, clock_now() + (err ? 60 : 1));
		q->wake_at = 0;
		q->inflight--;
		queue_kick(q);
		xfree(d);
		if (e->deleted)
			entry_remove(q, e);
		return;
	}
	buf_init(&prefix, IPC_MAX_PAYLOAD / 2);
	buf_addf(&prefix, "Return-Path: <%s>\r\nDelivered-To: %s\r\n",
		 e->sender, e->addr);
	buf_add(&prefix, prepend, prepend_len);
	ipc_out_init(&o);
	ipc_put_str(&o, e->msg);
	ipc_put_u64(&o, (uint64_t)e->arrival);
	ipc_put_str(&o, e->addr);
	ipc_put_str(&o, d->mailbox);
	ipc_put_str(&o, prefix.data ? prefix.data : "");
	ipc_send(q->local->ipc, L_DELIVER, e->rcpt_id, body_fd, &o);
	ipc_out_free(&o);
	e->at_local = 1;
	buf_free(&prefix);
	xfree(d);
}

static void
queue_start_local(struct queue *q, struct entry *e, const char *mailbox)
{
	struct dispatch *d = xcalloc(1, sizeof(*d));

	d->q = q;
	d->e = e;
	snprintf(d->mailbox, sizeof(d->mailbox), "%s", mailbox);
	e->in_flight = 1;
	q->inflight++;
	spool_load_body(q->spool, e->msg, queue_on_body, d);
}

/* ---- remote delivery ---------------------------------------------------- */

/*
 * Destinations (DESIGN §7). After routing, a job belongs to the
 * destination of its next hop: the sorted set of MX host names, or the
 * [route]'s smarthost (host and port: routes to one relay share it). The
 * destination owns the concurrency limit with slow start (DEST_INIT, +1/c per
 * successful session, -1/c per connection-level failure, never for
 * MAIL/RCPT/DATA replies), the dead state (DEST_DEAD_AFTER consecutive failures
 * at c = 1: the backlog is deferred with one reason and one job probes per
 * backoff step, the steps being [queue] retry), and the IPv4-first mark. The
 * arithmetic and the decisions are mail/schedule's (pure, property
 * tested); this file keeps the sessions and carries the decisions out.
 *
 * Sessions: jobs ready at a destination are sent to smtp-out with a
 * session id; jobs with the same id share one connection. A session has
 * the connection key of the job that opened it (rjob_conn_key: port,
 * TLS policy and verify name, HELO, SASL identity, source addresses,
 * address families); only jobs with that key join it, so mail for two
 * routes to one relay that differ in HELO, say, never shares a
 * connection, while identical routes do. A ready job joins an open
 * session with its key that has fewer than DEST_SESSION_DEPTH jobs
 * unanswered (and room under the per-connection limits) before a new
 * session is opened, so a burst for one destination uses few
 * connections; a new session needs a free slot under the destination's
 * limit and under [delivery] max-sessions overall.
 *
 * A session holds its slot for as long as smtp-out holds a connection
 * for it, not only while it has jobs: when its last job is answered its
 * outcome counts for slow start (osess_feedback) and it stays, idle,
 * joinable by the next ready job (smtp-out keeps the connection
 * [delivery] connection-idle-time), until smtp-out reports the connection
 * closed (O_CLOSED). So the next hop never sees more connections than the
 * limit, a connection in its idle linger or its QUIT included. The
 * overall limit counts busy sessions only. The IPv4 retry after an
 * IPv6 policy refusal takes the session over in smtp-out (its IPv4
 * connection opens after the IPv6 one closed), so it stays within the
 * session's slot.
 */
struct dest {
	char *key;
	struct sched_dest st; /* limit, sessions, dead state: mail/schedule */
	time_t v4first_until;
	struct rjob *ready, **ready_tail;
	time_t last_used;
	struct dest *next;
};

struct osess {
	uint64_t id;
	struct dest *d;
	struct qpeer *peer; /* the smtp-out process holding its connection */
	char *ckey;	    /* connection key of its jobs (rjob_conn_key) */
	unsigned pending;   /* jobs sent, not answered */
	unsigned msgs;
	uint64_t last_job; /* the last job sent into it (O_CLOSED names it) */
	time_t born;
	time_t idle_since; /* pending fell to 0 then */
	int closed;	   /* no more jobs: its connection failed or is gone */
	int gone;	   /* smtp-out closed its connection (O_CLOSED) */
	int ok, failed, probe; /* outcome since the last feedback */
	struct osess *next;
};

struct rtarget {
	uint8_t family;
	uint8_t addr[16];
	size_t alen;
	char *host;
};

/* One outbound attempt: the due recipients of one message at one domain. */
struct rjob {
	struct queue *q;
	uint64_t id;
	char msg[SPOOL_ID_LEN + 1];
	char domain[ADDR_DOMAIN_MAX + 1];
	char *sender;
	struct entry **ents;
	size_t n;
	int phase; /* 0 route, 1 body, 2 smtp-out, 3 ready at its dest */
	struct attrec_dns_set *dns;	/* the same, typed, for the record */
	struct qconf *conf;		/* the configuration it started with */
	const struct conf_route *route; /* smarthost (in conf), or NULL: MX */
	struct rtarget *t;
	size_t nt;
	struct dest *d;
	struct osess *s;
	char *ckey;		/* connection key (rjob_conn_key), phase 3 */
	int body_fd;		/* phase 3: dup of the stored body */
	struct ipc_out deliver; /* O_DELIVER up to the recipients */
	unsigned reparks;	/* connection failures that returned it */
	struct rjob *dnext;	/* in d->ready */
	struct rjob *next;
};

/*
 * The configuration an outbound attempt started with. A reload replaces
 * the current one; the old one is freed once no attempt holds it, so an
 * attempt routed before a SIGHUP finishes with the route (and HELO, TLS
 * policy, credentials) it was routed with, and the next attempt uses the
 * new file (DESIGN §7: queued mail re-routes at its next attempt).
 */
struct qconf {
	struct conf *c;
	unsigned refs;
};

/* wraps q->env->conf once an attempt holds it */
static struct qconf *qconf_now;

static struct qconf *
qconf_hold(struct queue *q)
{
	if (qconf_now == NULL) {
		qconf_now = xcalloc(1, sizeof(*qconf_now));
		qconf_now->c = q->env->conf;
		qconf_now->refs = 1; /* the current configuration's own */
	}
	qconf_now->refs++;
	return qconf_now;
}

static void
qconf_drop(struct qconf *k)
{
	if (k != NULL && --k->refs == 0) {
		conf_free(k->c);
		xfree(k);
	}
}

static struct dest *dests;
static struct osess *osessions;
static uint64_t next_osess;
static uint32_t dest_cursor; /* round-robin position (mail/schedule) */

static void dest_pump_all(struct queue *q);

static void
rjob_free(struct queue *q, struct rjob *r)
{
	for (struct rjob **pp = &q->rjobs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	q->inflight--;
	queue_kick(q); /* a slot is free: its result need not be committed */
	if (r->body_fd >= 0)
		close(r->body_fd);
	for (size_t i = 0; i < r->nt; i++)
		xfree(r->t[i].host);
	xfree(r->t);
	xfree(r->ents);
	xfree(r->sender);
	xfree(r->ckey);
	if (r->dns) {
		attrec_dns_free(r->dns);
		xfree(r->dns);
	}
	ipc_out_free(&r->deliver);
	qconf_drop(r->conf);
	xfree(r);
}

static struct rjob *
rjob_find(struct queue *q, uint64_t id)
{
	for (struct rjob *r = q->rjobs; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

/* The record's route and DNS facts of a job (conn: smtp-out's). */
static void
rjob_view(const struct rjob *r, const struct attrec_conn *conn,
	  struct attrec_view *v, char *via, size_t vialen)
{
	memset(v, 0, sizeof(*v));
	if (r->route) {
		v->route_kind = "smarthost";
		snprintf(via, vialen, "%s:%u", r->route->host, r->route->port);
	} else {
		v->route_kind = r->dns && r->dns->implicit ? "implicit" : "mx";
		snprintf(via, vialen, "%s", r->domain);
	}
	v->route_via = via;
	v->dns = r->dns;
	v->conn = conn;
}

/* Every recipient of the job gets the same outcome (route failures). */
static void
rjob_finish_all(struct queue *q, struct rjob *r, int kind, const char *status,
		const char *where, const char *reply)
{
	struct attrec_view v;
	char via[ADDR_DOMAIN_MAX + 300];

	rjob_view(r, NULL, &v, via, sizeof(via));
	for (size_t i = 0; i < r->n; i++)
		queue_finish_ex(q, r->ents[i], kind, status, where, reply, NULL,
				&v);
	rjob_free(q, r);
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

/* ---- destinations ---- */

static struct dest *
dest_get(const struct conf *c, const char *key)
{
	struct dest **pp, *d;
	struct sched_params sp;

	for (pp = &dests; (d = *pp) != NULL; pp = &d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	queue_sched_params(c, &sp);
	d = xcalloc(1, sizeof(*d));
	d->key = xstrdup(key);
	sched_dest_init(&d->st, &sp);
	d->ready_tail = &d->ready;
	*pp = d; /* at the tail: the round-robin order stays put */
	return d;
}

/* Forget destinations with nothing going on and no state worth keeping. */
static void
dest_gc(time_t now)
{
	for (struct dest **pp = &dests, *d; (d = *pp) != NULL;) {
		if (d->st.active == 0 && d->ready == NULL && !d->st.dead &&
		    d->v4first_until <= now && d->st.fails == 0 &&
		    now - d->last_used > DEST_FORGET_AFTER) {
			*pp = d->next;
			xfree(d->key);
			xfree(d);
			continue;
		}
		pp = &d->next;
	}
}

static void
dest_push(struct dest *d, struct rjob *r, int front)
{
	r->dnext = NULL;
	r->phase = 3;
	r->d = d;
	if (front) {
		r->dnext = d->ready;
		d->ready = r;
		if (d->ready_tail == &d->ready)
			d->ready_tail = &r->dnext;
		return;
	}
	*d->ready_tail = r;
	d->ready_tail = &r->dnext;
}

/* The destination's key: its smarthost, or its MX host names sorted. */
static char *
dest_key(const struct rjob *r)
{
	struct buf b;
	const char **names = xcalloc(r->nt ? r->nt : 1, sizeof(*names));
	size_t n = 0;

	buf_init(&b, 64 * 1024);
	if (r->route) {
		buf_addf(&b, "smarthost %s:%u", r->route->host, r->route->port);
	} else {
		for (size_t i = 0; i < r->nt; i++) {
			size_t k = 0;
			while (k < n && strcasecmp(names[k], r->t[i].host) != 0)
				k++;
			if (k == n)
				names[n++] = r->t[i].host;
		}
		for (size_t i = 1; i < n; i++)
			for (size_t k = i;
			     k > 0 && strcasecmp(names[k - 1], names[k]) > 0;
			     k--) {
				const char *t = names[k];
				names[k] = names[k - 1];
				names[k - 1] = t;
			}
		for (size_t i = 0; i < n; i++)
			buf_addf(&b, "%s%s", i ? " " : "", names[i]);
	}
	xfree(names);
	if (b.data == NULL)
		buf_adds(&b, r->domain);
	return buf_steal(&b);
}

/* Record a deferral with an explicit next attempt time and its reason
 * (the destination's state, not the retry schedule, decided it). */
static void
rjob_defer_until(struct queue *q, struct rjob *r, const char *status,
		 const char *where, const char *reply, time_t next,
		 const char *reason)
{
	struct attrec_view v;
	char via[ADDR_DOMAIN_MAX + 300];

	rjob_view(r, NULL, &v, via, sizeof(via));
	for (size_t i = 0; i < r->n; i++) {
		struct attempt *a;
		q->last_attempt = NULL;
		q->defer_submit = 1;
		queue_finish_ex(q, r->ents[i], MAILDIR_TEMP, status, where,
				reply, NULL, &v);
		q->defer_submit = 0;
		a = q->last_attempt;
		if (a == NULL)
			continue;
		if (a->res.new_state == SPOOL_DEFERRED && next > a->res.time) {
			a->res.next_attempt = next;
			snprintf(a->next_reason, sizeof(a->next_reason), "%s",
				 reason);
		}
		attempt_submit(q, a);
	}
	rjob_free(q, r);
}

/*
 * The smtp-out process died with this attempt on its connection: the
 * next hop may or may not have the message. Each recipient is deferred
 * ("may be delivered twice") and counts a crash; after
 * QUEUE_MAX_CRASHES such deaths the message is held, so one poison
 * message cannot kill smtp-out forever (DESIGN §7), as for local.
 */
static void
rjob_crashed(struct queue *q, struct rjob *r, const char *why)
{
	struct attrec_view v;
	char via[ADDR_DOMAIN_MAX + 300];

	rjob_view(r, NULL, &v, via, sizeof(via));
	for (size_t i = 0; i < r->n; i++) {
		struct attempt *a;
		q->last_attempt = NULL;
		q->defer_submit = 1;
		queue_finish_ex(q, r->ents[i], MAILDIR_TEMP, "4.3.0", "smtp",
				why, NULL, &v);
		q->defer_submit = 0;
		a = q->last_attempt;
		if (a == NULL)
			continue; /* deleted meanwhile: dropped */
		a->e->crashes++;
		a->res.crashed = 1;
		if (a->e->crashes >= QUEUE_MAX_CRASHES) {
			a->res.hold = 1;
			snprintf(a->reply, sizeof(a->reply),
				 "held after %u deliveries that crashed the "
				 "smtp-out role; inspect it, then release it",
				 a->e->crashes);
		}
		attempt_submit(q, a);
	}
	rjob_free(q, r);
}

static void
dest_log_limit(const struct dest *d, const char *why)
{
	log_info("destination %s: concurrency %.2f after %s", d->key,
		 d->st.limit, why);
}

/* What the session's work since the last feedback says about its
 * destination: slow start, back-off, dead state, probes (mail/schedule
 * decides, this logs). Applied when the session has nothing in flight;
 * its slot stays taken until its connection is gone. */
static void
osess_feedback(struct queue *q, struct osess *s)
{
	struct dest *d = s->d;
	struct sched_params sp;
	time_t now = clock_now();
	char when[64];
	enum sched_outcome o = s->failed ? SCHED_SESSION_CONN_FAIL
			       : s->ok	 ? SCHED_SESSION_OK
					 : SCHED_SESSION_NONE;

	if (o == SCHED_SESSION_NONE && !s->probe)
		return;
	s->ok = s->failed = 0;
	queue_sched_params(q->env->conf, &sp);
	switch (sched_dest_outcome(&d->st, &sp, s->probe, o, now)) {
	case SCHED_EV_REVIVED:
		log_info("destination %s answers again", d->key);
		break;
	case SCHED_EV_PROBE_FAILED:
		clock_iso8601(d->st.probe_at, when, sizeof(when));
		log_info("destination %s: probe failed; next probe at %s",
			 d->key, when);
		break;
	case SCHED_EV_DEAD:
		clock_iso8601(d->st.probe_at, when, sizeof(when));
		log_warn("destination %s is not responding (%u failed "
			 "connections at concurrency 1): its mail is "
			 "deferred; next probe at %s",
			 d->key, d->st.fails, when);
		break;
	case SCHED_EV_SHRANK:
		dest_log_limit(d, "a failed connection");
		break;
	case SCHED_EV_GREW:
		dest_log_limit(d, "a successful session");
		break;
	case SCHED_EV_NONE:
		break;
	}
	s->probe = 0; /* its verdict is in: a revived destination's
			 backlog may use its connection */
}

/* A session is over: nothing in flight and its connection gone. */
static void
dest_session_end(struct queue *q, struct osess *s)
{
	for (struct osess **pp = &osessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	osess_feedback(q, s);
	s->d->last_used = clock_now();
	sched_dest_released(&s->d->st);
	xfree(s->ckey);
	xfree(s);
}

/* Send a ready job into session s. */
static void
rjob_send(struct queue *q, struct rjob *r, struct osess *s)
{
	struct dest *d = r->d;
	struct ipc_out o;
	int v4first = d->v4first_until > clock_now();

	r->phase = 2;
	r->s = s;
	s->pending++;
	s->msgs++;
	s->last_job = r->id;
	ipc_out_init(&o);
	buf_add(&o.b, r->deliver.b.data, r->deliver.b.len);
	ipc_put_u32(&o, (uint32_t)r->nt);
	/* IPv4-first: every IPv4 address before the IPv6 ones, order kept */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < r->nt; i++) {
			int first = !v4first || r->t[i].family == 4;
			if ((pass == 0) != first)
				continue;
			ipc_put_u8(&o, r->t[i].family);
			ipc_put_data(&o, r->t[i].addr, r->t[i].alen);
			ipc_put_str(&o, r->t[i].host);
		}
	}
	ipc_put_u64(&o, s->id);
	ipc_send(s->peer->ipc, O_DELIVER, r->id, r->body_fd, &o);
	ipc_out_free(&o);
}

/* The smtp-out process for destination d: the same one for as long as
 * the set of processes does not change (FNV-1a of the destination key),
 * so its per-address health memory and TLS contexts stay warm. NULL when
 * none is connected. */
static struct qpeer *
dest_smtp_out(const struct queue *q, const struct dest *d)
{
	uint32_t h = 2166136261u;
	unsigned k;

	if (q->nsmtp_out == 0)
		return NULL;
	for (const char *c = d->key; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	k = h % q->nsmtp_out;
	for (struct qpeer *p = q->peers; p; p = p->next)
		if (p->role == ROLE_SMTP_OUT && k-- == 0)
			return p;
	return NULL;
}

static struct osess *
osess_new(struct queue *q, struct dest *d, const struct rjob *r, int probe)
{
	struct osess *s = xcalloc(1, sizeof(*s));

	s->id = ++next_osess;
	s->d = d;
	s->peer = dest_smtp_out(q, d);
	s->ckey = xstrdup(r->ckey);
	s->born = clock_now();
	s->probe = probe;
	s->next = osessions;
	osessions = s;
	sched_dest_opened(&d->st, probe);
	return s;
}

/* Can session s take one more job of its destination now? (A margin
 * before connection-max-age, when smtp-out stops reusing it.) */
static int
osess_joinable(const struct conf *c, const struct osess *s, time_t now)
{
	time_t age = (time_t)c->delivery_conn_max_age;
	time_t margin = age / 2 < 5 ? age / 2 : 5;

	return !s->closed && !s->probe && s->pending < DEST_SESSION_DEPTH &&
	       s->msgs < c->delivery_conn_max_msgs &&
	       now - s->born < age - margin;
}

/* Unlink r from its destination's ready list. */
static void
dest_unlink(struct dest *d, struct rjob *r)
{
	for (struct rjob **pp = &d->ready; *pp; pp = &(*pp)->dnext) {
		if (*pp == r) {
			*pp = r->dnext;
			if (*pp == NULL)
				d->ready_tail = pp;
			r->dnext = NULL;
			return;
		}
	}
}

/* An open session of r's destination that r may join now (the same
 * connection key); with only set, that session or none. */
static struct osess *
osess_for(const struct conf *c, const struct rjob *r, struct osess *only,
	  time_t now)
{
	for (struct osess *s = only ? only : osessions; s; s = s->next) {
		if (s->d == r->d && strcmp(s->ckey, r->ckey) == 0 &&
		    osess_joinable(c, s, now))
			return s;
		if (only)
			break;
	}
	return NULL;
}

/* Has d an open session (only: that one) that takes a job now? */
static int
dest_joinable(const struct conf *c, const struct dest *d,
	      const struct osess *only, time_t now)
{
	for (const struct osess *s = only ? only : osessions; s; s = s->next) {
		if (s->d == d && osess_joinable(c, s, now))
			return 1;
		if (only)
			break;
	}
	return 0;
}

/* Ready jobs of d join its open sessions with their connection key
 * (connection reuse needs no new slot); with only set, that session.
 * Stops as soon as no session has room (a long backlog is not walked). */
static void
dest_join(struct queue *q, struct dest *d, struct osess *only, time_t now)
{
	const struct conf *c = q->env->conf;
	struct rjob **pp = &d->ready;

	while (*pp != NULL && dest_joinable(c, d, only, now)) {
		struct rjob *r = *pp;
		struct osess *s = osess_for(c, r, only, now);
		if (s == NULL) {
			pp = &r->dnext;
			continue;
		}
		*pp = r->dnext; /* unlink r */
		if (*pp == NULL)
			d->ready_tail = pp;
		r->dnext = NULL;
		rjob_send(q, r, s);
	}
}

/* Carry out one decision of mail/schedule for a ready job. */
static void
dest_apply(struct queue *q, struct rjob *r, const struct sched_action *a,
	   time_t now)
{
	struct dest *d = r->d;
	char when[64], why[700];

	dest_unlink(d, r);
	switch (a->act) {
	case SCHED_PROBE:
		log_info("%s: probing destination %s", r->msg, d->key);
		rjob_send(q, r, osess_new(q, d, r, 1));
		return;
	case SCHED_START: {
		struct osess *s = osess_new(q, d, r, 0);
		rjob_send(q, r, s);
		dest_join(q, d, s, now);
		return;
	}
	case SCHED_DEFER:
		clock_iso8601(a->until, when, sizeof(when));
		snprintf(why, sizeof(why),
			 "destination %s is not responding; next probe at %s",
			 d->key, when);
		rjob_defer_until(q, r, "4.4.1", "smtp", why, a->until,
				 "destination not responding (dead): the "
				 "next probe of it");
		return;
	case SCHED_EXPIRE:
		snprintf(why, sizeof(why),
			 "no connection to destination %s was free before the "
			 "message expired",
			 d->key);
		rjob_defer_until(q, r, "4.4.1", "smtp", why, now,
				 "no connection slot before expiry");
		return;
	}
}

/*
 * Hand the ready jobs of every destination to sessions: first into
 * open sessions, then mail/schedule decides which new sessions open
 * (round-robin across destinations, under each limit and the overall
 * one), which job probes a dead destination, which are deferred.
 */
static void
dest_pump_all(struct queue *q)
{
	time_t now = clock_now(), wake;
	struct sched_params sp;
	struct sched_state st = {now, 0, dest_cursor, 0};
	struct sched_job *jobs = NULL;
	struct sched_dest *ds = NULL;
	struct sched_action *acts;
	struct rjob **rj = NULL;
	size_t nj = 0, nd = 0, n;

	if (q->nsmtp_out == 0 || q->stopping)
		return;
	/* the overall limit bounds sessions carrying mail; idle cached
	 * connections count only against their own destination's limit */
	for (struct osess *s = osessions; s; s = s->next)
		st.active += s->pending > 0;
	for (struct dest *d = dests; d; d = d->next, nd++) {
		if (d->ready != NULL)
			d->last_used = now;
		if (!d->st.dead)
			dest_join(q, d, NULL, now);
		for (struct rjob *r = d->ready; r; r = r->dnext)
			nj++;
	}
	if (nj == 0) {
		dest_gc(now);
		return;
	}
	queue_sched_params(q->env->conf, &sp);
	jobs = xcalloc(nj, sizeof(*jobs));
	rj = xcalloc(nj, sizeof(*rj));
	acts = xcalloc(nj, sizeof(*acts));
	ds = xcalloc(nd, sizeof(*ds));
	nj = nd = 0;
	for (struct dest *d = dests; d; d = d->next, nd++) {
		if (d->st.limit > sp.dest_max) /* lowered by a reload */
			d->st.limit = sp.dest_max < 1.0 ? 1.0 : sp.dest_max;
		ds[nd] = d->st;
		/* the ready list is in order: ties keep it */
		for (struct rjob *r = d->ready; r; r = r->dnext, nj++) {
			jobs[nj] = (struct sched_job){now, r->ents[0]->arrival,
						      (uint32_t)nd, 0, 0};
			rj[nj] = r;
		}
	}
	n = sched_decide(&sp, jobs, nj, ds, nd, &st, acts, nj, &wake);
	dest_cursor = st.cursor;
	for (size_t i = 0; i < n; i++) {
		struct rjob *r = rj[acts[i].job];
		/* a job that joined a session opened just before is gone */
		if (r->phase == 3)
			dest_apply(q, r, &acts[i], now);
	}
	xfree(jobs);
	xfree(rj);
	xfree(acts);
	xfree(ds);
	if (wake < q->wake_at)
		q->wake_at = wake;
	dest_gc(now);
}

/*
 * The envelope sender smtp-out gives for e (into out, SRS_OUT_SIZE):
 * a forwarded recipient gets the SRS form of the sender so the next
 * hop's SPF check sees our domain. Not rewritten: the null sender,
 * senders in our own local domains, everything when SRS is off, and a
 * sender SRS cannot embed (then forwarded unchanged, logged).
 */
static const char *
queue_env_sender(struct queue *q, const struct entry *e, time_t now, char *out)
{
	const struct conf *c = q->env->conf;
	struct srs_secret sec;
	enum srs_err err;

	if (!e->forwarded || c->nsrs_secrets == 0 || e->sender[0] == '\0' ||
	    conf_domain_find(c, domain_of(e->sender)) != NULL)
		return e->sender;
	sec.key = (const unsigned char *)c->srs_secrets[0];
	sec.len = strlen(c->srs_secrets[0]);
	err = srs_forward(&sec, 0, now, e->sender, conf_srs_domain(c), out,
			  SRS_OUT_SIZE);
	if (err != SRS_OK) {
		log_warn("%s: cannot SRS-rewrite sender <%s> for <%s> (%s): "
			 "forwarding with the original sender",
			 e->msg, e->sender, e->addr, srs_strerror(err));
		return e->sender;
	}
	return out;
}

static void
queue_start_remote(struct queue *q, struct entry *e, const char *domain)
{
	const struct conf *c = q->env->conf;
	struct rjob *r;
	struct ipc_out o;
	time_t now = clock_now();
	char srs[SRS_OUT_SIZE], xsrs[SRS_OUT_SIZE];

	if (q->lookup == NULL || q->nsmtp_out == 0) {
		q->wake_at = 0; /* retried at the next tick */
		return;
	}
	r = xcalloc(1, sizeof(*r));
	r->q = q;
	r->id = ++q->next_rjob;
	r->body_fd = -1;
	snprintf(r->msg, sizeof(r->msg), "%s", e->msg);
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	r->sender = xstrdup(queue_env_sender(q, e, now, srs));
	if (strcmp(r->sender, e->sender) != 0)
		log_info("%s: forwarded to <%s>: SRS sender <%s>", e->msg,
			 e->addr, r->sender);
	ipc_out_init(&r->deliver);
	/* every due recipient of this message at this domain with the same
	 * envelope sender goes along (forwarded ones may have an SRS one) */
	for (struct entry *x = q->bymsg[bucket_msg(q, e->msg)]; x;
	     x = x->mnext) {
		if (x->in_flight || x->held || x->next_attempt > now ||
		    strcmp(x->msg, e->msg) != 0 ||
		    strcasecmp(domain_of(x->addr), domain) != 0 ||
		    strcmp(queue_env_sender(q, x, now, xsrs), r->sender) != 0)
			continue;
		r->ents = xrealloc(r->ents, (r->n + 1) * sizeof(*r->ents));
		r->ents[r->n++] = x;
		x->job = r->id;
		x->in_flight = 1;
	}
	r->next = q->rjobs;
	q->rjobs = r;
	q->inflight++;
	r->conf = qconf_hold(q);
	r->route = conf_route_find(c, domain);
	ipc_out_init(&o);
	ipc_put_str(&o, r->route ? r->route->host : domain);
	ipc_put_u8(&o, r->route != NULL);
	ipc_put_u8(&o, (uint8_t)(r->route ? r->route->ip : c->delivery_ip));
	ipc_put_u32(&o, 1 + (c->delivery_helo != NULL) +
			    (c->delivery_helo6 != NULL));
	ipc_put_str(&o, c->hostname);
	if (c->delivery_helo)
		ipc_put_str(&o, c->delivery_helo);
	if (c->delivery_helo6)
		ipc_put_str(&o, c->delivery_helo6);
	ipc_send(q->lookup->ipc, R_ROUTE, r->id, -1, &o);
	ipc_out_free(&o);
}

/* The HELO name over IPv6: the route's helo-ipv6, its helo, then
 * [delivery] helo-ipv6, helo, [server] hostname. */
static const char *
rjob_helo6(const struct conf *c, const struct conf_route *rt)
{
	if (rt && rt->helo6)
		return rt->helo6;
	if (rt && rt->helo)
		return rt->helo;
	if (c->delivery_helo6)
		return c->delivery_helo6;
	return c->delivery_helo ? c->delivery_helo : c->hostname;
}

/* How to talk to the next hop: [delivery] for MX, the route otherwise. */
static void
rjob_put_session(const struct conf *c, const struct conf_route *rt,
		 struct ipc_out *o)
{
	const char *helo = c->delivery_helo ? c->delivery_helo : c->hostname;

	ipc_put_u32(o, rt ? rt->port : c->delivery_port);
	ipc_put_u8(o, (uint8_t)(rt ? rt->tls : c->delivery_tls));
	ipc_put_u8(o, rt ? rt->implicit_tls : 0);
	ipc_put_u8(o, (uint8_t)(rt ? rt->verify : c->delivery_verify));
	ipc_put_str(o, rt && rt->ca ? rt->ca : c->delivery_ca);
	ipc_put_str(o, rt && rt->helo ? rt->helo : helo);
	ipc_put_str(o, rjob_helo6(c, rt));
	ipc_put_str(o, rt ? rt->auth_user : NULL);
	ipc_put_str(o, rt ? rt->auth_password : NULL);
	ipc_put_str(o, rt && rt->source4 ? rt->source4 : c->delivery_source4);
	ipc_put_str(o, rt && rt->source6 ? rt->source6 : c->delivery_source6);
}

/*
 * The connection cache key of a job (DESIGN §7): everything
 * rjob_put_session sends that shapes the connection (port, TLS policy,
 * implicit TLS, verify and its CA store, HELO, SASL identity, source
 * addresses) and the address families. The address and the verify name
 * are the destination's (its MX hosts or the smarthost); smtp-out picks
 * the address. Each field is length-prefixed, so no value can imitate
 * another's boundary.
 */
static char *
rjob_conn_key(const struct conf *c, const struct conf_route *rt)
{
	const char *helo = c->delivery_helo ? c->delivery_helo : c->hostname;
	const char *f[] = {
	    rt && rt->ca ? rt->ca : c->delivery_ca,
	    rt && rt->helo ? rt->helo : helo,
	    rjob_helo6(c, rt),
	    rt && rt->auth_user ? rt->auth_user : "",
	    rt && rt->auth_password ? rt->auth_password : "",
	    rt && rt->source4	  ? rt->source4
	    : c->delivery_source4 ? c->delivery_source4
				  : "",
	    rt && rt->source6	  ? rt->source6
	    : c->delivery_source6 ? c->delivery_source6
				  : "",
	};
	struct buf b;

	buf_init(&b, 64 * 1024);
	buf_addf(&b, "%u %d %d %d %d", rt ? rt->port : c->delivery_port,
		 rt ? rt->tls : c->delivery_tls, rt ? rt->implicit_tls : 0,
		 rt ? rt->verify : c->delivery_verify,
		 rt ? rt->ip : c->delivery_ip);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		buf_addf(&b, " %zu:%s", strlen(f[i] ? f[i] : ""),
			 f[i] ? f[i] : "");
	return buf_steal(&b);
}

static void
rjob_on_body(void *arg, int err, int body_fd, const char *prepend,
	     size_t prepend_len, const struct spool_msginfo *info)
{
	struct rjob *r = arg;
	struct queue *q = r->q;
	struct ipc_out *o = &r->deliver;

	if (!err)
		r->body_fd = fcntl(body_fd, F_DUPFD_CLOEXEC, 0);
	if (err || r->body_fd < 0 || q->nsmtp_out == 0) {
		for (size_t i = 0; i < r->n; i++) {
			r->ents[i]->in_flight = 0;
			entry_set_next(q, r->ents[i],
				       clock_now() + (err ? 60 : 1));
			q->wake_at = 0;
			if (r->ents[i]->deleted)
				entry_remove(q, r->ents[i]);
		}
		rjob_free(q, r);
		return;
	}
	ipc_put_str(o, r->msg);
	ipc_put_str(o, r->domain);
	ipc_put_str(o, r->sender);
	ipc_put_u64(o, info->size + prepend_len);
	ipc_put_u8(o, (uint8_t)info->body8);
	ipc_put_u8(o, (uint8_t)info->smtputf8);
	ipc_put_u8(o, (uint8_t)info->ret);
	ipc_put_str(o, info->envid);
	rjob_put_session(r->conf->c, r->route, o);
	ipc_put_data(o, prepend, prepend_len);
	ipc_put_u32(o, (uint32_t)r->n);
	for (size_t i = 0; i < r->n; i++) {
		ipc_put_u64(o, r->ents[i]->rcpt_id);
		ipc_put_str(o, r->ents[i]->addr);
		ipc_put_u32(o, r->ents[i]->notify);
		ipc_put_str(o, r->ents[i]->orcpt ? r->ents[i]->orcpt : "");
	}
	xfree(r->ckey);
	r->ckey = rjob_conn_key(r->conf->c, r->route);
	{
		char *key = dest_key(r);
		dest_push(dest_get(q->env->conf, key), r, 0);
		xfree(key);
	}
	dest_pump_all(q);
}

static void
queue_on_route(struct queue *q, const struct ipc_hdr *h, struct ipc_in *in)
{
	struct rjob *r = rjob_find(q, h->id);
	int action = ipc_get_u8(in);
	const char *status = ipc_get_str(in), *explain = ipc_get_str(in);
	const char *warning = ipc_get_str(in);
	uint32_t n = ipc_get_u32(in);
	char where[ADDR_DOMAIN_MAX + 16];

	if (r == NULL) {
		in->off = in->len;
		return;
	}
	r->t = xcalloc(n ? n : 1, sizeof(*r->t));
	for (uint32_t i = 0; i < n && !in->err; i++) {
		size_t alen;
		struct rtarget *t = &r->t[r->nt];
		const void *a;
		t->family = ipc_get_u8(in);
		a = ipc_get_data(in, &alen);
		t->alen = alen < 16 ? alen : 16;
		memcpy(t->addr, a, t->alen);
		t->host = xstrdup(ipc_get_str(in));
		ipc_get_u32(in);
		r->nt++;
	}
	r->dns = xcalloc(1, sizeof(*r->dns));
	attrec_get_dns(in, r->dns);
	ipc_end(in);
	if (*warning)
		log_warn("%s: route to %s: %s", r->msg, r->domain, warning);
	snprintf(where, sizeof(where), "dns %s", r->domain);
	if (action == MX_DEFER) {
		rjob_finish_all(q, r, MAILDIR_TEMP, status, where, explain);
		return;
	}
	if (action == MX_BOUNCE && r->route) {
		/* a smarthost that does not resolve is our configuration's
		 * fault, not the recipient's: keep the mail */
		char why[700];
		snprintf(why, sizeof(why), "smarthost of [route \"%s\"]: %s",
			 r->route->name, explain);
		rjob_finish_all(q, r, MAILDIR_TEMP, "4.4.4", where, why);
		return;
	}
	if (action == MX_BOUNCE) {
		rjob_finish_all(q, r, MAILDIR_PERM, status, where, explain);
		return;
	}
	r->phase = 1;
	spool_load_body(q->spool, r->msg, rjob_on_body, r);
}

/* The job's session got its answer. */
static void
rjob_session_done(struct rjob *r, int verdict)
{
	struct osess *s = r->s;

	r->s = NULL;
	if (s == NULL)
		return;
	if (--s->pending == 0)
		s->idle_since = clock_now();
	if (verdict == SMTPO_V_OK)
		s->ok = 1;
	else if (verdict == SMTPO_V_CONN_FAILED || verdict == SMTPO_V_FAILED)
		s->failed = s->closed = 1;
	else if (verdict == SMTPO_V_UNTRIED)
		s->closed = 1;
}

/* The sessions of d with nothing in flight report their outcome, and
 * end when their connection is gone; then slots are filled (idle
 * sessions take ready jobs first: dest_join). */
static void
dest_settle(struct queue *q, struct dest *d)
{
	for (struct osess *s = osessions, *n; s; s = n) {
		n = s->next;
		if (s->d != d || s->pending != 0)
			continue;
		if (s->gone)
			dest_session_end(q, s);
		else
			osess_feedback(q, s);
	}
	dest_pump_all(q);
}

/* smtp-out closed the connection of session h->id (O_CLOSED). A close
 * that names an older job than the session's last is stale: that job
 * reached smtp-out after the close and opened a new connection. */
static void
queue_on_smtp_closed(struct queue *q, struct qpeer *p, const struct ipc_hdr *h,
		     struct ipc_in *in)
{
	uint64_t last = ipc_get_u64(in);
	struct osess *s;

	ipc_end(in);
	for (s = osessions; s; s = s->next)
		if (s->id == h->id && s->peer == p)
			break;
	if (s == NULL || s->last_job != last)
		return;
	s->gone = s->closed = 1;
	if (s->pending == 0)
		dest_settle(q, s->d);
}

static void
queue_on_smtp_result(struct queue *q, const struct ipc_hdr *h,
		     struct ipc_in *in)
{
	struct rjob *r = rjob_find(q, h->id);
	const char *where = ipc_get_str(in);
	uint32_t n = ipc_get_u32(in);
	const void *hopdsn = NULL;
	size_t nhopdsn = 0;
	char host[300];
	const char *sp;
	struct dest *d;
	int verdict, v4retry, untried = 0;
	const char *v6reply;
	size_t off;
	struct attrec_conn *conn;
	struct attrec_view v;
	char via[ADDR_DOMAIN_MAX + 300];

	if (r == NULL) {
		in->off = in->len;
		return;
	}
	d = r->d;
	/* the appended fields first: they decide what the outcomes mean */
	off = in->off;
	for (uint32_t i = 0; i < n && !in->err; i++) {
		ipc_get_u64(in);
		untried |= ipc_get_u8(in) == SMTPC_PENDING;
		ipc_get_str(in);
		ipc_get_str(in);
		ipc_get_str(in);
	}
	verdict = ipc_get_u8(in);
	v4retry = ipc_get_u8(in);
	v6reply = ipc_get_str(in);
	hopdsn = ipc_get_data(in, &nhopdsn);
	conn = xcalloc(1, sizeof(*conn));
	attrec_get_conn(in, conn);
	ipc_end(in);
	if (v4retry && d != NULL) {
		struct buf clean;
		buf_init(&clean, 4096);
		smtp_reply_sanitize(v6reply, strlen(v6reply), &clean);
		uint64_t v4for = q->env->conf->delivery_v4first_for;
		d->v4first_until = clock_now() + (time_t)v4for;
		log_warn("destination %s: IPv4 first for %llu s: refused "
			 "over IPv6 with: %s",
			 d->key, (unsigned long long)v4for,
			 clean.data ? clean.data : "");
		buf_free(&clean);
	}
	rjob_session_done(r, verdict);
	if (d != NULL && !q->stopping &&
	    ((verdict == SMTPO_V_UNTRIED && untried) ||
	     (verdict == SMTPO_V_CONN_FAILED && !d->st.dead &&
	      r->reparks < DEST_REPARK_MAX))) {
		/* not tried, or its connection failed while the destination
		 * is still being backed off: back to the destination, nothing
		 * recorded (the concurrency limit took the failure) */
		if (verdict == SMTPO_V_CONN_FAILED)
			r->reparks++;
		dest_push(d, r, 1);
		dest_settle(q, d);
		attrec_conn_free(conn);
		xfree(conn);
		return;
	}
	in->off = off;
	rjob_view(r, conn, &v, via, sizeof(via));
	/* "host [address]" of "host [address]:port ..." for the DSN text */
	sp = strchr(where, ' ');
	if (sp != NULL && sp[1] == '[' && strchr(sp, ']') != NULL)
		sp = strchr(sp, ']') + 1;
	snprintf(host, sizeof(host), "%.*s", sp ? (int)(sp - where) : 0, where);
	for (uint32_t i = 0; i < n && !in->err; i++) {
		uint64_t id = ipc_get_u64(in);
		int res = ipc_get_u8(in);
		const char *status = ipc_get_str(in), *reply = ipc_get_str(in);
		const char *cmd = ipc_get_str(in);
		int kind = res == SMTPC_DELIVERED ? MAILDIR_OK
			   : res == SMTPC_BOUNCED ? MAILDIR_PERM
						  : MAILDIR_TEMP;
		char w[700];
		int hop = i < nhopdsn && ((const uint8_t *)hopdsn)[i]
			      ? QUEUE_HOP_DSN
			      : QUEUE_HOP_PLAIN;
		snprintf(w, sizeof(w), "smtp %s%s%s", where,
			 *cmd ? " after " : "", cmd);
		/* one of this job's recipients (the index, not a scan) */
		struct entry *e = queue_find_entry(q, id);
		if (e == NULL || e->job != r->id || !e->in_flight)
			continue;
		e->hop = hop;
		v.command = cmd;
		queue_finish_ex(q, e, kind, status, w, reply,
				host[0] ? host : NULL, &v);
	}
	in->off = in->len;
	attrec_conn_free(conn);
	xfree(conn);
	rjob_free(q, r);
	if (d != NULL)
		dest_settle(q, d);
}

/* A role died under these jobs: return their recipients to the queue. */
static void
queue_rjobs_lost(struct queue *q, int phase, struct qpeer *out, const char *why)
{
	q->wake_at = 0;
	for (struct rjob *r = q->rjobs, *n; r; r = n) {
		n = r->next;
		if ((phase == 0 && r->phase != 0) ||
		    (phase == 2 &&
		     (r->phase != 2 || r->s == NULL || r->s->peer != out)))
			continue;
		if (phase == 2) {
			rjob_crashed(q, r, why);
			continue;
		}
		for (size_t i = 0; i < r->n; i++) {
			r->ents[i]->in_flight = 0;
			if (r->ents[i]->deleted)
				entry_remove(q, r->ents[i]);
		}
		rjob_free(q, r);
	}
	if (phase == 2) {
		/* their connections are gone with that process */
		for (struct osess **pp = &osessions; *pp;) {
			struct osess *s = *pp;
			if (s->peer != out) {
				pp = &s->next;
				continue;
			}
			*pp = s->next;
			sched_dest_released(&s->d->st);
			if (s->probe)
				s->d->st.probing = 0;
			xfree(s->ckey);
			xfree(s);
		}
	}
}

static void
queue_attempt(struct queue *q, struct entry *e)
{
	struct mailaddr m;
	struct resolved r;
	char where[PATH_MAX + 16];

	if (addr_parse_mailbox(e->addr, strlen(e->addr), ADDR_F_UTF8, &m) !=
	    ADDR_OK) {
		e->in_flight = 1;
		queue_finish(q, e, MAILDIR_PERM, "5.1.3", "none",
			     "recipient address is not valid");
		return;
	}
	if (resolve_rcpt(q->env->conf, &m, &r) < 0)
		r.kind = RESOLVE_NO_USER;
	e->in_flight = 1;
	switch (r.kind) {
	case RESOLVE_LOCAL:
		if (q->local == NULL) {
			e->in_flight = 0;
			q->wake_at = 0; /* retried at the next tick */
			return;
		}
		e->in_flight = 0;
		queue_start_local(q, e, r.mailbox);
		return;
	case RESOLVE_NO_USER:
		queue_finish(q, e, MAILDIR_PERM, "5.1.1", "local",
			     "no such user here (not in the users table of "
			     "its domain)");
		return;
	case RESOLVE_ALIAS:
		queue_finish(q, e, MAILDIR_PERM, "5.4.6", "local",
			     "alias expansion found no final recipient "
			     "(alias loop or too deep)");
		return;
	case RESOLVE_REMOTE:
		(void)where;
		e->in_flight = 0;
		queue_start_remote(q, e, m.domain);
		return;
	}
}

/* Index of e's domain in doms (a hash table of nslots, ixs parallel),
 * adding it as the next index when new. */
static uint32_t
dispatch_domain(const char **doms, uint32_t *ixs, size_t nslots, uint32_t *nd,
		const char *dom)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *c = dom; *c; c++)
		h = (h ^ (uint8_t)(*c | 0x20)) * 1099511628211ULL;
	for (size_t k = h % nslots;; k = (k + 1) % nslots) {
		if (doms[k] == NULL) {
			doms[k] = dom;
			ixs[k] = (*nd)++;
			return ixs[k];
		}
		if (strcasecmp(doms[k], dom) == 0)
			return ixs[k];
	}
}

static void
dispatch_apply(struct queue *q, struct entry *e, const struct sched_action *a)
{
	if (e->in_flight || q->stopping)
		return; /* went along with a job started just before */
	if (a->act == SCHED_START) {
		queue_attempt(q, e);
		return;
	}
	if (a->act == SCHED_EXPIRE) {
		e->in_flight = 1;
		queue_finish(q, e, MAILDIR_TEMP, "4.4.7", "queue",
			     "no delivery slot was free before the message "
			     "expired");
	}
}

/*
 * The entries that can act now (due, not in flight; held ones are never
 * due) into *out, allocated; returns their number and sets *later to
 * the earliest next attempt of the others, 0 if none. A walk of the
 * heap's top: the entries looked at are the due ones, the in-flight ones
 * among them and their direct children, however long the backlog.
 */
static size_t
dispatch_due(struct queue *q, time_t now, struct entry ***out, time_t *later)
{
	size_t *stack = xcalloc(64, sizeof(*stack)), ns = 0, cap = 64;
	size_t n = 0, ocap = 0;

	*out = NULL;
	*later = 0;
	if (q->nheap > 0)
		stack[ns++] = 0;
	while (ns > 0) {
		size_t i = stack[--ns];
		struct entry *e = q->heap[i];
		time_t k = entry_key(e);
		if (k > now) {
			/* not due, nor anything below it */
			if (k != ENTRY_NEVER && (*later == 0 || k < *later))
				*later = k;
			continue;
		}
		if (!e->in_flight) {
			if (n == ocap) {
				ocap = ocap ? ocap * 2 : 64;
				*out = xrealloc(*out, ocap * sizeof(**out));
			}
			(*out)[n++] = e;
		}
		if (ns + 2 > cap) {
			cap *= 2;
			stack = xrealloc(stack, cap * sizeof(*stack));
		}
		for (size_t c = 2 * i + 1; c <= 2 * i + 2 && c < q->nheap; c++)
			stack[ns++] = c;
	}
	xfree(stack);
	return n;
}

/*
 * The in-memory active set (at most QUEUE_MAX_INFLIGHT attempts) is
 * filled by mail/schedule: due recipients in next-attempt order,
 * round-robin across recipient domains (the destination proper is known
 * only after routing; dest_pump_all applies the same decision with the
 * destinations' limits). Held recipients are never started. Only the
 * due recipients are handed to mail/schedule, with the earliest next
 * attempt of the others (dispatch_due): a deferred backlog costs a
 * decision nothing.
 */
static void
queue_dispatch(struct queue *q)
{
	static uint32_t cursor;
	time_t now = clock_now(), wake;
	struct sched_params sp;
	struct sched_state st = {now, q->inflight, cursor, 0};
	struct sched_job *jobs;
	struct sched_dest *ds;
	struct sched_action *acts;
	struct entry **ents;
	const char **doms;
	uint32_t *ixs, nd = 0;
	size_t n, na;

	if (q->stopping)
		return;
	q->wake_at = now + 3600;
	dest_pump_all(q);
	n = dispatch_due(q, now, &ents, &st.later);
	if (n == 0) {
		if (st.later != 0 && st.later < q->wake_at)
			q->wake_at = st.later;
		xfree(ents);
		return;
	}
	queue_sched_params(q->env->conf, &sp);
	sp.max_sessions = QUEUE_MAX_INFLIGHT;
	sp.dest_init = sp.dest_max = QUEUE_MAX_INFLIGHT;
	jobs = xcalloc(n, sizeof(*jobs));
	acts = xcalloc(n, sizeof(*acts));
	ds = xcalloc(n, sizeof(*ds));
	doms = xcalloc(2 * n, sizeof(*doms));
	ixs = xcalloc(2 * n, sizeof(*ixs));
	for (size_t k = 0; k < n; k++) {
		struct entry *e = ents[k];
		uint32_t d =
		    dispatch_domain(doms, ixs, 2 * n, &nd, domain_of(e->addr));
		jobs[k] =
		    (struct sched_job){e->next_attempt, e->arrival, d,
				       (uint8_t)e->held, (uint8_t)e->in_flight};
	}
	for (uint32_t d = 0; d < nd; d++)
		sched_dest_init(&ds[d], &sp);
	na = sched_decide(&sp, jobs, n, ds, nd, &st, acts, n, &wake);
	cursor = st.cursor;
	for (size_t i = 0; i < na; i++)
		dispatch_apply(q, ents[acts[i].job], &acts[i]);
	if (wake < q->wake_at)
		q->wake_at = wake;
	xfree(jobs);
	xfree(ents);
	xfree(acts);
	xfree(ds);
	xfree(doms);
	xfree(ixs);
}

static void
queue_dmarc_timed(struct queue *q)
{
	const struct conf *c = q->env->conf;
	time_t now = clock_now();

	if (!c->dmarc_reports || q->stopping)
		return;
	if (q->dmarc_next == 0 ||
	    q->dmarc_next > now + (time_t)c->dmarc_report_interval)
		q->dmarc_next = now + (time_t)c->dmarc_report_interval;
	if (now < q->dmarc_next)
		return;
	q->dmarc_next = now + (time_t)c->dmarc_report_interval;
	if (dmarc_agg_run(q->dmarc, now, NULL, NULL) < 0)
		log_warn("dmarc report: the previous run is still going on");
}

/* Once a second; a delivery decision is due only at the scheduler's
 * wake-up (every event that changes the queue decides at once anyway). */
/*
 * An idle session whose close never came: smtp-out keeps an idle
 * connection connection-idle-time, then waits at most a command timeout
 * for the QUIT reply, so a session idle much longer than that has lost
 * its O_CLOSED (a bug): free its slot rather than starve the
 * destination, and say so.
 */
static void
queue_reap_sessions(struct queue *q)
{
	time_t now = clock_now();
	time_t most = (time_t)(q->env->conf->delivery_conn_idle +
			       q->env->conf->delivery_timeout_command) +
		      60;

	for (struct osess *s = osessions, *n; s; s = n) {
		n = s->next;
		if (s->pending != 0 || s->gone || now - s->idle_since <= most)
			continue;
		log_warn("destination %s: session %llu idle for %llds without "
			 "word of its connection closing; its slot is freed",
			 s->d->key, (unsigned long long)s->id,
			 (long long)(now - s->idle_since));
		s->gone = s->closed = 1;
		dest_settle(q, s->d);
		n = osessions; /* dest_settle may have ended others */
	}
}

static void
queue_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	queue_dmarc_timed(q);
	queue_reap_sessions(q);
	if (clock_now() >= q->wake_at)
		queue_dispatch(q);
}

/* The deferred decision queue_kick asked for. With every slot taken
 * and no wake-up due, nothing can start: only ready jobs join sessions
 * (expiries of jobs waiting for a slot are at the wake-up, which the
 * tick does not skip). */
static void
queue_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	(void)fd;
	(void)what;
	q->kicked = 0;
	if (spool_failed(q->spool))
		return; /* the role restarts (queue_on_spool_failed) */
	if (q->inflight >= QUEUE_MAX_INFLIGHT && clock_now() < q->wake_at)
		dest_pump_all(q);
	else
		queue_dispatch(q);
}

/*
 * Decide once the callbacks of this event loop pass have run, not in
 * each: a group commit hands back up to hundreds of results at once,
 * and each decision sorts every due recipient. Events that free a
 * slot (a result arrives; its commit comes later: a crash before it
 * means a possible duplicate, which DESIGN §7 allows) or add work kick.
 */
static void
queue_kick(struct queue *q)
{
	if (q->kicked || q->kick == NULL)
		return;
	q->kicked = 1;
	event_active(q->kick, EV_TIMEOUT, 1);
}

static void
queue_on_local_result(struct queue *q, const struct ipc_hdr *h,
		      struct ipc_in *in)
{
	int result = ipc_get_u8(in);
	const char *status = ipc_get_str(in);
	const char *where = ipc_get_str(in);
	const char *reason = ipc_get_str(in);
	struct entry *e;

	ipc_end(in);
	e = queue_find_entry(q, h->id);
	if (e == NULL || !e->in_flight) {
		log_warn("local: result for unknown delivery %llu",
			 (unsigned long long)h->id);
		return;
	}
	q->inflight--;
	e->at_local = 0;
	queue_finish(q, e, result, status, where, reason);
	queue_kick(q);
}

/*
 * The local role died while delivering e: the Maildir may or may not
 * hold the message. Record that as a deferral ("may be duplicated");
 * after QUEUE_MAX_CRASHES such deaths hold the message, so one poison
 * message cannot crash the role forever (DESIGN §7).
 */
static void
queue_local_crashed(struct queue *q, struct entry *e)
{
	struct attempt *a;

	e->at_local = 0;
	q->inflight--;
	q->wake_at = 0;
	if (e->deleted) {
		entry_remove(q, e);
		return;
	}
	e->crashes++;
	q->defer_submit = 1;
	queue_finish(q, e, MAILDIR_TEMP, "4.3.0", "local",
		     "the local delivery role died during this delivery; the "
		     "message may be delivered twice");
	q->defer_submit = 0;
	a = q->last_attempt;
	a->res.crashed = 1;
	if (e->crashes >= QUEUE_MAX_CRASHES) {
		a->res.hold = 1;
		snprintf(a->reply, sizeof(a->reply),
			 "held after %u deliveries that crashed the local "
			 "role; inspect it, then release it",
			 e->crashes);
	}
	attempt_submit(q, a);
}

/* ---- receiving from smtp-in ------------------------------------------ */

static struct txn *
txn_find(struct queue *q, struct qpeer *p, uint64_t id)
{
	for (struct txn *t = q->txns; t; t = t->next)
		if (t->peer == p && t->id == id)
			return t;
	return NULL;
}

static void
txn_free(struct queue *q, struct txn *t)
{
	for (struct txn **pp = &q->txns; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	if (t->msg)
		spool_msg_discard(q->spool, t->msg);
	xfree(t);
}

static void
queue_reply(struct qpeer *p, uint64_t id, int code, const char *status,
	    const char *text)
{
	struct ipc_out o;

	if (p == NULL)
		return;
	ipc_out_init(&o);
	ipc_put_u32(&o, (uint32_t)code);
	ipc_put_str(&o, status);
	ipc_put_str(&o, text);
	ipc_send(p->ipc, Q_RESULT, id, -1, &o);
	ipc_out_free(&o);
}

static int
queue_space_ok(struct queue *q)
{
	struct statvfs sv;

	if (statvfs(q->env->conf->spool, &sv) < 0)
		return 1;
	return (uint64_t)sv.f_bavail * sv.f_frsize >= q->env->conf->min_free;
}

/* orig: what the client gave when smtp-in rewrote it (the SRS address
 * of a bounce it reversed), "" when rcpt is what the client gave. */
static void
queue_expand_rcpt(struct queue *q, struct spool_msg *m, const char *rcpt,
		  const char *orig, const char *orcpt, unsigned notify)
{
	struct mailaddr a;
	struct resolve_list l = {0};
	char fin[ADDR_PATH_MAX + 2];
	size_t added = 0;

	if (*orig == '\0')
		orig = rcpt;
	if (addr_parse_mailbox(rcpt, strlen(rcpt), ADDR_F_UTF8, &a) ==
		ADDR_OK &&
	    resolve_expand(q->env->conf, &a, &l) == 0) {
		/* RFC 3461 §6.2.7.3: an alias for several addresses that was
		 * asked for SUCCESS reports "expanded" itself; its addresses
		 * get the NOTIFY without SUCCESS (NEVER if nothing is left) */
		if (l.n > 1 && (notify & SMTP_NOTIFY_SUCCESS) != 0) {
			spool_msg_add_expanded(m, rcpt, orcpt, l.n);
			notify &= ~(unsigned)SMTP_NOTIFY_SUCCESS;
			if (notify == 0)
				notify = SMTP_NOTIFY_NEVER;
		}
		for (size_t i = 0; i < l.n; i++) {
			addr_format(&l.items[i].addr, fin, sizeof(fin));
			spool_msg_add_rcpt(m, fin, orig, orcpt, notify);
			added++;
		}
		if (l.loop || l.truncated)
			log_warn("%s: alias expansion of <%s> %s", m->id, rcpt,
				 l.loop ? "hit a loop (cut)" : "was truncated");
	}
	resolve_list_free(&l);
	if (added == 0)
		spool_msg_add_rcpt(m, rcpt, orig, orcpt, notify);
}

static void
queue_on_open(struct queue *q, struct qpeer *p, const struct ipc_hdr *h,
	      struct ipc_in *in)
{
	const char *caddr = ipc_get_str(in), *cname = ipc_get_str(in);
	const char *helo = ipc_get_str(in);
	const char *proto = ipc_get_str(in), *sender = ipc_get_str(in);
	struct spool_msg *m = spool_msg_new(q->spool, clock_now());
	struct txn *t;
	struct ipc_out o;
	uint32_t n;

	(void)proto;
	m->body8 = ipc_get_u8(in);
	m->smtputf8 = ipc_get_u8(in);
	m->ret = ipc_get_u8(in);
	m->envid = xstrdup(ipc_get_str(in));
	m->sender = xstrdup(sender);
	m->helo = xstrdup(helo);
	m->client = xmalloc(strlen(cname) + strlen(caddr) + 4);
	snprintf(m->client, strlen(cname) + strlen(caddr) + 4, "%s [%s]", cname,
		 caddr);
	if (*sender != '\0') {
		m->report_to = queue_report_target(q, sender);
		m->reporting_mta = q->env->conf->hostname;
	}
	n = ipc_get_u32(in);
	for (uint32_t i = 0; i < n && !in->err; i++) {
		const char *rcpt = ipc_get_str(in), *orcpt = ipc_get_str(in);
		unsigned notify = ipc_get_u32(in);
		const char *orig = ipc_get_str(in);
		queue_expand_rcpt(q, m, rcpt, orig, orcpt, notify);
	}
	ipc_end(in);
	if (q->stopping || !queue_space_ok(q)) {
		log_warn("refusing message: %s", q->stopping
						     ? "shutting down"
						     : "spool below min-free");
		spool_msg_discard(q->spool, m);
		queue_reply(p, h->id, 452, "4.3.1",
			    "Insufficient system storage, try again later");
		return;
	}
	t = xcalloc(1, sizeof(*t));
	t->q = q;
	t->peer = p;
	t->id = h->id;
	t->msg = m;
	t->next = q->txns;
	q->txns = t;
	ipc_out_init(&o);
	ipc_put_str(&o, m->id);
	ipc_put_u32(&o, CHUNK_WINDOW);
	ipc_send(p->ipc, Q_OPEN_OK, h->id, -1, &o);
	ipc_out_free(&o);
}

static void
queue_on_committed(void *arg, int err, struct spool_msg *m)
{
	struct txn *t = arg;
	struct queue *q = t->q;

	if (err) {
		log_err("%s: commit failed (%s)", m->id,
			err == SPOOL_E_FULL ? "disk full" : "I/O error");
		if (err == SPOOL_E_FULL)
			queue_reply(t->peer, t->id, 452, "4.3.1",
				    "Insufficient system storage");
		else
			queue_reply(t->peer, t->id, 451, "4.3.0",
				    "Local error in processing, try again "
				    "later");
	} else {
		char text[128];
		snprintf(text, sizeof(text), "Ok: queued as %s", m->id);
		log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queued)", m->id,
			 m->sender, (unsigned long long)m->size, m->nrcpts);
		for (size_t i = 0; i < m->nrcpts; i++) {
			struct entry *e =
			    entry_add(q, m->rcpts[i].id, m->id, m->sender,
				      m->rcpts[i].addr, m->arrival, m->arrival);
			e->forwarded =
			    rcpt_forwarded(m->rcpts[i].orig, m->rcpts[i].addr);
			e->notify = m->rcpts[i].notify;
			if (m->rcpts[i].orcpt != NULL)
				e->orcpt = xstrdup(m->rcpts[i].orcpt);
		}
		for (size_t i = 0; i < m->nexpanded; i++) {
			const struct spool_expanded *x = &m->expanded[i];

			if (x->dsn_id[0] == '\0')
				continue;
			log_info("%s: <%s> expanded to %zu addresses: "
				 "report %s to <%s>",
				 m->id, x->alias, x->count, x->dsn_id,
				 m->report_to);
			entry_add(q, x->dsn_rcpt_id, x->dsn_id, "",
				  m->report_to, m->arrival, m->arrival);
		}
		queue_reply(t->peer, t->id, 250, "2.0.0", text);
	}
	t->msg = NULL;
	txn_free(q, t);
	if (!spool_failed(q->spool))
		queue_kick(q);
}

/*
 * The spool failed (an fsync, COMMIT or checkpoint): every session of
 * the failed group has its 4xx by now. Send the replies, then exit: the
 * master restarts the role, which reopens and recovers the spool
 * (DESIGN §7: never retry an fsync and trust it).
 */
static void
queue_on_spool_failed(void *arg)
{
	struct queue *q = arg;

	for (struct qpeer *p = q->peers; p; p = p->next)
		ipc_flush(p->ipc);
	log_fatal("spool I/O error: restarting the queue role");
}

/* The DMARC report row of a transaction: it goes into the commit. */
static void
queue_on_dmarc_row(struct txn *t, struct ipc_in *in)
{
	struct dmarc_rep_row *row = xmalloc(sizeof(*row));

	if (dmarc_agg_get(in, row) < 0)
		log_panic("smtp-in sent a short Q_DMARC");
	ipc_end(in);
	xfree(t->msg->dmarc);
	t->msg->dmarc = row;
}

/*
 * Credit for stored chunks goes back once the messages that came in
 * one read have all been handled: a message's last chunk usually comes
 * with its Q_END, and then no Q_CREDIT is sent at all (one wake-up of
 * smtp-in fewer per message).
 */
static void
queue_on_credit(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	q->credit_due = 0;
	for (struct txn *t = q->txns; t; t = t->next) {
		struct ipc_out o;
		if (t->owed == 0 || t->committing || t->peer == NULL)
			continue;
		ipc_out_init(&o);
		ipc_put_u32(&o, t->owed);
		ipc_send(t->peer->ipc, Q_CREDIT, t->id, -1, &o);
		ipc_out_free(&o);
		t->owed = 0;
	}
}

static void
queue_owe_credit(struct queue *q, struct txn *t)
{
	t->owed++;
	if (q->credit_due)
		return;
	q->credit_due = 1;
	event_active(q->credit_ev, EV_TIMEOUT, 1);
}

static void
queue_on_txn_msg(struct queue *q, struct qpeer *p, const struct ipc_hdr *h,
		 struct ipc_in *in)
{
	struct txn *t = txn_find(q, p, h->id);
	const void *data;
	size_t n;

	if (h->type == Q_ABORT && (t == NULL || t->committing)) {
		/* the client left while its commit ran, or crossed with
		 * Q_RESULT: the commit goes on, its answer is dropped */
		ipc_end(in);
		if (t != NULL)
			t->peer = NULL;
		return;
	}
	if (t == NULL || t->committing)
		log_panic("smtp-in sent %u for unknown transaction", h->type);
	switch (h->type) {
	case Q_PREPEND: {
		/* trace fields go on top: a later prepend is above an
		 * earlier one (Authentication-Results above our Received) */
		struct buf nb;
		data = ipc_get_data(in, &n);
		ipc_end(in);
		buf_init(&nb, t->msg->prepend.max);
		if (buf_add(&nb, data, n) == 0 &&
		    buf_add(&nb,
			    t->msg->prepend.data ? t->msg->prepend.data : "",
			    t->msg->prepend.len) == 0) {
			buf_free(&t->msg->prepend);
			t->msg->prepend = nb;
		} else {
			buf_free(&nb);
		}
		break;
	}
	case Q_CHUNK:
		data = ipc_get_data(in, &n);
		ipc_end(in);
		spool_msg_write(q->spool, t->msg, data, n);
		queue_owe_credit(q, t);
		break;
	case Q_END:
		ipc_end(in);
		t->owed = 0; /* no chunk follows: the credit would go unused */
		if (t->msg->write_errno) {
			int full = t->msg->write_errno == ENOSPC ||
				   t->msg->write_errno == EDQUOT;
			log_err("%s: write to spool failed: %s", t->msg->id,
				strerror(t->msg->write_errno));
			queue_reply(p, h->id, full ? 452 : 451,
				    full ? "4.3.1" : "4.3.0",
				    full ? "Insufficient system storage"
					 : "Local error in processing");
			txn_free(q, t);
			break;
		}
		t->committing = 1;
		spool_msg_commit(q->spool, t->msg, queue_on_committed, t);
		break;
	case Q_DMARC:
		queue_on_dmarc_row(t, in);
		break;
	case Q_ABORT:
		ipc_end(in);
		if (t->msg->dmarc != NULL) {
			/* refused by DMARC: the row counts without the
			 * message */
			spool_dmarc_add(q->spool, t->msg->dmarc);
			t->msg->dmarc = NULL;
		}
		txn_free(q, t);
		break;
	}
}

/* ---- peers ------------------------------------------------------------ */

static void
queue_peer_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
	       int fd, void *arg)
{
	struct qpeer *p = arg;

	if (fd >= 0)
		close(fd);
	switch (h->type) {
	case Q_OPEN:
		queue_on_open(p->q, p, h, in);
		break;
	case Q_PREPEND:
	case Q_CHUNK:
	case Q_DMARC:
	case Q_END:
	case Q_ABORT:
		queue_on_txn_msg(p->q, p, h, in);
		break;
	case L_RESULT:
		queue_on_local_result(p->q, h, in);
		break;
	case R_ROUTE_RESULT:
		queue_on_route(p->q, h, in);
		break;
	case O_RESULT:
		queue_on_smtp_result(p->q, h, in);
		break;
	case O_CLOSED:
		queue_on_smtp_closed(p->q, p, h, in);
		break;
	case D_ANSWER:
		dmarc_agg_answer(p->q->dmarc, h->id, in);
		break;
	default:
		log_panic("queue: unexpected message %u from %s", h->type,
			  role_name(p->role));
	}
}

static void
queue_peer_close(struct ipc *ipc, void *arg)
{
	struct qpeer *p = arg;
	struct queue *q = p->q;

	log_info("lost %s[%u]", role_name(p->role), p->instance);
	/* out of the list first: nothing below may pick it again */
	for (struct qpeer **pp = &q->peers; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	for (struct txn *t = q->txns, *n; t; t = n) {
		n = t->next;
		if (t->peer != p)
			continue;
		if (t->committing)
			t->peer = NULL;
		else
			txn_free(q, t);
	}
	if (q->local == p) {
		/* deliveries in flight return to the ready set */
		q->local = NULL;
		for (struct entry *e = q->entries; e; e = e->next) {
			if (!e->at_local)
				continue;
			if (q->stopping) {
				e->at_local = 0;
				e->in_flight = 0;
				q->inflight--;
			} else {
				queue_local_crashed(q, e);
			}
		}
	}
	if (q->lookup == p) {
		q->lookup = NULL;
		queue_rjobs_lost(q, 0, NULL, "lookup role died");
		dmarc_agg_lookup_lost(q->dmarc);
	}
	if (p->role == ROLE_SMTP_OUT) {
		q->nsmtp_out--;
		queue_rjobs_lost(q, 2, p,
				 "the smtp-out role died during this delivery; "
				 "the message may be delivered twice");
	}
	ipc_free(p->ipc);
	xfree(p);
}

static void
queue_add_peer(struct queue *q, int fd, enum role_id role, unsigned inst)
{
	struct qpeer *p = xcalloc(1, sizeof(*p));

	p->q = q;
	p->role = role;
	p->instance = inst;
	log_debug("%s[%u] connected", role_name(role), inst);
	p->ipc = ipc_new(q->env->base, fd, queue_peer_msg, queue_peer_close, p);
	p->next = q->peers;
	q->peers = p;
	if (role == ROLE_LOCAL)
		q->local = p;
	else if (role == ROLE_LOOKUP)
		q->lookup = p;
	else if (role == ROLE_SMTP_OUT)
		q->nsmtp_out++;
	queue_dispatch(q);
}

/* ---- control socket ---------------------------------------------------- */

static void
ctl_free(struct ctlconn *c)
{
	event_free(c->ev);
	close(c->fd);
	buf_free(&c->out);
	xfree(c);
}

static void
ctl_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct ctlconn *c = arg;
	ssize_t w;

	if (what & EV_TIMEOUT) {
		ctl_free(c);
		return;
	}
	w = write(fd, c->out.data + c->off, c->out.len - c->off);
	if (w < 0 && errno != EAGAIN && errno != EINTR) {
		ctl_free(c);
		return;
	}
	if (w > 0)
		c->off += (size_t)w;
	if (c->off == c->out.len)
		ctl_free(c);
}

static void
ctl_answer(struct ctlconn *c, const char *head, const struct buf *payload)
{
	struct timeval tv = {QUEUE_CTL_TIMEOUT_S, 0};

	buf_init(&c->out, 128u * 1024 * 1024);
	buf_adds(&c->out, head);
	buf_adds(&c->out, "\n");
	if (payload && payload->data)
		buf_add(&c->out, payload->data, payload->len);
	event_free(c->ev);
	c->ev = event_new(c->q->env->base, c->fd, EV_WRITE | EV_PERSIST,
			  ctl_on_write, c);
	event_add(c->ev, &tv);
}

static void
ctl_on_query(void *arg, int err, struct buf *out)
{
	struct ctlconn *c = arg;

	if (err)
		ctl_answer(c, "error no such message in the queue", NULL);
	else
		ctl_answer(c, "ok", out);
}

/* flush [ID]: every waiting recipient (of ID) is due now. */
static void
ctl_flush(struct ctlconn *c, const char *id)
{
	struct queue *q = c->q;
	struct buf out;
	unsigned n = 0;

	for (struct entry *e = q->entries; e; e = e->next) {
		if (e->held || e->in_flight || (id && strcmp(e->msg, id) != 0))
			continue;
		entry_set_next(q, e, clock_now());
		n++;
	}
	if (id && n == 0) {
		ctl_answer(c,
			   "error no waiting recipient of that message "
			   "(unknown, held or being delivered)",
			   NULL);
		return;
	}
	log_info("%s: flush requested by the operator (%u recipient(s))",
		 id ? id : "queue", n);
	buf_init(&out, 256);
	buf_addf(&out, "%u recipient(s) scheduled for delivery now\n", n);
	ctl_answer(c, "ok", &out);
	buf_free(&out);
	queue_dispatch(q);
}

struct ctl_admin_op {
	struct ctlconn *c;
	char id[SPOOL_ID_LEN + 1];
	char verb[16];
};

static void
ctl_on_admin(void *arg, int err)
{
	struct ctl_admin_op *op = arg;
	struct queue *q = op->c->q;
	struct buf out;

	if (err) {
		ctl_answer(op->c, "error no such message in the queue", NULL);
		xfree(op);
		return;
	}
	for (struct entry *e = q->entries, *n; e; e = n) {
		n = e->next;
		if (strcmp(e->msg, op->id) != 0)
			continue;
		if (strcmp(op->verb, "hold") == 0) {
			entry_set_held(q, e, 1);
		} else if (strcmp(op->verb, "release") == 0) {
			entry_set_held(q, e, 0);
			e->crashes = 0;
			entry_set_next(q, e, clock_now());
		} else if (!e->in_flight) {
			entry_remove(q, e); /* deleted */
		} else {
			e->deleted = 1; /* dropped when its attempt ends */
		}
	}
	log_info("%s: %s by the operator", op->id,
		 strcmp(op->verb, "hold") == 0	    ? "held"
		 : strcmp(op->verb, "release") == 0 ? "released"
						    : "deleted");
	buf_init(&out, 256);
	buf_addf(&out, "%s: %s\n", op->id, op->verb);
	ctl_answer(op->c, "ok", &out);
	buf_free(&out);
	xfree(op);
	queue_dispatch(q);
}

/* bounce ID: every waiting recipient fails now, with a DSN. */
static void
ctl_bounce(struct ctlconn *c, const char *id)
{
	struct queue *q = c->q;
	struct buf out;
	unsigned n = 0;

	for (struct entry *e = q->entries, *nx; e; e = nx) {
		nx = e->next;
		if (e->in_flight || strcmp(e->msg, id) != 0)
			continue;
		e->in_flight = 1;
		queue_finish(q, e, MAILDIR_PERM, "5.0.0", "operator",
			     "returned to the sender by the postmaster "
			     "(todoku queue bounce)");
		n++;
	}
	if (n == 0) {
		ctl_answer(c, "error no waiting recipient of that message",
			   NULL);
		return;
	}
	log_info("%s: bounced by the operator (%u recipient(s))", id, n);
	buf_init(&out, 256);
	buf_addf(&out, "%s: %u recipient(s) bounced\n", id, n);
	ctl_answer(c, "ok", &out);
	buf_free(&out);
}

static void
ctl_admin(struct ctlconn *c, const char *verb, const char *id)
{
	struct ctl_admin_op *op;

	if (strcmp(verb, "bounce") == 0) {
		ctl_bounce(c, id);
		return;
	}
	op = xcalloc(1, sizeof(*op));
	op->c = c;
	snprintf(op->id, sizeof(op->id), "%s", id);
	snprintf(op->verb, sizeof(op->verb), "%s", verb);
	spool_admin(c->q->spool,
		    strcmp(verb, "hold") == 0	   ? SPOOL_HOLD
		    : strcmp(verb, "release") == 0 ? SPOOL_RELEASE
						   : SPOOL_DELETE,
		    id, ctl_on_admin, op);
}

static void
ctl_on_dmarc_done(void *arg, const struct buf *summary)
{
	ctl_answer(arg, "ok", summary);
}

/* dmarc-report: report every stored row now; answer when queued. */
static void
ctl_dmarc_report(struct ctlconn *c)
{
	/* stop reading: the answer comes after DNS and commits */
	event_del(c->ev);
	if (dmarc_agg_run(c->q->dmarc, clock_now(), ctl_on_dmarc_done, c) < 0)
		ctl_answer(c, "error a DMARC report run is going on", NULL);
}

static void
ctl_handle(struct ctlconn *c)
{
	char *save = NULL;
	char *verb = strtok_r(c->in, " ", &save);
	char *a1 = strtok_r(NULL, " ", &save);
	char *a2 = strtok_r(NULL, " ", &save);
	struct queue *q = c->q;

	if (verb && strcmp(verb, "list") == 0 &&
	    (a1 == NULL || strcmp(a1, "json") == 0)) {
		spool_query(q->spool, SPOOL_LIST, NULL, a1 != NULL,
			    ctl_on_query, c);
	} else if (verb && strcmp(verb, "show") == 0 && a1 &&
		   strlen(a1) <= SPOOL_ID_LEN &&
		   (a2 == NULL || strcmp(a2, "json") == 0)) {
		spool_query(q->spool, SPOOL_SHOW, a1, a2 != NULL, ctl_on_query,
			    c);
	} else if (verb && strcmp(verb, "flush") == 0 &&
		   (a1 == NULL || strlen(a1) <= SPOOL_ID_LEN)) {
		ctl_flush(c, a1);
	} else if (verb && a1 && strlen(a1) <= SPOOL_ID_LEN &&
		   (strcmp(verb, "hold") == 0 || strcmp(verb, "release") == 0 ||
		    strcmp(verb, "delete") == 0 ||
		    strcmp(verb, "bounce") == 0)) {
		ctl_admin(c, verb, a1);
	} else if (verb && strcmp(verb, "dmarc-report") == 0 && a1 == NULL) {
		ctl_dmarc_report(c);
	} else {
		ctl_answer(c, "error unknown control request", NULL);
	}
}

static void
ctl_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ctlconn *c = arg;
	ssize_t r;
	char *nl;

	if (what & EV_TIMEOUT) {
		ctl_free(c);
		return;
	}
	r = read(fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen);
	if (r <= 0) {
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		ctl_free(c);
		return;
	}
	c->inlen += (size_t)r;
	c->in[c->inlen] = '\0';
	if ((nl = strchr(c->in, '\n')) == NULL) {
		if (c->inlen == sizeof(c->in) - 1)
			ctl_free(c);
		return;
	}
	*nl = '\0';
	event_del(c->ev);
	ctl_handle(c);
}

static void
ctl_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct timeval tv = {QUEUE_CTL_TIMEOUT_S, 0};
	struct ctlconn *c;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (cfd < 0)
		return;
	c = xcalloc(1, sizeof(*c));
	c->q = q;
	c->fd = cfd;
	buf_init(&c->out, 0);
	c->ev =
	    event_new(q->env->base, cfd, EV_READ | EV_PERSIST, ctl_on_read, c);
	event_add(c->ev, &tv);
}

static void
queue_ctl_listen(struct queue *q)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s",
		 q->env->conf->spool, CTL_SOCKET_NAME);
	unlink(sun.sun_path);
	q->ctl_fd =
	    socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (q->ctl_fd < 0 ||
	    bind(q->ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(q->ctl_fd, 16) < 0)
		log_fatal("control socket %s: %s", sun.sun_path,
			  strerror(errno));
	q->ctl_ev = event_new(q->env->base, q->ctl_fd, EV_READ | EV_PERSIST,
			      ctl_on_accept, q);
	event_add(q->ctl_ev, NULL);
}

/* ---- master channel ----------------------------------------------------- */

static void
queue_shutdown(struct queue *q)
{
	q->stopping = 1;
	spool_close(q->spool);
	q->spool = NULL;
	for (struct qpeer *p = q->peers; p; p = p->next)
		ipc_flush(p->ipc);
	log_info("stopped");
	exit(0);
}

static void
queue_reload(struct queue *q, struct ipc_in *in)
{
	struct conf *nc = role_reload_conf(q->env, in);

	if (nc == NULL)
		return;
	/* attempts in flight keep the old configuration (struct qconf) */
	if (qconf_now != NULL)
		qconf_drop(qconf_now);
	else
		conf_free(q->env->conf);
	qconf_now = NULL;
	q->env->conf = nc;
	spool_set_bounce_max(q->spool, nc->bounce_size_limit);
	log_set_level(nc->log_level);
	log_info("configuration reloaded");
}

static void
queue_master_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		 int fd, void *arg)
{
	struct queue *q = arg;

	switch (h->type) {
	case M_PEER: {
		enum role_id r = (enum role_id)ipc_get_u8(in);
		unsigned inst = ipc_get_u32(in);
		ipc_end(in);
		queue_add_peer(q, fd, r, inst);
		return;
	}
	case M_RELOAD:
		queue_reload(q, in);
		break;
	case M_SHUTDOWN:
		ipc_end(in);
		queue_shutdown(q);
		break;
	default:
		log_panic("queue: unexpected master message %u", h->type);
	}
	if (fd >= 0)
		close(fd);
}

static void
queue_master_close(struct ipc *ipc, void *arg)
{
	struct queue *q = arg;

	log_warn("master went away; stopping");
	queue_shutdown(q);
}

/* Without srs-secret-file, mail forwarded to other domains keeps its
 * sender and fails SPF there: say so once at start. */
static void
queue_srs_warn(const struct conf *c)
{
	const char *fwd = NULL;

	if (c->nsrs_secrets > 0)
		return;
	for (size_t i = 0; i < c->naliases && fwd == NULL; i++)
		for (size_t k = 0; k < c->aliases[i].nto && fwd == NULL; k++)
			if (conf_domain_find(
				c, domain_of(c->aliases[i].to[k])) == NULL)
				fwd = c->aliases[i].to[k];
	for (size_t i = 0; i < c->ndomains && fwd == NULL; i++)
		if (c->domains[i].catch_all &&
		    conf_domain_find(c, domain_of(c->domains[i].catch_all)) ==
			NULL)
			fwd = c->domains[i].catch_all;
	if (fwd != NULL)
		log_warn("aliases forward to remote addresses (e.g. <%s>) but "
			 "SRS is off ([server] srs-secret-file not set): "
			 "forwarded mail keeps its original sender and may "
			 "fail SPF at the next hop",
			 fwd);
}

static const struct conf *
queue_dmarc_conf(void *arg)
{
	struct queue *q = arg;
	return q->env->conf;
}

static struct ipc *
queue_dmarc_lookup(void *arg)
{
	struct queue *q = arg;
	return q->lookup ? q->lookup->ipc : NULL;
}

/* A DMARC report is in the spool: deliver it like any message. */
static void
queue_dmarc_queued(void *arg, struct spool_msg *m)
{
	struct queue *q = arg;

	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (DMARC report queued)",
		 m->id, m->sender, (unsigned long long)m->size, m->nrcpts);
	for (size_t i = 0; i < m->nrcpts; i++)
		entry_add(q, m->rcpts[i].id, m->id, m->sender, m->rcpts[i].addr,
			  m->arrival, m->arrival);
	queue_dispatch(q);
}

/* Environment knobs for the integration tests only:
 * TODOKU_SPOOL_LAZY_MS stretches how long delivery results wait for a
 * commit (test_outbound_wire.py: slots must not wait for it). */
static void
queue_test_knobs(struct queue *q)
{
	const char *lazy = getenv("TODOKU_SPOOL_LAZY_MS");

	if (lazy != NULL)
		spool_set_lazy_ms(q->spool, (unsigned)strtoul(lazy, NULL, 10));
}

int
queue_main(struct role_env *env)
{
	static struct queue q;
	char err[512];
	struct timeval one = {1, 0};
	int n;

	q.env = env;
	srandom((unsigned)(clock_mono_ms() ^ (uint64_t)getpid()));
	q.spool = spool_open(env->conf->spool, env->conf->inline_body_max,
			     env->base, err, sizeof(err));
	if (q.spool == NULL)
		log_fatal("%s", err);
	spool_set_bounce_max(q.spool, env->conf->bounce_size_limit);
	spool_set_on_fail(q.spool, queue_on_spool_failed, &q);
	queue_test_knobs(&q);
	n = spool_load_pending(q.spool, queue_load_one, &q);
	if (n > 0)
		log_info("recovered %d undelivered recipient(s) from the spool",
			 n);
	queue_srs_warn(env->conf);
	{
		struct dmarc_agg_env de = {q.spool, queue_dmarc_conf,
					   queue_dmarc_lookup,
					   queue_dmarc_queued, &q};
		q.dmarc = dmarc_agg_new(&de);
	}
	queue_ctl_listen(&q);
	q.master = ipc_new(env->base, ROLE_MASTER_FD, queue_master_msg,
			   queue_master_close, &q);
	q.tick = event_new(env->base, -1, EV_PERSIST, queue_on_tick, &q);
	event_add(q.tick, &one);
	q.kick = event_new(env->base, -1, 0, queue_on_kick, &q);
	q.credit_ev = event_new(env->base, -1, 0, queue_on_credit, &q);
	event_base_dispatch(env->base);
	return 0;
}
