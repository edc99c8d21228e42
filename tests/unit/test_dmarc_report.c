/* test_dmarc_report — aggregate report builder (mail/dmarc_report.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "lib/alloc.h"
#include "mail/dmarc_report.h"

static void
row_init(struct dmarc_rep_row *r, const char *ip, const char *spf)
{
	memset(r, 0, sizeof(*r));
	r->time = 1700000000;
	snprintf(r->policy_domain, sizeof(r->policy_domain), "sender.test");
	snprintf(r->p, sizeof(r->p), "none");
	snprintf(r->adkim, sizeof(r->adkim), "r");
	snprintf(r->aspf, sizeof(r->aspf), "r");
	snprintf(r->source_ip, sizeof(r->source_ip), "%s", ip);
	snprintf(r->header_from, sizeof(r->header_from), "sender.test");
	snprintf(r->envelope_from, sizeof(r->envelope_from), "sender.test");
	snprintf(r->spf_domain, sizeof(r->spf_domain), "sender.test");
	snprintf(r->spf_scope, sizeof(r->spf_scope), "mfrom");
	snprintf(r->spf_result, sizeof(r->spf_result), "%s", spf);
	snprintf(r->disposition, sizeof(r->disposition), "none");
	snprintf(r->dkim_align, sizeof(r->dkim_align), "fail");
	snprintf(r->spf_align, sizeof(r->spf_align), "%s",
		 strcmp(spf, "pass") == 0 ? "pass" : "fail");
	snprintf(r->result, sizeof(r->result), "%s", r->spf_align);
}

static const struct dmarc_rep_meta meta = {
    .org_name = "Example <Org> & \"Co\"",
    .email = "dmarc@mx.example",
    .report_id = "r1",
    .receiver = "mx.example",
    .policy_domain = "sender.test",
    .begin = 1700000000,
    .end = 1700086400,
    .generator = "todoku test",
};

static size_t
count_of(const char *s, const char *needle)
{
	size_t n = 0;
	for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
test_grouping(void **state)
{
	struct dmarc_rep_row rows[5];
	struct buf b;

	row_init(&rows[0], "127.0.0.2", "pass");
	row_init(&rows[1], "127.0.0.3", "fail");
	row_init(&rows[2], "127.0.0.2", "pass");
	row_init(&rows[3], "127.0.0.3", "fail");
	row_init(&rows[4], "127.0.0.2", "pass");
	rows[4].time += 50; /* time alone does not split a record */
	buf_init(&b, DMARC_REP_XML_MAX);
	assert_int_equal(dmarc_rep_xml(&meta, rows, 5, &b), 0);
	assert_int_equal(count_of(b.data, "<record>"), 2);
	assert_non_null(strstr(b.data, "<source_ip>127.0.0.2</source_ip>\n"
				       "      <count>3</count>"));
	assert_non_null(strstr(b.data, "<source_ip>127.0.0.3</source_ip>\n"
				       "      <count>2</count>"));
	assert_non_null(strstr(b.data, "<begin>1700000000</begin>"));
	assert_non_null(strstr(b.data, "<end>1700086400</end>"));
	assert_non_null(strstr(b.data, "<domain>sender.test</domain>"));
	assert_non_null(strstr(b.data, "<sp>none</sp>")); /* sp defaults to p */
	assert_non_null(strstr(b.data, "<scope>mfrom</scope>"));
	buf_free(&b);
}

static void
test_dkim_splits(void **state)
{
	struct dmarc_rep_row rows[2];
	struct buf b;

	row_init(&rows[0], "127.0.0.2", "pass");
	row_init(&rows[1], "127.0.0.2", "pass");
	rows[1].ndkim = 1;
	snprintf(rows[1].dkim[0].domain, sizeof(rows[1].dkim[0].domain),
		 "sender.test");
	snprintf(rows[1].dkim[0].selector, sizeof(rows[1].dkim[0].selector),
		 "s1");
	snprintf(rows[1].dkim[0].result, sizeof(rows[1].dkim[0].result),
		 "pass");
	assert_false(dmarc_rep_same_record(&rows[0], &rows[1]));
	buf_init(&b, DMARC_REP_XML_MAX);
	assert_int_equal(dmarc_rep_xml(&meta, rows, 2, &b), 0);
	assert_int_equal(count_of(b.data, "<record>"), 2);
	assert_non_null(strstr(b.data, "<selector>s1</selector>"));
	buf_free(&b);
}

static void
test_escaping(void **state)
{
	struct dmarc_rep_row r;
	struct buf b;

	row_init(&r, "127.0.0.2", "pass");
	snprintf(r.dkim[0].domain, sizeof(r.dkim[0].domain),
		 "a<b>&'\"\x01\xff");
	snprintf(r.dkim[0].result, sizeof(r.dkim[0].result), "fail");
	r.ndkim = 1;
	buf_init(&b, DMARC_REP_XML_MAX);
	assert_int_equal(dmarc_rep_xml(&meta, &r, 1, &b), 0);
	assert_non_null(
	    strstr(b.data, "<domain>a&lt;b&gt;&amp;&apos;&quot;?\?</domain>"));
	assert_non_null(strstr(
	    b.data,
	    "<org_name>Example &lt;Org&gt; &amp; &quot;Co&quot;</org_name>"));
	assert_null(strchr(b.data, '\x01'));
	buf_free(&b);
}

static void
test_limits(void **state)
{
	struct dmarc_rep_row r;
	struct buf b;

	row_init(&r, "127.0.0.2", "pass");
	buf_init(&b, 64);
	assert_int_equal(dmarc_rep_xml(&meta, &r, 1, &b), -1);
	assert_int_equal(dmarc_rep_xml(&meta, &r, 0, &b), -1);
	buf_free(&b);
}

static void
test_gzip_round_trip(void **state)
{
	struct dmarc_rep_row r;
	struct buf x, g;
	unsigned char back[65536];
	z_stream z = {0};

	row_init(&r, "::1", "softfail");
	buf_init(&x, DMARC_REP_XML_MAX);
	buf_init(&g, DMARC_REP_XML_MAX);
	assert_int_equal(dmarc_rep_xml(&meta, &r, 1, &x), 0);
	assert_int_equal(dmarc_rep_gzip(x.data, x.len, &g), 0);
	assert_true((unsigned char)g.data[0] == 0x1f &&
		    (unsigned char)g.data[1] == 0x8b);
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)g.data;
	z.avail_in = (uInt)g.len;
	z.next_out = back;
	z.avail_out = sizeof(back);
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.total_out, x.len);
	assert_memory_equal(back, x.data, x.len);
	inflateEnd(&z);
	buf_free(&x);
	buf_free(&g);
}

static void
test_message(void **state)
{
	char fname[1024];
	struct buf m;
	const unsigned char gz[] = {0x1f, 0x8b, 0, 1, 2, 3, 4};

	assert_int_equal(dmarc_rep_filename(&meta, fname, sizeof(fname)), 0);
	assert_string_equal(
	    fname, "mx.example!sender.test!1700000000!1700086400.xml.gz");
	assert_int_equal(dmarc_rep_filename(&meta, fname, 10), -1);
	buf_init(&m, DMARC_REP_MSG_MAX);
	assert_int_equal(dmarc_rep_message(&meta, "agg@reports.test",
					   "Tue, 14 Nov 2023 22:13:20 +0000",
					   "mx.example", gz, sizeof(gz), &m),
			 0);
	assert_non_null(strstr(m.data, "\r\nSubject: Report Domain: "
				       "sender.test Submitter: mx.example "
				       "Report-ID: r1\r\n"));
	assert_non_null(strstr(m.data, "To: agg@reports.test\r\n"));
	assert_non_null(strstr(m.data, "Content-Type: multipart/mixed;"));
	assert_non_null(strstr(m.data, "Content-Type: application/gzip"));
	assert_non_null(strstr(m.data, "filename=\"mx.example!sender.test!"
				       "1700000000!1700086400.xml.gz\""));
	assert_non_null(strstr(m.data, "\r\n\r\nH4sAAQIDBA==\r\n"));
	assert_null(strstr(m.data, "\n\n")); /* CRLF only */
	buf_free(&m);
}

static void
test_storage_form(void **state)
{
	struct dmarc_rep_row a, b;
	char text[2048];

	row_init(&a, "127.0.0.2", "pass");
	a.ndkim = 2;
	snprintf(a.dkim[0].domain, sizeof(a.dkim[0].domain), "x.test");
	snprintf(a.dkim[0].selector, sizeof(a.dkim[0].selector), "s\tel");
	snprintf(a.dkim[0].result, sizeof(a.dkim[0].result), "pass");
	snprintf(a.dkim[1].domain, sizeof(a.dkim[1].domain), "y.test");
	snprintf(a.dkim[1].result, sizeof(a.dkim[1].result), "fail");
	assert_int_equal(dmarc_rep_dkim_text(&a, text, sizeof(text)), 0);
	assert_string_equal(text, "x.test\ts?el\tpass\ny.test\t\tfail\n");
	memset(&b, 0, sizeof(b));
	dmarc_rep_dkim_load(&b, text);
	assert_int_equal(b.ndkim, 2);
	assert_string_equal(b.dkim[0].selector, "s?el");
	assert_string_equal(b.dkim[1].domain, "y.test");
	assert_string_equal(b.dkim[1].selector, "");
	assert_string_equal(b.dkim[1].result, "fail");
	assert_int_equal(dmarc_rep_dkim_text(&a, text, 8), -1);
	assert_true(dmarc_rep_nfields > 10);
	assert_string_equal(dmarc_rep_fields[0].name, "policy_domain");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grouping),
	    cmocka_unit_test(test_dkim_splits),
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_gzip_round_trip),
	    cmocka_unit_test(test_message),
	    cmocka_unit_test(test_storage_form),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
