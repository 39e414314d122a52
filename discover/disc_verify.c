/*
 * Verify: one check per protocol, run in parallel. A check is a login
 * with up_imap or up_smtp (the proxy's own code), then for IMAP an
 * EXAMINE (the read-only SELECT, RFC 9051 6.3.3) of the mailbox on the
 * connection up_imap hands over. When the first login fails in a way that
 * smells of the wrong TLS mode for the port, the other mode is tried once
 * so that the hint can say which setting works. up_imap/up_smtp report
 * failures as a class plus a reason text; the classification below reads
 * both (the reasons are ours, from upstream/ and common/tls.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "discover/disc.h"
#include "discover/disc_env.h"
#include "discover/disc_probe.h"
#include "discover/disc_provider.h"
#include "discover/disc_verify.h"
#include "upstream/up_imap.h"
#include "upstream/up_resp.h"
#include "upstream/up_smtp.h"

#define VERIFY_TAG	"V1"

/* ---- classification (pure) ---- */

static bool
has(const char *s, const char *needle)
{
	return s != NULL && strcasestr(s, needle) != NULL;
}

static void
vset(struct disc_verdict *v, const char *code, const char *why)
{
	char buf[sizeof(v->error)];

	memset(v, 0, sizeof(*v));
	v->code = code;
	snprintf(v->error, sizeof(v->error), "%s", disc_text_clean(why != NULL ?
	    why : "failed", buf, sizeof(buf)));
}

static void
hint(struct disc_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends a sentence to the hint. */
static void
hint(struct disc_verdict *v, const char *fmt, ...)
{
	size_t	o = strlen(v->hint);
	va_list	ap;

	if (o > 0 && o + 1 < sizeof(v->hint))
		v->hint[o++] = ' ';
	if (o >= sizeof(v->hint))
		return;
	va_start(ap, fmt);
	vsnprintf(v->hint + o, sizeof(v->hint) - o, fmt, ap);
	va_end(ap);
}

static const char *
proto_name(bool imap)
{
	return imap ? "IMAP" : "SMTP";
}

static bool
is_secure(const struct up_target *t)
{
	return t->tls == UP_TLS_IMPLICIT;
}

/* The usual ports and what they expect (RFC 8314 section 3.3: 993 and
 * 465 are implicit TLS; 143 and 587 STARTTLS). */
static void
port_hint(bool imap, const struct up_target *t, struct disc_verdict *v)
{
	int p = t->port;

	if ((p == 993 || p == 465) && !is_secure(t))
		hint(v, "Port %d uses TLS from the start: set secure: true.", p);
	else if ((p == 143 || p == 587 || p == 25) && is_secure(t))
		hint(v, "Port %d starts in plain text and upgrades with "
		    "STARTTLS: set secure: false.", p);
	else
		hint(v, "%s usually runs on port %d with secure: true, or on "
		    "port %d with secure: false (STARTTLS).", proto_name(imap),
		    imap ? 993 : 465, imap ? 143 : 587);
}

/* IMAP settings on an SMTP port or host, or the other way round. */
static bool
looks_swapped(bool imap, const struct up_target *t, const char *why)
{
	const char *h = t->host != NULL ? t->host : "";

	if (imap)
		return t->port == 25 || t->port == 465 || t->port == 587 ||
		    strncasecmp(h, "smtp", 4) == 0 || has(why, " 220 ") ||
		    has(why, "ESMTP");
	return t->port == 143 || t->port == 993 ||
	    strncasecmp(h, "imap", 4) == 0 || has(why, "* OK") ||
	    has(why, "IMAP");
}

static void
swapped_hint(bool imap, struct disc_verdict *v)
{
	hint(v, "This looks like %s settings: are the IMAP and SMTP hosts or "
	    "ports swapped?", imap ? "SMTP" : "IMAP");
}

static void
auth_hint(bool imap, const struct up_target *t, const char *why,
    struct disc_verdict *v)
{
	const struct disc_provider *p = disc_provider_by_server(t->host);

	if (has(why, "IMAP") && (has(why, "disabled") ||
	    has(why, "not enabled") || has(why, "enable IMAP") ||
	    has(why, "IMAP access"))) {
		hint(v, "IMAP access is turned off for this mailbox at the "
		    "provider.");
		if (p != NULL && p->imap_off_hint != NULL)
			hint(v, "%s.", p->imap_off_hint);
		else
			hint(v, "Turn it on in the mailbox's web settings, "
			    "then try again.");
		return;
	}
	if (t->cred == UP_CRED_OAUTH2) {
		hint(v, "The server refused the OAuth2 access token: it may "
		    "have expired, belong to another user than %s, or lack "
		    "the mail scope (Google: https://mail.google.com/, "
		    "Microsoft: IMAP.AccessAsUser.All and SMTP.Send).",
		    t->user != NULL ? t->user : "auth.user");
		return;
	}
	if (has(why, "application-specific") || has(why, "app password") ||
	    has(why, "app-specific") || has(why, "WEBALERT") ||
	    has(why, "apppassword")) {
		if (p != NULL && p->auth_hint != NULL)
			hint(v, "%s.", p->auth_hint);
		else
			hint(v, "The provider wants an app password: create "
			    "one in the account's security settings and use it "
			    "as auth.pass instead of the normal password.");
		return;
	}
	hint(v, "The server refused the user name or password: check both "
	    "(many providers want the full email address as the user name).");
	if (p != NULL && p->auth_hint != NULL)
		hint(v, "%s.", p->auth_hint);
	else
		hint(v, "If two-step verification is on, the provider may "
		    "require an app password instead of the normal one.");
	(void)imap;
}

static void
cert_hint(const struct up_target *t, const char *why,
    struct disc_verdict *v)
{
	if (has(why, "hostname mismatch") || has(why, "IP address mismatch"))
		hint(v, "The certificate is not issued for %s: use the host "
		    "name the certificate names.", t->host);
	else if (has(why, "expired"))
		hint(v, "The server's certificate has expired: the server's "
		    "admin must renew it.");
	else if (has(why, "self-signed") || has(why, "self signed"))
		hint(v, "The server uses a self-signed certificate, which "
		    "nothing vouches for: install a certificate from a "
		    "public CA on the server.");
	else
		hint(v, "The server's certificate is not trusted (%s): install "
		    "a certificate from a public CA on the server, or add its "
		    "CA to [tls] ca_file.", v->error);
	hint(v, "For development only, tls.rejectUnauthorized: false "
	    "accepts any certificate.");
}

void
disc_verify_classify(bool imap, enum up_fail fail, const char *why,
    bool connected, const struct up_target *t, long long timeout_ms,
    struct disc_verdict *v)
{
	const char *host = t->host != NULL ? t->host : "?";

	switch (fail) {
	case UP_OK:
		vset(v, NULL, NULL);
		return;
	case UP_FAIL_AUTH:
		vset(v, DISC_E_AUTH, why);
		auth_hint(imap, t, why, v);
		return;
	case UP_FAIL_TLS:
		if (has(why, "certificate verify failed")) {
			vset(v, DISC_E_CERT, why);
			cert_hint(t, why, v);
			return;
		}
		vset(v, DISC_E_TLS, why);
		v->try_other = true;
		hint(v, "TLS failed with secure: %s on port %d.",
		    is_secure(t) ? "true" : "false", t->port);
		port_hint(imap, t, v);
		return;
	case UP_FAIL_CONFIG:
		if (has(why, "STARTTLS")) {
			vset(v, DISC_E_TLS, why);
			hint(v, "The server does not offer STARTTLS on port %d: "
			    "use its TLS port (%d) with secure: true. Only on a "
			    "trusted network, starttls: never sends the "
			    "password unencrypted.", t->port,
			    imap ? 993 : 465);
			return;
		}
		vset(v, DISC_E_CONFIG, why);
		if (t->cred == UP_CRED_OAUTH2)
			hint(v, "The server offers no OAuth2 login (XOAUTH2 or "
			    "OAUTHBEARER): use a password, or the provider's "
			    "OAuth2-capable host.");
		else
			hint(v, "The server offers no login method Postern can "
			    "use. Some servers offer AUTH only over TLS: keep "
			    "secure: true or STARTTLS.");
		return;
	case UP_FAIL_PROTOCOL:
		vset(v, DISC_E_PROTOCOL, why);
		if (looks_swapped(imap, t, why))
			swapped_hint(imap, v);
		else
			hint(v, "What answers at %s:%d does not speak %s: check "
			    "the host and port.", host, t->port,
			    proto_name(imap));
		return;
	case UP_FAIL_INTERNAL:
		vset(v, DISC_E_INTERNAL, why);
		hint(v, "Postern could not run the check (see its log).");
		return;
	case UP_FAIL_CONNECT:
		break;
	}
	if (has(why, "resolve ") || has(why, "no address for") ||
	    has(why, "no DNS resolver")) {
		vset(v, DISC_E_DNS, why);
		hint(v, "The host name %s does not resolve: check it for "
		    "typos, or find the right server with posternctl "
		    "autoconfig ADDRESS.", host);
		return;
	}
	if (has(why, "Connection refused")) {
		vset(v, DISC_E_CONNREFUSED, why);
		hint(v, "Nothing accepts connections at %s:%d.", host, t->port);
		if (looks_swapped(imap, t, NULL))
			swapped_hint(imap, v);
		else
			hint(v, "Check the port: %s usually runs on %d "
			    "(secure: true) or %d (secure: false), and check "
			    "firewalls.", proto_name(imap), imap ? 993 : 465,
			    imap ? 143 : 587);
		return;
	}
	if (has(why, "TLS handshake with") && has(why, "timed out")) {
		vset(v, DISC_E_TIMEDOUT, why);
		v->try_other = true;
		hint(v, "The server accepted the connection but never "
		    "completed TLS within %lld s.", timeout_ms / 1000);
		port_hint(imap, t, v);
		return;
	}
	/* up_smtp says "login to H:P timed out" for any stage; its connect
	 * step has a shorter timer of its own (target_for), so the login
	 * timer firing means the connection was up but silent. */
	if (has(why, "login to ") && has(why, "timed out"))
		connected = true;
	if (has(why, "waiting for greeting") || (connected &&
	    has(why, "timed out"))) {
		vset(v, DISC_E_TIMEDOUT, why);
		v->try_other = true;
		hint(v, "The server accepted the connection but sent no "
		    "greeting within %lld s.", timeout_ms / 1000);
		port_hint(imap, t, v);
		return;
	}
	if (has(why, "timed out")) {
		vset(v, DISC_E_TIMEDOUT, why);
		hint(v, "%s:%d did not answer within %lld s: the server may "
		    "be down, or a firewall drops the traffic (some networks "
		    "block outgoing 25, 465 and 587).", host, t->port,
		    timeout_ms / 1000);
		return;
	}
	vset(v, DISC_E_CONNECTION, why);
	if (has(why, "closed the connection during login") ||
	    has(why, "connection error")) {
		v->try_other = true;
		hint(v, "The server closed the connection before the login "
		    "finished.");
		port_hint(imap, t, v);
	} else if (has(why, "refused:") || has(why, "greeting:"))
		hint(v, "The server turned the connection away; it may limit "
		    "connections or block this address. Try again later.");
	else
		hint(v, "Check the host, the port and the network path to "
		    "%s.", host);
}

void
disc_verify_other_mode(bool imap, const struct disc_verdict *first,
    const struct up_target *other, enum up_fail other_fail,
    const char *other_why, struct disc_verdict *v)
{
	const bool	 sec = is_secure(other);
	struct disc_verdict auth;

	*v = *first;
	if (other_fail != UP_OK && other_fail != UP_FAIL_AUTH)
		return;		/* no better either way */
	v->code = DISC_E_TLS;
	v->try_other = false;
	v->hint[0] = '\0';
	if (sec)
		hint(v, "Port %d expects TLS from the start: set secure: true "
		    "(with secure: true the %s connection works).",
		    other->port, proto_name(imap));
	else
		hint(v, "Port %d starts in plain text and upgrades with "
		    "STARTTLS: set secure: false (with secure: false the %s "
		    "connection works).", other->port, proto_name(imap));
	if (other_fail == UP_FAIL_AUTH) {
		disc_verify_classify(imap, other_fail, other_why, true, other,
		    0, &auth);
		hint(v, "With that setting the login is refused, too: %s",
		    auth.hint);
	} else
		hint(v, "With that setting the login works.");
}

/* ---- mailbox names ---- */

/* The next code point of UTF-8 text, or -1 if malformed. */
static long
utf8_next(const unsigned char **sp)
{
	const unsigned char	*s = *sp;
	long			 c;
	int			 n;

	if (s[0] < 0x80)
		n = 0, c = s[0];
	else if ((s[0] & 0xe0) == 0xc0)
		n = 1, c = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 2, c = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 3, c = s[0] & 0x07;
	else
		return -1;
	for (int i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) ||
	    (n == 3 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*sp = s + n + 1;
	return c;
}

int
disc_verify_mailbox_arg(const char *name, char *out, size_t outlen)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+,";
	const unsigned char	*s = (const unsigned char *)name;
	size_t			 o = 0;
	unsigned long		 bits = 0;
	int			 nbits = 0;
	bool			 shifted = false;

#define PUT(ch) do { if (o + 1 >= outlen) return -1; out[o++] = (ch); } \
	while (0)
	if (*s == '\0' || strlen(name) > DISC_VERIFY_MAILBOX_MAX)
		return -1;
	PUT('"');
	while (*s != '\0') {
		long c = utf8_next(&s);

		if (c < 0 || c < 0x20 || c == 0x7f)
			return -1;
		if (c < 0x80) {
			if (shifted) {
				if (nbits > 0)
					PUT(b64[(bits << (6 - nbits)) & 0x3f]);
				PUT('-');
				shifted = false;
				bits = 0;
				nbits = 0;
			}
			if (c == '&') {
				PUT('&');
				PUT('-');
			} else {
				if (c == '"' || c == '\\')
					PUT('\\');
				PUT((char)c);
			}
			continue;
		}
		if (!shifted) {
			PUT('&');
			shifted = true;
		}
		/* UTF-16, then modified base64 (RFC 3501 5.1.3). */
		unsigned long units[2];
		int nu = 0;

		if (c >= 0x10000) {
			c -= 0x10000;
			units[nu++] = 0xd800 | ((unsigned long)c >> 10);
			units[nu++] = 0xdc00 | ((unsigned long)c & 0x3ff);
		} else
			units[nu++] = (unsigned long)c;
		for (int i = 0; i < nu; i++) {
			bits = bits << 16 | units[i];
			nbits += 16;
			while (nbits >= 6) {
				nbits -= 6;
				PUT(b64[(bits >> nbits) & 0x3f]);
			}
			bits &= (1UL << nbits) - 1;
		}
	}
	if (shifted) {
		if (nbits > 0)
			PUT(b64[(bits << (6 - nbits)) & 0x3f]);
		PUT('-');
	}
	PUT('"');
#undef PUT
	out[o] = '\0';
	return 0;
}

/* ---- the job ---- */

enum chk_state {
	CK_LOGIN,
	CK_OTHER,	/* second login in the other TLS mode */
	CK_MAILBOX,	/* EXAMINE sent */
	CK_PROBE,	/* does the other protocol answer there? */
	CK_DONE,
};

struct vcheck {
	struct disc_verify	*v;
	bool			 imap;
	bool			 used;
	enum chk_state		 state;
	struct up_target	*t;
	struct up_target	*other;
	struct up_imap		*ui;
	struct up_smtp		*us;
	struct bufferevent	*bev;	/* IMAP after login: ours */
	struct up_resp_reader	*rd;
	struct event		*timer;	/* the EXAMINE reply */
	struct disc_probe	*probe;
	char			 bye[200];
	struct disc_verdict	 first;
	cJSON			*result;
};

struct disc_verify {
	struct disc_env		*env;
	struct vcheck		 ck[2];	/* IMAP, SMTP */
	char			 mailbox[DISC_VERIFY_MAILBOX_MAX + 1];
	char			 mailbox_arg[DISC_VERIFY_MAILBOX_MAX * 3 + 8];
	long long		 timeout_ms;
	int			 pending;
	struct event		*done_ev;
	disc_verify_cb		*cb;
	void			*arg;
};

static void	imap_login_cb(void *, enum up_fail, const char *);
static void	smtp_login_cb(void *, enum up_fail, const char *);

static void
check_release(struct vcheck *ck)
{
	up_imap_free(&ck->ui);
	up_smtp_free(&ck->us);	/* QUIT if it is polite to */
	if (ck->bev != NULL) {
		bufferevent_free(ck->bev);
		ck->bev = NULL;
	}
	up_resp_reader_free(&ck->rd);
	disc_probe_free(&ck->probe);
	if (ck->timer != NULL) {
		event_free(ck->timer);
		ck->timer = NULL;
	}
	up_target_free(&ck->t);		/* wipes the secrets */
	up_target_free(&ck->other);
}

/* The check's end: v NULL for success. Frees the connection (also when
 * called from one of its callbacks, which all allow it). */
static void
check_done(struct vcheck *ck, const struct disc_verdict *v)
{
	cJSON *o = cJSON_CreateObject();

	if (ck->state == CK_DONE)
		return;
	ck->state = CK_DONE;
	cJSON_AddBoolToObject(o, "success", v == NULL);
	if (v != NULL) {
		cJSON_AddStringToObject(o, "error", v->error);
		cJSON_AddStringToObject(o, "code", v->code);
		if (v->hint[0] != '\0')
			cJSON_AddStringToObject(o, "hint", v->hint);
	}
	log_info("event=verify proto=%s upstream=%s:%d result=%s%s%s",
	    ck->imap ? "imap" : "smtp", ck->t->host, ck->t->port,
	    v == NULL ? "ok" : "fail", v != NULL ? " code=" : "",
	    v != NULL ? v->code : "");
	ck->result = o;
	check_release(ck);
	if (--ck->v->pending == 0)
		event_active(ck->v->done_ev, EV_TIMEOUT, 1);
}

static void
check_fail(struct vcheck *ck, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
check_fail(struct vcheck *ck, const char *code, const char *fmt, ...)
{
	struct disc_verdict	v;
	char			why[400];
	va_list			ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	vset(&v, code, why);
	if (strcmp(code, DISC_E_MAILBOX) == 0)
		hint(&v, "The login works, but the mailbox \"%s\" cannot be "
		    "opened: check its name (many servers are case-sensitive "
		    "and use \".\" or \"/\" between levels, e.g. "
		    "INBOX.Archive or INBOX/Archive).", ck->v->mailbox);
	else if (strcmp(code, DISC_E_TIMEDOUT) == 0)
		hint(&v, "The login works, but the server did not answer when "
		    "opening the mailbox within %lld s; it may be overloaded.",
		    ck->v->timeout_ms / 1000);
	else
		hint(&v, "The login works, but the connection failed right "
		    "after it; try again.");
	check_done(ck, &v);
}

static struct up_target *
target_for(const struct up_target *t, long long timeout_ms)
{
	struct up_target *c = up_target_dup(t);

	/* The connect step is shorter than the whole login so that a
	 * silent peer is reported by the step it stalled in. */
	c->login_timeout_ms = timeout_ms;
	c->connect_timeout_ms = timeout_ms * 3 / 5;
	c->renew = NULL;
	return c;
}

static void
login_start(struct vcheck *ck, const struct up_target *t)
{
	log_debug("event=verify_start proto=%s upstream=%s:%d tls=%s",
	    ck->imap ? "imap" : "smtp", t->host, t->port,
	    t->tls == UP_TLS_IMPLICIT ? "implicit" : t->tls == UP_TLS_STARTTLS ?
	    "starttls" : "none");
	if (ck->imap)
		ck->ui = up_imap_new(&ck->v->env->up, t, imap_login_cb, ck);
	else
		ck->us = up_smtp_new(&ck->v->env->up, t, NULL, 0,
		    smtp_login_cb, ck);
}

/* An IMAP check found no IMAP server (or SMTP none): if the other
 * protocol answers there, the settings are swapped. */
static void
swap_probe_cb(void *arg, bool ok, const char *why)
{
	struct vcheck *ck = arg;

	(void)why;
	disc_probe_free(&ck->probe);
	if (ok) {
		ck->first.hint[0] = '\0';
		hint(&ck->first, "What answers at %s:%d is %s server, not %s: "
		    "are the IMAP and SMTP hosts or ports swapped?", ck->t->host,
		    ck->t->port, ck->imap ? "an SMTP" : "an IMAP",
		    ck->imap ? "IMAP" : "SMTP");
	}
	check_done(ck, &ck->first);
}

/* A login ended badly: classify, maybe try the other TLS mode. */
static void
login_failed(struct vcheck *ck, enum up_fail fail, const char *why,
    bool connected)
{
	struct disc_verdict v;

	if (ck->state == CK_OTHER) {
		disc_verify_other_mode(ck->imap, &ck->first, ck->other, fail,
		    why, &v);
		check_done(ck, &v);
		return;
	}
	disc_verify_classify(ck->imap, fail, why, connected, ck->t,
	    ck->v->timeout_ms, &ck->first);
	if (strcmp(ck->first.code, DISC_E_PROTOCOL) == 0 &&
	    strstr(ck->first.hint, "swapped") == NULL) {
		ck->state = CK_PROBE;
		ck->probe = disc_probe_new(&ck->v->env->up, ck->t->host,
		    ck->t->port, !ck->imap, ck->t->tls == UP_TLS_IMPLICIT,
		    ck->v->timeout_ms, swap_probe_cb, ck);
		return;
	}
	if (!ck->first.try_other || ck->t->tls == UP_TLS_NONE) {
		check_done(ck, &ck->first);
		return;
	}
	ck->other = up_target_dup(ck->t);
	ck->other->tls = ck->t->tls == UP_TLS_IMPLICIT ? UP_TLS_STARTTLS :
	    UP_TLS_IMPLICIT;
	ck->state = CK_OTHER;
	log_debug("event=verify_retry proto=%s upstream=%s:%d mode=%s",
	    ck->imap ? "imap" : "smtp", ck->t->host, ck->t->port,
	    ck->other->tls == UP_TLS_IMPLICIT ? "implicit_tls" : "starttls");
	login_start(ck, ck->other);
}

static void
mailbox_read_cb(struct bufferevent *bev, void *arg)
{
	struct vcheck	*ck = arg;
	struct up_resp	 r;
	char		 buf[200];
	int		 rc;

	while ((rc = up_resp_read(ck->rd, bufferevent_get_input(bev),
	    &r)) == 1) {
		if (r.kind == UP_RESP_UNTAGGED && r.status == UP_RESP_BYE) {
			disc_text_clean(r.resp_text, ck->bye, sizeof(ck->bye));
			continue;
		}
		if (r.kind != UP_RESP_TAGGED || strcmp(r.tag, VERIFY_TAG) != 0)
			continue;
		if (r.status == UP_RESP_OK) {
			check_done(ck, NULL);
			return;
		}
		check_fail(ck, DISC_E_MAILBOX, "EXAMINE %s failed: %s",
		    ck->v->mailbox, disc_text_clean(r.resp_text, buf,
		    sizeof(buf)));
		return;
	}
	if (rc < 0)
		check_fail(ck, DISC_E_PROTOCOL, "bad response to EXAMINE: %s",
		    up_resp_error(ck->rd));
}

static void
mailbox_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct vcheck *ck = arg;

	(void)bev;
	(void)what;
	check_fail(ck, DISC_E_CONNECTION, "the server closed the connection "
	    "after login%s%s", ck->bye[0] != '\0' ? ": " : "", ck->bye);
}

static void
mailbox_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vcheck *ck = arg;

	(void)fd;
	(void)what;
	check_fail(ck, DISC_E_TIMEDOUT, "no answer to EXAMINE %s within "
	    "%lld ms", ck->v->mailbox, ck->v->timeout_ms);
}

static void
mailbox_start(struct vcheck *ck)
{
	struct timeval tv;

	/* Ours now; bytes after the tagged OK are still in its input. */
	ck->bev = up_imap_steal_bev(ck->ui);
	up_imap_free(&ck->ui);
	if (ck->bev == NULL) {
		check_fail(ck, DISC_E_INTERNAL, "no connection after login");
		return;
	}
	ck->state = CK_MAILBOX;
	ck->rd = up_resp_reader_new(false);
	ck->timer = evtimer_new(ck->v->env->base, mailbox_timer_cb, ck);
	if (ck->timer == NULL)
		fatalx("disc_verify: evtimer_new failed");
	tv.tv_sec = (time_t)(ck->v->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(ck->v->timeout_ms % 1000 * 1000);
	evtimer_add(ck->timer, &tv);
	bufferevent_setcb(ck->bev, mailbox_read_cb, NULL, mailbox_event_cb,
	    ck);
	bufferevent_setwatermark(ck->bev, EV_READ, 0, UP_RESP_LINE_MAX + 4096);
	evbuffer_add_printf(bufferevent_get_output(ck->bev), "%s EXAMINE %s\r\n",
	    VERIFY_TAG, ck->v->mailbox_arg);
	bufferevent_enable(ck->bev, EV_READ | EV_WRITE);
}

static void
imap_login_cb(void *arg, enum up_fail fail, const char *why)
{
	struct vcheck	*ck = arg;
	char		 reason[400];

	if (fail == UP_OK && ck->state == CK_LOGIN) {
		mailbox_start(ck);
		return;
	}
	/* why points into the up_imap, which is freed next. */
	snprintf(reason, sizeof(reason), "%s", why != NULL ? why : "");
	up_imap_free(&ck->ui);
	if (fail == UP_OK)
		login_failed(ck, UP_OK, NULL, true);	/* other mode works */
	else
		login_failed(ck, fail, reason, false);
}

static void
smtp_login_cb(void *arg, enum up_fail fail, const char *why)
{
	struct vcheck	*ck = arg;
	char		 reason[400];
	bool		 connected;

	if (fail == UP_OK && ck->state == CK_LOGIN) {
		check_done(ck, NULL);	/* frees up_smtp: QUIT */
		return;
	}
	connected = ck->us != NULL && up_smtp_peer(ck->us)[0] != '\0';
	/* why points into the up_smtp, which is freed next. */
	snprintf(reason, sizeof(reason), "%s", why != NULL ? why : "");
	up_smtp_free(&ck->us);
	login_failed(ck, fail, reason, connected);
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_verify	*v = arg;
	cJSON			*res = cJSON_CreateObject();
	bool			 ok = true;

	(void)fd;
	(void)what;
	for (int i = 0; i < 2; i++) {
		if (!v->ck[i].used)
			continue;
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
		    v->ck[i].result, "success")))
			ok = false;
		cJSON_AddItemToObject(res, v->ck[i].imap ? "imap" : "smtp",
		    v->ck[i].result);
		v->ck[i].result = NULL;
	}
	v->cb(v->arg, res, ok);
}

struct disc_verify *
disc_verify_new(struct disc_env *env, const struct up_target *imap,
    const char *mailbox, const struct up_target *smtp, long long timeout_ms,
    disc_verify_cb *cb, void *arg)
{
	struct disc_verify	*v = xcalloc(1, sizeof(*v));
	const struct up_target	*ts[2] = { imap, smtp };

	v->env = env;
	v->cb = cb;
	v->arg = arg;
	v->timeout_ms = timeout_ms;
	if ((v->done_ev = event_new(env->base, -1, 0, done_cb, v)) == NULL)
		fatalx("disc_verify: event_new failed");
	snprintf(v->mailbox, sizeof(v->mailbox), "%s", mailbox != NULL ?
	    mailbox : "INBOX");
	if (disc_verify_mailbox_arg(v->mailbox, v->mailbox_arg,
	    sizeof(v->mailbox_arg)) == -1)
		snprintf(v->mailbox_arg, sizeof(v->mailbox_arg), "INBOX");
	for (int i = 0; i < 2; i++) {
		if (ts[i] == NULL)
			continue;
		v->ck[i].v = v;
		v->ck[i].imap = i == 0;
		v->ck[i].used = true;
		v->ck[i].t = target_for(ts[i], timeout_ms);
		v->pending++;
	}
	/* Started after counting: a check never ends inside up_*_new,
	 * but keep pending right regardless. */
	for (int i = 0; i < 2; i++)
		if (v->ck[i].used)
			login_start(&v->ck[i], v->ck[i].t);
	if (v->pending == 0)
		event_active(v->done_ev, EV_TIMEOUT, 1);
	return v;
}

void
disc_verify_free(struct disc_verify **vp)
{
	struct disc_verify *v = *vp;

	if (v == NULL)
		return;
	*vp = NULL;
	for (int i = 0; i < 2; i++) {
		check_release(&v->ck[i]);
		cJSON_Delete(v->ck[i].result);
	}
	event_free(v->done_ev);
	free(v);
}
