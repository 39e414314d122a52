/*
 * OAuth2 records (tok_oauth.h). Every conditional write is one short Lua
 * script, so that two workers or two hosts never interleave inside it; the
 * refresh lock is a plain SET NX PX whose value names its holder, deleted
 * only by that holder (compare-and-delete in Lua).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok_keys.h"
#include "tokenstore/tok_oauth.h"
#include "tokenstore/tok_reply.h"

static struct tok_reply_err oauth_err = { "unknown error" };

static const char lua_app_create[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
    "redis.call('HSET', KEYS[1], 'json', ARGV[1], 'created', ARGV[2], "
    "'updated', ARGV[2]) "
    "redis.call('ZADD', KEYS[2], 0, ARGV[3]) "
    "return 1";

static const char lua_app_update[] =
    "local cur = redis.call('HGET', KEYS[1], 'json') "
    "if not cur then return 0 end "
    "if cur ~= ARGV[1] then return 2 end "
    "redis.call('HSET', KEYS[1], 'json', ARGV[2], 'updated', ARGV[3]) "
    "return 1";

static const char lua_app_delete[] =
    "local n = redis.call('DEL', KEYS[1]) "
    "redis.call('ZREM', KEYS[2], ARGV[1]) "
    "return n";

/* {total, id, json, created, updated, id, ...}; ids whose hash is gone
 * (a delete in between) are skipped. */
static const char lua_app_list[] =
    "local out = {redis.call('ZCARD', KEYS[1])} "
    "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])) do "
    "local h = redis.call('HMGET', ARGV[3] .. id, 'json', 'created', "
    "'updated') "
    "if h[1] then "
    "table.insert(out, id) table.insert(out, h[1]) "
    "table.insert(out, h[2] or '0') table.insert(out, h[3] or '0') "
    "end end "
    "return out";

/* {cache hash, lock exists, app {json, created, updated} or nil}. */
static const char lua_cache_get[] =
    "local a = false "
    "if KEYS[3] then "
    "local h = redis.call('HMGET', KEYS[3], 'json', 'created', 'updated') "
    "if h[1] then a = h end end "
    "return {redis.call('HGETALL', KEYS[1]), redis.call('EXISTS', KEYS[2]), "
    "a}";

/* KEYS: cache, account. Never writes for a deleted account; an entry of
 * another ver (older oauth2 settings) is dropped whole first. */
static const char lua_cache_put[] =
    "if redis.call('HEXISTS', KEYS[2], 'json') == 0 then return 0 end "
    "if redis.call('HGET', KEYS[1], 'ver') ~= ARGV[1] then "
    "redis.call('DEL', KEYS[1]) end "
    "redis.call('HSET', KEYS[1], 'ver', ARGV[1], 'access', ARGV[2], "
    "'expires', ARGV[3], 'refreshed', ARGV[5]) "
    "if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'refresh', ARGV[4]) "
    "end "
    "redis.call('HDEL', KEYS[1], 'failed', 'failures', 'retry') "
    "return 1";

static const char lua_cache_fail[] =
    "if redis.call('HEXISTS', KEYS[2], 'json') == 0 then return 0 end "
    "if redis.call('HGET', KEYS[1], 'ver') ~= ARGV[1] then "
    "redis.call('DEL', KEYS[1]) end "
    "redis.call('HSET', KEYS[1], 'ver', ARGV[1], 'failures', ARGV[2], "
    "'retry', ARGV[3]) "
    "if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'failed', ARGV[4]) "
    "end "
    "return 1";

static const char lua_unlock[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end "
    "return 0";

const char *
tok_oauth_errstr(void)
{
	return oauth_err.s;
}

struct ctx {
	void	(*cb)(void);
	void	*arg;
	char	*id;
};

static void
ctx_free(void *p)
{
	struct ctx *c = p;

	free(c->id);
	free(c);
}

static struct ctx *
ctx_new(void (*cb)(void), void *arg, const char *id)
{
	struct ctx *c = xcalloc(1, sizeof(*c));

	c->cb = cb;
	c->arg = arg;
	c->id = id != NULL ? xstrdup(id) : NULL;
	return c;
}

static struct tok_req *
send_ctx(struct tok_req *r)
{
	tok_req_set_cancel_fn(r, ctx_free);
	return r;
}

static long long
str_ms(const redisReply *r)
{
	long long v;

	if (r == NULL || r->type != REDIS_REPLY_STRING ||
	    !str_to_ll(r->str, 0, 1LL << 53, &v))
		return 0;
	return v;
}

/* ---- integer replies: create, update, delete, lock ---- */

static void
rc_reply(void *arg, redisReply *r, const char *err)
{
	struct ctx	*c = arg;
	tok_oauth_rc_cb	*cb = (tok_oauth_rc_cb *)c->cb;
	int		 rc = -1;

	if (!tok_reply_failed(&oauth_err, r, err, "oauth2")) {
		if (r->type == REDIS_REPLY_INTEGER)
			rc = (int)r->integer;
		else if (r->type == REDIS_REPLY_STATUS)
			rc = 1;			/* SET ... NX: OK */
		else if (r->type == REDIS_REPLY_NIL)
			rc = 0;			/* SET ... NX: held */
		else
			tok_reply_err_set(&oauth_err, "unexpected reply");
	}
	if (cb != NULL)
		cb(c->arg, rc);
	ctx_free(c);
}

/* Bad ids never reach Redis, but the answer still comes from the loop. */
static struct tok_req *
rc_later(struct tok *t, tok_oauth_rc_cb *cb, void *arg)
{
	return send_ctx(tok_cmd(t, rc_reply, ctx_new((void (*)(void))cb, arg,
	    NULL), "EVAL %s 0", "return 0"));
}

struct tok_req *
tok_oauth_app_create(struct tok *t, const char *id, const char *json,
    tok_oauth_rc_cb *cb, void *arg)
{
	struct tok_req	*r;
	char		*key, *zkey, now[24];

	if (!tok_key_account_is_valid(id))
		return rc_later(t, cb, arg);
	key = tok_key_oauth_app(tok_prefix(t), id);
	zkey = tok_key_oauth_apps(tok_prefix(t));
	snprintf(now, sizeof(now), "%lld", str_now_ms());
	r = tok_cmd(t, rc_reply, ctx_new((void (*)(void))cb, arg, NULL),
	    "EVAL %s 2 %s %s %s %s %s", lua_app_create, key, zkey, json, now,
	    id);
	free(key);
	free(zkey);
	return send_ctx(r);
}

struct tok_req *
tok_oauth_app_update(struct tok *t, const char *id, const char *old_json,
    const char *new_json, tok_oauth_rc_cb *cb, void *arg)
{
	struct tok_req	*r;
	char		*key, now[24];

	if (!tok_key_account_is_valid(id))
		return rc_later(t, cb, arg);
	key = tok_key_oauth_app(tok_prefix(t), id);
	snprintf(now, sizeof(now), "%lld", str_now_ms());
	r = tok_cmd(t, rc_reply, ctx_new((void (*)(void))cb, arg, NULL),
	    "EVAL %s 1 %s %s %s %s", lua_app_update, key, old_json, new_json,
	    now);
	free(key);
	return send_ctx(r);
}

struct tok_req *
tok_oauth_app_delete(struct tok *t, const char *id, tok_oauth_rc_cb *cb,
    void *arg)
{
	struct tok_req	*r;
	char		*key, *zkey;

	if (!tok_key_account_is_valid(id))
		return rc_later(t, cb, arg);
	key = tok_key_oauth_app(tok_prefix(t), id);
	zkey = tok_key_oauth_apps(tok_prefix(t));
	r = tok_cmd(t, rc_reply, ctx_new((void (*)(void))cb, arg, NULL),
	    "EVAL %s 2 %s %s %s", lua_app_delete, key, zkey, id);
	free(key);
	free(zkey);
	return send_ctx(r);
}

struct tok_req *
tok_oauth_lock(struct tok *t, const char *account, const char *owner,
    long long ttl_ms, tok_oauth_rc_cb *cb, void *arg)
{
	struct tok_req	*r;
	char		*key, ttl[24];

	if (!tok_key_account_is_valid(account))
		return rc_later(t, cb, arg);
	key = tok_key_oauth_lock(tok_prefix(t), account);
	snprintf(ttl, sizeof(ttl), "%lld", ttl_ms);
	r = tok_cmd(t, rc_reply, ctx_new((void (*)(void))cb, arg, NULL),
	    "SET %s %s NX PX %s", key, owner, ttl);
	free(key);
	return send_ctx(r);
}

void
tok_oauth_unlock(struct tok *t, const char *account, const char *owner)
{
	char *key;

	if (!tok_key_account_is_valid(account))
		return;
	key = tok_key_oauth_lock(tok_prefix(t), account);
	(void)tok_cmd(t, NULL, NULL, "EVAL %s 1 %s %s", lua_unlock, key, owner);
	free(key);
}

/* ---- application records ---- */

/* Fills a from id and a {json, created, updated} triple; false if the
 * json does not parse (a->json is then NULL). */
static bool
app_parse(struct tok_oauth_app *a, const char *id, const redisReply *j,
    const redisReply *created, const redisReply *updated)
{
	cJSON *p;

	memset(a, 0, sizeof(*a));
	a->id = id;
	if (j == NULL || j->type != REDIS_REPLY_STRING ||
	    (p = cJSON_Parse(j->str)) == NULL)
		return false;
	if (!cJSON_IsObject(p)) {
		cJSON_Delete(p);
		return false;
	}
	a->json_text = j->str;
	a->json = p;
	a->created_ms = str_ms(created);
	a->updated_ms = str_ms(updated);
	return true;
}

static void
app_get_reply(void *arg, redisReply *r, const char *err)
{
	struct ctx		*c = arg;
	tok_oauth_app_cb	*cb = (tok_oauth_app_cb *)c->cb;
	struct tok_oauth_app	 a;

	if (tok_reply_failed(&oauth_err, r, err, "oauth2_app_get"))
		cb(c->arg, -1, NULL, 0, 0);
	else if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
		tok_reply_err_set(&oauth_err, "unexpected reply");
		cb(c->arg, -1, NULL, 0, 0);
	} else if (r->element[0]->type == REDIS_REPLY_NIL)
		cb(c->arg, 0, NULL, 0, 0);
	else if (!app_parse(&a, c->id, r->element[0], r->element[1],
	    r->element[2])) {
		tok_reply_corrupt(&oauth_err, "oauth2_app", c->id);
		cb(c->arg, -1, NULL, 0, 0);
	} else {
		cb(c->arg, 1, &a, 1, 1);
		cJSON_Delete((cJSON *)a.json);
	}
	ctx_free(c);
}

struct tok_req *
tok_oauth_app_get(struct tok *t, const char *id, tok_oauth_app_cb *cb,
    void *arg)
{
	struct tok_req	*r;
	char		*key;

	if (!tok_key_account_is_valid(id))
		return send_ctx(tok_cmd(t, app_get_reply, ctx_new(
		    (void (*)(void))cb, arg, ""), "EVAL %s 0",
		    "return {false, false, false}"));
	key = tok_key_oauth_app(tok_prefix(t), id);
	r = tok_cmd(t, app_get_reply, ctx_new((void (*)(void))cb, arg, id),
	    "HMGET %s %s %s %s", key, TOK_OAUTH_F_JSON, TOK_OAUTH_F_CREATED,
	    TOK_OAUTH_F_UPDATED);
	free(key);
	return send_ctx(r);
}

static void
app_list_reply(void *arg, redisReply *r, const char *err)
{
	struct ctx		*c = arg;
	tok_oauth_app_cb	*cb = (tok_oauth_app_cb *)c->cb;
	struct tok_oauth_app	*apps;
	size_t			 n = 0, i;

	if (tok_reply_failed(&oauth_err, r, err, "oauth2_app_list")) {
		cb(c->arg, -1, NULL, 0, 0);
		ctx_free(c);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    (r->elements - 1) % 4 != 0) {
		tok_reply_err_set(&oauth_err, "unexpected reply");
		cb(c->arg, -1, NULL, 0, 0);
		ctx_free(c);
		return;
	}
	apps = xcalloc((r->elements - 1) / 4 + 1, sizeof(*apps));
	for (i = 1; i + 3 < r->elements; i += 4) {
		const redisReply *id = r->element[i];

		if (id->type != REDIS_REPLY_STRING)
			continue;
		if (!app_parse(&apps[n], id->str, r->element[i + 1],
		    r->element[i + 2], r->element[i + 3])) {
			tok_reply_corrupt(&oauth_err, "oauth2_app", id->str);
			continue;
		}
		n++;
	}
	cb(c->arg, 1, apps, n, r->element[0]->integer);
	for (i = 0; i < n; i++)
		cJSON_Delete((cJSON *)apps[i].json);
	free(apps);
	ctx_free(c);
}

struct tok_req *
tok_oauth_app_list(struct tok *t, long long start, long long count,
    tok_oauth_app_cb *cb, void *arg)
{
	struct tok_req	*r;
	char		*zkey, *pfx, a1[24], a2[24];

	zkey = tok_key_oauth_apps(tok_prefix(t));
	pfx = tok_key_oauth_app(tok_prefix(t), "");
	snprintf(a1, sizeof(a1), "%lld", start);
	snprintf(a2, sizeof(a2), "%lld", start + count - 1);
	r = tok_cmd(t, app_list_reply, ctx_new((void (*)(void))cb, arg, NULL),
	    "EVAL %s 1 %s %s %s %s", lua_app_list, zkey, a1, a2, pfx);
	free(zkey);
	free(pfx);
	return send_ctx(r);
}

/* ---- the token cache ---- */

static long long
field_ll(const redisReply *h, const char *name)
{
	const char	*s = tok_reply_hash_field(h, name);
	long long	 v;

	if (s == NULL || !str_to_ll(s, 0, 1LL << 53, &v))
		return 0;
	return v;
}

static void
cache_reply(void *arg, redisReply *r, const char *err)
{
	struct ctx		*c = arg;
	tok_oauth_cache_cb	*cb = (tok_oauth_cache_cb *)c->cb;
	struct tok_oauth_cache	 e;
	struct tok_oauth_app	 a, *ap = NULL;
	const redisReply	*h, *ar;

	if (tok_reply_failed(&oauth_err, r, err, "oauth2_cache_get")) {
		cb(c->arg, -1, NULL, NULL);
		ctx_free(c);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY ||
	    r->element[0]->elements % 2 != 0 ||
	    r->element[1]->type != REDIS_REPLY_INTEGER) {
		tok_reply_err_set(&oauth_err, "unexpected reply");
		cb(c->arg, -1, NULL, NULL);
		ctx_free(c);
		return;
	}
	h = r->element[0];
	memset(&e, 0, sizeof(e));
	e.ver = tok_reply_hash_field(h, "ver");
	e.access = tok_reply_hash_field(h, "access");
	e.expires_ms = field_ll(h, "expires");
	e.refresh = tok_reply_hash_field(h, "refresh");
	e.failed = tok_reply_hash_field(h, "failed");
	e.failures = field_ll(h, "failures");
	e.retry_ms = field_ll(h, "retry");
	e.refreshed_ms = field_ll(h, "refreshed");
	e.locked = r->element[1]->integer == 1;
	ar = r->element[2];
	if (ar->type == REDIS_REPLY_ARRAY && ar->elements == 3) {
		if (!app_parse(&a, c->id, ar->element[0], ar->element[1],
		    ar->element[2])) {
			tok_reply_corrupt(&oauth_err, "oauth2_app", c->id);
			cb(c->arg, -1, NULL, NULL);
			ctx_free(c);
			return;
		}
		ap = &a;
	}
	cb(c->arg, 1, &e, ap);
	if (ap != NULL)
		cJSON_Delete((cJSON *)ap->json);
	ctx_free(c);
}

struct tok_req *
tok_oauth_cache_get(struct tok *t, const char *account, const char *app_id,
    tok_oauth_cache_cb *cb, void *arg)
{
	struct tok_req	*r;
	struct ctx	*c;
	char		*k1, *k2, *k3;

	if (!tok_key_account_is_valid(account)) {
		c = ctx_new((void (*)(void))cb, arg, "");
		return send_ctx(tok_cmd(t, cache_reply, c, "EVAL %s 0",
		    "return {{}, 0, false}"));
	}
	c = ctx_new((void (*)(void))cb, arg, app_id != NULL ? app_id : "");
	k1 = tok_key_oauth_token(tok_prefix(t), account);
	k2 = tok_key_oauth_lock(tok_prefix(t), account);
	if (app_id != NULL && tok_key_account_is_valid(app_id)) {
		k3 = tok_key_oauth_app(tok_prefix(t), app_id);
		r = tok_cmd(t, cache_reply, c, "EVAL %s 3 %s %s %s",
		    lua_cache_get, k1, k2, k3);
		free(k3);
	} else
		r = tok_cmd(t, cache_reply, c, "EVAL %s 2 %s %s",
		    lua_cache_get, k1, k2);
	free(k1);
	free(k2);
	return send_ctx(r);
}

struct tok_req *
tok_oauth_cache_put(struct tok *t, const char *account, const char *ver,
    const char *access_sealed, long long expires_ms,
    const char *refresh_sealed, tok_oauth_rc_cb *cb, void *arg)
{
	struct tok_req	*r;
	char		*k1, *k2, exp[24], now[24];

	if (!tok_key_account_is_valid(account))
		return rc_later(t, cb, arg);
	k1 = tok_key_oauth_token(tok_prefix(t), account);
	k2 = tok_key_account(tok_prefix(t), account);
	snprintf(exp, sizeof(exp), "%lld", expires_ms);
	snprintf(now, sizeof(now), "%lld", str_now_ms());
	r = tok_cmd(t, rc_reply, ctx_new((void (*)(void))cb, arg, NULL),
	    "EVAL %s 2 %s %s %s %s %s %s %s", lua_cache_put, k1, k2, ver,
	    access_sealed, exp, refresh_sealed != NULL ? refresh_sealed : "",
	    now);
	free(k1);
	free(k2);
	return send_ctx(r);
}

void
tok_oauth_cache_fail(struct tok *t, const char *account, const char *ver,
    long long failures, long long retry_ms, const char *failed)
{
	char *k1, *k2, n[24], retry[24];

	if (!tok_key_account_is_valid(account))
		return;
	k1 = tok_key_oauth_token(tok_prefix(t), account);
	k2 = tok_key_account(tok_prefix(t), account);
	snprintf(n, sizeof(n), "%lld", failures);
	snprintf(retry, sizeof(retry), "%lld", retry_ms);
	(void)tok_cmd(t, NULL, NULL, "EVAL %s 2 %s %s %s %s %s %s",
	    lua_cache_fail, k1, k2, ver, n, retry,
	    failed != NULL ? failed : "");
	free(k1);
	free(k2);
}
