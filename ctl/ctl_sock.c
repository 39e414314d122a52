/*
 * Admin socket lookup. The binary is BUILD/posternctl inside a checkout
 * (./posternctl at the top is a symlink to it), and `make run` puts the
 * socket in run/ at the top of that checkout, so /proc/self/exe (which
 * resolves the symlink) finds it from any working directory.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "ctl/ctl.h"
#include "ctl/ctl_sock.h"

#define SOCK_CANDIDATES_MAX	4
#define SOCK_CWD_DIR		"./run"
#define SOCK_CWD		SOCK_CWD_DIR "/admin.sock"

/*
 * A candidate counts if it is a socket, or if we may not look: then the
 * connect error ("Permission denied") says more than "not found".
 */
static bool
sock_exists(const char *path)
{
	struct stat	st;

	if (stat(path, &st) == 0)
		return S_ISSOCK(st.st_mode);
	return errno == EACCES;
}

/*
 * ./run/admin.sock is found through the current directory, which may be
 * anyone's (/tmp): whoever made the socket would receive the passwords of
 * `account add`. It counts only if it is our own socket (not a link to
 * one) in our own directory that others cannot write to (else they could
 * swap it between this check and connect()). why_r says what was wrong.
 */
static bool
sock_cwd_is_ours(const char **why_r)
{
	struct stat	st;
	uid_t		uid = geteuid();

	*why_r = NULL;
	if (lstat(SOCK_CWD, &st) == -1)
		return false;			/* nothing there: quietly */
	if (!S_ISSOCK(st.st_mode))
		*why_r = "not a socket";
	else if (st.st_uid != uid)
		*why_r = "not owned by you";
	else if (lstat(SOCK_CWD_DIR, &st) == -1 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != uid || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		*why_r = "its directory is not yours alone";
	return *why_r == NULL;
}

/* Adds dirname(exe)/../run/admin.sock and dirname(exe)/run/admin.sock. */
static int
exe_candidates(char **cand, int n)
{
	char	 exe[PATH_MAX];
	char	*slash;
	ssize_t	 len;

	if ((len = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
		return n;
	exe[len] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return n;
	*slash = '\0';				/* exe is now dirname */
	if ((slash = strrchr(exe, '/')) != NULL)
		cand[n++] = xasprintf("%.*s/run/admin.sock",
		    (int)(slash - exe), exe);
	cand[n++] = xasprintf("%s/run/admin.sock", exe);
	return n;
}

char *
ctl_sock_find(const char *opt)
{
	char		*cand[SOCK_CANDIDATES_MAX], *found = NULL;
	const char	*env, *why[SOCK_CANDIDATES_MAX] = { NULL };
	int		 i, n = 0;

	if (opt != NULL)
		return xstrdup(opt);
	if ((env = getenv(CTL_SOCK_ENV)) != NULL && *env != '\0')
		return xstrdup(env);
	n = exe_candidates(cand, n);
	cand[n++] = xstrdup(SOCK_CWD);
	cand[n++] = xstrdup(CTL_SOCK_SYSTEM);
	for (i = 0; i < n && found == NULL; i++) {
		if (strcmp(cand[i], SOCK_CWD) == 0) {
			if (sock_cwd_is_ours(&why[i]))
				found = xstrdup(cand[i]);
		} else if (sock_exists(cand[i]))
			found = xstrdup(cand[i]);
	}
	if (found == NULL) {
		ctl_err("no admin socket found; tried:");
		for (i = 0; i < n; i++)
			fprintf(stderr, "  %s%s%s%s\n", cand[i],
			    why[i] != NULL ? " (ignored: " : "",
			    why[i] != NULL ? why[i] : "",
			    why[i] != NULL ? ")" : "");
		fprintf(stderr, "Is posternd running? Use -s SOCKET or set "
		    CTL_SOCK_ENV ".\n");
	}
	for (i = 0; i < n; i++)
		free(cand[i]);
	return found;
}
