/*
 * posternctl verify --file F.json [--mailbox NAME]: POST /v1/verifyAccount
 * (docs/API.md "Verify"). The file is an account registration body; the
 * daemon logs in to its IMAP and SMTP servers and says what is wrong. Exit
 * status 1 if any check failed, so scripts can gate on it. The file holds
 * passwords: it is wiped after sending and never printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/ctl_api.h"
#include "ctl/ctl_cmd.h"
#include "ctl/ctl_out.h"

#define VERIFY_HINT_WIDTH	72

/* Prints text folded at spaces into lines of at most width columns, each
 * after indent. */
static void
print_folded(const char *indent, const char *text, size_t width)
{
	const char *p = text;

	while (*p != '\0') {
		size_t n = strlen(p), cut = n;

		if (n > width) {
			cut = width;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0)
				cut = width;
		}
		printf("%s%.*s\n", indent, (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

/* Returns true if the check succeeded. */
static bool
print_check(const char *name, const cJSON *c)
{
	const char	*code = ctl_out_str(c, "code");
	char		*err, *hint;

	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "success"))) {
		printf("%s: ok\n", name);
		return true;
	}
	err = ctl_out_member(c, "error", "failed", 0);
	printf("%s: FAILED (%s): %s\n", name, code != NULL ? code : "?", err);
	free(err);
	if (ctl_out_str(c, "hint") != NULL) {
		hint = ctl_out_clean(ctl_out_str(c, "hint"), 0);
		print_folded("      ", hint, VERIFY_HINT_WIDTH);
		free(hint);
	}
	return false;
}

int
ctl_cmd_verify(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	struct ctl_opt	 opts[] = {
		{ .name = "file", .flags = CTL_OPT_ARG },
		{ .name = "mailbox", .flags = CTL_OPT_ARG },
		{ .name = NULL },
	};
	const cJSON	*c;
	cJSON		*j = NULL, *res = NULL;
	char		**pos = NULL, *buf = NULL;
	size_t		 len = 0;
	bool		 ok = true;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 0, 0, "", &pos, &npos,
	    &rc) == -1)
		goto out;
	if (opts[0].val == NULL || *opts[0].val == '\0') {
		rc = ctl_usage_error(ctx, cmd, "--file is required");
		goto out;
	}
	if (ctl_read_json_file(opts[0].val, &buf, &len, &j) == -1) {
		rc = CTL_EXIT_FAIL;
		goto out;
	}
	if (opts[1].val != NULL) {
		cJSON_DeleteItemFromObjectCaseSensitive(j, "mailbox");
		cJSON_AddStringToObject(j, "mailbox", opts[1].val);
		rc = ctl_api_json(ctx, "POST", "/v1/verifyAccount", j, &res);
	} else	/* the text as written */
		rc = ctl_api(ctx, "POST", "/v1/verifyAccount", buf, len, &res);
	if (rc != CTL_EXIT_OK)
		goto out;
	if (ctx->json)
		ctl_out_json(stdout, res, true);
	else {
		c = cJSON_GetObjectItemCaseSensitive(res, "imap");
		if (c != NULL && !print_check("imap", c))
			ok = false;
		c = cJSON_GetObjectItemCaseSensitive(res, "smtp");
		if (c != NULL && !print_check("smtp", c))
			ok = false;
	}
	cJSON_ArrayForEach(c, res)
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c,
		    "success")))
			ok = false;
	rc = ok ? CTL_EXIT_OK : CTL_EXIT_FAIL;
out:
	ctl_json_wipe_free(&j);
	if (buf != NULL)
		ctl_wipe_free(&buf, len);
	cJSON_Delete(res);
	free(pos);
	return rc;
}
