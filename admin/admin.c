/*
 * The admin API server: listening sockets (the Unix socket, and TCP if
 * configured), one evhttp per listener, and the glue that hands each
 * request to the router in admin_http.c. Owns the socket file.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "admin/admin.h"
#include "admin/admin_http.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "discover/disc_env.h"

#define ADMIN_TIMEOUT_S		30	/* idle/read/write per connection */
#define ADMIN_BACKLOG		64
#define ADMIN_ERRPAGE_MAX	1024	/* libevent's HTML error pages */
#define ADMIN_BODY_MAX_DEFAULT	(1024 * 1024)
#define ADMIN_HEADERS_MAX	(64 * 1024)	/* the whole header block */

static void
admin_gen_cb(struct evhttp_request *req, void *arg)
{
	struct admin_listener	*l = arg;
	struct admin_req	*ar = admin_req_new(l->admin, req, l->tcp);

	admin_req_dispatch(ar);
}

/*
 * XXX evhttp 2.1 answers some requests itself before any handler runs: a
 * body over the size limit (413), a malformed request (400), with a small
 * HTML page and no hook to change it. docs/API.md promises JSON for every
 * error, so the output buffer of each connection is watched and such a
 * page, when it is the only thing queued, is rewritten into our error
 * shape. Our own replies are always application/json and never match.
 */
static void
admin_errpage_cb(struct evbuffer *out, const struct evbuffer_cb_info *info,
    void *arg)
{
	char	 page[ADMIN_ERRPAGE_MAX + 1], reason[64];
	char	*json;
	size_t	 len = evbuffer_get_length(out), rlen;
	int	 status;
	cJSON	*o;

	(void)arg;
	if (info->n_added == 0 || len < 32 || len > ADMIN_ERRPAGE_MAX)
		return;
	evbuffer_copyout(out, page, len);
	page[len] = '\0';
	if (strncmp(page, "HTTP/1.", 7) != 0 || page[8] != ' ' ||
	    strstr(page, "\r\nContent-Type: text/html") == NULL ||
	    len < 15 || strcmp(page + len - 15, "</BODY></HTML>\n") != 0 ||
	    sscanf(page + 9, "%3d", &status) != 1 || status < 400)
		return;
	rlen = strcspn(page + 13, "\r\n");
	if (rlen >= sizeof(reason))
		rlen = sizeof(reason) - 1;
	memcpy(reason, page + 13, rlen);
	reason[rlen] = '\0';
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "statusCode", status);
	cJSON_AddStringToObject(o, "error", reason);
	cJSON_AddStringToObject(o, "message", status == 413 ?
	    "request body too large" : status == 501 ?
	    "method not supported" : "malformed request");
	json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	evbuffer_drain(out, len);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: "
	    "application/json; charset=utf-8\r\nConnection: close\r\n"
	    "Content-Length: %zu\r\n\r\n%s", status, reason, strlen(json), json);
	cJSON_free(json);
	log_info("event=admin method=- path=- status=%d reason=\"%s\"", status,
	    reason);
}

static struct bufferevent *
admin_bev_cb(struct event_base *base, void *arg)
{
	struct bufferevent *bev;

	(void)arg;
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev != NULL)
		evbuffer_add_cb(bufferevent_get_output(bev), admin_errpage_cb,
		    NULL);
	return bev;
}

static struct evhttp *
admin_http_new(struct admin *a, struct admin_listener *l)
{
	struct evhttp *http = evhttp_new(a->base);

	if (http == NULL)
		return NULL;
	/* Every method reaches the router, which answers 405 in JSON. */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_max_body_size(http, a->cfg->admin_body_max > 0 ?
	    (ev_ssize_t)a->cfg->admin_body_max : ADMIN_BODY_MAX_DEFAULT);
	/* libevent's default is no limit on the header block. */
	evhttp_set_max_headers_size(http, ADMIN_HEADERS_MAX);
	evhttp_set_timeout(http, ADMIN_TIMEOUT_S);
	evhttp_set_bevcb(http, admin_bev_cb, NULL);
	evhttp_set_gencb(http, admin_gen_cb, l);
	return http;
}

/* mkdir -p of path's parent directory, new directories 0700. */
static int
make_parent(const char *path, char *err, size_t errlen)
{
	char	*dir = xstrdup(path), *slash;
	int	 rc = 0;

	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		goto done;
	*slash = '\0';
	for (char *p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "admin socket: mkdir %s: %s", dir,
			    strerror(errno));
			rc = -1;
			goto done;
		}
		*p = c;
		if (c == '\0')
			break;
	}
done:
	free(dir);
	return rc;
}

/*
 * A socket file left by a daemon that died is removed; one on which some
 * process still accepts connections means another daemon is running, and
 * we refuse to steal its socket. Anything that is not a socket is left
 * alone.
 */
static int
clear_stale(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat	st;
	int		fd, rc;

	if (lstat(sun->sun_path, &st) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "admin socket: %s exists and is not a "
		    "socket", sun->sun_path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		goto syserr;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "admin socket: %s is in use (is another "
		    "posternd running?)", sun->sun_path);
		return -1;
	}
	if (errno != ECONNREFUSED)
		goto syserr;
	if (unlink(sun->sun_path) == -1 && errno != ENOENT)
		goto syserr;
	log_info("event=admin_socket action=removed_stale path=\"%s\"",
	    sun->sun_path);
	return 0;
syserr:
	snprintf(err, errlen, "admin socket: %s: %s", sun->sun_path,
	    strerror(errno));
	return -1;
}

static int
listen_unix(struct admin *a, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct evconnlistener	*lev;
	struct stat		 st;
	mode_t			 old;
	int			 fd = -1, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "admin socket: path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (make_parent(path, err, errlen) == -1 ||
	    clear_stale(&sun, err, errlen) == -1)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		goto syserr;
	/* Created 0600 from the start: no window where others connect. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		umask(old);
		errno = saved;
		goto syserr;
	}
	umask(old);
	if (chmod(path, 0600) == -1 || listen(fd, ADMIN_BACKLOG) == -1 ||
	    stat(path, &st) == -1)
		goto syserr_unlink;
	a->sock_path = xstrdup(path);
	a->sock_dev = st.st_dev;
	a->sock_ino = st.st_ino;
	lev = evconnlistener_new(a->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (lev == NULL)
		goto syserr_unlink;
	fd = -1;		/* the listener owns it now */
	if (evhttp_bind_listener(a->http_unix, lev) == NULL) {
		evconnlistener_free(lev);
		snprintf(err, errlen, "admin socket: cannot serve %s", path);
		return -1;
	}
	return 0;
syserr_unlink:
	saved = errno;
	unlink(path);
	errno = saved;
syserr:
	snprintf(err, errlen, "admin socket: %s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

static int
listen_tcp(struct admin *a, const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage	 ss;
	struct evconnlistener	*lev;
	int			 sslen = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss,
	    &sslen) == -1 || (ss.ss_family == AF_INET &&
	    ((struct sockaddr_in *)&ss)->sin_port == 0) ||
	    (ss.ss_family == AF_INET6 &&
	    ((struct sockaddr_in6 *)&ss)->sin6_port == 0)) {
		snprintf(err, errlen, "admin listen: bad address %s (use "
		    "IP:PORT)", addr);
		return -1;
	}
	lev = evconnlistener_new_bind(a->base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
	    ADMIN_BACKLOG, (struct sockaddr *)&ss, sslen);
	if (lev == NULL) {
		snprintf(err, errlen, "admin listen: %s: %s", addr,
		    strerror(errno));
		return -1;
	}
	if (evhttp_bind_listener(a->http_tcp, lev) == NULL) {
		evconnlistener_free(lev);
		snprintf(err, errlen, "admin listen: cannot serve %s", addr);
		return -1;
	}
	return 0;
}

struct admin *
admin_new(struct event_base *base, const struct cfg *cfg, struct tok *tok,
    char *err, size_t errlen)
{
	struct admin	*a = xcalloc(1, sizeof(*a));
	char		 derr[256];

	a->base = base;
	a->cfg = cfg;
	a->tok = tok;
	TAILQ_INIT(&a->reqs);
	a->l_unix.admin = a;
	a->l_tcp.admin = a;
	a->l_tcp.tcp = true;
	if (cfg->admin_socket == NULL || *cfg->admin_socket == '\0') {
		snprintf(err, errlen, "admin socket: no path configured");
		goto fail;
	}
	if ((a->http_unix = admin_http_new(a, &a->l_unix)) == NULL) {
		snprintf(err, errlen, "admin: cannot create the HTTP server");
		goto fail;
	}
	if (listen_unix(a, cfg->admin_socket, err, errlen) == -1)
		goto fail;
	if (cfg->admin_listen != NULL && *cfg->admin_listen != '\0') {
		if ((a->http_tcp = admin_http_new(a, &a->l_tcp)) == NULL) {
			snprintf(err, errlen, "admin: cannot create the HTTP "
			    "server");
			goto fail;
		}
		if (listen_tcp(a, cfg->admin_listen, err, errlen) == -1)
			goto fail;
	}
	log_info("event=admin_listen socket=\"%s\"%s%s", cfg->admin_socket,
	    a->http_tcp != NULL ? " tcp=" : "",
	    a->http_tcp != NULL ? cfg->admin_listen : "");
	/* Autoconfig/verify resources now, before the loop runs: loading
	 * the CA store takes tens of ms. On failure the first request
	 * retries (admin_disc_env) and reports why. */
	if ((a->disc = disc_env_new(base, cfg, derr, sizeof(derr))) == NULL)
		log_warn("event=discover_setup reason=\"%s\"", derr);
	return a;
fail:
	admin_free(&a);
	return NULL;
}

void
admin_free(struct admin **ap)
{
	struct admin	*a = *ap;
	struct stat	 st;

	if (a == NULL)
		return;
	*ap = NULL;
	admin_req_free_all(a);
	disc_env_free(&a->disc);	/* after the requests that use it */
	if (a->http_unix != NULL)
		evhttp_free(a->http_unix);
	if (a->http_tcp != NULL)
		evhttp_free(a->http_tcp);
	/* Only our own socket: a newer daemon may have replaced it. */
	if (a->sock_path != NULL && stat(a->sock_path, &st) == 0 &&
	    st.st_dev == a->sock_dev && st.st_ino == a->sock_ino)
		unlink(a->sock_path);
	free(a->sock_path);
	free(a);
}
