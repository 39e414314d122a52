/*
 * posternctl token ...: create, list, show and revoke access tokens
 * (docs/API.md "Tokens"). The token itself appears on screen once, when
 * created; afterwards only its id (SHA-256 of the raw bytes) exists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "ctl/ctl.h"
#include "ctl/ctl_api.h"
#include "ctl/ctl_cmd.h"
#include "ctl/ctl_out.h"
#include "ctl/ctl_req.h"

#define TOKEN_TTL_MAX		31536000LL	/* API: ttl 1..31536000 s */
#define TOKEN_DESC_WIDTH	40		/* table column, then "..." */

/* Adds the comma-separated, non-empty items of v to arr; returns how many. */
static int
add_split(cJSON *arr, const char *v)
{
	const char	*p, *e;
	char		*item;
	int		 n = 0;

	for (p = v; *p != '\0'; p = *e != '\0' ? e + 1 : e) {
		while (*p == ' ')
			p++;
		if ((e = strchr(p, ',')) == NULL)
			e = p + strlen(p);
		while (e > p && e[-1] == ' ')
			e--;
		if (e > p) {
			item = xstrndup(p, (size_t)(e - p));
			cJSON_AddItemToArray(arr, cJSON_CreateString(item));
			free(item);
			n++;
		}
		while (*e == ' ')
			e++;
	}
	return n;
}

static int
token_create(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	enum { O_SCOPE, O_DESC, O_ADDR, O_TTL, O_EXP };
	struct ctl_opt	 opts[] = {
		{ .name = "scope", .flags = CTL_OPT_ARG | CTL_OPT_MULTI },
		{ .name = "description", .flags = CTL_OPT_ARG },
		{ .name = "address", .flags = CTL_OPT_ARG | CTL_OPT_MULTI },
		{ .name = "ttl", .flags = CTL_OPT_ARG },
		{ .name = "expires", .flags = CTL_OPT_ARG },
		{ .name = NULL },
	};
	cJSON		*req = NULL, *res = NULL, *arr, *r;
	char		**pos = NULL;
	const char	*token, *id;
	long long	 ttl = 0;
	size_t		 i;
	int		 npos, rc, n;

	if (ctl_args(ctx, cmd, argc, argv, opts, 1, 1, "ACCOUNT", &pos, &npos,
	    &rc) == -1)
		goto out;
	if (opts[O_SCOPE].nvals == 0) {
		rc = ctl_usage_error(ctx, cmd, "--scope is required");
		goto out;
	}
	if (opts[O_DESC].val == NULL || *opts[O_DESC].val == '\0') {
		rc = ctl_usage_error(ctx, cmd, "--description is required");
		goto out;
	}
	if (opts[O_TTL].val != NULL && opts[O_EXP].val != NULL) {
		rc = ctl_usage_error(ctx, cmd,
		    "--ttl and --expires exclude each other");
		goto out;
	}
	if (opts[O_TTL].val != NULL &&
	    !str_to_ll(opts[O_TTL].val, 1, TOKEN_TTL_MAX, &ttl)) {
		rc = ctl_usage_error(ctx, cmd, "--ttl must be a number of "
		    "seconds from 1 to %lld", TOKEN_TTL_MAX);
		goto out;
	}
	if (opts[O_EXP].val != NULL &&
	    str_iso8601_parse(opts[O_EXP].val) == -1) {
		rc = ctl_usage_error(ctx, cmd, "--expires must be an ISO 8601 "
		    "time, e.g. 2026-12-31T00:00:00Z");
		goto out;
	}

	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "account", pos[0]);
	cJSON_AddStringToObject(req, "description", opts[O_DESC].val);
	arr = cJSON_AddArrayToObject(req, "scopes");
	for (i = 0, n = 0; i < opts[O_SCOPE].nvals; i++)
		n += add_split(arr, opts[O_SCOPE].vals[i]);
	if (n == 0) {
		rc = ctl_usage_error(ctx, cmd, "--scope is empty");
		goto out;
	}
	if (opts[O_ADDR].nvals > 0) {
		r = cJSON_AddObjectToObject(req, "restrictions");
		arr = cJSON_AddArrayToObject(r, "addresses");
		for (i = 0; i < opts[O_ADDR].nvals; i++)
			add_split(arr, opts[O_ADDR].vals[i]);
	}
	if (opts[O_TTL].val != NULL)
		cJSON_AddNumberToObject(req, "ttl", (double)ttl);
	if (opts[O_EXP].val != NULL)
		cJSON_AddStringToObject(req, "expires", opts[O_EXP].val);

	if ((rc = ctl_api_json(ctx, "POST", "/v1/tokens", req, &res)) != 0)
		goto out;
	if (ctx->json) {
		ctl_out_json(stdout, res, false);
		goto out;
	}
	token = ctl_out_str(res, "token");
	id = ctl_out_str(res, "id");
	if (token == NULL || id == NULL) {
		ctl_err("admin API answer has no token or id");
		rc = CTL_EXIT_FAIL;
		goto out;
	}
	/* The one place a secret is printed: it cannot be shown again. */
	printf("token: %s\nid:    %s\n", token, id);
	fflush(stdout);
	fprintf(stderr, "Store the token now: it is not shown again. "
	    "Revoke it with 'posternctl token revoke ID'.\n");
out:
	ctl_json_wipe_free(&res);
	cJSON_Delete(req);
	ctl_opts_free(opts);
	free(pos);
	return rc;
}

static void
token_row(struct ctl_out_table *t, const cJSON *tok)
{
	char	 created[64], expires[64], used[64];
	char	*s, *desc;

	ctl_out_table_add(t, ctl_out_str(tok, "id"));
	desc = ctl_out_member(tok, "description", "-", TOKEN_DESC_WIDTH);
	ctl_out_table_add(t, desc);
	free(desc);
	s = ctl_out_join(tok, "scopes", "-");
	ctl_out_table_add(t, s);
	free(s);
	s = ctl_out_join(cJSON_GetObjectItemCaseSensitive(tok,
	    "restrictions"), "addresses", "any");
	ctl_out_table_add(t, s);
	free(s);
	ctl_out_time(tok, "created", "-", created, sizeof(created));
	ctl_out_table_add(t, created);
	ctl_out_time(tok, "expires", "never", expires, sizeof(expires));
	ctl_out_table_add(t, expires);
	ctl_out_time(tok, "lastUsed", "never", used, sizeof(used));
	if (ctl_out_str(tok, "ip") != NULL) {
		s = xasprintf("%s from %s", used, ctl_out_str(tok, "ip"));
		ctl_out_table_add(t, s);
		free(s);
	} else
		ctl_out_table_add(t, used);
}

static int
token_list(struct ctl *ctx, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const char *const hdr[] = { "ID", "DESCRIPTION", "SCOPES",
	    "ADDRESSES", "CREATED", "EXPIRES", "LAST USED", NULL };
	static const struct ctl_req_list list = {
		.path = "/v1/tokens", .param = "account", .posname = "ACCOUNT",
		.member = "tokens", .hdr = hdr, .row = token_row,
		.one = "token", .many = "tokens",
	};

	return ctl_req_list(ctx, cmd, argc, argv, &list);
}

static int
token_show(struct ctl *ctx, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return ctl_req_show(ctx, cmd, argc, argv, "ID", "/v1/tokens");
}

static int
token_revoke(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	cJSON	*res;
	int	 rc;

	rc = ctl_req_delete(ctx, cmd, argc, argv, "TOKEN or ID", "/v1/tokens",
	    &res, NULL);
	if (rc == CTL_EXIT_OK && !ctx->json)
		printf("token revoked\n");
	cJSON_Delete(res);
	return rc;
}

static int
token_revoke_all(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	const cJSON	*count;
	cJSON		*res;
	char		*a;
	int		 rc;

	rc = ctl_req_delete(ctx, cmd, argc, argv, "ACCOUNT",
	    "/v1/tokens/account", &res, &a);
	if (a == NULL)
		goto out;
	count = cJSON_GetObjectItemCaseSensitive(res, "count");
	if (cJSON_IsNumber(count))
		printf("revoked %.0f token%s of account %s\n",
		    count->valuedouble, count->valuedouble == 1 ? "" : "s", a);
	else
		printf("revoked all tokens of account %s\n", a);
	free(a);
out:
	cJSON_Delete(res);
	return rc;
}

const struct ctl_cmd ctl_cmd_token[] = {
	{ "create", token_create, NULL,
	  "ACCOUNT --scope S [--scope S]... --description D\n"
	  "\t[--address CIDR]... [--ttl SECONDS | --expires ISO8601]",
	  "Create an access token for ACCOUNT; prints it once, with its id.",
	  "      --scope S       imap-proxy, smtp, api or * (repeat, or "
	  "comma-separate)\n"
	  "      --description D what the token is for (1-1024 chars)\n"
	  "      --address CIDR  accept the token only from these client "
	  "addresses\n"
	  "                      (IPv4/IPv6 CIDR; repeat, or comma-separate)\n"
	  "      --ttl SECONDS   expire after SECONDS (1-31536000)\n"
	  "      --expires TIME  expire at TIME, ISO 8601 "
	  "(2026-12-31T00:00:00Z)\n" },
	{ "list", token_list, NULL,
	  "ACCOUNT [--page N] [--page-size N]",
	  "List ACCOUNT's tokens (never the tokens themselves).",
	  "      --page N        page to show, from 0\n"
	  "      --page-size N   tokens per page, 1-1000 (default 20)\n" },
	{ "show", token_show, NULL, "ID",
	  "Show one token's details by id.", NULL },
	{ "revoke", token_revoke, NULL, "TOKEN|ID",
	  "Revoke one token, given its id (preferred) or the token itself.",
	  NULL },
	{ "revoke-all", token_revoke_all, NULL, "ACCOUNT",
	  "Revoke every token of ACCOUNT.", NULL },
	{ NULL, NULL, NULL, NULL, NULL, NULL },
};
