/* dmarc — see dmarc.h. */
#include "mail/dmarc.h"

#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"

#define NAME_BUF (DMARC_NAME_MAX + 1)
#define PREFIX "_dmarc."
#define PREFIX_LEN 7
#define RI_DEFAULT 86400

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
is_wsp(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
to_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* s (n octets) equals the lowercase literal lit, ignoring case. */
static bool
ci_equal(const char *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lit[i] == '\0' || to_lower((unsigned char)s[i]) != lit[i])
			return false;
	return lit[n] == '\0';
}

struct span {
	const char *s;
	size_t n;
};

static struct span
trim(const char *s, size_t n)
{
	struct span r;

	while (n > 0 && is_wsp((unsigned char)s[0])) {
		s++;
		n--;
	}
	while (n > 0 && is_wsp((unsigned char)s[n - 1]))
		n--;
	r.s = s;
	r.n = n;
	return r;
}

/* Next piece of s up to sep (not included); false at the end. */
static bool
next_piece(const char *s, size_t n, size_t *pos, char sep, struct span *out)
{
	size_t start = *pos, i;

	if (start > n)
		return false;
	for (i = start; i < n && s[i] != sep; i++)
		;
	*out = trim(s + start, i - start);
	*pos = i + 1;
	return true;
}

/* ---------------------------------------------------------------- */
/* domains                                                            */

bool
dmarc_domain_norm(const char *in, size_t len, char *out, size_t outsz)
{
	size_t i, lab = 0, n = 0;

	while (len > 0 && in[0] == '.') {
		in++;
		len--;
	}
	while (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > DMARC_NAME_MAX || len >= outsz)
		return false;
	for (i = 0; i < len; i++) {
		int c = to_lower((unsigned char)in[i]);

		if (c == '.') {
			if (lab == 0)
				return false;
			lab = 0;
		} else if (is_alpha(c) || is_digit(c) || c == '-' || c == '_') {
			if (++lab > 63)
				return false;
		} else {
			return false;
		}
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return true;
}

static size_t
count_labels(const char *d)
{
	size_t n = 1;

	if (*d == '\0')
		return 0;
	for (; *d != '\0'; d++)
		n += *d == '.';
	return n;
}

/* The suffix of d made of its last k labels (k <= labels of d). */
static const char *
last_labels(const char *d, size_t k)
{
	size_t skip = count_labels(d) - k;

	while (skip > 0) {
		d = strchr(d, '.') + 1;
		skip--;
	}
	return d;
}

size_t
dmarc_walk_names(const char *domain, const char *names[DMARC_WALK_MAX])
{
	size_t n = count_labels(domain), k, out = 0;

	if (n == 0)
		return 0;
	names[out++] = domain;
	k = n - 1 < DMARC_WALK_LABELS ? n - 1 : DMARC_WALK_LABELS;
	for (; k >= 1; k--)
		names[out++] = last_labels(domain, k);
	return out;
}

/* id is org or a subdomain of it. */
static bool
within(const char *id, const char *org)
{
	size_t a = strlen(id), b = strlen(org);

	if (a == b)
		return strcmp(id, org) == 0;
	return a > b && id[a - b - 1] == '.' && strcmp(id + a - b, org) == 0;
}

/* ---------------------------------------------------------------- */
/* record parser                                                      */

bool
dmarc_record_is_dmarc(const char *rec, size_t len)
{
	struct span t;
	size_t pos = 0, eq;

	if (!next_piece(rec, len, &pos, ';', &t))
		return false;
	for (eq = 0; eq < t.n && t.s[eq] != '='; eq++)
		;
	if (eq == t.n)
		return false;
	if (!ci_equal(trim(t.s, eq).s, trim(t.s, eq).n, "v"))
		return false;
	t = trim(t.s + eq + 1, t.n - eq - 1);
	return t.n == 6 && memcmp(t.s, "DMARC1", 6) == 0;
}

static uint8_t
parse_policy(struct span v)
{
	if (ci_equal(v.s, v.n, "none"))
		return DMARC_P_NONE;
	if (ci_equal(v.s, v.n, "quarantine"))
		return DMARC_P_QUARANTINE;
	if (ci_equal(v.s, v.n, "reject"))
		return DMARC_P_REJECT;
	return DMARC_P_UNSET;
}

/* A single-letter flag from the lowercase set; -1 when invalid. */
static int
parse_letter(struct span v, const char *set)
{
	const char *p;

	if (v.n != 1)
		return -1;
	p = strchr(set, to_lower((unsigned char)v.s[0]));
	return p == NULL || *p == '\0' ? -1 : (int)(p - set);
}

static bool
parse_fo(struct span v, uint8_t *fo)
{
	struct span x;
	size_t pos = 0;
	uint8_t bits = 0;
	int i;

	while (next_piece(v.s, v.n, &pos, ':', &x)) {
		i = parse_letter(x, "01ds");
		if (i < 0)
			return false;
		bits |= (uint8_t)(1u << i);
	}
	*fo = bits;
	return true;
}

static bool
parse_rf(struct span v, bool *afrf)
{
	struct span x;
	size_t pos = 0;

	*afrf = false;
	while (next_piece(v.s, v.n, &pos, ':', &x))
		if (ci_equal(x.s, x.n, "afrf"))
			*afrf = true;
	return *afrf;
}

static bool
parse_u32(struct span v, uint32_t *out)
{
	uint64_t n = 0;
	size_t i;

	if (v.n == 0 || v.n > 32)
		return false;
	for (i = 0; i < v.n; i++) {
		if (!is_digit((unsigned char)v.s[i]))
			return false;
		n = n * 10 + (uint64_t)(v.s[i] - '0');
		if (n > UINT32_MAX)
			return false;
	}
	*out = (uint32_t)n;
	return true;
}

/* "!" 1*DIGIT [k/m/g/t]; false when malformed or absurdly large. */
static bool
parse_size(struct span v, uint64_t *out)
{
	uint64_t n = 0, mul = 1;
	size_t i, nd = v.n;

	if (nd > 0 && !is_digit((unsigned char)v.s[nd - 1])) {
		int u = parse_letter((struct span){v.s + nd - 1, 1}, "kmgt");

		if (u < 0)
			return false;
		mul = 1ull << (10 * (u + 1));
		nd--;
	}
	if (nd == 0 || nd > 15)
		return false; /* 15 digits: n < 2^50, checked below */
	for (i = 0; i < nd; i++) {
		if (!is_digit((unsigned char)v.s[i]))
			return false;
		n = n * 10 + (uint64_t)(v.s[i] - '0');
	}
	if (n > UINT64_MAX / mul)
		return false;
	*out = n * mul;
	return true;
}

static bool
mailto_addr_ok(struct span a)
{
	size_t i, at = 0;

	if (a.n == 0 || a.n > DMARC_URI_MAX)
		return false;
	for (i = 0; i < a.n; i++) {
		unsigned char c = (unsigned char)a.s[i];

		if (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"')
			return false;
		at += c == '@';
	}
	return at == 1 && a.s[0] != '@' && a.s[a.n - 1] != '@';
}

/* One URI of rua/ruf; false when not a usable mailto:. */
static bool
parse_uri(struct span u, struct dmarc_uri *out)
{
	struct span addr, size = {NULL, 0};
	size_t i;

	if (u.n < 7 || !ci_equal(u.s, 7, "mailto:"))
		return false;
	addr.s = u.s + 7;
	addr.n = u.n - 7;
	for (i = 0; i < addr.n && addr.s[i] != '!'; i++)
		;
	if (i < addr.n) {
		size.s = addr.s + i + 1;
		size.n = addr.n - i - 1;
		addr.n = i;
	}
	for (i = 0; i < addr.n && addr.s[i] != '?'; i++)
		;
	addr.n = i; /* hfields (?subject=...) are not ours to keep */
	out->max_size = 0;
	if (size.s != NULL && !parse_size(size, &out->max_size))
		return false;
	if (!mailto_addr_ok(addr))
		return false;
	memcpy(out->addr, addr.s, addr.n);
	out->addr[addr.n] = '\0';
	return true;
}

static void
parse_uris(struct span v, struct dmarc_record *r, struct dmarc_uri *arr,
	   unsigned *count)
{
	struct span u;
	size_t pos = 0;

	while (next_piece(v.s, v.n, &pos, ',', &u)) {
		if (*count < DMARC_URIS_MAX && parse_uri(u, &arr[*count])) {
			(*count)++;
			continue;
		}
		r->uris_dropped++;
		if (*count < DMARC_URIS_MAX)
			r->warnings |= DMARC_W_URI;
	}
}

enum tag_id {
	TAG_V,
	TAG_P,
	TAG_SP,
	TAG_NP,
	TAG_ADKIM,
	TAG_ASPF,
	TAG_PSD,
	TAG_T,
	TAG_FO,
	TAG_RF,
	TAG_RI,
	TAG_RUA,
	TAG_RUF,
	TAG_UNKNOWN, /* pct (removed by RFC 9989) and anything else */
};

static const char *const tag_names[TAG_UNKNOWN] = {
    "v", "p",  "sp", "np", "adkim", "aspf", "psd",
    "t", "fo", "rf", "ri", "rua",   "ruf",
};

static enum tag_id
tag_lookup(struct span n)
{
	unsigned i;

	for (i = 0; i < TAG_UNKNOWN; i++)
		if (ci_equal(n.s, n.n, tag_names[i]))
			return (enum tag_id)i;
	return TAG_UNKNOWN;
}

static bool
tag_name_ok(struct span n)
{
	size_t i;

	if (n.n == 0 || !is_alpha((unsigned char)n.s[0]))
		return false;
	for (i = 1; i < n.n; i++)
		if (!is_alpha((unsigned char)n.s[i]) &&
		    !is_digit((unsigned char)n.s[i]) && n.s[i] != '_')
			return false;
	return true;
}

struct parse_state {
	bool bad_policy; /* a p/sp/np value that is not a policy */
	bool have_p;
	unsigned seen;
};

static void
apply_align(struct span v, uint8_t *field, struct dmarc_record *r,
	    unsigned warn)
{
	int i = parse_letter(v, "rs");

	if (i < 0)
		r->warnings |= warn;
	else
		*field = (uint8_t)i;
}

static void
apply_policy(struct span v, uint8_t *field, struct parse_state *ps)
{
	*field = parse_policy(v);
	if (*field == DMARC_P_UNSET)
		ps->bad_policy = true;
}

static void
apply_tag(enum tag_id id, struct span v, struct dmarc_record *r,
	  struct parse_state *ps)
{
	int i;

	switch (id) {
	case TAG_P:
		ps->have_p = true;
		apply_policy(v, &r->p, ps);
		break;
	case TAG_SP:
		apply_policy(v, &r->sp, ps);
		break;
	case TAG_NP:
		apply_policy(v, &r->np, ps);
		break;
	case TAG_ADKIM:
		apply_align(v, &r->adkim, r, DMARC_W_ADKIM);
		break;
	case TAG_ASPF:
		apply_align(v, &r->aspf, r, DMARC_W_ASPF);
		break;
	case TAG_PSD:
		i = parse_letter(v, "uyn");
		if (i < 0)
			r->warnings |= DMARC_W_PSD;
		else
			r->psd = (uint8_t)i;
		break;
	case TAG_T:
		i = parse_letter(v, "ny");
		if (i < 0)
			r->warnings |= DMARC_W_T;
		else
			r->testing = i == 1;
		break;
	case TAG_FO:
		if (!parse_fo(v, &r->fo))
			r->warnings |= DMARC_W_FO;
		break;
	case TAG_RF:
		if (!parse_rf(v, &r->rf_afrf)) {
			r->rf_afrf = true;
			r->warnings |= DMARC_W_RF;
		}
		break;
	case TAG_RI:
		if (!parse_u32(v, &r->ri))
			r->warnings |= DMARC_W_RI;
		break;
	case TAG_RUA:
		parse_uris(v, r, r->rua, &r->nrua);
		break;
	case TAG_RUF:
		parse_uris(v, r, r->ruf, &r->nruf);
		break;
	case TAG_V:
	case TAG_UNKNOWN:
		break;
	}
}

static void
record_defaults(struct dmarc_record *r)
{
	memset(r, 0, sizeof(*r));
	r->adkim = DMARC_ALIGN_RELAXED;
	r->aspf = DMARC_ALIGN_RELAXED;
	r->psd = DMARC_PSD_U;
	r->fo = DMARC_FO_0;
	r->rf_afrf = true;
	r->ri = RI_DEFAULT;
}

static void
parse_term(struct span t, struct dmarc_record *r, struct parse_state *ps)
{
	struct span name, val;
	enum tag_id id;
	size_t eq;

	for (eq = 0; eq < t.n && t.s[eq] != '='; eq++)
		;
	name = trim(t.s, eq);
	if (eq == t.n || !tag_name_ok(name)) {
		r->warnings |= DMARC_W_SYNTAX;
		return;
	}
	val = trim(t.s + eq + 1, t.n - eq - 1);
	id = tag_lookup(name);
	if (id != TAG_UNKNOWN) {
		if (ps->seen & (1u << id)) {
			r->warnings |= DMARC_W_DUP;
			return;
		}
		ps->seen |= 1u << id;
	}
	apply_tag(id, val, r, ps);
}

enum dmarc_parse
dmarc_record_parse(const char *rec, size_t len, struct dmarc_record *r)
{
	struct parse_state ps = {false, false, 1u << TAG_V};
	struct span t;
	size_t pos = 0;

	record_defaults(r);
	if (!dmarc_record_is_dmarc(rec, len))
		return DMARC_REC_NOT_DMARC;
	next_piece(rec, len, &pos, ';', &t); /* v=DMARC1 */
	while (next_piece(rec, len, &pos, ';', &t))
		if (t.n > 0)
			parse_term(t, r, &ps);
	if (ps.bad_policy) {
		/* RFC 9989 policy discovery: act as p=none when a usable
		 * rua= is present, else no DMARC processing at all. */
		if (r->nrua == 0)
			return DMARC_REC_BAD_POLICY;
		r->p = DMARC_P_NONE;
		r->sp = r->np = DMARC_P_UNSET;
		r->warnings |= DMARC_W_POLICY;
	} else if (!ps.have_p) {
		r->p = DMARC_P_NONE; /* RFC 9989: absent p= means none */
		r->warnings |= DMARC_W_P_MISSING;
	}
	return DMARC_REC_OK;
}

/* ---------------------------------------------------------------- */
/* From header                                                        */

struct from_scan {
	const char *v;
	size_t n;
	size_t elem; /* start of the current element */
	int at_count;
	size_t at; /* the '@' of the current element */
	bool content;
	unsigned naddr;
	bool bad;
	char first[NAME_BUF];
	bool multiple;
};

static void
from_domain_at(struct from_scan *fs, char *dom)
{
	size_t i = fs->at + 1, start;

	while (i < fs->n && is_wsp((unsigned char)fs->v[i]))
		i++;
	start = i;
	while (i < fs->n && strchr("<>,;()\"[] \t\r\n", fs->v[i]) == NULL)
		i++;
	if (!dmarc_domain_norm(fs->v + start, i - start, dom, NAME_BUF))
		fs->bad = true;
	while (i < fs->n && is_wsp((unsigned char)fs->v[i]))
		i++;
	if (i < fs->n && strchr(">,;(", fs->v[i]) == NULL)
		fs->bad = true; /* text after the domain: "a@b.com c" */
}

static void
from_end_element(struct from_scan *fs)
{
	char dom[NAME_BUF];
	char before;

	if (fs->at_count == 0) {
		if (fs->content)
			fs->bad = true; /* a mailbox without a domain */
	} else if (fs->at_count > 1) {
		fs->bad = true;
	} else {
		before = fs->at > fs->elem ? fs->v[fs->at - 1] : '<';
		if (before == '<' || is_wsp((unsigned char)before) ||
		    before == ',' || before == ':')
			fs->bad = true; /* no local part */
		from_domain_at(fs, dom);
		if (!fs->bad) {
			if (fs->naddr == 0)
				memcpy(fs->first, dom, strlen(dom) + 1);
			else if (strcmp(fs->first, dom) != 0)
				fs->multiple = true;
			fs->naddr++;
		}
	}
	fs->at_count = 0;
	fs->content = false;
}

/* Skip a quoted string or (nested) comment starting at i; returns the
 * index after it, or n when it is not closed. */
static size_t
from_skip(const char *v, size_t n, size_t i)
{
	int depth = 0;
	char open = v[i];

	for (; i < n; i++) {
		char c = v[i];

		if (c == '\\') {
			i++;
		} else if (open == '"') {
			if (c == '"' && depth++ > 0)
				return i + 1;
		} else if (c == '(') {
			depth++;
		} else if (c == ')' && --depth == 0) {
			return i + 1;
		}
	}
	return n + 1; /* unterminated */
}

enum dmarc_from
dmarc_from_domain(const char *value, size_t len, char *out, size_t outsz,
		  unsigned *naddr)
{
	struct from_scan fs;
	size_t i = 0;

	memset(&fs, 0, sizeof(fs));
	fs.v = value;
	fs.n = len;
	if (naddr != NULL)
		*naddr = 0;
	while (i < len && !fs.bad) {
		char c = value[i];

		if (c == '\0') {
			fs.bad = true;
		} else if (c == '"' || c == '(') {
			fs.content |= c == '"';
			i = from_skip(value, len, i);
			fs.bad |= i > len;
			continue;
		} else if (c == ',' || c == ';') {
			from_end_element(&fs);
			fs.elem = i + 1;
		} else if (c == ':' && fs.at_count == 0) {
			fs.content = false; /* group display name */
			fs.elem = i + 1;
		} else if (c == '@') {
			fs.at = i;
			fs.at_count++;
		} else if (!is_wsp((unsigned char)c) && c != '<' && c != '>') {
			fs.content = true;
		}
		i++;
	}
	if (!fs.bad)
		from_end_element(&fs);
	if (naddr != NULL)
		*naddr = fs.naddr;
	if (fs.bad)
		return DMARC_FROM_BAD;
	if (fs.naddr == 0)
		return DMARC_FROM_NONE;
	if (fs.multiple)
		return DMARC_FROM_MULTIPLE;
	if (strlen(fs.first) >= outsz)
		return DMARC_FROM_BAD;
	memcpy(out, fs.first, strlen(fs.first) + 1);
	return DMARC_FROM_OK;
}

/* ---------------------------------------------------------------- */
/* the evaluator                                                      */

enum cstate {
	C_NONE,	    /* TXT: no single DMARC record; A/AAAA/MX: NODATA */
	C_REC,	    /* TXT: exactly one DMARC record */
	C_EXISTS,   /* A/AAAA/MX: records */
	C_NXDOMAIN, /* the name does not exist */
	C_TEMP,
};

struct cent {
	uint8_t type;  /* enum dmarc_qtype */
	uint8_t state; /* enum cstate */
	uint8_t psd;   /* TXT C_REC: enum dmarc_psd */
	char name[NAME_BUF];
};

enum lk { LK_OK, LK_ASK, LK_TEMP, LK_LIMIT };

enum align_state { AL_NO, AL_YES, AL_TEMP };

struct dmarc {
	struct dmarc_opts opts;
	char from[NAME_BUF];
	bool from_ok;
	char spf[NAME_BUF];
	bool spf_ok;
	char dkim[DMARC_IDS_MAX][NAME_BUF];
	size_t ndkim;
	enum dmarc_exists exists;

	struct cent cache[DMARC_QUERIES_DEFAULT];
	unsigned ncache;
	struct dmarc_query q;
	bool policy_phase; /* the outstanding question is the policy walk's */
	bool in_policy;

	struct dmarc_record rec;
	enum dmarc_parse rec_status;
	bool have_rec;
	char pol_dom[NAME_BUF];
	char org[NAME_BUF];
	char tmp_org[NAME_BUF];
	const char *aligned_spf, *aligned_dkim;
	const char *temp_name; /* where a DNS failure was met */

	bool done;
	enum dmarc_result result;
	enum dmarc_policy policy, disp;
	const char *ptag;
	char reason[DMARC_REASON_MAX];
	char ar[DMARC_REASON_MAX];
};

static const struct cent no_name = {DMARC_Q_TXT, C_NONE, DMARC_PSD_U, ""};

struct dmarc *
dmarc_new(void)
{
	return tcalloc(1, sizeof(struct dmarc));
}

void
dmarc_free(struct dmarc *d)
{
	xfree(d);
}

static enum lk
lookup(struct dmarc *d, enum dmarc_qtype type, const char *domain,
       const struct cent **out)
{
	char name[NAME_BUF];
	size_t dl = strlen(domain);
	unsigned i;

	if (type == DMARC_Q_TXT) {
		if (PREFIX_LEN + dl > DMARC_NAME_MAX) {
			*out = &no_name; /* cannot exist in the DNS */
			return LK_OK;
		}
		memcpy(name, PREFIX, PREFIX_LEN);
		memcpy(name + PREFIX_LEN, domain, dl + 1);
	} else {
		memcpy(name, domain, dl + 1);
	}
	for (i = 0; i < d->ncache; i++) {
		if (d->cache[i].type == type &&
		    strcmp(d->cache[i].name, name) == 0) {
			*out = &d->cache[i];
			if (d->cache[i].state == C_TEMP) {
				d->temp_name = d->cache[i].name;
				return LK_TEMP;
			}
			return LK_OK;
		}
	}
	if (d->ncache >= d->opts.max_queries)
		return LK_LIMIT;
	d->q.type = type;
	memcpy(d->q.name, name, strlen(name) + 1);
	d->policy_phase = d->in_policy;
	return LK_ASK;
}

/* The result is final; the reason is text followed by arg. */
static void
finish(struct dmarc *d, enum dmarc_result r, const char *text, const char *arg)
{
	d->done = true;
	d->result = r;
	snprintf(d->reason, sizeof(d->reason), "%s%s", text, arg);
}

/* Policy discovery; LK_OK with have_rec false = no record. */
static enum lk
discover_walk(struct dmarc *d)
{
	const char *names[DMARC_WALK_MAX];
	const struct cent *e;
	size_t n = dmarc_walk_names(d->from, names), i;
	enum lk k;

	for (i = 0; i < n; i++) {
		k = lookup(d, DMARC_Q_TXT, names[i], &e);
		if (k != LK_OK)
			return k;
		if (e->state == C_REC) {
			memcpy(d->pol_dom, names[i], strlen(names[i]) + 1);
			d->have_rec = true;
			return LK_OK;
		}
	}
	return LK_OK;
}

/* RFC 7489 discovery (tests): the From domain, then its org domain. */
static enum lk
discover_legacy(struct dmarc *d)
{
	const struct cent *e;
	const char *try[2] = {d->from, NULL};
	size_t i;
	enum lk k;

	if (d->opts.org_domain(d->opts.org_ctx, d->from, d->tmp_org,
			       sizeof(d->tmp_org)) &&
	    strcmp(d->tmp_org, d->from) != 0)
		try[1] = d->tmp_org;
	for (i = 0; i < 2 && try[i] != NULL; i++) {
		k = lookup(d, DMARC_Q_TXT, try[i], &e);
		if (k != LK_OK)
			return k;
		if (e->state == C_REC) {
			memcpy(d->pol_dom, try[i], strlen(try[i]) + 1);
			d->have_rec = true;
			return LK_OK;
		}
	}
	return LK_OK;
}

/* The Organizational Domain of dom into out (NAME_BUF). */
static enum lk
org_domain(struct dmarc *d, const char *dom, char *out)
{
	const char *names[DMARC_WALK_MAX], *org = NULL;
	const struct cent *e;
	size_t n, i;
	enum lk k;

	if (d->opts.org_domain != NULL) {
		if (!d->opts.org_domain(d->opts.org_ctx, dom, out, NAME_BUF))
			memcpy(out, dom, strlen(dom) + 1);
		return LK_OK;
	}
	n = dmarc_walk_names(dom, names);
	for (i = 0; i < n; i++) {
		k = lookup(d, DMARC_Q_TXT, names[i], &e);
		if (k != LK_OK)
			return k;
		if (e->state != C_REC)
			continue;
		org = names[i]; /* so far the one with the fewest labels */
		if (e->psd == DMARC_PSD_N)
			break;
		if (e->psd == DMARC_PSD_Y && i > 0) {
			org = last_labels(dom, count_labels(names[i]) + 1);
			break;
		}
	}
	if (org == NULL)
		org = dom;
	memmove(out, org, strlen(org) + 1);
	return LK_OK;
}

static enum lk
align_one(struct dmarc *d, const char *id, uint8_t mode, enum align_state *st)
{
	char org[NAME_BUF];
	enum lk k;

	*st = AL_NO;
	if (strcmp(id, d->from) == 0) {
		*st = AL_YES;
		return LK_OK;
	}
	if (mode == DMARC_ALIGN_STRICT)
		return LK_OK;
	if (d->org[0] == '\0') {
		k = org_domain(d, d->from, d->tmp_org);
		if (k == LK_TEMP)
			*st = AL_TEMP;
		if (k != LK_OK)
			return k == LK_TEMP ? LK_OK : k;
		memcpy(d->org, d->tmp_org, strlen(d->tmp_org) + 1);
	}
	if (!within(id, d->org))
		return LK_OK;
	k = org_domain(d, id, org);
	if (k == LK_TEMP)
		*st = AL_TEMP;
	else if (k == LK_OK && strcmp(org, d->org) == 0)
		*st = AL_YES;
	return k == LK_TEMP ? LK_OK : k;
}

/* Alignment of every identifier; LK_OK leaves the result in *any. */
static enum lk
align_all(struct dmarc *d, bool *any, bool *temp)
{
	enum align_state st;
	size_t i;
	enum lk k;

	*any = *temp = false;
	d->aligned_spf = d->aligned_dkim = NULL;
	if (d->spf_ok) {
		k = align_one(d, d->spf, d->rec.aspf, &st);
		if (k != LK_OK)
			return k;
		if (st == AL_YES)
			d->aligned_spf = d->spf;
		*temp |= st == AL_TEMP;
	}
	for (i = 0; i < d->ndkim; i++) {
		k = align_one(d, d->dkim[i], d->rec.adkim, &st);
		if (k != LK_OK)
			return k;
		if (st == AL_YES && d->aligned_dkim == NULL)
			d->aligned_dkim = d->dkim[i];
		*temp |= st == AL_TEMP;
	}
	*any = d->aligned_spf != NULL || d->aligned_dkim != NULL;
	return LK_OK;
}

/* Whether the From domain exists (RFC 9989: A, AAAA, MX). */
static enum lk
from_exists(struct dmarc *d, bool *exists)
{
	static const enum dmarc_qtype types[3] = {DMARC_Q_A, DMARC_Q_AAAA,
						  DMARC_Q_MX};
	const struct cent *e;
	size_t i;
	enum lk k;

	*exists = d->exists != DMARC_EXISTS_NO;
	if (d->exists != DMARC_EXISTS_ASK)
		return LK_OK;
	for (i = 0; i < 3; i++) {
		k = lookup(d, types[i], d->from, &e);
		if (k != LK_OK)
			return k;
		if (e->state == C_EXISTS)
			return LK_OK;
		if (e->state == C_NXDOMAIN)
			break;
	}
	*exists = false;
	return LK_OK;
}

static enum dmarc_policy
lower(enum dmarc_policy p)
{
	return p == DMARC_P_REJECT ? DMARC_P_QUARANTINE : DMARC_P_NONE;
}

static void
choose_policy(struct dmarc *d)
{
	d->policy = d->rec.p;
	d->ptag = "p";
	if (strcmp(d->pol_dom, d->from) != 0 && d->rec.sp != DMARC_P_UNSET) {
		d->policy = d->rec.sp;
		d->ptag = "sp";
	}
}

static void
set_temp(struct dmarc *d, const char *what)
{
	finish(d, DMARC_TEMPERROR, "DNS failure at ",
	       d->temp_name != NULL ? d->temp_name : what);
}

/* Run the evaluation as far as the cached answers allow. */
static enum lk
run(struct dmarc *d)
{
	bool any, temp, exists;
	enum lk k;

	d->in_policy = true;
	k = d->opts.org_domain != NULL ? discover_legacy(d) : discover_walk(d);
	d->in_policy = false;
	if (k != LK_OK)
		return k;
	if (!d->have_rec) {
		finish(d, DMARC_NONE, "no DMARC record for ", d->from);
		return LK_OK;
	}
	if (d->rec_status != DMARC_REC_OK) {
		finish(d, DMARC_NONE, "unusable policy record at _dmarc.",
		       d->pol_dom);
		return LK_OK;
	}
	choose_policy(d);
	k = align_all(d, &any, &temp);
	if (k != LK_OK)
		return k;
	if (any) {
		finish(d, DMARC_PASS,
		       d->aligned_dkim != NULL ? "aligned DKIM d="
					       : "aligned SPF ",
		       d->aligned_dkim != NULL ? d->aligned_dkim
					       : d->aligned_spf);
		return LK_OK;
	}
	if (temp) {
		set_temp(d, "an Organizational Domain");
		return LK_OK;
	}
	if (strcmp(d->pol_dom, d->from) != 0 && d->rec.np != DMARC_P_UNSET) {
		k = from_exists(d, &exists);
		if (k != LK_OK)
			return k;
		if (!exists) {
			d->policy = d->rec.np;
			d->ptag = "np";
		}
	}
	finish(d, DMARC_FAIL, "no aligned SPF or DKIM identifier", "");
	return LK_OK;
}

static void
compose(struct dmarc *d)
{
	char extra[64] = "";

	d->disp = DMARC_P_NONE;
	if (d->result == DMARC_FAIL) {
		d->disp = d->rec.testing ? lower(d->policy) : d->policy;
		if (d->disp != d->policy)
			snprintf(extra, sizeof(extra), " dis=%s",
				 dmarc_policy_name(d->disp));
	}
	if (d->result == DMARC_PASS || d->result == DMARC_FAIL)
		snprintf(d->ar, sizeof(d->ar),
			 "dmarc=%s (%s=%s%s) header.from=%s",
			 dmarc_result_name(d->result), d->ptag,
			 dmarc_policy_name(d->policy), extra, d->from);
	else if (d->from_ok)
		snprintf(d->ar, sizeof(d->ar), "dmarc=%s header.from=%s",
			 dmarc_result_name(d->result), d->from);
	else
		snprintf(d->ar, sizeof(d->ar), "dmarc=%s",
			 dmarc_result_name(d->result));
}

static enum dmarc_step
step(struct dmarc *d)
{
	enum lk k;

	if (!d->done) {
		k = run(d);
		if (k == LK_ASK)
			return DMARC_STEP_QUERY;
		if (k == LK_TEMP)
			set_temp(d, "?");
		else if (k == LK_LIMIT)
			finish(d, DMARC_PERMERROR, "too many DNS questions",
			       "");
	}
	if (d->result != DMARC_PASS && d->result != DMARC_FAIL) {
		d->policy = DMARC_P_UNSET;
		d->ptag = "";
		d->aligned_spf = d->aligned_dkim = NULL;
	}
	compose(d);
	return DMARC_STEP_DONE;
}

static void
copy_ident(const struct dmarc_ident *in, char *out, bool *ok)
{
	*ok = in->domain != NULL && in->pass &&
	      dmarc_domain_norm(in->domain, strlen(in->domain), out, NAME_BUF);
}

enum dmarc_step
dmarc_start(struct dmarc *d, const struct dmarc_input *in,
	    const struct dmarc_opts *opts)
{
	size_t i;
	bool ok;

	memset(d, 0, sizeof(*d));
	if (opts != NULL)
		d->opts = *opts;
	if (d->opts.max_queries == 0 ||
	    d->opts.max_queries > DMARC_QUERIES_DEFAULT)
		d->opts.max_queries = DMARC_QUERIES_DEFAULT;
	d->exists = in->from_exists;
	d->ptag = "";
	record_defaults(&d->rec);
	copy_ident(&in->spf, d->spf, &d->spf_ok);
	for (i = 0; i < in->ndkim && i < DMARC_IDS_MAX; i++) {
		copy_ident(&in->dkim[i], d->dkim[d->ndkim], &ok);
		d->ndkim += ok;
	}
	d->from_ok = in->from_domain != NULL &&
		     dmarc_domain_norm(in->from_domain, strlen(in->from_domain),
				       d->from, sizeof(d->from));
	if (!d->from_ok) {
		d->from[0] = '\0';
		finish(d, DMARC_PERMERROR, "the From domain is not a DNS name",
		       "");
	}
	return step(d);
}

const struct dmarc_query *
dmarc_query(const struct dmarc *d)
{
	return &d->q;
}

static void
store_txt(struct dmarc *d, struct cent *e, const struct dmarc_answer *a)
{
	struct dmarc_record r;
	size_t i, n = 0, which = 0;
	enum dmarc_parse ps;

	for (i = 0; i < a->count; i++)
		if (a->rr[i].data != NULL &&
		    dmarc_record_is_dmarc(a->rr[i].data, a->rr[i].len)) {
			n++;
			which = i;
		}
	if (n != 1)
		return; /* none, or several: all discarded */
	e->state = C_REC;
	ps = dmarc_record_parse(a->rr[which].data, a->rr[which].len, &r);
	e->psd = r.psd;
	if (d->policy_phase) {
		d->rec = r;
		d->rec_status = ps;
	}
}

enum dmarc_step
dmarc_resume(struct dmarc *d, const struct dmarc_answer *a)
{
	struct cent *e;

	if (d->done)
		return DMARC_STEP_DONE;
	e = &d->cache[d->ncache++];
	memset(e, 0, sizeof(*e));
	e->type = (uint8_t)d->q.type;
	memcpy(e->name, d->q.name, sizeof(e->name));
	e->state = C_NONE;
	e->psd = DMARC_PSD_U;
	if (a->rcode == DMARC_DNS_TEMPFAIL || a->rcode == DMARC_DNS_TIMEOUT)
		e->state = C_TEMP;
	else if (a->rcode == DMARC_DNS_NXDOMAIN)
		e->state = C_NXDOMAIN;
	else if (a->rcode == DMARC_DNS_ANSWER && d->q.type == DMARC_Q_TXT)
		store_txt(d, e, a);
	else if (a->rcode == DMARC_DNS_ANSWER && a->count > 0)
		e->state = C_EXISTS;
	if (e->state == C_NXDOMAIN && d->q.type == DMARC_Q_TXT)
		e->state = C_NONE;
	return step(d);
}

void
dmarc_abort(struct dmarc *d, const char *why)
{
	if (d->done)
		return;
	finish(d, DMARC_TEMPERROR, "aborted: ", why);
	step(d);
}

enum dmarc_result
dmarc_result(const struct dmarc *d)
{
	return d->result;
}

enum dmarc_policy
dmarc_policy(const struct dmarc *d)
{
	return d->policy;
}

enum dmarc_policy
dmarc_disposition(const struct dmarc *d)
{
	return d->disp;
}

const char *
dmarc_policy_tag(const struct dmarc *d)
{
	return d->ptag;
}

const struct dmarc_record *
dmarc_record(const struct dmarc *d)
{
	return d->have_rec && d->rec_status == DMARC_REC_OK ? &d->rec : NULL;
}

const char *
dmarc_policy_domain(const struct dmarc *d)
{
	return d->have_rec ? d->pol_dom : "";
}

const char *
dmarc_from(const struct dmarc *d)
{
	return d->from;
}

const char *
dmarc_org_domain(const struct dmarc *d)
{
	return d->org;
}

const char *
dmarc_aligned_spf(const struct dmarc *d)
{
	return d->aligned_spf;
}

const char *
dmarc_aligned_dkim(const struct dmarc *d)
{
	return d->aligned_dkim;
}

const char *
dmarc_ar(const struct dmarc *d)
{
	return d->ar;
}

const char *
dmarc_reason(const struct dmarc *d)
{
	return d->reason;
}

unsigned
dmarc_queries(const struct dmarc *d)
{
	return d->ncache;
}

const char *
dmarc_result_name(enum dmarc_result r)
{
	switch (r) {
	case DMARC_NONE:
		return "none";
	case DMARC_PASS:
		return "pass";
	case DMARC_FAIL:
		return "fail";
	case DMARC_TEMPERROR:
		return "temperror";
	case DMARC_PERMERROR:
		return "permerror";
	}
	return "?";
}

const char *
dmarc_policy_name(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_P_UNSET:
		return "unset";
	case DMARC_P_NONE:
		return "none";
	case DMARC_P_QUARANTINE:
		return "quarantine";
	case DMARC_P_REJECT:
		return "reject";
	}
	return "?";
}
