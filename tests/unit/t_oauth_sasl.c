/*
 * upstream/up_sasl.c, OAuth2 side: the XOAUTH2 message (Google, Microsoft)
 * and the OAUTHBEARER GS2 message (RFC 7628 3.1) byte for byte, the choice
 * of mechanism from the preferred one and the advertised ones, and the
 * answer to the server's error challenge (empty line / ^A).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "tests/unit/test.h"
#include "upstream/up_sasl.h"

static void
target(struct up_target *t, const char *user, const char *token,
    const char *mech)
{
	memset(t, 0, sizeof(*t));
	t->host = (char *)"imap.example.com";
	t->port = 993;
	t->cred = UP_CRED_OAUTH2;
	t->user = (char *)user;
	t->secret = (char *)token;
	t->oauth_mech = (char *)mech;
}

/* The decoded initial response of a new session, or NULL. */
static char *
initial(const struct up_target *t, const char *caps, char *mech,
    size_t mechlen, int *rc_r)
{
	struct up_sasl	*s = NULL;
	char		 err[160];
	uint8_t		*raw;
	size_t		 len;
	const char	*ir;

	*rc_r = up_sasl_new(t, "imap", caps, true, &s, err, sizeof(err));
	if (*rc_r != 1)
		return NULL;
	snprintf(mech, mechlen, "%s", up_sasl_mech(s));
	ir = up_sasl_initial(s);
	raw = str_b64_decode(ir, strlen(ir), &len);
	up_sasl_free(&s);
	return (char *)raw;
}

TEST(oauth_sasl_xoauth2_message)
{
	struct up_target	 t;
	char			 mech[32], *raw;
	int			 rc;

	target(&t, "user@example.com", "ya29.token-123", NULL);
	raw = initial(&t, "XOAUTH2 OAUTHBEARER PLAIN", mech, sizeof(mech), &rc);
	CHECK_INT(rc, ==, 1);
	CHECK_STR(mech, "XOAUTH2");
	CHECK_STR(raw, "user=user@example.com\001auth=Bearer ya29.token-123"
	    "\001\001");
	free(raw);
}

TEST(oauth_sasl_oauthbearer_message)
{
	struct up_target	 t;
	char			 mech[32], *raw;
	int			 rc;

	/* RFC 7628 3.1: a= is a saslname, "," and "=" escaped. */
	target(&t, "we,ird=user@example.com", "tok", "OAUTHBEARER");
	raw = initial(&t, "OAUTHBEARER XOAUTH2", mech, sizeof(mech), &rc);
	CHECK_INT(rc, ==, 1);
	CHECK_STR(mech, "OAUTHBEARER");
	CHECK_STR(raw, "n,a=we=2Cird=3Duser@example.com,\001"
	    "host=imap.example.com\001port=993\001auth=Bearer tok\001\001");
	free(raw);
}

TEST(oauth_sasl_mechanism_choice)
{
	static const struct {
		const char *pref, *caps, *want;	/* want NULL: rc 0 */
	} cases[] = {
		{ NULL, "XOAUTH2 OAUTHBEARER", "XOAUTH2" },
		{ NULL, "OAUTHBEARER", "OAUTHBEARER" },
		{ NULL, "PLAIN LOGIN", NULL },
		{ NULL, "", NULL },
		{ "OAUTHBEARER", "XOAUTH2 OAUTHBEARER", "OAUTHBEARER" },
		{ "OAUTHBEARER", "XOAUTH2", "XOAUTH2" },
		{ "XOAUTH2", "OAUTHBEARER", "OAUTHBEARER" },
		{ "xoauth2", "xoauth2", "XOAUTH2" },
		{ "XOAUTH2", "PLAIN", NULL },
	};
	struct up_target	 t;
	char			 mech[32], *raw;
	int			 rc;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		target(&t, "u", "t", cases[i].pref);
		mech[0] = '\0';
		raw = initial(&t, cases[i].caps, mech, sizeof(mech), &rc);
		free(raw);
		if (cases[i].want == NULL) {
			CHECK_INT(rc, ==, 0);
		} else {
			CHECK_INT(rc, ==, 1);
			CHECK_STR(mech, cases[i].want);
		}
	}
}

TEST(oauth_sasl_error_challenge)
{
	/* {"status":"401","schemes":"bearer","scope":"mail"} */
	static const char challenge[] = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoi"
	    "YmVhcmVyIiwic2NvcGUiOiJtYWlsIn0=";
	struct up_target	 t;
	struct up_sasl		*s;
	const char		*resp;
	char			 err[160];

	target(&t, "u", "t", "XOAUTH2");
	CHECK_INT(up_sasl_new(&t, "imap", "XOAUTH2", true, &s, err,
	    sizeof(err)), ==, 1);
	CHECK(up_sasl_oauth_error(s) == NULL);
	CHECK_INT(up_sasl_step(s, challenge, &resp, err, sizeof(err)), ==, 0);
	CHECK_STR(resp, "");		/* Google: an empty line */
	CHECK(strstr(up_sasl_oauth_error(s), "401") != NULL);
	/* Only one challenge: the final NO must follow. */
	CHECK_INT(up_sasl_step(s, challenge, &resp, err, sizeof(err)), ==, -1);
	up_sasl_free(&s);

	target(&t, "u", "t", "OAUTHBEARER");
	CHECK_INT(up_sasl_new(&t, "smtp", "OAUTHBEARER", true, &s, err,
	    sizeof(err)), ==, 1);
	CHECK_INT(up_sasl_step(s, challenge, &resp, err, sizeof(err)), ==, 0);
	CHECK_STR(resp, "AQ==");	/* RFC 7628 3.2.3: %x01 */
	up_sasl_free(&s);

	/* Not base64: a protocol error, not a crash. */
	target(&t, "u", "t", "XOAUTH2");
	CHECK_INT(up_sasl_new(&t, "imap", "XOAUTH2", true, &s, err,
	    sizeof(err)), ==, 1);
	CHECK_INT(up_sasl_step(s, "%%%", &resp, err, sizeof(err)), ==, -1);
	up_sasl_free(&s);
}

TEST(oauth_sasl_rejects_control_characters)
{
	struct up_target	 t;
	struct up_sasl		*s = NULL;
	char			 err[160];

	/* A ^A inside the token would end the auth= field early. */
	target(&t, "u", "SECRET\001en", NULL);
	CHECK_INT(up_sasl_new(&t, "imap", "XOAUTH2", true, &s, err,
	    sizeof(err)), ==, -1);
	CHECK(s == NULL);
	CHECK(strstr(err, "SECRET") == NULL);	/* never quotes the token */
	target(&t, "u\r\n", "token", NULL);
	CHECK_INT(up_sasl_new(&t, "imap", "XOAUTH2", true, &s, err,
	    sizeof(err)), ==, -1);
	target(&t, "u", "token", "PLAIN");
	CHECK_INT(up_sasl_new(&t, "imap", "PLAIN XOAUTH2", true, &s, err,
	    sizeof(err)), ==, 1);		/* unknown preference: XOAUTH2 */
	CHECK_STR(up_sasl_mech(s), "XOAUTH2");
	up_sasl_free(&s);
}

TEST(oauth_sasl_long_token)
{
	struct up_target	 t;
	char			 mech[32], *raw, *tok;
	int			 rc;

	/* Microsoft's access tokens run to a few KiB. */
	tok = malloc(6001);
	memset(tok, 'x', 6000);
	tok[6000] = '\0';
	target(&t, "user@contoso.example", tok, "XOAUTH2");
	raw = initial(&t, "XOAUTH2", mech, sizeof(mech), &rc);
	CHECK_INT(rc, ==, 1);
	CHECK(raw != NULL && strlen(raw) == strlen("user=user@contoso.example"
	    "\001auth=Bearer \001\001") + 6000);
	free(raw);
	free(tok);
}

/* Password side: PLAIN, when it is our first choice among the server's, is
 * built here (RFC 4616, empty authzid) without libsasl2; a server that
 * offers SCRAM still gets SCRAM from libsasl2; PLAIN takes no challenge. */
TEST(sasl_plain_by_hand)
{
	struct up_target	 t;
	struct up_sasl		*s = NULL;
	char			 mech[32], err[160], *raw;
	const char		*resp = NULL;
	int			 rc;

	memset(&t, 0, sizeof(t));
	t.host = (char *)"imap.example.com";
	t.port = 993;
	t.cred = UP_CRED_PASSWORD;
	t.user = (char *)"alice@example.com";
	t.secret = (char *)"p\xc3\xa4ss word";
	raw = initial(&t, "PLAIN LOGIN", mech, sizeof(mech), &rc);
	CHECK_INT(rc, ==, 1);
	CHECK_STR(mech, "PLAIN");
	CHECK(raw != NULL && raw[0] == '\0');
	CHECK_STR(raw + 1, "alice@example.com");
	CHECK_STR(raw + 1 + strlen("alice@example.com") + 1,
	    "p\xc3\xa4ss word");
	free(raw);

	raw = initial(&t, "SCRAM-SHA-256 PLAIN", mech, sizeof(mech), &rc);
	CHECK_INT(rc, ==, 1);
	CHECK_STR(mech, "SCRAM-SHA-256");
	free(raw);

	CHECK_INT(up_sasl_new(&t, "imap", "PLAIN", true, &s, err,
	    sizeof(err)), ==, 1);
	CHECK_INT(up_sasl_step(s, "", &resp, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "unexpected PLAIN challenge");
	up_sasl_free(&s);

	/* Nothing we speak on offer: 0 (the protocol's own LOGIN next). */
	raw = initial(&t, "GSSAPI", mech, sizeof(mech), &rc);
	CHECK_INT(rc, ==, 0);
	CHECK(raw == NULL);
}
