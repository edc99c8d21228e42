/*
 * hopcount — counts the Received header fields of a message as it
 * streams in (RFC 5321 §6.3 loop detection).
 *
 * Feed it message bytes as smtp_data writes them (dot-stuffing removed,
 * CRLF line ends), in pieces of any size; the count never depends on how
 * the input was split. It looks only at the header block: a field whose
 * name is "Received" in any case, optionally followed by white space
 * before the colon (RFC 5322 §4.5.3 obsolete syntax), counts once,
 * however many continuation lines it is folded over. The header block
 * ends at the empty line, or at the first line that cannot be a header
 * field (no colon after a field name, or a control or 8-bit octet in
 * the name); from then on feeding does nothing.
 *
 * Owns: a few integers of state (no buffer, no allocation); the count
 * saturates at UINT_MAX. Never: reads beyond the bytes given, keeps any
 * pointer into them, or judges the count (the caller compares it with
 * its limit).
 */
#ifndef TODOKU_MAIL_HOPCOUNT_H
#define TODOKU_MAIL_HOPCOUNT_H

#include <stdbool.h>
#include <stddef.h>

struct hopcount {
	int state;	  /* private */
	unsigned matched; /* private: name octets matching "received" */
	bool mismatch;	  /* private: the name is not "received" */
	unsigned count;	  /* Received fields seen so far */
};

void hopcount_init(struct hopcount *h);
void hopcount_feed(struct hopcount *h, const char *p, size_t n);
/* True once the header block has ended (further bytes are ignored). */
bool hopcount_done(const struct hopcount *h);

#endif
