/*
 * Request shapes shared by the resource commands (ctl_req.h): each is
 * argument parsing, one ctl_api() call and the printing that is the same
 * for every resource; the commands keep what differs (paths, messages,
 * table rows).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "ctl/ctl.h"
#include "ctl/ctl_api.h"
#include "ctl/ctl_http.h"
#include "ctl/ctl_out.h"
#include "ctl/ctl_req.h"

char *
ctl_req_path(const char *prefix, const char *word)
{
	char	*w = ctl_http_escape(word), *path;

	path = xasprintf("%s/%s", prefix, w);
	ctl_wipe_free(&w, strlen(w));
	return path;
}

int
ctl_req_file(struct ctl *ctx, const char *method, const char *path,
    const char *file, cJSON **res_r)
{
	cJSON	*j = NULL;
	char	*buf = NULL;
	size_t	 len = 0;
	int	 rc;

	*res_r = NULL;
	if (ctl_read_json_file(file, &buf, &len, &j) == -1)
		return CTL_EXIT_FAIL;
	rc = ctl_api(ctx, method, path, buf, len, res_r);
	ctl_json_wipe_free(&j);
	ctl_wipe_free(&buf, len);
	if (rc == CTL_EXIT_OK && ctx->json)
		ctl_out_json(stdout, *res_r, true);
	return rc;
}

int
ctl_req_get(struct ctl *ctx, const char *path, const char *nulltext)
{
	cJSON	*res = NULL;
	int	 rc;

	if ((rc = ctl_api(ctx, "GET", path, NULL, 0, &res)) != CTL_EXIT_OK)
		return rc;
	if (ctx->json)
		ctl_out_json(stdout, res, true);
	else
		ctl_out_kv(stdout, res, nulltext, true);
	ctl_json_wipe_free(&res);
	return rc;
}

int
ctl_req_show(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv, const char *posname, const char *prefix)
{
	struct ctl_opt	 opts[] = { { .name = NULL } };
	char		**pos = NULL, *path;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 1, 1, posname, &pos, &npos,
	    &rc) == -1)
		return rc;
	path = ctl_req_path(prefix, pos[0]);
	rc = ctl_req_get(ctx, path, "-");
	free(path);
	free(pos);
	return rc;
}

int
ctl_req_delete(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv, const char *posname, const char *prefix, cJSON **res_r,
    char **name_r)
{
	struct ctl_opt	 opts[] = { { .name = NULL } };
	char		**pos = NULL, *path;
	int		 npos, rc;

	*res_r = NULL;
	if (name_r != NULL)
		*name_r = NULL;
	if (ctl_args(ctx, cmd, argc, argv, opts, 1, 1, posname, &pos, &npos,
	    &rc) == -1)
		return rc;
	path = ctl_req_path(prefix, pos[0]);
	rc = ctl_api(ctx, "DELETE", path, NULL, 0, res_r);
	ctl_wipe_free(&path, strlen(path));
	if (rc == CTL_EXIT_OK && ctx->json)
		ctl_out_json(stdout, *res_r, true);
	else if (rc == CTL_EXIT_OK && name_r != NULL)
		*name_r = ctl_out_clean(pos[0], 0);
	free(pos);
	return rc;
}

int
ctl_req_list(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv, const struct ctl_req_list *l)
{
	struct ctl_opt	 opts[] = {
		{ .name = "page", .flags = CTL_OPT_ARG },
		{ .name = "page-size", .flags = CTL_OPT_ARG },
		{ .name = NULL },
	};
	struct ctl_out_table	*t = NULL;
	const cJSON	*e;
	cJSON		*res = NULL;
	char		**pos = NULL, *q = NULL, *path = NULL, *w, *wq;
	int		 nw = l->param != NULL ? 1 : 0, npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, nw, nw, nw > 0 ?
	    l->posname : "", &pos, &npos, &rc) == -1)
		goto out;
	if ((rc = ctl_page_query(ctx, cmd, opts[0].val, opts[1].val, &q)) != 0)
		goto out;
	if (l->param != NULL) {
		w = ctl_http_escape(pos[0]);
		wq = xasprintf("&%s=%s%s", l->param, w, q);
		free(w);
		free(q);
		q = wq;
	}
	path = q[0] != '\0' ? xasprintf("%s?%s", l->path, q + 1) :
	    xstrdup(l->path);
	if ((rc = ctl_api(ctx, "GET", path, NULL, 0, &res)) != 0)
		goto out;
	if (ctx->json) {
		ctl_out_json(stdout, res, true);
		goto out;
	}
	t = ctl_out_table_new(l->hdr);
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res, l->member))
		l->row(t, e);
	ctl_out_table_print(t, stdout);
	ctl_out_page_footer(stdout, res, l->one, l->many);
out:
	ctl_out_table_free(&t);
	cJSON_Delete(res);
	ctl_opts_free(opts);
	free(pos);
	free(q);
	free(path);
	return rc;
}
