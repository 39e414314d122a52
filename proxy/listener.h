/*
 * Listening sockets: parse nothing (the config did), bind with SO_REUSEPORT
 * so every worker has its own accept queue, and hand accepted fds to
 * sess_new with the listener's protocol.
 */
#ifndef PROXY_LISTENER_H
#define PROXY_LISTENER_H

#include <stddef.h>

struct cfg_listen;

/* Binds a listening TCP socket for l (SO_REUSEPORT, IPV6_V6ONLY for v6,
 * non-blocking, close-on-exec). Returns the fd, or -1 with a message. */
int	listener_bind(const struct cfg_listen *l, char *err, size_t errlen);

#endif
