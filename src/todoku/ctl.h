/*
 * ctl — the command-line side of the control socket.
 *
 * `todoku queue ...` never opens the spool database (DESIGN §7): it
 * connects to SPOOL/control.sock, owned by the queue role, sends one
 * request line ("list", "list json", "show ID", "show ID json") and
 * copies the answer to stdout. The first line of an answer is "ok" or
 * "error <text>"; the rest is the payload.
 *
 * Exit codes: 0 ok, 1 the daemon answered an error, 69 the daemon is
 * unreachable (EX_UNAVAILABLE; the message says to start `todoku serve`).
 */
#ifndef TODOKU_CTL_H
#define TODOKU_CTL_H

struct conf;

#define CTL_SOCKET_NAME "control.sock"
#define CTL_REQUEST_MAX 512

int ctl_request(const struct conf *conf, const char *request);

#endif
