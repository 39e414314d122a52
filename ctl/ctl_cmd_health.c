/*
 * posternctl health: GET /health. Exit 0 when the daemon and its Redis
 * answer, 1 otherwise (503 while Redis is down), so scripts can poll it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ctl/ctl.h"
#include "ctl/ctl_api.h"
#include "ctl/ctl_cmd.h"
#include "ctl/ctl_out.h"

int
ctl_cmd_health(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	struct ctl_opt	 opts[] = { { .name = NULL } };
	cJSON		*res = NULL;
	char		**pos = NULL;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 0, 0, "", &pos, &npos,
	    &rc) == -1)
		goto out;
	if ((rc = ctl_api(ctx, "GET", "/health", NULL, 0, &res)) != 0)
		goto out;
	if (ctx->json)
		ctl_out_json(stdout, res, true);
	else
		ctl_out_kv(stdout, res, "null", true);
out:
	cJSON_Delete(res);
	free(pos);
	return rc;
}
