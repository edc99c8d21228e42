/*
 * test_sched — property tests of the delivery scheduler (mail/schedule.c).
 *
 * Queues, destination states and event sequences are generated from a
 * seeded pseudo-random generator (splitmix64); every case derives its
 * own seed from TODOKU_SCHED_SEED (default below) and the case number,
 * and a failing property prints that seed so the case can be replayed
 * with TODOKU_SCHED_SEED=<seed> TODOKU_SCHED_CASES=1.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/schedule.h"

/* ---- generator ---- */

static uint64_t rng_state;
static uint64_t case_seed;

static uint64_t
rnd64(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* uniform in [lo, hi] */
static long
rnd(long lo, long hi)
{
	return lo + (long)(rnd64() % (uint64_t)(hi - lo + 1));
}

static int
chance(int percent)
{
	return rnd(0, 99) < percent;
}

static uint64_t
base_seed(void)
{
	const char *s = getenv("TODOKU_SCHED_SEED");
	return s ? strtoull(s, NULL, 0) : 0x746f646f6b75ULL;
}

static unsigned
ncases(unsigned dflt)
{
	const char *s = getenv("TODOKU_SCHED_CASES");
	return s ? (unsigned)strtoul(s, NULL, 0) : dflt;
}

static void
case_begin(unsigned i)
{
	case_seed = base_seed() + i * 0x100000001b3ULL;
	rng_state = case_seed;
}

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			char m_[256];                                          \
			snprintf(m_, sizeof(m_), __VA_ARGS__);                 \
			fail_msg("%s (%s): seed TODOKU_SCHED_SEED=%llu "       \
				 "TODOKU_SCHED_CASES=1",                       \
				 m_, #cond, (unsigned long long)case_seed);    \
		}                                                              \
	} while (0)

/* ---- generated worlds ---- */

static uint64_t retry_buf[8];

static void
gen_params(struct sched_params *p, int seconds)
{
	p->dest_init = (double)rnd(1, 6);
	p->dest_max = p->dest_init + (double)rnd(0, 14);
	p->dead_after = (unsigned)rnd(1, 4);
	p->max_sessions = (unsigned)rnd(1, 40);
	p->nretry = (size_t)rnd(0, 6);
	for (size_t i = 0; i < p->nretry; i++)
		retry_buf[i] = (uint64_t)(seconds ? rnd(1, 30) : rnd(60, 7200));
	p->retry = retry_buf;
	p->warn_after = (uint64_t)rnd(1, 6) * 3600;
	p->give_up_after = p->warn_after + (uint64_t)rnd(1, 5) * 86400;
}

static unsigned
slots_of(const struct sched_dest *d)
{
	unsigned lim = (unsigned)floor(d->limit);
	return d->dead || d->active >= lim ? 0 : lim - d->active;
}

static void
gen_dest(struct sched_dest *d, const struct sched_params *p, time_t now)
{
	sched_dest_init(d, p);
	d->limit = 1.0 + (p->dest_max - 1.0) * (double)rnd(0, 1000) / 1000.0;
	d->active = (unsigned)rnd(0, (long)d->limit + 2);
	if (chance(25)) {
		d->dead = 1;
		d->limit = 1.0;
		d->dead_step = (unsigned)rnd(0, 8);
		d->probe_at = now + rnd(-600, 600);
		d->probing = (uint8_t)chance(30);
	}
}

/* ---- properties of one decision ---- */

#define NJ_MAX 200
#define ND_MAX 16

struct world {
	struct sched_params p;
	struct sched_job jobs[NJ_MAX];
	size_t nj;
	struct sched_dest dests[ND_MAX];
	size_t nd;
	struct sched_state st;
};

static void
gen_world(struct world *w)
{
	time_t now = 1700000000 + rnd(0, 1000000);

	gen_params(&w->p, 0);
	w->nd = (size_t)rnd(1, ND_MAX);
	for (size_t d = 0; d < w->nd; d++)
		gen_dest(&w->dests[d], &w->p, now);
	w->nj = (size_t)rnd(0, NJ_MAX);
	for (size_t j = 0; j < w->nj; j++) {
		struct sched_job *jb = &w->jobs[j];
		jb->arrival = now - rnd(0, 400000);
		jb->next_attempt = now + rnd(-3000, 3000);
		jb->dest = (uint32_t)rnd(0, (long)w->nd - 1);
		jb->held = (uint8_t)chance(15);
		jb->in_flight = (uint8_t)chance(10);
	}
	w->st.now = now;
	w->st.active = (unsigned)rnd(0, (long)w->p.max_sessions + 3);
	w->st.cursor = (uint32_t)rnd(0, 100);
}

static void
check_decision(const struct world *w, const struct sched_action *a, size_t n,
	       size_t max, time_t wake)
{
	unsigned starts[ND_MAX] = {0}, probes[ND_MAX] = {0}, total = 0;
	uint8_t acted[NJ_MAX] = {0};
	time_t now = w->st.now, latest_start[ND_MAX];
	unsigned free = w->st.active < w->p.max_sessions
			    ? w->p.max_sessions - w->st.active
			    : 0;

	CHECK(n <= max, "%zu actions for room %zu", n, max);
	for (size_t d = 0; d < w->nd; d++)
		latest_start[d] = INT64_MIN;
	for (size_t i = 0; i < n; i++) {
		const struct sched_job *jb = &w->jobs[a[i].job];
		const struct sched_dest *d = &w->dests[jb->dest];
		CHECK(a[i].job < w->nj, "job index %zu", a[i].job);
		CHECK(!acted[a[i].job], "job %zu acted on twice", a[i].job);
		acted[a[i].job] = 1;
		CHECK(!jb->held, "held job %zu acted on (%d)", a[i].job,
		      a[i].act);
		CHECK(!jb->in_flight, "in-flight job %zu acted on", a[i].job);
		CHECK(jb->next_attempt <= now, "job %zu not due", a[i].job);
		if (a[i].act == SCHED_START) {
			CHECK(!d->dead, "start at a dead destination");
			starts[jb->dest]++;
			total++;
			if (jb->next_attempt > latest_start[jb->dest])
				latest_start[jb->dest] = jb->next_attempt;
		} else if (a[i].act == SCHED_PROBE) {
			CHECK(d->dead && !d->probing && now >= d->probe_at,
			      "probe out of turn (dead %d probing %d)", d->dead,
			      d->probing);
			probes[jb->dest]++;
			total++;
		} else if (a[i].act == SCHED_EXPIRE) {
			CHECK(now >= jb->arrival + (time_t)w->p.give_up_after,
			      "expired before give-up-after");
		} else {
			CHECK(a[i].act == SCHED_DEFER, "bad action %d",
			      a[i].act);
			CHECK(d->dead, "deferral at a live destination");
			CHECK(a[i].until > now, "deferred into the past");
			CHECK(a[i].until <= now + sched_max_backoff(&w->p),
			      "deferred beyond the largest backoff");
		}
	}
	CHECK(total <= free, "%u sessions opened, %u free overall", total,
	      free);
	for (size_t d = 0; d < w->nd; d++) {
		CHECK(starts[d] <= slots_of(&w->dests[d]),
		      "destination %zu: %u starts, limit %.2f active %u", d,
		      starts[d], w->dests[d].limit, w->dests[d].active);
		CHECK(probes[d] <= 1, "%u probes at once", probes[d]);
	}
	CHECK(wake >= now, "wake-up %lld in the past", (long long)(wake - now));
	for (size_t i = 0; i < n; i++)
		if (a[i].act == SCHED_DEFER)
			CHECK(wake <= a[i].until, "wake-up after a deferral");
	for (size_t j = 0; j < w->nj; j++) {
		const struct sched_job *jb = &w->jobs[j];
		size_t d = jb->dest;
		if (acted[j] || jb->held || jb->in_flight)
			continue;
		CHECK(wake <= jb->next_attempt || jb->next_attempt <= now,
		      "wake-up %lld s after job %zu is due",
		      (long long)(wake - jb->next_attempt), j);
		CHECK(wake <= jb->arrival + (time_t)w->p.give_up_after ||
			  wake == now || jb->next_attempt > now,
		      "wake-up after the deadline of waiting job %zu", j);
		if (jb->next_attempt > now || w->dests[d].dead)
			continue;
		/* work-conserving, and next-attempt order within a
		 * destination */
		CHECK(starts[d] == slots_of(&w->dests[d]) || total == free ||
			  n == max,
		      "due job %zu left waiting with free slots", j);
		CHECK(jb->next_attempt >= latest_start[d],
		      "job %zu passed over by a later one", j);
	}
}

static void
test_decision_properties(void **state)
{
	static struct world w;
	static struct sched_action acts[NJ_MAX];

	(void)state;
	for (unsigned i = 0; i < ncases(5000); i++) {
		size_t max, n;
		time_t wake;
		case_begin(i);
		memset(&w, 0, sizeof(w));
		gen_world(&w);
		max = (size_t)rnd(1, NJ_MAX);
		n = sched_decide(&w.p, w.jobs, w.nj, w.dests, w.nd, &w.st, acts,
				 max, &wake);
		check_decision(&w, acts, n, max, wake);
	}
}

/*
 * The caller's next-attempt index (the queue role): handed only the due
 * jobs (not held, not in flight) plus the earliest next attempt of the
 * others, the decision is the one over every job: the same actions on
 * the same jobs, the same wake-up and cursor. So every property above
 * holds for the due-only input too.
 */
static void
test_due_only_input(void **state)
{
	static struct world w;
	static struct sched_job due[NJ_MAX];
	static struct sched_action all[NJ_MAX], part[NJ_MAX];
	static size_t map[NJ_MAX];

	(void)state;
	for (unsigned i = 0; i < ncases(5000); i++) {
		size_t max, na, np, nd = 0;
		time_t wa, wp;
		struct sched_state sa, sp;
		case_begin(i);
		memset(&w, 0, sizeof(w));
		gen_world(&w);
		max = (size_t)rnd(1, NJ_MAX);
		sa = sp = w.st;
		for (size_t j = 0; j < w.nj; j++) {
			const struct sched_job *jb = &w.jobs[j];
			if (jb->held || jb->in_flight)
				continue; /* the index skips them */
			if (jb->next_attempt > w.st.now) {
				if (sp.later == 0 ||
				    jb->next_attempt < sp.later)
					sp.later = jb->next_attempt;
				continue;
			}
			map[nd] = j;
			due[nd++] = *jb;
		}
		na = sched_decide(&w.p, w.jobs, w.nj, w.dests, w.nd, &sa, all,
				  max, &wa);
		np = sched_decide(&w.p, due, nd, w.dests, w.nd, &sp, part, max,
				  &wp);
		CHECK(na == np, "%zu actions over all jobs, %zu over the due",
		      na, np);
		for (size_t k = 0; k < na && k < np; k++) {
			CHECK(all[k].job == map[part[k].job] &&
				  all[k].act == part[k].act &&
				  all[k].until == part[k].until,
			      "action %zu differs (job %zu/%zu, act %d/%d)", k,
			      all[k].job, map[part[k].job], all[k].act,
			      part[k].act);
		}
		CHECK(wa == wp, "wake-up %lld over all jobs, %lld over the due",
		      (long long)(wa - w.st.now), (long long)(wp - w.st.now));
		CHECK(sa.cursor == sp.cursor, "cursor %u/%u", sa.cursor,
		      sp.cursor);
		/* and it is checked as a decision of its own */
		check_decision(&w, all, na, max, wa);
	}
}

/* ---- round-robin: no destination with ready work starves ---- */

static void
test_round_robin(void **state)
{
	static struct world w;
	static struct sched_action acts[NJ_MAX];

	(void)state;
	for (unsigned i = 0; i < ncases(2000); i++) {
		unsigned wait[ND_MAX] = {0}, bound;
		case_begin(i);
		memset(&w, 0, sizeof(w));
		gen_params(&w.p, 0);
		w.nd = (size_t)rnd(2, ND_MAX);
		w.p.max_sessions = (unsigned)rnd(1, (long)w.nd);
		w.st.now = 1700000000;
		w.st.cursor = (uint32_t)rnd(0, 50);
		for (size_t d = 0; d < w.nd; d++) {
			sched_dest_init(&w.dests[d], &w.p);
			w.dests[d].limit = (double)rnd(1, 20);
		}
		/* skewed backlogs: some destinations have far more work */
		w.nj = NJ_MAX;
		for (size_t j = 0; j < w.nj; j++) {
			w.jobs[j].dest =
			    (uint32_t)(chance(70) ? rnd(0, 1)
						  : rnd(0, (long)w.nd - 1));
			w.jobs[j].next_attempt = w.st.now - rnd(0, 100);
			w.jobs[j].arrival = w.jobs[j].next_attempt;
		}
		bound = (unsigned)((w.nd + w.p.max_sessions - 1) /
				   w.p.max_sessions);
		for (unsigned round = 0; round < 40; round++) {
			unsigned served[ND_MAX] = {0}, ready[ND_MAX] = {0};
			time_t wake;
			size_t n;
			for (size_t j = 0; j < w.nj; j++)
				if (!w.jobs[j].in_flight)
					ready[w.jobs[j].dest]++;
			n = sched_decide(&w.p, w.jobs, w.nj, w.dests, w.nd,
					 &w.st, acts, NJ_MAX, &wake);
			CHECK(n <= w.p.max_sessions, "%zu sessions", n);
			for (size_t k = 0; k < n; k++) {
				/* started jobs finish before the next round;
				 * new work of the same destination arrives */
				served[w.jobs[acts[k].job].dest] = 1;
				w.jobs[acts[k].job].next_attempt = w.st.now;
			}
			for (size_t d = 0; d < w.nd; d++) {
				wait[d] =
				    served[d] || !ready[d] ? 0 : wait[d] + 1;
				CHECK(wait[d] < bound,
				      "destination %zu waited %u rounds "
				      "(%zu destinations, %u sessions)",
				      d, wait[d], w.nd, w.p.max_sessions);
			}
			w.st.now++;
		}
	}
}

/* ---- slow start, dead state and probes ---- */

static void
test_slow_start(void **state)
{
	(void)state;
	for (unsigned i = 0; i < ncases(3000); i++) {
		struct sched_params p;
		struct sched_dest d;
		time_t now = 1700000000;
		unsigned fails_at_one = 0;
		double init;
		case_begin(i);
		gen_params(&p, 0);
		sched_dest_init(&d, &p);
		init = p.dest_init < p.dest_max ? p.dest_init : p.dest_max;
		CHECK(d.limit == init, "initial limit %.2f", d.limit);
		for (int ev = 0; ev < 300; ev++) {
			struct sched_dest before;
			enum sched_outcome o = (enum sched_outcome)rnd(0, 2);
			int probe = d.dead && !d.probing;
			enum sched_event e;
			now += rnd(0, 100);
			if (d.dead && !probe)
				continue; /* nothing may start */
			sched_dest_opened(&d, probe);
			before = d;
			e = sched_dest_closed(&d, &p, probe, o, now);
			CHECK(d.limit >= 1.0 && d.limit <= p.dest_max,
			      "limit %.3f out of [1, %.0f]", d.limit,
			      p.dest_max);
			CHECK(d.active == before.active - 1, "active count");
			if (probe) {
				CHECK(!d.probing, "probe still open");
				if (o == SCHED_SESSION_OK) {
					CHECK(!d.dead &&
						  e == SCHED_EV_REVIVED &&
						  d.limit == init,
					      "probe success must revive at "
					      "the initial limit");
					fails_at_one = 0;
				} else if (o == SCHED_SESSION_CONN_FAIL) {
					CHECK(d.dead && d.probe_at > now &&
						  d.dead_step ==
						      before.dead_step + 1,
					      "failed probe: next step");
				} else {
					CHECK(d.dead, "untried probe revived");
				}
				continue;
			}
			if (o == SCHED_SESSION_NONE) {
				CHECK(d.limit == before.limit &&
					  d.fails == before.fails &&
					  d.dead == before.dead,
				      "a session that did not count changed "
				      "the destination");
			} else if (o == SCHED_SESSION_OK) {
				double want = before.limit + 1.0 / before.limit;
				if (want > p.dest_max)
					want = p.dest_max;
				CHECK(fabs(d.limit - want) < 1e-9,
				      "success: %.4f -> %.4f, want %.4f",
				      before.limit, d.limit, want);
				CHECK(d.fails == 0, "success resets failures");
				fails_at_one = 0;
			} else {
				double want = before.limit - 1.0 / before.limit;
				if (want < 1.0)
					want = 1.0;
				if (before.limit <= 1.0)
					fails_at_one++;
				CHECK(fabs(d.limit - want) < 1e-9,
				      "failure: %.4f -> %.4f, want %.4f",
				      before.limit, d.limit, want);
				CHECK(d.dead == (fails_at_one >= p.dead_after),
				      "dead %d after %u failures at 1 (dead "
				      "after %u)",
				      d.dead, fails_at_one, p.dead_after);
				if (d.dead && !before.dead)
					CHECK(e == SCHED_EV_DEAD &&
						  d.probe_at > now,
					      "death schedules a probe");
			}
		}
	}
}

/*
 * Slots belong to connections, not to busy periods: an outcome (slow
 * start, a failure, a probe's verdict) never frees the slot of a session
 * whose connection is still open, and a decision never opens more
 * sessions than the limit minus the open ones, idle ones included.
 */
static void
test_outcome_keeps_slots(void **state)
{
	(void)state;
	for (unsigned i = 0; i < ncases(3000); i++) {
		struct sched_params p;
		struct sched_dest d;
		time_t now = 1700000000;
		unsigned open = 0;
		case_begin(i);
		gen_params(&p, 0);
		sched_dest_init(&d, &p);
		for (int ev = 0; ev < 200; ev++) {
			int probe = d.dead && !d.probing;
			long what = rnd(0, 2);
			now += rnd(0, 50);
			if (what == 0 && (probe || (!d.dead && slots_of(&d)))) {
				sched_dest_opened(&d, probe);
				open++;
				if (probe) {
					enum sched_outcome o =
					    (enum sched_outcome)rnd(0, 2);
					sched_dest_outcome(&d, &p, 1, o, now);
					CHECK(!d.probing, "probe still open");
				}
			} else if (what == 1 && open > 0) {
				enum sched_outcome o =
				    (enum sched_outcome)rnd(0, 2);
				if (d.dead)
					continue; /* its sessions are gone */
				sched_dest_outcome(&d, &p, 0, o, now);
			} else if (what == 2 && open > 0) {
				sched_dest_released(&d);
				open--;
			}
			CHECK(d.active == open,
			      "active %u with %u connections open", d.active,
			      open);
			CHECK(d.dead || d.active <= (unsigned)floor(d.limit) ||
				  slots_of(&d) == 0,
			      "room left above the limit");
		}
	}
}

/* ---- time rules ---- */

static void
test_time_rules(void **state)
{
	(void)state;
	for (unsigned i = 0; i < ncases(3000); i++) {
		struct sched_params p;
		struct sched_rcpt r = {0};
		struct sched_temp t;
		time_t now, deadline, maxb;
		unsigned a;
		case_begin(i);
		gen_params(&p, 0);
		maxb = sched_max_backoff(&p);
		/* the last interval repeats (plus at most 10% jitter) */
		a = (unsigned)rnd(1, 50);
		if (a > p.nretry && p.nretry > 0) {
			time_t d = sched_retry_delay(&p, a, (uint32_t)rnd64());
			time_t last = (time_t)p.retry[p.nretry - 1];
			CHECK(d >= last && d <= last + last / 10,
			      "attempt %u: delay %lld, last step %lld", a,
			      (long long)d, (long long)last);
		}
		/* clamp */
		now = 1700000000;
		{
			time_t t0 = now + rnd(0, 10 * maxb);
			time_t c = sched_clamp(&p, t0, now);
			CHECK(c <= now + maxb && (t0 > now + maxb || c == t0),
			      "clamp %lld", (long long)(c - now));
		}
		/* expiry and warning from arrival; held never expires */
		r.arrival = now - rnd(0, (long)p.give_up_after * 2);
		r.attempts = (unsigned)rnd(0, 40);
		r.held = (uint8_t)chance(30);
		r.warned = (uint8_t)chance(30);
		r.null_sender = (uint8_t)chance(20);
		deadline = r.arrival + (time_t)p.give_up_after;
		sched_on_temp(&p, &r, now, (uint32_t)rnd64(), &t);
		CHECK(t.retry_until == deadline, "retry-until");
		if (r.held)
			CHECK(!t.expire, "held mail expired");
		else
			CHECK(t.expire == (now >= deadline), "expiry");
		if (!t.expire) {
			CHECK(t.next > now, "next attempt not in the future");
			if (!r.held)
				CHECK(t.next <= deadline,
				      "next attempt after the deadline");
		}
		CHECK(t.warn == (!t.expire && !r.warned && !r.null_sender &&
				 now >= r.arrival + (time_t)p.warn_after),
		      "warning");
	}
}

/* ---- a simulated clock: retries that end ---- */

#define SIM_MSGS 40
#define SIM_RCPTS 3
#define SIM_DUR 5

struct sim_msg {
	int held, null_sender, warned, warns;
	time_t deferred_after_warn; /* a deferral at or after warn-after */
};

enum { J_WAIT, J_FLIGHT, J_DONE };

static void
test_retries_end(void **state)
{
	static struct world w;
	static struct sched_action acts[NJ_MAX];

	(void)state;
	for (unsigned c = 0; c < ncases(400); c++) {
		struct sim_msg m[SIM_MSGS] = {{0}};
		int jstate[NJ_MAX] = {0}, probe[NJ_MAX] = {0};
		size_t msg_of[NJ_MAX];
		time_t end[NJ_MAX], done_at[NJ_MAX], now = 0, maxb;
		unsigned attempts[NJ_MAX] = {0};
		size_t nmsg;
		int steps = 0, left;

		case_begin(c);
		memset(&w, 0, sizeof(w));
		gen_params(&w.p, 1);
		/* second-scale lifetimes, as the integration tests run */
		w.p.warn_after = (uint64_t)rnd(10, 200);
		w.p.give_up_after = w.p.warn_after + (uint64_t)rnd(1, 600);
		maxb = sched_max_backoff(&w.p);
		w.nd = (size_t)rnd(1, 4);
		for (size_t d = 0; d < w.nd; d++)
			sched_dest_init(&w.dests[d], &w.p);
		nmsg = (size_t)rnd(1, SIM_MSGS);
		for (size_t k = 0; k < nmsg; k++) {
			time_t arr = rnd(0, 100);
			uint32_t dst = (uint32_t)rnd(0, (long)w.nd - 1);
			m[k].held = chance(10);
			m[k].null_sender = chance(15);
			for (long r = rnd(1, SIM_RCPTS); r > 0 && w.nj < NJ_MAX;
			     r--) {
				struct sched_job *jb = &w.jobs[w.nj];
				jb->arrival = arr;
				jb->next_attempt = arr;
				jb->dest =
				    chance(70)
					? dst
					: (uint32_t)rnd(0, (long)w.nd - 1);
				jb->held = (uint8_t)m[k].held;
				msg_of[w.nj++] = k;
			}
		}
		for (;;) {
			time_t wake, next = INT64_MAX;
			size_t n;
			/* sessions that end now: every destination fails */
			for (size_t j = 0; j < w.nj; j++) {
				struct sched_temp t;
				struct sched_rcpt r;
				struct sim_msg *mm = &m[msg_of[j]];
				if (jstate[j] != J_FLIGHT || end[j] > now)
					continue;
				sched_dest_closed(&w.dests[w.jobs[j].dest],
						  &w.p, probe[j],
						  SCHED_SESSION_CONN_FAIL, now);
				w.st.active--;
				r = (struct sched_rcpt){
				    w.jobs[j].arrival, attempts[j]++, 0,
				    (uint8_t)mm->warned,
				    (uint8_t)mm->null_sender};
				sched_on_temp(&w.p, &r, now, (uint32_t)rnd64(),
					      &t);
				w.jobs[j].in_flight = 0;
				if (t.warn) {
					mm->warned = 1;
					mm->warns++;
				}
				if (t.expire) {
					jstate[j] = J_DONE;
					done_at[j] = now;
					w.jobs[j].in_flight = 1; /* gone */
					continue;
				}
				if (now >=
				    w.jobs[j].arrival + (time_t)w.p.warn_after)
					mm->deferred_after_warn = 1;
				jstate[j] = J_WAIT;
				w.jobs[j].next_attempt = t.next;
			}
			left = 0;
			for (size_t j = 0; j < w.nj; j++)
				left += jstate[j] != J_DONE && !w.jobs[j].held;
			if (!left)
				break;
			CHECK(++steps < 200000, "simulation does not end");
			w.st.now = now;
			n = sched_decide(&w.p, w.jobs, w.nj, w.dests, w.nd,
					 &w.st, acts, NJ_MAX, &wake);
			for (size_t k = 0; k < n; k++) {
				size_t j = acts[k].job;
				struct sim_msg *mm = &m[msg_of[j]];
				CHECK(jstate[j] == J_WAIT && !w.jobs[j].held,
				      "job %zu acted on while %d (held %d)", j,
				      jstate[j], w.jobs[j].held);
				if (acts[k].act == SCHED_EXPIRE) {
					jstate[j] = J_DONE;
					done_at[j] = now;
					w.jobs[j].in_flight = 1;
					continue;
				}
				if (acts[k].act == SCHED_DEFER) {
					struct sched_temp t;
					struct sched_rcpt r = {
					    w.jobs[j].arrival, attempts[j]++, 0,
					    (uint8_t)mm->warned,
					    (uint8_t)mm->null_sender};
					sched_on_temp(&w.p, &r, now,
						      (uint32_t)rnd64(), &t);
					if (t.warn) {
						mm->warned = 1;
						mm->warns++;
					}
					if (t.expire) {
						jstate[j] = J_DONE;
						done_at[j] = now;
						w.jobs[j].in_flight = 1;
					} else {
						if (now >=
						    w.jobs[j].arrival +
							(time_t)w.p.warn_after)
							mm->deferred_after_warn =
							    1;
						w.jobs[j].next_attempt =
						    acts[k].until;
					}
					continue;
				}
				probe[j] = acts[k].act == SCHED_PROBE;
				sched_dest_opened(&w.dests[w.jobs[j].dest],
						  probe[j]);
				w.st.active++;
				jstate[j] = J_FLIGHT;
				w.jobs[j].in_flight = 1;
				end[j] = now + rnd(0, SIM_DUR);
				if (end[j] < next)
					next = end[j];
			}
			for (size_t j = 0; j < w.nj; j++)
				if (jstate[j] == J_FLIGHT && end[j] < next)
					next = end[j];
			CHECK(wake >= now, "wake-up in the past");
			if (wake > now && wake < next)
				next = wake;
			CHECK(next != INT64_MAX,
			      "due work but nothing running or to wait for");
			CHECK(next > now || n > 0,
			      "no progress and nothing to wait for");
			if (next > now)
				now = next;
		}
		for (size_t j = 0; j < w.nj; j++) {
			time_t deadline =
			    w.jobs[j].arrival + (time_t)w.p.give_up_after;
			if (w.jobs[j].held) {
				CHECK(jstate[j] != J_DONE && attempts[j] == 0,
				      "held job %zu touched", j);
				continue;
			}
			CHECK(jstate[j] == J_DONE &&
				  done_at[j] <= deadline + SIM_DUR,
			      "job %zu expired %lld s after its deadline", j,
			      (long long)(done_at[j] - deadline));
		}
		for (size_t k = 0; k < nmsg; k++) {
			CHECK(m[k].warns <= 1, "message %zu warned %d times", k,
			      m[k].warns);
			if (m[k].held || m[k].null_sender)
				CHECK(m[k].warns == 0,
				      "warning for held or <> mail");
			else if (w.p.warn_after + 2 * (uint64_t)maxb +
				     2 * SIM_DUR <
				 w.p.give_up_after)
				CHECK(m[k].warns == 1,
				      "message %zu deferred past warn-after "
				      "but never warned",
				      k);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decision_properties),
	    cmocka_unit_test(test_due_only_input),
	    cmocka_unit_test(test_round_robin),
	    cmocka_unit_test(test_slow_start),
	    cmocka_unit_test(test_outcome_keeps_slots),
	    cmocka_unit_test(test_time_rules),
	    cmocka_unit_test(test_retries_end),
	};

	printf("# test_sched: seed %llu\n", (unsigned long long)base_seed());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
