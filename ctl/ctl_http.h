/*
 * The only libcurl user in posternctl: one HTTP/1.1 request to the admin
 * API over its Unix socket (CURLOPT_UNIX_SOCKET_PATH), with fixed timeouts
 * and a cap on the response size.
 */
#ifndef CTL_CTL_HTTP_H
#define CTL_CTL_HTTP_H

#include <stddef.h>

#define CTL_HTTP_CONNECT_TIMEOUT	5L	/* seconds */
#define CTL_HTTP_TIMEOUT		30L	/* seconds, whole request */
#define CTL_HTTP_RESP_MAX		(64 * 1024 * 1024)

struct ctl_http_resp {
	long	 status;
	char	*body;		/* NUL-terminated, never NULL after success */
	size_t	 len;
	size_t	 cap;
};

/*
 * Sends method path (e.g. "GET", "/v1/accounts?page=0") with an optional
 * JSON body (body NULL for none) to the socket. Returns 0 when a response
 * arrived, whatever its status, with it in *resp (release with
 * ctl_http_resp_free). Returns -1 when none did, with a full message
 * ("cannot connect to admin socket PATH: Connection refused") in err.
 * Call curl_global_init() first.
 */
int	 ctl_http_request(const char *sock, const char *method,
	    const char *path, const char *body, size_t len,
	    struct ctl_http_resp *resp, char *err, size_t errlen);
/* Wipes the body (it may hold a new token) and frees it. */
void	 ctl_http_resp_free(struct ctl_http_resp *);
/* Percent-encodes s for a path segment or query value (RFC 3986
 * unreserved characters pass). Returns a malloc'd string. */
char	*ctl_http_escape(const char *s);

#endif
