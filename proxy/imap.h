/*
 * The IMAP front-end before login: greeting, CAPABILITY, NOOP, LOGOUT, ID,
 * STARTTLS, LOGIN, AUTHENTICATE PLAIN; then the upstream login and the
 * hand-over to the byte relay.
 */
#ifndef PROXY_IMAP_H
#define PROXY_IMAP_H

#include "proxy/session.h"

extern const struct sess_ops imap_ops;

#endif
