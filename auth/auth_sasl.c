/*
 * SASL PLAIN: [authzid] NUL authcid NUL passwd, each UTF-8 without NUL.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/auth_sasl.h"
#include "common/crypto.h"
#include "common/str.h"
#include "common/xmalloc.h"

static uint8_t *
auth_sasl_b64(const char *b64, size_t len, size_t *n_r)
{
	if (len == 1 && b64[0] == '=') {
		*n_r = 0;
		return (uint8_t *)xstrdup("");
	}
	if (len > 4 * (3 * AUTH_SASL_FIELD_MAX + 2) / 3 + 4)
		return NULL;
	return str_b64_decode(b64, len, n_r);
}

int
auth_sasl_plain_decode(const char *b64, size_t len, char **user_r,
    char **pass_r)
{
	uint8_t		*buf;
	size_t		 n, l1, l2, l3;
	const char	*authz, *user, *pass;
	int		 rc = -1;

	*user_r = *pass_r = NULL;
	if ((buf = auth_sasl_b64(b64, len, &n)) == NULL)
		return -1;
	authz = (const char *)buf;
	l1 = strnlen(authz, n);
	if (l1 >= n)
		goto out;
	user = authz + l1 + 1;
	l2 = strnlen(user, n - l1 - 1);
	if (l1 + 1 + l2 >= n)
		goto out;
	pass = user + l2 + 1;
	l3 = n - l1 - l2 - 2;
	if (strnlen(pass, l3) != l3)	/* a third NUL */
		goto out;
	if (l2 == 0 || l1 > AUTH_SASL_FIELD_MAX || l2 > AUTH_SASL_FIELD_MAX ||
	    l3 > AUTH_SASL_FIELD_MAX)
		goto out;
	if (l1 != 0 && (l1 != l2 || memcmp(authz, user, l1) != 0))
		goto out;
	*user_r = xstrndup(user, l2);
	*pass_r = xstrndup(pass, l3);
	rc = 0;
out:
	OPENSSL_cleanse(buf, n);
	free(buf);
	return rc;
}

int
auth_sasl_login_decode(const char *b64, size_t len, char **out_r)
{
	uint8_t	*buf;
	size_t	 n;

	*out_r = NULL;
	if ((buf = auth_sasl_b64(b64, len, &n)) == NULL)
		return -1;
	if (n > AUTH_SASL_FIELD_MAX || strnlen((char *)buf, n) != n) {
		OPENSSL_cleanse(buf, n);
		free(buf);
		return -1;
	}
	*out_r = (char *)buf;
	return 0;
}
