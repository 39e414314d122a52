/*
 * posternctl: command-line client for posternd's admin API on its Unix
 * socket. main parses the global options and hands the rest to the
 * command table below; each resource lives in ctl_cmd_<resource>.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/xmalloc.h"
#include "ctl/ctl.h"
#include "ctl/ctl_cmd.h"

static const struct ctl_cmd top_cmds[] = {
	{ "token", NULL, ctl_cmd_token, "SUBCOMMAND [ARGS...]",
	  "Create, list, show and revoke access tokens.", NULL },
	{ "account", NULL, ctl_cmd_account, "SUBCOMMAND [ARGS...]",
	  "Register, update, list, show and delete mail accounts.", NULL },
	{ "settings", NULL, ctl_cmd_settings, "SUBCOMMAND [ARGS...]",
	  "Show and change runtime settings.", NULL },
	{ "oauth2", NULL, ctl_cmd_oauth2, "SUBCOMMAND [ARGS...]",
	  "Register, update, list, show and delete OAuth2 applications.",
	  NULL },
	{ "autoconfig", ctl_cmd_autoconfig, NULL, "ADDRESS",
	  "Find the IMAP and SMTP settings for an email address.", NULL },
	{ "verify", ctl_cmd_verify, NULL, "--file FILE [--mailbox NAME]",
	  "Test an account's IMAP and SMTP logins; say what is wrong.",
	  "      --file FILE     account JSON as for 'account add'; - reads "
	  "stdin\n"
	  "      --mailbox NAME  IMAP mailbox to open (default: INBOX)\n" },
	{ "health", ctl_cmd_health, NULL, "",
	  "Check that posternd and its Redis answer.", NULL },
	{ NULL, NULL, NULL, NULL, NULL, NULL },
};

static void
usage(FILE *fp)
{
	fputs("usage: posternctl [-s SOCKET] [--json] COMMAND [ARGS...]\n"
	    "       posternctl COMMAND [SUBCOMMAND] --help\n\n"
	    "Manage a running posternd through its admin API socket.\n\n"
	    "Options:\n"
	    "  -s, --socket SOCKET  admin socket (default: "
	    "$POSTERN_ADMIN_SOCKET,\n"
	    "                       run/admin.sock in this checkout, "
	    "./run/admin.sock,\n"
	    "                       /run/postern/admin.sock)\n"
	    "      --json           print the API's JSON response\n"
	    "  -h, --help           show this help\n"
	    "  -V, --version        show the version\n\n"
	    "Commands:\n", fp);
	ctl_list(fp, top_cmds);
	fputs("\nExit status: 0 ok, 1 API or connection error, 2 usage error."
	    "\nRun 'posternctl COMMAND --help' for details; see posternctl(1)."
	    "\n", fp);
}

static int
usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "posternctl: %s%s%s%s\n", msg,
	    arg != NULL ? " '" : "", arg != NULL ? arg : "",
	    arg != NULL ? "'" : "");
	fputs("usage: posternctl [-s SOCKET] [--json] COMMAND [ARGS...]\n"
	    "Run 'posternctl --help' for details.\n", stderr);
	return CTL_EXIT_USAGE;
}

/* "help [COMMAND...]" is "COMMAND... --help"; returns a new argv. */
static char **
help_argv(int argc, char **argv, int *argc_r)
{
	static char	  help_opt[] = "--help";
	char		**nargv = xcalloc((size_t)argc + 1, sizeof(*nargv));
	int		  i;

	for (i = 1; i < argc; i++)
		nargv[i - 1] = argv[i];
	nargv[argc - 1] = help_opt;
	*argc_r = argc;
	return nargv;
}

int
main(int argc, char **argv)
{
	struct ctl	 ctx;
	char		**hargv = NULL;
	const char	*a;
	int		 i, rc;

	memset(&ctx, 0, sizeof(ctx));
	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0) {
			if (i + 1 >= argc)
				return usage_error("option needs a value:", a);
			ctx.sock_opt = argv[++i];
		} else if (strncmp(a, "--socket=", 9) == 0)
			ctx.sock_opt = a + 9;
		else if (strncmp(a, "-s", 2) == 0)
			ctx.sock_opt = a + 2;
		else if (strcmp(a, "--json") == 0)
			ctx.json = true;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return CTL_EXIT_OK;
		} else if (strcmp(a, "-V") == 0 ||
		    strcmp(a, "--version") == 0) {
			printf("posternctl %s\n", POSTERN_VERSION);
			return CTL_EXIT_OK;
		} else
			return usage_error("unknown option", a);
		if (ctx.sock_opt != NULL && ctx.sock_opt[0] == '\0')
			return usage_error("empty socket path", NULL);
	}
	if (i == argc) {
		fputs("posternctl: missing command\n", stderr);
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	argc -= i;
	argv += i;
	if (strcmp(argv[0], "help") == 0) {
		if (argc == 1) {
			usage(stdout);
			return CTL_EXIT_OK;
		}
		argv = hargv = help_argv(argc, argv, &argc);
	}

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		ctl_err("cannot initialise libcurl");
		free(hargv);
		return CTL_EXIT_FAIL;
	}
	rc = ctl_run(&ctx, top_cmds, argc, argv);
	curl_global_cleanup();
	free(ctx.sock);
	free(hargv);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_err("cannot write to standard output");
		rc = CTL_EXIT_FAIL;
	}
	return rc;
}
