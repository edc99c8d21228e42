/* alloc — see alloc.h. */
#include "lib/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

static long fail_countdown = -1;

void
alloc_fail_after(long n)
{
	fail_countdown = n;
}

static int
injected_failure(void)
{
	if (fail_countdown < 0)
		return 0;
	if (fail_countdown == 0)
		return 1;
	fail_countdown--;
	return 0;
}

void *
tmalloc(size_t n)
{
	if (injected_failure())
		return NULL;
	return malloc(n ? n : 1);
}

void *
tcalloc(size_t nmemb, size_t size)
{
	if (injected_failure())
		return NULL;
	return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *
trealloc(void *p, size_t n)
{
	if (injected_failure())
		return NULL;
	return realloc(p, n ? n : 1);
}

void *
xmalloc(size_t n)
{
	void *p = tmalloc(n);

	if (p == NULL)
		log_fatal("out of memory allocating %zu bytes", n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = tcalloc(nmemb, size);

	if (p == NULL)
		log_fatal("out of memory allocating %zu x %zu bytes", nmemb,
			  size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = trealloc(p, n);

	if (q == NULL)
		log_fatal("out of memory reallocating %zu bytes", n);
	return q;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

void
xfree(void *p)
{
	free(p);
}
