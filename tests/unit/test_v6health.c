/* test_v6health — the IPv6 family health memory and the address order
 * it implies (mail/v6health.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/v6health.h"

static const struct v6h_params P = {
    .suspend_after = 3, .suspend_for = 600, .probe_window = 30};

static const uint8_t *
a6(unsigned n)
{
	static uint8_t a[8][16];

	memset(a[n % 8], 0, 16);
	a[n % 8][0] = 0x20;
	a[n % 8][1] = 0x01;
	a[n % 8][15] = (uint8_t)n;
	return a[n % 8];
}

static void
test_errno_classes(void **st)
{
	(void)st;
	assert_true(v6h_network_errno(ENETUNREACH));
	assert_true(v6h_network_errno(EHOSTUNREACH));
	assert_true(v6h_network_errno(ETIMEDOUT));
	assert_true(v6h_network_errno(EADDRNOTAVAIL));
	/* the host answered: its port is closed, the network works */
	assert_false(v6h_network_errno(ECONNREFUSED));
	assert_false(v6h_network_errno(ECONNRESET));
	assert_false(v6h_network_errno(0));
}

/* Failures at one address do not suspend the family: distinct ones do. */
static void
test_suspends_after_distinct_addresses(void **st)
{
	struct v6h h;

	(void)st;
	v6h_init(&h);
	for (int i = 0; i < 10; i++)
		assert_int_equal(v6h_failed(&h, &P, a6(1), "x", 100),
				 V6H_EV_NONE);
	assert_int_equal(v6h_take_plan(&h, &P, 100), V6H_PLAN_NORMAL);
	assert_int_equal(v6h_failed(&h, &P, a6(2), "y", 101), V6H_EV_NONE);
	assert_int_equal(v6h_failed(&h, &P, a6(3), "no route", 102),
			 V6H_EV_SUSPENDED);
	assert_string_equal(h.last, "no route");
	assert_int_equal(v6h_remaining(&h, 102), 600);
	assert_int_equal(v6h_take_plan(&h, &P, 103), V6H_PLAN_V6_LAST);
	assert_int_equal(v6h_take_plan(&h, &P, 701), V6H_PLAN_V6_LAST);
}

/* A working IPv6 connection in between starts the count again. */
static void
test_success_resets_count(void **st)
{
	struct v6h h;

	(void)st;
	v6h_init(&h);
	v6h_failed(&h, &P, a6(1), "x", 1);
	v6h_failed(&h, &P, a6(2), "x", 2);
	assert_int_equal(v6h_ok(&h), V6H_EV_NONE);
	assert_int_equal(v6h_failed(&h, &P, a6(3), "x", 3), V6H_EV_NONE);
	assert_int_equal(v6h_failed(&h, &P, a6(4), "x", 4), V6H_EV_NONE);
	assert_int_equal(v6h_take_plan(&h, &P, 5), V6H_PLAN_NORMAL);
}

/* After the suspension time one attempt probes; others wait for it. */
static void
test_probe_then_resume_or_stay(void **st)
{
	struct v6h h;

	(void)st;
	v6h_init(&h);
	for (unsigned i = 1; i <= 3; i++)
		v6h_failed(&h, &P, a6(i), "x", 0);
	assert_int_equal(v6h_take_plan(&h, &P, 599), V6H_PLAN_V6_LAST);
	assert_int_equal(v6h_take_plan(&h, &P, 600), V6H_PLAN_PROBE);
	/* the probe is out: the next attempts keep IPv6 last */
	assert_int_equal(v6h_take_plan(&h, &P, 601), V6H_PLAN_V6_LAST);
	assert_int_equal(v6h_take_plan(&h, &P, 629), V6H_PLAN_V6_LAST);
	/* the probe never touched IPv6: another attempt probes */
	assert_int_equal(v6h_take_plan(&h, &P, 630), V6H_PLAN_PROBE);
	/* the probe failed: suspended anew from now */
	assert_int_equal(v6h_failed(&h, &P, a6(4), "x", 640),
			 V6H_EV_STILL_DOWN);
	assert_int_equal(v6h_remaining(&h, 640), 600);
	assert_int_equal(v6h_take_plan(&h, &P, 700), V6H_PLAN_V6_LAST);
	assert_int_equal(v6h_take_plan(&h, &P, 1240), V6H_PLAN_PROBE);
	/* this one worked */
	assert_int_equal(v6h_ok(&h), V6H_EV_RESUMED);
	assert_int_equal(v6h_take_plan(&h, &P, 1241), V6H_PLAN_NORMAL);
	assert_int_equal(v6h_remaining(&h, 1241), 0);
	/* and it takes three distinct failures again */
	assert_int_equal(v6h_failed(&h, &P, a6(1), "x", 1300), V6H_EV_NONE);
	assert_int_equal(v6h_failed(&h, &P, a6(2), "x", 1300), V6H_EV_NONE);
	assert_int_equal(v6h_failed(&h, &P, a6(3), "x", 1300),
			 V6H_EV_SUSPENDED);
}

/* suspend-after = 0: never suspended; turning it off lifts a suspension */
static void
test_off(void **st)
{
	struct v6h h;
	struct v6h_params off = P;

	(void)st;
	off.suspend_after = 0;
	v6h_init(&h);
	for (unsigned i = 0; i < 70; i++)
		assert_int_equal(v6h_failed(&h, &off, a6(i), "x", 1),
				 V6H_EV_NONE);
	assert_int_equal(v6h_take_plan(&h, &off, 2), V6H_PLAN_NORMAL);
	for (unsigned i = 1; i <= 3; i++)
		v6h_failed(&h, &P, a6(i), "x", 0);
	assert_int_equal(v6h_take_plan(&h, &off, 2), V6H_PLAN_NORMAL);
	v6h_failed(&h, &off, a6(5), "x", 3);
	assert_int_equal(v6h_take_plan(&h, &P, 4), V6H_PLAN_NORMAL);
}

static void
order(const int *fam, const bool *dead, size_t n, bool v6_last, size_t *perm)
{
	for (size_t i = 0; i < n; i++)
		perm[i] = 99;
	v6h_order(fam, dead, n, v6_last, perm);
}

static void
test_order(void **st)
{
	const int fam[] = {6, 4, 6, 4, 6, 4};
	const bool live[6] = {false};
	const bool dead[] = {false, true, true, false, false, false};
	size_t perm[6];

	(void)st;
	/* nothing to change: the order given */
	order(fam, live, 6, false, perm);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(perm[i], i);
	/* IPv6 suspended: IPv4 first, each family in its order */
	order(fam, live, 6, true, perm);
	assert_int_equal(perm[0], 1);
	assert_int_equal(perm[1], 3);
	assert_int_equal(perm[2], 5);
	assert_int_equal(perm[3], 0);
	assert_int_equal(perm[4], 2);
	assert_int_equal(perm[5], 4);
	/* dead ones behind the live ones */
	order(fam, dead, 6, false, perm);
	assert_int_equal(perm[0], 0);
	assert_int_equal(perm[1], 3);
	assert_int_equal(perm[2], 4);
	assert_int_equal(perm[3], 5);
	assert_int_equal(perm[4], 1);
	assert_int_equal(perm[5], 2);
	/* both: live v4, dead v4, live v6, dead v6 */
	order(fam, dead, 6, true, perm);
	assert_int_equal(perm[0], 3);
	assert_int_equal(perm[1], 5);
	assert_int_equal(perm[2], 1);
	assert_int_equal(perm[3], 0);
	assert_int_equal(perm[4], 4);
	assert_int_equal(perm[5], 2);
}

/* IPv6 only: every address is kept, a suspension never drops one. */
static void
test_order_v6_only_kept(void **st)
{
	const int fam[] = {6, 6, 6};
	const bool dead[] = {true, false, false};
	size_t perm[3];

	(void)st;
	order(fam, dead, 3, true, perm);
	assert_int_equal(perm[0], 1);
	assert_int_equal(perm[1], 2);
	assert_int_equal(perm[2], 0);
	perm[0] = 99;
	v6h_order(fam, dead, 0, true, perm);
	assert_int_equal(perm[0], 99);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_errno_classes),
	    cmocka_unit_test(test_suspends_after_distinct_addresses),
	    cmocka_unit_test(test_success_resets_count),
	    cmocka_unit_test(test_probe_then_resume_or_stay),
	    cmocka_unit_test(test_off),
	    cmocka_unit_test(test_order),
	    cmocka_unit_test(test_order_v6_only_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
