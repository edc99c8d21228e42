/*
 * srs — Sender Rewriting Scheme for forwarded mail (pure).
 *
 * When todoku forwards a message to another domain, the envelope sender
 * is rewritten to an address in our domain so the next hop's SPF check
 * sees our domain; bounces to that address are reversed and delivered to
 * the original sender. Format (Shevek's scheme, the one libsrs2 and
 * postsrsd speak on the wire):
 *
 *   SRS0=HHHHHH=TT=orig-domain=orig-local@our-domain
 *   SRS1=HHHHHH=first-forwarder==HHHH=TT=orig-domain=orig-local@our-domain
 *
 * HHHHHH is our hash: HMAC-SHA-256 with the secret, the first hash_len*5
 * bits of the MAC written in base32 (RFC 4648 alphabet, uppercase, no
 * padding). hash_len is 4..SRS_HASH_MAX characters, default 6 (30 bits);
 * reversal accepts any hash at least hash_len long, so lowering hash_len
 * later keeps old addresses valid (a shorter one is SRS_E_SYNTAX). Base32
 * rather than libsrs2's base64 because some MTAs lowercase local parts and
 * base64 does not survive it. TT is the day (Unix time / 86400) mod 1024 in two
 * base32 characters.
 *
 * What is signed (all lowercased first, fields joined by NUL so no two
 * inputs share a MAC input):
 *   SRS0: "0", TT, orig-domain, orig-local
 *   SRS1: "1", first-forwarder, the SRS0 part after the "SRS0" tag
 * Lowercasing means a bounce whose local part was lowercased in transit
 * still verifies (it is then delivered to the lowercased original local
 * part, which is all the information left). Prefixes ("SRS0", "srs1"),
 * hashes and timestamps are compared case-insensitively. After the
 * SRS0/SRS1 tag, '=', '+' and '-' are accepted as the separator on input
 * (other implementations use them); we always write '='.
 *
 * srs_forward rules:
 *   null sender ("" or "<>")            -> "" (stays null)
 *   SRS0/SRS1 address at our_domain     -> copied unchanged (not re-wrapped)
 *   SRS0 local part at another domain F -> SRS1 with first-forwarder F
 *   well-formed SRS1 at another domain  -> SRS1 keeping its first
 *                                          forwarder and SRS0 part, our hash
 *   anything else                       -> SRS0
 * Foreign SRS parts are never verified (we do not hold their secret).
 * Every other address is rewritten, including ones in our own domains:
 * choosing which senders to leave alone is the caller's policy.
 *
 * srs_reverse takes an address whose domain the caller has already
 * recognised as one of ours (the domain is not checked), verifies the
 * hash against every configured secret (key rotation: secrets[0] signs,
 * all verify), and for SRS0 checks the timestamp: age = (today - TT) mod
 * 1024 must be <= max_age_days (default 21, at most SRS_MAX_AGE_LIMIT);
 * a stamp one day in the future is accepted for clock skew between
 * hosts sharing a secret. SRS0 yields the original "local@domain"; SRS1
 * yields the SRS0 address at the first forwarder ("SRS0=...@first"),
 * which carries no timestamp of ours to check.
 *
 * Limits: every result is a valid RFC 5321 mailbox, local part <= 64
 * octets and whole address <= 254. A rewrite that would be longer fails
 * with SRS_E_TOO_LONG, never truncated: the caller then forwards without
 * SRS or refuses the forward. Quoted local parts and address literals
 * cannot be embedded in a dot-string and fail with SRS_E_UNSUPPORTED.
 * UTF-8 addresses (SMTPUTF8) pass through; the result is then UTF-8 too.
 *
 * Trust: sender and address are untrusted bytes; secrets and time are
 * inputs (no globals, no clock, no heap). Output buffers must hold at
 * least SRS_OUT_SIZE bytes. On error the output is "".
 */
#ifndef TODOKU_MAIL_SRS_H
#define TODOKU_MAIL_SRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRS_HASH_MIN 4
#define SRS_HASH_MAX 16
#define SRS_HASH_DEFAULT 6
#define SRS_MAX_AGE_DEFAULT 21 /* days */
#define SRS_MAX_AGE_LIMIT 1000 /* below the 1024-day wrap */
#define SRS_OUT_SIZE 256       /* 254-octet mailbox + NUL, with room */

struct srs_secret {
	const unsigned char *key;
	size_t len; /* > 0 */
};

enum srs_err {
	SRS_OK = 0,
	SRS_E_ARG,	   /* caller bug: bad secret, hash_len, age, buffer */
	SRS_E_SYNTAX,	   /* not a valid address / malformed SRS fields */
	SRS_E_NOT_SRS,	   /* reverse: local part is not SRS0/SRS1 */
	SRS_E_HASH,	   /* reverse: hash matches no secret */
	SRS_E_EXPIRED,	   /* reverse: timestamp older than max age */
	SRS_E_TOO_LONG,	   /* forward: result would exceed RFC 5321 */
	SRS_E_UNSUPPORTED, /* forward: quoted local part or literal */
	SRS_E_CRYPTO,	   /* HMAC failed (OpenSSL) */
};

/*
 * Rewrite envelope sender (bare "local@domain", "" or "<>" for null) for
 * forwarding from our_domain. hash_len 0 means SRS_HASH_DEFAULT; now is
 * Unix time. Writes the new sender to out (outlen >= SRS_OUT_SIZE).
 */
enum srs_err srs_forward(const struct srs_secret *secret, unsigned hash_len,
			 int64_t now, const char *sender,
			 const char *our_domain, char *out, size_t outlen);
/*
 * Reverse SRS recipient address ("local@domain", or a bare local part)
 * for a bounce. hash_len
 * is the minimum accepted (0: default), max_age_days 0 means the default.
 */
enum srs_err srs_reverse(const struct srs_secret *secrets, size_t nsecrets,
			 unsigned hash_len, int64_t now, unsigned max_age_days,
			 const char *address, char *out, size_t outlen);
/* True when the local part of address starts with an SRS0/SRS1 tag. */
bool srs_is_srs(const char *address);
/* Short English text for an error. */
const char *srs_strerror(enum srs_err e);

#endif
