/*
 * What autoconfig and verify share in one process: the upstream
 * environment (evdns resolver, client TLS contexts) for probes and test
 * logins, the c-ares resolver for MX/SRV/address questions, and the curl
 * multi handle for autoconfig documents. The admin API makes one on first
 * use and frees it with itself.
 */
#ifndef DISCOVER_DISC_ENV_H
#define DISCOVER_DISC_ENV_H

#include <stddef.h>

#include "upstream/up.h"

struct event_base;
struct cfg;
struct disc_dns;
struct disc_http;

struct disc_env {
	struct event_base	*base;
	const struct cfg	*cfg;
	struct up_env		 up;	/* dns: [upstream] dns_server */
	struct disc_dns		*dns;	/* [autoconfig] dns_server */
	struct disc_http	*http;
};

/* cfg must outlive the env. NULL with a reason in err on failure (bad
 * DNS server address, TLS setup). */
struct disc_env	*disc_env_new(struct event_base *, const struct cfg *,
		    char *err, size_t errlen);
/* Every job using the env must be freed first. The evdns resolver is
 * released on the next loop turn: libevent delivers cancellations of its
 * lookups late (deferred callbacks), and they still use it. NULL is
 * fine; sets *envp to NULL. */
void		 disc_env_free(struct disc_env **envp);

#endif
