/*
 * conf — todoku's configuration: one INI file with quoted subsections
 * (git-config style), plus the table files it names (users, aliases).
 *
 *   [server]
 *   hostname = mx.example.com
 *   [listen "smtp"]
 *   address = 127.0.0.1:2525
 *   [domain "example.com"]
 *   mailboxes = /var/mail/example.com
 *
 * Syntax: '#' or ';' start a comment line (whole lines only: a '#'
 * after a value is part of the value); section headers are
 * [name] or [name "sub"] (subsection quoted, \" and \\ escapes); keys
 * are case-insensitive [a-z0-9-]; values are the rest of the line,
 * trimmed, optionally double-quoted. Section and subsection names are
 * normalised to lowercase; a section given twice ([server] as well as
 * [listen "x"]/[domain "x"]) and a key given twice in a section are
 * errors. Lists are separated by blanks and/or commas.
 *
 * Every error is reported as "FILE:LINE: message (hint)" in err and the
 * parse fails as a whole: there is never a half-applied configuration.
 * Unknown sections and keys are errors. Relative paths are resolved
 * against the current directory at parse time and stored absolute.
 *
 * The parser is pure over its input text (conf_parse_text); conf_load()
 * reads the file and the tables it references. A built-in default
 * (conf_default_text) is used when no file is given.
 *
 * Table files (conf_load only): a users-file holds one user name per
 * line; the aliases file holds "local@domain: target, target" lines,
 * where a bare "local" on the left means that local part at every local
 * domain. '#' starts a comment line in both. Errors there are also
 * "FILE:LINE: message". Each file read is bounded by CONF_FILE_MAX.
 *
 * Lookups: users are stored sorted and unique (conf_user_find uses
 * bsearch); aliases are sorted by their lowercased key "local@domain"
 * or "local" (conf_alias_find). Local parts are compared by their
 * lookup key (conf_local_key): unquoted and ASCII-lowercased (UTF-8
 * letters of SMTPUTF8 local parts are kept and compared exactly), and a
 * local part holding '/', '%', '@', '!', a space or a control octet has
 * no key at all, so it can never match a user or an alias.
 *
 * Ownership: a struct conf owns all its strings; conf_free() frees all.
 * Nothing here is thread-safe against conf_free(); a loaded conf is
 * read-only and can be shared.
 */
#ifndef TODOKU_MAIL_CONF_H
#define TODOKU_MAIL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/buf.h"
#include "lib/log.h"

#define CONF_ERR_MAX 1024
#define CONF_RETRY_MAX 32
#define CONF_FILE_MAX (1024 * 1024) /* config, users and aliases files */
#define CONF_USER_MAX 64	    /* user name length */
#define CONF_ALIAS_TARGETS_MAX 1000 /* targets of one alias */
#define CONF_LIST_MAX 256	    /* trusted-networks, dns servers */
#define CONF_SRS_SECRETS_MAX 32	    /* lines of srs-secret-file */
#define CONF_SRS_SECRET_MIN 16	    /* octets of one SRS secret */

enum conf_tls { CONF_TLS_NONE, CONF_TLS_MAY, CONF_TLS_MUST };
enum conf_ip {
	CONF_IP_ANY,
	CONF_IP_PREFER_V4,
	CONF_IP_PREFER_V6,
	CONF_IP_V4_ONLY,
	CONF_IP_V6_ONLY,
};
/* Certificate verification of outbound TLS. An enum, not a bool: DANE
 * and MTA-STS come later as further policies. */
enum conf_verify { CONF_VERIFY_NONE, CONF_VERIFY_CA };
enum { CONF_RESOLVER_FORWARD, CONF_RESOLVER_RECURSIVE };
enum { CONF_DNSSEC_NO, CONF_DNSSEC_VALIDATE };
#define CONF_TRUST_ANCHOR_DEFAULT "/usr/share/dns/root.key"
#define CONF_CA_DEFAULT "/etc/ssl/certs/ca-certificates.crt"
extern const char *const conf_tls_names[];
extern const char *const conf_verify_names[];
extern const char *const conf_ip_names[];

struct conf_listen {
	char *name;    /* subsection */
	char *address; /* as written, "127.0.0.1:2525" */
	struct sockaddr_storage ss;
	socklen_t sslen;
	int spf_policy;	  /* -1: [smtp] spf-policy; else its value */
	int dmarc_policy; /* -1: [smtp] dmarc-policy */
	int line;
};

struct conf_net {
	struct sockaddr_storage net;
	int prefix;
};

/* An alias: one address -> one or more target addresses. */
struct conf_alias {
	char *from; /* lookup key: "local@domain" or bare "local", lowercase */
	char **to;
	size_t nto;
};

struct conf_domain {
	char *name;	  /* lowercase */
	char *mailboxes;  /* absolute directory holding one Maildir per user */
	char *catch_all;  /* "user@domain" or NULL */
	char *users_file; /* absolute path or NULL */
	char **users;	  /* sorted, lowercase, validated user names */
	size_t nusers;
	int line;
	int users_file_line; /* of "users-file =" */
};

/* [route "NAME"]: a smarthost for "*", a domain, or ".parent.domain". */
struct conf_route {
	char *name;
	char *via;  /* as written */
	char *host; /* name or IP address (brackets removed) */
	unsigned port;
	bool implicit_tls;	 /* smtps:// */
	int tls;		 /* enum conf_tls */
	int verify;		 /* enum conf_verify (default [delivery]) */
	char *ca;		 /* NULL: [delivery] ca */
	char *helo;		 /* NULL: [delivery] helo */
	char *helo6;		 /* over IPv6; NULL: helo, then [delivery] */
	int ip;			 /* enum conf_ip */
	char *source4, *source6; /* NULL: [delivery] source-ipv4/6 */
	char *auth_user;
	char *auth_password_file;
	char *auth_password; /* read from the file at load */
	int line;
	int ca_line, auth_password_file_line; /* of their keys, or 0 */
};

/* [dkim "DOMAIN"]: DKIM signing of mail whose From domain is DOMAIN. */
struct conf_dkim {
	char *domain;
	char *selector;
	char *key_file; /* PEM, read by the keys role only */
	int algorithm;	/* 0 rsa-sha256, 1 ed25519-sha256 */
	int line;
	int key_line; /* of "key =" */
};

struct conf {
	char *path; /* file it came from, or "(built-in)" */

	/* [server] */
	char *hostname;
	char *spool; /* absolute */
	char *user;  /* run-as user of the network roles (started as root) */
	char *queue_user; /* the spool owner (queue role) */
	char *mail_user;  /* the mail-store owner (local role) */
	char *keys_user;  /* the DKIM key holder (keys role) */
	unsigned smtp_in_procs;
	enum log_level log_level;
	bool log_syslog;
	char *aliases_file; /* absolute or NULL */
	char *postmaster;   /* address postmaster@ etc. go to */
	struct conf_net *trusted;
	size_t ntrusted;
	/* SRS: forwarded mail gets an SRS sender; bounces are reversed */
	char *srs_secret_file; /* absolute or NULL: SRS off */
	char **srs_secrets;    /* read from the file at load; [0] signs */
	size_t nsrs_secrets;
	char *srs_domain;     /* NULL: hostname */
	unsigned srs_max_age; /* days */

	/* [smtp] */
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned max_errors;
	unsigned max_hops;	  /* Received fields a message may carry */
	uint64_t timeout_command; /* seconds: greeting, MAIL, RCPT, ... */
	uint64_t timeout_data_block;
	uint64_t timeout_data_end;
	char *authserv_id;	  /* NULL: hostname */
	uint64_t auth_eod_budget; /* seconds end of data waits for checks */
	int spf_policy;		  /* 0 record, 1 reject on fail */
	int dmarc_policy;	  /* 0 record, 1 enforce p=reject */

	/* [queue] */
	uint64_t retry[CONF_RETRY_MAX]; /* seconds; last one repeats */
	size_t nretry;
	uint64_t warn_after;
	uint64_t give_up_after;
	uint64_t inline_body_max;
	uint64_t bounce_size_limit; /* RET=FULL: octets of the original */
	uint64_t min_free;
	/* DMARC aggregate reports (RFC 9990), run by the queue role */
	int dmarc_reports;		/* 0 off (default), 1 on */
	uint64_t dmarc_report_interval; /* seconds, default 1d */
	char *dmarc_report_org;		/* NULL: hostname */
	char *dmarc_report_from;	/* NULL: postmaster@hostname */

	/* [delivery]: outbound SMTP (MX delivery) */
	char *delivery_helo;  /* NULL: hostname */
	char *delivery_helo6; /* over IPv6 (helo-ipv6); NULL: delivery_helo */
	int delivery_tls;     /* enum conf_tls */
	int delivery_verify;  /* enum conf_verify */
	char *delivery_ca;    /* CA file or hashed directory (verify = ca) */
	int delivery_ip;      /* enum conf_ip, same order as mx.h's policy */
	unsigned delivery_port;
	unsigned delivery_max_addresses;
	unsigned smtp_out_procs;
	char *delivery_source4; /* bind outbound IPv4 to this, or NULL */
	char *delivery_source6;
	uint64_t delivery_timeout_connect;
	uint64_t delivery_timeout_greeting;
	uint64_t delivery_timeout_command;
	uint64_t delivery_timeout_data_end;
	uint64_t delivery_max_attempt_time; /* max-attempt-time, seconds */
	/* IPv6 family health (mail/v6health) */
	unsigned delivery_v6_suspend_after; /* ipv6-suspend-after, 0: off */
	uint64_t delivery_v6_suspend_for;   /* ipv6-suspend-for */
	/* destinations and sessions (DESIGN §7; mail/schedule) */
	unsigned delivery_dest_conc;	 /* destination-concurrency */
	unsigned delivery_dest_conc_max; /* destination-concurrency-max */
	unsigned delivery_dead_after;	 /* dead-after */
	unsigned delivery_max_sessions;	 /* max-sessions */
	unsigned delivery_conn_max_msgs; /* connection-max-messages */
	uint64_t delivery_conn_max_age;	 /* connection-max-age */
	uint64_t delivery_conn_idle;	 /* connection-idle-time */
	uint64_t delivery_v4first_for;	 /* ipv4-first-for */

	/* [dns] */
	char **dns_servers;
	size_t ndns_servers;
	unsigned dns_outgoing_range;   /* libunbound outgoing-range */
	unsigned dns_outgoing_num_tcp; /* libunbound outgoing-num-tcp */
	uint64_t dns_msg_cache_size;   /* libunbound msg-cache-size */
	uint64_t dns_rrset_cache_size; /* libunbound rrset-cache-size */
	int dns_resolver;	       /* CONF_RESOLVER_* */
	int dns_dnssec;		       /* CONF_DNSSEC_* */
	int dns_dnssec_line;	       /* line of "dnssec =", or 0 */
	int dns_resolver_line;	       /* line of "resolver =", or 0 */
	char *dns_trust_anchor;	       /* trust-anchor-file */
	char *dns_root_hints;	       /* root-hints, NULL: built-in */

	/* the line of each key that names a file, 0: not in the file (a
	 * default); errors about the file point there */
	int aliases_line, srs_secret_file_line, delivery_ca_line;
	int dns_trust_anchor_line, dns_root_hints_line;

	struct conf_listen *listens;
	size_t nlistens;
	struct conf_domain *domains;
	size_t ndomains;
	struct conf_alias *aliases;
	size_t naliases;
	struct conf_route *routes;
	size_t nroutes;
	struct conf_dkim *dkim;
	size_t ndkim;
};

extern const char conf_default_text[];

/* Parse text (name used in messages). NULL on error with err filled. */
struct conf *conf_parse_text(const char *name, const char *text, size_t len,
			     char *err, size_t errlen);
/* Read path (NULL: built-in default) and the table files it names. */
struct conf *conf_load(const char *path, char *err, size_t errlen);
/* The DKIM private keys ([dkim] key) exist and are files: 0, or -1 with
 * err at the key's file:line. Not part of conf_load: only the keys role
 * may be able to reach them (`config check` and master at start call
 * it; the keys role reads them). */
int conf_check_key_files(const struct conf *c, char *err, size_t errlen);
/* Like conf_load, with the main file's text already read (reload: the
 * roles parse exactly the bytes master validated; tables are read). */
struct conf *conf_load_text(const char *path, const char *text, size_t len,
			    char *err, size_t errlen);
void conf_free(struct conf *c);

/* The effective configuration, every key with its value, as a config
 * file that conf_parse_text accepts again. */
int conf_dump(const struct conf *c, struct buf *out);

/* The [domain] named domain (case-insensitive), or NULL. */
const struct conf_domain *conf_domain_find(const struct conf *c,
					   const char *domain);
/* The domain SRS addresses are made at: srs-domain, else hostname. */
const char *conf_srs_domain(const struct conf *c);
/* The org_name and the reporting address of DMARC aggregate reports. */
const char *conf_dmarc_report_org(const struct conf *c);
const char *conf_dmarc_report_from(const struct conf *c);
/* True if sa is inside one of the trusted-networks. */
bool conf_is_trusted(const struct conf *c, const struct sockaddr *sa);
const struct conf_dkim *conf_dkim_find(const struct conf *c,
				       const char *domain);
/* Routing precedence (DESIGN §7): exact domain, longest ".parent"
 * suffix, then "*"; NULL: deliver by MX. */
const struct conf_route *conf_route_find(const struct conf *c,
					 const char *domain);
/* The table's copy of user (already a lookup key), or NULL. */
const char *conf_user_find(const struct conf_domain *d, const char *user);
/* The alias for key ("local@domain" or "local", lowercase), or NULL. */
const struct conf_alias *conf_alias_find(const struct conf *c, const char *key);
/*
 * Lookup key of a local part as written in an address (quoted: with its
 * quotes): unquoted, lowercased, into dst. -1 if it is empty, too long,
 * or holds '/', '%', '@', '!', space, a control or non-ASCII octet.
 */
int conf_local_key(const char *local, char *dst, size_t len);

#endif
