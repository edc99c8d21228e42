/*
 * master — see master.h.
 */
#include "todoku/master.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ftw.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mail/conf.h"
#include "todoku/proto.h"
#include "todoku/role.h"

#define MASTER_MAX_CHILDREN 140
#define MASTER_STOP_GRACE_S 30

struct child {
	enum role_id role;
	unsigned instance;
	pid_t pid;
	struct ipc *ipc;
	uint64_t started_ms;
	unsigned backoff_s;
	struct event *restart_ev;
};

struct master {
	struct event_base *base;
	struct conf *conf;
	const char *config_path;
	char exe[PATH_MAX];
	int *listen_fds;
	char **listen_names;
	size_t nlisten;
	struct child children[MASTER_MAX_CHILDREN];
	size_t nchildren;
	int stopping;
	struct event *stop_timer;
};

static void master_spawn(struct master *m, struct child *c);

static int
master_bind_one(const struct conf_listen *l)
{
	int one = 1;
	int fd = socket(l->ss.ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->ss, l->sslen) < 0 ||
	    listen(fd, 512) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void
master_bind_all(struct master *m)
{
	m->nlisten = m->conf->nlistens;
	m->listen_fds = xcalloc(m->nlisten, sizeof(int));
	m->listen_names = xcalloc(m->nlisten, sizeof(char *));
	for (size_t i = 0; i < m->nlisten; i++) {
		const struct conf_listen *l = &m->conf->listens[i];
		m->listen_fds[i] = master_bind_one(l);
		if (m->listen_fds[i] < 0)
			log_fatal("cannot listen on %s ([listen \"%s\"]): %s",
				  l->address, l->name, strerror(errno));
		m->listen_names[i] = xstrdup(l->name);
		log_info("listening on %s ([listen \"%s\"])", l->address,
			 l->name);
	}
}

static uid_t chown_uid;
static gid_t chown_gid;

static int
master_chown_one(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	if (st->st_uid != chown_uid && lchown(path, chown_uid, chown_gid) < 0)
		log_warn("cannot chown %s: %s", path, strerror(errno));
	return 0;
}

/*
 * Create dir (and parents) and hand it to its role's user when root.
 * A directory owned by someone else (an older installation, or another
 * [server] *-user) is taken over with everything in it, once.
 */
static void
master_prepare_dir(const char *dir, uid_t uid, gid_t gid, int chown_it)
{
	struct stat st;

	if (mkdir_p(dir, 0755) < 0)
		log_fatal("cannot create %s: %s", dir, strerror(errno));
	if (!chown_it)
		return;
	if (stat(dir, &st) < 0)
		log_fatal("cannot stat %s: %s", dir, strerror(errno));
	if (st.st_uid == uid)
		return;
	log_info("giving %s to uid %u", dir, (unsigned)uid);
	chown_uid = uid;
	chown_gid = gid;
	if (nftw(dir, master_chown_one, 32, FTW_PHYS) < 0)
		log_fatal("cannot chown %s: %s", dir, strerror(errno));
}

static void
master_need_user(const char *name, uid_t *uid, gid_t *gid)
{
	if (role_user(name, uid, gid) < 0)
		log_fatal("user \"%s\" does not exist (create it with "
			  "`useradd --system --no-create-home %s`, run "
			  "scripts/deps.sh, or change [server] in the "
			  "configuration)",
			  name, name);
}

/*
 * DKIM/ARC private keys are for the keys role alone (DESIGN §7): each
 * key file must belong to the keys role's user and give nobody else
 * any access. Checked before any role starts, so a key that is too
 * open stops the start-up with the fix, instead of mail going out
 * unsigned.
 */
static void
master_check_keys(struct master *m, int root)
{
	uid_t kuid = geteuid();
	gid_t kgid;
	struct stat st;
	char err[CONF_ERR_MAX];

	if (root)
		master_need_user(m->conf->keys_user, &kuid, &kgid);
	if (conf_check_key_files(m->conf, err, sizeof(err)) < 0)
		log_fatal("%s", err);
	for (size_t i = 0; i < m->conf->ndkim; i++) {
		const char *f = m->conf->dkim[i].key_file;
		if (stat(f, &st) < 0)
			log_fatal("[dkim \"%s\"] key %s: %s",
				  m->conf->dkim[i].domain, f, strerror(errno));
		if (st.st_mode & 077)
			log_fatal("[dkim \"%s\"] key %s can be read by other "
				  "users (mode %04o): run `chmod 600 %s`",
				  m->conf->dkim[i].domain, f,
				  (unsigned)(st.st_mode & 07777), f);
		if (st.st_uid != kuid)
			log_fatal("[dkim \"%s\"] key %s belongs to uid %u, "
				  "but the keys role runs as uid %u: run "
				  "`chown %s %s`",
				  m->conf->dkim[i].domain, f,
				  (unsigned)st.st_uid, (unsigned)kuid,
				  root ? m->conf->keys_user : "$(id -un)", f);
	}
}

/* The spool belongs to the queue role's user, mailboxes to local's. */
static void
master_prepare_dirs(struct master *m)
{
	uid_t quid = 0, muid = 0, uid = 0;
	gid_t qgid = 0, mgid = 0, gid = 0;
	int root = geteuid() == 0;

	if (root) {
		master_need_user(m->conf->user, &uid, &gid);
		master_need_user(m->conf->queue_user, &quid, &qgid);
		master_need_user(m->conf->mail_user, &muid, &mgid);
		master_need_user(m->conf->keys_user, &uid, &gid);
	}
	master_check_keys(m, root);
	master_prepare_dir(m->conf->spool, quid, qgid, root);
	chmod(m->conf->spool, 0750);
	for (size_t i = 0; i < m->conf->ndomains; i++)
		master_prepare_dir(m->conf->domains[i].mailboxes, muid, mgid,
				   root);
}

static void
master_on_child_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		    int fd, void *arg)
{
	struct child *c = arg;

	log_warn("unexpected message %u from %s", h->type, role_name(c->role));
	if (fd >= 0)
		close(fd);
}

static void
master_on_child_close(struct ipc *ipc, void *arg)
{
	/* the SIGCHLD path reaps and restarts */
}

static struct child *
master_find_role(struct master *m, enum role_id r)
{
	for (size_t i = 0; i < m->nchildren; i++)
		if (m->children[i].role == r && m->children[i].pid > 0)
			return &m->children[i];
	return NULL;
}

static void
master_pair(struct child *a, struct child *b)
{
	struct ipc_out o;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_err("socketpair: %s", strerror(errno));
		return;
	}
	ipc_out_init(&o);
	ipc_put_u8(&o, (uint8_t)b->role);
	ipc_put_u32(&o, b->instance);
	ipc_send(a->ipc, M_PEER, 0, sv[0], &o);
	buf_reset(&o.b);
	ipc_put_u8(&o, (uint8_t)a->role);
	ipc_put_u32(&o, a->instance);
	ipc_send(b->ipc, M_PEER, 0, sv[1], &o);
	ipc_out_free(&o);
	close(sv[0]);
	close(sv[1]);
}

/* Connect a freshly started child to every live peer it talks to. */
static void
master_wire(struct master *m, struct child *c)
{
	struct child *q = master_find_role(m, ROLE_QUEUE);

	if (c->role == ROLE_QUEUE) {
		for (size_t i = 0; i < m->nchildren; i++) {
			struct child *o = &m->children[i];
			if (o->pid > 0 && o->role != ROLE_QUEUE &&
			    o->role != ROLE_KEYS)
				master_pair(c, o);
		}
		return;
	}
	/* keys signs for smtp-in only; it talks to nobody else */
	if (c->role == ROLE_KEYS) {
		for (size_t i = 0; i < m->nchildren; i++) {
			struct child *o = &m->children[i];
			if (o->pid > 0 && o->role == ROLE_SMTP_IN)
				master_pair(c, o);
		}
		return;
	}
	if (c->role == ROLE_SMTP_IN) {
		struct child *k = master_find_role(m, ROLE_KEYS);
		if (k != NULL)
			master_pair(k, c);
	}
	/* smtp-in asks lookup for the DNS of its authentication checks */
	if (c->role == ROLE_LOOKUP) {
		for (size_t i = 0; i < m->nchildren; i++) {
			struct child *o = &m->children[i];
			if (o->pid > 0 && o->role == ROLE_SMTP_IN)
				master_pair(c, o);
		}
	} else if (c->role == ROLE_SMTP_IN) {
		struct child *l = master_find_role(m, ROLE_LOOKUP);
		if (l != NULL)
			master_pair(l, c);
	}
	if (c->role == ROLE_SMTP_IN) {
		for (size_t i = 0; i < m->nlisten; i++) {
			struct ipc_out o;
			ipc_out_init(&o);
			ipc_put_str(&o, m->listen_names[i]);
			ipc_send(c->ipc, M_LISTEN, 0, m->listen_fds[i], &o);
			ipc_out_free(&o);
		}
	}
	if (q != NULL)
		master_pair(q, c);
}

static void
master_exec_child(struct master *m, struct child *c, int fd)
{
	char *argv[6];
	int n = 0;

	if (dup2(fd, ROLE_MASTER_FD) < 0)
		_exit(71);
	closefrom(ROLE_MASTER_FD + 1);
	argv[n++] = (char *)"todoku";
	argv[n++] = (char *)"--role";
	argv[n++] = (char *)role_name(c->role);
	if (m->config_path) {
		argv[n++] = (char *)"-c";
		argv[n++] = (char *)m->config_path;
	}
	argv[n] = NULL;
	execv(m->exe, argv);
	_exit(71);
}

static void
master_spawn(struct master *m, struct child *c)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		log_err("socketpair: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_err("fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		master_exec_child(m, c, sv[1]);
	}
	close(sv[1]);
	c->pid = pid;
	c->started_ms = clock_mono_ms();
	c->ipc = ipc_new(m->base, sv[0], master_on_child_msg,
			 master_on_child_close, c);
	log_info("started %s[%d]", role_name(c->role), (int)pid);
	master_wire(m, c);
}

static struct master *master_global;

static void
master_restart_now(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;

	if (master_global->stopping)
		return;
	master_spawn(master_global, c);
}

static void
master_child_died(struct master *m, struct child *c, int status)
{
	uint64_t ran = clock_mono_ms() - c->started_ms;
	struct timeval tv = {0, 0};

	if (WIFSIGNALED(status))
		log_err("%s[%d] killed by signal %d", role_name(c->role),
			(int)c->pid, WTERMSIG(status));
	else if (!m->stopping || WEXITSTATUS(status) != 0)
		log_err("%s[%d] exited with status %d", role_name(c->role),
			(int)c->pid, WEXITSTATUS(status));
	c->pid = 0;
	ipc_free(c->ipc);
	c->ipc = NULL;
	if (m->stopping)
		return;
	if (ran > 60000)
		c->backoff_s = 0;
	tv.tv_sec = c->backoff_s;
	c->backoff_s = c->backoff_s ? c->backoff_s * 2 : 1;
	if (c->backoff_s > 60)
		c->backoff_s = 60;
	log_info("restarting %s in %ld s", role_name(c->role), (long)tv.tv_sec);
	evtimer_add(c->restart_ev, &tv);
}

static int
master_live_children(struct master *m)
{
	int n = 0;

	for (size_t i = 0; i < m->nchildren; i++)
		n += m->children[i].pid > 0;
	return n;
}

/* Once no queue runs any more, local may stop too. */
static void
master_stop_local(struct master *m)
{
	struct child *l = master_find_role(m, ROLE_LOCAL);

	if (!m->stopping || l == NULL || l->ipc == NULL ||
	    master_find_role(m, ROLE_QUEUE) != NULL)
		return;
	ipc_send(l->ipc, M_SHUTDOWN, 0, -1, NULL);
	ipc_flush(l->ipc);
}

static void
master_on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < m->nchildren; i++) {
			if (m->children[i].pid == pid) {
				master_child_died(m, &m->children[i], status);
				break;
			}
		}
	}
	master_stop_local(m);
	if (m->stopping && master_live_children(m) == 0)
		event_base_loopexit(m->base, NULL);
}

static void
master_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	log_warn("roles did not stop within %d s; killing them",
		 MASTER_STOP_GRACE_S);
	for (size_t i = 0; i < m->nchildren; i++)
		if (m->children[i].pid > 0)
			kill(m->children[i].pid, SIGKILL);
}

static void
master_on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	struct timeval tv = {MASTER_STOP_GRACE_S, 0};

	if (m->stopping)
		return;
	log_info("stopping (signal %d)", (int)sig);
	m->stopping = 1;
	/* local stops after queue (master_stop_local): the queue must not
	 * see local vanish under deliveries it still waits for */
	for (size_t i = 0; i < m->nchildren; i++) {
		struct child *c = &m->children[i];
		evtimer_del(c->restart_ev);
		if (c->pid > 0 && c->ipc != NULL && c->role != ROLE_LOCAL) {
			ipc_send(c->ipc, M_SHUTDOWN, 0, -1, NULL);
			ipc_flush(c->ipc);
		}
	}
	master_stop_local(m);
	m->stop_timer = evtimer_new(m->base, master_stop_timeout, m);
	evtimer_add(m->stop_timer, &tv);
	if (master_live_children(m) == 0)
		event_base_loopexit(m->base, NULL);
}

/* The configuration file's bytes, if it fits in one IPC message. */
static int
master_read_config(const char *path, struct buf *text)
{
	char tmp[8192];
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((r = read(fd, tmp, sizeof(tmp))) > 0) {
		if (buf_add(text, tmp, (size_t)r) < 0) {
			close(fd);
			return -1;
		}
	}
	close(fd);
	return r < 0 ? -1 : 0;
}

/*
 * SIGHUP: validate the file fully; keep the running configuration on
 * error. The roles then parse exactly the bytes validated here (sent
 * with M_RELOAD), so a file rewritten meanwhile cannot split them.
 */
static void
master_on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	char err[CONF_ERR_MAX];
	struct ipc_out o;
	struct buf text;
	struct conf *nc;
	int have_text;

	buf_init(&text, IPC_MAX_PAYLOAD - 64);
	have_text =
	    m->config_path && master_read_config(m->config_path, &text) == 0;
	if (have_text)
		nc = conf_load_text(m->config_path, text.data ? text.data : "",
				    text.len, err, sizeof(err));
	else
		nc = conf_load(m->config_path, err, sizeof(err));
	if (nc == NULL) {
		log_err("reload refused, keeping the running configuration: "
			"%s",
			err);
		buf_free(&text);
		return;
	}
	log_info("configuration reloaded from %s", nc->path);
	conf_free(m->conf);
	m->conf = nc;
	log_set_level(nc->log_level);
	ipc_out_init(&o);
	ipc_put_data(&o, have_text && text.data ? text.data : "",
		     have_text ? text.len : 0);
	for (size_t i = 0; i < m->nchildren; i++)
		if (m->children[i].pid > 0)
			ipc_send(m->children[i].ipc, M_RELOAD, 0, -1, &o);
	ipc_out_free(&o);
	buf_free(&text);
}

static void
master_add_child(struct master *m, enum role_id r, unsigned instance)
{
	struct child *c = &m->children[m->nchildren++];

	c->role = r;
	c->instance = instance;
	c->restart_ev = evtimer_new(m->base, master_restart_now, c);
}

int
master_run(struct conf *conf, const char *config_path)
{
	static struct master m;
	struct event *sigs[5];
	ssize_t n;

	master_global = &m;
	m.conf = conf;
	m.config_path = config_path;
	n = readlink("/proc/self/exe", m.exe, sizeof(m.exe) - 1);
	if (n < 0)
		log_fatal("cannot find own executable: %s", strerror(errno));
	m.exe[n] = '\0';
	signal(SIGPIPE, SIG_IGN);
	m.base = event_base_new();
	/* before the listeners exist: a client (or a supervisor) that sees
	 * the port open may send SIGTERM at once; it is handled when the
	 * loop starts, with every role spawned, never by the default action */
	sigs[0] = evsignal_new(m.base, SIGCHLD, master_on_sigchld, &m);
	sigs[1] = evsignal_new(m.base, SIGTERM, master_on_sigterm, &m);
	sigs[2] = evsignal_new(m.base, SIGINT, master_on_sigterm, &m);
	sigs[3] = evsignal_new(m.base, SIGHUP, master_on_sighup, &m);
	for (int i = 0; i < 4; i++)
		evsignal_add(sigs[i], NULL);
	master_prepare_dirs(&m);
	master_bind_all(&m);

	master_add_child(&m, ROLE_QUEUE, 0);
	master_add_child(&m, ROLE_LOCAL, 0);
	master_add_child(&m, ROLE_LOOKUP, 0);
	master_add_child(&m, ROLE_KEYS, 0);
	for (unsigned i = 0; i < conf->smtp_out_procs; i++)
		master_add_child(&m, ROLE_SMTP_OUT, i);
	for (unsigned i = 0;
	     i < conf->smtp_in_procs && m.nchildren < MASTER_MAX_CHILDREN; i++)
		master_add_child(&m, ROLE_SMTP_IN, i);
	for (size_t i = 0; i < m.nchildren; i++)
		master_spawn(&m, &m.children[i]);

	log_info("todoku ready: %zu listener(s), %u smtp-in process(es)",
		 m.nlisten, conf->smtp_in_procs);
	event_base_dispatch(m.base);
	log_info("stopped");
	return 0;
}
