/*
 * ar_strip — see ar_strip.h.
 */
#include "mail/ar_strip.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define AR_NAME "Authentication-Results:"
#define AR_NAME_LEN (sizeof(AR_NAME) - 1)

/* End of the field starting at p: past its last continuation line. */
static size_t
field_end(const char *p, size_t n)
{
	size_t i = 0;

	for (;;) {
		const char *nl = memchr(p + i, '\n', n - i);
		if (nl == NULL)
			return n;
		i = (size_t)(nl - p) + 1;
		if (i >= n || (p[i] != ' ' && p[i] != '\t'))
			return i;
	}
}

/* Skip whitespace, line ends and (nested) comments; -1 if unterminated. */
static long
skip_cfws(const char *p, size_t n, size_t i)
{
	int depth = 0;

	for (; i < n; i++) {
		char c = p[i];
		if (depth > 0) {
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '(')
			depth++;
		else if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			return (long)i;
	}
	return depth > 0 ? -1 : (long)i;
}

/* Does this Authentication-Results field claim authserv-id id? */
static bool
claims(const char *f, size_t n, const char *id)
{
	size_t idlen = strlen(id), j;
	long i = skip_cfws(f, n, AR_NAME_LEN);

	if (i < 0)
		return false;
	j = (size_t)i;
	while (j < n && f[j] != ';' && f[j] != ' ' && f[j] != '\t' &&
	       f[j] != '\r' && f[j] != '\n' && f[j] != '(')
		j++;
	return j - (size_t)i == idlen && idlen > 0 &&
	       strncasecmp(f + i, id, idlen) == 0;
}

int
ar_strip(const char *hdr, size_t n, const char *authserv_id, struct buf *out)
{
	size_t i = 0;
	int removed = 0;

	while (i < n) {
		size_t len = field_end(hdr + i, n - i);
		bool ar = len >= AR_NAME_LEN &&
			  strncasecmp(hdr + i, AR_NAME, AR_NAME_LEN) == 0;

		if (ar && claims(hdr + i, len, authserv_id))
			removed++;
		else if (buf_add(out, hdr + i, len) < 0)
			return -1;
		i += len;
	}
	return removed;
}
