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
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unbound-event.h>
#include <unbound.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "mail/arc.h"
#include "mail/conf.h"
#include "mail/dkim_sign.h"
#include "mail/dkim_verify.h"
#include "mail/dmarc.h"
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
	      "       todoku check dmarc --ip ADDR --mail-from SENDER "
	      "[--helo NAME] [FILE|-]\n"
	      "                        [--dns ADDR[:PORT]] [--timeout SECONDS] "
	      "[--json] [-c FILE]\n"
	      "       todoku check arc [FILE|-] [--dns ADDR[:PORT]] "
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

/* Why a phase ended with questions still open (for *_abort). */
static void
dns_why(const struct dns_ctx *d, const struct opts *o, char *why, size_t n)
{
	snprintf(why, n, "no answer within %u s%s", o->timeout,
		 d->timed_out ? "" : " (resolver stopped)");
}

/*
 * --ip and --mail-from (and --helo for the null sender) of check spf and
 * check dmarc. Returns 0 or EXIT_USAGE (message printed).
 */
static int
sender_opts_check(struct opts *o, const char *cmd)
{
	uint8_t tmp[16];

	if (o->ip == NULL) {
		fprintf(stderr,
			"todoku: %s needs --ip ADDR, the address of the "
			"sending client\n",
			cmd);
		return EXIT_USAGE;
	}
	if (inet_pton(AF_INET, o->ip, tmp) != 1 &&
	    inet_pton(AF_INET6, o->ip, tmp) != 1) {
		fprintf(stderr,
			"todoku: --ip %s is not an IPv4 or IPv6 address "
			"(e.g. 192.0.2.1 or 2001:db8::1)\n",
			o->ip);
		return EXIT_USAGE;
	}
	if (!o->has_mail_from) {
		fprintf(stderr,
			"todoku: %s needs --mail-from SENDER (user@domain, or "
			"\"\" for the null sender with --helo NAME)\n",
			cmd);
		return EXIT_USAGE;
	}
	if (strcmp(o->mail_from, "<>") == 0)
		o->mail_from = "";
	if (o->mail_from[0] == '\0' &&
	    (o->helo == NULL || o->helo[0] == '\0')) {
		fprintf(stderr, "todoku: with the null sender (--mail-from "
				"\"\") SPF checks the HELO name: give "
				"--helo NAME\n");
		return EXIT_USAGE;
	}
	return 0;
}

/* Run check_host() to its end on d (r->s allocated): the answers, or
 * the deadline (temperror). */
static void
spf_eval(struct spf_run *r, struct dns_ctx *d, const struct opts *o)
{
	struct spf_opts so = {0};
	char why[64];

	r->d = d;
	so.now = (int64_t)time(NULL);
	so.receiver = NULL;
	r->st = spf_start(r->s, o->ip, NULL, o->mail_from,
			  o->helo != NULL ? o->helo : "unknown", &so);
	spf_next(r);
	if (r->st == SPF_STEP_QUERY && !d->timed_out)
		event_base_dispatch(d->base);
	if (r->st == SPF_STEP_QUERY) {
		dns_why(d, o, why, sizeof(why));
		spf_abort(r->s, why);
		r->st = SPF_STEP_DONE;
	}
}

static int
cmd_spf(int argc, char **argv)
{
	struct opts o = {0};
	struct spf_run r = {0};
	struct dns_ctx d;
	int rc;

	if (opts_parse(argc, argv, 3,
		       " --ip --mail-from --helo --dns --timeout --json -c "
		       "--config ",
		       &o) < 0)
		return EXIT_USAGE;
	if ((rc = sender_opts_check(&o, "check spf")) != 0)
		return rc;
	if ((rc = dns_open(&d, &o)) != 0)
		return rc;
	if ((r.s = spf_new()) == NULL) {
		dns_close(&d);
		fprintf(stderr, "todoku: out of memory\n");
		return EXIT_FAIL;
	}
	spf_eval(&r, &d, &o);
	spf_print(&r, &o);
	dns_close(&d);
	spf_free(r.s);
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

/* One signature as a JSON object. */
static void
dkim_sig_json(struct buf *b, const struct dkim_sig_result *s)
{
	const char *reason = s->reason ? s->reason : "";
	const char *alg = dkim_alg_name(s->alg);

	if (s->result == DKIM_PASS && reason[0] == '\0')
		reason = "signature verified";
	buf_adds(b, "{\"result\": ");
	json_str(b, dkim_result_name(s->result));
	buf_adds(b, ", \"reason\": ");
	json_str(b, reason);
	buf_adds(b, ", \"domain\": ");
	json_str(b, s->domain);
	buf_adds(b, ", \"selector\": ");
	json_str(b, s->selector);
	buf_adds(b, ", \"auid\": ");
	json_str(b, s->auid);
	buf_adds(b, ", \"algorithm\": ");
	json_str(b, alg ? alg : "");
	buf_adds(b, ", \"header_b\": ");
	json_str(b, s->b_prefix);
	buf_addf(b,
		 ", \"key_bits\": %u, \"testing\": %s, "
		 "\"l_warning\": %s}",
		 s->key_bits, s->testing ? "true" : "false",
		 s->l_warning ? "true" : "false");
}

/* "RESULT: REASON (d=D s=S a=A, N-bit key)[; notes]" without a newline. */
static void
dkim_sig_line(struct buf *b, const struct dkim_sig_result *s)
{
	const char *reason = s->reason ? s->reason : "";
	const char *alg = dkim_alg_name(s->alg);

	if (s->result == DKIM_PASS && reason[0] == '\0')
		reason = "signature verified";
	buf_addf(b, "%s: %s (d=%s s=%s", dkim_result_name(s->result), reason,
		 s->domain[0] ? s->domain : "?",
		 s->selector[0] ? s->selector : "?");
	if (alg != NULL && alg[0] != '\0')
		buf_addf(b, " a=%s", alg);
	if (s->key_bits > 0)
		buf_addf(b, ", %u-bit key", s->key_bits);
	buf_adds(b, ")");
	if (s->testing)
		buf_adds(b, "; key in testing mode (t=y)");
	if (s->l_warning)
		buf_addf(b,
			 "; l=%llu of %llu body octets signed: "
			 "unsigned content may follow",
			 (unsigned long long)s->l,
			 (unsigned long long)s->body_len);
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

		if (o->json) {
			if (i > 0)
				buf_adds(&b, ", ");
			dkim_sig_json(&b, s);
			continue;
		}
		dkim_sig_line(&b, s);
		buf_addc(&b, '\n');
	}
	if (o->json)
		buf_adds(&b, "]}\n");
	fwrite(b.data, 1, b.len, stdout);
	buf_free(&b);
}

/*
 * Feed the whole message to the verifier: a message without an empty
 * line is all header, so end it there (the signatures are then known
 * before the key lookups). Returns 0, or -1 when the header block is too
 * large (message printed).
 */
static int
dkim_feed_message(struct dkim_verifier *v, const struct buf *msg)
{
	int done = msg->len ? dkim_verify_feed(v, msg->data, msg->len) : 0;

	if (!done) {
		if (msg->len >= 2 &&
		    memcmp(msg->data + msg->len - 2, "\r\n", 2) != 0)
			dkim_verify_feed(v, "\r\n", 2);
		if (msg->len > 0)
			dkim_verify_feed(v, "\r\n", 2);
	}
	if (dkim_verify_overflow(v)) {
		fprintf(stderr, "todoku: the header block is larger than "
				"1 MiB: nothing was checked\n");
		return -1;
	}
	return 0;
}

/*
 * Look up every key the signatures of r->v need, wait for the answers or
 * the deadline, then finish the verification (keys without an answer:
 * temperror). Returns the query slots; free them only after dns_close
 * (a late answer still reads its slot).
 */
static struct dkim_q *
dkim_lookups(struct dkim_run *r, struct dns_ctx *d)
{
	size_t nsigs = dkim_verify_nsigs(r->v);
	struct dkim_q *qs = xcalloc(nsigs ? nsigs : 1, sizeof(*qs));

	r->d = d;
	for (size_t i = 0; i < nsigs; i++) {
		const char *name = dkim_verify_query(r->v, i);
		int id;

		qs[i].r = r;
		qs[i].i = i;
		if (name == NULL)
			continue;
		r->pending++;
		if (ub_resolve_event(d->ub, name, DNS_T_TXT, DNS_C_IN, &qs[i],
				     dkim_dns_cb, &id) != 0) {
			dkim_verify_answer(r->v, i, DKIM_DNS_TEMPFAIL, NULL, 0);
			r->pending--;
		}
	}
	if (r->pending > 0 && !d->timed_out)
		event_base_dispatch(d->base);
	r->finished = true;
	dkim_verify_finish(r->v);
	return qs;
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
	int rc = EXIT_FAIL;

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
	if (dkim_feed_message(r.v, &msg) < 0)
		goto out;
	nsigs = dkim_verify_nsigs(r.v);
	if (nsigs > 0) {
		if ((rc = dns_open(&d, &o)) != 0)
			goto out;
		qs = dkim_lookups(&r, &d);
		dkim_print(r.v, &o);
		dns_close(&d);
	} else {
		dkim_verify_finish(r.v);
		dkim_print(r.v, &o);
	}
	rc = 0;
out:
	xfree(qs);
	dkim_verify_free(r.v);
	buf_free(&msg);
	return rc;
}

/* ---- check dmarc ------------------------------------------------------ */

struct dmarc_run {
	struct dns_ctx *d;
	struct dmarc *m;
	enum dmarc_step st;
	int qtype;
};

static void dmarc_next(struct dmarc_run *r);

static void
dmarc_dns_cb(void *arg, int rcode, void *pkt, int len, int sec, char *why,
	     int ratelimited)
{
	static size_t off[DNS_MSG_RR_MAX], rlen[DNS_MSG_RR_MAX];
	static struct dmarc_rdata rd[DNS_MSG_RR_MAX];
	struct dmarc_run *r = arg;
	struct dmarc_answer a = {0};
	struct buf data;
	size_t n = DNS_MSG_RR_MAX;

	if (r->st != DMARC_STEP_QUERY)
		return;
	buf_init(&data, ANSWER_DATA_MAX);
	switch (answer_records(rcode, pkt, len, sec, (uint16_t)r->qtype, &data,
			       off, rlen, &n)) {
	case ANS_RECORDS:
		for (size_t i = 0; i < n; i++) {
			rd[i].data = data.data + off[i];
			rd[i].len = rlen[i];
		}
		a.rcode = DMARC_DNS_ANSWER;
		a.count = n;
		a.rr = rd;
		break;
	case ANS_NODATA:
		a.rcode = DMARC_DNS_NODATA;
		break;
	case ANS_NXDOMAIN:
		a.rcode = DMARC_DNS_NXDOMAIN;
		break;
	case ANS_TEMPFAIL:
		a.rcode = DMARC_DNS_TEMPFAIL;
		break;
	}
	r->st = dmarc_resume(r->m, &a);
	buf_free(&data);
	dmarc_next(r);
}

/* Like spf_next: the policy records of the tree walk (TXT) and, for np=,
 * the existence of the From domain (A, AAAA, MX). */
static void
dmarc_next(struct dmarc_run *r)
{
	static const int types[] = {
	    [DMARC_Q_TXT] = DNS_T_TXT,
	    [DMARC_Q_A] = DNS_T_A,
	    [DMARC_Q_AAAA] = DNS_T_AAAA,
	    [DMARC_Q_MX] = DNS_T_MX,
	};

	while (r->st == DMARC_STEP_QUERY) {
		const struct dmarc_query *q = dmarc_query(r->m);
		struct dmarc_answer fail = {.rcode = DMARC_DNS_TEMPFAIL};
		int id;

		r->qtype = types[q->type];
		if (ub_resolve_event(r->d->ub, q->name, r->qtype, DNS_C_IN, r,
				     dmarc_dns_cb, &id) == 0)
			return;
		r->st = dmarc_resume(r->m, &fail);
	}
	event_base_loopbreak(r->d->base);
}

/*
 * The From header fields of the message's header block (CRLF lines):
 * returns how many, with the value of the first in *val / *len (folded
 * lines included).
 */
static unsigned
from_fields(const struct buf *msg, const char **val, size_t *len)
{
	const char *h = msg->data ? msg->data : "";
	const char *end = h + msg->len;
	unsigned found = 0;

	for (const char *line = h; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *next = nl ? nl + 1 : end;

		if (next - line <= 2 && (line[0] == '\r' || line[0] == '\n'))
			break; /* the empty line: end of the header block */
		if (next - line >= 5 && strncasecmp(line, "From:", 5) == 0) {
			const char *e = next;
			while (e < end && (*e == ' ' || *e == '\t')) {
				const char *n2 =
				    memchr(e, '\n', (size_t)(end - e));
				e = n2 ? n2 + 1 : end;
			}
			if (found++ == 0) {
				*val = line + 5;
				*len = (size_t)(e - (line + 5));
			}
		}
		line = next;
	}
	return found;
}

/* The From domain into from, or why DMARC does not apply into why. */
static bool
from_domain(const struct buf *msg, char *from, size_t fromsz, char *why,
	    size_t whysz)
{
	const char *val = NULL;
	size_t len = 0;
	unsigned nf = from_fields(msg, &val, &len);

	if (nf != 1) {
		if (nf == 0)
			snprintf(why, whysz,
				 "the message has no From header "
				 "field");
		else
			snprintf(why, whysz,
				 "the message has %u From header fields "
				 "(DMARC needs exactly one)",
				 nf);
		return false;
	}
	switch (dmarc_from_domain(val, len, from, fromsz, NULL)) {
	case DMARC_FROM_OK:
		return true;
	case DMARC_FROM_NONE:
		snprintf(why, whysz, "the From field holds no address");
		break;
	case DMARC_FROM_MULTIPLE:
		snprintf(why, whysz,
			 "the From field holds addresses in "
			 "different domains");
		break;
	default:
		snprintf(why, whysz,
			 "the From field cannot be parsed, or its "
			 "domain is not a DNS name");
		break;
	}
	return false;
}

/* What check dmarc found, for printing. */
struct dmarc_report {
	const struct spf *spf;
	const struct dkim_verifier *dkim;
	const struct dmarc *m; /* NULL: DMARC does not apply */
	const char *skip;      /* why not (m NULL) */
	const char *from;      /* the From domain ("" unknown) */
};

static const char *
align_name(uint8_t mode)
{
	return mode == DMARC_ALIGN_STRICT ? "strict" : "relaxed";
}

static void
json_str_or_null(struct buf *b, const char *s)
{
	if (s != NULL && s[0] != '\0')
		json_str(b, s);
	else
		buf_adds(b, "null");
}

static void
dmarc_print_json(struct buf *b, const struct dmarc_report *p,
		 const struct opts *o)
{
	const struct dmarc *m = p->m;
	const struct dmarc_record *rec = m ? dmarc_record(m) : NULL;
	enum dmarc_policy pol = m ? dmarc_policy(m) : DMARC_P_UNSET;
	const char *al_spf = m ? dmarc_aligned_spf(m) : NULL;
	const char *al_dkim = m ? dmarc_aligned_dkim(m) : NULL;
	size_t n = dkim_verify_nsigs(p->dkim);

	buf_adds(b, "{\"result\": ");
	json_str(b, m ? dmarc_result_name(dmarc_result(m)) : "none");
	buf_addf(b, ", \"applicable\": %s, \"reason\": ", m ? "true" : "false");
	json_str(b, m ? dmarc_reason(m) : p->skip);
	buf_adds(b, ", \"from_domain\": ");
	json_str_or_null(b, p->from);
	buf_adds(b, ", \"policy\": ");
	json_str_or_null(b,
			 pol != DMARC_P_UNSET ? dmarc_policy_name(pol) : NULL);
	buf_adds(b, ", \"policy_tag\": ");
	json_str_or_null(b, m ? dmarc_policy_tag(m) : NULL);
	buf_adds(b, ", \"policy_domain\": ");
	json_str_or_null(b, m ? dmarc_policy_domain(m) : NULL);
	buf_adds(b, ", \"org_domain\": ");
	json_str_or_null(b, m ? dmarc_org_domain(m) : NULL);
	buf_adds(b, ", \"disposition\": ");
	json_str(b, dmarc_policy_name(m ? dmarc_disposition(m) : DMARC_P_NONE));
	buf_addf(b, ", \"testing\": %s",
		 rec != NULL && rec->testing ? "true" : "false");
	buf_adds(b, ", \"aligned\": {\"spf\": ");
	if (al_spf != NULL && rec != NULL) {
		buf_adds(b, "{\"domain\": ");
		json_str(b, al_spf);
		buf_adds(b, ", \"mode\": ");
		json_str(b, align_name(rec->aspf));
		buf_adds(b, "}");
	} else {
		buf_adds(b, "null");
	}
	buf_adds(b, ", \"dkim\": ");
	if (al_dkim != NULL && rec != NULL) {
		buf_adds(b, "{\"domain\": ");
		json_str(b, al_dkim);
		buf_adds(b, ", \"mode\": ");
		json_str(b, align_name(rec->adkim));
		buf_adds(b, "}");
	} else {
		buf_adds(b, "null");
	}
	buf_adds(b, "}, \"spf\": {\"result\": ");
	json_str(b, spf_result_name(spf_result(p->spf)));
	buf_adds(b, ", \"identity\": ");
	json_str(b, o->mail_from[0] ? "mailfrom" : "helo");
	buf_adds(b, ", \"domain\": ");
	json_str(b, spf_domain(p->spf));
	buf_adds(b, ", \"reason\": ");
	json_str(b, spf_reason(p->spf));
	buf_adds(b, ", \"mechanism\": ");
	json_str(b, spf_mechanism(p->spf));
	buf_adds(b, "}, \"dkim\": [");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_adds(b, ", ");
		dkim_sig_json(b, dkim_verify_result(p->dkim, i));
	}
	buf_adds(b, "], \"authentication_results\": ");
	if (m != NULL) {
		json_str(b, dmarc_ar(m));
	} else {
		struct buf t;
		buf_init(&t, 1024);
		buf_addf(&t, "dmarc=none (%s)", p->skip);
		json_str(b, t.data);
		buf_free(&t);
	}
	buf_addf(b,
		 ", \"dns_queries\": %u, \"ip\": ", m ? dmarc_queries(m) : 0);
	json_str(b, o->ip);
	buf_adds(b, ", \"mail_from\": ");
	json_str(b, o->mail_from);
	buf_adds(b, ", \"helo\": ");
	json_str_or_null(b, o->helo);
	buf_adds(b, "}\n");
}

static void
dmarc_print_text(struct buf *b, const struct dmarc_report *p,
		 const struct opts *o)
{
	const struct dmarc *m = p->m;
	const struct dmarc_record *rec = m ? dmarc_record(m) : NULL;
	size_t n = dkim_verify_nsigs(p->dkim);

	if (m == NULL) {
		buf_adds(b, "dmarc: none\n");
		buf_addf(b, "reason: DMARC does not apply: %s\n", p->skip);
	} else {
		enum dmarc_policy pol = dmarc_policy(m);
		const char *al_spf = dmarc_aligned_spf(m);
		const char *al_dkim = dmarc_aligned_dkim(m);
		const char *org = dmarc_org_domain(m);

		buf_addf(b, "dmarc: %s\n", dmarc_result_name(dmarc_result(m)));
		buf_addf(b, "reason: %s\n", dmarc_reason(m));
		buf_addf(b, "from-domain: %s\n", p->from);
		if (pol != DMARC_P_UNSET)
			buf_addf(b, "policy: %s (%s= at %s)\n",
				 dmarc_policy_name(pol), dmarc_policy_tag(m),
				 dmarc_policy_domain(m));
		else
			buf_adds(b, "policy: none found\n");
		buf_addf(b, "disposition: %s%s\n",
			 dmarc_policy_name(dmarc_disposition(m)),
			 rec != NULL && rec->testing &&
				 dmarc_result(m) == DMARC_FAIL
			     ? " (t=y: the policy is in testing mode, "
			       "lowered one step)"
			     : "");
		buf_adds(b, "aligned: ");
		if (al_spf == NULL && al_dkim == NULL)
			buf_adds(b, "none");
		if (al_spf != NULL)
			buf_addf(b, "spf (%s) %s",
				 align_name(rec ? rec->aspf : 0), al_spf);
		if (al_dkim != NULL)
			buf_addf(b, "%sdkim (%s) %s", al_spf ? ", " : "",
				 align_name(rec ? rec->adkim : 0), al_dkim);
		buf_addc(b, '\n');
		if (org[0] != '\0')
			buf_addf(b, "org-domain: %s\n", org);
	}
	buf_addf(b, "spf: %s (%s %s: %s)\n",
		 spf_result_name(spf_result(p->spf)),
		 o->mail_from[0] ? "mailfrom" : "helo",
		 spf_domain(p->spf)[0] ? spf_domain(p->spf) : "?",
		 spf_reason(p->spf));
	if (n == 0)
		buf_adds(b, "dkim: none (the message has no DKIM-Signature)\n");
	for (size_t i = 0; i < n; i++) {
		buf_adds(b, "dkim: ");
		dkim_sig_line(b, dkim_verify_result(p->dkim, i));
		buf_addc(b, '\n');
	}
	if (m != NULL) {
		buf_addf(b, "dns-queries: %u\n", dmarc_queries(m));
		buf_addf(b, "authentication-results: %s\n", dmarc_ar(m));
	} else {
		buf_addf(b, "authentication-results: dmarc=none (%s)\n",
			 p->skip);
	}
}

static int
cmd_dmarc(int argc, char **argv)
{
	struct opts o = {0};
	struct dkim_verify_opts vo = {0};
	struct dkim_run dr = {0};
	struct spf_run sr = {0};
	struct dmarc_run mr = {0};
	struct dmarc_ident ids[DMARC_IDS_MAX];
	struct dmarc_input in = {0};
	struct dmarc_report rep = {0};
	struct dkim_q *qs = NULL;
	struct dns_ctx d;
	struct buf msg, out;
	char from[DMARC_NAME_MAX + 1] = "", skip[128] = "", why[64];
	size_t nids = 0;
	bool dns_up = false;
	int rc = EXIT_FAIL;

	if (opts_parse(argc, argv, 3,
		       " --ip --mail-from --helo FILE --dns --timeout --json "
		       "-c --config ",
		       &o) < 0)
		return EXIT_USAGE;
	if ((rc = sender_opts_check(&o, "check dmarc")) != 0)
		return rc;
	rc = EXIT_FAIL;
	buf_init(&msg, CHECK_MESSAGE_MAX);
	if (read_message(o.file, &msg) < 0) {
		buf_free(&msg);
		return EXIT_FAIL;
	}
	vo.now = (uint64_t)time(NULL);
	if ((dr.v = dkim_verify_new(&vo)) == NULL ||
	    (sr.s = spf_new()) == NULL) {
		fprintf(stderr, "todoku: out of memory\n");
		goto out;
	}
	if (dkim_feed_message(dr.v, &msg) < 0)
		goto out;
	if ((rc = dns_open(&d, &o)) != 0)
		goto out;
	dns_up = true;
	/* SPF, then the DKIM keys, then DMARC: one deadline for all */
	spf_eval(&sr, &d, &o);
	qs = dkim_lookups(&dr, &d);
	if (from_domain(&msg, from, sizeof(from), skip, sizeof(skip))) {
		for (size_t i = 0;
		     i < dkim_verify_nsigs(dr.v) && nids < DMARC_IDS_MAX; i++) {
			const struct dkim_sig_result *s =
			    dkim_verify_result(dr.v, i);
			if (s == NULL || s->domain[0] == '\0')
				continue;
			ids[nids].domain = s->domain;
			ids[nids].pass = s->result == DKIM_PASS;
			nids++;
		}
		in.from_domain = from;
		in.spf.domain = spf_domain(sr.s)[0] ? spf_domain(sr.s) : NULL;
		in.spf.pass = spf_result(sr.s) == SPF_PASS;
		in.dkim = ids;
		in.ndkim = nids;
		in.from_exists = DMARC_EXISTS_ASK;
		if ((mr.m = dmarc_new()) == NULL) {
			fprintf(stderr, "todoku: out of memory\n");
			rc = EXIT_FAIL;
			goto out;
		}
		mr.d = &d;
		mr.st = dmarc_start(mr.m, &in, NULL);
		dmarc_next(&mr);
		if (mr.st == DMARC_STEP_QUERY && !d.timed_out)
			event_base_dispatch(d.base);
		if (mr.st == DMARC_STEP_QUERY) {
			dns_why(&d, &o, why, sizeof(why));
			dmarc_abort(mr.m, why);
			mr.st = DMARC_STEP_DONE;
		}
	}
	rep.spf = sr.s;
	rep.dkim = dr.v;
	rep.m = mr.m;
	rep.skip = skip;
	rep.from = from;
	buf_init(&out, 1024 * 1024);
	if (o.json)
		dmarc_print_json(&out, &rep, &o);
	else
		dmarc_print_text(&out, &rep, &o);
	fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	rc = 0;
out:
	if (dns_up)
		dns_close(&d);
	xfree(qs);
	dmarc_free(mr.m);
	spf_free(sr.s);
	dkim_verify_free(dr.v);
	buf_free(&msg);
	return rc;
}

/* ---- check arc -------------------------------------------------------- */

struct arc_run {
	struct dns_ctx *d;
	struct arc_verifier *v;
	size_t pending;
	bool finished;
};

struct arc_q {
	struct arc_run *r;
	size_t k;
};

static void
arc_dns_cb(void *arg, int rcode, void *pkt, int len, int sec, char *why,
	   int ratelimited)
{
	static size_t off[DNS_MSG_RR_MAX], rlen[DNS_MSG_RR_MAX];
	static struct dkim_slice sl[DNS_MSG_RR_MAX];
	struct arc_q *q = arg;
	struct arc_run *r = q->r;
	struct buf data;
	size_t n = DNS_MSG_RR_MAX;

	if (r->finished)
		return;
	buf_init(&data, ANSWER_DATA_MAX);
	switch (answer_records(rcode, pkt, len, sec, DNS_T_TXT, &data, off,
			       rlen, &n)) {
	case ANS_RECORDS:
		for (size_t i = 0; i < n; i++) {
			sl[i].p = data.data + off[i];
			sl[i].n = rlen[i];
		}
		arc_verify_answer(r->v, q->k, DKIM_DNS_OK, sl, n);
		break;
	case ANS_NODATA:
		arc_verify_answer(r->v, q->k, DKIM_DNS_OK, NULL, 0);
		break;
	case ANS_NXDOMAIN:
		arc_verify_answer(r->v, q->k, DKIM_DNS_NXDOMAIN, NULL, 0);
		break;
	case ANS_TEMPFAIL:
		arc_verify_answer(r->v, q->k, DKIM_DNS_TEMPFAIL, NULL, 0);
		break;
	}
	buf_free(&data);
	if (--r->pending == 0)
		event_base_loopbreak(r->d->base);
}

static void
arc_print(const struct arc_verify_result *res, const struct opts *o)
{
	const char *reason = res->reason ? res->reason : "";
	struct buf b, ar;

	buf_init(&b, 64 * 1024);
	buf_init(&ar, 1024);
	if (arc_verify_ar(res, &ar) < 0 || ar.len == 0)
		buf_adds(&ar, "arc=?");
	if (res->result == ARC_NONE)
		reason = "the message has no ARC header fields";
	else if (res->result == ARC_PASS && reason[0] == '\0')
		reason = "every ARC-Seal and the newest "
			 "ARC-Message-Signature verified";
	if (o->json) {
		buf_adds(&b, "{\"result\": ");
		json_str(&b, arc_result_name(res->result));
		buf_adds(&b, ", \"reason\": ");
		json_str(&b, reason);
		buf_addf(&b, ", \"instances\": %u, \"oldest_pass\": ",
			 res->instances);
		if (res->oldest_pass > 0)
			buf_addf(&b, "%u", res->oldest_pass);
		else
			buf_adds(&b, "null");
		buf_addf(&b, ", \"temporary\": %s",
			 res->temporary ? "true" : "false");
		buf_adds(&b, ", \"authentication_results\": ");
		json_str(&b, ar.data);
		buf_adds(&b, "}\n");
	} else {
		buf_addf(&b, "arc: %s\n", arc_result_name(res->result));
		buf_addf(&b, "reason: %s%s\n", reason,
			 res->temporary ? " (temporary: DNS or memory)" : "");
		buf_addf(&b, "instances: %u\n", res->instances);
		if (res->oldest_pass > 0)
			buf_addf(&b, "oldest-pass: %u\n", res->oldest_pass);
		buf_addf(&b, "authentication-results: %s\n", ar.data);
	}
	fwrite(b.data, 1, b.len, stdout);
	buf_free(&ar);
	buf_free(&b);
}

static int
cmd_arc(int argc, char **argv)
{
	struct opts o = {0};
	struct arc_verify_opts ao = {.oldest_pass = true};
	struct arc_run r = {0};
	struct arc_q *qs = NULL;
	struct dns_ctx d;
	struct buf msg;
	size_t nq;
	bool dns_up = false;
	int rc = EXIT_FAIL, done;

	if (opts_parse(argc, argv, 3,
		       " FILE --dns --timeout --json -c --config ", &o) < 0)
		return EXIT_USAGE;
	buf_init(&msg, CHECK_MESSAGE_MAX);
	if (read_message(o.file, &msg) < 0) {
		buf_free(&msg);
		return EXIT_FAIL;
	}
	if ((r.v = arc_verify_new(&ao)) == NULL) {
		fprintf(stderr, "todoku: out of memory\n");
		goto out;
	}
	done = msg.len ? arc_verify_feed(r.v, msg.data, msg.len) : 0;
	if (!done) { /* all header: end the block (as check dkim) */
		if (msg.len >= 2 &&
		    memcmp(msg.data + msg.len - 2, "\r\n", 2) != 0)
			arc_verify_feed(r.v, "\r\n", 2);
		if (msg.len > 0)
			arc_verify_feed(r.v, "\r\n", 2);
	}
	nq = arc_verify_nqueries(r.v);
	if (nq > 0) {
		if ((rc = dns_open(&d, &o)) != 0)
			goto out;
		dns_up = true;
		r.d = &d;
		qs = xcalloc(nq, sizeof(*qs));
		for (size_t k = 0; k < nq; k++) {
			const char *name = arc_verify_query(r.v, k);
			int id;

			qs[k].r = &r;
			qs[k].k = k;
			if (name == NULL)
				continue;
			r.pending++;
			if (ub_resolve_event(d.ub, name, DNS_T_TXT, DNS_C_IN,
					     &qs[k], arc_dns_cb, &id) != 0) {
				arc_verify_answer(r.v, k, DKIM_DNS_TEMPFAIL,
						  NULL, 0);
				r.pending--;
			}
		}
		if (r.pending > 0 && !d.timed_out)
			event_base_dispatch(d.base);
		r.finished = true;
	}
	/* keys still without an answer make the chain fail (temporary) */
	arc_verify_finish(r.v);
	arc_print(arc_verify_result(r.v), &o);
	rc = 0;
out:
	if (dns_up)
		dns_close(&d);
	xfree(qs);
	arc_verify_free(r.v);
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
	if (argc >= 3 && strcmp(argv[2], "dmarc") == 0)
		return cmd_dmarc(argc, argv);
	if (argc >= 3 && strcmp(argv[2], "arc") == 0)
		return cmd_arc(argc, argv);
	if (argc >= 3)
		fprintf(stderr,
			"todoku: unknown check \"%s\" (spf, dkim, dmarc, "
			"arc)\n",
			argv[2]);
	check_usage(stderr);
	return EXIT_USAGE;
}

int
dkim_cli_main(int argc, char **argv)
{
	return cmd_keygen(argc, argv);
}
