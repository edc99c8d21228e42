/*
 * test_conf — configuration parser: defaults, every error class with its
 * exact FILE:LINE message, dump round-trip, relative paths, users and
 * aliases files (written under a mkdtemp directory), lookups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "mail/conf.h"

#define LISTEN "[listen \"smtp\"]\naddress = 127.0.0.1:25\n"

static char tmpdir[256];
static char cwd[4096];

static struct conf *
parse(const char *text, char *err)
{
	return conf_parse_text("todoku.conf", text, strlen(text), err,
			       CONF_ERR_MAX);
}

static void
write_file(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conf.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	return 0;
}

static int
teardown_dir(void **state)
{
	char cmd[600];

	assert_int_equal(chdir(cwd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void
test_defaults(void **state)
{
	char err[CONF_ERR_MAX], spool[600];
	struct conf *c = parse(LISTEN, err);

	assert_non_null(c);
	snprintf(spool, sizeof(spool), "%s/var/spool", tmpdir);
	assert_string_equal(c->spool, spool);
	assert_string_equal(c->user, "todoku");
	assert_non_null(c->hostname);
	assert_true(c->smtp_in_procs >= 1 && c->smtp_in_procs <= 64);
	assert_int_equal(c->log_level, LOG_LVL_INFO);
	assert_false(c->log_syslog);
	assert_null(c->aliases_file);
	assert_null(c->postmaster);
	assert_int_equal(c->ntrusted, 2);
	assert_int_equal(c->max_message_size, 25 << 20);
	assert_int_equal(c->max_recipients, 1000);
	assert_int_equal(c->max_errors, 10);
	assert_int_equal(c->timeout_command, 300);
	assert_int_equal(c->timeout_data_block, 180);
	assert_int_equal(c->timeout_data_end, 600);
	assert_int_equal(c->nretry, 5);
	assert_int_equal(c->retry[0], 300);
	assert_int_equal(c->retry[4], 3600);
	assert_int_equal(c->warn_after, 4 * 3600);
	assert_int_equal(c->give_up_after, 5 * 86400);
	assert_int_equal(c->inline_body_max, 128 * 1024);
	assert_int_equal(c->bounce_size_limit, 1 << 20);
	assert_int_equal(c->min_free, 2 * (25 << 20) + (64 << 20));
	assert_int_equal(c->dmarc_reports, 0);
	assert_int_equal(c->dmarc_report_interval, 86400);
	assert_null(c->dmarc_report_org);
	assert_non_null(strstr(conf_dmarc_report_from(c), "postmaster@"));
	assert_int_equal(c->ndns_servers, 0);
	assert_int_equal(c->dns_outgoing_range, 1024);
	assert_int_equal(c->dns_outgoing_num_tcp, 64);
	assert_int_equal(c->dns_msg_cache_size, 16 << 20);
	assert_int_equal(c->dns_rrset_cache_size, 32 << 20);
	assert_int_equal(c->dns_resolver, CONF_RESOLVER_FORWARD);
	assert_int_equal(c->dns_dnssec, CONF_DNSSEC_NO);
	assert_string_equal(c->dns_trust_anchor, "/usr/share/dns/root.key");
	assert_null(c->dns_root_hints);
	assert_int_equal(c->nlistens, 1);
	assert_int_equal(c->ndomains, 0);
	assert_string_equal(c->path, "todoku.conf");
	conf_free(c);
}

static void
test_builtin(void **state)
{
	char err[CONF_ERR_MAX], mb[600];
	struct conf *c = conf_load(NULL, err, sizeof(err));

	assert_non_null(c);
	assert_string_equal(c->path, "(built-in)");
	assert_string_equal(c->hostname, "localhost");
	assert_int_equal(c->nlistens, 1);
	assert_string_equal(c->listens[0].name, "smtp");
	assert_string_equal(c->listens[0].address, "127.0.0.1:2525");
	assert_int_equal(c->listens[0].ss.ss_family, AF_INET);
	assert_int_equal(c->ndomains, 1);
	snprintf(mb, sizeof(mb), "%s/var/mail/localhost", tmpdir);
	assert_string_equal(c->domains[0].mailboxes, mb);
	assert_int_equal(c->domains[0].nusers, 1);
	assert_string_equal(c->domains[0].users[0], "someone");
	conf_free(c);
}

struct err_case {
	const char *text;
	const char *err;
};

static const struct err_case err_cases[] = {
    {"[smtp]\nmax-sise = 1\n",
     "todoku.conf:2: unknown key \"max-sise\" in [smtp] (did you mean "
     "\"max-message-size\"?)"},
    {"[smtp]\n\nmax-message-size = 12Q\n",
     "todoku.conf:3: bad value \"12Q\" for max-message-size (expected a "
     "size like 25M, from 1K to 1024G)"},
    {"[server]\nhostnme = x\n",
     "todoku.conf:2: unknown key \"hostnme\" in [server] (did you mean "
     "\"hostname\"?)"},
    {"[server]\nfrobnicate = x\n",
     "todoku.conf:2: unknown key \"frobnicate\" in [server] (see "
     "docs/config.md)"},
    {"# c\n[srever]\n",
     "todoku.conf:2: unknown section [srever] (did you mean [server]?)"},
    {"[zzzzzzzz]\n",
     "todoku.conf:1: unknown section [zzzzzzzz] (known sections: server, "
     "smtp, queue, dns, listen, domain)"},
    {"[server]\nspool = /a\nSPOOL = /b\n",
     "todoku.conf:3: duplicate key \"spool\" in [server] (first set at "
     "line 2)"},
    {"[server]\n[smtp]\n[server]\n",
     "todoku.conf:3: duplicate section [server] (first at line 1)"},
    {"[domain \"a.example\"]\nmailboxes = /m\n[domain \"A.Example\"]\n",
     "todoku.conf:3: duplicate section [domain \"a.example\"] (first at "
     "line 1)"},
    {"[listen \"x\"]\naddress = 127.0.0.1:25\n[listen \"X\"]\n",
     "todoku.conf:3: duplicate section [listen \"x\"] (first at line 1)"},
    {"; top\nhostname = x\n",
     "todoku.conf:2: key \"hostname\" outside any section (put it under a "
     "[section] header)"},
    {"[server\n", "todoku.conf:1: unterminated section header (expected ']')"},
    {"[domain \"x\n",
     "todoku.conf:1: unterminated section name (expected a closing '\"')"},
    {"[listen \"a\"]\naddress = 127.0.0.1\n",
     "todoku.conf:2: bad listen address \"127.0.0.1\" (expected IP:PORT "
     "or [IPv6]:PORT)"},
    {"[listen \"a\"]\naddress = 1.2.3.4:99999\n",
     "todoku.conf:2: bad listen address \"1.2.3.4:99999\" (expected "
     "IP:PORT or [IPv6]:PORT)"},
    {"[listen \"a\"]\naddress = [::1]:25\n[listen \"b\"]\naddress = "
     "[::1]:25\n",
     "todoku.conf:4: address [::1]:25 is also used by [listen \"a\"] "
     "(line 1)"},
    {"[server]\nhostname = mx.example\n",
     "todoku.conf:2: no [listen] section (add one, e.g. [listen \"smtp\"] "
     "with address = 0.0.0.0:25)"},
    {"[smtp]\nmax-recipients = 50\n",
     "todoku.conf:2: max-recipients = 50 is too small (RFC 5321 section "
     "4.5.3.1.8: at least 100 recipients must be accepted)"},
    {"[smtp]\nmax-errors = 0\n",
     "todoku.conf:2: max-errors = 0 is out of range (expected a number "
     "from 1 to 1000)"},
    {"[server]\nsmtp-in-processes = 65\n",
     "todoku.conf:2: smtp-in-processes = 65 is out of range (expected a "
     "number from 1 to 64)"},
    {"[server]\nlog-level = loud\n",
     "todoku.conf:2: bad value \"loud\" for log-level (expected error, "
     "warning, info or debug)"},
    {"[server]\nlog-to = file\n",
     "todoku.conf:2: bad value \"file\" for log-to (expected stderr or "
     "syslog)"},
    {"[server]\ntrusted-networks = 10.0.0.0/8, 10.1/16\n",
     "todoku.conf:2: bad value \"10.1/16\" for trusted-networks (expected "
     "networks like 127.0.0.0/8 ::1)"},
    {"[server]\npostmaster = nobody\n",
     "todoku.conf:2: bad value \"nobody\" for postmaster: "},
    {"[queue]\nretry = 5m 1x\n",
     "todoku.conf:2: bad value \"1x\" for retry (expected durations like "
     "5m 10m 1h, each from 1s to 7d)"},
    {"[queue]\nretry = 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s "
     "1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s\n",
     "todoku.conf:2: too many intervals in retry (at most 32; the last "
     "one repeats)"},
    {"[queue]\nbounce-size-limit = 100\n",
     "todoku.conf:2: bounce-size-limit = 100 is out of range (expected a "
     "size like 1M, from 1K to 64M)"},
    {"[queue]\ndmarc-reports = yes\n",
     "todoku.conf:2: bad value \"yes\" for dmarc-reports (expected on or "
     "off)"},
    {"[queue]\ndmarc-report-interval = 0s\n",
     "todoku.conf:2: dmarc-report-interval = 0s is out of range (expected "
     "a duration like 1d, from 1s to 7d)"},
    {"[queue]\ndmarc-report-from = nobody\n",
     "todoku.conf:2: bad value \"nobody\" for dmarc-report-from: "},
    {"[queue]\ndmarc-report-org = caf\xc3\xa9\n",
     "todoku.conf:2: bad value \"caf\xc3\xa9\" for dmarc-report-org "
     "(expected printable ASCII text like Example Mail)"},
    {"[dns]\nservers = 127.0.0.53 dns.example\n",
     "todoku.conf:2: bad value \"dns.example\" for servers (expected "
     "addresses like 127.0.0.53 or [::1]:53)"},
    {"[dns]\noutgoing-range = 8\n",
     "todoku.conf:2: outgoing-range = 8 is out of range (expected a number "
     "of sockets from 16 to 65536)"},
    {"[dns]\n\noutgoing-num-tcp = many\n",
     "todoku.conf:3: bad value \"many\" for outgoing-num-tcp (expected a "
     "number of connections from 1 to 4096)"},
    {"[dns]\nmsg-cache-size = 512K\n",
     "todoku.conf:2: msg-cache-size = 512K is out of range (expected a "
     "size like 16M, from 1M to 16G)"},
    {"[dns]\nresolver = iterative\n",
     "todoku.conf:2: bad value \"iterative\" for resolver (expected "
     "forward or recursive)"},
    {"[dns]\ndnssec = yes\n",
     "todoku.conf:2: bad value \"yes\" for dnssec (expected no or "
     "validate)"},
    {"[dns]\nrrset-cache-size = 32Q\n",
     "todoku.conf:2: bad value \"32Q\" for rrset-cache-size (expected a "
     "size like 32M, from 1M to 16G)"},
    {"[domain \"a..b\"]\n",
     "todoku.conf:1: bad domain name \"a..b\" in [domain] (expected a "
     "name like example.com)"},
    {"[domain \"ok.example\"]\nusers = bob\n" LISTEN,
     "todoku.conf:1: [domain \"ok.example\"] has no mailboxes (add "
     "mailboxes = /var/mail/ok.example)"},
    {"[listen \"x\"]\n[server]\n",
     "todoku.conf:1: [listen \"x\"] has no address (add address = "
     "IP:PORT)"},
    {"[domain \"d.example\"]\nmailboxes = /m\nusers = ok, a..b\n",
     "todoku.conf:3: bad user name \"a..b\" (expected "
     "[a-z0-9][a-z0-9._+-]* or UTF-8 letters, at most 64 octets, "
     "no \"..\")"},
    {"[domain \"d.example\"]\nmailboxes = /m\nusers = .hidden\n",
     "todoku.conf:3: bad user name \".hidden\" (expected "
     "[a-z0-9][a-z0-9._+-]* or UTF-8 letters, at most 64 octets, "
     "no \"..\")"},
    {"[domain \"d.example\"]\nmailboxes = /m\nusers = a\xc2\x85"
     "b\n",
     "todoku.conf:3: bad user name \"a\xc2\x85"
     "b\" (expected "
     "[a-z0-9][a-z0-9._+-]* or UTF-8 letters, at most 64 octets, "
     "no \"..\")"},
    {"[domain \"\xcc\x81"
     "x.example\"]\n",
     "todoku.conf:1: bad internationalized domain name "
     "\"\xcc\x81"
     "x.example\""},
    {"[domain \"d.example\"]\nmailboxes = /m\nusers = a/b\n",
     "todoku.conf:3: bad user name \"a/b\" (expected "
     "[a-z0-9][a-z0-9._+-]* or UTF-8 letters, at most 64 octets, "
     "no \"..\")"},
    {"[server] # x\n",
     "todoku.conf:1: text after section header (comments go on their own "
     "line)"},
    {"[server \"x\"]\n", "todoku.conf:1: [server] takes no name (write "
			 "[server])"},
    {"[listen]\n", "todoku.conf:1: [listen] needs a name (write [listen "
		   "\"NAME\"])"},
    {"[listen \"a\\\"b\"]\n",
     "todoku.conf:1: bad listen name \"a\"b\" (use a-z, 0-9, '.', '_', "
     "'-'; at most 32 characters)"},
    {"[domain \"a\\x\"]\n",
     "todoku.conf:1: bad escape in section name (only \\\" and \\\\ "
     "are allowed)"},
    {"[server]\nhostname x\n",
     "todoku.conf:2: missing '=' after key \"hostname\""},
    {"[server]\nhost_name = x\n",
     "todoku.conf:2: expected \"key = value\" or \"[section]\" (keys use "
     "a-z, 0-9 and '-')"},
    {"[server]\nuser = \"todoku\n",
     "todoku.conf:2: unterminated quoted value (expected a closing '\"')"},
    {"[server]\nuser = \"a\\n\"\n",
     "todoku.conf:2: bad escape in quoted value (only \\\" and \\\\ are "
     "allowed)"},
    {"[server]\nuser = \"a\" b\n",
     "todoku.conf:2: text after quoted value (comments go on their own "
     "line)"},
    {"[server]\nuser = a\x01\n",
     "todoku.conf:2: NUL or control character in line"},
    {"[server]\nhostname = bad_host!\n",
     "todoku.conf:2: bad value \"bad_host!\" for hostname (expected a "
     "host name like mx.example.com)"},
    {"[server]\nspool =\n",
     "todoku.conf:2: bad value \"\" for spool (expected a directory)"},
    {"[queue]\ngive-up-after = 0\n",
     "todoku.conf:2: give-up-after = 0 is out of range (expected a "
     "duration like 5d, from 1s to 365d)"},
    {"", "todoku.conf: no [listen] section (add one, e.g. [listen "
	 "\"smtp\"] with address = 0.0.0.0:25)"},
};

static void
test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		char err[CONF_ERR_MAX];
		struct conf *c = parse(err_cases[i].text, err);
		size_t n = strlen(err_cases[i].err);

		if (c != NULL || strncmp(err, err_cases[i].err, n) != 0)
			print_error("case %zu: got \"%s\"\n", i, err);
		assert_null(c);
		assert_memory_equal(err, err_cases[i].err, n);
	}
}

static void
test_nul_byte(void **state)
{
	static const char text[] = "[server]\nuser = a\0b\n" LISTEN;
	char err[CONF_ERR_MAX];
	struct conf *c =
	    conf_parse_text("t.conf", text, sizeof(text) - 1, err, sizeof(err));

	assert_null(c);
	assert_string_equal(err, "t.conf:2: NUL or control character in line");
}

static const char full_text[] =
    "# a full configuration\n"
    "[Server]\n"
    "hostname = MX.Example.COM\n"
    "spool = /var/spool/todoku\n"
    "user = mail\n"
    "smtp-in-processes = 3\n"
    "log-level = debug\n"
    "log-to = syslog\n"
    "postmaster = Admin@Example.COM\n"
    "trusted-networks = 10.0.0.0/8, 192.168.1.0/24 2001:db8::/32 "
    "::ffff:10.0.0.0/104\n"
    "\n"
    "; smtp limits\n"
    "[smtp]\n"
    "  max-message-size   =  50M  \n"
    "max-recipients = 100\n"
    "max-errors = 3\n"
    "timeout-command = 90\n"
    "timeout-data-block = 2m\n"
    "timeout-data-end = 1h\n"
    "[queue]\n"
    "retry = 1m,2m , 1h 2h\n"
    "warn-after = 2h\n"
    "give-up-after = 1w\n"
    "inline-body-max = 0\n"
    "bounce-size-limit = 64K\n"
    "min-free = 1G\n"
    "[dns]\n"
    "servers = 127.0.0.53 [::1]:5353 10.0.0.1:53\n"
    "outgoing-range = 4096\n"
    "outgoing-num-tcp = 128\n"
    "msg-cache-size = 64M\n"
    "rrset-cache-size = 1G\n"
    "[listen \"mx\"]\n"
    "address = 0.0.0.0:25\n"
    "[ listen  \"Submission\" ]\n"
    "address = [::]:587\n"
    "[domain \"Example.COM\"]\n"
    "mailboxes = \"/var/mail/ex ample \"\n"
    "users = Zed bob alice bob\n"
    "catch-all = info@example.com\n"
    "[domain \"b.example\"]\n"
    "mailboxes = /var/mail/b\n"
    "users = \"\"\n";

static void
check_full(const struct conf *c)
{
	assert_string_equal(c->hostname, "mx.example.com");
	assert_string_equal(c->user, "mail");
	assert_int_equal(c->smtp_in_procs, 3);
	assert_int_equal(c->log_level, LOG_LVL_DEBUG);
	assert_true(c->log_syslog);
	assert_string_equal(c->postmaster, "Admin@example.com");
	assert_int_equal(c->ntrusted, 4);
	assert_int_equal(c->max_message_size, 50 << 20);
	assert_int_equal(c->max_recipients, 100);
	assert_int_equal(c->timeout_command, 90);
	assert_int_equal(c->nretry, 4);
	assert_int_equal(c->retry[3], 7200);
	assert_int_equal(c->give_up_after, 7 * 86400);
	assert_int_equal(c->inline_body_max, 0);
	assert_int_equal(c->bounce_size_limit, 64 << 10);
	assert_int_equal(c->min_free, 1 << 30);
	assert_int_equal(c->ndns_servers, 3);
	assert_string_equal(c->dns_servers[1], "[::1]:5353");
	assert_int_equal(c->dns_outgoing_range, 4096);
	assert_int_equal(c->dns_outgoing_num_tcp, 128);
	assert_int_equal(c->dns_msg_cache_size, 64 << 20);
	assert_int_equal(c->dns_rrset_cache_size, 1 << 30);
	assert_int_equal(c->nlistens, 2);
	assert_string_equal(c->listens[1].name, "submission");
	assert_int_equal(c->listens[1].ss.ss_family, AF_INET6);
	assert_int_equal(c->ndomains, 2);
	assert_string_equal(c->domains[0].name, "example.com");
	assert_string_equal(c->domains[0].mailboxes, "/var/mail/ex ample ");
	assert_int_equal(c->domains[0].nusers, 3);
	assert_string_equal(c->domains[0].users[0], "alice");
	assert_string_equal(c->domains[0].users[1], "bob");
	assert_string_equal(c->domains[0].users[2], "zed");
	assert_string_equal(c->domains[0].catch_all, "info@example.com");
	assert_int_equal(c->domains[1].nusers, 0);
}

static void
test_full_and_dump(void **state)
{
	char err[CONF_ERR_MAX];
	struct conf *c = parse(full_text, err), *c2;
	struct buf b1, b2;

	if (c == NULL)
		print_error("%s\n", err);
	assert_non_null(c);
	check_full(c);
	buf_init(&b1, 1 << 20);
	buf_init(&b2, 1 << 20);
	assert_int_equal(conf_dump(c, &b1), 0);
	c2 = conf_parse_text("dump", b1.data, b1.len, err, sizeof(err));
	if (c2 == NULL)
		print_error("%s\n%s\n", err, b1.data);
	assert_non_null(c2);
	check_full(c2);
	assert_int_equal(conf_dump(c2, &b2), 0);
	/* identical apart from the first comment line naming the source */
	assert_string_equal(strchr(b1.data, '\n'), strchr(b2.data, '\n'));
	assert_non_null(strstr(b1.data, "max-message-size = 50M\n"));
	assert_non_null(strstr(b1.data, "retry = 1m 2m 1h 2h\n"));
	assert_non_null(strstr(b1.data, "aliases = \"\"\n"));
	assert_non_null(strstr(b1.data, "rrset-cache-size = 1G\n"));
	assert_non_null(strstr(b1.data, "trusted-networks = 10.0.0.0/8 "
					"192.168.1.0/24 2001:db8::/32 "
					"::ffff:10.0.0.0/104\n"));
	buf_free(&b1);
	buf_free(&b2);
	conf_free(c);
	conf_free(c2);
}

static void
test_dump_defaults(void **state)
{
	char err[CONF_ERR_MAX];
	struct conf *c = conf_load(NULL, err, sizeof(err)), *c2;
	struct buf b;

	assert_non_null(c);
	buf_init(&b, 1 << 20);
	assert_int_equal(conf_dump(c, &b), 0);
	assert_non_null(strstr(b.data, "min-free = 114M\n"));
	assert_non_null(strstr(b.data, "warn-after = 4h\n"));
	assert_non_null(strstr(b.data, "timeout-command = 5m\n"));
	assert_non_null(strstr(b.data, "servers = \"\"\n"));
	assert_non_null(strstr(b.data, "outgoing-range = 1024\n"));
	assert_non_null(strstr(b.data, "outgoing-num-tcp = 64\n"));
	assert_non_null(strstr(b.data, "msg-cache-size = 16M\n"));
	assert_non_null(strstr(b.data, "rrset-cache-size = 32M\n"));
	assert_non_null(strstr(b.data, "resolver = forward\n"));
	assert_non_null(strstr(b.data, "dnssec = no\n"));
	c2 = conf_parse_text("dump", b.data, b.len, err, sizeof(err));
	assert_non_null(c2);
	assert_int_equal(c2->ntrusted, 2);
	assert_int_equal(c2->min_free, c->min_free);
	buf_free(&b);
	conf_free(c);
	conf_free(c2);
}

static void
test_relative_paths(void **state)
{
	char err[CONF_ERR_MAX], want[700];
	struct conf *c = parse("[server]\nspool = ./q/\naliases = al\n"
			       "[domain \"x.example\"]\nmailboxes = m/x\n"
			       "users-file = u.txt\n" LISTEN,
			       err);

	assert_non_null(c);
	snprintf(want, sizeof(want), "%s/q", tmpdir);
	assert_string_equal(c->spool, want);
	snprintf(want, sizeof(want), "%s/al", tmpdir);
	assert_string_equal(c->aliases_file, want);
	snprintf(want, sizeof(want), "%s/m/x", tmpdir);
	assert_string_equal(c->domains[0].mailboxes, want);
	snprintf(want, sizeof(want), "%s/u.txt", tmpdir);
	assert_string_equal(c->domains[0].users_file, want);
	conf_free(c);
}

static void
test_users_file(void **state)
{
	char err[CONF_ERR_MAX];
	struct conf *c;

	write_file("users.txt", "# users\nCarol\n\n  dave  \nbob\ncarol\n");
	write_file("u.conf",
		   "[domain \"x.example\"]\nmailboxes = /m\n"
		   "users = bob erin\nusers-file = users.txt\n" LISTEN);
	c = conf_load("u.conf", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->domains[0].nusers, 4);
	assert_string_equal(c->domains[0].users[0], "bob");
	assert_string_equal(c->domains[0].users[1], "carol");
	assert_string_equal(c->domains[0].users[3], "erin");
	assert_non_null(conf_user_find(&c->domains[0], "dave"));
	assert_null(conf_user_find(&c->domains[0], "Dave"));
	assert_null(conf_user_find(&c->domains[0], "zed"));
	conf_free(c);

	write_file("users.txt", "ok\n\nbad user\n");
	c = conf_load("u.conf", err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "/users.txt:3: one user name per line"));
	write_file("users.txt", "ok\n../etc\n");
	c = conf_load("u.conf", err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "/users.txt:2: bad user name \"../etc\""));
	unlink("users.txt");
	c = conf_load("u.conf", err, sizeof(err));
	assert_null(c);
	/* a missing table file is reported at the key naming it */
	assert_int_equal(
	    strncmp(err, "u.conf:4: [domain \"x.example\"] users-file /", 41),
	    0);
	assert_non_null(strstr(err, "/users.txt: cannot open: "));
}

static void
test_missing_and_large(void **state)
{
	char err[CONF_ERR_MAX];
	struct conf *c = conf_load("nonexistent.conf", err, sizeof(err));
	FILE *f;

	assert_null(c);
	assert_string_equal(err, "nonexistent.conf: cannot open: No such file "
				 "or directory");
	f = fopen("big.conf", "w");
	assert_non_null(f);
	for (int i = 0; i < CONF_FILE_MAX / 8 + 1; i++)
		fputs("#234567\n", f);
	fclose(f);
	c = conf_load("big.conf", err, sizeof(err));
	assert_null(c);
	assert_string_equal(err, "big.conf: larger than 1048576 bytes");
}

#define ALIAS_CONF                                                             \
	"[server]\naliases = aliases\n"                                        \
	"[domain \"a.example\"]\nmailboxes = /m/a\nusers = bob\n"              \
	"[domain \"b.example\"]\nmailboxes = /m/b\n" LISTEN

static const char *
alias_err(const char *aliases, char *err)
{
	struct conf *c;

	write_file("aliases", aliases);
	write_file("a.conf", ALIAS_CONF);
	c = conf_load("a.conf", err, CONF_ERR_MAX);
	assert_null(c);
	if (strstr(err, "/aliases:") == NULL)
		print_error("%s\n", err);
	assert_non_null(strstr(err, "/aliases:"));
	return err;
}

static void
test_aliases_file(void **state)
{
	char err[CONF_ERR_MAX];
	const struct conf_alias *al;
	struct conf *c;

	write_file("aliases", "# comment\nSales@A.Example: bob@a.example, "
			      "x@remote.example\n"
			      "Info: bob@a.example\n"
			      "\"Odd\"@b.example: bob@a.example\n");
	write_file("a.conf", ALIAS_CONF);
	c = conf_load("a.conf", err, sizeof(err));
	if (c == NULL)
		print_error("%s\n", err);
	assert_non_null(c);
	assert_int_equal(c->naliases, 3);
	al = conf_alias_find(c, "sales@a.example");
	assert_non_null(al);
	assert_int_equal(al->nto, 2);
	assert_string_equal(al->to[1], "x@remote.example");
	assert_non_null(conf_alias_find(c, "info"));
	assert_non_null(conf_alias_find(c, "odd@b.example"));
	assert_null(conf_alias_find(c, "Sales@a.example"));
	conf_free(c);

	assert_non_null(strstr(alias_err("x@a.example\n", err),
			       "/aliases:1: expected \"local@domain: target, "
			       "...\""));
	assert_non_null(
	    strstr(alias_err("\n\nx@c.example: bob@a.example\n", err),
		   "aliases:3: alias \"x@c.example\" is for "
		   "c.example, which is not a local domain"));
	assert_non_null(strstr(alias_err("x@a.example: bob\n", err),
			       "aliases:1: bad target \"bob\": "));
	assert_non_null(strstr(alias_err("x@a.example:\n", err),
			       "aliases:1: alias without targets"));
	assert_non_null(strstr(alias_err("x@a.example: bob@a.example\n"
					 "X@A.example: bob@b.example\n",
					 err),
			       "aliases:2: duplicate alias \"x@a.example\" "
			       "(first at line 1)"));
	assert_non_null(
	    strstr(alias_err("\"a/b\"@a.example: bob@a.example\n", err),
		   "aliases:1: alias \"\"a/b\"@a.example\" can "
		   "never match"));
}

static void
test_lookups(void **state)
{
	char err[CONF_ERR_MAX];
	struct conf *c =
	    parse("[server]\ntrusted-networks = 127.0.0.0/8 ::1 "
		  "192.0.2.0/25\n"
		  "[domain \"Mixed.Example\"]\nmailboxes = /m\n" LISTEN,
		  err);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};

	assert_non_null(c);
	assert_non_null(conf_domain_find(c, "mixed.example"));
	assert_non_null(conf_domain_find(c, "MIXED.example"));
	assert_null(conf_domain_find(c, "example"));
	inet_pton(AF_INET, "127.1.2.3", &sin.sin_addr);
	assert_true(conf_is_trusted(c, (struct sockaddr *)&sin));
	inet_pton(AF_INET, "192.0.2.200", &sin.sin_addr);
	assert_false(conf_is_trusted(c, (struct sockaddr *)&sin));
	inet_pton(AF_INET, "192.0.2.100", &sin.sin_addr);
	assert_true(conf_is_trusted(c, (struct sockaddr *)&sin));
	inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
	assert_true(conf_is_trusted(c, (struct sockaddr *)&sin6));
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
	assert_true(conf_is_trusted(c, (struct sockaddr *)&sin6));
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	assert_false(conf_is_trusted(c, (struct sockaddr *)&sin6));
	conf_free(c);

	c = parse("[server]\ntrusted-networks =\n" LISTEN, err);
	assert_non_null(c);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	assert_false(conf_is_trusted(c, (struct sockaddr *)&sin));
	conf_free(c);
}

static void
test_local_key(void **state)
{
	char k[65];

	assert_int_equal(conf_local_key("Bob", k, sizeof(k)), 0);
	assert_string_equal(k, "bob");
	assert_int_equal(conf_local_key("\"B\\ob\"", k, sizeof(k)), 0);
	assert_string_equal(k, "bob");
	assert_int_equal(conf_local_key("\"a b\"", k, sizeof(k)), -1);
	assert_int_equal(conf_local_key("a/b", k, sizeof(k)), -1);
	assert_int_equal(conf_local_key("a%b", k, sizeof(k)), -1);
	assert_int_equal(conf_local_key("a!b", k, sizeof(k)), -1);
	assert_int_equal(conf_local_key("\"a@b\"", k, sizeof(k)), -1);
	assert_int_equal(conf_local_key("\"\"", k, sizeof(k)), -1);
	assert_int_equal(conf_local_key("", k, sizeof(k)), -1);
	assert_int_equal(conf_local_key("abcdef", k, 4), -1);
	/* SMTPUTF8 local parts: ASCII lowered, UTF-8 kept; controls refused */
	assert_int_equal(conf_local_key("J\xc3\xbcRGEN", k, sizeof(k)), 0);
	assert_string_equal(k, "j\xc3\xbcrgen");
	assert_int_equal(conf_local_key("a\x7f", k, sizeof(k)), -1);
}

static void
test_idn(void **state)
{
	char err[CONF_ERR_MAX];
	struct conf *c = parse("[domain \"B\xc3\xbc"
			       "cher.example\"]\n"
			       "mailboxes = /m\nusers = j\xc3\xbcrgen, bob\n"
			       "[route \".b\xc3\xbc"
			       "cher.example\"]\n"
			       "via = smtp://relay.example:25\n" LISTEN,
			       err);

	assert_non_null(c);
	/* the section is keyed by its A-label, as smtp-in stores domains */
	assert_non_null(conf_domain_find(c, "xn--bcher-kva.example"));
	assert_non_null(conf_user_find(&c->domains[0], "j\xc3\xbcrgen"));
	assert_string_equal(c->routes[0].name, ".xn--bcher-kva.example");
	conf_free(c);
}

static void
test_misc_syntax(void **state)
{
	char err[CONF_ERR_MAX];
	struct conf *c = parse("\xef\xbb\xbf", err);

	/* a byte-order mark is not a key */
	assert_null(c);
	c = parse("\r\n  # indented comment\r\n[ server ]\r\n"
		  "LOG-LEVEL=Warning\r\n[listen \"a\"]\naddress=[::1]:25",
		  err);
	if (c == NULL)
		print_error("%s\n", err);
	assert_non_null(c);
	assert_int_equal(c->log_level, LOG_LVL_WARN);
	conf_free(c);
	/* "#" after a value is part of it (whole-line comments only) */
	c = parse("[server]\nuser = a#b\n" LISTEN, err);
	assert_null(c);
	c = parse("[smtp]\nmax-message-size = 0\n" LISTEN, err);
	assert_null(c);
	assert_string_equal(err, "todoku.conf:2: max-message-size = 0 is out "
				 "of range (expected a size like 25M, from 1K "
				 "to 1024G)");
	c = parse(
	    "[queue]\nmin-free = 0\n[smtp]\nmax-message-size = 1M\n" LISTEN,
	    err);
	assert_non_null(c);
	assert_int_equal(c->min_free, (2 << 20) + (64 << 20));
	conf_free(c);
}

static void
test_delivery_section(void **state)
{
	static const char base[] = "[listen \"smtp\"]\naddress = 127.0.0.1:25\n"
				   "[delivery]\n";
	char err[CONF_ERR_MAX], text[512];
	struct conf *c;

	c = parse(base, err);
	assert_non_null(c);
	assert_int_equal(c->delivery_tls, CONF_TLS_MAY);
	assert_int_equal(c->delivery_ip, CONF_IP_ANY);
	assert_int_equal(c->delivery_port, 25);
	assert_int_equal(c->delivery_max_addresses, 10);
	assert_int_equal(c->delivery_timeout_greeting, 300);
	assert_null(c->delivery_helo);
	conf_free(c);
	snprintf(text, sizeof(text),
		 "%shelo = Out.Example.COM\ntls = must\nip = ipv4-only\n"
		 "port = 2525\ntimeout-greeting = 2s\n",
		 base);
	c = parse(text, err);
	assert_non_null(c);
	assert_string_equal(c->delivery_helo, "out.example.com");
	assert_int_equal(c->delivery_tls, CONF_TLS_MUST);
	assert_int_equal(c->delivery_ip, CONF_IP_V4_ONLY);
	assert_int_equal(c->delivery_port, 2525);
	assert_int_equal(c->delivery_timeout_greeting, 2);
	conf_free(c);
	snprintf(text, sizeof(text), "%stls = sometimes\n", base);
	assert_null(parse(text, err));
	assert_non_null(strstr(err, "todoku.conf:4:"));
	assert_non_null(strstr(err, "none, may or must"));
	snprintf(text, sizeof(text), "%sip = ipv5\n", base);
	assert_null(parse(text, err));
	assert_non_null(strstr(err, "todoku.conf:4:"));
}

/* [delivery] destination and session limits (mail/schedule, smtp-out) */
static void
test_delivery_scheduling(void **state)
{
	static const char base[] = "[listen \"smtp\"]\naddress = 127.0.0.1:25\n"
				   "[delivery]\n";
	char err[CONF_ERR_MAX], text[640];
	struct conf *c;
	struct buf b;

	c = parse(base, err);
	assert_non_null(c);
	assert_int_equal(c->delivery_dest_conc, 5);
	assert_int_equal(c->delivery_dest_conc_max, 20);
	assert_int_equal(c->delivery_dead_after, 3);
	assert_int_equal(c->delivery_max_sessions, 32);
	assert_int_equal(c->delivery_conn_max_msgs, 20);
	assert_int_equal(c->delivery_conn_max_age, 60);
	assert_int_equal(c->delivery_conn_idle, 1);
	assert_int_equal(c->delivery_v4first_for, 86400);
	conf_free(c);
	snprintf(text, sizeof(text),
		 "%sdestination-concurrency = 2\n"
		 "destination-concurrency-max = 3\ndead-after = 7\n"
		 "max-sessions = 9\nconnection-max-messages = 4\n"
		 "connection-max-age = 2m\nipv4-first-for = 0s\n"
		 "connection-idle-time = 0s\n",
		 base);
	c = parse(text, err);
	assert_non_null(c);
	assert_int_equal(c->delivery_dest_conc, 2);
	assert_int_equal(c->delivery_dest_conc_max, 3);
	assert_int_equal(c->delivery_dead_after, 7);
	assert_int_equal(c->delivery_max_sessions, 9);
	assert_int_equal(c->delivery_conn_max_msgs, 4);
	assert_int_equal(c->delivery_conn_max_age, 120);
	assert_int_equal(c->delivery_conn_idle, 0);
	assert_int_equal(c->delivery_v4first_for, 0);
	buf_init(&b, 1 << 20);
	assert_int_equal(conf_dump(c, &b), 0);
	assert_non_null(strstr(b.data, "destination-concurrency-max = 3\n"));
	assert_non_null(strstr(b.data, "connection-max-age = 2m\n"));
	assert_non_null(strstr(b.data, "connection-idle-time = 0\n"));
	buf_free(&b);
	conf_free(c);
	snprintf(text, sizeof(text), "%sdestination-concurrency = 0\n", base);
	assert_null(parse(text, err));
	assert_non_null(strstr(err, "todoku.conf:4:"));
	assert_non_null(strstr(err, "from 1 to 1000"));
	snprintf(text, sizeof(text), "%smax-sessions = many\n", base);
	assert_null(parse(text, err));
	assert_non_null(strstr(err, "todoku.conf:4:"));
	snprintf(text, sizeof(text), "%s\nconnection-max-age = 2h\n", base);
	assert_null(parse(text, err));
	assert_non_null(strstr(err, "todoku.conf:5:"));
	snprintf(text, sizeof(text), "%sconnection-idle-time = 6m\n", base);
	assert_null(parse(text, err));
	assert_non_null(strstr(err, "todoku.conf:4:"));
	assert_non_null(strstr(err, "to 5m"));
	/* the pair is checked once the file is read, at the section */
	snprintf(text, sizeof(text),
		 "%sdestination-concurrency = 8\n"
		 "destination-concurrency-max = 6\n",
		 base);
	assert_null(parse(text, err));
	assert_non_null(strstr(err, "todoku.conf:3:"));
	assert_non_null(strstr(err, "destination-concurrency = 8 is above"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_builtin),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_nul_byte),
	    cmocka_unit_test(test_full_and_dump),
	    cmocka_unit_test(test_dump_defaults),
	    cmocka_unit_test(test_delivery_section),
	    cmocka_unit_test(test_delivery_scheduling),
	    cmocka_unit_test(test_relative_paths),
	    cmocka_unit_test(test_users_file),
	    cmocka_unit_test(test_missing_and_large),
	    cmocka_unit_test(test_aliases_file),
	    cmocka_unit_test(test_lookups),
	    cmocka_unit_test(test_local_key),
	    cmocka_unit_test(test_idn),
	    cmocka_unit_test(test_misc_syntax),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
