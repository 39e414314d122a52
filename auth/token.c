/*
 * Access tokens: generation and the token -> id hash. The raw token bytes
 * exist only briefly on the stack and are wiped; callers own the hex text.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/token.h"
#include "common/str.h"

/* Scopes are matched exactly: "IMAP-proxy" is a typo, not an alias. */
static const char *const token_scopes[] = {
	"imap-proxy",
	"smtp",
	"api",
	"*",
};

static int
raw_to_id(const uint8_t *raw, char *id_r)
{
	uint8_t		md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen;

	if (EVP_Digest(raw, TOKEN_RAW_LEN, md, &mdlen, EVP_sha256(),
	    NULL) != 1 || mdlen != TOKEN_HEX_LEN / 2)
		return -1;
	str_hex_encode(md, mdlen, id_r);
	return 0;
}

int
token_generate(char *token_r, char *id_r)
{
	uint8_t	raw[TOKEN_RAW_LEN];
	int	rc = -1;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		goto fail;
	if (raw_to_id(raw, id_r) == -1)
		goto fail;
	str_hex_encode(raw, sizeof(raw), token_r);
	rc = 0;
fail:
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

int
token_id(const char *token, char *id_r)
{
	uint8_t	raw[TOKEN_RAW_LEN];
	int	rc = -1;

	/* str_hex_decode accepts either case, so "AB.." and "ab.." agree. */
	if (!token_is_wellformed(token) ||
	    str_hex_decode(token, raw, sizeof(raw)) == -1)
		goto fail;
	if (raw_to_id(raw, id_r) == -1)
		goto fail;
	rc = 0;
fail:
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

bool
token_is_wellformed(const char *s)
{
	return s != NULL && str_is_hex(s, TOKEN_HEX_LEN);
}

bool
token_scope_is_valid(const char *scope)
{
	if (scope == NULL)
		return false;
	for (size_t i = 0; i < sizeof(token_scopes) / sizeof(token_scopes[0]);
	    i++)
		if (strcmp(scope, token_scopes[i]) == 0)
			return true;
	return false;
}
