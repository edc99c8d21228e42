/*
 * spool — see spool.h.
 */
#include "todoku/spool.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/attrec.h"
#include "mail/dsn.h"

#define SPOOL_DSN_MAX (2u * 1024 * 1024) /* a report without its original */
#define SPOOL_HDR_READ (256u * 1024)
#define SPOOL_BOUNCE_MAX_DEFAULT (1024u * 1024) /* conf.c's default too */
#define SPOOL_QUERY_MAX (64u * 1024 * 1024)
#define SPOOL_RECORD_MAX (256u * 1024) /* one attempt record, rendered */
#define SPOOL_WAL_PASSIVE 1000	       /* frames: checkpoint after a commit */
#define SPOOL_WAL_ALARM 65536 /* frames: warn, something holds the WAL */
#define SPOOL_IDLE_S 2	      /* idle this long: truncate the WAL */
#define SPOOL_STMTS 64	      /* prepared statements kept for reuse */
#define SPOOL_LAZY_MS 25      /* a delivery result waits at most this long */
#define SPOOL_LAZY_MAX 256    /* ... or until this many are waiting */

enum job_kind {
	JOB_COMMIT,
	JOB_BODY,
	JOB_RESULT,
	JOB_QUERY,
	JOB_ADMIN,
	JOB_DMARC_ADD,
	JOB_DMARC_LOAD,
	JOB_DMARC_DELETE,
};

struct job {
	struct job *next;
	enum job_kind kind;
	int err;
	void *arg;
	/* JOB_COMMIT */
	struct spool_msg *msg;
	spool_commit_cb *commit_cb;
	/* JOB_BODY */
	char msg_id[SPOOL_ID_LEN + 1];
	int body_fd;
	struct buf prepend;
	struct spool_msginfo info;
	spool_body_cb *body_cb;
	/* JOB_RESULT */
	struct spool_result *res;
	spool_result_cb *result_cb;
	int unlink_body;
	/* JOB_ADMIN */
	enum spool_admin admin;
	spool_admin_cb *admin_cb;
	/* JOB_QUERY */
	enum spool_query q;
	int json;
	struct buf out;
	spool_query_cb *query_cb;
	/* JOB_DMARC_* */
	struct dmarc_rep_row *rows;
	int64_t *ids;
	size_t nrows, maxrows;
	int64_t upto;
	spool_dmarc_cb *dmarc_cb;
};

struct spool {
	/* shorter than PATH_MAX so dir/file names always fit */
	char dir[PATH_MAX - 64];
	char bodydir[PATH_MAX - 32];
	uint64_t inline_max;
	_Atomic uint64_t bounce_max; /* octets of an original under RET=FULL */
	sqlite3 *db;
	int bodydir_fd;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *pending, *pending_tail; /* urgent: taken at once */
	struct job *lazy, *lazy_tail;	    /* delivery results */
	unsigned nlazy;
	unsigned lazy_ms;
	struct timespec lazy_since; /* CLOCK_MONOTONIC, first lazy job */
	int lazy_due;		    /* the loop's timer: take them now */
	struct event *lazy_ev;	    /* event loop only: that timer */
	struct job *done, *done_tail;
	int stop;
	int efd;
	struct event *ev;
	uint64_t commits;
	/* set by the writer after a failed fsync, BEGIN, COMMIT or
	 * checkpoint: the connection is never used again (DESIGN §7) */
	_Atomic int failed;
	int fail_reported; /* event loop only */
	spool_fail_cb *on_fail;
	void *fail_arg;
	_Atomic unsigned seq; /* ids are made on both threads (DSNs) */
	int wal_frames;	      /* writer thread only */
	/* prepared statements by SQL text, reused (whoever holds db) */
	struct {
		char *sql;
		sqlite3_stmt *st;
	} stmts[SPOOL_STMTS];
	size_t nstmts;
};

static const char spool_schema[] =
    "CREATE TABLE IF NOT EXISTS msg("
    " id TEXT PRIMARY KEY, arrival INTEGER NOT NULL,"
    " sender TEXT NOT NULL, envid TEXT, ret INTEGER, body8 INTEGER,"
    " smtputf8 INTEGER, size INTEGER NOT NULL, client TEXT, helo TEXT,"
    " prepend BLOB, body BLOB, body_file INTEGER NOT NULL DEFAULT 0,"
    " held INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS rcpt("
    " id INTEGER PRIMARY KEY,"
    " msg TEXT NOT NULL REFERENCES msg(id) ON DELETE CASCADE,"
    " addr TEXT NOT NULL, orig TEXT, orcpt TEXT, notify INTEGER,"
    " state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt INTEGER NOT NULL, last_reply TEXT, last_where TEXT,"
    " crashes INTEGER NOT NULL DEFAULT 0, warned INTEGER NOT NULL"
    " DEFAULT 0, last_status TEXT);"
    "CREATE INDEX IF NOT EXISTS rcpt_msg ON rcpt(msg);"
    "CREATE TABLE IF NOT EXISTS attempt("
    " id INTEGER PRIMARY KEY,"
    " rcpt INTEGER NOT NULL REFERENCES rcpt(id) ON DELETE CASCADE,"
    " time INTEGER NOT NULL, where_ TEXT, result TEXT, status TEXT,"
    " reply TEXT, detail TEXT, repeats INTEGER NOT NULL DEFAULT 1,"
    " record TEXT, record_text TEXT, rec BLOB);"
    "CREATE INDEX IF NOT EXISTS attempt_rcpt ON attempt(rcpt);"
    "CREATE TABLE IF NOT EXISTS dmarc_row("
    " id INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
    " policy_domain TEXT, org_domain TEXT, p TEXT, sp TEXT, np TEXT,"
    " adkim TEXT, aspf TEXT, testing TEXT, rua TEXT, source_ip TEXT,"
    " header_from TEXT, envelope_from TEXT, spf_domain TEXT,"
    " spf_scope TEXT, spf_result TEXT, disposition TEXT, dkim_align TEXT,"
    " spf_align TEXT, result TEXT, dkim TEXT);";

/* ---- small SQLite helpers ------------------------------------------ */

static int
sql_err(int rc)
{
	if (rc == SQLITE_FULL)
		return SPOOL_E_FULL;
	return SPOOL_E_IO;
}

/* An I/O error or a full disk: nothing the connection did since its
 * last good fsync can be trusted (DESIGN §7). */
static int
sql_fatal(int rc)
{
	return (rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL;
}

static void
writer_fail(struct spool *sp, const char *what)
{
	if (!sp->failed)
		log_err("spool: %s failed: the database is not used again",
			what);
	sp->failed = 1;
}

static int
sql_exec(struct spool *sp, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(sp->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_err("spool: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
	}
	return rc;
}

/*
 * Statements are prepared once and kept (SPOOL_STMTS of them, by SQL
 * text): parsing SQL was a fifth of the queue role's CPU when every
 * statement was prepared per use. sql_prep hands out the kept statement
 * unless it is in use (a nested query with the same text), then a
 * fresh one; sql_fin resets a kept one and finalizes any other.
 */
static sqlite3_stmt *
sql_prep(struct spool *sp, const char *sql)
{
	sqlite3_stmt *st = NULL;
	size_t i;

	for (i = 0; i < sp->nstmts; i++)
		if (strcmp(sp->stmts[i].sql, sql) == 0)
			break;
	if (i < sp->nstmts && !sqlite3_stmt_busy(sp->stmts[i].st))
		return sp->stmts[i].st;
	if (i == sp->nstmts && i < SPOOL_STMTS) {
		if (sqlite3_prepare_v3(sp->db, sql, -1,
				       SQLITE_PREPARE_PERSISTENT, &st,
				       NULL) != SQLITE_OK)
			log_panic("spool: cannot prepare \"%s\": %s", sql,
				  sqlite3_errmsg(sp->db));
		sp->stmts[i].sql = xstrdup(sql);
		sp->stmts[i].st = st;
		sp->nstmts++;
		return st;
	}
	if (sqlite3_prepare_v2(sp->db, sql, -1, &st, NULL) != SQLITE_OK)
		log_panic("spool: cannot prepare \"%s\": %s", sql,
			  sqlite3_errmsg(sp->db));
	return st;
}

static void
sql_fin(struct spool *sp, sqlite3_stmt *st)
{
	for (size_t i = 0; i < sp->nstmts; i++) {
		if (sp->stmts[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	}
	sqlite3_finalize(st); /* not a kept one */
}

/* before sqlite3_close */
static void
sql_fin_all(struct spool *sp)
{
	for (size_t i = 0; i < sp->nstmts; i++) {
		sqlite3_finalize(sp->stmts[i].st);
		xfree(sp->stmts[i].sql);
	}
	sp->nstmts = 0;
}

/* one statement without rows (transaction control), kept prepared */
static int
sql_run(struct spool *sp, const char *sql)
{
	sqlite3_stmt *st = sql_prep(sp, sql);
	int rc = sqlite3_step(st);

	sql_fin(sp, st);
	if (rc == SQLITE_DONE)
		return SQLITE_OK;
	log_err("spool: %s: %s", sql, sqlite3_errmsg(sp->db));
	return rc;
}

static void
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* step a statement that returns no rows; SQLite rc */
static int
sql_done(struct spool *sp, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sql_fin(sp, st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : "";
}

/* ---- queue ids ------------------------------------------------------ */

static void
spool_make_id(struct spool *sp, char *dst)
{
	static const char alpha[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	struct timespec ts;
	uint64_t v;

	clock_gettime(CLOCK_REALTIME, &ts);
	v = ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000) << 6 |
	    (sp->seq++ & 63);
	for (int i = SPOOL_ID_LEN - 1; i >= 0; i--) {
		dst[i] = alpha[v & 31];
		v >>= 5;
	}
	dst[SPOOL_ID_LEN] = '\0';
}

/* ---- job execution (writer thread) --------------------------------- */

/* DMARC report rows: the columns are dmarc_rep_fields, then dkim. */
static int
dmarc_insert(struct spool *sp, const struct dmarc_rep_row *row)
{
	char sql[1024], dkim[DMARC_REP_DKIM_MAX * 2 * DMARC_REP_NAME + 256];
	size_t off = (size_t)snprintf(sql, sizeof(sql),
				      "INSERT INTO "
				      "dmarc_row(time");
	sqlite3_stmt *st;

	for (size_t i = 0; i < dmarc_rep_nfields; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, ",%s",
					dmarc_rep_fields[i].name);
	off += (size_t)snprintf(sql + off, sizeof(sql) - off,
				",dkim) "
				"VALUES(?");
	for (size_t i = 0; i <= dmarc_rep_nfields; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, ",?");
	snprintf(sql + off, sizeof(sql) - off, ")");
	st = sql_prep(sp, sql);
	sqlite3_bind_int64(st, 1, row->time);
	for (size_t i = 0; i < dmarc_rep_nfields; i++)
		bind_text(st, (int)i + 2,
			  (const char *)row + dmarc_rep_fields[i].off);
	if (dmarc_rep_dkim_text(row, dkim, sizeof(dkim)) < 0)
		dkim[0] = '\0';
	bind_text(st, (int)dmarc_rep_nfields + 2, dkim);
	return sql_done(sp, st);
}

static int
dmarc_delete(struct spool *sp, const int64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st =
		    sql_prep(sp, "DELETE FROM dmarc_row WHERE id = ?");
		int rc;
		sqlite3_bind_int64(st, 1, ids[i]);
		if ((rc = sql_done(sp, st)) != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

static void
dmarc_row_from(sqlite3_stmt *st, struct dmarc_rep_row *row)
{
	memset(row, 0, sizeof(*row));
	row->time = sqlite3_column_int64(st, 1);
	for (size_t i = 0; i < dmarc_rep_nfields; i++)
		snprintf((char *)row + dmarc_rep_fields[i].off,
			 dmarc_rep_fields[i].size, "%s",
			 col_text(st, (int)i + 2));
	dmarc_rep_dkim_load(row, col_text(st, (int)dmarc_rep_nfields + 2));
}

static int
exec_dmarc_load(struct spool *sp, struct job *j)
{
	char sql[1024];
	size_t off = (size_t)snprintf(sql, sizeof(sql), "SELECT id, time");
	sqlite3_stmt *st;
	int rc;

	for (size_t i = 0; i < dmarc_rep_nfields; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, ",%s",
					dmarc_rep_fields[i].name);
	snprintf(sql + off, sizeof(sql) - off,
		 ",dkim FROM dmarc_row WHERE time <= ? ORDER BY"
		 " policy_domain, time, id LIMIT ?");
	st = sql_prep(sp, sql);
	sqlite3_bind_int64(st, 1, j->upto);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)j->maxrows);
	j->rows = xcalloc(j->maxrows ? j->maxrows : 1, sizeof(*j->rows));
	j->ids = xcalloc(j->maxrows ? j->maxrows : 1, sizeof(*j->ids));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && j->nrows < j->maxrows) {
		j->ids[j->nrows] = sqlite3_column_int64(st, 0);
		dmarc_row_from(st, &j->rows[j->nrows++]);
	}
	sql_fin(sp, st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static size_t spool_read_orig(struct spool *sp, const char *id, int body_file,
			      const void *blob, size_t bloblen,
			      struct buf *out);
static int spool_insert_dsn(struct spool *sp, struct spool_result *res,
			    const struct buf *dsn);

/*
 * The "expanded" report (RFC 3464 Action: expanded, RFC 3461 §6.2.7.3)
 * for one alias of a message being committed: a success report, so the
 * header block only (RFC 3461 §4.3), queued in the same commit. A
 * report that cannot be composed is logged and left out; the message
 * itself is not held up.
 */
static int
exec_expanded(struct spool *sp, struct spool_msg *m, struct spool_expanded *x)
{
	struct spool_result res = {0};
	struct dsn_rcpt dr = {0};
	struct dsn_msg dm = {0};
	struct buf orig, dsn;
	char diag[128], *orcpt = NULL;
	int rc = SQLITE_OK;

	buf_init(&orig, SPOOL_HDR_READ);
	spool_read_orig(sp, m->id, m->body_fd >= 0,
			m->inline_body.data ? m->inline_body.data : "",
			m->inline_body.len, &orig);
	if (x->orcpt != NULL) {
		orcpt = xstrdup(x->orcpt);
	} else {
		struct buf b;

		buf_init(&b, 1024);
		buf_addf(&b, "rfc822;%s", x->alias);
		orcpt = b.data;
	}
	snprintf(diag, sizeof(diag),
		 "the address is an alias here; the message was passed on to "
		 "the %zu addresses it stands for",
		 x->count);
	dr.final_rcpt = x->alias;
	dr.orig_rcpt = orcpt;
	dr.action = DSN_EXPANDED;
	dr.status = "2.0.0";
	dr.diag_type = "x-local";
	dr.diag = diag;
	dr.last_attempt = m->arrival;
	dm.reporting_mta = m->reporting_mta;
	dm.queue_id = m->id;
	dm.envid = m->envid && *m->envid ? m->envid : NULL;
	dm.sender = m->sender;
	dm.arrival = m->arrival;
	dm.now = m->arrival;
	dm.rcpts = &dr;
	dm.nrcpts = 1;
	dm.orig = orig.data ? orig.data : "";
	dm.orig_len = orig.len;
	dm.boundary_seed = x->alias;
	res.time = m->arrival;
	res.bounce_to = m->report_to;
	buf_init(&dsn, SPOOL_DSN_MAX + SPOOL_HDR_READ);
	if (dsn_compose(&dm, &dsn) == 0 &&
	    (rc = spool_insert_dsn(sp, &res, &dsn)) == SQLITE_OK) {
		memcpy(x->dsn_id, res.bounce_id, sizeof(x->dsn_id));
		x->dsn_rcpt_id = res.bounce_rcpt_id;
	} else if (rc == SQLITE_OK) {
		log_err("%s: cannot compose the expanded report for <%s>",
			m->id, x->alias);
	}
	xfree(orcpt);
	buf_free(&orig);
	buf_free(&dsn);
	return rc;
}

static int
exec_commit(struct spool *sp, struct job *j)
{
	struct spool_msg *m = j->msg;
	sqlite3_stmt *st = sql_prep(
	    sp, "INSERT INTO msg(id, arrival, sender, envid, ret, body8,"
		" smtputf8, size, client, helo, prepend, body, body_file)"
		" VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
	int rc;

	bind_text(st, 1, m->id);
	sqlite3_bind_int64(st, 2, m->arrival);
	bind_text(st, 3, m->sender ? m->sender : "");
	bind_text(st, 4, m->envid);
	sqlite3_bind_int(st, 5, m->ret);
	sqlite3_bind_int(st, 6, m->body8);
	sqlite3_bind_int(st, 7, m->smtputf8);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)m->size);
	bind_text(st, 9, m->client);
	bind_text(st, 10, m->helo);
	sqlite3_bind_blob(st, 11, m->prepend.data ? m->prepend.data : "",
			  (int)m->prepend.len, SQLITE_TRANSIENT);
	if (m->body_fd < 0)
		sqlite3_bind_blob(
		    st, 12, m->inline_body.data ? m->inline_body.data : "",
		    (int)m->inline_body.len, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 12);
	sqlite3_bind_int(st, 13, m->body_fd >= 0);
	if ((rc = sql_done(sp, st)) != SQLITE_OK)
		return rc;
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct spool_rcpt *r = &m->rcpts[i];
		st = sql_prep(sp, "INSERT INTO rcpt(msg, addr, orig, orcpt,"
				  " notify, state, next_attempt)"
				  " VALUES(?,?,?,?,?,0,?)");
		bind_text(st, 1, m->id);
		bind_text(st, 2, r->addr);
		bind_text(st, 3, r->orig);
		bind_text(st, 4, r->orcpt);
		sqlite3_bind_int(st, 5, (int)r->notify);
		sqlite3_bind_int64(st, 6, m->arrival);
		if ((rc = sql_done(sp, st)) != SQLITE_OK)
			return rc;
		r->id = (uint64_t)sqlite3_last_insert_rowid(sp->db);
	}
	for (size_t i = 0; i < m->nexpanded && m->report_to != NULL; i++)
		if ((rc = exec_expanded(sp, m, &m->expanded[i])) != SQLITE_OK)
			return rc;
	if (m->dmarc && (rc = dmarc_insert(sp, m->dmarc)) != SQLITE_OK)
		return rc;
	return dmarc_delete(sp, m->dmarc_done, m->ndmarc_done);
}

static int
exec_body(struct spool *sp, struct job *j)
{
	sqlite3_stmt *st = sql_prep(
	    sp, "SELECT prepend, body, body_file, size, body8, smtputf8,"
		" ret, envid FROM msg WHERE id = ?");
	char path[PATH_MAX];
	int rc;

	bind_text(st, 1, j->msg_id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sql_fin(sp, st);
		j->err = -1;
		return rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	buf_init(&j->prepend, 1u << 20);
	buf_add(&j->prepend, sqlite3_column_blob(st, 0),
		(size_t)sqlite3_column_bytes(st, 0));
	j->info.size = (uint64_t)sqlite3_column_int64(st, 3);
	j->info.body8 = sqlite3_column_int(st, 4);
	j->info.smtputf8 = sqlite3_column_int(st, 5);
	j->info.ret = sqlite3_column_int(st, 6);
	snprintf(j->info.envid, sizeof(j->info.envid), "%s", col_text(st, 7));
	if (sqlite3_column_int(st, 2)) {
		snprintf(path, sizeof(path), "%s/%s", sp->bodydir, j->msg_id);
		j->body_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	} else {
		j->body_fd = memfd_create("todoku-body", MFD_CLOEXEC);
		if (j->body_fd >= 0 &&
		    write_full(j->body_fd, sqlite3_column_blob(st, 1),
			       (size_t)sqlite3_column_bytes(st, 1)) < 0) {
			close(j->body_fd);
			j->body_fd = -1;
		}
	}
	if (j->body_fd < 0) {
		log_err("spool: cannot open body of %s: %s", j->msg_id,
			strerror(errno));
		j->err = -1;
	}
	sql_fin(sp, st);
	return SQLITE_OK;
}

/*
 * Read the start of the original message for a DSN into out, at most
 * out->max octets (the body file streamed in pieces, never more than
 * that in memory). Returns the size of the whole original.
 */
static size_t
spool_read_orig(struct spool *sp, const char *id, int body_file,
		const void *blob, size_t bloblen, struct buf *out)
{
	char path[PATH_MAX];
	char tmp[16384];
	struct stat stb;
	size_t total = 0;
	ssize_t r;
	int fd;

	if (!body_file) {
		buf_add(out, blob, bloblen < out->max ? bloblen : out->max);
		return bloblen;
	}
	snprintf(path, sizeof(path), "%s/%s", sp->bodydir, id);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return 0;
	if (fstat(fd, &stb) == 0 && stb.st_size > 0)
		total = (size_t)stb.st_size;
	while (out->len < out->max && (r = read(fd, tmp, sizeof(tmp))) > 0) {
		size_t n = (size_t)r;
		if (n > out->max - out->len)
			n = out->max - out->len;
		buf_add(out, tmp, n);
	}
	close(fd);
	return total;
}

static int
spool_insert_dsn(struct spool *sp, struct spool_result *res,
		 const struct buf *dsn)
{
	time_t now = res->time;
	sqlite3_stmt *st;
	int rc;

	spool_make_id(sp, res->bounce_id);
	st = sql_prep(sp, "INSERT INTO msg(id, arrival, sender, size, prepend,"
			  " body, body_file, body8) VALUES(?,?,'',?,'',?,0,?)");
	bind_text(st, 1, res->bounce_id);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)dsn->len);
	/* static: dsn outlives the step (no second copy of a large report) */
	sqlite3_bind_blob(st, 4, dsn->data, (int)dsn->len, SQLITE_STATIC);
	/* a returned 8-bit original goes out with BODY=8BITMIME (RFC 6152),
	 * never re-encoded */
	sqlite3_bind_int(st, 5, dsn_is_8bit(dsn->data, dsn->len));
	if ((rc = sql_done(sp, st)) != SQLITE_OK)
		return rc;
	st = sql_prep(sp, "INSERT INTO rcpt(msg, addr, orig, notify, state,"
			  " next_attempt) VALUES(?,?,?,0,0,?)");
	bind_text(st, 1, res->bounce_id);
	bind_text(st, 2, res->bounce_to);
	bind_text(st, 3, res->bounce_to);
	sqlite3_bind_int64(st, 4, now);
	if ((rc = sql_done(sp, st)) != SQLITE_OK)
		return rc;
	res->bounce_rcpt_id = (uint64_t)sqlite3_last_insert_rowid(sp->db);
	return SQLITE_OK;
}

/*
 * Original-Recipient (RFC 3464 §2.3.1) of a recipient: its ORCPT when
 * the client gave one, else the address the client named in RCPT TO
 * (orig: before alias expansion), which is the ORCPT RFC 3461 §4.2
 * lets a relay add. NULL when neither is known.
 */
static char *
spool_orcpt(sqlite3_stmt *st, int orcpt_col, int orig_col)
{
	struct buf b;

	if (sqlite3_column_type(st, orcpt_col) != SQLITE_NULL &&
	    *col_text(st, orcpt_col) != '\0')
		return xstrdup(col_text(st, orcpt_col));
	if (sqlite3_column_type(st, orig_col) == SQLITE_NULL ||
	    *col_text(st, orig_col) == '\0')
		return NULL;
	buf_init(&b, 1024);
	buf_addf(&b, "rfc822;%s", col_text(st, orig_col));
	return b.data; /* NULL if it did not fit: no field */
}

/* Does this recipient's NOTIFY (0: absent) ask for a report of kind a?
 * Absent means FAILURE,DELAY (RFC 3461 §4.1); SUCCESS only on request. */
static int
spool_notify_wants(unsigned notify, enum dsn_action a)
{
	switch (a) {
	case DSN_FAILED:
		return notify == 0 || (notify & 4) != 0;
	case DSN_DELAYED:
		return notify == 0 || (notify & 8) != 0;
	default:
		return (notify & 2) != 0;
	}
}

/*
 * A report about one recipient: a bounce (DSN_FAILED, the original
 * returned whole under RET=FULL) or a success report (DSN_DELIVERED,
 * DSN_RELAYED; headers only, RFC 3461 §4.3). None when the recipient's
 * NOTIFY does not ask for it.
 */
static int
exec_report(struct spool *sp, struct job *j, enum dsn_action action)
{
	struct spool_result *res = j->res;
	sqlite3_stmt *st = sql_prep(
	    sp, "SELECT m.sender, m.envid, m.arrival, m.ret, m.body,"
		" m.body_file, r.orcpt, r.notify, r.orig FROM msg m JOIN rcpt r"
		" ON r.msg = m.id WHERE r.id = ?");
	struct dsn_rcpt dr = {0};
	struct dsn_msg dm = {0};
	struct buf orig, dsn;
	uint64_t cap = sp->bounce_max;
	char *orcpt;
	int rc;

	sqlite3_bind_int64(st, 1, (sqlite3_int64)res->rcpt_id);
	if (sqlite3_step(st) != SQLITE_ROW ||
	    !spool_notify_wants((unsigned)sqlite3_column_int(st, 7), action)) {
		sql_fin(sp, st);
		return SQLITE_OK;
	}
	dm.ret_full = action == DSN_FAILED && sqlite3_column_int(st, 3) == 1;
	/* RET=FULL: the header block (up to SPOOL_HDR_READ) and cap octets,
	 * plus one to see whether there is more; dsn_compose cuts */
	buf_init(&orig,
		 dm.ret_full ? cap + SPOOL_HDR_READ + 1 : SPOOL_HDR_READ);
	dm.orig_total = spool_read_orig(
	    sp, res->msg, sqlite3_column_int(st, 5), sqlite3_column_blob(st, 4),
	    (size_t)sqlite3_column_bytes(st, 4), &orig);
	dm.ret_max = dm.ret_full ? cap : 0;
	orcpt = spool_orcpt(st, 6, 8);
	dr.final_rcpt = res->final_rcpt;
	dr.orig_rcpt = orcpt;
	dr.action = action;
	dr.status = res->status;
	dr.diag_type = res->remote_mta ? "smtp" : "x-local";
	dr.remote_mta = res->remote_mta;
	dr.remote_addr = res->remote_addr;
	dr.diag = res->reply;
	dr.last_attempt = res->time;
	dm.reporting_mta = res->reporting_mta;
	dm.queue_id = res->msg;
	dm.envid =
	    sqlite3_column_type(st, 1) == SQLITE_NULL ? NULL : col_text(st, 1);
	dm.sender = col_text(st, 0);
	dm.arrival = (time_t)sqlite3_column_int64(st, 2);
	dm.now = res->time;
	dm.rcpts = &dr;
	dm.nrcpts = 1;
	dm.orig = orig.data ? orig.data : "";
	dm.orig_len = orig.len;
	dm.boundary_seed = res->msg;
	buf_init(&dsn,
		 SPOOL_DSN_MAX + SPOOL_HDR_READ + (dm.ret_full ? cap : 0));
	rc = SQLITE_OK;
	if (dsn_compose(&dm, &dsn) == 0)
		rc = spool_insert_dsn(sp, res, &dsn);
	else
		log_err("%s: cannot compose a notification for <%s>", res->msg,
			dm.sender);
	sql_fin(sp, st);
	xfree(orcpt);
	buf_free(&orig);
	buf_free(&dsn);
	return rc;
}

#define SPOOL_WARN_RCPTS 100

/*
 * One delay warning per message and warning event (DESIGN §7): every
 * recipient of the message that is deferred, not yet warned about and
 * whose NOTIFY allows DELAY, in one DSN; all of them marked warned.
 */
static int
exec_delay_warning(struct spool *sp, struct job *j)
{
	struct spool_result *res = j->res;
	sqlite3_stmt *m = sql_prep(
	    sp, "SELECT sender, envid, arrival, body, body_file FROM msg"
		" WHERE id = ?");
	sqlite3_stmt *st;
	struct dsn_rcpt dr[SPOOL_WARN_RCPTS];
	char *keep[SPOOL_WARN_RCPTS * 4];
	size_t n = 0, nk = 0;
	struct dsn_msg dm = {0};
	struct buf orig, dsn;
	int rc = SQLITE_OK;

	bind_text(m, 1, res->msg);
	if (sqlite3_step(m) != SQLITE_ROW) {
		sql_fin(sp, m);
		return SQLITE_OK;
	}
	st = sql_prep(sp, "SELECT id, addr, orcpt, last_status, last_reply,"
			  " orig FROM rcpt WHERE msg = ? AND state = 1 AND"
			  " warned = 0 AND (notify = 0 OR notify & 8)");
	bind_text(st, 1, res->msg);
	while (sqlite3_step(st) == SQLITE_ROW && n < SPOOL_WARN_RCPTS) {
		struct dsn_rcpt *r = &dr[n++];
		memset(r, 0, sizeof(*r));
		r->final_rcpt = keep[nk++] = xstrdup(col_text(st, 1));
		r->orig_rcpt = keep[nk++] = spool_orcpt(st, 2, 5);
		r->action = DSN_DELAYED;
		r->status = keep[nk++] = xstrdup(col_text(st, 3));
		r->diag = keep[nk++] = xstrdup(col_text(st, 4));
		r->diag_type = res->remote_mta ? "smtp" : "x-local";
		r->remote_mta =
		    (uint64_t)sqlite3_column_int64(st, 0) == res->rcpt_id
			? res->remote_mta
			: NULL;
		r->remote_addr = r->remote_mta ? res->remote_addr : NULL;
		r->last_attempt = res->time;
		r->will_retry_until = res->retry_until;
	}
	sql_fin(sp, st);
	if (n > 0) {
		buf_init(&orig, SPOOL_HDR_READ);
		spool_read_orig(sp, res->msg, sqlite3_column_int(m, 4),
				sqlite3_column_blob(m, 3),
				(size_t)sqlite3_column_bytes(m, 3), &orig);
		dm.reporting_mta = res->reporting_mta;
		dm.queue_id = res->msg;
		dm.envid = sqlite3_column_type(m, 1) == SQLITE_NULL
			       ? NULL
			       : col_text(m, 1);
		dm.sender = col_text(m, 0);
		dm.arrival = (time_t)sqlite3_column_int64(m, 2);
		dm.now = res->time;
		dm.rcpts = dr;
		dm.nrcpts = n;
		dm.orig = orig.data ? orig.data : "";
		dm.orig_len = dsn_header_len(dm.orig, orig.len);
		dm.boundary_seed = res->msg;
		buf_init(&dsn, SPOOL_DSN_MAX);
		if (dsn_compose(&dm, &dsn) == 0)
			rc = spool_insert_dsn(sp, res, &dsn);
		buf_free(&orig);
		buf_free(&dsn);
		res->warned = (int)n;
	}
	sql_fin(sp, m);
	for (size_t i = 0; i < nk; i++)
		xfree(keep[i]);
	if (rc != SQLITE_OK || n == 0)
		return rc;
	st = sql_prep(sp, "UPDATE rcpt SET warned = 1 WHERE msg = ? AND"
			  " state = 1");
	bind_text(st, 1, res->msg);
	return sql_done(sp, st);
}

static int
exec_msg_done(struct spool *sp, struct job *j)
{
	struct spool_result *res = j->res;
	sqlite3_stmt *st = sql_prep(
	    sp, "SELECT count(*), (SELECT body_file FROM msg WHERE id = ?)"
		" FROM rcpt WHERE msg = ? AND state IN (0, 1)");

	bind_text(st, 1, res->msg);
	bind_text(st, 2, res->msg);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0) {
		res->msg_done = 1;
		j->unlink_body = sqlite3_column_int(st, 1);
	}
	sql_fin(sp, st);
	if (!res->msg_done)
		return SQLITE_OK;
	st = sql_prep(sp, "DELETE FROM msg WHERE id = ?");
	bind_text(st, 1, res->msg);
	return sql_done(sp, st);
}

static int
exec_result(struct spool *sp, struct job *j)
{
	struct spool_result *res = j->res;
	sqlite3_stmt *st;
	int rc;

	/* repeats: how many attempts in a row, this one included, had the
	 * same outcome (result, where, status, reply), so the bounded
	 * history below still says "the same reply 57 times" (DESIGN §7) */
	st = sql_prep(sp, "INSERT INTO attempt(rcpt, time, where_, result,"
			  " status, reply, detail, rec,"
			  " repeats) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,"
			  " COALESCE((SELECT"
			  " CASE WHEN a.result IS ?4 AND a.where_ IS ?3 AND"
			  " a.status IS ?5 AND a.reply IS ?6 THEN a.repeats + 1"
			  " ELSE 1 END FROM attempt a WHERE a.rcpt = ?1"
			  " ORDER BY a.id DESC LIMIT 1), 1))");
	sqlite3_bind_int64(st, 1, (sqlite3_int64)res->rcpt_id);
	sqlite3_bind_int64(st, 2, res->time);
	bind_text(st, 3, res->where);
	bind_text(st, 4, res->result);
	bind_text(st, 5, res->status);
	bind_text(st, 6, res->reply);
	bind_text(st, 7, res->detail);
	if (res->rec != NULL && res->nrec > 0)
		sqlite3_bind_blob(st, 8, res->rec, (int)res->nrec,
				  SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 8);
	if ((rc = sql_done(sp, st)) != SQLITE_OK)
		return rc;
	/* bounded history: the first 3 and the last 10 attempts */
	st = sql_prep(sp, "DELETE FROM attempt WHERE rcpt = ?1 AND id NOT IN"
			  " (SELECT id FROM attempt WHERE rcpt = ?1 ORDER BY"
			  " id LIMIT 3) AND id NOT IN (SELECT id FROM attempt"
			  " WHERE rcpt = ?1 ORDER BY id DESC LIMIT 10)");
	sqlite3_bind_int64(st, 1, (sqlite3_int64)res->rcpt_id);
	if ((rc = sql_done(sp, st)) != SQLITE_OK)
		return rc;
	st = sql_prep(sp, "UPDATE rcpt SET state = ?, attempts = attempts + 1,"
			  " next_attempt = ?, last_reply = ?, last_where = ?,"
			  " last_status = ? WHERE id = ?");
	sqlite3_bind_int(st, 1, res->new_state);
	sqlite3_bind_int64(st, 2, res->next_attempt);
	bind_text(st, 3, res->reply);
	bind_text(st, 4, res->where);
	bind_text(st, 5, res->status);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)res->rcpt_id);
	if ((rc = sql_done(sp, st)) != SQLITE_OK)
		return rc;
	if (res->crashed || res->hold) {
		st = sql_prep(sp, "UPDATE rcpt SET crashes = crashes + ?"
				  " WHERE id = ?");
		sqlite3_bind_int(st, 1, res->crashed ? 1 : 0);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)res->rcpt_id);
		if ((rc = sql_done(sp, st)) != SQLITE_OK)
			return rc;
	}
	if (res->hold) {
		st = sql_prep(sp, "UPDATE msg SET held = 1 WHERE id = ?");
		bind_text(st, 1, res->msg);
		if ((rc = sql_done(sp, st)) != SQLITE_OK)
			return rc;
	}
	if (res->new_state == SPOOL_BOUNCED && res->bounce_to &&
	    (rc = exec_report(sp, j, DSN_FAILED)) != SQLITE_OK)
		return rc;
	if (res->new_state == SPOOL_DELIVERED && res->bounce_to &&
	    res->success != 0 &&
	    (rc = exec_report(sp, j,
			      res->success == SPOOL_RELAYED ? DSN_RELAYED
							    : DSN_DELIVERED)) !=
		SQLITE_OK)
		return rc;
	if (res->warn && res->bounce_to &&
	    (rc = exec_delay_warning(sp, j)) != SQLITE_OK)
		return rc;
	return exec_msg_done(sp, j);
}

static const char *const state_names[] = {"queued", "deferred", "delivered",
					  "bounced"};

static void
query_time(struct buf *b, time_t t, int json)
{
	char s[32];

	clock_iso8601(t, s, sizeof(s));
	if (json)
		json_str(b, s);
	else
		buf_adds(b, s);
}

/* Multi-line attempt record, indented under its attempt. */
static void
query_indent(struct buf *b, const char *s)
{
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		if (n > 0)
			buf_addf(b, "        | %.*s\n", (int)n, s);
		s += n + (nl != NULL);
	}
}

/* The row's record rendered from its packed form (column 9, attempt.rec)
 * and the row's own columns, appended to b whole; -1 when the row has
 * none (older rows) or it does not decode. */
static int
query_record(sqlite3_stmt *st, struct buf *b, int json)
{
	const void *p = sqlite3_column_blob(st, 9);
	int n = sqlite3_column_bytes(st, 9);
	struct attrec_unpacked *u;
	struct buf out;
	int rc = -1;

	if (p == NULL || n <= 0)
		return -1;
	u = xcalloc(1, sizeof(*u));
	buf_init(&out, SPOOL_RECORD_MAX);
	if (attrec_unpack(p, (size_t)n, u) == 0) {
		u->view.time = (time_t)sqlite3_column_int64(st, 0);
		u->view.result = col_text(st, 1);
		u->view.where = col_text(st, 2);
		u->view.status = col_text(st, 3);
		u->view.reply = col_text(st, 4);
		rc = json ? attrec_json(&u->view, &out)
			  : attrec_text(&u->view, &out);
	}
	if (rc == 0 && out.len > 0)
		rc = buf_add(b, out.data, out.len) < 0 ? -1 : 0;
	buf_free(&out);
	attrec_unpacked_free(u);
	xfree(u);
	return rc;
}

static void
query_history(struct spool *sp, struct buf *b, sqlite3_int64 rcpt, int json)
{
	sqlite3_stmt *st =
	    sql_prep(sp, "SELECT time, result, where_, status, reply, detail,"
			 " repeats, record, record_text, rec FROM attempt"
			 " WHERE rcpt = ? ORDER BY id");
	int first = 1;

	sqlite3_bind_int64(st, 1, rcpt);
	if (json)
		buf_adds(b, ", \"history\": [");
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (json) {
			buf_adds(b, first ? "{\"time\": " : ", {\"time\": ");
			query_time(b, (time_t)sqlite3_column_int64(st, 0), 1);
			buf_adds(b, ", \"result\": ");
			json_str(b, col_text(st, 1));
			buf_adds(b, ", \"where\": ");
			json_str(b, col_text(st, 2));
			buf_adds(b, ", \"status\": ");
			json_str(b, col_text(st, 3));
			buf_adds(b, ", \"reply\": ");
			json_str(b, col_text(st, 4));
			buf_adds(b, ", \"detail\": ");
			json_str(b, col_text(st, 5));
			buf_addf(b, ", \"repeats\": %lld",
				 (long long)sqlite3_column_int64(st, 6));
			/* the record as an object, rendered from its
			 * packed form; rows stored as JSON (before the
			 * packed form) as they are; null for older rows */
			buf_adds(b, ", \"record\": ");
			if (query_record(st, b, 1) < 0)
				buf_adds(b, *col_text(st, 7) ? col_text(st, 7)
							     : "null");
			buf_adds(b, "}");
		} else {
			buf_adds(b, "      ");
			query_time(b, (time_t)sqlite3_column_int64(st, 0), 0);
			buf_addf(b, "  %s  %s  via %s\n        %s\n",
				 col_text(st, 1), col_text(st, 3),
				 col_text(st, 2), col_text(st, 4));
			if (sqlite3_column_int64(st, 6) > 1)
				buf_addf(
				    b,
				    "        (the same outcome %lld "
				    "attempts in a row)\n",
				    (long long)sqlite3_column_int64(st, 6));
			/* the packed record; else what older rows have */
			if (query_record(st, b, 0) < 0) {
				if (*col_text(st, 8))
					buf_adds(b, col_text(st, 8));
				else
					query_indent(b, col_text(st, 5));
			}
		}
		first = 0;
	}
	if (json)
		buf_adds(b, "]");
	sql_fin(sp, st);
}

/* DSN RET and ENVID of a message (columns col, col + 1); text: one line
 * under the message, only when the client gave them. */
static void
query_dsn_msg(struct buf *b, sqlite3_stmt *st, int col, int json)
{
	int ret = sqlite3_column_int(st, col);
	const char *rets = ret == 1 ? "FULL" : ret == 2 ? "HDRS" : NULL;
	const char *envid = col_text(st, col + 1);

	if (json) {
		buf_adds(b, ", \"dsn_ret\": ");
		json_str(b, rets ? rets : "");
		buf_adds(b, ", \"dsn_envid\": ");
		json_str(b, envid);
	} else if (rets != NULL || *envid != '\0') {
		buf_addf(b, "  dsn: ret %s, envid %s\n", rets ? rets : "-",
			 *envid ? envid : "-");
	}
}

/* NOTIFY bits as RFC 3461 keywords, "" when not given. */
static void
query_notify(char *dst, size_t n, unsigned notify)
{
	static const char *const names[] = {"NEVER", "SUCCESS", "FAILURE",
					    "DELAY"};
	size_t len = 0;

	dst[0] = '\0';
	for (unsigned k = 0; k < 4; k++)
		if ((notify & (1u << k)) && len < n)
			len += (size_t)snprintf(dst + len, n - len, "%s%s",
						len ? "," : "", names[k]);
}

/* DSN NOTIFY and ORCPT of a recipient (columns col, col + 1). */
static void
query_dsn_rcpt(struct buf *b, sqlite3_stmt *st, int col, int json)
{
	char notify[40];
	const char *orcpt = col_text(st, col + 1);

	query_notify(notify, sizeof(notify),
		     (unsigned)sqlite3_column_int(st, col));
	if (json) {
		buf_adds(b, ", \"dsn_notify\": ");
		json_str(b, notify);
		buf_adds(b, ", \"dsn_orcpt\": ");
		json_str(b, orcpt);
	} else if (*notify != '\0' || *orcpt != '\0') {
		buf_addf(b, "     dsn: notify %s, orcpt %s\n",
			 *notify ? notify : "-", *orcpt ? orcpt : "-");
	}
}

static void
query_rcpts(struct spool *sp, struct buf *b, const char *id, int json, int show)
{
	sqlite3_stmt *st =
	    sql_prep(sp, "SELECT id, addr, orig, state, attempts, next_attempt,"
			 " last_reply, notify, orcpt FROM rcpt WHERE msg = ?"
			 " ORDER BY id");
	int first = 1;

	bind_text(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int state = sqlite3_column_int(st, 3);
		const char *sn =
		    state >= 0 && state <= 3 ? state_names[state] : "?";
		if (json) {
			buf_adds(b,
				 first ? "{\"address\": " : ", {\"address\": ");
			json_str(b, col_text(st, 1));
			buf_adds(b, ", \"original\": ");
			json_str(b, col_text(st, 2));
			buf_adds(b, ", \"state\": ");
			json_str(b, sn);
			buf_addf(b, ", \"attempts\": %d, \"next_attempt\": ",
				 sqlite3_column_int(st, 4));
			if (state <= SPOOL_DEFERRED)
				query_time(
				    b, (time_t)sqlite3_column_int64(st, 5), 1);
			else
				buf_adds(b, "null");
			buf_adds(b, ", \"last_reply\": ");
			json_str(b, col_text(st, 6));
			query_dsn_rcpt(b, st, 7, 1);
		} else {
			buf_addf(b, "  -> %s  %s  attempts %d", col_text(st, 1),
				 sn, sqlite3_column_int(st, 4));
			if (state <= SPOOL_DEFERRED) {
				buf_adds(b, "  next ");
				query_time(
				    b, (time_t)sqlite3_column_int64(st, 5), 0);
			}
			buf_adds(b, "\n");
			if (*col_text(st, 6))
				buf_addf(b, "     last: %s\n", col_text(st, 6));
			if (show)
				query_dsn_rcpt(b, st, 7, 0);
		}
		if (show)
			query_history(sp, b, sqlite3_column_int64(st, 0), json);
		if (json)
			buf_adds(b, "}");
		first = 0;
	}
	sql_fin(sp, st);
}

static int
exec_query(struct spool *sp, struct job *j)
{
	int show = j->q == SPOOL_SHOW;
	sqlite3_stmt *st = sql_prep(
	    sp, show ? "SELECT id, arrival, sender, size, held, client,"
		       " helo, ret, envid FROM msg WHERE id = ?"
		     : "SELECT id, arrival, sender, size, held, client,"
		       " helo, ret, envid FROM msg ORDER BY arrival, id");
	int n = 0;

	buf_init(&j->out, SPOOL_QUERY_MAX);
	if (show)
		bind_text(st, 1, j->msg_id);
	if (j->json && !show)
		buf_adds(&j->out, "[");
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *id = col_text(st, 0);
		if (j->json) {
			buf_adds(&j->out, n ? ",\n{\"id\": " : "{\"id\": ");
			json_str(&j->out, id);
			buf_adds(&j->out, ", \"sender\": ");
			json_str(&j->out, col_text(st, 2));
			buf_adds(&j->out, ", \"arrival\": ");
			query_time(&j->out, (time_t)sqlite3_column_int64(st, 1),
				   1);
			buf_addf(&j->out, ", \"size\": %lld, \"held\": %s",
				 (long long)sqlite3_column_int64(st, 3),
				 sqlite3_column_int(st, 4) ? "true" : "false");
			buf_adds(&j->out, ", \"client\": ");
			json_str(&j->out, col_text(st, 5));
			query_dsn_msg(&j->out, st, 7, 1);
			buf_adds(&j->out, ", \"recipients\": [");
			query_rcpts(sp, &j->out, id, 1, show);
			buf_adds(&j->out, "]}");
		} else {
			buf_addf(&j->out, "%s  ", id);
			query_time(&j->out, (time_t)sqlite3_column_int64(st, 1),
				   0);
			buf_addf(&j->out, "  %lld bytes  from <%s>%s\n",
				 (long long)sqlite3_column_int64(st, 3),
				 col_text(st, 2),
				 sqlite3_column_int(st, 4) ? "  (held)" : "");
			if (show) {
				buf_addf(&j->out, "  client %s, helo %s\n",
					 col_text(st, 5), col_text(st, 6));
				query_dsn_msg(&j->out, st, 7, 0);
			}
			query_rcpts(sp, &j->out, id, 0, show);
		}
		n++;
	}
	sql_fin(sp, st);
	if (j->json && !show)
		buf_adds(&j->out, "]");
	if (j->json || n)
		buf_adds(&j->out, "\n");
	if (show && n == 0)
		j->err = -1;
	if (!show && n == 0 && !j->json)
		buf_adds(&j->out, "The queue is empty.\n");
	return SQLITE_OK;
}

/* Operator actions on one message: hold, release, delete. */
static int
exec_admin(struct spool *sp, struct job *j)
{
	sqlite3_stmt *st =
	    sql_prep(sp, "SELECT body_file FROM msg WHERE id = ?");

	bind_text(st, 1, j->msg_id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sql_fin(sp, st);
		j->err = -1;
		return SQLITE_OK;
	}
	j->unlink_body = j->admin == SPOOL_DELETE && sqlite3_column_int(st, 0);
	sql_fin(sp, st);
	if (j->admin == SPOOL_DELETE)
		st = sql_prep(sp, "DELETE FROM msg WHERE id = ?");
	else
		st = sql_prep(sp, j->admin == SPOOL_HOLD
				      ? "UPDATE msg SET held = 1 WHERE id = ?"
				      : "UPDATE msg SET held = 0 WHERE id = ?");
	bind_text(st, 1, j->msg_id);
	return sql_done(sp, st);
}

static int
exec_job(struct spool *sp, struct job *j)
{
	switch (j->kind) {
	case JOB_COMMIT:
		return exec_commit(sp, j);
	case JOB_BODY:
		return exec_body(sp, j);
	case JOB_RESULT:
		return exec_result(sp, j);
	case JOB_QUERY:
		return exec_query(sp, j);
	case JOB_ADMIN:
		return exec_admin(sp, j);
	case JOB_DMARC_ADD:
		return dmarc_insert(sp, j->rows);
	case JOB_DMARC_LOAD:
		return exec_dmarc_load(sp, j);
	case JOB_DMARC_DELETE:
		return dmarc_delete(sp, j->ids, j->nrows);
	}
	return SQLITE_MISUSE;
}

/* Make spilled bodies durable before the commit that references them. */
static void
writer_sync_bodies(struct spool *sp, struct job *list)
{
	int any = 0;

	for (struct job *j = list; j; j = j->next) {
		if (j->kind != JOB_COMMIT || j->msg->body_fd < 0)
			continue;
		if (fdatasync(j->msg->body_fd) < 0) {
			log_err("spool: fdatasync of body %s: %s", j->msg->id,
				strerror(errno));
			j->err = errno == ENOSPC ? SPOOL_E_FULL : SPOOL_E_IO;
			writer_fail(sp, "fdatasync of a body file");
		}
		any = 1;
	}
	if (any && fsync(sp->bodydir_fd) < 0) {
		log_err("spool: fsync of %s: %s", sp->bodydir, strerror(errno));
		for (struct job *j = list; j; j = j->next)
			if (j->kind == JOB_COMMIT && j->msg->body_fd >= 0)
				j->err = SPOOL_E_IO;
		writer_fail(sp, "fsync of the body directory");
	}
}

/* Fail every job of the group that has no error yet. */
static void
group_fail(struct job *list, int err)
{
	for (struct job *j = list; j; j = j->next)
		if (!j->err)
			j->err = err;
}

/*
 * Run one group in one transaction. A job whose statements fail is
 * rolled back alone, unless SQLite reports an I/O error or a full disk:
 * then, as after a failed fsync or COMMIT, the whole group fails, the
 * spool is marked failed and no later group touches the database.
 */
static void
writer_run_group(struct spool *sp, struct job *list)
{
	int rc;
	sqlite3_int64 changes;

	if (sp->failed) {
		group_fail(list, SPOOL_E_IO);
		return;
	}
	writer_sync_bodies(sp, list);
	if (sp->failed) {
		group_fail(list, SPOOL_E_IO);
		return;
	}
	changes = sqlite3_total_changes64(sp->db);
	if ((rc = sql_run(sp, "BEGIN IMMEDIATE")) != SQLITE_OK) {
		group_fail(list, sql_err(rc));
		if (sql_fatal(rc))
			writer_fail(sp, "BEGIN");
		return;
	}
	for (struct job *j = list; j; j = j->next) {
		if (j->err)
			continue;
		sql_run(sp, "SAVEPOINT job");
		rc = exec_job(sp, j);
		if (rc != SQLITE_OK) {
			log_err("spool: job failed: %s", sqlite3_errstr(rc));
			j->err = sql_err(rc);
			if (sql_fatal(rc)) {
				if (!sqlite3_get_autocommit(sp->db))
					sql_run(sp, "ROLLBACK");
				group_fail(list, j->err);
				writer_fail(sp, "a statement");
				return;
			}
			sql_run(sp, "ROLLBACK TO job");
		}
		sql_run(sp, "RELEASE job");
	}
	rc = sql_run(sp, "COMMIT");
	if (rc != SQLITE_OK) {
		/* SQLite may have rolled back already (SQLITE_FULL does) */
		if (!sqlite3_get_autocommit(sp->db))
			sql_run(sp, "ROLLBACK");
		group_fail(list, sql_err(rc));
		if (sql_fatal(rc))
			writer_fail(sp, "COMMIT");
		return;
	}
	/* commits that wrote (and so synced the WAL); reads are not counted */
	if (sqlite3_total_changes64(sp->db) != changes)
		sp->commits++;
	for (struct job *j = list; j; j = j->next) {
		char path[PATH_MAX];
		if (j->err || !j->unlink_body)
			continue;
		snprintf(path, sizeof(path), "%s/%s", sp->bodydir,
			 j->kind == JOB_ADMIN ? j->msg_id : j->res->msg);
		unlink(path);
	}
}

/* Hand finished jobs (list may be NULL: a failure to report) back. */
static void
writer_hand_back(struct spool *sp, struct job *list)
{
	uint64_t one = 1;
	struct job *tail = list;

	while (tail && tail->next)
		tail = tail->next;
	pthread_mutex_lock(&sp->lock);
	if (list && sp->done_tail)
		sp->done_tail->next = list;
	else if (list)
		sp->done = list;
	if (list)
		sp->done_tail = tail;
	pthread_mutex_unlock(&sp->lock);
	if (write(sp->efd, &one, sizeof(one)) < 0)
		log_err("spool: eventfd write: %s", strerror(errno));
}

/* WAL size from the commit hook (writer thread only). */
static int
writer_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct spool *sp = arg;

	sp->wal_frames = frames;
	return SQLITE_OK;
}

/*
 * Checkpoints are the writer's own (DESIGN §7): passive once the WAL
 * passes SPOOL_WAL_PASSIVE frames after a commit (postponed while jobs
 * wait, up to 4× that size, so a checkpoint's fsyncs do not sit in
 * front of a session's commit), truncate when idle,
 * and a warning when it grows past SPOOL_WAL_ALARM (a reader or a failing
 * disk is keeping it from being checkpointed).
 */
static void
writer_checkpoint(struct spool *sp, int idle)
{
	int logf = 0, done = 0, rc;

	if (sp->wal_frames == 0 || sp->failed)
		return;
	if (!idle && sp->wal_frames < SPOOL_WAL_PASSIVE)
		return;
	if (!idle && sp->wal_frames < 4 * SPOOL_WAL_PASSIVE) {
		/* jobs are waiting: they go first, the checkpoint later */
		int busy;
		pthread_mutex_lock(&sp->lock);
		busy = sp->pending != NULL;
		pthread_mutex_unlock(&sp->lock);
		if (busy)
			return;
	}
	if (sp->wal_frames > SPOOL_WAL_ALARM)
		log_warn("spool: write-ahead log at %d frames", sp->wal_frames);
	rc = sqlite3_wal_checkpoint_v2(sp->db, NULL,
				       idle ? SQLITE_CHECKPOINT_TRUNCATE
					    : SQLITE_CHECKPOINT_PASSIVE,
				       &logf, &done);
	if (sql_fatal(rc)) {
		/* a later checkpoint would trust the failed fsync */
		log_err("spool: checkpoint: %s", sqlite3_errstr(rc));
		writer_fail(sp, "a checkpoint");
		writer_hand_back(sp, NULL);
		return;
	}
	if (rc == SQLITE_OK && (idle || logf == done))
		sp->wal_frames = 0;
}

static void
ts_add_ms(struct timespec *t, long ms)
{
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static int
ts_reached(const struct timespec *now, const struct timespec *t)
{
	return now->tv_sec > t->tv_sec ||
	       (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

/* Does the group write anything? (A group of reads commits nothing.) */
static int
group_writes(const struct job *list)
{
	for (; list; list = list->next)
		if (list->kind == JOB_COMMIT || list->kind == JOB_ADMIN)
			return 1;
	return 0;
}

/*
 * Take the next group (lock held). Waiting delivery results ride along
 * with any group that writes, or go alone once they are due; they go
 * first, having been submitted before the urgent jobs now pending.
 */
static struct job *
writer_take(struct spool *sp, int lazy_due)
{
	struct job *list = sp->pending;

	sp->pending = sp->pending_tail = NULL;
	if (sp->lazy && (lazy_due || group_writes(list))) {
		sp->lazy_tail->next = list;
		list = sp->lazy;
		sp->lazy = sp->lazy_tail = NULL;
		sp->nlazy = 0;
		sp->lazy_due = 0;
	}
	return list;
}

/*
 * Wait for work (lock held). Returns what to take: WAIT_WORK (urgent
 * jobs pending or stopping), WAIT_LAZY (delivery results are due: the
 * event loop's timer says so, or SPOOL_LAZY_MAX wait) or WAIT_IDLE
 * (nothing for SPOOL_IDLE_S). The deadline of waiting results is kept
 * by the event loop, so a result does not wake this thread just to
 * start a timer.
 */
enum writer_wait { WAIT_WORK, WAIT_LAZY, WAIT_IDLE };

static enum writer_wait
writer_wait(struct spool *sp)
{
	struct timespec now, idle;

	clock_gettime(CLOCK_MONOTONIC, &idle);
	idle.tv_sec += SPOOL_IDLE_S;
	for (;;) {
		if (sp->pending || sp->stop)
			return WAIT_WORK;
		if (sp->lazy && (sp->lazy_due || sp->nlazy >= SPOOL_LAZY_MAX))
			return WAIT_LAZY;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (ts_reached(&now, &idle)) {
			if (sp->lazy == NULL)
				return WAIT_IDLE;
			/* not idle: results wait for the loop's timer */
			idle = now;
			idle.tv_sec += SPOOL_IDLE_S;
		}
		pthread_cond_timedwait(&sp->cond, &sp->lock, &idle);
	}
}

static void *
writer_main(void *arg)
{
	struct spool *sp = arg;

	for (;;) {
		struct job *list;
		enum writer_wait w;
		int stop;

		pthread_mutex_lock(&sp->lock);
		w = writer_wait(sp);
		stop = sp->stop;
		list = writer_take(sp, w == WAIT_LAZY || stop);
		pthread_mutex_unlock(&sp->lock);
		if (list == NULL && stop)
			break;
		if (list == NULL) {
			if (w == WAIT_IDLE)
				writer_checkpoint(sp, 1);
			continue;
		}
		writer_run_group(sp, list);
		writer_hand_back(sp, list);
		writer_checkpoint(sp, 0);
	}
	return NULL;
}

/* ---- event loop side ------------------------------------------------ */

static void
job_finish(struct job *j)
{
	switch (j->kind) {
	case JOB_COMMIT:
		j->commit_cb(j->arg, j->err, j->msg);
		break;
	case JOB_BODY:
		j->body_cb(j->arg, j->err, j->body_fd, j->prepend.data,
			   j->prepend.len, &j->info);
		if (j->body_fd >= 0)
			close(j->body_fd);
		buf_free(&j->prepend);
		break;
	case JOB_RESULT:
		j->result_cb(j->arg, j->err, j->res);
		break;
	case JOB_QUERY:
		j->query_cb(j->arg, j->err, &j->out);
		buf_free(&j->out);
		break;
	case JOB_ADMIN:
		j->admin_cb(j->arg, j->err);
		break;
	case JOB_DMARC_ADD:
	case JOB_DMARC_DELETE:
		if (j->err)
			log_err("spool: DMARC report rows not %s",
				j->kind == JOB_DMARC_ADD ? "stored"
							 : "deleted");
		xfree(j->rows);
		xfree(j->ids);
		break;
	case JOB_DMARC_LOAD:
		j->dmarc_cb(j->arg, j->err, j->rows, j->ids,
			    j->err ? 0 : j->nrows);
		break;
	}
}

static void spool_msg_free(struct spool_msg *m);

static void
spool_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	struct job *list, *next;
	uint64_t v;

	if (read(sp->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_err("spool: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&sp->lock);
	list = sp->done;
	sp->done = sp->done_tail = NULL;
	pthread_mutex_unlock(&sp->lock);
	for (; list; list = next) {
		next = list->next;
		job_finish(list);
		/* a message whose commit failed leaves no body file behind */
		if (list->kind == JOB_COMMIT && list->err)
			spool_msg_discard(sp, list->msg);
		else if (list->kind == JOB_COMMIT)
			spool_msg_free(list->msg);
		xfree(list);
	}
	/* every job of the failed group has had its answer: now the owner */
	if (sp->failed && !sp->fail_reported && sp->on_fail != NULL) {
		sp->fail_reported = 1;
		sp->on_fail(sp->fail_arg);
	}
}

static void
spool_arm_lazy(struct spool *sp, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(sp->lazy_ev, &tv);
}

/* The lazy deadline (event loop): due now, or later for a newer batch. */
static void
spool_on_lazy(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	struct timespec now, due;
	long left = -1;
	int wake = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&sp->lock);
	if (sp->lazy != NULL) {
		due = sp->lazy_since;
		ts_add_ms(&due, (long)sp->lazy_ms);
		if (ts_reached(&now, &due))
			wake = sp->lazy_due = 1;
		else
			left = (due.tv_sec - now.tv_sec) * 1000L +
			       (due.tv_nsec - now.tv_nsec) / 1000000L + 1;
	}
	pthread_mutex_unlock(&sp->lock);
	if (left >= 0)
		spool_arm_lazy(sp, left);
	if (wake)
		pthread_cond_signal(&sp->cond);
}

/*
 * Hand a job to the writer. Delivery results are lazy: losing one in a
 * crash means a redelivery (Maildir names make that idempotent), not a
 * loss, so they wait up to SPOOL_LAZY_MS for a group that commits
 * anyway instead of paying for an fsync of their own.
 */
static void
spool_submit(struct spool *sp, struct job *j)
{
	struct job **head, **tail;
	int wake = 1, arm = 0;

	j->next = NULL;
	pthread_mutex_lock(&sp->lock);
	if (j->kind == JOB_RESULT) {
		head = &sp->lazy, tail = &sp->lazy_tail;
		if (sp->nlazy++ == 0) {
			clock_gettime(CLOCK_MONOTONIC, &sp->lazy_since);
			arm = 1;
		}
		/* the loop's timer says when they are due; the writer
		 * must act at once only when the batch is full */
		wake = sp->nlazy >= SPOOL_LAZY_MAX;
	} else {
		head = &sp->pending, tail = &sp->pending_tail;
	}
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
	pthread_mutex_unlock(&sp->lock);
	/* after the unlock: a writer woken while we still held the mutex
	 * would only block on it again (two more context switches) */
	if (wake)
		pthread_cond_signal(&sp->cond);
	/* still armed for results already taken: it re-arms when it fires */
	if (arm && !evtimer_pending(sp->lazy_ev, NULL))
		spool_arm_lazy(sp, sp->lazy_ms);
}

/* Add a column to attempt unless the spool has it already. */
static int
spool_add_column(struct spool *sp, const char *name, const char *alter)
{
	sqlite3_stmt *st = sql_prep(sp, "SELECT count(*) FROM"
					" pragma_table_info('attempt')"
					" WHERE name = ?");
	int have;

	bind_text(st, 1, name);
	have = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
	sql_fin(sp, st);
	if (have)
		return 0;
	return sql_exec(sp, alter) == SQLITE_OK ? 0 : -1;
}

/* Spools made before attempt.repeats existed get the column (1 each);
 * before the structured record (record, record_text: JSON and text,
 * written for a few hours; rec: the packed record written since), NULL:
 * their rows keep what they have and show it as before. */
static int
spool_migrate(struct spool *sp)
{
	if (spool_add_column(sp, "repeats",
			     "ALTER TABLE attempt ADD COLUMN repeats INTEGER"
			     " NOT NULL DEFAULT 1") < 0 ||
	    spool_add_column(sp, "record",
			     "ALTER TABLE attempt ADD COLUMN record TEXT") <
		0 ||
	    spool_add_column(sp, "record_text",
			     "ALTER TABLE attempt ADD COLUMN record_text"
			     " TEXT") < 0 ||
	    spool_add_column(sp, "rec",
			     "ALTER TABLE attempt ADD COLUMN rec BLOB") < 0)
		return -1;
	return 0;
}

/* ---- open / recovery ------------------------------------------------ */

static int
spool_configure_db(struct spool *sp, int unclean)
{
	static const char *const pragmas[] = {
	    "PRAGMA locking_mode = EXCLUSIVE",
	    "PRAGMA auto_vacuum = INCREMENTAL",
	    "PRAGMA secure_delete = FAST",
	    "PRAGMA journal_mode = WAL",
	    "PRAGMA synchronous = FULL",
	    "PRAGMA foreign_keys = ON",
	    "PRAGMA busy_timeout = 0",
	    "PRAGMA wal_autocheckpoint = 0",
	};

	for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++)
		if (sql_exec(sp, pragmas[i]) != SQLITE_OK)
			return -1;
	if (unclean) {
		sqlite3_stmt *st = sql_prep(sp, "PRAGMA quick_check");
		if (sqlite3_step(st) != SQLITE_ROW ||
		    strcmp(col_text(st, 0), "ok") != 0) {
			log_err("spool: quick_check failed: %s",
				col_text(st, 0));
			sql_fin(sp, st);
			return -1;
		}
		sql_fin(sp, st);
		log_info("spool: unclean stop detected; quick_check ok");
	}
	if (sql_exec(sp, spool_schema) != SQLITE_OK)
		return -1;
	return spool_migrate(sp);
}

static int
spool_has_body(struct spool *sp, const char *id)
{
	sqlite3_stmt *st =
	    sql_prep(sp, "SELECT 1 FROM msg WHERE id = ? AND body_file = 1");
	int found;

	bind_text(st, 1, id);
	found = sqlite3_step(st) == SQLITE_ROW;
	sql_fin(sp, st);
	return found;
}

/* Remove body files of messages that never committed. */
static void
spool_recover_bodies(struct spool *sp)
{
	DIR *d = opendir(sp->bodydir);
	struct dirent *e;
	int removed = 0;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (!spool_has_body(sp, e->d_name)) {
			unlinkat(sp->bodydir_fd, e->d_name, 0);
			removed++;
		}
	}
	closedir(d);
	if (removed)
		log_info("spool: removed %d partial message(s)", removed);
}

static int
spool_marker(struct spool *sp, int create)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/running", sp->dir);
	if (!create)
		return unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == EEXIST ? 1 : -1;
}

struct spool *
spool_open(const char *dir, uint64_t inline_max, struct event_base *base,
	   char *err, size_t errlen)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));
	char dbpath[PATH_MAX];
	int unclean;

	snprintf(sp->dir, sizeof(sp->dir), "%s", dir);
	snprintf(sp->bodydir, sizeof(sp->bodydir), "%s/body", dir);
	snprintf(dbpath, sizeof(dbpath), "%s/queue.db", dir);
	sp->inline_max = inline_max;
	sp->bounce_max = SPOOL_BOUNCE_MAX_DEFAULT;
	sp->lazy_ms = SPOOL_LAZY_MS;
	if (mkdir_p(sp->bodydir, 0700) < 0 ||
	    (sp->bodydir_fd =
		 open(sp->bodydir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "spool %s: %s", sp->bodydir,
			 strerror(errno));
		xfree(sp);
		return NULL;
	}
	unclean = spool_marker(sp, 1) == 1;
	if (sqlite3_open_v2(dbpath, &sp->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK ||
	    spool_configure_db(sp, unclean) < 0) {
		snprintf(err, errlen, "spool %s: %s", dbpath,
			 sp->db ? sqlite3_errmsg(sp->db) : "cannot open");
		sql_fin_all(sp);
		sqlite3_close(sp->db);
		close(sp->bodydir_fd);
		xfree(sp);
		return NULL;
	}
	spool_recover_bodies(sp);
	sqlite3_wal_hook(sp->db, writer_wal_hook, sp);
	pthread_mutex_init(&sp->lock, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&sp->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	sp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	sp->ev =
	    event_new(base, sp->efd, EV_READ | EV_PERSIST, spool_on_done, sp);
	event_add(sp->ev, NULL);
	sp->lazy_ev = evtimer_new(base, spool_on_lazy, sp);
	if (pthread_create(&sp->thread, NULL, writer_main, sp) != 0)
		log_fatal("spool: cannot start writer thread");
	return sp;
}

void
spool_close(struct spool *sp)
{
	pthread_mutex_lock(&sp->lock);
	sp->stop = 1;
	pthread_mutex_unlock(&sp->lock);
	pthread_cond_signal(&sp->cond);
	pthread_join(sp->thread, NULL);
	spool_on_done(sp->efd, EV_READ, sp);
	sql_fin_all(sp);
	if (!sp->failed) {
		sql_exec(sp, "PRAGMA wal_checkpoint(TRUNCATE)");
		sqlite3_close(sp->db);
		spool_marker(sp, 0);
	} else {
		/* no checkpoint on close either: it would fsync again and
		 * trust it; the marker stays, quick_check at next open */
		sqlite3_db_config(sp->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
				  NULL);
		sqlite3_close(sp->db);
	}
	event_free(sp->ev);
	event_free(sp->lazy_ev);
	close(sp->efd);
	close(sp->bodydir_fd);
	xfree(sp);
}

int
spool_load_pending(struct spool *sp, spool_pending_cb *each, void *arg)
{
	sqlite3_stmt *st = sql_prep(
	    sp, "SELECT r.id, r.msg, m.sender, r.addr, r.state,"
		" r.attempts, r.next_attempt, m.arrival, m.held, r.crashes,"
		" r.warned, r.orig, r.orcpt, r.notify FROM rcpt r"
		" JOIN msg m ON m.id = r.msg"
		" WHERE r.state IN (0, 1) ORDER BY r.next_attempt");
	int n = 0;

	/* the writer thread is idle at start-up: safe to use the handle */
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct spool_pending p = {0};
		p.rcpt_id = (uint64_t)sqlite3_column_int64(st, 0);
		snprintf(p.msg, sizeof(p.msg), "%s", col_text(st, 1));
		p.sender = col_text(st, 2);
		p.addr = col_text(st, 3);
		p.state = sqlite3_column_int(st, 4);
		p.attempts = (unsigned)sqlite3_column_int(st, 5);
		p.next_attempt = (time_t)sqlite3_column_int64(st, 6);
		p.arrival = (time_t)sqlite3_column_int64(st, 7);
		p.held = sqlite3_column_int(st, 8);
		p.crashes = (unsigned)sqlite3_column_int(st, 9);
		p.warned = sqlite3_column_int(st, 10);
		p.orig = col_text(st, 11);
		p.orcpt = col_text(st, 12);
		p.notify = (unsigned)sqlite3_column_int(st, 13);
		each(arg, &p);
		n++;
	}
	sql_fin(sp, st);
	return n;
}

/* ---- messages being received ---------------------------------------- */

struct spool_msg *
spool_msg_new(struct spool *sp, time_t arrival)
{
	struct spool_msg *m = xcalloc(1, sizeof(*m));

	spool_make_id(sp, m->id);
	m->arrival = arrival;
	m->body_fd = -1;
	buf_init(&m->prepend, 64 * 1024);
	buf_init(&m->inline_body, sp->inline_max);
	return m;
}

int
spool_msg_add_rcpt(struct spool_msg *m, const char *addr, const char *orig,
		   const char *orcpt, unsigned notify)
{
	struct spool_rcpt *r;

	m->rcpts = xrealloc(m->rcpts, (m->nrcpts + 1) * sizeof(*m->rcpts));
	r = &m->rcpts[m->nrcpts++];
	r->id = 0;
	r->addr = xstrdup(addr);
	r->orig = orig ? xstrdup(orig) : NULL;
	r->orcpt = orcpt && *orcpt ? xstrdup(orcpt) : NULL;
	r->notify = notify;
	return 0;
}

void
spool_msg_add_expanded(struct spool_msg *m, const char *alias,
		       const char *orcpt, size_t count)
{
	struct spool_expanded *x;

	m->expanded =
	    xrealloc(m->expanded, (m->nexpanded + 1) * sizeof(*m->expanded));
	x = &m->expanded[m->nexpanded++];
	memset(x, 0, sizeof(*x));
	x->alias = xstrdup(alias);
	x->orcpt = orcpt && *orcpt ? xstrdup(orcpt) : NULL;
	x->count = count;
}

static int
spool_msg_spill(struct spool *sp, struct spool_msg *m)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", sp->bodydir, m->id);
	m->body_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (m->body_fd < 0)
		return -1;
	if (write_full(m->body_fd,
		       m->inline_body.data ? m->inline_body.data : "",
		       m->inline_body.len) < 0)
		return -1;
	buf_free(&m->inline_body);
	return 0;
}

int
spool_msg_write(struct spool *sp, struct spool_msg *m, const void *p, size_t n)
{
	if (m->write_errno) {
		errno = m->write_errno;
		return -1;
	}
	m->size += n;
	if (m->body_fd < 0 && buf_add(&m->inline_body, p, n) == 0)
		return 0;
	if ((m->body_fd < 0 && spool_msg_spill(sp, m) < 0) ||
	    write_full(m->body_fd, p, n) < 0) {
		m->write_errno = errno ? errno : EIO;
		return -1;
	}
	return 0;
}

static void
spool_msg_free(struct spool_msg *m)
{
	if (m == NULL)
		return;
	if (m->body_fd >= 0)
		close(m->body_fd);
	for (size_t i = 0; i < m->nrcpts; i++) {
		xfree(m->rcpts[i].addr);
		xfree(m->rcpts[i].orig);
		xfree(m->rcpts[i].orcpt);
	}
	xfree(m->rcpts);
	xfree(m->sender);
	xfree(m->envid);
	xfree(m->client);
	xfree(m->helo);
	buf_free(&m->prepend);
	buf_free(&m->inline_body);
	xfree(m->dmarc);
	xfree(m->dmarc_done);
	for (size_t i = 0; i < m->nexpanded; i++) {
		xfree(m->expanded[i].alias);
		xfree(m->expanded[i].orcpt);
	}
	xfree(m->expanded);
	xfree(m->report_to);
	xfree(m);
}

void
spool_msg_discard(struct spool *sp, struct spool_msg *m)
{
	char path[PATH_MAX];

	if (m->body_fd >= 0) {
		snprintf(path, sizeof(path), "%s/%s", sp->bodydir, m->id);
		unlink(path);
	}
	spool_msg_free(m);
}

void
spool_msg_commit(struct spool *sp, struct spool_msg *m, spool_commit_cb *cb,
		 void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = JOB_COMMIT;
	j->msg = m;
	j->commit_cb = cb;
	j->arg = arg;
	spool_submit(sp, j);
}

void
spool_load_body(struct spool *sp, const char *msg_id, spool_body_cb *cb,
		void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = JOB_BODY;
	snprintf(j->msg_id, sizeof(j->msg_id), "%s", msg_id);
	j->body_fd = -1;
	j->body_cb = cb;
	j->arg = arg;
	spool_submit(sp, j);
}

void
spool_record(struct spool *sp, struct spool_result *r, spool_result_cb *cb,
	     void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = JOB_RESULT;
	j->res = r;
	j->result_cb = cb;
	j->arg = arg;
	spool_submit(sp, j);
}

void
spool_query(struct spool *sp, enum spool_query q, const char *id, int json,
	    spool_query_cb *cb, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = JOB_QUERY;
	j->q = q;
	j->json = json;
	if (id)
		snprintf(j->msg_id, sizeof(j->msg_id), "%s", id);
	j->query_cb = cb;
	j->arg = arg;
	spool_submit(sp, j);
}

void
spool_admin(struct spool *sp, enum spool_admin op, const char *id,
	    spool_admin_cb *cb, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = JOB_ADMIN;
	j->admin = op;
	snprintf(j->msg_id, sizeof(j->msg_id), "%s", id);
	j->admin_cb = cb;
	j->arg = arg;
	spool_submit(sp, j);
}

void
spool_set_bounce_max(struct spool *sp, uint64_t octets)
{
	sp->bounce_max = octets;
}

void
spool_set_lazy_ms(struct spool *sp, unsigned ms)
{
	pthread_mutex_lock(&sp->lock);
	sp->lazy_ms = ms;
	pthread_mutex_unlock(&sp->lock);
}

void
spool_dmarc_add(struct spool *sp, struct dmarc_rep_row *row)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = JOB_DMARC_ADD;
	j->rows = row;
	spool_submit(sp, j);
}

void
spool_dmarc_load(struct spool *sp, int64_t upto, size_t max, spool_dmarc_cb *cb,
		 void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = JOB_DMARC_LOAD;
	j->upto = upto;
	j->maxrows = max;
	j->dmarc_cb = cb;
	j->arg = arg;
	spool_submit(sp, j);
}

void
spool_dmarc_delete(struct spool *sp, int64_t *ids, size_t n)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = JOB_DMARC_DELETE;
	j->ids = ids;
	j->nrows = n;
	spool_submit(sp, j);
}

void
spool_set_on_fail(struct spool *sp, spool_fail_cb *cb, void *arg)
{
	sp->on_fail = cb;
	sp->fail_arg = arg;
}

int
spool_failed(const struct spool *sp)
{
	return sp->failed;
}

uint64_t
spool_commits(const struct spool *sp)
{
	return sp->commits;
}
