/*
 * master — the supervising process of `todoku serve`.
 *
 * It prepares the spool and mailbox directories, binds every listening
 * socket while it may still be root, then runs each role (queue, local,
 * N x smtp-in) as a re-executed child with its own master channel, and
 * hands each pair of roles that talk a fresh socketpair (M_PEER). A child
 * that dies is logged and restarted with exponential backoff (1 s .. 60 s,
 * reset after a minute of good health) and rewired to its peers.
 * SIGTERM/SIGINT: M_SHUTDOWN to every child, wait (then SIGKILL after
 * 30 s), exit 0. SIGHUP: reload and validate the file; on error keep the
 * running configuration and log why; else M_RELOAD to every child.
 */
#ifndef TODOKU_MASTER_H
#define TODOKU_MASTER_H

struct conf;

int master_run(struct conf *conf, const char *config_path);

#endif
