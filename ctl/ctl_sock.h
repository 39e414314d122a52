/*
 * Where the admin socket is: -s, $POSTERN_ADMIN_SOCKET, run/admin.sock in
 * the checkout the binary was built in, ./run/admin.sock (only a socket of
 * ours in a ./run of ours that others cannot write: a socket planted in a
 * shared directory would receive the passwords we send), then the
 * packaged /run/postern/admin.sock.
 */
#ifndef CTL_CTL_SOCK_H
#define CTL_CTL_SOCK_H

#define CTL_SOCK_ENV		"POSTERN_ADMIN_SOCKET"
#define CTL_SOCK_SYSTEM		"/run/postern/admin.sock"

/*
 * Returns the socket path to use (malloc'd): opt if not NULL, else the
 * environment variable if set and non-empty, else the first candidate that
 * exists. If none exists, prints the candidates tried and returns NULL.
 */
char	*ctl_sock_find(const char *opt);

#endif
