/*
 * posternctl account ...: register, update, list, show and delete mail
 * accounts (docs/API.md "Accounts"). Account files carry upstream
 * passwords: they are sent as read, wiped afterwards, and no message ever
 * quotes them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "ctl/ctl.h"
#include "ctl/ctl_api.h"
#include "ctl/ctl_cmd.h"
#include "ctl/ctl_http.h"
#include "ctl/ctl_out.h"

#define ACCOUNT_NAME_WIDTH	32	/* table column, then "..." */

/* Sends the JSON file at path with method to api path; prints the answer
 * with --json. */
static int
account_send(struct ctl *ctx, const char *method, const char *path,
    const char *file, cJSON **res_r)
{
	cJSON	*j = NULL;
	char	*buf = NULL;
	size_t	 len = 0;
	int	 rc;

	*res_r = NULL;
	if (ctl_read_json_file(file, &buf, &len, &j) == -1)
		return CTL_EXIT_FAIL;
	/* The text as written: the daemon sees exactly the file's numbers. */
	rc = ctl_api(ctx, method, path, buf, len, res_r);
	ctl_json_wipe_free(&j);
	ctl_wipe_free(&buf, len);
	if (rc == CTL_EXIT_OK && ctx->json)
		ctl_out_json(stdout, *res_r, true);
	return rc;
}

static int
account_add(struct ctl *ctx, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct ctl_opt	 opts[] = {
		{ .name = "file", .flags = CTL_OPT_ARG },
		{ .name = NULL },
	};
	const char	*state;
	cJSON		*res = NULL;
	char		**pos = NULL, *a;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 0, 0, "", &pos, &npos,
	    &rc) == -1)
		goto out;
	if (opts[0].val == NULL || *opts[0].val == '\0') {
		rc = ctl_usage_error(ctx, cmd, "--file is required");
		goto out;
	}
	rc = account_send(ctx, "POST", "/v1/account", opts[0].val, &res);
	if (rc != CTL_EXIT_OK || ctx->json)
		goto out;
	a = ctl_out_clean(ctl_out_str(res, "account") != NULL ?
	    ctl_out_str(res, "account") : "?", 0);
	state = ctl_out_str(res, "state");
	if (state != NULL && strcmp(state, "existing") == 0)
		printf("account %s replaced\n", a);
	else
		printf("account %s added\n", a);
	free(a);
out:
	cJSON_Delete(res);
	free(pos);
	return rc;
}

static int
account_update(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	struct ctl_opt	 opts[] = {
		{ .name = "file", .flags = CTL_OPT_ARG },
		{ .name = NULL },
	};
	cJSON		*res = NULL;
	char		**pos = NULL, *acct = NULL, *path = NULL, *a;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 1, 1, "ACCOUNT", &pos, &npos,
	    &rc) == -1)
		goto out;
	if (opts[0].val == NULL || *opts[0].val == '\0') {
		rc = ctl_usage_error(ctx, cmd, "--file is required");
		goto out;
	}
	acct = ctl_http_escape(pos[0]);
	path = xasprintf("/v1/account/%s", acct);
	rc = account_send(ctx, "PUT", path, opts[0].val, &res);
	if (rc != CTL_EXIT_OK || ctx->json)
		goto out;
	a = ctl_out_clean(pos[0], 0);
	printf("account %s updated\n", a);
	free(a);
out:
	cJSON_Delete(res);
	free(pos);
	free(acct);
	free(path);
	return rc;
}

static int
account_list(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	static const char *const hdr[] = { "ACCOUNT", "NAME", "EMAIL", "STATE",
	    NULL };
	struct ctl_opt	 opts[] = {
		{ .name = "page", .flags = CTL_OPT_ARG },
		{ .name = "page-size", .flags = CTL_OPT_ARG },
		{ .name = NULL },
	};
	struct ctl_out_table	*t = NULL;
	const cJSON	*acc;
	cJSON		*res = NULL;
	char		**pos = NULL, *q = NULL, *path = NULL, *name;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 0, 0, "", &pos, &npos,
	    &rc) == -1)
		goto out;
	if ((rc = ctl_page_query(ctx, cmd, opts[0].val, opts[1].val, &q)) != 0)
		goto out;
	path = q[0] != '\0' ? xasprintf("/v1/accounts?%s", q + 1) :
	    xstrdup("/v1/accounts");
	if ((rc = ctl_api(ctx, "GET", path, NULL, 0, &res)) != 0)
		goto out;
	if (ctx->json) {
		ctl_out_json(stdout, res, true);
		goto out;
	}
	t = ctl_out_table_new(hdr);
	cJSON_ArrayForEach(acc, cJSON_GetObjectItemCaseSensitive(res,
	    "accounts")) {
		ctl_out_table_add(t, ctl_out_str(acc, "account"));
		name = ctl_out_clean(ctl_out_str(acc, "name") != NULL ?
		    ctl_out_str(acc, "name") : "-", ACCOUNT_NAME_WIDTH);
		ctl_out_table_add(t, name);
		free(name);
		ctl_out_table_add(t, ctl_out_str(acc, "email"));
		ctl_out_table_add(t, ctl_out_str(acc, "state"));
	}
	ctl_out_table_print(t, stdout);
	ctl_out_page_footer(stdout, res, "account", "accounts");
out:
	ctl_out_table_free(&t);
	cJSON_Delete(res);
	ctl_opts_free(opts);
	free(pos);
	free(q);
	free(path);
	return rc;
}

static int
account_show(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	struct ctl_opt	 opts[] = { { .name = NULL } };
	cJSON		*res = NULL;
	char		**pos = NULL, *acct = NULL, *path = NULL;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 1, 1, "ACCOUNT", &pos, &npos,
	    &rc) == -1)
		goto out;
	acct = ctl_http_escape(pos[0]);
	path = xasprintf("/v1/account/%s", acct);
	if ((rc = ctl_api(ctx, "GET", path, NULL, 0, &res)) != 0)
		goto out;
	if (ctx->json)
		ctl_out_json(stdout, res, true);
	else
		ctl_out_kv(stdout, res, "-", true);
out:
	ctl_json_wipe_free(&res);
	free(pos);
	free(acct);
	free(path);
	return rc;
}

static int
account_delete(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	struct ctl_opt	 opts[] = { { .name = NULL } };
	cJSON		*res = NULL;
	char		**pos = NULL, *acct = NULL, *path = NULL, *a;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 1, 1, "ACCOUNT", &pos, &npos,
	    &rc) == -1)
		goto out;
	acct = ctl_http_escape(pos[0]);
	path = xasprintf("/v1/account/%s", acct);
	if ((rc = ctl_api(ctx, "DELETE", path, NULL, 0, &res)) != 0)
		goto out;
	if (ctx->json) {
		ctl_out_json(stdout, res, true);
		goto out;
	}
	a = ctl_out_clean(pos[0], 0);
	printf("account %s deleted; its tokens are revoked\n", a);
	free(a);
out:
	cJSON_Delete(res);
	free(pos);
	free(acct);
	free(path);
	return rc;
}

const struct ctl_cmd ctl_cmd_account[] = {
	{ "add", account_add, NULL, "--file FILE",
	  "Register an account from a JSON file (replaces one with the same "
	  "id).",
	  "      --file FILE     account JSON as in docs/API.md; - reads "
	  "stdin (max 1 MiB)\n" },
	{ "update", account_update, NULL, "ACCOUNT --file FILE",
	  "Change ACCOUNT from a partial JSON file; omitted passwords are "
	  "kept.",
	  "      --file FILE     partial account JSON; - reads stdin "
	  "(max 1 MiB)\n" },
	{ "list", account_list, NULL, "[--page N] [--page-size N]",
	  "List accounts.",
	  "      --page N        page to show, from 0\n"
	  "      --page-size N   accounts per page, 1-1000 (default 20)\n" },
	{ "show", account_show, NULL, "ACCOUNT",
	  "Show ACCOUNT as stored, without secrets.", NULL },
	{ "delete", account_delete, NULL, "ACCOUNT",
	  "Delete ACCOUNT and revoke all its tokens.", NULL },
	{ NULL, NULL, NULL, NULL, NULL, NULL },
};
