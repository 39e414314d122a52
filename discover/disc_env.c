/*
 * The shared resources of discover/. evdns is set up exactly like the
 * workers' (proxy/worker.c) so that a verify resolves host names as the
 * proxy will; c-ares may be pointed elsewhere for autoconfig.
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "discover/disc_dns.h"
#include "discover/disc_env.h"
#include "discover/disc_http.h"

struct disc_env *
disc_env_new(struct event_base *base, const struct cfg *cfg, char *err,
    size_t errlen)
{
	struct disc_env	*env = xcalloc(1, sizeof(*env));
	const char	*ac_dns;

	env->base = base;
	env->cfg = cfg;
	env->up.base = base;
	if (cfg->up_dns_server != NULL) {
		env->up.dns = evdns_base_new(base, 0);
		if (env->up.dns == NULL || evdns_base_nameserver_ip_add(
		    env->up.dns, cfg->up_dns_server) != 0) {
			snprintf(err, errlen, "bad [upstream] dns_server %s",
			    cfg->up_dns_server);
			goto fail;
		}
	} else
		env->up.dns = evdns_base_new(base,
		    EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (env->up.dns == NULL) {
		snprintf(err, errlen, "cannot set up the DNS resolver");
		goto fail;
	}
	if ((env->up.ctx_verify = tls_client_ctx_new(cfg->tls_ca_file, true,
	    err, errlen)) == NULL ||
	    (env->up.ctx_noverify = tls_client_ctx_new(NULL, false, err,
	    errlen)) == NULL)
		goto fail;
	ac_dns = cfg->ac_dns_server != NULL ? cfg->ac_dns_server :
	    cfg->up_dns_server;
	if ((env->dns = disc_dns_new(base, ac_dns, cfg->ac_dns_timeout_ms, err,
	    errlen)) == NULL)
		goto fail;
	env->http = disc_http_new(base);
	return env;
fail:
	disc_env_free(&env);
	return NULL;
}

static void
dns_free_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evdns_base_free(arg, 0);
}

void
disc_env_free(struct disc_env **envp)
{
	struct disc_env	*env = *envp;
	struct timeval	 now = { 0, 0 };

	if (env == NULL)
		return;
	*envp = NULL;
	disc_http_free(&env->http);
	disc_dns_free(&env->dns);
	if (env->up.dns != NULL && event_base_once(env->base, -1, EV_TIMEOUT,
	    dns_free_cb, env->up.dns, &now) != 0)
		evdns_base_free(env->up.dns, 0);
	SSL_CTX_free(env->up.ctx_verify);
	SSL_CTX_free(env->up.ctx_noverify);
	free(env);
}
