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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "ctl/ctl.h"
#include "ctl/ctl_sock.h"

#define SOCK_CANDIDATES_MAX	4

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
	const char	*env;
	int		 i, n = 0;

	if (opt != NULL)
		return xstrdup(opt);
	if ((env = getenv(CTL_SOCK_ENV)) != NULL && *env != '\0')
		return xstrdup(env);
	n = exe_candidates(cand, n);
	cand[n++] = xstrdup("./run/admin.sock");
	cand[n++] = xstrdup(CTL_SOCK_SYSTEM);
	for (i = 0; i < n && found == NULL; i++)
		if (sock_exists(cand[i]))
			found = xstrdup(cand[i]);
	if (found == NULL) {
		ctl_err("no admin socket found; tried:");
		for (i = 0; i < n; i++)
			fprintf(stderr, "  %s\n", cand[i]);
		fprintf(stderr, "Is posternd running? Use -s SOCKET or set "
		    CTL_SOCK_ENV ".\n");
	}
	for (i = 0; i < n; i++)
		free(cand[i]);
	return found;
}
