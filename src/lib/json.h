/*
 * json — a small, bounded JSON writer.
 *
 * What it does: appends JSON text to a lib/buf (which carries its own
 * maximum), keeping track of nesting and commas so callers only say
 * "open an object", "a string member", "close". Every string goes
 * through json_escape: '"' and '\\' escaped, control characters and DEL
 * as \u00XX, valid UTF-8 passed through, every byte of invalid UTF-8
 * (overlong forms, surrogates, code points past U+10FFFF, truncated
 * sequences) replaced by \ufffd, so remote text (SMTP replies, DNS
 * names) can never break the document or smuggle bytes into it.
 *
 * What it owns: nothing but its nesting stack (JSON_DEPTH_MAX levels);
 * the buffer belongs to the caller.
 *
 * Failure: the first error (buffer maximum reached, nesting too deep,
 * unbalanced close) is sticky; json_end returns it and the buffer then
 * holds a partial document the caller must discard. Nothing here ever
 * parses JSON.
 */
#ifndef TODOKU_LIB_JSON_H
#define TODOKU_LIB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define JSON_DEPTH_MAX 16

struct json {
	struct buf *b;
	int depth;
	int err;
	uint8_t first[JSON_DEPTH_MAX + 1]; /* no member yet at this level */
};

/* Append s[0..n) as a JSON string literal, quotes included, taking at
 * most max input octets (cut on a character boundary); *cut (may be
 * NULL) says whether it was cut. 0 or -1 (buffer full). */
int json_escape(struct buf *b, const char *s, size_t n, size_t max, int *cut);

/* Length of the valid UTF-8 sequence at s (n > 0 octets available),
 * 0 when the octets there are not one (RFC 3629 §4). */
size_t json_utf8_len(const unsigned char *s, size_t n);

void json_init(struct json *j, struct buf *b);
/* key is the member name inside an object, NULL inside an array or at
 * the top. Keys are written escaped too. */
void json_obj_open(struct json *j, const char *key);
void json_obj_close(struct json *j);
void json_arr_open(struct json *j, const char *key);
void json_arr_close(struct json *j);
/* s NULL writes null */
void json_str_m(struct json *j, const char *key, const char *s);
/* at most max octets of s; returns 1 when s was cut */
int json_strn_m(struct json *j, const char *key, const char *s, size_t max);
void json_int_m(struct json *j, const char *key, long long v);
void json_bool_m(struct json *j, const char *key, int v);
void json_null_m(struct json *j, const char *key);
/* raw: a complete JSON value made by this writer earlier (embedded as
 * is; never pass text from elsewhere) */
void json_raw_m(struct json *j, const char *key, const char *raw);
/* 0 when the document is complete and fit, -1 otherwise */
int json_end(struct json *j);

#endif
