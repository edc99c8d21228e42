/*
 * local — the local delivery role: writes messages into Maildirs.
 *
 * It receives L_DELIVER from queue (the Maildir path already resolved
 * from configuration, the prefix headers, and a read-only body fd),
 * delivers with maildir_deliver() and answers L_RESULT. It runs as the
 * mail-store owner and has no network access and no spool access.
 * Deliveries are done one at a time, in order; each ends with fsyncs,
 * which is why this is its own process and not part of an event loop
 * that serves clients.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "mail/conf.h"
#include "todoku/maildir.h"
#include "todoku/proto.h"
#include "todoku/role.h"

struct local {
	struct role_env *env;
	struct ipc *master;
	struct ipc *queue;
};

static void
local_deliver(struct local *l, const struct ipc_hdr *h, struct ipc_in *in,
	      int fd)
{
	const char *qid = ipc_get_str(in);
	uint64_t arrival = ipc_get_u64(in);
	const char *rcpt = ipc_get_str(in);
	const char *mailbox = ipc_get_str(in), *prefix = ipc_get_str(in);
	char err[512] = "";
	char key[128];
	char where[600];
	struct ipc_out o;
	enum maildir_result r;

	ipc_end(in);
	if (fd < 0)
		log_panic("local: delivery without a body fd");
	/* one name per (message, recipient): a redelivery after a crash
	 * finds the earlier copy instead of writing a second one */
	snprintf(key, sizeof(key), "%llu.Q%sR%llu", (unsigned long long)arrival,
		 qid, (unsigned long long)h->id);
	r = maildir_deliver_once(mailbox, key, prefix, strlen(prefix), fd, err,
				 sizeof(err));
	close(fd);
	snprintf(where, sizeof(where), "maildir %s", mailbox);
	if (r != MAILDIR_OK)
		log_warn("%s: to=<%s>: %s", qid, rcpt, err);
	ipc_out_init(&o);
	ipc_put_u8(&o, (uint8_t)r);
	ipc_put_str(&o, r == MAILDIR_OK	    ? "2.0.0"
			: r == MAILDIR_TEMP ? "4.3.0"
					    : "5.2.0");
	ipc_put_str(&o, where);
	ipc_put_str(&o, r == MAILDIR_OK ? "delivered to maildir" : err);
	ipc_send(l->queue, L_RESULT, h->id, -1, &o);
	ipc_out_free(&o);
}

static void
local_queue_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		int fd, void *arg)
{
	if (h->type != L_DELIVER)
		log_panic("local: unexpected message %u", h->type);
	local_deliver(arg, h, in, fd);
}

static void
local_queue_close(struct ipc *ipc, void *arg)
{
	struct local *l = arg;

	log_info("queue went away; waiting for it to come back");
	ipc_free(l->queue);
	l->queue = NULL;
}

static void
local_master_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		 int fd, void *arg)
{
	struct local *l = arg;

	switch (h->type) {
	case M_PEER:
		ipc_get_u8(in);
		ipc_get_u32(in);
		ipc_end(in);
		if (l->queue)
			ipc_free(l->queue);
		l->queue = ipc_new(l->env->base, fd, local_queue_msg,
				   local_queue_close, l);
		return;
	case M_RELOAD: {
		struct conf *nc = role_reload_conf(l->env, in);
		if (nc != NULL) {
			conf_free(l->env->conf);
			l->env->conf = nc;
			log_set_level(nc->log_level);
		}
		break;
	}
	case M_SHUTDOWN:
		ipc_end(in);
		if (l->queue)
			ipc_flush(l->queue);
		exit(0);
	default:
		log_panic("local: unexpected master message %u", h->type);
	}
	if (fd >= 0)
		close(fd);
}

static void
local_master_close(struct ipc *ipc, void *arg)
{
	exit(0);
}

int
local_main(struct role_env *env)
{
	static struct local l;

	l.env = env;
	l.master = ipc_new(env->base, ROLE_MASTER_FD, local_master_msg,
			   local_master_close, &l);
	event_base_dispatch(env->base);
	return 0;
}
