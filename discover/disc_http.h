/*
 * HTTP(S) GETs for autoconfig documents: libcurl's multi interface driven
 * by the libevent loop (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION), so a slow
 * server never blocks the admin API. Bodies are capped; no redirects, no
 * proxies from the environment, http and https only.
 */
#ifndef DISCOVER_DISC_HTTP_H
#define DISCOVER_DISC_HTTP_H

#include <stddef.h>

struct event_base;
struct disc_http;
struct disc_http_req;

/* ok: a response arrived (any status) with body/len (NUL-terminated,
 * valid during the call); else why says what failed ("timed out", "body
 * larger than 65536 bytes", curl's message). Called from the loop, never
 * from inside disc_http_get; the request is gone when this runs. */
typedef void disc_http_cb(void *arg, bool ok, long status, const char *body,
    size_t len, const char *why);

struct disc_http *disc_http_new(struct event_base *);
/* Cancels every request (no callbacks) and frees. NULL is fine. */
void		 disc_http_free(struct disc_http **);

/*
 * GET url. resolve: a CURLOPT_RESOLVE entry ("host:port:addr[,addr]") so
 * that curl uses our DNS answer, or NULL. ca_file: CA bundle (NULL: the
 * system store). max: body cap in bytes. Never NULL.
 */
struct disc_http_req *disc_http_get(struct disc_http *, const char *url,
		    const char *resolve, const char *ca_file,
		    long long timeout_ms, size_t max, disc_http_cb *cb,
		    void *arg);
/* The callback will not be called. NULL is fine; sets *rp to NULL. */
void		 disc_http_cancel(struct disc_http_req **rp);

/* Host (IPv6 literals without brackets) and port (the scheme's default if
 * none) of an http:// or https:// URL. Returns -1 for anything else. */
int		 disc_http_url_host(const char *url, char *host, size_t hostlen,
		    int *port_r);

#endif
