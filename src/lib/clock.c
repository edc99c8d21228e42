/* clock — see clock.h. */
#include "lib/clock.h"

#include <stdlib.h>

static long long clock_offset;

void
clock_init(void)
{
	const char *s = getenv("TODOKU_CLOCK_OFFSET");

	if (s != NULL)
		clock_offset = strtoll(s, NULL, 10);
}

time_t
clock_now(void)
{
	return time(NULL) + (time_t)clock_offset;
}

uint64_t
clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
clock_rfc5322(time_t t, char *dst, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(dst, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

void
clock_iso8601(time_t t, char *dst, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(dst, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
