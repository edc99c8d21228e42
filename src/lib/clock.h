/*
 * clock — the one injectable clock.
 *
 * clock_now() is wall time in UTC seconds, used for everything persisted
 * (arrival, attempts, next-attempt). Tests shift it with the environment
 * variable TODOKU_CLOCK_OFFSET (seconds, may be negative), read once at
 * start, so retry and expiry logic can be driven without waiting.
 * clock_mono_ms() is CLOCK_MONOTONIC in milliseconds for timers.
 */
#ifndef TODOKU_LIB_CLOCK_H
#define TODOKU_LIB_CLOCK_H

#include <stdint.h>
#include <time.h>

void clock_init(void);
time_t clock_now(void);
uint64_t clock_mono_ms(void);
/* RFC 5322 date-time in UTC ("Wed, 25 Nov 2026 10:00:00 +0000"). */
void clock_rfc5322(time_t t, char *dst, size_t len);
/* ISO 8601 UTC ("2026-11-25T10:00:00Z"). */
void clock_iso8601(time_t t, char *dst, size_t len);

#endif
