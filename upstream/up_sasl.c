/*
 * Upstream SASL. libsasl2 does the password mechanisms. Given a list,
 * sasl_client_start ranks candidates by its own idea of strength (it took
 * CRAM-MD5 over PLAIN on a TLS connection), so we offer it one mechanism
 * at a time from our allow-list, best first, and take the first it
 * accepts. No security layer (max_ssf = 0): after login the connection is
 * relayed byte for byte. XOAUTH2 and OAUTHBEARER are built by hand: Debian's
 * libsasl2-modules has no client plugin for either. So is PLAIN when it is
 * our first choice (what most servers offer): sasl_client_new resolves the
 * local host name with getaddrinfo on every call, a blocking lookup in the
 * event loop (and a file read or a DNS query per login) that PLAIN, one
 * message of "\0user\0password", does not need.
 */
#include <sys/socket.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sasl/sasl.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "upstream/up_resp.h"
#include "upstream/up_sasl.h"

enum sasl_kind {
	KIND_LIBSASL,
	KIND_PLAIN,
	KIND_XOAUTH2,
	KIND_OAUTHBEARER,
};

struct up_sasl {
	enum sasl_kind	 kind;
	char		*mech;
	sasl_conn_t	*conn;
	sasl_callback_t	 cbs[4];
	char		*user;
	sasl_secret_t	*pass;		/* libsasl2 reads it via SASL_CB_PASS */
	size_t		 passlen;
	char		*initial;	/* base64, secret */
	char		*resp;		/* base64, secret */
	char		*oauth_error;
	int		 steps;
};

static bool	sasl_ready;

/* Mechanisms we let libsasl2 use, best first. Everything else needs what a
 * proxy lacks (GSSAPI, EXTERNAL, -PLUS channel binding), has no password
 * (ANONYMOUS), or is broken or obsolete (DIGEST-MD5, NTLM, OTP, SRP). */
static const char *mechs_tls[] = {
	"SCRAM-SHA-512", "SCRAM-SHA-384", "SCRAM-SHA-256", "SCRAM-SHA-224",
	"SCRAM-SHA-1", "PLAIN", "CRAM-MD5", "LOGIN", NULL,
};
/* In the clear, a challenge-response beats sending the password. */
static const char *mechs_plain[] = {
	"SCRAM-SHA-512", "SCRAM-SHA-384", "SCRAM-SHA-256", "SCRAM-SHA-224",
	"SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN", NULL,
};

static void
wipe_str(char **p)
{
	if (*p == NULL)
		return;
	OPENSSL_cleanse(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

/* libsasl2's own messages; levels above DEBUG may carry secrets
 * (SASL_LOG_PASS), so they never reach the log. */
static int
sasl_log_cb(void *ctx, int level, const char *msg)
{
	char buf[512];

	(void)ctx;
	if (level > SASL_LOG_WARN || msg == NULL)
		return SASL_OK;
	log_debug("event=sasl_log level=%d msg=\"%s\"", level,
	    str_sanitize(msg, 200, buf, sizeof(buf)));
	return SASL_OK;
}

/* sasl_callback_t.proc is int (*)(void); the detour through void (*)(void)
 * tells -Wcast-function-type that the mismatch is intended. */
#define SASL_PROC(f)	((int (*)(void))(void (*)(void))(f))

/*
 * libsasl2 looks up the local host name (gethostname, then getaddrinfo
 * with AI_CANONNAME) in every sasl_client_new, inside the event loop.
 * Said once at start-up when that lookup fails, so that an operator adds
 * the name to /etc/hosts before SCRAM or CRAM-MD5 logins stall on DNS.
 */
static void
up_sasl_check_hostname(void)
{
	struct addrinfo	 hints, *res = NULL;
	char		 name[256], buf[300];
	int		 rc;

	if (gethostname(name, sizeof(name)) != 0)
		return;
	name[sizeof(name) - 1] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = AI_CANONNAME;
	if ((rc = getaddrinfo(name, NULL, &hints, &res)) != 0) {
		log_warn("event=sasl_hostname host=\"%s\" reason=\"%s\" "
		    "hint=\"libsasl2 resolves the local host name at every "
		    "SCRAM, CRAM-MD5 or LOGIN upstream login; add it to "
		    "/etc/hosts\"", str_sanitize(name, 100, buf, sizeof(buf)),
		    gai_strerror(rc));
		return;
	}
	freeaddrinfo(res);
}

int
up_sasl_init(char *err, size_t errlen)
{
	static sasl_callback_t global_cbs[] = {
		{ SASL_CB_LOG, NULL, NULL },
		{ SASL_CB_LIST_END, NULL, NULL },
	};
	int rc;

	if (sasl_ready)
		return 0;
	global_cbs[0].proc = SASL_PROC(sasl_log_cb);
	if ((rc = sasl_client_init(global_cbs)) != SASL_OK) {
		snprintf(err, errlen, "sasl_client_init: %s",
		    sasl_errstring(rc, NULL, NULL));
		return -1;
	}
	sasl_ready = true;
	up_sasl_check_hostname();
	return 0;
}

void
up_sasl_done(void)
{
	if (!sasl_ready)
		return;
	sasl_client_done();
	sasl_ready = false;
}

static int
user_cb(void *ctx, int id, const char **result, unsigned *len)
{
	struct up_sasl *s = ctx;

	/* Empty authorization identity: act as the authenticated user. */
	*result = id == SASL_CB_AUTHNAME ? s->user : "";
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int
pass_cb(sasl_conn_t *conn, void *ctx, int id, sasl_secret_t **psecret)
{
	struct up_sasl *s = ctx;

	(void)conn;
	(void)id;
	*psecret = s->pass;
	return SASL_OK;
}

/* base64, with "=" standing for an empty initial response. */
static char *
b64_initial(const uint8_t *p, size_t len)
{
	return len == 0 ? xstrdup("=") : str_b64_encode(p, len);
}

static bool
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* RFC 7628 3.1 / RFC 5801: saslname escapes "," and "=". */
static size_t
gs2_escape(const char *in, char *out)
{
	size_t o = 0;

	for (; *in != '\0'; in++) {
		if (*in == ',' || *in == '=') {
			memcpy(out + o, *in == ',' ? "=2C" : "=3D", 3);
			o += 3;
		} else
			out[o++] = *in;
	}
	return o;
}

/* Built by hand because libsasl2 (Debian 12, libsasl2-modules) has no
 * XOAUTH2 or OAUTHBEARER client plugin; both are one client message. */
static int
oauth_start(struct up_sasl *s, const struct up_target *t, char *err,
    size_t errlen)
{
	char	*raw, port[16];
	size_t	 len, ulen = strlen(t->user), tlen = strlen(t->secret);

	if (has_ctl(t->user) || has_ctl(t->secret)) {
		snprintf(err, errlen,
		    "OAuth2 user or token contains a control character");
		return -1;
	}
	/* Large enough for either format with every user byte escaped. */
	len = 3 * ulen + tlen + strlen(t->host) + 64;
	raw = xmalloc(len);
	if (s->kind == KIND_XOAUTH2) {
		/* Google's and Microsoft's XOAUTH2: one client message,
		 * "user=" U ^A "auth=Bearer " T ^A ^A. */
		len = (size_t)snprintf(raw, len, "user=%s\001auth=Bearer %s"
		    "\001\001", t->user, t->secret);
	} else {
		/* RFC 7628 3.1: gs2-header, then host, port, auth. */
		size_t o = 0;

		memcpy(raw, "n,a=", 4);
		o = 4 + gs2_escape(t->user, raw + 4);
		snprintf(port, sizeof(port), "%d", t->port);
		o += (size_t)snprintf(raw + o, len - o, ",\001host=%s\001"
		    "port=%s\001auth=Bearer %s\001\001", t->host, port,
		    t->secret);
		len = o;
	}
	s->initial = b64_initial((const uint8_t *)raw, len);
	OPENSSL_cleanse(raw, len);
	free(raw);
	return 1;
}

/* RFC 4616: authzid (empty: act as the user) NUL authcid NUL passwd. */
static int
plain_start(struct up_sasl *s, const struct up_target *t)
{
	size_t	 ulen = strlen(t->user), plen = strlen(t->secret);
	size_t	 len = ulen + plen + 2;
	uint8_t	*raw = xmalloc(len);

	raw[0] = '\0';
	memcpy(raw + 1, t->user, ulen);
	raw[1 + ulen] = '\0';
	memcpy(raw + 2 + ulen, t->secret, plen);
	s->kind = KIND_PLAIN;
	s->mech = xstrdup("PLAIN");
	s->initial = b64_initial(raw, len);
	OPENSSL_cleanse(raw, len);
	free(raw);
	return 1;
}

static int
libsasl_start(struct up_sasl *s, const struct up_target *t,
    const char *service, const char **cands, size_t ncands, char *err,
    size_t errlen)
{
	sasl_security_properties_t	 sp;
	const char			*out = NULL, *mech = NULL;
	unsigned			 outlen = 0;
	size_t				 plen = strlen(t->secret);
	int				 rc;

	s->pass = xcalloc(1, sizeof(*s->pass) + plen);
	s->pass->len = plen;
	memcpy(s->pass->data, t->secret, plen);
	s->passlen = sizeof(*s->pass) + plen;
	s->cbs[0] = (sasl_callback_t){ SASL_CB_USER, SASL_PROC(user_cb), s };
	s->cbs[1] = (sasl_callback_t){ SASL_CB_AUTHNAME, SASL_PROC(user_cb),
	    s };
	s->cbs[2] = (sasl_callback_t){ SASL_CB_PASS, SASL_PROC(pass_cb), s };
	s->cbs[3] = (sasl_callback_t){ SASL_CB_LIST_END, NULL, NULL };

	rc = sasl_client_new(service, t->host, NULL, NULL, s->cbs, 0,
	    &s->conn);
	if (rc != SASL_OK) {
		snprintf(err, errlen, "sasl_client_new: %s",
		    sasl_errstring(rc, NULL, NULL));
		return -1;
	}
	memset(&sp, 0, sizeof(sp));
	sp.min_ssf = 0;
	sp.max_ssf = 0;		/* no security layer: we relay raw bytes */
	sp.maxbufsize = 0;
	sp.security_flags = SASL_SEC_NOANONYMOUS;
	if ((rc = sasl_setprop(s->conn, SASL_SEC_PROPS, &sp)) != SASL_OK) {
		snprintf(err, errlen, "sasl_setprop: %s",
		    sasl_errstring(rc, NULL, NULL));
		return -1;
	}
	rc = SASL_NOMECH;
	for (size_t i = 0; i < ncands && rc == SASL_NOMECH; i++)
		rc = sasl_client_start(s->conn, cands[i], NULL, &out, &outlen,
		    &mech);
	if (rc == SASL_NOMECH)
		return 0;
	if (rc != SASL_OK && rc != SASL_CONTINUE) {
		snprintf(err, errlen, "sasl_client_start: %s",
		    sasl_errstring(rc, NULL, NULL));
		return -1;
	}
	s->mech = xstrdup(mech);
	if (out != NULL)
		s->initial = b64_initial((const uint8_t *)out, outlen);
	return 1;
}

int
up_sasl_new(const struct up_target *t, const char *service,
    const char *server_mechs, bool tls, struct up_sasl **sp, char *err,
    size_t errlen)
{
	struct up_sasl	 *s;
	const char	**pref, *cands[16];
	size_t		  n = 0;
	int		  rc;

	*sp = NULL;
	if (server_mechs == NULL)
		server_mechs = "";
	if (t->user == NULL || t->secret == NULL) {
		snprintf(err, errlen, "no upstream credentials");
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	if (t->cred == UP_CRED_OAUTH2) {
		const char *m = t->oauth_mech, *other;

		/* The preferred one (the provider's, else XOAUTH2, which
		 * Google and Microsoft document), else the other, among those
		 * the server advertises. */
		if (m == NULL || (strcasecmp(m, "XOAUTH2") != 0 &&
		    strcasecmp(m, "OAUTHBEARER") != 0))
			m = "XOAUTH2";
		other = strcasecmp(m, "XOAUTH2") == 0 ? "OAUTHBEARER" :
		    "XOAUTH2";
		if (!up_resp_cap_has(server_mechs, m))
			m = up_resp_cap_has(server_mechs, other) ? other : NULL;
		if (m == NULL) {
			up_sasl_free(&s);
			return 0;
		}
		if (strcasecmp(m, "XOAUTH2") == 0)
			s->kind = KIND_XOAUTH2;
		else if (strcasecmp(m, "OAUTHBEARER") == 0)
			s->kind = KIND_OAUTHBEARER;
		else {
			snprintf(err, errlen, "unknown OAuth2 mechanism");
			up_sasl_free(&s);
			return -1;
		}
		s->mech = xstrdup(s->kind == KIND_XOAUTH2 ? "XOAUTH2" :
		    "OAUTHBEARER");
		rc = oauth_start(s, t, err, errlen);
	} else {
		if (up_sasl_init(err, errlen) < 0) {
			up_sasl_free(&s);
			return -1;
		}
		s->kind = KIND_LIBSASL;
		s->user = xstrdup(t->user);
		/* Ours, in our order, that the server offers. */
		for (pref = tls ? mechs_tls : mechs_plain; *pref != NULL &&
		    n < sizeof(cands) / sizeof(cands[0]); pref++)
			if (up_resp_cap_has(server_mechs, *pref))
				cands[n++] = *pref;
		if (n > 0 && strcmp(cands[0], "PLAIN") == 0)
			rc = plain_start(s, t);
		else
			rc = n > 0 ? libsasl_start(s, t, service, cands, n,
			    err, errlen) : 0;
	}
	if (rc != 1) {
		up_sasl_free(&s);
		return rc;
	}
	*sp = s;
	return 1;
}

const char *
up_sasl_mech(const struct up_sasl *s)
{
	return s->mech;
}

const char *
up_sasl_initial(const struct up_sasl *s)
{
	return s->initial;
}

const char *
up_sasl_oauth_error(const struct up_sasl *s)
{
	return s->oauth_error;
}

int
up_sasl_step(struct up_sasl *s, const char *challenge, const char **resp_r,
    char *err, size_t errlen)
{
	uint8_t		*in;
	size_t		 inlen;
	const char	*out = NULL;
	unsigned	 outlen = 0;
	char		 buf[512];
	int		 rc;

	wipe_str(&s->resp);
	s->steps++;
	if ((in = str_b64_decode(challenge, strlen(challenge), &inlen)) ==
	    NULL) {
		snprintf(err, errlen, "server challenge is not base64");
		return -1;
	}
	if (s->kind == KIND_PLAIN) {
		/* PLAIN is one message, sent as the initial response. */
		free(in);
		snprintf(err, errlen, "unexpected PLAIN challenge");
		return -1;
	}
	if (s->kind != KIND_LIBSASL) {
		/* The only challenge these mechanisms get is the error
		 * report ({"status":"401",...}); answer so that the server
		 * ends with its NO: OAUTHBEARER's dummy is ^A ("AQ==",
		 * RFC 7628 3.2.3), XOAUTH2's an empty line (Google). */
		if (s->steps > 1) {
			free(in);
			snprintf(err, errlen, "unexpected %s challenge",
			    s->mech);
			return -1;
		}
		free(s->oauth_error);
		str_sanitize((const char *)in, 200, buf, sizeof(buf));
		s->oauth_error = xstrdup(buf);
		free(in);
		s->resp = xstrdup(s->kind == KIND_OAUTHBEARER ? "AQ==" : "");
		*resp_r = s->resp;
		return 0;
	}
	rc = sasl_client_step(s->conn, (const char *)in, (unsigned)inlen, NULL,
	    &out, &outlen);
	free(in);
	if (rc != SASL_OK && rc != SASL_CONTINUE) {
		/* sasl_errstring only: sasl_errdetail may quote input. */
		snprintf(err, errlen, "SASL %s: %s", s->mech,
		    sasl_errstring(rc, NULL, NULL));
		return -1;
	}
	s->resp = out != NULL && outlen > 0 ?
	    str_b64_encode((const uint8_t *)out, outlen) : xstrdup("");
	*resp_r = s->resp;
	return 0;
}

void
up_sasl_free(struct up_sasl **sp)
{
	struct up_sasl *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->conn != NULL)
		sasl_dispose(&s->conn);
	if (s->pass != NULL) {
		OPENSSL_cleanse(s->pass, s->passlen);
		free(s->pass);
	}
	wipe_str(&s->initial);
	wipe_str(&s->resp);
	free(s->user);
	free(s->mech);
	free(s->oauth_error);
	free(s);
}
