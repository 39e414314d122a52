/*
 * Secrets at rest: AES-256-GCM under a key derived from the daemon secret.
 * A sealed value is text, safe to store in Redis or JSON:
 *     $pg1$<kid>$<base64 nonce>$<base64 ciphertext||tag>
 * kid = first 8 hex chars of SHA-256("postern kid" || key): it names the key
 * so that an operator can rotate the secret (new current key, old keys kept
 * for decryption only) and re-encrypt. AAD binds a value to its place
 * ("<account>\n<field>"), so a ciphertext copied onto another account or
 * field fails to open.
 */
#ifndef COMMON_CRYPTO_H
#define COMMON_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_LEN		32
#define CRYPTO_KID_LEN		8
#define CRYPTO_KEYS_MAX		8
/* Largest plaintext sealed or opened: secrets are small, and the bound
 * keeps every length inside OpenSSL's int arguments. */
#define CRYPTO_PLAIN_MAX	(16 * 1024 * 1024)

/* Derives a key from secret material (any length >= 16 bytes; a passphrase
 * or 32+ random bytes) with HKDF-SHA256 and adds it to the key ring. The
 * first key added is the current one (used to seal); later ones only open.
 * Returns 0, or -1 with a message in err (secret too short, ring full). */
int	 crypto_add_secret(const uint8_t *secret, size_t len, char *err,
	    size_t errlen);
/* Wipes and forgets every key (for tests and shutdown). */
void	 crypto_reset(void);
/* The current key's id, or "" if no key is loaded. */
const char *crypto_current_kid(void);

/* Seals plaintext (len bytes) with the current key. aad NULL means "".
 * Returns a malloc'd string, or NULL if no key is loaded, len exceeds
 * CRYPTO_PLAIN_MAX or the RNG fails. */
char	*crypto_seal(const uint8_t *plain, size_t len, const char *aad);
/* Convenience for NUL-terminated text. */
char	*crypto_seal_str(const char *plain, const char *aad);
/* Opens a sealed value. On success returns 0 and a malloc'd, NUL-terminated
 * plaintext in *plain_r (length in *len_r if not NULL); the caller wipes it
 * with crypto_free_secret(). Returns -1 on malformed input, unknown key id
 * or failed authentication (tampering, wrong AAD). */
int	 crypto_open(const char *sealed, const char *aad, char **plain_r,
	    size_t *len_r);
/* true if s looks like a sealed value ($pg1$...). */
bool	 crypto_is_sealed(const char *s);
/* Kid of a sealed value into out (CRYPTO_KID_LEN + 1 bytes); -1 if bad. */
int	 crypto_sealed_kid(const char *sealed, char *out);

/* OPENSSL_cleanse the string, then free it; sets *p to NULL. NULL is ok. */
void	 crypto_free_secret(char **p);
/* Cryptographically random bytes (OpenSSL RAND_bytes); -1 on failure. */
int	 crypto_random(uint8_t *buf, size_t len);

#endif
