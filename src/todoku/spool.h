/*
 * spool — the durable queue store, owned by the queue role alone.
 *
 * One SQLite database (WAL, synchronous=FULL, exclusive locking so no
 * other process can open it, auto_vacuum=INCREMENTAL at creation) holds
 * envelopes, per-recipient state, attempt records and bodies up to
 * inline_max bytes; larger bodies live in SPOOL/body/<id>, written as
 * chunks arrive and made durable (fdatasync, one fsync of body/ per
 * group) before the commit that references them.
 *
 * Group commit, leader/follower: one writer thread owns the connection.
 * Every operation is a job; the writer takes *all* jobs pending when the
 * previous commit returns, runs each inside its own savepoint of one
 * transaction, commits once (one WAL fsync), then hands the finished jobs
 * back to the event loop through an eventfd. There is no timer: under
 * load, groups grow by themselves. A job whose statements fail is rolled
 * back alone. SQLITE_FULL maps to SPOOL_E_FULL, every other failure to
 * SPOOL_E_IO. A failed fsync (WAL, body file, body directory), BEGIN or
 * COMMIT, a checkpoint that fails, or a statement that reports an I/O
 * error or a full disk fails the whole group and marks the spool failed
 * (DESIGN §7): the database is never used again, not even for a
 * checkpoint at close (never retry an fsync and trust it), every later
 * job fails with SPOOL_E_IO, and once every job of the failed group has
 * had its callback, the owner's on_fail callback runs (it restarts the
 * role).
 *
 * Callbacks always run on the event loop thread. No transaction spans a
 * DATA phase or a delivery. Crash recovery at open: body files without a
 * committed message are partial and removed; after an unclean stop
 * (marker file left behind) PRAGMA quick_check runs first.
 */
#ifndef TODOKU_SPOOL_H
#define TODOKU_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"
#include "mail/dmarc_report.h"

#define SPOOL_ID_LEN 14
#define SPOOL_E_FULL (-2)
#define SPOOL_E_IO (-3)

enum spool_state {
	SPOOL_QUEUED = 0,
	SPOOL_DEFERRED = 1,
	SPOOL_DELIVERED = 2,
	SPOOL_BOUNCED = 3,
};
#define SPOOL_RELAYED 4 /* spool_result.success only, never a state */

struct spool;
struct event_base;

struct spool_rcpt {
	uint64_t id; /* filled in by commit */
	char *addr;  /* final recipient */
	char *orig;  /* recipient as given by the client (before aliases) */
	char *orcpt; /* DSN ORCPT or NULL */
	unsigned notify;
};

/*
 * An alias that expanded to several addresses for a recipient whose
 * NOTIFY asked for SUCCESS (RFC 3461 §6.2.7.3): an "expanded" report
 * about it is composed and queued in the message's own commit.
 */
struct spool_expanded {
	char *alias;  /* the recipient address that was expanded */
	char *orcpt;  /* its ORCPT, or NULL */
	size_t count; /* addresses it expanded to */
	/* out (valid in the commit callback): the report's message and
	 * recipient; dsn_id "" when none was made */
	char dsn_id[SPOOL_ID_LEN + 1];
	uint64_t dsn_rcpt_id;
};

/* A message being received. Fields are set by the owner before commit. */
struct spool_msg {
	char id[SPOOL_ID_LEN + 1];
	time_t arrival;
	char *sender; /* "" for the null sender */
	char *envid;
	int ret;
	int body8;
	int smtputf8;
	char *client; /* "name [addr]" */
	char *helo;
	struct buf prepend;
	struct buf inline_body;
	int body_fd; /* -1 while the body is inline */
	uint64_t size;
	struct spool_rcpt *rcpts;
	size_t nrcpts;
	int write_errno; /* first write failure, sticky */
	/* DMARC aggregate reporting: the row this message contributes
	 * (owned, stored in the same commit), and for a report message the
	 * rows it reports (deleted in the same commit). */
	struct dmarc_rep_row *dmarc;
	int64_t *dmarc_done;
	size_t ndmarc_done;
	/* "expanded" reports (spool_msg_add_expanded), made only when
	 * report_to is set (never for the null sender) */
	struct spool_expanded *expanded;
	size_t nexpanded;
	char *report_to;	   /* where reports go (owned) */
	const char *reporting_mta; /* our host name (not owned) */
};

/* One recipient awaiting delivery, as loaded at start or after commit. */
struct spool_pending {
	uint64_t rcpt_id;
	char msg[SPOOL_ID_LEN + 1];
	const char *sender;
	const char *addr;
	const char *orig;  /* as given by the client ("" if unknown) */
	const char *orcpt; /* DSN ORCPT ("" if none) */
	unsigned notify;   /* DSN NOTIFY bits, 0 if none */
	int state;
	unsigned attempts;
	time_t next_attempt;
	time_t arrival;
	int held;
	unsigned crashes;
	int warned;
};

/* What one delivery attempt did to one recipient. */
struct spool_result {
	uint64_t rcpt_id;
	char msg[SPOOL_ID_LEN + 1];
	time_t time;
	int new_state;	    /* spool_state */
	const char *where;  /* "maildir /var/mail/x/user" */
	const char *result; /* "delivered" "deferred" "bounced" */
	const char *status; /* enhanced status, "5.1.1" */
	const char *reply;  /* reason / remote reply, verbatim */
	/* free-text trace, or NULL: queue no longer writes it (the record
	 * holds the facts); rows of older versions have it */
	const char *detail;
	/* the attempt record as mail/attrec packs it (attrec_pack), or
	 * NULL: stored once, rendered as JSON or text when shown */
	const void *rec;
	size_t nrec;
	const char *remote_mta;	 /* remote host for the DSN, or NULL */
	const char *remote_addr; /* its IP address (human text), or NULL */
	time_t next_attempt;
	int crashed;	    /* the attempt died with its role: count it */
	int warn;	    /* send the delay warning DSN (to bounce_to) */
	time_t retry_until; /* Will-Retry-Until of a delay warning */
	int warned;	    /* out: recipients the delay warning listed */
	int hold;	    /* put the message on hold (reason in reply) */
	/* When new_state == SPOOL_BOUNCED and bounce_to is set, a DSN is
	 * composed from the stored message and queued in the same commit. */
	const char *reporting_mta;
	const char *bounce_to;	/* final recipient of the DSN, or NULL */
	const char *final_rcpt; /* the recipient that failed */
	/* When new_state == SPOOL_DELIVERED and bounce_to is set: a success
	 * report (if the recipient's NOTIFY has SUCCESS), in the same commit.
	 * SPOOL_DELIVERED: final delivery here; SPOOL_RELAYED: passed to a
	 * next hop that offered no DSN; 0: none. */
	int success;
	/* out (valid in the callback): the DSN's message and recipient */
	char bounce_id[SPOOL_ID_LEN + 1];
	uint64_t bounce_rcpt_id;
	int msg_done; /* message had no undelivered recipient left */
};

enum spool_query { SPOOL_LIST, SPOOL_SHOW };
enum spool_admin { SPOOL_HOLD, SPOOL_RELEASE, SPOOL_DELETE };

typedef void spool_commit_cb(void *arg, int err, struct spool_msg *msg);
/* What delivery needs to know about a stored message besides its body. */
struct spool_msginfo {
	uint64_t size; /* body octets (prepend records not included) */
	int body8;
	int smtputf8;
	int ret;
	char envid[101];
};

typedef void spool_body_cb(void *arg, int err, int body_fd, const char *prepend,
			   size_t prepend_len,
			   const struct spool_msginfo *info);
typedef void spool_result_cb(void *arg, int err, struct spool_result *r);
typedef void spool_query_cb(void *arg, int err, struct buf *out);
typedef void spool_pending_cb(void *arg, const struct spool_pending *p);
typedef void spool_admin_cb(void *arg, int err);

struct spool *spool_open(const char *dir, uint64_t inline_max,
			 struct event_base *base, char *err, size_t errlen);
/*
 * RET=FULL: at most this many octets of the original go back in a
 * bounce (`[queue] bounce-size-limit`); the rest is cut at a line end
 * (mail/dsn). Safe to call at any time (a reload).
 */
void spool_set_bounce_max(struct spool *sp, uint64_t octets);
/*
 * How long a delivery result may wait for a commit that happens anyway
 * (default SPOOL_LAZY_MS; tests stretch it).
 */
void spool_set_lazy_ms(struct spool *sp, unsigned ms);
/* Waits for the writer to finish every job; clean-stop marker removed. */
void spool_close(struct spool *sp);
/* Call each for every undelivered recipient (start-up, synchronous). */
int spool_load_pending(struct spool *sp, spool_pending_cb *each, void *arg);

struct spool_msg *spool_msg_new(struct spool *sp, time_t arrival);
void spool_msg_add_expanded(struct spool_msg *m, const char *alias,
			    const char *orcpt, size_t count);
int spool_msg_add_rcpt(struct spool_msg *m, const char *addr, const char *orig,
		       const char *orcpt, unsigned notify);
/* Append body bytes; spills to a file past inline_max. -1 with errno. */
int spool_msg_write(struct spool *sp, struct spool_msg *m, const void *p,
		    size_t n);
/* Drop an uncommitted message and its body file. */
void spool_msg_discard(struct spool *sp, struct spool_msg *m);
/* Make durable; cb gets msg (rcpt ids filled) then msg is freed. */
void spool_msg_commit(struct spool *sp, struct spool_msg *m,
		      spool_commit_cb *cb, void *arg);

void spool_load_body(struct spool *sp, const char *msg_id, spool_body_cb *cb,
		     void *arg);
/* r and its strings must stay valid until cb runs. */
void spool_record(struct spool *sp, struct spool_result *r, spool_result_cb *cb,
		  void *arg);
void spool_query(struct spool *sp, enum spool_query q, const char *id, int json,
		 spool_query_cb *cb, void *arg);

/* Operator action on a message; err -1 when there is no such message. */
void spool_admin(struct spool *sp, enum spool_admin op, const char *id,
		 spool_admin_cb *cb, void *arg);

/* DMARC report rows. The rows of a rejected message are stored alone
 * (spool_dmarc_add takes row); a report job loads at most max rows
 * evaluated at or before upto, oldest first, ordered by policy domain
 * (rows and ids are the callback's to free with xfree), and deletes
 * rows it did not send. */
typedef void spool_dmarc_cb(void *arg, int err, struct dmarc_rep_row *rows,
			    int64_t *ids, size_t n);
void spool_dmarc_add(struct spool *sp, struct dmarc_rep_row *row);
void spool_dmarc_load(struct spool *sp, int64_t upto, size_t max,
		      spool_dmarc_cb *cb, void *arg);
/* ids (taken) are deleted. */
void spool_dmarc_delete(struct spool *sp, int64_t *ids, size_t n);

/* Counters for tests and benchmarks. */
/* Called once, on the event loop, after the spool failed (see above). */
typedef void spool_fail_cb(void *arg);
void spool_set_on_fail(struct spool *sp, spool_fail_cb *cb, void *arg);
int spool_failed(const struct spool *sp);

uint64_t spool_commits(const struct spool *sp);

#endif
