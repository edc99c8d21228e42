/* spf — see spf.h. */
#include "mail/spf.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"

/* Internal macro flags; SPF_MACRO_EXP is both. */
#define MF_CRT 0x1 /* letters c, r, t */
#define MF_SP 0x2  /* literal spaces (explain-string) */
#define VAL_MAX 1024
#define DEPTH_MAX (SPF_DNS_MECH_MAX + 2)
#define TERM_TEXT_MAX 160

/* ---------------------------------------------------------------- */
/* character classes (ASCII only, locale-independent)                */

static bool
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(int c)
{
	return is_alpha(c) || is_digit(c);
}

static int
to_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static bool
is_delim(int c)
{
	return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' ||
	       c == '_' || c == '=';
}

static bool
ci_equal(const char *a, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lit[i] == '\0' || to_lower((unsigned char)a[i]) != lit[i])
			return false;
	return lit[n] == '\0';
}

static bool
ci_streq(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++)
		if (to_lower((unsigned char)*a) != to_lower((unsigned char)*b))
			return false;
	return *a == *b;
}

/* ---------------------------------------------------------------- */
/* macro tokens (§7.1)                                                */

struct mtok {
	size_t len; /* octets consumed */
	char kind;  /* 'L' literal or escape, 'U' "%-", 'M' macro */
	char ch;    /* literal character, or macro letter (lowercase) */
	bool upper; /* URL-escape the expansion */
	bool rev;   /* 'r' transformer */
	unsigned digits;
	const char *delim;
	size_t ndelim;
};

static bool
macro_letter_ok(int c, unsigned flags)
{
	if (c != '\0' && strchr("slodiphv", c) != NULL)
		return true;
	return (flags & MF_CRT) && c != '\0' && strchr("crt", c) != NULL;
}

static bool
mtok_next(const char *s, size_t n, unsigned flags, struct mtok *t)
{
	unsigned char c = (unsigned char)s[0];
	size_t i;

	memset(t, 0, sizeof(*t));
	if (c != '%') {
		if (!(c >= 0x21 && c <= 0x7e) && !(c == ' ' && (flags & MF_SP)))
			return false;
		t->kind = 'L';
		t->ch = (char)c;
		t->len = 1;
		return true;
	}
	if (n < 2)
		return false;
	t->len = 2;
	t->kind = 'L';
	switch (s[1]) {
	case '%':
		t->ch = '%';
		return true;
	case '_':
		t->ch = ' ';
		return true;
	case '-':
		t->kind = 'U';
		return true;
	case '{':
		break;
	default:
		return false;
	}
	if (n < 4)
		return false;
	t->kind = 'M';
	t->ch = (char)to_lower((unsigned char)s[2]);
	t->upper = s[2] >= 'A' && s[2] <= 'Z';
	if (!macro_letter_ok(t->ch, flags))
		return false;
	for (i = 3; i < n && is_digit((unsigned char)s[i]); i++)
		if (t->digits < 1000)
			t->digits = t->digits * 10 + (unsigned)(s[i] - '0');
	if (i > 3 && t->digits == 0)
		return false; /* %{d0}: the count must be nonzero */
	if (i < n && to_lower((unsigned char)s[i]) == 'r') {
		t->rev = true;
		i++;
	}
	t->delim = s + i;
	while (i < n && is_delim((unsigned char)s[i]))
		i++;
	t->ndelim = (size_t)(s + i - t->delim);
	if (i >= n || s[i] != '}')
		return false;
	t->len = i + 1;
	return true;
}

static unsigned
internal_flags(unsigned flags)
{
	return (flags & SPF_MACRO_EXP) ? (MF_CRT | MF_SP) : 0;
}

static bool
macro_valid_f(const char *s, size_t n, unsigned mf)
{
	struct mtok t;
	size_t i;

	for (i = 0; i < n; i += t.len)
		if (!mtok_next(s + i, n - i, mf, &t))
			return false;
	return true;
}

bool
spf_macro_valid(const char *s, size_t n, unsigned flags)
{
	return macro_valid_f(s, n, internal_flags(flags));
}

bool
spf_macro_uses_p(const char *s, size_t n)
{
	struct mtok t;
	size_t i;

	for (i = 0; i < n; i += t.len) {
		if (!mtok_next(s + i, n - i, MF_CRT | MF_SP, &t))
			return false;
		if (t.kind == 'M' && t.ch == 'p')
			return true;
	}
	return false;
}

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static bool
toplabel_valid(const char *s, size_t n)
{
	bool alpha = false, hyphen = false;
	size_t i;

	if (n == 0 || !is_alnum((unsigned char)s[0]) ||
	    !is_alnum((unsigned char)s[n - 1]))
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] == '-')
			hyphen = true;
		else if (is_alpha((unsigned char)s[i]))
			alpha = true;
		else if (!is_digit((unsigned char)s[i]))
			return false;
	}
	return alpha || hyphen;
}

bool
spf_domain_spec_valid(const char *s, size_t n)
{
	struct mtok t;
	size_t i, run = 0, end;
	bool last_macro = false;

	if (n == 0)
		return false;
	for (i = 0; i < n; i += t.len) {
		if (!mtok_next(s + i, n - i, 0, &t))
			return false;
		last_macro = !(t.kind == 'L' && t.len == 1);
		if (last_macro)
			run = i + t.len;
	}
	if (last_macro)
		return true; /* domain-end = macro-expand */
	/* domain-end = "." toplabel [ "." ], inside the trailing literals */
	end = n;
	if (end > run && s[end - 1] == '.')
		end--;
	for (i = end; i > run; i--)
		if (s[i - 1] == '.')
			return toplabel_valid(s + i, end - i);
	return false;
}

/* ---------------------------------------------------------------- */
/* macro expansion (§7.3)                                             */

struct out {
	char *p;
	size_t len, sz;
	bool over;
};

static void
out_c(struct out *o, char c)
{
	if (o->len + 1 >= o->sz) {
		o->over = true;
		return;
	}
	o->p[o->len++] = c;
}

static void
out_s(struct out *o, const char *s)
{
	for (; *s != '\0'; s++)
		out_c(o, *s);
}

static void
ip_nibbles(const uint8_t *ip, char *v, size_t vsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, k = 0;

	for (i = 0; i < 16 && k + 4 < vsz; i++) {
		v[k++] = hex[ip[i] >> 4];
		v[k++] = '.';
		v[k++] = hex[ip[i] & 15];
		v[k++] = (i == 15) ? '\0' : '.';
	}
	if (k < vsz)
		v[k] = '\0';
}

static void
macro_value(const struct spf_macro_env *e, char letter, char *v, size_t vsz)
{
	const char *s = NULL;

	switch (letter) {
	case 's':
		snprintf(v, vsz, "%s@%s", e->local, e->odomain);
		return;
	case 'l':
		s = e->local;
		break;
	case 'o':
		s = e->odomain;
		break;
	case 'd':
		s = e->domain;
		break;
	case 'h':
		s = e->helo;
		break;
	case 'r':
		s = (e->receiver != NULL) ? e->receiver : "unknown";
		break;
	case 'p':
		s = (e->ptr != NULL) ? e->ptr : "unknown";
		break;
	case 'v':
		s = e->v6 ? "ip6" : "in-addr";
		break;
	case 't':
		snprintf(v, vsz, "%" PRId64, e->now);
		return;
	case 'i':
		if (e->v6) {
			ip_nibbles(e->ip, v, vsz);
			return;
		}
		/* FALLTHROUGH */
	case 'c':
		if (inet_ntop(e->v6 ? AF_INET6 : AF_INET, e->ip, v,
			      (socklen_t)vsz) == NULL)
			v[0] = '\0';
		return;
	default:
		break;
	}
	snprintf(v, vsz, "%s", s != NULL ? s : "");
}

static void
out_part(struct out *o, const char *s, size_t n, bool escape)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!escape || is_alnum(c) || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			out_c(o, (char)c);
		} else {
			out_c(o, '%');
			out_c(o, hex[c >> 4]);
			out_c(o, hex[c & 15]);
		}
	}
}

static bool
tok_is_delim(const struct mtok *t, char c)
{
	if (t->ndelim == 0)
		return c == '.';
	return c != '\0' && memchr(t->delim, c, t->ndelim) != NULL;
}

/* Split, reverse, keep the rightmost parts, join with "." (§7.3). */
static void
macro_transform(struct out *o, const struct mtok *t, const char *v)
{
	uint16_t st[VAL_MAX / 2 + 2], ln[VAL_MAX / 2 + 2];
	size_t n = 0, i, first, len = strlen(v), begin = 0;

	for (i = 0; i <= len && n < VAL_MAX / 2 + 1; i++) {
		if (i == len || tok_is_delim(t, v[i])) {
			st[n] = (uint16_t)begin;
			ln[n] = (uint16_t)(i - begin);
			n++;
			begin = i + 1;
		}
	}
	if (t->rev) {
		for (i = 0; i < n / 2; i++) {
			uint16_t a = st[i], b = ln[i];

			st[i] = st[n - 1 - i];
			ln[i] = ln[n - 1 - i];
			st[n - 1 - i] = a;
			ln[n - 1 - i] = b;
		}
	}
	first = (t->digits > 0 && t->digits < n) ? n - t->digits : 0;
	for (i = first; i < n; i++) {
		if (i > first)
			out_c(o, '.');
		out_part(o, v + st[i], ln[i], t->upper);
	}
}

long
spf_macro_expand(const char *s, size_t n, unsigned flags,
		 const struct spf_macro_env *env, char *out, size_t outsz)
{
	struct out o = {out, 0, outsz, false};
	unsigned mf = internal_flags(flags);
	char v[VAL_MAX];
	struct mtok t;
	size_t i;

	if (outsz == 0)
		return -1;
	for (i = 0; i < n; i += t.len) {
		if (!mtok_next(s + i, n - i, mf, &t))
			return -1;
		if (t.kind == 'L') {
			out_c(&o, t.ch);
		} else if (t.kind == 'U') {
			out_s(&o, "%20");
		} else {
			macro_value(env, t.ch, v, sizeof(v));
			macro_transform(&o, &t, v);
		}
		if (o.over)
			return -1;
	}
	out[o.len] = '\0';
	return (long)o.len;
}

bool
spf_name_fix(char *name)
{
	size_t len = strlen(name), i, lab = 0;
	char *dot;

	if (len > 0 && name[len - 1] == '.')
		name[--len] = '\0';
	while (len > SPF_NAME_MAX) {
		dot = memchr(name, '.', len);
		if (dot == NULL)
			return false;
		len -= (size_t)(dot + 1 - name);
		memmove(name, dot + 1, len + 1);
	}
	if (len == 0)
		return false;
	for (i = 0; i <= len; i++) {
		if (i == len || name[i] == '.') {
			if (lab == 0 || lab > 63)
				return false;
			lab = 0;
		} else {
			lab++;
		}
	}
	return true;
}

/* ---------------------------------------------------------------- */
/* record parser (§4.6, §5, §6)                                       */

bool
spf_record_is_spf(const char *rec, size_t len)
{
	return len >= 6 && ci_equal(rec, 6, "v=spf1") &&
	       (len == 6 || rec[6] == ' ');
}

static int perr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
perr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* 1*DIGIT without leading zeros, at most max. */
static bool
parse_num(const char *s, size_t n, unsigned max, unsigned *v)
{
	size_t i;

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return false;
	*v = 0;
	for (i = 0; i < n; i++) {
		if (!is_digit((unsigned char)s[i]))
			return false;
		*v = *v * 10 + (unsigned)(s[i] - '0');
	}
	return *v <= max;
}

/*
 * Take a dual-cidr-length off the end of s: returns the length left
 * before it, or -1 on a malformed length.
 */
static long
cidr_suffix(const char *s, size_t n, struct spf_term *t)
{
	size_t e = n, d = n;
	unsigned v;

	while (d > 0 && is_digit((unsigned char)s[d - 1]))
		d--;
	if (d < e && d >= 2 && s[d - 1] == '/' && s[d - 2] == '/') {
		if (!parse_num(s + d, e - d, 128, &v))
			return -1;
		t->cidr6 = (uint8_t)v;
		e = d - 2;
		d = e;
		while (d > 0 && is_digit((unsigned char)s[d - 1]))
			d--;
	}
	if (d < e && d >= 1 && s[d - 1] == '/') {
		if (d >= 2 && s[d - 2] == '/')
			return -1;
		if (!parse_num(s + d, e - d, 32, &v))
			return -1;
		t->cidr4 = (uint8_t)v;
		e = d - 1;
	}
	return (long)e;
}

static bool
parse_ip4(const char *s, size_t n, uint8_t *ip)
{
	size_t i = 0, part;
	unsigned v;

	for (part = 0; part < 4; part++) {
		size_t b = i;

		while (i < n && is_digit((unsigned char)s[i]))
			i++;
		if (!parse_num(s + b, i - b, 255, &v))
			return false;
		ip[part] = (uint8_t)v;
		if (part < 3) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == n;
}

/* ip4:net[/len] or ip6:net[/len]; s is what follows the colon. */
static bool
parse_ipnet(const char *s, size_t n, struct spf_term *t, bool v6)
{
	const char *slash = memchr(s, '/', n);
	size_t alen = (slash != NULL) ? (size_t)(slash - s) : n;
	char tmp[64];
	unsigned v;

	if (slash != NULL) {
		if (!parse_num(slash + 1, n - alen - 1, v6 ? 128 : 32, &v))
			return false;
		if (v6)
			t->cidr6 = (uint8_t)v;
		else
			t->cidr4 = (uint8_t)v;
	}
	if (!v6)
		return parse_ip4(s, alen, t->ip);
	if (alen == 0 || alen >= sizeof(tmp))
		return false;
	memcpy(tmp, s, alen);
	tmp[alen] = '\0';
	return inet_pton(AF_INET6, tmp, t->ip) == 1;
}

static const struct {
	const char *name;
	enum spf_kind kind;
} mech_names[] = {
    {"all", SPF_T_ALL}, {"include", SPF_T_INCLUDE}, {"a", SPF_T_A},
    {"mx", SPF_T_MX},	{"ptr", SPF_T_PTR},	    {"ip4", SPF_T_IP4},
    {"ip6", SPF_T_IP6}, {"exists", SPF_T_EXISTS},
};

static int
parse_modifier(const char *rec, size_t off, size_t nlen, size_t n,
	       struct spf_record *r, struct spf_term *t, char *err,
	       size_t errlen)
{
	const char *name = rec + off, *val = name + nlen + 1;
	size_t vlen = n - nlen - 1;
	int idx = (int)r->nterms;

	t->doff = (uint16_t)(off + nlen + 1);
	t->dlen = (uint16_t)vlen;
	if (ci_equal(name, nlen, "redirect") || ci_equal(name, nlen, "exp")) {
		bool redir = to_lower((unsigned char)name[0]) == 'r';
		int *slot = redir ? &r->redirect : &r->exp;

		if (*slot >= 0)
			return perr(err, errlen, "duplicate %s modifier",
				    redir ? "redirect" : "exp");
		if (!spf_domain_spec_valid(val, vlen))
			return perr(err, errlen, "bad domain-spec in %s=",
				    redir ? "redirect" : "exp");
		t->kind = redir ? SPF_T_REDIRECT : SPF_T_EXP;
		*slot = idx;
		return 0;
	}
	if (!macro_valid_f(val, vlen, MF_CRT))
		return perr(err, errlen, "bad macro-string in modifier");
	t->kind = SPF_T_UNKNOWN_MOD;
	return 0;
}

/* The part of a mechanism after its name: ":domain-spec" and CIDRs. */
static int
parse_mech_arg(const char *rec, size_t aoff, size_t alen, struct spf_term *t,
	       char *err, size_t errlen)
{
	const char *a = rec + aoff;
	bool cidr = t->kind == SPF_T_A || t->kind == SPF_T_MX;
	bool need = t->kind == SPF_T_INCLUDE || t->kind == SPF_T_EXISTS;
	long dl;

	if (t->kind == SPF_T_ALL)
		return alen == 0 ? 0 : perr(err, errlen, "junk after all");
	if (t->kind == SPF_T_IP4 || t->kind == SPF_T_IP6) {
		if (alen < 2 || a[0] != ':' ||
		    !parse_ipnet(a + 1, alen - 1, t, t->kind == SPF_T_IP6))
			return perr(err, errlen, "bad ip%c network",
				    t->kind == SPF_T_IP6 ? '6' : '4');
		return 0;
	}
	if (alen == 0)
		return need ? perr(err, errlen, "missing domain-spec") : 0;
	if (a[0] == '/') {
		if (!cidr || cidr_suffix(a, alen, t) != 0)
			return perr(err, errlen, "bad CIDR length");
		return 0;
	}
	if (a[0] != ':')
		return perr(err, errlen, "unknown mechanism");
	dl = (long)alen - 1;
	if (cidr)
		dl = cidr_suffix(a + 1, alen - 1, t);
	if (dl < 0)
		return perr(err, errlen, "bad CIDR length");
	if (!spf_domain_spec_valid(a + 1, (size_t)dl))
		return perr(err, errlen, "bad domain-spec");
	t->doff = (uint16_t)(aoff + 1);
	t->dlen = (uint16_t)dl;
	return 0;
}

static int
parse_term(const char *rec, size_t off, size_t n, struct spf_record *r,
	   char *err, size_t errlen)
{
	struct spf_term *t = &r->terms[r->nterms];
	const char *p = rec + off;
	size_t k = 0, m, i;

	if (r->nterms >= SPF_TERMS_MAX)
		return perr(err, errlen, "more than %d terms", SPF_TERMS_MAX);
	memset(t, 0, sizeof(*t));
	t->qual = '+';
	t->cidr4 = 32;
	t->cidr6 = 128;
	t->off = (uint16_t)off;
	t->len = (uint16_t)n;
	if (strchr("+-~?", p[0]) != NULL) {
		t->qual = p[0];
		k = 1;
	} else if (is_alpha((unsigned char)p[0])) {
		for (m = 1; m < n; m++)
			if (!is_alnum((unsigned char)p[m]) && p[m] != '-' &&
			    p[m] != '_' && p[m] != '.')
				break;
		if (m < n && p[m] == '=') {
			if (parse_modifier(rec, off, m, n, r, t, err, errlen) <
			    0)
				return -1;
			r->nterms++;
			return 0;
		}
	}
	for (m = k; m < n && p[m] != ':' && p[m] != '/'; m++)
		;
	for (i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++)
		if (ci_equal(p + k, m - k, mech_names[i].name))
			break;
	if (i == sizeof(mech_names) / sizeof(mech_names[0]))
		return perr(err, errlen, "unknown mechanism \"%.*s\"",
			    (int)(m - k > 40 ? 40 : m - k), p + k);
	t->kind = (uint8_t)mech_names[i].kind;
	if (parse_mech_arg(rec, off + m, n - m, t, err, errlen) < 0)
		return -1;
	r->nterms++;
	return 0;
}

int
spf_record_parse(const char *rec, size_t len, struct spf_record *r, char *err,
		 size_t errlen)
{
	size_t i, j;

	r->nterms = 0;
	r->redirect = r->exp = -1;
	if (errlen > 0)
		err[0] = '\0';
	if (len > SPF_RECORD_MAX)
		return perr(err, errlen, "record longer than %d octets",
			    SPF_RECORD_MAX);
	if (!spf_record_is_spf(rec, len))
		return perr(err, errlen, "not an SPF record");
	for (i = 0; i < len; i++)
		if ((unsigned char)rec[i] < 0x20 ||
		    (unsigned char)rec[i] > 0x7e)
			return perr(err, errlen,
				    "non-printable or non-ASCII octet");
	for (i = 6; i < len; i = j) {
		while (i < len && rec[i] == ' ')
			i++;
		if (i == len)
			break;
		for (j = i; j < len && rec[j] != ' '; j++)
			;
		if (parse_term(rec, i, j - i, r, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* the evaluator                                                      */

/* What the outstanding question is for. */
enum spf_wait {
	W_NONE,
	W_RECORD, /* TXT of the top frame's domain */
	W_A,	  /* a mechanism */
	W_MX,	  /* mx mechanism: the MX names */
	W_MX_A,	  /* mx mechanism: addresses of names[ni] */
	W_EXISTS, /* exists mechanism */
	W_PTR,	  /* PTR of the client (ptr mechanism, %{p}) */
	W_PTR_A,  /* addresses of ptrs[pi], to validate it */
	W_EXP,	  /* TXT of the exp= target */
};

enum ptr_state { PTR_UNKNOWN, PTR_BUSY, PTR_DONE };

/* One check_host() invocation: include pushes one, redirect replaces. */
struct spf_frame {
	char domain[SPF_NAME_MAX + 1];
	char text[SPF_RECORD_MAX + 1];
	struct spf_record rec;
	size_t ti;	 /* next term */
	bool have_rec;	 /* record fetched and parsed */
	bool redirected; /* reached through redirect=: none → permerror */
};

struct spf {
	enum spf_step step;
	enum spf_result result;
	enum spf_wait wait;
	struct spf_query q;

	/* identity and inputs */
	char local[256], odomain[256], helo[256], receiver[256];
	char domain0[SPF_NAME_MAX + 1];
	uint8_t ip[16];
	bool v6;
	int64_t now;
	unsigned max_queries, void_max;

	/* counters (§4.6.4 and ours) */
	unsigned queries, dns_mechs, voids;

	struct spf_frame *frames[DEPTH_MAX];
	unsigned depth;
	bool counted; /* the current term passed the DNS-mechanism count */

	/* the mechanism in progress */
	char target[SPF_EXPAND_MAX + 1];
	char names[SPF_RR_MAX][SPF_NAME_MAX + 2]; /* + final dot */
	unsigned nnames, ni;

	/* PTR names of the client, shared by ptr and %{p} */
	enum ptr_state ptr;
	bool ptr_void;
	char ptrs[SPF_RR_MAX][SPF_NAME_MAX + 2];
	bool ptr_ok[SPF_RR_MAX];
	unsigned nptr, pi;

	/* exp= after a fail: 0 idle, 1 look up, 2 expand */
	int exp_state;
	bool has_exp;
	char exptext[SPF_EXPAND_MAX + 1];
	char explanation[SPF_EXPAND_MAX + 1];

	char mech[TERM_TEXT_MAX];
	char inner[TERM_TEXT_MAX + SPF_NAME_MAX + 8];
	char reason[SPF_REASON_MAX];
};

struct spf *
spf_new(void)
{
	return tcalloc(1, sizeof(struct spf));
}

void
spf_free(struct spf *s)
{
	unsigned i;

	if (s == NULL)
		return;
	for (i = 0; i < DEPTH_MAX; i++)
		xfree(s->frames[i]);
	xfree(s);
}

const char *
spf_result_name(enum spf_result r)
{
	static const char *const names[] = {"none",	"neutral",  "pass",
					    "fail",	"softfail", "temperror",
					    "permerror"};

	return ((unsigned)r < sizeof(names) / sizeof(names[0])) ? names[r]
								: "?";
}

static void finish(struct spf *s, enum spf_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* End the evaluation; the reason is logged, so keep it printable. */
static void
finish(struct spf *s, enum spf_result r, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
	for (p = s->reason; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	s->result = r;
	s->step = SPF_STEP_DONE;
	s->wait = W_NONE;
}

static struct spf_frame *
top(struct spf *s)
{
	return s->frames[s->depth - 1];
}

/* The explanation is optional: its problems end it quietly (§6.2). */
static void
exp_done(struct spf *s)
{
	s->exp_state = 0;
	s->step = SPF_STEP_DONE;
	s->wait = W_NONE;
}

static void
ask(struct spf *s, enum spf_qtype type, const char *name, enum spf_wait w)
{
	if (s->queries >= s->max_queries && s->exp_state > 0) {
		exp_done(s);
		return;
	}
	if (s->queries >= s->max_queries) {
		finish(s, SPF_PERMERROR, "more than %u DNS queries",
		       s->max_queries);
		return;
	}
	s->queries++;
	s->q.type = type;
	snprintf(s->q.name, sizeof(s->q.name), "%s", name);
	s->wait = w;
	s->step = SPF_STEP_QUERY;
}

static enum spf_qtype
addr_type(const struct spf *s)
{
	return s->v6 ? SPF_Q_AAAA : SPF_Q_A;
}

static bool
prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	uint8_t mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/* Does an A/AAAA answer hold the client within the prefix? */
static bool
answer_matches(const struct spf *s, const struct spf_answer *a, unsigned bits)
{
	size_t i, want = s->v6 ? 16 : 4;

	for (i = 0; i < a->count; i++)
		if (a->rr[i].len == want &&
		    prefix_match((const uint8_t *)a->rr[i].data, s->ip, bits))
			return true;
	return false;
}

static bool
answer_positive(const struct spf_answer *a)
{
	return a->rcode == SPF_DNS_ANSWER && a->count > 0;
}

static bool
answer_void(const struct spf_answer *a)
{
	return a->rcode == SPF_DNS_NXDOMAIN || a->rcode == SPF_DNS_NODATA ||
	       (a->rcode == SPF_DNS_ANSWER && a->count == 0);
}

static void
term_text(const struct spf_frame *f, const struct spf_term *t, char *dst,
	  size_t dsz)
{
	snprintf(dst, dsz, "%.*s", (int)t->len, f->text + t->off);
}

/* A validated PTR name for %{p}: <domain> itself, a subdomain, any. */
static const char *
ptr_pick(const struct spf *s, const char *domain)
{
	size_t dl = strlen(domain), nl;
	unsigned i;

	if (s->ptr != PTR_DONE)
		return "unknown";
	for (i = 0; i < s->nptr; i++)
		if (s->ptr_ok[i] && ci_streq(s->ptrs[i], domain))
			return s->ptrs[i];
	for (i = 0; i < s->nptr; i++) {
		nl = strlen(s->ptrs[i]);
		if (s->ptr_ok[i] && nl > dl && s->ptrs[i][nl - dl - 1] == '.' &&
		    ci_streq(s->ptrs[i] + nl - dl, domain))
			return s->ptrs[i];
	}
	for (i = 0; i < s->nptr; i++)
		if (s->ptr_ok[i])
			return s->ptrs[i];
	return "unknown";
}

static void
env_for(const struct spf *s, const char *domain, struct spf_macro_env *e)
{
	e->local = s->local;
	e->odomain = s->odomain;
	e->domain = domain;
	e->helo = s->helo;
	e->receiver = s->receiver;
	e->ptr = ptr_pick(s, domain);
	e->now = s->now;
	memcpy(e->ip, s->ip, 16);
	e->v6 = s->v6;
}

/* Start the PTR lookup of the client unless it is known already. */
static bool
ptr_needed(struct spf *s)
{
	char name[80];
	size_t k = 0;
	int i;

	if (s->ptr == PTR_DONE)
		return false;
	s->ptr = PTR_BUSY;
	s->nptr = s->pi = 0;
	s->ptr_void = false;
	if (s->v6) {
		static const char hex[] = "0123456789abcdef";

		for (i = 15; i >= 0; i--)
			k += (size_t)snprintf(name + k, sizeof(name) - k,
					      "%c.%c.", hex[s->ip[i] & 15],
					      hex[s->ip[i] >> 4]);
		snprintf(name + k, sizeof(name) - k, "ip6.arpa");
	} else {
		snprintf(name, sizeof(name), "%u.%u.%u.%u.in-addr.arpa",
			 s->ip[3], s->ip[2], s->ip[1], s->ip[0]);
	}
	ask(s, SPF_Q_PTR, name, W_PTR);
	return true;
}

static void
ptr_next(struct spf *s)
{
	while (s->pi < s->nptr) {
		if (s->ptrs[s->pi][0] != '\0') {
			ask(s, addr_type(s), s->ptrs[s->pi], W_PTR_A);
			return;
		}
		s->pi++;
	}
	s->ptr = PTR_DONE;
	s->wait = W_NONE;
}

static void
on_ptr(struct spf *s, const struct spf_answer *a)
{
	size_t i;

	s->wait = W_NONE;
	s->ptr_void = answer_void(a);
	if (a->rcode == SPF_DNS_ANSWER) {
		for (i = 0; i < a->count && s->nptr < SPF_RR_MAX; i++) {
			char *n = s->ptrs[s->nptr];

			s->ptr_ok[s->nptr] = false;
			n[0] = '\0';
			if (a->rr[i].len <= SPF_NAME_MAX + 1 &&
			    memchr(a->rr[i].data, '\0', a->rr[i].len) == NULL) {
				memcpy(n, a->rr[i].data, a->rr[i].len);
				n[a->rr[i].len] = '\0';
				if (!spf_name_fix(n))
					n[0] = '\0';
			}
			s->nptr++;
		}
	}
	/* A DNS error: the ptr mechanism does not match (§5.5). */
	ptr_next(s);
}

static void
on_ptr_a(struct spf *s, const struct spf_answer *a)
{
	s->wait = W_NONE;
	/* errors skip the name (§5.5) */
	if (a->rcode == SPF_DNS_ANSWER &&
	    answer_matches(s, a, s->v6 ? 128 : 32))
		s->ptr_ok[s->pi] = true;
	s->pi++;
	ptr_next(s);
}

static void
next_term(struct spf *s)
{
	top(s)->ti++;
	s->counted = false;
}

static void frame_return(struct spf *s, enum spf_result r,
			 const struct spf_term *t);

static enum spf_result
qual_result(char q)
{
	switch (q) {
	case '-':
		return SPF_FAIL;
	case '~':
		return SPF_SOFTFAIL;
	case '?':
		return SPF_NEUTRAL;
	default:
		return SPF_PASS;
	}
}

static void
matched(struct spf *s, const struct spf_term *t)
{
	struct spf_frame *f = top(s);
	char tt[TERM_TEXT_MAX];

	if (s->depth > 1 && s->inner[0] == '\0') {
		term_text(f, t, tt, sizeof(tt));
		snprintf(s->inner, sizeof(s->inner), "\"%s\" in %s", tt,
			 f->domain);
	}
	frame_return(s, qual_result(t->qual), t);
}

static bool
count_void(struct spf *s, const struct spf_answer *a)
{
	if (!answer_void(a))
		return true;
	if (++s->voids > s->void_max) {
		finish(s, SPF_PERMERROR,
		       "more than %u void DNS lookups (at %s)", s->void_max,
		       s->q.name);
		return false;
	}
	return true;
}

static bool
dns_error(struct spf *s, const struct spf_answer *a)
{
	if (a->rcode != SPF_DNS_TEMPFAIL && a->rcode != SPF_DNS_TIMEOUT)
		return false;
	finish(s, SPF_TEMPERROR, "DNS %s for %s",
	       a->rcode == SPF_DNS_TIMEOUT ? "timeout" : "error", s->q.name);
	return true;
}

static bool
push_frame(struct spf *s, const char *domain, bool redirected)
{
	struct spf_frame *f;

	if (!redirected) {
		if (s->depth >= DEPTH_MAX) {
			finish(s, SPF_PERMERROR, "include nesting too deep");
			return false;
		}
		if (s->frames[s->depth] == NULL)
			s->frames[s->depth] = tmalloc(sizeof(struct spf_frame));
		if (s->frames[s->depth] == NULL) {
			finish(s, SPF_TEMPERROR, "out of memory");
			return false;
		}
		s->depth++;
	}
	f = top(s);
	snprintf(f->domain, sizeof(f->domain), "%s", domain);
	f->have_rec = false;
	f->redirected = redirected;
	f->ti = 0;
	s->counted = false;
	ask(s, SPF_Q_TXT, f->domain, W_RECORD);
	return true;
}

static void
on_record(struct spf *s, const struct spf_answer *a)
{
	struct spf_frame *f = top(s);
	const struct spf_rdata *rec = NULL;
	char err[128];
	size_t i, n = 0;

	s->wait = W_NONE;
	if (dns_error(s, a))
		return;
	if (a->rcode == SPF_DNS_ANSWER)
		for (i = 0; i < a->count; i++)
			if (spf_record_is_spf(a->rr[i].data, a->rr[i].len)) {
				rec = &a->rr[i];
				n++;
			}
	if (n == 0) {
		frame_return(s, SPF_NONE, NULL);
		return;
	}
	if (n > 1) {
		finish(s, SPF_PERMERROR, "%zu SPF records at %s", n, f->domain);
		return;
	}
	if (spf_record_parse(rec->data, rec->len, &f->rec, err, sizeof(err)) <
	    0) {
		finish(s, SPF_PERMERROR, "SPF record of %s: %s", f->domain,
		       err);
		return;
	}
	memcpy(f->text, rec->data, rec->len);
	f->text[rec->len] = '\0';
	f->have_rec = true;
}

/*
 * Expand a target domain-spec (or use <domain>) into s->target. Returns
 * 1 when usable, 0 when malformed, -1 when waiting for %{p}.
 */
static int
expand_target(struct spf *s, const struct spf_frame *f,
	      const struct spf_term *t)
{
	struct spf_macro_env e;
	const char *spec = f->text + t->doff;

	if (t->dlen == 0) {
		snprintf(s->target, sizeof(s->target), "%s", f->domain);
		return 1;
	}
	if (spf_macro_uses_p(spec, t->dlen) && ptr_needed(s))
		return -1;
	env_for(s, f->domain, &e);
	if (spf_macro_expand(spec, t->dlen, 0, &e, s->target,
			     sizeof(s->target)) < 0)
		return 0;
	return spf_name_fix(s->target) ? 1 : 0;
}

static void
ptr_mech(struct spf *s, const struct spf_term *t)
{
	size_t tl = strlen(s->target), nl;
	unsigned i;

	if (s->ptr_void) {
		if (++s->voids > s->void_max) {
			finish(s, SPF_PERMERROR,
			       "more than %u void DNS lookups", s->void_max);
			return;
		}
	}
	for (i = 0; i < s->nptr; i++) {
		if (!s->ptr_ok[i])
			continue;
		nl = strlen(s->ptrs[i]);
		if (ci_streq(s->ptrs[i], s->target) ||
		    (nl > tl && s->ptrs[i][nl - tl - 1] == '.' &&
		     ci_streq(s->ptrs[i] + nl - tl, s->target))) {
			matched(s, t);
			return;
		}
	}
	next_term(s);
}

/* A mechanism that needs DNS: count it, expand its target, ask. */
static void
dns_mech(struct spf *s, struct spf_frame *f, const struct spf_term *t)
{
	int x;

	if (!s->counted) {
		if (t->dlen > 0 &&
		    spf_macro_uses_p(f->text + t->doff, t->dlen) &&
		    ptr_needed(s))
			return;
		if (++s->dns_mechs > SPF_DNS_MECH_MAX) {
			finish(s, SPF_PERMERROR,
			       "more than %d DNS mechanisms (at %s)",
			       SPF_DNS_MECH_MAX, f->domain);
			return;
		}
		s->counted = true;
		x = expand_target(s, f, t);
		if (x < 0)
			return;
		if (x == 0) {
			if (t->kind == SPF_T_INCLUDE)
				finish(s, SPF_PERMERROR,
				       "include target malformed in %s",
				       f->domain);
			else
				next_term(s); /* no such name: no match */
			return;
		}
	}
	switch (t->kind) {
	case SPF_T_A:
		ask(s, addr_type(s), s->target, W_A);
		break;
	case SPF_T_MX:
		ask(s, SPF_Q_MX, s->target, W_MX);
		break;
	case SPF_T_EXISTS:
		ask(s, SPF_Q_A, s->target, W_EXISTS);
		break;
	case SPF_T_INCLUDE:
		s->inner[0] = '\0';
		push_frame(s, s->target, false);
		break;
	case SPF_T_PTR:
		if (!ptr_needed(s))
			ptr_mech(s, t);
		break;
	default:
		break;
	}
}

static void
term_step(struct spf *s, struct spf_frame *f, const struct spf_term *t)
{
	switch (t->kind) {
	case SPF_T_ALL:
		matched(s, t);
		return;
	case SPF_T_IP4:
		if (!s->v6 && prefix_match(t->ip, s->ip, t->cidr4))
			matched(s, t);
		else
			next_term(s);
		return;
	case SPF_T_IP6:
		if (s->v6 && prefix_match(t->ip, s->ip, t->cidr6))
			matched(s, t);
		else
			next_term(s);
		return;
	case SPF_T_REDIRECT:
	case SPF_T_EXP:
	case SPF_T_UNKNOWN_MOD:
		next_term(s);
		return;
	default:
		dns_mech(s, f, t);
	}
}

static const struct spf_term *
cur_term(struct spf *s)
{
	struct spf_frame *f = top(s);

	return &f->rec.terms[f->ti];
}

static void
on_addr(struct spf *s, const struct spf_answer *a)
{
	const struct spf_term *t = cur_term(s);

	s->wait = W_NONE;
	if (dns_error(s, a) || !count_void(s, a))
		return;
	if (answer_positive(a) &&
	    answer_matches(s, a, s->v6 ? t->cidr6 : t->cidr4))
		matched(s, t);
	else
		next_term(s);
}

static void
on_exists(struct spf *s, const struct spf_answer *a)
{
	size_t i;

	s->wait = W_NONE;
	if (dns_error(s, a) || !count_void(s, a))
		return;
	for (i = 0; answer_positive(a) && i < a->count; i++)
		if (a->rr[i].len == 4) {
			matched(s, cur_term(s));
			return;
		}
	next_term(s);
}

static void
mx_next(struct spf *s)
{
	if (s->ni < s->nnames)
		ask(s, addr_type(s), s->names[s->ni], W_MX_A);
	else
		next_term(s);
}

static void
on_mx(struct spf *s, const struct spf_answer *a)
{
	size_t i;

	s->wait = W_NONE;
	if (dns_error(s, a) || !count_void(s, a))
		return;
	s->nnames = s->ni = 0;
	if (answer_positive(a) && a->count > SPF_RR_MAX) {
		finish(s, SPF_PERMERROR, "more than %d MX records at %s",
		       SPF_RR_MAX, s->q.name);
		return;
	}
	for (i = 0; answer_positive(a) && i < a->count; i++) {
		char *n = s->names[s->nnames];

		/* the null MX "." and unusable names cannot match */
		if (a->rr[i].len > SPF_NAME_MAX + 1 ||
		    memchr(a->rr[i].data, '\0', a->rr[i].len) != NULL)
			continue;
		memcpy(n, a->rr[i].data, a->rr[i].len);
		n[a->rr[i].len] = '\0';
		if (spf_name_fix(n))
			s->nnames++;
	}
	mx_next(s);
}

static void
on_mx_a(struct spf *s, const struct spf_answer *a)
{
	const struct spf_term *t = cur_term(s);

	s->wait = W_NONE;
	if (dns_error(s, a))
		return;
	if (answer_positive(a) &&
	    answer_matches(s, a, s->v6 ? t->cidr6 : t->cidr4)) {
		matched(s, t);
		return;
	}
	s->ni++;
	mx_next(s);
}

static void
end_of_terms(struct spf *s, struct spf_frame *f)
{
	const struct spf_term *t;
	int x;

	if (f->rec.redirect < 0) {
		frame_return(s, SPF_NEUTRAL, NULL);
		return;
	}
	t = &f->rec.terms[f->rec.redirect];
	if (!s->counted) {
		if (spf_macro_uses_p(f->text + t->doff, t->dlen) &&
		    ptr_needed(s))
			return;
		if (++s->dns_mechs > SPF_DNS_MECH_MAX) {
			finish(s, SPF_PERMERROR,
			       "more than %d DNS mechanisms (redirect at %s)",
			       SPF_DNS_MECH_MAX, f->domain);
			return;
		}
		s->counted = true;
	}
	x = expand_target(s, f, t);
	if (x < 0)
		return;
	if (x == 0) {
		finish(s, SPF_PERMERROR, "redirect target malformed in %s",
		       f->domain);
		return;
	}
	push_frame(s, s->target, true);
}

static void
final_reason(struct spf *s, enum spf_result r, const struct spf_frame *f)
{
	if (r == SPF_NONE)
		finish(s, r, "no SPF record at %s", f->domain);
	else if (s->mech[0] == '\0')
		finish(s, r, "no mechanism matched in %s: default %s",
		       f->domain, spf_result_name(r));
	else if (s->inner[0] != '\0')
		finish(s, r, "\"%s\" matched in %s (via %s)", s->mech,
		       f->domain, s->inner);
	else
		finish(s, r, "\"%s\" matched in %s", s->mech, f->domain);
}

static void
frame_return(struct spf *s, enum spf_result r, const struct spf_term *t)
{
	struct spf_frame *f = top(s);
	const struct spf_term *inc;

	if (r == SPF_NONE && f->redirected) {
		finish(s, SPF_PERMERROR, "redirect target %s has no SPF record",
		       f->domain);
		return;
	}
	if (s->depth > 1) {
		s->depth--;
		inc = cur_term(s);
		if (r == SPF_NONE) {
			finish(s, SPF_PERMERROR,
			       "include target %s has no SPF record",
			       f->domain);
		} else if (r == SPF_PASS) {
			matched(s, inc);
		} else {
			s->inner[0] = '\0';
			next_term(s);
		}
		return;
	}
	if (t != NULL)
		term_text(f, t, s->mech, sizeof(s->mech));
	final_reason(s, r, f);
	if (r == SPF_FAIL && t != NULL && f->rec.exp >= 0) {
		/* look up the explanation before reporting the result */
		s->step = SPF_STEP_QUERY;
		s->exp_state = 1;
	}
}

/* exp= (§6.2): any problem means "no explanation", never an error. */
static void
exp_step(struct spf *s)
{
	struct spf_frame *f = s->frames[0];
	const struct spf_term *t = &f->rec.terms[f->rec.exp];
	struct spf_macro_env e;
	char name[SPF_EXPAND_MAX + 1];
	const char *src = (s->exp_state == 1) ? f->text + t->doff : s->exptext;
	size_t len = (s->exp_state == 1) ? t->dlen : strlen(s->exptext);

	if (spf_macro_uses_p(src, len) && ptr_needed(s))
		return;
	env_for(s, f->domain, &e);
	if (s->exp_state == 1) {
		if (spf_macro_expand(src, len, 0, &e, name, sizeof(name)) < 0 ||
		    !spf_name_fix(name)) {
			exp_done(s);
			return;
		}
		s->exp_state = 2;
		ask(s, SPF_Q_TXT, name, W_EXP);
		return;
	}
	if (spf_macro_expand(src, len, SPF_MACRO_EXP, &e, s->explanation,
			     sizeof(s->explanation)) >= 0)
		s->has_exp = true;
	exp_done(s);
}

static void
on_exp(struct spf *s, const struct spf_answer *a)
{
	size_t i, len;

	s->wait = W_NONE;
	len = (a->count == 1) ? a->rr[0].len : 0;
	if (a->rcode != SPF_DNS_ANSWER || a->count != 1 ||
	    len > SPF_EXPAND_MAX) {
		exp_done(s);
		return;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)a->rr[0].data[i] < 0x20 ||
		    (unsigned char)a->rr[0].data[i] > 0x7e) {
			exp_done(s); /* explanations are ASCII (§6.2) */
			return;
		}
	memcpy(s->exptext, a->rr[0].data, len);
	s->exptext[len] = '\0';
}

/* Work until a question is outstanding or the result is known. */
static enum spf_step
run(struct spf *s)
{
	struct spf_frame *f;

	while (s->step != SPF_STEP_DONE && s->wait == W_NONE) {
		if (s->exp_state > 0) {
			exp_step(s);
			continue;
		}
		f = top(s);
		if (f->ti < f->rec.nterms)
			term_step(s, f, &f->rec.terms[f->ti]);
		else
			end_of_terms(s, f);
	}
	return s->step;
}

/* §4.3: a multi-label name with labels of 1..63 octets, no literal. */
static bool
domain_ok(char *d)
{
	size_t len = strlen(d);

	if (len > 0 && d[len - 1] == '.')
		d[--len] = '\0';
	if (d[0] == '[' || len > SPF_NAME_MAX || !spf_name_fix(d))
		return false;
	return strchr(d, '.') != NULL;
}

static bool
parse_client(struct spf *s, const char *ip)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
					   0, 0, 0, 0, 0xff, 0xff};
	uint8_t a[16];

	memset(s->ip, 0, sizeof(s->ip));
	if (ip == NULL)
		return false;
	if (inet_pton(AF_INET, ip, a) == 1) {
		memcpy(s->ip, a, 4);
		s->v6 = false;
		return true;
	}
	if (inet_pton(AF_INET6, ip, a) != 1)
		return false;
	if (memcmp(a, mapped, 12) == 0) {
		memcpy(s->ip, a + 12, 4);
		s->v6 = false;
	} else {
		memcpy(s->ip, a, 16);
		s->v6 = true;
	}
	return true;
}

static void
reset(struct spf *s, const struct spf_opts *o)
{
	s->step = SPF_STEP_QUERY;
	s->result = SPF_NONE;
	s->wait = W_NONE;
	s->queries = s->dns_mechs = s->voids = 0;
	s->depth = 0;
	s->counted = false;
	s->ptr = PTR_UNKNOWN;
	s->nptr = s->pi = s->nnames = s->ni = 0;
	s->exp_state = 0;
	s->has_exp = false;
	s->mech[0] = s->inner[0] = s->reason[0] = '\0';
	s->domain0[0] = '\0';
	s->now = (o != NULL) ? o->now : 0;
	s->max_queries = (o != NULL && o->max_queries > 0)
			     ? o->max_queries
			     : SPF_QUERIES_DEFAULT;
	s->void_max =
	    (o != NULL && o->void_max > 0) ? o->void_max : SPF_VOID_MAX;
	snprintf(s->receiver, sizeof(s->receiver), "%s",
		 (o != NULL && o->receiver != NULL) ? o->receiver : "unknown");
}

enum spf_step
spf_start(struct spf *s, const char *ip, const char *domain, const char *sender,
	  const char *helo, const struct spf_opts *opts)
{
	const char *at;
	char d[SPF_NAME_MAX + 3];

	reset(s, opts);
	snprintf(s->helo, sizeof(s->helo), "%s", helo != NULL ? helo : "");
	if (sender == NULL || sender[0] == '\0') {
		snprintf(s->local, sizeof(s->local), "postmaster");
		snprintf(s->odomain, sizeof(s->odomain), "%s", s->helo);
	} else if ((at = strrchr(sender, '@')) == NULL) {
		snprintf(s->local, sizeof(s->local), "postmaster");
		snprintf(s->odomain, sizeof(s->odomain), "%s", sender);
	} else {
		snprintf(s->local, sizeof(s->local), "%.*s", (int)(at - sender),
			 sender);
		if (s->local[0] == '\0')
			snprintf(s->local, sizeof(s->local), "postmaster");
		snprintf(s->odomain, sizeof(s->odomain), "%s", at + 1);
	}
	if (!parse_client(s, ip)) {
		finish(s, SPF_PERMERROR, "invalid client address");
		return s->step;
	}
	if (domain == NULL)
		domain = s->odomain;
	if (strlen(domain) >= sizeof(d)) {
		finish(s, SPF_NONE, "malformed domain");
		return s->step;
	}
	snprintf(d, sizeof(d), "%s", domain);
	if (!domain_ok(d)) {
		finish(s, SPF_NONE, "malformed domain \"%.64s\"", domain);
		return s->step;
	}
	if (strlen(d) >= sizeof(s->domain0)) {
		finish(s, SPF_NONE, "malformed domain");
		return s->step;
	}
	memcpy(s->domain0, d, strlen(d) + 1);
	if (push_frame(s, d, false))
		return run(s);
	return s->step;
}

const struct spf_query *
spf_query(const struct spf *s)
{
	return &s->q;
}

enum spf_step
spf_resume(struct spf *s, const struct spf_answer *a)
{
	struct spf_answer ok = *a;

	if (s->step != SPF_STEP_QUERY || s->wait == W_NONE)
		return s->step;
	if (ok.rcode != SPF_DNS_ANSWER || ok.rr == NULL)
		ok.count = 0;
	switch (s->wait) {
	case W_RECORD:
		on_record(s, &ok);
		break;
	case W_A:
		on_addr(s, &ok);
		break;
	case W_EXISTS:
		on_exists(s, &ok);
		break;
	case W_MX:
		on_mx(s, &ok);
		break;
	case W_MX_A:
		on_mx_a(s, &ok);
		break;
	case W_PTR:
		on_ptr(s, &ok);
		break;
	case W_PTR_A:
		on_ptr_a(s, &ok);
		break;
	case W_EXP:
		on_exp(s, &ok);
		break;
	case W_NONE:
		break;
	}
	return run(s);
}

void
spf_abort(struct spf *s, const char *why)
{
	if (s->exp_state > 0)
		exp_done(s); /* the result is known; only the text is lost */
	else if (s->step != SPF_STEP_DONE)
		finish(s, SPF_TEMPERROR, "%s",
		       why != NULL ? why : "evaluation timed out");
}

enum spf_result
spf_result(const struct spf *s)
{
	return s->result;
}

const char *
spf_reason(const struct spf *s)
{
	return s->reason;
}

const char *
spf_mechanism(const struct spf *s)
{
	return s->mech;
}

const char *
spf_explanation(const struct spf *s)
{
	return s->has_exp ? s->explanation : NULL;
}

const char *
spf_domain(const struct spf *s)
{
	return s->domain0;
}

unsigned
spf_queries(const struct spf *s)
{
	return s->queries;
}
