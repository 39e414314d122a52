/*
 * libFuzzer target for auth/auth_sasl: the client's SASL PLAIN and LOGIN
 * responses arrive before login, from anyone.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_sasl.h"
#include "common/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *user, *pass, *one;

	memcpy(text, data, size);
	text[size] = '\0';
	if (auth_sasl_plain_decode(text, size, &user, &pass) == 0) {
		assert(user != NULL && pass != NULL && user[0] != '\0');
		assert(strlen(user) <= AUTH_SASL_FIELD_MAX);
		free(user);
		crypto_free_secret(&pass);
	} else
		assert(user == NULL && pass == NULL);
	if (auth_sasl_login_decode(text, size, &one) == 0)
		crypto_free_secret(&one);
	free(text);
	return 0;
}
