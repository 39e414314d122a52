/*
 * Command dispatch, argument parsing and help for posternctl, shared by
 * every resource file; plus reading JSON input files within CTL_FILE_MAX
 * and wiping buffers that may hold passwords or tokens.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "ctl/ctl.h"

void
ctl_err(const char *fmt, ...)
{
	va_list	ap;

	fflush(stdout);
	fputs("posternctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
ctl_usage_error(const struct ctl *ctx, const struct ctl_cmd *cmd,
    const char *fmt, ...)
{
	va_list	ap;

	fflush(stdout);
	fprintf(stderr, "posternctl: %s: ", ctx->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: posternctl %s%s%s\n", ctx->cmd,
	    cmd->args[0] != '\0' ? " " : "", cmd->args);
	fprintf(stderr, "Run 'posternctl %s --help' for details.\n", ctx->cmd);
	return CTL_EXIT_USAGE;
}

void
ctl_list(FILE *fp, const struct ctl_cmd *table)
{
	const struct ctl_cmd	*c;
	int			 w = 0;

	for (c = table; c->name != NULL; c++)
		if ((int)strlen(c->name) > w)
			w = (int)strlen(c->name);
	for (c = table; c->name != NULL; c++)
		fprintf(fp, "  %-*s  %s\n", w, c->name, c->summary);
}

static void
help_group(const struct ctl *ctx, const struct ctl_cmd *cmd, FILE *fp)
{
	fprintf(fp, "usage: posternctl %s %s\n\n%s\n\nSubcommands:\n",
	    ctx->cmd, cmd->args, cmd->summary);
	ctl_list(fp, cmd->sub);
	fprintf(fp, "\nRun 'posternctl %s SUBCOMMAND --help' for details.\n",
	    ctx->cmd);
}

static void
help_leaf(const struct ctl *ctx, const struct ctl_cmd *cmd, FILE *fp)
{
	fprintf(fp, "usage: posternctl %s%s%s\n\n%s\n", ctx->cmd,
	    cmd->args[0] != '\0' ? " " : "", cmd->args, cmd->summary);
	fputs("\nOptions:\n", fp);
	if (cmd->help != NULL)
		fputs(cmd->help, fp);
	fputs("      --json          print the API's JSON response\n"
	      "  -h, --help          show this help\n", fp);
}

/* Appends name to the command path used in messages. */
static void
cmd_push(struct ctl *ctx, const char *name)
{
	size_t	len = strlen(ctx->cmd);

	snprintf(ctx->cmd + len, sizeof(ctx->cmd) - len, "%s%s",
	    len > 0 ? " " : "", name);
}

int
ctl_run(struct ctl *ctx, const struct ctl_cmd *table, int argc, char **argv)
{
	const struct ctl_cmd	*c;

	for (c = table; c->name != NULL; c++)
		if (strcmp(c->name, argv[0]) == 0)
			break;
	if (c->name == NULL) {
		fflush(stdout);
		if (ctx->cmd[0] == '\0')
			fprintf(stderr, "posternctl: unknown command '%s'\n"
			    "Run 'posternctl --help' for a list.\n", argv[0]);
		else
			fprintf(stderr, "posternctl: %s: unknown subcommand "
			    "'%s'\nRun 'posternctl %s --help' for a list.\n",
			    ctx->cmd, argv[0], ctx->cmd);
		return CTL_EXIT_USAGE;
	}
	cmd_push(ctx, c->name);
	if (c->sub == NULL)
		return c->run(ctx, c, argc - 1, argv + 1);
	if (argc < 2) {
		fflush(stdout);
		fprintf(stderr, "posternctl: %s: missing subcommand\n"
		    "usage: posternctl %s %s\nSubcommands:\n", ctx->cmd,
		    ctx->cmd, c->args);
		ctl_list(stderr, c->sub);
		fprintf(stderr, "Run 'posternctl %s SUBCOMMAND --help' for "
		    "details.\n", ctx->cmd);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		help_group(ctx, c, stdout);
		return CTL_EXIT_OK;
	}
	return ctl_run(ctx, c->sub, argc - 1, argv + 1);
}

static struct ctl_opt *
opt_find(struct ctl_opt *opts, const char *name, size_t len)
{
	struct ctl_opt	*o;

	for (o = opts; o != NULL && o->name != NULL; o++)
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

int
ctl_args(struct ctl *ctx, const struct ctl_cmd *cmd, int argc, char **argv,
    struct ctl_opt *opts, int minpos, int maxpos, const char *posnames,
    char ***pos_r, int *npos_r, int *rc_r)
{
	struct ctl_opt	*o;
	char		**pos, *a;
	const char	*name, *eq, *v;
	size_t		 len;
	int		 i, npos = 0;
	int		 dashdash = 0;

	pos = xcalloc((size_t)argc + 1, sizeof(*pos));
	for (i = 0; i < argc; i++) {
		a = argv[i];
		if (dashdash || a[0] != '-' || a[1] == '\0') {
			pos[npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dashdash = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			help_leaf(ctx, cmd, stdout);
			*rc_r = CTL_EXIT_OK;
			goto stop;
		}
		if (strcmp(a, "--json") == 0) {
			ctx->json = true;
			continue;
		}
		if (a[1] != '-') {
			*rc_r = ctl_usage_error(ctx, cmd, "unknown option '%s'",
			    a);
			goto stop;
		}
		name = a + 2;
		eq = strchr(name, '=');
		len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		if ((o = opt_find(opts, name, len)) == NULL) {
			*rc_r = ctl_usage_error(ctx, cmd,
			    "unknown option '--%.*s'", (int)len, name);
			goto stop;
		}
		if (!(o->flags & CTL_OPT_ARG)) {
			if (eq != NULL) {
				*rc_r = ctl_usage_error(ctx, cmd,
				    "option '--%s' takes no value", o->name);
				goto stop;
			}
			o->val = "";
			continue;
		}
		if (eq != NULL)
			v = eq + 1;
		else if (i + 1 < argc)
			v = argv[++i];
		else {
			*rc_r = ctl_usage_error(ctx, cmd,
			    "option '--%s' needs a value", o->name);
			goto stop;
		}
		if (o->flags & CTL_OPT_MULTI) {
			o->vals = xrealloc(o->vals,
			    (o->nvals + 1) * sizeof(*o->vals));
			o->vals[o->nvals++] = v;
		} else if (o->val != NULL) {
			*rc_r = ctl_usage_error(ctx, cmd,
			    "option '--%s' given more than once", o->name);
			goto stop;
		}
		o->val = v;
	}
	if (npos < minpos) {
		*rc_r = ctl_usage_error(ctx, cmd, "missing %s", posnames);
		goto stop;
	}
	if (maxpos >= 0 && npos > maxpos) {
		*rc_r = ctl_usage_error(ctx, cmd, "unexpected argument '%s'",
		    pos[maxpos]);
		goto stop;
	}
	*pos_r = pos;
	*npos_r = npos;
	return 0;
stop:
	free(pos);
	return -1;
}

int
ctl_page_query(const struct ctl *ctx, const struct ctl_cmd *cmd,
    const char *page, const char *size, char **query_r)
{
	long long	p = -1, n = -1;

	if (page != NULL && !str_to_ll(page, 0, 1000000000LL, &p))
		return ctl_usage_error(ctx, cmd,
		    "--page must be an integer from 0");
	if (size != NULL && !str_to_ll(size, 1, 1000, &n))
		return ctl_usage_error(ctx, cmd,
		    "--page-size must be an integer from 1 to 1000");
	if (p >= 0 && n >= 0)
		*query_r = xasprintf("&page=%lld&pageSize=%lld", p, n);
	else if (p >= 0)
		*query_r = xasprintf("&page=%lld", p);
	else if (n >= 0)
		*query_r = xasprintf("&pageSize=%lld", n);
	else
		*query_r = xstrdup("");
	return 0;
}

void
ctl_opts_free(struct ctl_opt *opts)
{
	struct ctl_opt	*o;

	for (o = opts; o->name != NULL; o++) {
		free(o->vals);
		o->vals = NULL;
		o->nvals = 0;
	}
}

void
ctl_wipe_free(char **p, size_t len)
{
	if (*p == NULL)
		return;
	explicit_bzero(*p, len);
	free(*p);
	*p = NULL;
}

static void
json_wipe(cJSON *j)
{
	for (; j != NULL; j = j->next) {
		if (j->valuestring != NULL)
			explicit_bzero(j->valuestring, strlen(j->valuestring));
		json_wipe(j->child);
	}
}

void
ctl_json_wipe_free(cJSON **jp)
{
	if (*jp == NULL)
		return;
	json_wipe(*jp);
	cJSON_Delete(*jp);
	*jp = NULL;
}

/* Reads at most CTL_FILE_MAX bytes; -1 after printing why. */
static int
read_limited(const char *path, char **buf_r, size_t *len_r)
{
	const char	*name = strcmp(path, "-") == 0 ? "<stdin>" : path;
	struct stat	 st;
	char		*buf = NULL;
	size_t		 len = 0, cap = CTL_FILE_MAX + 2;
	ssize_t		 n;
	int		 fd;

	if (strcmp(path, "-") == 0)
		fd = STDIN_FILENO;
	else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		ctl_err("%s: %s", name, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		ctl_err("%s: %s", name, strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		ctl_err("%s: is a directory", name);
		goto fail;
	}
	if (S_ISREG(st.st_mode) && st.st_size > CTL_FILE_MAX) {
		ctl_err("%s: file too large (%lld bytes; the limit is 1 MiB)",
		    name, (long long)st.st_size);
		goto fail;
	}
	/* One buffer of the final size: no realloc leaves password copies. */
	buf = xmalloc(cap);
	for (;;) {
		n = read(fd, buf + len, cap - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			ctl_err("%s: %s", name, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CTL_FILE_MAX) {
			ctl_err("%s: file too large (more than 1 MiB)", name);
			goto fail;
		}
	}
	buf[len] = '\0';
	if (fd != STDIN_FILENO)
		close(fd);
	*buf_r = buf;
	*len_r = len;
	return 0;
fail:
	ctl_wipe_free(&buf, cap);
	if (fd != STDIN_FILENO)
		close(fd);
	return -1;
}

/* Line and column of the byte at off, both from 1. */
static void
line_col(const char *buf, size_t off, int *line_r, int *col_r)
{
	size_t	i;

	*line_r = 1;
	*col_r = 1;
	for (i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			(*line_r)++;
			*col_r = 1;
		} else
			(*col_r)++;
	}
}

int
ctl_read_json_file(const char *path, char **buf_r, size_t *len_r,
    cJSON **json_r)
{
	const char	*name = strcmp(path, "-") == 0 ? "<stdin>" : path;
	const char	*end = NULL;
	char		*buf;
	size_t		 len;
	cJSON		*j;
	int		 line, col;

	if (read_limited(path, &buf, &len) == -1)
		return -1;
	if (memchr(buf, '\0', len) != NULL) {
		ctl_err("%s: not JSON (contains a NUL byte)", name);
		goto fail;
	}
	/*
	 * The length includes the NUL: cJSON's require_null_terminated check
	 * looks for it inside the given length. Errors give the position only,
	 * never the text around it, which may be a password.
	 */
	j = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
	if (j == NULL) {
		if (end == NULL || end < buf || end > buf + len)
			end = buf + len;
		line_col(buf, (size_t)(end - buf), &line, &col);
		ctl_err("%s: invalid JSON at line %d, column %d", name, line,
		    col);
		goto fail;
	}
	if (!cJSON_IsObject(j)) {
		ctl_err("%s: the top-level JSON value must be an object", name);
		ctl_json_wipe_free(&j);
		goto fail;
	}
	*buf_r = buf;
	*len_r = len;
	*json_r = j;
	return 0;
fail:
	ctl_wipe_free(&buf, len);
	return -1;
}
