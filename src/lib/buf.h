/*
 * buf — bounded growable byte buffer.
 *
 * Every buffer gets a maximum when it is created; appends that would pass
 * it fail with -1 and leave the buffer unchanged, so a peer can never make
 * us grow memory without bound. The data is always NUL-terminated (the
 * terminator is not counted in len) so text can be used as a C string.
 * Allocation failure also returns -1 (t* allocator).
 *
 * The named maxima live in lib/limits.h with the config key that sets
 * them, if any.
 */
#ifndef TODOKU_LIB_BUF_H
#define TODOKU_LIB_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Room for n more octets at data + len (and the terminator), for callers
 * that write in place: they then advance len and store the NUL. */
int buf_reserve(struct buf *b, size_t n);
int buf_add(struct buf *b, const void *p, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addc(struct buf *b, char c);
int buf_addf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Remove n bytes from the front. */
void buf_consume(struct buf *b, size_t n);
/* Give up ownership of the data (caller frees with xfree). */
char *buf_steal(struct buf *b);

#endif
