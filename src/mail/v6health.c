/*
 * v6health — see v6health.h.
 */
#include "mail/v6health.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void
v6h_init(struct v6h *h)
{
	memset(h, 0, sizeof(*h));
}

/* The one setter of the state; leaving SUSPENDED forgets the failures. */
static void
v6h_set(struct v6h *h, enum v6h_state st, time_t until)
{
	h->state = st;
	h->until = until;
	h->probe_until = 0;
	if (st == V6H_UP)
		h->nfail = 0;
}

bool
v6h_network_errno(int err)
{
	switch (err) {
	case ENETUNREACH:   /* no route */
	case EHOSTUNREACH:  /* ICMPv6 unreachable, neighbour discovery */
	case ENETDOWN:	    /* the interface is down */
	case EHOSTDOWN:	    /* ditto, some drivers */
	case ETIMEDOUT:	    /* SYN unanswered (our connect timer too) */
	case EADDRNOTAVAIL: /* no usable IPv6 source address */
	case EACCES:	    /* prohibit route, ICMPv6 administratively */
	case EPERM:	    /* prohibited, or a local filter dropped it */
		return true;
	default:
		return false; /* ECONNREFUSED: the host answered */
	}
}

static bool
v6h_seen(const struct v6h *h, const uint8_t addr[16])
{
	for (unsigned i = 0; i < h->nfail && i < V6H_DISTINCT_MAX; i++)
		if (memcmp(h->failed[i], addr, 16) == 0)
			return true;
	return false;
}

enum v6h_event
v6h_failed(struct v6h *h, const struct v6h_params *p, const uint8_t addr[16],
	   const char *why, time_t now)
{
	snprintf(h->last, sizeof(h->last), "%s", why ? why : "");
	if (p->suspend_after == 0) { /* off (a reload may turn it off) */
		v6h_set(h, V6H_UP, 0);
		return V6H_EV_NONE;
	}
	if (h->state == V6H_SUSPENDED) {
		v6h_set(h, V6H_SUSPENDED, now + (time_t)p->suspend_for);
		return V6H_EV_STILL_DOWN;
	}
	if (!v6h_seen(h, addr) && h->nfail < V6H_DISTINCT_MAX)
		memcpy(h->failed[h->nfail++], addr, 16);
	if (h->nfail < p->suspend_after)
		return V6H_EV_NONE;
	v6h_set(h, V6H_SUSPENDED, now + (time_t)p->suspend_for);
	return V6H_EV_SUSPENDED;
}

enum v6h_event
v6h_ok(struct v6h *h)
{
	enum v6h_state was = h->state;

	v6h_set(h, V6H_UP, 0);
	return was == V6H_SUSPENDED ? V6H_EV_RESUMED : V6H_EV_NONE;
}

enum v6h_plan
v6h_take_plan(struct v6h *h, const struct v6h_params *p, time_t now)
{
	if (h->state != V6H_SUSPENDED || p->suspend_after == 0)
		return V6H_PLAN_NORMAL;
	if (now < h->until || now < h->probe_until)
		return V6H_PLAN_V6_LAST;
	h->probe_until = now + (time_t)(p->probe_window ? p->probe_window : 1);
	return V6H_PLAN_PROBE;
}

uint64_t
v6h_remaining(const struct v6h *h, time_t now)
{
	if (h->state != V6H_SUSPENDED || now >= h->until)
		return 0;
	return (uint64_t)(h->until - now);
}

/* Rank 0..3: IPv6 behind IPv4 (with v6_last) outranks dead behind live,
 * so a recently dead IPv4 address still comes before a suspended IPv6
 * one: it failed alone, IPv6 failed everywhere. */
static unsigned
v6h_rank(int family, bool dead, bool v6_last)
{
	return (v6_last && family == 6 ? 2u : 0u) + (dead ? 1u : 0u);
}

void
v6h_order(const int *family, const bool *dead, size_t n, bool v6_last,
	  size_t *perm)
{
	size_t k = 0;

	for (unsigned r = 0; r < 4; r++)
		for (size_t i = 0; i < n; i++)
			if (v6h_rank(family[i], dead[i], v6_last) == r)
				perm[k++] = i;
}
