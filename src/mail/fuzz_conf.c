/*
 * fuzz_conf — libFuzzer target for the configuration parser.
 *
 * Feeds arbitrary bytes to conf_parse_text. Every accepted input must
 * dump (conf_dump) to text that parses again and dumps identically, apart
 * from the first comment line naming the source; anything else aborts.
 * Everything is freed, so a leak shows under LeakSanitizer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
roundtrip(const struct conf *c)
{
	char err[CONF_ERR_MAX];
	struct buf b1, b2;
	struct conf *c2;

	buf_init(&b1, 4 * CONF_FILE_MAX);
	buf_init(&b2, 4 * CONF_FILE_MAX);
	if (conf_dump(c, &b1) < 0)
		abort();
	c2 = conf_parse_text("dump", b1.data, b1.len, err, sizeof(err));
	if (c2 == NULL || conf_dump(c2, &b2) < 0)
		abort();
	if (strcmp(strchr(b1.data, '\n'), strchr(b2.data, '\n')) != 0)
		abort();
	conf_free(c2);
	buf_free(&b1);
	buf_free(&b2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CONF_ERR_MAX];
	struct conf *c;

	if (size > CONF_FILE_MAX)
		return 0;
	c = conf_parse_text("fuzz", (const char *)data, size, err, sizeof(err));
	if (c != NULL) {
		roundtrip(c);
		conf_free(c);
	} else if (err[0] == '\0') {
		abort(); /* a failure must always say why */
	}
	return 0;
}
