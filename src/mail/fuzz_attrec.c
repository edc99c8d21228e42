/*
 * fuzz_attrec — libFuzzer target for mail/attrec.c.
 *
 * The input is decoded as the IPC fields of an attempt record (DNS
 * answers, then connection facts: what lookup and smtp-out send queue)
 * and also fed, split at its first NUL, as a command and a reply of a
 * live dialogue, and decoded as a stored record (attrec_unpack: what the
 * spool reads back from attempt.rec). All records are rendered.
 * Invariants: the decoders never read past the input, the JSON form is
 * complete, valid UTF-8 and free of control characters, and the text
 * form holds no control character but newlines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/ipc.h"
#include "lib/json.h"
#include "mail/attrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check_json(const struct buf *b)
{
	const unsigned char *p = (const unsigned char *)b->data;

	for (size_t i = 0; i < b->len;) {
		size_t n = json_utf8_len(p + i, b->len - i);
		if (n == 0 || p[i] < 0x20 || p[i] == 0x7f)
			abort();
		i += n;
	}
	if (b->len < 2 || p[0] != '{' || p[b->len - 1] != '}')
		abort();
}

static void
fuzz_check_text(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];
		if ((c < 0x20 && c != '\n') || c == 0x7f)
			abort();
	}
}

static void
fuzz_view(const struct attrec_view *v)
{
	struct buf b;

	buf_init(&b, 1u << 22);
	if (attrec_json(v, &b) != 0)
		abort();
	fuzz_check_json(&b);
	buf_reset(&b);
	attrec_text(v, &b);
	fuzz_check_text(&b);
	buf_free(&b);
}

static void
fuzz_render(const struct attrec_dns_set *d, const struct attrec_conn *c)
{
	struct attrec_view v = {0};

	v.time = 1700000000;
	v.route_kind = "mx";
	v.route_via = "example.test";
	v.dns = d;
	v.conn = c;
	v.result = "deferred";
	v.next_attempt = 1700000300;
	v.next_reason = "fuzz";
	fuzz_view(&v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_in in = {0};
	struct attrec_dns_set d;
	struct attrec_conn c, live;
	struct attrec_unpacked *u;
	const uint8_t *nul = memchr(data, 0, size);
	char *cmd, *reply;
	size_t ncmd = nul ? (size_t)(nul - data) : size;

	in.p = data;
	in.len = size;
	attrec_get_dns(&in, &d);
	attrec_get_conn(&in, &c);
	if (in.off > in.len)
		abort();
	fuzz_render(&d, &c);

	/* the same input as a stored record (spool attempt.rec) */
	u = malloc(sizeof(*u));
	if (u == NULL)
		abort();
	attrec_unpack(data, size, u);
	fuzz_view(&u->view);
	attrec_unpacked_free(u);
	free(u);

	attrec_conn_init(&live);
	attrec_conn_connected(&live);
	cmd = malloc(ncmd + 1);
	reply = malloc(size - ncmd + 1);
	if (cmd == NULL || reply == NULL)
		abort();
	memcpy(cmd, data, ncmd);
	cmd[ncmd] = '\0';
	memcpy(reply, data + ncmd, size - ncmd);
	reply[size - ncmd] = '\0';
	attrec_conn_reply(&live, reply, strlen(reply));
	attrec_conn_sent(&live, cmd);
	attrec_conn_reply(&live, (const char *)data, size);
	attrec_conn_addr(&live, cmd, reply, 25, 4, "ok", reply);
	attrec_conn_append(&c, &live);
	fuzz_render(&d, &c);
	free(cmd);
	free(reply);
	attrec_conn_free(&live);
	attrec_conn_free(&c);
	attrec_dns_free(&d);
	return 0;
}
