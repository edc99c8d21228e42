/*
 * addr — RFC 5321 mailbox and path parsing (pure).
 *
 * Input is untrusted bytes from the network. Output is a struct mailaddr
 * with the local part exactly as written (dot-string, or quoted-string
 * including its quotes) and the domain lowercased (ASCII letters only).
 * Domain literals ("[192.0.2.1]", "[IPv6:...]", checked with inet_pton)
 * are accepted and kept with brackets, exactly as written.
 *
 * Limits (RFC 5321 §4.5.3.1): local part 64 octets, domain 255, path 256
 * including "<", ">" and any source route (so a bare mailbox is at most
 * 254). Longer input is an error, never truncated. Domains: LDH labels of
 * 1..63 octets, no leading/trailing hyphen, no trailing dot.
 *
 * Source routes ("<@a,@b:user@c>") are parsed and discarded (RFC 5321
 * §4.1.2, C.2): the mailbox is user@c. "%" and quoted "@" stay part of
 * the local part, so they can never select another domain.
 *
 * 8-bit (UTF-8) octets in local part or domain are rejected unless the
 * caller passes ADDR_F_UTF8 (SMTPUTF8 transactions); with it they must be
 * well-formed UTF-8 (RFC 3629) without C1 controls. "postmaster" without a
 * domain (any case, stored as "postmaster" with domain "") needs
 * ADDR_F_NO_DOMAIN_OK.
 */
#ifndef TODOKU_MAIL_ADDR_H
#define TODOKU_MAIL_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256

#define ADDR_F_UTF8 0x1		/* allow UTF-8 octets */
#define ADDR_F_NULL_OK 0x2	/* "<>" is a valid path (MAIL FROM) */
#define ADDR_F_NO_DOMAIN_OK 0x4 /* "<postmaster>" alone (RCPT TO) */

struct mailaddr {
	char local[ADDR_LOCAL_MAX + 1];
	char domain[ADDR_DOMAIN_MAX + 1];
	bool quoted;  /* local part was a quoted-string */
	bool is_null; /* the null path <> */
};

enum addr_err {
	ADDR_OK = 0,
	ADDR_E_SYNTAX,	    /* generic syntax error */
	ADDR_E_NO_BRACKETS, /* path lacks < > */
	ADDR_E_LOCAL_TOO_LONG,
	ADDR_E_DOMAIN_TOO_LONG,
	ADDR_E_PATH_TOO_LONG,
	ADDR_E_BAD_DOMAIN,
	ADDR_E_8BIT, /* 8-bit octets without SMTPUTF8 */
	ADDR_E_NULL_NOT_ALLOWED,
	ADDR_E_NO_DOMAIN,
};

/*
 * Parse a reverse-path or forward-path starting at s (length n), e.g.
 * "<user@example.com> SIZE=100". On success *end points just after '>'.
 */
enum addr_err addr_parse_path(const char *s, size_t n, unsigned flags,
			      struct mailaddr *out, size_t *end);
/* Parse a bare mailbox "user@example.com" (whole string; config, tables). */
enum addr_err addr_parse_mailbox(const char *s, size_t n, unsigned flags,
				 struct mailaddr *out);
/* Short English text for an error ("local part longer than 64 octets"). */
const char *addr_strerror(enum addr_err e);
/* "local@domain" or "" for the null path; dst at least ADDR_PATH_MAX+2 */
void addr_format(const struct mailaddr *a, char *dst, size_t len);
/* Case-insensitive domain compare, exact local-part compare. */
bool addr_equal(const struct mailaddr *a, const struct mailaddr *b);
/* True for a syntactically valid domain name (LDH labels, 1..63, dots). */
bool addr_domain_valid(const char *d, size_t n);
/* True for "[IPv4]" or "[IPv6:...]" (whole string, brackets included). */
bool addr_literal_valid(const char *s, size_t n);
/* No octet >= 0x80 in the local part / in the whole address. */
bool addr_local_ascii(const struct mailaddr *a);
bool addr_ascii(const struct mailaddr *a);
/*
 * Replace a U-label domain by its A-label form (RFC 5890; IDNA2008 with
 * the UTS #46 non-transitional mapping, libidn2), lowercased. ASCII
 * domains, literals and the null path are left alone. ADDR_E_BAD_DOMAIN
 * when the name is not a valid IDN, ADDR_E_DOMAIN_TOO_LONG when the
 * A-label form passes 255 octets or the address passes 254.
 */
enum addr_err addr_domain_ascii(struct mailaddr *a);
/* The same for a domain name string d (ASCII: just lowercased) into out. */
enum addr_err addr_idna_ascii(const char *d, char *out, size_t outlen);

#endif
