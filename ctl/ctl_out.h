/*
 * Output for people and scripts: aligned tables for lists, "key: value"
 * lines for one object, pretty JSON for --json. Text from the daemon goes
 * through ctl_out_clean() so it cannot drive the terminal; secret-looking
 * fields are masked unless a command asks otherwise.
 */
#ifndef CTL_CTL_OUT_H
#define CTL_CTL_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#define CTL_OUT_MASK	"********"

struct ctl_out_table;

/* headers: NULL-terminated column titles (copied). */
struct ctl_out_table *ctl_out_table_new(const char *const *headers);
/* Adds the next cell, row by row; cell is cleaned and copied, NULL is
 * shown as "-". */
void	 ctl_out_table_add(struct ctl_out_table *, const char *cell);
/* Prints the header and rows, columns two spaces apart. */
void	 ctl_out_table_print(const struct ctl_out_table *, FILE *);
void	 ctl_out_table_free(struct ctl_out_table **);

/*
 * Prints an object as "key: value" lines, keys aligned, nested objects as
 * dotted keys ("imap.auth.user"), arrays of scalars joined by ", ".
 * nulltext is shown for null. With redact, values of secret fields (pass,
 * password, accessToken, refreshToken, clientSecret, secret) are masked.
 */
void	 ctl_out_kv(FILE *, const cJSON *, const char *nulltext, bool redact);
/* Pretty-prints j and a newline; with redact, masks as ctl_out_kv. */
void	 ctl_out_json(FILE *, const cJSON *j, bool redact);

/* Copy of s with control characters as '?' and, if maxw > 0, cut to maxw
 * columns ending in "..."; malloc'd. */
char	*ctl_out_clean(const char *s, size_t maxw);
/* The string member key of obj, or NULL (obj may be NULL). */
const char *ctl_out_str(const cJSON *obj, const char *key);
/* That member, or none if there is none, through ctl_out_clean(); malloc'd. */
char	*ctl_out_member(const cJSON *obj, const char *key, const char *none,
	    size_t maxw);
/* An ISO 8601 member as "2026-11-22T10:00:00Z" into out (>= 32 bytes), or
 * none if absent or null; unparsable text is shown cleaned. */
void	 ctl_out_time(const cJSON *obj, const char *key, const char *none,
	    char *out, size_t outlen);
/* Strings of an array member joined by ","; none if absent or empty.
 * malloc'd. */
char	*ctl_out_join(const cJSON *obj, const char *key, const char *none);

/* After a list: "N tokens", or with several pages which one this is and
 * how to get the next; from the total/page/pages members of res. */
void	 ctl_out_page_footer(FILE *, const cJSON *res, const char *one,
	    const char *many);

#endif
