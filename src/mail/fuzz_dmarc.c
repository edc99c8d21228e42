/*
 * fuzz_dmarc — libFuzzer target for the DMARC record parser and the From
 * header helper (mail/dmarc.c); both read attacker-controlled text.
 *
 * The whole input is parsed as a record (and again behind "v=DMARC1;"),
 * as a From header value, and as a domain. Invariants: kept URIs are
 * NUL-terminated within their buffer and hold one '@', counts stay
 * within their arrays, enum fields are in range, a From domain that is
 * returned is a normalised name that normalises to itself, and a
 * normalised domain never exceeds 253 octets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dmarc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IN_MAX 8192

static char text[IN_MAX + 16];

static void
check_uris(const struct dmarc_uri *u, unsigned n)
{
	unsigned i;

	if (n > DMARC_URIS_MAX)
		abort();
	for (i = 0; i < n; i++) {
		size_t len = strnlen(u[i].addr, sizeof(u[i].addr));

		if (len == 0 || len >= sizeof(u[i].addr) ||
		    strchr(u[i].addr, '@') == NULL)
			abort();
	}
}

static void
check_record(const char *s, size_t n)
{
	static struct dmarc_record r;
	enum dmarc_parse ps = dmarc_record_parse(s, n, &r);

	if (ps == DMARC_REC_NOT_DMARC) {
		if (dmarc_record_is_dmarc(s, n))
			abort();
		return;
	}
	if (!dmarc_record_is_dmarc(s, n))
		abort();
	if (ps != DMARC_REC_OK)
		return;
	if (r.p < DMARC_P_NONE || r.p > DMARC_P_REJECT ||
	    r.sp > DMARC_P_REJECT || r.np > DMARC_P_REJECT ||
	    r.adkim > DMARC_ALIGN_STRICT || r.aspf > DMARC_ALIGN_STRICT ||
	    r.psd > DMARC_PSD_N || r.fo > 0xf)
		abort();
	check_uris(r.rua, r.nrua);
	check_uris(r.ruf, r.nruf);
}

static void
check_from(const char *s, size_t n)
{
	char out[DMARC_NAME_MAX + 1], again[DMARC_NAME_MAX + 1];
	unsigned naddr;
	enum dmarc_from r = dmarc_from_domain(s, n, out, sizeof(out), &naddr);

	if (r == DMARC_FROM_OK) {
		if (naddr == 0 ||
		    !dmarc_domain_norm(out, strlen(out), again,
				       sizeof(again)) ||
		    strcmp(out, again) != 0)
			abort();
	} else if (r == DMARC_FROM_MULTIPLE && naddr < 2) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dom[DMARC_NAME_MAX + 1];
	const char *s = (const char *)data;

	if (size > IN_MAX)
		return 0;
	check_record(s, size);
	memcpy(text, "v=DMARC1;", 9);
	memcpy(text + 9, s, size);
	check_record(text, size + 9);
	check_from(s, size);
	if (dmarc_domain_norm(s, size, dom, sizeof(dom)) &&
	    strlen(dom) > DMARC_NAME_MAX)
		abort();
	return 0;
}
