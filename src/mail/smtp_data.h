/*
 * smtp_data — the DATA phase byte stream as a pure state machine.
 *
 * Feed it the raw bytes a client sends after "354"; it writes the message
 * (dot-stuffing removed, CRLF line ends kept) to an output buffer and
 * says where the message ended. Only CR LF "." CR LF ends a message
 * (RFC 5321 §4.1.1.4); the very first line counts as following a CRLF.
 *
 * SMTP smuggling defence (DESIGN §7): the first bare LF, or CR not
 * followed by LF, switches the transaction to discard mode: nothing more
 * is written, the machine keeps scanning for the strict CRLF.CRLF end,
 * and the caller answers 550 5.5.2 there. A NUL octet does the same
 * (flag nul). Past max_size output bytes, too_big is set and output
 * stops (caller answers 552 5.3.4 at the end). Lines longer than 998
 * octets are accepted (size is the only limit); long_line records that
 * one was seen.
 *
 * discarded counts bytes seen in discard mode so the caller can hang up
 * (421) past a limit instead of reading forever.
 *
 * Dot-stuffing: a line starting with ".." yields "."; a line starting
 * with "." and other text (non-conforming) yields the text without the
 * dot. The result and the end position never depend on how the input
 * was split across calls. out->max must be at least 2 (one CRLF).
 */
#ifndef TODOKU_MAIL_SMTP_DATA_H
#define TODOKU_MAIL_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

struct smtp_data {
	int state; /* private */
	uint64_t max_size;
	uint64_t size; /* message bytes produced (or that would have been) */
	uint64_t discarded;
	bool bare_eol; /* a bare CR or LF was seen */
	bool nul;
	bool too_big;
	bool long_line;
	bool eightbit; /* an octet >= 0x80 was seen */
	bool nomem;    /* buf_add failed below out->max: allocation failure */
	unsigned line_len; /* private */
};

void smtp_data_init(struct smtp_data *d, uint64_t max_size);
/*
 * Consume up to n bytes of input. Message bytes are appended to out; if
 * out would pass its maximum, feeding stops early (flush out, call again
 * with the rest). Returns the number of input bytes consumed; *end is set
 * when the end-of-data line was consumed (the bytes after it belong to
 * the next command). Once ended, further calls consume nothing. If an
 * allocation fails, nomem is set and feeding stops (answer 451 4.3.0).
 */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t n,
		      struct buf *out, bool *end);
/* True when the message must be refused at the end (bare_eol/nul/too_big) */
bool smtp_data_rejected(const struct smtp_data *d);

#endif
