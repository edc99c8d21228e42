/*
 * dkim_tags — tag lists, DKIM-Signature values and key records; see
 * dkim_tags.h.
 *
 * The tag-list scanner works on offsets so that callers can find the exact
 * bytes of a value (the b= value is emptied for the header hash, RFC 6376
 * §3.7). Folding white space is WSP, or CRLF followed by WSP; a CR or LF
 * anywhere else is an error.
 */
#include "mail/dkim_tags.h"

#include <string.h>

static bool
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

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

static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Length of the FWS at s[i] (0 if none); -1 for a CR/LF that is not FWS. */
static long
fws_len(const char *s, size_t n, size_t i)
{
	size_t j = i;

	for (;;) {
		while (j < n && is_wsp((unsigned char)s[j]))
			j++;
		if (j + 1 < n && s[j] == '\r' && s[j + 1] == '\n') {
			if (j + 2 < n && is_wsp((unsigned char)s[j + 2])) {
				j += 2;
				continue;
			}
			return -1;
		}
		if (j < n && (s[j] == '\r' || s[j] == '\n'))
			return -1;
		return (long)(j - i);
	}
}

static bool
is_valchar(int c)
{
	return c >= 0x21 && c <= 0x7e && c != ';';
}

/* One tag-spec at *pos; stops at ';' or the end. */
static int
parse_tag(const char *s, size_t n, size_t *pos, struct dkim_tag *t,
	  const char **err)
{
	size_t i = *pos, vend;
	long f;

	if (i >= n || !is_alpha((unsigned char)s[i])) {
		*err = "tag name expected";
		return -1;
	}
	t->name.p = s + i;
	while (i < n && (is_alpha((unsigned char)s[i]) ||
			 is_digit((unsigned char)s[i]) || s[i] == '_'))
		i++;
	t->name.n = (size_t)(s + i - t->name.p);
	if ((f = fws_len(s, n, i)) < 0)
		goto badfws;
	i += (size_t)f;
	if (i >= n || s[i] != '=') {
		*err = "'=' expected after tag name";
		return -1;
	}
	t->val_start = ++i;
	if ((f = fws_len(s, n, i)) < 0)
		goto badfws;
	i += (size_t)f;
	t->value.p = s + i;
	vend = i;
	while (i < n && s[i] != ';') {
		if (is_valchar((unsigned char)s[i])) {
			vend = ++i;
			continue;
		}
		if ((f = fws_len(s, n, i)) <= 0) {
			*err = f < 0 ? "bare CR or LF in tag list"
				     : "invalid character in tag value";
			return -1;
		}
		i += (size_t)f;
	}
	t->value.n = vend - (size_t)(t->value.p - s);
	t->val_end = i;
	*pos = i;
	return 0;
badfws:
	*err = "bare CR or LF in tag list";
	return -1;
}

static bool
slice_eq(struct dkim_slice a, struct dkim_slice b)
{
	return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

int
dkim_tags_parse(const char *s, size_t n, struct dkim_tags *out,
		const char **err)
{
	size_t pos = 0, k;
	long f;

	out->n = 0;
	for (;;) {
		if ((f = fws_len(s, n, pos)) < 0) {
			*err = "bare CR or LF in tag list";
			return -1;
		}
		pos += (size_t)f;
		if (pos == n) /* empty list, or one trailing ';' */
			return 0;
		if (out->n == DKIM_TAGS_MAX) {
			*err = "too many tags";
			return -1;
		}
		if (parse_tag(s, n, &pos, &out->tag[out->n], err) < 0)
			return -1;
		for (k = 0; k < out->n; k++) {
			if (slice_eq(out->tag[k].name, out->tag[out->n].name)) {
				*err = "duplicate tag";
				return -1;
			}
		}
		out->n++;
		if (pos == n)
			return 0;
		pos++; /* ';' */
	}
}

const struct dkim_tag *
dkim_tags_get(const struct dkim_tags *t, const char *name)
{
	size_t k, len = strlen(name);

	for (k = 0; k < t->n; k++) {
		if (t->tag[k].name.n == len &&
		    memcmp(t->tag[k].name.p, name, len) == 0)
			return &t->tag[k];
	}
	return NULL;
}

static int
b64_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (is_digit(c))
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
dkim_b64_decode(const char *s, size_t n, uint8_t *out, size_t max,
		size_t *outlen)
{
	uint32_t acc = 0;
	size_t i, len = 0, nchar = 0, npad = 0;
	int v;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (is_wsp(c) || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			if (++npad > 2)
				return -1;
			nchar++;
			continue;
		}
		if (npad > 0 || (v = b64_val(c)) < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		if (++nchar % 4 == 0) {
			if (len + 3 > max)
				return -1;
			out[len++] = (uint8_t)(acc >> 16);
			out[len++] = (uint8_t)(acc >> 8);
			out[len++] = (uint8_t)acc;
			acc = 0;
		}
	}
	if (nchar % 4 != 0)
		return -1;
	if (npad > 0) {
		size_t keep = 3 - npad;

		/* acc holds 4 - npad sextets: 18 or 12 data bits. */
		acc <<= 6 * npad;
		if (len + keep > max || (npad == 1 && (acc & 0xff)) ||
		    (npad == 2 && (acc & 0xffff)))
			return -1;
		out[len++] = (uint8_t)(acc >> 16);
		if (keep == 2)
			out[len++] = (uint8_t)(acc >> 8);
	}
	*outlen = len;
	return 0;
}

bool
dkim_slice_eqi(struct dkim_slice a, const char *b, size_t bn)
{
	size_t i;

	if (a.n != bn)
		return false;
	for (i = 0; i < bn; i++) {
		if (lower((unsigned char)a.p[i]) != lower((unsigned char)b[i]))
			return false;
	}
	return true;
}

static bool
val_is(const struct dkim_tag *t, const char *s)
{
	return dkim_slice_eqi(t->value, s, strlen(s));
}

const char *
dkim_alg_name(enum dkim_alg a)
{
	switch (a) {
	case DKIM_ALG_RSA_SHA1:
		return "rsa-sha1";
	case DKIM_ALG_RSA_SHA256:
		return "rsa-sha256";
	case DKIM_ALG_ED25519_SHA256:
		return "ed25519-sha256";
	default:
		return "unknown";
	}
}

bool
dkim_alg_is_sha1(enum dkim_alg a)
{
	return a == DKIM_ALG_RSA_SHA1;
}

bool
dkim_domain_ok(const char *s, size_t n, bool underscore)
{
	size_t i, label = 0;

	if (n == 0 || n > DKIM_DOMAIN_MAX)
		return false;
	for (i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!is_alpha(c) && !is_digit(c) && c != '-' &&
		    !(underscore && c == '_'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[n - 1] != '-';
}

/* Strict decimal of at most maxdig digits. */
static int
parse_num(struct dkim_slice v, size_t maxdig, uint64_t *out)
{
	uint64_t x = 0;
	size_t i;

	if (v.n == 0 || v.n > maxdig)
		return -1;
	for (i = 0; i < v.n; i++) {
		if (!is_digit((unsigned char)v.p[i]))
			return -1;
		x = x * 10 + (uint64_t)(v.p[i] - '0');
	}
	*out = x;
	return 0;
}

/*
 * Iterate over a colon-separated list with FWS around items: returns the
 * next item (empty slice at the end); *pos advances.
 */
static bool
next_item(struct dkim_slice v, size_t *pos, struct dkim_slice *item)
{
	size_t i = *pos, end;

	if (i > v.n)
		return false;
	while (i < v.n && (is_wsp((unsigned char)v.p[i]) || v.p[i] == '\r' ||
			   v.p[i] == '\n'))
		i++;
	item->p = v.p + i;
	while (i < v.n && v.p[i] != ':')
		i++;
	end = i;
	while (end > (size_t)(item->p - v.p) &&
	       (is_wsp((unsigned char)v.p[end - 1]) || v.p[end - 1] == '\r' ||
		v.p[end - 1] == '\n'))
		end--;
	item->n = end - (size_t)(item->p - v.p);
	*pos = i + 1;
	return true;
}

static int
parse_alg(const struct dkim_tag *t, struct dkim_sig *sig)
{
	if (val_is(t, "rsa-sha256"))
		sig->alg = DKIM_ALG_RSA_SHA256;
	else if (val_is(t, "ed25519-sha256"))
		sig->alg = DKIM_ALG_ED25519_SHA256;
	else if (val_is(t, "rsa-sha1"))
		sig->alg = DKIM_ALG_RSA_SHA1;
	else
		return -1;
	return 0;
}

static int
canon_word(struct dkim_slice w, enum dkim_canon *c)
{
	if (dkim_slice_eqi(w, "simple", 6))
		*c = DKIM_CANON_SIMPLE;
	else if (dkim_slice_eqi(w, "relaxed", 7))
		*c = DKIM_CANON_RELAXED;
	else
		return -1;
	return 0;
}

static int
parse_canon(const struct dkim_tag *t, struct dkim_sig *sig)
{
	struct dkim_slice h = t->value, b = {"", 0};
	const char *slash = memchr(t->value.p, '/', t->value.n);

	sig->hcanon = sig->bcanon = DKIM_CANON_SIMPLE;
	if (slash != NULL) {
		h.n = (size_t)(slash - h.p);
		b.p = slash + 1;
		b.n = t->value.n - h.n - 1;
		if (canon_word(b, &sig->bcanon) < 0)
			return -1;
	}
	return canon_word(h, &sig->hcanon);
}

static bool
is_ftext(int c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static int
parse_h(const struct dkim_tag *t, struct dkim_sig *sig, const char **err)
{
	struct dkim_slice item;
	size_t pos = 0, i;
	bool from = false;

	sig->nhdrs = 0;
	while (next_item(t->value, &pos, &item)) {
		if (item.n == 0) {
			*err = "empty header name in h=";
			return -1;
		}
		for (i = 0; i < item.n; i++) {
			if (!is_ftext((unsigned char)item.p[i])) {
				*err = "invalid header name in h=";
				return -1;
			}
		}
		if (sig->nhdrs == DKIM_SIG_HDRS_MAX) {
			*err = "too many header names in h=";
			return -1;
		}
		sig->hdrs[sig->nhdrs++] = item;
		if (dkim_slice_eqi(item, "from", 4))
			from = true;
	}
	if (!from) {
		*err = "From is not signed (h=)";
		return -1;
	}
	return 0;
}

static int
hexval(int c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* dkim-quoted-printable (RFC 6376 §2.11) into sig->auid; FWS dropped. */
static int
decode_qp(struct dkim_slice v, char *out, size_t max)
{
	size_t i, len = 0;

	for (i = 0; i < v.n; i++) {
		int c = (unsigned char)v.p[i], hi, lo;

		if (is_wsp(c) || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			if (i + 2 >= v.n)
				return -1;
			hi = hexval((unsigned char)v.p[i + 1]);
			lo = hexval((unsigned char)v.p[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c == 0 || len >= max)
			return -1;
		out[len++] = (char)c;
	}
	out[len] = '\0';
	return 0;
}

/* i= domain is d= or a subdomain of it. */
static bool
auid_in_sdid(const char *auid, struct dkim_slice d)
{
	const char *at = strrchr(auid, '@');
	struct dkim_slice dom;

	if (at == NULL)
		return false;
	dom.p = at + 1;
	dom.n = strlen(dom.p);
	if (dkim_slice_eqi(dom, d.p, d.n))
		return true;
	if (dom.n <= d.n + 1 || dom.p[dom.n - d.n - 1] != '.')
		return false;
	dom.p += dom.n - d.n;
	dom.n = d.n;
	return dkim_slice_eqi(dom, d.p, d.n);
}

static int
parse_q(const struct dkim_tag *t)
{
	struct dkim_slice item;
	size_t pos = 0;

	while (next_item(t->value, &pos, &item)) {
		if (dkim_slice_eqi(item, "dns/txt", 7))
			return 0;
	}
	return -1;
}

static int
sig_required(const struct dkim_sig *sig, const char **err)
{
	static const char *const req[] = {"v", "a", "b", "bh", "d", "h", "s"};
	size_t k;

	for (k = 0; k < sizeof(req) / sizeof(req[0]); k++) {
		if (dkim_tags_get(&sig->tags, req[k]) == NULL) {
			switch (k) {
			case 0:
				*err = "missing v= tag";
				break;
			case 1:
				*err = "missing a= tag";
				break;
			case 2:
				*err = "missing b= tag";
				break;
			case 3:
				*err = "missing bh= tag";
				break;
			case 4:
				*err = "missing d= tag";
				break;
			case 5:
				*err = "missing h= tag";
				break;
			default:
				*err = "missing s= tag";
				break;
			}
			return -1;
		}
	}
	return 0;
}

static int
sig_times(struct dkim_sig *sig, const char **err)
{
	const struct dkim_tag *t;

	if ((t = dkim_tags_get(&sig->tags, "l")) != NULL) {
		if (parse_num(t->value, 20, &sig->l) < 0 ||
		    (t->value.n == 20 && t->value.p[0] > '1')) {
			*err = "invalid l= tag";
			return -1;
		}
		sig->has_l = true;
	}
	if ((t = dkim_tags_get(&sig->tags, "t")) != NULL) {
		if (parse_num(t->value, 16, &sig->t) < 0) {
			*err = "invalid t= tag";
			return -1;
		}
		sig->has_t = true;
	}
	if ((t = dkim_tags_get(&sig->tags, "x")) != NULL) {
		if (parse_num(t->value, 16, &sig->x) < 0) {
			*err = "invalid x= tag";
			return -1;
		}
		sig->has_x = true;
	}
	if (sig->has_t && sig->has_x && sig->x <= sig->t) {
		*err = "x= is not after t=";
		return -1;
	}
	return 0;
}

static int
sig_ids(struct dkim_sig *sig, const char **err)
{
	const struct dkim_tag *t;
	size_t dn;

	sig->d = dkim_tags_get(&sig->tags, "d")->value;
	sig->s = dkim_tags_get(&sig->tags, "s")->value;
	if (!dkim_domain_ok(sig->d.p, sig->d.n, false)) {
		*err = "invalid d= domain";
		return -1;
	}
	if (!dkim_domain_ok(sig->s.p, sig->s.n, true)) {
		*err = "invalid s= selector";
		return -1;
	}
	if ((t = dkim_tags_get(&sig->tags, "i")) != NULL) {
		if (decode_qp(t->value, sig->auid, DKIM_AUID_MAX) < 0 ||
		    strchr(sig->auid, '@') == NULL) {
			*err = "invalid i= tag";
			return -1;
		}
		if (!auid_in_sdid(sig->auid, sig->d)) {
			*err = "i= domain is not d= or a subdomain";
			return -1;
		}
	} else {
		dn = sig->d.n;
		sig->auid[0] = '@';
		memcpy(sig->auid + 1, sig->d.p, dn);
		sig->auid[dn + 1] = '\0';
	}
	return 0;
}

static int
sig_hashes(struct dkim_sig *sig, const char **err)
{
	const struct dkim_tag *bt = dkim_tags_get(&sig->tags, "b");
	const struct dkim_tag *bh = dkim_tags_get(&sig->tags, "bh");
	size_t want = dkim_alg_is_sha1(sig->alg) ? 20 : 32;

	if (dkim_b64_decode(bh->value.p, bh->value.n, sig->bh, sizeof(sig->bh),
			    &sig->bhlen) < 0 ||
	    sig->bhlen != want) {
		*err = "invalid bh= tag";
		return -1;
	}
	if (dkim_b64_decode(bt->value.p, bt->value.n, sig->b, sizeof(sig->b),
			    &sig->blen) < 0 ||
	    sig->blen == 0) {
		*err = "invalid b= tag";
		return -1;
	}
	sig->b_start = bt->val_start;
	sig->b_end = bt->val_end;
	return 0;
}

int
dkim_sig_parse(const char *value, size_t n, struct dkim_sig *sig,
	       const char **err)
{
	const struct dkim_tag *t;

	memset(sig, 0, sizeof(*sig));
	if (dkim_tags_parse(value, n, &sig->tags, err) < 0 ||
	    sig_required(sig, err) < 0)
		return -1;
	if (!val_is(dkim_tags_get(&sig->tags, "v"), "1")) {
		*err = "unsupported version (v=)";
		return -1;
	}
	if (parse_alg(dkim_tags_get(&sig->tags, "a"), sig) < 0) {
		*err = "unsupported algorithm (a=)";
		return -1;
	}
	if ((t = dkim_tags_get(&sig->tags, "c")) != NULL &&
	    parse_canon(t, sig) < 0) {
		*err = "unsupported canonicalization (c=)";
		return -1;
	}
	if ((t = dkim_tags_get(&sig->tags, "q")) != NULL && parse_q(t) < 0) {
		*err = "unsupported query method (q=)";
		return -1;
	}
	if (sig_ids(sig, err) < 0 ||
	    parse_h(dkim_tags_get(&sig->tags, "h"), sig, err) < 0 ||
	    sig_times(sig, err) < 0 || sig_hashes(sig, err) < 0)
		return -1;
	return 0;
}

static int
key_flags(const struct dkim_tags *tags, struct dkim_keyrec *key,
	  const char **err)
{
	const struct dkim_tag *t;
	struct dkim_slice item;
	size_t pos;
	bool email = false;

	key->sha1_ok = key->sha256_ok = true;
	if ((t = dkim_tags_get(tags, "h")) != NULL) {
		key->sha1_ok = key->sha256_ok = false;
		for (pos = 0; next_item(t->value, &pos, &item);) {
			if (dkim_slice_eqi(item, "sha1", 4))
				key->sha1_ok = true;
			else if (dkim_slice_eqi(item, "sha256", 6))
				key->sha256_ok = true;
		}
	}
	if ((t = dkim_tags_get(tags, "s")) != NULL) {
		for (pos = 0; next_item(t->value, &pos, &item);) {
			if (dkim_slice_eqi(item, "*", 1) ||
			    dkim_slice_eqi(item, "email", 5))
				email = true;
		}
		if (!email) {
			*err = "key is not for email (s=)";
			return -1;
		}
	}
	if ((t = dkim_tags_get(tags, "t")) != NULL) {
		for (pos = 0; next_item(t->value, &pos, &item);) {
			if (dkim_slice_eqi(item, "y", 1))
				key->testing = true;
			else if (dkim_slice_eqi(item, "s", 1))
				key->strict = true;
		}
	}
	return 0;
}

int
dkim_key_parse(const char *s, size_t n, struct dkim_keyrec *key,
	       const char **err)
{
	struct dkim_tags tags;
	const struct dkim_tag *t;

	memset(key, 0, sizeof(*key));
	if (dkim_tags_parse(s, n, &tags, err) < 0)
		return -1;
	if ((t = dkim_tags_get(&tags, "v")) != NULL &&
	    (t != &tags.tag[0] || !val_is(t, "DKIM1"))) {
		*err = "invalid key record version (v=)";
		return -1;
	}
	key->type = DKIM_KEY_RSA;
	if ((t = dkim_tags_get(&tags, "k")) != NULL) {
		if (val_is(t, "ed25519")) {
			key->type = DKIM_KEY_ED25519;
		} else if (!val_is(t, "rsa")) {
			*err = "unknown key type (k=)";
			return -1;
		}
	}
	if (key_flags(&tags, key, err) < 0)
		return -1;
	if ((t = dkim_tags_get(&tags, "p")) == NULL) {
		*err = "key record has no p= tag";
		return -1;
	}
	if (t->value.n == 0) {
		key->revoked = true;
		return 0;
	}
	if (dkim_b64_decode(t->value.p, t->value.n, key->p, sizeof(key->p),
			    &key->plen) < 0 ||
	    key->plen == 0) {
		*err = "invalid public key (p=)";
		return -1;
	}
	return 0;
}
