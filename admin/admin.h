/*
 * The admin API (docs/API.md): HTTP/1.1 + JSON with evhttp on the admin
 * Unix socket (mode 0600), and optionally on TCP with a bearer token of
 * scope "api". Runs in the master process on its event loop; every
 * request is answered from Redis through the given tok connection.
 */
#ifndef ADMIN_ADMIN_H
#define ADMIN_ADMIN_H

#include <stddef.h>

struct event_base;
struct cfg;
struct tok;
struct admin;

/* Creates the listening sockets (cfg->admin_socket: parent directory made
 * 0700 if missing, a stale socket file replaced, refused if another
 * daemon answers on it; cfg->admin_listen if set) and starts serving.
 * cfg and tok must outlive the admin object. Returns NULL with a message
 * in err on failure. */
struct admin	*admin_new(struct event_base *, const struct cfg *,
		    struct tok *, char *err, size_t errlen);
/* Closes the listeners and any request in progress, unlinks the socket
 * file. NULL is fine; sets the pointer to NULL. */
void		 admin_free(struct admin **);

#endif
