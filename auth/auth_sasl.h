/*
 * Client-facing SASL PLAIN (RFC 4616) and LOGIN decoding, by hand: libsasl2's
 * server side is synchronous, and these two need no more than base64 and a
 * split. Fuzzed in tests/fuzz/fuzz_auth_sasl.c.
 */
#ifndef AUTH_AUTH_SASL_H
#define AUTH_AUTH_SASL_H

#include <stddef.h>

#define AUTH_SASL_FIELD_MAX	1024

/* b64 is the client's response (without CRLF), "=" meaning empty. On
 * success returns 0 with malloc'd user and pass (wipe pass with
 * crypto_free_secret); -1 for bad base64, a missing NUL, an empty user,
 * an over-long field, NUL bytes inside a field, or an authorization
 * identity that differs from the user (we do not support proxy auth). */
int	auth_sasl_plain_decode(const char *b64, size_t len, char **user_r,
	    char **pass_r);
/* AUTH LOGIN: one base64 field (user or password). */
int	auth_sasl_login_decode(const char *b64, size_t len, char **out_r);

#endif
