/*
 * admin/admin_oauth2.c, PUT of an application: a stored client secret is
 * kept only while it goes to the same token endpoint. A PUT that changes
 * provider, tokenUrl or tenant must give clientSecret again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "admin/account_json.h"
#include "admin/admin_http.h"
#include "common/crypto.h"
#include "tests/unit/test.h"

#define KEY	"unit-test secret for admin_oauth2"

static cJSON *
app_json(const char *body, const cJSON *stored, const char *id,
    struct account_json_err *e)
{
	cJSON *b = cJSON_Parse(body), *r;

	if (b == NULL) {
		fprintf(stderr, "  bad test JSON: %s\n", body);
		return NULL;
	}
	r = admin_oauth2_app_json(b, stored, id, e);
	cJSON_Delete(b);
	return r;
}

TEST(admin_oauth2_put_moves_secret)
{
	static const struct {
		const char	*stored;
		const char	*body;
		const char	*field;		/* NULL: accepted */
	} cases[] = {
#define CUSTOM	"{\"id\":\"a\",\"provider\":\"custom\",\"clientId\":\"c\"," \
		"\"clientSecret\":\"S\",\"tokenUrl\":\"https://idp.example/t\"}"
#define OUTLOOK	"{\"id\":\"a\",\"provider\":\"outlook\",\"clientId\":\"c\"," \
		"\"clientSecret\":\"S\",\"tenant\":\"contoso\"}"
#define PUBLIC	"{\"id\":\"a\",\"provider\":\"custom\",\"clientId\":\"c\"," \
		"\"tokenUrl\":\"https://idp.example/t\"}"
		/* The endpoint moves: the secret must come with the PUT. */
		{ CUSTOM, "{\"tokenUrl\":\"https://evil.example/t\"}",
		  "clientSecret" },
		{ CUSTOM, "{\"tokenUrl\":\"https://idp.example/t2\","
		  "\"name\":\"n\"}", "clientSecret" },
		{ CUSTOM, "{\"provider\":\"gmail\",\"tokenUrl\":null}",
		  "clientSecret" },
		{ OUTLOOK, "{\"provider\":\"custom\",\"tenant\":null,"
		  "\"tokenUrl\":\"https://evil.example/t\"}", "clientSecret" },
		{ OUTLOOK, "{\"tenant\":\"fabrikam\"}", "clientSecret" },
		{ OUTLOOK, "{\"tenant\":null}", "clientSecret" },
		/* ... and is then accepted, or dropped on purpose. */
		{ CUSTOM, "{\"tokenUrl\":\"https://new.example/t\","
		  "\"clientSecret\":\"S2\"}", NULL },
		{ CUSTOM, "{\"tokenUrl\":\"https://new.example/t\","
		  "\"clientSecret\":null}", NULL },
		{ OUTLOOK, "{\"tenant\":\"fabrikam\",\"clientSecret\":\"S2\"}",
		  NULL },
		/* The same endpoint keeps the stored secret. */
		{ CUSTOM, "{\"tokenUrl\":\"https://idp.example/t\","
		  "\"name\":\"n\",\"scopes\":[\"x\"]}", NULL },
		{ OUTLOOK, "{\"provider\":\"outlook\",\"clientId\":\"c2\"}",
		  NULL },
		/* A validation error wins over the missing secret. */
		{ CUSTOM, "{\"tokenUrl\":\"http://evil.example/t\"}", "tokenUrl" },
		/* No secret stored: nothing to protect. */
		{ PUBLIC, "{\"tokenUrl\":\"https://other.example/t\"}", NULL },
	};
	struct account_json_err	 e;
	cJSON			*stored, *r;
	char			 err[128];
	const cJSON		*sec;

	crypto_reset();
	CHECK_INT(crypto_add_secret((const uint8_t *)KEY, strlen(KEY), err,
	    sizeof(err)), ==, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		stored = app_json(cases[i].stored, NULL, NULL, &e);
		CHECK(stored != NULL);
		if (stored == NULL)
			continue;
		r = app_json(cases[i].body, stored, "a", &e);
		if (cases[i].field == NULL) {
			if (r == NULL)
				fprintf(stderr, "  case %zu refused: %s\n", i,
				    e.message);
			CHECK(r != NULL);
		} else {
			if (r != NULL)
				fprintf(stderr, "  case %zu accepted\n", i);
			CHECK(r == NULL);
			CHECK_INT(e.status, ==, 400);
			CHECK_STR(e.field, cases[i].field);
			if (strcmp(cases[i].field, "clientSecret") == 0)
				CHECK_STR(e.message, "clientSecret is required "
				    "when provider, tokenUrl or tenant change");
		}
		cJSON_Delete(r);
		cJSON_Delete(stored);
	}

	/* Unchanged endpoint: the very same sealed secret is kept. */
	stored = app_json(CUSTOM, NULL, NULL, &e);
	r = app_json("{\"name\":\"renamed\"}", stored, "a", &e);
	CHECK(r != NULL);
	if (r != NULL && stored != NULL) {
		sec = cJSON_GetObjectItemCaseSensitive(r, "clientSecret");
		CHECK(cJSON_IsString(sec));
		if (cJSON_IsString(sec))
			CHECK_STR(sec->valuestring, cJSON_GetObjectItem(stored,
			    "clientSecret")->valuestring);
	}
	cJSON_Delete(r);
	cJSON_Delete(stored);
	crypto_reset();
#undef CUSTOM
#undef OUTLOOK
#undef PUBLIC
}
