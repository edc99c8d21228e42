/*
 * test_resolve — recipient resolution and alias expansion: users,
 * case-insensitivity, path safety, postmaster and friends, catch-all,
 * aliases (bare and per domain), loops, dedupe, depth and count limits.
 * Configurations and alias files are written under a mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "mail/resolve.h"

static char tmpdir[256];
static char cwd[4096];
static struct conf *c1; /* no [server] postmaster */
static struct conf *c2; /* postmaster = abuse@a.example */

#define DOMAINS                                                                \
	"[domain \"a.example\"]\nmailboxes = /m/a\nusers = bob Carol\n"        \
	"[domain \"B.example\"]\nmailboxes = /m/b\nusers = bob\n"              \
	"catch-all = bob@b.example\n"                                          \
	"[domain \"c.example\"]\nmailboxes = /m/c\n"                           \
	"catch-all = nobody@c.example\n"                                       \
	"[listen \"smtp\"]\naddress = 127.0.0.1:25\n"

static void
write_file(const char *name, const char *text)
{
	FILE *f = fopen(name, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
write_aliases(void)
{
	FILE *f = fopen("aliases", "w");

	assert_non_null(f);
	fputs("sales@a.example: bob@a.example, CAROL@a.example, "
	      "bob@A.example, x@remote.example\n"
	      "team@a.example: sales@a.example bob@a.example "
	      "x@Remote.Example X@remote.example\n"
	      "loop1@a.example: loop2@a.example\n"
	      "loop2@a.example: loop1@a.example, bob@a.example\n"
	      "self@a.example: self@a.example\n"
	      "info: carol@a.example\n"
	      "Root@b.example: carol@a.example\n"
	      "ghost@a.example: nouser@a.example\n"
	      "diamond@a.example: d1@a.example, d2@a.example\n"
	      "d1@a.example: d3@a.example\nd2@a.example: d3@a.example\n"
	      "d3@a.example: bob@a.example\n",
	      f);
	for (int i = 0; i < 12; i++)
		fprintf(f, "deep%d@a.example: deep%d@a.example\n", i, i + 1);
	fputs("deep12@a.example: bob@a.example\n", f);
	fputs("many@a.example:", f);
	for (int i = 0; i < 1000; i++)
		fprintf(f, " r%d@remote.example", i);
	fputs("\nbig@a.example: many@a.example, extra@remote.example\n", f);
	fclose(f);
}

static int
setup(void **state)
{
	char err[CONF_ERR_MAX];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_resolve.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	write_aliases();
	write_file("1.conf", "[server]\nhostname = mx.a.example\n"
			     "aliases = aliases\n" DOMAINS);
	write_file("2.conf", "[server]\nhostname = b.example\n"
			     "aliases = aliases\n"
			     "postmaster = abuse@a.example\n" DOMAINS);
	c1 = conf_load("1.conf", err, sizeof(err));
	if (c1 == NULL)
		print_error("%s\n", err);
	c2 = conf_load("2.conf", err, sizeof(err));
	if (c2 == NULL)
		print_error("%s\n", err);
	return c1 && c2 ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[600];

	conf_free(c1);
	conf_free(c2);
	assert_int_equal(chdir(cwd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* An address as the SMTP layer would hand it over (no parsing, so odd
 * local parts can be tried too). */
static struct mailaddr
mk(const char *local, const char *domain)
{
	struct mailaddr a;

	memset(&a, 0, sizeof(a));
	snprintf(a.local, sizeof(a.local), "%s", local);
	snprintf(a.domain, sizeof(a.domain), "%s", domain);
	a.quoted = local[0] == '"';
	return a;
}

static enum resolve_kind
kind(const struct conf *c, const char *local, const char *domain,
     struct resolved *r)
{
	struct mailaddr a = mk(local, domain);

	assert_int_equal(resolve_rcpt(c, &a, r), 0);
	return r->kind;
}

static void
test_local_users(void **state)
{
	struct resolved r;

	assert_int_equal(kind(c1, "Bob", "A.EXAMPLE", &r), RESOLVE_LOCAL);
	assert_string_equal(r.mailbox, "/m/a/bob");
	assert_string_equal(r.addr.local, "bob");
	assert_string_equal(r.addr.domain, "a.example");
	assert_ptr_equal(r.domain, conf_domain_find(c1, "a.example"));
	assert_int_equal(kind(c1, "carol", "a.example", &r), RESOLVE_LOCAL);
	assert_string_equal(r.mailbox, "/m/a/carol");
	assert_int_equal(kind(c1, "\"bob\"", "a.example", &r), RESOLVE_LOCAL);
	assert_string_equal(r.mailbox, "/m/a/bob");
	assert_false(r.addr.quoted);
	assert_int_equal(kind(c1, "\"B\\ob\"", "a.example", &r), RESOLVE_LOCAL);
	assert_int_equal(kind(c1, "zed", "a.example", &r), RESOLVE_NO_USER);
	assert_ptr_equal(r.domain, conf_domain_find(c1, "a.example"));
	assert_int_equal(kind(c1, "bob+tag", "a.example", &r), RESOLVE_NO_USER);
}

static void
test_remote(void **state)
{
	struct resolved r;

	assert_int_equal(kind(c1, "Bob", "Remote.Example", &r), RESOLVE_REMOTE);
	assert_string_equal(r.addr.local, "Bob");
	assert_string_equal(r.addr.domain, "remote.example");
	assert_null(r.domain);
	/* a parent of a local domain is not local */
	assert_int_equal(kind(c1, "bob", "example", &r), RESOLVE_REMOTE);
	assert_int_equal(kind(c1, "bob", "x.a.example", &r), RESOLVE_REMOTE);
	assert_int_equal(kind(c1, "bob", "[192.0.2.1]", &r), RESOLVE_REMOTE);
}

static void
test_path_safety(void **state)
{
	static const char *const evil[] = {
	    "../x",	     "a/b",
	    "\"../../etc\"", "\"bob/../carol\"",
	    "bob%a.example", "\"bob@a.example\"",
	    "a!bob",	     "\"bob \"",
	};
	struct resolved r;

	for (size_t i = 0; i < sizeof(evil) / sizeof(*evil); i++) {
		/* b.example has a catch-all: still no match */
		assert_int_equal(kind(c1, evil[i], "localhost", &r),
				 RESOLVE_REMOTE);
		assert_int_equal(kind(c1, evil[i], "a.example", &r),
				 RESOLVE_NO_USER);
		assert_int_equal(kind(c1, evil[i], "b.example", &r),
				 RESOLVE_NO_USER);
		assert_string_equal(r.mailbox, "");
	}
	/* no separator: harmless, but no user either (catch-all takes it) */
	assert_int_equal(kind(c1, "..", "a.example", &r), RESOLVE_NO_USER);
	assert_int_equal(kind(c1, "\".\"", "a.example", &r), RESOLVE_NO_USER);
	assert_int_equal(kind(c1, "\"..\"", "b.example", &r), RESOLVE_ALIAS);
	assert_string_equal(r.addr.local, "bob");
}

static void
test_postmaster_default(void **state)
{
	static const char *const names[] = {"postmaster", "PostMaster", "abuse",
					    "ROOT", "Mailer-Daemon"};
	struct resolved r;
	struct mailaddr a;

	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		assert_int_equal(kind(c1, names[i], "a.example", &r),
				 RESOLVE_LOCAL);
		assert_string_equal(r.mailbox, "/m/a/postmaster");
		assert_string_equal(r.addr.local, "postmaster");
	}
	/* before the catch-all */
	assert_int_equal(kind(c1, "abuse", "b.example", &r), RESOLVE_LOCAL);
	assert_string_equal(r.mailbox, "/m/b/postmaster");
	/* an alias wins over the implicit postmaster */
	assert_int_equal(kind(c1, "root", "b.example", &r), RESOLVE_ALIAS);
	assert_non_null(r.alias);
	/* <postmaster> without a domain: hostname is not a domain here,
	 * so the first domain */
	assert_int_equal(kind(c1, "Postmaster", "", &r), RESOLVE_LOCAL);
	assert_string_equal(r.mailbox, "/m/a/postmaster");
	a = mk("bob", "");
	assert_int_equal(resolve_rcpt(c1, &a, &r), -1);
	assert_int_equal(r.kind, RESOLVE_NO_USER);
	a = mk("", "");
	a.is_null = true;
	assert_int_equal(resolve_rcpt(c1, &a, &r), -1);
}

static void
expand(const struct conf *c, const char *local, const char *domain,
       struct resolve_list *l)
{
	struct mailaddr a = mk(local, domain);

	assert_int_equal(resolve_expand(c, &a, l), 0);
}

static void
test_postmaster_configured(void **state)
{
	struct resolve_list l;
	struct resolved r;

	/* postmaster = abuse@a.example */
	assert_int_equal(kind(c2, "postmaster", "b.example", &r),
			 RESOLVE_ALIAS);
	assert_null(r.alias);
	assert_string_equal(r.addr.local, "abuse");
	assert_string_equal(r.addr.domain, "a.example");
	/* the configured address itself: the implicit local postmaster */
	assert_int_equal(kind(c2, "Abuse", "a.example", &r), RESOLVE_LOCAL);
	assert_string_equal(r.mailbox, "/m/a/postmaster");
	expand(c2, "mailer-daemon", "c.example", &l);
	assert_int_equal(l.n, 1);
	assert_false(l.loop);
	assert_int_equal(l.items[0].kind, RESOLVE_LOCAL);
	assert_string_equal(l.items[0].mailbox, "/m/a/postmaster");
	resolve_list_free(&l);
	/* <postmaster>: hostname b.example is a local domain */
	assert_int_equal(kind(c2, "postmaster", "", &r), RESOLVE_ALIAS);
	assert_ptr_equal(r.domain, conf_domain_find(c2, "b.example"));
}

static void
test_catch_all(void **state)
{
	struct resolve_list l;
	struct resolved r;

	assert_int_equal(kind(c1, "anything", "b.example", &r), RESOLVE_ALIAS);
	assert_null(r.alias);
	assert_string_equal(r.addr.local, "bob");
	assert_string_equal(r.addr.domain, "b.example");
	expand(c1, "anything", "B.Example", &l);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0].kind, RESOLVE_LOCAL);
	assert_string_equal(l.items[0].mailbox, "/m/b/bob");
	resolve_list_free(&l);
	/* a catch-all naming a missing user of its own domain loops */
	expand(c1, "x", "c.example", &l);
	assert_true(l.loop);
	assert_int_equal(l.n, 0);
	resolve_list_free(&l);
}

static void
test_aliases(void **state)
{
	struct resolve_list l;
	struct resolved r;

	assert_int_equal(kind(c1, "Sales", "a.example", &r), RESOLVE_ALIAS);
	assert_non_null(r.alias);
	assert_string_equal(r.alias->from, "sales@a.example");
	expand(c1, "sales", "a.example", &l);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[0].mailbox, "/m/a/bob");
	assert_string_equal(l.items[1].mailbox, "/m/a/carol");
	assert_int_equal(l.items[2].kind, RESOLVE_REMOTE);
	assert_string_equal(l.items[2].addr.local, "x");
	assert_false(l.loop || l.truncated);
	resolve_list_free(&l);
	/* remote local parts are case-sensitive: X and x both stay */
	expand(c1, "team", "a.example", &l);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.items[3].addr.local, "X");
	resolve_list_free(&l);
	/* a bare alias applies to every local domain, before users */
	expand(c1, "INFO", "b.example", &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].mailbox, "/m/a/carol");
	resolve_list_free(&l);
	/* a user that is no alias expands to itself */
	expand(c1, "bob", "a.example", &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].mailbox, "/m/a/bob");
	resolve_list_free(&l);
	/* an alias to nobody reports the missing user */
	expand(c1, "ghost", "a.example", &l);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0].kind, RESOLVE_NO_USER);
	assert_string_equal(l.items[0].addr.local, "nouser");
	resolve_list_free(&l);
	expand(c1, "diamond", "a.example", &l);
	assert_int_equal(l.n, 1);
	assert_false(l.loop);
	resolve_list_free(&l);
}

/* One rule for "forwarded" (SRS in queue, ARC sealing in smtp-in). */
static void
test_forwards(void **state)
{
	struct mailaddr a;

	(void)state;
	assert_true(resolve_forwarded("sales@a.example", "x@remote.example"));
	assert_false(resolve_forwarded("x@remote.example", "X@Remote.Example"));
	assert_false(resolve_forwarded("", "x@remote.example"));
	assert_false(resolve_forwarded(NULL, "x@remote.example"));
	/* an alias with one remote target forwards out */
	a = mk("sales", "a.example");
	assert_true(resolve_forwards_out(c1, &a, ""));
	/* only local targets, a local user, a relayed address: no */
	a = mk("info", "b.example");
	assert_false(resolve_forwards_out(c1, &a, ""));
	a = mk("bob", "a.example");
	assert_false(resolve_forwards_out(c1, &a, ""));
	a = mk("x", "remote.example");
	assert_false(resolve_forwards_out(c1, &a, ""));
	/* the sender behind one of our SRS addresses: given differs */
	assert_true(resolve_forwards_out(c1, &a,
					 "SRS0=h=tt=remote.example=x@"
					 "mx.a.example"));
}

static void
test_loops_and_limits(void **state)
{
	struct resolve_list l;
	struct mailaddr a;

	expand(c1, "loop1", "a.example", &l);
	assert_true(l.loop);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].mailbox, "/m/a/bob");
	resolve_list_free(&l);
	expand(c1, "self", "a.example", &l);
	assert_true(l.loop);
	assert_int_equal(l.n, 0);
	resolve_list_free(&l);
	/* 13 levels of aliases: cut at RESOLVE_MAX_DEPTH */
	expand(c1, "deep0", "a.example", &l);
	assert_true(l.truncated);
	assert_false(l.loop);
	assert_int_equal(l.n, 0);
	resolve_list_free(&l);
	expand(c1, "deep3", "a.example", &l);
	assert_false(l.truncated);
	assert_int_equal(l.n, 1);
	resolve_list_free(&l);
	expand(c1, "many", "a.example", &l);
	assert_false(l.truncated);
	assert_int_equal(l.n, RESOLVE_MAX_RCPTS);
	resolve_list_free(&l);
	expand(c1, "big", "a.example", &l);
	assert_true(l.truncated);
	assert_int_equal(l.n, RESOLVE_MAX_RCPTS);
	resolve_list_free(&l);
	a = mk("", "");
	a.is_null = true;
	assert_int_equal(resolve_expand(c1, &a, &l), -1);
	assert_int_equal(l.n, 0);
	resolve_list_free(&l);
}

static void
test_builtin(void **state)
{
	char err[CONF_ERR_MAX];
	struct conf *c = conf_load(NULL, err, sizeof(err));
	struct resolved r;
	char want[600];

	assert_non_null(c);
	assert_int_equal(kind(c, "SomeOne", "LocalHost", &r), RESOLVE_LOCAL);
	snprintf(want, sizeof(want), "%s/var/mail/localhost/someone", tmpdir);
	assert_string_equal(r.mailbox, want);
	assert_int_equal(kind(c, "../x", "localhost", &r), RESOLVE_NO_USER);
	assert_int_equal(kind(c, "a/b", "localhost", &r), RESOLVE_NO_USER);
	assert_int_equal(kind(c, "\"../../etc\"", "localhost", &r),
			 RESOLVE_NO_USER);
	assert_int_equal(kind(c, "other", "localhost", &r), RESOLVE_NO_USER);
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_local_users),
	    cmocka_unit_test(test_remote),
	    cmocka_unit_test(test_path_safety),
	    cmocka_unit_test(test_postmaster_default),
	    cmocka_unit_test(test_postmaster_configured),
	    cmocka_unit_test(test_catch_all),
	    cmocka_unit_test(test_aliases),
	    cmocka_unit_test(test_forwards),
	    cmocka_unit_test(test_loops_and_limits),
	    cmocka_unit_test(test_builtin),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
