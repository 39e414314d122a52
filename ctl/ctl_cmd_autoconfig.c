/*
 * posternctl autoconfig ADDRESS: GET /v1/autoconfig (docs/API.md
 * "Autoconfig"). Prints the IMAP and SMTP settings found and where they
 * came from; when nothing is found, what was tried, so that an admin sees
 * which DNS record or document to fix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "ctl/ctl.h"
#include "ctl/ctl_cmd.h"
#include "ctl/ctl_http.h"
#include "ctl/ctl_out.h"
#include "ctl/ctl_sock.h"

static void
print_server(const char *label, const cJSON *s)
{
	const cJSON	*port = cJSON_GetObjectItemCaseSensitive(s, "port");
	char		*host;

	if (!cJSON_IsObject(s)) {
		printf("%-7s not found\n", label);
		return;
	}
	host = ctl_out_member(s, "host", "?", 0);
	printf("%-7s %s:%d %s\n", label, host, cJSON_IsNumber(port) ?
	    port->valueint : 0, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
	    s, "secure")) ? "secure: true (TLS)" :
	    "secure: false (STARTTLS)");
	free(host);
}

/* "nothing found": the message, then each attempt. */
static void
print_tried(const cJSON *j)
{
	static const char *const hdr[] = { "SOURCE", "TARGET", "RESULT",
	    NULL };
	struct ctl_out_table	*t = ctl_out_table_new(hdr);
	const cJSON		*e;
	char			*m;

	m = ctl_out_member(j, "message", "no settings found", 0);
	ctl_err("%s", m);
	free(m);
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "tried")) {
		ctl_out_table_add(t, ctl_out_str(e, "source"));
		ctl_out_table_add(t, ctl_out_str(e, "target"));
		ctl_out_table_add(t, ctl_out_str(e, "result"));
	}
	ctl_out_table_print(t, stderr);
	ctl_out_table_free(&t);
}

int
ctl_cmd_autoconfig(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	struct ctl_opt		 opts[] = { { .name = NULL } };
	struct ctl_http_resp	 resp;
	cJSON			*j = NULL;
	char			**pos = NULL, *q = NULL, *path = NULL;
	char			 err[1024], *src;
	int			 npos, rc;

	memset(&resp, 0, sizeof(resp));
	if (ctl_args(ctx, cmd, argc, argv, opts, 1, 1, "ADDRESS", &pos, &npos,
	    &rc) == -1)
		goto out;
	if (strchr(pos[0], '@') == NULL) {
		rc = ctl_usage_error(ctx, cmd, "'%s' is not an email address",
		    pos[0]);
		goto out;
	}
	rc = CTL_EXIT_FAIL;
	if (ctx->sock == NULL &&
	    (ctx->sock = ctl_sock_find(ctx->sock_opt)) == NULL)
		goto out;
	q = ctl_http_escape(pos[0]);
	path = xasprintf("/v1/autoconfig?email=%s", q);
	/* Not ctl_api: a 404 carries the list of what was tried. */
	if (ctl_http_request(ctx->sock, "GET", path, NULL, 0, &resp, err,
	    sizeof(err)) == -1) {
		ctl_err("%s", err);
		goto out;
	}
	j = cJSON_ParseWithLength(resp.body, resp.len);
	if (j == NULL) {
		ctl_err("admin API answered HTTP %ld with invalid JSON",
		    resp.status);
		goto out;
	}
	if (ctx->json)
		ctl_out_json(stdout, j, false);
	if (resp.status == 404 && cJSON_GetObjectItemCaseSensitive(j,
	    "tried") != NULL) {
		if (!ctx->json)
			print_tried(j);
		goto out;
	}
	if (resp.status != 200) {
		src = ctl_out_member(j, "message", "request failed", 0);
		ctl_err("%s", src);
		free(src);
		goto out;
	}
	rc = CTL_EXIT_OK;
	if (ctx->json)
		goto out;
	print_server("imap:", cJSON_GetObjectItemCaseSensitive(j, "imap"));
	print_server("smtp:", cJSON_GetObjectItemCaseSensitive(j, "smtp"));
	src = ctl_out_member(j, "source", "?", 0);
	printf("%-7s %s\n", "source:", src);
	free(src);
out:
	cJSON_Delete(j);
	if (resp.body != NULL)
		ctl_http_resp_free(&resp);
	free(pos);
	free(q);
	free(path);
	return rc;
}
