/*
 * Name checks for discover/: every host name that reaches a connect, a
 * URL or a reply passed through here first, whether it came from the
 * admin, a DNS answer or an autoconfig document.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "discover/disc.h"

bool
disc_host_is_valid(const char *host)
{
	size_t	len = strlen(host), label = 0;

	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > DISC_HOST_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? host[i] : '.';

		if (c == '.') {
			if (label == 0 || host[i - 1] == '-' ||
			    host[i - label] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && c != '-' && c != '_')
			return false;
		if ((unsigned char)c >= 0x80 || ++label > 63)
			return false;
	}
	return true;
}

bool
disc_email_domain(const char *email, char *domain, size_t domainlen)
{
	const char	*at = strrchr(email, '@');
	size_t		 llen, dlen;

	if (at == NULL || strlen(email) > DISC_EMAIL_MAX)
		return false;
	llen = (size_t)(at - email);
	if (llen == 0 || llen > 64)
		return false;
	for (size_t i = 0; i < llen; i++) {
		unsigned char c = (unsigned char)email[i];

		if (c <= 0x20 || c >= 0x7f || strchr("\"(),:;<>[\\]", c) != NULL)
			return false;
	}
	at++;
	if (!disc_host_is_valid(at) || strchr(at, '.') == NULL)
		return false;
	dlen = strlen(at);
	if (at[dlen - 1] == '.')
		dlen--;
	/* "a." has one label only. */
	if (memchr(at, '.', dlen) == NULL || dlen >= domainlen)
		return false;
	for (size_t i = 0; i < dlen; i++)
		domain[i] = (char)tolower((unsigned char)at[i]);
	domain[dlen] = '\0';
	return true;
}

bool
disc_server_set(struct disc_server *s, const char *host, int port,
    bool secure)
{
	size_t len;

	if (!disc_host_is_valid(host) || port < 1 || port > 65535)
		return false;
	len = strlen(host);
	if (host[len - 1] == '.')
		len--;
	for (size_t i = 0; i < len; i++)
		s->host[i] = (char)tolower((unsigned char)host[i]);
	s->host[len] = '\0';
	s->port = port;
	s->secure = secure;
	return true;
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t
utf8_seq(const unsigned char *s)
{
	size_t		n;
	unsigned long	c;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, c = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, c = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, c = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) ||
	    (n == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

const char *
disc_text_clean(const char *in, char *out, size_t outlen)
{
	const unsigned char	*s = (const unsigned char *)in;
	size_t			 o = 0, n;

	while (*s != '\0') {
		n = utf8_seq(s);
		if (o + (n == 0 ? 1 : n) >= outlen)
			break;
		if (n == 0 || (n == 1 && (*s < 0x20 || *s == 0x7f))) {
			out[o++] = '?';
			s++;
			continue;
		}
		memcpy(out + o, s, n);
		o += n;
		s += n;
	}
	out[o] = '\0';
	return out;
}
