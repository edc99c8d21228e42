/*
 * role — what every role process does at start and on master messages:
 * drop privileges, load the configuration, run an event loop.
 *
 * A role process is todoku re-executed by master as
 * `todoku --role NAME -c CONFIG` with its master channel on fd 3.
 * role_start() loads the configuration (exit 2 on error: master checked
 * it already, so that means the file changed under us), drops to the
 * configured user when started as root (setgroups, setgid, setuid, then
 * verifies it cannot regain root), sets no_new_privs and non-dumpable,
 * and sets up logging with the role's name.
 */
#ifndef TODOKU_ROLE_H
#define TODOKU_ROLE_H

#include <stdbool.h>
#include <sys/types.h>

#include "todoku/proto.h"

struct conf;
struct event_base;
struct ipc_in;

struct role_env {
	enum role_id role;
	const char *config_path; /* NULL: built-in */
	struct conf *conf;
	struct event_base *base;
};

/* Look up the run-as user; returns 0 and fills uid/gid, -1 if missing. */
int role_user(const char *name, uid_t *uid, gid_t *gid);
/* DESIGN §7: network roles, the spool owner, the mail-store owner and
 * the key holder run as distinct users ([server] user, queue-user,
 * mail-user, keys-user). */
const char *role_user_name(const struct conf *c, enum role_id r);
/* Drop root to user (no-op when not root). Fatal on any failure. */
void role_drop_privileges(const char *user);
void role_harden(void);
/* Entry for `todoku --role NAME`. Never returns. */
int role_main(const char *name, const char *config_path);

/* M_RELOAD payload -> new configuration, or NULL (error logged). */
struct conf *role_reload_conf(const struct role_env *env, struct ipc_in *in);

/* Role bodies (each in its own file). */
int queue_main(struct role_env *env);
int smtp_in_main(struct role_env *env);
int local_main(struct role_env *env);
int lookup_main(struct role_env *env);
int smtp_out_main(struct role_env *env);
int keys_main(struct role_env *env);

#endif
