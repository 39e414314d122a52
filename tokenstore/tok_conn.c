/*
 * Connection slots: one Lua script makes "drop expired, count, add" atomic,
 * using the Redis server's clock so that hosts with skewed clocks agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "tokenstore/tok_conn.h"
#include "tokenstore/tok_keys.h"

static const char tok_conn_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end\n"
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)\n"
    "return 1\n";

static const char tok_conn_refresh_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)\n"
    "return 1\n";

struct tok_conn_ctx {
	tok_conn_cb	*cb;
	void		*arg;
};

static void
tok_conn_reply_cb(void *arg, redisReply *reply, const char *err)
{
	struct tok_conn_ctx	*c = arg;
	int			 rc = -1;

	(void)err;
	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		rc = reply->integer == 1 ? 1 : 0;
	c->cb(c->arg, rc);
	free(c);
}


struct tok_req *
tok_conn_acquire(struct tok *t, const char *account, const char *sess_id,
    int max, tok_conn_cb *cb, void *arg)
{
	struct tok_conn_ctx	*c = xcalloc(1, sizeof(*c));
	char			*key;
	struct tok_req		*r;

	c->cb = cb;
	c->arg = arg;
	key = tok_key_conn(tok_prefix(t), account);
	r = tok_cmd(t, tok_conn_reply_cb, c, "EVAL %s 1 %s %d %d %s",
	    tok_conn_lua, key, max, TOK_CONN_TTL_MS, sess_id);
	tok_req_set_cancel_fn(r, free);
	free(key);
	return r;
}

void
tok_conn_refresh(struct tok *t, const char *account, const char *sess_id)
{
	char *key = tok_key_conn(tok_prefix(t), account);

	(void)tok_cmd(t, NULL, NULL, "EVAL %s 1 %s %d %s",
	    tok_conn_refresh_lua, key, TOK_CONN_TTL_MS, sess_id);
	free(key);
}

void
tok_conn_release(struct tok *t, const char *account, const char *sess_id)
{
	char *key = tok_key_conn(tok_prefix(t), account);

	(void)tok_cmd(t, NULL, NULL, "ZREM %s %s", key, sess_id);
	free(key);
}
