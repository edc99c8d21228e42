/*
 * schedule — the delivery scheduler's decisions as pure functions of
 * (queue, destinations, now) (DESIGN §7 "Destinations and scheduling",
 * "Time").
 *
 * What it does:
 * - sched_decide: given the waiting jobs (next attempt time, held, in
 *   flight, destination; or only the due ones and the earliest next
 *   attempt of the others), the destinations' states and `now`, says
 *   which jobs start a session now (SCHED_START), which one probes a
 *   dead destination (SCHED_PROBE) and which are deferred because
 *   their destination is dead (SCHED_DEFER, with the time to come
 *   back), plus the next wake-up time. New sessions are bounded per
 *   destination (floor of its concurrency limit) and overall
 *   (max_sessions); slots are handed out round-robin across
 *   destinations, one per destination per round, starting at the
 *   caller's cursor, each destination's jobs in next-attempt order
 *   (ties: job index). A due job that gets no slot although it is past
 *   its give-up-after deadline is expired (SCHED_EXPIRE) rather than
 *   left waiting, so expiry never depends on a free slot.
 * - sched_dest_*: the destination state machine. A session holds a slot
 *   from sched_dest_opened until sched_dest_released (its connection is
 *   closed, not merely idle); its outcomes are reported as they happen
 *   (sched_dest_outcome). Slow start begins at
 *   dest_init; +1/c per successful session; -1/c per connection-level
 *   failure (the caller reports only those: connect error, timeout,
 *   421, TLS failure, never MAIL/RCPT/DATA replies); never below 1 nor
 *   above dest_max; dead after dead_after consecutive failures at
 *   c = 1. A dead destination defers its backlog until its next probe;
 *   one connection probes per backoff step (the [queue] retry steps);
 *   a probe that works revives it at dest_init.
 * - Time rules: the last retry interval repeats; a deadline further
 *   ahead than the largest backoff is clamped (sched_clamp); expiry and
 *   the delay warning derive from the arrival time; held mail never
 *   expires and is never started (sched_on_temp, sched_decide).
 *
 * What it owns: nothing beyond the call. What it never does: I/O, clock
 * reads, random numbers of its own (the caller passes the jitter
 * input), globals. Allocation: sched_decide uses scratch memory for
 * its index and frees it before returning.
 */
#ifndef TODOKU_MAIL_SCHEDULE_H
#define TODOKU_MAIL_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct sched_params {
	double dest_init;	/* [delivery] destination-concurrency */
	double dest_max;	/* [delivery] destination-concurrency-max */
	unsigned dead_after;	/* [delivery] dead-after */
	unsigned max_sessions;	/* [delivery] max-sessions (overall) */
	const uint64_t *retry;	/* [queue] retry steps, seconds */
	size_t nretry;		/* 0: one step of SCHED_RETRY_DEFAULT */
	uint64_t warn_after;	/* [queue] warn-after, seconds */
	uint64_t give_up_after; /* [queue] give-up-after, seconds */
};

#define SCHED_RETRY_DEFAULT 300

struct sched_dest {
	double limit;	    /* concurrency, 1..dest_max */
	unsigned active;    /* sessions open, a probe included */
	unsigned fails;	    /* consecutive failures at limit 1 */
	unsigned dead_step; /* backoff step of the next probe */
	time_t probe_at;    /* dead: when the next probe may start */
	uint8_t dead;
	uint8_t probing; /* a probe session is open */
};

struct sched_job {
	time_t next_attempt;
	time_t arrival;
	uint32_t dest; /* index into the destinations */
	uint8_t held;
	uint8_t in_flight;
};

enum sched_act {
	SCHED_START = 1, /* open a new session for the job */
	SCHED_PROBE,	 /* open the probe session of a dead destination */
	SCHED_DEFER,	 /* record a deferral, next attempt at `until` */
	SCHED_EXPIRE,	 /* past give-up-after and no slot: expire now */
};

struct sched_action {
	size_t job;
	enum sched_act act;
	time_t until; /* SCHED_DEFER only */
};

struct sched_state {
	time_t now;
	unsigned active; /* sessions open overall */
	uint32_t cursor; /* in/out: destination served first next round */
	/* the earliest next attempt of waiting jobs the caller left out of
	 * jobs (not yet due), 0 if none: it bounds the wake-up as theirs
	 * would. So a caller with a next-attempt index passes only the due
	 * jobs and decides the same (tests/unit/test_sched.c). */
	time_t later;
};

/*
 * Decide what starts now. Writes at most max actions, returns their
 * number, and sets *wake to the next time a decision is worth making:
 * never before now, never after the earliest next attempt of a job not
 * yet due (st->later included), a deferral's until, or the give-up-after
 * deadline of a due job left waiting for a slot (held and in-flight jobs
 * aside). Jobs not yet due, held or in flight may be passed or left out
 * (with st->later): the actions are the same, and the work is that of
 * sorting the jobs passed. A due
 * job waiting for a slot does not make the wake-up "now": a slot frees
 * when a session ends, and the caller decides again on that event.
 * When the actions did not fit in max, the wake-up is now.
 * A job's destination index must be < ndests.
 */
size_t sched_decide(const struct sched_params *p, const struct sched_job *jobs,
		    size_t njobs, const struct sched_dest *dests, size_t ndests,
		    struct sched_state *st, struct sched_action *acts,
		    size_t max, time_t *wake);

/* ---- destinations ---- */

enum sched_outcome {
	SCHED_SESSION_NONE,	 /* nothing that counts (all untried) */
	SCHED_SESSION_OK,	 /* a session that worked */
	SCHED_SESSION_CONN_FAIL, /* connection-level failure */
};

enum sched_event {
	SCHED_EV_NONE,
	SCHED_EV_GREW,	       /* limit went up */
	SCHED_EV_SHRANK,       /* limit went down */
	SCHED_EV_DEAD,	       /* became dead; next probe at probe_at */
	SCHED_EV_REVIVED,      /* a probe worked */
	SCHED_EV_PROBE_FAILED, /* still dead; next probe at probe_at */
};

void sched_dest_init(struct sched_dest *d, const struct sched_params *p);
/* A session (or the probe) was opened for d. */
void sched_dest_opened(struct sched_dest *d, int probe);
/*
 * The outcome of a session's work (a busy period of it, or the probe's
 * one job) at now: slow start, back-off, dead state. The session keeps
 * its slot (active) until sched_dest_released: a connection held idle
 * for reuse still counts against the limit. A probe's outcome ends the
 * probing (a revived destination keeps its open sessions counted).
 */
enum sched_event sched_dest_outcome(struct sched_dest *d,
				    const struct sched_params *p, int probe,
				    enum sched_outcome o, time_t now);
/* A session of d is gone (its connection closed): its slot is free. */
void sched_dest_released(struct sched_dest *d);
/* Both at once: a session ended with outcome o at now. */
enum sched_event sched_dest_closed(struct sched_dest *d,
				   const struct sched_params *p, int probe,
				   enum sched_outcome o, time_t now);

/* ---- time ---- */

/* The backoff of step `step` (0-based), the last step repeating. */
time_t sched_backoff(const struct sched_params *p, unsigned step);
/* The largest backoff step. */
time_t sched_max_backoff(const struct sched_params *p);
/* Retry delay after `attempts` attempts (1 = the first failed), with up
 * to 10% jitter taken from rnd. */
time_t sched_retry_delay(const struct sched_params *p, unsigned attempts,
			 uint32_t rnd);
/* A stored deadline further ahead than now + the largest backoff comes
 * back to that (a clock that jumped, a changed schedule). */
time_t sched_clamp(const struct sched_params *p, time_t t, time_t now);

/* What a temporary failure at now means for a recipient. */
struct sched_temp {
	int expire;	    /* past give-up-after: bounce (4.4.7) now */
	int warn;	    /* send the delay warning now */
	time_t next;	    /* next attempt (when not expired) */
	time_t retry_until; /* arrival + give-up-after */
};

struct sched_rcpt {
	time_t arrival;
	unsigned attempts; /* attempts before this one */
	uint8_t held;
	uint8_t warned;	     /* the warning already went out */
	uint8_t null_sender; /* never warned nor bounced to */
};

void sched_on_temp(const struct sched_params *p, const struct sched_rcpt *r,
		   time_t now, uint32_t rnd, struct sched_temp *out);

#endif
