/*
 * posternctl health: GET /health. Exit 0 when the daemon and its Redis
 * answer, 1 otherwise (503 while Redis is down), so scripts can poll it.
 */
#include <stdlib.h>

#include "ctl/ctl.h"
#include "ctl/ctl_cmd.h"
#include "ctl/ctl_req.h"

int
ctl_cmd_health(struct ctl *ctx, const struct ctl_cmd *cmd, int argc,
    char **argv)
{
	struct ctl_opt	 opts[] = { { .name = NULL } };
	char		**pos = NULL;
	int		 npos, rc;

	if (ctl_args(ctx, cmd, argc, argv, opts, 0, 0, "", &pos, &npos,
	    &rc) == -1)
		return rc;
	rc = ctl_req_get(ctx, "/health", "null");
	free(pos);
	return rc;
}
