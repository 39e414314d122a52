/*
 * posternctl core: the run context, the command table that main and every
 * resource file share, argument parsing with per-command --help, and small
 * helpers for input files and secrets. One table row per command, so a new
 * command (oauth2, autoconfig, verify) is a new row plus its handler.
 */
#ifndef CTL_CTL_H
#define CTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#ifndef POSTERN_VERSION
#define POSTERN_VERSION		"0.1.0"
#endif

/* Account files and other JSON inputs; the daemon's default body_max. */
#define CTL_FILE_MAX		(1024 * 1024)
#define CTL_CMD_MAX		64

enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAIL = 1,	/* API error, cannot connect, unusable input */
	CTL_EXIT_USAGE = 2,	/* unknown command or option, bad argument */
};

struct ctl {
	const char	*sock_opt;		/* -s, or NULL */
	char		*sock;			/* resolved on first request */
	bool		 json;			/* --json */
	char		 cmd[CTL_CMD_MAX];	/* "token create" */
};

struct ctl_cmd;
/* argv holds the words after the command name; returns an enum ctl_exit. */
typedef int ctl_run_fn(struct ctl *, const struct ctl_cmd *, int argc,
    char **argv);

/* A leaf has run; a group has sub (terminated by a row with name NULL). */
struct ctl_cmd {
	const char		*name;
	ctl_run_fn		*run;
	const struct ctl_cmd	*sub;
	const char		*args;		/* synopsis after the name */
	const char		*summary;	/* one line */
	const char		*help;		/* options text, or NULL */
};

/* Looks argv[0] up in table and runs it (descending into groups), handling
 * "GROUP --help", a missing or unknown (sub)command. Returns an exit code. */
int	 ctl_run(struct ctl *, const struct ctl_cmd *table, int argc,
	    char **argv);
/* Prints the list of table's commands, indented, to fp. */
void	 ctl_list(FILE *fp, const struct ctl_cmd *table);
/* Prints "posternctl: CMD: msg", the usage line and a --help hint to
 * stderr; returns CTL_EXIT_USAGE. */
int	 ctl_usage_error(const struct ctl *, const struct ctl_cmd *,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints "posternctl: msg" to stderr. */
void	 ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CTL_OPT_ARG	0x1	/* takes a value: --name V or --name=V */
#define CTL_OPT_MULTI	0x2	/* may repeat; every value is kept */

struct ctl_opt {
	const char	 *name;		/* without "--"; NULL ends the array */
	int		  flags;
	/* Results, pointing into argv. */
	const char	 *val;		/* last value, "" for a flag, or NULL */
	const char	**vals;		/* CTL_OPT_MULTI: all values */
	size_t		  nvals;
};

/*
 * Parses a leaf command's words: options from opts (plus --json, -h/--help
 * and "--") anywhere among them, and between minpos and maxpos (-1: no limit)
 * positional words, which are returned in *pos_r (free() it; the strings
 * are argv's). posnames ("ACCOUNT", "KEY VALUE") names missing ones.
 * Returns 0, or -1 with *rc_r set after printing help (0) or a usage
 * error (2).
 */
int	 ctl_args(struct ctl *, const struct ctl_cmd *, int argc, char **argv,
	    struct ctl_opt *opts, int minpos, int maxpos, const char *posnames,
	    char ***pos_r, int *npos_r, int *rc_r);
/*
 * Checks --page (>= 0) and --page-size (1..1000), either may be NULL, and
 * appends "&page=N&pageSize=N" for those given to *query_r (malloc'd, may
 * be empty). Returns 0, or CTL_EXIT_USAGE after printing why.
 */
int	 ctl_page_query(const struct ctl *, const struct ctl_cmd *,
	    const char *page, const char *size, char **query_r);
/* Frees the vals arrays of opts. */
void	 ctl_opts_free(struct ctl_opt *opts);

/*
 * Reads path ("-" is stdin), at most CTL_FILE_MAX bytes, and parses it as a
 * JSON object. Returns 0 with the raw text in *buf_r, *len_r (NUL-terminated;
 * release with ctl_wipe_free) and the tree in *json_r (release with
 * ctl_json_wipe_free), or -1 after printing why. Never prints file
 * content: account files carry passwords.
 */
int	 ctl_read_json_file(const char *path, char **buf_r, size_t *len_r,
	    cJSON **json_r);
/* Zeroes len bytes of *p, frees it, sets *p to NULL. */
void	 ctl_wipe_free(char **p, size_t len);
/* Zeroes every string in the tree, deletes it, sets *jp to NULL. */
void	 ctl_json_wipe_free(cJSON **jp);

#endif
