/*
 * ar_strip — remove forged Authentication-Results (pure).
 *
 * RFC 8601 §5: a receiver must remove (or not trust) incoming
 * Authentication-Results header fields that claim its own authserv-id,
 * before it adds its own. ar_strip() copies a header block (untrusted
 * bytes, CRLF lines, folded fields allowed, up to and including the empty
 * line if present) to out, leaving out every Authentication-Results field
 * (with its continuation lines) whose authserv-id equals ours, ASCII
 * case-insensitively. The authserv-id is the first token of the value
 * after optional CFWS (comments may nest; an unterminated comment means
 * the field is malformed and is kept: it claims nothing parsable).
 * Everything else is copied byte for byte. Returns the number of fields
 * removed, or -1 when out is full.
 */
#ifndef TODOKU_MAIL_AR_STRIP_H
#define TODOKU_MAIL_AR_STRIP_H

#include <stddef.h>

#include "lib/buf.h"

int ar_strip(const char *hdr, size_t n, const char *authserv_id,
	     struct buf *out);

#endif
