/*
 * common/crypto.c: sealing round trips, a known answer computed outside
 * OpenSSL (Python HKDF + pyca AESGCM), tamper and format strictness, key
 * rotation and the key ring's limits. Every test leaves the ring empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tests/unit/test.h"

#define SECRET_A	"correct horse battery staple"
#define SECRET_B	"a different secret, 32+ bytes long"
#define KID_A		"dc26d759"	/* see t_crypto known-answer test */
#define AAD		"acct_42\npassword"

static void
use_secrets(const char *current, const char *old)
{
	char err[128];

	crypto_reset();
	err[0] = '\0';
	CHECK_INT(crypto_add_secret((const uint8_t *)current, strlen(current),
	    err, sizeof(err)), ==, 0);
	CHECK_STR(err, "");
	if (old != NULL)
		CHECK_INT(crypto_add_secret((const uint8_t *)old, strlen(old),
		    err, sizeof(err)), ==, 0);
}

/* true if sealed opens under aad to exactly (want, wantlen). */
static bool
opens_to(const char *sealed, const char *aad, const void *want,
    size_t wantlen)
{
	char	*plain = NULL;
	size_t	 len = 0;
	bool	 ok;

	if (crypto_open(sealed, aad, &plain, &len) != 0)
		return false;
	ok = len == wantlen && memcmp(plain, want, len) == 0 &&
	    plain[len] == '\0';
	crypto_free_secret(&plain);
	return ok;
}

/* The three fields of a sealed value, as text. */
struct parts {
	char	kid[CRYPTO_KID_LEN + 1];
	char	nonce[64];
	char	ct[16 * 1024];
};

static void
split(const char *s, struct parts *p)
{
	const char *a, *b;

	memset(p, 0, sizeof(*p));
	CHECK(strncmp(s, "$pg1$", 5) == 0);
	a = strchr(s + 5, '$');
	CHECK(a != NULL);
	b = a != NULL ? strchr(a + 1, '$') : NULL;
	CHECK(b != NULL);
	if (a == NULL || b == NULL)
		return;
	snprintf(p->kid, sizeof(p->kid), "%.*s", (int)(a - s - 5), s + 5);
	snprintf(p->nonce, sizeof(p->nonce), "%.*s", (int)(b - a - 1), a + 1);
	snprintf(p->ct, sizeof(p->ct), "%s", b + 1);
}

static uint8_t *
b64dec(const char *s, size_t *len_r)
{
	uint8_t *p = str_b64_decode(s, strlen(s), len_r);

	CHECK(p != NULL);
	return p;
}

TEST(crypto_round_trip)
{
	static uint8_t	bin[10 * 1024];
	static const struct {
		const uint8_t	*plain;
		size_t		 len;
		const char	*aad;
	} t[] = {
		{ (const uint8_t *)"", 0, AAD },
		{ (const uint8_t *)"x", 1, AAD },
		{ (const uint8_t *)"\0", 1, "" },
		{ (const uint8_t *)"hunter2", 7, "" },
		{ (const uint8_t *)"pass word with $ and \n", 22, "a\nb" },
		{ bin, sizeof(bin), AAD },
	};

	CHECK_INT(crypto_random(bin, sizeof(bin)), ==, 0);
	bin[0] = '\0';	/* binary: a NUL early, not only at the end */
	use_secrets(SECRET_A, NULL);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *s = crypto_seal(t[i].plain, t[i].len, t[i].aad);

		CHECK(s != NULL);
		if (s == NULL)
			continue;
		CHECK(crypto_is_sealed(s));
		CHECK(opens_to(s, t[i].aad, t[i].plain, t[i].len));
		free(s);
	}
	crypto_reset();
}

TEST(crypto_seal_str)
{
	char	*s, *plain = NULL, kid[CRYPTO_KID_LEN + 1];
	size_t	 len = 99;

	use_secrets(SECRET_A, NULL);
	CHECK_STR(crypto_current_kid(), KID_A);
	s = crypto_seal_str("hunter2", AAD);
	CHECK(s != NULL);
	CHECK_INT(crypto_open(s, AAD, &plain, NULL), ==, 0);
	CHECK_STR(plain, "hunter2");
	crypto_free_secret(&plain);
	CHECK(plain == NULL);
	crypto_free_secret(&plain);	/* NULL is fine */
	crypto_free_secret(NULL);
	CHECK_INT(crypto_sealed_kid(s, kid), ==, 0);
	CHECK_STR(kid, KID_A);
	free(s);

	/* A NULL aad is the empty one. */
	s = crypto_seal_str("x", NULL);
	CHECK_INT(crypto_open(s, "", &plain, &len), ==, 0);
	CHECK_INT(len, ==, 1);
	crypto_free_secret(&plain);
	CHECK(opens_to(s, NULL, "x", 1));
	CHECK(!opens_to(s, AAD, "x", 1));
	free(s);
	CHECK(crypto_seal_str(NULL, AAD) == NULL);
	crypto_reset();
}

/*
 * Values computed with Python's hmac (HKDF, RFC 5869) and pyca AESGCM under
 * nonce 00..0b: pins the salt, info, kid and text format, so data sealed
 * today still opens after a refactor.
 */
TEST(crypto_known_answer)
{
	static const char hunter2[] = "$pg1$" KID_A "$AAECAwQFBgcICQoL$"
	    "p2SZoZ8mrsbdTimSmxYfRBFi18Y6zCg=";
	static const char empty[] = "$pg1$" KID_A "$AAECAwQFBgcICQoL$"
	    "VSoQMtiWNyX0mV5iZBKW1Q==";

	use_secrets(SECRET_A, NULL);
	CHECK(opens_to(hunter2, AAD, "hunter2", 7));
	CHECK(opens_to(empty, "", "", 0));
	CHECK(!opens_to(hunter2, "", "hunter2", 7));
	use_secrets("0123456789abcdef", NULL);	/* the 16-byte minimum */
	CHECK_STR(crypto_current_kid(), "a6805603");
	CHECK(!opens_to(hunter2, AAD, "hunter2", 7));
	crypto_reset();
}

TEST(crypto_nonce_is_fresh)
{
	char *s1, *s2;

	use_secrets(SECRET_A, NULL);
	s1 = crypto_seal_str("same text", AAD);
	s2 = crypto_seal_str("same text", AAD);
	CHECK(s1 != NULL && s2 != NULL);
	if (s1 != NULL && s2 != NULL) {
		struct parts *p1 = xmalloc(sizeof(*p1)), *p2 = xmalloc(
		    sizeof(*p2));

		CHECK(strcmp(s1, s2) != 0);
		split(s1, p1);
		split(s2, p2);
		CHECK(strcmp(p1->nonce, p2->nonce) != 0);
		free(p1);
		free(p2);
	}
	free(s1);
	free(s2);
	crypto_reset();
}

/* Byte-level changes to the decoded nonce or ciphertext||tag. */
TEST(crypto_tamper_bytes)
{
	enum { NONCE, CT };
	enum { FLIP, CUT, GROW };
	static const struct {
		int	field;
		int	op;
		int	arg;	/* FLIP: index (< 0: from the end); CUT: len */
	} t[] = {
		{ NONCE, FLIP, 0 },
		{ NONCE, FLIP, -1 },
		{ NONCE, CUT, 11 },
		{ NONCE, GROW, 0 },
		{ CT, FLIP, 0 },		/* ciphertext */
		{ CT, FLIP, 4 },
		{ CT, FLIP, -16 },		/* first tag byte */
		{ CT, FLIP, -1 },		/* last tag byte */
		{ CT, CUT, 20 },		/* one byte short */
		{ CT, CUT, 16 },		/* tag only */
		{ CT, CUT, 15 },		/* shorter than a tag */
		{ CT, CUT, 0 },
		{ CT, GROW, 0 },
	};
	struct parts	*p = xmalloc(sizeof(*p));
	char		*s;

	use_secrets(SECRET_A, NULL);
	s = crypto_seal_str("hello", AAD);	/* 5 + 16 bytes of ct||tag */
	CHECK(s != NULL);
	if (s == NULL)
		goto out;
	split(s, p);
	CHECK(opens_to(s, AAD, "hello", 5));
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint8_t	*buf, *grown;
		size_t	 len;
		char	*b64, *bad;

		buf = b64dec(t[i].field == NONCE ? p->nonce : p->ct, &len);
		if (buf == NULL)
			continue;
		CHECK_INT(len, ==, t[i].field == NONCE ? 12 : 21);
		grown = xmalloc(len + 1);
		memcpy(grown, buf, len);
		free(buf);
		switch (t[i].op) {
		case FLIP:
			grown[t[i].arg < 0 ? (int)len + t[i].arg : t[i].arg] ^=
			    0x01;
			break;
		case CUT:
			len = (size_t)t[i].arg;
			break;
		default:
			grown[len++] = 0;
			break;
		}
		b64 = str_b64_encode(grown, len);
		bad = xasprintf("$pg1$%s$%s$%s", p->kid,
		    t[i].field == NONCE ? b64 : p->nonce,
		    t[i].field == CT ? b64 : p->ct);
		if (opens_to(bad, AAD, "hello", 5))
			fprintf(stderr, "  case %zu opened\n", i);
		{
			char *plain = (char *)0x1;

			CHECK_INT(crypto_open(bad, AAD, &plain, NULL), ==, -1);
			CHECK(plain == NULL);
		}
		free(bad);
		free(b64);
		free(grown);
	}
out:
	free(s);
	free(p);
	crypto_reset();
}

/*
 * Fills a template: '<' kid, '[' nonce, '{' ct||tag, and '>', ']', '}' the
 * same minus their last character; anything else is literal.
 */
static void
expand(const char *tmpl, const struct parts *p, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *tmpl != '\0'; tmpl++) {
		const char	*f = NULL;
		size_t		 n;

		switch (*tmpl) {
		case '<':
		case '>':
			f = p->kid;
			break;
		case '[':
		case ']':
			f = p->nonce;
			break;
		case '{':
		case '}':
			f = p->ct;
			break;
		}
		if (f == NULL) {
			f = tmpl;
			n = 1;
		} else {
			n = strlen(f);
			if (strchr(">]}", *tmpl) != NULL && n > 0)
				n--;
		}
		if (o + n >= outlen)
			break;
		memcpy(out + o, f, n);
		o += n;
	}
	out[o] = '\0';
}

/* Text-level damage: prefix, kid, field separators, base64. */
TEST(crypto_tamper_text)
{
	static const char *const tmpl[] = {
		"$pg1$<$[${",		/* the original: must open */
		"$pg2$<$[${",
		"$PG1$<$[${",
		"pg1$<$[${",
		" $pg1$<$[${",
		"$pg1$<$[${ ",
		"$pg1$<$[${\n",
		"$pg1$<$[${$",
		"$pg1$<$[${${",
		"$pg1$<$[{",
		"$pg1$<${",
		"$pg1$<$[$",
		"$pg1$<$${",
		"$pg1$$[${",
		"$pg1$<0$[${",		/* 9-char kid */
		"$pg1$>$[${",		/* 7-char kid */
		"$pg1$00000000$[${",	/* unknown kid */
		"$pg1$DC26D759$[${",	/* kid A, upper case */
		"$pg1$<$[=${",
		"$pg1$<$ [${",
		"$pg1$<$[${=",
		"$pg1$<$[$!{",
		"$pg1$<$[$ {",
		"$pg1$<$]${",		/* 15 base64 chars of nonce */
		"$pg1$<$[$}",		/* not a multiple of 4 */
		"$pg1$",
		"$pg1",
		"",
	};
	struct parts	*p = xmalloc(sizeof(*p));
	char		*s, kid[CRYPTO_KID_LEN + 1];

	use_secrets(SECRET_A, NULL);
	s = crypto_seal_str("hello", AAD);
	CHECK(s != NULL);
	if (s == NULL)
		goto out;
	split(s, p);
	CHECK_STR(p->kid, KID_A);
	for (size_t i = 0; i < sizeof(tmpl) / sizeof(tmpl[0]); i++) {
		char	buf[256], *plain = NULL;
		int	rc;

		expand(tmpl[i], p, buf, sizeof(buf));
		rc = crypto_open(buf, AAD, &plain, NULL);
		if (rc != (i == 0 ? 0 : -1))
			fprintf(stderr, "  \"%s\": %d\n", buf, rc);
		CHECK_INT(rc, ==, i == 0 ? 0 : -1);
		if (i == 0)
			CHECK_STR(plain, "hello");
		else
			CHECK(plain == NULL);
		crypto_free_secret(&plain);
	}
	CHECK_INT(crypto_open(NULL, AAD, &(char *){ NULL }, NULL), ==, -1);
	CHECK(!crypto_is_sealed(NULL));
	CHECK(!crypto_is_sealed("hunter2"));
	CHECK(!crypto_is_sealed("$pg"));
	CHECK_INT(crypto_sealed_kid("$pg1$dc26d75$AAECAwQFBgcICQoL$"
	    "VSoQMtiWNyX0mV5iZBKW1Q==", kid), ==, -1);
	CHECK_INT(crypto_sealed_kid("plain", kid), ==, -1);
out:
	free(s);
	free(p);
	crypto_reset();
}

TEST(crypto_wrong_aad)
{
	static const char *const bad[] = {
		"acct_43\npassword",
		"acct_42\ntoken",
		"acct_42\npassword\n",
		"acct_42",
		"",
	};
	char *s;

	use_secrets(SECRET_A, NULL);
	s = crypto_seal_str("hunter2", AAD);
	CHECK(opens_to(s, AAD, "hunter2", 7));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *plain = NULL;

		CHECK_INT(crypto_open(s, bad[i], &plain, NULL), ==, -1);
		CHECK(plain == NULL);
	}
	free(s);
	crypto_reset();
}

TEST(crypto_rotation)
{
	char	*old, *cur, kid_b[CRYPTO_KID_LEN + 1], kid[CRYPTO_KID_LEN + 1];

	use_secrets(SECRET_A, NULL);
	old = crypto_seal_str("sealed under A", AAD);
	CHECK(old != NULL);

	/* B becomes current, A stays for decryption only. */
	use_secrets(SECRET_B, SECRET_A);
	snprintf(kid_b, sizeof(kid_b), "%s", crypto_current_kid());
	CHECK(strcmp(kid_b, KID_A) != 0);
	CHECK_INT(strlen(kid_b), ==, CRYPTO_KID_LEN);
	CHECK(opens_to(old, AAD, "sealed under A", 14));
	cur = crypto_seal_str("sealed under B", AAD);
	CHECK_INT(crypto_sealed_kid(cur, kid), ==, 0);
	CHECK_STR(kid, kid_b);
	CHECK(opens_to(cur, AAD, "sealed under B", 14));

	/* A retired: its values no longer open, B's still do. */
	use_secrets(SECRET_B, NULL);
	CHECK(!opens_to(old, AAD, "sealed under A", 14));
	CHECK(opens_to(cur, AAD, "sealed under B", 14));

	/* A value's kid naming B does not open under A. */
	use_secrets(SECRET_A, NULL);
	CHECK(!opens_to(cur, AAD, "sealed under B", 14));

	free(old);
	free(cur);
	crypto_reset();
}

TEST(crypto_ring_limits)
{
	char	 err[128], secret[64];
	size_t	 n;

	crypto_reset();
	err[0] = '\0';
	CHECK_INT(crypto_add_secret((const uint8_t *)"0123456789abcde", 15,
	    err, sizeof(err)), ==, -1);
	CHECK(err[0] != '\0');
	CHECK_INT(crypto_add_secret(NULL, 0, err, sizeof(err)), ==, -1);
	CHECK_INT(crypto_add_secret((const uint8_t *)"", 0, NULL, 0), ==, -1);
	CHECK_STR(crypto_current_kid(), "");

	/* The same secret twice takes one slot. */
	for (int i = 0; i < CRYPTO_KEYS_MAX + 2; i++)
		CHECK_INT(crypto_add_secret((const uint8_t *)SECRET_A,
		    strlen(SECRET_A), err, sizeof(err)), ==, 0);
	for (int i = 1; i < CRYPTO_KEYS_MAX; i++) {
		n = (size_t)snprintf(secret, sizeof(secret),
		    "rotation secret number %d", i);
		CHECK_INT(crypto_add_secret((const uint8_t *)secret, n, err,
		    sizeof(err)), ==, 0);
	}
	err[0] = '\0';
	CHECK_INT(crypto_add_secret((const uint8_t *)SECRET_B,
	    strlen(SECRET_B), err, sizeof(err)), ==, -1);
	CHECK(err[0] != '\0');
	CHECK_STR(crypto_current_kid(), KID_A);	/* first added stays current */
	crypto_reset();
}

TEST(crypto_no_key)
{
	char	*s, *plain = NULL;
	uint8_t	 a[32] = { 0 }, b[32] = { 0 };

	use_secrets(SECRET_A, NULL);
	s = crypto_seal_str("x", AAD);
	crypto_reset();
	CHECK_STR(crypto_current_kid(), "");
	CHECK(crypto_seal_str("x", AAD) == NULL);
	CHECK(crypto_seal((const uint8_t *)"", 0, AAD) == NULL);
	CHECK_INT(crypto_open(s, AAD, &plain, NULL), ==, -1);
	CHECK(plain == NULL);
	free(s);

	use_secrets(SECRET_A, NULL);
	CHECK(crypto_seal(NULL, 1, AAD) == NULL);
	CHECK(crypto_seal((const uint8_t *)"x", (size_t)CRYPTO_PLAIN_MAX + 1,
	    AAD) == NULL);
	crypto_reset();

	CHECK_INT(crypto_random(a, sizeof(a)), ==, 0);
	CHECK_INT(crypto_random(b, sizeof(b)), ==, 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK_INT(crypto_random(a, 0), ==, 0);
}
