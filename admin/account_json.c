/*
 * Validation and normalisation of account bodies (account_json.h). Every
 * error names the dotted field at fault, as EmailEngine does. Output
 * objects are built fresh in a fixed key order, so nothing unvalidated
 * from the body can reach Redis.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "admin/account_json.h"
#include "common/crypto.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok_keys.h"

#define AJ_HOST_MAX	253
#define AJ_NAME_MAX	256
#define AJ_PASS_MAX	1024
#define AJ_PATH_MAX	1024
#define AJ_PATHS_MAX	1000
#define AJ_URL_MAX	1024
#define AJ_TOKEN_MAX	16384	/* OAuth2 tokens */
#define AJ_CONN_MAX	1000

struct aj {
	const char		*account;	/* for the AAD */
	struct account_json_err	*err;
	const cJSON		*stored;	/* PUT: the record so far */
};

__attribute__((format(printf, 3, 4)))
static void *
fail(struct aj *aj, const char *field, const char *fmt, ...)
{
	va_list ap;

	aj->err->status = 400;
	snprintf(aj->err->field, sizeof(aj->err->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(aj->err->message, sizeof(aj->err->message), fmt, ap);
	va_end(ap);
	return NULL;
}

char *
account_json_aad(const char *account, const char *path)
{
	return xasprintf("%s\n%s", account, path);
}

static bool
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A string of min..max characters; ctl: control characters allowed. */
static bool
is_str(const cJSON *v, size_t min, size_t max, bool ctl)
{
	size_t n;

	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return false;
	n = str_utf8_len(v->valuestring);
	return n >= min && n <= max && (ctl || !has_ctl(v->valuestring));
}

static bool
is_int(const cJSON *v, long long min, long long max)
{
	double d;

	if (!cJSON_IsNumber(v))
		return false;
	d = v->valuedouble;
	return isfinite(d) && floor(d) == d && d >= (double)min &&
	    d <= (double)max;
}

static bool
host_is_valid(const char *h)
{
	size_t	len = strlen(h), label = 0;

	if (len == 0 || len > AJ_HOST_MAX)
		return false;
	if (str_is_ip_literal(h))
		return true;
	for (size_t i = 0; i <= len; i++) {
		char c = h[i];

		if (c == '.' || c == '\0') {
			/* A trailing dot (absolute name) is fine. */
			if (label == 0 && !(c == '\0' && i > 0))
				return false;
			if (label > 0 && (h[i - 1] == '-' ||
			    h[i - label] == '-'))
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

static bool
email_is_valid(const char *s)
{
	const char *at = strrchr(s, '@');

	return at != NULL && at != s && at[1] != '\0' &&
	    strpbrk(s, " \t\r\n<>()[]\\,;:\"") == NULL && !has_ctl(s);
}

bool
account_json_proxy_scheme_ok(const char *url)
{
	static const char *const schemes[] = {
		"socks://", "socks4://", "socks5://", "http://", "https://",
	};

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncasecmp(url, schemes[i], strlen(schemes[i])) == 0 &&
		    url[strlen(schemes[i])] != '\0')
			return true;
	return false;
}

char *
account_json_proxy_mask(const char *url)
{
	const char	*sep, *user, *at, *colon;

	if ((sep = strstr(url, "://")) == NULL)
		return xstrdup(url);
	user = sep + 3;
	if ((at = strrchr(user, '@')) == NULL)
		return xstrdup(url);
	colon = memchr(user, ':', (size_t)(at - user));
	if (colon == NULL || colon + 1 == at)
		return xstrdup(url);	/* no password, or an empty one */
	return xasprintf("%.*s****%s", (int)(colon + 1 - url), url, at);
}

bool
account_json_proxy_is_masked(const char *given, const char *stored)
{
	char	*masked;
	bool	 same;

	if (strcmp(given, stored) == 0)
		return false;
	masked = account_json_proxy_mask(stored);
	same = strcmp(given, masked) == 0;
	free(masked);
	return same;
}

static bool
url_is_valid(const char *s)
{
	if (has_ctl(s) || strpbrk(s, " \t") != NULL)
		return false;
	return account_json_proxy_scheme_ok(s);
}

#define AJ_MAX_KEYS	64

/* Fails on the first key that appears twice in obj (cJSON keeps both,
 * and which one a reader sees would be an accident). */
static bool
no_dups(struct aj *aj, const cJSON *obj, const char *prefix)
{
	char field[128];

	/* A handful of known keys per object: refuse a flood of distinct
	 * ones before the quadratic check below (it would stall the loop). */
	if (cJSON_GetArraySize(obj) > AJ_MAX_KEYS) {
		fail(aj, *prefix ? prefix : "body", "%s has more than %d fields",
		    *prefix ? prefix : "the body", AJ_MAX_KEYS);
		return false;
	}
	for (const cJSON *a = obj->child; a != NULL; a = a->next)
		for (const cJSON *b = a->next; b != NULL; b = b->next)
			if (a->string != NULL && b->string != NULL &&
			    strcmp(a->string, b->string) == 0) {
				snprintf(field, sizeof(field), "%s%s%s", prefix,
				    *prefix ? "." : "", a->string);
				fail(aj, field, "%s is given twice", field);
				return false;
			}
	return true;
}

/* "prefix.name", truncated if absurdly long (names come from the body). */
static void
join(char *out, size_t outlen, const char *prefix, const char *name)
{
	if (snprintf(out, outlen, "%s.%s", prefix, name) >= (int)outlen)
		out[outlen - 1] = '\0';
}

/* Fails with "prefix.name is required". */
static void *
missing(struct aj *aj, const char *prefix, const char *name)
{
	char field[128];

	join(field, sizeof(field), prefix, name);
	return fail(aj, field, "%s is required", field);
}

static bool
seal_into(struct aj *aj, cJSON *dst, const char *key, const char *path,
    const char *plain)
{
	char *aad = account_json_aad(aj->account, path), *sealed;

	sealed = crypto_seal_str(plain, aad);
	free(aad);
	if (sealed == NULL) {
		fail(aj, path, "cannot encrypt %s (no secret key loaded)", path);
		aj->err->status = 500;
		return false;
	}
	cJSON_AddStringToObject(dst, key, sealed);
	free(sealed);
	return true;
}

/* auth of imap/smtp: {"user", "pass"}. */
static cJSON *
auth_norm(struct aj *aj, const cJSON *v, const char *prefix, bool with_pass)
{
	char		 field[128];
	const cJSON	*user = NULL, *pass = NULL, *e;
	cJSON		*out;

	if (!cJSON_IsObject(v))
		return fail(aj, prefix, "%s must be an object", prefix);
	if (!no_dups(aj, v, prefix))
		return NULL;
	cJSON_ArrayForEach(e, v) {
		join(field, sizeof(field), prefix, e->string);
		if (strcmp(e->string, "user") == 0) {
			if (!is_str(e, 1, AJ_NAME_MAX, false))
				return fail(aj, field, "%s must be a string of "
				    "1-%d characters", field, AJ_NAME_MAX);
			user = e;
		} else if (with_pass && strcmp(e->string, "pass") == 0) {
			/* Any characters: it is a password. */
			if (!is_str(e, 0, AJ_PASS_MAX, true))
				return fail(aj, field, "%s must be a string of "
				    "at most %d characters", field, AJ_PASS_MAX);
			pass = e;
		} else
			return fail(aj, field, "%s is not allowed", field);
	}
	if (user == NULL)
		return missing(aj, prefix, "user");
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "user", user->valuestring);
	if (pass != NULL) {
		join(field, sizeof(field), prefix, "pass");
		if (!seal_into(aj, out, "pass", field, pass->valuestring)) {
			cJSON_Delete(out);
			return NULL;
		}
	}
	return out;
}

static cJSON *
tls_norm(struct aj *aj, const cJSON *v, const char *prefix)
{
	char		 field[128];
	const cJSON	*e;
	bool		 reject = true;
	cJSON		*out;

	if (!cJSON_IsObject(v))
		return fail(aj, prefix, "%s must be an object", prefix);
	if (!no_dups(aj, v, prefix))
		return NULL;
	cJSON_ArrayForEach(e, v) {
		join(field, sizeof(field), prefix, e->string);
		if (strcmp(e->string, "rejectUnauthorized") != 0)
			return fail(aj, field, "%s is not allowed", field);
		if (!cJSON_IsBool(e))
			return fail(aj, field, "%s must be a boolean", field);
		reject = cJSON_IsTrue(e);
	}
	out = cJSON_CreateObject();
	cJSON_AddBoolToObject(out, "rejectUnauthorized", reject);
	return out;
}

/*
 * true if the stored section old sends its credentials somewhere else than
 * host/port/secure/starttls would: another server, or the same one with
 * less (or other) protection on the way. A field missing from old counts
 * as a change.
 */
static bool
server_moved(const cJSON *old, const char *host, double port, bool secure,
    const char *starttls)
{
	const cJSON *h, *p, *s, *t;

	h = cJSON_GetObjectItemCaseSensitive(old, "host");
	p = cJSON_GetObjectItemCaseSensitive(old, "port");
	s = cJSON_GetObjectItemCaseSensitive(old, "secure");
	t = cJSON_GetObjectItemCaseSensitive(old, "starttls");
	return !cJSON_IsString(h) || strcasecmp(h->valuestring, host) != 0 ||
	    !cJSON_IsNumber(p) || (long long)p->valuedouble != (long long)port ||
	    !cJSON_IsBool(s) || (bool)cJSON_IsTrue(s) != secure ||
	    !cJSON_IsString(t) || strcmp(t->valuestring, starttls) != 0;
}

/* tls.rejectUnauthorized of a section's tls object (true when absent):
 * turning it off moves a secret as surely as a new host does. */
static bool
tls_rejects(const cJSON *tls)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(tls,
	    "rejectUnauthorized");

	return !cJSON_IsFalse(r);
}

/*
 * auth of an imap or smtp section (v NULL if the body has none). On PUT,
 * an omitted auth keeps the stored one and an omitted pass the stored
 * (sealed) password, unless moved: a password stored for one server is
 * never sent to another (or in the clear to the same one) on the say-so of
 * an update that does not know it; the update must give it again.
 * Returns NULL if there is no auth or on error.
 */
static cJSON *
server_auth(struct aj *aj, const cJSON *v, const char *name, bool moved)
{
	const cJSON	*old = NULL, *pass;
	char		 field[128];
	cJSON		*out = NULL;

	if (aj->stored != NULL &&
	    (old = cJSON_GetObjectItemCaseSensitive(aj->stored, name)) != NULL)
		old = cJSON_GetObjectItemCaseSensitive(old, "auth");
	pass = cJSON_GetObjectItemCaseSensitive(old, "pass");
	if (v != NULL) {
		join(field, sizeof(field), name, "auth");
		if ((out = auth_norm(aj, v, field, true)) == NULL)
			return NULL;
	}
	if (pass != NULL && moved &&
	    cJSON_GetObjectItemCaseSensitive(out, "pass") == NULL) {
		cJSON_Delete(out);
		join(field, sizeof(field), name, "auth.pass");
		return fail(aj, field, "%s is required when %s.host, port, "
		    "secure, starttls or tls.rejectUnauthorized change", field,
		    name);
	}
	if (v == NULL)
		return old != NULL ? cJSON_Duplicate(old, true) : NULL;
	if (pass != NULL && cJSON_GetObjectItemCaseSensitive(out, "pass") == NULL)
		cJSON_AddItemToObject(out, "pass", cJSON_Duplicate(pass, true));
	return out;
}

/* imap or smtp section. */
static cJSON *
server_norm(struct aj *aj, const cJSON *v, const char *name)
{
	const bool	 imap = strcmp(name, "imap") == 0;
	char		 field[128];
	const cJSON	*e, *host = NULL, *port = NULL, *auth = NULL, *tls = NULL;
	const cJSON	*sent = NULL, *maxc = NULL, *old;
	bool		 secure = false, moved;
	const char	*starttls = "required";
	cJSON		*out, *sub;

	if (!cJSON_IsObject(v))
		return fail(aj, name, "%s must be an object", name);
	if (!no_dups(aj, v, name))
		return NULL;
	cJSON_ArrayForEach(e, v) {
		const char *k = e->string;

		join(field, sizeof(field), name, k);
		if (strcmp(k, "host") == 0) {
			if (!cJSON_IsString(e) || !host_is_valid(e->valuestring))
				return fail(aj, field, "%s must be a hostname or "
				    "IP address (at most %d characters)", field,
				    AJ_HOST_MAX);
			host = e;
		} else if (strcmp(k, "port") == 0) {
			if (!is_int(e, 1, 65535))
				return fail(aj, field, "%s must be an integer "
				    "1-65535", field);
			port = e;
		} else if (strcmp(k, "secure") == 0) {
			if (!cJSON_IsBool(e))
				return fail(aj, field, "%s must be a boolean",
				    field);
			secure = cJSON_IsTrue(e);
		} else if (strcmp(k, "starttls") == 0) {
			if (!cJSON_IsString(e) ||
			    (strcmp(e->valuestring, "required") != 0 &&
			    strcmp(e->valuestring, "never") != 0))
				return fail(aj, field, "%s must be \"required\" "
				    "or \"never\"", field);
			starttls = e->valuestring;
		} else if (strcmp(k, "auth") == 0)
			auth = e;
		else if (strcmp(k, "tls") == 0)
			tls = e;
		else if (strcmp(k, "sentMailPath") == 0) {
			if (!cJSON_IsNull(e) && !is_str(e, 1, AJ_PATH_MAX, false))
				return fail(aj, field, "%s must be a string of "
				    "1-%d characters or null", field,
				    AJ_PATH_MAX);
			sent = e;
		} else if (imap && strcmp(k, "maxConnections") == 0) {
			if (!is_int(e, 1, AJ_CONN_MAX))
				return fail(aj, field, "%s must be an integer "
				    "1-%d", field, AJ_CONN_MAX);
			maxc = e;
		} else
			return fail(aj, field, "%s is not allowed", field);
	}
	if (host == NULL)
		return missing(aj, name, "host");
	if (port == NULL)
		return missing(aj, name, "port");
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "host", host->valuestring);
	cJSON_AddNumberToObject(out, "port", port->valuedouble);
	cJSON_AddBoolToObject(out, "secure", secure);
	cJSON_AddStringToObject(out, "starttls", starttls);
	old = aj->stored != NULL ?
	    cJSON_GetObjectItemCaseSensitive(aj->stored, name) : NULL;
	moved = old != NULL && (server_moved(old, host->valuestring,
	    port->valuedouble, secure, starttls) ||
	    (tls_rejects(cJSON_GetObjectItemCaseSensitive(old, "tls")) &&
	    !tls_rejects(tls)));
	if ((sub = server_auth(aj, auth, name, moved)) == NULL &&
	    (auth != NULL || aj->err->status != 0))
		goto fail;
	if (sub != NULL)
		cJSON_AddItemToObject(out, "auth", sub);
	join(field, sizeof(field), name, "tls");
	if (tls != NULL) {
		if ((sub = tls_norm(aj, tls, field)) == NULL)
			goto fail;
	} else {
		sub = cJSON_CreateObject();
		cJSON_AddBoolToObject(sub, "rejectUnauthorized", true);
	}
	cJSON_AddItemToObject(out, "tls", sub);
	if (sent != NULL)
		cJSON_AddItemToObject(out, "sentMailPath",
		    cJSON_Duplicate(sent, false));
	if (maxc != NULL)
		cJSON_AddNumberToObject(out, "maxConnections", maxc->valuedouble);
	return out;
fail:
	cJSON_Delete(out);
	return NULL;
}

static cJSON *
oauth2_norm(struct aj *aj, const cJSON *v)
{
	char		 field[128];
	const cJSON	*e, *provider = NULL, *auth = NULL, *refresh = NULL;
	const cJSON	*access = NULL;
	long long	 expires = -1;
	cJSON		*out, *sub;

	if (!cJSON_IsObject(v))
		return fail(aj, "oauth2", "oauth2 must be an object");
	if (!no_dups(aj, v, "oauth2"))
		return NULL;
	cJSON_ArrayForEach(e, v) {
		const char *k = e->string;

		join(field, sizeof(field), "oauth2", k);
		if (strcmp(k, "provider") == 0) {
			if (!is_str(e, 1, AJ_NAME_MAX, false))
				return fail(aj, field, "%s must be a string of "
				    "1-%d characters", field, AJ_NAME_MAX);
			provider = e;
		} else if (strcmp(k, "auth") == 0)
			auth = e;
		else if (strcmp(k, "refreshToken") == 0 ||
		    strcmp(k, "accessToken") == 0) {
			if (!is_str(e, 1, AJ_TOKEN_MAX, false))
				return fail(aj, field, "%s must be a string of "
				    "1-%d characters", field, AJ_TOKEN_MAX);
			if (k[0] == 'r')
				refresh = e;
			else
				access = e;
		} else if (strcmp(k, "expires") == 0) {
			if (!cJSON_IsString(e) ||
			    (expires = str_iso8601_parse(e->valuestring)) < 0)
				return fail(aj, field, "%s must be an ISO 8601 "
				    "date", field);
		} else
			return fail(aj, field, "%s is not allowed", field);
	}
	if (provider == NULL)
		return missing(aj, "oauth2", "provider");
	if (auth == NULL)
		return missing(aj, "oauth2", "auth");
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "provider", provider->valuestring);
	if ((sub = auth_norm(aj, auth, "oauth2.auth", false)) == NULL)
		goto fail;
	cJSON_AddItemToObject(out, "auth", sub);
	if (refresh != NULL && !seal_into(aj, out, "refreshToken",
	    "oauth2.refreshToken", refresh->valuestring))
		goto fail;
	/* PUT: an app that pushes accessToken + expires need not send the
	 * refresh token again (same application: it is still valid). */
	if (refresh == NULL && aj->stored != NULL) {
		const cJSON *so = cJSON_GetObjectItemCaseSensitive(aj->stored,
		    "oauth2");
		const cJSON *sp = cJSON_GetObjectItemCaseSensitive(so,
		    "provider");
		const cJSON *sr = cJSON_GetObjectItemCaseSensitive(so,
		    "refreshToken");

		if (cJSON_IsString(sp) && cJSON_IsString(sr) &&
		    strcmp(sp->valuestring, provider->valuestring) == 0)
			cJSON_AddStringToObject(out, "refreshToken",
			    sr->valuestring);
	}
	if (access != NULL && !seal_into(aj, out, "accessToken",
	    "oauth2.accessToken", access->valuestring))
		goto fail;
	if (expires >= 0) {
		char ts[32];

		str_iso8601_format(expires, ts, sizeof(ts));
		cJSON_AddStringToObject(out, "expires", ts);
	}
	return out;
fail:
	cJSON_Delete(out);
	return NULL;
}

static cJSON *
path_norm(struct aj *aj, const cJSON *v)
{
	char		 field[32];
	const cJSON	*e;
	cJSON		*out;
	int		 i = 0;

	if (is_str(v, 1, AJ_PATH_MAX, false)) {
		out = cJSON_CreateArray();
		cJSON_AddItemToArray(out, cJSON_CreateString(v->valuestring));
		return out;
	}
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 ||
	    cJSON_GetArraySize(v) > AJ_PATHS_MAX)
		return fail(aj, "path", "path must be a string or an array of "
		    "1-%d strings", AJ_PATHS_MAX);
	cJSON_ArrayForEach(e, v) {
		if (!is_str(e, 1, AJ_PATH_MAX, false)) {
			snprintf(field, sizeof(field), "path.%d", i);
			return fail(aj, field, "%s must be a string of 1-%d "
			    "characters", field, AJ_PATH_MAX);
		}
		i++;
	}
	return cJSON_Duplicate(v, true);
}

/*
 * One top-level field (not "account"): *out_r gets the normalised value,
 * or NULL if the field is null (or "verify", which is not stored).
 * Returns false on error.
 */
static bool
field_norm(struct aj *aj, const cJSON *e, cJSON **out_r)
{
	const char	*k = e->string;
	const cJSON	*old;

	*out_r = NULL;
	if (strcmp(k, "verify") == 0) {
		/* Not stored: admin_accounts_create reads it from the
		 * body and verifies first (admin_verify.c). */
		if (!cJSON_IsBool(e))
			return fail(aj, k, "verify must be a boolean"), false;
		return true;
	}
	if (cJSON_IsNull(e) && (strcmp(k, "imapIndexer") == 0 ||
	    strcmp(k, "name") == 0 || strcmp(k, "email") == 0 ||
	    strcmp(k, "imap") == 0 || strcmp(k, "smtp") == 0 ||
	    strcmp(k, "oauth2") == 0 || strcmp(k, "proxy") == 0 ||
	    strcmp(k, "path") == 0 || strcmp(k, "copySent") == 0))
		return true;
	if (strcmp(k, "name") == 0) {
		if (!is_str(e, 0, AJ_NAME_MAX, false))
			return fail(aj, k, "name must be a string of at most "
			    "%d characters", AJ_NAME_MAX), false;
		*out_r = cJSON_CreateString(e->valuestring);
	} else if (strcmp(k, "email") == 0) {
		if (!is_str(e, 3, AJ_NAME_MAX, false) ||
		    !email_is_valid(e->valuestring))
			return fail(aj, k, "email must be an email address"),
			    false;
		*out_r = cJSON_CreateString(e->valuestring);
	} else if (strcmp(k, "imap") == 0 || strcmp(k, "smtp") == 0)
		*out_r = server_norm(aj, e, k);
	else if (strcmp(k, "oauth2") == 0)
		*out_r = oauth2_norm(aj, e);
	else if (strcmp(k, "proxy") == 0) {
		if (!is_str(e, 1, AJ_URL_MAX, false) ||
		    !url_is_valid(e->valuestring))
			return fail(aj, k, "proxy must be a socks://, socks4://, "
			    "socks5://, http:// or https:// URL"), false;
		/* PUT: the masked URL from GET keeps the stored one. */
		if (aj->stored != NULL && (old = cJSON_GetObjectItemCaseSensitive(
		    aj->stored, "proxy")) != NULL && cJSON_IsString(old) &&
		    account_json_proxy_is_masked(e->valuestring,
		    old->valuestring))
			*out_r = cJSON_CreateString(old->valuestring);
		else
			*out_r = cJSON_CreateString(e->valuestring);
	} else if (strcmp(k, "imapIndexer") == 0) {
		if (!cJSON_IsString(e) || (strcmp(e->valuestring, "full") != 0 &&
		    strcmp(e->valuestring, "fast") != 0))
			return fail(aj, k, "imapIndexer must be \"full\" or "
			    "\"fast\""), false;
		*out_r = cJSON_CreateString(e->valuestring);
	} else if (strcmp(k, "path") == 0)
		*out_r = path_norm(aj, e);
	else if (strcmp(k, "copySent") == 0) {
		if (!cJSON_IsBool(e))
			return fail(aj, k, "copySent must be a boolean"), false;
		*out_r = cJSON_CreateBool(cJSON_IsTrue(e));
	} else
		return fail(aj, k, "%s is not allowed", k), false;
	return *out_r != NULL;
}

/* Output key order. */
static const char *const aj_order[] = {
	"account", "name", "email", "imap", "smtp", "oauth2", "proxy",
	"imapIndexer", "path", "copySent",
};
#define AJ_NORDER	(sizeof(aj_order) / sizeof(aj_order[0]))

static int
order_index(const char *k)
{
	for (size_t i = 0; i < AJ_NORDER; i++)
		if (strcmp(aj_order[i], k) == 0)
			return (int)i;
	return -1;
}

static bool
check_account(struct aj *aj, const cJSON *v)
{
	if (!cJSON_IsString(v) || !tok_key_account_is_valid(v->valuestring))
		return fail(aj, "account", "account must be 1-%d characters of "
		    "A-Z a-z 0-9 . _ @ + -", TOK_ACCOUNT_ID_MAX), false;
	return true;
}

static bool
has_server(const cJSON *rec)
{
	return cJSON_GetObjectItemCaseSensitive(rec, "imap") != NULL ||
	    cJSON_GetObjectItemCaseSensitive(rec, "smtp") != NULL ||
	    cJSON_GetObjectItemCaseSensitive(rec, "oauth2") != NULL;
}

/* Builds slots[] (indexed like aj_order) from the body's fields. */
static bool
fields_norm(struct aj *aj, const cJSON *body, cJSON **slots, bool *given)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, body) {
		int i;

		if (strcmp(e->string, "account") == 0)
			continue;
		if (!field_norm(aj, e, &slots[AJ_NORDER]))
			return false;
		if ((i = order_index(e->string)) < 0) {
			/* "verify" */
			continue;
		}
		slots[i] = slots[AJ_NORDER];
		slots[AJ_NORDER] = NULL;
		given[i] = true;
	}
	return true;
}

static void
slots_free(cJSON **slots)
{
	for (size_t i = 0; i <= AJ_NORDER; i++)
		cJSON_Delete(slots[i]);
}

static bool
body_check(struct aj *aj, const cJSON *body)
{
	if (!cJSON_IsObject(body))
		return fail(aj, "", "the body must be a JSON object"), false;
	return no_dups(aj, body, "");
}

cJSON *
account_json_create(const cJSON *body, struct account_json_err *err)
{
	struct aj	 aj = { NULL, err, NULL };
	cJSON		*slots[AJ_NORDER + 1] = { 0 }, *out;
	bool		 given[AJ_NORDER] = { 0 };
	const cJSON	*acct;

	memset(err, 0, sizeof(*err));
	if (!body_check(&aj, body))
		return NULL;
	acct = cJSON_GetObjectItemCaseSensitive(body, "account");
	if (acct == NULL)
		return fail(&aj, "account", "account is required");
	if (!check_account(&aj, acct))
		return NULL;
	aj.account = acct->valuestring;
	if (!fields_norm(&aj, body, slots, given)) {
		slots_free(slots);
		return NULL;
	}
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "account", aj.account);
	for (size_t i = 1; i < AJ_NORDER; i++)
		if (slots[i] != NULL) {
			cJSON_AddItemToObject(out, aj_order[i], slots[i]);
			slots[i] = NULL;
		}
	slots_free(slots);
	if (!has_server(out)) {
		cJSON_Delete(out);
		return fail(&aj, "", "an account needs at least one of imap, "
		    "smtp, oauth2");
	}
	return out;
}

cJSON *
account_json_update(const cJSON *stored, const cJSON *body,
    const char *account, struct account_json_err *err)
{
	struct aj	 aj = { account, err, stored };
	cJSON		*slots[AJ_NORDER + 1] = { 0 }, *out;
	bool		 given[AJ_NORDER] = { 0 };
	const cJSON	*acct, *old;

	memset(err, 0, sizeof(*err));
	if (!body_check(&aj, body))
		return NULL;
	if ((acct = cJSON_GetObjectItemCaseSensitive(body, "account")) != NULL) {
		if (!check_account(&aj, acct))
			return NULL;
		if (strcmp(acct->valuestring, account) != 0)
			return fail(&aj, "account", "account does not match the "
			    "path (an account id cannot be changed)");
	}
	if (!fields_norm(&aj, body, slots, given)) {
		slots_free(slots);
		return NULL;
	}
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "account", account);
	for (size_t i = 1; i < AJ_NORDER; i++) {
		if (given[i]) {
			if (slots[i] != NULL)
				cJSON_AddItemToObject(out, aj_order[i],
				    slots[i]);
			slots[i] = NULL;
			continue;
		}
		old = cJSON_GetObjectItemCaseSensitive(stored, aj_order[i]);
		if (old != NULL)
			cJSON_AddItemToObject(out, aj_order[i],
			    cJSON_Duplicate(old, true));
	}
	slots_free(slots);
	if (!has_server(out)) {
		cJSON_Delete(out);
		return fail(&aj, "", "an account needs at least one of imap, "
		    "smtp, oauth2");
	}
	return out;
}

static void
strip_auth(cJSON *sec)
{
	cJSON *auth, *user;

	if (sec == NULL)
		return;
	if ((auth = cJSON_GetObjectItemCaseSensitive(sec, "auth")) == NULL)
		return;
	user = cJSON_DetachItemFromObjectCaseSensitive(auth, "user");
	while (auth->child != NULL)
		cJSON_Delete(cJSON_DetachItemViaPointer(auth, auth->child));
	if (user != NULL)
		cJSON_AddItemToObject(auth, "user", user);
}

cJSON *
account_json_public(const cJSON *stored)
{
	cJSON *out = cJSON_Duplicate(stored, true), *o;

	if (out == NULL)
		return cJSON_CreateObject();
	strip_auth(cJSON_GetObjectItemCaseSensitive(out, "imap"));
	strip_auth(cJSON_GetObjectItemCaseSensitive(out, "smtp"));
	if ((o = cJSON_GetObjectItemCaseSensitive(out, "oauth2")) != NULL) {
		strip_auth(o);
		cJSON_DeleteItemFromObjectCaseSensitive(o, "refreshToken");
		cJSON_DeleteItemFromObjectCaseSensitive(o, "accessToken");
	}
	if ((o = cJSON_GetObjectItemCaseSensitive(out, "proxy")) != NULL &&
	    cJSON_IsString(o)) {
		char *m = account_json_proxy_mask(o->valuestring);

		cJSON_ReplaceItemInObjectCaseSensitive(out, "proxy",
		    cJSON_CreateString(m));
		free(m);
	}
	return out;
}
