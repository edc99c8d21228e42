/*
 * smtp_data — DATA byte stream to message bytes; see smtp_data.h.
 *
 * States (where we are in the current line):
 *   BOL     at the start of a line: after a real CRLF, or the first byte
 *   TEXT    inside a line
 *   CR      a CR was seen and is held back until we know it is a CRLF
 *   DOT     a "." at BOL was seen and is held back (stuffing or the end)
 *   DOT_CR  "." CR at BOL: LF ends the message, anything else is a bare CR
 *   DONE    the end line was consumed; further input is not ours
 *
 * A bare LF never leads to BOL, so "\n.\r\n", "\r\n.\n", "\r.\r\n" and
 * the like never end the message; only the exact octets CR LF "." CR LF
 * (or "." CR LF as the very first line) do.
 *
 * Each input octet maps to at most two output octets ("\r\n" when the LF
 * of a CRLF arrives). Before an octet is consumed we check that its
 * output fits in out, so stopping early never loses or repeats a byte
 * and the result does not depend on how the input was split. Runs of
 * ordinary text bytes are copied in one buf_add.
 *
 * size counts every octet that would have been written, also in discard
 * mode and past the limit; discarded counts input octets consumed after
 * (and including) a bare CR/LF or NUL.
 */
#include "mail/smtp_data.h"

#include <string.h>

enum smtp_data_state {
	SD_BOL = 0,
	SD_TEXT,
	SD_CR,
	SD_DOT,
	SD_DOT_CR,
	SD_DONE,
};

/* RFC 5321 §4.5.3.1.6: 998 octets of text before the CRLF. */
#define SMTP_DATA_LINE_MAX 998

/* The effect of one input octet, computed before it is committed. */
struct sd_step {
	int next;
	unsigned k; /* output octets */
	char out[2];
	bool bare; /* the octet reveals a bare CR or LF */
	bool end;
};

void
smtp_data_init(struct smtp_data *d, uint64_t max_size)
{
	memset(d, 0, sizeof(*d));
	d->state = SD_BOL;
	d->max_size = max_size;
}

bool
smtp_data_rejected(const struct smtp_data *d)
{
	return d->bare_eol || d->nul || d->too_big;
}

static void
sd_emit1(struct sd_step *st, int next, unsigned char c)
{
	st->next = next;
	st->k = 1;
	st->out[0] = (char)c;
}

/* After a bare CR: c starts or continues ordinary text. */
static void
sd_after_bare_cr(struct sd_step *st, unsigned char c)
{
	st->bare = true;
	if (c == '\r')
		st->next = SD_CR;
	else if (c == '\n')
		st->next = SD_TEXT; /* unreachable: CR LF is not bare */
	else
		sd_emit1(st, SD_TEXT, c);
}

static void
sd_step(int state, unsigned char c, struct sd_step *st)
{
	memset(st, 0, sizeof(*st));
	st->next = SD_TEXT;
	if (c == '\n' && state != SD_CR && state != SD_DOT_CR) {
		st->bare = true;
		return;
	}
	switch (state) {
	case SD_BOL:
		if (c == '.')
			st->next = SD_DOT;
		else if (c == '\r')
			st->next = SD_CR;
		else
			sd_emit1(st, SD_TEXT, c);
		break;
	case SD_DOT:
		if (c == '\r')
			st->next = SD_DOT_CR;
		else
			sd_emit1(st, SD_TEXT, c); /* ".." -> ".", ".x" -> "x" */
		break;
	case SD_CR:
		if (c == '\n') {
			st->next = SD_BOL;
			st->k = 2;
			st->out[0] = '\r';
			st->out[1] = '\n';
		} else {
			sd_after_bare_cr(st, c);
		}
		break;
	case SD_DOT_CR:
		if (c == '\n')
			st->end = true;
		else
			sd_after_bare_cr(st, c);
		break;
	default: /* SD_TEXT */
		if (c == '\r')
			st->next = SD_CR;
		else
			sd_emit1(st, SD_TEXT, c);
		break;
	}
}

static bool
sd_discarding(const struct smtp_data *d)
{
	return d->bare_eol || d->nul;
}

/* Line length and 8-bit bookkeeping for k output octets of text. */
static void
sd_account_text(struct smtp_data *d, const char *p, size_t k)
{
	size_t i;

	for (i = 0; i < k; i++)
		if ((unsigned char)p[i] >= 0x80)
			d->eightbit = true;
	if (k > SMTP_DATA_LINE_MAX || d->line_len + k > SMTP_DATA_LINE_MAX) {
		d->long_line = true;
		d->line_len = SMTP_DATA_LINE_MAX + 1;
	} else {
		d->line_len += (unsigned)k;
	}
}

/*
 * Write k octets unless the transaction is already lost. Returns -1 (and
 * changes nothing) when out has no room: the caller must stop there.
 */
static int
sd_output(struct smtp_data *d, struct buf *out, const char *p, size_t k)
{
	bool live = !sd_discarding(d) && !d->too_big;

	if (live && k > d->max_size - d->size) {
		d->too_big = true;
		live = false;
	}
	if (live && (out->len > out->max || k > out->max - out->len))
		return -1;
	if (live && k > 0 && buf_add(out, p, k) < 0) {
		d->nomem = true;
		return -1;
	}
	d->size += k;
	return 0;
}

/* Consume one octet through the state machine; -1 if out is full. */
static int
sd_feed_one(struct smtp_data *d, unsigned char c, struct buf *out)
{
	struct sd_step st;
	bool was_bare = d->bare_eol, was_nul = d->nul;

	sd_step(d->state, c, &st);
	if (st.bare)
		d->bare_eol = true;
	if (c == '\0')
		d->nul = true;
	if (sd_output(d, out, st.out, st.k) < 0) {
		d->bare_eol = was_bare;
		d->nul = was_nul;
		return -1;
	}
	if (sd_discarding(d))
		d->discarded++;
	if (st.k == 2)
		d->line_len = 0;
	else
		sd_account_text(d, st.out, st.k);
	d->state = st.end ? SD_DONE : st.next;
	return 0;
}

/* Length of the run of ordinary text octets at in (no CR, LF, NUL). */
static size_t
sd_text_run(const char *in, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (in[i] == '\r' || in[i] == '\n' || in[i] == '\0')
			break;
	return i;
}

/*
 * Fast path inside a line: copy as much of the run as fits in out and
 * under max_size. Returns the octets consumed (0: use the slow path).
 */
static size_t
sd_feed_text(struct smtp_data *d, const char *in, size_t n, struct buf *out)
{
	size_t run = sd_text_run(in, n), room;

	if (run == 0)
		return 0;
	if (!sd_discarding(d) && !d->too_big) {
		room = out->len < out->max ? out->max - out->len : 0;
		if (run > room)
			run = room;
		if (run > d->max_size - d->size)
			run = (size_t)(d->max_size - d->size);
		if (run == 0 || buf_add(out, in, run) < 0)
			return 0;
	} else if (sd_discarding(d)) {
		d->discarded += run;
	}
	d->size += run;
	sd_account_text(d, in, run);
	return run;
}

size_t
smtp_data_feed(struct smtp_data *d, const char *in, size_t n, struct buf *out,
	       bool *end)
{
	size_t i = 0, k;

	*end = d->state == SD_DONE;
	while (i < n && d->state != SD_DONE) {
		if (d->state == SD_TEXT) {
			k = sd_feed_text(d, in + i, n - i, out);
			if (k > 0) {
				i += k;
				continue;
			}
		}
		if (sd_feed_one(d, (unsigned char)in[i], out) < 0)
			break;
		i++;
	}
	*end = d->state == SD_DONE;
	return i;
}
