/*
 * resolve — what a recipient address means under a configuration (pure).
 *
 * resolve_rcpt() classifies one envelope recipient:
 *   RESOLVE_LOCAL     a user of a local domain (mailbox path filled in)
 *   RESOLVE_ALIAS     an alias; expand with resolve_expand()
 *   RESOLVE_REMOTE    not a local domain (relaying: the caller decides
 *                     whether the client may relay)
 *   RESOLVE_NO_USER   local domain, no such user, no catch-all
 *
 * The mailbox directory is built only from the configured mailbox root
 * and the *table* entry that matched (never from the raw local part), so
 * "../", "/" or odd quoting can never choose a path. Local parts match
 * users case-insensitively. "postmaster" (any case) at any local domain
 * is always valid (RFC 5321 §4.5.1): it resolves to conf->postmaster, or
 * to an implicit local user "postmaster"; so do abuse, root and
 * mailer-daemon unless the table or aliases define them.
 *
 * Order in a local domain: alias "local@domain", then alias "local"
 * (a bare alias, any local domain) -> RESOLVE_ALIAS with alias set;
 * a user of the domain -> RESOLVE_LOCAL; postmaster, abuse, root,
 * mailer-daemon -> RESOLVE_ALIAS with alias == NULL and addr = the
 * [server] postmaster address, or, if that is unset (or is this very
 * address), RESOLVE_LOCAL to the implicit user "postmaster" of the
 * domain; a catch-all -> RESOLVE_ALIAS with alias == NULL and addr = the
 * catch-all address; else RESOLVE_NO_USER. A local part with no lookup
 * key (conf_local_key: '/', '%', '@', '!', spaces...) is RESOLVE_NO_USER
 * even with a catch-all. "<postmaster>" without a domain (RFC 5321
 * §4.1.1.3) is the postmaster of the domain named like [server]
 * hostname, else of the first domain.
 *
 * resolve_expand() expands aliases recursively to final recipients
 * (local users or remote addresses), at most RESOLVE_MAX_DEPTH levels
 * and RESOLVE_MAX_RCPTS results, dropping duplicates; a loop (an alias
 * reached again on its own path) is cut and reported, never followed.
 */
#ifndef TODOKU_MAIL_RESOLVE_H
#define TODOKU_MAIL_RESOLVE_H

#include <limits.h>

#include "mail/addr.h"
#include "mail/conf.h"

#define RESOLVE_MAX_DEPTH 10
#define RESOLVE_MAX_RCPTS 1000
#define RESOLVE_MAX_STEPS 10000 /* resolve_rcpt calls per expansion */

enum resolve_kind {
	RESOLVE_LOCAL,
	RESOLVE_ALIAS,
	RESOLVE_REMOTE,
	RESOLVE_NO_USER,
};

struct resolved {
	enum resolve_kind kind;
	struct mailaddr addr;	/* final address (user as in the table) */
	char mailbox[PATH_MAX]; /* RESOLVE_LOCAL: Maildir directory */
	const struct conf_domain *domain; /* local domain, or NULL */
	const struct conf_alias *alias;	  /* RESOLVE_ALIAS */
};

/* 0, or -1 for the null path or a domain-less address that is not
 * postmaster (out->kind is then RESOLVE_NO_USER). */
int resolve_rcpt(const struct conf *c, const struct mailaddr *a,
		 struct resolved *out);

struct resolve_list {
	struct resolved *items;
	size_t n;
	bool loop;	/* a loop was cut */
	bool truncated; /* more than RESOLVE_MAX_RCPTS or too deep */
};

/* Expand a into final recipients (LOCAL/REMOTE/NO_USER entries, in
 * order of discovery). Duplicates: LOCAL by mailbox, others by address
 * (domain case-insensitive). An alias already expanded is not expanded
 * again. At most RESOLVE_MAX_STEPS lookups in all (then truncated).
 * 0, or -1 if a itself is invalid (as resolve_rcpt). Free the list with
 * resolve_list_free, also after -1. */
int resolve_expand(const struct conf *c, const struct mailaddr *a,
		   struct resolve_list *out);
void resolve_list_free(struct resolve_list *l);

/*
 * Forwarding, decided here and nowhere else. A final recipient is
 * forwarded when it is not the address the client gave: an alias or
 * catch-all target, or the original sender behind one of our SRS
 * addresses. given is what the client gave (the SRS address, if smtp-in
 * reversed one), final the address after expansion; case-insensitive.
 * Forwarded mail leaves with an SRS sender (queue) and an ARC seal
 * (smtp-in) when it goes to a non-local address.
 */
bool resolve_forwarded(const char *given, const char *final);
/* Does recipient a (given by the client as given, "" = a itself) reach
 * at least one non-local address by forwarding? */
bool resolve_forwards_out(const struct conf *c, const struct mailaddr *a,
			  const char *given);

#endif
