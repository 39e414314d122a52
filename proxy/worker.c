/*
 * Worker process: builds its own loop, Redis connection, TLS contexts and
 * listeners after fork, serves sessions, and drains on SIGTERM. A periodic
 * sweep enforces the idle timeout and keeps connection slots alive.
 */
#include <dirent.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "auth/auth_oauth.h"
#include "auth/token.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/str.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "proxy/imap.h"
#include "proxy/listener.h"
#include "proxy/relay.h"
#include "proxy/session.h"
#include "proxy/smtp.h"
#include "proxy/smtp_sent.h"
#include "proxy/worker.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_conn.h"
#include "tokenstore/tok_store.h"
#include "upstream/up_sasl.h"

#define WORKER_SWEEP_MS		10000

struct worker_ls {
	struct worker		*w;
	const struct cfg_listen	*l;
	const struct cfg_proto	*p;
	const struct sess_ops	*ops;
};

static struct worker_ls	 worker_lss[2 * CFG_LISTEN_MAX];
static long long	 worker_last_refresh;

static void
worker_accept_cb(struct evconnlistener *el, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct worker_ls *wl = arg;

	(void)el;
	if (wl->w->draining) {
		close(fd);
		return;
	}
	(void)sess_new(wl->w, fd, sa, socklen, wl->l, wl->p, wl->ops);
}

static void
worker_accept_error_cb(struct evconnlistener *el, void *arg)
{
	(void)el;
	(void)arg;
	/* EMFILE and friends: libevent retries on the next readiness. */
	log_warn("event=accept_error reason=\"%s\"",
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static int
worker_listen(struct worker *w, const struct cfg_proto *p,
    const struct sess_ops *ops, char *err, size_t errlen)
{
	for (int i = 0; i < p->nlisten; i++) {
		struct worker_ls	*wl = &worker_lss[w->nls];
		int			 fd;

		if ((fd = listener_bind(&p->listen[i], err, errlen)) == -1)
			return -1;
		wl->w = w;
		wl->l = &p->listen[i];
		wl->p = p;
		wl->ops = ops;
		w->ls[w->nls] = evconnlistener_new(w->base, worker_accept_cb,
		    wl, LEV_OPT_CLOSE_ON_FREE, -1, fd);
		if (w->ls[w->nls] == NULL) {
			close(fd);
			snprintf(err, errlen, "evconnlistener failed");
			return -1;
		}
		evconnlistener_set_error_cb(w->ls[w->nls],
		    worker_accept_error_cb);
		w->nls++;
		log_info("event=listen proto=%s addr=%s:%s tls=%s", ops->name,
		    p->listen[i].host, p->listen[i].port,
		    p->listen[i].tls == CFG_TLS_IMPLICIT ? "implicit" :
		    "starttls");
	}
	return 0;
}

static void
worker_close_listeners(struct worker *w)
{
	for (int i = 0; i < w->nls; i++)
		evconnlistener_free(w->ls[i]);
	w->nls = 0;
}

static void
worker_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct sess	*s, *next;
	long long	 now = str_now_ms();
	bool		 refresh = now - worker_last_refresh >= TOK_CONN_REFRESH_MS;

	(void)fd;
	(void)what;
	for (s = TAILQ_FIRST(&w->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->closing)
			continue;
		if (s->relay != NULL &&
		    now - s->last_active_ms > s->pcfg->idle_timeout_ms) {
			sess_close(s, "idle timeout");
			continue;
		}
		if (refresh && s->slot_held)
			tok_conn_refresh(w->tok, s->slot_name != NULL ?
			    s->slot_name : s->account, s->idhex);
	}
	if (refresh)
		worker_last_refresh = now;
}

/* A revocation waiting for the revokeClosesSessions setting. */
struct worker_revoke {
	TAILQ_ENTRY(worker_revoke) entry;
	struct worker		*w;
	struct tok_req		*req;
	char			 token_id[TOKEN_HEX_LEN + 1];
};
static TAILQ_HEAD(, worker_revoke) worker_revokes =
    TAILQ_HEAD_INITIALIZER(worker_revokes);

static void
worker_revoke_close(struct worker *w, const char *token_id)
{
	struct sess	*s, *next;

	for (s = TAILQ_FIRST(&w->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (!s->closing && s->account != NULL &&
		    memcmp(s->token_id, token_id, TOKEN_HEX_LEN) == 0) {
			sess_log(s, LOG_LVL_INFO, "event=revoked account=%s",
			    s->account);
			/* Not relaying yet: a login may be in flight, and
			 * only the protocol can call it off. */
			if (s->relay == NULL && s->ops->revoked != NULL) {
				s->ops->revoked(s);
				continue;
			}
			sess_printf(s, "%s", s->ops->name[0] == 'i' ?
			    "* BYE Access token revoked\r\n" :
			    "421 4.7.0 Access token revoked\r\n");
			sess_close_after_flush(s, "token revoked");
		}
	}
}

/* The revokeClosesSessions setting decides; its default, and the answer
 * when Redis cannot say, is [postern] revoke_closes_sessions. */
static void
worker_revoke_settings_cb(void *arg, int rc, const cJSON *settings)
{
	struct worker_revoke	*wr = arg;
	const cJSON		*v = NULL;
	bool			 close = wr->w->cfg->revoke_closes_sessions;

	if (rc > 0)
		v = cJSON_GetObjectItemCaseSensitive(settings,
		    "revokeClosesSessions");
	if (cJSON_IsBool(v))
		close = cJSON_IsTrue(v);
	TAILQ_REMOVE(&worker_revokes, wr, entry);
	log_info("event=revoke token=%s close_sessions=%s", wr->token_id,
	    close ? "yes" : "no");
	if (close)
		worker_revoke_close(wr->w, wr->token_id);
	free(wr);
}

/* A token was revoked (the admin API publishes its id): end its sessions
 * if the operator asked for that. */
static void
worker_revoke_cb(void *arg, const char *payload, size_t len)
{
	struct worker		*w = arg;
	struct worker_revoke	*wr;
	struct sess		*s;
	bool			 used = false;

	if (len != TOKEN_HEX_LEN)
		return;
	TAILQ_FOREACH(s, &w->sessions, entry)
		if (!s->closing && s->account != NULL &&
		    memcmp(s->token_id, payload, len) == 0)
			used = true;
	if (!used)
		return;
	wr = xcalloc(1, sizeof(*wr));
	wr->w = w;
	memcpy(wr->token_id, payload, len);
	TAILQ_INSERT_TAIL(&worker_revokes, wr, entry);
	wr->req = tok_settings_get(w->tok, worker_revoke_settings_cb, wr);
}

void
worker_sess_gone(struct worker *w)
{
	if (w->draining && w->nsessions == 0)
		event_base_loopexit(w->base, NULL);
}

static void
worker_drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct sess	*s;

	(void)fd;
	(void)what;
	log_info("event=drain_timeout sessions=%d", w->nsessions);
	TAILQ_FOREACH(s, &w->sessions, entry)
		sess_close(s, "shutdown");
	event_base_loopexit(w->base, NULL);
}

static void
worker_term_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker	*w = arg;
	struct sess	*s, *next;
	struct timeval	 tv;

	(void)what;
	if (w->draining)
		return;
	w->draining = true;
	log_info("event=drain signal=%d sessions=%d", (int)sig, w->nsessions);
	worker_close_listeners(w);
	/* Sessions that have not logged in yet are told to go now; relayed
	 * ones may finish within the drain bound. */
	for (s = TAILQ_FIRST(&w->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->relay == NULL && !s->closing)
			sess_shutdown(s);
	}
	if (w->nsessions == 0) {
		event_base_loopexit(w->base, NULL);
		return;
	}
	tv.tv_sec = w->cfg->drain_timeout_ms / 1000;
	tv.tv_usec = (w->cfg->drain_timeout_ms % 1000) * 1000;
	w->drain_timer = evtimer_new(w->base, worker_drain_timeout_cb, w);
	evtimer_add(w->drain_timer, &tv);
}

static void
worker_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker	*w = arg;
	struct cfg	*c;
	SSL_CTX		*ctx;
	char		 err[512];

	(void)sig;
	(void)what;
	/* The master validated the file before signalling us; read it again
	 * for the certificate paths, keep the old context on any error. */
	if ((c = cfg_load(w->cfg->path, err, sizeof(err))) == NULL) {
		log_error("event=reload result=fail reason=\"%s\"", err);
		return;
	}
	ctx = tls_server_ctx_new(c, err, sizeof(err));
	cfg_free(&c);
	if (ctx == NULL) {
		log_error("event=reload result=fail reason=\"%s\"", err);
		return;
	}
	/* Live sessions keep their SSL objects, which hold a reference to
	 * the old context; it goes when the last of them does. */
	SSL_CTX_free(w->srv_ctx);
	w->srv_ctx = ctx;
	log_info("event=reload result=ok what=tls");
}

/* Drops every descriptor inherited from the master (admin socket, its
 * Redis connection): a worker owns only what it opens itself. */
static void
worker_close_inherited(void)
{
	DIR		*d = opendir("/proc/self/fd");
	struct dirent	*de;
	int		 dfd;

	if (d == NULL)
		return;
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		int fd = atoi(de->d_name);

		if (fd > 2 && fd != dfd)
			close(fd);
	}
	closedir(d);
}

/* Process-wide settings for many sessions and bulk relaying. */
static void
worker_tune(void)
{
	struct rlimit rl;

	/* Two descriptors per relayed session: take the hard limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* The relay reads 64 KiB at a time (proxy/relay.c). With glibc's
	 * defaults the heap top goes back to the kernel after each burst
	 * (brk, 128 KiB trim threshold) and is faulted in again for the
	 * next: 4x the CPU per GB relayed in `make bench`. Keep 4 MiB. */
	(void)mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
	(void)mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
}

int
worker_main(struct cfg *cfg, int index)
{
	struct worker	 wk, *w = &wk;
	struct worker_revoke *wr;
	char		 err[512];
	struct timeval	 tv = { WORKER_SWEEP_MS / 1000, 0 };
	int		 rc = 1;

	signal(SIGCHLD, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	worker_close_inherited();
	worker_tune();
	memset(w, 0, sizeof(*w));
	w->index = index;
	w->cfg = cfg;
	TAILQ_INIT(&w->sessions);
	if ((w->base = event_base_new()) == NULL)
		fatalx("event=fatal reason=\"event_base_new failed\"");
	w->tok = tok_new(w->base, cfg->redis_url, cfg->redis_prefix,
	    cfg->redis_timeout_ms, err, sizeof(err));
	if (w->tok == NULL)
		fatalx("event=fatal reason=\"%s\"", err);
	if ((w->srv_ctx = tls_server_ctx_new(cfg, err, sizeof(err))) == NULL)
		fatalx("event=fatal reason=\"%s\"", err);
	/* libsasl2 loads its plugins here, not lazily inside the loop. */
	if (up_sasl_init(err, sizeof(err)) == -1)
		fatalx("event=fatal reason=\"%s\"", err);
	/* OAuth2 token refreshes: this worker's curl multi on its loop. */
	if (auth_oauth_init(w->base, w->tok, cfg, err, sizeof(err)) == -1)
		fatalx("event=fatal reason=\"%s\"", err);
	w->up.base = w->base;
	if (cfg->up_dns_server != NULL) {
		w->up.dns = evdns_base_new(w->base, 0);
		if (evdns_base_nameserver_ip_add(w->up.dns,
		    cfg->up_dns_server) != 0)
			fatalx("event=fatal reason=\"bad dns_server %s\"",
			    cfg->up_dns_server);
	} else
		w->up.dns = evdns_base_new(w->base,
		    EVDNS_BASE_INITIALIZE_NAMESERVERS);
	w->up.ctx_verify = tls_client_ctx_new(cfg->tls_ca_file, true, err,
	    sizeof(err));
	w->up.ctx_noverify = tls_client_ctx_new(NULL, false, err, sizeof(err));
	if (w->up.ctx_verify == NULL || w->up.ctx_noverify == NULL)
		fatalx("event=fatal reason=\"%s\"", err);
	if (worker_listen(w, &cfg->imap, &imap_ops, err, sizeof(err)) == -1)
		fatalx("event=fatal reason=\"%s\"", err);
	if (worker_listen(w, &cfg->smtp, &smtp_ops, err, sizeof(err)) == -1)
		fatalx("event=fatal reason=\"%s\"", err);
	/* Always listen: the revokeClosesSessions setting can turn closing
	 * on at run time whatever the configuration says. */
	tok_subscribe(w->tok, "revoke", worker_revoke_cb, w);
	tok_subscribe_start(w->tok);
	w->sweep = event_new(w->base, -1, EV_PERSIST, worker_sweep_cb, w);
	evtimer_add(w->sweep, &tv);
	w->sig_term = evsignal_new(w->base, SIGTERM, worker_term_cb, w);
	w->sig_int = evsignal_new(w->base, SIGINT, worker_term_cb, w);
	w->sig_hup = evsignal_new(w->base, SIGHUP, worker_hup_cb, w);
	evsignal_add(w->sig_term, NULL);
	evsignal_add(w->sig_int, NULL);
	evsignal_add(w->sig_hup, NULL);
	log_info("event=worker_start index=%d", index);

	event_base_dispatch(w->base);
	rc = 0;

	while (!TAILQ_EMPTY(&w->sessions))
		sess_free_now(TAILQ_FIRST(&w->sessions));
	while ((wr = TAILQ_FIRST(&worker_revokes)) != NULL) {
		TAILQ_REMOVE(&worker_revokes, wr, entry);
		tok_req_cancel(wr->req);
		free(wr);
	}
	smtp_sent_shutdown();
	auth_oauth_shutdown();
	worker_close_listeners(w);
	event_free(w->sweep);
	if (w->drain_timer != NULL)
		event_free(w->drain_timer);
	event_free(w->sig_term);
	event_free(w->sig_int);
	event_free(w->sig_hup);
	tok_free(&w->tok);
	evdns_base_free(w->up.dns, 0);
	SSL_CTX_free(w->up.ctx_verify);
	SSL_CTX_free(w->up.ctx_noverify);
	SSL_CTX_free(w->srv_ctx);
	event_base_free(w->base);
	up_sasl_done();
	log_info("event=worker_exit index=%d", index);
	return rc;
}
