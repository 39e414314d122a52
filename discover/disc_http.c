/*
 * libcurl multi on libevent, the "multi_socket" way: curl says which
 * sockets to watch and when to wake it; we keep one event per socket and
 * one timer and call curl_multi_socket_action() from them. Finished
 * transfers are collected after each action and reported from a per
 * request zero-delay event, never from inside curl.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "discover/disc_http.h"

#define HTTP_USER_AGENT	"postern-autoconfig/1"

struct http_sock {
	TAILQ_ENTRY(http_sock)	 entry;
	curl_socket_t		 fd;
	struct event		*ev;
};

struct disc_http_req {
	TAILQ_ENTRY(disc_http_req) entry;
	struct disc_http	*http;
	CURL			*easy;	/* NULL once finished */
	struct curl_slist	*resolve;
	disc_http_cb		*cb;
	void			*arg;
	struct event		*deliver;
	char			*body;
	size_t			 len, cap, max;
	bool			 too_big;
	bool			 ok;
	long			 status;
	char			 why[CURL_ERROR_SIZE + 64];
	char			 errbuf[CURL_ERROR_SIZE];
};

struct disc_http {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
	TAILQ_HEAD(, disc_http_req) reqs;
	TAILQ_HEAD(, http_sock)	 socks;
};

static void
req_free(struct disc_http_req *r)
{
	TAILQ_REMOVE(&r->http->reqs, r, entry);
	if (r->easy != NULL) {
		curl_multi_remove_handle(r->http->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->resolve);
	event_free(r->deliver);
	free(r->body);
	free(r);
}

static void
deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_http_req	*r = arg;
	disc_http_cb		*cb = r->cb;
	void			*cbarg = r->arg;
	char			*body = r->body;
	size_t			 len = r->len;
	bool			 ok = r->ok;
	long			 status = r->status;
	char			 why[sizeof(r->why)];

	(void)fd;
	(void)what;
	memcpy(why, r->why, sizeof(why));
	r->body = NULL;
	req_free(r);
	cb(cbarg, ok, status, body != NULL ? body : "", len,
	    ok ? NULL : why);
	free(body);
}

/* Moves finished transfers to delivery. */
static void
collect(struct disc_http *h)
{
	CURLMsg			*m;
	int			 left;
	struct disc_http_req	*r;

	while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (r == NULL)
			continue;
		if (m->data.result == CURLE_OK) {
			r->ok = true;
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE,
			    &r->status);
		} else if (r->too_big ||
		    m->data.result == CURLE_FILESIZE_EXCEEDED)
			snprintf(r->why, sizeof(r->why), "body larger than %zu "
			    "bytes", r->max);
		else if (m->data.result == CURLE_OPERATION_TIMEDOUT)
			snprintf(r->why, sizeof(r->why), "timed out");
		else
			snprintf(r->why, sizeof(r->why), "%s",
			    r->errbuf[0] != '\0' ? r->errbuf :
			    curl_easy_strerror(m->data.result));
		curl_multi_remove_handle(h->multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
		event_active(r->deliver, EV_TIMEOUT, 1);
	}
}

static void
sock_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_http	*h = arg;
	int			 running, flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, fd, flags, &running);
	collect(h);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_http	*h = arg;
	int			 running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	collect(h);
}

/* CURLMOPT_SOCKETFUNCTION. sockp: our http_sock for s, or NULL. */
static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct disc_http	*h = userp;
	struct http_sock	*hs = sockp;
	short			 ev = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (hs != NULL) {
			TAILQ_REMOVE(&h->socks, hs, entry);
			event_free(hs->ev);
			free(hs);
		}
		curl_multi_assign(h->multi, s, NULL);
		return 0;
	}
	if (hs == NULL) {
		hs = xcalloc(1, sizeof(*hs));
		hs->fd = s;
		TAILQ_INSERT_TAIL(&h->socks, hs, entry);
		curl_multi_assign(h->multi, s, hs);
	} else
		event_free(hs->ev);
	if (what & CURL_POLL_IN)
		ev |= EV_READ;
	if (what & CURL_POLL_OUT)
		ev |= EV_WRITE;
	if ((hs->ev = event_new(h->base, s, ev, sock_ev_cb, h)) == NULL)
		fatalx("disc_http: event_new failed");
	event_add(hs->ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: only arms our timer (no curl calls here). */
static int
timerfn_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct disc_http	*h = userp;
	struct timeval		 tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(h->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(h->timer, &tv);
	return 0;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct disc_http_req	*r = arg;
	size_t			 n = size * nmemb;

	if (n > r->max - r->len) {
		r->too_big = true;
		return 0;	/* CURLE_WRITE_ERROR */
	}
	if (r->len + n + 1 > r->cap) {
		r->cap = r->len + n + 1 > r->cap * 2 ? r->len + n + 1 :
		    r->cap * 2;
		r->body = xrealloc(r->body, r->cap);
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

struct disc_http_req *
disc_http_get(struct disc_http *h, const char *url, const char *resolve,
    const char *ca_file, long long timeout_ms, size_t max, disc_http_cb *cb,
    void *arg)
{
	struct disc_http_req	*r = xcalloc(1, sizeof(*r));
	CURL			*e;

	r->http = h;
	r->cb = cb;
	r->arg = arg;
	r->max = max;
	if ((r->deliver = event_new(h->base, -1, 0, deliver_cb, r)) == NULL)
		fatalx("disc_http: event_new failed");
	TAILQ_INSERT_TAIL(&h->reqs, r, entry);
	if ((e = r->easy = curl_easy_init()) == NULL) {
		snprintf(r->why, sizeof(r->why), "cannot start libcurl");
		event_active(r->deliver, EV_TIMEOUT, 1);
		return r;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	/* "" disables proxies, even from http_proxy and friends. */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_USERAGENT, HTTP_USER_AGENT);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
	if (resolve != NULL) {
		r->resolve = curl_slist_append(NULL, resolve);
		curl_easy_setopt(e, CURLOPT_RESOLVE, r->resolve);
	}
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		r->easy = NULL;
		snprintf(r->why, sizeof(r->why), "cannot start libcurl");
		event_active(r->deliver, EV_TIMEOUT, 1);
	}
	return r;
}

void
disc_http_cancel(struct disc_http_req **rp)
{
	struct disc_http_req *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	req_free(r);
}

struct disc_http *
disc_http_new(struct event_base *base)
{
	struct disc_http *h = xcalloc(1, sizeof(*h));

	h->base = base;
	TAILQ_INIT(&h->reqs);
	TAILQ_INIT(&h->socks);
	if ((h->multi = curl_multi_init()) == NULL)
		fatalx("disc_http: curl_multi_init failed");
	if ((h->timer = evtimer_new(base, timer_cb, h)) == NULL)
		fatalx("disc_http: evtimer_new failed");
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timerfn_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

void
disc_http_free(struct disc_http **hp)
{
	struct disc_http	*h = *hp;
	struct disc_http_req	*r;
	struct http_sock	*hs;

	if (h == NULL)
		return;
	*hp = NULL;
	while ((r = TAILQ_FIRST(&h->reqs)) != NULL)
		req_free(r);
	/* Kept-alive connections close here; curl may or may not report
	 * their sockets to socket_cb first: free whatever is left. */
	curl_multi_cleanup(h->multi);
	while ((hs = TAILQ_FIRST(&h->socks)) != NULL) {
		TAILQ_REMOVE(&h->socks, hs, entry);
		event_free(hs->ev);
		free(hs);
	}
	event_free(h->timer);
	free(h);
}

int
disc_http_url_host(const char *url, char *host, size_t hostlen, int *port_r)
{
	CURLU	*u;
	char	*h = NULL, *port = NULL, *scheme = NULL;
	size_t	 len;
	int	 rc = -1;

	if ((u = curl_url()) == NULL)
		return -1;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK)
		goto out;
	len = strlen(h);
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		memmove(h, h + 1, len - 2);
		h[len - 2] = '\0';
		len -= 2;
	}
	if (len == 0 || len >= hostlen)
		goto out;
	memcpy(host, h, len + 1);
	*port_r = atoi(port);
	rc = *port_r > 0 && *port_r <= 65535 ? 0 : -1;
out:
	curl_free(h);
	curl_free(port);
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}
