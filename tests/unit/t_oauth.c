/*
 * OAuth2 without the network: token endpoint answers (RFC 6749 5.1/5.2)
 * and how each is classified, backoff, token URLs of the presets, the
 * refresh form, cache versions, upstream targets from presets and account
 * settings, the OAuth2 application validator of the admin API, PUT of an
 * account keeping its refresh token, and the [oauth2] config keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "admin/account_json.h"
#include "admin/admin_http.h"
#include "auth/auth_oauth.h"
#include "common/cfg.h"
#include "common/crypto.h"
#include "tests/unit/test.h"

#define KEY	"unit-test secret for t_oauth.c"

static void
key_load(void)
{
	char err[128];

	crypto_reset();
	CHECK_INT(crypto_add_secret((const uint8_t *)KEY, strlen(KEY), err,
	    sizeof(err)), ==, 0);
}

static void
parse(bool ok, long status, const char *body, struct auth_oauth_resp *r)
{
	auth_oauth_parse_response(ok, status, body, body != NULL ?
	    strlen(body) : 0, r);
}

TEST(oauth_response_ok)
{
	struct auth_oauth_resp r;

	parse(true, 200, "{\"access_token\":\"ya29.a0\",\"expires_in\":3599,"
	    "\"token_type\":\"Bearer\",\"scope\":\"https://mail.google.com/\"}",
	    &r);
	CHECK_INT(r.fail, ==, AUTH_OAUTH_OK);
	CHECK_STR(r.access, "ya29.a0");
	CHECK(r.refresh == NULL);
	CHECK_INT(r.expires_in_ms, ==, 3599000);
	auth_oauth_resp_clear(&r);
	CHECK(r.access == NULL);

	/* Rotation, expires_in as a string, and none at all. */
	parse(true, 200, "{\"access_token\":\"a\",\"refresh_token\":\"r2\","
	    "\"expires_in\":\"60\"}", &r);
	CHECK_INT(r.fail, ==, AUTH_OAUTH_OK);
	CHECK_STR(r.refresh, "r2");
	CHECK_INT(r.expires_in_ms, ==, 60000);
	auth_oauth_resp_clear(&r);
	parse(true, 200, "{\"access_token\":\"a\"}", &r);
	CHECK_INT(r.expires_in_ms, ==, 3600000);
	auth_oauth_resp_clear(&r);
	parse(true, 200, "{\"access_token\":\"a\",\"expires_in\":0}", &r);
	CHECK_INT(r.expires_in_ms, ==, 1000);
	auth_oauth_resp_clear(&r);
}

TEST(oauth_response_failures)
{
	static const struct {
		bool		 ok;
		long		 status;
		const char	*body;
		int		 fail;
		const char	*in_error;
	} cases[] = {
		{ true, 400, "{\"error\":\"invalid_grant\",\"error_description\":"
		  "\"Token has been expired or revoked.\"}", AUTH_OAUTH_REVOKED,
		  "invalid_grant: Token has been expired" },
		{ true, 401, "{\"error\":\"invalid_grant\"}", AUTH_OAUTH_REVOKED,
		  "HTTP 401 invalid_grant" },
		/* Only a 4xx invalid_grant is a verdict on the token. */
		{ true, 500, "{\"error\":\"invalid_grant\"}", AUTH_OAUTH_TEMP,
		  "HTTP 500" },
		{ true, 401, "{\"error\":\"invalid_client\"}", AUTH_OAUTH_TEMP,
		  "invalid_client" },
		{ true, 503, "<html>down</html>", AUTH_OAUTH_TEMP, "HTTP 503" },
		{ true, 429, "", AUTH_OAUTH_TEMP, "HTTP 429" },
		{ true, 200, "not json", AUTH_OAUTH_TEMP, "access_token" },
		{ true, 200, "{\"token\":\"x\"}", AUTH_OAUTH_TEMP, "access_token" },
		{ true, 200, "{\"access_token\":\"a b\"}", AUTH_OAUTH_TEMP,
		  "access_token" },
		{ true, 200, "{\"access_token\":\"\"}", AUTH_OAUTH_TEMP,
		  "access_token" },
		{ true, 200, "{\"access_token\":\"a\",\"refresh_token\":5}",
		  AUTH_OAUTH_OK, NULL },
		{ true, 200, "[\"access_token\"]", AUTH_OAUTH_TEMP,
		  "access_token" },
		{ false, 0, NULL, AUTH_OAUTH_TEMP, "no answer" },
	};
	struct auth_oauth_resp r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		parse(cases[i].ok, cases[i].status, cases[i].body, &r);
		CHECK_INT(r.fail, ==, cases[i].fail);
		if (cases[i].in_error != NULL && strstr(r.error,
		    cases[i].in_error) == NULL) {
			fprintf(stderr, "  case %zu: error \"%s\"\n", i,
			    r.error);
			CHECK(0);
		}
		if (cases[i].fail != AUTH_OAUTH_OK)
			CHECK(r.access == NULL);
		auth_oauth_resp_clear(&r);
	}
	/* Control characters in the provider's text do not reach logs. */
	parse(true, 400, "{\"error\":\"invalid_grant\",\"error_description\":"
	    "\"line\\r\\nlevel=error fake=1\"}", &r);
	CHECK(strchr(r.error, '\n') == NULL && strchr(r.error, '\r') == NULL);
	auth_oauth_resp_clear(&r);
}

TEST(oauth_backoff)
{
	CHECK_INT(auth_oauth_backoff_ms(0, 5000, 300000), ==, 5000);
	CHECK_INT(auth_oauth_backoff_ms(1, 5000, 300000), ==, 10000);
	CHECK_INT(auth_oauth_backoff_ms(3, 5000, 300000), ==, 40000);
	CHECK_INT(auth_oauth_backoff_ms(6, 5000, 300000), ==, 300000);
	CHECK_INT(auth_oauth_backoff_ms(1000000, 5000, 300000), ==, 300000);
	CHECK_INT(auth_oauth_backoff_ms(2, 2000, 2000), ==, 2000);
}

static struct cfg *
cfg_with(const char *text, char *err, size_t errlen)
{
	char	 path[] = "/tmp/t_oauth.XXXXXX";
	int	 fd = mkstemp(path);
	struct cfg *cfg;

	if (fd < 0)
		return NULL;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		unlink(path);
		return NULL;
	}
	close(fd);
	cfg = cfg_load(path, err, errlen);
	unlink(path);
	return cfg;
}

TEST(oauth_cfg_keys)
{
	struct cfg	*cfg;
	char		 err[512];

	cfg = cfg_with("", err, sizeof(err));
	CHECK(cfg != NULL);
	if (cfg == NULL)
		return;
	CHECK_INT(cfg->oauth_refresh_margin_ms, ==, 300000);
	CHECK_INT(cfg->oauth_token_timeout_ms, ==, 15000);
	CHECK_INT(cfg->oauth_backoff_min_ms, ==, 5000);
	CHECK_INT(cfg->oauth_backoff_max_ms, ==, 300000);
	CHECK_STR(cfg->oauth_gmail_token_url,
	    "https://oauth2.googleapis.com/token");
	CHECK_STR(cfg->oauth_outlook_token_url,
	    "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token");
	cfg_free(&cfg);

	cfg = cfg_with("[oauth2]\nrefresh_margin = 0\ntoken_timeout = 500ms\n"
	    "gmail_token_url = http://127.0.0.1:9/token\n", err, sizeof(err));
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK_INT(cfg->oauth_refresh_margin_ms, ==, 0);
		CHECK_INT(cfg->oauth_token_timeout_ms, ==, 500);
		CHECK_STR(cfg->oauth_gmail_token_url,
		    "http://127.0.0.1:9/token");
	}
	cfg_free(&cfg);

	cfg = cfg_with("[oauth2]\nbackoff_min = 10m\nbackoff_max = 1m\n", err,
	    sizeof(err));
	CHECK(cfg == NULL);
	CHECK(strstr(err, "backoff_min") != NULL);
	cfg = cfg_with("[oauth2]\ntoken_timeout = 1h\n", err, sizeof(err));
	CHECK(cfg == NULL);
	cfg = cfg_with("[oauth2]\ngmail_token_url = has space\n", err,
	    sizeof(err));
	CHECK(cfg == NULL);
}

TEST(oauth_token_url)
{
	struct cfg	*cfg;
	char		 err[512], *u;
	cJSON		*app;

	cfg = cfg_with("", err, sizeof(err));
	CHECK(cfg != NULL);
	if (cfg == NULL)
		return;
	app = cJSON_Parse("{\"provider\":\"gmail\"}");
	u = auth_oauth_token_url(app, cfg);
	CHECK_STR(u, "https://oauth2.googleapis.com/token");
	free(u);
	cJSON_Delete(app);
	app = cJSON_Parse("{\"provider\":\"outlook\"}");
	u = auth_oauth_token_url(app, cfg);
	CHECK_STR(u, "https://login.microsoftonline.com/common/oauth2/v2.0/"
	    "token");
	free(u);
	cJSON_Delete(app);
	app = cJSON_Parse("{\"provider\":\"outlook\",\"tenant\":\"contoso.example\"}");
	u = auth_oauth_token_url(app, cfg);
	CHECK_STR(u, "https://login.microsoftonline.com/contoso.example/oauth2/"
	    "v2.0/token");
	free(u);
	cJSON_Delete(app);
	app = cJSON_Parse("{\"provider\":\"custom\",\"tokenUrl\":"
	    "\"https://idp.example/t\"}");
	u = auth_oauth_token_url(app, cfg);
	CHECK_STR(u, "https://idp.example/t");
	free(u);
	cJSON_Delete(app);
	app = cJSON_Parse("{\"provider\":\"custom\"}");
	CHECK(auth_oauth_token_url(app, cfg) == NULL);
	cJSON_Delete(app);
	app = cJSON_Parse("{\"provider\":\"yahoo\"}");
	CHECK(auth_oauth_token_url(app, cfg) == NULL);
	cJSON_Delete(app);
	cfg_free(&cfg);
}

TEST(oauth_form)
{
	char *f;

	f = auth_oauth_form("1//0g+a/b=c&d", "id.apps", "s3cr&t=", NULL);
	CHECK_STR(f, "grant_type=refresh_token&refresh_token=1%2F%2F0g%2Ba%2Fb"
	    "%3Dc%26d&client_id=id.apps&client_secret=s3cr%26t%3D");
	crypto_free_secret(&f);
	f = auth_oauth_form("rt", "cid", NULL, "a b~c");
	CHECK_STR(f, "grant_type=refresh_token&refresh_token=rt&client_id=cid&"
	    "scope=a%20b~c");
	crypto_free_secret(&f);
	f = auth_oauth_form("rt", "cid", "", "");
	CHECK_STR(f, "grant_type=refresh_token&refresh_token=rt&client_id=cid");
	crypto_free_secret(&f);
}

TEST(oauth_ver)
{
	cJSON	*a = cJSON_Parse("{\"provider\":\"p\",\"refreshToken\":\"x\"}");
	cJSON	*b = cJSON_Parse("{\"provider\":\"p\",\"refreshToken\":\"y\"}");
	char	 va[17], vb[17], va2[17];

	auth_oauth_ver(a, va);
	auth_oauth_ver(a, va2);
	auth_oauth_ver(b, vb);
	CHECK_INT(strlen(va), ==, 16);
	CHECK_STR(va, va2);
	CHECK(strcmp(va, vb) != 0);
	auth_oauth_ver(NULL, va);
	CHECK_INT(strlen(va), ==, 16);
	cJSON_Delete(a);
	cJSON_Delete(b);
}

TEST(oauth_presets_and_targets)
{
	struct auth_oauth_token	 tk = { "access-tok", "u@gmail.com", "gmail",
				    "XOAUTH2", 0 };
	const struct auth_oauth_preset *p;
	struct up_target	*t;
	struct cfg		*cfg;
	const char		*why = NULL;
	char			 err[512];
	cJSON			*acct;

	p = auth_oauth_preset("outlook");
	CHECK(p != NULL && strcmp(p->smtp_host, "smtp.office365.com") == 0 &&
	    p->smtp_port == 587 && p->smtp_tls == UP_TLS_STARTTLS);
	CHECK(auth_oauth_preset("yahoo") == NULL);
	cfg = cfg_with("", err, sizeof(err));
	CHECK(cfg != NULL);
	if (cfg == NULL)
		return;
	/* No imap/smtp object: the preset. */
	acct = cJSON_Parse("{\"account\":\"a\",\"oauth2\":{\"provider\":"
	    "\"app\",\"auth\":{\"user\":\"u@gmail.com\"}}}");
	CHECK(auth_oauth_is_account(acct));
	t = auth_oauth_target(acct, "imap", &tk, false, cfg, &why);
	CHECK(t != NULL);
	if (t != NULL) {
		CHECK_STR(t->host, "imap.gmail.com");
		CHECK_INT(t->port, ==, 993);
		CHECK_INT(t->tls, ==, UP_TLS_IMPLICIT);
		CHECK(t->verify);
		CHECK_INT(t->cred, ==, UP_CRED_OAUTH2);
		CHECK_STR(t->user, "u@gmail.com");
		CHECK_STR(t->secret, "access-tok");
		CHECK_STR(t->oauth_mech, "XOAUTH2");
		CHECK(t->renew == NULL);	/* no token manager here */
	}
	up_target_free(&t);
	t = auth_oauth_target(acct, "smtp", &tk, true, cfg, &why);
	CHECK(t != NULL && strcmp(t->host, "smtp.gmail.com") == 0 &&
	    t->port == 465 && !t->verify);
	up_target_free(&t);
	/* custom: no preset servers. */
	tk.provider = "custom";
	t = auth_oauth_target(acct, "imap", &tk, false, cfg, &why);
	CHECK(t == NULL);
	CHECK(why != NULL && strstr(why, "no settings") != NULL);
	cJSON_Delete(acct);
	/* The account's own object wins over the preset. */
	tk.provider = "gmail";
	acct = cJSON_Parse("{\"account\":\"a\",\"smtp\":{\"host\":\"127.0.0.1\","
	    "\"port\":2525,\"starttls\":\"never\",\"tls\":{\"rejectUnauthorized\":"
	    "false}},\"oauth2\":{\"provider\":\"app\",\"auth\":{\"user\":\"u\"}}}");
	t = auth_oauth_target(acct, "smtp", &tk, false, cfg, &why);
	CHECK(t != NULL && strcmp(t->host, "127.0.0.1") == 0 &&
	    t->port == 2525 && t->tls == UP_TLS_NONE && !t->verify);
	up_target_free(&t);
	cJSON_Delete(acct);
	cfg_free(&cfg);
	/* Replies: UNAVAILABLE / 454, and invalid_grant named. */
	CHECK(strncmp(auth_oauth_imap_text(AUTH_OAUTH_TEMP), "NO [UNAVAILABLE] ",
	    17) == 0);
	CHECK(strncmp(auth_oauth_smtp_text(AUTH_OAUTH_REVOKED), "454 4.7.0 ",
	    10) == 0);
	CHECK(strstr(auth_oauth_imap_text(AUTH_OAUTH_REVOKED), "invalid_grant")
	    != NULL);
}

/* admin_oauth2_app_json on a body text; stored may be NULL. */
static cJSON *
app(const char *body, const cJSON *stored, const char *id,
    struct account_json_err *e)
{
	cJSON *b = cJSON_Parse(body), *r;

	if (b == NULL) {
		fprintf(stderr, "  bad test JSON: %s\n", body);
		return NULL;
	}
	r = admin_oauth2_app_json(b, stored, id, e);
	cJSON_Delete(b);
	return r;
}

TEST(oauth_app_validation)
{
	static const struct {
		const char *body, *field;	/* field NULL: valid */
	} cases[] = {
		{ "{\"id\":\"g\",\"provider\":\"gmail\",\"clientId\":\"c\"}", NULL },
		{ "{\"id\":\"o\",\"provider\":\"outlook\",\"clientId\":\"c\","
		  "\"tenant\":\"organizations\",\"scopes\":[\"a\",\"b\"]}", NULL },
		{ "{\"id\":\"x\",\"provider\":\"custom\",\"clientId\":\"c\","
		  "\"tokenUrl\":\"https://idp.example/token\",\"mechanism\":"
		  "\"OAUTHBEARER\",\"name\":\"n\",\"clientSecret\":\"s\"}", NULL },
		{ "{\"id\":\"x\",\"provider\":\"custom\",\"clientId\":\"c\","
		  "\"tokenUrl\":\"http://localhost:8080/token\"}", NULL },
		{ "{\"id\":\"x\",\"provider\":\"custom\",\"clientId\":\"c\","
		  "\"tokenUrl\":\"http://[::1]/token\"}", NULL },
		{ "[]", "" },
		{ "{\"provider\":\"gmail\",\"clientId\":\"c\"}", "id" },
		{ "{\"id\":\"\",\"provider\":\"gmail\",\"clientId\":\"c\"}", "id" },
		{ "{\"id\":\"g\",\"clientId\":\"c\"}", "provider" },
		{ "{\"id\":\"g\",\"provider\":\"GMAIL\",\"clientId\":\"c\"}",
		  "provider" },
		{ "{\"id\":\"g\",\"provider\":\"gmail\"}", "clientId" },
		{ "{\"id\":\"g\",\"provider\":\"gmail\",\"clientId\":5}", "clientId" },
		{ "{\"id\":\"g\",\"provider\":\"gmail\",\"clientId\":\"c\","
		  "\"clientSecret\":\"\"}", "clientSecret" },
		{ "{\"id\":\"g\",\"provider\":\"gmail\",\"clientId\":\"c\","
		  "\"tokenUrl\":\"https://x/token\"}", "tokenUrl" },
		{ "{\"id\":\"g\",\"provider\":\"custom\",\"clientId\":\"c\"}",
		  "tokenUrl" },
		{ "{\"id\":\"g\",\"provider\":\"custom\",\"clientId\":\"c\","
		  "\"tokenUrl\":\"http://127.0.0.1.evil.example/t\"}", "tokenUrl" },
		{ "{\"id\":\"g\",\"provider\":\"custom\",\"clientId\":\"c\","
		  "\"tokenUrl\":\"https:///t\"}", "tokenUrl" },
		{ "{\"id\":\"g\",\"provider\":\"gmail\",\"clientId\":\"c\","
		  "\"tenant\":\"t\"}", "tenant" },
		{ "{\"id\":\"g\",\"provider\":\"outlook\",\"clientId\":\"c\","
		  "\"tenant\":\"a/b\"}", "tenant" },
		{ "{\"id\":\"g\",\"provider\":\"gmail\",\"clientId\":\"c\","
		  "\"scopes\":[]}", "scopes" },
		{ "{\"id\":\"g\",\"provider\":\"gmail\",\"clientId\":\"c\","
		  "\"scopes\":[\"a\",\"\"]}", "scopes.1" },
		{ "{\"id\":\"g\",\"provider\":\"gmail\",\"clientId\":\"c\","
		  "\"mechanism\":\"PLAIN\"}", "mechanism" },
		{ "{\"id\":\"g\",\"provider\":\"gmail\",\"clientId\":\"c\","
		  "\"x\":1}", "x" },
		{ "{\"id\":\"g\",\"provider\":\"gmail\",\"clientId\":\"c\","
		  "\"clientId\":\"d\"}", "clientId" },
	};
	struct account_json_err	 e;
	cJSON			*r;

	key_load();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = app(cases[i].body, NULL, NULL, &e);
		if (cases[i].field == NULL) {
			if (r == NULL)
				fprintf(stderr, "  case %zu: %s (%s)\n", i,
				    e.message, e.field);
			CHECK(r != NULL);
		} else {
			CHECK(r == NULL);
			CHECK_INT(e.status, ==, 400);
			CHECK_STR(e.field, cases[i].field);
		}
		cJSON_Delete(r);
	}
}

TEST(oauth_app_secret_and_put)
{
	struct account_json_err	 e;
	cJSON			*rec, *up;
	const char		*sealed;
	char			*plain = NULL, *txt;

	key_load();
	rec = app("{\"id\":\"a1\",\"provider\":\"custom\",\"clientId\":\"c\","
	    "\"clientSecret\":\"TOPsecret\",\"tokenUrl\":\"https://i.example/t\","
	    "\"mechanism\":\"xoauth2\"}", NULL, NULL, &e);
	CHECK(rec != NULL);
	if (rec == NULL)
		return;
	txt = cJSON_PrintUnformatted(rec);
	CHECK(strstr(txt, "TOPsecret") == NULL);
	cJSON_free(txt);
	sealed = cJSON_GetObjectItem(rec, "clientSecret")->valuestring;
	CHECK_INT(crypto_open(sealed, "a1\nclientSecret", &plain, NULL), ==, 0);
	CHECK_STR(plain, "TOPsecret");
	crypto_free_secret(&plain);
	CHECK_INT(crypto_open(sealed, "a2\nclientSecret", &plain, NULL), ==, -1);
	CHECK_STR(cJSON_GetObjectItem(rec, "mechanism")->valuestring, "XOAUTH2");

	/* PUT: partial; the secret kept; null removes; id fixed. */
	up = app("{\"name\":\"N\",\"mechanism\":null}", rec, "a1", &e);
	CHECK(up != NULL);
	if (up != NULL) {
		CHECK_STR(cJSON_GetObjectItem(up, "clientSecret")->valuestring,
		    sealed);
		CHECK_STR(cJSON_GetObjectItem(up, "name")->valuestring, "N");
		CHECK(cJSON_GetObjectItem(up, "mechanism") == NULL);
		CHECK_STR(cJSON_GetObjectItem(up, "id")->valuestring, "a1");
	}
	cJSON_Delete(up);
	up = app("{\"clientSecret\":null}", rec, "a1", &e);
	CHECK(up != NULL && cJSON_GetObjectItem(up, "clientSecret") == NULL);
	cJSON_Delete(up);
	up = app("{\"id\":\"a2\"}", rec, "a1", &e);
	CHECK(up == NULL);
	CHECK_STR(e.field, "id");
	up = app("{\"provider\":\"gmail\"}", rec, "a1", &e);
	CHECK(up == NULL);
	CHECK_STR(e.field, "tokenUrl");
	up = app("{\"clientId\":null}", rec, "a1", &e);
	CHECK(up == NULL);
	CHECK_STR(e.field, "clientId");
	cJSON_Delete(rec);

	/* No key: refused, never stored in clear. */
	crypto_reset();
	rec = app("{\"id\":\"a1\",\"provider\":\"gmail\",\"clientId\":\"c\","
	    "\"clientSecret\":\"s\"}", NULL, NULL, &e);
	CHECK(rec == NULL);
	CHECK_INT(e.status, ==, 500);
}

TEST(oauth_account_put_keeps_refresh_token)
{
	struct account_json_err	 e;
	cJSON			*body, *rec, *up, *o;
	const char		*rt;

	key_load();
	body = cJSON_Parse("{\"account\":\"k\",\"oauth2\":{\"provider\":\"p\","
	    "\"auth\":{\"user\":\"u\"},\"refreshToken\":\"RT\"}}");
	rec = account_json_create(body, &e);
	cJSON_Delete(body);
	CHECK(rec != NULL);
	if (rec == NULL)
		return;
	rt = cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "oauth2"),
	    "refreshToken")->valuestring;
	/* An app pushing a new access token keeps the refresh token... */
	body = cJSON_Parse("{\"oauth2\":{\"provider\":\"p\",\"auth\":{\"user\":"
	    "\"u\"},\"accessToken\":\"AT\",\"expires\":\"2030-01-01T00:00:00Z\"}}");
	up = account_json_update(rec, body, "k", &e);
	cJSON_Delete(body);
	CHECK(up != NULL);
	o = cJSON_GetObjectItem(up, "oauth2");
	CHECK(cJSON_GetObjectItem(o, "refreshToken") != NULL &&
	    strcmp(cJSON_GetObjectItem(o, "refreshToken")->valuestring, rt) ==
	    0);
	CHECK(cJSON_GetObjectItem(o, "accessToken") != NULL);
	cJSON_Delete(up);
	/* ...another application does not inherit it. */
	body = cJSON_Parse("{\"oauth2\":{\"provider\":\"q\",\"auth\":{\"user\":"
	    "\"u\"}}}");
	up = account_json_update(rec, body, "k", &e);
	cJSON_Delete(body);
	CHECK(up != NULL && cJSON_GetObjectItem(cJSON_GetObjectItem(up,
	    "oauth2"), "refreshToken") == NULL);
	cJSON_Delete(up);
	cJSON_Delete(rec);
}

/* admin/admin_oauth2.c, PUT of an application: a stored client secret is
 * kept only while it goes to the same token endpoint; a PUT that changes
 * provider, tokenUrl or tenant must give clientSecret again. */
TEST(admin_oauth2_put_moves_secret)
{
	static const struct {
		const char	*stored;
		const char	*body;
		const char	*field;		/* NULL: accepted */
	} cases[] = {
#define CUSTOM	"{\"id\":\"a\",\"provider\":\"custom\",\"clientId\":\"c\"," \
		"\"clientSecret\":\"S\",\"tokenUrl\":\"https://idp.example/t\"}"
#define OUTLOOK	"{\"id\":\"a\",\"provider\":\"outlook\",\"clientId\":\"c\"," \
		"\"clientSecret\":\"S\",\"tenant\":\"contoso\"}"
#define PUBLIC	"{\"id\":\"a\",\"provider\":\"custom\",\"clientId\":\"c\"," \
		"\"tokenUrl\":\"https://idp.example/t\"}"
		/* The endpoint moves: the secret must come with the PUT. */
		{ CUSTOM, "{\"tokenUrl\":\"https://evil.example/t\"}",
		  "clientSecret" },
		{ CUSTOM, "{\"tokenUrl\":\"https://idp.example/t2\","
		  "\"name\":\"n\"}", "clientSecret" },
		{ CUSTOM, "{\"provider\":\"gmail\",\"tokenUrl\":null}",
		  "clientSecret" },
		{ OUTLOOK, "{\"provider\":\"custom\",\"tenant\":null,"
		  "\"tokenUrl\":\"https://evil.example/t\"}", "clientSecret" },
		{ OUTLOOK, "{\"tenant\":\"fabrikam\"}", "clientSecret" },
		{ OUTLOOK, "{\"tenant\":null}", "clientSecret" },
		/* ... and is then accepted, or dropped on purpose. */
		{ CUSTOM, "{\"tokenUrl\":\"https://new.example/t\","
		  "\"clientSecret\":\"S2\"}", NULL },
		{ CUSTOM, "{\"tokenUrl\":\"https://new.example/t\","
		  "\"clientSecret\":null}", NULL },
		{ OUTLOOK, "{\"tenant\":\"fabrikam\",\"clientSecret\":\"S2\"}",
		  NULL },
		/* The same endpoint keeps the stored secret. */
		{ CUSTOM, "{\"tokenUrl\":\"https://idp.example/t\","
		  "\"name\":\"n\",\"scopes\":[\"x\"]}", NULL },
		{ OUTLOOK, "{\"provider\":\"outlook\",\"clientId\":\"c2\"}",
		  NULL },
		/* A validation error wins over the missing secret. */
		{ CUSTOM, "{\"tokenUrl\":\"http://evil.example/t\"}", "tokenUrl" },
		/* No secret stored: nothing to protect. */
		{ PUBLIC, "{\"tokenUrl\":\"https://other.example/t\"}", NULL },
	};
	struct account_json_err	 e;
	cJSON			*stored, *r;
	char			 err[128];
	const cJSON		*sec;

	crypto_reset();
	CHECK_INT(crypto_add_secret((const uint8_t *)KEY, strlen(KEY), err,
	    sizeof(err)), ==, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		stored = app(cases[i].stored, NULL, NULL, &e);
		CHECK(stored != NULL);
		if (stored == NULL)
			continue;
		r = app(cases[i].body, stored, "a", &e);
		if (cases[i].field == NULL) {
			if (r == NULL)
				fprintf(stderr, "  case %zu refused: %s\n", i,
				    e.message);
			CHECK(r != NULL);
		} else {
			if (r != NULL)
				fprintf(stderr, "  case %zu accepted\n", i);
			CHECK(r == NULL);
			CHECK_INT(e.status, ==, 400);
			CHECK_STR(e.field, cases[i].field);
			if (strcmp(cases[i].field, "clientSecret") == 0)
				CHECK_STR(e.message, "clientSecret is required "
				    "when provider, tokenUrl or tenant change");
		}
		cJSON_Delete(r);
		cJSON_Delete(stored);
	}

	/* Unchanged endpoint: the very same sealed secret is kept. */
	stored = app(CUSTOM, NULL, NULL, &e);
	r = app("{\"name\":\"renamed\"}", stored, "a", &e);
	CHECK(r != NULL);
	if (r != NULL && stored != NULL) {
		sec = cJSON_GetObjectItemCaseSensitive(r, "clientSecret");
		CHECK(cJSON_IsString(sec));
		if (cJSON_IsString(sec))
			CHECK_STR(sec->valuestring, cJSON_GetObjectItem(stored,
			    "clientSecret")->valuestring);
	}
	cJSON_Delete(r);
	cJSON_Delete(stored);
	crypto_reset();
#undef CUSTOM
#undef OUTLOOK
#undef PUBLIC
}
