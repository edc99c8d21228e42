/*
 * check — the operator's sender-authentication tools (issue 4):
 *
 *   todoku check spf --ip A --mail-from S [--helo H] [--dns ADDR[:PORT]]
 *                    [--timeout SECONDS] [--json] [-c FILE]
 *   todoku check dkim [FILE|-] [--dns ADDR[:PORT]] [--timeout SECONDS]
 *                    [--json] [-c FILE]
 *   todoku check dmarc --ip A --mail-from S [--helo H] [FILE|-]
 *                    [--dns ADDR[:PORT]] [--timeout SECONDS] [--json]
 *                    [-c FILE]
 *   todoku check arc [FILE|-] [--dns ADDR[:PORT]] [--timeout SECONDS]
 *                    [--json] [-c FILE]
 *   todoku dkim keygen --domain D --selector S [--ed25519] [--out DIR]
 *
 * The checks run the same library code as the daemon (mail/spf,
 * mail/dkim_verify, mail/dmarc, mail/arc) with real DNS: one libunbound context
 * on a private libevent base in this process. DNS servers: --dns, else [dns]
 * servers of the configuration (-c FILE or the built-in one), else
 * /etc/resolv.conf.
 *
 * Exit codes: 0 the evaluation completed (whatever the result: the
 * result is data), 1 a runtime failure (unreadable input, DNS setup,
 * key file exists or cannot be written), 2 configuration error, 64
 * usage error.
 */
#ifndef TODOKU_CHECK_H
#define TODOKU_CHECK_H

#define CHECK_TIMEOUT_DEFAULT 20      /* seconds per evaluation */
#define CHECK_MESSAGE_MAX (64u << 20) /* check dkim/dmarc/arc input */

/* argv[1] is "check". */
int check_main(int argc, char **argv);
/* argv[1] is "dkim". */
int dkim_cli_main(int argc, char **argv);

#endif
