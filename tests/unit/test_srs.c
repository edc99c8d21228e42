/* test_srs — Sender Rewriting Scheme (mail/srs.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mail/srs.h"

#define DAY 86400
/* 2023-11-14: day 19675, 19675 mod 1024 = 219 = "G3" */
#define NOW INT64_C(1700000000)

static const struct srs_secret key_a = {(const unsigned char *)"sekrit", 6};
static const struct srs_secret key_b = {(const unsigned char *)"other", 5};
static const struct srs_secret key_c = {(const unsigned char *)"third", 5};

static enum srs_err
fwd(const struct srs_secret *k, int64_t now, const char *sender,
    const char *dom, char *out)
{
	return srs_forward(k, 0, now, sender, dom, out, SRS_OUT_SIZE);
}

static enum srs_err
rev(const struct srs_secret *k, int64_t now, const char *addr, char *out)
{
	return srs_reverse(k, 1, 0, now, 0, addr, out, SRS_OUT_SIZE);
}

/* Known answers, computed independently (Python hmac + base32). */
static void
test_known_answer(void **state)
{
	char out[SRS_OUT_SIZE];

	assert_int_equal(
	    fwd(&key_a, NOW, "user@Example.COM", "fwd.example", out), SRS_OK);
	assert_string_equal(out, "SRS0=46QKTR=G3=example.com=user@fwd.example");
	assert_int_equal(fwd(&key_a, NOW,
			     "SRS0=ABCDEF=G3=example.com=user@A.example",
			     "FWD.example", out),
			 SRS_OK);
	assert_string_equal(
	    out,
	    "SRS1=DV3HUQ=a.example==ABCDEF=G3=example.com=user@fwd.example");
}

static void
test_round_trip(void **state)
{
	char out[SRS_OUT_SIZE], back[SRS_OUT_SIZE];

	assert_int_equal(fwd(&key_a, NOW, "First.Last+tag@mail.example.org",
			     "fwd.example", out),
			 SRS_OK);
	assert_true(srs_is_srs(out));
	assert_int_equal(rev(&key_a, NOW + 3 * DAY, out, back), SRS_OK);
	assert_string_equal(back, "First.Last+tag@mail.example.org");
	/* a local part containing '=' survives: it is the last field */
	assert_int_equal(fwd(&key_a, NOW, "a=b=c@x.example", "f.example", out),
			 SRS_OK);
	assert_int_equal(rev(&key_a, NOW, out, back), SRS_OK);
	assert_string_equal(back, "a=b=c@x.example");
	/* a bare local part reverses too */
	*strchr(out, '@') = '\0';
	assert_int_equal(rev(&key_a, NOW, out, back), SRS_OK);
	assert_string_equal(back, "a=b=c@x.example");
}

/* orig -> A -> B -> C, bounce goes C -> A -> orig. */
static void
test_chain(void **state)
{
	char at_a[SRS_OUT_SIZE], at_b[SRS_OUT_SIZE], at_c[SRS_OUT_SIZE];
	char back[SRS_OUT_SIZE], back2[SRS_OUT_SIZE];
	char *p;

	assert_int_equal(
	    fwd(&key_a, NOW, "alice@orig.example", "a.example", at_a), SRS_OK);
	assert_int_equal(fwd(&key_b, NOW, at_a, "b.example", at_b), SRS_OK);
	assert_int_equal(strncmp(at_b, "SRS1=", 5), 0);
	/* B keeps A's SRS0 part verbatim after "a.example=" */
	p = strstr(at_b, "=a.example==");
	assert_non_null(p);
	assert_int_equal(strncmp(p + strlen("=a.example="), at_a + 4,
				 strlen(at_a) - 4 - strlen("@a.example")),
			 0);
	/* C rewrites SRS1 keeping the first forwarder */
	assert_int_equal(fwd(&key_c, NOW, at_b, "c.example", at_c), SRS_OK);
	assert_int_equal(strncmp(at_c, "SRS1=", 5), 0);
	assert_non_null(strstr(at_c, "=a.example=="));
	assert_null(strstr(at_c, "b.example=="));
	assert_string_equal(strchr(at_c, '@'), "@c.example");
	/* the bounce at C and at B both go straight to A */
	assert_int_equal(rev(&key_c, NOW, at_c, back), SRS_OK);
	assert_string_equal(back, at_a);
	assert_int_equal(rev(&key_b, NOW, at_b, back), SRS_OK);
	assert_string_equal(back, at_a);
	assert_int_equal(rev(&key_a, NOW + DAY, back, back2), SRS_OK);
	assert_string_equal(back2, "alice@orig.example");
	/* B's SRS1 is not valid at C, nor A's SRS0 at B */
	assert_int_equal(rev(&key_c, NOW, at_b, back), SRS_E_HASH);
	assert_int_equal(rev(&key_b, NOW, at_a, back), SRS_E_HASH);
	assert_string_equal(back, "");
}

/* Foreign SRS with a base64 hash (libsrs2 style) is still wrapped. */
static void
test_foreign_formats(void **state)
{
	char out[SRS_OUT_SIZE], back[SRS_OUT_SIZE];

	assert_int_equal(fwd(&key_a, NOW, "SRS0+x/9z=TT=d.example=u@o.example",
			     "fwd.example", out),
			 SRS_OK);
	assert_int_equal(strncmp(out, "SRS1=", 5), 0);
	assert_non_null(strstr(out, "=o.example=+x/9z=TT=d.example=u@"));
	assert_int_equal(rev(&key_a, NOW, out, back), SRS_OK);
	assert_string_equal(back, "SRS0+x/9z=TT=d.example=u@o.example");
	assert_int_equal(fwd(&key_a, NOW,
			     "SRS1=a+b=h.example==X=TT=d=u@o.example",
			     "fwd.example", out),
			 SRS_OK);
	assert_non_null(strstr(out, "=h.example==X=TT=d=u@fwd.example"));
	/* a malformed foreign SRS1 is an ordinary address: SRS0 */
	assert_int_equal(
	    fwd(&key_a, NOW, "SRS1=junk@o.example", "fwd.example", out),
	    SRS_OK);
	assert_int_equal(strncmp(out, "SRS0=", 5), 0);
	assert_int_equal(rev(&key_a, NOW, out, back), SRS_OK);
	assert_string_equal(back, "SRS1=junk@o.example");
}

static void
test_own_not_rewrapped(void **state)
{
	char out[SRS_OUT_SIZE], again[SRS_OUT_SIZE];

	assert_int_equal(fwd(&key_a, NOW, "u@x.example", "fwd.example", out),
			 SRS_OK);
	assert_int_equal(fwd(&key_a, NOW, out, "FWD.Example", again), SRS_OK);
	assert_string_equal(again, out);
	assert_int_equal(
	    fwd(&key_a, NOW, "SRS1=whatever@fwd.example", "fwd.example", again),
	    SRS_OK);
	assert_string_equal(again, "SRS1=whatever@fwd.example");
}

static void
test_forged(void **state)
{
	char out[SRS_OUT_SIZE], back[SRS_OUT_SIZE], bad[SRS_OUT_SIZE];

	assert_int_equal(
	    fwd(&key_a, NOW, "user@example.com", "fwd.example", out), SRS_OK);
	memcpy(bad, out, sizeof(bad));
	bad[5] = bad[5] == 'A' ? 'B' : 'A';
	assert_int_equal(rev(&key_a, NOW, bad, back), SRS_E_HASH);
	memcpy(bad, out, sizeof(bad));
	memcpy(strstr(bad, "=user@"), "=usex@", 6);
	assert_int_equal(rev(&key_a, NOW, bad, back), SRS_E_HASH);
	memcpy(bad, out, sizeof(bad));
	memcpy(strstr(bad, "example.com"), "examplf", 7);
	assert_int_equal(rev(&key_a, NOW, bad, back), SRS_E_HASH);
	/* changing the timestamp breaks the hash, not "expired" */
	memcpy(bad, out, sizeof(bad));
	bad[12] = bad[12] == 'A' ? 'B' : 'A';
	assert_int_equal(rev(&key_a, NOW, bad, back), SRS_E_HASH);
	assert_int_equal(rev(&key_b, NOW, out, back), SRS_E_HASH);
	assert_string_equal(back, "");
}

static void
test_expired(void **state)
{
	char out[SRS_OUT_SIZE], back[SRS_OUT_SIZE];

	assert_int_equal(
	    fwd(&key_a, NOW, "user@example.com", "fwd.example", out), SRS_OK);
	assert_int_equal(rev(&key_a, NOW + 21 * DAY, out, back), SRS_OK);
	assert_int_equal(rev(&key_a, NOW + 22 * DAY, out, back), SRS_E_EXPIRED);
	assert_string_equal(back, "");
	/* one day in the future is clock skew; two is not */
	assert_int_equal(rev(&key_a, NOW - DAY, out, back), SRS_OK);
	assert_int_equal(rev(&key_a, NOW - 2 * DAY, out, back), SRS_E_EXPIRED);
	/* 1024 days later the stamp looks fresh again: a known limit */
	assert_int_equal(rev(&key_a, NOW + 1024 * DAY, out, back), SRS_OK);
	/* configured max age */
	assert_int_equal(srs_reverse(&key_a, 1, 0, NOW + 5 * DAY, 5, out, back,
				     sizeof(back)),
			 SRS_OK);
	assert_int_equal(srs_reverse(&key_a, 1, 0, NOW + 6 * DAY, 5, out, back,
				     sizeof(back)),
			 SRS_E_EXPIRED);
}

static void
test_timestamp_wrap(void **state)
{
	/* day 19675 + 1020 - 219 = day 20476 is 1020 mod 1024 */
	int64_t t = (INT64_C(19675) + 1020 - 219) * DAY + 1234;
	char out[SRS_OUT_SIZE], back[SRS_OUT_SIZE];

	assert_int_equal(fwd(&key_a, t, "user@example.com", "fwd.example", out),
			 SRS_OK);
	assert_non_null(strstr(out, "=74=")); /* 1020 = 31*32 + 28 */
	assert_int_equal(rev(&key_a, t + 10 * DAY, out, back), SRS_OK);
	assert_string_equal(back, "user@example.com");
	assert_int_equal(rev(&key_a, t + 30 * DAY, out, back), SRS_E_EXPIRED);
	/* and before 1970 the day still floors into 0..1023 */
	assert_int_equal(fwd(&key_a, -1, "u@example.com", "fwd.example", out),
			 SRS_OK);
	assert_non_null(strstr(out, "=77=")); /* day -1 = 1023 */
	assert_int_equal(rev(&key_a, 0, out, back), SRS_OK);
}

static void
test_case_insensitive(void **state)
{
	char out[SRS_OUT_SIZE], low[SRS_OUT_SIZE], back[SRS_OUT_SIZE];
	size_t i;

	assert_int_equal(
	    fwd(&key_a, NOW, "User@Example.com", "fwd.example", out), SRS_OK);
	for (i = 0; out[i] != '\0'; i++)
		low[i] =
		    (out[i] >= 'A' && out[i] <= 'Z') ? out[i] + 32 : out[i];
	low[i] = '\0';
	assert_int_equal(rev(&key_a, NOW, low, back), SRS_OK);
	assert_string_equal(back, "user@example.com");
	assert_int_equal(rev(&key_a, NOW, out, back), SRS_OK);
	assert_string_equal(back, "User@example.com");
	/* '+' and '-' separators after the tag */
	low[4] = '+';
	assert_int_equal(rev(&key_a, NOW, low, back), SRS_OK);
	low[4] = '-';
	assert_int_equal(rev(&key_a, NOW, low, back), SRS_OK);
	low[4] = '_';
	assert_int_equal(rev(&key_a, NOW, low, back), SRS_E_NOT_SRS);
}

static void
test_rotation(void **state)
{
	const struct srs_secret keys[] = {key_b, key_a};
	char out[SRS_OUT_SIZE], back[SRS_OUT_SIZE];

	assert_int_equal(fwd(&key_a, NOW, "u@example.com", "fwd.example", out),
			 SRS_OK);
	assert_int_equal(
	    srs_reverse(keys, 2, 0, NOW, 0, out, back, sizeof(back)), SRS_OK);
	assert_string_equal(back, "u@example.com");
	assert_int_equal(
	    srs_reverse(keys, 1, 0, NOW, 0, out, back, sizeof(back)),
	    SRS_E_HASH);
}

static void
test_hash_len(void **state)
{
	char out[SRS_OUT_SIZE], back[SRS_OUT_SIZE];

	assert_int_equal(srs_forward(&key_a, 10, NOW, "u@example.com",
				     "fwd.example", out, sizeof(out)),
			 SRS_OK);
	assert_int_equal(strcspn(out + 5, "="), 10);
	assert_int_equal(rev(&key_a, NOW, out, back), SRS_OK);
	assert_int_equal(
	    srs_reverse(&key_a, 1, 11, NOW, 0, out, back, sizeof(back)),
	    SRS_E_SYNTAX);
	assert_int_equal(srs_forward(&key_a, 4, NOW, "u@example.com",
				     "fwd.example", out, sizeof(out)),
			 SRS_OK);
	assert_int_equal(strcspn(out + 5, "="), 4);
	assert_int_equal(rev(&key_a, NOW, out, back), SRS_E_SYNTAX);
	assert_int_equal(
	    srs_reverse(&key_a, 1, 4, NOW, 0, out, back, sizeof(back)), SRS_OK);
	/* the 6-character hash is a prefix of the 10-character one */
	assert_int_equal(srs_forward(&key_a, 6, NOW, "u@example.com",
				     "fwd.example", back, sizeof(back)),
			 SRS_OK);
	assert_int_equal(strncmp(out, back, 9), 0);
}

static void
test_null_sender(void **state)
{
	char out[SRS_OUT_SIZE];

	memset(out, 'x', sizeof(out));
	assert_int_equal(fwd(&key_a, NOW, "", "fwd.example", out), SRS_OK);
	assert_string_equal(out, "");
	memset(out, 'x', sizeof(out));
	assert_int_equal(fwd(&key_a, NOW, "<>", "fwd.example", out), SRS_OK);
	assert_string_equal(out, "");
}

static void
test_length_limit(void **state)
{
	char local[80], sender[200], out[SRS_OUT_SIZE], back[SRS_OUT_SIZE];
	size_t n;

	/* "SRS0=HHHHHH=TT=" + "e.example" + "=" = 25 octets before local */
	n = 64 - 25;
	memset(local, 'a', n);
	local[n] = '\0';
	snprintf(sender, sizeof(sender), "%s@e.example", local);
	assert_int_equal(fwd(&key_a, NOW, sender, "fwd.example", out), SRS_OK);
	assert_int_equal(strchr(out, '@') - out, 64);
	assert_int_equal(rev(&key_a, NOW, out, back), SRS_OK);
	assert_string_equal(back, sender);
	local[n] = 'a';
	local[n + 1] = '\0';
	snprintf(sender, sizeof(sender), "%s@e.example", local);
	memset(out, 'x', sizeof(out));
	assert_int_equal(fwd(&key_a, NOW, sender, "fwd.example", out),
			 SRS_E_TOO_LONG);
	assert_string_equal(out, "");
	/* SRS1 of a full-length SRS0 does not fit either */
	assert_int_equal(
	    fwd(&key_a, NOW,
		"SRS0=aaaa=TT=d.example="
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb@o.example",
		"fwd.example", out),
	    SRS_E_TOO_LONG);
	/* a 64-octet local part in reverse input is fine, 65 is not */
	memset(local, 'a', 65);
	memcpy(local, "SRS0=AAAAAA=AA=e.example=", 25);
	local[65] = '\0';
	assert_int_equal(rev(&key_a, NOW, local, back), SRS_E_SYNTAX);
	local[64] = '\0';
	assert_int_equal(rev(&key_a, NOW, local, back), SRS_E_HASH);
}

static void
test_malformed(void **state)
{
	static const char *const bad[] = {
	    "SRS0=46QKTR@f.example",
	    "SRS0=46QKTR=G3@f.example",
	    "SRS0=46QKTR=G3=example.com@f.example",
	    "SRS0=46QKTR=G3=example.com=@f.example",
	    "SRS0==G3=example.com=user@f.example",
	    "SRS0=46QK=G3=example.com=user@f.example",	  /* short hash */
	    "SRS0=46QKTR1=G3=example.com=user@f.example", /* '1' not b32 */
	    "SRS0=46QKTR=G=example.com=user@f.example",
	    "SRS0=46QKTR=G31=example.com=user@f.example",
	    "SRS0=46QKTR=G0=example.com=user@f.example",
	    "SRS0=46QKTR=G3=-bad.example=user@f.example",
	    "SRS0=46QKTR=G3==user@f.example",
	    "SRS0=46QKTRAAAAAAAAAAAAAAAAAAAAA=G3=example.com=u@f.example",
	    "SRS1=DV3HUQ=a.example=ABCDEF=G3=example.com=user@f.example",
	    "SRS1=DV3HUQ=a.example=@f.example",
	    "SRS1=DV3HUQ=a.example==@f.example",
	    "SRS1=DV3HUQ@f.example",
	    "SRS1=DV3HUQ==ABCDEF=G3=example.com=user@f.example",
	    "\"SRS0=46QKTR=G3=example.com=user\"@f.example",
	};
	char back[SRS_OUT_SIZE];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(back, 'x', sizeof(back));
		if (bad[i][0] == '"')
			assert_int_equal(rev(&key_a, NOW, bad[i], back),
					 SRS_E_NOT_SRS);
		else if (rev(&key_a, NOW, bad[i], back) != SRS_E_SYNTAX)
			fail_msg("accepted: %s", bad[i]);
		assert_string_equal(back, "");
	}
	/* the hash is right but the reversed local part is not an atom */
	assert_int_equal(
	    rev(&key_a, NOW, "SRS0=VDGJCW=G3=example.com=us..er", back),
	    SRS_E_SYNTAX);
}

static void
test_not_srs(void **state)
{
	static const char *const plain[] = {
	    "user@f.example", "SRS2=a=b=c=d@f.example",
	    "SRS0@f.example", "SRS0=@f.example",
	    "SRS@f.example",  "",
	    "@f.example",     "srsx=46QKTR=G3=example.com=user@f.example",
	};
	char back[SRS_OUT_SIZE];
	size_t i;

	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		enum srs_err e = rev(&key_a, NOW, plain[i], back);

		if (e != SRS_E_NOT_SRS)
			fail_msg("%s: %s", plain[i], srs_strerror(e));
		assert_false(srs_is_srs(plain[i]));
	}
	assert_true(srs_is_srs("srs1=x@y"));
	assert_false(srs_is_srs(NULL));
}

static void
test_forward_errors(void **state)
{
	char out[SRS_OUT_SIZE];

	assert_int_equal(
	    fwd(&key_a, NOW, "\"a b\"@example.com", "fwd.example", out),
	    SRS_E_UNSUPPORTED);
	assert_int_equal(fwd(&key_a, NOW, "u@[192.0.2.1]", "fwd.example", out),
			 SRS_E_UNSUPPORTED);
	assert_int_equal(fwd(&key_a, NOW, "no-at-sign", "fwd.example", out),
			 SRS_E_SYNTAX);
	assert_int_equal(
	    fwd(&key_a, NOW, "<u@example.com>", "fwd.example", out),
	    SRS_E_SYNTAX);
	assert_int_equal(
	    fwd(&key_a, NOW, "a..b@example.com", "fwd.example", out),
	    SRS_E_SYNTAX);
	assert_string_equal(out, "");
}

static void
test_args(void **state)
{
	const struct srs_secret empty = {(const unsigned char *)"", 0};
	const struct srs_secret keys[] = {key_a, empty};
	char out[SRS_OUT_SIZE];

	assert_int_equal(srs_forward(&key_a, 0, NOW, "u@e.example", "f.example",
				     out, SRS_OUT_SIZE - 1),
			 SRS_E_ARG);
	assert_int_equal(srs_forward(&key_a, 3, NOW, "u@e.example", "f.example",
				     out, sizeof(out)),
			 SRS_E_ARG);
	assert_int_equal(srs_forward(&key_a, SRS_HASH_MAX + 1, NOW,
				     "u@e.example", "f.example", out,
				     sizeof(out)),
			 SRS_E_ARG);
	assert_int_equal(srs_forward(&key_a, SRS_HASH_MAX, NOW, "u@e.example",
				     "f.example", out, sizeof(out)),
			 SRS_OK);
	assert_int_equal(fwd(&empty, NOW, "u@e.example", "f.example", out),
			 SRS_E_ARG);
	assert_int_equal(fwd(NULL, NOW, "u@e.example", "f.example", out),
			 SRS_E_ARG);
	assert_int_equal(fwd(&key_a, NOW, "u@e.example", "bad..domain", out),
			 SRS_E_ARG);
	assert_int_equal(fwd(&key_a, NOW, NULL, "f.example", out), SRS_E_ARG);
	assert_int_equal(
	    srs_reverse(keys, 2, 0, NOW, 0, "SRS0=x", out, sizeof(out)),
	    SRS_E_ARG);
	assert_int_equal(
	    srs_reverse(keys, 0, 0, NOW, 0, "SRS0=x", out, sizeof(out)),
	    SRS_E_ARG);
	assert_int_equal(srs_reverse(keys, 1, 0, NOW, SRS_MAX_AGE_LIMIT + 1,
				     "SRS0=x", out, sizeof(out)),
			 SRS_E_ARG);
	assert_string_equal(srs_strerror(SRS_E_TOO_LONG),
			    "SRS rewrite would exceed 64-octet local part or "
			    "254-octet address");
	assert_non_null(srs_strerror((enum srs_err)99));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_answer),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_chain),
	    cmocka_unit_test(test_foreign_formats),
	    cmocka_unit_test(test_own_not_rewrapped),
	    cmocka_unit_test(test_forged),
	    cmocka_unit_test(test_expired),
	    cmocka_unit_test(test_timestamp_wrap),
	    cmocka_unit_test(test_case_insensitive),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_hash_len),
	    cmocka_unit_test(test_null_sender),
	    cmocka_unit_test(test_length_limit),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_not_srs),
	    cmocka_unit_test(test_forward_errors),
	    cmocka_unit_test(test_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
