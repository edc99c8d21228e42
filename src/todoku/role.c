/*
 * role — see role.h.
 */
#include "todoku/role.h"

#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "mail/conf.h"

static const char *const role_names[ROLE_MAX] = {
    "master", "queue", "smtp-in", "local", "lookup", "smtp-out", "keys"};

const char *
role_name(enum role_id r)
{
	return r < ROLE_MAX ? role_names[r] : "?";
}

int
role_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(name);

	if (pw == NULL)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

void
role_drop_privileges(const char *user)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0)
		return;
	if (role_user(user, &uid, &gid) < 0)
		log_fatal("user \"%s\" does not exist (create it with "
			  "`useradd --system todoku` or set [server] user)",
			  user);
	if (uid == 0)
		log_fatal("refusing to run roles as root ([server] user = %s)",
			  user);
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		log_fatal("cannot drop privileges to %s: %s", user,
			  strerror(errno));
	if (setuid(0) == 0)
		log_fatal("privilege drop to %s did not stick", user);
}

void
role_harden(void)
{
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	/* Keep core dumps under sanitizer/debug builds only. */
	if (getenv("TODOKU_DUMPABLE") == NULL)
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

struct conf *
role_reload_conf(const struct role_env *env, struct ipc_in *in)
{
	char err[CONF_ERR_MAX];
	size_t n;
	const char *text = ipc_get_data(in, &n);
	struct conf *c;

	ipc_end(in);
	if (n > 0 && env->config_path)
		c = conf_load_text(env->config_path, text, n, err, sizeof(err));
	else
		c = conf_load(env->config_path, err, sizeof(err));
	if (c == NULL)
		log_err("reload failed, keeping configuration: %s", err);
	return c;
}

const char *
role_user_name(const struct conf *c, enum role_id r)
{
	switch (r) {
	case ROLE_QUEUE:
		return c->queue_user;
	case ROLE_LOCAL:
		return c->mail_user;
	case ROLE_KEYS:
		return c->keys_user;
	default:
		return c->user; /* smtp-in, smtp-out, lookup */
	}
}

static enum role_id
role_lookup(const char *name)
{
	for (int r = 1; r < ROLE_MAX; r++)
		if (strcmp(name, role_names[r]) == 0)
			return (enum role_id)r;
	return ROLE_MAX;
}

/*
 * smtp-out waits for each reply with a one-shot read event, so without
 * libevent's changelist every command cost an epoll_ctl(DEL) when the
 * reply came and an epoll_ctl(ADD) for the next one (eight per message
 * on a reused connection); with it they fold into one MOD. The
 * changelist must not see dup()ed descriptors in the loop: smtp-out
 * watches only its own sockets (bodies arrive as fds but are only read).
 */
static struct event_base *
role_base(enum role_id role)
{
	struct event_config *cfg;
	struct event_base *base;

	if (role != ROLE_SMTP_OUT)
		return event_base_new();
	cfg = event_config_new();
	if (cfg == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

int
role_main(const char *name, const char *config_path)
{
	struct role_env env = {0};
	char err[CONF_ERR_MAX];

	env.role = role_lookup(name);
	if (env.role == ROLE_MAX)
		log_fatal("unknown role \"%s\"", name);
	log_set_role(name);
	clock_init();
	env.config_path = config_path;
	env.conf = conf_load(config_path, err, sizeof(err));
	if (env.conf == NULL) {
		log_err("%s", err);
		return 2;
	}
	log_init(name, env.conf->log_syslog, env.conf->log_level);
	signal(SIGPIPE, SIG_IGN);
	/* master coordinates shutdown (M_SHUTDOWN) for ^C or a SIGTERM sent
	 * to the whole process group; a role never stops on its own. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	role_drop_privileges(role_user_name(env.conf, env.role));
	role_harden();
	env.base = role_base(env.role);
	if (env.base == NULL)
		log_fatal("cannot create event base");
	switch (env.role) {
	case ROLE_QUEUE:
		return queue_main(&env);
	case ROLE_SMTP_IN:
		return smtp_in_main(&env);
	case ROLE_LOCAL:
		return local_main(&env);
	case ROLE_LOOKUP:
		return lookup_main(&env);
	case ROLE_SMTP_OUT:
		return smtp_out_main(&env);
	case ROLE_KEYS:
		return keys_main(&env);
	default:
		log_panic("role %d has no body", env.role);
	}
}
