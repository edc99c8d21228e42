/*
 * fuzz_addr — libFuzzer target for mail/addr.c.
 *
 * The first byte picks the flags; the rest is parsed as a path and as a
 * bare mailbox. Invariants: on success the output strings fit their
 * limits, the domain has no uppercase ASCII unless it is a literal, and
 * *end stays inside the input and points just past a '>'. A parsed
 * address whose domain converts to A-labels is all ASCII afterwards and
 * still fits the limits; no octet of a parsed address is a C0/C1
 * control.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check(const struct mailaddr *a)
{
	char out[ADDR_PATH_MAX + 2];
	const char *p;

	if (strlen(a->local) > ADDR_LOCAL_MAX ||
	    strlen(a->domain) > ADDR_DOMAIN_MAX)
		abort();
	if (a->domain[0] != '[')
		for (p = a->domain; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				abort();
	addr_format(a, out, sizeof(out));
	if (strlen(out) > ADDR_PATH_MAX)
		abort();
	if (!addr_equal(a, a))
		abort();
	for (p = out; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f ||
		    ((unsigned char)p[0] == 0xC2 &&
		     (unsigned char)p[1] >= 0x80 &&
		     (unsigned char)p[1] <= 0x9F))
			abort();
}

static void
fuzz_alabel(struct mailaddr a)
{
	char out[ADDR_PATH_MAX + 2];

	if (a.domain[0] == '[' || addr_domain_ascii(&a) != ADDR_OK)
		return;
	if (a.domain[0] != '\0' &&
	    !addr_domain_valid(a.domain, strlen(a.domain)))
		abort();
	addr_format(&a, out, sizeof(out));
	if (strlen(out) > ADDR_PATH_MAX - 2 && !a.is_null)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailaddr a;
	unsigned flags;
	size_t end = 0;
	const char *s;

	if (size == 0)
		return 0;
	flags = data[0] & 7;
	s = (const char *)data + 1;
	size--;
	if (addr_parse_path(s, size, flags, &a, &end) == ADDR_OK) {
		if (end < 2 || end > size || end > ADDR_PATH_MAX ||
		    s[end - 1] != '>')
			abort();
		fuzz_check(&a);
		fuzz_alabel(a);
	}
	if (addr_parse_mailbox(s, size, flags, &a) == ADDR_OK) {
		fuzz_check(&a);
		fuzz_alabel(a);
	}
	if (addr_domain_valid(s, size) && size > ADDR_DOMAIN_MAX)
		abort();
	addr_literal_valid(s, size);
	return 0;
}
