/*
 * The autoconfig job: one step at a time (provider table, MX, autoconfig
 * documents, SRV, guess), each step started from step_ev so that no
 * callback of ours ever runs inside the caller or inside another step's
 * callback chain. A source may give only one half (IMAP or SMTP); later
 * sources then look for the missing half only, and earlier answers win.
 * Every attempt is logged into "tried" for the 404 reply.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "discover/disc.h"
#include "discover/disc_autoconfig.h"
#include "discover/disc_dns.h"
#include "discover/disc_env.h"
#include "discover/disc_http.h"
#include "discover/disc_probe.h"
#include "discover/disc_provider.h"
#include "discover/disc_xml.h"

#define AC_XML_SOURCES	3
#define AC_SRV_NAMES	4
#define AC_PROBES_MAX	8
#define AC_RESULT_MAX	200	/* bytes of one "result" text */

enum ac_step {
	AC_PROVIDER,
	AC_MX,
	AC_XML,		/* xml_i says which document */
	AC_SRV,
	AC_GUESS,
	AC_FINISH,	/* deliver on the next step_ev */
	AC_DONE,
};

struct ac_probe {
	struct disc_ac		*ac;
	struct disc_probe	*p;
	struct disc_server	 s;
	bool			 imap;
	bool			 done;
	bool			 ok;
	char			 why[AC_RESULT_MAX];
};

/* Tells a SRV answer which name it is for. */
struct ac_slot {
	struct disc_ac		*ac;
	int			 i;
};

struct disc_ac {
	struct disc_env		*env;
	const struct cfg	*cfg;
	char			*email;
	char			 domain[DISC_HOST_MAX + 1];
	disc_ac_cb		*cb;
	void			*arg;
	enum ac_step		 step;
	long long		 t0;

	struct disc_settings	 s;
	const char		*src_imap;
	const char		*src_smtp;
	char			 source[32];
	cJSON			*tried;

	struct event		*step_ev;
	struct event		*timer;		/* [autoconfig] timeout */

	struct disc_dns_q	*q;		/* MX, or the XML host */
	/* XML */
	int			 xml_i;
	char			*url;
	char			 url_host[DISC_HOST_MAX + 1];
	int			 url_port;
	struct disc_http_req	*hreq;
	/* SRV */
	struct ac_slot		 slots[AC_SRV_NAMES];
	struct disc_dns_q	*srvq[AC_SRV_NAMES];
	bool			 srv_ok[AC_SRV_NAMES];
	struct disc_server	 srv[AC_SRV_NAMES];
	char			 srv_why[AC_SRV_NAMES][DISC_HOST_MAX + 64];
	int			 srv_pending;
	/* guess */
	struct ac_probe		 probes[AC_PROBES_MAX];
	int			 nprobes;
};

/* RFC 6186 and RFC 8314 service names; implicit TLS first. */
static const struct {
	const char	*prefix;
	bool		 imap;
	bool		 secure;
} srv_names[AC_SRV_NAMES] = {
	{ "_imaps._tcp.", true, true },
	{ "_imap._tcp.", true, false },
	{ "_submissions._tcp.", false, true },
	{ "_submission._tcp.", false, false },
};

static const char *const xml_names[AC_XML_SOURCES] = {
	"autoconfig", "well-known", "ispdb",
};

static void
tried_add(struct disc_ac *ac, const char *source, const char *target,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
tried_add(struct disc_ac *ac, const char *source, const char *target,
    const char *fmt, ...)
{
	cJSON	*o = cJSON_CreateObject();
	char	 buf[AC_RESULT_MAX], clean[AC_RESULT_MAX * 4];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(o, "source", source);
	cJSON_AddStringToObject(o, "target", target);
	/* Peer text (HTTP errors, server greetings) is escaped. */
	cJSON_AddStringToObject(o, "result", str_sanitize(buf, AC_RESULT_MAX,
	    clean, sizeof(clean)));
	cJSON_AddItemToArray(ac->tried, o);
}

static bool
ac_complete(const struct disc_ac *ac)
{
	return ac->s.has_imap && ac->s.has_smtp;
}

/* Takes the halves we still lack from found. Returns true if it gave
 * anything. */
static bool
ac_take(struct disc_ac *ac, const struct disc_settings *found,
    const char *source)
{
	bool took = false;

	if (!ac->s.has_imap && found->has_imap) {
		ac->s.imap = found->imap;
		ac->s.has_imap = true;
		ac->src_imap = source;
		took = true;
	}
	if (!ac->s.has_smtp && found->has_smtp) {
		ac->s.smtp = found->smtp;
		ac->s.has_smtp = true;
		ac->src_smtp = source;
		took = true;
	}
	return took;
}

static void
ac_goto(struct disc_ac *ac, enum ac_step step)
{
	ac->step = step;
	event_active(ac->step_ev, EV_TIMEOUT, 1);
}

/* Next step, or the end once both halves are known. */
static void
ac_next(struct disc_ac *ac, enum ac_step step)
{
	ac_goto(ac, ac_complete(ac) ? AC_FINISH : step);
}

static void
probes_free(struct disc_ac *ac)
{
	for (int i = 0; i < ac->nprobes; i++)
		disc_probe_free(&ac->probes[i].p);
}

static void
inflight_free(struct disc_ac *ac)
{
	disc_dns_cancel(&ac->q);
	disc_http_cancel(&ac->hreq);
	for (int i = 0; i < AC_SRV_NAMES; i++)
		disc_dns_cancel(&ac->srvq[i]);
	probes_free(ac);
}

static void
finish(struct disc_ac *ac)
{
	struct disc_ac_result r;

	ac->step = AC_DONE;
	evtimer_del(ac->timer);
	inflight_free(ac);
	if (ac->src_imap != NULL && ac->src_smtp != NULL &&
	    strcmp(ac->src_imap, ac->src_smtp) != 0)
		snprintf(ac->source, sizeof(ac->source), "%s+%s", ac->src_imap,
		    ac->src_smtp);
	else
		snprintf(ac->source, sizeof(ac->source), "%s",
		    ac->src_imap != NULL ? ac->src_imap :
		    ac->src_smtp != NULL ? ac->src_smtp : "none");
	log_info("event=autoconfig domain=%s source=%s imap=%s smtp=%s "
	    "ms=%lld", ac->domain, ac->source,
	    ac->s.has_imap ? ac->s.imap.host : "-",
	    ac->s.has_smtp ? ac->s.smtp.host : "-",
	    str_now_ms() - ac->t0);
	r.s = ac->s;
	r.source = ac->source;
	r.tried = ac->tried;
	ac->cb(ac->arg, &r);	/* may free ac: nothing after this */
}

/* ---- (a) provider table by MX ---- */

static void
mx_cb(void *arg, const struct disc_dns_result *r)
{
	struct disc_ac			*ac = arg;
	const struct disc_provider	*p;
	struct disc_settings		 found;

	ac->q = NULL;
	if (r->status != DISC_DNS_OK) {
		tried_add(ac, "mx", ac->domain, "%s", r->why);
		ac_next(ac, AC_XML);
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		if ((p = disc_provider_by_mx(r->rr[i].name)) == NULL)
			continue;
		memset(&found, 0, sizeof(found));
		found.has_imap = disc_server_set(&found.imap, p->imap_host,
		    p->imap_port, p->imap_secure);
		found.has_smtp = disc_server_set(&found.smtp, p->smtp_host,
		    p->smtp_port, p->smtp_secure);
		tried_add(ac, "mx", r->rr[i].name, "%s", p->name);
		ac_take(ac, &found, "mx");
		ac_next(ac, AC_XML);
		return;
	}
	tried_add(ac, "mx", ac->domain, "no known provider among %zu MX "
	    "host%s (first: %s)", r->n, r->n == 1 ? "" : "s", r->rr[0].name);
	ac_next(ac, AC_XML);
}

static void
step_provider(struct disc_ac *ac)
{
	const struct disc_provider	*p;
	struct disc_settings		 found;

	if ((p = disc_provider_by_domain(ac->domain)) != NULL) {
		memset(&found, 0, sizeof(found));
		found.has_imap = disc_server_set(&found.imap, p->imap_host,
		    p->imap_port, p->imap_secure);
		found.has_smtp = disc_server_set(&found.smtp, p->smtp_host,
		    p->smtp_port, p->smtp_secure);
		tried_add(ac, "provider", ac->domain, "%s", p->name);
		ac_take(ac, &found, "provider");
		ac_next(ac, AC_MX);
		return;
	}
	tried_add(ac, "provider", ac->domain, "not a known provider domain");
	ac->step = AC_MX;
	ac->q = disc_dns_query(ac->env->dns, DISC_DNS_MX, ac->domain, mx_cb,
	    ac);
}

/* ---- (b) autoconfig documents ---- */

static void	xml_start(struct disc_ac *);

static void
xml_next(struct disc_ac *ac)
{
	free(ac->url);
	ac->url = NULL;
	ac->xml_i++;
	if (ac_complete(ac) || ac->xml_i == AC_XML_SOURCES)
		ac_next(ac, AC_SRV);
	else
		ac_goto(ac, AC_XML);
}

static void
http_cb(void *arg, bool ok, long status, const char *body, size_t len,
    const char *why)
{
	struct disc_ac		*ac = arg;
	struct disc_settings	 found;
	const char		*src = xml_names[ac->xml_i];
	char			 err[160];

	ac->hreq = NULL;
	if (!ok)
		tried_add(ac, src, ac->url, "%s", why);
	else if (status != 200)
		tried_add(ac, src, ac->url, "HTTP %ld", status);
	else if (disc_xml_parse(body, len, ac->email, &found, err,
	    sizeof(err)) == -1)
		tried_add(ac, src, ac->url, "%s", err);
	else if (!found.has_imap && !found.has_smtp)
		tried_add(ac, src, ac->url, "no IMAP or SMTP server with TLS "
		    "in the document");
	else if (!ac_take(ac, &found, src))
		tried_add(ac, src, ac->url, "nothing new (only the half "
		    "already known)");
	else
		tried_add(ac, src, ac->url, "found%s%s", found.has_imap ?
		    " imap" : "", found.has_smtp ? " smtp" : "");
	xml_next(ac);
}

static void
xml_fetch(struct disc_ac *ac, const char *resolve)
{
	const struct cfg *cfg = ac->cfg;

	ac->hreq = disc_http_get(ac->env->http, ac->url, resolve,
	    cfg->tls_ca_file, cfg->ac_http_timeout_ms, cfg->ac_xml_max,
	    http_cb, ac);
}

static void
xml_addr_cb(void *arg, const struct disc_dns_result *r)
{
	struct disc_ac	*ac = arg;
	char		 resolve[DISC_HOST_MAX + 16 + 4 * 48];
	size_t		 o;

	ac->q = NULL;
	if (r->status != DISC_DNS_OK) {
		tried_add(ac, xml_names[ac->xml_i], ac->url, "resolve %s: %s",
		    ac->url_host, r->why);
		xml_next(ac);
		return;
	}
	/* curl connects to the addresses our resolver found. */
	o = (size_t)snprintf(resolve, sizeof(resolve), "%s:%d:", ac->url_host,
	    ac->url_port);
	for (size_t i = 0; i < r->n && i < 4 && o < sizeof(resolve); i++)
		o += (size_t)snprintf(resolve + o, sizeof(resolve) - o,
		    strchr(r->rr[i].name, ':') != NULL ? "%s[%s]" : "%s%s",
		    i > 0 ? "," : "", r->rr[i].name);
	xml_fetch(ac, resolve);
}

static void
xml_start(struct disc_ac *ac)
{
	const char *tmpl[AC_XML_SOURCES] = {
		ac->cfg->ac_autoconfig_url,
		ac->cfg->ac_wellknown_url,
		ac->cfg->ac_ispdb_url,
	};

	for (; ac->xml_i < AC_XML_SOURCES; ac->xml_i++) {
		if (tmpl[ac->xml_i] == NULL)
			continue;	/* disabled */
		ac->url = disc_ac_url(tmpl[ac->xml_i], ac->email, ac->domain);
		if (ac->url == NULL || disc_http_url_host(ac->url,
		    ac->url_host, sizeof(ac->url_host), &ac->url_port) == -1) {
			tried_add(ac, xml_names[ac->xml_i], tmpl[ac->xml_i],
			    "bad URL template (want http:// or https://)");
			free(ac->url);
			ac->url = NULL;
			continue;
		}
		if (str_is_ip_literal(ac->url_host))
			xml_fetch(ac, NULL);
		else
			ac->q = disc_dns_query(ac->env->dns, DISC_DNS_ADDR,
			    ac->url_host, xml_addr_cb, ac);
		return;
	}
	ac_next(ac, AC_SRV);
}

/* ---- (c) SRV records ---- */

static void
srv_decide(struct disc_ac *ac)
{
	struct disc_settings	found;
	char			name[DISC_HOST_MAX + 32];

	memset(&found, 0, sizeof(found));
	for (int i = 0; i < AC_SRV_NAMES; i++) {
		snprintf(name, sizeof(name), "%s%s", srv_names[i].prefix,
		    ac->domain);
		if (ac->srv_ok[i])
			tried_add(ac, "srv", name, "%s:%d", ac->srv[i].host,
			    ac->srv[i].port);
		else if (ac->srv_why[i][0] != '\0')
			tried_add(ac, "srv", name, "%s", ac->srv_why[i]);
		if (!ac->srv_ok[i])
			continue;
		if (srv_names[i].imap && !found.has_imap) {
			found.imap = ac->srv[i];
			found.has_imap = true;
		} else if (!srv_names[i].imap && !found.has_smtp) {
			found.smtp = ac->srv[i];
			found.has_smtp = true;
		}
	}
	ac_take(ac, &found, "srv");
	ac_next(ac, AC_GUESS);
}

static void
srv_cb(void *arg, const struct disc_dns_result *r)
{
	struct ac_slot		 *slot = arg;
	struct disc_ac		 *ac = slot->ac;
	int			  i = slot->i;
	const struct disc_dns_rr *rr;

	ac->srvq[i] = NULL;
	if (r->status != DISC_DNS_OK)
		snprintf(ac->srv_why[i], sizeof(ac->srv_why[i]), "%s", r->why);
	else {
		/* Sorted: lowest priority, then highest weight. */
		rr = &r->rr[0];
		if (strcmp(rr->name, ".") == 0)
			snprintf(ac->srv_why[i], sizeof(ac->srv_why[i]),
			    "service not offered (target \".\")");
		else if (!disc_server_set(&ac->srv[i], rr->name, rr->port,
		    srv_names[i].secure))
			snprintf(ac->srv_why[i], sizeof(ac->srv_why[i]),
			    "bad target %s:%d", rr->name, rr->port);
		else
			ac->srv_ok[i] = true;
	}
	if (--ac->srv_pending == 0)
		srv_decide(ac);
}

static void
step_srv(struct disc_ac *ac)
{
	char name[DISC_HOST_MAX + 32];

	for (int i = 0; i < AC_SRV_NAMES; i++) {
		/* Only the half still missing. */
		if (srv_names[i].imap ? ac->s.has_imap : ac->s.has_smtp)
			continue;
		snprintf(name, sizeof(name), "%s%s", srv_names[i].prefix,
		    ac->domain);
		ac->slots[i].ac = ac;
		ac->slots[i].i = i;
		ac->srv_pending++;
		ac->srvq[i] = disc_dns_query(ac->env->dns, DISC_DNS_SRV, name,
		    srv_cb, &ac->slots[i]);
	}
	if (ac->srv_pending == 0)
		ac_next(ac, AC_GUESS);
}

/* ---- (d) the last guess ---- */

/* Preference order: implicit TLS first (RFC 8314), then the more
 * specific name. */
static const struct {
	bool		 imap;
	const char	*label;
	int		 port;
	bool		 secure;
} guesses[AC_PROBES_MAX] = {
	{ true, "imap", 993, true },
	{ true, "mail", 993, true },
	{ true, "imap", 143, false },
	{ true, "mail", 143, false },
	{ false, "smtp", 465, true },
	{ false, "mail", 465, true },
	{ false, "smtp", 587, false },
	{ false, "mail", 587, false },
};

/* Picks, per half, the first probe in preference order once every probe
 * before it is done; finishes the step when both halves are decided. */
static void
guess_decide(struct disc_ac *ac)
{
	struct disc_settings	found;
	bool			decided[2] = { false, false };
	char			target[DISC_HOST_MAX + 16];

	memset(&found, 0, sizeof(found));
	for (int h = 0; h < 2; h++) {
		bool imap = h == 0;

		if (imap ? ac->s.has_imap : ac->s.has_smtp) {
			decided[h] = true;
			continue;
		}
		decided[h] = true;
		for (int i = 0; i < ac->nprobes; i++) {
			struct ac_probe *p = &ac->probes[i];

			if (p->imap != imap)
				continue;
			if (!p->done) {
				decided[h] = false;
				break;
			}
			if (p->ok) {
				if (imap) {
					found.imap = p->s;
					found.has_imap = true;
				} else {
					found.smtp = p->s;
					found.has_smtp = true;
				}
				break;
			}
		}
	}
	if (!decided[0] || !decided[1])
		return;
	for (int i = 0; i < ac->nprobes; i++) {
		struct ac_probe *p = &ac->probes[i];

		snprintf(target, sizeof(target), "%s:%d", p->s.host, p->s.port);
		if (p->done)
			tried_add(ac, "guess", target, "%s", p->ok ?
			    "TLS and greeting ok" : p->why);
	}
	probes_free(ac);
	ac->nprobes = 0;
	ac_take(ac, &found, "guess");
	ac_goto(ac, AC_FINISH);
}

static void
probe_cb(void *arg, bool ok, const char *why)
{
	struct ac_probe *p = arg;

	p->done = true;
	p->ok = ok;
	if (!ok)
		snprintf(p->why, sizeof(p->why), "%s", why);
	disc_probe_free(&p->p);
	guess_decide(p->ac);
}

static void
step_guess(struct disc_ac *ac)
{
	char host[DISC_HOST_MAX + 8];

	for (int i = 0; i < AC_PROBES_MAX; i++) {
		struct ac_probe *p = &ac->probes[ac->nprobes];

		if (guesses[i].imap ? ac->s.has_imap : ac->s.has_smtp)
			continue;
		snprintf(host, sizeof(host), "%s.%s", guesses[i].label,
		    ac->domain);
		memset(p, 0, sizeof(*p));
		if (!disc_server_set(&p->s, host, guesses[i].port,
		    guesses[i].secure))
			continue;	/* name too long */
		p->ac = ac;
		p->imap = guesses[i].imap;
		ac->nprobes++;
	}
	if (ac->nprobes == 0) {
		ac_goto(ac, AC_FINISH);
		return;
	}
	/* All at once: the step takes one probe_timeout, not eight. */
	for (int i = 0; i < ac->nprobes; i++) {
		struct ac_probe *p = &ac->probes[i];

		p->p = disc_probe_new(&ac->env->up, p->s.host, p->s.port,
		    p->imap, p->s.secure, ac->cfg->ac_probe_timeout_ms,
		    probe_cb, p);
	}
}

/* ---- driver ---- */

static void
step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_ac *ac = arg;

	(void)fd;
	(void)what;
	switch (ac->step) {
	case AC_PROVIDER:
		step_provider(ac);
		break;
	case AC_MX:
		ac->q = disc_dns_query(ac->env->dns, DISC_DNS_MX, ac->domain,
		    mx_cb, ac);
		break;
	case AC_XML:
		xml_start(ac);
		break;
	case AC_SRV:
		step_srv(ac);
		break;
	case AC_GUESS:
		step_guess(ac);
		break;
	case AC_FINISH:
		finish(ac);
		break;
	case AC_DONE:
		break;
	}
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_ac	*ac = arg;
	static const char *const names[] = {
		[AC_PROVIDER] = "provider", [AC_MX] = "mx", [AC_XML] = "xml",
		[AC_SRV] = "srv", [AC_GUESS] = "guess", [AC_FINISH] = "-",
		[AC_DONE] = "-",
	};
	const char	*src = names[ac->step];

	(void)fd;
	(void)what;
	if (ac->step == AC_XML && ac->xml_i < AC_XML_SOURCES)
		src = xml_names[ac->xml_i];
	tried_add(ac, src, ac->url != NULL ? ac->url : ac->domain,
	    "stopped: the whole lookup took longer than %lld ms",
	    ac->cfg->ac_timeout_ms);
	finish(ac);
}

struct disc_ac *
disc_ac_new(struct disc_env *env, const char *email, const char *domain,
    disc_ac_cb *cb, void *arg)
{
	struct disc_ac	*ac = xcalloc(1, sizeof(*ac));
	struct timeval	 tv;

	ac->env = env;
	ac->cfg = env->cfg;
	ac->email = xstrdup(email);
	snprintf(ac->domain, sizeof(ac->domain), "%s", domain);
	ac->cb = cb;
	ac->arg = arg;
	ac->t0 = str_now_ms();
	ac->tried = cJSON_CreateArray();
	ac->step_ev = event_new(env->base, -1, 0, step_cb, ac);
	ac->timer = evtimer_new(env->base, timer_cb, ac);
	if (ac->step_ev == NULL || ac->timer == NULL)
		fatalx("disc_ac_new: event_new failed");
	tv.tv_sec = (time_t)(ac->cfg->ac_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(ac->cfg->ac_timeout_ms % 1000 * 1000);
	evtimer_add(ac->timer, &tv);
	log_debug("event=autoconfig_start domain=%s", ac->domain);
	ac_goto(ac, AC_PROVIDER);
	return ac;
}

void
disc_ac_free(struct disc_ac **acp)
{
	struct disc_ac *ac = *acp;

	if (ac == NULL)
		return;
	*acp = NULL;
	inflight_free(ac);
	event_free(ac->step_ev);
	event_free(ac->timer);
	cJSON_Delete(ac->tried);
	free(ac->url);
	free(ac->email);
	free(ac);
}

char *
disc_ac_url(const char *tmpl, const char *email, const char *domain)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t	 cap = strlen(tmpl) + 1, o = 0;
	char	*out;

	/* Worst case: every placeholder grows by the encoded address. */
	for (const char *p = tmpl; (p = strchr(p, '{')) != NULL; p++)
		cap += strlen(email) * 3 + strlen(domain);
	out = xmalloc(cap);
	for (const char *p = tmpl; *p != '\0';) {
		if (strncmp(p, "{domain}", 8) == 0) {
			memcpy(out + o, domain, strlen(domain));
			o += strlen(domain);
			p += 8;
		} else if (strncmp(p, "{email}", 7) == 0) {
			for (const char *e = email; *e != '\0'; e++) {
				unsigned char c = (unsigned char)*e;

				if ((c >= 'A' && c <= 'Z') ||
				    (c >= 'a' && c <= 'z') ||
				    (c >= '0' && c <= '9') ||
				    strchr("-._~", c) != NULL)
					out[o++] = (char)c;
				else {
					out[o++] = '%';
					out[o++] = hex[c >> 4];
					out[o++] = hex[c & 15];
				}
			}
			p += 7;
		} else
			out[o++] = *p++;
	}
	out[o] = '\0';
	if (strncmp(out, "http://", 7) != 0 &&
	    strncmp(out, "https://", 8) != 0) {
		free(out);
		return NULL;
	}
	return out;
}
