/*
 * The SMTP submission front-end (RFC 5321, 6409, 4954, 3207): greeting,
 * EHLO, STARTTLS, AUTH with account ID + token, then each transaction
 * relayed to the account's own submission server, the client getting the
 * upstream's reply to every command.
 */
#ifndef PROXY_SMTP_H
#define PROXY_SMTP_H

#include "proxy/session.h"

extern const struct sess_ops smtp_ops;

#endif
