/*
 * test_attrec — the attempt record: DNS and connection facts survive the
 * IPC encoding, replies pair with the commands they answer (pipelined,
 * greeting, reconnect), bounds cut and count, and the JSON and text
 * forms escape remote text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/ipc.h"
#include "mail/attrec.h"

static struct ipc_in
in_of(const struct ipc_out *o)
{
	struct ipc_in in = {0};

	in.p = (const unsigned char *)o->b.data;
	in.len = o->b.len;
	return in;
}

static void
make_dns(struct attrec_dns_set *s)
{
	struct attrec_dns *q;

	attrec_dns_init(s);
	q = attrec_dns_add(s, "example.test", "MX", "answer", "NOERROR",
			   ATTREC_SEC_UNCHECKED, NULL);
	attrec_dns_rr(s, q, 300, 10, "mx1.example.test");
	attrec_dns_rr(s, q, 200, 20, "mx2.example.test");
	q = attrec_dns_add(s, "mx1.example.test", "A", "answer", "NOERROR",
			   ATTREC_SEC_SECURE, NULL);
	attrec_dns_rr(s, q, 60, -1, "127.0.0.2");
	attrec_dns_add(s, "mx1.example.test", "AAAA", "nodata", "NOERROR",
		       ATTREC_SEC_BOGUS, "signature expired");
}

static void
test_dns_ipc(void **state)
{
	struct attrec_dns_set a, b;
	struct ipc_out o;
	struct ipc_in in;

	make_dns(&a);
	ipc_out_init(&o);
	attrec_put_dns(&o, &a);
	ipc_put_u32(&o, 77); /* what follows stays in step */
	in = in_of(&o);
	attrec_get_dns(&in, &b);
	assert_int_equal(ipc_get_u32(&in), 77);
	assert_int_equal(in.err, 0);
	assert_int_equal(b.n, 3);
	assert_string_equal(b.q[0].qname, "example.test");
	assert_int_equal(b.q[0].nrr, 2);
	assert_int_equal(b.q[0].rr[1].pref, 20);
	assert_int_equal(b.q[0].rr[1].ttl, 200);
	assert_string_equal(b.q[0].rr[1].data, "mx2.example.test");
	assert_int_equal(b.q[1].rr[0].pref, -1);
	assert_int_equal(b.q[1].dnssec, ATTREC_SEC_SECURE);
	assert_string_equal(b.q[2].result, "nodata");
	assert_string_equal(b.q[2].why, "signature expired");
	ipc_out_free(&o);
	attrec_dns_free(&a);
	attrec_dns_free(&b);
}

static void
test_dns_bounds(void **state)
{
	struct attrec_dns_set s;
	struct attrec_dns *q;

	attrec_dns_init(&s);
	for (int i = 0; i < ATTREC_DNS_MAX + 5; i++)
		attrec_dns_add(&s, "n", "A", "answer", "NOERROR", 0, NULL);
	assert_int_equal(s.n, ATTREC_DNS_MAX);
	assert_int_equal(s.cut, 5);
	attrec_dns_free(&s);
	q = attrec_dns_add(&s, "n", "A", "answer", "NOERROR", 0, NULL);
	for (int i = 0; i < ATTREC_RR_MAX + 3; i++)
		attrec_dns_rr(&s, q, 1, -1, "127.0.0.1");
	assert_int_equal(q->nrr, ATTREC_RR_MAX);
	assert_int_equal(q->rr_cut, 3);
	attrec_dns_free(&s);
}

static void
reply(struct attrec_conn *c, const char *s)
{
	attrec_conn_reply(c, s, strlen(s));
}

static void
test_pairing(void **state)
{
	struct attrec_conn c;

	attrec_conn_init(&c);
	attrec_conn_connected(&c);
	reply(&c, "220 hi");
	attrec_conn_sent(&c, "EHLO me\r\n");
	reply(&c, "250-hello\r\n250 PIPELINING");
	/* pipelined: three commands at once, replies in order */
	attrec_conn_sent(&c, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	reply(&c, "250 ok");
	reply(&c, "450 4.5.0 busy");
	reply(&c, "554 no valid recipients");
	attrec_conn_sent(&c, "QUIT\r\n");
	assert_int_equal(c.nturn, 6);
	assert_null(c.turn[0].command);
	assert_string_equal(c.turn[0].reply, "220 hi");
	assert_string_equal(c.turn[1].reply, "250-hello\r\n250 PIPELINING");
	assert_string_equal(c.turn[3].command, "RCPT TO:<c@d>");
	assert_string_equal(c.turn[3].reply, "450 4.5.0 busy");
	assert_string_equal(c.turn[4].command, "DATA");
	assert_string_equal(c.turn[5].command, "QUIT");
	assert_null(c.turn[5].reply);
	assert_int_equal(c.turn[5].addr, ATTREC_ADDR_PENDING);
	/* a new connection: the unanswered QUIT gets no reply */
	attrec_conn_connected(&c);
	reply(&c, "220 second");
	assert_null(c.turn[5].reply);
	assert_null(c.turn[6].command);
	assert_string_equal(c.turn[6].reply, "220 second");
	attrec_conn_free(&c);
}

static void
test_dialogue_bounds(void **state)
{
	struct attrec_conn c;
	char cmd[64], rep[64], big[ATTREC_REPLY_MAX + 100];

	attrec_conn_init(&c);
	reply(&c, "220 first");
	for (int i = 0; i < 100; i++) {
		snprintf(cmd, sizeof(cmd), "RCPT TO:<r%d@x>", i);
		attrec_conn_sent(&c, cmd);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(rep, sizeof(rep), "250 ok %d", i);
		reply(&c, rep);
	}
	assert_int_equal(c.nturn, ATTREC_TURN_MAX);
	assert_int_equal(c.turn_cut, 101 - ATTREC_TURN_MAX);
	/* the first half and the very last turns are kept, in step */
	assert_string_equal(c.turn[0].reply, "220 first");
	assert_string_equal(c.turn[1].command, "RCPT TO:<r0@x>");
	assert_string_equal(c.turn[1].reply, "250 ok 0");
	assert_string_equal(c.turn[ATTREC_TURN_MAX - 1].command,
			    "RCPT TO:<r99@x>");
	assert_string_equal(c.turn[ATTREC_TURN_MAX - 1].reply, "250 ok 99");
	for (size_t i = 1; i < c.nturn; i++) {
		int a, b;
		assert_int_equal(
		    sscanf(c.turn[i].command, "RCPT TO:<r%d@x>", &a), 1);
		assert_int_equal(sscanf(c.turn[i].reply, "250 ok %d", &b), 1);
		assert_int_equal(a, b);
	}
	attrec_conn_free(&c);

	/* a long reply is cut on a character boundary and marked */
	attrec_conn_init(&c);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	attrec_conn_sent(&c, "DATA");
	reply(&c, big);
	assert_int_equal(strlen(c.turn[0].reply), ATTREC_REPLY_MAX);
	assert_int_equal(c.turn[0].cut, 1);
	attrec_conn_free(&c);

	/* addresses */
	attrec_conn_init(&c);
	for (int i = 0; i < ATTREC_ADDR_MAX + 2; i++)
		attrec_conn_addr(&c, "h", "127.0.0.1", 25, 4, "refused", NULL);
	assert_int_equal(c.naddr, ATTREC_ADDR_MAX);
	assert_int_equal(c.addr_cut, 2);
	attrec_conn_free(&c);
}

static void
make_conn(struct attrec_conn *c)
{
	attrec_conn_init(c);
	attrec_conn_addr(c, "mx1.example.test", "127.0.0.2", 25, 4, "refused",
			 "connect: Connection refused");
	attrec_conn_connected(c);
	reply(c, "220 \x1b[2Jevil\xff");
	attrec_conn_tls_ok(c, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 0, "may",
			   "none", "mx2.example.test");
	attrec_conn_sent(c, "RCPT TO:<u@example.test>");
	reply(c, "450-4.5.0 busy\r\n450 4.5.0 \"later\"");
	attrec_conn_addr(c, "mx2.example.test", "::1", 25, 6, "ok", NULL);
}

static void
test_conn_ipc(void **state)
{
	struct attrec_conn a, b;
	struct ipc_out o;
	struct ipc_in in;

	make_conn(&a);
	ipc_out_init(&o);
	attrec_put_conn(&o, &a);
	ipc_put_u8(&o, 9);
	in = in_of(&o);
	attrec_get_conn(&in, &b);
	assert_int_equal(ipc_get_u8(&in), 9);
	assert_int_equal(in.err, 0);
	assert_int_equal(b.naddr, 2);
	assert_string_equal(b.addr[0].outcome, "refused");
	assert_int_equal(b.addr[0].tls.state, ATTREC_TLS_NONE);
	assert_int_equal(b.addr[1].family, 6);
	assert_int_equal(b.addr[1].tls.state, ATTREC_TLS_OK);
	assert_string_equal(b.addr[1].tls.cipher, "TLS_AES_256_GCM_SHA384");
	assert_int_equal(b.nturn, 2);
	assert_null(b.turn[0].command);
	/* both turns went to the second address (the first refused) */
	assert_int_equal(b.turn[0].addr, 1);
	assert_int_equal(b.turn[1].addr, 1);
	assert_string_equal(b.turn[1].command, "RCPT TO:<u@example.test>");
	ipc_out_free(&o);
	/* append copies */
	attrec_conn_append(&b, &a);
	assert_int_equal(b.naddr, 4);
	assert_int_equal(b.nturn, 4);
	assert_int_equal(b.turn[3].addr, 3);
	attrec_conn_free(&a);
	attrec_conn_free(&b);
}

static void
test_output(void **state)
{
	struct attrec_dns_set d;
	struct attrec_conn c;
	struct attrec_view v = {0};
	struct buf b;

	make_dns(&d);
	make_conn(&c);
	v.time = 1700000000;
	v.route_kind = "mx";
	v.route_via = "example.test";
	v.dns = &d;
	v.conn = &c;
	v.result = "deferred";
	v.status = "4.5.0";
	v.reply = "450 4.5.0 busy";
	v.command = "RCPT";
	v.where = "smtp mx2.example.test [::1]:25 after RCPT";
	v.next_attempt = 1700000300;
	v.next_reason = "retry schedule step 1 of 3 (300 s)";
	buf_init(&b, 1 << 20);
	assert_int_equal(attrec_json(&v, &b), 0);
	assert_non_null(strstr(b.data, "\"time\": \"2023-11-14T22:13:20Z\""));
	assert_non_null(strstr(b.data, "\"route\": {\"kind\": \"mx\""));
	assert_non_null(strstr(b.data, "{\"pref\": 10, \"data\": "
				       "\"mx1.example.test\", \"ttl\": 300}"));
	assert_non_null(strstr(b.data, "\"ttl\": 200, \"tcp\": null"));
	assert_non_null(strstr(b.data,
			       "\"dnssec\": \"bogus\", "
			       "\"dnssec_why\": \"signature expired\""));
	/* the preference of each address comes from the MX answer */
	assert_non_null(strstr(b.data, "\"host\": \"mx1.example.test\", "
				       "\"pref\": 10, \"address\": "
				       "\"127.0.0.2\", \"port\": 25"));
	assert_non_null(strstr(b.data, "\"outcome\": \"refused\""));
	assert_non_null(strstr(b.data, "\"tls\": {\"result\": \"ok\", "
				       "\"version\": \"TLSv1.3\""));
	assert_non_null(strstr(
	    b.data, "{\"address\": 1, \"command\": null, \"reply\": \"220 "
		    "\\u001b[2Jevil\\ufffd\""));
	assert_non_null(strstr(b.data,
			       "\"reply\": \"450-4.5.0 busy\\u000d\\u000a450 "
			       "4.5.0 \\\"later\\\"\""));
	assert_non_null(strstr(b.data, "\"next_attempt\": "
				       "\"2023-11-14T22:18:20Z\", "
				       "\"next_reason\": \"retry schedule"));
	buf_reset(&b);
	assert_int_equal(attrec_text(&v, &b), 0);
	assert_non_null(strstr(b.data, "route mx via example.test\n"));
	assert_non_null(strstr(b.data, "dns MX example.test: answer "
				       "(NOERROR, dnssec unchecked)\n"));
	assert_non_null(strstr(b.data, "          10 mx1.example.test  ttl "
				       "300\n"));
	assert_non_null(strstr(b.data, "address mx1.example.test "
				       "127.0.0.2:25 (pref 10): refused: "
				       "connect: Connection refused\n"));
	assert_non_null(strstr(b.data,
			       "address mx2.example.test [::1]:25 (pref 20): "
			       "ok\n"));
	assert_non_null(strstr(b.data, "tls TLSv1.3 TLS_AES_256_GCM_SHA384, "
				       "certificate not verified (tls may, "
				       "verify none)"));
	assert_non_null(strstr(b.data, "< 220 \\x1b[2Jevil\\xff\n"));
	/* the dialogue under the address it went to */
	assert_non_null(strstr(b.data,
			       "verify none)\n"
			       "            < 220 \\x1b[2Jevil\\xff\n"
			       "            > RCPT TO:<u@example.test>\n"
			       "            < 450-4.5.0 busy\n"
			       "            < 450 4.5.0 \"later\"\n"));
	assert_null(strstr(b.data, "dialogue at no recorded address"));
	assert_non_null(strstr(b.data, "next attempt 2023-11-14T22:18:20Z: "
				       "retry schedule step 1 of 3"));
	buf_free(&b);
	attrec_dns_free(&d);
	attrec_conn_free(&c);
}

static void old_format(int format);

/* The notes (failed recently, IPv4 retry, message on the connection,
 * IPv6 plan, time limit) travel, survive a stored record (format 2),
 * and show in both forms; a format 1 record (no notes) still decodes. */
static void
test_notes_and_storage(void **state)
{
	struct attrec_dns_set d;
	struct attrec_conn c, a;
	struct attrec_view v = {0};
	struct attrec_unpacked u;
	struct ipc_out o;
	struct buf b;
	int k;

	make_dns(&d);
	attrec_conn_init(&c);
	k = attrec_conn_addr(&c, "mx1.example.test", "127.0.0.2", 25, 4,
			     "refused", NULL);
	attrec_conn_addr_note(&c, k, ATTREC_AF_FAILED_RECENTLY, 0);
	c.v6_plan = ATTREC_V6_V4_FIRST;
	attrec_conn_recent(&c, "127.0.0.2");
	attrec_conn_recent(&c, "127.0.0.2");
	c.time_limit = 1;
	c.tl_tried = 1;
	c.tl_total = 3;
	attrec_conn_init(&a);
	k = attrec_conn_addr(&a, "mx2.example.test", "127.0.0.3", 25, 4, "ok",
			     NULL);
	attrec_conn_addr_note(&a, k, 0, 2);
	{
		const char *skipped[] = {"127.0.0.4", "::5"};
		attrec_conn_addr_limit(&a, 2, 4, skipped, 2);
	}
	attrec_conn_append(&c, &a);
	attrec_conn_mark_v4_retry(&c, 1);
	attrec_conn_free(&a);
	assert_int_equal(c.addr[0].flags, ATTREC_AF_FAILED_RECENTLY);
	assert_int_equal(c.addr[1].flags, ATTREC_AF_V4_RETRY);
	assert_int_equal(c.addr[1].message, 2);

	v.route_kind = "mx";
	v.route_via = "example.test";
	v.command = "RCPT";
	v.dns = &d;
	v.conn = &c;
	v.next_attempt = 1700000600;
	v.next_reason = "retry schedule step 1 of 1: 600 s";
	ipc_out_init(&o);
	attrec_pack(&v, &o);
	assert_int_equal(o.b.data[0], ATTREC_PACK_V3);
	assert_int_equal(attrec_unpack(o.b.data, o.b.len, &u), 0);
	assert_string_equal(u.view.route_via, "example.test");
	assert_string_equal(u.view.command, "RCPT");
	assert_int_equal(u.view.next_attempt, 1700000600);
	assert_int_equal(u.dns.n, d.n);
	assert_int_equal(u.conn.naddr, 2);
	assert_int_equal(u.conn.v6_plan, ATTREC_V6_V4_FIRST);
	assert_int_equal(u.conn.tl_total, 3);
	assert_int_equal(u.conn.nrecent, 1);
	assert_int_equal(u.conn.addr[1].message, 2);
	assert_int_equal(u.conn.al_max, 2);
	assert_int_equal(u.conn.al_total, 4);
	assert_int_equal(u.conn.nskipped, 2);
	assert_string_equal(u.conn.skipped[1], "::5");
	u.view.time = 1700000000;
	u.view.result = "deferred";
	buf_init(&b, 1 << 20);
	assert_int_equal(attrec_json(&u.view, &b), 0);
	assert_non_null(strstr(b.data, "\"ipv6_plan\": \"ipv4-first\", "
				       "\"failed_recently\": [\"127.0.0.2\"], "
				       "\"time_limit\": {\"tried\": 1, "
				       "\"addresses\": 3}, "
				       "\"address_limit\": {\"max\": 2, "
				       "\"addresses\": 4, \"skipped\": "
				       "[\"127.0.0.4\", \"::5\"], "
				       "\"skipped_unlisted\": 0}"));
	assert_non_null(strstr(b.data, "\"failed_recently\": true, "
				       "\"ipv4_retry\": false, \"message\": "
				       "null"));
	assert_non_null(strstr(b.data, "\"failed_recently\": false, "
				       "\"ipv4_retry\": true, \"message\": 2"));
	buf_reset(&b);
	attrec_text(&u.view, &b);
	assert_non_null(
	    strstr(b.data, "        IPv6 suspended: IPv4 addresses first\n"));
	assert_non_null(strstr(b.data, "        failed recently, ordered "
				       "last: 127.0.0.2\n"));
	assert_non_null(strstr(b.data, "        attempt time limit reached "
				       "after 1 of 3 addresses\n"));
	assert_non_null(strstr(b.data, "        max-addresses 2 of 4 addresses "
				       "in the attempt's order; skipped by "
				       "the limit: 127.0.0.4, ::5\n"));
	assert_non_null(strstr(b.data, "refused\n          failed recently: "
				       "ordered last\n"));
	assert_non_null(strstr(b.data, "          IPv4 retry after a policy "
				       "refusal over IPv6\n"));
	assert_non_null(
	    strstr(b.data, "          connection reused: message 2 on it\n"));
	attrec_unpacked_free(&u);
	/* truncated or of an unknown format: refused, nothing leaks */
	assert_int_equal(attrec_unpack(o.b.data, o.b.len - 1, &u), -1);
	attrec_unpacked_free(&u);
	o.b.data[0] = 9;
	assert_int_equal(attrec_unpack(o.b.data, o.b.len, &u), -1);
	attrec_unpacked_free(&u);
	ipc_out_free(&o);

	/* formats 1 and 2: without the notes, without the address limit */
	for (int f = ATTREC_PACK_V1; f <= ATTREC_PACK_V2; f++)
		old_format(f);
	buf_free(&b);
	attrec_conn_free(&c);
	attrec_dns_free(&d);
}

/* A stored record of format 1 (no notes) or 2 (no address limit) with
 * one address still decodes. */
static void
old_format(int format)
{
	struct attrec_unpacked u;
	struct ipc_out o;

	ipc_out_init(&o);
	ipc_put_u8(&o, (uint8_t)format);
	ipc_put_u8(&o, 1);
	ipc_put_str(&o, "local");
	ipc_put_u8(&o, 0);
	ipc_put_str(&o, "");
	ipc_put_u8(&o, 0);
	ipc_put_str(&o, "");
	ipc_put_i64(&o, 0);
	ipc_put_u8(&o, 0);
	ipc_put_str(&o, "");
	ipc_put_u8(&o, 0); /* no DNS */
	ipc_put_u8(&o, 1); /* a connection: one address, no turns */
	if (format == ATTREC_PACK_V2) {
		ipc_put_u8(&o, ATTREC_V6_PROBE);
		ipc_put_u8(&o, 0);
		ipc_put_u32(&o, 0);
		ipc_put_u32(&o, 0);
		ipc_put_u32(&o, 0); /* failed recently */
	}
	ipc_put_u32(&o, 0);
	ipc_put_u32(&o, 1);
	ipc_put_str(&o, "mx.example.test");
	ipc_put_str(&o, "127.0.0.9");
	ipc_put_u32(&o, 25);
	ipc_put_u8(&o, 4);
	ipc_put_str(&o, "ok");
	ipc_put_u8(&o, 0);
	ipc_put_str(&o, "");
	ipc_put_u8(&o, 0); /* tls: none */
	ipc_put_u8(&o, 0);
	for (int i = 0; i < 6; i++) {
		ipc_put_u8(&o, 0);
		ipc_put_str(&o, "");
	}
	if (format == ATTREC_PACK_V2) {
		ipc_put_u8(&o, 0);  /* flags */
		ipc_put_u32(&o, 1); /* message */
	}
	ipc_put_u32(&o, 0);
	ipc_put_u32(&o, 0);
	assert_int_equal(attrec_unpack(o.b.data, o.b.len, &u), 0);
	assert_string_equal(u.view.route_kind, "local");
	assert_int_equal(u.conn.naddr, 1);
	assert_string_equal(u.conn.addr[0].address, "127.0.0.9");
	assert_int_equal(u.conn.v6_plan, format == ATTREC_PACK_V2
					     ? ATTREC_V6_PROBE
					     : ATTREC_V6_USUAL);
	assert_int_equal(u.conn.al_max, 0);
	attrec_unpacked_free(&u);
	ipc_out_free(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dns_ipc),
	    cmocka_unit_test(test_dns_bounds),
	    cmocka_unit_test(test_pairing),
	    cmocka_unit_test(test_dialogue_bounds),
	    cmocka_unit_test(test_conn_ipc),
	    cmocka_unit_test(test_output),
	    cmocka_unit_test(test_notes_and_storage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
