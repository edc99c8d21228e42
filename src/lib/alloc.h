/*
 * alloc — the one allocation door.
 *
 * Every heap allocation in todoku goes through these functions so tests
 * can make the Nth allocation fail (alloc_fail_after) and check that the
 * caller degrades instead of crashing.
 *
 *   x*  never return NULL: on exhaustion they log and exit (fatal). Use
 *       them at start-up and for small fixed-size state.
 *   t*  return NULL on failure: long-lived session code uses them and
 *       turns failure into a 4xx reply.
 *
 * Not thread-safe for the failure-injection counter (tests only).
 */
#ifndef TODOKU_LIB_ALLOC_H
#define TODOKU_LIB_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

void *tmalloc(size_t n);
void *tcalloc(size_t nmemb, size_t size);
void *trealloc(void *p, size_t n);

void xfree(void *p);

/* Tests: make the allocation after n more succeed fail; -1 disables. */
void alloc_fail_after(long n);

#endif
