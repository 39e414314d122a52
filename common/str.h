/*
 * Small string helpers shared by every module: hex and base64 coding,
 * constant-time comparison, sanitizing peer text for logs, durations and
 * ISO 8601 times.
 */
#ifndef COMMON_STR_H
#define COMMON_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* out must hold 2 * len + 1 bytes; lower-case hex, NUL-terminated. */
void	 str_hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes exactly outlen bytes from 2 * outlen hex chars; -1 on bad input. */
int	 str_hex_decode(const char *in, uint8_t *out, size_t outlen);
/* Value of one hex digit (either case), or -1. */
int	 str_hex_digit(int c);
/* true if s is exactly n hex characters. */
bool	 str_is_hex(const char *s, size_t n);
/* An IPv4 or IPv6 address in text (no brackets, no zone): not a name. */
bool	 str_is_ip_literal(const char *s);

/* Standard base64 with padding; returns a malloc'd string. */
char	*str_b64_encode(const uint8_t *in, size_t len);
/* Returns a malloc'd buffer (NUL-terminated for convenience) and its length
 * in *len_r, or NULL on bad input. Accepts only canonical padded input. */
uint8_t	*str_b64_decode(const char *in, size_t inlen, size_t *len_r);

/* Constant-time equality of two byte strings of the same length. */
bool	 str_eq_ct(const void *a, const void *b, size_t len);
/* Characters in UTF-8 text: the bytes that do not continue a sequence. */
size_t	 str_utf8_len(const char *s);

/* Copies s into out (size outlen) with control bytes, quotes and backslash
 * escaped and at most max source bytes used; for peer text in logs. */
const char *str_sanitize(const char *s, size_t max, char *out, size_t outlen);

/* "30", "30s", "500ms", "5m", "2h", "1d" -> milliseconds; -1 on error. */
long long str_duration_ms(const char *s);
/* "1024", "8k", "8KiB", "1M", "50MB" -> bytes; -1 on error. */
long long str_size_bytes(const char *s);
/* Strict decimal integer in [min, max]; -1 (with *ok false) on error. */
bool	 str_to_ll(const char *s, long long min, long long max, long long *r);

/* ISO 8601 / RFC 3339 ("2026-01-02", "2026-01-02T03:04:05Z",
 * "2026-01-02T03:04:05.123+02:00") -> Unix ms; -1 on error. */
long long str_iso8601_parse(const char *s);
/* Unix ms -> "2026-01-02T03:04:05.123Z"; out >= 32 bytes. */
void	 str_iso8601_format(long long ms, char *out, size_t outlen);
/* Wall clock in Unix ms. */
long long str_now_ms(void);

#endif
