/*
 * main — todoku's command line.
 *
 *   todoku serve [-c FILE] [-f]
 *   todoku config check [-c FILE]
 *   todoku queue list [--json] [-c FILE]
 *   todoku queue show ID [--json] [-c FILE]
 *   todoku version
 *   todoku --role NAME [-c FILE]        (internal: master starts roles)
 *
 * Exit codes: 0 success, 1 failure, 2 configuration error, 64 usage
 * error, 69 daemon unreachable.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "mail/conf.h"
#include "todoku/check.h"
#include "todoku/ctl.h"
#include "todoku/master.h"
#include "todoku/role.h"

#define EXIT_CONFIG 2
#define EXIT_USAGE 64

struct cli {
	const char *config;
	int json;
	int foreground;
	const char *args[4];
	int nargs;
};

static void
usage(FILE *f)
{
	fputs("usage: todoku serve [-c FILE] [-f]\n"
	      "       todoku config check [-c FILE]\n"
	      "       todoku queue list [--json] [-c FILE]\n"
	      "       todoku queue show ID [--json] [-c FILE]\n"
	      "       todoku queue flush [ID] | hold ID | release ID |\n"
	      "                    delete ID | bounce ID [-c FILE]\n"
	      "       todoku queue dmarc-report [-c FILE]\n"
	      "       todoku check spf --ip A --mail-from S [--helo H] [..]\n"
	      "       todoku check dkim [FILE|-] [--json]\n"
	      "       todoku check dmarc --ip A --mail-from S [FILE|-] [..]\n"
	      "       todoku check arc [FILE|-] [--json]\n"
	      "       todoku dkim keygen --domain D --selector S [--ed25519]\n"
	      "       todoku version\n"
	      "Without -c, the built-in configuration is used (SMTP on\n"
	      "127.0.0.1:2525, spool and mailboxes under ./var).\n",
	      f);
}

static int
cli_parse(int argc, char **argv, int first, struct cli *cli)
{
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (++i == argc) {
				fprintf(stderr,
					"todoku: %s needs a file name\n", a);
				return -1;
			}
			cli->config = argv[i];
		} else if (strcmp(a, "--json") == 0) {
			cli->json = 1;
		} else if (strcmp(a, "-f") == 0) {
			cli->foreground = 1;
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "todoku: unknown option %s\n", a);
			return -1;
		} else if (cli->nargs < 4) {
			cli->args[cli->nargs++] = a;
		} else {
			fprintf(stderr, "todoku: too many arguments\n");
			return -1;
		}
	}
	return 0;
}

static struct conf *
cli_conf(const struct cli *cli)
{
	char err[CONF_ERR_MAX];
	struct conf *c = conf_load(cli->config, err, sizeof(err));

	if (c == NULL)
		fprintf(stderr, "%s\n", err);
	return c;
}

static int
cmd_config(struct cli *cli)
{
	struct conf *c;
	struct buf out;
	char err[CONF_ERR_MAX];

	if (cli->nargs != 1 || strcmp(cli->args[0], "check") != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((c = cli_conf(cli)) == NULL)
		return EXIT_CONFIG;
	if (conf_check_key_files(c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		conf_free(c);
		return EXIT_CONFIG;
	}
	buf_init(&out, 16u * 1024 * 1024);
	conf_dump(c, &out);
	printf("# effective configuration from %s\n%s", c->path,
	       out.data ? out.data : "");
	buf_free(&out);
	conf_free(c);
	return 0;
}

static int
queue_id_ok(const char *id)
{
	if (strspn(id, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == strlen(id) &&
	    strlen(id) > 0 && strlen(id) <= 32)
		return 1;
	fprintf(stderr,
		"todoku: \"%s\" is not a queue ID (see `todoku queue list`)\n",
		id);
	return 0;
}

static int
cmd_queue(struct cli *cli)
{
	char req[CTL_REQUEST_MAX];
	struct conf *c;
	int r;

	if (cli->nargs == 1 && strcmp(cli->args[0], "list") == 0) {
		snprintf(req, sizeof(req), "list%s", cli->json ? " json" : "");
	} else if (cli->nargs == 2 && strcmp(cli->args[0], "show") == 0) {
		if (!queue_id_ok(cli->args[1]))
			return EXIT_USAGE;
		snprintf(req, sizeof(req), "show %s%s", cli->args[1],
			 cli->json ? " json" : "");
	} else if (cli->nargs == 1 &&
		   strcmp(cli->args[0], "dmarc-report") == 0) {
		snprintf(req, sizeof(req), "dmarc-report");
	} else if (cli->nargs >= 1 && cli->nargs <= 2 &&
		   strcmp(cli->args[0], "flush") == 0) {
		if (cli->nargs == 2 && !queue_id_ok(cli->args[1]))
			return EXIT_USAGE;
		snprintf(req, sizeof(req), "flush%s%s",
			 cli->nargs == 2 ? " " : "",
			 cli->nargs == 2 ? cli->args[1] : "");
	} else if (cli->nargs == 2 && (strcmp(cli->args[0], "hold") == 0 ||
				       strcmp(cli->args[0], "release") == 0 ||
				       strcmp(cli->args[0], "delete") == 0 ||
				       strcmp(cli->args[0], "bounce") == 0)) {
		if (!queue_id_ok(cli->args[1]))
			return EXIT_USAGE;
		snprintf(req, sizeof(req), "%s %s", cli->args[0], cli->args[1]);
	} else {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((c = cli_conf(cli)) == NULL)
		return EXIT_CONFIG;
	r = ctl_request(c, req);
	conf_free(c);
	return r;
}

static int
cmd_serve(struct cli *cli)
{
	char abspath[PATH_MAX];
	struct conf *c;

	if (cli->nargs != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (cli->config) {
		if (realpath(cli->config, abspath) == NULL) {
			fprintf(stderr, "todoku: %s: %s\n", cli->config,
				strerror(errno));
			return EXIT_CONFIG;
		}
		cli->config = abspath;
	}
	if ((c = cli_conf(cli)) == NULL)
		return EXIT_CONFIG;
	log_init("master", c->log_syslog, c->log_level);
	if (!cli->foreground && !c->log_syslog)
		log_info("running in the foreground (logs to stderr); use "
			 "log-to = syslog to detach");
	return master_run(c, cli->config);
}

int
main(int argc, char **argv)
{
	struct cli cli = {0};

	clock_init();
	if (argc >= 3 && strcmp(argv[1], "--role") == 0) {
		if (cli_parse(argc, argv, 3, &cli) < 0)
			return EXIT_USAGE;
		return role_main(argv[2], cli.config);
	}
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "check") == 0)
		return check_main(argc, argv);
	if (strcmp(argv[1], "dkim") == 0)
		return dkim_cli_main(argc, argv);
	if (cli_parse(argc, argv, 2, &cli) < 0)
		return EXIT_USAGE;
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(&cli);
	if (strcmp(argv[1], "config") == 0)
		return cmd_config(&cli);
	if (strcmp(argv[1], "queue") == 0)
		return cmd_queue(&cli);
	if (strcmp(argv[1], "version") == 0) {
		printf("todoku 0.1.0\n");
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "todoku: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
