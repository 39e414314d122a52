/*
 * posternctl account ...: register, update, list, show and delete mail
 * accounts (docs/API.md "Accounts"). Account files carry upstream
 * passwords: they are sent as read, wiped afterwards, and no message ever
 * quotes them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/ctl_cmd.h"
#include "ctl/ctl_out.h"
#include "ctl/ctl_req.h"

#define ACCOUNT_NAME_WIDTH	32	/* table column, then "..." */

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
	rc = ctl_req_file(ctx, "POST", "/v1/account", opts[0].val, &res);
	if (rc != CTL_EXIT_OK || ctx->json)
		goto out;
	a = ctl_out_member(res, "account", "?", 0);
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
	char		**pos = NULL, *path = NULL, *a;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 1, 1, "ACCOUNT", &pos, &npos,
	    &rc) == -1)
		goto out;
	if (opts[0].val == NULL || *opts[0].val == '\0') {
		rc = ctl_usage_error(ctx, cmd, "--file is required");
		goto out;
	}
	path = ctl_req_path("/v1/account", pos[0]);
	rc = ctl_req_file(ctx, "PUT", path, opts[0].val, &res);
	if (rc != CTL_EXIT_OK || ctx->json)
		goto out;
	a = ctl_out_clean(pos[0], 0);
	printf("account %s updated\n", a);
	free(a);
out:
	cJSON_Delete(res);
	free(pos);
	free(path);
	return rc;
}

static void
account_row(struct ctl_out_table *t, const cJSON *acc)
{
	char	*name;

	ctl_out_table_add(t, ctl_out_str(acc, "account"));
	name = ctl_out_member(acc, "name", "-", ACCOUNT_NAME_WIDTH);
	ctl_out_table_add(t, name);
	free(name);
	ctl_out_table_add(t, ctl_out_str(acc, "email"));
	ctl_out_table_add(t, ctl_out_str(acc, "state"));
}

static int
account_list(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	static const char *const hdr[] = { "ACCOUNT", "NAME", "EMAIL", "STATE",
	    NULL };
	static const struct ctl_req_list list = {
		.path = "/v1/accounts", .member = "accounts", .hdr = hdr,
		.row = account_row, .one = "account", .many = "accounts",
	};

	return ctl_req_list(ctx, cmd, argc, argv, &list);
}

static int
account_show(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	return ctl_req_show(ctx, cmd, argc, argv, "ACCOUNT", "/v1/account");
}

static int
account_delete(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	cJSON	*res;
	char	*a;
	int	 rc;

	rc = ctl_req_delete(ctx, cmd, argc, argv, "ACCOUNT", "/v1/account",
	    &res, &a);
	if (a != NULL)
		printf("account %s deleted; its tokens are revoked\n", a);
	free(a);
	cJSON_Delete(res);
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
