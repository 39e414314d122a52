/*
 * One admin API call as the commands see it: find the socket, send, parse
 * the JSON answer, and turn every failure into a printed message and an
 * exit code, so that each command handles only the success case.
 */
#ifndef CTL_CTL_API_H
#define CTL_CTL_API_H

#include <stddef.h>

#include <cjson/cJSON.h>

struct ctl;

/*
 * Sends method path with an optional JSON body (NULL for none). On a 2xx
 * answer returns CTL_EXIT_OK with the parsed body in *out_r (an empty
 * object if the body was empty); the caller deletes it. Otherwise prints
 * "posternctl: MESSAGE (field: F)" to stderr (with --json, also the error
 * body to stdout), sets *out_r to NULL and returns CTL_EXIT_FAIL.
 */
int	 ctl_api(struct ctl *, const char *method, const char *path,
	    const char *body, size_t len, cJSON **out_r);
/* Same, with body serialized from a tree (compact), or NULL for none. */
int	 ctl_api_json(struct ctl *, const char *method, const char *path,
	    const cJSON *body, cJSON **out_r);

#endif
