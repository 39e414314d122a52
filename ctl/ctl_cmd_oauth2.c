/*
 * posternctl oauth2 ...: register, update, list, show and delete OAuth2
 * applications (docs/API.md "OAuth2 applications"). The client secret is
 * never taken from the command line (ps would show it): --client-secret-file
 * reads it from a file or stdin, and it is wiped once sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "ctl/ctl.h"
#include "ctl/ctl_api.h"
#include "ctl/ctl_cmd.h"
#include "ctl/ctl_out.h"
#include "ctl/ctl_req.h"

#define SECRET_FILE_MAX		4096	/* = the API's clientSecret limit */

enum {
	O_FILE, O_ID, O_NAME, O_PROVIDER, O_CLIENT_ID, O_SECRET_FILE,
	O_TOKEN_URL, O_SCOPE, O_TENANT, O_MECH, O_NOPTS
};

#define APP_OPTS							\
	{ .name = "file", .flags = CTL_OPT_ARG },			\
	{ .name = "id", .flags = CTL_OPT_ARG },				\
	{ .name = "name", .flags = CTL_OPT_ARG },			\
	{ .name = "provider", .flags = CTL_OPT_ARG },			\
	{ .name = "client-id", .flags = CTL_OPT_ARG },			\
	{ .name = "client-secret-file", .flags = CTL_OPT_ARG },	\
	{ .name = "token-url", .flags = CTL_OPT_ARG },			\
	{ .name = "scope", .flags = CTL_OPT_ARG | CTL_OPT_MULTI },	\
	{ .name = "tenant", .flags = CTL_OPT_ARG },			\
	{ .name = "mechanism", .flags = CTL_OPT_ARG },			\
	{ .name = NULL }

/* The first line of path ("-": stdin), without its line end, as a
 * malloc'd secret; NULL after printing why. Never prints the content. */
static char *
read_secret(const char *path)
{
	char	 buf[SECRET_FILE_MAX + 2], *nl, *s;
	size_t	 len = 0;
	ssize_t	 n;
	int	 fd;

	if (strcmp(path, "-") == 0)
		fd = STDIN_FILENO;
	else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		ctl_err("%s: %s", path, strerror(errno));
		return NULL;
	}
	while (len < sizeof(buf) - 1 &&
	    (n = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ctl_err("%s: %s", path, strerror(errno));
			len = 0;
			break;
		}
		len += (size_t)n;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	buf[len] = '\0';
	if ((nl = strpbrk(buf, "\r\n")) != NULL)
		*nl = '\0';
	if (buf[0] == '\0' || strlen(buf) > SECRET_FILE_MAX) {
		if (len > 0 || nl != NULL)
			ctl_err("%s: the client secret must be one line of "
			    "1-%d characters", path, SECRET_FILE_MAX);
		explicit_bzero(buf, sizeof(buf));
		return NULL;
	}
	s = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return s;
}

/* The body from the options; NULL after printing a usage error (rc_r). */
static cJSON *
app_body(struct ctl *ctx, const struct ctl_cmd *cmd, struct ctl_opt *o,
    bool create, int *rc_r)
{
	cJSON	*b = cJSON_CreateObject(), *arr;
	char	*sec;

	if (create && o[O_PROVIDER].val == NULL) {
		*rc_r = ctl_usage_error(ctx, cmd, "--provider is required "
		    "(gmail, outlook or custom)");
		cJSON_Delete(b);
		return NULL;
	}
	if (create && o[O_CLIENT_ID].val == NULL) {
		*rc_r = ctl_usage_error(ctx, cmd, "--client-id is required");
		cJSON_Delete(b);
		return NULL;
	}
	if (o[O_ID].val != NULL)
		cJSON_AddStringToObject(b, "id", o[O_ID].val);
	if (o[O_NAME].val != NULL)
		cJSON_AddStringToObject(b, "name", o[O_NAME].val);
	if (o[O_PROVIDER].val != NULL)
		cJSON_AddStringToObject(b, "provider", o[O_PROVIDER].val);
	if (o[O_CLIENT_ID].val != NULL)
		cJSON_AddStringToObject(b, "clientId", o[O_CLIENT_ID].val);
	if (o[O_TOKEN_URL].val != NULL)
		cJSON_AddStringToObject(b, "tokenUrl", o[O_TOKEN_URL].val);
	if (o[O_SCOPE].nvals > 0) {
		arr = cJSON_AddArrayToObject(b, "scopes");
		for (size_t i = 0; i < o[O_SCOPE].nvals; i++)
			cJSON_AddItemToArray(arr,
			    cJSON_CreateString(o[O_SCOPE].vals[i]));
	}
	if (o[O_TENANT].val != NULL)
		cJSON_AddStringToObject(b, "tenant", o[O_TENANT].val);
	if (o[O_MECH].val != NULL)
		cJSON_AddStringToObject(b, "mechanism", o[O_MECH].val);
	if (o[O_SECRET_FILE].val != NULL) {
		if ((sec = read_secret(o[O_SECRET_FILE].val)) == NULL) {
			*rc_r = CTL_EXIT_FAIL;
			cJSON_Delete(b);
			return NULL;
		}
		cJSON_AddStringToObject(b, "clientSecret", sec);
		explicit_bzero(sec, strlen(sec));
		free(sec);
	}
	return b;
}

static bool
any_field_opt(const struct ctl_opt *o)
{
	for (int i = O_ID; i < O_NOPTS; i++)
		if (o[i].val != NULL)
			return true;
	return false;
}

/* Sends the body from --file or the options; prints --json output. */
static int
app_send(struct ctl *ctx, const struct ctl_cmd *cmd, struct ctl_opt *o,
    const char *method, const char *path, bool create, cJSON **res_r)
{
	cJSON	*j;
	int	 rc = CTL_EXIT_OK;

	*res_r = NULL;
	if (o[O_FILE].val != NULL) {
		if (any_field_opt(o))
			return ctl_usage_error(ctx, cmd, "--file excludes the "
			    "other options");
		return ctl_req_file(ctx, method, path, o[O_FILE].val, res_r);
	}
	if (!create && !any_field_opt(o))
		return ctl_usage_error(ctx, cmd, "nothing to change");
	if ((j = app_body(ctx, cmd, o, create, &rc)) == NULL)
		return rc;
	rc = ctl_api_json(ctx, method, path, j, res_r);
	ctl_json_wipe_free(&j);
	if (rc == CTL_EXIT_OK && ctx->json)
		ctl_out_json(stdout, *res_r, true);
	return rc;
}

static int
oauth2_add(struct ctl *ctx, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct ctl_opt	 opts[] = { APP_OPTS };
	cJSON		*res = NULL;
	char		**pos = NULL, *id;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 0, 0, "", &pos, &npos,
	    &rc) == -1)
		goto out;
	rc = app_send(ctx, cmd, opts, "POST", "/v1/oauth2", true, &res);
	if (rc != CTL_EXIT_OK || ctx->json)
		goto out;
	id = ctl_out_member(res, "id", "?", 0);
	printf("oauth2 application %s added\n", id);
	free(id);
out:
	cJSON_Delete(res);
	ctl_opts_free(opts);
	free(pos);
	return rc;
}

static int
oauth2_update(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	struct ctl_opt	 opts[] = { APP_OPTS };
	cJSON		*res = NULL;
	char		**pos = NULL, *path = NULL, *a;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 1, 1, "APP", &pos, &npos,
	    &rc) == -1)
		goto out;
	path = ctl_req_path("/v1/oauth2", pos[0]);
	rc = app_send(ctx, cmd, opts, "PUT", path, false, &res);
	if (rc != CTL_EXIT_OK || ctx->json)
		goto out;
	a = ctl_out_clean(pos[0], 0);
	printf("oauth2 application %s updated\n", a);
	free(a);
out:
	cJSON_Delete(res);
	ctl_opts_free(opts);
	free(pos);
	free(path);
	return rc;
}

static void
app_row(struct ctl_out_table *t, const cJSON *app)
{
	char	*cell;

	ctl_out_table_add(t, ctl_out_str(app, "id"));
	ctl_out_table_add(t, ctl_out_str(app, "provider"));
	cell = ctl_out_member(app, "clientId", "-", 40);
	ctl_out_table_add(t, cell);
	free(cell);
	cell = ctl_out_member(app, "name", "-", 32);
	ctl_out_table_add(t, cell);
	free(cell);
}

static int
oauth2_list(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	static const char *const hdr[] = { "ID", "PROVIDER", "CLIENT ID",
	    "NAME", NULL };
	static const struct ctl_req_list list = {
		.path = "/v1/oauth2", .member = "apps", .hdr = hdr,
		.row = app_row, .one = "application", .many = "applications",
	};

	return ctl_req_list(ctx, cmd, argc, argv, &list);
}

static int
oauth2_show(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	return ctl_req_show(ctx, cmd, argc, argv, "APP", "/v1/oauth2");
}

static int
oauth2_delete(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	cJSON	*res;
	char	*a;
	int	 rc;

	rc = ctl_req_delete(ctx, cmd, argc, argv, "APP", "/v1/oauth2", &res,
	    &a);
	if (a != NULL)
		printf("oauth2 application %s deleted\n", a);
	free(a);
	cJSON_Delete(res);
	return rc;
}

#define APP_HELP							\
	"      --file FILE     the application as JSON (docs/API.md); "	\
	"- reads stdin;\n"						\
	"                      excludes the options below\n"		\
	"      --provider P    gmail, outlook or custom\n"		\
	"      --client-id ID  the OAuth2 client id\n"			\
	"      --client-secret-file FILE\n"				\
	"                      first line of FILE (- for stdin) is "	\
	"the client secret\n"						\
	"      --token-url URL custom: the token endpoint (https://)\n"	\
	"      --scope S       a scope (repeatable; default: the preset's)\n" \
	"      --tenant T      outlook: the tenant (default common)\n"	\
	"      --mechanism M   XOAUTH2 or OAUTHBEARER (default: the "	\
	"preset's)\n"							\
	"      --name NAME     a label\n"

const struct ctl_cmd ctl_cmd_oauth2[] = {
	{ "add", oauth2_add, NULL, "[--id ID] --provider P --client-id ID "
	  "[OPTIONS] | --file FILE",
	  "Register an OAuth2 application (client id and secret).",
	  "      --id ID         the application id (default: random)\n"
	  APP_HELP },
	{ "update", oauth2_update, NULL, "APP [OPTIONS] | APP --file FILE",
	  "Change APP; fields not given are kept (the secret too).",
	  APP_HELP },
	{ "list", oauth2_list, NULL, "[--page N] [--page-size N]",
	  "List OAuth2 applications.",
	  "      --page N        page to show, from 0\n"
	  "      --page-size N   applications per page, 1-1000 "
	  "(default 20)\n" },
	{ "show", oauth2_show, NULL, "APP",
	  "Show APP without its client secret.", NULL },
	{ "delete", oauth2_delete, NULL, "APP",
	  "Delete APP (its accounts can no longer refresh tokens).", NULL },
	{ NULL, NULL, NULL, NULL, NULL, NULL },
};
