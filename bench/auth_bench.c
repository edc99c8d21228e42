/*
 * auth_bench — throughput of todoku's sender authentication code, for
 * bench/auth.sh (docs/performance.md, "Sender authentication").
 *
 *   auth_bench gen DIR
 *       writes DIR/msg-4k.eml and DIR/msg-64k.eml (CRLF, realistic text
 *       with some white-space runs for relaxed canonicalisation), keys
 *       DIR/rsa.pem, DIR/ed25519.pem, DIR/ed25519.seed (base64 of the raw
 *       32-byte seed, the form dkimpy takes) and their key records
 *       DIR/rsa.txt, DIR/ed25519.txt (the TXT value, one line), and the
 *       messages signed by us: DIR/signed-{rsa,ed25519}-{4k,64k}.eml.
 *   auth_bench sign DIR rsa|ed25519 4k|64k SECONDS
 *       canonicalise + hash + dkim_sign_hash + header, per message.
 *   auth_bench verify DIR rsa|ed25519 4k|64k SECONDS
 *       dkim_verify on DIR/signed-*.eml, key record answered from memory.
 *   auth_bench canon DIR 4k|64k SECONDS
 *       the signer without the private-key operation (signer_new, feed,
 *       hash, free), the body canonicaliser alone (relaxed, simple), and
 *       plain EVP SHA-256 of the same bytes, all in bytes/s.
 *   auth_bench spf --dns IP[@PORT] --ip ADDR --mail-from SENDER
 *                  [-n N] [-c CONCURRENT] [--warm N]
 *       N check_host() evaluations, C at a time, through one libunbound
 *       context (the cache is warmed by --warm evaluations first). A
 *       "{n}" in SENDER becomes a counter, so that every evaluation asks
 *       about names not yet in the cache.
 *
 * Every line of output is "key value ..." for the script to collect.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <unbound-event.h>
#include <unbound.h>

#include "lib/buf.h"
#include "mail/dkim_canon.h"
#include "mail/dkim_sign.h"
#include "mail/dkim_verify.h"
#include "mail/dns_answer.h"
#include "mail/dns_msg.h"
#include "mail/spf.h"

#define FILE_MAX (16u * 1024 * 1024)

static void
die(const char *what)
{
	fprintf(stderr, "auth_bench: %s\n", what);
	exit(2);
}

static double
clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static void
slurp(const char *dir, const char *name, struct buf *b)
{
	char path[4096], tmp[65536];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "auth_bench: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	buf_init(b, FILE_MAX);
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		if (buf_add(b, tmp, n) < 0)
			die("file too large");
	fclose(f);
	if (buf_add(b, "", 0) < 0)
		die("out of memory");
}

static void
spill(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n ||
	    fclose(f) != 0) {
		fprintf(stderr, "auth_bench: %s: %s\n", path, strerror(errno));
		exit(2);
	}
}

/* ---- test data --------------------------------------------------------- */

static uint32_t rng = 12345;

static uint32_t
rnd(uint32_t n)
{
	rng = rng * 1103515245u + 12345u;
	return (rng >> 8) % n;
}

/*
 * A plain-text message of about `size` octets in all: the header block
 * of a typical list/ordinary mail, then 60-76 character lines of words;
 * every 7th line has a double space, every 11th trailing blanks, every
 * 40th is empty, and the body ends with two empty lines (all of which
 * relaxed canonicalisation rewrites).
 */
static void
make_message(size_t size, struct buf *m)
{
	static const char *const words[] = {
	    "the",	"queue",  "delivery", "message",   "server", "of",
	    "and",	"retry",  "domain",   "signature", "a",	     "received",
	    "to",	"from",	  "header",   "body",	   "in",     "record",
	    "key",	"policy", "mail",     "is",	   "for",    "with",
	    "transfer", "agent",  "remote",   "local",	   "that",   "on",
	};
	size_t line = 0;

	buf_init(m, FILE_MAX);
	buf_adds(m, "Received: from client.example.org (client.example.org "
		    "[192.0.2.10])\r\n\tby mx.bench.test with ESMTPS id "
		    "4Xb7Q2kLmZz1; Mon, 3 Mar 2025 10:00:00 +0000\r\n");
	buf_adds(m, "From: Alice Example <alice@bench.test>\r\n");
	buf_adds(m, "To: Bob Example <bob@example.org>, carol@example.org\r\n");
	buf_adds(m, "Cc: list@example.org\r\n");
	buf_adds(m, "Subject: Quarterly report on the delivery queue and "
		    "retry\r\n schedule  (draft 3)\r\n");
	buf_adds(m, "Date: Mon, 3 Mar 2025 10:00:00 +0000\r\n");
	buf_adds(m, "Message-ID: <20250303100000.4Xb7Q2kLmZz1@bench.test>\r\n");
	buf_adds(m, "MIME-Version: 1.0\r\n");
	buf_adds(m, "Content-Type: text/plain; charset=utf-8\r\n");
	buf_adds(m, "Content-Transfer-Encoding: 8bit\r\n");
	buf_adds(m, "\r\n");
	while (m->len + 80 < size) {
		size_t target = 60 + rnd(17), start = m->len;

		line++;
		if (line % 40 == 0) {
			buf_adds(m, "\r\n");
			continue;
		}
		while (m->len - start < target) {
			if (m->len != start)
				buf_adds(m, line % 7 == 0 && rnd(4) == 0 ? "  "
									 : " ");
			buf_adds(m, words[rnd(sizeof(words) / sizeof(*words))]);
		}
		if (line % 11 == 0)
			buf_adds(m, " \t ");
		buf_adds(m, "\r\n");
	}
	while (m->len + 2 < size - 4)
		buf_addc(m, 'x');
	buf_adds(m, "\r\n\r\n\r\n");
}

/* The TXT value from dkim_txt_record's zone text (quoted strings). */
static void
txt_value(const struct buf *zone, struct buf *out)
{
	bool in = false;

	buf_init(out, 65536);
	for (size_t i = 0; i < zone->len; i++) {
		char c = zone->data[i];

		if (c == '"')
			in = !in;
		else if (in && c == '\\' && i + 1 < zone->len)
			buf_addc(out, zone->data[++i]);
		else if (in)
			buf_addc(out, c);
	}
	buf_add(out, "", 0);
}

static void
b64(const uint8_t *p, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

static void sign_one(EVP_PKEY *key, enum dkim_alg alg, const struct buf *msg,
		     struct buf *out);

static int
cmd_gen(const char *dir)
{
	static const struct {
		const char *name;
		size_t size;
	} sizes[] = {{"4k", 4096}, {"64k", 65536}};
	static const char *const algs[] = {"rsa", "ed25519"};
	struct buf msg[2], pem, zone, txt, out;
	char name[256];

	for (int i = 0; i < 2; i++) {
		make_message(sizes[i].size, &msg[i]);
		snprintf(name, sizeof(name), "msg-%s.eml", sizes[i].name);
		spill(dir, name, msg[i].data, msg[i].len);
	}
	for (int a = 0; a < 2; a++) {
		enum dkim_alg alg =
		    a ? DKIM_ALG_ED25519_SHA256 : DKIM_ALG_RSA_SHA256;
		EVP_PKEY *key;

		buf_init(&pem, 65536);
		buf_init(&zone, 65536);
		if (dkim_keygen(alg, "bench.test", algs[a], &pem, &zone) < 0)
			die("keygen failed");
		snprintf(name, sizeof(name), "%s.pem", algs[a]);
		spill(dir, name, pem.data, pem.len);
		txt_value(&zone, &txt);
		snprintf(name, sizeof(name), "%s.txt", algs[a]);
		spill(dir, name, txt.data, strlen(txt.data));
		if ((key = dkim_key_load_pem(pem.data, pem.len)) == NULL)
			die("cannot load the key just made");
		if (a == 1) {
			uint8_t seed[32];
			char enc[64];
			size_t n = sizeof(seed);

			if (EVP_PKEY_get_raw_private_key(key, seed, &n) != 1 ||
			    n != 32)
				die("ed25519 seed");
			b64(seed, 32, enc);
			spill(dir, "ed25519.seed", enc, strlen(enc));
		}
		for (int i = 0; i < 2; i++) {
			buf_init(&out, FILE_MAX);
			sign_one(key, alg, &msg[i], &out);
			buf_add(&out, msg[i].data, msg[i].len);
			snprintf(name, sizeof(name), "signed-%s-%s.eml",
				 algs[a], sizes[i].name);
			spill(dir, name, out.data, out.len);
			buf_free(&out);
		}
		EVP_PKEY_free(key);
		buf_free(&pem);
		buf_free(&zone);
		buf_free(&txt);
	}
	buf_free(&msg[0]);
	buf_free(&msg[1]);
	return 0;
}

/* ---- DKIM -------------------------------------------------------------- */

static enum dkim_alg
parse_alg(const char *s)
{
	if (strcmp(s, "rsa") == 0)
		return DKIM_ALG_RSA_SHA256;
	if (strcmp(s, "ed25519") == 0)
		return DKIM_ALG_ED25519_SHA256;
	die("algorithm: rsa or ed25519");
	return DKIM_ALG_UNKNOWN;
}

static void
sign_opts(enum dkim_alg alg, struct dkim_sign_opts *o)
{
	dkim_sign_opts_default(o);
	o->domain = "bench.test";
	o->selector = alg == DKIM_ALG_RSA_SHA256 ? "rsa" : "ed25519";
	o->alg = alg;
	o->hcanon = o->bcanon = DKIM_CANON_RELAXED;
}

/* The whole signing path for one message: header field appended to out. */
static void
sign_one(EVP_PKEY *key, enum dkim_alg alg, const struct buf *msg,
	 struct buf *out)
{
	struct dkim_sign_opts o;
	struct dkim_signer *s;
	const char *err = NULL;
	uint8_t hash[32], sig[DKIM_SIG_MAX];
	size_t siglen = sizeof(sig);

	sign_opts(alg, &o);
	if ((s = dkim_signer_new(&o, &err)) == NULL)
		die(err);
	dkim_signer_feed(s, msg->data, msg->len);
	if (dkim_signer_hash(s, hash, &err) < 0)
		die(err);
	if (dkim_sign_hash(key, alg, hash, sig, &siglen) < 0)
		die("dkim_sign_hash failed");
	if (dkim_signer_header(s, sig, siglen, out) < 0)
		die("header");
	dkim_signer_free(s);
}

/*
 * The timing driver: ROUNDS rounds of secs/ROUNDS seconds each, calling
 * fn in batches; the best round's rate is reported (this machine is
 * shared, so the best round is the least disturbed one), with the total.
 * The cpu_ figures divide by this thread's CPU time instead of wall time,
 * as `openssl speed` does by default (user time, unless -elapsed): on a
 * busy machine they are the ones comparable with it.
 */
#define ROUNDS 5

struct job {
	const struct buf *msg; /* the input whose size bytes_per_s counts */
	const char *body;      /* canon: body octets */
	size_t blen;
	EVP_PKEY *key;
	enum dkim_alg alg;
	struct dkim_slice rec;
	struct buf out;
	int kind; /* canon: 0 signer, 1 relaxed, 2 simple, 3 sha256 */
};

static void
measure(const char *what, void (*fn)(struct job *), struct job *j, size_t bytes,
	double secs)
{
	unsigned long total = 0;
	double best = 0, all = 0, cbest = 0;

	for (int r = 0; r < ROUNDS; r++) {
		unsigned long n = 0;
		double t0 = now_s(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), t,
		       c;

		do {
			for (int k = 0; k < 8; k++, n++)
				fn(j);
			t = now_s() - t0;
		} while (t < secs / ROUNDS);
		c = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
		if ((double)n / t > best)
			best = (double)n / t;
		if (c > 0 && (double)n / c > cbest)
			cbest = (double)n / c;
		total += n;
		all += t;
	}
	printf("%s msgs %lu secs %.3f rate %.1f mean %.1f bytes_per_s %.0f "
	       "cpu_rate %.1f cpu_bytes_per_s %.0f\n",
	       what, total, all, best, (double)total / all,
	       best * (double)bytes, cbest, cbest * (double)bytes);
}

static void
job_sign(struct job *j)
{
	buf_reset(&j->out);
	sign_one(j->key, j->alg, j->msg, &j->out);
}

static int
cmd_sign(const char *dir, const char *alg_s, const char *size, double secs)
{
	struct job j = {0};
	struct buf pem, msg;
	char name[256];
	const char *err;

	j.alg = parse_alg(alg_s);
	snprintf(name, sizeof(name), "%s.pem", alg_s);
	slurp(dir, name, &pem);
	if ((j.key = dkim_key_load_pem(pem.data, pem.len)) == NULL ||
	    dkim_key_check(j.key, j.alg, &err) < 0)
		die("bad key");
	snprintf(name, sizeof(name), "msg-%s.eml", size);
	slurp(dir, name, &msg);
	j.msg = &msg;
	buf_init(&j.out, 65536);
	snprintf(name, sizeof(name), "sign %s %s", alg_s, size);
	measure(name, job_sign, &j, msg.len, secs);
	EVP_PKEY_free(j.key);
	buf_free(&pem);
	buf_free(&msg);
	buf_free(&j.out);
	return 0;
}

static int
verify_one(const struct buf *msg, const struct dkim_slice *rec)
{
	struct dkim_verify_opts o = {0};
	struct dkim_verifier *v;
	int ok;

	o.now = (uint64_t)time(NULL);
	if ((v = dkim_verify_new(&o)) == NULL)
		die("out of memory");
	if (dkim_verify_feed(v, msg->data, msg->len) == 1)
		for (size_t i = 0; i < dkim_verify_nsigs(v); i++)
			if (dkim_verify_query(v, i) != NULL)
				dkim_verify_answer(v, i, DKIM_DNS_OK, rec, 1);
	dkim_verify_finish(v);
	ok = dkim_verify_nsigs(v) == 1 &&
	     dkim_verify_result(v, 0)->result == DKIM_PASS;
	dkim_verify_free(v);
	return ok;
}

static void
job_verify(struct job *j)
{
	if (!verify_one(j->msg, &j->rec))
		die("verification failed in the loop");
}

static int
cmd_verify(const char *dir, const char *alg_s, const char *size, double secs)
{
	struct job j = {0};
	struct buf txt, msg;
	char name[256];

	(void)parse_alg(alg_s);
	snprintf(name, sizeof(name), "%s.txt", alg_s);
	slurp(dir, name, &txt);
	j.rec.p = txt.data;
	j.rec.n = strlen(txt.data);
	while (j.rec.n &&
	       (j.rec.p[j.rec.n - 1] == '\n' || j.rec.p[j.rec.n - 1] == '\r'))
		j.rec.n--;
	snprintf(name, sizeof(name), "signed-%s-%s.eml", alg_s, size);
	slurp(dir, name, &msg);
	j.msg = &msg;
	if (!verify_one(&msg, &j.rec))
		die("our own signature does not verify");
	snprintf(name, sizeof(name), "verify %s %s", alg_s, size);
	measure(name, job_verify, &j, msg.len, secs);
	buf_free(&txt);
	buf_free(&msg);
	return 0;
}

static void
job_canon(struct job *j)
{
	uint8_t hash[32];
	size_t hlen;
	const char *err = NULL;

	if (j->kind == 0) {
		/* the signer minus the private key: header and body
		 * canonicalised, both hashes */
		struct dkim_sign_opts o;
		struct dkim_signer *s;

		sign_opts(DKIM_ALG_RSA_SHA256, &o);
		if ((s = dkim_signer_new(&o, &err)) == NULL)
			die(err);
		dkim_signer_feed(s, j->msg->data, j->msg->len);
		if (dkim_signer_hash(s, hash, &err) < 0)
			die(err);
		dkim_signer_free(s);
	} else if (j->kind == 3) {
		unsigned int l;

		if (EVP_Digest(j->body, j->blen, hash, &l, EVP_sha256(),
			       NULL) != 1)
			die("EVP");
	} else {
		struct dkim_body b;

		if (dkim_body_init(&b,
				   j->kind == 1 ? DKIM_CANON_RELAXED
						: DKIM_CANON_SIMPLE,
				   false, -1) < 0)
			die("EVP");
		dkim_body_feed(&b, j->body, j->blen);
		if (dkim_body_final(&b, hash, &hlen) < 0)
			die("EVP");
	}
}

static int
cmd_canon(const char *dir, const char *size, double secs)
{
	static const char *const kinds[] = {
	    "canon+hash signer", "canon+hash body-relaxed",
	    "canon+hash body-simple", "sha256-only body"};
	struct job j = {0};
	struct buf msg;
	char name[256];

	snprintf(name, sizeof(name), "msg-%s.eml", size);
	slurp(dir, name, &msg);
	j.msg = &msg;
	j.body = strstr(msg.data, "\r\n\r\n") + 4;
	j.blen = msg.len - (size_t)(j.body - msg.data);
	for (j.kind = 0; j.kind < 4; j.kind++) {
		snprintf(name, sizeof(name), "%s %s", kinds[j.kind], size);
		measure(name, job_canon, &j, j.kind ? j.blen : msg.len, secs);
	}
	buf_free(&msg);
	return 0;
}

/* ---- SPF --------------------------------------------------------------- */

struct bench;

struct slot {
	struct bench *b;
	struct spf *s;
	enum spf_step st;
	int qtype;
	bool busy;
	struct event *kick; /* starts the next evaluation from the loop */
	struct buf data;
	size_t off[DNS_MSG_RR_MAX], rlen[DNS_MSG_RR_MAX];
	struct spf_rdata rd[DNS_MSG_RR_MAX];
};

struct bench {
	struct event_base *base;
	struct ub_ctx *ub;
	const char *ip, *mail_from;
	unsigned long started, done, target;
	unsigned long results[SPF_PERMERROR + 1];
	unsigned long queries;
	unsigned long serial; /* for "{n}" */
	unsigned active;
};

static void slot_next(struct slot *sl);

static void
slot_start(struct slot *sl)
{
	struct bench *b = sl->b;
	struct spf_opts so = {0};
	const char *tok = strstr(b->mail_from, "{n}");
	char sender[300];

	if (b->started == b->target)
		return;
	b->started++;
	/* "{n}" in the sender: a different domain per evaluation (cold) */
	if (tok != NULL)
		snprintf(sender, sizeof(sender), "%.*s%lu%s",
			 (int)(tok - b->mail_from), b->mail_from, b->serial++,
			 tok + 3);
	else
		snprintf(sender, sizeof(sender), "%s", b->mail_from);
	sl->busy = true;
	b->active++;
	so.now = (int64_t)time(NULL);
	sl->st =
	    spf_start(sl->s, b->ip, NULL, sender, "client.bench.test", &so);
	slot_next(sl);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	slot_start(arg);
}

static void
slot_done(struct slot *sl)
{
	struct bench *b = sl->b;

	b->results[spf_result(sl->s)]++;
	b->queries += spf_queries(sl->s);
	b->done++;
	b->active--;
	sl->busy = false;
	if (b->started < b->target)
		event_active(sl->kick, EV_TIMEOUT, 0);
	else if (b->active == 0)
		event_base_loopbreak(b->base);
}

static void
dns_cb(void *arg, int rcode, void *pkt, int len, int sec, char *why,
       int ratelimited)
{
	struct slot *sl = arg;
	struct spf_answer a = {0};
	size_t n = DNS_MSG_RR_MAX;

	if (sl->st != SPF_STEP_QUERY)
		return;
	buf_reset(&sl->data);
	switch (dns_answer_records(rcode, pkt, len > 0 ? (size_t)len : 0, sec,
				   (uint16_t)sl->qtype, &sl->data, sl->off,
				   sl->rlen, &n)) {
	case DNS_ANS_RECORDS:
		for (size_t i = 0; i < n; i++) {
			sl->rd[i].data = sl->data.data + sl->off[i];
			sl->rd[i].len = sl->rlen[i];
		}
		a.rcode = SPF_DNS_ANSWER;
		a.count = n;
		a.rr = sl->rd;
		break;
	case DNS_ANS_NODATA:
		a.rcode = SPF_DNS_NODATA;
		break;
	case DNS_ANS_NXDOMAIN:
		a.rcode = SPF_DNS_NXDOMAIN;
		break;
	default:
		a.rcode = SPF_DNS_TEMPFAIL;
		break;
	}
	sl->st = spf_resume(sl->s, &a);
	slot_next(sl);
}

static void
slot_next(struct slot *sl)
{
	static const int types[] = {
	    [SPF_Q_TXT] = DNS_T_TXT,   [SPF_Q_A] = DNS_T_A,
	    [SPF_Q_AAAA] = DNS_T_AAAA, [SPF_Q_MX] = DNS_T_MX,
	    [SPF_Q_PTR] = DNS_T_PTR,
	};

	while (sl->st == SPF_STEP_QUERY) {
		const struct spf_query *q = spf_query(sl->s);
		struct spf_answer fail = {.rcode = SPF_DNS_TEMPFAIL};
		int id;

		sl->qtype = types[q->type];
		if (ub_resolve_event(sl->b->ub, q->name, sl->qtype, DNS_C_IN,
				     sl, dns_cb, &id) == 0)
			return;
		sl->st = spf_resume(sl->s, &fail);
	}
	slot_done(sl);
}

static double
spf_pass(struct bench *b, struct slot *slots, unsigned conc, unsigned long n)
{
	double t0;

	b->started = b->done = b->queries = 0;
	b->target = n;
	memset(b->results, 0, sizeof(b->results));
	t0 = now_s();
	for (unsigned i = 0; i < conc && i < n; i++)
		event_active(slots[i].kick, EV_TIMEOUT, 0);
	event_base_dispatch(b->base);
	return now_s() - t0;
}

static int
cmd_spf(int argc, char **argv)
{
	struct bench b = {0};
	const char *dns = NULL;
	unsigned long n = 20000, warm = 0;
	unsigned conc = 64;
	struct slot *slots;
	double t;
	int rc;

	for (int a = 0; a + 1 < argc; a += 2) {
		if (strcmp(argv[a], "--dns") == 0)
			dns = argv[a + 1];
		else if (strcmp(argv[a], "--ip") == 0)
			b.ip = argv[a + 1];
		else if (strcmp(argv[a], "--mail-from") == 0)
			b.mail_from = argv[a + 1];
		else if (strcmp(argv[a], "-n") == 0)
			n = strtoul(argv[a + 1], NULL, 10);
		else if (strcmp(argv[a], "-c") == 0)
			conc = (unsigned)strtoul(argv[a + 1], NULL, 10);
		else if (strcmp(argv[a], "--warm") == 0)
			warm = strtoul(argv[a + 1], NULL, 10);
		else
			die("spf: unknown option");
	}
	if (dns == NULL || b.ip == NULL || b.mail_from == NULL || conc == 0)
		die("spf needs --dns, --ip, --mail-from");
	if ((b.base = event_base_new()) == NULL ||
	    (b.ub = ub_ctx_create_event(b.base)) == NULL)
		die("libevent/libunbound");
	/* as the lookup role and todoku check do */
	ub_ctx_set_option(b.ub, "do-ip6:", "yes");
	ub_ctx_set_option(b.ub, "local-zone:", "test. transparent");
	if ((rc = ub_ctx_set_fwd(b.ub, dns)) != 0) {
		fprintf(stderr, "auth_bench: --dns %s: %s\n", dns,
			ub_strerror(rc));
		return 2;
	}
	slots = calloc(conc, sizeof(*slots));
	if (slots == NULL)
		die("out of memory");
	for (unsigned i = 0; i < conc; i++) {
		slots[i].b = &b;
		if ((slots[i].s = spf_new()) == NULL ||
		    (slots[i].kick =
			 event_new(b.base, -1, 0, kick_cb, &slots[i])) == NULL)
			die("out of memory");
		buf_init(&slots[i].data, 1u << 20);
	}
	if (warm > 0) {
		t = spf_pass(&b, slots, conc, warm);
		printf("spf warmup evals %lu secs %.3f rate %.1f\n", b.done, t,
		       (double)b.done / t);
	}
	t = spf_pass(&b, slots, conc, n);
	printf("spf evals %lu concurrency %u secs %.3f rate %.1f "
	       "queries_per_eval %.2f pass %lu other %lu\n",
	       b.done, conc, t, (double)b.done / t,
	       (double)b.queries / (double)(b.done ? b.done : 1),
	       b.results[SPF_PASS], b.done - b.results[SPF_PASS]);
	for (unsigned i = 0; i < conc; i++) {
		spf_free(slots[i].s);
		event_free(slots[i].kick);
		buf_free(&slots[i].data);
	}
	free(slots);
	ub_ctx_delete(b.ub);
	event_base_free(b.base);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "gen") == 0)
		return cmd_gen(argv[2]);
	if (argc >= 6 && strcmp(argv[1], "sign") == 0)
		return cmd_sign(argv[2], argv[3], argv[4], atof(argv[5]));
	if (argc >= 6 && strcmp(argv[1], "verify") == 0)
		return cmd_verify(argv[2], argv[3], argv[4], atof(argv[5]));
	if (argc >= 5 && strcmp(argv[1], "canon") == 0)
		return cmd_canon(argv[2], argv[3], atof(argv[4]));
	if (argc >= 2 && strcmp(argv[1], "spf") == 0)
		return cmd_spf(argc - 2, argv + 2);
	fputs("usage: auth_bench gen DIR | sign|verify DIR rsa|ed25519 4k|64k "
	      "SECS | canon DIR 4k|64k SECS | spf --dns IP@PORT --ip A "
	      "--mail-from S [-n N] [-c C] [--warm N]\n",
	      stderr);
	return 64;
}
