/*
 * arc_tool — command-line driver over src/mail/arc.[ch] for the ARC
 * conformance runner (run_suite.py). DNS answers come from a file of
 * "name<TAB>record" lines, the record with "\n" and "\\" escapes; a name
 * not in the file is NXDOMAIN, a record "TIMEOUT" is a temporary failure.
 *
 *   arc_tool verify --dns F [--chunk N] [--oldest-pass] MSG
 *     prints "RESULT<TAB>N<TAB>OLDEST<TAB>REASON" and the A-R text
 *   arc_tool sign --dns F --key PEM --domain D --selector S --srv-id ID
 *                 --t T [--headers a:b:c] [--ed25519-seed HEX] MSG
 *     validates the chain, seals and prints the three fields
 *
 * Message files must already have CRLF line ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "mail/arc.h"
#include "mail/dkim_sign.h"

#define TOOL_MAX_FILE (64u << 20)
#define TOOL_MAX_RECS 64

struct dnsrec {
	char *name;
	char *txt;
	size_t len;
};

static struct dnsrec dns[TOOL_MAX_RECS];
static size_t ndns;

static int
read_file(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	if (f == NULL)
		return -1;
	buf_init(out, TOOL_MAX_FILE);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_add(out, chunk, n) < 0) {
			fclose(f);
			return -1;
		}
	fclose(f);
	return 0;
}

static size_t
unescape(char *s)
{
	size_t i, o = 0;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '\\' && s[i + 1] == 'n') {
			s[o++] = '\n';
			i++;
		} else if (s[i] == '\\' && s[i + 1] == '\\') {
			s[o++] = '\\';
			i++;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return o;
}

static int
load_dns(const char *path)
{
	struct buf b;
	char *line, *next;

	if (read_file(path, &b) < 0)
		return -1;
	for (line = b.data; line != NULL && *line != '\0'; line = next) {
		char *tab;

		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		tab = strchr(line, '\t');
		if (tab == NULL || ndns == TOOL_MAX_RECS)
			continue;
		*tab = '\0';
		dns[ndns].name = xstrdup(line);
		dns[ndns].txt = xstrdup(tab + 1);
		dns[ndns].len = unescape(dns[ndns].txt);
		ndns++;
	}
	buf_free(&b);
	return 0;
}

static void
answer_all(struct arc_verifier *v)
{
	size_t k, j;

	for (k = 0; k < arc_verify_nqueries(v); k++) {
		const char *q = arc_verify_query(v, k);
		struct dkim_slice rec[TOOL_MAX_RECS];
		size_t n = 0;
		bool timeout = false;

		if (q == NULL)
			continue;
		for (j = 0; j < ndns; j++) {
			if (strcasecmp(dns[j].name, q) != 0)
				continue;
			if (strcmp(dns[j].txt, "TIMEOUT") == 0)
				timeout = true;
			rec[n++] = (struct dkim_slice){dns[j].txt, dns[j].len};
		}
		if (timeout)
			arc_verify_answer(v, k, DKIM_DNS_TEMPFAIL, NULL, 0);
		else
			arc_verify_answer(
			    v, k, n ? DKIM_DNS_OK : DKIM_DNS_NXDOMAIN, rec, n);
	}
}

/* Verify msg; the result is copied to *out. */
static void
verify_msg(const struct buf *msg, size_t chunk, bool oldest,
	   struct arc_verify_result *out)
{
	struct arc_verify_opts o = {.oldest_pass = oldest};
	struct arc_verifier *v = arc_verify_new(&o);
	size_t off = 0;

	if (v == NULL) {
		fprintf(stderr, "arc_tool: out of memory\n");
		exit(2);
	}
	if (chunk == 0)
		chunk = msg->len ? msg->len : 1;
	while (off < msg->len) {
		size_t n = msg->len - off < chunk ? msg->len - off : chunk;

		if (arc_verify_feed(v, msg->data + off, n) == 1)
			answer_all(v);
		off += n;
	}
	arc_verify_finish(v);
	*out = *arc_verify_result(v);
	/* the reason may point into the verifier: repoint it at the copy */
	if (out->reason == arc_verify_result(v)->reason_buf)
		out->reason = out->reason_buf;
	arc_verify_free(v);
}

static const char *
opt(int argc, char **argv, const char *name)
{
	int i;

	for (i = 2; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return NULL;
}

static bool
flag(int argc, char **argv, const char *name)
{
	int i;

	for (i = 2; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return true;
	return false;
}

static int
cmd_verify(int argc, char **argv, const char *path)
{
	struct arc_verify_result r;
	const char *c = opt(argc, argv, "--chunk");
	struct buf msg, ar;

	if (read_file(path, &msg) < 0)
		return 2;
	verify_msg(&msg, c ? strtoul(c, NULL, 10) : 0,
		   flag(argc, argv, "--oldest-pass"), &r);
	buf_init(&ar, 4096);
	if (arc_verify_ar(&r, &ar) < 0)
		return 2;
	printf("%s\t%u\t%u\t%s\n%s\n", arc_result_name(r.result), r.instances,
	       r.oldest_pass, r.reason, ar.data);
	buf_free(&ar);
	buf_free(&msg);
	return 0;
}

/* The results of every Authentication-Results field of srv_id, joined with
 * "; " (the suite's A-R consolidation), unfolded onto one line. */
static void
collect_results(const struct buf *msg, const char *srv_id, struct buf *out)
{
	struct dkim_split sp;
	const char *body;
	size_t blen, i, k;

	dkim_split_init(&sp, TOOL_MAX_FILE);
	dkim_split_feed(&sp, msg->data, msg->len, &body, &blen);
	sp.in_body = true;
	if (dkim_split_fields(&sp) < 0)
		exit(2);
	for (i = 0; i < sp.nfields; i++) {
		struct dkim_slice name = {sp.hdr.data + sp.fields[i].off,
					  sp.fields[i].name_len};
		struct dkim_slice v = arc_field_value(&sp, i);
		const char *semi = memchr(v.p, ';', v.n);
		size_t a = 0, z;

		if (!dkim_slice_eqi(name, "Authentication-Results", 22) ||
		    semi == NULL)
			continue;
		while (a < v.n && (v.p[a] == ' ' || v.p[a] == '\t'))
			a++;
		z = (size_t)(semi - v.p);
		while (z > a && (v.p[z - 1] == ' ' || v.p[z - 1] == '\t'))
			z--;
		if (z - a != strlen(srv_id) ||
		    strncasecmp(v.p + a, srv_id, z - a) != 0)
			continue;
		a = (size_t)(semi - v.p) + 1;
		z = v.n;
		while (a < z && strchr(" \t\r\n", v.p[a]))
			a++;
		while (z > a && strchr(" \t\r\n;", v.p[z - 1]))
			z--;
		if (out->len > 0)
			buf_adds(out, "; ");
		for (k = a; k < z; k++)
			if (v.p[k] != '\r' && v.p[k] != '\n')
				buf_addc(out, v.p[k]);
	}
	dkim_split_free(&sp);
}

static size_t
split_headers(char *list, const char **names, size_t max)
{
	size_t n = 0;
	char *p = list, *colon;

	while (p != NULL && n < max) {
		if ((colon = strchr(p, ':')) != NULL)
			*colon++ = '\0';
		if (*p != '\0')
			names[n++] = p;
		p = colon;
	}
	return n;
}

static EVP_PKEY *
load_key(int argc, char **argv, enum dkim_alg *alg)
{
	const char *seed = opt(argc, argv, "--ed25519-seed");
	const char *pem = opt(argc, argv, "--key");
	struct buf b;
	EVP_PKEY *k;

	if (seed != NULL) {
		uint8_t s[32];
		size_t i;

		for (i = 0; i < 32 && seed[2 * i] && seed[2 * i + 1]; i++) {
			char hex[3] = {seed[2 * i], seed[2 * i + 1], 0};

			s[i] = (uint8_t)strtoul(hex, NULL, 16);
		}
		*alg = DKIM_ALG_ED25519_SHA256;
		return i == 32 ? dkim_key_ed25519_seed(s) : NULL;
	}
	if (pem == NULL || read_file(pem, &b) < 0)
		return NULL;
	*alg = DKIM_ALG_RSA_SHA256;
	k = dkim_key_load_pem(b.data, b.len);
	buf_free(&b);
	return k;
}

static int
seal(const struct buf *msg, struct arc_seal_opts *o, EVP_PKEY *key,
     struct buf *out)
{
	struct arc_sealer *s = arc_sealer_new(o, &(const char *){NULL});
	uint8_t hash[32], sig[DKIM_SIG_MAX];
	size_t n = sizeof(sig);
	const char *err = "cannot create sealer";
	int rc = -1;

	if (s == NULL)
		goto out;
	arc_sealer_feed(s, msg->data, msg->len);
	if (arc_sealer_ams_hash(s, hash, &err) < 0)
		goto out;
	err = "signing failed";
	if (dkim_sign_hash(key, o->alg, hash, sig, &n) < 0)
		goto out;
	if (arc_sealer_seal_hash(s, sig, n, hash, &err) < 0)
		goto out;
	n = sizeof(sig);
	err = "signing failed";
	if (dkim_sign_hash(key, o->alg, hash, sig, &n) < 0 ||
	    arc_sealer_headers(s, sig, n, out) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "arc_tool: seal: %s\n", err);
	arc_sealer_free(s);
	return rc;
}

static int
cmd_sign(int argc, char **argv, const char *path)
{
	struct arc_seal_opts o = {0};
	struct arc_verify_result r;
	struct buf msg, results, out;
	const char *names[DKIM_SIG_HDRS_MAX];
	char *hl = NULL;
	EVP_PKEY *key;
	int rc;

	if (read_file(path, &msg) < 0)
		return 2;
	if ((key = load_key(argc, argv, &o.alg)) == NULL) {
		fprintf(stderr, "arc_tool: no usable key\n");
		return 2;
	}
	verify_msg(&msg, 0, false, &r);
	o.chain = r.result;
	o.domain = opt(argc, argv, "--domain");
	o.selector = opt(argc, argv, "--selector");
	o.authserv_id = opt(argc, argv, "--srv-id");
	o.t = strtoull(opt(argc, argv, "--t") ? opt(argc, argv, "--t") : "0",
		       NULL, 10);
	if (opt(argc, argv, "--headers") != NULL) {
		hl = xstrdup(opt(argc, argv, "--headers"));
		o.nheaders = split_headers(hl, names, DKIM_SIG_HDRS_MAX);
		o.headers = names;
	}
	buf_init(&results, 64 * 1024);
	collect_results(&msg, o.authserv_id ? o.authserv_id : "", &results);
	o.results = results.data;
	buf_init(&out, 256 * 1024);
	rc = seal(&msg, &o, key, &out);
	if (rc == 0)
		fwrite(out.data, 1, out.len, stdout);
	fprintf(stderr, "arc_tool: chain was %s (%s)\n",
		arc_result_name(r.result), r.reason);
	EVP_PKEY_free(key);
	xfree(hl);
	buf_free(&out);
	buf_free(&results);
	buf_free(&msg);
	return rc < 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
	const char *d;

	if (argc < 3) {
		fprintf(stderr, "usage: arc_tool verify|sign [options] MSG\n");
		return 2;
	}
	if ((d = opt(argc, argv, "--dns")) != NULL && load_dns(d) < 0) {
		fprintf(stderr, "arc_tool: cannot read %s\n", d);
		return 2;
	}
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc, argv, argv[argc - 1]);
	if (strcmp(argv[1], "sign") == 0)
		return cmd_sign(argc, argv, argv[argc - 1]);
	fprintf(stderr, "arc_tool: unknown command %s\n", argv[1]);
	return 2;
}
