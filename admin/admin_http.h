/*
 * Internals shared by the admin API files: the per-request context, the
 * router (pure path matching, usable from tests) and JSON replies in the
 * error shape of docs/API.md. Not for use outside admin/.
 */
#ifndef ADMIN_ADMIN_HTTP_H
#define ADMIN_ADMIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <cJSON.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define ADMIN_SEGS_MAX		8	/* path segments we route on */
#define ADMIN_PARAMS_MAX	2	/* {account}, {id} */
#define ADMIN_PAGE_SIZE_DEFAULT	20
#define ADMIN_PAGE_SIZE_MAX	1000

struct admin;
struct admin_req;
struct disc_env;
struct tok;
struct tok_req;
struct tok_op;
struct cfg;
struct account_json_err;

typedef void admin_handler(struct admin_req *);

TAILQ_HEAD(admin_reqs, admin_req);

struct admin_listener {
	struct admin		*admin;
	bool			 tcp;		/* bearer token required */
};

struct admin {
	struct event_base	*base;
	const struct cfg	*cfg;
	struct tok		*tok;
	struct evhttp		*http_unix;
	struct evhttp		*http_tcp;
	struct admin_listener	 l_unix;
	struct admin_listener	 l_tcp;
	char			*sock_path;	/* unlinked by admin_free */
	dev_t			 sock_dev;
	ino_t			 sock_ino;
	struct admin_reqs	 reqs;		/* in progress */
	struct disc_env		*disc;		/* autoconfig/verify, made on
						   first use (admin_disc_env) */
};

/*
 * One request being served. It owns the tokenstore request in flight; if
 * the client goes away first, the connection's close callback cancels
 * that request and frees this, and the evhttp request is never touched
 * again. Handlers end by calling one of the admin_http_reply* functions,
 * which free it.
 */
struct admin_req {
	TAILQ_ENTRY(admin_req)	 entry;
	struct admin		*admin;
	struct tok		*tok;
	const struct cfg	*cfg;
	struct evhttp_request	*req;
	struct evhttp_connection *evcon;
	struct tok_req		*treq;		/* at most one of these */
	struct tok_op		*op;		/* is in flight */
	enum evhttp_cmd_type	 method;
	char			*segs[ADMIN_SEGS_MAX];	/* URL-decoded */
	int			 nsegs;
	const char		*params[ADMIN_PARAMS_MAX];
	struct evkeyvalq	 query;
	bool			 query_parsed;
	admin_handler		*handler;
	char			*log_last;	/* last path segment for logs */
	long long		 t0;		/* monotonic ms */
	bool			 tcp;
	int			 retries;	/* PUT compare-and-set */
	void			*hctx;		/* handler state, freed with */
	void			(*hctx_free)(void *);
};

/* Route table entry: pattern like "/v1/tokens/{id}". */
struct admin_route {
	enum evhttp_cmd_type	 method;
	const char		*pattern;
	admin_handler		*handler;
};

/* Pure helpers (tests/unit/t_admin_http.c). */

/* Percent-decodes one path segment (no '+' to space). Returns a malloc'd
 * string, or NULL for a bad escape, a NUL byte or a control character. */
char	*admin_http_urldecode(const char *s, size_t len);
/* Splits a raw URI path ("/v1/tokens/abc%2Bd") into decoded segments,
 * skipping empty ones. Returns the count, or -1 (bad encoding, too many
 * segments, not starting with '/'); segs are malloc'd. */
int	 admin_http_split(const char *path, char **segs, int max);
/* Matches decoded segments against a pattern; params get pointers into
 * segs for each {name}. */
bool	 admin_http_match(const char *pattern, char *const *segs, int nsegs,
	    const char **params);
/* Finds the route for method and segments. Returns it, or NULL with
 * *path_known true when another method would match (405). */
const struct admin_route *admin_http_route(const struct admin_route *table,
	    enum evhttp_cmd_type method, char *const *segs, int nsegs,
	    const char **params, bool *path_known);
/* The method's name ("GET"). */
const char *admin_http_method_name(enum evhttp_cmd_type);
/* Path for the log line: segments joined, each sanitized; a segment with a
 * run of 64 or more hex digits (maybe a token, maybe mistyped) is
 * "<redacted>"; last, if not NULL, replaces the last segment. */
void	 admin_http_log_path(char *const *segs, int nsegs, const char *last,
	    char *out, size_t outlen);

/* The route table (admin_http.c). */
extern const struct admin_route admin_routes[];

/* Request context. */
struct admin_req *admin_req_new(struct admin *, struct evhttp_request *,
	    bool tcp);
void	 admin_req_dispatch(struct admin_req *);
/* Frees every request still in progress (admin_free). */
void	 admin_req_free_all(struct admin *);

/* Replies. Each sends, logs and frees ar; body is consumed. */
void	 admin_http_reply(struct admin_req *, int status, cJSON *body);
/* Error shape: {"statusCode", "error", "message"[, "field"]} plus the
 * members of extra (consumed; may be NULL). field may be NULL or "". */
void	 admin_http_error(struct admin_req *, int status, const char *field,
	    cJSON *extra, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));
/* 503 {"message": "Redis unavailable: <reason>"}. */
void	 admin_http_unavailable(struct admin_req *, const char *reason);
void	 admin_http_unavailable_extra(struct admin_req *, const char *reason,
	    cJSON *extra);

/* The request body as JSON (object or array). On failure, replies 400
 * and returns NULL: the caller must return at once. The result belongs
 * to the caller. */
cJSON	*admin_http_body(struct admin_req *);
/* The same, but anything other than a JSON object is a 400 too. */
cJSON	*admin_http_body_object(struct admin_req *);
/* A query parameter, or NULL. */
const char *admin_http_query(struct admin_req *, const char *name);
/* Integer query parameter in [min, max] (def if absent). On failure,
 * replies 400 and returns false: the caller must return at once. */
bool	 admin_http_query_ll(struct admin_req *, const char *name,
	    long long min, long long max, long long def, long long *r);
/* ?page (from 0) and ?pageSize (1-ADMIN_PAGE_SIZE_MAX, default
 * ADMIN_PAGE_SIZE_DEFAULT). On failure, replies 400 and returns false:
 * the caller must return at once. */
bool	 admin_http_query_page(struct admin_req *, long long *page_r,
	    long long *size_r);
/* Adds "total", "page" and "pages" to a list reply. */
void	 admin_http_add_page(cJSON *o, long long total, long long page,
	    long long size);
/* Sets the last path segment shown in the log line (a token's id). */
void	 admin_http_log_last(struct admin_req *, const char *seg);

/*
 * The outcome of a lookup that should find one record. rc < 0: replies
 * 503 with reason errstr; rc 0 or n != 1: replies 404 with notfound.
 * Returns true only when there is one record, and the caller replies.
 */
bool	 admin_http_found(struct admin_req *, int rc, size_t n,
	    const char *errstr, const char *notfound);
/*
 * The outcome of a delete: adds "deleted" to o. rc < 0 (reason errstr)
 * or 0 (not found: notfound): replies 503 or 404 with o's members added
 * and returns false. Otherwise returns true: the caller replies with o.
 */
bool	 admin_http_deleted(struct admin_req *, int rc, cJSON *o,
	    const char *errstr, const char *notfound);
/* Replies e->status with e's field and message (a body that failed
 * validation). */
void	 admin_http_invalid(struct admin_req *,
	    const struct account_json_err *e);

/* Monotonic ms. */
long long admin_http_now_ms(void);

/* Handlers. */
void	 admin_health_get(struct admin_req *);
void	 admin_tokens_create(struct admin_req *);
void	 admin_tokens_list(struct admin_req *);
void	 admin_tokens_list_account(struct admin_req *);
void	 admin_tokens_get(struct admin_req *);
void	 admin_tokens_delete(struct admin_req *);
void	 admin_tokens_delete_account(struct admin_req *);
void	 admin_accounts_create(struct admin_req *);
void	 admin_accounts_update(struct admin_req *);
void	 admin_accounts_get(struct admin_req *);
void	 admin_accounts_list(struct admin_req *);
void	 admin_accounts_delete(struct admin_req *);
void	 admin_settings_get(struct admin_req *);
void	 admin_settings_set(struct admin_req *);
void	 admin_autoconfig_get(struct admin_req *);
void	 admin_verify_post(struct admin_req *);
/* The admin's discover environment, created on first use; NULL with a
 * reason in err if it cannot be set up (admin_autoconfig.c). */
struct disc_env *admin_disc_env(struct admin_req *, char *err,
	    size_t errlen);
/* POST /v1/account with "verify": true (admin_verify.c): verifies the
 * normalised record rec (consumed). All checks pass: calls save(ar, rec)
 * with ar->hctx free for its use. Else replies 400 with the error shape
 * plus the result's "imap"/"smtp" members. */
typedef void admin_verified_fn(struct admin_req *, cJSON *rec);
void	 admin_verify_then(struct admin_req *, cJSON *rec,
	    admin_verified_fn *save);
void	 admin_oauth2_create(struct admin_req *);
void	 admin_oauth2_list(struct admin_req *);
void	 admin_oauth2_get(struct admin_req *);
void	 admin_oauth2_update(struct admin_req *);
void	 admin_oauth2_delete(struct admin_req *);
/* OAuth2 application body validation (admin_oauth2.c; unit tested):
 * POST (stored NULL, id NULL: the body's "id") or PUT (stored record, id
 * from the path). Returns the record to store or NULL with e filled in. */
cJSON	*admin_oauth2_app_json(const cJSON *body, const cJSON *stored,
	    const char *id, struct account_json_err *e);

#endif
