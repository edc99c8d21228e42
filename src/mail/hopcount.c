/*
 * hopcount — Received field counter; see hopcount.h.
 *
 * States (where we are in the header block):
 *   BOL   at the start of a line: a field name, a continuation line
 *         (SP or HTAB), or the empty line that ends the header
 *   NAME  inside a field name
 *   WSP   white space after a field name, before its colon
 *   SKIP  in the body of a field, up to the end of its line
 *   DONE  past the header block
 *
 * Lines end at LF (smtp_data writes CRLF; a CR is part of the line until
 * its LF). In SKIP the end of the line is found with memchr, so a long
 * header costs one scan.
 */
#include "mail/hopcount.h"

#include <limits.h>
#include <string.h>

enum hopcount_state {
	HC_BOL = 0,
	HC_NAME,
	HC_WSP,
	HC_SKIP,
	HC_DONE,
};

static const char hc_name[] = "received";
#define HC_NAME_LEN (sizeof(hc_name) - 1)

void
hopcount_init(struct hopcount *h)
{
	memset(h, 0, sizeof(*h));
	h->state = HC_BOL;
}

bool
hopcount_done(const struct hopcount *h)
{
	return h->state == HC_DONE;
}

/* RFC 5322 ftext: printable US-ASCII except the colon. */
static bool
hc_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static bool
hc_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* A name octet: track whether the name is still "received". */
static void
hc_name_octet(struct hopcount *h, unsigned char c)
{
	unsigned char lc = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;

	if (h->mismatch || h->matched >= HC_NAME_LEN ||
	    lc != (unsigned char)hc_name[h->matched])
		h->mismatch = true;
	else
		h->matched++;
}

/* The colon after a field name: count it if the name was "received". */
static void
hc_colon(struct hopcount *h)
{
	if (!h->mismatch && h->matched == HC_NAME_LEN && h->count < UINT_MAX)
		h->count++;
	h->state = HC_SKIP;
}

static void
hc_start_name(struct hopcount *h, unsigned char c)
{
	h->matched = 0;
	h->mismatch = false;
	if (hc_ftext(c)) {
		h->state = HC_NAME;
		hc_name_octet(h, c);
	} else {
		h->state = HC_DONE; /* empty line, or not a header field */
	}
}

/* One octet outside SKIP. */
static void
hc_step(struct hopcount *h, unsigned char c)
{
	switch (h->state) {
	case HC_BOL:
		if (hc_wsp(c))
			h->state = HC_SKIP; /* continuation of the last field */
		else
			hc_start_name(h, c);
		break;
	case HC_NAME:
		if (c == ':')
			hc_colon(h);
		else if (hc_wsp(c))
			h->state = HC_WSP;
		else if (hc_ftext(c))
			hc_name_octet(h, c);
		else
			h->state = HC_DONE;
		break;
	case HC_WSP:
		if (c == ':')
			hc_colon(h);
		else if (!hc_wsp(c))
			h->state = HC_DONE;
		break;
	default:
		break;
	}
}

void
hopcount_feed(struct hopcount *h, const char *p, size_t n)
{
	size_t i = 0;
	const char *lf;

	while (i < n && h->state != HC_DONE) {
		if (h->state == HC_SKIP) {
			lf = memchr(p + i, '\n', n - i);
			if (lf == NULL)
				return;
			i = (size_t)(lf - p) + 1;
			h->state = HC_BOL;
			continue;
		}
		hc_step(h, (unsigned char)p[i]);
		i++;
	}
}
