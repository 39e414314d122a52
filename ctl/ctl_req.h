/*
 * The request shapes that several resource commands share: send a JSON
 * file, show one object, delete one item, list a resource page by page.
 * Each returns an exit code (enum ctl_exit) and, with --json, has printed
 * the answer with secrets masked; errors are printed by ctl_api().
 */
#ifndef CTL_CTL_REQ_H
#define CTL_CTL_REQ_H

#include <cjson/cJSON.h>

#include "ctl/ctl.h"

struct ctl_out_table;

/* "prefix/WORD" with word percent-encoded; malloc'd. */
char	*ctl_req_path(const char *prefix, const char *word);

/*
 * Sends the JSON object in file ("-": stdin) with method to path, as the
 * text was written, so the daemon sees exactly the file's numbers; the
 * text and its tree are wiped afterwards (account files hold passwords).
 * On CTL_EXIT_OK *res_r holds the answer; the caller deletes it.
 */
int	 ctl_req_file(struct ctl *, const char *method, const char *path,
	    const char *file, cJSON **res_r);

/* GET path, printed as JSON or as "key: value" lines (nulltext for
 * null). */
int	 ctl_req_get(struct ctl *, const char *path, const char *nulltext);

/*
 * A command with no options of its own and one word (posname: "ACCOUNT")
 * that names an item: GET prefix/WORD, printed as by ctl_req_get() with
 * "-" for null.
 */
int	 ctl_req_show(struct ctl *, const struct ctl_cmd *, int argc,
	    char **argv, const char *posname, const char *prefix);

/*
 * The same shape for DELETE prefix/WORD. *res_r is the answer or NULL
 * (the caller deletes it). If name_r is not NULL, *name_r is the word
 * cleaned for printing when the caller has a message to print (success,
 * no --json), else NULL; the caller frees it. The encoded word and the
 * path are wiped: the word may be a token.
 */
int	 ctl_req_delete(struct ctl *, const struct ctl_cmd *, int argc,
	    char **argv, const char *posname, const char *prefix,
	    cJSON **res_r, char **name_r);

/* A list command: --page, --page-size and, with param, one word. */
struct ctl_req_list {
	const char		*path;		/* "/v1/accounts" */
	const char		*param;		/* query name of the word, or
						   NULL for none */
	const char		*posname;	/* the word in messages */
	const char		*member;	/* the answer's array */
	const char *const	*hdr;		/* column titles */
	/* Adds one row to the table. */
	void			(*row)(struct ctl_out_table *, const cJSON *);
	/* The footer's noun: "1 token", "2 tokens". */
	const char		*one, *many;
};

/* GET path?[param=WORD][&page=N][&pageSize=N], printed as a table with a
 * page footer. */
int	 ctl_req_list(struct ctl *, const struct ctl_cmd *, int argc,
	    char **argv, const struct ctl_req_list *);

#endif
