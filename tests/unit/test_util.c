/*
 * test_util — number parsing with units, host:port and CIDR parsing and
 * matching, JSON string escaping, mkdir_p, write_full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/util.h"

/* ---- numbers --------------------------------------------------------- */

static uint64_t
size_ok(const char *s)
{
	uint64_t v = 12345;

	if (parse_size(s, &v) != 0)
		fail_msg("parse_size(\"%s\") failed", s);
	return v;
}

static void
size_bad(const char *s)
{
	uint64_t v = 777;

	if (parse_size(s, &v) != -1)
		fail_msg("parse_size(\"%s\") accepted", s);
	assert_int_equal(v, 777); /* untouched on failure */
}

static uint64_t
dur_ok(const char *s)
{
	uint64_t v = 12345;

	if (parse_duration(s, &v) != 0)
		fail_msg("parse_duration(\"%s\") failed", s);
	return v;
}

static void
dur_bad(const char *s)
{
	uint64_t v = 777;

	if (parse_duration(s, &v) != -1)
		fail_msg("parse_duration(\"%s\") accepted", s);
	assert_int_equal(v, 777);
}

static void
test_parse_size(void **state)
{
	assert_int_equal(size_ok("0"), 0);
	assert_int_equal(size_ok("1"), 1);
	assert_int_equal(size_ok("1000"), 1000);
	assert_int_equal(size_ok("128K"), 128 * 1024);
	assert_int_equal(size_ok("128k"), 128 * 1024);
	assert_int_equal(size_ok("25M"), 25ull * 1024 * 1024);
	assert_int_equal(size_ok("25m"), 25ull * 1024 * 1024);
	assert_int_equal(size_ok("1G"), 1024ull * 1024 * 1024);
	assert_int_equal(size_ok("3g"), 3ull * 1024 * 1024 * 1024);
	assert_int_equal(size_ok("0M"), 0);
	assert_int_equal(size_ok("18446744073709551615"), UINT64_MAX);
	/* largest multiple that fits, and one past it */
	assert_int_equal(size_ok("17179869183G"), 17179869183ull << 30);
	size_bad("17179869184G");
	size_bad("18014398509481984K");
	size_bad("18446744073709551616");
	size_bad("99999999999999999999");
	/* junk */
	size_bad("");
	size_bad("K");
	size_bad("M");
	size_bad("-1");
	size_bad("+1");
	size_bad(" 1");
	size_bad("1 ");
	size_bad("1 M");
	size_bad("1.5M");
	size_bad("1T");
	size_bad("1MB");
	size_bad("1KK");
	size_bad("0x10");
	size_bad("12a3");
	size_bad("5s"); /* a duration unit is not a size unit */
	size_bad("123456789012345678901234567890123456789012");
}

static void
test_parse_duration(void **state)
{
	assert_int_equal(dur_ok("0"), 0);
	assert_int_equal(dur_ok("30"), 30);
	assert_int_equal(dur_ok("30s"), 30);
	assert_int_equal(dur_ok("5m"), 300);
	assert_int_equal(dur_ok("4h"), 4 * 3600);
	assert_int_equal(dur_ok("5d"), 5 * 86400);
	assert_int_equal(dur_ok("2w"), 2 * 604800);
	assert_int_equal(dur_ok("18446744073709551615s"), UINT64_MAX);
	dur_bad("18446744073709551615m");
	assert_int_equal(dur_ok("30500568904943w"), 30500568904943ull * 604800);
	dur_bad("30500568904944w");
	dur_bad("");
	dur_bad("s");
	dur_bad("5M"); /* unit letters are case-sensitive for durations */
	dur_bad("5K");
	dur_bad("5ms");
	dur_bad("1y");
	dur_bad("-5s");
	dur_bad("5 s");
	dur_bad("1h30m");
}

static void
test_parse_u64(void **state)
{
	uint64_t v;

	assert_int_equal(parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("007", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", &v), -1);
	assert_int_equal(parse_u64("18446744073709551620", &v), -1);
	assert_int_equal(parse_u64("", &v), -1);
	assert_int_equal(parse_u64("1x", &v), -1);
	assert_int_equal(parse_u64("-0", &v), -1);
}

/* ---- host:port -------------------------------------------------------- */

static void
test_parse_hostport_v4(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	socklen_t len = 0;
	char txt[64];

	assert_int_equal(parse_hostport("1.2.3.4:25", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(sin->sin_port), 25);
	assert_int_equal(sin->sin_addr.s_addr, htonl(0x01020304));
	sockaddr_ntop((struct sockaddr *)&ss, txt, sizeof txt);
	assert_string_equal(txt, "1.2.3.4");
	assert_int_equal(sockaddr_port((struct sockaddr *)&ss), 25);

	assert_int_equal(parse_hostport("0.0.0.0:0", &ss, &len), 0);
	assert_int_equal(ntohs(sin->sin_port), 0);
	assert_int_equal(parse_hostport("255.255.255.255:65535", &ss, &len), 0);
	assert_int_equal(ntohs(sin->sin_port), 65535);
	assert_int_equal(sin->sin_addr.s_addr, 0xffffffffu);
}

static void
test_parse_hostport_v6(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = 0;
	char txt[64];

	assert_int_equal(parse_hostport("[::1]:587", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(sin6->sin6_port), 587);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	sockaddr_ntop((struct sockaddr *)&ss, txt, sizeof txt);
	assert_string_equal(txt, "::1");

	assert_int_equal(
	    parse_hostport("[2001:db8::dead:beef]:2525", &ss, &len), 0);
	sockaddr_ntop((struct sockaddr *)&ss, txt, sizeof txt);
	assert_string_equal(txt, "2001:db8::dead:beef");
	assert_int_equal(sockaddr_port((struct sockaddr *)&ss), 2525);

	assert_int_equal(parse_hostport("[::]:25", &ss, &len), 0);
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr));

	/* the longest textual IPv6 address fits */
	assert_int_equal(
	    parse_hostport("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]"
			   ":25",
			   &ss, &len),
	    0);
	assert_int_equal(ss.ss_family, AF_INET6);

	/* an IPv4-mapped client prints as plain IPv4 */
	assert_int_equal(parse_hostport("[::ffff:10.1.2.3]:25", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	sockaddr_ntop((struct sockaddr *)&ss, txt, sizeof txt);
	assert_string_equal(txt, "10.1.2.3");
}

static void
test_parse_hostport_bad(void **state)
{
	static const char *const bad[] = {
	    "",
	    ":25",
	    "1.2.3.4",
	    "1.2.3.4:",
	    "1.2.3.4:65536",
	    "1.2.3.4:99999999999999999999",
	    "1.2.3.4:-1",
	    "1.2.3.4:+25",
	    "1.2.3.4:25 ",
	    "1.2.3.4: 25",
	    "1.2.3.4:0x19",
	    "1.2.3:25",
	    "1.2.3.256:25",
	    "localhost:25",
	    "[::1]",
	    "[::1]:",
	    "[::1]25",
	    "[::1]:65536",
	    "[::1:25",
	    "[]:25",
	    "[:::1]:25",
	    "[1.2.3.4.5]:25",
	    "[::1]:2x5",
	    "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255:1]:25",
	};
	struct sockaddr_storage ss;
	socklen_t len = 0;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (parse_hostport(bad[i], &ss, &len) != -1)
			fail_msg("parse_hostport(\"%s\") accepted", bad[i]);
}

/* ---- CIDR -------------------------------------------------------------- */

static struct sockaddr_storage
addr(const char *s)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, s, &((struct sockaddr_in *)&ss)->sin_addr) ==
	    1) {
		ss.ss_family = AF_INET;
	} else {
		assert_int_equal(
		    inet_pton(AF_INET6, s,
			      &((struct sockaddr_in6 *)&ss)->sin6_addr),
		    1);
		ss.ss_family = AF_INET6;
	}
	return ss;
}

static bool
match(const char *cidr, const char *client)
{
	struct sockaddr_storage net, a = addr(client);
	int prefix = -1;

	if (parse_cidr(cidr, &net, &prefix) != 0)
		fail_msg("parse_cidr(\"%s\") failed", cidr);
	return cidr_match(&net, prefix, (struct sockaddr *)&a);
}

static void
test_parse_cidr(void **state)
{
	struct sockaddr_storage net;
	int prefix = -1;

	assert_int_equal(parse_cidr("127.0.0.0/8", &net, &prefix), 0);
	assert_int_equal(net.ss_family, AF_INET);
	assert_int_equal(prefix, 8);
	assert_int_equal(parse_cidr("10.1.2.3", &net, &prefix), 0);
	assert_int_equal(prefix, 32);
	assert_int_equal(parse_cidr("0.0.0.0/0", &net, &prefix), 0);
	assert_int_equal(prefix, 0);
	assert_int_equal(parse_cidr("::1", &net, &prefix), 0);
	assert_int_equal(net.ss_family, AF_INET6);
	assert_int_equal(prefix, 128);
	assert_int_equal(parse_cidr("::1/128", &net, &prefix), 0);
	assert_int_equal(prefix, 128);
	assert_int_equal(parse_cidr("2001:db8::/32", &net, &prefix), 0);
	assert_int_equal(prefix, 32);
	assert_int_equal(parse_cidr("::/0", &net, &prefix), 0);
	assert_int_equal(prefix, 0);

	static const char *const bad[] = {
	    "",
	    "/8",
	    "10.0.0.0/",
	    "10.0.0.0/33",
	    "10.0.0.0/-1",
	    "10.0.0.0/8/8",
	    "10.0.0.0/x",
	    "10.0.0/8",
	    "::1/129",
	    "::1/",
	    "host/8",
	    "10.0.0.0 /8",
	    "10.0.0.0/ 8",
	    "10.0.0.0/99999999999999999999",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (parse_cidr(bad[i], &net, &prefix) != -1)
			fail_msg("parse_cidr(\"%s\") accepted", bad[i]);
}

static void
test_cidr_match_v4(void **state)
{
	assert_true(match("127.0.0.0/8", "127.0.0.1"));
	assert_true(match("127.0.0.0/8", "127.255.255.255"));
	assert_false(match("127.0.0.0/8", "128.0.0.1"));
	assert_false(match("127.0.0.0/8", "126.255.255.255"));
	/* host bits set in the network are ignored */
	assert_true(match("10.9.8.7/8", "10.1.1.1"));
	/* /32: that address only */
	assert_true(match("192.0.2.1/32", "192.0.2.1"));
	assert_false(match("192.0.2.1/32", "192.0.2.0"));
	assert_false(match("192.0.2.1/32", "192.0.2.3"));
	assert_true(match("192.0.2.1", "192.0.2.1"));
	assert_false(match("192.0.2.1", "192.0.2.129"));
	/* /0 matches every IPv4 client but no IPv6 one */
	assert_true(match("0.0.0.0/0", "1.2.3.4"));
	assert_true(match("0.0.0.0/0", "255.255.255.255"));
	assert_true(match("1.2.3.4/0", "9.9.9.9"));
	assert_false(match("0.0.0.0/0", "2001:db8::1"));
	/* prefixes not on a byte boundary */
	assert_true(match("172.16.0.0/12", "172.16.0.1"));
	assert_true(match("172.16.0.0/12", "172.31.255.255"));
	assert_false(match("172.16.0.0/12", "172.32.0.0"));
	assert_false(match("172.16.0.0/12", "172.15.255.255"));
	assert_true(match("192.168.1.64/26", "192.168.1.127"));
	assert_false(match("192.168.1.64/26", "192.168.1.128"));
	assert_false(match("192.168.1.64/26", "192.168.1.63"));
	assert_true(match("10.0.0.0/1", "127.255.255.255"));
	assert_false(match("10.0.0.0/1", "128.0.0.0"));
	assert_true(match("192.0.2.0/31", "192.0.2.1"));
	assert_false(match("192.0.2.0/31", "192.0.2.2"));
	assert_true(match("10.0.0.0/7", "11.255.255.255"));
	assert_false(match("10.0.0.0/7", "12.0.0.0"));
	assert_false(match("10.0.0.0/7", "9.255.255.255"));
}

static void
test_cidr_match_v6(void **state)
{
	assert_true(match("::1", "::1"));
	assert_true(match("::1/128", "::1"));
	assert_false(match("::1/128", "::2"));
	assert_false(match("::1/128", "::"));
	assert_false(match("::1/128", "127.0.0.1"));
	assert_true(match("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(match("2001:db8::/32", "2001:db9::1"));
	assert_true(match("::/0", "2001:db8::1"));
	assert_true(match("::/0", "::"));
	assert_false(match("::/0", "10.0.0.1")); /* family differs */
	/* not on a byte boundary */
	assert_true(match("fe80::/10", "febf:ffff::1"));
	assert_false(match("fe80::/10", "fec0::1"));
	assert_false(match("fe80::/10", "fe7f::1"));
	assert_true(match("2001:db8::/33", "2001:db8:7fff::1"));
	assert_false(match("2001:db8::/33", "2001:db8:8000::1"));
	assert_true(match("2001:db8::1/127", "2001:db8::0"));
	assert_false(match("2001:db8::1/127", "2001:db8::2"));
	assert_true(match("2001:db8:0:0:8000::/65", "2001:db8::ffff:0:0:1"));
	assert_false(match("2001:db8:0:0:8000::/65", "2001:db8::7fff:0:0:1"));
}

static void
test_cidr_match_mapped(void **state)
{
	/* an IPv4 client arriving on an IPv6 socket as ::ffff:a.b.c.d */
	assert_true(match("127.0.0.0/8", "::ffff:127.0.0.1"));
	assert_true(match("10.0.0.0/8", "::ffff:10.200.0.1"));
	assert_false(match("10.0.0.0/8", "::ffff:11.0.0.1"));
	assert_true(match("192.0.2.7/32", "::ffff:192.0.2.7"));
	assert_false(match("192.0.2.7/32", "::ffff:192.0.2.6"));
	assert_true(match("172.16.0.0/12", "::ffff:172.20.1.1"));
	assert_false(match("172.16.0.0/12", "::ffff:172.32.1.1"));
	assert_true(match("0.0.0.0/0", "::ffff:8.8.8.8"));
	/* a mapped address is not an IPv6 address for v6 nets */
	assert_false(match("2001:db8::/32", "::ffff:10.0.0.1"));
	/* compatible (not mapped) addresses are not unmapped */
	assert_false(match("10.0.0.0/8", "::10.0.0.1"));
}

/* ---- JSON ------------------------------------------------------------- */

static void
json_is(const char *in, const char *want)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(json_str(&b, in), 0);
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void
test_json_str(void **state)
{
	struct buf b;

	json_is("", "\"\"");
	json_is("plain text", "\"plain text\"");
	json_is("say \"hi\"", "\"say \\\"hi\\\"\"");
	json_is("a\\b", "\"a\\\\b\"");
	json_is("\\\"", "\"\\\\\\\"\"");
	json_is("line\r\nnext", "\"line\\u000d\\u000anext\"");
	json_is("\t\x01\x1f", "\"\\u0009\\u0001\\u001f\"");
	json_is("del\x7f", "\"del\\u007f\"");
	json_is(" ~", "\" ~\"");
	/* UTF-8 passes through untouched */
	json_is("caf\xc3\xa9", "\"caf\xc3\xa9\"");
	json_is("<a@example.org>", "\"<a@example.org>\"");

	/* appends after what is there */
	buf_init(&b, 64);
	assert_int_equal(buf_adds(&b, "{\"k\": "), 0);
	assert_int_equal(json_str(&b, "v"), 0);
	assert_string_equal(b.data, "{\"k\": \"v\"");
	buf_free(&b);

	/* a full buffer makes it fail, not truncate silently */
	buf_init(&b, 8);
	assert_int_equal(json_str(&b, "0123456789"), -1);
	buf_free(&b);
	buf_init(&b, 12);
	assert_int_equal(json_str(&b, "0123456789"), 0);
	assert_string_equal(b.data, "\"0123456789\"");
	buf_free(&b);
}

/* ---- files ------------------------------------------------------------- */

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void
test_mkdir_p(void **state)
{
	char root[] = "/tmp/test_util.XXXXXX";
	char p[256];
	struct stat st;

	assert_non_null(mkdtemp(root));
	snprintf(p, sizeof p, "%s/a/b/c", root);
	assert_int_equal(mkdir_p(p, 0700), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* again: existing directories are fine */
	assert_int_equal(mkdir_p(p, 0700), 0);
	/* a trailing slash and repeated slashes */
	snprintf(p, sizeof p, "%s/d//e/", root);
	assert_int_equal(mkdir_p(p, 0755), 0);
	snprintf(p, sizeof p, "%s/d/e", root);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* a regular file in the way is an error, not success */
	snprintf(p, sizeof p, "%s/file", root);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	errno = 0;
	assert_int_equal(mkdir_p(p, 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	snprintf(p, sizeof p, "%s/file/sub", root);
	assert_int_equal(mkdir_p(p, 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	/* empty and overlong paths */
	assert_int_equal(mkdir_p("", 0700), -1);
	char *longp = xmalloc(8192);
	memset(longp, 'a', 8191);
	longp[8191] = '\0';
	assert_int_equal(mkdir_p(longp, 0700), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	xfree(longp);

	assert_int_equal(nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void
test_write_full(void **state)
{
	int sv[2];
	size_t n = 1 << 20, got = 0;
	unsigned char *out = xmalloc(n), *in = xmalloc(n);
	pid_t pid;

	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)(i * 7 + (i >> 8));
	/* far more than a socket buffer: write_full must loop over short
	 * writes while a child drains the other end */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(write_full(sv[1], out, n) == 0 ? 0 : 1);
	}
	close(sv[1]);
	while (got < n) {
		ssize_t r = read(sv[0], in + got, n - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_memory_equal(in, out, n);
	close(sv[0]);

	/* zero bytes is a no-op success */
	assert_int_equal(write_full(-1, "", 0), 0);
	/* errors are reported */
	assert_int_equal(write_full(-1, "x", 1), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(pipe(sv), 0);
	close(sv[0]);
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(write_full(sv[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	signal(SIGPIPE, SIG_DFL);
	close(sv[1]);
	xfree(out);
	xfree(in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_u64),
	    cmocka_unit_test(test_parse_size),
	    cmocka_unit_test(test_parse_duration),
	    cmocka_unit_test(test_parse_hostport_v4),
	    cmocka_unit_test(test_parse_hostport_v6),
	    cmocka_unit_test(test_parse_hostport_bad),
	    cmocka_unit_test(test_parse_cidr),
	    cmocka_unit_test(test_cidr_match_v4),
	    cmocka_unit_test(test_cidr_match_v6),
	    cmocka_unit_test(test_cidr_match_mapped),
	    cmocka_unit_test(test_json_str),
	    cmocka_unit_test(test_mkdir_p),
	    cmocka_unit_test(test_write_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
