/*
 * The commands posternctl dispatches to: one subcommand table per resource
 * (ctl_cmd_<resource>.c), and leaf handlers for single-word commands. A
 * later resource (oauth2, autoconfig, verify) adds a file, a line here and
 * a row in posternctl.c.
 */
#ifndef CTL_CTL_CMD_H
#define CTL_CTL_CMD_H

#include "ctl/ctl.h"

extern const struct ctl_cmd ctl_cmd_token[];	/* create list show revoke... */
extern const struct ctl_cmd ctl_cmd_account[];	/* add update list show... */
extern const struct ctl_cmd ctl_cmd_settings[];	/* get set */
extern const struct ctl_cmd ctl_cmd_oauth2[];	/* add update list show... */

/* health: GET /health. */
int	 ctl_cmd_health(struct ctl *, const struct ctl_cmd *, int, char **);
/* autoconfig ADDRESS: GET /v1/autoconfig. */
int	 ctl_cmd_autoconfig(struct ctl *, const struct ctl_cmd *, int, char **);
/* verify --file F.json: POST /v1/verifyAccount. */
int	 ctl_cmd_verify(struct ctl *, const struct ctl_cmd *, int, char **);

#endif
