/*
 * resolve — what a recipient means under a configuration (pure).
 *
 * Contract: see resolve.h. Everything here reads the conf and writes
 * only the caller's result; no files, no globals. The mailbox path is
 * always "<domain mailboxes>/<table user>", where the table user passed
 * conf's user-name check ([a-z0-9][a-z0-9._+-]*, no ".."), so a
 * recipient can never choose a path. Expansion is bounded in depth,
 * results and total lookups (RESOLVE_MAX_*).
 */
#include "mail/resolve.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/alloc.h"

#define KEY_LEN (ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2) /* key@domain */

static const char *const special_names[] = {
    "postmaster",
    "abuse",
    "root",
    "mailer-daemon",
};

static bool
is_special(const char *key)
{
	for (size_t i = 0; i < sizeof(special_names) / sizeof(*special_names);
	     i++)
		if (strcmp(key, special_names[i]) == 0)
			return true;
	return false;
}

static void
set_local(struct resolved *out, const struct conf_domain *d, const char *user)
{
	out->kind = RESOLVE_LOCAL;
	snprintf(out->addr.local, sizeof(out->addr.local), "%s", user);
	snprintf(out->addr.domain, sizeof(out->addr.domain), "%s", d->name);
	out->addr.quoted = false;
	snprintf(out->mailbox, sizeof(out->mailbox), "%s/%s", d->mailboxes,
		 user);
}

/* RESOLVE_ALIAS without a table entry: mail goes on to target. */
static void
set_redirect(struct resolved *out, const char *target)
{
	struct mailaddr a;

	/* conf validated target when it was loaded */
	if (addr_parse_mailbox(target, strlen(target), 0, &a) != ADDR_OK) {
		out->kind = RESOLVE_NO_USER;
		return;
	}
	out->kind = RESOLVE_ALIAS;
	out->alias = NULL;
	out->addr = a;
}

/* True if the address text target is key@d (lookup keys compared). */
static bool
is_self(const char *target, const char *key, const struct conf_domain *d)
{
	char tk[ADDR_LOCAL_MAX + 1];
	struct mailaddr a;

	if (addr_parse_mailbox(target, strlen(target), 0, &a) != ADDR_OK)
		return false;
	return strcasecmp(a.domain, d->name) == 0 &&
	       conf_local_key(a.local, tk, sizeof(tk)) == 0 &&
	       strcmp(tk, key) == 0;
}

/* key: the lookup key of the local part, at local domain d. */
static void
resolve_local(const struct conf *c, const struct conf_domain *d,
	      const char *key, struct resolved *out)
{
	char full[KEY_LEN];
	const char *user;

	out->domain = d;
	snprintf(full, sizeof(full), "%s@%s", key, d->name);
	out->alias = conf_alias_find(c, full);
	if (out->alias == NULL)
		out->alias = conf_alias_find(c, key);
	if (out->alias != NULL) {
		out->kind = RESOLVE_ALIAS;
	} else if ((user = conf_user_find(d, key)) != NULL) {
		set_local(out, d, user);
	} else if (is_special(key)) {
		if (c->postmaster && !is_self(c->postmaster, key, d))
			set_redirect(out, c->postmaster);
		else
			set_local(out, d, "postmaster");
	} else if (d->catch_all) {
		set_redirect(out, d->catch_all);
	} else {
		out->kind = RESOLVE_NO_USER;
	}
}

/* The domain "<postmaster>" without a domain belongs to. */
static const struct conf_domain *
default_domain(const struct conf *c)
{
	const struct conf_domain *d = conf_domain_find(c, c->hostname);

	if (d == NULL && c->ndomains > 0)
		d = &c->domains[0];
	return d;
}

int
resolve_rcpt(const struct conf *c, const struct mailaddr *a,
	     struct resolved *out)
{
	const struct conf_domain *d;
	char key[ADDR_LOCAL_MAX + 1];
	bool has_key;

	memset(out, 0, sizeof(*out));
	out->kind = RESOLVE_NO_USER;
	out->addr = *a;
	if (a->is_null)
		return -1;
	for (char *s = out->addr.domain; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	has_key = conf_local_key(a->local, key, sizeof(key)) == 0;
	if (a->domain[0] == '\0') {
		if (!has_key || strcmp(key, "postmaster") != 0)
			return -1;
		if ((d = default_domain(c)) != NULL)
			resolve_local(c, d, key, out);
		return 0;
	}
	d = conf_domain_find(c, out->addr.domain);
	if (d == NULL)
		out->kind = RESOLVE_REMOTE;
	else if (has_key)
		resolve_local(c, d, key, out);
	else
		out->domain = d;
	return 0;
}

/* ---- expansion ------------------------------------------------------- */

struct expander {
	const struct conf *c;
	struct resolve_list *out;
	char path[RESOLVE_MAX_DEPTH + 1][KEY_LEN]; /* aliases being expanded */
	size_t depth;
	char (*done)[KEY_LEN]; /* aliases already expanded */
	size_t ndone;
	size_t steps;
};

/* Identity of an address for loops: lookup key (or raw) @ domain. */
static void
addr_key(const struct mailaddr *a, char *dst, size_t len)
{
	char k[ADDR_LOCAL_MAX + 1];
	const char *local = a->local;

	if (conf_local_key(a->local, k, sizeof(k)) == 0)
		local = k;
	snprintf(dst, len, "%s@%s", local, a->domain);
	for (; *dst; dst++)
		if (*dst >= 'A' && *dst <= 'Z')
			*dst = (char)(*dst - 'A' + 'a');
}

static bool
same_result(const struct resolved *x, const struct resolved *y)
{
	if (x->kind != y->kind)
		return false;
	if (x->kind == RESOLVE_LOCAL)
		return strcmp(x->mailbox, y->mailbox) == 0;
	return strcmp(x->addr.local, y->addr.local) == 0 &&
	       strcasecmp(x->addr.domain, y->addr.domain) == 0;
}

static void
add_result(struct expander *e, const struct resolved *r)
{
	struct resolve_list *l = e->out;

	for (size_t i = 0; i < l->n; i++)
		if (same_result(&l->items[i], r))
			return;
	if (l->n == RESOLVE_MAX_RCPTS) {
		l->truncated = true;
		return;
	}
	if (l->n == 0)
		l->items = xrealloc(l->items, 4 * sizeof(*l->items));
	else if (l->n >= 4 && (l->n & (l->n - 1)) == 0)
		l->items = xrealloc(l->items, 2 * l->n * sizeof(*l->items));
	l->items[l->n++] = *r;
}

static bool
key_in(char (*v)[KEY_LEN], size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], key) == 0)
			return true;
	return false;
}

static void expand(struct expander *e, const struct mailaddr *a);

static void
expand_targets(struct expander *e, const struct resolved *r)
{
	struct mailaddr t;

	if (r->alias == NULL) {
		t = r->addr;
		expand(e, &t);
		return;
	}
	for (size_t i = 0; i < r->alias->nto; i++) {
		const char *s = r->alias->to[i];

		/* conf validated every target when it was loaded */
		if (addr_parse_mailbox(s, strlen(s), 0, &t) == ADDR_OK)
			expand(e, &t);
	}
}

/* Enter alias key; false if it must not be expanded (loop, done, deep). */
static bool
enter_alias(struct expander *e, const char *key)
{
	struct resolve_list *l = e->out;

	if (key_in(e->path, e->depth, key)) {
		l->loop = true;
		return false;
	}
	if (key_in(e->done, e->ndone, key))
		return false;
	if (e->depth == RESOLVE_MAX_DEPTH) {
		l->truncated = true;
		return false;
	}
	if (e->ndone == 0)
		e->done = xrealloc(e->done, 4 * sizeof(*e->done));
	else if (e->ndone >= 4 && (e->ndone & (e->ndone - 1)) == 0)
		e->done = xrealloc(e->done, 2 * e->ndone * sizeof(*e->done));
	memcpy(e->done[e->ndone++], key, KEY_LEN);
	memcpy(e->path[e->depth++], key, KEY_LEN);
	return true;
}

static void
expand(struct expander *e, const struct mailaddr *a)
{
	struct resolved r;
	char key[KEY_LEN];

	if (++e->steps > RESOLVE_MAX_STEPS) {
		e->out->truncated = true;
		return;
	}
	resolve_rcpt(e->c, a, &r);
	if (r.kind != RESOLVE_ALIAS) {
		add_result(e, &r);
		return;
	}
	memset(key, 0, sizeof(key));
	addr_key(a, key, sizeof(key));
	if (!enter_alias(e, key))
		return;
	expand_targets(e, &r);
	e->depth--;
}

int
resolve_expand(const struct conf *c, const struct mailaddr *a,
	       struct resolve_list *out)
{
	struct expander *e;
	struct resolved r;

	memset(out, 0, sizeof(*out));
	if (resolve_rcpt(c, a, &r) < 0)
		return -1;
	e = xcalloc(1, sizeof(*e));
	e->c = c;
	e->out = out;
	expand(e, a);
	xfree(e->done);
	xfree(e);
	return 0;
}

void
resolve_list_free(struct resolve_list *l)
{
	xfree(l->items);
	l->items = NULL;
	l->n = 0;
}

bool
resolve_forwarded(const char *given, const char *final)
{
	return given != NULL && *given != '\0' && final != NULL &&
	       strcasecmp(given, final) != 0;
}

bool
resolve_forwards_out(const struct conf *c, const struct mailaddr *a,
		     const char *given)
{
	struct resolve_list l = {0};
	char g[ADDR_PATH_MAX + 2], fin[ADDR_PATH_MAX + 2];
	bool fwd = false;

	if (given == NULL || *given == '\0') {
		addr_format(a, g, sizeof(g));
		given = g;
	}
	if (resolve_expand(c, a, &l) == 0)
		for (size_t i = 0; i < l.n && !fwd; i++) {
			if (l.items[i].kind != RESOLVE_REMOTE)
				continue;
			addr_format(&l.items[i].addr, fin, sizeof(fin));
			fwd = resolve_forwarded(given, fin);
		}
	resolve_list_free(&l);
	return fwd;
}
