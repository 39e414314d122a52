/*
 * posternctl settings get|set (docs/API.md "Settings"). A value on the
 * command line is JSON when it parses as JSON
 * (true, 3, null, {"a":1}, "quoted"), else it is sent as a string.
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
#include "ctl/ctl_req.h"

static int
settings_get(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	struct ctl_opt	 opts[] = { { .name = NULL } };
	char		**pos = NULL, *path, *k, *n;
	int		 i, npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 0, -1, "", &pos, &npos,
	    &rc) == -1)
		return rc;
	path = xstrdup("/v1/settings");
	for (i = 0; i < npos; i++) {
		k = ctl_http_escape(pos[i]);
		n = xasprintf("%s%c%s=true", path, i == 0 ? '?' : '&', k);
		free(k);
		free(path);
		path = n;
	}
	rc = ctl_req_get(ctx, path, "null");
	free(pos);
	free(path);
	return rc;
}

/* VALUE as JSON if it is a complete JSON text, else as a string. */
static cJSON *
settings_value(const char *v)
{
	cJSON	*j;

	if ((j = cJSON_ParseWithOpts(v, NULL, 1)) != NULL)
		return j;
	return cJSON_CreateString(v);
}

static int
settings_set(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	struct ctl_opt	 opts[] = { { .name = NULL } };
	const cJSON	*upd;
	cJSON		*req = NULL, *res = NULL;
	char		**pos = NULL, *s;
	int		 i, npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 1, -1, "KEY VALUE", &pos,
	    &npos, &rc) == -1)
		goto out;
	if (npos % 2 != 0) {
		rc = ctl_usage_error(ctx, cmd, "missing VALUE for '%s'",
		    pos[npos - 1]);
		goto out;
	}
	req = cJSON_CreateObject();
	for (i = 0; i < npos; i += 2) {
		if (cJSON_GetObjectItemCaseSensitive(req, pos[i]) != NULL) {
			rc = ctl_usage_error(ctx, cmd, "'%s' given twice",
			    pos[i]);
			goto out;
		}
		cJSON_AddItemToObject(req, pos[i], settings_value(pos[i + 1]));
	}
	if ((rc = ctl_api_json(ctx, "POST", "/v1/settings", req, &res)) != 0)
		goto out;
	if (ctx->json) {
		ctl_out_json(stdout, res, true);
		goto out;
	}
	upd = cJSON_GetObjectItemCaseSensitive(res, "updated");
	s = ctl_out_join(res, "updated", "nothing");
	printf("updated: %s\n", cJSON_IsArray(upd) || cJSON_IsString(upd) ?
	    s : "ok");
	free(s);
out:
	cJSON_Delete(req);
	cJSON_Delete(res);
	free(pos);
	return rc;
}

const struct ctl_cmd ctl_cmd_settings[] = {
	{ "get", settings_get, NULL, "[KEY...]",
	  "Show all settings, or the named ones.", NULL },
	{ "set", settings_set, NULL, "KEY VALUE [KEY VALUE]...",
	  "Change settings. VALUE is JSON if it parses as JSON (true, 30, "
	  "null,\n{\"a\":1}, \"text\"), else a string.", NULL },
	{ NULL, NULL, NULL, NULL, NULL, NULL },
};
