/*
 * v6health — the IPv6 family health memory of smtp-out (DESIGN §7
 * "IPv6": "a family health memory that suspends IPv6 after repeated
 * network-level failures") and the address order it implies, as pure
 * functions of (state, event, now).
 *
 * What it does:
 * - v6h_failed / v6h_ok: the caller reports each IPv6 connect outcome.
 *   Only network-level failures count (v6h_network_errno: no route,
 *   unreachable, network down, timeout, no usable source address,
 *   refused by a filter) — never a refused port on one host (the host
 *   answered), a missing greeting or an SMTP reply. When failures at
 *   suspend_after distinct IPv6 addresses happened with no IPv6
 *   connection working in between, IPv6 is suspended for suspend_for
 *   seconds. A failure while suspended restarts that time; any IPv6
 *   connection that works resumes IPv6 at once.
 * - v6h_take_plan: how the next attempt that has addresses of both
 *   families orders them: NORMAL (not suspended), V6_LAST (suspended:
 *   IPv4 first) or PROBE (the suspension time is over: this attempt
 *   keeps its own order, so its IPv6 addresses are tried as usual and
 *   their outcome decides; other attempts keep IPv6 last for
 *   probe_window seconds, so one attempt probes at a time).
 * - v6h_order: the stable order of one attempt's addresses: live before
 *   recently dead (per-address health memory, the caller's), and with
 *   v6_last every IPv4 address before every IPv6 one. IPv6 addresses
 *   are never dropped: a destination with IPv6 addresses only still
 *   gets them tried.
 *
 * The state machine has one setter (v6h_set, internal); the caller's
 * clock is passed in (monotonic seconds).
 *
 * What it owns: the struct v6h the caller passes. What it never does:
 * I/O, clock reads, allocation, globals.
 */
#ifndef TODOKU_MAIL_V6HEALTH_H
#define TODOKU_MAIL_V6HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define V6H_DISTINCT_MAX 64 /* suspend_after is at most this */
#define V6H_WHY_MAX 300

struct v6h_params {
	unsigned suspend_after; /* distinct failed IPv6 addresses; 0: never */
	uint64_t suspend_for;	/* seconds */
	uint64_t probe_window;	/* seconds one probe is given */
};

enum v6h_state { V6H_UP = 0, V6H_SUSPENDED };

struct v6h {
	enum v6h_state state;
	unsigned nfail; /* distinct addresses failed since IPv6 last worked */
	uint8_t failed[V6H_DISTINCT_MAX][16];
	time_t until;		/* SUSPENDED: IPv6 last until then */
	time_t probe_until;	/* a probe is out until then */
	char last[V6H_WHY_MAX]; /* the last network-level failure */
};

enum v6h_event {
	V6H_EV_NONE = 0,
	V6H_EV_SUSPENDED,  /* IPv6 just got suspended */
	V6H_EV_STILL_DOWN, /* failed while suspended: time restarted */
	V6H_EV_RESUMED,	   /* an IPv6 connection worked while suspended */
};

enum v6h_plan { V6H_PLAN_NORMAL = 0, V6H_PLAN_V6_LAST, V6H_PLAN_PROBE };

void v6h_init(struct v6h *h);

/* Is a connect() error (errno, or ETIMEDOUT for our connect timer) a
 * failure of the network path rather than of the host? */
bool v6h_network_errno(int err);

/* A network-level connect failure to IPv6 address addr; why (copied,
 * truncated) is the text logged with a suspension. */
enum v6h_event v6h_failed(struct v6h *h, const struct v6h_params *p,
			  const uint8_t addr[16], const char *why, time_t now);

/* A TCP connection to an IPv6 address was established. */
enum v6h_event v6h_ok(struct v6h *h);

/* The plan for an attempt with addresses of both families; a PROBE
 * answer reserves the probe for probe_window seconds. */
enum v6h_plan v6h_take_plan(struct v6h *h, const struct v6h_params *p,
			    time_t now);

/* Seconds until the suspension ends (0: not suspended or over). */
uint64_t v6h_remaining(const struct v6h *h, time_t now);

/* perm[0..n) := the order to try the addresses in (indexes into
 * family/dead); family[i] is 4 or 6, dead[i] true when the per-address
 * health memory says the address failed recently. Stable. */
void v6h_order(const int *family, const bool *dead, size_t n, bool v6_last,
	       size_t *perm);

#endif
