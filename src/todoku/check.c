/*
 * check — see check.h.
 */
#include "todoku/check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unbound-event.h>
#include <unbound.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "mail/conf.h"
#include "mail/dkim_sign.h"
#include "mail/dkim_verify.h"
#include "mail/dns_answer.h"
#include "mail/dns_msg.h"
#include "mail/spf.h"

#define EXIT_FAIL 1
#define EXIT_CONFIG 2
#define EXIT_USAGE 64

#define ANSWER_DATA_MAX (1u << 20) /* octets of records in one answer */

/* ---- options ---------------------------------------------------------- */

struct opts {
	const char *ip, *mail_from, *helo, *dns, *config, *file;
	const char *domain, *selector, *out;
	unsigned timeout;
	bool json, ed25519;
	bool has_mail_from;
};

static void
check_usage(FILE *f)
{
	fputs("usage: todoku check spf --ip ADDR --mail-from SENDER "
	      "[--helo NAME]\n"
	      "                        [--dns ADDR[:PORT]] [--timeout SECONDS] "
	      "[--json] [-c FILE]\n"
	      "       todoku check dkim [FILE|-] [--dns ADDR[:PORT]] "
	      "[--timeout SECONDS]\n"
	      "                        [--json] [-c FILE]\n"
	      "       todoku dkim keygen --domain DOMAIN --selector SELECTOR "
	      "[--ed25519]\n"
	      "                        [--out DIR]\n",
	      f);
}

/* The value of option argv[*i] ("--x V" or "--x=V"), or NULL. */
static const char *
opt_value(int argc, char **argv, int *i, const char *name)
{
	const char *a = argv[*i];
	size_t n = strlen(name);

	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		fprintf(stderr, "todoku: %s needs a value\n", name);
		return NULL;
	}
	return argv[++*i];
}

static int
is_opt(const char *a, const char *name)
{
	size_t n = strlen(name);

	return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

/*
 * Parse argv[first..]. allowed: the options this command takes, as
 * " --ip --helo " (with spaces around each). Returns 0 or -1 (message
 * printed).
 */
static int
opts_parse(int argc, char **argv, int first, const char *allowed,
	   struct opts *o)
{
	static const char *const valued[] = {
	    "--ip",	"--mail-from", "--helo", "--dns",     "-c",
	    "--config", "--domain",    "--out",	 "--timeout", "--selector",
	};
	char key[32];

	o->timeout = CHECK_TIMEOUT_DEFAULT;
	for (int i = first; i < argc; i++) {
		const char *a = argv[i], *v = NULL, *name = NULL;
		size_t alen = strcspn(a, "=");

		if (a[0] != '-' || strcmp(a, "-") == 0) {
			if (strstr(allowed, " FILE ") == NULL ||
			    o->file != NULL) {
				fprintf(stderr,
					"todoku: unexpected argument \"%s\"\n",
					a);
				return -1;
			}
			o->file = a;
			continue;
		}
		snprintf(key, sizeof(key), " %.*s ",
			 (int)(alen < 28 ? alen : 28), a);
		if (alen >= 28 || strstr(allowed, key) == NULL) {
			fprintf(stderr,
				"todoku: unknown option %s for this command\n",
				a);
			return -1;
		}
		if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(a, "--ed25519") == 0) {
			o->ed25519 = true;
			continue;
		}
		for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
			if (is_opt(a, valued[k]))
				name = valued[k];
		if (name == NULL ||
		    (v = opt_value(argc, argv, &i, name)) == NULL) {
			if (name == NULL)
				fprintf(stderr, "todoku: %s takes no value\n",
					a);
			return -1;
		}
		if (strcmp(name, "--ip") == 0) {
			o->ip = v;
		} else if (strcmp(name, "--mail-from") == 0) {
			o->mail_from = v;
			o->has_mail_from = true;
		} else if (strcmp(name, "--helo") == 0) {
			o->helo = v;
		} else if (strcmp(name, "--dns") == 0) {
			o->dns = v;
		} else if (strcmp(name, "-c") == 0 ||
			   strcmp(name, "--config") == 0) {
			o->config = v;
		} else if (strcmp(name, "--domain") == 0) {
			o->domain = v;
		} else if (strcmp(name, "--selector") == 0) {
			o->selector = v;
		} else if (strcmp(name, "--out") == 0) {
			o->out = v;
		} else if (strcmp(name, "--timeout") == 0) {
			uint64_t t;
			if (parse_u64(v, &t) < 0 || t == 0 || t > 3600) {
				fprintf(stderr,
					"todoku: --timeout wants whole seconds "
					"from 1 to 3600, not \"%s\"\n",
					v);
				return -1;
			}
			o->timeout = (unsigned)t;
		}
	}
	return 0;
}

/* ---- DNS through libunbound ------------------------------------------- */

struct dns_ctx {
	struct event_base *base;
	struct ub_ctx *ub;
	struct event *timer;
	bool timed_out;
};

/* "IP:PORT" / "[IPv6]:PORT" / "IP" -> libunbound's "IP@PORT". */
static int
forwarder_text(const char *s, char *fwd, size_t len)
{
	const char *colon = strrchr(s, ':');
	int n;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return -1;
		n = snprintf(fwd, len, "%.*s%s%s", (int)(end - s - 1), s + 1,
			     end[1] == ':' ? "@" : "",
			     end[1] == ':' ? end + 2 : "");
	} else if (colon != NULL && strchr(s, ':') == colon) {
		n = snprintf(fwd, len, "%.*s@%s", (int)(colon - s), s,
			     colon + 1);
	} else {
		n = snprintf(fwd, len, "%s", s);
	}
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_ctx *d = arg;

	d->timed_out = true;
	event_base_loopbreak(d->base);
}

static void
dns_close(struct dns_ctx *d)
{
	if (d->ub != NULL)
		ub_ctx_delete(d->ub);
	if (d->timer != NULL)
		event_free(d->timer);
	if (d->base != NULL)
		event_base_free(d->base);
	memset(d, 0, sizeof(*d));
}

/*
 * Set up the event base and the resolver. Returns 0, or the exit code
 * (message printed).
 */
static int
dns_open(struct dns_ctx *d, const struct opts *o)
{
	char err[CONF_ERR_MAX], fwd[300];
	struct conf *c = NULL;
	int rc = 0;
	struct timeval tv = {.tv_sec = o->timeout};

	memset(d, 0, sizeof(*d));
	if (o->dns == NULL &&
	    (c = conf_load(o->config, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return EXIT_CONFIG;
	}
	if ((d->base = event_base_new()) == NULL ||
	    (d->timer = evtimer_new(d->base, dns_timer_cb, d)) == NULL ||
	    (d->ub = ub_ctx_create_event(d->base)) == NULL) {
		fprintf(stderr, "todoku: cannot set up the DNS resolver "
				"(libevent/libunbound)\n");
		conf_free(c);
		dns_close(d);
		return EXIT_FAIL;
	}
	ub_ctx_set_option(d->ub, "do-ip6:", "yes");
	/* like the lookup role: the special-use "test." goes to the servers
	 * instead of being answered NXDOMAIN by libunbound itself */
	ub_ctx_set_option(d->ub, "local-zone:", "test. transparent");
	if (o->dns != NULL) {
		if (forwarder_text(o->dns, fwd, sizeof(fwd)) < 0 ||
		    (rc = ub_ctx_set_fwd(d->ub, fwd)) != 0) {
			fprintf(stderr,
				"todoku: --dns %s: %s (want an IP address, "
				"optionally with :PORT, e.g. 127.0.0.1:53 or "
				"[::1]:53)\n",
				o->dns, rc ? ub_strerror(rc) : "bad address");
			dns_close(d);
			return EXIT_USAGE;
		}
	} else if (c->ndns_servers > 0) {
		for (size_t i = 0; i < c->ndns_servers && rc == 0; i++) {
			if (forwarder_text(c->dns_servers[i], fwd,
					   sizeof(fwd)) < 0)
				rc = UB_SYNTAX;
			else
				rc = ub_ctx_set_fwd(d->ub, fwd);
			if (rc != 0)
				fprintf(stderr,
					"todoku: %s: [dns] servers %s: %s\n",
					c->path, c->dns_servers[i],
					ub_strerror(rc));
		}
	} else if ((rc = ub_ctx_resolvconf(d->ub, NULL)) != 0) {
		fprintf(stderr,
			"todoku: /etc/resolv.conf: %s (use --dns ADDR or "
			"[dns] servers)\n",
			ub_strerror(rc));
	}
	conf_free(c);
	if (rc != 0) {
		dns_close(d);
		return EXIT_FAIL;
	}
	evtimer_add(d->timer, &tv);
	return 0;
}

enum ans { ANS_RECORDS, ANS_NODATA, ANS_NXDOMAIN, ANS_TEMPFAIL };

/* The shared converter (mail/dns_answer.h), in this file's terms. */
static enum ans
answer_records(int rcode, void *pkt, int len, int sec, uint16_t qtype,
	       struct buf *data, size_t *off, size_t *rlen, size_t *n)
{
	switch (dns_answer_records(rcode, pkt, len > 0 ? (size_t)len : 0, sec,
				   qtype, data, off, rlen, n)) {
	case DNS_ANS_RECORDS:
		return ANS_RECORDS;
	case DNS_ANS_NODATA:
		return ANS_NODATA;
	case DNS_ANS_NXDOMAIN:
		return ANS_NXDOMAIN;
	default:
		return ANS_TEMPFAIL;
	}
}

/* ---- check spf -------------------------------------------------------- */

struct spf_run {
	struct dns_ctx *d;
	struct spf *s;
	enum spf_step st;
	int qtype;
};

static void spf_next(struct spf_run *r);

static void
spf_dns_cb(void *arg, int rcode, void *pkt, int len, int sec, char *why,
	   int ratelimited)
{
	static size_t off[DNS_MSG_RR_MAX], rlen[DNS_MSG_RR_MAX];
	static struct spf_rdata rd[DNS_MSG_RR_MAX];
	struct spf_run *r = arg;
	struct spf_answer a = {0};
	struct buf data;
	size_t n = DNS_MSG_RR_MAX;

	if (r->st != SPF_STEP_QUERY)
		return;
	buf_init(&data, ANSWER_DATA_MAX);
	switch (answer_records(rcode, pkt, len, sec, (uint16_t)r->qtype, &data,
			       off, rlen, &n)) {
	case ANS_RECORDS:
		for (size_t i = 0; i < n; i++) {
			rd[i].data = data.data + off[i];
			rd[i].len = rlen[i];
		}
		a.rcode = SPF_DNS_ANSWER;
		a.count = n;
		a.rr = rd;
		break;
	case ANS_NODATA:
		a.rcode = SPF_DNS_NODATA;
		break;
	case ANS_NXDOMAIN:
		a.rcode = SPF_DNS_NXDOMAIN;
		break;
	case ANS_TEMPFAIL:
		a.rcode = SPF_DNS_TEMPFAIL;
		break;
	}
	r->st = spf_resume(r->s, &a);
	buf_free(&data);
	spf_next(r);
}

/* Ask the evaluator's next question, or stop the loop when it is done.
 * A libunbound answer may arrive inside ub_resolve_event (cache): then
 * the callback has moved on already and this call returns. */
static void
spf_next(struct spf_run *r)
{
	static const int types[] = {
	    [SPF_Q_TXT] = DNS_T_TXT,   [SPF_Q_A] = DNS_T_A,
	    [SPF_Q_AAAA] = DNS_T_AAAA, [SPF_Q_MX] = DNS_T_MX,
	    [SPF_Q_PTR] = DNS_T_PTR,
	};

	while (r->st == SPF_STEP_QUERY) {
		const struct spf_query *q = spf_query(r->s);
		struct spf_answer fail = {.rcode = SPF_DNS_TEMPFAIL};
		int id;

		r->qtype = types[q->type];
		if (ub_resolve_event(r->d->ub, q->name, r->qtype, DNS_C_IN, r,
				     spf_dns_cb, &id) == 0)
			return;
		/* a name libunbound refuses: a failed lookup */
		r->st = spf_resume(r->s, &fail);
	}
	event_base_loopbreak(r->d->base);
}

static void
spf_print(const struct spf_run *r, const struct opts *o)
{
	enum spf_result res = spf_result(r->s);
	const char *exp = spf_explanation(r->s);
	struct buf b;

	buf_init(&b, 64 * 1024);
	if (o->json) {
		buf_adds(&b, "{\"result\": ");
		json_str(&b, spf_result_name(res));
		buf_adds(&b, ", \"reason\": ");
		json_str(&b, spf_reason(r->s));
		buf_adds(&b, ", \"mechanism\": ");
		json_str(&b, spf_mechanism(r->s));
		buf_adds(&b, ", \"domain\": ");
		json_str(&b, spf_domain(r->s));
		buf_adds(&b, ", \"explanation\": ");
		if (exp != NULL)
			json_str(&b, exp);
		else
			buf_adds(&b, "null");
		buf_adds(&b, ", \"ip\": ");
		json_str(&b, o->ip);
		buf_adds(&b, ", \"mail_from\": ");
		json_str(&b, o->mail_from);
		buf_adds(&b, ", \"helo\": ");
		if (o->helo != NULL)
			json_str(&b, o->helo);
		else
			buf_adds(&b, "null");
		buf_addf(&b, ", \"dns_queries\": %u}\n", spf_queries(r->s));
	} else {
		buf_addf(&b, "result: %s\n", spf_result_name(res));
		buf_addf(&b, "reason: %s\n", spf_reason(r->s));
		if (spf_domain(r->s)[0] != '\0')
			buf_addf(&b, "domain: %s\n", spf_domain(r->s));
		if (spf_mechanism(r->s)[0] != '\0')
			buf_addf(&b, "mechanism: %s\n", spf_mechanism(r->s));
		if (exp != NULL)
			buf_addf(&b, "explanation: %s\n", exp);
		buf_addf(&b, "dns-queries: %u\n", spf_queries(r->s));
	}
	fwrite(b.data, 1, b.len, stdout);
	buf_free(&b);
}

static int
cmd_spf(int argc, char **argv)
{
	struct opts o = {0};
	struct spf_opts so = {0};
	struct spf_run r = {0};
	struct dns_ctx d;
	uint8_t tmp[16];
	char why[64];
	int rc;

	if (opts_parse(argc, argv, 3,
		       " --ip --mail-from --helo --dns --timeout --json -c "
		       "--config ",
		       &o) < 0)
		return EXIT_USAGE;
	if (o.ip == NULL) {
		fprintf(stderr, "todoku: check spf needs --ip ADDR, the "
				"address of the sending client\n");
		return EXIT_USAGE;
	}
	if (inet_pton(AF_INET, o.ip, tmp) != 1 &&
	    inet_pton(AF_INET6, o.ip, tmp) != 1) {
		fprintf(stderr,
			"todoku: --ip %s is not an IPv4 or IPv6 address "
			"(e.g. 192.0.2.1 or 2001:db8::1)\n",
			o.ip);
		return EXIT_USAGE;
	}
	if (!o.has_mail_from) {
		fprintf(stderr, "todoku: check spf needs --mail-from SENDER "
				"(user@domain, or \"\" for the null sender "
				"with --helo NAME)\n");
		return EXIT_USAGE;
	}
	if (strcmp(o.mail_from, "<>") == 0)
		o.mail_from = "";
	if (o.mail_from[0] == '\0' && (o.helo == NULL || o.helo[0] == '\0')) {
		fprintf(stderr, "todoku: with the null sender (--mail-from "
				"\"\") SPF checks the HELO name: give "
				"--helo NAME\n");
		return EXIT_USAGE;
	}
	if ((rc = dns_open(&d, &o)) != 0)
		return rc;
	if ((r.s = spf_new()) == NULL) {
		dns_close(&d);
		fprintf(stderr, "todoku: out of memory\n");
		return EXIT_FAIL;
	}
	r.d = &d;
	so.now = (int64_t)time(NULL);
	so.receiver = NULL;
	r.st = spf_start(r.s, o.ip, NULL, o.mail_from,
			 o.helo != NULL ? o.helo : "unknown", &so);
	spf_next(&r);
	if (r.st == SPF_STEP_QUERY)
		event_base_dispatch(d.base);
	if (r.st == SPF_STEP_QUERY) {
		snprintf(why, sizeof(why), "no answer within %u s%s", o.timeout,
			 d.timed_out ? "" : " (resolver stopped)");
		spf_abort(r.s, why);
		r.st = SPF_STEP_DONE;
	}
	spf_print(&r, &o);
	spf_free(r.s);
	dns_close(&d);
	return 0;
}

/* ---- check dkim ------------------------------------------------------- */

struct dkim_run {
	struct dns_ctx *d;
	struct dkim_verifier *v;
	size_t pending;
	bool finished;
};

struct dkim_q {
	struct dkim_run *r;
	size_t i;
};

static void
dkim_dns_cb(void *arg, int rcode, void *pkt, int len, int sec, char *why,
	    int ratelimited)
{
	static size_t off[DNS_MSG_RR_MAX], rlen[DNS_MSG_RR_MAX];
	static struct dkim_slice sl[DNS_MSG_RR_MAX];
	struct dkim_q *q = arg;
	struct dkim_run *r = q->r;
	struct buf data;
	size_t n = DNS_MSG_RR_MAX;

	if (r->finished)
		return; /* too late: q is freed with the run */
	buf_init(&data, ANSWER_DATA_MAX);
	switch (answer_records(rcode, pkt, len, sec, DNS_T_TXT, &data, off,
			       rlen, &n)) {
	case ANS_RECORDS:
		for (size_t k = 0; k < n; k++) {
			sl[k].p = data.data + off[k];
			sl[k].n = rlen[k];
		}
		dkim_verify_answer(r->v, q->i, DKIM_DNS_OK, sl, n);
		break;
	case ANS_NODATA:
		dkim_verify_answer(r->v, q->i, DKIM_DNS_OK, NULL, 0);
		break;
	case ANS_NXDOMAIN:
		dkim_verify_answer(r->v, q->i, DKIM_DNS_NXDOMAIN, NULL, 0);
		break;
	case ANS_TEMPFAIL:
		dkim_verify_answer(r->v, q->i, DKIM_DNS_TEMPFAIL, NULL, 0);
		break;
	}
	buf_free(&data);
	if (--r->pending == 0)
		event_base_loopbreak(r->d->base);
}

/* Read the message, LF line ends made CRLF (a CR already there stays). */
static int
read_message(const char *file, struct buf *msg)
{
	FILE *f = stdin;
	char chunk[65536];
	size_t n;
	int prev = 0, r = 0;

	if (file != NULL && strcmp(file, "-") != 0 &&
	    (f = fopen(file, "rb")) == NULL) {
		fprintf(stderr, "todoku: cannot read %s: %s\n", file,
			strerror(errno));
		return -1;
	}
	while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		for (size_t i = 0; i < n && r == 0; i++) {
			if (chunk[i] == '\n' && prev != '\r')
				r = buf_addc(msg, '\r');
			if (r == 0)
				r = buf_addc(msg, chunk[i]);
			prev = (unsigned char)chunk[i];
		}
	}
	if (r != 0)
		fprintf(stderr, "todoku: %s: larger than %u MiB\n",
			file ? file : "stdin", CHECK_MESSAGE_MAX >> 20);
	else if (ferror(f)) {
		fprintf(stderr, "todoku: cannot read %s: %s\n",
			file ? file : "stdin", strerror(errno));
		r = -1;
	}
	if (f != stdin)
		fclose(f);
	return r;
}

static void
dkim_print(const struct dkim_verifier *v, const struct opts *o)
{
	size_t n = dkim_verify_nsigs(v);
	struct buf b;

	buf_init(&b, 1024 * 1024);
	if (o->json)
		buf_adds(&b, "{\"signatures\": [");
	else if (n == 0)
		buf_adds(&b, "none: the message has no DKIM-Signature\n");
	for (size_t i = 0; i < n; i++) {
		const struct dkim_sig_result *s = dkim_verify_result(v, i);
		const char *reason = s->reason ? s->reason : "";
		const char *alg = dkim_alg_name(s->alg);

		if (s->result == DKIM_PASS && reason[0] == '\0')
			reason = "signature verified";
		if (o->json) {
			buf_adds(&b, i ? ", {" : "{");
			buf_adds(&b, "\"result\": ");
			json_str(&b, dkim_result_name(s->result));
			buf_adds(&b, ", \"reason\": ");
			json_str(&b, reason);
			buf_adds(&b, ", \"domain\": ");
			json_str(&b, s->domain);
			buf_adds(&b, ", \"selector\": ");
			json_str(&b, s->selector);
			buf_adds(&b, ", \"auid\": ");
			json_str(&b, s->auid);
			buf_adds(&b, ", \"algorithm\": ");
			json_str(&b, alg ? alg : "");
			buf_adds(&b, ", \"header_b\": ");
			json_str(&b, s->b_prefix);
			buf_addf(&b,
				 ", \"key_bits\": %u, \"testing\": %s, "
				 "\"l_warning\": %s}",
				 s->key_bits, s->testing ? "true" : "false",
				 s->l_warning ? "true" : "false");
			continue;
		}
		buf_addf(&b, "%s: %s (d=%s s=%s", dkim_result_name(s->result),
			 reason, s->domain[0] ? s->domain : "?",
			 s->selector[0] ? s->selector : "?");
		if (alg != NULL && alg[0] != '\0')
			buf_addf(&b, " a=%s", alg);
		if (s->key_bits > 0)
			buf_addf(&b, ", %u-bit key", s->key_bits);
		buf_adds(&b, ")");
		if (s->testing)
			buf_adds(&b, "; key in testing mode (t=y)");
		if (s->l_warning)
			buf_addf(&b,
				 "; l=%llu of %llu body octets signed: "
				 "unsigned content may follow",
				 (unsigned long long)s->l,
				 (unsigned long long)s->body_len);
		buf_addc(&b, '\n');
	}
	if (o->json)
		buf_adds(&b, "]}\n");
	fwrite(b.data, 1, b.len, stdout);
	buf_free(&b);
}

static int
cmd_dkim_check(int argc, char **argv)
{
	struct opts o = {0};
	struct dkim_verify_opts vo = {0};
	struct dkim_run r = {0};
	struct dkim_q *qs = NULL;
	struct dns_ctx d;
	struct buf msg;
	size_t nsigs;
	int rc = EXIT_FAIL, done;

	if (opts_parse(argc, argv, 3,
		       " FILE --dns --timeout --json -c --config ", &o) < 0)
		return EXIT_USAGE;
	buf_init(&msg, CHECK_MESSAGE_MAX);
	if (read_message(o.file, &msg) < 0) {
		buf_free(&msg);
		return EXIT_FAIL;
	}
	vo.now = (uint64_t)time(NULL);
	if ((r.v = dkim_verify_new(&vo)) == NULL) {
		fprintf(stderr, "todoku: out of memory\n");
		buf_free(&msg);
		return EXIT_FAIL;
	}
	done = msg.len ? dkim_verify_feed(r.v, msg.data, msg.len) : 0;
	if (!done) {
		/* no empty line: the message is all header; end it so the
		 * signatures are known before the key lookups */
		if (msg.len >= 2 && memcmp(msg.data + msg.len - 2, "\r\n", 2))
			dkim_verify_feed(r.v, "\r\n", 2);
		if (msg.len > 0)
			dkim_verify_feed(r.v, "\r\n", 2);
	}
	if (dkim_verify_overflow(r.v)) {
		fprintf(stderr, "todoku: the header block is larger than "
				"1 MiB: nothing was checked\n");
		goto out;
	}
	nsigs = dkim_verify_nsigs(r.v);
	if (nsigs > 0) {
		if ((rc = dns_open(&d, &o)) != 0)
			goto out;
		r.d = &d;
		qs = xcalloc(nsigs, sizeof(*qs));
		for (size_t i = 0; i < nsigs; i++) {
			const char *name = dkim_verify_query(r.v, i);
			int id;
			qs[i].r = &r;
			qs[i].i = i;
			if (name == NULL)
				continue;
			r.pending++;
			if (ub_resolve_event(d.ub, name, DNS_T_TXT, DNS_C_IN,
					     &qs[i], dkim_dns_cb, &id) != 0) {
				dkim_verify_answer(r.v, i, DKIM_DNS_TEMPFAIL,
						   NULL, 0);
				r.pending--;
			}
		}
		if (r.pending > 0)
			event_base_dispatch(d.base);
		r.finished = true;
	}
	/* signatures still without a key answer become temperror */
	dkim_verify_finish(r.v);
	dkim_print(r.v, &o);
	rc = 0;
	if (nsigs > 0)
		dns_close(&d);
out:
	xfree(qs);
	dkim_verify_free(r.v);
	buf_free(&msg);
	return rc;
}

/* ---- dkim keygen ------------------------------------------------------ */

/* A DNS name of letters, digits, '-' and '_' labels (no empty label). */
static bool
dns_name_ok(const char *s)
{
	size_t n = strlen(s), label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

static int
cmd_keygen(int argc, char **argv)
{
	struct opts o = {0};
	char domain[256], path[4096];
	struct buf pem, txt;
	int fd, rc = EXIT_FAIL, n;
	size_t dl;

	if (argc < 3 || strcmp(argv[2], "keygen") != 0) {
		check_usage(stderr);
		return EXIT_USAGE;
	}
	if (opts_parse(argc, argv, 3, " --domain --selector --ed25519 --out ",
		       &o) < 0)
		return EXIT_USAGE;
	if (o.domain == NULL || o.selector == NULL) {
		fprintf(stderr, "todoku: dkim keygen needs --domain DOMAIN and "
				"--selector SELECTOR (e.g. --domain "
				"example.com --selector mail2025)\n");
		return EXIT_USAGE;
	}
	dl = strlen(o.domain);
	if (dl > 0 && o.domain[dl - 1] == '.')
		dl--;
	snprintf(domain, sizeof(domain), "%.*s", (int)(dl < 255 ? dl : 255),
		 o.domain);
	if (dl >= sizeof(domain) || !dns_name_ok(domain)) {
		fprintf(stderr,
			"todoku: --domain \"%s\" is not a domain name "
			"(letters, digits, '-' and '_' in dot-separated "
			"labels)\n",
			o.domain);
		return EXIT_USAGE;
	}
	if (!dns_name_ok(o.selector) ||
	    strlen(o.selector) + strlen(domain) + 12 > 253) {
		fprintf(stderr,
			"todoku: --selector \"%s\" is not a valid selector "
			"(letters, digits, '-' and '_', dots between labels; "
			"S._domainkey.DOMAIN must fit in 253 octets)\n",
			o.selector);
		return EXIT_USAGE;
	}
	n = snprintf(path, sizeof(path), "%s/%s.%s.key",
		     o.out != NULL ? o.out : ".", o.selector, domain);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		fprintf(stderr, "todoku: --out %s: path too long\n", o.out);
		return EXIT_USAGE;
	}
	buf_init(&pem, 64 * 1024);
	buf_init(&txt, 64 * 1024);
	if (dkim_keygen(o.ed25519 ? DKIM_ALG_ED25519_SHA256
				  : DKIM_ALG_RSA_SHA256,
			domain, o.selector, &pem, &txt) < 0) {
		fprintf(stderr, "todoku: key generation failed (OpenSSL)\n");
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		if (errno == EEXIST)
			fprintf(stderr,
				"todoku: %s already exists; not overwriting "
				"a key (move it away or pick another "
				"--selector)\n",
				path);
		else
			fprintf(stderr, "todoku: cannot create %s: %s%s\n",
				path, strerror(errno),
				errno == ENOENT ? " (does the --out "
						  "directory exist?)"
						: "");
		goto out;
	}
	if (fchmod(fd, 0600) < 0 || write_full(fd, pem.data, pem.len) < 0 ||
	    fsync(fd) < 0) {
		fprintf(stderr, "todoku: cannot write %s: %s\n", path,
			strerror(errno));
		close(fd);
		unlink(path);
		goto out;
	}
	close(fd);
	fprintf(stderr,
		"todoku: private key (%s) written to %s (mode 0600); "
		"publish this record:\n",
		o.ed25519 ? "Ed25519" : "RSA 2048", path);
	fwrite(txt.data, 1, txt.len, stdout);
	rc = 0;
out:
	/* the key is secret: wipe our copy */
	if (pem.data != NULL)
		explicit_bzero(pem.data, pem.len);
	buf_free(&pem);
	buf_free(&txt);
	return rc;
}

/* ---- entry points ------------------------------------------------------ */

int
check_main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[2], "spf") == 0)
		return cmd_spf(argc, argv);
	if (argc >= 3 && strcmp(argv[2], "dkim") == 0)
		return cmd_dkim_check(argc, argv);
	if (argc >= 3)
		fprintf(stderr, "todoku: unknown check \"%s\" (spf, dkim)\n",
			argv[2]);
	check_usage(stderr);
	return EXIT_USAGE;
}

int
dkim_cli_main(int argc, char **argv)
{
	return cmd_keygen(argc, argv);
}
