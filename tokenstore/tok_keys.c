/*
 * Builds Redis key names from the configured prefix. Account ids and token
 * ids are validated before they get here (account ids never contain ':'
 * or spaces), so the key space maps one to one onto the records.
 */
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "tokenstore/tok_keys.h"

bool
tok_key_account_is_valid(const char *account)
{
	size_t n;

	if (account == NULL)
		return false;
	n = strspn(account, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._@+-");
	return n > 0 && n <= TOK_ACCOUNT_ID_MAX && account[n] == '\0';
}

char *
tok_key_token(const char *prefix, const char *id)
{
	return xasprintf("%stok:%s", prefix, id);
}

char *
tok_key_token_used(const char *prefix, const char *id)
{
	return xasprintf("%stok:%s:used", prefix, id);
}

char *
tok_key_account(const char *prefix, const char *account)
{
	return xasprintf("%sacct:%s", prefix, account);
}

char *
tok_key_account_tokens(const char *prefix, const char *account)
{
	return xasprintf("%sacct:%s:tokens", prefix, account);
}

char *
tok_key_accounts(const char *prefix)
{
	return xasprintf("%saccounts", prefix);
}

char *
tok_key_settings(const char *prefix)
{
	return xasprintf("%ssettings", prefix);
}

char *
tok_key_conn(const char *prefix, const char *account)
{
	return xasprintf("%sconn:%s", prefix, account);
}

char *
tok_key_channel(const char *prefix, const char *channel)
{
	return xasprintf("%s%s", prefix, channel);
}

char *
tok_key_oauth_apps(const char *prefix)
{
	return xasprintf("%soauth2:apps", prefix);
}

char *
tok_key_oauth_app(const char *prefix, const char *app)
{
	return xasprintf("%soauth2:app:%s", prefix, app);
}

char *
tok_key_oauth_token(const char *prefix, const char *account)
{
	return xasprintf("%soauth2:token:%s", prefix, account);
}

char *
tok_key_oauth_lock(const char *prefix, const char *account)
{
	return xasprintf("%soauth2:lock:%s", prefix, account);
}
