/*
 * fuzz_spf — libFuzzer target for the SPF record parser and the macro
 * expander (mail/spf.c); SPF records are attacker-controlled.
 *
 * The first byte picks what to do with the rest: parse it as a record
 * (with and without a "v=spf1 " prefix), check it as a domain-spec, and
 * expand it as a domain macro-string and as an explanation. Invariants:
 * every term lies inside the record, lengths and CIDRs are in range,
 * redirect/exp point at terms of their kind, an expansion fits its buffer
 * and is NUL-terminated, and spf_name_fix leaves a name of at most 253
 * octets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct spf_record rec;
static char text[SPF_RECORD_MAX + 8];

static void
check_record(const char *s, size_t n)
{
	char err[128];
	size_t i;

	if (spf_record_parse(s, n, &rec, err, sizeof(err)) != 0) {
		if (strlen(err) >= sizeof(err))
			abort();
		return;
	}
	if (rec.nterms > SPF_TERMS_MAX || !spf_record_is_spf(s, n))
		abort();
	for (i = 0; i < rec.nterms; i++) {
		const struct spf_term *t = &rec.terms[i];

		if ((size_t)t->off + t->len > n ||
		    (size_t)t->doff + t->dlen > n || t->cidr4 > 32 ||
		    t->cidr6 > 128 || t->kind > SPF_T_UNKNOWN_MOD ||
		    strchr("+-~?", t->qual) == NULL || t->qual == '\0')
			abort();
	}
	if (rec.redirect >= 0 && rec.terms[rec.redirect].kind != SPF_T_REDIRECT)
		abort();
	if (rec.exp >= 0 && rec.terms[rec.exp].kind != SPF_T_EXP)
		abort();
}

static void
check_expand(const char *s, size_t n, unsigned flags, bool v6)
{
	static char out[SPF_EXPAND_MAX + 1];
	struct spf_macro_env e = {
	    .local = "Strong-Bad+x",
	    .odomain = "email.example.com",
	    .domain = "example.com",
	    .helo = "mx.example.org",
	    .receiver = "mx.example.net",
	    .ptr = "unknown",
	    .now = 1,
	    .v6 = v6,
	};
	long len;

	memset(e.ip, 0xab, sizeof(e.ip));
	len = spf_macro_expand(s, n, flags, &e, out, sizeof(out));
	if (len < 0) {
		if (spf_macro_valid(s, n, flags) && n < 64)
			abort(); /* valid and short must expand */
		return;
	}
	if ((size_t)len >= sizeof(out) || out[len] != '\0' ||
	    !spf_macro_valid(s, n, flags))
		abort();
	if (!(flags & SPF_MACRO_EXP) && spf_name_fix(out) &&
	    strlen(out) > SPF_NAME_MAX)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s;
	unsigned sel;

	if (size == 0 || size > SPF_RECORD_MAX)
		return 0;
	sel = data[0];
	s = (const char *)data + 1;
	size--;
	check_record(s, size);
	memcpy(text, "v=spf1 ", 7);
	memcpy(text + 7, s, size);
	check_record(text, size + 7);
	spf_domain_spec_valid(s, size);
	spf_macro_uses_p(s, size);
	check_expand(s, size, (sel & 1) ? SPF_MACRO_EXP : 0, (sel & 2) != 0);
	return 0;
}
