/* srs — Sender Rewriting Scheme; contract in srs.h. */
#include "mail/srs.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mail/addr.h"

#define SRS_DAY_SECONDS 86400
#define SRS_TS_MOD 1024	     /* two base32 characters */
#define SRS_MAILBOX_MAX 254  /* ADDR_PATH_MAX without "<" and ">" */
#define SRS_MAC_IN_MAX 600   /* tag + fields of a <= 254-octet address */
#define SRS_SEPARATORS "=+-" /* accepted after the SRS0/SRS1 tag */

static const char srs_b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* A bounded string being built; over is sticky. */
struct srs_buf {
	char *p;
	size_t cap; /* bytes including the NUL */
	size_t n;
	bool over;
};

/* The MAC input: lowercased fields, each followed by a NUL. */
struct srs_mac_in {
	unsigned char b[SRS_MAC_IN_MAX];
	size_t n;
	bool over;
};

/* Fields of an SRS local part after the tag and its separator. */
struct srs_parts {
	char tag;	  /* '0' or '1' */
	const char *hash; /* base32, hash_n characters */
	size_t hash_n;
	const char *ts;	  /* SRS0: two base32 characters */
	const char *host; /* SRS0: original domain; SRS1: first forwarder */
	size_t host_n;
	const char *user; /* SRS0: original local; SRS1: SRS0 part after tag */
	size_t user_n;
};

static void
srs_buf_init(struct srs_buf *b, char *p, size_t cap)
{
	b->p = p;
	b->cap = cap;
	b->n = 0;
	b->over = false;
	p[0] = '\0';
}

static void
srs_put(struct srs_buf *b, const char *s, size_t n)
{
	if (b->over || n >= b->cap - b->n) {
		b->over = true;
		return;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void
srs_puts(struct srs_buf *b, const char *s)
{
	srs_put(b, s, strlen(s));
}

static unsigned char
srs_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static unsigned char
srs_upper(unsigned char c)
{
	return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
}

/* Value of a base32 character in either case, or -1. */
static int
srs_b32_val(char c)
{
	const char *p;

	if (c == '\0')
		return -1;
	p = strchr(srs_b32, srs_upper((unsigned char)c));
	return p == NULL ? -1 : (int)(p - srs_b32);
}

static bool
srs_b32_valid(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (srs_b32_val(s[i]) < 0)
			return false;
	return true;
}

/* Day number mod 1024, flooring for times before 1970. */
static unsigned
srs_day(int64_t now)
{
	int64_t d = now / SRS_DAY_SECONDS;

	if (now % SRS_DAY_SECONDS < 0)
		d--;
	d %= SRS_TS_MOD;
	if (d < 0)
		d += SRS_TS_MOD;
	return (unsigned)d;
}

static void
srs_mac_add(struct srs_mac_in *m, const char *s, size_t n)
{
	size_t i;

	if (m->over || n >= sizeof(m->b) - m->n) {
		m->over = true;
		return;
	}
	for (i = 0; i < n; i++)
		m->b[m->n++] = srs_lower((unsigned char)s[i]);
	m->b[m->n++] = '\0';
}

/* The MAC input of the parts: see "What is signed" in srs.h. */
static void
srs_mac_input(const struct srs_parts *sp, struct srs_mac_in *m)
{
	m->n = 0;
	m->over = false;
	srs_mac_add(m, &sp->tag, 1);
	if (sp->tag == '0')
		srs_mac_add(m, sp->ts, 2);
	srs_mac_add(m, sp->host, sp->host_n);
	srs_mac_add(m, sp->user, sp->user_n);
}

/* First len*5 bits of HMAC-SHA-256(key, m) in base32; out[len + 1]. */
static enum srs_err
srs_hash(const struct srs_secret *k, const struct srs_mac_in *m, size_t len,
	 char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t i, bit;
	unsigned v;

	if (m->over)
		return SRS_E_TOO_LONG;
	if (HMAC(EVP_sha256(), k->key, (int)k->len, m->b, m->n, md, &mdlen) ==
		NULL ||
	    (size_t)mdlen * 8 < len * 5 + 8)
		return SRS_E_CRYPTO;
	for (i = 0; i < len; i++) {
		bit = i * 5;
		v = ((unsigned)md[bit / 8] << 8) | md[bit / 8 + 1];
		v = (v >> (11 - bit % 8)) & 31;
		out[i] = srs_b32[v];
	}
	out[len] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
	return SRS_OK;
}

/* 'SRS0'/'SRS1' (any case) followed by a separator: '0', '1' or 0. */
static char
srs_tag(const char *local, size_t n)
{
	if (n < 6 || strncasecmp(local, "SRS", 3) != 0 ||
	    (local[3] != '0' && local[3] != '1') ||
	    strchr(SRS_SEPARATORS, local[4]) == NULL || local[4] == '\0')
		return 0;
	return local[3];
}

/* Next '='-terminated field of [*p, end); false if there is none. */
static bool
srs_field(const char **p, const char *end, const char **f, size_t *fn)
{
	const char *eq = memchr(*p, '=', (size_t)(end - *p));

	if (eq == NULL)
		return false;
	*f = *p;
	*fn = (size_t)(eq - *p);
	*p = eq + 1;
	return true;
}

/* Is this hash acceptable? Ours: base32, min_hash..SRS_HASH_MAX long.
 * Foreign (min_hash 0): any non-empty text, other forwarders may use
 * base64 or other lengths; we never check it. */
static bool
srs_hash_syntax(const char *h, size_t n, unsigned min_hash)
{
	if (min_hash == 0)
		return n > 0;
	return n >= min_hash && n <= SRS_HASH_MAX && srs_b32_valid(h, n);
}

/* A domain name (UTF-8 allowed, as in the addresses we embed); literals
 * cannot appear, they are refused before rewriting. */
static bool
srs_host_ok(const char *h, size_t n)
{
	char tmp[ADDR_DOMAIN_MAX + 3];
	struct mailaddr a;

	if (n == 0 || n > ADDR_DOMAIN_MAX || h[0] == '[')
		return false;
	memcpy(tmp, "x@", 2);
	memcpy(tmp + 2, h, n);
	return addr_parse_mailbox(tmp, n + 2, ADDR_F_UTF8, &a) == ADDR_OK;
}

/* Split an SRS local part (tag already checked) into its fields. */
static enum srs_err
srs_parse(const char *local, size_t n, unsigned min_hash, struct srs_parts *sp)
{
	const char *p = local + 5, *end = local + n, *ts;
	size_t ts_n;

	memset(sp, 0, sizeof(*sp));
	sp->tag = local[3];
	if (!srs_field(&p, end, &sp->hash, &sp->hash_n) ||
	    !srs_hash_syntax(sp->hash, sp->hash_n, min_hash))
		return SRS_E_SYNTAX;
	if (sp->tag == '0') {
		if (!srs_field(&p, end, &ts, &ts_n) || ts_n != 2 ||
		    !srs_b32_valid(ts, 2))
			return SRS_E_SYNTAX;
		sp->ts = ts;
	}
	if (!srs_field(&p, end, &sp->host, &sp->host_n) ||
	    !srs_host_ok(sp->host, sp->host_n))
		return SRS_E_SYNTAX;
	sp->user = p;
	sp->user_n = (size_t)(end - p);
	if (sp->user_n == 0)
		return SRS_E_SYNTAX;
	/* SRS1 keeps the SRS0 part from its separator: "=HHH=TT=d=l". */
	if (sp->tag == '1' &&
	    (sp->user_n < 2 || strchr(SRS_SEPARATORS, sp->user[0]) == NULL))
		return SRS_E_SYNTAX;
	return SRS_OK;
}

static bool
srs_key_ok(const struct srs_secret *k)
{
	return k != NULL && k->key != NULL && k->len > 0 && k->len <= INT_MAX;
}

static bool
srs_hash_len(unsigned *len)
{
	if (*len == 0)
		*len = SRS_HASH_DEFAULT;
	return *len >= SRS_HASH_MIN && *len <= SRS_HASH_MAX;
}

/* Local part "SRSx=" hash "=" [TT "="] host "=" user, then "@" domain. */
static enum srs_err
srs_emit(const struct srs_parts *sp, const char *domain, char *out,
	 size_t outlen)
{
	char local[ADDR_LOCAL_MAX + 1];
	struct srs_buf b;
	size_t i;

	srs_buf_init(&b, local, sizeof(local));
	srs_puts(&b, sp->tag == '0' ? "SRS0=" : "SRS1=");
	srs_put(&b, sp->hash, sp->hash_n);
	srs_puts(&b, "=");
	if (sp->tag == '0') {
		srs_put(&b, sp->ts, 2);
		srs_puts(&b, "=");
	}
	srs_put(&b, sp->host, sp->host_n);
	srs_puts(&b, "=");
	srs_put(&b, sp->user, sp->user_n);
	if (b.over)
		return SRS_E_TOO_LONG;
	srs_buf_init(&b, out,
		     outlen < SRS_MAILBOX_MAX + 1 ? outlen
						  : SRS_MAILBOX_MAX + 1);
	srs_puts(&b, local);
	srs_puts(&b, "@");
	for (i = 0; domain[i] != '\0'; i++) {
		char c = (char)srs_lower((unsigned char)domain[i]);

		srs_put(&b, &c, 1);
	}
	if (b.over) {
		out[0] = '\0';
		return SRS_E_TOO_LONG;
	}
	return SRS_OK;
}

/* Compute our hash for sp (tag, ts, host, user set) into hash[]. */
static enum srs_err
srs_sign(const struct srs_secret *k, unsigned len, struct srs_parts *sp,
	 char *hash)
{
	struct srs_mac_in m;
	enum srs_err e;

	srs_mac_input(sp, &m);
	e = srs_hash(k, &m, len, hash);
	sp->hash = hash;
	sp->hash_n = len;
	return e;
}

/* Our own SRS address, unchanged (the domain as parsed: lowercase). */
static enum srs_err
srs_copy(const struct mailaddr *a, char *out, size_t outlen)
{
	struct srs_buf b;

	srs_buf_init(&b, out, outlen);
	srs_puts(&b, a->local);
	srs_puts(&b, "@");
	srs_puts(&b, a->domain);
	return b.over ? SRS_E_TOO_LONG : SRS_OK;
}

static enum srs_err
srs_forward_addr(const struct srs_secret *k, unsigned len, int64_t now,
		 const struct mailaddr *a, const char *our_domain, char *out,
		 size_t outlen)
{
	char hash[SRS_HASH_MAX + 1], ts[3];
	struct srs_parts sp;
	size_t ln = strlen(a->local);
	char tag = srs_tag(a->local, ln);
	unsigned day;
	enum srs_err e;

	if (tag != 0 && strcasecmp(a->domain, our_domain) == 0)
		return srs_copy(a, out, outlen);
	if (tag == '1' && srs_parse(a->local, ln, 0, &sp) == SRS_OK) {
		/* keep first forwarder and SRS0 part; our hash replaces */
	} else if (tag == '0') {
		memset(&sp, 0, sizeof(sp));
		sp.tag = '1';
		sp.host = a->domain;
		sp.host_n = strlen(a->domain);
		sp.user = a->local + 4;
		sp.user_n = ln - 4;
	} else {
		day = srs_day(now);
		ts[0] = srs_b32[day >> 5];
		ts[1] = srs_b32[day & 31];
		ts[2] = '\0';
		memset(&sp, 0, sizeof(sp));
		sp.tag = '0';
		sp.ts = ts;
		sp.host = a->domain;
		sp.host_n = strlen(a->domain);
		sp.user = a->local;
		sp.user_n = ln;
	}
	if ((e = srs_sign(k, len, &sp, hash)) != SRS_OK)
		return e;
	return srs_emit(&sp, our_domain, out, outlen);
}

enum srs_err
srs_forward(const struct srs_secret *secret, unsigned hash_len, int64_t now,
	    const char *sender, const char *our_domain, char *out,
	    size_t outlen)
{
	struct mailaddr a;
	size_t n;
	enum srs_err e;

	if (out == NULL || outlen < SRS_OUT_SIZE)
		return SRS_E_ARG;
	out[0] = '\0';
	if (!srs_key_ok(secret) || !srs_hash_len(&hash_len) || sender == NULL ||
	    our_domain == NULL ||
	    !addr_domain_valid(our_domain,
			       strnlen(our_domain, ADDR_DOMAIN_MAX + 1)))
		return SRS_E_ARG;
	if (sender[0] == '\0' || strcmp(sender, "<>") == 0)
		return SRS_OK;
	n = strnlen(sender, SRS_MAILBOX_MAX + 1);
	if (n > SRS_MAILBOX_MAX ||
	    addr_parse_mailbox(sender, n, ADDR_F_UTF8, &a) != ADDR_OK ||
	    a.is_null)
		return SRS_E_SYNTAX;
	if (a.quoted || a.domain[0] == '[')
		return SRS_E_UNSUPPORTED;
	e = srs_forward_addr(secret, hash_len, now, &a, our_domain, out,
			     outlen);
	if (e != SRS_OK)
		out[0] = '\0';
	return e;
}

/* Does hash sp->hash match the MAC of sp under any secret? */
static enum srs_err
srs_verify(const struct srs_secret *secrets, size_t nsecrets,
	   const struct srs_parts *sp)
{
	char want[SRS_HASH_MAX + 1], got[SRS_HASH_MAX + 1];
	struct srs_mac_in m;
	size_t i;
	enum srs_err e;
	bool ok = false;

	for (i = 0; i < sp->hash_n; i++)
		got[i] = (char)srs_upper((unsigned char)sp->hash[i]);
	srs_mac_input(sp, &m);
	for (i = 0; i < nsecrets; i++) {
		if ((e = srs_hash(&secrets[i], &m, sp->hash_n, want)) != SRS_OK)
			return e;
		/* no early exit: time does not tell which secret matched */
		if (CRYPTO_memcmp(want, got, sp->hash_n) == 0)
			ok = true;
	}
	return ok ? SRS_OK : SRS_E_HASH;
}

static bool
srs_fresh(const struct srs_parts *sp, int64_t now, unsigned max_age)
{
	unsigned then =
	    (unsigned)(srs_b32_val(sp->ts[0]) << 5 | srs_b32_val(sp->ts[1]));
	unsigned age = (srs_day(now) + SRS_TS_MOD - then) % SRS_TS_MOD;

	/* one day ahead: another host sharing the secret passed midnight */
	return age <= max_age || age == SRS_TS_MOD - 1;
}

/* The reversed address: "user@host", or "SRS0" user "@" host. */
static enum srs_err
srs_unwrap(const struct srs_parts *sp, char *out, size_t outlen)
{
	struct mailaddr a;
	struct srs_buf b;

	srs_buf_init(&b, out,
		     SRS_MAILBOX_MAX + 1 < outlen ? SRS_MAILBOX_MAX + 1
						  : outlen);
	if (sp->tag == '1')
		srs_puts(&b, "SRS0");
	srs_put(&b, sp->user, sp->user_n);
	srs_puts(&b, "@");
	srs_put(&b, sp->host, sp->host_n);
	if (b.over ||
	    addr_parse_mailbox(out, b.n, ADDR_F_UTF8, &a) != ADDR_OK ||
	    a.quoted)
		return SRS_E_SYNTAX;
	return SRS_OK;
}

static enum srs_err
srs_reverse_local(const struct srs_secret *secrets, size_t nsecrets,
		  unsigned hash_len, int64_t now, unsigned max_age,
		  const char *local, size_t n, char *out, size_t outlen)
{
	struct srs_parts sp;
	enum srs_err e;

	if (srs_tag(local, n) == 0)
		return SRS_E_NOT_SRS;
	if (n > ADDR_LOCAL_MAX || memchr(local, '"', n) != NULL)
		return SRS_E_SYNTAX;
	if ((e = srs_parse(local, n, hash_len, &sp)) != SRS_OK)
		return e;
	if ((e = srs_verify(secrets, nsecrets, &sp)) != SRS_OK)
		return e;
	if (sp.tag == '0' && !srs_fresh(&sp, now, max_age))
		return SRS_E_EXPIRED;
	return srs_unwrap(&sp, out, outlen);
}

enum srs_err
srs_reverse(const struct srs_secret *secrets, size_t nsecrets,
	    unsigned hash_len, int64_t now, unsigned max_age_days,
	    const char *address, char *out, size_t outlen)
{
	const char *at;
	size_t i, n;
	enum srs_err e;

	if (out == NULL || outlen < SRS_OUT_SIZE)
		return SRS_E_ARG;
	out[0] = '\0';
	if (secrets == NULL || nsecrets == 0 || address == NULL ||
	    !srs_hash_len(&hash_len) || max_age_days > SRS_MAX_AGE_LIMIT)
		return SRS_E_ARG;
	for (i = 0; i < nsecrets; i++)
		if (!srs_key_ok(&secrets[i]))
			return SRS_E_ARG;
	if (max_age_days == 0)
		max_age_days = SRS_MAX_AGE_DEFAULT;
	n = strnlen(address, SRS_MAILBOX_MAX + 1);
	if (n > SRS_MAILBOX_MAX)
		return srs_is_srs(address) ? SRS_E_SYNTAX : SRS_E_NOT_SRS;
	at = memrchr(address, '@', n);
	e = srs_reverse_local(secrets, nsecrets, hash_len, now, max_age_days,
			      address, at != NULL ? (size_t)(at - address) : n,
			      out, outlen);
	if (e != SRS_OK)
		out[0] = '\0';
	return e;
}

bool
srs_is_srs(const char *address)
{
	const char *at;
	size_t n;

	if (address == NULL)
		return false;
	n = strnlen(address, SRS_MAILBOX_MAX + 1);
	at = memrchr(address, '@', n);
	return srs_tag(address, at != NULL ? (size_t)(at - address) : n) != 0;
}

const char *
srs_strerror(enum srs_err e)
{
	switch (e) {
	case SRS_OK:
		return "ok";
	case SRS_E_ARG:
		return "invalid SRS configuration or buffer";
	case SRS_E_SYNTAX:
		return "malformed SRS address";
	case SRS_E_NOT_SRS:
		return "not an SRS address";
	case SRS_E_HASH:
		return "SRS hash does not match (forged or wrong secret)";
	case SRS_E_EXPIRED:
		return "SRS address has expired";
	case SRS_E_TOO_LONG:
		return "SRS rewrite would exceed 64-octet local part or "
		       "254-octet address";
	case SRS_E_UNSUPPORTED:
		return "quoted local part or address literal cannot be "
		       "rewritten with SRS";
	case SRS_E_CRYPTO:
		return "HMAC computation failed";
	}
	return "unknown SRS error";
}
