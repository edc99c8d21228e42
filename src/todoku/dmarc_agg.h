/*
 * dmarc_agg — DMARC aggregate reporting in the queue role, and the
 * Q_DMARC row encoding shared by smtp-in and the queue.
 *
 * What it does: on the report timer ([queue] dmarc-report-interval) or
 * on `todoku queue dmarc-report` it loads the stored rows (spool table
 * dmarc_row), groups them by policy domain, and for every rua address
 * of a group checks the external destination (RFC 9990 §3 / RFC 7489
 * §7.1: an address outside the policy domain's Organizational Domain
 * needs a v=DMARC1 TXT record at <policy domain>._report._dmarc.<rua
 * domain>, asked through the lookup role), honours the URI's size limit,
 * builds the report (mail/dmarc_report.c) and queues it as an ordinary
 * message from dmarc-report-from; the rows go away in that message's
 * commit. Rows of a group that nobody may receive are deleted with a
 * log line saying why.
 *
 * What it owns: one run at a time (rows, pending DNS questions); the
 * spool, the lookup channel and the clock belong to the queue role.
 *
 * What it never does: send to <> or from <> (the reporting address
 * gets the bounces), parse DNS itself beyond mail/dns_answer, block.
 */
#ifndef TODOKU_DMARC_AGG_H
#define TODOKU_DMARC_AGG_H

#include <stdint.h>

#include "lib/buf.h"
#include "lib/ipc.h"
#include "mail/dmarc_report.h"

struct spool;
struct spool_msg;
struct conf;

#define DMARC_AGG_ROWS_MAX 4096	     /* rows per run; the rest waits a run */
#define DMARC_AGG_KEEP_S (7 * 86400) /* rows kept across DNS tempfails */

/* The Q_DMARC payload (proto.h). get: -1 when the payload is short. */
void dmarc_agg_put(struct ipc_out *o, const struct dmarc_rep_row *row);
int dmarc_agg_get(struct ipc_in *in, struct dmarc_rep_row *row);

struct dmarc_agg_env {
	struct spool *spool;
	const struct conf *(*conf)(void *arg); /* the current one */
	struct ipc *(*lookup)(void *arg);      /* NULL while it is down */
	void (*queued)(void *arg, struct spool_msg *m); /* committed */
	void *arg;
};

/* A run ended; summary: one line per policy domain (what happened). */
typedef void dmarc_agg_done_cb(void *arg, const struct buf *summary);

struct dmarc_agg;

struct dmarc_agg *dmarc_agg_new(const struct dmarc_agg_env *env);
void dmarc_agg_free(struct dmarc_agg *a);
/* Report every row evaluated up to now; -1 while a run is going on. */
int dmarc_agg_run(struct dmarc_agg *a, int64_t now, dmarc_agg_done_cb *cb,
		  void *arg);
/* D_ANSWER from lookup (id as sent in D_QUERY). */
void dmarc_agg_answer(struct dmarc_agg *a, uint64_t id, struct ipc_in *in);
/* The lookup role went away: open questions become temporary failures. */
void dmarc_agg_lookup_lost(struct dmarc_agg *a);

#endif
