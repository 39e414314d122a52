/*
 * libcurl easy interface over the admin Unix socket. Proxies are turned
 * off explicitly so that http_proxy in the environment cannot send admin
 * requests (and new tokens) anywhere else. Response buffers are grown by
 * copy-and-wipe, not realloc, as they may hold a freshly created token.
 */
#include <sys/un.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/xmalloc.h"
#include "ctl/ctl.h"
#include "ctl/ctl_http.h"

struct http_sink {
	struct ctl_http_resp	*resp;
	bool			 toobig;
};

static size_t
http_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_sink	*sink = arg;
	struct ctl_http_resp	*r = sink->resp;
	size_t			 n = size * nmemb, cap;
	char			*nbody;

	if (n > CTL_HTTP_RESP_MAX - r->len) {
		sink->toobig = true;
		return 0;		/* CURLE_WRITE_ERROR */
	}
	if (r->len + n + 1 > r->cap) {
		cap = r->cap == 0 ? 4096 : r->cap;
		while (cap < r->len + n + 1)
			cap *= 2;
		nbody = xmalloc(cap);
		if (r->len > 0)
			memcpy(nbody, r->body, r->len);
		ctl_wipe_free(&r->body, r->cap);
		r->body = nbody;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* Allocation never fails here either (common/xmalloc.h). */
static struct curl_slist *
http_header(struct curl_slist *list, const char *h)
{
	struct curl_slist	*n;

	if ((n = curl_slist_append(list, h)) == NULL) {
		fputs("posternctl: out of memory\n", stderr);
		abort();
	}
	return n;
}

static void
http_error(CURL *c, CURLcode rc, const char *sock, bool toobig,
    const char *errbuf, char *err, size_t errlen)
{
	long	oserr = 0;

	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
	if (toobig)
		snprintf(err, errlen, "admin socket %s: response larger than "
		    "%d MiB", sock, CTL_HTTP_RESP_MAX / (1024 * 1024));
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		snprintf(err, errlen, "admin socket %s: no answer within %ld "
		    "seconds", sock, CTL_HTTP_TIMEOUT);
	else if (rc == CURLE_COULDNT_CONNECT && oserr != 0)
		snprintf(err, errlen, "cannot connect to admin socket %s: %s",
		    sock, strerror((int)oserr));
	else if (rc == CURLE_COULDNT_CONNECT)
		snprintf(err, errlen, "cannot connect to admin socket %s: %s",
		    sock, errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
	else
		snprintf(err, errlen, "admin socket %s: %s", sock,
		    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
}

int
ctl_http_request(const char *sock, const char *method, const char *path,
    const char *body, size_t len, struct ctl_http_resp *resp, char *err,
    size_t errlen)
{
	struct sockaddr_un	 su;
	struct http_sink	 sink = { .resp = resp, .toobig = false };
	struct curl_slist	*hdrs = NULL;
	char			 errbuf[CURL_ERROR_SIZE] = "";
	char			*url = NULL;
	CURL			*c;
	CURLcode		 rc;
	int			 ret = -1;

	memset(resp, 0, sizeof(*resp));
	if (strlen(sock) >= sizeof(su.sun_path)) {
		snprintf(err, errlen, "cannot connect to admin socket %s: "
		    "path longer than %zu bytes", sock,
		    sizeof(su.sun_path) - 1);
		return -1;
	}
	if ((c = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "cannot initialise libcurl");
		return -1;
	}
	/* The host name is only the Host header; the socket is the target. */
	url = xasprintf("http://localhost%s", path);
	hdrs = http_header(hdrs, "Accept: application/json");
	hdrs = http_header(hdrs, "Expect:");
	if (body != NULL)
		hdrs = http_header(hdrs, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "posternctl/" POSTERN_VERSION);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CTL_HTTP_CONNECT_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, CTL_HTTP_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	if ((rc = curl_easy_perform(c)) != CURLE_OK) {
		http_error(c, rc, sock, sink.toobig, errbuf, err, errlen);
		ctl_http_resp_free(resp);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	if (resp->body == NULL) {
		resp->body = xstrdup("");
		resp->cap = 1;
	}
	ret = 0;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(url);
	return ret;
}

void
ctl_http_resp_free(struct ctl_http_resp *resp)
{
	ctl_wipe_free(&resp->body, resp->cap);
	resp->len = resp->cap = 0;
}

char *
ctl_http_escape(const char *s)
{
	static const char	 hex[] = "0123456789ABCDEF";
	char			*out, *o;
	unsigned char		 ch;

	o = out = xmalloc(strlen(s) * 3 + 1);
	for (; *s != '\0'; s++) {
		ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		    ch == '_' || ch == '~')
			*o++ = (char)ch;
		else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 0xf];
		}
	}
	*o = '\0';
	return out;
}
