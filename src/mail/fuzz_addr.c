/*
 * fuzz_addr — libFuzzer target for mail/addr.c.
 *
 * The first byte picks the flags; the rest is parsed as a path and as a
 * bare mailbox. Invariants: on success the output strings fit their
 * limits, the domain has no uppercase ASCII unless it is a literal, and
 * *end stays inside the input and points just past a '>'.
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
	}
	if (addr_parse_mailbox(s, size, flags, &a) == ADDR_OK)
		fuzz_check(&a);
	if (addr_domain_valid(s, size) && size > ADDR_DOMAIN_MAX)
		abort();
	addr_literal_valid(s, size);
	return 0;
}
