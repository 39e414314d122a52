/*
 * The admin API's HTTP layer: route table and path matching, the
 * per-request context (owner of the Redis request in flight), bearer
 * tokens on TCP, JSON bodies and replies in the error shape of
 * docs/API.md, and the one log line per request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admin/account_json.h"
#include "admin/admin_http.h"
#include "auth/token.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_store.h"

#define LOG_SEG_MAX	80	/* bytes of one segment in a log line */

const struct admin_route admin_routes[] = {
	{ EVHTTP_REQ_GET,	"/health",			admin_health_get },
	{ EVHTTP_REQ_POST,	"/v1/tokens",			admin_tokens_create },
	{ EVHTTP_REQ_POST,	"/v1/token",			admin_tokens_create },
	{ EVHTTP_REQ_GET,	"/v1/tokens",			admin_tokens_list },
	{ EVHTTP_REQ_GET,	"/v1/tokens/account/{account}",
	    admin_tokens_list_account },
	{ EVHTTP_REQ_DELETE,	"/v1/tokens/account/{account}",
	    admin_tokens_delete_account },
	{ EVHTTP_REQ_GET,	"/v1/tokens/{id}",		admin_tokens_get },
	{ EVHTTP_REQ_DELETE,	"/v1/tokens/{id}",		admin_tokens_delete },
	{ EVHTTP_REQ_DELETE,	"/v1/token/{id}",		admin_tokens_delete },
	{ EVHTTP_REQ_POST,	"/v1/account",			admin_accounts_create },
	{ EVHTTP_REQ_PUT,	"/v1/account/{account}",	admin_accounts_update },
	{ EVHTTP_REQ_GET,	"/v1/account/{account}",	admin_accounts_get },
	{ EVHTTP_REQ_DELETE,	"/v1/account/{account}",	admin_accounts_delete },
	{ EVHTTP_REQ_GET,	"/v1/accounts",			admin_accounts_list },
	{ EVHTTP_REQ_GET,	"/v1/settings",			admin_settings_get },
	{ EVHTTP_REQ_POST,	"/v1/settings",			admin_settings_set },
	{ EVHTTP_REQ_GET,	"/v1/autoconfig",		admin_autoconfig_get },
	{ EVHTTP_REQ_POST,	"/v1/verifyAccount",		admin_verify_post },
	{ EVHTTP_REQ_POST,	"/v1/oauth2",			admin_oauth2_create },
	{ EVHTTP_REQ_GET,	"/v1/oauth2",			admin_oauth2_list },
	{ EVHTTP_REQ_GET,	"/v1/oauth2/{app}",		admin_oauth2_get },
	{ EVHTTP_REQ_PUT,	"/v1/oauth2/{app}",		admin_oauth2_update },
	{ EVHTTP_REQ_DELETE,	"/v1/oauth2/{app}",		admin_oauth2_delete },
	{ 0,			NULL,				NULL },
};

long long
admin_http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
admin_http_urldecode(const char *s, size_t len)
{
	char	*out = xmalloc(len + 1);
	size_t	 o = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				goto bad;
			if ((hi = str_hex_digit((unsigned char)s[i + 1])) < 0 ||
			    (lo = str_hex_digit((unsigned char)s[i + 2])) < 0)
				goto bad;
			c = hi << 4 | lo;
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			goto bad;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* Moves *p to the next segment of a path ("/a//b") and returns its
 * length; 0 at the end. */
static size_t
next_seg(const char **p)
{
	while (**p == '/')
		(*p)++;
	return strcspn(*p, "/");
}

int
admin_http_split(const char *path, char **segs, int max)
{
	const char	*p = path;
	size_t		 len;
	int		 n = 0;

	if (path == NULL || *path != '/')
		return -1;
	while ((len = next_seg(&p)) > 0) {
		if (n == max || (segs[n] = admin_http_urldecode(p, len)) == NULL)
			goto fail;
		n++;
		p += len;
	}
	return n;
fail:
	while (n > 0)
		free(segs[--n]);
	return -1;
}

bool
admin_http_match(const char *pattern, char *const *segs, int nsegs,
    const char **params)
{
	const char	*p = pattern;
	size_t		 len;
	int		 i = 0, np = 0;

	while ((len = next_seg(&p)) > 0) {
		if (i == nsegs)
			return false;
		if (p[0] == '{' && p[len - 1] == '}') {
			if (np < ADMIN_PARAMS_MAX)
				params[np++] = segs[i];
		} else if (strlen(segs[i]) != len ||
		    strncmp(p, segs[i], len) != 0)
			return false;
		i++;
		p += len;
	}
	return i == nsegs;
}

const struct admin_route *
admin_http_route(const struct admin_route *table, enum evhttp_cmd_type method,
    char *const *segs, int nsegs, const char **params, bool *path_known)
{
	const char *tmp[ADMIN_PARAMS_MAX];

	*path_known = false;
	for (const struct admin_route *r = table; r->pattern != NULL; r++) {
		if (!admin_http_match(r->pattern, segs, nsegs, tmp))
			continue;
		if (r->method == method) {
			memcpy(params, tmp, sizeof(tmp));
			return r;
		}
		*path_known = true;
	}
	return NULL;
}

const char *
admin_http_method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "OTHER";
}

/*
 * s with every run of TOKEN_HEX_LEN or more hex digits replaced by
 * "<redacted>", cut to about LOG_SEG_MAX bytes. Runs are measured on the
 * whole of s before anything is cut, so that no cut leaves a token's head
 * (most of its bits) in the log: a token may hide inside a longer run
 * ("/v1/token/<token>x", "/<token>ab").
 */
static void
log_seg_mask(const char *s, char *out, size_t outlen)
{
	static const char	 mask[] = "<redacted>";
	size_t			 o = 0, run;

	while (*s != '\0' && o + 1 < outlen) {
		run = strspn(s, "0123456789abcdefABCDEF");
		if (run >= TOKEN_HEX_LEN) {
			for (const char *m = mask; *m != '\0' &&
			    o + 1 < outlen; m++)
				out[o++] = *m;
			s += run;
			continue;
		}
		if (run == 0)
			run = 1;
		for (; run > 0 && o + 1 < outlen; run--)
			out[o++] = *s++;
	}
	out[o] = '\0';
}

void
admin_http_log_path(char *const *segs, int nsegs, const char *last,
    char *out, size_t outlen)
{
	size_t	o = 0;
	char	buf[LOG_SEG_MAX * 4 + 8], masked[LOG_SEG_MAX + 1];

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (nsegs == 0)
		snprintf(out, outlen, "/");
	for (int i = 0; i < nsegs; i++) {
		const char *s = segs[i];

		if (i == nsegs - 1 && last != NULL)
			s = last;
		else {
			log_seg_mask(s, masked, sizeof(masked));
			s = masked;
		}
		str_sanitize(s, LOG_SEG_MAX, buf, sizeof(buf));
		if (o + 1 + strlen(buf) + 1 > outlen)
			break;
		o += snprintf(out + o, outlen - o, "/%s", buf);
	}
}

/* ---- request context ---- */

static void
admin_req_free(struct admin_req *ar)
{
	tok_req_cancel(ar->treq);
	tok_op_cancel(ar->op);
	if (ar->hctx_free != NULL)
		ar->hctx_free(ar->hctx);
	for (int i = 0; i < ar->nsegs; i++)
		free(ar->segs[i]);
	if (ar->query_parsed)
		evhttp_clear_headers(&ar->query);
	free(ar->log_last);
	TAILQ_REMOVE(&ar->admin->reqs, ar, entry);
	free(ar);
}

static void
admin_req_log(struct admin_req *ar, const char *status)
{
	char		 path[512];
	const char	*q;

	admin_http_log_path(ar->segs, ar->nsegs, ar->log_last, path,
	    sizeof(path));
	q = strchr(path, ' ') != NULL ? "\"" : "";
	log_info("event=admin method=%s path=%s%s%s status=%s ms=%lld%s",
	    admin_http_method_name(ar->method), q, path, q, status,
	    admin_http_now_ms() - ar->t0, ar->tcp ? " via=tcp" : "");
}

/* The client went away: the evhttp request is being freed with its
 * connection. Cancel what is in flight and forget the request. */
static void
admin_req_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct admin_req *ar = arg;

	(void)evcon;
	admin_req_log(ar, "closed");
	/* On EOF or timeout, evhttp detaches a request still in the user's
	 * hands instead of freeing it; nobody will reply now, so free it. */
	if (evhttp_request_get_connection(ar->req) == NULL)
		evhttp_request_free(ar->req);
	admin_req_free(ar);
}

struct admin_req *
admin_req_new(struct admin *a, struct evhttp_request *req, bool tcp)
{
	struct admin_req *ar = xcalloc(1, sizeof(*ar));

	ar->admin = a;
	ar->tok = a->tok;
	ar->cfg = a->cfg;
	ar->req = req;
	ar->evcon = evhttp_request_get_connection(req);
	ar->method = evhttp_request_get_command(req);
	ar->t0 = admin_http_now_ms();
	ar->tcp = tcp;
	TAILQ_INSERT_TAIL(&a->reqs, ar, entry);
	evhttp_connection_set_closecb(ar->evcon, admin_req_close_cb, ar);
	return ar;
}

void
admin_req_free_all(struct admin *a)
{
	struct admin_req *ar;

	while ((ar = TAILQ_FIRST(&a->reqs)) != NULL) {
		evhttp_connection_set_closecb(ar->evcon, NULL, NULL);
		admin_req_free(ar);
	}
}

/* ---- replies ---- */

static const char *
status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Request Entity Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

void
admin_http_reply(struct admin_req *ar, int status, cJSON *body)
{
	struct evbuffer	*buf = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(ar->req);
	char		*txt = cJSON_PrintUnformatted(body);
	char		 st[8];

	if (buf == NULL || txt == NULL)
		fatalx("admin: out of memory");
	evbuffer_add(buf, txt, strlen(txt));
	cJSON_free(txt);
	cJSON_Delete(body);
	evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
	if (status == 401 && ar->tcp)
		evhttp_add_header(h, "WWW-Authenticate", "Bearer");
	/* From here on the connection is libevent's business again. */
	evhttp_connection_set_closecb(ar->evcon, NULL, NULL);
	evhttp_send_reply(ar->req, status, status_text(status), buf);
	evbuffer_free(buf);
	snprintf(st, sizeof(st), "%d", status);
	admin_req_log(ar, st);
	admin_req_free(ar);
}

static void
error_fill(cJSON *o, int status, const char *field, const char *msg)
{
	cJSON_AddNumberToObject(o, "statusCode", status);
	cJSON_AddStringToObject(o, "error", status_text(status));
	cJSON_AddStringToObject(o, "message", msg);
	if (field != NULL && *field != '\0')
		cJSON_AddStringToObject(o, "field", field);
}

void
admin_http_error(struct admin_req *ar, int status, const char *field,
    cJSON *extra, const char *fmt, ...)
{
	cJSON	*o = extra != NULL ? extra : cJSON_CreateObject();
	char	 msg[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	error_fill(o, status, field, msg);
	admin_http_reply(ar, status, o);
}

void
admin_http_unavailable_extra(struct admin_req *ar, const char *reason,
    cJSON *extra)
{
	admin_http_error(ar, 503, NULL, extra, "Redis unavailable: %s",
	    reason != NULL ? reason : "unknown error");
}

void
admin_http_unavailable(struct admin_req *ar, const char *reason)
{
	admin_http_unavailable_extra(ar, reason, NULL);
}

/*
 * cJSON keeps strings NUL-terminated, so "a\u0000b" would silently become
 * "a". No field of ours may hold a NUL: find the first escaped one and the
 * dotted path of the value holding it, so the 400 names the field. Runs on
 * text cJSON has already accepted, so the syntax is known to be valid.
 */
#define NUL_DEPTH_MAX	16

static bool
admin_http_nul_field(const char *txt, size_t len, char *path, size_t pathlen)
{
	char	 keys[NUL_DEPTH_MAX][64];
	bool	 obj[NUL_DEPTH_MAX], want_key = false;
	int	 depth = 0;

	for (size_t i = 0; i < len; i++) {
		char	 c = txt[i];
		size_t	 j, start;
		bool	 nul = false, is_key;

		if (c == '{' || c == '[') {
			if (depth < NUL_DEPTH_MAX) {
				obj[depth] = c == '{';
				keys[depth][0] = '\0';
			}
			depth++;
			want_key = c == '{';
			continue;
		}
		if (c == '}' || c == ']') {
			depth--;
			continue;
		}
		if (c == ',') {
			want_key = depth > 0 && depth <= NUL_DEPTH_MAX &&
			    obj[depth - 1];
			continue;
		}
		if (c != '"')
			continue;
		start = i + 1;
		for (j = start; j < len && txt[j] != '"'; j++) {
			if (txt[j] != '\\')
				continue;
			if (j + 5 < len && strncasecmp(txt + j + 1, "u0000", 5) == 0)
				nul = true;
			j++;
		}
		is_key = want_key;
		want_key = false;
		if (is_key && depth > 0 && depth <= NUL_DEPTH_MAX)
			snprintf(keys[depth - 1], sizeof(keys[0]), "%.*s",
			    (int)(j - start), txt + start);
		if (nul) {
			size_t o = 0;

			path[0] = '\0';
			for (int d = 0; d < depth && d < NUL_DEPTH_MAX; d++) {
				if (!obj[d] || keys[d][0] == '\0')
					continue;
				o += snprintf(path + o, o < pathlen ? pathlen - o :
				    0, "%s%s", o > 0 ? "." : "", keys[d]);
				if (o >= pathlen)
					break;
			}
			return true;
		}
		i = j;
	}
	return false;
}

cJSON *
admin_http_body(struct admin_req *ar)
{
	struct evbuffer	*in = evhttp_request_get_input_buffer(ar->req);
	size_t		 len = evbuffer_get_length(in);
	const char	*end = NULL;
	char		*txt, field[256];
	cJSON		*j;

	if (len == 0) {
		admin_http_error(ar, 400, NULL, NULL, "a JSON body is required");
		return NULL;
	}
	txt = xmalloc(len + 1);
	evbuffer_copyout(in, txt, len);
	txt[len] = '\0';
	if (memchr(txt, '\0', len) != NULL)
		j = NULL;
	else
		j = cJSON_ParseWithOpts(txt, &end, true);
	if (j != NULL && admin_http_nul_field(txt, len, field, sizeof(field))) {
		cJSON_Delete(j);
		free(txt);
		admin_http_error(ar, 400, field[0] != '\0' ? field : NULL, NULL,
		    "%s must not contain NUL characters", field[0] != '\0' ?
		    field : "the body");
		return NULL;
	}
	free(txt);
	if (j == NULL) {
		admin_http_error(ar, 400, NULL, NULL, "the body is not valid "
		    "JSON");
		return NULL;
	}
	return j;
}

cJSON *
admin_http_body_object(struct admin_req *ar)
{
	cJSON *body;

	if ((body = admin_http_body(ar)) == NULL)
		return NULL;
	if (!cJSON_IsObject(body)) {
		cJSON_Delete(body);
		admin_http_error(ar, 400, NULL, NULL, "the body must be a JSON "
		    "object");
		return NULL;
	}
	return body;
}

const char *
admin_http_query(struct admin_req *ar, const char *name)
{
	if (!ar->query_parsed)
		return NULL;
	return evhttp_find_header(&ar->query, name);
}

bool
admin_http_query_ll(struct admin_req *ar, const char *name, long long min,
    long long max, long long def, long long *r)
{
	const char *v = admin_http_query(ar, name);

	if (v == NULL) {
		*r = def;
		return true;
	}
	if (!str_to_ll(v, min, max, r)) {
		admin_http_error(ar, 400, name, NULL, "%s must be an integer "
		    "%lld-%lld", name, min, max);
		return false;
	}
	return true;
}

bool
admin_http_query_page(struct admin_req *ar, long long *page_r,
    long long *size_r)
{
	return admin_http_query_ll(ar, "page", 0, 1000000, 0, page_r) &&
	    admin_http_query_ll(ar, "pageSize", 1, ADMIN_PAGE_SIZE_MAX,
	    ADMIN_PAGE_SIZE_DEFAULT, size_r);
}

void
admin_http_add_page(cJSON *o, long long total, long long page,
    long long size)
{
	cJSON_AddNumberToObject(o, "total", (double)total);
	cJSON_AddNumberToObject(o, "page", (double)page);
	cJSON_AddNumberToObject(o, "pages",
	    (double)((total + size - 1) / size));
}

void
admin_http_log_last(struct admin_req *ar, const char *seg)
{
	free(ar->log_last);
	ar->log_last = xstrdup(seg);
}

bool
admin_http_found(struct admin_req *ar, int rc, size_t n, const char *errstr,
    const char *notfound)
{
	if (rc < 0) {
		admin_http_unavailable(ar, errstr);
		return false;
	}
	if (rc == 0 || n != 1) {
		admin_http_error(ar, 404, NULL, NULL, "%s", notfound);
		return false;
	}
	return true;
}

bool
admin_http_deleted(struct admin_req *ar, int rc, cJSON *o, const char *errstr,
    const char *notfound)
{
	cJSON_AddBoolToObject(o, "deleted", rc > 0);
	if (rc < 0) {
		admin_http_unavailable_extra(ar, errstr, o);
		return false;
	}
	if (rc == 0) {
		admin_http_error(ar, 404, NULL, o, "%s", notfound);
		return false;
	}
	return true;
}

void
admin_http_invalid(struct admin_req *ar, const struct account_json_err *e)
{
	admin_http_error(ar, e->status, e->field, NULL, "%s", e->message);
}

/* ---- dispatch ---- */

static void
admin_req_route(struct admin_req *ar)
{
	const struct admin_route	*r;
	bool				 known;

	r = admin_http_route(admin_routes, ar->method, ar->segs, ar->nsegs,
	    ar->params, &known);
	if (r == NULL) {
		if (known)
			admin_http_error(ar, 405, NULL, NULL, "method %s not "
			    "allowed here", admin_http_method_name(ar->method));
		else
			admin_http_error(ar, 404, NULL, NULL, "not found");
		return;
	}
	r->handler(ar);
}

static bool
peer_allowed(const struct tok_token *t, const char *peer)
{
	if (t->naddrs == 0)
		return true;
	for (int i = 0; i < t->naddrs; i++)
		if (peer != NULL && cidr_match_str(&t->addrs[i], peer))
			return true;
	return false;
}

static void
admin_bearer_cb(void *arg, int rc, const struct tok_token *t)
{
	struct admin_req	*ar = arg;
	char			*peer = NULL;
	ev_uint16_t		 port;

	ar->treq = NULL;
	if (rc == -1) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	evhttp_connection_get_peer(ar->evcon, &peer, &port);
	if (rc == 0 || (t->scopes & (TOK_SCOPE_API | TOK_SCOPE_ALL)) == 0 ||
	    (t->expires_ms > 0 && t->expires_ms <= str_now_ms()) ||
	    !peer_allowed(t, peer)) {
		log_info("event=admin_auth result=fail reason=%s",
		    rc == 0 ? "unknown_token" : "token_not_allowed");
		admin_http_error(ar, 401, NULL, NULL, "a valid API token is "
		    "required");
		return;
	}
	tok_token_touch(ar->tok, t->id, peer);
	admin_req_route(ar);
}

/* TCP: Authorization: Bearer <token> with scope api or *. */
static void
admin_bearer_check(struct admin_req *ar)
{
	struct evkeyvalq	*h = evhttp_request_get_input_headers(ar->req);
	const char		*v = evhttp_find_header(h, "Authorization");
	char			 id[TOKEN_HEX_LEN + 1];

	if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0) {
		admin_http_error(ar, 401, NULL, NULL, "a valid API token is "
		    "required");
		return;
	}
	v += 7;
	while (*v == ' ')
		v++;
	if (token_id(v, id) == -1) {
		admin_http_error(ar, 401, NULL, NULL, "a valid API token is "
		    "required");
		return;
	}
	ar->treq = tok_token_get(ar->tok, id, admin_bearer_cb, ar);
}

void
admin_req_dispatch(struct admin_req *ar)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(ar->req);
	const char		*path, *query;

	path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	if (path == NULL || *path == '\0')
		path = "/";
	if ((ar->nsegs = admin_http_split(path, ar->segs,
	    ADMIN_SEGS_MAX)) == -1) {
		ar->nsegs = 0;
		admin_http_error(ar, 400, NULL, NULL, "bad request path");
		return;
	}
	query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	if (query != NULL) {
		ar->query_parsed = true;
		if (evhttp_parse_query_str(query, &ar->query) == -1) {
			admin_http_error(ar, 400, NULL, NULL, "bad query "
			    "string");
			return;
		}
	}
	if (ar->tcp)
		admin_bearer_check(ar);
	else
		admin_req_route(ar);
}
