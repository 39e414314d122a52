/*
 * admin/account_json.c: every account field, valid and invalid, with the
 * exact dotted field named in the error; secrets sealed (no plaintext in
 * the record, opens back only with the right AAD); the public view; PUT
 * merging.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "admin/account_json.h"
#include "common/crypto.h"
#include "tests/unit/test.h"

#define KEY	"unit-test secret for account_json"

static void
key_load(void)
{
	char err[128];

	crypto_reset();
	CHECK_INT(crypto_add_secret((const uint8_t *)KEY, strlen(KEY), err,
	    sizeof(err)), ==, 0);
}

/* Runs account_json_create on text; returns the record or NULL. */
static cJSON *
create(const char *text, struct account_json_err *e)
{
	cJSON *body = cJSON_Parse(text), *rec;

	if (body == NULL) {
		fprintf(stderr, "  bad test JSON: %s\n", text);
		return NULL;
	}
	rec = account_json_create(body, e);
	cJSON_Delete(body);
	return rec;
}

static const struct {
	const char	*body;
	const char	*field;		/* NULL: valid */
} cases[] = {
	/* minimal accounts: IMAP only, SMTP only, OAuth2 only */
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"imap.example.com\","
	  "\"port\":993}}", NULL },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"10.0.0.1\",\"port\":25}}",
	  NULL },
	{ "{\"account\":\"a\",\"oauth2\":{\"provider\":\"p\",\"auth\":"
	  "{\"user\":\"u@example.com\"}}}", NULL },
	/* neither imap nor smtp nor oauth2 */
	{ "{\"account\":\"a\"}", "" },
	{ "{\"account\":\"a\",\"name\":\"x\"}", "" },
	{ "{\"account\":\"a\",\"imap\":null}", "" },
	/* the body itself */
	{ "[]", "" },
	{ "\"x\"", "" },
	{ "{\"account\":\"a\",\"account\":\"b\",\"smtp\":{\"host\":\"h\","
	  "\"port\":25}}", "account" },
	/* account */
	{ "{\"smtp\":{\"host\":\"h\",\"port\":25}}", "account" },
	{ "{\"account\":\"\",\"smtp\":{\"host\":\"h\",\"port\":25}}",
	  "account" },
	{ "{\"account\":1,\"smtp\":{\"host\":\"h\",\"port\":25}}", "account" },
	{ "{\"account\":\"a:b\",\"smtp\":{\"host\":\"h\",\"port\":25}}",
	  "account" },
	{ "{\"account\":\"a b\",\"smtp\":{\"host\":\"h\",\"port\":25}}",
	  "account" },
	{ "{\"account\":\"a/b\",\"smtp\":{\"host\":\"h\",\"port\":25}}",
	  "account" },
	{ "{\"account\":\"A.z_0@x+y-1\",\"smtp\":{\"host\":\"h\","
	  "\"port\":25}}", NULL },
	/* unknown fields, at every level */
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":25},"
	  "\"foo\":1}", "foo" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":25,"
	  "\"foo\":1}}", "smtp.foo" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":25,"
	  "\"maxConnections\":5}}", "smtp.maxConnections" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,\"auth\":"
	  "{\"user\":\"u\",\"x\":1}}}", "imap.auth.x" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,\"tls\":"
	  "{\"minVersion\":\"x\"}}}", "imap.tls.minVersion" },
	{ "{\"account\":\"a\",\"oauth2\":{\"provider\":\"p\",\"auth\":"
	  "{\"user\":\"u\"},\"x\":1}}", "oauth2.x" },
	{ "{\"account\":\"a\",\"oauth2\":{\"provider\":\"p\",\"auth\":"
	  "{\"user\":\"u\",\"pass\":\"x\"}}}", "oauth2.auth.pass" },
	/* imap/smtp: type */
	{ "{\"account\":\"a\",\"imap\":[]}", "imap" },
	{ "{\"account\":\"a\",\"smtp\":\"h:25\"}", "smtp" },
	/* host */
	{ "{\"account\":\"a\",\"imap\":{\"port\":993}}", "imap.host" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"\",\"port\":993}}",
	  "imap.host" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":5,\"port\":993}}",
	  "imap.host" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"a b\",\"port\":993}}",
	  "imap.host" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"-a.com\",\"port\":993}}",
	  "imap.host" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"a..com\",\"port\":993}}",
	  "imap.host" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\\u0000x\",\"port\":25}}",
	  NULL },	/* cJSON stops the string at NUL: "h" */
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"2001:db8::1\","
	  "\"port\":993}}", NULL },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"mail.example.com.\","
	  "\"port\":993}}", NULL },
	/* port */
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\"}}", "imap.port" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":0}}",
	  "imap.port" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":65536}}",
	  "imap.port" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":99.5}}",
	  "imap.port" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":\"993\"}}",
	  "imap.port" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":-1}}",
	  "smtp.port" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":65535}}",
	  NULL },
	/* secure, starttls */
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"secure\":\"yes\"}}", "imap.secure" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1,"
	  "\"secure\":1}}", "smtp.secure" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"starttls\":\"maybe\"}}", "imap.starttls" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1,"
	  "\"starttls\":true}}", "smtp.starttls" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1,"
	  "\"starttls\":\"never\",\"secure\":false}}", NULL },
	/* auth */
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"auth\":\"u:p\"}}", "imap.auth" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"auth\":{\"pass\":\"p\"}}}", "imap.auth.user" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"auth\":{\"user\":\"\"}}}", "imap.auth.user" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1,"
	  "\"auth\":{\"user\":\"u\",\"pass\":7}}}", "smtp.auth.pass" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1,"
	  "\"auth\":{\"user\":\"u\",\"pass\":\"p\",\"pass\":\"q\"}}}",
	  "smtp.auth.pass" },
	/* tls */
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"tls\":true}}", "imap.tls" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"tls\":{\"rejectUnauthorized\":\"no\"}}}",
	  "imap.tls.rejectUnauthorized" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1,"
	  "\"tls\":{\"rejectUnauthorized\":false}}}", NULL },
	/* sentMailPath */
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"sentMailPath\":\"\"}}", "imap.sentMailPath" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"sentMailPath\":[\"Sent\"]}}", "imap.sentMailPath" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"sentMailPath\":null}}", NULL },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1,"
	  "\"sentMailPath\":\"Sent Items\"}}", NULL },
	/* maxConnections */
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"maxConnections\":0}}", "imap.maxConnections" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"maxConnections\":1001}}", "imap.maxConnections" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"maxConnections\":\"5\"}}", "imap.maxConnections" },
	{ "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":1,"
	  "\"maxConnections\":1000}}", NULL },
	/* oauth2 */
	{ "{\"account\":\"a\",\"oauth2\":true}", "oauth2" },
	{ "{\"account\":\"a\",\"oauth2\":{\"auth\":{\"user\":\"u\"}}}",
	  "oauth2.provider" },
	{ "{\"account\":\"a\",\"oauth2\":{\"provider\":\"\",\"auth\":"
	  "{\"user\":\"u\"}}}", "oauth2.provider" },
	{ "{\"account\":\"a\",\"oauth2\":{\"provider\":\"p\"}}",
	  "oauth2.auth" },
	{ "{\"account\":\"a\",\"oauth2\":{\"provider\":\"p\",\"auth\":{}}}",
	  "oauth2.auth.user" },
	{ "{\"account\":\"a\",\"oauth2\":{\"provider\":\"p\",\"auth\":"
	  "{\"user\":\"u\"},\"refreshToken\":5}}", "oauth2.refreshToken" },
	{ "{\"account\":\"a\",\"oauth2\":{\"provider\":\"p\",\"auth\":"
	  "{\"user\":\"u\"},\"accessToken\":\"\"}}", "oauth2.accessToken" },
	{ "{\"account\":\"a\",\"oauth2\":{\"provider\":\"p\",\"auth\":"
	  "{\"user\":\"u\"},\"expires\":\"tomorrow\"}}", "oauth2.expires" },
	{ "{\"account\":\"a\",\"oauth2\":{\"provider\":\"p\",\"auth\":"
	  "{\"user\":\"u\"},\"expires\":\"2030-01-02T03:04:05Z\"}}", NULL },
	/* name, email, proxy */
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"name\":5}", "name" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"email\":\"nope\"}", "email" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"email\":\"a b@c\"}", "email" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"proxy\":\"ftp://x\"}", "proxy" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"proxy\":\"socks5://127.0.0.1:1080\",\"name\":\"N\","
	  "\"email\":\"u@example.com\"}", NULL },
	/* imapIndexer */
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"imapIndexer\":\"slow\"}", "imapIndexer" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"imapIndexer\":1}", "imapIndexer" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"imapIndexer\":\"fast\"}", NULL },
	/* path */
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"path\":[]}", "path" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"path\":5}", "path" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"path\":[\"INBOX\",7]}", "path.1" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"path\":\"*\"}", NULL },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"path\":[\"INBOX\",\"Sent\"]}", NULL },
	/* verify: accepted, not stored */
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"verify\":\"yes\"}", "verify" },
	{ "{\"account\":\"a\",\"smtp\":{\"host\":\"h\",\"port\":1},"
	  "\"verify\":true}", NULL },
};

TEST(account_json_fields)
{
	key_load();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct account_json_err	 e;
		cJSON			*rec = create(cases[i].body, &e);

		if (cases[i].field == NULL) {
			if (rec == NULL)
				fprintf(stderr, "  case %zu: %s: %s\n", i,
				    e.field, e.message);
			CHECK(rec != NULL);
		} else {
			if (rec != NULL)
				fprintf(stderr, "  case %zu accepted\n", i);
			CHECK(rec == NULL);
			if (rec == NULL) {
				CHECK_STR(e.field, cases[i].field);
				CHECK_INT(e.status, ==, 400);
				CHECK(e.message[0] != '\0');
			}
		}
		cJSON_Delete(rec);
	}
	crypto_reset();
}

TEST(account_json_defaults)
{
	struct account_json_err	 e;
	cJSON			*rec, *imap;
	char			*txt;

	key_load();
	rec = create("{\"verify\":false,\"path\":\"INBOX\",\"imap\":{\"port\":"
	    "993,\"host\":\"h\"},\"account\":\"a\"}", &e);
	CHECK(rec != NULL);
	if (rec == NULL)
		return;
	txt = cJSON_PrintUnformatted(rec);
	CHECK_STR(txt, "{\"account\":\"a\",\"imap\":{\"host\":\"h\",\"port\":993,"
	    "\"secure\":false,\"starttls\":\"required\",\"tls\":"
	    "{\"rejectUnauthorized\":true}},\"path\":[\"INBOX\"]}");
	cJSON_free(txt);
	imap = cJSON_GetObjectItem(rec, "imap");
	CHECK(cJSON_GetObjectItem(rec, "verify") == NULL);
	CHECK(cJSON_GetObjectItem(imap, "auth") == NULL);
	cJSON_Delete(rec);
	crypto_reset();
}

static void
check_sealed(const cJSON *obj, const char *key, const char *account,
    const char *path, const char *plain)
{
	const cJSON	*v = cJSON_GetObjectItem(obj, key);
	char		*aad, *out = NULL;

	CHECK(cJSON_IsString(v));
	if (!cJSON_IsString(v))
		return;
	CHECK(crypto_is_sealed(v->valuestring));
	aad = account_json_aad(account, path);
	CHECK_INT(crypto_open(v->valuestring, aad, &out, NULL), ==, 0);
	CHECK_STR(out, plain);
	crypto_free_secret(&out);
	free(aad);
	/* Bound to its place: another account or field does not open it. */
	aad = account_json_aad("other", path);
	CHECK_INT(crypto_open(v->valuestring, aad, &out, NULL), ==, -1);
	free(aad);
	aad = account_json_aad(account, "imap.auth.user");
	CHECK_INT(crypto_open(v->valuestring, aad, &out, NULL), ==, -1);
	free(aad);
}

#define FULL								\
	"{\"account\":\"acc1\",\"name\":\"N\",\"email\":\"u@example.com\","	\
	"\"imap\":{\"host\":\"imap.example.com\",\"port\":993,\"secure\":true,"	\
	"\"auth\":{\"user\":\"u\",\"pass\":\"imapPASSWORD\"},"		\
	"\"maxConnections\":4},"					\
	"\"smtp\":{\"host\":\"smtp.example.com\",\"port\":465,\"secure\":true,"	\
	"\"auth\":{\"user\":\"u\",\"pass\":\"smtpPASSWORD\"}},"		\
	"\"oauth2\":{\"provider\":\"p\",\"auth\":{\"user\":\"u@g.com\"},"	\
	"\"refreshToken\":\"REFRESHtoken\",\"accessToken\":\"ACCESStoken\"}}"

TEST(account_json_secrets)
{
	struct account_json_err	 e;
	cJSON			*rec, *pub;
	char			*txt;

	key_load();
	rec = create(FULL, &e);
	CHECK(rec != NULL);
	if (rec == NULL)
		return;
	txt = cJSON_PrintUnformatted(rec);
	CHECK(strstr(txt, "imapPASSWORD") == NULL);
	CHECK(strstr(txt, "smtpPASSWORD") == NULL);
	CHECK(strstr(txt, "REFRESHtoken") == NULL);
	CHECK(strstr(txt, "ACCESStoken") == NULL);
	cJSON_free(txt);
	check_sealed(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "imap"),
	    "auth"), "pass", "acc1", "imap.auth.pass", "imapPASSWORD");
	check_sealed(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "smtp"),
	    "auth"), "pass", "acc1", "smtp.auth.pass", "smtpPASSWORD");
	check_sealed(cJSON_GetObjectItem(rec, "oauth2"), "refreshToken",
	    "acc1", "oauth2.refreshToken", "REFRESHtoken");
	check_sealed(cJSON_GetObjectItem(rec, "oauth2"), "accessToken",
	    "acc1", "oauth2.accessToken", "ACCESStoken");

	/* The public view has no secret, sealed or not. */
	pub = account_json_public(rec);
	txt = cJSON_PrintUnformatted(pub);
	CHECK(strstr(txt, "$pg1$") == NULL);
	CHECK(strstr(txt, "pass") == NULL);
	CHECK(strstr(txt, "Token") == NULL);
	CHECK(strstr(txt, "\"auth\":{\"user\":\"u\"}") != NULL);
	CHECK(strstr(txt, "\"maxConnections\":4") != NULL);
	cJSON_free(txt);
	cJSON_Delete(pub);
	cJSON_Delete(rec);

	/* No key loaded: refused, not stored in clear. */
	crypto_reset();
	rec = create(FULL, &e);
	CHECK(rec == NULL);
	CHECK_INT(e.status, ==, 500);
	CHECK_STR(e.field, "imap.auth.pass");
	CHECK(strstr(e.message, "imapPASSWORD") == NULL);
	cJSON_Delete(rec);
}

static cJSON *
update(const cJSON *stored, const char *text, const char *account,
    struct account_json_err *e)
{
	cJSON *body = cJSON_Parse(text), *rec;

	CHECK(body != NULL);
	rec = account_json_update(stored, body, account, e);
	cJSON_Delete(body);
	return rec;
}

TEST(account_json_update)
{
	struct account_json_err	 e;
	cJSON			*rec, *up, *auth;
	const cJSON		*old_pass;

	key_load();
	rec = create(FULL, &e);
	CHECK(rec != NULL);
	if (rec == NULL)
		return;
	old_pass = cJSON_GetObjectItem(cJSON_GetObjectItem(
	    cJSON_GetObjectItem(rec, "imap"), "auth"), "pass");

	/* Omitted pass keeps the stored one while the server stays (the
	 * host compared without case); other fields stay. */
	up = update(rec, "{\"imap\":{\"host\":\"IMAP.example.com\",\"port\":993,"
	    "\"secure\":true,\"auth\":{\"user\":\"u2\"}}}", "acc1", &e);
	CHECK(up != NULL);
	if (up != NULL) {
		auth = cJSON_GetObjectItem(cJSON_GetObjectItem(up, "imap"),
		    "auth");
		CHECK_STR(cJSON_GetObjectItem(auth, "user")->valuestring, "u2");
		CHECK_STR(cJSON_GetObjectItem(auth, "pass")->valuestring,
		    old_pass->valuestring);
		CHECK_STR(cJSON_GetObjectItem(up, "name")->valuestring, "N");
		CHECK(cJSON_GetObjectItem(up, "smtp") != NULL);
		CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(up, "imap"),
		    "maxConnections") == NULL);
		cJSON_Delete(up);
	}
	/* Omitted auth keeps the stored auth. */
	up = update(rec, "{\"imap\":{\"host\":\"imap.example.com\",\"port\":993,"
	    "\"secure\":true,\"tls\":{\"rejectUnauthorized\":true}}}", "acc1",
	    &e);
	CHECK(up != NULL);
	if (up != NULL) {
		auth = cJSON_GetObjectItem(cJSON_GetObjectItem(up, "imap"),
		    "auth");
		CHECK_STR(cJSON_GetObjectItem(auth, "user")->valuestring, "u");
		CHECK(cJSON_GetObjectItem(auth, "pass") != NULL);
		cJSON_Delete(up);
	}
	/* A new pass is sealed anew. */
	up = update(rec, "{\"smtp\":{\"host\":\"h\",\"port\":1,\"auth\":"
	    "{\"user\":\"u\",\"pass\":\"newPW\"}}}", "acc1", &e);
	CHECK(up != NULL);
	if (up != NULL) {
		check_sealed(cJSON_GetObjectItem(cJSON_GetObjectItem(up, "smtp"),
		    "auth"), "pass", "acc1", "smtp.auth.pass", "newPW");
		cJSON_Delete(up);
	}
	/* null removes; the account must keep a server. */
	up = update(rec, "{\"smtp\":null,\"name\":null}", "acc1", &e);
	CHECK(up != NULL);
	if (up != NULL) {
		CHECK(cJSON_GetObjectItem(up, "smtp") == NULL);
		CHECK(cJSON_GetObjectItem(up, "name") == NULL);
		cJSON_Delete(up);
	}
	up = update(rec, "{\"smtp\":null,\"imap\":null,\"oauth2\":null}",
	    "acc1", &e);
	CHECK(up == NULL);
	CHECK_STR(e.field, "");
	/* Errors name the field; the id cannot change. */
	up = update(rec, "{\"imap\":{\"host\":\"h\",\"port\":0}}", "acc1", &e);
	CHECK(up == NULL);
	CHECK_STR(e.field, "imap.port");
	up = update(rec, "{\"account\":\"acc2\"}", "acc1", &e);
	CHECK(up == NULL);
	CHECK_STR(e.field, "account");
	up = update(rec, "{\"account\":\"acc1\",\"bogus\":1}", "acc1", &e);
	CHECK(up == NULL);
	CHECK_STR(e.field, "bogus");
	cJSON_Delete(rec);
	crypto_reset();
}

/*
 * A PUT that moves imap or smtp (host, port, secure, starttls) must give
 * the password again: the stored one is never sent to a server it was not
 * given for, nor in the clear to the same one.
 */
TEST(account_json_update_moved)
{
	static const struct {
		const char	*body;
		const char	*field;		/* NULL: accepted */
	} moved[] = {
		/* auth omitted, or given without pass: each change refused */
		{ "{\"imap\":{\"host\":\"attacker.example\",\"port\":993,"
		  "\"secure\":true}}", "imap.auth.pass" },
		{ "{\"imap\":{\"host\":\"attacker.example\",\"port\":143,"
		  "\"starttls\":\"never\",\"auth\":{\"user\":\"u\"}}}",
		  "imap.auth.pass" },
		{ "{\"imap\":{\"host\":\"imap.example.com\",\"port\":143,"
		  "\"secure\":true}}", "imap.auth.pass" },
		{ "{\"imap\":{\"host\":\"imap.example.com\",\"port\":993}}",
		  "imap.auth.pass" },
		{ "{\"imap\":{\"host\":\"imap.example.com\",\"port\":993,"
		  "\"secure\":true,\"starttls\":\"never\"}}", "imap.auth.pass" },
		{ "{\"smtp\":{\"host\":\"10.6.6.6\",\"port\":465,\"secure\":true,"
		  "\"auth\":{\"user\":\"u\"}}}", "smtp.auth.pass" },
		{ "{\"name\":\"x\",\"smtp\":{\"host\":\"smtp.example.com\","
		  "\"port\":25}}", "smtp.auth.pass" },
		/* with the password: fine */
		{ "{\"imap\":{\"host\":\"new.example.com\",\"port\":143,"
		  "\"auth\":{\"user\":\"u\",\"pass\":\"again\"}}}", NULL },
		/* the same server: the stored password stays */
		{ "{\"imap\":{\"host\":\"imap.example.com\",\"port\":993,"
		  "\"secure\":true,\"maxConnections\":2,\"auth\":{\"user\":"
		  "\"other\"}}}", NULL },
		{ "{\"smtp\":{\"host\":\"smtp.example.com\",\"port\":465,"
		  "\"secure\":true,\"starttls\":\"required\"}}", NULL },
		/* a bad auth is named as such first */
		{ "{\"imap\":{\"host\":\"attacker.example\",\"port\":993,"
		  "\"auth\":\"u\"}}", "imap.auth" },
		/* removal needs no password */
		{ "{\"imap\":null}", NULL },
	};
	struct account_json_err	 e;
	cJSON			*rec, *up;
	char			 msg[256];

	key_load();
	rec = create(FULL, &e);
	CHECK(rec != NULL);
	if (rec == NULL)
		return;
	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		up = update(rec, moved[i].body, "acc1", &e);
		if (moved[i].field == NULL) {
			if (up == NULL)
				fprintf(stderr, "  refused: %s (%s)\n",
				    moved[i].body, e.message);
			CHECK(up != NULL);
			cJSON_Delete(up);
			continue;
		}
		if (up != NULL)
			fprintf(stderr, "  accepted: %s\n", moved[i].body);
		CHECK(up == NULL);
		cJSON_Delete(up);
		CHECK_INT(e.status, ==, 400);
		CHECK_STR(e.field, moved[i].field);
		if (strstr(moved[i].field, ".pass") == NULL)
			continue;
		snprintf(msg, sizeof(msg), "%s is required when %.4s.host, "
		    "port, secure, starttls or tls.rejectUnauthorized change",
		    moved[i].field, moved[i].field);
		if (strcmp(e.message, msg) != 0)
			fprintf(stderr, "  message: %s\n", e.message);
		CHECK(strcmp(e.message, msg) == 0);
	}
	cJSON_Delete(rec);

	/* Nothing stored to protect: an imap without password moves. */
	rec = create("{\"account\":\"acc1\",\"imap\":{\"host\":\"a.example\","
	    "\"port\":993,\"auth\":{\"user\":\"u\"}}}", &e);
	CHECK(rec != NULL);
	up = update(rec, "{\"imap\":{\"host\":\"b.example\",\"port\":143}}",
	    "acc1", &e);
	CHECK(up != NULL);
	cJSON_Delete(up);
	cJSON_Delete(rec);
	crypto_reset();
}

/*
 * The password of a proxy URL never shows: masked in the public view,
 * with the userinfo running to the last '@'; a PUT of the masked form
 * keeps the stored URL, any other value replaces it.
 */
TEST(account_json_proxy_mask)
{
	static const struct {
		const char *in, *out;
	} masks[] = {
		{ "socks5://user:pw@host:1080", "socks5://user:****@host:1080" },
		{ "http://user@host:8080", "http://user@host:8080" },
		{ "socks://host:1080", "socks://host:1080" },
		{ "https://u:@host", "https://u:@host" },
		{ "socks5://u:p:w@host", "socks5://u:****@host" },
		{ "socks5://u:p@w@host:1", "socks5://u:****@host:1" },
		{ "HTTP://u:a/b@host/", "HTTP://u:****@host/" },
		{ "socks4://:pw@h", "socks4://:****@h" },
	};
	struct account_json_err	 e;
	cJSON			*rec, *pub, *up;
	char			*m;

	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		m = account_json_proxy_mask(masks[i].in);
		CHECK_STR(m, masks[i].out);
		free(m);
	}
	CHECK(account_json_proxy_is_masked("socks5://u:****@h",
	    "socks5://u:pw@h"));
	CHECK(!account_json_proxy_is_masked("socks5://u:****@h",
	    "socks5://u:****@h"));
	CHECK(!account_json_proxy_is_masked("socks5://u:****@h2",
	    "socks5://u:pw@h"));

	key_load();
	rec = create("{\"account\":\"acc1\",\"imap\":{\"host\":\"h\","
	    "\"port\":1},\"proxy\":\"socks5://u:s3cr:t@x@h:1080\"}", &e);
	CHECK(rec != NULL);
	if (rec == NULL)
		return;
	pub = account_json_public(rec);
	CHECK_STR(cJSON_GetObjectItem(pub, "proxy")->valuestring,
	    "socks5://u:****@h:1080");
	cJSON_Delete(pub);
	up = update(rec, "{\"proxy\":\"socks5://u:****@h:1080\"}", "acc1", &e);
	CHECK(up != NULL);
	if (up != NULL) {
		CHECK_STR(cJSON_GetObjectItem(up, "proxy")->valuestring,
		    "socks5://u:s3cr:t@x@h:1080");
		cJSON_Delete(up);
	}
	up = update(rec, "{\"proxy\":\"socks5://u:****@other:1080\"}", "acc1",
	    &e);
	CHECK(up != NULL);
	if (up != NULL) {
		CHECK_STR(cJSON_GetObjectItem(up, "proxy")->valuestring,
		    "socks5://u:****@other:1080");
		cJSON_Delete(up);
	}
	cJSON_Delete(rec);
	crypto_reset();
}
