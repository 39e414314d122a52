/*
 * Secrets at rest: the key ring, AES-256-GCM sealing and the $pg1$ text
 * format. Keys live only in this file and are wiped on crypto_reset().
 * The ring is process-global and unlocked: the daemon is single-threaded.
 */
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "common/crypto.h"
#include "common/str.h"
#include "common/xmalloc.h"

#define SEAL_PREFIX	"$pg1$"
#define SEAL_PREFIX_LEN	(sizeof(SEAL_PREFIX) - 1)
#define NONCE_LEN	12	/* the GCM IV size that needs no GHASH step */
#define TAG_LEN		16	/* full tag: truncated GCM tags weaken fast */
#define NONCE_B64_LEN	16	/* 12 bytes = 4 base64 groups, no padding */
#define SECRET_MIN	16

/*
 * HKDF-SHA256 parameters (RFC 5869). The salt is fixed because there is
 * nowhere to keep a per-deployment salt that is not beside the secret
 * itself, so the secret must carry the entropy; the salt only separates
 * our keys from any other HKDF use of the same secret. The info string
 * names the purpose and version, so a future key for another use (or a
 * $pg2$ format) derives an independent key from the same secret.
 */
static const char hkdf_salt[] = "postern hkdf salt v1";
static const char hkdf_info[] = "postern aes-256-gcm sealing key v1";
/* Prefix hashed with a key to name it; see crypto.h. */
static const char kid_label[] = "postern kid";

struct crypto_key {
	uint8_t	key[CRYPTO_KEY_LEN];
	char	kid[CRYPTO_KID_LEN + 1];
};

static struct crypto_key ring[CRYPTO_KEYS_MAX];
static int		 nkeys;

/* The fields of a sealed value, pointing into the caller's string. */
struct sealed {
	char		 kid[CRYPTO_KID_LEN + 1];
	const char	*nonce;
	size_t		 nonce_len;
	const char	*ct;
	size_t		 ct_len;
};

static void
seterr(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

static int
derive_key(const uint8_t *secret, size_t len, uint8_t *key)
{
	EVP_PKEY_CTX	*ctx;
	size_t		 keylen = CRYPTO_KEY_LEN;
	int		 rc = -1;

	if ((ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL)) == NULL)
		return -1;
	if (EVP_PKEY_derive_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set1_hkdf_salt(ctx, (const unsigned char *)hkdf_salt,
	    (int)(sizeof(hkdf_salt) - 1)) <= 0 ||
	    EVP_PKEY_CTX_set1_hkdf_key(ctx, secret, (int)len) <= 0 ||
	    EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)hkdf_info,
	    (int)(sizeof(hkdf_info) - 1)) <= 0 ||
	    EVP_PKEY_derive(ctx, key, &keylen) <= 0 ||
	    keylen != CRYPTO_KEY_LEN)
		goto fail;
	rc = 0;
fail:
	EVP_PKEY_CTX_free(ctx);	/* the HKDF context wipes its copy of secret */
	return rc;
}

static int
key_id(const uint8_t *key, char *kid)
{
	EVP_MD_CTX	*md;
	uint8_t		 h[EVP_MAX_MD_SIZE];
	unsigned int	 hlen;
	int		 rc = -1;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) <= 0 ||
	    EVP_DigestUpdate(md, kid_label, sizeof(kid_label) - 1) <= 0 ||
	    EVP_DigestUpdate(md, key, CRYPTO_KEY_LEN) <= 0 ||
	    EVP_DigestFinal_ex(md, h, &hlen) <= 0)
		goto fail;
	str_hex_encode(h, CRYPTO_KID_LEN / 2, kid);
	rc = 0;
fail:
	EVP_MD_CTX_free(md);
	return rc;
}

int
crypto_add_secret(const uint8_t *secret, size_t len, char *err, size_t errlen)
{
	struct crypto_key	k;
	int			rc = -1;

	if (secret == NULL || len < SECRET_MIN) {
		seterr(err, errlen, "secret shorter than 16 bytes");
		return -1;
	}
	if (len > INT_MAX) {
		seterr(err, errlen, "secret too long");
		return -1;
	}
	if (nkeys == CRYPTO_KEYS_MAX) {
		seterr(err, errlen, "too many keys");
		return -1;
	}
	if (derive_key(secret, len, k.key) == -1 ||
	    key_id(k.key, k.kid) == -1) {
		seterr(err, errlen, "key derivation failed");
		goto fail;
	}
	/*
	 * The same secret listed twice (say as current and as old) is
	 * harmless; keeping one copy keeps the ring free of duplicates.
	 */
	for (int i = 0; i < nkeys; i++) {
		if (CRYPTO_memcmp(ring[i].key, k.key, CRYPTO_KEY_LEN) == 0) {
			rc = 0;
			goto fail;
		}
	}
	ring[nkeys++] = k;
	rc = 0;
fail:
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

void
crypto_reset(void)
{
	OPENSSL_cleanse(ring, sizeof(ring));
	nkeys = 0;
}

const char *
crypto_current_kid(void)
{
	return nkeys > 0 ? ring[0].kid : "";
}

/* ct receives len bytes of ciphertext followed by the TAG_LEN-byte tag. */
static int
gcm_seal(const uint8_t *key, const uint8_t *nonce, const char *aad,
    const uint8_t *plain, size_t len, uint8_t *ct)
{
	EVP_CIPHER_CTX	*ctx;
	size_t		 aadlen = strlen(aad);
	int		 n, rc = -1;

	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) <= 0 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
	    NULL) <= 0 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) <= 0)
		goto fail;
	if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &n,
	    (const unsigned char *)aad, (int)aadlen) <= 0)
		goto fail;
	n = 0;
	if (len > 0 && EVP_EncryptUpdate(ctx, ct, &n, plain, (int)len) <= 0)
		goto fail;
	if ((size_t)n != len)
		goto fail;
	if (EVP_EncryptFinal_ex(ctx, ct + n, &n) <= 0 || n != 0 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
	    ct + len) <= 0)
		goto fail;
	rc = 0;
fail:
	EVP_CIPHER_CTX_free(ctx);	/* wipes the key schedule */
	return rc;
}

/* ct holds ctlen bytes of ciphertext then the tag; plain gets ctlen bytes. */
static int
gcm_open(const uint8_t *key, const uint8_t *nonce, const char *aad,
    uint8_t *ct, size_t ctlen, uint8_t *plain)
{
	EVP_CIPHER_CTX	*ctx;
	size_t		 aadlen = strlen(aad);
	int		 n, rc = -1;

	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) <= 0 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
	    NULL) <= 0 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) <= 0)
		goto fail;
	if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &n,
	    (const unsigned char *)aad, (int)aadlen) <= 0)
		goto fail;
	n = 0;
	if (ctlen > 0 && EVP_DecryptUpdate(ctx, plain, &n, ct, (int)ctlen) <= 0)
		goto fail;
	if ((size_t)n != ctlen ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
	    ct + ctlen) <= 0)
		goto fail;
	/* The tag is checked here; until then plain is unauthenticated. */
	if (EVP_DecryptFinal_ex(ctx, plain + n, &n) <= 0 || n != 0)
		goto fail;
	rc = 0;
fail:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

char *
crypto_seal(const uint8_t *plain, size_t len, const char *aad)
{
	uint8_t	 nonce[NONCE_LEN], *ct = NULL;
	char	*nonce64 = NULL, *ct64 = NULL, *out = NULL;

	if (nkeys == 0 || len > CRYPTO_PLAIN_MAX || (plain == NULL && len > 0))
		return NULL;
	if (aad == NULL)
		aad = "";
	if (crypto_random(nonce, sizeof(nonce)) == -1)
		return NULL;
	ct = xmalloc(len + TAG_LEN);
	if (gcm_seal(ring[0].key, nonce, aad, plain, len, ct) == -1)
		goto fail;
	nonce64 = str_b64_encode(nonce, sizeof(nonce));
	ct64 = str_b64_encode(ct, len + TAG_LEN);
	out = xasprintf(SEAL_PREFIX "%s$%s$%s", ring[0].kid, nonce64, ct64);
fail:
	free(ct);
	free(nonce64);
	free(ct64);
	return out;
}

char *
crypto_seal_str(const char *plain, const char *aad)
{
	if (plain == NULL)
		return NULL;
	return crypto_seal((const uint8_t *)plain, strlen(plain), aad);
}

bool
crypto_is_sealed(const char *s)
{
	return s != NULL && strncmp(s, SEAL_PREFIX, SEAL_PREFIX_LEN) == 0;
}

/*
 * Splits "$pg1$<kid>$<nonce>$<ct>" without decoding. The kid must be
 * lower-case hex as we write it: accepting other spellings would give one
 * value several texts for no benefit.
 */
static int
sealed_split(const char *s, struct sealed *f)
{
	const char *p, *d;

	if (!crypto_is_sealed(s))
		return -1;
	p = s + SEAL_PREFIX_LEN;
	if (strspn(p, "0123456789abcdef") != CRYPTO_KID_LEN ||
	    p[CRYPTO_KID_LEN] != '$')
		return -1;
	memcpy(f->kid, p, CRYPTO_KID_LEN);
	f->kid[CRYPTO_KID_LEN] = '\0';
	p += CRYPTO_KID_LEN + 1;
	if ((d = strchr(p, '$')) == NULL)
		return -1;
	f->nonce = p;
	f->nonce_len = (size_t)(d - p);
	f->ct = d + 1;
	f->ct_len = strlen(f->ct);
	/* Base64 has no '$', so another one is junk; the decoder says so. */
	if (f->nonce_len != NONCE_B64_LEN || f->ct_len == 0)
		return -1;
	return 0;
}

int
crypto_sealed_kid(const char *sealed, char *out)
{
	struct sealed f;

	if (sealed_split(sealed, &f) == -1)
		return -1;
	memcpy(out, f.kid, sizeof(f.kid));
	return 0;
}

int
crypto_open(const char *sealed, const char *aad, char **plain_r,
    size_t *len_r)
{
	struct sealed	 f;
	uint8_t		*nonce = NULL, *ct = NULL;
	char		*plain = NULL;
	size_t		 nlen, ctlen = 0;
	int		 rc = -1;

	*plain_r = NULL;
	if (aad == NULL)
		aad = "";
	if (sealed_split(sealed, &f) == -1)
		return -1;
	if ((nonce = str_b64_decode(f.nonce, f.nonce_len, &nlen)) == NULL ||
	    nlen != NONCE_LEN)
		goto fail;
	if ((ct = str_b64_decode(f.ct, f.ct_len, &ctlen)) == NULL ||
	    ctlen < TAG_LEN || ctlen - TAG_LEN > CRYPTO_PLAIN_MAX)
		goto fail;
	ctlen -= TAG_LEN;
	plain = xmalloc(ctlen + 1);
	/*
	 * A kid is only 32 bits, so two keys in the ring could share one:
	 * try each match and let the tag decide.
	 */
	for (int i = 0; i < nkeys; i++) {
		if (strcmp(ring[i].kid, f.kid) != 0)
			continue;
		if (gcm_open(ring[i].key, nonce, aad, ct, ctlen,
		    (uint8_t *)plain) == 0) {
			plain[ctlen] = '\0';
			*plain_r = plain;
			if (len_r != NULL)
				*len_r = ctlen;
			plain = NULL;
			rc = 0;
			break;
		}
	}
fail:
	if (plain != NULL) {
		/* A failed open may leave unauthenticated plaintext behind. */
		OPENSSL_cleanse(plain, ctlen + 1);
		free(plain);
	}
	free(nonce);
	free(ct);
	return rc;
}

void
crypto_free_secret(char **p)
{
	if (p == NULL || *p == NULL)
		return;
	/*
	 * Wipe the whole allocation, not strlen(): a plaintext from
	 * crypto_open() may be binary with a NUL before its end.
	 */
	OPENSSL_cleanse(*p, malloc_usable_size(*p));
	free(*p);
	*p = NULL;
}

int
crypto_random(uint8_t *buf, size_t len)
{
	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;

		if (RAND_bytes(buf, n) != 1)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}
