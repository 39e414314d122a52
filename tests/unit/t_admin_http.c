/*
 * admin/admin_http.c pure helpers: URL decoding of path segments, path
 * splitting, pattern matching, routing with 404/405, and the log path
 * that never shows a token.
 */
#include <stdlib.h>
#include <string.h>

#include "admin/admin_http.h"
#include "tests/unit/test.h"

TEST(admin_http_urldecode)
{
	static const struct {
		const char *in, *out;	/* out NULL: refused */
	} c[] = {
		{ "abc", "abc" },
		{ "a%2Bb", "a+b" },
		{ "a+b", "a+b" },		/* no '+' to space in paths */
		{ "%2f%2F", "//" },
		{ "%41%62", "Ab" },
		{ "%e2%82%ac", "\xe2\x82\xac" },
		{ "", "" },
		{ "%", NULL },
		{ "%4", NULL },
		{ "%zz", NULL },
		{ "a%00b", NULL },
		{ "a%0ab", NULL },
		{ "a%7f", NULL },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char *s = admin_http_urldecode(c[i].in, strlen(c[i].in));

		if (c[i].out == NULL)
			CHECK(s == NULL);
		else
			CHECK_STR(s, c[i].out);
		free(s);
	}
}

static int
split(const char *path, char **segs)
{
	return admin_http_split(path, segs, ADMIN_SEGS_MAX);
}

static void
segs_free(char **segs, int n)
{
	for (int i = 0; i < n; i++)
		free(segs[i]);
}

TEST(admin_http_split)
{
	char	*segs[ADMIN_SEGS_MAX];
	int	 n;

	n = split("/v1/tokens/account/a%2Bb", segs);
	CHECK_INT(n, ==, 4);
	if (n == 4) {
		CHECK_STR(segs[0], "v1");
		CHECK_STR(segs[3], "a+b");
	}
	segs_free(segs, n);
	n = split("//v1///accounts/", segs);
	CHECK_INT(n, ==, 2);
	segs_free(segs, n);
	CHECK_INT(split("/", segs), ==, 0);
	CHECK_INT(split("v1/x", segs), ==, -1);
	CHECK_INT(split("/v1/%zz", segs), ==, -1);
	CHECK_INT(split("/1/2/3/4/5/6/7/8/9", segs), ==, -1);
	/* An encoded slash stays inside its segment. */
	n = split("/v1/account/a%2Fb", segs);
	CHECK_INT(n, ==, 3);
	if (n == 3)
		CHECK_STR(segs[2], "a/b");
	segs_free(segs, n);
}

static void	h_a(struct admin_req *ar) { (void)ar; }
static void	h_b(struct admin_req *ar) { (void)ar; }
static void	h_c(struct admin_req *ar) { (void)ar; }

static const struct admin_route table[] = {
	{ EVHTTP_REQ_GET,	"/v1/tokens/account/{account}",	h_a },
	{ EVHTTP_REQ_GET,	"/v1/tokens/{id}",		h_b },
	{ EVHTTP_REQ_DELETE,	"/v1/tokens/{id}",		h_c },
	{ 0, NULL, NULL },
};

TEST(admin_http_route)
{
	const struct admin_route	*r;
	const char			*params[ADMIN_PARAMS_MAX];
	char				*segs[ADMIN_SEGS_MAX];
	bool				 known;
	int				 n;

	n = split("/v1/tokens/account/x%40y", segs);
	r = admin_http_route(table, EVHTTP_REQ_GET, segs, n, params, &known);
	CHECK(r != NULL && r->handler == h_a);
	if (r != NULL)
		CHECK_STR(params[0], "x@y");
	r = admin_http_route(table, EVHTTP_REQ_DELETE, segs, n, params,
	    &known);
	CHECK(r == NULL);
	CHECK(known);			/* 405 */
	segs_free(segs, n);

	n = split("/v1/tokens/abc", segs);
	r = admin_http_route(table, EVHTTP_REQ_DELETE, segs, n, params,
	    &known);
	CHECK(r != NULL && r->handler == h_c);
	if (r != NULL)
		CHECK_STR(params[0], "abc");
	r = admin_http_route(table, EVHTTP_REQ_POST, segs, n, params, &known);
	CHECK(r == NULL && known);
	segs_free(segs, n);

	n = split("/v1/tokens", segs);
	r = admin_http_route(table, EVHTTP_REQ_GET, segs, n, params, &known);
	CHECK(r == NULL && !known);	/* 404 */
	segs_free(segs, n);
	n = split("/v1/tokens/a/b/c", segs);
	r = admin_http_route(table, EVHTTP_REQ_GET, segs, n, params, &known);
	CHECK(r == NULL && !known);
	segs_free(segs, n);

	/* The real table: aliases and the account sub-paths. */
	n = split("/v1/token/abc", segs);
	r = admin_http_route(admin_routes, EVHTTP_REQ_DELETE, segs, n,
	    params, &known);
	CHECK(r != NULL && r->handler == admin_tokens_delete);
	segs_free(segs, n);
	n = split("/v1/tokens/account/a", segs);
	r = admin_http_route(admin_routes, EVHTTP_REQ_DELETE, segs, n,
	    params, &known);
	CHECK(r != NULL && r->handler == admin_tokens_delete_account);
	segs_free(segs, n);
	n = split("/v1/account", segs);
	r = admin_http_route(admin_routes, EVHTTP_REQ_POST, segs, n, params,
	    &known);
	CHECK(r != NULL && r->handler == admin_accounts_create);
	r = admin_http_route(admin_routes, EVHTTP_REQ_GET, segs, n, params,
	    &known);
	CHECK(r == NULL && known);
	segs_free(segs, n);
}

TEST(admin_http_log_path)
{
	char	*segs[ADMIN_SEGS_MAX], out[256];
	char	 tok[65];
	int	 n;

	memset(tok, 'a', 64);
	tok[64] = '\0';
	n = split("/v1/tokens/x", segs);
	admin_http_log_path(segs, n, NULL, out, sizeof(out));
	CHECK_STR(out, "/v1/tokens/x");
	segs_free(segs, n);

	segs[0] = strdup("v1");
	segs[1] = strdup("token");
	segs[2] = strdup(tok);
	admin_http_log_path(segs, 3, NULL, out, sizeof(out));
	CHECK_STR(out, "/v1/token/<redacted>");
	CHECK(strstr(out, tok) == NULL);
	admin_http_log_path(segs, 3, "ID", out, sizeof(out));
	CHECK_STR(out, "/v1/token/ID");
	segs_free(segs, 3);

	n = split("/", segs);
	admin_http_log_path(segs, n, NULL, out, sizeof(out));
	CHECK_STR(out, "/");
	n = split("/a%22b", segs);
	admin_http_log_path(segs, n, NULL, out, sizeof(out));
	CHECK_STR(out, "/a\\\"b");
	segs_free(segs, n);
}

/* Any run of 64 or more hex digits is masked, not only a whole segment of
 * exactly 64: "/v1/token/<token>x" must not log the token. */
TEST(admin_http_log_path_hex_runs)
{
	static const struct {
		const char	*pre, *post;	/* around the run */
		size_t		 len;		/* hex digits */
		const char	*want;
	} cases[] = {
		{ "", "x", 64, "<redacted>x" },
		{ "x", "", 64, "x<redacted>" },
		{ "", "", 65, "<redacted>" },
		{ "", "", 200, "<redacted>" },
		{ "ab-", ".json", 64, "ab-<redacted>.json" },
		{ "", "", 63, NULL },		/* too short: kept */
		/* The run starts near the cut: still masked whole. */
		{ "0123456789-0123456789-0123456789-0123456789-0123456789-"
		  "0123456789-zzzz", "", 64,
		  "0123456789-0123456789-0123456789-0123456789-0123456789-"
		  "0123456789-zzzz<redacted>" },
		{ "0123456789-0123456789-0123456789-0123456789-0123456789-"
		  "0123456789-0123456789-", "", 64,
		  "0123456789-0123456789-0123456789-0123456789-0123456789-"
		  "0123456789-0123456789-<re" },
	};
	char	*segs[3], out[160], want[160], hex[256];
	size_t	 run, longest;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t j = 0; j < cases[i].len; j++)
			hex[j] = "0123456789abcdefABCDEF"[(j * 7) % 22];
		hex[cases[i].len] = '\0';
		segs[0] = strdup("v1");
		segs[1] = strdup("token");
		segs[2] = malloc(strlen(cases[i].pre) + strlen(hex) +
		    strlen(cases[i].post) + 1);
		sprintf(segs[2], "%s%s%s", cases[i].pre, hex, cases[i].post);
		admin_http_log_path(segs, 3, NULL, out, sizeof(out));
		snprintf(want, sizeof(want), "/v1/token/%s", cases[i].want ?
		    cases[i].want : segs[2]);
		CHECK_STR(out, want);
		/* What is logged of a masked run: nothing. */
		longest = 0;
		for (const char *p = out; *p != '\0'; p += run ? run : 1)
			if ((run = strspn(p, "0123456789abcdefABCDEF")) >
			    longest)
				longest = run;
		CHECK_INT(longest, <, cases[i].want != NULL ? 11 : 64);
		for (int k = 0; k < 3; k++)
			free(segs[k]);
	}
}
