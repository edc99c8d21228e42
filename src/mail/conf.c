/*
 * conf — parse todoku's configuration file and its table files.
 *
 * Contract: see conf.h. In short: text in, a complete struct conf out or
 * NULL with one "FILE:LINE: message (hint)" in err; never a partial
 * configuration. Every default is set by conf_new() before parsing, so a
 * key only ever replaces a default (duplicate keys are errors). Sections
 * are checked for their required keys when they end; the whole file is
 * checked at the end (at least one [listen], derived min-free).
 *
 * Layout of this file: error reporting and suggestions; lines and
 * tokens; value setters and the key tables; sections; the table files;
 * dump; lookups.
 *
 * Trust: the file is written by the operator but still parsed as
 * untrusted bytes (it is fuzzed): NUL and control octets are refused,
 * every list has a maximum and every file a size bound.
 */
#include "mail/conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/util.h"

#include "mail/addr.h"
#include "mail/srs.h"
#include "mail/v6health.h"

#define DEF_SPOOL "var/spool"
#define DEF_USER "todoku"
#define DEF_TRUSTED "127.0.0.0/8 ::1"
#define DEF_RETRY "5m 10m 20m 40m 1h"
#define MIN_FREE_RESERVE (64ull << 20)
#define KEY_MAX 64 /* longest key or section name we look at */
#define WORDS_MAX 8
#define NAME_MAX_LEN 255 /* subsection names */

const char conf_default_text[] = "[server]\n"
				 "hostname = localhost\n"
				 "spool = var/spool\n"
				 "[listen \"smtp\"]\n"
				 "address = 127.0.0.1:2525\n"
				 "[domain \"localhost\"]\n"
				 "mailboxes = var/mail/localhost\n"
				 "users = someone\n";

enum sect {
	S_NONE,
	S_SERVER,
	S_SMTP,
	S_QUEUE,
	S_DNS,
	S_LISTEN,
	S_DOMAIN,
	S_DELIVERY,
	S_ROUTE,
	S_DKIM,
	S_COUNT
};

static const char *const sect_names[S_COUNT] = {
    "",	      "server", "smtp",	    "queue", "dns",
    "listen", "domain", "delivery", "route", "dkim",
};

struct key;

struct parser {
	const char *name; /* file name for messages */
	int line;
	char *err;
	size_t errlen;
	struct conf *c;
	enum sect sect;
	int sect_line;		 /* line of the current section header */
	int seen_line[32];	 /* per key of the section: line set, or 0 */
	int plain_line[S_COUNT]; /* line of [server] etc., or 0 */
};

typedef int (*key_set_fn)(struct parser *p, const struct key *k, void *dst,
			  char *val);

struct key {
	const char *name;
	key_set_fn set;
	size_t off; /* into struct conf, conf_listen or conf_domain */
	uint64_t min, max;
	const char *expect; /* "a size like 25M" */
};

/* ---- errors and suggestions ------------------------------------------ */

static void perr(struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
perr(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->errlen == 0)
		return;
	if (p->line > 0)
		n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, p->line);
	else
		n = snprintf(p->err, p->errlen, "%s: ", p->name);
	if (n < 0 || (size_t)n >= p->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static int
bad_value(struct parser *p, const struct key *k, const char *val)
{
	perr(p, "bad value \"%s\" for %s (expected %s)", val, k->name,
	     k->expect);
	return -1;
}

static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[KEY_MAX + 1];

	if (la > KEY_MAX || lb > KEY_MAX)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* Split s (at most KEY_MAX) at '-' into words stored in buf. */
static size_t
split_words(const char *s, char *buf, char **words)
{
	size_t n = 0, len = strlen(s);

	if (len > KEY_MAX)
		return 0;
	memcpy(buf, s, len + 1);
	for (char *w = buf; n < WORDS_MAX;) {
		char *dash = strchr(w, '-');

		words[n++] = w;
		if (dash == NULL)
			break;
		*dash = '\0';
		w = dash + 1;
	}
	return n;
}

/* Every word of typo is near a word of cand, in order: "max-sise" fits
 * "max-message-size". */
static bool
words_match(const char *typo, const char *cand)
{
	char ba[KEY_MAX + 1], bb[KEY_MAX + 1], *wa[WORDS_MAX], *wb[WORDS_MAX];
	size_t na = split_words(typo, ba, wa), nb = split_words(cand, bb, wb);
	size_t j = 0;

	if (na == 0 || nb == 0)
		return false;
	for (size_t i = 0; i < na; i++) {
		size_t tol = strlen(wa[i]) > 3 ? 1 : 0;

		while (j < nb && edit_distance(wa[i], wb[j]) > tol)
			j++;
		if (j == nb)
			return false;
		j++;
	}
	return true;
}

/* The candidate the operator most likely meant, or NULL. */
static const char *
suggest(const char *typo, const char *const *cands, size_t n)
{
	const char *best = NULL, *word = NULL;
	size_t best_d = 3, nword = 0;

	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(typo, cands[i]);

		if (d < best_d && d < strlen(typo)) {
			best_d = d;
			best = cands[i];
		}
		if (words_match(typo, cands[i])) {
			word = cands[i];
			nword++;
		}
	}
	if (best == NULL && nword == 1)
		best = word;
	return best;
}

/* ---- characters, lines, tokens --------------------------------------- */

static bool
is_ws(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool
is_key_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-';
}

static void
lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static char *
trim(char *s)
{
	size_t n;

	while (is_ws(*s))
		s++;
	n = strlen(s);
	while (n > 0 && (is_ws(s[n - 1]) || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

struct lines {
	const char *p, *end;
};

/* Next line (without its '\n') as a heap copy, or NULL at the end.
 * -1 in *bad if the line holds a NUL or a control octet. */
static char *
lines_next(struct lines *l, int *bad)
{
	const char *s = l->p, *nl;
	size_t n;

	*bad = 0;
	if (l->p >= l->end)
		return NULL;
	nl = memchr(s, '\n', (size_t)(l->end - s));
	n = nl ? (size_t)(nl - s) : (size_t)(l->end - s);
	l->p = s + n + 1;
	if (n > 0 && s[n - 1] == '\r')
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			*bad = -1;
	}
	return xstrndup(s, n);
}

/*
 * Unquote the string that starts with '"' at s, in place: the content
 * ends up at s, NUL-terminated; \" and \\ are the only escapes. *end is
 * set just past the closing quote. -1: unterminated, -2: bad escape.
 */
static int
unquote(char *s, char **end)
{
	char *r = s + 1, *w = s;

	for (;; r++) {
		if (*r == '\0')
			return -1;
		if (*r == '"')
			break;
		if (*r == '\\') {
			r++;
			if (*r != '"' && *r != '\\')
				return *r == '\0' ? -1 : -2;
		}
		*w++ = *r;
	}
	*w = '\0';
	*end = r + 1;
	return 0;
}

/*
 * Next token of a list: separated by spaces, tabs and commas; double
 * quotes protect separators (quotes are kept, for addresses). NULL at
 * the end. Modifies the string.
 */
static char *
next_token(char **sp)
{
	char *s = *sp, *tok;
	bool q = false;

	while (is_ws(*s) || *s == ',')
		s++;
	if (*s == '\0')
		return NULL;
	tok = s;
	for (; *s; s++) {
		if (*s == '"')
			q = !q;
		else if (*s == '\\' && q && s[1] != '\0')
			s++;
		else if (!q && (is_ws(*s) || *s == ','))
			break;
	}
	if (*s)
		*s++ = '\0';
	*sp = s;
	return tok;
}

static void *
vec_grow(void *v, size_t n, size_t size)
{
	if (n == 0)
		return xrealloc(v, 4 * size);
	if (n >= 4 && (n & (n - 1)) == 0)
		return xrealloc(v, 2 * n * size);
	return v;
}

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		xfree(v[i]);
	xfree(v);
}

static void
strv_push(char ***v, size_t *n, const char *s)
{
	*v = vec_grow(*v, *n, sizeof(**v));
	(*v)[(*n)++] = xstrdup(s);
}

/* ---- value checks ---------------------------------------------------- */

/* Make path absolute against the current directory; NULL on error. */
static char *
abs_path(struct parser *p, const char *key, const char *val, size_t room)
{
	char cwd[PATH_MAX], out[PATH_MAX];
	size_t n;
	int r;

	while (val[0] == '.' && val[1] == '/')
		val += 2;
	if (val[0] == '/') {
		r = snprintf(out, sizeof(out), "%s", val);
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			perr(p, "cannot make %s absolute: getcwd: %s", key,
			     strerror(errno));
			return NULL;
		}
		r = snprintf(out, sizeof(out), "%s%s%s", cwd,
			     strcmp(cwd, "/") ? "/" : "", val);
	}
	n = (size_t)r;
	if (r < 0 || n >= sizeof(out) - room) {
		perr(p, "path for %s is too long (at most %zu bytes)", key,
		     sizeof(out) - room - 1);
		return NULL;
	}
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	return xstrdup(out);
}

/* Well-formed UTF-8 without controls (SMTPUTF8 users), by the parser. */
static bool
user_utf8_ok(const char *s, size_t n)
{
	char tmp[CONF_USER_MAX + 16];
	struct mailaddr a;

	memcpy(tmp, s, n);
	memcpy(tmp + n, "@x.invalid", 11);
	return addr_parse_mailbox(tmp, n + 10, ADDR_F_UTF8, &a) == ADDR_OK;
}

/*
 * [a-z0-9][a-z0-9._+-]*, at most CONF_USER_MAX octets, no "..",
 * lowercased (ASCII letters); UTF-8 letters (octets >= 0x80) are allowed
 * anywhere for SMTPUTF8 local parts and compared exactly.
 */
static bool
user_name_ok(char *s)
{
	size_t n = strlen(s);
	bool utf8 = false;

	lower(s);
	if (n == 0 || n > CONF_USER_MAX || strstr(s, "..") != NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') ||
			     (ch >= '0' && ch <= '9') || ch >= 0x80;

		utf8 |= ch >= 0x80;
		if (!alnum && (i == 0 || strchr("._+-", ch) == NULL))
			return false;
	}
	return !utf8 || user_utf8_ok(s, n);
}

/* A Unix login name for the run-as user. */
static bool
login_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32 || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!is_key_char(ch) && ch != '_' && ch != '.')
			return false;
	}
	return true;
}

/* A bare IP, or IP:PORT / [IPv6]:PORT. */
static bool
dns_server_ok(const char *s)
{
	unsigned char tmp[sizeof(struct in6_addr)];
	struct sockaddr_storage ss;
	socklen_t len;

	return inet_pton(AF_INET, s, tmp) == 1 ||
	       inet_pton(AF_INET6, s, tmp) == 1 ||
	       parse_hostport(s, &ss, &len) == 0;
}

/* ---- setters --------------------------------------------------------- */

static int
set_string(struct parser *p, const struct key *k, void *dst, char *val)
{
	char **sp = dst;

	if (val[0] == '\0')
		return bad_value(p, k, val);
	xfree(*sp);
	*sp = xstrdup(val);
	return 0;
}

static int
set_hostname(struct parser *p, const struct key *k, void *dst, char *val)
{
	lower(val);
	if (!addr_domain_valid(val, strlen(val)))
		return bad_value(p, k, val);
	return set_string(p, k, dst, val);
}

static int
set_login(struct parser *p, const struct key *k, void *dst, char *val)
{
	if (!login_name_ok(val))
		return bad_value(p, k, val);
	return set_string(p, k, dst, val);
}

/* A path; empty means "none" for optional paths (min == 0). */
static int
set_path(struct parser *p, const struct key *k, void *dst, char *val)
{
	char **sp = dst, *abs;

	if (val[0] == '\0') {
		if (k->min)
			return bad_value(p, k, val);
		xfree(*sp);
		*sp = NULL;
		return 0;
	}
	/* k->max: room to keep after the path ("/user" for mailboxes) */
	abs = abs_path(p, k->name, val, (size_t)k->max);
	if (abs == NULL)
		return -1;
	xfree(*sp);
	*sp = abs;
	return 0;
}

/* An address ("user@example.com") stored as formatted; empty = none. */
static int
set_mailaddr(struct parser *p, const struct key *k, void *dst, char *val)
{
	char **sp = dst, buf[ADDR_PATH_MAX + 2];
	struct mailaddr a;
	enum addr_err e;

	xfree(*sp);
	*sp = NULL;
	if (val[0] == '\0')
		return 0;
	e = addr_parse_mailbox(val, strlen(val), 0, &a);
	if (e != ADDR_OK) {
		perr(p, "bad value \"%s\" for %s: %s (expected %s)", val,
		     k->name, addr_strerror(e), k->expect);
		return -1;
	}
	addr_format(&a, buf, sizeof(buf));
	*sp = xstrdup(buf);
	return 0;
}

static int
check_range(struct parser *p, const struct key *k, const char *val, uint64_t v)
{
	if (v >= k->min && v <= k->max)
		return 0;
	perr(p, "%s = %s is out of range (expected %s)", k->name, val,
	     k->expect);
	return -1;
}

static int
set_uint(struct parser *p, const struct key *k, void *dst, char *val)
{
	uint64_t v;

	if (parse_u64(val, &v) < 0)
		return bad_value(p, k, val);
	if (check_range(p, k, val, v) < 0)
		return -1;
	*(unsigned *)dst = (unsigned)v;
	return 0;
}

static int
set_max_rcpts(struct parser *p, const struct key *k, void *dst, char *val)
{
	uint64_t v;

	if (parse_u64(val, &v) < 0)
		return bad_value(p, k, val);
	if (v < k->min) {
		perr(p,
		     "%s = %s is too small (RFC 5321 section 4.5.3.1.8: at "
		     "least 100 recipients must be accepted)",
		     k->name, val);
		return -1;
	}
	return set_uint(p, k, dst, val);
}

static int
set_size(struct parser *p, const struct key *k, void *dst, char *val)
{
	uint64_t v;

	if (parse_size(val, &v) < 0)
		return bad_value(p, k, val);
	if (check_range(p, k, val, v) < 0)
		return -1;
	*(uint64_t *)dst = v;
	return 0;
}

static int
set_duration(struct parser *p, const struct key *k, void *dst, char *val)
{
	uint64_t v;

	if (parse_duration(val, &v) < 0)
		return bad_value(p, k, val);
	if (check_range(p, k, val, v) < 0)
		return -1;
	*(uint64_t *)dst = v;
	return 0;
}

/* A number of days: "21d", "3w", or a plain "21" (days, not seconds). */
static int
set_days(struct parser *p, const struct key *k, void *dst, char *val)
{
	uint64_t v;

	if (parse_u64(val, &v) < 0) {
		if (parse_duration(val, &v) < 0 || v % 86400 != 0)
			return bad_value(p, k, val);
		v /= 86400;
	}
	if (check_range(p, k, val, v) < 0)
		return -1;
	*(unsigned *)dst = (unsigned)v;
	return 0;
}

static int
set_log_level(struct parser *p, const struct key *k, void *dst, char *val)
{
	if (log_level_parse(val, dst) < 0)
		return bad_value(p, k, val);
	return 0;
}

static int
set_log_to(struct parser *p, const struct key *k, void *dst, char *val)
{
	if (strcasecmp(val, "stderr") == 0)
		*(bool *)dst = false;
	else if (strcasecmp(val, "syslog") == 0)
		*(bool *)dst = true;
	else
		return bad_value(p, k, val);
	return 0;
}

/* A host name, or "" for "not set" (what conf_dump writes for it). */
static int
set_opt_hostname(struct parser *p, const struct key *k, void *dst, char *val)
{
	char **sp = dst;

	if (*val == '\0') {
		xfree(*sp);
		*sp = NULL;
		return 0;
	}
	return set_hostname(p, k, dst, val);
}

/* An IPv4 (want 4) or IPv6 (want 6) address, or "" for unset. */
static int
set_ip_addr(struct parser *p, const struct key *k, void *dst, char *val,
	    int want)
{
	struct sockaddr_storage ss;
	char **sp = dst;
	int pfx;

	if (*val == '\0') {
		xfree(*sp);
		*sp = NULL;
		return 0;
	}
	if (parse_cidr(val, &ss, &pfx) < 0 ||
	    ss.ss_family != (want == 4 ? AF_INET : AF_INET6) ||
	    strchr(val, '/') != NULL)
		return bad_value(p, k, val);
	xfree(*sp);
	*sp = xstrdup(val);
	return 0;
}

static int
set_source4(struct parser *p, const struct key *k, void *dst, char *val)
{
	return set_ip_addr(p, k, dst, val, 4);
}

static int
set_source6(struct parser *p, const struct key *k, void *dst, char *val)
{
	return set_ip_addr(p, k, dst, val, 6);
}

static int
set_choice(struct parser *p, const struct key *k, void *dst, char *val,
	   const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(val, names[i]) == 0) {
			*(int *)dst = (int)i;
			return 0;
		}
	}
	return bad_value(p, k, val);
}

static int
set_spf_policy(struct parser *p, const struct key *k, void *dst, char *val)
{
	static const char *const names[] = {"record", "reject"};
	return set_choice(p, k, dst, val, names, 2);
}

static int
set_dmarc_policy(struct parser *p, const struct key *k, void *dst, char *val)
{
	static const char *const names[] = {"record", "enforce"};
	return set_choice(p, k, dst, val, names, 2);
}

static int
set_onoff(struct parser *p, const struct key *k, void *dst, char *val)
{
	static const char *const names[] = {"off", "on"};
	return set_choice(p, k, dst, val, names, 2);
}

/* Free text that goes into XML and a header: printable ASCII only. */
static int
set_report_org(struct parser *p, const struct key *k, void *dst, char *val)
{
	if (val[0] == '\0') {
		xfree(*(char **)dst);
		*(char **)dst = NULL;
		return 0;
	}
	for (const char *c = val; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
			return bad_value(p, k, val);
	if (strlen(val) > 200)
		return bad_value(p, k, val);
	return set_string(p, k, dst, val);
}

static int
set_resolver(struct parser *p, const struct key *k, void *dst, char *val)
{
	static const char *const names[] = {"forward", "recursive"};
	p->c->dns_resolver_line = p->line;
	return set_choice(p, k, dst, val, names, 2);
}

static int
set_dnssec(struct parser *p, const struct key *k, void *dst, char *val)
{
	static const char *const names[] = {"no", "validate"};
	p->c->dns_dnssec_line = p->line;
	return set_choice(p, k, dst, val, names, 2);
}

static int
set_tls(struct parser *p, const struct key *k, void *dst, char *val)
{
	return set_choice(p, k, dst, val, conf_tls_names, 3);
}

static int
set_verify(struct parser *p, const struct key *k, void *dst, char *val)
{
	return set_choice(p, k, dst, val, conf_verify_names, 2);
}

static int
set_ip(struct parser *p, const struct key *k, void *dst, char *val)
{
	return set_choice(p, k, dst, val, conf_ip_names, 5);
}

/* via = smtp://host[:port] | smtps://host[:port]; host may be [IP]. */
static int
set_via(struct parser *p, const struct key *k, void *dst, char *val)
{
	struct conf_route *r = dst;
	const char *h;
	char host[300];
	uint64_t port;
	char *colon;
	size_t n;

	if (strncasecmp(val, "smtp://", 7) == 0) {
		r->implicit_tls = false;
		h = val + 7;
	} else if (strncasecmp(val, "smtps://", 8) == 0) {
		r->implicit_tls = true;
		h = val + 8;
	} else {
		return bad_value(p, k, val);
	}
	n = strlen(h);
	if (n == 0 || n >= sizeof(host))
		return bad_value(p, k, val);
	memcpy(host, h, n + 1);
	port = r->implicit_tls ? 465 : 25;
	colon = strrchr(host, ':');
	if (colon && (host[0] != '[' || colon > strchr(host, ']'))) {
		if (parse_u64(colon + 1, &port) < 0 || port == 0 ||
		    port > 65535)
			return bad_value(p, k, val);
		*colon = '\0';
	}
	lower(host);
	if (host[0] == '[') {
		size_t hl = strlen(host);
		struct sockaddr_storage ss;
		int pfx;
		if (host[hl - 1] != ']')
			return bad_value(p, k, val);
		host[hl - 1] = '\0';
		if (parse_cidr(host + 1, &ss, &pfx) < 0 ||
		    pfx != (ss.ss_family == AF_INET ? 32 : 128))
			return bad_value(p, k, val);
		memmove(host, host + 1, hl - 1);
	} else if (!addr_domain_valid(host, strlen(host))) {
		return bad_value(p, k, val);
	}
	xfree(r->host);
	r->host = xstrdup(host);
	r->port = (unsigned)port;
	xfree(r->via);
	r->via = xstrdup(val);
	return 0;
}

static int
set_route_tls(struct parser *p, const struct key *k, void *dst, char *val)
{
	return set_choice(p, k, dst, val, conf_tls_names, 3);
}

static int
set_nets(struct parser *p, const struct key *k, void *dst, char *val)
{
	struct conf *c = p->c;
	char *s = val, *tok;

	xfree(c->trusted);
	c->trusted = NULL;
	c->ntrusted = 0;
	while ((tok = next_token(&s)) != NULL) {
		struct conf_net net;

		if (c->ntrusted == CONF_LIST_MAX) {
			perr(p, "too many networks in %s (at most %d)", k->name,
			     CONF_LIST_MAX);
			return -1;
		}
		if (parse_cidr(tok, &net.net, &net.prefix) < 0)
			return bad_value(p, k, tok);
		c->trusted = vec_grow(c->trusted, c->ntrusted, sizeof(net));
		c->trusted[c->ntrusted++] = net;
	}
	return 0;
}

static int
set_retry(struct parser *p, const struct key *k, void *dst, char *val)
{
	struct conf *c = p->c;
	char *s = val, *tok;
	uint64_t v;

	c->nretry = 0;
	while ((tok = next_token(&s)) != NULL) {
		if (c->nretry == CONF_RETRY_MAX) {
			perr(p,
			     "too many intervals in %s (at most %d; the "
			     "last one repeats)",
			     k->name, CONF_RETRY_MAX);
			return -1;
		}
		if (parse_duration(tok, &v) < 0)
			return bad_value(p, k, tok);
		if (check_range(p, k, tok, v) < 0)
			return -1;
		c->retry[c->nretry++] = v;
	}
	if (c->nretry == 0)
		return bad_value(p, k, val);
	return 0;
}

static int
set_dns_servers(struct parser *p, const struct key *k, void *dst, char *val)
{
	struct conf *c = p->c;
	char *s = val, *tok;

	strv_free(c->dns_servers, c->ndns_servers);
	c->dns_servers = NULL;
	c->ndns_servers = 0;
	while ((tok = next_token(&s)) != NULL) {
		if (c->ndns_servers == CONF_LIST_MAX) {
			perr(p, "too many servers in %s (at most %d)", k->name,
			     CONF_LIST_MAX);
			return -1;
		}
		if (!dns_server_ok(tok))
			return bad_value(p, k, tok);
		strv_push(&c->dns_servers, &c->ndns_servers, tok);
	}
	return 0;
}

static int
set_listen_address(struct parser *p, const struct key *k, void *dst, char *val)
{
	struct conf_listen *l = dst;

	if (parse_hostport(val, &l->ss, &l->sslen) < 0) {
		perr(p, "bad listen address \"%s\" (expected %s)", val,
		     k->expect);
		return -1;
	}
	for (size_t i = 0; i + 1 < p->c->nlistens; i++) {
		const struct conf_listen *o = &p->c->listens[i];

		if (o->sslen == l->sslen &&
		    memcmp(&o->ss, &l->ss, l->sslen) == 0) {
			perr(p,
			     "address %s is also used by [listen \"%s\"] "
			     "(line %d)",
			     val, o->name, o->line);
			return -1;
		}
	}
	xfree(l->address);
	l->address = xstrdup(val);
	return 0;
}

/* Append the names of val to a domain's users (sorted at section end). */
static int
add_users(struct parser *p, struct conf_domain *d, char *val)
{
	char *s = val, *tok;

	while ((tok = next_token(&s)) != NULL) {
		if (!user_name_ok(tok)) {
			perr(p,
			     "bad user name \"%s\" (expected "
			     "[a-z0-9][a-z0-9._+-]* or UTF-8 letters, at "
			     "most %d octets, no \"..\")",
			     tok, CONF_USER_MAX);
			return -1;
		}
		strv_push(&d->users, &d->nusers, tok);
	}
	return 0;
}

static int
set_users(struct parser *p, const struct key *k, void *dst, char *val)
{
	return add_users(p, dst, val);
}

#define OFF_C(f) offsetof(struct conf, f)
#define OFF_D(f) offsetof(struct conf_domain, f)
#define DAY 86400ull
#define ROOM_USER (CONF_USER_MAX + 2) /* "/" user NUL after mailboxes */

static const struct key server_keys[] = {
    {"hostname", set_hostname, OFF_C(hostname), 0, 0,
     "a host name like mx.example.com"},
    {"spool", set_path, OFF_C(spool), 1, 64, "a directory"},
    {"user", set_login, OFF_C(user), 0, 0, "a user name like todoku"},
    {"queue-user", set_login, OFF_C(queue_user), 0, 0,
     "a user name like todoku-queue"},
    {"mail-user", set_login, OFF_C(mail_user), 0, 0,
     "a user name like todoku-mail"},
    {"keys-user", set_login, OFF_C(keys_user), 0, 0,
     "a user name like todoku-keys"},
    {"smtp-in-processes", set_uint, OFF_C(smtp_in_procs), 1, 64,
     "a number from 1 to 64"},
    {"log-level", set_log_level, OFF_C(log_level), 0, 0,
     "error, warning, info or debug"},
    {"log-to", set_log_to, OFF_C(log_syslog), 0, 0, "stderr or syslog"},
    {"aliases", set_path, OFF_C(aliases_file), 0, 0, "a file name"},
    {"postmaster", set_mailaddr, OFF_C(postmaster), 0, 0,
     "an address like admin@example.com"},
    {"trusted-networks", set_nets, 0, 0, 0, "networks like 127.0.0.0/8 ::1"},
    {"srs-secret-file", set_path, OFF_C(srs_secret_file), 0, 0, "a file name"},
    {"srs-domain", set_opt_hostname, OFF_C(srs_domain), 0, 0,
     "a domain like example.com (default: [server] hostname)"},
    {"srs-max-age", set_days, OFF_C(srs_max_age), 1, SRS_MAX_AGE_LIMIT,
     "a number of days like 21d, from 1d to 1000d"},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const struct key smtp_keys[] = {
    {"max-message-size", set_size, OFF_C(max_message_size), 1024, 1ull << 40,
     "a size like 25M, from 1K to 1024G"},
    {"max-recipients", set_max_rcpts, OFF_C(max_recipients), 100, 100000,
     "a number from 100 to 100000"},
    {"max-errors", set_uint, OFF_C(max_errors), 1, 1000,
     "a number from 1 to 1000"},
    {"max-hops", set_uint, OFF_C(max_hops), 1, 1000, "a number from 1 to 1000"},
    {"timeout-command", set_duration, OFF_C(timeout_command), 1, DAY,
     "a duration like 5m, from 1s to 1d"},
    {"timeout-data-block", set_duration, OFF_C(timeout_data_block), 1, DAY,
     "a duration like 3m, from 1s to 1d"},
    {"timeout-data-end", set_duration, OFF_C(timeout_data_end), 1, DAY,
     "a duration like 10m, from 1s to 1d"},
    {"authserv-id", set_opt_hostname, OFF_C(authserv_id), 0, 0,
     "a host name like mx.example.com (default: [server] hostname)"},
    {"auth-eod-budget", set_duration, OFF_C(auth_eod_budget), 1, 300,
     "a duration like 10s, from 1s to 5m"},
    {"spf-policy", set_spf_policy, OFF_C(spf_policy), 0, 0, "record or reject"},
    {"dmarc-policy", set_dmarc_policy, OFF_C(dmarc_policy), 0, 0,
     "record or enforce"},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const struct key queue_keys[] = {
    {"retry", set_retry, 0, 1, 7 * DAY,
     "durations like 5m 10m 1h, each from 1s to 7d"},
    {"warn-after", set_duration, OFF_C(warn_after), 1, 365 * DAY,
     "a duration like 4h, from 1s to 365d"},
    {"give-up-after", set_duration, OFF_C(give_up_after), 1, 365 * DAY,
     "a duration like 5d, from 1s to 365d"},
    {"inline-body-max", set_size, OFF_C(inline_body_max), 0, 64ull << 20,
     "a size like 128K, from 0 to 64M"},
    {"bounce-size-limit", set_size, OFF_C(bounce_size_limit), 1024, 64ull << 20,
     "a size like 1M, from 1K to 64M"},
    {"min-free", set_size, OFF_C(min_free), 0, 1ull << 50,
     "a size like 1G, or 0 for automatic"},
    {"dmarc-reports", set_onoff, OFF_C(dmarc_reports), 0, 0, "on or off"},
    {"dmarc-report-interval", set_duration, OFF_C(dmarc_report_interval), 1,
     7 * DAY, "a duration like 1d, from 1s to 7d"},
    {"dmarc-report-org", set_report_org, OFF_C(dmarc_report_org), 0, 0,
     "printable ASCII text like Example Mail"},
    {"dmarc-report-from", set_mailaddr, OFF_C(dmarc_report_from), 0, 0,
     "an address like dmarc-reports@example.com"},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const struct key dns_keys[] = {
    {"servers", set_dns_servers, 0, 0, 0,
     "addresses like 127.0.0.53 or [::1]:53"},
    {"outgoing-range", set_uint, OFF_C(dns_outgoing_range), 16, 65536,
     "a number of sockets from 16 to 65536"},
    {"outgoing-num-tcp", set_uint, OFF_C(dns_outgoing_num_tcp), 1, 4096,
     "a number of connections from 1 to 4096"},
    {"msg-cache-size", set_size, OFF_C(dns_msg_cache_size), 1ull << 20,
     16ull << 30, "a size like 16M, from 1M to 16G"},
    {"rrset-cache-size", set_size, OFF_C(dns_rrset_cache_size), 1ull << 20,
     16ull << 30, "a size like 32M, from 1M to 16G"},
    {"resolver", set_resolver, OFF_C(dns_resolver), 0, 0,
     "forward or recursive"},
    {"dnssec", set_dnssec, OFF_C(dns_dnssec), 0, 0, "no or validate"},
    {"trust-anchor-file", set_path, OFF_C(dns_trust_anchor), 1, 0,
     "a file of DS or DNSKEY records for the root"},
    {"root-hints", set_path, OFF_C(dns_root_hints), 0, 0,
     "a root hints file, or \"\" for the built-in one"},
    {NULL, NULL, 0, 0, 0, NULL},
};

#define OFF_L(f) offsetof(struct conf_listen, f)

static const struct key listen_keys[] = {
    {"address", set_listen_address, 0, 0, 0, "IP:PORT or [IPv6]:PORT"},
    {"spf-policy", set_spf_policy, OFF_L(spf_policy), 0, 0, "record or reject"},
    {"dmarc-policy", set_dmarc_policy, OFF_L(dmarc_policy), 0, 0,
     "record or enforce"},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const struct key domain_keys[] = {
    {"mailboxes", set_path, OFF_D(mailboxes), 1, ROOM_USER, "a directory"},
    {"users", set_users, 0, 0, 0, "user names"},
    {"users-file", set_path, OFF_D(users_file), 0, 0, "a file name"},
    {"catch-all", set_mailaddr, OFF_D(catch_all), 0, 0,
     "an address like info@example.com"},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const struct key delivery_keys[] = {
    {"helo", set_opt_hostname, OFF_C(delivery_helo), 0, 0,
     "a host name like mx.example.com, or \"\" for [server] hostname"},
    {"helo-ipv6", set_opt_hostname, OFF_C(delivery_helo6), 0, 0,
     "a host name like mx6.example.com, or \"\" for helo"},
    {"tls", set_tls, OFF_C(delivery_tls), 0, 0, "none, may or must"},
    {"verify", set_verify, OFF_C(delivery_verify), 0, 0, "none or ca"},
    {"ca", set_path, OFF_C(delivery_ca), 1, 0,
     "a PEM file of CA certificates or a hashed directory"},
    {"ip", set_ip, OFF_C(delivery_ip), 0, 0,
     "any, prefer-ipv4, prefer-ipv6, ipv4-only or ipv6-only"},
    {"port", set_uint, OFF_C(delivery_port), 1, 65535,
     "a port number (25 for MX delivery)"},
    {"max-addresses", set_uint, OFF_C(delivery_max_addresses), 1, 64,
     "a number from 1 to 64"},
    {"processes", set_uint, OFF_C(smtp_out_procs), 1, 64,
     "a number from 1 to 64"},
    {"source-ipv4", set_source4, OFF_C(delivery_source4), 0, 0,
     "an IPv4 address of this host"},
    {"source-ipv6", set_source6, OFF_C(delivery_source6), 0, 0,
     "an IPv6 address of this host"},
    {"timeout-connect", set_duration, OFF_C(delivery_timeout_connect), 1, DAY,
     "a duration like 30s, from 1s to 1d"},
    {"timeout-greeting", set_duration, OFF_C(delivery_timeout_greeting), 1, DAY,
     "a duration like 5m, from 1s to 1d"},
    {"timeout-command", set_duration, OFF_C(delivery_timeout_command), 1, DAY,
     "a duration like 5m, from 1s to 1d"},
    {"timeout-data-end", set_duration, OFF_C(delivery_timeout_data_end), 1, DAY,
     "a duration like 10m, from 1s to 1d"},
    {"max-attempt-time", set_duration, OFF_C(delivery_max_attempt_time), 1, DAY,
     "a duration like 10m, from 1s to 1d"},
    {"ipv6-suspend-after", set_uint, OFF_C(delivery_v6_suspend_after), 0,
     V6H_DISTINCT_MAX, "a number from 0 (never) to 64"},
    {"ipv6-suspend-for", set_duration, OFF_C(delivery_v6_suspend_for), 1, DAY,
     "a duration like 10m, from 1s to 1d"},
    {"destination-concurrency", set_uint, OFF_C(delivery_dest_conc), 1, 1000,
     "a number from 1 to 1000"},
    {"destination-concurrency-max", set_uint, OFF_C(delivery_dest_conc_max), 1,
     1000, "a number from 1 to 1000"},
    {"dead-after", set_uint, OFF_C(delivery_dead_after), 1, 100,
     "a number from 1 to 100"},
    {"max-sessions", set_uint, OFF_C(delivery_max_sessions), 1, 10000,
     "a number from 1 to 10000"},
    {"connection-max-messages", set_uint, OFF_C(delivery_conn_max_msgs), 1,
     10000, "a number from 1 to 10000"},
    {"connection-max-age", set_duration, OFF_C(delivery_conn_max_age), 1, 3600,
     "a duration like 60s, from 1s to 1h"},
    {"connection-idle-time", set_duration, OFF_C(delivery_conn_idle), 0, 300,
     "a duration like 1s, from 0s (close at once) to 5m"},
    {"ipv4-first-for", set_duration, OFF_C(delivery_v4first_for), 0, 30 * DAY,
     "a duration like 24h, from 0s (off) to 30d"},
    {NULL, NULL, 0, 0, 0, NULL},
};

#define OFF_R(f) offsetof(struct conf_route, f)

static const struct key route_keys[] = {
    {"via", set_via, 0, 0, 0,
     "smtp://host:port or smtps://host:port (host may be [IP])"},
    {"tls", set_route_tls, OFF_R(tls), 0, 0, "none, may or must"},
    {"verify", set_verify, OFF_R(verify), 0, 0, "none or ca"},
    {"ca", set_path, OFF_R(ca), 1, 0,
     "a PEM file of CA certificates or a hashed directory"},
    {"helo", set_opt_hostname, OFF_R(helo), 0, 0,
     "a host name like mx.example.com"},
    {"helo-ipv6", set_opt_hostname, OFF_R(helo6), 0, 0,
     "a host name like mx6.example.com"},
    {"ip", set_ip, OFF_R(ip), 0, 0,
     "any, prefer-ipv4, prefer-ipv6, ipv4-only or ipv6-only"},
    {"source-ipv4", set_source4, OFF_R(source4), 0, 0,
     "an IPv4 address of this host"},
    {"source-ipv6", set_source6, OFF_R(source6), 0, 0,
     "an IPv6 address of this host"},
    {"auth-user", set_string, OFF_R(auth_user), 0, 0, "a user name"},
    {"auth-password-file", set_path, OFF_R(auth_password_file), 0, 0,
     "a file name"},
    {NULL, NULL, 0, 0, 0, NULL},
};

#define OFF_K(f) offsetof(struct conf_dkim, f)

static int
set_dkim_alg(struct parser *p, const struct key *k, void *dst, char *val)
{
	static const char *const names[] = {"rsa-sha256", "ed25519-sha256"};
	return set_choice(p, k, dst, val, names, 2);
}

static const struct key dkim_keys[] = {
    {"selector", set_hostname, OFF_K(selector), 0, 0,
     "a selector like s2026 (letters, digits, '-', dots)"},
    {"key", set_path, OFF_K(key_file), 0, 0,
     "the private key file (PEM), from todoku dkim keygen"},
    {"algorithm", set_dkim_alg, OFF_K(algorithm), 0, 0,
     "rsa-sha256 or ed25519-sha256"},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const struct key *const sect_keys[S_COUNT] = {
    NULL,	 server_keys, smtp_keys,     queue_keys, dns_keys,
    listen_keys, domain_keys, delivery_keys, route_keys, dkim_keys,
};

/* ---- the conf object ------------------------------------------------- */

static void
default_hostname(struct conf *c)
{
	char h[256];

	if (gethostname(h, sizeof(h)) == 0) {
		h[sizeof(h) - 1] = '\0';
		lower(h);
		if (addr_domain_valid(h, strlen(h))) {
			c->hostname = xstrdup(h);
			return;
		}
	}
	c->hostname = xstrdup("localhost");
}

static unsigned
default_procs(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > 64 ? 64 : (unsigned)n;
}

static struct conf *
conf_new(struct parser *p)
{
	static const struct key tk = {.name = "trusted-networks"};
	static const struct key rk = {
	    .name = "retry", .min = 1, .max = 7 * DAY};
	struct conf *c = xcalloc(1, sizeof(*c));
	char trusted[] = DEF_TRUSTED, retry[] = DEF_RETRY;

	p->c = c;
	default_hostname(c);
	c->user = xstrdup(DEF_USER);
	c->queue_user = xstrdup("todoku-queue");
	c->mail_user = xstrdup("todoku-mail");
	c->keys_user = xstrdup("todoku-keys");
	c->smtp_in_procs = default_procs();
	c->log_level = LOG_LVL_INFO;
	c->max_message_size = 25ull << 20;
	c->dmarc_report_interval = DAY;
	c->max_recipients = 1000;
	c->max_errors = 10;
	c->max_hops = 100;
	c->timeout_command = 5 * 60;
	c->timeout_data_block = 3 * 60;
	c->timeout_data_end = 10 * 60;
	c->warn_after = 4 * 3600;
	c->give_up_after = 5 * DAY;
	c->inline_body_max = 128 * 1024;
	c->bounce_size_limit = 1024 * 1024;
	c->auth_eod_budget = 10;
	c->spf_policy = 0;   /* record */
	c->dmarc_policy = 1; /* enforce */
	c->srs_max_age = SRS_MAX_AGE_DEFAULT;
	c->delivery_tls = CONF_TLS_MAY;
	c->delivery_verify = CONF_VERIFY_NONE;
	c->delivery_ca = xstrdup(CONF_CA_DEFAULT);
	c->delivery_ip = CONF_IP_ANY;
	c->delivery_port = 25;
	c->delivery_max_addresses = 10;
	c->smtp_out_procs = default_procs();
	c->delivery_timeout_connect = 30;
	c->delivery_timeout_greeting = 5 * 60;
	c->delivery_timeout_command = 5 * 60;
	c->delivery_timeout_data_end = 10 * 60;
	c->delivery_max_attempt_time = 10 * 60;
	c->delivery_v6_suspend_after = 5;
	c->delivery_v6_suspend_for = 10 * 60;
	c->delivery_dest_conc = 5;
	c->delivery_dest_conc_max = 20;
	c->delivery_dead_after = 3;
	c->delivery_max_sessions = 32;
	c->delivery_conn_max_msgs = 20;
	c->delivery_conn_max_age = 60;
	c->delivery_conn_idle = 1;
	c->delivery_v4first_for = DAY;
	/* libunbound's own defaults are tiny (DESIGN §7) */
	c->dns_outgoing_range = 1024;
	c->dns_outgoing_num_tcp = 64;
	c->dns_msg_cache_size = 16ull << 20;
	c->dns_rrset_cache_size = 32ull << 20;
	c->dns_trust_anchor = xstrdup(CONF_TRUST_ANCHOR_DEFAULT);
	if (set_nets(p, &tk, NULL, trusted) < 0 ||
	    set_retry(p, &rk, NULL, retry) < 0)
		log_panic("conf: built-in defaults do not parse");
	c->spool = abs_path(p, "spool", DEF_SPOOL, 64);
	if (c->spool == NULL) {
		conf_free(c);
		return NULL;
	}
	return c;
}

static void
domain_free(struct conf_domain *d)
{
	xfree(d->name);
	xfree(d->mailboxes);
	xfree(d->catch_all);
	xfree(d->users_file);
	strv_free(d->users, d->nusers);
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	xfree(c->path);
	xfree(c->hostname);
	xfree(c->delivery_helo);
	xfree(c->delivery_helo6);
	xfree(c->delivery_ca);
	xfree(c->dns_trust_anchor);
	xfree(c->dns_root_hints);
	xfree(c->authserv_id);
	xfree(c->delivery_source4);
	xfree(c->delivery_source6);
	xfree(c->spool);
	xfree(c->user);
	xfree(c->queue_user);
	xfree(c->mail_user);
	xfree(c->keys_user);
	xfree(c->aliases_file);
	xfree(c->postmaster);
	xfree(c->trusted);
	xfree(c->srs_secret_file);
	xfree(c->srs_domain);
	xfree(c->dmarc_report_org);
	xfree(c->dmarc_report_from);
	for (size_t i = 0; i < c->nsrs_secrets; i++)
		explicit_bzero(c->srs_secrets[i], strlen(c->srs_secrets[i]));
	strv_free(c->srs_secrets, c->nsrs_secrets);
	strv_free(c->dns_servers, c->ndns_servers);
	for (size_t i = 0; i < c->nlistens; i++) {
		xfree(c->listens[i].name);
		xfree(c->listens[i].address);
	}
	xfree(c->listens);
	for (size_t i = 0; i < c->ndomains; i++)
		domain_free(&c->domains[i]);
	xfree(c->domains);
	for (size_t i = 0; i < c->nroutes; i++) {
		struct conf_route *r = &c->routes[i];
		xfree(r->name);
		xfree(r->via);
		xfree(r->host);
		xfree(r->helo);
		xfree(r->helo6);
		xfree(r->ca);
		xfree(r->source4);
		xfree(r->source6);
		xfree(r->auth_user);
		xfree(r->auth_password_file);
		if (r->auth_password)
			explicit_bzero(r->auth_password,
				       strlen(r->auth_password));
		xfree(r->auth_password);
	}
	xfree(c->routes);
	for (size_t i = 0; i < c->ndkim; i++) {
		xfree(c->dkim[i].domain);
		xfree(c->dkim[i].selector);
		xfree(c->dkim[i].key_file);
	}
	xfree(c->dkim);
	for (size_t i = 0; i < c->naliases; i++) {
		xfree(c->aliases[i].from);
		strv_free(c->aliases[i].to, c->aliases[i].nto);
	}
	xfree(c->aliases);
	xfree(c);
}

/* ---- sections -------------------------------------------------------- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and deduplicate a domain's users. */
static void
users_sort(struct conf_domain *d)
{
	size_t w = 0;

	if (d->nusers == 0)
		return;
	qsort(d->users, d->nusers, sizeof(*d->users), cmp_str);
	for (size_t r = 1; r < d->nusers; r++) {
		if (strcmp(d->users[r], d->users[w]) == 0)
			xfree(d->users[r]);
		else
			d->users[++w] = d->users[r];
	}
	d->nusers = w + 1;
}

static int
route_end(struct parser *p, struct conf_route *r)
{
	if (r->host == NULL) {
		perr(p,
		     "[route \"%s\"] has no via (add via = "
		     "smtp://relay.example.net:587)",
		     r->name);
		return -1;
	}
	return 0;
}

/* After the whole file: [delivery] may come after the routes, so the
 * defaults they take from it are filled in here. */
static int
route_finish(struct parser *p, struct conf_route *r)
{
	p->line = r->line;
	if (r->verify < 0)
		r->verify = p->c->delivery_verify;
	if (r->tls < 0)
		r->tls = r->implicit_tls || r->verify != CONF_VERIFY_NONE
			     ? CONF_TLS_MUST
			     : CONF_TLS_MAY;
	if (r->ip < 0)
		r->ip = p->c->delivery_ip;
	if (r->verify != CONF_VERIFY_NONE && r->tls != CONF_TLS_MUST) {
		perr(p,
		     "[route \"%s\"]: verify = %s needs tls = must (a "
		     "verified route never falls back to plaintext)",
		     r->name, conf_verify_names[r->verify]);
		return -1;
	}
	if (r->implicit_tls && r->tls != CONF_TLS_MUST) {
		perr(p,
		     "[route \"%s\"]: smtps:// is always TLS (remove tls "
		     "or set tls = must)",
		     r->name);
		return -1;
	}
	if ((r->auth_user == NULL) != (r->auth_password_file == NULL)) {
		perr(p,
		     "[route \"%s\"]: auth-user and auth-password-file go "
		     "together",
		     r->name);
		return -1;
	}
	if (r->auth_user && r->tls != CONF_TLS_MUST) {
		perr(p,
		     "[route \"%s\"]: AUTH is only sent over TLS (set tls = "
		     "must, or use smtps://)",
		     r->name);
		return -1;
	}
	return 0;
}

/* Check the section that ends here for its required keys. */
static int
section_end(struct parser *p)
{
	struct conf *c = p->c;
	int line = p->line, r = 0;

	p->line = p->sect_line;
	if (p->sect == S_LISTEN &&
	    c->listens[c->nlistens - 1].address == NULL) {
		perr(p,
		     "[listen \"%s\"] has no address (add address = "
		     "IP:PORT)",
		     c->listens[c->nlistens - 1].name);
		r = -1;
	} else if (p->sect == S_DOMAIN) {
		struct conf_domain *d = &c->domains[c->ndomains - 1];

		users_sort(d);
		if (d->mailboxes == NULL) {
			perr(p,
			     "[domain \"%s\"] has no mailboxes (add "
			     "mailboxes = /var/mail/%s)",
			     d->name, d->name);
			r = -1;
		}
	}
	if (p->sect == S_ROUTE)
		r = route_end(p, &c->routes[c->nroutes - 1]);
	if (p->sect == S_DKIM && (c->dkim[c->ndkim - 1].selector == NULL ||
				  c->dkim[c->ndkim - 1].key_file == NULL)) {
		perr(p,
		     "[dkim \"%s\"] needs selector and key (see `todoku dkim "
		     "keygen`)",
		     c->dkim[c->ndkim - 1].domain);
		r = -1;
	}
	p->line = line;
	return r;
}

static int
find_section(struct parser *p, const char *name)
{
	const char *sug;

	for (int i = 1; i < S_COUNT; i++)
		if (strcmp(name, sect_names[i]) == 0)
			return i;
	sug = suggest(name, sect_names + 1, S_COUNT - 1);
	if (sug)
		perr(p, "unknown section [%s] (did you mean [%s]?)", name, sug);
	else
		perr(p,
		     "unknown section [%s] (known sections: server, smtp, "
		     "queue, dns, listen, domain)",
		     name);
	return -1;
}

static bool
listen_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32)
		return false;
	for (; *s; s++)
		if (!is_key_char(*s) && *s != '_' && *s != '.')
			return false;
	return true;
}

static int
open_listen(struct parser *p, const char *sub)
{
	struct conf *c = p->c;
	struct conf_listen *l;

	if (!listen_name_ok(sub)) {
		perr(p,
		     "bad listen name \"%s\" (use a-z, 0-9, '.', '_', '-'; "
		     "at most 32 characters)",
		     sub);
		return -1;
	}
	for (size_t i = 0; i < c->nlistens; i++) {
		if (strcmp(c->listens[i].name, sub) == 0) {
			perr(p,
			     "duplicate section [listen \"%s\"] (first at "
			     "line %d)",
			     sub, c->listens[i].line);
			return -1;
		}
	}
	c->listens = vec_grow(c->listens, c->nlistens, sizeof(*l));
	l = &c->listens[c->nlistens++];
	memset(l, 0, sizeof(*l));
	l->name = xstrdup(sub);
	l->line = p->line;
	l->spf_policy = -1; /* [smtp] spf-policy */
	l->dmarc_policy = -1;
	return 0;
}

static int
open_domain(struct parser *p, const char *sub)
{
	struct conf *c = p->c;
	struct conf_domain *d;

	if (!addr_domain_valid(sub, strlen(sub))) {
		perr(p,
		     "bad domain name \"%s\" in [domain] (expected a name "
		     "like example.com)",
		     sub);
		return -1;
	}
	for (size_t i = 0; i < c->ndomains; i++) {
		if (strcmp(c->domains[i].name, sub) == 0) {
			perr(p,
			     "duplicate section [domain \"%s\"] (first at "
			     "line %d)",
			     sub, c->domains[i].line);
			return -1;
		}
	}
	c->domains = vec_grow(c->domains, c->ndomains, sizeof(*d));
	d = &c->domains[c->ndomains++];
	memset(d, 0, sizeof(*d));
	d->name = xstrdup(sub);
	d->line = p->line;
	return 0;
}

static int
open_plain(struct parser *p, enum sect s, const char *sub)
{
	if (sub != NULL) {
		perr(p, "[%s] takes no name (write [%s])", sect_names[s],
		     sect_names[s]);
		return -1;
	}
	if (p->plain_line[s]) {
		perr(p, "duplicate section [%s] (first at line %d)",
		     sect_names[s], p->plain_line[s]);
		return -1;
	}
	p->plain_line[s] = p->line;
	return 0;
}

/* Route names: "*", a domain, or ".parent.domain" (longest suffix). */
static int
open_route(struct parser *p, const char *sub)
{
	struct conf *c = p->c;
	struct conf_route *r;
	const char *d = sub[0] == '.' ? sub + 1 : sub;

	if (strcmp(sub, "*") != 0 && !addr_domain_valid(d, strlen(d))) {
		perr(p,
		     "bad route name \"%s\" (expected \"*\", a domain like "
		     "example.com, or .example.com for its subdomains)",
		     sub);
		return -1;
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		if (strcmp(c->routes[i].name, sub) == 0) {
			perr(p,
			     "duplicate section [route \"%s\"] (first at "
			     "line %d)",
			     sub, c->routes[i].line);
			return -1;
		}
	}
	c->routes = vec_grow(c->routes, c->nroutes, sizeof(*r));
	r = &c->routes[c->nroutes++];
	memset(r, 0, sizeof(*r));
	r->name = xstrdup(sub);
	r->line = p->line;
	r->tls = -1;	/* default: must for smtps or verify = ca, else may */
	r->ip = -1;	/* default: [delivery] ip */
	r->verify = -1; /* default: [delivery] verify */
	return 0;
}

/* [dkim "DOMAIN"]: sign mail from this From domain. */
static int
open_dkim(struct parser *p, const char *sub)
{
	struct conf *c = p->c;
	struct conf_dkim *k;

	if (!addr_domain_valid(sub, strlen(sub))) {
		perr(p, "bad domain name \"%s\" in [dkim]", sub);
		return -1;
	}
	for (size_t i = 0; i < c->ndkim; i++) {
		if (strcmp(c->dkim[i].domain, sub) == 0) {
			perr(p,
			     "duplicate section [dkim \"%s\"] (first at line "
			     "%d)",
			     sub, c->dkim[i].line);
			return -1;
		}
	}
	c->dkim = vec_grow(c->dkim, c->ndkim, sizeof(*k));
	k = &c->dkim[c->ndkim++];
	memset(k, 0, sizeof(*k));
	k->domain = xstrdup(sub);
	k->line = p->line;
	return 0;
}

/* Domain-named sections are keyed by A-labels (DESIGN §7): a U-label
 * name ("bücher.example") is converted, so it matches what smtp-in
 * stores and what DNS needs. */
static int
section_alabel(struct parser *p, const char *sub, char *out, size_t len)
{
	const char *d = sub[0] == '.' ? sub + 1 : sub;
	size_t off = (size_t)(d - sub);

	if (strcmp(sub, "*") == 0 || strlen(sub) >= len) {
		snprintf(out, len, "%s", sub);
		return 0;
	}
	memcpy(out, sub, off);
	if (addr_idna_ascii(d, out + off, len - off) != ADDR_OK) {
		perr(p, "bad internationalized domain name \"%s\"", sub);
		return -1;
	}
	return 0;
}

static int
section_open(struct parser *p, char *name, char *sub)
{
	char alabel[NAME_MAX_LEN + 2];
	int s, r;

	if (p->sect != S_NONE && section_end(p) < 0)
		return -1;
	p->sect = S_NONE;
	lower(name);
	if ((s = find_section(p, name)) < 0)
		return -1;
	if (sub)
		lower(sub);
	if (sub && (s == S_DOMAIN || s == S_ROUTE || s == S_DKIM) &&
	    section_alabel(p, sub, alabel, sizeof(alabel)) < 0)
		return -1;
	if (sub && (s == S_DOMAIN || s == S_ROUTE || s == S_DKIM))
		sub = alabel;
	if ((s == S_LISTEN || s == S_DOMAIN || s == S_ROUTE || s == S_DKIM) &&
	    sub == NULL) {
		perr(p, "[%s] needs a name (write [%s \"NAME\"])", name, name);
		return -1;
	}
	if (sub && strlen(sub) > NAME_MAX_LEN) {
		perr(p, "section name longer than %d characters", NAME_MAX_LEN);
		return -1;
	}
	if (s == S_LISTEN)
		r = open_listen(p, sub);
	else if (s == S_DOMAIN)
		r = open_domain(p, sub);
	else if (s == S_ROUTE)
		r = open_route(p, sub);
	else if (s == S_DKIM)
		r = open_dkim(p, sub);
	else
		r = open_plain(p, (enum sect)s, sub);
	if (r < 0)
		return -1;
	p->sect = (enum sect)s;
	p->sect_line = p->line;
	memset(p->seen_line, 0, sizeof(p->seen_line));
	return 0;
}

static int
header_sub(struct parser *p, char **q, char **sub)
{
	int r;

	*sub = *q;
	r = unquote(*q, q);
	if (r == -2) {
		perr(p, "bad escape in section name (only \\\" and \\\\ are "
			"allowed)");
		return -1;
	}
	if (r < 0) {
		perr(p, "unterminated section name (expected a closing '\"')");
		return -1;
	}
	return 0;
}

/* "[name]" or "[name "sub"]"; s is the trimmed line. */
static int
parse_header(struct parser *p, char *s)
{
	char *q = s + 1, name[KEY_MAX + 1], *sub = NULL;
	size_t n = 0;

	while (is_ws(*q))
		q++;
	for (; is_key_char(*q); q++)
		if (n < KEY_MAX)
			name[n++] = *q;
	name[n] = '\0';
	while (is_ws(*q))
		q++;
	if (*q == '"' && header_sub(p, &q, &sub) < 0)
		return -1;
	while (is_ws(*q))
		q++;
	if (*q == '\0') {
		perr(p, "unterminated section header (expected ']')");
		return -1;
	}
	if (*q != ']' || n == 0) {
		perr(p, "bad section header (expected [name] or "
			"[name \"subsection\"])");
		return -1;
	}
	for (q++; is_ws(*q); q++)
		;
	if (*q != '\0') {
		perr(p, "text after section header (comments go on their own "
			"line)");
		return -1;
	}
	return section_open(p, name, sub);
}

static const struct key *
find_key(struct parser *p, const char *key, size_t *idx)
{
	const struct key *keys = sect_keys[p->sect];
	const char *names[32], *sug;
	size_t n = 0;

	for (; keys[n].name; n++) {
		if (strcmp(keys[n].name, key) == 0) {
			*idx = n;
			return &keys[n];
		}
		names[n] = keys[n].name;
	}
	sug = suggest(key, names, n);
	if (sug)
		perr(p, "unknown key \"%s\" in [%s] (did you mean \"%s\"?)",
		     key, sect_names[p->sect], sug);
	else
		perr(p, "unknown key \"%s\" in [%s] (see docs/config.md)", key,
		     sect_names[p->sect]);
	return NULL;
}

/* Where key k of the current section stores its value. */
static void *
key_target(struct parser *p, const struct key *k)
{
	struct conf *c = p->c;

	if (p->sect == S_LISTEN)
		return (char *)&c->listens[c->nlistens - 1] + k->off;
	if (p->sect == S_DOMAIN)
		return (char *)&c->domains[c->ndomains - 1] + k->off;
	if (p->sect == S_ROUTE)
		return (char *)&c->routes[c->nroutes - 1] + k->off;
	if (p->sect == S_DKIM)
		return (char *)&c->dkim[c->ndkim - 1] + k->off;
	return (char *)c + k->off;
}

/* Keys that name a file, and where their line is kept (the struct of
 * the section, like key.off): a missing or unreadable file is reported
 * at the key's file:line. */
static const struct file_key {
	enum sect sect;
	const char *key;
	size_t line_off;
} file_keys[] = {
    {S_SERVER, "aliases", OFF_C(aliases_line)},
    {S_SERVER, "srs-secret-file", OFF_C(srs_secret_file_line)},
    {S_DNS, "trust-anchor-file", OFF_C(dns_trust_anchor_line)},
    {S_DNS, "root-hints", OFF_C(dns_root_hints_line)},
    {S_DOMAIN, "users-file", OFF_D(users_file_line)},
    {S_DELIVERY, "ca", OFF_C(delivery_ca_line)},
    {S_ROUTE, "ca", OFF_R(ca_line)},
    {S_ROUTE, "auth-password-file", OFF_R(auth_password_file_line)},
    {S_DKIM, "key", OFF_K(key_line)},
};

static void
note_file_line(struct parser *p, const struct key *k)
{
	char *base = (char *)key_target(p, k) - k->off;

	for (size_t i = 0; i < sizeof(file_keys) / sizeof(file_keys[0]); i++)
		if (file_keys[i].sect == p->sect &&
		    strcmp(file_keys[i].key, k->name) == 0)
			*(int *)(base + file_keys[i].line_off) = p->line;
}

/* The value after '=': trimmed, or double-quoted with \" \\ escapes. */
static char *
parse_value(struct parser *p, char *v)
{
	char *end;
	int r;

	while (is_ws(*v))
		v++;
	if (*v != '"')
		return v;
	r = unquote(v, &end);
	if (r == -2) {
		perr(p, "bad escape in quoted value (only \\\" and \\\\ are "
			"allowed)");
		return NULL;
	}
	if (r < 0) {
		perr(p, "unterminated quoted value (expected a closing '\"')");
		return NULL;
	}
	while (is_ws(*end))
		end++;
	if (*end != '\0') {
		perr(p, "text after quoted value (comments go on their own "
			"line)");
		return NULL;
	}
	return v;
}

static int
apply_key(struct parser *p, char *key, char *val)
{
	const struct key *k;
	size_t idx;

	if (p->sect == S_NONE) {
		perr(p,
		     "key \"%s\" outside any section (put it under a "
		     "[section] header)",
		     key);
		return -1;
	}
	if ((k = find_key(p, key, &idx)) == NULL)
		return -1;
	if (p->seen_line[idx]) {
		perr(p, "duplicate key \"%s\" in [%s] (first set at line %d)",
		     key, sect_names[p->sect], p->seen_line[idx]);
		return -1;
	}
	p->seen_line[idx] = p->line;
	if (k->set(p, k, key_target(p, k), val) < 0)
		return -1;
	note_file_line(p, k);
	return 0;
}

/* "key = value"; s is the trimmed line. */
static int
parse_key_line(struct parser *p, char *s)
{
	char *q = s, *val;

	while (is_key_char(*q))
		q++;
	if (q == s || (*q != '=' && !is_ws(*q))) {
		perr(p, "expected \"key = value\" or \"[section]\" (keys use "
			"a-z, 0-9 and '-')");
		return -1;
	}
	if (q - s > KEY_MAX) {
		perr(p, "key longer than %d characters", KEY_MAX);
		return -1;
	}
	val = q;
	while (is_ws(*val))
		val++;
	if (*val != '=') {
		*q = '\0';
		perr(p, "missing '=' after key \"%s\"", s);
		return -1;
	}
	*q = '\0';
	lower(s);
	if ((val = parse_value(p, val + 1)) == NULL)
		return -1;
	return apply_key(p, s, val);
}

static int
parse_line(struct parser *p, char *line)
{
	char *s = trim(line);

	if (*s == '\0' || *s == '#' || *s == ';')
		return 0;
	if (*s == '[')
		return parse_header(p, s);
	return parse_key_line(p, s);
}

/* Checks that need the whole file. */
static int
parse_finish(struct parser *p)
{
	struct conf *c = p->c;

	if (p->sect != S_NONE && section_end(p) < 0)
		return -1;
	if (c->delivery_verify != CONF_VERIFY_NONE &&
	    c->delivery_tls != CONF_TLS_MUST) {
		p->line = p->plain_line[S_DELIVERY];
		perr(p,
		     "[delivery]: verify = %s needs tls = must (a verified "
		     "delivery never falls back to plaintext)",
		     conf_verify_names[c->delivery_verify]);
		return -1;
	}
	if (c->delivery_dest_conc > c->delivery_dest_conc_max) {
		p->line = p->plain_line[S_DELIVERY];
		perr(p,
		     "[delivery]: destination-concurrency = %u is above "
		     "destination-concurrency-max = %u",
		     c->delivery_dest_conc, c->delivery_dest_conc_max);
		return -1;
	}
	for (size_t i = 0; i < c->nroutes; i++)
		if (route_finish(p, &c->routes[i]) < 0)
			return -1;
	if (c->nlistens == 0) {
		perr(p, "no [listen] section (add one, e.g. [listen \"smtp\"] "
			"with address = 0.0.0.0:25)");
		return -1;
	}
	if (c->min_free == 0)
		c->min_free = 2 * c->max_message_size + MIN_FREE_RESERVE;
	if (c->dmarc_report_from == NULL) {
		size_t n = strlen(c->hostname) + sizeof("postmaster@");
		c->dmarc_report_from = xmalloc(n);
		snprintf(c->dmarc_report_from, n, "postmaster@%s", c->hostname);
	}
	return 0;
}

struct conf *
conf_parse_text(const char *name, const char *text, size_t len, char *err,
		size_t errlen)
{
	struct parser p = {.name = name, .err = err, .errlen = errlen};
	struct lines l = {text, text + len};
	char *line;
	int bad, r = 0;

	if (errlen)
		err[0] = '\0';
	if (conf_new(&p) == NULL)
		return NULL;
	p.c->path = xstrdup(name);
	while (r == 0 && (line = lines_next(&l, &bad)) != NULL) {
		p.line++;
		if (bad) {
			perr(&p, "NUL or control character in line");
			r = -1;
		} else {
			r = parse_line(&p, line);
		}
		xfree(line);
	}
	if (r == 0)
		r = parse_finish(&p);
	if (r < 0) {
		conf_free(p.c);
		return NULL;
	}
	return p.c;
}

/* ---- table files ----------------------------------------------------- */

/* Read a whole file of at most CONF_FILE_MAX bytes; NULL with err set.
 * what: NULL for the configuration file itself (p->name is path), else
 * the key naming it ("[server] aliases"), put before path in messages. */
static char *
read_file(struct parser *p, const char *what, const char *path, size_t *len)
{
	char *data;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), fail = 0;
	const char *sp = what ? " " : "", *colon = what ? ": " : "";

	if (what == NULL)
		what = path = "";
	if (fd < 0) {
		perr(p, "%s%s%s%scannot open: %s", what, sp, path, colon,
		     strerror(errno));
		return NULL;
	}
	data = xmalloc(CONF_FILE_MAX + 1);
	while (n <= CONF_FILE_MAX && !fail) {
		ssize_t r = read(fd, data + n, CONF_FILE_MAX + 1 - n);

		if (r < 0 && errno != EINTR) {
			perr(p, "%s%s%s%scannot read: %s", what, sp, path,
			     colon, strerror(errno));
			fail = 1;
		} else if (r == 0) {
			break;
		} else if (r > 0) {
			n += (size_t)r;
		}
	}
	close(fd);
	if (!fail && n > CONF_FILE_MAX) {
		perr(p, "%s%s%s%slarger than %d bytes", what, sp, path, colon,
		     CONF_FILE_MAX);
		fail = 1;
	}
	if (fail) {
		xfree(data);
		return NULL;
	}
	*len = n;
	return data;
}

/*
 * The file a configuration key names (what: "[route \"x\"]
 * auth-password-file", line: that key's line, 0 for a default value).
 * Opening or reading it fails at the key (config file:line); errors in
 * its content are the file's own (p->name is path afterwards).
 */
static char *
read_named(struct parser *p, const char *what, const char *path, int line,
	   size_t *len)
{
	char *text;

	p->name = p->c->path;
	p->line = line;
	text = read_file(p, what, path, len);
	p->name = path;
	p->line = 0;
	return text;
}

typedef int (*table_line_fn)(struct parser *p, char *line, void *arg);

/* Call fn for each non-blank, non-comment ('#') line of the file. */
static int
table_each(struct parser *p, const char *what, const char *path, int kline,
	   table_line_fn fn, void *arg)
{
	struct lines l;
	size_t len;
	char *text, *line;
	int bad, r = 0;

	if ((text = read_named(p, what, path, kline, &len)) == NULL)
		return -1;
	l.p = text;
	l.end = text + len;
	while (r == 0 && (line = lines_next(&l, &bad)) != NULL) {
		char *s = trim(line);

		p->line++;
		if (bad) {
			perr(p, "NUL or control character in line");
			r = -1;
		} else if (*s != '\0' && *s != '#') {
			r = fn(p, s, arg);
		}
		xfree(line);
	}
	xfree(text);
	return r;
}

static int
users_line(struct parser *p, char *s, void *arg)
{
	struct conf_domain *d = arg;
	char *tok, *rest = s;

	tok = next_token(&rest);
	if (next_token(&rest) != NULL) {
		perr(p, "one user name per line, not \"%s\"", s);
		return -1;
	}
	return add_users(p, d, tok);
}

/* Aliases under construction, with the line of each for messages. */
struct alias_tmp {
	struct conf_alias a;
	int line;
};

struct alias_set {
	struct alias_tmp *v;
	size_t n;
};

/* First ':' outside double quotes, or NULL. */
static char *
alias_colon(char *s)
{
	bool q = false;

	for (; *s; s++) {
		if (*s == '"')
			q = !q;
		else if (*s == '\\' && q && s[1] != '\0')
			s++;
		else if (*s == ':' && !q)
			return s;
	}
	return NULL;
}

/* Left side of an alias line to its lookup key, or -1 with err set. */
static int
alias_key(struct parser *p, char *left, char *key, size_t keylen)
{
	char probe[ADDR_PATH_MAX + 16], lk[ADDR_LOCAL_MAX + 1];
	bool bare = alias_colon(left) == NULL && strchr(left, '@') == NULL;
	struct mailaddr a;
	enum addr_err e;

	snprintf(probe, sizeof(probe), "%s%s", left, bare ? "@localhost" : "");
	e = addr_parse_mailbox(probe, strlen(probe), 0, &a);
	if (e != ADDR_OK) {
		perr(p, "bad alias \"%s\": %s", left, addr_strerror(e));
		return -1;
	}
	if (conf_local_key(a.local, lk, sizeof(lk)) < 0) {
		perr(p,
		     "alias \"%s\" can never match (local parts with '/', "
		     "'%%', '@', '!' or spaces are refused)",
		     left);
		return -1;
	}
	if (!bare && conf_domain_find(p->c, a.domain) == NULL) {
		perr(p,
		     "alias \"%s\" is for %s, which is not a local domain "
		     "(add [domain \"%s\"] or remove the alias)",
		     left, a.domain, a.domain);
		return -1;
	}
	snprintf(key, keylen, "%s%s%s", lk, bare ? "" : "@",
		 bare ? "" : a.domain);
	return 0;
}

static int
alias_targets(struct parser *p, char *right, struct conf_alias *al)
{
	char *tok, buf[ADDR_PATH_MAX + 2];
	struct mailaddr a;
	enum addr_err e;

	while ((tok = next_token(&right)) != NULL) {
		if (al->nto == CONF_ALIAS_TARGETS_MAX) {
			perr(p, "too many targets (at most %d)",
			     CONF_ALIAS_TARGETS_MAX);
			return -1;
		}
		e = addr_parse_mailbox(tok, strlen(tok), 0, &a);
		if (e != ADDR_OK) {
			perr(p,
			     "bad target \"%s\": %s (expected an address "
			     "like user@example.com)",
			     tok, addr_strerror(e));
			return -1;
		}
		addr_format(&a, buf, sizeof(buf));
		strv_push(&al->to, &al->nto, buf);
	}
	if (al->nto == 0) {
		perr(p, "alias without targets (expected \"alias: target, "
			"...\")");
		return -1;
	}
	return 0;
}

static int
alias_line(struct parser *p, char *s, void *arg)
{
	struct alias_set *set = arg;
	char *colon = alias_colon(s), key[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];
	struct alias_tmp *t;

	if (colon == NULL) {
		perr(p, "expected \"local@domain: target, ...\"");
		return -1;
	}
	*colon = '\0';
	if (alias_key(p, trim(s), key, sizeof(key)) < 0)
		return -1;
	set->v = vec_grow(set->v, set->n, sizeof(*set->v));
	t = &set->v[set->n++];
	memset(t, 0, sizeof(*t));
	t->line = p->line;
	t->a.from = xstrdup(key);
	return alias_targets(p, colon + 1, &t->a);
}

static int
cmp_alias_tmp(const void *a, const void *b)
{
	const struct alias_tmp *x = a, *y = b;
	int r = strcmp(x->a.from, y->a.from);

	return r ? r : (x->line > y->line) - (x->line < y->line);
}

/* Sort, refuse duplicates, move into c. */
static int
aliases_commit(struct parser *p, struct alias_set *set)
{
	struct conf *c = p->c;

	qsort(set->v, set->n, sizeof(*set->v), cmp_alias_tmp);
	for (size_t i = 1; i < set->n; i++) {
		if (strcmp(set->v[i].a.from, set->v[i - 1].a.from) == 0) {
			p->line = set->v[i].line;
			perr(p, "duplicate alias \"%s\" (first at line %d)",
			     set->v[i].a.from, set->v[i - 1].line);
			return -1;
		}
	}
	c->aliases = xcalloc(set->n, sizeof(*c->aliases));
	for (size_t i = 0; i < set->n; i++) {
		c->aliases[i] = set->v[i].a;
		set->v[i].a.from = NULL;
		set->v[i].a.to = NULL;
		set->v[i].a.nto = 0;
	}
	c->naliases = set->n;
	return 0;
}

static int
load_aliases(struct parser *p)
{
	struct alias_set set = {NULL, 0};
	int r;

	r = table_each(p, "[server] aliases", p->c->aliases_file,
		       p->c->aliases_line, alias_line, &set);
	if (r == 0)
		r = aliases_commit(p, &set);
	for (size_t i = 0; i < set.n; i++) {
		xfree(set.v[i].a.from);
		strv_free(set.v[i].a.to, set.v[i].a.nto);
	}
	xfree(set.v);
	return r;
}

/* The first line of the password file (the file itself is the secret). */
static int
load_password(struct parser *p, struct conf_route *r)
{
	size_t len;
	char *text, *nl, what[320];

	snprintf(what, sizeof(what), "[route \"%s\"] auth-password-file",
		 r->name);
	text = read_named(p, what, r->auth_password_file,
			  r->auth_password_file_line, &len);
	if (text == NULL)
		return -1;
	text[len] = '\0';
	if ((nl = strpbrk(text, "\r\n")) != NULL)
		*nl = '\0';
	if (text[0] == '\0') {
		perr(p, "empty password file for [route \"%s\"]", r->name);
		xfree(text);
		return -1;
	}
	r->auth_password = xstrdup(text);
	explicit_bzero(text, len);
	xfree(text);
	return 0;
}

/* srs-secret-file: each non-empty line (trimmed) is a secret; the first
 * signs, all verify. The file is a secret: its bytes are wiped. */
static int
load_srs_secrets(struct parser *p)
{
	struct conf *c = p->c;
	size_t len;
	char *text, *line, *next;
	int r = 0;

	text = read_named(p, "[server] srs-secret-file", c->srs_secret_file,
			  c->srs_secret_file_line, &len);
	if (text == NULL)
		return -1;
	text[len] = '\0';
	if (memchr(text, '\0', len) != NULL) {
		perr(p, "NUL byte in the SRS secret file");
		r = -1;
	}
	for (line = text; r == 0 && line != NULL; line = next) {
		char *s;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		p->line++;
		s = trim(line);
		if (*s == '\0')
			continue;
		if (strlen(s) < CONF_SRS_SECRET_MIN) {
			perr(p,
			     "SRS secret shorter than %d octets (make one "
			     "with `head -c 24 /dev/urandom | base64`)",
			     CONF_SRS_SECRET_MIN);
			r = -1;
		} else if (c->nsrs_secrets == CONF_SRS_SECRETS_MAX) {
			perr(p, "too many SRS secrets (at most %d)",
			     CONF_SRS_SECRETS_MAX);
			r = -1;
		} else {
			strv_push(&c->srs_secrets, &c->nsrs_secrets, s);
		}
	}
	if (r == 0 && c->nsrs_secrets == 0) {
		p->line = 0;
		perr(p, "no secret in the SRS secret file (one per line)");
		r = -1;
	}
	explicit_bzero(text, len);
	xfree(text);
	return r;
}

/* A CA store that verify = ca will use must be readable now, not at
 * the first delivery. */
static int
check_ca(struct parser *p, const char *path, int line, const char *where)
{
	struct stat st;

	p->name = p->c->path;
	p->line = line;
	if (stat(path, &st) < 0 || access(path, R_OK) < 0) {
		perr(p, "%s: ca %s: %s", where, path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		perr(p, "%s: ca %s is neither a file nor a directory", where,
		     path);
		return -1;
	}
	return 0;
}

static int
check_cas(struct parser *p)
{
	const struct conf *c = p->c;
	char where[300];

	if (c->delivery_verify != CONF_VERIFY_NONE &&
	    check_ca(p, c->delivery_ca, c->delivery_ca_line, "[delivery]") < 0)
		return -1;
	for (size_t i = 0; i < c->nroutes; i++) {
		const struct conf_route *r = &c->routes[i];
		int line = r->ca ? r->ca_line : c->delivery_ca_line;
		if (r->verify == CONF_VERIFY_NONE)
			continue;
		snprintf(where, sizeof(where), "[route \"%s\"]", r->name);
		if (check_ca(p, r->ca ? r->ca : c->delivery_ca,
			     line ? line : r->line, where) < 0)
			return -1;
	}
	return 0;
}

/* A file the lookup role reads at start (as root, before dropping). */
static int
check_dns_file(struct parser *p, const char *key, const char *path, int line)
{
	struct stat st;

	p->name = p->c->path;
	p->line = line;
	if (stat(path, &st) < 0 || access(path, R_OK) < 0) {
		perr(p, "[dns] %s %s: %s", key, path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		perr(p, "[dns] %s %s is not a file", key, path);
		return -1;
	}
	return 0;
}

static int
check_dns(struct parser *p)
{
	const struct conf *c = p->c;

	if (c->dns_resolver == CONF_RESOLVER_RECURSIVE && c->ndns_servers) {
		p->name = c->path;
		p->line = c->dns_resolver_line;
		perr(p, "resolver = recursive asks the root servers itself: "
			"remove [dns] servers, or use resolver = forward");
		return -1;
	}
	/* the key's own line; for a default, the key that needs the file */
	if (c->dns_dnssec == CONF_DNSSEC_VALIDATE &&
	    check_dns_file(p, "trust-anchor-file", c->dns_trust_anchor,
			   c->dns_trust_anchor_line ? c->dns_trust_anchor_line
						    : c->dns_dnssec_line) < 0)
		return -1;
	if (c->dns_resolver == CONF_RESOLVER_RECURSIVE && c->dns_root_hints &&
	    check_dns_file(p, "root-hints", c->dns_root_hints,
			   c->dns_root_hints_line ? c->dns_root_hints_line
						  : c->dns_resolver_line) < 0)
		return -1;
	return 0;
}

int
conf_check_key_files(const struct conf *c, char *err, size_t errlen)
{
	struct parser p = {.name = c->path, .err = err, .errlen = errlen};
	struct stat st;

	for (size_t i = 0; i < c->ndkim; i++) {
		const struct conf_dkim *k = &c->dkim[i];
		p.line = k->key_line ? k->key_line : k->line;
		if (stat(k->key_file, &st) < 0) {
			perr(&p, "[dkim \"%s\"] key %s: %s", k->domain,
			     k->key_file, strerror(errno));
			return -1;
		}
		if (!S_ISREG(st.st_mode)) {
			perr(&p, "[dkim \"%s\"] key %s is not a file",
			     k->domain, k->key_file);
			return -1;
		}
	}
	return 0;
}

static int
load_tables(struct parser *p)
{
	struct conf *c = p->c;

	for (size_t i = 0; i < c->ndomains; i++) {
		struct conf_domain *d = &c->domains[i];

		char what[320];

		if (d->users_file == NULL)
			continue;
		snprintf(what, sizeof(what), "[domain \"%s\"] users-file",
			 d->name);
		if (table_each(p, what, d->users_file, d->users_file_line,
			       users_line, d) < 0)
			return -1;
		users_sort(d);
	}
	if (c->aliases_file && load_aliases(p) < 0)
		return -1;
	for (size_t i = 0; i < c->nroutes; i++)
		if (c->routes[i].auth_password_file &&
		    load_password(p, &c->routes[i]) < 0)
			return -1;
	if (c->srs_secret_file && load_srs_secrets(p) < 0)
		return -1;
	if (check_dns(p) < 0)
		return -1;
	return check_cas(p);
}

struct conf *
conf_load_text(const char *path, const char *text, size_t len, char *err,
	       size_t errlen)
{
	struct parser p = {.name = path, .err = err, .errlen = errlen};
	struct conf *c = conf_parse_text(path, text, len, err, errlen);

	if (c == NULL)
		return NULL;
	p.c = c;
	if (load_tables(&p) < 0) {
		conf_free(c);
		return NULL;
	}
	return c;
}

struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
	struct parser p = {.err = err, .errlen = errlen};
	struct conf *c;
	size_t len;
	char *text;

	if (errlen)
		err[0] = '\0';
	if (path == NULL)
		return conf_parse_text("(built-in)", conf_default_text,
				       sizeof(conf_default_text) - 1, err,
				       errlen);
	p.name = path;
	if ((text = read_file(&p, NULL, path, &len)) == NULL)
		return NULL;
	c = conf_parse_text(path, text, len, err, errlen);
	xfree(text);
	if (c == NULL)
		return NULL;
	p.c = c;
	if (load_tables(&p) < 0) {
		conf_free(c);
		return NULL;
	}
	return c;
}

/* ---- dump ------------------------------------------------------------ */

/* A value, quoted when trimming or quote parsing would change it. */
static int
dump_kv(struct buf *b, const char *key, const char *val)
{
	size_t n = strlen(val);
	bool q = n == 0 || val[0] == '"' || is_ws(val[0]) || is_ws(val[n - 1]);
	int r = buf_addf(b, "%s = ", key);

	if (!q)
		return r ? r : buf_addf(b, "%s\n", val);
	r = r ? r : buf_addc(b, '"');
	for (; *val && r == 0; val++) {
		if (*val == '"' || *val == '\\')
			r = buf_addc(b, '\\');
		r = r ? r : buf_addc(b, *val);
	}
	return r ? r : buf_adds(b, "\"\n");
}

static void
fmt_scaled(char *dst, size_t len, uint64_t v, const char *units,
	   const uint64_t *mult, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v != 0 && v % mult[i] == 0) {
			snprintf(dst, len, "%llu%c",
				 (unsigned long long)(v / mult[i]), units[i]);
			return;
		}
	}
	snprintf(dst, len, "%llu", (unsigned long long)v);
}

static void
fmt_size(char *dst, size_t len, uint64_t v)
{
	static const uint64_t m[] = {1ull << 30, 1ull << 20, 1ull << 10};

	fmt_scaled(dst, len, v, "GMK", m, 3);
}

static void
fmt_duration(char *dst, size_t len, uint64_t v)
{
	static const uint64_t m[] = {7 * DAY, DAY, 3600, 60, 1};

	fmt_scaled(dst, len, v, "wdhms", m, 5);
}

static int
dump_size(struct buf *b, const char *key, uint64_t v)
{
	char s[32];

	fmt_size(s, sizeof(s), v);
	return dump_kv(b, key, s);
}

static int
dump_duration(struct buf *b, const char *key, uint64_t v)
{
	char s[32];

	fmt_duration(s, sizeof(s), v);
	return dump_kv(b, key, s);
}

static int
dump_uint(struct buf *b, const char *key, uint64_t v)
{
	return buf_addf(b, "%s = %llu\n", key, (unsigned long long)v);
}

/* A list joined by spaces; items never hold spaces except quoted
 * local parts, which are safe inside the list syntax. */
static int
dump_list(struct buf *b, const char *key, char *const *v, size_t n)
{
	int r = n ? buf_addf(b, "%s =", key) : dump_kv(b, key, "");

	for (size_t i = 0; i < n && r == 0; i++)
		r = buf_addf(b, " %s", v[i]);
	return r || n == 0 ? r : buf_addc(b, '\n');
}

static int
dump_nets(struct buf *b, const struct conf *c)
{
	int r = c->ntrusted ? buf_adds(b, "trusted-networks =")
			    : dump_kv(b, "trusted-networks", "");

	for (size_t i = 0; i < c->ntrusted && r == 0; i++) {
		const struct sockaddr_storage *ss = &c->trusted[i].net;
		const void *a = &((const struct sockaddr_in *)ss)->sin_addr;
		char s[INET6_ADDRSTRLEN];

		if (ss->ss_family == AF_INET6)
			a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (inet_ntop(ss->ss_family, a, s, sizeof(s)) == NULL)
			return -1;
		r = buf_addf(b, " %s/%d", s, c->trusted[i].prefix);
	}
	return r || c->ntrusted == 0 ? r : buf_addc(b, '\n');
}

static int
dump_opt(struct buf *b, const char *key, const char *v)
{
	return dump_kv(b, key, v ? v : "");
}

static int
dump_server(const struct conf *c, struct buf *b)
{
	int r = buf_adds(b, "[server]\n");

	r = r ? r : dump_kv(b, "hostname", c->hostname);
	r = r ? r : dump_kv(b, "spool", c->spool);
	r = r ? r : dump_kv(b, "user", c->user);
	r = r ? r : dump_kv(b, "queue-user", c->queue_user);
	r = r ? r : dump_kv(b, "mail-user", c->mail_user);
	r = r ? r : dump_kv(b, "keys-user", c->keys_user);
	r = r ? r : dump_uint(b, "smtp-in-processes", c->smtp_in_procs);
	r = r ? r : dump_kv(b, "log-level", log_level_name(c->log_level));
	r = r ? r : dump_kv(b, "log-to", c->log_syslog ? "syslog" : "stderr");
	r = r ? r : dump_opt(b, "aliases", c->aliases_file);
	r = r ? r : dump_opt(b, "postmaster", c->postmaster);
	r = r ? r : dump_nets(b, c);
	r = r ? r : dump_opt(b, "srs-secret-file", c->srs_secret_file);
	r = r ? r : dump_opt(b, "srs-domain", c->srs_domain);
	return r ? r : buf_addf(b, "srs-max-age = %ud\n", c->srs_max_age);
}

static int
dump_smtp(const struct conf *c, struct buf *b)
{
	int r = buf_adds(b, "\n[smtp]\n");

	r = r ? r : dump_size(b, "max-message-size", c->max_message_size);
	r = r ? r : dump_uint(b, "max-recipients", c->max_recipients);
	r = r ? r : dump_uint(b, "max-errors", c->max_errors);
	r = r ? r : dump_uint(b, "max-hops", c->max_hops);
	r = r ? r : dump_duration(b, "timeout-command", c->timeout_command);
	r = r ? r
	      : dump_duration(b, "timeout-data-block", c->timeout_data_block);
	r = r ? r : dump_duration(b, "timeout-data-end", c->timeout_data_end);
	r = r ? r : dump_opt(b, "authserv-id", c->authserv_id);
	r = r ? r : dump_duration(b, "auth-eod-budget", c->auth_eod_budget);
	r = r ? r
	      : dump_kv(b, "spf-policy", c->spf_policy ? "reject" : "record");
	return r ? r
		 : dump_kv(b, "dmarc-policy",
			   c->dmarc_policy ? "enforce" : "record");
}

static int
dump_queue(const struct conf *c, struct buf *b)
{
	int r = buf_adds(b, "\n[queue]\nretry =");
	char s[32];

	for (size_t i = 0; i < c->nretry && r == 0; i++) {
		fmt_duration(s, sizeof(s), c->retry[i]);
		r = buf_addf(b, " %s", s);
	}
	r = r ? r : buf_addc(b, '\n');
	r = r ? r : dump_duration(b, "warn-after", c->warn_after);
	r = r ? r : dump_duration(b, "give-up-after", c->give_up_after);
	r = r ? r : dump_size(b, "inline-body-max", c->inline_body_max);
	r = r ? r : dump_size(b, "bounce-size-limit", c->bounce_size_limit);
	r = r ? r : dump_size(b, "min-free", c->min_free);
	r = r ? r
	      : dump_kv(b, "dmarc-reports", c->dmarc_reports ? "on" : "off");
	r = r ? r
	      : dump_duration(b, "dmarc-report-interval",
			      c->dmarc_report_interval);
	r = r ? r : dump_opt(b, "dmarc-report-org", c->dmarc_report_org);
	r = r ? r : dump_opt(b, "dmarc-report-from", c->dmarc_report_from);
	r = r ? r : buf_adds(b, "\n[dns]\n");
	r = r ? r : dump_list(b, "servers", c->dns_servers, c->ndns_servers);
	r = r ? r : dump_uint(b, "outgoing-range", c->dns_outgoing_range);
	r = r ? r : dump_uint(b, "outgoing-num-tcp", c->dns_outgoing_num_tcp);
	r = r ? r : dump_size(b, "msg-cache-size", c->dns_msg_cache_size);
	r = r ? r : dump_size(b, "rrset-cache-size", c->dns_rrset_cache_size);
	r = r ? r
	      : dump_kv(b, "resolver",
			c->dns_resolver ? "recursive" : "forward");
	r = r ? r : dump_kv(b, "dnssec", c->dns_dnssec ? "validate" : "no");
	r = r ? r : dump_kv(b, "trust-anchor-file", c->dns_trust_anchor);
	return r ? r : dump_opt(b, "root-hints", c->dns_root_hints);
}

static int
dump_delivery(const struct conf *c, struct buf *b)
{
	int r = buf_adds(b, "\n[delivery]\n");

	r = r ? r : dump_opt(b, "helo", c->delivery_helo);
	r = r ? r : dump_opt(b, "helo-ipv6", c->delivery_helo6);
	r = r ? r : dump_kv(b, "tls", conf_tls_names[c->delivery_tls]);
	r = r ? r : dump_kv(b, "verify", conf_verify_names[c->delivery_verify]);
	r = r ? r : dump_kv(b, "ca", c->delivery_ca);
	r = r ? r : dump_kv(b, "ip", conf_ip_names[c->delivery_ip]);
	r = r ? r : dump_uint(b, "port", c->delivery_port);
	r = r ? r : dump_uint(b, "max-addresses", c->delivery_max_addresses);
	r = r ? r : dump_uint(b, "processes", c->smtp_out_procs);
	r = r ? r : dump_opt(b, "source-ipv4", c->delivery_source4);
	r = r ? r : dump_opt(b, "source-ipv6", c->delivery_source6);
	r = r ? r
	      : dump_duration(b, "timeout-connect",
			      c->delivery_timeout_connect);
	r = r ? r
	      : dump_duration(b, "timeout-greeting",
			      c->delivery_timeout_greeting);
	r = r ? r
	      : dump_duration(b, "timeout-command",
			      c->delivery_timeout_command);
	r = r ? r
	      : dump_duration(b, "timeout-data-end",
			      c->delivery_timeout_data_end);
	r = r ? r
	      : dump_duration(b, "max-attempt-time",
			      c->delivery_max_attempt_time);
	r = r ? r
	      : dump_uint(b, "ipv6-suspend-after",
			  c->delivery_v6_suspend_after);
	r = r ? r
	      : dump_duration(b, "ipv6-suspend-for",
			      c->delivery_v6_suspend_for);
	r = r ? r
	      : dump_uint(b, "destination-concurrency", c->delivery_dest_conc);
	r = r ? r
	      : dump_uint(b, "destination-concurrency-max",
			  c->delivery_dest_conc_max);
	r = r ? r : dump_uint(b, "dead-after", c->delivery_dead_after);
	r = r ? r : dump_uint(b, "max-sessions", c->delivery_max_sessions);
	r = r ? r
	      : dump_uint(b, "connection-max-messages",
			  c->delivery_conn_max_msgs);
	r = r ? r
	      : dump_duration(b, "connection-max-age",
			      c->delivery_conn_max_age);
	r = r ? r
	      : dump_duration(b, "connection-idle-time", c->delivery_conn_idle);
	return r ? r
		 : dump_duration(b, "ipv4-first-for", c->delivery_v4first_for);
}

/* A section header with its name quoted. */
static int
dump_header(struct buf *b, const char *sect, const char *name)
{
	int r = buf_addf(b, "\n[%s \"", sect);

	for (; *name && r == 0; name++) {
		if (*name == '"' || *name == '\\')
			r = buf_addc(b, '\\');
		r = r ? r : buf_addc(b, *name);
	}
	return r ? r : buf_adds(b, "\"]\n");
}

static int
dump_domain(const struct conf_domain *d, struct buf *b)
{
	int r = dump_header(b, "domain", d->name);

	r = r ? r : dump_kv(b, "mailboxes", d->mailboxes);
	r = r ? r : dump_list(b, "users", d->users, d->nusers);
	r = r ? r : dump_opt(b, "users-file", d->users_file);
	return r ? r : dump_opt(b, "catch-all", d->catch_all);
}

int
conf_dump(const struct conf *c, struct buf *out)
{
	int r = buf_addf(out, "# effective configuration from %s\n", c->path);

	r = r ? r : dump_server(c, out);
	r = r ? r : dump_smtp(c, out);
	r = r ? r : dump_queue(c, out);
	r = r ? r : dump_delivery(c, out);
	for (size_t i = 0; i < c->nlistens && r == 0; i++) {
		r = dump_header(out, "listen", c->listens[i].name);
		r = r ? r : dump_kv(out, "address", c->listens[i].address);
		if (c->listens[i].spf_policy >= 0)
			r = r ? r
			      : dump_kv(out, "spf-policy",
					c->listens[i].spf_policy ? "reject"
								 : "record");
		if (c->listens[i].dmarc_policy >= 0)
			r = r ? r
			      : dump_kv(out, "dmarc-policy",
					c->listens[i].dmarc_policy ? "enforce"
								   : "record");
	}
	for (size_t i = 0; i < c->ndomains && r == 0; i++)
		r = dump_domain(&c->domains[i], out);
	for (size_t i = 0; i < c->ndkim && r == 0; i++) {
		r = dump_header(out, "dkim", c->dkim[i].domain);
		r = r ? r : dump_kv(out, "selector", c->dkim[i].selector);
		r = r ? r : dump_kv(out, "key", c->dkim[i].key_file);
		r = r ? r
		      : dump_kv(out, "algorithm",
				c->dkim[i].algorithm ? "ed25519-sha256"
						     : "rsa-sha256");
	}
	for (size_t i = 0; i < c->nroutes && r == 0; i++) {
		const struct conf_route *rt = &c->routes[i];
		r = dump_header(out, "route", rt->name);
		r = r ? r : dump_kv(out, "via", rt->via);
		r = r ? r : dump_kv(out, "tls", conf_tls_names[rt->tls]);
		r = r ? r
		      : dump_kv(out, "verify", conf_verify_names[rt->verify]);
		if (rt->ca)
			r = r ? r : dump_kv(out, "ca", rt->ca);
		r = r ? r : dump_opt(out, "helo", rt->helo);
		r = r ? r : dump_opt(out, "helo-ipv6", rt->helo6);
		r = r ? r : dump_kv(out, "ip", conf_ip_names[rt->ip]);
		r = r ? r : dump_opt(out, "source-ipv4", rt->source4);
		r = r ? r : dump_opt(out, "source-ipv6", rt->source6);
		if (rt->auth_user) {
			r = r ? r : dump_kv(out, "auth-user", rt->auth_user);
			r = r ? r
			      : dump_kv(out, "auth-password-file",
					rt->auth_password_file);
		}
	}
	return r;
}

/* ---- lookups --------------------------------------------------------- */

const char *const conf_tls_names[] = {"none", "may", "must"};
const char *const conf_verify_names[] = {"none", "ca"};
const char *const conf_ip_names[] = {"any", "prefer-ipv4", "prefer-ipv6",
				     "ipv4-only", "ipv6-only"};

const struct conf_dkim *
conf_dkim_find(const struct conf *c, const char *domain)
{
	for (size_t i = 0; i < c->ndkim; i++)
		if (strcasecmp(c->dkim[i].domain, domain) == 0)
			return &c->dkim[i];
	return NULL;
}

const struct conf_route *
conf_route_find(const struct conf *c, const char *domain)
{
	const struct conf_route *best = NULL, *star = NULL;
	size_t dl = strlen(domain), bestlen = 0;

	for (size_t i = 0; i < c->nroutes; i++) {
		const struct conf_route *r = &c->routes[i];
		size_t nl = strlen(r->name);
		if (strcasecmp(r->name, domain) == 0)
			return r;
		if (strcmp(r->name, "*") == 0) {
			star = r;
			continue;
		}
		/* ".example.com" matches a.example.com, a.b.example.com */
		if (r->name[0] == '.' && dl > nl &&
		    strcasecmp(domain + dl - nl, r->name) == 0 &&
		    nl > bestlen) {
			best = r;
			bestlen = nl;
		}
	}
	return best ? best : star;
}

const struct conf_domain *
conf_domain_find(const struct conf *c, const char *domain)
{
	for (size_t i = 0; i < c->ndomains; i++)
		if (strcasecmp(c->domains[i].name, domain) == 0)
			return &c->domains[i];
	return NULL;
}

const char *
conf_dmarc_report_org(const struct conf *c)
{
	return c->dmarc_report_org ? c->dmarc_report_org : c->hostname;
}

const char *
conf_dmarc_report_from(const struct conf *c)
{
	return c->dmarc_report_from ? c->dmarc_report_from : c->hostname;
}

const char *
conf_srs_domain(const struct conf *c)
{
	return c->srs_domain ? c->srs_domain : c->hostname;
}

bool
conf_is_trusted(const struct conf *c, const struct sockaddr *sa)
{
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return false;
	for (size_t i = 0; i < c->ntrusted; i++)
		if (cidr_match(&c->trusted[i].net, c->trusted[i].prefix, sa))
			return true;
	return false;
}

const char *
conf_user_find(const struct conf_domain *d, const char *user)
{
	char *const *hit;

	if (d->nusers == 0)
		return NULL;
	hit = bsearch(&user, d->users, d->nusers, sizeof(*d->users), cmp_str);
	return hit ? *hit : NULL;
}

static int
cmp_alias_key(const void *k, const void *a)
{
	return strcmp(k, ((const struct conf_alias *)a)->from);
}

const struct conf_alias *
conf_alias_find(const struct conf *c, const char *key)
{
	if (c->naliases == 0)
		return NULL;
	return bsearch(key, c->aliases, c->naliases, sizeof(*c->aliases),
		       cmp_alias_key);
}

int
conf_local_key(const char *local, char *dst, size_t len)
{
	size_t n = strlen(local), w = 0;
	bool quoted = n >= 2 && local[0] == '"' && local[n - 1] == '"';

	if (quoted) {
		local++;
		n -= 2;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)local[i];

		if (quoted && ch == '\\' && i + 1 < n)
			ch = (unsigned char)local[++i];
		if (ch <= 0x20 || ch == 0x7f || strchr("/%@!", ch) != NULL)
			return -1;
		if (w + 1 >= len)
			return -1;
		dst[w++] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	if (w == 0)
		return -1;
	dst[w] = '\0';
	return 0;
}
