/*
 * Records in Redis (tok_store.h): parsing the token, account and settings
 * hashes, and the multi-step operations of the admin API. Writes that
 * touch several keys go out as MULTI, the commands, EXEC, queued back to
 * back on the one connection, so no other caller's command can land
 * inside the transaction. Conditional writes that MULTI cannot express
 * are short Lua scripts (EVAL); docs/REDIS.md lists them.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <openssl/crypto.h>

#include "auth/token.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok_keys.h"
#include "tokenstore/tok_reply.h"
#include "tokenstore/tok_store.h"

#define TOK_RESTRICT_MAX	256	/* addresses in one token */
#define AV_MAX			24	/* arguments of one command */

static struct tok_reply_err store_err = { "unknown error" };

/*
 * touch: records the last use, only while the token exists, and lets the
 * :used hash expire with the token.
 */
static const char lua_touch[] =
    "local t = redis.call('PTTL', KEYS[1]) "
    "if t == -2 then return 0 end "
    "redis.call('HSET', KEYS[2], 'time', ARGV[1], 'ip', ARGV[2]) "
    "if t > 0 then redis.call('PEXPIRE', KEYS[2], t) end "
    "return 1";

/* set_state: never resurrects a deleted account as a stray hash. */
static const char lua_set_state[] =
    "if redis.call('HEXISTS', KEYS[1], 'json') == 0 then return 0 end "
    "redis.call('HSET', KEYS[1], 'state', ARGV[1]) "
    "if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'lastError') "
    "else redis.call('HSET', KEYS[1], 'lastError', ARGV[2]) end "
    "return 1";

/* update: compare-and-set of the account record (PUT /v1/account). */
static const char lua_update[] =
    "local cur = redis.call('HGET', KEYS[1], 'json') "
    "if not cur then return 0 end "
    "if cur ~= ARGV[1] then return 2 end "
    "redis.call('HSET', KEYS[1], 'json', ARGV[2], 'state', 'init', "
    "'updated', ARGV[3]) "
    "redis.call('HDEL', KEYS[1], 'lastError') "
    "return 1";

const char *
tok_store_errstr(void)
{
	return store_err.s;
}

/* Argument vectors for tok_cmdv; strings must outlive the tok_cmdv call
 * only (hiredis formats the command at once). */
struct av {
	int		 n;
	const char	*v[AV_MAX];
	size_t		 l[AV_MAX];
	char		 num[AV_MAX][24];
};

static void
av_addb(struct av *av, const char *s, size_t len)
{
	if (av->n == AV_MAX)
		fatalx("tok_store: command too long");
	av->v[av->n] = s;
	av->l[av->n] = len;
	av->n++;
}

static void
av_add(struct av *av, const char *s)
{
	av_addb(av, s, strlen(s));
}

static void
av_addll(struct av *av, long long v)
{
	if (av->n == AV_MAX)
		fatalx("tok_store: command too long");
	snprintf(av->num[av->n], sizeof(av->num[0]), "%lld", v);
	av_add(av, av->num[av->n]);
}

static bool
parse_ms(const char *s, long long *r)
{
	return s != NULL && str_to_ll(s, 0, LLONG_MAX, r);
}

static bool
is_hash(const redisReply *r)
{
	return r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0;
}

static int
scopes_parse(const char *s, unsigned *bits_r)
{
	unsigned	 bits = 0;
	const char	*p = s;

	while (*p != '\0') {
		size_t n = strcspn(p, ",");

		if (n == 10 && strncmp(p, "imap-proxy", n) == 0)
			bits |= TOK_SCOPE_IMAP;
		else if (n == 4 && strncmp(p, "smtp", n) == 0)
			bits |= TOK_SCOPE_SMTP;
		else if (n == 3 && strncmp(p, "api", n) == 0)
			bits |= TOK_SCOPE_API;
		else if (n == 1 && *p == '*')
			bits |= TOK_SCOPE_ALL;
		else
			return -1;
		p += n;
		if (*p == ',')
			p++;
	}
	if (bits == 0)
		return -1;
	*bits_r = bits;
	return 0;
}

/*
 * Token hash -> info. id: the id the key was built from, or NULL to take
 * the stored one. Returns 1, 0 for an empty hash (no such token) or -1
 * for a corrupt one (logged).
 */
static int
token_parse(const redisReply *h, const char *id, struct tok_token_info *ti)
{
	const char	*s;
	unsigned	 bits;

	memset(ti, 0, sizeof(*ti));
	if (!is_hash(h))
		goto corrupt;
	if (h->elements == 0)
		return 0;
	if (id == NULL)
		id = tok_reply_hash_field(h, "id");
	if (id == NULL || !token_is_wellformed(id))
		goto corrupt;
	snprintf(ti->id, sizeof(ti->id), "%s", id);
	ti->account = tok_reply_hash_field(h, TOK_F_ACCOUNT);
	ti->scopes = tok_reply_hash_field(h, TOK_F_SCOPES);
	ti->description = tok_reply_hash_field(h, TOK_F_DESCRIPTION);
	ti->restrictions = tok_reply_hash_field(h, TOK_F_RESTRICTIONS);
	ti->metadata = tok_reply_hash_field(h, TOK_F_METADATA);
	if (!tok_key_account_is_valid(ti->account) || ti->scopes == NULL ||
	    scopes_parse(ti->scopes, &bits) == -1 ||
	    !parse_ms(tok_reply_hash_field(h, TOK_F_CREATED), &ti->created_ms))
		goto corrupt;
	if (ti->description == NULL)
		ti->description = "";
	if ((s = tok_reply_hash_field(h, TOK_F_EXPIRES)) != NULL &&
	    !parse_ms(s, &ti->expires_ms))
		goto corrupt;
	return 1;
corrupt:
	tok_reply_corrupt(&store_err, "token", id != NULL ? id : "?");
	return -1;
}

static void
token_parse_used(const redisReply *h, struct tok_token_info *ti)
{
	if (!is_hash(h) || h->elements == 0)
		return;
	if (!parse_ms(tok_reply_hash_field(h, TOK_F_USED_TIME), &ti->used_ms))
		ti->used_ms = 0;
	ti->used_ip = tok_reply_hash_field(h, TOK_F_USED_IP);
}

/* restrictions JSON -> CIDR list (*addrs_r malloc'd, NULL if none). */
static int
restrictions_parse(const char *json, struct cidr **addrs_r, int *n_r)
{
	cJSON		*root, *list, *e;
	struct cidr	*addrs = NULL;
	int		 n = 0, cnt;

	*addrs_r = NULL;
	*n_r = 0;
	if (json == NULL)
		return 0;
	if ((root = cJSON_Parse(json)) == NULL || !cJSON_IsObject(root))
		goto fail;
	list = cJSON_GetObjectItemCaseSensitive(root, "addresses");
	if (list != NULL && !cJSON_IsNull(list)) {
		if (!cJSON_IsArray(list) ||
		    (cnt = cJSON_GetArraySize(list)) > TOK_RESTRICT_MAX)
			goto fail;
		if (cnt > 0)
			addrs = xcalloc(cnt, sizeof(*addrs));
		cJSON_ArrayForEach(e, list) {
			if (!cJSON_IsString(e) ||
			    cidr_parse(e->valuestring, &addrs[n]) == -1)
				goto fail;
			n++;
		}
	}
	cJSON_Delete(root);
	*addrs_r = addrs;
	*n_r = n;
	return 0;
fail:
	cJSON_Delete(root);
	free(addrs);
	return -1;
}

/*
 * The lookups carry a small context (the caller's callback and arg, and
 * the function that answers it from the reply); a cancelled lookup frees
 * it through tok_req_set_cancel_fn.
 */
typedef void lookup_fn(void (*cb)(void), void *arg, redisReply *,
    const char *err);

struct lookup {
	lookup_fn	*run;
	void		(*cb)(void);
	void		*arg;
};

static void
lookup_reply(void *varg, redisReply *r, const char *err)
{
	struct lookup	lk = *(struct lookup *)varg;

	free(varg);
	lk.run(lk.cb, lk.arg, r, err);
}

/* One lookup command: "CMD a1 [a2]" (a2 may be NULL). */
static struct tok_req *
lookup_cmd(struct tok *t, lookup_fn *run, void (*cb)(void), void *arg,
    const char *cmd, const char *a1, const char *a2)
{
	struct lookup	*lk = xmalloc(sizeof(*lk));
	struct tok_req	*r;
	const char	*argv[3] = { cmd, a1, a2 };
	size_t		 lens[3] = { strlen(cmd), strlen(a1),
			    a2 != NULL ? strlen(a2) : 0 };

	lk->run = run;
	lk->cb = cb;
	lk->arg = arg;
	r = tok_cmdv(t, lookup_reply, lk, a2 != NULL ? 3 : 2, argv, lens);
	tok_req_set_cancel_fn(r, free);
	return r;
}

/* A command whose reply is nil (or an empty array): keeps the "never
 * from inside the call" rule for input we refuse without asking Redis. */
#define LUA_NIL		"return false"
#define LUA_EMPTY	"return {}"

static void
tg_do(void (*fn)(void), void *arg, redisReply *r, const char *err)
{
	tok_token_cb		*cb = (tok_token_cb *)fn;
	struct tok_token_info	 ti;
	struct tok_token	 t;
	int			 rc;

	if (tok_reply_failed(&store_err, r, err, "token_get")) {
		cb(arg, -1, NULL);
		return;
	}
	if ((rc = token_parse(r, NULL, &ti)) != 1) {
		cb(arg, rc, NULL);
		return;
	}
	memset(&t, 0, sizeof(t));
	memcpy(t.id, ti.id, sizeof(t.id));
	(void)scopes_parse(ti.scopes, &t.scopes);
	t.created_ms = ti.created_ms;
	t.expires_ms = ti.expires_ms;
	t.account = (char *)(uintptr_t)ti.account;
	if (restrictions_parse(ti.restrictions, &t.addrs, &t.naddrs) == -1) {
		tok_reply_corrupt(&store_err, "token", ti.id);
		cb(arg, -1, NULL);
		return;
	}
	cb(arg, 1, &t);
	free(t.addrs);
}

struct tok_req *
tok_token_get(struct tok *t, const char *id, tok_token_cb *cb, void *arg)
{
	struct tok_req	*r;
	char		*key;

	if (!token_is_wellformed(id))
		return lookup_cmd(t, tg_do, (void (*)(void))cb, arg, "EVAL",
		    LUA_EMPTY, "0");
	key = tok_key_token(tok_prefix(t), id);
	r = lookup_cmd(t, tg_do, (void (*)(void))cb, arg, "HGETALL", key,
	    NULL);
	free(key);
	return r;
}

void
tok_token_touch(struct tok *t, const char *id, const char *ip)
{
	char	*key, *ukey, now[24];

	if (!token_is_wellformed(id))
		return;
	if (ip == NULL || strlen(ip) > 64)
		ip = "";
	key = tok_key_token(tok_prefix(t), id);
	ukey = tok_key_token_used(tok_prefix(t), id);
	snprintf(now, sizeof(now), "%lld", str_now_ms());
	tok_cmd(t, NULL, NULL, "EVAL %s 2 %s %s %s %b", lua_touch, key, ukey,
	    now, ip, strlen(ip));
	free(key);
	free(ukey);
}

static void
ag_do(void (*fn)(void), void *arg, redisReply *r, const char *err)
{
	tok_account_cb	*cb = (tok_account_cb *)fn;
	cJSON		*j;

	if (tok_reply_failed(&store_err, r, err, "account_get")) {
		cb(arg, -1, NULL);
		return;
	}
	if (r->type == REDIS_REPLY_NIL) {
		cb(arg, 0, NULL);
		return;
	}
	if (r->type != REDIS_REPLY_STRING ||
	    (j = cJSON_Parse(r->str)) == NULL) {
		tok_reply_corrupt(&store_err, "account", "json");
		cb(arg, -1, NULL);
		return;
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		tok_reply_corrupt(&store_err, "account", "json");
		cb(arg, -1, NULL);
		return;
	}
	cb(arg, 1, j);
	cJSON_Delete(j);
}

struct tok_req *
tok_account_get(struct tok *t, const char *account, tok_account_cb *cb,
    void *arg)
{
	struct tok_req	*r;
	char		*key;

	if (!tok_key_account_is_valid(account))
		return lookup_cmd(t, ag_do, (void (*)(void))cb, arg, "EVAL",
		    LUA_NIL, "0");
	key = tok_key_account(tok_prefix(t), account);
	r = lookup_cmd(t, ag_do, (void (*)(void))cb, arg, "HGET", key,
	    TOK_F_JSON);
	free(key);
	return r;
}

void
tok_account_set_state(struct tok *t, const char *account, const char *state,
    const char *err)
{
	char	*key, *le = NULL, ts[32];
	cJSON	*o;

	if (!tok_key_account_is_valid(account) || state == NULL)
		return;
	if (err != NULL) {
		str_iso8601_format(str_now_ms(), ts, sizeof(ts));
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "response", err);
		cJSON_AddStringToObject(o, "time", ts);
		le = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
	}
	key = tok_key_account(tok_prefix(t), account);
	tok_cmd(t, NULL, NULL, "EVAL %s 1 %s %s %b", lua_set_state, key, state,
	    le != NULL ? le : "", le != NULL ? strlen(le) : (size_t)0);
	free(key);
	cJSON_free(le);
}

static void
sg_do(void (*fn)(void), void *arg, redisReply *r, const char *err)
{
	tok_settings_cb	*cb = (tok_settings_cb *)fn;
	cJSON		*o, *v;

	if (tok_reply_failed(&store_err, r, err, "settings_get")) {
		cb(arg, -1, NULL);
		return;
	}
	if (!is_hash(r)) {
		tok_reply_corrupt(&store_err, "settings", "settings");
		cb(arg, -1, NULL);
		return;
	}
	o = cJSON_CreateObject();
	for (size_t i = 0; i < r->elements; i += 2) {
		const redisReply *k = r->element[i], *s = r->element[i + 1];

		if (k->type != REDIS_REPLY_STRING ||
		    s->type != REDIS_REPLY_STRING ||
		    (v = cJSON_Parse(s->str)) == NULL) {
			cJSON_Delete(o);
			tok_reply_corrupt(&store_err, "settings",
			    k->type == REDIS_REPLY_STRING ? k->str : "?");
			cb(arg, -1, NULL);
			return;
		}
		cJSON_AddItemToObject(o, k->str, v);
	}
	cb(arg, 1, o);
	cJSON_Delete(o);
}

struct tok_req *
tok_settings_get(struct tok *t, tok_settings_cb *cb, void *arg)
{
	struct tok_req	*r;
	char		*key = tok_key_settings(tok_prefix(t));

	r = lookup_cmd(t, sg_do, (void (*)(void))cb, arg, "HGETALL", key,
	    NULL);
	free(key);
	return r;
}

/*
 * Multi-step operations. The op owns the tok_req in flight; each reply
 * moves it to its next step, which ends by calling the caller back and
 * freeing the op.
 */
typedef void op_step(struct tok_op *, const redisReply *);

struct tok_op {
	struct tok		*tok;
	const char		*prefix;
	struct tok_req		*req;
	op_step			*step;
	const char		*what;		/* for logs */
	void			*arg;
	tok_rc_cb		*rc_cb;
	tok_token_list_cb	*list_cb;
	tok_revoke_cb		*revoke_cb;
	tok_account_list_cb	*acct_cb;
	char			*account;
	char			 id[TOKEN_HEX_LEN + 1];
	char			 id2[TOKEN_HEX_LEN + 1];
	char			**ids;
	size_t			 nids;
	bool			 del_account;
	long long		 count;
	/* token create */
	char			*scopes, *desc, *restr, *meta;
	long long		 created_ms, expires_ms;
	/* account list */
	long long		 total;
};

static struct tok_op *
op_new(struct tok *t, const char *what, void *arg)
{
	struct tok_op *op = xcalloc(1, sizeof(*op));

	op->tok = t;
	op->prefix = tok_prefix(t);
	op->what = what;
	op->arg = arg;
	return op;
}

static void
op_free(struct tok_op *op)
{
	for (size_t i = 0; i < op->nids; i++)
		free(op->ids[i]);
	free(op->ids);
	free(op->account);
	free(op->scopes);
	free(op->desc);
	free(op->restr);
	free(op->meta);
	free(op);
}

void
tok_op_cancel(struct tok_op *op)
{
	if (op == NULL)
		return;
	tok_req_cancel(op->req);
	op_free(op);
}

/* Answers rc (with no payload) and frees the op. */
static void
op_done(struct tok_op *op, int rc)
{
	if (op->rc_cb != NULL)
		op->rc_cb(op->arg, rc);
	else if (op->list_cb != NULL)
		op->list_cb(op->arg, rc, NULL, 0);
	else if (op->revoke_cb != NULL)
		op->revoke_cb(op->arg, rc, NULL, 0);
	else if (op->acct_cb != NULL)
		op->acct_cb(op->arg, rc, 0, NULL, 0);
	op_free(op);
}

static void
op_reply(void *arg, redisReply *r, const char *err)
{
	struct tok_op *op = arg;

	op->req = NULL;
	if (tok_reply_failed(&store_err, r, err, op->what)) {
		op_done(op, -1);
		return;
	}
	op->step(op, r);
}

static void
op_send(struct tok_op *op, op_step *step, struct av *av)
{
	op->step = step;
	op->req = tok_cmdv(op->tok, op_reply, op, av->n, av->v, av->l);
}

/* Answers on a later loop turn through step (input refused locally). */
static void
op_later(struct tok_op *op, op_step *step)
{
	op->step = step;
	op->req = tok_cmd(op->tok, op_reply, op, "EVAL %s 0", LUA_NIL);
}

static void
tx_begin(struct tok_op *op)
{
	tok_cmd(op->tok, NULL, NULL, "MULTI");
}

static void
tx_cmd(struct tok_op *op, struct av *av)
{
	tok_cmdv(op->tok, NULL, NULL, av->n, av->v, av->l);
}

static void
tx_exec(struct tok_op *op, op_step *step)
{
	op->step = step;
	op->req = tok_cmd(op->tok, op_reply, op, "EXEC");
}

/* EXEC's reply must be an array of n replies, none an error. */
static bool
tx_ok(struct tok_op *op, const redisReply *r, size_t n)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		tok_reply_err_set(&store_err, "transaction aborted");
		log_error("event=redis_error op=%s reply=\"transaction "
		    "aborted\"", op->what);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (r->element[i]->type == REDIS_REPLY_ERROR) {
			tok_reply_error(&store_err, r->element[i], op->what);
			return false;
		}
	return true;
}

static long long
reply_int(const redisReply *r)
{
	return r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

static void
ids_add(struct tok_op *op, const char *id)
{
	op->ids = xrealloc(op->ids, (op->nids + 1) * sizeof(*op->ids));
	op->ids[op->nids++] = xstrdup(id);
}

/* Copies the well-formed ids of a SMEMBERS reply. */
static void
ids_from_reply(struct tok_op *op, const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    token_is_wellformed(r->element[i]->str))
			ids_add(op, r->element[i]->str);
}

static bool
ids_has(const struct tok_op *op, const char *id)
{
	for (size_t i = 0; i < op->nids; i++)
		if (strcmp(op->ids[i], id) == 0)
			return true;
	return false;
}

static void
cmd_key(struct tok_op *op, const char *cmd, char *key)
{
	struct av av = { 0 };

	av_add(&av, cmd);
	av_add(&av, key);
	tx_cmd(op, &av);
	free(key);
}

static void
cmd_key_member(struct tok_op *op, const char *cmd, char *key, const char *m)
{
	struct av av = { 0 };

	av_add(&av, cmd);
	av_add(&av, key);
	av_add(&av, m);
	tx_cmd(op, &av);
	free(key);
}

/* Queues HEXISTS of the account's record: 1 if the account exists. */
static void
tx_account_check(struct tok_op *op, const char *account)
{
	struct av	 av = { 0 };
	char		*akey = tok_key_account(op->prefix, account);

	av_add(&av, "HEXISTS");
	av_add(&av, akey);
	av_add(&av, TOK_F_JSON);
	tx_cmd(op, &av);
	free(akey);
}

/* ---- PING ---- */

static void
ping_step(struct tok_op *op, const redisReply *r)
{
	(void)r;
	op_done(op, 1);
}

struct tok_op *
tok_ping(struct tok *t, tok_rc_cb *cb, void *arg)
{
	struct tok_op	*op = op_new(t, "ping", arg);
	struct av	 av = { 0 };

	op->rc_cb = cb;
	av_add(&av, "PING");
	op_send(op, ping_step, &av);
	return op;
}

/* ---- token create ---- */

static void
create_undo_step(struct tok_op *op, const redisReply *r)
{
	(void)r;
	op_done(op, 0);
}

static void
create_exec_step(struct tok_op *op, const redisReply *r)
{
	if (!tx_ok(op, r, op->expires_ms > 0 ? 4 : 3)) {
		op_done(op, -1);
		return;
	}
	if (reply_int(r->element[0]) == 1) {
		op_done(op, 1);
		return;
	}
	/* The account was deleted between our check and the transaction,
	 * and its delete did not see this token: take it back. */
	tx_begin(op);
	cmd_key(op, "DEL", tok_key_token(op->prefix, op->id));
	cmd_key_member(op, "SREM", tok_key_account_tokens(op->prefix,
	    op->account), op->id);
	tx_exec(op, create_undo_step);
}

static void
create_check_step(struct tok_op *op, const redisReply *r)
{
	struct av	 av = { 0 };
	char		*key;

	if (reply_int(r) != 1) {
		op_done(op, 0);
		return;
	}
	key = tok_key_token(op->prefix, op->id);
	tx_begin(op);
	/* Checked again inside the transaction: see create_exec_step. */
	tx_account_check(op, op->account);
	av_add(&av, "HSET");
	av_add(&av, key);
	av_add(&av, "id");
	av_add(&av, op->id);
	av_add(&av, TOK_F_ACCOUNT);
	av_add(&av, op->account);
	av_add(&av, TOK_F_SCOPES);
	av_add(&av, op->scopes);
	av_add(&av, TOK_F_DESCRIPTION);
	av_add(&av, op->desc);
	av_add(&av, TOK_F_CREATED);
	av_addll(&av, op->created_ms);
	if (op->restr != NULL) {
		av_add(&av, TOK_F_RESTRICTIONS);
		av_add(&av, op->restr);
	}
	if (op->meta != NULL) {
		av_add(&av, TOK_F_METADATA);
		av_add(&av, op->meta);
	}
	if (op->expires_ms > 0) {
		av_add(&av, TOK_F_EXPIRES);
		av_addll(&av, op->expires_ms);
	}
	tx_cmd(op, &av);
	if (op->expires_ms > 0) {
		/* Redis drops the record by itself once it has expired. */
		memset(&av, 0, sizeof(av));
		av_add(&av, "PEXPIREAT");
		av_add(&av, key);
		av_addll(&av, op->expires_ms);
		tx_cmd(op, &av);
	}
	cmd_key_member(op, "SADD", tok_key_account_tokens(op->prefix,
	    op->account), op->id);
	tx_exec(op, create_exec_step);
	free(key);
}

struct tok_op *
tok_token_create(struct tok *t, const struct tok_token_info *ti,
    tok_rc_cb *cb, void *arg)
{
	struct tok_op	*op = op_new(t, "token_create", arg);
	struct av	 av = { 0 };
	char		*akey;

	op->rc_cb = cb;
	if (!token_is_wellformed(ti->id) ||
	    !tok_key_account_is_valid(ti->account) || ti->scopes == NULL) {
		op_later(op, create_undo_step);
		return op;
	}
	memcpy(op->id, ti->id, sizeof(op->id));
	op->account = xstrdup(ti->account);
	op->scopes = xstrdup(ti->scopes);
	op->desc = xstrdup(ti->description != NULL ? ti->description : "");
	op->restr = ti->restrictions != NULL ? xstrdup(ti->restrictions) : NULL;
	op->meta = ti->metadata != NULL ? xstrdup(ti->metadata) : NULL;
	op->created_ms = ti->created_ms;
	op->expires_ms = ti->expires_ms;
	akey = tok_key_account(op->prefix, ti->account);
	av_add(&av, "HEXISTS");
	av_add(&av, akey);
	av_add(&av, TOK_F_JSON);
	op_send(op, create_check_step, &av);
	free(akey);
	return op;
}

/* ---- token lookups for the admin API ---- */

static void
tx_token_fetch(struct tok_op *op, const char *id)
{
	cmd_key(op, "HGETALL", tok_key_token(op->prefix, id));
	cmd_key(op, "HGETALL", tok_key_token_used(op->prefix, id));
}

static bool
token_is_expired(const struct tok_token_info *ti, long long now)
{
	return ti->expires_ms > 0 && ti->expires_ms <= now;
}

static void
info_step(struct tok_op *op, const redisReply *r)
{
	struct tok_token_info	ti;
	int			rc;

	if (!tx_ok(op, r, 2)) {
		op_done(op, -1);
		return;
	}
	if ((rc = token_parse(r->element[0], op->id, &ti)) != 1) {
		op_done(op, rc);
		return;
	}
	if (token_is_expired(&ti, str_now_ms())) {
		op_done(op, 0);
		return;
	}
	token_parse_used(r->element[1], &ti);
	op->list_cb(op->arg, 1, &ti, 1);
	op_free(op);
}

static void
not_found_step(struct tok_op *op, const redisReply *r)
{
	(void)r;
	op_done(op, 0);
}

struct tok_op *
tok_token_info_get(struct tok *t, const char *id, tok_token_list_cb *cb,
    void *arg)
{
	struct tok_op *op = op_new(t, "token_info", arg);

	op->list_cb = cb;
	if (!token_is_wellformed(id)) {
		op_later(op, not_found_step);
		return op;
	}
	for (int i = 0; i < TOKEN_HEX_LEN; i++)
		op->id[i] = (char)(id[i] | 0x20);	/* hex: lower case */
	tx_begin(op);
	tx_token_fetch(op, op->id);
	tx_exec(op, info_step);
	return op;
}

static int
token_info_cmp(const void *a, const void *b)
{
	const struct tok_token_info *x = a, *y = b;

	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

static void
list_fetch_step(struct tok_op *op, const redisReply *r)
{
	struct tok_token_info	*tis;
	size_t			 n = 0;
	long long		 now = str_now_ms();
	bool			 gone = false;

	if (!tx_ok(op, r, 2 * op->nids)) {
		op_done(op, -1);
		return;
	}
	tis = xcalloc(op->nids + 1, sizeof(*tis));
	for (size_t i = 0; i < op->nids; i++) {
		int rc = token_parse(r->element[2 * i], op->ids[i], &tis[n]);

		if (rc == 0)
			gone = true;	/* expired: Redis dropped it */
		if (rc != 1 || token_is_expired(&tis[n], now))
			continue;	/* a corrupt one was logged */
		token_parse_used(r->element[2 * i + 1], &tis[n]);
		n++;
	}
	qsort(tis, n, sizeof(*tis), token_info_cmp);
	op->list_cb(op->arg, 1, tis, n);
	free(tis);
	if (gone) {
		/* Forget the ids of tokens Redis has dropped (fire and
		 * forget: nothing depends on it). */
		tx_begin(op);
		for (size_t i = 0; i < op->nids; i++)
			if (r->element[2 * i]->elements == 0)
				cmd_key_member(op, "SREM",
				    tok_key_account_tokens(op->prefix,
				    op->account), op->ids[i]);
		tok_cmd(op->tok, NULL, NULL, "EXEC");
	}
	op_free(op);
}

/*
 * Reads an account's token ids: checks the account and takes its id set
 * in one transaction, then step goes on, starting with ids_fetched(). An
 * invalid account id is not found.
 */
static struct tok_op *
ids_fetch(struct tok_op *op, const char *account, op_step *step)
{
	if (!tok_key_account_is_valid(account)) {
		op_later(op, not_found_step);
		return op;
	}
	op->account = xstrdup(account);
	tx_begin(op);
	tx_account_check(op, account);
	cmd_key(op, "SMEMBERS", tok_key_account_tokens(op->prefix, account));
	tx_exec(op, step);
	return op;
}

/* The reply to ids_fetch(): false after answering -1 (failure) or 0 (no
 * such account); true with the ids in op->ids. */
static bool
ids_fetched(struct tok_op *op, const redisReply *r)
{
	if (!tx_ok(op, r, 2)) {
		op_done(op, -1);
		return false;
	}
	if (reply_int(r->element[0]) != 1) {
		op_done(op, 0);
		return false;
	}
	ids_from_reply(op, r->element[1]);
	return true;
}

static void
list_ids_step(struct tok_op *op, const redisReply *r)
{
	if (!ids_fetched(op, r))
		return;
	if (op->nids == 0) {
		op->list_cb(op->arg, 1, NULL, 0);
		op_free(op);
		return;
	}
	tx_begin(op);
	for (size_t i = 0; i < op->nids; i++)
		tx_token_fetch(op, op->ids[i]);
	tx_exec(op, list_fetch_step);
}

struct tok_op *
tok_token_list(struct tok *t, const char *account, tok_token_list_cb *cb,
    void *arg)
{
	struct tok_op *op = op_new(t, "token_list", arg);

	op->list_cb = cb;
	return ids_fetch(op, account, list_ids_step);
}

/* ---- revoke ---- */

static void
tx_publish_revoke(struct tok_op *op, const char *id)
{
	cmd_key_member(op, "PUBLISH", tok_key_channel(op->prefix,
	    TOK_CHANNEL_REVOKE), id);
}

static void
revoke_done_step(struct tok_op *op, const redisReply *r)
{
	if (!tx_ok(op, r, op->account != NULL ? 4 : 3)) {
		op_done(op, -1);
		return;
	}
	if (reply_int(r->element[0]) == 0) {	/* revoked meanwhile */
		op_done(op, 0);
		return;
	}
	op->revoke_cb(op->arg, 1, op->id, 1);
	op_free(op);
}

static void
revoke_find_step(struct tok_op *op, const redisReply *r)
{
	const redisReply	*acct;

	if (!tx_ok(op, r, 2)) {
		op_done(op, -1);
		return;
	}
	/* An id first, then the value as a token (docs/API.md). */
	if (r->element[0]->type == REDIS_REPLY_STRING)
		acct = r->element[0];
	else if (r->element[1]->type == REDIS_REPLY_STRING) {
		acct = r->element[1];
		memcpy(op->id, op->id2, sizeof(op->id));
	} else {
		op_done(op, 0);
		return;
	}
	if (tok_key_account_is_valid(acct->str))
		op->account = xstrdup(acct->str);
	else	/* corrupt: revoke it all the same */
		tok_reply_corrupt(&store_err, "token", op->id);
	tx_begin(op);
	cmd_key(op, "DEL", tok_key_token(op->prefix, op->id));
	cmd_key(op, "DEL", tok_key_token_used(op->prefix, op->id));
	if (op->account != NULL)
		cmd_key_member(op, "SREM", tok_key_account_tokens(op->prefix,
		    op->account), op->id);
	tx_publish_revoke(op, op->id);
	tx_exec(op, revoke_done_step);
}

struct tok_op *
tok_token_revoke(struct tok *t, const char *token_or_id, tok_revoke_cb *cb,
    void *arg)
{
	struct tok_op	*op = op_new(t, "token_revoke", arg);
	struct av	 av = { 0 };
	char		*key;

	op->revoke_cb = cb;
	if (!token_is_wellformed(token_or_id) ||
	    token_id(token_or_id, op->id2) == -1) {
		op_later(op, not_found_step);
		return op;
	}
	for (int i = 0; i < TOKEN_HEX_LEN; i++)
		op->id[i] = (char)(token_or_id[i] | 0x20);
	tx_begin(op);
	key = tok_key_token(op->prefix, op->id);
	av_add(&av, "HGET");
	av_add(&av, key);
	av_add(&av, TOK_F_ACCOUNT);
	tx_cmd(op, &av);
	free(key);
	key = tok_key_token(op->prefix, op->id2);
	av.v[1] = key;
	av.l[1] = strlen(key);
	tx_cmd(op, &av);
	free(key);
	tx_exec(op, revoke_find_step);
	return op;
}

/*
 * Revoking all of an account's tokens (and deleting the account): read
 * the id set, then in one transaction delete each token, read the set
 * again and delete it. A token created between the two steps shows up in
 * that second read and is deleted in a third step, so none survives
 * (tok_token_create checks the account inside its own transaction).
 */
static void
revoke_extra_step(struct tok_op *op, const redisReply *r)
{
	if (r->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < r->elements; i += 3)
			op->count += reply_int(r->element[i]);
	op->revoke_cb(op->arg, 1, NULL, op->count);
	op_free(op);
}

static void
revoke_all_step(struct tok_op *op, const redisReply *r)
{
	size_t		 n = 2 * op->nids + 2 + op->nids;
	const redisReply *again;
	size_t		 extra = 0;

	if (op->del_account)
		n += 3;
	if (!tx_ok(op, r, n)) {
		op_done(op, -1);
		return;
	}
	for (size_t i = 0; i < op->nids; i++)
		op->count += reply_int(r->element[2 * i]);
	again = r->element[2 * op->nids];
	if (again->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < again->elements; i++) {
			const redisReply *e = again->element[i];

			if (e->type != REDIS_REPLY_STRING ||
			    !token_is_wellformed(e->str) || ids_has(op, e->str))
				continue;
			if (extra++ == 0)
				tx_begin(op);
			cmd_key(op, "DEL", tok_key_token(op->prefix, e->str));
			cmd_key(op, "DEL", tok_key_token_used(op->prefix,
			    e->str));
			tx_publish_revoke(op, e->str);
		}
	if (extra > 0) {
		tx_exec(op, revoke_extra_step);
		return;
	}
	op->revoke_cb(op->arg, 1, NULL, op->count);
	op_free(op);
}

static void
revoke_ids_step(struct tok_op *op, const redisReply *r)
{
	if (!ids_fetched(op, r))
		return;
	tx_begin(op);
	for (size_t i = 0; i < op->nids; i++) {
		cmd_key(op, "DEL", tok_key_token(op->prefix, op->ids[i]));
		cmd_key(op, "DEL", tok_key_token_used(op->prefix, op->ids[i]));
	}
	cmd_key(op, "SMEMBERS", tok_key_account_tokens(op->prefix,
	    op->account));
	cmd_key(op, "DEL", tok_key_account_tokens(op->prefix, op->account));
	if (op->del_account) {
		cmd_key(op, "DEL", tok_key_account(op->prefix, op->account));
		cmd_key_member(op, "ZREM", tok_key_accounts(op->prefix),
		    op->account);
		/* Its OAuth2 token cache (sealed tokens) goes with it. */
		cmd_key(op, "DEL", tok_key_oauth_token(op->prefix,
		    op->account));
	}
	for (size_t i = 0; i < op->nids; i++)
		tx_publish_revoke(op, op->ids[i]);
	tx_exec(op, revoke_all_step);
}

static struct tok_op *
revoke_all(struct tok *t, const char *account, bool del_account,
    tok_revoke_cb *cb, void *arg)
{
	struct tok_op *op = op_new(t, del_account ? "account_delete" :
	    "token_revoke_account", arg);

	op->revoke_cb = cb;
	op->del_account = del_account;
	return ids_fetch(op, account, revoke_ids_step);
}

struct tok_op *
tok_token_revoke_account(struct tok *t, const char *account,
    tok_revoke_cb *cb, void *arg)
{
	return revoke_all(t, account, false, cb, arg);
}

struct tok_op *
tok_account_delete(struct tok *t, const char *account, tok_revoke_cb *cb,
    void *arg)
{
	return revoke_all(t, account, true, cb, arg);
}

/* ---- accounts ---- */

static void
put_step(struct tok_op *op, const redisReply *r)
{
	if (!tx_ok(op, r, 5)) {
		op_done(op, -1);
		return;
	}
	op_done(op, reply_int(r->element[0]) == 1 ? 2 : 1);
}

struct tok_op *
tok_account_put(struct tok *t, const char *account, const char *json,
    tok_rc_cb *cb, void *arg)
{
	struct tok_op	*op = op_new(t, "account_put", arg);
	struct av	 av = { 0 };
	char		*akey;
	long long	 now = str_now_ms();

	op->rc_cb = cb;
	if (!tok_key_account_is_valid(account)) {
		op_later(op, not_found_step);
		return op;
	}
	akey = tok_key_account(op->prefix, account);
	tx_begin(op);
	tx_account_check(op, account);
	av_add(&av, "HSET");
	av_add(&av, akey);
	av_add(&av, TOK_F_JSON);
	av_add(&av, json);
	av_add(&av, TOK_F_STATE);
	av_add(&av, "init");
	av_add(&av, TOK_F_UPDATED);
	av_addll(&av, now);
	tx_cmd(op, &av);
	cmd_key_member(op, "HDEL", xstrdup(akey), TOK_F_LAST_ERROR);
	memset(&av, 0, sizeof(av));
	av_add(&av, "HSETNX");
	av_add(&av, akey);
	av_add(&av, TOK_F_CREATED);
	av_addll(&av, now);
	tx_cmd(op, &av);
	memset(&av, 0, sizeof(av));
	av_add(&av, "ZADD");
	av_add(&av, tok_key_accounts(op->prefix));
	av_add(&av, "0");
	av_add(&av, account);
	tx_cmd(op, &av);
	free((char *)(uintptr_t)av.v[1]);
	tx_exec(op, put_step);
	free(akey);
	return op;
}

static void
update_step(struct tok_op *op, const redisReply *r)
{
	long long rc = reply_int(r);

	op_done(op, rc == 1 || rc == 2 ? (int)rc : 0);
}

struct tok_op *
tok_account_update(struct tok *t, const char *account, const char *old_json,
    const char *new_json, tok_rc_cb *cb, void *arg)
{
	struct tok_op	*op = op_new(t, "account_update", arg);
	struct av	 av = { 0 };
	char		*akey;

	op->rc_cb = cb;
	if (!tok_key_account_is_valid(account)) {
		op_later(op, not_found_step);
		return op;
	}
	akey = tok_key_account(op->prefix, account);
	av_add(&av, "EVAL");
	av_add(&av, lua_update);
	av_add(&av, "1");
	av_add(&av, akey);
	av_add(&av, old_json);
	av_add(&av, new_json);
	av_addll(&av, str_now_ms());
	op_send(op, update_step, &av);
	free(akey);
	return op;
}

/* HMGET fields of an account record, in this order. */
static const char *const acct_fields[] = {
	TOK_F_JSON, TOK_F_STATE, TOK_F_LAST_ERROR, TOK_F_CREATED, TOK_F_UPDATED,
};
#define ACCT_NFIELDS	(sizeof(acct_fields) / sizeof(acct_fields[0]))

static void
tx_account_fetch(struct tok_op *op, const char *account)
{
	struct av	 av = { 0 };
	char		*akey = tok_key_account(op->prefix, account);

	av_add(&av, "HMGET");
	av_add(&av, akey);
	for (size_t i = 0; i < ACCT_NFIELDS; i++)
		av_add(&av, acct_fields[i]);
	tx_cmd(op, &av);
	free(akey);
}

static const char *
field_str(const redisReply *r, size_t i)
{
	if (r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
	    r->element[i]->type != REDIS_REPLY_STRING)
		return NULL;
	return r->element[i]->str;
}

/* HMGET reply -> info; json and last_error are allocated for the caller
 * to cJSON_Delete. Returns 1, 0 (no record) or -1 (corrupt, logged). */
static int
account_parse(const redisReply *r, const char *account,
    struct tok_account_info *ai)
{
	const char *s;

	memset(ai, 0, sizeof(*ai));
	ai->account = account;
	if ((ai->json_text = field_str(r, 0)) == NULL)
		return 0;
	ai->json = cJSON_Parse(ai->json_text);
	if (ai->json == NULL || !cJSON_IsObject(ai->json))
		goto corrupt;
	ai->state = field_str(r, 1);
	if (ai->state == NULL)
		ai->state = "init";
	if ((s = field_str(r, 2)) != NULL &&
	    (ai->last_error = cJSON_Parse(s)) == NULL)
		goto corrupt;
	if (!parse_ms(field_str(r, 3), &ai->created_ms))
		ai->created_ms = 0;
	if (!parse_ms(field_str(r, 4), &ai->updated_ms))
		ai->updated_ms = ai->created_ms;
	return 1;
corrupt:
	cJSON_Delete((cJSON *)(uintptr_t)ai->json);
	ai->json = NULL;
	tok_reply_corrupt(&store_err, "account", account);
	return -1;
}

static void
account_info_free(struct tok_account_info *ai)
{
	cJSON_Delete((cJSON *)(uintptr_t)ai->json);
	cJSON_Delete((cJSON *)(uintptr_t)ai->last_error);
}

static void
account_info_step(struct tok_op *op, const redisReply *r)
{
	struct tok_account_info	ai;
	int			rc;

	if (!tx_ok(op, r, 1)) {
		op_done(op, -1);
		return;
	}
	if ((rc = account_parse(r->element[0], op->account, &ai)) != 1) {
		op_done(op, rc);
		return;
	}
	op->acct_cb(op->arg, 1, 1, &ai, 1);
	account_info_free(&ai);
	op_free(op);
}

struct tok_op *
tok_account_info_get(struct tok *t, const char *account,
    tok_account_list_cb *cb, void *arg)
{
	struct tok_op *op = op_new(t, "account_get", arg);

	op->acct_cb = cb;
	if (!tok_key_account_is_valid(account)) {
		op_later(op, not_found_step);
		return op;
	}
	op->account = xstrdup(account);
	tx_begin(op);
	tx_account_fetch(op, account);
	tx_exec(op, account_info_step);
	return op;
}

static void
account_list_fetch_step(struct tok_op *op, const redisReply *r)
{
	struct tok_account_info	*ais;
	size_t			 n = 0;

	if (!tx_ok(op, r, op->nids)) {
		op_done(op, -1);
		return;
	}
	ais = xcalloc(op->nids + 1, sizeof(*ais));
	for (size_t i = 0; i < op->nids; i++)
		if (account_parse(r->element[i], op->ids[i], &ais[n]) == 1)
			n++;		/* corrupt ones were logged */
	op->acct_cb(op->arg, 1, op->total, ais, n);
	for (size_t i = 0; i < n; i++)
		account_info_free(&ais[i]);
	free(ais);
	op_free(op);
}

static void
account_list_ids_step(struct tok_op *op, const redisReply *r)
{
	const redisReply *ids;

	if (!tx_ok(op, r, 2)) {
		op_done(op, -1);
		return;
	}
	op->total = reply_int(r->element[0]);
	ids = r->element[1];
	if (ids->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < ids->elements; i++)
			if (ids->element[i]->type == REDIS_REPLY_STRING &&
			    tok_key_account_is_valid(ids->element[i]->str))
				ids_add(op, ids->element[i]->str);
	if (op->nids == 0) {
		op->acct_cb(op->arg, 1, op->total, NULL, 0);
		op_free(op);
		return;
	}
	tx_begin(op);
	for (size_t i = 0; i < op->nids; i++)
		tx_account_fetch(op, op->ids[i]);
	tx_exec(op, account_list_fetch_step);
}

struct tok_op *
tok_account_list(struct tok *t, long long start, long long count,
    tok_account_list_cb *cb, void *arg)
{
	struct tok_op	*op = op_new(t, "account_list", arg);
	struct av	 av = { 0 };
	char		*key = tok_key_accounts(op->prefix);

	op->acct_cb = cb;
	if (start < 0)
		start = 0;
	if (count < 1)
		count = 1;
	tx_begin(op);
	cmd_key(op, "ZCARD", xstrdup(key));
	/* Every score is 0, so rank order is the ids' byte order. */
	av_add(&av, "ZRANGE");
	av_add(&av, key);
	av_addll(&av, start);
	av_addll(&av, start + count - 1);
	tx_cmd(op, &av);
	tx_exec(op, account_list_ids_step);
	free(key);
	return op;
}

/* ---- settings ---- */

static void
settings_set_step(struct tok_op *op, const redisReply *r)
{
	(void)r;
	op_done(op, 1);
}

struct tok_op *
tok_settings_set(struct tok *t, const char *const *keys,
    const char *const *values, size_t n, tok_rc_cb *cb, void *arg)
{
	struct tok_op	*op = op_new(t, "settings_set", arg);
	struct av	 av = { 0 };
	char		*key;

	op->rc_cb = cb;
	if (n == 0 || n > TOK_SETTINGS_SET_MAX) {
		op_later(op, settings_set_step);
		return op;
	}
	key = tok_key_settings(op->prefix);
	av_add(&av, "HSET");
	av_add(&av, key);
	for (size_t i = 0; i < n; i++) {
		av_add(&av, keys[i]);
		av_add(&av, values[i]);
	}
	op_send(op, settings_set_step, &av);
	free(key);
	return op;
}
