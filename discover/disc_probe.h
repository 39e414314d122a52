/*
 * The "last guess" check of autoconfig: is there an IMAP or SMTP server
 * speaking TLS at host:port? Connects with up_conn (implicit TLS, or plain
 * then STARTTLS), reads the greeting and, for STARTTLS, does the upgrade;
 * no login. The certificate is not verified here: the probe asks whether
 * a server answers, verify later says whether it is trusted.
 */
#ifndef DISCOVER_DISC_PROBE_H
#define DISCOVER_DISC_PROBE_H

#include <stdbool.h>

#include "upstream/up.h"

struct disc_probe;

/* ok: TLS is up and the greeting was IMAP's "* OK" or SMTP's "220"; else
 * why is a short reason. Called once, from the loop, never from inside
 * disc_probe_new; may free the probe. */
typedef void disc_probe_cb(void *arg, bool ok, const char *why);

/* imap: IMAP (else SMTP); implicit: TLS from the start (else STARTTLS).
 * timeout_ms bounds everything. Never NULL. */
struct disc_probe *disc_probe_new(const struct up_env *, const char *host,
		    int port, bool imap, bool implicit, long long timeout_ms,
		    disc_probe_cb *cb, void *arg);
void		 disc_probe_free(struct disc_probe **);

#endif
