/*
 * Access tokens: 32 random bytes shown once as 64 hex characters. Only the
 * id is stored: the hex SHA-256 of the 32 raw bytes (EmailEngine's id).
 */
#ifndef AUTH_TOKEN_H
#define AUTH_TOKEN_H

#include <stdbool.h>

#define TOKEN_RAW_LEN	32
#define TOKEN_HEX_LEN	64	/* token and id alike */

/* Fills token_r and id_r (TOKEN_HEX_LEN + 1 bytes each). -1 on RNG failure. */
int	 token_generate(char *token_r, char *id_r);
/* Id of a token given as 64 hex chars (either case). -1 if malformed. */
int	 token_id(const char *token, char *id_r);
/* true if s is 64 hex characters (a token or an id). */
bool	 token_is_wellformed(const char *s);

/* Scopes a token may carry. */
bool	 token_scope_is_valid(const char *scope);

#endif
