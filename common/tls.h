/*
 * OpenSSL setup in one place: the server context for client-facing
 * listeners (TLS 1.2+, modern ciphers, reloadable) and the client contexts
 * for upstream connections (verification with SNI and host-name checks).
 */
#ifndef COMMON_TLS_H
#define COMMON_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct cfg;

/* Server context from [tls] cert/key/ciphers/min_version. Sets
 * SSL_MODE_RELEASE_BUFFERS (idle sessions cost little), session tickets on,
 * no compression, no renegotiation. NULL with a message on error. */
SSL_CTX	*tls_server_ctx_new(const struct cfg *, char *err, size_t errlen);

/* Client context. verify: peer certificate must chain to ca_file (NULL:
 * the system store) and match the host set by tls_client_ssl_new. */
SSL_CTX	*tls_client_ctx_new(const char *ca_file, bool verify, char *err,
	    size_t errlen);
/* New SSL for one upstream connection: SNI = host (unless host is an IP
 * literal) and, when the context verifies, host-name (or IP) checking. */
SSL	*tls_client_ssl_new(SSL_CTX *, const char *host);
/* TLS session resumption towards upstreams: offers on ssl the session
 * last received from host:port through the same context, and keeps the
 * ones this connection receives (per process, 64 upstreams at most). */
void	 tls_client_session_use(SSL *, const char *host, int port);

/* Short text for the last OpenSSL error / verify result of ssl, for logs
 * and client-facing reasons ("certificate verify failed: self-signed
 * certificate"). Writes into buf and returns it. */
const char *tls_error_string(SSL *ssl, char *buf, size_t buflen);

#endif
