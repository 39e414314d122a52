/*
 * Admin API calls and their error reporting. Error bodies follow
 * docs/API.md: {"statusCode", "error", "message", "field"}; a body that is
 * not JSON (a proxy, an older daemon) still yields a one-line message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "ctl/ctl.h"
#include "ctl/ctl_api.h"
#include "ctl/ctl_http.h"
#include "ctl/ctl_out.h"
#include "ctl/ctl_sock.h"

static void
api_error(long status, const cJSON *j)
{
	const char	*msg, *field;
	char		*m, *f;

	msg = ctl_out_str(j, "message");
	if (msg == NULL || *msg == '\0')
		msg = ctl_out_str(j, "error");
	field = ctl_out_str(j, "field");
	if (msg == NULL || *msg == '\0') {
		ctl_err("admin API answered HTTP %ld", status);
		return;
	}
	m = ctl_out_clean(msg, 0);
	if (field != NULL && *field != '\0') {
		f = ctl_out_clean(field, 0);
		ctl_err("%s (field: %s)", m, f);
		free(f);
	} else
		ctl_err("%s", m);
	free(m);
}

int
ctl_api(struct ctl *ctx, const char *method, const char *path,
    const char *body, size_t len, cJSON **out_r)
{
	struct ctl_http_resp	 resp;
	char			 err[1024];
	cJSON			*j = NULL;
	const char		*p;
	int			 rc = CTL_EXIT_FAIL;

	*out_r = NULL;
	if (ctx->sock == NULL && (ctx->sock = ctl_sock_find(ctx->sock_opt)) ==
	    NULL)
		return CTL_EXIT_FAIL;
	if (ctl_http_request(ctx->sock, method, path, body, len, &resp, err,
	    sizeof(err)) == -1) {
		ctl_err("%s", err);
		return CTL_EXIT_FAIL;
	}
	for (p = resp.body; *p == ' ' || *p == '\t' || *p == '\r' ||
	    *p == '\n'; p++)
		;
	if (*p == '\0')
		j = cJSON_CreateObject();
	else
		j = cJSON_ParseWithLengthOpts(resp.body, resp.len + 1, NULL, 1);
	if (resp.status < 200 || resp.status > 299) {
		if (ctx->json && j != NULL && *p != '\0')
			ctl_out_json(stdout, j, false);
		api_error(resp.status, j);
		goto out;
	}
	if (j == NULL) {
		ctl_err("admin API answered HTTP %ld with invalid JSON",
		    resp.status);
		goto out;
	}
	*out_r = j;
	j = NULL;
	rc = CTL_EXIT_OK;
out:
	ctl_json_wipe_free(&j);
	ctl_http_resp_free(&resp);
	return rc;
}

int
ctl_api_json(struct ctl *ctx, const char *method, const char *path,
    const cJSON *body, cJSON **out_r)
{
	char	*s = NULL;
	size_t	 len = 0;
	int	 rc;

	if (body != NULL) {
		if ((s = cJSON_PrintUnformatted(body)) == NULL) {
			ctl_err("cannot serialize the request");
			return CTL_EXIT_FAIL;
		}
		len = strlen(s);
	}
	rc = ctl_api(ctx, method, path, s, len, out_r);
	if (s != NULL) {
		explicit_bzero(s, len);
		cJSON_free(s);
	}
	return rc;
}
