/*
 * OpenSSL contexts: one server context for client-facing listeners and the
 * client contexts for upstream connections. Everything that touches
 * SSL_CTX options lives here so the policy (TLS 1.2+, no compression, no
 * renegotiation, verification with host-name checks) is set in one place.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/cfg.h"
#include "common/str.h"
#include "common/tls.h"

/*
 * Upstream TLS sessions, per process: the last session (TLS 1.3 ticket)
 * each upstream host:port gave us, per client context, offered on the
 * next connection there so that it resumes instead of doing a full
 * handshake (no certificate signature and chain check per login).
 * Verification settings are part of the context, so a session from the
 * non-verifying context is never offered by the verifying one.
 */
#define TLS_SESS_MAX	64

struct tls_sess {
	SSL_CTX			*ctx;
	char			 key[272];	/* host:port */
	SSL_SESSION		*sess;
	unsigned long long	 used;
};

static struct tls_sess		tls_sess[TLS_SESS_MAX];
static unsigned long long	tls_sess_clock;
static int			tls_sess_idx = -1;	/* SSL ex_data: key */

static void
tls_sess_key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

/* The entry for ctx+key; with create, a free or the least recently used
 * one, emptied. */
static struct tls_sess *
tls_sess_find(SSL_CTX *ctx, const char *key, bool create)
{
	struct tls_sess *lru = &tls_sess[0];

	for (int i = 0; i < TLS_SESS_MAX; i++) {
		struct tls_sess *e = &tls_sess[i];

		if (e->ctx == ctx && strcmp(e->key, key) == 0) {
			e->used = ++tls_sess_clock;
			return e;
		}
		if (e->used < lru->used)
			lru = e;
	}
	if (!create)
		return NULL;
	if (lru->sess != NULL)
		SSL_SESSION_free(lru->sess);
	lru->sess = NULL;
	lru->ctx = ctx;
	snprintf(lru->key, sizeof(lru->key), "%s", key);
	lru->used = ++tls_sess_clock;
	return lru;
}

/* OpenSSL has a new session for ssl (after the handshake, or a TLS 1.3
 * ticket later): keep a copy for the next connection to the same
 * upstream. A copy, because OpenSSL marks the connection's own session
 * not resumable when it ends without close_notify (the relay just closes;
 * TLS 1.1 and later allow resuming after that). */
static int
tls_sess_new_cb(SSL *ssl, SSL_SESSION *sess)
{
	const char	*key = SSL_get_ex_data(ssl, tls_sess_idx);
	struct tls_sess	*e;
	SSL_SESSION	*copy;

	if (key == NULL || !SSL_SESSION_is_resumable(sess) ||
	    (copy = SSL_SESSION_dup(sess)) == NULL)
		return 0;
	e = tls_sess_find(SSL_get_SSL_CTX(ssl), key, true);
	if (e->sess != NULL)
		SSL_SESSION_free(e->sess);
	e->sess = copy;
	return 0;	/* OpenSSL keeps its reference to sess */
}

void
tls_client_session_use(SSL *ssl, const char *host, int port)
{
	char		 key[sizeof(tls_sess[0].key)];
	struct tls_sess	*e;
	char		*k;

	if (tls_sess_idx < 0)
		return;
	snprintf(key, sizeof(key), "%s:%d", host, port);
	if ((k = strdup(key)) == NULL)
		return;
	if (SSL_set_ex_data(ssl, tls_sess_idx, k) != 1) {
		free(k);
		return;
	}
	e = tls_sess_find(SSL_get_SSL_CTX(ssl), key, false);
	if (e != NULL && e->sess != NULL && SSL_SESSION_is_resumable(e->sess))
		(void)SSL_set_session(ssl, e->sess);
}

/* Short reason for one OpenSSL error code. System errors (a missing cert
 * file) carry errno as their reason and have no reason string. */
static const char *
tls_reason(unsigned long e)
{
	const char *r;

	if (e == 0)
		return NULL;
	if (ERR_SYSTEM_ERROR(e))
		return strerror(ERR_GET_REASON(e));
	r = ERR_reason_error_string(e);
	return r != NULL ? r : "unknown error";
}

/* "prefix: reason" for the oldest queued OpenSSL error (the root cause),
 * then clears the queue. */
static void
tls_set_err(char *err, size_t errlen, const char *prefix)
{
	const char *r = tls_reason(ERR_get_error());

	snprintf(err, errlen, "%s: %s", prefix, r != NULL ? r :
	    "unknown error");
	ERR_clear_error();
}

SSL_CTX *
tls_server_ctx_new(const struct cfg *cfg, char *err, size_t errlen)
{
	SSL_CTX	*ctx;
	char	 what[512];
	int	 minver;

	switch (cfg->tls_min_version) {
	case 12:
		minver = TLS1_2_VERSION;
		break;
	case 13:
		minver = TLS1_3_VERSION;
		break;
	default:
		snprintf(err, errlen, "tls min_version %d: want 12 or 13",
		    cfg->tls_min_version);
		return NULL;
	}
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
		snprintf(err, errlen, "tls cert and key must both be set");
		return NULL;
	}
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_set_err(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, minver)) {
		tls_set_err(err, errlen, "tls min_version");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Idle IMAP sessions are the common case: give the 2 x 16 KiB
	 * record buffers back while nothing is in flight. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (cfg->tls_ciphers != NULL && *cfg->tls_ciphers != '\0' &&
	    !SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers)) {
		tls_set_err(err, errlen, "tls ciphers");
		goto fail;
	}
	if (cfg->tls_ciphersuites != NULL && *cfg->tls_ciphersuites != '\0' &&
	    !SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites)) {
		tls_set_err(err, errlen, "tls ciphersuites");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
		snprintf(what, sizeof(what), "tls cert %s", cfg->tls_cert);
		tls_set_err(err, errlen, what);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key,
	    SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what), "tls key %s", cfg->tls_key);
		tls_set_err(err, errlen, what);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_set_err(err, errlen, "tls key does not match cert");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_client_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen)
{
	SSL_CTX	*ctx;
	char	 what[512];

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_set_err(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		tls_set_err(err, errlen, "SSL_CTX_set_min_proto_version");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (tls_sess_idx < 0)
		tls_sess_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    tls_sess_key_free);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tls_sess_new_cb);
	if (!verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file != NULL && *ca_file != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			snprintf(what, sizeof(what), "tls ca_file %s",
			    ca_file);
			tls_set_err(err, errlen, what);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_set_err(err, errlen, "system CA store");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL *
tls_client_ssl_new(SSL_CTX *ctx, const char *host)
{
	SSL	*ssl;
	bool	 ip = str_is_ip_literal(host);

	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	SSL_set_connect_state(ssl);
	/* RFC 6066 section 3: no IP literals in server_name. */
	if (!ip && SSL_set_tlsext_host_name(ssl, host) != 1)
		goto fail;
	if ((SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) == 0)
		return ssl;
	if (ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    host) != 1)
			goto fail;
	} else {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, host) != 1)
			goto fail;
	}
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

const char *
tls_error_string(SSL *ssl, char *buf, size_t buflen)
{
	unsigned long	 e, first = 0;
	long		 vr;
	const char	*reason;

	while ((e = ERR_get_error()) != 0)
		if (first == 0)
			first = e;
	/* A failed verification also queues the generic "certificate
	 * verify failed" error; the verify result says why. Without
	 * SSL_VERIFY_PEER the result is informational only. */
	if (ssl != NULL && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) &&
	    (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(buf, buflen, "certificate verify failed: %s",
		    X509_verify_cert_error_string(vr));
		return buf;
	}
	reason = tls_reason(first);
	snprintf(buf, buflen, "%s", reason != NULL ? reason :
	    "TLS handshake failed");
	return buf;
}
