/*
 * auth/token.c: generation format, token -> id (known vector, either
 * case), strict well-formedness and the scope list.
 */
#include <ctype.h>
#include <string.h>

#include "auth/token.h"
#include "tests/unit/test.h"

#define ZERO_TOKEN							\
	"0000000000000000000000000000000000000000000000000000000000000000"
/* sha256 of 32 zero bytes. */
#define ZERO_ID								\
	"66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"

static bool
is_lower_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' &&
		    s[i] <= 'f'))
			return false;
	return true;
}

TEST(token_generate)
{
	char tok[TOKEN_HEX_LEN + 1], id[TOKEN_HEX_LEN + 1];
	char tok2[TOKEN_HEX_LEN + 1], id2[TOKEN_HEX_LEN + 1];
	char check[TOKEN_HEX_LEN + 1];

	CHECK_INT(token_generate(tok, id), ==, 0);
	CHECK(is_lower_hex(tok, TOKEN_HEX_LEN));
	CHECK(is_lower_hex(id, TOKEN_HEX_LEN));
	CHECK(strcmp(tok, id) != 0);
	CHECK(token_is_wellformed(tok));
	CHECK_INT(token_id(tok, check), ==, 0);
	CHECK_STR(check, id);

	CHECK_INT(token_generate(tok2, id2), ==, 0);
	CHECK(strcmp(tok, tok2) != 0);
	CHECK(strcmp(id, id2) != 0);
}

TEST(token_id)
{
	static const struct {
		const char	*token;
		const char	*id;
	} t[] = {
		{ ZERO_TOKEN, ZERO_ID },
		/* sha256 of bytes 00..1f, in both cases */
		{ "000102030405060708090a0b0c0d0e0f"
		  "101112131415161718191a1b1c1d1e1f",
		  "630dcd2966c4336691125448bbb25b4f"
		  "f412a49c732db2c8abc1b8581bd710dd" },
		{ "000102030405060708090A0B0C0D0E0F"
		  "101112131415161718191A1B1C1D1E1F",
		  "630dcd2966c4336691125448bbb25b4f"
		  "f412a49c732db2c8abc1b8581bd710dd" },
	};
	char id[TOKEN_HEX_LEN + 1];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CHECK_INT(token_id(t[i].token, id), ==, 0);
		CHECK_STR(id, t[i].id);
	}
}

TEST(token_id_case)
{
	char tok[TOKEN_HEX_LEN + 1], id[TOKEN_HEX_LEN + 1];
	char upper[TOKEN_HEX_LEN + 1], id2[TOKEN_HEX_LEN + 1];

	CHECK_INT(token_generate(tok, id), ==, 0);
	for (size_t i = 0; i <= TOKEN_HEX_LEN; i++)
		upper[i] = (char)toupper((unsigned char)tok[i]);
	CHECK_INT(token_id(upper, id2), ==, 0);
	CHECK_STR(id2, id);
}

TEST(token_malformed)
{
	static const char *const t[] = {
		"",
		"00000000000000000000000000000000"
		    "0000000000000000000000000000000",
		"00000000000000000000000000000000"
		    "000000000000000000000000000000000",
		"00000000000000000000000000000000"
		    "0000000000000000000000000000000g",
		"g0000000000000000000000000000000"
		    "00000000000000000000000000000000",
		"0000000000000000000000000000000 "
		    "00000000000000000000000000000000",
		" 0000000000000000000000000000000"
		    "00000000000000000000000000000000",
		"00000000000000000000000000000000"
		    "0000000000000000000000000000000\n",
		"0x000000000000000000000000000000"
		    "00000000000000000000000000000000",
		"-0000000000000000000000000000000"
		    "00000000000000000000000000000000",
	};
	char id[TOKEN_HEX_LEN + 1];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		strcpy(id, "untouched");
		CHECK(!token_is_wellformed(t[i]));
		CHECK_INT(token_id(t[i], id), ==, -1);
	}
	CHECK(!token_is_wellformed(NULL));
	CHECK_INT(token_id(NULL, id), ==, -1);
	CHECK(token_is_wellformed(ZERO_TOKEN));
	CHECK(token_is_wellformed(ZERO_ID));
}

TEST(token_scope)
{
	static const struct {
		const char	*scope;
		bool		 ok;
	} t[] = {
		{ "imap-proxy", true },
		{ "smtp", true },
		{ "api", true },
		{ "*", true },
		{ "", false },
		{ "imap", false },
		{ "IMAP-proxy", false },
		{ "SMTP", false },
		{ "smtp ", false },
		{ " api", false },
		{ "**", false },
		{ "imap-proxy\n", false },
		{ "api,smtp", false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK_INT(token_scope_is_valid(t[i].scope), ==, t[i].ok);
	CHECK(!token_scope_is_valid(NULL));
}
