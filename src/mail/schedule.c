/*
 * schedule — see schedule.h.
 */
#include "mail/schedule.h"

#include "lib/alloc.h"

/* ---- time ---- */

time_t
sched_backoff(const struct sched_params *p, unsigned step)
{
	if (p->nretry == 0)
		return SCHED_RETRY_DEFAULT;
	return (time_t)p->retry[step < p->nretry ? step : p->nretry - 1];
}

time_t
sched_max_backoff(const struct sched_params *p)
{
	time_t m = 0;

	if (p->nretry == 0)
		return SCHED_RETRY_DEFAULT;
	for (size_t i = 0; i < p->nretry; i++)
		if ((time_t)p->retry[i] > m)
			m = (time_t)p->retry[i];
	return m;
}

time_t
sched_retry_delay(const struct sched_params *p, unsigned attempts, uint32_t rnd)
{
	time_t d = sched_backoff(p, attempts == 0 ? 0 : attempts - 1);

	/* up to 10% jitter so a burst of failures does not retry in step */
	if (d >= 10)
		d += (time_t)(rnd % (uint32_t)(d / 10 + 1));
	return d < 1 ? 1 : d;
}

time_t
sched_clamp(const struct sched_params *p, time_t t, time_t now)
{
	time_t lim = now + sched_max_backoff(p);

	return t > lim ? lim : t;
}

void
sched_on_temp(const struct sched_params *p, const struct sched_rcpt *r,
	      time_t now, uint32_t rnd, struct sched_temp *out)
{
	time_t deadline = r->arrival + (time_t)p->give_up_after;

	out->retry_until = deadline;
	out->expire = !r->held && now >= deadline;
	out->warn = 0;
	out->next = now + sched_retry_delay(p, r->attempts + 1, rnd);
	if (out->expire)
		return;
	/* the last retry falls on the deadline, so expiry is on time */
	if (!r->held && out->next > deadline)
		out->next = deadline;
	if (!r->warned && !r->null_sender &&
	    now >= r->arrival + (time_t)p->warn_after)
		out->warn = 1;
}

/* ---- destinations ---- */

void
sched_dest_init(struct sched_dest *d, const struct sched_params *p)
{
	*d = (struct sched_dest){0};
	d->limit = p->dest_init < 1.0 ? 1.0 : p->dest_init;
	if (d->limit > p->dest_max)
		d->limit = p->dest_max < 1.0 ? 1.0 : p->dest_max;
}

void
sched_dest_opened(struct sched_dest *d, int probe)
{
	d->active++;
	if (probe)
		d->probing = 1;
}

static enum sched_event
dest_probe_closed(struct sched_dest *d, const struct sched_params *p,
		  enum sched_outcome o, time_t now)
{
	d->probing = 0;
	if (o == SCHED_SESSION_OK) {
		unsigned active = d->active; /* still open: they hold slots */
		sched_dest_init(d, p);
		d->active = active;
		return SCHED_EV_REVIVED;
	}
	if (o == SCHED_SESSION_CONN_FAIL) {
		d->dead_step++;
		d->probe_at = now + sched_backoff(p, d->dead_step);
		return SCHED_EV_PROBE_FAILED;
	}
	return SCHED_EV_NONE; /* untried: the next pump probes again */
}

static enum sched_event
dest_failed(struct sched_dest *d, const struct sched_params *p, time_t now)
{
	if (d->limit > 1.0) {
		d->limit -= 1.0 / d->limit;
		if (d->limit < 1.0)
			d->limit = 1.0;
		return SCHED_EV_SHRANK;
	}
	d->limit = 1.0;
	if (++d->fails >= p->dead_after && !d->dead) {
		d->dead = 1;
		d->dead_step = 0;
		d->probe_at = now + sched_backoff(p, 0);
		return SCHED_EV_DEAD;
	}
	return SCHED_EV_NONE;
}

void
sched_dest_released(struct sched_dest *d)
{
	if (d->active > 0)
		d->active--;
}

enum sched_event
sched_dest_outcome(struct sched_dest *d, const struct sched_params *p,
		   int probe, enum sched_outcome o, time_t now)
{
	if (probe)
		return dest_probe_closed(d, p, o, now);
	if (o == SCHED_SESSION_CONN_FAIL)
		return dest_failed(d, p, now);
	if (o != SCHED_SESSION_OK)
		return SCHED_EV_NONE;
	d->fails = 0;
	if (d->limit >= p->dest_max)
		return SCHED_EV_NONE;
	d->limit += 1.0 / d->limit;
	if (d->limit > p->dest_max)
		d->limit = p->dest_max;
	return SCHED_EV_GREW;
}

enum sched_event
sched_dest_closed(struct sched_dest *d, const struct sched_params *p, int probe,
		  enum sched_outcome o, time_t now)
{
	sched_dest_released(d);
	return sched_dest_outcome(d, p, probe, o, now);
}

/* ---- the decision ---- */

static int
job_cmp(const struct sched_job *jobs, size_t x, size_t y)
{

	if (jobs[x].next_attempt != jobs[y].next_attempt)
		return jobs[x].next_attempt < jobs[y].next_attempt ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Merge sort of job indexes by (next attempt, index): qsort has no
 * context argument in C17. */
static void
sort_ix(size_t *ix, size_t *tmp, size_t n, const struct sched_job *jobs)
{
	size_t h = n / 2, i = 0, k = 0, o = 0;

	if (n < 2)
		return;
	sort_ix(ix, tmp, h, jobs);
	sort_ix(ix + h, tmp, n - h, jobs);
	while (i < h && k < n - h)
		tmp[o++] = job_cmp(jobs, ix[i], ix[h + k]) <= 0 ? ix[i++]
								: ix[h + k++];
	while (i < h)
		tmp[o++] = ix[i++];
	while (k < n - h)
		tmp[o++] = ix[h + k++];
	for (i = 0; i < n; i++)
		ix[i] = tmp[i];
}

struct decide {
	const struct sched_params *p;
	const struct sched_job *jobs;
	const struct sched_dest *dests;
	size_t ndests;
	struct sched_state *st;
	size_t *head;  /* per destination: first waiting job, or SIZE_MAX */
	size_t *next;  /* per job: next waiting job of its destination */
	unsigned free; /* session slots left overall */
	struct sched_action *acts;
	size_t n, max;
	time_t wake;
};

static void
emit(struct decide *x, size_t job, enum sched_act act, time_t until)
{
	x->acts[x->n++] = (struct sched_action){job, act, until};
}

static size_t
pop(struct decide *x, size_t d)
{
	size_t j = x->head[d];

	x->head[d] = x->next[j];
	return j;
}

/* A dead destination: one probe when it is due and a slot is free, the
 * rest deferred until the next probe (or their own expiry, sooner). */
static void
decide_dead(struct decide *x, size_t d)
{
	const struct sched_dest *ds = &x->dests[d];
	int probing = ds->probing;
	time_t now = x->st->now;

	while (x->head[d] != SIZE_MAX && x->n < x->max) {
		size_t j;
		time_t until, deadline;
		if (!probing && now >= ds->probe_at) {
			if (x->free == 0)
				return; /* waits for a slot, due as it is */
			emit(x, pop(x, d), SCHED_PROBE, 0);
			x->free--;
			probing = 1;
			continue;
		}
		j = pop(x, d);
		until = probing ? now + sched_backoff(x->p, ds->dead_step + 1)
				: ds->probe_at;
		deadline = x->jobs[j].arrival + (time_t)x->p->give_up_after;
		if (until > deadline)
			until = deadline;
		until = sched_clamp(x->p, until, now);
		if (until <= now)
			until = now + 1;
		emit(x, j, SCHED_DEFER, until);
		if (until < x->wake)
			x->wake = until;
	}
}

/* Live destinations: one new session per destination per round. */
static void
decide_live(struct decide *x, unsigned *slots)
{
	size_t nd = x->ndests, c = x->st->cursor % (nd ? nd : 1);
	int progress = 1;

	while (progress && x->free > 0 && x->n < x->max) {
		progress = 0;
		for (size_t k = 0; k < nd && x->free > 0 && x->n < x->max;
		     k++) {
			size_t d = (c + k) % nd;
			if (slots[d] == 0 || x->head[d] == SIZE_MAX)
				continue;
			emit(x, pop(x, d), SCHED_START, 0);
			slots[d]--;
			x->free--;
			x->st->cursor = (uint32_t)((d + 1) % nd);
			progress = 1;
		}
		c = x->st->cursor;
	}
}

/* Due jobs left without a slot: past their deadline they expire now;
 * the others wait for a session to end (an event of the caller, which
 * decides again then), or for their deadline, whichever comes first. */
static void
decide_rest(struct decide *x)
{
	for (size_t d = 0; d < x->ndests; d++) {
		for (size_t *pj = &x->head[d]; *pj != SIZE_MAX;) {
			size_t j = *pj;
			time_t deadline =
			    x->jobs[j].arrival + (time_t)x->p->give_up_after;
			if (x->st->now >= deadline && x->n < x->max) {
				*pj = x->next[j];
				emit(x, j, SCHED_EXPIRE, 0);
				continue;
			}
			if (x->n >= x->max || deadline < x->wake)
				x->wake =
				    x->n >= x->max ? x->st->now : deadline;
			pj = &x->next[j];
		}
	}
}

/* Index the waiting jobs per destination in next-attempt order; the
 * wake-up starts at the earliest job not yet due. */
static int
decide_index(struct decide *x, size_t njobs)
{
	size_t *ix = tcalloc(njobs ? njobs : 1, sizeof(*ix));
	size_t *tmp = tcalloc(njobs ? njobs : 1, sizeof(*tmp));
	size_t n = 0;

	if (ix == NULL || tmp == NULL) {
		xfree(ix);
		xfree(tmp);
		return -1;
	}
	for (size_t j = 0; j < njobs; j++) {
		const struct sched_job *jb = &x->jobs[j];
		if (jb->held || jb->in_flight || jb->dest >= x->ndests)
			continue;
		if (jb->next_attempt > x->st->now) {
			if (jb->next_attempt < x->wake)
				x->wake = jb->next_attempt;
			continue;
		}
		ix[n++] = j;
	}
	sort_ix(ix, tmp, n, x->jobs);
	for (size_t i = n; i-- > 0;) {
		size_t d = x->jobs[ix[i]].dest;
		x->next[ix[i]] = x->head[d];
		x->head[d] = ix[i];
	}
	xfree(ix);
	xfree(tmp);
	return 0;
}

static unsigned
dest_slots(const struct sched_dest *d)
{
	unsigned lim = d->limit < 1.0 ? 1 : (unsigned)d->limit;

	return d->dead || d->active >= lim ? 0 : lim - d->active;
}

size_t
sched_decide(const struct sched_params *p, const struct sched_job *jobs,
	     size_t njobs, const struct sched_dest *dests, size_t ndests,
	     struct sched_state *st, struct sched_action *acts, size_t max,
	     time_t *wake)
{
	struct decide x = {p,	 jobs, dests, ndests, st,  NULL,
			   NULL, 0,    acts,  0,      max, 0};
	unsigned *slots = NULL;

	x.wake = st->now + sched_max_backoff(p);
	if (st->later != 0 && st->later < x.wake)
		x.wake = st->later;
	x.free =
	    st->active < p->max_sessions ? p->max_sessions - st->active : 0;
	x.head = tcalloc(ndests ? ndests : 1, sizeof(*x.head));
	x.next = tcalloc(njobs ? njobs : 1, sizeof(*x.next));
	slots = tcalloc(ndests ? ndests : 1, sizeof(*slots));
	if (x.head == NULL || x.next == NULL || slots == NULL)
		goto out;
	for (size_t d = 0; d < ndests; d++) {
		x.head[d] = SIZE_MAX;
		slots[d] = dest_slots(&dests[d]);
	}
	if (decide_index(&x, njobs) < 0)
		goto out;
	for (size_t d = 0; d < ndests; d++)
		if (dests[d].dead)
			decide_dead(&x, d);
	decide_live(&x, slots);
	decide_rest(&x);
out:
	if (x.head == NULL || x.next == NULL || slots == NULL)
		x.wake = st->now;
	xfree(x.head);
	xfree(x.next);
	xfree(slots);
	*wake = x.wake < st->now ? st->now : x.wake;
	return x.n;
}
